//! `doctor`: prints the checks of this machine, a target or an image (✓ / ! / ✗ with the fix).

use std::path::PathBuf;

use clap::Args;

use super::conn::{ConnOpts, Connector};
use super::context::{default_cache_dir, default_store_dir};
use super::{CmdResult, Global, Ui};
use crate::doctor::{self, Check, Status};
use pideploy_deploy::run::Connect;

/// `pideploy doctor [IMAGE] [--target T]`.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// An image to lint (.img, .img.xz, .img.zst) instead of checking this machine.
    #[arg(value_name = "IMAGE", conflicts_with = "target")]
    image: Option<PathBuf>,
    /// Check a target instead: `user@host[:port]` or `local:DIR`. Nothing is changed there, and
    /// an unknown host key is reported, never recorded.
    #[arg(long, short = 't', value_name = "TARGET")]
    target: Option<String>,
    #[command(flatten)]
    conn: ConnOpts,
    /// Machine-readable output: {"ok": bool, "checks": [{name, status, detail, fix}]}.
    #[arg(long)]
    json: bool,
}

/// Runs the checks; exit 1 when any failed.
pub fn doctor(_ui: &Ui, g: &Global, a: DoctorArgs) -> CmdResult {
    let scratch = tempfile::tempdir()?;
    let checks = if let Some(image) = &a.image {
        match doctor::image::gather(image, scratch.path()) {
            Ok(f) => doctor::image::checks(&f),
            Err(e) => vec![Check::fail(
                "image",
                e.to_string(),
                "give an image that `pideploy image` wrote (.img, .img.xz or .img.zst)",
            )],
        }
    } else if let Some(target) = &a.target {
        if a.conn.accept_new {
            return Err("doctor only looks: it never records a host key; run it without --accept-new (an unknown key is reported with the way to add it)".into());
        }
        let c = Connector::new(target, &a.conn)?;
        let call = c.agent()?;
        let facts = doctor::target::gather(target, c.connect(), &call);
        doctor::target::checks(&facts)
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let cache = g.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let store = g.store.clone().unwrap_or_else(default_store_dir);
        let facts = doctor::machine::gather(&path, &cache, &store, scratch.path());
        doctor::machine::checks(&facts)
    };
    let failed = doctor::any_failed(&checks);
    if a.json {
        let v = serde_json::json!({ "ok": !failed, "checks": checks });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Ok => "✓",
                Status::Warn => "!",
                Status::Fail => "✗",
            };
            println!("{mark} {}: {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("    fix: {fix}");
            }
        }
        let (n_fail, n_warn) = (
            checks.iter().filter(|c| c.status == Status::Fail).count(),
            checks.iter().filter(|c| c.status == Status::Warn).count(),
        );
        println!(
            "{} check(s): {n_fail} failed, {n_warn} warning(s)",
            checks.len()
        );
    }
    Ok(if failed { 1 } else { 0 })
}
