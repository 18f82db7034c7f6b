//! The rpi5 fixture board (image-fixtures/rpi5-fixture.toml) must be boards/rpi5.toml with only
//! the artifacts' origin changed: its name, and one extra apt source (`fixture`, listed first)
//! serving the fake kernel packages. Anything else that differs would make the image tests check
//! a board nobody ships.

mod common;

use std::fs;

use common::repo;

fn load(path: &str) -> toml::Table {
    let text = fs::read_to_string(repo().join(path)).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture with its allowed differences undone.
fn fixture_as_board() -> toml::Table {
    let mut fixture = load("image-fixtures/rpi5-fixture.toml");
    assert_eq!(fixture["name"].as_str(), Some("rpi5-fixture"));
    fixture.insert("name".into(), "rpi5".into());
    let apt = fixture["apt"].as_array().expect("[[apt]] sources").clone();
    assert_eq!(
        apt.first().and_then(|s| s["name"].as_str()),
        Some("fixture"),
        "the fixture's own source comes first"
    );
    fixture.insert("apt".into(), toml::Value::Array(apt[1..].to_vec()));
    fixture
}

#[test]
fn fixture_board_differs_from_rpi5_only_in_where_artifacts_come_from() {
    let board = load("boards/rpi5.toml");
    let fixture = fixture_as_board();
    for key in board.keys().chain(fixture.keys()) {
        assert_eq!(
            board.get(key),
            fixture.get(key),
            "`{key}` differs between boards/rpi5.toml and image-fixtures/rpi5-fixture.toml; \
             change both (the fixture may only add its `fixture` apt source and rename itself)"
        );
    }
}

#[test]
fn drift_is_noticed() {
    // The comparison above must be able to fail: a fixture without one base package differs.
    let board = load("boards/rpi5.toml");
    let mut fixture = fixture_as_board();
    let boot = fixture["base_packages"].as_array().unwrap().clone();
    fixture.insert(
        "base_packages".into(),
        toml::Value::Array(boot[..boot.len() - 1].to_vec()),
    );
    assert_ne!(board, fixture);
    assert_eq!(board, fixture_as_board());
}
