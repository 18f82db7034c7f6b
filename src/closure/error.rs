//! Errors of the closure builder.

use std::path::PathBuf;

/// Why a system could not be built. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The lock file does not pin something the config or board needs.
    #[error("{what} is not in the lock file {lock}: run `pideploy lock` to resolve and pin it")]
    NotLocked {
        /// What is missing.
        what: String,
        /// The lock file.
        lock: String,
    },
    /// The lock was made for another board.
    #[error("the lock file is for board {locked:?} but this build is for {wanted:?}: run `pideploy lock --board {wanted}`")]
    WrongBoard {
        /// Board in the lock.
        locked: String,
        /// Board asked for.
        wanted: String,
    },
    /// A pinned artifact is not in the cache.
    #[error(transparent)]
    Cache(#[from] pideploy_cache::CacheError),
    /// The store refused a path.
    #[error(transparent)]
    Store(#[from] pideploy_store::StoreError),
    /// A package could not be unpacked.
    #[error("unpacking {package}: {source}")]
    Unpack {
        /// Package name.
        package: String,
        /// Cause.
        #[source]
        source: pideploy_debian::DebError,
    },
    /// The kernel package lacks something the board names.
    #[error("kernel: {0}")]
    Kernel(String),
    /// The configuration cannot be turned into a system.
    #[error("config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An internal consistency check failed (a pideploy bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Attaches an action and a path to an I/O error.
pub(crate) fn io(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io {
        action,
        path,
        source,
    }
}
