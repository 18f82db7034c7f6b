//! Resolve, fetch and build against a local apt repository: the test lays out the qemu-aarch64
//! board's real Debian arm64 packages (got through apt) and their index stanzas under a directory,
//! serves it on 127.0.0.1, and points a copy of the board's `[[apt]]` sources at it. Then
//! `pideploy lock` runs online, `pideploy fetch` downloads and verifies every .deb into an empty
//! cache, and two builds from different places give the same toplevel. A tampered .deb on the
//! server is refused without touching the cache, and `cache verify` finds a corrupted entry.
//! The archive is signed as Debian signs its own (an `InRelease` made by gpg, with a key the test
//! generates): a lock from an archive whose signature, key, dates or index hashes are wrong is
//! refused with one line and writes nothing.

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use http::Server;

const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeKqgZ6nzD3GvLODloVqhQFmOhfC5hqU84VknglD7Yr fetch@pideploy";

/// The archive the stock board downloads from; the local copy replaces this prefix.
const UPSTREAM: &str = "http://deb.debian.org/";

fn config_text() -> String {
    format!(
        r#"board = "qemu-aarch64"
hostname = "fetchpi"

[[users]]
name = "alice"
uid = 1001
ssh_authorized_keys = ["{PUBLIC_KEY}"]
"#
    )
}

/// One package of the lock, read with `toml` (not pideploy's own lock parser).
#[derive(Debug, Clone)]
struct Pinned {
    name: String,
    version: String,
    architecture: String,
    source: String,
    url: String,
    filename: String,
    sha256: String,
}

fn pinned(lock: &Path) -> Vec<Pinned> {
    let v: toml::Value = toml::from_str(&fs::read_to_string(lock).unwrap()).unwrap();
    let s = |p: &toml::Value, k: &str| p[k].as_str().unwrap().to_string();
    v["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Pinned {
            name: s(p, "name"),
            version: s(p, "version"),
            architecture: s(p, "architecture"),
            source: s(p, "source"),
            url: s(p, "url"),
            filename: s(p, "filename"),
            sha256: s(p, "sha256"),
        })
        .collect()
}

/// A served repository and what the test needs to drive pideploy against it.
struct Fixture {
    work: tempfile::TempDir,
    server: Server,
    /// Directory the server serves.
    www: PathBuf,
    /// Board file whose `[[apt]]` urls point at the server.
    board: PathBuf,
    /// Host config; `pideploy.lock` goes next to it.
    config: PathBuf,
    /// The lock made from apt's own lists, before any local serving.
    offline_lock: PathBuf,
    /// Each pinned package and the .deb apt downloaded for it.
    packages: Vec<(Pinned, PathBuf)>,
}

impl Fixture {
    fn w(&self) -> &Path {
        self.work.path()
    }

    fn lock(&self) -> PathBuf {
        self.config.with_file_name("pideploy.lock")
    }

    /// A pideploy command with this fixture's cache and a store under the work dir.
    fn pideploy(&self, cache: &Path) -> Command {
        let mut cmd = pideploy();
        env_for(&mut cmd, cache, &self.w().join("store"));
        cmd
    }

    /// Served path (as requested over HTTP) of a pinned package.
    fn served_path(&self, p: &Pinned) -> String {
        format!("/{}/{}", p.source, p.filename)
    }
}

