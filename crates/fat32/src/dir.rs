//! 32-byte directory entries: encoding short entries for the writer and decoding a whole
//! directory (short entries with their LFN runs) for the reader.

use crate::bpb::{get16, get32, put16, put32};
use crate::names::{lfn_checksum, ATTR_LFN, LFN_SLOTS};

/// Size of one directory entry.
pub(crate) const ENTRY: usize = 32;
pub(crate) const ATTR_VOLUME_ID: u8 = 0x08;
pub(crate) const ATTR_DIRECTORY: u8 = 0x10;
pub(crate) const ATTR_ARCHIVE: u8 = 0x20;
/// 2000-01-01 in DOS date format ((year - 1980) << 9 | month << 5 | day); every timestamp
/// the writer stores is this date at 00:00:00 so output never depends on the clock.
pub(crate) const FIXED_DATE: u16 = (20 << 9) | (1 << 5) | 1;
pub(crate) const FIXED_TIME: u16 = 0;

pub(crate) const DOT: [u8; 11] = *b".          ";
pub(crate) const DOTDOT: [u8; 11] = *b"..         ";

/// Encodes a short directory entry.
pub(crate) fn short_entry(name: &[u8; 11], attr: u8, cluster: u32, size: u32) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    put16(&mut e, 14, FIXED_TIME); // creation time
    put16(&mut e, 16, FIXED_DATE); // creation date
    put16(&mut e, 18, FIXED_DATE); // last access date
    put16(&mut e, 20, (cluster >> 16) as u16);
    put16(&mut e, 22, FIXED_TIME); // write time
    put16(&mut e, 24, FIXED_DATE); // write date
    put16(&mut e, 26, cluster as u16);
    put32(&mut e, 28, size);
    e
}

/// One decoded entry of a directory.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    /// The long name when a valid LFN run (matching checksum, complete sequence) precedes it.
    pub long_name: Option<String>,
    pub short: [u8; 11],
    /// Windows NT lower-case flags (byte 12).
    pub nt_flags: u8,
    pub attr: u8,
    pub cluster: u32,
    pub size: u32,
}

impl RawEntry {
    pub fn is_dir(&self) -> bool {
        self.attr & ATTR_DIRECTORY != 0
    }

    pub fn is_volume_label(&self) -> bool {
        self.attr & ATTR_VOLUME_ID != 0 && !self.is_dir()
    }

    pub fn is_dot(&self) -> bool {
        self.short == DOT || self.short == DOTDOT
    }
}

/// An LFN run being collected; entries arrive highest sequence number first.
struct PendingLfn {
    units: Vec<u16>,
    next_seq: u8,
    checksum: u8,
}

/// Decodes the entries of a directory's bytes up to the end marker, skipping deleted ones.
/// An LFN run that is broken (wrong order, checksum mismatch) is ignored and the short name
/// is used instead, as Windows and Linux do.
pub(crate) fn parse_dir(bytes: &[u8]) -> Vec<RawEntry> {
    let mut out = Vec::new();
    let mut pending: Option<PendingLfn> = None;
    for e in bytes.chunks_exact(ENTRY) {
        match e[0] {
            0x00 => break,
            0xE5 => {
                pending = None;
                continue;
            }
            _ => {}
        }
        let attr = e[11];
        if attr & 0x3F == ATTR_LFN {
            let seq = e[0] & 0x1F;
            if e[0] & 0x40 != 0 && seq > 0 {
                pending = Some(PendingLfn {
                    units: vec![0; usize::from(seq) * 13],
                    next_seq: seq,
                    checksum: e[13],
                });
            }
            pending = pending.filter(|p| p.next_seq == seq && p.checksum == e[13] && seq > 0);
            if let Some(p) = pending.as_mut() {
                let base = usize::from(seq - 1) * 13;
                for (i, slot) in LFN_SLOTS.iter().enumerate() {
                    p.units[base + i] = get16(e, *slot);
                }
                p.next_seq -= 1;
            }
            continue;
        }
        let mut short = [0u8; 11];
        short.copy_from_slice(&e[..11]);
        let long_name = pending
            .take()
            .filter(|p| p.next_seq == 0 && p.checksum == lfn_checksum(&short))
            .map(|p| {
                let end = p
                    .units
                    .iter()
                    .position(|&u| u == 0)
                    .unwrap_or(p.units.len());
                String::from_utf16_lossy(&p.units[..end])
            });
        out.push(RawEntry {
            long_name,
            short,
            nt_flags: e[12],
            attr,
            cluster: (u32::from(get16(e, 20)) << 16) | u32::from(get16(e, 26)),
            size: get32(e, 28),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::lfn_entries;

    #[test]
    fn lfn_run_round_trips() {
        let short = *b"BCM271~1DTB";
        let mut bytes = Vec::new();
        for e in lfn_entries("bcm2712d0-rpi-5-b.dtb", lfn_checksum(&short)) {
            bytes.extend_from_slice(&e);
        }
        bytes.extend_from_slice(&short_entry(&short, ATTR_ARCHIVE, 0x0001_0005, 77));
        let parsed = parse_dir(&bytes);
        assert_eq!(parsed.len(), 1);
        assert_eq!(
            parsed[0].long_name.as_deref(),
            Some("bcm2712d0-rpi-5-b.dtb")
        );
        assert_eq!(parsed[0].cluster, 0x0001_0005);
        assert_eq!(parsed[0].size, 77);
    }

    #[test]
    fn lfn_with_wrong_checksum_is_ignored() {
        let mut bytes = Vec::new();
        for e in lfn_entries("long name.txt", 0x12) {
            bytes.extend_from_slice(&e);
        }
        bytes.extend_from_slice(&short_entry(b"LONGNA~1TXT", ATTR_ARCHIVE, 3, 1));
        let parsed = parse_dir(&bytes);
        assert_eq!(parsed[0].long_name, None);
    }

    #[test]
    fn fixed_date_is_2000_01_01() {
        assert_eq!(FIXED_DATE >> 9, 20);
        assert_eq!((FIXED_DATE >> 5) & 0xF, 1);
        assert_eq!(FIXED_DATE & 0x1F, 1);
    }
}
