//! The pure validation pass over a parsed [`HostConfig`]: every broken rule becomes a
//! [`ValidationError`] naming the field path (`users[1].uid`) so the person can find it.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::host::{Ethernet, HostConfig, Restart, Service, User, WifiSecurity};
use crate::rules::{self, UnitNameKind};

/// One broken rule, at one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ValidationError {
    /// Field path, e.g. `users[1].uid` or `network.ethernet.address`.
    pub path: String,
    /// Which rule was broken.
    #[source]
    pub kind: ValidationErrorKind,
}

/// The rules a config can break.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationErrorKind {
    /// The board is empty.
    #[error("a board name (`rpi5`, `qemu-aarch64`) or board file path is required")]
    EmptyBoard,
    /// Not an RFC 1123 label.
    #[error("`{0}` is not a valid hostname: use 1-63 letters, digits and hyphens, not starting or ending with a hyphen")]
    Hostname(String),
    /// Not shaped like a zone name.
    #[error(
        "`{0}` is not a time zone name: use `UTC` or an Area/Location name like `Europe/Berlin`"
    )]
    Timezone(String),
    /// Not shaped like a locale name.
    #[error("`{0}` is not a locale name: use language_TERRITORY.codeset, like `de_DE.UTF-8` or `en_GB.UTF-8`")]
    Locale(String),
    /// Not shaped like a keymap name.
    #[error(
        "`{0}` is not a console keymap name: use a name like `de`, `fr`, `uk` or `de_CH-latin1`"
    )]
    Keymap(String),
    /// Not a host name or address.
    #[error("`{0}` is not an NTP server: use a host name like `pool.ntp.org` or an IP address")]
    NtpServer(String),
    /// Servers named with the client off.
    #[error("servers are set but `time.ntp` is false: remove them, or turn ntp on")]
    ServersWithoutNtp,
    /// Zero generations.
    #[error("must be at least 1 (the running generation is always kept)")]
    GenerationsToKeep,
    /// Bad account name.
    #[error("`{0}` is not a valid name: use `[a-z_][a-z0-9_-]*`, at most 32 characters")]
    AccountName(String),
    /// `root` configured as a user.
    #[error("`root` cannot be configured as a user; add a user with `sudo = true` instead")]
    RootUser,
    /// Two users with the same name.
    #[error("user `{0}` is defined twice")]
    DuplicateUser(String),
    /// uid outside the range for regular users.
    #[error("uid {0} is outside 1000..=60000 (the range for regular users)")]
    UidOutOfRange(u32),
    /// Two users with the same uid.
    #[error("uid {uid} is already used by {other}")]
    DuplicateUid {
        /// The shared uid.
        uid: u32,
        /// Field path of the first user with it.
        other: String,
    },
    /// Shell not absolute.
    #[error("`{0}` is not an absolute path to a shell (e.g. /bin/sh)")]
    Shell(String),
    /// Not an authorized_keys line.
    #[error("not an OpenSSH public key line (expected e.g. `ssh-ed25519 AAAA... comment`, one key per entry)")]
    SshKey,
    /// SSH port 0.
    #[error("port 0 is not usable; the default is 22")]
    Port,
    /// Static settings given together with DHCP.
    #[error("is set but `dhcp = true`; set `dhcp = false` for a static address, or remove it")]
    StaticWithDhcp,
    /// Static settings missing without DHCP.
    #[error("is required when `dhcp = false`")]
    MissingStatic,
    /// Not `a.b.c.d/len`.
    #[error("`{0}` is not an IPv4 address with prefix length, like `192.168.1.20/24`")]
    Cidr(String),
    /// Not an IP address.
    #[error("`{0}` is not an IP address")]
    IpAddress(String),
    /// Gateway not in the address's subnet.
    #[error("gateway {gateway} is not in the subnet of {address}")]
    GatewayOutsideSubnet {
        /// The gateway.
        gateway: String,
        /// The static address.
        address: String,
    },
    /// SSID length.
    #[error("an SSID must be 1 to 32 bytes long, this one is {0}")]
    Ssid(usize),
    /// `[network.wifi]` without a network.
    #[error("add at least one [[network.wifi.networks]] entry (ssid, psk_file), or remove [network.wifi]")]
    NoWifiNetworks,
    /// The same network twice.
    #[error("the same ssid as networks[{0}]; give each network once")]
    DuplicateSsid(usize),
    /// A passphrase for an open network.
    #[error("an open network has no passphrase: remove psk_file, or set security = \"wpa2\" or \"wpa3\"")]
    PskForOpen,
    /// No passphrase for a protected network.
    #[error("a WPA2/WPA3 network needs psk_file (a local file holding the passphrase), or security = \"open\"")]
    MissingPsk,
    /// Country code.
    #[error("`{0}` is not a two-letter upper-case country code like `DE` or `US`")]
    Country(String),
    /// A local path is empty.
    #[error("must not be empty")]
    EmptyPath,
    /// A target path is unacceptable.
    #[error("`{path}` {problem}")]
    TargetPath {
        /// The path.
        path: String,
        /// Why it is refused.
        problem: &'static str,
    },
    /// Two files/secrets with the same target.
    #[error("`{path}` is also the target of {other}")]
    DuplicateTarget {
        /// The shared path.
        path: String,
        /// Field path of the other entry.
        other: String,
    },
    /// Both content and source.
    #[error("give either `content` or `source`, not both")]
    ContentAndSource,
    /// Neither content nor source.
    #[error("give one of `content` (inline text) or `source` (a local file)")]
    NoContent,
    /// Bad octal mode.
    #[error("`{0}` is not an octal mode string like \"0644\"")]
    Mode(String),
    /// A configured file that other users may not read: its content would still sit in the
    /// world-readable store and image.
    #[error("mode `{0}` keeps other users out, but [[files]] content is kept world-readable in the store and the image; put this file in [[secrets]] (source = a local file), or give it a mode like \"0644\"")]
    FileNotWorldReadable(String),
    /// A configured file in a user's home that root would own.
    #[error(
        "`{path}` is in the home of {user}, who controls that directory; set owner = \"{user}\""
    )]
    FileInHome {
        /// The path.
        path: String,
        /// The user.
        user: String,
    },
    /// A path pideploy itself manages for a user.
    #[error("`{path}` is managed by pideploy from {at} (home, .ssh, ssh_authorized_keys); choose another path")]
    ManagedUserPath {
        /// The path.
        path: String,
        /// Field path of the user.
        at: String,
    },
    /// A secret readable by others.
    #[error("mode `{0}` lets every user read the secret; use e.g. \"0400\" or \"0440\"")]
    SecretWorldReadable(String),
    /// Bad service name.
    #[error("`{0}` is not a valid service name: use `[a-z0-9][a-z0-9_.-]*`")]
    ServiceName(String),
    /// Two services with one name.
    #[error("service `{0}` is defined twice")]
    DuplicateService(String),
    /// Empty argv.
    #[error(
        "must be a non-empty list of program and arguments, e.g. [\"/usr/bin/foo\", \"--bar\"]"
    )]
    EmptyCommand,
    /// Bad environment variable name.
    #[error("`{0}` is not an environment variable name: use `[A-Za-z_][A-Za-z0-9_]*`")]
    EnvName(String),
    /// An environment value that cannot be one `Environment=` line.
    #[error("must not contain NUL or newline characters")]
    EnvValue,
    /// A working directory that is not an absolute path.
    #[error("`{0}` is not an absolute, normalised directory path like `/var/lib/foo` (no `.`, `..`, empty components, backslashes or control characters)")]
    WorkingDirectory(String),
    /// Not a systemd unit name.
    #[error("`{name}` is not a unit name: {hint}")]
    UnitName {
        /// The name.
        name: String,
        /// How to write it.
        hint: String,
    },
    /// A value that cannot be one line of a unit file.
    #[error("{0}")]
    UnitValue(&'static str),
    /// An empty schedule.
    #[error(
        "must be a systemd calendar expression like \"daily\" or \"*-*-* 03:00:00\", not empty"
    )]
    EmptySchedule,
    /// A scheduled service with a restart policy.
    #[error("a scheduled service runs once each time its timer fires, so it cannot be restarted: remove `restart` (a scheduled service defaults to \"no\") or `schedule`")]
    ScheduleRestart,
    /// Bad package name.
    #[error("`{0}` is not a Debian package name (lower-case letters, digits, `+-.`; at least 2 characters)")]
    PackageName(String),
    /// Bad kernel argument.
    #[error("`{arg}` {problem}")]
    CmdlineArg {
        /// The argument.
        arg: String,
        /// Why it is refused.
        problem: &'static str,
    },
    /// Bad config.txt line.
    #[error("{0}")]
    ConfigLine(&'static str),
    /// Bad overlay spec.
    #[error("`{0}` is not an overlay spec like `vc4-kms-v3d` or `dwc2,dr_mode=host`")]
    Overlay(String),
    /// Bad kernel module name.
    #[error(
        "`{0}` is not a kernel module name (letters, digits, `_` and `-`, e.g. `snd_bcm2835`)"
    )]
    KernelModule(String),
    /// A unit both enabled and disabled.
    #[error("`{0}` is also in systemd.enable; list it in one of the two")]
    EnabledAndDisabled(String),
    /// Zero timeout.
    #[error("must be at least 1 second")]
    Timeout,
    /// A board file breaks a rule.
    #[error("{0}")]
    Board(&'static str),
}

