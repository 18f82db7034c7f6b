//! Builds real images for both table kinds and checks them with independent tools (sfdisk,
//! sgdisk, fsck.fat, e2fsck) and by reading every file back.
//!
//! Needs the apt packages e2fsprogs, fdisk, gdisk and dosfstools.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use pideploy_image::{
    plan, root_content_bytes, write_image, BootFile, ImageError, ImagePlan, ImageReader, ImageSpec,
    OwnerOverride, RootKind, Stage, TableKind,
};
use rstest::rstest;
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;
const TIMESTAMP: u64 = 1_700_000_000;

/// Regular files of the staged tree: path, content, mode.
fn tree_files() -> Vec<(&'static str, Vec<u8>, u32)> {
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    vec![
        ("etc/hostname", b"pi\n".to_vec(), 0o644),
        (
            "etc/deep/er/still/file.conf",
            b"nested = true\n".to_vec(),
            0o600,
        ),
        ("usr/bin/tool", b"#!/bin/sh\necho hi\n".to_vec(), 0o755),
        ("usr/lib/big.bin", big, 0o644),
        ("home/pi/.profile", b"export A=1\n".to_vec(), 0o644),
        ("home/pi/owned-by-builder", b"mine\n".to_vec(), 0o640),
        ("var/empty-file", Vec::new(), 0o644),
        (
            "odd name \"quoted\"",
            b"spaces and quotes\n".to_vec(),
            0o644,
        ),
    ]
}

