//! `switch`, `boot`, `test`, `generations`, `rollback`, `gc`, `diff`, `dry-activate`.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;

use super::cmd_build::build_for;
use super::cmd_fleet::{deploy_fleet, Selection};
use super::conn::{connect, Conn, ConnOpts, Connector};
use super::{CmdResult, Context, Global, Target, Ui};
use pideploy_deploy::diff::{diff, Manifest, SystemDescription};
use pideploy_deploy::fleet::run::Settings;
use pideploy_deploy::gc::{self as gcmod, GcPolicy};
use pideploy_deploy::run::{self, BootChange, Connect, Event, Job};
use pideploy_deploy::{self as deploy, Activation, Mode};

/// `pideploy switch|boot|test`.
#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    target: Target,
    /// `user@host[:port]` (ssh), or `local:DIR` to apply to a root directory on this machine;
    /// repeat it to deploy to several targets at once (then --root applies to the SSH ones).
    #[arg(
        long = "target",
        short = 't',
        value_name = "TARGET",
        required_unless_present_any = ["hosts", "on"]
    )]
    targets: Vec<String>,
    #[command(flatten)]
    conn: ConnOpts,
    /// Inventory of hosts (names, targets, SSH settings, configs, tags); without --on, every host
    /// in it. Default with --on: hosts.toml in the current directory.
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
    /// Inventory hosts to deploy to: names, globs (`web-*`, `db-?`) and `@tag`s, comma-separated.
    #[arg(long, value_name = "HOSTS")]
    on: Option<String>,
    /// With several hosts: deploy to at most N at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// A note stored with the generation.
    #[arg(long, short = 'm', default_value = "")]
    message: String,
    /// Seconds the target waits for the deployer's confirmation (over a new SSH connection)
    /// before it returns to the previous generation by itself.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    confirm_timeout: u64,
    /// Do not wait for a confirmation: the activation stands even if the target becomes unreachable.
    #[arg(long)]
    no_magic_rollback: bool,
    /// When the boot entry changes, commit it and reboot plainly instead of trying it once (tryboot).
    #[arg(long, conflicts_with = "no_reboot")]
    reboot: bool,
    /// When the boot entry changes, commit it without rebooting (it takes effect at the next boot).
    #[arg(long)]
    no_reboot: bool,
    /// Seconds to wait for a rebooted target to answer again.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    boot_timeout: u64,
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
    #[command(flatten)]
    conn: ConnOpts,
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
    let settings = Settings {
        mode,
        message: a.message.clone(),
        deployer: deployer(),
        confirm_timeout: (!a.no_magic_rollback).then(|| Duration::from_secs(a.confirm_timeout)),
        boot_change: if a.reboot {
            BootChange::Reboot
        } else if a.no_reboot {
            BootChange::NextBoot
        } else {
            BootChange::Tryboot
        },
        boot_timeout: Duration::from_secs(a.boot_timeout),
    };
    let one = match &a.targets[..] {
        [t] if a.hosts.is_none() && a.on.is_none() => t,
        _ => {
            let sel = Selection {
                targets: &a.targets,
                conn: &a.conn,
                hosts: a.hosts.as_deref(),
                on: a.on.as_deref(),
                build: &a.target,
            };
            return deploy_fleet(ui, g, sel, a.limit as usize, settings);
        }
    };
    let started = Instant::now();
    let connector = Connector::new(one, &a.conn)?;
    let (loaded, built, _, ctx) = build_for(ui, g, &a.target)?;
    let closure = ctx.store.closure(std::slice::from_ref(&built.toplevel))?;
    let call = connector.agent()?;
    let job = Job {
        mode,
        store: &ctx.store,
        toplevel: &built.toplevel,
        closure: &closure,
        config: &loaded.config,
        deployer: &settings.deployer,
        time: now(),
        message: &settings.message,
        confirm_timeout: settings.confirm_timeout,
        boot_change: settings.boot_change,
        boot_timeout: settings.boot_timeout,
        streams: None,
    };
    let who = connector.describe();
    let mut bar = None;
    let outcome = run::deploy(&connector, &call, &job, &mut |e| match e {
        Event::Connected => ui.detail(format!("{who}: connected")),
        Event::Copying { paths } => ui.detail(format!("{who}: sending {paths} store paths")),
        Event::Sending { sent, total } => bar
            .get_or_insert_with(|| ui.bar("sending", Some(total)))
            .set(sent, Some(total)),
        Event::Copied(r) => {
            if let Some(b) = bar.take() {
                b.finish();
            }
            ui.info(format!(
                "copied {} store paths ({} MiB, {} bytes over the wire), {} already there",
                r.sent.len(),
                r.raw_bytes >> 20,
                r.wire_bytes,
                r.skipped
            ));
        }
        Event::Confirming(n) => ui.info(format!(
            "{who}: generation {n} is active; confirming over a new connection"
        )),
        Event::Rebooting {
            generation,
            tryboot,
        } => ui.info(format!(
            "{who}: the boot entry changes; rebooting into generation {generation}{}",
            if tryboot { " once (tryboot)" } else { "" }
        )),
        Event::BackUp => ui.info(format!("{who}: back up")),
    })?;
    if outcome.secrets > 0 {
        ui.info(format!("wrote {} secrets", outcome.secrets));
    }
    if !outcome.pruned.is_empty() {
        let list: Vec<String> = outcome.pruned.iter().map(u32::to_string).collect();
        ui.info(format!(
            "{who}: removed generation(s) {} (generations_to_keep = {})",
            list.join(", "),
            loaded.config.generations_to_keep
        ));
    }
    let took = fmt_secs(started.elapsed());
    match outcome.activation {
        Activation::Generation(n) | Activation::Pending(n) => ui.info(format!(
            "{who}: generation {n} is {} ({took})",
            match mode {
                Mode::Switch => "active and the default",
                Mode::Boot => "the default from the next boot",
                Mode::Test => "active",
            }
        )),
        Activation::Unchanged => ui.info(format!(
            "{who}: already running this system; nothing changed ({took})"
        )),
        Activation::Tested => ui.info(format!(
            "{who}: activated for testing; a reboot returns to the default ({took})"
        )),
    }
    println!("{}", built.toplevel.absolute());
    Ok(0)
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

