//! The inventory file (`hosts.toml`): which hosts exist, how to reach each, which config each
//! runs, and the tags that group them.
//!
//! ```toml
//! [defaults]                      # optional; every host falls back to these
//! config = "pi.toml"              # host config (relative paths are from this file's directory)
//! identity = ["~/.ssh/id_ed25519"]
//! known_hosts = "known_hosts"
//!
//! [[host]]
//! name = "web-1"
//! target = "pi@10.0.0.11"         # `user@host[:port]`, or `local:DIR`
//! tags = ["web", "eu"]
//! config = "web.toml"             # overrides [defaults].config
//! root = "/mnt/card"              # apply under this directory on the target instead of `/`
//! ```
//!
//! Parsing is strict (unknown fields are refused) and every error names file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pideploy_config::line_col;
use pideploy_transport::SshOptions;
use serde::Deserialize;
use toml::Spanned;

/// Why an inventory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("reading inventory {path}: {source}; write one or pass --hosts FILE")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, does not fit the schema, or breaks a rule; with its position.
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        /// The file name as given.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// How to reach one host over SSH (each `None`/empty falls back to the command line's options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSettings {
    /// Identity files.
    pub identity: Vec<PathBuf>,
    /// known_hosts file.
    pub known_hosts: Option<PathBuf>,
    /// Trust an unknown host key on first use.
    pub accept_new: Option<bool>,
    /// Directory on the target to apply to instead of `/` (SSH targets only).
    pub root: Option<String>,
}

/// One host of the inventory, with the defaults applied and paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Unique name (what `--on` matches and what progress lines and the summary show).
    pub name: String,
    /// `user@host[:port]`, or `local:DIR` with DIR resolved against the inventory's directory.
    pub target: String,
    /// Host config file; `None` leaves it to the command line (`-c`, or the default config).
    pub config: Option<PathBuf>,
    /// Lock file; `None` means the default (next to the config).
    pub lock: Option<PathBuf>,
    /// SSH settings.
    pub ssh: SshSettings,
    /// Tags, in the order written.
    pub tags: Vec<String>,
}

/// A parsed inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// Where it came from, for messages.
    pub origin: String,
    /// The hosts, in file order.
    pub hosts: Vec<Host>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    config: Option<Spanned<String>>,
    lock: Option<Spanned<String>>,
    identity: Option<Vec<Spanned<String>>>,
    known_hosts: Option<Spanned<String>>,
    accept_new: Option<bool>,
    root: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    #[serde(alias = "address")]
    target: Spanned<String>,
    config: Option<Spanned<String>>,
    lock: Option<Spanned<String>>,
    identity: Option<Vec<Spanned<String>>>,
    known_hosts: Option<Spanned<String>>,
    accept_new: Option<bool>,
    root: Option<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    host: Vec<RawHost>,
}

/// Whether `s` is usable as a host name or tag: what a selection can name without quoting.
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parsing state: the text (for positions) and where relative paths start.
struct Parser<'a> {
    origin: &'a str,
    text: &'a str,
    dir: &'a Path,
    home: Option<&'a Path>,
}

