//! A streaming reader for the Unix `ar` archives .deb files are made of.

use std::io::{self, Read};

use crate::error::DebError;

const GLOBAL_MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LEN: usize = 60;

/// The header of one archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHeader {
    /// The member name, without the GNU `/` terminator and padding.
    pub name: String,
    /// The member's size in bytes.
    pub size: u64,
}

/// Reads members one after the other from a non-seekable stream.
pub struct ArReader<R: Read> {
    inner: R,
    /// Bytes of the current member not yet consumed.
    remaining: u64,
    /// Whether the current member is followed by a padding byte (odd size).
    pad: bool,
}

impl<R: Read> ArReader<R> {
    /// Checks the global header and positions before the first member.
    pub fn new(mut inner: R) -> Result<Self, DebError> {
        let mut magic = [0u8; 8];
        inner
            .read_exact(&mut magic)
            .map_err(|e| DebError::io("reading the ar signature of the .deb", e))?;
        if &magic != GLOBAL_MAGIC {
            return Err(DebError::Deb(
                "not an ar archive (missing `!<arch>` signature); is this file really a .deb?"
                    .into(),
            ));
        }
        Ok(ArReader {
            inner,
            remaining: 0,
            pad: false,
        })
    }

    /// Skips whatever is left of the current member and reads the next header; `None` at the end.
    pub fn next_member(&mut self) -> Result<Option<MemberHeader>, DebError> {
        let skip = self.remaining + u64::from(self.pad);
        let skipped = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink())
            .map_err(|e| DebError::io("skipping an ar member", e))?;
        if skipped != skip {
            return Err(DebError::Deb("truncated ar member".into()));
        }
        self.remaining = 0;
        self.pad = false;

        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut self.inner, &mut header)
            .map_err(|e| DebError::io("reading an ar member header", e))?;
        if got == 0 {
            return Ok(None);
        }
        if got != HEADER_LEN {
            return Err(DebError::Deb(format!(
                "truncated ar member header ({got} of {HEADER_LEN} bytes)"
            )));
        }
        if &header[58..60] != b"`\n" {
            return Err(DebError::Deb(
                "ar member header has a bad terminator".into(),
            ));
        }
        let name_field = String::from_utf8_lossy(&header[0..16]);
        let name = name_field.trim_end_matches(' ');
        // GNU ar ends names with `/`; the long-name table (`//`) and symbol table (`/`) are not used by dpkg.
        let name = name
            .strip_suffix('/')
            .filter(|n| !n.is_empty())
            .unwrap_or(name);
        let size_field = String::from_utf8_lossy(&header[48..58]);
        let size: u64 = size_field.trim_end_matches(' ').parse().map_err(|_| {
            DebError::Deb(format!(
                "ar member `{name}` has a bad size field `{}`",
                size_field.trim()
            ))
        })?;
        self.remaining = size;
        self.pad = size % 2 == 1;
        Ok(Some(MemberHeader {
            name: name.to_string(),
            size,
        }))
    }

    /// A reader over the body of the member whose header was read last.
    pub fn body(&mut self) -> MemberBody<'_, R> {
        MemberBody { ar: self }
    }
}

/// The body of the current member; reading it advances the archive.
pub struct MemberBody<'a, R: Read> {
    ar: &'a mut ArReader<R>,
}

impl<R: Read> Read for MemberBody<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ar.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.ar.remaining).unwrap_or(usize::MAX));
        let n = self.ar.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "ar member is shorter than its header says",
            ));
        }
        self.ar.remaining -= n as u64;
        Ok(n)
    }
}

/// Like `read_exact`, but reports how much was read so a clean end of file can be told from truncation.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Builds an ar archive in memory; used by tests to craft .deb files, including broken ones.
#[cfg(test)]
pub(crate) fn build(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = GLOBAL_MAGIC.to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            format!("{name}/"),
            0,
            0,
            0,
            "100644",
            data.len()
        );
        assert_eq!(header.len(), HEADER_LEN);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_with_padding_and_skips_unread_bodies() {
        let bytes = build(&[
            ("debian-binary", b"2.0\n"),
            ("odd", b"abc"),
            ("last", b"xy"),
        ]);
        let mut ar = ArReader::new(&bytes[..]).unwrap();
        let h = ar.next_member().unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.size), ("debian-binary", 4));
        let mut s = String::new();
        ar.body().read_to_string(&mut s).unwrap();
        assert_eq!(s, "2.0\n");
        assert_eq!(ar.next_member().unwrap().unwrap().name, "odd");
        // Leave "odd" unread: the padding byte after it must still be skipped.
        assert_eq!(ar.next_member().unwrap().unwrap().name, "last");
        let mut v = Vec::new();
        ar.body().read_to_end(&mut v).unwrap();
        assert_eq!(v, b"xy");
        assert_eq!(ar.next_member().unwrap(), None);
    }

    #[test]
    fn agrees_with_binutils_ar() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one"), b"1").unwrap();
        std::fs::write(dir.path().join("two.tar.gz"), b"twotwo").unwrap();
        let status = std::process::Command::new("ar")
            .current_dir(dir.path())
            .args(["rc", "out.a", "one", "two.tar.gz"])
            .status()
            .expect("binutils `ar` must be installed for this test");
        assert!(status.success());
        let bytes = std::fs::read(dir.path().join("out.a")).unwrap();
        let mut ar = ArReader::new(&bytes[..]).unwrap();
        let mut seen = Vec::new();
        while let Some(h) = ar.next_member().unwrap() {
            let mut v = Vec::new();
            ar.body().read_to_end(&mut v).unwrap();
            seen.push((h.name, v));
        }
        assert_eq!(
            seen,
            [
                ("one".to_string(), b"1".to_vec()),
                ("two.tar.gz".to_string(), b"twotwo".to_vec())
            ]
        );
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(ArReader::new(&b"PK\x03\x04 not ar"[..]).is_err());
        let bytes = build(&[("a", b"1234")]);
        let mut ar = ArReader::new(&bytes[..bytes.len() - 2]).unwrap();
        ar.next_member().unwrap();
        let mut v = Vec::new();
        assert!(ar.body().read_to_end(&mut v).is_err());
        let mut ar = ArReader::new(&bytes[..30]).unwrap();
        assert!(ar
            .next_member()
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }
}
