//! Pure planning: assigns clusters to every directory and file and encodes the directories.
//!
//! Allocation is depth-first in name order: a directory's own clusters, then each child in
//! turn (a file's data, or a subdirectory with everything below it). The root therefore lands
//! on cluster 2 and every file and directory is one contiguous run of clusters.

use std::borrow::Cow;

use crate::builder::{Dir, Node};
use crate::dir::{short_entry, ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_VOLUME_ID, DOT, DOTDOT, ENTRY};
use crate::names::{lfn_checksum, lfn_entries, lfn_entry_count, strict_short_name, ShortNames};
use crate::FatError;

/// FAT limits a directory to 65536 entries (2 MiB).
const MAX_DIR_ENTRIES: u64 = 65536;

/// A contiguous run of clusters and the bytes that go at its start.
pub(crate) struct Extent<'a> {
    pub first: u32,
    pub clusters: u32,
    pub bytes: Cow<'a, [u8]>,
}

/// Where everything goes.
pub(crate) struct Layout<'a> {
    /// Sorted by first cluster.
    pub extents: Vec<Extent<'a>>,
    /// The first cluster not used by anything.
    pub next_free: u32,
}

/// Directory entries `dir` needs, counting `.`/`..` (or the label in the root) and LFN runs.
fn entry_count(dir: &Dir, is_root: bool, has_label: bool) -> u64 {
    let own = match (is_root, has_label) {
        (false, _) => 2,
        (true, true) => 1,
        (true, false) => 0,
    };
    own + dir
        .children
        .values()
        .map(|c| {
            let lfn = if strict_short_name(&c.name).is_some() {
                0
            } else {
                lfn_entry_count(&c.name) as u64
            };
            1 + lfn
        })
        .sum::<u64>()
}

fn clusters_for(bytes: u64, cluster_bytes: u64) -> u64 {
    bytes.div_ceil(cluster_bytes)
}

/// Clusters the whole tree occupies, without building anything.
pub(crate) fn clusters_needed(root: &Dir, cluster_bytes: u64, has_label: bool) -> u64 {
    fn walk(dir: &Dir, cb: u64, is_root: bool, has_label: bool) -> u64 {
        let own = clusters_for(entry_count(dir, is_root, has_label) * ENTRY as u64, cb).max(1);
        own + dir
            .children
            .values()
            .map(|c| match &c.node {
                Node::File(data) => clusters_for(data.len() as u64, cb),
                Node::Dir(d) => walk(d, cb, false, false),
            })
            .sum::<u64>()
    }
    walk(root, cluster_bytes, true, has_label)
}

/// Plans the volume; the caller has checked that `clusters_needed` fits.
pub(crate) fn plan(
    root: &Dir,
    cluster_bytes: u64,
    label: Option<[u8; 11]>,
) -> Result<Layout<'_>, FatError> {
    let mut planner = Planner {
        cluster_bytes,
        next: crate::bpb::ROOT_CLUSTER,
        extents: Vec::new(),
    };
    planner.dir(root, "", None, label)?;
    let mut extents = planner.extents;
    extents.sort_by_key(|e| e.first);
    Ok(Layout {
        extents,
        next_free: planner.next,
    })
}

struct Planner<'a> {
    cluster_bytes: u64,
    next: u32,
    extents: Vec<Extent<'a>>,
}

impl<'a> Planner<'a> {
    /// Reserves clusters for `bytes` (at least `min` clusters); returns (first, count), with
    /// first = 0 for nothing, as FAT stores empty files.
    fn alloc(&mut self, bytes: u64, min: u64) -> (u32, u32) {
        let count = clusters_for(bytes, self.cluster_bytes).max(min);
        if count == 0 {
            return (0, 0);
        }
        let count = u32::try_from(count).expect("checked against the cluster count");
        let first = self.next;
        self.next += count;
        (first, count)
    }

