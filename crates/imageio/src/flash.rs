//! Writing an image to a card (or file), then reading it back to verify.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bmap::Bmap;
use crate::bmap_writer::{BmapStreamError, BmapWriter};
use crate::error::IoError;
use crate::hash::{HashReader, HashWriter, Sha256};
use crate::open::{decompress_error, image_size, open_image};
use crate::progress::ProgressReader;
use crate::pump::{pump, PumpError};
use crate::same_file::check_opened;
use crate::sparse::SparseWriter;

/// What [`flash`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashSummary {
    /// Raw image size in bytes.
    pub image_size: u64,
    /// Bytes actually written (holes were skipped).
    pub bytes_written: u64,
    /// Bytes read back and compared.
    pub bytes_verified: u64,
    /// sha256 of the raw image.
    pub image_sha256: Sha256,
}

/// Writes `image` (raw, .xz or .zst, told by content) to `device`, then verifies it.
///
/// With a `bmap`, only its mapped ranges are written (holes are seeked over) and each range's
/// checksum is checked on the way, so a bmap of another image is refused. Without one, a block
/// device gets every byte; a regular file gets holes for all-zero blocks. A regular file target
/// is created or truncated first, so it ends up equal to the raw image.
///
/// After an fsync and dropping the target's cached pages, every mapped range (or, without a
/// bmap, the whole image) is read back and compared by sha256.
/// `progress(raw_bytes_done, raw_total)` reports the write phase; `raw_total` is 0 when the size
/// is unknown. Call [`crate::check_target`] first: this function does not judge the target,
/// except that it refuses (before writing anything) a target that is the image itself.
pub fn flash(
    image: &Path,
    bmap: Option<&Bmap>,
    device: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<FlashSummary, IoError> {
    flash_with_hook(image, bmap, device, progress, &mut |_| Ok(()))
}

/// [`flash`] with a hook that runs between writing and verifying (tests corrupt the target there).
pub(crate) fn flash_with_hook(
    image: &Path,
    bmap: Option<&Bmap>,
    device: &Path,
    progress: &mut dyn FnMut(u64, u64),
    before_verify: &mut dyn FnMut(&Path) -> io::Result<()>,
) -> Result<FlashSummary, IoError> {
    let total = match bmap {
        Some(b) => b.image_size,
        None => image_size(image)?.unwrap_or(0),
    };
    let is_block = match fs::metadata(device) {
        Ok(m) => m.file_type().is_block_device(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(IoError::io(format!(
                "looking at the flash target {device:?}"
            ))(e))
        }
    };
    let target = open_target(device, is_block)?;
    // Checked on the opened target, before anything is truncated or written.
    check_opened(image, device, &target)?;
    if !is_block {
        target
            .set_len(0)
            .map_err(|e| write_error(image, device, e))?;
    }
    let mut reader =
        ProgressReader::new(HashReader::new(open_image(image)?), |n| progress(n, total));
    let fail = |e: PumpError| match e {
        PumpError::Read(e) => decompress_error(image, e),
        PumpError::Write(e) => write_error(image, device, e),
    };
    let bytes_written = match bmap {
        Some(b) => {
            let mut w = BmapWriter::new(&target, b);
            pump(&mut reader, &mut w).map_err(fail)?;
            let written = w.written();
            w.finish().map_err(|e| write_error(image, device, e))?;
            if !is_block {
                // Holes of a fresh file read as zero; the length must still reach the image end.
                target
                    .set_len(b.image_size)
                    .map_err(|e| write_error(image, device, e))?;
            }
            written
        }
        None if is_block => pump(&mut reader, &mut &target).map_err(fail)?,
        None => {
            let mut w = SparseWriter::new(&target);
            pump(&mut reader, &mut w).map_err(fail)?;
            let written = w.written();
            w.finish().map_err(|e| write_error(image, device, e))?;
            written
        }
    };
    let (_, image_len, image_sha256) = reader.into_inner().finish();
    target.sync_all().map_err(IoError::io(format!(
        "flushing the written data to {device:?} (was the card removed?)"
    )))?;
    drop(target);
    before_verify(device).map_err(IoError::io(format!("preparing to verify {device:?}")))?;
    let spans: Vec<(u64, u64, Sha256)> = match bmap {
        Some(b) => b
            .ranges
            .iter()
            .map(|r| {
                let (start, end) = b.range_bytes(r);
                (start, end, r.sha256)
            })
            .collect(),
        None => vec![(0, image_len, image_sha256)],
    };
    let bytes_verified = verify(device, &spans)?;
    Ok(FlashSummary {
        image_size: image_len,
        bytes_written,
        bytes_verified,
        image_sha256,
    })
}

fn open_target(device: &Path, is_block: bool) -> Result<File, IoError> {
    let mut opts = OpenOptions::new();
    opts.write(true);
    if is_block {
        // O_EXCL on a block device: the kernel refuses if it is mounted or claimed elsewhere.
        opts.custom_flags(rustix::fs::OFlags::EXCL.bits() as i32);
    } else {
        // Truncated only once it is known not to be the image.
        opts.create(true);
    }
    opts.open(device).map_err(|e| {
        if is_block && e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) {
            IoError::TargetBusy { path: device.to_path_buf() }
        } else {
            IoError::io(format!(
                "opening {device:?} for writing (writing to a card needs root or membership of the `disk` group)"
            ))(e)
        }
    })
}

