//! A generation on trial that hangs resets into the committed one by itself (issue 11, point 2):
//! tryboot.txt arms the hardware watchdog (`kernel_watchdog_timeout`), nobody — no deployer, no
//! person — acts, and the next boot follows config.txt.
//!
//! The trial entries are made here as the agent makes them (a `gen-2/` beside `gen-1/`, a
//! tryboot.txt naming it with the watchdog line `boot_entry::tryboot_txt` writes), and the
//! harness boots with the tryboot flag set, as after `reboot "0 tryboot"`.
//! - A trial whose root never appears (an unbounded root wait, as with a missing storage driver)
//!   never opens `/dev/watchdog`: the firmware's watchdog resets it at the open timeout.
//! - A trial that boots but is never settled (its agent is gone, so nothing confirms or reverts
//!   it) is kicked by stage 2's feeder through QEMU's real i6300esb until `pideploy.trial_limit`,
//!   then no longer, and the device resets the guest.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use pideploy_qemu::{GuestEnd, Harness, HarnessOptions};

struct Built {
    _dir: tempfile::TempDir,
    w: std::path::PathBuf,
    image: std::path::PathBuf,
}

fn build() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().to_path_buf();
    let (_, public) = keypair(&w);
    let config = w.join("pi.toml");
    fs::write(
        &config,
        format!(
            "board = \"qemu-aarch64\"\nhostname = \"trial\"\n\n[[users]]\nname = \"pi\"\n\
             uid = 1000\nssh_authorized_keys = [\"{public}\"]\n"
        ),
    )
    .unwrap();
    let image = w.join("pi.img");
    build_image_in(&w, &config, &image);
    Built {
        _dir: dir,
        w,
        image,
    }
}

/// mtools on the image's boot partition in place (`IMAGE@@OFFSET`).
fn mtools(image: &Path, tool: &str, args: &[&str]) -> String {
    let start = partitions(image)[0].0;
    let out = run(Command::new(tool)
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@{}", image.display(), start * 512))
        .args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Puts generation 2 on trial: `gen-2/` is `gen-1/` with `edit` applied to its command line, and
/// tryboot.txt is config.txt naming gen-2 plus the watchdog line, as the agent writes it.
fn put_on_trial(b: &Built, watchdog_secs: u32, edit: impl Fn(&str) -> String) {
    let host = b.w.join("entry");
    fs::create_dir_all(&host).unwrap();
    mtools(
        &b.image,
        "mcopy",
        &[
            "-s",
            "-n",
            "::/gen-1",
            "::/config.txt",
            host.to_str().unwrap(),
        ],
    );
    fs::rename(host.join("gen-1"), host.join("gen-2")).unwrap();
    let cmdline = fs::read_to_string(host.join("gen-2/cmdline.txt")).unwrap();
    fs::write(
        host.join("gen-2/cmdline.txt"),
        edit(cmdline.trim_end()) + "\n",
    )
    .unwrap();
    let config = fs::read_to_string(host.join("config.txt")).unwrap();
    assert!(config.contains("os_prefix=gen-1/"), "{config}");
    let tryboot = config
        .replace("generation 1 of", "generation 2 of")
        .replace("os_prefix=gen-1/", "os_prefix=gen-2/")
        + &format!("kernel_watchdog_timeout={watchdog_secs}\n");
    // The same text the image builder's writer gives for a trial (the agent's is kept equal to it).
    let body_end = config.find("\n\n[all]\nos_prefix=").unwrap();
    let body = config[..body_end].split_once('\n').unwrap().1;
    assert_eq!(
        tryboot,
        pideploy::boot_entry::tryboot_txt(body, 2, "trial", "vmlinuz", true, watchdog_secs)
    );
    fs::write(host.join("tryboot.txt"), &tryboot).unwrap();
    mtools(
        &b.image,
        "mcopy",
        &["-s", "-n", host.join("gen-2").to_str().unwrap(), "::/"],
    );
    mtools(
        &b.image,
        "mcopy",
        &[
            "-n",
            host.join("tryboot.txt").to_str().unwrap(),
            "::/tryboot.txt",
        ],
    );
}

fn harness(b: &Built, scratch: &str) -> Harness {
    Harness::new(
        &b.image,
        b.w.join(scratch),
        HarnessOptions {
            timeout: Duration::from_secs(400),
            tryboot_first: true,
            max_boots: 2,
            ..Default::default()
        },
    )
}

/// Boot 2 follows config.txt (the committed generation 1) and comes up.
fn committed_boots(h: &mut Harness) {
    let mut vm = h.boot_once().unwrap();
    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(200))
        .unwrap();
    vm.kill();
    let log = fs::read_to_string(h.scratch_dir().join("boot-2/serial.log")).unwrap();
    assert!(!log.contains("watchdog.open_timeout"), "{log}");
}

#[test]
fn a_trial_whose_root_never_appears_is_reset_into_the_committed_generation() {
    let b = build();
    // root= names a partition that does not exist and the wait for it has no end: the trial
    // hangs in stage 1, before anything could open /dev/watchdog.
    put_on_trial(&b, 20, |c| {
        let words: Vec<String> = c
            .split_whitespace()
            .map(|w| match w.strip_prefix("root=") {
                Some(_) => "root=PARTUUID=0badc0de-02".to_string(),
                None => w.to_string(),
            })
            .collect();
        words.join(" ") + " pideploy.rootwait=100000"
    });
    let mut h = harness(&b, "scratch");
    let vm = h.boot_once().unwrap();
    let began = Instant::now();
    let rec = h.finish_boot(vm).unwrap().clone();
    let took = began.elapsed();
    let log = fs::read_to_string(&rec.serial_log).unwrap();
    assert_eq!(rec.selection.config_file, "tryboot.txt");
    assert_eq!(rec.selection.os_prefix, "gen-2/");
    assert_eq!(rec.exit, GuestEnd::WatchdogReset, "{log}");
    assert!(
        log.contains("watchdog.open_timeout=20") && log.contains("pideploy: stage 1"),
        "{log}"
    );
    assert!(!log.contains("pideploy: watchdog: opened"), "{log}");
    assert!(
        took >= Duration::from_secs(19) && took < Duration::from_secs(40),
        "reset after {took:?}, the watchdog time is 20 s"
    );
    assert!(!h.tryboot_next(), "a reset clears the tryboot flag");

    let next = h.select().unwrap();
    assert_eq!(
        (next.config_file.as_str(), next.os_prefix.as_str()),
        ("config.txt", "gen-1/")
    );
    committed_boots(&mut h);
}

/// Writes `content` to `path` on the image's root partition (debugfs, written back in place).
fn write_root_file(b: &Built, dir: &str, name: &str, content: &str) {
    let parts = partitions(&b.image);
    let (start, len) = (parts[1].0, parts[1].1);
    let part = b.w.join("root.part");
    extract(&b.image, start, len, &part);
    let local = b.w.join(name);
    fs::write(&local, content).unwrap();
    let cmds = b.w.join("debugfs.cmds");
    fs::write(
        &cmds,
        format!("cd {dir}\nwrite {} {name}\n", local.display()),
    )
    .unwrap();
    run(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&cmds)
        .arg(&part));
    run(Command::new("dd")
        .arg(format!("if={}", part.display()))
        .arg(format!("of={}", b.image.display()))
        .args(["bs=512", "conv=notrunc", "status=none"])
        .arg(format!("seek={start}")));
}

