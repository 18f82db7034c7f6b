//! One deploy to one target, start to finish: ask, copy, activate with the new secret set (under
//! the target's deploy lock), then confirm
//! over a new connection (magic rollback) or boot the new entry once through tryboot and commit it.
//! Progress goes out as [`Event`]s; nothing here prints.

use std::io;
use std::time::{Duration, Instant};

use pideploy_config::{Health, HostConfig};
use pideploy_store::{LocalStore, StorePath};
use pideploy_transport::{shell_join, Transport};

use super::shared::SharedStreams;
use super::{
    call, copy_with_progress, describe, describe_local, query, secrets, switch_with, Activation,
    AgentCall, CopyReport, DeployError, Mode, SwitchRequest, TargetState,
};

/// Opens a fresh connection to one target (the confirmation must not ride on the connection
/// that activated: a config that breaks SSH has to fail it).
pub trait Connect: Sync {
    /// A new connection.
    fn connect(&self) -> Result<Box<dyn Transport>, DeployError>;
    /// The target, for messages.
    fn describe(&self) -> String;
}

/// How a boot-entry change is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootChange {
    /// Boot it once through tryboot and commit it only when it comes up healthy (the default).
    Tryboot,
    /// Commit it right away and reboot plainly (`--reboot`).
    Reboot,
    /// Commit it; it takes effect at the next reboot, whenever that is (`--no-reboot`).
    NextBoot,
}

/// Everything one deploy needs.
#[derive(Debug)]
pub struct Job<'a> {
    /// switch, boot or test.
    pub mode: Mode,
    /// The local store holding the closure.
    pub store: &'a LocalStore,
    /// The new toplevel.
    pub toplevel: &'a StorePath,
    /// Its closure, dependencies first.
    pub closure: &'a [StorePath],
    /// The host config (secrets, health checks).
    pub config: &'a HostConfig,
    /// `user@host` of the deployer.
    pub deployer: &'a str,
    /// Unix time recorded with the generation.
    pub time: u64,
    /// `--message`.
    pub message: &'a str,
    /// How long the target waits for the confirmation; `None` turns magic rollback off.
    pub confirm_timeout: Option<Duration>,
    /// What to do when the boot entry changes.
    pub boot_change: BootChange,
    /// How long to wait for a rebooted target to come back.
    pub boot_timeout: Duration,
    /// Copy streams shared with the other targets of a fleet run (`None`: compressed while sent).
    pub streams: Option<&'a SharedStreams>,
}

/// Progress of one deploy.
#[derive(Debug, Clone)]
pub enum Event {
    /// Connected; the target's state is known.
    Connected,
    /// Sending `paths` store paths (`bytes` uncompressed).
    Copying {
        /// How many.
        paths: usize,
    },
    /// Compressed bytes sent so far, of the stream's total.
    Sending {
        /// Sent.
        sent: u64,
        /// Whole stream.
        total: u64,
    },
    /// The copy finished.
    Copied(CopyReport),
    /// Activated generation N; waiting for the health checks and the confirmation.
    Confirming(u32),
    /// The boot entry changes: rebooting into generation N (through tryboot when `tryboot`).
    Rebooting {
        /// Generation.
        generation: u32,
        /// One-shot tryboot rather than a plain reboot.
        tryboot: bool,
    },
    /// The target is back after the reboot.
    BackUp,
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The activation result.
    pub activation: Activation,
    /// The copy.
    pub copy: CopyReport,
    /// Secrets in the new generation's set (put in place unless the deploy was reverted).
    pub secrets: usize,
    /// Generations removed to honour `generations_to_keep`.
    pub pruned: Vec<u32>,
    /// Whether the target rebooted into the new generation.
    pub rebooted: bool,
}

/// Health checks as agent arguments: `TIMEOUT port:N... cmd:SHELL...`.
pub fn health_args(h: &Health) -> Vec<String> {
    let mut v = vec![h.timeout_secs.to_string()];
    v.extend(h.tcp_ports.iter().map(|p| format!("port:{p}")));
    v.extend(h.commands.iter().map(|c| format!("cmd:{}", shell_join(c))));
    v
}

/// Runs the config's health checks on the target (retrying until they pass or time out).
pub fn health(t: &mut dyn Transport, a: &AgentCall, h: &Health) -> Result<(), DeployError> {
    if h.tcp_ports.is_empty() && h.commands.is_empty() {
        return Ok(());
    }
    call(
        t,
        a,
        "checking health",
        "health",
        &health_args(h),
        &mut io::empty(),
    )?;
    Ok(())
}

/// Answer of the agent's `confirm` (its last line is the outcome).
fn confirm(
    t: &mut dyn Transport,
    a: &AgentCall,
    n: u32,
    verdict: &str,
) -> Result<String, DeployError> {
    let out = call(
        t,
        a,
        "confirming",
        "confirm",
        &[n.to_string(), verdict.to_string()],
        &mut io::empty(),
    )?;
    Ok(out)
}

