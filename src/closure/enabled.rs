//! The units a generation enables, each with a digest of what it runs: activation compares these
//! lists between generations to stop, restart or start exactly the units that changed
//! (`activation/units`, read by `scripts/activate.sh`).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{io, BuildError};
use super::etc::GenFile;

/// Units that run once per boot and never again on a live switch (the boot log copies what stage 2's
/// boot tasks printed; the readiness marker is for the console watcher of a boot).
const BOOT_ONLY: &[&str] = &["pideploy-boot-log.service", "pideploy-ready.service"];

/// Directories (relative to the package set) where packages ship unit files.
pub const PACKAGE_UNIT_DIRS: &[&str] = &["lib/systemd/system", "usr/lib/systemd/system"];

/// `UNIT DIGEST [boot|device=DEVICE]` lines for every unit enabled by a link in `etc` (`systemd/system/*.wants/`,
/// `*.requires/`), sorted. A unit file from a package is found through the package set `sw_phys`
/// (its physical directory); its digest covers the file and the store path that ships it, so a new
/// package version restarts its services even when the unit file is the same.
pub fn unit_list(
    etc: &BTreeMap<String, GenFile>,
    sw_phys: &Path,
    store_phys: &Path,
) -> Result<String, BuildError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (path, f) in etc {
        let Some(rest) = path.strip_prefix("systemd/system/") else {
            continue;
        };
        let Some((dir, unit)) = rest.split_once('/') else {
            continue;
        };
        if !(dir.ends_with(".wants") || dir.ends_with(".requires")) || unit.contains('/') {
            continue;
        }
        let GenFile::Link(target) = f else {
            continue;
        };
        let digest = if let Some(own) = target.strip_prefix("/etc/systemd/system/") {
            match etc.get(&format!("systemd/system/{own}")) {
                Some(GenFile::File { data, .. }) => hex::encode(Sha256::digest(data)),
                _ => {
                    return Err(BuildError::Config(format!(
                        "unit {unit} is enabled but /etc/systemd/system/{own} is not in this generation"
                    )))
                }
            }
        } else {
            package_unit_digest(unit, target, sw_phys, store_phys)?
        };
        // A unit a device wants (wlan0's Wi-Fi units) runs while that device is there: a switch
        // starts it only if the device is present (else the device's arrival starts it).
        let flag = if BOOT_ONLY.contains(&unit) {
            " boot".to_string()
        } else if let Some(dev) = dir
            .strip_suffix(".wants")
            .filter(|d| d.ends_with(".device"))
        {
            format!(" device={dev}")
        } else {
            String::new()
        };
        out.insert(unit.to_string(), format!("{digest}{flag}"));
    }
    Ok(out.iter().map(|(u, d)| format!("{u} {d}\n")).collect())
}

/// Digest of a package's unit file `target` (an absolute path on the Pi, inside a unit directory).
fn package_unit_digest(
    unit: &str,
    target: &str,
    sw_phys: &Path,
    store_phys: &Path,
) -> Result<String, BuildError> {
    let rel = target.trim_start_matches('/');
    if !PACKAGE_UNIT_DIRS.iter().any(|d| {
        rel.strip_prefix(d)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    }) {
        return Err(BuildError::Config(format!(
            "unit {unit} is enabled through {target}, which is not a unit directory of the package set"
        )));
    }
    let link = sw_phys.join(rel);
    let missing = || {
        BuildError::Config(format!(
            "unit {unit} is enabled but no package of this generation ships {target}; add the package that does, or stop enabling {unit}"
        ))
    };
    // The package set holds links into the store; read the file through the local store's root.
    let pointed = fs::read_link(&link).map_err(|_| missing())?;
    let pointed = pointed.to_string_lossy().into_owned();
    let in_store = pointed
        .strip_prefix(pideploy_store::STORE_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(missing)?;
    let file = store_phys.join(in_store);
    let data = fs::read(&file).map_err(io("reading unit file", &file))?;
    let mut h = Sha256::new();
    h.update(pointed.as_bytes());
    h.update([0]);
    h.update(&data);
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn lists_enabled_units_with_digests_and_boot_flags() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let sw = dir.path().join("sw");
        fs::create_dir_all(store.join("aaa-nginx/lib/systemd/system")).unwrap();
        fs::write(
            store.join("aaa-nginx/lib/systemd/system/nginx.service"),
            "[Service]\n",
        )
        .unwrap();
        fs::create_dir_all(sw.join("lib/systemd/system")).unwrap();
        symlink(
            format!(
                "{}/aaa-nginx/lib/systemd/system/nginx.service",
                pideploy_store::STORE_DIR
            ),
            sw.join("lib/systemd/system/nginx.service"),
        )
        .unwrap();
        let mut etc = BTreeMap::new();
        let link = |t: &str| GenFile::Link(t.into());
        etc.insert(
            "systemd/system/multi-user.target.wants/nginx.service".into(),
            link("/lib/systemd/system/nginx.service"),
        );
        etc.insert(
            "systemd/system/pideploy-boot-log.service".into(),
            GenFile::File {
                data: b"x".to_vec(),
                exec: false,
            },
        );
        etc.insert(
            "systemd/system/multi-user.target.wants/pideploy-boot-log.service".into(),
            link("/etc/systemd/system/pideploy-boot-log.service"),
        );
        etc.insert("systemd/system/default.target".into(), link("/x"));
        let list = unit_list(&etc, &sw, &store).unwrap();
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 2, "{list}");
        assert!(lines[0].starts_with("nginx.service ") && !lines[0].ends_with(" boot"));
        assert!(lines[1].starts_with("pideploy-boot-log.service ") && lines[1].ends_with(" boot"));

        // Same file, another package version: another digest (the service restarts).
        fs::create_dir_all(store.join("bbb-nginx/lib/systemd/system")).unwrap();
        fs::write(
            store.join("bbb-nginx/lib/systemd/system/nginx.service"),
            "[Service]\n",
        )
        .unwrap();
        fs::remove_file(sw.join("lib/systemd/system/nginx.service")).unwrap();
        symlink(
            format!(
                "{}/bbb-nginx/lib/systemd/system/nginx.service",
                pideploy_store::STORE_DIR
            ),
            sw.join("lib/systemd/system/nginx.service"),
        )
        .unwrap();
        let again = unit_list(&etc, &sw, &store).unwrap();
        assert_ne!(again.lines().next(), lines.first().copied());

        // Enabled without a unit file: one error naming the unit.
        etc.insert(
            "systemd/system/multi-user.target.wants/gone.service".into(),
            link("/lib/systemd/system/gone.service"),
        );
        let err = unit_list(&etc, &sw, &store).unwrap_err().to_string();
        assert!(err.contains("gone.service"), "{err}");
    }
}
