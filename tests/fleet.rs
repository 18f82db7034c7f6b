//! Deploying to a fleet at once: three real OpenSSH sshd on 127.0.0.1 (each into a throwaway
//! root) and local:DIR roots, from repeated `--target`s and from an inventory (`--hosts`, `--on`
//! by glob and tag, `--limit`). One host has a wrong host key: it fails, nothing lands there, and
//! the others still get exactly generation 1 of the system built for their config.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::sshd::Sshd;
use common::*;

fn pd(cache: &Path, store: &Path) -> Command {
    let mut c = pideploy();
    env_for(&mut c, cache, store);
    c
}

/// Runs without checking the exit status: (exit code, stdout, stderr).
fn outcome(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The summary table on stdout: host -> (target, generation, result).
fn summary(out: &str) -> BTreeMap<String, (String, String, String)> {
    let mut lines = out.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["HOST", "TARGET", "GENERATION", "RESULT", "TIME"]),
        "{out}"
    );
    lines
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(c.len(), 5, "{l}");
            assert!(c[4].ends_with('s'), "{l}");
            (c[0].into(), (c[1].into(), c[2].into(), c[3].into()))
        })
        .collect()
}

/// Exactly generation 1 with `top` as the default: link, profile, record; nothing more.
fn assert_gen1(root: &Path, top: &str) {
    let prof = root.join("pideploy/var/profiles");
    assert_eq!(
        fs::read_link(prof.join("system")).unwrap().to_str(),
        Some("system-1-link"),
        "{}",
        root.display()
    );
    assert_eq!(
        fs::read_link(prof.join("system-1-link")).unwrap().to_str(),
        Some(top)
    );
    assert!(!prof.join("system-2-link").exists(), "{}", root.display());
    let rec: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root.join("pideploy/var/generations/1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["generation"], 1);
    assert_eq!(rec["toplevel"], top);
    assert!(!root.join("pideploy/var/generations/2.json").exists());
    assert!(root.join(&top[1..]).join("init").exists(), "{top} was sent");
}

fn assert_empty(root: &Path) {
    let left: Vec<_> = fs::read_dir(root).unwrap().flatten().collect();
    assert!(left.is_empty(), "{} was touched: {left:?}", root.display());
}

fn errors(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.starts_with("pideploy: error"))
        .collect()
}

fn host_entry(name: &str, sshd: &Sshd, known_hosts: &Path, root: &Path, extra: &str) -> String {
    format!(
        "[[host]]\nname = \"{name}\"\ntarget = \"root@127.0.0.1:{}\"\nidentity = [\"{}\"]\n\
         known_hosts = \"{}\"\nroot = \"{}\"\n{extra}\n",
        sshd.port,
        sshd.client_key.display(),
        known_hosts.display(),
        root.display()
    )
}

