//! Activation runs as root while users own their homes (issue 10, items 1 and 11). Each attack plants
//! links, files or directories where activation writes — as a real unprivileged user where a user
//! could, as root where only a crafted card could — and then runs the generation's own `activate
//! --root ROOT` with Debian's sh (dash + GNU tools) and with busybox (the target's shell and tools).
//! Root-owned victims inside and outside the tree must keep content, owner and mode; activation
//! either succeeds (what a user did in their own directories is moved aside) or fails with one line.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::*;

const ATTACKER: &str = "pdattack";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployTestKeyDeployTestKeyDeployTes test";

/// The built generation, shared by every case: the physical store dir and the two store paths
/// activation reads (its toplevel and the etc it links).
struct System {
    work: tempfile::TempDir,
    store: PathBuf,
    top: String,
    etc: String,
    uid: u32,
    busybox_bin: PathBuf,
}

/// The attacker: an ordinary account on this machine, whose uid the config gives to `pi`.
fn attacker_uid() -> u32 {
    let id = || Command::new("id").args(["-u", ATTACKER]).output().unwrap();
    if !id().status.success() {
        let out = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", ATTACKER])
            .output()
            .expect("useradd (the tests run as root)");
        assert!(
            out.status.success() || id().status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let uid: u32 = String::from_utf8_lossy(&id().stdout)
        .trim()
        .parse()
        .unwrap();
    assert!((1000..=60000).contains(&uid), "{ATTACKER} has uid {uid}");
    uid
}

fn system() -> &'static System {
    static SYSTEM: OnceLock<System> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let uid = attacker_uid();
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let (cache, store) = (w.join("cache"), w.join("store"));
        let cfg = w.join("pi.toml");
        fs::write(
            &cfg,
            format!(
                "board = \"qemu-aarch64\"\nhostname = \"sec\"\n\
                 [[users]]\nname = \"pi\"\nuid = {uid}\nssh_authorized_keys = [\"{KEY}\"]\n\
                 [[files]]\npath = \"/home/pi/.config/app.conf\"\ncontent = \"app\\n\"\nowner = \"pi\"\ngroup = \"pi\"\n\
                 [[files]]\npath = '/etc/back\\slash'\ncontent = \"backslash\\n\"\n\
                 [[files]]\npath = \"/etc/app/app.conf\"\ncontent = \"root app\\n\"\n"
            ),
        )
        .unwrap();
        let lock = w.join("pideploy.lock");
        lock_and_import(&cfg, &lock, &cache, &store);
        let out = run(env_for(&mut pideploy(), &cache, &store)
            .args(["build", "-c"])
            .arg(&cfg)
            .arg("--lock")
            .arg(&lock));
        let top = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let top = top.strip_prefix("/pideploy/store/").unwrap().to_string();
        let store = store.join("store");
        let etc = fs::read_link(store.join(&top).join("etc")).unwrap();
        let etc = etc.file_name().unwrap().to_str().unwrap().to_string();
        // The target's tools: busybox's applets, and nothing else, on PATH.
        let busybox_bin = w.join("busybox-bin");
        fs::create_dir(&busybox_bin).unwrap();
        let busybox = which("busybox");
        run(Command::new(&busybox)
            .arg("--install")
            .arg("-s")
            .arg(&busybox_bin));
        System {
            work,
            store,
            top,
            etc,
            uid,
            busybox_bin,
        }
    })
}

fn which(cmd: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd} is missing: run .ci/install-deps.sh (busybox-static)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[derive(Clone, Copy, Debug)]
enum Shell {
    Dash,
    Busybox,
}

/// A throwaway root holding the generation, plus root-owned victims outside it.
struct Target {
    _dir: tempfile::TempDir,
    root: PathBuf,
    victim_dir: PathBuf,
    victim_file: PathBuf,
}

