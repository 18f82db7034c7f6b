//! Errors of the artifact cache, downloads and the lock file.

use std::path::PathBuf;

/// Everything that can go wrong in the cache, a download or the lock file.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "creating cache directory".
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A string that should be a sha256 is not 64 hex digits.
    #[error("`{0}` is not a sha256 (64 hex digits)")]
    InvalidSha256(String),
    /// Only http and https downloads are supported.
    #[error("cannot download {url}: only http:// and https:// URLs are supported")]
    UnsupportedUrl {
        /// The URL.
        url: String,
    },
    /// The server answered with an error status.
    #[error("downloading {url}: server answered HTTP {status}; check the URL or the lock file, or import the file with `pideploy cache import FILE`")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed (DNS, refused, TLS, timeout, cut off).
    #[error("downloading {url}: {source}; when offline, import the file with `pideploy cache import FILE`")]
    Transport {
        /// The URL.
        url: String,
        /// What ureq reported.
        #[source]
        source: Box<ureq::Transport>,
    },
    /// Reading the response body failed part way.
    #[error("downloading {url}: reading the response failed: {source}")]
    Body {
        /// The URL.
        url: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The download does not have the pinned size; nothing was stored.
    #[error("downloading {url}: expected {expected} bytes, got {actual}; nothing was stored in the cache")]
    SizeMismatch {
        /// The URL.
        url: String,
        /// Size from the lock file.
        expected: u64,
        /// Size received (or announced).
        actual: u64,
    },
    /// The download does not have the pinned hash; nothing was stored.
    #[error("downloading {url}: sha256 mismatch: expected {expected}, got {actual}; nothing was stored in the cache (the mirror changed the file, or the lock file is stale)")]
    HashMismatch {
        /// The URL.
        url: String,
        /// Hash from the lock file.
        expected: String,
        /// Hash of what arrived.
        actual: String,
    },
    /// A needed artifact is not in the cache.
    #[error("artifact `{name}` (sha256 {sha256}) is not in the cache at {root}; download it with `pideploy fetch`, or, offline, add a copy you have with `pideploy cache import FILE`")]
    Missing {
        /// What the artifact is (e.g. a package file name).
        name: String,
        /// Its pinned hash.
        sha256: String,
        /// The cache root.
        root: PathBuf,
    },
    /// A file to import or read is not a regular file (a device, fifo, directory).
    #[error("cannot use {path} as {what}: it is not a regular file (a device, fifo or directory); give a regular file")]
    NotRegular {
        /// The file given.
        path: PathBuf,
        /// What it was to be used as.
        what: &'static str,
    },
    /// A file is larger than pideploy accepts for its purpose.
    #[error(
        "{path} is {size} bytes, more than the {max} accepted for {what}; is this the right file?"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (or how much was read before giving up).
        size: u64,
        /// The limit.
        max: u64,
        /// What the file was read as.
        what: &'static str,
    },
    /// A file changed size while it was being imported.
    #[error("{path} changed while it was being imported ({expected} bytes when opened); import it again when nothing writes to it")]
    ChangedWhileReading {
        /// The file.
        path: PathBuf,
        /// Its size when opened.
        expected: u64,
    },
    /// A cached file's contents do not match the sha256 it is stored under.
    #[error("cached file {path} for `{name}` has sha256 {actual}, not {expected}: the cache is damaged; run `pideploy cache verify --repair`, then `pideploy fetch`")]
    Corrupt {
        /// What the artifact is.
        name: String,
        /// The cached file.
        path: PathBuf,
        /// The sha256 it is stored under (and pinned in the lock).
        expected: String,
        /// The sha256 of its contents.
        actual: String,
    },
    /// The lock file is malformed.
    #[error("{path}:{line}:{column}: {message}")]
    LockParse {
        /// The lock file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What toml said.
        message: String,
    },
    /// The lock file is of another format version.
    #[error("{path}: lock file version {found} is not supported (this pideploy reads version {supported}); regenerate it with this pideploy")]
    LockVersion {
        /// The lock file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this code reads.
        supported: u32,
    },
    /// A lock file entry breaks a rule.
    #[error("{path}: package `{package}`: {problem}")]
    LockEntry {
        /// The lock file.
        path: PathBuf,
        /// The package name.
        package: String,
        /// What is wrong.
        problem: String,
    },
}

impl CacheError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CacheError::Io {
            action,
            path,
            source,
        }
    }
}
