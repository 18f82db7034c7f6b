//! What the caller wants in an image.

use std::path::PathBuf;

/// Default size of the boot partition (the size Raspberry Pi OS uses).
pub const DEFAULT_BOOT_SIZE: u64 = 512 * 1024 * 1024;

/// Which partition table the image carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// A DOS/MBR table (the Raspberry Pi OS default).
    Mbr,
    /// A GUID partition table with a protective MBR.
    Gpt,
}

/// One file of the boot partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    /// Path inside the FAT volume, `/`-separated, without a leading slash
    /// (`"gen-1/overlays/x.dtbo"`).
    pub path: String,
    /// The file's content.
    pub data: Vec<u8>,
}

/// A uid/gid for one path of the root filesystem; everything not listed is owned by 0:0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerOverride {
    /// Absolute path inside the root filesystem (`"/home/pi"`).
    pub path: String,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
}

/// Everything an image is made from. Two equal specs give two bit-identical images.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// MBR or GPT.
    pub table: TableKind,
    /// Config digest; every id of the image (disk signature or GUIDs, FAT volume id, ext4 UUID and
    /// hash seed) is derived from it.
    pub seed: [u8; 32],
    /// Total image size; `None` picks the computed minimum, `Some` smaller than it is an error.
    pub total_size: Option<u64>,
    /// Size of the FAT32 boot partition in bytes (see [`DEFAULT_BOOT_SIZE`]).
    pub boot_size: u64,
    /// FAT volume label of the boot partition (`"BOOTFS"`).
    pub boot_label: String,
    /// ext4 label of the root partition (`"rootfs"`).
    pub root_label: String,
    /// Files of the boot partition.
    pub boot_files: Vec<BootFile>,
    /// Staged root tree, copied into the ext4 filesystem with `mke2fs -d`.
    pub root_dir: PathBuf,
    /// Owners other than 0:0.
    pub root_owners: Vec<OwnerOverride>,
    /// Fixed time (seconds since the epoch) for every inode and the superblock.
    pub timestamp: u64,
}
