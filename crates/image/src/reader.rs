//! Reading an image back: partition table, FAT boot files and ext4 root files, all in user space.

use std::fs::File;
use std::path::{Path, PathBuf};

use ext4_view::{Ext4, Ext4Read};
use pideploy_fat32::FatReader;

use crate::error::ImageError;
use crate::plan::SECTOR_SIZE;
use crate::table::{read_table, PartitionTable};
use crate::window::Window;

/// What kind of inode a root path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Device, fifo or socket.
    Special,
}

/// Metadata of one root path (not following a final symlink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootMeta {
    /// Permission bits (`0o7777` mask).
    pub mode: u16,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// File, directory, symlink or special.
    pub kind: RootKind,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// A raw image file opened for reading.
#[derive(Debug)]
pub struct ImageReader {
    path: PathBuf,
    file: File,
    table: PartitionTable,
}

/// The ext4 partition as `ext4-view` wants it: absolute reads inside one window of the image.
struct PartitionRead {
    file: File,
    start: u64,
    len: u64,
}

impl Ext4Read for PartitionRead {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        use std::io::{Read, Seek, SeekFrom};
        let end = start_byte.checked_add(dst.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(format!(
                "read of {} bytes at {start_byte} is past the end of the {}-byte root partition",
                dst.len(),
                self.len
            )
            .into());
        }
        self.file.seek(SeekFrom::Start(self.start + start_byte))?;
        self.file.read_exact(dst)?;
        Ok(())
    }
}

impl ImageReader {
    /// Opens the image at `path` and reads its partition table.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let mut file = File::open(path)
            .map_err(ImageError::io(format!("opening image {}", path.display())))?;
        let table = read_table(&mut file)?;
        Ok(ImageReader {
            path: path.to_path_buf(),
            file,
            table,
        })
    }

    /// The image's partition table.
    pub fn table(&self) -> &PartitionTable {
        &self.table
    }

    fn window(&self, index: u32) -> Result<(File, u64, u64), ImageError> {
        let p = self.table.partition(index).ok_or_else(|| {
            ImageError::BadTable(format!("{} has no partition {index}", self.path.display()))
        })?;
        let file = self
            .file
            .try_clone()
            .map_err(ImageError::io(format!("reopening {}", self.path.display())))?;
        Ok((file, p.start_lba * SECTOR_SIZE, p.size_lba * SECTOR_SIZE))
    }

    /// The FAT boot filesystem of partition 1.
    pub fn boot(&mut self) -> Result<FatReader<Window<File>>, ImageError> {
        let (file, start, len) = self.window(1)?;
        FatReader::open(Window::new(file, start, len)).map_err(|source| ImageError::Fat {
            context: format!("opening the boot partition of {}", self.path.display()),
            source,
        })
    }

    /// The ext4 root filesystem of partition 2, for many look-ups in a row.
    pub fn root(&self) -> Result<Ext4, ImageError> {
        let (file, start, len) = self.window(2)?;
        Ext4::load(Box::new(PartitionRead { file, start, len })).map_err(|source| {
            ImageError::Ext4 {
                path: "/".to_string(),
                source,
            }
        })
    }

    /// Content of the root file `path` (absolute; symlinks are followed).
    pub fn root_read_file(&self, path: &str) -> Result<Vec<u8>, ImageError> {
        self.root()?.read(path).map_err(ext4_err(path))
    }

    /// Target of the root symlink `path`.
    pub fn root_read_link(&self, path: &str) -> Result<String, ImageError> {
        let target = self.root()?.read_link(path).map_err(ext4_err(path))?;
        Ok(String::from_utf8_lossy(target.as_ref()).into_owned())
    }

    /// Names in the root directory `path`, sorted, without `.` and `..`.
    pub fn root_list_dir(&self, path: &str) -> Result<Vec<String>, ImageError> {
        let fs = self.root()?;
        let mut names = Vec::new();
        for entry in fs.read_dir(path).map_err(ext4_err(path))? {
            let entry = entry.map_err(ext4_err(path))?;
            let name = String::from_utf8_lossy(entry.file_name().as_ref()).into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The regular files directly in the root directory `dir` of at most `max_size` bytes each,
    /// as (name, content) sorted by name. The file system is loaded once for all of them, so
    /// this stays linear in the number of files; larger files and other kinds are left out.
    pub fn root_read_files(
        &self,
        dir: &str,
        max_size: u64,
    ) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
        let fs = self.root()?;
        let mut out = Vec::new();
        for entry in fs.read_dir(dir).map_err(ext4_err(dir))? {
            let entry = entry.map_err(ext4_err(dir))?;
            let name = String::from_utf8_lossy(entry.file_name().as_ref()).into_owned();
            let path = entry.path();
            let meta = fs.symlink_metadata(&path).map_err(ext4_err(dir))?;
            if !meta.file_type().is_regular_file() || meta.len() > max_size {
                continue;
            }
            out.push((name, fs.read(&path).map_err(ext4_err(dir))?));
        }
        out.sort();
        Ok(out)
    }

    /// Mode, owner, size and kind of the root path `path`.
    pub fn root_metadata(&self, path: &str) -> Result<RootMeta, ImageError> {
        let m = self
            .root()?
            .symlink_metadata(path)
            .map_err(ext4_err(path))?;
        let t = m.file_type();
        let kind = if t.is_regular_file() {
            RootKind::File
        } else if t.is_dir() {
            RootKind::Dir
        } else if t.is_symlink() {
            RootKind::Symlink
        } else {
            RootKind::Special
        };
        Ok(RootMeta {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            kind,
            mtime: m.modified().seconds(),
        })
    }
}

fn ext4_err(path: &str) -> impl FnOnce(ext4_view::Ext4Error) -> ImageError {
    let path = path.to_string();
    move |source| ImageError::Ext4 { path, source }
}
