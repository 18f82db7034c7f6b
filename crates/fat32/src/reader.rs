//! `FatReader`: reads FAT32 (and FAT12/16) volumes, for checking what the writer produced and
//! for inspecting boot partitions made by other tools.

use std::io::{Read, Seek, SeekFrom};

use crate::bpb::{get16, get32, Bpb, FatType};
use crate::dir::{parse_dir, RawEntry};
use crate::names::{display_short, fold, split_path};
use crate::FatError;

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The long name as stored, or the short name when there is no long name.
    pub name: String,
    /// The 8.3 name as stored on disk ("KERNEL~1.IMG").
    pub short_name: String,
    /// Whether the entry is a directory.
    pub is_dir: bool,
    /// File size in bytes (0 for directories).
    pub size: u64,
}

/// Where a directory's entries live: FAT12/16 keep the root in a fixed region.
#[derive(Debug, Clone, Copy)]
enum DirLoc {
    FixedRoot,
    Cluster(u32),
}

/// What a path resolves to.
struct Found {
    is_dir: bool,
    cluster: u32,
    size: u32,
}

/// The most a directory may hold: 65,536 entries of 32 bytes (the FAT specification's limit).
const MAX_DIR_BYTES: u64 = 65_536 * 32;

/// How far [`FatReader::chain`] follows a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// A file: as many clusters as its size needs.
    Bytes(u64),
    /// A directory: at most [`MAX_DIR_BYTES`], longer is corrupt.
    Dir,
}

/// A file found by [`FatReader::tree`].
struct TreeFile {
    path: String,
    cluster: u32,
    size: u32,
}

/// Which clusters a traversal has read already, one bit per cluster.
struct Claims(Vec<u64>);

impl Claims {
    fn new(cluster_count: u32) -> Self {
        Claims(vec![0; (cluster_count as usize + 2).div_ceil(64)])
    }

    /// Marks the clusters of `runs`; a cluster already marked means two owners (a cross-link
    /// or a directory loop).
    fn claim(&mut self, runs: &[(u32, u32)], what: &str) -> Result<(), FatError> {
        for &(start, len) in runs {
            for c in start..start + len {
                let (word, bit) = (c as usize / 64, 1u64 << (c % 64));
                if self.0[word] & bit != 0 {
                    return Err(FatError::Corrupt {
                        reason: format!(
                            "cluster {c} of {what} also belongs to another file or directory"
                        ),
                    });
                }
                self.0[word] |= bit;
            }
        }
        Ok(())
    }
}

/// Reads a FAT volume that starts at position 0 of `R`.
pub struct FatReader<R> {
    r: R,
    bpb: Bpb,
    /// The first FAT copy, loaded whole: it is small and every chain walk needs it.
    fat: Vec<u8>,
    label: String,
}

