//! `pideploy doctor` on this machine: the programs pideploy runs (and their versions), whether QEMU
//! really starts the way `pideploy qemu` starts it, apt's arm64 setup, and the cache and store
//! directories (writable, free space, case-sensitive).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pideploy_qemu::runner::{QemuError, Vm, VmConfig};

use super::{human, Check};

/// A program pideploy (or its quick start) runs, and the Debian package that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    /// Program name looked up on `PATH`.
    pub program: &'static str,
    /// Debian package to install.
    pub package: &'static str,
    /// What it is used for.
    pub why: &'static str,
    /// pideploy itself runs it (missing: ✗); otherwise only the quick start or checks by hand do (!).
    pub needed: bool,
    /// pideploy finds it in the sbin directories when `PATH` lacks them.
    pub sbin_fallback: bool,
}

/// Every external program pideploy runs (`Command::new` in src, crates, qemu/src), then the ones
/// the quick start and the README's checks use.
pub const TOOLS: &[Tool] = &[
    Tool {
        program: "mke2fs",
        package: "e2fsprogs",
        why: "`pideploy image` writes the ext4 root with mke2fs -d",
        needed: true,
        sbin_fallback: true,
    },
    Tool {
        program: "debugfs",
        package: "e2fsprogs",
        why: "`pideploy image` pins owners and times with debugfs -w",
        needed: true,
        sbin_fallback: true,
    },
    Tool {
        program: "qemu-system-aarch64",
        package: "qemu-system-arm",
        why: "`pideploy qemu` and the quick start boot images with it",
        needed: true,
        sbin_fallback: false,
    },
    Tool {
        program: "sh",
        package: "dash",
        why: "local:DIR targets run the agent with sh",
        needed: true,
        sbin_fallback: false,
    },
    Tool {
        program: "sfdisk",
        package: "fdisk",
        why: "reads an image's partition table back",
        needed: false,
        sbin_fallback: false,
    },
    Tool {
        program: "ssh",
        package: "openssh-client",
        why: "logging in to a Pi or the QEMU guest",
        needed: false,
        sbin_fallback: false,
    },
    Tool {
        program: "ssh-keygen",
        package: "openssh-client",
        why: "deploy keys and host key fingerprints",
        needed: false,
        sbin_fallback: false,
    },
    Tool {
        program: "xz",
        package: "xz-utils",
        why: ".img.xz by hand (pideploy links liblzma itself)",
        needed: false,
        sbin_fallback: false,
    },
    Tool {
        program: "zstd",
        package: "zstd",
        why: ".img.zst by hand (pideploy links libzstd itself)",
        needed: false,
        sbin_fallback: false,
    },
    Tool {
        program: "apt-get",
        package: "apt",
        why: "qemu/debian-arm64.sh downloads the qemu-aarch64 board's packages",
        needed: false,
        sbin_fallback: false,
    },
];

/// What the cache or store directory looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirProbe {
    /// A file was created and removed in it (or, while it does not exist yet, in `parent`).
    Writable {
        /// Where the probe was written: the directory itself or its nearest existing parent.
        probed: PathBuf,
    },
    /// Something that is not a directory is in the way.
    NotADir(PathBuf),
    /// Creating the probe file failed.
    Unwritable {
        /// Where it was tried.
        probed: PathBuf,
        /// The OS error.
        error: String,
    },
}

/// Facts about the cache or the store directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirFacts {
    /// "cache" or "store".
    pub role: &'static str,
    /// The directory pideploy uses.
    pub path: PathBuf,
    /// Whether it can be written.
    pub probe: DirProbe,
    /// Bytes free for an unprivileged user on its filesystem.
    pub free_bytes: Option<u64>,
    /// Whether two names differing only in case are two files there (store only).
    pub case_sensitive: Option<bool>,
}

/// How QEMU fared when started like `pideploy qemu` starts it, with a guest that powers off at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QemuStart {
    /// It started and the probe guest powered it off.
    Ok,
    /// QEMU exited with an error before running the guest.
    Refused {
        /// Its exit status.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// It neither ran the guest to its power-off nor exited.
    Hung,
    /// It could not be started at all.
    Error(String),
}

