//! The target agent's security rules (issue 10, items 2, 4, 7, 8, 12), over `--target local:DIR`
//! (the agent and activation that run over SSH, applied to a directory root): one deploy-lock
//! holder even when many agents find a stale lock at once; secrets never written through a
//! planted symlink nor into a directory a user could change; secrets follow their generation
//! (revert, rollback, dropped from the config); `generations_to_keep` after every switch; gc
//! never removes a generation on tryboot trial. Each case checks the files it leaves.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// A root-owned file the attacks aim at; it must stay exactly as it is.
struct Victim {
    path: PathBuf,
    content: &'static str,
}

impl Victim {
    fn plant(path: PathBuf) -> Victim {
        let content = "root-only victim, never to be overwritten\n";
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        Victim { path, content }
    }

    fn untouched(&self) {
        let m = fs::symlink_metadata(&self.path).unwrap();
        assert!(m.file_type().is_file(), "{}", self.path.display());
        assert_eq!(fs::read_to_string(&self.path).unwrap(), self.content);
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o644, 0, 0),
            "{}",
            self.path.display()
        );
    }
}

/// A work directory with a cache, a store and an empty target root.
struct Env {
    _work: tempfile::TempDir,
    w: PathBuf,
    cache: PathBuf,
    store: PathBuf,
    root: PathBuf,
}

impl Env {
    fn new() -> Env {
        let work = tempfile::tempdir().unwrap();
        let w = work.path().to_path_buf();
        let root = w.join("target");
        fs::create_dir(&root).unwrap();
        Env {
            cache: w.join("cache"),
            store: w.join("store"),
            root,
            w,
            _work: work,
        }
    }

    fn target(&self) -> String {
        format!("local:{}", self.root.display())
    }

    fn pd(&self) -> Command {
        let mut c = pideploy();
        env_for(&mut c, &self.cache, &self.store);
        c
    }

    /// A config directory `name` holding pi.toml (host `secpi`, user pi uid 1000, `extra`), the
    /// files in `files`, its lock, packages imported.
    fn config(&self, name: &str, extra: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.w.join(name);
        fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("pi.toml");
        fs::write(
            &cfg,
            format!(
                "board = \"qemu-aarch64\"\nhostname = \"secpi\"\n{extra}\n[[users]]\nname = \"pi\"\nuid = 1000\n\
                 ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployTestKeyDeployTestKeyDeployTes test\"]\n"
            ),
        )
        .unwrap();
        for (f, content) in files {
            fs::write(dir.join(f), content).unwrap();
        }
        lock_and_import(&cfg, &dir.join("pideploy.lock"), &self.cache, &self.store);
        cfg
    }

    fn switch(&self, cfg: &Path) -> Command {
        let mut c = self.pd();
        c.args(["switch", "-c"])
            .arg(cfg)
            .arg("--target")
            .arg(self.target());
        c
    }