impl Target {
    fn new() -> Target {
        let s = system();
        let dir = tempfile::tempdir().unwrap();
        // The attacker must reach the home inside, as on a real machine.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("root");
        let store = root.join("pideploy/store");
        fs::create_dir_all(&store).unwrap();
        for p in [&s.top, &s.etc] {
            run(Command::new("cp")
                .arg("-a")
                .arg(s.store.join(p))
                .arg(&store));
        }
        let victim_dir = dir.path().join("victim");
        fs::create_dir(&victim_dir).unwrap();
        fs::write(victim_dir.join("file"), "victim\n").unwrap();
        fs::set_permissions(&victim_dir, fs::Permissions::from_mode(0o755)).unwrap();
        let victim_file = dir.path().join("victim-file");
        fs::write(&victim_file, "root only\n").unwrap();
        fs::set_permissions(&victim_file, fs::Permissions::from_mode(0o600)).unwrap();
        let t = Target {
            _dir: dir,
            root,
            victim_dir,
            victim_file,
        };
        fs::create_dir_all(t.root.join("etc")).unwrap();
        fs::write(t.root.join("etc/victim"), "root file in the tree\n").unwrap();
        fs::set_permissions(t.root.join("etc/victim"), fs::Permissions::from_mode(0o600)).unwrap();
        t
    }

    fn activate(&self, shell: Shell) -> Output {
        let s = system();
        let script = self
            .root
            .join("pideploy/store")
            .join(&s.top)
            .join("activate");
        let mut cmd = match shell {
            Shell::Dash => Command::new("sh"),
            Shell::Busybox => {
                let mut c = Command::new(s.busybox_bin.join("sh"));
                c.env("PATH", &s.busybox_bin);
                c
            }
        };
        cmd.arg(&script).arg("--root").arg(&self.root);
        cmd.output().unwrap()
    }

    fn home(&self) -> PathBuf {
        self.root.join("home/pi")
    }

    /// Runs `script` in the home as the attacker (an ordinary user).
    fn as_attacker(&self, script: &str) {
        run(Command::new("runuser")
            .args(["-u", ATTACKER, "--", "sh", "-euc"])
            .arg(format!("cd {}\n{script}", self.home().display()))
            .env("VFILE", &self.victim_file)
            .env("VDIR", &self.victim_dir)
            .env("TREE", &self.root));
    }

    /// Owner, mode and content of everything a victim holds, and of the tree's root-only parts.
    fn victims(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for p in [
            &self.victim_dir,
            &self.victim_file,
            &self.root.join("etc/victim"),
            &self.root.join("root"),
        ] {
            snapshot(p, &mut m);
        }
        m
    }
}

fn snapshot(p: &Path, m: &mut BTreeMap<String, String>) {
    let Ok(md) = fs::symlink_metadata(p) else {
        m.insert(p.display().to_string(), "missing".into());
        return;
    };
    let mut v = format!("{}:{} {:o}", md.uid(), md.gid(), md.mode());
    if md.is_file() {
        v += &format!(" {:?}", fs::read_to_string(p).unwrap());
    }
    m.insert(p.display().to_string(), v);
    if md.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            snapshot(&e.unwrap().path(), m);
        }
    }
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: activation failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Refused with exactly one line that says `why`.
fn refused(out: &Output, what: &str, why: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: activation succeeded:\n{err}"
    );
    assert_eq!(err.lines().count(), 1, "{what}: one line:\n{err}");
    assert!(
        err.starts_with("activate: ") && err.contains(why),
        "{what}: {err}"
    );
}

/// uid and type of a path, not followed.
fn kind(p: &Path) -> (u32, &'static str) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let t = if md.file_type().is_symlink() {
        "link"
    } else if md.is_dir() {
        "dir"
    } else {
        "file"
    };
    (md.uid(), t)
}

/// A fresh target activated once, as after a first boot.
fn activated(shell: Shell) -> Target {
    let t = Target::new();
    ok(&t.activate(shell), "first activation");
    t
}

