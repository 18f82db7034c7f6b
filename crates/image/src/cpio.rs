//! The newc ("070701") cpio writer: the initramfs of every generation, and the test initramfs of
//! the QEMU harness's own tests.
//!
//! The kernel unpacks newc archives natively
//! (`Documentation/driver-api/early-userspace/buffer-format.rst`). Entries are written in the order the caller adds them,
//! with fixed inode numbers, owners (0:0), times (0) and device numbers, so the same entries always give
//! the same bytes.

use std::collections::BTreeSet;

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpioEntry {
    /// A directory with its permission bits.
    Dir {
        /// Path inside the archive, without leading '/'.
        path: String,
        /// Permission bits (e.g. 0o755).
        mode: u32,
    },
    /// A regular file.
    File {
        /// Path inside the archive, without leading '/'.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
    },
    /// A symbolic link.
    Symlink {
        /// Path inside the archive, without leading '/'.
        path: String,
        /// Link target, verbatim.
        target: String,
    },
    /// A character device node (needed for `/dev/console` before devtmpfs is mounted).
    CharDev {
        /// Path inside the archive.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

impl CpioEntry {
    fn path(&self) -> &str {
        match self {
            CpioEntry::Dir { path, .. }
            | CpioEntry::File { path, .. }
            | CpioEntry::Symlink { path, .. }
            | CpioEntry::CharDev { path, .. } => path,
        }
    }
}

/// Serialises entries into a newc archive ending with the `TRAILER!!!` record.
///
/// Parent directories must come before their children; a missing parent or a duplicate path is a
/// programming error in the caller and is reported as `Err` with the offending path.
pub fn write_newc(entries: &[CpioEntry]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        let path = e.path();
        if path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|c| c == ".." || c.is_empty())
        {
            return Err(format!("bad cpio path {path:?}"));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !seen.contains(parent) {
                return Err(format!(
                    "cpio entry {path:?} comes before its directory {parent:?}"
                ));
            }
        }
        if !seen.insert(path) {
            return Err(format!("duplicate cpio entry {path:?}"));
        }
        // Inode 0 is avoided: some unpackers treat it as "no inode".
        let ino = i as u32 + 1;
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match e {
            CpioEntry::Dir { mode, .. } => (0o040000 | (mode & 0o7777), &[], (0, 0)),
            CpioEntry::File { mode, data, .. } => (0o100000 | (mode & 0o7777), data, (0, 0)),
            CpioEntry::Symlink { target, .. } => (0o120777, target.as_bytes(), (0, 0)),
            CpioEntry::CharDev {
                mode, major, minor, ..
            } => (0o020000 | (mode & 0o7777), &[], (*major, *minor)),
        };
        let nlink = if matches!(e, CpioEntry::Dir { .. }) {
            2
        } else {
            1
        };
        push_record(&mut out, ino, mode, nlink, rdev, path, data)?;
    }
    push_record(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[])?;
    Ok(out)
}

fn push_record(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) -> Result<(), String> {
    let size = u32::try_from(data.len()).map_err(|_| format!("{name}: too large for cpio"))?;
    let namesize = name.len() as u32 + 1;
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
    Ok(())
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Vec<CpioEntry> {
        vec![
            CpioEntry::Dir {
                path: "dev".into(),
                mode: 0o755,
            },
            CpioEntry::CharDev {
                path: "dev/console".into(),
                mode: 0o600,
                major: 5,
                minor: 1,
            },
            CpioEntry::Dir {
                path: "bin".into(),
                mode: 0o755,
            },
            CpioEntry::File {
                path: "bin/hello".into(),
                mode: 0o755,
                data: b"#!/bin/sh\necho hi\n".to_vec(),
            },
            CpioEntry::Symlink {
                path: "bin/sh".into(),
                target: "hello".into(),
            },
            CpioEntry::File {
                path: "init".into(),
                mode: 0o755,
                data: b"x".to_vec(),
            },
        ]
    }

    #[test]
    fn header_layout_is_newc() {
        let bytes = write_newc(&sample()).unwrap();
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(write_newc(&sample()).unwrap(), bytes, "deterministic");
    }

    #[test]
    fn parents_must_come_first_and_paths_are_unique() {
        let e = vec![CpioEntry::File {
            path: "a/b".into(),
            mode: 0o644,
            data: vec![],
        }];
        assert!(write_newc(&e).unwrap_err().contains("before its directory"));
        let e = vec![
            CpioEntry::Dir {
                path: "a".into(),
                mode: 0o755,
            },
            CpioEntry::Dir {
                path: "a".into(),
                mode: 0o755,
            },
        ];
        assert!(write_newc(&e).unwrap_err().contains("duplicate"));
        let e = vec![CpioEntry::Dir {
            path: "../x".into(),
            mode: 0o755,
        }];
        assert!(write_newc(&e).is_err());
    }

    /// GNU cpio is an independent reader: it must list exactly our entries.
    #[test]
    fn gnu_cpio_reads_it_back() {
        let bytes = write_newc(&sample()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.cpio");
        std::fs::write(&file, &bytes).unwrap();
        let out = Command::new("cpio")
            .args(["-t", "-v", "--quiet", "-F"])
            .arg(&file)
            .output()
            .expect("run cpio (apt-get install cpio)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        for name in ["dev/console", "bin/hello", "bin/sh -> hello", "init"] {
            assert!(listing.contains(name), "{name} missing in:\n{listing}");
        }
        assert!(listing
            .lines()
            .any(|l| l.starts_with("crw-------") && l.contains("5,")));
    }
}
