//! Where the harness reads boot-partition files from: the image's FAT partition (what a Pi does),
//! or a host directory standing in for it (for tests of the firmware/boot loop without an image).

use std::fs;
use std::path::{Path, PathBuf};

/// A boot-partition file could not be read (a missing file is not an error: it is `None`).
#[derive(Debug, thiserror::Error)]
pub enum BootSourceError {
    /// Reading the image's boot partition failed.
    #[error("reading the boot partition of {image}: {message}; is it an image pideploy built?")]
    Image {
        /// The image.
        image: PathBuf,
        /// What the image reader said.
        message: String,
    },
    /// Reading a host directory failed.
    #[error("reading {path}: {source}")]
    Dir {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The boot partition as the firmware sees it.
#[derive(Debug, Clone)]
pub enum BootSource {
    /// The first (FAT) partition of a raw disk image.
    Image(PathBuf),
    /// A host directory whose files stand for the boot partition's.
    Dir(PathBuf),
}

impl BootSource {
    /// Reads every file the firmware may ask for, case-insensitively as FAT does.
    ///
    /// The image is opened afresh on every call, because the guest may have rewritten the boot
    /// partition (e.g. `tryboot.txt`) since the last boot.
    pub fn snapshot(&self) -> Result<BootFiles, BootSourceError> {
        match self {
            BootSource::Dir(dir) => Ok(BootFiles::Dir(dir.clone())),
            BootSource::Image(image) => crate::image_source::open(image),
        }
    }
}

/// An open boot partition.
pub enum BootFiles {
    /// Files under a host directory.
    Dir(PathBuf),
    /// Files of an image's FAT partition.
    Image(crate::image_source::ImageBoot),
}

impl BootFiles {
    /// Reads `path` (`/`-separated, no leading `/`); `Ok(None)` when there is no such file.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, BootSourceError> {
        match self {
            BootFiles::Dir(dir) => read_dir_case_insensitive(dir, path),
            BootFiles::Image(boot) => boot.read(path),
        }
    }
}

/// Walks `path` one component at a time, matching names without regard to ASCII case.
fn read_dir_case_insensitive(root: &Path, path: &str) -> Result<Option<Vec<u8>>, BootSourceError> {
    let mut current = root.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let entries = match fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(None),
            Err(source) => {
                return Err(BootSourceError::Dir {
                    path: current,
                    source,
                })
            }
        };
        let mut found = None;
        for entry in entries {
            let entry = entry.map_err(|source| BootSourceError::Dir {
                path: current.clone(),
                source,
            })?;
            if entry
                .file_name()
                .to_string_lossy()
                .eq_ignore_ascii_case(part)
            {
                found = Some(entry.path());
                break;
            }
        }
        match found {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    if !current.is_file() {
        return Ok(None);
    }
    fs::read(&current)
        .map(Some)
        .map_err(|source| BootSourceError::Dir {
            path: current,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_lookup_ignores_case_and_rejects_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("Gen-1")).unwrap();
        fs::write(dir.path().join("Gen-1/Kernel_2712.IMG"), b"K").unwrap();
        let files = BootSource::Dir(dir.path().to_path_buf())
            .snapshot()
            .unwrap();
        assert_eq!(
            files.read("gen-1/kernel_2712.img").unwrap(),
            Some(b"K".to_vec())
        );
        assert_eq!(files.read("gen-1").unwrap(), None);
        assert_eq!(files.read("gen-1/missing").unwrap(), None);
        assert_eq!(files.read("gen-1/kernel_2712.img/x").unwrap(), None);
    }
}
