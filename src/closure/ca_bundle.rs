//! `/etc/ssl/certs` as Debian's ca-certificates leaves it after a fresh install, computed at build
//! time: the bundle `ca-certificates.crt`, a `<name>.pem` link per trusted certificate, and the
//! OpenSSL subject-hash links `<hash>.<n>` that `openssl rehash` makes.
//!
//! What runs on a real install (ca-certificates 20230311 to 20250419, bookworm): the postinst
//! writes or merges `/etc/ca-certificates.conf` (debconf's default `trust_new_crts=yes`: every
//! certificate not deselected with a `!name` line is trusted), then runs `update-ca-certificates`,
//! which appends the trusted certificates to the bundle in the conf's order, links each as
//! `<name>.pem`, and runs `openssl rehash` over the directory.
//!
//! Not reproduced: `/usr/local/share/ca-certificates` (empty on a fresh image), the hooks in
//! `/etc/ca-certificates/update.d` (run with `--hooksdir ""` at install; the deferred trigger
//! finds nothing changed), other files in `/etc/ssl/certs` (e.g. ssl-cert's snakeoil certificate,
//! which `openssl rehash` would also hash), CRLs, and the conf merge's regular-expression quirks
//! (names are compared literally here).

use sha1::{Digest, Sha1};
use std::collections::BTreeMap;

/// Where the certificates live on the target.
pub const CERTS_DIR: &str = "/usr/share/ca-certificates";
/// `openssl rehash` gives up on a hash after this many different certificates.
const MAX_COLLISIONS: usize = 256;
/// The largest certificate file parsed (real ones are about 2 KB); bounds work on hostile input.
const MAX_CERT_FILE: usize = 1 << 20;

/// A symbolic link in `/etc/ssl/certs`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CertLink {
    /// The link's file name in `/etc/ssl/certs`.
    pub name: String,
    /// What it points to, as written: `/usr/share/ca-certificates/<path>` for `<name>.pem`,
    /// `<name>.pem` for a hash link.
    pub target: String,
}

/// The contents of `/etc/ssl/certs` that ca-certificates makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaBundle {
    /// `/etc/ssl/certs/ca-certificates.crt`, mode 0644.
    pub bundle: Vec<u8>,
    /// Every link (the `.pem` ones and the hash ones), sorted by name in byte order.
    pub links: Vec<CertLink>,
    /// Names the conf trusts that are not among the certificates (the postinst quietly turns
    /// them into `!name` lines).
    pub missing: Vec<String>,
    /// Trusted certificates that got no hash link, with why (openssl rehash would skip them).
    pub unhashed: Vec<(String, String)>,
}

/// A certificate path relative to [`CERTS_DIR`] that stays inside it.
fn check_relative(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path.contains('\n')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(format!(
            "certificate path {path:?} is not a plain path under {CERTS_DIR}; fix the package listing"
        ));
    }
    Ok(())
}

