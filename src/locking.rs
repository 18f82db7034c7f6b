//! `pideploy lock` and `outdated` without the printing: the board's indexes (downloaded and
//! verified, or local files), the resolution into a lock (keeping the old lock's versions unless
//! asked to update), and the changes between two locks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use pideploy_cache::{LockFile, LockedPackage, Role};
use pideploy_config::{AptSource, Board, HostConfig};
use pideploy_debian::packages::Package;
use pideploy_debian::release::{Keyring, ReleaseError};
use pideploy_debian::resolve::{resolve, ResolveOptions};

use crate::apt_index::{self, IndexError};
use crate::closure::wanted_packages;

/// Why no lock could be made.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// A board keyring could not be found.
    #[error(transparent)]
    Config(#[from] pideploy_config::ConfigError),
    /// A keyring did not parse.
    #[error(transparent)]
    Keyring(#[from] ReleaseError),
    /// An index could not be had or trusted.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A local file could not be used.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong, and what to give instead.
        reason: String,
    },
    /// Reading or resolving packages failed.
    #[error(transparent)]
    Debian(#[from] pideploy_debian::DebError),
    /// `--update` named a package the lock does not hold.
    #[error("--update {0}: the lock holds no package {0}; `pideploy lock` adds what the config asks for, and `--update` alone updates everything")]
    NotLocked(String),
    /// The board asks for something pideploy cannot lock.
    #[error("board {board}: {reason}")]
    Board {
        /// The board.
        board: String,
        /// What is wrong.
        reason: String,
    },
}

/// One source's packages, in the board's order (later sources may carry newer versions).
pub struct SourceIndex {
    /// The `[[apt]]` name.
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// Whether it carries security updates (its suite ends in `-security`).
    pub security: bool,
    /// Every package of its indexes.
    pub packages: Vec<Package>,
}

/// Where a source's index and keys come from, beyond the board.
#[derive(Default)]
pub struct IndexInputs {
    /// `--index SOURCE=FILE`: local `Packages` files (trusted as given).
    pub files: Vec<(String, PathBuf)>,
    /// `--keyring SOURCE=FILE`: keys used instead of the board's.
    pub keyrings: Vec<(String, PathBuf)>,
}

/// Every source's packages: from local files where given, otherwise downloaded and verified
/// against the source's keyring at time `now`. `on_get` hears each URL before it is fetched.
pub fn indexes(
    board: &Board,
    board_arg: &str,
    inputs: &IndexInputs,
    now: i64,
    on_get: &mut dyn FnMut(&str),
) -> Result<Vec<SourceIndex>, LockError> {
    let mut out = Vec::new();
    for src in &board.apt {
        let files: Vec<&PathBuf> = inputs
            .files
            .iter()
            .filter(|(n, _)| *n == src.name)
            .map(|(_, f)| f)
            .collect();
        let packages = if files.is_empty() {
            let keys = keyring(board_arg, src, inputs)?;
            apt_index::download(src, &board.arch, &keys, now, on_get)?
        } else {
            let mut pkgs = Vec::new();
            for f in files {
                pkgs.extend(local_index(f)?);
            }
            pkgs
        };
        out.push(SourceIndex {
            name: src.name.clone(),
            url: src.url.clone(),
            security: src.suite.ends_with("-security"),
            packages,
        });
    }
    Ok(out)
}

fn keyring(board_arg: &str, src: &AptSource, inputs: &IndexInputs) -> Result<Keyring, LockError> {
    let (origin, bytes) = match inputs.keyrings.iter().rev().find(|(n, _)| *n == src.name) {
        Some((_, f)) => (
            f.display().to_string(),
            std::fs::read(f).map_err(|e| LockError::File {
                path: f.display().to_string(),
                reason: format!("{e}; give a file with the archive's OpenPGP public keys"),
            })?,
        ),
        None => Board::apt_keyring(board_arg, src)?,
    };
    Ok(Keyring::parse(&bytes, &origin)?)
}

fn local_index(f: &PathBuf) -> Result<Vec<Package>, LockError> {
    let bad = |reason: String| LockError::File {
        path: format!("index {}", f.display()),
        reason,
    };
    // Checked before opening: a fifo would block, /dev/zero would never end.
    let meta = std::fs::metadata(f).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad(
            "not a regular file; give a Packages file (plain, .gz, .xz or .zst)".into(),
        ));
    }
    let file = std::fs::File::open(f).map_err(|e| bad(e.to_string()))?;
    let bytes = pideploy_debian::packages::read_capped(file, &f.display().to_string())?;
    pideploy_debian::packages::parse_bytes(&bytes).map_err(|e| bad(e.to_string()))
}

