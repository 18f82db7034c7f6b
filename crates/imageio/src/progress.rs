//! A `Read` wrapper that reports how many bytes have passed.

use std::io::{self, Read};

/// A `Read` wrapper that calls `callback(total_bytes_so_far)` after every read that returned data.
///
/// Callers choose the read size (the pipelines here use 1 MiB), which bounds how often it fires.
pub struct ProgressReader<R, F> {
    inner: R,
    total: u64,
    callback: F,
}

impl<R, F: FnMut(u64)> ProgressReader<R, F> {
    /// Wraps `inner`, reporting through `callback`.
    pub fn new(inner: R, callback: F) -> Self {
        ProgressReader {
            inner,
            total: 0,
            callback,
        }
    }

    /// Bytes read so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read, F: FnMut(u64)> Read for ProgressReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.total += n as u64;
            (self.callback)(self.total);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_running_total() {
        let data = vec![5u8; 10_000];
        let mut seen = Vec::new();
        let mut out = Vec::new();
        {
            let mut r = ProgressReader::new(&data[..], |n| seen.push(n));
            let mut buf = [0u8; 4096];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(r.total(), 10_000);
        }
        assert_eq!(out, data);
        assert_eq!(seen, vec![4096, 8192, 10_000]);
    }
}
