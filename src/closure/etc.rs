//! The generated `/etc` of a generation and the data its activation applies (pure: config in, files out).

use std::collections::{BTreeMap, BTreeSet};

use pideploy_config::HostConfig;

use super::accounts::Accounts;
use super::system_units;
use super::time_sync;
use super::wifi;
use pideploy_transport::shell_quote;

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
    /// A regular, non-executable file.
    pub fn text(s: impl Into<String>) -> Self {
        GenFile::File {
            data: s.into().into_bytes(),
            exec: false,
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

/// Inputs the plan needs besides the config.
pub struct EtcContext<'a> {
    /// Absolute path of the busybox binary (shebang of generated scripts).
    pub busybox: &'a str,
    /// Terminals that get a login prompt and the SSH host key line.
    pub consoles: &'a [String],
    /// Absolute path of the sudo binary when the sudo package is in the closure (then sudoers and
    /// the setuid wrapper are made).
    pub sudo: Option<&'a str>,
    /// The accounts of the system (packages' and the config's).
    pub accounts: &'a Accounts,
}

/// An owner or group name resolved to a numeric id, or an error naming it.
fn resolve_id(kind: &str, name: &str, ids: &BTreeMap<String, u32>) -> Result<u32, String> {
    ids.get(name).copied().ok_or_else(|| {
        format!("{kind} {name:?} is not an account of this system (root, a configured user, or one a package creates): add it to users or use a number")
    })
}

/// Directories of /etc that are one link to the generation's copy, not a directory of links: systemd
/// reads an alias (`default.target` → `…/multi-user.target`) as an alias only when the link itself
/// sits in a unit directory, not behind a second link through /etc/static (as NixOS links it).
const LINKED_DIRS: &[&str] = &["systemd/system"];

/// `activation/etc-files`: how activation installs each path of the generated /etc: most files are
/// links into /etc/static; the account files and sudoers must be real files with their own modes;
/// the `LINKED_DIRS` are one link each. `dir PATH` lines are real directories activation makes
/// (root's, 0755): the packages' empty ones (`dirs`), unless a file of /etc makes them anyway or
/// cannot have them (a file or link at the path or above it, or inside a linked directory).
pub fn install_lines(etc: &BTreeMap<String, GenFile>, dirs: &BTreeSet<String>) -> String {
    let copies: BTreeMap<&str, &str> = BTreeMap::from([
        ("passwd", "0644"),
        ("group", "0644"),
        ("shadow", "0600"),
        ("gshadow", "0600"),
        ("sudoers", "0440"),
    ]);
    let mut out = String::new();
    let mut dirs_done: Vec<&str> = Vec::new();
    for path in etc.keys() {
        if let Some(d) = LINKED_DIRS
            .iter()
            .find(|d| path.strip_prefix(**d).is_some_and(|r| r.starts_with('/')))
        {
            if !dirs_done.contains(d) {
                dirs_done.push(d);
                out += &format!("link {d}\n");
            }
            continue;
        }
        out += &match copies.get(path.as_str()) {
            Some(mode) => format!("copy {path} {mode} 0 0\n"),
            None => format!("link {path}\n"),
        };
    }
    for d in dirs {
        let below = format!("{d}/");
        let made_anyway = etc
            .range(below.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&below));
        let blocked = etc.contains_key(d)
            || super::package_etc::parents(d).any(|p| etc.contains_key(p))
            || LINKED_DIRS
                .iter()
                .any(|l| d == l || d.strip_prefix(l).is_some_and(|r| r.starts_with('/')));
        if !made_anyway && !blocked {
            out += &format!("dir {d}\n");
        }
    }
    out
}

