//! Carries out an [`ImagePlan`]: sparse file, partition table, FAT32 boot, ext4 root, fix-up.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::Path;

use pideploy_fat32::FatBuilder;

use crate::error::{mib_ceil, ImageError};
use crate::ext4::{fix_root, make_root, owner_script, root_inode_paths};
use crate::inode_pin::pin_inodes;
use crate::plan::ImagePlan;
use crate::spec::ImageSpec;
use crate::table::write_table;
use crate::window::Window;

/// The steps of [`write_image`], in order, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Creating the sparse file and writing the partition table.
    Table,
    /// Writing the FAT32 boot partition (done/total in bytes).
    Boot,
    /// Creating and filling the ext4 root filesystem (done/total in bytes).
    Root,
    /// Pinning owners and times of every root inode (done/total in inodes).
    Fixup,
}

/// Writes the raw image of `plan` to `out`, which must not exist yet.
///
/// The file is sparse: its length is set first, and only non-zero regions are written. Progress
/// goes to `progress(stage, done, total)`. On error the partial file is removed.
pub fn write_image(
    spec: &ImageSpec,
    plan: &ImagePlan,
    out: &Path,
    progress: &mut dyn FnMut(Stage, u64, u64),
) -> Result<(), ImageError> {
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(out)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ImageError::OutputExists(out.to_path_buf()))
        }
        Err(e) => return Err(ImageError::io(format!("creating {}", out.display()))(e)),
    };
    let result = write_into(file, spec, plan, out, progress);
    if result.is_err() {
        // A half-written image must not pass for a good one; the error says what went wrong.
        let _ = std::fs::remove_file(out);
    }
    result
}

fn write_into(
    mut file: File,
    spec: &ImageSpec,
    plan: &ImagePlan,
    out: &Path,
    progress: &mut dyn FnMut(Stage, u64, u64),
) -> Result<(), ImageError> {
    let ctx = |what: &str| format!("{what} {}", out.display());

    // Check everything that can be checked before writing anything.
    let paths = root_inode_paths(&spec.root_dir)?;
    for o in &spec.root_owners {
        let rel = o.path.trim_matches('/');
        if std::fs::symlink_metadata(spec.root_dir.join(rel)).is_err() {
            return Err(ImageError::OwnerPathMissing {
                path: o.path.clone(),
                root: spec.root_dir.clone(),
            });
        }
    }
    let fat = build_fat(spec, plan)?;

    progress(Stage::Table, 0, 1);
    file.set_len(plan.total_size)
        .map_err(ImageError::io(ctx("setting the size of")))?;
    write_table(&mut file, plan)?;
    progress(Stage::Table, 1, 1);

    let boot_len = plan.boot.size_bytes();
    progress(Stage::Boot, 0, boot_len);
    let mut window = Window::new(&mut file, plan.boot.start_bytes(), boot_len);
    window
        .seek(SeekFrom::Start(0))
        .map_err(ImageError::io(ctx("seeking in")))?;
    fat.write(&mut window).map_err(|source| ImageError::Fat {
        context: ctx("writing the boot partition of"),
        source,
    })?;
    progress(Stage::Boot, boot_len, boot_len);

    file.sync_all().map_err(ImageError::io(ctx("flushing")))?;
    drop(file);

    let root_len = plan.root.size_bytes();
    progress(Stage::Root, 0, root_len);
    make_root(spec, plan, out)?;
    progress(Stage::Root, root_len, root_len);

    let inodes = paths.len() as u64;
    progress(Stage::Fixup, 0, inodes);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(out)
        .map_err(ImageError::io(ctx("opening")))?;
    let pinned = pin_inodes(&file, plan.root.start_bytes(), spec.timestamp)?;
    // At most one inode per staged path (fewer where mke2fs made hard links), lost+found and the
    // root included: more would mean these were not the tables mke2fs just wrote.
    if pinned == 0 || pinned > inodes {
        return Err(ImageError::Io {
            context: ctx("pinning owners and times in"),
            source: std::io::Error::other(format!(
                "{pinned} inodes in use, but the staged tree has {inodes} paths"
            )),
        });
    }
    file.sync_all().map_err(ImageError::io(ctx("flushing")))?;
    drop(file);
    if !spec.root_owners.is_empty() {
        fix_root(plan, out, owner_script(&spec.root_owners), spec.timestamp)?;
    }
    progress(Stage::Fixup, inodes, inodes);
    Ok(())
}

/// Lays out the boot volume in memory; fails before anything is written when it cannot fit.
fn build_fat(spec: &ImageSpec, plan: &ImagePlan) -> Result<FatBuilder, ImageError> {
    let hidden = u32::try_from(plan.boot.start_lba)
        .map_err(|_| ImageError::BadTable("boot partition starts beyond 2 TiB".to_string()))?;
    let fat_err = |context: String| move |source| ImageError::Fat { context, source };
    let mut fat = FatBuilder::new(
        plan.boot.size_bytes(),
        plan.boot_volume_id,
        &spec.boot_label,
        hidden,
    )
    .map_err(fat_err("preparing the FAT32 boot partition".to_string()))?;
    for f in &spec.boot_files {
        let path = f.path.trim_start_matches('/');
        if path.is_empty()
            || path
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(ImageError::BadBootPath(f.path.clone()));
        }
        fat.add_file(path, f.data.clone())
            .map_err(fat_err(format!("adding boot file {}", f.path)))?;
    }
    let needed = fat.required_bytes();
    if needed > fat.capacity_bytes() {
        // Report what the whole partition would need: content plus the FATs and reserved area.
        let overhead = plan.boot.size_bytes() - fat.capacity_bytes();
        return Err(ImageError::BootContentTooLarge {
            needed: needed + overhead,
            boot_size: plan.boot.size_bytes(),
            needed_mib: mib_ceil(needed + overhead),
        });
    }
    Ok(fat)
}
