//! Helpers shared by the integration tests: driving dpkg-deb and apt, and reading their output.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pideploy_debian::deb::EntryKind;

/// Runs a command and returns stdout, panicking with stderr and a hint if it fails.
pub fn run(cmd: &mut Command, hint: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; {hint}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}; {hint}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One line of `dpkg-deb -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub link: Option<String>,
}

/// Parses `dpkg-deb -c` output into path (no `./`, no trailing `/`) -> entry; the root entry is dropped.
pub fn dpkg_listing(deb: &Path) -> BTreeMap<String, Listed> {
    let out = run(
        Command::new("dpkg-deb").arg("-c").arg(deb),
        "install the `dpkg` package",
    );
    let mut map = BTreeMap::new();
    for line in String::from_utf8(out).unwrap().lines() {
        // perms owner size date time name...; the size column is padded, so skip tokens by hand.
        let mut rest = line;
        let mut tokens = Vec::new();
        for _ in 0..5 {
            rest = rest.trim_start();
            let end = rest.find(' ').unwrap();
            tokens.push(&rest[..end]);
            rest = &rest[end..];
        }
        let name = &rest[1..];
        let perms = tokens[0].as_bytes();
        let kind = match perms[0] {
            b'd' => EntryKind::Dir,
            b'-' => EntryKind::File,
            b'l' => EntryKind::Symlink,
            b'h' => EntryKind::HardLink,
            b'c' => EntryKind::CharDevice,
            b'b' => EntryKind::BlockDevice,
            b'p' => EntryKind::Fifo,
            other => panic!("unknown type {} in {line}", other as char),
        };
        let (name, link) = match kind {
            EntryKind::Symlink => {
                let (n, l) = name.split_once(" -> ").unwrap();
                (n, Some(l.to_string()))
            }
            EntryKind::HardLink => {
                let (n, l) = name.split_once(" link to ").unwrap();
                (n, Some(normalise(l)))
            }
            _ => (name, None),
        };
        let path = normalise(name);
        if path.is_empty() {
            continue;
        }
        let size = if kind == EntryKind::File {
            tokens[2].parse().unwrap()
        } else {
            0
        };
        map.insert(
            path,
            Listed {
                kind,
                mode: mode_bits(&perms[1..]),
                size,
                link,
            },
        );
    }
    map
}

fn normalise(p: &str) -> String {
    p.trim_start_matches("./").trim_end_matches('/').to_string()
}

/// `rwsr-xr-t` -> 0o5755.
fn mode_bits(p: &[u8]) -> u32 {
    let mut mode = 0;
    for (i, &c) in p.iter().enumerate().take(9) {
        let bit = 1 << (8 - i);
        if c != b'-' && c != b'S' && c != b'T' {
            mode |= bit;
        }
    }
    let special = |c: u8| c == b's' || c == b'S' || c == b't' || c == b'T';
    if special(p[2]) {
        mode |= 0o4000;
    }
    if special(p[5]) {
        mode |= 0o2000;
    }
    if special(p[8]) {
        mode |= 0o1000;
    }
    mode
}

/// What a directory tree holds: relative path -> kind, with file contents / link targets.
#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    Dir,
    File {
        exec: bool,
        bytes: Vec<u8>,
    },
    Symlink(PathBuf),
    /// A fifo or device node (never opened: reading a fifo would block).
    Special,
}

/// Walks `root` without following symlinks.
pub fn walk(root: &Path) -> BTreeMap<String, Node> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let child = rel.join(entry.file_name());
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            let node = if meta.is_symlink() {
                Node::Symlink(std::fs::read_link(entry.path()).unwrap())
            } else if meta.is_dir() {
                stack.push(child.clone());
                Node::Dir
            } else if meta.is_file() {
                Node::File {
                    exec: meta.permissions().mode() & 0o111 != 0,
                    bytes: std::fs::read(entry.path()).unwrap(),
                }
            } else {
                Node::Special
            };
            out.insert(child.to_string_lossy().into_owned(), node);
        }
    }
    out
}

/// Downloads packages (`name:arch`) into `dir` with apt-get; `None` (with a note) only if apt-get is absent.
pub fn apt_download(packages: &[&str], dir: &Path) -> Option<Vec<PathBuf>> {
    if !have("apt-get") {
        eprintln!("NOTE: apt-get not found; tests on real Debian packages did not run");
        return None;
    }
    let out = Command::new("apt-get")
        .arg("download")
        .args(packages)
        .current_dir(dir)
        .output()
        .expect("running apt-get download");
    assert!(
        out.status.success(),
        "apt-get download {packages:?} failed: {}\nThis test needs the arm64 package lists and network access to \
         the Debian mirror: run `dpkg --add-architecture arm64 && apt-get update`.",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    assert_eq!(
        debs.len(),
        packages.len(),
        "apt-get download produced {debs:?}"
    );
    Some(debs)
}
