//! Host config: parse errors with positions, every validation rule, defaults, starter file, digest,
//! and the service fields that become systemd unit settings.

use std::path::Path;

use pideploy_config::{ConfigError, HostConfig, Restart, ValidationError, STARTER_TOML};
use rstest::rstest;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhc3YQ4uTmTsQwdYLq8Kh4r9l0Zp0L4Zl1eRZ7b7C4Q me@laptop";

fn parse(text: &str) -> Result<HostConfig, ConfigError> {
    HostConfig::from_toml_str(text, "pi.toml", Path::new("/cfg"))
}

fn issues(text: &str) -> Vec<ValidationError> {
    match parse(text) {
        Err(ConfigError::Invalid { issues, .. }) => issues,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

#[test]
fn typo_field_reports_line_column_and_expected_fields() {
    let err = parse("board = \"rpi5\"\n\nhostnme = \"pi\"\n").unwrap_err();
    let ConfigError::Parse {
        origin,
        line,
        column,
        message,
    } = &err
    else {
        panic!("expected a parse error, got {err:?}");
    };
    assert_eq!((origin.as_str(), *line, *column), ("pi.toml", 3, 1));
    assert!(message.contains("unknown field `hostnme`"), "{message}");
    assert!(message.contains("`hostname`"), "{message}");
    let shown = err.to_string();
    assert!(
        shown.starts_with("pi.toml:3:1: unknown field `hostnme`"),
        "{shown}"
    );
}

#[test]
fn typo_in_nested_table_is_located() {
    let err = parse("hostname = \"pi\"\n[ssh]\nprot = 22\n").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { line: 3, column: 1, message, .. } if message.contains("`port`")),
        "{err:?}"
    );
}

#[test]
fn wrong_type_reports_position() {
    let err = parse("hostname = \"pi\"\n[[users]]\nname = \"pi\"\nuid = \"1000\"\n").unwrap_err();
    match &err {
        ConfigError::Parse {
            line,
            column,
            message,
            ..
        } => {
            assert_eq!((*line, *column), (4, 7));
            assert!(message.contains("invalid type"), "{message}");
        }
        other => panic!("expected parse error, got {other:?}"),
    }
}

#[test]
fn psk_inline_is_refused_by_schema() {
    let err = parse(
        "hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\n[[network.wifi.networks]]\nssid = \"x\"\npsk = \"hunter2\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { line: 6, message, .. } if message.contains("psk_file")),
        "{err:?}"
    );
}

#[test]
fn unknown_restart_variant_is_a_parse_error() {
    let err = parse(
        "hostname = \"pi\"\n[[services]]\nname = \"a\"\ncommand = [\"/bin/true\"]\nrestart = \"sometimes\"\n",
    )
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { line: 5, message, .. } if message.contains("on-failure")),
        "{err:?}"
    );
}

