//! A directory target (`--target local:DIR`) may be a card tree someone else made, and the agent
//! runs as root on the deploying machine: a symbolic link planted where the agent writes must never
//! carry a write outside the tree. Each crafted tree is refused with one line naming the link, and
//! the file or directory the link points at is left exactly as it was; a link inside the tree's own
//! store is never read through into the tree's boot partition.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::*;

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let data = fs::read(&p).unwrap_or_default();
            (p.file_name().unwrap().to_string_lossy().into_owned(), data)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn links_planted_where_the_agent_writes_are_refused_and_nothing_is_written_through_them() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (cache, store) = (w.join("cache"), w.join("store"));
    let config = w.join("pi.toml");
    fs::write(
        &config,
        "board = \"qemu-aarch64\"\nhostname = \"crafted\"\n\n[[users]]\nname = \"pi\"\nuid = 1000\n\
         ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployTestKeyDeployTestKeyDeployTes test\"]\n",
    )
    .unwrap();
    let lock = w.join("pideploy.lock");
    lock_and_import(&config, &lock, &cache, &store);
    let image = w.join("card.img");
    run(env_for(&mut pideploy(), &cache, &store)
        .arg("image")
        .arg("-c")
        .arg(&config)
        .arg("-o")
        .arg(&image));
    let pristine = w.join("pristine");
    unpack_image(&image, w, &pristine);

    // What the links point at: a directory and a file of "this machine", outside every tree.
    let victim_dir = w.join("victim-dir");
    fs::create_dir(&victim_dir).unwrap();
    fs::write(victim_dir.join("keep"), "untouched\n").unwrap();
    let victim_file = w.join("victim-file");
    fs::write(&victim_file, "untouched\n").unwrap();

    // (name, where the link goes in the tree, what it points at)
    let cases: [(&str, &str, &Path); 5] = [
        ("generations-dir", "pideploy/var/generations", &victim_dir),
        ("boot-partition", "boot/firmware", &victim_dir),
        (
            "pending-temp-file",
            "pideploy/var/.pending.tmp",
            &victim_file,
        ),
        (
            "counter-temp-file",
            "pideploy/var/last-generation.tmp",
            &victim_file,
        ),
        ("secret-sets", "var/lib/pideploy", &victim_dir),
    ];
    for (i, (name, at, points_to)) in cases.iter().enumerate() {
        let root = w.join(format!("tree-{i}"));
        run(Command::new("cp").arg("-a").arg(&pristine).arg(&root));
        let link = root.join(at);
        if link.is_dir() {
            fs::remove_dir_all(&link).unwrap();
        } else {
            let _ = fs::remove_file(&link);
        }
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(points_to, &link).unwrap();

        let out = env_for(&mut pideploy(), &cache, &store)
            .args(["switch", "-c"])
            .arg(&config)
            .arg("--target")
            .arg(format!("local:{}", root.display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{name}: the deploy went through:\n{err}"
        );
        assert!(
            err.contains(&format!("{} is a symbolic link", link.display())),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(
            snapshot(&victim_dir),
            vec![("keep".to_string(), b"untouched\n".to_vec())],
            "{name}: something was written into the directory the link points at"
        );
        assert_eq!(
            fs::read_to_string(&victim_file).unwrap(),
            "untouched\n",
            "{name}"
        );
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    // A link inside the tree's own store, where a boot file of the generation should be: copying
    // the boot entry would read this machine's file (as root) into the tree. Refused.
    let root = w.join("tree-store-link");
    run(Command::new("cp").arg("-a").arg(&pristine).arg(&root));
    let top = fs::read_link(root.join("pideploy/var/profiles/system-1-link")).unwrap();
    let in_tree = |p: &Path| root.join(p.strip_prefix("/").unwrap());
    let entry = fs::read_to_string(in_tree(&top).join("boot/entry")).unwrap();
    let src = entry
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap();
    // Follow the generation's links the way the agent does: absolute targets inside the tree.
    let mut file = in_tree(&top);
    for part in src.split('/') {
        file = file.join(part);
        while let Ok(t) = fs::read_link(&file) {
            file = if t.is_absolute() {
                in_tree(&t)
            } else {
                file.parent().unwrap().join(t)
            };
        }
    }
    assert!(file.is_file(), "{}", file.display());
    fs::remove_file(&file).unwrap();
    symlink(&victim_file, &file).unwrap();
    let out = env_for(&mut pideploy(), &cache, &store)
        .args(["switch", "-c"])
        .arg(&config)
        .arg("--target")
        .arg(format!("local:{}", root.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a boot file through a link was copied:\n{err}"
    );
    assert!(
        err.contains("is not a regular file in the target's store")
            || err.contains("resolves outside the target's store"),
        "{err}"
    );
    let copied = Command::new("grep")
        .args(["-rlx", "untouched"])
        .arg(root.join("boot/firmware"))
        .output()
        .unwrap();
    assert!(
        copied.stdout.is_empty(),
        "this machine's file reached the tree's boot partition: {}",
        String::from_utf8_lossy(&copied.stdout)
    );

    // The same tree without links deploys (the generation the image holds is already running there
    // as far as the tree says, so the switch changes nothing and says so).
    let root = w.join("tree-clean");
    run(Command::new("cp").arg("-a").arg(&pristine).arg(&root));
    let out = run(env_for(&mut pideploy(), &cache, &store)
        .args(["switch", "-c"])
        .arg(&config)
        .arg("--target")
        .arg(format!("local:{}", root.display())));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation") || err.contains("nothing changed"),
        "{err}"
    );
}
