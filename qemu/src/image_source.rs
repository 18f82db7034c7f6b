//! Reading the boot partition of a raw image through `pideploy_image::ImageReader`.

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};

use pideploy_fat32::FatError;
use pideploy_image::{FatReader, ImageReader, Window};

use crate::boot_source::{BootFiles, BootSourceError};

/// The FAT boot partition of one image, opened.
pub struct ImageBoot {
    image: PathBuf,
    // FatReader reads through `&mut self`; the firmware's reader is a shared `Fn`.
    fat: RefCell<FatReader<Window<File>>>,
}

/// Opens `image` and its boot partition.
pub(crate) fn open(image: &Path) -> Result<BootFiles, BootSourceError> {
    let err = |e: &dyn std::fmt::Display| BootSourceError::Image {
        image: image.to_path_buf(),
        message: e.to_string(),
    };
    let mut reader = ImageReader::open(image).map_err(|e| err(&e))?;
    let fat = reader.boot().map_err(|e| err(&e))?;
    Ok(BootFiles::Image(ImageBoot {
        image: image.to_path_buf(),
        fat: RefCell::new(fat),
    }))
}

impl ImageBoot {
    /// Reads `path`; a missing file or a directory is `None`, as the firmware sees it.
    pub(crate) fn read(&self, path: &str) -> Result<Option<Vec<u8>>, BootSourceError> {
        match self.fat.borrow_mut().read_file(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(FatError::NotFound { .. } | FatError::WrongKind { .. }) => Ok(None),
            Err(e) => Err(BootSourceError::Image {
                image: self.image.clone(),
                message: format!("reading `{path}`: {e}"),
            }),
        }
    }
}
