//! `pideploy qemu IMAGE`: boot an image the way the Pi firmware would choose its entry.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pideploy_qemu::{Harness, HarnessOptions};

use super::{CmdResult, Ui};

/// `pideploy qemu`.
#[derive(Args, Debug)]
pub struct QemuArgs {
    /// Raw image (.img) built for the qemu-aarch64 board.
    image: PathBuf,
    /// Forward the guest's SSH port to this 127.0.0.1 port (default: a free one).
    #[arg(long)]
    ssh_port: Option<u16>,
    /// Hard timeout in seconds for the whole run.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Set the one-shot tryboot flag for the first boot.
    #[arg(long)]
    tryboot: bool,
    /// Most boots to follow (reboots included).
    #[arg(long, default_value_t = 4)]
    max_boots: usize,
    /// Add a QEMU device for every boot, e.g. `virtio-rng-pci` or `qemu-xhci` (repeatable). It must
    /// not need an option ROM (none is installed): give `romfile=` to devices that would load one.
    #[arg(long = "device", value_name = "SPEC")]
    devices: Vec<String>,
    /// Forward a port of 127.0.0.1 to the guest, `[tcp:|udp:]HOSTPORT:GUESTPORT`, e.g. `8080:80`
    /// for a web server (repeatable).
    #[arg(long = "forward", value_name = "PORTS")]
    forwards: Vec<pideploy_qemu::Forward>,
    /// Pass one more argument to QEMU for every boot (repeatable), e.g. `--qemu-arg=-rtc
    /// --qemu-arg=base=2001-01-01` to start the guest's clock in the past.
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    qemu_args: Vec<String>,
}

pub fn qemu(ui: &Ui, a: QemuArgs) -> CmdResult {
    let port = match a.ssh_port {
        Some(p) => p,
        None => pideploy_qemu::free_port()?,
    };
    let scratch = tempfile::tempdir()?;
    let opts = HarnessOptions {
        ssh_port: Some(port),
        timeout: Duration::from_secs(a.timeout),
        tryboot_first: a.tryboot,
        max_boots: a.max_boots,
        extra_devices: a.devices,
        forwards: a.forwards,
        extra_args: a.qemu_args,
        ..HarnessOptions::default()
    };
    let mut h = Harness::new(&a.image, scratch.path(), opts);
    loop {
        let sel = h.select()?;
        ui.info(format!(
            "booting {}{} ({}, ssh on 127.0.0.1:{port})",
            sel.kernel,
            sel.initramfs
                .as_deref()
                .map(|i| format!(" + {i}"))
                .unwrap_or_default(),
            sel.config_file
        ));
        let vm = h.boot_once()?;
        // Relay the console while the guest runs.
        let log = vm.serial_log_path().to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let relay = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut shown = 0usize;
                loop {
                    let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                    if let Ok(bytes) = std::fs::read(&log) {
                        if bytes.len() > shown {
                            let _ = std::io::stdout().write_all(&bytes[shown..]);
                            let _ = std::io::stdout().flush();
                            shown = bytes.len();
                        }
                    }
                    if done {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let rec = h.finish_boot(vm);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = relay.join();
        let rec = rec?.clone();
        ui.info(format!("boot {}: {}", rec.boot, rec.exit));
        if rec.exit.is_unexpected() {
            report_unexpected(ui, &rec);
        }
        if let pideploy_qemu::GuestEnd::QemuFailed { .. } = rec.exit {
            return Err(format!(
                "QEMU could not run the image (boot {}); its own error is above",
                rec.boot
            )
            .into());
        }
        // A panic or a killed QEMU comes back like a Pi after a panic=N restart or a power cycle:
        // the firmware runs again, without the tryboot flag.
        let restart = rec.exit.reboots();
        if !restart || h.boots().len() >= a.max_boots {
            return Ok(match rec.exit {
                pideploy_qemu::GuestEnd::PowerDown => 0,
                pideploy_qemu::GuestEnd::TimedOut => 124,
                _ => 1,
            });
        }
    }
}

/// After a boot nobody asked to end: QEMU's own words and the console's last lines, on stderr,
/// so the reason is there even when the console itself went to a file.
fn report_unexpected(ui: &Ui, rec: &pideploy_qemu::BootRecord) {
    let quoted = matches!(rec.exit, pideploy_qemu::GuestEnd::QemuFailed { .. });
    if !quoted && !rec.qemu_stderr.is_empty() {
        ui.info(format!("  QEMU said: {}", rec.qemu_stderr));
    }
    let console = std::fs::read_to_string(&rec.serial_log).unwrap_or_default();
    if console.trim().is_empty() {
        ui.info("  the guest printed nothing on its console");
    } else {
        ui.info("  last console lines:");
        for line in pideploy_qemu::last_lines(&console, 15).lines() {
            ui.info(format!("  | {line}"));
        }
    }
}
