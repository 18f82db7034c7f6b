//! Raspberry Pi disk images: a pure [`plan`] (partition table, offsets, sizes and every id derived
//! from a config digest), a writer ([`write_image`]) that produces a raw, sparse and bit-identical
//! image (MBR or GPT, FAT32 boot partition, ext4 root filled by `mke2fs -d`), and a reader
//! ([`ImageReader`], [`read_table`]) that looks inside an image without root or loop devices.
#![deny(missing_docs)]

pub mod cpio;
mod error;
mod ext4;
mod ids;
mod inode_pin;
mod plan;
mod reader;
mod spec;
mod table;
mod table_read;
mod window;
mod write;

pub use error::ImageError;
pub use ext4::{
    debugfs_script, e2fs_program, mke2fs_args, mke2fs_config, root_content_bytes, root_inode_paths,
    SBIN_DIRS,
};
pub use ids::derive_bytes;
pub use plan::{
    align_up, plan, ImagePlan, PartPlan, ALIGN_BYTES, BOOT_START_LBA, GPT_TAIL_SECTORS,
    MIN_BOOT_SIZE, SECTOR_SIZE,
};
pub use reader::{ImageReader, RootKind, RootMeta};
pub use spec::{BootFile, ImageSpec, OwnerOverride, TableKind, DEFAULT_BOOT_SIZE};
pub use table::{
    read_table, PartitionEntry, PartitionTable, GPT_BASIC_DATA, GPT_LINUX_FS, MBR_FAT32_LBA,
    MBR_LINUX,
};
pub use window::Window;
pub use write::{write_image, Stage};

/// The FAT reader type handed out by [`ImageReader::boot`].
pub use pideploy_fat32::FatReader;
