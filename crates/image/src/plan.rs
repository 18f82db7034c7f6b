//! The pure image plan: table, partition offsets and sizes, and every id.

use crate::error::{mib_ceil, ImageError};
use crate::ids::{derive_u32, derive_uuid};
use crate::spec::{ImageSpec, TableKind};

/// Bytes per logical sector.
pub const SECTOR_SIZE: u64 = 512;
/// Partition alignment: 4 MiB, as Raspberry Pi OS images use.
pub const ALIGN_BYTES: u64 = 4 * 1024 * 1024;
/// First sector of the boot partition (4 MiB, like Raspberry Pi OS).
pub const BOOT_START_LBA: u64 = ALIGN_BYTES / SECTOR_SIZE;
/// Sectors a GPT keeps at the end of the disk: 32 for the backup entries, 1 for the backup header.
pub const GPT_TAIL_SECTORS: u64 = 33;
/// Smallest boot partition: below this a FAT32 volume has too few clusters.
pub const MIN_BOOT_SIZE: u64 = 64 * 1024 * 1024;
/// Root filesystem headroom on top of its content (journal, metadata, first-boot room).
const ROOT_HEADROOM: u64 = 64 * 1024 * 1024;
/// The largest disk an MBR can address with 32-bit sector numbers.
const MBR_MAX_BYTES: u64 = (u32::MAX as u64) * SECTOR_SIZE;

/// `value` rounded up to a multiple of `align`.
pub fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// Where one partition lives and how the kernel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartPlan {
    /// Partition number (1 = boot, 2 = root).
    pub index: u32,
    /// First sector.
    pub start_lba: u64,
    /// Length in sectors.
    pub size_lba: u64,
    /// PARTUUID as the kernel prints it (`1a2b3c4d-02` or a lowercase GUID).
    pub partuuid: String,
}

impl PartPlan {
    /// Byte offset of the partition in the image.
    pub fn start_bytes(&self) -> u64 {
        self.start_lba * SECTOR_SIZE
    }

    /// Length of the partition in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_lba * SECTOR_SIZE
    }
}

/// The complete, pure description of an image; [`crate::write_image`] carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlan {
    /// MBR or GPT.
    pub table: TableKind,
    /// Image size in bytes.
    pub total_size: u64,
    /// The smallest image size this content allows.
    pub minimum_size: u64,
    /// Partition 1: FAT32 boot.
    pub boot: PartPlan,
    /// Partition 2: ext4 root, to the end of the disk.
    pub root: PartPlan,
    /// MBR disk signature as 8 lowercase hex digits, or the lowercase GPT disk GUID.
    pub disk_id: String,
    /// FAT volume serial number of the boot partition.
    pub boot_volume_id: u32,
    /// UUID of the ext4 root filesystem (lowercase).
    pub root_fs_uuid: String,
    /// Directory-hash seed of the ext4 root filesystem (lowercase UUID).
    pub root_hash_seed: String,
}

impl ImagePlan {
    /// The value for `root=PARTUUID=` on the kernel command line.
    pub fn root_partuuid(&self) -> &str {
        &self.root.partuuid
    }

    /// The PARTUUID of the boot partition (for fstab).
    pub fn boot_partuuid(&self) -> &str {
        &self.boot.partuuid
    }
}

