//! What changes between two systems: the pure comparison of their manifests (`manifest.json`) and
//! of the files their boot entries are made from.

use std::collections::{BTreeMap, BTreeSet};

use crate::AnswerError;

/// The parts of a toplevel `diff` and `dry-activate` compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemDescription {
    /// `manifest.json` as text (empty when the toplevel has none).
    pub manifest: String,
    /// What makes its boot entry: `boot/entry`, `boot/kernel-params`, `boot/config.txt` and the
    /// targets of the `kernel`/`initrd` links (the entry names files through them, so a new
    /// kernel does not change the entry's text).
    pub boot: String,
}

impl SystemDescription {
    /// Parses the agent's `describe` output (`--- manifest`, `--- entry`, ..., `--- end`).
    pub fn parse(text: &str) -> Result<Self, AnswerError> {
        let mut sections: BTreeMap<&str, String> = BTreeMap::new();
        let mut cur: Option<&str> = None;
        let mut ended = false;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("--- ") {
                if name == "end" {
                    ended = true;
                    break;
                }
                cur = Some(name);
                sections.entry(name).or_default();
            } else if let Some(c) = cur {
                let s = sections.entry(c).or_default();
                s.push_str(line);
                s.push('\n');
            } else {
                return Err(AnswerError::BeforeFirstSection(line.to_string()));
            }
        }
        if !ended {
            return Err(AnswerError::CutShort);
        }
        let get = |k: &str| sections.get(k).cloned().unwrap_or_default();
        Ok(SystemDescription {
            manifest: get("manifest"),
            boot: boot_text(
                &get("entry"),
                &get("kernel-params"),
                &get("config.txt"),
                &get("links"),
            ),
        })
    }
}

/// The comparable text of a boot entry's inputs (the same on both sides of a comparison).
pub fn boot_text(entry: &str, params: &str, config: &str, links: &str) -> String {
    format!("entry\n{entry}params\n{params}config\n{config}links\n{links}")
}

/// A manifest reduced to what is compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Package name → version.
    pub packages: BTreeMap<String, String>,
    /// Files the config declares.
    pub files: BTreeSet<String>,
    /// Services the config declares.
    pub services: BTreeSet<String>,
    /// Kernel version.
    pub kernel: String,
}

impl Manifest {
    /// Reads the fields compared from `manifest.json`'s text.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(ManifestError)?;
        let strings = |k: &str| -> BTreeSet<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let packages = v["packages"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Manifest {
            packages,
            files: strings("files"),
            services: strings("services"),
            kernel: v["kernel"]["version"].as_str().unwrap_or("").to_string(),
        })
    }
}

/// `manifest.json` is not JSON.
#[derive(Debug, thiserror::Error)]
#[error("manifest.json does not parse: {0}")]
pub struct ManifestError(#[source] serde_json::Error);

/// One package's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageChange {
    /// Only in the new system.
    Added(String, String),
    /// Only in the old system.
    Removed(String, String),
    /// In both with different versions: name, old, new.
    Upgraded(String, String, String),
}

/// What differs from `old` to `new`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestDiff {
    /// Packages added, removed or changed, by name.
    pub packages: Vec<PackageChange>,
    /// Declared files added.
    pub files_added: Vec<String>,
    /// Declared files removed.
    pub files_removed: Vec<String>,
    /// Services added.
    pub services_added: Vec<String>,
    /// Services removed.
    pub services_removed: Vec<String>,
    /// Kernel version (old, new) when it changed.
    pub kernel: Option<(String, String)>,
}

impl ManifestDiff {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        *self == ManifestDiff::default()
    }

    /// Human-readable lines, one change each (`+`, `-`, `~`).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((a, b)) = &self.kernel {
            out.push(format!("~ kernel {a} -> {b}"));
        }
        for p in &self.packages {
            out.push(match p {
                PackageChange::Added(n, v) => format!("+ package {n} {v}"),
                PackageChange::Removed(n, v) => format!("- package {n} {v}"),
                PackageChange::Upgraded(n, a, b) => format!("~ package {n} {a} -> {b}"),
            });
        }
        out.extend(self.files_added.iter().map(|f| format!("+ file {f}")));
        out.extend(self.files_removed.iter().map(|f| format!("- file {f}")));
        out.extend(self.services_added.iter().map(|s| format!("+ service {s}")));
        out.extend(
            self.services_removed
                .iter()
                .map(|s| format!("- service {s}")),
        );
        out
    }
}

