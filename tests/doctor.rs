//! `pideploy doctor`, each check seen failing and passing through the real binary: this machine
//! (a PATH without a tool, a cache that is a file, a QEMU that refuses to start), targets
//! (`local:DIR` roots with a held or stale lock and a pending generation; a real sshd for the host
//! key and sudo), and images (a built rpi5 fixture image, then damaged copies).

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::sshd::{sudo_password, Sshd, NOPW_USER, PW_USER};
use common::*;
use serde_json::Value;

/// Runs doctor with `--json`; returns the exit code and the checks by name.
fn doctor_json(cmd: &mut Command) -> (i32, Value, Output) {
    let out = cmd.arg("--json").output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v, out)
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {v:#}"))
}

fn status(v: &Value, name: &str) -> String {
    check(v, name)["status"].as_str().unwrap().to_string()
}

fn machine(w: &Path) -> Command {
    let mut c = pideploy();
    env_for(&mut c, &w.join("cache"), &w.join("store"));
    c.env_remove("PIDEPLOY_QEMU").arg("doctor");
    c
}

#[test]
fn this_machine_passes_when_everything_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let (code, v, out) = doctor_json(&mut machine(dir.path()));
    assert_eq!(code, 0, "{v:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["ok"], true);
    for name in [
        "tool mke2fs",
        "tool debugfs",
        "tool qemu-system-aarch64",
        "mke2fs version",
        "qemu starts",
        "apt arm64",
        "cache writable",
        "store writable",
        "store case-sensitive",
    ] {
        assert_eq!(status(&v, name), "ok", "{name}: {v:#}");
    }
    // The text form: one ✓ line per check.
    let text = run(&mut machine(dir.path()));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("✓ qemu starts:"), "{text}");
    assert!(!text.contains('✗'), "{text}");
    // Nothing was left behind by the probes.
    assert!(!dir.path().join("store").exists());
}

/// A directory of links to the programs on this machine's PATH, except `leave_out`.
fn path_without(dir: &Path, leave_out: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let system_path = std::env::var_os("PATH").unwrap();
    for d in std::env::split_paths(&system_path) {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if leave_out.iter().any(|l| name == *l) || bin.join(&name).exists() {
                continue;
            }
            let _ = symlink(e.path(), bin.join(&name));
        }
    }
    bin
}

#[test]
fn a_missing_tool_fails_with_the_package_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let bin = path_without(
        dir.path(),
        &["mke2fs", "sfdisk", "zstd", "qemu-system-aarch64"],
    );
    let (code, v, _) = doctor_json(machine(dir.path()).env("PATH", &bin));
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["ok"], false);
    let c = check(&v, "tool qemu-system-aarch64");
    assert_eq!(c["status"], "fail");
    assert_eq!(c["fix"], "apt-get install qemu-system-arm");
    // Only the quick start uses zstd by hand: a warning.
    assert_eq!(status(&v, "tool zstd"), "warn");
    assert_eq!(check(&v, "tool zstd")["fix"], "apt-get install zstd");
    // Installed in /usr/sbin, which a non-root user's PATH on Debian lacks: the fix says so
    // instead of asking to install it...
    let c = check(&v, "tool sfdisk");
    assert_eq!(c["status"], "warn");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .starts_with("add its directory to PATH"),
        "{c}"
    );
    // ...except for e2fsprogs, which `pideploy image` looks for in sbin itself.
    let c = check(&v, "tool mke2fs");
    assert_eq!(c["status"], "ok", "{c}");
    assert!(
        c["detail"].as_str().unwrap().contains("found in sbin"),
        "{c}"
    );
    assert_eq!(status(&v, "tool debugfs"), "ok");
    let text = machine(dir.path()).env("PATH", &bin).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("✗ tool qemu-system-aarch64:"), "{text}");
    assert!(
        text.contains("    fix: apt-get install qemu-system-arm"),
        "{text}"
    );
}

#[test]
fn a_cache_that_is_a_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache");
    fs::write(&file, b"not a directory").unwrap();
    let (code, v, _) = doctor_json(&mut machine(dir.path()));
    assert_eq!(code, 1, "{v:#}");
    let c = check(&v, "cache writable");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"].as_str().unwrap().contains("is not a directory"),
        "{c}"
    );
    assert!(
        c["fix"].as_str().unwrap().contains("PIDEPLOY_CACHE_DIR"),
        "{c}"
    );
    assert_eq!(status(&v, "store writable"), "ok");
}