impl Parser<'_> {
    fn err_at(&self, at: usize, message: impl Into<String>) -> InventoryError {
        let (line, column) = line_col(self.text, at);
        InventoryError::Parse {
            origin: self.origin.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A file path: `~/` is the home directory, a relative path is from the inventory's directory.
    fn path(&self, what: &str, s: &Spanned<String>) -> Result<PathBuf, InventoryError> {
        let v = s.get_ref();
        if v.is_empty() {
            return Err(self.err_at(s.span().start, format!("{what} is empty; give a path")));
        }
        if let Some(rest) = v.strip_prefix("~/") {
            return match self.home {
                Some(h) => Ok(h.join(rest)),
                None => Err(self.err_at(
                    s.span().start,
                    format!("{what} {v:?} starts with ~/ but HOME is not set; give a full path"),
                )),
            };
        }
        Ok(self.dir.join(v))
    }

    fn opt_path(
        &self,
        what: &str,
        s: &Option<Spanned<String>>,
    ) -> Result<Option<PathBuf>, InventoryError> {
        s.as_ref().map(|s| self.path(what, s)).transpose()
    }

    fn target(&self, t: &Spanned<String>) -> Result<String, InventoryError> {
        let v = t.get_ref();
        if let Some(dir) = v.strip_prefix("local:") {
            if dir.is_empty() {
                return Err(self.err_at(
                    t.span().start,
                    "target \"local:\" names no directory; write local:DIR",
                ));
            }
            return Ok(format!("local:{}", self.dir.join(dir).display()));
        }
        SshOptions::parse_target(v).map_err(|e| self.err_at(t.span().start, e.to_string()))?;
        Ok(v.clone())
    }

    fn root(&self, r: &Spanned<String>) -> Result<String, InventoryError> {
        let v = r.get_ref();
        if !v.starts_with('/') {
            return Err(self.err_at(
                r.span().start,
                format!("root {v:?} is not absolute; give a full path on the target"),
            ));
        }
        Ok(v.clone())
    }

    fn identities(&self, v: &[Spanned<String>]) -> Result<Vec<PathBuf>, InventoryError> {
        v.iter().map(|s| self.path("identity", s)).collect()
    }

    fn host(&self, d: &RawDefaults, h: &RawHost) -> Result<Host, InventoryError> {
        let name = h.name.get_ref();
        if !is_word(name) {
            return Err(self.err_at(
                h.name.span().start,
                format!("host name {name:?} may only use letters, digits, '-', '_' and '.'"),
            ));
        }
        let mut tags = Vec::new();
        for t in &h.tags {
            if !is_word(t.get_ref()) {
                return Err(self.err_at(
                    t.span().start,
                    format!(
                        "tag {:?} may only use letters, digits, '-', '_' and '.'",
                        t.get_ref()
                    ),
                ));
            }
            if !tags.contains(t.get_ref()) {
                tags.push(t.get_ref().clone());
            }
        }
        let target = self.target(&h.target)?;
        let local = target.starts_with("local:");
        let root = match (&h.root, local) {
            (Some(r), true) => {
                return Err(self.err_at(
                    r.span().start,
                    "root is for SSH targets; with local:DIR the directory is the root",
                ))
            }
            (Some(r), false) => Some(self.root(r)?),
            // A shared root is meant for the SSH hosts; a local target is its own root.
            (None, false) => d.root.as_ref().map(|r| self.root(r)).transpose()?,
            (None, true) => None,
        };
        let identity = match (&h.identity, &d.identity) {
            (Some(v), _) | (None, Some(v)) => self.identities(v)?,
            (None, None) => Vec::new(),
        };
        let known_hosts = match &h.known_hosts {
            Some(k) => Some(self.path("known_hosts", k)?),
            None => self.opt_path("known_hosts", &d.known_hosts)?,
        };
        let config = match &h.config {
            Some(c) => Some(self.path("config", c)?),
            None => self.opt_path("config", &d.config)?,
        };
        let lock = match &h.lock {
            Some(l) => Some(self.path("lock", l)?),
            None => self.opt_path("lock", &d.lock)?,
        };
        Ok(Host {
            name: name.clone(),
            target,
            config,
            lock,
            ssh: SshSettings {
                identity,
                known_hosts,
                accept_new: h.accept_new.or(d.accept_new),
                root,
            },
            tags,
        })
    }
}

impl Inventory {
    /// Reads and parses `path` (relative paths inside it are from its directory; `~/` from `home`).
    pub fn load(path: &Path, home: Option<&Path>) -> Result<Self, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Self::parse(&path.display().to_string(), &text, dir, home)
    }

    /// Parses inventory `text` named `origin`; relative paths are from `dir`, `~/` from `home`.
    pub fn parse(
        origin: &str,
        text: &str,
        dir: &Path,
        home: Option<&Path>,
    ) -> Result<Self, InventoryError> {
        let p = Parser {
            origin,
            text,
            dir,
            home,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            p.err_at(at, e.message().trim_end().replace('\n', " "))
        })?;
        if raw.host.is_empty() {
            return Err(p.err_at(
                0,
                "no hosts; add a [[host]] table with a name and a target for each machine",
            ));
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut hosts = Vec::with_capacity(raw.host.len());
        for h in &raw.host {
            let name = h.name.get_ref().as_str();
            if let Some(&first) = seen.get(name) {
                let (line, _) = line_col(text, first);
                return Err(p.err_at(
                    h.name.span().start,
                    format!(
                        "host name {name:?} is already used on line {line}; names must be unique"
                    ),
                ));
            }
            seen.insert(name, h.name.span().start);
            hosts.push(p.host(&raw.defaults, h)?);
        }
        Ok(Inventory {
            origin: origin.to_string(),
            hosts,
        })
    }

    /// Host names, in file order.
    pub fn names(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    /// Every tag used, sorted.
    pub fn tags(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self
            .hosts
            .iter()
            .flat_map(|h| h.tags.iter().map(String::as_str))
            .collect();
        set.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse(
            "hosts.toml",
            text,
            Path::new("/inv"),
            Some(Path::new("/home/me")),
        )
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const FULL: &str = r#"
[defaults]
config = "pi.toml"
identity = ["~/.ssh/id_ed25519"]
known_hosts = "kh"
root = "/srv/root"

[[host]]
name = "web-1"
target = "pi@10.0.0.11"
tags = ["web", "eu", "web"]

[[host]]
name = "web-2"
address = "root@[::1]:2222"
config = "/etc/web.toml"
identity = ["keys/web2"]
known_hosts = "/k2"
accept_new = true
root = "/mnt/card"
lock = "web.lock"

[[host]]
name = "bench.local"
target = "local:roots/bench"
"#;

    #[test]
    fn defaults_fill_in_and_paths_resolve_from_the_file() {
        let inv = parse(FULL).unwrap();
        assert_eq!(inv.names(), ["web-1", "web-2", "bench.local"]);
        assert_eq!(inv.tags(), ["eu", "web"]);
        let [w1, w2, b] = &inv.hosts[..] else {
            panic!()
        };
        assert_eq!(
            w1,
            &Host {
                name: "web-1".into(),
                target: "pi@10.0.0.11".into(),
                config: Some("/inv/pi.toml".into()),
                lock: None,
                ssh: SshSettings {
                    identity: vec!["/home/me/.ssh/id_ed25519".into()],
                    known_hosts: Some("/inv/kh".into()),
                    accept_new: None,
                    root: Some("/srv/root".into()),
                },
                tags: vec!["web".into(), "eu".into()],
            }
        );
        assert_eq!(w2.target, "root@[::1]:2222");
        assert_eq!(w2.config.as_deref(), Some(Path::new("/etc/web.toml")));
        assert_eq!(w2.lock.as_deref(), Some(Path::new("/inv/web.lock")));
        assert_eq!(
            w2.ssh,
            SshSettings {
                identity: vec!["/inv/keys/web2".into()],
                known_hosts: Some("/k2".into()),
                accept_new: Some(true),
                root: Some("/mnt/card".into()),
            }
        );
        // A local target is its own root: the shared root does not apply to it.
        assert_eq!(b.target, "local:/inv/roots/bench");
        assert_eq!(b.ssh.root, None);
        assert!(b.tags.is_empty());
    }

    #[test]
    fn unknown_fields_and_bad_types_name_their_position() {
        assert_eq!(
            err("[[host]]\nname = \"a\"\ntarget = \"h\"\nadress = \"x\"\n"),
            "hosts.toml:4:1: unknown field `adress`, expected one of `name`, `address`, `target`, \
             `config`, `lock`, `identity`, `known_hosts`, `accept_new`, `root`, `tags`"
        );
        assert!(
            err("[defaults]\nconfg = \"x\"\n").starts_with("hosts.toml:2:1: unknown field `confg`")
        );
        assert!(
            err("[[host]]\nname = 3\ntarget = \"h\"\n").starts_with("hosts.toml:2:8: invalid type")
        );
        assert!(
            err("[[host]]\nname = \"a\"\n").starts_with("hosts.toml:1:1: missing field `target`")
        );
        assert!(err("[[host]\n").starts_with("hosts.toml:1:"));
    }

    #[test]
    fn rules_are_checked_with_positions() {
        assert_eq!(
            err("[[host]]\nname = \"a\"\ntarget = \"h\"\n[[host]]\nname = \"a\"\ntarget = \"g\"\n"),
            "hosts.toml:5:8: host name \"a\" is already used on line 2; names must be unique"
        );
        assert_eq!(
            err("[[host]]\nname = \"web 1\"\ntarget = \"h\"\n"),
            "hosts.toml:2:8: host name \"web 1\" may only use letters, digits, '-', '_' and '.'"
        );
        assert!(
            err("[[host]]\nname = \"a\"\ntarget = \"h\"\ntags = [\"x\", \"@y\"]\n")
                .starts_with("hosts.toml:4:14: tag \"@y\"")
        );
        assert!(err("[[host]]\nname = \"a\"\ntarget = \"u@@h\"\n")
            .starts_with("hosts.toml:3:10: invalid ssh target \"u@@h\""));
        assert!(
            err("[[host]]\nname = \"a\"\ntarget = \"h\"\nroot = \"rel\"\n")
                .starts_with("hosts.toml:4:8: root \"rel\" is not absolute")
        );
        assert!(
            err("[[host]]\nname = \"a\"\ntarget = \"local:/x\"\nroot = \"/r\"\n")
                .starts_with("hosts.toml:4:8: root is for SSH targets")
        );
        assert!(err("[[host]]\nname = \"a\"\ntarget = \"local:\"\n")
            .starts_with("hosts.toml:3:10: target \"local:\" names no directory"));
        assert!(
            err("[[host]]\nname = \"a\"\ntarget = \"h\"\nconfig = \"\"\n")
                .starts_with("hosts.toml:4:10: config is empty")
        );
        assert!(err("# nothing\n").starts_with("hosts.toml:1:1: no hosts"));
    }

    #[test]
    fn home_is_needed_only_for_tilde_paths() {
        let text = "[[host]]\nname = \"a\"\ntarget = \"h\"\nidentity = [\"~/.ssh/k\"]\n";
        let e = Inventory::parse("h.toml", text, Path::new("."), None).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("h.toml:4:13: identity \"~/.ssh/k\" starts with ~/"));
        let ok = "[[host]]\nname = \"a\"\ntarget = \"h\"\nidentity = [\"k\"]\n";
        let inv = Inventory::parse("h.toml", ok, Path::new("."), None).unwrap();
        assert_eq!(inv.hosts[0].ssh.identity, [PathBuf::from("./k")]);
    }

    #[test]
    fn load_reads_relative_to_the_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("hosts.toml");
        std::fs::write(&f, "[[host]]\nname = \"a\"\ntarget = \"local:r\"\n").unwrap();
        let inv = Inventory::load(&f, None).unwrap();
        assert_eq!(
            inv.hosts[0].target,
            format!("local:{}", d.path().join("r").display())
        );
        let missing = Inventory::load(&d.path().join("nope.toml"), None).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
        assert!(missing.to_string().contains("--hosts FILE"), "{missing}");
    }
}
