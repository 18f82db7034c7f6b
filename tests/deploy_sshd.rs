//! Deploys over a real OpenSSH sshd on 127.0.0.1 into a throwaway root (`--root`): switch, no-op,
//! and a connection cut in the middle of the copy, after which nothing half-sent is valid and a
//! re-run completes.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::sshd::Sshd;
use common::*;

fn valid(root: &Path) -> usize {
    fs::read_dir(root.join("pideploy/var/db/valid"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[test]
fn switch_over_sshd_survives_a_cut_copy() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (cache, store) = (w.join("cache"), w.join("store"));
    let cfg = w.join("pi.toml");
    fs::write(&cfg, "board = \"qemu-aarch64\"\nhostname = \"sshdpi\"\n").unwrap();
    lock_and_import(&cfg, &w.join("pideploy.lock"), &cache, &store);
    run(env_for(&mut pideploy(), &cache, &store)
        .arg("build")
        .arg("-c")
        .arg(&cfg));

    let sshd = Sshd::start();
    let root = w.join("target");
    fs::create_dir(&root).unwrap();
    let switch = || {
        let mut c = pideploy();
        env_for(&mut c, &cache, &store)
            .args(["switch", "-c"])
            .arg(&cfg)
            .args(["--target", &format!("root@127.0.0.1:{}", sshd.port), "-i"])
            .arg(&sshd.client_key)
            .arg("--known-hosts")
            .arg(&sshd.known_hosts)
            .arg("--root")
            .arg(&root);
        c
    };

    // Cut the connection as soon as the target starts receiving.
    let mut child = switch()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut cut = false;
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        let receiving = fs::read_dir(root.join("pideploy/store"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(".incoming"))
            })
            .unwrap_or(false);
        if receiving && !cut {
            cut = sshd.cut_sessions() > 0;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(cut, "the copy was interrupted");
    assert!(!out.status.success(), "a cut copy fails");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("pideploy: error"))
            .count(),
        1,
        "{err}"
    );
    assert_eq!(valid(&root), 0, "nothing half-sent is valid");
    assert!(
        !root.join("pideploy/var/profiles/system").exists(),
        "no generation"
    );

    // The re-run completes: generation 1, every path registered, no leftovers.
    let out = run(&mut switch());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation 1 is active and the default"),
        "{err}"
    );
    assert!(valid(&root) > 10);
    let leftovers: Vec<_> = fs::read_dir(root.join("pideploy/store"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".incoming"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // And again: nothing sent, nothing changed.
    let err = String::from_utf8_lossy(&run(&mut switch()).stderr).into_owned();
    assert!(
        err.contains("copied 0 store paths") && err.contains("nothing changed"),
        "{err}"
    );
}
