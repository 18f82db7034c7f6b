//! Deploys into a throwaway root on this machine (`--target local:DIR`) through the same agent and
//! copy stream used over SSH: the root starts as the contents of a real image (its ext4 and FAT
//! partitions unpacked with debugfs and mtools), then switch, no-op switch, generations, rollback and
//! the deploy lock are checked on the files they leave.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn config(hostname: &str, top: &str, extra: &str) -> String {
    format!(
        "board = \"qemu-aarch64\"\nhostname = \"{hostname}\"\n{top}\n[[users]]\nname = \"pi\"\nuid = 1000\n\
         ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployTestKeyDeployTestKeyDeployTes test\"]\n{extra}"
    )
}

fn pd(cache: &Path, store: &Path) -> Command {
    let mut c = pideploy();
    env_for(&mut c, cache, store);
    c
}

fn stdout_of(cmd: &mut Command) -> (String, String) {
    let out = run(cmd);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn switch_noop_generations_rollback_and_lock_on_a_local_root() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let cache = w.join("cache");
    let store = w.join("store");
    let (a_cfg, b_cfg) = (w.join("a/pi.toml"), w.join("b/pi.toml"));
    fs::create_dir_all(a_cfg.parent().unwrap()).unwrap();
    fs::create_dir_all(b_cfg.parent().unwrap()).unwrap();
    fs::write(&a_cfg, config("deploypi", "", "")).unwrap();
    fs::write(
        &b_cfg,
        config(
            "deploypi",
            "packages = [\"tree\"]\n",
            "\n[[files]]\npath = \"/etc/motd\"\ncontent = \"generation two\\n\"\n\n[[secrets]]\nsource = \"token.age\"\ntarget = \"/etc/pideploy-secrets/token\"\nowner = \"pi\"\ngroup = \"pi\"\n",
        ),
    )
    .unwrap();
    // Only the deploy may carry this; it must never land in a store. It is kept encrypted with
    // age (by the `age` tool, to an X25519 identity made by `age-keygen`) and decrypted in memory.
    const SECRET: &str = "s3cr3t-token-4f1d9c";
    let identity = w.join("age-identity.txt");
    run(Command::new("age-keygen").arg("-o").arg(&identity));
    let recipient = fs::read_to_string(&identity)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    let mut age = Command::new("age")
        .args(["--armor", "-r", &recipient, "-o"])
        .arg(w.join("b/token.age"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut age.stdin.take().unwrap(), SECRET.as_bytes()).unwrap();
    assert!(age.wait().unwrap().success());
    std::env::set_var("PIDEPLOY_AGE_IDENTITY", &identity);
    let (a_lock, b_lock) = (w.join("a/pideploy.lock"), w.join("b/pideploy.lock"));
    lock_and_import(&a_cfg, &a_lock, &cache, &store);
    lock_and_import(&b_cfg, &b_lock, &cache, &store);

    // Generation 1: an image of A, unpacked into a directory the way it sits on the card.
    let img = w.join("a.img");
    run(pd(&cache, &store)
        .arg("image")
        .arg("-c")
        .arg(&a_cfg)
        .arg("-o")
        .arg(&img));
    let root = w.join("target");
    unpack_image(&img, w, &root);
    let target = format!("local:{}", root.display());
    let gen1_cmdline = fs::read_to_string(root.join("boot/firmware/gen-1/cmdline.txt")).unwrap();

    // switch to B: generation 2, activated, default, with a boot entry of its own.
    let (out, err) = stdout_of(
        pd(&cache, &store)
            .args(["switch", "-c"])
            .arg(&b_cfg)
            .args(["--target", &target, "-m", "add tree"]),
    );
    let b_top = out.trim().to_string();
    assert!(
        b_top.starts_with("/pideploy/store/") && b_top.ends_with("-pideploy-system-deploypi"),
        "{out}"
    );
    assert!(
        err.contains("generation 2 is active and the default"),
        "{err}"
    );
    let copied: usize = err
        .split("copied ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        copied >= 2,
        "at least the new toplevel, etc and tree are sent: {err}"
    );
    assert_eq!(
        fs::read_link(root.join("pideploy/var/profiles/system"))
            .unwrap()
            .to_str(),
        Some("system-2-link")
    );
    assert_eq!(
        fs::read_link(root.join("pideploy/var/profiles/system-2-link"))
            .unwrap()
            .to_str(),
        Some(b_top.as_str())
    );
    assert_eq!(
        fs::read_link(root.join("run/current-system"))
            .unwrap()
            .to_str(),
        Some(b_top.as_str())
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/motd")).unwrap(),
        "generation two\n"
    );
    let sw = fs::read_link(root.join(&b_top[1..]).join("sw")).unwrap();
    let tree = root
        .join(sw.strip_prefix("/").unwrap())
        .join("usr/bin/tree");
    assert!(
        tree.symlink_metadata().is_ok(),
        "the new package is in the system: {}",
        tree.display()
    );
    let rec: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root.join("pideploy/var/generations/2.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["generation"], 2);
    assert_eq!(rec["message"], "add tree");
    // Every sent path is registered and matches what was sent.
    for e in fs::read_dir(root.join("pideploy/store")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with(".incoming"), "no leftovers: {name}");
        assert!(
            root.join("pideploy/var/db/valid").join(&name).exists(),
            "{name} registered"
        );
    }
    // The secret: written with its owner and mode, and in no store.
    let secret = root.join("etc/pideploy-secrets/token");
    assert_eq!(fs::read_to_string(&secret).unwrap(), SECRET);
    {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(&secret).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o400, 1000, 1000));
    }
    // On this side nothing holds the plaintext: only the target's secret and its kept set do.
    let hits = Command::new("grep")
        .args(["-rl", SECRET])
        .arg(w)
        .output()
        .unwrap();
    for hit in String::from_utf8_lossy(&hits.stdout).lines() {
        assert!(
            Path::new(hit).starts_with(root.join("etc/pideploy-secrets"))
                || Path::new(hit).starts_with(root.join("var/lib/pideploy/secrets")),
            "plaintext secret in {hit}"
        );
    }
    for store_dir in [root.join("pideploy"), store.clone()] {
        let hits = Command::new("grep")
            .args(["-rl", SECRET])
            .arg(&store_dir)
            .output()
            .unwrap();
        assert!(
            hits.stdout.is_empty(),
            "secret found in {}: {}",
            store_dir.display(),
            String::from_utf8_lossy(&hits.stdout)
        );
    }
    let cfg_txt = fs::read_to_string(root.join("boot/firmware/config.txt")).unwrap();
    assert!(
        cfg_txt.contains("os_prefix=gen-2/")
            && cfg_txt.contains("initramfs initrd.img followkernel"),
        "{cfg_txt}"
    );
    let gen2 = fs::read_to_string(root.join("boot/firmware/gen-2/cmdline.txt")).unwrap();
    let rootarg = |s: &str| {
        s.split_whitespace()
            .find(|w| w.starts_with("root="))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        rootarg(&gen2),
        rootarg(&gen1_cmdline),
        "same root partition"
    );
    assert!(gen2.contains(&format!("init={b_top}/init")), "{gen2}");
    assert!(
        root.join("boot/firmware/gen-2/vmlinuz").exists()
            && root.join("boot/firmware/gen-2/initrd.img").exists()
    );

    // The same closure again: nothing sent, no generation added.
    let (_, err) = stdout_of(
        pd(&cache, &store)
            .args(["switch", "-c"])
            .arg(&b_cfg)
            .args(["--target", &target]),
    );
    assert!(err.contains("copied 0 store paths"), "{err}");
    assert!(err.contains("nothing changed"), "{err}");
    assert!(!root.join("pideploy/var/generations/3.json").exists());

    // generations: both, with the marks.
    let (out, _) =
        stdout_of(pd(&cache, &store).args(["generations", "--json", "--target", &target]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["default"], true);
    assert_eq!(list[1]["current"], true);
    assert_eq!(list[0]["current"], false);

    // rollback: generation 1 active and default, its boot entry selected.
    let (_, err) = stdout_of(pd(&cache, &store).args(["rollback", "--target", &target]));
    assert!(err.contains("generation 1 is active"), "{err}");
    assert_eq!(
        fs::read_link(root.join("pideploy/var/profiles/system"))
            .unwrap()
            .to_str(),
        Some("system-1-link")
    );
    let a_top = fs::read_link(root.join("pideploy/var/profiles/system-1-link")).unwrap();
    assert_eq!(
        fs::read_link(root.join("run/current-system")).unwrap(),
        a_top
    );
    assert!(fs::read_to_string(root.join("boot/firmware/config.txt"))
        .unwrap()
        .contains("os_prefix=gen-1/"));

    // A second deployer while the lock is held fails at once, naming the holder.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    fs::create_dir(root.join("pideploy/var/lock")).unwrap();
    fs::write(
        root.join("pideploy/var/lock/holder"),
        format!("alice@laptop pid {}\n", sleeper.id()),
    )
    .unwrap();
    let out = pd(&cache, &store)
        .args(["switch", "-c"])
        .arg(&b_cfg)
        .args(["--target", &target])
        .output()
        .unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alice@laptop"), "{err}");
    assert_eq!(
        fs::read_link(root.join("pideploy/var/profiles/system"))
            .unwrap()
            .to_str(),
        Some("system-1-link")
    );
}
