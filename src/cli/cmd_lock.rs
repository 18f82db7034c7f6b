//! `lock`, `fetch`, `cache import|list|verify`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use pideploy_cache::{LockFile, LockedPackage, Role};
use pideploy_debian::packages::Package;
use pideploy_debian::resolve::{resolve, ResolveOptions};

use super::context::{load, read_lock, Context};
use super::{CmdResult, Global, Target, Ui};
use crate::apt_index;
use crate::closure::wanted_packages;

/// `pideploy lock`.
#[derive(Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    target: Target,
    /// Use a local Packages index for an apt source instead of downloading it: SOURCE=FILE, where
    /// SOURCE is an `[[apt]]` name of the board (repeatable; gz/xz/zst/plain).
    #[arg(long, value_name = "SOURCE=FILE")]
    index: Vec<String>,
    /// Verify an apt source's InRelease with the OpenPGP keys in FILE instead of the board's
    /// keyring for it: SOURCE=FILE (repeatable; armored or binary).
    #[arg(long, value_name = "SOURCE=FILE")]
    keyring: Vec<String>,
}

/// `pideploy fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    target: Target,
    /// Only list what is missing from the cache, one `name:arch=version` per line (for `apt-get download`).
    #[arg(long)]
    list: bool,
}

/// `pideploy cache ...`.
#[derive(Subcommand, Debug)]
pub enum CacheCmd {
    /// Add local files (offline); each is stored under its sha256.
    Import {
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List cached artifacts.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every cached artifact.
    Verify {
        /// Remove the entries that fail.
        #[arg(long)]
        repair: bool,
    },
}

fn follow_linux_image(name: &str) -> bool {
    name.starts_with("linux-image-")
}

pub fn lock(ui: &Ui, _g: &Global, a: LockArgs) -> CmdResult {
    let loaded = load(&a.target)?;
    let board = &loaded.board;
    // Indexes by source, in the board's order (later sources may carry newer versions).
    let mut indexes: Vec<(String, String, Vec<Package>)> = Vec::new();
    let source_named = |flag: &str, spec: &str| -> Result<(String, PathBuf), String> {
        let (name, file) = spec.split_once('=').ok_or_else(|| {
            let example = if flag == "index" {
                "Packages.xz"
            } else {
                "keys.asc"
            };
            format!("--{flag} {spec}: expected SOURCE=FILE, e.g. debian={example}")
        })?;
        if !board.apt.iter().any(|s| s.name == name) {
            let names: Vec<&str> = board.apt.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "--{flag} {spec}: board {} has no apt source {name:?} (it has: {})",
                board.name,
                names.join(", ")
            ));
        }
        Ok((name.to_string(), PathBuf::from(file)))
    };
    let given = a
        .index
        .iter()
        .map(|s| source_named("index", s))
        .collect::<Result<Vec<_>, _>>()?;
    let keyrings = a
        .keyring
        .iter()
        .map(|s| source_named("keyring", s))
        .collect::<Result<Vec<_>, _>>()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for src in &board.apt {
        let files: Vec<&PathBuf> = given
            .iter()
            .filter(|(n, _)| *n == src.name)
            .map(|(_, f)| f)
            .collect();
        let mut pkgs = Vec::new();
        if files.is_empty() {
            let (origin, bytes) = match keyrings.iter().rev().find(|(n, _)| *n == src.name) {
                Some((_, f)) => (
                    f.display().to_string(),
                    std::fs::read(f).map_err(|e| format!("--keyring {}: {e}", f.display()))?,
                ),
                None => pideploy_config::Board::apt_keyring(&loaded.config.board, src)?,
            };
            let keys = pideploy_debian::release::Keyring::parse(&bytes, &origin)?;
            pkgs = apt_index::download(src, &board.arch, &keys, now, &mut |url| {
                ui.info(format!("downloading {url}"))
            })?;
        } else {
            for f in files {
                // Checked before opening: a fifo would block, /dev/zero would never end.
                let meta = std::fs::metadata(f)
                    .map_err(|e| format!("reading index {}: {e}", f.display()))?;
                if !meta.is_file() {
                    return Err(format!(
                        "index {} is not a regular file; give a Packages file (plain, .gz, .xz or .zst)",
                        f.display()
                    )
                    .into());
                }
                let file = std::fs::File::open(f)
                    .map_err(|e| format!("reading index {}: {e}", f.display()))?;
                let bytes = pideploy_debian::packages::read_capped(file, &f.display().to_string())?;
                pkgs.extend(
                    pideploy_debian::packages::parse_bytes(&bytes)
                        .map_err(|e| format!("index {}: {e}", f.display()))?,
                );
            }
        }
        indexes.push((src.name.clone(), src.url.clone(), pkgs));
    }
    let only: Vec<Vec<Package>> = indexes.iter().map(|(_, _, p)| p.clone()).collect();
    let roots = wanted_packages(&loaded.config, board);
    let opts = ResolveOptions::new(board.arch.clone());
    let packages = resolve(&only, &roots, &opts)?;
    let mut kopts = ResolveOptions::new(board.arch.clone());
    if board.kernel.follow_prefix != "linux-image-" {
        return Err(format!(
            "board {}: kernel.follow_prefix must be \"linux-image-\"",
            board.name
        )
        .into());
    }
    kopts.follow = Some(follow_linux_image);
    let kernel = resolve(&only, std::slice::from_ref(&board.kernel.package), &kopts)?;

    let locate = |p: &Package| -> Result<(String, String), String> {
        indexes
            .iter()
            .rev()
            .find(|(_, _, pk)| {
                pk.iter()
                    .any(|q| q.name == p.name && q.version == p.version && q.filename == p.filename)
            })
            .map(|(n, u, _)| (n.clone(), u.clone()))
            .ok_or_else(|| format!("resolved package {} is in no index", p.name))
    };
    let mut locked = Vec::new();
    let mut seen = BTreeSet::new();
    for (role, list) in [(Role::Package, &packages), (Role::Kernel, &kernel)] {
        for p in list.iter() {
            if !seen.insert((p.name.clone(), role)) {
                continue;
            }
            let (source, base) = locate(p)?;
            locked.push(LockedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                architecture: p.architecture.clone(),
                source,
                url: format!("{}/{}", base.trim_end_matches('/'), p.filename),
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
                role,
            });
        }
    }
    let mut all_roots = roots.clone();
    all_roots.push(board.kernel.package.clone());
    let lockfile = LockFile {
        version: 1,
        board: board.name.clone(),
        roots: all_roots,
        packages: locked,
    };
    let old = std::fs::read_to_string(&loaded.lock_path).ok();
    let new = lockfile.to_toml();
    if old.as_deref() == Some(new.as_str()) {
        ui.info(format!(
            "{} is up to date ({} packages)",
            loaded.lock_path.display(),
            lockfile.packages.len()
        ));
    } else {
        lockfile.save(&loaded.lock_path)?;
        ui.info(format!(
            "wrote {} ({} packages)",
            loaded.lock_path.display(),
            lockfile.packages.len()
        ));
    }
    Ok(0)
}

