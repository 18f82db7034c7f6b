//! ProxyJump: reaching a target through one or more jump hosts, each a private sshd on 127.0.0.1.

mod common;

use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::{keygen, keygen_fingerprint, tool, Sshd};
use pideploy_transport::{run, SshOptions, SshTransport, Transport, TransportError};

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A jump host: forwarding allowed, and logged in enough detail to show each forward.
fn jump_sshd() -> Sshd {
    Sshd::start_with("AllowTcpForwarding yes\nLogLevel DEBUG1\n")
}

/// A `Host` block reaching `sshd` as root with its own client key.
fn host_block(alias: &str, sshd: &Sshd, proxy_jump: Option<&str>) -> String {
    let mut block = format!(
        "Host {alias}\n    HostName 127.0.0.1\n    Port {}\n    User root\n    IdentityFile {}\n",
        sshd.port,
        sshd.client_key.display()
    );
    if let Some(j) = proxy_jump {
        block.push_str(&format!("    ProxyJump {j}\n"));
    }
    block
}

/// An ssh config made of `blocks` and a known_hosts trusting `trusted`, in a directory of their
/// own; options for host `target` using both.
fn setup(blocks: &[String], trusted: &[&Sshd]) -> (tempfile::TempDir, SshOptions) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ssh_config");
    fs::write(&config, blocks.concat()).unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let lines: String = trusted
        .iter()
        .map(|s| fs::read_to_string(&s.known_hosts).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&known_hosts, lines).unwrap();
    let mut o = SshOptions::new("target");
    o.ssh_config = Some(config);
    o.known_hosts = Some(known_hosts);
    o.connect_timeout = Duration::from_secs(5);
    (dir, o)
}

fn connect(o: &SshOptions, servers: &[&Sshd]) -> SshTransport {
    SshTransport::connect(o).unwrap_or_else(|e| {
        let logs: Vec<String> = servers.iter().map(|s| s.log()).collect();
        panic!("{e}\n{}", logs.join("\n-----\n"))
    })
}

fn connect_err(o: &SshOptions) -> TransportError {
    match SshTransport::connect(o) {
        Ok(_) => panic!("connecting to {} should have failed", o.host),
        Err(e) => e,
    }
}

/// `$SSH_CONNECTION` on the target: (client port, server port) of the TCP connection sshd serves.
fn ssh_connection(t: &mut SshTransport) -> (u16, u16) {
    let (code, out, _) = run(t, &argv(&["sh", "-c", "echo $SSH_CONNECTION"])).unwrap();
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f.len(), 4, "{out:?}");
    (f[1].parse().unwrap(), f[3].parse().unwrap())
}

/// The inode of the TCP socket going from local port `from` to remote port `to`.
fn tcp_socket_inode(from: u16, to: u16) -> Option<String> {
    let table = fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (port(f[1]) == from && port(f[2]) == to).then(|| f[9].to_string())
    })
}

fn holds_socket(pid: &str, inode: &str) -> bool {
    let wanted = format!("socket:[{inode}]");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == wanted))
}

/// Asserts that the TCP connection the target serves is held by a process of `jump`'s sshd
/// (not by this test process): the connection really was made by the jump host.
fn assert_connection_made_by(jump: &Sshd, client_port: u16, target_port: u16) {
    let inode = tcp_socket_inode(client_port, target_port)
        .unwrap_or_else(|| panic!("no TCP socket {client_port} -> {target_port}"));
    let owners: Vec<u32> = jump
        .session_processes()
        .into_iter()
        .filter(|p| holds_socket(&p.to_string(), &inode))
        .collect();
    assert!(
        !owners.is_empty(),
        "the connection to the target must belong to the jump host's sshd"
    );
    assert!(
        !holds_socket("self", &inode),
        "this process must not hold it"
    );
}

