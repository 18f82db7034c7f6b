//! Running commands on this machine, through `sh -c`, exactly as a remote shell would run them.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use crate::{exit, shell_join, validate_argv, Transport, TransportError};

const CHUNK: usize = 64 * 1024;
const HOST: &str = "local";

/// Runs argv through `sh -c <shell_join(argv)>` on this machine (used for tests and for deploying
/// into a local root).
#[derive(Debug, Default, Clone)]
pub struct LocalTransport;

impl LocalTransport {
    /// A transport for this machine.
    pub fn new() -> Self {
        LocalTransport
    }
}

/// What the pipe-reading threads hand back to the thread that owns the caller's writers.
enum Piece {
    Out(Vec<u8>),
    Err(Vec<u8>),
    Failed(&'static str, std::io::Error),
}

impl Transport for LocalTransport {
    fn exec(
        &mut self,
        argv: &[String],
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<i32, TransportError> {
        validate_argv(argv, HOST)?;
        let line = shell_join(argv);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| TransportError::Local {
                what: format!("starting `sh -c {line}`"),
                source,
            })?;

        // The caller's reader and writers are not Send, so they stay on this thread; only owned
        // buffers cross to the threads that sit on the pipes.
        let (piece_tx, piece_rx) = mpsc::sync_channel::<Piece>(16);
        let child_out = child.stdout.take().expect("stdout is piped");
        let child_err = child.stderr.take().expect("stderr is piped");
        let out_thread = spawn_pipe_reader(
            child_out,
            piece_tx.clone(),
            Piece::Out,
            "reading the command's stdout",
        );
        let err_thread = spawn_pipe_reader(
            child_err,
            piece_tx,
            Piece::Err,
            "reading the command's stderr",
        );

        let (stdin_tx, stdin_rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let mut child_in = child.stdin.take().expect("stdin is piped");
        let in_thread = thread::spawn(move || {
            for chunk in stdin_rx {
                // A command that exits without reading all of its input closes the pipe; that
                // is its business, not an error of the transport.
                if child_in.write_all(&chunk).is_err() {
                    return;
                }
            }
        });

        let result = pump(stdin, stdin_tx, &piece_rx, stdout, stderr);
        // On an early error the threads end by themselves once the child is gone.
        if result.is_err() {
            let _ = child.kill();
        }
        drop(piece_rx);
        let _ = in_thread.join();
        let _ = out_thread.join();
        let _ = err_thread.join();
        let status = child.wait().map_err(|source| TransportError::Local {
            what: format!("waiting for `sh -c {line}`"),
            source,
        })?;
        result?;
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(sig)) => exit::code_for_signal_number(sig),
            (None, None) => 255,
        })
    }

    fn describe(&self) -> String {
        HOST.to_string()
    }
}

fn spawn_pipe_reader(
    mut pipe: impl Read + Send + 'static,
    tx: SyncSender<Piece>,
    wrap: fn(Vec<u8>) -> Piece,
    what: &'static str,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.send(wrap(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Piece::Failed(what, e));
                    return;
                }
            }
        }
    })
}

/// Feeds stdin to the child and copies its output until both output pipes are closed.
fn pump(
    stdin: &mut dyn Read,
    stdin_tx: SyncSender<Vec<u8>>,
    pieces: &mpsc::Receiver<Piece>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), TransportError> {
    let mut stdin_tx = Some(stdin_tx);
    let mut pending: Option<Vec<u8>> = None;
    loop {
        // Input first, without ever blocking on the child: a full pipe just means "later".
        if stdin_tx.is_some() && pending.is_none() {
            let mut buf = vec![0u8; CHUNK];
            let n = read_retrying(stdin, &mut buf).map_err(|source| TransportError::Input {
                host: HOST.into(),
                source,
            })?;
            if n == 0 {
                // Dropping the sender lets the writer thread close the pipe: EOF for the child.
                stdin_tx = None;
            } else {
                buf.truncate(n);
                pending = Some(buf);
            }
        }
        if let (Some(tx), Some(chunk)) = (&stdin_tx, pending.take()) {
            match tx.try_send(chunk) {
                Ok(()) => {}
                Err(TrySendError::Full(chunk)) => pending = Some(chunk),
                // The child closed its stdin; stop feeding it.
                Err(TrySendError::Disconnected(_)) => stdin_tx = None,
            }
        }
        let wait = match (&stdin_tx, &pending) {
            (Some(_), None) => Duration::ZERO,
            // Input is waiting for room in the pipe: look again soon.
            (Some(_), Some(_)) => Duration::from_millis(1),
            (None, _) => Duration::from_millis(50),
        };
        match pieces.recv_timeout(wait) {
            Ok(piece) => write_piece(piece, stdout, stderr)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        // Drain whatever else is ready so output is not starved by a fast input.
        while let Ok(piece) = pieces.try_recv() {
            write_piece(piece, stdout, stderr)?;
        }
    }
}

fn write_piece(
    piece: Piece,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<(), TransportError> {
    let out = |source| TransportError::Output {
        host: HOST.into(),
        source,
    };
    match piece {
        Piece::Out(b) => stdout.write_all(&b).map_err(out),
        Piece::Err(b) => stderr.write_all(&b).map_err(out),
        Piece::Failed(what, source) => Err(TransportError::Local {
            what: what.to_string(),
            source,
        }),
    }
}

pub(crate) fn read_retrying(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