/// The user's own attacks: activation succeeds, replaces what was planted with what the config
/// says, and no victim changes.
#[test]
fn a_user_cannot_redirect_activation_through_their_home() {
    let uid = system().uid;
    let cases: &[(&str, &str)] = &[
        (
            "authorized_keys is a link to a root file",
            "rm .ssh/authorized_keys; ln -s \"$VFILE\" .ssh/authorized_keys",
        ),
        (
            "the old temporary name is a link to a root file",
            "ln -s \"$VFILE\" .ssh/authorized_keys.pideploy-tmp",
        ),
        (
            "authorized_keys is a link to a root directory",
            "rm .ssh/authorized_keys; ln -s \"$VDIR\" .ssh/authorized_keys",
        ),
        (
            "authorized_keys is a directory",
            "rm .ssh/authorized_keys; mkdir .ssh/authorized_keys; echo x > .ssh/authorized_keys/x",
        ),
        (
            ".ssh is a link to a root directory",
            "mv .ssh .ssh.mine; ln -s \"$VDIR\" .ssh",
        ),
        (
            ".ssh is a link to root's home in the tree",
            "rm -r .ssh; ln -s \"$TREE/root\" .ssh",
        ),
        (".ssh is a file", "rm -r .ssh; echo x > .ssh"),
        (
            "a configured file's directory is a link to a root directory",
            "rm -r .config; ln -s \"$VDIR\" .config",
        ),
        (
            "a configured file is a link to a root file",
            "rm .config/app.conf; ln -s \"$VFILE\" .config/app.conf",
        ),
        (
            "a configured file is a link to a root directory",
            "rm .config/app.conf; ln -s \"$VDIR\" .config/app.conf",
        ),
        (
            "a configured file's directory is a file",
            "rm -r .config; echo x > .config",
        ),
    ];
    for shell in [Shell::Dash, Shell::Busybox] {
        for (what, plant) in cases {
            let what = format!("{what} ({shell:?})");
            let t = activated(shell);
            let before = t.victims();
            t.as_attacker(plant);
            ok(&t.activate(shell), &what);
            assert_eq!(t.victims(), before, "{what}: a victim changed");
            let h = t.home();
            assert_eq!(kind(&h.join(".ssh")), (uid, "dir"), "{what}");
            assert_eq!(
                kind(&h.join(".ssh/authorized_keys")),
                (uid, "file"),
                "{what}"
            );
            assert_eq!(
                fs::read_to_string(h.join(".ssh/authorized_keys")).unwrap(),
                format!("{KEY}\n"),
                "{what}"
            );
            let md = fs::metadata(h.join(".ssh")).unwrap();
            assert_eq!(md.mode() & 0o7777, 0o700, "{what}");
            assert_eq!(kind(&h.join(".config")), (uid, "dir"), "{what}");
            assert_eq!(kind(&h.join(".config/app.conf")), (uid, "file"), "{what}");
            assert_eq!(
                fs::read_to_string(h.join(".config/app.conf")).unwrap(),
                "app\n",
                "{what}"
            );
        }
    }
}

/// A hard link to a root file in place of authorized_keys (made by root: the kernel may forbid users
/// to link files they do not own): the name is replaced, the root file is not written.
#[test]
fn a_hard_link_in_the_home_is_replaced_not_written() {
    for shell in [Shell::Dash, Shell::Busybox] {
        let t = activated(shell);
        let keys = t.home().join(".ssh/authorized_keys");
        fs::remove_file(&keys).unwrap();
        fs::hard_link(&t.victim_file, &keys).unwrap();
        let before = t.victims();
        ok(&t.activate(shell), "hard link");
        assert_eq!(
            t.victims(),
            before,
            "{shell:?}: the linked root file changed"
        );
        assert_eq!(fs::read_to_string(&keys).unwrap(), format!("{KEY}\n"));
    }
}

/// A file the previous generation installed is removed by name only: a link the user put in its
/// path leads nowhere.
#[test]
fn removing_a_dropped_file_never_follows_a_users_link() {
    let uid = system().uid;
    for shell in [Shell::Dash, Shell::Busybox] {
        let t = activated(shell);
        // As if the previous generation had installed ~/.cache/file.
        let list = t.root.join("pideploy/var/files.list");
        let mut text = fs::read_to_string(&list).unwrap();
        text += &format!(
            "9 /home/pi/.cache/file 0644 {uid} {uid}\n9 /home/pi/.ssh2/file 0644 {uid} {uid}\n"
        );
        fs::write(&list, text).unwrap();
        t.as_attacker("ln -s \"$VDIR\" .cache; mkdir .ssh2; ln -s \"$VDIR/file\" .ssh2/file");
        let before = t.victims();
        ok(&t.activate(shell), "dropped file");
        assert_eq!(t.victims(), before, "{shell:?}: a victim changed");
        assert!(
            fs::symlink_metadata(t.home().join(".ssh2/file")).is_err(),
            "the recorded name itself goes"
        );
    }
}

