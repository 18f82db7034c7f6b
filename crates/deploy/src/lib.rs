//! The deployer: ask the target what it has, send what it lacks in one stream, activate, record the
//! generation, write its boot entry. Steps are argv lists for the target agent (`scripts/target.sh`,
//! kept on the target under its content hash and installed from stdin by the first command that
//! finds it missing), run over a [`Transport`]. [`fleet`] does the same for many hosts at once.

pub mod diff;
pub mod fleet;
pub mod gc;
pub mod run;
pub mod secrets;
pub mod shared;
pub mod state;
pub mod stream;
#[cfg(test)]
mod wake_tests;

use std::io::{self, Read, Write};

use pideploy_store::{LocalStore, StorePath};
use pideploy_transport::Transport;

pub use state::TargetState;

/// The agent script run on the target.
pub const AGENT: &str = include_str!("scripts/target.sh");

/// Why an agent's answer (`query`, `gc`, `describe`) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// It lacks its `end` line.
    #[error("the target's answer was cut short")]
    CutShort,
    /// A line no answer has.
    #[error("unexpected {what} line {line:?}")]
    Unexpected {
        /// Which answer.
        what: &'static str,
        /// The line.
        line: String,
    },
    /// A line of a known kind with a bad number.
    #[error("bad {what} in {line:?}")]
    BadNumber {
        /// Which number.
        what: &'static str,
        /// The line.
        line: String,
    },
    /// A `gen` line without its toplevel.
    #[error("bad query line {0:?}")]
    BadQueryLine(String),
    /// `describe` output before its first `--- NAME` line.
    #[error("unexpected line {0:?} before the first section")]
    BeforeFirstSection(String),
}

/// Why a deploy step failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The connection or command failed.
    #[error(transparent)]
    Transport(Box<pideploy_transport::TransportError>),
    /// sudo wants a password.
    #[error("sudo on {0} needs a password: pass --ask-sudo-password to type it once (it reaches sudo on stdin, never a command line), or allow the deploy user passwordless sudo (NOPASSWD)")]
    SudoPassword(String),
    /// Another deploy holds the lock.
    #[error("{target} is being deployed by {holder}; wait for it to finish (the lock is /pideploy/var/lock)")]
    Locked {
        /// Target.
        target: String,
        /// Who holds it.
        holder: String,
    },
    /// The agent reported a failure.
    #[error("{step} on {target} failed: {message}")]
    Agent {
        /// Which step.
        step: &'static str,
        /// Target.
        target: String,
        /// The last line of the agent's error output.
        message: String,
        /// All of its error output (an activation's log), shown above the error line.
        output: String,
    },
    /// Local I/O (building the stream).
    #[error("{0}")]
    Local(String),
    /// The target did not come back after a reboot.
    #[error("{target} did not come back within {waited} s of rebooting ({last}); if the new boot entry hangs, power-cycle it: the firmware then boots the committed generation")]
    NotBack {
        /// Target.
        target: String,
        /// Seconds waited.
        waited: u64,
        /// The last connection error.
        last: String,
    },
    /// The new generation did not boot (tryboot fell back).
    #[error("generation {generation} did not boot on {target}; it is back on the committed generation ({running}) and generation {generation} was dropped")]
    BootFailed {
        /// Target.
        target: String,
        /// The generation that failed.
        generation: u32,
        /// Toplevel running instead.
        running: String,
    },
    /// The confirmation could not be sent: the target reverts by itself.
    #[error("could not reach {target} again after activating generation {generation} ({why}); it returns to the previous generation by itself within {timeout} s")]
    Unconfirmed {
        /// Target.
        target: String,
        /// The unconfirmed generation.
        generation: u32,
        /// Confirmation timeout.
        timeout: u64,
        /// Why the new connection failed.
        why: String,
    },
    /// Health checks failed after activation: reverted.
    #[error("generation {generation} on {target} failed its health checks ({why}); {answer}")]
    Unhealthy {
        /// Target.
        target: String,
        /// The generation.
        generation: u32,
        /// The failing check.
        why: String,
        /// What the target did (reverted).
        answer: String,
    },
}

