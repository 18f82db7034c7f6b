//! Garbage collection: the target's (agent op `gc`, answer parsed here) and the local store's.
//!
//! # What the local store keeps
//!
//! The local store is a build cache plus the systems the user may still deploy or inspect. Its GC
//! roots are the entries of `<store>/var/gcroots/`: each is a symlink whose target is a store path
//! (`/pideploy/store/<base>`). `build`, `image`, `switch`, `boot`, `test` and `dry-activate`
//! record the toplevel they built as `gcroots/<hostname>-<board>`, replacing the previous one of
//! that host and board: the latest build of each host stays (so `pideploy diff` and a repeated
//! deploy need no rebuild of it), older ones become garbage. Users may add their own links there
//! to keep anything else. Everything not reachable from a root through registered references is
//! removed. The memo of unpacked packages (`var/db/memo`) is not a root: it only names paths that
//! are still valid, so a later build simply unpacks again what was collected. Generations on
//! targets are not roots either: a target keeps its own closures.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pideploy_store::{LocalStore, StorePath};

use crate::AnswerError;

/// Which generations a target's gc removes (besides the default and the running one, never removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcPolicy {
    /// Keep the newest N generations.
    Keep(u32),
    /// Remove generations made more than this many seconds ago.
    OlderThan(u64),
}

/// Parses an age such as `30d`, `12h`, `90m`, `45s` or `2w` into seconds.
pub fn parse_age(s: &str) -> Result<u64, AgeError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| AgeError::NotAnAge(s.to_string()))?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(AgeError::UnknownUnit {
                age: s.to_string(),
                unit: unit.to_string(),
            })
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| AgeError::TooLarge(s.to_string()))
}

/// Why an age (`--older-than`) does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgeError {
    /// No number in front.
    #[error("{0:?} is not an age: write a number and a unit, e.g. 30d")]
    NotAnAge(String),
    /// A unit other than s, m, h, d, w.
    #[error("{age:?}: unknown unit {unit:?}; use s, m, h, d or w")]
    UnknownUnit {
        /// The age given.
        age: String,
        /// Its unit.
        unit: String,
    },
    /// More seconds than fit in 64 bits.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// What a target's gc removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Generation numbers removed.
    pub generations: Vec<u32>,
    /// Store paths removed (base names) with the bytes each took.
    pub paths: Vec<(String, u64)>,
    /// Total bytes freed.
    pub freed: u64,
}

impl GcReport {
    /// Parses the agent's `gc` answer; one without its `end` line was cut short.
    pub fn parse(text: &str) -> Result<Self, AnswerError> {
        let mut r = GcReport::default();
        let mut ended = false;
        for line in text.lines() {
            let mut w = line.split(' ');
            let bad = || AnswerError::Unexpected {
                what: "gc",
                line: line.to_string(),
            };
            match w.next() {
                Some("removed-generation") => r
                    .generations
                    .push(w.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?),
                Some("removed-path") => {
                    let base = w.next().ok_or_else(bad)?.to_string();
                    let n = w.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                    r.paths.push((base, n));
                }
                Some("freed") => r.freed = w.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?,
                Some("end") => ended = true,
                _ => return Err(bad()),
            }
        }
        if !ended {
            return Err(AnswerError::CutShort);
        }
        Ok(r)
    }
}

/// The paths of a reference graph not reachable from `roots` (pure).
pub fn unreachable(
    graph: &BTreeMap<StorePath, BTreeSet<StorePath>>,
    roots: &[StorePath],
) -> BTreeSet<StorePath> {
    let mut live = BTreeSet::new();
    let mut todo: Vec<&StorePath> = roots.iter().collect();
    while let Some(p) = todo.pop() {
        if live.insert(p.clone()) {
            if let Some(refs) = graph.get(p) {
                todo.extend(refs.iter());
            }
        }
    }
    graph
        .keys()
        .filter(|p| !live.contains(*p))
        .cloned()
        .collect()
}

fn roots_dir(store: &LocalStore) -> PathBuf {
    store.root().join("var/gcroots")
}

