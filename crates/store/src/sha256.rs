//! The sha256 digest type and a writer that hashes what passes through it.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use sha2::Digest;

use crate::StoreError;

/// A sha256 digest; shown, parsed and serialised as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Sha256(sha2::Sha256::digest(data).into())
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl FromStr for Sha256 {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| StoreError::InvalidSha256 {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.len() != 64 {
            return Err(bad(&format!("it has {} characters", s.len())));
        }
        // Only one spelling is accepted so that text records have a single canonical form.
        if !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("it contains a character that is not 0-9 or a-f"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| bad(&e.to_string()))?;
        Ok(Sha256(out))
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A [`Write`] that hashes (sha256) and counts every byte the inner writer accepts.
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `w`.
    pub fn new(w: W) -> Self {
        HashingWriter {
            inner: w,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the digest of everything written, and the byte count.
    pub fn finish(self) -> (W, Sha256, u64) {
        (
            self.inner,
            Sha256(self.hasher.finalize().into()),
            self.count,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Hash only what the inner writer took, so a short write is not counted twice.
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_of_abc() {
        assert_eq!(
            Sha256::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let d = Sha256::of(b"x");
        assert_eq!(d.to_hex().parse::<Sha256>().unwrap(), d);
        assert!(d.to_hex().to_uppercase().parse::<Sha256>().is_err());
        assert!("abc".parse::<Sha256>().is_err());
        assert!("g".repeat(64).parse::<Sha256>().is_err());
    }

    #[test]
    fn serde_as_string() {
        let d = Sha256::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{}\"", d.to_hex()));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Sha256>("\"nothex\"").is_err());
    }

    /// A writer that accepts at most 3 bytes per call, to exercise short writes.
    struct Trickle(Vec<u8>);
    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn hashing_writer_matches_direct_hash_even_with_short_writes() {
        let data = b"hello, content-addressed world";
        let mut w = HashingWriter::new(Trickle(Vec::new()));
        w.write_all(data).unwrap();
        let (inner, digest, n) = w.finish();
        assert_eq!(inner.0, data);
        assert_eq!(digest, Sha256::of(data));
        assert_eq!(n, data.len() as u64);
    }
}
