//! The generated `/etc` of a generation and the data its activation applies (pure: config in, files out).

use std::collections::BTreeMap;

use pideploy_config::{HostConfig, Restart};
use sha2::{Digest, Sha256};

use super::template::render;
use crate::shell;

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenFile {
    /// A regular file; `exec` sets the executable bit in the store.
    File {
        /// Contents.
        data: Vec<u8>,
        /// Executable?
        exec: bool,
    },
    /// A symlink with this target.
    Link(String),
}

impl GenFile {
    fn text(s: impl Into<String>) -> Self {
        GenFile::File {
            data: s.into().into_bytes(),
            exec: false,
        }
    }
    fn script(s: impl Into<String>) -> Self {
        GenFile::File {
            data: s.into().into_bytes(),
            exec: true,
        }
    }
}

/// Everything derived from the config for `/etc` and for activation.
#[derive(Debug, Clone, Default)]
pub struct EtcPlan {
    /// Files of the etc store path, by path relative to /etc.
    pub etc: BTreeMap<String, GenFile>,
    /// `activation/etc-files`: how each etc file is installed (`link P` or `copy P MODE UID GID`).
    pub etc_files: String,
    /// `activation/users`: `name uid gid home` lines.
    pub users: String,
    /// `activation/keys/<user>`: authorized_keys contents.
    pub keys: BTreeMap<String, String>,
    /// `activation/files`: `INDEX DEST MODE UID GID` lines, and the contents by index.
    pub files_list: String,
    /// Contents of config files by index.
    pub files: BTreeMap<String, Vec<u8>>,
    /// `activation/wrappers`: setuid wrappers (`name source`).
    pub wrappers: String,
}

/// Debian's static group ids for the groups people usually ask for; others get ids from 900 down.
const DEBIAN_GROUPS: &[(&str, u32)] = &[
    ("adm", 4),
    ("tty", 5),
    ("disk", 6),
    ("dialout", 20),
    ("cdrom", 24),
    ("sudo", 27),
    ("audio", 29),
    ("video", 44),
    ("plugdev", 46),
    ("staff", 50),
    ("users", 100),
    ("input", 105),
    ("netdev", 108),
    ("gpio", 997),
    ("i2c", 998),
    ("spi", 999),
];

/// Inputs the plan needs besides the config.
pub struct EtcContext<'a> {
    /// Absolute path of the busybox binary (shebang of generated scripts).
    pub busybox: &'a str,
    /// Terminals that get a login prompt and the SSH host key line.
    pub consoles: &'a [String],
    /// Absolute path of the sudo binary when the sudo package is in the closure (then sudoers and
    /// the setuid wrapper are made).
    pub sudo: Option<&'a str>,
}

/// An owner or group name resolved to a numeric id, or an error naming it.
fn resolve_id(kind: &str, name: &str, ids: &BTreeMap<String, u32>) -> Result<u32, String> {
    ids.get(name).copied().ok_or_else(|| {
        format!("{kind} {name:?} is not root, a configured user or a known group: add it to users or use a number")
    })
}

/// The inittab line giving `tty` a login prompt: a virtual terminal (`tty1`) runs at the console's
/// own speed, a serial line (`ttyAMA10`, `ttyS0`, `console`) at 115200 baud without modem control.
fn getty_line(tty: &str) -> Result<String, String> {
    if tty.is_empty() || !tty.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "board login_consoles: {tty:?} is not a terminal name like ttyAMA10 or tty1"
        ));
    }
    let vt = tty
        .strip_prefix("tty")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    Ok(if vt {
        format!("{tty}::respawn:/run/busybox/getty 38400 {tty} linux\n")
    } else {
        format!("{tty}::respawn:/run/busybox/getty -L 115200 {tty} vt100\n")
    })
}

