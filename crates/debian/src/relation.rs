//! Parsing of relationship fields (Depends, Pre-Depends, Provides, ...), Debian policy §7.1.

use std::cmp::Ordering;
use std::fmt;

use crate::error::DebError;
use crate::version;

/// A version comparison operator in a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<<`: strictly earlier.
    Lt,
    /// `<=` (and the obsolete `<`): earlier or equal.
    Le,
    /// `=`: exactly equal.
    Eq,
    /// `>=` (and the obsolete `>`): later or equal.
    Ge,
    /// `>>`: strictly later.
    Gt,
}

impl Op {
    /// Whether `candidate.cmp(wanted) == ord` satisfies this operator.
    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::Ge => ord != Ordering::Less,
            Op::Gt => ord == Ordering::Greater,
        }
    }

    /// The operator as written in control files.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alternative of a relation: `name[:arch] [(op version)] [[arch ...]]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dep {
    /// The package (or virtual package) name.
    pub name: String,
    /// The Multi-Arch qualifier after `:` (`any`, `native`, or an architecture), if any.
    pub arch_qualifier: Option<String>,
    /// The version constraint, if any.
    pub constraint: Option<(Op, String)>,
    /// The architecture restriction list in `[...]` (entries may start with `!`); empty = all architectures.
    /// Such lists appear in source-package fields; binary indexes normally carry none.
    pub arch_restriction: Vec<String>,
}

impl Dep {
    /// Whether a package at `version` meets this alternative's version constraint (true if unconstrained).
    pub fn matches_version(&self, version: &str) -> bool {
        match &self.constraint {
            None => true,
            Some((op, wanted)) => op.holds(version::compare(version, wanted)),
        }
    }

    /// Whether the `[...]` architecture restriction lets this alternative apply on `arch`.
    pub fn applies_to(&self, arch: &str) -> bool {
        if self.arch_restriction.is_empty() {
            return true;
        }
        let negated = self.arch_restriction[0].starts_with('!');
        let listed = self
            .arch_restriction
            .iter()
            .any(|a| arch_matches(a.trim_start_matches('!'), arch));
        listed != negated
    }
}

/// Matches an architecture or a simple wildcard (`any`, `linux-any`, `any-<cpu>`) against a Debian arch.
fn arch_matches(pattern: &str, arch: &str) -> bool {
    pattern == arch
        || pattern == "any"
        || pattern == "linux-any"
        || pattern.strip_prefix("any-") == Some(arch)
        || pattern.strip_prefix("linux-") == Some(arch)
}

impl fmt::Display for Dep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({op} {v})")?;
        }
        if !self.arch_restriction.is_empty() {
            write!(f, " [{}]", self.arch_restriction.join(" "))?;
        }
        Ok(())
    }
}

/// Formats an alternative group as `a | b (>= 1)`.
pub fn format_group(group: &[Dep]) -> String {
    group
        .iter()
        .map(Dep::to_string)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Parses a relationship field such as `"libc6 (>= 2.34), libgmp10 | libgmp-dev:any, foo [arm64]"`.
///
/// The outer vector is the AND of groups, each inner vector the OR of alternatives. Whitespace (including
/// the newlines of folded fields) is insignificant. Build-profile restrictions (`<!nocheck>`) are accepted
/// and dropped, as they only matter when building source packages. An empty field gives an empty vector.
pub fn parse(field: &str) -> Result<Vec<Vec<Dep>>, DebError> {
    let err = |reason: String| DebError::Relation {
        field: field.trim().to_string(),
        reason,
    };
    let mut groups = Vec::new();
    for group_text in field.split(',') {
        if group_text.trim().is_empty() {
            // A trailing comma or a blank field: nothing is required here.
            continue;
        }
        let mut group = Vec::new();
        for alt in group_text.split('|') {
            group.push(parse_alternative(alt).map_err(err)?);
        }
        groups.push(group);
    }
    Ok(groups)
}

fn parse_alternative(text: &str) -> Result<Dep, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty alternative".into());
    }
    let name_end = rest
        .find(|c: char| c.is_whitespace() || "([<".contains(c))
        .unwrap_or(rest.len());
    let (name_part, tail) = rest.split_at(name_end);
    rest = tail.trim_start();
    let (name, arch_qualifier) = match name_part.split_once(':') {
        Some((n, q)) => (n, Some(q)),
        None => (name_part, None),
    };
    check_name(name)?;
    if let Some(q) = arch_qualifier {
        if q.is_empty() || !q.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
            return Err(format!("bad architecture qualifier `:{q}` on `{name}`"));
        }
    }

    let mut constraint = None;
    if let Some(after) = rest.strip_prefix('(') {
        let close = after
            .find(')')
            .ok_or_else(|| format!("unclosed `(` after `{name}`"))?;
        constraint = Some(parse_constraint(after[..close].trim(), name)?);
        rest = after[close + 1..].trim_start();
    }

    let mut arch_restriction = Vec::new();
    if let Some(after) = rest.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| format!("unclosed `[` after `{name}`"))?;
        arch_restriction = after[..close]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if arch_restriction.is_empty() {
            return Err(format!("empty architecture list after `{name}`"));
        }
        let negated = arch_restriction
            .iter()
            .filter(|a| a.starts_with('!'))
            .count();
        if negated != 0 && negated != arch_restriction.len() {
            return Err(format!(
                "architecture list after `{name}` mixes negated and plain entries"
            ));
        }
        rest = after[close + 1..].trim_start();
    }

    while let Some(after) = rest.strip_prefix('<') {
        let close = after
            .find('>')
            .ok_or_else(|| format!("unclosed `<` after `{name}`"))?;
        rest = after[close + 1..].trim_start();
    }

    if !rest.is_empty() {
        return Err(format!("unexpected `{rest}` after `{name}`"));
    }
    Ok(Dep {
        name: name.to_string(),
        arch_qualifier: arch_qualifier.map(str::to_string),
        constraint,
        arch_restriction,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c);
    if name.is_empty() {
        return Err("missing package name".into());
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok_char) {
        return Err(format!("`{name}` is not a valid package name"));
    }
    Ok(())
}

