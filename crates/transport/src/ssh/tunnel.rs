//! One SSH connection carried inside another: a `direct-tcpip` channel through a jump host,
//! bridged by a thread to a local socket pair whose other end the next session talks over.
//!
//! libssh2 needs a real file descriptor under a session, hence the socket pair. The thread owns
//! the jump host's session outright (a libssh2 session must not be driven from two threads),
//! runs it non-blocking, moves bytes both ways, and sleeps in poll(2) on both sockets when
//! neither side has anything to do.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use ssh2::{BlockDirections, Channel, Session};

use super::link::Link;
use super::{is_connection_loss, is_would_block, millis};
use crate::TransportError;

const CHUNK: usize = 32 * 1024;

/// Longest sleep in poll: how late the thread may notice that it is asked to stop.
const POLL_CAP: Duration = Duration::from_millis(100);

/// How long waiting for the far end to close, and then saying goodbye to the jump host, may
/// each take when the tunnel is closed.
const GOODBYE: Duration = Duration::from_millis(500);

/// A running tunnel through one jump host. Dropping it closes the tunnel and waits for its thread.
pub(crate) struct Tunnel {
    /// The jump host, for messages.
    name: String,
    stop: Arc<AtomicBool>,
    /// Why the thread gave up, if it did.
    failure: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("jump", &self.name)
            .field("failure", &self.failure())
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// Starts moving bytes between `channel` (on `session`, which runs over `link`) and a new
    /// socket pair; returns the tunnel and the pair's other end, for the next session.
    pub fn start(
        name: String,
        session: Session,
        link: Link,
        channel: Channel,
    ) -> Result<(Tunnel, UnixStream), TransportError> {
        let local_err = |what: &str, source| TransportError::Local {
            what: format!("{what} for the tunnel through {name}"),
            source,
        };
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| local_err("creating a socket pair", e))?;
        ours.set_nonblocking(true)
            .map_err(|e| local_err("setting up the socket pair", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Mutex::new(None));
        session.set_blocking(false);
        let pump = Pump {
            session,
            channel,
            link,
            local: ours,
            stop: Arc::clone(&stop),
            to_local: Buffer::default(),
            to_remote: Buffer::default(),
            remote_eof: false,
            local_eof: false,
            eof_sent: false,
            local_shut: false,
            local_gone: false,
            buf: vec![0u8; CHUNK],
        };
        let report = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name("ssh-jump".into())
            .spawn(move || pump.run(&report))
            .map_err(|e| local_err("starting a thread", e))?;
        Ok((
            Tunnel {
                name,
                stop,
                failure,
                thread: Some(thread),
            },
            theirs,
        ))
    }

    /// The jump host, `alias (hostname:port)`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the tunnel broke down, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().map(|f| f.clone()).unwrap_or(None)
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            // The thread stops within POLL_CAP + 2 * GOODBYE, so this cannot hang.
            let _ = thread.join();
        }
    }
}

/// The tunnels to a target, first hop first. Dropped last hop first: each tunnel carries the
/// next one's session, which should say goodbye before the way out is closed.
#[derive(Debug, Default)]
pub(crate) struct Chain(Vec<Tunnel>);

impl Chain {
    pub fn push(&mut self, tunnel: Tunnel) {
        self.0.push(tunnel);
    }

    pub fn tunnels(&self) -> &[Tunnel] {
        &self.0
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        while let Some(tunnel) = self.0.pop() {
            drop(tunnel);
        }
    }
}

/// Bytes read from one side and not yet all written to the other.
#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    at: usize,
}

impl Buffer {
    fn is_empty(&self) -> bool {
        self.at == self.data.len()
    }

    fn fill(&mut self, bytes: &[u8]) {
        self.data.clear();
        self.data.extend_from_slice(bytes);
        self.at = 0;
    }

    fn pending(&self) -> &[u8] {
        &self.data[self.at..]
    }

    fn clear(&mut self) {
        self.data.clear();
        self.at = 0;
    }
}

struct Pump {
    session: Session,
    channel: Channel,
    /// The jump session's own socket, to wait on and to cut.
    link: Link,
    /// Our end of the socket pair.
    local: UnixStream,
    stop: Arc<AtomicBool>,
    /// From the jump host, for the next session.
    to_local: Buffer,
    /// From the next session, for the jump host.
    to_remote: Buffer,
    /// The forwarded connection has been closed at the far end.
    remote_eof: bool,
    /// The next session has closed its end.
    local_eof: bool,
    eof_sent: bool,
    local_shut: bool,
    /// Writing to the next session failed: it is gone, whatever it is sent is dropped.
    local_gone: bool,
    buf: Vec<u8>,
}

impl Pump {
    fn run(mut self, report: &Mutex<Option<String>>) {
        let result = self.pump();
        if let Err(reason) = &result {
            if let Ok(mut slot) = report.lock() {
                *slot = Some(reason.clone());
            }
        }
        // The failure is recorded before the next session can see its socket close, so that
        // whoever reports the lost connection can say where it broke.
        let _ = self.local.shutdown(Shutdown::Both);
        self.session.set_timeout(millis(GOODBYE));
        if result.is_ok() {
            self.session.set_blocking(true);
            let _ = self.session.disconnect(None, "pideploy is done", None);
        }
        // Cut the socket before the channel and session are freed, so freeing cannot wait on it.
        let _ = self.link.shutdown(Shutdown::Both);
        self.session.set_blocking(true);
    }

