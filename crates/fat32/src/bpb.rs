//! The boot sector (BIOS parameter block) and FSInfo sector: choosing a FAT32 geometry for a
//! size, encoding it for the writer, and decoding any FAT boot sector for the reader.

use crate::FatError;

/// Bytes per sector; the writer only produces 512-byte sectors.
pub(crate) const SECTOR: u32 = 512;
/// Reserved sectors before the first FAT (boot, FSInfo, backups at 6 and 7).
pub(crate) const RESERVED_SECTORS: u32 = 32;
/// Number of FAT copies.
pub(crate) const NUM_FATS: u32 = 2;
/// Sector of the FSInfo structure.
const FSINFO_SECTOR: u16 = 1;
/// Sector of the backup boot sector (FSInfo backup follows it).
pub(crate) const BACKUP_BOOT_SECTOR: u32 = 6;
/// The root directory always starts at the first data cluster.
pub(crate) const ROOT_CLUSTER: u32 = 2;
/// Fewer clusters than this make a volume FAT16 by definition (Microsoft's fatgen103).
pub(crate) const MIN_FAT32_CLUSTERS: u64 = 65525;
/// FAT32 entries have 28 bits and the top values are reserved markers.
const MAX_FAT32_CLUSTERS: u64 = 0x0FFF_FFF5;
const MEDIA: u8 = 0xF8;

/// Which FAT variant a volume uses; decided by its cluster count, as the specification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    /// Fewer than 4085 clusters.
    Fat12,
    /// 4085 to 65524 clusters.
    Fat16,
    /// 65525 clusters or more.
    Fat32,
}

impl FatType {
    fn from_clusters(clusters: u64) -> Self {
        if clusters < 4085 {
            FatType::Fat12
        } else if clusters < MIN_FAT32_CLUSTERS {
            FatType::Fat16
        } else {
            FatType::Fat32
        }
    }
}

/// The layout of a FAT32 volume the writer produces: everything derives from the sector count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub total_sectors: u32,
    pub sectors_per_cluster: u32,
    pub fat_sectors: u32,
    pub cluster_count: u32,
}

impl Geometry {
    /// Picks the cluster size the way mkfs.fat and Microsoft's format do for FAT32 and
    /// refuses sizes that would not give a real FAT32 volume.
    pub fn for_size(size: u64) -> Result<Self, FatError> {
        let max = u64::from(u32::MAX) * u64::from(SECTOR);
        if size > max {
            return Err(FatError::TooLarge { size, max });
        }
        let total = u32::try_from(size / u64::from(SECTOR)).expect("checked against u32::MAX");
        let spc = sectors_per_cluster(total);
        let geo = Self::with_cluster_size(total, spc);
        if u64::from(geo.cluster_count) < MIN_FAT32_CLUSTERS {
            return Err(FatError::TooSmall {
                size,
                clusters: u64::from(geo.cluster_count),
                min: min_size(),
            });
        }
        debug_assert!(u64::from(geo.cluster_count) <= MAX_FAT32_CLUSTERS);
        Ok(geo)
    }

