//! Where `[[files]]` may go and with which mode (issue 10, items 3 and 5): never into the read-only
//! system or a directory every user can write, never readable only by some (the store and image
//! are world-readable), never root-owned inside a user's home, never over what activation manages.

use std::path::Path;

use pideploy_config::{ConfigError, HostConfig, ValidationError};

const USER: &str = "[[users]]\nname = \"pi\"\nuid = 1000\n";

fn issues(text: &str) -> Vec<ValidationError> {
    match HostConfig::from_toml_str(text, "pi.toml", Path::new("/cfg")) {
        Err(ConfigError::Invalid { issues, .. }) => issues,
        other => panic!("expected validation errors for\n{text}\ngot {other:?}"),
    }
}

fn file(path: &str, extra: &str) -> String {
    format!("hostname = \"pi\"\n{USER}[[files]]\npath = '{path}'\ncontent = \"x\"\n{extra}")
}

/// The one issue of a config with one bad file: its field and its message.
fn one(text: &str) -> (String, String) {
    let got = issues(text);
    assert_eq!(got.len(), 1, "{got:?}");
    (got[0].path.clone(), got[0].to_string())
}

#[test]
fn files_in_the_immutable_system_are_refused() {
    for path in [
        "/usr/local/bin/tool",
        "/usr",
        "/bin/x",
        "/sbin/x",
        "/lib/firmware/x",
        "/etc/static/motd",
        "/etc/static",
        "/pideploy/var/x",
        "/run/current-system/x",
    ] {
        let (field, shown) = one(&file(path, ""));
        assert_eq!(field, "files[0].path", "{path}");
        assert!(!shown.contains('\n'), "one line: {shown}");
        assert!(shown.contains(path), "names the path: {shown}");
        assert!(
            shown.contains("read-only system") || shown.contains("managed by pideploy"),
            "says why: {shown}"
        );
    }
    // The same holds for secrets.
    let (field, shown) =
        one("hostname = \"pi\"\n[[secrets]]\nsource = \"s\"\ntarget = \"/usr/share/key\"\n");
    assert_eq!(field, "secrets[0].target");
    assert!(shown.contains("read-only system"), "{shown}");
}

#[test]
fn files_in_world_writable_or_kept_directories_are_refused() {
    for path in ["/tmp/x", "/var/tmp/app/x"] {
        let (_, shown) = one(&file(path, ""));
        assert!(shown.contains("every user can write"), "{shown}");
    }
    for path in ["/etc", "/home", "/var/log"] {
        let (_, shown) = one(&file(path, ""));
        assert!(shown.contains("a directory activation keeps"), "{shown}");
    }
}

#[test]
fn neighbours_of_reserved_directories_are_fine() {
    for path in [
        "/usr2/x",
        "/etc/statics",
        "/etc/motd",
        "/var/lib/app/x",
        "/srv/x",
        "/opt/x",
    ] {
        let text = file(path, "");
        HostConfig::from_toml_str(&text, "pi.toml", Path::new("/cfg"))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

#[test]
fn files_other_users_may_not_read_are_refused() {
    for mode in ["0600", "0640", "0400", "0750", "0700"] {
        let (field, shown) = one(&file("/etc/app.conf", &format!("mode = \"{mode}\"\n")));
        assert_eq!(field, "files[0].mode");
        assert!(shown.contains("[[secrets]]"), "{shown}");
        assert!(shown.contains(mode), "{shown}");
    }
    for mode in ["0644", "0444", "0755", "4755"] {
        let text = file("/etc/app.conf", &format!("mode = \"{mode}\"\n"));
        HostConfig::from_toml_str(&text, "pi.toml", Path::new("/cfg"))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
    }
}

#[test]
fn files_in_a_users_home_belong_to_that_user() {
    let (field, shown) = one(&file("/home/pi/.profile", ""));
    assert_eq!(field, "files[0].owner");
    assert!(shown.contains("owner = \"pi\""), "{shown}");
    let ok = file("/home/pi/.profile", "owner = \"pi\"\ngroup = \"pi\"\n");
    HostConfig::from_toml_str(&ok, "pi.toml", Path::new("/cfg")).unwrap();
    // A home of nobody configured is an ordinary root-owned directory.
    HostConfig::from_toml_str(&file("/home/shared/x", ""), "pi.toml", Path::new("/cfg")).unwrap();
}

#[test]
fn what_activation_manages_for_a_user_is_refused() {
    for path in ["/home/pi", "/home/pi/.ssh", "/home/pi/.ssh/authorized_keys"] {
        let (field, shown) = one(&file(path, "owner = \"pi\"\n"));
        assert_eq!(field, "files[0].path");
        assert!(shown.contains("users[0]"), "{shown}");
    }
}