impl From<pideploy_transport::TransportError> for DeployError {
    fn from(e: pideploy_transport::TransportError) -> Self {
        DeployError::Transport(Box::new(e))
    }
}

/// How the agent is invoked on a target.
#[derive(Clone)]
pub struct AgentCall {
    /// Root the target applies generations to (`/` on a Pi; a directory in tests).
    pub root: String,
    /// Prefix with `sudo` (a non-root login).
    pub sudo: bool,
    /// The sudo password (`--ask-sudo-password`): fed as the first line of stdin to `sudo -S`, so
    /// it is never in an argv or a log. Without it sudo runs with `-n` and never prompts.
    pub sudo_password: Option<String>,
}

impl std::fmt::Debug for AgentCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password itself.
        f.debug_struct("AgentCall")
            .field("root", &self.root)
            .field("sudo", &self.sudo)
            .field(
                "sudo_password",
                &self.sudo_password.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

impl AgentCall {
    /// The agent applied by this user to a root directory, without sudo.
    pub fn plain(root: impl Into<String>) -> Self {
        AgentCall {
            root: root.into(),
            sudo: false,
            sudo_password: None,
        }
    }

    /// `sudo` with its options, or nothing for a root login.
    pub fn sudo_prefix(&self) -> Vec<String> {
        match (self.sudo, &self.sudo_password) {
            (false, _) => Vec::new(),
            // -p '': no prompt text mixed into the agent's error output.
            (true, Some(_)) => ["sudo", "-S", "-p", "", "--"].map(String::from).to_vec(),
            (true, None) => ["sudo", "-n", "--"].map(String::from).to_vec(),
        }
    }

    /// The command's stdin as sudo must see it: the password line (if any) before `rest`.
    /// sudo reads its password a byte at a time up to the newline, so `rest` reaches the command.
    pub fn stdin<'a>(&'a self, rest: &'a mut dyn Read) -> impl Read + 'a {
        let pw = match (&self.sudo, &self.sudo_password) {
            (true, Some(p)) => format!("{p}\n").into_bytes(),
            _ => Vec::new(),
        };
        io::Cursor::new(pw).chain(rest)
    }

    /// Where the agent is kept on the target: named by its content hash, so a deployer always runs
    /// its own version. (dropbear limits command lines to 9000 bytes, so it cannot go inline.)
    fn agent_path(&self) -> String {
        let h = pideploy_store::Sha256::of(AGENT.as_bytes()).to_hex();
        format!(
            "{}/pideploy/var/agent/agent-{}.sh",
            self.root.trim_end_matches('/'),
            &h[..16]
        )
    }

    /// The argv for one agent operation.
    pub fn argv(&self, op: &str, args: &[String]) -> Vec<String> {
        let mut v = self.sudo_prefix();
        v.extend([
            "sh".to_string(),
            self.agent_path(),
            op.to_string(),
            self.root.clone(),
        ]);
        v.extend(args.iter().cloned());
        v
    }

    /// The argv that installs the agent from stdin when it is missing (temp + rename), then runs `op`.
    pub fn install_argv(&self, op: &str) -> Vec<String> {
        // The file name carries the script's hash; a file that does not match it is replaced.
        const INSTALL: &str = r#"f=$1; shift
h=${f##*/agent-}; h=${h%.sh}
if [ -f "$f" ] && [ "$(sha256sum < "$f" | cut -c1-16)" = "$h" ]; then cat > /dev/null; else
  mkdir -p "${f%/*}" && cat > "$f.tmp.$$" && [ "$(sha256sum < "$f.tmp.$$" | cut -c1-16)" = "$h" ] \
    && mv -f "$f.tmp.$$" "$f" || { rm -f "$f.tmp.$$"; echo "pideploy-agent: could not install the agent at $f" >&2; exit 1; }
fi
exec sh "$f" "$@""#;
        let mut v = self.sudo_prefix();
        v.extend(["sh", "-c", INSTALL, "pideploy-install"].map(String::from));
        v.extend([self.agent_path(), op.to_string(), self.root.clone()]);
        v
    }
}

pub(crate) fn call(
    t: &mut dyn Transport,
    a: &AgentCall,
    step: &'static str,
    op: &str,
    args: &[String],
    stdin: &mut dyn Read,
) -> Result<String, DeployError> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = if op == "query" {
        a.install_argv(op)
    } else {
        a.argv(op, args)
    };
    let code = t.exec(&argv, &mut a.stdin(stdin), &mut out, &mut err)?;
    let err_text = String::from_utf8_lossy(&err).trim().to_string();
    if code != 0 {
        if err_text.contains("a password is required")
            || err_text.contains("a terminal is required")
        {
            return Err(DeployError::SudoPassword(t.describe()));
        }
        if code == 75 {
            let holder = err_text
                .rsplit("locked by ")
                .next()
                .unwrap_or("another deployer")
                .to_string();
            return Err(DeployError::Locked {
                target: t.describe(),
                holder,
            });
        }
        let last = err_text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no error output");
        let message = last.trim_start_matches("pideploy-agent: ").to_string();
        return Err(DeployError::Agent {
            step,
            target: t.describe(),
            message,
            output: err_text,
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// One round trip: what the target has.
pub fn query(t: &mut dyn Transport, a: &AgentCall) -> Result<TargetState, DeployError> {
    let out = call(
        t,
        a,
        "asking what the target has",
        "query",
        &[],
        &mut AGENT.as_bytes(),
    )?;
    TargetState::parse(&out).map_err(|m| DeployError::Agent {
        step: "query",
        target: t.describe(),
        message: m.to_string(),
        output: String::new(),
    })
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// Paths sent.
    pub sent: Vec<StorePath>,
    /// Paths the target already had.
    pub skipped: usize,
    /// Uncompressed bytes of the stream.
    pub raw_bytes: u64,
    /// Bytes that crossed the connection.
    pub wire_bytes: u64,
}

/// Sends every path of `closure` the target lacks, in one compressed stream.
pub fn copy(
    t: &mut dyn Transport,
    a: &AgentCall,
    store: &LocalStore,
    state: &TargetState,
    closure: &[StorePath],
) -> Result<CopyReport, DeployError> {
    copy_with_progress(t, a, store, state, closure, None, &mut |_, _| {})
}

/// The stream as the agent reads it: chunks the producing thread compressed, counted, with
/// `on(raw bytes packed so far, raw bytes in all)` after each. The producer sends an empty chunk
/// when it finished well; a channel that closes without it ends the read with an error, so the
/// target never takes a stream the deployer could not complete for a whole one.
struct StreamReader<'a> {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
    sent: u64,
    packed: &'a std::sync::atomic::AtomicU64,
    total: u64,
    on: &'a mut dyn FnMut(u64, u64),
}

impl Read for StreamReader<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(c) if c.is_empty() => self.done = true,
                Ok(c) => (self.chunk, self.at) = (c, 0),
                Err(_) => return Err(io::Error::other("the copy stream could not be completed")),
            }
        }
        let k = b.len().min(self.chunk.len() - self.at);
        b[..k].copy_from_slice(&self.chunk[self.at..self.at + k]);
        self.at += k;
        self.sent += k as u64;
        let packed = self.packed.load(std::sync::atomic::Ordering::Relaxed);
        (self.on)(packed.min(self.total), self.total);
        Ok(k)
    }
}

