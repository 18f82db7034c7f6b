//! `init`, `build`, `path-info`, `closure`.

use std::path::PathBuf;

use clap::Args;
use pideploy_store::StorePath;

use super::context::{load, read_lock, Context};
use super::{CmdResult, Global, Target, Ui};
use crate::closure::{build_system, BuiltSystem, SystemInputs};

/// `pideploy init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Where to write the config.
    #[arg(default_value = "pi.toml")]
    path: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

/// `pideploy build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    target: Target,
}

/// A store path argument.
#[derive(Args, Debug)]
pub struct PathArgs {
    /// Store path (`/pideploy/store/<hash>-<name>` or `<hash>-<name>`).
    path: String,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn init(ui: &Ui, a: InitArgs) -> CmdResult {
    if a.path.exists() && !a.force {
        return Err(format!(
            "{} already exists; pass --force to replace it",
            a.path.display()
        )
        .into());
    }
    std::fs::write(&a.path, pideploy_config::STARTER_TOML)
        .map_err(|e| format!("writing {}: {e}", a.path.display()))?;
    ui.info(format!(
        "wrote {}: edit it, then run `pideploy lock -c {0}` and `pideploy image -c {0} -o pi.img`",
        a.path.display()
    ));
    Ok(0)
}

/// Builds the system for a target selection (shared by build and image).
pub fn build_for(
    ui: &Ui,
    g: &Global,
    t: &Target,
) -> Result<
    (super::context::Loaded, BuiltSystem, String, Context),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let loaded = load(t)?;
    let (lock, lock_text) = read_lock(&loaded.lock_path)?;
    let ctx = Context::open(g)?;
    let started = std::time::Instant::now();
    let built = build_system(&SystemInputs {
        config: &loaded.config,
        board: &loaded.board,
        lock: &lock,
        cache: &ctx.cache,
        store: &ctx.store,
    })?;
    // The latest build of each host and board is what the local gc keeps (see deploy::gc).
    let root_name = format!("{}-{}", loaded.config.hostname, loaded.board.name).replace('/', "_");
    pideploy_deploy::gc::record_root(&ctx.store, &root_name, &built.toplevel)
        .map_err(|e| format!("recording {} as a gc root: {e}", built.toplevel.absolute()))?;
    // Said after the fact: a progress line before a failure would make the error two lines.
    ui.info(format!(
        "built system {} for board {} in {:.1}s",
        loaded.config.hostname,
        loaded.board.name,
        started.elapsed().as_secs_f64()
    ));
    for w in &built.warnings {
        ui.detail(format!("warning: {w}"));
    }
    if !built.warnings.is_empty() {
        ui.info(format!(
            "{} maintainer-script steps of the packages were not reproduced (see them with -v)",
            built.warnings.len()
        ));
    }
    Ok((loaded, built, lock_text, ctx))
}

pub fn build(ui: &Ui, g: &Global, a: BuildArgs) -> CmdResult {
    let (_, built, _, _) = build_for(ui, g, &a.target)?;
    println!("{}", built.toplevel.absolute());
    Ok(0)
}

fn parse(p: &str) -> Result<StorePath, Box<dyn std::error::Error + Send + Sync>> {
    Ok(StorePath::parse(p)?)
}

pub fn path_info(_ui: &Ui, g: &Global, a: PathArgs) -> CmdResult {
    let ctx = Context::open(g)?;
    let p = parse(&a.path)?;
    let info = ctx.store.query(&p)?;
    if a.json {
        let v = serde_json::json!({
            "path": p.absolute(),
            "nar_sha256": info.nar_sha256.to_hex(),
            "nar_size": info.nar_size,
            "references": info.references.iter().map(|r| r.absolute()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}\n  size {} bytes, sha256 {}",
            p.absolute(),
            info.nar_size,
            info.nar_sha256.to_hex()
        );
        for r in &info.references {
            println!("  -> {}", r.absolute());
        }
    }
    Ok(0)
}

pub fn closure(_ui: &Ui, g: &Global, a: PathArgs) -> CmdResult {
    let ctx = Context::open(g)?;
    let p = parse(&a.path)?;
    let paths = ctx.store.closure(&[p])?;
    let mut total = 0;
    let mut rows = Vec::new();
    for q in &paths {
        let info = ctx.store.query(q)?;
        total += info.nar_size;
        rows.push((q.absolute(), info.nar_size));
    }
    if a.json {
        let v = serde_json::json!({
            "paths": rows.iter().map(|(p, s)| serde_json::json!({"path": p, "size": s})).collect::<Vec<_>>(),
            "total_size": total,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (p, s) in &rows {
            println!("{s:>12}  {p}");
        }
        println!("{total:>12}  total, {} paths", rows.len());
    }
    Ok(0)
}