/// Where a tool was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// On `PATH`: what `Command::new` runs.
    OnPath(PathBuf),
    /// Installed, but only in an sbin directory that is not on `PATH` (Debian gives non-root
    /// users no sbin in `PATH`, and mke2fs/debugfs/sfdisk live there): pideploy would not find it.
    OffPath(PathBuf),
    /// Not installed.
    Missing,
}

// The sbin directories Debian installs e2fsprogs and fdisk into.
use pideploy_image::SBIN_DIRS;

/// Looks a tool up on `path`, then in the sbin directories.
pub fn locate(program: &str, path: &OsStr) -> Located {
    if let Some(p) = find_on_path(program, path) {
        return Located::OnPath(p);
    }
    let sbin = std::env::join_paths(SBIN_DIRS).unwrap_or_default();
    match find_on_path(program, &sbin) {
        Some(p) => Located::OffPath(p),
        None => Located::Missing,
    }
}

/// Everything [`gather`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineFacts {
    /// Each tool and where it was found on `PATH`.
    pub tools: Vec<(Tool, Located)>,
    /// `mke2fs -V` output.
    pub mke2fs_version: Option<String>,
    /// `debugfs -V` output.
    pub debugfs_version: Option<String>,
    /// The QEMU binary pideploy starts (`PIDEPLOY_QEMU` or `qemu-system-aarch64`).
    pub qemu_bin: String,
    /// `qemu --version` output.
    pub qemu_version: Option<String>,
    /// The start probe; `None` when QEMU is not there to start.
    pub qemu_start: Option<QemuStart>,
    /// `dpkg --print-foreign-architectures`, `None` without dpkg.
    pub foreign_archs: Option<String>,
    /// How many arm64 Packages lists apt has, `None` without apt-get.
    pub arm64_lists: Option<usize>,
    /// Cache and store.
    pub dirs: Vec<DirFacts>,
}

/// The program on `path` (a `PATH` value) that `Command::new(program)` would run.
pub fn find_on_path(program: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|d| d.join(program))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Both streams of a short command, or `None` when it could not run.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(s)
}

/// A 16-byte aarch64 "kernel": PSCI SYSTEM_OFF (0x84000008) through `hvc #0`, then a loop. QEMU's
/// `virt` machine answers PSCI calls made with HVC when it boots a kernel directly, so a QEMU that
/// starts at all exits 0 within a fraction of a second.
const POWER_OFF_KERNEL: [u8; 16] = [
    0x00, 0x01, 0x80, 0x52, // movz w0, #0x0008
    0x00, 0x80, 0xb0, 0x72, // movk w0, #0x8400, lsl #16
    0x02, 0x00, 0x00, 0xd4, // hvc  #0
    0x00, 0x00, 0x00, 0x14, // b    .
];

/// Starts QEMU with exactly the devices `pideploy qemu` gives it ([`VmConfig::args`]) and the
/// power-off kernel, and waits for it to end.
pub fn probe_qemu(scratch: &Path) -> Result<QemuStart, io::Error> {
    let kernel = scratch.join("poweroff.bin");
    fs::write(&kernel, POWER_OFF_KERNEL)?;
    let disk = scratch.join("disk.img");
    fs::File::create(&disk)?.set_len(1 << 20)?;
    let mut cfg = VmConfig::new(disk, kernel, scratch.join("serial.log"));
    cfg.timeout = Duration::from_secs(30);
    let mut vm = match Vm::start(&cfg) {
        Ok(vm) => vm,
        Err(e) => return Ok(QemuStart::Error(e.to_string())),
    };
    Ok(match vm.wait_exit(Duration::from_secs(20)) {
        Ok(status) if status.success() => QemuStart::Ok,
        Ok(status) => QemuStart::Refused {
            status: status.to_string(),
            stderr: vm.qemu_stderr(),
        },
        Err(QemuError::Timeout { .. }) => QemuStart::Hung,
        Err(e) => QemuStart::Error(e.to_string()),
    })
}

/// The directory itself, or its nearest existing ancestor while it does not exist yet.
fn existing_base(path: &Path) -> Result<PathBuf, PathBuf> {
    let mut p = path.to_path_buf();
    loop {
        match fs::metadata(&p) {
            Ok(m) if m.is_dir() => return Ok(p),
            Ok(_) => return Err(p),
            Err(_) => {}
        }
        if !p.pop() || p.as_os_str().is_empty() {
            return Ok(PathBuf::from("."));
        }
    }
}

