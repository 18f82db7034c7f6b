//! The whole boot harness: firmware selection from the boot partition, QEMU, and the reboot loop
//! with the one-shot tryboot flag.
//!
//! TRYBOOT as documented (raspberry-pi.html#fail-safe-os-updates-tryboot): the flag is set by
//! `reboot '0 tryboot'`, and "since the flag is cleared before starting the firmware, a crash or
//! reset will cause the original `config.txt` file to be loaded on the next reboot". The harness
//! reads the kernel's own reboot message from the serial console to learn what the guest asked for.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::boot_source::{BootSource, BootSourceError};
use crate::firmware::{self, BootSelection, FirmwareError, FirmwareInput, Model};
use crate::runner::{FirmwareWatchdog, Forward, QemuError, Vm, VmConfig};

/// How the harness runs.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// Host port forwarded to the guest's SSH port, if any.
    pub ssh_port: Option<u16>,
    /// Hard limit for the whole run (every boot together).
    pub timeout: Duration,
    /// Set the tryboot flag for the first boot, as if the previous OS had run `reboot '0 tryboot'`.
    pub tryboot_first: bool,
    /// Stop after this many boots (a guest that crashes on every boot would loop forever).
    pub max_boots: usize,
    /// Appended to the firmware's command line (e.g. `pideploy.test=1`).
    pub extra_append: Option<String>,
    /// Guest memory in MiB.
    pub memory_mb: u32,
    /// More QEMU `-device` specs for every boot (see [`crate::VmConfig::extra_devices`]).
    pub extra_devices: Vec<String>,
    /// More QEMU arguments for every boot (see [`crate::VmConfig::extra_args`]).
    pub extra_args: Vec<String>,
    /// More ports forwarded to the guest (see [`crate::VmConfig::forwards`]).
    pub forwards: Vec<Forward>,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            ssh_port: None,
            timeout: Duration::from_secs(60),
            tryboot_first: false,
            max_boots: 6,
            extra_append: None,
            memory_mb: 1024,
            extra_devices: Vec::new(),
            extra_args: Vec::new(),
            forwards: Vec::new(),
        }
    }
}

/// What the harness could not do.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The boot partition could not be read.
    #[error(transparent)]
    BootSource(#[from] BootSourceError),
    /// The firmware emulation found nothing to boot.
    #[error("boot {boot}: {source}")]
    Firmware {
        /// 1-based boot number.
        boot: usize,
        /// The cause.
        #[source]
        source: FirmwareError,
    },
    /// QEMU failed.
    #[error("boot {boot}: {source}")]
    Qemu {
        /// 1-based boot number.
        boot: usize,
        /// The cause.
        #[source]
        source: QemuError,
    },
    /// A scratch file could not be written.
    #[error("writing {path}: {source}; is the scratch directory writable?")]
    Scratch {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// [`Harness::finish_boot`] was called without a boot in progress.
    #[error("finish_boot called without a boot started by boot_once")]
    NoBootInProgress,
}

/// How one boot ended: from QEMU's exit status and stderr, and the kernel's messages on the
/// serial console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEnd {
    /// `reboot: Power down`.
    PowerDown,
    /// `reboot: System halted`.
    Halt,
    /// `reboot: Restarting system [with command '…']`.
    Restart {
        /// The reboot command (`0 tryboot`), if one was given.
        command: Option<String>,
    },
    /// The kernel panicked (`panic=N` restarts a Pi after it; `-no-reboot` ends QEMU).
    Panic {
        /// The panic line, from `Kernel panic - not syncing` on.
        message: String,
    },
    /// QEMU was ended by a signal from outside: a power cut.
    Killed {
        /// The signal number.
        signal: i32,
    },
    /// QEMU ended without a kernel reboot or panic message (the guest reset or died silently).
    Crash,
    /// QEMU itself failed (it exited with an error status): usually it refused to start, e.g. a
    /// missing file or an option this QEMU does not know.
    QemuFailed {
        /// QEMU's exit status, as text.
        status: String,
        /// What QEMU printed on stderr.
        stderr: String,
    },
    /// The hardware watchdog the firmware armed (`kernel_watchdog_timeout`) reset the guest: it
    /// had not opened `/dev/watchdog` within the open timeout, or stopped kicking it after.
    /// QEMU's i6300esb reset under `-no-reboot` ends QEMU without a kernel message; the harness
    /// tells it apart from a silent crash by the selected config.
    WatchdogReset,
    /// The hard timeout ran out and the VM was killed.
    TimedOut,
}

