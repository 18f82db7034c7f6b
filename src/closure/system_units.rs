//! The systemd units pideploy itself adds to every generation (pure: config in, unit files out):
//! the boot tasks, the ssh server, the DHCP client, the readiness marker,
//! a login prompt on each console, and the settings that make a Debian systemd boot headless and
//! unattended (no first-boot wizard, bounded stop timeouts, a persistent but bounded journal).
//!
//! Units live in the generation's `/etc/systemd/system`; enabling is done the way `systemctl enable`
//! would, by links in `<target>.wants/`, so the set of running units is part of the generation.

use std::collections::BTreeMap;

use pideploy_config::HostConfig;

/// Unit files and links under `/etc/systemd/system`, by path relative to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemUnits {
    /// Unit files pideploy writes (name → text).
    pub files: BTreeMap<String, String>,
    /// Links (`multi-user.target.wants/x.service` → target path on the Pi).
    pub links: BTreeMap<String, String>,
}

/// The units pideploy needs, for `cfg` with login prompts on `consoles`.
pub fn plan(cfg: &HostConfig, consoles: &[String]) -> Result<SystemUnits, String> {
    let mut u = SystemUnits::default();
    let wanted = |name: &str, u: &mut SystemUnits| {
        u.links.insert(
            format!("multi-user.target.wants/{name}"),
            format!("/etc/systemd/system/{name}"),
        );
    };
    // The boot partition, a deploy left pending and the host key are settled by stage 2 before
    // systemd starts (scripts/boot-tasks.sh): nothing can log in before them, and they run alone
    // on the CPU instead of racing systemd's start jobs. Their lines reach the journal from here.
    u.files.insert(
        "pideploy-boot-log.service".into(),
        "[Unit]\n\
         Description=pideploy: boot tasks' lines into the journal\n\
         ConditionPathExists=/run/pideploy/boot-tasks.log\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/bin/busybox cat /run/pideploy/boot-tasks.log\n\
         SyslogIdentifier=boot-tasks\n\
         StandardOutput=journal\n"
            .into(),
    );
    wanted("pideploy-boot-log.service", &mut u);
    // Debian builds systemd without systemd-vconsole-setup (its console-setup needs perl to
    // compile keymaps), so the keymap is loaded here with kbd's loadkeys from console-data's
    // ready-made maps. The kernel has one keymap for all virtual consoles, so one load serves all.
    if let Some(k) = &cfg.keyboard {
        u.files.insert(
            "pideploy-keymap.service".into(),
            format!(
                "[Unit]\n\
                 Description=pideploy: console keymap {k}\n\
                 DefaultDependencies=no\n\
                 ConditionPathExists=/dev/tty0\n\
                 Before=getty-pre.target shutdown.target\n\
                 Conflicts=shutdown.target\n\
                 \n\
                 [Service]\n\
                 Type=oneshot\n\
                 RemainAfterExit=yes\n\
                 ExecStart=/bin/loadkeys -q -C /dev/tty0 {k}\n"
            ),
        );
        wanted("pideploy-keymap.service", &mut u);
    }
    // The ssh server, DHCP and the readiness marker need only the root and the kernel's devices,
    // which stage 2 mounted: without the default dependencies they do not wait for sysinit.target
    // (udev's coldplug alone takes seconds), so SSH is up as early as it can be. They still stop
    // before the shutdown.
    if cfg.ssh.enable {
        let mut argv: Vec<String> = ["/usr/sbin/dropbear", "-F", "-E", "-p"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.push(cfg.ssh.port.to_string());
        argv.extend([
            "-r".into(),
            "/etc/dropbear/dropbear_ed25519_host_key".into(),
        ]);
        if !cfg.ssh.password_authentication {
            argv.push("-s".into());
        }
        if !cfg.ssh.permit_root_login {
            argv.push("-w".into());
        }
        // KillMode=process: a restart (a switch that changed these settings) ends the listener
        // only, never the sessions, among them the deploy that asked for the restart.
        u.files.insert(
            "pideploy-sshd.service".into(),
            format!(
                "[Unit]\n\
                 Description=SSH server (dropbear)\n\
                 DefaultDependencies=no\n\
                 Before=shutdown.target\n\
                 Conflicts=shutdown.target\n\
                 \n\
                 [Service]\n\
                 ExecStart={}\n\
                 KillMode=process\n\
                 StartupCPUWeight=1000\n\
                 Restart=always\n\
                 RestartSec=1\n",
                argv.join(" ")
            ),
        );
        wanted("pideploy-sshd.service", &mut u);
    }
    if cfg.network.ethernet.dhcp {
        u.files.insert(
            "pideploy-dhcp.service".into(),
            "[Unit]\n\
             Description=DHCP client on eth0 (busybox udhcpc)\n\
             DefaultDependencies=no\n\
             Wants=network.target\n\
             Before=network.target shutdown.target\n\
             Conflicts=shutdown.target\n\
             \n\
             [Service]\n\
             ExecStart=/bin/udhcpc -f -i eth0 -s /run/current-system/udhcpc.script\n\
             Restart=always\n\
             RestartSec=1\n\
             StandardOutput=journal+console\n"
                .into(),
        );
        wanted("pideploy-dhcp.service", &mut u);
    }
    // Tools watching the console connect only after this line.
    u.files.insert(
        "pideploy-ready.service".into(),
        "[Unit]\n\
         Description=pideploy: readiness marker on the console\n\
         DefaultDependencies=no\n\
         After=pideploy-sshd.service\n\
         Before=shutdown.target\n\
         Conflicts=shutdown.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/run/current-system/ready\n\
         StandardOutput=journal\n"
            .into(),
    );
    wanted("pideploy-ready.service", &mut u);
    // The host key line on every login terminal, before its prompt: a terminal whose driver is a
    // module (a virtio console) appears only after udev loaded it, so this waits for the device.
    u.files.insert(
        "pideploy-hostkey@.service".into(),
        "[Unit]\n\
         Description=pideploy: ssh host key line on %I\n\
         DefaultDependencies=no\n\
         BindsTo=dev-%i.device\n\
         After=dev-%i.device\n\
         Before=getty@%i.service serial-getty@%i.service shutdown.target\n\
         Conflicts=shutdown.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/run/current-system/show-host-key %I\n"
            .into(),
    );
    for c in consoles {
        let (unit, template) = getty_unit(c)?;
        u.links.insert(
            format!("getty.target.wants/{unit}"),
            format!("/lib/systemd/system/{template}"),
        );
        if cfg.ssh.enable {
            u.links.insert(
                format!("getty.target.wants/pideploy-hostkey@{c}.service"),
                "/etc/systemd/system/pideploy-hostkey@.service".into(),
            );
        }
    }
    u.links.insert(
        "default.target".into(),
        "/lib/systemd/system/multi-user.target".into(),
    );
    // Debian's getty-static starts logins on tty2-6 when D-Bus is absent; the consoles above are
    // the ones a Pi owner uses, and the extra six gettys cost seconds of a boot.
    u.links
        .insert("getty-static.service".into(), "/dev/null".into());
    // Debian's first-boot wizard waits for a key press on the console: a headless Pi would never
    // finish booting. The machine id is made by stage 2 instead.
    u.links
        .insert("systemd-firstboot.service".into(), "/dev/null".into());
    for unit in MASKED_UNITS {
        u.links.insert((*unit).into(), "/dev/null".into());
    }
    Ok(u)
}

/// Units of Debian's systemd a pideploy system masks: each costs a process start on every boot
/// (about 0.1 s of CPU on a Pi-class or emulated machine) for something a Pi does not have or
/// mounts on demand: EFI pstore (the Pi firmware is not UEFI), debugfs and tracefs (mount them
/// when debugging: `mount -t debugfs none /sys/kernel/debug`), huge pages, the FUSE control
/// filesystem (FUSE itself works: /dev/fuse loads the module when opened). Also boot-time
/// `systemd-sysusers`: accounts are made at build time from the packages' sysusers.d and
/// /etc/passwd is the generation's, rewritten by every activation, so a run could only add entries
/// the next activation drops; and `systemd-repart`: no pideploy system has repart.d (stage 2's
/// grow-root grows the root), yet its Wants= would load the loop and dm_mod modules.
pub const MASKED_UNITS: &[&str] = &[
    "systemd-sysusers.service",
    "systemd-repart.service",
    "systemd-pstore.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "dev-hugepages.mount",
    "sys-fs-fuse-connections.mount",
];

/// systemd's generators a pideploy system masks (`/etc/systemd/system-generators/NAME` → /dev/null,
/// systemd.generator(7)); the fstab and debug generators stay (`/etc/fstab` entries; `systemd.mask=`
/// and the debug shell on the kernel command line, for recovery). The getty generator's serial
/// consoles are the board's login consoles, which pideploy enables itself.
pub const MASKED_GENERATORS: &[&str] = &[
    "systemd-cryptsetup-generator",
    "systemd-getty-generator",
    "systemd-gpt-auto-generator",
    "systemd-hibernate-resume-generator",
    "systemd-integritysetup-generator",
    "systemd-rc-local-generator",
    "systemd-run-generator",
    "systemd-system-update-generator",
    "systemd-sysv-generator",
    "systemd-veritysetup-generator",
];

/// systemd's drop-ins of a pideploy system, by path relative to `/etc/systemd`.
pub fn settings() -> BTreeMap<String, String> {
    BTreeMap::from([
        // A unit that does not stop within 15 s is killed: a reboot or a switch never hangs for
        // systemd's default 90 s on an unattended machine.
        (
            "system.conf.d/pideploy.conf".into(),
            "[Manager]\nDefaultTimeoutStopSec=15s\nDefaultTimeoutStartSec=60s\n".into(),
        ),
        // Logs survive reboots (`pideploy logs --boot -1`), bounded so an SD card never fills up.
        (
            "journald.conf.d/pideploy.conf".into(),
            "[Journal]\nStorage=persistent\nSystemMaxUse=64M\n".into(),
        ),
    ])
}

/// The getty unit for a login console: a virtual terminal (`tty1`) gets `getty@tty1.service`, a
/// serial line (`ttyAMA10`, `hvc0`) `serial-getty@…` (115200 baud, no modem control).
fn getty_unit(tty: &str) -> Result<(String, &'static str), String> {
    if tty.is_empty() || !tty.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "board login_consoles: {tty:?} is not a terminal name like ttyAMA10 or tty1"
        ));
    }
    let vt = tty
        .strip_prefix("tty")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    Ok(if vt {
        (format!("getty@{tty}.service"), "getty@.service")
    } else {
        (
            format!("serial-getty@{tty}.service"),
            "serial-getty@.service",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_units_and_links() {
        let cfg = HostConfig::default_for("qemu-aarch64", vec![]);
        let u = plan(&cfg, &["ttyAMA0".to_string(), "tty1".to_string()]).unwrap();
        assert!(u.files["pideploy-sshd.service"]
            .contains("ExecStart=/usr/sbin/dropbear -F -E -p 22 -r /etc/dropbear/dropbear_ed25519_host_key -s -w\n"));
        assert!(u.files["pideploy-sshd.service"].contains("KillMode=process"));
        assert_eq!(
            u.links["getty.target.wants/serial-getty@ttyAMA0.service"],
            "/lib/systemd/system/serial-getty@.service"
        );
        assert_eq!(
            u.links["getty.target.wants/getty@tty1.service"],
            "/lib/systemd/system/getty@.service"
        );
        assert_eq!(
            u.links["multi-user.target.wants/pideploy-dhcp.service"],
            "/etc/systemd/system/pideploy-dhcp.service"
        );
        assert_eq!(u.links["systemd-firstboot.service"], "/dev/null");
        for masked in [
            "systemd-sysusers.service",
            "systemd-repart.service",
            "dev-hugepages.mount",
        ] {
            assert_eq!(u.links[masked], "/dev/null", "{masked}");
        }
        let bad = plan(&cfg, &["tty1; reboot".to_string()]).unwrap_err();
        assert!(bad.contains("login_consoles"), "{bad}");
    }

    #[test]
    fn no_ssh_no_dhcp_no_units() {
        let mut cfg = HostConfig::default_for("qemu-aarch64", vec![]);
        cfg.ssh.enable = false;
        cfg.network.ethernet.dhcp = false;
        let u = plan(&cfg, &[]).unwrap();
        assert!(!u.files.contains_key("pideploy-sshd.service"));
        assert!(!u.files.contains_key("pideploy-dhcp.service"));
        assert!(!u.links.keys().any(|k| k.starts_with("getty.target.wants/")));
    }
}
