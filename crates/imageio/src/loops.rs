//! Loop devices and their backing files (Linux sysfs): a regular file attached to a loop device
//! is a disk in use, and writing it under the loop device corrupts what is mounted from it.

use std::fs::Metadata;
use std::path::PathBuf;

/// The file a loop device (or a partition of one), given by device number, reads from.
#[cfg(target_os = "linux")]
pub(crate) fn backing_file_of(rdev: u64) -> Option<PathBuf> {
    use std::path::Path;
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let mut sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    if sys.join("partition").exists() {
        sys = sys.parent()?.to_path_buf();
    }
    let text = std::fs::read_to_string(sys.join("loop/backing_file")).ok()?;
    Some(Path::new(strip_deleted(text.trim_end_matches('\n'))).to_path_buf())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn backing_file_of(_rdev: u64) -> Option<PathBuf> {
    None
}

/// The kernel appends this to the backing path of a file deleted while attached.
fn strip_deleted(p: &str) -> &str {
    p.strip_suffix(" (deleted)").unwrap_or(p)
}

/// The loop devices attached to the file `file` describes, each as `/dev/loopN` with where it
/// or its partitions are mounted: "/dev/loop3 (mounted on /mnt/a)".
#[cfg(target_os = "linux")]
pub(crate) fn loops_backed_by(file: &Metadata) -> Vec<String> {
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    // Read lazily: most machines have no loop device over the target.
    let mut mountinfo: Option<String> = None;
    let mut found = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = fs::read_to_string(e.path().join("loop/backing_file")) else {
            continue;
        };
        let Ok(b) = fs::metadata(strip_deleted(backing.trim_end_matches('\n'))) else {
            continue;
        };
        if (b.dev(), b.ino()) != (file.dev(), file.ino()) {
            continue;
        }
        // The device and its partitions (subdirectories with a `dev` file), as MAJ:MIN.
        let mut devs: Vec<String> = Vec::new();
        let dev_of = |p: PathBuf| fs::read_to_string(p.join("dev")).ok();
        devs.extend(dev_of(e.path()).map(|d| d.trim().to_string()));
        if let Ok(parts) = fs::read_dir(e.path()) {
            for p in parts
                .flatten()
                .filter(|p| p.path().join("partition").exists())
            {
                devs.extend(dev_of(p.path()).map(|d| d.trim().to_string()));
            }
        }
        let info = mountinfo
            .get_or_insert_with(|| fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
        found.push(describe(&name, &mount_points(info, &devs)));
    }
    found
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn loops_backed_by(_file: &Metadata) -> Vec<String> {
    Vec::new()
}

fn describe(name: &str, mounts: &[String]) -> String {
    if mounts.is_empty() {
        format!("/dev/{name}")
    } else {
        format!("/dev/{name} (mounted on {})", mounts.join(", "))
    }
}

/// Pure: the mount points in `/proc/self/mountinfo` text whose device (third field, MAJ:MIN)
/// is one of `devs`.
pub(crate) fn mount_points(mountinfo: &str, devs: &[String]) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let dev = f.nth(2)?;
            let point = f.nth(1)?;
            devs.iter()
                .any(|d| d == dev)
                .then(|| crate::target::unescape(point))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_by_device_number() {
        let info = "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n\
                    90 22 7:3 / /mnt/a rw shared:50 - ext4 /dev/loop3 rw\n\
                    91 22 259:7 / /media/u/PI\\040BOOT rw - vfat /dev/loop3p1 rw\n\
                    92 22 7:30 / /mnt/other rw - ext4 /dev/loop30 rw\n\
                    garbage\n";
        let devs = vec!["7:3".to_string(), "259:7".to_string()];
        assert_eq!(
            mount_points(info, &devs),
            vec!["/mnt/a", "/media/u/PI BOOT"]
        );
        assert!(mount_points(info, &["7:4".to_string()]).is_empty());
        assert_eq!(
            describe("loop3", &mount_points(info, &devs)),
            "/dev/loop3 (mounted on /mnt/a, /media/u/PI BOOT)"
        );
        assert_eq!(describe("loop3", &[]), "/dev/loop3");
        assert_eq!(strip_deleted("/x/a.img (deleted)"), "/x/a.img");
    }
}