/// The producing end: compressed bytes in 256 KiB chunks.
struct ChunkWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 << 10;

/// The producer's error when the reading end is gone (the target's own failure says why).
fn stopped_reading() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the target stopped reading the copy stream",
    )
}

impl Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let c = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.send(c).map_err(|_| stopped_reading())
    }
}

/// [`copy`], calling `on(packed, total)` with the uncompressed bytes packed so far. Packing,
/// compressing, sending and the target's unpacking overlap: one thread packs and compresses while
/// this one sends.
pub fn copy_with_progress(
    t: &mut dyn Transport,
    a: &AgentCall,
    store: &LocalStore,
    state: &TargetState,
    closure: &[StorePath],
    shared: Option<&shared::SharedStreams>,
    on: &mut dyn FnMut(u64, u64),
) -> Result<CopyReport, DeployError> {
    let missing = state::to_send(state, closure);
    let mut report = CopyReport {
        skipped: closure.len() - missing.len(),
        ..Default::default()
    };
    if missing.is_empty() {
        return Ok(report);
    }
    let codec = if state.zstd {
        stream::Codec::Zstd
    } else {
        stream::Codec::Xz
    };
    let total: u64 = missing
        .iter()
        .map(|p| store.query(p).map(|i| i.nar_size).unwrap_or(0))
        .sum();
    if let Some(shared) = shared {
        let made = shared
            .get(store, &missing, codec)
            .map_err(|e| DeployError::Local(format!("building the copy stream: {e}")))?;
        let raw = made.raw;
        let mut reader = shared::MadeReader::open(made, total, on)
            .map_err(|e| DeployError::Local(format!("reading the copy stream: {e}")))?;
        call(
            t,
            a,
            "copying store paths",
            "receive",
            &[codec.word().to_string()],
            &mut reader,
        )?;
        report.wire_bytes = reader.sent();
        report.raw_bytes = raw;
        report.sent = missing;
        return Ok(report);
    }
    let packed = std::sync::atomic::AtomicU64::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    let (sent, made) = std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut w = ChunkWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            let raw = stream::write_stream(store, &missing, codec, &mut w, &packed)?;
            w.flush()?;
            w.tx.send(Vec::new()).map_err(|_| stopped_reading())?;
            Ok::<u64, io::Error>(raw)
        });
        let mut reader = StreamReader {
            rx,
            chunk: Vec::new(),
            at: 0,
            done: false,
            sent: 0,
            packed: &packed,
            total,
            on,
        };
        let sent = call(
            t,
            a,
            "copying store paths",
            "receive",
            &[codec.word().to_string()],
            &mut reader,
        )
        .map(|_| reader.sent);
        drop(reader);
        let made = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the stream thread panicked")));
        (sent, made)
    });
    // The deployer's own failure explains a cut stream better than the target's complaint; the
    // target's failure explains why the stream could not be handed over.
    let local = |e: io::Error| DeployError::Local(format!("building the copy stream: {e}"));
    let (sent, raw) = match (sent, made) {
        (Ok(n), Ok(raw)) => (n, raw),
        (_, Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => return Err(local(e)),
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(local(e)),
    };
    report.wire_bytes = sent;
    report.raw_bytes = raw;
    report.sent = missing;
    Ok(report)
}

