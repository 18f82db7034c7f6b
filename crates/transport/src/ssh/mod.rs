//! The SSH transport: one libssh2 session per target, one channel per command.
//!
//! A target behind jump hosts (`ProxyJump` in the ssh config) is reached the way OpenSSH
//! reaches it: one session per jump host, each checked against known_hosts and logged in to
//! like the target, each forwarding (`direct-tcpip`) to the next host. A [`tunnel::Tunnel`]
//! thread per jump host carries the next session's bytes over that forwarded channel.

mod auth;
mod exec;
mod jump;
mod known_hosts;
mod link;
mod options;
mod tunnel;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

use ssh2::{ErrorCode, MethodType, Session};

pub(crate) use known_hosts::key_file_name;
pub use options::SshOptions;

/// The host as written in known_hosts: `host` on port 22, `[host]:port` elsewhere (OpenSSH's rule).
pub(crate) fn known_hosts_name(hostname: &str, port: u16) -> String {
    if port == 22 {
        hostname.to_string()
    } else {
        format!("[{hostname}]:{port}")
    }
}
use link::Link;
use options::{Environment, Resolved};
use tunnel::{Chain, Tunnel};

use crate::{shell_join, validate_argv, Transport, TransportError};

/// A connection to one target: ONE ssh2 Session, reused for every exec (one channel per exec).
///
/// When the ssh config names `ProxyJump` hosts for the target, the session runs through them:
/// the transport then also holds one session and one tunnel thread per jump host, and closes
/// them when it is dropped. [`Transport::describe`] still names the target alone.
pub struct SshTransport {
    session: Session,
    /// A second handle on the socket, to cut a connection found dead so that nothing later
    /// (closing channels, freeing the session) waits on it again.
    socket: Link,
    target: String,
    fingerprint: String,
    keepalive: Duration,
    timeout: Duration,
    /// Set once the connection is known to be dead: every later exec fails at once.
    broken: Option<String>,
    /// The jump hosts the session runs through, first hop first. Declared after `session` so
    /// that the session is freed before the tunnels under it close.
    tunnels: Chain,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("target", &self.target)
            .field("fingerprint", &self.fingerprint)
            .field("broken", &self.broken)
            .field("tunnels", &self.tunnels)
            .finish_non_exhaustive()
    }
}

impl SshTransport {
    /// Connects, checks the host key against known_hosts and logs in.
    ///
    /// With `ProxyJump` in the ssh config, each jump host is connected to, checked and logged
    /// in to first, in order, the same way (its own HostName, User, Port and IdentityFile from
    /// the config; the same known_hosts and `accept_new`). A failure there is a
    /// [`TransportError::JumpHost`] naming the hop.
    pub fn connect(o: &SshOptions) -> Result<Self, TransportError> {
        let env = Environment::from_process();
        let r = options::resolve(o, &env)?;
        let hops = jump::plan(o, &r, &env)?;
        let target = r.describe();

        let mut tunnels = Chain::default();
        let mut link = None;
        for (i, hop) in hops.iter().enumerate() {
            let next = hops.get(i + 1).unwrap_or(&r);
            let (tunnel, end) =
                open_tunnel(link.take(), hop, next, o).map_err(|e| TransportError::JumpHost {
                    target: target.clone(),
                    jump: hop.hop_name(),
                    source: Box::new(explain_loss(e, tunnels.tunnels())),
                })?;
            tunnels.push(tunnel);
            link = Some(Link::Unix(end));
        }
        let socket = match link {
            Some(l) => l,
            None => Link::Tcp(tcp_connect(&r, o.connect_timeout)?),
        };
        let (session, fingerprint) =
            open_session(&socket, &r, o).map_err(|e| explain_loss(e, tunnels.tunnels()))?;
        session.set_keepalive(true, o.keepalive.as_secs().max(1) as u32);

        Ok(SshTransport {
            session,
            socket,
            target,
            fingerprint,
            keepalive: o.keepalive,
            timeout: o.connect_timeout,
            broken: None,
            tunnels,
        })
    }