pub fn generations(_ui: &Ui, a: GenerationsArgs) -> CmdResult {
    let (mut t, call) = connect(&a.conn.target, &a.conn.opts)?;
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
    let (mut t, call) = connect(&a.conn.target, &a.conn.opts)?;
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
    // Whether the generation boots another kernel, initrd or init than the one running: its
    // files are in place now, the rest takes a reboot (as with `nixos-rebuild switch --rollback`).
    // Only a hint: a generation that cannot be described is rolled back to all the same (the
    // rollback itself says what is wrong with it).
    let tops = |n: u32| state.generations.get(&n).cloned();
    let boots_differently = match (tops(default), tops(want)) {
        (Some(now), Some(then)) => {
            let now = deploy::describe(t.as_mut(), &call, &now).ok();
            let then = deploy::describe(t.as_mut(), &call, &then).ok();
            matches!((now, then), (Some(a), Some(b)) if a.boot != b.boot)
        }
        _ => false,
    };
    deploy::rollback(t.as_mut(), &call, want, &deployer())?;
    ui.info(format!(
        "{}: generation {want} is active and the default",
        t.describe()
    ));
    if boots_differently {
        ui.info(format!(
            "{}: generation {want} boots another kernel or init than the running one; reboot the target to run it fully",
            t.describe()
        ));
    }
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
    let (mut t, call) = connect(&target, &a.conn)?;
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
            let (mut t, call) = connect(&a.conn.target, &a.conn.opts)?;
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
            let (mut t, call) = connect(&a.conn.target, &a.conn.opts)?;
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
    let (mut t, call) = connect(&a.conn.target, &a.conn.opts)?;
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
