//! Reading an archive back into a tree on disk.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{
    valid_entry_name, MAGIC, MAX_NAME, MAX_TARGET, TAG_DIR, TAG_EXEC, TAG_FILE, TAG_SYMLINK,
};
use crate::StoreError;

/// Deepest directory nesting accepted; deeper input cannot come from a real tree (PATH_MAX).
const MAX_DEPTH: usize = 2048;

/// Restores the archive read from `r` at `dest`, which must not exist (its parent must).
///
/// Files become 0444 or 0555, directories 0555 once filled, symlinks get their target as
/// given. Malformed input (bad magic, unknown tags, truncation, trailing bytes, unsorted,
/// duplicate or escaping names) is an error; whatever was already created is left for the
/// caller to remove, so restore into a temporary place.
pub fn restore(r: impl Read, dest: &Path) -> Result<(), StoreError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(StoreError::DestinationExists {
            path: dest.to_owned(),
        });
    }
    let mut rd = Reader {
        inner: BufReader::new(r),
        offset: 0,
    };
    let mut magic = vec![0u8; MAGIC.len()];
    rd.exact(&mut magic)?;
    if magic != MAGIC {
        return Err(rd.malformed("not a pideploy archive (bad magic or unsupported version)"));
    }
    node(&mut rd, dest, 0)?;
    let mut extra = [0u8; 1];
    let n = rd
        .inner
        .read(&mut extra)
        .map_err(|source| StoreError::Stream {
            action: "reading archive",
            source,
        })?;
    if n != 0 {
        return Err(rd.malformed("trailing bytes after the root entry"));
    }
    Ok(())
}

struct Reader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Reader<R> {
    fn malformed(&self, reason: impl Into<String>) -> StoreError {
        StoreError::MalformedArchive {
            offset: self.offset,
            reason: reason.into(),
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.malformed("archive ends early (truncated)"))
            }
            Err(source) => Err(StoreError::Stream {
                action: "reading archive",
                source,
            }),
        }
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A length-prefixed byte string of at most `max` bytes.
    fn bytes(&mut self, max: u64, what: &str) -> Result<Vec<u8>, StoreError> {
        let len = self.u64()?;
        if len == 0 || len > max {
            return Err(self.malformed(format!("{what} length {len} is outside 1..={max}")));
        }
        let mut v = vec![0u8; len as usize];
        self.exact(&mut v)?;
        Ok(v)
    }
}

fn node<R: Read>(rd: &mut Reader<R>, dest: &Path, depth: usize) -> Result<(), StoreError> {
    if depth > MAX_DEPTH {
        return Err(rd.malformed(format!("directories nested deeper than {MAX_DEPTH}")));
    }
    match rd.u8()? {
        tag @ (TAG_FILE | TAG_EXEC) => {
            let len = rd.u64()?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(StoreError::io("creating file", dest))?;
            let copied = io::copy(&mut (&mut rd.inner).take(len), &mut file)
                .map_err(StoreError::io("writing file", dest))?;
            rd.offset += copied;
            if copied != len {
                return Err(rd.malformed("archive ends inside file contents (truncated)"));
            }
            let mode = if tag == TAG_EXEC { 0o555 } else { 0o444 };
            // chmod, not the creation mode, so the umask has no say.
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(StoreError::io("setting permissions of", dest))?;
        }
        TAG_SYMLINK => {
            let target = rd.bytes(MAX_TARGET, "symlink target")?;
            if target.contains(&0) {
                return Err(rd.malformed("symlink target contains NUL"));
            }
            std::os::unix::fs::symlink(OsStr::from_bytes(&target), dest)
                .map_err(StoreError::io("creating symlink", dest))?;
        }
        TAG_DIR => {
            let count = rd.u64()?;
            fs::create_dir(dest).map_err(StoreError::io("creating directory", dest))?;
            fs::set_permissions(dest, fs::Permissions::from_mode(0o755))
                .map_err(StoreError::io("setting permissions of", dest))?;
            let mut prev: Option<Vec<u8>> = None;
            for _ in 0..count {
                let name = rd.bytes(MAX_NAME, "entry name")?;
                if !valid_entry_name(&name) {
                    return Err(rd.malformed(format!(
                        "entry name {:?} is not a single path component",
                        String::from_utf8_lossy(&name)
                    )));
                }
                if let Some(p) = &prev {
                    if name <= *p {
                        return Err(rd.malformed(format!(
                            "entry {:?} is not after {:?} (entries must be sorted and unique)",
                            String::from_utf8_lossy(&name),
                            String::from_utf8_lossy(p)
                        )));
                    }
                }
                node(rd, &dest.join(OsStr::from_bytes(&name)), depth + 1)?;
                prev = Some(name);
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(0o555))
                .map_err(StoreError::io("setting permissions of", dest))?;
        }
        other => {
            rd.offset -= 1;
            return Err(rd.malformed(format!("unknown entry type byte 0x{other:02x}")));
        }
    }
    Ok(())
}
