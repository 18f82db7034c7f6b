//! Dependency resolution: from a few root package names to the pinned set of packages an image needs.
//!
//! This is deliberately simpler than apt: it follows `Pre-Depends` and `Depends` only (no Recommends,
//! no Conflicts/Breaks checking, no backtracking), which is what building a minimal root filesystem needs,
//! and every choice is deterministic so the same indexes always give the same set.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

use crate::error::DebError;
use crate::packages::Package;
use crate::relation::{Dep, Op};
use crate::version;

/// Settings of one resolution.
#[derive(Clone)]
pub struct ResolveOptions {
    /// The Debian architecture being built for, e.g. `"arm64"`. Packages must be this or `all`.
    pub arch: String,
    /// Package names never selected. A dependency group that names one of them (as any alternative) is
    /// taken as satisfied by whatever else supplies it, so it does not pull anything in.
    pub exclude: BTreeSet<String>,
    /// Only dependencies whose name satisfies this are followed (None = all). Used e.g. to follow a kernel
    /// metapackage to the real linux-image package without pulling kmod/initramfs-tools.
    pub follow: Option<fn(&str) -> bool>,
    /// Versions to keep (package name -> version), e.g. a lock's: such a version is taken where
    /// it is in the indexes and meets the dependency; otherwise the highest that does.
    pub prefer: BTreeMap<String, String>,
}

impl ResolveOptions {
    /// Options for `arch` with nothing excluded and every dependency followed.
    pub fn new(arch: impl Into<String>) -> Self {
        ResolveOptions {
            arch: arch.into(),
            exclude: BTreeSet::new(),
            follow: None,
            prefer: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for ResolveOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveOptions")
            .field("arch", &self.arch)
            .field("exclude", &self.exclude)
            .field("follow", &self.follow.map(|_| "fn"))
            .field("prefer", &self.prefer.len())
            .finish()
    }
}

/// Resolves `roots` (package names, optionally "name=version") against the indexes (given in priority
/// order; later ones may hold newer versions, e.g. security updates: pick the highest version that satisfies).
///
/// Follows Depends and Pre-Depends; for each alternative group: if any alternative is already selected use it,
/// else the first satisfiable alternative; virtual packages via Provides (deterministic choice: prefer a real
/// package of that name, else the provider with the smallest name). Architecture must be `opts.arch` or `all`;
/// `:any` qualifiers accepted. When two indexes hold the same version, the earlier index wins. Roots are
/// selected before any dependency, so a pinned root version takes precedence. Returns the selected packages
/// sorted by name. Unsatisfiable -> error naming the missing package, the constraint and the chain of packages
/// that required it (`dropbear-bin -> libc6 (>= 2.34)`).
pub fn resolve(
    indexes: &[Vec<Package>],
    roots: &[String],
    opts: &ResolveOptions,
) -> Result<Vec<Package>, DebError> {
    let universe = Universe::new(indexes, opts)?;
    let mut state = State {
        universe: &universe,
        opts,
        selected: BTreeMap::new(),
        provided: HashMap::new(),
        queue: VecDeque::new(),
    };
    for root in roots {
        state.add_root(root)?;
    }
    while let Some(name) = state.queue.pop_front() {
        let pkg = state.selected[&name].pkg;
        let groups = pkg.dependency_groups().map_err(|e| DebError::Relation {
            field: format!("{} {}", pkg.name, pkg.version),
            reason: format!("its dependencies cannot be parsed: {e}"),
        })?;
        for group in groups {
            state.satisfy(&group, &name)?;
        }
    }
    Ok(state
        .selected
        .into_values()
        .map(|s| s.pkg.clone())
        .collect())
}

/// The packages of all indexes that are installable on the target architecture, looked up by name.
struct Universe<'a> {
    by_name: HashMap<&'a str, Vec<&'a Package>>,
    /// Virtual name -> (provider, the Provides entry).
    providers: HashMap<String, Vec<(&'a Package, Dep)>>,
    /// Packages seen under other architectures, only to explain failures.
    other_arch: HashMap<&'a str, Vec<&'a Package>>,
    /// Versions to keep where they serve ([`ResolveOptions::prefer`]).
    prefer: BTreeMap<String, String>,
}

impl<'a> Universe<'a> {
    fn new(indexes: &'a [Vec<Package>], opts: &ResolveOptions) -> Result<Self, DebError> {
        let mut u = Universe {
            by_name: HashMap::new(),
            providers: HashMap::new(),
            other_arch: HashMap::new(),
            prefer: opts.prefer.clone(),
        };
        for pkg in indexes.iter().flatten() {
            if pkg.architecture != opts.arch && pkg.architecture != "all" {
                u.other_arch.entry(&pkg.name).or_default().push(pkg);
                continue;
            }
            u.by_name.entry(&pkg.name).or_default().push(pkg);
            for provided in pkg.provided()? {
                u.providers
                    .entry(provided.name.clone())
                    .or_default()
                    .push((pkg, provided));
            }
        }
        Ok(u)
    }

