//! Faults in the copy step, at the protocol level: a stream cut part-way registers nothing and
//! leaves nothing behind; a leftover from a killed receiver is cleaned up; the re-run completes.

mod common;

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use common::*;
use pideploy_deploy::{self as deploy, AgentCall, TargetState};
use pideploy_store::{LocalStore, StorePath};
use pideploy_transport::{LocalTransport, Transport, TransportError};

/// A transport whose stdin ends after `limit` bytes, as if the connection died mid-transfer.
struct Cut {
    inner: LocalTransport,
    limit: u64,
}

struct Limited<'a> {
    r: &'a mut dyn Read,
    left: u64,
}
impl Read for Limited<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.left as usize);
        let k = self.r.read(&mut buf[..n])?;
        self.left -= k as u64;
        Ok(k)
    }
}

impl Transport for Cut {
    fn exec(
        &mut self,
        argv: &[String],
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<i32, TransportError> {
        let mut l = Limited {
            r: stdin,
            left: self.limit,
        };
        self.inner.exec(argv, &mut l, stdout, stderr)
    }
    fn describe(&self) -> String {
        "cut".into()
    }
}

fn valid(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("pideploy/var/db/valid"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn leftovers(root: &Path) -> Vec<String> {
    fs::read_dir(root.join("pideploy/store"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with(".incoming"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn cut_copy_registers_nothing_and_a_rerun_completes() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (cache, store_dir) = (w.join("cache"), w.join("store"));
    let cfg = w.join("pi.toml");
    fs::write(&cfg, "board = \"qemu-aarch64\"\nhostname = \"cutpi\"\n").unwrap();
    let lock = w.join("pideploy.lock");
    lock_and_import(&cfg, &lock, &cache, &store_dir);
    let out = run(env_for(&mut pideploy(), &cache, &store_dir)
        .arg("build")
        .arg("-c")
        .arg(&cfg));
    let top = StorePath::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let store = LocalStore::open(&store_dir).unwrap();
    let closure = store.closure(std::slice::from_ref(&top)).unwrap();

    let root = w.join("target");
    fs::create_dir(&root).unwrap();
    let call = AgentCall::plain(root.display().to_string());
    let mut local = LocalTransport::new();
    let state = deploy::query(&mut local, &call).unwrap();
    assert!(state.have.is_empty());

    // Cut after 1 MiB of a stream of many MiB: an error, nothing registered, no leftovers.
    let mut cut = Cut {
        inner: LocalTransport::new(),
        limit: 1 << 20,
    };
    let err = deploy::copy(&mut cut, &call, &store, &state, &closure).unwrap_err();
    assert!(err.to_string().contains("copying store paths"), "{err}");
    assert!(
        valid(&root).is_empty(),
        "nothing is valid after a cut stream"
    );
    assert!(
        leftovers(&root).is_empty(),
        "the receiver cleaned up: {:?}",
        leftovers(&root)
    );

    // A receiver killed outright leaves an .incoming dir (pid gone); the next copy removes it.
    let dead = root.join("pideploy/store/.incoming-999999999");
    fs::create_dir_all(dead.join("half-written")).unwrap();
    let state = deploy::query(&mut local, &call).unwrap();
    let report = deploy::copy(&mut local, &call, &store, &state, &closure).unwrap();
    assert_eq!(report.sent.len(), closure.len());
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    let mut want: Vec<String> = closure.iter().map(|p| p.base_name()).collect();
    want.sort();
    assert_eq!(valid(&root), want, "exactly the closure is valid");

    // Everything is there now: a second copy sends nothing.
    let state: TargetState = deploy::query(&mut local, &call).unwrap();
    let report = deploy::copy(&mut local, &call, &store, &state, &closure).unwrap();
    assert!(report.sent.is_empty());
    assert_eq!(report.skipped, closure.len());

    // A path whose contents do not match the listing sent with it is refused as a whole.
    let fresh = w.join("target2");
    fs::create_dir(&fresh).unwrap();
    let call2 = AgentCall::plain(fresh.display().to_string());
    let base = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-forged";
    let mut raw = Vec::new();
    {
        let mut tar = tar::Builder::new(&mut raw);
        let mut add = |name: &str, data: &[u8], mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, data).unwrap();
        };
        // The listing claims other contents than the file carries.
        let claimed = format!("f hello - {}", "0".repeat(64));
        add(
            &format!(".pideploy/{base}.listing"),
            claimed.as_bytes(),
            0o644,
        );
        add(&format!("{base}/hello"), b"forged\n", 0o444);
        add(
            &format!(".pideploy/reg/{base}"),
            format!("path {base}\n").as_bytes(),
            0o644,
        );
        tar.finish().unwrap();
    }
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&raw).unwrap();
    let stream = xz.finish().unwrap();
    let mut t = LocalTransport::new();
    let _ = deploy::query(&mut t, &call2).unwrap();
    let (mut out, mut errb) = (Vec::new(), Vec::new());
    let code = t
        .exec(
            &call2.argv("receive", &[]),
            &mut io::Cursor::new(stream),
            &mut out,
            &mut errb,
        )
        .unwrap();
    assert_ne!(code, 0);
    assert!(String::from_utf8_lossy(&errb).contains("does not match what was sent"));
    assert!(valid(&fresh).is_empty());
    assert!(!fresh.join("pideploy/store").join(base).exists());
    assert!(leftovers(&fresh).is_empty());

    // A registration that is a link (here to a root-only file) is refused, not followed or moved.
    let mut raw = Vec::new();
    {
        let mut tar = tar::Builder::new(&mut raw);
        use sha2::Digest;
        let listing = format!("f hello - {:x}", sha2::Sha256::digest(b"hello\n"));
        let mut h = tar::Header::new_gnu();
        h.set_size(listing.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(
            &mut h,
            format!(".pideploy/{base}.listing"),
            listing.as_bytes(),
        )
        .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o444);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{base}/hello"), &b"hello\n"[..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        tar.append_link(&mut h, format!(".pideploy/reg/{base}"), "/etc/shadow")
            .unwrap();
        tar.finish().unwrap();
    }
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&raw).unwrap();
    let (mut out, mut errb) = (Vec::new(), Vec::new());
    let code = t
        .exec(
            &call2.argv("receive", &[]),
            &mut io::Cursor::new(xz.finish().unwrap()),
            &mut out,
            &mut errb,
        )
        .unwrap();
    assert_ne!(code, 0, "{}", String::from_utf8_lossy(&out));
    assert!(
        String::from_utf8_lossy(&errb).contains("does not match what was sent"),
        "{}",
        String::from_utf8_lossy(&errb)
    );
    assert!(valid(&fresh).is_empty());
    assert!(!fresh.join("pideploy/store").join(base).exists());
    assert!(leftovers(&fresh).is_empty());
}

/// A tmpfs of a given size, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_target_disk_registers_nothing_and_says_so() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (cache, store_dir) = (w.join("cache"), w.join("store"));
    let cfg = w.join("pi.toml");
    fs::write(&cfg, "board = \"qemu-aarch64\"\nhostname = \"fullpi\"\n").unwrap();
    lock_and_import(&cfg, &w.join("pideploy.lock"), &cache, &store_dir);
    let out = run(env_for(&mut pideploy(), &cache, &store_dir)
        .arg("build")
        .arg("-c")
        .arg(&cfg));
    let top = StorePath::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let store = LocalStore::open(&store_dir).unwrap();
    let closure = store.closure(std::slice::from_ref(&top)).unwrap();

    // The target root is a 6 MiB filesystem: the closure (tens of MiB) cannot fit.
    let root = w.join("target");
    fs::create_dir(&root).unwrap();
    run(std::process::Command::new("mount").args([
        "-t",
        "tmpfs",
        "-o",
        "size=6m",
        "pideploy-test",
        root.to_str().unwrap(),
    ]));
    let disk = SmallDisk(root.clone());
    let call = AgentCall::plain(root.display().to_string());
    let mut local = LocalTransport::new();
    let state = deploy::query(&mut local, &call).unwrap();
    let err = deploy::copy(&mut local, &call, &store, &state, &closure)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the target's disk is full") && err.contains("MiB free under"),
        "{err}"
    );
    assert!(valid(&root).is_empty(), "nothing registered");
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));

    // With room, the same copy completes.
    run(std::process::Command::new("mount").args([
        "-o",
        "remount,size=1g",
        root.to_str().unwrap(),
    ]));
    let state = deploy::query(&mut local, &call).unwrap();
    let report = deploy::copy(&mut local, &call, &store, &state, &closure).unwrap();
    assert_eq!(report.sent.len(), closure.len());
    assert_eq!(valid(&root).len(), closure.len());
    drop(disk);
}
