//! Really boots an aarch64 kernel under QEMU: Debian's arm64 kernel with a busybox initramfs.
//!
//! Needs `qemu-system-arm`, `dpkg`, and the arm64 architecture in apt
//! (`dpkg --add-architecture arm64 && apt-get update`); the packages are fetched once into
//! `target/test-debs/`. Every QEMU run has a hard 60 s limit.

mod common;

use std::fs;
use std::time::Duration;

use pideploy_qemu::{QemuError, Vm, VmConfig};

const LIMIT: Duration = Duration::from_secs(60);

fn vm_config(dir: &std::path::Path, init: &str) -> VmConfig {
    let initrd = dir.join("initrd.cpio");
    fs::write(&initrd, common::initramfs(init, &[])).unwrap();
    let disk = dir.join("disk.img");
    fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut cfg = VmConfig::new(disk, common::kernel(), dir.join("serial.log"));
    cfg.initrd = Some(initrd);
    cfg.append = "console=ttyAMA0 panic=-1 quiet".into();
    cfg.timeout = LIMIT;
    cfg
}

#[test]
fn boots_prints_marker_and_powers_off_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = vm_config(dir.path(), "echo PIDEPLOY-HELLO-$((6*7))\npoweroff -f\n");
    let mut vm = Vm::start(&cfg).expect("qemu starts");
    // The marker is computed by the guest shell, so it cannot come from the command line.
    vm.wait_for("PIDEPLOY-HELLO-42", LIMIT).expect("marker");
    let status = vm.wait_exit(LIMIT).expect("qemu exits");
    assert!(status.success(), "qemu exit status {status}");
    assert!(vm.serial_log().contains("reboot: Power down"));
}

#[test]
fn failure_marker_fails_fast_with_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    // Prints the failure marker, then would sit for a long time: the wait must not.
    let cfg = vm_config(
        dir.path(),
        "echo PIDEPLOY-FAIL: on purpose\nsleep 50\npoweroff -f\n",
    );
    let mut vm = Vm::start(&cfg).unwrap();
    let begin = std::time::Instant::now();
    let err = vm.wait_for("NEVER-PRINTED", LIMIT).unwrap_err();
    assert!(begin.elapsed() < Duration::from_secs(40));
    match &err {
        QemuError::GuestFailed { failure, tail, .. } => {
            assert_eq!(failure, "PIDEPLOY-FAIL");
            assert!(tail.contains("on purpose"), "{tail}");
        }
        other => panic!("expected GuestFailed, got {other}"),
    }
    vm.kill();
    assert!(vm.exit_status().is_some(), "kill reaps the process");
}

#[test]
fn qemu_exit_before_marker_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = vm_config(dir.path(), "echo bye\npoweroff -f\n");
    let mut vm = Vm::start(&cfg).unwrap();
    let err = vm.wait_for("NEVER-PRINTED", LIMIT).unwrap_err();
    match err {
        QemuError::ExitedEarly { tail, status, .. } => {
            assert!(status.success());
            assert!(tail.contains("bye"), "{tail}");
        }
        other => panic!("expected ExitedEarly, got {other}"),
    }
}

#[test]
fn timeout_kills_the_vm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = vm_config(dir.path(), "echo waiting\nsleep 100\npoweroff -f\n");
    cfg.timeout = Duration::from_secs(3);
    let mut vm = Vm::start(&cfg).unwrap();
    let pid = vm.pid();
    let err = vm.wait_exit(LIMIT).unwrap_err();
    assert!(matches!(err, QemuError::Timeout { .. }), "{err}");
    assert!(vm.exit_status().is_some());
    // The process is gone (reaped), not just signalled.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
