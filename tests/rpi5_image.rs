//! `pideploy image` for the rpi5 board, checked with tools that do not share pideploy's code.
//!
//! Raspberry Pi's archive is out of reach, so the board is `image-fixtures/rpi5-fixture.toml` (rpi5 plus
//! a local `fixture` apt source) and the kernel is the fake package set of `image-fixtures/apt`; the
//! userland is real Debian arm64. Each image is read back with sfdisk, sgdisk, fsck.fat, mtools, e2fsck
//! and debugfs, and compared with the fixture's own bytes (unpacked by dpkg-deb).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// Kernel release inside the fixture packages (see image-fixtures/gen.sh).
const KVER: &str = "6.6.0-fixture-rpi-2712";
const HOST: &str = "fixpi";

fn fixture_dir() -> PathBuf {
    repo().join("image-fixtures")
}

fn fixture_debs() -> Vec<PathBuf> {
    let pool = fixture_dir().join("apt/pool/main/l/linux-image-rpi-2712");
    let mut debs: Vec<PathBuf> = fs::read_dir(&pool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    assert_eq!(debs.len(), 2, "fixture packages in {}", pool.display());
    debs
}

/// The device trees boards/rpi5.toml lists (read as plain TOML, not through pideploy's loader).
fn board_device_trees() -> Vec<String> {
    let text = fs::read_to_string(repo().join("boards/rpi5.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let list: Vec<String> = v["boot"]["device_trees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert!(list.len() >= 5, "{list:?}");
    list
}

/// A locked, imported fixture system in a temporary directory.
struct Setup {
    _dir: tempfile::TempDir,
    w: PathBuf,
    config: PathBuf,
    lock: PathBuf,
    cache: PathBuf,
    store: PathBuf,
    /// The fixture kernel package unpacked by dpkg-deb.
    kernel_tree: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().to_path_buf();
        let config = w.join("pi.toml");
        let board = fixture_dir().join("rpi5-fixture.toml");
        fs::write(
            &config,
            format!(
                "board = \"{}\"\nhostname = \"{HOST}\"\n\n[[users]]\nname = \"pi\"\nuid = 1000\n\
                 ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKw9dF0bq1mI2M5kq0fN8rP0Yp3f7Ue6o0m8qX4H2Lz1 test@pideploy\"]\n",
                board.display()
            ),
        )
        .unwrap();
        let lock = w.join("pideploy.lock");
        let cache = w.join("cache");
        let store = w.join("store");
        let idx = debian_indexes();
        // rpi5's own `raspberrypi` source gets an empty index: only the fixture may supply the kernel.
        let empty = w.join("empty.Packages");
        fs::write(&empty, "").unwrap();
        lock_and_import_with(
            &config,
            &lock,
            &cache,
            &store,
            &[
                ("fixture", fixture_dir().join("apt/Packages")),
                ("raspberrypi", empty),
                ("debian", idx.join("debian.Packages")),
                ("debian-security", idx.join("debian-security.Packages")),
            ],
            &fixture_debs(),
        );
        let kernel_tree = w.join("kernel-deb");
        for deb in fixture_debs() {
            run(Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&kernel_tree));
        }
        Setup {
            _dir: dir,
            w,
            config,
            lock,
            cache,
            store,
            kernel_tree,
        }
    }

    fn pideploy(&self) -> Command {
        let mut cmd = pideploy();
        env_for(&mut cmd, &self.cache, &self.store);
        cmd
    }

    /// `pideploy image` of the config to `out`; returns its stderr.
    fn image(&self, out: &Path, extra: &[&str]) -> String {
        let r = run(self
            .pideploy()
            .arg("image")
            .arg("--config")
            .arg(&self.config)
            .arg("--lock")
            .arg(&self.lock)
            .arg("-o")
            .arg(out)
            .args(extra));
        String::from_utf8_lossy(&r.stderr).into_owned()
    }

    fn inspect(&self, image: &Path) -> Value {
        let out = run(self.pideploy().arg("inspect").arg(image).arg("--json"));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn sfdisk_json(image: &Path) -> Value {
    let out = run(Command::new("sfdisk").arg("--json").arg(image));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["partitiontable"].clone()
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs an mtools command on a FAT image file.
fn mtools(tool: &str, fat: &Path, args: &[&str]) -> std::process::Output {
    run(Command::new(tool)
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(fat)
        .args(args))
}

/// Reads a file of the FAT image through mcopy (binary-safe).
fn fat_read(fat: &Path, path: &str, scratch: &Path) -> Vec<u8> {
    let dest = scratch.join("mcopy.out");
    let _ = fs::remove_file(&dest);
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-n")
        .arg("-i")
        .arg(fat)
        .arg(format!("::{path}"))
        .arg(&dest));
    fs::read(&dest).unwrap()
}

/// Names in a FAT directory (mdir -b prints full paths, one per line, directories ending in `/`).
fn fat_names(fat: &Path, dir: &str) -> BTreeSet<String> {
    text(&mtools("mdir", fat, &["-b", &format!("::{dir}")]))
        .lines()
        .filter_map(|l| {
            l.trim()
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_string)
        })
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect()
}

fn debugfs(fs_image: &Path, request: &str) -> String {
    text(&run(Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(fs_image)))
}

/// Everything checked on one raw image; returns the root= value its cmdline.txt carries.
fn check_image(s: &Setup, img: &Path, gpt: bool) -> String {
    let scratch = s.w.join(format!(
        "check-{}",
        img.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir_all(&scratch).unwrap();

    // Partition table, by sfdisk (and sgdisk for GPT).
    let table = sfdisk_json(img);
    let parts = table["partitions"].as_array().unwrap().clone();
    assert_eq!(parts.len(), 2, "{table}");
    let expected_root = if gpt {
        assert_eq!(table["label"], "gpt");
        assert_eq!(
            parts[0]["type"], "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
            "boot is Microsoft basic data"
        );
        assert_eq!(
            parts[1]["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "root is Linux filesystem data"
        );
        let out = run(Command::new("sgdisk").arg("-v").arg(img));
        assert!(text(&out).contains("No problems found"), "{}", text(&out));
        parts[1]["uuid"].as_str().unwrap().to_ascii_lowercase()
    } else {
        assert_eq!(table["label"], "dos");
        assert_eq!(parts[0]["type"], "c", "boot is FAT32 LBA");
        assert_eq!(parts[1]["type"], "83");
        let id = table["id"].as_str().unwrap();
        let id = id.strip_prefix("0x").unwrap().to_ascii_lowercase();
        assert_eq!(id.len(), 8);
        format!("{id}-02")
    };
    let start = |i: usize| parts[i]["start"].as_u64().unwrap();
    let size = |i: usize| parts[i]["size"].as_u64().unwrap();
    assert_eq!(start(0) % 2048, 0, "boot aligned to 1 MiB");
    assert_eq!(start(1) % 2048, 0, "root aligned to 1 MiB");
    assert!(start(0) + size(0) <= start(1));

    // Boot partition: fsck.fat, then the files through mtools.
    let boot = scratch.join("boot.part");
    extract(img, start(0), size(0), &boot);
    run(Command::new("fsck.fat").arg("-n").arg(&boot));
    let config_txt = text(&mtools("mtype", &boot, &["::config.txt"]));
    assert!(config_txt.contains("\nos_prefix=gen-1/\n"), "{config_txt}");
    assert!(
        config_txt.contains("\nkernel=kernel_2712.img\n"),
        "{config_txt}"
    );
    assert!(config_txt.contains("arm_64bit=1"), "{config_txt}");
    // The generation's lines come last, under [all], so no model filter swallows them.
    let tail = &config_txt[config_txt.rfind("[all]").unwrap()..];
    assert!(tail.contains("os_prefix=gen-1/"), "{config_txt}");

    let cmdline = text(&mtools("mtype", &boot, &["::gen-1/cmdline.txt"]));
    assert_eq!(cmdline.lines().count(), 1, "{cmdline:?}");
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let root_arg = format!("root=PARTUUID={expected_root}");
    assert_eq!(
        words.iter().filter(|w| w.starts_with("root=")).count(),
        1,
        "{cmdline}"
    );
    assert!(
        words.contains(&root_arg.as_str()),
        "{cmdline} lacks {root_arg}"
    );
    // Bounded: a root that never appears panics (and panic=10 restarts) instead of hanging.
    assert!(words.contains(&"rootwait=60"), "{cmdline}");
    assert!(words.contains(&"console=serial0,115200"), "{cmdline}");
    let init = words
        .iter()
        .find_map(|w| w.strip_prefix("init="))
        .expect("init= on the command line");
    let toplevel = init.strip_suffix("/init").expect("init= ends in /init");
    let top_name = toplevel
        .strip_prefix("/pideploy/store/")
        .expect("init= is in the store");
    assert!(
        top_name.ends_with(&format!("-pideploy-system-{HOST}")),
        "{top_name}"
    );

    let kdir = s.kernel_tree.join(format!("usr/lib/linux-image-{KVER}"));
    assert_eq!(
        fat_read(&boot, "gen-1/kernel_2712.img", &scratch),
        fs::read(s.kernel_tree.join(format!("boot/vmlinuz-{KVER}"))).unwrap(),
        "kernel_2712.img is the package's vmlinuz"
    );
    let gen1 = fat_names(&boot, "gen-1");
    for dtb in board_device_trees() {
        assert!(gen1.contains(&dtb), "gen-1/ lacks {dtb}: {gen1:?}");
        assert_eq!(
            fat_read(&boot, &format!("gen-1/{dtb}"), &scratch),
            fs::read(kdir.join("broadcom").join(&dtb)).unwrap(),
            "{dtb}"
        );
    }
    assert!(
        !gen1.contains("bcm2711-rpi-4-b.dtb"),
        "the dtb glob is for bcm2712 only: {gen1:?}"
    );
    let overlays = fat_names(&boot, "gen-1/overlays");
    for o in ["README", "bcm2712d0.dtbo", "overlay_map.dtb", "dwc2.dtbo"] {
        assert!(
            overlays.contains(o),
            "gen-1/overlays lacks {o}: {overlays:?}"
        );
        assert_eq!(
            fat_read(&boot, &format!("gen-1/overlays/{o}"), &scratch),
            fs::read(kdir.join("overlays").join(o)).unwrap(),
            "{o}"
        );
    }
    let root_names = fat_names(&boot, "");
    assert!(
        root_names.contains("config.txt") && root_names.contains("gen-1"),
        "{root_names:?}"
    );

    // Root partition: e2fsck, then its contents through debugfs.
    let root = scratch.join("root.part");
    extract(img, start(1), size(1), &root);
    run(Command::new("e2fsck").arg("-fn").arg(&root));
    let dump = scratch.join("rootfs");
    fs::create_dir(&dump).unwrap();
    debugfs(&root, &format!("rdump / {}", dump.display()));
    let profiles = dump.join("pideploy/var/profiles");
    assert_eq!(
        fs::read_link(profiles.join("system")).unwrap(),
        PathBuf::from("system-1-link")
    );
    assert_eq!(
        fs::read_link(profiles.join("system-1-link")).unwrap(),
        PathBuf::from(toplevel),
        "generation 1 is the system cmdline.txt boots"
    );
    let record: Value = serde_json::from_str(
        &fs::read_to_string(dump.join("pideploy/var/generations/1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["generation"], 1);
    assert_eq!(record["toplevel"], toplevel);
    let init_stat = debugfs(&root, &format!("stat {init}"));
    assert!(init_stat.contains("Type: regular"), "{init_stat}");
    let mode = init_stat
        .split("Mode:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or_else(|| panic!("no mode in {init_stat}"));
    assert_eq!(mode & 0o111, 0o111, "init is executable: {mode:o}");
    assert_eq!(mode & 0o222, 0, "store files are read-only: {mode:o}");

    // Every closure path is in the store and registered, and nothing else is.
    let closure = run(s.pideploy().arg("closure").arg(toplevel).arg("--json"));
    let closure: Value = serde_json::from_slice(&closure.stdout).unwrap();
    let want: BTreeSet<String> = closure["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let p = p["path"].as_str().unwrap();
            p.strip_prefix("/pideploy/store/").unwrap().to_string()
        })
        .collect();
    assert!(want.contains(top_name), "{want:?}");
    let names = |d: &str| -> BTreeSet<String> {
        fs::read_dir(dump.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names("pideploy/var/db/valid"), want);
    assert_eq!(names("pideploy/store"), want);
    let kernel_path = want
        .iter()
        .find(|n| n.contains("-linux-"))
        .expect("a kernel store path");
    assert!(
        dump.join(format!(
            "pideploy/store/{kernel_path}/lib/modules/{KVER}/kernel/fake.ko"
        ))
        .is_file(),
        "the module tree goes into the kernel path (no initramfs on rpi5)"
    );

    // Owners: every inode under / is 0:0 (debugfs `ls -p`: /ino/mode/uid/gid/name/size/).
    let mut dirs = vec![String::from("/")];
    let mut i = 0;
    while i < dirs.len() {
        let d = dirs[i].clone();
        for e in fs::read_dir(dump.join(d.trim_start_matches('/'))).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(format!(
                    "{}/{}",
                    d.trim_end_matches('/'),
                    e.file_name().to_string_lossy()
                ));
            }
        }
        i += 1;
    }
    let cmds = scratch.join("ls.debugfs");
    fs::write(
        &cmds,
        dirs.iter()
            .map(|d| format!("ls -p \"{d}\"\n"))
            .collect::<String>(),
    )
    .unwrap();
    let listing = text(&run(Command::new("debugfs")
        .arg("-f")
        .arg(&cmds)
        .arg(&root)));
    let mut seen = 0;
    for line in listing.lines().filter(|l| l.starts_with('/')) {
        let f: Vec<&str> = line.split('/').collect();
        assert!(f.len() >= 6, "{line}");
        assert_eq!((f[3], f[4]), ("0", "0"), "owner of {line}");
        seen += 1;
    }
    assert!(seen > 100, "listed only {seen} entries:\n{listing}");

    // pideploy's own reader agrees with the tools.
    let inspect = s.inspect(img);
    assert_eq!(inspect["table"], if gpt { "Gpt" } else { "Mbr" });
    let iparts = inspect["partitions"].as_array().unwrap();
    assert_eq!(iparts.len(), 2);
    for (i, p) in iparts.iter().enumerate() {
        assert_eq!(p["start_lba"].as_u64(), Some(start(i)), "{p}");
        assert_eq!(p["size_lba"].as_u64(), Some(size(i)), "{p}");
    }
    assert_eq!(iparts[1]["partuuid"], expected_root.as_str());
    assert_eq!(inspect["config_txt"], config_txt.as_str());
    assert_eq!(inspect["cmdlines"][0]["cmdline"], cmdline.trim());
    assert_eq!(inspect["default"], "system-1-link");
    assert_eq!(inspect["generations"][0]["toplevel"], toplevel);
    assert_eq!(inspect["store_paths"].as_u64(), Some(want.len() as u64));
    let kernel_sha = inspect["boot_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "gen-1/kernel_2712.img")
        .map(|f| f["sha256"].as_str().unwrap().to_string())
        .expect("inspect lists the kernel");
    assert_eq!(
        kernel_sha,
        sha256sum(&s.kernel_tree.join(format!("boot/vmlinuz-{KVER}")))
    );
    expected_root
}

#[test]
fn mbr_image_passes_independent_checks() {
    let s = Setup::new();
    let img = s.w.join("pi.img");
    s.image(&img, &["--table", "mbr"]);
    check_image(&s, &img, false);
}

#[test]
fn gpt_image_passes_independent_checks() {
    let s = Setup::new();
    let img = s.w.join("pi-gpt.img");
    s.image(&img, &["--table", "gpt"]);
    let root = check_image(&s, &img, true);
    assert_eq!(root.len(), 36, "a GPT PARTUUID is a full uuid: {root}");
}

#[test]
fn xz_image_with_bmap_holds_the_raw_image() {
    let s = Setup::new();
    let raw = s.w.join("pi.img");
    s.image(&raw, &[]);
    let xz = s.w.join("pi.img.xz");
    s.image(&xz, &["--bmap"]);

    // xz itself decodes it to exactly the raw image (same inputs, same ids).
    run(Command::new("xz").arg("-t").arg(&xz));
    let unpacked = s.w.join("unpacked.img");
    let out = run(Command::new("xz").arg("-dc").arg(&xz));
    fs::write(&unpacked, &out.stdout).unwrap();
    assert_eq!(sha256sum(&unpacked), sha256sum(&raw));
    fs::remove_file(&unpacked).unwrap();

    // bmaptool copies it with the map, verifying the map's checksums.
    let bmap = PathBuf::from(format!("{}.bmap", xz.display()));
    assert!(bmap.is_file(), "--bmap writes {}", bmap.display());
    let copy = s.w.join("copy.img");
    run(Command::new("bmaptool")
        .arg("copy")
        .arg("--bmap")
        .arg(&bmap)
        .arg(&xz)
        .arg(&copy));
    assert_eq!(sha256sum(&copy), sha256sum(&raw));
    fs::remove_file(&copy).unwrap();

    assert_eq!(s.inspect(&xz), s.inspect(&raw));
    check_image(&s, &raw, false);
}

#[test]
fn bad_outputs_fail_cleanly() {
    let s = Setup::new();
    let out_dir = s.w.join("out");
    fs::create_dir(&out_dir).unwrap();
    let listing = || -> BTreeSet<String> {
        fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };

    // An existing file that is not an image is left alone without --force.
    let notes = out_dir.join("notes.img");
    fs::write(&notes, "my notes, not an image\n").unwrap();
    let r = s
        .pideploy()
        .arg("image")
        .arg("--config")
        .arg(&s.config)
        .arg("--lock")
        .arg(&s.lock)
        .arg("-o")
        .arg(&notes)
        .output()
        .unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        fs::read_to_string(&notes).unwrap(),
        "my notes, not an image\n"
    );
    assert_eq!(listing(), BTreeSet::from(["notes.img".to_string()]));

    // Too small: the message names the minimum; no OUT, no temporary file beside it.
    for name in ["small.img", "small.img.xz"] {
        let r = s
            .pideploy()
            .arg("-q")
            .arg("image")
            .arg("--config")
            .arg(&s.config)
            .arg("--lock")
            .arg(&s.lock)
            .arg("--size")
            .arg("10M")
            .arg("-o")
            .arg(out_dir.join(name))
            .output()
            .unwrap();
        assert!(!r.status.success(), "{name}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("minimum"), "{err}");
        let min = err
            .split("minimum")
            .nth(1)
            .and_then(|t| t.split_whitespace().find_map(|w| w.parse::<u64>().ok()))
            .unwrap_or_else(|| panic!("no number after \"minimum\": {err}"));
        assert!(min > 10 << 20, "{err}");
        assert_eq!(
            listing(),
            BTreeSet::from(["notes.img".to_string()]),
            "{name}"
        );
    }
    // Nor does the store keep the failed attempts' work directories.
    let leftovers: Vec<_> = fs::read_dir(&s.store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("image-") || n.starts_with(".kernel-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The staged store of one image is kept for the next (only what differs is staged again), and an
/// image made from a kept tree is byte for byte the image made from a fresh one: a path the new
/// closure lacks is gone from it, one it adds is there.
#[test]
fn an_image_from_the_kept_staging_equals_one_staged_afresh() {
    let s = Setup::new();
    let kept = s.store.join("image-store");
    let image = |out: &Path| s.image(out, &["-v"]);
    let a = s.w.join("a.img");
    let first = image(&a);
    assert!(
        first.contains(", 0 kept from the previous image"),
        "{first}"
    );
    assert!(kept.is_dir(), "no kept staging after an image");
    let mut text = fs::read_to_string(&s.config).unwrap();
    text.push_str("\n[[files]]\npath = \"/etc/motd\"\ncontent = \"kept staging\\n\"\n");
    fs::write(&s.config, text).unwrap();
    let b_kept = s.w.join("b-kept.img");
    let second = image(&b_kept);
    let line = second
        .lines()
        .find(|l| l.contains("kept from the previous image"))
        .unwrap_or_else(|| panic!("{second}"));
    assert!(!line.contains(", 0 kept"), "nothing was kept: {line}");
    fs::remove_dir_all(&kept).unwrap();
    let b_fresh = s.w.join("b-fresh.img");
    image(&b_fresh);
    let (kept_bytes, fresh_bytes) = (fs::read(&b_kept).unwrap(), fs::read(&b_fresh).unwrap());
    assert!(
        kept_bytes == fresh_bytes,
        "the kept staging changed the image"
    );
    assert!(
        fs::read(&a).unwrap() != fresh_bytes,
        "the config change made no difference"
    );
}
