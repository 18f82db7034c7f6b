//! A private OpenSSH sshd on 127.0.0.1 for the tests, with its own host key and client key.
#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pideploy_transport::SshOptions;

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub host_key_pub: PathBuf,
    pub client_key: PathBuf,
    /// known_hosts holding this server's key, written from the .pub file (not by our code).
    pub known_hosts: PathBuf,
    child: Child,
}

/// Runs a tool and returns its stdout, panicking with its stderr on failure.
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path, passphrase: &str) -> PathBuf {
    tool(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "pideploy-test",
            "-f",
            path.to_str().unwrap(),
        ],
    );
    path.to_path_buf()
}

/// `SHA256:…` of a public key file, as ssh-keygen computes it.
pub fn keygen_fingerprint(pub_file: &Path) -> String {
    let out = tool(
        "ssh-keygen",
        &["-l", "-E", "sha256", "-f", pub_file.to_str().unwrap()],
    );
    out.split_whitespace().nth(1).unwrap().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// Starts sshd with `extra` lines at the top of its config (sshd keeps the first value it
    /// reads for a keyword, so these win over the defaults below them).
    pub fn start_with(extra: &str) -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "these tests need OpenSSH's sshd: apt-get install openssh-server openssh-client"
        );
        // sshd's privilege separation wants this directory.
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let host_key = keygen(&dir.path().join("ssh_host_ed25519_key"), "");
        let client_key = keygen(&dir.path().join("id_client"), "");
        fs::copy(
            dir.path().join("id_client.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        let config = dir.path().join("sshd_config");
        fs::write(
            &config,
            format!(
                "{extra}ListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 MaxSessions 20\nMaxStartups 50\nLogLevel VERBOSE\n",
                host_key.display(),
                dir.path().join("authorized_keys").display()
            ),
        )
        .unwrap();
        for _attempt in 0..5 {
            let port = free_port();
            let log = fs::File::create(dir.path().join("sshd.log")).unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                .args([
                    "-D",
                    "-e",
                    "-f",
                    config.to_str().unwrap(),
                    "-p",
                    &port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let host_key_pub = dir.path().join("ssh_host_ed25519_key.pub");
                    let known_hosts = dir.path().join("known_hosts");
                    let line = fs::read_to_string(&host_key_pub).unwrap();
                    fs::write(&known_hosts, format!("[127.0.0.1]:{port} {line}")).unwrap();
                    return Sshd {
                        dir,
                        port,
                        host_key_pub,
                        client_key,
                        known_hosts,
                        child,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start: {}",
            fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default()
        );
    }

    /// Options that trust this server and log in as root with the client key.
    pub fn options(&self) -> SshOptions {
        let mut o = SshOptions::parse_target(&format!("root@127.0.0.1:{}", self.port)).unwrap();
        o.identities = vec![self.client_key.clone()];
        o.known_hosts = Some(self.known_hosts.clone());
        // Keep the tests away from the real ~/.ssh/config.
        let empty = self.dir.path().join("empty_config");
        fs::write(&empty, "").unwrap();
        o.ssh_config = Some(empty);
        o.connect_timeout = Duration::from_secs(5);
        o
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every process below the listening sshd: the per-connection sshd processes and their commands.
    pub fn session_processes(&self) -> Vec<u32> {
        let mut parents = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The command name may hold spaces and parentheses: the fields start after the last ')'.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let ppid: u32 = after.split_whitespace().nth(1).unwrap().parse().unwrap();
            parents.push((pid, ppid));
        }
        let mut found = vec![self.pid()];
        let mut i = 0;
        while i < found.len() {
            let p = found[i];
            found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
            i += 1;
        }
        found.remove(0);
        found
    }

    pub fn signal_sessions(&self, signal: &str) -> usize {
        let pids = self.session_processes();
        for p in &pids {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &p.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        pids.len()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Stopped session processes would otherwise linger.
        self.signal_sessions("KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