/// Which certificates are trusted, in bundle order: what the postinst's merge writes to
/// `/etc/ca-certificates.conf` (with `trust_new_crts=yes`), read back the way
/// update-ca-certificates reads it. Returns (trusted names, conf names with no certificate).
fn trusted_order(conf: Option<&str>, certs: &BTreeMap<&str, &[u8]>) -> (Vec<String>, Vec<String>) {
    // The choices debconf offers: every `*.crt`, in `sort` order (C locale: bytes).
    let available: Vec<&str> = certs
        .keys()
        .copied()
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.ends_with(".crt")))
        .collect();
    let conf = conf.unwrap_or("");
    // The config script reads the conf with sed: every line, `!name` deselects name.
    let disabled: Vec<&str> = conf.lines().filter_map(|l| l.strip_prefix('!')).collect();
    let enabled: Vec<&str> = available
        .iter()
        .copied()
        .filter(|p| !disabled.contains(p))
        .collect();

    // The postinst's `while read line`: only newline-terminated lines, trimmed.
    let mut merged: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for raw in conf.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\n');
        if line.starts_with('#') {
            merged.push(line.to_string());
            continue;
        }
        let ca = line.strip_prefix('!').unwrap_or(line);
        let keep = enabled.contains(&ca)
            || (!available.contains(&ca)
                && !line.starts_with('!')
                && !ca.is_empty()
                && certs.contains_key(ca));
        if !keep && !line.starts_with('!') && !ca.is_empty() && !certs.contains_key(ca) {
            missing.push(ca.to_string());
        }
        merged.push(if keep {
            ca.to_string()
        } else {
            format!("!{ca}")
        });
    }
    // Newly enabled certificates go at the end (grep "^$ca": a prefix test).
    for ca in &enabled {
        if !merged.iter().any(|l| l.starts_with(ca)) {
            merged.push(ca.to_string());
        }
    }

    // update-ca-certificates: skip blank, `#` and `!` lines; add the rest in order.
    // (The merge only keeps names that exist, so none is "not found" here.)
    let trusted = merged
        .into_iter()
        .filter(|l| !l.starts_with('#') && !l.starts_with('!') && certs.contains_key(l.as_str()))
        .collect();
    (trusted, missing)
}

/// update-ca-certificates' link name: the file name without `.crt`, with spaces and commas made
/// `_` and parentheses `=`, plus `.pem`.
fn pem_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = match base.strip_suffix(".crt") {
        Some(s) if !s.is_empty() => s,
        _ => base,
    };
    let mapped: String = stem
        .chars()
        .map(|c| match c {
            ' ' | ',' => '_',
            '(' | ')' => '=',
            c => c,
        })
        .collect();
    format!("{mapped}.pem")
}

/// Computes `/etc/ssl/certs` for the certificates in `certs` ((path relative to
/// `/usr/share/ca-certificates`, file contents), e.g. `mozilla/ISRG_Root_X1.crt`) and the
/// administrator's `/etc/ca-certificates.conf` (`None`: there is none, every certificate is
/// trusted). Errors only on a path that is not a plain relative path, or on duplicate paths.
pub fn bundle(conf: Option<&str>, certs: &[(String, Vec<u8>)]) -> Result<CaBundle, String> {
    let mut by_path: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (path, bytes) in certs {
        check_relative(path)?;
        if by_path.insert(path, bytes).is_some() {
            return Err(format!(
                "certificate path {path:?} is given twice; pass each file once"
            ));
        }
    }
    let (trusted, missing) = trusted_order(conf, &by_path);

    let mut out = CaBundle {
        missing,
        ..CaBundle::default()
    };
    // `ln -sf`: a later certificate with the same link name takes the link over.
    let mut pem_links: BTreeMap<String, &str> = BTreeMap::new();
    for path in &trusted {
        let bytes = by_path.get(path.as_str()).copied().unwrap_or_default();
        out.bundle.extend_from_slice(bytes);
        // `sed -e '$a\'`: a missing final newline is added.
        if bytes.last().is_some_and(|&b| b != b'\n') {
            out.bundle.push(b'\n');
        }
        pem_links.insert(pem_name(path), path);
    }

    // `openssl rehash`: files in name order; per subject hash, links .0, .1, … in that order; a
    // certificate already linked under that hash (same SHA-1 fingerprint) is skipped.
    let mut buckets: BTreeMap<u32, Vec<([u8; 20], String)>> = BTreeMap::new();
    for (name, path) in &pem_links {
        let bytes = by_path.get(path).copied().unwrap_or_default();
        let der = match single_pem_certificate(bytes) {
            Ok(der) => der,
            Err(why) => {
                out.unhashed.push((path.to_string(), why));
                continue;
            }
        };
        let hash = match subject_hash(&der) {
            Ok(h) => h,
            Err(why) => {
                out.unhashed.push((path.to_string(), why));
                continue;
            }
        };
        let fingerprint: [u8; 20] = Sha1::digest(&der).into();
        let bucket = buckets.entry(hash).or_default();
        if bucket.iter().any(|(f, _)| *f == fingerprint) {
            out.unhashed
                .push((path.to_string(), "duplicate certificate".into()));
            continue;
        }
        if bucket.len() >= MAX_COLLISIONS {
            out.unhashed.push((
                path.to_string(),
                "too many certificates with this subject hash".into(),
            ));
            continue;
        }
        bucket.push((fingerprint, name.clone()));
    }

    for (name, path) in pem_links {
        out.links.push(CertLink {
            name,
            target: format!("{CERTS_DIR}/{path}"),
        });
    }
    for (hash, entries) in buckets {
        for (n, (_, target)) in entries.into_iter().enumerate() {
            out.links.push(CertLink {
                name: format!("{hash:08x}.{n}"),
                target,
            });
        }
    }
    out.links.sort();
    Ok(out)
}

