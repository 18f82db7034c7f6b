//! A small writer for the `newc` cpio format the Linux kernel unpacks as an initramfs
//! (`Documentation/driver-api/early-userspace/buffer-format.rst`): a 110-byte ASCII header per
//! entry, the name, padding to 4 bytes, the data, padding to 4 bytes, and a `TRAILER!!!` entry.
//!
//! Entries are sorted by path and carry no timestamps, so the same entries give the same bytes.

use std::collections::BTreeMap;

/// What one archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file with its content.
    File(Vec<u8>),
    /// A symbolic link to the given target.
    Symlink(String),
    /// A character device (major, minor), e.g. `/dev/console` is (5, 1).
    CharDevice(u32, u32),
}

#[derive(Debug, Clone)]
struct Entry {
    kind: EntryKind,
    mode: u32,
}

/// Collects entries, then writes a `newc` archive with [`Newc::to_bytes`].
#[derive(Debug, Default, Clone)]
pub struct Newc {
    entries: BTreeMap<String, Entry>,
}

impl Newc {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and its parents) with mode 0755.
    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.add(path, EntryKind::Dir, 0o755)
    }

    /// Adds a regular file with the given permission bits (e.g. 0o755 for `/init`).
    pub fn file(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.add(path, EntryKind::File(data.into()), mode)
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add(path, EntryKind::Symlink(target.to_string()), 0o777)
    }

    /// Adds a character device node with mode 0600.
    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        self.add(path, EntryKind::CharDevice(major, minor), 0o600)
    }

    /// Adds any entry; parent directories are added as needed. A later entry at the same path
    /// replaces the earlier one.
    pub fn add(&mut self, path: &str, kind: EntryKind, mode: u32) -> &mut Self {
        let path = path.trim_matches('/').to_string();
        let mut parent = String::new();
        for part in path
            .split('/')
            .take(path.split('/').count().saturating_sub(1))
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Entry {
                kind: EntryKind::Dir,
                mode: 0o755,
            });
        }
        self.entries.insert(
            path,
            Entry {
                kind,
                mode: mode & 0o7777,
            },
        );
        self
    }

    /// The archive bytes, entries in path order (parents before children), then the trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (type_bits, data, rdev) = match &entry.kind {
                EntryKind::Dir => (0o040000, &[][..], (0, 0)),
                EntryKind::File(d) => (0o100000, d.as_slice(), (0, 0)),
                EntryKind::Symlink(t) => (0o120000, t.as_bytes(), (0, 0)),
                EntryKind::CharDevice(ma, mi) => (0o020000, &[][..], (*ma, *mi)),
            };
            let nlink = if matches!(entry.kind, EntryKind::Dir) {
                2
            } else {
                1
            };
            let header = Header {
                ino: ino as u32 + 1,
                mode: type_bits | entry.mode,
                nlink,
                filesize: data.len() as u32,
                rdev,
            };
            write_entry(&mut out, &header, path, data);
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            filesize: 0,
            rdev: (0, 0),
        };
        write_entry(&mut out, &trailer, "TRAILER!!!", &[]);
        out
    }
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdev: (u32, u32),
}

fn write_entry(out: &mut Vec<u8>, h: &Header, name: &str, data: &[u8]) {
    // Field order of the newc header: magic, ino, mode, uid, gid, nlink, mtime, filesize,
    // devmajor, devminor, rdevmajor, rdevminor, namesize (with NUL), check.
    let fields = [
        h.ino,
        h.mode,
        0,
        0,
        h.nlink,
        0,
        h.filesize,
        0,
        0,
        h.rdev.0,
        h.rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    fn sample() -> Newc {
        let mut a = Newc::new();
        a.file("bin/busybox", b"\x7fELF-ish".to_vec(), 0o755)
            .symlink("bin/sh", "busybox")
            .char_device("dev/console", 5, 1)
            .file("init", "#!/bin/sh\necho hi\n", 0o755)
            .dir("proc");
        a
    }

    #[test]
    fn deterministic_and_aligned() {
        let bytes = sample().to_bytes();
        assert_eq!(bytes, sample().to_bytes());
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
    }

    /// GNU cpio reads the archive back: names, types, modes and contents.
    #[test]
    fn gnu_cpio_lists_and_extracts_it() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.cpio");
        std::fs::write(&archive, sample().to_bytes()).unwrap();
        let out = Command::new("cpio")
            .args(["-itv", "--quiet", "-F"])
            .arg(&archive)
            .stderr(Stdio::inherit())
            .output()
            .expect("cpio is installed (apt-get install cpio)");
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 7, "{listing}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("drwxr-xr-x") && l.ends_with(" bin")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with("bin/sh -> busybox")));
        assert!(lines.iter().any(|l| l.starts_with("crw-------")
            && l.contains("5,")
            && l.ends_with("dev/console")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" init")));

        let extract = dir.path().join("x");
        std::fs::create_dir(&extract).unwrap();
        let status = Command::new("cpio")
            .args(["-id", "--quiet", "--no-absolute-filenames", "-F"])
            .arg(&archive)
            .arg("init")
            .current_dir(&extract)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(extract.join("init")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
    }
}
