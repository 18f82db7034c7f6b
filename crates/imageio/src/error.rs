//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use crate::hash::Sha256;

/// Everything that can go wrong while compressing, opening, mapping or flashing an image.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The output file name does not say which compression to use.
    #[error(
        "cannot tell the compression from the name {path:?}; end it with .img (raw), .img.xz or .xz (xz), \
         or .img.zst or .zst (zstd)"
    )]
    UnknownEnding {
        /// The name as given.
        path: PathBuf,
    },
    /// Reading, writing or opening a file failed; `context` says what was being done on which file.
    #[error("{context}")]
    Io {
        /// What was being done, e.g. "reading /tmp/pi.img".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The image is compressed in a format this crate does not read.
    #[error("{path:?} is compressed with {format}, which pideploy does not read; decompress it first or use .img, .xz or .zst")]
    UnsupportedFormat {
        /// The image file.
        path: PathBuf,
        /// The detected format, e.g. "gzip".
        format: &'static str,
    },
    /// liblzma refused the encoder settings (usually: not enough memory for this many threads).
    #[error("setting up the xz encoder with {threads} threads failed; try fewer threads")]
    XzSetup {
        /// Threads asked for.
        threads: u32,
        /// The error from liblzma.
        #[source]
        source: xz2::stream::Error,
    },
    /// The bmap text is not a bmap this crate understands.
    #[error(
        "invalid bmap file: {reason}; make a new one with `pideploy image` or `bmaptool create`"
    )]
    BmapParse {
        /// What is wrong with it.
        reason: String,
    },
    /// The bmap's own checksum does not match its contents.
    #[error(
        "the bmap file is damaged or was edited: it says its sha256 is {expected} but its contents hash to \
         {actual}; use the .bmap written next to the image, or flash without a bmap"
    )]
    BmapChecksum {
        /// Checksum written in the file.
        expected: String,
        /// Checksum computed over the file.
        actual: String,
    },
    /// The image's data does not match the bmap's range checksum.
    #[error(
        "blocks {first}-{last} of {image:?} have sha256 {actual} but the bmap says {expected}: the bmap \
         belongs to a different image (or the image is damaged); use the .bmap written next to this image, \
         or flash without a bmap"
    )]
    BmapMismatch {
        /// The image file.
        image: PathBuf,
        /// First block of the range.
        first: u64,
        /// Last block of the range.
        last: u64,
        /// sha256 from the bmap.
        expected: Sha256,
        /// sha256 of the image data.
        actual: Sha256,
    },
    /// The image is not as long as its bmap says.
    #[error(
        "{image:?} holds {actual} bytes but the bmap says {expected}: the bmap belongs to a different image; \
         use the .bmap written next to this image, or flash without a bmap"
    )]
    BmapSizeMismatch {
        /// The image file.
        image: PathBuf,
        /// Size from the bmap.
        expected: u64,
        /// Raw bytes the image held (at least this many, if it was longer).
        actual: u64,
    },
    /// What was read back from the device differs from what was written.
    #[error(
        "verification failed: bytes {start}..{end} of {device:?} read back with sha256 {actual}, expected \
         {expected}; the card may be failing, fake or was removed: flash again, and if it fails again use \
         another card"
    )]
    VerifyFailed {
        /// The target.
        device: PathBuf,
        /// First byte of the compared span.
        start: u64,
        /// End (exclusive) of the compared span.
        end: u64,
        /// sha256 of the image data.
        expected: Sha256,
        /// sha256 of what was read back.
        actual: Sha256,
    },
    /// The flash target does not exist.
    #[error(
        "{path:?} does not exist; list disks with `lsblk` and name the whole card (e.g. /dev/sdb), or create \
         the file first to write an image file"
    )]
    TargetMissing {
        /// The target as given.
        path: PathBuf,
    },
    /// The flash target is neither a block device nor a regular file.
    #[error("{path:?} is {kind}, not a disk or an image file; name the whole card, e.g. /dev/sdb (see `lsblk`)")]
    TargetWrongType {
        /// The target as given.
        path: PathBuf,
        /// What it is, e.g. "a directory".
        kind: &'static str,
    },
    /// The flash target holds the running system's root file system.
    #[error(
        "{path:?} holds the root file system of this computer; writing to it would destroy the running system. \
         Name the SD card instead (see `lsblk`)"
    )]
    TargetHoldsRoot {
        /// The target.
        path: PathBuf,
    },
    /// Partitions of the flash target are mounted.
    #[error(
        "{path:?} is in use: {}; unmount them first (e.g. `sudo umount <mount point>` or `udisksctl unmount -b <partition>`)",
        mounts.join(", ")
    )]
    TargetMounted {
        /// The target.
        path: PathBuf,
        /// "SOURCE on MOUNTPOINT" for each mount (or "SOURCE as swap").
        mounts: Vec<String>,
    },
    /// The flash target is a fixed (non-removable) disk and `--force` was not given.
    #[error(
        "{path:?} is {} disk, not a removable card reader; check with `lsblk -o NAME,RM,SIZE,MODEL` and, if you are \
         sure it is the card, pass --force",
        match removable { Some(false) => "a fixed", _ => "a possibly fixed" }
    )]
    TargetNotRemovable {
        /// The target.
        path: PathBuf,
        /// What sysfs said (None: unknown).
        removable: Option<bool>,
    },
    /// The flash target is smaller than the image.
    #[error("{path:?} holds {size} bytes but the image needs {image_size}; use a card of at least {image_size} bytes")]
    TargetTooSmall {
        /// The target.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The raw image size in bytes.
        image_size: u64,
    },
    /// The kernel refused exclusive access to the block device.
    #[error("{path:?} is busy (mounted, or opened by another program); unmount its partitions and close other programs using it")]
    TargetBusy {
        /// The target.
        path: PathBuf,
    },
    /// The flash target is the image itself (a link, another name, or a loop device over it).
    #[error(
        "the flash target {target:?} {how} the image {image:?}: writing it would destroy the image while it is read; \
         name the card (e.g. /dev/sdb, see `lsblk`) or another file"
    )]
    TargetIsImage {
        /// The image as given.
        image: PathBuf,
        /// The target as given.
        target: PathBuf,
        /// "is the same file as" / "is a loop device over".
        how: &'static str,
    },
    /// The flash target is a regular file attached to a loop device.
    #[error(
        "{path:?} is attached to loop device {}: writing it would corrupt what the loop device shows; \
         unmount and detach it first (`sudo umount <mount point>`, `sudo losetup -d /dev/loopN`)",
        .loops.join(", ")
    )]
    TargetBacksLoop {
        /// The target.
        path: PathBuf,
        /// "/dev/loopN" with its mounts, for each loop device.
        loops: Vec<String>,
    },
}

impl IoError {
    /// Wraps an `io::Error` with a short phrase of what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| IoError::Io { context, source }
    }
}
