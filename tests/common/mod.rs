//! Shared helpers of the integration tests: the pideploy binary, Debian arm64 inputs (through apt
//! only, cached under target/debian-arm64), and small process utilities.
#![allow(dead_code)]

pub mod guest;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An exclusive OS file lock, held while alive (closing the file releases it, also when a test
/// process dies). nextest runs every test in its own process, so in-process mutexes are not enough.
pub struct FileLock(std::fs::File);

/// Waits for the exclusive lock on `path` (created if missing).
// std's File::lock is newer than the crate's MSRV; only the tests use it.
#[allow(clippy::incompatible_msrv)]
pub fn file_lock(path: &Path) -> FileLock {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    f.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    FileLock(f)
}

/// Serialises the preparation of Debian inputs, shared by every test binary, across threads and
/// processes.
pub fn prep_lock() -> FileLock {
    let dir = debian_dir();
    std::fs::create_dir_all(&dir).unwrap();
    file_lock(&dir.join(".lock"))
}

/// The binary under test.
pub fn pideploy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pideploy"))
}

/// Repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Directory with Debian's arm64 Packages indexes and downloaded .debs (kept between runs).
pub fn debian_dir() -> PathBuf {
    std::env::var_os("PIDEPLOY_TEST_DEBIAN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/debian-arm64"))
}

/// Exports apt's arm64 indexes (once per run).
pub fn debian_indexes() -> PathBuf {
    let _g = prep_lock();
    let dir = debian_dir().join("index");
    if !dir.join("debian.Packages").exists() {
        run(Command::new("sh")
            .arg(repo().join("qemu/debian-arm64.sh"))
            .arg("indexes")
            .arg(&dir));
    }
    dir
}

/// Environment for a pideploy run with its own cache and store.
pub fn env_for<'a>(cmd: &'a mut Command, cache: &Path, store: &Path) -> &'a mut Command {
    cmd.env("PIDEPLOY_CACHE_DIR", cache)
        .env("PIDEPLOY_STORE_DIR", store)
        .env_remove("SOURCE_DATE_EPOCH")
}

/// Locks `config` against the Debian indexes, gets the pinned .debs through apt (cached) and
/// imports them into `cache`.
pub fn lock_and_import(config: &Path, lock: &Path, cache: &Path, store: &Path) {
    let idx = debian_indexes();
    lock_and_import_with(
        config,
        lock,
        cache,
        store,
        &[
            ("debian", idx.join("debian.Packages")),
            ("debian-security", idx.join("debian-security.Packages")),
        ],
        &[],
    );
}

/// Like [`lock_and_import`] with explicit `--index SOURCE=FILE` pairs, and `local_debs` (packages
/// apt cannot supply, e.g. test fixtures) imported first so that only the rest goes to apt.
pub fn lock_and_import_with(
    config: &Path,
    lock: &Path,
    cache: &Path,
    store: &Path,
    indexes: &[(&str, PathBuf)],
    local_debs: &[PathBuf],
) {
    let mut cmd = pideploy();
    env_for(&mut cmd, cache, store)
        .arg("lock")
        .arg("--config")
        .arg(config)
        .arg("--lock")
        .arg(lock);
    for (source, file) in indexes {
        cmd.arg(format!("--index={source}={}", file.display()));
    }
    run(&mut cmd);
    if !local_debs.is_empty() {
        run(env_for(&mut pideploy(), cache, store)
            .args(["cache", "import"])
            .args(local_debs));
    }
    let debs = debian_dir().join("debs");
    // Held through the import too: another process's apt-get may be writing into `debs`.
    let _g = prep_lock();
    run(env_for(&mut Command::new("sh"), cache, store)
        .env("PIDEPLOY", env!("CARGO_BIN_EXE_pideploy"))
        .arg(repo().join("qemu/debian-arm64.sh"))
        .arg("debs")
        .arg(lock)
        .arg(&debs));
    let mut import = pideploy();
    env_for(&mut import, cache, store).args(["cache", "import"]);
    for e in std::fs::read_dir(&debs).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "deb") {
            import.arg(p);
        }
    }
    run(&mut import);
}

/// Locks `config` (lock, cache and store in `dir`), imports its packages and builds `image` with
/// `pideploy image --config --lock -o`. Returns the cache and store for later pideploy runs.
pub fn build_image_in(dir: &Path, config: &Path, image: &Path) -> (PathBuf, PathBuf) {
    let (lock, cache, store) = (
        dir.join("pideploy.lock"),
        dir.join("cache"),
        dir.join("store"),
    );
    lock_and_import(config, &lock, &cache, &store);
    run(env_for(&mut pideploy(), &cache, &store)
        .arg("image")
        .arg("--config")
        .arg(config)
        .arg("--lock")
        .arg(&lock)
        .arg("-o")
        .arg(image));
    (cache, store)
}

/// A fresh ed25519 key pair (OpenSSH's ssh-keygen); returns (private key path, public key text).
pub fn keypair(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@pideploy", "-f"])
        .arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

/// sha256 of a file, by the system's sha256sum (independent of pideploy's own hashing).
pub fn sha256sum(p: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(p));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Copies `len` bytes at `offset` of `image` into `dest` (dd, an independent reader).
pub fn extract(image: &Path, offset_sectors: u64, len_sectors: u64, dest: &Path) {
    run(Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", dest.display()))
        .args(["bs=512", "status=none", "conv=sparse"])
        .arg(format!("skip={offset_sectors}"))
        .arg(format!("count={len_sectors}")));
}

/// Partition (start, size) in sectors from `sfdisk --json`.
pub fn partitions(image: &Path) -> Vec<(u64, u64, String)> {
    let out = run(Command::new("sfdisk").arg("--json").arg(image));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Unpacks an image into `root` the way it sits on a card: the ext4 root partition's tree
/// (debugfs rdump, no mounting) with the boot partition's `config.txt` and `gen-1/` under
/// `boot/firmware` (mtools). A deploy target for `--target local:ROOT`.
pub fn unpack_image(image: &Path, work: &Path, root: &Path) {
    let parts = partitions(image);
    let (bootp, rootp) = (work.join("boot.part"), work.join("root.part"));
    extract(image, parts[0].0, parts[0].1, &bootp);
    extract(image, parts[1].0, parts[1].1, &rootp);
    std::fs::create_dir(root).unwrap();
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", root.display()))
        .arg(&rootp));
    std::fs::create_dir_all(root.join("boot/firmware")).unwrap();
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-n", "-i"])
        .arg(&bootp)
        .arg("::/config.txt")
        .arg("::/gen-1")
        .arg(root.join("boot/firmware")));
}
