//! Facts about a flash target, and the pure decision whether writing to it is safe.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::error::IoError;

/// What was observed about a flash target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The target as given.
    pub path: PathBuf,
    /// A block device (otherwise a regular file).
    pub is_block_device: bool,
    /// Mounts and swaps on the device or its partitions: "SOURCE on MOUNTPOINT" or "SOURCE as swap".
    pub mounted_partitions: Vec<String>,
    /// The device (or a partition of it) holds this computer's `/`.
    pub holds_root: bool,
    /// sysfs `removable` of the disk; `None` when unknown (and for files).
    pub removable: Option<bool>,
    /// Size in bytes; `None` for files (they grow) or when unknown.
    pub size: Option<u64>,
    /// For a regular file: the loop devices attached to it, each with its mounts
    /// ("/dev/loop3 (mounted on /mnt/a)"). Linux only; empty elsewhere.
    pub loop_devices: Vec<String>,
}

/// Observes `dev`: `stat`, `/proc/self/mounts`, `/proc/swaps` and `/sys/class/block/<name>/`.
///
/// A missing path, a directory or a character device is an error here already.
pub fn device_facts(dev: &Path) -> Result<DeviceFacts, IoError> {
    let meta = match fs::metadata(dev) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IoError::TargetMissing {
                path: dev.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(IoError::io(format!("looking at the flash target {dev:?}"))(
                e,
            ))
        }
    };
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(DeviceFacts {
            path: dev.to_path_buf(),
            is_block_device: false,
            mounted_partitions: Vec::new(),
            holds_root: false,
            removable: None,
            size: None,
            loop_devices: crate::loops::loops_backed_by(&meta),
        });
    }
    if !ft.is_block_device() {
        let kind = if ft.is_dir() {
            "a directory"
        } else if ft.is_char_device() {
            "a character device"
        } else {
            "a special file"
        };
        return Err(IoError::TargetWrongType {
            path: dev.to_path_buf(),
            kind,
        });
    }
    let real = fs::canonicalize(dev)
        .map_err(IoError::io(format!("resolving the flash target {dev:?}")))?;
    let name = real
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let sys = Path::new("/sys/class/block").join(&name);
    let names = related_names(&sys, &name);
    let mounts = fs::read_to_string("/proc/self/mounts").map_err(IoError::io(
        "reading /proc/self/mounts to see what is mounted",
    ))?;
    // /proc/swaps may be absent (no swap support); that only means nothing is swapped on.
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    let resolve = |source: &str| -> Option<String> {
        let p = fs::canonicalize(source).ok()?;
        Some(p.file_name()?.to_str()?.to_string())
    };
    let (mounted_partitions, holds_root) = usage(&mounts, &swaps, &names, resolve);
    let read_num = |p: PathBuf| -> Option<u64> { fs::read_to_string(p).ok()?.trim().parse().ok() };
    // Partitions have no `removable`; their disk (the parent directory in sysfs) does.
    let removable = read_num(sys.join("removable"))
        .or_else(|| read_num(fs::canonicalize(&sys).ok()?.parent()?.join("removable")))
        .map(|v| v != 0);
    let size = read_num(sys.join("size")).map(|sectors| sectors * 512);
    Ok(DeviceFacts {
        path: dev.to_path_buf(),
        is_block_device: true,
        mounted_partitions,
        holds_root,
        removable,
        size,
        loop_devices: Vec::new(),
    })
}

/// The kernel names that stand for this disk: itself, its partitions, and what sits on them
/// (device-mapper, md), found through sysfs `holders/`.
fn related_names(sys: &Path, name: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::from([name.to_string()]);
    let mut todo = vec![sys.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let child = e.file_name().to_string_lossy().into_owned();
            if p.join("partition").exists() && names.insert(child) {
                todo.push(p);
            }
        }
        if let Ok(holders) = fs::read_dir(dir.join("holders")) {
            for h in holders.flatten() {
                let holder = h.file_name().to_string_lossy().into_owned();
                if names.insert(holder.clone()) {
                    todo.push(Path::new("/sys/class/block").join(holder));
                }
            }
        }
    }
    names
}