#[test]
fn fleet_deploys_in_parallel_and_one_failure_blocks_no_one() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (cache, store) = (w.join("cache"), w.join("store"));
    let mut tops = Vec::new();
    for (dir, host) in [("a", "fleeta"), ("b", "fleetb")] {
        let cfg = w.join(dir).join("pi.toml");
        fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        fs::write(
            &cfg,
            format!("board = \"qemu-aarch64\"\nhostname = \"{host}\"\n"),
        )
        .unwrap();
        lock_and_import(&cfg, &w.join(dir).join("pideploy.lock"), &cache, &store);
        let out = run(pd(&cache, &store).arg("build").arg("-c").arg(&cfg));
        tops.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let (top_a, top_b) = (tops[0].as_str(), tops[1].as_str());
    assert_ne!(top_a, top_b);

    let sshds = [Sshd::start(), Sshd::start(), Sshd::start()];
    let roots = w.join("roots");
    for r in ["web-1", "web-2", "web-3", "db-1", "db-2", "x1", "x2", "x3"] {
        fs::create_dir_all(roots.join(r)).unwrap();
    }
    let root = |r: &str| roots.join(r);

    // 1. Repeated --target, no inventory: two local roots and one sshd, one config.
    let (code, out, err) = outcome(
        pd(&cache, &store)
            .args(["switch", "-c"])
            .arg(w.join("a/pi.toml"))
            .arg("--target")
            .arg(format!("local:{}", root("x1").display()))
            .arg("--target")
            .arg(format!("local:{}", root("x2").display()))
            .args(["--target", &format!("root@127.0.0.1:{}", sshds[0].port)])
            .arg("-i")
            .arg(&sshds[0].client_key)
            .arg("--known-hosts")
            .arg(&sshds[0].known_hosts)
            .arg("--root")
            .arg(root("x3")),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let rows = summary(&out);
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows.values().all(|(_, g, r)| g == "1" && r == "switched"),
        "{out}"
    );
    for r in ["x1", "x2", "x3"] {
        assert_gen1(&root(r), top_a);
    }
    assert_eq!(err.matches("built system fleeta").count(), 1, "{err}");
    assert!(err.contains("3 of 3 hosts deployed, 0 failed"), "{err}");

    // The inventory: web-3's known_hosts holds another server's key for its address.
    let bad_kh = w.join("bad_known_hosts");
    let other_key = fs::read_to_string(sshds[0].dir.path().join("host_key.pub")).unwrap();
    fs::write(
        &bad_kh,
        format!("[127.0.0.1]:{} {}", sshds[2].port, other_key.trim()),
    )
    .unwrap();
    let tags = "tags = [\"web\", \"ssh\"]";
    let mut inv = String::from("[defaults]\nconfig = \"a/pi.toml\"\n\n");
    inv += &host_entry(
        "web-1",
        &sshds[0],
        &sshds[0].known_hosts,
        &root("web-1"),
        tags,
    );
    inv += &host_entry(
        "web-2",
        &sshds[1],
        &sshds[1].known_hosts,
        &root("web-2"),
        &format!("{tags}\nconfig = \"b/pi.toml\""),
    );
    inv += &host_entry("web-3", &sshds[2], &bad_kh, &root("web-3"), tags);
    inv += "[[host]]\nname = \"db-1\"\ntarget = \"local:roots/db-1\"\ntags = [\"db\"]\n\n";
    inv += "[[host]]\nname = \"db-2\"\ntarget = \"local:roots/db-2\"\nconfig = \"b/pi.toml\"\ntags = [\"db\"]\n";
    let hosts = w.join("hosts.toml");
    fs::write(&hosts, inv).unwrap();
    let fleet = |on: Option<&str>| {
        let mut c = pd(&cache, &store);
        c.arg("switch").arg("--hosts").arg(&hosts);
        if let Some(on) = on {
            c.args(["--on", on]);
        }
        c
    };

    // 2. A glob: only db-1 and db-2, each with its own config, each built once.
    let (code, out, err) = outcome(&mut fleet(Some("db-*")));
    assert_eq!(code, 0, "{out}\n{err}");
    let rows = summary(&out);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["db-1", "db-2"], "{out}");
    assert_eq!(
        rows["db-1"],
        (
            format!("local:{}", root("db-1").display()),
            "1".into(),
            "switched".into()
        )
    );
    assert_eq!(rows["db-2"].1, "1");
    assert_gen1(&root("db-1"), top_a);
    assert_gen1(&root("db-2"), top_b);
    assert_eq!(err.matches("built system fleeta").count(), 1, "{err}");
    assert_eq!(err.matches("built system fleetb").count(), 1, "{err}");
    for r in ["web-1", "web-2", "web-3"] {
        assert_empty(&root(r));
    }

    // 3. A tag, all three sshd at once: web-3 fails on its host key, the others are unharmed.
    let (code, out, err) = outcome(&mut fleet(Some("@ssh")));
    assert_eq!(code, 1, "{out}\n{err}");
    let rows = summary(&out);
    assert_eq!(
        rows.iter()
            .map(|(h, (_, g, r))| (h.as_str(), g.as_str(), r.as_str()))
            .collect::<Vec<_>>(),
        [
            ("web-1", "1", "switched"),
            ("web-2", "1", "switched"),
            ("web-3", "-", "FAILED")
        ],
        "{out}"
    );
    let errs = errors(&err);
    assert_eq!(errs.len(), 1, "{err}");
    assert!(
        errs[0].starts_with("pideploy: error: web-3: ") && errs[0].contains("HOST KEY CHANGED"),
        "{err}"
    );
    assert!(err.contains("2 of 3 hosts deployed, 1 failed"), "{err}");
    assert_gen1(&root("web-1"), top_a);
    assert_gen1(&root("web-2"), top_b);
    assert_empty(&root("web-3"));

    // 4. Every host, one at a time: all are tried, each host's lines in one block.
    let (code, out, err) = outcome(fleet(None).args(["--limit", "1"]));
    assert_eq!(code, 1, "{out}\n{err}");
    let rows = summary(&out);
    assert_eq!(rows.len(), 5, "{out}");
    for h in ["web-1", "web-2", "db-1", "db-2"] {
        assert_eq!(rows[h].2, "unchanged", "{out}");
    }
    assert_eq!(rows["web-3"].2, "FAILED", "{out}");
    let order: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(h, _)| h))
        .filter(|h| rows.contains_key(*h))
        .collect();
    let mut blocks = order.clone();
    blocks.dedup();
    assert_eq!(
        blocks,
        ["web-1", "web-2", "web-3", "db-1", "db-2"],
        "with --limit 1 no two deploys overlap:\n{err}"
    );
    assert!(order.len() > 5, "{err}");
    for (r, top) in [
        ("web-1", top_a),
        ("web-2", top_b),
        ("db-1", top_a),
        ("db-2", top_b),
    ] {
        assert_gen1(&root(r), top);
    }
    assert_empty(&root("web-3"));
}

