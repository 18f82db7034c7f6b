//! `pideploy flash` never writes onto its own image (same file through a symlink, a hard link
//! or /proc/self/fd; a loop device over it) nor onto a file attached to a loop device.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

fn pideploy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pideploy"))
}

fn sha(p: &Path) -> Vec<u8> {
    Sha256::digest(fs::read(p).unwrap()).to_vec()
}

fn image(dir: &Path, name: &str) -> PathBuf {
    let mut v = vec![0u8; 2 << 20];
    v.iter_mut()
        .enumerate()
        .take(300_000)
        .for_each(|(i, b)| *b = (i % 251) as u8 + 1);
    let p = dir.join(name);
    File::create(&p).unwrap().write_all(&v).unwrap();
    p
}

/// Runs `pideploy flash IMAGE TARGET --yes EXTRA…` and expects a refusal of one line.
fn refused(image: &Path, target: &Path, extra: &[&str], stdin: Stdio) -> String {
    let out: Output = pideploy()
        .arg("flash")
        .arg(image)
        .arg(target)
        .arg("--yes")
        .args(extra)
        .stdin(stdin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "flash {image:?} {target:?} succeeded: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    err
}

#[test]
fn an_image_is_never_flashed_onto_itself() {
    let dir = tempfile::tempdir().unwrap();
    let raw = image(dir.path(), "a.img");
    let zst = dir.path().join("a.img.zst");
    pideploy_imageio::write_output(
        &raw,
        &zst,
        pideploy_imageio::Compression::Zstd,
        1,
        &mut |_, _| {},
    )
    .unwrap();
    for src in [&raw, &zst] {
        let before = sha(src);
        let link = dir.path().join("symlink");
        let hard = dir.path().join("hardlink");
        let _ = fs::remove_file(&link);
        let _ = fs::remove_file(&hard);
        std::os::unix::fs::symlink(src, &link).unwrap();
        fs::hard_link(src, &hard).unwrap();
        let via_dots = dir.path().join(".").join(src.file_name().unwrap());
        for target in [src.as_path(), &link, &hard, &via_dots] {
            let err = refused(src, target, &[], Stdio::null());
            assert!(err.contains("is the same file as the image"), "{err}");
            assert_eq!(
                sha(src),
                before,
                "{src:?} changed by flashing onto {target:?}"
            );
        }
        // --force is about fixed disks; it does not make this possible either.
        let err = refused(&link, src, &["--force"], Stdio::null());
        assert!(err.contains("same file"), "{err}");
        // The image held open as the child's stdin and named by /proc/self/fd/0.
        let err = refused(
            src,
            Path::new("/proc/self/fd/0"),
            &[],
            Stdio::from(File::open(src).unwrap()),
        );
        assert!(err.contains("same file"), "{err}");
        assert_eq!(sha(src), before);
    }
}

#[test]
fn the_library_refuses_too_before_truncating() {
    let dir = tempfile::tempdir().unwrap();
    let raw = image(dir.path(), "lib.img");
    let before = sha(&raw);
    let link = dir.path().join("lib-link");
    std::os::unix::fs::symlink(&raw, &link).unwrap();
    let e = pideploy_imageio::flash(&raw, None, &link, &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(e, pideploy_imageio::IoError::TargetIsImage { .. }),
        "{e}"
    );
    assert_eq!(sha(&raw), before);
    // A different file is still written (and truncated to the image).
    let other = dir.path().join("other.img");
    fs::write(&other, vec![0xEEu8; 3 << 20]).unwrap();
    pideploy_imageio::flash(&raw, None, &other, &mut |_, _| {}).unwrap();
    assert_eq!(sha(&other), before);
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A loop device over a file, optionally mounted; unmounted and detached by its own name on drop.
struct Loop {
    dev: String,
    mount: Option<PathBuf>,
}

impl Loop {
    fn attach(file: &Path) -> Loop {
        let dev = tool("losetup", &["-f", "--show", file.to_str().unwrap()])
            .trim()
            .to_string();
        assert!(dev.starts_with("/dev/loop"), "{dev}");
        Loop { dev, mount: None }
    }

    fn mount(&mut self, at: &Path) {
        fs::create_dir_all(at).unwrap();
        tool("mount", &[&self.dev, at.to_str().unwrap()]);
        self.mount = Some(at.to_path_buf());
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(m) = &self.mount {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn is_root() -> bool {
    tool("id", &["-u"]).trim() == "0"
}

#[test]
fn a_file_attached_to_a_loop_device_is_refused() {
    if !is_root() {
        eprintln!("skipped: losetup and mount need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "pi.img");
    // A plain ext4 on the loop device itself (this kernel has no vfat driver to mount with).
    let disk = dir.path().join("disk");
    fs::write(&disk, vec![0u8; 16 << 20]).unwrap();
    tool("mkfs.ext4", &["-q", "-F", disk.to_str().unwrap()]);
    let mut lo = Loop::attach(&disk);
    // Attached but not mounted: refused already (it may be mounted any moment).
    let err = refused(&img, &disk, &["--force"], Stdio::null());
    assert!(err.contains(&lo.dev) && err.contains("losetup -d"), "{err}");
    let mnt = dir.path().join("mnt");
    lo.mount(&mnt);
    fs::write(mnt.join("keep"), b"data").unwrap();
    tool("sync", &[]);
    let before = sha(&disk);
    let err = refused(&img, &disk, &["--force"], Stdio::null());
    assert!(
        err.contains(&format!("{} (mounted on {})", lo.dev, mnt.display())),
        "{err}"
    );
    // Through a symlink to the backing file as well.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&disk, &link).unwrap();
    let err = refused(&img, &link, &["--force"], Stdio::null());
    assert!(err.contains(&lo.dev), "{err}");
    assert_eq!(sha(&disk), before, "the backing file must be untouched");
    assert_eq!(fs::read(mnt.join("keep")).unwrap(), b"data");
}

#[test]
fn a_loop_device_over_the_image_is_refused() {
    if !is_root() {
        eprintln!("skipped: losetup needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "backing.img");
    let before = sha(&img);
    let lo = Loop::attach(&img);
    let err = refused(&img, Path::new(&lo.dev), &["--force"], Stdio::null());
    assert!(err.contains("is a loop device over the image"), "{err}");
    assert_eq!(sha(&img), before);
}