#[test]
fn a_qemu_that_cannot_start_fails_with_its_own_words() {
    let dir = tempfile::tempdir().unwrap();
    // The real QEMU, given a device whose option ROM is missing: how a machine without ipxe-qemu
    // failed before the harness passed `romfile=`.
    let wrapper = dir.path().join("qemu-needing-a-rom");
    fs::write(
        &wrapper,
        "#!/bin/sh\nexec qemu-system-aarch64 \"$@\" -device virtio-net-pci,romfile=/nonexistent/efi-virtio.rom\n",
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let (code, v, _) = doctor_json(machine(dir.path()).env("PIDEPLOY_QEMU", &wrapper));
    assert_eq!(code, 1, "{v:#}");
    let c = check(&v, "qemu starts");
    assert_eq!(c["status"], "fail");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains("refused to start"), "{detail}");
    assert!(
        detail.contains("failed to find romfile"),
        "QEMU's stderr: {detail}"
    );
    let (code, _, _) =
        doctor_json(machine(dir.path()).env("PIDEPLOY_QEMU", dir.path().join("absent")));
    assert_eq!(code, 1);
}

// ---- targets ----

/// A target root as a deploy leaves it: two registered store paths (the toplevel referring to the
/// other), generation 1 as the default, its boot entry on /boot/firmware.
fn target_root(w: &Path) -> (PathBuf, u64) {
    let root = w.join("root");
    let p = root.join("pideploy");
    let (top, dep) = (
        "0123456789abcdfghijklmnpqrsvwxyz-pideploy-system-docpi",
        "zyxwvsrqpnmlkjihgfdcba9876543210-busybox",
    );
    for d in ["store", "var/db/valid", "var/profiles", "var/generations"] {
        fs::create_dir_all(p.join(d)).unwrap();
    }
    fs::create_dir_all(p.join("store").join(top)).unwrap();
    fs::create_dir_all(p.join("store").join(dep)).unwrap();
    fs::write(
        p.join("var/db/valid").join(top),
        format!("path /pideploy/store/{top}\nnar-sha256 00\nnar-size 3000000\nref /pideploy/store/{dep}\nref /pideploy/store/{top}\n"),
    )
    .unwrap();
    fs::write(
        p.join("var/db/valid").join(dep),
        format!("path /pideploy/store/{dep}\nnar-sha256 00\nnar-size 5000000\n"),
    )
    .unwrap();
    symlink(
        format!("/pideploy/store/{top}"),
        p.join("var/profiles/system-1-link"),
    )
    .unwrap();
    symlink("system-1-link", p.join("var/profiles/system")).unwrap();
    let boot = root.join("boot/firmware");
    fs::create_dir_all(boot.join("gen-1")).unwrap();
    fs::write(boot.join("gen-1/kernel_2712.img"), vec![7u8; 300_000]).unwrap();
    fs::write(boot.join("gen-1/cmdline.txt"), "root=PARTUUID=1-02\n").unwrap();
    fs::write(boot.join("config.txt"), "[all]\nos_prefix=gen-1/\n").unwrap();
    (root, 8_000_000)
}

fn local(root: &Path) -> Command {
    let mut c = pideploy();
    c.arg("doctor")
        .arg(format!("--target=local:{}", root.display()));
    c
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_deployed_local_root_passes_and_its_closure_is_summed() {
    let dir = tempfile::tempdir().unwrap();
    let (root, closure) = target_root(dir.path());
    let (code, v, _) = doctor_json(&mut local(&root));
    assert_eq!(code, 0, "{v:#}");
    for name in [
        "reachable",
        "store free space",
        "boot free space",
        "deploy lock",
        "pending generation",
        "bootloader",
    ] {
        assert_eq!(status(&v, name), "ok", "{name}: {v:#}");
    }
    // Both registrations, reached from the default generation's toplevel, counted once each.
    let store = check(&v, "store free space")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        store.contains(&format!("needs at most {} MiB", closure.div_ceil(1 << 20))),
        "{store}"
    );
    assert!(check(&v, "boot free space")["detail"]
        .as_str()
        .unwrap()
        .contains("a boot entry takes about"));
    // Read-only: nothing was installed or written under the root.
    assert!(!root.join("pideploy/var/agent").exists());
    assert!(!root.join("pideploy/var/lock").exists());
}

