//! Packages indexes: the per-architecture lists of binary packages an apt repository publishes.

use std::collections::BTreeMap;

use crate::control::{self, Paragraph};
use crate::decompress;
use crate::error::DebError;
use crate::relation::{self, Dep};
use crate::version;

/// One stanza of a Packages index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `Package`: the binary package name.
    pub name: String,
    /// `Version`.
    pub version: String,
    /// `Architecture` (`arm64`, `all`, ...).
    pub architecture: String,
    /// `Depends`, unparsed (empty if absent).
    pub depends: String,
    /// `Pre-Depends`, unparsed (empty if absent).
    pub pre_depends: String,
    /// `Provides`, unparsed (empty if absent).
    pub provides: String,
    /// `Filename`: the path of the .deb relative to the repository root.
    pub filename: String,
    /// `Size` of the .deb in bytes.
    pub size: u64,
    /// `SHA256` of the .deb: 64 lowercase hex digits.
    pub sha256: String,
    /// `Essential: yes`.
    pub essential: bool,
    /// `Priority` (empty if absent).
    pub priority: String,
    /// Every field of the stanza, keyed by name as written (including the ones above).
    pub fields: BTreeMap<String, String>,
}

impl Package {
    /// Looks up any field case-insensitively.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Pre-Depends` then `Depends`, parsed.
    pub fn dependency_groups(&self) -> Result<Vec<Vec<Dep>>, DebError> {
        let mut groups = relation::parse(&self.pre_depends)?;
        groups.extend(relation::parse(&self.depends)?);
        Ok(groups)
    }

    /// `Provides`, parsed into a flat list (alternatives are not allowed there).
    pub fn provided(&self) -> Result<Vec<Dep>, DebError> {
        relation::parse(&self.provides)?
            .into_iter()
            .map(|mut g| {
                if g.len() == 1 {
                    Ok(g.remove(0))
                } else {
                    Err(DebError::Relation {
                        field: self.provides.clone(),
                        reason: format!("`Provides` of {} contains alternatives", self.name),
                    })
                }
            })
            .collect()
    }

    /// `name=version`, the form the resolver accepts as a pinned root.
    pub fn pin(&self) -> String {
        format!("{}={}", self.name, self.version)
    }

    fn from_paragraph(p: Paragraph) -> Result<Self, DebError> {
        let err = |field: &str, reason: String| DebError::Index {
            line: p.line_of(field),
            reason,
        };
        let required = |field: &str| {
            p.get(field)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| DebError::Index {
                    line: p.line,
                    reason: format!(
                        "stanza for `{}` has no `{field}` field",
                        p.get("Package").unwrap_or("?")
                    ),
                })
        };
        let optional = |field: &str| p.get(field).unwrap_or_default().to_string();

        let name = required("Package")?.to_string();
        let version = required("Version")?.to_string();
        version::validate(&version)
            .map_err(|e| err("Version", format!("package `{name}`: {e}")))?;
        let size_text = required("Size")?;
        let size = size_text.parse().map_err(|_| {
            err(
                "Size",
                format!("package `{name}`: Size `{size_text}` is not a byte count"),
            )
        })?;
        let sha256 = required("SHA256")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(err(
                "SHA256",
                format!("package `{name}`: SHA256 `{sha256}` is not 64 hex digits"),
            ));
        }
        let essential = match p.get("Essential") {
            None | Some("no") => false,
            Some("yes") => true,
            Some(other) => {
                return Err(err(
                    "Essential",
                    format!("package `{name}`: Essential must be yes or no, not `{other}`"),
                ))
            }
        };
        Ok(Package {
            architecture: required("Architecture")?.to_string(),
            filename: required("Filename")?.to_string(),
            depends: optional("Depends"),
            pre_depends: optional("Pre-Depends"),
            provides: optional("Provides"),
            priority: optional("Priority"),
            name,
            version,
            size,
            sha256,
            essential,
            fields: p.fields,
        })
    }
}

/// Parses a Packages index (deb822 paragraphs, continuation lines, comments). Errors say the line number.
///
/// Each stanza needs `Package`, `Version`, `Architecture`, `Filename`, `Size` and `SHA256`: without the hash
/// a downloaded .deb could not be verified.
pub fn parse(text: &str) -> Result<Vec<Package>, DebError> {
    control::parse(text)?
        .into_iter()
        .map(Package::from_paragraph)
        .collect()
}

/// The most index bytes read from a file or a download (compressed or not): Debian's plain
/// `Packages` files are well under this; `/dev/zero` or an endless response stop here.
pub const MAX_INDEX_BYTES: u64 = 512 << 20;