/// Whether the sshd log records a forward to 127.0.0.1:`port` (sshd's own wording, LogLevel DEBUG1).
fn forwarded_to(log: &str, port: u16) -> bool {
    log.lines().any(|l| {
        l.contains("server_request_direct_tcpip")
            && l.contains(&format!("target 127.0.0.1 port {port}"))
    })
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_command_runs_on_the_target_through_the_jump_host() {
    let jump = jump_sshd();
    let target = Sshd::start();
    let (_dir, o) = setup(
        &[
            host_block("target", &target, Some("jumphost")),
            host_block("jumphost", &jump, None),
        ],
        &[&jump, &target],
    );
    let mut t = connect(&o, &[&jump, &target]);
    assert_eq!(t.describe(), format!("root@target:{}", target.port));
    assert_eq!(
        t.host_key_fingerprint(),
        keygen_fingerprint(&target.host_key_pub),
        "the fingerprint is the target's"
    );

    let (client_port, server_port) = ssh_connection(&mut t);
    assert_eq!(server_port, target.port);
    assert_connection_made_by(&jump, client_port, target.port);
    assert!(
        forwarded_to(&jump.log(), target.port),
        "the jump host's log must show the forward:\n{}",
        jump.log()
    );

    // Enough data both ways to fill the channel windows of both sessions several times.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = t
        .exec(
            &argv(&["sh", "-c", "cat; echo done >&2"]),
            &mut data.as_slice(),
            &mut out,
            &mut err,
        )
        .unwrap();
    assert_eq!((code, err.as_slice()), (0, b"done\n".as_slice()));
    assert!(
        out == data,
        "{} bytes came back, {} sent",
        out.len(),
        data.len()
    );
    let (code, _, _) = run(&mut t, &argv(&["sh", "-c", "exit 7"])).unwrap();
    assert_eq!(code, 7);
    // Still the one connection.
    assert_eq!(ssh_connection(&mut t), (client_port, server_port));

    // Dropping the transport says goodbye to both hosts and ends both connections.
    let started = Instant::now();
    drop(t);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        started.elapsed()
    );
    wait_until(
        "the jump host's session to end",
        Duration::from_secs(5),
        || jump.session_processes().is_empty(),
    );
    wait_until(
        "the target's session to end",
        Duration::from_secs(5),
        || target.session_processes().is_empty(),
    );
    for (name, sshd) in [("jump host", &jump), ("target", &target)] {
        assert!(
            sshd.log().contains("pideploy is done"),
            "the {name} must have been told goodbye:\n{}",
            sshd.log()
        );
    }
}

#[test]
fn a_jump_host_with_an_unknown_key_is_refused_and_accept_new_records_it() {
    let jump = jump_sshd();
    let target = Sshd::start();
    let (_dir, mut o) = setup(
        &[
            host_block("target", &target, Some("jumphost")),
            host_block("jumphost", &jump, None),
        ],
        &[&target],
    );
    let e = connect_err(&o);
    eprintln!("{e}");
    let msg = e.to_string();
    let TransportError::JumpHost { source, .. } = &e else {
        panic!("expected a jump host error: {e}");
    };
    assert!(
        matches!(**source, TransportError::UnknownHostKey { .. }),
        "{source}"
    );
    assert!(
        msg.starts_with(&format!(
            "connecting to root@target:{} via jump host jumphost (127.0.0.1:{}): the host key of [127.0.0.1]:{} is not known",
            target.port, jump.port, jump.port
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&keygen_fingerprint(&jump.host_key_pub)),
        "{msg}"
    );
    assert!(msg.contains("--accept-new"), "{msg}");
    assert!(
        !forwarded_to(&jump.log(), target.port),
        "nothing may be forwarded through an untrusted jump host"
    );
    assert!(
        !target.log().contains("Accepted publickey"),
        "{}",
        target.log()
    );

    o.accept_new = true;
    let mut t = connect(&o, &[&jump, &target]);
    assert_eq!(run(&mut t, &argv(&["true"])).unwrap().0, 0);
    drop(t);
    let kh = o.known_hosts.clone().unwrap();
    let found = tool(
        "ssh-keygen",
        &[
            "-F",
            &format!("[127.0.0.1]:{}", jump.port),
            "-f",
            kh.to_str().unwrap(),
        ],
    );
    assert!(
        found.contains("ssh-ed25519"),
        "the jump host's key is recorded: {found}"
    );
}

#[test]
fn the_targets_own_key_is_still_checked_behind_a_jump_host() {
    let jump = jump_sshd();
    let target = Sshd::start();
    let (_dir, o) = setup(
        &[
            host_block("target", &target, Some("jumphost")),
            host_block("jumphost", &jump, None),
        ],
        &[&jump],
    );
    let started = Instant::now();
    let e = connect_err(&o);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "failing (and closing the tunnel) took {:?}",
        started.elapsed()
    );
    let TransportError::UnknownHostKey {
        port, fingerprint, ..
    } = &e
    else {
        panic!("expected the target's key to be unknown: {e}");
    };
    assert_eq!(*port, target.port);
    assert_eq!(*fingerprint, keygen_fingerprint(&target.host_key_pub));
    assert!(forwarded_to(&jump.log(), target.port), "{}", jump.log());
}

#[test]
fn a_jump_host_whose_key_changed_is_refused_even_with_accept_new() {
    let jump = jump_sshd();
    let target = Sshd::start();
    let (dir, mut o) = setup(
        &[
            host_block("target", &target, Some("jumphost")),
            host_block("jumphost", &jump, None),
        ],
        &[&target],
    );
    keygen(&dir.path().join("impostor"), "");
    let impostor = dir.path().join("impostor.pub");
    let kh: PathBuf = o.known_hosts.clone().unwrap();
    let mut lines = fs::read_to_string(&kh).unwrap();
    lines.push_str(&format!(
        "[127.0.0.1]:{} {}",
        jump.port,
        fs::read_to_string(&impostor).unwrap()
    ));
    fs::write(&kh, &lines).unwrap();
    o.accept_new = true;
    let e = connect_err(&o);
    let msg = e.to_string();
    assert!(
        matches!(&e, TransportError::JumpHost { source, .. } if matches!(**source, TransportError::HostKeyChanged { .. })),
        "{e}"
    );
    assert!(
        msg.contains("via jump host jumphost") && msg.contains("HOST KEY CHANGED"),
        "{msg}"
    );
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        lines,
        "known_hosts must not change"
    );
}

