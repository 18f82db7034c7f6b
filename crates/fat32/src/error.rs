//! The one error type of this crate.

use std::io;

/// Everything that can go wrong while building, writing or reading a FAT volume.
#[derive(Debug, thiserror::Error)]
pub enum FatError {
    /// The requested volume is too small to hold a FAT32 file system.
    #[error(
        "a {size} byte volume is too small for FAT32 (it would have {clusters} clusters, FAT32 needs \
         at least 65525); make the boot partition at least {min} bytes ({} MiB)",
        min.div_ceil(1 << 20)
    )]
    TooSmall {
        /// Requested size in bytes.
        size: u64,
        /// Clusters the requested size would give.
        clusters: u64,
        /// Smallest size in bytes that gives a valid FAT32 volume.
        min: u64,
    },
    /// The requested volume is larger than FAT32 with 512-byte sectors can address.
    #[error("a {size} byte volume is too large for FAT32 (at most {max} bytes); use a smaller boot partition")]
    TooLarge {
        /// Requested size in bytes.
        size: u64,
        /// Largest supported size in bytes.
        max: u64,
    },
    /// The volume label breaks the FAT rules.
    #[error("invalid volume label {label:?}: {reason}")]
    InvalidLabel {
        /// The label as given.
        label: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A path given to the builder or reader is not a valid FAT path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What rule it breaks.
        reason: String,
    },
    /// A file or directory with the same name (compared case-insensitively) already exists.
    #[error("{path:?} already exists (FAT names are case-insensitive); add each path only once")]
    Duplicate {
        /// The path that was added twice.
        path: String,
    },
    /// A path component that must be a directory is a file.
    #[error("{path:?} is a file, so it cannot contain {child:?}")]
    NotADirectory {
        /// The component that is a file.
        path: String,
        /// What was to be placed or looked up beneath it.
        child: String,
    },
    /// A file is too large for FAT32.
    #[error("{path:?} is {size} bytes; FAT32 files must be smaller than 4 GiB")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size in bytes.
        size: u64,
    },
    /// A directory has more entries than FAT allows.
    #[error(
        "directory {path:?} needs {entries} directory entries, FAT allows 65536; spread the files \
         over more directories or shorten their names"
    )]
    DirectoryTooLarge {
        /// The directory ("" is the root).
        path: String,
        /// Directory entries it would need.
        entries: u64,
    },
    /// The content does not fit into the volume.
    #[error(
        "the content needs {needed} bytes of clusters but the {size} byte volume has room for only \
         {available}; a bigger boot partition is required"
    )]
    DoesNotFit {
        /// Bytes of clusters the content needs.
        needed: u64,
        /// Bytes of clusters the volume offers.
        available: u64,
        /// Volume size in bytes.
        size: u64,
    },
    /// Reading or writing the underlying stream failed.
    #[error("{context}")]
    Io {
        /// What was being done, e.g. "writing the FAT".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The data does not look like a FAT volume this crate can read.
    #[error("not a supported FAT volume: {reason}")]
    NotFat {
        /// What was wrong with the boot sector.
        reason: String,
    },
    /// The volume is damaged in a way the reader cannot work around.
    #[error("corrupt FAT volume: {reason}; check it with `fsck.fat -n`")]
    Corrupt {
        /// What is inconsistent.
        reason: String,
    },
    /// A path looked up by the reader does not exist.
    #[error("{path:?} does not exist on the FAT volume")]
    NotFound {
        /// The path looked up.
        path: String,
    },
    /// A directory was expected but a file was found, or the other way round.
    #[error("{path:?} is {found}, expected {expected}")]
    WrongKind {
        /// The path looked up.
        path: String,
        /// "a file" or "a directory".
        found: &'static str,
        /// "a file" or "a directory".
        expected: &'static str,
    },
}

impl FatError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| FatError::Io { context, source }
    }
}
