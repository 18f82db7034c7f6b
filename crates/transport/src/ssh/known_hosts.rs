//! Host key checking against an OpenSSH known_hosts file.
//!
//! Each line is loaded into its own libssh2 `KnownHosts` so that one line libssh2 cannot read
//! (a certificate authority, a key type it lacks) does not hide the rest of the file, and so
//! that a mismatch can be reported with the line that recorded the old key.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, KnownHostFileKind, Session};

use crate::TransportError;

/// OpenSSH's fingerprint of a public key blob: `SHA256:` + unpadded base64 of its SHA-256.
pub fn fingerprint(key_blob: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(key_blob))
    )
}

/// The key type named at the start of a public key blob (`ssh-ed25519`, `ssh-rsa`, …).
pub(crate) fn key_type(key_blob: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(key_blob.get(..4)?.try_into().ok()?) as usize;
    let name = key_blob.get(4..4 + len)?;
    String::from_utf8(name.to_vec()).ok()
}

/// The short name OpenSSH uses in host key file names (`/etc/ssh/ssh_host_<short>_key`).
pub(crate) fn key_file_name(key_type: &str) -> &'static str {
    match key_type {
        "ssh-ed25519" => "ed25519",
        "ssh-rsa" => "rsa",
        t if t.starts_with("ecdsa-") => "ecdsa",
        _ => "*",
    }
}

/// What known_hosts says about a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Known,
    Unknown,
    /// Other keys are recorded for the host: `fingerprint (file:line)` each.
    Changed(Vec<String>),
}

/// One usable known_hosts line, loaded on its own.
struct Entry {
    line_no: usize,
    hosts: ssh2::KnownHosts,
    /// The recorded key blob.
    key: Vec<u8>,
}

fn load(session: &Session, path: &Path) -> Result<Vec<Entry>, TransportError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TransportError::KnownHostsIo {
                what: "reading",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        // Markers (@cert-authority, @revoked) are not understood by libssh2; skipping a
        // @revoked line could only make us stricter if it were read, never looser in what it
        // accepts elsewhere, so they are left out rather than mis-read as plain entries.
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('@') {
            continue;
        }
        let mut hosts = session
            .known_hosts()
            .map_err(|source| TransportError::Ssh {
                what: "known_hosts setup",
                host: path.display().to_string(),
                source,
            })?;
        if hosts.read_str(trimmed, KnownHostFileKind::OpenSSH).is_err() {
            continue;
        }
        let key = match hosts
            .hosts()
            .ok()
            .and_then(|h| h.first().map(|h| h.key().to_string()))
        {
            Some(k) => STANDARD.decode(k.trim()).unwrap_or_default(),
            None => continue,
        };
        entries.push(Entry {
            line_no: i + 1,
            hosts,
            key,
        });
    }
    Ok(entries)
}

/// Looks `host_name` (`host` or `[host]:port`) up with `key_blob`.
pub(crate) fn check(
    session: &Session,
    path: &Path,
    host_name: &str,
    key_blob: &[u8],
) -> Result<Verdict, TransportError> {
    let mut changed = Vec::new();
    for e in load(session, path)? {
        // `check` (not `check_port`) on the name as OpenSSH writes it: `check_port` would also
        // accept a plain `host` line (a port-22 key) for a server on another port.
        match e.hosts.check(host_name, key_blob) {
            CheckResult::Match => return Ok(Verdict::Known),
            CheckResult::Mismatch => changed.push(format!(
                "{} {} ({}:{})",
                key_type(&e.key).unwrap_or_else(|| "key".into()),
                fingerprint(&e.key),
                path.display(),
                e.line_no
            )),
            CheckResult::NotFound | CheckResult::Failure => {}
        }
    }
    Ok(if changed.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Changed(changed)
    })
}

/// Host key algorithms to offer, those already recorded for the host first, so that a server
/// with several host keys shows the one we can check.
pub(crate) fn preferred_algorithms(
    session: &Session,
    path: &Path,
    host_name: &str,
) -> Result<String, TransportError> {
    const ALL: [&str; 7] = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-rsa",
    ];
    let mut known: Vec<&str> = Vec::new();
    for e in load(session, path)? {
        // Any key that is not the recorded one tells whether the line names this host.
        let probe = [0u8; 1];
        if !matches!(
            e.hosts.check(host_name, &probe),
            CheckResult::Mismatch | CheckResult::Match
        ) {
            continue;
        }
        let Some(t) = key_type(&e.key) else { continue };
        let algs: &[&str] = match t.as_str() {
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            other => match ALL.iter().find(|a| **a == other) {
                Some(a) => std::slice::from_ref(a),
                None => &[],
            },
        };
        known.extend(
            algs.iter()
                .filter(|a| !known.contains(a))
                .collect::<Vec<_>>(),
        );
    }
    let rest = ALL.iter().filter(|a| !known.contains(a)).copied();
    Ok(known
        .iter()
        .copied()
        .chain(rest)
        .collect::<Vec<_>>()
        .join(","))
}

/// Records `host_name key` at the end of the known_hosts file, creating it (and ~/.ssh) if needed.
pub(crate) fn append(path: &Path, host_name: &str, key_blob: &[u8]) -> Result<(), TransportError> {
    let err = |source| TransportError::KnownHostsIo {
        what: "appending to",
        path: path.to_path_buf(),
        source,
    };
    let key_type = key_type(key_blob).ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the server's key blob has no type",
        ))
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(err)?;
    }
    let needs_newline = match std::fs::read(path) {
        Ok(bytes) => bytes.last().is_some_and(|b| *b != b'\n'),
        Err(_) => false,
    };
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    let line = format!(
        "{}{} {} {}\n",
        if needs_newline { "\n" } else { "" },
        host_name,
        key_type,
        STANDARD.encode(key_blob)
    );
    f.write_all(line.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_has_openssh_format() {
        // Blob of a known ed25519 key and the fingerprint `ssh-keygen -lf` printed for it.
        let blob = STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
            .unwrap();
        assert_eq!(key_type(&blob).as_deref(), Some("ssh-ed25519"));
        let fp = fingerprint(&blob);
        assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
        assert_eq!(fp.len(), "SHA256:".len() + 43);
    }

    #[test]
    fn key_type_rejects_garbage() {
        assert_eq!(key_type(&[0, 0, 0, 9, b'a']), None);
        assert_eq!(key_type(&[]), None);
    }
}
