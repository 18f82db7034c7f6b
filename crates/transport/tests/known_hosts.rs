//! known_hosts read as OpenSSH reads it, against a real sshd: @revoked, @cert-authority,
//! wildcards, negation, hashed names, and --accept-new appending once under a lock.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{keygen, keygen_fingerprint, tool, Sshd};
use pideploy_transport::{run, SshOptions, SshTransport, TransportError};

fn connect_err(o: &SshOptions) -> TransportError {
    match SshTransport::connect(o) {
        Ok(_) => panic!("connecting to {} should have failed", o.host),
        Err(e) => e,
    }
}

/// `KEYTYPE BASE64 COMMENT` of a fresh key that is not the server's.
fn other_key(sshd: &Sshd, name: &str) -> String {
    keygen(&sshd.dir.path().join(name), "");
    fs::read_to_string(sshd.dir.path().join(format!("{name}.pub"))).unwrap()
}

fn server_key(sshd: &Sshd) -> String {
    fs::read_to_string(&sshd.host_key_pub).unwrap()
}

/// Options using a known_hosts file holding `text`.
fn with_file(sshd: &Sshd, name: &str, text: &str, accept_new: bool) -> (SshOptions, PathBuf) {
    let kh = sshd.dir.path().join(name);
    fs::write(&kh, text).unwrap();
    let mut o = sshd.options();
    o.known_hosts = Some(kh.clone());
    o.accept_new = accept_new;
    (o, kh)
}

#[test]
fn a_revoked_key_is_refused_even_when_also_listed_as_known() {
    let sshd = Sshd::start();
    let text = format!(
        "[127.0.0.1]:{} {}@revoked * {}",
        sshd.port,
        server_key(&sshd),
        server_key(&sshd)
    );
    let (o, kh) = with_file(&sshd, "kh_revoked", &text, false);
    let e = connect_err(&o);
    eprintln!("{e}");
    assert!(
        matches!(e, TransportError::HostKeyRevoked { line: 2, .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("REVOKED") && msg.contains(&keygen_fingerprint(&sshd.host_key_pub)),
        "{msg}"
    );
    assert!(msg.contains(&format!("{}:2", kh.display())), "{msg}");
}

#[test]
fn accept_new_never_records_a_revoked_key() {
    let sshd = Sshd::start();
    let text = format!("@revoked [127.0.0.1]:* {}", server_key(&sshd));
    let (o, kh) = with_file(&sshd, "kh_revoked_new", &text, true);
    let e = connect_err(&o);
    assert!(matches!(e, TransportError::HostKeyRevoked { .. }), "{e}");
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        text,
        "nothing may be recorded"
    );
}

#[test]
fn a_wildcard_line_with_another_key_blocks_accept_new() {
    let sshd = Sshd::start();
    let other_pub = sshd.dir.path().join("wild.pub");
    let text = format!("[127.0.0.1]:* {}", other_key(&sshd, "wild"));
    let (o, kh) = with_file(&sshd, "kh_wild", &text, true);
    let e = connect_err(&o);
    eprintln!("{e}");
    assert!(matches!(e, TransportError::HostKeyChanged { .. }), "{e}");
    assert!(
        e.to_string().contains(&keygen_fingerprint(&other_pub)),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        text,
        "known_hosts must not change"
    );
}

#[test]
fn a_negated_host_is_not_named_by_the_line() {
    let sshd = Sshd::start();
    // The line's other key is for every port but this one: the host is unknown, not changed.
    let text = format!(
        "[127.0.0.1]:*,![127.0.0.1]:{} {}",
        sshd.port,
        other_key(&sshd, "neg")
    );
    let (mut o, kh) = with_file(&sshd, "kh_neg", &text, false);
    assert!(matches!(
        connect_err(&o),
        TransportError::UnknownHostKey { .. }
    ));
    o.accept_new = true;
    let mut t = SshTransport::connect(&o).unwrap();
    assert_eq!(run(&mut t, &["true".to_string()]).unwrap().0, 0);
    let after = fs::read_to_string(&kh).unwrap();
    assert!(after.starts_with(&text), "the old line is kept: {after}");
    assert_eq!(after.lines().count(), 2, "{after}");
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
}

#[test]
fn a_hashed_entry_made_by_ssh_keygen_is_accepted() {
    let sshd = Sshd::start();
    let text = format!(
        "# hashed below\n\n[127.0.0.1]:{} {}",
        sshd.port,
        server_key(&sshd)
    );
    let (o, kh) = with_file(&sshd, "kh_hashed", &text, false);
    tool("ssh-keygen", &["-H", "-f", kh.to_str().unwrap()]);
    let hashed = fs::read_to_string(&kh).unwrap();
    assert!(
        hashed.contains("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    let mut t = SshTransport::connect(&o).unwrap();
    assert_eq!(run(&mut t, &["true".to_string()]).unwrap().0, 0);
    // The same hashed name with another key is a change.
    let other = other_key(&sshd, "hashed_other");
    let server = server_key(&sshd);
    let server_b64 = server.split_whitespace().nth(1).unwrap();
    let other_b64 = other.split_whitespace().nth(1).unwrap();
    fs::write(&kh, hashed.replace(server_b64, other_b64)).unwrap();
    let mut o = o;
    o.accept_new = true;
    assert!(matches!(
        connect_err(&o),
        TransportError::HostKeyChanged { .. }
    ));
}

#[test]
fn a_cert_authority_line_is_refused_clearly() {
    let sshd = Sshd::start();
    let text = format!("@cert-authority [127.0.0.1]:* {}", other_key(&sshd, "ca"));
    let (o, kh) = with_file(&sshd, "kh_ca", &text, true);
    let e = connect_err(&o);
    eprintln!("{e}");
    assert!(
        matches!(e, TransportError::HostCertAuthority { line: 1, .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("does not check host certificates"),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        text,
        "nothing may be recorded"
    );
}

#[test]
fn concurrent_accept_new_records_the_key_once() {
    let sshd = Sshd::start();
    let kh = sshd.dir.path().join("kh_race");
    fs::write(&kh, "# existing, no newline at the end").unwrap();
    let mut o = sshd.options();
    o.known_hosts = Some(kh.clone());
    o.accept_new = true;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let o = o.clone();
            std::thread::spawn(move || SshTransport::connect(&o).map(|_| ()))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let text = fs::read_to_string(&kh).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "# existing, no newline at the end");
    assert!(
        lines[1].starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{text}"
    );
}