/// Builds the local archive from the Debian inputs and starts serving it.
fn fixture() -> Fixture {
    // Under target/ so the .debs can be hard-linked rather than copied.
    let scratch = repo().join("target/test-scratch");
    fs::create_dir_all(&scratch).unwrap();
    let work = tempfile::Builder::new()
        .prefix("fetch-build-")
        .tempdir_in(&scratch)
        .unwrap();
    let w = work.path().to_path_buf();
    let config = w.join("conf/pi.toml");
    fs::create_dir_all(config.parent().unwrap()).unwrap();
    fs::write(&config, config_text()).unwrap();

    // Which .debs the board needs: lock once from apt's lists, then get them through apt.
    let idx = debian_indexes();
    let offline_lock = w.join("offline.lock");
    run(
        env_for(&mut pideploy(), &w.join("unused-cache"), &w.join("store"))
            .arg("lock")
            .arg("-c")
            .arg(&config)
            .arg("--lock")
            .arg(&offline_lock)
            .arg(format!(
                "--index=debian={}",
                idx.join("debian.Packages").display()
            ))
            .arg(format!(
                "--index=debian-security={}",
                idx.join("debian-security.Packages").display()
            )),
    );
    let debs = debian_dir().join("debs");
    {
        let _g = prep_lock();
        run(Command::new("sh")
            .env("PIDEPLOY", env!("CARGO_BIN_EXE_pideploy"))
            .arg(repo().join("qemu/debian-arm64.sh"))
            .arg("debs")
            .arg(&offline_lock)
            .arg(&debs));
    }
    let packages: Vec<(Pinned, PathBuf)> = pinned(&offline_lock)
        .into_iter()
        .map(|p| {
            // apt-get download's naming: NAME_VERSION_ARCH.deb, ':' escaped as %3a.
            let file = debs.join(format!(
                "{}_{}_{}.deb",
                p.name,
                p.version.replace(':', "%3a"),
                p.architecture
            ));
            assert_eq!(
                sha256sum(&file),
                p.sha256,
                "{} from apt does not match the lock",
                file.display()
            );
            (p, file)
        })
        .collect();
    // Today the kernel comes from debian-security; after a point release it may not, and the
    // security suite is then served with an empty index (which lock must still read).
    assert!(
        packages.iter().any(|(p, _)| p.source == "debian"),
        "nothing pinned from the debian source"
    );
    for (p, _) in &packages {
        assert!(
            ["debian", "debian-security"].contains(&p.source.as_str()),
            "{p:?}"
        );
    }

    // The archive: pool files at their Filename paths, and an index holding exactly their stanzas.
    let www = w.join("www");
    for (p, deb) in &packages {
        let dest = www.join(&p.source).join(&p.filename);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if fs::hard_link(deb, &dest).is_err() {
            fs::copy(deb, &dest).unwrap();
        }
    }
    for (source, suite, index) in [
        ("debian", "bookworm", "debian.Packages"),
        (
            "debian-security",
            "bookworm-security",
            "debian-security.Packages",
        ),
    ] {
        let wanted: Vec<&Pinned> = packages
            .iter()
            .map(|(p, _)| p)
            .filter(|p| p.source == source)
            .collect();
        let text = stanzas_of(&idx.join(index), &wanted);
        let dir = www.join(format!("{source}/dists/{suite}/main/binary-arm64"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("Packages"), text).unwrap();
        run(Command::new("xz")
            .args(["-T1", "-f"])
            .arg(dir.join("Packages")));
        assert!(dir.join("Packages.xz").is_file());
    }
    let gpg = Gpg::new(&w.join("gnupg"), None);
    for suite in [
        "debian/dists/bookworm",
        "debian-security/dists/bookworm-security",
    ] {
        sign_suite(&gpg, &www.join(suite), None);
    }
    let server = Server::start(&www);

    let stock = fs::read_to_string(repo().join("boards/qemu-aarch64.toml")).unwrap();
    let local = format!("{}/", server.url());
    for src in ["debian", "debian-security"] {
        assert!(
            stock.contains(&format!("url = \"{UPSTREAM}{src}\"\n")),
            "boards/qemu-aarch64.toml no longer has the {src} source this test rewrites"
        );
    }
    // The board's keyring is the test's key, in a file beside the board (relative paths are).
    let board = w.join("conf/qemu-local.toml");
    assert_eq!(stock.matches("keyring = \"debian.asc\"").count(), 2);
    let local_board = stock
        .replace(UPSTREAM, &local)
        .replace("keyring = \"debian.asc\"", "keyring = \"archive.asc\"");
    fs::write(&board, local_board).unwrap();
    fs::write(w.join("conf/archive.asc"), gpg.public_key()).unwrap();

    Fixture {
        work,
        server,
        www,
        board,
        config,
        offline_lock,
        packages,
    }
}

/// A throwaway gpg home with one ed25519 signing key (gpg, the tool Debian signs with, makes the
/// signatures pideploy checks). With `faked`, gpg believes it is that time (key and signatures
/// made then).
struct Gpg {
    home: PathBuf,
    faked: Option<String>,
}

impl Gpg {
    fn new(home: &Path, faked: Option<(&str, &str)>) -> Gpg {
        fs::create_dir_all(home).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(home, fs::Permissions::from_mode(0o700)).unwrap();
        let g = Gpg {
            home: home.to_path_buf(),
            faked: faked.map(|(t, _)| t.to_string()),
        };
        let expire = faked.map_or("never", |(_, e)| e);
        run(g
            .cmd()
            .args([
                "--passphrase",
                "",
                "--quick-gen-key",
                "pideploy test archive",
            ])
            .args(["ed25519", "sign", expire]));
        g
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &self.home).args([
            "--batch",
            "--yes",
            "--quiet",
            "--pinentry-mode",
            "loopback",
        ]);
        if let Some(t) = &self.faked {
            c.arg(format!("--faked-system-time={t}!"));
        }
        c
    }

    fn public_key(&self) -> Vec<u8> {
        run(self.cmd().args(["--armor", "--export"])).stdout
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // Its agent would outlive the test.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// Writes `DIR/Release` for the indexes under DIR (as Debian's dak writes it: fields, then the
/// SHA256 list) and signs it as `InRelease`. `extra` adds fields (e.g. `Valid-Until`).
fn sign_suite(gpg: &Gpg, dir: &Path, extra: Option<&str>) {
    let date = String::from_utf8(
        run(Command::new("date")
            .env("LC_ALL", "C")
            .args(["-u", "+%a, %d %b %Y %H:%M:%S UTC"]))
        .stdout,
    )
    .unwrap();
    let mut text = format!(
        "Origin: pideploy-test\nSuite: {0}\nCodename: {0}\nDate: {1}\n{2}SHA256:\n",
        dir.file_name().unwrap().to_str().unwrap(),
        date.trim(),
        extra.unwrap_or("")
    );
    let rel = "main/binary-arm64/Packages.xz";
    let bytes = fs::read(dir.join(rel)).unwrap();
    text.push_str(&format!(" {} {} {rel}\n", sha256_hex(&bytes), bytes.len()));
    fs::write(dir.join("Release"), text).unwrap();
    let _ = fs::remove_file(dir.join("InRelease"));
    run(gpg
        .cmd()
        .arg("--clearsign")
        .arg("--output")
        .arg(dir.join("InRelease"))
        .arg(dir.join("Release")));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The index paragraphs (verbatim from apt's list) of exactly `wanted`, each checked against the lock.
fn stanzas_of(index: &Path, wanted: &[&Pinned]) -> String {
    let text = fs::read_to_string(index).unwrap();
    let mut found: BTreeMap<&str, &str> = BTreeMap::new();
    for para in text.split("\n\n") {
        let field = |k: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(": ")))
                .unwrap_or("")
        };
        let hit = wanted.iter().find(|p| {
            field("Package") == p.name
                && field("Version") == p.version
                && field("Architecture") == p.architecture
        });
        if let Some(p) = hit {
            assert_eq!(field("Filename"), p.filename, "{}", p.name);
            assert_eq!(field("SHA256"), p.sha256, "{}", p.name);
            assert!(
                found.insert(&p.name, para.trim_matches('\n')).is_none(),
                "{} twice in {}",
                p.name,
                index.display()
            );
        }
    }
    assert_eq!(
        found.len(),
        wanted.len(),
        "not every pinned package found in {}",
        index.display()
    );
    let mut out = String::new();
    for para in found.values() {
        out.push_str(para);
        out.push_str("\n\n");
    }
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every file under `dir` with its sha256 (to see that a failed command changed nothing).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), sha256sum(&p));
            }
        }
    }
    out
}

