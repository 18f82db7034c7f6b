//! Deploys over a real OpenSSH sshd on 127.0.0.1 into a throwaway root (`--root`): a connection
//! cut in the middle of the copy, after which nothing half-sent is valid and a re-run completes;
//! host keys that are unknown or changed (refused); and sudo that wants a password (refused
//! without `--ask-sudo-password`, a wrong one refused, the right one fed on stdin).
//! The suite that runs over both transports is tests/deploy_suite.rs.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sshd::{sudo_password, Sshd, NOPW_USER, PW_USER};
use common::*;

fn valid(root: &Path) -> usize {
    fs::read_dir(root.join("pideploy/var/db/valid"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[test]
fn switch_over_sshd_survives_a_cut_copy() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (cache, store) = (w.join("cache"), w.join("store"));
    let cfg = w.join("pi.toml");
    fs::write(&cfg, "board = \"qemu-aarch64\"\nhostname = \"sshdpi\"\n").unwrap();
    lock_and_import(&cfg, &w.join("pideploy.lock"), &cache, &store);
    run(env_for(&mut pideploy(), &cache, &store)
        .arg("build")
        .arg("-c")
        .arg(&cfg));

    let sshd = Sshd::start();
    let root = w.join("target");
    fs::create_dir(&root).unwrap();
    let switch = || {
        let mut c = pideploy();
        env_for(&mut c, &cache, &store)
            .args(["switch", "-c"])
            .arg(&cfg)
            .args(["--target", &format!("root@127.0.0.1:{}", sshd.port), "-i"])
            .arg(&sshd.client_key)
            .arg("--known-hosts")
            .arg(&sshd.known_hosts)
            .arg("--root")
            .arg(&root);
        c
    };

    // Cut the connection as soon as the target starts receiving.
    let mut child = switch()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut cut = false;
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        let receiving = fs::read_dir(root.join("pideploy/store"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(".incoming"))
            })
            .unwrap_or(false);
        if receiving && !cut {
            cut = sshd.cut_sessions() > 0;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(cut, "the copy was interrupted");
    assert!(!out.status.success(), "a cut copy fails");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("pideploy: error"))
            .count(),
        1,
        "{err}"
    );
    assert_eq!(valid(&root), 0, "nothing half-sent is valid");
    assert!(
        !root.join("pideploy/var/profiles/system").exists(),
        "no generation"
    );

    // The re-run completes: generation 1, every path registered, no leftovers.
    let out = run(&mut switch());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation 1 is active and the default"),
        "{err}"
    );
    assert!(valid(&root) > 10);
    let leftovers: Vec<_> = fs::read_dir(root.join("pideploy/store"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".incoming"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // And again: nothing sent, nothing changed.
    let err = String::from_utf8_lossy(&run(&mut switch()).stderr).into_owned();
    assert!(
        err.contains("copied 0 store paths") && err.contains("nothing changed"),
        "{err}"
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `cmd` with `stdin` fed to it: (success, stdout, stderr).
fn feed(cmd: &mut Command, stdin: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The single `pideploy: error` line of a failed run's stderr.
fn one_error(ok: bool, err: &str) -> String {
    assert!(!ok, "expected a failure: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pideploy: error"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_string()
}

/// Every entry under `dir`, relative (to show that a refused deploy left nothing).
fn tree(dir: &Path) -> Vec<String> {
    let out = run(Command::new("find").arg(dir).args(["-mindepth", "1"]));
    let mut v: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn host_keys_and_sudo_passwords_over_sshd() {
    const SECRET: &str = "sshd-secret-91c3e0";
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (cache, store) = (w.join("cache"), w.join("store"));
    let cfg = w.join("pi.toml");
    fs::write(
        &cfg,
        "board = \"qemu-aarch64\"\nhostname = \"sudopi\"\n\n[[secrets]]\nsource = \"token.txt\"\n\
         target = \"/etc/pideploy-secrets/token\"\nmode = \"0400\"\n",
    )
    .unwrap();
    fs::write(w.join("token.txt"), SECRET).unwrap();
    lock_and_import(&cfg, &w.join("pideploy.lock"), &cache, &store);
    let top = text(
        &run(env_for(&mut pideploy(), &cache, &store)
            .args(["build", "-c"])
            .arg(&cfg))
        .stdout,
    )
    .trim()
    .to_string();

    let sshd = Sshd::start();
    let root = w.join("target");
    fs::create_dir(&root).unwrap();
    let pd = |sub: &[&str], user: &str, known_hosts: &Path| {
        let mut c = pideploy();
        env_for(&mut c, &cache, &store)
            .env_remove("SSH_AUTH_SOCK")
            .args(sub)
            .arg(format!("--target={user}@127.0.0.1:{}", sshd.port))
            .arg("-i")
            .arg(&sshd.client_key)
            .arg("--known-hosts")
            .arg(known_hosts)
            .arg("--root")
            .arg(&root);
        c
    };
    let switch = ["switch", "-c", cfg.to_str().unwrap()];

    // The host key, as OpenSSH's own tool prints its fingerprint.
    let host_pub = sshd.dir.path().join("host_key.pub");
    let fp = text(&run(Command::new("ssh-keygen").arg("-lf").arg(&host_pub)).stdout);
    let fp = fp.split_whitespace().nth(1).unwrap().to_string();
    assert!(fp.starts_with("SHA256:"), "{fp}");

    // An unknown host key: refused, with its fingerprint and how to accept it; nothing done.
    let empty = w.join("known_hosts.empty");
    fs::write(&empty, "").unwrap();
    let (ok, _, err) = feed(&mut pd(&switch, NOPW_USER, &empty), "");
    let line = one_error(ok, &err);
    assert!(
        line.contains("is not known") && line.contains(&fp),
        "{line}"
    );
    assert!(
        line.contains("--accept-new") && line.contains("ssh-keyscan"),
        "{line}"
    );
    assert_eq!(tree(&root), Vec::<String>::new());
    assert_eq!(
        fs::read_to_string(&empty).unwrap(),
        "",
        "nothing was trusted"
    );

    // A changed host key: refused even with --accept-new, naming both keys; nothing done.
    let other = w.join("other_key");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other));
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_fp = text(
        &run(Command::new("ssh-keygen")
            .arg("-lf")
            .arg(other.with_extension("pub")))
        .stdout,
    );
    let other_fp = other_fp.split_whitespace().nth(1).unwrap().to_string();
    let changed = w.join("known_hosts.changed");
    let changed_text = format!("[127.0.0.1]:{} {other_pub}", sshd.port);
    fs::write(&changed, &changed_text).unwrap();
    let mut c = pd(&switch, NOPW_USER, &changed);
    let (ok, _, err) = feed(c.arg("--accept-new"), "");
    let line = one_error(ok, &err);
    assert!(line.contains("HOST KEY CHANGED"), "{line}");
    assert!(line.contains(&fp) && line.contains(&other_fp), "{line}");
    assert_eq!(tree(&root), Vec::<String>::new());
    assert_eq!(fs::read_to_string(&changed).unwrap(), changed_text);

    // --accept-new trusts an unknown key once: it is appended, and the command runs. A user with
    // passwordless sudo is not asked (stdin is left alone) even with --ask-sudo-password.
    let learned = w.join("known_hosts.learned");
    let mut c = pd(&["generations", "--json"], NOPW_USER, &learned);
    let (ok, out, err) = feed(
        c.args(["--accept-new", "--ask-sudo-password"]),
        "not-a-password\n",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "[]");
    let host_key = fs::read_to_string(&host_pub).unwrap();
    let key_field = host_key.split_whitespace().nth(1).unwrap();
    let learned_text = fs::read_to_string(&learned).unwrap();
    assert!(
        learned_text.contains(&format!("[127.0.0.1]:{}", sshd.port))
            && learned_text.contains(key_field),
        "{learned_text}"
    );

    // sudo wants a password and none was offered: one line saying how to give it; nothing done
    // beyond what the earlier `generations` left.
    let before = tree(&root);
    let kh = &sshd.known_hosts;
    let (ok, _, err) = feed(&mut pd(&switch, PW_USER, kh), "");
    let line = one_error(ok, &err);
    assert!(line.contains("needs a password"), "{line}");
    assert!(line.contains("--ask-sudo-password"), "{line}");
    assert_eq!(tree(&root), before);

    // A wrong password (read from stdin, which is not a terminal): rejected before anything is
    // done, and never repeated back.
    let wrong = "wrong-password-5d1e";
    let mut c = pd(&switch, PW_USER, kh);
    let (ok, out, err) = feed(c.arg("--ask-sudo-password"), &format!("{wrong}\n"));
    let line = one_error(ok, &err);
    assert!(line.contains("rejected the password"), "{line}");
    assert!(!out.contains(wrong) && !err.contains(wrong), "{err}");
    assert_eq!(tree(&root), before);

    // The right one: the deploy runs through `sudo -S` on every command (copy, secrets,
    // activation, the confirmation over a second connection) and the password reaches no
    // command's input: the secret holds exactly its own bytes, and no file has the password.
    let password = sudo_password();
    let mut c = pd(&switch, PW_USER, kh);
    let (ok, out, err) = feed(c.arg("--ask-sudo-password"), &format!("{password}\n"));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), top);
    assert!(
        err.contains("generation 1 is active and the default"),
        "{err}"
    );
    assert!(!out.contains(password) && !err.contains(password));
    assert_eq!(
        fs::read_link(root.join("pideploy/var/profiles/system"))
            .unwrap()
            .to_str(),
        Some("system-1-link")
    );
    assert_eq!(
        fs::read_link(root.join("run/current-system"))
            .unwrap()
            .to_str(),
        Some(top.as_str())
    );
    assert!(!root.join("pideploy/var/lock").exists());
    let secret = root.join("etc/pideploy-secrets/token");
    assert_eq!(fs::read_to_string(&secret).unwrap(), SECRET);
    {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(&secret).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o400, 0, 0));
    }
    for dir in [&root, &store, &sshd.dir.path().to_path_buf()] {
        let hits = Command::new("grep")
            .args(["-rlF", password])
            .arg(dir)
            .output()
            .unwrap();
        assert!(hits.stdout.is_empty(), "password in {}", text(&hits.stdout));
    }

    // And with the password again: the same closure, nothing sent, nothing changed.
    let mut c = pd(&switch, PW_USER, kh);
    let (ok, _, err) = feed(c.arg("--ask-sudo-password"), &format!("{password}\n"));
    assert!(ok, "{err}");
    assert!(
        err.contains("copied 0 store paths") && err.contains("nothing changed"),
        "{err}"
    );
    assert!(!root.join("pideploy/var/generations/2.json").exists());
}
