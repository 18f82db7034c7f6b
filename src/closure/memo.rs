//! Remembers which store path an unpacking step produced, keyed by everything it read, so a rebuild
//! with the same inputs skips unpacking .debs again. It only saves time: the step is deterministic,
//! so running it would give the same path. A memo entry is used only while its path is valid.

use std::fs;
use std::path::PathBuf;

use pideploy_store::{LocalStore, StorePath};
use sha2::{Digest, Sha256};

fn dir(store: &LocalStore) -> PathBuf {
    store.root().join("var/db/memo")
}

/// Key of a step: its kind, pideploy's version and the inputs, hashed.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(concat!("pideploy-memo-v1 ", env!("CARGO_PKG_VERSION")).as_bytes());
    for p in parts {
        h.update([0]);
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Identity of this pideploy executable (device, inode, size, modification time), for memos of steps
/// whose result depends on much of the builder's code: a rebuilt binary misses them instead of
/// reusing what older code made. Unknown (no memo) if the executable cannot be looked at.
pub fn this_build() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(std::env::current_exe().ok()?).ok()?;
    Some(format!(
        "{} {} {} {}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// Remembered text under `key` (whose validity the caller checks).
pub fn get_text(store: &LocalStore, key: &str) -> Option<String> {
    fs::read_to_string(dir(store).join(key)).ok()
}

/// Records text under `key`, like [`put`].
pub fn put_text(store: &LocalStore, key: &str, text: &str) {
    let d = dir(store);
    if fs::create_dir_all(&d).is_err() {
        return;
    }
    let tmp = d.join(format!(".{key}.{}.tmp", std::process::id()));
    if fs::write(&tmp, text).is_ok() && fs::rename(&tmp, d.join(key)).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// The remembered path, if it is still valid.
pub fn get(store: &LocalStore, key: &str) -> Option<StorePath> {
    let text = fs::read_to_string(dir(store).join(key)).ok()?;
    let p = StorePath::parse(text.trim()).ok()?;
    store.is_valid(&p).then_some(p)
}

/// Records a result (temp + rename); failing to record only costs time later, so it is not an error.
pub fn put(store: &LocalStore, key: &str, p: &StorePath) {
    put_text(store, key, &p.base_name());
}
