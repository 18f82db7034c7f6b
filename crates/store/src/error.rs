//! The one error type of the store crate.

use std::io;
use std::path::PathBuf;

use crate::StorePath;

/// Everything that can go wrong in the store: parsing names, archiving trees, and the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A string that should be a store path is not one.
    #[error("invalid store path `{input}`: {reason}")]
    InvalidPath {
        /// The rejected input.
        input: String,
        /// What rule it breaks.
        reason: String,
    },
    /// A store path name (the part after the hash) breaks the naming rules.
    #[error("invalid store path name `{name}`: {reason} (allowed: 1 to 200 characters of A-Z a-z 0-9 + . _ ? = -, not starting with '.')")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What rule it breaks.
        reason: String,
    },
    /// A string that should be a sha256 digest is not one.
    #[error(transparent)]
    InvalidSha256(#[from] pideploy_digest::BadSha256),
    /// A file system operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// A short lowercase phrase saying what was being done ("reading directory").
        action: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing an archive stream failed (not a file on disk: the stream itself).
    #[error("{action}: {source}")]
    Stream {
        /// A short lowercase phrase saying what was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A tree contains something the archive format cannot represent.
    #[error("cannot archive {}: it is a {kind}; only regular files, directories and symlinks can enter the store", path.display())]
    UnsupportedFileType {
        /// The offending path.
        path: PathBuf,
        /// What it is (device, fifo, socket...).
        kind: &'static str,
    },
    /// A file changed size while it was being archived.
    #[error("{} changed while it was being archived (expected {expected} bytes, read {actual}); make sure nothing writes to it during the build", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Length recorded before reading.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// An archive stream is not a valid archive.
    #[error("malformed archive at byte {offset}: {reason}")]
    MalformedArchive {
        /// Offset in the stream where the problem was seen.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// `archive::restore` was given a destination that already exists.
    #[error("cannot restore archive into {}: it already exists; remove it or choose a new destination", path.display())]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// A registration record could not be parsed.
    #[error("invalid registration record{}: {reason}", context.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    InvalidRegistration {
        /// Where the record came from, if known.
        context: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A path that was required to be valid in the store is not.
    #[error("{} is not a valid path in the store at {}; add it first", path.absolute(), store.display())]
    NotValid {
        /// The path.
        path: StorePath,
        /// The store root.
        store: PathBuf,
    },
    /// `add` was asked to reference a path that is not valid in this store.
    #[error("cannot add `{name}`: its reference {} is not valid in the store at {}; add the reference first", reference.absolute(), store.display())]
    MissingReference {
        /// Name of the path being added.
        name: String,
        /// The reference that is missing.
        reference: StorePath,
        /// The store root.
        store: PathBuf,
    },
    /// The caller's build function failed.
    #[error("building `{name}` failed")]
    Build {
        /// Name of the path being built.
        name: String,
        /// The builder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The build function returned success but left nothing at `<tmp>/out`.
    #[error("building `{name}` produced nothing: the builder must create {}", out.display())]
    NoOutput {
        /// Name of the path being built.
        name: String,
        /// Where the output was expected.
        out: PathBuf,
    },
    /// The reference graph has a cycle.
    #[error("reference cycle: {}", cycle.iter().map(|p| p.base_name()).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// One path on the cycle.
        member: StorePath,
        /// The cycle, starting and ending with `member`.
        cycle: Vec<StorePath>,
    },
    /// `delete` refused because other valid paths still reference the path.
    #[error("cannot delete {}: still referenced by {}; delete those first", path.absolute(), by.iter().map(|p| p.base_name()).collect::<Vec<_>>().join(", "))]
    Referenced {
        /// The path that was to be deleted.
        path: StorePath,
        /// Valid paths that reference it.
        by: Vec<StorePath>,
    },
    /// A path's contents no longer match its registration.
    #[error("{} is corrupt: registered as sha256:{expected} ({expected_size} bytes) but its contents now hash to sha256:{actual} ({actual_size} bytes); delete it and add it again", path.absolute())]
    HashMismatch {
        /// The path.
        path: StorePath,
        /// Digest in the registration.
        expected: crate::Sha256,
        /// Digest of the contents now.
        actual: crate::Sha256,
        /// Size in the registration.
        expected_size: u64,
        /// Size now.
        actual_size: u64,
    },
    /// A registration's digest and references do not give back the path's own name.
    #[error("registration of {} does not match its name: its digest and references give {}; the registration was altered", path.absolute(), computed.absolute())]
    RegistrationMismatch {
        /// The path.
        path: StorePath,
        /// The path its registration computes to.
        computed: StorePath,
    },
}

impl StoreError {
    /// Shorthand for an [`StoreError::Io`] with context.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}
