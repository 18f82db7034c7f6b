//! What only the SSH transport does: host keys, logins, ~/.ssh/config, dead connections.

mod common;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use common::{keygen, keygen_fingerprint, tool, Sshd};
use pideploy_transport::{run, SshOptions, SshTransport, Transport, TransportError};

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn connect_err(o: &SshOptions) -> TransportError {
    match SshTransport::connect(o) {
        Ok(_) => panic!("connecting to {} should have failed", o.host),
        Err(e) => e,
    }
}

#[test]
fn unknown_host_key_is_refused_with_its_fingerprint() {
    let sshd = Sshd::start();
    let mut o = sshd.options();
    o.known_hosts = Some(sshd.dir.path().join("empty_known_hosts"));
    let e = connect_err(&o);
    let fp = keygen_fingerprint(&sshd.host_key_pub);
    eprintln!("{e}");
    assert!(matches!(e, TransportError::UnknownHostKey { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&fp), "{msg} should name {fp}");
    assert!(
        msg.contains("--accept-new")
            && msg.contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.port)),
        "{msg}"
    );
    assert!(
        !sshd.dir.path().join("empty_known_hosts").exists(),
        "nothing may be written without accept_new"
    );
}

#[test]
fn accept_new_records_the_key_and_the_next_connect_trusts_it() {
    let sshd = Sshd::start();
    let kh = sshd.dir.path().join("sub/dir/known_hosts");
    let mut o = sshd.options();
    o.known_hosts = Some(kh.clone());
    o.accept_new = true;
    let t = SshTransport::connect(&o).unwrap();
    assert_eq!(
        t.host_key_fingerprint(),
        keygen_fingerprint(&sshd.host_key_pub)
    );
    drop(t);
    // OpenSSH's own tool finds the entry under the [host]:port name.
    let found = tool(
        "ssh-keygen",
        &[
            "-F",
            &format!("[127.0.0.1]:{}", sshd.port),
            "-f",
            kh.to_str().unwrap(),
        ],
    );
    assert!(found.contains("ssh-ed25519"), "{found}");
    o.accept_new = false;
    let mut t = SshTransport::connect(&o).unwrap();
    assert_eq!(run(&mut t, &argv(&["true"])).unwrap().0, 0);
    assert_eq!(
        fs::read_to_string(&kh).unwrap().lines().count(),
        1,
        "the key is recorded once"
    );
}

#[test]
fn hashed_known_hosts_from_ssh_keyscan_are_understood() {
    let sshd = Sshd::start();
    let scanned = tool(
        "ssh-keyscan",
        &[
            "-H",
            "-t",
            "ed25519",
            "-p",
            &sshd.port.to_string(),
            "127.0.0.1",
        ],
    );
    assert!(
        scanned.starts_with("|1|"),
        "hashed entry expected: {scanned}"
    );
    let kh = sshd.dir.path().join("hashed_known_hosts");
    fs::write(&kh, format!("# a comment\n\n{scanned}")).unwrap();
    let mut o = sshd.options();
    o.known_hosts = Some(kh);
    let mut t = SshTransport::connect(&o).unwrap();
    assert_eq!(run(&mut t, &argv(&["true"])).unwrap().0, 0);
}

#[test]
fn a_changed_key_is_refused_even_with_accept_new() {
    let sshd = Sshd::start();
    let other = keygen(&sshd.dir.path().join("other_host_key"), "");
    let other_pub = sshd.dir.path().join("other_host_key.pub");
    let kh = sshd.dir.path().join("changed_known_hosts");
    let line = format!(
        "[127.0.0.1]:{} {}",
        sshd.port,
        fs::read_to_string(&other_pub).unwrap()
    );
    fs::write(&kh, &line).unwrap();
    let mut o = sshd.options();
    o.known_hosts = Some(kh.clone());
    o.accept_new = true;
    let e = connect_err(&o);
    eprintln!("{e}");
    assert!(matches!(e, TransportError::HostKeyChanged { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&keygen_fingerprint(&other_pub)),
        "old fingerprint missing: {msg}"
    );
    assert!(
        msg.contains(&keygen_fingerprint(&sshd.host_key_pub)),
        "new fingerprint missing: {msg}"
    );
    assert!(
        msg.contains("man-in-the-middle") && msg.contains(":1)"),
        "{msg}"
    );
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        line,
        "known_hosts must not change"
    );
    drop(other);
}

