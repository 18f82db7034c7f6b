//! Parsing and resolving against the real Debian bookworm arm64 indexes apt has on this machine, checked
//! against apt's own solver.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;

use common::{have, run};
use pideploy_debian::packages::{self, Package};
use pideploy_debian::relation;
use pideploy_debian::resolve::{resolve, ResolveOptions};

const HINT: &str =
    "these tests need the arm64 lists: `dpkg --add-architecture arm64 && apt-get update`";

/// (index file name, decompressed text) for every arm64 Packages index.
type IndexTexts = Vec<(String, Vec<u8>)>;

/// The arm64 Packages files apt knows, decompressed by apt-helper (apt stores them lz4-compressed).
fn index_texts() -> Option<&'static Vec<(String, Vec<u8>)>> {
    static TEXTS: OnceLock<Option<IndexTexts>> = OnceLock::new();
    TEXTS
        .get_or_init(|| {
            if !have("apt-get") {
                eprintln!("NOTE: apt-get not found; tests on the real Debian index did not run");
                return None;
            }
            let files = run(
                Command::new("apt-get").args([
                    "indextargets",
                    "--format",
                    "$(FILENAME)",
                    "Architecture: arm64",
                    "Created-By: Packages",
                ]),
                HINT,
            );
            let files: Vec<String> = String::from_utf8(files)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            assert!(
                !files.is_empty(),
                "apt knows no arm64 Packages index; {HINT}"
            );
            Some(
                files
                    .into_iter()
                    .map(|f| {
                        let bytes = run(
                            Command::new("/usr/lib/apt/apt-helper").args(["cat-file", &f]),
                            HINT,
                        );
                        (f, bytes)
                    })
                    .collect(),
            )
        })
        .as_ref()
}

fn indexes() -> Option<&'static Vec<Vec<Package>>> {
    static PARSED: OnceLock<Option<Vec<Vec<Package>>>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            Some(
                index_texts()?
                    .iter()
                    .map(|(f, bytes)| {
                        packages::parse_bytes(bytes).unwrap_or_else(|e| panic!("parsing {f}: {e}"))
                    })
                    .collect(),
            )
        })
        .as_ref()
}

#[test]
fn real_indexes_parse_completely() {
    let (Some(texts), Some(parsed)) = (index_texts(), indexes()) else {
        return;
    };
    for ((file, bytes), pkgs) in texts.iter().zip(parsed) {
        let stanzas = bytes
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"Package: "))
            .count();
        assert_eq!(pkgs.len(), stanzas, "{file}");
        for p in pkgs {
            relation::parse(&p.depends).unwrap_or_else(|e| panic!("{file}: {}: {e}", p.name));
            relation::parse(&p.pre_depends).unwrap();
            p.provided().unwrap();
        }
    }
    let main = parsed
        .iter()
        .flatten()
        .find(|p| p.name == "dropbear-bin")
        .unwrap();
    assert!(main.filename.starts_with("pool/main/d/dropbear/"));
    assert!(main.size > 0);
}

fn names(pkgs: &[Package]) -> BTreeSet<String> {
    pkgs.iter().map(|p| p.name.clone()).collect()
}

#[test]
fn dropbear_bin_closure() {
    let Some(idx) = indexes() else { return };
    let got = resolve(idx, &["dropbear-bin".into()], &ResolveOptions::new("arm64")).unwrap();
    let got_names = names(&got);
    for want in [
        "dropbear-bin",
        "libc6",
        "libcrypt1",
        "libgmp10",
        "libtomcrypt1",
        "libtommath1",
        "zlib1g",
    ] {
        assert!(
            got_names.contains(want),
            "{want} missing from {got_names:?}"
        );
    }
    // The set is closed: every dependency group of every member is met inside it.
    for p in &got {
        assert!(
            p.architecture == "arm64" || p.architecture == "all",
            "{}",
            p.pin()
        );
        for group in p.dependency_groups().unwrap() {
            let met = group.iter().any(|d| {
                got.iter().any(|q| {
                    (q.name == d.name && d.matches_version(&q.version))
                        || q.provided().unwrap().iter().any(|v| v.name == d.name)
                })
            });
            assert!(
                met,
                "{}: `{}` not met",
                p.pin(),
                relation::format_group(&group)
            );
        }
    }
    // The highest libc6 across main and security is chosen.
    let newest = idx
        .iter()
        .flatten()
        .filter(|p| p.name == "libc6" && p.architecture == "arm64")
        .map(|p| p.version.as_str())
        .max_by(|a, b| pideploy_debian::version::compare(a, b))
        .unwrap();
    assert_eq!(
        got.iter().find(|p| p.name == "libc6").unwrap().version,
        newest
    );
}

#[test]
fn matches_apts_own_solution() {
    let Some(idx) = indexes() else { return };
    let roots = ["dropbear-bin", "busybox-static"];
    let got = resolve(idx, &roots.map(String::from), &ResolveOptions::new("arm64")).unwrap();
    assert!(names(&got).contains("busybox-static"));

    // apt leaves out what is already installed on this (amd64) host, so do the same before comparing.
    let installed: BTreeSet<String> = String::from_utf8(run(
        Command::new("dpkg-query").args(["-W", "-f", "${Package}:${Architecture}=${Version}\n"]),
        "dpkg-query must work",
    ))
    .unwrap()
    .lines()
    .map(str::to_string)
    .collect();
    let ours: BTreeSet<String> = got
        .iter()
        .filter(|p| !installed.contains(&format!("{}:{}={}", p.name, p.architecture, p.version)))
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();

    let sim = run(
        Command::new("apt-get")
            .args(["-s", "-q", "install", "--no-install-recommends"])
            .args(roots.map(|r| format!("{r}:arm64"))),
        HINT,
    );
    // "Inst libc6:arm64 (2.36-9+deb12u14 Debian:12.15/oldstable [arm64])". Only arm64 lines: to
    // install a Multi-Arch: same package apt also upgrades the host's amd64 copy to the same
    // version ("Inst zlib1g [1:1.2.13.dfsg-1] (1:1.2.13.dfsg-1+deb12u1 … [amd64])"), which is
    // about this machine, not the Pi's package set.
    let apts: BTreeSet<String> = String::from_utf8(sim)
        .unwrap()
        .lines()
        .filter(|l| l.contains("[arm64])"))
        .filter_map(|l| l.strip_prefix("Inst "))
        .map(|l| {
            let (name, rest) = l.split_once(' ').unwrap();
            let name = name.split(':').next().unwrap();
            // An upgrade names the installed version in brackets first.
            let rest = match rest.strip_prefix('[') {
                Some(r) => r.split_once("] ").map_or(r, |(_, after)| after),
                None => rest,
            };
            let version = rest.trim_start_matches('(').split(' ').next().unwrap();
            format!("{name}={version}")
        })
        .collect();
    assert!(!apts.is_empty());
    assert_eq!(
        ours, apts,
        "our resolution differs from `apt-get -s install`"
    );
}
