//! Per-generation boot entries on the FAT boot partition (pure planning).
//!
//! Each generation N gets a folder `gen-N/` holding its kernel, initramfs, device trees, overlays and
//! `cmdline.txt`; `config.txt` selects one through `os_prefix=gen-N/` (the firmware prefixes the
//! kernel, initramfs, cmdline.txt, device tree and overlay names with it). `tryboot.txt` has the same
//! form and names the generation on trial; the Pi firmware reads it instead of `config.txt` only on
//! the one boot after `reboot "0 tryboot"`.

/// Where the bytes of a boot file come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file inside the toplevel (path relative to it, following its links).
    Toplevel(String),
    /// Generated content.
    Bytes(Vec<u8>),
}

/// A file to put on the boot partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFilePlan {
    /// Path on the FAT partition.
    pub path: String,
    /// Contents.
    pub source: Source,
}

/// What a generation's boot entry needs, read from its toplevel's `boot/` folder.
#[derive(Debug, Clone)]
pub struct EntryInput<'a> {
    /// Generation number.
    pub generation: u32,
    /// Absolute store path of the toplevel (for `init=`).
    pub toplevel: &'a str,
    /// `boot/kernel-params`.
    pub kernel_params: &'a str,
    /// `boot/entry`: `DEST SOURCE` lines.
    pub entry_list: &'a str,
    /// `root=` value, e.g. `PARTUUID=1234abcd-02`.
    pub root: &'a str,
}

/// Folder of generation N on the boot partition.
pub fn entry_dir(generation: u32) -> String {
    format!("gen-{generation}")
}

/// The kernel command line of a generation.
pub fn cmdline(e: &EntryInput) -> String {
    let mut parts: Vec<&str> = e.kernel_params.split_whitespace().collect();
    let root = format!("root={}", e.root);
    let init = format!("init={}/init", e.toplevel);
    parts.push(&root);
    parts.push(&init);
    parts.join(" ") + "\n"
}

/// Files of generation N's entry. Errors name a malformed `boot/entry` line.
pub fn plan_entry(e: &EntryInput) -> Result<Vec<BootFilePlan>, String> {
    let dir = entry_dir(e.generation);
    let mut out = Vec::new();
    for line in e.entry_list.lines().filter(|l| !l.trim().is_empty()) {
        let (dest, src) = line
            .split_once(' ')
            .ok_or_else(|| format!("boot/entry: malformed line {line:?}"))?;
        if dest.starts_with('/') || dest.contains("..") {
            return Err(format!(
                "boot/entry: destination {dest:?} leaves the entry folder"
            ));
        }
        out.push(BootFilePlan {
            path: format!("{dir}/{dest}"),
            source: Source::Toplevel(src.to_string()),
        });
    }
    out.push(BootFilePlan {
        path: format!("{dir}/cmdline.txt"),
        source: Source::Bytes(cmdline(e).into_bytes()),
    });
    Ok(out)
}

/// `config.txt` (or `tryboot.txt`) selecting generation N: the generation's own body, then an `[all]`
/// section that points the firmware at its folder.
pub fn config_txt(
    body: &str,
    generation: u32,
    hostname: &str,
    kernel_file: &str,
    has_initrd: bool,
) -> String {
    let mut s = format!(
        "# pideploy: generation {generation} of {hostname}. Generated: change pi.toml, not this file.\n"
    );
    s += body.trim_end();
    s += &format!(
        "\n\n[all]\nos_prefix={}/\nkernel={kernel_file}\n",
        entry_dir(generation)
    );
    if has_initrd {
        s += "initramfs initrd.img followkernel\n";
    }
    s
}

/// Seconds a generation on trial has to open the hardware watchdog: `tryboot.txt` (never
/// `config.txt`) carries `kernel_watchdog_timeout` with it. The Pi firmware then starts the
/// watchdog before the kernel and passes `watchdog.open_timeout=` on to Linux, which keeps it
/// alive until the OS opens `/dev/watchdog` (stage 2's `watchdog-feeder` does, and kicks it until
/// the trial is confirmed or reverted); a trial that hangs before (a root that never appears) or
/// after is reset, and a reset boots `config.txt`, the committed generation
/// (https://www.raspberrypi.com/documentation/computers/config_txt.html#kernel_watchdog_timeout,
/// https://www.raspberrypi.com/documentation/computers/raspberry-pi.html#fail-safe-os-updates-tryboot).
/// A Pi 5 reaches stage 2 in seconds; 60 leaves room for slow USB disks. The agent's
/// `write_config` writes the same number.
pub const TRIAL_WATCHDOG_SECS: u32 = 60;

/// `tryboot.txt` putting generation N on trial: its [`config_txt`] plus the hardware watchdog
/// (`watchdog_secs`, [`TRIAL_WATCHDOG_SECS`] when written by the agent).
pub fn tryboot_txt(
    body: &str,
    generation: u32,
    hostname: &str,
    kernel_file: &str,
    has_initrd: bool,
    watchdog_secs: u32,
) -> String {
    config_txt(body, generation, hostname, kernel_file, has_initrd)
        + &format!("kernel_watchdog_timeout={watchdog_secs}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> EntryInput<'static> {
        EntryInput {
            generation: 3,
            toplevel: "/pideploy/store/abc-pideploy-system-pi",
            kernel_params: "console=ttyAMA0 rootwait\n",
            entry_list: "vmlinuz kernel/kernel\ninitrd.img initrd/initrd\noverlays/x.dtbo kernel/overlays/x.dtbo\n",
            root: "PARTUUID=0a0b0c0d-02",
        }
    }

    #[test]
    fn entry_files_and_cmdline() {
        let files = plan_entry(&input()).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "gen-3/vmlinuz",
                "gen-3/initrd.img",
                "gen-3/overlays/x.dtbo",
                "gen-3/cmdline.txt"
            ]
        );
        assert_eq!(
            cmdline(&input()),
            "console=ttyAMA0 rootwait root=PARTUUID=0a0b0c0d-02 init=/pideploy/store/abc-pideploy-system-pi/init\n"
        );
        let mut bad = input();
        bad.entry_list = "../x kernel/kernel";
        assert!(plan_entry(&bad).is_err());
    }

    #[test]
    fn config_selects_generation() {
        let c = config_txt(
            "arm_64bit=1\n[pi5]\nenable_uart=1\n",
            3,
            "pi",
            "kernel_2712.img",
            false,
        );
        assert!(
            c.ends_with("[all]\nos_prefix=gen-3/\nkernel=kernel_2712.img\n"),
            "{c}"
        );
        assert!(
            config_txt("", 1, "pi", "vmlinuz", true).contains("initramfs initrd.img followkernel")
        );
    }

    #[test]
    fn only_a_trial_has_the_watchdog() {
        assert!(!config_txt("", 2, "pi", "vmlinuz", true).contains("watchdog"));
        assert!(tryboot_txt("", 2, "pi", "vmlinuz", true, 60).ends_with(
            "os_prefix=gen-2/\nkernel=vmlinuz\ninitramfs initrd.img followkernel\nkernel_watchdog_timeout=60\n"
        ));
    }

    #[test]
    fn the_agent_writes_the_same_watchdog_timeout() {
        let agent = pideploy_deploy::AGENT;
        assert!(
            agent.contains(&format!("kernel_watchdog_timeout={TRIAL_WATCHDOG_SECS}")),
            "target.sh's write_config and TRIAL_WATCHDOG_SECS differ"
        );
    }
}
