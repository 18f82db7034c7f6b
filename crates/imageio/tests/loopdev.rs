//! Flashing a real block device: a loop device over a file (needs root and loop support; the
//! test says so and returns early where `losetup` is refused).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use pideploy_imageio::{
    bmap_from_raw, check_target, device_facts, flash, write_output, Compression, IoError, Sha256,
};

/// A loop device, detached on drop.
struct Loop(PathBuf);

impl Loop {
    fn attach(backing: &Path) -> Option<Loop> {
        let out = Command::new("losetup")
            .arg("-f")
            .arg("--show")
            .arg(backing)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: losetup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Loop(PathBuf::from(
            String::from_utf8(out.stdout).ok()?.trim(),
        )))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn image(dir: &Path) -> PathBuf {
    let mut v = vec![0u8; 5 << 20];
    v[..100_000]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i % 255) as u8 + 1);
    v[3 << 20..(3 << 20) + 4096].fill(0x42);
    let p = dir.join("pi.img");
    File::create(&p).unwrap().write_all(&v).unwrap();
    p
}

#[test]
fn flash_to_a_block_device() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("disk");
    fs::write(&backing, vec![0xFFu8; 8 << 20]).unwrap();
    let Some(dev) = Loop::attach(&backing) else {
        return;
    };
    let raw = image(dir.path());
    let want = fs::read(&raw).unwrap();
    let zst = dir.path().join("pi.img.zst");
    write_output(&raw, &zst, Compression::Zstd, 2, &mut |_, _| {}).unwrap();

    let facts = device_facts(&dev.0).unwrap();
    assert!(
        facts.is_block_device && facts.mounted_partitions.is_empty() && !facts.holds_root,
        "{facts:?}"
    );
    assert_eq!(facts.size, Some(8 << 20));
    assert_eq!(facts.removable, Some(false));
    let e = check_target(&facts, want.len() as u64, false).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    check_target(&facts, want.len() as u64, true).unwrap();
    assert!(matches!(
        check_target(&facts, 9 << 20, true),
        Err(IoError::TargetTooSmall { .. })
    ));

    // Without a bmap every byte is written, zeros included; the rest of the device is untouched.
    let s = flash(&zst, None, &dev.0, &mut |_, _| {}).unwrap();
    assert_eq!(s.bytes_written, want.len() as u64);
    let disk = fs::read(&backing).unwrap();
    assert_eq!(Sha256::of(&disk[..want.len()]), Sha256::of(&want));
    assert!(disk[want.len()..].iter().all(|&b| b == 0xFF));

    // With a bmap, holes are skipped: on a fresh 0xFF device they keep the old bytes.
    fs::write(&backing, vec![0xFFu8; 8 << 20]).unwrap();
    let _ = Command::new("blockdev")
        .arg("--flushbufs")
        .arg(&dev.0)
        .status();
    let bmap = bmap_from_raw(&raw).unwrap();
    let s = flash(&zst, Some(&bmap), &dev.0, &mut |_, _| {}).unwrap();
    assert_eq!(
        s.bytes_written,
        (bmap.mapped_blocks() * 4096).min(want.len() as u64)
    );
    assert_eq!(s.bytes_verified, s.bytes_written);
    let disk = fs::read(&backing).unwrap();
    for r in &bmap.ranges {
        let (a, b) = bmap.range_bytes(r);
        assert_eq!(disk[a as usize..b as usize], want[a as usize..b as usize]);
    }
    assert_eq!(disk[1 << 20], 0xFF, "a hole was not written");

    // Mounted: the facts name the mount and the kernel refuses exclusive access.
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mkfs = Command::new("mkfs.ext4")
        .arg("-q")
        .arg("-F")
        .arg(&dev.0)
        .status();
    let mounted = mkfs.is_ok_and(|s| s.success())
        && Command::new("mount")
            .arg(&dev.0)
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped the mounted case: mkfs.ext4 or mount failed");
        return;
    }
    let facts = device_facts(&dev.0);
    let busy = flash(&zst, None, &dev.0, &mut |_, _| {});
    let _ = Command::new("umount").arg(&mnt).status();
    let facts = facts.unwrap();
    assert_eq!(
        facts.mounted_partitions,
        vec![format!("{} on {}", dev.0.display(), mnt.display())]
    );
    let e = check_target(&facts, 1, true).unwrap_err();
    assert!(e.to_string().contains("unmount them first"), "{e}");
    assert!(matches!(busy, Err(IoError::TargetBusy { .. })), "{busy:?}");
}
