//! `[[files]]` content is world-readable wherever pideploy keeps it (store, image), so a file that
//! other users may not read is refused before anything is built, and so is a file in the read-only
//! system (issue 10, items 3 and 5): one error line, no image, nothing in the store.

mod common;

use std::fs;
use std::process::Command;

use common::*;

const MARKER: &str = "PRIVATE-0f3c1e-MARKER";

#[test]
fn a_private_or_system_file_is_refused_by_build_image_and_switch() {
    let cases = [
        (
            format!("path = \"/etc/app/key\"\ncontent = \"{MARKER}\"\nmode = \"0600\"\n"),
            "files[0].mode: mode `0600` keeps other users out",
        ),
        (
            format!("path = \"/etc/app/key\"\ncontent = \"{MARKER}\"\nmode = \"0640\"\n"),
            "put this file in [[secrets]]",
        ),
        (
            format!("path = \"/usr/local/bin/tool\"\ncontent = \"{MARKER}\"\n"),
            "files[0].path: `/usr/local/bin/tool` is in the read-only system",
        ),
        (
            format!("path = \"/etc/static/motd\"\ncontent = \"{MARKER}\"\n"),
            "/etc/static is this generation's etc in the store",
        ),
    ];
    for (file, want) in &cases {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let (cache, store) = (w.join("cache"), w.join("store"));
        let cfg = w.join("pi.toml");
        fs::write(
            &cfg,
            format!("board = \"qemu-aarch64\"\nhostname = \"pi\"\n[[files]]\n{file}"),
        )
        .unwrap();
        let img = w.join("pi.img");
        let root = w.join("target");
        fs::create_dir(&root).unwrap();
        let target = format!("local:{}", root.display());
        let runs: [Vec<&str>; 3] = [
            vec!["build", "-c"],
            vec!["image", "-o", img.to_str().unwrap(), "-c"],
            vec!["switch", "--target", &target, "-c"],
        ];
        for args in runs {
            let out = env_for(&mut pideploy(), &cache, &store)
                .args(&args)
                .arg(&cfg)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} accepted {file}");
            assert_eq!(err.lines().count(), 1, "{args:?}: one line:\n{err}");
            assert!(err.contains(want), "{args:?}: {err}");
        }
        assert!(!img.exists(), "no image is written");
        // The content is nowhere pideploy writes.
        for dir in [&store, &root, &cache] {
            if dir.exists() {
                let hits = Command::new("grep")
                    .args(["-rl", MARKER])
                    .arg(dir)
                    .output()
                    .unwrap();
                assert!(
                    hits.stdout.is_empty(),
                    "{file} reached {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&hits.stdout)
                );
            }
        }
    }
}
