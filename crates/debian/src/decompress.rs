//! Choosing a decompressor, by content (indexes) or by file-name extension (.deb members).

use std::io::Read;

use crate::error::DebError;

/// A compression format this crate can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// xz (LZMA2).
    Xz,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Recognises gzip, xz and zstd by their magic bytes; anything else is taken as plain.
    ///
    /// Formats that are recognised but unsupported (lz4, bzip2) are an error rather than garbage text.
    pub fn sniff(bytes: &[u8], what: &str) -> Result<Self, DebError> {
        let unsupported = |format: &str, hint: &str| DebError::Decompress {
            what: what.to_string(),
            reason: format!("{format} is not supported; {hint}"),
            source: None,
        };
        Ok(match bytes {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            [0x04, 0x22, 0x4d, 0x18, ..] => {
                return Err(unsupported(
                    "lz4",
                    "decompress apt's lists with `/usr/lib/apt/apt-helper cat-file FILE` first",
                ))
            }
            [b'B', b'Z', b'h', ..] => {
                return Err(unsupported(
                    "bzip2",
                    "fetch the .xz or .gz variant of the index",
                ))
            }
            _ => Compression::None,
        })
    }

    /// Picks the format from a `.deb` member name such as `data.tar.xz`.
    pub fn from_member_name(name: &str) -> Result<Self, DebError> {
        match name.rsplit_once(".tar") {
            Some((_, "")) => Ok(Compression::None),
            Some((_, ".gz")) => Ok(Compression::Gzip),
            Some((_, ".xz")) => Ok(Compression::Xz),
            Some((_, ".zst")) => Ok(Compression::Zstd),
            _ => Err(DebError::Decompress {
                what: name.to_string(),
                reason: "unsupported member compression (supported: none, .gz, .xz, .zst)".into(),
                source: None,
            }),
        }
    }

    /// Wraps `r` in the matching streaming decoder.
    pub fn reader<'a>(self, r: impl Read + 'a, what: &str) -> Result<Box<dyn Read + 'a>, DebError> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(r)),
            Compression::Zstd => {
                Box::new(
                    zstd::stream::read::Decoder::new(r).map_err(|e| DebError::Decompress {
                        what: what.to_string(),
                        reason: "cannot start the zstd decoder".into(),
                        source: Some(e),
                    })?,
                )
            }
        })
    }
}

/// The most an in-memory buffer may decompress to: Debian's largest Packages index is well
/// under 200 MiB, and a small file that inflates without end must not exhaust memory.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Decompresses a whole in-memory buffer, detecting the format by content, up to
/// [`MAX_DECOMPRESSED`] bytes.
pub fn decompress_sniffed(bytes: &[u8], what: &str) -> Result<Vec<u8>, DebError> {
    let c = Compression::sniff(bytes, what)?;
    if c == Compression::None {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    c.reader(bytes, what)?
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| DebError::Decompress {
            what: what.to_string(),
            reason: format!("corrupt {c:?} stream"),
            source: Some(e),
        })?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(DebError::Decompress {
            what: what.to_string(),
            reason: format!(
                "it decompresses to more than {} MiB, far more than any Debian index",
                MAX_DECOMPRESSED >> 20
            ),
            source: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"Package: x\nVersion: 1\n";

    #[test]
    fn sniffs_and_decodes_each_format() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(TEXT).unwrap();
        let gz = gz.finish().unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(TEXT).unwrap();
        let xz = xz.finish().unwrap();
        let zst = zstd::encode_all(TEXT, 3).unwrap();
        for (bytes, want) in [
            (&gz, Compression::Gzip),
            (&xz, Compression::Xz),
            (&zst, Compression::Zstd),
            (&TEXT.to_vec(), Compression::None),
        ] {
            assert_eq!(Compression::sniff(bytes, "t").unwrap(), want);
            assert_eq!(decompress_sniffed(bytes, "t").unwrap(), TEXT);
        }
    }

    #[test]
    fn lz4_is_refused_with_a_hint() {
        let e = decompress_sniffed(&[0x04, 0x22, 0x4d, 0x18, 0, 0], "Packages").unwrap_err();
        assert!(e.to_string().contains("apt-helper"), "{e}");
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let zst = zstd::encode_all(&[7u8; 4096][..], 3).unwrap();
        assert!(decompress_sniffed(&zst[..zst.len() / 2], "t").is_err());
    }

    #[test]
    fn member_names() {
        assert_eq!(
            Compression::from_member_name("data.tar").unwrap(),
            Compression::None
        );
        assert_eq!(
            Compression::from_member_name("data.tar.zst").unwrap(),
            Compression::Zstd
        );
        assert!(Compression::from_member_name("data.tar.bz2").is_err());
    }
}
