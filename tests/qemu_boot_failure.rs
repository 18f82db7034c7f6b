//! A generation that cannot boot, on QEMU, with the rpi5 board's `pideploy.fail=reboot`: stage 2
//! restarts the machine after each failure (a halted Pi 5 would wait for its power button), counts
//! the failures on the root, and halts with a message at the third one in a row instead of looping
//! forever. A boot that works clears the count.
//!
//! The failure is real: the image gets a plain `/bin` directory, which activation refuses (pideploy
//! manages `/bin` as a link), so stage 2's `activate --boot` fails after `/` is writable.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use pideploy_qemu::{GuestEnd, Harness, HarnessOptions, RunEnd};

/// Runs a debugfs request against the root partition of `image` (written back in place).
fn debugfs_root(image: &Path, work: &Path, requests: &[&str]) -> String {
    let parts = partitions(image);
    let (start, len) = (parts[1].0, parts[1].1);
    let part = work.join("root.part");
    extract(image, start, len, &part);
    // debugfs takes one request per run.
    let mut out = String::new();
    for r in requests {
        let o = run(Command::new("debugfs")
            .arg("-w")
            .arg("-R")
            .arg(r)
            .arg(&part));
        out += &String::from_utf8_lossy(&o.stdout);
    }
    run(Command::new("dd")
        .arg(format!("if={}", part.display()))
        .arg(format!("of={}", image.display()))
        .args(["bs=512", "conv=notrunc,sparse", "status=none"])
        .arg(format!("seek={start}")));
    out
}

fn failed_boots(image: &Path, work: &Path) -> String {
    debugfs_root(image, work, &["cat /pideploy/var/failed-boots"])
        .trim()
        .to_string()
}

#[test]
fn a_generation_that_cannot_boot_restarts_then_halts_at_the_third_failure() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let (_, public) = keypair(w);
    let config = w.join("pi.toml");
    fs::write(
        &config,
        format!(
            "board = \"qemu-aarch64\"\nhostname = \"failing\"\n\n[[users]]\nname = \"pi\"\n\
             uid = 1000\nssh_authorized_keys = [\"{public}\"]\n"
        ),
    )
    .unwrap();
    let image = w.join("pi.img");
    build_image_in(w, &config, &image);
    // The image builder laid /bin down as activation makes it (a link into the running system);
    // a real directory there is what activation refuses to replace.
    assert!(debugfs_root(&image, w, &["stat /bin"]).contains("Type: symlink"));
    debugfs_root(&image, w, &["rm /bin", "mkdir /bin"]);
    assert!(debugfs_root(&image, w, &["stat /bin"]).contains("Type: directory"));

    let opts = |max_boots| HarnessOptions {
        timeout: Duration::from_secs(240),
        extra_append: Some("pideploy.fail=reboot".into()),
        max_boots,
        ..Default::default()
    };
    let mut h = Harness::new(&image, w.join("scratch"), opts(5));
    let outcome = h.run_to_end().unwrap();
    let logs: Vec<String> = outcome
        .boots
        .iter()
        .map(|b| fs::read_to_string(&b.serial_log).unwrap())
        .collect();
    let ends: Vec<&GuestEnd> = outcome.boots.iter().map(|b| &b.exit).collect();
    assert_eq!(
        ends,
        [
            &GuestEnd::Restart { command: None },
            &GuestEnd::Restart { command: None },
            &GuestEnd::PowerDown
        ],
        "{logs:#?}"
    );
    assert_eq!(outcome.end, RunEnd::PowerDown);
    for (i, log) in logs.iter().enumerate() {
        assert!(
            log.contains("PIDEPLOY-FAIL stage2: activation of"),
            "boot {}: {log}",
            i + 1
        );
        assert!(log.contains("is a real directory"), "boot {}: {log}", i + 1);
    }
    assert!(logs[0].contains("failed boot 1 of 3 in a row; restarting"));
    assert!(logs[1].contains("failed boot 2 of 3 in a row; restarting"));
    assert!(logs[2].contains("3 boots in a row failed; halting"));
    assert_eq!(failed_boots(&image, w), "3");

    // Repaired (as a person with a card reader would), the next boot works and clears the count.
    debugfs_root(&image, w, &["rmdir /bin"]);
    let mut h = Harness::new(&image, w.join("scratch2"), opts(1));
    let mut vm = h.boot_once().unwrap();
    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(180))
        .unwrap();
    vm.kill();
    let left = failed_boots(&image, w);
    assert!(
        left.is_empty(),
        "the count is gone after a good boot: {left:?}"
    );
}
