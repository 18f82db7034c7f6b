//! Which units of a generation run: the packages' own choice (the units their maintainer scripts
//! enable on installation, as on Debian), the config's `[systemd]` enable/disable lists, and the
//! config's `[[services]]` as units of their own. Enabling is what `systemctl enable` does, done at
//! build time into the generation's `/etc/systemd/system` ([`super::units::install_links`]).
//!
//! Every enabled service is checked against the generation before it can reach a Pi: its unit file
//! exists, its `User=`/`Group=` are accounts of this system, and the program of each `ExecStart=`
//! is in the package set. A package whose service could not run is refused at build time with one
//! line, never installed as a silently broken service.

use std::collections::{BTreeMap, BTreeSet};

use pideploy_config::HostConfig;

use super::accounts::Accounts;
use super::error::BuildError;
use super::etc::GenFile;
use super::farm::FarmTree;
use super::units::{self, UnitFile};

/// Directories where packages ship units, in systemd's order of precedence.
const UNIT_DIRS: &[&str] = &["/usr/lib/systemd/system", "/lib/systemd/system"];

/// Units Debian packages enable that a pideploy system leaves off unless `[systemd] enable` names
/// them: e2fsprogs' `e2scrub_reap` removes leftover e2scrub snapshots of LVM volumes, which a
/// pideploy card does not have, and costs about 2 s of CPU on every boot of a Pi-class machine;
/// wpasupplicant's D-Bus service manages no interface until a network manager asks it to, and
/// pideploy runs its own wpa_supplicant on wlan0 (`pideploy-wifi.service`).
pub const OFF_BY_DEFAULT: &[&str] = &["e2scrub_reap.service", "wpa_supplicant.service"];

/// The most units one `Also=` chain may pull in (a crafted package could make a cycle).
const MAX_UNITS: usize = 1000;