impl GuestEnd {
    /// Whether this end asks the firmware for a tryboot on the next boot.
    pub fn requests_tryboot(&self) -> bool {
        match self {
            // `sudo reboot "0 tryboot"`: a partition number, then the word `tryboot`
            // (raspberry-pi.html#fail-safe-os-updates-tryboot, and config_txt.html#autoboot-txt).
            GuestEnd::Restart { command: Some(cmd) } => {
                let words: Vec<&str> = cmd.split_whitespace().collect();
                matches!(words.as_slice(), [partition, "tryboot"] if partition.parse::<u8>().is_ok())
            }
            _ => false,
        }
    }

    /// Whether the machine comes up again after this end (a Pi restarts after a panic with
    /// `panic=N`, and powers up again after a power cut). A QEMU that fails would fail again.
    pub fn reboots(&self) -> bool {
        matches!(
            self,
            GuestEnd::Restart { .. }
                | GuestEnd::Panic { .. }
                | GuestEnd::Killed { .. }
                | GuestEnd::Crash
                | GuestEnd::WatchdogReset
        )
    }

    /// Whether this is an end nobody asked for (anything but a power-off, halt or reboot).
    pub fn is_unexpected(&self) -> bool {
        !matches!(
            self,
            GuestEnd::PowerDown | GuestEnd::Halt | GuestEnd::Restart { .. }
        )
    }
}

impl std::fmt::Display for GuestEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestEnd::PowerDown => write!(f, "the guest powered off"),
            GuestEnd::Halt => write!(f, "the guest halted"),
            GuestEnd::Restart { command: None } => write!(f, "the guest rebooted"),
            GuestEnd::Restart { command: Some(c) } => {
                write!(f, "the guest rebooted with command '{c}'")
            }
            GuestEnd::Panic { message } => write!(f, "the guest crashed: {message}"),
            GuestEnd::Killed { signal } => {
                write!(f, "QEMU was killed by signal {signal} (a power cut)")
            }
            GuestEnd::Crash => write!(
                f,
                "the guest crashed: QEMU ended without a kernel reboot or panic message"
            ),
            GuestEnd::QemuFailed { status, stderr } if stderr.is_empty() => {
                write!(f, "QEMU failed ({status}) and printed nothing")
            }
            GuestEnd::QemuFailed { status, stderr } => {
                write!(f, "QEMU failed ({status}); QEMU said: {stderr}")
            }
            GuestEnd::WatchdogReset => write!(
                f,
                "the hardware watchdog reset the guest (armed by kernel_watchdog_timeout)"
            ),
            GuestEnd::TimedOut => write!(f, "timed out; the VM was killed"),
        }
    }
}

/// Reads how the guest ended from its serial log (the last kernel `reboot:` or panic message wins).
pub fn guest_end(serial_log: &str) -> GuestEnd {
    const RESTART_WITH: &str = "reboot: Restarting system with command '";
    const PANIC: &str = "Kernel panic - not syncing";
    let mut end = GuestEnd::Crash;
    for line in serial_log.lines() {
        if let Some(pos) = line.find(RESTART_WITH) {
            let rest = &line[pos + RESTART_WITH.len()..];
            let command = rest.rsplit_once('\'').map_or(rest, |(c, _)| c);
            end = GuestEnd::Restart {
                command: Some(command.to_string()),
            };
        } else if line.contains("reboot: Restarting system") {
            end = GuestEnd::Restart { command: None };
        } else if line.contains("reboot: Power down") {
            end = GuestEnd::PowerDown;
        } else if line.contains("reboot: System halted") {
            end = GuestEnd::Halt;
        } else if let Some(pos) = line.find(PANIC) {
            end = GuestEnd::Panic {
                message: line[pos..].trim_end().to_string(),
            };
        }
    }
    end
}

/// How a boot ended, from QEMU's exit status and stderr first (QEMU exits 0 whenever the guest
/// ends itself under `-no-reboot`), then from the serial log.
pub fn classify_end(status: ExitStatus, serial_log: &str, qemu_stderr: &str) -> GuestEnd {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        return GuestEnd::Killed { signal };
    }
    if !status.success() {
        return GuestEnd::QemuFailed {
            status: status.to_string(),
            stderr: qemu_stderr.trim().to_string(),
        };
    }
    guest_end(serial_log)
}