#[test]
fn bad_inventories_and_selections_are_one_line_and_touch_nothing() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    fs::create_dir(w.join("r1")).unwrap();
    // The config does not exist: every error below comes before anything is built.
    let hosts = w.join("hosts.toml");
    fs::write(
        &hosts,
        "[defaults]\nconfig = \"missing.toml\"\n\n[[host]]\nname = \"web-1\"\ntarget = \"local:r1\"\n\
         tags = [\"web\"]\n\n[[host]]\nname = \"db-1\"\ntarget = \"root@127.0.0.1:1\"\ntags = [\"db\"]\n",
    )
    .unwrap();
    let fail = |args: &[&str], dir: &Path, want: &str| {
        let (code, out, err) = outcome(
            pd(&w.join("cache"), &w.join("store"))
                .current_dir(dir)
                .arg("switch")
                .args(args),
        );
        assert_eq!(code, 1, "{args:?}: {out}\n{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("pideploy: error: "), "{err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
    };
    fail(&["--on", "@nope"], w, "has tag @nope; tags: @db, @web");
    fail(
        &["--on", "web-1,web-9"],
        w,
        "no host named \"web-9\"; hosts: web-1, db-1",
    );
    fail(
        &["--on", "cache-*"],
        w,
        "\"cache-*\" matches no host in hosts.toml; hosts: web-1, db-1",
    );
    let elsewhere = tempfile::tempdir().unwrap();
    fail(
        &["--on", "web-1"],
        elsewhere.path(),
        "reading inventory hosts.toml",
    );
    let h = hosts.to_str().unwrap();
    fail(
        &["--hosts", h, "--target", "local:r1"],
        w,
        "web-1 and local:r1 both deploy to",
    );
    // Selection passes; the build then fails before any host is contacted.
    fail(&["--hosts", h, "--on", "@web"], w, "building for web-1: ");
    assert_empty(&w.join("r1"));

    let bad = w.join("bad.toml");
    fs::write(
        &bad,
        "[[host]]\nname = \"web-1\"\ntarget = \"local:r1\"\nadress = \"x\"\n",
    )
    .unwrap();
    fail(
        &["--hosts", bad.to_str().unwrap()],
        w,
        "bad.toml:4:1: unknown field `adress`",
    );
    fs::write(&bad, "[[host]]\nname = \"web-1\"\ntarget = \"pi@h:xx\"\n").unwrap();
    fail(
        &["--hosts", bad.to_str().unwrap()],
        w,
        "bad.toml:3:10: invalid ssh target \"pi@h:xx\"",
    );
    assert_empty(&w.join("r1"));
}
