//! Cache: import, list, verify, require.

use std::path::Path;
use std::process::Command;

use pideploy_cache::{Cache, CacheError};

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils) runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn import_stores_under_the_hash_and_is_idempotent() {
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(&work.path().join("cache")).unwrap();
    let file = work.path().join("busybox-static_1.35_arm64.deb");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();

    let (sha, size) = cache.import(&file).unwrap();
    assert_eq!(sha, sha256sum(&file));
    assert_eq!(size, data.len() as u64);
    let stored = cache.path_of(&sha).unwrap();
    assert_eq!(stored, work.path().join("cache/sha256").join(&sha));
    assert_eq!(std::fs::read(&stored).unwrap(), data);
    assert_eq!(cache.path_of(&sha.to_uppercase()), Some(stored.clone()));

    // A second import (even under another name) changes nothing and leaves no temp files.
    let copy = work.path().join("copy.deb");
    std::fs::copy(&file, &copy).unwrap();
    assert_eq!(cache.import(&copy).unwrap(), (sha.clone(), size));
    assert_eq!(
        dir_entries(&work.path().join("cache/sha256")),
        vec![sha.clone()]
    );
    assert!(dir_entries(&work.path().join("cache/tmp")).is_empty());

    let listed = cache.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha256, sha);
    assert_eq!(listed[0].size, size);
    assert_eq!(
        listed[0].name.as_deref(),
        Some("busybox-static_1.35_arm64.deb")
    );
}

#[test]
fn list_is_sorted_by_name() {
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(&work.path().join("c")).unwrap();
    for (name, body) in [("zeta.deb", "z"), ("alpha.deb", "a"), ("mid.deb", "m")] {
        let path = work.path().join(name);
        std::fs::write(&path, body).unwrap();
        cache.import(&path).unwrap();
    }
    let names: Vec<Option<String>> = cache.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            Some("alpha.deb".into()),
            Some("mid.deb".into()),
            Some("zeta.deb".into())
        ]
    );
}

#[test]
fn verify_reports_tampered_entries_and_repair_removes_them() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let cache = Cache::open(&root).unwrap();
    let good = work.path().join("good");
    let bad = work.path().join("bad");
    std::fs::write(&good, "good bytes").unwrap();
    std::fs::write(&bad, "original bytes").unwrap();
    let (good_sha, _) = cache.import(&good).unwrap();
    let (bad_sha, _) = cache.import(&bad).unwrap();
    assert!(cache.verify(false).unwrap().is_empty());

    std::fs::write(root.join("sha256").join(&bad_sha), "tampered bytes").unwrap();
    std::fs::write(root.join("sha256/not-a-hash"), "junk").unwrap();
    let mut expected = vec![bad_sha.clone(), "not-a-hash".to_owned()];
    expected.sort();
    assert_eq!(cache.verify(false).unwrap(), expected);
    // Without repair nothing is removed.
    assert!(root.join("sha256").join(&bad_sha).exists());

    assert_eq!(cache.verify(true).unwrap(), expected);
    assert!(cache.path_of(&bad_sha).is_none());
    assert!(!root.join("names").join(&bad_sha).exists());
    assert!(cache.path_of(&good_sha).is_some());
    assert!(cache.verify(false).unwrap().is_empty());
}

#[test]
fn require_names_the_artifact_and_both_ways_to_get_it() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let cache = Cache::open(&root).unwrap();
    let sha = "ab".repeat(32);
    let err = cache
        .require("linux-image-6.1.0-28-arm64_6.1.119-1_arm64.deb", &sha)
        .unwrap_err();
    assert!(matches!(err, CacheError::Missing { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "artifact `linux-image-6.1.0-28-arm64_6.1.119-1_arm64.deb` (sha256 {sha}) is not in the cache at {}; \
             download it with `pideploy fetch`, or, offline, add a copy you have with `pideploy cache import FILE`",
            root.display()
        )
    );

    let file = work.path().join("k.deb");
    std::fs::write(&file, "kernel").unwrap();
    let (have, _) = cache.import(&file).unwrap();
    assert_eq!(
        cache.require("k.deb", &have).unwrap(),
        root.join("sha256").join(&have)
    );

    assert!(matches!(
        cache.require("x", "not-hex"),
        Err(CacheError::InvalidSha256(_))
    ));
}

#[test]
fn import_of_a_missing_file_names_it() {
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(&work.path().join("cache")).unwrap();
    let err = cache
        .import(&work.path().join("nope.deb"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("opening ") && err.contains("nope.deb"),
        "{err}"
    );
}
