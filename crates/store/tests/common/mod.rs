//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs::{self, File};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How one variant of the golden tree is created on disk.
pub struct Style {
    /// Create entries in reverse order.
    pub reverse: bool,
    /// Mode of plain files.
    pub file_mode: u32,
    /// Mode of executable files (must have some x bit).
    pub exec_mode: u32,
    /// Mode of directories.
    pub dir_mode: u32,
    /// Modification time to stamp on files and directories.
    pub mtime: SystemTime,
}

pub const PLAIN: Style = Style {
    reverse: false,
    file_mode: 0o644,
    exec_mode: 0o755,
    dir_mode: 0o755,
    mtime: SystemTime::UNIX_EPOCH,
};

pub const ODD: Style = Style {
    reverse: true,
    file_mode: 0o600,
    exec_mode: 0o710,
    dir_mode: 0o700,
    mtime: SystemTime::UNIX_EPOCH,
};

enum Node {
    File(&'static [u8], bool),
    Link(&'static str),
    Dir(Vec<(&'static str, Node)>),
}

/// The tree described in tests/golden/gen.py (entries deliberately listed unsorted).
fn golden_tree() -> Node {
    use Node::*;
    Dir(vec![
        ("rel-link", Link("bin/hello")),
        (
            "etc",
            Dir(vec![
                (
                    "nested",
                    Dir(vec![
                        ("z", File(b"zz", false)),
                        ("a.conf", File(b"x=1\n", false)),
                    ]),
                ),
                ("motd", File(b"welcome\n", false)),
            ]),
        ),
        ("empty-file", File(b"", false)),
        (
            "bin",
            Dir(vec![("hello", File(b"#!/bin/sh\necho hello\n", true))]),
        ),
        ("empty-dir", Dir(vec![])),
        ("README", File(b"golden tree\n", false)),
        (
            "link",
            Link("/pideploy/store/00000000000000000000000000000000-foo/bin/hello"),
        ),
    ])
}

fn create(path: &Path, node: &Node, style: &Style) {
    match node {
        Node::File(data, exec) => {
            fs::write(path, data).unwrap();
            let mode = if *exec {
                style.exec_mode
            } else {
                style.file_mode
            };
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(style.mtime)
                .unwrap();
        }
        Node::Link(target) => symlink(target, path).unwrap(),
        Node::Dir(entries) => {
            fs::create_dir(path).unwrap();
            let mut list: Vec<&(&str, Node)> = entries.iter().collect();
            if style.reverse {
                list.reverse();
            }
            for (name, child) in list {
                create(&path.join(name), child, style);
            }
            fs::set_permissions(path, fs::Permissions::from_mode(style.dir_mode)).unwrap();
            File::open(path)
                .unwrap()
                .set_modified(style.mtime + Duration::from_secs(17))
                .unwrap();
        }
    }
}

/// Builds the golden tree at `path` in the given style.
pub fn build_golden_tree(path: &Path, style: &Style) {
    create(path, &golden_tree(), style);
}

/// The bytes of a golden file.
pub fn golden(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name),
    )
    .unwrap()
}

/// Permission bits of `path` (not following symlinks).
pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}