/// Records `top` as the GC root `name` of the local store (symlink, temp + rename).
pub fn record_root(store: &LocalStore, name: &str, top: &StorePath) -> io::Result<()> {
    let dir = roots_dir(store);
    fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(top.absolute(), &tmp)?;
    fs::rename(&tmp, dir.join(name))
}

/// The local store's GC roots (see the module documentation); entries naming no store path are skipped.
pub fn local_roots(store: &LocalStore) -> io::Result<Vec<StorePath>> {
    let dir = roots_dir(store);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if let Ok(t) = fs::read_link(e.path()) {
            if let Ok(p) = StorePath::parse(&t.to_string_lossy()) {
                if store.is_valid(&p) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What the local gc would remove: every valid path not reachable from the roots.
pub fn local_plan(
    store: &LocalStore,
) -> Result<Vec<StorePath>, Box<dyn std::error::Error + Send + Sync>> {
    let mut graph = BTreeMap::new();
    for p in store.list_valid()? {
        let refs = store.query(&p)?.references;
        graph.insert(p, refs);
    }
    let roots = local_roots(store)?;
    Ok(unreachable(&graph, &roots).into_iter().collect())
}

/// Size of a tree on disk (allocated blocks), for the "freed" count.
pub fn disk_usage(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    let mut n = m.blocks() * 512;
    if m.is_dir() {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                n += disk_usage(&e.path());
            }
        }
    }
    n
}

/// Removes `dead` (from [`local_plan`]) in an order that deletes dependents first, so the store's
/// delete never refuses a path a dead path still references. Returns bytes freed.
pub fn local_collect(
    store: &LocalStore,
    dead: &[StorePath],
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    // closure() orders dependencies first; reversed, every dependent goes before what it uses.
    let ordered = store.closure(dead)?;
    let dead_set: BTreeSet<&StorePath> = dead.iter().collect();
    store.forget_kept(dead)?;
    let mut freed = 0;
    for p in ordered.iter().rev().filter(|p| dead_set.contains(p)) {
        freed += disk_usage(&store.physical(p));
        store.delete(p)?;
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(c: char, name: &str) -> StorePath {
        StorePath::parse(&format!("{}-{name}", c.to_string().repeat(32))).unwrap()
    }

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("30d"), Ok(30 * 86_400));
        assert_eq!(parse_age("12h"), Ok(12 * 3600));
        assert_eq!(parse_age("2w"), Ok(14 * 86_400));
        assert_eq!(parse_age("7"), Ok(7 * 86_400));
        assert!(parse_age("d").is_err());
        assert!(parse_age("3y")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
    }

    #[test]
    fn report_parses_and_needs_end() {
        let r = GcReport::parse(
            "removed-generation 1\nremoved-generation 2\nremoved-path aaa-x 4096\nfreed 4096\nend\n",
        )
        .unwrap();
        assert_eq!(r.generations, vec![1, 2]);
        assert_eq!(r.paths, vec![("aaa-x".to_string(), 4096)]);
        assert_eq!(r.freed, 4096);
        assert!(GcReport::parse("freed 1\n")
            .unwrap_err()
            .to_string()
            .contains("cut short"));
        assert!(GcReport::parse("removed-path x\nend\n").is_err());
    }

    #[test]
    fn unreachable_follows_references() {
        let (a, b, c, d) = (sp('a', "a"), sp('b', "b"), sp('c', "c"), sp('d', "d"));
        let mut g = BTreeMap::new();
        g.insert(a.clone(), BTreeSet::from([b.clone()]));
        g.insert(b.clone(), BTreeSet::new());
        g.insert(c.clone(), BTreeSet::from([b.clone(), d.clone()]));
        g.insert(d.clone(), BTreeSet::new());
        assert_eq!(
            unreachable(&g, std::slice::from_ref(&a)),
            BTreeSet::from([c.clone(), d])
        );
        assert!(unreachable(&g, &[a, c]).is_empty());
        assert_eq!(unreachable(&g, &[]).len(), 4);
    }
}