/// Whether `dir` tells two names apart that differ only in case: creates one, looks for the other.
pub fn probe_case_sensitive(dir: &Path) -> io::Result<bool> {
    let lower = dir.join(format!(".pideploy-doctor-case-{}", std::process::id()));
    let upper = dir.join(format!(".PIDEPLOY-DOCTOR-CASE-{}", std::process::id()));
    fs::write(&lower, b"")?;
    let seen = fs::symlink_metadata(&upper).is_ok();
    fs::remove_file(&lower)?;
    Ok(!seen)
}

/// Writes and removes a file in the directory (or its nearest existing parent); measures free
/// space and, for the store, case sensitivity.
pub fn probe_dir(role: &'static str, path: &Path) -> DirFacts {
    let mut facts = DirFacts {
        role,
        path: path.to_path_buf(),
        probe: DirProbe::NotADir(path.to_path_buf()),
        free_bytes: None,
        case_sensitive: None,
    };
    let base = match existing_base(path) {
        Ok(b) => b,
        Err(file) => {
            facts.probe = DirProbe::NotADir(file);
            return facts;
        }
    };
    let probe = base.join(format!(".pideploy-doctor-{}", std::process::id()));
    facts.probe = match fs::write(&probe, b"doctor").and_then(|_| fs::remove_file(&probe)) {
        Ok(()) => DirProbe::Writable {
            probed: base.clone(),
        },
        Err(e) => DirProbe::Unwritable {
            probed: base.clone(),
            error: e.to_string(),
        },
    };
    facts.free_bytes = rustix::fs::statvfs(&base)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize));
    if role == "store" && matches!(facts.probe, DirProbe::Writable { .. }) {
        facts.case_sensitive = probe_case_sensitive(&base).ok();
    }
    facts
}