#[test]
fn a_held_lock_fails_and_a_stale_one_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = target_root(dir.path());
    let lock = root.join("pideploy/var/lock");
    fs::create_dir(&lock).unwrap();
    // Held: this test process, in this boot.
    fs::write(
        lock.join("holder"),
        format!(
            "alice@laptop\npid {} boot {}\n",
            std::process::id(),
            boot_id()
        ),
    )
    .unwrap();
    let (code, v, _) = doctor_json(&mut local(&root));
    assert_eq!(code, 1, "{v:#}");
    let c = check(&v, "deploy lock");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"].as_str().unwrap().contains("alice@laptop"),
        "{c}"
    );
    // Stale: a process that has ended.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    fs::write(
        lock.join("holder"),
        format!("bob@desk\npid {pid} boot {}\n", boot_id()),
    )
    .unwrap();
    let (code, v, _) = doctor_json(&mut local(&root));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(status(&v, "deploy lock"), "warn");
    // From an earlier boot: stale as well.
    fs::write(
        lock.join("holder"),
        format!("bob@desk\npid {} boot earlier-boot\n", std::process::id()),
    )
    .unwrap();
    let (_, v, _) = doctor_json(&mut local(&root));
    assert_eq!(status(&v, "deploy lock"), "warn");
}

#[test]
fn a_pending_generation_without_its_waiter_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = target_root(dir.path());
    fs::write(
        root.join("pideploy/var/pending"),
        "generation 2\nkind tryboot\ntop /pideploy/store/x\nprevious /pideploy/store/y\nrootarg PARTUUID=1-02\ntimeout 30\ndeployer a@b\nagent /x\n",
    )
    .unwrap();
    fs::write(
        root.join("boot/firmware/tryboot.txt"),
        "[all]\nos_prefix=gen-2/\n",
    )
    .unwrap();
    let (code, v, _) = doctor_json(&mut local(&root));
    assert_eq!(code, 1, "{v:#}");
    let c = check(&v, "pending generation");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("generation 2 (tryboot)"),
        "{c}"
    );
    assert!(check(&v, "trial boot")["detail"]
        .as_str()
        .unwrap()
        .contains("gen-2/"));
}

#[test]
fn the_bootloader_the_firmware_reports_is_judged() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = target_root(dir.path());
    let bl = root.join("proc/device-tree/chosen/bootloader");
    fs::create_dir_all(&bl).unwrap();
    fs::write(
        root.join("proc/device-tree/model"),
        b"Raspberry Pi 5 Model B Rev 1.0\0",
    )
    .unwrap();
    // Device-tree cells are big-endian: 2023-10-30, older than the minimum.
    fs::write(bl.join("build-timestamp"), 1_698_684_310u32.to_be_bytes()).unwrap();
    let (code, v, _) = doctor_json(&mut local(&root));
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(status(&v, "bootloader"), "fail");
    assert!(check(&v, "bootloader")["detail"]
        .as_str()
        .unwrap()
        .contains("2023-10-30"));
    assert_eq!(status(&v, "tryboot"), "fail");
    fs::write(bl.join("build-timestamp"), 1_705_000_000u32.to_be_bytes()).unwrap();
    fs::write(bl.join("tryboot"), 0u32.to_be_bytes()).unwrap();
    let (code, v, _) = doctor_json(&mut local(&root));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(status(&v, "bootloader"), "ok");
    assert!(check(&v, "tryboot")["detail"]
        .as_str()
        .unwrap()
        .contains("reports its tryboot flag"));
}

