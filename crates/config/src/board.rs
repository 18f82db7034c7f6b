//! Board definitions: one TOML file per board, the built-in ones embedded in the binary.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{parse_error, ConfigError};
use crate::validate::{ValidationError, ValidationErrorKind};

/// Built-in boards: (name, file text).
const BUILTIN: &[(&str, &str)] = &[
    ("rpi5", include_str!("../../../boards/rpi5.toml")),
    (
        "qemu-aarch64",
        include_str!("../../../boards/qemu-aarch64.toml"),
    ),
];

/// Built-in OpenPGP keyrings (`boards/keys/`), by the name an `[[apt]] keyring` gives: the keys
/// that sign each archive's `InRelease` (where each came from is written at the top of its file).
const BUILTIN_KEYRINGS: &[(&str, &str)] = &[
    (
        "debian.asc",
        include_str!("../../../boards/keys/debian.asc"),
    ),
    (
        "raspberrypi.asc",
        include_str!("../../../boards/keys/raspberrypi.asc"),
    ),
];

/// Everything pideploy needs to know about one kind of machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Short name, e.g. `rpi5`.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Debian architecture, e.g. `arm64`.
    pub arch: String,
    /// Boot partition contents and firmware settings.
    pub boot: BoardBoot,
    /// Where the kernel comes from.
    pub kernel: BoardKernel,
    /// A generated initrd, for boards whose kernel cannot mount the root file system by itself.
    #[serde(default)]
    pub initrd: Option<BoardInitrd>,
    /// Partition table defaults.
    pub partitions: BoardPartitions,
    /// Package archives, searched in order.
    pub apt: Vec<AptSource>,
    /// Packages every system on this board gets.
    #[serde(default)]
    pub base_packages: Vec<String>,
    /// Packages a system with `[network.wifi]` gets besides wpasupplicant and wireless-regdb: the
    /// radio's firmware (the Pi 5's CYW43455 needs Raspberry Pi's `firmware-brcm80211`).
    #[serde(default)]
    pub wifi_packages: Vec<String>,
    /// How the qemu harness runs this board, if it can.
    #[serde(default)]
    pub qemu: Option<BoardQemu>,
}

/// Boot partition and firmware settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardBoot {
    /// Firmware family reading the boot partition (`rpi`).
    pub firmware: String,
    /// Name the kernel image gets on the boot partition, e.g. `kernel_2712.img`.
    pub kernel_file: String,
    /// Device tree blobs copied to the boot partition.
    #[serde(default)]
    pub device_trees: Vec<String>,
    /// Whether the overlays directory is copied.
    #[serde(default)]
    pub overlays: bool,
    /// Files in the overlays directory that must exist (the build fails without them).
    #[serde(default)]
    pub required_overlays: Vec<String>,
    /// Base config.txt body; pideploy appends the generation's lines after it, so it ends in `[all]`.
    pub config_txt: String,
    /// Base kernel command line arguments.
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// Terminals that get a login prompt and the boot's SSH host key line (e.g. the Pi 5's debug
    /// UART `ttyAMA10` and the HDMI console `tty1`). Empty: the QEMU console, else `/dev/console`.
    #[serde(default)]
    pub login_consoles: Vec<String>,
}

/// Where the kernel comes from and where its parts lie inside the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardKernel {
    /// apt package name, e.g. `linux-image-rpi-2712` or `linux-image-arm64`.
    pub package: String,
    /// Dependencies with this prefix are followed to find the real kernel package.
    pub follow_prefix: String,
    /// Glob (inside the package) of the kernel image, e.g. `boot/vmlinuz-*`.
    pub image_glob: String,
    /// Glob of the device tree blobs, if the package ships them.
    #[serde(default)]
    pub dtb_glob: Option<String>,
    /// Glob of the overlay files, if the package ships them.
    #[serde(default)]
    pub overlays_glob: Option<String>,
    /// Glob of the modules directory, e.g. `lib/modules/*`.
    pub modules_glob: String,
    /// Which modules go on the root (paths under the modules directory that start with one of
    /// these, plus their dependencies); all of them when absent.
    #[serde(default)]
    pub root_modules: Option<Vec<String>>,
}

/// A generated initrd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardInitrd {
    /// Module names to load; their dependencies are resolved by the builder.
    pub modules: Vec<String>,
}

/// Partition table defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardPartitions {
    /// `mbr` or `gpt`.
    pub table: String,
    /// Size of the FAT32 boot partition.
    pub boot_size_mib: u64,
    /// FAT volume label of the boot partition.
    pub boot_label: String,
    /// ext4 label of the root partition.
    pub root_label: String,
}

/// One apt archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptSource {
    /// Name used in the lock file (`debian`, `raspberrypi`).
    pub name: String,
    /// Base URL, e.g. `http://deb.debian.org/debian`.
    pub url: String,
    /// Suite, e.g. `bookworm`.
    pub suite: String,
    /// Components, e.g. `["main"]`.
    pub components: Vec<String>,
    /// The OpenPGP keys the archive signs its `InRelease` with: a built-in keyring
    /// (`debian.asc`, `raspberrypi.asc`) or a file, relative to the board file.
    pub keyring: String,
}

/// QEMU settings for boards the harness can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardQemu {
    /// `-M` value.
    pub machine: String,
    /// `-cpu` value.
    pub cpu: String,
    /// `-m` value in MiB.
    pub memory_mib: u32,
    /// Serial console device name inside the guest.
    pub console: String,
}

