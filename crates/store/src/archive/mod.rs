//! A deterministic archive of a file tree: the bytes a store path's hash covers.
//!
//! Format, version 1 (all integers are unsigned 64-bit little-endian, written `u64`):
//!
//! ```text
//! archive   = "pideploy-archive-v1\n" node          (nothing may follow the root node)
//! node      = "f" u64:len bytes                     regular file, no x bit
//!           | "x" u64:len bytes                     regular file with any x bit set
//!           | "l" u64:len target                    symlink, target bytes verbatim
//!           | "d" u64:count entry*count             directory
//! entry     = u64:len name node                     names sorted by bytes, strictly increasing
//! ```
//!
//! Names are 1..=255 bytes, not `.` or `..`, without `/` or NUL. Symlink targets are 1..=4095
//! bytes without NUL. Nothing else is recorded: no times, owners or other mode bits, so the
//! same tree gives the same bytes on any machine, user or umask.

mod dump;
mod restore;

use std::io;
use std::path::Path;

use crate::{HashWriter, Sha256, StoreError};

pub use dump::dump;
pub use restore::restore;

/// First bytes of every archive; the version lives in the magic.
pub const MAGIC: &[u8] = b"pideploy-archive-v1\n";
/// Tag of a regular file without an x bit.
pub(crate) const TAG_FILE: u8 = b'f';
/// Tag of a regular file with an x bit.
pub(crate) const TAG_EXEC: u8 = b'x';
/// Tag of a symlink.
pub(crate) const TAG_SYMLINK: u8 = b'l';
/// Tag of a directory.
pub(crate) const TAG_DIR: u8 = b'd';
/// Longest entry name (NAME_MAX on Linux).
pub(crate) const MAX_NAME: u64 = 255;
/// Longest symlink target (PATH_MAX - 1 on Linux).
pub(crate) const MAX_TARGET: u64 = 4095;

/// (sha256 of the archive of `path`, its length), computed without keeping the archive.
pub fn hash(path: &Path) -> Result<(Sha256, u64), StoreError> {
    let mut w = HashWriter::new(io::sink());
    dump(path, &mut w)?;
    let (_, len, digest) = w.finish();
    Ok((digest, len))
}

/// Whether `name` may appear as a directory entry in an archive.
pub(crate) fn valid_entry_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() as u64 <= MAX_NAME
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}
