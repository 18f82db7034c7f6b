//! `lock`, `fetch`, `cache import|list|verify`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use pideploy_cache::LockedPackage;

use super::context::{load, read_lock, Context};
use super::{CmdResult, Global, Target, Ui};
use crate::locking;

/// Where `lock` and `outdated` get their indexes and keys.
#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Use a local Packages index for an apt source instead of downloading it: SOURCE=FILE, where
    /// SOURCE is an `[[apt]]` name of the board (repeatable; gz/xz/zst/plain). A local index is
    /// trusted as given (apt verified its own lists under /var/lib/apt/lists).
    #[arg(long, value_name = "SOURCE=FILE")]
    index: Vec<String>,
    /// Verify an apt source's InRelease with the OpenPGP keys in FILE instead of the board's
    /// keyring for it: SOURCE=FILE (repeatable; armored or binary).
    #[arg(long, value_name = "SOURCE=FILE")]
    keyring: Vec<String>,
}

/// `pideploy lock`.
#[derive(Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    indexes: IndexArgs,
    /// Take the newest versions: of everything (`--update`), or of the packages named (and what
    /// they now need). Without it, the lock's versions are kept wherever the archives still have
    /// them and only what the config adds or drops changes.
    #[arg(long, value_name = "PKG", num_args = 0..)]
    update: Option<Vec<String>>,
    /// Print the changes as JSON (package, old, new, source, security).
    #[arg(long)]
    json: bool,
}

/// `pideploy outdated`.
#[derive(Args, Debug)]
pub struct OutdatedArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    indexes: IndexArgs,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
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

/// `--index`/`--keyring SOURCE=FILE` values, each naming one of the board's apt sources.
fn source_files(
    board: &pideploy_config::Board,
    flag: &str,
    specs: &[String],
) -> Result<Vec<(String, PathBuf)>, String> {
    specs
        .iter()
        .map(|spec| {
            let example = if flag == "index" {
                "Packages.xz"
            } else {
                "keys.asc"
            };
            let (name, file) = spec.split_once('=').ok_or_else(|| {
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
        })
        .collect()
}

/// The board's indexes, as `lock` and `outdated` read them.
fn read_indexes(
    ui: &Ui,
    loaded: &super::context::Loaded,
    a: &IndexArgs,
) -> Result<Vec<locking::SourceIndex>, Box<dyn std::error::Error + Send + Sync>> {
    let inputs = locking::IndexInputs {
        files: source_files(&loaded.board, "index", &a.index)?,
        keyrings: source_files(&loaded.board, "keyring", &a.keyring)?,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(locking::indexes(
        &loaded.board,
        &loaded.config.board,
        &inputs,
        now,
        &mut |url| ui.info(format!("downloading {url}")),
    )?)
}

/// The changes as a table for people, or JSON.
fn print_changes(changes: &[locking::Change], json: bool) -> CmdResult {
    if json {
        println!("{}", serde_json::to_string_pretty(changes)?);
        return Ok(0);
    }
    if changes.is_empty() {
        return Ok(0);
    }
    let width = changes
        .iter()
        .map(|c| c.package.len())
        .max()
        .unwrap_or(0)
        .max(7);
    println!("{:width$}  {:<40}  source", "package", "version");
    for c in changes {
        let v = format!(
            "{} -> {}",
            c.old.as_deref().unwrap_or("(new)"),
            c.new.as_deref().unwrap_or("(removed)")
        );
        let sec = if c.security { "security" } else { "" };
        println!("{:width$}  {v:<40}  {:<16}  {sec}", c.package, c.source);
    }
    Ok(0)
}

pub fn lock(ui: &Ui, _g: &Global, a: LockArgs) -> CmdResult {
    let loaded = load(&a.target)?;
    let indexes = read_indexes(ui, &loaded, &a.indexes)?;
    // An unreadable old lock is replaced, as before there was `--update`; one that reads keeps
    // its versions unless told otherwise.
    let old = read_lock(&loaded.lock_path).ok().map(|(l, _)| l);
    let keep = match (&old, &a.update) {
        (None, _) => locking::Keep::Nothing,
        (Some(_), Some(names)) if names.is_empty() => locking::Keep::Nothing,
        (Some(old), None) => locking::Keep::All(old),
        (Some(old), Some(names)) => locking::Keep::AllBut(old, names),
    };
    let lockfile = locking::resolve_lock(&loaded.config, &loaded.board, &indexes, keep)?;
    let empty = pideploy_cache::LockFile {
        version: 1,
        board: loaded.board.name.clone(),
        roots: Vec::new(),
        packages: Vec::new(),
    };
    let changes = locking::changes(old.as_ref().unwrap_or(&empty), &lockfile, &indexes);
    let before = std::fs::read_to_string(&loaded.lock_path).ok();
    let new = lockfile.to_toml();
    if before.as_deref() == Some(new.as_str()) {
        ui.info(format!(
            "{} is up to date ({} packages)",
            loaded.lock_path.display(),
            lockfile.packages.len()
        ));
    } else {
        lockfile.save(&loaded.lock_path)?;
        ui.info(format!(
            "wrote {} ({} packages, {} changed)",
            loaded.lock_path.display(),
            lockfile.packages.len(),
            changes.len()
        ));
    }
    // A first lock lists every package; later ones what changed.
    if old.is_some() || a.json {
        print_changes(&changes, a.json)?;
    }
    Ok(0)
}

pub fn outdated(ui: &Ui, _g: &Global, a: OutdatedArgs) -> CmdResult {
    let loaded = load(&a.target)?;
    let (old, _) = read_lock(&loaded.lock_path)?;
    let indexes = read_indexes(ui, &loaded, &a.indexes)?;
    let newest = locking::resolve_lock(
        &loaded.config,
        &loaded.board,
        &indexes,
        locking::Keep::Nothing,
    )?;
    let changes = locking::changes(&old, &newest, &indexes);
    let security = changes.iter().filter(|c| c.security).count();
    if !a.json {
        if changes.is_empty() {
            ui.info(format!(
                "{} is up to date with the archives",
                loaded.lock_path.display()
            ));
        } else {
            ui.info(format!(
                "{} packages have newer versions ({security} from security suites); `pideploy lock --update` takes them",
                changes.len()
            ));
        }
    }
    print_changes(&changes, a.json)
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
