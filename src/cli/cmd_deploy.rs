//! `switch`, `boot`, `test`, `generations`, `rollback`.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use pideploy_transport::{LocalTransport, SshOptions, SshTransport, Transport};

use super::cmd_build::build_for;
use super::{CmdResult, Global, Target, Ui};
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

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn connect(c: &Conn) -> Res<(Box<dyn Transport>, AgentCall)> {
    if let Some(dir) = c.target.strip_prefix("local:") {
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
    Ok((
        Box::new(t),
        AgentCall {
            root: "/".into(),
            sudo,
        },
    ))
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