    /// Moves bytes until the tunnel is finished (Ok) or the jump host is lost (Err, why).
    fn pump(&mut self) -> Result<(), String> {
        let mut stop_by: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::Acquire) {
                // The next session's goodbye may still be on the way, and a jump host told
                // goodbye itself drops what it has not yet passed on: wait for the far end to
                // close, but not for a host that is not answering.
                let deadline = *stop_by.get_or_insert_with(|| Instant::now() + GOODBYE);
                if self.finished() || Instant::now() > deadline {
                    return Ok(());
                }
            }
            let moved = self.step()?;
            if self.finished() {
                return Ok(());
            }
            if !moved {
                self.wait()?;
            }
        }
    }

    /// Both ends have closed and everything has been passed on.
    fn finished(&self) -> bool {
        self.local_eof
            && self.eof_sent
            && (self.remote_eof || self.local_gone)
            && self.to_local.is_empty()
    }

    /// Whether the channel has anything to do: something to read into an empty buffer, or
    /// something to write.
    fn wants_channel(&self) -> bool {
        (self.to_local.is_empty() && !self.remote_eof && !self.local_gone)
            || !self.to_remote.is_empty()
            || (self.local_eof && !self.eof_sent)
    }

    /// One round in both directions. Returns whether anything moved.
    fn step(&mut self) -> Result<bool, String> {
        let mut moved = false;

        // Jump host -> next session.
        if self.to_local.is_empty() && !self.remote_eof && !self.local_gone {
            match self.channel.read(&mut self.buf) {
                Ok(0) => {
                    // libssh2 also reads 0 when the connection itself is gone; only a real EOF
                    // from the far end shows in `eof()`.
                    if !self.channel.eof() {
                        return Err("the connection to the jump host was lost".into());
                    }
                    self.remote_eof = true;
                    moved = true;
                }
                Ok(n) => {
                    self.to_local.fill(&self.buf[..n]);
                    moved = true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Err(format!("lost the connection to the jump host ({e})")),
            }
        }
        if !self.to_local.is_empty() {
            match (&self.local).write(self.to_local.pending()) {
                Ok(n) => {
                    self.to_local.at += n;
                    moved = true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(_) => {
                    self.local_gone = true;
                    self.to_local.clear();
                    moved = true;
                }
            }
        }
        if self.remote_eof && self.to_local.is_empty() && !self.local_shut {
            let _ = self.local.shutdown(Shutdown::Write);
            self.local_shut = true;
            moved = true;
        }

        // Next session -> jump host.
        if self.to_remote.is_empty() && !self.local_eof {
            match (&self.local).read(&mut self.buf) {
                Ok(0) => {
                    self.local_eof = true;
                    moved = true;
                }
                Ok(n) => {
                    self.to_remote.fill(&self.buf[..n]);
                    moved = true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                // Reset by the next session: it has gone.
                Err(_) => {
                    self.local_eof = true;
                    moved = true;
                }
            }
        }
        if !self.to_remote.is_empty() {
            // The same bytes are offered again after WouldBlock, which is what libssh2 needs
            // to finish a packet it has sent half of.
            match self.channel.write(self.to_remote.pending()) {
                Ok(n) => {
                    self.to_remote.at += n;
                    moved |= n > 0;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    return Err(format!(
                        "lost the connection to the jump host while sending ({e})"
                    ))
                }
            }
        }
        if self.local_eof && self.to_remote.is_empty() && !self.eof_sent {
            match self.channel.send_eof() {
                Ok(()) => {
                    self.eof_sent = true;
                    moved = true;
                }
                Err(e) if is_would_block(&e) => {}
                Err(e) if is_connection_loss(&e) => {
                    return Err(format!(
                        "the connection to the jump host was lost: {}",
                        e.message()
                    ))
                }
                // Refused because the channel is closing already: nothing left to tell.
                Err(_) => {
                    self.eof_sent = true;
                    moved = true;
                }
            }
        }
        Ok(moved)
    }

    /// Sleeps until one of the sockets can move what is waiting, or POLL_CAP has passed.
    fn wait(&mut self) -> Result<(), String> {
        let mut remote = PollFlags::empty();
        if self.wants_channel() {
            remote |= PollFlags::IN;
            if matches!(
                self.session.block_directions(),
                BlockDirections::Outbound | BlockDirections::Both
            ) {
                remote |= PollFlags::OUT;
            }
        }
        let mut local = PollFlags::empty();
        if self.to_remote.is_empty() && !self.local_eof {
            local |= PollFlags::IN;
        }
        if !self.to_local.is_empty() {
            local |= PollFlags::OUT;
        }
        let timeout = Timespec::try_from(POLL_CAP).expect("a small duration fits");
        let mut fds = [
            PollFd::new(&self.link, remote),
            PollFd::new(&self.local, local),
        ];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(format!("waiting on the jump host's socket failed: {e}")),
        }
        // Hang-ups are reported even when not asked for. If that is all poll saw, a closed
        // socket nobody reads yet would make this loop spin: nap instead.
        let wanted = fds[0].revents().intersects(remote) || fds[1].revents().intersects(local);
        let other = !(fds[0].revents().is_empty() && fds[1].revents().is_empty());
        if other && !wanted {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}