/// Flips the bits of one byte in the middle of a file (replacing the file, so a hard link's
/// other names keep the original bytes).
fn flip_byte(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::remove_file(file).unwrap();
    fs::write(file, bytes).unwrap();
}

/// Online lock against the fixture's server; returns the lock text.
fn lock_online(f: &Fixture) -> String {
    run(f
        .pideploy(&f.w().join("unused-cache"))
        .arg("lock")
        .arg("-c")
        .arg(&f.config)
        .arg("-b")
        .arg(&f.board));
    fs::read_to_string(f.lock()).unwrap()
}

#[test]
fn lock_online_fetch_into_empty_cache_and_build_twice_gives_one_toplevel() {
    let f = fixture();
    let w = f.w().to_path_buf();

    // lock, online: both indexes come from the local server, and the result is what apt's own
    // lists gave (only the download base differs).
    let online = lock_online(&f);
    for idx in [
        "/debian/dists/bookworm/main/binary-arm64/Packages.xz",
        "/debian-security/dists/bookworm-security/main/binary-arm64/Packages.xz",
    ] {
        assert_eq!(f.server.served(idx), 1, "{idx} not downloaded once");
    }
    let expected = fs::read_to_string(&f.offline_lock)
        .unwrap()
        .replace(UPSTREAM, &format!("{}/", f.server.url()));
    assert_eq!(online, expected, "online lock differs from the offline one");
    for p in pinned(&f.lock()) {
        assert_eq!(p.url, format!("{}{}", f.server.url(), f.served_path(&p)));
    }

    // fetch into an empty cache: every .deb downloaded once, stored under its verified sha256.
    let cache = w.join("cache");
    assert!(!cache.exists());
    let before = f.server.requests().len();
    run(f
        .pideploy(&cache)
        .arg("fetch")
        .arg("-c")
        .arg(&f.config)
        .arg("-b")
        .arg(&f.board));
    let fetched = &f.server.requests()[before..];
    assert_eq!(fetched.len(), f.packages.len(), "{fetched:#?}");
    for (p, _) in &f.packages {
        assert_eq!(
            f.server.served(&f.served_path(p)),
            1,
            "{} not fetched",
            p.name
        );
        let blob = cache.join("sha256").join(&p.sha256);
        assert_eq!(sha256sum(&blob), p.sha256, "{} cached wrongly", p.name);
    }
    let listed: serde_json::Value =
        serde_json::from_slice(&run(f.pideploy(&cache).args(["cache", "list", "--json"])).stdout)
            .unwrap();
    let listed: BTreeSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sha256"].as_str().unwrap())
        .collect();
    let pinned_shas: BTreeSet<&str> = f.packages.iter().map(|(p, _)| p.sha256.as_str()).collect();
    assert_eq!(listed, pinned_shas);
    // Complete now: nothing listed as missing, and fetching again downloads nothing.
    let list = run(f
        .pideploy(&cache)
        .args(["fetch", "--list", "-c"])
        .arg(&f.config)
        .arg("-b")
        .arg(&f.board));
    assert_eq!(stdout(&list), "");
    let before = f.server.requests().len();
    run(f
        .pideploy(&cache)
        .arg("fetch")
        .arg("-c")
        .arg(&f.config)
        .arg("-b")
        .arg(&f.board));
    assert_eq!(f.server.requests().len(), before);

    // build: config, lock and board copied to two places, run from two working directories with
    // relative paths and two stores, give one toplevel, without touching the network.
    let place_a = w.join("a");
    let place_b = w.join("b/deeper/conf");
    for place in [&place_a, &place_b] {
        fs::create_dir_all(place).unwrap();
        for file in [&f.config, &f.lock(), &f.board] {
            fs::copy(file, place.join(file.file_name().unwrap())).unwrap();
        }
    }
    let build = |cwd: &Path, rel: &str, store: &Path| {
        let mut cmd = pideploy();
        env_for(&mut cmd, &cache, store)
            .current_dir(cwd)
            .arg("build")
            .arg("-c")
            .arg(format!("{rel}pi.toml"))
            .arg("-b")
            .arg(format!("{rel}qemu-local.toml"));
        stdout(&run(&mut cmd)).trim().to_string()
    };
    let top_a = build(&place_a, "./", &w.join("store-a"));
    let top_b = build(&w.join("b"), "deeper/conf/", &w.join("store-b"));
    assert!(
        top_a.starts_with("/pideploy/store/") && top_a.ends_with("-pideploy-system-fetchpi"),
        "{top_a}"
    );
    assert_eq!(
        top_a, top_b,
        "same config + lock + board, different toplevel"
    );
    assert_eq!(f.server.requests().len(), before, "build must not download");
    // Both stores really hold it, with the same contents.
    let info = |store: &str| {
        let mut cmd = pideploy();
        env_for(&mut cmd, &cache, &w.join(store)).args(["path-info", "--json", &top_a]);
        let v: serde_json::Value = serde_json::from_slice(&run(&mut cmd).stdout).unwrap();
        v["nar_sha256"].as_str().unwrap().to_string()
    };
    assert_eq!(info("store-a"), info("store-b"));

    // cache verify: clean now; a corrupted entry is reported and makes it fail; --repair removes
    // it, and fetch gets it back from the server.
    run(f.pideploy(&cache).args(["cache", "verify"]));
    let (victim, _) = f
        .packages
        .iter()
        .min_by_key(|(p, d)| (fs::metadata(d).unwrap().len(), p.name.clone()))
        .unwrap();
    let blob = cache.join("sha256").join(&victim.sha256);
    flip_byte(&blob);
    let out = f
        .pideploy(&cache)
        .args(["cache", "verify"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "verify passed a corrupted cache");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains(&victim.sha256), "{said}");
    for (p, _) in &f.packages {
        if p.sha256 != victim.sha256 {
            assert!(!said.contains(&p.sha256), "good entry reported: {said}");
        }
    }
    let repair = f
        .pideploy(&cache)
        .args(["cache", "verify", "--repair"])
        .output()
        .unwrap();
    assert!(stdout(&repair).contains(&victim.sha256), "{repair:?}");
    assert!(!blob.exists(), "--repair left the corrupted entry");
    let before = f.server.requests().len();
    run(f
        .pideploy(&cache)
        .arg("fetch")
        .arg("-c")
        .arg(&f.config)
        .arg("-b")
        .arg(&f.board));
    assert_eq!(f.server.requests().len(), before + 1);
    assert_eq!(sha256sum(&blob), victim.sha256);
    run(f.pideploy(&cache).args(["cache", "verify"]));
}

