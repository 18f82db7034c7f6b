//! Resolver behaviour on small hand-written indexes. The real Debian index is used in
//! `tests/resolve_real.rs`.

use super::*;
use crate::packages;

/// A Packages stanza; `extra` holds further `Field: value` lines.
fn stanza(name: &str, version: &str, arch: &str, extra: &str) -> String {
    format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n{extra}Filename: pool/{name}_{version}_{arch}.deb\n\
         Size: 1\nSHA256: {}\n\n",
        "a".repeat(64)
    )
}

fn index(stanzas: &[String]) -> Vec<Package> {
    packages::parse(&stanzas.concat()).unwrap()
}

fn run(
    indexes: &[Vec<Package>],
    roots: &[&str],
    opts: &ResolveOptions,
) -> Result<Vec<String>, DebError> {
    let roots: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
    Ok(resolve(indexes, &roots, opts)?
        .into_iter()
        .map(|p| p.pin())
        .collect())
}

fn arm64() -> ResolveOptions {
    ResolveOptions::new("arm64")
}

fn base() -> Vec<Package> {
    index(&[
        stanza(
            "app",
            "1.0",
            "arm64",
            "Depends: libfoo (>= 2), tool | other-tool\n",
        ),
        stanza("libfoo", "1.0", "arm64", ""),
        stanza("libfoo", "3.0", "arm64", "Pre-Depends: libc6 (>= 2.34)\n"),
        stanza("libc6", "2.36-9+deb12u4", "arm64", ""),
        stanza("libc6", "2.36-9+deb12u4", "amd64", ""),
        stanza("tool", "1", "all", ""),
        stanza("other-tool", "1", "arm64", ""),
        stanza("wants-other", "1", "arm64", "Depends: other-tool\n"),
    ])
}

#[test]
fn first_alternative_and_highest_matching_version_sorted_by_name() {
    let got = run(&[base()], &["app"], &arm64()).unwrap();
    assert_eq!(
        got,
        ["app=1.0", "libc6=2.36-9+deb12u4", "libfoo=3.0", "tool=1"]
    );
}

#[test]
fn an_already_selected_alternative_is_reused() {
    let got = run(&[base()], &["wants-other", "app"], &arm64()).unwrap();
    assert!(got.contains(&"other-tool=1".to_string()), "{got:?}");
    assert!(!got.iter().any(|p| p.starts_with("tool=")), "{got:?}");
    // Also when the alternative is pulled in by a dependency rather than a root.
    let mut idx = base();
    idx.extend(index(&[stanza(
        "top",
        "1",
        "arm64",
        "Depends: wants-other, app\n",
    )]));
    let got = run(&[idx], &["top"], &arm64()).unwrap();
    assert!(
        got.contains(&"other-tool=1".to_string()) && !got.iter().any(|p| p.starts_with("tool="))
    );
}

#[test]
fn highest_version_across_indexes_and_earlier_index_on_ties() {
    let security = index(&[stanza("libc6", "2.36-9+deb12u14", "arm64", "")]);
    let got = run(&[base(), security.clone()], &["app"], &arm64()).unwrap();
    assert!(
        got.contains(&"libc6=2.36-9+deb12u14".to_string()),
        "{got:?}"
    );
    let got = run(&[security, base()], &["app"], &arm64()).unwrap();
    assert!(
        got.contains(&"libc6=2.36-9+deb12u14".to_string()),
        "{got:?}"
    );

    let mut twin = index(&[stanza("tool", "1", "all", "")]);
    twin[0].filename = "pool/second-index.deb".into();
    let got = resolve(&[base(), twin], &["tool".into()], &arm64()).unwrap();
    assert_eq!(got[0].filename, "pool/tool_1_all.deb");
}

#[test]
fn version_constraints_pick_a_matching_version() {
    let mut idx = base();
    idx.extend(index(&[stanza(
        "old-user",
        "1",
        "arm64",
        "Depends: libfoo (<< 2)\n",
    )]));
    let got = run(&[idx], &["old-user"], &arm64()).unwrap();
    assert_eq!(got, ["libfoo=1.0", "old-user=1"]);
}