#[rstest]
#[case::hostname("hostname = \"-pi\"", "hostname", "Hostname")]
#[case::hostname_dot("hostname = \"pi.lan\"", "hostname", "Hostname")]
#[case::timezone(
    "hostname = \"pi\"\ntimezone = \"europe berlin\"",
    "timezone",
    "Timezone"
)]
#[case::locale("hostname = \"pi\"\nlocale = \"de_DE.UTF 8\"", "locale", "Locale")]
#[case::keyboard("hostname = \"pi\"\nkeyboard = \"../de\"", "keyboard", "Keymap")]
#[case::ntp_server(
    "hostname = \"pi\"\n[time]\nservers = [\"ntp.example.org\", \"host:123\"]",
    "time.servers[1]",
    "NtpServer"
)]
#[case::servers_without_ntp(
    "hostname = \"pi\"\n[time]\nntp = false\nservers = [\"10.0.0.1\"]",
    "time.servers",
    "ServersWithoutNtp"
)]
#[case::generations(
    "hostname = \"pi\"\ngenerations_to_keep = 0",
    "generations_to_keep",
    "GenerationsToKeep"
)]
#[case::user_name(
    "hostname = \"pi\"\n[[users]]\nname = \"Bob\"\nuid = 1000",
    "users[0].name",
    "AccountName"
)]
#[case::root_user(
    "hostname = \"pi\"\n[[users]]\nname = \"root\"\nuid = 1000",
    "users[0].name",
    "RootUser"
)]
#[case::uid_low(
    "hostname = \"pi\"\n[[users]]\nname = \"a\"\nuid = 999",
    "users[0].uid",
    "UidOutOfRange"
)]
#[case::uid_high(
    "hostname = \"pi\"\n[[users]]\nname = \"a\"\nuid = 60001",
    "users[0].uid",
    "UidOutOfRange"
)]
#[case::uid_dup(
    "hostname = \"pi\"\n[[users]]\nname = \"a\"\nuid = 1000\n[[users]]\nname = \"b\"\nuid = 1000",
    "users[1].uid",
    "DuplicateUid"
)]
#[case::user_dup(
    "hostname = \"pi\"\n[[users]]\nname = \"a\"\nuid = 1000\n[[users]]\nname = \"a\"\nuid = 1001",
    "users[1].name",
    "DuplicateUser"
)]
#[case::group(
    "hostname = \"pi\"\n[[users]]\nname = \"a\"\nuid = 1000\ngroups = [\"ok\", \"Bad Group\"]",
    "users[0].groups[1]",
    "AccountName"
)]
#[case::shell(
    "hostname = \"pi\"\n[[users]]\nname = \"a\"\nuid = 1000\nshell = \"bash\"",
    "users[0].shell",
    "Shell"
)]
#[case::ssh_key(
    "hostname = \"pi\"\n[[users]]\nname = \"a\"\nuid = 1000\nssh_authorized_keys = [\"not a key\"]",
    "users[0].ssh_authorized_keys[0]",
    "SshKey"
)]
#[case::ssh_port("hostname = \"pi\"\n[ssh]\nport = 0", "ssh.port", "Port")]
#[case::dhcp_with_address(
    "hostname = \"pi\"\n[network.ethernet]\naddress = \"10.0.0.2/24\"",
    "network.ethernet.address",
    "StaticWithDhcp"
)]
#[case::static_missing_address(
    "hostname = \"pi\"\n[network.ethernet]\ndhcp = false\ngateway = \"10.0.0.1\"\ndns = [\"10.0.0.1\"]",
    "network.ethernet.address",
    "MissingStatic"
)]
#[case::static_missing_gateway(
    "hostname = \"pi\"\n[network.ethernet]\ndhcp = false\naddress = \"10.0.0.2/24\"\ndns = [\"10.0.0.1\"]",
    "network.ethernet.gateway",
    "MissingStatic"
)]
#[case::static_missing_dns(
    "hostname = \"pi\"\n[network.ethernet]\ndhcp = false\naddress = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"",
    "network.ethernet.dns",
    "MissingStatic"
)]
#[case::bad_cidr(
    "hostname = \"pi\"\n[network.ethernet]\ndhcp = false\naddress = \"10.0.0.2\"\ngateway = \"10.0.0.1\"\ndns = [\"10.0.0.1\"]",
    "network.ethernet.address",
    "Cidr"
)]
#[case::gateway_subnet(
    "hostname = \"pi\"\n[network.ethernet]\ndhcp = false\naddress = \"10.0.0.2/24\"\ngateway = \"10.0.1.1\"\ndns = [\"10.0.0.1\"]",
    "network.ethernet.gateway",
    "GatewayOutsideSubnet"
)]
#[case::bad_dns(
    "hostname = \"pi\"\n[network.ethernet]\ndhcp = false\naddress = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"\ndns = [\"dns.google\"]",
    "network.ethernet.dns[0]",
    "IpAddress"
)]
#[case::ssid_empty(
    "hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\n[[network.wifi.networks]]\nssid = \"\"\nsecurity = \"open\"",
    "network.wifi.networks[0].ssid",
    "Ssid"
)]
#[case::ssid_long("hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\n[[network.wifi.networks]]\nssid = \"123456789012345678901234567890123\"\nsecurity = \"open\"", "network.wifi.networks[0].ssid", "Ssid")]
#[case::country(
    "hostname = \"pi\"\n[network.wifi]\ncountry = \"de\"\n[[network.wifi.networks]]\nssid = \"x\"\nsecurity = \"open\"",
    "network.wifi.country",
    "Country"
)]
#[case::no_networks(
    "hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\nnetworks = []",
    "network.wifi.networks",
    "NoWifiNetworks"
)]
#[case::missing_psk(
    "hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\n[[network.wifi.networks]]\nssid = \"home\"",
    "network.wifi.networks[0].psk_file",
    "MissingPsk"
)]
#[case::psk_for_open(
    "hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\n[[network.wifi.networks]]\nssid = \"cafe\"\nsecurity = \"open\"\npsk_file = \"x\"",
    "network.wifi.networks[0].psk_file",
    "PskForOpen"
)]
#[case::duplicate_ssid(
    "hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\n[[network.wifi.networks]]\nssid = \"a\"\nsecurity = \"open\"\n[[network.wifi.networks]]\nssid = \"a\"\nsecurity = \"open\"",
    "network.wifi.networks[1].ssid",
    "DuplicateSsid"
)]
#[case::wifi_static_without_gateway(
    "hostname = \"pi\"\n[network.wifi]\ncountry = \"DE\"\n[[network.wifi.networks]]\nssid = \"a\"\nsecurity = \"open\"\n[network.wifi.ip]\ndhcp = false\naddress = \"192.168.1.5/24\"\ndns = [\"192.168.1.1\"]",
    "network.wifi.ip.gateway",
    "MissingStatic"
)]
#[case::file_relative(
    "hostname = \"pi\"\n[[files]]\npath = \"etc/motd\"\ncontent = \"x\"",
    "files[0].path",
    "TargetPath"
)]
#[case::file_under_run(
    "hostname = \"pi\"\n[[files]]\npath = \"/run/x\"\ncontent = \"x\"",
    "files[0].path",
    "TargetPath"
)]
#[case::file_under_pideploy(
    "hostname = \"pi\"\n[[files]]\npath = \"/pideploy/var/x\"\ncontent = \"x\"",
    "files[0].path",
    "TargetPath"
)]
#[case::file_under_proc(
    "hostname = \"pi\"\n[[files]]\npath = \"/proc/x\"\ncontent = \"x\"",
    "files[0].path",
    "TargetPath"
)]
#[case::file_under_sys(
    "hostname = \"pi\"\n[[files]]\npath = \"/sys/x\"\ncontent = \"x\"",
    "files[0].path",
    "TargetPath"
)]
#[case::file_under_dev(
    "hostname = \"pi\"\n[[files]]\npath = \"/dev/x\"\ncontent = \"x\"",
    "files[0].path",
    "TargetPath"
)]
#[case::file_dotdot(
    "hostname = \"pi\"\n[[files]]\npath = \"/etc/../run/x\"\ncontent = \"x\"",
    "files[0].path",
    "TargetPath"
)]
#[case::file_both(
    "hostname = \"pi\"\n[[files]]\npath = \"/etc/x\"\ncontent = \"x\"\nsource = \"x\"",
    "files[0]",
    "ContentAndSource"
)]
#[case::file_neither(
    "hostname = \"pi\"\n[[files]]\npath = \"/etc/x\"",
    "files[0]",
    "NoContent"
)]
#[case::file_mode(
    "hostname = \"pi\"\n[[files]]\npath = \"/etc/x\"\ncontent = \"x\"\nmode = \"rw-r--r--\"",
    "files[0].mode",
    "Mode"
)]
#[case::file_owner(
    "hostname = \"pi\"\n[[files]]\npath = \"/etc/x\"\ncontent = \"x\"\nowner = \"Root\"",
    "files[0].owner",
    "AccountName"
)]
#[case::file_dup(
    "hostname = \"pi\"\n[[files]]\npath = \"/etc/x\"\ncontent = \"x\"\n[[secrets]]\nsource = \"s\"\ntarget = \"/etc/x\"",
    "secrets[0].target",
    "DuplicateTarget"
)]
#[case::service_name(
    "hostname = \"pi\"\n[[services]]\nname = \"Web\"\ncommand = [\"/bin/true\"]",
    "services[0].name",
    "ServiceName"
)]
#[case::service_command(
    "hostname = \"pi\"\n[[services]]\nname = \"web\"\ncommand = []",
    "services[0].command",
    "EmptyCommand"
)]
#[case::service_user(
    "hostname = \"pi\"\n[[services]]\nname = \"web\"\ncommand = [\"/bin/true\"]\nuser = \"\"",
    "services[0].user",
    "AccountName"
)]
#[case::service_dup(
    "hostname = \"pi\"\n[[services]]\nname = \"web\"\ncommand = [\"/bin/true\"]\n[[services]]\nname = \"web\"\ncommand = [\"/bin/true\"]",
    "services[1].name",
    "DuplicateService"
)]
#[case::secret_target(
    "hostname = \"pi\"\n[[secrets]]\nsource = \"s\"\ntarget = \"token\"",
    "secrets[0].target",
    "TargetPath"
)]
#[case::secret_world_readable(
    "hostname = \"pi\"\n[[secrets]]\nsource = \"s\"\ntarget = \"/etc/t\"\nmode = \"0644\"",
    "secrets[0].mode",
    "SecretWorldReadable"
)]
#[case::secret_source_empty(
    "hostname = \"pi\"\n[[secrets]]\nsource = \"\"\ntarget = \"/etc/t\"",
    "secrets[0].source",
    "EmptyPath"
)]
#[case::package(
    "hostname = \"pi\"\npackages = [\"curl\", \"Bad_Name\"]",
    "packages[1]",
    "PackageName"
)]
#[case::cmdline_root(
    "hostname = \"pi\"\n[boot]\ncmdline = [\"root=/dev/sda2\"]",
    "boot.cmdline[0]",
    "CmdlineArg"
)]
#[case::cmdline_space(
    "hostname = \"pi\"\n[boot]\ncmdline = [\"quiet splash\"]",
    "boot.cmdline[0]",
    "CmdlineArg"
)]
#[case::config_line(
    "hostname = \"pi\"\n[boot]\nconfig = [\"a=1\\nb=2\"]",
    "boot.config[0]",
    "ConfigLine"
)]
#[case::overlay(
    "hostname = \"pi\"\n[boot]\ndtoverlays = [\"dwc2, dr_mode=host\"]",
    "boot.dtoverlays[0]",
    "Overlay"
)]
#[case::kernel_module(
    "hostname = \"pi\"\n[boot]\nkernel_modules = [\"snd_aloop.ko\"]",
    "boot.kernel_modules[0]",
    "KernelModule"
)]
#[case::health_command(
    "hostname = \"pi\"\n[health]\ncommands = [[]]",
    "health.commands[0]",
    "EmptyCommand"
)]
#[case::health_port(
    "hostname = \"pi\"\n[health]\ntcp_ports = [0]",
    "health.tcp_ports[0]",
    "Port"
)]
#[case::health_timeout(
    "hostname = \"pi\"\n[health]\ntimeout_secs = 0",
    "health.timeout_secs",
    "Timeout"
)]
#[case::board_empty("board = \"\"\nhostname = \"pi\"", "board", "EmptyBoard")]
fn each_rule_is_reported_at_its_field(#[case] text: &str, #[case] path: &str, #[case] kind: &str) {
    only_issue(text, path, kind);
}

