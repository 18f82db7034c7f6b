//! Signed `Release` files: an apt archive's `InRelease` (or `Release` with `Release.gpg`) checked
//! against the archive's OpenPGP keys, its validity period, and the index hashes it vouches for.
//!
//! What counts as verified follows apt (`apt-secure(8)`): at least one signature by a key in the
//! source's keyring verifies over the signed text; signatures by other keys are ignored. On top, a
//! key past its expiry, a signature past its own, a signature made in the future, and a Release
//! past its `Valid-Until` are refused: each lets a mirror replay an old, vulnerable archive.

use std::collections::BTreeMap;
use std::io::Cursor;

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::Signature;
use pgp::types::KeyDetails;
use pideploy_digest::Sha256;

/// Why a Release could not be trusted.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The keyring did not parse.
    #[error("keyring {origin}: {reason}; give an OpenPGP public key file (armored or binary)")]
    Keyring {
        /// Where the keyring came from.
        origin: String,
        /// What went wrong.
        reason: String,
    },
    /// The signed file did not parse as OpenPGP.
    #[error("{origin}: not an OpenPGP-signed file ({reason})")]
    Malformed {
        /// Where the file came from.
        origin: String,
        /// What went wrong.
        reason: String,
    },
    /// A signature by a trusted key does not verify: the text was changed after signing.
    #[error("{origin}: the signature by key {key} does not match the text; the file was altered (or the mirror is broken); refusing it")]
    BadSignature {
        /// Where the file came from.
        origin: String,
        /// The trusted key whose signature failed.
        key: String,
    },
    /// No signature is by a trusted key.
    #[error("{origin}: signed only by keys the board does not trust ({keys}); if the archive changed its key, pass its public key with --keyring SOURCE=FILE")]
    UnknownKey {
        /// Where the file came from.
        origin: String,
        /// The signers' key ids.
        keys: String,
    },
    /// The only good signatures are by keys past their expiry, or expired themselves.
    #[error("{origin}: {what} expired at {at}; an archive signed so may be a replay of an old one: update the board's keyring (or pass --keyring SOURCE=FILE)")]
    Expired {
        /// Where the file came from.
        origin: String,
        /// What expired.
        what: String,
        /// When (UTC).
        at: String,
    },
    /// The Release is past its `Valid-Until`.
    #[error("{origin}: valid until {at} (its Valid-Until), and that has passed: the mirror serves a stale or replayed Release; try again later or another mirror")]
    Stale {
        /// Where the file came from.
        origin: String,
        /// Valid-Until (UTC).
        at: String,
    },
    /// A field of the Release is not what apt writes.
    #[error("{origin}: {reason}")]
    Field {
        /// Where the file came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The index is not in the Release's SHA256 list.
    #[error("{origin} lists no SHA256 for {path}; the archive does not offer this index (check the board's suite, component and architecture)")]
    NotListed {
        /// Where the Release came from.
        origin: String,
        /// The index path relative to the suite.
        path: String,
    },
    /// The index bytes are not what the Release says.
    #[error("{path}: {what} is {got}, but the signed Release says {want}; the index was altered or the mirror is mid-update; try again")]
    Mismatch {
        /// The index path.
        path: String,
        /// `sha256` or `size`.
        what: &'static str,
        /// What the Release says.
        want: String,
        /// What arrived.
        got: String,
    },
}

/// The public keys one apt source is trusted with.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// Reads every public key in `bytes` (ASCII-armored blocks or binary packets).
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Keyring, ReleaseError> {
        let err = |reason: String| ReleaseError::Keyring {
            origin: origin.to_owned(),
            reason,
        };
        let armored = bytes.windows(10).any(|w| w == b"-----BEGIN");
        let mut keys = Vec::new();
        if armored {
            // Several armored blocks may follow one another (a concatenated keyring).
            let text = std::str::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
            for block in text.split("-----END PGP PUBLIC KEY BLOCK-----") {
                let Some(start) = block.find("-----BEGIN PGP PUBLIC KEY BLOCK-----") else {
                    continue;
                };
                let armor = format!("{}-----END PGP PUBLIC KEY BLOCK-----\n", &block[start..]);
                let (key, _) =
                    SignedPublicKey::from_string(&armor).map_err(|e| err(e.to_string()))?;
                keys.push(key);
            }
        } else {
            for key in SignedPublicKey::from_bytes_many(Cursor::new(bytes))
                .map_err(|e| err(e.to_string()))?
            {
                keys.push(key.map_err(|e| err(e.to_string()))?);
            }
        }
        if keys.is_empty() {
            return Err(err("it holds no public key".into()));
        }
        Ok(Keyring { keys })
    }

    /// The primary keys' fingerprints (upper-case hex), for messages and tests.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| hex_upper(k.primary_key.fingerprint().as_bytes()))
            .collect()
    }
}

