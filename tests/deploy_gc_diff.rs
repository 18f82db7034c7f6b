//! gc, diff and dry-activate against a throwaway root on this machine (`--target local:DIR`), set up
//! like tests/deploy_local.rs: the root starts as a real image's partitions unpacked with debugfs
//! and mtools. Expected sets are computed here from the target's own registration files (`ref`
//! lines), independently of the agent's reachability walk.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn config(top: &str, extra: &str) -> String {
    format!(
        "board = \"qemu-aarch64\"\nhostname = \"deploypi\"\n{top}\n[[users]]\nname = \"pi\"\nuid = 1000\n\
         ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployTestKeyDeployTestKeyDeployTes test\"]\n{extra}"
    )
}

fn file(path: &str, content: &str) -> String {
    format!("\n[[files]]\npath = \"{path}\"\ncontent = \"{content}\\n\"\n")
}

fn pd(cache: &Path, store: &Path) -> Command {
    let mut c = pideploy();
    env_for(&mut c, cache, store);
    c
}

fn outputs(cmd: &mut Command) -> (String, String) {
    let out = run(cmd);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// The target's reference graph, read from its registrations.
fn graph(root: &Path) -> BTreeMap<String, Vec<String>> {
    let db = root.join("pideploy/var/db/valid");
    names(&db)
        .into_iter()
        .map(|b| {
            let refs = fs::read_to_string(db.join(&b))
                .unwrap()
                .lines()
                .filter_map(|l| l.strip_prefix("ref ").map(String::from))
                .collect();
            (b, refs)
        })
        .collect()
}

fn reach(g: &BTreeMap<String, Vec<String>>, roots: &[String]) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(b) = todo.pop() {
        if live.insert(b.clone()) {
            todo.extend(g.get(&b).cloned().unwrap_or_default());
        }
    }
    live
}

fn base(top: &str) -> String {
    top.trim_start_matches("/pideploy/store/").to_string()
}

fn link(p: PathBuf) -> String {
    fs::read_link(p).unwrap().to_str().unwrap().to_string()
}

/// Every entry under `dir` with its type, size, mode and modification time.
fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    use std::os::unix::fs::MetadataExt;
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        out.insert(
            p.clone(),
            format!(
                "{:?} {} {:o} {}.{}",
                m.file_type(),
                m.size(),
                m.mode(),
                m.mtime(),
                m.mtime_nsec()
            ),
        );
        if m.is_dir() {
            snapshot(&p, out);
        }
    }
}