#[test]
fn tampered_deb_on_the_server_is_refused_and_the_cache_stays_clean() {
    let f = fixture();
    lock_online(&f);
    let (victim, _) = f
        .packages
        .iter()
        .find(|(p, _)| p.name == "dropbear-bin")
        .expect("dropbear-bin pinned");
    let served = f.www.join(&victim.source).join(&victim.filename);
    flip_byte(&served);
    let bad_sha = sha256sum(&served);
    assert_ne!(bad_sha, victim.sha256);

    let cache = f.w().join("cache");
    let fetch = || {
        f.pideploy(&cache)
            .arg("fetch")
            .arg("-c")
            .arg(&f.config)
            .arg("-b")
            .arg(&f.board)
            .output()
            .unwrap()
    };
    let out = fetch();
    assert!(!out.status.success(), "fetch accepted a tampered .deb");
    let err = stderr(&out);
    let last = err.strip_suffix('\n').unwrap_or(&err);
    assert!(!last.contains('\n'), "stderr is not one line:\n{err}");
    assert!(last.starts_with("pideploy: error: "), "{err}");
    assert!(last.contains(&victim.sha256), "no expected sha256: {err}");
    assert!(last.contains(&bad_sha), "no actual sha256: {err}");
    assert!(last.contains(&f.served_path(victim)), "no url: {err}");
    assert_eq!(f.server.served(&f.served_path(victim)), 1);

    // Nothing unverified entered: the tampered file is absent, no temp file is left, and every
    // stored blob hashes to its name.
    assert!(!cache.join("sha256").join(&victim.sha256).exists());
    assert!(!cache.join("sha256").join(&bad_sha).exists());
    let snap = snapshot(&cache);
    for (rel, sha) in &snap {
        if rel.starts_with("sha256") {
            assert_eq!(rel.file_name().unwrap().to_str().unwrap(), sha);
        } else {
            assert!(rel.starts_with("names"), "stray file {}", rel.display());
        }
    }
    // Trying again fails the same way and leaves the cache exactly as it was.
    let again = fetch();
    assert!(!again.status.success());
    assert!(stderr(&again).contains(&bad_sha));
    assert_eq!(snapshot(&cache), snap, "a failed fetch changed the cache");
}

