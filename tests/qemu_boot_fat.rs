//! The boot FAT is checked and repaired before it is mounted writable (issue 11, point 5): an image
//! whose boot FAT has a lost cluster chain (a free cluster marked allocated in both FATs, as a
//! power cut while a boot entry was written leaves it) boots, the boot tasks' `fsck.fat -a`
//! reclaims it, and afterwards the host's `fsck.fat -n` finds the FAT clean. The Linux vfat driver
//! would mount it as it is and leave the chain lost.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::guest::Guest;
use common::*;

/// FAT32 geometry from the boot sector: (bytes per sector, reserved sectors, FAT count, sectors per FAT).
fn geometry(part: &[u8]) -> (usize, usize, usize, usize) {
    let u16at = |o: usize| u16::from_le_bytes([part[o], part[o + 1]]) as usize;
    let u32at = |o: usize| u32::from_le_bytes(part[o..o + 4].try_into().unwrap()) as usize;
    (u16at(11), u16at(14), part[16] as usize, u32at(36))
}

/// Marks the last free cluster as end-of-chain in every FAT copy; returns its number.
fn lose_a_cluster(part: &mut [u8]) -> usize {
    let (bps, reserved, fats, fat_sectors) = geometry(part);
    let fat_bytes = fat_sectors * bps;
    let first = reserved * bps;
    let entry = |part: &[u8], n: usize| {
        let o = first + n * 4;
        u32::from_le_bytes(part[o..o + 4].try_into().unwrap()) & 0x0fff_ffff
    };
    // Not the very last entry of the FAT (it may lie past the data area): one well inside.
    let entries = fat_bytes / 4;
    let cluster = (2..entries / 2)
        .rev()
        .find(|&n| entry(part, n) == 0)
        .expect("a free cluster in the boot FAT");
    for f in 0..fats {
        let o = first + f * fat_bytes + cluster * 4;
        part[o..o + 4].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
    }
    cluster
}

fn fsck_n(part: &Path) -> (i32, String) {
    let out = Command::new("fsck.fat")
        .arg("-n")
        .arg(part)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_lost_cluster_chain_in_the_boot_fat_is_repaired_at_boot() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let (key, public) = keypair(w);
    let config = w.join("pi.toml");
    fs::write(
        &config,
        format!(
            "board = \"qemu-aarch64\"\nhostname = \"fatfix\"\n\n[[users]]\nname = \"pi\"\n\
             uid = 1000\nsudo = true\nssh_authorized_keys = [\"{public}\"]\n"
        ),
    )
    .unwrap();
    let image = w.join("pi.img");
    build_image_in(w, &config, &image);

    let parts = partitions(&image);
    let (start, len) = (parts[0].0, parts[0].1);
    let part = w.join("boot.part");
    extract(&image, start, len, &part);
    assert_eq!(fsck_n(&part).0, 0, "a new image's FAT is clean");
    let mut bytes = fs::read(&part).unwrap();
    let cluster = lose_a_cluster(&mut bytes);
    fs::write(&part, &bytes).unwrap();
    let (code, report) = fsck_n(&part);
    assert_eq!(code, 1, "cluster {cluster} is now lost: {report}");
    run(Command::new("dd")
        .arg(format!("if={}", part.display()))
        .arg(format!("of={}", image.display()))
        .args(["bs=512", "conv=notrunc", "status=none"])
        .arg(format!("seek={start}")));

    let mut vm = Guest::start(&image, w.join("console.log"), Duration::from_secs(240), 3);
    let console = vm.wait_for("PIDEPLOY-READY", Duration::from_secs(200));
    let line = console
        .lines()
        .find(|l| l.contains("boot FAT on"))
        .unwrap_or_else(|| panic!("no fsck line on the console: {console}"));
    assert!(
        line.contains("repaired by fsck.fat -a") && line.contains("Reclaimed"),
        "{line}"
    );
    assert!(console.contains("boot partition /dev/vda1 on /boot/firmware"));
    // A clean power-off unmounts the FAT, which clears the dirty bit the mount set.
    vm.power_off(&vm.known_hosts(w), &key, "pi");

    extract(&image, start, len, &part);
    let (code, report) = fsck_n(&part);
    assert_eq!(code, 0, "the boot FAT is clean after the boot: {report}");
}
