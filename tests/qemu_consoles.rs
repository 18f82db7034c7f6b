//! A board with two login consoles (as the Pi 5 has: its debug UART and HDMI) gives a login prompt
//! and the SSH host key line on both. QEMU's `virt` machine has one UART, so the second terminal is
//! a virtio console (`hvc0`, whose driver is a module loaded by coldplug) written to a file.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use pideploy_qemu::{Harness, HarnessOptions};

#[test]
fn every_login_console_gets_a_prompt_and_the_host_key_line() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    // The qemu-aarch64 board with a second login console, as boards/rpi5.toml lists two.
    let board_text = fs::read_to_string(repo().join("boards/qemu-aarch64.toml")).unwrap();
    let board_text = board_text
        .replace(
            "name = \"qemu-aarch64\"",
            "name = \"qemu-aarch64-consoles\"",
        )
        .replace(
            "[boot]\n",
            "[boot]\nlogin_consoles = [\"ttyAMA0\", \"hvc0\"]\n",
        );
    assert!(board_text.contains("login_consoles = [\"ttyAMA0\", \"hvc0\"]"));
    let board = w.join("board.toml");
    fs::write(&board, board_text).unwrap();
    let (_, public) = keypair(w);
    let config = w.join("pi.toml");
    fs::write(
        &config,
        format!(
            "board = \"{}\"\nhostname = \"twocon\"\n\n[[users]]\nname = \"pi\"\nuid = 1000\n\
             ssh_authorized_keys = [\"{public}\"]\n",
            board.display()
        ),
    )
    .unwrap();
    let image = w.join("pi.img");
    build_image_in(w, &config, &image);

    let hvc_log = w.join("hvc0.log");
    let opts = HarnessOptions {
        timeout: Duration::from_secs(240),
        max_boots: 1,
        // No device here may need an option ROM (nothing provides one).
        extra_devices: vec![
            "virtio-serial-pci,romfile=".into(),
            "virtconsole,chardev=hvc".into(),
        ],
        extra_args: vec![
            "-chardev".into(),
            format!("file,id=hvc,path={}", hvc_log.display()),
        ],
        ..Default::default()
    };
    let mut h = Harness::new(&image, w.join("scratch"), opts);
    let mut vm = h.boot_once().unwrap();
    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(200))
        .unwrap();
    vm.wait_for("twocon login:", Duration::from_secs(60))
        .unwrap();
    let serial = vm.serial_log();
    let key_line = serial
        .lines()
        .find_map(|l| {
            l.find("pideploy: ssh host key: ssh-ed25519 ")
                .map(|i| l[i..].trim().to_string())
        })
        .unwrap_or_else(|| panic!("no host key line on the UART:\n{serial}"));

    // The second terminal: its own prompt, and the same host key line.
    let start = Instant::now();
    let hvc = loop {
        let text = fs::read_to_string(&hvc_log).unwrap_or_default();
        if text.contains("twocon login:") && text.contains("pideploy: ssh host key:") {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "hvc0 got no prompt or host key line:\n{text}\n--- UART:\n{serial}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(hvc.contains(&key_line), "{hvc}\n--- UART line: {key_line}");
    // Printed once on each terminal, not twice on the UART.
    assert_eq!(
        serial.matches("pideploy: ssh host key:").count(),
        1,
        "{serial}"
    );
    vm.kill();
}