#[test]
fn virtual_packages_prefer_real_then_smallest_provider_name() {
    let idx = index(&[
        stanza("needs-mta", "1", "arm64", "Depends: mail-transport-agent\n"),
        stanza("postfix", "3", "arm64", "Provides: mail-transport-agent\n"),
        stanza(
            "exim4-daemon-light",
            "4",
            "arm64",
            "Provides: mail-transport-agent\n",
        ),
        stanza("needs-awk", "1", "arm64", "Depends: awk\n"),
        stanza("mawk", "1", "arm64", "Provides: awk\n"),
        stanza("awk", "9", "all", ""),
    ]);
    let got = run(
        std::slice::from_ref(&idx),
        &["needs-mta", "needs-awk"],
        &arm64(),
    )
    .unwrap();
    assert_eq!(
        got,
        [
            "awk=9",
            "exim4-daemon-light=4",
            "needs-awk=1",
            "needs-mta=1"
        ]
    );
    // A provider that is already selected is used even if its name sorts later.
    let got = run(&[idx], &["postfix", "needs-mta"], &arm64()).unwrap();
    assert_eq!(got, ["needs-mta=1", "postfix=3"]);
}

#[test]
fn versioned_dependencies_need_versioned_provides() {
    let idx = index(&[
        stanza("user", "1", "arm64", "Depends: virt (>= 2)\n"),
        stanza("a-unversioned", "1", "arm64", "Provides: virt\n"),
        stanza("b-too-old", "1", "arm64", "Provides: virt (= 1)\n"),
        stanza("c-good", "1", "arm64", "Provides: virt (= 2.5)\n"),
    ]);
    assert_eq!(
        run(&[idx], &["user"], &arm64()).unwrap(),
        ["c-good=1", "user=1"]
    );
}

#[test]
fn architecture_filtering_and_any_qualifier() {
    let idx = index(&[
        stanza(
            "py-user",
            "1",
            "arm64",
            "Depends: python3:any, amd64-only\n",
        ),
        stanza("python3", "3.11", "arm64", ""),
        stanza("amd64-only", "1", "amd64", ""),
    ]);
    let e = run(std::slice::from_ref(&idx), &["py-user"], &arm64())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("py-user -> amd64-only") && e.contains("only for other architectures"),
        "{e}"
    );
    let opts = ResolveOptions {
        exclude: ["amd64-only".to_string()].into(),
        ..arm64()
    };
    assert_eq!(
        run(&[idx], &["py-user"], &opts).unwrap(),
        ["py-user=1", "python3=3.11"]
    );
}

#[test]
fn excluded_names_satisfy_their_group_and_are_never_selected() {
    let idx = index(&[
        stanza(
            "pkg",
            "1",
            "arm64",
            "Depends: debconf (>= 0.5) | debconf-2.0, tool\n",
        ),
        stanza("debconf", "1.5", "all", ""),
        stanza("tool", "1", "all", "Depends: debconf\n"),
    ]);
    let opts = ResolveOptions {
        exclude: ["debconf".to_string()].into(),
        ..arm64()
    };
    assert_eq!(
        run(std::slice::from_ref(&idx), &["pkg"], &opts).unwrap(),
        ["pkg=1", "tool=1"]
    );
    assert_eq!(
        run(&[idx], &["pkg"], &arm64()).unwrap(),
        ["debconf=1.5", "pkg=1", "tool=1"]
    );
}

#[test]
fn follow_filter_limits_which_dependencies_are_followed() {
    let idx = index(&[
        stanza("linux-image-arm64", "6.1.158-1", "arm64", "Depends: linux-image-6.1.0-40-arm64 (= 6.1.158-1)\n"),
        stanza(
            "linux-image-6.1.0-40-arm64",
            "6.1.158-1",
            "arm64",
            "Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool\n",
        ),
        stanza("kmod", "30", "arm64", ""),
        stanza("linux-base", "4.9", "all", ""),
        stanza("initramfs-tools", "0.142", "all", ""),
    ]);
    fn kernel_only(name: &str) -> bool {
        name.starts_with("linux-image-")
    }
    let opts = ResolveOptions {
        follow: Some(kernel_only),
        ..arm64()
    };
    let got = run(std::slice::from_ref(&idx), &["linux-image-arm64"], &opts).unwrap();
    assert_eq!(
        got,
        [
            "linux-image-6.1.0-40-arm64=6.1.158-1",
            "linux-image-arm64=6.1.158-1"
        ]
    );
    assert_eq!(
        run(&[idx], &["linux-image-arm64"], &arm64()).unwrap().len(),
        5
    );
}

