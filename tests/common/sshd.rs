//! A private OpenSSH sshd on a free 127.0.0.1 port (own host key, key login, no PAM), killed with
//! its session processes when dropped. Only processes it started are touched.
//!
//! Besides root, the client key logs in as two system users the tests create (idempotently, as
//! root): [`NOPW_USER`] with passwordless sudo, and [`PW_USER`] whose sudo wants its password
//! ([`sudo_password`]), each allowed by a drop-in under /etc/sudoers.d checked with `visudo -c`.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::run;

/// A login with `NOPASSWD: ALL` sudo.
pub const NOPW_USER: &str = "pdtest-nopw";
/// A login whose sudo asks for [`sudo_password`].
pub const PW_USER: &str = "pdtest-pw";
/// The sudoers drop-in for both.
const SUDOERS: &str = "/etc/sudoers.d/pideploy-tests";
/// Root-only directory with [`PW_USER`]'s password and the lock that serialises setting up users.
const STATE: &str = "/var/lib/pideploy-tests";

/// The password of [`PW_USER`]: random, made by the first test process on this machine and kept
/// for the others in a root-only file ([`STATE`]): it is a real account, and test processes run
/// side by side (nextest), so one process must not change the password under another.
pub fn sudo_password() -> &'static str {
    test_users()
}

/// Makes the test users and their sudoers drop-in once per process; returns the password of
/// [`PW_USER`]. Safe when another test process does the same at the same time.
fn test_users() -> &'static str {
    static PASSWORD: OnceLock<String> = OnceLock::new();
    PASSWORD.get_or_init(|| {
        fs::create_dir_all(STATE).unwrap();
        fs::set_permissions(STATE, fs::Permissions::from_mode(0o700)).unwrap();
        let _lock = super::file_lock(&Path::new(STATE).join("lock"));
        for user in [NOPW_USER, PW_USER] {
            let exists = |u: &str| {
                Command::new("id")
                    .arg("-u")
                    .arg(u)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap()
                    .success()
            };
            if !exists(user) {
                // `*`: no password login, yet not locked (sshd without PAM refuses `!` accounts).
                let out = Command::new("useradd")
                    .args(["--system", "--create-home", "--shell", "/bin/sh"])
                    .args(["--password", "*", user])
                    .output()
                    .expect("useradd (the tests run as root)");
                // Exit 9: made by a concurrent test process in the meantime.
                assert!(
                    out.status.success() || exists(user),
                    "useradd {user}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let kept = Path::new(STATE).join("pw-password");
        let password = match fs::read_to_string(&kept) {
            Ok(p) if p.len() == 24 && p.bytes().all(|b| b.is_ascii_hexdigit()) => p,
            _ => {
                let mut raw = [0u8; 12];
                fs::File::open("/dev/urandom")
                    .unwrap()
                    .read_exact(&mut raw)
                    .unwrap();
                let p: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                let tmp = kept.with_extension("tmp");
                fs::write(&tmp, &p).unwrap();
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).unwrap();
                fs::rename(&tmp, &kept).unwrap();
                p
            }
        };
        // Set every time (the same password, so harmless to a process using it): whatever else
        // changed it since is undone.
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            chpasswd.stdin.as_mut().unwrap(),
            format!("{PW_USER}:{password}\n").as_bytes(),
        )
        .unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd {PW_USER}");
        let rules = format!(
            "# pideploy's integration tests (tests/common/sshd.rs)\n\
             Defaults:{NOPW_USER} !lecture\n\
             Defaults:{PW_USER} !lecture\n\
             {NOPW_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n\
             {PW_USER} ALL=(ALL:ALL) ALL\n"
        );
        if fs::read_to_string(SUDOERS).ok().as_deref() != Some(rules.as_str()) {
            // A name with a dot is skipped by sudo's @includedir until it is checked and renamed.
            let tmp = format!("{SUDOERS}.{}", std::process::id());
            fs::write(&tmp, &rules).unwrap();
            run(Command::new("chmod").args(["0440", &tmp]));
            run(Command::new("visudo").args(["-q", "-c", "-f", &tmp]));
            fs::rename(&tmp, SUDOERS).unwrap();
        }
        run(Command::new("visudo").args(["-q", "-c"]));
        password
    })
}

/// The running server.
pub struct Sshd {
    /// Its files (config, keys, known_hosts, log).
    pub dir: tempfile::TempDir,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Client private key authorized for root, [`NOPW_USER`] and [`PW_USER`].
    pub client_key: PathBuf,
    /// known_hosts trusting exactly this server.
    pub known_hosts: PathBuf,
    child: Child,
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path));
}

/// Processes whose parent chain leads to `pid` (its session children), found in /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Field 4 (after the parenthesised command, which may contain spaces) is the parent pid.
        let Some(rest) = stat.rsplit(')').next() else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse::<u32>().ok())
        {
            parent_of.push((p, ppid));
        }
    }
    let mut out = vec![];
    let mut frontier = vec![pid];
    while let Some(x) = frontier.pop() {
        for &(p, pp) in &parent_of {
            if pp == x {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

impl Sshd {
    /// Starts the server and waits until it accepts connections.
    pub fn start() -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "apt-get install openssh-server openssh-client"
        );
        test_users();
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        // One authorized_keys per user (sshd's %u token below).
        fs::create_dir(d.join("authorized_keys")).unwrap();
        for user in ["root", NOPW_USER, PW_USER] {
            fs::copy(
                d.join("client_key.pub"),
                d.join("authorized_keys").join(user),
            )
            .unwrap();
        }
        // sshd reads a user's keys with that user's rights; the private keys stay 0600.
        for p in [d, &d.join("authorized_keys")] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\nStrictModes no\n\
                 UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nMaxSessions 20\n",
                d.join("host_key").display(),
                d.join("authorized_keys/%u").display()
            ),
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let host = fs::read_to_string(d.join("host_key.pub")).unwrap();
        let known_hosts = d.join("known_hosts");
        fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host}")).unwrap();
        Sshd {
            port,
            client_key: d.join("client_key"),
            known_hosts,
            child,
            dir,
        }
    }

    /// Kills the connections it is serving (the session processes), as a dropped link would.
    pub fn cut_sessions(&self) -> usize {
        let kids = descendants(self.child.id());
        for k in &kids {
            // A session may end by itself meanwhile; that is no error.
            let _ = Command::new("kill")
                .args(["-KILL", &k.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        kids.len()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.cut_sessions();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
