//! What the Raspberry Pi 5 firmware would boot from a boot partition: pure, no I/O.
//!
//! The rules come from the Raspberry Pi documentation (each cited where it is used):
//! - config.txt boot options (`kernel`, `cmdline`, `initramfs`, `auto_initramfs`, `os_prefix`,
//!   `device_tree`): <https://www.raspberrypi.com/documentation/computers/config_txt.html#boot-options>
//! - Conditional filters: <https://www.raspberrypi.com/documentation/computers/config_txt.html#conditional-filters>
//! - Fail-safe OS updates (TRYBOOT): <https://www.raspberrypi.com/documentation/computers/raspberry-pi.html#fail-safe-os-updates-tryboot>
//!   ("a one-shot flag which, if set, is cleared but causes `tryboot.txt` to be loaded instead of
//!   `config.txt`").
//!
//! `qemu/README.md` lists exactly which rules are emulated and which are not.

mod config;

use std::collections::BTreeMap;

pub use config::MAX_LINE_CHARS;

/// The board whose firmware is emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    /// Raspberry Pi 5 Model B (BCM2712).
    #[default]
    Pi5,
}

impl Model {
    /// The kernel file loaded when `config.txt` names none ("The default value on Raspberry Pi 5
    /// … is `kernel_2712.img`", config.txt › Boot options › `kernel`).
    pub fn default_kernel(self) -> &'static str {
        match self {
            Model::Pi5 => "kernel_2712.img",
        }
    }

    /// The device tree the firmware loads for this board when `device_tree=` is not set.
    pub fn default_device_tree(self) -> &'static str {
        match self {
            Model::Pi5 => "bcm2712-rpi-5-b.dtb",
        }
    }

    /// The revision-code board type (`[board-type=0x17]` is the Pi 5 Model B).
    fn board_type(self) -> u32 {
        match self {
            Model::Pi5 => 0x17,
        }
    }

    /// `Some(matches)` when `filter` (lower-case, without brackets) is a model filter.
    ///
    /// A Pi 5 Model B sees `[pi5]`; `[pi500]` and `[cm5]` are narrower filters that a Pi 500 / CM5
    /// see *in addition* to `[pi5]`, so they are false here, as are all older models.
    fn matches_model_filter(self, filter: &str) -> Option<bool> {
        const MODEL_FILTERS: &[&str] = &[
            "pi1", "pi2", "pi3", "pi3+", "pi4", "pi400", "cm4", "cm4s", "pi0", "pi0w", "pi02",
            "pi5", "pi500", "cm5",
        ];
        if !MODEL_FILTERS.contains(&filter) {
            return None;
        }
        Some(match self {
            Model::Pi5 => filter == "pi5",
        })
    }

    fn matches_board_type(self, value: &str) -> bool {
        let value = value.trim();
        let parsed = match value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
        {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        };
        parsed == Some(self.board_type())
    }
}

/// Everything [`select`] needs: the tryboot flag, the board, and a way to read boot-partition files.
pub struct FirmwareInput<'a> {
    /// The one-shot tryboot flag (`reboot '0 tryboot'`) is set for this boot.
    pub tryboot: bool,
    /// The board being emulated.
    pub model: Model,
    /// Reads a file of the boot partition by path (no leading `/`); `None` when it does not
    /// exist. Case-insensitive lookup, as on FAT, is the caller's job.
    pub read: &'a dyn Fn(&str) -> Option<Vec<u8>>,
}

/// What the firmware would boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSelection {
    /// `config.txt`, or `tryboot.txt` when the tryboot flag was set.
    pub config_file: String,
    /// The `os_prefix` in force (empty when unset or found not viable).
    pub os_prefix: String,
    /// Full path of the kernel on the boot partition.
    pub kernel: String,
    /// Full path of the (first) initramfs, if any.
    pub initramfs: Option<String>,
    /// Further initramfs files (`initramfs a,b followkernel`); the firmware concatenates them
    /// after [`BootSelection::initramfs`] in memory.
    pub extra_initramfs: Vec<String>,
    /// Full path of the file the command line was read from.
    pub cmdline_file: String,
    /// The kernel command line as the firmware would pass it.
    pub cmdline: String,
    /// Full path of the device tree the firmware would load, if it exists. QEMU's `virt` machine
    /// supplies its own tree, so this is informational.
    pub device_tree: Option<String>,
    /// Every `property=value` in force after filters and overrides.
    pub settings: BTreeMap<String, String>,
    /// What the emulation noticed or could not do exactly as the firmware would.
    pub notes: Vec<String>,
}