/// Whether the new toplevel boots differently from the target's default generation.
fn boot_entry_changes(
    t: &mut dyn Transport,
    a: &AgentCall,
    store: &LocalStore,
    state: &TargetState,
    top: &StorePath,
) -> Result<bool, DeployError> {
    let Some(n) = state.default_generation() else {
        return Ok(false);
    };
    let Some(old) = state.generations.get(&n) else {
        return Ok(false);
    };
    let old = describe(t, a, old)?;
    let new = describe_local(store, top)?;
    Ok(old.boot != new.boot)
}

/// Connects again and again until the target answers with a boot id other than `old`.
fn wait_for_reboot(
    c: &dyn Connect,
    a: &AgentCall,
    old: Option<&str>,
    limit: Duration,
) -> Result<(Box<dyn Transport>, TargetState), DeployError> {
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(2));
        match c.connect() {
            Ok(mut t) => match query(t.as_mut(), a) {
                Ok(s) if s.boot_id.as_deref() != old => return Ok((t, s)),
                Ok(_) => last = "still the old boot".into(),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
    }
    Err(DeployError::NotBack {
        target: c.describe(),
        waited: limit.as_secs(),
        last,
    })
}

/// Deploys `job` to the target `c` reaches, with the agent run as `a`.
pub fn deploy(
    c: &dyn Connect,
    a: &AgentCall,
    job: &Job,
    on: &mut dyn FnMut(Event),
) -> Result<Outcome, DeployError> {
    let mut t = c.connect()?;
    let state = query(t.as_mut(), a)?;
    if let Some(holder) = &state.locked {
        return Err(DeployError::Locked {
            target: c.describe(),
            holder: holder.clone(),
        });
    }
    on(Event::Connected);
    // The secret set travels with the switch, which puts it in place under the lock.
    let bundle = secrets::bundle(job.config)?;
    let missing = super::state::to_send(&state, job.closure).len();
    // Already the running default, same secrets: the query was the only round trip needed.
    if job.mode == Mode::Switch
        && state.pending.is_none()
        && state.runs_as_default(&job.toplevel.absolute())
        && state.secrets.as_deref() == Some(bundle.digest.as_str())
        && missing == 0
    {
        let copy = super::CopyReport {
            skipped: job.closure.len(),
            ..Default::default()
        };
        on(Event::Copied(copy.clone()));
        return Ok(Outcome {
            activation: Activation::Unchanged,
            copy,
            secrets: 0,
            pruned: Vec::new(),
            rebooted: false,
        });
    }
    on(Event::Copying { paths: missing });
    let report = copy_with_progress(
        t.as_mut(),
        a,
        job.store,
        &state,
        job.closure,
        job.streams,
        &mut |s, n| on(Event::Sending { sent: s, total: n }),
    )?;
    on(Event::Copied(report.clone()));
    let secrets = bundle.count;

    // A live Pi (not a directory root) whose boot entry changes boots it once before committing it.
    let live = state.boot_id.is_some();
    let boot_changes = job.mode == Mode::Switch
        && live
        && job.boot_change != BootChange::NextBoot
        && boot_entry_changes(t.as_mut(), a, job.store, &state, job.toplevel)?;
    let rootarg = state.rootarg.clone().unwrap_or_default();
    let magic = job.confirm_timeout.map_or(0, |d| d.as_secs().max(1));
    let tryboot = boot_changes && job.boot_change == BootChange::Tryboot;
    let mode = if tryboot { "tryboot" } else { job.mode.word() };
    let request = SwitchRequest {
        mode: job.mode,
        toplevel: job.toplevel,
        deployer: job.deployer,
        time: job.time,
        message: job.message,
        rootarg: &rootarg,
        keep: job.config.generations_to_keep,
        secrets: Some(&bundle.tar),
    };
    // Magic rollback guards live activations (`boot` activates nothing; a plain `--reboot`
    // commits first). With tryboot the target's boot-time waiter uses the same timeout.
    let confirm_secs = if job.mode == Mode::Boot || (boot_changes && !tryboot) {
        0
    } else {
        magic
    };
    let (activation, pruned) = switch_with(t.as_mut(), a, &request, mode, confirm_secs)?;
    let mut outcome = Outcome {
        activation: activation.clone(),
        copy: report,
        secrets,
        pruned,
        rebooted: false,
    };
    let n = match activation {
        Activation::Pending(n) => n,
        Activation::Generation(n) if boot_changes => n,
        _ => return Ok(outcome),
    };

    if boot_changes {
        on(Event::Rebooting {
            generation: n,
            tryboot,
        });
        reboot(t.as_mut(), a, if tryboot { "0 tryboot" } else { "" })?;
        drop(t);
        let (mut t2, after) = wait_for_reboot(c, a, state.boot_id.as_deref(), job.boot_timeout)?;
        on(Event::BackUp);
        outcome.rebooted = true;
        let top = job.toplevel.absolute();
        if after.current.as_deref() != Some(top.as_str()) {
            return Err(DeployError::BootFailed {
                target: c.describe(),
                generation: n,
                running: after.current.unwrap_or_else(|| "nothing".into()),
            });
        }
        if tryboot {
            outcome.pruned = finish(t2.as_mut(), c, a, job, n)?;
        } else {
            health(t2.as_mut(), a, &job.config.health)?;
        }
        outcome.activation = Activation::Generation(n);
        return Ok(outcome);
    }

    // Magic rollback: health and confirmation over a new connection.
    on(Event::Confirming(n));
    drop(t);
    let mut t2 = match reconnect(c, Duration::from_secs(magic), Duration::from_secs(1)) {
        Ok(t2) => t2,
        Err(e) => {
            return Err(DeployError::Unconfirmed {
                target: c.describe(),
                generation: n,
                timeout: magic,
                why: e.to_string(),
            })
        }
    };
    outcome.pruned = finish(t2.as_mut(), c, a, job, n)?;
    outcome.activation = match job.mode {
        Mode::Test => Activation::Tested,
        _ => Activation::Generation(n),
    };
    Ok(outcome)
}

