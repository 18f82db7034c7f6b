//! `switch|boot|test` on several hosts at once: from repeated `--target`s and/or an inventory
//! (`--hosts`, `--on`). Every distinct config is built once before any host is touched; then
//! `pideploy_deploy::fleet::run` runs the deploys in parallel (at most `--limit` at a time), each
//! with its own progress line here, and a summary table closes the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::cmd_build::build_for;
use super::conn::{ConnOpts, Connector};
use super::{error_line, CmdResult, Global, Target, Ui};
use pideploy_deploy::fleet::plan::{first_duplicate, group_by};
use pideploy_deploy::fleet::run::{
    deploy_all, HostError, HostEvent, HostRun, OnHost, Settings, System,
};
use pideploy_deploy::fleet::summary::{table, totals};
use pideploy_deploy::fleet::{select, HostResult, Inventory, Row};
use pideploy_deploy::run::Event;
use pideploy_deploy::DeployError;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Which hosts to deploy to.
#[derive(Debug)]
pub struct Selection<'a> {
    /// `--target`s (each is also its own name).
    pub targets: &'a [String],
    /// Connection options from the command line (fallbacks for inventory hosts).
    pub conn: &'a ConnOpts,
    /// `--hosts`.
    pub hosts: Option<&'a Path>,
    /// `--on`.
    pub on: Option<&'a str>,
    /// Config, board and lock from the command line (fallbacks for inventory hosts).
    pub build: &'a Target,
}

/// One host to deploy to.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    target: String,
    opts: ConnOpts,
    build: Target,
}

/// The hosts named by `--target`s and the inventory selection, with their settings merged:
/// what the inventory says for a host wins over the command line.
fn members(sel: &Selection) -> Res<Vec<Member>> {
    let mut out = Vec::new();
    if sel.hosts.is_some() || sel.on.is_some() {
        let path = sel.hosts.unwrap_or(Path::new("hosts.toml"));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let inv = Inventory::load(path, home.as_deref())?;
        let chosen = match sel.on {
            Some(spec) => select(&inv, spec)?,
            None => inv.hosts.iter().collect(),
        };
        for h in chosen {
            let local = h.target.starts_with("local:");
            let cli = sel.conn;
            out.push(Member {
                name: h.name.clone(),
                target: h.target.clone(),
                opts: ConnOpts {
                    identity: if h.ssh.identity.is_empty() {
                        cli.identity.clone()
                    } else {
                        h.ssh.identity.clone()
                    },
                    known_hosts: h.ssh.known_hosts.clone().or(cli.known_hosts.clone()),
                    accept_new: h.ssh.accept_new.unwrap_or(cli.accept_new),
                    root: h
                        .ssh
                        .root
                        .clone()
                        .or(if local { None } else { cli.root.clone() }),
                    ..cli.clone()
                },
                build: Target {
                    config: h.config.clone().or(sel.build.config.clone()),
                    lock: h.lock.clone().or(sel.build.lock.clone()),
                    ..sel.build.clone()
                },
            });
        }
    }
    for t in sel.targets {
        let mut opts = sel.conn.clone();
        // As in an inventory, a local target is its own root: --root is for the SSH ones.
        if t.starts_with("local:") {
            opts.root = None;
        }
        out.push(Member {
            name: t.clone(),
            target: t.clone(),
            opts,
            build: sel.build.clone(),
        });
    }
    let names: Vec<&str> = out.iter().map(|m| m.name.as_str()).collect();
    if let Some((_, j)) = first_duplicate(&names) {
        return Err(format!("host {} is given twice; name each host once", names[j]).into());
    }
    let places: Vec<(String, Option<&str>)> = out
        .iter()
        .map(|m| {
            // The same directory may be written two ways.
            let target = match m.target.strip_prefix("local:") {
                Some(d) => std::fs::canonicalize(d)
                    .map_or_else(|_| m.target.clone(), |p| format!("local:{}", p.display())),
                None => m.target.clone(),
            };
            (target, m.opts.root.as_deref())
        })
        .collect();
    if let Some((i, j)) = first_duplicate(&places) {
        return Err(format!(
            "{} and {} both deploy to {}{}; one deploy would wait for the other's lock and fail",
            out[i].name,
            out[j].name,
            out[i].target,
            out[i]
                .opts
                .root
                .as_deref()
                .map_or(String::new(), |r| format!(" (root {r})"))
        )
        .into());
    }
    Ok(out)
}

/// What decides whether two hosts share a build: the config file and lock file they name.
fn build_key(t: &Target) -> (Option<PathBuf>, Option<PathBuf>) {
    let canon = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
    };
    (canon(&t.config), canon(&t.lock))
}

