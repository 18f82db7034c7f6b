//! Volumes built by `FatBuilder`, checked by fsck.fat, mtools and `FatReader`.

mod common;

use std::fs::File;

use common::*;
use pideploy_fat32::{FatBuilder, FatError, FatReader, FatType};
use rstest::rstest;

#[rstest]
#[case::mib_64(64)]
#[case::mib_256(256)]
#[case::mib_512(512)]
fn pi_volume_is_fsck_clean_fat32_and_reads_back(#[case] mib: u64) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("boot.img");
    let probe = FatBuilder::new(mib * MIB, 1, "", 0).unwrap();
    let files = pi_tree(probe.cluster_bytes() as usize);
    let builder = build(mib * MIB, &files, &["empty-dir", "gen-2/overlays"]);
    write_image(&builder, &img);

    let fsck = assert_fsck_clean(&img);
    // fsck's summary counts files, directories and the volume label entry.
    let dirs = 10; // overlays a a/b a/b/c a/b/c/d gen-1 gen-1/overlays gen-2 gen-2/overlays empty-dir
    assert!(
        fsck.contains(&format!("{} files", files.len() + dirs + 1)),
        "{fsck}"
    );

    // Our reader sees exactly what went in.
    let mut reader = FatReader::open(File::open(&img).unwrap()).unwrap();
    assert_eq!(reader.fat_type(), FatType::Fat32);
    assert_eq!(reader.volume_id(), 0x1234_ABCD);
    assert_eq!(reader.label(), "BOOTFS");
    let walked = reader.walk().unwrap();
    let expected: Vec<(String, u64)> = files
        .iter()
        .map(|(p, d)| (p.clone(), d.len() as u64))
        .collect();
    assert_eq!(walked, expected);
    for (path, data) in &files {
        assert_eq!(&reader.read_file(path).unwrap(), data, "{path}");
    }
    assert!(reader.list_dir("empty-dir").unwrap().is_empty());
    assert!(reader.list_dir("GEN-2/Overlays").unwrap().is_empty());
}

#[test]
fn mtools_sees_the_names_and_contents() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("boot.img");
    let files = pi_tree(512);
    write_image(&build(64 * MIB, &files, &[]), &img);
    let image = format!("{}", img.display());

    let info = run("minfo", &["-i", &image, "::"]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("disk type=\"FAT32   \""), "{info}");
    assert!(info.contains("hidden sectors: 2048"), "{info}");
    assert!(info.contains("serial number: 1234ABCD"), "{info}");
    assert!(info.contains("disk label=\"BOOTFS     \""), "{info}");

    // `mdir -b` lists full paths by long name; recursive with -/.
    let out = run("mdir", &["-i", &image, "-/", "-b", "::/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(|l| l.trim_start_matches("::/").to_string())
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    let expected: Vec<String> = files.keys().cloned().collect();
    assert_eq!(listed_sorted, expected);

    // The plain listing shows short aliases next to long names.
    let out = run("mdir", &["-i", &image, "::/"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "KERNEL~1 IMG",
        "kernel_2712.img",
        "bcm2712d0-rpi-5-b.dtb",
        "CONFIG   TXT",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }

    for path in [
        "gen-1/cmdline.txt",
        "kernel_2712.img",
        "overlays/overlay_map.dtb",
        "overlays/overlay-299-rpi.dtbo",
        "one-cluster.bin",
        "empty.txt",
        "a/b/c/d/deep file with spaces.txt",
        "GEN-1/OVERLAYS/VC4-KMS-V3D-PI5.DTBO",
    ] {
        let out = run("mtype", &["-i", &image, &format!("::/{path}")]);
        assert!(
            out.status.success(),
            "mtype {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = files
            .keys()
            .find(|k| k.eq_ignore_ascii_case(path))
            .expect("path is in the tree");
        assert_eq!(out.stdout, files[key], "{path}");
    }
}

#[test]
fn same_inputs_give_identical_bytes_whatever_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let files = pi_tree(512);
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    write_image(&build(64 * MIB, &files, &["gen-2"]), &a);
    write_image(&build(64 * MIB, files.iter().rev(), &["gen-2"]), &b);
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(a.len(), b.len());
    assert!(a == b, "two builds differ");
    // A different input really changes the output.
    let mut changed = files.clone();
    changed.insert("config.txt".into(), b"arm_64bit=0\n".to_vec());
    let c = dir.path().join("c.img");
    write_image(&build(64 * MIB, &changed, &["gen-2"]), &c);
    assert!(std::fs::read(c).unwrap() != a);
}

#[test]
fn writes_at_the_current_position_of_the_output() {
    let files = pi_tree(512);
    let builder = build(40 * MIB, &files, &[]);
    let mut disk = std::io::Cursor::new(vec![0u8; 1024 * 1024]);
    disk.set_position(1024 * 1024);
    assert_eq!(builder.write(&mut disk).unwrap(), 40 * MIB);
    assert_eq!(disk.position(), 41 * MIB);
    let disk = disk.into_inner();
    assert_eq!(disk.len() as u64, 41 * MIB);
    let mut reader = FatReader::open(std::io::Cursor::new(&disk[MIB as usize..])).unwrap();
    assert_eq!(
        reader.read_file("gen-1/cmdline.txt").unwrap(),
        files["gen-1/cmdline.txt"]
    );
}

#[test]
fn smallest_volume_is_fsck_clean() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("min.img");
    let size = FatBuilder::min_size_bytes();
    let mut b = FatBuilder::new(size, 7, "MIN", 0).unwrap();
    b.add_file("a.txt", b"x".to_vec()).unwrap();
    write_image(&b, &img);
    assert_fsck_clean(&img);
}

#[test]
fn completely_full_volume_is_fsck_clean() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("full.img");
    let size = FatBuilder::min_size_bytes();
    let mut b = FatBuilder::new(size, 7, "", 0).unwrap();
    b.add_file("first.bin", vec![]).unwrap();
    let room = b.capacity_bytes() - b.required_bytes();
    b.add_file("fill.bin", pattern(11, room as usize)).unwrap();
    assert_eq!(b.required_bytes(), b.capacity_bytes());
    write_image(&b, &img);
    let text = assert_fsck_clean(&img);
    assert!(text.contains("2 files"), "{text}");
    let mut reader = FatReader::open(File::open(&img).unwrap()).unwrap();
    assert_eq!(reader.read_file("fill.bin").unwrap().len() as u64, room);
    assert_eq!(reader.label(), "");
}

