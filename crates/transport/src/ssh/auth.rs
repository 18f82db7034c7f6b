//! Logging in: ssh-agent first, then identity files in order.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ssh2::Session;

use super::options::{Identity, Resolved};
use crate::TransportError;

/// Whether a private key file is protected by a passphrase (OpenSSH or PEM format).
pub(crate) fn key_is_encrypted(contents: &[u8]) -> bool {
    let text = String::from_utf8_lossy(contents);
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect::<Vec<_>>()
            .concat();
        let Ok(raw) = STANDARD.decode(body.trim()) else {
            return false;
        };
        // "openssh-key-v1\0", then the cipher name as an SSH string: "none" when unencrypted.
        let Some(rest) = raw.strip_prefix(b"openssh-key-v1\0") else {
            return false;
        };
        let Some(len) = rest
            .get(..4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
        else {
            return false;
        };
        return rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none");
    }
    text.contains("Proc-Type: 4,ENCRYPTED")
        || text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Authenticates `session` as `r.user`, or says what was tried.
pub(crate) fn authenticate(
    session: &Session,
    r: &Resolved,
    passphrase: Option<&str>,
) -> Result<(), TransportError> {
    let host = r.describe();
    let methods = match session.auth_methods(&r.user) {
        Ok(m) => m.to_string(),
        Err(source) => {
            if session.authenticated() {
                return Ok(());
            }
            return Err(super::protocol_error(
                "asking for login methods",
                &host,
                source,
            ));
        }
    };
    let mut tried: Vec<String> = Vec::new();
    if !methods.split(',').any(|m| m == "publickey") {
        return Err(failed(r, format!("the server offers only: {methods}")));
    }

    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|v| !v.is_empty()) {
        match try_agent(session, &r.user) {
            Ok(true) => return Ok(()),
            Ok(false) => tried.push("ssh-agent: no key accepted".into()),
            Err(e) => tried.push(format!("ssh-agent: {}", e.message())),
        }
    }

    let mut locked: Option<&Path> = None;
    for Identity { path, required } in &r.identities {
        let contents = match std::fs::read(path) {
            Ok(c) => c,
            Err(source) if *required => {
                return Err(TransportError::IdentityFile {
                    path: path.clone(),
                    source,
                })
            }
            Err(_) => continue,
        };
        if key_is_encrypted(&contents) && passphrase.is_none() {
            tried.push(format!(
                "{}: encrypted, no passphrase given",
                path.display()
            ));
            locked.get_or_insert(path);
            continue;
        }
        let public = path.with_file_name(format!(
            "{}.pub",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let public = public.exists().then_some(public);
        match session.userauth_pubkey_file(&r.user, public.as_deref(), path, passphrase) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(format!("{}: not accepted", path.display())),
            Err(e) if super::is_connection_loss(&e) => {
                return Err(super::lost(&host, "logging in", e.message().to_string()));
            }
            Err(e) => tried.push(format!("{}: {}", path.display(), e.message())),
        }
    }
    if let Some(key) = locked {
        return Err(TransportError::PassphraseRequired {
            key: key.to_path_buf(),
            host,
        });
    }
    if tried.is_empty() {
        tried.push("no ssh-agent and no identity file found".into());
    }
    Err(failed(r, tried.join("; ")))
}

fn try_agent(session: &Session, user: &str) -> Result<bool, ssh2::Error> {
    let mut agent = session.agent()?;
    agent.connect()?;
    agent.list_identities()?;
    for id in agent.identities()? {
        if agent.userauth(user, &id).is_ok() && session.authenticated() {
            let _ = agent.disconnect();
            return Ok(true);
        }
    }
    let _ = agent.disconnect();
    Ok(false)
}

fn failed(r: &Resolved, tried: String) -> TransportError {
    TransportError::AuthFailed {
        user: r.user.clone(),
        host: r.describe(),
        hostname: r.hostname.clone(),
        port: r.port,
        tried,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssh_key(cipher: &str) -> String {
        let mut raw = b"openssh-key-v1\0".to_vec();
        raw.extend((cipher.len() as u32).to_be_bytes());
        raw.extend(cipher.as_bytes());
        raw.extend([0u8; 16]);
        format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            STANDARD.encode(raw)
        )
    }

    #[test]
    fn detects_encrypted_keys() {
        assert!(key_is_encrypted(openssh_key("aes256-ctr").as_bytes()));
        assert!(!key_is_encrypted(openssh_key("none").as_bytes()));
        assert!(key_is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        ));
        assert!(key_is_encrypted(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(!key_is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"
        ));
    }
}
