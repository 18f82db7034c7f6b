//! Reads what the packages of a system say about themselves (their postinst, sysusers.d files,
//! base-passwd's tables, what they ship under /var) from their store paths, and turns it into the
//! generation's accounts, alternatives and /var set-up: what dpkg and the maintainer scripts would
//! have done on the Pi, done at build time without running any of them. The parsing is pure
//! ([`super::maintainer`], [`super::accounts`], [`super::var_tree`]); this module is the I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use pideploy_store::StorePath;

use super::accounts::{BasePasswd, LoginUser};
use super::builder::{PACKAGE_META, VAR_LISTING};
use super::error::{io, BuildError};
use super::etc::GenFile;
use super::maintainer::{self, Alternative, FileOp, MaintainerFacts, Sysusers};
use super::var_tree::{self, TreeEntry, TreeKind};

/// The largest sysusers.d or base-passwd table read (real ones are a few KiB).
const MAX_TABLE: u64 = 1 << 20;

/// Where packages put sysusers.d(5) files.
const SYSUSERS_DIRS: &[&str] = &["usr/lib/sysusers.d", "lib/sysusers.d"];

/// What the packages ask of the system.
#[derive(Debug, Clone, Default)]
pub struct PackageData {
    /// Each package's postinst facts, by package name.
    pub facts: Vec<(String, MaintainerFacts)>,
    /// Parsed sysusers.d files by source (`PACKAGE:/usr/lib/sysusers.d/x.conf`).
    pub sysusers: Vec<(String, Vec<Sysusers>)>,
    /// base-passwd's tables, when the package is in the system.
    pub base_passwd: Option<BasePasswd>,
    /// tmpfiles.d lines creating what the packages ship under /var and /srv (one line per path).
    pub var_tmpfiles: String,
    /// Units the packages enable on installation (`deb-systemd-helper enable`, `systemctl enable`).
    pub default_units: BTreeSet<String>,
    /// /etc files the maintainer scripts make (`ucf` copies, `ln -s`), by path relative to /etc.
    pub etc_files: Vec<(String, GenFile)>,
    /// Alternatives in automatic mode (the highest priority wins): `(link, name, path)` for every
    /// generic name and slave, e.g. `("/usr/bin/editor", "editor", "/usr/bin/vim.tiny")`.
    pub alternatives: Vec<(String, String, String)>,
}

impl PackageData {
    /// The input of [`super::accounts::plan_accounts`] with these packages and the config's users.
    pub fn account_inputs(&self, login_users: Vec<LoginUser>) -> super::accounts::AccountInputs {
        super::accounts::AccountInputs {
            base_passwd: self.base_passwd.clone(),
            sysusers: self.sysusers.clone(),
            postinst: self.facts.clone(),
            login_users,
        }
    }
}

/// Reads every package's data. A maintainer-script step that creates accounts and cannot be
/// reproduced is an error naming the package and the line: the service would run without its
/// user. Other unresolved steps (a `chown` of a computed path) come back in `warnings`.
pub fn read(
    packages: &BTreeMap<String, StorePath>,
    physical: impl Fn(&StorePath) -> PathBuf,
    warnings: &mut Vec<String>,
) -> Result<PackageData, BuildError> {
    let mut out = PackageData::default();
    let mut var_seen: BTreeSet<String> = BTreeSet::new();
    let mut alternatives: BTreeMap<String, Alternative> = BTreeMap::new();
    for (name, sp) in packages {
        let root = physical(sp);
        let meta = root.join(PACKAGE_META);
        let facts = match read_text(&meta.join("postinst"), 16 << 20)? {
            Some(text) => maintainer::from_postinst(name, &text),
            None => MaintainerFacts::default(),
        };
        for u in &facts.unsupported {
            let cmd = u.split(": ").nth(2).unwrap_or("");
            let accounts = ["adduser", "addgroup", "useradd", "groupadd", "usermod"]
                .iter()
                .any(|c| cmd.starts_with(c));
            if accounts {
                return Err(BuildError::Config(format!(
                    "{u}; pideploy creates accounts from package data and cannot reproduce this step, so the package is not supported (README, \"Debian packages\")"
                )));
            }
            warnings.push(format!("not reproduced: {u}"));
        }
        // dh_installsystemd's `debian-installed` guard marks units enabled only on upgrades; the
        // maintainer-script reader leaves those out.
        out.default_units.extend(facts.enable_units.iter().cloned());
        for a in &facts.alternatives {
            add_alternative(&mut alternatives, a);
        }
        for dir in SYSUSERS_DIRS {
            let d = root.join(dir);
            let Ok(rd) = fs::read_dir(&d) else { continue };
            let mut files: Vec<_> = rd.filter_map(Result::ok).map(|e| e.file_name()).collect();
            files.sort();
            for f in files {
                let f = f.to_string_lossy().into_owned();
                if !f.ends_with(".conf") {
                    continue;
                }
                let source = format!("{name}:/{dir}/{f}");
                let Some(text) = read_text(&d.join(&f), MAX_TABLE)? else {
                    continue;
                };
                let entries =
                    maintainer::parse_sysusers(&source, &text).map_err(BuildError::Config)?;
                out.sysusers.push((source, entries));
            }
        }
        if name == "base-passwd" {
            let table = |f: &str| -> Result<String, BuildError> {
                let p = root.join("usr/share/base-passwd").join(f);
                read_text(&p, MAX_TABLE)?.ok_or_else(|| {
                    BuildError::Config(format!("base-passwd has no /usr/share/base-passwd/{f}"))
                })
            };
            out.base_passwd = Some(BasePasswd {
                passwd_master: table("passwd.master")?,
                group_master: table("group.master")?,
            });
        }
        let entries = var_entries(&meta.join(VAR_LISTING))?;
        let mut lines = var_tree::var_tmpfiles(name, &sp.absolute(), &entries, &facts.ownership)
            .map_err(|e| BuildError::Config(format!("{name}: {e}")))?;
        for op in &facts.files {
            match file_op(op, packages, &physical) {
                Placed::Etc(rel, f) => out.etc_files.push((rel, f)),
                Placed::Var(line) => lines += &line,
                Placed::Not(why) => warnings.push(format!("not reproduced: {name}: {why}")),
            }
        }
        // Many packages ship /var/lib or /var/log: the first line for a path is kept, so
        // systemd-tmpfiles sees each path once.
        for line in lines.lines() {
            let mut f = line.split_whitespace();
            let key = format!("{} {}", f.next().unwrap_or(""), f.next().unwrap_or(""));
            if var_seen.insert(key) {
                out.var_tmpfiles += line;
                out.var_tmpfiles.push('\n');
            }
        }
        out.facts.push((name.clone(), facts));
    }
    for a in alternatives.into_values() {
        out.alternatives.push((a.link, a.name, a.path));
        out.alternatives.extend(a.slaves);
    }
    Ok(out)
}

