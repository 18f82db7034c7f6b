//! The raw size of a compressed image, read from the container's own bookkeeping (the xz index,
//! the zstd frame headers) without decompressing. `None` when the file does not record it.

use std::io::{self, Read, Seek, SeekFrom};

const XZ_MAGIC: &[u8; 6] = b"\xFD7zXZ\0";
const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// Sum of the uncompressed sizes in the indexes of all xz streams in the file.
pub(crate) fn xz_size<R: Read + Seek>(r: &mut R) -> io::Result<Option<u64>> {
    let mut end = r.seek(SeekFrom::End(0))?;
    let mut total = 0u64;
    loop {
        // Stream padding: groups of four zero bytes between or after streams.
        loop {
            if end < 4 {
                return Ok(None);
            }
            let word = read_at(r, end - 4, 4)?;
            if word != [0; 4] {
                break;
            }
            end -= 4;
        }
        if end < 24 {
            return Ok(None);
        }
        let footer = read_at(r, end - 12, 12)?;
        if &footer[10..12] != b"YZ" {
            return Ok(None);
        }
        let backward = u32::from_le_bytes(footer[4..8].try_into().expect("4 bytes"));
        let index_size = (u64::from(backward) + 1) * 4;
        let Some(index_start) = (end - 12).checked_sub(index_size) else {
            return Ok(None);
        };
        let index = read_at(r, index_start, index_size as usize)?;
        let Some((blocks, uncompressed)) = parse_xz_index(&index) else {
            return Ok(None);
        };
        let Some(stream_start) = index_start.checked_sub(blocks + 12) else {
            return Ok(None);
        };
        if read_at(r, stream_start, 6)? != XZ_MAGIC {
            return Ok(None);
        }
        total += uncompressed;
        if stream_start == 0 {
            return Ok(Some(total));
        }
        end = stream_start;
    }
}

/// Returns (bytes of all blocks, uncompressed bytes) from one xz index, or None if it is not valid.
fn parse_xz_index(index: &[u8]) -> Option<(u64, u64)> {
    let (body, crc) = index.split_at(index.len().checked_sub(4)?);
    if crc32(body) != u32::from_le_bytes(crc.try_into().ok()?) || body.first() != Some(&0) {
        return None;
    }
    let mut pos = 1;
    let records = varint(body, &mut pos)?;
    let (mut blocks, mut uncompressed) = (0u64, 0u64);
    for _ in 0..records {
        let unpadded = varint(body, &mut pos)?;
        blocks = blocks.checked_add(unpadded.checked_add(3)? / 4 * 4)?;
        uncompressed = uncompressed.checked_add(varint(body, &mut pos)?)?;
    }
    body[pos..]
        .iter()
        .all(|&b| b == 0)
        .then_some((blocks, uncompressed))
}

/// xz's multibyte integer: 7 bits per byte, low bits first, at most 9 bytes.
fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// CRC-32 (IEEE 802.3), as xz uses for its index.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Sum of the content sizes of all zstd frames, found by walking frame and block headers.
pub(crate) fn zstd_size<R: Read + Seek>(r: &mut R) -> io::Result<Option<u64>> {
    let len = r.seek(SeekFrom::End(0))?;
    let mut pos = 0u64;
    let mut total = 0u64;
    while pos < len {
        let Some(magic) = try_read_at(r, pos, 4, len)? else {
            return Ok(None);
        };
        let magic = u32::from_le_bytes(magic.try_into().expect("4 bytes"));
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            // Skippable frame: 4-byte length follows.
            let Some(n) = try_read_at(r, pos + 4, 4, len)? else {
                return Ok(None);
            };
            pos += 8 + u64::from(u32::from_le_bytes(n.try_into().expect("4 bytes")));
            continue;
        }
        if magic != ZSTD_MAGIC {
            return Ok(None);
        }
        let Some(fhd) = try_read_at(r, pos + 4, 1, len)? else {
            return Ok(None);
        };
        let fhd = fhd[0];
        let single_segment = fhd & 0x20 != 0;
        let has_checksum = fhd & 0x04 != 0;
        let dict_len = [0u64, 1, 2, 4][usize::from(fhd & 3)];
        let fcs_len = match fhd >> 6 {
            0 if single_segment => 1,
            0 => return Ok(None), // content size not recorded
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let fcs_at = pos + 5 + u64::from(!single_segment) + dict_len;
        let Some(fcs) = try_read_at(r, fcs_at, fcs_len, len)? else {
            return Ok(None);
        };
        let mut size = fcs
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if fcs_len == 2 {
            size += 256;
        }
        total += size;
        pos = fcs_at + fcs_len as u64;
        loop {
            let Some(h) = try_read_at(r, pos, 3, len)? else {
                return Ok(None);
            };
            let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
            let content = match (h >> 1) & 3 {
                0 | 2 => u64::from(h >> 3),
                1 => 1, // RLE: one byte stored, repeated
                _ => return Ok(None),
            };
            pos += 3 + content;
            if h & 1 != 0 {
                break;
            }
        }
        if has_checksum {
            pos += 4;
        }
    }
    Ok((pos == len).then_some(total))
}

