//! The QEMU harness's boot source on hostile images: one `BootSourceError`, never a panic, for
//! a damaged partition table or FAT boot sector (the firmware would refuse them too).

use std::fs::File;
use std::os::unix::fs::FileExt;

use pideploy_fat32::FatBuilder;
use pideploy_qemu::{BootSource, BootSourceError};

const SECTOR: u64 = 512;

/// An MBR image with a FAT32 boot partition at LBA 2048 holding `config.txt`.
fn image(path: &std::path::Path) -> File {
    let size = FatBuilder::min_size_bytes();
    let mut b = FatBuilder::new(size, 3, "BOOT", 2048).unwrap();
    b.add_file("config.txt", b"arm_64bit=1\n".to_vec()).unwrap();
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    let sectors = size / SECTOR;
    f.set_len((2048 + sectors) * SECTOR).unwrap();
    let mut s = [0u8; 512];
    s[446 + 4] = 0x0c;
    s[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    s[446 + 12..446 + 16].copy_from_slice(&(sectors as u32).to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xAA;
    f.write_all_at(&s, 0).unwrap();
    let mut w = pideploy_image::Window::new(f.try_clone().unwrap(), 2048 * SECTOR, size);
    b.write(&mut w).unwrap();
    f
}

fn snapshot_error(path: &std::path::Path) -> String {
    match BootSource::Image(path.to_path_buf()).snapshot() {
        Err(e @ BootSourceError::Image { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(_) => panic!("a hostile image was accepted"),
    }
}

#[test]
fn a_good_image_reads_and_hostile_ones_are_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let f = image(&path);
    let files = BootSource::Image(path.clone()).snapshot().unwrap();
    assert_eq!(files.read("config.txt").unwrap().unwrap(), b"arm_64bit=1\n");

    // The boot partition starts at LBA 0 (an unwrap in the MBR crate before).
    f.write_all_at(&0u32.to_le_bytes(), 446 + 8).unwrap();
    let e = snapshot_error(&path);
    assert!(e.contains("sector 0"), "{e}");
    f.write_all_at(&2048u32.to_le_bytes(), 446 + 8).unwrap();

    // A boot sector asking for an 8 TiB FAT.
    let boot = 2048 * SECTOR;
    f.write_all_at(&4096u16.to_le_bytes(), boot + 11).unwrap();
    f.write_all_at(&u32::MAX.to_le_bytes(), boot + 32).unwrap();
    f.write_all_at(&0x7FFF_0000u32.to_le_bytes(), boot + 36)
        .unwrap();
    let e = snapshot_error(&path);
    assert!(e.contains("volume holds only"), "{e}");
}
