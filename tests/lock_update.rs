//! Living with a lock: `lock` keeps the locked versions, `outdated` shows what the archives have
//! newer (security suites marked), `lock --update PKG` takes the newest of PKG only and
//! `--update` of everything, each printing what changed. The archives are Debian's real arm64
//! indexes (through apt) with one newer `dbus` added to the security suite's, as a security
//! update would arrive.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::*;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The stanza of `name` at `version` in one of the indexes, verbatim.
fn stanza(indexes: &[&str], name: &str, version: &str) -> String {
    indexes
        .iter()
        .flat_map(|i| i.split("\n\n"))
        .find(|p| {
            p.lines().any(|l| l == format!("Package: {name}"))
                && p.lines().any(|l| l == format!("Version: {version}"))
        })
        .unwrap_or_else(|| panic!("no {name} {version} in the indexes"))
        .trim_matches('\n')
        .to_string()
}

fn version_of(lock: &Path, name: &str) -> String {
    let v: toml::Value = toml::from_str(&fs::read_to_string(lock).unwrap()).unwrap();
    v["package"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .map(|p| p["version"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{name} not locked"))
}

#[test]
fn lock_keeps_versions_outdated_reports_and_update_takes_only_what_is_named() {
    let idx = debian_indexes();
    let w = tempfile::tempdir().unwrap();
    let w = w.path();
    fs::write(
        w.join("pi.toml"),
        "board = \"qemu-aarch64\"\nhostname = \"lockpi\"\n",
    )
    .unwrap();
    let lock = w.join("pideploy.lock");
    let main_idx = idx.join("debian.Packages");
    let old_sec = idx.join("debian-security.Packages");
    let pd = |args: &[&str], sec: &Path| -> Output {
        let mut c = pideploy();
        env_for(&mut c, &w.join("cache"), &w.join("store"));
        c.args(args)
            .arg("-c")
            .arg(w.join("pi.toml"))
            .arg(format!("--index=debian={}", main_idx.display()))
            .arg(format!("--index=debian-security={}", sec.display()))
            .output()
            .unwrap()
    };
    let ok = |o: Output| -> Output {
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    ok(pd(&["lock"], &old_sec));
    let first = fs::read_to_string(&lock).unwrap();
    let dbus = version_of(&lock, "dbus");
    let zstd = version_of(&lock, "zstd");

    // A security update of dbus, and a newer zstd, appear in the archive.
    let text = fs::read_to_string(&main_idx).unwrap();
    let sec_text = fs::read_to_string(&old_sec).unwrap();
    let bump = |name: &str, old: &str| {
        stanza(&[&text, &sec_text], name, old).replace(
            &format!("Version: {old}\n"),
            &format!("Version: {old}+sec1\n"),
        )
    };
    let new_sec = w.join("security.Packages");
    let sec_text = format!(
        "{}\n\n{}\n\n{}\n",
        sec_text.trim_end(),
        bump("dbus", &dbus),
        bump("zstd", &zstd)
    );
    fs::write(&new_sec, sec_text).unwrap();

    // `lock` keeps what is locked.
    let o = ok(pd(&["lock"], &new_sec));
    assert!(stderr(&o).contains("is up to date"), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&lock).unwrap(), first);

    // `outdated` names both, from the security suite; the lock is untouched.
    let o = ok(pd(&["outdated", "--json"], &new_sec));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for (row, name, old) in [(&rows[0], "dbus", &dbus), (&rows[1], "zstd", &zstd)] {
        assert_eq!(row["package"], name);
        assert_eq!(row["old"], old.as_str());
        assert_eq!(row["new"], format!("{old}+sec1"));
        assert_eq!(row["source"], "debian-security");
        assert_eq!(row["security"], true);
    }
    let o = ok(pd(&["outdated"], &new_sec));
    let table = stdout(&o);
    assert!(
        table.lines().any(|l| l.starts_with("dbus ")
            && l.contains(&format!("{dbus} -> {dbus}+sec1"))
            && l.ends_with("security")),
        "{table}"
    );
    assert!(stderr(&o).contains("2 packages have newer versions (2 from security suites)"));
    assert_eq!(fs::read_to_string(&lock).unwrap(), first);

    // `--update dbus`: dbus only (zstd stays), the change printed.
    let o = ok(pd(&["lock", "--update", "dbus"], &new_sec));
    assert_eq!(version_of(&lock, "dbus"), format!("{dbus}+sec1"));
    assert_eq!(version_of(&lock, "zstd"), zstd);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains(&format!("{dbus} -> {dbus}+sec1")), "{out}");
    assert!(stderr(&o).contains("1 changed"), "{}", stderr(&o));

    // A name the lock does not hold: one line, nothing written.
    let before = fs::read_to_string(&lock).unwrap();
    let o = pd(&["lock", "--update", "no-such-package"], &new_sec);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("--update no-such-package: the lock holds no package"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&lock).unwrap(), before);

    // `--update` alone: everything newest (zstd too), as JSON.
    let o = ok(pd(&["lock", "--update", "--json"], &new_sec));
    assert_eq!(version_of(&lock, "zstd"), format!("{zstd}+sec1"));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["package"], "zstd");

    // Back to the old archive: locked versions it no longer offers give way to what it has.
    let o = ok(pd(&["lock"], &old_sec));
    assert_eq!(fs::read_to_string(&lock).unwrap(), first);
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
}
