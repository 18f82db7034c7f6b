//! File system helpers for the local store: sealing, copying, removing read-only trees.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::StoreError;

/// The modification time every sealed file and directory gets, so copies of the store (images)
/// do not depend on when a path was built. One second past the epoch, as Nix does, because
/// some tools treat 0 as "unknown".
pub const SEALED_MTIME: Duration = Duration::from_secs(1);

/// Makes everything *below* the tree at `path` read-only (files 0444/0555 by any x bit, dirs
/// 0555), sets the modification time of those files and directories to [`SEALED_MTIME`], and
/// fsyncs them. `path` itself is left for [`seal_node`]: moving a directory to another parent
/// needs write access to it (its `..` entry changes), so the top is sealed after the rename.
pub fn seal_below(path: &Path) -> Result<(), StoreError> {
    let meta = fs::symlink_metadata(path).map_err(StoreError::io("reading metadata of", path))?;
    if !meta.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(path).map_err(StoreError::io("reading directory", path))? {
        let entry = entry.map_err(StoreError::io("reading directory", path))?;
        let child = entry.path();
        seal_below(&child)?;
        seal_node(&child)?;
    }
    Ok(())
}

/// Seals `path` alone (not its children): read-only mode, [`SEALED_MTIME`], fsync.
/// Symlinks are left as they are (their mode is meaningless on Linux, their time unsettable
/// without libc).
pub fn seal_node(path: &Path) -> Result<(), StoreError> {
    let meta = fs::symlink_metadata(path).map_err(StoreError::io("reading metadata of", path))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Ok(());
    }
    let mode = if ft.is_dir() || meta.permissions().mode() & 0o111 != 0 {
        0o555
    } else {
        0o444
    };
    // Directory mtimes change when children are created or moved, so this runs last for each.
    let f = File::open(path).map_err(StoreError::io("opening", path))?;
    f.set_modified(SystemTime::UNIX_EPOCH + SEALED_MTIME)
        .map_err(StoreError::io("setting modification time of", path))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(StoreError::io("setting permissions of", path))?;
    f.sync_all().map_err(StoreError::io("syncing", path))?;
    Ok(())
}

/// fsyncs a directory so renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::io("syncing directory", dir))
}

/// Removes whatever is at `path` (file, symlink or tree), adding u+w to directories first so
/// read-only store trees can be removed without root. A missing `path` is fine.
pub fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("reading metadata of", path)(e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).map_err(StoreError::io("removing", path));
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700))
            .map_err(StoreError::io("making writable", path))?;
    }
    for entry in fs::read_dir(path).map_err(StoreError::io("reading directory", path))? {
        let entry = entry.map_err(StoreError::io("reading directory", path))?;
        remove_tree(&entry.path())?;
    }
    fs::remove_dir(path).map_err(StoreError::io("removing directory", path))
}

/// Copies the file, symlink or tree at `src` to `dest` (which must not exist): file contents
/// and x bits, symlink targets verbatim, directories recursively. Special files are refused.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), StoreError> {
    let meta = fs::symlink_metadata(src).map_err(StoreError::io("reading metadata of", src))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(StoreError::io("reading symlink", src))?;
        std::os::unix::fs::symlink(target, dest).map_err(StoreError::io("creating symlink", dest))
    } else if ft.is_file() {
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let mut out = new_file(dest, mode)?;
        let mut input = File::open(src).map_err(StoreError::io("opening", src))?;
        io::copy(&mut input, &mut out).map_err(StoreError::io("copying into", dest))?;
        Ok(())
    } else if ft.is_dir() {
        fs::create_dir(dest).map_err(StoreError::io("creating directory", dest))?;
        for entry in fs::read_dir(src).map_err(StoreError::io("reading directory", src))? {
            let entry = entry.map_err(StoreError::io("reading directory", src))?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        Err(StoreError::UnsupportedFileType {
            path: src.to_owned(),
            kind: special_kind(&ft),
        })
    }
}

/// Writes `data` to a new file at `path` with `mode` (set explicitly, independent of umask).
pub fn write_new_file(path: &Path, data: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut f = new_file(path, mode)?;
    f.write_all(data).map_err(StoreError::io("writing", path))?;
    f.sync_all().map_err(StoreError::io("syncing", path))
}

fn new_file(path: &Path, mode: u32) -> Result<File, StoreError> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(StoreError::io("creating file", path))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(StoreError::io("setting permissions of", path))?;
    Ok(f)
}

/// A word for a file type that cannot enter the store.
pub(crate) fn special_kind(ft: &fs::FileType) -> &'static str {
    if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    }
}
