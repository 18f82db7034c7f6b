//! Pure graph planning: topological order, cycles, missing paths; and PathInfo text.

use std::collections::{BTreeMap, BTreeSet};

use pideploy_store::{missing, topo_sort, PathInfo, Sha256, StoreError, StorePath};

/// A path with a chosen hash character so the tie order is obvious.
fn sp(hash_char: char, name: &str) -> StorePath {
    StorePath::parse(&format!("{}-{name}", hash_char.to_string().repeat(32))).unwrap()
}

fn graph(edges: &[(&StorePath, &[&StorePath])]) -> BTreeMap<StorePath, BTreeSet<StorePath>> {
    edges
        .iter()
        .map(|(p, deps)| ((*p).clone(), deps.iter().map(|d| (*d).clone()).collect()))
        .collect()
}

fn names(v: &[StorePath]) -> Vec<&str> {
    v.iter().map(|p| p.name()).collect()
}

#[test]
fn topo_order_golden() {
    let libc = sp('9', "libc");
    let zlib = sp('5', "zlib");
    let ssl = sp('1', "ssl");
    let curl = sp('0', "curl");
    let etc = sp('z', "etc");
    let top = sp('a', "system");
    let g = graph(&[
        (&top, &[&curl, &etc]),
        (&curl, &[&ssl, &zlib]),
        (&ssl, &[&libc]),
        (&zlib, &[&libc]),
        (&libc, &[]),
        (&etc, &[]),
    ]);
    let order = topo_sort(&g).unwrap();
    // Ready first: libc(9) and etc(z) -> 9 wins; then ssl(1), zlib(5), etc(z) ready -> 1, 5, then curl(0) < z.
    assert_eq!(
        names(&order),
        ["libc", "ssl", "zlib", "curl", "etc", "system"]
    );
}

#[test]
fn references_outside_the_keys_are_leaves() {
    let a = sp('a', "a");
    let b = sp('b', "b");
    let order = topo_sort(&graph(&[(&a, &[&b])])).unwrap();
    assert_eq!(order, vec![b, a]);
}

#[test]
fn cycle_is_reported_with_its_members() {
    let a = sp('a', "a");
    let b = sp('b', "b");
    let c = sp('c', "c");
    let d = sp('d', "d");
    let ok = sp('0', "ok");
    let g = graph(&[
        (&a, &[&b, &ok]),
        (&b, &[&c]),
        (&c, &[&a]),
        (&d, &[&a]),
        (&ok, &[]),
    ]);
    let err = topo_sort(&g).unwrap_err();
    let StoreError::Cycle { member, cycle } = &err else {
        panic!("expected a cycle, got {err}");
    };
    assert_eq!(cycle.first(), Some(member));
    assert_eq!(cycle.last(), Some(member));
    let inner: BTreeSet<_> = cycle.iter().cloned().collect();
    assert_eq!(inner, [a.clone(), b.clone(), c.clone()].into());
    assert!(err.to_string().contains(&a.base_name()), "{err}");

    let self_loop = topo_sort(&graph(&[(&a, &[&a])])).unwrap_err();
    assert!(matches!(self_loop, StoreError::Cycle { .. }));
}

#[test]
fn missing_keeps_want_order() {
    let a = sp('a', "a");
    let b = sp('b', "b");
    let c = sp('c', "c");
    let have: BTreeSet<_> = [b.clone()].into();
    assert_eq!(
        missing(&have, &[c.clone(), b.clone(), a.clone()]),
        vec![c, a]
    );
    assert!(missing(&have, &[b]).is_empty());
}

#[test]
fn path_info_text_round_trip() {
    let info = PathInfo {
        path: sp('x', "top"),
        references: [sp('b', "b"), sp('a', "a")].into(),
        nar_sha256: Sha256::of(b"n"),
        nar_size: 1234,
    };
    let text = info.to_text();
    assert_eq!(
        text,
        format!(
            "path {}\nnar-sha256 {}\nnar-size 1234\nref {}\nref {}\n",
            info.path,
            Sha256::of(b"n"),
            sp('a', "a"),
            sp('b', "b")
        )
    );
    assert_eq!(PathInfo::from_text(&text).unwrap(), info);
}

#[test]
fn path_info_rejects_non_canonical_text() {
    let good = PathInfo {
        path: sp('x', "top"),
        references: [sp('b', "b"), sp('a', "a")].into(),
        nar_sha256: Sha256::of(b"n"),
        nar_size: 7,
    }
    .to_text();
    let lines: Vec<&str> = good.lines().collect();
    let bad = [
        good.trim_end().to_string(),                           // no final newline
        format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2]), // order
        good.replace("nar-size 7", "nar-size 07"),             // non-canonical number
        good.replace("nar-size 7", "nar-size x"),              // not a number
        format!(
            "{}\n{}\n{}\n{}\n{}\n",
            lines[0], lines[1], lines[2], lines[4], lines[3]
        ), // unsorted refs
        format!("{good}{}\n", lines[4]),                       // duplicate ref
        format!("{good}extra\n"),                              // unknown line
        format!("{}\n{}\n", lines[0], lines[1]),               // missing size
        good.replace("nar-sha256 ", "nar-sha256 X"),           // bad digest
    ];
    for text in bad {
        assert!(PathInfo::from_text(&text).is_err(), "accepted:\n{text}");
    }
}
