//! Running one command on an open session: a non-blocking loop that feeds stdin, copies
//! stdout/stderr as they come, and checks that the server is still there when it goes quiet.
//!
//! libssh2 is driven non-blocking because a blocking read would stall the stdin feed (and the
//! other way round). Liveness is checked by opening and closing a spare channel after a quiet
//! spell: unlike `keepalive_send`, that is a round trip we can see complete, and libssh2 lets it
//! be retried after EAGAIN without corrupting the session.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use ssh2::{BlockDirections, Channel, Session};

use super::{is_connection_loss, is_would_block, lost};
use crate::{exit, local::read_retrying, TransportError};

const CHUNK: usize = 32 * 1024;
/// The longest an idle command waits on the socket before looking again.
const IDLE_CAP: Duration = Duration::from_millis(5);

pub(crate) struct Settings<'a> {
    pub target: &'a str,
    /// Shut down when a command is abandoned half-way: the session cannot be trusted after
    /// that (libssh2 may hold half a packet of it), and the socket must not be waited on.
    pub socket: &'a super::link::Link,
    pub keepalive: Duration,
    pub timeout: Duration,
}

/// Where the liveness check stands.
enum Probe {
    Idle,
    Opening(Instant),
    Closing(Instant, Channel),
    WaitingClose(Instant, Channel),
}

/// Why a command did not run to its end.
#[derive(Debug)]
pub(crate) enum Failure {
    /// It never started; the session is as good as its error says.
    NotStarted(TransportError),
    /// It was abandoned half-way; the session is unusable afterwards.
    Aborted(TransportError),
}

pub(crate) fn run(
    session: &Session,
    s: &Settings<'_>,
    line: &str,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i32, Failure> {
    session.set_blocking(true);
    let mut channel = session
        .channel_session()
        .map_err(|e| Failure::NotStarted(super::classify(s.target, "opening a channel", e)))?;
    channel
        .exec(line)
        .map_err(|e| Failure::NotStarted(super::classify(s.target, "starting the command", e)))?;
    session.set_blocking(false);
    let mut pump = Pump {
        session,
        s,
        channel: &mut channel,
        stdin_done: false,
        eof_sent: false,
        pending: Vec::new(),
        sent: 0,
        out_done: false,
        err_done: false,
        local_close_sent: false,
        half_sent: false,
        remote_closed: false,
        closed: false,
        probe: Probe::Idle,
        last_activity: Instant::now(),
        buf: vec![0u8; CHUNK],
    };
    if let Err(e) = pump.run(stdin, stdout, stderr) {
        // Cut the connection before the channels are dropped, so freeing them cannot block.
        let _ = s.socket.shutdown(std::net::Shutdown::Both);
        return Err(Failure::Aborted(e));
    }
    let code = match channel.exit_signal() {
        Ok(sig) if sig.exit_signal.is_some() => {
            exit::code_for_signal_name(sig.exit_signal.as_deref().unwrap_or(""))
        }
        _ => channel.exit_status().map_err(|e| {
            Failure::Aborted(super::classify(s.target, "reading the exit status", e))
        })?,
    };
    Ok(code)
}

struct Pump<'a> {
    session: &'a Session,
    s: &'a Settings<'a>,
    channel: &'a mut Channel,
    stdin_done: bool,
    eof_sent: bool,
    pending: Vec<u8>,
    sent: usize,
    out_done: bool,
    err_done: bool,
    local_close_sent: bool,
    /// libssh2 holds a partly sent data packet that only repeating the write can finish.
    half_sent: bool,
    /// The server's CHANNEL_CLOSE has arrived.
    remote_closed: bool,
    /// Both sides have closed: the exit status is final.
    closed: bool,
    probe: Probe,
    last_activity: Instant,
    buf: Vec<u8>,
}

