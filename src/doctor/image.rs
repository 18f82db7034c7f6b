//! `pideploy doctor IMAGE`: what `inspect` reads from an image, linted the way the Pi firmware will
//! meet it — config.txt, the kernel and device tree (or initramfs) of the entry it selects, the
//! command line's `root=` against the root partition, and room on the FAT for more generations.

use std::collections::BTreeMap;
use std::path::Path;

use pideploy_image::{ImageReader, PartitionTable};
use pideploy_qemu::{select, FirmwareError, FirmwareInput, Model};

use super::{human, Check};

/// Why an image could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImageDoctorError {
    /// Opening, decompressing or reading it failed.
    #[error("reading image {path}: {message}")]
    Read {
        /// The image.
        path: String,
        /// What failed.
        message: String,
    },
}

/// What the image holds, as far as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// The partition table.
    pub table: PartitionTable,
    /// Boot partition files (path without leading `/`, lowercase as FAT matches) and contents.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Cluster size of the boot FAT.
    pub cluster_bytes: u64,
    /// Generation numbers registered in the root filesystem.
    pub generations: Vec<u32>,
    /// Where `/pideploy/var/profiles/system` points.
    pub default: Option<String>,
}

fn read_err(path: &Path) -> impl Fn(String) -> ImageDoctorError + '_ {
    move |message| ImageDoctorError::Read {
        path: path.display().to_string(),
        message,
    }
}

/// Reads the image (`.img`, `.img.xz`, `.img.zst`; compressed ones are unpacked into `scratch`).
pub fn gather(image: &Path, scratch: &Path) -> Result<ImageFacts, ImageDoctorError> {
    let err = read_err(image);
    let raw = pideploy_imageio::materialize_raw(image, scratch).map_err(|e| err(e.to_string()))?;
    let mut r = ImageReader::open(&raw).map_err(|e| err(e.to_string()))?;
    let table = r.table().clone();
    let mut files = BTreeMap::new();
    let cluster_bytes;
    {
        let mut fat = r.boot().map_err(|e| err(e.to_string()))?;
        cluster_bytes = fat.cluster_bytes();
        for (path, _) in fat.walk().map_err(|e| err(e.to_string()))? {
            let data = fat.read_file(&path).map_err(|e| err(e.to_string()))?;
            files.insert(path.trim_start_matches('/').to_lowercase(), data);
        }
    }
    let mut generations: Vec<u32> = r
        .root_list_dir("/pideploy/var/profiles")
        .unwrap_or_default()
        .iter()
        .filter_map(|n| {
            n.strip_prefix("system-")?
                .strip_suffix("-link")?
                .parse()
                .ok()
        })
        .collect();
    generations.sort_unstable();
    let default = r.root_read_link("/pideploy/var/profiles/system").ok();
    Ok(ImageFacts {
        table,
        files,
        cluster_bytes,
        generations,
        default,
    })
}

/// The Raspberry Pi 5's kernel file and its device tree (config.txt › Boot options, and the
/// firmware's default `device_tree` for the BCM2712 Model B).
const PI5_KERNEL: &str = "kernel_2712.img";
const PI5_DTB: &str = "bcm2712-rpi-5-b.dtb";

/// `root=` of a kernel command line.
pub fn cmdline_root(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix("root="))
}

