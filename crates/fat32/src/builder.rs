//! `FatBuilder`: collects the directory tree in memory; planning and writing happen in
//! `layout` and `writer`.

use std::collections::BTreeMap;
use std::io::{Seek, Write};

use crate::bpb::Geometry;
use crate::names::{fold, split_path, volume_label};
use crate::{layout, writer, FatError};

/// A node of the tree to be written.
pub(crate) enum Node {
    File(Vec<u8>),
    Dir(Dir),
}

/// A directory: children keyed by their case-folded name, which both rejects names FAT
/// would treat as equal and gives an order that does not depend on insertion order.
#[derive(Default)]
pub(crate) struct Dir {
    pub children: BTreeMap<String, Child>,
}

/// A named child of a directory, with the name as the caller spelled it.
pub(crate) struct Child {
    pub name: String,
    pub node: Node,
}

/// Builds a FAT32 volume from scratch: add directories and files, then `write` it.
///
/// Identical inputs give identical bytes, whatever the order of `add_*` calls.
pub struct FatBuilder {
    geometry: Geometry,
    size_bytes: u64,
    volume_id: u32,
    label: Option<[u8; 11]>,
    hidden_sectors: u32,
    root: Dir,
}

/// Shows the volume parameters, not the (possibly large) file contents.
impl std::fmt::Debug for FatBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FatBuilder")
            .field("size_bytes", &self.size_bytes)
            .field("cluster_bytes", &self.geometry.cluster_bytes())
            .field("volume_id", &format_args!("{:08X}", self.volume_id))
            .field("required_bytes", &self.required_bytes())
            .finish_non_exhaustive()
    }
}

impl FatBuilder {
    /// size_bytes: whole volume size; volume_id: serial; label: up to 11 chars (uppercased,
    /// validated; empty means no label); hidden_sectors: LBA where the partition starts on the
    /// disk (goes in the BPB).
    pub fn new(
        size_bytes: u64,
        volume_id: u32,
        label: &str,
        hidden_sectors: u32,
    ) -> Result<Self, FatError> {
        Ok(FatBuilder {
            geometry: Geometry::for_size(size_bytes)?,
            size_bytes,
            volume_id,
            label: volume_label(label)?,
            hidden_sectors,
            root: Dir::default(),
        })
    }

    /// Creates a directory; parents are created implicitly. Paths use '/', no leading '/'
    /// required. Adding an existing directory again is not an error.
    pub fn add_dir(&mut self, path: &str) -> Result<(), FatError> {
        let parts = split_path(path)?;
        match self.dir_mut(path, &parts) {
            Ok(_) => Ok(()),
            // The path itself names a file: that is a duplicate, not a bad parent.
            Err(FatError::NotADirectory { path: p, .. }) if p == parts.join("/") => {
                Err(FatError::Duplicate {
                    path: path.to_string(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Adds a file (parents implicit). Duplicate path (case-insensitive, FAT semantics) is an
    /// error.
    pub fn add_file(&mut self, path: &str, data: Vec<u8>) -> Result<(), FatError> {
        let parts = split_path(path)?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(FatError::InvalidPath {
                path: path.to_string(),
                reason: "a file path needs a file name".into(),
            });
        };
        if u32::try_from(data.len()).is_err() {
            return Err(FatError::FileTooLarge {
                path: path.to_string(),
                size: data.len() as u64,
            });
        }
        let dir = self.dir_mut(path, parents)?;
        let key = fold(name);
        if dir.children.contains_key(&key) {
            return Err(FatError::Duplicate {
                path: path.to_string(),
            });
        }
        dir.children.insert(
            key,
            Child {
                name: (*name).to_string(),
                node: Node::File(data),
            },
        );
        Ok(())
    }

    /// Bytes of file data + directory clusters needed; lets callers size the partition and
    /// fail early. Counted in whole clusters of this volume's cluster size.
    pub fn required_bytes(&self) -> u64 {
        layout::clusters_needed(
            &self.root,
            self.geometry.cluster_bytes(),
            self.label.is_some(),
        ) * self.geometry.cluster_bytes()
    }

    /// Bytes of clusters the volume offers; content fits when `required_bytes() <=
    /// capacity_bytes()`.
    pub fn capacity_bytes(&self) -> u64 {
        self.geometry.capacity_bytes()
    }

    /// Bytes per cluster chosen for this volume size.
    pub fn cluster_bytes(&self) -> u64 {
        self.geometry.cluster_bytes()
    }

    /// The smallest size in bytes `new` accepts (the FAT32 cluster-count minimum).
    pub fn min_size_bytes() -> u64 {
        crate::bpb::min_size()
    }

    /// Writes the whole volume to `out` at offsets [0, size_bytes) relative to out's position
    /// at call time. Regions that are all zero may be skipped by seeking (the caller
    /// guarantees the target reads as zeros, e.g. a fresh sparse file). Returns size_bytes.
    /// Errors when the content does not fit.
    pub fn write<W: Write + Seek>(&self, out: &mut W) -> Result<u64, FatError> {
        let needed = self.required_bytes();
        if needed > self.capacity_bytes() {
            return Err(FatError::DoesNotFit {
                needed,
                available: self.capacity_bytes(),
                size: self.size_bytes,
            });
        }
        let plan = layout::plan(&self.root, self.geometry.cluster_bytes(), self.label)?;
        writer::write_volume(
            &writer::Volume {
                geometry: &self.geometry,
                size_bytes: self.size_bytes,
                volume_id: self.volume_id,
                label: self.label,
                hidden_sectors: self.hidden_sectors,
            },
            &plan,
            out,
        )?;
        Ok(self.size_bytes)
    }

    /// Walks to (creating as needed) the directory `parts`; `path` is only for messages.
    fn dir_mut(&mut self, path: &str, parts: &[&str]) -> Result<&mut Dir, FatError> {
        let mut dir = &mut self.root;
        for (i, part) in parts.iter().enumerate() {
            let child = dir.children.entry(fold(part)).or_insert_with(|| Child {
                name: (*part).to_string(),
                node: Node::Dir(Dir::default()),
            });
            dir = match &mut child.node {
                Node::Dir(d) => d,
                Node::File(_) => {
                    return Err(FatError::NotADirectory {
                        path: parts[..=i].join("/"),
                        child: path.to_string(),
                    })
                }
            };
        }
        Ok(dir)
    }
}
