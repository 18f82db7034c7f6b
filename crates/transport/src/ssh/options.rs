//! What the user asked for (`SshOptions`) and what it means once ~/.ssh/config is applied
//! (`Resolved`). Everything here is pure apart from reading the config file.

use std::fs::File;
use std::io::BufReader;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use ssh2_config::{ParseRule, SshConfig};

use crate::TransportError;

/// How to reach a target over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// Host name, address or `~/.ssh/config` Host alias.
    pub host: String,
    /// Login name; falls back to the config's `User`, then the local user name.
    pub user: Option<String>,
    /// TCP port; falls back to the config's `Port`, then 22.
    pub port: Option<u16>,
    /// Private key files tried first, before the config's `IdentityFile`s and the default keys
    /// (for jump hosts as well as the target).
    pub identities: Vec<PathBuf>,
    /// known_hosts file; default `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Accept and record the host key of a host not yet in known_hosts, jump hosts included (a
    /// changed key is never accepted).
    pub accept_new: bool,
    /// ssh config file; default `~/.ssh/config` if present. A file named here must exist.
    /// Jump hosts named by `ProxyJump` are looked up in it too.
    pub ssh_config: Option<PathBuf>,
    /// Limit for the TCP connect, and for every blocking step of the protocol after it.
    pub connect_timeout: Duration,
    /// After this long without traffic during a command, the server is asked for a sign of life;
    /// no answer within `connect_timeout` means the connection is dead.
    pub keepalive: Duration,
    /// Passphrase for encrypted identity files.
    pub passphrase: Option<String>,
}

impl SshOptions {
    /// Options for `host` with every other setting at its default.
    pub fn new(host: impl Into<String>) -> Self {
        SshOptions {
            host: host.into(),
            user: None,
            port: None,
            identities: Vec::new(),
            known_hosts: None,
            accept_new: false,
            ssh_config: None,
            connect_timeout: Duration::from_secs(15),
            keepalive: Duration::from_secs(5),
            passphrase: None,
        }
    }

    /// parses "user@host[:port]" or "host" (an IPv6 address with a port is written `[addr]:port`).
    pub fn parse_target(s: &str) -> Result<Self, TransportError> {
        let bad = |reason: &str| TransportError::InvalidTarget {
            target: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace"));
        }
        let (user, rest) = match s.split_once('@') {
            Some((u, r)) => {
                if u.is_empty() {
                    return Err(bad("the user name before '@' is empty"));
                }
                if r.contains('@') {
                    return Err(bad("it contains more than one '@'"));
                }
                (Some(u.to_string()), r)
            }
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("'[' without a closing ']'"))?;
            match after {
                "" => (addr, None),
                _ => match after.strip_prefix(':') {
                    Some(p) => (addr, Some(p)),
                    None => return Err(bad("expected ':port' after ']'")),
                },
            }
        } else {
            match rest.matches(':').count() {
                0 => (rest, None),
                1 => rest
                    .split_once(':')
                    .map(|(h, p)| (h, Some(p)))
                    .expect("one colon"),
                // A bare IPv6 address: the colons belong to it.
                _ => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host name is empty"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad(&format!("port {p:?} is not a number from 1 to 65535"))),
            },
        };
        let mut o = SshOptions::new(host);
        o.user = user;
        o.port = port;
        Ok(o)
    }
}

impl Default for SshOptions {
    /// Default settings with an empty host: set `host` before connecting.
    fn default() -> Self {
        SshOptions::new("")
    }
}

/// One identity file to try, and whether the user named it (then it must exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub path: PathBuf,
    pub required: bool,
}

/// The connection parameters after the ssh config has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The name the user gave (maybe a Host alias); used in messages.
    pub alias: String,
    /// What is actually connected to and looked up in known_hosts.
    pub hostname: String,
    pub user: String,
    pub port: u16,
    pub identities: Vec<Identity>,
    pub known_hosts: PathBuf,
    /// ProxyJump, unless absent or `none`.
    pub proxy_jump: Option<String>,
}

