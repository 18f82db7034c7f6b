//! I/O: writes a planned volume. Only non-zero regions are written (boot sectors, the used
//! part of both FATs, directories and file data); the rest is skipped by seeking.

use std::io::{Seek, SeekFrom, Write};

use crate::bpb::{fsinfo_sector, Geometry, BACKUP_BOOT_SECTOR, SECTOR};
use crate::layout::Layout;
use crate::FatError;

/// End-of-chain marker.
const EOC: u32 = 0x0FFF_FFFF;

/// The volume-wide facts the writer needs.
pub(crate) struct Volume<'a> {
    pub geometry: &'a Geometry,
    pub size_bytes: u64,
    pub volume_id: u32,
    pub label: Option<[u8; 11]>,
    pub hidden_sectors: u32,
}

/// The used prefix of the FAT: entries 0 and 1, then one chain per extent.
pub(crate) fn fat_bytes(layout: &Layout<'_>) -> Vec<u8> {
    let mut fat = vec![0u32; layout.next_free as usize];
    // Entry 0 repeats the media byte; entry 1 is end-of-chain with the "clean" and "no
    // errors" bits set.
    fat[0] = 0x0FFF_FF00 | 0xF8;
    fat[1] = EOC;
    for e in &layout.extents {
        let last = e.first + e.clusters - 1;
        for c in e.first..last {
            fat[c as usize] = c + 1;
        }
        fat[last as usize] = EOC;
    }
    fat.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `layout` as a volume of `vol.size_bytes` at `out`'s current position.
pub(crate) fn write_volume<W: Write + Seek>(
    vol: &Volume<'_>,
    layout: &Layout<'_>,
    out: &mut W,
) -> Result<(), FatError> {
    let geo = vol.geometry;
    let base = out.stream_position().map_err(FatError::io(
        "finding the start of the FAT volume in the output",
    ))?;
    let mut put = |offset: u64, bytes: &[u8], what: &str| -> Result<(), FatError> {
        out.seek(SeekFrom::Start(base + offset))
            .and_then(|_| out.write_all(bytes))
            .map_err(FatError::io(format!(
                "writing {what} at volume offset {offset}"
            )))
    };

    let label = vol.label.unwrap_or(*b"NO NAME    ");
    let boot = geo.boot_sector(vol.volume_id, &label, vol.hidden_sectors);
    let used = layout.next_free - crate::bpb::ROOT_CLUSTER;
    let free = geo.cluster_count - used;
    // The hint points at the first free cluster; 0xFFFFFFFF means "unknown" when none is free.
    let next_free = if free == 0 {
        u32::MAX
    } else {
        layout.next_free
    };
    let fsinfo = fsinfo_sector(free, next_free);
    let sector = u64::from(SECTOR);
    for start in [0, u64::from(BACKUP_BOOT_SECTOR)] {
        put(start * sector, &boot, "the boot sector")?;
        put((start + 1) * sector, &fsinfo, "the FSInfo sector")?;
    }

    let fat = fat_bytes(layout);
    for copy in 0..crate::bpb::NUM_FATS {
        put(geo.fat_offset(copy), &fat, "the FAT")?;
    }
    for e in &layout.extents {
        put(
            geo.cluster_offset(e.first),
            &e.bytes,
            "directory or file data",
        )?;
    }

    // Make sure the output covers the whole volume even if its tail was skipped (a sparse
    // file would otherwise end early), and leave the position at the end of the volume.
    let data_end = layout
        .extents
        .last()
        .map_or(0, |e| geo.cluster_offset(e.first) + e.bytes.len() as u64);
    if data_end < vol.size_bytes {
        put(vol.size_bytes - 1, &[0], "the last byte of the volume")?;
    }
    out.seek(SeekFrom::Start(base + vol.size_bytes))
        .map_err(FatError::io("seeking to the end of the FAT volume"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Extent;
    use std::borrow::Cow;

    #[test]
    fn chains_are_contiguous_and_terminated() {
        let layout = Layout {
            extents: vec![
                Extent {
                    first: 2,
                    clusters: 1,
                    bytes: Cow::Owned(vec![]),
                },
                Extent {
                    first: 3,
                    clusters: 3,
                    bytes: Cow::Owned(vec![]),
                },
            ],
            next_free: 6,
        };
        let fat: Vec<u32> = fat_bytes(&layout)
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(fat, vec![0x0FFF_FFF8, EOC, EOC, 4, 5, EOC]);
    }
}