/// Why no boot selection could be made.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// The kernel file the firmware would load does not exist.
    #[error("the firmware would load the kernel `{path}` (from {config_file}), but the boot partition has no such file; put the kernel there or fix `kernel=`/`os_prefix=` in {config_file}")]
    KernelMissing {
        /// Path looked for.
        path: String,
        /// The config file that was read.
        config_file: String,
    },
    /// The command-line file does not exist.
    #[error("the firmware would read the kernel command line from `{path}` (from {config_file}), but the boot partition has no such file; write it or fix `cmdline=`/`os_prefix=` in {config_file}")]
    CmdlineMissing {
        /// Path looked for.
        path: String,
        /// The config file that was read.
        config_file: String,
    },
    /// An initramfs named by `initramfs` does not exist.
    #[error("`{path}` is named as initramfs in {config_file}, but the boot partition has no such file; the real firmware would stop here too")]
    InitramfsMissing {
        /// Path looked for.
        path: String,
        /// The config file that was read.
        config_file: String,
    },
    /// The boot partition has no `config.txt`, so a Pi 5 does not count it as bootable.
    #[error("the boot partition has no config.txt, and a Pi 5 bootloader only boots a FAT partition that holds one; write config.txt (pideploy image always does)")]
    NotBootable,
}

/// Decides what the firmware would boot, the way the Pi 5 firmware does.
pub fn select(input: &FirmwareInput<'_>) -> Result<BootSelection, FirmwareError> {
    let mut notes = Vec::new();
    let config_file = if input.tryboot {
        "tryboot.txt"
    } else {
        "config.txt"
    }
    .to_string();
    let ctx = config::ParseContext {
        tryboot: input.tryboot,
        model: input.model,
    };
    // "Bootable partitions must be formatted as FAT12, FAT16 or FAT32 and contain a start.elf
    // file (or config.txt file on Raspberry Pi 5) in order to be classed as bootable by the
    // bootloader" (config.txt › autoboot.txt › `boot_partition`,
    // https://www.raspberrypi.com/documentation/computers/config_txt.html#autoboot-txt). This
    // holds with the tryboot flag too: the partition is chosen before tryboot.txt is read.
    if (input.read)("config.txt").is_none() {
        return Err(FirmwareError::NotBootable);
    }
    let entries = match (input.read)(&config_file) {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            config::parse(&ctx, &config_file, &text, &mut notes)
        }
        None => {
            notes.push(format!(
                "{config_file} does not exist; booting with firmware defaults"
            ));
            Vec::new()
        }
    };

    // Later settings override earlier ones; `initramfs` is kept by the same rule.
    let mut settings = BTreeMap::new();
    for entry in &entries {
        settings.insert(entry.key.clone(), entry.value.clone());
    }

    let exists = |path: &str| (input.read)(path).is_some();
    let kernel_name = settings
        .get("kernel")
        .cloned()
        .unwrap_or_else(|| input.model.default_kernel().to_string());
    let dt_name = settings
        .get("device_tree")
        .cloned()
        .unwrap_or_else(|| input.model.default_device_tree().to_string());

    let os_prefix = viable_prefix(&settings, &kernel_name, &dt_name, &exists, &mut notes);
    let os_file = |name: &str| os_path(&os_prefix, name);

    let kernel = os_file(&kernel_name);
    if !exists(&kernel) {
        return Err(FirmwareError::KernelMissing {
            path: kernel,
            config_file,
        });
    }

    let (initramfs, extra_initramfs) = select_initramfs(
        &settings,
        &kernel_name,
        &os_prefix,
        &config_file,
        &exists,
        &mut notes,
    )?;

    let cmdline_file = os_file(
        settings
            .get("cmdline")
            .map_or("cmdline.txt", String::as_str),
    );
    let Some(cmdline_bytes) = (input.read)(&cmdline_file) else {
        return Err(FirmwareError::CmdlineMissing {
            path: cmdline_file,
            config_file,
        });
    };
    let cmdline = first_line(&cmdline_file, &cmdline_bytes, &mut notes);

    let dt_path = os_file(&dt_name);
    let device_tree = if exists(&dt_path) {
        Some(dt_path)
    } else {
        if settings.contains_key("device_tree") {
            notes.push(format!(
                "device tree `{dt_path}` does not exist; QEMU uses its own `virt` tree anyway"
            ));
        }
        None
    };

    Ok(BootSelection {
        config_file,
        os_prefix,
        kernel,
        initramfs,
        extra_initramfs,
        cmdline_file,
        cmdline,
        device_tree,
        settings,
        notes,
    })
}