#[test]
fn a_port_22_entry_does_not_vouch_for_another_port() {
    let sshd = Sshd::start();
    let other_pub = {
        keygen(&sshd.dir.path().join("k22"), "");
        sshd.dir.path().join("k22.pub")
    };
    let kh = sshd.dir.path().join("kh22");
    // A different key for plain "127.0.0.1" (port 22) is about another server: not a change.
    fs::write(
        &kh,
        format!("127.0.0.1 {}", fs::read_to_string(other_pub).unwrap()),
    )
    .unwrap();
    let mut o = sshd.options();
    o.known_hosts = Some(kh);
    assert!(matches!(
        connect_err(&o),
        TransportError::UnknownHostKey { .. }
    ));
}

#[test]
fn a_wrong_identity_is_refused() {
    let sshd = Sshd::start();
    let stranger = keygen(&sshd.dir.path().join("stranger"), "");
    let mut o = sshd.options();
    o.identities = vec![stranger.clone()];
    let e = connect_err(&o);
    eprintln!("{e}");
    assert!(matches!(e, TransportError::AuthFailed { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("stranger") && msg.contains("ssh-copy-id"),
        "{msg}"
    );

    o.identities = vec![sshd.dir.path().join("no-such-key")];
    assert!(matches!(
        connect_err(&o),
        TransportError::IdentityFile { .. }
    ));
}

#[test]
fn an_encrypted_key_needs_its_passphrase() {
    let sshd = Sshd::start();
    let key = keygen(&sshd.dir.path().join("locked"), "open sesame");
    let pubkey = fs::read_to_string(sshd.dir.path().join("locked.pub")).unwrap();
    let mut keys = fs::read_to_string(sshd.dir.path().join("authorized_keys")).unwrap();
    keys.push_str(&pubkey);
    fs::write(sshd.dir.path().join("authorized_keys"), keys).unwrap();

    let mut o = sshd.options();
    o.identities = vec![key];
    let e = connect_err(&o);
    assert!(
        matches!(e, TransportError::PassphraseRequired { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("passphrase"));

    o.passphrase = Some("wrong".into());
    assert!(matches!(connect_err(&o), TransportError::AuthFailed { .. }));

    o.passphrase = Some("open sesame".into());
    let mut t = SshTransport::connect(&o).unwrap();
    assert_eq!(run(&mut t, &argv(&["true"])).unwrap().0, 0);
}

#[test]
fn an_ssh_config_host_alias_is_followed() {
    let sshd = Sshd::start();
    let config = sshd.dir.path().join("ssh_config");
    fs::write(
        &config,
        format!(
            "Host mypi\n    HostName 127.0.0.1\n    Port {}\n    User root\n    IdentityFile {}\n    ServerAliveInterval 10\n\n\
             Host behind-bastion\n    HostName 10.0.0.9\n    ProxyJump jumpbox\n",
            sshd.port,
            sshd.client_key.display()
        ),
    )
    .unwrap();
    let mut o = SshOptions::new("mypi");
    o.ssh_config = Some(config.clone());
    o.known_hosts = Some(sshd.known_hosts.clone());
    let mut t = SshTransport::connect(&o).unwrap();
    assert_eq!(t.describe(), format!("root@mypi:{}", sshd.port));
    let (code, out, _) = run(&mut t, &argv(&["id", "-un"])).unwrap();
    assert_eq!(
        (code, String::from_utf8(out).unwrap()),
        (0, "root\n".to_string())
    );

    // The jump host is resolved through the same config; a failure there names it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = fs::read_to_string(&config).unwrap();
    cfg.push_str(&format!(
        "\nHost jumpbox\n    HostName 127.0.0.1\n    Port {closed}\n    User root\n"
    ));
    fs::write(&config, cfg).unwrap();
    let mut o = SshOptions::new("behind-bastion");
    o.ssh_config = Some(config);
    o.user = Some("pi".into());
    let e = connect_err(&o);
    eprintln!("{e}");
    let TransportError::JumpHost { source, .. } = &e else {
        panic!("expected a jump host error, got {e}");
    };
    assert!(
        matches!(**source, TransportError::Connect { .. }),
        "{source}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "connecting to pi@behind-bastion:22 via jump host jumpbox (127.0.0.1:{closed}): connecting to 127.0.0.1:{closed} failed"
        )),
        "{e}"
    );
}

#[test]
fn one_connection_serves_every_command_and_quiet_commands_survive_probes() {
    let sshd = Sshd::start();
    let mut o = sshd.options();
    o.keepalive = Duration::from_millis(300);
    o.connect_timeout = Duration::from_secs(2);
    let mut t = SshTransport::connect(&o).unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (code, out, _) = run(&mut t, &argv(&["sh", "-c", "echo $SSH_CONNECTION"])).unwrap();
        assert_eq!(code, 0);
        seen.push(String::from_utf8(out).unwrap());
    }
    assert!(!seen[0].trim().is_empty());
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "every exec must use the same TCP connection: {seen:?}"
    );
    // Silent for several keepalive periods: the liveness probes must not break anything.
    let (code, out, _) = run(&mut t, &argv(&["sh", "-c", "sleep 1.5; echo done"])).unwrap();
    assert_eq!((code, out), (0, b"done\n".to_vec()));
}