/// Checks that `text` breaks exactly one rule, `kind` at `path`, and says so in one line.
fn only_issue(text: &str, path: &str, kind: &str) {
    let found = issues(text);
    assert!(
        found
            .iter()
            .any(|i| i.path == path && format!("{:?}", i.kind).starts_with(kind)),
        "expected {kind} at {path}, got {found:?}"
    );
    // Exactly the broken rule, nothing collateral.
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(!found[0].to_string().contains('\n'), "{}", found[0]);
}

#[rstest]
#[case::uid_bounds(
    "hostname = \"pi\"\n[[users]]\nname = \"a\"\nuid = 1000\n[[users]]\nname = \"b\"\nuid = 60000"
)]
#[case::static_ok(
    "hostname = \"pi\"\n[network.ethernet]\ndhcp = false\naddress = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"\ndns = [\"10.0.0.1\", \"2620:fe::fe\"]"
)]
#[case::wifi_open("hostname = \"pi\"\n[network.wifi]\ncountry = \"GB\"\n[[network.wifi.networks]]\nssid = \"12345678901234567890123456789012\"\nsecurity = \"open\"")]
#[case::wifi_two_networks_static(
    "hostname = \"pi\"\n[network.wifi]\ncountry = \"GB\"\n[[network.wifi.networks]]\nssid = \"home\"\npsk_file = \"h\"\npriority = 5\nhidden = true\nsecurity = \"wpa3\"\n[[network.wifi.networks]]\nssid = \"phone\"\npsk_file = \"p\"\n[network.wifi.ip]\ndhcp = false\naddress = \"192.168.1.5/24\"\ngateway = \"192.168.1.1\"\ndns = [\"192.168.1.1\"]"
)]
#[case::file_near_reserved(
    "hostname = \"pi\"\n[[files]]\npath = \"/running/x\"\ncontent = \"\"\nmode = \"755\""
)]
#[case::secret_group_readable(
    "hostname = \"pi\"\n[[secrets]]\nsource = \"s\"\ntarget = \"/etc/t\"\nmode = \"0440\""
)]
#[case::timezone_deep("hostname = \"pi\"\ntimezone = \"America/Argentina/Buenos_Aires\"")]
#[case::first_contact(
    "hostname = \"pi\"\nlocale = \"sr_RS.UTF-8@latin\"\nkeyboard = \"de_CH-latin1\"\n[time]\nservers = [\"10.0.2.2\", \"pool.ntp.org\"]\n[network]\nmdns = false"
)]
fn boundary_values_are_accepted(#[case] text: &str) {
    parse(text).unwrap();
}

