//! Host name matching as OpenSSH does it for known_hosts: `*`/`?` wildcards, `!` negation,
//! comma lists, and hashed names (`|1|salt|hash`, HMAC-SHA1 of the name keyed by the salt).
//!
//! Pure: names and patterns in, yes/no out.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Whether the host field of a known_hosts line (`pattern,pattern,…` or one hashed name)
/// names `host` (already in known_hosts form: `name` or `[name]:port`, any case).
pub(crate) fn host_field_matches(field: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    if field.starts_with('|') {
        return hashed_matches(field, &host);
    }
    list_matches(field, &host)
}

/// A comma list: a match of any `!pattern` rules the line out even if another pattern matched.
fn list_matches(list: &str, host: &str) -> bool {
    let mut positive = false;
    for pat in list.split(',') {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if wildcard(host.as_bytes(), pat.to_ascii_lowercase().as_bytes()) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// `*` matches any run of bytes, `?` any one byte, everything else itself. Greedy with one
/// backtrack point, so the time is at most |s|·|p| whatever the input.
fn wildcard(s: &[u8], p: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`; anything else (another version, a salt
/// that is not 20 bytes, bad base64) names no host.
fn hashed_matches(field: &str, host: &str) -> bool {
    let mut parts = field.split('|');
    let (Some(""), Some("1"), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    if salt.len() != 20 {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(host.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// The hashed form of `host` with `salt`, as `ssh-keygen -H` writes it (for tests).
#[cfg(test)]
pub(crate) fn hash_host(host: &str, salt: &[u8; 20]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
    mac.update(host.as_bytes());
    format!(
        "|1|{}|{}",
        STANDARD.encode(salt),
        STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
pub(crate) fn wildcard_for_tests(s: &str, p: &str) -> bool {
    wildcard(s.as_bytes(), p.as_bytes())
}
