//! `switch|boot|test` on several hosts at once: from repeated `--target`s and/or an inventory
//! (`--hosts`, `--on`). Every distinct config is built once before any host is touched; then the
//! deploys run in parallel (at most `--limit` at a time), each with its own progress line, and a
//! summary table closes the run. A failed host never stops the others.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pideploy_config::HostConfig;
use pideploy_store::StorePath;
use tokio::sync::Semaphore;

use super::cmd_build::build_for;
use super::conn::{ConnOpts, Connector};
use super::{error_line, CmdResult, Context, Global, Target, Ui};
use pideploy_deploy::fleet::plan::{first_duplicate, group_by};
use pideploy_deploy::fleet::summary::{table, totals};
use pideploy_deploy::fleet::{select, HostResult, Inventory, Row};
use pideploy_deploy::run::{self, BootChange, Event, Job, Outcome};
use pideploy_deploy::shared::SharedStreams;
use pideploy_deploy::{Activation, DeployError, Mode};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What every host's deploy is asked to do (the same for one target or many).
#[derive(Debug, Clone)]
pub struct Settings {
    /// switch, boot or test.
    pub mode: Mode,
    /// `--message`.
    pub message: String,
    /// `user@host` of the deployer.
    pub deployer: String,
    /// Magic-rollback timeout; `None` turns it off.
    pub confirm_timeout: Option<Duration>,
    /// What to do when the boot entry changes.
    pub boot_change: BootChange,
    /// How long to wait for a rebooted target.
    pub boot_timeout: Duration,
}

impl Settings {
    /// The job for one deploy of `built`, stamped `time`.
    pub fn job<'a>(&'a self, built: &'a Built, time: u64) -> Job<'a> {
        Job {
            mode: self.mode,
            store: &built.ctx.store,
            toplevel: &built.toplevel,
            closure: &built.closure,
            config: &built.config,
            deployer: &self.deployer,
            time,
            message: &self.message,
            confirm_timeout: self.confirm_timeout,
            boot_change: self.boot_change,
            boot_timeout: self.boot_timeout,
            streams: built.streams.as_ref(),
        }
    }
}

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

/// One built system, shared by every host that runs it.
pub struct Built {
    config: HostConfig,
    toplevel: StorePath,
    closure: Vec<StorePath>,
    ctx: Context,
    /// With more than one host running it: each set of missing paths is compressed once.
    streams: Option<SharedStreams>,
}

/// One host to deploy to.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    target: String,
    opts: ConnOpts,
    build: Target,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

/// The summary's generation and result, and the final progress line, for a finished deploy.
fn finished(mode: Mode, o: &Outcome, took: Duration) -> (Option<u32>, HostResult, String) {
    let took = format!("{:.1}s", took.as_secs_f64());
    let secrets = match o.secrets {
        0 => String::new(),
        n => format!(", wrote {n} secrets"),
    };
    match o.activation {
        Activation::Generation(n) | Activation::Pending(n) => {
            let (result, what) = match mode {
                Mode::Switch => (HostResult::Switched, "active and the default"),
                Mode::Boot => (HostResult::NextBoot, "the default from the next boot"),
                Mode::Test => (HostResult::Tested, "active"),
            };
            (
                Some(n),
                result,
                format!("generation {n} is {what}{secrets} ({took})"),
            )
        }
        Activation::Unchanged => (
            None,
            HostResult::Unchanged,
            format!("already running this system; nothing changed{secrets} ({took})"),
        ),
        Activation::Tested => (
            None,
            HostResult::Tested,
            format!("activated for testing; a reboot returns to the default{secrets} ({took})"),
        ),
    }
}

/// How one host's deploy ended.
struct HostEnd {
    generation: Option<u32>,
    result: HostResult,
    /// The error line, when it failed.
    error: Option<String>,
    /// What the target said before failing (an activation's log), shown above the error line.
    output: Vec<String>,
    /// The deploy itself, not the wait for a free slot.
    elapsed: Duration,
}

