//! Starting and watching one `qemu-system-aarch64 -M virt` process.
//!
//! The guest's serial console goes to a file; every wait polls that file, bounded by the VM's
//! hard deadline, and the process is ended through its own handle (never by name).

use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The QEMU binary; `PIDEPLOY_QEMU` overrides it (for a QEMU outside `PATH`).
const QEMU_BIN: &str = "qemu-system-aarch64";

/// How often the serial log is looked at while waiting.
const POLL: Duration = Duration::from_millis(50);

/// How many bytes of the serial log an error message carries.
const TAIL_BYTES: usize = 3000;

/// Markers that end a wait at once: the guest said it failed.
pub const DEFAULT_FAILURE_MARKERS: &[&str] = &["PIDEPLOY-FAIL", "Kernel panic - not syncing"];

/// How one VM is started.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Raw disk image, attached read-write as virtio-blk.
    pub image: PathBuf,
    /// Kernel `Image` passed to `-kernel`.
    pub kernel: PathBuf,
    /// Initramfs passed to `-initrd`.
    pub initrd: Option<PathBuf>,
    /// Kernel command line (`-append`).
    pub append: String,
    /// Guest memory in MiB (1024 is enough and fast).
    pub memory_mb: u32,
    /// CPU model; `cortex-a72` (`max` is 3-4x slower under TCG).
    pub cpu: String,
    /// Host port forwarded to the guest's port 22 on 127.0.0.1, if any.
    pub ssh_port: Option<u16>,
    /// Where the guest's serial console is written.
    pub serial_log: PathBuf,
    /// Hard limit on the VM's life: it is killed when this runs out, whatever is waiting.
    pub timeout: Duration,
    /// More `-device` specs (e.g. `virtio-rng-pci`), added after the disk and network. None may need
    /// an option ROM: nothing provides one (give `romfile=` for devices that would load one).
    pub extra_devices: Vec<String>,
    /// More QEMU arguments, last (e.g. the `-chardev` a `virtconsole` device writes to).
    pub extra_args: Vec<String>,
    /// More ports forwarded from 127.0.0.1 to the guest (a web server on 80, mDNS on 5353/udp).
    pub forwards: Vec<Forward>,
    /// The hardware watchdog the Pi firmware arms before the kernel (`kernel_watchdog_timeout`):
    /// see [`FirmwareWatchdog`].
    pub watchdog: Option<FirmwareWatchdog>,
}

/// A port of 127.0.0.1 forwarded to the guest's port (QEMU user networking's `hostfwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// `true` for UDP, `false` for TCP.
    pub udp: bool,
    /// Port on 127.0.0.1.
    pub host: u16,
    /// Port in the guest.
    pub guest: u16,
}

impl Forward {
    /// The `hostfwd=` value.
    fn hostfwd(&self) -> String {
        let proto = if self.udp { "udp" } else { "tcp" };
        format!("{proto}:127.0.0.1:{}-:{}", self.host, self.guest)
    }
}

impl std::str::FromStr for Forward {
    type Err = String;
    /// `[tcp:|udp:]HOSTPORT:GUESTPORT`, e.g. `8080:80` or `udp:5353:5353`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (udp, rest) = match s.split_once(':') {
            Some(("udp", r)) => (true, r),
            Some(("tcp", r)) => (false, r),
            _ => (false, s),
        };
        let bad =
            || format!("{s:?} is not a forward: write [tcp:|udp:]HOSTPORT:GUESTPORT, e.g. 8080:80");
        let (h, g) = rest.split_once(':').ok_or_else(bad)?;
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
        Ok(Forward {
            udp,
            host: port(h)?,
            guest: port(g)?,
        })
    }
}

/// What the line a guest prints once it holds `/dev/watchdog` starts with (the generation's
/// `watchdog-feeder`, src/closure/scripts/watchdog-feeder.sh, prints it after opening the device).
pub const WATCHDOG_OPENED_MARKER: &str = "pideploy: watchdog: opened /dev/watchdog";

/// The Pi firmware's `kernel_watchdog_timeout=N`: the hardware watchdog runs from before the
/// kernel, Linux keeps it alive for `watchdog.open_timeout=N` seconds, and unless the OS has
/// opened `/dev/watchdog` (and then keeps kicking it) by then, the Pi resets
/// (https://www.raspberrypi.com/documentation/computers/config_txt.html#kernel_watchdog_timeout).
///
/// QEMU cannot arm a watchdog before the guest runs, so the VM gets QEMU's PCI `i6300esb`
/// watchdog (reset action; under `-no-reboot` a reset ends QEMU, which the harness treats as the
/// power cycle it is) for the part after the hand-over, which is then real: a guest that stops
/// kicking it is reset by QEMU. The part before it (firmware to the OS's first open) is kept by
/// the VM itself: when [`WATCHDOG_OPENED_MARKER`] has not appeared on the console `open_timeout`
/// after QEMU started, QEMU is killed as the reset would have ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareWatchdog {
    /// `kernel_watchdog_timeout`, the time the OS has to open the watchdog.
    pub open_timeout: Duration,
}