/// The DER of the one certificate in a PEM file, as `openssl rehash` requires (a file with more
/// or fewer certificates or CRLs gets no hash link). Text outside the markers is ignored.
pub fn single_pem_certificate(text: &[u8]) -> Result<Vec<u8>, String> {
    if text.len() > MAX_CERT_FILE {
        return Err("the file is larger than 1 MiB".into());
    }
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut objects = 0usize;
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|l| l.strip_suffix(b"-----"))
        else {
            continue;
        };
        let is_cert = matches!(
            label,
            b"CERTIFICATE" | b"X509 CERTIFICATE" | b"TRUSTED CERTIFICATE"
        );
        let end: Vec<u8> = [b"-----END ".as_slice(), label, b"-----"].concat();
        let mut body: Vec<&[u8]> = Vec::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end.as_slice() {
                closed = true;
                break;
            }
            body.push(l);
        }
        if !closed {
            return Err("a PEM block has no END line".into());
        }
        if is_cert || label == b"X509 CRL" {
            objects += 1;
        }
        if is_cert {
            // RFC 1421 headers (`Proc-Type: …`) end at the first blank line.
            if body.first().is_some_and(|l| l.contains(&b':')) {
                let blank = body
                    .iter()
                    .position(|l| l.trim_ascii().is_empty())
                    .unwrap_or(body.len());
                body.drain(..blank);
            }
            found.push(base64_decode(&body.concat())?);
        }
    }
    match (objects, found.pop()) {
        (1, Some(der)) => Ok(der),
        _ => Err(format!(
            "the file holds {objects} certificates or CRLs, not exactly one certificate"
        )),
    }
}

/// Standard base64 with padding; whitespace is skipped.
fn base64_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let chars: Vec<u8> = text
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if chars.len() % 4 != 0 {
        return Err("the base64 text is not a whole number of 4-character groups".into());
    }
    let mut out = Vec::with_capacity(chars.len() / 4 * 3);
    let groups = chars.len() / 4;
    for (i, group) in chars.chunks(4).enumerate() {
        let pad = group.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != groups) {
            return Err("misplaced base64 padding".into());
        }
        let mut n = 0u32;
        for &c in &group[..4 - pad] {
            n = (n << 6) | value(c).ok_or("a character that is not base64")?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Ok(out)
}

/// One DER value: its tag byte, the whole encoding, and the contents.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

/// Reads the DER value at the start of `b`; returns it and the bytes after it.
fn read_tlv(b: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let truncated = || "the certificate's DER is truncated".to_string();
    let &tag = b.first().ok_or_else(truncated)?;
    if tag & 0x1f == 0x1f {
        return Err("a multi-byte DER tag, which certificates do not use".into());
    }
    let &first = b.get(1).ok_or_else(truncated)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err("an indefinite or oversized DER length".into());
        }
        let bytes = b.get(2..2 + n).ok_or_else(truncated)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        (len, 2 + n)
    };
    let end = header.checked_add(len).ok_or_else(truncated)?;
    let whole = b.get(..end).ok_or_else(truncated)?;
    Ok((
        Tlv {
            tag,
            whole,
            content: &whole[header..],
        },
        &b[end..],
    ))
}

