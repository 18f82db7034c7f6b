//! `pideploy inspect` and `pideploy flash` on hostile images: one error line and a non-zero
//! exit for each damaged table, boot sector or block map (never "thread 'main' panicked"), and
//! a boot partition with 5,000 files inspected in a few seconds.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::pideploy;
use pideploy_fat32::FatBuilder;

const SECTOR: u64 = 512;

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A 2 MiB GPT disk with one partition (first, last) and entries of `entry_size` bytes, with
/// valid checksums so only the named field is wrong.
fn gpt_disk(first: u64, last: u64, entry_size: u32) -> Vec<u8> {
    let sectors = 4096usize;
    let mut d = vec![0u8; sectors * 512];
    d[446 + 4] = 0xEE;
    put32(&mut d, 446 + 8, 1);
    put32(&mut d, 446 + 12, sectors as u32 - 1);
    d[510] = 0x55;
    d[511] = 0xAA;
    let h = 512;
    d[h..h + 8].copy_from_slice(b"EFI PART");
    put32(&mut d, h + 8, 0x0001_0000);
    put32(&mut d, h + 12, 92);
    put64(&mut d, h + 24, 1);
    put64(&mut d, h + 32, sectors as u64 - 1);
    put64(&mut d, h + 40, 34);
    put64(&mut d, h + 48, sectors as u64 - 34);
    d[h + 56..h + 72].copy_from_slice(&[0x22; 16]);
    put64(&mut d, h + 72, 2);
    put32(&mut d, h + 80, 128);
    put32(&mut d, h + 84, entry_size);
    let e = 1024;
    d[e..e + 16].copy_from_slice(&[0xA2; 16]);
    d[e + 16..e + 32].copy_from_slice(&[0x33; 16]);
    put64(&mut d, e + 32, first);
    put64(&mut d, e + 40, last);
    let array_len = (128 * entry_size as usize).min(d.len() - 1024);
    let array_crc = crc32(&d[1024..1024 + array_len]);
    put32(&mut d, h + 88, array_crc);
    let header_crc = crc32(&d[h..h + 92]);
    put32(&mut d, h + 16, header_crc);
    d
}

/// An MBR disk: sector 0 with partitions (type, start, sectors), `total` sectors long.
fn mbr_disk(path: &Path, total: u64, parts: &[(u8, u32, u32)]) -> File {
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(total * SECTOR).unwrap();
    let mut s = [0u8; 512];
    for (i, &(sys, start, size)) in parts.iter().enumerate() {
        s[446 + 16 * i + 4] = sys;
        put32(&mut s, 446 + 16 * i + 8, start);
        put32(&mut s, 446 + 16 * i + 12, size);
    }
    s[510] = 0x55;
    s[511] = 0xAA;
    f.write_all_at(&s, 0).unwrap();
    f
}

/// An MBR image whose boot partition (LBA 2048) is a FAT32 volume holding `files`; returns the
/// image and the byte offset of the boot partition.
fn fat_image(path: &Path, files: &[(String, Vec<u8>)]) -> (File, u64) {
    let size = FatBuilder::min_size_bytes();
    let mut b = FatBuilder::new(size, 5, "BOOT", 2048).unwrap();
    for (p, d) in files {
        b.add_file(p, d.clone()).unwrap();
    }
    let sectors = size / SECTOR;
    let f = mbr_disk(
        path,
        2048 + sectors + 2048,
        &[
            (0x0c, 2048, sectors as u32),
            (0x83, (2048 + sectors) as u32, 2048),
        ],
    );
    let mut w = pideploy_image::Window::new(f.try_clone().unwrap(), 2048 * SECTOR, size);
    b.write(&mut w).unwrap();
    (f, 2048 * SECTOR)
}

/// Runs `cmd`, which must fail with one stderr line and no panic; returns the line.
fn one_error_line(cmd: &mut Command) -> String {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{cmd:?} panicked:\n{err}");
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "{cmd:?} did not fail cleanly: {}\n{err}",
        out.status
    );
    let body = err.strip_suffix('\n').unwrap_or(&err);
    assert!(
        !body.is_empty() && !body.contains('\n'),
        "{cmd:?}: stderr is not one line:\n{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{cmd:?} took {:?}",
        start.elapsed()
    );
    body.to_string()
}

