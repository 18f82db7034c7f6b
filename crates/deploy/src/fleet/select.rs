//! Choosing hosts from an inventory with `--on`: comma-separated names, globs on names (`*` any
//! run of characters, `?` one character) and `@tag` for every host carrying a tag. A part that
//! matches nothing is an error listing what exists, so a typo never deploys to fewer hosts silently.

use super::inventory::{Host, Inventory};

/// Why a selection could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// Nothing was given (or only commas).
    #[error("--on {spec:?} names no host; give names, globs (web-*) or @tags, comma-separated")]
    Empty {
        /// The selection as given.
        spec: String,
    },
    /// A plain name that is not in the inventory.
    #[error("{origin} has no host named {name:?}; hosts: {}", .known.join(", "))]
    UnknownHost {
        /// The inventory.
        origin: String,
        /// The name asked for.
        name: String,
        /// Every host name.
        known: Vec<String>,
    },
    /// A glob that matches no host name.
    #[error("{pattern:?} matches no host in {origin}; hosts: {}", .known.join(", "))]
    NoMatch {
        /// The inventory.
        origin: String,
        /// The glob.
        pattern: String,
        /// Every host name.
        known: Vec<String>,
    },
    /// A tag no host carries.
    #[error("no host in {origin} has tag @{tag}; tags: {}", tag_list(.known))]
    UnknownTag {
        /// The inventory.
        origin: String,
        /// The tag asked for (without `@`).
        tag: String,
        /// Every tag in use.
        known: Vec<String>,
    },
}

fn tag_list(tags: &[String]) -> String {
    if tags.is_empty() {
        return "none (add tags = [\"...\"] to hosts)".into();
    }
    tags.iter()
        .map(|t| format!("@{t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One part of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// An exact host name.
    Name(String),
    /// A glob on host names.
    Glob(String),
    /// Every host with this tag.
    Tag(String),
}

impl Selector {
    fn matches(&self, h: &Host) -> bool {
        match self {
            Selector::Name(n) => &h.name == n,
            Selector::Glob(g) => glob_match(g, &h.name),
            Selector::Tag(t) => h.tags.contains(t),
        }
    }
}

/// Splits `--on` into its parts (surrounding spaces and empty parts are ignored).
pub fn parse_selection(spec: &str) -> Result<Vec<Selector>, SelectError> {
    let parts: Vec<Selector> = spec
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('@') {
            Some(tag) => Selector::Tag(tag.to_string()),
            None if p.contains(['*', '?']) => Selector::Glob(p.to_string()),
            None => Selector::Name(p.to_string()),
        })
        .collect();
    if parts.is_empty() {
        return Err(SelectError::Empty {
            spec: spec.to_string(),
        });
    }
    Ok(parts)
}

/// Whether `name` matches `pattern` (`*` any run of characters, `?` exactly one).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Greedy match with one backtrack point (the last `*`): linear enough for host names.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The hosts `spec` selects, in inventory order, each once.
pub fn select<'a>(inv: &'a Inventory, spec: &str) -> Result<Vec<&'a Host>, SelectError> {
    let parts = parse_selection(spec)?;
    let known = || inv.names().into_iter().map(String::from).collect();
    for s in &parts {
        if inv.hosts.iter().any(|h| s.matches(h)) {
            continue;
        }
        let origin = inv.origin.clone();
        return Err(match s {
            Selector::Name(name) => SelectError::UnknownHost {
                origin,
                name: name.clone(),
                known: known(),
            },
            Selector::Glob(pattern) => SelectError::NoMatch {
                origin,
                pattern: pattern.clone(),
                known: known(),
            },
            Selector::Tag(tag) => SelectError::UnknownTag {
                origin,
                tag: tag.clone(),
                known: inv.tags().into_iter().map(String::from).collect(),
            },
        });
    }
    Ok(inv
        .hosts
        .iter()
        .filter(|h| parts.iter().any(|s| s.matches(h)))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn inv() -> Inventory {
        let text = r#"
[[host]]
name = "web-1"
target = "h1"
tags = ["web", "eu"]
[[host]]
name = "web-2"
target = "h2"
tags = ["web"]
[[host]]
name = "db-1"
target = "h3"
tags = ["db", "eu"]
[[host]]
name = "web-10"
target = "h4"
"#;
        Inventory::parse("hosts.toml", text, Path::new("."), None).unwrap()
    }

    fn names(spec: &str) -> Vec<String> {
        let i = inv();
        select(&i, spec)
            .unwrap()
            .into_iter()
            .map(|h| h.name.clone())
            .collect()
    }

    #[test]
    fn globs() {
        assert!(glob_match("web-*", "web-1"));
        assert!(glob_match("web-*", "web-"));
        assert!(!glob_match("web-*", "db-1"));
        assert!(glob_match("web-?", "web-1"));
        assert!(!glob_match("web-?", "web-10"));
        assert!(glob_match("*-1*", "web-10"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyybc"));
        assert!(!glob_match("a*b*c", "axxbyyb"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn selections_keep_inventory_order_without_repeats() {
        assert_eq!(names("web-*"), ["web-1", "web-2", "web-10"]);
        assert_eq!(names("web-?"), ["web-1", "web-2"]);
        assert_eq!(names("@eu"), ["web-1", "db-1"]);
        assert_eq!(names("db-1, @web ,web-1"), ["web-1", "web-2", "db-1"]);
        assert_eq!(names("web-10"), ["web-10"]);
    }

    #[test]
    fn unknown_parts_list_what_exists() {
        let i = inv();
        assert_eq!(
            select(&i, "web-1,web-3").unwrap_err().to_string(),
            "hosts.toml has no host named \"web-3\"; hosts: web-1, web-2, db-1, web-10"
        );
        assert_eq!(
            select(&i, "cache-*").unwrap_err().to_string(),
            "\"cache-*\" matches no host in hosts.toml; hosts: web-1, web-2, db-1, web-10"
        );
        assert_eq!(
            select(&i, "@web,@us").unwrap_err().to_string(),
            "no host in hosts.toml has tag @us; tags: @db, @eu, @web"
        );
        assert_eq!(
            select(&i, " , ").unwrap_err(),
            SelectError::Empty { spec: " , ".into() }
        );
    }
}
