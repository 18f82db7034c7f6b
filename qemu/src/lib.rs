//! The QEMU aarch64 boot harness for pideploy images.
//!
//! QEMU does not emulate the Raspberry Pi 5 firmware, so the harness reads the image's FAT boot
//! partition the way that firmware does ([`firmware::select`]: `config.txt`/`tryboot.txt`,
//! conditional sections, `include`, `os_prefix`, `kernel=`, `initramfs`, `cmdline.txt`) and
//! starts `qemu-system-aarch64 -M virt` ([`runner::Vm`]) with what it selected. [`Harness`] loops
//! over reboots, setting the one-shot tryboot flag when the guest kernel reports
//! `reboot '0 tryboot'`. See `qemu/README.md` for the emulated rules.

#![deny(missing_docs)]

pub mod boot_source;
pub mod firmware;
pub mod harness;
mod image_source;
pub mod runner;

pub use boot_source::{BootSource, BootSourceError};
pub use firmware::{select, BootSelection, FirmwareError, FirmwareInput, Model};
pub use harness::{
    classify_end, guest_end, last_lines, BootRecord, GuestEnd, Harness, HarnessError,
    HarnessOptions, Outcome, RunEnd,
};
pub use runner::{
    free_port, FirmwareWatchdog, Forward, QemuError, Vm, VmConfig, WATCHDOG_OPENED_MARKER,
};
