//! Errors for loading host configs and boards.

use std::path::PathBuf;

use crate::validate::ValidationError;

/// Everything that can go wrong while reading, parsing, validating or digesting a config or board.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the schema (typo'd field, wrong type, unknown variant).
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        /// Name of the file (as given by the caller) the text came from.
        origin: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// What toml said, e.g. "unknown field `hostnme`, expected one of `board`, `hostname`, ...".
        message: String,
    },
    /// The TOML parsed but broke one or more rules; every broken rule is listed.
    #[error("{origin}: {}", join_issues(.issues))]
    Invalid {
        /// Name of the file the config came from.
        origin: String,
        /// Each broken rule, naming the field path (e.g. `users[1].uid`).
        issues: Vec<ValidationError>,
    },
    /// The board name is neither built in nor a path to a board file.
    #[error("unknown board `{name}`; known boards: {}; or give a path to a board .toml file", .known.join(", "))]
    UnknownBoard {
        /// What was asked for.
        name: String,
        /// The built-in board names.
        known: Vec<String>,
    },
    /// An `[[apt]] keyring` names neither a built-in keyring nor a file next to the board.
    #[error("{board}: apt source `{source_name}` names keyring `{keyring}`, which is neither built in ({}) nor a file (paths are relative to the board file)", .known.join(", "))]
    UnknownKeyring {
        /// The board (name or file).
        board: String,
        /// The apt source.
        source_name: String,
        /// What it named.
        keyring: String,
        /// The built-in keyrings.
        known: Vec<String>,
    },
    /// The config could not be turned into its canonical form for the digest.
    #[error("serialising the config for its digest: {0}")]
    Canonical(#[source] serde_json::Error),
}

/// The issues joined by "; ", the first [`LISTED_ISSUES`] of them: a file with thousands of
/// bad entries gives a readable line, not megabytes.
fn join_issues(issues: &[ValidationError]) -> String {
    let mut out = issues
        .iter()
        .take(LISTED_ISSUES)
        .map(|issue| shorten(&issue.to_string()))
        .collect::<Vec<_>>()
        .join("; ");
    if issues.len() > LISTED_ISSUES {
        out.push_str(&format!("; … and {} more", issues.len() - LISTED_ISSUES));
    }
    out
}

/// How many broken rules one error message lists.
const LISTED_ISSUES: usize = 20;

/// An issue cut to 300 characters: a rule broken by a megabyte-long value quotes its start.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Turns a toml error into [`ConfigError::Parse`], translating its byte span into line and column.
pub(crate) fn parse_error(origin: &str, text: &str, err: &toml::de::Error) -> ConfigError {
    let (line, column) = match err.span() {
        Some(span) => line_col(text, span.start),
        None => (1, 1),
    };
    ConfigError::Parse {
        origin: origin.to_owned(),
        line,
        column,
        message: err.message().trim_end().replace('\n', " "),
    }
}

/// The largest config or board file read: real ones are a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads a config or board file as text, refusing anything but a regular file of at most
/// [`MAX_CONFIG_BYTES`] (so `/dev/zero` or a huge file is one error, not a hang).
pub(crate) fn read_config_text(path: &std::path::Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let fail = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let too_big = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not a regular file of at most {} MiB; is this the right file?",
                MAX_CONFIG_BYTES >> 20
            ),
        )
    };
    // Checked before opening too: opening a fifo blocks until someone writes to it.
    if !std::fs::metadata(path).map_err(fail)?.is_file() {
        return Err(fail(too_big()));
    }
    let f = std::fs::File::open(path).map_err(fail)?;
    let meta = f.metadata().map_err(fail)?;
    if !meta.is_file() || meta.len() > MAX_CONFIG_BYTES {
        return Err(fail(too_big()));
    }
    let mut text = String::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(fail)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(too_big()));
    }
    Ok(text)
}

/// 1-based line and column (counted in chars) of byte offset `at` in `text` (for
/// file:line:column messages about any TOML file, not only configs).
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    // A span may in theory point inside a multi-byte char; step back to a boundary.
    let at = (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(text, 9), (2, 3));
        assert_eq!(line_col(text, 1000), (3, 1));
    }
}
