//! Archive format: golden bytes, determinism, round trips and rejection of bad input.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{build_golden_tree, golden, mode, Style, ODD, PLAIN};
use pideploy_store::{archive, Sha256, StoreError};

/// sha256 of tests/golden/tree.bin (made by tests/golden/gen.py).
const TREE_SHA256: &str = "4998796bc73e97a9288dc2664eb9af1b612f9c33a9410bbbc484622413344122";
/// sha256 of tests/golden/file.bin (made by tests/golden/gen.py).
const FILE_SHA256: &str = "73ebb37b56960031ffe043883b8ff720415596c3096425812ede1eb805fbed83";

fn dump_vec(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    archive::dump(path, &mut v).unwrap();
    v
}

#[test]
fn tree_dump_matches_golden_file_and_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("t");
    build_golden_tree(&root, &PLAIN);
    let bytes = dump_vec(&root);
    assert_eq!(
        bytes,
        golden("tree.bin"),
        "dump differs from tests/golden/tree.bin"
    );
    assert_eq!(Sha256::of(&bytes).to_hex(), TREE_SHA256);
    let (digest, len) = archive::hash(&root).unwrap();
    assert_eq!(digest.to_hex(), TREE_SHA256);
    assert_eq!(len, bytes.len() as u64);
}

#[test]
fn single_file_dump_matches_golden() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    fs::write(&f, b"#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o700)).unwrap();
    let bytes = dump_vec(&f);
    assert_eq!(bytes, golden("file.bin"));
    assert_eq!(Sha256::of(&bytes).to_hex(), FILE_SHA256);
}

#[test]
fn order_modes_and_mtimes_do_not_matter() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    build_golden_tree(&a, &PLAIN);
    build_golden_tree(
        &b,
        &Style {
            mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ..ODD
        },
    );
    assert_eq!(dump_vec(&a), dump_vec(&b));
}

#[test]
fn exec_bit_and_contents_do_matter() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    fs::write(&f, b"data").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let plain = dump_vec(&f);
    // Any single x bit counts as executable.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o641)).unwrap();
    let exec = dump_vec(&f);
    assert_ne!(plain, exec);
    fs::set_permissions(&f, fs::Permissions::from_mode(0o744)).unwrap();
    assert_eq!(dump_vec(&f), exec);
    fs::write(&f, b"dat4").unwrap();
    assert_ne!(dump_vec(&f), exec);
}

#[test]
fn restore_round_trip_with_read_only_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_golden_tree(&src, &ODD);
    let bytes = dump_vec(&src);
    let dest = tmp.path().join("dest");
    archive::restore(&bytes[..], &dest).unwrap();
    assert_eq!(dump_vec(&dest), bytes);

    // An independent check of the restored contents.
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&src)
        .arg(&dest)
        .output()
        .expect("diff (diffutils) must be installed");
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );

    assert_eq!(mode(&dest), 0o555);
    assert_eq!(mode(&dest.join("empty-dir")), 0o555);
    assert_eq!(mode(&dest.join("etc/nested")), 0o555);
    assert_eq!(mode(&dest.join("bin/hello")), 0o555);
    assert_eq!(mode(&dest.join("README")), 0o444);
    assert_eq!(mode(&dest.join("empty-file")), 0o444);
    assert_eq!(
        fs::read_link(dest.join("link")).unwrap().to_str().unwrap(),
        "/pideploy/store/00000000000000000000000000000000-foo/bin/hello"
    );
    make_writable(&dest);
}

/// tempfile cannot remove 0555 directories as non-root.
fn make_writable(p: &Path) {
    let st = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn restore_golden_file_and_refuse_existing_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f");
    archive::restore(&golden("file.bin")[..], &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"#!/bin/sh\nexit 0\n");
    assert_eq!(mode(&dest), 0o555);
    let err = archive::restore(&golden("file.bin")[..], &dest).unwrap_err();
    assert!(matches!(err, StoreError::DestinationExists { .. }), "{err}");
}