/// Appends a DER tag and length.
fn put_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// The subject Name of a DER certificate (the whole `SEQUENCE`).
fn subject_of(cert: &[u8]) -> Result<&[u8], String> {
    let (certificate, _) = read_tlv(cert)?;
    let (tbs, _) = read_tlv(certificate.content)?;
    if certificate.tag != 0x30 || tbs.tag != 0x30 {
        return Err("not an X.509 certificate".into());
    }
    let mut rest = tbs.content;
    let (first, after) = read_tlv(rest)?;
    if first.tag == 0xa0 {
        // [0] version
        rest = after;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = read_tlv(rest)?.1;
    }
    let (subject, _) = read_tlv(rest)?;
    if subject.tag != 0x30 {
        return Err("the certificate's subject is not a Name".into());
    }
    Ok(subject.whole)
}

/// OpenSSL's `X509_NAME_hash` (the "new" hash `openssl x509 -hash` prints): SHA-1 over the
/// name's canonical encoding, the first four bytes read little-endian.
pub fn subject_hash(cert_der: &[u8]) -> Result<u32, String> {
    let canon = canonical_name(subject_of(cert_der)?)?;
    let md = Sha1::digest(&canon);
    Ok(u32::from_le_bytes([md[0], md[1], md[2], md[3]]))
}

/// OpenSSL's canonical name encoding (`x509_name_canon`): each RDN's `SET` in turn (no outer
/// `SEQUENCE`), each string value made a lower-cased, space-collapsed UTF8String, the members of
/// a multi-valued RDN in DER `SET OF` order.
fn canonical_name(name: &[u8]) -> Result<Vec<u8>, String> {
    let (seq, _) = read_tlv(name)?;
    let mut out = Vec::new();
    let mut rdns = seq.content;
    while !rdns.is_empty() {
        let (rdn, next) = read_tlv(rdns)?;
        rdns = next;
        if rdn.tag != 0x31 {
            return Err("a name component is not a SET".into());
        }
        let mut members: Vec<Vec<u8>> = Vec::new();
        let mut atvs = rdn.content;
        while !atvs.is_empty() {
            let (atv, next) = read_tlv(atvs)?;
            atvs = next;
            let (oid, rest) = read_tlv(atv.content)?;
            let (value, _) = read_tlv(rest)?;
            if atv.tag != 0x30 || oid.tag != 0x06 {
                return Err("a name attribute is not an (OID, value) SEQUENCE".into());
            }
            let mut body = oid.whole.to_vec();
            match canonical_string(value.tag, value.content)? {
                Some(s) => {
                    put_header(&mut body, 0x0c, s.len());
                    body.extend_from_slice(&s);
                }
                None => body.extend_from_slice(value.whole),
            }
            let mut member = Vec::new();
            put_header(&mut member, 0x30, body.len());
            member.extend_from_slice(&body);
            members.push(member);
        }
        if members.is_empty() {
            continue;
        }
        // DER SET OF: by encoding, byte-wise, a shorter prefix first.
        members.sort();
        let len = members.iter().map(Vec::len).sum();
        put_header(&mut out, 0x31, len);
        for m in members {
            out.extend_from_slice(&m);
        }
    }
    Ok(out)
}

