//! Shared helpers: a Pi-like boot tree with non-trivial contents, building volumes into
//! temporary files, and running the external checkers.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Output};

use pideploy_fat32::FatBuilder;

pub const MIB: u64 = 1 << 20;

/// Deterministic, non-zero, non-repeating bytes so a misplaced cluster cannot go unnoticed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A boot partition like the real one: LFN names, a 300-file overlays dir, per-generation
/// folders, nested dirs, an empty file, a file of exactly one cluster and a multi-MB kernel.
pub fn pi_tree(cluster_bytes: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut add = |path: &str, data: Vec<u8>| {
        files.insert(path.to_string(), data);
    };
    add(
        "config.txt",
        b"arm_64bit=1\nkernel=kernel_2712.img\n".to_vec(),
    );
    add(
        "cmdline.txt",
        b"console=serial0,115200 root=PARTUUID=1234abcd-02 rootwait\n".to_vec(),
    );
    add("kernel_2712.img", pattern(1, 3 * MIB as usize + 123));
    add("bcm2712d0-rpi-5-b.dtb", pattern(2, 70_001));
    add("bcm2712-rpi-5-b.dtb", pattern(3, 69_999));
    add("bcm2712-rpi-cm5-cm5io.dtb", pattern(4, 65_000));
    add("START4.ELF", pattern(5, 2_000));
    add("empty.txt", Vec::new());
    add("one-cluster.bin", pattern(6, cluster_bytes));
    add("overlays/overlay_map.dtb", pattern(7, 5_000));
    add("overlays/README", b"overlays go here\n".to_vec());
    for i in 0..300 {
        add(
            &format!("overlays/overlay-{i:03}-rpi.dtbo"),
            pattern(100 + i, 300 + i as usize * 7),
        );
    }
    add(
        "gen-1/cmdline.txt",
        b"console=tty1 root=/dev/mmcblk0p2 gen=1\n".to_vec(),
    );
    add("gen-1/kernel_2712.img", pattern(8, MIB as usize + 1));
    add("gen-1/overlays/vc4-kms-v3d-pi5.dtbo", pattern(9, 3_000));
    add("gen-2/cmdline.txt", b"console=tty1 gen=2\n".to_vec());
    add("a/b/c/d/deep file with spaces.txt", pattern(10, 1_234));
    files
}

/// Builds a volume of `size` with `files` added in the given order plus `dirs`.
pub fn build<'a>(
    size: u64,
    files: impl IntoIterator<Item = (&'a String, &'a Vec<u8>)>,
    dirs: &[&str],
) -> FatBuilder {
    let mut b = FatBuilder::new(size, 0x1234_ABCD, "bootfs", 2048).expect("valid size");
    for d in dirs {
        b.add_dir(d).expect("add_dir");
    }
    for (path, data) in files {
        b.add_file(path, data.clone()).expect("add_file");
    }
    b
}

/// Writes the volume into a fresh file at `path`.
pub fn write_image(builder: &FatBuilder, path: &Path) {
    let mut f = File::create(path).expect("create image");
    let n = builder.write(&mut f).expect("write volume");
    assert_eq!(std::fs::metadata(path).unwrap().len(), n);
}

/// Runs a tool, panicking with a hint when it is not installed.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        // mtools refuses images whose size is not a multiple of its guessed track geometry.
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {program} (apt-get install dosfstools mtools): {e}"))
}

/// Runs `fsck.fat -n -v`; returns its output and whether it found nothing to complain about.
pub fn fsck(image: &Path) -> (bool, String) {
    let out = run("fsck.fat", &["-n", "-v", image.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Under -n some findings still exit 0 (e.g. "Wrong checksum for long file name ...
    // Not auto-correcting this."), so the words matter as much as the status.
    let lower = text.to_lowercase();
    let complaint = [
        "differ",
        "wrong",
        "not auto-correcting",
        "perform changes",
        "orphan",
        "reclaim",
        "dirty",
    ]
    .iter()
    .any(|bad| lower.contains(bad));
    (out.status.success() && !complaint, text)
}

/// Asserts `fsck.fat -n` finds a clean FAT32 volume; returns its verbose output.
pub fn assert_fsck_clean(image: &Path) -> String {
    let (clean, text) = fsck(image);
    assert!(clean, "fsck.fat -n complained:\n{text}");
    assert!(text.contains("32 bit entries"), "not FAT32:\n{text}");
    text
}
