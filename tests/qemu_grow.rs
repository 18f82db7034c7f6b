//! First-boot root grow on QEMU: a qemu-aarch64 image (MBR, and GPT) built at minimal size and then
//! enlarged with `truncate` grows its root partition to the end of the disk and its ext4 filesystem
//! on first boot (one reboot in between), exactly once; the result is checked inside the guest over
//! SSH and afterwards with sfdisk, sgdisk, dumpe2fs and e2fsck on the image. A board without
//! e2fsprogs shows the failure path: the grow is refused before anything is written, said on the
//! console, recorded, and the system boots at its old size.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::guest::Guest;
use common::*;

/// How much each test enlarges its image.
const GROW_BYTES: u64 = 256 << 20;

struct Setup {
    _dir: tempfile::TempDir,
    w: PathBuf,
    key: PathBuf,
    image: PathBuf,
}

/// Locks, imports and builds a minimal image for a `pi` user with sudo; `board` is a board name or
/// a board file; `table` is "mbr" or "gpt".
fn setup(board: &str, table: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().to_path_buf();
    let (key, public) = keypair(&w);
    let config = w.join("pi.toml");
    fs::write(
        &config,
        format!(
            "board = \"{board}\"\nhostname = \"grow\"\n\n[[users]]\nname = \"pi\"\nuid = 1000\n\
             sudo = true\nssh_authorized_keys = [\"{public}\"]\n"
        ),
    )
    .unwrap();
    let lock = w.join("pideploy.lock");
    let cache = w.join("cache");
    let store = w.join("store");
    lock_and_import(&config, &lock, &cache, &store);
    let image = w.join("pi.img");
    run(env_for(&mut pideploy(), &cache, &store)
        .arg("image")
        .arg("--config")
        .arg(&config)
        .arg("--lock")
        .arg(&lock)
        .args(["--table", table])
        .arg("-o")
        .arg(&image));
    Setup {
        _dir: dir,
        w,
        key,
        image,
    }
}

/// Enlarges the image the way a bigger card looks to the kernel: zeros appended at the end.
fn enlarge(image: &Path) -> u64 {
    run(Command::new("truncate")
        .arg("-s")
        .arg(format!("+{GROW_BYTES}"))
        .arg(image));
    fs::metadata(image).unwrap().len() / 512
}

fn first_sector(image: &Path) -> Vec<u8> {
    let mut buf = vec![0; 512];
    fs::File::open(image).unwrap().read_exact(&mut buf).unwrap();
    buf
}

fn sfdisk_json(image: &Path) -> serde_json::Value {
    let out = run(Command::new("sfdisk").arg("--json").arg(image));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (block count, block size) of the ext4 in `part`, by dumpe2fs.
fn ext4_blocks(part: &Path) -> (u64, u64) {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(part));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in dumpe2fs output:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    (field("Block count:"), field("Block size:"))
}

/// Extracts the root partition and checks it with e2fsck -fn; returns its size in bytes per ext4.
fn check_root_fs(w: &Path, image: &Path, start: u64, size: u64) -> u64 {
    let root = w.join("root.part");
    extract(image, start, size, &root);
    run(Command::new("e2fsck").arg("-fn").arg(&root));
    let (count, bsize) = ext4_blocks(&root);
    fs::remove_file(&root).unwrap();
    count * bsize
}