impl Resolved {
    /// `user@alias:port`, the way the target is shown to people.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.alias, self.port)
    }

    /// `alias (hostname:port)`, the way a jump host is named in messages: the name from the
    /// config and where it actually led.
    pub fn hop_name(&self) -> String {
        let address = if self.hostname.contains(':') {
            format!("[{}]:{}", self.hostname, self.port)
        } else {
            format!("{}:{}", self.hostname, self.port)
        };
        if self.alias == self.hostname {
            address
        } else {
            format!("{} ({address})", self.alias)
        }
    }

    /// The host as written in known_hosts: `host` on port 22, `[host]:port` elsewhere (OpenSSH's rule).
    pub fn known_hosts_name(&self) -> String {
        super::known_hosts_name(&self.hostname, self.port)
    }
}

/// Where defaults come from: the home directory and the local user name.
#[derive(Debug, Clone)]
pub(crate) struct Environment {
    pub home: Option<PathBuf>,
    pub local_user: Option<String>,
}

impl Environment {
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Environment {
            home: var("HOME").map(PathBuf::from),
            local_user: var("USER")
                .or_else(|| var("LOGNAME"))
                .and_then(|v| v.into_string().ok()),
        }
    }
}

const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// Applies the ssh config (if any) and the defaults to the options.
pub(crate) fn resolve(o: &SshOptions, env: &Environment) -> Result<Resolved, TransportError> {
    if o.host.is_empty() {
        return Err(TransportError::InvalidTarget {
            target: String::new(),
            reason: "no host given".into(),
        });
    }
    let config = load_config(o, env)?;
    let params = config.as_ref().map(|c| c.query(&o.host));

    let hostname = params
        .as_ref()
        .and_then(|p| p.host_name.as_deref())
        .map(|h| expand_host_tokens(h, &o.host))
        .unwrap_or_else(|| o.host.clone());
    let user = o
        .user
        .clone()
        .or_else(|| params.as_ref().and_then(|p| p.user.clone()))
        .or_else(|| env.local_user.clone())
        .ok_or_else(|| TransportError::InvalidTarget {
            target: o.host.clone(),
            reason: "no user name given and none is configured or known locally".into(),
        })?;
    let port = o
        .port
        .or_else(|| params.as_ref().and_then(|p| p.port))
        .unwrap_or(22);

    let mut identities: Vec<Identity> = o
        .identities
        .iter()
        .map(|p| Identity {
            path: p.clone(),
            required: true,
        })
        .collect();
    if let Some(files) = params.as_ref().and_then(|p| p.identity_file.as_ref()) {
        identities.extend(files.iter().map(|p| Identity {
            path: p.clone(),
            required: false,
        }));
    }
    if let Some(home) = &env.home {
        identities.extend(DEFAULT_KEYS.iter().map(|k| Identity {
            path: home.join(".ssh").join(k),
            required: false,
        }));
    }
    let mut seen = std::collections::HashSet::new();
    identities.retain(|i| seen.insert(i.path.clone()));

    let proxy_jump = params
        .as_ref()
        .and_then(|p| p.proxy_jump.as_ref())
        .map(|j| j.join(","))
        .filter(|j| !j.is_empty() && !j.eq_ignore_ascii_case("none"));

    let known_hosts = match (&o.known_hosts, &env.home) {
        (Some(p), _) => p.clone(),
        (None, Some(home)) => home.join(".ssh").join("known_hosts"),
        (None, None) => {
            return Err(TransportError::KnownHostsIo {
                what: "locating known_hosts",
                path: PathBuf::from("~/.ssh/known_hosts"),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "HOME is not set"),
            })
        }
    };

    Ok(Resolved {
        alias: o.host.clone(),
        hostname,
        user,
        port,
        identities,
        known_hosts,
        proxy_jump,
    })
}

fn load_config(o: &SshOptions, env: &Environment) -> Result<Option<SshConfig>, TransportError> {
    let path = match (&o.ssh_config, &env.home) {
        (Some(p), _) => p.clone(),
        (None, Some(home)) => {
            let p = home.join(".ssh").join("config");
            if !p.exists() {
                return Ok(None);
            }
            p
        }
        (None, None) => return Ok(None),
    };
    let err = |source| TransportError::SshConfig {
        path: path.clone(),
        source,
    };
    let file = File::open(&path).map_err(|e| err(ssh2_config::SshParserError::Io(e)))?;
    let mut parser = SshConfig::default();
    if let Some(home) = &env.home {
        parser = parser.home_dir(home);
    }
    // Options this transport does not use must not make a normal config unreadable.
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    parser
        .parse(&mut BufReader::new(file), rules)
        .map(Some)
        .map_err(err)
}

