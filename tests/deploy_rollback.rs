//! Rollback levels 1 and 2 on a throwaway root (`--target local:DIR`, the agent and activation
//! used over SSH): an activation that fails returns the target to the previous generation by
//! itself; an activation whose health checks fail, or whose deployer disappears before confirming,
//! is reverted by the detached waiter on the target. Each case checks the exact state left.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn config(extra: &str) -> String {
    format!(
        "board = \"qemu-aarch64\"\nhostname = \"rbpi\"\n\n[[users]]\nname = \"pi\"\nuid = 1000\n\
         ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployTestKeyDeployTestKeyDeployTes test\"]\n{extra}"
    )
}

/// The target's generation state, as files: default link, generation links, records, boot entries,
/// config.txt, running system, lock, pending.
#[derive(Debug, PartialEq, Eq)]
struct State {
    default: String,
    links: Vec<String>,
    records: Vec<String>,
    entries: Vec<String>,
    config_txt: String,
    running: String,
    locked: bool,
    pending: bool,
}

fn names(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| keep(n))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn state(root: &Path) -> State {
    let p = root.join("pideploy/var");
    let link = |l: &Path| {
        fs::read_link(l)
            .map(|t| t.display().to_string())
            .unwrap_or_default()
    };
    State {
        default: link(&p.join("profiles/system")),
        links: names(&p.join("profiles"), |n| n.ends_with("-link")),
        records: names(&p.join("generations"), |n| n.ends_with(".json")),
        entries: names(&root.join("boot/firmware"), |n| n.starts_with("gen-")),
        config_txt: fs::read_to_string(root.join("boot/firmware/config.txt")).unwrap(),
        running: link(&root.join("run/current-system")),
        locked: p.join("lock").exists(),
        pending: p.join("pending").exists(),
    }
}

