//! Bad input gets exactly one clear line on stderr and a non-zero exit: config typos and wrong
//! types with `pi.toml:LINE:COL`, unknown boards, a missing lock or artifact, malformed store
//! paths. `pideploy init` writes a config the loader accepts and does not overwrite one without
//! `--force`.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use rstest::rstest;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeKqgZ6nzD3GvLODloVqhQFmOhfC5hqU84VknglD7Yr fetch@pideploy";

/// pideploy with a cache and store inside `dir`, run from `dir`.
fn pd(dir: &Path) -> Command {
    let mut cmd = pideploy();
    env_for(&mut cmd, &dir.join("cache"), &dir.join("store")).current_dir(dir);
    cmd
}

/// Runs a command that must fail with `code` (any non-zero when `None`) and exactly one line on
/// stderr; returns that line.
fn fails_with(cmd: &mut Command, code: Option<i32>) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    match code {
        Some(c) => assert_eq!(out.status.code(), Some(c), "{cmd:?}: {err}"),
        None => assert!(
            !out.status.success() && out.status.code().is_some(),
            "{cmd:?} did not fail: {}",
            out.status
        ),
    }
    let body = err.strip_suffix('\n').unwrap_or(&err);
    assert!(
        !body.is_empty() && !body.contains('\n'),
        "{cmd:?}: stderr is not one line:\n{err}"
    );
    body.to_string()
}

fn fails(cmd: &mut Command) -> String {
    fails_with(cmd, None)
}

fn write_config(dir: &Path, text: &str) {
    fs::write(dir.join("pi.toml"), text).unwrap();
}

#[test]
fn typo_in_a_field_names_file_line_and_column() {
    let t = tempfile::tempdir().unwrap();
    write_config(
        t.path(),
        "board = \"qemu-aarch64\"\nhostname = \"pi\"\nhostnme = \"typo\"\n",
    );
    let line = fails(pd(t.path()).args(["build", "-c", "pi.toml"]));
    assert!(line.starts_with("pideploy: error: pi.toml:3:1: "), "{line}");
    assert!(line.contains("unknown field `hostnme`"), "{line}");

    // Inside a table too, at the typo's own position.
    write_config(
        t.path(),
        &format!(
            "board = \"qemu-aarch64\"\nhostname = \"pi\"\n\n[[users]]\nname = \"a\"\nuid = 1000\n  sudu = true\nssh_authorized_keys = [\"{KEY}\"]\n"
        ),
    );
    let line = fails(pd(t.path()).args(["build", "-c", "pi.toml"]));
    assert!(line.contains("pi.toml:7:3: "), "{line}");
    assert!(line.contains("`sudu`"), "{line}");
}

#[test]
fn wrong_type_names_file_line_and_column() {
    let t = tempfile::tempdir().unwrap();
    write_config(t.path(), "board = \"qemu-aarch64\"\nhostname = 5\n");
    let line = fails(pd(t.path()).args(["lock", "-c", "pi.toml"]));
    assert!(line.contains("pi.toml:2:12: "), "{line}");
    assert!(line.contains("invalid type"), "{line}");
}

#[test]
fn invalid_value_is_one_line_naming_the_field() {
    let t = tempfile::tempdir().unwrap();
    write_config(
        t.path(),
        "board = \"qemu-aarch64\"\nhostname = \"not_a_label!\"\n",
    );
    let line = fails(pd(t.path()).args(["build", "-c", "pi.toml"]));
    assert!(line.contains("pi.toml"), "{line}");
    assert!(line.contains("hostname"), "{line}");
}

#[test]
fn unknown_board_lists_the_known_ones() {
    let t = tempfile::tempdir().unwrap();
    write_config(t.path(), "board = \"rpi4\"\nhostname = \"pi\"\n");
    let line = fails(pd(t.path()).args(["build", "-c", "pi.toml"]));
    for want in ["`rpi4`", "rpi5", "qemu-aarch64"] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    // The same from the command line, with the embedded default config.
    let line = fails(pd(t.path()).args(["lock", "-b", "nosuchboard"]));
    for want in ["`nosuchboard`", "rpi5", "qemu-aarch64"] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
}

#[test]
fn build_without_a_lock_says_to_run_lock() {
    let t = tempfile::tempdir().unwrap();
    write_config(t.path(), "board = \"qemu-aarch64\"\nhostname = \"pi\"\n");
    for cmd in ["build", "fetch"] {
        let line = fails(pd(t.path()).args([cmd, "-c", "pi.toml"]));
        assert!(line.contains("pideploy lock"), "{cmd}: {line}");
        assert!(line.contains("pideploy.lock"), "{cmd}: {line}");
    }
}