/// What only root (or a crafted card under --root) can put in place stops activation with one line,
/// and nothing outside the tree is touched.
#[test]
fn a_crafted_tree_cannot_redirect_activation() {
    let cases: &[(&str, &str, &str)] = &[
        ("etc", "/etc is a link", "etc is a symbolic link"),
        ("run", "/run is a link", "run is a symbolic link"),
        (
            "etc/app",
            "a configured file's directory is a link",
            "etc/app is a symbolic link",
        ),
        (
            "home/pi",
            "a home is a link",
            "home/pi is not a directory, but it is the home of pi",
        ),
        (
            "pideploy/var",
            "pideploy/var is a link",
            "pideploy/var is a symbolic link",
        ),
    ];
    for shell in [Shell::Dash, Shell::Busybox] {
        for (path, what, why) in cases {
            let what = format!("{what} ({shell:?})");
            let t = activated(shell);
            let p = t.root.join(path);
            run(Command::new("rm").arg("-rf").arg(&p));
            std::os::unix::fs::symlink(&t.victim_dir, &p).unwrap();
            let before = t.victims();
            refused(&t.activate(shell), &what, why);
            assert_eq!(t.victims(), before, "{what}: a victim changed");
        }
        // A directory where the configuration puts a file, in a directory only root writes.
        let t = activated(shell);
        fs::remove_file(t.root.join("etc/app/app.conf")).unwrap();
        fs::create_dir(t.root.join("etc/app/app.conf")).unwrap();
        refused(
            &t.activate(shell),
            "directory in the way",
            "is a directory, but the configuration puts a file there",
        );
    }
}

/// Activation twice leaves the same tree, and a configured path with a backslash survives
/// re-activation (it was compared through `awk -v`, which reads escapes).
#[test]
fn activation_is_idempotent_and_keeps_a_backslash_path() {
    for shell in [Shell::Dash, Shell::Busybox] {
        let t = activated(shell);
        let file = t.root.join("etc/back\\slash");
        assert_eq!(fs::read_to_string(&file).unwrap(), "backslash\n");
        let listing = |t: &Target| {
            let out = run(Command::new("find")
                .arg(&t.root)
                .args(["-printf", "%P %U %G %m %y %l\n"]));
            let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from)
                .collect();
            v.sort();
            v
        };
        let first = listing(&t);
        ok(&t.activate(shell), "second activation");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "backslash\n",
            "{shell:?}"
        );
        assert_eq!(
            listing(&t),
            first,
            "{shell:?}: the second activation changed the tree"
        );
        assert_eq!(kind(&t.root.join("etc/app/app.conf")), (0, "file"));
        let md = fs::metadata(t.root.join("etc/app/app.conf")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o644);
        // A copy left alone because it was equal is written again once its content or only its
        // mode differs.
        let conf = t.root.join("etc/app/app.conf");
        fs::write(&conf, "changed\n").unwrap();
        ok(&t.activate(shell), "activation over changed content");
        assert_eq!(
            fs::read_to_string(&conf).unwrap(),
            "root app\n",
            "{shell:?}"
        );
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
        ok(&t.activate(shell), "activation over a changed mode");
        let md = fs::metadata(&conf).unwrap();
        assert_eq!(
            md.mode() & 0o7777,
            0o644,
            "{shell:?}: the mode was not restored"
        );
    }
}

