//! Turning data.tar entries into files under a destination directory, safely.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::DebError;

/// Symlink hops allowed while resolving one path, as in Linux's ELOOP limit.
const MAX_SYMLINK_HOPS: u32 = 40;

/// What kind of filesystem object a data.tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    HardLink,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
    /// A named pipe.
    Fifo,
}

/// One entry of a package's data.tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEntry {
    /// Path relative to the root, without a leading `./` or trailing `/`.
    pub path: String,
    /// The entry's kind.
    pub kind: EntryKind,
    /// Size of the contents in bytes (0 for anything but regular files).
    pub size: u64,
    /// Permission bits as stored in the archive (including setuid/setgid/sticky).
    pub mode: u32,
    /// Symlink target (verbatim) or hard-link target (normalised like `path`).
    pub link_target: Option<String>,
}

/// What `extract_data` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackSummary {
    /// Regular files written, hard links (materialised as copies) included.
    pub files: u64,
    /// Directory entries processed.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Entries not unpacked (device nodes, fifos), as `path (kind)`.
    pub skipped: Vec<String>,
}

/// Turns a raw tar path into a relative path, refusing anything that could leave the root.
pub(crate) fn archive_path(raw: &[u8]) -> Result<PathBuf, DebError> {
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir => return Err(unsafe_path(raw, "it contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path(raw, "it is an absolute path"))
            }
        }
    }
    Ok(out)
}

fn unsafe_path(raw: &[u8], reason: &str) -> DebError {
    DebError::UnsafePath {
        entry: String::from_utf8_lossy(raw).into_owned(),
        reason: reason.to_string(),
    }
}

fn kind_of<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Option<EntryKind>, DebError> {
    use tar::EntryType as T;
    Ok(Some(match entry.header().entry_type() {
        T::Directory => EntryKind::Dir,
        T::Regular | T::Continuous => EntryKind::File,
        T::Symlink => EntryKind::Symlink,
        T::Link => EntryKind::HardLink,
        T::Char => EntryKind::CharDevice,
        T::Block => EntryKind::BlockDevice,
        T::Fifo => EntryKind::Fifo,
        // Global pax headers only carry metadata for later entries.
        T::XGlobalHeader => return Ok(None),
        other => {
            return Err(DebError::Deb(format!(
                "data.tar entry `{}` has unsupported type {other:?}",
                String::from_utf8_lossy(&entry.path_bytes())
            )))
        }
    }))
}

/// Describes an entry; `None` for the root directory and metadata-only entries.
pub(crate) fn describe<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Option<DataEntry>, DebError> {
    let Some(kind) = kind_of(entry)? else {
        return Ok(None);
    };
    let path = archive_path(&entry.path_bytes())?;
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let header = entry.header();
    let link_target = match kind {
        EntryKind::Symlink => entry
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        EntryKind::HardLink => match entry.link_name_bytes() {
            Some(b) => Some(archive_path(&b)?.to_string_lossy().into_owned()),
            None => None,
        },
        _ => None,
    };
    let bad_header = |e| DebError::io(format!("reading the header of {}", path.display()), e);
    Ok(Some(DataEntry {
        path: path.to_string_lossy().into_owned(),
        kind,
        size: if kind == EntryKind::File {
            header.size().map_err(bad_header)?
        } else {
            0
        },
        mode: header.mode().map_err(bad_header)? & 0o7777,
        link_target,
    }))
}

/// Writes entries under a root directory, resolving paths as if the root were `/`.
pub(crate) struct Unpacker {
    root: PathBuf,
    summary: UnpackSummary,
}

