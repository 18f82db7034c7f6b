//! Errors of planning, writing and reading images.

use std::path::PathBuf;

/// Everything that can go wrong while planning, writing or reading an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The output file is already there; images are never written over existing files.
    #[error("output {0} already exists; remove it (`rm {0}`) or choose another output path")]
    OutputExists(PathBuf),
    /// The requested total size cannot hold the partitions.
    #[error(
        "image size {requested} bytes is too small: the minimum for this root tree is {minimum} bytes \
         ({minimum_mib} MiB); raise the image size (total_size / --size) or leave it unset"
    )]
    TotalTooSmall {
        /// What was asked for.
        requested: u64,
        /// The smallest size that works.
        minimum: u64,
        /// `minimum` in MiB, rounded up.
        minimum_mib: u64,
    },
    /// The total size is not a whole number of 512-byte sectors.
    #[error("image size {0} bytes is not a multiple of 512; use a size in MiB")]
    TotalUnaligned(u64),
    /// An MBR cannot describe disks of 2 TiB and more.
    #[error("image size {size} bytes is too large for an MBR table (at most {max} bytes); use the GPT table")]
    TooLargeForMbr {
        /// The planned size.
        size: u64,
        /// The largest size an MBR can address.
        max: u64,
    },
    /// The boot partition size is below what FAT32 needs or not sector-aligned.
    #[error(
        "boot partition size {size} bytes is invalid: it must be a multiple of 1 MiB and at least \
         {minimum} bytes ({minimum_mib} MiB); change boot_size (--boot-size)"
    )]
    BootSizeInvalid {
        /// What was asked for.
        size: u64,
        /// The smallest FAT32 boot partition.
        minimum: u64,
        /// `minimum` in MiB.
        minimum_mib: u64,
    },
    /// The boot files do not fit into the boot partition.
    #[error(
        "boot files need {needed} bytes but the boot partition has {boot_size} bytes; raise boot_size \
         (--boot-size) to at least {needed_mib} MiB"
    )]
    BootContentTooLarge {
        /// Bytes the FAT volume needs.
        needed: u64,
        /// Bytes it has.
        boot_size: u64,
        /// `needed` in MiB, rounded up.
        needed_mib: u64,
    },
    /// A plan field that should hold an id does not parse (the plan was edited by hand).
    #[error("plan field {field} holds {value:?}, which is not a valid {what}; rebuild the plan with plan()")]
    BadPlanId {
        /// Which field.
        field: &'static str,
        /// What it held.
        value: String,
        /// What was expected.
        what: &'static str,
    },
    /// An external tool is not installed.
    #[error("`{tool}` was not found on PATH; install e2fsprogs (apt-get install e2fsprogs)")]
    ToolMissing {
        /// Program name.
        tool: &'static str,
        /// Why spawning failed.
        #[source]
        source: std::io::Error,
    },
    /// `mke2fs` or `debugfs` exited with an error.
    #[error("{tool} failed on {path} ({status}): {stderr}")]
    ToolFailed {
        /// Program name.
        tool: &'static str,
        /// The image it worked on.
        path: PathBuf,
        /// Exit status as text.
        status: String,
        /// Its error output.
        stderr: String,
    },
    /// A name in the staged root tree cannot be passed to debugfs.
    #[error("root tree path {0:?} contains a newline or control character, which is not supported; rename it")]
    UnsupportedName(String),
    /// The output path cannot be handed to e2fsprogs with an offset (it contains `?`).
    #[error("output path {0} contains `?`, which e2fsprogs reads as an option separator; choose another name")]
    OutputPathUnsupported(PathBuf),
    /// An owner override names a path that is not in the staged root tree.
    #[error("owner override for {path:?}: no such path in the staged root tree {root}")]
    OwnerPathMissing {
        /// The override's path.
        path: String,
        /// The staged tree.
        root: PathBuf,
    },
    /// A boot file path is empty or malformed.
    #[error(
        "boot file path {0:?} is invalid: use a relative `/`-separated path without `.`/`..` parts"
    )]
    BadBootPath(String),
    /// File-system level I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, on what.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The FAT32 writer or reader failed.
    #[error("{context}: {source}")]
    Fat {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: pideploy_fat32::FatError,
    },
    /// The GPT library failed.
    #[error("{context}: {source}")]
    Gpt {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The MBR library failed.
    #[error("{context}: {source}")]
    Mbr {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: mbrman::Error,
    },
    /// The image's partition table is missing or not what pideploy writes.
    #[error("partition table of the image: {0}")]
    BadTable(String),
    /// Reading the ext4 root filesystem failed.
    #[error("reading {path} from the root filesystem: {source}")]
    Ext4 {
        /// The path inside the filesystem.
        path: String,
        /// The cause.
        #[source]
        source: ext4_view::Ext4Error,
    },
}

impl ImageError {
    /// An [`ImageError::Io`] with a context phrase.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}

/// `bytes` in MiB, rounded up.
pub(crate) fn mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}