/// Collects issues while walking the config.
#[derive(Default)]
struct Issues(Vec<ValidationError>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, kind: ValidationErrorKind) {
        self.0.push(ValidationError {
            path: path.into(),
            kind,
        });
    }
}

/// The rules of an interface's addressing (`network.ethernet`, `network.wifi.ip`): DHCP, or a
/// static address with a gateway inside its subnet and DNS servers.
fn check_addressing(at: &str, eth: &Ethernet, issues: &mut Issues) {
    use ValidationErrorKind as K;
    for (i, dns) in eth.dns.iter().enumerate() {
        if dns.parse::<IpAddr>().is_err() {
            issues.push(format!("{at}.dns[{i}]"), K::IpAddress(dns.clone()));
        }
    }
    if eth.dhcp {
        if eth.address.is_some() {
            issues.push(format!("{at}.address"), K::StaticWithDhcp);
        }
        if eth.gateway.is_some() {
            issues.push(format!("{at}.gateway"), K::StaticWithDhcp);
        }
    } else {
        let cidr = match &eth.address {
            None => {
                issues.push(format!("{at}.address"), K::MissingStatic);
                None
            }
            Some(a) => {
                let parsed = rules::parse_cidr(a);
                if parsed.is_none() {
                    issues.push(format!("{at}.address"), K::Cidr(a.clone()));
                }
                parsed
            }
        };
        match &eth.gateway {
            None => issues.push(format!("{at}.gateway"), K::MissingStatic),
            Some(g) => match g.parse() {
                Err(_) => issues.push(format!("{at}.gateway"), K::IpAddress(g.clone())),
                Ok(gw) => {
                    if let Some((net, len)) = cidr {
                        if !rules::in_subnet(gw, net, len) {
                            issues.push(
                                format!("{at}.gateway"),
                                K::GatewayOutsideSubnet {
                                    gateway: g.clone(),
                                    address: eth.address.clone().unwrap_or_default(),
                                },
                            );
                        }
                    }
                }
            },
        }
        if eth.dns.is_empty() {
            issues.push(format!("{at}.dns"), K::MissingStatic);
        }
    }
}