    /// Places a directory (whose parent is at `parent`, None for the root) and all below it.
    fn dir(
        &mut self,
        dir: &'a Dir,
        path: &str,
        parent: Option<u32>,
        label: Option<[u8; 11]>,
    ) -> Result<u32, FatError> {
        let is_root = parent.is_none();
        let entries = entry_count(dir, is_root, label.is_some());
        if entries > MAX_DIR_ENTRIES {
            return Err(FatError::DirectoryTooLarge {
                path: path.to_string(),
                entries,
            });
        }
        let (first, count) = self.alloc(entries * ENTRY as u64, 1);

        // Strict 8.3 names are claimed first so no alias can take one of them.
        let mut shorts = ShortNames::default();
        let strict: Vec<Option<[u8; 11]>> = dir
            .children
            .values()
            .map(|c| strict_short_name(&c.name))
            .collect();
        strict.iter().flatten().for_each(|s| shorts.reserve(*s));

        let mut buf = Vec::with_capacity(count as usize * self.cluster_bytes as usize);
        if let Some(parent) = parent {
            buf.extend_from_slice(&short_entry(&DOT, ATTR_DIRECTORY, first, 0));
            buf.extend_from_slice(&short_entry(&DOTDOT, ATTR_DIRECTORY, parent, 0));
        } else if let Some(label) = label {
            buf.extend_from_slice(&short_entry(&label, ATTR_VOLUME_ID, 0, 0));
        }
        // FAT32 convention: a `..` that points at the root says cluster 0.
        let as_parent = if is_root { 0 } else { first };
        for (child, strict) in dir.children.values().zip(strict) {
            let child_path = if path.is_empty() {
                child.name.clone()
            } else {
                format!("{path}/{}", child.name)
            };
            let (attr, cluster, size) = match &child.node {
                Node::File(data) => {
                    let (cluster, clusters) = self.alloc(data.len() as u64, 0);
                    if clusters > 0 {
                        self.extents.push(Extent {
                            first: cluster,
                            clusters,
                            bytes: Cow::Borrowed(data),
                        });
                    }
                    let size = u32::try_from(data.len()).expect("checked by add_file");
                    (ATTR_ARCHIVE, cluster, size)
                }
                Node::Dir(d) => {
                    let cluster = self.dir(d, &child_path, Some(as_parent), None)?;
                    (ATTR_DIRECTORY, cluster, 0)
                }
            };
            let short = match strict {
                Some(s) => s,
                None => {
                    let s = shorts.alias(&child.name);
                    for e in lfn_entries(&child.name, lfn_checksum(&s)) {
                        buf.extend_from_slice(&e);
                    }
                    s
                }
            };
            buf.extend_from_slice(&short_entry(&short, attr, cluster, size));
        }
        debug_assert_eq!(buf.len() as u64, entries * ENTRY as u64);
        buf.resize(count as usize * self.cluster_bytes as usize, 0);
        self.extents.push(Extent {
            first,
            clusters: count,
            bytes: Cow::Owned(buf),
        });
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::Child;
    use crate::dir::parse_dir;

    fn dir(children: Vec<(&str, Node)>) -> Node {
        let mut d = Dir::default();
        for (name, node) in children {
            d.children.insert(
                crate::names::fold(name),
                Child {
                    name: name.to_string(),
                    node,
                },
            );
        }
        Node::Dir(d)
    }

    #[test]
    fn root_is_cluster_2_and_dot_entries_follow_the_fat32_convention() {
        let Node::Dir(root) = dir(vec![
            ("empty.txt", Node::File(vec![])),
            (
                "gen-1",
                dir(vec![(
                    "overlays",
                    dir(vec![("x.dtbo", Node::File(vec![1; 600]))]),
                )]),
            ),
        ]) else {
            unreachable!()
        };
        let layout = plan(&root, 512, Some(*b"BOOT       ")).unwrap();
        let by_first = |c: u32| layout.extents.iter().find(|e| e.first == c).unwrap();
        let root_entries = parse_dir(&by_first(2).bytes);
        assert!(root_entries[0].is_volume_label());
        assert_eq!(root_entries[1].long_name.as_deref(), Some("empty.txt"));
        assert_eq!((root_entries[1].cluster, root_entries[1].size), (0, 0));
        let gen1 = &root_entries[2];
        assert_eq!(gen1.cluster, 3, "depth-first: gen-1 right after the root");
        let gen1_entries = parse_dir(&by_first(3).bytes);
        assert_eq!((gen1_entries[0].short, gen1_entries[0].cluster), (DOT, 3));
        assert_eq!(
            (gen1_entries[1].short, gen1_entries[1].cluster),
            (DOTDOT, 0)
        );
        let overlays = &gen1_entries[2];
        let ov_entries = parse_dir(&by_first(overlays.cluster).bytes);
        assert_eq!(
            ov_entries[1].cluster, 3,
            "`..` of a grandchild names its parent"
        );
        let x = &ov_entries[2];
        assert_eq!((x.cluster, x.size), (overlays.cluster + 1, 600));
        assert_eq!(by_first(x.cluster).clusters, 2);
        assert_eq!(layout.next_free, x.cluster + 2);
        assert_eq!(
            u64::from(layout.next_free - 2),
            clusters_needed(&root, 512, true)
        );
    }
}
