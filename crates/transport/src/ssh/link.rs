//! The byte stream under one SSH session: a TCP connection to the host, or, when the host is
//! reached through a jump host, one end of a socket pair that a tunnel thread feeds.

use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;

/// The socket a libssh2 session talks over.
#[derive(Debug)]
pub(crate) enum Link {
    /// Straight to the host.
    Tcp(TcpStream),
    /// Through a jump host: the other end belongs to a [`super::tunnel::Tunnel`].
    Unix(UnixStream),
}

impl Link {
    /// A second handle on the same socket (same open file, so shutting one down cuts both).
    pub fn try_clone(&self) -> std::io::Result<Link> {
        Ok(match self {
            Link::Tcp(s) => Link::Tcp(s.try_clone()?),
            Link::Unix(s) => Link::Unix(s.try_clone()?),
        })
    }

    /// Cuts the connection so that nothing waits on it any more.
    pub fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        match self {
            Link::Tcp(s) => s.shutdown(how),
            Link::Unix(s) => s.shutdown(how),
        }
    }
}

impl AsFd for Link {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Link::Tcp(s) => s.as_fd(),
            Link::Unix(s) => s.as_fd(),
        }
    }
}

// libssh2 wants the raw descriptor; the `Link` handed to the session keeps it open.
impl AsRawFd for Link {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