/// config.txt › `os_prefix`: "unless the expected kernel and .dtb can be found at the new
/// location/name, the prefix is ignored (set to "")".
fn viable_prefix(
    settings: &BTreeMap<String, String>,
    kernel_name: &str,
    dt_name: &str,
    exists: &dyn Fn(&str) -> bool,
    notes: &mut Vec<String>,
) -> String {
    let Some(prefix) = settings.get("os_prefix").filter(|p| !p.is_empty()) else {
        return String::new();
    };
    let kernel_ok = exists(&os_path(prefix, kernel_name));
    let dt_prefixed = exists(&os_path(prefix, dt_name));
    // QEMU boots its own device tree, so images made for the `virt` board ship none at all. Only
    // when a device tree of that name exists somewhere does its absence under the prefix count.
    let dt_anywhere = dt_prefixed || exists(&os_path("", dt_name));
    if kernel_ok && (dt_prefixed || !dt_anywhere) {
        if !dt_anywhere {
            notes.push(format!(
                "os_prefix `{prefix}`: no `{dt_name}` on the partition; the real firmware needs it to accept the prefix"
            ));
        }
        return prefix.clone();
    }
    notes.push(format!(
        "os_prefix `{prefix}` ignored: `{}`{} missing, so the firmware falls back to no prefix",
        os_path(prefix, kernel_name),
        if dt_anywhere && !dt_prefixed {
            format!(" or `{}`", os_path(prefix, dt_name))
        } else {
            String::new()
        }
    ));
    String::new()
}

/// Prepends the prefix, except for names starting with `/`, which the documentation says bypass
/// all prefixes ("just start the file path with a `/`").
fn os_path(prefix: &str, name: &str) -> String {
    match name.strip_prefix('/') {
        Some(absolute) => absolute.to_string(),
        None => format!("{prefix}{name}"),
    }
}

type InitramfsChoice = (Option<String>, Vec<String>);

/// `initramfs FILE[,FILE…] followkernel|ADDR`, else `auto_initramfs=1` (the kernel name with
/// `kernel` replaced by `initramfs` and `.img` dropped: `kernel_2712.img` → `initramfs_2712`).
fn select_initramfs(
    settings: &BTreeMap<String, String>,
    kernel_name: &str,
    os_prefix: &str,
    config_file: &str,
    exists: &dyn Fn(&str) -> bool,
    notes: &mut Vec<String>,
) -> Result<InitramfsChoice, FirmwareError> {
    if let Some(value) = settings
        .get("initramfs")
        .or_else(|| settings.get("ramfsfile"))
    {
        let mut words = value.split_whitespace();
        let files = words.next().unwrap_or_default();
        if let Some(address) = words.next() {
            if address != "followkernel" && address != "0" {
                notes.push(format!(
                    "initramfs load address `{address}` ignored: QEMU places the initrd itself"
                ));
            }
        }
        let mut paths = Vec::new();
        for file in files.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let path = os_path(os_prefix, file);
            if !exists(&path) {
                return Err(FirmwareError::InitramfsMissing {
                    path,
                    config_file: config_file.to_string(),
                });
            }
            paths.push(path);
        }
        let mut paths = paths.into_iter();
        return Ok((paths.next(), paths.collect()));
    }
    if settings.get("auto_initramfs").map(String::as_str) == Some("1") {
        let base = kernel_name.rsplit('/').next().unwrap_or(kernel_name);
        let dir = &kernel_name[..kernel_name.len() - base.len()];
        if base.contains("kernel") {
            let derived = base.replacen("kernel", "initramfs", 1);
            let derived = derived.strip_suffix(".img").unwrap_or(&derived);
            let path = os_path(os_prefix, &format!("{dir}{derived}"));
            if exists(&path) {
                return Ok((Some(path), Vec::new()));
            }
            notes.push(format!(
                "auto_initramfs: `{path}` does not exist; booting without an initramfs"
            ));
        } else {
            notes.push(format!(
                "auto_initramfs: kernel name `{kernel_name}` has no `kernel` part to derive an initramfs name from"
            ));
        }
    }
    Ok((None, Vec::new()))
}

/// The firmware passes the command line as one line.
fn first_line(file: &str, bytes: &[u8], notes: &mut Vec<String>) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().trim().to_string();
    if lines.any(|l| !l.trim().is_empty()) {
        notes.push(format!(
            "{file}: only the first line is used as the kernel command line"
        ));
    }
    first
}

#[cfg(test)]
mod tests;
