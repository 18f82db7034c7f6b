//! The files packages ship in /etc (their conffiles: nginx.conf, mosquitto.conf, …) become part of
//! the generated /etc, linked to the package's copy in the store, as dpkg would have unpacked them.
//! What pideploy generates and what the config's `[[files]]` put at the same path take precedence:
//! a conffile is overridden by writing that file in pi.toml.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use pideploy_store::StorePath;

use super::error::{io, BuildError};
use super::etc::GenFile;

/// Adds every file and link under `etc/` of each package to `etc` (path relative to /etc), unless
/// the path is taken: by a generated file, by an earlier package (packages in name order, as the
/// package set decides), by a `[[files]]` target in `overridden`, or because a directory of it is
/// a generated file. The packages' empty directories (`/etc/nginx/conf.d`, `/etc/dbus-1/system.d`:
/// where an admin drops files) go to `empty_dirs`. Returns the paths a package also shipped but did
/// not get, for the build log.
pub fn add_package_etc(
    etc: &mut BTreeMap<String, GenFile>,
    empty_dirs: &mut BTreeSet<String>,
    packages: &BTreeMap<String, StorePath>,
    physical: impl Fn(&StorePath) -> PathBuf,
    overridden: &BTreeSet<String>,
) -> Result<Vec<String>, BuildError> {
    let mut shadowed = Vec::new();
    for (name, sp) in packages {
        let root = physical(sp).join("etc");
        if !root.is_dir() {
            continue;
        }
        let mut found = Vec::new();
        walk(&root, Path::new(""), &mut found, empty_dirs)?;
        for (rel, link) in found {
            let taken = etc.contains_key(&rel)
                || overridden.contains(&format!("/etc/{rel}"))
                || parents(&rel).any(|p| etc.contains_key(p));
            if taken {
                shadowed.push(format!("/etc/{rel} ({name})"));
                continue;
            }
            let f = match link {
                Some(target) => GenFile::Link(target),
                None => GenFile::Link(format!("{}/etc/{rel}", sp.absolute())),
            };
            etc.insert(rel, f);
        }
    }
    Ok(shadowed)
}

/// `a/b/c` → `a`, `a/b`.
pub(super) fn parents(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

/// Files (None) and links (their target, kept verbatim) below `dir`, by path relative to the
/// package's etc, sorted; directories with nothing below them go to `empty`.
fn walk(
    dir: &Path,
    rel: &Path,
    out: &mut Vec<(String, Option<String>)>,
    empty: &mut BTreeSet<String>,
) -> Result<(), BuildError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io("reading", dir))?
        .collect::<Result<_, _>>()
        .map_err(io("reading", dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let r = rel.join(e.file_name());
        let ft = e.file_type().map_err(io("reading", &path))?;
        let text = r.to_string_lossy().into_owned();
        if ft.is_dir() {
            let before = out.len();
            let empty_before = empty.len();
            walk(&path, &r, out, empty)?;
            if out.len() == before && empty.len() == empty_before {
                empty.insert(text);
            }
        } else if ft.is_symlink() {
            let t = fs::read_link(&path).map_err(io("reading", &path))?;
            out.push((text, Some(t.to_string_lossy().into_owned())));
        } else {
            out.push((text, None));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn package_conffiles_join_etc_unless_taken() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let a = StorePath::parse(&format!(
            "{}/{}-nginx-common-1.22",
            pideploy_store::STORE_DIR,
            "a".repeat(32)
        ))
        .unwrap();
        let b = StorePath::parse(&format!(
            "{}/{}-sudo-1.9",
            pideploy_store::STORE_DIR,
            "b".repeat(32)
        ))
        .unwrap();
        let phys = |sp: &StorePath| store.join(sp.base_name());
        fs::create_dir_all(phys(&a).join("etc/nginx/sites-enabled")).unwrap();
        fs::write(phys(&a).join("etc/nginx/nginx.conf"), "x").unwrap();
        fs::write(phys(&a).join("etc/nginx/mime.types"), "x").unwrap();
        symlink(
            "/etc/nginx/sites-available/default",
            phys(&a).join("etc/nginx/sites-enabled/default"),
        )
        .unwrap();
        fs::create_dir_all(phys(&b).join("etc/pam.d")).unwrap();
        fs::create_dir_all(phys(&a).join("etc/nginx/conf.d")).unwrap();
        fs::create_dir_all(phys(&a).join("etc/empty/inner")).unwrap();
        fs::write(phys(&b).join("etc/sudoers"), "pkg").unwrap();
        fs::write(phys(&b).join("etc/pam.d/sudo"), "pkg").unwrap();
        let packages =
            BTreeMap::from([("nginx-common".to_string(), a.clone()), ("sudo".into(), b)]);
        let mut etc = BTreeMap::from([(
            "sudoers".to_string(),
            GenFile::File {
                data: b"ours".to_vec(),
                exec: false,
            },
        )]);
        let overridden = BTreeSet::from(["/etc/nginx/mime.types".to_string()]);
        let mut empty = BTreeSet::new();
        let shadowed = add_package_etc(&mut etc, &mut empty, &packages, phys, &overridden).unwrap();
        assert_eq!(
            empty,
            BTreeSet::from(["empty/inner".to_string(), "nginx/conf.d".to_string()])
        );
        assert_eq!(
            etc["nginx/nginx.conf"],
            GenFile::Link(format!("{}/etc/nginx/nginx.conf", a.absolute()))
        );
        assert_eq!(
            etc["nginx/sites-enabled/default"],
            GenFile::Link("/etc/nginx/sites-available/default".into())
        );
        assert!(!etc.contains_key("nginx/mime.types"), "[[files]] wins");
        assert!(
            matches!(&etc["sudoers"], GenFile::File { data, .. } if data == b"ours"),
            "generated wins"
        );
        assert!(etc.contains_key("pam.d/sudo"));
        assert_eq!(shadowed.len(), 2, "{shadowed:?}");
    }
}
