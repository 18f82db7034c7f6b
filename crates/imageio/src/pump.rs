//! Moving bytes from a reader to a writer while telling read failures from write failures.

use std::io::{self, ErrorKind, Read, Write};

/// Size of one copy step: large enough for few syscalls and few progress callbacks, and a
/// multiple of the 4 KiB block so sparse and bmap writers see whole blocks.
pub(crate) const CHUNK: usize = 1 << 20;

/// Which side of a copy failed.
#[derive(Debug)]
pub(crate) enum PumpError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies everything from `r` to `w` in [`CHUNK`]-sized steps; returns the byte count.
pub(crate) fn pump(r: &mut dyn Read, w: &mut dyn Write) -> Result<u64, PumpError> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match read_full(r, &mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) => return Err(PumpError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(PumpError::Write)?;
        total += n as u64;
    }
}

/// Reads until `buf` is full or the end of the stream; returns how much was read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("boom"))
        }
    }

    #[test]
    fn copies_and_names_the_failing_side() {
        let data = vec![3u8; CHUNK * 2 + 17];
        let mut out = Vec::new();
        assert_eq!(pump(&mut &data[..], &mut out).unwrap(), data.len() as u64);
        assert_eq!(out, data);
        assert!(matches!(
            pump(&mut Failing, &mut out),
            Err(PumpError::Read(_))
        ));
        let mut full = [0u8; 4];
        let r = pump(&mut &data[..], &mut &mut full[..]);
        assert!(matches!(r, Err(PumpError::Write(_))));
    }
}