impl Unpacker {
    pub(crate) fn new(dest: &Path) -> Result<Self, DebError> {
        let meta = fs::metadata(dest).map_err(|e| DebError::Destination {
            path: dest.to_path_buf(),
            reason: format!("{e}; create the directory first"),
        })?;
        if !meta.is_dir() {
            return Err(DebError::Destination {
                path: dest.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        Ok(Unpacker {
            root: dest.to_path_buf(),
            summary: UnpackSummary::default(),
        })
    }

    pub(crate) fn finish(self) -> UnpackSummary {
        self.summary
    }

    pub(crate) fn unpack<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), DebError> {
        let Some(desc) = describe(entry)? else {
            return Ok(());
        };
        let rel = PathBuf::from(&desc.path);
        match desc.kind {
            EntryKind::Dir => {
                let dir = self.resolve(&rel, true, &desc.path)?;
                set_mode(&dir, 0o755)?;
                self.summary.dirs += 1;
            }
            EntryKind::File => {
                let target = self.prepare_leaf(&rel, &desc.path)?;
                let mut file = fs::File::create(&target)
                    .map_err(|e| DebError::io(format!("creating {}", target.display()), e))?;
                let n = io::copy(entry, &mut file)
                    .map_err(|e| DebError::io(format!("writing {}", target.display()), e))?;
                set_mode(&target, file_mode(desc.mode))?;
                self.summary.files += 1;
                self.summary.bytes += n;
            }
            EntryKind::Symlink => {
                let target = self.prepare_leaf(&rel, &desc.path)?;
                let link = entry.link_name_bytes().ok_or_else(|| {
                    DebError::Deb(format!("symlink `{}` has no target", desc.path))
                })?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target).map_err(|e| {
                    DebError::io(format!("creating symlink {}", target.display()), e)
                })?;
                self.summary.symlinks += 1;
            }
            EntryKind::HardLink => {
                let source_rel = desc.link_target.as_deref().ok_or_else(|| {
                    DebError::Deb(format!("hard link `{}` has no target", desc.path))
                })?;
                let source = self.resolve(Path::new(source_rel), false, &desc.path)?;
                if !fs::symlink_metadata(&source).is_ok_and(|m| m.is_file()) {
                    return Err(DebError::Deb(format!(
                        "hard link `{}` points to `{source_rel}`, which is not a regular file unpacked before it",
                        desc.path
                    )));
                }
                let target = self.prepare_leaf(&rel, &desc.path)?;
                let n = fs::copy(&source, &target).map_err(|e| {
                    DebError::io(
                        format!("copying {} to {}", source.display(), target.display()),
                        e,
                    )
                })?;
                self.summary.files += 1;
                self.summary.bytes += n;
            }
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                self.summary
                    .skipped
                    .push(format!("{} ({:?})", desc.path, desc.kind));
            }
        }
        Ok(())
    }

    /// Resolves the parent of `rel` (creating missing directories) and clears the way for a new leaf.
    fn prepare_leaf(&self, rel: &Path, entry: &str) -> Result<PathBuf, DebError> {
        let parent = self.resolve(rel.parent().unwrap_or(Path::new("")), true, entry)?;
        let name = rel
            .file_name()
            .ok_or_else(|| unsafe_path(entry.as_bytes(), "it has no file name"))?;
        let target = parent.join(name);
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => Err(DebError::Deb(format!(
                "entry `{entry}` would replace the directory {}",
                target.display()
            ))),
            // Replace files and symlinks instead of writing through them: a symlink left by an earlier
            // package must never redirect this write.
            Ok(_) => fs::remove_file(&target)
                .map(|()| target.clone())
                .map_err(|e| DebError::io(format!("replacing {}", target.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(target),
            Err(e) => Err(DebError::io(format!("inspecting {}", target.display()), e)),
        }
    }

    /// Maps `rel` to a real path under the root, following symlinks chroot-style (absolute targets start
    /// again at the root, `..` never climbs above it). With `create`, missing directories are made.
    fn resolve(&self, rel: &Path, create: bool, entry: &str) -> Result<PathBuf, DebError> {
        let mut pending: VecDeque<OsString> = components(rel).collect();
        let mut done: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            if part == ".." {
                done.pop();
                continue;
            }
            let here = self.root.join(done.iter().collect::<PathBuf>()).join(&part);
            match fs::symlink_metadata(&here) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(unsafe_path(entry.as_bytes(), "too many levels of symlinks"));
                    }
                    let link = fs::read_link(&here).map_err(|e| {
                        DebError::io(format!("reading symlink {}", here.display()), e)
                    })?;
                    if link.is_absolute() {
                        done.clear();
                    }
                    for (i, c) in components(&link).enumerate() {
                        pending.insert(i, c);
                    }
                }
                Ok(m) if m.is_dir() => done.push(part),
                Ok(_) if pending.is_empty() && !create => done.push(part),
                Ok(_) => {
                    return Err(DebError::Deb(format!(
                        "entry `{entry}` needs {} to be a directory, but it is a file",
                        here.display()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&here)
                        .map_err(|e| DebError::io(format!("creating {}", here.display()), e))?;
                    set_mode(&here, 0o755)?;
                    done.push(part);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(DebError::Deb(format!(
                        "entry `{entry}` refers to {}, which does not exist",
                        here.display()
                    )))
                }
                Err(e) => return Err(DebError::io(format!("inspecting {}", here.display()), e)),
            }
        }
        Ok(self.root.join(done.iter().collect::<PathBuf>()))
    }
}

/// Path components as strings, with `.` and root dropped (the root is the unpack destination).
fn components(p: &Path) -> impl Iterator<Item = OsString> + '_ {
    p.components().filter_map(|c| match c {
        Component::Normal(s) => Some(s.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    })
}

/// Regular files keep only whether they are executable: setuid and odd modes are not carried over.
fn file_mode(archive_mode: u32) -> u32 {
    if archive_mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DebError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| DebError::io(format!("setting permissions of {}", path.display()), e))
}
