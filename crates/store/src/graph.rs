//! Pure planning over reference graphs: ordering and set difference.

use std::collections::{BTreeMap, BTreeSet};

use crate::{StoreError, StorePath};

/// Topological order of `graph` (path -> its references): dependencies before dependents,
/// and among paths that are ready at the same time the smallest base name first, so the
/// order is the same everywhere.
///
/// A reference to a path that is not a key counts as a path without references. A cycle
/// (including a self-reference) is an error naming the cycle.
pub fn topo_sort(
    graph: &BTreeMap<StorePath, BTreeSet<StorePath>>,
) -> Result<Vec<StorePath>, StoreError> {
    let empty = BTreeSet::new();
    let mut nodes: BTreeSet<&StorePath> = graph.keys().collect();
    nodes.extend(graph.values().flatten());
    let deps = |p: &StorePath| graph.get(p).unwrap_or(&empty);

    let mut pending: BTreeMap<&StorePath, usize> =
        nodes.iter().map(|&p| (p, deps(p).len())).collect();
    let mut dependents: BTreeMap<&StorePath, Vec<&StorePath>> = BTreeMap::new();
    for &p in &nodes {
        for d in deps(p) {
            dependents.entry(d).or_default().push(p);
        }
    }
    let mut ready: BTreeSet<&StorePath> = pending
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(&p, _)| p)
        .collect();
    let mut out = Vec::with_capacity(nodes.len());
    while let Some(p) = ready.pop_first() {
        out.push(p.clone());
        pending.remove(p);
        for &q in dependents.get(p).map(Vec::as_slice).unwrap_or_default() {
            let n = pending
                .get_mut(q)
                .expect("dependent is pending until emitted");
            *n -= 1;
            if *n == 0 {
                ready.insert(q);
            }
        }
    }
    if pending.is_empty() {
        return Ok(out);
    }
    // Every leftover path waits on another leftover one; walking such edges must revisit a
    // path, and the walk from its first visit is a real cycle.
    let mut walk: Vec<&StorePath> = Vec::new();
    let mut at = *pending.keys().next().expect("non-empty");
    loop {
        if let Some(i) = walk.iter().position(|&p| p == at) {
            let mut cycle: Vec<StorePath> = walk[i..].iter().map(|&p| p.clone()).collect();
            cycle.push(at.clone());
            return Err(StoreError::Cycle {
                member: at.clone(),
                cycle,
            });
        }
        walk.push(at);
        at = deps(at)
            .iter()
            .find(|d| pending.contains_key(d))
            .expect("a leftover path has a leftover dependency");
    }
}

/// The elements of `want`, in their order, that are not in `have`.
pub fn missing(have: &BTreeSet<StorePath>, want: &[StorePath]) -> Vec<StorePath> {
    want.iter()
        .filter(|p| !have.contains(*p))
        .cloned()
        .collect()
}