fn inspect(image: &Path) -> Command {
    let mut cmd = pideploy();
    cmd.arg("inspect").arg(image);
    cmd
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn inspect_refuses_each_hostile_partition_table_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "gpt-last-before-first.img",
            gpt_disk(3000, 2048, 128),
            "before it starts",
        ),
        (
            "gpt-last-max.img",
            gpt_disk(2048, u64::MAX, 128),
            "past the end",
        ),
        (
            "gpt-huge-first.img",
            gpt_disk(u64::MAX - 5, u64::MAX, 128),
            "past the end",
        ),
        (
            "gpt-entry-size-64.img",
            gpt_disk(2048, 3000, 64),
            "entry size 64",
        ),
        (
            "gpt-entry-size-0.img",
            gpt_disk(2048, 3000, 0),
            "entry size 0",
        ),
    ];
    for (name, bytes, want) in cases {
        let img = write(dir.path(), name, &bytes);
        let line = one_error_line(&mut inspect(&img));
        assert!(line.contains(want), "{name}: {line}");
    }
    let mbr0 = dir.path().join("mbr-lba0.img");
    mbr_disk(&mbr0, 4096, &[(0x0c, 0, 100)]);
    let line = one_error_line(&mut inspect(&mbr0));
    assert!(line.contains("starts at sector 0"), "{line}");
}

#[test]
fn inspect_refuses_hostile_fat_volumes_in_one_line() {
    let dir = tempfile::tempdir().unwrap();

    // A boot sector asking for an 8 TiB FAT.
    let huge = dir.path().join("fat-huge-fat.img");
    let (f, boot) = fat_image(&huge, &[]);
    f.write_all_at(&4096u16.to_le_bytes(), boot + 11).unwrap();
    f.write_all_at(&u32::MAX.to_le_bytes(), boot + 32).unwrap();
    f.write_all_at(&0x7FFF_0000u32.to_le_bytes(), boot + 36)
        .unwrap();
    let line = one_error_line(&mut inspect(&huge));
    assert!(line.contains("volume holds only"), "{line}");

    // A root directory whose cluster chain runs through the whole volume.
    let chain = dir.path().join("fat-long-chain.img");
    let (f, boot) = fat_image(&chain, &[]);
    let mut bs = [0u8; 512];
    f.read_exact_at(&mut bs, boot).unwrap();
    let bps = u64::from(u16::from_le_bytes([bs[11], bs[12]]));
    let fat = boot + u64::from(u16::from_le_bytes([bs[14], bs[15]])) * bps;
    let total = u64::from(u32::from_le_bytes(bs[32..36].try_into().unwrap()));
    let links: Vec<u8> = (2..total / 2)
        .flat_map(|c| (c as u32 + 1).to_le_bytes())
        .collect();
    f.write_all_at(&links, fat + 8).unwrap();
    let line = one_error_line(&mut inspect(&chain));
    assert!(line.contains("65536 entries"), "{line}");
}

#[test]
fn inspect_lists_five_thousand_boot_files_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("many.img");
    let files: Vec<(String, Vec<u8>)> = (0..5000)
        .map(|i| (format!("overlay-{i:04}.dtbo"), vec![b'x'; i % 7]))
        .collect();
    fat_image(&img, &files);
    let start = Instant::now();
    let out = pideploy()
        .arg("inspect")
        .arg(&img)
        .arg("--json")
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["boot_files"].as_array().unwrap().len(), 5000);
    // It took 49 s when every file was looked up from the root again.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn flash_refuses_a_malformed_bmap_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "a.img", &vec![1u8; 8192]);
    let target = write(dir.path(), "target.bin", &[]);
    let mut bmap = String::from(
        "<bmap version=\"2.0\"><ImageSize> 8192 </ImageSize><BlockSize> 4096 </BlockSize>\
         <BlocksCount> 2 </BlocksCount><MappedBlocksCount> 1 </MappedBlocksCount>\
         <ChecksumType> sha256 </ChecksumType><BmapFileChecksum> ",
    );
    let tail = format!(
        " </BmapFileChecksum><BlockMap><Range chksum=\"{}\"> 1-0 </Range></BlockMap></bmap>\n",
        "a".repeat(64)
    );
    let zeroed = format!("{bmap}{}{tail}", "0".repeat(64));
    bmap.push_str(&pideploy_imageio::Sha256::of(zeroed.as_bytes()).to_string());
    bmap.push_str(&tail);
    write(dir.path(), "a.img.bmap", bmap.as_bytes());
    let line = one_error_line(pideploy().arg("flash").arg(&img).arg(&target).arg("--yes"));
    assert!(line.contains("range 1-0"), "{line}");
}

#[test]
fn lock_and_cache_import_refuse_dev_zero_in_one_line() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let pd = || {
        let mut cmd = pideploy();
        common::env_for(&mut cmd, &dir.join("cache"), &dir.join("store")).current_dir(dir);
        cmd
    };
    assert!(pd()
        .args(["init", "pi.toml"])
        .output()
        .unwrap()
        .status
        .success());
    let line = one_error_line(pd().args([
        "lock",
        "-c",
        "pi.toml",
        "-b",
        "qemu-aarch64",
        "--index=debian=/dev/zero",
        "--index=debian-security=/dev/zero",
    ]));
    assert!(line.contains("not a regular file"), "{line}");
    let line = one_error_line(pd().args(["cache", "import", "/dev/zero"]));
    assert!(line.contains("not a regular file"), "{line}");
}
