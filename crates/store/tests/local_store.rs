//! LocalStore: adding, idempotence, crash recovery, permissions, closure, delete, verify.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use common::{build_golden_tree, golden, mode, PLAIN};
use pideploy_store::{archive, LocalStore, PathInfo, Sha256, StoreError, StorePath};

fn store() -> (tempfile::TempDir, LocalStore) {
    let tmp = tempfile::tempdir().unwrap();
    let s = LocalStore::open(&tmp.path().join("root")).unwrap();
    (tmp, s)
}

fn none() -> BTreeSet<StorePath> {
    BTreeSet::new()
}

fn tmp_entries(s: &LocalStore) -> usize {
    fs::read_dir(s.root().join("tmp")).unwrap().count()
}

#[test]
fn open_creates_layout() {
    let (_t, s) = store();
    assert!(s.root().join("store").is_dir());
    assert!(s.root().join("var/db/valid").is_dir());
    assert!(s.list_valid().unwrap().is_empty());
}

#[test]
fn add_path_hashes_the_golden_archive_and_registers() {
    let (t, s) = store();
    let src = t.path().join("src");
    build_golden_tree(&src, &PLAIN);
    let p = s.add_path("golden", &src, &none()).unwrap();
    let nar = Sha256::of(&golden("tree.bin"));
    assert_eq!(p, StorePath::compute("golden", &nar, &none()).unwrap());
    assert!(s.is_valid(&p));
    assert!(
        src.join("bin/hello").is_file(),
        "source must be left in place"
    );

    let info = s.query(&p).unwrap();
    assert_eq!(info.nar_sha256, nar);
    assert_eq!(info.nar_size, golden("tree.bin").len() as u64);
    let reg = fs::read_to_string(s.root().join("var/db/valid").join(p.base_name())).unwrap();
    assert_eq!(
        reg,
        format!("path {p}\nnar-sha256 {nar}\nnar-size {}\n", info.nar_size)
    );
    assert_eq!(s.list_valid().unwrap(), vec![p.clone()]);
    s.verify(&p).unwrap();
    assert_eq!(tmp_entries(&s), 0, "temp dir must be cleaned");
}

#[test]
fn same_input_same_path_in_another_store_and_directory() {
    let (t, s1) = store();
    let s2 = LocalStore::open(&t.path().join("elsewhere/deeper")).unwrap();
    let a = s1.add_bytes("greeting", b"hi\n", false, &none()).unwrap();
    let b = s2
        .add("greeting", &none(), |dir| {
            fs::write(dir.join("out"), b"hi\n")
        })
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, s1.add_bytes("greeting", b"hi\n", true, &none()).unwrap());
}

#[test]
fn add_is_idempotent() {
    let (_t, s) = store();
    let p1 = s.add_bytes("x", b"data", false, &none()).unwrap();
    let reg = s.root().join("var/db/valid").join(p1.base_name());
    let ino = fs::metadata(s.physical(&p1)).unwrap().ino();
    let p2 = s.add_bytes("x", b"data", false, &none()).unwrap();
    assert_eq!(p1, p2);
    // The existing path was kept, not replaced.
    assert_eq!(fs::metadata(s.physical(&p1)).unwrap().ino(), ino);
    assert!(reg.is_file());
    assert_eq!(s.list_valid().unwrap().len(), 1);
    assert_eq!(tmp_entries(&s), 0);
}

#[test]
fn references_must_be_valid() {
    let (_t, s) = store();
    let ghost = StorePath::parse("00000000000000000000000000000000-ghost").unwrap();
    let refs: BTreeSet<_> = [ghost.clone()].into();
    let err = s.add_bytes("x", b"1", false, &refs).unwrap_err();
    match &err {
        StoreError::MissingReference { reference, .. } => assert_eq!(reference, &ghost),
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("ghost"));
    assert!(s.list_valid().unwrap().is_empty());
}

#[test]
fn references_are_recorded_and_change_the_path() {
    let (_t, s) = store();
    let lib = s.add_bytes("lib", b"lib", false, &none()).unwrap();
    let refs: BTreeSet<_> = [lib.clone()].into();
    let lib_abs = lib.absolute();
    let app = s
        .add("app", &refs, |dir| -> io::Result<()> {
            let out = dir.join("out");
            fs::create_dir(&out)?;
            symlink(&lib_abs, out.join("lib"))
        })
        .unwrap();
    assert_eq!(s.query(&app).unwrap().references, refs);
    assert_eq!(
        fs::read_link(s.physical(&app).join("lib"))
            .unwrap()
            .to_str()
            .unwrap(),
        lib.absolute()
    );
    let (nar, _) = archive::hash(&s.physical(&app)).unwrap();
    assert_eq!(app, StorePath::compute("app", &nar, &refs).unwrap());
    assert_ne!(app, StorePath::compute("app", &nar, &none()).unwrap());
}

