//! Writing an archive from a tree on disk.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{valid_entry_name, MAGIC, MAX_TARGET, TAG_DIR, TAG_EXEC, TAG_FILE, TAG_SYMLINK};
use crate::fsutil::special_kind;
use crate::StoreError;

/// Writes the archive of the file, symlink or directory at `path` (not following a symlink at
/// `path` itself) to `w`.
///
/// Directory entries are sorted here by name bytes; the order the file system lists them in
/// never matters. Devices, fifos and sockets are refused with an error naming them.
pub fn dump(path: &Path, w: impl Write) -> Result<(), StoreError> {
    let mut w = BufWriter::new(w);
    put(&mut w, MAGIC)?;
    node(path, &mut w)?;
    w.flush().map_err(stream("writing archive"))?;
    Ok(())
}

fn stream(action: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::Stream { action, source }
}

fn put(w: &mut impl Write, bytes: &[u8]) -> Result<(), StoreError> {
    w.write_all(bytes).map_err(stream("writing archive"))
}

fn put_u64(w: &mut impl Write, n: u64) -> Result<(), StoreError> {
    put(w, &n.to_le_bytes())
}

fn node(path: &Path, w: &mut impl Write) -> Result<(), StoreError> {
    let meta = fs::symlink_metadata(path).map_err(StoreError::io("reading metadata of", path))?;
    let ft = meta.file_type();
    if ft.is_file() {
        let exec = meta.permissions().mode() & 0o111 != 0;
        put(w, &[if exec { TAG_EXEC } else { TAG_FILE }])?;
        file_contents(path, meta.len(), w)
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(StoreError::io("reading symlink", path))?;
        let target = target.as_os_str().as_bytes();
        if target.is_empty() || target.len() as u64 > MAX_TARGET {
            return Err(StoreError::Io {
                action: "archiving symlink",
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("target length {} is outside 1..={MAX_TARGET}", target.len()),
                ),
            });
        }
        put(w, &[TAG_SYMLINK])?;
        put_u64(w, target.len() as u64)?;
        put(w, target)
    } else if ft.is_dir() {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(StoreError::io("reading directory", path))? {
            let entry = entry.map_err(StoreError::io("reading directory", path))?;
            names.push(entry.file_name());
        }
        // Sorting here (not trusting readdir) is what makes the archive independent of the
        // file system and of the order files were created in.
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        put(w, &[TAG_DIR])?;
        put_u64(w, names.len() as u64)?;
        for name in names {
            let bytes = name.as_bytes();
            let child = path.join(&name);
            if !valid_entry_name(bytes) {
                return Err(StoreError::Io {
                    action: "archiving",
                    path: child,
                    source: io::Error::new(io::ErrorKind::InvalidData, "entry name too long"),
                });
            }
            put_u64(w, bytes.len() as u64)?;
            put(w, bytes)?;
            node(&child, w)?;
        }
        Ok(())
    } else {
        Err(StoreError::UnsupportedFileType {
            path: path.to_owned(),
            kind: special_kind(&ft),
        })
    }
}

fn file_contents(path: &Path, len: u64, w: &mut impl Write) -> Result<(), StoreError> {
    let file = File::open(path).map_err(StoreError::io("opening", path))?;
    put_u64(w, len)?;
    // Reading one byte past the recorded length detects a file that grew meanwhile.
    let mut limited = file.take(len + 1);
    let copied =
        io::copy(&mut limited, w).map_err(StoreError::io("archiving contents of", path))?;
    if copied != len {
        return Err(StoreError::FileChanged {
            path: path.to_owned(),
            expected: len,
            actual: copied,
        });
    }
    Ok(())
}
