//! Board files: both built-ins load and carry the facts the builder relies on; names and paths.

use pideploy_config::{Board, ConfigError};

#[test]
fn known_boards_are_listed() {
    assert_eq!(Board::known(), vec!["rpi5", "qemu-aarch64"]);
}

#[test]
fn rpi5_loads() {
    let board = Board::load("rpi5").unwrap();
    assert_eq!(board.name, "rpi5");
    assert_eq!(board.arch, "arm64");
    assert_eq!(board.boot.kernel_file, "kernel_2712.img");
    assert_eq!(board.kernel.package, "linux-image-rpi-2712");
    assert_eq!(board.kernel.follow_prefix, "linux-image-");
    for dtb in [
        "bcm2712-rpi-5-b.dtb",
        "bcm2712d0-rpi-5-b.dtb",
        "bcm2712-rpi-cm5-cm5io.dtb",
        "bcm2712-rpi-cm5-cm4io.dtb",
        "bcm2712-rpi-cm5l-cm5io.dtb",
        "bcm2712-rpi-cm5l-cm4io.dtb",
        "bcm2712-rpi-500.dtb",
    ] {
        assert!(board.boot.device_trees.iter().any(|d| d == dtb), "{dtb}");
    }
    assert!(board.boot.overlays);
    assert_eq!(
        board.boot.required_overlays,
        ["bcm2712d0.dtbo", "overlay_map.dtb", "README"]
    );
    assert!(board.initrd.is_none());
    assert!(board.qemu.is_none());
    let config: Vec<&str> = board.boot.config_txt.lines().collect();
    for line in ["arm_64bit=1", "[pi5]", "enable_uart=1", "auto_initramfs=0"] {
        assert!(config.contains(&line), "config.txt lacks {line}");
    }
    assert_eq!(
        board.boot.cmdline,
        [
            "console=tty1",
            "console=serial0,115200",
            "rootfstype=ext4",
            "rootwait=60",
            "panic=10",
            "pideploy.fail=reboot"
        ]
    );
    // The UART is /dev/console (the last console=), and both terminals get a login prompt.
    assert_eq!(board.boot.login_consoles, ["ttyAMA10", "tty1"]);
    let p = &board.partitions;
    assert_eq!(
        (
            p.table.as_str(),
            p.boot_size_mib,
            p.boot_label.as_str(),
            p.root_label.as_str()
        ),
        ("mbr", 512, "bootfs", "rootfs")
    );
    let apt: Vec<(&str, &str, &str)> = board
        .apt
        .iter()
        .map(|a| (a.url.as_str(), a.suite.as_str(), a.components[0].as_str()))
        .collect();
    assert_eq!(
        apt,
        [
            ("http://archive.raspberrypi.com/debian", "bookworm", "main"),
            ("http://deb.debian.org/debian", "bookworm", "main"),
            (
                "http://deb.debian.org/debian-security",
                "bookworm-security",
                "main"
            ),
        ]
    );
}

#[test]
fn qemu_board_loads() {
    let board = Board::load("qemu-aarch64").unwrap();
    assert_eq!(board.boot.kernel_file, "vmlinuz");
    assert!(board.boot.config_txt.lines().any(|l| l == "kernel=vmlinuz"));
    assert_eq!(board.kernel.package, "linux-image-arm64");
    assert_eq!(board.kernel.image_glob, "boot/vmlinuz-*");
    assert_eq!(
        board.boot.cmdline,
        ["console=ttyAMA0", "rootwait", "panic=-1"]
    );
    let initrd = board.initrd.as_ref().unwrap();
    assert_eq!(
        initrd.modules,
        [
            "virtio_pci",
            "virtio_blk",
            "virtio_net",
            // ext4 needs a crc32c implementation, which the generic kernel has only as a module.
            "crc32c_generic",
            "ext4",
            "vfat",
            "nls_cp437",
            "nls_ascii",
            "nls_utf8",
            "i6300esb"
        ]
    );
    assert_eq!(
        board.base_packages,
        [
            "base-passwd",
            "bash",
            "busybox-static",
            "dbus",
            "dosfstools",
            "dropbear-bin",
            "e2fsprogs",
            "kmod",
            "systemd",
            "systemd-sysv",
            "udev",
            "util-linux",
            "zstd"
        ]
    );
    let qemu = board.qemu.as_ref().unwrap();
    assert_eq!(
        (
            qemu.machine.as_str(),
            qemu.cpu.as_str(),
            qemu.memory_mib,
            qemu.console.as_str()
        ),
        ("virt", "cortex-a72", 1024, "ttyAMA0")
    );
    let suites: Vec<&str> = board.apt.iter().map(|a| a.suite.as_str()).collect();
    assert_eq!(suites, ["bookworm", "bookworm-security"]);
}

#[test]
fn unknown_board_lists_known_ones_on_one_line() {
    let err = Board::load("rpi4").unwrap_err();
    assert!(matches!(err, ConfigError::UnknownBoard { .. }));
    let text = err.to_string();
    assert_eq!(
        text,
        "unknown board `rpi4`; known boards: rpi5, qemu-aarch64; or give a path to a board .toml file"
    );
}

#[test]
fn board_from_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.toml");
    let text = include_str!("../../../boards/qemu-aarch64.toml")
        .replace("name = \"qemu-aarch64\"", "name = \"my-board\"")
        .replace("memory_mib = 1024", "memory_mib = 2048");
    std::fs::write(&path, text).unwrap();
    let board = Board::load(path.to_str().unwrap()).unwrap();
    assert_eq!(board.name, "my-board");
    assert_eq!(board.qemu.unwrap().memory_mib, 2048);

    let missing = Board::load(dir.path().join("nope.toml").to_str().unwrap()).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }), "{missing:?}");
}

#[test]
fn board_file_errors_are_located_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let good = include_str!("../../../boards/qemu-aarch64.toml");
    std::fs::write(
        &path,
        good.replace("arch = \"arm64\"", "arch = \"arm64\"\nflavour = 1"),
    )
    .unwrap();
    let err = Board::load(path.to_str().unwrap()).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Parse { line: 7, column: 1, message, .. } if message.contains("unknown field `flavour`")),
        "{err:?}"
    );

    std::fs::write(&path, good.replace("table = \"mbr\"", "table = \"apm\"")).unwrap();
    let err = Board::load(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(
        err.contains("partitions.table: must be `mbr` or `gpt`"),
        "{err}"
    );

    // Lines pideploy appends must not land inside a model-specific section.
    std::fs::write(&path, good.replace("\n[all]\n\"\"\"", "\n[pi5]\n\"\"\"")).unwrap();
    let err = Board::load(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("boot.config_txt"), "{err}");
}