    /// The highest version of a real package named like `dep` that meets it.
    fn best_real(&self, dep: &Dep, arch: &str) -> Option<&'a Package> {
        if !qualifier_ok(dep, arch) {
            return None;
        }
        let meeting = || {
            self.by_name
                .get(dep.name.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|p| dep.matches_version(&p.version))
        };
        let kept = self.prefer.get(dep.name.as_str());
        meeting()
            .find(|p| Some(&p.version) == kept)
            .or_else(|| highest(meeting()))
    }

    /// The providers of virtual `dep` that meet it, as (provider name -> its highest such version).
    fn providers_of(&self, dep: &Dep, arch: &str) -> BTreeMap<&'a str, &'a Package> {
        let mut out: BTreeMap<&str, &Package> = BTreeMap::new();
        if !qualifier_ok(dep, arch) {
            return out;
        }
        for (pkg, provided) in self.providers.get(&dep.name).into_iter().flatten() {
            if provides_satisfies(provided, dep) {
                let slot = out.entry(pkg.name.as_str()).or_insert(pkg);
                let kept = |p: &Package| self.prefer.get(&p.name) == Some(&p.version);
                if !kept(slot)
                    && (kept(pkg) || version::compare(&pkg.version, &slot.version).is_gt())
                {
                    *slot = pkg;
                }
            }
        }
        out
    }

    /// Why nothing satisfies `dep`, for the error message.
    fn explain(&self, dep: &Dep, arch: &str) -> String {
        if !qualifier_ok(dep, arch) {
            return format!(
                "architecture qualifier `:{}` cannot be met on {arch}",
                dep.arch_qualifier.as_deref().unwrap_or("")
            );
        }
        let list = |pkgs: &[&Package]| {
            capped(
                pkgs,
                |p| format!("{} ({})", p.version, p.architecture),
                ", ",
            )
        };
        if let Some(pkgs) = self.by_name.get(dep.name.as_str()) {
            return format!(
                "`{}` exists only in versions that do not match: {}",
                dep.name,
                list(pkgs)
            );
        }
        if let Some(provs) = self.providers.get(&dep.name) {
            let names: BTreeSet<String> = provs
                .iter()
                .map(|(p, d)| format!("{} provides {d}", p.name))
                .collect();
            return format!(
                "`{}` is virtual and no provider matches: {}",
                dep.name,
                capped(&names.into_iter().collect::<Vec<_>>(), String::clone, ", ")
            );
        }
        if let Some(pkgs) = self.other_arch.get(dep.name.as_str()) {
            return format!(
                "`{}` exists only for other architectures than {arch}/all: {}",
                dep.name,
                list(pkgs)
            );
        }
        format!("no package `{}` in the indexes", dep.name)
    }
}

fn qualifier_ok(dep: &Dep, arch: &str) -> bool {
    match dep.arch_qualifier.as_deref() {
        None | Some("any") | Some("native") => true,
        Some(q) => q == arch,
    }
}

/// Unversioned Provides only satisfy unversioned dependencies (policy §7.5); versioned ones are `(= v)`.
fn provides_satisfies(provided: &Dep, dep: &Dep) -> bool {
    match (&dep.constraint, &provided.constraint) {
        (None, _) => true,
        (Some(_), Some((Op::Eq, v))) => dep.matches_version(v),
        (Some(_), _) => false,
    }
}

/// The highest version; on a tie the first seen (the earlier index) wins.
fn highest<'a>(pkgs: impl Iterator<Item = &'a Package>) -> Option<&'a Package> {
    pkgs.fold(None, |best: Option<&Package>, p| match best {
        Some(b) if version::compare(&p.version, &b.version).is_le() => Some(b),
        _ => Some(p),
    })
}

/// How many items an error message lists before "… and N more".
const LISTED: usize = 5;

/// The first [`LISTED`] items, formatted by `show` and joined by `sep`, then how many were
/// left out: an index with 50,000 alternatives must not make a 300 KB error line (nor format
/// all of them).
fn capped<T>(items: &[T], show: impl Fn(&T) -> String, sep: &str) -> String {
    let mut out = items
        .iter()
        .take(LISTED)
        .map(show)
        .collect::<Vec<_>>()
        .join(sep);
    if items.len() > LISTED {
        out.push_str(&format!("{sep}… and {} more", items.len() - LISTED));
    }
    out
}

struct Selected<'a> {
    pkg: &'a Package,
    /// The selected package that needed this one; `None` for a root.
    parent: Option<String>,
}

struct State<'u, 'a> {
    universe: &'u Universe<'a>,
    opts: &'u ResolveOptions,
    selected: BTreeMap<String, Selected<'a>>,
    /// What the selected packages provide, by virtual name: looked up per relation, so
    /// checking a relation does not scan every selected package.
    provided: HashMap<String, Vec<Dep>>,
    queue: VecDeque<String>,
}

