//! The xz encoder: multi-threaded, yet byte-identical whatever the thread count.

use std::io::Write;

use xz2::stream::{Check, MtStreamBuilder};
use xz2::write::XzEncoder;

use crate::error::IoError;

/// Encoder settings that decide the output bytes (threads do not).
#[derive(Debug, Clone, Copy)]
pub(crate) struct XzSettings {
    pub preset: u32,
    /// Uncompressed bytes per xz block. Fixed, because liblzma's default depends on settings that
    /// could change; with a fixed block size the blocks (and so the bytes) are the same for 1 or N
    /// threads.
    pub block_size: u64,
}

impl Default for XzSettings {
    fn default() -> Self {
        // 24 MiB = 3 x the 8 MiB dictionary of preset 6, what `xz -T` uses for that preset.
        XzSettings {
            preset: 6,
            block_size: 24 << 20,
        }
    }
}

/// An xz encoder writing into `w` with CRC64 checks.
pub(crate) fn encoder<W: Write>(
    w: W,
    threads: u32,
    s: XzSettings,
) -> Result<XzEncoder<W>, IoError> {
    let threads = threads.max(1);
    let stream = MtStreamBuilder::new()
        .threads(threads)
        .preset(s.preset)
        .block_size(s.block_size)
        .check(Check::Crc64)
        .encoder()
        .map_err(|source| IoError::XzSetup { threads, source })?;
    Ok(XzEncoder::new_stream(w, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    pub(crate) fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: a counter pattern with zero runs.
        (0..len)
            .map(|i| {
                if (i / 50_000) % 3 == 0 {
                    0
                } else {
                    ((i * 31) ^ (i >> 7)) as u8
                }
            })
            .collect()
    }

    fn compress(data: &[u8], threads: u32, s: XzSettings) -> Vec<u8> {
        let mut enc = encoder(Vec::new(), threads, s).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn round_trip() {
        let data = sample(300_000);
        let xz = compress(&data, 2, XzSettings::default());
        assert_eq!(&xz[..6], b"\xFD7zXZ\0");
        let mut back = Vec::new();
        xz2::read::XzDecoder::new(&xz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn same_bytes_for_any_thread_count() {
        // Small blocks so the 1 MiB input is split into many blocks and 2 threads really share work.
        let s = XzSettings {
            preset: 1,
            block_size: 64 << 10,
        };
        let data = sample(1 << 20);
        let one = compress(&data, 1, s);
        assert_eq!(one, compress(&data, 2, s));
        assert_eq!(one, compress(&data, 3, s));
        // And the block size does matter, so the test above can fail.
        assert_ne!(
            one,
            compress(
                &data,
                1,
                XzSettings {
                    preset: 1,
                    block_size: 128 << 10
                }
            )
        );
    }
}