#[test]
fn over_ssh_host_key_and_sudo() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let (root, _) = target_root(w);
    // Readable by the test users when their sudo does not work.
    for p in [w, root.as_path()] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let sshd = Sshd::start();
    let pd = |user: &str, known_hosts: &Path| {
        let mut c = pideploy();
        c.env_remove("SSH_AUTH_SOCK")
            .arg("doctor")
            .arg(format!("--target={user}@127.0.0.1:{}", sshd.port))
            .arg("-i")
            .arg(&sshd.client_key)
            .arg("--known-hosts")
            .arg(known_hosts)
            .arg("--root")
            .arg(&root);
        c
    };
    // Unknown host key: ✗ with the fix, and nothing recorded.
    let empty = w.join("known_hosts.empty");
    fs::write(&empty, "").unwrap();
    let (code, v, _) = doctor_json(&mut pd(NOPW_USER, &empty));
    assert_eq!(code, 1, "{v:#}");
    let c = check(&v, "host key");
    assert_eq!(c["status"], "fail");
    assert!(c["fix"].as_str().unwrap().contains("known_hosts"), "{c}");
    assert_eq!(
        fs::read_to_string(&empty).unwrap(),
        "",
        "doctor recorded a host key"
    );
    let out = pd(NOPW_USER, &empty).arg("--accept-new").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never records a host key"));
    // Known key, passwordless sudo: everything passes.
    let (code, v, _) = doctor_json(&mut pd(NOPW_USER, &sshd.known_hosts));
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(status(&v, "reachable"), "ok");
    assert_eq!(status(&v, "sudo"), "ok");
    assert_eq!(status(&v, "deploy lock"), "ok");
    // sudo wants a password: ✗ naming --ask-sudo-password; the rest is still read as the user.
    let (code, v, _) = doctor_json(&mut pd(PW_USER, &sshd.known_hosts));
    assert_eq!(code, 1, "{v:#}");
    let c = check(&v, "sudo");
    assert_eq!(c["status"], "fail");
    assert!(
        c["fix"].as_str().unwrap().contains("--ask-sudo-password"),
        "{c}"
    );
    assert_eq!(status(&v, "pending generation"), "ok");
    // With the password given the way deploys take it, sudo passes.
    let mut c = pd(PW_USER, &sshd.known_hosts);
    c.arg("--ask-sudo-password")
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", sudo_password()).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(status(&v, "sudo"), "ok");
    assert!(check(&v, "sudo")["detail"]
        .as_str()
        .unwrap()
        .contains("password given"));
}

// ---- images ----

