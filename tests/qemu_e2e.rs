//! End to end on QEMU: a qemu-aarch64 image built from real Debian arm64 packages and a host config
//! boots (boot entry chosen like the Pi firmware), serves SSH with the configured key and the host
//! key it printed, carries the config's users, files and services, powers off with a clean journal,
//! and is bit-identical when built again elsewhere. A broken root fails fast with its marker.
//!
//! One boot for the happy path keeps this within a couple of minutes under TCG.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::guest::Guest;
use common::*;

fn config_text(public_key: &str) -> String {
    format!(
        r#"board = "qemu-aarch64"
hostname = "testpi"

[network.ethernet]
dhcp = false
address = "10.0.2.15/24"
gateway = "10.0.2.2"
dns = ["10.0.2.3"]

[[users]]
name = "alice"
uid = 1001
sudo = true
ssh_authorized_keys = ["{public_key}"]

[[files]]
path = "/etc/motd"
content = "hello from pideploy\n"

[[files]]
path = "/home/alice/notes.txt"
content = "notes\n"
mode = "0664"
owner = "alice"
group = "alice"

[[services]]
name = "stamp"
command = ["/bin/sh", "-c", "echo started > /run/stamp; exec sleep 100000"]
restart = "always"
"#
    )
}

fn build_image(
    config: &Path,
    lock: &Path,
    cache: &Path,
    store: &Path,
    out: &Path,
    umask: &str,
    tz: &str,
) -> String {
    let script = format!("umask {umask}; exec \"$0\" \"$@\"");
    let mut cmd = Command::new("sh");
    env_for(&mut cmd, cache, store)
        .env("TZ", tz)
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_pideploy"))
        .arg("image")
        .arg("--config")
        .arg(config)
        .arg("--lock")
        .arg(lock)
        .arg("-o")
        .arg(out);
    run(&mut cmd);
    sha256sum(out)
}