/// Stages the root tree. `variant` changes creation order, mtimes and the builder-owned file's
/// owner, none of which may show in the image.
fn stage_tree(root: &Path, variant: u32) {
    let mut files = tree_files();
    if variant == 1 {
        files.reverse();
    }
    for (path, data, mode) in &files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
    }
    fs::create_dir_all(root.join("srv/empty-dir")).unwrap();
    symlink("../etc/hostname", root.join("usr/hostname-link")).unwrap();
    symlink("/usr/bin/tool", root.join("usr/bin/abs-link")).unwrap();
    // Directory modes follow the umask unless set explicitly.
    for dir in walk_dirs(root) {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let owner = 1234 + variant;
    std::os::unix::fs::chown(
        root.join("home/pi/owned-by-builder"),
        Some(owner),
        Some(owner),
    )
    .unwrap();
    let mtime = if variant == 1 { "@12345" } else { "@987654321" };
    let status = Command::new("find")
        .arg(root)
        .args(["-exec", "touch", "-h", "-d", mtime, "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        for e in fs::read_dir(&out[i]).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    out
}

fn boot_files() -> Vec<BootFile> {
    let kernel: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    vec![
        BootFile {
            path: "config.txt".into(),
            data: b"[all]\nos_prefix=gen-1/\n".to_vec(),
        },
        BootFile {
            path: "gen-1/cmdline.txt".into(),
            data: b"console=serial0 root=PARTUUID=x\n".to_vec(),
        },
        BootFile {
            path: "gen-1/kernel_2712.img".into(),
            data: kernel,
        },
        BootFile {
            path: "gen-1/overlays/x.dtbo".into(),
            data: vec![0xd0, 0x0d, 0xfe, 0xed],
        },
    ]
}

fn spec(table: TableKind, root_dir: PathBuf) -> ImageSpec {
    ImageSpec {
        table,
        seed: [0x5a; 32],
        total_size: None,
        boot_size: 64 * MIB,
        boot_label: "BOOTFS".into(),
        root_label: "rootfs".into(),
        boot_files: boot_files(),
        root_dir,
        root_owners: vec![
            OwnerOverride {
                path: "/home/pi".into(),
                uid: 1000,
                gid: 1000,
            },
            OwnerOverride {
                path: "/home/pi/.profile".into(),
                uid: 1000,
                gid: 1001,
            },
        ],
        timestamp: TIMESTAMP,
    }
}

fn build(spec: &ImageSpec, out: &Path) -> (ImagePlan, Vec<Stage>) {
    let content = root_content_bytes(&spec.root_dir).unwrap();
    let plan = plan(spec, content).unwrap();
    let mut stages = Vec::new();
    write_image(spec, &plan, out, &mut |stage, done, total| {
        assert!(done <= total);
        if stages.last() != Some(&stage) {
            stages.push(stage);
        }
    })
    .unwrap();
    (plan, stages)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn extract(img: &Path, start_lba: u64, size_lba: u64, to: &Path) {
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", to.display()))
        .args(["bs=512", "conv=sparse", "status=none"])
        .arg(format!("skip={start_lba}"))
        .arg(format!("count={size_lba}")));
}

#[rstest]
#[case::mbr(TableKind::Mbr)]
#[case::gpt(TableKind::Gpt)]
fn image_passes_independent_checks(#[case] table: TableKind) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    stage_tree(&root, 0);
    let spec = spec(table, root.clone());
    let img = tmp.path().join("pi.img");
    let (plan, stages) = build(&spec, &img);
    assert_eq!(
        stages,
        [Stage::Table, Stage::Boot, Stage::Root, Stage::Fixup]
    );

    // Sparse and exactly the planned size.
    let meta = fs::metadata(&img).unwrap();
    assert_eq!(meta.len(), plan.total_size);
    assert!(meta.blocks() * 512 < meta.len() / 2, "image is not sparse");

    // sfdisk's view of the table.
    let json: serde_json::Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(&img))).unwrap();
    let pt = &json["partitiontable"];
    let parts = pt["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["start"], plan.boot.start_lba);
    assert_eq!(parts[0]["size"], plan.boot.size_lba);
    assert_eq!(parts[1]["start"], plan.root.start_lba);
    assert_eq!(parts[1]["size"], plan.root.size_lba);
    assert_eq!(parts[0]["start"], 8192);
    match table {
        TableKind::Mbr => {
            assert_eq!(pt["label"], "dos");
            assert_eq!(pt["id"], format!("0x{}", plan.disk_id));
            assert_eq!(parts[0]["type"], "c");
            assert_eq!(parts[1]["type"], "83");
            assert!(plan.root_partuuid().ends_with("-02"));
        }
        TableKind::Gpt => {
            assert_eq!(pt["label"], "gpt");
            assert_eq!(pt["id"], plan.disk_id.to_uppercase());
            assert_eq!(pt["firstlba"], 34);
            assert_eq!(pt["lastlba"], plan.total_size / 512 - 34);
            assert_eq!(parts[0]["type"], "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
            assert_eq!(parts[1]["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
            assert_eq!(parts[0]["uuid"], plan.boot_partuuid().to_uppercase());
            assert_eq!(parts[1]["uuid"], plan.root_partuuid().to_uppercase());
            let verify = run(Command::new("sgdisk").arg("-v").arg(&img));
            assert!(verify.contains("No problems found"), "sgdisk -v: {verify}");
        }
    }

    // Each filesystem on its own, checked by its own fsck.
    let boot_img = tmp.path().join("boot.part");
    let root_img = tmp.path().join("root.part");
    extract(&img, plan.boot.start_lba, plan.boot.size_lba, &boot_img);
    extract(&img, plan.root.start_lba, plan.root.size_lba, &root_img);
    run(Command::new("fsck.fat").arg("-n").arg(&boot_img));
    run(Command::new("e2fsck").arg("-fn").arg(&root_img));
    let dumpe2fs = run(Command::new("dumpe2fs")
        .arg("-h")
        .arg(&root_img)
        .env("TZ", "UTC"));
    // 1_700_000_000 in UTC: no wall-clock time may leak into the superblock.
    for field in ["Filesystem created:", "Last write time:", "Last checked:"] {
        assert!(
            dumpe2fs.contains(&format!("{field:<26}Tue Nov 14 22:13:20 2023")),
            "{field} in {dumpe2fs}"
        );
    }
    assert!(dumpe2fs.contains(&format!("Filesystem UUID:          {}", plan.root_fs_uuid)));
    assert!(dumpe2fs.contains("Filesystem volume name:   rootfs"));
    assert!(dumpe2fs.contains("has_journal"));
    assert!(dumpe2fs.contains(&format!(
        "Directory Hash Seed:      {}",
        plan.root_hash_seed
    )));

    // Reading back through our own reader.
    let mut reader = ImageReader::open(&img).unwrap();
    let t = reader.table().clone();
    assert_eq!(t.kind, table);
    assert_eq!(t.disk_id, plan.disk_id);
    assert_eq!(t.partition(1).unwrap().start_lba, plan.boot.start_lba);
    assert_eq!(t.partition(2).unwrap().size_lba, plan.root.size_lba);
    assert_eq!(t.partition(2).unwrap().partuuid, plan.root_partuuid());
    assert_eq!(t.partition(1).unwrap().partuuid, plan.boot_partuuid());

    let mut boot = reader.boot().unwrap();
    assert_eq!(boot.volume_id(), plan.boot_volume_id);
    assert_eq!(boot.label(), "BOOTFS");
    let walked: BTreeMap<String, u64> = boot.walk().unwrap().into_iter().collect();
    for f in boot_files() {
        assert_eq!(
            boot.read_file(&f.path).unwrap(),
            f.data,
            "boot file {}",
            f.path
        );
        assert_eq!(
            walked.get(&f.path).copied(),
            Some(f.data.len() as u64),
            "walk: {walked:?}"
        );
    }

    for (path, data, mode) in tree_files() {
        let abs = format!("/{path}");
        assert_eq!(reader.root_read_file(&abs).unwrap(), data, "{abs}");
        let m = reader.root_metadata(&abs).unwrap();
        assert_eq!(m.kind, RootKind::File);
        assert_eq!(u32::from(m.mode), mode, "{abs}");
        assert_eq!(m.size, data.len() as u64);
        assert_eq!(m.mtime, TIMESTAMP as i64);
        let want = match path {
            "home/pi/.profile" => (1000, 1001),
            _ => (0, 0),
        };
        assert_eq!((m.uid, m.gid), want, "{abs}");
    }
    let pi = reader.root_metadata("/home/pi").unwrap();
    assert_eq!((pi.kind, pi.uid, pi.gid), (RootKind::Dir, 1000, 1000));
    assert_eq!(
        reader.root_read_link("/usr/hostname-link").unwrap(),
        "../etc/hostname"
    );
    assert_eq!(
        reader.root_read_link("/usr/bin/abs-link").unwrap(),
        "/usr/bin/tool"
    );
    assert_eq!(
        reader.root_metadata("/usr/bin/abs-link").unwrap().kind,
        RootKind::Symlink
    );
    assert_eq!(
        reader.root_read_file("/usr/hostname-link").unwrap(),
        b"pi\n"
    );
    assert_eq!(
        reader.root_list_dir("/").unwrap(),
        [
            "etc",
            "home",
            "lost+found",
            "odd name \"quoted\"",
            "srv",
            "usr",
            "var"
        ]
    );
    assert!(reader.root_list_dir("/srv/empty-dir").unwrap().is_empty());
    let top = reader.root_metadata("/").unwrap();
    assert_eq!((top.uid, top.gid, top.mtime), (0, 0, TIMESTAMP as i64));
    assert!(matches!(
        reader.root_read_file("/nope"),
        Err(ImageError::Ext4 { .. })
    ));
}

fn sha256_file(path: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

/// The second build of [`same_spec_gives_same_bytes`], run in a child process so it can have its
/// own umask and TZ. Does nothing when not started by that test.
#[test]
fn child_build() {
    let (Ok(dir), Ok(table)) = (
        std::env::var("PIDEPLOY_IMAGE_CHILD_DIR"),
        std::env::var("PIDEPLOY_IMAGE_CHILD_TABLE"),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let root = dir.join("staged-elsewhere");
    stage_tree(&root, 1);
    let table = if table == "gpt" {
        TableKind::Gpt
    } else {
        TableKind::Mbr
    };
    build(&spec(table, root), &dir.join("b.img"));
}

#[rstest]
#[case::mbr(TableKind::Mbr, "mbr")]
#[case::gpt(TableKind::Gpt, "gpt")]
fn same_spec_gives_same_bytes(#[case] table: TableKind, #[case] name: &str) {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let root = a_dir.path().join("root");
    stage_tree(&root, 0);
    let a = a_dir.path().join("a.img");
    build(&spec(table, root), &a);

    let exe = std::env::current_exe().unwrap();
    // The child's output is kept so its own test summary does not mix into ours.
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" --exact child_build --nocapture --test-threads=1")
        .arg(&exe)
        .env("PIDEPLOY_IMAGE_CHILD_DIR", b_dir.path())
        .env("PIDEPLOY_IMAGE_CHILD_TABLE", name)
        .env("TZ", "Pacific/Kiritimati")
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "child build failed: {}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let b = b_dir.path().join("b.img");
    assert_eq!(sha256_file(&a), sha256_file(&b));

    // And a different seed really changes the bytes (the comparison above can fail).
    let c = a_dir.path().join("c.img");
    let mut other = spec(table, a_dir.path().join("root"));
    other.seed[0] ^= 1;
    build(&other, &c);
    assert_ne!(sha256_file(&a), sha256_file(&c));
}

#[test]
fn errors_say_what_to_change() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    stage_tree(&root, 0);
    let mut s = spec(TableKind::Mbr, root.clone());

    s.total_size = Some(100 * MIB);
    let err = plan(&s, root_content_bytes(&root).unwrap()).unwrap_err();
    let minimum = match &err {
        ImageError::TotalTooSmall { minimum, .. } => *minimum,
        other => panic!("expected TotalTooSmall, got {other:?}"),
    };
    assert!(err.to_string().contains(&minimum.to_string()), "{err}");
    s.total_size = None;

    let p = plan(&s, 0).unwrap();
    let existing = tmp.path().join("exists.img");
    fs::write(&existing, b"keep me").unwrap();
    let err = write_image(&s, &p, &existing, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(err, ImageError::OutputExists(_)), "{err}");
    assert_eq!(fs::read(&existing).unwrap(), b"keep me");

    let mut fat_full = s.clone();
    fat_full.boot_files.push(BootFile {
        path: "huge.bin".into(),
        data: vec![1u8; 70 * MIB as usize],
    });
    let out = tmp.path().join("full.img");
    let err = write_image(&fat_full, &p, &out, &mut |_, _, _| {}).unwrap_err();
    match &err {
        ImageError::BootContentTooLarge {
            needed, boot_size, ..
        } => {
            assert!(*needed > 70 * MIB);
            assert_eq!(*boot_size, 64 * MIB);
        }
        other => panic!("expected BootContentTooLarge, got {other:?}"),
    }
    assert!(err.to_string().contains("boot_size"), "{err}");
    assert!(
        !out.exists(),
        "a failed build must not leave an image behind"
    );

    let mut bad_owner = s.clone();
    bad_owner.root_owners.push(OwnerOverride {
        path: "/no/such".into(),
        uid: 1,
        gid: 1,
    });
    let err = write_image(&bad_owner, &p, &out, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(err, ImageError::OwnerPathMissing { .. }), "{err}");
}

/// Run by [`missing_e2fsprogs_is_reported`] with an empty PATH; does nothing otherwise.
#[test]
fn child_without_tools() {
    let Ok(dir) = std::env::var("PIDEPLOY_IMAGE_NO_TOOLS_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let root = dir.join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hostname"), b"pi\n").unwrap();
    let mut s = spec(TableKind::Mbr, root);
    s.root_owners.clear();
    let p = plan(&s, 0).unwrap();
    let out = dir.join("x.img");
    let err = write_image(&s, &p, &out, &mut |_, _, _| {}).unwrap_err();
    assert!(
        matches!(err, ImageError::ToolMissing { tool: "mke2fs", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("install e2fsprogs"), "{err}");
    assert!(!out.exists());
}

/// Not on `PATH` but in an sbin directory (a non-root user's PATH on Debian): found there.
#[test]
fn e2fsprogs_off_path_is_found_in_sbin() {
    let tmp = tempfile::tempdir().unwrap();
    let sbin = tmp.path().join("sbin");
    fs::create_dir(&sbin).unwrap();
    fs::write(sbin.join("mke2fs"), "#!/bin/sh\n").unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_finds_sbin", "--nocapture"])
        .env("PATH", tmp.path().join("empty"))
        .env("PIDEPLOY_SBIN_DIRS", &sbin)
        .env("PIDEPLOY_EXPECT_MKE2FS", sbin.join("mke2fs"))
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
}

#[test]
fn child_finds_sbin() {
    // Runs only as the child of the test above, whose environment it needs.
    let Some(want) = std::env::var_os("PIDEPLOY_EXPECT_MKE2FS") else {
        return;
    };
    assert_eq!(pideploy_image::e2fs_program("mke2fs"), PathBuf::from(want));
    assert_eq!(
        pideploy_image::e2fs_program("no-such-tool"),
        PathBuf::from("no-such-tool")
    );
}

#[test]
fn missing_e2fsprogs_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let empty_path = tmp.path().join("empty-bin");
    fs::create_dir(&empty_path).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_without_tools", "--nocapture"])
        .env("PIDEPLOY_IMAGE_NO_TOOLS_DIR", tmp.path())
        .env("PATH", &empty_path)
        .env("PIDEPLOY_SBIN_DIRS", "")
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
}
