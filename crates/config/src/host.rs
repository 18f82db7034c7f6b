//! The host config (`pi.toml`): its schema, defaults, and loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{parse_error, ConfigError};

/// Generations kept on the target when the config does not say.
pub const DEFAULT_GENERATIONS_TO_KEEP: u32 = 5;

/// The whole declarative description of one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Board name (`rpi5`, `qemu-aarch64`) or path to a board file (a relative path is resolved
    /// against the config's directory, so the value can go straight to `Board::load`).
    #[serde(default = "default_board")]
    pub board: String,
    /// Host name (one RFC 1123 label).
    pub hostname: String,
    /// Time zone name, e.g. `UTC` or `Europe/Berlin`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How many generations the target keeps (at least 1).
    #[serde(default = "default_generations")]
    pub generations_to_keep: u32,
    /// Login users (root is implicit and cannot be configured here).
    #[serde(default)]
    pub users: Vec<User>,
    /// SSH server settings.
    #[serde(default)]
    pub ssh: Ssh,
    /// Wired and wireless networking.
    #[serde(default)]
    pub network: Network,
    /// Extra Debian packages installed on top of the board's base packages.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Files placed into the system.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Long-running services.
    #[serde(default)]
    pub services: Vec<Service>,
    /// Extra boot settings (cmdline.txt / config.txt).
    #[serde(default)]
    pub boot: BootExtras,
    /// Secrets copied beside (never into) the store at activation.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Health checks that must pass before a new generation is confirmed.
    #[serde(default)]
    pub health: Health,
    /// Which units of the packages run. Left out of the serialised form when empty, so configs
    /// without it keep their digests.
    #[serde(default, skip_serializing_if = "Systemd::is_empty")]
    pub systemd: Systemd,
    /// Clock setting (NTP). Left out of the serialised form while default, like `systemd`.
    #[serde(default, skip_serializing_if = "Time::is_default")]
    pub time: Time,
    /// Locale for programs, e.g. `de_DE.UTF-8` (`LANG`); C.UTF-8 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Console keymap, e.g. `de` or `fr` (the keymaps of Debian's console-data); US when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<String>,
}

/// Keeping the clock right: an NTP client (systemd-timesyncd) is on unless turned off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Time {
    /// Run the NTP client.
    pub ntp: bool,
    /// NTP servers (host names or addresses); Debian's pool (`N.debian.pool.ntp.org`) when empty.
    pub servers: Vec<String>,
}

impl Default for Time {
    fn default() -> Self {
        Self {
            ntp: true,
            servers: Vec::new(),
        }
    }
}

impl Time {
    /// Nothing changed from the default.
    pub fn is_default(&self) -> bool {
        *self == Time::default()
    }
}

/// Units of the installed packages to run or not, beyond what the packages enable themselves (a
/// package's units start as they would on Debian: the ones its maintainer script enables).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Systemd {
    /// Units to enable (their `[Install]` section says where), e.g. `"nginx.service"`.
    pub enable: Vec<String>,
    /// Units a package enables that this machine does not run, e.g. `"chrony.service"`.
    pub disable: Vec<String>,
}

impl Systemd {
    /// Nothing asked.
    pub fn is_empty(&self) -> bool {
        self.enable.is_empty() && self.disable.is_empty()
    }
}

/// One login user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name, `[a-z_][a-z0-9_-]*`.
    pub name: String,
    /// Numeric id, 1000..=60000, unique.
    pub uid: u32,
    /// Supplementary groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether the user may run anything with sudo (without a password).
    #[serde(default)]
    pub sudo: bool,
    /// Login shell (absolute path); the system default when absent.
    #[serde(default)]
    pub shell: Option<String>,
    /// OpenSSH public key lines.
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
}

/// SSH server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ssh {
    /// Run an SSH server.
    pub enable: bool,
    /// TCP port.
    pub port: u16,
    /// Allow password logins (off: keys only).
    pub password_authentication: bool,
    /// Allow logging in as root.
    pub permit_root_login: bool,
}

impl Default for Ssh {
    fn default() -> Self {
        Self {
            enable: true,
            port: 22,
            password_authentication: false,
            permit_root_login: false,
        }
    }
}

/// Networking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// The wired interface (eth0).
    pub ethernet: Ethernet,
    /// Wireless, if wanted.
    pub wifi: Option<Wifi>,
    /// Answer `<hostname>.local` and announce the SSH server over mDNS (avahi-daemon), as
    /// Raspberry Pi OS does. Left out of the serialised form while on, so configs keep their digests.
    #[serde(skip_serializing_if = "is_true")]
    pub mdns: bool,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            ethernet: Ethernet::default(),
            wifi: None,
            mdns: true,
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Wired interface settings: DHCP, or a static address with gateway and DNS servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ethernet {
    /// Use DHCP (then `address` and `gateway` must be absent).
    pub dhcp: bool,
    /// Static address in CIDR form, `a.b.c.d/len`.
    pub address: Option<String>,
    /// Default gateway for a static address.
    pub gateway: Option<String>,
    /// DNS servers for a static address (optional extra servers with DHCP).
    pub dns: Vec<String>,
}

