//! One deploy suite, run over both transports: `--target local:DIR` (the local transport) and
//! `--target pdtest-nopw@127.0.0.1:PORT --root DIR` (ssh2 into a real OpenSSH sshd this test
//! starts, logging in as a user with passwordless sudo). Each run starts from an empty root and
//! checks what every step leaves on disk: switch, a no-op switch, `generations --json`, `diff`,
//! `rollback --to`, two switches at once (the deploy lock), `gc --keep`, and a secret's content,
//! mode and owner (and that it is in no store).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::sshd::{Sshd, NOPW_USER};
use common::*;
use rstest::rstest;

/// Only the deploy carries this; it must never land in a store.
const SECRET: &str = "suite-secret-0b7e55d2";

/// A config of host `suitepi`: user pi (uid 1000), a secret owned by pi:root mode 0440, plus `extra`.
fn config(extra: &str) -> String {
    format!(
        "board = \"qemu-aarch64\"\nhostname = \"suitepi\"\n{extra}\n[[users]]\nname = \"pi\"\nuid = 1000\n\
         ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployTestKeyDeployTestKeyDeployTes test\"]\n\
         \n[[secrets]]\nsource = \"token.txt\"\ntarget = \"/etc/pideploy-secrets/token\"\nmode = \"0440\"\nowner = \"pi\"\ngroup = \"root\"\n"
    )
}

fn file(path: &str, content: &str) -> String {
    format!("\n[[files]]\npath = \"{path}\"\ncontent = \"{content}\\n\"\n")
}

/// Which transport a run goes through.
#[derive(Debug, Clone, Copy)]
enum Via {
    Local,
    Ssh,
}

/// The target of one run: the root directory and the arguments that reach it.
struct Target {
    root: PathBuf,
    args: Vec<String>,
    cache: PathBuf,
    store: PathBuf,
    _sshd: Option<Sshd>,
}

impl Target {
    fn new(via: Via, w: &Path) -> Target {
        let root = w.join("target");
        fs::create_dir(&root).unwrap();
        let (args, sshd) = match via {
            Via::Local => (vec![format!("--target=local:{}", root.display())], None),
            Via::Ssh => {
                let s = Sshd::start();
                let args = vec![
                    format!("--target={NOPW_USER}@127.0.0.1:{}", s.port),
                    format!("--identity={}", s.client_key.display()),
                    format!("--known-hosts={}", s.known_hosts.display()),
                    format!("--root={}", root.display()),
                ];
                (args, Some(s))
            }
        };
        Target {
            root,
            args,
            cache: w.join("cache"),
            store: w.join("store"),
            _sshd: sshd,
        }
    }

    /// `pideploy SUB... <target args>` with this run's cache and store.
    fn cmd(&self, sub: &[&str]) -> Command {
        let mut c = pideploy();
        env_for(&mut c, &self.cache, &self.store)
            .env_remove("SSH_AUTH_SOCK")
            .args(sub)
            .args(&self.args);
        c
    }

    /// Runs it and expects success: (stdout, stderr).
    fn ok(&self, sub: &[&str]) -> (String, String) {
        let out = run(&mut self.cmd(sub));
        (text(&out.stdout), text(&out.stderr))
    }

    /// `pideploy SUB...` without a target (build, closure): (stdout, stderr).
    fn here(&self, sub: &[&str]) -> (String, String) {
        let mut c = pideploy();
        let out = run(env_for(&mut c, &self.cache, &self.store).args(sub));
        (text(&out.stdout), text(&out.stderr))
    }

