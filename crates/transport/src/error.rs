//! The one error type of this crate.

use std::path::PathBuf;

use crate::ssh::{key_file_name, known_hosts_name};
use std::time::Duration;

/// Everything that can go wrong while reaching a target or running a command on it.
///
/// Each message names the target and says what to do about it, so the CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The target string given by the user could not be understood.
    #[error("invalid ssh target {target:?}: {reason}; write it as `user@host`, `user@host:port` or `host`")]
    InvalidTarget {
        /// The string as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An argument cannot be passed through a shell command line.
    #[error("argument {index} of the command ({arg:?}) contains a NUL byte, which no command line can carry; remove it")]
    NulInArgument {
        /// Position in the argv.
        index: usize,
        /// The argument itself.
        arg: String,
    },

    /// An empty argv was given.
    #[error("no command given: the argv to run on {host} is empty")]
    EmptyCommand {
        /// The target.
        host: String,
    },

    /// The ssh config file could not be read or parsed.
    #[error("reading ssh config {path} failed: {source}; fix the file or pass another one")]
    SshConfig {
        /// The config file.
        path: PathBuf,
        /// The parser's complaint.
        #[source]
        source: ssh2_config::SshParserError,
    },

    /// A `ProxyJump` setting cannot be followed: a malformed entry, or jump hosts that lead in a circle.
    #[error("ProxyJump {jump:?} of {host} cannot be followed: {reason}; fix the ssh config (OpenSSH syntax: `ProxyJump [user@]host[:port][,...]`, or `none`)")]
    BadProxyJump {
        /// The host whose ProxyJump it is.
        host: String,
        /// The ProxyJump value as configured.
        jump: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Reaching the target failed at one of the jump hosts on the way (connecting to it, its host
    /// key, logging in, or its forwarding to the next host).
    #[error("connecting to {target} via jump host {jump}: {source}")]
    JumpHost {
        /// The final target, `user@host:port`.
        target: String,
        /// The jump host that failed, `alias (hostname:port)`.
        jump: String,
        /// What went wrong there; the same errors as for a direct connection.
        #[source]
        source: Box<TransportError>,
    },

    /// A jump host did not open the forwarded connection to the next host.
    #[error("jump host {jump} could not open a connection to {to}: {source}; check that {to} is the right address as seen from the jump host and is up, and that the jump host's sshd allows forwarding (`AllowTcpForwarding yes`)")]
    Forward {
        /// The jump host, `user@host:port`.
        jump: String,
        /// The next host, `host:port` as the jump host was asked to reach it.
        to: String,
        /// libssh2's error (the server's refusal).
        #[source]
        source: ssh2::Error,
    },

    /// The host name did not resolve.
    #[error("cannot resolve {host}:{port}: {source}; check the name (or use the Pi's IP address)")]
    Resolve {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
        /// Resolver error.
        #[source]
        source: std::io::Error,
    },

    /// The TCP connection could not be made.
    #[error("connecting to {host}:{port} failed (timeout {timeout:?}): {source}; check that the Pi is powered, on the network and runs sshd on port {port}")]
    Connect {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The connect timeout that applied.
        timeout: Duration,
        /// The socket error of the last address tried.
        #[source]
        source: std::io::Error,
    },

    /// The server's host key is not in known_hosts.
    #[error(
        "the host key of {host} is not known: {key_type} {fingerprint} (not in {known_hosts}). Check this fingerprint on the Pi (`ssh-keygen -lf /etc/ssh/ssh_host_{key_file}_key.pub`), then pass --accept-new, or run `ssh-keyscan -p {port} {hostname} >> {known_hosts}`",
        host = known_hosts_name(.hostname, *.port),
        key_file = key_file_name(.key_type),
        known_hosts = .known_hosts.display()
    )]
    UnknownHostKey {
        /// The host name as connected to.
        hostname: String,
        /// The port.
        port: u16,
        /// e.g. `ssh-ed25519`.
        key_type: String,
        /// `SHA256:…` as OpenSSH prints it.
        fingerprint: String,
        /// The known_hosts file consulted.
        known_hosts: PathBuf,
    },

    /// The server's host key differs from the one recorded for it.
    #[error(
        "HOST KEY CHANGED for {host}: {known_hosts} has {known_fingerprint} but the server sent {fingerprint}; possible man-in-the-middle attack, refusing to connect. If the Pi was reinstalled and you trust the new key, remove the old one with `ssh-keygen -R '{host}' -f {known_hosts}` and connect again",
        known_hosts = .known_hosts.display()
    )]
    HostKeyChanged {
        /// `host` or `[host]:port`.
        host: String,
        /// Type and fingerprint of the key the server sent (`ssh-ed25519 SHA256:…`).
        fingerprint: String,
        /// Type, fingerprint and file:line of each key recorded for the host.
        known_fingerprint: String,
        /// The known_hosts file consulted.
        known_hosts: PathBuf,
    },

    /// The server's host key is marked `@revoked` in known_hosts.
    #[error(
        "the host key of {host} is REVOKED: {fingerprint} is marked @revoked at {known_hosts}:{line}; refusing to connect (--accept-new never records a revoked key). The Pi needs new host keys: regenerate them there (`ssh-keygen -A` after removing /etc/ssh/ssh_host_*) and record the new one",
        known_hosts = .known_hosts.display()
    )]
    HostKeyRevoked {
        /// `host` or `[host]:port`.
        host: String,
        /// Type and fingerprint of the key the server sent.
        fingerprint: String,
        /// The known_hosts file consulted.
        known_hosts: PathBuf,
        /// The `@revoked` line.
        line: usize,
    },

    /// Only `@cert-authority` lines name the host, and pideploy does not check host certificates.
    #[error(
        "{host} is trusted in {known_hosts}:{line} through a @cert-authority line, but pideploy does not check host certificates; refusing to connect. Record the host's own key ({fingerprint}, check it on the Pi with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`) in known_hosts",
        known_hosts = .known_hosts.display()
    )]
    HostCertAuthority {
        /// `host` or `[host]:port`.
        host: String,
        /// Type and fingerprint of the key the server sent.
        fingerprint: String,
        /// The known_hosts file consulted.
        known_hosts: PathBuf,
        /// The first `@cert-authority` line naming the host.
        line: usize,
    },

    /// known_hosts could not be read or written.
    #[error("{what} {path} failed: {source}; check the file's permissions or pass another known_hosts file")]
    KnownHostsIo {
        /// "reading" / "appending to".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An identity file named explicitly does not exist or cannot be read.
    #[error("identity file {path} cannot be read: {source}; check the path given with --identity or IdentityFile")]
    IdentityFile {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A key is encrypted and no passphrase was given.
    #[error("identity file {key} is protected by a passphrase and none was given (logging in to {host}); pass the passphrase, or load the key into ssh-agent with `ssh-add {key}`")]
    PassphraseRequired {
        /// The encrypted key.
        key: PathBuf,
        /// The target.
        host: String,
    },

    /// No authentication method was accepted.
    #[error("authentication on {host} failed (tried: {tried}); install your public key on the Pi (`ssh-copy-id -p {port} {user}@{hostname}`), or name the right key with --identity")]
    AuthFailed {
        /// The user name.
        user: String,
        /// `user@host:port` for display.
        host: String,
        /// The bare host name.
        hostname: String,
        /// The port.
        port: u16,
        /// What was tried and how each attempt ended.
        tried: String,
    },

    /// An SSH protocol step failed for a reason other than a lost connection.
    #[error("ssh {what} with {host} failed: {source}")]
    Ssh {
        /// The step, e.g. "handshake".
        what: &'static str,
        /// The target.
        host: String,
        /// libssh2's error.
        #[source]
        source: ssh2::Error,
    },

    /// The connection died or stopped answering.
    #[error("connection to {host} lost while {what}: {reason}; check that the Pi is up and reachable, then run the command again")]
    Disconnected {
        /// The target.
        host: String,
        /// What was going on.
        what: String,
        /// What was observed.
        reason: String,
    },

    /// Starting or talking to a local process failed.
    #[error("{what} failed: {source}")]
    Local {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Reading the data to send to the command failed.
    #[error("reading the input for the command on {host} failed: {source}")]
    Input {
        /// The target.
        host: String,
        /// The reader's error.
        #[source]
        source: std::io::Error,
    },

    /// Writing the command's output to the caller's writer failed.
    #[error("writing the output of the command on {host} failed: {source}")]
    Output {
        /// The target.
        host: String,
        /// The writer's error.
        #[source]
        source: std::io::Error,
    },
}