/// The verdicts on an image.
pub fn checks(f: &ImageFacts) -> Vec<Check> {
    let mut out = Vec::new();
    let t = &f.table;
    let root_part = t.partition(2);
    if t.partitions.len() < 2 || root_part.is_none() {
        out.push(Check::fail(
            "partitions",
            format!(
                "{:?} table with {} partition(s); a pideploy image has boot (1) and root (2)",
                t.kind,
                t.partitions.len()
            ),
            "rebuild the image with pideploy image",
        ));
    } else {
        out.push(Check::ok(
            "partitions",
            format!(
                "{:?}, disk id {}, {} partitions",
                t.kind,
                t.disk_id,
                t.partitions.len()
            ),
        ));
    }
    let read = |p: &str| {
        f.files
            .get(&p.trim_start_matches('/').to_lowercase())
            .cloned()
    };
    let rebuild = "rebuild the image with `pideploy image` (or deploy a generation again)";
    if read("config.txt").is_none() {
        out.push(Check::fail(
            "config.txt",
            "no config.txt on the boot partition: a Raspberry Pi 5 does not boot without it",
            rebuild,
        ));
        out.extend(room_check(f, None));
        out.push(generations_check(f));
        return out;
    }
    out.push(Check::ok("config.txt", "present"));
    let sel = match select(&FirmwareInput {
        tryboot: false,
        model: Model::Pi5,
        read: &read,
    }) {
        Ok(s) => s,
        Err(e) => {
            // The firmware stops at a missing kernel, command line or initramfs: name that piece.
            let name = match &e {
                FirmwareError::KernelMissing { .. } => "kernel",
                FirmwareError::CmdlineMissing { .. } => "cmdline root",
                FirmwareError::InitramfsMissing { .. } => "initramfs",
                _ => "boot entry",
            };
            out.push(Check::fail(name, e.to_string(), rebuild));
            out.push(generations_check(f));
            return out;
        }
    };
    let exists = |p: &str| read(p).is_some();
    if exists(&sel.kernel) {
        out.push(Check::ok("kernel", sel.kernel.clone()));
    } else {
        out.push(Check::fail(
            "kernel",
            format!(
                "config.txt selects {} (os_prefix {:?}), which is not on the boot partition",
                sel.kernel, sel.os_prefix
            ),
            rebuild,
        ));
    }
    if sel.kernel.ends_with(PI5_KERNEL) {
        let dtb = format!("{}{PI5_DTB}", sel.os_prefix);
        if exists(&dtb) {
            out.push(Check::ok("device tree", dtb));
        } else {
            out.push(Check::fail(
                "device tree",
                format!(
                    "{dtb} is missing: the Pi 5 firmware loads it from the generation's os_prefix"
                ),
                rebuild,
            ));
        }
    } else {
        match &sel.initramfs {
            Some(i) if exists(i) => out.push(Check::ok("initramfs", i.clone())),
            Some(i) => out.push(Check::fail("initramfs", format!("{i} is missing"), rebuild)),
            None => out.push(Check::fail(
                "initramfs",
                format!("{} is not a Pi 5 kernel, and config.txt loads no initramfs for it (the qemu-aarch64 board needs one)", sel.kernel),
                rebuild,
            )),
        }
    }
    out.push(root_check(
        &sel.cmdline_file,
        &sel.cmdline,
        root_part.map(|p| p.partuuid.as_str()),
    ));
    out.extend(room_check(f, Some(&sel.os_prefix)));
    out.push(generations_check(f));
    out
}

/// `root=` of the selected command line against the root partition's PARTUUID.
pub fn root_check(file: &str, cmdline: &str, partuuid: Option<&str>) -> Check {
    let name = "cmdline root";
    let rebuild = "rebuild the image; never edit cmdline.txt by hand (the generation's cmdline comes from pi.toml)";
    let Some(root) = cmdline_root(cmdline) else {
        return Check::fail(
            name,
            format!("{file} has no root=: the kernel cannot find the root filesystem"),
            rebuild,
        );
    };
    match (root.strip_prefix("PARTUUID="), partuuid) {
        (Some(want), Some(have)) if want.eq_ignore_ascii_case(have) => {
            Check::ok(name, format!("root={root} is partition 2"))
        }
        (Some(_), Some(have)) => Check::fail(
            name,
            format!("{file} says root={root}, but partition 2 is PARTUUID={have}: the kernel would wait for a root that is not there"),
            rebuild,
        ),
        (Some(_), None) => Check::fail(name, format!("root={root}, but the image has no partition 2"), rebuild),
        (None, _) => Check::warn(
            name,
            format!("root={root} is not a PARTUUID, so it cannot be checked against the image"),
            "pideploy writes root=PARTUUID=…; check the value by hand",
        ),
    }
}

/// Room on the boot FAT: its size minus what its files take (in whole clusters), against the size
/// of the selected generation's `os_prefix` directory.
pub fn room_check(f: &ImageFacts, os_prefix: Option<&str>) -> Vec<Check> {
    let Some(boot) = f.table.partition(1) else {
        return Vec::new();
    };
    let cluster = f.cluster_bytes.max(512);
    let clusters = |n: u64| n.div_ceil(cluster) * cluster;
    let used: u64 = f.files.values().map(|d| clusters(d.len() as u64)).sum();
    let total = boot.size_lba * 512;
    // The FATs and reserved sectors: about 1/256 of a FAT32 volume with 4 KiB clusters, plus a margin.
    let free = total.saturating_sub(used + total / 128 + (1 << 20));
    let prefix = os_prefix.unwrap_or("").to_lowercase();
    let entry: u64 = if prefix.is_empty() {
        0
    } else {
        f.files
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .map(|(_, d)| clusters(d.len() as u64))
            .sum()
    };
    let name = "boot room";
    if entry == 0 {
        return vec![Check::ok(
            name,
            format!("about {} free on the boot partition", human(free)),
        )];
    }
    let more = free / entry;
    vec![if more == 0 {
        Check::fail(
            name,
            format!("about {} free on the boot partition, but a generation's boot entry takes {}: no further generation fits", human(free), human(entry)),
            "build the image with a larger boot partition (boot size in pi.toml), or keep fewer generations",
        )
    } else {
        Check::ok(
            name,
            format!(
                "about {} free; a boot entry takes {}, so about {more} more generation(s) fit",
                human(free),
                human(entry)
            ),
        )
    }]
}

