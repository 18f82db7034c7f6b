//! A `Write` adaptor that turns all-zero blocks into holes.

use std::fs::File;
use std::io::{self, Cursor, Seek, SeekFrom, Write};

use crate::zero::is_zero;

/// Block size at which zeros are recognised (the page and file-system block size).
const BLOCK: usize = 4096;

/// Something whose length can be set, so a file can end in a hole.
pub trait SetLen {
    /// Truncates or extends to `len` bytes; new bytes read as zero.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl SetLen for File {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl SetLen for &File {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl SetLen for Cursor<Vec<u8>> {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.get_mut().resize(len, 0);
        Ok(())
    }
}

/// Writes a stream into a seekable target, seeking over every all-zero 4 KiB block instead of
/// writing it, so a fresh file gets holes. Call [`SparseWriter::finish`] to fix the length.
///
/// Only for targets that read as zero where nothing was written (new or truncated files), never
/// for a device with old data on it.
pub struct SparseWriter<W> {
    inner: W,
    /// The unfinished block at the end of what was written so far.
    partial: Vec<u8>,
    /// Zero bytes passed over but not yet seeked over.
    gap: u64,
    written: u64,
    skipped: u64,
}

impl<W: Write + Seek + SetLen> SparseWriter<W> {
    /// Wraps `inner`; writing starts at its current position.
    pub fn new(inner: W) -> Self {
        SparseWriter {
            inner,
            partial: Vec::with_capacity(BLOCK),
            gap: 0,
            written: 0,
            skipped: 0,
        }
    }

    /// Bytes actually written so far (the rest became holes).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes turned into holes so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Writes the last partial block, sets the length to the end of the stream and returns the
    /// inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let last = std::mem::take(&mut self.partial);
        self.emit(&last)?;
        let gap = self.take_gap()?;
        let end = self.inner.seek(SeekFrom::Current(gap))?;
        self.inner.set_len(end)?;
        Ok(self.inner)
    }

    fn take_gap(&mut self) -> io::Result<i64> {
        let gap = i64::try_from(std::mem::take(&mut self.gap)).map_err(io::Error::other)?;
        Ok(gap)
    }

    /// Writes whole blocks (and at the end one partial one), coalescing runs of data blocks.
    fn emit(&mut self, data: &[u8]) -> io::Result<()> {
        let mut run_start = None;
        let mut off = 0;
        for block in data.chunks(BLOCK) {
            if is_zero(block) {
                if let Some(s) = run_start.take() {
                    self.write_run(&data[s..off])?;
                }
                self.gap += block.len() as u64;
                self.skipped += block.len() as u64;
            } else if run_start.is_none() {
                run_start = Some(off);
            }
            off += block.len();
        }
        if let Some(s) = run_start {
            self.write_run(&data[s..])?;
        }
        Ok(())
    }

    fn write_run(&mut self, run: &[u8]) -> io::Result<()> {
        if self.gap > 0 {
            let gap = self.take_gap()?;
            self.inner.seek(SeekFrom::Current(gap))?;
        }
        self.inner.write_all(run)?;
        self.written += run.len() as u64;
        Ok(())
    }
}

impl<W: Write + Seek + SetLen> Write for SparseWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if !self.partial.is_empty() {
            let take = (BLOCK - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == BLOCK {
                let block = std::mem::take(&mut self.partial);
                self.emit(&block)?;
                self.partial = block;
                self.partial.clear();
            }
        }
        let whole = rest.len() / BLOCK * BLOCK;
        self.emit(&rest[..whole])?;
        self.partial.extend_from_slice(&rest[whole..]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts bytes handed to the real writer, to see that holes were not written.
    struct Counting {
        inner: Cursor<Vec<u8>>,
        written: u64,
    }
    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written += buf.len() as u64;
            self.inner.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Seek for Counting {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.inner.seek(pos)
        }
    }
    impl SetLen for Counting {
        fn set_len(&mut self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
    }

    fn image(layout: &[(bool, usize)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, &(data, len)) in layout.iter().enumerate() {
            let byte = if data { (i as u8) | 1 } else { 0 };
            v.extend(std::iter::repeat_n(byte, len));
        }
        v
    }

    fn run(data: &[u8], step: usize) -> (Vec<u8>, u64, u64) {
        let mut w = SparseWriter::new(Counting {
            inner: Cursor::new(Vec::new()),
            written: 0,
        });
        for piece in data.chunks(step) {
            w.write_all(piece).unwrap();
        }
        let skipped = w.skipped();
        let inner = w.finish().unwrap();
        (inner.inner.into_inner(), inner.written, skipped)
    }

    #[test]
    fn holes_are_skipped_and_content_kept() {
        let data = image(&[
            (true, 5000),
            (false, 3 * 4096 + 192),
            (true, 10),
            (false, 9000),
        ]);
        for step in [1, 7, 4096, 5000, 1 << 20] {
            let (out, written, skipped) = run(&data, step);
            assert_eq!(out, data, "step {step}");
            // Read before `finish`, so the zero tail block is not counted yet.
            assert_eq!(written + skipped, data.len() as u64 / 4096 * 4096);
            // Blocks 0-1 and 4 hold data; 2, 3 and 5.. are zero.
            assert_eq!(written, 3 * 4096, "step {step}");
        }
    }

    #[test]
    fn trailing_zeros_keep_the_length() {
        let data = image(&[(true, 100), (false, 4096 * 3 + 1)]);
        let (out, written, _) = run(&data, 333);
        assert_eq!(out.len(), data.len());
        assert_eq!(out, data);
        assert_eq!(written, 4096);
        let (out, written, _) = run(&[0u8; 10], 10);
        assert_eq!((out, written), (vec![0u8; 10], 0));
    }
}
