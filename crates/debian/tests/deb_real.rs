//! .deb reading checked against dpkg-deb: packages built by dpkg-deb with each compression, and real
//! Debian arm64 packages downloaded by apt.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{dpkg_listing, run, walk, Node};
use pideploy_debian::deb::{self, EntryKind};
use pideploy_debian::DebError;

/// Checks list_data and extract_data of `deb` against `dpkg-deb -c` and `dpkg-deb -x`.
fn check_against_dpkg(deb: &Path) {
    let listed = dpkg_listing(deb);

    let ours: BTreeMap<_, _> = deb::list_data(File::open(deb).unwrap())
        .unwrap()
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        listed.keys().collect::<Vec<_>>(),
        "{}: list_data paths differ from dpkg-deb -c",
        deb.display()
    );
    for (path, want) in &listed {
        let got = &ours[path];
        assert_eq!(
            (got.kind, got.mode, got.size, &got.link_target),
            (want.kind, want.mode, want.size, &want.link),
            "{}: entry {path}",
            deb.display()
        );
    }

    let dest = tempfile::tempdir().unwrap();
    let summary = deb::extract_data(File::open(deb).unwrap(), dest.path()).unwrap();
    let tree = walk(dest.path());
    let unpackable = |k: EntryKind| {
        !matches!(
            k,
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo
        )
    };
    let want_paths: Vec<_> = listed
        .iter()
        .filter(|(_, l)| unpackable(l.kind))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        tree.keys().collect::<Vec<_>>(),
        want_paths,
        "{}: extracted tree differs from dpkg-deb -c",
        deb.display()
    );
    for (path, l) in &listed {
        let ok = match (&tree.get(path), l.kind) {
            (Some(Node::Dir), EntryKind::Dir) => true,
            (Some(Node::File { .. }), EntryKind::File | EntryKind::HardLink) => true,
            (Some(Node::Symlink(t)), EntryKind::Symlink) => t.to_str() == l.link.as_deref(),
            (None, k) => !unpackable(k),
            _ => false,
        };
        assert!(
            ok,
            "{}: {path} is {:?} on disk, {:?} in dpkg-deb -c",
            deb.display(),
            tree.get(path).map(|_| ()),
            l
        );
    }
    let count =
        |f: &dyn Fn(EntryKind) -> bool| listed.values().filter(|l| f(l.kind)).count() as u64;
    assert_eq!(summary.dirs, count(&|k| k == EntryKind::Dir));
    assert_eq!(
        summary.files,
        count(&|k| matches!(k, EntryKind::File | EntryKind::HardLink))
    );
    assert_eq!(summary.symlinks, count(&|k| k == EntryKind::Symlink));
    assert_eq!(summary.skipped.len() as u64, count(&|k| !unpackable(k)));

    // Contents and exec bits must match dpkg's own unpacking.
    let reference = tempfile::tempdir().unwrap();
    run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(reference.path()),
        "install the `dpkg` package",
    );
    let theirs = walk(reference.path());
    let mut bytes = 0;
    for (path, node) in &theirs {
        if *node == Node::Special {
            assert!(!tree.contains_key(path), "{path} should have been skipped");
            continue;
        }
        assert_eq!(
            Some(node),
            tree.get(path),
            "{}: {path} differs from dpkg-deb -x",
            deb.display()
        );
        if let Node::File { bytes: b, .. } = node {
            bytes += b.len() as u64;
        }
    }
    assert_eq!(
        tree.len(),
        theirs.values().filter(|n| **n != Node::Special).count()
    );
    assert_eq!(summary.bytes, bytes);
}

fn control_via_dpkg(deb: &Path, field: &str) -> String {
    let out = run(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(field),
        "install the `dpkg` package",
    );
    String::from_utf8(out).unwrap().trim_end().to_string()
}

/// A package tree with every kind of entry dpkg-deb can store.
fn make_tree(root: &Path) {
    let w = |p: &str, data: &[u8], mode: u32| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    w(
        "DEBIAN/control",
        b"Package: pideploy-test\nVersion: 1:2.0~rc1-3\nArchitecture: arm64\nMaintainer: T <t@example.org>\n\
          Depends: libc6 (>= 2.34)\nDescription: test package\n Second line.\n .\n Third.\n",
        0o644,
    );
    w("usr/bin/tool", b"#!/bin/sh\nexit 0\n", 0o755);
    w("usr/sbin/setuid-tool", b"binary", 0o4755);
    w(
        "usr/share/doc/pideploy-test/README",
        &vec![b'r'; 70_000],
        0o644,
    );
    w("etc/secret", b"private", 0o600);
    let long = format!("usr/share/{}/{}.txt", "d".repeat(90), "f".repeat(80));
    w(&long, b"long name", 0o644);
    std::fs::create_dir_all(root.join("var/empty")).unwrap();
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-hard")).unwrap();
    std::os::unix::fs::symlink("tool", root.join("usr/bin/rel-link")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/tool", root.join("usr/bin/abs-link")).unwrap();
    std::os::unix::fs::symlink("../../nonexistent", root.join("usr/bin/dangling")).unwrap();
    run(
        Command::new("mkfifo").arg(root.join("var/fifo")),
        "install coreutils",
    );
}

#[test]
fn packages_built_by_dpkg_deb_with_each_compression() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("pkg");
    make_tree(&tree);
    for comp in ["gzip", "xz", "zstd", "none"] {
        let deb = work.path().join(format!("test-{comp}.deb"));
        run(
            Command::new("dpkg-deb")
                .args([
                    "--root-owner-group",
                    "--nocheck",
                    &format!("-Z{comp}"),
                    "--build",
                ])
                .arg(&tree)
                .arg(&deb),
            "install the `dpkg` package",
        );
        let control = deb::read_control(File::open(&deb).unwrap()).unwrap();
        assert_eq!(control["Package"], "pideploy-test", "{comp}");
        assert_eq!(
            control["Version"],
            control_via_dpkg(&deb, "Version"),
            "{comp}"
        );
        assert_eq!(
            control["Description"],
            control_via_dpkg(&deb, "Description")
        );
        assert_eq!(control.len(), 6, "{comp}: {control:?}");
        check_against_dpkg(&deb);

        let summary = deb::extract_data(File::open(&deb).unwrap(), work.path().join("x").as_path());
        assert!(matches!(summary, Err(DebError::Destination { .. })));
        let dest = tempfile::tempdir().unwrap();
        let s = deb::extract_data(File::open(&deb).unwrap(), dest.path()).unwrap();
        assert_eq!(s.skipped, ["var/fifo (Fifo)"]);
        let mode = |p: &str| {
            std::fs::metadata(dest.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("usr/sbin/setuid-tool"), 0o755);
        assert_eq!(mode("etc/secret"), 0o644);
    }
}

#[test]
fn real_debian_arm64_packages() {
    let dir = tempfile::tempdir().unwrap();
    let Some(debs) = common::apt_download(
        &["busybox-static:arm64", "dropbear-bin:arm64", "libc6:arm64"],
        dir.path(),
    ) else {
        return;
    };
    for deb in &debs {
        let control = deb::read_control(File::open(deb).unwrap()).unwrap();
        for field in [
            "Package",
            "Version",
            "Architecture",
            "Depends",
            "Installed-Size",
        ] {
            assert_eq!(
                control.get(field).cloned().unwrap_or_default(),
                control_via_dpkg(deb, field),
                "{}: {field}",
                deb.display()
            );
        }
        assert_eq!(control["Architecture"], "arm64");
        check_against_dpkg(deb);
    }
}
