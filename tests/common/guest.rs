//! A QEMU guest booted by `pideploy qemu` (all its boots), its console captured, reached over SSH
//! with strict host-key checking against the key the guest printed on that console.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{pideploy, run};

/// One `pideploy qemu` run; killed (by its own handle) when dropped.
pub struct Guest {
    /// The `pideploy qemu` process.
    pub child: Child,
    /// Its stdout: the guest console of every boot.
    pub log: PathBuf,
    /// Host port forwarded to the guest's SSH server.
    pub port: u16,
}

fn kill(pids: &[u32]) {
    for p in pids {
        let _ = Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .status();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // Killed alone, `pideploy qemu` would leave its QEMU running; killed first, QEMU would be
        // restarted by it. So: note QEMU, stop the harness, then QEMU.
        let qemu = self.qemu_pids();
        let _ = self.child.kill();
        kill(&qemu);
        let _ = self.child.wait();
    }
}

impl Guest {
    /// Boots `image` with a hard `timeout`, following up to `max_boots` boots.
    pub fn start(image: &Path, log: PathBuf, timeout: Duration, max_boots: u32) -> Guest {
        Guest::start_with(image, log, timeout, max_boots, &[])
    }

    /// [`Guest::start`] with more `pideploy qemu` arguments (e.g. `--forward 8080:80`).
    pub fn start_with(
        image: &Path,
        log: PathBuf,
        timeout: Duration,
        max_boots: u32,
        extra: &[String],
    ) -> Guest {
        let port = pideploy_qemu::free_port().unwrap();
        let child = pideploy()
            .arg("qemu")
            .arg(image)
            .args(extra)
            .args(["--ssh-port", &port.to_string()])
            .args(["--timeout", &timeout.as_secs().to_string()])
            .args(["--max-boots", &max_boots.to_string()])
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(log.with_extension("harness")).unwrap())
            .spawn()
            .unwrap();
        Guest { child, log, port }
    }

    /// What `pideploy qemu` said about each boot (which config file selected what).
    pub fn harness_log(&self) -> String {
        fs::read_to_string(self.log.with_extension("harness")).unwrap_or_default()
    }

    /// Pulls the plug: QEMU (the only child of `pideploy qemu`) is killed outright, nothing in the
    /// guest gets to flush or unmount. The harness then powers it up again, as after a power cut.
    pub fn power_cut(&mut self) {
        kill(&self.qemu_pids());
    }

    /// QEMU: the children of `pideploy qemu`.
    fn qemu_pids(&self) -> Vec<u32> {
        let me = self.child.id();
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(me) {
                out.push(pid);
            }
        }
        out
    }

    /// Everything the console showed so far.
    pub fn console(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `marker` has appeared `count` times; panics with the console on timeout or exit.
    pub fn wait_for_nth(&mut self, marker: &str, count: usize, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.console();
            if text.matches(marker).count() >= count {
                return text;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!(
                    "pideploy qemu ended ({st}) before {marker:?} #{count}:\n{text}\n--- pideploy qemu said:\n{}",
                    self.harness_log()
                );
            }
            assert!(
                start.elapsed() < limit,
                "no {marker:?} #{count} after {limit:?}:\n{text}\n--- pideploy qemu said:\n{}",
                self.harness_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the first `marker`.
    pub fn wait_for(&mut self, marker: &str, limit: Duration) -> String {
        self.wait_for_nth(marker, 1, limit)
    }

    /// Writes `dir/known_hosts` trusting only the host key the guest printed last; returns its path.
    pub fn known_hosts(&self, dir: &Path) -> PathBuf {
        let console = self.console();
        let host_key = console
            .lines()
            .rev()
            .find_map(|l| l.split("ssh host key: ").nth(1))
            .expect("the guest prints its ssh host key")
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let known = dir.join("known_hosts");
        fs::write(&known, format!("[127.0.0.1]:{} {host_key}\n", self.port)).unwrap();
        known
    }

    /// An OpenSSH command for `user` running `cmd`, with strict checking against `known`.
    pub fn ssh_cmd(&self, known: &Path, key: &Path, user: &str, cmd: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=30"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("-i")
        .arg(key)
        .args(["-p", &self.port.to_string()])
        .arg(format!("{user}@127.0.0.1"))
        .arg(cmd);
        c
    }

    /// Runs `cmd` over SSH (must succeed); its trimmed stdout.
    pub fn ssh(&self, known: &Path, key: &Path, user: &str, cmd: &str) -> String {
        let out = run(&mut self.ssh_cmd(known, key, user, cmd));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until systemd has finished starting the boot's units (SSH answers before that) and
    /// returns the system's state: `running`, or `degraded` when a unit failed.
    pub fn system_state(&self, known: &Path, key: &Path, user: &str) -> String {
        self.ssh(
            known,
            key,
            user,
            "sudo -n systemctl is-system-running --wait || true",
        )
    }

    /// Runs a command that ends the connection under itself (reboot, poweroff): its status says nothing.
    pub fn ssh_detached(&self, known: &Path, key: &Path, user: &str, cmd: &str) {
        let _ = self
            .ssh_cmd(known, key, user, cmd)
            .stderr(Stdio::null())
            .output();
    }

    /// Powers off over SSH (`sudo -n poweroff` as `user`) and expects `pideploy qemu` to exit 0.
    pub fn power_off(&mut self, known: &Path, key: &Path, user: &str) {
        self.ssh_detached(known, key, user, "sudo -n poweroff");
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no power-off");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(status.success(), "clean power-off: {status}");
    }
}
