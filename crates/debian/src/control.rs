//! deb822 paragraphs: the `Field: value` format of control files and Packages indexes.

use std::collections::{BTreeMap, HashSet};

use crate::error::DebError;

/// One paragraph of a deb822 document, with the line numbers needed for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    /// 1-based line of the paragraph's first field.
    pub line: usize,
    /// Field name (as written) to value. Multi-line values keep their continuation lines, each after a
    /// `\n`, with their leading whitespace; the first line is trimmed.
    pub fields: BTreeMap<String, String>,
    lines: BTreeMap<String, usize>,
}

impl Paragraph {
    /// Looks a field up case-insensitively, as deb822 field names are.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The line a field starts on, or the paragraph's first line if it is absent.
    pub fn line_of(&self, name: &str) -> usize {
        self.lines
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or(self.line, |(_, l)| *l)
    }
}

/// Splits a deb822 document into paragraphs.
///
/// Blank lines separate paragraphs, lines starting with `#` are comments, lines starting with a space or a
/// tab continue the previous field. Errors carry the 1-based line number.
pub fn parse(text: &str) -> Result<Vec<Paragraph>, DebError> {
    let mut out = Vec::new();
    let mut cur: Option<Paragraph> = None;
    let mut last_field: Option<String> = None;
    let mut seen: HashSet<String> = HashSet::new();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim_end_matches('\r');
        let err = |reason: String| DebError::Index {
            line: line_no,
            reason,
        };
        if line.trim().is_empty() {
            out.extend(cur.take());
            last_field = None;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let (Some(p), Some(field)) = (cur.as_mut(), last_field.as_ref()) else {
                return Err(err(
                    "continuation line (starting with whitespace) with no field before it".into(),
                ));
            };
            let value = p.fields.get_mut(field).expect("last field was inserted");
            value.push('\n');
            value.push_str(line.trim_end());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(err(format!(
                "expected `Field: value`, found `{}`",
                truncate(line)
            )));
        };
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_graphic()) || name.starts_with('-') {
            return Err(err(format!(
                "`{}` is not a valid field name",
                truncate(name)
            )));
        }
        if cur.is_none() {
            seen.clear();
        }
        let p = cur.get_or_insert_with(|| Paragraph {
            line: line_no,
            fields: BTreeMap::new(),
            lines: BTreeMap::new(),
        });
        // A set of folded names, not `p.get`: a paragraph with many fields stays linear.
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(err(format!(
                "field `{}` appears twice in the paragraph starting at line {}",
                truncate(name),
                p.line
            )));
        }
        p.fields.insert(name.to_string(), value.trim().to_string());
        p.lines.insert(name.to_string(), line_no);
        last_field = Some(name.to_string());
    }
    out.extend(cur);
    Ok(out)
}

fn truncate(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_comments_and_continuations() {
        let text = "# comment\nPackage: a\nDescription: short\n more\n .\n\tlast\n\n\n#x\nPackage: b\r\nfield-x:v\n";
        let ps = parse(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].line, 2);
        assert_eq!(ps[0].get("description"), Some("short\n more\n .\n\tlast"));
        assert_eq!(ps[1].get("Package"), Some("b"));
        assert_eq!(ps[1].get("Field-X"), Some("v"));
        assert_eq!(ps[1].line_of("field-x"), 11);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let e = parse("Package: a\nbroken line\n").unwrap_err().to_string();
        assert!(e.starts_with("index line 2:"), "{e}");
        let e = parse("\n continued\n").unwrap_err().to_string();
        assert!(
            e.starts_with("index line 2:") && e.contains("continuation"),
            "{e}"
        );
        let e = parse("A: 1\nB: 2\na: 3\n").unwrap_err().to_string();
        assert!(e.starts_with("index line 3:") && e.contains("twice"), "{e}");
    }
}
