//! Names: path splitting, case folding, strict 8.3 names, deterministic short aliases and
//! VFAT long-file-name (LFN) entries.

use std::collections::HashSet;

use crate::FatError;

/// Characters a short (8.3) name may hold besides A-Z and 0-9.
const SHORT_SPECIALS: &[u8] = b"!#$%&'()-@^_`{}~";
/// Characters a long name may not hold (besides control characters).
const LFN_FORBIDDEN: &[char] = &['"', '*', '/', ':', '<', '>', '?', '\\', '|'];
/// UTF-16 units one LFN entry carries.
const LFN_UNITS: usize = 13;
/// Attribute byte marking an LFN entry.
pub(crate) const ATTR_LFN: u8 = 0x0F;

/// The key two names compare equal under, like FAT's case-insensitive lookup.
pub(crate) fn fold(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

/// Splits a '/'-separated path into validated components; a leading '/' is optional.
pub(crate) fn split_path(path: &str) -> Result<Vec<&str>, FatError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in &parts {
        check_long_name(part).map_err(|reason| FatError::InvalidPath {
            path: path.to_string(),
            reason,
        })?;
    }
    Ok(parts)
}

/// Checks one long name against the VFAT rules.
fn check_long_name(name: &str) -> Result<(), String> {
    if name == "." || name == ".." {
        return Err("'.' and '..' are not allowed as names".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || LFN_FORBIDDEN.contains(c))
    {
        return Err(format!("the character {c:?} is not allowed in FAT names"));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err("FAT names may not end with '.' or ' '".into());
    }
    if name.encode_utf16().count() > 255 {
        return Err("FAT names are limited to 255 UTF-16 code units".into());
    }
    Ok(())
}

fn is_short_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || SHORT_SPECIALS.contains(&b)
}

/// Packs `name` as an 11-byte short name if it already is a valid upper-case 8.3 name,
/// in which case no LFN entries are needed.
pub(crate) fn strict_short_name(name: &str) -> Option<[u8; 11]> {
    let (base, ext) = match name.split_once('.') {
        Some((b, e)) => (b, e),
        None => (name, ""),
    };
    let ok = |s: &str, max: usize| s.len() <= max && s.bytes().all(is_short_char);
    if base.is_empty() || !ok(base, 8) || !ok(ext, 3) || (name.contains('.') && ext.is_empty()) {
        return None;
    }
    Some(pack(base.as_bytes(), ext.as_bytes()))
}

fn pack(base: &[u8], ext: &[u8]) -> [u8; 11] {
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base);
    out[8..8 + ext.len()].copy_from_slice(ext);
    out
}

/// Hands out short names for one directory, unique within it.
///
/// Strict 8.3 names must be reserved (`reserve`) before any alias is generated so that an
/// alias never takes a name a later entry needs verbatim.
#[derive(Default)]
pub(crate) struct ShortNames {
    used: HashSet<[u8; 11]>,
}

impl ShortNames {
    /// Claims a strict 8.3 name.
    pub fn reserve(&mut self, short: [u8; 11]) {
        self.used.insert(short);
    }

    /// Generates the alias for a long name following Microsoft's basis-name algorithm:
    /// upper-case, drop spaces and leading dots, replace what 8.3 cannot hold with '_',
    /// keep 8+3 characters, and add the first free `~N` tail when anything was lost or
    /// the plain form is taken.
    pub fn alias(&mut self, long: &str) -> [u8; 11] {
        let (base, ext, lossy) = basis(long);
        if !lossy {
            let plain = pack(&base, &ext);
            if self.used.insert(plain) {
                return plain;
            }
        }
        for n in 1u32.. {
            let tail = format!("~{n}");
            let keep = base.len().min(8 - tail.len());
            let mut b = base[..keep].to_vec();
            b.extend_from_slice(tail.as_bytes());
            let candidate = pack(&b, &ext);
            if self.used.insert(candidate) {
                return candidate;
            }
        }
        unreachable!("a directory holds at most 65536 entries")
    }
}