/// Builds the etc plan. Errors are single sentences naming the config field to fix.
pub fn plan(cfg: &HostConfig, ctx: &EtcContext) -> Result<EtcPlan, String> {
    let mut p = EtcPlan::default();

    // Accounts: planned from the packages' data and the config's users (super::accounts).
    let acc = ctx.accounts;
    let uids: BTreeMap<String, u32> = acc.users.iter().map(|u| (u.name.clone(), u.uid)).collect();
    let gids: BTreeMap<String, u32> = acc.groups.iter().map(|g| (g.name.clone(), g.gid)).collect();
    for u in &cfg.users {
        p.users += &format!("{n} {id} {id} /home/{n}\n", n = u.name, id = u.uid);
        let mut keys = String::new();
        for k in &u.ssh_authorized_keys {
            keys += k.trim();
            keys.push('\n');
        }
        p.keys.insert(u.name.clone(), keys);
    }
    for (i, s) in cfg.services.iter().enumerate() {
        resolve_id(&format!("services[{i}].user"), &s.user, &uids)?;
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
    e.insert("passwd".into(), GenFile::text(acc.passwd.clone()));
    e.insert("group".into(), GenFile::text(acc.group.clone()));
    e.insert("shadow".into(), GenFile::text(acc.shadow.clone()));
    e.insert("gshadow".into(), GenFile::text(acc.gshadow.clone()));
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
            format!("export PATH=/run/wrappers/bin:/run/current-system/sw/sbin:/run/current-system/sw/bin:/run/current-system/sw/usr/sbin:/run/current-system/sw/usr/bin:/run/busybox\n\
             export PS1='\\u@\\h:\\w\\$ '\n[ -r /etc/TZ ] && export TZ=\"$(cat /etc/TZ)\"\n{lang}",
             lang = cfg.locale.as_ref().map(|l| format!("export LANG={}\n", shell_quote(l))).unwrap_or_default()),
        ),
    );
    if let Some(l) = &cfg.locale {
        // systemd (PID 1 and every service) reads LANG from /etc/locale.conf (locale.conf(5));
        // Debian's tools and pam_env read /etc/default/locale.
        let text = format!("LANG={l}\n");
        e.insert("default/locale".into(), GenFile::text(text.clone()));
        e.insert("locale.conf".into(), GenFile::text(text));
    }
    if let Some(k) = &cfg.keyboard {
        // systemd-vconsole-setup loads KEYMAP on every virtual console (vconsole.conf(5)).
        e.insert(
            "vconsole.conf".into(),
            GenFile::text(format!("KEYMAP={k}\n")),
        );
    }
    if cfg.network.mdns && cfg.ssh.enable {
        // avahi-daemon announces the services described in /etc/avahi/services (avahi.service(5)):
        // `ssh pi@<hostname>.local` and SSH browsers find the SSH server by it.
        e.insert(
            "avahi/services/ssh.service".into(),
            GenFile::text(format!(
                "<?xml version=\"1.0\" standalone=\"no\"?>\n\
                 <!DOCTYPE service-group SYSTEM \"avahi-service.dtd\">\n\
                 <!-- Generated by pideploy from pi.toml [ssh]. -->\n\
                 <service-group>\n  <name replace-wildcards=\"yes\">%h</name>\n  <service>\n    <type>_ssh._tcp</type>\n    <port>{}</port>\n  </service>\n</service-group>\n",
                cfg.ssh.port
            )),
        );
    }
    if cfg.network.mdns || cfg.packages.iter().any(|p| p == "avahi-daemon") {
        // avahi-daemon chroots into /etc/avahi before it reads its service files (avahi-daemon(8)),
        // where the links into /etc/static lead nowhere; it still drops root for its own user.
        e.insert(
            "systemd/system/avahi-daemon.service.d/pideploy.conf".into(),
            GenFile::text(
                "# Generated by pideploy: /etc/avahi holds links into /etc/static, which a chroot hides.\n\
                 [Service]\nExecStart=\nExecStart=/usr/sbin/avahi-daemon -s --no-chroot\n",
            ),
        );
    }
    for (path, file) in wifi::plan(cfg, ctx.busybox) {
        e.insert(path, file);
    }
    for (path, file) in time_sync::plan(cfg, ctx.busybox)? {
        e.insert(path, file);
    }
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
        .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
        .collect();
    e.insert("pideploy/system.env".into(), GenFile::text(env));

    // systemd: pideploy's own units, its settings, and the modules loaded at every boot.
    let units = system_units::plan(cfg, ctx.consoles)?;
    for (name, text) in units.files {
        e.insert(format!("systemd/system/{name}"), GenFile::text(text));
    }
    for (name, target) in units.links {
        e.insert(format!("systemd/system/{name}"), GenFile::Link(target));
    }
    // Interfaces keep the kernel's names (eth0, wlan0, as on Raspberry Pi OS) rather than udev's
    // "predictable" ones: masking 99-default.link is the switch systemd.link(5) documents.
    e.insert(
        "systemd/network/99-default.link".into(),
        GenFile::Link("/dev/null".into()),
    );
    // Generators for what a pideploy system does not have (encrypted or verity volumes, GPT
    // auto-mounts, hibernation, SysV init scripts, rc.local, the system-update target): masked,
    // each is an exec systemd waits for on every boot and daemon-reload (seconds under QEMU).
    for g in system_units::MASKED_GENERATORS {
        e.insert(
            format!("systemd/system-generators/{g}"),
            GenFile::Link("/dev/null".into()),
        );
    }
    for (name, text) in system_units::settings() {
        e.insert(format!("systemd/{name}"), GenFile::text(text));
    }
    if !cfg.boot.kernel_modules.is_empty() {
        let list: String = cfg
            .boot
            .kernel_modules
            .iter()
            .map(|m| format!("{m}\n"))
            .collect();
        e.insert("modules-load.d/pideploy.conf".into(), GenFile::text(list));
    }
    for s in &cfg.services {
        if s.name.starts_with("pideploy-") {
            return Err(format!(
                "services: the name {:?} is used by pideploy itself (pideploy-*); pick another",
                s.name
            ));
        }
    }

    if let Some(sudo) = ctx.sudo {
        e.insert(
            "sudoers".into(),
            GenFile::text(
                // secure_path as Debian's sudoers has it (plus the setuid wrappers): `ssh pi@host
                // sudo reboot` finds systemd's reboot in /sbin though the ssh server's PATH for
                // commands is /usr/bin:/bin.
                "Defaults env_reset\n\
                 Defaults secure_path=\"/run/wrappers/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n\
                 root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) NOPASSWD: ALL\n",
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

    p.etc_files = install_lines(&p.etc, &BTreeSet::new());

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

    /// The accounts of `cfg`'s users with Debian's static sudo group (as base-passwd gives it).
    fn accounts(cfg: &HostConfig) -> &'static Accounts {
        use crate::closure::accounts::{plan_accounts, AccountInputs, BasePasswd, LoginUser};
        let input = AccountInputs {
            base_passwd: Some(BasePasswd {
                passwd_master: "root:*:0:0:root:/root:/bin/bash\n".into(),
                group_master: "root:*:0:\nsudo:*:27:\n".into(),
            }),
            login_users: cfg
                .users
                .iter()
                .map(|u| LoginUser {
                    name: u.name.clone(),
                    uid: u.uid,
                    groups: if u.sudo { vec!["sudo".into()] } else { vec![] },
                    shell: "/bin/sh".into(),
                })
                .collect(),
            ..AccountInputs::default()
        };
        Box::leak(Box::new(plan_accounts(&input).unwrap()))
    }

    fn ctx_for(cfg: &HostConfig) -> EtcContext<'static> {
        EtcContext {
            busybox: "/pideploy/store/x-busybox/bin/busybox",
            consoles: Box::leak(Box::new(["ttyAMA0".to_string()])),
            sudo: Some("/pideploy/store/x-sudo/usr/bin/sudo"),
            accounts: accounts(cfg),
        }
    }

    #[test]
    fn empty_package_dirs_are_made_unless_something_else_makes_or_blocks_them() {
        let link = |t: &str| GenFile::Link(t.into());
        let etc = BTreeMap::from([
            ("nginx/nginx.conf".to_string(), link("/x")),
            ("nginx/sites-enabled/default".to_string(), link("/x")),
            ("nginx/conf.d.old".to_string(), link("/x")),
            ("motd".to_string(), link("/x")),
            ("systemd/system/a.service".to_string(), link("/x")),
        ]);
        let dirs = BTreeSet::from(
            [
                "nginx/conf.d",
                "nginx/sites-enabled",
                "motd/inner",
                "systemd/system/extra.d",
                "dbus-1/system.d",
            ]
            .map(String::from),
        );
        let lines = install_lines(&etc, &dirs);
        let made: Vec<&str> = lines.lines().filter(|l| l.starts_with("dir ")).collect();
        assert_eq!(made, ["dir dbus-1/system.d", "dir nginx/conf.d"], "{lines}");
    }

    #[test]
    fn default_config_plan() {
        let cfg = HostConfig::default_for(
            "qemu-aarch64",
            vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop".into()],
        );
        let p = plan(&cfg, &ctx_for(&cfg)).unwrap();
        let text = |k: &str| match &p.etc[k] {
            GenFile::File { data, .. } => String::from_utf8(data.clone()).unwrap(),
            GenFile::Link(t) => t.clone(),
        };
        assert_eq!(text("hostname"), "pi\n");
        assert!(text("passwd").contains("pi:x:1000:1000::/home/pi:/bin/sh"));
        assert!(text("group").contains("sudo:x:27:pi"));
        assert!(text("shadow").starts_with("root:*:"));
        assert_eq!(
            text("systemd/system/multi-user.target.wants/pideploy-sshd.service"),
            "/etc/systemd/system/pideploy-sshd.service"
        );
        assert!(
            text("systemd/system/pideploy-sshd.service").contains("/usr/sbin/dropbear -F -E -p 22")
        );
        assert!(!p.etc.contains_key("inittab"));
        assert!(text("pideploy/system.env").contains("LOGIN_CONSOLES=ttyAMA0\n"));
        assert!(p.etc_files.contains("copy shadow 0600 0 0"));
        assert!(p.etc_files.contains("link hostname"));
        assert_eq!(
            p.etc_files
                .lines()
                .filter(|l| l.starts_with("link systemd/system/") || *l == "link systemd/system")
                .count(),
            1
        );
        assert!(p.etc_files.contains("\nlink systemd/system\n"));
        assert_eq!(p.users, "pi 1000 1000 /home/pi\n");
        assert!(p.keys["pi"].starts_with("ssh-ed25519 "));
        assert!(p.wrappers.starts_with("sudo "));
    }

    #[test]
    fn unknown_file_owner_refused() {
        let mut cfg = HostConfig::default_for("qemu-aarch64", vec![]);
        cfg.files.push(pideploy_config::FileSpec {
            path: "/etc/motd".into(),
            content: Some("hi".into()),
            source: None,
            mode: "0644".into(),
            owner: "nobody-here".into(),
            group: "root".into(),
        });
        assert!(plan(&cfg, &ctx_for(&cfg))
            .unwrap_err()
            .contains("nobody-here"));
    }
}