/// Builds the etc plan. Errors are single sentences naming the config field to fix.
pub fn plan(cfg: &HostConfig, ctx: &EtcContext) -> Result<EtcPlan, String> {
    if cfg.network.wifi.is_some() {
        return Err("network.wifi: Wi-Fi is not supported by this version yet; use ethernet (remove [network.wifi])".into());
    }
    let mut p = EtcPlan::default();
    let bb = ctx.busybox;

    // Groups: root, one primary group per user (gid = uid), supplementary groups.
    let mut gids: BTreeMap<String, u32> = BTreeMap::from([("root".into(), 0)]);
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in &cfg.users {
        gids.insert(u.name.clone(), u.uid);
        let mut groups = u.groups.clone();
        if u.sudo && !groups.iter().any(|g| g == "sudo") {
            groups.push("sudo".into());
        }
        for g in groups {
            members.entry(g).or_default().push(u.name.clone());
        }
    }
    let mut next_free = 900;
    for g in members.keys() {
        if gids.contains_key(g) {
            continue;
        }
        let gid = match DEBIAN_GROUPS.iter().find(|(n, _)| n == g) {
            Some((_, id)) => *id,
            None => {
                next_free -= 1;
                next_free
            }
        };
        gids.insert(g.clone(), gid);
    }
    let mut uids: BTreeMap<String, u32> = BTreeMap::from([("root".into(), 0)]);
    for u in &cfg.users {
        uids.insert(u.name.clone(), u.uid);
    }

    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut shadow = String::from("root:*:1:0:99999:7:::\n");
    for u in &cfg.users {
        let shell = u.shell.as_deref().unwrap_or("/bin/sh");
        passwd += &format!(
            "{n}:x:{id}:{id}::/home/{n}:{shell}\n",
            n = u.name,
            id = u.uid
        );
        // '*' (not '!'): no password login, but key logins work (dropbear refuses locked '!' accounts).
        shadow += &format!("{}:*:1:0:99999:7:::\n", u.name);
        p.users += &format!("{n} {id} {id} /home/{n}\n", n = u.name, id = u.uid);
        let mut keys = String::new();
        for k in &u.ssh_authorized_keys {
            keys += k.trim();
            keys.push('\n');
        }
        p.keys.insert(u.name.clone(), keys);
    }
    let mut by_gid: Vec<(u32, &String)> = gids.iter().map(|(n, g)| (*g, n)).collect();
    by_gid.sort();
    let mut group = String::new();
    for (gid, name) in by_gid {
        let m = members.get(name).map(|v| v.join(",")).unwrap_or_default();
        group += &format!("{name}:x:{gid}:{m}\n");
    }

    let e = &mut p.etc;
    e.insert(
        "hostname".into(),
        GenFile::text(format!("{}\n", cfg.hostname)),
    );
    e.insert(
        "hosts".into(),
        GenFile::text(format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{h}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            h = cfg.hostname
        )),
    );
    e.insert("passwd".into(), GenFile::text(passwd));
    e.insert("group".into(), GenFile::text(group));
    e.insert("shadow".into(), GenFile::text(shadow));
    e.insert(
        "timezone".into(),
        GenFile::text(format!("{}\n", cfg.timezone)),
    );
    e.insert(
        "resolv.conf".into(),
        GenFile::Link("/run/resolv.conf".into()),
    );
    e.insert(
        "os-release".into(),
        GenFile::text(format!(
            "NAME=pideploy\nID=pideploy\nID_LIKE=debian\nPRETTY_NAME=\"pideploy system {h}\"\nHOME_URL=\"https://github.com/pideploy/pideploy\"\n",
            h = cfg.hostname
        )),
    );
    e.insert(
        "profile".into(),
        GenFile::text(
            "export PATH=/run/wrappers/bin:/run/current-system/sw/sbin:/run/current-system/sw/bin:/run/current-system/sw/usr/sbin:/run/current-system/sw/usr/bin:/run/busybox\n\
             export PS1='\\u@\\h:\\w\\$ '\n[ -r /etc/TZ ] && export TZ=\"$(cat /etc/TZ)\"\n",
        ),
    );
    e.insert("shells".into(), GenFile::text("/bin/sh\n"));

    // system.env: what the boot tasks need, as shell assignments built from quoted values.
    let eth = &cfg.network.ethernet;
    let mut env = [
        ("NET_IFACE", "eth0".to_string()),
        (
            "NET_MODE",
            if eth.dhcp { "dhcp" } else { "static" }.to_string(),
        ),
        ("NET_ADDRESS", eth.address.clone().unwrap_or_default()),
        ("NET_GATEWAY", eth.gateway.clone().unwrap_or_default()),
        ("NET_DNS", eth.dns.join(" ")),
        (
            "SSH_ENABLE",
            if cfg.ssh.enable { "1" } else { "0" }.to_string(),
        ),
        ("SSH_PORT", cfg.ssh.port.to_string()),
        ("LOGIN_CONSOLES", ctx.consoles.join(" ")),
    ];
    env.sort();
    let env: String = env
        .iter()
        .map(|(k, v)| format!("{k}={}\n", shell::quote(v)))
        .collect();
    e.insert("pideploy/system.env".into(), GenFile::text(env));

    // Services: the ssh server and DHCP client are services like the configured ones.
    let mut services: Vec<(String, Vec<String>, Restart, String)> = Vec::new();
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
        services.push(("sshd".into(), argv, Restart::Always, "root".into()));
    }
    if eth.dhcp {
        let argv = [
            "udhcpc",
            "-f",
            "-i",
            "eth0",
            "-s",
            "/run/current-system/udhcpc.script",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        services.push(("dhcp".into(), argv, Restart::Always, "root".into()));
    }
    for s in &cfg.services {
        if services.iter().any(|(n, ..)| *n == s.name) {
            return Err(format!(
                "services: the name {:?} is used by pideploy itself; pick another",
                s.name
            ));
        }
        services.push((s.name.clone(), s.command.clone(), s.restart, s.user.clone()));
    }
    let mut inittab = String::from(
        "# Generated by pideploy. busybox init reads this; services are managed from pi.toml.\n\
         ::sysinit:/run/current-system/boot-tasks\n",
    );
    for (name, argv, restart, user) in &services {
        let cmd = shell::join(argv);
        let run = if user == "root" {
            format!("exec {cmd}")
        } else {
            resolve_id("services user", user, &uids)?;
            format!(
                "exec su -s /bin/sh {} -c {}",
                shell::quote(user),
                shell::quote(&format!("exec {cmd}"))
            )
        };
        let body = match restart {
            // on-failure: a clean exit parks the wrapper so init does not start it again.
            Restart::OnFailure => format!(
                "{cmd_sub}\nrc=$?\n[ $rc -ne 0 ] || exec sleep 2147483647\nsleep 1\nexit $rc",
                cmd_sub = run.trim_start_matches("exec ")
            ),
            _ => run,
        };
        let script = render(
            include_str!("scripts/service.sh"),
            &[("BUSYBOX", bb), ("NAME", name), ("BODY", &body)],
        )?;
        let digest = hex::encode(Sha256::digest(script.as_bytes()));
        e.insert(format!("pideploy/services/{name}"), GenFile::script(script));
        e.insert(
            format!("pideploy/services/{name}.digest"),
            GenFile::text(format!("{digest}\n")),
        );
        let action = if *restart == Restart::No {
            "once"
        } else {
            "respawn"
        };
        inittab += &format!("::{action}:/etc/pideploy/services/{name}\n");
    }
    inittab += "::once:/run/current-system/ready\n";
    for c in ctx.consoles {
        inittab += &getty_line(c)?;
    }
    inittab += "::ctrlaltdel:/run/busybox/reboot\n::shutdown:/run/current-system/shutdown-tasks\n";
    e.insert("inittab".into(), GenFile::text(inittab));

    if let Some(sudo) = ctx.sudo {
        e.insert(
            "sudoers".into(),
            GenFile::text(
                "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) NOPASSWD: ALL\n",
            ),
        );
        // Only passwordless sudo is configured (users have no passwords), so PAM never authenticates.
        e.insert(
            "pam.d/sudo".into(),
            GenFile::text("auth required pam_deny.so\naccount required pam_permit.so\nsession required pam_permit.so\n"),
        );
        p.wrappers = format!("sudo {sudo}\n");
    } else if cfg.users.iter().any(|u| u.sudo) {
        return Err(
            "users: sudo = true needs the sudo package; run `pideploy lock` so it is locked".into(),
        );
    }

    // How activation installs each etc file: most are links; these must be real files.
    let copies: BTreeMap<&str, &str> = BTreeMap::from([
        ("passwd", "0644"),
        ("group", "0644"),
        ("shadow", "0600"),
        ("sudoers", "0440"),
    ]);
    for path in p.etc.keys() {
        p.etc_files += &match copies.get(path.as_str()) {
            Some(mode) => format!("copy {path} {mode} 0 0\n"),
            None => format!("link {path}\n"),
        };
    }

    for (i, f) in cfg.files.iter().enumerate() {
        if f.path.chars().any(char::is_whitespace) {
            return Err(format!(
                "files[{i}].path: white space in {:?} is not supported",
                f.path
            ));
        }
        let data = match (&f.content, &f.source) {
            (Some(c), _) => c.clone().into_bytes(),
            (None, Some(src)) => std::fs::read(src)
                .map_err(|e| format!("files[{i}].source: cannot read {}: {e}", src.display()))?,
            (None, None) => return Err(format!("files[{i}]: needs content or source")),
        };
        let uid = resolve_id(&format!("files[{i}].owner"), &f.owner, &uids)?;
        let gid = resolve_id(&format!("files[{i}].group"), &f.group, &gids)?;
        let key = format!("{i}");
        p.files_list += &format!("{key} {} {} {uid} {gid}\n", f.path, f.mode);
        p.files.insert(key, data);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pideploy_config::HostConfig;

    fn ctx() -> EtcContext<'static> {
        EtcContext {
            busybox: "/pideploy/store/x-busybox/bin/busybox",
            consoles: Box::leak(Box::new(["ttyAMA0".to_string()])),
            sudo: Some("/pideploy/store/x-sudo/usr/bin/sudo"),
        }
    }

    #[test]
    fn default_config_plan() {
        let cfg = HostConfig::default_for(
            "qemu-aarch64",
            vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop".into()],
        );
        let p = plan(&cfg, &ctx()).unwrap();
        let text = |k: &str| match &p.etc[k] {
            GenFile::File { data, .. } => String::from_utf8(data.clone()).unwrap(),
            GenFile::Link(t) => t.clone(),
        };
        assert_eq!(text("hostname"), "pi\n");
        assert!(text("passwd").contains("pi:x:1000:1000::/home/pi:/bin/sh"));
        assert!(text("group").contains("sudo:x:27:pi"));
        assert!(text("shadow").starts_with("root:*:"));
        assert!(text("inittab").contains("::respawn:/etc/pideploy/services/sshd"));
        assert!(text("inittab").contains("::respawn:/etc/pideploy/services/dhcp"));
        assert!(text("inittab")
            .contains("\nttyAMA0::respawn:/run/busybox/getty -L 115200 ttyAMA0 vt100\n"));
        assert!(text("pideploy/system.env").contains("LOGIN_CONSOLES=ttyAMA0\n"));
        assert!(text("pideploy/services/sshd").contains("exec /usr/sbin/dropbear -F -E -p 22"));
        assert!(p.etc_files.contains("copy shadow 0600 0 0"));
        assert!(p.etc_files.contains("link hostname"));
        assert_eq!(p.users, "pi 1000 1000 /home/pi\n");
        assert!(p.keys["pi"].starts_with("ssh-ed25519 "));
        assert!(p.wrappers.starts_with("sudo "));
    }

    /// The Pi 5: a login prompt on the debug UART and on HDMI, each with the right getty.
    #[test]
    fn every_login_console_gets_a_getty() {
        let cfg = HostConfig::default_for("rpi5", vec![]);
        let consoles = ["ttyAMA10".to_string(), "tty1".to_string()];
        let p = plan(
            &cfg,
            &EtcContext {
                consoles: &consoles,
                ..ctx()
            },
        )
        .unwrap();
        let GenFile::File { data, .. } = &p.etc["inittab"] else {
            panic!("inittab is a file")
        };
        let inittab = String::from_utf8(data.clone()).unwrap();
        assert!(
            inittab.contains("\nttyAMA10::respawn:/run/busybox/getty -L 115200 ttyAMA10 vt100\n")
        );
        assert!(inittab.contains("\ntty1::respawn:/run/busybox/getty 38400 tty1 linux\n"));
        let bad = ["tty1; reboot".to_string()];
        let err = plan(
            &cfg,
            &EtcContext {
                consoles: &bad,
                ..ctx()
            },
        )
        .err()
        .unwrap();
        assert!(err.contains("login_consoles"), "{err}");
    }

    #[test]
    fn service_argv_is_quoted_and_unknown_owner_refused() {
        let mut cfg = HostConfig::default_for("qemu-aarch64", vec![]);
        cfg.services.push(pideploy_config::Service {
            name: "hello".into(),
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo 'hi there' > /tmp/x".into(),
            ],
            restart: Restart::Always,
            user: "root".into(),
        });
        let p = plan(&cfg, &ctx()).unwrap();
        let GenFile::File { data, exec } = &p.etc["pideploy/services/hello"] else {
            panic!()
        };
        assert!(exec);
        assert!(String::from_utf8_lossy(data)
            .contains(r"exec /bin/sh -c 'echo '\''hi there'\'' > /tmp/x'"));

        cfg.files.push(pideploy_config::FileSpec {
            path: "/etc/motd".into(),
            content: Some("hi".into()),
            source: None,
            mode: "0644".into(),
            owner: "nobody-here".into(),
            group: "root".into(),
        });
        assert!(plan(&cfg, &ctx()).unwrap_err().contains("nobody-here"));
    }
}