/// Looks at this machine. `path` is the `PATH` to search, `cache` and `store` the directories
/// pideploy would use, `scratch` a temporary directory for the QEMU probe.
pub fn gather(path: &OsStr, cache: &Path, store: &Path, scratch: &Path) -> MachineFacts {
    let tools: Vec<(Tool, Located)> = TOOLS
        .iter()
        .map(|t| (*t, locate(t.program, path)))
        .collect();
    let found = |p: &str| {
        tools
            .iter()
            .any(|(t, w)| t.program == p && matches!(w, Located::OnPath(_)))
    };
    let qemu_bin = std::env::var("PIDEPLOY_QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into());
    let qemu_there = if qemu_bin.contains('/') {
        Path::new(&qemu_bin).exists()
    } else {
        find_on_path(&qemu_bin, path).is_some()
    };
    let qemu_version = qemu_there
        .then(|| output_of(&qemu_bin, &["--version"]))
        .flatten();
    let qemu_start = qemu_there.then(|| {
        probe_qemu(scratch)
            .unwrap_or_else(|e| QemuStart::Error(format!("preparing the probe: {e}")))
    });
    let arm64_lists = find_on_path("apt-get", path).and_then(|_| {
        let out = output_of(
            "apt-get",
            &[
                "indextargets",
                "--format",
                "$(FILENAME)",
                "Architecture: arm64",
                "Created-By: Packages",
            ],
        )?;
        Some(
            out.lines()
                .filter(|l| Path::new(l.trim()).is_file())
                .count(),
        )
    });
    MachineFacts {
        mke2fs_version: found("mke2fs")
            .then(|| {
                output_of(
                    &pideploy_image::e2fs_program("mke2fs").to_string_lossy(),
                    &["-V"],
                )
            })
            .flatten(),
        debugfs_version: found("debugfs")
            .then(|| {
                output_of(
                    &pideploy_image::e2fs_program("debugfs").to_string_lossy(),
                    &["-V"],
                )
            })
            .flatten(),
        qemu_start,
        qemu_version,
        qemu_bin,
        foreign_archs: find_on_path("dpkg", path)
            .and_then(|_| output_of("dpkg", &["--print-foreign-architectures"])),
        arm64_lists,
        dirs: vec![probe_dir("cache", cache), probe_dir("store", store)],
        tools,
    }
}

/// `(major, minor, patch)` from `mke2fs -V` / `debugfs -V` (`mke2fs 1.47.0 (5-Feb-2023)`).
pub fn e2fs_version(text: &str) -> Option<(u32, u32, u32)> {
    let first = text.lines().next()?;
    let v = first.split_whitespace().nth(1)?;
    let mut parts = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

/// The e2fsprogs release line every reproducibility test of pideploy has run with (Debian
/// bookworm). mke2fs's on-disk choices (inode placement, journal layout, hash seeds it derives)
/// change between release lines, so images are bit-identical only among builds made with the same
/// line; `-d`, `root_owner=` and `hash_seed=`, which pideploy needs at all, arrived in 1.43.
pub const E2FS_TESTED: (u32, u32) = (1, 47);
/// The oldest e2fsprogs with everything pideploy passes to mke2fs.
pub const E2FS_MINIMUM: (u32, u32) = (1, 43);

/// The verdict on the e2fsprogs tools' versions.
pub fn e2fs_checks(mke2fs: Option<&str>, debugfs: Option<&str>) -> Vec<Check> {
    let mut out = Vec::new();
    let parsed = |t: Option<&str>| t.and_then(e2fs_version);
    let (m, d) = (parsed(mke2fs), parsed(debugfs));
    for (tool, text, v) in [("mke2fs", mke2fs, m), ("debugfs", debugfs, d)] {
        let Some(text) = text else { continue };
        let name = format!("{tool} version");
        let Some((a, b, c)) = v else {
            out.push(Check::warn(
                name,
                format!("could not read a version from `{tool} -V`: {}", text.trim()),
                "install Debian's e2fsprogs (apt-get install e2fsprogs)",
            ));
            continue;
        };
        let shown = format!("{a}.{b}.{c}");
        if (a, b) < E2FS_MINIMUM {
            out.push(Check::fail(
                name,
                format!("{shown}: older than 1.43, which lacks mke2fs -d and root_owner="),
                "install e2fsprogs 1.47 (Debian bookworm or newer)",
            ));
        } else if (a, b) != E2FS_TESTED {
            out.push(Check::warn(
                name,
                format!(
                    "{shown}: works, but pideploy's bit-identical ext4 output is tested with 1.47 only; another release line may write different bytes for the same inputs"
                ),
                "build images that must match bit for bit with e2fsprogs 1.47.x",
            ));
        } else {
            out.push(Check::ok(
                name,
                format!("{shown} (the tested release line)"),
            ));
        }
    }
    if let (Some(m), Some(d)) = (m, d) {
        if m != d {
            out.push(Check::warn(
                "e2fsprogs",
                format!(
                    "mke2fs is {}.{}.{} but debugfs is {}.{}.{}",
                    m.0, m.1, m.2, d.0, d.1, d.2
                ),
                "install both from one e2fsprogs package",
            ));
        }
    }
    out
}

/// The verdict on the QEMU start probe.
pub fn qemu_start_check(bin: &str, start: &QemuStart) -> Check {
    let name = "qemu starts";
    match start {
        QemuStart::Ok => Check::ok(
            name,
            format!("{bin} started with pideploy's devices (virtio-blk, virtio-net without option ROM) and ran a guest"),
        ),
        QemuStart::Refused { status, stderr } => Check::fail(
            name,
            format!("{bin} refused to start ({status}); QEMU said: {}", one_line(stderr)),
            "reinstall qemu-system-arm (apt-get install --reinstall qemu-system-arm); QEMU's message above names what it lacks",
        ),
        QemuStart::Hung => Check::fail(
            name,
            format!("{bin} started but did not run a guest that powers off at once (20 s)"),
            "check that qemu-system-aarch64 runs at all (`qemu-system-aarch64 -M virt -nographic`); a loaded machine may need a retry",
        ),
        QemuStart::Error(e) => Check::fail(
            name,
            format!("could not start {bin}: {e}"),
            "install qemu-system-arm, or point PIDEPLOY_QEMU at a working qemu-system-aarch64",
        ),
    }
}

/// QEMU's stderr on one line (its lines joined with ` | `).
fn one_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        "nothing".into()
    } else {
        lines.join(" | ")
    }
}