/// Where a maintainer script's file goes.
enum Placed {
    /// Into the generated /etc.
    Etc(String, GenFile),
    /// A tmpfiles.d line (under /var or /srv).
    Var(String),
    /// Nowhere: why.
    Not(String),
}

/// Places one file operation: /etc as part of the generation, /var and /srv as tmpfiles.d lines
/// (made once, never overwritten, as on a first install), anything else not at all.
fn file_op(
    op: &FileOp,
    packages: &BTreeMap<String, StorePath>,
    physical: &impl Fn(&StorePath) -> PathBuf,
) -> Placed {
    let (path, what) = match op {
        FileOp::Copy { dest, .. } => (dest, "copy"),
        FileOp::Link { link, .. } => (link, "link"),
        FileOp::Dir { path, .. } => (path, "directory"),
    };
    // As tmpfiles.d reads it back, and without specifiers: a postinst path is taken literally.
    let expressible = |s: &str| var_tree::expressible(s) && !s.contains('%');
    if let Some(rel) = path.strip_prefix("/etc/") {
        return match op {
            FileOp::Copy { src, .. } => Placed::Etc(rel.to_string(), GenFile::Link(src.clone())),
            FileOp::Link { target, .. } => {
                Placed::Etc(rel.to_string(), GenFile::Link(target.clone()))
            }
            FileOp::Dir { .. } => Placed::Not(format!(
                "{path}: a directory in /etc appears with the files put in it"
            )),
        };
    }
    if !(path.starts_with("/var/") || path.starts_with("/srv/")) {
        return Placed::Not(format!(
            "{what} {path}: only /etc, /var and /srv are set up"
        ));
    }
    let line = match op {
        FileOp::Dir { path, mode } => format!("d {path} {mode:04o} root root -\n"),
        FileOp::Link { link, target } if expressible(target) => {
            format!("L {link} - - - - {target}\n")
        }
        FileOp::Copy { src, dest } => {
            // The source as the store holds it (a regular file of one package), not through
            // the package set's links.
            let owner = packages.values().find(|sp| {
                fs::symlink_metadata(physical(sp).join(src.trim_start_matches('/')))
                    .is_ok_and(|m| m.is_file())
            });
            match owner {
                Some(sp) if expressible(src) => {
                    format!("C {dest} - - - - {}{src}\n", sp.absolute())
                }
                _ => return Placed::Not(format!("copy to {dest}: no package ships {src}")),
            }
        }
        FileOp::Link { .. } => {
            return Placed::Not(format!("{what} {path}: target not expressible"))
        }
    };
    if expressible(path) {
        Placed::Var(line)
    } else {
        Placed::Not(format!("{what} {path}: not expressible in tmpfiles.d"))
    }
}

/// Keeps the alternative with the highest priority for its name (ties: the first package by name).
fn add_alternative(by_name: &mut BTreeMap<String, Alternative>, a: &Alternative) {
    if by_name
        .get(&a.name)
        .is_none_or(|have| a.priority > have.priority)
    {
        by_name.insert(a.name.clone(), a.clone());
    }
}

/// A text file of at most `max` bytes, or None when it does not exist.
fn read_text(path: &Path, max: u64) -> Result<Option<String>, BuildError> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", path)(e)),
    };
    let mut text = String::new();
    f.take(max + 1)
        .read_to_string(&mut text)
        .map_err(io("reading", path))?;
    if text.len() as u64 > max {
        return Err(BuildError::Config(format!(
            "{} is larger than {max} bytes; that is not a table a package ships",
            path.display()
        )));
    }
    Ok(Some(text))
}

/// The packaged entries under var/ and srv/ recorded when the package was unpacked.
fn var_entries(listing: &Path) -> Result<Vec<TreeEntry>, BuildError> {
    let Some(text) = read_text(listing, 64 << 20)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let (kind, mode, path, target): (String, u32, String, Option<String>) =
            serde_json::from_str(line)
                .map_err(|e| BuildError::Internal(format!("{}: {e}", listing.display())))?;
        let kind = match (kind.as_str(), target) {
            ("d", _) => TreeKind::Dir,
            ("f", _) => TreeKind::File,
            ("l", Some(t)) => TreeKind::Symlink(t),
            _ => continue,
        };
        out.push(TreeEntry { path, kind, mode });
    }
    Ok(out)
}