/// Turns a failed write into the bmap mismatch it carries, or a device write error.
fn write_error(image: &Path, device: &Path, e: io::Error) -> IoError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<BmapStreamError>())
    {
        Some(BmapStreamError::Range {
            first,
            last,
            expected,
            actual,
        }) => IoError::BmapMismatch {
            image: image.to_path_buf(),
            first: *first,
            last: *last,
            expected: *expected,
            actual: *actual,
        },
        Some(BmapStreamError::Size { expected, actual }) => IoError::BmapSizeMismatch {
            image: image.to_path_buf(),
            expected: *expected,
            actual: *actual,
        },
        None => IoError::io(format!(
            "writing to {device:?} (was the card removed, is it write-protected or full?)"
        ))(e),
    }
}

/// Reads back each `start..end` span of `device` and compares its sha256; returns bytes compared.
fn verify(device: &Path, spans: &[(u64, u64, Sha256)]) -> Result<u64, IoError> {
    let ctx = || format!("reading back {device:?} to verify it (was the card removed?)");
    let mut f = File::open(device).map_err(IoError::io(ctx()))?;
    // Without this the read-back could come from the page cache instead of the card. Advisory:
    // where unsupported we still compare, only less strictly.
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
    let mut done = 0;
    for &(start, end, expected) in spans {
        f.seek(SeekFrom::Start(start)).map_err(IoError::io(ctx()))?;
        let mut hashed = HashWriter::new(io::sink());
        pump(&mut (&mut f).take(end - start), &mut hashed).map_err(|e| match e {
            PumpError::Read(e) | PumpError::Write(e) => IoError::io(ctx())(e),
        })?;
        let (_, _, actual) = hashed.finish();
        if actual != expected {
            return Err(IoError::VerifyFailed {
                device: device.to_path_buf(),
                start,
                end,
                expected,
                actual,
            });
        }
        done += end - start;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bmap_from_raw;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn raw_image(dir: &Path) -> std::path::PathBuf {
        let mut v = vec![0u8; 3 << 20];
        v[..9000].fill(0x11);
        v[(1 << 20) + 17..(1 << 20) + 70_000]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i % 250) as u8 + 1);
        *v.last_mut().unwrap() = 0x5A;
        let p = dir.join("t.img");
        File::create(&p).unwrap().write_all(&v).unwrap();
        p
    }

    fn flip_byte(at: u64) -> impl FnMut(&Path) -> io::Result<()> {
        move |dev: &Path| {
            let f = OpenOptions::new().read(true).write(true).open(dev)?;
            let mut b = [0u8];
            f.read_exact_at(&mut b, at)?;
            f.write_all_at(&[b[0] ^ 0x80], at)
        }
    }

    #[test]
    fn verification_catches_a_corrupted_write() {
        let dir = tempfile::tempdir().unwrap();
        let img = raw_image(dir.path());
        let bmap = bmap_from_raw(&img).unwrap();
        let out = dir.path().join("card");
        // A flipped byte inside a mapped range, with a bmap and without.
        for b in [Some(&bmap), None] {
            let e = flash_with_hook(
                &img,
                b,
                &out,
                &mut |_, _| {},
                &mut flip_byte((1 << 20) + 100),
            )
            .unwrap_err();
            match e {
                IoError::VerifyFailed { start, end, .. } => {
                    assert!(start <= (1 << 20) + 100 && (1 << 20) + 100 < end)
                }
                other => panic!("expected VerifyFailed, got {other}"),
            }
        }
        // Untouched, the same flash verifies.
        let s = flash_with_hook(&img, Some(&bmap), &out, &mut |_, _| {}, &mut |_| Ok(())).unwrap();
        assert_eq!(s.bytes_verified, s.bytes_written);
    }

    #[test]
    fn refuses_a_bmap_of_another_image() {
        let dir = tempfile::tempdir().unwrap();
        let img = raw_image(dir.path());
        let mut bmap = bmap_from_raw(&img).unwrap();
        bmap.ranges[1].sha256 = Sha256::of(b"something else");
        let e = flash(&img, Some(&bmap), &dir.path().join("card"), &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, IoError::BmapMismatch { .. }), "{e}");
        assert!(e.to_string().contains("different image"));
        bmap = bmap_from_raw(&img).unwrap();
        bmap.image_size += 4096;
        let e = flash(&img, Some(&bmap), &dir.path().join("card"), &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, IoError::BmapSizeMismatch { .. }), "{e}");
    }

    #[test]
    fn progress_reaches_the_total() {
        let dir = tempfile::tempdir().unwrap();
        let img = raw_image(dir.path());
        let mut last = (0, 0);
        flash(&img, None, &dir.path().join("card"), &mut |d, t| {
            last = (d, t)
        })
        .unwrap();
        assert_eq!(last, (3 << 20, 3 << 20));
    }
}
