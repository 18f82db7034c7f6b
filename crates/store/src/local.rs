//! `LocalStore`: a store in a directory on this machine, laid out like `/pideploy` on the target.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fsutil::{copy_tree, remove_tree, seal_below, seal_node, sync_dir, write_new_file};
use crate::{archive, topo_sort, PathInfo, StoreError, StorePath};

/// Directory of path contents, relative to the root.
const STORE_SUBDIR: &str = "store";
/// Directory of registrations, relative to the root.
const VALID_SUBDIR: &str = "var/db/valid";
/// Directory of builds in progress, relative to the root (same file system as `store/`).
const TMP_SUBDIR: &str = "tmp";
/// Where the last image's staged store paths are kept, relative to the root: the next image
/// starts from them instead of staging thousands of entries again (most of a one-file change's
/// image time). Hard links, so it costs inodes, not space, until `pideploy gc`.
const KEPT_SUBDIR: &str = "image-store";

/// A store rooted at a directory `R`: contents in `R/store/<base>`, registrations in
/// `R/var/db/valid/<base>`, builds in progress in `R/tmp/` (never copied anywhere).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// A temporary build directory that is removed (read-only parts included) when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is harmless, and drop cannot report errors.
        let _ = remove_tree(&self.0);
    }
}

impl LocalStore {
    /// Opens (creating its directories if needed) the store rooted at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for sub in [STORE_SUBDIR, VALID_SUBDIR, TMP_SUBDIR] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(StoreError::io("creating store directory", &dir))?;
        }
        Ok(LocalStore {
            root: root.to_owned(),
        })
    }

    /// The root directory `R`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `p`'s contents live here: `R/store/<base>`.
    pub fn physical(&self, p: &StorePath) -> PathBuf {
        self.root.join(STORE_SUBDIR).join(p.base_name())
    }

    /// The image builder's kept staging, `R/image-store`: here, not in the image builder, because
    /// collecting garbage must also drop paths from it ([`LocalStore::forget_kept`]).
    pub fn kept_image_store(&self) -> PathBuf {
        self.root.join(KEPT_SUBDIR)
    }

    /// Removes `paths` from the kept image staging, so that collecting them frees their space.
    pub fn forget_kept(&self, paths: &[StorePath]) -> Result<(), StoreError> {
        let kept = self.kept_image_store();
        for p in paths {
            remove_tree(&kept.join(p.base_name()))?;
        }
        Ok(())
    }

    fn registration(&self, p: &StorePath) -> PathBuf {
        self.root.join(VALID_SUBDIR).join(p.base_name())
    }

    fn not_valid(&self, p: &StorePath) -> StoreError {
        StoreError::NotValid {
            path: p.clone(),
            store: self.root.clone(),
        }
    }

    fn temp_dir(&self) -> Result<TempDir, StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = self
                .root
                .join(TMP_SUBDIR)
                .join(format!("build-{}-{nanos}-{n}", std::process::id()));
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("creating build directory", dir)(e)),
            }
        }
    }

    /// Builds and adds a path named `name` referencing `references`.
    ///
    /// `build` gets a fresh empty directory `T` inside the store root and must create
    /// `T/out` (file, directory or symlink). That output is then hashed, sealed read-only,
    /// fsynced, renamed to `R/store/<base>` (its top directory sealed just after the rename, which
    /// needs it writable), and registered last, so a crash at any point
    /// never leaves a path that looks valid but is incomplete. If the path is already valid,
    /// the new output is discarded. A leftover unregistered `R/store/<base>` (from a crash) is
    /// replaced.
    pub fn add<E: std::error::Error + Send + Sync + 'static>(
        &self,
        name: &str,
        references: &BTreeSet<StorePath>,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<StorePath, StoreError> {
        crate::store_path::validate_name(name)?;
        if let Some(r) = references.iter().find(|r| !self.is_valid(r)) {
            return Err(StoreError::MissingReference {
                name: name.to_owned(),
                reference: r.clone(),
                store: self.root.clone(),
            });
        }
        let tmp = self.temp_dir()?;
        build(&tmp.0).map_err(|e| StoreError::Build {
            name: name.to_owned(),
            source: Box::new(e),
        })?;
        let out = tmp.0.join("out");
        if fs::symlink_metadata(&out).is_err() {
            return Err(StoreError::NoOutput {
                name: name.to_owned(),
                out,
            });
        }
        let (nar_sha256, nar_size) = archive::hash(&out)?;
        let path = StorePath::compute(name, &nar_sha256, references)?;
        if self.is_valid(&path) {
            return Ok(path);
        }
        seal_below(&out)?;
        let dest = self.physical(&path);
        // Not valid but present: an interrupted earlier add. Its contents are untrusted.
        remove_tree(&dest)?;
        fs::rename(&out, &dest).map_err(StoreError::io("moving build output to", &dest))?;
        // The top is sealed only now (see `seal_below`); still before registration, so a crash
        // here leaves an unregistered path that the next add replaces.
        seal_node(&dest)?;
        sync_dir(&self.root.join(STORE_SUBDIR))?;
        self.register(&PathInfo {
            path: path.clone(),
            references: references.clone(),
            nar_sha256,
            nar_size,
        })?;
        Ok(path)
    }

    /// Writes a registration atomically (temp file, fsync, rename, fsync dir).
    fn register(&self, info: &PathInfo) -> Result<(), StoreError> {
        let final_path = self.registration(&info.path);
        let dir = self.root.join(VALID_SUBDIR);
        // Dot-prefixed so `list_valid` never mistakes it for a registration.
        let tmp = dir.join(format!(".{}.tmp-{}", info.path, std::process::id()));
        remove_tree(&tmp)?;
        write_new_file(&tmp, info.to_text().as_bytes(), 0o444)?;
        fs::rename(&tmp, &final_path).map_err(StoreError::io("registering", &final_path))?;
        sync_dir(&dir)
    }

    /// Adds a copy of the file, symlink or tree at `src` (which is left in place).
    pub fn add_path(
        &self,
        name: &str,
        src: &Path,
        references: &BTreeSet<StorePath>,
    ) -> Result<StorePath, StoreError> {
        self.add(name, references, |tmp| copy_tree(src, &tmp.join("out")))
    }

    /// Adds a single-file path holding `data`, executable or not.
    pub fn add_bytes(
        &self,
        name: &str,
        data: &[u8],
        executable: bool,
        references: &BTreeSet<StorePath>,
    ) -> Result<StorePath, StoreError> {
        let mode = if executable { 0o555 } else { 0o444 };
        self.add(name, references, |tmp| {
            write_new_file(&tmp.join("out"), data, mode)
        })
    }

    /// Whether `p` is registered and its contents are present.
    pub fn is_valid(&self, p: &StorePath) -> bool {
        self.registration(p).is_file() && fs::symlink_metadata(self.physical(p)).is_ok()
    }

    /// The registration of `p`.
    pub fn query(&self, p: &StorePath) -> Result<PathInfo, StoreError> {
        if !self.is_valid(p) {
            return Err(self.not_valid(p));
        }
        let reg = self.registration(p);
        let text =
            fs::read_to_string(&reg).map_err(StoreError::io("reading registration", &reg))?;
        let info = PathInfo::from_text(&text).map_err(|e| match e {
            StoreError::InvalidRegistration { reason, .. } => StoreError::InvalidRegistration {
                context: Some(reg.display().to_string()),
                reason,
            },
            other => other,
        })?;
        if info.path != *p {
            return Err(StoreError::InvalidRegistration {
                context: Some(reg.display().to_string()),
                reason: format!("it registers {} instead", info.path),
            });
        }
        Ok(info)
    }

    /// All valid paths, sorted by base name.
    pub fn list_valid(&self) -> Result<Vec<StorePath>, StoreError> {
        let dir = self.root.join(VALID_SUBDIR);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(StoreError::io("reading directory", &dir))? {
            let entry = entry.map_err(StoreError::io("reading directory", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let p = StorePath::parse(name)?;
            if self.is_valid(&p) {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }

    /// `roots` and everything they reference, transitively: dependencies before dependents,
    /// ties broken by base name. Every path reached must be valid.
    pub fn closure(&self, roots: &[StorePath]) -> Result<Vec<StorePath>, StoreError> {
        let mut graph: BTreeMap<StorePath, BTreeSet<StorePath>> = BTreeMap::new();
        let mut todo: Vec<StorePath> = roots.to_vec();
        while let Some(p) = todo.pop() {
            if graph.contains_key(&p) {
                continue;
            }
            let info = self.query(&p)?;
            todo.extend(info.references.iter().cloned());
            graph.insert(p, info.references);
        }
        topo_sort(&graph)
    }

    /// Removes `p`: its registration first (so it is never valid with partial contents), then
    /// its contents. Refused while another valid path references it.
    pub fn delete(&self, p: &StorePath) -> Result<(), StoreError> {
        if !self.is_valid(p) {
            return Err(self.not_valid(p));
        }
        let mut by = Vec::new();
        for other in self.list_valid()? {
            if other != *p && self.query(&other)?.references.contains(p) {
                by.push(other);
            }
        }
        if !by.is_empty() {
            return Err(StoreError::Referenced {
                path: p.clone(),
                by,
            });
        }
        let reg = self.registration(p);
        fs::remove_file(&reg).map_err(StoreError::io("removing registration", &reg))?;
        sync_dir(&self.root.join(VALID_SUBDIR))?;
        remove_tree(&self.physical(p))
    }

    /// Re-hashes `p`'s contents and checks them, and the path's name, against its registration.
    pub fn verify(&self, p: &StorePath) -> Result<(), StoreError> {
        let info = self.query(p)?;
        let (actual, actual_size) = archive::hash(&self.physical(p))?;
        if actual != info.nar_sha256 || actual_size != info.nar_size {
            return Err(StoreError::HashMismatch {
                path: p.clone(),
                expected: info.nar_sha256,
                actual,
                expected_size: info.nar_size,
                actual_size,
            });
        }
        let computed = StorePath::compute(p.name(), &info.nar_sha256, &info.references)?;
        if computed != *p {
            return Err(StoreError::RegistrationMismatch {
                path: p.clone(),
                computed,
            });
        }
        Ok(())
    }
}
