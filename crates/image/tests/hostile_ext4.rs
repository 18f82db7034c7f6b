//! A root file system damaged at random, read through `ImageReader` as `inspect` reads it: an
//! error or a result, never a panic, each in bounded time. The ext4 volume is made by the real
//! `mke2fs -d`, as images are.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::{Duration, Instant};

use pideploy_image::ImageReader;

const SECTOR: u64 = 512;

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn mutated_root_file_systems_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let valid = tree.join("pideploy/var/db/valid");
    let profiles = tree.join("pideploy/var/profiles");
    std::fs::create_dir_all(&valid).unwrap();
    std::fs::create_dir_all(&profiles).unwrap();
    for i in 0..30 {
        std::fs::write(valid.join(format!("p{i}")), format!("NarSize: {i}\n")).unwrap();
    }
    std::os::unix::fs::symlink("system-1-link", profiles.join("system")).unwrap();
    std::os::unix::fs::symlink("/pideploy/store/x", profiles.join("system-1-link")).unwrap();

    let ext4 = dir.path().join("root.ext4");
    let out = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "1024", "-d"])
        .arg(&tree)
        .arg(&ext4)
        .arg("4M")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .expect("mke2fs (e2fsprogs) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fs_bytes = std::fs::read(&ext4).unwrap();
    let fs_sectors = fs_bytes.len() as u64 / SECTOR;

    // MBR: a placeholder partition 1 and the ext4 volume as partition 2.
    let img = dir.path().join("disk.img");
    let root_at = 4096 * SECTOR;
    {
        let f = File::create(&img).unwrap();
        f.set_len(root_at + fs_bytes.len() as u64).unwrap();
        let mut s = [0u8; 512];
        for (i, (sys, start, size)) in [(0x0cu8, 2048u32, 2048u32), (0x83, 4096, fs_sectors as u32)]
            .into_iter()
            .enumerate()
        {
            s[446 + 16 * i + 4] = sys;
            s[446 + 16 * i + 8..446 + 16 * i + 12].copy_from_slice(&start.to_le_bytes());
            s[446 + 16 * i + 12..446 + 16 * i + 16].copy_from_slice(&size.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        f.write_all_at(&s, 0).unwrap();
        f.write_all_at(&fs_bytes, root_at).unwrap();
    }
    let r = ImageReader::open(&img).unwrap();
    assert_eq!(
        r.root_read_files("/pideploy/var/db/valid", 1 << 20)
            .unwrap()
            .len(),
        30
    );

    // Damage lands in the metadata: superblock, group descriptors, bitmaps, inode table and
    // the first directory blocks all live in the first 64 KiB of this small volume.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let mut rng = Rng(0x0E47);
    let mut ok = 0;
    for _ in 0..300 {
        let mut undo = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let at = root_at + 1024 + rng.below(64 * 1024);
            let mut old = [0u8];
            f.read_exact_at(&mut old, at).unwrap();
            undo.push((at, old[0]));
            let new = match rng.below(3) {
                0 => 0xFF,
                1 => old[0] ^ (1 << rng.below(8)),
                _ => rng.next() as u8,
            };
            f.write_all_at(&[new], at).unwrap();
        }
        let start = Instant::now();
        if let Ok(r) = ImageReader::open(&img) {
            let listed = r.root_read_files("/pideploy/var/db/valid", 1 << 20);
            ok += usize::from(listed.is_ok());
            let _ = r.root_list_dir("/pideploy/var/profiles");
            let _ = r.root_read_link("/pideploy/var/profiles/system");
            let _ = r.root_metadata("/pideploy/var/db/valid/p3");
        }
        assert!(start.elapsed() < Duration::from_secs(2), "{undo:?}");
        for (at, old) in undo.into_iter().rev() {
            f.write_all_at(&[old], at).unwrap();
        }
    }
    assert!(ok > 0);
}