/// The firmware ignores config.txt characters past this many.
const CONFIG_TXT_LINE_LIMIT: usize = 98;

impl HostConfig {
    /// Checks every rule without touching the file system; returns all broken rules at once.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut issues = Issues::default();
        use ValidationErrorKind as K;
        if self.board.trim().is_empty() {
            issues.push("board", K::EmptyBoard);
        }
        if !rules::is_hostname(&self.hostname) {
            issues.push("hostname", K::Hostname(self.hostname.clone()));
        }
        if !rules::is_timezone(&self.timezone) {
            issues.push("timezone", K::Timezone(self.timezone.clone()));
        }
        if let Some(l) = &self.locale {
            if !rules::is_locale(l) {
                issues.push("locale", K::Locale(l.clone()));
            }
        }
        if let Some(k) = &self.keyboard {
            if !rules::is_keymap(k) {
                issues.push("keyboard", K::Keymap(k.clone()));
            }
        }
        for (i, server) in self.time.servers.iter().enumerate() {
            if !rules::is_ntp_server(server) {
                issues.push(format!("time.servers[{i}]"), K::NtpServer(server.clone()));
            }
        }
        if !self.time.ntp && !self.time.servers.is_empty() {
            issues.push("time.servers", K::ServersWithoutNtp);
        }
        if self.generations_to_keep == 0 {
            issues.push("generations_to_keep", K::GenerationsToKeep);
        }
        check_users(&self.users, &mut issues);
        if self.ssh.port == 0 {
            issues.push("ssh.port", K::Port);
        }
        self.check_network(&mut issues);
        for (i, package) in self.packages.iter().enumerate() {
            if !rules::is_package_name(package) {
                issues.push(format!("packages[{i}]"), K::PackageName(package.clone()));
            }
        }
        self.check_files_and_secrets(&mut issues);
        self.check_services(&mut issues);
        self.check_boot(&mut issues);
        self.check_health(&mut issues);
        self.check_systemd(&mut issues);
        if issues.0.is_empty() {
            Ok(())
        } else {
            Err(issues.0)
        }
    }

    fn check_network(&self, issues: &mut Issues) {
        use ValidationErrorKind as K;
        check_addressing("network.ethernet", &self.network.ethernet, issues);
        if let Some(wifi) = &self.network.wifi {
            if !rules::is_country(&wifi.country) {
                issues.push("network.wifi.country", K::Country(wifi.country.clone()));
            }
            if wifi.networks.is_empty() {
                issues.push("network.wifi.networks", K::NoWifiNetworks);
            }
            check_addressing("network.wifi.ip", &wifi.ip, issues);
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, n) in wifi.networks.iter().enumerate() {
                let at = format!("network.wifi.networks[{i}]");
                if !(1..=32).contains(&n.ssid.len()) {
                    issues.push(format!("{at}.ssid"), K::Ssid(n.ssid.len()));
                }
                if let Some(first) = seen.insert(n.ssid.as_str(), i) {
                    issues.push(format!("{at}.ssid"), K::DuplicateSsid(first));
                }
                match (&n.psk_file, n.security) {
                    (Some(p), _) if p.as_os_str().is_empty() => {
                        issues.push(format!("{at}.psk_file"), K::EmptyPath)
                    }
                    (Some(_), WifiSecurity::Open) => {
                        issues.push(format!("{at}.psk_file"), K::PskForOpen)
                    }
                    (None, WifiSecurity::Wpa2 | WifiSecurity::Wpa3) => {
                        issues.push(format!("{at}.psk_file"), K::MissingPsk)
                    }
                    _ => {}
                }
            }
        }
    }

    fn check_files_and_secrets(&self, issues: &mut Issues) {
        use ValidationErrorKind as K;
        let mut targets: HashMap<String, String> = HashMap::new();
        let users = &self.users;
        let mut check_target = |issues: &mut Issues, field: String, target: &str| {
            if let Some(problem) = rules::target_path_problem(target) {
                let path = target.to_owned();
                issues.push(field, K::TargetPath { path, problem });
            } else if let Some(i) = managed_user_path(users, target) {
                let (path, at) = (target.to_owned(), format!("users[{i}]"));
                issues.push(field, K::ManagedUserPath { path, at });
            } else if let Some(other) = targets.get(target) {
                let (path, other) = (target.to_owned(), other.clone());
                issues.push(field, K::DuplicateTarget { path, other });
            } else {
                targets.insert(target.to_owned(), field);
            }
        };
        for (i, file) in self.files.iter().enumerate() {
            let at = format!("files[{i}]");
            check_target(issues, format!("{at}.path"), &file.path);
            match (&file.content, &file.source) {
                (Some(_), Some(_)) => issues.push(at.clone(), K::ContentAndSource),
                (None, None) => issues.push(at.clone(), K::NoContent),
                (None, Some(source)) if source.as_os_str().is_empty() => {
                    issues.push(format!("{at}.source"), K::EmptyPath)
                }
                _ => {}
            }
            match rules::parse_mode(&file.mode) {
                None => issues.push(format!("{at}.mode"), K::Mode(file.mode.clone())),
                Some(mode) if mode & 0o004 == 0 => issues.push(
                    format!("{at}.mode"),
                    K::FileNotWorldReadable(file.mode.clone()),
                ),
                Some(_) => {}
            }
            check_owner(issues, &at, &file.owner, &file.group);
            if let Some(user) = home_owner(&self.users, &file.path) {
                if file.owner != user.name {
                    let (path, user) = (file.path.clone(), user.name.clone());
                    issues.push(format!("{at}.owner"), K::FileInHome { path, user });
                }
            }
        }
        for (i, secret) in self.secrets.iter().enumerate() {
            let at = format!("secrets[{i}]");
            check_target(issues, format!("{at}.target"), &secret.target);
            if secret.source.as_os_str().is_empty() {
                issues.push(format!("{at}.source"), K::EmptyPath);
            }
            match rules::parse_mode(&secret.mode) {
                None => issues.push(format!("{at}.mode"), K::Mode(secret.mode.clone())),
                Some(mode) if mode & 0o007 != 0 => issues.push(
                    format!("{at}.mode"),
                    K::SecretWorldReadable(secret.mode.clone()),
                ),
                Some(_) => {}
            }
            check_owner(issues, &at, &secret.owner, &secret.group);
        }
    }

    fn check_services(&self, issues: &mut Issues) {
        use ValidationErrorKind as K;
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for (i, service) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            if !rules::is_service_name(&service.name) {
                issues.push(format!("{at}.name"), K::ServiceName(service.name.clone()));
            } else if seen.insert(&service.name, ()).is_some() {
                issues.push(
                    format!("{at}.name"),
                    K::DuplicateService(service.name.clone()),
                );
            }
            if service.command.first().is_none_or(|p| p.is_empty()) {
                issues.push(format!("{at}.command"), K::EmptyCommand);
            }
            if !rules::is_account_name(&service.user) {
                issues.push(format!("{at}.user"), K::AccountName(service.user.clone()));
            }
            check_service_unit(service, &at, issues);
        }
    }

    fn check_boot(&self, issues: &mut Issues) {
        use ValidationErrorKind as K;
        for (i, arg) in self.boot.cmdline.iter().enumerate() {
            let problem = if arg.is_empty() || arg.chars().any(char::is_whitespace) {
                Some("must be one non-empty argument without spaces")
            } else if ["root=", "init="].iter().any(|p| arg.starts_with(p)) {
                Some("is set by pideploy for each generation and cannot be overridden")
            } else {
                None
            };
            if let Some(problem) = problem {
                issues.push(
                    format!("boot.cmdline[{i}]"),
                    K::CmdlineArg {
                        arg: arg.clone(),
                        problem,
                    },
                );
            }
        }
        for (i, line) in self.boot.config.iter().enumerate() {
            let problem = if line.contains('\n') || line.contains('\r') {
                Some("must be a single line")
            } else if line.len() > CONFIG_TXT_LINE_LIMIT {
                Some("is longer than 98 characters; the firmware ignores the rest")
            } else if line.trim().is_empty() {
                Some("must not be empty")
            } else {
                None
            };
            if let Some(problem) = problem {
                issues.push(format!("boot.config[{i}]"), K::ConfigLine(problem));
            }
        }
        for (i, overlay) in self.boot.dtoverlays.iter().enumerate() {
            let too_long = "dtoverlay=".len() + overlay.len() > CONFIG_TXT_LINE_LIMIT;
            if !rules::is_overlay(overlay) || too_long {
                issues.push(format!("boot.dtoverlays[{i}]"), K::Overlay(overlay.clone()));
            }
        }
        for (i, m) in self.boot.kernel_modules.iter().enumerate() {
            if !rules::is_module_name(m) {
                issues.push(
                    format!("boot.kernel_modules[{i}]"),
                    K::KernelModule(m.clone()),
                );
            }
        }
    }

    fn check_systemd(&self, issues: &mut Issues) {
        use ValidationErrorKind as K;
        for (field, list) in [
            ("systemd.enable", &self.systemd.enable),
            ("systemd.disable", &self.systemd.disable),
        ] {
            for (i, u) in list.iter().enumerate() {
                if rules::unit_name_kind(u).is_none() {
                    issues.push(
                        format!("{field}[{i}]"),
                        K::UnitName {
                            name: u.clone(),
                            hint: "write it with its type, e.g. `nginx.service` or `fstrim.timer`"
                                .into(),
                        },
                    );
                }
            }
        }
        for (i, u) in self.systemd.disable.iter().enumerate() {
            if self.systemd.enable.contains(u) {
                issues.push(
                    format!("systemd.disable[{i}]"),
                    K::EnabledAndDisabled(u.clone()),
                );
            }
        }
    }

    fn check_health(&self, issues: &mut Issues) {
        use ValidationErrorKind as K;
        for (i, command) in self.health.commands.iter().enumerate() {
            if command.first().is_none_or(|p| p.is_empty()) {
                issues.push(format!("health.commands[{i}]"), K::EmptyCommand);
            }
        }
        for (i, port) in self.health.tcp_ports.iter().enumerate() {
            if *port == 0 {
                issues.push(format!("health.tcp_ports[{i}]"), K::Port);
            }
        }
        if self.health.timeout_secs == 0 {
            issues.push("health.timeout_secs", K::Timeout);
        }
    }
}

