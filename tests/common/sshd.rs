//! A private OpenSSH sshd on a free 127.0.0.1 port (own host key, key login as root, no PAM),
//! killed with its session processes when dropped. Only processes it started are touched.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run;

/// The running server.
pub struct Sshd {
    /// Its files (config, keys, known_hosts, log).
    pub dir: tempfile::TempDir,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Client private key authorized for root.
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
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\nStrictModes no\n\
                 UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nMaxSessions 20\n",
                d.join("host_key").display(),
                d.join("authorized_keys").display()
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
            let _ = Command::new("kill")
                .args(["-KILL", &k.to_string()])
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