/// The connection for the confirmation, tried again while the target still waits for it:
/// activation may have restarted the network or sshd, and a busy target can miss one handshake.
/// No try starts in the window's last two pauses (a confirmation that arrives after the target
/// reverted is only told so, which `finish` reports).
fn reconnect(
    c: &dyn Connect,
    window: Duration,
    pause: Duration,
) -> Result<Box<dyn Transport>, DeployError> {
    let start = Instant::now();
    loop {
        match c.connect() {
            Ok(t) => return Ok(t),
            Err(e) if start.elapsed() + pause * 2 >= window => return Err(e),
            Err(_) => std::thread::sleep(pause),
        }
    }
}

/// Health checks, then commit (or revert when they fail) generation N on the target; returns
/// the generations the commit removed for `generations_to_keep`.
fn finish(
    t: &mut dyn Transport,
    c: &dyn Connect,
    a: &AgentCall,
    job: &Job,
    n: u32,
) -> Result<Vec<u32>, DeployError> {
    let last = |s: String| s.lines().last().unwrap_or("").to_string();
    if let Err(e) = health(t, a, &job.config.health) {
        let answer = confirm(t, a, n, "revert")
            .map(last)
            .unwrap_or_else(|e2| e2.to_string());
        return Err(DeployError::Unhealthy {
            target: c.describe(),
            generation: n,
            why: e.to_string(),
            answer,
        });
    }
    let out = confirm(t, a, n, "commit")?;
    let answer = last(out.clone());
    if answer.starts_with("committed") {
        Ok(super::removed_generations(&out))
    } else {
        Err(DeployError::Agent {
            step: "confirming",
            target: c.describe(),
            message: format!("generation {n} was not committed: {answer}"),
            output: String::new(),
        })
    }
}

/// Asks the target to reboot (with the reboot(2) argument `arg`, e.g. `0 tryboot`).
pub fn reboot(t: &mut dyn Transport, a: &AgentCall, arg: &str) -> Result<(), DeployError> {
    call(
        t,
        a,
        "rebooting",
        "reboot",
        &[arg.to_string()],
        &mut io::empty(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pideploy_transport::LocalTransport;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Refuses the first `refusals` connections, then connects locally.
    struct Flaky {
        refusals: u32,
        tries: AtomicU32,
    }

    impl Connect for Flaky {
        fn connect(&self) -> Result<Box<dyn Transport>, DeployError> {
            if self.tries.fetch_add(1, Ordering::SeqCst) < self.refusals {
                return Err(DeployError::Local("connection refused".into()));
            }
            Ok(Box::new(LocalTransport::new()))
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    #[test]
    fn the_confirmation_connection_is_tried_again_inside_the_window() {
        let pause = Duration::from_millis(10);
        let c = Flaky {
            refusals: 3,
            tries: AtomicU32::new(0),
        };
        assert!(reconnect(&c, Duration::from_secs(5), pause).is_ok());
        assert_eq!(c.tries.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn no_try_starts_when_the_window_is_nearly_over() {
        let pause = Duration::from_millis(20);
        let c = Flaky {
            refusals: u32::MAX,
            tries: AtomicU32::new(0),
        };
        let start = Instant::now();
        let err = reconnect(&c, Duration::from_millis(200), pause)
            .err()
            .unwrap();
        assert!(err.to_string().contains("connection refused"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let tries = c.tries.load(Ordering::SeqCst);
        assert!((2..=9).contains(&tries), "{tries} tries");
    }
}