fn generations_check(f: &ImageFacts) -> Check {
    match (&f.default, f.generations.is_empty()) {
        (Some(d), false) => Check::ok("generations", format!("{:?}, default {d}", f.generations)),
        _ => Check::fail(
            "generations",
            "the root filesystem registers no generation (/pideploy/var/profiles)",
            "rebuild the image with pideploy image",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    use pideploy_image::{PartitionEntry, TableKind};

    /// A Pi 5 image's facts: `boot_mib` of FAT, generation 1's entry as pideploy writes it.
    fn pi5(boot_mib: u64) -> ImageFacts {
        let part = |index: u32, start: u64, mib: u64| PartitionEntry {
            index,
            start_lba: start,
            size_lba: mib * 2048,
            type_code: Some(0x0c),
            type_guid: None,
            partuuid: format!("1234abcd-{index:02}"),
        };
        let mut files = BTreeMap::new();
        let mut add = |p: &str, d: Vec<u8>| {
            files.insert(p.to_string(), d);
        };
        add(
            "config.txt",
            b"[all]\nos_prefix=gen-1/\nkernel=kernel_2712.img\n".to_vec(),
        );
        add("gen-1/kernel_2712.img", vec![1; 9 << 20]);
        add("gen-1/bcm2712-rpi-5-b.dtb", vec![2; 80_000]);
        add(
            "gen-1/cmdline.txt",
            b"console=tty1 root=PARTUUID=1234abcd-02 rootwait\n".to_vec(),
        );
        ImageFacts {
            table: PartitionTable {
                kind: TableKind::Mbr,
                disk_id: "1234abcd".into(),
                partitions: vec![
                    part(1, 8192, boot_mib),
                    part(2, 8192 + boot_mib * 2048, 500),
                ],
            },
            files,
            cluster_bytes: 4096,
            generations: vec![1],
            default: Some("system-1-link".into()),
        }
    }

    fn status_of(c: &[Check], name: &str) -> Status {
        c.iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name}: {c:?}"))
            .status
    }

    #[test]
    fn a_complete_pi5_entry_passes() {
        let c = checks(&pi5(256));
        assert!(c.iter().all(|c| c.status == Status::Ok), "{c:?}");
        let room = c.iter().find(|c| c.name == "boot room").unwrap();
        assert!(room.detail.contains("more generation"), "{}", room.detail);
    }

    #[test]
    fn each_missing_piece_fails_its_own_check() {
        let mut f = pi5(256);
        f.files.remove("gen-1/kernel_2712.img");
        assert_eq!(status_of(&checks(&f), "kernel"), Status::Fail);
        let mut f = pi5(256);
        f.files.remove("gen-1/bcm2712-rpi-5-b.dtb");
        assert_eq!(status_of(&checks(&f), "device tree"), Status::Fail);
        let mut f = pi5(256);
        f.generations.clear();
        f.default = None;
        assert_eq!(status_of(&checks(&f), "generations"), Status::Fail);
        let mut f = pi5(256);
        f.table.partitions.truncate(1);
        assert_eq!(status_of(&checks(&f), "partitions"), Status::Fail);
        assert_eq!(status_of(&checks(&f), "cmdline root"), Status::Fail);
        // A FAT with room for this entry only: no further generation fits.
        assert_eq!(status_of(&checks(&pi5(14)), "boot room"), Status::Fail);
    }

    #[test]
    fn a_non_pi5_kernel_needs_its_initramfs() {
        let mut f = pi5(256);
        f.files.insert(
            "config.txt".into(),
            b"[all]\nos_prefix=gen-1/\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n"
                .to_vec(),
        );
        f.files.insert("gen-1/vmlinuz".into(), vec![1; 100]);
        assert_eq!(status_of(&checks(&f), "initramfs"), Status::Fail);
        f.files.insert("gen-1/initrd.img".into(), vec![3; 100]);
        assert_eq!(status_of(&checks(&f), "initramfs"), Status::Ok);
    }

    #[test]
    fn root_is_read_from_the_command_line() {
        assert_eq!(
            cmdline_root("console=tty1 root=PARTUUID=1234abcd-02 rootwait"),
            Some("PARTUUID=1234abcd-02")
        );
        assert_eq!(cmdline_root("quiet"), None);
    }

    #[test]
    fn root_must_name_partition_two() {
        let ok = root_check(
            "gen-1/cmdline.txt",
            "root=PARTUUID=1234ABCD-02 rw",
            Some("1234abcd-02"),
        );
        assert_eq!(ok.status, Status::Ok);
        let wrong = root_check(
            "gen-1/cmdline.txt",
            "root=PARTUUID=deadbeef-02",
            Some("1234abcd-02"),
        );
        assert_eq!(wrong.status, Status::Fail);
        assert!(wrong.detail.contains("deadbeef-02"));
        assert_eq!(root_check("c", "quiet", Some("x")).status, Status::Fail);
        assert_eq!(
            root_check("c", "root=/dev/mmcblk0p2", Some("x")).status,
            Status::Warn
        );
    }
}