fn check_users(users: &[User], issues: &mut Issues) {
    use ValidationErrorKind as K;
    let mut names: HashMap<&str, ()> = HashMap::new();
    let mut uids: HashMap<u32, String> = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let at = format!("users[{i}]");
        if user.name == "root" {
            issues.push(format!("{at}.name"), K::RootUser);
        } else if !rules::is_account_name(&user.name) {
            issues.push(format!("{at}.name"), K::AccountName(user.name.clone()));
        } else if names.insert(&user.name, ()).is_some() {
            issues.push(format!("{at}.name"), K::DuplicateUser(user.name.clone()));
        }
        if !(1000..=60000).contains(&user.uid) {
            issues.push(format!("{at}.uid"), K::UidOutOfRange(user.uid));
        } else if let Some(other) = uids.get(&user.uid) {
            issues.push(
                format!("{at}.uid"),
                K::DuplicateUid {
                    uid: user.uid,
                    other: other.clone(),
                },
            );
        } else {
            uids.insert(user.uid, at.clone());
        }
        for (g, group) in user.groups.iter().enumerate() {
            if !rules::is_account_name(group) {
                issues.push(format!("{at}.groups[{g}]"), K::AccountName(group.clone()));
            }
        }
        if let Some(shell) = &user.shell {
            if rules::absolute_path_problem(shell).is_some() {
                issues.push(format!("{at}.shell"), K::Shell(shell.clone()));
            }
        }
        for (k, key) in user.ssh_authorized_keys.iter().enumerate() {
            if !rules::is_ssh_public_key(key) {
                issues.push(format!("{at}.ssh_authorized_keys[{k}]"), K::SshKey);
            }
        }
    }
}

