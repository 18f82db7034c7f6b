//! Headless first contact on QEMU, configured only by pi.toml: the clock starts in 2001 (QEMU's RTC
//! set back) and systemd-timesyncd sets it from an NTP server this test runs on the host; a reboot
//! with that server gone keeps the time timesyncd saved instead of going back to 2001; an RTC that
//! appears sets a clock that is behind it forward (pideploy's udev rule); the locale
//! (`de_DE.UTF-8`, taken from Debian's precompiled locales) and time zone reach login shells and
//! services; the console keymap is German; and avahi answers `<hostname>.local` and announces
//! `_ssh._tcp` to a real DNS client (dig) on the guest's link.
//!
//! mDNS goes over a second network card on a tap device moved into a network namespace this test
//! makes: QEMU's user network delivers forwarded UDP from 127.0.0.1, which the guest drops as a
//! martian source, so it cannot carry the query. Needs root (for port 123, the tap and the
//! namespace), as CI has.

mod common;

use std::fs;
use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::guest::Guest;
use common::*;

/// Seconds from 1900 (NTP's era 0) to 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A minimal NTP server (RFC 5905 server mode) on 127.0.0.1:123, which QEMU's user network shows
/// the guest as 10.0.2.2:123. Answers with the host's clock as a stratum-1 source.
struct NtpServer {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

fn ntp_time(t: SystemTime) -> [u8; 8] {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    let secs = (d.as_secs() + NTP_UNIX_OFFSET) as u32;
    let frac = ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&secs.to_be_bytes());
    out[4..].copy_from_slice(&frac.to_be_bytes());
    out
}