/// Activation modes, as nixos-rebuild names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Activate, make default, write the boot entry.
    Switch,
    /// Make default and write the boot entry; activate on the next boot.
    Boot,
    /// Activate only.
    Test,
}

impl Mode {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Mode::Switch => "switch",
            Mode::Boot => "boot",
            Mode::Test => "test",
        }
    }
}

/// What activation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// A new generation N.
    Generation(u32),
    /// The closure was already the default and running.
    Unchanged,
    /// `test` mode ran it.
    Tested,
    /// Generation N is active and waits for the deployer's confirmation (magic rollback).
    Pending(u32),
}

/// What the switch step is asked to do.
#[derive(Debug, Clone)]
pub struct SwitchRequest<'a> {
    /// switch, boot or test.
    pub mode: Mode,
    /// The new generation's toplevel (already copied).
    pub toplevel: &'a StorePath,
    /// `user@host` of the deployer, recorded with the generation.
    pub deployer: &'a str,
    /// Unix time recorded with the generation.
    pub time: u64,
    /// The `--message`.
    pub message: &'a str,
    /// `root=` for the boot entry's command line (from the target's current entry).
    pub rootarg: &'a str,
    /// `generations_to_keep`: once the new generation is the default, older ones beyond the newest
    /// this many go (never the default, running or pending one); 0 keeps all.
    pub keep: u32,
    /// The new generation's secret set ([`secrets::bundle`]); `None` leaves secrets as they are.
    pub secrets: Option<&'a [u8]>,
}