struct Env {
    _work: tempfile::TempDir,
    w: std::path::PathBuf,
    cache: std::path::PathBuf,
    store: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl Env {
    fn pd(&self) -> Command {
        let mut c = pideploy();
        env_for(&mut c, &self.cache, &self.store);
        c
    }

    /// A config directory `name` with its lock, packages imported.
    fn config(&self, name: &str, extra: &str) -> std::path::PathBuf {
        let cfg = self.w.join(name).join("pi.toml");
        fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        fs::write(&cfg, config(extra)).unwrap();
        lock_and_import(
            &cfg,
            &cfg.with_file_name("pideploy.lock"),
            &self.cache,
            &self.store,
        );
        cfg
    }

    fn switch(&self, cfg: &Path) -> Command {
        let mut c = self.pd();
        c.args(["switch", "-c"])
            .arg(cfg)
            .arg("--target")
            .arg(format!("local:{}", self.root.display()));
        c
    }

    /// A switch to `cfg` whose deployer is killed once it starts confirming: the waiter (with
    /// `confirm_timeout` seconds) is left alone with the pending generation.
    fn switch_then_vanish(&self, cfg: &Path, confirm_timeout: &str) {
        let log = self.w.join("switch-vanishing.log");
        let mut child = self
            .switch(cfg)
            .args(["--confirm-timeout", confirm_timeout])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !fs::read_to_string(&log)
            .unwrap()
            .contains("confirming over a new connection")
        {
            assert!(
                child.try_wait().unwrap().is_none(),
                "{}",
                fs::read_to_string(&log).unwrap()
            );
            assert!(start.elapsed() < Duration::from_secs(120));
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn toplevel(&self, cfg: &Path) -> String {
        let out = run(self.pd().arg("build").arg("-c").arg(cfg));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// Generation 1 from an image of `a`, unpacked into a directory root.
fn setup() -> (Env, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_path_buf();
    let env = Env {
        cache: w.join("cache"),
        store: w.join("store"),
        root: w.join("target"),
        w: w.clone(),
        _work: work,
    };
    let a = env.config("a", "");
    let img = w.join("a.img");
    run(env.pd().arg("image").arg("-c").arg(&a).arg("-o").arg(&img));
    unpack_image(&img, &w, &env.root);
    // The unpacked image has not run yet: activate generation 1 as its first boot would.
    let top = env.toplevel(&a);
    run(Command::new("sh")
        .arg(env.root.join(top.trim_start_matches('/')).join("activate"))
        .arg("--root")
        .arg(&env.root));
    (env, a)
}

fn one_error_line(err: &str) -> String {
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pideploy: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    errors[0].to_string()
}

#[test]
fn failed_activation_returns_to_the_previous_generation() {
    let (env, a) = setup();
    let a_top = env.toplevel(&a);
    let before = state(&env.root);
    assert_eq!(before.running, a_top);
    assert_eq!(before.default, "system-1-link");

    // /opt is a plain file on the target, so the new config's /opt/app/app.conf cannot be written.
    fs::write(env.root.join("opt"), "in the way\n").unwrap();
    let b = env.config(
        "b",
        "\n[[files]]\npath = \"/opt/app/app.conf\"\ncontent = \"x = 1\\n\"\n",
    );
    let out = env.switch(&b).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = one_error_line(&err);
    assert!(
        line.contains("activation of generation 2 failed")
            && line.contains("previous generation is active"),
        "{line}"
    );
    // The activation's own error output is shown.
    assert!(
        err.contains("  | activate: ") && err.contains("/opt is not a directory"),
        "{err}"
    );
    assert_eq!(state(&env.root), before, "exactly as before the switch");

    // Numbers are never reused: with /opt out of the way the same config becomes generation 3.
    fs::remove_file(env.root.join("opt")).unwrap();
    let out = run(&mut env.switch(&b));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation 3 is active and the default"),
        "{err}"
    );
    let after = state(&env.root);
    assert_eq!(after.default, "system-3-link");
    assert_eq!(after.links, ["system-1-link", "system-3-link"]);
    assert_eq!(after.entries, ["gen-1", "gen-3"]);
    assert!(after.config_txt.contains("os_prefix=gen-3/"));
    assert_eq!(
        fs::read_to_string(env.root.join("opt/app/app.conf")).unwrap(),
        "x = 1\n"
    );

    // Back to generation 1, which has no such file: it goes with generation 3.
    run(env
        .pd()
        .args(["rollback", "--to", "1", "--target"])
        .arg(format!("local:{}", env.root.display())));
    let s = state(&env.root);
    assert_eq!(
        (s.default.as_str(), s.running.as_str()),
        ("system-1-link", a_top.as_str())
    );
    assert!(!env.root.join("opt/app/app.conf").exists());
}

#[test]
fn unhealthy_or_unconfirmed_activations_are_reverted_by_the_target() {
    let (env, a) = setup();
    let a_top = env.toplevel(&a);
    let before = state(&env.root);

    // Health: nothing listens on port 1, so the checks fail and the deployer asks for the revert.
    let b = env.config("b", "\n[health]\ntcp_ports = [1]\ntimeout_secs = 2\n");
    let out = env.switch(&b).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = one_error_line(&err);
    assert!(
        line.contains("generation 2")
            && line.contains("failed its health checks")
            && line.contains("nothing listens on TCP port 1")
            && line.contains("reverted 2"),
        "{line}"
    );
    let s = state(&env.root);
    assert_eq!(s, before, "back to generation 1: {s:?}");
    assert_eq!(s.running, a_top);

    // The deployer dies while the health checks run: the waiter reverts at its timeout.
    let c = env.config(
        "c",
        "\n[health]\ncommands = [[\"sleep\", \"4\"]]\ntimeout_secs = 30\n",
    );
    let c_top = env.toplevel(&c);
    env.switch_then_vanish(&c, "8");
    let s = state(&env.root);
    assert_eq!(s.running, c_top, "generation 3 is active, unconfirmed");
    assert_eq!(s.default, "system-1-link");
    assert!(s.pending && s.locked, "{s:?}");
    // The waiter writes the boot entry while it waits (the commit then only switches config.txt
    // to it); the revert below takes it away again.
    let entry = env.root.join("boot/firmware/gen-3/cmdline.txt");
    let start = Instant::now();
    while !entry.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "no gen-3 entry");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cmdline = fs::read_to_string(&entry).unwrap();
    assert!(cmdline.contains(&format!("init={c_top}/init")), "{cmdline}");
    assert!(!state(&env.root).config_txt.contains("os_prefix=gen-3/"));

    // Meanwhile another deploy is refused at once, naming the wait.
    let out = env.switch(&a).output().unwrap();
    assert!(!out.status.success());
    let line = one_error_line(&String::from_utf8_lossy(&out.stderr));
    assert!(
        line.contains("is being deployed by") && line.contains("confirmation of generation 3"),
        "{line}"
    );

    let start = Instant::now();
    while state(&env.root).pending {
        assert!(start.elapsed() < Duration::from_secs(30), "no revert");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&env.root), before, "reverted to generation 1");
    let waiter_log = fs::read_to_string(env.root.join("pideploy/var/waiter.log")).unwrap();
    assert!(
        waiter_log.contains("generation 3 reverted: no confirmation within 8 s"),
        "{waiter_log}"
    );

    // Without magic rollback nothing waits: generation 4 stands at once.
    let out = run(env.switch(&c).arg("--no-magic-rollback"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation 4 is active and the default"),
        "{err}"
    );
    let s = state(&env.root);
    assert_eq!(
        (s.default.as_str(), s.running.as_str()),
        ("system-4-link", c_top.as_str())
    );
    assert!(!s.pending && !s.locked);

    // A confirmation handed to a waiter that then dies does not wait for an answer that cannot
    // come: it says so within seconds (while the waiter lives, it waits however long the commit
    // takes).
    env.switch_then_vanish(&a, "60");
    let var = env.root.join("pideploy/var");
    let holder = fs::read_to_string(var.join("lock/holder")).unwrap();
    let waiter: i32 = holder
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{holder}"));
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &waiter.to_string()])
            .status()
            .unwrap()
            .success())
    };
    signal("-STOP");
    let agent = fs::read_dir(var.join("agent"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "sh"))
        .unwrap();
    let confirm = Command::new("sh")
        .arg(&agent)
        .arg("confirm")
        .arg(&env.root)
        .args(["5", "commit"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while !var.join("confirm-5").exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal("-KILL");
    let start = Instant::now();
    let out = confirm.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("waiter of generation 5 stopped without answering"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_connection_cut_during_activation_does_not_stop_it_half_way() {
    use pideploy_deploy::{self as deploy, AgentCall};
    use pideploy_store::{LocalStore, StorePath};
    use pideploy_transport::LocalTransport;

    let (env, _a) = setup();
    let before = state(&env.root);
    let b = env.config(
        "b",
        "\n[[files]]\npath = \"/etc/motd\"\ncontent = \"b\\n\"\n",
    );
    let b_top = env.toplevel(&b);
    let store = LocalStore::open(&env.store).unwrap();
    let top = StorePath::parse(&b_top).unwrap();
    let closure = store.closure(std::slice::from_ref(&top)).unwrap();
    let call = AgentCall::plain(env.root.display().to_string());
    let mut t = LocalTransport::new();
    let st = deploy::query(&mut t, &call).unwrap();
    deploy::copy(&mut t, &call, &store, &st, &closure).unwrap();
    let rootarg = st.rootarg.clone().unwrap();

    // The agent's end of the connection dies (as sshd's session would) once the switch holds the
    // lock, i.e. while it activates.
    let cut_switch = |confirm: &str| {
        let argv = call.argv(
            "switch",
            &[
                "switch".into(),
                b_top.clone(),
                "test@cut".into(),
                "1700000000".into(),
                String::new(),
                rootarg.clone(),
                confirm.into(),
            ],
        );
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !env.root.join("pideploy/var/lock").exists() {
            assert!(start.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let start = Instant::now();
        loop {
            let s = state(&env.root);
            if !s.locked && !s.pending {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "{s:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // With magic rollback: the activation finished anyway, and the waiter reverted it.
    assert_eq!(cut_switch("3"), before);
    let log = fs::read_to_string(env.root.join("pideploy/var/waiter.log")).unwrap();
    assert!(
        log.contains("generation 2 reverted: no confirmation within 3 s"),
        "{log}"
    );

    // Without: it completes and stands as generation 3, whole.
    let s = cut_switch("0");
    assert_eq!(s.default, "system-3-link");
    assert_eq!(s.running, b_top);
    assert_eq!(s.entries, ["gen-1", "gen-3"]);
    assert!(s.config_txt.contains("os_prefix=gen-3/"));
    // And a re-run finds nothing to do.
    let out = run(&mut env.switch(&b));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing changed"));
}
