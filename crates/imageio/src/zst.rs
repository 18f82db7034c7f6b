//! The zstd encoder: level 3, multi-threaded, content size and checksum in the frame.

use std::io::{self, Write};

/// Compression level: fast, and close to xz's size on images made mostly of holes.
pub(crate) const LEVEL: i32 = 3;

/// A zstd encoder writing into `w`. `size` (the raw length) goes into the frame header so a
/// reader knows the image size without decompressing.
///
/// Always multi-threaded, even for one thread: zstd's output with 1..N workers is the same, but
/// differs from its single-threaded (0 worker) mode.
pub(crate) fn encoder<W: Write>(
    w: W,
    threads: u32,
    size: Option<u64>,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(w, LEVEL)?;
    enc.multithread(threads.max(1))?;
    enc.include_checksum(true)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(size)?;
    Ok(enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                if (i / 40_000) % 2 == 0 {
                    0
                } else {
                    ((i * 131) ^ (i >> 9)) as u8
                }
            })
            .collect()
    }

    fn compress(data: &[u8], threads: u32) -> Vec<u8> {
        let mut enc = encoder(Vec::new(), threads, Some(data.len() as u64)).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn round_trip_with_content_size() {
        let data = sample(500_000);
        let z = compress(&data, 2);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), data);
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&z).unwrap(),
            Some(data.len() as u64)
        );
    }

    #[test]
    fn same_bytes_for_any_thread_count() {
        // Several MiB so zstd cuts it into more than one job (the job size at level 3 is a few MiB).
        let data = sample(24 << 20);
        let one = compress(&data, 1);
        assert_eq!(one, compress(&data, 2));
        assert_eq!(one, compress(&data, 4));
    }
}
