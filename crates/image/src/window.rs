//! A byte range of a larger file seen as a file of its own (a partition inside an image).

use std::io::{self, Read, Seek, SeekFrom, Write};

/// `len` bytes of `file` starting at `start`, with its own position; offset 0 is `start`.
///
/// Every operation seeks the inner file first, so several windows (or clones of one file
/// handle) can share a file without disturbing each other.
#[derive(Debug)]
pub struct Window<F> {
    file: F,
    start: u64,
    len: u64,
    pos: u64,
}

impl<F> Window<F> {
    /// A window of `len` bytes at `start` of `file`, positioned at its beginning.
    pub fn new(file: F, start: u64, len: u64) -> Self {
        Window {
            file,
            start,
            len,
            pos: 0,
        }
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives the inner file back.
    pub fn into_inner(self) -> F {
        self.file
    }
}

impl<F: Read + Seek> Read for Window<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<F: Write + Seek> Write for Window<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.len.saturating_sub(self.pos);
        if left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "write at offset {} past the end of a {}-byte partition window",
                    self.pos, self.len
                ),
            ));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let put = self.file.write(&buf[..n])?;
        self.pos += put as u64;
        Ok(put)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl<F> Seek for Window<F> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(t) => {
                self.pos = t;
                Ok(t)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of a partition window",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_only_inside_the_window() {
        let data: Vec<u8> = (0u8..100).collect();
        let mut w = Window::new(Cursor::new(data), 10, 5);
        let mut out = Vec::new();
        w.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![10, 11, 12, 13, 14]);
        w.seek(SeekFrom::End(-2)).unwrap();
        let mut two = [0u8; 4];
        assert_eq!(w.read(&mut two).unwrap(), 2);
        assert_eq!(&two[..2], &[13, 14]);
    }

    #[test]
    fn writes_are_offset_and_bounded() {
        let mut w = Window::new(Cursor::new(vec![0u8; 20]), 8, 4);
        w.seek(SeekFrom::Start(1)).unwrap();
        assert_eq!(w.write(&[1, 2, 3, 4, 5]).unwrap(), 3);
        assert!(w.write(&[9]).is_err());
        let inner = w.into_inner().into_inner();
        assert_eq!(&inner[8..13], &[0, 1, 2, 3, 0]);
        assert!(inner[..8].iter().all(|b| *b == 0));
    }

    #[test]
    fn seek_before_start_fails() {
        let mut w = Window::new(Cursor::new(vec![0u8; 20]), 8, 4);
        assert!(w.seek(SeekFrom::Current(-1)).is_err());
        assert_eq!(w.seek(SeekFrom::End(0)).unwrap(), 4);
    }
}