/// Shows the volume parameters, not the loaded FAT.
impl<R> std::fmt::Debug for FatReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FatReader")
            .field("fat_type", &self.bpb.fat_type)
            .field("cluster_bytes", &self.bpb.cluster_bytes())
            .field("clusters", &self.bpb.cluster_count)
            .field("volume_id", &format_args!("{:08X}", self.bpb.volume_id))
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Seek> FatReader<R> {
    /// Opens a FAT volume starting at r's position 0 (FAT32, FAT16 and FAT12 are understood).
    pub fn open(mut r: R) -> Result<Self, FatError> {
        let mut boot = [0u8; 512];
        r.seek(SeekFrom::Start(0))
            .and_then(|_| r.read_exact(&mut boot))
            .map_err(FatError::io("reading the FAT boot sector"))?;
        let bpb = Bpb::parse(&boot)?;
        if bpb.fat_type == FatType::Fat32 && bpb.root_cluster < 2 {
            return Err(FatError::NotFat {
                reason: format!("FAT32 root cluster {} is invalid", bpb.root_cluster),
            });
        }
        // Every size below is checked against the real volume length before anything is
        // allocated or read, so a boot sector cannot ask for more memory than the volume holds.
        let volume_len = r
            .seek(SeekFrom::End(0))
            .map_err(FatError::io("finding the length of the FAT volume"))?;
        if bpb.data_end() > volume_len {
            return Err(FatError::Corrupt {
                reason: format!(
                    "the boot sector describes {} bytes but the volume holds only {volume_len}",
                    bpb.data_end()
                ),
            });
        }
        let clusters = u64::from(bpb.cluster_count) + 2;
        let needed_fat_bytes = match bpb.fat_type {
            FatType::Fat12 => clusters * 3 / 2 + 1,
            FatType::Fat16 => clusters * 2,
            FatType::Fat32 => clusters * 4,
        };
        let fat_bytes = u64::from(bpb.fat_sectors) * u64::from(bpb.bytes_per_sector);
        if fat_bytes < needed_fat_bytes {
            return Err(FatError::Corrupt {
                reason: format!(
                    "the FAT has {fat_bytes} bytes but {} clusters need {needed_fat_bytes}",
                    bpb.cluster_count
                ),
            });
        }
        // Only the part that maps clusters is read; the FAT lies before the data region, so
        // this is smaller than the volume.
        let mut fat = vec![0u8; needed_fat_bytes as usize];
        r.seek(SeekFrom::Start(bpb.fat_offset()))
            .and_then(|_| r.read_exact(&mut fat))
            .map_err(FatError::io("reading the FAT"))?;
        let bpb_label = String::from_utf8_lossy(&bpb.label).trim_end().to_string();
        let mut reader = FatReader {
            r,
            bpb,
            fat,
            label: bpb_label,
        };
        let root = reader.root_loc();
        if let Some(e) = reader.read_dir(root)?.iter().find(|e| e.is_volume_label()) {
            reader.label = String::from_utf8_lossy(&e.short).trim_end().to_string();
        }
        if reader.label == "NO NAME" {
            reader.label.clear();
        }
        Ok(reader)
    }

    /// The volume serial number.
    pub fn volume_id(&self) -> u32 {
        self.bpb.volume_id
    }

    /// The volume label (from the root directory, else the boot sector), "" when there is none.
    pub fn label(&self) -> String {
        self.label.clone()
    }

    /// The FAT variant, decided by cluster count.
    pub fn fat_type(&self) -> FatType {
        self.bpb.fat_type
    }

    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        self.bpb.cluster_bytes()
    }

    /// Case-insensitive lookup like the Pi firmware does; returns long names as stored.
    pub fn list_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, FatError> {
        let loc = self.dir_loc(path)?;
        Ok(self
            .read_dir(loc)?
            .iter()
            .filter(|e| !e.is_volume_label() && !e.is_dot())
            .map(|e| DirEntry {
                name: visible_name(e),
                short_name: display_short(&e.short, 0),
                is_dir: e.is_dir(),
                size: if e.is_dir() { 0 } else { u64::from(e.size) },
            })
            .collect())
    }

    /// Reads a whole file.
    pub fn read_file(&mut self, path: &str) -> Result<Vec<u8>, FatError> {
        let found = self.resolve(path)?;
        if found.is_dir {
            return Err(FatError::WrongKind {
                path: path.to_string(),
                found: "a directory",
                expected: "a file",
            });
        }
        self.read_data(found.cluster, found.size, path)
    }

    /// Every file with its full path ("gen-1/overlays/x.dtbo") and size, sorted.
    pub fn walk(&mut self) -> Result<Vec<(String, u64)>, FatError> {
        let mut claims = Claims::new(self.bpb.cluster_count);
        Ok(self
            .tree(&mut claims)?
            .into_iter()
            .map(|f| (f.path, u64::from(f.size)))
            .collect())
    }

    /// Calls `visit(path, content)` for every file in path order, as [`walk`](Self::walk) lists
    /// them. Each directory is read once and no cluster is read twice (cross-linked files are
    /// refused as corrupt), so the work is bounded by the volume's size.
    pub fn for_each_file(&mut self, mut visit: impl FnMut(&str, &[u8])) -> Result<(), FatError> {
        let mut claims = Claims::new(self.bpb.cluster_count);
        for f in self.tree(&mut claims)? {
            let data = if f.cluster == 0 {
                self.read_data(0, f.size, &f.path)?
            } else {
                let runs = self.chain(f.cluster, &f.path, Limit::Bytes(u64::from(f.size)))?;
                claims.claim(&runs, &f.path)?;
                self.read_runs_sized(&runs, f.size, &f.path)?
            };
            visit(&f.path, &data);
        }
        Ok(())
    }

    /// Every file under the root with where its data starts, sorted by path. Directory
    /// clusters are claimed in `claims`, so a directory loop or a cross-link is an error.
    fn tree(&mut self, claims: &mut Claims) -> Result<Vec<TreeFile>, FatError> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), self.root_loc())];
        while let Some((prefix, loc)) = stack.pop() {
            let entries = match loc {
                DirLoc::FixedRoot => self.read_dir(loc)?,
                DirLoc::Cluster(c) => {
                    let runs = self.chain(c, &format!("directory {prefix:?}"), Limit::Dir)?;
                    claims.claim(&runs, &format!("directory {prefix:?}"))?;
                    parse_dir(&self.read_runs(&runs, "a directory")?)
                }
            };
            for e in entries {
                if e.is_volume_label() || e.is_dot() {
                    continue;
                }
                let path = format!("{prefix}{}", visible_name(&e));
                if e.is_dir() {
                    stack.push((format!("{path}/"), self.subdir_loc(e.cluster, &path)?));
                } else {
                    out.push(TreeFile {
                        path,
                        cluster: e.cluster,
                        size: e.size,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn root_loc(&self) -> DirLoc {
        match self.bpb.fat_type {
            FatType::Fat32 => DirLoc::Cluster(self.bpb.root_cluster),
            _ => DirLoc::FixedRoot,
        }
    }

    fn subdir_loc(&self, cluster: u32, path: &str) -> Result<DirLoc, FatError> {
        if cluster < 2 {
            return Err(FatError::Corrupt {
                reason: format!("directory {path:?} starts at cluster {cluster}"),
            });
        }
        Ok(DirLoc::Cluster(cluster))
    }

    fn dir_loc(&mut self, path: &str) -> Result<DirLoc, FatError> {
        if split_path(path)?.is_empty() {
            return Ok(self.root_loc());
        }
        let found = self.resolve(path)?;
        if !found.is_dir {
            return Err(FatError::WrongKind {
                path: path.to_string(),
                found: "a file",
                expected: "a directory",
            });
        }
        self.subdir_loc(found.cluster, path)
    }

    /// Follows `path` from the root, matching each component against long and short names
    /// without regard to case.
    fn resolve(&mut self, path: &str) -> Result<Found, FatError> {
        let parts = split_path(path)?;
        let mut loc = self.root_loc();
        let mut found = Found {
            is_dir: true,
            cluster: 0,
            size: 0,
        };
        for (i, part) in parts.iter().enumerate() {
            if !found.is_dir {
                return Err(FatError::NotADirectory {
                    path: parts[..i].join("/"),
                    child: path.to_string(),
                });
            }
            let key = fold(part);
            let entry = self
                .read_dir(loc)?
                .into_iter()
                .filter(|e| !e.is_volume_label() && !e.is_dot())
                .find(|e| {
                    e.long_name.as_deref().map(fold).as_deref() == Some(key.as_str())
                        || fold(&display_short(&e.short, 0)) == key
                })
                .ok_or_else(|| FatError::NotFound {
                    path: path.to_string(),
                })?;
            found = Found {
                is_dir: entry.is_dir(),
                cluster: entry.cluster,
                size: entry.size,
            };
            if found.is_dir {
                loc = self.subdir_loc(entry.cluster, &parts[..=i].join("/"))?;
            }
        }
        Ok(found)
    }

    fn read_dir(&mut self, loc: DirLoc) -> Result<Vec<RawEntry>, FatError> {
        let bytes = match loc {
            DirLoc::FixedRoot => {
                let mut buf = vec![0u8; self.bpb.root_entries as usize * 32];
                let at = self.bpb.root_dir_offset();
                self.read_at(at, &mut buf, "the root directory")?;
                buf
            }
            DirLoc::Cluster(c) => {
                let runs = self.chain(c, "a directory", Limit::Dir)?;
                self.read_runs(&runs, "a directory")?
            }
        };
        Ok(parse_dir(&bytes))
    }

    fn read_data(&mut self, cluster: u32, size: u32, path: &str) -> Result<Vec<u8>, FatError> {
        if cluster == 0 {
            if size != 0 {
                return Err(FatError::Corrupt {
                    reason: format!("{path:?} has {size} bytes but no clusters"),
                });
            }
            return Ok(Vec::new());
        }
        let runs = self.chain(cluster, path, Limit::Bytes(u64::from(size)))?;
        self.read_runs_sized(&runs, size, path)
    }

    /// The runs of `runs` read, cut to `size` bytes; an error when they hold fewer.
    fn read_runs_sized(
        &mut self,
        runs: &[(u32, u32)],
        size: u32,
        path: &str,
    ) -> Result<Vec<u8>, FatError> {
        let mut data = self.read_runs(runs, path)?;
        if (data.len() as u64) < u64::from(size) {
            return Err(FatError::Corrupt {
                reason: format!(
                    "{path:?} has {size} bytes but its cluster chain holds only {}",
                    data.len()
                ),
            });
        }
        data.truncate(size as usize);
        Ok(data)
    }

    /// The chain starting at `first` as runs of adjacent clusters (start, count), followed no
    /// further than `limit` needs: a file's chain longer than its size is not walked to its end.
    fn chain(&self, first: u32, what: &str, limit: Limit) -> Result<Vec<(u32, u32)>, FatError> {
        let cb = self.bpb.cluster_bytes();
        let max = match limit {
            Limit::Bytes(n) => n.div_ceil(cb),
            Limit::Dir => (MAX_DIR_BYTES / cb).max(1),
        };
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut cluster = first;
        let mut total = 0u64;
        while total < max {
            if cluster < 2 || u64::from(cluster) >= u64::from(self.bpb.cluster_count) + 2 {
                return Err(FatError::Corrupt {
                    reason: format!("the chain of {what} points at cluster {cluster}"),
                });
            }
            total += 1;
            if total > u64::from(self.bpb.cluster_count) {
                return Err(FatError::Corrupt {
                    reason: format!("the cluster chain of {what} loops"),
                });
            }
            match runs.last_mut() {
                Some((start, len)) if *start + *len == cluster => *len += 1,
                _ => runs.push((cluster, 1)),
            }
            let next = self.fat_entry(cluster);
            if self.is_end(next) {
                return Ok(runs);
            }
            cluster = next;
        }
        if limit == Limit::Dir {
            return Err(FatError::Corrupt {
                reason: format!(
                    "{what} is longer than the {} entries a FAT directory may hold",
                    MAX_DIR_BYTES / 32
                ),
            });
        }
        Ok(runs)
    }

    /// Reads `runs` (inside the volume: `chain` checked every cluster) into one buffer.
    fn read_runs(&mut self, runs: &[(u32, u32)], what: &str) -> Result<Vec<u8>, FatError> {
        let cb = self.bpb.cluster_bytes();
        let total: u64 = runs.iter().map(|(_, len)| u64::from(*len)).sum();
        let mut out = vec![0u8; (total * cb) as usize];
        let mut filled = 0usize;
        for &(start, len) in runs {
            let n = (u64::from(len) * cb) as usize;
            let at = self.bpb.cluster_offset(start);
            self.read_at(at, &mut out[filled..filled + n], what)?;
            filled += n;
        }
        Ok(out)
    }

    fn fat_entry(&self, cluster: u32) -> u32 {
        let c = cluster as usize;
        match self.bpb.fat_type {
            FatType::Fat32 => get32(&self.fat, c * 4) & 0x0FFF_FFFF,
            FatType::Fat16 => u32::from(get16(&self.fat, c * 2)),
            FatType::Fat12 => {
                let v = u32::from(get16(&self.fat, c + c / 2));
                if c % 2 == 1 {
                    v >> 4
                } else {
                    v & 0xFFF
                }
            }
        }
    }

    fn is_end(&self, entry: u32) -> bool {
        match self.bpb.fat_type {
            FatType::Fat32 => entry >= 0x0FFF_FFF8,
            FatType::Fat16 => entry >= 0xFFF8,
            FatType::Fat12 => entry >= 0xFF8,
        }
    }

    fn read_at(&mut self, at: u64, buf: &mut [u8], what: &str) -> Result<(), FatError> {
        self.r
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.r.read_exact(buf))
            .map_err(FatError::io(format!(
                "reading {what} at volume offset {at}"
            )))
    }
}

fn visible_name(e: &RawEntry) -> String {
    e.long_name
        .clone()
        .unwrap_or_else(|| display_short(&e.short, e.nt_flags))
}
