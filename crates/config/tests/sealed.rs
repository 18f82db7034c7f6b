//! age-encrypted secret files, made by the `age` reference tool (Debian package `age`) and
//! `ssh-keygen`, decrypted by pideploy in memory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pideploy_config::sealed::{decrypt, is_age, read_secret, SealedError};

const PLAIN: &[u8] = b"wifi-passphrase-or-token\nsecond line\n";

fn ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `age ARGS -o OUT` with PLAIN on stdin.
fn age_encrypt(args: &[&str], out: &Path) {
    let mut c = Command::new("age")
        .args(args)
        .arg("-o")
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(PLAIN).unwrap();
    assert!(c.wait().unwrap().success());
}

/// An age X25519 identity: (identity file, recipient).
fn x25519(dir: &Path, name: &str) -> (PathBuf, String) {
    let id = dir.join(name);
    ok(Command::new("age-keygen").arg("-o").arg(&id));
    let recipient = fs::read_to_string(&id)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    (id, recipient)
}

/// An ssh-ed25519 key pair (with `passphrase`): (private key, public key file).
fn ssh_key(dir: &Path, name: &str, passphrase: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", "t", "-f"])
        .arg(&key));
    (key.clone(), key.with_extension("pub"))
}

#[test]
fn files_from_the_age_tool_decrypt_with_x25519_and_ssh_identities() {
    let w = tempfile::tempdir().unwrap();
    let w = w.path();
    let (id, recipient) = x25519(w, "id.txt");
    let (ssh, ssh_pub) = ssh_key(w, "id_ed25519", "");

    for (name, args) in [
        ("bin.age", vec!["-r", recipient.as_str()]),
        ("armor.age", vec!["--armor", "-r", recipient.as_str()]),
    ] {
        let f = w.join(name);
        age_encrypt(&args, &f);
        let bytes = fs::read(&f).unwrap();
        assert!(is_age(&bytes), "{name}");
        assert_eq!(
            decrypt(&f, &bytes, std::slice::from_ref(&id)).unwrap(),
            PLAIN,
            "{name}"
        );
    }
    let f = w.join("ssh.age");
    age_encrypt(&["-R", ssh_pub.to_str().unwrap()], &f);
    let bytes = fs::read(&f).unwrap();
    // The first identity that fits serves; one that does not is passed over.
    assert_eq!(
        decrypt(&f, &bytes, &[id.clone(), ssh.clone()]).unwrap(),
        PLAIN
    );

    // read_secret: plaintext as is; an age file through PIDEPLOY_AGE_IDENTITY.
    let plain = w.join("plain.txt");
    fs::write(&plain, PLAIN).unwrap();
    assert_eq!(read_secret(&plain).unwrap(), PLAIN);
    assert!(!is_age(PLAIN));
    std::env::set_var("PIDEPLOY_AGE_IDENTITY", &ssh);
    assert_eq!(read_secret(&f).unwrap(), PLAIN);
}

#[test]
fn the_wrong_identity_or_a_locked_ssh_key_is_one_clear_error() {
    let w = tempfile::tempdir().unwrap();
    let w = w.path();
    let (_, recipient) = x25519(w, "right.txt");
    let (other, _) = x25519(w, "other.txt");
    let f = w.join("s.age");
    age_encrypt(&["-r", &recipient], &f);
    let bytes = fs::read(&f).unwrap();

    let e = decrypt(&f, &bytes, std::slice::from_ref(&other)).unwrap_err();
    assert!(matches!(e, SealedError::Decrypt { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&other.display().to_string()) && msg.contains("PIDEPLOY_AGE_IDENTITY"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    let e = decrypt(&f, &bytes, &[]).unwrap_err();
    assert!(e.to_string().contains("identities tried: none"), "{e}");

    let (locked, _) = ssh_key(w, "locked", "hunter22");
    let e = decrypt(&f, &bytes, &[locked]).unwrap_err();
    assert!(e.to_string().contains("passphrase-protected"), "{e}");

    // A damaged file is refused, never half-decrypted.
    let mut damaged = bytes.clone();
    let at = damaged.len() - 5;
    damaged[at] ^= 1;
    let (right, _) = (w.join("right.txt"), ());
    assert!(decrypt(&f, &damaged, &[right]).is_err());
}
