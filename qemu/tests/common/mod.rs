//! Guest artifacts for the boot tests: a Debian arm64 kernel and a static busybox, fetched once
//! with `apt-get download` and cached under `target/test-debs/`, and initramfs builders.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use pideploy_image::cpio::{write_newc, CpioEntry};

/// Serialises the downloads of the test threads of one binary.
static FETCH: Mutex<()> = Mutex::new(());

/// Where downloaded packages and the files taken from them are kept between runs.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("PIDEPLOY_TEST_DEBS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-debs"),
    }
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The name of the current generic arm64 kernel package (it moves with security updates).
fn kernel_package() -> String {
    let out = run(Command::new("apt-cache").args(["depends", "linux-image-arm64:arm64"]));
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|p| {
            p.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .find(|p| p.starts_with("linux-image-"))
        .unwrap_or_else(|| {
            panic!(
                "apt-cache names no kernel for linux-image-arm64:arm64; run \
                 `dpkg --add-architecture arm64 && apt-get update`\n{text}"
            )
        })
}

/// Downloads `package` (once) and returns the bytes of `member` inside its data archive
/// (`member` may be a tar wildcard), caching them as `cache_dir()/name`.
fn from_deb(package: &str, member: &str, name: &str) -> PathBuf {
    let _guard = FETCH.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache_dir();
    let target = cache.join(name);
    if target.exists() {
        return target;
    }
    fs::create_dir_all(&cache).unwrap();
    let work = tempfile::tempdir_in(&cache).unwrap();
    run(Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(work.path()));
    let deb = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("apt-get download wrote a .deb");
    let script = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -xO --wildcards '{member}'",
        deb.display()
    );
    let bytes = run(Command::new("sh").args(["-c", &script]));
    assert!(!bytes.is_empty(), "{member} not found in {package}");
    let partial = work.path().join(name);
    fs::write(&partial, bytes).unwrap();
    // Renamed into place only when complete, so a killed run leaves no half file behind.
    fs::rename(&partial, &target).unwrap();
    target
}

/// The uncompressed arm64 `Image` of Debian's current generic kernel.
pub fn kernel() -> PathBuf {
    let package = format!("{}:arm64", kernel_package().trim_end_matches(":arm64"));
    let name = format!(
        "vmlinuz-{}",
        package
            .trim_start_matches("linux-image-")
            .trim_end_matches(":arm64")
    );
    from_deb(&package, "./boot/vmlinuz-*", &name)
}

/// Debian's static aarch64 busybox.
pub fn busybox() -> PathBuf {
    from_deb(
        "busybox-static:arm64",
        "./bin/busybox",
        "busybox-static-arm64",
    )
}

/// An initramfs with busybox, `/dev/console`, `/init` = `init_script` and extra files (0755, in
/// `bin/`, `etc/` or the top).
pub fn initramfs(init_script: &str, extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let dir = |path: &str| CpioEntry::Dir {
        path: path.into(),
        mode: 0o755,
    };
    let file = |path: &str, data: Vec<u8>| CpioEntry::File {
        path: path.into(),
        mode: 0o755,
        data,
    };
    let mut entries = vec![
        dir("bin"),
        dir("dev"),
        dir("etc"),
        dir("proc"),
        dir("sys"),
        file("bin/busybox", fs::read(busybox()).unwrap()),
        CpioEntry::Symlink {
            path: "bin/sh".into(),
            target: "busybox".into(),
        },
        CpioEntry::CharDev {
            path: "dev/console".into(),
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        file(
            "init",
            format!("#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n{init_script}")
                .into_bytes(),
        ),
    ];
    for (path, data) in extra {
        entries.push(file(path, data.clone()));
    }
    write_newc(&entries).unwrap()
}

/// A static aarch64 program that calls `reboot(LINUX_REBOOT_CMD_RESTART2, arg)`, the syscall
/// behind `reboot '0 tryboot'` on a Pi, then exits 1 if the kernel refused.
///
/// Hand-assembled: one ELF64 header, one PT_LOAD program header, code, the argument string.
pub fn restart2_elf(arg: &str) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const CODE_OFF: u64 = 64 + 56;
    let movz = |rd: u32, imm: u32, hw: u32| 0xD280_0000 | (hw << 21) | (imm << 5) | rd;
    let movk = |rd: u32, imm: u32, hw: u32| 0xF280_0000 | (hw << 21) | (imm << 5) | rd;
    let svc0 = 0xD400_0001u32;
    let mut code = vec![
        movz(0, 0xdead, 0),
        movk(0, 0xfee1, 1), // LINUX_REBOOT_MAGIC1
        movz(1, 0x1969, 0),
        movk(1, 0x2812, 1), // LINUX_REBOOT_MAGIC2
        movz(2, 0xc3d4, 0),
        movk(2, 0xa1b2, 1), // LINUX_REBOOT_CMD_RESTART2
        0,                  // adr x3, arg (patched below)
        movz(8, 142, 0),    // __NR_reboot on arm64
        svc0,
        movz(0, 1, 0),
        movz(8, 93, 0), // __NR_exit
        svc0,
    ];
    let adr_index = 6;
    let offset = ((code.len() - adr_index) * 4) as u32;
    code[adr_index] = 0x1000_0000 | ((offset & 3) << 29) | ((offset >> 2) << 5) | 3;
    let mut body: Vec<u8> = code.iter().flat_map(|i| i.to_le_bytes()).collect();
    body.extend_from_slice(arg.as_bytes());
    body.push(0);
    let total = CODE_OFF + body.len() as u64;

    let mut elf = Vec::new();
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + CODE_OFF).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    elf.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    elf.extend_from_slice(&56u16.to_le_bytes()); // phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // phnum
    elf.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R+X
    elf.extend_from_slice(&0u64.to_le_bytes()); // offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // paddr
    elf.extend_from_slice(&total.to_le_bytes()); // filesz
    elf.extend_from_slice(&total.to_le_bytes()); // memsz
    elf.extend_from_slice(&0x1_0000u64.to_le_bytes()); // align
    assert_eq!(elf.len() as u64, CODE_OFF);
    elf.extend(body);
    elf
}