pub fn fetch(ui: &Ui, g: &Global, a: FetchArgs) -> CmdResult {
    let loaded = load(&a.target)?;
    let (lock, _) = read_lock(&loaded.lock_path)?;
    let ctx = Context::open(g)?;
    let missing: Vec<&LockedPackage> = lock
        .packages
        .iter()
        .filter(|p| ctx.cache.path_of(&p.sha256).is_none())
        .collect();
    if a.list {
        for p in &missing {
            println!("{}:{}={}", p.name, p.architecture, p.version);
        }
        return Ok(0);
    }
    for p in &missing {
        let mut bar = ui.bar(&p.name, Some(p.size));
        ctx.cache
            .fetch(&p.url, &p.sha256, Some(p.size), &mut |d, t| bar.set(d, t))?;
        bar.finish();
        ui.detail(format!("{} {} verified", p.name, p.version));
    }
    ui.info(format!(
        "{} fetched, {} already cached",
        missing.len(),
        lock.packages.len() - missing.len()
    ));
    Ok(0)
}

pub fn cache(ui: &Ui, g: &Global, c: CacheCmd) -> CmdResult {
    let ctx = Context::open(g)?;
    match c {
        CacheCmd::Import { files } => {
            for f in files {
                let (sha, size) = ctx.cache.import(&f)?;
                ui.detail(format!("{sha} {size} {}", f.display()));
            }
            Ok(0)
        }
        CacheCmd::List { json } => {
            let entries = ctx.cache.list()?;
            if json {
                let v: Vec<_> = entries
                    .iter()
                    .map(
                        |e| serde_json::json!({"sha256": e.sha256, "size": e.size, "name": e.name}),
                    )
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for e in &entries {
                    println!(
                        "{}  {:>10}  {}",
                        e.sha256,
                        e.size,
                        e.name.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(0)
        }
        CacheCmd::Verify { repair } => {
            let bad = ctx.cache.verify(repair)?;
            for b in &bad {
                println!("corrupt: {b}{}", if repair { " (removed)" } else { "" });
            }
            if bad.is_empty() {
                ui.info("all cached artifacts match their sha256");
                Ok(0)
            } else {
                Ok(1)
            }
        }
    }
}
