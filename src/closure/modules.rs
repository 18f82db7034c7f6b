//! Kernel module dependency order, computed from the modules themselves.
//!
//! Debian's kernel packages ship no `modules.dep`, and running `depmod` would need kmod on the build
//! machine. Every `.ko` carries its dependencies in the `.modinfo` section as a NUL-terminated
//! `depends=a,b` string, so reading that string is enough to order the loads.

use std::collections::{BTreeMap, BTreeSet};

/// Module names use '_' and '-' interchangeably; the kernel normalises to '_'.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The `depends=` list of a module image (empty when it has none).
pub fn depends_of(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &ko[start + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(normalize)
        .collect()
}

/// Load order for `wanted`: every module after the modules it depends on, ties by the order asked.
///
/// `deps` maps every available module (normalised name) to its dependencies. A wanted module that is not
/// available is an error naming it (the caller lists the board's module list as the place to fix it).
pub fn load_order(
    wanted: &[String],
    deps: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    let mut visiting = BTreeSet::new();
    for w in wanted {
        visit(
            &normalize(w),
            deps,
            &mut done,
            &mut visiting,
            &mut order,
            None,
        )?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    deps: &BTreeMap<String, Vec<String>>,
    done: &mut BTreeSet<String>,
    visiting: &mut BTreeSet<String>,
    order: &mut Vec<String>,
    needed_by: Option<&str>,
) -> Result<(), String> {
    if done.contains(name) {
        return Ok(());
    }
    let Some(ds) = deps.get(name) else {
        return Err(match needed_by {
            Some(p) => format!("kernel module {name} (needed by {p}) is not in the kernel package"),
            None => format!(
                "kernel module {name} is not in the kernel package (built in, or misspelt?)"
            ),
        });
    };
    if !visiting.insert(name.to_string()) {
        return Err(format!("kernel module dependency cycle through {name}"));
    }
    for d in ds {
        visit(d, deps, done, visiting, order, Some(name))?;
    }
    visiting.remove(name);
    done.insert(name.to_string());
    order.push(name.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_depends_from_modinfo() {
        let ko = b"\x7fELF....\0license=GPL\0depends=virtio_ring,net-failover\0vermagic=6.1\0";
        assert_eq!(depends_of(ko), vec!["virtio_ring", "net_failover"]);
        assert!(depends_of(b"\0depends=\0name=x\0").is_empty());
        assert!(depends_of(b"no modinfo").is_empty());
    }

    #[test]
    fn orders_dependencies_first() {
        let mut deps = BTreeMap::new();
        deps.insert(
            "ext4".to_string(),
            vec!["jbd2".into(), "mbcache".into(), "crc16".into()],
        );
        deps.insert("jbd2".to_string(), vec![]);
        deps.insert("mbcache".to_string(), vec![]);
        deps.insert("crc16".to_string(), vec![]);
        deps.insert("virtio_net".to_string(), vec!["net_failover".into()]);
        deps.insert("net_failover".to_string(), vec!["failover".into()]);
        deps.insert("failover".to_string(), vec![]);
        let order = load_order(&["virtio-net".into(), "ext4".into()], &deps).unwrap();
        assert_eq!(
            order,
            [
                "failover",
                "net_failover",
                "virtio_net",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4"
            ]
        );
        let err = load_order(&["nope".into()], &deps).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn cycle_is_reported() {
        let mut deps = BTreeMap::new();
        deps.insert("a".to_string(), vec!["b".into()]);
        deps.insert("b".to_string(), vec!["a".into()]);
        assert!(load_order(&["a".into()], &deps)
            .unwrap_err()
            .contains("cycle"));
    }
}
