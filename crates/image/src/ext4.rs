//! The ext4 root filesystem: `mke2fs -d` builds it, a `debugfs -w` pass pins owners and times.
//!
//! The argument lists and the debugfs script are built by pure functions so they can be tested by
//! value; [`make_root`] and [`fix_root`] run them.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::ImageError;
use crate::plan::ImagePlan;
use crate::spec::{ImageSpec, OwnerOverride};

/// Our own mke2fs.conf, so the feature set does not depend on the build host's /etc/mke2fs.conf.
///
/// The features are Debian's ext4 defaults, all of which the Raspberry Pi kernel supports. One
/// inode per 8 KiB instead of 16: a generation's package set is a tree of links, one inode each
/// (a Debian system with systemd is about 20,000 of them per generation).
pub fn mke2fs_config() -> &'static str {
    "[defaults]\n\
     \tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr\n\
     \tdefault_mntopts = acl,user_xattr\n\
     \tenable_periodic_fsck = 0\n\
     \tblocksize = 4096\n\
     \tinode_size = 256\n\
     \tinode_ratio = 8192\n\
     \treserved_ratio = 5.0\n\
     \thash_alg = half_md4\n\
     \n\
     [fs_types]\n\
     \text4 = {\n\
     \t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize\n\
     \t}\n"
}

/// Environment variables of e2fsprogs that would make the output depend on the caller.
const E2FS_ENV_TO_CLEAR: &[&str] = &[
    "MKE2FS_SYNC",
    "MKE2FS_FIRST_META_BG",
    "MKE2FS_DEVICE_SECTSIZE",
    "MKE2FS_DEVICE_PHYS_SECTSIZE",
    "E2FSPROGS_LIBMAGIC_SUPPRESS",
    "DEBUGFS_PAGER",
    "PAGER",
];

/// The `mke2fs` arguments that create the root filesystem of `plan` inside the image `out`.
pub fn mke2fs_args(spec: &ImageSpec, plan: &ImagePlan, out: &Path) -> Vec<OsString> {
    let extended = format!(
        "offset={},hash_seed={},root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0,nodiscard",
        plan.root.start_bytes(),
        plan.root_hash_seed
    );
    let kib = plan.root.size_bytes() / 1024;
    let mut args: Vec<OsString> = [
        "-q",
        "-t",
        "ext4",
        "-b",
        "4096",
        "-F",
        "-j",
        "-E",
        &extended,
        "-U",
        &plan.root_fs_uuid,
        "-L",
        &spec.root_label,
        "-d",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(spec.root_dir.clone().into_os_string());
    args.push(out.as_os_str().to_owned());
    args.push(OsString::from(format!("{kib}k")));
    args
}

/// Every path of the staged tree as it will appear in the filesystem (`/`, then depth-first in
/// byte order), plus `/lost+found`, which mke2fs adds.
pub fn root_inode_paths(root_dir: &Path) -> Result<Vec<String>, ImageError> {
    let mut out = vec!["/".to_string()];
    walk(root_dir, "", &mut out)?;
    if !out.iter().any(|p| p == "/lost+found") {
        out.insert(1, "/lost+found".to_string());
    }
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), ImageError> {
    let mut entries: Vec<(OsString, PathBuf, bool)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(ImageError::io(format!("listing {}", dir.display())))? {
        let entry = entry.map_err(ImageError::io(format!("listing {}", dir.display())))?;
        let kind = entry.file_type().map_err(ImageError::io(format!(
            "reading the type of {}",
            entry.path().display()
        )))?;
        entries.push((entry.file_name(), entry.path(), kind.is_dir()));
    }
    entries.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    for (name, path, is_dir) in entries {
        let name = checked_name(&name, prefix)?;
        let inner = format!("{prefix}/{name}");
        out.push(inner.clone());
        if is_dir {
            walk(&path, &inner, out)?;
        }
    }
    Ok(())
}

fn checked_name<'a>(name: &'a OsStr, prefix: &str) -> Result<&'a str, ImageError> {
    let lossy = || format!("{prefix}/{}", name.to_string_lossy());
    let s = name
        .to_str()
        .ok_or_else(|| ImageError::UnsupportedName(lossy()))?;
    if s.chars().any(char::is_control) {
        return Err(ImageError::UnsupportedName(lossy()));
    }
    Ok(s)
}

