//! `switch`, `boot`, `test`, `generations`, `rollback`, `gc`, `diff`, `dry-activate`.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use pideploy_transport::{LocalTransport, SshOptions, SshTransport, Transport};

use super::cmd_build::build_for;
use super::{CmdResult, Context, Global, Target, Ui};
use crate::deploy::diff::{diff, Manifest, SystemDescription};
use crate::deploy::gc::{self as gcmod, GcPolicy};
use crate::deploy::{self, Activation, AgentCall, Mode};

/// Where and how to reach the target.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// `user@host[:port]` (ssh), or `local:DIR` to apply to a root directory on this machine.
    #[arg(long, short = 't', value_name = "TARGET")]
    target: String,
    /// Identity file for SSH (repeatable); default: ssh-agent, then ~/.ssh/id_*.
    #[arg(long, short = 'i', value_name = "FILE")]
    identity: Vec<PathBuf>,
    /// known_hosts file (default ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Trust an unknown host key on first use (a changed key is never accepted).
    #[arg(long)]
    accept_new: bool,
    /// Apply to this directory on the target instead of `/` (a mounted card, or a test root).
    #[arg(long, value_name = "DIR")]
    root: Option<String>,
}

/// `pideploy switch|boot|test`.
#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    conn: Conn,
    /// A note stored with the generation.
    #[arg(long, short = 'm', default_value = "")]
    message: String,
}

/// `pideploy generations`.
#[derive(Args, Debug)]
pub struct GenerationsArgs {
    #[command(flatten)]
    conn: Conn,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `pideploy rollback`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    conn: Conn,
    /// Generation to return to (default: the one before the current default).
    #[arg(long)]
    to: Option<u32>,
}

/// `pideploy gc`.
#[derive(Args, Debug)]
pub struct GcArgs {
    /// Target to collect (`user@host[:port]` or `local:DIR`); without it, the local store.
    #[arg(long, short = 't', value_name = "TARGET")]
    target: Option<String>,
    /// Identity file for SSH (repeatable).
    #[arg(long, short = 'i', value_name = "FILE")]
    identity: Vec<PathBuf>,
    /// known_hosts file (default ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Trust an unknown host key on first use.
    #[arg(long)]
    accept_new: bool,
    /// Keep the newest N generations (the default and the running one are always kept).
    #[arg(long, value_name = "N", conflicts_with = "older_than")]
    keep: Option<u32>,
    /// Remove generations older than this (e.g. 30d, 12h, 2w).
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
    /// Only say what the local gc would remove.
    #[arg(long)]
    dry_run: bool,
}

/// `pideploy diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(flatten)]
    target: Target,
    /// Old generation (with NEW); without both, the running system against the local build.
    #[arg(value_name = "OLD", requires = "new")]
    old: Option<u32>,
    /// New generation.
    #[arg(value_name = "NEW")]
    new: Option<u32>,
}

/// `pideploy dry-activate`.
#[derive(Args, Debug)]
pub struct DryActivateArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    conn: Conn,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn connect(c: &Conn) -> Res<(Box<dyn Transport>, AgentCall)> {
    if let Some(dir) = c.target.strip_prefix("local:") {
        if c.root.is_some() {
            return Err(
                "--root is for SSH targets; with local:DIR the directory is the root".into(),
            );
        }
        let root = std::fs::canonicalize(dir).map_err(|e| format!("--target {}: {e}", c.target))?;
        return Ok((
            Box::new(LocalTransport::new()),
            AgentCall {
                root: root.display().to_string(),
                sudo: false,
            },
        ));
    }
    let mut o = SshOptions::parse_target(&c.target)?;
    o.identities = c.identity.clone();
    if c.known_hosts.is_some() {
        o.known_hosts = c.known_hosts.clone();
    }
    o.accept_new = c.accept_new;
    let t = SshTransport::connect(&o)?;
    let sudo = o.user.as_deref() != Some("root");
    let root = c.root.clone().unwrap_or_else(|| "/".into());
    if !root.starts_with('/') {
        return Err(format!("--root {root}: give an absolute path on the target").into());
    }
    Ok((Box::new(t), AgentCall { root, sudo }))
}

