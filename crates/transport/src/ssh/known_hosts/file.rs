//! The known_hosts format (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT") and the decision about one
//! server key. Pure: text and key blobs in, a [`Verdict`] out.
//!
//! A line is `[@marker] hosts keytype base64-key [comment]`. Lines that cannot be read (an
//! unknown marker, a key whose blob does not decode or names another type) are skipped, as
//! OpenSSH skips them: they never vouch for a key, and they never block one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::pattern::host_field_matches;

/// What a line says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// A host key.
    Plain,
    /// `@cert-authority`: a CA whose host certificates are trusted.
    CertAuthority,
    /// `@revoked`: the key must never be accepted.
    Revoked,
}

/// One readable known_hosts line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// 1-based line number in the file.
    pub line_no: usize,
    pub marker: Marker,
    /// The host field as written (patterns or one hashed name).
    pub hosts: String,
    /// The key type field, e.g. `ssh-ed25519`.
    pub key_type: String,
    /// The decoded key blob.
    pub key: Vec<u8>,
}

impl Line {
    pub(crate) fn names(&self, host: &str) -> bool {
        host_field_matches(&self.hosts, host)
    }
}

/// The readable lines of a known_hosts file.
pub(crate) fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(i + 1, l))
        .collect()
}

fn parse_line(line_no: usize, line: &str) -> Option<Line> {
    let mut fields = line.split_ascii_whitespace();
    let mut first = fields.next()?;
    if first.starts_with('#') {
        return None;
    }
    let marker = match first {
        "@cert-authority" => Marker::CertAuthority,
        "@revoked" => Marker::Revoked,
        m if m.starts_with('@') => return None,
        _ => Marker::Plain,
    };
    if marker != Marker::Plain {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let key = STANDARD.decode(fields.next()?).ok()?;
    // The type inside the blob must be the one written: otherwise the line is corrupt.
    if super::key_type(&key).as_deref() != Some(key_type) {
        return None;
    }
    Some(Line {
        line_no,
        marker,
        hosts: first.to_string(),
        key_type: key_type.to_string(),
        key,
    })
}

/// What the file says about the key a server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A plain line for the host has this key.
    Known,
    /// The key is on a `@revoked` line (at this line number).
    Revoked(usize),
    /// Plain lines for the host hold other keys (these lines); the key is not trusted.
    Changed(Vec<Line>),
    /// Only `@cert-authority` lines name the host (the first one's number): pideploy does not
    /// check host certificates, so it cannot decide.
    CertAuthority(usize),
    /// No line names the host at all: the only case where `--accept-new` may record the key.
    Unknown,
}

/// Decides as OpenSSH does, stricter in one place: a `@revoked` key is refused whichever host
/// its line names ("must not ever be accepted"); OpenSSH consults only lines naming the host.
/// Then a plain line with the key makes it known; a plain line for the host with any other key
/// (of any type) makes it changed; a host named only by CA lines is refused; else unknown.
pub(crate) fn decide(lines: &[Line], host: &str, key: &[u8]) -> Verdict {
    if let Some(l) = lines
        .iter()
        .find(|l| l.marker == Marker::Revoked && l.key == key)
    {
        return Verdict::Revoked(l.line_no);
    }
    let mut others = Vec::new();
    let mut ca = None;
    for l in lines.iter().filter(|l| l.marker != Marker::Revoked) {
        if !l.names(host) {
            continue;
        }
        match l.marker {
            Marker::Plain if l.key == key => return Verdict::Known,
            Marker::Plain => others.push(l.clone()),
            _ => {
                ca.get_or_insert(l.line_no);
            }
        }
    }
    match (others.is_empty(), ca) {
        (false, _) => Verdict::Changed(others),
        (true, Some(n)) => Verdict::CertAuthority(n),
        (true, None) => Verdict::Unknown,
    }
}

/// Key types recorded for `host` on plain lines, in file order, each once.
pub(crate) fn known_types<'a>(lines: &'a [Line], host: &str) -> Vec<&'a str> {
    let mut types: Vec<&str> = Vec::new();
    for l in lines {
        if l.marker == Marker::Plain && !types.contains(&l.key_type.as_str()) && l.names(host) {
            types.push(&l.key_type);
        }
    }
    types
}

/// The line `--accept-new` appends, or why `host` cannot be written as a plain name (a
/// character that would read back as a pattern, a separator or a marker).
pub(crate) fn entry_line(host: &str, key_type: &str, key: &[u8]) -> Result<String, String> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || ",*?!#|".contains(c);
    if host.is_empty() || host.starts_with('@') || host.contains(bad) {
        return Err(format!(
            "the host name {host:?} cannot be written to known_hosts as a plain name"
        ));
    }
    Ok(format!(
        "{} {key_type} {}\n",
        host.to_ascii_lowercase(),
        STANDARD.encode(key)
    ))
}