/// Bytes the staged tree will take in the filesystem: every file rounded up to 4 KiB blocks and
/// one block per directory or symlink. Feed this to [`crate::plan`].
pub fn root_content_bytes(root_dir: &Path) -> Result<u64, ImageError> {
    let mut total = 0u64;
    let mut stack = vec![root_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            fs::read_dir(&dir).map_err(ImageError::io(format!("listing {}", dir.display())))?
        {
            let entry = entry.map_err(ImageError::io(format!("listing {}", dir.display())))?;
            let meta = fs::symlink_metadata(entry.path()).map_err(ImageError::io(format!(
                "reading {}",
                entry.path().display()
            )))?;
            total += if meta.is_file() {
                meta.len().div_ceil(4096) * 4096
            } else {
                4096
            };
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Quotes one argument for debugfs' command parser: inside double quotes, `""` is a literal quote.
fn debugfs_quote(arg: &str) -> String {
    format!("\"{}\"", arg.replace('"', "\"\""))
}

/// The debugfs script that gives every inode of `paths` the owner 0:0 (or its override) and
/// `timestamp` as access, change, modification and creation time.
pub fn debugfs_script(paths: &[String], owners: &[OwnerOverride], timestamp: u64) -> String {
    let mut s = String::new();
    for path in paths {
        let (uid, gid) = owners
            .iter()
            .rev()
            .find(|o| normalise(&o.path) == *path)
            .map_or((0, 0), |o| (o.uid, o.gid));
        let q = debugfs_quote(path);
        for (field, value) in [
            ("uid", uid.to_string()),
            ("gid", gid.to_string()),
            ("atime", format!("@{timestamp}")),
            ("ctime", format!("@{timestamp}")),
            ("mtime", format!("@{timestamp}")),
            ("crtime", format!("@{timestamp}")),
        ] {
            s.push_str(&format!("set_inode_field {q} {field} {value}\n"));
        }
    }
    s
}

/// The debugfs script for the owner overrides alone (`uid`/`gid` of each path); every other
/// inode's owner and times are pinned directly in the inode tables (`inode_pin`).
pub fn owner_script(owners: &[OwnerOverride]) -> String {
    let mut s = String::new();
    for o in owners {
        let q = debugfs_quote(&normalise(&o.path));
        s.push_str(&format!("set_inode_field {q} uid {}\n", o.uid));
        s.push_str(&format!("set_inode_field {q} gid {}\n", o.gid));
    }
    s
}

/// `"/home/pi/"` and `"home/pi"` both mean `"/home/pi"`.
fn normalise(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    format!("/{trimmed}")
}

fn spawn_error(tool: &'static str) -> impl FnOnce(std::io::Error) -> ImageError {
    move |source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ImageError::ToolMissing { tool, source }
        } else {
            ImageError::Io {
                context: format!("starting {tool}"),
                source,
            }
        }
    }
}

/// The sbin directories e2fsprogs installs into, looked at after `PATH`: Debian gives users
/// other than root no sbin on `PATH`, and `pideploy image` runs without root.
pub const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin"];

/// Where `tool` is run from: the first match on `PATH`, else in the sbin directories
/// (`PIDEPLOY_SBIN_DIRS`, a `PATH`-style list, replaces [`SBIN_DIRS`]; empty means none), else
/// the bare name (starting it then fails with "not found", which names the package).
pub fn e2fs_program(tool: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin: Vec<std::path::PathBuf> = match std::env::var_os("PIDEPLOY_SBIN_DIRS") {
        Some(dirs) => std::env::split_paths(&dirs).collect(),
        None => SBIN_DIRS.iter().map(std::path::PathBuf::from).collect(),
    };
    std::env::split_paths(&path)
        .chain(sbin)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| tool.into())
}

fn e2fs_command(tool: &str, timestamp: u64) -> Command {
    let mut cmd = Command::new(e2fs_program(tool));
    for var in E2FS_ENV_TO_CLEAR {
        cmd.env_remove(var);
    }
    cmd.env("E2FSPROGS_FAKE_TIME", timestamp.to_string())
        .env("LC_ALL", "C")
        .env("TZ", "UTC");
    cmd
}