/// HostName may refer to the name given on the command line as `%h` (and to `%` as `%%`).
fn expand_host_tokens(template: &str, host: &str) -> String {
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(host),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Used by tests of the resolution rules.
#[cfg(test)]
pub(crate) fn resolve_with(
    o: &SshOptions,
    home: &Path,
    user: &str,
) -> Result<Resolved, TransportError> {
    resolve(
        o,
        &Environment {
            home: Some(home.to_path_buf()),
            local_user: Some(user.to_string()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let o = SshOptions::parse_target("pi@raspberrypi.local:2222").unwrap();
        assert_eq!(
            (o.user.as_deref(), o.host.as_str(), o.port),
            (Some("pi"), "raspberrypi.local", Some(2222))
        );
        let o = SshOptions::parse_target("mypi").unwrap();
        assert_eq!((o.user, o.host.as_str(), o.port), (None, "mypi", None));
        let o = SshOptions::parse_target("root@[fe80::1]:22").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("fe80::1", Some(22)));
        let o = SshOptions::parse_target("fe80::1").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("fe80::1", None));
        assert_eq!(o.connect_timeout, Duration::from_secs(15));
        assert_eq!(o.keepalive, Duration::from_secs(5));
    }

    #[test]
    fn rejects_bad_targets() {
        for bad in [
            "",
            "@host",
            "pi@",
            "pi@host:0",
            "pi@host:99999",
            "pi@host:x",
            "a b",
            "a@b@c",
            "[::1",
            "[::1]x",
        ] {
            let e = SshOptions::parse_target(bad).unwrap_err();
            assert!(
                matches!(e, TransportError::InvalidTarget { .. }),
                "{bad:?} gave {e}"
            );
        }
    }

    #[test]
    fn config_fills_in_what_the_target_leaves_open() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        std::fs::write(
            &cfg,
            "Host mypi\n  HostName 10.1.2.3\n  Port 2200\n  User pi\n  IdentityFile ~/.ssh/pi_key\n  ForwardX11 no\n\
             Host jump-*\n  HostName %h.example\n  ProxyJump bastion\n",
        )
        .unwrap();
        let mut o = SshOptions::new("mypi");
        o.ssh_config = Some(cfg.clone());
        o.identities = vec!["/keys/explicit".into()];
        let r = resolve_with(&o, dir.path(), "me").unwrap();
        assert_eq!(
            (r.hostname.as_str(), r.user.as_str(), r.port),
            ("10.1.2.3", "pi", 2200)
        );
        assert_eq!(r.known_hosts_name(), "[10.1.2.3]:2200");
        assert_eq!(r.describe(), "pi@mypi:2200");
        let paths: Vec<_> = r.identities.iter().map(|i| i.path.clone()).collect();
        assert_eq!(paths[0], PathBuf::from("/keys/explicit"));
        assert_eq!(paths[1], dir.path().join(".ssh/pi_key"));
        assert_eq!(paths[2], dir.path().join(".ssh/id_ed25519"));
        assert!(r.identities[0].required && !r.identities[1].required);
        assert_eq!(r.proxy_jump, None);

        // Explicit user and port win over the config.
        let mut o2 = SshOptions::parse_target("root@mypi:22").unwrap();
        o2.ssh_config = Some(cfg.clone());
        let r = resolve_with(&o2, dir.path(), "me").unwrap();
        assert_eq!(
            (r.user.as_str(), r.port, r.known_hosts_name().as_str()),
            ("root", 22, "10.1.2.3")
        );

        let mut o3 = SshOptions::new("jump-a");
        o3.ssh_config = Some(cfg);
        let r = resolve_with(&o3, dir.path(), "me").unwrap();
        assert_eq!(
            (r.hostname.as_str(), r.user.as_str()),
            ("jump-a.example", "me")
        );
        assert_eq!(r.proxy_jump.as_deref(), Some("bastion"));
    }

    #[test]
    fn a_named_config_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = SshOptions::new("h");
        o.ssh_config = Some(dir.path().join("missing"));
        assert!(matches!(
            resolve_with(&o, dir.path(), "me"),
            Err(TransportError::SshConfig { .. })
        ));
        // The default one may be absent.
        o.ssh_config = None;
        let r = resolve_with(&o, dir.path(), "me").unwrap();
        assert_eq!(r.known_hosts, dir.path().join(".ssh/known_hosts"));
    }
}
