//! Secret files as the config names them (`[[secrets]] source`, a Wi-Fi `psk_file`): plaintext,
//! or encrypted with age (binary or ASCII-armored, as `age`/`rage` write them) and decrypted here,
//! in memory, with the deploying user's identities; the plaintext is never written to disk.
//!
//! Identities: the files named in `PIDEPLOY_AGE_IDENTITY` (separated by `:`), else whichever of
//! `~/.config/pideploy/age-identity.txt` and `~/.ssh/id_ed25519` exist. Each is an age identity
//! file (`AGE-SECRET-KEY-1…` lines, X25519) or an OpenSSH private key (for `ssh-ed25519`
//! recipients; a passphrase-protected one cannot be used here, say so, and point at age's own).

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// The environment variable naming identity files.
pub const IDENTITY_ENV: &str = "PIDEPLOY_AGE_IDENTITY";

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An identity file is not one age can use.
    #[error("age identity {path}: {reason}")]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is age-encrypted and could not be decrypted.
    #[error("{path}: cannot decrypt it ({reason}); identities tried: {tried}. Name the identity file in {IDENTITY_ENV} (age identity or unencrypted ssh-ed25519 key)")]
    Decrypt {
        /// The encrypted file.
        path: PathBuf,
        /// What age said.
        reason: String,
        /// The identity files used.
        tried: String,
    },
}

/// Whether `bytes` are an age file (binary header or ASCII armor).
pub fn is_age(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/v1\n")
        || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// The identity files to try: `PIDEPLOY_AGE_IDENTITY`, else the default ones that exist.
pub fn identity_files() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os(IDENTITY_ENV).filter(|v| !v.is_empty()) {
        return std::env::split_paths(&v).collect();
    }
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    [
        home.join(".config/pideploy/age-identity.txt"),
        home.join(".ssh/id_ed25519"),
    ]
    .into_iter()
    .filter(|p| p.is_file())
    .collect()
}

/// Reads a secret file; an age file is decrypted with [`identity_files`].
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SealedError> {
    let bytes = std::fs::read(path).map_err(|source| SealedError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !is_age(&bytes) {
        return Ok(bytes);
    }
    decrypt(path, &bytes, &identity_files())
}

/// Decrypts the age file `bytes` (read from `path`) with the identities in `files`.
pub fn decrypt(path: &Path, bytes: &[u8], files: &[PathBuf]) -> Result<Vec<u8>, SealedError> {
    let tried = if files.is_empty() {
        "none".to_string()
    } else {
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fail = |reason: String| SealedError::Decrypt {
        path: path.to_path_buf(),
        reason,
        tried: tried.clone(),
    };
    let mut identities: Vec<Box<dyn age::Identity>> = Vec::new();
    for f in files {
        identities.extend(load_identities(f)?);
    }
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(bytes))
        .map_err(|e| fail(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

/// The identities in one file: an OpenSSH private key, or an age identity file.
fn load_identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, SealedError> {
    let bytes = std::fs::read(path).map_err(|source| SealedError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| SealedError::Identity {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----") {
        let id = age::ssh::Identity::from_buffer(
            BufReader::new(&bytes[..]),
            Some(path.display().to_string()),
        )
        .map_err(|e| bad(e.to_string()))?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(id)]),
            age::ssh::Identity::Encrypted(_) => Err(bad(
                "the SSH key is passphrase-protected; give an age identity (age-keygen) instead"
                    .into(),
            )),
            age::ssh::Identity::Unsupported(_) => Err(bad(
                "this kind of SSH key cannot decrypt age files (ssh-ed25519 and ssh-rsa can)"
                    .into(),
            )),
        };
    }
    age::IdentityFile::from_buffer(BufReader::new(&bytes[..]))
        .map_err(|e| bad(e.to_string()))?
        .into_identities()
        .map_err(|e| bad(e.to_string()))
}
