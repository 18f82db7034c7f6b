//! sha256 helpers: validating hex names and hashing streams.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::error::CacheError;

/// Checks that `s` is a sha256 in hex and returns it lower-cased (the form used for file names).
pub fn normalise_sha256(s: &str) -> Result<String, CacheError> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(CacheError::InvalidSha256(s.to_owned()))
    }
}

/// Whether `s` is exactly a lower-case hex sha256 (a valid cache file name).
pub(crate) fn is_sha256_name(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Copies `from` to `to`, returning (hex sha256, byte count); `chunk` sees the running total after every block.
pub(crate) fn copy_hashing(
    from: &mut dyn Read,
    to: &mut dyn Write,
    chunk: &mut dyn FnMut(u64) -> io::Result<()>,
) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
        chunk(total)?;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_names() {
        let upper = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(normalise_sha256(upper).unwrap(), upper.to_ascii_lowercase());
        assert!(normalise_sha256("abc").is_err());
        assert!(normalise_sha256(&"g".repeat(64)).is_err());
        assert!(is_sha256_name(&upper.to_ascii_lowercase()));
        assert!(!is_sha256_name(upper));
    }

    #[test]
    fn copy_hashing_hashes_what_it_copies() {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let (hash, n) = copy_hashing(&mut &b"abc"[..], &mut out, &mut |t| {
            seen.push(t);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!((n, out.as_slice(), seen), (3, &b"abc"[..], vec![3]));
    }
}