impl Default for Ethernet {
    fn default() -> Self {
        Self {
            dhcp: true,
            address: None,
            gateway: None,
            dns: Vec::new(),
        }
    }
}

/// Wireless settings for wlan0: the regulatory domain, the networks to join, and the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wifi {
    /// Regulatory domain, two upper-case letters (`DE`, `GB`, `US`): which channels and powers
    /// the radio may use.
    pub country: String,
    /// Networks to join; the highest `priority` in range wins.
    pub networks: Vec<WifiNetwork>,
    /// wlan0's address: DHCP (the default) or static, with the same fields as `[network.ethernet]`.
    #[serde(default)]
    pub ip: Ethernet,
}

/// One wireless network. Its passphrase is a secret: only ever read from `psk_file`, and sent like
/// `[[secrets]]` (never in the store or argv).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiNetwork {
    /// Network name, 1..=32 bytes.
    pub ssid: String,
    /// Local file holding the passphrase, 8..=63 printable ASCII characters (resolved against the
    /// config's directory); none for an open network.
    #[serde(default)]
    pub psk_file: Option<PathBuf>,
    /// The network does not broadcast its name (probe for it by name).
    #[serde(default)]
    pub hidden: bool,
    /// Preference among networks in range (higher first).
    #[serde(default)]
    pub priority: u32,
    /// `wpa2` (WPA2-Personal, also joins WPA2/WPA3 transition networks), `wpa3` (SAE only) or `open`.
    #[serde(default)]
    pub security: WifiSecurity,
}

/// How a wireless network authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WifiSecurity {
    /// WPA2-Personal (pre-shared key).
    #[default]
    Wpa2,
    /// WPA3-Personal (SAE), with management frame protection required.
    Wpa3,
    /// No encryption.
    Open,
}

/// The directory of the Wi-Fi passphrases on the target: root's, 0700.
pub const WIFI_PSK_DIR: &str = "/var/lib/pideploy/wifi";

/// Where wireless network `index`'s passphrase lives on the target. Here because both the image
/// builder and the deployer's secret set write it, and the generated Wi-Fi unit reads it.
pub fn wifi_psk_path(index: usize) -> String {
    format!("{WIFI_PSK_DIR}/psk-{index}")
}

/// A file placed into the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute target path on the machine.
    pub path: String,
    /// Inline content (exactly one of `content` and `source`).
    #[serde(default)]
    pub content: Option<String>,
    /// Local file to copy (resolved against the config's directory).
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// Octal mode string, e.g. `"0644"`.
    #[serde(default = "default_file_mode")]
    pub mode: String,
    /// Owning user.
    #[serde(default = "root")]
    pub owner: String,
    /// Owning group.
    #[serde(default = "root")]
    pub group: String,
}

/// When a service is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Always restart.
    Always,
    /// Restart only after a non-zero exit or a signal.
    OnFailure,
    /// Never restart.
    No,
}

/// A service: long-running, or run on a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Name, `[a-z0-9][a-z0-9_.-]*`.
    pub name: String,
    /// Program and arguments (argv, no shell).
    pub command: Vec<String>,
    /// Restart policy as written; [`Service::restart`] is the one in effect.
    #[serde(default, rename = "restart", skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<Restart>,
    /// User the service runs as.
    #[serde(default = "root")]
    pub user: String,
    // The fields below came with systemd units. Each is left out of the serialised form while
    // unset, so configs without them keep their digests.
    /// One-line description (`Description=`); the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Group the service runs as (`Group=`); the user's primary group when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Absolute working directory (`WorkingDirectory=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Environment variables, `NAME = "value"` (`Environment=`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Units this one starts after (`After=`), full names like `network-online.target`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Units started along with this one (`Wants=`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wants: Vec<String>,
    /// Units this one needs (`Requires=`): it stops when they do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// A systemd calendar expression (`OnCalendar=`, e.g. `daily` or `*-*-* 03:00:00`): the
    /// service becomes a oneshot run by a timer instead of a long-running one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// Extra boot settings added to the board's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootExtras {
    /// Extra kernel command line arguments.
    pub cmdline: Vec<String>,
    /// Extra config.txt lines.
    pub config: Vec<String>,
    /// Device tree overlays (`name` or `name,param=value`), written as `dtoverlay=` lines.
    pub dtoverlays: Vec<String>,
    /// Kernel modules loaded at every boot (with their dependencies), besides the ones the present
    /// devices ask for. Left out of the serialised form when empty, so configs without it keep
    /// their digests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_modules: Vec<String>,
}