fn grows_once(table: &str) {
    let started = Instant::now();
    let s = setup("qemu-aarch64", table);
    let before = partitions(&s.image);
    assert_eq!(before.len(), 2);
    let (start, old_size) = (before[1].0, before[1].1);
    let old_fs = check_root_fs(&s.w, &s.image, start, old_size);
    let total = enlarge(&s.image);

    // First boot: the table grows, the guest reboots once, the filesystem grows.
    let mut vm = Guest::start(
        &s.image,
        s.w.join("console-1.log"),
        Duration::from_secs(150),
        4,
    );
    let console = vm.wait_for("PIDEPLOY-READY", Duration::from_secs(120));
    assert!(
        console.contains(&format!(
            "pideploy: grow-root: growing partition 2 of vda ({table}) from {} MiB",
            old_size / 2048
        )),
        "{console}"
    );
    assert!(
        console.contains("pideploy: grow-root: partition table written; rebooting once"),
        "{console}"
    );
    assert_eq!(
        console.matches("reboot: Restarting system").count(),
        1,
        "exactly one reboot:\n{console}"
    );
    assert!(
        console.contains("pideploy: grow-root: done: root is"),
        "{console}"
    );
    assert!(!console.contains("FAILED"), "{console}");

    // Inside the guest: the kernel's partition and the mounted filesystem are the bigger ones.
    let sectors: u64 = vm
        .ssh(
            &vm.known_hosts(&s.w),
            &s.key,
            "pi",
            "cat /sys/class/block/vda2/size",
        )
        .parse()
        .unwrap();
    assert!(
        sectors > old_size + (GROW_BYTES / 512) * 9 / 10,
        "vda2 has {sectors} sectors, was {old_size}"
    );
    let df = vm.ssh(&vm.known_hosts(&s.w), &s.key, "pi", "df -k / | tail -n 1");
    let df_kib: u64 = df.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        df_kib * 1024 > old_size * 512,
        "df shows {df_kib} KiB, more than the old partition's {} KiB: {df}",
        old_size / 2
    );
    let record = vm.ssh(
        &vm.known_hosts(&s.w),
        &s.key,
        "pi",
        "cat /pideploy/var/root-grown",
    );
    assert!(record.contains("result=grown"), "{record}");
    assert!(record.contains(&format!("table={table}")), "{record}");
    assert_eq!(
        vm.ssh(
            &vm.known_hosts(&s.w),
            &s.key,
            "pi",
            "test -e /pideploy/var/root-grow.pending && echo left || echo gone"
        ),
        "gone"
    );
    vm.power_off(&vm.known_hosts(&s.w), &s.key, "pi");

    // Outside: the table and the filesystem, checked by tools that share nothing with the script.
    let json = sfdisk_json(&s.image);
    let parts = partitions(&s.image);
    assert_eq!(parts[0], before[0], "the boot partition is untouched");
    assert_eq!(parts[1].0, start, "the root keeps its start");
    assert_eq!(parts[1].1, sectors, "the table and the kernel agree");
    let end = start + parts[1].1; // first sector after the root
    assert_eq!(end % 2048, 0, "the root ends on a 1 MiB boundary");
    if table == "gpt" {
        let last_usable = json["partitiontable"]["lastlba"].as_u64().unwrap();
        assert_eq!(last_usable, total - 34, "backup GPT at the new end");
        assert!(
            end - 1 <= last_usable && last_usable + 1 - end < 2048,
            "{json}"
        );
        let out = run(Command::new("sgdisk").arg("-v").arg(&s.image));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("No problems found"), "sgdisk -v:\n{text}");
    } else {
        assert!(end <= total && total - end < 2048, "{json}");
    }
    let out = run(Command::new("sfdisk").arg("--verify").arg(&s.image));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No errors detected"),
        "sfdisk --verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let fs_bytes = check_root_fs(&s.w, &s.image, start, parts[1].1);
    assert!(
        fs_bytes > old_fs,
        "ext4 grew ({old_fs} -> {fs_bytes} bytes)"
    );
    assert!(
        parts[1].1 * 512 - fs_bytes < 4096,
        "ext4 fills its partition: {fs_bytes} of {} bytes",
        parts[1].1 * 512
    );
    let boot = s.w.join("boot.part");
    extract(&s.image, parts[0].0, parts[0].1, &boot);
    run(Command::new("fsck.fat").arg("-n").arg(&boot));

    // Second boot: nothing more to grow, and the console says so.
    let mut vm = Guest::start(
        &s.image,
        s.w.join("console-2.log"),
        Duration::from_secs(150),
        4,
    );
    let console = vm.wait_for("PIDEPLOY-READY", Duration::from_secs(90));
    assert!(
        console.contains("pideploy: grow-root: already done on first boot (result=grown"),
        "{console}"
    );
    assert!(!console.contains("grow-root: growing"), "{console}");
    assert!(!console.contains("reboot: Restarting system"), "{console}");
    vm.power_off(&vm.known_hosts(&s.w), &s.key, "pi");
    assert_eq!(
        partitions(&s.image),
        parts,
        "the second boot changed nothing"
    );
    eprintln!("{table}: {:?}", started.elapsed());
}

#[test]
fn mbr_root_grows_to_the_end_of_the_disk_once() {
    grows_once("mbr");
}

#[test]
fn gpt_root_grows_to_the_end_of_the_disk_once() {
    grows_once("gpt");
}

/// Without e2fsprogs the filesystem could not follow the partition: nothing may be written, the
/// console says why, and the system boots as it is.
#[test]
fn failed_grow_leaves_a_bootable_system_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let stock = fs::read_to_string(repo().join("boards/qemu-aarch64.toml")).unwrap();
    let wanted = "\"dropbear-bin\", \"e2fsprogs\", \"kmod\"";
    assert!(
        stock.contains(wanted),
        "boards/qemu-aarch64.toml no longer has the base_packages line this test rewrites"
    );
    let board = dir.path().join("no-e2fsprogs.toml");
    fs::write(&board, stock.replace(wanted, "\"dropbear-bin\", \"kmod\"")).unwrap();
    let s = setup(board.to_str().unwrap(), "mbr");
    let head_before = first_sector(&s.image);
    let before = partitions(&s.image);
    enlarge(&s.image);

    let mut vm = Guest::start(
        &s.image,
        s.w.join("console-1.log"),
        Duration::from_secs(150),
        4,
    );
    let console = vm.wait_for("PIDEPLOY-READY", Duration::from_secs(120));
    assert!(
        console.contains("pideploy: grow-root: FAILED: resize2fs is missing"),
        "{console}"
    );
    assert!(console.contains("the system boots normally"), "{console}");
    assert!(!console.contains("reboot: Restarting system"), "{console}");
    assert!(vm
        .ssh(
            &vm.known_hosts(&s.w),
            &s.key,
            "pi",
            "cat /pideploy/var/root-grown"
        )
        .contains("result=failed"));
    vm.power_off(&vm.known_hosts(&s.w), &s.key, "pi");
    assert_eq!(partitions(&s.image), before, "the table is untouched");
    assert_eq!(
        first_sector(&s.image),
        head_before,
        "not one byte of the MBR changed"
    );
    check_root_fs(&s.w, &s.image, before[1].0, before[1].1);

    // Recorded: the next boot does not try again.
    let mut vm = Guest::start(
        &s.image,
        s.w.join("console-2.log"),
        Duration::from_secs(150),
        4,
    );
    let console = vm.wait_for("PIDEPLOY-READY", Duration::from_secs(90));
    assert!(
        console.contains("pideploy: grow-root: already done on first boot (result=failed"),
        "{console}"
    );
    vm.power_off(&vm.known_hosts(&s.w), &s.key, "pi");
}