/// Progress of one host: a line of a [`MultiProgress`] on a terminal, else `name: ...` lines.
struct HostLine {
    name: String,
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl HostLine {
    fn say(&self, msg: String) {
        match &self.bar {
            Some(b) => b.set_message(msg),
            None if !self.quiet => eprintln!("{}: {msg}", self.name),
            None => {}
        }
    }

    fn done(&self, msg: String) {
        match &self.bar {
            Some(b) => b.finish_with_message(msg),
            None => self.say(msg),
        }
    }
}

fn event_text(e: &Event) -> String {
    match e {
        Event::Connected => "connected".into(),
        Event::Copying { paths } => format!("sending {paths} store paths"),
        Event::Sending { sent, total } => format!("sending: {} of {} KiB", sent >> 10, total >> 10),
        Event::Copied(r) => format!(
            "copied {} store paths ({} MiB, {} bytes over the wire), {} already there",
            r.sent.len(),
            r.raw_bytes >> 20,
            r.wire_bytes,
            r.skipped
        ),
        Event::Confirming(n) => {
            format!("generation {n} is active; confirming over a new connection")
        }
        Event::Rebooting {
            generation,
            tryboot,
        } => format!(
            "the boot entry changes; rebooting into generation {generation}{}",
            if *tryboot { " once (tryboot)" } else { "" }
        ),
        Event::BackUp => "back up".into(),
    }
}

/// The final progress line of a host.
fn done_text(run: &HostRun) -> String {
    let took = format!("{:.1}s", run.elapsed.as_secs_f64());
    let o = match &run.outcome {
        Ok(o) => o,
        Err(e) => return format!("FAILED after {took}: {}", error_line(e)),
    };
    let secrets = match o.secrets {
        0 => String::new(),
        n => format!(", wrote {n} secrets"),
    };
    match (run.generation, run.result) {
        (Some(n), result) => {
            let what = match result {
                HostResult::Switched => "active and the default",
                HostResult::NextBoot => "the default from the next boot",
                _ => "active",
            };
            format!("generation {n} is {what}{secrets} ({took})")
        }
        (None, HostResult::Unchanged) => {
            format!("already running this system; nothing changed{secrets} ({took})")
        }
        (None, _) => {
            format!("activated for testing; a reboot returns to the default{secrets} ({took})")
        }
    }
}

/// What one host's deploy reports goes to its progress line.
fn host_progress(line: Arc<HostLine>) -> OnHost {
    // Byte progress comes per chunk: one line every few seconds is enough.
    let mut last_sending: Option<Instant> = None;
    Box::new(move |e| match e {
        HostEvent::Connecting => line.say("connecting".into()),
        HostEvent::Deploy(e) => {
            if let Event::Sending { .. } = e {
                if last_sending.is_some_and(|t| t.elapsed() < Duration::from_secs(3)) {
                    return;
                }
                last_sending = Some(Instant::now());
            }
            line.say(event_text(&e))
        }
        HostEvent::Done(run) => line.done(done_text(run)),
    })
}

/// Builds each distinct system once, all before the first deploy (a build error stops the run
/// while every host is still untouched); returns the builds and, per member, which one it runs.
fn build_all(ui: &Ui, g: &Global, members: &[Member]) -> Res<(Vec<Arc<System>>, Vec<usize>)> {
    let keys: Vec<_> = members.iter().map(|m| build_key(&m.build)).collect();
    let mut built_for = vec![0; members.len()];
    let mut builds: Vec<Arc<System>> = Vec::new();
    for (_, idx) in group_by(&keys) {
        let hosts: Vec<&str> = idx.iter().map(|&i| members[i].name.as_str()).collect();
        let (loaded, built, _, ctx) = build_for(ui, g, &members[idx[0]].build).map_err(|e| {
            format!(
                "building for {}: {}",
                hosts.join(", "),
                error_line(e.as_ref())
            )
        })?;
        for &i in &idx {
            built_for[i] = builds.len();
        }
        let system = System::new(ctx.store, loaded.config, built.toplevel, &hosts)?;
        builds.push(Arc::new(system));
    }
    Ok((builds, built_for))
}

/// One progress line per member: spinners on a terminal, plain `name: ...` lines otherwise.
fn progress_lines(ui: &Ui, members: &[Member]) -> Vec<Arc<HostLine>> {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let multi = (tty && !ui.quiet).then(MultiProgress::new);
    let width = members
        .iter()
        .map(|m| m.name.chars().count())
        .max()
        .unwrap_or(0);
    let style = ProgressStyle::with_template("{spinner} {prefix} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    members
        .iter()
        .map(|m| {
            let bar = multi.as_ref().map(|mp| {
                let b = mp.add(ProgressBar::new_spinner());
                b.set_style(style.clone());
                b.set_prefix(format!("{:<width$}", m.name));
                b.set_message("waiting");
                b.enable_steady_tick(Duration::from_millis(120));
                b
            });
            Arc::new(HostLine {
                name: m.name.clone(),
                bar,
                quiet: ui.quiet,
            })
        })
        .collect()
}

/// Deploys to every selected host; the exit code is 1 when any host failed.
pub fn deploy_fleet(ui: &Ui, g: &Global, sel: Selection, limit: usize, s: Settings) -> CmdResult {
    let started = Instant::now();
    let members = members(&sel)?;
    // Bad options fail here, before anything is built or contacted.
    let connectors = members
        .iter()
        .map(|m| Connector::new(&m.target, &m.opts).map_err(|e| format!("{}: {e}", m.name)))
        .collect::<Result<Vec<_>, _>>()?;

    let (builds, built_for) = build_all(ui, g, &members)?;
    let fleet = connectors
        .into_iter()
        .zip(progress_lines(ui, &members))
        .enumerate()
        .map(|(i, (reach, line))| pideploy_deploy::fleet::run::Member {
            reach,
            system: builds[built_for[i]].clone(),
            on: host_progress(line),
        })
        .collect();
    let runs = deploy_all(fleet, limit, s)?;

    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (m, run) in members.iter().zip(runs) {
        if let Err(e) = &run.outcome {
            let mut output = Vec::new();
            if let HostError::Deploy(DeployError::Agent { output: o, .. }) = e {
                output = o.lines().map(String::from).collect();
                // Its last line is already the error's message.
                output.pop();
            }
            errors.push((m.name.clone(), output, error_line(e)));
        }
        rows.push(Row {
            host: m.name.clone(),
            target: m.target.clone(),
            generation: run.generation,
            result: run.result,
            elapsed: run.elapsed,
        });
    }
    print!("{}", table(&rows));
    ui.info(totals(&rows, started.elapsed()));
    for (name, output, e) in &errors {
        for l in output {
            eprintln!("  {name} | {l}");
        }
        eprintln!("pideploy: error: {name}: {e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}