    fn with_cluster_size(total: u32, spc: u32) -> Self {
        let clusters_for = |fat: u32| total.saturating_sub(RESERVED_SECTORS + NUM_FATS * fat) / spc;
        // The FAT must cover every cluster plus the two reserved entries. A bigger FAT leaves
        // fewer clusters, so "fat is big enough" only turns true once as fat grows: climb to a
        // size that is enough, then step down to the smallest that still is.
        let enough = |fat: u32| (clusters_for(fat) + 2).div_ceil(SECTOR / 4) <= fat;
        let mut fat = 1;
        while !enough(fat) {
            fat = (clusters_for(fat) + 2).div_ceil(SECTOR / 4);
        }
        while fat > 1 && enough(fat - 1) {
            fat -= 1;
        }
        // Align the data area to the cluster size so clusters line up with flash pages.
        while (RESERVED_SECTORS + NUM_FATS * fat) % spc != 0 {
            fat += 1;
        }
        Geometry {
            total_sectors: total,
            sectors_per_cluster: spc,
            fat_sectors: fat,
            cluster_count: clusters_for(fat),
        }
    }

    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * u64::from(SECTOR)
    }

    pub fn fat_offset(&self, copy: u32) -> u64 {
        u64::from(RESERVED_SECTORS + copy * self.fat_sectors) * u64::from(SECTOR)
    }

    /// Byte offset of a data cluster (numbered from 2) within the volume.
    pub fn cluster_offset(&self, cluster: u32) -> u64 {
        let data_start = u64::from(RESERVED_SECTORS + NUM_FATS * self.fat_sectors);
        (data_start + u64::from(cluster - 2) * u64::from(self.sectors_per_cluster))
            * u64::from(SECTOR)
    }

    /// Bytes available for file data and directories.
    pub fn capacity_bytes(&self) -> u64 {
        u64::from(self.cluster_count) * self.cluster_bytes()
    }

    /// The boot sector; `label` is already validated and padded.
    pub fn boot_sector(&self, volume_id: u32, label: &[u8; 11], hidden_sectors: u32) -> [u8; 512] {
        let mut s = [0u8; 512];
        // A short jump over the BPB to a `hlt; jmp $-1` loop: the volume is not meant to boot
        // an x86 machine, but the jump is what many implementations check for.
        s[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
        s[3..11].copy_from_slice(b"MSWIN4.1");
        put16(&mut s, 11, SECTOR as u16);
        s[13] = self.sectors_per_cluster as u8;
        put16(&mut s, 14, RESERVED_SECTORS as u16);
        s[16] = NUM_FATS as u8;
        // 17: root entries, 19: 16-bit sector count, 22: 16-bit FAT size all stay 0 on FAT32.
        s[21] = MEDIA;
        put16(&mut s, 24, 63); // CHS geometry nobody uses any more, the usual LBA values
        put16(&mut s, 26, 255);
        put32(&mut s, 28, hidden_sectors);
        put32(&mut s, 32, self.total_sectors);
        put32(&mut s, 36, self.fat_sectors);
        // 40: flags 0 = FATs mirrored; 42: version 0.0
        put32(&mut s, 44, ROOT_CLUSTER);
        put16(&mut s, 48, FSINFO_SECTOR);
        put16(&mut s, 50, BACKUP_BOOT_SECTOR as u16);
        s[64] = 0x80;
        s[66] = 0x29;
        put32(&mut s, 67, volume_id);
        s[71..82].copy_from_slice(label);
        s[82..90].copy_from_slice(b"FAT32   ");
        s[90..93].copy_from_slice(&[0xF4, 0xEB, 0xFD]);
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }
}

/// The FSInfo sector with the free-cluster count and the hint where free clusters start.
pub(crate) fn fsinfo_sector(free_clusters: u32, next_free: u32) -> [u8; 512] {
    let mut s = [0u8; 512];
    put32(&mut s, 0, 0x4161_5252);
    put32(&mut s, 484, 0x6141_7272);
    put32(&mut s, 488, free_clusters);
    put32(&mut s, 492, next_free);
    put32(&mut s, 508, 0xAA55_0000);
    s
}

/// Microsoft's table: 512 B clusters up to 260 MiB, 4 KiB up to 8 GiB, then doubling.
fn sectors_per_cluster(total_sectors: u32) -> u32 {
    match total_sectors {
        0..=532_480 => 1,
        532_481..=16_777_216 => 8,
        16_777_217..=33_554_432 => 16,
        33_554_433..=67_108_864 => 32,
        _ => 64,
    }
}

