//! Kernel modules on a booted system, on QEMU: devices whose drivers exist only as modules on the
//! root (not in the initramfs) get them at boot, and `boot.kernel_modules` entries are loaded.
//!
//! - `virtio-rng-pci`: present at boot; udev's coldplug finds its driver `virtio_rng` through its
//!   modalias in the generated `modules.alias.bin` (libkmod reads only the binary indexes).
//! - `qemu-xhci` + `usb-tablet`: coldplug loads `xhci_pci`; the tablet then appears on the new USB
//!   bus after boot, and udev loads `usbhid` for it (hotplug).
//! - `boot.kernel_modules = ["dummy", "no_such_module"]`: systemd-modules-load loads `dummy`; the
//!   missing one is logged, and the boot goes on.

mod common;

use std::fs;
use std::time::Duration;

use common::guest::Guest;
use common::*;

#[test]
fn module_only_devices_are_bound_and_listed_modules_load() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let (key, public) = keypair(w);
    let config = w.join("pi.toml");
    fs::write(
        &config,
        format!(
            "board = \"qemu-aarch64\"\nhostname = \"modpi\"\n\n[boot]\n\
             kernel_modules = [\"dummy\", \"no_such_module\"]\n\n[[users]]\nname = \"pi\"\n\
             uid = 1000\nsudo = true\nssh_authorized_keys = [\"{public}\"]\n"
        ),
    )
    .unwrap();
    let image = w.join("pi.img");
    let (_, store) = build_image_in(w, &config, &image);

    // The index was generated at build time, from the modules themselves.
    let kernels: Vec<_> = fs::read_dir(store.join("store"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("lib/modules").is_dir())
        .collect();
    assert_eq!(kernels.len(), 1, "{kernels:?}");
    let versions: Vec<_> = fs::read_dir(kernels[0].join("lib/modules"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(versions.len(), 1);
    let dep = fs::read_to_string(versions[0].join("modules.dep")).unwrap();
    let alias = fs::read_to_string(versions[0].join("modules.alias")).unwrap();
    assert!(
        dep.lines()
            .any(|l| l.starts_with("kernel/drivers/usb/host/xhci-pci.ko:")
                && l.contains("kernel/drivers/usb/host/xhci-hcd.ko")),
        "{dep}"
    );
    assert!(alias.contains(" virtio_rng\n"), "{alias}");
    assert!(
        !dep.contains("bluetooth"),
        "only the board's root_modules and their dependencies"
    );

    let port = pideploy_qemu::free_port().unwrap();
    let log = w.join("console.log");
    let child = pideploy()
        .arg("qemu")
        .arg(&image)
        .args(["--ssh-port", &port.to_string()])
        .args(["--timeout", "300"])
        .args(["--max-boots", "2"])
        .args(["--device", "virtio-rng-pci"])
        .args(["--device", "qemu-xhci"])
        .args(["--device", "usb-tablet"])
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(log.with_extension("harness")).unwrap())
        .spawn()
        .unwrap();
    let mut vm = Guest { child, log, port };
    let console = vm.wait_for("PIDEPLOY-READY", Duration::from_secs(240));
    let known = vm.known_hosts(w);
    let ssh = |cmd: &str| vm.ssh(&known, &key, "pi", cmd);
    // The listed module that does not exist is logged by systemd-modules-load, which goes on: the
    // boot ends with every unit running.
    assert_eq!(
        ssh("sudo -n systemctl is-system-running --wait || true"),
        "running"
    );
    let loads = ssh("sudo -n journalctl -b -t systemd-modules-load --no-pager");
    assert!(loads.contains("Inserted module 'dummy'"), "{loads}");
    assert!(
        loads.contains("Failed to find module 'no_such_module'"),
        "{loads}"
    );
    let kver = ssh("uname -r");
    assert_eq!(
        ssh("readlink /lib/modules"),
        "/run/booted-system/kernel/lib/modules"
    );
    assert!(ssh(&format!("cat /lib/modules/{kver}/modules.dep")).contains("dummy.ko:"));
    // "running" says the start jobs are done, not that udev has handled every coldplug event
    // (the modules for devices load as it does): wait for its queue, as udevadm settle does.
    ssh("sudo -n udevadm settle --timeout=120");
    let lsmod = ssh("lsmod");
    for m in ["dummy", "virtio_rng", "xhci_pci", "usbhid"] {
        assert!(
            lsmod
                .lines()
                .any(|l| l.split_whitespace().next() == Some(m)),
            "{m} not loaded:\n{lsmod}\n{console}"
        );
    }
    // Bound: each device's driver link names the module's driver.
    let rng = ssh("for d in /sys/bus/virtio/devices/*; do basename $(readlink $d/driver); done");
    assert!(rng.lines().any(|l| l == "virtio_rng"), "{rng}");
    let usb = ssh("for d in /sys/bus/usb/devices/*:*; do basename $(readlink $d/driver); done");
    assert!(usb.lines().any(|l| l == "usbhid"), "{usb}");
    // usbhid came by hotplug: the tablet appears only once coldplug loaded the xhci driver.
    assert_eq!(ssh("sudo -n systemctl is-active systemd-udevd"), "active");
    // The hwrng core now has the virtio source.
    assert!(ssh("cat /sys/class/misc/hw_random/rng_available").contains("virtio_rng"));
}
