//! sha256 digests and the hashing reader and writer (pideploy's one digest type), and the digest of
//! a sparse file without reading its holes.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub use pideploy_digest::{HashReader, HashWriter, Sha256};
use rustix::fs::SeekFrom;
use sha2::Digest;

/// The sha256 and length of the file at `path`. Holes (found with `SEEK_DATA`/`SEEK_HOLE`) are
/// hashed as zeros from memory instead of being read: a fresh 1 GiB image is mostly holes, and
/// reading them made the kernel zero every page (a fifth of `pideploy image`'s CPU). Where the
/// file system cannot tell holes, the whole file is read.
pub fn sha256_of_file(path: &Path) -> io::Result<(u64, Sha256)> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut h = sha2::Sha256::new();
    let zeros = vec![0u8; 1 << 20];
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let data = match rustix::fs::seek(&f, SeekFrom::Data(pos)) {
            Ok(d) => d.min(len),
            // No data after `pos`: the rest is a hole.
            Err(rustix::io::Errno::NXIO) => len,
            // No hole support: read everything from here.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::OPNOTSUPP) => pos,
            Err(e) => return Err(e.into()),
        };
        let mut zero_run = data - pos;
        while zero_run > 0 {
            let n = zero_run.min(zeros.len() as u64) as usize;
            h.update(&zeros[..n]);
            zero_run -= n as u64;
        }
        if data >= len {
            break;
        }
        let hole = match rustix::fs::seek(&f, SeekFrom::Hole(data)) {
            Ok(e) => e.min(len),
            Err(_) => len,
        };
        rustix::fs::seek(&f, SeekFrom::Start(data))?;
        let mut left = hole - data;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} shrank while it was hashed", path.display()),
                ));
            }
            h.update(&buf[..n]);
            left -= n as u64;
        }
        pos = hole;
    }
    Ok((len, Sha256::from_hasher(h)))
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, Write};

    use super::*;

    /// Data, holes, data at odd offsets and a trailing hole hash as the same bytes read whole.
    #[test]
    fn a_sparse_file_hashes_like_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let mut f = File::create(&p).unwrap();
        let mut expect = vec![0u8; 9 << 20];
        for (at, byte) in [(0u64, 1u8), (3 << 20, 2), ((5 << 20) + 123, 3)] {
            f.seek(io::SeekFrom::Start(at)).unwrap();
            f.write_all(&vec![byte; 70_000]).unwrap();
            expect[at as usize..at as usize + 70_000].fill(byte);
        }
        f.set_len(9 << 20).unwrap();
        drop(f);
        let (len, digest) = sha256_of_file(&p).unwrap();
        assert_eq!(len, 9 << 20);
        assert_eq!(digest, Sha256::of(&expect));
        // All hole, and empty.
        File::create(&p).unwrap().set_len(3 << 20).unwrap();
        assert_eq!(sha256_of_file(&p).unwrap().1, Sha256::of(&vec![0; 3 << 20]));
        File::create(&p).unwrap();
        assert_eq!(sha256_of_file(&p).unwrap(), (0, Sha256::of(b"")));
    }
}