fn deployer() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn deploy(ui: &Ui, g: &Global, a: DeployArgs, mode: Mode) -> CmdResult {
    let started = Instant::now();
    let (loaded, built, _, ctx) = build_for(ui, g, &a.target)?;
    let closure = ctx.store.closure(std::slice::from_ref(&built.toplevel))?;
    let (mut t, call) = connect(&a.conn)?;
    let state = deploy::query(t.as_mut(), &call)?;
    if let Some(h) = &state.locked {
        return Err(format!(
            "{} is being deployed by {h}; wait for it to finish",
            t.describe()
        )
        .into());
    }
    let report = deploy::copy(t.as_mut(), &call, &ctx.store, &state, &closure)?;
    ui.info(format!(
        "copied {} store paths ({} MiB, {} MiB over the wire), {} already there",
        report.sent.len(),
        report.raw_bytes >> 20,
        report.wire_bytes >> 20,
        report.skipped
    ));
    let rootarg = state.rootarg.clone().unwrap_or_default();
    let deployer = deployer();
    let request = deploy::SwitchRequest {
        mode,
        toplevel: &built.toplevel,
        deployer: &deployer,
        time: now(),
        message: &a.message,
        rootarg: &rootarg,
    };
    let result = deploy::activate(t.as_mut(), &call, &request)?;
    let secrets = deploy::secrets::send(t.as_mut(), &call, &loaded.config)?;
    if secrets > 0 {
        ui.info(format!("wrote {secrets} secrets"));
    }
    let took = fmt_secs(started.elapsed());
    match result {
        Activation::Generation(n) => ui.info(format!(
            "{}: generation {n} is {} ({took})",
            t.describe(),
            match mode {
                Mode::Switch => "active and the default",
                Mode::Boot => "the default from the next boot",
                Mode::Test => "active",
            }
        )),
        Activation::Unchanged => ui.info(format!(
            "{}: already running this system; nothing changed ({took})",
            t.describe()
        )),
        Activation::Tested => ui.info(format!(
            "{}: activated for testing; a reboot returns to the default ({took})",
            t.describe()
        )),
    }
    println!("{}", built.toplevel.absolute());
    Ok(0)
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

pub fn generations(_ui: &Ui, a: GenerationsArgs) -> CmdResult {
    let (mut t, call) = connect(&a.conn)?;
    let state = deploy::query(t.as_mut(), &call)?;
    let list = deploy::generations(t.as_mut(), &call)?;
    let default = state.default_generation();
    if a.json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|g| {
                serde_json::json!({
                    "generation": g.generation, "time": g.time, "toplevel": g.toplevel,
                    "deployer": g.deployer, "message": g.message,
                    "default": Some(g.generation) == default,
                    "current": state.current.as_deref() == Some(g.toplevel.as_str()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for g in &list {
        let mut marks = Vec::new();
        if state.current.as_deref() == Some(g.toplevel.as_str()) {
            marks.push("current");
        }
        if Some(g.generation) == default {
            marks.push("default");
        }
        println!(
            "{:>4}  {:>10}  {:<18}  {}  {}",
            g.generation,
            g.time,
            marks.join(","),
            g.toplevel,
            g.message
        );
    }
    Ok(0)
}

pub fn rollback(ui: &Ui, a: RollbackArgs) -> CmdResult {
    let (mut t, call) = connect(&a.conn)?;
    let state = deploy::query(t.as_mut(), &call)?;
    let default = state
        .default_generation()
        .ok_or("the target has no default generation")?;
    let want = match a.to {
        Some(n) => n,
        None => *state
            .generations
            .keys()
            .rev()
            .find(|&&n| n < default)
            .ok_or(format!(
                "generation {default} is the oldest; there is nothing to roll back to"
            ))?,
    };
    deploy::rollback(t.as_mut(), &call, want, &deployer())?;
    ui.info(format!(
        "{}: generation {want} is active and the default",
        t.describe()
    ));
    Ok(0)
}

pub fn gc(ui: &Ui, g: &Global, a: GcArgs) -> CmdResult {
    let Some(target) = a.target.clone() else {
        return gc_local(ui, g, &a);
    };
    let policy = match (a.keep, &a.older_than) {
        (Some(n), None) => GcPolicy::Keep(n),
        (None, Some(age)) => GcPolicy::OlderThan(gcmod::parse_age(age)?),
        _ => return Err("gc --target needs --keep N or --older-than AGE (e.g. 30d)".into()),
    };
    let conn = Conn {
        target,
        identity: a.identity,
        known_hosts: a.known_hosts,
        accept_new: a.accept_new,
        root: None,
    };
    let (mut t, call) = connect(&conn)?;
    deploy::query(t.as_mut(), &call)?;
    let r = deploy::gc(t.as_mut(), &call, policy, &deployer(), now())?;
    for n in &r.generations {
        println!("removed generation {n}");
    }
    for (p, n) in &r.paths {
        println!("removed /pideploy/store/{p} ({n} bytes)");
    }
    ui.info(format!(
        "{}: removed {} generations and {} store paths, freed {} MiB ({} bytes)",
        t.describe(),
        r.generations.len(),
        r.paths.len(),
        r.freed >> 20,
        r.freed
    ));
    Ok(0)
}

fn gc_local(ui: &Ui, g: &Global, a: &GcArgs) -> CmdResult {
    if a.keep.is_some() || a.older_than.is_some() {
        return Err("--keep and --older-than choose a target's generations; add --target, or run `pideploy gc` alone for the local store".into());
    }
    let ctx = Context::open(g)?;
    let dead = gcmod::local_plan(&ctx.store)?;
    if a.dry_run {
        for p in &dead {
            println!("would remove {}", p.absolute());
        }
        ui.info(format!("{} store paths would be removed", dead.len()));
        return Ok(0);
    }
    let freed = gcmod::local_collect(&ctx.store, &dead)?;
    for p in &dead {
        println!("removed {}", p.absolute());
    }
    ui.info(format!(
        "removed {} store paths, freed {} MiB ({freed} bytes)",
        dead.len(),
        freed >> 20
    ));
    Ok(0)
}

fn manifest_of(d: &SystemDescription, what: &str) -> Res<Manifest> {
    Manifest::parse(&d.manifest).map_err(|e| format!("{what}: {e}").into())
}

fn print_diff(old: &Manifest, new: &Manifest) {
    let d = diff(old, new);
    if d.is_empty() {
        println!("no package, file, service or kernel changes");
    }
    for l in d.lines() {
        println!("{l}");
    }
}

pub fn diff_cmd(ui: &Ui, g: &Global, a: DiffArgs) -> CmdResult {
    let (old, new) = match (a.old, a.new) {
        (Some(o), Some(n)) => {
            let (mut t, call) = connect(&a.conn)?;
            let state = deploy::query(t.as_mut(), &call)?;
            let top = |n: u32| -> Res<String> {
                state.generations.get(&n).cloned().ok_or_else(|| {
                    format!(
                        "{} has no generation {n} (see pideploy generations)",
                        t.describe()
                    )
                    .into()
                })
            };
            let (to, tn) = (top(o)?, top(n)?);
            ui.info(format!("generation {o} ({to}) -> generation {n} ({tn})"));
            let dold = deploy::describe(t.as_mut(), &call, &to)?;
            let dnew = deploy::describe(t.as_mut(), &call, &tn)?;
            (manifest_of(&dold, &to)?, manifest_of(&dnew, &tn)?)
        }
        _ => {
            let (_, built, _, ctx) = build_for(ui, g, &a.target)?;
            let (mut t, call) = connect(&a.conn)?;
            let state = deploy::query(t.as_mut(), &call)?;
            let cur = state
                .current
                .clone()
                .ok_or("the target reports no running system (/run/current-system)")?;
            ui.info(format!(
                "running {cur} -> local build {}",
                built.toplevel.absolute()
            ));
            let dold = deploy::describe(t.as_mut(), &call, &cur)?;
            let dnew = deploy::describe_local(&ctx.store, &built.toplevel)?;
            (
                manifest_of(&dold, &cur)?,
                manifest_of(&dnew, &built.toplevel.absolute())?,
            )
        }
    };
    print_diff(&old, &new);
    Ok(0)
}

pub fn dry_activate(ui: &Ui, g: &Global, a: DryActivateArgs) -> CmdResult {
    let (_, built, _, ctx) = build_for(ui, g, &a.target)?;
    let closure = ctx.store.closure(std::slice::from_ref(&built.toplevel))?;
    let (mut t, call) = connect(&a.conn)?;
    let state = deploy::query(t.as_mut(), &call)?;
    let send = deploy::state::to_send(&state, &closure);
    let mut bytes = 0;
    for p in &send {
        bytes += ctx.store.query(p)?.nar_size;
    }
    let top = built.toplevel.absolute();
    println!(
        "would send {} store paths ({} bytes), {} already there",
        send.len(),
        bytes,
        closure.len() - send.len()
    );
    for p in &send {
        println!("  send {}", p.absolute());
    }
    let new_gen = deploy::state::switch_makes_generation(&state, &top);
    if new_gen {
        let next = state.generations.keys().max().map_or(1, |n| n + 1);
        println!("would make a new generation (about {next}) with {top}");
    } else {
        println!("would change nothing: {top} is already the default and running");
    }
    let new_desc = deploy::describe_local(&ctx.store, &built.toplevel)?;
    match state.current.clone() {
        Some(cur) => {
            let cur_desc = deploy::describe(t.as_mut(), &call, &cur)?;
            let boot_changes = cur_desc.boot != new_desc.boot;
            println!(
                "boot entry changes (kernel, initramfs, device trees, kernel params, config.txt): {}",
                if boot_changes { "yes" } else { "no" }
            );
            println!("changes from the running system {cur}:");
            print_diff(
                &manifest_of(&cur_desc, &cur)?,
                &manifest_of(&new_desc, &top)?,
            );
        }
        None => println!("the target reports no running system; everything would be new"),
    }
    ui.info(format!("{}: dry run, nothing was changed", t.describe()));
    Ok(0)
}