impl<'a> State<'_, 'a> {
    /// The names from a root down to the selected package `name`, as `a -> b -> c`, with the
    /// middle of a very long chain left out.
    fn chain_text(&self, name: &str) -> String {
        let mut names = vec![name.to_string()];
        let mut at = name;
        while let Some(parent) = self.selected.get(at).and_then(|s| s.parent.as_deref()) {
            // Parents are selected before their children, so this ends; the bound is a guard.
            if names.len() > self.selected.len() {
                break;
            }
            names.push(parent.to_string());
            at = parent;
        }
        names.reverse();
        if names.len() > 2 * LISTED {
            let left_out = names.len() - 2 * LISTED;
            let tail = names.split_off(names.len() - LISTED);
            names.truncate(LISTED);
            names.push(format!("… {left_out} more …"));
            names.extend(tail);
        }
        names.join(" -> ")
    }

    fn add_root(&mut self, root: &str) -> Result<(), DebError> {
        let (name, constraint) = match root.split_once('=') {
            Some((n, v)) => (n.trim(), Some((Op::Eq, v.trim().to_string()))),
            None => (root.trim(), None),
        };
        let dep = Dep {
            name: name.to_string(),
            arch_qualifier: None,
            constraint,
            arch_restriction: vec![],
        };
        let arch = &self.opts.arch;
        if self.already_satisfied(&dep) {
            return Ok(());
        }
        let chain_text = format!("root `{root}`");
        if let Some(sel) = self.selected.get(name) {
            return Err(DebError::Conflict {
                package: name.to_string(),
                selected: sel.pkg.version.clone(),
                selected_by: self.chain_text(name),
                chain: chain_text,
            });
        }
        let pkg = self
            .universe
            .best_real(&dep, arch)
            .or_else(|| self.universe.providers_of(&dep, arch).into_values().next())
            .ok_or_else(|| DebError::Unsatisfiable {
                missing: name.to_string(),
                chain: chain_text,
                reason: self.universe.explain(&dep, arch),
            })?;
        self.select(pkg, None)
    }

    fn select(&mut self, pkg: &'a Package, parent: Option<String>) -> Result<(), DebError> {
        for p in pkg.provided()? {
            self.provided.entry(p.name.clone()).or_default().push(p);
        }
        self.queue.push_back(pkg.name.clone());
        self.selected
            .insert(pkg.name.clone(), Selected { pkg, parent });
        Ok(())
    }

    fn already_satisfied(&self, dep: &Dep) -> bool {
        if !qualifier_ok(dep, &self.opts.arch) {
            return false;
        }
        if let Some(sel) = self.selected.get(&dep.name) {
            if dep.matches_version(&sel.pkg.version) {
                return true;
            }
        }
        self.provided
            .get(&dep.name)
            .is_some_and(|ps| ps.iter().any(|p| provides_satisfies(p, dep)))
    }

    /// Ensures one alternative of `group`, required by the selected package `by`, is selected.
    fn satisfy(&mut self, group: &[Dep], by: &str) -> Result<(), DebError> {
        let arch = self.opts.arch.clone();
        let applicable: Vec<&Dep> = group.iter().filter(|d| d.applies_to(&arch)).collect();
        if applicable
            .iter()
            .any(|d| self.opts.exclude.contains(&d.name))
        {
            return Ok(());
        }
        let followed: Vec<&Dep> = applicable
            .into_iter()
            .filter(|d| self.opts.follow.is_none_or(|f| f(&d.name)))
            .collect();
        if followed.is_empty() || followed.iter().any(|d| self.already_satisfied(d)) {
            return Ok(());
        }
        let mut blocked_by: Option<&str> = None;
        for dep in &followed {
            let candidates = self
                .universe
                .best_real(dep, &arch)
                .into_iter()
                .chain(self.universe.providers_of(dep, &arch).into_values());
            for pkg in candidates {
                if self.opts.exclude.contains(&pkg.name) {
                    continue;
                }
                if self.selected.contains_key(&pkg.name) {
                    // Another version of this package is already in; it cannot be swapped without backtracking.
                    blocked_by.get_or_insert(&pkg.name);
                    continue;
                }
                return self.select(pkg, Some(by.to_string()));
            }
        }
        let group_text = capped(group, Dep::to_string, " | ");
        let chain_text = format!("{} -> {group_text}", self.chain_text(by));
        if let Some(name) = blocked_by {
            let sel = &self.selected[name];
            return Err(DebError::Conflict {
                package: sel.pkg.name.clone(),
                selected: sel.pkg.version.clone(),
                selected_by: self.chain_text(name),
                chain: chain_text,
            });
        }
        let reason = capped(&followed, |d| self.universe.explain(d, &arch), "; ");
        Err(DebError::Unsatisfiable {
            missing: capped(&followed, |d| d.name.clone(), " | "),
            chain: chain_text,
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