impl HostEnd {
    fn failed(why: String) -> Self {
        HostEnd {
            generation: None,
            result: HostResult::Failed,
            error: Some(why),
            output: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// One host's deploy, start to finish, on a blocking thread.
fn deploy_host(c: &Connector, built: &Built, s: &Settings, line: &HostLine) -> HostEnd {
    let started = Instant::now();
    line.say("connecting".into());
    let result = c.agent().and_then(|call| {
        let job = s.job(built, now());
        // Byte progress comes per chunk: one line every few seconds is enough.
        let mut last_sending: Option<Instant> = None;
        run::deploy(c, &call, &job, &mut |e| {
            if let Event::Sending { .. } = e {
                if last_sending.is_some_and(|t| t.elapsed() < Duration::from_secs(3)) {
                    return;
                }
                last_sending = Some(Instant::now());
            }
            line.say(event_text(&e))
        })
        .map_err(Into::into)
    });
    let elapsed = started.elapsed();
    match result {
        Ok(o) => {
            let (generation, result, msg) = finished(s.mode, &o, elapsed);
            line.done(msg);
            HostEnd {
                generation,
                result,
                error: None,
                output: Vec::new(),
                elapsed,
            }
        }
        Err(e) => {
            let why = error_line(e.as_ref());
            line.done(format!("FAILED after {:.1}s: {why}", elapsed.as_secs_f64()));
            let mut output = Vec::new();
            if let Some(DeployError::Agent { output: o, .. }) = e.downcast_ref() {
                output = o.lines().map(String::from).collect();
                // Its last line is already the error's message.
                output.pop();
            }
            HostEnd {
                elapsed,
                output,
                ..HostEnd::failed(why)
            }
        }
    }
}

/// Builds each distinct system once, all before the first deploy (a build error stops the run
/// while every host is still untouched); returns the builds and, per member, which one it runs.
fn build_all(ui: &Ui, g: &Global, members: &[Member]) -> Res<(Vec<Arc<Built>>, Vec<usize>)> {
    let keys: Vec<_> = members.iter().map(|m| build_key(&m.build)).collect();
    let mut built_for = vec![0; members.len()];
    let mut builds: Vec<Arc<Built>> = Vec::new();
    for (_, idx) in group_by(&keys) {
        let hosts = || {
            idx.iter()
                .map(|&i| members[i].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (loaded, built, _, ctx) = build_for(ui, g, &members[idx[0]].build)
            .map_err(|e| format!("building for {}: {}", hosts(), error_line(e.as_ref())))?;
        let closure = ctx
            .store
            .closure(std::slice::from_ref(&built.toplevel))
            .map_err(|e| {
                format!(
                    "the closure of {} for {}: {e}",
                    built.toplevel.absolute(),
                    hosts()
                )
            })?;
        for &i in &idx {
            built_for[i] = builds.len();
        }
        let streams = if idx.len() > 1 {
            Some(
                SharedStreams::new_in(&ctx.store.root().join("tmp")).map_err(|e| {
                    format!(
                        "a temporary directory for the copy streams of {}: {e}",
                        hosts()
                    )
                })?,
            )
        } else {
            None
        };
        builds.push(Arc::new(Built {
            config: loaded.config,
            toplevel: built.toplevel,
            closure,
            ctx,
            streams,
        }));
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
    let lines = progress_lines(ui, &members);

    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(limit)
        .build()
        .map_err(|e| format!("starting the deploy runtime: {e}"))?;
    let sem = Arc::new(Semaphore::new(limit));
    let settings = Arc::new(s);
    let handles: Vec<_> = connectors
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (sem, built, line, s) = (
                sem.clone(),
                builds[built_for[i]].clone(),
                lines[i].clone(),
                settings.clone(),
            );
            rt.spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return HostEnd::failed("the run was stopped".into());
                };
                tokio::task::spawn_blocking(move || deploy_host(&c, &built, &s, &line))
                    .await
                    .unwrap_or_else(|e| HostEnd::failed(format!("the deploy crashed: {e}")))
            })
        })
        .collect();
    let results: Vec<_> = rt.block_on(async {
        let mut v = Vec::with_capacity(handles.len());
        for h in handles {
            v.push(h.await);
        }
        v
    });

    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (m, r) in members.iter().zip(results) {
        let end = r.unwrap_or_else(|e| HostEnd::failed(format!("the deploy crashed: {e}")));
        if let Some(e) = end.error {
            errors.push((m.name.clone(), end.output, e));
        }
        rows.push(Row {
            host: m.name.clone(),
            target: m.target.clone(),
            generation: end.generation,
            result: end.result,
            elapsed: end.elapsed,
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