fn read_at<R: Read + Seek>(r: &mut R, at: u64, n: usize) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Like `read_at`, but `None` when the span runs past `len` (a truncated file).
fn try_read_at<R: Read + Seek>(
    r: &mut R,
    at: u64,
    n: usize,
    len: u64,
) -> io::Result<Option<Vec<u8>>> {
    if at.checked_add(n as u64).is_none_or(|e| e > len) {
        return Ok(None);
    }
    read_at(r, at, n).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xz::{encoder, XzSettings};
    use std::io::{Cursor, Write};

    fn xz(data: &[u8], s: XzSettings) -> Vec<u8> {
        let mut e = encoder(Vec::new(), 2, s).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 97) as u8 ^ (i >> 12) as u8).collect()
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn xz_sizes() {
        let s = XzSettings {
            preset: 0,
            block_size: 50_000,
        };
        let a = data(333_333);
        let b = data(12_345);
        let one = xz(&a, s);
        assert_eq!(xz_size(&mut Cursor::new(&one)).unwrap(), Some(333_333));
        // Two concatenated streams with padding in between and after.
        let mut two = one.clone();
        two.extend_from_slice(&[0; 8]);
        two.extend_from_slice(&xz(&b, s));
        two.extend_from_slice(&[0; 4]);
        assert_eq!(
            xz_size(&mut Cursor::new(&two)).unwrap(),
            Some(333_333 + 12_345)
        );
        // Damage: a flipped index byte or a truncated file gives "unknown", not a wrong size.
        let mut bad = one.clone();
        let n = bad.len();
        bad[n - 20] ^= 0x40;
        assert_eq!(xz_size(&mut Cursor::new(&bad)).unwrap(), None);
        assert_eq!(xz_size(&mut Cursor::new(&one[..n - 1])).unwrap(), None);
        assert_eq!(
            xz_size(&mut Cursor::new(b"hello world, not xz")).unwrap(),
            None
        );
    }

    #[test]
    fn zstd_sizes() {
        let a = data(1_000_000);
        let mut z = crate::zst::encoder(Vec::new(), 2, Some(a.len() as u64)).unwrap();
        z.write_all(&a).unwrap();
        let one = z.finish().unwrap();
        assert_eq!(zstd_size(&mut Cursor::new(&one)).unwrap(), Some(1_000_000));
        // Several frames, as `cat a.zst b.zst` makes, from zstd's one-shot API.
        let mut many = one.clone();
        many.extend_from_slice(&zstd::encode_all(&[7u8; 300][..], 19).unwrap());
        many.extend_from_slice(&zstd::encode_all(&[][..], 1).unwrap());
        assert_eq!(zstd_size(&mut Cursor::new(&many)).unwrap(), Some(1_000_300));
        // Without a recorded content size the answer is unknown.
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.write_all(&a).unwrap();
        let streamed = e.finish().unwrap();
        assert_eq!(zstd_size(&mut Cursor::new(&streamed)).unwrap(), None);
        assert_eq!(
            zstd_size(&mut Cursor::new(&one[..one.len() - 3])).unwrap(),
            None
        );
    }
}
