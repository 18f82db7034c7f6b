//! The `[systemd]` section: unit names with their type, not both enabled and disabled, and absent
//! from the digest when empty.

use pideploy_config::{ConfigError, HostConfig};

fn parse(extra: &str) -> HostConfig {
    try_parse(extra).unwrap()
}

fn try_parse(extra: &str) -> Result<HostConfig, ConfigError> {
    HostConfig::from_toml_str(
        &format!("board = \"qemu-aarch64\"\nhostname = \"pi\"\n{extra}"),
        "pi.toml",
        std::path::Path::new("."),
    )
}

#[test]
fn unit_names_are_checked_and_lists_do_not_overlap() {
    let ok = parse("[systemd]\nenable = [\"nginx.service\", \"serial-getty@ttyUSB0.service\"]\ndisable = [\"fstrim.timer\"]\n");
    assert!(ok.validate().is_ok());
    let bad = try_parse("[systemd]\nenable = [\"nginx\", \"x.service\"]\ndisable = [\"x.service\", \"a b.service\"]\n");
    let Err(ConfigError::Invalid { issues, .. }) = bad else {
        panic!("{bad:?}")
    };
    let errs: Vec<String> = issues.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].contains("systemd.enable[0]") && errs[0].contains("nginx.service"));
    assert!(errs
        .iter()
        .any(|e| e.contains("systemd.disable[0]") && e.contains("also in systemd.enable")));
    assert!(errs.iter().any(|e| e.contains("systemd.disable[1]")));
}

#[test]
fn an_empty_section_keeps_the_digest() {
    assert_eq!(
        parse("").digest().unwrap(),
        parse("[systemd]\nenable = []\n").digest().unwrap()
    );
    assert_ne!(
        parse("").digest().unwrap(),
        parse("[systemd]\nenable = [\"nginx.service\"]\n")
            .digest()
            .unwrap()
    );
}