/// The smallest volume size in bytes that still gives a FAT32 cluster count.
pub(crate) fn min_size() -> u64 {
    // With one sector per cluster, overhead is the reserved area plus two FATs.
    let mut total = MIN_FAT32_CLUSTERS as u32 + RESERVED_SECTORS;
    while u64::from(Geometry::with_cluster_size(total, 1).cluster_count) < MIN_FAT32_CLUSTERS {
        total += 1;
    }
    u64::from(total) * u64::from(SECTOR)
}

/// What the reader needs from any FAT boot sector.
#[derive(Debug, Clone)]
pub(crate) struct Bpb {
    pub bytes_per_sector: u32,
    pub sectors_per_cluster: u32,
    pub reserved_sectors: u32,
    pub num_fats: u32,
    pub root_entries: u32,
    pub fat_sectors: u32,
    pub root_cluster: u32,
    pub cluster_count: u32,
    pub fat_type: FatType,
    pub volume_id: u32,
    pub label: [u8; 11],
}

impl Bpb {
    pub fn parse(s: &[u8; 512]) -> Result<Self, FatError> {
        let bad = |reason: &str| FatError::NotFat {
            reason: reason.to_string(),
        };
        if s[510] != 0x55 || s[511] != 0xAA {
            return Err(bad("boot sector lacks the 0x55AA signature"));
        }
        let bytes_per_sector = u32::from(get16(s, 11));
        if !(512..=4096).contains(&bytes_per_sector) || !bytes_per_sector.is_power_of_two() {
            return Err(bad("bytes per sector is not 512, 1024, 2048 or 4096"));
        }
        let sectors_per_cluster = u32::from(s[13]);
        if sectors_per_cluster == 0 || !sectors_per_cluster.is_power_of_two() {
            return Err(bad("sectors per cluster is not a power of two"));
        }
        let reserved_sectors = u32::from(get16(s, 14));
        let num_fats = u32::from(s[16]);
        if reserved_sectors == 0 || num_fats == 0 {
            return Err(bad("no reserved sectors or no FAT"));
        }
        let root_entries = u32::from(get16(s, 17));
        let total_sectors = match get16(s, 19) {
            0 => get32(s, 32),
            n => u32::from(n),
        };
        let fat_sectors = match get16(s, 22) {
            0 => get32(s, 36),
            n => u32::from(n),
        };
        if fat_sectors == 0 {
            return Err(bad("FAT size is zero"));
        }
        let root_dir_sectors = (root_entries * 32).div_ceil(bytes_per_sector);
        let meta = u64::from(reserved_sectors)
            + u64::from(num_fats) * u64::from(fat_sectors)
            + u64::from(root_dir_sectors);
        let data_sectors = u64::from(total_sectors)
            .checked_sub(meta)
            .ok_or_else(|| bad("FATs and root directory are larger than the volume"))?;
        let cluster_count = data_sectors / u64::from(sectors_per_cluster);
        let fat_type = FatType::from_clusters(cluster_count);
        if cluster_count > MAX_FAT32_CLUSTERS {
            return Err(bad("more clusters than FAT32 can address"));
        }
        let cluster_count = u32::try_from(cluster_count).expect("checked against the FAT32 limit");
        let (root_cluster, id_at, label_at) = if fat_type == FatType::Fat32 {
            (get32(s, 44), 67, 71)
        } else {
            (0, 39, 43)
        };
        let mut label = [b' '; 11];
        if s[id_at - 1] == 0x29 {
            label.copy_from_slice(&s[label_at..label_at + 11]);
        }
        let volume_id = if s[id_at - 1] == 0x29 || s[id_at - 1] == 0x28 {
            get32(s, id_at)
        } else {
            0
        };
        Ok(Bpb {
            bytes_per_sector,
            sectors_per_cluster,
            reserved_sectors,
            num_fats,
            root_entries,
            fat_sectors,
            root_cluster,
            cluster_count,
            fat_type,
            volume_id,
            label,
        })
    }

    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * u64::from(self.bytes_per_sector)
    }

    pub fn fat_offset(&self) -> u64 {
        u64::from(self.reserved_sectors) * u64::from(self.bytes_per_sector)
    }

    /// Where the fixed FAT12/16 root directory starts.
    pub fn root_dir_offset(&self) -> u64 {
        self.fat_offset()
            + u64::from(self.num_fats)
                * u64::from(self.fat_sectors)
                * u64::from(self.bytes_per_sector)
    }

    pub fn cluster_offset(&self, cluster: u32) -> u64 {
        self.root_dir_offset()
            + u64::from(self.root_entries) * 32
            + u64::from(cluster - 2) * self.cluster_bytes()
    }

    /// Where the last cluster ends: the volume must be at least this long.
    pub fn data_end(&self) -> u64 {
        self.root_dir_offset()
            + u64::from(self.root_entries) * 32
            + u64::from(self.cluster_count) * self.cluster_bytes()
    }
}

pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_sizes_follow_the_microsoft_table() {
        let mib = 1u64 << 20;
        assert_eq!(Geometry::for_size(64 * mib).unwrap().sectors_per_cluster, 1);
        // Same FAT size mkfs.fat 4.2 picks for a 64 MiB FAT32 volume.
        assert_eq!(Geometry::for_size(64 * mib).unwrap().fat_sectors, 1009);
        assert_eq!(
            Geometry::for_size(256 * mib).unwrap().sectors_per_cluster,
            1
        );
        assert_eq!(
            Geometry::for_size(512 * mib).unwrap().sectors_per_cluster,
            8
        );
        assert_eq!(
            Geometry::for_size(8192 * mib).unwrap().sectors_per_cluster,
            8
        );
        assert_eq!(
            Geometry::for_size(16384 * mib).unwrap().sectors_per_cluster,
            16
        );
    }

    #[test]
    fn fat_covers_every_cluster_and_data_is_aligned() {
        for mib in [33u64, 64, 100, 256, 300, 512, 1000, 4096] {
            let g = Geometry::for_size(mib << 20).unwrap();
            assert!(
                u64::from(g.fat_sectors) * 128 >= u64::from(g.cluster_count) + 2,
                "{mib}"
            );
            // Not wasteful: one FAT sector less (per copy) could not cover the clusters, or
            // alignment forced the extra sectors.
            let smaller = g.fat_sectors - 1;
            let clusters_if_smaller =
                (g.total_sectors - RESERVED_SECTORS - NUM_FATS * smaller) / g.sectors_per_cluster;
            assert!(
                smaller * 128 < clusters_if_smaller + 2 || g.sectors_per_cluster > 1,
                "{mib}"
            );
            assert_eq!(g.cluster_offset(2) % g.cluster_bytes(), 0, "{mib}");
            let end = g.cluster_offset(2) + g.capacity_bytes();
            assert!(end <= mib << 20, "{mib}");
            assert!(
                (mib << 20) - end < g.cluster_bytes(),
                "{mib}: clusters left unused"
            );
        }
    }

    #[test]
    fn min_size_is_exactly_the_fat32_threshold() {
        let min = min_size();
        let g = Geometry::for_size(min).unwrap();
        assert!(u64::from(g.cluster_count) >= MIN_FAT32_CLUSTERS);
        match Geometry::for_size(min - 512) {
            Err(FatError::TooSmall { min: m, .. }) => assert_eq!(m, min),
            other => panic!("expected TooSmall, got {other:?}"),
        }
    }

    #[test]
    fn boot_sector_round_trips_through_the_parser() {
        let g = Geometry::for_size(256 << 20).unwrap();
        let s = g.boot_sector(0x1234_5678, b"BOOT       ", 2048);
        let b = Bpb::parse(&s).unwrap();
        assert_eq!(b.fat_type, FatType::Fat32);
        assert_eq!(b.cluster_count, g.cluster_count);
        assert_eq!(b.volume_id, 0x1234_5678);
        assert_eq!(&b.label, b"BOOT       ");
        assert_eq!(get32(&s, 28), 2048);
    }
}