/// Returns (basis name up to 8 bytes, extension up to 3 bytes, whether information was lost).
fn basis(long: &str) -> (Vec<u8>, Vec<u8>, bool) {
    let mut lossy = false;
    let mut chars: Vec<u8> = Vec::new();
    for c in long.chars() {
        if c == ' ' {
            lossy = true;
        } else if c.is_ascii() {
            let u = c.to_ascii_uppercase() as u8;
            if u == b'.' || is_short_char(u) {
                chars.push(u);
            } else {
                chars.push(b'_');
                lossy = true;
            }
        } else {
            chars.push(b'_');
            lossy = true;
        }
    }
    let leading_dots = chars.iter().take_while(|&&c| c == b'.').count();
    if leading_dots > 0 {
        lossy = true;
        chars.drain(..leading_dots);
    }
    let (base_part, ext_part) = match chars.iter().rposition(|&c| c == b'.') {
        Some(dot) => (&chars[..dot], &chars[dot + 1..]),
        None => (&chars[..], &[][..]),
    };
    // The base ends at the first dot, like Windows does it.
    let first_dot = base_part.iter().position(|&c| c == b'.');
    if first_dot.is_some() {
        lossy = true;
    }
    let base_full = &base_part[..first_dot.unwrap_or(base_part.len())];
    let mut base = base_full[..base_full.len().min(8)].to_vec();
    let ext = ext_part[..ext_part.len().min(3)].to_vec();
    if base_full.len() > 8 || ext_part.len() > 3 {
        lossy = true;
    }
    if base.is_empty() {
        base.push(b'_');
        lossy = true;
    }
    (base, ext, lossy)
}

/// The checksum of a short name that every LFN entry of that name carries.
pub(crate) fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// How many LFN entries a long name takes.
pub(crate) fn lfn_entry_count(long: &str) -> usize {
    long.encode_utf16().count().div_ceil(LFN_UNITS)
}

/// Byte offsets of the 13 UTF-16 units inside an LFN entry.
pub(crate) const LFN_SLOTS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// The LFN entries for `long`, in on-disk order (highest sequence number first).
pub(crate) fn lfn_entries(long: &str, checksum: u8) -> Vec<[u8; 32]> {
    let mut units: Vec<u16> = long.encode_utf16().collect();
    let count = units.len().div_ceil(LFN_UNITS);
    if units.len() % LFN_UNITS != 0 {
        units.push(0x0000);
        units.resize(count * LFN_UNITS, 0xFFFF);
    }
    (0..count)
        .rev()
        .map(|i| {
            let mut e = [0u8; 32];
            e[0] = (i + 1) as u8 | if i + 1 == count { 0x40 } else { 0 };
            e[11] = ATTR_LFN;
            e[13] = checksum;
            for (slot, unit) in LFN_SLOTS.iter().zip(&units[i * LFN_UNITS..]) {
                e[*slot..*slot + 2].copy_from_slice(&unit.to_le_bytes());
            }
            e
        })
        .collect()
}

/// Validates and pads a volume label; an empty label becomes "NO NAME".
pub(crate) fn volume_label(label: &str) -> Result<Option<[u8; 11]>, FatError> {
    let err = |reason| FatError::InvalidLabel {
        label: label.to_string(),
        reason,
    };
    if label.is_empty() {
        return Ok(None);
    }
    if !label.is_ascii() {
        return Err(err("only ASCII characters are allowed"));
    }
    if label.len() > 11 {
        return Err(err("a label has at most 11 characters"));
    }
    if label.starts_with(' ') {
        return Err(err("a label may not start with a space"));
    }
    let upper = label.to_ascii_uppercase();
    if !upper.bytes().all(|b| b == b' ' || is_short_char(b)) {
        return Err(err("use only letters, digits, spaces and !#$%&'()-@^_`{}~"));
    }
    Ok(Some(pack(upper.as_bytes(), b"")))
}