    fn toplevel(&self, cfg: &Path) -> String {
        let out = run(self.pd().arg("build").arg("-c").arg(cfg));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn default_link(&self) -> String {
        fs::read_link(self.p("pideploy/var/profiles/system"))
            .unwrap()
            .display()
            .to_string()
    }

    /// A boot partition as a card has it (config.txt naming an entry whose cmdline.txt has
    /// `root=`), so that switches write boot entries.
    fn boot_partition(&self) {
        let b = self.p("boot/firmware/gen-0");
        fs::create_dir_all(&b).unwrap();
        fs::write(
            b.join("cmdline.txt"),
            "console=ttyAMA0 root=PARTUUID=0badcafe-02\n",
        )
        .unwrap();
        fs::write(
            self.p("boot/firmware/config.txt"),
            "[all]\nos_prefix=gen-0/\n",
        )
        .unwrap();
    }
}

fn secret(target: &str, source: &str, owner: &str) -> String {
    format!(
        "\n[[secrets]]\nsource = \"{source}\"\ntarget = \"{target}\"\nmode = \"0400\"\nowner = \"{owner}\"\ngroup = \"{owner}\"\n"
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn one_error_line(err: &str) -> String {
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pideploy: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    errors[0].to_string()
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Item 4: twenty agents at once find a stale lock (its holder's process is gone). Each runs a
/// rollback whose activation logs its entry and exit; the log must never show two inside at once,
/// and the lock must end released. Repeated with a holder from an earlier boot.
#[test]
fn a_stale_lock_has_exactly_one_taker() {
    let env = Env::new();
    let log = env.w.join("critical.log");
    // A generation whose activation is the critical section (the agent runs it under the lock).
    let top = "/pideploy/store/0123456789abcdfghijklmnpqrsvwxyz-pideploy-system-locktest";
    let dir = env.root.join(&top[1..]);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("activate"),
        format!(
            "echo \"enter $$\" >> {log}\nsleep 0.2\necho \"exit $$\" >> {log}\n",
            log = log.display()
        ),
    )
    .unwrap();
    let prof = env.p("pideploy/var/profiles");
    fs::create_dir_all(&prof).unwrap();
    symlink(top, prof.join("system-1-link")).unwrap();
    symlink("system-1-link", prof.join("system")).unwrap();

    let dead_pid = {
        let mut c = Command::new("true").spawn().unwrap();
        let id = c.id();
        c.wait().unwrap();
        id
    };
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let stale = [
        format!("ghost@gone\npid {dead_pid} boot {}\n", boot.trim()),
        format!(
            "ghost@lastboot\npid {} boot 00000000-earlier-boot\n",
            std::process::id()
        ),
    ];
    let mut entered = 0;
    for (round, holder) in stale.iter().cycle().take(6).enumerate() {
        let lock = env.p("pideploy/var/lock");
        fs::create_dir_all(&lock).unwrap();
        fs::write(lock.join("holder"), holder).unwrap();
        fs::write(&log, "").unwrap();
        let children: Vec<_> = (0..20)
            .map(|_| {
                env.pd()
                    .args(["rollback", "--to", "1", "--target", &env.target()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut ok = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            if out.status.success() {
                ok += 1;
            } else {
                let line = one_error_line(&text(&out.stderr));
                assert!(
                    line.contains("is being deployed by"),
                    "round {round}: {line}"
                );
            }
        }
        let lines: Vec<String> = fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert!(ok >= 1, "round {round}: nobody took the stale lock");
        assert_eq!(lines.len(), 2 * ok, "round {round}: {lines:?}");
        for pair in lines.chunks(2) {
            let who = pair[0].strip_prefix("enter ").expect("an entry first");
            assert_eq!(
                pair[1],
                format!("exit {who}"),
                "round {round}: two holders at once: {lines:?}"
            );
        }
        entered += ok;
        assert!(!lock.exists(), "round {round}: the lock is released");
        let leftovers: Vec<String> = fs::read_dir(env.p("pideploy/var"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".lock"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    assert!(entered >= 6);
}

/// Item 2: symlinks planted for every temporary name the old writer could use and at the secret's
/// own path leave the victim alone; a secret whose directory a user owns is refused with one line
/// and nothing changes.
#[test]
fn secrets_never_follow_a_planted_symlink() {
    let env = Env::new();
    let victim = Victim::plant(env.p("etc/victim"));
    let dir = env.p("etc/pideploy-secrets");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    // The old writer used TARGET.pideploy-tmp.<pid of its shell>: cover the next pids.
    let next = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .map(|s| s.trim().parse::<u32>().unwrap())
        .unwrap_or(1);
    let planted: Vec<u32> = (next..next + 4000).collect();
    for pid in &planted {
        symlink("../victim", dir.join(format!("token.pideploy-tmp.{pid}"))).unwrap();
    }
    symlink("../victim", dir.join("token")).unwrap();

    let cfg = env.config(
        "a",
        &secret("/etc/pideploy-secrets/token", "token.txt", "pi"),
        &[("token.txt", "secret-v1")],
    );
    let out = run(&mut env.switch(&cfg));
    assert!(
        text(&out.stderr).contains("wrote 1 secrets"),
        "{}",
        text(&out.stderr)
    );
    victim.untouched();
    let tok = dir.join("token");
    let m = fs::symlink_metadata(&tok).unwrap();
    assert!(
        m.file_type().is_file(),
        "the planted link was replaced, not followed"
    );
    assert_eq!(fs::read_to_string(&tok).unwrap(), "secret-v1");
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o400, 1000, 1000));
    // The planted links are still just links to the victim; no temporary file is left.
    for pid in &planted {
        let l = dir.join(format!("token.pideploy-tmp.{pid}"));
        assert_eq!(fs::read_link(&l).unwrap(), Path::new("../victim"));
    }
    assert!(names(&dir)
        .iter()
        .all(|n| !n.starts_with(".pideploy-secret")));
    // The stored set is root-only.
    let sets = env.p("var/lib/pideploy/secrets");
    let m = fs::metadata(&sets).unwrap();
    assert_eq!((m.mode() & 0o777, m.uid()), (0o700, 0));

    // A directory the user pi owns (their home): any link they plant there would be followed by a
    // careless writer. Refused, naming the directory; nothing changes.
    let home = env.p("home/pi/app");
    fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(env.p("home/pi"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(&home, Some(1000), Some(1000)).unwrap();
    symlink("/etc/victim", home.join("token")).unwrap();
    symlink(env.p("etc/victim"), home.join("token2")).unwrap();
    let before = env.default_link();
    let b = env.config(
        "b",
        &(secret("/home/pi/app/token", "token.txt", "pi")
            + &secret("/home/pi/app/token2", "token2.txt", "pi")),
        &[("token.txt", "secret-home"), ("token2.txt", "secret-home2")],
    );
    let out = env.switch(&b).output().unwrap();
    assert!(!out.status.success());
    let line = one_error_line(&text(&out.stderr));
    assert!(
        line.contains("secret /home/pi/app/token")
            && line.contains("/home/pi (owner uid 1000")
            && line.contains("root-owned directory only root can write"),
        "{line}"
    );
    victim.untouched();
    assert_eq!(env.default_link(), before, "no generation was made");
    assert_eq!(
        fs::read_to_string(&tok).unwrap(),
        "secret-v1",
        "secrets as before"
    );
    assert!(fs::symlink_metadata(home.join("token"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!env.p("pideploy/var/lock").exists());

    // A symlinked directory on the way is refused the same way.
    fs::remove_dir_all(env.p("home/pi")).unwrap();
    fs::create_dir_all(env.p("srv")).unwrap();
    symlink("../etc", env.p("srv/conf")).unwrap();
    let c = env.config(
        "c",
        &secret("/srv/conf/token", "token.txt", "pi"),
        &[("token.txt", "secret-srv")],
    );
    let out = env.switch(&c).output().unwrap();
    assert!(!out.status.success());
    let line = one_error_line(&text(&out.stderr));
    assert!(line.contains("/srv/conf (not a directory but l)"), "{line}");
    victim.untouched();
    assert!(!env.p("etc/token").exists());
}

/// Item 8: a secret set belongs to its generation. A reverted deploy (failed health checks, failed
/// activation) leaves the previous secret in place; a rollback brings back that generation's
/// secret; a secret dropped from the config is removed.
#[test]
fn secrets_follow_their_generation() {
    let env = Env::new();
    let target = "/etc/pideploy-secrets/token";
    let tok = env.p("etc/pideploy-secrets/token");
    let v1 = env.config("v1", &secret(target, "t", "pi"), &[("t", "secret-v1")]);
    run(&mut env.switch(&v1));
    assert_eq!(fs::read_to_string(&tok).unwrap(), "secret-v1");

    // The same system with only the secret's content changed: the target already runs it, but not
    // with this set (the query's digest differs), so the switch still puts the new secret in place;
    // unchanged once more, the query alone settles it and nothing is written.
    let v1b = env.config("v1b", &secret(target, "t", "pi"), &[("t", "secret-v1b")]);
    let err = text(&run(&mut env.switch(&v1b)).stderr);
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(fs::read_to_string(&tok).unwrap(), "secret-v1b");
    let before = fs::metadata(&tok).unwrap().modified().unwrap();
    let err = text(&run(&mut env.switch(&v1b)).stderr);
    assert!(
        err.contains("nothing changed") && !err.contains("wrote"),
        "{err}"
    );
    assert_eq!(fs::metadata(&tok).unwrap().modified().unwrap(), before);
    run(&mut env.switch(&v1));
    assert_eq!(fs::read_to_string(&tok).unwrap(), "secret-v1");

    // v2 fails its health checks: reverted by the target, v1's secret is back.
    let v2 = env.config(
        "v2",
        &(secret(target, "t", "pi") + "\n[health]\ntcp_ports = [1]\ntimeout_secs = 1\n"),
        &[("t", "secret-v2")],
    );
    let out = env.switch(&v2).output().unwrap();
    assert!(!out.status.success());
    assert!(one_error_line(&text(&out.stderr)).contains("reverted 2"));
    assert_eq!(fs::read_to_string(&tok).unwrap(), "secret-v1");
    let m = fs::metadata(&tok).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o400, 1000));

    // v3 adds a second secret and fails to activate (/opt is a file): both as before.
    fs::write(env.p("opt"), "in the way\n").unwrap();
    let v3 = env.config(
        "v3",
        &(secret(target, "t", "pi")
            + &secret("/etc/pideploy-secrets/extra", "x", "root")
            + "\n[[files]]\npath = \"/opt/app/app.conf\"\ncontent = \"x\\n\"\n"),
        &[("t", "secret-v3"), ("x", "extra-v3")],
    );
    let out = env.switch(&v3).output().unwrap();
    assert!(!out.status.success());
    assert!(one_error_line(&text(&out.stderr)).contains("activation of generation 3 failed"));
    assert_eq!(fs::read_to_string(&tok).unwrap(), "secret-v1");
    assert!(!env.p("etc/pideploy-secrets/extra").exists());
    fs::remove_file(env.p("opt")).unwrap();

    // v3 again, now it activates: generation 4 with both secrets.
    run(&mut env.switch(&v3));
    assert_eq!(env.default_link(), "system-4-link");
    assert_eq!(fs::read_to_string(&tok).unwrap(), "secret-v3");
    assert_eq!(
        fs::read_to_string(env.p("etc/pideploy-secrets/extra")).unwrap(),
        "extra-v3"
    );

    // Rollback to 1: its secret set comes back, the extra one goes.
    run(env
        .pd()
        .args(["rollback", "--to", "1", "--target", &env.target()]));
    assert_eq!(fs::read_to_string(&tok).unwrap(), "secret-v1");
    assert!(!env.p("etc/pideploy-secrets/extra").exists());

    // The secret dropped from the config: removed.
    let none = env.config("none", "", &[]);
    run(&mut env.switch(&none));
    assert!(
        fs::symlink_metadata(&tok).is_err(),
        "a secret no longer configured is removed"
    );
    let sets = names(&env.p("var/lib/pideploy/secrets"));
    assert!(sets.contains("5"), "{sets:?}");
    assert_eq!(
        fs::read_to_string(env.p("var/lib/pideploy/secrets/installed")).unwrap(),
        ""
    );
}

/// Items 7 and 12: with `generations_to_keep = 2` every switch leaves the newest two generations
/// (their links, records, boot entries and secret sets) and removes the rest with the store paths
/// only they reached; a generation on tryboot trial survives `gc`.
#[test]
fn generations_to_keep_after_each_switch_and_gc_spares_a_tryboot_trial() {
    use pideploy_deploy::{self as deploy, AgentCall};
    use pideploy_store::{LocalStore, StorePath};
    use pideploy_transport::LocalTransport;

    let env = Env::new();
    env.boot_partition();
    let cfgs: Vec<PathBuf> = (1..=4)
        .map(|i| {
            env.config(
                &format!("g{i}"),
                &format!(
                    "generations_to_keep = 2\n{}\n[[files]]\npath = \"/etc/gen\"\ncontent = \"{i}\\n\"\n",
                    secret("/etc/pideploy-secrets/token", "t", "root")
                ),
                &[("t", &format!("secret-{i}"))],
            )
        })
        .collect();
    let tops: Vec<String> = cfgs.iter().map(|c| env.toplevel(c)).collect();
    let mut removed_lines = Vec::new();
    for c in &cfgs {
        let out = run(&mut env.switch(c));
        removed_lines.extend(
            text(&out.stderr)
                .lines()
                .filter(|l| l.contains("generations_to_keep"))
                .map(String::from)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(removed_lines.len(), 2, "{removed_lines:?}");
    assert!(
        removed_lines[0].contains("removed generation(s) 1 "),
        "{removed_lines:?}"
    );
    assert!(
        removed_lines[1].contains("removed generation(s) 2 "),
        "{removed_lines:?}"
    );
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        names(&env.p("pideploy/var/profiles")),
        set(&["system", "system-3-link", "system-4-link"])
    );
    assert_eq!(
        names(&env.p("pideploy/var/generations")),
        set(&["3.json", "4.json"])
    );
    assert_eq!(
        names(&env.p("boot/firmware"))
            .into_iter()
            .filter(|n| n.starts_with("gen-") && n != "gen-0")
            .collect::<BTreeSet<_>>(),
        set(&["gen-3", "gen-4"])
    );
    assert_eq!(
        names(&env.p("var/lib/pideploy/secrets")),
        set(&["3", "4", "current", "installed"])
    );
    let store = names(&env.p("pideploy/store"));
    for (i, top) in tops.iter().enumerate() {
        let b = top.trim_start_matches("/pideploy/store/").to_string();
        assert_eq!(store.contains(&b), i >= 2, "generation {}: {b}", i + 1);
        assert_eq!(
            env.p("pideploy/var/db/valid").join(&b).exists(),
            i >= 2,
            "registration of generation {}",
            i + 1
        );
    }
    assert_eq!(fs::read_to_string(env.p("etc/gen")).unwrap(), "4\n");

    // Item 12: generation 5 on tryboot trial (no waiter: the deployer has not rebooted yet),
    // recorded as made long ago; gc --older-than 1s removes 3 and leaves 4 (default, running)
    // and 5 (pending).
    let c5 = env.config(
        "g5",
        "[[files]]\npath = \"/etc/gen\"\ncontent = \"5\\n\"\n",
        &[],
    );
    let top5 = env.toplevel(&c5);
    let call = AgentCall::plain(env.root.display().to_string());
    {
        let store = LocalStore::open(&env.store).unwrap();
        let p = StorePath::parse(&top5).unwrap();
        let closure = store.closure(std::slice::from_ref(&p)).unwrap();
        let mut t = LocalTransport::new();
        let st = deploy::query(&mut t, &call).unwrap();
        deploy::copy(&mut t, &call, &store, &st, &closure).unwrap();
    }
    let argv = call.argv(
        "switch",
        &[
            "tryboot".into(),
            top5.clone(),
            "test@trial".into(),
            "1700000000".into(),
            String::new(),
            "PARTUUID=0badcafe-02".into(),
            "0".into(),
        ],
    );
    let out = run(Command::new(&argv[0]).args(&argv[1..]));
    assert_eq!(text(&out.stdout).trim(), "generation 5");
    assert!(env.p("pideploy/var/pending").exists());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let out = run(env
        .pd()
        .args(["gc", "--older-than", "1s", "--target", &env.target()]));
    let stdout = text(&out.stdout);
    let gone: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("removed generation "))
        .collect();
    assert_eq!(gone, ["3"]);
    assert_eq!(
        names(&env.p("pideploy/var/profiles")),
        set(&["system", "system-4-link", "system-5-link"])
    );
    assert!(env.p("boot/firmware/gen-5").is_dir());
    assert!(fs::read_to_string(env.p("boot/firmware/tryboot.txt"))
        .unwrap()
        .contains("os_prefix=gen-5/"));
    assert!(env.p(&top5[1..]).exists(), "the trial's closure stays");
}