/// Builds the rpi5 fixture image (image-fixtures/: the rpi5 board with a fixture kernel package,
/// real Debian arm64 userland) into `w`.
fn rpi5_image(w: &Path) -> PathBuf {
    let fixtures = repo().join("image-fixtures");
    let config = w.join("pi.toml");
    fs::write(
        &config,
        format!(
            "board = \"{}\"\nhostname = \"docpi\"\n\n[[users]]\nname = \"pi\"\nuid = 1000\n\
             ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKw9dF0bq1mI2M5kq0fN8rP0Yp3f7Ue6o0m8qX4H2Lz1 test@pideploy\"]\n",
            fixtures.join("rpi5-fixture.toml").display()
        ),
    )
    .unwrap();
    let pool = fixtures.join("apt/pool/main/l/linux-image-rpi-2712");
    let mut debs: Vec<PathBuf> = fs::read_dir(&pool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    let (lock, cache, store) = (w.join("pideploy.lock"), w.join("cache"), w.join("store"));
    let empty = w.join("empty.Packages");
    fs::write(&empty, "").unwrap();
    let idx = debian_indexes();
    let mut indexes = vec![
        ("fixture", fixtures.join("apt/Packages")),
        ("raspberrypi", empty),
        ("debian", idx.join("debian.Packages")),
    ];
    // The fixture board gains the board's security source when it follows boards/rpi5.toml.
    if fs::read_to_string(fixtures.join("rpi5-fixture.toml"))
        .unwrap()
        .contains("debian-security")
    {
        indexes.push(("debian-security", idx.join("debian-security.Packages")));
    }
    lock_and_import_with(&config, &lock, &cache, &store, &indexes, &debs);
    let img = w.join("pi.img");
    let mut c = pideploy();
    env_for(&mut c, &cache, &store)
        .arg("image")
        .arg("--config")
        .arg(&config)
        .arg("--lock")
        .arg(&lock)
        .arg("-o")
        .arg(&img);
    run(&mut c);
    img
}

/// `IMAGE@@OFFSET` for mtools: the boot partition inside the image, no extraction.
fn boot_fat(img: &Path) -> String {
    let start = partitions(img)[0].0;
    format!("{}@@{}", img.display(), start * 512)
}

fn mtools(tool: &str, args: &[&str]) -> Output {
    run(Command::new(tool).env("MTOOLS_SKIP_CHECK", "1").args(args))
}

fn image_doctor(img: &Path) -> (i32, Value) {
    let (code, v, _) = doctor_json(pideploy().arg("doctor").arg(img));
    (code, v)
}

#[test]
fn a_built_image_passes_and_damaged_copies_fail() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let img = rpi5_image(w);
    let (code, v) = image_doctor(&img);
    assert_eq!(code, 0, "{v:#}");
    for name in [
        "partitions",
        "config.txt",
        "kernel",
        "device tree",
        "cmdline root",
        "boot room",
        "generations",
    ] {
        assert_eq!(status(&v, name), "ok", "{name}: {v:#}");
    }
    assert!(check(&v, "device tree")["detail"]
        .as_str()
        .unwrap()
        .ends_with("gen-1/bcm2712-rpi-5-b.dtb"));
    assert!(check(&v, "boot room")["detail"]
        .as_str()
        .unwrap()
        .contains("more generation"));

    // cmdline root= changed to a partition that is not there.
    let bad_root = w.join("bad-root.img");
    fs::copy(&img, &bad_root).unwrap();
    let fat = boot_fat(&bad_root);
    let cmdline =
        String::from_utf8(mtools("mtype", &["-i", &fat, "::gen-1/cmdline.txt"]).stdout).unwrap();
    let root_arg = cmdline
        .split_whitespace()
        .find(|a| a.starts_with("root="))
        .unwrap()
        .to_string();
    let edited = w.join("cmdline.txt");
    fs::write(
        &edited,
        cmdline.replace(&root_arg, "root=PARTUUID=deadbeef-02"),
    )
    .unwrap();
    mtools(
        "mcopy",
        &[
            "-o",
            "-i",
            &fat,
            edited.to_str().unwrap(),
            "::gen-1/cmdline.txt",
        ],
    );
    let (code, v) = image_doctor(&bad_root);
    assert_eq!(code, 1, "{v:#}");
    let c = check(&v, "cmdline root");
    assert_eq!(c["status"], "fail");
    assert!(c["detail"].as_str().unwrap().contains("deadbeef-02"), "{c}");
    assert_eq!(status(&v, "kernel"), "ok");

    // The device tree gone.
    let no_dtb = w.join("no-dtb.img");
    fs::copy(&img, &no_dtb).unwrap();
    mtools(
        "mdel",
        &["-i", &boot_fat(&no_dtb), "::gen-1/bcm2712-rpi-5-b.dtb"],
    );
    let (code, v) = image_doctor(&no_dtb);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(status(&v, "device tree"), "fail");

    // config.txt deleted.
    let no_config = w.join("no-config.img");
    fs::copy(&img, &no_config).unwrap();
    mtools("mdel", &["-i", &boot_fat(&no_config), "::config.txt"]);
    let (code, v) = image_doctor(&no_config);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(status(&v, "config.txt"), "fail");

    // The image's own root, unpacked the way a card holds it, as a local target: everything passes,
    // and the closure doctor sums on the target is the one `inspect` reports for the image.
    let root = w.join("root");
    fs::create_dir(w.join("unpack")).unwrap();
    unpack_image(&img, &w.join("unpack"), &root);
    let (code, v, _) = doctor_json(&mut local(&root));
    assert_eq!(code, 0, "{v:#}");
    let inspect = run(pideploy().arg("inspect").arg(&img).arg("--json"));
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let closure = inspect["closure_size"].as_u64().unwrap();
    let store = check(&v, "store free space")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        store.contains(&format!("needs at most {} MiB", closure.div_ceil(1 << 20))),
        "{store} vs {closure}"
    );

    // Not an image at all: one ✗ line, not a crash.
    let junk = w.join("junk.img");
    fs::write(&junk, vec![0u8; 4096]).unwrap();
    let (code, v) = image_doctor(&junk);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(status(&v, "image"), "fail");
}