/// Renders an on-disk short name as "BASE.EXT", honouring the Windows NT lower-case flags.
pub(crate) fn display_short(short: &[u8; 11], nt_flags: u8) -> String {
    let render = |bytes: &[u8], lower: bool| -> String {
        let s: String = bytes.iter().map(|&b| char::from(b)).collect();
        let s = s.trim_end_matches(' ').to_string();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let mut raw = *short;
    if raw[0] == 0x05 {
        raw[0] = 0xE5;
    }
    let base = render(&raw[..8], nt_flags & 0x08 != 0);
    let ext = render(&raw[8..], nt_flags & 0x10 != 0);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: &[u8; 11]) -> &str {
        std::str::from_utf8(n).unwrap()
    }

    #[test]
    fn strict_names_need_no_alias() {
        assert_eq!(s(&strict_short_name("START4.ELF").unwrap()), "START4  ELF");
        assert_eq!(s(&strict_short_name("OVERLAYS").unwrap()), "OVERLAYS   ");
        assert!(strict_short_name("config.txt").is_none());
        assert!(strict_short_name("KERNEL_2712.IMG").is_none());
        assert!(strict_short_name("A.B.C").is_none());
        assert!(strict_short_name("A.").is_none());
        assert!(strict_short_name(".A").is_none());
    }

    #[test]
    fn aliases_are_windows_like_and_unique() {
        let mut names = ShortNames::default();
        assert_eq!(s(&names.alias("config.txt")), "CONFIG  TXT");
        assert_eq!(s(&names.alias("kernel_2712.img")), "KERNEL~1IMG");
        assert_eq!(s(&names.alias("kernel_2712_old.img")), "KERNEL~2IMG");
        assert_eq!(s(&names.alias("bcm2712d0-rpi-5-b.dtb")), "BCM271~1DTB");
        assert_eq!(s(&names.alias("Config.TXT")), "CONFIG~1TXT");
        assert_eq!(s(&names.alias(".hidden file.conf")), "HIDDEN~1CON");
        assert_eq!(s(&names.alias("a+b")), "A_B~1      ");
        assert_eq!(s(&names.alias("über")), "_BER~1     ");
    }

    #[test]
    fn reserved_names_are_skipped_by_aliases() {
        let mut names = ShortNames::default();
        names.reserve(*b"KERNEL~1IMG");
        assert_eq!(s(&names.alias("kernel_2712.img")), "KERNEL~2IMG");
    }

    #[test]
    fn alias_tail_shortens_the_basis() {
        let mut names = ShortNames::default();
        for _ in 0..9 {
            names.alias("overlay_map.dtb");
        }
        assert_eq!(s(&names.alias("overlay_map.dtb")), "OVERL~10DTB");
    }

    #[test]
    fn checksum_matches_the_specification_algorithm() {
        // Computed by hand with the fatgen103 loop: Sum = ((Sum & 1) << 7) + (Sum >> 1) + c.
        let mut sum: u8 = 0;
        for &c in b"KERNEL~1IMG" {
            sum = (((sum & 1) << 7) | (sum >> 1)).wrapping_add(c);
        }
        assert_eq!(lfn_checksum(b"KERNEL~1IMG"), sum);
        assert_ne!(lfn_checksum(b"KERNEL~1IMG"), lfn_checksum(b"KERNEL~2IMG"));
    }

    #[test]
    fn lfn_entries_are_reversed_terminated_and_padded() {
        let e = lfn_entries("bcm2712d0-rpi-5-b.dtb", 0xAB);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0][0], 0x42);
        assert_eq!(e[1][0], 0x01);
        assert!(e.iter().all(|x| x[11] == 0x0F && x[13] == 0xAB));
        // 21 characters: the second entry holds 8, a 0x0000 terminator, then 0xFFFF padding.
        assert_eq!(&e[0][1..3], &[b'-', 0]);
        assert_eq!(&e[0][LFN_SLOTS[8]..LFN_SLOTS[8] + 2], &[0, 0]);
        assert_eq!(&e[0][30..32], &[0xFF, 0xFF]);
        // Exactly 13 characters need no terminator.
        let e = lfn_entries("abcdefghijklm", 1);
        assert_eq!(e.len(), 1);
        assert_eq!(&e[0][30..32], &[b'm', 0]);
    }

    #[test]
    fn bad_paths_and_labels_are_refused() {
        assert!(split_path("a/../b").is_err());
        assert!(split_path("a/b:c").is_err());
        assert!(split_path("a/b.").is_err());
        assert_eq!(
            split_path("/gen-1//overlays/").unwrap(),
            vec!["gen-1", "overlays"]
        );
        assert!(volume_label("way too long label").is_err());
        assert!(volume_label("a.b").is_err());
        assert_eq!(&volume_label("bootfs").unwrap().unwrap(), b"BOOTFS     ");
        assert_eq!(volume_label("").unwrap(), None);
    }

    #[test]
    fn short_names_display_like_linux() {
        assert_eq!(display_short(b"CONFIG  TXT", 0), "CONFIG.TXT");
        assert_eq!(display_short(b"CONFIG  TXT", 0x18), "config.txt");
        assert_eq!(display_short(b"OVERLAYS   ", 0), "OVERLAYS");
    }
}