/// The verdict on apt's arm64 setup (the qemu-aarch64 board is built from Debian's arm64 packages).
pub fn arm64_checks(foreign_archs: Option<&str>, lists: Option<usize>) -> Vec<Check> {
    let name = "apt arm64";
    let Some(archs) = foreign_archs else {
        return vec![Check::warn(
            name,
            "dpkg is not installed: the qemu-aarch64 board's Debian arm64 packages cannot be fetched through apt here",
            "build on Debian or Ubuntu, or bring the .debs and run `pideploy cache import FILE...`",
        )];
    };
    if !archs.lines().any(|l| l.trim() == "arm64") {
        return vec![Check::fail(
            name,
            "arm64 is not a foreign architecture of dpkg, so apt has no arm64 package lists",
            "sudo dpkg --add-architecture arm64 && sudo apt-get update",
        )];
    }
    match lists {
        Some(0) => vec![Check::fail(
            name,
            "arm64 is enabled, but apt has no arm64 package lists yet",
            "sudo apt-get update",
        )],
        Some(n) => vec![Check::ok(
            name,
            format!("arm64 enabled, {n} arm64 package list(s)"),
        )],
        None => vec![Check::warn(
            name,
            "arm64 is enabled, but apt-get is missing to read its lists",
            "apt-get install apt",
        )],
    }
}

/// Below this much free space an image build fails: the closure goes into the store, and the
/// image (sparse, but its ext4 written in full by mke2fs) beside it.
pub const FREE_FAIL: u64 = 1 << 30;
/// Below this, a second system or a larger package set will not fit.
pub const FREE_WARN: u64 = 4 << 30;

/// The verdicts on the cache or store directory.
pub fn dir_checks(d: &DirFacts) -> Vec<Check> {
    let role = d.role;
    let flag = if role == "cache" {
        "--cache-dir / PIDEPLOY_CACHE_DIR"
    } else {
        "--store / PIDEPLOY_STORE_DIR"
    };
    let shown = d.path.display();
    let mut out = Vec::new();
    match &d.probe {
        DirProbe::Writable { probed } if probed == &d.path => {
            out.push(Check::ok(format!("{role} writable"), format!("{shown}")));
        }
        DirProbe::Writable { probed } => out.push(Check::ok(
            format!("{role} writable"),
            format!(
                "{shown} does not exist yet; {} is writable, so it can be made",
                probed.display()
            ),
        )),
        DirProbe::NotADir(p) => {
            out.push(Check::fail(
                format!("{role} writable"),
                format!("{shown}: {} is not a directory", p.display()),
                format!(
                    "move {} away, or choose another {role} directory with {flag}",
                    p.display()
                ),
            ));
            return out;
        }
        DirProbe::Unwritable { probed, error } => {
            out.push(Check::fail(
                format!("{role} writable"),
                format!("{shown}: cannot create a file in {}: {error}", probed.display()),
                format!("make {} writable for this user, or choose another {role} directory with {flag}", probed.display()),
            ));
            return out;
        }
    }
    if let Some(free) = d.free_bytes {
        out.push(free_check(role, free, flag));
    }
    if let Some(cs) = d.case_sensitive {
        out.push(case_check(&d.path, cs));
    }
    out
}

/// The verdict on free space in the cache or store.
pub fn free_check(role: &str, free: u64, flag: &str) -> Check {
    let name = format!("{role} free space");
    let detail = format!("{} free", human(free));
    if free < FREE_FAIL {
        Check::fail(
            name,
            format!("{detail}; building an image needs about 1 GiB"),
            format!("free space there (pideploy gc), or choose a larger filesystem with {flag}"),
        )
    } else if free < FREE_WARN {
        Check::warn(
            name,
            format!("{detail}; enough for one image, tight for more"),
            "free space there (pideploy gc removes unreferenced store paths)",
        )
    } else {
        Check::ok(name, detail)
    }
}

/// The verdict on the store's case sensitivity: Debian packages ship names that differ only in
/// case (terminfo's `E/` and `e/`, Perl modules), which collide on a case-insensitive filesystem.
pub fn case_check(store: &Path, case_sensitive: bool) -> Check {
    if case_sensitive {
        Check::ok("store case-sensitive", format!("{}", store.display()))
    } else {
        Check::fail(
            "store case-sensitive",
            format!("{} is on a case-insensitive filesystem: package files whose names differ only in case would overwrite each other", store.display()),
            "put the store on a case-sensitive filesystem (--store DIR or PIDEPLOY_STORE_DIR; on macOS a case-sensitive APFS volume)",
        )
    }
}

