//! `PathInfo`: the registration record of a valid path and its plain-text form.

use std::collections::BTreeSet;

use crate::{Sha256, StoreError, StorePath};

/// Registration record of a valid path.
///
/// Text form (every line ends with `\n`, references sorted, written the same way by the target's
/// sh scripts):
/// ```text
/// path <base>
/// nar-sha256 <64 hex>
/// nar-size <decimal>
/// ref <base>            (zero or more)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathInfo {
    /// The registered path.
    pub path: StorePath,
    /// Paths its contents refer to.
    pub references: BTreeSet<StorePath>,
    /// sha256 of the path's archive.
    pub nar_sha256: Sha256,
    /// Length of the path's archive.
    pub nar_size: u64,
}

impl PathInfo {
    /// The canonical text form.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "path {}\nnar-sha256 {}\nnar-size {}\n",
            self.path, self.nar_sha256, self.nar_size
        );
        for r in &self.references {
            s.push_str(&format!("ref {r}\n"));
        }
        s
    }

    /// Parses the text form; only the canonical form is accepted (fixed line order, final
    /// newline, references sorted and unique), so a record has exactly one spelling.
    pub fn from_text(s: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::InvalidRegistration {
            context: None,
            reason,
        };
        let Some(body) = s.strip_suffix('\n') else {
            return Err(bad("it does not end with a newline".into()));
        };
        let mut lines = body.split('\n').enumerate();
        let mut field = |key: &str| -> Result<&str, StoreError> {
            match lines.next() {
                Some((i, line)) => line
                    .strip_prefix(key)
                    .and_then(|v| v.strip_prefix(' '))
                    .ok_or_else(|| {
                        bad(format!(
                            "line {}: expected `{key} ...`, found `{line}`",
                            i + 1
                        ))
                    }),
                None => Err(bad(format!("missing `{key}` line"))),
            }
        };
        let path = StorePath::parse(field("path")?)?;
        let nar_sha256: Sha256 = field("nar-sha256")?.parse()?;
        let size = field("nar-size")?;
        let nar_size = match size.parse::<u64>() {
            Ok(n) if n.to_string() == size => n,
            _ => {
                return Err(bad(format!(
                    "nar-size `{size}` is not a plain decimal number"
                )))
            }
        };
        let mut references = BTreeSet::new();
        let mut last: Option<StorePath> = None;
        for (i, line) in lines {
            let Some(r) = line.strip_prefix("ref ") else {
                return Err(bad(format!(
                    "line {}: expected `ref <base>`, found `{line}`",
                    i + 1
                )));
            };
            let r = StorePath::parse(r)?;
            if last.as_ref().is_some_and(|l| *l >= r) {
                return Err(bad(format!(
                    "line {}: reference {r} is out of order or repeated",
                    i + 1
                )));
            }
            last = Some(r.clone());
            references.insert(r);
        }
        Ok(PathInfo {
            path,
            references,
            nar_sha256,
            nar_size,
        })
    }
}