    fn switch(&self, cfg: &Path) -> (String, String) {
        self.ok(&["switch", "-c", cfg.to_str().unwrap()])
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn link(&self, rel: &str) -> String {
        fs::read_link(self.p(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .to_str()
            .unwrap()
            .to_string()
    }

    fn generations(&self) -> Vec<serde_json::Value> {
        let (out, _) = self.ok(&["generations", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{e}: {out}"))
            .as_array()
            .unwrap()
            .clone()
    }

    /// The generation records on disk, by number.
    fn records(&self) -> BTreeSet<u32> {
        names(&self.p("pideploy/var/generations"))
            .iter()
            .filter_map(|n| n.strip_suffix(".json")?.parse().ok())
            .collect()
    }

    /// Default and running toplevels, and that no deploy is half-done: no lock, nothing pending,
    /// nothing half-received.
    fn settled(&self) -> (String, String) {
        assert!(!self.p("pideploy/var/lock").exists(), "lock released");
        assert!(!self.p("pideploy/var/pending").exists(), "nothing pending");
        let store = names(&self.p("pideploy/store"));
        let incoming: Vec<_> = fs::read_dir(self.p("pideploy/store"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".incoming"))
            .collect();
        assert!(incoming.is_empty(), "half-received: {incoming:?}");
        let valid = names(&self.p("pideploy/var/db/valid"));
        assert_eq!(
            store, valid,
            "every store path is registered, and only those"
        );
        let default = self.link("pideploy/var/profiles/system");
        (
            self.link(&format!("pideploy/var/profiles/{default}")),
            self.link("run/current-system"),
        )
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// `copied N store paths` from a switch's stderr.
fn copied(err: &str) -> usize {
    err.split("copied ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no copy report: {err}"))
}

/// The target's reference graph, from its registrations (`ref` lines).
fn reachable(root: &Path, tops: &[&str]) -> BTreeSet<String> {
    let db = root.join("pideploy/var/db/valid");
    let refs = |b: &str| -> Vec<String> {
        fs::read_to_string(db.join(b))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("ref ").map(String::from))
            .collect()
    };
    let mut live = BTreeSet::new();
    let mut todo: Vec<String> = tops.iter().map(|t| base(t)).collect();
    while let Some(b) = todo.pop() {
        if live.insert(b.clone()) {
            todo.extend(refs(&b));
        }
    }
    live
}

fn base(top: &str) -> String {
    top.trim_start_matches("/pideploy/store/").to_string()
}

/// The one `pideploy: error` line of a failed run.
fn one_error(out: &Output) -> String {
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pideploy: error"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_string()
}

#[rstest]
#[case::local(Via::Local)]
#[case::ssh(Via::Ssh)]
fn deploy_suite(#[case] via: Via) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let t = Target::new(via, w);
    let start = std::time::Instant::now();
    let step = |what: &str| eprintln!("{via:?} {:>6.1}s {what}", start.elapsed().as_secs_f64());

    // A: the base system with an /etc/motd; B: + tree, its own motd and /etc/b-only; L1, L2:
    // B's packages plus a file each, with a health check that keeps the deploy lock held until the
    // test creates `release` (for the two-at-once step: a condition, not a fixed sleep that a
    // loaded machine outlasts).
    let release = w.join("release");
    let slow = format!(
        "\n[health]\ncommands = [[\"test\", \"-e\", \"{}\"]]\ntimeout_secs = 600\n",
        release.display()
    );
    let texts = [
        ("a", config(&file("/etc/motd", "from A"))),
        (
            "b",
            config(&format!(
                "packages = [\"tree\"]\n{}{}",
                file("/etc/motd", "from B"),
                file("/etc/b-only", "B")
            )),
        ),
        (
            "l1",
            config(&format!(
                "packages = [\"tree\"]\n{}{}{slow}",
                file("/etc/motd", "from B"),
                file("/etc/l1", "one")
            )),
        ),
        (
            "l2",
            config(&format!(
                "packages = [\"tree\"]\n{}{}{slow}",
                file("/etc/motd", "from B"),
                file("/etc/l2", "two")
            )),
        ),
    ];
    let mut cfg = BTreeMap::new();
    for (name, body) in &texts {
        let c = w.join(name).join("pi.toml");
        fs::create_dir_all(c.parent().unwrap()).unwrap();
        fs::write(&c, body).unwrap();
        let token = match *name {
            "l1" | "l2" => format!("{SECRET}-{name}"),
            _ => SECRET.to_string(),
        };
        fs::write(w.join(name).join("token.txt"), token).unwrap();
        cfg.insert(*name, c);
    }
    // A lock pins the package set: A has its own, L1 and L2 share B's.
    step("lock and build");
    lock_and_import(&cfg["a"], &w.join("a/pideploy.lock"), &t.cache, &t.store);
    lock_and_import(&cfg["b"], &w.join("b/pideploy.lock"), &t.cache, &t.store);
    for name in ["l1", "l2"] {
        fs::copy(
            w.join("b/pideploy.lock"),
            w.join(name).join("pideploy.lock"),
        )
        .unwrap();
    }
    let mut top = BTreeMap::new();
    for (name, c) in &cfg {
        let (out, _) = t.here(&["build", "-c", c.to_str().unwrap()]);
        top.insert(*name, out.trim().to_string());
    }
    assert!(!t.p("pideploy").exists(), "nothing deployed yet");

    // switch A into the empty root: generation 1, everything sent.
    step("switch A");
    let (out, err) = t.switch(&cfg["a"]);
    assert_eq!(out.trim(), top["a"]);
    assert!(
        err.contains("generation 1 is active and the default"),
        "{err}"
    );
    let (closure, _) = t.here(&["closure", &top["a"]]);
    let closure_a: BTreeSet<String> = closure
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("/pideploy/store/"))
        })
        .map(base)
        .collect();
    assert!(closure_a.contains(&base(&top["a"])));
    assert_eq!(copied(&err), closure_a.len(), "{err}");
    assert_eq!(t.settled(), (top["a"].clone(), top["a"].clone()));
    assert_eq!(names(&t.p("pideploy/store")), closure_a);
    assert_eq!(t.link("pideploy/var/profiles/system"), "system-1-link");
    assert_eq!(t.records(), BTreeSet::from([1]));
    // The secret: its content, mode and owner, and in no store on either side.
    let secret = t.p("etc/pideploy-secrets/token");
    assert_eq!(fs::read_to_string(&secret).unwrap(), SECRET);
    let m = fs::metadata(&secret).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o440, 1000, 0));
    for dir in [t.p("pideploy"), t.store.clone()] {
        let hits = Command::new("grep")
            .args(["-rlF", SECRET])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            hits.stdout.is_empty(),
            "secret in {}: {}",
            dir.display(),
            text(&hits.stdout)
        );
    }

    // The same again: nothing sent, no generation, the same links.
    step("no-op");
    let (_, err) = t.switch(&cfg["a"]);
    assert_eq!(copied(&err), 0, "{err}");
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(t.settled(), (top["a"].clone(), top["a"].clone()));
    assert_eq!(t.records(), BTreeSet::from([1]));

    // switch B: generation 2, only what A lacked is sent; tree and motd are there.
    step("switch B");
    let (_, err) = t.switch(&cfg["b"]);
    assert!(
        err.contains("generation 2 is active and the default"),
        "{err}"
    );
    let have_before = closure_a.len();
    let store_after = names(&t.p("pideploy/store"));
    assert_eq!(copied(&err), store_after.len() - have_before, "{err}");
    assert_eq!(t.settled(), (top["b"].clone(), top["b"].clone()));
    assert_eq!(fs::read_to_string(t.p("etc/motd")).unwrap(), "from B\n");
    let sw = fs::read_link(t.root.join(&top["b"][1..]).join("sw")).unwrap();
    let tree = t
        .root
        .join(sw.strip_prefix("/").unwrap())
        .join("usr/bin/tree");
    assert!(tree.symlink_metadata().is_ok(), "{}", tree.display());
    let rec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(t.p("pideploy/var/generations/2.json")).unwrap())
            .unwrap();
    assert_eq!(rec["toplevel"], top["b"].as_str());

    // generations: 1 and 2 with their toplevels; 2 is the default and running.
    step("generations");
    let list = t.generations();
    let rows: Vec<(u64, &str, bool, bool)> = list
        .iter()
        .map(|g| {
            (
                g["generation"].as_u64().unwrap(),
                g["toplevel"].as_str().unwrap(),
                g["default"].as_bool().unwrap(),
                g["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, top["a"].as_str(), false, false),
            (2, top["b"].as_str(), true, true)
        ]
    );

    // diff 1 2: tree and /etc/b-only came; nothing went.
    step("diff");
    let (out, _) = t.ok(&["diff", "1", "2"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("+ package tree ")),
        "{out}"
    );
    assert!(lines.contains(&"+ file /etc/b-only"), "{out}");
    assert!(!lines.iter().any(|l| l.starts_with('-')), "{out}");

    // rollback --to 1: A is the default and running again; records stay.
    step("rollback");
    let (_, err) = t.ok(&["rollback", "--to", "1"]);
    assert!(err.contains("generation 1 is active"), "{err}");
    assert_eq!(t.settled(), (top["a"].clone(), top["a"].clone()));
    assert_eq!(t.link("pideploy/var/profiles/system"), "system-1-link");
    assert_eq!(t.records(), BTreeSet::from([1, 2]));
    assert_eq!(fs::read_to_string(t.p("etc/motd")).unwrap(), "from A\n");

    // Two switches at once: L2 starts while L1 holds the deploy lock (through its health check)
    // and fails with one line naming the holder, before it sends or writes anything; L1 becomes
    // generation 3.
    step("concurrent");
    let spawn = |c: &Path| {
        t.cmd(&["switch", "-c", c.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&cfg["l1"]);
    let waited = std::time::Instant::now();
    while !t.p("pideploy/var/lock").exists() {
        assert!(
            waited.elapsed().as_secs() < 120,
            "L1 never took the deploy lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = spawn(&cfg["l2"]).wait_with_output().unwrap();
    fs::write(&release, "").unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let line = one_error(&second);
    let me = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    );
    assert!(
        line.contains(&format!("is being deployed by {me}")),
        "{line}"
    );
    assert_eq!(text(&first.stdout).trim(), top["l1"]);
    assert!(
        text(&first.stderr).contains("generation 3 is active and the default"),
        "{}",
        text(&first.stderr)
    );
    assert_eq!(t.settled(), (top["l1"].clone(), top["l1"].clone()));
    assert_eq!(t.records(), BTreeSet::from([1, 2, 3]));
    assert_eq!(t.link("pideploy/var/profiles/system-3-link"), top["l1"]);
    assert_eq!(fs::read_to_string(t.p("etc/l1")).unwrap(), "one\n");
    assert!(t.p("etc/l2").symlink_metadata().is_err());
    assert!(!t.p(&top["l2"][1..]).exists(), "L2 sent nothing");
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        format!("{SECRET}-l1"),
        "L2 wrote no secret"
    );

    // gc --keep 1: generations 1 and 2 go, and every store path the winner does not reach.
    step("gc");
    let live = reachable(&t.root, &[&top["l1"]]);
    let before = names(&t.p("pideploy/store"));
    let dead: BTreeSet<String> = before.difference(&live).cloned().collect();
    assert!(dead.contains(&base(&top["a"])) && dead.contains(&base(&top["b"])));
    let (out, err) = t.ok(&["gc", "--keep", "1"]);
    let gens: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("removed generation "))
        .collect();
    assert_eq!(gens, BTreeSet::from(["1", "2"]), "{out}");
    let removed: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("removed /pideploy/store/"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(removed, dead, "{out}");
    assert!(err.contains("freed"), "{err}");
    assert_eq!(t.settled(), (top["l1"].clone(), top["l1"].clone()));
    assert_eq!(names(&t.p("pideploy/store")), live);
    assert_eq!(t.records(), BTreeSet::from([3]));
    assert_eq!(
        names(&t.p("pideploy/var/profiles")),
        BTreeSet::from(["system".to_string(), "system-3-link".to_string()])
    );
    let list = t.generations();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["generation"], 3);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["default"], true);
}
