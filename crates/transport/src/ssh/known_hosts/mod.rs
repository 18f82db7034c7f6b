//! Host key checking against an OpenSSH known_hosts file.
//!
//! Read and decided here (`file`, `pattern`), not by libssh2: its `KnownHosts` ignores
//! `@revoked` and `@cert-authority` lines, and reports a mismatch only per line, which hid a
//! `[host]:*` line with another key from `--accept-new`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

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

mod file;
mod pattern;
#[cfg(test)]
mod tests;

pub(crate) use file::Verdict;

fn read(path: &Path) -> Result<String, TransportError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(TransportError::KnownHostsIo {
            what: "reading",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Looks `host_name` (`host` or `[host]:port`) up with `key_blob`.
pub(crate) fn check(
    path: &Path,
    host_name: &str,
    key_blob: &[u8],
) -> Result<Verdict, TransportError> {
    Ok(file::decide(
        &file::parse(&read(path)?),
        host_name,
        key_blob,
    ))
}

/// `type SHA256:… (file:line)` of each line in a [`Verdict::Changed`].
pub(crate) fn describe_lines(path: &Path, v: &Verdict) -> String {
    let Verdict::Changed(lines) = v else {
        return String::new();
    };
    lines
        .iter()
        .map(|l| {
            format!(
                "{} {} ({}:{})",
                l.key_type,
                fingerprint(&l.key),
                path.display(),
                l.line_no
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Host key algorithms to offer, those already recorded for the host first, so that a server
/// with several host keys shows the one we can check.
pub(crate) fn preferred_algorithms(path: &Path, host_name: &str) -> Result<String, TransportError> {
    const ALL: [&str; 7] = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-rsa",
    ];
    let lines = file::parse(&read(path)?);
    let mut known: Vec<&str> = Vec::new();
    for t in file::known_types(&lines, host_name) {
        let algs: &[&str] = match t {
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

/// For `--accept-new`: records `host_name key` at the end of the file (creating it, and
/// ~/.ssh, private) unless the file, read again under an exclusive lock, now says something
/// about the host; returns what was decided. Appending under `flock` means a concurrent
/// pideploy or ssh neither loses its line nor gets ours interleaved with it.
pub(crate) fn record(
    path: &Path,
    host_name: &str,
    key_blob: &[u8],
) -> Result<Verdict, TransportError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TransportError::KnownHostsIo {
        what: "appending to",
        path: path.to_path_buf(),
        source,
    };
    let invalid = |msg: String| err(std::io::Error::new(std::io::ErrorKind::InvalidData, msg));
    let key_type =
        key_type(key_blob).ok_or_else(|| invalid("the server's key blob has no type".into()))?;
    let line = file::entry_line(host_name, &key_type, key_blob).map_err(invalid)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(err)?;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).map_err(|e| err(e.into()))?;
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(err)?;
    let v = file::decide(&file::parse(&text), host_name, key_blob);
    if v != Verdict::Unknown {
        return Ok(v);
    }
    let sep = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    f.write_all(format!("{sep}{line}").as_bytes())
        .map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(Verdict::Known)
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