/// A string value in canonical form, `None` for types OpenSSL copies unchanged.
fn canonical_string(tag: u8, content: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let text: String = match tag {
        // UTF8String
        0x0c => String::from_utf8(content.to_vec())
            .map_err(|_| "a UTF8String in the subject is not UTF-8")?,
        // PrintableString, T61String, IA5String, VisibleString: one byte per character.
        0x13 | 0x14 | 0x16 | 0x1a => content.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UCS-2 big-endian.
        0x1e => {
            if content.len() % 2 != 0 {
                return Err("a BMPString of odd length in the subject".into());
            }
            content
                .chunks(2)
                .map(|c| char::from_u32(u32::from(u16::from_be_bytes([c[0], c[1]]))))
                .collect::<Option<String>>()
                .ok_or("a BMPString in the subject holds a surrogate")?
        }
        // UniversalString: UCS-4 big-endian.
        0x1c => {
            if content.len() % 4 != 0 {
                return Err("a UniversalString of bad length in the subject".into());
            }
            content
                .chunks(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()
                .ok_or("a UniversalString in the subject holds an invalid character")?
        }
        _ => return Ok(None),
    };
    // ASCII white space only (ossl_isspace); other bytes, UTF-8 continuation ones included, stay.
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|&b| !space(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !space(b))
        .map_or(start, |e| e + 1);
    let mut out = Vec::with_capacity(end - start);
    let mut i = start;
    while i < end {
        let b = bytes[i];
        if space(b) {
            out.push(b' ');
            while i < end && space(bytes[i]) {
                i += 1;
            }
        } else {
            out.push(b.to_ascii_lowercase());
            i += 1;
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The fixtures (see tests/fixtures/ca/README) and the hash `openssl x509 -hash` prints.
    const FIXTURES: [(&str, &str); 6] = [
        ("ISRG_Root_X1.crt", "4042bcee"),
        ("Entrust.net_Premium_2048_Secure_Server_CA.crt", "aee5f10d"),
        ("Microsec_e-Szigno_Root_CA_2009.crt", "8160b96c"),
        ("NetLock_Arany_Class_Gold.crt", "988a38cb"),
        ("same-subject-1.crt", "c9172add"),
        ("same-subject-2.crt", "c9172add"),
    ];

    fn fixture(name: &str) -> Vec<u8> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ca");
        std::fs::read(dir.join(name)).unwrap()
    }

    #[test]
    fn subject_hashes_match_openssl() {
        for (name, want) in FIXTURES {
            let der = single_pem_certificate(&fixture(name)).unwrap();
            assert_eq!(
                format!("{:08x}", subject_hash(&der).unwrap()),
                want,
                "{name}"
            );
        }
    }

    /// The same, against the host's openssl at test time.
    #[test]
    fn subject_hashes_match_the_host_openssl() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ca");
        for (name, _) in FIXTURES {
            let Ok(out) = std::process::Command::new("openssl")
                .args(["x509", "-hash", "-noout", "-in"])
                .arg(dir.join(name))
                .output()
            else {
                eprintln!("skipped: no openssl on this host");
                return;
            };
            let theirs = String::from_utf8(out.stdout).unwrap();
            let der = single_pem_certificate(&fixture(name)).unwrap();
            assert_eq!(
                format!("{:08x}", subject_hash(&der).unwrap()),
                theirs.trim(),
                "{name}"
            );
        }
    }

    #[test]
    fn canonical_form_lowercases_and_collapses_spaces() {
        assert_eq!(
            canonical_string(0x13, b"  Foo   BAR\t baz ").unwrap(),
            Some(b"foo bar baz".to_vec())
        );
        // T61String bytes are Latin-1; non-ASCII is kept, not lower-cased.
        assert_eq!(
            canonical_string(0x14, b"\xc9T\xc9").unwrap(),
            Some("\u{c9}t\u{c9}".as_bytes().to_vec())
        );
        assert_eq!(
            canonical_string(0x1e, &[0, b'A', 0, b' ', 0, b' ', 0, b'B']).unwrap(),
            Some(b"a b".to_vec())
        );
        assert_eq!(
            canonical_string(0x12, b"123").unwrap(),
            None,
            "NumericString is copied"
        );
        assert!(canonical_string(0x0c, b"\xff").is_err());
    }

    fn certs(names: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        names
            .iter()
            .map(|(path, file)| (path.to_string(), fixture(file)))
            .collect()
    }

    #[test]
    fn without_a_conf_every_certificate_is_trusted_in_byte_order() {
        let certs = certs(&[
            ("mozilla/same b.crt", "same-subject-2.crt"),
            ("mozilla/ISRG_Root_X1.crt", "ISRG_Root_X1.crt"),
            ("mozilla/same (a),x.crt", "same-subject-1.crt"),
            ("mozilla/copy_of_ISRG.crt", "ISRG_Root_X1.crt"),
            (
                "mozilla/not-a-crt.pem",
                "Microsec_e-Szigno_Root_CA_2009.crt",
            ),
        ]);
        let b = bundle(None, &certs).unwrap();
        let mut want = Vec::new();
        for path in [
            "mozilla/ISRG_Root_X1.crt",
            "mozilla/copy_of_ISRG.crt",
            "mozilla/same (a),x.crt",
            "mozilla/same b.crt",
        ] {
            want.extend_from_slice(&certs.iter().find(|c| c.0 == path).unwrap().1);
        }
        assert_eq!(b.bundle, want);
        let links: Vec<(&str, &str)> = b
            .links
            .iter()
            .map(|l| (l.name.as_str(), l.target.as_str()))
            .collect();
        assert_eq!(
            links,
            vec![
                // The copy sorts first ("I" < "c"), so it is the duplicate that gets no link.
                ("4042bcee.0", "ISRG_Root_X1.pem"),
                (
                    "ISRG_Root_X1.pem",
                    "/usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt"
                ),
                ("c9172add.0", "same_=a=_x.pem"),
                ("c9172add.1", "same_b.pem"),
                (
                    "copy_of_ISRG.pem",
                    "/usr/share/ca-certificates/mozilla/copy_of_ISRG.crt"
                ),
                (
                    "same_=a=_x.pem",
                    "/usr/share/ca-certificates/mozilla/same (a),x.crt"
                ),
                (
                    "same_b.pem",
                    "/usr/share/ca-certificates/mozilla/same b.crt"
                ),
            ]
        );
        assert_eq!(
            b.unhashed,
            vec![(
                "mozilla/copy_of_ISRG.crt".to_string(),
                "duplicate certificate".to_string()
            )]
        );
        assert!(b.missing.is_empty());
    }

    #[test]
    fn a_conf_orders_deselects_and_warns() {
        let certs = certs(&[
            ("mozilla/A.crt", "ISRG_Root_X1.crt"),
            (
                "mozilla/B.crt",
                "Entrust.net_Premium_2048_Secure_Server_CA.crt",
            ),
            ("mozilla/C.crt", "Microsec_e-Szigno_Root_CA_2009.crt"),
            ("mozilla/D.crt", "NetLock_Arany_Class_Gold.crt"),
            ("local/E.pem", "same-subject-1.crt"),
        ]);
        // C before B as written; D deselected; A not mentioned (new: trusted, appended);
        // E exists though it is not a .crt; gone.crt does not exist; the last line has no
        // newline, so the postinst's `read` never sees it.
        let conf = "# comment\n  mozilla/C.crt  \n!mozilla/D.crt\nmozilla/B.crt\n\nlocal/E.pem\nmozilla/gone.crt\nmozilla/D.crt";
        let b = bundle(Some(conf), &certs).unwrap();
        let order: Vec<u8> = [
            "mozilla/C.crt",
            "mozilla/B.crt",
            "local/E.pem",
            "mozilla/A.crt",
        ]
        .iter()
        .flat_map(|p| certs.iter().find(|c| c.0 == *p).unwrap().1.clone())
        .collect();
        assert_eq!(b.bundle, order);
        assert_eq!(b.missing, vec!["mozilla/gone.crt".to_string()]);
        let pems: Vec<&str> = b
            .links
            .iter()
            .filter(|l| l.name.ends_with(".pem"))
            .map(|l| l.name.as_str())
            .collect();
        // basename strips only `.crt`: `E.pem` becomes `E.pem.pem`, as the script names it.
        assert_eq!(pems, vec!["A.pem", "B.pem", "C.pem", "E.pem.pem"]);
    }

    #[test]
    fn hostile_input_is_refused_or_skipped() {
        let one = fixture("ISRG_Root_X1.crt");
        assert!(bundle(None, &[("../etc/x.crt".into(), one.clone())]).is_err());
        assert!(bundle(None, &[("/abs.crt".into(), one.clone())]).is_err());
        assert!(bundle(
            None,
            &[("a.crt".into(), one.clone()), ("a.crt".into(), one.clone())]
        )
        .is_err());
        let two = [one.clone(), one.clone()].concat();
        let b = bundle(
            None,
            &[
                ("two.crt".into(), two),
                ("junk.crt".into(), b"junk".to_vec()),
            ],
        )
        .unwrap();
        assert!(
            b.links.iter().all(|l| l.name.ends_with(".pem")),
            "{:?}",
            b.links
        );
        assert_eq!(b.unhashed.len(), 2);
        // No final newline: one is added to the bundle.
        assert_eq!(b.bundle.last(), Some(&b'\n'));
        // Every truncation and byte flip of a certificate's DER is an error or a hash, never a panic.
        let der = single_pem_certificate(&one).unwrap();
        for cut in 0..der.len() {
            let _ = subject_hash(&der[..cut]);
        }
        for at in 0..der.len().min(400) {
            let mut d = der.clone();
            d[at] ^= 0x85;
            let _ = subject_hash(&d);
        }
    }

    /// The real update-ca-certificates and openssl rehash on the host, over the fixtures, with a
    /// conf that the postinst's merge leaves as it is (every certificate named, newline-ended).
    #[test]
    fn matches_the_host_update_ca_certificates() {
        let script = Path::new("/usr/sbin/update-ca-certificates");
        if !script.exists() {
            eprintln!("skipped: no update-ca-certificates on this host");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (share, etc, local) = (
            tmp.path().join("share"),
            tmp.path().join("etc"),
            tmp.path().join("local"),
        );
        std::fs::create_dir_all(share.join("mozilla")).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        let mut certs = Vec::new();
        for (name, _) in FIXTURES {
            let path = format!("mozilla/{name}");
            std::fs::write(share.join(&path), fixture(name)).unwrap();
            certs.push((path, fixture(name)));
        }
        let conf = "mozilla/same-subject-2.crt\nmozilla/ISRG_Root_X1.crt\n!mozilla/Microsec_e-Szigno_Root_CA_2009.crt\nmozilla/same-subject-1.crt\nmozilla/Entrust.net_Premium_2048_Secure_Server_CA.crt\nmozilla/NetLock_Arany_Class_Gold.crt\n";
        std::fs::write(tmp.path().join("conf"), conf).unwrap();
        let out = std::process::Command::new("sh")
            .arg(script)
            .arg("--certsconf")
            .arg(tmp.path().join("conf"))
            .arg("--certsdir")
            .arg(&share)
            .arg("--localcertsdir")
            .arg(&local)
            .arg("--etccertsdir")
            .arg(&etc)
            .args(["--hooksdir", ""])
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");

        let ours = bundle(Some(conf), &certs).unwrap();
        assert_eq!(
            std::fs::read(etc.join("ca-certificates.crt")).unwrap(),
            ours.bundle
        );
        let mut theirs = Vec::new();
        for entry in std::fs::read_dir(&etc).unwrap() {
            let entry = entry.unwrap();
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target
                .to_string_lossy()
                .replace(&*share.to_string_lossy(), CERTS_DIR);
            theirs.push(CertLink {
                name: entry.file_name().to_string_lossy().into_owned(),
                target,
            });
        }
        theirs.sort();
        assert_eq!(theirs, ours.links);
    }
}