impl VmConfig {
    /// A config with the defaults the notes measured as fast: 1024 MiB, `cortex-a72`, 60 s.
    pub fn new(image: PathBuf, kernel: PathBuf, serial_log: PathBuf) -> Self {
        VmConfig {
            image,
            kernel,
            initrd: None,
            append: "console=ttyAMA0 panic=-1".into(),
            memory_mb: 1024,
            cpu: "cortex-a72".into(),
            ssh_port: None,
            serial_log,
            timeout: Duration::from_secs(60),
            extra_devices: Vec::new(),
            extra_args: Vec::new(),
            forwards: Vec::new(),
            watchdog: None,
        }
    }

    /// The full `qemu-system-aarch64` argument list (without the program name).
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-M".into(),
            "virt".into(),
            "-cpu".into(),
            self.cpu.clone(),
            "-smp".into(),
            "1".into(),
            "-m".into(),
            self.memory_mb.to_string(),
            "-nographic".into(),
            "-no-reboot".into(),
            "-monitor".into(),
            "none".into(),
            "-serial".into(),
            format!("file:{}", self.serial_log.display()),
            "-kernel".into(),
            self.kernel.display().to_string(),
        ];
        if let Some(initrd) = &self.initrd {
            args.extend(["-initrd".into(), initrd.display().to_string()]);
        }
        args.extend(["-append".into(), self.append.clone()]);
        // QEMU's -drive option list uses `,` as separator; a literal comma in the path is `,,`.
        let image = self.image.display().to_string().replace(',', ",,");
        args.extend([
            "-drive".into(),
            format!("file={image},format=raw,if=none,id=d0"),
            "-device".into(),
            "virtio-blk-pci,drive=d0".into(),
        ]);
        let mut netdev = match self.ssh_port {
            Some(port) => format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"),
            None => "user,id=n0".into(),
        };
        for f in &self.forwards {
            netdev += &format!(",hostfwd={}", f.hostfwd());
        }
        // `romfile=` (empty): QEMU would otherwise load the iPXE option ROM `efi-virtio.rom`
        // (Debian's ipxe-qemu) and refuse to start without it. The guest boots by `-kernel`;
        // nothing ever network-boots, so no device here needs a ROM.
        args.extend([
            "-netdev".into(),
            netdev,
            "-device".into(),
            "virtio-net-pci,netdev=n0,romfile=".into(),
        ]);
        for d in &self.extra_devices {
            args.extend(["-device".into(), d.clone()]);
        }
        args.extend(self.extra_args.iter().cloned());
        if self.watchdog.is_some() {
            // `-action watchdog=reset` is QEMU's default, spelled out: the Pi's watchdog resets.
            args.extend([
                "-device".into(),
                "i6300esb".into(),
                "-action".into(),
                "watchdog=reset".into(),
            ]);
        }
        args
    }
}

/// What went wrong starting or watching a VM.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// QEMU is not installed.
    #[error("{bin} not found: apt-get install qemu-system-arm")]
    NotInstalled {
        /// The binary looked for.
        bin: String,
    },
    /// A file QEMU needs could not be prepared.
    #[error("preparing {what} at {path}: {source}")]
    Io {
        /// What was being prepared.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// QEMU could not be started.
    #[error("starting {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// QEMU ended before the awaited marker appeared.
    #[error("QEMU exited ({status}) before `{marker}` appeared on the serial console; QEMU said: {stderr}\n--- serial log tail ---\n{tail}")]
    ExitedEarly {
        /// The marker waited for.
        marker: String,
        /// QEMU's exit status.
        status: ExitStatus,
        /// QEMU's own stderr.
        stderr: String,
        /// The end of the serial log.
        tail: String,
    },
    /// The guest printed a failure marker.
    #[error("the guest printed the failure marker `{failure}` while waiting for `{marker}`\n--- serial log tail ---\n{tail}")]
    GuestFailed {
        /// The marker waited for.
        marker: String,
        /// The failure marker seen.
        failure: String,
        /// The end of the serial log.
        tail: String,
    },
    /// Time ran out.
    #[error("timed out after {waited:?} waiting for {what}; the VM was killed\n--- serial log tail ---\n{tail}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The end of the serial log.
        tail: String,
    },
    /// Waiting on the QEMU process failed.
    #[error("waiting for QEMU (pid {pid}): {source}")]
    Wait {
        /// QEMU's pid.
        pid: u32,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Reserves a free TCP port on 127.0.0.1 by binding port 0 and releasing it.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A running (or finished) QEMU process and its serial log.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    serial_log: PathBuf,
    stderr_log: PathBuf,
    deadline: Instant,
    started: Instant,
    exit: Option<ExitStatus>,
    failure_markers: Vec<String>,
    /// When the firmware's watchdog resets a guest that has not opened it (see [`FirmwareWatchdog`]).
    watchdog_deadline: Option<Instant>,
    watchdog_reset: bool,
}

