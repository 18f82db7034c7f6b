//! Every shell script of the project is code and is checked like code: it parses (`sh -n` with
//! dash, and with busybox's ash for the scripts that run on the Pi) and `shellcheck` finds no
//! warning or error in it. Suppressions are inline, each with its reason.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Scripts that run on the target (busybox ash in the initramfs, dash or ash on the Pi).
const ON_TARGET: [&str; 2] = ["src/closure/scripts", "crates/deploy/src/scripts"];
/// Scripts that run on the deploying machine or in CI.
const ON_HOST: [&str; 4] = ["qemu", "benches", "image-fixtures", ".ci"];

fn scripts_in(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "sh")
                || std::fs::read(p).is_ok_and(|b| b.starts_with(b"#!/bin/sh"))
        })
        .collect();
    out.sort();
    out
}

fn all_scripts() -> Vec<PathBuf> {
    ON_TARGET
        .iter()
        .chain(ON_HOST.iter())
        .flat_map(|d| scripts_in(d))
        .collect()
}

/// shellcheck at warning level; the `@BUSYBOX@ sh` shebangs of the on-target templates are
/// filled in at build time (SC2239 would ask for an absolute path there).
fn shellcheck(files: &[PathBuf]) -> std::process::Output {
    Command::new("shellcheck")
        .args(["--shell=sh", "--severity=warning", "--exclude=SC2239", "--format=gcc"])
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!("shellcheck could not be started ({e}); install it: apt-get install shellcheck (.ci/install-deps.sh does)")
        })
}

#[test]
fn every_script_parses_with_dash_and_the_target_ones_with_busybox() {
    let all = all_scripts();
    assert!(all.len() >= 15, "found only {all:?}");
    for f in &all {
        let out = Command::new("dash").arg("-n").arg(f).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for f in ON_TARGET.iter().flat_map(|d| scripts_in(d)) {
        let out = Command::new("busybox")
            .args(["sh", "-n"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn shellcheck_finds_nothing_and_would_say_so() {
    let all = all_scripts();
    let out = shellcheck(&all);
    assert!(
        out.status.success(),
        "shellcheck:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The same check on a script with a mistake in it fails, naming it.
    let w = tempfile::tempdir().unwrap();
    let bad = w.path().join("bad.sh");
    std::fs::write(
        &bad,
        "#!/bin/sh\nfor f in $(ls *.txt); do rm \"$f\"; done\nunused=1\n",
    )
    .unwrap();
    let out = shellcheck(&[bad]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("SC2034"), "{text}");
}