/// Every verdict on this machine, in report order.
pub fn checks(f: &MachineFacts) -> Vec<Check> {
    let mut out = Vec::new();
    for (t, found) in &f.tools {
        let name = format!("tool {}", t.program);
        let detail = |what: String| format!("{what}; {}", t.why);
        let verdict = |name: String, detail: String, fix: String| {
            if t.needed {
                Check::fail(name, detail, fix)
            } else {
                Check::warn(name, detail, fix)
            }
        };
        out.push(match found {
            Located::OnPath(p) => Check::ok(name, format!("{} ({})", p.display(), t.why)),
            Located::OffPath(p) if t.sbin_fallback => Check::ok(
                name,
                format!("{} (not on PATH, found in sbin; {})", p.display(), t.why),
            ),
            Located::OffPath(p) => verdict(
                name,
                detail(format!("{} is installed but not on PATH", p.display())),
                format!(
                    "add its directory to PATH: export PATH=\"$PATH:{}\"",
                    p.parent()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                ),
            ),
            Located::Missing => verdict(
                name,
                detail(format!("{} is not installed", t.program)),
                format!("apt-get install {}", t.package),
            ),
        });
    }
    out.extend(e2fs_checks(
        f.mke2fs_version.as_deref(),
        f.debugfs_version.as_deref(),
    ));
    if let Some(v) = &f.qemu_version {
        if let Some(line) = v.lines().find(|l| l.contains("version")) {
            out.push(Check::ok("qemu version", line.trim().to_string()));
        }
    }
    match &f.qemu_start {
        Some(s) => out.push(qemu_start_check(&f.qemu_bin, s)),
        None if f.qemu_bin != "qemu-system-aarch64" => out.push(Check::fail(
            "qemu starts",
            format!("PIDEPLOY_QEMU={} does not exist", f.qemu_bin),
            "point PIDEPLOY_QEMU at qemu-system-aarch64, or unset it",
        )),
        None => {}
    }
    out.extend(arm64_checks(f.foreign_archs.as_deref(), f.arm64_lists));
    for d in &f.dirs {
        out.extend(dir_checks(d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn e2fs_versions_are_read_from_the_banner() {
        assert_eq!(
            e2fs_version("mke2fs 1.47.0 (5-Feb-2023)\n\tUsing EXT2FS Library version 1.47.0\n"),
            Some((1, 47, 0))
        );
        assert_eq!(
            e2fs_version("debugfs 1.46.6-rc1 (1-Feb-2023)"),
            Some((1, 46, 6))
        );
        assert_eq!(e2fs_version("mke2fs 1.42 (29-Nov-2011)"), Some((1, 42, 0)));
        assert_eq!(e2fs_version("garbage"), None);
    }

    #[test]
    fn e2fs_verdicts_by_release_line() {
        let v = |t: &str| e2fs_checks(Some(t), Some(t));
        assert_eq!(v("mke2fs 1.47.0 (5-Feb-2023)")[0].status, Status::Ok);
        assert_eq!(v("mke2fs 1.46.5 (30-Dec-2021)")[0].status, Status::Warn);
        let old = v("mke2fs 1.42.9 (4-Feb-2014)");
        assert_eq!(old[0].status, Status::Fail);
        assert!(old[0].fix.as_deref().unwrap().contains("1.47"));
        let mixed = e2fs_checks(Some("mke2fs 1.47.0 (x)"), Some("debugfs 1.47.1 (x)"));
        assert_eq!(mixed.last().unwrap().status, Status::Warn);
        assert!(e2fs_checks(None, None).is_empty());
    }

    #[test]
    fn qemu_refusal_carries_qemu_own_words() {
        let c = qemu_start_check(
            "qemu-system-aarch64",
            &QemuStart::Refused {
                status: "exit status: 1".into(),
                stderr: "qemu-system-aarch64: -device virtio-net-pci: failed to find romfile \"efi-virtio.rom\"\n".into(),
            },
        );
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("failed to find romfile"), "{}", c.detail);
        assert_eq!(qemu_start_check("q", &QemuStart::Ok).status, Status::Ok);
        assert_eq!(qemu_start_check("q", &QemuStart::Hung).status, Status::Fail);
    }

    #[test]
    fn arm64_setup_verdicts() {
        assert_eq!(arm64_checks(Some("arm64\n"), Some(2))[0].status, Status::Ok);
        let missing = &arm64_checks(Some("i386\n"), Some(0))[0];
        assert_eq!(missing.status, Status::Fail);
        assert!(missing
            .fix
            .as_deref()
            .unwrap()
            .contains("--add-architecture arm64"));
        let no_lists = &arm64_checks(Some("arm64\n"), Some(0))[0];
        assert_eq!(no_lists.fix.as_deref(), Some("sudo apt-get update"));
        assert_eq!(arm64_checks(None, None)[0].status, Status::Warn);
    }

    #[test]
    fn case_insensitive_store_fails_and_sensitive_passes() {
        let bad = case_check(Path::new("/Volumes/Mac/store"), false);
        assert_eq!(bad.status, Status::Fail);
        assert!(bad.fix.as_deref().unwrap().contains("case-sensitive"));
        assert_eq!(case_check(Path::new("/s"), true).status, Status::Ok);
    }

    #[test]
    fn this_machines_filesystem_is_case_sensitive() {
        // The real probe on the real filesystem: Linux tmpfs and ext4 tell the names apart.
        let dir = tempfile::tempdir().unwrap();
        assert!(probe_case_sensitive(dir.path()).unwrap());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the probe file was removed"
        );
    }

    #[test]
    fn free_space_thresholds() {
        assert_eq!(
            free_check("store", 100 << 20, "--store").status,
            Status::Fail
        );
        assert_eq!(free_check("store", 2 << 30, "--store").status, Status::Warn);
        assert_eq!(free_check("store", 40 << 30, "--store").status, Status::Ok);
    }

    #[test]
    fn a_file_in_place_of_the_cache_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache");
        fs::write(&file, b"x").unwrap();
        let d = probe_dir("cache", &file.join("sub"));
        assert_eq!(d.probe, DirProbe::NotADir(file.clone()));
        let c = &dir_checks(&d)[0];
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.as_deref().unwrap().contains("PIDEPLOY_CACHE_DIR"));
        let ok = probe_dir("store", &dir.path().join("new/store"));
        assert!(matches!(ok.probe, DirProbe::Writable { .. }), "{ok:?}");
        assert_eq!(ok.case_sensitive, Some(true));
        assert!(dir_checks(&ok)
            .iter()
            .all(|c| c.status != Status::Fail || c.name.contains("free")));
    }

    #[test]
    fn missing_needed_tool_fails_with_its_package_and_optional_one_warns() {
        let facts = MachineFacts {
            tools: vec![
                (TOOLS[0], Located::Missing),
                (TOOLS[5], Located::Missing),
                (TOOLS[1], Located::OnPath("/sbin/debugfs".into())),
                (TOOLS[4], Located::OffPath("/usr/sbin/sfdisk".into())),
            ],
            mke2fs_version: None,
            debugfs_version: None,
            qemu_bin: "qemu-system-aarch64".into(),
            qemu_version: None,
            qemu_start: None,
            foreign_archs: Some("arm64\n".into()),
            arm64_lists: Some(1),
            dirs: vec![],
        };
        let c = checks(&facts);
        assert_eq!(c[0].status, Status::Fail);
        assert_eq!(c[0].fix.as_deref(), Some("apt-get install e2fsprogs"));
        assert_eq!(c[1].status, Status::Warn);
        assert_eq!(c[2].status, Status::Ok);
        assert_eq!(c[3].status, Status::Warn);
        assert_eq!(
            c[3].fix.as_deref(),
            Some("add its directory to PATH: export PATH=\"$PATH:/usr/sbin\"")
        );
        // pideploy finds e2fsprogs in sbin by itself: off PATH is fine there.
        let facts = MachineFacts {
            tools: vec![(TOOLS[0], Located::OffPath("/usr/sbin/mke2fs".into()))],
            ..facts
        };
        assert_eq!(checks(&facts)[0].status, Status::Ok);
    }
}