#[test]
fn missing_artifact_names_it_and_both_ways_to_get_it() {
    let t = tempfile::tempdir().unwrap();
    write_config(t.path(), "board = \"qemu-aarch64\"\nhostname = \"pi\"\n");
    let sha = "5".repeat(64);
    let filename = "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_arm64.deb";
    fs::write(
        t.path().join("pideploy.lock"),
        format!(
            r#"version = 1
board = "qemu-aarch64"
roots = ["avahi-daemon", "base-passwd", "bash", "busybox-static", "dbus", "dosfstools", "dropbear-bin", "e2fsprogs", "kmod", "linux-image-arm64", "systemd", "systemd-sysv", "systemd-timesyncd", "udev", "util-linux", "zstd"]

[[package]]
name = "busybox-static"
version = "1:1.35.0-4+deb12u1+b1"
architecture = "arm64"
source = "debian"
url = "http://127.0.0.1:9/debian/{filename}"
filename = "{filename}"
size = 822236
sha256 = "{sha}"
role = "package"

[[package]]
name = "perl-base"
version = "5.36.0-7+deb12u1"
architecture = "arm64"
source = "debian"
url = "http://127.0.0.1:9/debian/pool/main/p/perl/perl-base_5.36.0-7+deb12u1_arm64.deb"
filename = "pool/main/p/perl/perl-base_5.36.0-7+deb12u1_arm64.deb"
size = 1000
sha256 = "{other}"
role = "package"
"#,
            other = "6".repeat(64)
        ),
    )
    .unwrap();
    for cmd in [&["build"][..], &["image", "-o", "pi.img"][..]] {
        let line = fails(pd(t.path()).args(cmd).args(["-c", "pi.toml"]));
        for want in [
            "busybox-static",
            sha.as_str(),
            "`pideploy fetch`",
            "`pideploy cache import",
        ] {
            assert!(line.contains(want), "{cmd:?}: {want} missing: {line}");
        }
    }
    assert!(!t.path().join("pi.img").exists());
}

#[rstest]
#[case("not-a-store-path")]
#[case("/pideploy/store/abc-short")]
#[case("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-name")]
fn malformed_store_path_is_refused(#[case] path: &str) {
    let t = tempfile::tempdir().unwrap();
    for cmd in ["path-info", "closure"] {
        let line = fails(pd(t.path()).args([cmd, path]));
        assert!(line.contains(path), "{cmd}: {line}");
        assert!(line.contains("store path"), "{cmd}: {line}");
    }
}

#[test]
fn init_writes_a_config_that_locks_and_refuses_to_overwrite() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    fs::create_dir(dir.join("conf")).unwrap();
    run(pd(dir).args(["init", "conf/pi.toml"]));
    let config = dir.join("conf/pi.toml");
    let starter = fs::read_to_string(&config).unwrap();
    assert!(starter.contains("hostname = "), "{starter}");

    // The loader accepts it: it locks (against apt's Debian lists, board overridden since the
    // starter's rpi5 needs Raspberry Pi's archive), and build gets past the config to the cache.
    let idx = debian_indexes();
    run(pd(dir)
        .args(["lock", "-c", "conf/pi.toml", "-b", "qemu-aarch64"])
        .arg(format!(
            "--index=debian={}",
            idx.join("debian.Packages").display()
        ))
        .arg(format!(
            "--index=debian-security={}",
            idx.join("debian-security.Packages").display()
        )));
    let lock = fs::read_to_string(dir.join("conf/pideploy.lock")).unwrap();
    assert!(lock.contains("name = \"busybox-static\""), "{lock}");
    let line = fails(pd(dir).args(["build", "-c", "conf/pi.toml", "-b", "qemu-aarch64"]));
    assert!(line.contains("is not in the cache"), "{line}");

    // No silent overwrite; --force replaces.
    fs::write(&config, "# mine\n").unwrap();
    let line = fails(pd(dir).args(["init", "conf/pi.toml"]));
    assert!(line.contains("--force"), "{line}");
    assert!(line.contains("conf/pi.toml"), "{line}");
    assert_eq!(fs::read_to_string(&config).unwrap(), "# mine\n");
    run(pd(dir).args(["init", "--force", "conf/pi.toml"]));
    assert_eq!(fs::read_to_string(&config).unwrap(), starter);
}