/// What a verified Release says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// `Suite:`.
    pub suite: String,
    /// `Codename:`.
    pub codename: String,
    /// `Date:`, seconds since the epoch.
    pub date: Option<i64>,
    /// `Valid-Until:`, seconds since the epoch.
    pub valid_until: Option<i64>,
    /// The `SHA256:` list: path relative to the suite -> (digest, size).
    pub sha256: BTreeMap<String, (Sha256, u64)>,
}

impl Release {
    /// Checks that `bytes` are the file `path` (relative to the suite) as this Release lists it.
    pub fn check(&self, origin: &str, path: &str, bytes: &[u8]) -> Result<(), ReleaseError> {
        let (want, size) = self
            .sha256
            .get(path)
            .ok_or_else(|| ReleaseError::NotListed {
                origin: origin.to_owned(),
                path: path.to_owned(),
            })?;
        if bytes.len() as u64 != *size {
            return Err(ReleaseError::Mismatch {
                path: path.to_owned(),
                what: "size",
                want: size.to_string(),
                got: bytes.len().to_string(),
            });
        }
        let got = Sha256::of(bytes);
        if got != *want {
            return Err(ReleaseError::Mismatch {
                path: path.to_owned(),
                what: "sha256",
                want: want.to_string(),
                got: got.to_string(),
            });
        }
        Ok(())
    }
}

