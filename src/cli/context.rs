//! Resolving what a command works on: directories, config, board, lock file.

use std::path::{Path, PathBuf};

use pideploy_cache::{Cache, LockFile};
use pideploy_config::{Board, HostConfig};
use pideploy_store::LocalStore;

use super::{Global, Target};

/// Directories and loaded inputs of a command.
pub struct Context {
    /// Artifact cache.
    pub cache: Cache,
    /// Local store.
    pub store: LocalStore,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `$XDG_CACHE_HOME/pideploy` or `~/.cache/pideploy`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"))
        .join("pideploy")
}

/// `$XDG_DATA_HOME/pideploy` or `~/.local/share/pideploy`.
pub fn default_store_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".local/share"))
        .join("pideploy")
}

impl Context {
    /// Opens the cache and store named by the global options (or their defaults).
    pub fn open(g: &Global) -> Res<Self> {
        let cache_dir = g.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let store_dir = g.store.clone().unwrap_or_else(default_store_dir);
        Ok(Context {
            cache: Cache::open(&cache_dir)?,
            store: LocalStore::open(&store_dir)?,
        })
    }
}

/// The invoking user's public keys (`~/.ssh/id_*.pub`), for the default config.
pub fn own_public_keys() -> Vec<String> {
    let dir = home().join(".ssh");
    let mut keys = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if n.starts_with("id_") && n.ends_with(".pub") {
                if let Ok(k) = std::fs::read_to_string(&p) {
                    keys.push(k.trim().to_string());
                }
            }
        }
    }
    keys
}

/// Config, board and lock location for a command.
pub struct Loaded {
    /// The host config.
    pub config: HostConfig,
    /// The board.
    pub board: Board,
    /// Where the lock file is (or goes).
    pub lock_path: PathBuf,
}

/// Loads the config (file or embedded default) and the board, and finds the lock file.
pub fn load(t: &Target) -> Res<Loaded> {
    let (mut config, dir) = match &t.config {
        Some(p) => {
            let c = HostConfig::load(p)?;
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf);
            (c, dir.unwrap_or_else(|| PathBuf::from(".")))
        }
        None => {
            let mut keys = own_public_keys();
            for f in &t.authorized_key {
                let k = std::fs::read_to_string(f)
                    .map_err(|e| format!("reading --authorized-key {}: {e}", f.display()))?;
                keys.push(k.trim().to_string());
            }
            let board = t.board.clone().unwrap_or_else(|| "rpi5".into());
            (HostConfig::default_for(&board, keys), PathBuf::from("."))
        }
    };
    if t.config.is_some() && !t.authorized_key.is_empty() {
        return Err("--authorized-key only applies to the default config; put keys in users[].ssh_authorized_keys of your config".into());
    }
    if let Some(b) = &t.board {
        config.board = b.clone();
    }
    let board = Board::load(&config.board)?;
    let lock_path = t.lock.clone().unwrap_or_else(|| dir.join("pideploy.lock"));
    Ok(Loaded {
        config,
        board,
        lock_path,
    })
}

/// Reads the lock file, or says how to make one.
pub fn read_lock(path: &Path) -> Res<(LockFile, String)> {
    if !path.exists() {
        return Err(format!(
            "no lock file at {}: run `pideploy lock` (online) to resolve and pin packages",
            path.display()
        )
        .into());
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok((LockFile::load(path)?, text))
}
