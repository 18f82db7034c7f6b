//! Refusing to flash an image onto itself: the same file under another name (a symlink, a hard
//! link, `/proc/self/fd/N`), the same device node, or a loop device the image backs. Truncating
//! the target would otherwise destroy the source while it is read (a compressed source too: its
//! decompressed stream still comes from that file).

use std::fs::{self, File, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::IoError;

/// What makes two paths the same data: the inode, or for a device node the device it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Identity {
    Inode { dev: u64, ino: u64 },
    Device { rdev: u64 },
}

fn identity(m: &Metadata) -> Identity {
    let ft = m.file_type();
    if ft.is_block_device() || ft.is_char_device() {
        Identity::Device { rdev: m.rdev() }
    } else {
        Identity::Inode {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// Refuses when `target` (by path, links followed) is `image`. A path that does not exist
/// yet cannot be the image; its own open reports what is wrong with it.
pub fn check_not_image(image: &Path, target: &Path) -> Result<(), IoError> {
    match fs::metadata(target) {
        Ok(t) => check_metadata(image, target, &t),
        Err(_) => Ok(()),
    }
}

/// [`check_not_image`] on a target already opened, so that nothing can swap the path between
/// the check and the write.
pub(crate) fn check_opened(image: &Path, target: &Path, opened: &File) -> Result<(), IoError> {
    let t = opened.metadata().map_err(IoError::io(format!(
        "looking at the flash target {target:?}"
    )))?;
    check_metadata(image, target, &t)
}

fn check_metadata(image: &Path, target: &Path, t: &Metadata) -> Result<(), IoError> {
    let Ok(i) = fs::metadata(image) else {
        return Ok(());
    };
    let same = identity(&i) == identity(t);
    let backed_by_image = !same
        && t.file_type().is_block_device()
        && crate::loops::backing_file_of(t.rdev())
            .and_then(|b| fs::metadata(b).ok())
            .is_some_and(|b| identity(&b) == identity(&i));
    if same || backed_by_image {
        return Err(IoError::TargetIsImage {
            image: image.to_path_buf(),
            target: target.to_path_buf(),
            how: if same {
                "is the same file as"
            } else {
                "is a loop device over"
            },
        });
    }
    Ok(())
}