#[test]
fn a_jump_host_that_refuses_to_forward_is_named() {
    let jump = Sshd::start_with("AllowTcpForwarding no\n");
    let target = Sshd::start();
    let (_dir, o) = setup(
        &[
            host_block("target", &target, Some("jumphost")),
            host_block("jumphost", &jump, None),
        ],
        &[&jump, &target],
    );
    let e = connect_err(&o);
    eprintln!("{e}");
    assert!(
        matches!(&e, TransportError::JumpHost { source, .. } if matches!(**source, TransportError::Forward { .. })),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("via jump host jumphost (127.0.0.1:{})", jump.port))
            && msg.contains(&format!(
                "could not open a connection to [127.0.0.1]:{}",
                target.port
            ))
            && msg.contains("AllowTcpForwarding"),
        "{msg}"
    );
}

#[test]
fn a_chain_of_two_jump_hosts_works() {
    let first = jump_sshd();
    let second = jump_sshd();
    let target = Sshd::start();
    let (_dir, o) = setup(
        &[
            host_block("target", &target, Some("first,second")),
            host_block("first", &first, None),
            host_block("second", &second, None),
        ],
        &[&first, &second, &target],
    );
    let mut t = connect(&o, &[&first, &second, &target]);
    assert_eq!(t.describe(), format!("root@target:{}", target.port));
    let (client_port, server_port) = ssh_connection(&mut t);
    assert_eq!(server_port, target.port);
    assert_connection_made_by(&second, client_port, target.port);
    assert!(forwarded_to(&first.log(), second.port), "{}", first.log());
    assert!(forwarded_to(&second.log(), target.port), "{}", second.log());
    assert!(!forwarded_to(&first.log(), target.port), "{}", first.log());
    let (code, out, _) = run(&mut t, &argv(&["id", "-un"])).unwrap();
    assert_eq!((code, out), (0, b"root\n".to_vec()));
}

/// Runs `sleep 30` on the target through a jump host and sends `signal` to the jump host's
/// session processes once it runs.
fn interfere_with_jump(
    signal: &'static str,
) -> (TransportError, Duration, SshTransport, Sshd, Sshd) {
    let jump = jump_sshd();
    let target = Sshd::start();
    let (dir, mut o) = setup(
        &[
            host_block("target", &target, Some("jumphost")),
            host_block("jumphost", &jump, None),
        ],
        &[&jump, &target],
    );
    o.keepalive = Duration::from_millis(500);
    o.connect_timeout = Duration::from_secs(2);
    let mut t = connect(&o, &[&jump, &target]);
    drop(dir);
    let pids = jump.session_processes();
    assert!(!pids.is_empty());
    let started = Instant::now();
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(800));
        for p in &pids {
            let _ = std::process::Command::new("kill")
                .args([&format!("-{signal}"), &p.to_string()])
                .status();
        }
    });
    let result = run(&mut t, &argv(&["sh", "-c", "echo started; sleep 30"]));
    let took = started.elapsed();
    killer.join().unwrap();
    eprintln!("{signal}: {took:?}: {result:?}");
    let e = result.expect_err("losing the jump host must fail the command");
    (e, took, t, jump, target)
}

#[test]
fn a_jump_host_that_dies_fails_the_command_quickly_and_says_so() {
    let (e, took, mut t, _jump, _target) = interfere_with_jump("KILL");
    assert!(matches!(e, TransportError::Disconnected { .. }), "{e}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(e.to_string().contains("jump host jumphost"), "{e}");
    let again = Instant::now();
    assert!(matches!(
        run(&mut t, &argv(&["true"])),
        Err(TransportError::Disconnected { .. })
    ));
    assert!(again.elapsed() < Duration::from_secs(1));
    let dropped = Instant::now();
    drop(t);
    assert!(
        dropped.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        dropped.elapsed()
    );
}

#[test]
fn a_frozen_jump_host_becomes_an_error_not_a_hang() {
    let (e, took, t, jump, _target) = interfere_with_jump("STOP");
    assert!(matches!(e, TransportError::Disconnected { .. }), "{e}");
    // 0.8 s until the freeze + 0.5 s keepalive + 2 s timeout, with room for a busy machine.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(e.to_string().contains("jump host jumphost"), "{e}");
    let dropped = Instant::now();
    drop(t);
    assert!(
        dropped.elapsed() < Duration::from_secs(3),
        "drop took {:?}",
        dropped.elapsed()
    );
    jump.signal_sessions("KILL");
}