/// `pideploy lock` trusts an index only as far as a signature by the board's key vouches for it:
/// each broken link (signature, key, dates, hashes) is refused in one line and writes no lock;
/// `Release` + `Release.gpg` is accepted as apt accepts it.
#[test]
fn lock_refuses_what_no_trusted_signature_vouches_for() {
    let f = fixture();
    let good = lock_online(&f);
    let suite = f.www.join("debian/dists/bookworm");
    let inrelease = suite.join("InRelease");
    let signed = fs::read(&inrelease).unwrap();
    let refused = |case: &str, want: &[&str]| {
        let out = lock_with(&f, &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{case}: lock accepted it:\n{err}");
        let last = err.trim_end().lines().last().unwrap_or("");
        assert!(last.starts_with("pideploy: error: "), "{case}: {err}");
        assert_eq!(err.matches("error:").count(), 1, "{case}: {err}");
        for w in want {
            assert!(last.contains(w), "{case}: no {w:?} in: {last}");
        }
        assert_eq!(
            fs::read_to_string(f.lock()).unwrap(),
            good,
            "{case}: the lock changed"
        );
    };

    // A changed line of the signed text.
    let text = String::from_utf8(signed.clone()).unwrap();
    fs::write(
        &inrelease,
        text.replacen("Origin: pideploy-test", "Origin: pideploy-evil", 1),
    )
    .unwrap();
    refused(
        "altered InRelease",
        &["/debian/dists/bookworm/InRelease", "was altered"],
    );

    // Signed by a key the board does not list (another gpg key, good signature).
    let stranger = Gpg::new(&f.w().join("gnupg-stranger"), None);
    sign_suite(&stranger, &suite, None);
    refused("unknown key", &["does not trust", "--keyring"]);
    // ... which `--keyring SOURCE=FILE` accepts, for that source only.
    let key = f.w().join("stranger.asc");
    fs::write(&key, stranger.public_key()).unwrap();
    let out = lock_with(&f, &[format!("--keyring=debian={}", key.display())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(f.lock()).unwrap(), good);

    // An index that is not the one the Release lists.
    fs::write(&inrelease, &signed).unwrap();
    let index = suite.join("main/binary-arm64/Packages.xz");
    let original = fs::read(&index).unwrap();
    let mut other = original.clone();
    other.extend_from_slice(b"\0");
    fs::write(&index, &other).unwrap();
    refused("index size", &["main/binary-arm64/Packages.xz", "size is"]);
    let mut other = original.clone();
    let at = other.len() / 2;
    other[at] ^= 1;
    fs::write(&index, &other).unwrap();
    refused(
        "index digest",
        &[
            "main/binary-arm64/Packages.xz",
            "sha256 is",
            &sha256_hex(&other),
        ],
    );
    fs::write(&index, &original).unwrap();

    // A Release past its Valid-Until (a replayed old archive).
    let gpg = Gpg {
        home: f.w().join("gnupg"),
        faked: None,
    };
    sign_suite(
        &gpg,
        &suite,
        Some("Valid-Until: Thu, 01 Jan 2015 00:00:00 UTC\n"),
    );
    refused("stale", &["Valid-Until", "2015-01-01 00:00:00 UTC"]);
    // A key that expired (made and used in 2020, valid for a day): its signature does not count.
    let old = Gpg::new(&f.w().join("gnupg-2020"), Some(("20200101T000000", "1d")));
    sign_suite(&old, &suite, None);
    let old_key = f.w().join("old.asc");
    fs::write(&old_key, old.public_key()).unwrap();
    let out = lock_with(&f, &[format!("--keyring=debian={}", old_key.display())]);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("expired at 2020-01-02"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(f.lock()).unwrap(), good);

    // Unsigned: no InRelease, no Release.gpg.
    sign_suite(&gpg, &suite, None);
    fs::remove_file(&inrelease).unwrap();
    refused("unsigned", &["no InRelease and no Release.gpg"]);
    // Release + a detached Release.gpg, as older archives serve it: accepted, the same lock.
    run(gpg
        .cmd()
        .args(["--armor", "--detach-sign", "--output"])
        .arg(suite.join("Release.gpg"))
        .arg(suite.join("Release")));
    let out = lock_with(&f, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(f.lock()).unwrap(), good);
    // ... and a detached signature over other bytes is refused.
    let release = fs::read_to_string(suite.join("Release")).unwrap();
    fs::write(
        suite.join("Release"),
        release.replacen("pideploy-test", "pideploy-evil", 1),
    )
    .unwrap();
    refused(
        "altered Release",
        &["/debian/dists/bookworm/Release", "was altered"],
    );
}

fn lock_with(f: &Fixture, extra: &[String]) -> Output {
    f.pideploy(&f.w().join("unused-cache"))
        .arg("lock")
        .arg("-c")
        .arg(&f.config)
        .arg("-b")
        .arg(&f.board)
        .args(extra)
        .output()
        .unwrap()
}
