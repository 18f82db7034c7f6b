//! Writing the finished raw image to the user's output file, compressed as its name says.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::compression::Compression;
use crate::error::IoError;
use crate::hash::{HashWriter, Sha256};
use crate::progress::ProgressReader;
use crate::pump::{pump, PumpError};
use crate::sparse::SparseWriter;
use crate::xz::{self, XzSettings};
use crate::zst;

/// Most xz encoder threads used, bounding memory (about 150 MiB each) on many-core machines.
const XZ_MAX_THREADS: u32 = 16;

/// What [`write_output`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSummary {
    /// Raw image bytes read.
    pub bytes_in: u64,
    /// Bytes of the output file (for a raw output: its length, holes included).
    pub bytes_out: u64,
    /// sha256 of the output file's contents.
    pub sha256_out: Sha256,
}

/// Compresses the raw image `raw` into `out`.
///
/// The output is written to a temporary file beside `out` and renamed over it only when complete
/// and synced, so `out` is never left partial. `threads` = 0 means one per available CPU; the
/// bytes do not depend on it (xz uses at most one thread per 24 MiB block, and at most 16).
/// `progress(bytes_read, raw_size)` is called as the input is read.
///
/// - [`Compression::Xz`]: preset 6, CRC64, multi-threaded with a fixed 24 MiB block size.
/// - [`Compression::Zstd`]: level 3, multi-threaded, raw size and checksum in the frame.
/// - [`Compression::None`]: sparse copy; all-zero 4 KiB blocks become holes.
pub fn write_output(
    raw: &Path,
    out: &Path,
    c: Compression,
    threads: u32,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<OutputSummary, IoError> {
    write_output_with(raw, out, c, threads, XzSettings::default(), progress)
}

pub(crate) fn write_output_with(
    raw: &Path,
    out: &Path,
    c: Compression,
    threads: u32,
    xz_settings: XzSettings,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<OutputSummary, IoError> {
    let threads = match threads {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        n => n,
    };
    let input = File::open(raw).map_err(IoError::io(format!("opening the raw image {raw:?}")))?;
    let total = input
        .metadata()
        .map_err(IoError::io(format!(
            "reading the size of the raw image {raw:?}"
        )))?
        .len();
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".pideploy-out-")
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(IoError::io(format!(
            "creating a temporary file in {dir:?} for {out:?} (does the directory exist and is it writable?)"
        )))?;
    let names = Names {
        raw,
        tmp: tmp.path(),
    };
    let file = tmp.as_file();
    let mut reader = ProgressReader::new(input, |n| progress(n, total));
    let (bytes_out, sha256_out) = match c {
        Compression::None => sparse_copy(&mut reader, file, &names)?,
        Compression::Xz => {
            let mut hashed = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
            // Threads beyond one per block would idle, and each costs ~150 MiB at preset 6; the
            // bytes do not depend on the count, so capping is free.
            let blocks = total.div_ceil(xz_settings.block_size).max(1);
            let threads = threads
                .min(u32::try_from(blocks).unwrap_or(u32::MAX))
                .min(XZ_MAX_THREADS);
            let mut enc = xz::encoder(&mut hashed, threads, xz_settings)?;
            pump(&mut reader, &mut enc).map_err(|e| names.error(e))?;
            enc.finish().map_err(|e| names.error(PumpError::Write(e)))?;
            names.finish_hashed(hashed)?
        }
        Compression::Zstd => {
            let mut hashed = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
            let mut enc = zst::encoder(&mut hashed, threads, Some(total))
                .map_err(|e| names.error(PumpError::Write(e)))?;
            pump(&mut reader, &mut enc).map_err(|e| names.error(e))?;
            enc.finish().map_err(|e| names.error(PumpError::Write(e)))?;
            names.finish_hashed(hashed)?
        }
    };
    let bytes_in = reader.total();
    file.sync_all()
        .map_err(|e| names.error(PumpError::Write(e)))?;
    // Temp files are created 0600; an image is an ordinary readable file like `.img` outputs.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| names.error(PumpError::Write(e)))?;
    }
    tmp.persist(out).map_err(|e| {
        IoError::io(format!("moving the finished output into place as {out:?}"))(e.error)
    })?;
    // Makes the rename durable; the output is complete either way, so a failure is not reported.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(OutputSummary {
        bytes_in,
        bytes_out,
        sha256_out,
    })
}

/// The files of one [`write_output`] call, for error messages.
struct Names<'a> {
    raw: &'a Path,
    tmp: &'a Path,
}

impl Names<'_> {
    fn error(&self, e: PumpError) -> IoError {
        match e {
            PumpError::Read(e) => IoError::io(format!("reading the raw image {:?}", self.raw))(e),
            PumpError::Write(e) => {
                IoError::io(format!("writing {:?} (is the disk full?)", self.tmp))(e)
            }
        }
    }

    /// Flushes the buffered file under a [`HashWriter`] and returns its count and digest.
    fn finish_hashed(
        &self,
        hashed: HashWriter<BufWriter<&File>>,
    ) -> Result<(u64, Sha256), IoError> {
        let (buf, n, digest) = hashed.finish();
        buf.into_inner()
            .map_err(|e| self.error(PumpError::Write(e.into_error())))?;
        Ok((n, digest))
    }
}

/// Copies with all-zero blocks left as holes; the digest covers the logical bytes, holes included.
fn sparse_copy(
    reader: &mut dyn Read,
    file: &File,
    names: &Names<'_>,
) -> Result<(u64, Sha256), IoError> {
    let mut sparse = SparseWriter::new(file);
    let mut hashed = HashWriter::new(&mut sparse);
    pump(reader, &mut hashed).map_err(|e| names.error(e))?;
    let (_, n, digest) = hashed.finish();
    sparse
        .finish()
        .map_err(|e| names.error(PumpError::Write(e)))?;
    Ok((n, digest))
}