/// Reads an index from `r`, at most [`MAX_INDEX_BYTES`]; `what` names it in errors.
pub fn read_capped(r: impl std::io::Read, what: &str) -> Result<Vec<u8>, DebError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    r.take(MAX_INDEX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DebError::io(format!("reading {what}"), e))?;
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(DebError::Deb(format!(
            "{what} is larger than {} MiB; it is not a Packages index",
            MAX_INDEX_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Decompresses by content sniffing (gzip, xz, zstd, or plain) and parses.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<Package>, DebError> {
    let plain = decompress::decompress_sniffed(bytes, "Packages index")?;
    let text = String::from_utf8(plain).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DebError::Index {
            line,
            reason: "not valid UTF-8 (is this really a Packages index?)".into(),
        }
    })?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn sample() -> String {
        format!(
            "Package: dropbear-bin\n\
             Version: 2022.83-1+deb12u3\n\
             Architecture: arm64\n\
             Depends: libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0),\n zlib1g (>= 1:1.1.4)\n\
             Description: lightweight SSH2 server and client\n \
             dropbear is a SSH 2 server and client.\n .\n \
             This package contains the binaries.\n\
             Filename: pool/main/d/dropbear/dropbear-bin_2022.83-1+deb12u3_arm64.deb\n\
             Size: 143724\n\
             SHA256: {}\n\
             \n\
             # a comment between stanzas\n\
             Package: base-files\n\
             Essential: yes\n\
             Priority: required\n\
             Version: 12.4+deb12u11\n\
             Architecture: arm64\n\
             Provides: base\n\
             Filename: pool/main/b/base-files/base-files_12.4+deb12u11_arm64.deb\n\
             Size: 70000\n\
             SHA256: {HASH}\n",
            HASH.to_uppercase()
        )
    }

    #[test]
    fn parses_stanzas_with_multiline_fields() {
        let pkgs = parse(&sample()).unwrap();
        assert_eq!(pkgs.len(), 2);
        let d = &pkgs[0];
        assert_eq!(d.name, "dropbear-bin");
        assert_eq!(d.sha256, HASH, "hash is lowercased");
        assert_eq!(d.size, 143724);
        assert!(!d.essential);
        assert_eq!(
            d.field("description").unwrap(),
            "lightweight SSH2 server and client\n dropbear is a SSH 2 server and client.\n .\n This package contains the binaries."
        );
        let names: Vec<_> = d
            .dependency_groups()
            .unwrap()
            .into_iter()
            .map(|g| g[0].name.clone())
            .collect();
        assert_eq!(names, ["libc6", "libcrypt1", "zlib1g"]);
        let b = &pkgs[1];
        assert!(b.essential);
        assert_eq!(b.priority, "required");
        assert_eq!(b.provided().unwrap()[0].name, "base");
        assert_eq!(b.fields.len(), 9);
        assert_eq!(b.pin(), "base-files=12.4+deb12u11");
    }

    #[test]
    fn errors_point_at_the_line() {
        let bad_size = sample().replace("Size: 70000", "Size: lots");
        let e = parse(&bad_size).unwrap_err().to_string();
        assert!(e.starts_with("index line 22:") && e.contains("lots"), "{e}");

        let no_colon = sample().replace("Priority: required", "Priority required");
        let e = parse(&no_colon).unwrap_err().to_string();
        assert!(e.starts_with("index line 17:"), "{e}");

        let no_hash = sample().replace(&HASH.to_uppercase(), "abc");
        let e = parse(&no_hash).unwrap_err().to_string();
        assert!(
            e.starts_with("index line 12:") && e.contains("64 hex"),
            "{e}"
        );

        let missing = sample().replace("Version: 12.4+deb12u11\n", "");
        let e = parse(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with("index line 15:") && e.contains("`Version`"),
            "{e}"
        );
    }

    #[test]
    fn parse_bytes_accepts_compressed_and_plain() {
        let text = sample();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(text.as_bytes(), 1).unwrap();
        let want = parse(&text).unwrap();
        assert_eq!(parse_bytes(&gz).unwrap(), want);
        assert_eq!(parse_bytes(&zst).unwrap(), want);
        assert_eq!(parse_bytes(text.as_bytes()).unwrap(), want);
        let e = parse_bytes(b"Package: a\n\xff\n").unwrap_err().to_string();
        assert!(e.starts_with("index line 2:"), "{e}");
    }
}