#[test]
fn all_issues_are_reported_at_once_in_one_message() {
    let err = parse("hostname = \"-\"\ngenerations_to_keep = 0\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("pi.toml: hostname: `-` is not a valid hostname"),
        "{text}"
    );
    assert!(
        text.contains("; generations_to_keep: must be at least 1"),
        "{text}"
    );
}

#[test]
fn defaults_fill_in_and_relative_paths_resolve_against_base_dir() {
    let config = parse(
        "hostname = \"pi\"\n[[files]]\npath = \"/etc/motd\"\nsource = \"files/motd\"\n\
         [[secrets]]\nsource = \"/abs/token\"\ntarget = \"/etc/token\"\n\
         [[services]]\nname = \"x\"\ncommand = [\"/bin/x\"]\n\
         [network.wifi]\ncountry = \"DE\"\n[[network.wifi.networks]]\nssid = \"home\"\npsk_file = \"wifi.psk\"\n",
    )
    .unwrap();
    assert_eq!(config.board, "rpi5");
    assert_eq!(config.timezone, "UTC");
    assert_eq!(
        config.files[0].source.as_deref(),
        Some(Path::new("/cfg/files/motd"))
    );
    assert_eq!(config.files[0].mode, "0644");
    assert_eq!(
        (
            config.files[0].owner.as_str(),
            config.files[0].group.as_str()
        ),
        ("root", "root")
    );
    assert_eq!(config.secrets[0].source, Path::new("/abs/token"));
    assert_eq!(config.secrets[0].mode, "0400");
    assert_eq!(config.secrets[0].owner, "root");
    assert_eq!(config.services[0].restart(), Restart::OnFailure);
    assert_eq!(config.services[0].user, "root");
    let psk = config.network.wifi.as_ref().unwrap().networks[0]
        .psk_file
        .as_deref();
    assert_eq!(psk, Some(Path::new("/cfg/wifi.psk")));
    assert!(config.ssh.enable && config.ssh.port == 22 && !config.ssh.password_authentication);
    assert!(config.network.ethernet.dhcp);
}