/// Runs the agent's switch step without magic rollback.
pub fn activate(
    t: &mut dyn Transport,
    a: &AgentCall,
    r: &SwitchRequest,
) -> Result<Activation, DeployError> {
    activate_with(t, a, r, r.mode.word(), 0)
}

/// Runs the agent's switch step in `mode` (switch, boot, test, tryboot); with `confirm_secs` > 0
/// the target waits that long for a confirmation and reverts without one.
pub fn activate_with(
    t: &mut dyn Transport,
    a: &AgentCall,
    r: &SwitchRequest,
    mode: &str,
    confirm_secs: u64,
) -> Result<Activation, DeployError> {
    Ok(switch_with(t, a, r, mode, confirm_secs)?.0)
}

/// Generation numbers an agent answer reports as removed (`removed-generation N` lines).
pub fn removed_generations(answer: &str) -> Vec<u32> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("removed-generation ")?.trim().parse().ok())
        .collect()
}

/// [`activate_with`], also returning the generations `generations_to_keep` removed.
pub fn switch_with(
    t: &mut dyn Transport,
    a: &AgentCall,
    r: &SwitchRequest,
    mode: &str,
    confirm_secs: u64,
) -> Result<(Activation, Vec<u32>), DeployError> {
    let args = [
        mode.to_string(),
        r.toplevel.absolute(),
        r.deployer.to_string(),
        r.time.to_string(),
        r.message.replace(['"', '\\', '\n'], " "),
        r.rootarg.to_string(),
        confirm_secs.to_string(),
        r.keep.to_string(),
        if r.secrets.is_some() { "1" } else { "0" }.to_string(),
    ];
    let mut stdin = r.secrets.unwrap_or_default();
    let out = call(t, a, "activating", "switch", &args, &mut stdin)?;
    let pruned = removed_generations(&out);
    let last = out.lines().last().unwrap_or("");
    let number = |s: &str| -> Result<u32, DeployError> {
        s.trim()
            .parse()
            .map_err(|_| DeployError::Local(format!("agent said {last:?}")))
    };
    if let Some(n) = last.strip_prefix("generation ") {
        Ok((Activation::Generation(number(n)?), pruned))
    } else if let Some(n) = last.strip_prefix("pending ") {
        Ok((Activation::Pending(number(n)?), pruned))
    } else if last.starts_with("unchanged") {
        Ok((Activation::Unchanged, pruned))
    } else if last == "tested" {
        Ok((Activation::Tested, pruned))
    } else {
        Err(DeployError::Agent {
            step: "activating",
            target: t.describe(),
            message: format!("unexpected answer {last:?}"),
            output: String::new(),
        })
    }
}

/// Makes generation N the running default again.
pub fn rollback(
    t: &mut dyn Transport,
    a: &AgentCall,
    n: u32,
    deployer: &str,
) -> Result<(), DeployError> {
    call(
        t,
        a,
        "rolling back",
        "rollback",
        &[n.to_string(), deployer.to_string()],
        &mut io::empty(),
    )?;
    Ok(())
}

/// One generation's record.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationInfo {
    /// Number.
    pub generation: u32,
    /// Unix time it was made.
    pub time: u64,
    /// Its toplevel.
    pub toplevel: String,
    /// Who made it.
    pub deployer: String,
    /// Message.
    pub message: String,
}

