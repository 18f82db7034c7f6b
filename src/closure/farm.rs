//! The target's file system as a generation's package set and the local store show it, read at
//! build time (libraries for the linker cache, unit files to enable): `/usr`, `/lib`, `/bin` and
//! `/sbin` are the package set's directories, `/pideploy/store` the local store; links are
//! followed as the target would follow them, and nothing outside those two trees is ever read.

use std::fs;
use std::path::PathBuf;

use pideploy_store::{LocalStore, StorePath, STORE_DIR};

use super::ldcache::{DirEntry, EntryKind, LibTree};

/// The most links followed to reach a file (the kernel's own limit is 40).
const MAX_HOPS: usize = 40;

/// A generation's file system, for reading at build time.
pub struct FarmTree {
    sw: PathBuf,
    store: PathBuf,
}

impl FarmTree {
    /// The tree of the package set `sw` in `store`.
    pub fn new(store: &LocalStore, sw: &StorePath) -> FarmTree {
        let sw_phys = store.physical(sw);
        let store_phys = sw_phys.parent().unwrap_or(&sw_phys).to_path_buf();
        FarmTree {
            sw: sw_phys,
            store: store_phys,
        }
    }

    /// The local file of a target path, without following its last component.
    pub fn local(&self, target: &str) -> Option<PathBuf> {
        if target.split('/').any(|c| c == "..") {
            return None;
        }
        if let Some(rest) = target
            .strip_prefix(STORE_DIR)
            .and_then(|r| r.strip_prefix('/'))
        {
            return Some(self.store.join(rest));
        }
        let rel = target.strip_prefix('/')?;
        let top = rel.split('/').next()?;
        ["usr", "lib", "bin", "sbin"]
            .contains(&top)
            .then(|| self.sw.join(rel))
    }

    /// Follows the links of `target` (its last component, and every link it reaches) to a regular
    /// file and reads it.
    pub fn read_target(&self, target: &str) -> Option<Vec<u8>> {
        let mut t = target.to_string();
        for _ in 0..MAX_HOPS {
            let local = self.local(&t)?;
            let meta = fs::symlink_metadata(&local).ok()?;
            if meta.file_type().is_symlink() {
                let next = fs::read_link(&local).ok()?.to_string_lossy().into_owned();
                t = if next.starts_with('/') {
                    next
                } else {
                    let dir = t.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    normalize(&format!("{dir}/{next}"))?
                };
                continue;
            }
            return meta.is_file().then(|| fs::read(&local).ok()).flatten();
        }
        None
    }
}

/// `/a/./b/../c` → `/a/c`; None when `..` climbs above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

impl LibTree for FarmTree {
    fn dir_id(&mut self, dir: &str) -> Result<Option<String>, String> {
        // The package set's directories are real directories; /lib and /usr/lib are distinct.
        Ok(self
            .local(dir)
            .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .map(|p| p.to_string_lossy().into_owned()))
    }

    fn entries(&mut self, dir: &str) -> Result<Vec<DirEntry>, String> {
        let Some(local) = self.local(dir) else {
            return Ok(Vec::new());
        };
        let rd = fs::read_dir(&local).map_err(|e| format!("reading {}: {e}", local.display()))?;
        let mut out = Vec::new();
        for e in rd.filter_map(Result::ok) {
            let Ok(ft) = e.file_type() else { continue };
            let kind = if ft.is_symlink() {
                EntryKind::Symlink
            } else if ft.is_file() {
                EntryKind::File
            } else {
                continue;
            };
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&mut self, dir: &str, name: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.read_target(&format!("{}/{name}", dir.trim_end_matches('/'))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_two_trees() {
        let t = FarmTree {
            sw: PathBuf::from("/sw"),
            store: PathBuf::from("/st"),
        };
        assert_eq!(t.local("/usr/lib/x"), Some(PathBuf::from("/sw/usr/lib/x")));
        assert_eq!(
            t.local(&format!("{STORE_DIR}/abc-x/lib")),
            Some(PathBuf::from("/st/abc-x/lib"))
        );
        assert_eq!(t.local("/etc/passwd"), None);
        assert_eq!(t.local("/usr/../etc/passwd"), None);
        assert_eq!(normalize("/a/./b/../c"), Some("/a/c".into()));
        assert_eq!(normalize("/../x"), None);
    }
}