/// Verifies an `InRelease` (a clearsigned Release) and returns what its signed part says; nothing
/// outside the signed part is read.
pub fn verify_inrelease(
    bytes: &[u8],
    keys: &Keyring,
    now: i64,
    origin: &str,
) -> Result<Release, ReleaseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ReleaseError::Malformed {
        origin: origin.to_owned(),
        reason: "not UTF-8 text".into(),
    })?;
    let (msg, _) =
        CleartextSignedMessage::from_string(text).map_err(|e| ReleaseError::Malformed {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
    let signed = msg.signed_text();
    verify_signatures(msg.signatures(), signed.as_bytes(), keys, now, origin)?;
    parse_valid(&signed, now, origin)
}

/// Verifies a `Release` against its detached `Release.gpg` and returns what it says.
pub fn verify_detached(
    release: &[u8],
    signature: &[u8],
    keys: &Keyring,
    now: i64,
    origin: &str,
) -> Result<Release, ReleaseError> {
    let malformed = |reason: String| ReleaseError::Malformed {
        origin: format!("{origin}.gpg"),
        reason,
    };
    let sigs: Vec<Signature> = DetachedSignature::from_armor_many(Cursor::new(signature))
        .map_err(|e| malformed(e.to_string()))?
        .0
        .map(|s| s.map(|s| s.signature).map_err(|e| malformed(e.to_string())))
        .collect::<Result<_, _>>()?;
    verify_signatures(&sigs, release, keys, now, origin)?;
    let text = std::str::from_utf8(release).map_err(|_| ReleaseError::Malformed {
        origin: origin.to_owned(),
        reason: "not UTF-8 text".into(),
    })?;
    parse_valid(text, now, origin)
}

fn parse_valid(text: &str, now: i64, origin: &str) -> Result<Release, ReleaseError> {
    let release = parse(text, origin)?;
    if let Some(until) = release.valid_until {
        if now > until {
            return Err(ReleaseError::Stale {
                origin: origin.to_owned(),
                at: utc(until),
            });
        }
    }
    Ok(release)
}

/// At least one signature by a trusted key verifies over `data`, with neither it nor its key
/// expired at `now`.
fn verify_signatures(
    sigs: &[Signature],
    data: &[u8],
    keys: &Keyring,
    now: i64,
    origin: &str,
) -> Result<(), ReleaseError> {
    let mut bad = None;
    let mut expired = None;
    let mut unknown = Vec::new();
    for sig in sigs {
        let issuers: Vec<Vec<u8>> = sig
            .issuer_key_id()
            .iter()
            .map(|k| k.as_ref().to_vec())
            .chain(
                sig.issuer_fingerprint()
                    .iter()
                    .map(|f| f.as_bytes().to_vec()),
            )
            .collect();
        let mut known = false;
        for key in &keys.keys {
            // The primary key, or one of its subkeys.
            let primary_ids = (
                key.primary_key.legacy_key_id().as_ref().to_vec(),
                key.primary_key.fingerprint().as_bytes().to_vec(),
            );
            let primary_match = issuers
                .iter()
                .any(|i| *i == primary_ids.0 || *i == primary_ids.1);
            if primary_match {
                known = true;
                if sig.verify(&key.primary_key, data).is_err() {
                    bad.get_or_insert_with(|| hex_upper(&primary_ids.1));
                    continue;
                }
            } else {
                let sub = key.public_subkeys.iter().find(|s| {
                    issuers.iter().any(|i| {
                        *i == s.key.legacy_key_id().as_ref() || *i == s.key.fingerprint().as_bytes()
                    })
                });
                let Some(sub) = sub else { continue };
                known = true;
                if sig.verify(&sub.key, data).is_err() {
                    bad.get_or_insert_with(|| hex_upper(sub.key.fingerprint().as_bytes()));
                    continue;
                }
            }
            // A good signature: is it (or its key) still in force?
            let created = sig.created().map(|t| i64::from(t.as_secs())).unwrap_or(0);
            if created > now + 86_400 {
                expired.get_or_insert(("the signature (made in the future)".to_string(), created));
                continue;
            }
            if let Some(d) = sig.signature_expiration_time() {
                let at = created + d.as_secs() as i64;
                if d.as_secs() > 0 && now > at {
                    expired.get_or_insert(("the signature".to_string(), at));
                    continue;
                }
            }
            if let Some(at) = key_expiry(key) {
                if now > at {
                    expired.get_or_insert((format!("key {}", hex_upper(&primary_ids.1)), at));
                    continue;
                }
            }
            return Ok(());
        }
        if !known {
            unknown.extend(
                sig.issuer_fingerprint()
                    .iter()
                    .map(|f| hex_upper(f.as_bytes())),
            );
            if sig.issuer_fingerprint().is_empty() {
                unknown.extend(sig.issuer_key_id().iter().map(|k| hex_upper(k.as_ref())));
            }
        }
    }
    if let Some(key) = bad {
        return Err(ReleaseError::BadSignature {
            origin: origin.to_owned(),
            key,
        });
    }
    if let Some((what, at)) = expired {
        return Err(ReleaseError::Expired {
            origin: origin.to_owned(),
            what,
            at: utc(at),
        });
    }
    Err(ReleaseError::UnknownKey {
        origin: origin.to_owned(),
        keys: if unknown.is_empty() {
            "no signature at all".into()
        } else {
            unknown.join(", ")
        },
    })
}

/// When the key stops being valid, from its newest self-signature that says so.
fn key_expiry(key: &SignedPublicKey) -> Option<i64> {
    let created = i64::from(key.primary_key.created_at().as_secs());
    key.details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(key.details.direct_signatures.iter())
        .filter_map(|s| Some((s.created()?.as_secs(), s.key_expiration_time()?)))
        .max_by_key(|(c, _)| *c)
        .and_then(|(_, d)| (d.as_secs() > 0).then(|| created + d.as_secs() as i64))
}

/// Parses the fields of a Release that pideploy uses.
pub fn parse(text: &str, origin: &str) -> Result<Release, ReleaseError> {
    let field_err = |reason: String| ReleaseError::Field {
        origin: origin.to_owned(),
        reason,
    };
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    let mut sha256 = BTreeMap::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if current == Some("SHA256") {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let [hash, size, path] = parts[..] else {
                    return Err(field_err(format!(
                        "SHA256 line {line:?} is not `HASH SIZE PATH`"
                    )));
                };
                let hash: Sha256 = hash
                    .to_ascii_lowercase()
                    .parse()
                    .map_err(|_| field_err(format!("SHA256 of {path} is not 64 hex digits")))?;
                let size: u64 = size
                    .parse()
                    .map_err(|_| field_err(format!("size of {path} is not a number")))?;
                sha256.insert(path.to_owned(), (hash, size));
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(field_err(format!("line {line:?} is not `Field: value`")));
        };
        current = Some(k);
        fields.insert(k, v.trim().to_owned());
    }
    let date_field = |k: &str| -> Result<Option<i64>, ReleaseError> {
        fields
            .get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                parse_date(v).ok_or_else(|| {
                    field_err(format!(
                        "{k}: {v:?} is not a date like `Sat, 11 Jul 2026 10:16:37 UTC`"
                    ))
                })
            })
            .transpose()
    };
    Ok(Release {
        suite: fields.get("Suite").cloned().unwrap_or_default(),
        codename: fields.get("Codename").cloned().unwrap_or_default(),
        date: date_field("Date")?,
        valid_until: date_field("Valid-Until")?,
        sha256,
    })
}

