//! `FatReader` on volumes made by an independent writer: mkfs.fat + mcopy.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use common::*;
use pideploy_fat32::{FatReader, FatType};
use rstest::rstest;

fn source_tree() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("config.txt".to_string(), b"arm_64bit=1\n".to_vec());
    files.insert("kernel_2712.img".to_string(), pattern(1, 700_001));
    files.insert("bcm2712d0-rpi-5-b.dtb".to_string(), pattern(2, 40_000));
    files.insert("START4.ELF".to_string(), pattern(3, 1_000));
    files.insert("Mixed Case Name.Txt".to_string(), b"mixed\n".to_vec());
    files.insert("empty".to_string(), Vec::new());
    for i in 0..300 {
        files.insert(
            format!("overlays/ov-{i:03}.dtbo"),
            pattern(10 + i, 100 + i as usize),
        );
    }
    files.insert("gen-1/overlays/x.dtbo".to_string(), pattern(4, 2_048));
    files
}

fn materialise(files: &BTreeMap<String, Vec<u8>>, root: &Path) {
    for (path, data) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

#[rstest]
#[case::fat32("32", 64, FatType::Fat32)]
#[case::fat16("16", 32, FatType::Fat16)]
#[case::fat12("12", 4, FatType::Fat12)]
fn reads_mkfs_fat_and_mcopy_volumes(#[case] bits: &str, #[case] mib: u64, #[case] ty: FatType) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let img = dir.path().join("vol.img");
    let mut files = source_tree();
    if ty == FatType::Fat12 {
        // Keep the FAT12 volume small: drop the big kernel.
        files.insert("kernel_2712.img".to_string(), pattern(1, 200_001));
    }
    materialise(&files, &src);
    let out = run(
        "mkfs.fat",
        &[
            "-F",
            bits,
            "-n",
            "PIBOOT",
            "-i",
            "CAFEF00D",
            "-C",
            img.to_str().unwrap(),
            &(mib * 1024).to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "mkfs.fat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = vec![
        "-s".to_string(),
        "-i".to_string(),
        img.display().to_string(),
    ];
    for entry in std::fs::read_dir(&src).unwrap() {
        args.push(entry.unwrap().path().display().to_string());
    }
    args.push("::/".to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("mcopy", &args);
    assert!(
        out.status.success(),
        "mcopy: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut reader = FatReader::open(File::open(&img).unwrap()).unwrap();
    assert_eq!(reader.fat_type(), ty);
    assert_eq!(reader.volume_id(), 0xCAFE_F00D);
    assert_eq!(reader.label(), "PIBOOT");
    let expected: Vec<(String, u64)> = files
        .iter()
        .map(|(p, d)| (p.clone(), d.len() as u64))
        .collect();
    assert_eq!(reader.walk().unwrap(), expected);
    for (path, data) in &files {
        assert_eq!(&reader.read_file(path).unwrap(), data, "{path}");
    }
    // Case-insensitive lookup, like the firmware.
    assert_eq!(reader.read_file("CONFIG.TXT").unwrap(), files["config.txt"]);
    assert_eq!(
        reader.read_file("Gen-1/OVERLAYS/X.DTBO").unwrap(),
        files["gen-1/overlays/x.dtbo"]
    );
    assert_eq!(reader.list_dir("overlays").unwrap().len(), 300);
}
