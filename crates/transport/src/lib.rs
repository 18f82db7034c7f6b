//! How pideploy runs commands on a target: one argv at a time, with stdin streamed in and
//! stdout/stderr streamed out, either on this machine ([`LocalTransport`]) or on a Pi over one
//! reused SSH session ([`SshTransport`]). The SSH transport follows `~/.ssh/config` (HostName,
//! User, Port, IdentityFile) including `ProxyJump`: a target behind jump hosts is reached
//! through them, each checked against known_hosts and logged in to like the target.
//!
//! Commands are always argv lists; they are turned into a shell command line only by
//! [`shell_join`], which quotes each argument, never by pasting strings together.
#![deny(missing_docs)]

mod error;
mod exit;
mod local;
mod shell;
mod ssh;

pub use error::TransportError;
pub use local::LocalTransport;
pub use shell::{shell_join, shell_quote};
pub use ssh::{SshOptions, SshTransport};

/// Runs one argv on the target.
///
/// The argv is joined with POSIX single-quote escaping per argument ([`shell_join`]) and run by
/// the target's shell.
pub trait Transport: Send {
    /// Streams `stdin` to the command (then EOF), copies its stdout/stderr into the writers as
    /// they arrive, returns the exit code.
    ///
    /// A command killed by a signal reports `128 + signal number`, as a shell would.
    fn exec(
        &mut self,
        argv: &[String],
        stdin: &mut dyn std::io::Read,
        stdout: &mut dyn std::io::Write,
        stderr: &mut dyn std::io::Write,
    ) -> Result<i32, TransportError>;

    /// "pi@host:22" or "local".
    fn describe(&self) -> String;
}

/// Convenience on top of exec: no stdin, capture stdout+stderr, return (code, stdout, stderr).
pub fn run(
    t: &mut dyn Transport,
    argv: &[String],
) -> Result<(i32, Vec<u8>, Vec<u8>), TransportError> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = t.exec(argv, &mut std::io::empty(), &mut out, &mut err)?;
    Ok((code, out, err))
}

/// Checks an argv before it is sent anywhere: it must have a command and no NUL bytes.
fn validate_argv(argv: &[String], host: &str) -> Result<(), TransportError> {
    if argv.is_empty() {
        return Err(TransportError::EmptyCommand {
            host: host.to_string(),
        });
    }
    if let Some((index, arg)) = argv.iter().enumerate().find(|(_, a)| a.contains('\0')) {
        return Err(TransportError::NulInArgument {
            index,
            arg: arg.clone(),
        });
    }
    Ok(())
}