#[test]
fn crash_leftover_is_not_valid_and_is_replaced() {
    let (_t, s) = store();
    let nar = {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"real contents").unwrap();
        archive::hash(&f).unwrap().0
    };
    let expected = StorePath::compute("victim", &nar, &none()).unwrap();
    // A crash after the rename but before registration: right name, wrong partial contents.
    let leftover = s.physical(&expected);
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("partial"), b"junk").unwrap();
    fs::set_permissions(&leftover, fs::Permissions::from_mode(0o555)).unwrap();
    assert!(!s.is_valid(&expected));
    assert!(matches!(
        s.query(&expected),
        Err(StoreError::NotValid { .. })
    ));
    assert!(s.list_valid().unwrap().is_empty());

    let p = s
        .add_bytes("victim", b"real contents", false, &none())
        .unwrap();
    assert_eq!(p, expected);
    assert_eq!(fs::read(s.physical(&p)).unwrap(), b"real contents");
    s.verify(&p).unwrap();

    // A registration without contents is not valid either.
    fs::remove_file(s.physical(&p)).unwrap();
    assert!(!s.is_valid(&p));
}

#[test]
fn contents_are_read_only_with_fixed_mtime() {
    let (t, s) = store();
    let src = t.path().join("src");
    build_golden_tree(&src, &PLAIN);
    let p = s.add_path("ro", &src, &none()).unwrap();
    let root = s.physical(&p);
    for (rel, want) in [
        ("", 0o555),
        ("bin", 0o555),
        ("empty-dir", 0o555),
        ("etc/nested", 0o555),
        ("bin/hello", 0o555),
        ("README", 0o444),
        ("empty-file", 0o444),
        ("etc/nested/z", 0o444),
    ] {
        let path = root.join(rel);
        assert_eq!(mode(&path), want, "{rel}");
        assert_eq!(fs::metadata(&path).unwrap().mtime(), 1, "{rel}");
    }
    let single = s.add_bytes("exe", b"#!/bin/sh\n", true, &none()).unwrap();
    assert_eq!(mode(&s.physical(&single)), 0o555);
    let reg = s.root().join("var/db/valid").join(p.base_name());
    assert_eq!(mode(&reg), 0o444);
}

#[test]
fn symlink_output_is_supported() {
    let (_t, s) = store();
    let p = s
        .add("alias", &none(), |dir| {
            symlink("/pideploy/store/x", dir.join("out"))
        })
        .unwrap();
    assert!(fs::symlink_metadata(s.physical(&p))
        .unwrap()
        .file_type()
        .is_symlink());
    s.verify(&p).unwrap();
}

#[test]
fn build_failures_are_reported_and_cleaned() {
    let (_t, s) = store();
    let err = s
        .add("broken", &none(), |dir| -> io::Result<()> {
            let out = dir.join("out");
            fs::create_dir(&out)?;
            fs::write(out.join("f"), b"x")?;
            // Leave read-only debris to prove cleanup copes with it.
            fs::set_permissions(&out, fs::Permissions::from_mode(0o555))?;
            Err(io::Error::other("compiler exploded"))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Build { .. }), "{err}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("compiler exploded"));
    assert_eq!(tmp_entries(&s), 0);

    let err = s
        .add("empty", &none(), |_| Ok::<(), io::Error>(()))
        .unwrap_err();
    assert!(matches!(err, StoreError::NoOutput { .. }), "{err}");
    assert!(err.to_string().contains("out"));

    let err = s.add_bytes("bad name", b"", false, &none()).unwrap_err();
    assert!(matches!(err, StoreError::InvalidName { .. }), "{err}");
    assert!(s.list_valid().unwrap().is_empty());
    assert_eq!(tmp_entries(&s), 0);
}

/// Builds lib <- {ssl, zlib} <- app, plus an unrelated path.
fn diamond(s: &LocalStore) -> [StorePath; 5] {
    let lib = s.add_bytes("lib", b"libc", false, &none()).unwrap();
    let one: BTreeSet<_> = [lib.clone()].into();
    let ssl = s.add_bytes("ssl", b"ssl", false, &one).unwrap();
    let zlib = s.add_bytes("zlib", b"zlib", false, &one).unwrap();
    let app = s
        .add_bytes("app", b"app", true, &[ssl.clone(), zlib.clone()].into())
        .unwrap();
    let other = s.add_bytes("other", b"other", false, &none()).unwrap();
    [lib, ssl, zlib, app, other]
}

#[test]
fn closure_order_golden() {
    let (_t, s) = store();
    let [lib, ssl, zlib, app, other] = diamond(&s);
    let closure = s.closure(std::slice::from_ref(&app)).unwrap();
    let names: Vec<_> = closure.iter().map(|p| p.name()).collect();
    // ssl and zlib tie after lib; the tie follows base names, i.e. their hashes.
    let mid = if ssl < zlib {
        ["ssl", "zlib"]
    } else {
        ["zlib", "ssl"]
    };
    assert_eq!(names, ["lib", mid[0], mid[1], "app"]);
    assert!(!closure.contains(&other));
    // Golden: fixed contents give fixed hashes, so the whole order is fixed.
    assert_eq!(
        closure
            .iter()
            .map(|p| p.base_name())
            .collect::<Vec<_>>()
            .join(" "),
        golden_closure()
    );
    assert_eq!(s.closure(std::slice::from_ref(&lib)).unwrap(), vec![lib]);
    let both = s.closure(&[other.clone(), app]).unwrap();
    assert_eq!(both.len(), 5);
    assert!(matches!(
        s.closure(&[StorePath::parse("00000000000000000000000000000000-ghost").unwrap()]),
        Err(StoreError::NotValid { .. })
    ));
}

fn golden_closure() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/closure.txt"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn delete_refuses_referenced_paths() {
    let (_t, s) = store();
    let [lib, ssl, zlib, app, _] = diamond(&s);
    let err = s.delete(&lib).unwrap_err();
    match &err {
        StoreError::Referenced { by, .. } => {
            assert_eq!(
                by.iter().cloned().collect::<BTreeSet<_>>(),
                [ssl.clone(), zlib.clone()].into()
            )
        }
        other => panic!("unexpected {other}"),
    }
    assert!(s.is_valid(&lib));
    s.delete(&app).unwrap();
    assert!(!s.is_valid(&app));
    assert!(!s.physical(&app).exists());
    s.delete(&ssl).unwrap();
    s.delete(&zlib).unwrap();
    s.delete(&lib).unwrap();
    assert_eq!(s.list_valid().unwrap().len(), 1);
    assert!(matches!(s.delete(&lib), Err(StoreError::NotValid { .. })));
}

