//! Pins the owner (0:0) and every time field of each used inode of a freshly made ext4 filesystem
//! by rewriting the inode tables in place: what a `debugfs set_inode_field` per path and field
//! did, without resolving a path six times per inode (that took seconds for a Debian closure).
//!
//! Layout facts from the kernel's ext4 documentation (Documentation/filesystems/ext4/:
//! super.rst, group_descr.rst, inodes.rst, checksums.rst). Only what mke2fs made a moment ago is
//! read, but every offset is still checked against the filesystem's own size.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::error::ImageError;

const EXT4_MAGIC: u16 = 0xEF53;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const BG_INODE_UNINIT: u16 = 0x1;
const ROOT_INO: u64 = 2;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// CRC32C (Castagnoli, reflected 0x82F63B78) without the final inversion, as ext4 chains it.
fn crc32c_raw(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Seconds since the epoch as ext4 stores them: the low 32 bits in the base field, bits 32-33 in
/// the `_extra` field's epoch bits (nanoseconds 0).
fn split_time(t: u64) -> (u32, u32) {
    let t = t as i64;
    let lo = t as i32;
    let epoch = ((t - i64::from(lo)) >> 32) as u32 & 3;
    (lo as u32, epoch)
}

fn bad(what: &str) -> ImageError {
    ImageError::Io {
        context: "pinning the root filesystem's owners and times".into(),
        source: io::Error::other(what.to_string()),
    }
}

/// Gives every used inode from `first_ino` on, and the root directory, uid 0, gid 0 and
/// `timestamp` as access, change, modification and creation time (nanoseconds 0), and recomputes
/// each inode's checksum. `fs_offset` is where the filesystem starts in `file`.
pub(crate) fn pin_inodes(file: &File, fs_offset: u64, timestamp: u64) -> Result<u64, ImageError> {
    let io_err = |source: io::Error| ImageError::Io {
        context: "pinning the root filesystem's owners and times".into(),
        source,
    };
    let mut sb = [0u8; 1024];
    file.read_exact_at(&mut sb, fs_offset + 1024)
        .map_err(io_err)?;
    if le16(&sb, 0x38) != EXT4_MAGIC {
        return Err(bad("no ext4 superblock where mke2fs wrote one"));
    }
    let inodes_count = u64::from(le32(&sb, 0x0));
    let log_block = le32(&sb, 0x18);
    if log_block > 6 {
        return Err(bad("implausible block size"));
    }
    let block = 1024u64 << log_block;
    let first_data_block = u64::from(le32(&sb, 0x14));
    let per_group = u64::from(le32(&sb, 0x28));
    let first_ino = u64::from(le32(&sb, 0x54));
    let inode_size = usize::from(le16(&sb, 0x58));
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    let desc_size = if incompat & INCOMPAT_64BIT != 0 {
        usize::from(le16(&sb, 0xFE))
    } else {
        32
    };
    if per_group == 0
        || per_group > block * 8
        || !(128..=block as usize).contains(&inode_size)
        || !(32..=1024).contains(&desc_size)
    {
        return Err(bad("implausible superblock fields"));
    }
    let csum = ro_compat & RO_COMPAT_METADATA_CSUM != 0;
    let seed = if incompat & INCOMPAT_CSUM_SEED != 0 {
        le32(&sb, 0x270)
    } else {
        crc32c_raw(!0, &sb[0x68..0x78])
    };
    let groups = inodes_count.div_ceil(per_group);
    let mut descs = vec![0u8; groups as usize * desc_size];
    file.read_exact_at(&mut descs, fs_offset + (first_data_block + 1) * block)
        .map_err(io_err)?;
    let (t, epoch) = split_time(timestamp);
    let mut bitmap = vec![0u8; block as usize];
    let mut table = vec![0u8; per_group as usize * inode_size];
    let mut pinned = 0;
    for g in 0..groups {
        let d = &descs[g as usize * desc_size..][..desc_size];
        let hi = |at: usize| {
            if desc_size >= 64 {
                u64::from(le32(d, at)) << 32
            } else {
                0
            }
        };
        if le16(d, 0x12) & BG_INODE_UNINIT != 0 {
            continue;
        }
        let bitmap_at = u64::from(le32(d, 0x4)) | hi(0x24);
        let table_at = u64::from(le32(d, 0x8)) | hi(0x28);
        file.read_exact_at(&mut bitmap, fs_offset + bitmap_at * block)
            .map_err(io_err)?;
        file.read_exact_at(&mut table, fs_offset + table_at * block)
            .map_err(io_err)?;
        let mut changed = false;
        for i in 0..per_group {
            let ino = g * per_group + i + 1;
            let used = bitmap[(i / 8) as usize] & (1 << (i % 8)) != 0;
            if !used || (ino < first_ino && ino != ROOT_INO) {
                continue;
            }
            let raw = &mut table[i as usize * inode_size..][..inode_size];
            pin_one(raw, ino as u32, t, epoch, csum.then_some(seed));
            changed = true;
            pinned += 1;
        }
        if changed {
            file.write_all_at(&table, fs_offset + table_at * block)
                .map_err(io_err)?;
        }
    }
    Ok(pinned)
}

/// One inode (`raw`, the whole on-disk record).
fn pin_one(raw: &mut [u8], ino: u32, t: u32, epoch: u32, seed: Option<u32>) {
    put16(raw, 0x2, 0); // i_uid
    put16(raw, 0x18, 0); // i_gid
    put16(raw, 0x78, 0); // l_i_uid_high
    put16(raw, 0x7A, 0); // l_i_gid_high
    put32(raw, 0x8, t); // i_atime
    put32(raw, 0xC, t); // i_ctime
    put32(raw, 0x10, t); // i_mtime
                         // The large inode's extra fields, as far as i_extra_isize says they exist.
    let extra_end = if raw.len() > 128 {
        (128 + usize::from(le16(raw, 0x80))).min(raw.len())
    } else {
        128
    };
    for at in [0x84, 0x88, 0x8C, 0x94] {
        // i_ctime_extra, i_mtime_extra, i_atime_extra, i_crtime_extra
        if at + 4 <= extra_end {
            put32(raw, at, epoch);
        }
    }
    if 0x90 + 4 <= extra_end {
        put32(raw, 0x90, t); // i_crtime
    }
    if let Some(seed) = seed {
        let has_hi = 0x82 + 2 <= extra_end;
        put16(raw, 0x7C, 0);
        if has_hi {
            put16(raw, 0x82, 0);
        }
        let generation = le32(raw, 0x64);
        let mut c = crc32c_raw(seed, &ino.to_le_bytes());
        c = crc32c_raw(c, &generation.to_le_bytes());
        c = crc32c_raw(c, raw);
        put16(raw, 0x7C, c as u16);
        if has_hi {
            put16(raw, 0x82, (c >> 16) as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The catalogue check value of CRC-32C over "123456789" is 0xE3069283 (with the usual
        // initial and final inversion around the raw form ext4 chains).
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
    }

    /// The same bytes as the debugfs pass it replaced: a small tree through `mke2fs -d`, one copy
    /// fixed by `debugfs set_inode_field` per path and field, one pinned here.
    #[test]
    fn pinning_writes_what_debugfs_wrote() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        use std::process::Command;
        let w = tempfile::tempdir().unwrap();
        let tree = w.path().join("tree");
        std::fs::create_dir_all(tree.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
        std::fs::write(tree.join("etc/hostname"), "pi\n").unwrap();
        std::fs::write(tree.join("usr/bin/tool"), vec![7u8; 70_000]).unwrap();
        std::fs::set_permissions(
            tree.join("usr/bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        symlink("../usr/bin/tool", tree.join("etc/link")).unwrap();
        for i in 0..300 {
            std::fs::write(tree.join(format!("etc/ssh/f{i}")), format!("{i}\n")).unwrap();
        }
        let a = w.path().join("a.ext4");
        let status = Command::new(crate::ext4::e2fs_program("mke2fs"))
            .args([
                "-q",
                "-t",
                "ext4",
                "-b",
                "4096",
                "-O",
                "metadata_csum",
                "-d",
            ])
            .arg(&tree)
            .arg(&a)
            .arg("16M")
            .env("E2FSPROGS_FAKE_TIME", "1704067200")
            .status()
            .unwrap();
        assert!(status.success());
        let b = w.path().join("b.ext4");
        std::fs::copy(&a, &b).unwrap();

        let mut paths = crate::ext4::root_inode_paths(&tree).unwrap();
        paths.sort();
        let script = crate::ext4::debugfs_script(&paths, &[], 1_704_067_200);
        let mut child = Command::new(crate::ext4::e2fs_program("debugfs"))
            .args(["-w", "-f", "-"])
            .arg(&a)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());

        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&b)
            .unwrap();
        let pinned = pin_inodes(&f, 0, 1_704_067_200).unwrap();
        assert_eq!(pinned, paths.len() as u64);
        drop(f);
        // Everything but the superblock (16 MiB with 4 KiB blocks: one group, no backups), where
        // debugfs records its own write time and the kilobytes it wrote.
        let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(ba.len(), bb.len());
        let first = (0..ba.len()).find(|&i| !(1024..2048).contains(&i) && ba[i] != bb[i]);
        assert!(first.is_none(), "first difference at byte {first:?}");
        let fsck = Command::new("e2fsck").arg("-fn").arg(&b).output().unwrap();
        assert!(fsck.status.success(), "{fsck:?}");
    }

    #[test]
    fn times_past_2038_use_the_epoch_bits() {
        assert_eq!(split_time(1_704_067_200), (1_704_067_200, 0));
        let (lo, epoch) = split_time(1 << 32);
        assert_eq!((lo, epoch), (0, 1));
        assert_eq!(split_time((1 << 31) + 5), (((1u64 << 31) + 5) as u32, 1));
    }
}