/// Compares two manifests.
pub fn diff(old: &Manifest, new: &Manifest) -> ManifestDiff {
    let mut packages = Vec::new();
    let names: BTreeSet<&String> = old.packages.keys().chain(new.packages.keys()).collect();
    for n in names {
        match (old.packages.get(n), new.packages.get(n)) {
            (None, Some(v)) => packages.push(PackageChange::Added(n.clone(), v.clone())),
            (Some(v), None) => packages.push(PackageChange::Removed(n.clone(), v.clone())),
            (Some(a), Some(b)) if a != b => {
                packages.push(PackageChange::Upgraded(n.clone(), a.clone(), b.clone()))
            }
            _ => {}
        }
    }
    let minus = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        a.difference(b).cloned().collect()
    };
    ManifestDiff {
        packages,
        files_added: minus(&new.files, &old.files),
        files_removed: minus(&old.files, &new.files),
        services_added: minus(&new.services, &old.services),
        services_removed: minus(&old.services, &new.services),
        kernel: (old.kernel != new.kernel).then(|| (old.kernel.clone(), new.kernel.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"{"format":1,"kernel":{"package":"linux-image-arm64","version":"6.1.1"},
        "packages":{"busybox-static":"1:1.35","dropbear-bin":"2022.83","tree":"2.1.0"},
        "services":["web"],"files":["/etc/a"]}"#;
    const NEW: &str = r#"{"format":1,"kernel":{"package":"linux-image-arm64","version":"6.1.2"},
        "packages":{"busybox-static":"1:1.36","dropbear-bin":"2022.83","htop":"3.2"},
        "services":["db"],"files":["/etc/a","/etc/motd"]}"#;

    #[test]
    fn finds_every_kind_of_change() {
        let d = diff(
            &Manifest::parse(OLD).unwrap(),
            &Manifest::parse(NEW).unwrap(),
        );
        assert_eq!(
            d.packages,
            vec![
                PackageChange::Upgraded("busybox-static".into(), "1:1.35".into(), "1:1.36".into()),
                PackageChange::Added("htop".into(), "3.2".into()),
                PackageChange::Removed("tree".into(), "2.1.0".into()),
            ]
        );
        assert_eq!(d.files_added, vec!["/etc/motd".to_string()]);
        assert!(d.files_removed.is_empty());
        assert_eq!(d.services_added, vec!["db".to_string()]);
        assert_eq!(d.services_removed, vec!["web".to_string()]);
        assert_eq!(d.kernel, Some(("6.1.1".into(), "6.1.2".into())));
        assert_eq!(d.lines().len(), 7);
        assert_eq!(d.lines()[0], "~ kernel 6.1.1 -> 6.1.2");
    }

    #[test]
    fn same_manifest_is_empty_and_bad_json_is_refused() {
        let m = Manifest::parse(OLD).unwrap();
        assert!(diff(&m, &m).is_empty());
        assert!(diff(&m, &m).lines().is_empty());
        assert!(Manifest::parse("{").is_err());
    }

    #[test]
    fn parses_describe_output() {
        let text = "--- manifest\n{}\n--- entry\nvmlinuz kernel/kernel\n--- kernel-params\nquiet\n\
                    --- config.txt\narm_64bit=1\n--- links\nkernel /pideploy/store/x-k\n--- end\n";
        let d = SystemDescription::parse(text).unwrap();
        assert_eq!(d.manifest, "{}\n");
        assert_eq!(
            d.boot,
            boot_text(
                "vmlinuz kernel/kernel\n",
                "quiet\n",
                "arm_64bit=1\n",
                "kernel /pideploy/store/x-k\n"
            )
        );
        assert!(SystemDescription::parse("--- manifest\n{}\n")
            .unwrap_err()
            .to_string()
            .contains("cut short"));
        assert!(SystemDescription::parse("junk\n--- end\n").is_err());
    }
}
