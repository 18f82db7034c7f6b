//! Reading a partition table back from an image that may be hostile or corrupt.
//!
//! Parsed here rather than by the `gpt`/`mbrman` crates, which assert or overflow on bad input
//! (entry size other than 128, last LBA before first, LBA 0): every number read is checked
//! against the image's real length before it is used, so a bad table is one error, never a
//! panic or a large allocation.

use std::io::{Read, Seek, SeekFrom};

use crate::error::ImageError;
use crate::plan::SECTOR_SIZE;
use crate::spec::TableKind;
use crate::table::{PartitionEntry, PartitionTable, MBR_PROTECTIVE};

/// The most GPT entries read; tools write 128, the format allows more, nobody needs thousands.
const MAX_GPT_ENTRIES: u32 = 4096;
/// The largest GPT entry accepted (the format allows 128 × 2^n).
const MAX_GPT_ENTRY_SIZE: u32 = 1024;
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";

fn bad(reason: String) -> ImageError {
    ImageError::BadTable(reason)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

/// CRC-32 (IEEE, reflected) lookup table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32 (IEEE, reflected), as GPT uses for its header and entry array.
fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &b| {
        CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// Reads the partition table of an image (MBR, or GPT behind a protective MBR), checking that
/// every partition lies inside the image.
pub fn read_table(r: &mut (impl Read + Seek)) -> Result<PartitionTable, ImageError> {
    let len = r
        .seek(SeekFrom::End(0))
        .map_err(ImageError::io("finding the length of the image"))?;
    let mut sector = [0u8; 512];
    r.seek(SeekFrom::Start(0))
        .and_then(|_| r.read_exact(&mut sector))
        .map_err(ImageError::io("reading sector 0 of the image"))?;
    if sector[510..512] != [0x55, 0xaa] {
        return Err(bad(
            "no boot signature in sector 0: this is not a partitioned disk image".to_string(),
        ));
    }
    let sectors = len / SECTOR_SIZE;
    if sector[446 + 4] == MBR_PROTECTIVE {
        read_gpt(r, sectors)
    } else {
        read_mbr(&sector, sectors)
    }
}

/// Checks that a partition of `size` sectors at `start` lies inside an image of `sectors`.
fn check_extent(index: u32, start: u64, size: u64, sectors: u64) -> Result<(), ImageError> {
    if start == 0 {
        return Err(bad(format!(
            "partition {index} starts at sector 0, where the table itself is; the table is corrupt"
        )));
    }
    match start.checked_add(size) {
        Some(end) if end <= sectors => Ok(()),
        _ => Err(bad(format!(
            "partition {index} (sectors {start}+{size}) ends past the end of the image \
             ({sectors} sectors); the image is truncated or its table is corrupt"
        ))),
    }
}

fn read_mbr(sector: &[u8; 512], sectors: u64) -> Result<PartitionTable, ImageError> {
    let disk_id = format!("{:08x}", le32(sector, 440));
    let mut partitions = Vec::new();
    for i in 0..4u32 {
        let e = &sector[446 + 16 * i as usize..][..16];
        let sys = e[4];
        let (start, size) = (u64::from(le32(e, 8)), u64::from(le32(e, 12)));
        if sys == 0 || size == 0 {
            continue;
        }
        let index = i + 1;
        check_extent(index, start, size, sectors)?;
        partitions.push(PartitionEntry {
            index,
            start_lba: start,
            size_lba: size,
            type_code: Some(sys),
            type_guid: None,
            partuuid: format!("{disk_id}-{index:02x}"),
        });
    }
    Ok(PartitionTable {
        kind: TableKind::Mbr,
        disk_id,
        partitions,
    })
}

/// A GUID as stored on disk (first three fields little-endian), as text.
fn guid(b: &[u8]) -> String {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    uuid::Uuid::from_bytes_le(a).to_string()
}

fn read_gpt(r: &mut (impl Read + Seek), sectors: u64) -> Result<PartitionTable, ImageError> {
    let mut h = [0u8; 512];
    r.seek(SeekFrom::Start(SECTOR_SIZE))
        .and_then(|_| r.read_exact(&mut h))
        .map_err(ImageError::io("reading the primary GPT header (sector 1)"))?;
    if &h[..8] != GPT_SIGNATURE {
        return Err(bad(
            "sector 0 announces a GPT but sector 1 has no `EFI PART` header".to_string(),
        ));
    }
    let header_size = le32(&h, 12);
    if !(92..=512).contains(&header_size) {
        return Err(bad(format!(
            "GPT header size {header_size} is outside 92..=512"
        )));
    }
    let mut zeroed = h[..header_size as usize].to_vec();
    zeroed[16..20].fill(0);
    let (stored, actual) = (le32(&h, 16), crc32(&zeroed));
    if stored != actual {
        return Err(bad(format!(
            "GPT header checksum is {stored:08x} but the header hashes to {actual:08x}; the table is corrupt"
        )));
    }
    let entries_lba = le64(&h, 72);
    let count = le32(&h, 80);
    let entry_size = le32(&h, 84);
    if !(128..=MAX_GPT_ENTRY_SIZE).contains(&entry_size) || !entry_size.is_power_of_two() {
        return Err(bad(format!(
            "GPT partition entry size {entry_size} is not 128 × 2^n up to {MAX_GPT_ENTRY_SIZE}"
        )));
    }
    if count > MAX_GPT_ENTRIES {
        return Err(bad(format!(
            "GPT claims {count} partition entries; at most {MAX_GPT_ENTRIES} are accepted"
        )));
    }
    // Bounded by the two checks above: at most 4 MiB.
    let array_len = u64::from(count) * u64::from(entry_size);
    let array_end = entries_lba
        .checked_mul(SECTOR_SIZE)
        .and_then(|start| start.checked_add(array_len));
    if entries_lba < 2 || array_end.is_none_or(|end| end > sectors * SECTOR_SIZE) {
        return Err(bad(format!(
            "GPT partition entries at sector {entries_lba} ({array_len} bytes) are not inside the image"
        )));
    }
    let mut array = vec![0u8; array_len as usize];
    r.seek(SeekFrom::Start(entries_lba * SECTOR_SIZE))
        .and_then(|_| r.read_exact(&mut array))
        .map_err(ImageError::io("reading the GPT partition entries"))?;
    let (stored, actual) = (le32(&h, 88), crc32(&array));
    if stored != actual {
        return Err(bad(format!(
            "GPT entry array checksum is {stored:08x} but the entries hash to {actual:08x}; the table is corrupt"
        )));
    }
    let mut partitions = Vec::new();
    for (i, e) in array.chunks_exact(entry_size as usize).enumerate() {
        if e[..16].iter().all(|b| *b == 0) {
            continue;
        }
        let index = i as u32 + 1;
        let (first, last) = (le64(e, 32), le64(e, 40));
        if last < first {
            return Err(bad(format!(
                "GPT partition {index} ends (sector {last}) before it starts (sector {first})"
            )));
        }
        // last < first was refused, and last + 1 cannot overflow once last is inside the image.
        if last >= sectors {
            return Err(bad(format!(
                "GPT partition {index} (sectors {first}..={last}) ends past the end of the image \
                 ({sectors} sectors); the image is truncated or its table is corrupt"
            )));
        }
        let size = last - first + 1;
        check_extent(index, first, size, sectors)?;
        partitions.push(PartitionEntry {
            index,
            start_lba: first,
            size_lba: size,
            type_code: None,
            type_guid: Some(guid(&e[..16]).to_uppercase()),
            partuuid: guid(&e[16..32]),
        });
    }
    Ok(PartitionTable {
        kind: TableKind::Gpt,
        disk_id: guid(&h[56..72]),
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