/// Plans an image for `spec` whose root tree holds `root_content_bytes` bytes.
///
/// Pure: no I/O. Fails when the boot size or a requested total size is too small, saying the
/// minimum.
pub fn plan(spec: &ImageSpec, root_content_bytes: u64) -> Result<ImagePlan, ImageError> {
    let mib = 1024 * 1024;
    if spec.boot_size < MIN_BOOT_SIZE || !spec.boot_size.is_multiple_of(mib) {
        return Err(ImageError::BootSizeInvalid {
            size: spec.boot_size,
            minimum: MIN_BOOT_SIZE,
            minimum_mib: mib_ceil(MIN_BOOT_SIZE),
        });
    }
    let boot_start = BOOT_START_LBA * SECTOR_SIZE;
    let root_start = align_up(boot_start + spec.boot_size, ALIGN_BYTES);
    // Content plus half again (metadata, and room for the next generation's new package set
    // before the first boot grows the root to the card), plus fixed room for the journal.
    let root_min = align_up(
        root_content_bytes.saturating_add(root_content_bytes / 2) + ROOT_HEADROOM,
        ALIGN_BYTES,
    );
    let tail = match spec.table {
        TableKind::Mbr => 0,
        TableKind::Gpt => GPT_TAIL_SECTORS * SECTOR_SIZE,
    };
    let minimum_size = align_up(root_start + root_min + tail, ALIGN_BYTES);
    let total_size = match spec.total_size {
        None => minimum_size,
        Some(t) if t < minimum_size => {
            return Err(ImageError::TotalTooSmall {
                requested: t,
                minimum: minimum_size,
                minimum_mib: mib_ceil(minimum_size),
            })
        }
        Some(t) if !t.is_multiple_of(SECTOR_SIZE) => return Err(ImageError::TotalUnaligned(t)),
        Some(t) => t,
    };
    if spec.table == TableKind::Mbr && total_size > MBR_MAX_BYTES {
        return Err(ImageError::TooLargeForMbr {
            size: total_size,
            max: MBR_MAX_BYTES,
        });
    }

    let total_lba = total_size / SECTOR_SIZE;
    let boot_lba = BOOT_START_LBA;
    let root_lba = root_start / SECTOR_SIZE;
    let root_end = total_lba - tail / SECTOR_SIZE;
    let seed = &spec.seed;

    let (disk_id, boot_partuuid, root_partuuid) = match spec.table {
        TableKind::Mbr => {
            let sig = derive_u32(seed, "mbr-disk-signature");
            // Linux prints the little-endian signature as a number, then "-<partition number>".
            let id = format!("{sig:08x}");
            (id.clone(), format!("{id}-01"), format!("{id}-02"))
        }
        TableKind::Gpt => (
            derive_uuid(seed, "gpt-disk-guid").to_string(),
            derive_uuid(seed, "gpt-boot-partition-guid").to_string(),
            derive_uuid(seed, "gpt-root-partition-guid").to_string(),
        ),
    };

    Ok(ImagePlan {
        table: spec.table,
        total_size,
        minimum_size,
        boot: PartPlan {
            index: 1,
            start_lba: boot_lba,
            size_lba: spec.boot_size / SECTOR_SIZE,
            partuuid: boot_partuuid,
        },
        root: PartPlan {
            index: 2,
            start_lba: root_lba,
            size_lba: root_end - root_lba,
            partuuid: root_partuuid,
        },
        disk_id,
        boot_volume_id: derive_u32(seed, "fat-volume-id"),
        root_fs_uuid: derive_uuid(seed, "ext4-uuid").to_string(),
        root_hash_seed: derive_uuid(seed, "ext4-hash-seed").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const MIB: u64 = 1024 * 1024;

    fn spec(table: TableKind) -> ImageSpec {
        ImageSpec {
            table,
            seed: [7u8; 32],
            total_size: None,
            boot_size: 512 * MIB,
            boot_label: "BOOTFS".into(),
            root_label: "rootfs".into(),
            boot_files: vec![],
            root_dir: PathBuf::from("/nonexistent"),
            root_owners: vec![],
            timestamp: 0,
        }
    }

    #[test]
    fn mbr_layout_matches_raspberry_pi_os() {
        let p = plan(&spec(TableKind::Mbr), 100 * MIB).unwrap();
        assert_eq!(p.boot.start_lba, 8192);
        assert_eq!(p.boot.size_lba, 512 * MIB / 512);
        assert_eq!(p.root.start_lba, 8192 + 1048576);
        // 100 MiB content * 1.5 + 64 MiB = 214 MiB, aligned to 4 MiB = 216 MiB.
        assert_eq!(p.root.size_bytes(), 216 * MIB);
        assert_eq!(p.total_size, 4 * MIB + 512 * MIB + 216 * MIB);
        assert_eq!(p.root.start_lba + p.root.size_lba, p.total_size / 512);
        assert_eq!(p.minimum_size, p.total_size);
    }

    #[test]
    fn gpt_keeps_room_for_the_backup_table() {
        let p = plan(&spec(TableKind::Gpt), 100 * MIB).unwrap();
        assert_eq!(p.total_size % ALIGN_BYTES, 0);
        assert_eq!(p.root.start_lba + p.root.size_lba, p.total_size / 512 - 33);
        assert!(p.root.size_bytes() >= 189 * MIB);
    }

    #[test]
    fn every_partition_is_aligned() {
        for table in [TableKind::Mbr, TableKind::Gpt] {
            for content in [0, 1, 12_345_678, 3 * 1024 * MIB] {
                let p = plan(&spec(table), content).unwrap();
                assert_eq!(p.boot.start_bytes() % ALIGN_BYTES, 0);
                assert_eq!(p.root.start_bytes() % ALIGN_BYTES, 0);
                assert!(p.root.size_bytes() >= content + content / 4 + 64 * MIB);
            }
        }
    }

    #[test]
    fn requested_size_is_kept_or_refused_with_the_minimum() {
        let mut s = spec(TableKind::Mbr);
        s.total_size = Some(2048 * MIB);
        let p = plan(&s, 10 * MIB).unwrap();
        assert_eq!(p.total_size, 2048 * MIB);
        assert_eq!(p.root.size_bytes(), 2048 * MIB - 516 * MIB);

        s.total_size = Some(590 * MIB);
        match plan(&s, 10 * MIB) {
            Err(ImageError::TotalTooSmall {
                requested, minimum, ..
            }) => {
                assert_eq!(requested, 590 * MIB);
                assert_eq!(minimum, 4 * MIB + 512 * MIB + 80 * MIB);
            }
            other => panic!("expected TotalTooSmall, got {other:?}"),
        }
        s.total_size = Some(2048 * MIB + 1);
        assert!(matches!(plan(&s, 0), Err(ImageError::TotalUnaligned(_))));
    }

    #[test]
    fn boot_size_is_validated() {
        let mut s = spec(TableKind::Mbr);
        s.boot_size = 16 * MIB;
        assert!(matches!(
            plan(&s, 0),
            Err(ImageError::BootSizeInvalid { .. })
        ));
        s.boot_size = 64 * MIB + 512;
        assert!(matches!(
            plan(&s, 0),
            Err(ImageError::BootSizeInvalid { .. })
        ));
        s.boot_size = 64 * MIB;
        assert_eq!(plan(&s, 0).unwrap().root.start_lba, (4 + 64) * MIB / 512);
    }

    #[test]
    fn mbr_cannot_exceed_2_tib() {
        let mut s = spec(TableKind::Mbr);
        s.total_size = Some(4 * 1024 * 1024 * MIB);
        assert!(matches!(
            plan(&s, 0),
            Err(ImageError::TooLargeForMbr { .. })
        ));
        s.table = TableKind::Gpt;
        assert!(plan(&s, 0).is_ok());
    }

    #[test]
    fn ids_come_from_the_seed_only() {
        let a = plan(&spec(TableKind::Gpt), 0).unwrap();
        let b = plan(&spec(TableKind::Gpt), 50 * MIB).unwrap();
        assert_eq!(a.disk_id, b.disk_id);
        assert_eq!(a.root_fs_uuid, b.root_fs_uuid);
        let mut other = spec(TableKind::Gpt);
        other.seed[31] ^= 1;
        let c = plan(&other, 0).unwrap();
        assert_ne!(a.disk_id, c.disk_id);
        assert_ne!(a.root.partuuid, c.root.partuuid);
        assert_ne!(a.boot_volume_id, c.boot_volume_id);
        assert_ne!(a.root_fs_uuid, c.root_fs_uuid);
        let ids = [
            &a.disk_id,
            &a.boot.partuuid,
            &a.root.partuuid,
            &a.root_fs_uuid,
            &a.root_hash_seed,
        ];
        for (i, x) in ids.iter().enumerate() {
            let u = uuid::Uuid::parse_str(x).unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(x.to_lowercase(), **x);
            for y in &ids[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn golden_ids() {
        let m = plan(&spec(TableKind::Mbr), 0).unwrap();
        let g = plan(&spec(TableKind::Gpt), 0).unwrap();
        let got = format!(
            "{} {} {} {:08x} {} {}\n{} {} {}",
            m.disk_id,
            m.boot_partuuid(),
            m.root_partuuid(),
            m.boot_volume_id,
            m.root_fs_uuid,
            m.root_hash_seed,
            g.disk_id,
            g.boot_partuuid(),
            g.root_partuuid()
        );
        assert_eq!(got, GOLDEN);
    }

    /// Cross-checked with Python: sha256(b"pideploy-image/v1\0" + purpose + b"\0" + seed), first
    /// four bytes little-endian for 32-bit ids, first sixteen with v4/RFC 4122 bits for UUIDs.
    const GOLDEN: &str = "0f340101 0f340101-01 0f340101-02 3f249d76 \
        73f9f113-848a-468a-889b-d5537d45cdcd d558eef2-f7f6-47db-8142-b171b891a485\n\
        e5b5093f-ff17-4c20-98cf-2115674a0964 29c7745f-2d93-4315-ac71-d377e05a260f \
        727b3b68-b245-4208-9048-532eccc85070";
}
