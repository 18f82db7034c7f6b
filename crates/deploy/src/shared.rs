//! Copy streams made once for many targets (a fleet deploy): targets that miss the same store
//! paths and read the same codec receive the same bytes, compressed once into a temporary file,
//! instead of each deploy compressing the closure again (a fleet of empty Pis would otherwise
//! cost one compression of the whole closure per Pi).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use pideploy_store::{LocalStore, StorePath};
use sha2::{Digest, Sha256};

use super::stream::{write_stream, Codec};

/// One stream on disk.
#[derive(Debug, Clone)]
pub(crate) struct Made {
    /// The compressed stream.
    pub path: PathBuf,
    /// Uncompressed bytes in it.
    pub raw: u64,
    /// Its length.
    pub len: u64,
}

type Cell = Arc<OnceLock<Result<Made, StreamError>>>;

/// Why a shared stream could not be made; every host that wanted it gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StreamError(Arc<io::Error>);

/// The streams of one fleet run; removed with it.
#[derive(Debug)]
pub struct SharedStreams {
    dir: tempfile::TempDir,
    made: Mutex<HashMap<String, Cell>>,
}

impl SharedStreams {
    /// An empty set in a new temporary directory under `parent`: the local store's `tmp/`, on the
    /// disk that holds the closure uncompressed (a small tmpfs `/tmp` could not take a large one).
    pub fn new_in(parent: &Path) -> io::Result<Self> {
        fs::create_dir_all(parent)?;
        Ok(SharedStreams {
            dir: tempfile::Builder::new()
                .prefix("streams-")
                .tempdir_in(parent)?,
            made: Mutex::new(HashMap::new()),
        })
    }

    /// The stream of `paths` in `codec`: made by the first caller, while the others asking for the
    /// same one wait for it; every later caller gets the file as it is.
    pub(crate) fn get(
        &self,
        store: &LocalStore,
        paths: &[StorePath],
        codec: Codec,
    ) -> Result<Made, StreamError> {
        let key = key(paths, codec);
        let cell = self
            .made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        cell.get_or_init(|| {
            let path = self.dir.path().join(&key);
            make(store, paths, codec, &path).map_err(|e| StreamError(Arc::new(e)))
        })
        .clone()
    }
}

/// A name for the stream of `paths` in `codec` (the order of `paths` is the order sent).
fn key(paths: &[StorePath], codec: Codec) -> String {
    let mut h = Sha256::new();
    h.update(codec.word());
    for p in paths {
        h.update(b"\n");
        h.update(p.base_name());
    }
    format!("{:x}", h.finalize())
}

fn make(store: &LocalStore, paths: &[StorePath], codec: Codec, path: &PathBuf) -> io::Result<Made> {
    let part = path.with_extension("part");
    let mut out = BufWriter::new(File::create(&part)?);
    let raw = write_stream(store, paths, codec, &mut out, &AtomicU64::new(0))?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&part, path)?;
    Ok(Made {
        path: path.clone(),
        raw,
        len: fs::metadata(path)?.len(),
    })
}

/// Reads a made stream, reporting progress as the share of its uncompressed bytes sent.
pub(crate) struct MadeReader<'a> {
    file: File,
    made: Made,
    sent: u64,
    total: u64,
    on: &'a mut dyn FnMut(u64, u64),
}

impl<'a> MadeReader<'a> {
    /// `total`: the figure progress counts up to.
    pub fn open(made: Made, total: u64, on: &'a mut dyn FnMut(u64, u64)) -> io::Result<Self> {
        Ok(MadeReader {
            file: File::open(&made.path)?,
            made,
            sent: 0,
            total,
            on,
        })
    }

    /// Bytes handed over so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

impl Read for MadeReader<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let k = self.file.read(b)?;
        self.sent += k as u64;
        let done = (u128::from(self.total) * u128::from(self.sent)
            / u128::from(self.made.len.max(1))) as u64;
        (self.on)(done.min(self.total), self.total);
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn store_with(dir: &std::path::Path, names: &[&str]) -> (LocalStore, Vec<StorePath>) {
        let store = LocalStore::open(dir).unwrap();
        let mut paths = Vec::new();
        for n in names {
            let p = store
                .add(n, &BTreeSet::new(), |tmp| {
                    fs::create_dir(tmp.join("out"))?;
                    fs::write(tmp.join("out/file"), format!("{n}\n"))
                })
                .unwrap();
            paths.push(p);
        }
        (store, paths)
    }

    fn bytes(made: &Made) -> Vec<u8> {
        fs::read(&made.path).unwrap()
    }

    #[test]
    fn the_same_paths_are_compressed_once_and_sent_alike() {
        let w = tempfile::tempdir().unwrap();
        let (store, paths) = store_with(&w.path().join("store"), &["one", "two"]);
        let shared = SharedStreams::new_in(&w.path().join("tmp")).unwrap();
        let first = shared.get(&store, &paths, Codec::Zstd).unwrap();
        // The same bytes a single deploy would send.
        let mut direct = Vec::new();
        let raw =
            write_stream(&store, &paths, Codec::Zstd, &mut direct, &AtomicU64::new(0)).unwrap();
        assert_eq!(bytes(&first), direct);
        assert_eq!(first.raw, raw);
        // Made once: a second target gets the file even once the store could no longer make it.
        let gone = w.path().join("store");
        assert!(std::process::Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&gone)
            .status()
            .unwrap()
            .success());
        fs::remove_dir_all(&gone).unwrap();
        let second = shared.get(&store, &paths, Codec::Zstd).unwrap();
        assert_eq!(second.path, first.path);
        assert_eq!(bytes(&second), direct);
        // Another codec or another set is another stream (and cannot be made now).
        assert!(shared.get(&store, &paths, Codec::Xz).is_err());
        assert!(shared.get(&store, &paths[..1], Codec::Zstd).is_err());
        // Progress reaches the total exactly at the end.
        let mut seen = Vec::new();
        let mut on = |s: u64, t: u64| seen.push((s, t));
        let mut r = MadeReader::open(second, 1000, &mut on).unwrap();
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.sent(), direct.len() as u64);
        drop(r);
        assert_eq!(seen.last(), Some(&(1000, 1000)));
        assert!(seen.windows(2).all(|p| p[0].0 <= p[1].0));
        let dir = shared.dir.path().to_path_buf();
        drop(shared);
        assert!(!dir.exists(), "the streams go with the run");
    }

    #[test]
    fn concurrent_askers_share_one_making() {
        let w = tempfile::tempdir().unwrap();
        let (store, paths) = store_with(&w.path().join("store"), &["a", "b", "c"]);
        let shared = SharedStreams::new_in(&w.path().join("tmp")).unwrap();
        let got: Vec<Made> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|_| s.spawn(|| shared.get(&store, &paths, Codec::Zstd).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(got
            .iter()
            .all(|m| m.path == got[0].path && m.len == got[0].len));
        let files = fs::read_dir(shared.dir.path()).unwrap().count();
        assert_eq!(files, 1, "one stream file, no leftover part");
    }
}