/// Pure: which mounts (from `/proc/self/mounts` text) and swaps (from `/proc/swaps` text) use
/// one of `names`, and whether one of them is `/`. `resolve` maps a source path to a kernel name.
pub(crate) fn usage(
    mounts: &str,
    swaps: &str,
    names: &BTreeSet<String>,
    resolve: impl Fn(&str) -> Option<String>,
) -> (Vec<String>, bool) {
    let ours = |source: &str| {
        source.starts_with('/') && resolve(source).is_some_and(|n| names.contains(&n))
    };
    let mut used = Vec::new();
    let mut root = false;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(source), Some(target)) = (f.next(), f.next()) else {
            continue;
        };
        let (source, target) = (unescape(source), unescape(target));
        if ours(&source) {
            root |= target == "/";
            used.push(format!("{source} on {target}"));
        }
    }
    for line in swaps.lines().skip(1) {
        if let Some(source) = line.split_whitespace().next() {
            let source = unescape(source);
            if ours(&source) {
                used.push(format!("{source} as swap"));
            }
        }
    }
    (used, root)
}

/// Undoes the kernel's octal escapes in mount fields (`\040` is a space).
pub(crate) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decides, from observed facts only, whether `image_size` bytes may be written to the target.
///
/// Refuses, in this order: a disk holding this computer's `/`; a device with mounted
/// partitions (naming them); a file attached to a loop device (even unmounted: the loop device
/// may be mounted later, and nobody attaches a file they mean to overwrite); a block device not
/// known to be removable unless `force`; a device smaller than the image. Any other regular
/// file is allowed (that is how flashing is tested).
pub fn check_target(f: &DeviceFacts, image_size: u64, force: bool) -> Result<(), IoError> {
    let path = f.path.clone();
    if f.holds_root {
        return Err(IoError::TargetHoldsRoot { path });
    }
    if !f.mounted_partitions.is_empty() {
        return Err(IoError::TargetMounted {
            path,
            mounts: f.mounted_partitions.clone(),
        });
    }
    if !f.loop_devices.is_empty() {
        return Err(IoError::TargetBacksLoop {
            path,
            loops: f.loop_devices.clone(),
        });
    }
    if f.is_block_device && f.removable != Some(true) && !force {
        return Err(IoError::TargetNotRemovable {
            path,
            removable: f.removable,
        });
    }
    if let Some(size) = f.size.filter(|&s| s < image_size) {
        return Err(IoError::TargetTooSmall {
            path,
            size,
            image_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn facts(
        block: bool,
        mounts: &[&str],
        root: bool,
        removable: Option<bool>,
        size: Option<u64>,
    ) -> DeviceFacts {
        DeviceFacts {
            path: PathBuf::from("/dev/sdz"),
            is_block_device: block,
            mounted_partitions: mounts.iter().map(|s| s.to_string()).collect(),
            holds_root: root,
            removable,
            size,
            loop_devices: Vec::new(),
        }
    }

    #[rstest]
    #[case::removable_card(facts(true, &[], false, Some(true), Some(32 << 30)), false, None)]
    #[case::regular_file(facts(false, &[], false, None, None), false, None)]
    #[case::mounted(facts(true, &["/dev/sdz1 on /media/boot"], false, Some(true), Some(32 << 30)), false, Some("unmount them first"))]
    #[case::mounted_even_forced(facts(true, &["/dev/sdz2 as swap"], false, Some(true), None), true, Some("/dev/sdz2 as swap"))]
    #[case::root_disk(facts(true, &["/dev/sdz2 on /"], true, Some(false), None), true, Some("root file system"))]
    #[case::fixed_disk(facts(true, &[], false, Some(false), Some(1 << 40)), false, Some("--force"))]
    #[case::unknown_removable(facts(true, &[], false, None, Some(1 << 40)), false, Some("--force"))]
    #[case::fixed_disk_forced(facts(true, &[], false, Some(false), Some(1 << 40)), true, None)]
    #[case::too_small(facts(true, &[], false, Some(true), Some(1 << 20)), false, Some("use a card of at least"))]
    #[case::too_small_forced(facts(true, &[], false, Some(false), Some(1 << 20)), true, Some("needs"))]
    #[case::exact_fit(facts(true, &[], false, Some(true), Some(8 << 20)), false, None)]
    fn rules(#[case] f: DeviceFacts, #[case] force: bool, #[case] refusal: Option<&str>) {
        let r = check_target(&f, 8 << 20, force);
        match refusal {
            None => r.unwrap(),
            Some(words) => {
                let msg = r.unwrap_err().to_string();
                assert!(msg.contains(words), "{msg:?} should contain {words:?}");
                assert!(msg.contains("/dev/sdz"), "{msg}");
            }
        }
    }

    #[test]
    fn mount_table_matching() {
        let mounts = "/dev/sda2 / ext4 rw 0 0\n\
                      /dev/disk/by-label/PI\\040BOOT /media/u/PI\\040BOOT vfat rw 0 0\n\
                      /dev/mapper/crypt /home ext4 rw 0 0\n\
                      tmpfs /tmp tmpfs rw 0 0\n\
                      /dev/sdb1 /mnt ext4 rw 0 0\n";
        let swaps = "Filename Type Size Used Priority\n/dev/sdc3 partition 1 0 -2\n";
        let resolve = |s: &str| -> Option<String> {
            Some(
                match s {
                    "/dev/disk/by-label/PI BOOT" => "sdc1",
                    "/dev/mapper/crypt" => "dm-0",
                    other => other.strip_prefix("/dev/")?,
                }
                .to_string(),
            )
        };
        let card: BTreeSet<String> = ["sdc", "sdc1", "sdc3", "dm-0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (used, root) = usage(mounts, swaps, &card, resolve);
        assert_eq!(
            used,
            vec![
                "/dev/disk/by-label/PI BOOT on /media/u/PI BOOT",
                "/dev/mapper/crypt on /home",
                "/dev/sdc3 as swap"
            ]
        );
        assert!(!root);
        let system: BTreeSet<String> = ["sda", "sda1", "sda2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (used, root) = usage(mounts, swaps, &system, resolve);
        assert_eq!(used, vec!["/dev/sda2 on /"]);
        assert!(root);
    }

    #[test]
    fn facts_of_files_and_others() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("card.img");
        assert!(matches!(
            device_facts(&file),
            Err(IoError::TargetMissing { .. })
        ));
        fs::write(&file, b"x").unwrap();
        let f = device_facts(&file).unwrap();
        assert!(!f.is_block_device && f.mounted_partitions.is_empty() && f.size.is_none());
        assert!(matches!(
            device_facts(dir.path()),
            Err(IoError::TargetWrongType {
                kind: "a directory",
                ..
            })
        ));
        assert!(matches!(
            device_facts(Path::new("/dev/null")),
            Err(IoError::TargetWrongType {
                kind: "a character device",
                ..
            })
        ));
    }

    #[test]
    fn facts_of_the_root_disk() {
        // The disk under `/` on this machine must be seen as holding root (skipped where `/`
        // is not on a block device, e.g. in some containers).
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        let Some(src) = mounts.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            let (s, t) = (f.next()?, f.next()?);
            (t == "/" && s.starts_with("/dev/")).then(|| s.to_string())
        }) else {
            return;
        };
        let Ok(meta) = fs::metadata(&src) else { return };
        if !meta.file_type().is_block_device() {
            return;
        }
        let f = device_facts(Path::new(&src)).unwrap();
        assert!(f.holds_root, "{f:?}");
        assert!(f.size.is_some_and(|s| s > 0), "{f:?}");
        assert!(check_target(&f, 1, true)
            .unwrap_err()
            .to_string()
            .contains("root file system"));
    }
}