#[test]
fn unsatisfiable_names_the_chain_constraint_and_what_exists() {
    let idx = index(&[
        stanza(
            "dropbear-bin",
            "2022.83-1",
            "arm64",
            "Depends: libc6 (>= 2.34)\n",
        ),
        stanza("libc6", "2.31-13", "arm64", ""),
        stanza("top", "1", "arm64", "Depends: middle\n"),
        stanza("middle", "1", "arm64", "Depends: ghost (>= 5) | phantom\n"),
    ]);
    let e = run(std::slice::from_ref(&idx), &["dropbear-bin"], &arm64()).unwrap_err();
    let DebError::Unsatisfiable {
        missing,
        chain,
        reason,
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(missing, "libc6");
    assert_eq!(chain, "dropbear-bin -> libc6 (>= 2.34)");
    assert!(reason.contains("2.31-13"), "{reason}");
    assert!(e.to_string().contains("dropbear-bin -> libc6 (>= 2.34)"));

    let e = run(std::slice::from_ref(&idx), &["top"], &arm64())
        .unwrap_err()
        .to_string();
    assert!(e.contains("top -> middle -> ghost (>= 5) | phantom"), "{e}");
    assert!(
        e.contains("no package `ghost`") && e.contains("no package `phantom`"),
        "{e}"
    );

    let e = run(&[idx], &["nonexistent"], &arm64())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("root `nonexistent`") && e.contains("no package `nonexistent`"),
        "{e}"
    );
}

#[test]
fn pinned_roots_win_and_conflicts_are_reported() {
    let got = run(&[base()], &["libfoo=1.0"], &arm64()).unwrap();
    assert_eq!(got, ["libfoo=1.0"]);
    let e = run(&[base()], &["libfoo=1.0", "app"], &arm64()).unwrap_err();
    assert!(matches!(e, DebError::Conflict { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("app -> libfoo (>= 2)") && msg.contains("1.0"),
        "{msg}"
    );
    let e = run(&[base()], &["libfoo=2.0"], &arm64())
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not match") && e.contains("3.0"), "{e}");
}

#[test]
fn cycles_terminate() {
    let idx = index(&[
        stanza("a", "1", "arm64", "Depends: b\n"),
        stanza("b", "1", "arm64", "Pre-Depends: a\n"),
    ]);
    assert_eq!(run(&[idx], &["a"], &arm64()).unwrap(), ["a=1", "b=1"]);
}

/// A lock's versions are kept where they are offered and still meet the dependency; a package
/// let go of (or one whose kept version no longer serves) gets the highest.
#[test]
fn preferred_versions_are_kept_where_they_serve() {
    let idx = index(&[
        stanza("app", "1.0", "arm64", "Depends: libfoo (>= 2)\n"),
        stanza("app", "2.0", "arm64", "Depends: libfoo (>= 4)\n"),
        stanza("libfoo", "2.0", "arm64", ""),
        stanza("libfoo", "3.0", "arm64", ""),
        stanza("libfoo", "4.0", "arm64", ""),
        stanza("vim-a", "1", "arm64", "Provides: editor\n"),
        stanza("vim-a", "2", "arm64", "Provides: editor\n"),
    ]);
    let mut opts = arm64();
    opts.prefer = [("app", "1.0"), ("libfoo", "2.0"), ("vim-a", "1")]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let kept = run(std::slice::from_ref(&idx), &["app", "editor"], &opts).unwrap();
    assert_eq!(kept, ["app=1.0", "libfoo=2.0", "vim-a=1"]);
    // `app` let go of: its new version needs libfoo >= 4, so the kept 2.0 no longer serves.
    opts.prefer.remove("app");
    let updated = run(std::slice::from_ref(&idx), &["app", "editor"], &opts).unwrap();
    assert_eq!(updated, ["app=2.0", "libfoo=4.0", "vim-a=1"]);
    // A kept version the index no longer offers: the highest.
    opts.prefer.insert("vim-a".into(), "0.9".into());
    let gone = run(&[idx], &["editor"], &opts).unwrap();
    assert_eq!(gone, ["vim-a=2"]);
}