fn qemu_bin() -> String {
    std::env::var("PIDEPLOY_QEMU").unwrap_or_else(|_| QEMU_BIN.to_string())
}

impl Vm {
    /// Starts QEMU as configured. The serial log is truncated first.
    pub fn start(cfg: &VmConfig) -> Result<Vm, QemuError> {
        Self::start_with(&qemu_bin(), cfg)
    }

    fn start_with(bin: &str, cfg: &VmConfig) -> Result<Vm, QemuError> {
        let bin = bin.to_string();
        let io_err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| QemuError::Io { what, path, source }
        };
        File::create(&cfg.serial_log).map_err(io_err("the serial log", &cfg.serial_log))?;
        let stderr_log = cfg.serial_log.with_extension("qemu-stderr");
        let stderr = File::create(&stderr_log).map_err(io_err("QEMU's stderr log", &stderr_log))?;
        let stdout = stderr
            .try_clone()
            .map_err(io_err("QEMU's stderr log", &stderr_log))?;
        let mut cmd = Command::new(&bin);
        cmd.args(cfg.args())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // QEMU ends with whoever started it (killed, Ctrl-C, a test's timeout): an orphaned VM would
        // keep its CPU, its port forwards and the image. prctl(2), PR_SET_PDEATHSIG; if the parent
        // is already gone when the child gets here, it leaves at once.
        let parent = std::process::id() as libc::pid_t;
        // The one unsafe block of the workspace (unsafe_code is denied): std has no safe way to
        // run code between fork and exec. SAFETY: only async-signal-safe calls (prctl, getppid,
        // _exit), no allocation, nothing shared with the parent.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                QemuError::NotInstalled { bin: bin.clone() }
            } else {
                QemuError::Spawn {
                    bin: bin.clone(),
                    source,
                }
            }
        })?;
        let started = Instant::now();
        Ok(Vm {
            child,
            serial_log: cfg.serial_log.clone(),
            stderr_log,
            deadline: started + cfg.timeout,
            started,
            exit: None,
            watchdog_deadline: cfg.watchdog.map(|w| started + w.open_timeout),
            watchdog_reset: false,
            failure_markers: DEFAULT_FAILURE_MARKERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        })
    }

    /// Replaces the markers that make [`Vm::wait_for`] fail at once.
    pub fn set_failure_markers(&mut self, markers: Vec<String>) {
        self.failure_markers = markers;
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How long ago QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until `marker` appears on the serial console. Fails with the log tail when QEMU
    /// exits first, a failure marker appears, or `timeout` (or the VM's hard deadline) passes —
    /// in the last case the VM is killed.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<(), QemuError> {
        let begin = Instant::now();
        let until = self.deadline.min(begin + timeout);
        loop {
            let log = self.serial_log();
            if log.contains(marker) {
                return Ok(());
            }
            if let Some(failure) = self
                .failure_markers
                .iter()
                .find(|f| log.contains(f.as_str()))
            {
                return Err(QemuError::GuestFailed {
                    marker: marker.to_string(),
                    failure: failure.clone(),
                    tail: tail(&log),
                });
            }
            if let Some(status) = self.poll_exit()? {
                // The last bytes may have landed between the read and the exit.
                let log = self.serial_log();
                if log.contains(marker) {
                    return Ok(());
                }
                return Err(QemuError::ExitedEarly {
                    marker: marker.to_string(),
                    status,
                    stderr: self.qemu_stderr(),
                    tail: tail(&log),
                });
            }
            if Instant::now() >= until {
                self.kill();
                return Err(QemuError::Timeout {
                    what: format!("`{marker}` on the serial console"),
                    waited: begin.elapsed(),
                    tail: tail(&self.serial_log()),
                });
            }
            thread::sleep(POLL);
        }
    }

    /// Waits for QEMU to exit by itself; kills it and fails when `timeout` (or the hard deadline)
    /// passes first.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, QemuError> {
        let begin = Instant::now();
        let until = self.deadline.min(begin + timeout);
        loop {
            if let Some(status) = self.poll_exit()? {
                return Ok(status);
            }
            if Instant::now() >= until {
                self.kill();
                return Err(QemuError::Timeout {
                    what: "QEMU to exit".into(),
                    waited: begin.elapsed(),
                    tail: tail(&self.serial_log()),
                });
            }
            thread::sleep(POLL);
        }
    }

    /// Kills QEMU (only this process, through its handle) and reaps it. Harmless when it already
    /// exited.
    pub fn kill(&mut self) {
        if self.exit.is_some() {
            return;
        }
        // An error here means it exited on its own between the checks; wait() reaps either way.
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exit = Some(status);
        }
    }

    /// Everything the guest wrote to its serial console so far.
    pub fn serial_log(&self) -> String {
        fs::read(&self.serial_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The path of the serial log.
    pub fn serial_log_path(&self) -> &Path {
        &self.serial_log
    }

    /// The exit status, once QEMU has ended.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// Whether the emulated firmware watchdog reset (ended) the guest because it never opened
    /// `/dev/watchdog` in time.
    pub fn watchdog_reset(&self) -> bool {
        self.watchdog_reset
    }

    fn poll_exit(&mut self) -> Result<Option<ExitStatus>, QemuError> {
        if let Some(status) = self.exit {
            return Ok(Some(status));
        }
        if let Some(deadline) = self.watchdog_deadline {
            if self.serial_log().contains(WATCHDOG_OPENED_MARKER) {
                // Handed over: from now on QEMU's i6300esb resets a guest that stops kicking it.
                self.watchdog_deadline = None;
            } else if Instant::now() >= deadline {
                self.kill();
                self.watchdog_reset = true;
                return Ok(self.exit);
            }
        }
        let status = self.child.try_wait().map_err(|source| QemuError::Wait {
            pid: self.child.id(),
            source,
        })?;
        self.exit = status;
        Ok(status)
    }

    /// What QEMU printed on stderr (and stdout) so far, trimmed.
    pub fn qemu_stderr(&self) -> String {
        fs::read_to_string(&self.stderr_log)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last few KiB of a log, cut at a character boundary.
pub(crate) fn tail(log: &str) -> String {
    if log.len() <= TAIL_BYTES {
        return log.to_string();
    }
    let mut start = log.len() - TAIL_BYTES;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    log[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_match_the_measured_command_line() {
        let mut cfg = VmConfig::new(
            "/i/disk,1.img".into(),
            "/k/Image".into(),
            "/l/serial.log".into(),
        );
        cfg.initrd = Some("/k/initrd".into());
        cfg.ssh_port = Some(2222);
        let args = cfg.args().join(" ");
        assert!(args.starts_with(
            "-M virt -cpu cortex-a72 -smp 1 -m 1024 -nographic -no-reboot -monitor none"
        ));
        assert!(args.contains("-serial file:/l/serial.log"));
        assert!(
            args.contains("-kernel /k/Image -initrd /k/initrd -append console=ttyAMA0 panic=-1")
        );
        assert!(args.contains(
            "-drive file=/i/disk,,1.img,format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0"
        ));
        assert!(args.contains(
            "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=n0,romfile="
        ));
        cfg.extra_devices = vec!["virtio-rng-pci".into(), "usb-tablet".into()];
        cfg.extra_args = vec!["-chardev".into(), "null,id=c".into()];
        cfg.forwards = vec!["8080:80".parse().unwrap(), "udp:5353:5353".parse().unwrap()];
        assert!(cfg
            .args()
            .join(" ")
            .ends_with("romfile= -device virtio-rng-pci -device usb-tablet -chardev null,id=c"));
        assert!(cfg.args().join(" ").contains(
            "hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:5353 "
        ));
        for bad in ["80", "tcp:0:80", "sctp:1:2", "1:99999", "a:b"] {
            assert!(bad.parse::<Forward>().is_err(), "{bad}");
        }
        cfg.extra_args.clear();
        assert!(!args.contains("i6300esb"));
        cfg.watchdog = Some(FirmwareWatchdog {
            open_timeout: Duration::from_secs(5),
        });
        assert!(cfg
            .args()
            .join(" ")
            .ends_with("-device i6300esb -action watchdog=reset"));
    }

    #[test]
    fn free_port_is_bindable() {
        // Another process may take a released port at any moment; one of a few must be bindable.
        let bound = (0..5).any(|_| {
            let port = free_port().unwrap();
            assert_ne!(port, 0);
            TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        assert!(bound, "no port from free_port() could be bound again");
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = "é".repeat(4000);
        let t = tail(&long);
        assert!(t.len() <= TAIL_BYTES);
        assert!(long.ends_with(&t));
    }

    #[test]
    fn missing_qemu_says_how_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = VmConfig::new("/x.img".into(), "/k".into(), dir.path().join("serial.log"));
        let err = Vm::start_with("qemu-system-aarch64-not-installed-here", &cfg).unwrap_err();
        assert!(matches!(err, QemuError::NotInstalled { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "qemu-system-aarch64-not-installed-here not found: apt-get install qemu-system-arm"
        );
    }
}