    /// The server's host key fingerprint, `SHA256:…` as OpenSSH prints it.
    pub fn host_key_fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// After a command was abandoned the session cannot be trusted: later execs fail at once.
    fn mark_broken(&mut self, err: &TransportError) {
        self.broken = Some(match err {
            TransportError::Disconnected { reason, .. } => reason.clone(),
            other => format!("an earlier command was abandoned: {other}"),
        });
        // Cut the socket so libssh2 sees the loss at once instead of waiting on a silent peer.
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

impl Transport for SshTransport {
    fn exec(
        &mut self,
        argv: &[String],
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<i32, TransportError> {
        validate_argv(argv, &self.target)?;
        if let Some(reason) = &self.broken {
            return Err(lost(
                &self.target,
                "starting a command",
                format!("the connection was lost earlier ({reason})"),
            ));
        }
        let line = shell_join(argv);
        let result = exec::run(
            &self.session,
            &exec::Settings {
                target: &self.target,
                socket: &self.socket,
                keepalive: self.keepalive,
                timeout: self.timeout,
            },
            &line,
            stdin,
            stdout,
            stderr,
        );
        self.session.set_blocking(true);
        result.map_err(|failure| match failure {
            exec::Failure::NotStarted(e @ TransportError::Disconnected { .. })
            | exec::Failure::Aborted(e) => {
                let e = explain_loss(e, self.tunnels.tunnels());
                self.mark_broken(&e);
                e
            }
            exec::Failure::NotStarted(e) => e,
        })
    }

    fn describe(&self) -> String {
        self.target.clone()
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        if self.broken.is_none() {
            self.session.set_blocking(true);
            let _ = self.session.disconnect(None, "pideploy is done", None);
        }
        if !self.tunnels.tunnels().is_empty() {
            // Closing our end tells the last tunnel at once that it is no longer needed.
            let _ = self.socket.shutdown(Shutdown::Both);
        }
    }
}

/// Opens a session on `link` (a new TCP connection when there is none yet), checks the host
/// key and logs in. Returns the session and the host key's fingerprint.
fn open_session(
    link: &Link,
    r: &Resolved,
    o: &SshOptions,
) -> Result<(Session, String), TransportError> {
    let target = r.describe();
    let session_socket = link.try_clone().map_err(|source| TransportError::Local {
        what: format!("duplicating the socket to {target}"),
        source,
    })?;
    let mut session =
        Session::new().map_err(|source| protocol_error("session setup", &target, source))?;
    session.set_tcp_stream(session_socket);
    session.set_blocking(true);
    session.set_timeout(millis(o.connect_timeout));
    let kh_name = r.known_hosts_name();
    let prefs = known_hosts::preferred_algorithms(&r.known_hosts, &kh_name)?;
    session
        .method_pref(MethodType::HostKey, &prefs)
        .map_err(|source| protocol_error("choosing host key algorithms", &target, source))?;
    // Ciphers stay libssh2's default (ChaCha20-Poly1305 first): its AES-GCM hands OpenSSL 16 bytes
    // at a time and sent 512 MiB with 1.4x the CPU (benches/transport.sh).
    session
        .handshake()
        .map_err(|e| classify(&target, "handshaking", e))?;
    let fingerprint = verify_host_key(&session, r, o.accept_new)?;
    auth::authenticate(&session, r, o.passphrase.as_deref())?;
    Ok((session, fingerprint))
}

/// Logs in to jump host `hop` (over `link`, or a new TCP connection for the first hop), asks
/// it to forward to `next`, and starts the tunnel thread. Returns the tunnel and the socket
/// the session to `next` is to use.
fn open_tunnel(
    link: Option<Link>,
    hop: &Resolved,
    next: &Resolved,
    o: &SshOptions,
) -> Result<(Tunnel, std::os::unix::net::UnixStream), TransportError> {
    let link = match link {
        Some(l) => l,
        None => Link::Tcp(tcp_connect(hop, o.connect_timeout)?),
    };
    let (session, _) = open_session(&link, hop, o)?;
    // The jump host resolves the name, as with `ssh -J`: the next host may be known only there.
    let channel = session
        .channel_direct_tcpip(&next.hostname, next.port, None)
        .map_err(|source| {
            if is_connection_loss(&source) {
                lost(
                    &hop.describe(),
                    "asking it to forward",
                    source.message().to_string(),
                )
            } else {
                TransportError::Forward {
                    jump: hop.describe(),
                    to: known_hosts_name(&next.hostname, next.port),
                    source,
                }
            }
        })?;
    Tunnel::start(hop.hop_name(), session, link, channel)
}

/// A lost connection through jump hosts may have broken at one of them: say where, if a
/// tunnel knows, or else that the loss may lie on the way.
fn explain_loss(e: TransportError, tunnels: &[Tunnel]) -> TransportError {
    let TransportError::Disconnected { host, what, reason } = e else {
        return e;
    };
    if tunnels.is_empty() {
        return TransportError::Disconnected { host, what, reason };
    }
    let broken: Vec<String> = tunnels
        .iter()
        .filter_map(|t| t.failure().map(|f| format!("jump host {}: {f}", t.name())))
        .collect();
    let reason = if broken.is_empty() {
        let names: Vec<&str> = tunnels.iter().map(Tunnel::name).collect();
        format!(
            "{reason} (the connection runs through jump host {}, which may be where it broke)",
            names.join(", then ")
        )
    } else {
        format!("{reason}; {}", broken.join("; "))
    };
    TransportError::Disconnected { host, what, reason }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().clamp(1, u32::MAX as u128) as u32
}

fn tcp_connect(r: &Resolved, timeout: Duration) -> Result<TcpStream, TransportError> {
    let addrs: Vec<_> = (r.hostname.as_str(), r.port)
        .to_socket_addrs()
        .map_err(|source| TransportError::Resolve {
            host: r.hostname.clone(),
            port: r.port,
            source,
        })?
        .collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no addresses");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(TransportError::Connect {
        host: r.hostname.clone(),
        port: r.port,
        timeout,
        source: last,
    })
}

fn verify_host_key(
    session: &Session,
    r: &Resolved,
    accept_new: bool,
) -> Result<String, TransportError> {
    let target = r.describe();
    let (blob, _) = session.host_key().ok_or_else(|| {
        protocol_error(
            "reading the host key",
            &target,
            ssh2::Error::new(ErrorCode::Session(-1), "no host key"),
        )
    })?;
    let blob = blob.to_vec();
    let fingerprint = known_hosts::fingerprint(&blob);
    let key_type = known_hosts::key_type(&blob).unwrap_or_else(|| "unknown-type".into());
    let name = r.known_hosts_name();
    let path = &r.known_hosts;
    let mut verdict = known_hosts::check(path, &name, &blob)?;
    if verdict == known_hosts::Verdict::Unknown && accept_new {
        verdict = known_hosts::record(path, &name, &blob)?;
    }
    match verdict {
        known_hosts::Verdict::Known => Ok(fingerprint),
        known_hosts::Verdict::Revoked(line) => Err(TransportError::HostKeyRevoked {
            host: name,
            fingerprint: format!("{key_type} {fingerprint}"),
            known_hosts: path.clone(),
            line,
        }),
        v @ known_hosts::Verdict::Changed(_) => Err(TransportError::HostKeyChanged {
            host: name,
            fingerprint: format!("{key_type} {fingerprint}"),
            known_fingerprint: known_hosts::describe_lines(path, &v),
            known_hosts: path.clone(),
        }),
        known_hosts::Verdict::CertAuthority(line) => Err(TransportError::HostCertAuthority {
            host: name,
            fingerprint: format!("{key_type} {fingerprint}"),
            known_hosts: path.clone(),
            line,
        }),
        known_hosts::Verdict::Unknown => Err(TransportError::UnknownHostKey {
            hostname: r.hostname.clone(),
            port: r.port,
            key_type,
            fingerprint,
            known_hosts: path.clone(),
        }),
    }
}

// libssh2 error codes that mean the peer is gone or silent.
const ERR_BANNER_RECV: i32 = -2;
const ERR_SOCKET_SEND: i32 = -7;
const ERR_TIMEOUT: i32 = -9;
const ERR_SOCKET_DISCONNECT: i32 = -13;
const ERR_SOCKET_TIMEOUT: i32 = -30;
const ERR_EAGAIN: i32 = -37;
const ERR_SOCKET_RECV: i32 = -43;

fn is_connection_loss(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Session(
            ERR_BANNER_RECV
                | ERR_SOCKET_SEND
                | ERR_TIMEOUT
                | ERR_SOCKET_DISCONNECT
                | ERR_SOCKET_TIMEOUT
                | ERR_SOCKET_RECV
        )
    )
}

fn is_would_block(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(ERR_EAGAIN)
}

fn lost(target: &str, what: &str, reason: String) -> TransportError {
    TransportError::Disconnected {
        host: target.to_string(),
        what: what.to_string(),
        reason,
    }
}

fn protocol_error(what: &'static str, target: &str, source: ssh2::Error) -> TransportError {
    TransportError::Ssh {
        what,
        host: target.to_string(),
        source,
    }
}

fn classify(target: &str, what: &'static str, e: ssh2::Error) -> TransportError {
    if is_connection_loss(&e) {
        lost(target, what, e.message().to_string())
    } else {
        protocol_error(what, target, e)
    }
}