#[test]
fn load_resolves_against_the_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pi.toml");
    std::fs::write(
        &path,
        "hostname = \"pi\"\n[[files]]\npath = \"/etc/a\"\nsource = \"a\"\n",
    )
    .unwrap();
    let config = HostConfig::load(&path).unwrap();
    assert_eq!(
        config.files[0].source.as_deref(),
        Some(dir.path().join("a").as_path())
    );

    let missing = HostConfig::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(missing.to_string().contains("nope.toml"), "{missing}");

    std::fs::write(&path, "hostname = \"pi\"\nboard = 5\n").unwrap();
    let err = HostConfig::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:2:9: ", path.display())),
        "{err}"
    );
}

#[test]
fn default_for_validates_and_carries_keys() {
    let config = HostConfig::default_for("qemu-aarch64", vec![format!("{KEY}\n"), "  ".into()]);
    config.validate().unwrap();
    assert_eq!(config.board, "qemu-aarch64");
    assert_eq!(config.hostname, "pi");
    let user = &config.users[0];
    assert_eq!(
        (user.name.as_str(), user.uid, user.sudo),
        ("pi", 1000, true)
    );
    assert_eq!(user.ssh_authorized_keys, vec![KEY.to_owned()]);
    assert!(config.network.ethernet.dhcp);
    assert_eq!(config.ssh.port, 22);
    assert!(!config.ssh.password_authentication && !config.ssh.permit_root_login);
}

#[test]
fn starter_toml_parses_and_validates() {
    let config = parse(STARTER_TOML).unwrap();
    assert_eq!(config.hostname, "pi");
    assert_eq!(config.users.len(), 1);
    // Its defaults agree with default_for, so `init` and no config at all mean the same system.
    let mut default = HostConfig::default_for("rpi5", Vec::new());
    default.health.tcp_ports = vec![22];
    assert_eq!(config, default);
}

const DIGEST_CONFIG: &str = "hostname = \"pi\"\n\
    [[users]]\nname = \"pi\"\nuid = 1000\nsudo = true\n\
    [[files]]\npath = \"/etc/motd\"\nsource = \"motd\"\n\
    [[secrets]]\nsource = \"token\"\ntarget = \"/etc/token\"\n";

fn digest_in(dir: &Path, text: &str) -> String {
    HostConfig::from_toml_str(text, "pi.toml", dir)
        .unwrap()
        .digest_hex()
        .unwrap()
}