/// Runs `mke2fs` to create and fill the root filesystem inside the image `out`.
pub(crate) fn make_root(spec: &ImageSpec, plan: &ImagePlan, out: &Path) -> Result<(), ImageError> {
    let mut config = tempfile::NamedTempFile::new()
        .map_err(ImageError::io("creating a temporary mke2fs.conf"))?;
    config
        .write_all(mke2fs_config().as_bytes())
        .and_then(|_| config.flush())
        .map_err(ImageError::io("writing a temporary mke2fs.conf"))?;
    let output = e2fs_command("mke2fs", spec.timestamp)
        .env("MKE2FS_CONFIG", config.path())
        .args(mke2fs_args(spec, plan, out))
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_error("mke2fs"))?;
    if !output.status.success() {
        return Err(ImageError::ToolFailed {
            tool: "mke2fs",
            path: out.to_path_buf(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Runs `script` through `debugfs -w` on the root filesystem inside `out`.
///
/// debugfs exits 0 even when a command fails, so any error output besides its banner counts as
/// failure.
pub(crate) fn fix_root(
    plan: &ImagePlan,
    out: &Path,
    script: String,
    timestamp: u64,
) -> Result<(), ImageError> {
    let out_str = out.as_os_str();
    if out_str.as_encoded_bytes().contains(&b'?') {
        return Err(ImageError::OutputPathUnsupported(out.to_path_buf()));
    }
    // libext2fs reads "name?offset=N" as the filesystem starting N bytes into the file.
    let mut target = out_str.to_owned();
    target.push(format!("?offset={}", plan.root.start_bytes()));
    let mut child = e2fs_command("debugfs", timestamp)
        .args([OsStr::new("-w"), OsStr::new("-f"), OsStr::new("-")])
        .arg(&target)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error("debugfs"))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    // A separate thread feeds the script so a full stderr pipe cannot deadlock us.
    let feeder = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(ImageError::io("waiting for debugfs"))?;
    let fed = feeder
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("debugfs script feeder panicked")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .collect();
    if !output.status.success() || !errors.is_empty() {
        return Err(ImageError::ToolFailed {
            tool: "debugfs",
            path: out.to_path_buf(),
            status: output.status.to_string(),
            stderr: errors.join("\n"),
        });
    }
    fed.map_err(ImageError::io("feeding commands to debugfs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mke2fs_gets_offset_ids_and_size() {
        let spec = ImageSpec {
            table: crate::TableKind::Mbr,
            seed: [1; 32],
            total_size: None,
            boot_size: 64 * 1024 * 1024,
            boot_label: "BOOTFS".into(),
            root_label: "rootfs".into(),
            boot_files: vec![],
            root_dir: PathBuf::from("/stage"),
            root_owners: vec![],
            timestamp: 5,
        };
        let plan = crate::plan(&spec, 0).unwrap();
        let args = mke2fs_args(&spec, &plan, Path::new("/out/pi.img"));
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        let extended = format!(
            "offset={},hash_seed={},root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0,nodiscard",
            68 * 1024 * 1024,
            plan.root_hash_seed
        );
        let kib = format!("{}k", 64 * 1024);
        assert_eq!(
            args,
            [
                "-q",
                "-t",
                "ext4",
                "-b",
                "4096",
                "-F",
                "-j",
                "-E",
                &extended,
                "-U",
                &plan.root_fs_uuid,
                "-L",
                "rootfs",
                "-d",
                "/stage",
                "/out/pi.img",
                &kib
            ]
        );
    }

    #[test]
    fn quotes_spaces_and_quotes() {
        assert_eq!(debugfs_quote("/a b"), "\"/a b\"");
        assert_eq!(debugfs_quote("/say \"hi\""), "\"/say \"\"hi\"\"\"");
    }

    #[test]
    fn script_sets_owner_and_all_times() {
        let paths = vec!["/".to_string(), "/home/pi".to_string()];
        let owners = vec![OwnerOverride {
            path: "home/pi/".to_string(),
            uid: 1000,
            gid: 1001,
        }];
        let s = debugfs_script(&paths, &owners, 42);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 12);
        assert_eq!(lines[0], "set_inode_field \"/\" uid 0");
        assert_eq!(lines[6], "set_inode_field \"/home/pi\" uid 1000");
        assert_eq!(lines[7], "set_inode_field \"/home/pi\" gid 1001");
        for field in ["atime", "ctime", "mtime", "crtime"] {
            assert!(lines.contains(&format!("set_inode_field \"/home/pi\" {field} @42").as_str()));
        }
    }

    #[test]
    fn walk_is_sorted_and_adds_lost_found() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("b/c/z"), b"z").unwrap();
        fs::write(dir.path().join("a"), b"a").unwrap();
        fs::write(dir.path().join("B"), b"B").unwrap();
        let paths = root_inode_paths(dir.path()).unwrap();
        assert_eq!(
            paths,
            ["/", "/lost+found", "/B", "/a", "/b", "/b/c", "/b/c/z"]
        );
    }

    #[test]
    fn control_characters_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad\nname"), b"").unwrap();
        assert!(matches!(
            root_inode_paths(dir.path()),
            Err(ImageError::UnsupportedName(_))
        ));
    }
}
