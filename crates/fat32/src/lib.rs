//! A small, create-only FAT32 writer and a FAT reader for the Raspberry Pi boot partition.
//!
//! The writer exists because volumes must be real FAT32, clean under `fsck.fat -n`, and
//! bit-identical for identical inputs. Layout choices:
//!
//! * **Geometry.** 512-byte sectors; sectors per cluster from Microsoft's FAT32 table, as
//!   mkfs.fat uses it: 512 B clusters up to 260 MiB, 4 KiB up to 8 GiB, 8 KiB up to 16 GiB,
//!   16 KiB up to 32 GiB, 32 KiB above. Sizes that would give fewer than 65525 clusters are
//!   refused (they would be FAT16 by definition); the error names the minimum size.
//! * **Reserved area.** 32 reserved sectors: boot sector at 0, FSInfo at 1 (correct free
//!   count, next-free hint = first unused cluster), backups of both at 6 and 7. Media 0xF8,
//!   two mirrored FATs, hidden sectors = the partition's start LBA. Each FAT is sized for all
//!   clusters and rounded up so the data area starts on a cluster boundary.
//! * **Allocation.** The root directory is cluster 2. Then depth-first in case-folded name
//!   order: a directory's clusters, then each child (file data, or a subdirectory and all
//!   below it). Every file and directory is one contiguous chain. Empty files have cluster 0.
//!   The order of `add_*` calls does not matter.
//! * **Names.** A name that already is a valid upper-case 8.3 name is stored as is. Any other
//!   name gets VFAT LFN entries (with the short-name checksum) and a short alias made by the
//!   Windows basis-name algorithm: the plain upper-case form when nothing is lost
//!   (`config.txt` → `CONFIG.TXT`), else the first free `~N` tail (`kernel_2712.img` →
//!   `KERNEL~1.IMG`), unique per directory. Strict 8.3 names are claimed before aliases.
//! * **Directories.** Subdirectories start with `.` and `..`; `..` of a child of the root says
//!   cluster 0, the FAT32 convention. The root holds the volume label entry when a label is
//!   set. Directories take as many clusters as their entries need.
//! * **Timestamps.** Every timestamp is 2000-01-01 00:00:00 (DOS time); nothing depends on
//!   the clock, umask or insertion order.
//! * **Writing.** Only non-zero regions are written; the rest is skipped by seeking, so the
//!   target must read as zeros (a fresh sparse file or a zeroed region).
//!
//! The reader handles FAT32, FAT16 and FAT12, long and short names, and case-insensitive
//! lookup like the Pi firmware.

#![deny(missing_docs)]

mod bpb;
mod builder;
mod dir;
mod error;
mod layout;
mod names;
mod reader;
mod writer;

pub use bpb::FatType;
pub use builder::FatBuilder;
pub use error::FatError;
pub use reader::{DirEntry, FatReader};