/// The settings that go into a service's systemd units.
fn check_service_unit(service: &Service, at: &str, issues: &mut Issues) {
    use ValidationErrorKind as K;
    if let Some(group) = &service.group {
        if !rules::is_account_name(group) {
            issues.push(format!("{at}.group"), K::AccountName(group.clone()));
        }
    }
    if let Some(dir) = &service.working_directory {
        if !is_directory_path(dir) {
            issues.push(
                format!("{at}.working_directory"),
                K::WorkingDirectory(dir.clone()),
            );
        }
    }
    for (key, value) in &service.environment {
        if !rules::is_env_name(key) {
            issues.push(format!("{at}.environment"), K::EnvName(key.clone()));
        }
        if value.contains(['\0', '\n', '\r']) {
            issues.push(format!("{at}.environment.{key}"), K::EnvValue);
        }
    }
    for (field, names) in [
        ("after", &service.after),
        ("wants", &service.wants),
        ("requires", &service.requires),
    ] {
        for (j, name) in names.iter().enumerate() {
            if let Some(hint) = unit_name_hint(name) {
                let name = name.clone();
                issues.push(format!("{at}.{field}[{j}]"), K::UnitName { name, hint });
            }
        }
    }
    if let Some(problem) = service
        .description
        .as_deref()
        .and_then(rules::unit_value_problem)
    {
        issues.push(format!("{at}.description"), K::UnitValue(problem));
    }
    if let Some(schedule) = &service.schedule {
        if schedule.trim().is_empty() {
            issues.push(format!("{at}.schedule"), K::EmptySchedule);
        } else if let Some(problem) = rules::unit_value_problem(schedule) {
            issues.push(format!("{at}.schedule"), K::UnitValue(problem));
        }
        if service.restart() != Restart::No {
            issues.push(format!("{at}.restart"), K::ScheduleRestart);
        }
    }
}