/// The last `n` lines of a console log (for messages about a boot that went wrong).
pub fn last_lines(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One boot of the run.
#[derive(Debug, Clone)]
pub struct BootRecord {
    /// 1-based boot number.
    pub boot: usize,
    /// Whether the tryboot flag was set for this boot.
    pub tryboot: bool,
    /// What the firmware emulation selected.
    pub selection: BootSelection,
    /// How the boot ended.
    pub exit: GuestEnd,
    /// QEMU's exit status (`None` when it was killed at the timeout).
    pub status: Option<ExitStatus>,
    /// What QEMU printed on stderr during this boot.
    pub qemu_stderr: String,
    /// This boot's serial log.
    pub serial_log: PathBuf,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The guest powered off.
    PowerDown,
    /// The guest halted.
    Halt,
    /// The hard timeout ran out.
    TimedOut,
    /// `max_boots` boots happened without a power-down.
    TooManyBoots,
    /// QEMU itself failed (see the last boot's [`GuestEnd::QemuFailed`]).
    QemuFailed,
}

/// Every boot of a run, and how it ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The boots, in order.
    pub boots: Vec<BootRecord>,
    /// How the run ended.
    pub end: RunEnd,
}

impl Outcome {
    /// A process exit code for the run: 0 for a clean power-down, 1 for a halt, 2 when too many
    /// boots happened, 3 when QEMU failed, 124 on timeout (as `timeout(1)` does).
    pub fn exit_code(&self) -> i32 {
        match self.end {
            RunEnd::PowerDown => 0,
            RunEnd::Halt => 1,
            RunEnd::TooManyBoots => 2,
            RunEnd::TimedOut => 124,
            RunEnd::QemuFailed => 3,
        }
    }
}

/// A boot started by [`Harness::boot_once`] and not yet finished.
#[derive(Debug)]
struct Pending {
    boot: usize,
    tryboot: bool,
    selection: BootSelection,
    serial_log: PathBuf,
}

/// Boots an image the way a Pi 5 would, under QEMU, across reboots.
#[derive(Debug)]
pub struct Harness {
    image: PathBuf,
    scratch: PathBuf,
    source: BootSource,
    opts: HarnessOptions,
    tryboot_next: bool,
    deadline: Instant,
    boots: Vec<BootRecord>,
    pending: Option<Pending>,
}

impl Harness {
    /// A harness for `image` (a raw disk image pideploy built), keeping kernels, initrds and
    /// serial logs under `scratch_dir`. The hard timeout starts now.
    pub fn new(
        image: impl Into<PathBuf>,
        scratch_dir: impl Into<PathBuf>,
        opts: HarnessOptions,
    ) -> Harness {
        let image = image.into();
        Harness {
            source: BootSource::Image(image.clone()),
            image,
            scratch: scratch_dir.into(),
            tryboot_next: opts.tryboot_first,
            deadline: Instant::now() + opts.timeout,
            opts,
            boots: Vec::new(),
            pending: None,
        }
    }

    /// Reads boot files from `source` (e.g. a host directory) instead of the image's boot
    /// partition; the image is still the VM's disk.
    pub fn with_boot_source(mut self, source: BootSource) -> Harness {
        self.source = source;
        self
    }

    /// Whether the next boot will have the tryboot flag set.
    pub fn tryboot_next(&self) -> bool {
        self.tryboot_next
    }

    /// The boots finished so far.
    pub fn boots(&self) -> &[BootRecord] {
        &self.boots
    }

    /// What the firmware would boot next, without booting.
    pub fn select(&self) -> Result<BootSelection, HarnessError> {
        let boot = self.boots.len() + 1;
        let files = self.source.snapshot()?;
        // The firmware's reader cannot fail, so an I/O error is remembered and reported after.
        let io_error = std::cell::RefCell::new(None);
        let read = |path: &str| match files.read(path) {
            Ok(found) => found,
            Err(e) => {
                io_error.borrow_mut().get_or_insert(e);
                None
            }
        };
        let selection = firmware::select(&FirmwareInput {
            tryboot: self.tryboot_next,
            model: Model::Pi5,
            read: &read,
        });
        if let Some(e) = io_error.into_inner() {
            return Err(e.into());
        }
        selection.map_err(|source| HarnessError::Firmware { boot, source })
    }