/// FAT32 needs at least 65525 clusters; below ~64 MiB that forces tiny clusters.
const MIN_BOOT_SIZE_MIB: u64 = 64;

impl Board {
    /// Loads a built-in board by name, or a board file if `name_or_path` looks like a path
    /// (contains `/` or ends in `.toml`). Unknown names give one line listing the known ones.
    pub fn load(name_or_path: &str) -> Result<Self, ConfigError> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::from_toml_str(text, &format!("boards/{name}.toml"));
        }
        if !is_board_path(name_or_path) {
            return Err(ConfigError::UnknownBoard {
                name: name_or_path.to_owned(),
                known: Self::known().into_iter().map(str::to_owned).collect(),
            });
        }
        let path = Path::new(name_or_path);
        let text = crate::error::read_config_text(path)?;
        Self::from_toml_str(&text, name_or_path)
    }

    /// The keyring of the apt source `source` of the board `board` (a built-in name or a board
    /// file's path, as given to [`Board::load`]): (where it came from, its bytes).
    pub fn apt_keyring(board: &str, source: &AptSource) -> Result<(String, Vec<u8>), ConfigError> {
        if let Some((name, text)) = BUILTIN_KEYRINGS.iter().find(|(n, _)| *n == source.keyring) {
            return Ok((format!("boards/keys/{name}"), text.as_bytes().to_vec()));
        }
        let unknown = || ConfigError::UnknownKeyring {
            board: board.to_owned(),
            source_name: source.name.clone(),
            keyring: source.keyring.clone(),
            known: BUILTIN_KEYRINGS
                .iter()
                .map(|(n, _)| (*n).to_owned())
                .collect(),
        };
        if !is_board_path(board) {
            return Err(unknown());
        }
        let dir = Path::new(board).parent().unwrap_or(Path::new("."));
        let path = dir.join(&source.keyring);
        if !path.is_file() {
            return Err(unknown());
        }
        let bytes = std::fs::read(&path).map_err(|e| ConfigError::Read {
            path: path.clone(),
            source: e,
        })?;
        Ok((path.display().to_string(), bytes))
    }

    /// Names of the built-in boards.
    pub fn known() -> Vec<&'static str> {
        BUILTIN.iter().map(|(name, _)| *name).collect()
    }

    /// Parses and validates board TOML; `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let board: Board = toml::from_str(text).map_err(|e| parse_error(origin, text, &e))?;
        board.validate().map_err(|issues| ConfigError::Invalid {
            origin: origin.to_owned(),
            issues,
        })?;
        Ok(board)
    }

    /// Checks the rules the builder relies on.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut issues = Vec::new();
        let mut push = |path: &str, problem: &'static str| {
            issues.push(ValidationError {
                path: path.to_owned(),
                kind: ValidationErrorKind::Board(problem),
            })
        };
        if !crate::rules::is_hostname(&self.name) {
            push("name", "must be letters, digits and hyphens");
        }
        if self.arch.is_empty() {
            push("arch", "must name a Debian architecture, e.g. `arm64`");
        }
        if self.boot.kernel_file.is_empty() || self.boot.kernel_file.contains('/') {
            push("boot.kernel_file", "must be a plain file name");
        }
        if last_section(&self.boot.config_txt) != "[all]" {
            push(
                "boot.config_txt",
                "must end in the [all] section so the lines pideploy appends apply to every model",
            );
        }
        if !crate::rules::is_package_name(&self.kernel.package) {
            push("kernel.package", "must be a Debian package name");
        }
        if self.kernel.image_glob.is_empty() || self.kernel.modules_glob.is_empty() {
            push("kernel", "image_glob and modules_glob must not be empty");
        }
        if !matches!(self.partitions.table.as_str(), "mbr" | "gpt") {
            push("partitions.table", "must be `mbr` or `gpt`");
        }
        if self.partitions.boot_size_mib < MIN_BOOT_SIZE_MIB {
            push(
                "partitions.boot_size_mib",
                "must be at least 64 (FAT32 minimum)",
            );
        }
        // FAT labels are at most 11 bytes; ext4 labels at most 16.
        if self.partitions.boot_label.is_empty() || self.partitions.boot_label.len() > 11 {
            push("partitions.boot_label", "must be 1 to 11 characters");
        }
        if self.partitions.root_label.is_empty() || self.partitions.root_label.len() > 16 {
            push("partitions.root_label", "must be 1 to 16 characters");
        }
        if self.apt.is_empty() {
            push("apt", "at least one apt source is required");
        }
        for source in &self.apt {
            if !(source.url.starts_with("http://") || source.url.starts_with("https://")) {
                push("apt.url", "must be an http:// or https:// URL");
            }
            if source.keyring.is_empty() {
                push("apt.keyring", "names the keys that sign the archive (e.g. \"debian.asc\"); pideploy uses only signed indexes");
            }
            if source.name.is_empty() || source.suite.is_empty() || source.components.is_empty() {
                push("apt", "each source needs a name, a suite and components");
            }
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
        }
    }
}

/// Whether a `board` value names a board file rather than a built-in board.
pub(crate) fn is_board_path(s: &str) -> bool {
    !BUILTIN.iter().any(|(name, _)| *name == s) && (s.contains('/') || s.ends_with(".toml"))
}

/// The last `[section]` line of a config.txt body, or `[all]` if there is none (the default).
fn last_section(config_txt: &str) -> &str {
    config_txt
        .lines()
        .map(str::trim)
        .rev()
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .unwrap_or("[all]")
}