#[test]
fn special_files_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    fs::create_dir(&dir).unwrap();
    let sock = dir.join("sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let err = archive::hash(&dir).unwrap_err();
    match &err {
        StoreError::UnsupportedFileType { path, kind } => {
            assert_eq!(path, &sock);
            assert_eq!(*kind, "socket");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("sock"));

    let fifo = tmp.path().join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let err = archive::hash(&fifo).unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedFileType { kind: "fifo", .. }),
        "{err}"
    );
}

// ---- malformed input ----

fn u64le(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

fn entry(name: &[u8], node: Vec<u8>) -> Vec<u8> {
    let mut v = u64le(name.len() as u64);
    v.extend_from_slice(name);
    v.extend(node);
    v
}

fn file_node(data: &[u8]) -> Vec<u8> {
    let mut v = vec![b'f'];
    v.extend(u64le(data.len() as u64));
    v.extend_from_slice(data);
    v
}

fn dir_node(entries: Vec<Vec<u8>>) -> Vec<u8> {
    let mut v = vec![b'd'];
    v.extend(u64le(entries.len() as u64));
    for e in entries {
        v.extend(e);
    }
    v
}

fn archive_of(node: Vec<u8>) -> Vec<u8> {
    let mut v = archive::MAGIC.to_vec();
    v.extend(node);
    v
}

fn restore_err(bytes: &[u8]) -> StoreError {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let err = archive::restore(bytes, &dest).expect_err("malformed archive was accepted");
    if dest.exists() {
        make_writable(&dest);
    }
    err
}

#[test]
fn hand_built_archive_is_accepted() {
    // Guards the helpers below: a correct archive built with them restores fine.
    let ok = archive_of(dir_node(vec![
        entry(b"a", file_node(b"1")),
        entry(b"b", file_node(b"2")),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    archive::restore(&ok[..], &tmp.path().join("out")).unwrap();
    assert_eq!(fs::read(tmp.path().join("out/b")).unwrap(), b"2");
    make_writable(&tmp.path().join("out"));
}

#[test]
fn every_truncation_is_rejected() {
    let full = golden("tree.bin");
    for cut in 0..full.len() {
        let err = restore_err(&full[..cut]);
        assert!(
            matches!(err, StoreError::MalformedArchive { .. }),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn malformed_inputs_are_rejected() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bad magic",
            b"pideploy-archive-v2\nf\0\0\0\0\0\0\0\0".to_vec(),
            "magic",
        ),
        (
            "trailing",
            [archive_of(file_node(b"x")), vec![0]].concat(),
            "trailing",
        ),
        ("unknown tag", archive_of(vec![b'q']), "unknown entry type"),
        (
            "unsorted",
            archive_of(dir_node(vec![
                entry(b"b", file_node(b"")),
                entry(b"a", file_node(b"")),
            ])),
            "sorted",
        ),
        (
            "duplicate",
            archive_of(dir_node(vec![
                entry(b"a", file_node(b"")),
                entry(b"a", file_node(b"")),
            ])),
            "sorted",
        ),
        (
            "dotdot",
            archive_of(dir_node(vec![entry(b"..", file_node(b""))])),
            "component",
        ),
        (
            "dot",
            archive_of(dir_node(vec![entry(b".", file_node(b""))])),
            "component",
        ),
        (
            "slash",
            archive_of(dir_node(vec![entry(b"a/b", file_node(b""))])),
            "component",
        ),
        (
            "nul",
            archive_of(dir_node(vec![entry(b"a\0", file_node(b""))])),
            "component",
        ),
        (
            "empty name",
            archive_of(dir_node(vec![entry(b"", file_node(b""))])),
            "length 0",
        ),
        (
            "empty symlink",
            archive_of([vec![b'l'], u64le(0)].concat()),
            "length 0",
        ),
        (
            "huge name",
            archive_of([vec![b'd'], u64le(1), u64le(1 << 40)].concat()),
            "outside",
        ),
    ];
    for (what, bytes, needle) in cases {
        let err = restore_err(&bytes);
        assert!(
            matches!(err, StoreError::MalformedArchive { .. }),
            "{what}: wrong error kind {err}"
        );
        assert!(err.to_string().contains(needle), "{what}: {err}");
    }
}
