//! The on-disk artifact cache: `<root>/sha256/<hex>` holds verified bytes, `<root>/names/<hex>` the
//! file name they arrived under, `<root>/tmp/` in-flight writes (same file system, so the final
//! rename is atomic).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::CacheError;
use crate::sha::{copy_hashing, is_sha256_name, normalise_sha256};

/// The largest file `cache import` accepts; the biggest Debian packages are a few hundred MiB.
pub const MAX_IMPORT_BYTES: u64 = 8 << 30;

/// A content-addressed store of artifact files named by their sha256.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// One cached file, as listed by [`Cache::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Lower-case hex sha256 of the contents.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// File name it was imported or downloaded under, if recorded.
    pub name: Option<String>,
}

impl Cache {
    /// Opens (creating if needed) a cache rooted at `root`.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        let cache = Cache {
            root: root.to_owned(),
        };
        for dir in [cache.blobs(), cache.names(), cache.tmp()] {
            fs::create_dir_all(&dir).map_err(CacheError::io("creating cache directory", &dir))?;
        }
        Ok(cache)
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of the cached file with this sha256, if present.
    pub fn path_of(&self, sha256_hex: &str) -> Option<PathBuf> {
        let hex = normalise_sha256(sha256_hex).ok()?;
        let path = self.blobs().join(hex);
        path.is_file().then_some(path)
    }

    /// Imports a local file: hashes it, stores it, records its file name; returns (sha256, size).
    /// Importing the same contents again changes nothing.
    ///
    /// Only regular files of at most [`MAX_IMPORT_BYTES`] are accepted, and only the length
    /// they had when opened is read: `cache import /dev/zero` is an error, not a hang.
    pub fn import(&self, file: &Path) -> Result<(String, u64), CacheError> {
        // Checked before opening too: opening a fifo blocks until someone writes to it.
        let is_file = fs::metadata(file)
            .map_err(CacheError::io("opening", file))?
            .is_file();
        if !is_file {
            return Err(CacheError::NotRegular {
                path: file.to_owned(),
                what: "a cached artifact",
            });
        }
        let source = File::open(file).map_err(CacheError::io("opening", file))?;
        let meta = source
            .metadata()
            .map_err(CacheError::io("reading the type of", file))?;
        if !meta.is_file() {
            return Err(CacheError::NotRegular {
                path: file.to_owned(),
                what: "a cached artifact",
            });
        }
        if meta.len() > MAX_IMPORT_BYTES {
            return Err(CacheError::TooLarge {
                path: file.to_owned(),
                size: meta.len(),
                max: MAX_IMPORT_BYTES,
                what: "a cached artifact",
            });
        }
        let mut temp = self.temp_file()?;
        let (sha256, size) = copy_hashing(
            &mut source.take(meta.len() + 1),
            temp.as_file_mut(),
            &mut |_| Ok(()),
        )
        .map_err(CacheError::io("copying into the cache", file))?;
        if size != meta.len() {
            return Err(CacheError::ChangedWhileReading {
                path: file.to_owned(),
                expected: meta.len(),
            });
        }
        self.commit(temp, &sha256)?;
        if let Some(name) = file.file_name().and_then(|n| n.to_str()) {
            self.record_name(&sha256, name)?;
        }
        Ok((sha256, size))
    }

    /// Every cached file, sorted by name then hash.
    pub fn list(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let mut entries = Vec::new();
        for (sha256, path) in self.blob_files()? {
            if !is_sha256_name(&sha256) {
                continue;
            }
            let size = fs::metadata(&path)
                .map_err(CacheError::io("reading size of", &path))?
                .len();
            let name = fs::read_to_string(self.names().join(&sha256))
                .ok()
                .map(|n| n.trim_end().to_owned());
            entries.push(CacheEntry { sha256, size, name });
        }
        entries.sort_by(|a, b| (&a.name, &a.sha256).cmp(&(&b.name, &b.sha256)));
        Ok(entries)
    }

    /// Re-hashes every entry and returns the names of those whose contents do not match (sorted).
    /// With `repair`, those entries are also removed so a later fetch or import replaces them.
    pub fn verify(&self, repair: bool) -> Result<Vec<String>, CacheError> {
        let mut bad = Vec::new();
        for (name, path) in self.blob_files()? {
            let matches = is_sha256_name(&name) && {
                let mut file = File::open(&path).map_err(CacheError::io("opening", &path))?;
                let (actual, _) = copy_hashing(&mut file, &mut std::io::sink(), &mut |_| Ok(()))
                    .map_err(CacheError::io("reading", &path))?;
                actual == name
            };
            if !matches {
                if repair {
                    fs::remove_file(&path).map_err(CacheError::io("removing bad entry", &path))?;
                    let name_file = self.names().join(&name);
                    if name_file.exists() {
                        fs::remove_file(&name_file)
                            .map_err(CacheError::io("removing name of bad entry", &name_file))?;
                    }
                }
                bad.push(name);
            }
        }
        bad.sort();
        Ok(bad)
    }

    /// The cached file for `sha256_hex`, opened and re-hashed so that what the caller reads is
    /// what the lock pins: a file swapped or damaged under that name is
    /// [`CacheError::Corrupt`], never used. The handle is positioned at the start; renaming
    /// another file into place after the check does not change what it reads.
    pub fn open_verified(&self, name: &str, sha256_hex: &str) -> Result<File, CacheError> {
        let path = self.require(name, sha256_hex)?;
        let hex = normalise_sha256(sha256_hex)?;
        let mut file = File::open(&path).map_err(CacheError::io("opening", &path))?;
        let (actual, _) = copy_hashing(&mut file, &mut std::io::sink(), &mut |_| Ok(()))
            .map_err(CacheError::io("reading", &path))?;
        if actual != hex {
            return Err(CacheError::Corrupt {
                name: name.to_owned(),
                path,
                expected: hex,
                actual,
            });
        }
        file.seek(SeekFrom::Start(0))
            .map_err(CacheError::io("rewinding", &path))?;
        Ok(file)
    }

    /// The cached file for `sha256_hex`, or an error naming the artifact and both ways to get it.
    pub fn require(&self, name: &str, sha256_hex: &str) -> Result<PathBuf, CacheError> {
        let hex = normalise_sha256(sha256_hex)?;
        self.path_of(&hex).ok_or_else(|| CacheError::Missing {
            name: name.to_owned(),
            sha256: hex,
            root: self.root.clone(),
        })
    }

    pub(crate) fn blobs(&self) -> PathBuf {
        self.root.join("sha256")
    }

    fn names(&self) -> PathBuf {
        self.root.join("names")
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A new temporary file inside the cache (removed automatically unless committed).
    pub(crate) fn temp_file(&self) -> Result<NamedTempFile, CacheError> {
        let dir = self.tmp();
        NamedTempFile::new_in(&dir).map_err(CacheError::io("creating temporary file in", dir))
    }

    /// Moves a fully written temp file whose contents hash to `sha256` into place: fsync, rename, fsync dir.
    pub(crate) fn commit(&self, temp: NamedTempFile, sha256: &str) -> Result<PathBuf, CacheError> {
        let dest = self.blobs().join(sha256);
        if dest.is_file() {
            // Same name means same bytes; the temp file is dropped (deleted).
            return Ok(dest);
        }
        temp.as_file()
            .sync_all()
            .map_err(CacheError::io("syncing", temp.path()))?;
        set_readable(temp.path())?;
        temp.persist(&dest).map_err(|e| CacheError::Io {
            action: "moving verified file into",
            path: dest.clone(),
            source: e.error,
        })?;
        sync_dir(&self.blobs())?;
        Ok(dest)
    }

    /// Records the name a blob arrived under, keeping the first one recorded.
    pub(crate) fn record_name(&self, sha256: &str, name: &str) -> Result<(), CacheError> {
        let dest = self.names().join(sha256);
        if dest.exists() || name.is_empty() {
            return Ok(());
        }
        let mut temp = self.temp_file()?;
        writeln!(temp, "{name}").map_err(CacheError::io("writing", temp.path()))?;
        set_readable(temp.path())?;
        temp.persist(&dest).map_err(|e| CacheError::Io {
            action: "recording name in",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    fn blob_files(&self) -> Result<Vec<(String, PathBuf)>, CacheError> {
        let dir = self.blobs();
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir).map_err(CacheError::io("listing", &dir))? {
            let entry = entry.map_err(CacheError::io("listing", &dir))?;
            let path = entry.path();
            if path.is_file() {
                files.push((entry.file_name().to_string_lossy().into_owned(), path));
            }
        }
        files.sort();
        Ok(files)
    }
}

/// Temp files are created 0600; cached artifacts are not secret, so make them 0644 like any download.
fn set_readable(path: &Path) -> Result<(), CacheError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))
            .map_err(CacheError::io("setting permissions of", path))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Makes a rename durable (the directory entry itself must reach the disk).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(CacheError::io("syncing directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