/// The target's generation records.
pub fn generations(
    t: &mut dyn Transport,
    a: &AgentCall,
) -> Result<Vec<GenerationInfo>, DeployError> {
    let out = call(
        t,
        a,
        "listing generations",
        "generations",
        &[],
        &mut io::empty(),
    )?;
    let mut list = Vec::new();
    for chunk in out
        .split("--- ")
        .filter(|c| !c.trim().is_empty() && !c.starts_with("end"))
    {
        let json = chunk.split_once('\n').map(|(_, j)| j).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| DeployError::Local(format!("a generation record does not parse: {e}")))?;
        list.push(GenerationInfo {
            generation: v["generation"].as_u64().unwrap_or(0) as u32,
            time: v["time"].as_u64().unwrap_or(0),
            toplevel: v["toplevel"].as_str().unwrap_or("").to_string(),
            deployer: v["deployer"].as_str().unwrap_or("").to_string(),
            message: v["message"].as_str().unwrap_or("").to_string(),
        });
    }
    list.sort_by_key(|g| g.generation);
    Ok(list)
}

/// Runs the target's gc under the deploy lock (see [`gc::GcPolicy`]); `now` is the deployer's Unix time.
pub fn gc(
    t: &mut dyn Transport,
    a: &AgentCall,
    policy: gc::GcPolicy,
    deployer: &str,
    now: u64,
) -> Result<gc::GcReport, DeployError> {
    let (how, value) = match policy {
        gc::GcPolicy::Keep(n) => ("keep", u64::from(n)),
        gc::GcPolicy::OlderThan(s) => ("age", s),
    };
    let args = [
        how.to_string(),
        value.to_string(),
        deployer.to_string(),
        now.to_string(),
    ];
    let out = call(t, a, "collecting garbage", "gc", &args, &mut io::empty())?;
    gc::GcReport::parse(&out).map_err(|m| DeployError::Agent {
        step: "collecting garbage",
        target: t.describe(),
        message: m.to_string(),
        output: String::new(),
    })
}

/// Reads what `diff` and `dry-activate` compare of a toplevel on the target (changes nothing).
pub fn describe(
    t: &mut dyn Transport,
    a: &AgentCall,
    toplevel: &str,
) -> Result<diff::SystemDescription, DeployError> {
    let out = call(
        t,
        a,
        "reading a system's manifest",
        "describe",
        &[toplevel.to_string()],
        &mut io::empty(),
    )?;
    diff::SystemDescription::parse(&out).map_err(|m| DeployError::Agent {
        step: "reading a system's manifest",
        target: t.describe(),
        message: m.to_string(),
        output: String::new(),
    })
}

/// The same description, of a toplevel in the local store.
pub fn describe_local(
    store: &LocalStore,
    toplevel: &StorePath,
) -> Result<diff::SystemDescription, DeployError> {
    let d = store.physical(toplevel);
    let read = |rel: &str| -> Result<String, DeployError> {
        match std::fs::read_to_string(d.join(rel)) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(DeployError::Local(format!(
                "reading {}: {e}",
                d.join(rel).display()
            ))),
        }
    };
    let mut links = String::new();
    for l in ["kernel", "initrd"] {
        if let Ok(t) = std::fs::read_link(d.join(l)) {
            links += &format!("{l} {}\n", t.display());
        }
    }
    // Same normalisation as the agent's answer, which arrives line by line.
    let lines = |s: String| -> String { s.lines().map(|l| format!("{l}\n")).collect() };
    Ok(diff::SystemDescription {
        manifest: lines(read("manifest.json")?),
        boot: diff::boot_text(
            &lines(read("boot/entry")?),
            &lines(read("boot/kernel-params")?),
            &lines(read("boot/config.txt")?),
            &links,
        ),
    })
}