#[test]
fn digest_is_stable_and_independent_of_location_and_secrets() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for dir in [a.path(), b.path()] {
        std::fs::write(dir.join("motd"), "hello\n").unwrap();
    }
    std::fs::write(a.path().join("token"), "secret-1").unwrap();
    std::fs::write(b.path().join("token"), "secret-2").unwrap();

    let digest = digest_in(a.path(), DIGEST_CONFIG);
    // Golden: changes only when the canonical form or the schema defaults change, which must be deliberate.
    let canonical = HostConfig::from_toml_str(DIGEST_CONFIG, "pi.toml", a.path())
        .unwrap()
        .canonical_json()
        .unwrap();
    // The source contributes sha256("hello\n"), never its (machine-specific) path.
    assert!(canonical.contains(
        "\"source\":\"sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\""
    ));
    assert!(canonical.contains("\"source\":\"<secret>\""));
    assert!(!canonical.contains(&a.path().display().to_string()));
    // Golden (cross-checked with Python's hashlib over the domain prefix + canonical JSON).
    assert_eq!(
        digest,
        "8ac5fcf9b76cf5266b8ad8972d53c61cc940503de14a808b66f8c0b1a4e61a15"
    );
    assert_eq!(digest_in(b.path(), DIGEST_CONFIG), digest);
}

#[test]
fn digest_changes_with_a_field_or_a_source_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("motd"), "hello\n").unwrap();
    let base = digest_in(dir.path(), DIGEST_CONFIG);

    let renamed = DIGEST_CONFIG.replace("hostname = \"pi\"", "hostname = \"pi2\"");
    assert_ne!(digest_in(dir.path(), &renamed), base);
    let other_mode = format!("{DIGEST_CONFIG}mode = \"0600\"\n");
    assert_ne!(digest_in(dir.path(), &other_mode), base);

    std::fs::write(dir.path().join("motd"), "hello!\n").unwrap();
    assert_ne!(digest_in(dir.path(), DIGEST_CONFIG), base);
    std::fs::write(dir.path().join("motd"), "hello\n").unwrap();
    assert_eq!(digest_in(dir.path(), DIGEST_CONFIG), base);

    std::fs::remove_file(dir.path().join("motd")).unwrap();
    let config = HostConfig::from_toml_str(DIGEST_CONFIG, "pi.toml", dir.path()).unwrap();
    let err = config.digest().unwrap_err();
    assert!(
        matches!(&err, ConfigError::Read { path, .. } if path.ends_with("motd")),
        "{err:?}"
    );
}

#[test]
fn a_board_file_resolves_against_base_dir_and_counts_by_content() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let board = include_str!("../../../boards/qemu-aarch64.toml");
    for dir in [a.path(), b.path()] {
        std::fs::create_dir(dir.join("boards")).unwrap();
        std::fs::write(dir.join("boards/mine.toml"), board).unwrap();
    }
    let text = "board = \"boards/mine.toml\"\nhostname = \"pi\"\n";
    let config = HostConfig::from_toml_str(text, "pi.toml", a.path()).unwrap();
    assert_eq!(Path::new(&config.board), a.path().join("boards/mine.toml"));
    pideploy_config::Board::load(&config.board).unwrap();

    let digest = digest_in(a.path(), text);
    assert_eq!(digest_in(b.path(), text), digest);
    std::fs::write(
        b.path().join("boards/mine.toml"),
        board.replace("1024", "2048"),
    )
    .unwrap();
    assert_ne!(digest_in(b.path(), text), digest);
    // Built-in names stay names.
    assert_eq!(
        parse("board = \"qemu-aarch64\"\nhostname = \"pi\"\n")
            .unwrap()
            .board,
        "qemu-aarch64"
    );
}

/// The [[services]] fields that became systemd unit settings: parsing, defaults, each validation
/// rule at its field, the starter file's example, and digests of configs without them.
mod service_units {
    use super::*;
    use std::collections::BTreeMap;

    /// A config with one service `web` and these extra lines in its table.
    fn service(extra: &str) -> String {
        format!(
            "hostname = \"pi\"\n[[services]]\nname = \"web\"\ncommand = [\"/usr/bin/web\"]\n{extra}\n"
        )
    }