#[test]
fn delete_removes_read_only_trees() {
    let (t, s) = store();
    let src = t.path().join("src");
    build_golden_tree(&src, &PLAIN);
    let p = s.add_path("tree", &src, &none()).unwrap();
    s.delete(&p).unwrap();
    assert!(fs::symlink_metadata(s.physical(&p)).is_err());
    assert!(!s.root().join("var/db/valid").join(p.base_name()).exists());
}

#[test]
fn verify_detects_tampering() {
    let (t, s) = store();
    let src = t.path().join("src");
    build_golden_tree(&src, &PLAIN);
    let p = s.add_path("tree", &src, &none()).unwrap();
    s.verify(&p).unwrap();
    let motd = s.physical(&p).join("etc/motd");
    fs::set_permissions(&motd, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&motd, b"pwned\n").unwrap();
    fs::set_permissions(&motd, fs::Permissions::from_mode(0o444)).unwrap();
    let err = s.verify(&p).unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&p.base_name()));

    // Flipping an x bit is tampering too.
    let q = s.add_bytes("f", b"f", false, &none()).unwrap();
    fs::set_permissions(s.physical(&q), fs::Permissions::from_mode(0o555)).unwrap();
    assert!(matches!(s.verify(&q), Err(StoreError::HashMismatch { .. })));
}

#[test]
fn verify_detects_altered_registration() {
    let (_t, s) = store();
    let lib = s.add_bytes("lib", b"l", false, &none()).unwrap();
    let p = s
        .add_bytes("p", b"p", false, &[lib.clone()].into())
        .unwrap();
    let reg = s.root().join("var/db/valid").join(p.base_name());
    let mut info = PathInfo::from_text(&fs::read_to_string(&reg).unwrap()).unwrap();
    info.references.clear();
    fs::set_permissions(&reg, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&reg, info.to_text()).unwrap();
    let err = s.verify(&p).unwrap_err();
    assert!(
        matches!(err, StoreError::RegistrationMismatch { .. }),
        "{err}"
    );
}

/// Root ignores permission bits, which hides bugs users meet (a read-only directory cannot be
/// moved to a new parent or emptied). When the suite runs as root, this runs the rest of it
/// again as `nobody` through `setpriv` (util-linux).
#[test]
fn whole_suite_as_unprivileged_user() {
    const GUARD: &str = "PIDEPLOY_STORE_TEST_UNPRIVILEGED";
    if std::env::var_os(GUARD).is_some() {
        return;
    }
    let probe = tempfile::tempdir().unwrap();
    if fs::metadata(probe.path()).unwrap().uid() != 0 {
        return; // already unprivileged: the other tests cover it
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args([
            "--skip",
            "whole_suite_as_unprivileged_user",
            "--test-threads=2",
        ])
        .env(GUARD, "1")
        .env("TMPDIR", std::env::temp_dir())
        .output()
        .expect("setpriv (util-linux) must be installed to run the store tests as root");
    assert!(
        out.status.success(),
        "suite failed as nobody:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test result: ok. 15 passed"), "{stdout}");
}
