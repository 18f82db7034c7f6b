//! StorePath parsing, computing and serialisation.

use std::collections::BTreeSet;

use pideploy_store::{Sha256, StoreError, StorePath};
use rstest::rstest;

const H: &str = "0123456789abcdfghijklmnpqrsvwxyz";

#[rstest]
#[case::plain(&format!("{H}-hello"), "hello")]
#[case::absolute(&format!("/pideploy/store/{H}-hello-1.0"), "hello-1.0")]
#[case::all_allowed_chars(&format!("{H}-aZ09+._?=-"), "aZ09+._?=-")]
#[case::dash_first(&format!("{H}--x"), "-x")]
#[case::longest_name(&format!("{H}-{}", "n".repeat(200)), &"n".repeat(200))]
fn parse_accepts(#[case] input: &str, #[case] name: &str) {
    let p = StorePath::parse(input).unwrap();
    assert_eq!(p.hash_part(), H);
    assert_eq!(p.name(), name);
    assert_eq!(p.base_name(), format!("{H}-{name}"));
    assert_eq!(p.absolute(), format!("/pideploy/store/{H}-{name}"));
    assert_eq!(p.to_string(), p.base_name());
}

#[rstest]
#[case::empty("", "expected a 32-character hash")]
#[case::no_name(&format!("{H}-"), "expected a 32-character hash")]
#[case::no_dash(&format!("{H}hello"), "expected a 32-character hash")]
#[case::short_hash("0123456789-hello", "expected a 32-character hash")]
#[case::letter_e(&format!("e{}-hello", &H[1..]), "not in the store's base32 alphabet")]
#[case::uppercase_hash(&format!("A{}-hello", &H[1..]), "not in the store's base32 alphabet")]
#[case::dot_name(&format!("{H}-.hidden"), "starts with '.'")]
#[case::space(&format!("{H}-a b"), "contains ' '")]
#[case::slash_in_base(&format!("{H}-a/b"), "contains '/'")]
#[case::unicode(&format!("{H}-caf\u{e9}"), "contains")]
#[case::too_long(&format!("{H}-{}", "n".repeat(201)), "201 characters")]
#[case::sub_path(&format!("/pideploy/store/{H}-hello/bin/sh"), "inside the store path")]
#[case::trailing_slash(&format!("/pideploy/store/{H}-hello/"), "inside the store path")]
#[case::wrong_dir(&format!("/nix/store/{H}-hello"), "must start with /pideploy/store/")]
#[case::store_dir_prefix(&format!("/pideploy/storex/{H}-hello"), "must start with /pideploy/store/")]
#[case::relative_dir(&format!("store/{H}-hello"), "contains '/'")]
fn parse_rejects(#[case] input: &str, #[case] why: &str) {
    let err = StorePath::parse(input).unwrap_err();
    assert!(matches!(err, StoreError::InvalidPath { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(why), "message `{msg}` should contain `{why}`");
}

/// Golden values computed independently by tests/golden/store_path.py.
#[test]
fn compute_is_stable() {
    let content = Sha256::of(b"pideploy");
    let none = BTreeSet::new();
    let p = StorePath::compute("hello-1.0", &content, &none).unwrap();
    assert_eq!(p.base_name(), "3qnvgkdj1fn4sasii4j5a9q6x1s88z0y-hello-1.0");

    let refs: BTreeSet<StorePath> = [
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-zlib",
        "00000000000000000000000000000000-libc",
    ]
    .iter()
    .map(|s| StorePath::parse(s).unwrap())
    .collect();
    let p = StorePath::compute("hello-1.0", &content, &refs).unwrap();
    assert_eq!(p.base_name(), "2jm37fz03baznscxxqsla4nxsi5g7hnn-hello-1.0");
    assert_eq!(
        StorePath::hash_input("hello-1.0", &content, &refs),
        format!(
            "pideploy-store-path-v1\nname hello-1.0\ncontent sha256:{content}\n\
             ref 00000000000000000000000000000000-libc\n\
             ref zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-zlib\n"
        )
    );
}

#[test]
fn compute_depends_on_every_input_and_checks_the_name() {
    let c = Sha256::of(b"a");
    let none = BTreeSet::new();
    let base = StorePath::compute("x", &c, &none).unwrap();
    assert_ne!(base, StorePath::compute("y", &c, &none).unwrap());
    assert_ne!(
        base,
        StorePath::compute("x", &Sha256::of(b"b"), &none).unwrap()
    );
    let one: BTreeSet<_> = [base.clone()].into();
    assert_ne!(base, StorePath::compute("x", &c, &one).unwrap());
    assert!(matches!(
        StorePath::compute("bad name", &c, &none),
        Err(StoreError::InvalidName { .. })
    ));
    // The result always parses back to itself.
    assert_eq!(StorePath::parse(&base.absolute()).unwrap(), base);
}

#[test]
fn serde_and_order_follow_base_name() {
    let a = StorePath::parse("00000000000000000000000000000000-b").unwrap();
    let b = StorePath::parse(&format!("{H}-a")).unwrap();
    assert!(a < b);
    let json = serde_json::to_string(&vec![a.clone(), b.clone()]).unwrap();
    assert_eq!(json, format!("[\"{a}\",\"{b}\"]"));
    assert_eq!(
        serde_json::from_str::<Vec<StorePath>>(&json).unwrap(),
        vec![a, b]
    );
    assert!(serde_json::from_str::<StorePath>("\"nope\"").is_err());
}
