//! Hostile inputs to the cache: non-regular files to import, a cached file that no longer
//! matches its sha256 name, and damaged lock files. Each is one error, never a hang or a panic.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pideploy_cache::{Cache, CacheError, LockFile};

/// Runs `f` on another thread and fails the test if it has not returned within `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("did not finish in time (reading without end?)")
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

#[test]
fn import_refuses_dev_zero_and_other_non_regular_files() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let fifo = work.path().join("pipe.deb");
    mkfifo(&fifo);
    for path in [
        Path::new("/dev/zero").to_path_buf(),
        fifo,
        work.path().to_path_buf(),
    ] {
        let root = root.clone();
        let shown = path.display().to_string();
        let err = within(10, move || Cache::open(&root).unwrap().import(&path)).unwrap_err();
        assert!(
            matches!(err, CacheError::NotRegular { .. }),
            "{shown}: {err}"
        );
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
    // Nothing half-imported was left behind.
    let cache = Cache::open(&root).unwrap();
    assert!(cache.list().unwrap().is_empty());
}

#[test]
fn a_cached_file_swapped_under_its_name_is_refused_on_use() {
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(&work.path().join("cache")).unwrap();
    let good = work.path().join("good.deb");
    std::fs::write(&good, b"the real package").unwrap();
    let (sha, _) = cache.import(&good).unwrap();

    let mut f = cache.open_verified("good", &sha).unwrap();
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut content).unwrap();
    assert_eq!(content, b"the real package");

    // Another file under the same name: a disk error, a bad copy, or a swap.
    let path = cache.path_of(&sha).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, b"something else entirely").unwrap();
    let err = cache.open_verified("good", &sha).unwrap_err();
    assert!(matches!(err, CacheError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("pideploy cache verify --repair"), "{msg}");
    assert!(msg.contains(&sha), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn lock_load_refuses_non_regular_and_huge_files() {
    let work = tempfile::tempdir().unwrap();
    let err = within(10, || LockFile::load(Path::new("/dev/zero"))).unwrap_err();
    assert!(matches!(err, CacheError::NotRegular { .. }), "{err}");
    let fifo = work.path().join("pideploy.lock");
    mkfifo(&fifo);
    let err = within(10, move || LockFile::load(&fifo)).unwrap_err();
    assert!(matches!(err, CacheError::NotRegular { .. }), "{err}");
    let big = work.path().join("big.lock");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(pideploy_cache::MAX_LOCK_BYTES + 10).unwrap();
    let err = LockFile::load(&big).unwrap_err();
    assert!(matches!(err, CacheError::TooLarge { .. }), "{err}");
}

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random edits to a valid lock file: parsing never panics, each error is one line, and each
/// input is handled quickly.
#[test]
fn mutated_lock_files_never_panic() {
    let good = format!(
        "version = 1\nboard = \"qemu-aarch64\"\nroots = [\"busybox-static\"]\n\n[[package]]\n\
         name = \"busybox-static\"\nversion = \"1:1.35.0-4+b3\"\narchitecture = \"arm64\"\n\
         source = \"debian\"\nurl = \"http://deb.debian.org/debian/pool/b.deb\"\n\
         filename = \"pool/b.deb\"\nsize = 123\nsha256 = \"{}\"\nrole = \"package\"\n",
        "a".repeat(64)
    );
    let path = Path::new("pideploy.lock");
    LockFile::from_toml_str(&good, path).unwrap();
    let alphabet = b"\"'=[]{}.,#\n \\0123456789abcxyz-_:ue";
    let mut rng = Rng(0x10C4);
    let mut ok = 0;
    for _ in 0..3000 {
        let mut bytes = good.clone().into_bytes();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            let c = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 => bytes[at] = c,
                1 => bytes.insert(at, c),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let start = Instant::now();
        match LockFile::from_toml_str(&text, path) {
            Ok(_) => ok += 1,
            Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
        }
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    assert!(ok > 0);
}
