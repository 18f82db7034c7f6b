//! `StorePath`: a validated `<hash>-<name>` and how its hash is computed.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::{base32, Sha256, StoreError, STORE_DIR};

/// Length of the hash part: 20 bytes of sha256 in base32.
pub const HASH_LEN: usize = 32;
/// Longest allowed name.
pub const MAX_NAME_LEN: usize = 200;

/// A store path, `<32-char hash>-<name>`, validated once at construction.
///
/// Ordering, equality and hashing follow the base name, so sorted sets of paths are sorted by
/// base name. Display gives the base name; serde uses the base name as a string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath {
    base: String,
}

/// Checks the name rules; `Ok` means `name` can follow a hash in a store path.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let bad = |reason: String| StoreError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(format!("it is {} characters long", name.len())));
    }
    if name.starts_with('.') {
        return Err(bad("it starts with '.'".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "+._?=-".contains(c)))
    {
        return Err(bad(format!("it contains {c:?}")));
    }
    Ok(())
}

impl StorePath {
    /// Accepts `<hash>-<name>` or `/pideploy/store/<hash>-<name>`; anything below a path
    /// (`/pideploy/store/<hash>-<name>/sub`) is rejected.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::InvalidPath {
            input: s.to_owned(),
            reason,
        };
        let base = if let Some(rest) = s.strip_prefix('/') {
            let Some(rest) = rest
                .strip_prefix(&STORE_DIR[1..])
                .and_then(|r| r.strip_prefix('/'))
            else {
                return Err(bad(format!(
                    "an absolute store path must start with {STORE_DIR}/"
                )));
            };
            if let Some(i) = rest.find('/') {
                return Err(bad(format!(
                    "it names `{}` inside the store path `{}`; give the store path itself",
                    &rest[i..],
                    &rest[..i]
                )));
            }
            rest
        } else {
            s
        };
        if base.contains('/') {
            return Err(bad(format!(
                "it contains '/'; give `<hash>-<name>` or `{STORE_DIR}/<hash>-<name>`"
            )));
        }
        let bytes = base.as_bytes();
        if bytes.len() < HASH_LEN + 2 || bytes[HASH_LEN] != b'-' {
            return Err(bad(format!(
                "expected a {HASH_LEN}-character hash, '-' and a name"
            )));
        }
        if let Some(&c) = bytes[..HASH_LEN].iter().find(|&&c| !base32::is_digit(c)) {
            return Err(bad(format!(
                "the hash part contains {:?}, which is not in the store's base32 alphabet {}",
                char::from(c),
                std::str::from_utf8(base32::ALPHABET).unwrap_or_default()
            )));
        }
        validate_name(&base[HASH_LEN + 1..]).map_err(|e| match e {
            StoreError::InvalidName { reason, .. } => bad(format!("the name {reason}")),
            other => other,
        })?;
        Ok(StorePath {
            base: base.to_owned(),
        })
    }

    /// The 32-character hash part.
    pub fn hash_part(&self) -> &str {
        &self.base[..HASH_LEN]
    }

    /// The name after the hash.
    pub fn name(&self) -> &str {
        &self.base[HASH_LEN + 1..]
    }

    /// `<hash>-<name>`.
    pub fn base_name(&self) -> String {
        self.base.clone()
    }

    /// `/pideploy/store/<hash>-<name>`.
    pub fn absolute(&self) -> String {
        format!("{STORE_DIR}/{}", self.base)
    }

    /// The path for `name` whose archive has digest `content` and which references `references`.
    ///
    /// The hash is the store base32 of the first 20 bytes of the sha256 of
    /// [`StorePath::hash_input`] (see the crate docs for the exact text).
    pub fn compute(
        name: &str,
        content: &Sha256,
        references: &BTreeSet<StorePath>,
    ) -> Result<Self, StoreError> {
        validate_name(name)?;
        let digest = Sha256::of(Self::hash_input(name, content, references).as_bytes());
        Ok(StorePath {
            base: format!("{}-{name}", base32::encode(&digest.0[..20])),
        })
    }

    /// The plain text whose sha256 names a path; kept public so other tools can show or check it.
    pub fn hash_input(name: &str, content: &Sha256, references: &BTreeSet<StorePath>) -> String {
        let mut s = format!("pideploy-store-path-v1\nname {name}\ncontent sha256:{content}\n");
        for r in references {
            s.push_str("ref ");
            s.push_str(&r.base);
            s.push('\n');
        }
        s
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({})", self.base)
    }
}

impl FromStr for StorePath {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StorePath::parse(s)
    }
}

impl serde::Serialize for StorePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.base)
    }
}

impl<'de> serde::Deserialize<'de> for StorePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StorePath::parse(&s).map_err(serde::de::Error::custom)
    }
}