    #[test]
    fn all_fields_parse() {
        let config = parse(&service(
            "restart = \"no\"\ngroup = \"www-data\"\ndescription = \"The web\"\n\
             working_directory = \"/srv/web\"\nenvironment = { PORT = \"80\", MSG = \"a b\" }\n\
             after = [\"network-online.target\"]\nwants = [\"network-online.target\"]\n\
             requires = [\"var-lib.mount\", \"getty@tty1.service\"]\nschedule = \"*-*-* 03:00:00\"",
        ))
        .unwrap();
        let s = &config.services[0];
        assert_eq!(s.group.as_deref(), Some("www-data"));
        assert_eq!(s.description.as_deref(), Some("The web"));
        assert_eq!(s.working_directory.as_deref(), Some("/srv/web"));
        let env: BTreeMap<String, String> = [("MSG", "a b"), ("PORT", "80")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(s.environment, env);
        assert_eq!(s.after, ["network-online.target"]);
        assert_eq!(s.wants, ["network-online.target"]);
        assert_eq!(s.requires, ["var-lib.mount", "getty@tty1.service"]);
        assert_eq!(s.schedule.as_deref(), Some("*-*-* 03:00:00"));
    }

    #[test]
    fn new_fields_default_to_unset() {
        let config = parse(&service("")).unwrap();
        let s = &config.services[0];
        assert_eq!(s.restart(), Restart::OnFailure);
        assert!(s.group.is_none() && s.description.is_none() && s.working_directory.is_none());
        assert!(s.environment.is_empty() && s.after.is_empty() && s.wants.is_empty());
        assert!(s.requires.is_empty() && s.schedule.is_none());
    }

    #[test]
    fn unknown_service_field_is_still_refused() {
        let err = parse(&service("enviroment = { A = \"1\" }")).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `enviroment`"),
            "{err}"
        );
    }

    /// Golden digest of a config with a service that uses only the fields from before units,
    /// computed by the code before they were added: it must not change.
    #[test]
    fn configs_without_the_new_fields_keep_their_digest() {
        let text = "hostname = \"pi\"\n[[services]]\nname = \"web\"\n\
                    command = [\"/usr/bin/web\", \"--port\", \"80\"]\nrestart = \"always\"\n\
                    user = \"pi\"\n[[users]]\nname = \"pi\"\nuid = 1000\n";
        let config = HostConfig::from_toml_str(text, "pi.toml", Path::new("/")).unwrap();
        assert!(config.canonical_json().unwrap().contains(
            r#""services":[{"command":["/usr/bin/web","--port","80"],"name":"web","restart":"always","user":"pi"}]"#
        ));
        assert_eq!(
            config.digest_hex().unwrap(),
            "1214e4dccad716231b0da915a083993b3e4c1ca4daacdac71e6884fd73b62a4a"
        );
    }

    #[rstest]
    #[case::group("group = \"pi\"")]
    #[case::description("description = \"x\"")]
    #[case::working_directory("working_directory = \"/srv\"")]
    #[case::environment("environment = { A = \"\" }")]
    #[case::after("after = [\"a.target\"]")]
    #[case::wants("wants = [\"a.target\"]")]
    #[case::requires("requires = [\"a.target\"]")]
    #[case::schedule("schedule = \"daily\"\nrestart = \"no\"")]
    fn each_new_field_changes_the_digest(#[case] extra: &str) {
        let base = parse(&service("")).unwrap().digest_hex().unwrap();
        let with = parse(&service(extra)).unwrap().digest_hex().unwrap();
        assert_ne!(base, with);
    }