    /// Starts the next boot: selects, consumes the tryboot flag, extracts kernel and initrd to
    /// the scratch directory and starts QEMU. Finish it with [`Harness::finish_boot`].
    pub fn boot_once(&mut self) -> Result<Vm, HarnessError> {
        let boot = self.boots.len() + 1;
        let tryboot = self.tryboot_next;
        let mut selection = self.select()?;
        // One-shot: cleared before the OS runs, so a crash falls back to config.txt.
        self.tryboot_next = false;

        let dir = self.scratch.join(format!("boot-{boot}"));
        fs::create_dir_all(&dir).map_err(|source| HarnessError::Scratch {
            path: dir.clone(),
            source,
        })?;
        let files = self.source.snapshot()?;
        let kernel = dir.join("kernel");
        let kernel_bytes = files.read(&selection.kernel)?.unwrap_or_default();
        write(&kernel, &kernel_bytes)?;
        let initrd = match &selection.initramfs {
            Some(first) => {
                // The firmware concatenates several initramfs files in memory; so does this.
                let mut bytes = Vec::new();
                for part in std::iter::once(first).chain(&selection.extra_initramfs) {
                    bytes.extend(files.read(part)?.unwrap_or_default());
                }
                let path = dir.join("initrd");
                write(&path, &bytes)?;
                Some(path)
            }
            None => None,
        };

        let watchdog = firmware_watchdog(&mut selection);
        let append = self.qemu_cmdline(&mut selection);
        let serial_log = dir.join("serial.log");
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let cfg = VmConfig {
            image: self.image.clone(),
            kernel,
            initrd,
            append,
            memory_mb: self.opts.memory_mb,
            cpu: "cortex-a72".into(),
            ssh_port: self.opts.ssh_port,
            serial_log: serial_log.clone(),
            timeout: remaining,
            extra_devices: self.opts.extra_devices.clone(),
            extra_args: self.opts.extra_args.clone(),
            forwards: self.opts.forwards.clone(),
            watchdog,
        };
        let vm = Vm::start(&cfg).map_err(|source| HarnessError::Qemu { boot, source })?;
        self.pending = Some(Pending {
            boot,
            tryboot,
            selection,
            serial_log,
        });
        Ok(vm)
    }

    /// Waits for the boot started by [`Harness::boot_once`] to end, records it and sets the
    /// tryboot flag when the guest asked for it.
    pub fn finish_boot(&mut self, mut vm: Vm) -> Result<&BootRecord, HarnessError> {
        let pending = self.pending.take().ok_or(HarnessError::NoBootInProgress)?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let (status, exit) = match vm.wait_exit(remaining) {
            Ok(status) if vm.watchdog_reset() => (Some(status), GuestEnd::WatchdogReset),
            // An i6300esb reset ends QEMU (status 0) with no kernel message.
            Ok(status)
                if pending.selection.settings.contains_key(WATCHDOG_SETTING)
                    && guest_end(&vm.serial_log()) == GuestEnd::Crash
                    && status.success() =>
            {
                (Some(status), GuestEnd::WatchdogReset)
            }
            Ok(status) => (
                Some(status),
                classify_end(status, &vm.serial_log(), &vm.qemu_stderr()),
            ),
            Err(QemuError::Timeout { .. }) => (None, GuestEnd::TimedOut),
            Err(source) => {
                return Err(HarnessError::Qemu {
                    boot: pending.boot,
                    source,
                })
            }
        };
        self.tryboot_next = exit.requests_tryboot();
        self.boots.push(BootRecord {
            boot: pending.boot,
            tryboot: pending.tryboot,
            selection: pending.selection,
            exit,
            status,
            qemu_stderr: vm.qemu_stderr(),
            serial_log: pending.serial_log,
        });
        Ok(self.boots.last().expect("just pushed"))
    }