/// Which versions of the old lock a resolution keeps.
pub enum Keep<'a> {
    /// None: everything at its newest (`lock --update`, `outdated`).
    Nothing,
    /// All of them where the indexes still have them (`lock`).
    All(&'a LockFile),
    /// All but these packages (`lock --update PKG...`), which go to their newest, with whatever
    /// they now need.
    AllBut(&'a LockFile, &'a [String]),
}

fn follow_linux_image(name: &str) -> bool {
    name.starts_with("linux-image-")
}

/// Resolves the config's and board's packages against `indexes` into a lock.
pub fn resolve_lock(
    config: &HostConfig,
    board: &Board,
    indexes: &[SourceIndex],
    keep: Keep<'_>,
) -> Result<LockFile, LockError> {
    let prefer: BTreeMap<String, String> = match keep {
        Keep::Nothing => BTreeMap::new(),
        Keep::All(old) => pins(old),
        Keep::AllBut(old, names) => {
            let mut p = pins(old);
            for n in names {
                if p.remove(n).is_none() {
                    return Err(LockError::NotLocked(n.clone()));
                }
            }
            p
        }
    };
    let only: Vec<Vec<Package>> = indexes.iter().map(|s| s.packages.clone()).collect();
    let roots = wanted_packages(config, board);
    let mut opts = ResolveOptions::new(board.arch.clone());
    opts.prefer = prefer.clone();
    let packages = resolve(&only, &roots, &opts)?;
    if board.kernel.follow_prefix != "linux-image-" {
        return Err(LockError::Board {
            board: board.name.clone(),
            reason: "kernel.follow_prefix must be \"linux-image-\"".into(),
        });
    }
    let mut kopts = ResolveOptions::new(board.arch.clone());
    kopts.follow = Some(follow_linux_image);
    kopts.prefer = prefer;
    let kernel = resolve(&only, std::slice::from_ref(&board.kernel.package), &kopts)?;

    // The source a package is taken from: the last one (newest wins) holding this very file.
    let locate = |p: &Package| -> Option<&SourceIndex> {
        indexes.iter().rev().find(|s| {
            s.packages
                .iter()
                .any(|q| q.name == p.name && q.version == p.version && q.filename == p.filename)
        })
    };
    let mut locked = Vec::new();
    let mut seen = BTreeSet::new();
    for (role, list) in [(Role::Package, &packages), (Role::Kernel, &kernel)] {
        for p in list.iter() {
            if !seen.insert((p.name.clone(), role)) {
                continue;
            }
            // Every resolved package came out of one of these indexes.
            let Some(src) = locate(p) else { continue };
            locked.push(LockedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                architecture: p.architecture.clone(),
                source: src.name.clone(),
                url: format!("{}/{}", src.url.trim_end_matches('/'), p.filename),
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
                role,
            });
        }
    }
    let mut all_roots = roots;
    all_roots.push(board.kernel.package.clone());
    Ok(LockFile {
        version: 1,
        board: board.name.clone(),
        roots: all_roots,
        packages: locked,
    })
}

fn pins(old: &LockFile) -> BTreeMap<String, String> {
    old.packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect()
}

/// One package that differs between two locks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Package name.
    pub package: String,
    /// Its version in the old lock (None: added).
    pub old: Option<String>,
    /// Its version in the new one (None: removed).
    pub new: Option<String>,
    /// The apt source the new version comes from (the old one's, for a removal).
    pub source: String,
    /// Whether that source carries security updates.
    pub security: bool,
}

/// What differs between `old` and `new`, by package name.
pub fn changes(old: &LockFile, new: &LockFile, indexes: &[SourceIndex]) -> Vec<Change> {
    let by_name = |l: &LockFile| -> BTreeMap<String, LockedPackage> {
        l.packages
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect()
    };
    let (o, n) = (by_name(old), by_name(new));
    let security = |source: &str| indexes.iter().any(|s| s.name == source && s.security);
    let names: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (o.get(name), n.get(name));
            if let (Some(a), Some(b)) = (a, b) {
                if a.version == b.version && a.sha256 == b.sha256 {
                    return None;
                }
            }
            let source = b.or(a).map(|p| p.source.clone()).unwrap_or_default();
            Some(Change {
                package: name.clone(),
                old: a.map(|p| p.version.clone()),
                new: b.map(|p| p.version.clone()),
                security: security(&source),
                source,
            })
        })
        .collect()
}