/// Adds the config's services and the enabled package units to `etc` (paths under
/// `systemd/system/`).
pub fn add_units(
    etc: &mut BTreeMap<String, GenFile>,
    cfg: &HostConfig,
    package_defaults: &BTreeSet<String>,
    tree: &FarmTree,
    accounts: &Accounts,
) -> Result<(), BuildError> {
    let known = |name: &str| {
        accounts.users.iter().any(|u| u.name == name)
            || accounts.groups.iter().any(|g| g.name == name)
    };
    // The config's own services.
    for (i, s) in cfg.services.iter().enumerate() {
        let unit = format!("{}.service", s.name);
        if find_unit(tree, &unit).is_some() {
            return Err(BuildError::Config(format!(
                "services[{i}].name: a package of this system already ships {unit}; pick another name, or enable the package's unit with [systemd] enable = [\"{unit}\"]"
            )));
        }
        let generated = units::service_unit(s, &known)
            .map_err(|e| BuildError::Config(format!("services[{i}]: {e}")))?;
        let mut parts = vec![generated.service];
        parts.extend(generated.timer);
        // The timer is what a scheduled service is enabled through; a plain service itself.
        let enabled = parts.last().map(|u| u.name.clone()).unwrap_or_default();
        for u in parts {
            let path = format!("/etc/systemd/system/{}", u.name);
            if u.name == enabled {
                let parsed = units::parse_unit(&u.name, &u.text).map_err(BuildError::Internal)?;
                link_install(etc, &u.name, &parsed, &path)?;
            }
            etc.insert(format!("systemd/system/{}", u.name), GenFile::text(u.text));
        }
    }

    // Package units: their defaults, plus what the config asks, minus what it refuses.
    let mut todo: Vec<(String, bool)> = package_defaults
        .iter()
        .map(|u| (u.clone(), false))
        .chain(cfg.systemd.enable.iter().map(|u| (u.clone(), true)))
        .collect();
    let disabled: BTreeSet<&String> = cfg.systemd.disable.iter().collect();
    for (i, u) in cfg.systemd.disable.iter().enumerate() {
        if find_unit(tree, u).is_none() {
            return Err(BuildError::Config(format!(
                "systemd.disable[{i}]: no package of this system ships {u}; remove it from the list"
            )));
        }
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    while let Some((unit, asked)) = todo.pop() {
        if disabled.contains(&unit)
            || (!asked && OFF_BY_DEFAULT.contains(&unit.as_str()))
            || !done.insert(unit.clone())
        {
            continue;
        }
        if done.len() > MAX_UNITS {
            return Err(BuildError::Config(format!(
                "more than {MAX_UNITS} units to enable; a package's Also= lines loop"
            )));
        }
        let Some((path, text)) = find_unit(tree, &unit) else {
            if asked {
                return Err(BuildError::Config(format!(
                    "systemd.enable: no package of this system ships {unit}; add the package that does to packages"
                )));
            }
            // A maintainer script enabling a unit its own package does not have: nothing to do.
            continue;
        };
        let parsed = units::parse_unit(&unit, &text)
            .map_err(|e| BuildError::Config(format!("{path}: {e}")))?;
        check_service(&unit, &path, &parsed, tree, &known)?;
        let also = link_install(etc, &unit, &parsed, &path)?;
        todo.extend(also.into_iter().map(|a| (a, asked)));
    }
    Ok(())
}

/// Adds the links `systemctl enable` would make for `unit`; returns its `Also=` units.
fn link_install(
    etc: &mut BTreeMap<String, GenFile>,
    unit: &str,
    parsed: &UnitFile,
    path: &str,
) -> Result<Vec<String>, BuildError> {
    let plan = units::install_links(unit, parsed, path)
        .map_err(|e| BuildError::Config(format!("{path}: {e}")))?;
    for (rel, target) in plan.links {
        etc.entry(format!("systemd/system/{rel}"))
            .or_insert(GenFile::Link(target));
    }
    Ok(plan.also)
}

/// The unit file for `unit` (a template's file for an instance): its path on the Pi and text.
fn find_unit(tree: &FarmTree, unit: &str) -> Option<(String, String)> {
    let template = unit
        .split_once('@')
        .and_then(|(p, rest)| rest.rsplit_once('.').map(|(_, t)| format!("{p}@.{t}")));
    for name in std::iter::once(unit.to_string()).chain(template) {
        for dir in UNIT_DIRS {
            let path = format!("{dir}/{name}");
            if let Some(bytes) = tree.read_target(&path) {
                if bytes.len() > units::MAX_UNIT_BYTES {
                    return None;
                }
                return Some((path, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    None
}

/// A service that could not run on this generation is refused here.
fn check_service(
    unit: &str,
    path: &str,
    parsed: &UnitFile,
    tree: &FarmTree,
    known: &dyn Fn(&str) -> bool,
) -> Result<(), BuildError> {
    if !unit.ends_with(".service") {
        return Ok(());
    }
    let dynamic = parsed
        .last("Service", "DynamicUser")
        .is_some_and(|v| matches!(v, "yes" | "true" | "1" | "on"));
    for key in ["User", "Group"] {
        if let Some(name) = parsed.last("Service", key) {
            // A specifier or a number is left to systemd; a name must be an account here.
            let plain = !name.contains('%') && !name.chars().all(|c| c.is_ascii_digit());
            if plain && !dynamic && !known(name) {
                return Err(BuildError::Config(format!(
                    "{unit} ({path}) runs as {key}={name}, which no package of this system creates; the package is not supported (README, \"Debian packages\")"
                )));
            }
        }
    }
    for key in ["ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload"] {
        for line in parsed.values("Service", key) {
            let prog = line
                .trim_start_matches(['-', '@', ':', '+', '!'])
                .split_whitespace()
                .next()
                .unwrap_or("");
            if !prog.starts_with('/') || prog.contains('$') || prog.contains('%') {
                continue;
            }
            if tree.read_target(prog).is_none() {
                return Err(BuildError::Config(format!(
                    "{unit} ({path}): {key} runs {prog}, which is not in this system; add the package that ships it"
                )));
            }
        }
    }
    Ok(())
}