/// Under --root a link's target would resolve on this machine, so activation reads every /etc
/// link with one `stat`: a right link is left alone, wrong ones are put right, and a target with a
/// newline, which makes busybox print a forged "right" line for another link, voids the reading
/// instead of vouching for that link.
#[test]
fn under_root_wrong_etc_links_are_put_right_and_right_ones_left() {
    for shell in [Shell::Dash, Shell::Busybox] {
        let t = activated(shell);
        let etc = t.root.join("etc");
        let mut links: Vec<String> = Vec::new();
        for e in fs::read_dir(&etc).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if fs::read_link(etc.join(&name))
                .is_ok_and(|l| l == Path::new("/etc/static").join(&name))
            {
                links.push(name);
            }
        }
        links.sort();
        assert!(links.len() >= 4, "{shell:?}: /etc links: {links:?}");
        let [right, wrong, forger, forged] = [0, 1, 2, 3].map(|i| links[i].clone());
        let ino = |n: &str| fs::symlink_metadata(etc.join(n)).unwrap().ino();
        let right_ino = ino(&right);
        let relink = |n: &str, to: &str| {
            fs::remove_file(etc.join(n)).unwrap();
            std::os::unix::fs::symlink(to, etc.join(n)).unwrap();
        };
        relink(&wrong, "/etc/static/elsewhere");
        relink(&forged, "/nowhere");
        relink(
            &forger,
            &format!("/etc/static/x\n'{forged}' -> '/etc/static/{forged}"),
        );
        ok(&t.activate(shell), "activation over wrong links");
        for n in [&wrong, &forger, &forged] {
            assert_eq!(
                fs::read_link(etc.join(n)).unwrap(),
                Path::new("/etc/static").join(n),
                "{shell:?}: /etc/{n} was not put right"
            );
        }
        assert_eq!(
            ino(&right),
            right_ino,
            "{shell:?}: a right link was replaced"
        );
    }
}

/// The real path: an image of the generation unpacked as it sits on a card, a user's `.ssh`
/// replaced by a link to a root-owned directory and a link at the old temporary name, then
/// `pideploy switch --target local:ROOT` (agent, copy stream, activation as root).
#[test]
fn a_local_deploy_activates_safely_over_a_users_links() {
    let s = system();
    let w = s.work.path();
    let (cache, store) = (w.join("cache"), w.join("store"));
    let (cfg, lock) = (w.join("pi.toml"), w.join("pideploy.lock"));
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.img");
    run(env_for(&mut pideploy(), &cache, &store)
        .args(["image", "-c"])
        .arg(&cfg)
        .arg("--lock")
        .arg(&lock)
        .arg("-o")
        .arg(&img));
    let root = dir.path().join("root");
    unpack_image(&img, dir.path(), &root);
    let victim = dir.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("file"), "victim\n").unwrap();
    let victim_file = dir.path().join("victim-file");
    fs::write(&victim_file, "root only\n").unwrap();
    fs::set_permissions(&victim_file, fs::Permissions::from_mode(0o600)).unwrap();
    // What a user can do in a home they own (made here by root with the user's ids).
    let home = root.join("home/pi");
    fs::create_dir_all(&home).unwrap();
    let chown = |p: &Path| {
        run(Command::new("chown")
            .arg("-h")
            .arg(format!("{}:{}", s.uid, s.uid))
            .arg(p));
    };
    chown(&home);
    std::os::unix::fs::symlink(&victim, home.join(".ssh")).unwrap();
    chown(&home.join(".ssh"));
    fs::create_dir(home.join(".config")).unwrap();
    chown(&home.join(".config"));
    std::os::unix::fs::symlink(&victim_file, home.join(".config/app.conf")).unwrap();
    chown(&home.join(".config/app.conf"));
    let mut before = BTreeMap::new();
    snapshot(&victim, &mut before);
    snapshot(&victim_file, &mut before);

    run(env_for(&mut pideploy(), &cache, &store)
        .args(["switch", "-c"])
        .arg(&cfg)
        .arg("--lock")
        .arg(&lock)
        .arg("--target")
        .arg(format!("local:{}", root.display())));
    let mut after = BTreeMap::new();
    snapshot(&victim, &mut after);
    snapshot(&victim_file, &mut after);
    assert_eq!(after, before, "a victim changed");
    assert_eq!(kind(&home.join(".ssh")), (s.uid, "dir"));
    assert_eq!(
        fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap(),
        format!("{KEY}\n")
    );
    assert_eq!(kind(&home.join(".config/app.conf")), (s.uid, "file"));
    assert_eq!(
        fs::read_to_string(home.join(".config/app.conf")).unwrap(),
        "app\n"
    );
}