impl NtpServer {
    fn start() -> NtpServer {
        let sock = UdpSocket::bind("127.0.0.1:123")
            .expect("binding 127.0.0.1:123 for the test's NTP server (needs root, and no NTP server running)");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (s2, n2) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s2.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                // A client request: mode 3, at least the 48-byte header.
                if len < 48 || buf[0] & 7 != 3 {
                    continue;
                }
                let received = ntp_time(SystemTime::now());
                let mut reply = [0u8; 48];
                let version = (buf[0] >> 3) & 7;
                reply[0] = (version << 3) | 4; // no leap warning, server mode
                reply[1] = 1; // stratum 1: a reference clock
                reply[2] = buf[2]; // poll, as asked
                reply[3] = 0xEC; // precision 2^-20 s
                                 // Root delay and dispersion 0; reference id "GPS".
                reply[12..16].copy_from_slice(b"GPS\0");
                reply[16..24].copy_from_slice(&received);
                reply[24..32].copy_from_slice(&buf[40..48]); // origin: the client's transmit time
                reply[32..40].copy_from_slice(&received);
                reply[40..48].copy_from_slice(&ntp_time(SystemTime::now()));
                if sock.send_to(&reply, from).is_ok() {
                    n2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        NtpServer {
            stop,
            served,
            thread: Some(thread),
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for NtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A network namespace of this test's, held by an `unshare --net` process and entered with
/// `nsenter` (not `ip netns`, whose mounts fail in a chroot such as CI's fresh machine). It goes,
/// with the tap moved into it, when the holder is killed on drop.
struct Netns(std::process::Child);

impl Netns {
    fn new() -> Netns {
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "100000"])
            .spawn()
            .expect("unshare (util-linux)");
        let mine = fs::read_link("/proc/self/ns/net").unwrap();
        let theirs = format!("/proc/{}/ns/net", holder.id());
        let start = Instant::now();
        while fs::read_link(&theirs).map_or(true, |l| l == mine) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "unshare --net made no namespace"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Netns(holder)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    fn exec(&self, cmd: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid(), "-n"])
            .args(cmd)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ip(&self, args: &[&str]) {
        run(Command::new("nsenter")
            .args(["-t", &self.pid(), "-n", "ip"])
            .args(args));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn clock_locale_keymap_and_mdns_on_first_boot() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (key, public) = keypair(w);
    let cfg = w.join("pi.toml");
    fs::write(
        &cfg,
        format!(
            r#"board = "qemu-aarch64"
hostname = "firstpi"
timezone = "Europe/Berlin"
locale = "de_DE.UTF-8"
keyboard = "de"

[time]
servers = ["10.0.2.2"]

[[users]]
name = "pi"
uid = 1000
sudo = true
ssh_authorized_keys = ["{public}"]
"#
        ),
    )
    .unwrap();
    let lock = w.join("pideploy.lock");
    let (cache, store) = (w.join("cache"), w.join("store"));
    lock_and_import(&cfg, &lock, &cache, &store);
    let pd = || {
        let mut c = pideploy();
        env_for(&mut c, &cache, &store);
        c
    };
    // Names Debian does not have are refused at build time, each naming its field.
    for (field, good, bad, says) in [
        (
            "locale",
            "de_DE.UTF-8",
            "de_XX.UTF-8",
            "locale: \"de_XX.UTF-8\" is not a locale Debian builds",
        ),
        (
            "keyboard",
            "\"de\"",
            "\"dee\"",
            "keyboard: \"dee\" is not a console keymap of console-data",
        ),
    ] {
        let dir = w.join(format!("bad-{field}"));
        fs::create_dir_all(&dir).unwrap();
        let text = fs::read_to_string(&cfg).unwrap().replace(good, bad);
        fs::write(dir.join("pi.toml"), text).unwrap();
        fs::copy(&lock, dir.join("pideploy.lock")).unwrap();
        let out = pd()
            .arg("build")
            .arg("-c")
            .arg(dir.join("pi.toml"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{field}: {err}"
        );
    }

    let img = w.join("pi.img");
    run(pd().arg("image").arg("-c").arg(&cfg).arg("-o").arg(&img));

    let mut ntp = NtpServer::start();
    let tap = format!("pdt{}", std::process::id() % 100_000);
    let ns = Netns::new();
    let qemu_args = [
        "-rtc".to_string(),
        "base=2001-02-03T04:05:06".into(),
        "-netdev".into(),
        format!("tap,id=n1,ifname={tap},script=no,downscript=no"),
        "-device".into(),
        "virtio-net-pci,netdev=n1,romfile=".into(),
    ];
    let extra: Vec<String> = qemu_args
        .iter()
        .map(|a| format!("--qemu-arg={a}"))
        .collect();
    let mut vm = Guest::start_with(
        &img,
        w.join("console.log"),
        Duration::from_secs(600),
        3,
        &extra,
    );
    // QEMU makes the tap in this namespace; it keeps its end when the device moves into ours.
    let start = Instant::now();
    while !Command::new("ip")
        .args(["link", "show", &tap])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "QEMU made no tap {tap}: {}",
            vm.harness_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run(Command::new("ip").args(["link", "set", &tap, "netns", &ns.pid()]));
    ns.ip(&["addr", "add", "192.168.231.1/24", "dev", &tap]);
    ns.ip(&["link", "set", &tap, "up"]);

    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(200));
    let known = vm.known_hosts(w);
    let ssh = |vm: &Guest, cmd: &str| vm.ssh(&known, &key, "pi", cmd);

    // SSH is up before the boot's last start jobs (dbus among them) are done.
    assert_eq!(vm.system_state(&known, &key, "pi"), "running");

    // 1. Time: the clock began in 2001 and timesyncd set it from the host's server.
    assert!(
        vm.console().contains("setting system clock to 2001-02-03"),
        "the RTC started the clock in 2001"
    );
    let start = Instant::now();
    while ssh(&vm, "timedatectl show -p NTPSynchronized --value") != "yes" {
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "no NTP sync; server answered {} requests; {}",
            ntp.served(),
            ssh(
                &vm,
                "sudo -n journalctl -u systemd-timesyncd --no-pager | tail -5"
            )
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(ntp.served() > 0);
    let synced_at = now_secs();
    let guest: u64 = ssh(&vm, "date +%s").parse().unwrap();
    assert!(guest.abs_diff(now_secs()) < 60, "guest clock {guest}");
    // The synchronised kernel wrote the RTC (RTC_SYSTOHC). With timesyncd stopped and the clock
    // set back an hour, an RTC appearing (udev "add", as when its driver is a module) sets the
    // clock forward from it: pideploy's rule starts a service for it, which logs to the kernel log.
    ssh(
        &vm,
        "sudo -n systemctl stop systemd-timesyncd && \
         sudo -n date -s @$(( $(date +%s) - 3600 )) >/dev/null && \
         sudo -n udevadm trigger -c add /sys/class/rtc/rtc0",
    );
    let start = Instant::now();
    loop {
        let guest: u64 = ssh(&vm, "date +%s").parse().unwrap();
        if guest.abs_diff(now_secs()) < 60 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the clock was not set forward from the RTC: {guest}; {}",
            ssh(
                &vm,
                "sudo -n journalctl -u 'pideploy-rtc-to-clock@*' --no-pager || true"
            )
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(ssh(&vm, "sudo -n dmesg").contains("pideploy: clock set from rtc0"));

    // 2. Locale and time zone for login shells and for services.
    assert_eq!(
        ssh(&vm, "bash -lc 'echo $LANG; printf \"%(%A %Z)T\\n\" 0'"),
        "de_DE.UTF-8\nDonnerstag CET"
    );
    assert!(ssh(&vm, "systemctl show-environment").contains("LANG=de_DE.UTF-8"));
    assert_eq!(ssh(&vm, "ls /usr/lib/locale"), "de_DE.utf8");

    // 3. Console keymap: German layout swaps Y and Z (key codes 21 and 44).
    assert_eq!(
        ssh(&vm, "sudo -n systemctl is-active pideploy-keymap"),
        "active"
    );
    let keys = ssh(
        &vm,
        "sudo -n dumpkeys -C /dev/tty1 | grep -E '^keycode +(21|44) '",
    );
    let keys: Vec<&str> = keys
        .lines()
        .map(|l| l.split_whitespace().nth(3).unwrap_or(""))
        .collect();
    assert_eq!(keys, ["z", "y"]);

    // 4. mDNS on the second card's link, from a real DNS client in the namespace.
    ssh(
        &vm,
        "sudo -n ip addr add 192.168.231.2/24 dev eth1 && sudo -n ip link set eth1 up",
    );
    let dig = |q: &[&str]| {
        let mut cmd = vec!["dig", "+time=2", "+tries=1", "-p", "5353", "@192.168.231.2"];
        cmd.extend_from_slice(q);
        ns.exec(&cmd)
    };
    let start = Instant::now();
    let mut a = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        a = dig(&["firstpi.local", "A", "+short"]);
        if a.trim() == "192.168.231.2" {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(a.trim(), "192.168.231.2", "firstpi.local over mDNS");
    let ptr = dig(&["_ssh._tcp.local", "PTR"]);
    assert!(ptr.contains("firstpi._ssh._tcp.local."), "{ptr}");
    let srv = dig(&["firstpi._ssh._tcp.local", "SRV", "+short"]);
    assert!(srv.contains(" 22 firstpi.local."), "{srv}");
    // AAAA: the card's IPv6 link-local address (the guest has no other IPv6 address).
    let aaaa = dig(&["firstpi.local", "AAAA", "+short"]);
    assert!(aaaa.trim().starts_with("fe80::"), "{aaaa}");

    // 5. A reboot without the NTP server: the RTC says 2001 again, timesyncd's saved clock wins.
    ntp.stop();
    vm.ssh_detached(&known, &key, "pi", "sudo -n reboot");
    vm.wait_for_nth("PIDEPLOY-READY", 2, Duration::from_secs(200));
    // Right as SSH answers, before systemd has started timesyncd: stage 2 restored it.
    let guest: u64 = ssh(&vm, "date +%s").parse().unwrap();
    assert!(
        guest + 5 >= synced_at,
        "clock went back after reboot: {guest} < {synced_at}"
    );
    assert!(vm
        .console()
        .contains("pideploy: clock set forward to the last synchronised time"));
    assert_eq!(vm.system_state(&known, &key, "pi"), "running");
    assert_eq!(
        ssh(&vm, "timedatectl show -p NTPSynchronized --value"),
        "no"
    );
    vm.power_off(&known, &key, "pi");
}
