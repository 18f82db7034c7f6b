//! The whole harness on a real disk image: MBR + FAT32 boot partition made by sfdisk, mkfs.vfat
//! and mtools (independent of pideploy's own writer), read back through `pideploy_image`, booted
//! under QEMU across reboots, with the tryboot flag driven by the guest kernel's reboot syscall.
//!
//! Needs: qemu-system-arm, fdisk (sfdisk), dosfstools, mtools, dpkg, arm64 apt lists.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pideploy_qemu::{GuestEnd, Harness, HarnessOptions, RunEnd};

fn sh(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 96 MiB image: partition 1 (FAT32, 64 MiB at 1 MiB) holding `files`, partition 2 empty.
fn make_image(dir: &Path, files: &[(&str, Vec<u8>)]) -> std::path::PathBuf {
    let image = dir.join("disk.img");
    fs::File::create(&image).unwrap().set_len(96 << 20).unwrap();
    let mut sfdisk = Command::new("sfdisk");
    sfdisk
        .arg("--no-reread")
        .arg("--no-tell-kernel")
        .arg(&image);
    sfdisk
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = sfdisk.spawn().expect("sfdisk (apt-get install fdisk)");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"label: dos\nlabel-id: 0x1234abcd\nstart=2048, size=131072, type=c\nstart=133120, type=83\n",
    )
    .unwrap();
    assert!(child.wait().unwrap().success());

    let fat = dir.join("boot.fat");
    fs::File::create(&fat).unwrap().set_len(64 << 20).unwrap();
    sh(Command::new("mkfs.vfat")
        .args(["-F", "32", "-n", "BOOTFS"])
        .arg(&fat));
    let src = dir.join("bootsrc");
    for (path, data) in files {
        let p = src.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }
    let mut mcopy = Command::new("mcopy");
    mcopy.arg("-s").arg("-i").arg(&fat);
    for entry in fs::read_dir(&src).unwrap() {
        mcopy.arg(entry.unwrap().path());
    }
    mcopy.arg("::/");
    sh(&mut mcopy);
    sh(Command::new("dd")
        .arg(format!("if={}", fat.display()))
        .arg(format!("of={}", image.display()))
        .args(["bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"]));
    image
}

fn stage_init(name: &str, then: &str) -> String {
    format!(
        "mount -t proc proc /proc\n\
         echo \"PIDEPLOY-STAGE initrd={name} cmdline=[$(cat /proc/cmdline)]\"\n\
         {then}\n\
         echo PIDEPLOY-FAIL: {name} did not leave\n\
         poweroff -f\n"
    )
}

#[test]
fn tryboot_flag_follows_the_guest_reboot_command() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = fs::read(common::kernel()).unwrap();
    // Boot "a" asks for a tryboot, the way `reboot '0 tryboot'` does on a Pi.
    let initrd_a = common::initramfs(
        &stage_init("a", "/bin/restart2"),
        &[("bin/restart2", common::restart2_elf("0 tryboot"))],
    );
    // Boot "b" reboots plainly: the next boot must be back on config.txt.
    let initrd_b = common::initramfs(&stage_init("b", "reboot -f"), &[]);
    let files = vec![
        (
            "config.txt",
            b"# normal boot\nkernel=/vmlinuz\nos_prefix=a/\ninitramfs initrd followkernel\n[pi4]\nos_prefix=wrong/\n[all]\n".to_vec(),
        ),
        // `include` is not followed by a Pi 5: were it, boot "b" would get no initramfs at all.
        (
            "tryboot.txt",
            b"kernel=/vmlinuz\n[pi5]\nos_prefix=b/\n[all]\ninitramfs initrd followkernel\ninclude common.txt\n".to_vec(),
        ),
        ("common.txt", b"initramfs missing-on-purpose followkernel\n".to_vec()),
        ("vmlinuz", kernel),
        ("a/initrd", initrd_a),
        ("a/cmdline.txt", b"console=serial0,115200 panic=-1 quiet stage=a\n".to_vec()),
        ("b/initrd", initrd_b),
        ("b/cmdline.txt", b"console=serial0,115200 panic=-1 quiet stage=b\n".to_vec()),
    ];
    let image = make_image(dir.path(), &files);

    let mut harness = Harness::new(
        &image,
        dir.path().join("scratch"),
        HarnessOptions {
            timeout: Duration::from_secs(60),
            max_boots: 3,
            ..Default::default()
        },
    );
    let outcome = harness.run_to_end().expect("harness run");
    assert_eq!(outcome.end, RunEnd::TooManyBoots);
    assert_eq!(outcome.exit_code(), 2);
    assert_eq!(outcome.boots.len(), 3);

    let summary: Vec<(bool, &str, &str, GuestEnd)> = outcome
        .boots
        .iter()
        .map(|b| {
            (
                b.tryboot,
                b.selection.config_file.as_str(),
                b.selection.os_prefix.as_str(),
                b.exit.clone(),
            )
        })
        .collect();
    let tryboot_restart = GuestEnd::Restart {
        command: Some("0 tryboot".into()),
    };
    assert_eq!(
        summary,
        vec![
            (false, "config.txt", "a/", tryboot_restart.clone()),
            (
                true,
                "tryboot.txt",
                "b/",
                GuestEnd::Restart { command: None }
            ),
            (false, "config.txt", "a/", tryboot_restart),
        ]
    );
    for (boot, stage) in outcome.boots.iter().zip(["a", "b", "a"]) {
        let log = fs::read_to_string(&boot.serial_log).unwrap();
        let line = log
            .lines()
            .find(|l| l.starts_with("PIDEPLOY-STAGE"))
            .unwrap_or_else(|| panic!("boot {} printed no stage line:\n{log}", boot.boot));
        assert!(line.contains(&format!("initrd={stage} ")), "{line}");
        assert!(line.contains(&format!("stage={stage}")), "{line}");
        // serial0 became the virt board's UART, or nothing would have been printed at all.
        assert!(line.contains("console=ttyAMA0,115200"), "{line}");
        assert!(!log.contains("PIDEPLOY-FAIL"), "{log}");
    }
    assert_eq!(
        outcome.boots[0].selection.initramfs.as_deref(),
        Some("a/initrd")
    );
    assert_eq!(
        outcome.boots[1].selection.initramfs.as_deref(),
        Some("b/initrd")
    );
    assert_eq!(outcome.boots[1].selection.kernel, "vmlinuz");
}