#[test]
fn qemu_image_boots_serves_ssh_and_is_reproducible() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (key, public) = keypair(w);
    let config = w.join("pi.toml");
    fs::write(&config, config_text(&public)).unwrap();
    let lock = w.join("pideploy.lock");
    let cache = w.join("cache");
    lock_and_import(&config, &lock, &cache, &w.join("store-a"));

    // Reproducible: two stores, two output directories, different umask and TZ.
    let img = w.join("a/pi.img");
    fs::create_dir_all(img.parent().unwrap()).unwrap();
    let sha_a = build_image(
        &config,
        &lock,
        &cache,
        &w.join("store-a"),
        &img,
        "022",
        "UTC",
    );
    let other = w.join("b/elsewhere/pi.img");
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    let sha_b = build_image(
        &config,
        &lock,
        &cache,
        &w.join("store-b"),
        &other,
        "077",
        "Asia/Tokyo",
    );
    assert_eq!(
        sha_a, sha_b,
        "same config + lock + board must give the same image"
    );
    fs::remove_file(&other).unwrap();

    // Independent checks of the partitions.
    let parts = partitions(&img);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].2, "c", "boot partition is FAT32 LBA");
    assert_eq!(parts[1].2, "83");
    let boot = w.join("boot.part");
    extract(&img, parts[0].0, parts[0].1, &boot);
    run(Command::new("fsck.fat").arg("-n").arg(&boot));

    // Boot it.
    let mut vm = Guest::start(&img, w.join("console.log"), Duration::from_secs(240), 4);
    let port = vm.port;
    let console = vm.wait_for("PIDEPLOY-READY", Duration::from_secs(180));
    assert!(console.contains("pideploy: root is /dev/vda2"), "{console}");
    let known = vm.known_hosts(w);
    let ssh = |cmd: &str| vm.ssh(&known, &key, "alice", cmd);
    assert!(
        console.contains("pideploy: eth0 has 10.0.2.15/24"),
        "static address from the config"
    );
    assert_eq!(ssh("uname -m"), "aarch64");
    assert_eq!(ssh("cat /etc/resolv.conf"), "nameserver 10.0.2.3");
    assert_eq!(ssh("hostname"), "testpi");
    assert_eq!(ssh("id -u; id -Gn"), "1001\nalice sudo");
    assert_eq!(ssh("cat /etc/motd"), "hello from pideploy");
    assert_eq!(ssh("stat -c '%U %a' /home/alice/notes.txt"), "alice 664");
    // READY means SSH is up; the boot goes on to the config's services. It must end with every
    // unit running.
    assert_eq!(ssh("sudo -n systemctl is-system-running --wait"), "running");
    assert_eq!(ssh("cat /run/stamp"), "started");
    assert_eq!(
        ssh("readlink /pideploy/var/profiles/system"),
        "system-1-link"
    );
    assert_eq!(ssh("sudo -n id -u"), "0");
    assert!(ssh("cat /pideploy/var/generations/1.json").contains("\"generation\": 1"));

    // A wrong host key is refused by the client: strict checking is real.
    let bad_known = w.join("bad_known_hosts");
    let (_, other_pub) = keypair(&w.join("k2").tap_mkdir());
    let other_key = other_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    fs::write(&bad_known, format!("[127.0.0.1]:{port} {other_key}\n")).unwrap();
    let refused = vm
        .ssh_cmd(&bad_known, &key, "alice", "true")
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a changed host key must be refused"
    );

    // Clean poweroff (exit 0 from pideploy qemu) leaves a clean journal.
    vm.power_off(&known, &key, "alice");
    let root = w.join("root.part");
    extract(&img, parts[1].0, parts[1].1, &root);
    run(Command::new("e2fsck").arg("-fn").arg(&root));
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn broken_root_fails_fast_with_its_marker() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let lock = w.join("pideploy.lock");
    let cache = w.join("cache");
    let store = w.join("store");
    let (_, public) = keypair(w);
    let config = w.join("pi.toml");
    fs::write(&config, format!("board = \"qemu-aarch64\"\nhostname = \"broken\"\n[[users]]\nname = \"pi\"\nuid = 1000\nssh_authorized_keys = [\"{public}\"]\n")).unwrap();
    lock_and_import(&config, &lock, &cache, &store);
    let img = w.join("pi.img");
    build_image(&config, &lock, &cache, &store, &img, "022", "UTC");

    // The kernel command line names a partition that does not exist (appended after cmdline.txt's).
    let opts = pideploy_qemu::HarnessOptions {
        timeout: Duration::from_secs(90),
        extra_append: Some("root=PARTUUID=deadbeef-02 pideploy.rootwait=2".into()),
        max_boots: 1,
        ..Default::default()
    };
    let started = Instant::now();
    let mut h = pideploy_qemu::Harness::new(&img, w.join("scratch"), opts);
    let outcome = h.run_to_end().unwrap();
    let rec = &outcome.boots[0];
    let log = fs::read_to_string(&rec.serial_log).unwrap();
    assert!(
        log.contains("PIDEPLOY-FAIL stage1: root device PARTUUID=deadbeef-02 not found"),
        "{log}"
    );
    assert!(
        matches!(rec.exit, pideploy_qemu::GuestEnd::PowerDown),
        "{:?}",
        rec.exit
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failed slowly: {:?}",
        started.elapsed()
    );

    // The same image with its own command line boots, and this config's network is DHCP.
    let opts = pideploy_qemu::HarnessOptions {
        timeout: Duration::from_secs(120),
        max_boots: 1,
        ..Default::default()
    };
    let mut h = pideploy_qemu::Harness::new(&img, w.join("scratch2"), opts);
    let mut vm = h.boot_once().unwrap();
    vm.wait_for("PIDEPLOY-READY", Duration::from_secs(100))
        .unwrap();
    vm.wait_for(
        "pideploy: eth0 has 10.0.2.15 (dhcp)",
        Duration::from_secs(30),
    )
    .unwrap();
    vm.kill();

    // `pideploy qemu` stopped by a signal takes its QEMU with it (no orphaned VM holding the image
    // and the port forwards).
    let mut cli = pideploy()
        .arg("qemu")
        .arg(&img)
        .args(["--timeout", "120"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let children = format!("/proc/{0}/task/{0}/children", cli.id());
    let mut qemu = None;
    for _ in 0..100 {
        qemu = fs::read_to_string(&children)
            .ok()
            .and_then(|c| c.split_whitespace().next().map(str::to_string));
        if qemu.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let qemu = qemu.expect("pideploy qemu started QEMU");
    run(Command::new("kill").args(["-TERM", &cli.id().to_string()]));
    let _ = cli.wait();
    let gone = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !Path::new(&format!("/proc/{qemu}")).exists()
            || fs::read_to_string(format!("/proc/{qemu}/stat"))
                .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    });
    assert!(
        gone,
        "QEMU (pid {qemu}) outlived the pideploy qemu that started it"
    );
}