    /// Boots until the guest powers off or halts, `max_boots` is reached or time runs out.
    pub fn run_to_end(&mut self) -> Result<Outcome, HarnessError> {
        let end = loop {
            if self.boots.len() >= self.opts.max_boots {
                break RunEnd::TooManyBoots;
            }
            if Instant::now() >= self.deadline {
                break RunEnd::TimedOut;
            }
            let vm = self.boot_once()?;
            match self.finish_boot(vm)?.exit {
                GuestEnd::PowerDown => break RunEnd::PowerDown,
                GuestEnd::Halt => break RunEnd::Halt,
                GuestEnd::TimedOut => break RunEnd::TimedOut,
                GuestEnd::QemuFailed { .. } => break RunEnd::QemuFailed,
                GuestEnd::Restart { .. }
                | GuestEnd::Panic { .. }
                | GuestEnd::Killed { .. }
                | GuestEnd::Crash
                | GuestEnd::WatchdogReset => continue,
            }
        };
        Ok(Outcome {
            boots: self.boots.clone(),
            end,
        })
    }

    /// The command line QEMU gets: the firmware's, with the Pi's `serial0` console alias turned
    /// into the `virt` board's UART, plus [`HarnessOptions::extra_append`].
    fn qemu_cmdline(&self, selection: &mut BootSelection) -> String {
        let mut words: Vec<String> = Vec::new();
        for word in selection.cmdline.split_whitespace() {
            match word.strip_prefix("console=serial0") {
                Some(rest) => {
                    selection.notes.push(format!(
                        "`{word}` becomes `console=ttyAMA0{rest}`: serial0 is the Pi's alias for its UART"
                    ));
                    words.push(format!("console=ttyAMA0{rest}"));
                }
                None => words.push(word.to_string()),
            }
        }
        if let Some(extra) = &self.opts.extra_append {
            words.extend(extra.split_whitespace().map(str::to_string));
        }
        words.join(" ")
    }

    /// The scratch directory.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }
}

/// The config.txt property that arms the Pi's hardware watchdog before the kernel.
const WATCHDOG_SETTING: &str = "kernel_watchdog_timeout";

