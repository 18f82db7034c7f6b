//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading Debian packages, indexes and relations, or resolving them.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// A relationship field (Depends, Provides, ...) is malformed.
    #[error("invalid relation `{field}`: {reason}")]
    Relation {
        /// The text that failed to parse.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A Packages index (or control file) is malformed at a given line.
    #[error("index line {line}: {reason}")]
    Index {
        /// 1-based line number.
        line: usize,
        /// What is wrong there.
        reason: String,
    },

    /// Compressed input could not be decoded or its format is not supported.
    #[error("decompressing {what}: {reason}")]
    Decompress {
        /// What was being decompressed (a member name or "Packages index").
        what: String,
        /// Why it failed, with a hint where possible.
        reason: String,
        /// The underlying I/O error, if any.
        #[source]
        source: Option<std::io::Error>,
    },

    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done ("reading ar member header", "creating /x/y").
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The .deb archive is structurally broken (bad ar header, missing member, ...).
    #[error("malformed .deb: {0}")]
    Deb(String),

    /// A data.tar entry would be written outside the destination directory.
    #[error("refusing to unpack `{entry}`: {reason} (the package is malformed or malicious)")]
    UnsafePath {
        /// The entry path as stored in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },

    /// The destination of an unpack is unusable.
    #[error("unpack destination {}: {reason}", path.display())]
    Destination {
        /// The destination path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A dependency could not be satisfied by any package in the indexes.
    #[error(
        "cannot satisfy {chain}: {reason}; add an index that provides it, pin another version of the \
         requiring package, or exclude `{missing}` if the image supplies it another way"
    )]
    Unsatisfiable {
        /// The package name that could not be found or matched.
        missing: String,
        /// The requiring chain ending in the failed relation, e.g. `dropbear-bin -> libc6 (>= 2.34)`.
        chain: String,
        /// What was found instead.
        reason: String,
    },

    /// Two requirements ask for different versions of one package.
    #[error(
        "version conflict on `{package}`: {selected} was selected for {selected_by}, but {chain} needs \
         a different version; pin a version of `{package}` that satisfies both as a root (`{package}=VERSION`)"
    )]
    Conflict {
        /// The package in conflict.
        package: String,
        /// The version already selected.
        selected: String,
        /// The chain that selected it.
        selected_by: String,
        /// The chain whose relation the selected version does not meet.
        chain: String,
    },
}

impl DebError {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DebError::Io {
            context: context.into(),
            source,
        }
    }
}