fn parse_constraint(text: &str, name: &str) -> Result<(Op, String), String> {
    // Longest operators first so `<=` is not read as the obsolete `<`.
    const OPS: [(&str, Op); 7] = [
        ("<<", Op::Lt),
        ("<=", Op::Le),
        (">=", Op::Ge),
        (">>", Op::Gt),
        ("=", Op::Eq),
        ("<", Op::Le),
        (">", Op::Ge),
    ];
    let (op, v) = OPS
        .iter()
        .find_map(|(s, op)| text.strip_prefix(s).map(|v| (*op, v.trim())))
        .ok_or_else(|| format!("`({text})` after `{name}` has no comparison operator"))?;
    version::validate(v).map_err(|e| format!("bad version in `{name} ({text})`: {e}"))?;
    Ok((op, v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, q: Option<&str>, c: Option<(Op, &str)>) -> Dep {
        Dep {
            name: name.into(),
            arch_qualifier: q.map(Into::into),
            constraint: c.map(|(o, v)| (o, v.into())),
            arch_restriction: vec![],
        }
    }

    #[test]
    fn parses_the_documented_example() {
        let got = parse("libc6 (>= 2.34), libgmp10 | libgmp-dev:any, foo [arm64]").unwrap();
        let mut foo = dep("foo", None, None);
        foo.arch_restriction = vec!["arm64".into()];
        assert_eq!(
            got,
            vec![
                vec![dep("libc6", None, Some((Op::Ge, "2.34")))],
                vec![
                    dep("libgmp10", None, None),
                    dep("libgmp-dev", Some("any"), None)
                ],
                vec![foo],
            ]
        );
    }

    #[test]
    fn operators_and_whitespace() {
        let got = parse("a(<<1),b (<= 1:2-3) ,c(=1.0~rc1),\n d (>>2), e (< 3), f (>4), g ( >= 5 )")
            .unwrap();
        let ops: Vec<_> = got
            .iter()
            .map(|g| g[0].constraint.clone().unwrap())
            .collect();
        assert_eq!(
            ops,
            vec![
                (Op::Lt, "1".into()),
                (Op::Le, "1:2-3".into()),
                (Op::Eq, "1.0~rc1".into()),
                (Op::Gt, "2".into()),
                (Op::Le, "3".into()),
                (Op::Ge, "4".into()),
                (Op::Ge, "5".into()),
            ]
        );
    }

    #[test]
    fn empty_and_trailing_comma() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("  \n ").unwrap().is_empty());
        assert_eq!(parse("a, ").unwrap().len(), 1);
    }

    #[test]
    fn profiles_are_dropped_and_arch_lists_checked() {
        let got =
            parse("debhelper-compat (= 13), check <!nocheck> <cross>, x [!amd64 !i386]").unwrap();
        assert_eq!(got[1][0], dep("check", None, None));
        assert!(got[2][0].applies_to("arm64"));
        assert!(!got[2][0].applies_to("amd64"));
        let only = &parse("y [arm64 armhf]").unwrap()[0][0];
        assert!(only.applies_to("arm64") && !only.applies_to("amd64"));
        assert!(parse("z [linux-any]").unwrap()[0][0].applies_to("arm64"));
    }

    #[test]
    fn display_round_trips() {
        let text = "libc6:any (>= 2.34) | foo [arm64]";
        let groups = parse(text).unwrap();
        assert_eq!(format_group(&groups[0]), text);
    }

    #[test]
    fn matches_version_uses_debian_order() {
        let d = &parse("libc6 (>= 2.36-9+deb12u4)").unwrap()[0][0];
        assert!(d.matches_version("2.36-9+deb12u14"));
        assert!(!d.matches_version("2.36-9+deb12u3"));
        let lt = &parse("x (<< 2.0)").unwrap()[0][0];
        assert!(lt.matches_version("2.0~rc1") && !lt.matches_version("2.0"));
    }

    #[test]
    fn errors_name_the_problem() {
        for (text, needle) in [
            ("a (>= 1", "unclosed `(`"),
            ("a (1.0)", "no comparison operator"),
            ("a | | b", "empty alternative"),
            ("Foo", "not a valid package name"),
            ("a (>= x)", "bad version"),
            ("a [arm64 !amd64]", "mixes"),
            ("a b", "unexpected `b`"),
            ("a:", "qualifier"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