impl Pump<'_> {
    fn run(
        &mut self,
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<(), TransportError> {
        loop {
            let mut progressed = self.feed_stdin(stdin)?;
            progressed |= self.drain(0, stdout)?;
            progressed |= self.drain(1, stderr)?;
            progressed |= self.finish()?;
            progressed |= self.check_alive()?;
            if self.closed && matches!(self.probe, Probe::Idle) {
                return Ok(());
            }
            if progressed {
                self.last_activity = Instant::now();
            } else {
                self.wait_for_socket()?;
            }
        }
    }

    /// Sleeps until the socket can move what libssh2 is blocked on, or `IDLE_CAP` passes.
    ///
    /// Waking on readiness instead of napping a growing 50 us-5 ms sent 512 MiB in 1.21 s instead
    /// of 1.30 s (benches/transport.sh). The cap bounds the wait for data libssh2 queued while
    /// reading for the other stream, and keeps liveness checks on time.
    fn wait_for_socket(&self) -> Result<(), TransportError> {
        let flags = match self.session.block_directions() {
            BlockDirections::Outbound => PollFlags::OUT,
            BlockDirections::Both => PollFlags::IN | PollFlags::OUT,
            BlockDirections::Inbound | BlockDirections::None => PollFlags::IN,
        };
        let timeout = Timespec::try_from(IDLE_CAP).expect("a small duration fits");
        let mut fds = [PollFd::new(self.s.socket, flags)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(self.lost("waiting on the socket", e)),
        }
        // A hang-up is reported even when not asked for; the next pass finds the loss, but a
        // socket that stays hung up must not make this loop spin.
        if !fds[0].revents().intersects(flags) && !fds[0].revents().is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    fn lost(&self, what: &str, reason: impl ToString) -> TransportError {
        lost(self.s.target, what, reason.to_string())
    }

    /// Sends what stdin has, then EOF. Returns whether anything moved.
    fn feed_stdin(&mut self, stdin: &mut dyn Read) -> Result<bool, TransportError> {
        let mut progressed = false;
        if !self.stdin_done && !self.half_sent && self.command_gone()? {
            // The command has exited without reading all of its input: nobody wants the rest.
            self.pending.clear();
            self.sent = 0;
            self.stdin_done = true;
        }
        if !self.stdin_done && self.sent == self.pending.len() {
            self.pending.resize(CHUNK, 0);
            let n = read_retrying(stdin, &mut self.pending).map_err(|source| {
                TransportError::Input {
                    host: self.s.target.to_string(),
                    source,
                }
            })?;
            self.pending.truncate(n);
            self.sent = 0;
            self.stdin_done = n == 0;
        }
        if self.sent < self.pending.len() {
            match self.channel.write(&self.pending[self.sent..]) {
                Ok(n) => {
                    self.sent += n;
                    self.half_sent = false;
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // Blocked on the socket (not on the window) means libssh2 holds part of a
                    // packet that must be finished by repeating this same write.
                    self.half_sent = matches!(
                        self.session.block_directions(),
                        BlockDirections::Outbound | BlockDirections::Both
                    );
                }
                // The channel refuses more data because the command's side is gone: stop feeding.
                Err(_) if self.channel.eof() => {
                    self.pending.clear();
                    self.sent = 0;
                    self.half_sent = false;
                    self.stdin_done = true;
                }
                Err(e) => return Err(self.lost("sending input to the command", e)),
            }
        }
        if self.stdin_done && self.sent == self.pending.len() && !self.eof_sent {
            match self.channel.send_eof() {
                Ok(()) => {
                    self.eof_sent = true;
                    progressed = true;
                }
                Err(e) if is_would_block(&e) => {}
                Err(e) if is_connection_loss(&e) => {
                    return Err(self.lost("sending end of input", e.message()))
                }
                // Refused because the channel is already closing: nothing left to tell the server.
                Err(_) => self.eof_sent = true,
            }
        }
        Ok(progressed)
    }

    /// Whether the server has closed the channel: the command exited and all output is in.
    fn command_gone(&mut self) -> Result<bool, TransportError> {
        if self.remote_closed {
            return Ok(true);
        }
        if !(self.out_done && self.err_done) {
            return Ok(false);
        }
        match self.channel.wait_close() {
            Ok(()) => {
                self.remote_closed = true;
                Ok(true)
            }
            Err(e) if is_would_block(&e) => Ok(false),
            Err(e) => Err(super::classify(
                self.s.target,
                "waiting for the command to end",
                e,
            )),
        }
    }

    /// Copies what the server has sent on one stream. Returns whether anything moved.
    fn drain(&mut self, stream: i32, out: &mut dyn Write) -> Result<bool, TransportError> {
        let done = if stream == 0 {
            &mut self.out_done
        } else {
            &mut self.err_done
        };
        if *done {
            return Ok(false);
        }
        let mut progressed = false;
        // Bounded so that a chatty command cannot starve the stdin feed.
        for _ in 0..16 {
            match self.channel.stream(stream).read(&mut self.buf) {
                Ok(0) => {
                    *done = true;
                    return Ok(true);
                }
                Ok(n) => {
                    out.write_all(&self.buf[..n])
                        .map_err(|source| TransportError::Output {
                            host: self.s.target.to_string(),
                            source,
                        })?;
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(lost(
                        self.s.target,
                        "reading the command's output",
                        e.to_string(),
                    ))
                }
            }
        }
        Ok(progressed)
    }

    /// Once all output is in, closes the channel so the exit status can be read.
    fn finish(&mut self) -> Result<bool, TransportError> {
        if self.closed || !(self.out_done && self.err_done) || !self.eof_sent {
            return Ok(false);
        }
        if !self.local_close_sent {
            match self.channel.close() {
                Ok(()) => self.local_close_sent = true,
                Err(e) if is_would_block(&e) => return Ok(false),
                Err(e) => return Err(super::classify(self.s.target, "closing the channel", e)),
            }
        }
        if self.command_gone()? {
            self.closed = true;
            return Ok(true);
        }
        Ok(false)
    }

    /// After `keepalive` of silence, asks the server for a round trip; no answer within
    /// `timeout` means it is gone. Returns whether the probe advanced (the server answered).
    fn check_alive(&mut self) -> Result<bool, TransportError> {
        let now = Instant::now();
        let overdue = |started: Instant| now.duration_since(started) > self.s.timeout;
        let dead = |started: Instant| {
            lost(
                self.s.target,
                "running the command",
                format!(
                    "no answer from the server for {:.0?} (nothing received for {:.0?})",
                    now.duration_since(started),
                    now.duration_since(self.last_activity)
                ),
            )
        };
        match std::mem::replace(&mut self.probe, Probe::Idle) {
            Probe::Idle => {
                if self.closed || now.duration_since(self.last_activity) < self.s.keepalive {
                    return Ok(false);
                }
                self.probe = Probe::Opening(now);
                Ok(false)
            }
            Probe::Opening(started) => match self.session.channel_session() {
                Ok(ch) => {
                    self.probe = Probe::Closing(started, ch);
                    Ok(true)
                }
                Err(e) if is_would_block(&e) => {
                    if overdue(started) {
                        return Err(dead(started));
                    }
                    self.probe = Probe::Opening(started);
                    Ok(false)
                }
                Err(e) if is_connection_loss(&e) => Err(lost(
                    self.s.target,
                    "checking the connection",
                    e.message().to_string(),
                )),
                // The server answered, even if with a refusal: it is alive.
                Err(_) => Ok(true),
            },
            Probe::Closing(started, mut ch) => match ch.close() {
                Ok(()) => {
                    self.probe = Probe::WaitingClose(started, ch);
                    Ok(true)
                }
                Err(e) if is_would_block(&e) => {
                    if overdue(started) {
                        return Err(dead(started));
                    }
                    self.probe = Probe::Closing(started, ch);
                    Ok(false)
                }
                Err(e) => Err(lost(
                    self.s.target,
                    "checking the connection",
                    e.message().to_string(),
                )),
            },
            Probe::WaitingClose(started, mut ch) => match ch.wait_close() {
                Ok(()) => Ok(true),
                Err(e) if is_would_block(&e) => {
                    if overdue(started) {
                        return Err(dead(started));
                    }
                    self.probe = Probe::WaitingClose(started, ch);
                    Ok(false)
                }
                Err(e) => Err(lost(
                    self.s.target,
                    "checking the connection",
                    e.message().to_string(),
                )),
            },
        }
    }
}