/// Runs `sleep 30` and, once it is running, sends `signal` to the sshd processes serving it.
fn exec_and_interfere(
    signal: &'static str,
) -> (Result<i32, TransportError>, Duration, SshTransport, Sshd) {
    let sshd = Sshd::start();
    let mut o = sshd.options();
    o.keepalive = Duration::from_millis(500);
    o.connect_timeout = Duration::from_secs(2);
    let mut t = SshTransport::connect(&o).unwrap();
    let pids = sshd.session_processes();
    assert!(
        !pids.is_empty(),
        "the connection must be served by a child of the listener"
    );
    let started = Instant::now();
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(800));
        for p in &pids {
            let _ = std::process::Command::new("kill")
                .args([&format!("-{signal}"), &p.to_string()])
                .status();
        }
    });
    let result = run(&mut t, &argv(&["sh", "-c", "echo started; sleep 30"])).map(|(c, _, _)| c);
    let took = started.elapsed();
    killer.join().unwrap();
    eprintln!("{signal}: {took:?}: {result:?}");
    (result, took, t, sshd)
}

#[test]
fn a_frozen_server_becomes_an_error_not_a_hang() {
    let (result, took, mut t, sshd) = exec_and_interfere("STOP");
    let e = result.expect_err("a frozen server must give an error");
    assert!(matches!(e, TransportError::Disconnected { .. }), "{e}");
    // 0.8 s until the freeze + 0.5 s keepalive + 2 s timeout, with room for a busy machine.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        e.to_string()
            .contains(&format!("root@127.0.0.1:{}", sshd.port)),
        "{e}"
    );
    // The transport stays dead, at once, instead of hanging again.
    let again = Instant::now();
    assert!(matches!(
        run(&mut t, &argv(&["true"])),
        Err(TransportError::Disconnected { .. })
    ));
    assert!(again.elapsed() < Duration::from_secs(1));
    drop(t);
    sshd.signal_sessions("KILL");
}

#[test]
fn a_killed_session_becomes_an_error_quickly() {
    let (result, took, _t, _sshd) = exec_and_interfere("KILL");
    let e = result.expect_err("a killed session must give an error");
    assert!(matches!(e, TransportError::Disconnected { .. }), "{e}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_closed_port_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = SshOptions::parse_target(&format!("root@127.0.0.1:{port}")).unwrap();
    o.known_hosts = Some("/nonexistent/known_hosts".into());
    o.ssh_config = Some("/dev/null".into());
    let e = connect_err(&o);
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
    assert!(e.to_string().contains(&port.to_string()));
}
