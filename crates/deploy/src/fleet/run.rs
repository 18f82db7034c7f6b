//! Deploying to many hosts at once, the running half: each host's deploy on its own blocking
//! thread, at most `limit` at a time; hosts that run one system share its compressed streams. A
//! failed host never stops the others. Progress goes to one callback per host; nothing prints.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pideploy_config::HostConfig;
use pideploy_store::{LocalStore, StorePath};
use tokio::sync::Semaphore;

use super::summary::HostResult;
use crate::run::{self, BootChange, Connect, Event, Job, Outcome};
use crate::shared::SharedStreams;
use crate::{Activation, AgentCall, DeployError, Mode};

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
    /// The job for one deploy of `system`, stamped `time`.
    pub fn job<'a>(&'a self, system: &'a System, time: u64) -> Job<'a> {
        Job {
            mode: self.mode,
            store: &system.store,
            toplevel: &system.toplevel,
            closure: &system.closure,
            config: &system.config,
            deployer: &self.deployer,
            time,
            message: &self.message,
            confirm_timeout: self.confirm_timeout,
            boot_change: self.boot_change,
            boot_timeout: self.boot_timeout,
            streams: system.streams.as_ref(),
        }
    }
}

/// Why a fleet run could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The store could not list a system's closure.
    #[error("the closure of {toplevel} for {hosts}: {source}")]
    Closure {
        /// The system.
        toplevel: String,
        /// The hosts that run it.
        hosts: String,
        /// Cause (boxed: it is large, and this is the rare path).
        source: Box<pideploy_store::StoreError>,
    },
    /// The directory of the shared copy streams could not be made.
    #[error("a temporary directory for the copy streams of {hosts}: {source}")]
    Streams {
        /// The hosts that share them.
        hosts: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The threads of the run could not be started.
    #[error("starting the deploy runtime: {0}")]
    Runtime(std::io::Error),
}

/// One built system, shared by every host that runs it.
#[derive(Debug)]
pub struct System {
    store: LocalStore,
    config: HostConfig,
    toplevel: StorePath,
    closure: Vec<StorePath>,
    /// With more than one host running it: each set of missing paths is compressed once.
    streams: Option<SharedStreams>,
}

impl System {
    /// `toplevel` (built into `store` from `config`) for the hosts named `hosts`.
    pub fn new(
        store: LocalStore,
        config: HostConfig,
        toplevel: StorePath,
        hosts: &[&str],
    ) -> Result<Self, FleetError> {
        let names = || hosts.join(", ");
        let closure = store
            .closure(std::slice::from_ref(&toplevel))
            .map_err(|source| FleetError::Closure {
                toplevel: toplevel.absolute(),
                hosts: names(),
                source: Box::new(source),
            })?;
        let streams = if hosts.len() > 1 {
            let tmp = store.root().join("tmp");
            let streams = SharedStreams::new_in(&tmp).map_err(|source| FleetError::Streams {
                hosts: names(),
                source,
            })?;
            Some(streams)
        } else {
            None
        };
        Ok(System {
            store,
            config,
            toplevel,
            closure,
            streams,
        })
    }
}

/// A host's way in: fresh connections, and how the agent runs there.
pub trait Reach: Connect + Send + 'static {
    /// The agent's root and sudo; asked when the host's turn comes, so an error fails this host
    /// only.
    fn agent(&self) -> Result<AgentCall, Box<dyn Error + Send + Sync>>;
}

/// Why one host's deploy failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Its agent call could not be made.
    #[error(transparent)]
    Reach(Box<dyn Error + Send + Sync>),
    /// The deploy failed.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The run ended before this host's turn.
    #[error("the run was stopped")]
    Stopped,
    /// Its thread panicked.
    #[error("the deploy crashed: {0}")]
    Crashed(String),
}

/// How one host's deploy ended.
#[derive(Debug)]
pub struct HostRun {
    /// What it did, or why it failed.
    pub outcome: Result<Outcome, HostError>,
    /// The generation made, when one was.
    pub generation: Option<u32>,
    /// For the summary.
    pub result: HostResult,
    /// The deploy itself, not the wait for a free slot.
    pub elapsed: Duration,
}

impl HostRun {
    fn new(mode: Mode, outcome: Result<Outcome, HostError>, elapsed: Duration) -> Self {
        let (generation, result) = match &outcome {
            Err(_) => (None, HostResult::Failed),
            Ok(o) => match o.activation {
                Activation::Generation(n) | Activation::Pending(n) => (
                    Some(n),
                    match mode {
                        Mode::Switch => HostResult::Switched,
                        Mode::Boot => HostResult::NextBoot,
                        Mode::Test => HostResult::Tested,
                    },
                ),
                Activation::Unchanged => (None, HostResult::Unchanged),
                Activation::Tested => (None, HostResult::Tested),
            },
        };
        HostRun {
            outcome,
            generation,
            result,
            elapsed,
        }
    }
}

/// What one host's callback hears.
#[derive(Debug)]
pub enum HostEvent<'a> {
    /// Its turn came: connecting.
    Connecting,
    /// Progress of its deploy.
    Deploy(Event),
    /// Its deploy ended.
    Done(&'a HostRun),
}

/// One host's progress callback, called from the thread that runs its deploy.
pub type OnHost = Box<dyn FnMut(HostEvent) + Send>;

/// One host of the run: how to reach it, the system it gets, and who hears its progress.
pub struct Member<R> {
    /// Its way in.
    pub reach: R,
    /// What it runs (shared with the other hosts that run it).
    pub system: Arc<System>,
    /// Its progress.
    pub on: OnHost,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn deploy_one<R: Reach>(m: &mut Member<R>, s: &Settings) -> HostRun {
    let started = Instant::now();
    (m.on)(HostEvent::Connecting);
    let on = &mut m.on;
    let outcome = m.reach.agent().map_err(HostError::Reach).and_then(|call| {
        let job = s.job(&m.system, now());
        run::deploy(&m.reach, &call, &job, &mut |e| on(HostEvent::Deploy(e)))
            .map_err(HostError::from)
    });
    let run = HostRun::new(s.mode, outcome, started.elapsed());
    (m.on)(HostEvent::Done(&run));
    run
}

/// Deploys to every member, at most `limit` at a time; one [`HostRun`] per member, in order.
pub fn deploy_all<R: Reach>(
    members: Vec<Member<R>>,
    limit: usize,
    settings: Settings,
) -> Result<Vec<HostRun>, FleetError> {
    let mode = settings.mode;
    let failed = |e: HostError| HostRun::new(mode, Err(e), Duration::ZERO);
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(limit)
        .build()
        .map_err(FleetError::Runtime)?;
    let sem = Arc::new(Semaphore::new(limit));
    let settings = Arc::new(settings);
    let handles: Vec<_> = members
        .into_iter()
        .map(|mut m| {
            let (sem, s) = (sem.clone(), settings.clone());
            rt.spawn(async move {
                let Ok(_permit) = sem.acquire_owned().await else {
                    return Err(HostError::Stopped);
                };
                tokio::task::spawn_blocking(move || deploy_one(&mut m, &s))
                    .await
                    .map_err(|e| HostError::Crashed(e.to_string()))
            })
        })
        .collect();
    let results = rt.block_on(async {
        let mut v = Vec::with_capacity(handles.len());
        for h in handles {
            v.push(h.await);
        }
        v
    });
    Ok(results
        .into_iter()
        .map(|r| match r {
            Ok(Ok(run)) => run,
            Ok(Err(e)) => failed(e),
            Err(e) => failed(HostError::Crashed(e.to_string())),
        })
        .collect())
}
