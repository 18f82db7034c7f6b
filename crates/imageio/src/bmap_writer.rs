//! A `Write` adaptor that writes only the blocks a bmap lists, checking each range's checksum.

use std::fmt;
use std::io::{self, Seek, SeekFrom, Write};

use sha2::Digest;

use crate::bmap::Bmap;
use crate::hash::Sha256;

/// Why a [`BmapWriter`] refused the stream; carried inside the `io::Error` it returns
/// (`io::Error::get_ref` + `downcast_ref`), so callers can tell it from a device failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BmapStreamError {
    /// A range's bytes have another sha256 than the bmap says.
    Range {
        first: u64,
        last: u64,
        expected: Sha256,
        actual: Sha256,
    },
    /// The stream is longer or shorter than the bmap's image size.
    Size { expected: u64, actual: u64 },
}

impl fmt::Display for BmapStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Range {
                first,
                last,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "blocks {first}-{last} have sha256 {actual}, the bmap says {expected}"
                )
            }
            Self::Size { expected, actual } => {
                write!(f, "image holds {actual} bytes, the bmap says {expected}")
            }
        }
    }
}

impl std::error::Error for BmapStreamError {}

/// Takes the whole raw image stream and writes only the ranges `bmap` maps, seeking over the
/// holes. Positions are absolute: the target's byte 0 is the image's byte 0. Each range's sha256
/// is checked as soon as it is complete, so an image/bmap mismatch stops the write early.
pub struct BmapWriter<'a, W> {
    inner: W,
    bmap: &'a Bmap,
    /// Image bytes received so far.
    pos: u64,
    /// Index of the first range not yet complete.
    next: usize,
    hasher: sha2::Sha256,
    /// Where `inner` is, to seek only when needed.
    inner_pos: Option<u64>,
    written: u64,
}

impl<'a, W: Write + Seek> BmapWriter<'a, W> {
    /// Wraps `inner`, writing by `bmap`.
    pub fn new(inner: W, bmap: &'a Bmap) -> Self {
        BmapWriter {
            inner,
            bmap,
            pos: 0,
            next: 0,
            hasher: sha2::Sha256::new(),
            inner_pos: None,
            written: 0,
        }
    }

    /// Bytes written to the target so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks that the stream was exactly as long as the bmap says and returns the target.
    pub fn finish(self) -> io::Result<W> {
        if self.pos != self.bmap.image_size || self.next != self.bmap.ranges.len() {
            return Err(stream_error(BmapStreamError::Size {
                expected: self.bmap.image_size,
                actual: self.pos,
            }));
        }
        Ok(self.inner)
    }
}

fn stream_error(e: BmapStreamError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<W: Write + Seek> Write for BmapWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self.pos + buf.len() as u64;
        if end > self.bmap.image_size {
            return Err(stream_error(BmapStreamError::Size {
                expected: self.bmap.image_size,
                actual: end,
            }));
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let Some(range) = self.bmap.ranges.get(self.next) else {
                // Past the last range: the rest of the image is holes.
                self.pos += rest.len() as u64;
                break;
            };
            let (start, stop) = self.bmap.range_bytes(range);
            if self.pos < start {
                let n = (start - self.pos).min(rest.len() as u64) as usize;
                self.pos += n as u64;
                rest = &rest[n..];
                continue;
            }
            let n = (stop - self.pos).min(rest.len() as u64) as usize;
            if self.inner_pos != Some(self.pos) {
                self.inner.seek(SeekFrom::Start(self.pos))?;
            }
            self.inner.write_all(&rest[..n])?;
            self.hasher.update(&rest[..n]);
            self.pos += n as u64;
            self.inner_pos = Some(self.pos);
            self.written += n as u64;
            rest = &rest[n..];
            if self.pos == stop {
                let actual = Sha256::from_hasher(std::mem::take(&mut self.hasher));
                if actual != range.sha256 {
                    let (first, last, expected) = (range.first, range.last, range.sha256);
                    return Err(stream_error(BmapStreamError::Range {
                        first,
                        last,
                        expected,
                        actual,
                    }));
                }
                self.next += 1;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn image() -> Vec<u8> {
        let mut v = vec![0u8; 10 * 4096 + 10];
        v[..5000].fill(9);
        v[6 * 4096..7 * 4096].fill(3);
        v[10 * 4096 + 9] = 1;
        v
    }

    fn run(img: &[u8], bmap: &Bmap, target: Vec<u8>, step: usize) -> io::Result<(Vec<u8>, u64)> {
        let mut w = BmapWriter::new(Cursor::new(target), bmap);
        for piece in img.chunks(step) {
            w.write_all(piece)?;
        }
        let written = w.written();
        Ok((w.finish()?.into_inner(), written))
    }

    #[test]
    fn writes_mapped_ranges_only() {
        let img = image();
        let bmap = Bmap::from_reader(&mut &img[..]).unwrap();
        // A target full of old data: holes keep it, mapped ranges get the image.
        let old = vec![0xEEu8; img.len()];
        for step in [1000, 4096, 1 << 20] {
            let (out, written) = run(&img, &bmap, old.clone(), step).unwrap();
            assert_eq!(written, 2 * 4096 + 4096 + 10);
            for (i, (&o, &want)) in out.iter().zip(&img).enumerate() {
                let block = (i / 4096) as u64;
                let mapped = bmap
                    .ranges
                    .iter()
                    .any(|r| (r.first..=r.last).contains(&block));
                assert_eq!(o, if mapped { want } else { 0xEE }, "byte {i}");
            }
        }
    }

    fn kind(e: &io::Error) -> BmapStreamError {
        e.get_ref()
            .unwrap()
            .downcast_ref::<BmapStreamError>()
            .unwrap()
            .clone()
    }

    #[test]
    fn refuses_a_bmap_of_another_image() {
        let img = image();
        let bmap = Bmap::from_reader(&mut &img[..]).unwrap();
        let mut other = img.clone();
        other[6 * 4096 + 1] = 4;
        let e = run(&other, &bmap, Vec::new(), 4096).unwrap_err();
        assert!(matches!(
            kind(&e),
            BmapStreamError::Range {
                first: 6,
                last: 6,
                ..
            }
        ));
        let e = run(&img[..img.len() - 20], &bmap, Vec::new(), 4096).unwrap_err();
        assert!(matches!(kind(&e), BmapStreamError::Size { .. }));
        let mut longer = img.clone();
        longer.push(0);
        let e = run(&longer, &bmap, Vec::new(), 4096).unwrap_err();
        assert!(matches!(kind(&e), BmapStreamError::Size { .. }));
    }
}