/// A secret: copied from the deploying machine to the target at activation, never into the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// Local file (resolved against the config's directory).
    pub source: PathBuf,
    /// Absolute target path on the machine.
    pub target: String,
    /// Octal mode string; never readable by others.
    #[serde(default = "default_secret_mode")]
    pub mode: String,
    /// Owning user.
    #[serde(default = "root")]
    pub owner: String,
    /// Owning group.
    #[serde(default = "root")]
    pub group: String,
}

/// Health checks run on the target after activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    /// Commands (argv) that must exit 0.
    pub commands: Vec<Vec<String>>,
    /// TCP ports that must accept connections on 127.0.0.1.
    pub tcp_ports: Vec<u16>,
    /// How long all checks together may take.
    pub timeout_secs: u32,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            commands: Vec::new(),
            tcp_ports: Vec::new(),
            timeout_secs: 60,
        }
    }
}

fn default_board() -> String {
    "rpi5".to_owned()
}
fn default_timezone() -> String {
    "UTC".to_owned()
}
fn default_generations() -> u32 {
    DEFAULT_GENERATIONS_TO_KEEP
}
fn default_file_mode() -> String {
    "0644".to_owned()
}
fn default_secret_mode() -> String {
    "0400".to_owned()
}
fn root() -> String {
    "root".to_owned()
}

impl HostConfig {
    /// Parses and validates; `origin` names the file in errors. Relative paths (file sources,
    /// secrets, psk_file) are resolved against `base_dir`.
    pub fn from_toml_str(text: &str, origin: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let mut config: HostConfig =
            toml::from_str(text).map_err(|e| parse_error(origin, text, &e))?;
        config.resolve_paths(base_dir);
        config.validate().map_err(|issues| ConfigError::Invalid {
            origin: origin.to_owned(),
            issues,
        })?;
        Ok(config)
    }

    /// Reads, parses and validates a config file; relative paths in it are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::error::read_config_text(path)?;
        let base_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Self::from_toml_str(&text, &path.display().to_string(), &base_dir)
    }

    /// The embedded default (hostname "pi", user "pi" uid 1000 with sudo, DHCP on eth0, ssh on
    /// port 22, no passwords), adding the given public keys. Board given by the caller.
    pub fn default_for(board: &str, authorized_keys: Vec<String>) -> Self {
        HostConfig {
            board: board.to_owned(),
            hostname: "pi".to_owned(),
            timezone: default_timezone(),
            generations_to_keep: DEFAULT_GENERATIONS_TO_KEEP,
            users: vec![User {
                name: "pi".to_owned(),
                uid: 1000,
                groups: Vec::new(),
                sudo: true,
                shell: None,
                ssh_authorized_keys: authorized_keys
                    .into_iter()
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect(),
            }],
            ssh: Ssh::default(),
            network: Network::default(),
            packages: Vec::new(),
            files: Vec::new(),
            services: Vec::new(),
            boot: BootExtras::default(),
            secrets: Vec::new(),
            health: Health::default(),
            systemd: Systemd::default(),
            time: Time::default(),
            locale: None,
            keyboard: None,
        }
    }

    /// Every local path the config refers to (file sources, secrets, the wifi psk file).
    pub fn local_paths(&self) -> Vec<&Path> {
        let files = self.files.iter().filter_map(|f| f.source.as_deref());
        let secrets = self.secrets.iter().map(|s| s.source.as_path());
        let psk = self
            .network
            .wifi
            .iter()
            .flat_map(|w| &w.networks)
            .filter_map(|n| n.psk_file.as_deref());
        files.chain(secrets).chain(psk).collect()
    }

    fn resolve_paths(&mut self, base_dir: &Path) {
        if crate::board::is_board_path(&self.board) && Path::new(&self.board).is_relative() {
            self.board = base_dir.join(&self.board).display().to_string();
        }
        let resolve = |p: &mut PathBuf| {
            // An empty path stays empty so validation can name it instead of it silently meaning `base_dir`.
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base_dir.join(&*p);
            }
        };
        for file in &mut self.files {
            if let Some(source) = &mut file.source {
                resolve(source);
            }
        }
        for secret in &mut self.secrets {
            resolve(&mut secret.source);
        }
        if let Some(wifi) = &mut self.network.wifi {
            for psk in wifi.networks.iter_mut().filter_map(|n| n.psk_file.as_mut()) {
                resolve(psk);
            }
        }
    }
}

impl Service {
    /// The restart policy in effect: as written, or else `on-failure` for a long-running service
    /// and `no` for a scheduled one (its timer runs it again).
    pub fn restart(&self) -> Restart {
        self.restart_policy.unwrap_or(if self.schedule.is_some() {
            Restart::No
        } else {
            Restart::OnFailure
        })
    }
}