#[test]
fn too_small_size_says_the_minimum() {
    let err = FatBuilder::new(32 * MIB, 1, "BOOT", 0).unwrap_err();
    let min = FatBuilder::min_size_bytes();
    assert!(
        matches!(err, FatError::TooSmall { min: m, .. } if m == min),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&min.to_string()) && msg.contains("at least"),
        "{msg}"
    );
    assert!(FatBuilder::new(min, 1, "BOOT", 0).is_ok());
}

#[test]
fn content_that_does_not_fit_asks_for_a_bigger_partition() {
    let mut b = FatBuilder::new(64 * MIB, 1, "BOOT", 0).unwrap();
    b.add_file("kernel_2712.img", vec![1; 70 * MIB as usize])
        .unwrap();
    assert!(b.required_bytes() > b.capacity_bytes());
    let mut out = std::io::Cursor::new(Vec::new());
    let err = b.write(&mut out).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FatError::DoesNotFit { .. }), "{err:?}");
    assert!(msg.contains("bigger boot partition"), "{msg}");
    assert!(msg.contains(&b.required_bytes().to_string()), "{msg}");
}

#[test]
fn duplicate_and_conflicting_paths_are_refused() {
    let mut b = FatBuilder::new(64 * MIB, 1, "BOOT", 0).unwrap();
    b.add_file("config.txt", vec![1]).unwrap();
    let err = b.add_file("/CONFIG.TXT", vec![2]).unwrap_err();
    assert!(matches!(err, FatError::Duplicate { .. }), "{err:?}");
    assert!(err.to_string().contains("already exists"));
    assert!(matches!(
        b.add_file("config.txt/x", vec![]).unwrap_err(),
        FatError::NotADirectory { .. }
    ));
    assert!(matches!(
        b.add_dir("Config.txt").unwrap_err(),
        FatError::Duplicate { .. }
    ));
    b.add_dir("overlays").unwrap();
    b.add_dir("OVERLAYS").unwrap();
    assert!(matches!(
        b.add_file("overlays", vec![]).unwrap_err(),
        FatError::Duplicate { .. }
    ));
    assert!(matches!(
        b.add_file("a/../b", vec![]).unwrap_err(),
        FatError::InvalidPath { .. }
    ));
    assert!(matches!(
        b.add_file("", vec![]).unwrap_err(),
        FatError::InvalidPath { .. }
    ));
    assert!(matches!(
        FatBuilder::new(64 * MIB, 1, "bad.label", 0).unwrap_err(),
        FatError::InvalidLabel { .. }
    ));
}