/// Why a dependency is not a unit name one can depend on, as advice; `None` if it is one.
fn unit_name_hint(name: &str) -> Option<String> {
    match rules::unit_name_kind(name) {
        Some(UnitNameKind::Plain | UnitNameKind::Instance) => None,
        Some(UnitNameKind::Template) => Some(
            "a template cannot be depended on; name an instance, like `getty@tty1.service`".into(),
        ),
        // A bare name is ambiguous (systemd itself would not guess), so the fix is spelt out.
        None if rules::unit_name_kind(&format!("{name}.target")).is_some() => Some(format!(
            "give the full name with its type, e.g. write `{name}.target` or `{name}.service`"
        )),
        None => Some(
            "use letters, digits and `:-_.\\@` and a type suffix, like `network-online.target`"
                .into(),
        ),
    }
}

/// An absolute directory path systemd takes back unchanged: `/`, or `/`-separated components
/// that are not empty, `.` or `..`, with nothing that would break a unit file line.
fn is_directory_path(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('/') else {
        return false;
    };
    let components_ok = rest.is_empty()
        || rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    components_ok && !s.contains('\\') && rules::unit_value_problem(s).is_none()
}

/// The configured user whose home directory holds `path` (`/home/NAME/...`).
fn home_owner<'a>(users: &'a [User], path: &str) -> Option<&'a User> {
    let rest = path.strip_prefix("/home/")?;
    let (name, _) = rest.split_once('/')?;
    users.iter().find(|u| u.name == name)
}

/// Index of the user whose home, `.ssh` or `authorized_keys` is `path`: activation writes those.
fn managed_user_path(users: &[User], path: &str) -> Option<usize> {
    users.iter().position(|u| {
        let home = format!("/home/{}", u.name);
        path == home
            || path == format!("{home}/.ssh")
            || path == format!("{home}/.ssh/authorized_keys")
    })
}

fn check_owner(issues: &mut Issues, at: &str, owner: &str, group: &str) {
    if !rules::is_account_name(owner) {
        issues.push(
            format!("{at}.owner"),
            ValidationErrorKind::AccountName(owner.to_owned()),
        );
    }
    if !rules::is_account_name(group) {
        issues.push(
            format!("{at}.group"),
            ValidationErrorKind::AccountName(group.to_owned()),
        );
    }
}