#[test]
fn tryboot_first_then_power_down_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = fs::read(common::kernel()).unwrap();
    let initrd = common::initramfs(&stage_init("t", "poweroff -f"), &[]);
    let files = vec![
        ("config.txt", b"kernel=missing-on-purpose.img\n".to_vec()),
        (
            "tryboot.txt",
            b"kernel=vmlinuz\ninitramfs initrd-t followkernel\ncmdline=cmd-try.txt\n".to_vec(),
        ),
        ("vmlinuz", kernel),
        ("cmd-try.txt", b"console=ttyAMA0 panic=-1 quiet\n".to_vec()),
        ("initrd-t", initrd),
    ];
    let image = make_image(dir.path(), &files);

    let mut harness = Harness::new(
        &image,
        dir.path().join("scratch"),
        HarnessOptions {
            tryboot_first: true,
            ..Default::default()
        },
    );
    // config.txt names a kernel that does not exist; only the tryboot boot can work.
    let err = harness.select().map(|_| ()).err();
    assert!(err.is_none(), "tryboot selection works: {err:?}");
    let outcome = harness.run_to_end().expect("harness run");
    assert_eq!(outcome.end, RunEnd::PowerDown);
    assert_eq!(outcome.exit_code(), 0);
    assert_eq!(outcome.boots.len(), 1);
    assert!(outcome.boots[0].tryboot);
    assert!(!harness.tryboot_next(), "the one-shot flag was consumed");
    let err = harness.select().unwrap_err().to_string();
    assert!(err.contains("missing-on-purpose.img"), "{err}");
}

#[test]
fn binary_boots_an_image_and_exits_with_the_guest_status() {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        ("config.txt", b"auto_initramfs=1\n".to_vec()),
        ("kernel_2712.img", fs::read(common::kernel()).unwrap()),
        // auto_initramfs: kernel_2712.img -> initramfs_2712.
        (
            "initramfs_2712",
            common::initramfs(&stage_init("bin", "poweroff -f"), &[]),
        ),
        ("cmdline.txt", b"console=ttyAMA0 panic=-1 quiet\n".to_vec()),
    ];
    let image = make_image(dir.path(), &files);
    let out = Command::new(env!("CARGO_BIN_EXE_pideploy-qemu"))
        .arg(&image)
        .args(["--timeout", "60", "--scratch"])
        .arg(dir.path().join("scratch"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("initramfs=initramfs_2712"), "{stderr}");
    assert!(stderr.contains("PowerDown"), "{stderr}");
    let log = fs::read_to_string(dir.path().join("scratch/boot-1/serial.log")).unwrap();
    assert!(log.contains("PIDEPLOY-STAGE initrd=bin"), "{log}");
}

#[test]
fn qemu_refusing_to_start_ends_the_run_with_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        ("config.txt", b"kernel=vmlinuz\n".to_vec()),
        ("vmlinuz", fs::read(common::kernel()).unwrap()),
        ("cmdline.txt", b"console=ttyAMA0 panic=-1 quiet\n".to_vec()),
    ];
    let image = make_image(dir.path(), &files);
    // More memory than the virt board can address: a real QEMU refuses this at start-up, the way
    // it refuses a missing option ROM or an unknown device.
    let mut harness = Harness::new(
        &image,
        dir.path().join("scratch"),
        HarnessOptions {
            memory_mb: u32::MAX,
            max_boots: 4,
            ..Default::default()
        },
    );
    let outcome = harness.run_to_end().expect("harness run");
    assert_eq!(outcome.end, RunEnd::QemuFailed);
    assert_eq!(outcome.exit_code(), 3);
    assert_eq!(outcome.boots.len(), 1, "a failing QEMU is not restarted");
    match &outcome.boots[0].exit {
        GuestEnd::QemuFailed { status, stderr } => {
            assert!(status.contains('1'), "{status}");
            assert!(stderr.contains("qemu-system-aarch64:"), "{stderr}");
        }
        other => panic!("expected QemuFailed, got {other:?}"),
    }
    let said = outcome.boots[0].exit.to_string();
    assert!(
        said.starts_with("QEMU failed (exit status: 1); QEMU said: qemu-system-aarch64:"),
        "{said}"
    );
}