/// `Sat, 11 Jul 2026 10:16:37 UTC` (RFC 2822 as apt writes it; also `+0000`) -> seconds.
fn parse_date(v: &str) -> Option<i64> {
    let v = v.split_once(", ").map_or(v, |(_, rest)| rest);
    let mut it = v.split_whitespace();
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let hms: Vec<i64> = it
        .next()?
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    let offset = match it.next()? {
        "UTC" | "GMT" | "Z" | "+0000" | "-0000" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if it.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch as `2026-07-11 10:16:37 UTC` (proleptic Gregorian, no date library).
pub fn utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil_from_days, the inverse of the above.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_KEYS: &str = include_str!("../../../boards/keys/debian.asc");
    const RPI_KEY: &str = include_str!("../../../boards/keys/raspberrypi.asc");
    /// Debian's real bookworm InRelease (Date: Sat, 11 Jul 2026 10:16:37 UTC, no Valid-Until).
    const BOOKWORM: &[u8] = include_bytes!("../../../image-fixtures/apt/debian-bookworm.InRelease");
    /// bookworm-security's (Valid-Until a week after its Date).
    const SECURITY: &[u8] =
        include_bytes!("../../../image-fixtures/apt/debian-bookworm-security.InRelease");
    const JUL_2026: i64 = 1_783_764_997;

    fn debian() -> Keyring {
        Keyring::parse(DEBIAN_KEYS.as_bytes(), "debian.asc").unwrap()
    }

    #[test]
    fn debians_own_inrelease_verifies_with_the_shipped_keys() {
        let r = verify_inrelease(BOOKWORM, &debian(), JUL_2026 + 86_400, "bookworm").unwrap();
        assert_eq!(
            (r.suite.as_str(), r.codename.as_str()),
            ("oldstable", "bookworm")
        );
        assert_eq!(r.date, Some(JUL_2026));
        assert_eq!(r.valid_until, None);
        let (_, size) = r.sha256["main/binary-arm64/Packages.xz"];
        assert!(size > 1_000_000, "{size}");
        assert_eq!(debian().fingerprints().len(), 7);
    }

    #[test]
    fn a_changed_byte_in_the_signed_text_is_a_bad_signature() {
        let text = String::from_utf8(BOOKWORM.to_vec()).unwrap();
        let forged = text.replacen("Codename: bookworm", "Codename: bookwork", 1);
        assert_ne!(forged, text);
        let e = verify_inrelease(forged.as_bytes(), &debian(), JUL_2026, "x").unwrap_err();
        assert!(matches!(e, ReleaseError::BadSignature { .. }), "{e}");
        assert!(e.to_string().contains("was altered"), "{e}");
    }

    #[test]
    fn keys_the_board_does_not_list_are_not_trusted() {
        let rpi = Keyring::parse(RPI_KEY.as_bytes(), "raspberrypi.asc").unwrap();
        assert_eq!(
            rpi.fingerprints(),
            ["CF8A1AF502A2AA2D763BAE7E82B129927FA3303E"]
        );
        let e = verify_inrelease(BOOKWORM, &rpi, JUL_2026, "x").unwrap_err();
        assert!(matches!(e, ReleaseError::UnknownKey { .. }), "{e}");
        // The Debian Stable Release Key (12/bookworm) is one of the signers.
        assert!(
            e.to_string()
                .contains("4D64FEC119C2029067D6E791F8D2585B8783D481"),
            "{e}"
        );
    }

    #[test]
    fn a_release_past_its_valid_until_is_stale() {
        let r = verify_inrelease(SECURITY, &debian(), 0, "s");
        // Made in the future as seen from 1970: refused too.
        assert!(r.is_err());
        let text = String::from_utf8(SECURITY.to_vec()).unwrap();
        let date =
            parse_date(text.lines().find_map(|l| l.strip_prefix("Date: ")).unwrap()).unwrap();
        let r = verify_inrelease(SECURITY, &debian(), date + 3600, "s").unwrap();
        let until = r.valid_until.unwrap();
        assert!(until > date);
        let e = verify_inrelease(SECURITY, &debian(), until + 1, "s").unwrap_err();
        assert!(matches!(e, ReleaseError::Stale { .. }), "{e}");
        assert!(e.to_string().contains(&utc(until)), "{e}");
    }

    #[test]
    fn only_the_signed_part_counts() {
        let mut lead = b"SHA256:\n 00 1 main/binary-arm64/Packages.xz\n".to_vec();
        lead.extend_from_slice(BOOKWORM);
        assert!(verify_inrelease(&lead, &debian(), JUL_2026, "x").is_err());
        let mut tail = BOOKWORM.to_vec();
        tail.extend_from_slice(b"\nSHA256:\n 00 1 main/binary-arm64/Packages.xz\n");
        if let Ok(r) = verify_inrelease(&tail, &debian(), JUL_2026, "x") {
            let good = verify_inrelease(BOOKWORM, &debian(), JUL_2026, "x").unwrap();
            assert_eq!(r, good);
        }
    }

    #[test]
    fn an_index_must_match_the_listed_size_and_digest() {
        let body = b"Packages\n";
        let text = format!(
            "Suite: s\nCodename: c\nDate: Sat, 11 Jul 2026 10:16:37 UTC\nSHA256:\n {} {} main/binary-arm64/Packages\n",
            Sha256::of(body),
            body.len()
        );
        let r = parse(&text, "Release").unwrap();
        r.check("Release", "main/binary-arm64/Packages", body)
            .unwrap();
        let e = r
            .check("Release", "main/binary-arm64/Packages", b"Packagez\n")
            .unwrap_err();
        assert!(e.to_string().contains("sha256 is"), "{e}");
        let e = r
            .check("Release", "main/binary-arm64/Packages", b"P")
            .unwrap_err();
        assert!(e.to_string().contains("size is 1"), "{e}");
        let e = r
            .check("Release", "main/binary-amd64/Packages", body)
            .unwrap_err();
        assert!(matches!(e, ReleaseError::NotListed { .. }), "{e}");
        assert!(parse("SHA256:\n zz 1 p\n", "R").is_err());
        assert!(parse("Date: yesterday\n", "R").is_err());
    }

    #[test]
    fn dates_as_apt_writes_them() {
        assert_eq!(parse_date("Sat, 11 Jul 2026 10:16:37 UTC"), Some(JUL_2026));
        assert_eq!(
            parse_date("Sat, 11 Jul 2026 12:16:37 +0200"),
            Some(JUL_2026)
        );
        assert_eq!(utc(JUL_2026), "2026-07-11 10:16:37 UTC");
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_date("Tue, 29 Feb 2028 00:00:00 UTC"),
            Some(1_835_395_200)
        );
        for bad in [
            "",
            "11 Jul 2026",
            "Sat, 11 Foo 2026 10:16:37 UTC",
            "Sat, 11 Jul 2026 10:16:37 CEST",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    /// Random damage never panics, and whatever still verifies says exactly what the real file says.
    #[test]
    fn damaged_inreleases_fail_cleanly() {
        let keys = debian();
        let good = verify_inrelease(BOOKWORM, &keys, JUL_2026, "x").unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300 {
            let mut b = BOOKWORM.to_vec();
            match round % 3 {
                0 => {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                1 => b.truncate((next() as usize) % b.len()),
                _ => {
                    let at = (next() as usize) % b.len();
                    b.insert(at, b"\n-"[(next() % 2) as usize]);
                }
            }
            if let Ok(r) = verify_inrelease(&b, &keys, JUL_2026, "x") {
                assert_eq!(r, good, "round {round}");
            }
        }
        for junk in [
            &b""[..],
            b"-----BEGIN PGP SIGNED MESSAGE-----\n",
            b"\xff\xfe",
        ] {
            assert!(verify_inrelease(junk, &keys, JUL_2026, "x").is_err());
            assert!(Keyring::parse(junk, "k").is_err());
        }
    }
}