/// The firmware's side of `kernel_watchdog_timeout=N` (N > 0): it starts the hardware watchdog and
/// passes `watchdog.open_timeout=N` to the kernel on its command line
/// (https://www.raspberrypi.com/documentation/computers/config_txt.html#kernel_watchdog_timeout).
fn firmware_watchdog(selection: &mut BootSelection) -> Option<FirmwareWatchdog> {
    let value = selection.settings.get(WATCHDOG_SETTING)?;
    let secs = match value.parse::<u64>() {
        Ok(0) => return None,
        Ok(secs) => secs,
        Err(_) => {
            selection.notes.push(format!(
                "`{WATCHDOG_SETTING}={value}` is not a number of seconds; no watchdog"
            ));
            return None;
        }
    };
    selection.cmdline = format!(
        "{} watchdog.open_timeout={secs}",
        selection.cmdline.trim_end()
    );
    selection.notes.push(format!(
        "{WATCHDOG_SETTING}={secs}: the hardware watchdog runs; `watchdog.open_timeout={secs}` added to the command line"
    ));
    Some(FirmwareWatchdog {
        open_timeout: Duration::from_secs(secs),
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), HarnessError> {
    fs::write(path, bytes).map_err(|source| HarnessError::Scratch {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::power_down("[ 1.0] reboot: Power down\n", GuestEnd::PowerDown)]
    #[case::halt("reboot: System halted\n", GuestEnd::Halt)]
    #[case::restart("[ 2.1] reboot: Restarting system\n", GuestEnd::Restart { command: None })]
    #[case::tryboot(
        "[ 2.1] reboot: Restarting system with command '0 tryboot'\n",
        GuestEnd::Restart { command: Some("0 tryboot".into()) }
    )]
    #[case::panic(
        "[ 3.2] Kernel panic - not syncing: Attempted to kill init!\n",
        GuestEnd::Panic { message: "Kernel panic - not syncing: Attempted to kill init!".into() }
    )]
    #[case::silent("[ 3.2] something\n", GuestEnd::Crash)]
    #[case::empty("", GuestEnd::Crash)]
    #[case::last_wins("reboot: Power down\nreboot: Restarting system\n", GuestEnd::Restart { command: None })]
    fn reads_guest_end(#[case] log: &str, #[case] expected: GuestEnd) {
        assert_eq!(guest_end(log), expected);
    }

    #[rstest]
    #[case(GuestEnd::Restart { command: Some("0 tryboot".into()) }, true)]
    #[case(GuestEnd::Restart { command: Some("2 tryboot".into()) }, true)]
    #[case(GuestEnd::Restart { command: Some("0".into()) }, false)]
    #[case(GuestEnd::Restart { command: Some("tryboot".into()) }, false)]
    #[case(GuestEnd::Restart { command: Some("x tryboot".into()) }, false)]
    #[case(GuestEnd::Restart { command: Some("0 tryboot now".into()) }, false)]
    #[case(GuestEnd::Restart { command: Some("0 notryboot".into()) }, false)]
    #[case(GuestEnd::Restart { command: None }, false)]
    #[case(GuestEnd::Crash, false)]
    #[case(GuestEnd::PowerDown, false)]
    fn tryboot_request(#[case] end: GuestEnd, #[case] expected: bool) {
        assert_eq!(end.requests_tryboot(), expected);
    }

    fn status(raw: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(raw)
    }

    #[test]
    fn qemu_refusing_to_start_is_not_a_guest_crash() {
        let stderr = "qemu-system-aarch64: -device virtio-net-pci,netdev=n0: failed to find romfile \"efi-virtio.rom\"\n";
        let end = classify_end(status(1 << 8), "", stderr);
        assert!(!end.reboots(), "a failing QEMU would fail again: {end:?}");
        assert!(end.is_unexpected());
        assert_eq!(
            end.to_string(),
            "QEMU failed (exit status: 1); QEMU said: qemu-system-aarch64: -device virtio-net-pci,netdev=n0: failed to find romfile \"efi-virtio.rom\""
        );
    }

    #[rstest]
    #[case::power_cut(status(9), "", GuestEnd::Killed { signal: 9 })]
    #[case::clean(status(0), "reboot: Power down\n", GuestEnd::PowerDown)]
    #[case::panic(status(0), "Kernel panic - not syncing: VFS\n", GuestEnd::Panic { message: "Kernel panic - not syncing: VFS".into() })]
    fn classifies_by_status_then_console(
        #[case] st: ExitStatus,
        #[case] log: &str,
        #[case] expected: GuestEnd,
    ) {
        assert_eq!(classify_end(st, log, ""), expected);
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }

    #[rstest]
    #[case::armed(Some("20"), Some(20), " watchdog.open_timeout=20")]
    #[case::zero_is_off(Some("0"), None, "")]
    #[case::not_a_number(Some("soon"), None, "")]
    #[case::unset(None, None, "")]
    fn kernel_watchdog_timeout_arms_and_tells_the_kernel(
        #[case] value: Option<&str>,
        #[case] armed: Option<u64>,
        #[case] appended: &str,
    ) {
        let mut sel = BootSelection {
            config_file: "tryboot.txt".into(),
            os_prefix: String::new(),
            kernel: "k".into(),
            initramfs: None,
            extra_initramfs: vec![],
            cmdline_file: "cmdline.txt".into(),
            cmdline: "root=/dev/vda2".into(),
            device_tree: None,
            settings: value
                .map(|v| (WATCHDOG_SETTING.to_string(), v.to_string()))
                .into_iter()
                .collect(),
            notes: vec![],
        };
        let got = firmware_watchdog(&mut sel).map(|w| w.open_timeout.as_secs());
        assert_eq!(got, armed);
        assert_eq!(sel.cmdline, format!("root=/dev/vda2{appended}"));
    }

    #[test]
    fn cmdline_maps_serial0_and_appends_extra() {
        let dir = tempfile::tempdir().unwrap();
        let h = Harness::new(
            dir.path().join("img"),
            dir.path(),
            HarnessOptions {
                extra_append: Some("x=1".into()),
                ..Default::default()
            },
        );
        let mut sel = BootSelection {
            config_file: "config.txt".into(),
            os_prefix: String::new(),
            kernel: "k".into(),
            initramfs: None,
            extra_initramfs: vec![],
            cmdline_file: "cmdline.txt".into(),
            cmdline: "console=serial0,115200 root=/dev/vda2".into(),
            device_tree: None,
            settings: Default::default(),
            notes: vec![],
        };
        assert_eq!(
            h.qemu_cmdline(&mut sel),
            "console=ttyAMA0,115200 root=/dev/vda2 x=1"
        );
        assert_eq!(sel.notes.len(), 1);
    }
}