    #[rstest]
    #[case::env_name(
        "environment = { \"1A\" = \"x\" }",
        "services[0].environment",
        "EnvName"
    )]
    #[case::env_name_dash(
        "environment = { \"A-B\" = \"x\" }",
        "services[0].environment",
        "EnvName"
    )]
    #[case::env_newline(
        "environment = { A = \"x\\ny\" }",
        "services[0].environment.A",
        "EnvValue"
    )]
    #[case::env_nul(
        "environment = { A = \"x\\u0000y\" }",
        "services[0].environment.A",
        "EnvValue"
    )]
    #[case::group("group = \"Www\"", "services[0].group", "AccountName")]
    #[case::workdir_relative(
        "working_directory = \"srv\"",
        "services[0].working_directory",
        "WorkingDirectory"
    )]
    #[case::workdir_dotdot(
        "working_directory = \"/srv/../etc\"",
        "services[0].working_directory",
        "WorkingDirectory"
    )]
    #[case::workdir_backslash(
        "working_directory = \"/srv\\\\\"",
        "services[0].working_directory",
        "WorkingDirectory"
    )]
    #[case::after_bare("after = [\"network-online\"]", "services[0].after[0]", "UnitName")]
    #[case::wants_type("wants = [\"a.b\"]", "services[0].wants[0]", "UnitName")]
    #[case::requires_template(
        "requires = [\"x.target\", \"getty@.service\"]",
        "services[0].requires[1]",
        "UnitName"
    )]
    #[case::after_space("after = [\"a b.target\"]", "services[0].after[0]", "UnitName")]
    #[case::description("description = \"a\\nb\"", "services[0].description", "UnitValue")]
    #[case::description_backslash(
        "description = \"a\\\\\"",
        "services[0].description",
        "UnitValue"
    )]
    #[case::schedule_empty(
        "schedule = \" \"\nrestart = \"no\"",
        "services[0].schedule",
        "EmptySchedule"
    )]
    #[case::schedule_newline(
        "schedule = \"daily\\nhourly\"\nrestart = \"no\"",
        "services[0].schedule",
        "UnitValue"
    )]
    #[case::schedule_restart_always(
        "schedule = \"daily\"\nrestart = \"always\"",
        "services[0].restart",
        "ScheduleRestart"
    )]
    fn each_rule_is_reported_at_its_field(
        #[case] extra: &str,
        #[case] path: &str,
        #[case] kind: &str,
    ) {
        only_issue(&service(extra), path, kind);
    }

    #[test]
    fn a_bare_dependency_name_is_answered_with_its_full_spelling() {
        let found = issues(&service("after = [\"network-online\"]"));
        let text = found[0].to_string();
        assert!(text.contains("write `network-online.target`"), "{text}");
    }

    #[rstest]
    #[case::root_dir("working_directory = \"/\"")]
    #[case::instance_dep("requires = [\"getty@tty1.service\"]")]
    #[case::root_mount("after = [\"-.mount\"]")]
    #[case::calendar("schedule = \"Mon..Fri *-*-* 08:00:00\"\nrestart = \"no\"")]
    #[case::schedule_without_restart("schedule = \"daily\"")]
    #[case::env_empty_value("environment = { _A1 = \"\" }")]
    #[case::env_value_specials("environment = { A = \"$x %i \\\"q\\\" 'x' \\\\ \\t\" }")]
    fn boundary_values_are_accepted(#[case] extra: &str) {
        parse(&service(extra)).unwrap();
    }

    /// The commented [[services]] example in the starter file, uncommented, is a valid config.
    #[test]
    fn starter_service_example_is_valid_when_uncommented() {
        let mut example = String::from("hostname = \"pi\"\n[[users]]\nname = \"pi\"\nuid = 1000\n");
        let mut inside = false;
        for line in STARTER_TOML.lines() {
            if line == "# [[services]]" {
                inside = true;
            } else if inside && !line.starts_with("# ") {
                break;
            }
            if inside {
                let line = line.trim_start_matches("# ");
                // Lines that are prose, not TOML, in the example.
                if line.starts_with(|c: char| c.is_ascii_uppercase()) || line.starts_with("leave") {
                    continue;
                }
                example += line;
                example += "\n";
            }
        }
        assert!(example.contains("schedule = "), "{example}");
        let err = parse(&example).unwrap_err().to_string();
        // The example shows every field, so with its schedule its restart must go (or be "no"); that is the
        // only complaint.
        assert!(err.contains("services[0].restart"), "{err}");
        let fixed = example.replace("restart = \"on-failure\"", "restart = \"no\"");
        let config = parse(&fixed).unwrap();
        assert_eq!(config.services[0].environment["GREETING"], "hello world");
    }

    #[test]
    fn unit_names_are_classified_like_systemd_does() {
        use pideploy_config::rules::{unit_name_kind, UnitNameKind as K};
        let cases = [
            ("nginx.service", Some(K::Plain)),
            ("-.mount", Some(K::Plain)),
            ("dev-sda1.device", Some(K::Plain)),
            ("a\\x2db.slice", Some(K::Plain)),
            ("getty@.service", Some(K::Template)),
            ("getty@tty1.service", Some(K::Instance)),
            ("a@b@c.service", Some(K::Instance)),
            ("@x.service", None),
            ("x.serv", None),
            ("x", None),
            (".service", None),
            ("a b.service", None),
            ("a/b.service", None),
            ("", None),
        ];
        for (name, kind) in cases {
            assert_eq!(unit_name_kind(name), kind, "{name}");
        }
        let long = format!("{}.service", "a".repeat(247));
        assert_eq!(long.len(), 255);
        assert_eq!(unit_name_kind(&long), Some(K::Plain));
        assert_eq!(unit_name_kind(&format!("a{long}")), None);
    }
}