#[test]
fn a_trial_nobody_settles_is_kicked_until_its_limit_then_reset_by_the_watchdog() {
    let b = build();
    // Boots fine, but is never confirmed: the pending record names an agent that is gone, so no
    // waiter runs. The feeder kicks the watchdog for 90 s, longer than QEMU's i6300esb lets an
    // unkicked guest live (Linux's default heartbeat, 30 s a stage), then stops.
    put_on_trial(&b, 60, |c| format!("{c} pideploy.trial_limit=90"));
    write_root_file(
        &b,
        "/pideploy/var",
        "pending",
        "generation 2\nkind tryboot\ntop /pideploy/store/x-pideploy-system-trial\nprevious none\n\
         rootarg \ntimeout 30\ndeployer test\nagent /pideploy/var/agent/agent-gone.sh\n",
    );
    let mut h = harness(&b, "scratch");
    let rec = {
        let vm = h.boot_once().unwrap();
        h.finish_boot(vm).unwrap().clone()
    };
    let log = fs::read_to_string(&rec.serial_log).unwrap();
    assert_eq!(rec.selection.config_file, "tryboot.txt");
    assert!(log.contains("watchdog.open_timeout=60"), "{log}");
    assert!(
        log.contains("PIDEPLOY-READY"),
        "the trial itself boots: {log}"
    );
    assert!(
        log.contains("pideploy: watchdog: opened /dev/watchdog"),
        "{log}"
    );
    assert!(
        log.contains("the trial is not settled after 90s"),
        "kicked for 90 s without a reset: {log}"
    );
    assert_eq!(rec.exit, GuestEnd::WatchdogReset, "{log}");
    let next = h.select().unwrap();
    assert_eq!(
        (next.config_file.as_str(), next.os_prefix.as_str()),
        ("config.txt", "gen-1/")
    );
    committed_boots(&mut h);
}