#[test]
fn reader_reports_missing_paths_and_wrong_kinds() {
    let files = pi_tree(512);
    let builder = build(64 * MIB, &files, &[]);
    let mut disk = std::io::Cursor::new(Vec::new());
    builder.write(&mut disk).unwrap();
    let mut reader = FatReader::open(disk).unwrap();
    assert!(matches!(
        reader.read_file("nope.txt"),
        Err(FatError::NotFound { .. })
    ));
    assert!(matches!(
        reader.read_file("overlays"),
        Err(FatError::WrongKind { .. })
    ));
    assert!(matches!(
        reader.list_dir("config.txt"),
        Err(FatError::WrongKind { .. })
    ));
    let root = reader.list_dir("/").unwrap();
    let kernel = root.iter().find(|e| e.name == "kernel_2712.img").unwrap();
    assert_eq!(kernel.short_name, "KERNEL~1.IMG");
    assert_eq!(kernel.size, files["kernel_2712.img"].len() as u64);
    assert!(root.iter().any(|e| e.name == "overlays" && e.is_dir));
    assert_eq!(reader.list_dir("Overlays").unwrap().len(), 302);
}

/// Guards the guard: the fsck check must notice damage of the kinds the writer could get wrong.
#[test]
fn fsck_check_notices_damage() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("boot.img");
    let files = pi_tree(512);
    write_image(&build(64 * MIB, &files, &[]), &img);
    let good = std::fs::read(&img).unwrap();
    assert!(fsck(&img).0);

    let damage = |what: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        edit(&mut bytes);
        std::fs::write(&img, &bytes).unwrap();
        let (clean, text) = fsck(&img);
        assert!(!clean, "fsck.fat did not notice {what}:\n{text}");
    };
    // FSInfo free count off by one.
    damage("a wrong free count", &|b| b[512 + 488] ^= 1);
    // Backup boot sector differs from the primary.
    damage("a differing backup boot sector", &|b| {
        b[6 * 512 + 3] ^= 0x20
    });
    // An LFN entry whose checksum does not match its short entry (root: label, then "a").
    damage("a bad LFN checksum", &|b| {
        let lfn = 1_049_600 + 32;
        assert_eq!(b[lfn + 11], 0x0F, "expected an LFN entry");
        b[lfn + 13] ^= 0x55;
    });
    // A cluster marked used that nothing references (FAT entry of the last free cluster).
    damage("a lost cluster", &|b| {
        let fat = 32 * 512;
        let last = fat + 4 * 129_023;
        b[last..last + 4].copy_from_slice(&0x0FFF_FFFFu32.to_le_bytes());
    });
}

#[test]
fn reserved_area_backups_and_fsinfo_agree_with_the_fat() {
    let files = pi_tree(4096);
    let builder = build(512 * MIB, &files, &[]);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("boot.img");
    write_image(&builder, &img);
    // The reserved area and both FATs fit well within the first 4 MiB.
    let mut b = vec![0u8; 4 * MIB as usize];
    std::io::Read::read_exact(&mut File::open(&img).unwrap(), &mut b).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    assert_eq!(
        b[..1024],
        b[6 * 512..7 * 512 + 512],
        "backup boot + FSInfo at 6 and 7"
    );
    assert_eq!(b[21], 0xF8);
    assert_eq!((u16_at(11), b[13], u16_at(14), b[16]), (512, 8, 32, 2));
    assert_eq!((u32_at(44), u16_at(48), u16_at(50)), (2, 1, 6));
    let fat_sectors = u32_at(36) as usize;
    let data_start = (32 + 2 * fat_sectors) * 512;
    let clusters = (u32_at(32) as usize * 512 - data_start) / 4096;
    let fat = |i: usize| u32_at(32 * 512 + 4 * i);
    let fat2 = |i: usize| u32_at((32 + fat_sectors) * 512 + 4 * i);
    let free: Vec<usize> = (2..clusters + 2).filter(|&c| fat(c) == 0).collect();
    assert!(
        (0..clusters + 2).all(|c| fat(c) == fat2(c)),
        "FAT copies differ"
    );
    assert_eq!(u32_at(512 + 488) as usize, free.len(), "FSInfo free count");
    assert_eq!(u32_at(512 + 492) as usize, free[0], "FSInfo next-free hint");
    assert_eq!(
        (clusters - free.len()) as u64 * 4096,
        builder.required_bytes(),
        "required_bytes matches the clusters in use"
    );
}