fn gens_json(cache: &Path, store: &Path, target: &str) -> Vec<serde_json::Value> {
    let (out, _) = outputs(pd(cache, store).args(["generations", "--json", "--target", target]));
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn gc_diff_and_dry_activate_on_a_local_root() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let cache = w.join("cache");
    let store = w.join("store");
    let cfgs: Vec<PathBuf> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| w.join(n).join("pi.toml"))
        .collect();
    let texts = [
        config("", ""),
        config(
            "packages = [\"tree\"]\n",
            &file("/etc/motd", "generation two"),
        ),
        config(
            "packages = [\"tree\"]\n",
            &(file("/etc/motd", "generation two") + &file("/etc/hello", "three")),
        ),
        config("", &file("/etc/dry", "never deployed")),
    ];
    for (c, t) in cfgs.iter().zip(texts) {
        fs::create_dir_all(c.parent().unwrap()).unwrap();
        fs::write(c, t).unwrap();
        lock_and_import(c, &c.with_file_name("pideploy.lock"), &cache, &store);
    }
    let [a_cfg, b_cfg, c_cfg, d_cfg] = [&cfgs[0], &cfgs[1], &cfgs[2], &cfgs[3]];

    // Generation 1: an image of A, unpacked the way it sits on the card.
    let img = w.join("a.img");
    run(pd(&cache, &store)
        .arg("image")
        .arg("-c")
        .arg(a_cfg)
        .arg("-o")
        .arg(&img));
    let root = w.join("target");
    unpack_image(&img, w, &root);
    let target = format!("local:{}", root.display());
    let prof = root.join("pideploy/var/profiles");
    let fw = root.join("boot/firmware");

    // Generation 2 (B) switched to; generation 3 (C) only made the default for the next boot.
    let (b_top, _) = outputs(
        pd(&cache, &store)
            .args(["switch", "-c"])
            .arg(b_cfg)
            .args(["--target", &target]),
    );
    let b_top = b_top.trim().to_string();
    let (c_top, err) = outputs(
        pd(&cache, &store)
            .args(["boot", "-c"])
            .arg(c_cfg)
            .args(["--target", &target]),
    );
    let c_top = c_top.trim().to_string();
    assert!(err.contains("generation 3"), "{err}");
    let a_top = link(prof.join("system-1-link"));
    assert_eq!(link(root.join("run/current-system")), b_top);
    assert_eq!(link(prof.join("system")), "system-3-link");

    // diff between generations 1 and 2: the added package and file.
    let (out, _) = outputs(pd(&cache, &store).args(["diff", "--target", &target, "1", "2"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("+ package tree ")),
        "{out}"
    );
    assert!(lines.contains(&"+ file /etc/motd"), "{out}");
    assert!(!out.contains("- package"), "{out}");
    assert!(!out.contains("kernel"), "same kernel: {out}");
    // Reversed, the same changes the other way.
    let (out, _) = outputs(pd(&cache, &store).args(["diff", "--target", &target, "2", "1"]));
    assert!(
        out.lines().any(|l| l.starts_with("- package tree ")),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "- file /etc/motd"), "{out}");
    // Without generations: the running system (B) against the local build of C.
    let (out, _) = outputs(
        pd(&cache, &store)
            .args(["diff", "--target", &target, "-c"])
            .arg(c_cfg),
    );
    assert_eq!(out.trim(), "+ file /etc/hello", "{out}");
    // An unknown generation is one clear error.
    let bad = pd(&cache, &store)
        .args(["diff", "--target", &target, "1", "9"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no generation 9"));

    // dry-activate of D: reports what it would send and changes nothing under the root.
    let mut before = BTreeMap::new();
    snapshot(&root, &mut before);
    let (out, _) = outputs(
        pd(&cache, &store)
            .args(["dry-activate", "--target", &target, "-c"])
            .arg(d_cfg),
    );
    let mut after = BTreeMap::new();
    snapshot(&root, &mut after);
    assert_eq!(before, after, "dry-activate changed the root");
    let (d_top, _) = outputs(pd(&cache, &store).args(["build", "-c"]).arg(d_cfg));
    let (closure, _) = outputs(pd(&cache, &store).args(["closure", d_top.trim()]));
    let have = names(&root.join("pideploy/var/db/valid"));
    let expect_send: BTreeSet<String> = closure
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with("/pideploy/store/"))
        .map(base)
        .filter(|b| !have.contains(b))
        .collect();
    let reported: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("send "))
        .map(base)
        .collect();
    assert!(!expect_send.is_empty());
    assert_eq!(reported, expect_send, "{out}");
    assert!(
        out.contains(&format!("would send {} store paths", expect_send.len())),
        "{out}"
    );
    assert!(out.contains("would make a new generation"), "{out}");
    assert!(out.contains("+ file /etc/dry"), "{out}");
    assert!(out.contains("- file /etc/motd"), "{out}");
    assert!(out.contains("boot entry changes"), "{out}");
    // Same kernel and parameters as the running B: the boot files do not change.
    assert!(out.contains("config.txt): no"), "{out}");

    // gc --keep 1: 3 is the newest (and default), 2 is running; only 1 goes.
    let g = graph(&root);
    let all: BTreeSet<String> = names(&root.join("pideploy/store"));
    let live = reach(&g, &[base(&b_top), base(&c_top)]);
    let dead: BTreeSet<String> = all.difference(&live).cloned().collect();
    assert!(dead.contains(&base(&a_top)), "A's toplevel is garbage");
    let (out, err) = outputs(pd(&cache, &store).args(["gc", "--target", &target, "--keep", "1"]));
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("removed generation"))
            .collect::<Vec<_>>(),
        vec!["removed generation 1"],
        "{out}"
    );
    let removed: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("removed /pideploy/store/"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(removed, dead, "{out}");
    assert!(err.contains("freed"), "{err}");
    assert_eq!(names(&root.join("pideploy/store")), live);
    assert_eq!(names(&root.join("pideploy/var/db/valid")), live);
    assert!(!prof.join("system-1-link").exists());
    assert!(!root.join("pideploy/var/generations/1.json").exists());
    assert!(!fw.join("gen-1").exists());
    assert!(fw.join("gen-2").is_dir() && fw.join("gen-3").is_dir());
    assert!(!root.join("pideploy/var/lock").exists(), "lock released");
    let list = gens_json(&cache, &store, &target);
    let nums: Vec<u64> = list
        .iter()
        .map(|g| g["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, vec![2, 3]);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["default"], true);

    // Switch to C (now also running: generation 4), then keep 1: 2 and 3 go, B's own paths go.
    let (_, err) = outputs(
        pd(&cache, &store)
            .args(["switch", "-c"])
            .arg(c_cfg)
            .args(["--target", &target]),
    );
    assert!(err.contains("generation 4"), "{err}");
    let g = graph(&root);
    let live = reach(&g, &[base(&c_top)]);
    let (out, _) = outputs(pd(&cache, &store).args(["gc", "--target", &target, "--keep", "1"]));
    assert!(
        out.contains("removed generation 2") && out.contains("removed generation 3"),
        "an older generation of the running closure is not the running one: {out}"
    );
    assert_eq!(names(&root.join("pideploy/store")), live);
    assert!(!live.contains(&base(&b_top)));
    assert!(!fw.join("gen-2").exists() && !fw.join("gen-3").exists());
    assert!(fw.join("gen-4").is_dir());
    assert!(fs::read_to_string(fw.join("config.txt"))
        .unwrap()
        .contains("os_prefix=gen-4/"));
    let list = gens_json(&cache, &store, &target);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["generation"], 4);

    // A re-deploy of B works: what gc removed is sent again.
    let (_, err) = outputs(
        pd(&cache, &store)
            .args(["switch", "-c"])
            .arg(b_cfg)
            .args(["--target", &target]),
    );
    assert!(err.contains("generation 5 is active"), "{err}");
    assert!(!err.contains("copied 0 "), "{err}");
    assert_eq!(link(root.join("run/current-system")), b_top);
    assert!(root.join(&b_top[1..]).join("manifest.json").is_file());
    assert_eq!(
        fs::read_to_string(root.join("etc/motd")).unwrap(),
        "generation two\n"
    );

    // --older-than: generation 4 is older than 1s once a second has passed; 5 is default and running.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (out, _) =
        outputs(pd(&cache, &store).args(["gc", "--target", &target, "--older-than", "1s"]));
    assert!(out.contains("removed generation 4"), "{out}");
    assert!(!out.contains("removed generation 5"), "{out}");
    assert_eq!(
        names(&root.join("pideploy/store")),
        reach(&graph(&root), &[base(&b_top)])
    );

    // Local gc: the latest build of this host (B, deployed last) stays; A's and D's toplevels go.
    let (out, _) = outputs(pd(&cache, &store).args(["gc", "--dry-run"]));
    assert!(out.contains(&format!("would remove {a_top}")), "{out}");
    assert!(
        out.contains(&format!("would remove {}", d_top.trim())),
        "{out}"
    );
    assert!(!out.contains(&b_top), "{out}");
    let info = |p: &str| pd(&cache, &store).args(["path-info", p]).output().unwrap();
    assert!(info(&a_top).status.success(), "--dry-run removed nothing");
    // A's image left its staged store behind for the next image; gc takes A's paths out of it too.
    let kept_a = store.join("image-store").join(base(&a_top));
    assert!(kept_a.is_dir(), "A's image kept no staged store");
    let (out, _) = outputs(pd(&cache, &store).arg("gc"));
    assert!(out.contains(&format!("removed {a_top}")), "{out}");
    assert!(
        !kept_a.exists(),
        "gc left A's toplevel in the kept staged store"
    );
    assert!(info(&b_top).status.success());
    assert!(!info(&a_top).status.success());
    assert!(!info(d_top.trim()).status.success());
    // B's closure is whole: every path of it still answers path-info.
    let (closure, _) = outputs(pd(&cache, &store).args(["closure", &b_top]));
    assert!(closure.lines().count() > 3, "{closure}");
    let (again, _) = outputs(pd(&cache, &store).args(["build", "-c"]).arg(a_cfg));
    assert_eq!(again.trim(), a_top, "rebuilt bit-identically after gc");
}
