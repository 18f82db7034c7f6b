//! Opening an image of any supported kind as a stream of its raw bytes.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::IoError;
use crate::pump::{pump, PumpError};
use crate::size::{xz_size, zstd_size};
use crate::sparse::SparseWriter;

/// How an image file is stored, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Raw,
    Xz,
    Zstd,
}

/// Magic numbers of compressors we recognise but do not read, so a raw-looking
/// `.gz` is refused instead of being flashed as if it were a disk.
const UNSUPPORTED: &[(&[u8], &str)] = &[
    (b"\x1F\x8B", "gzip"),
    (b"BZh", "bzip2"),
    (b"\x04\x22\x4D\x18", "lz4"),
    (b"PK\x03\x04", "zip"),
];

/// Reads the first bytes of `f` (then rewinds) and tells its format.
pub(crate) fn detect(f: &mut File, path: &Path) -> Result<Format, IoError> {
    let ctx = || format!("reading the start of image {path:?}");
    let mut head = [0u8; 6];
    let n = crate::pump::read_full(f, &mut head).map_err(IoError::io(ctx()))?;
    f.seek(SeekFrom::Start(0)).map_err(IoError::io(ctx()))?;
    format_of(&head[..n]).map_err(|format| IoError::UnsupportedFormat {
        path: path.to_path_buf(),
        format,
    })
}

/// Pure half of [`detect`]: the format from the first (up to 6) bytes.
pub(crate) fn format_of(head: &[u8]) -> Result<Format, &'static str> {
    if head.starts_with(b"\xFD7zXZ\0") {
        return Ok(Format::Xz);
    }
    if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        return Ok(Format::Zstd);
    }
    match UNSUPPORTED
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
    {
        Some((_, name)) => Err(name),
        None => Ok(Format::Raw),
    }
}

fn open_file(p: &Path) -> Result<File, IoError> {
    File::open(p).map_err(IoError::io(format!("opening image {p:?}")))
}

/// Opens any image (raw, xz or zstd, told by its magic bytes, not its name) as a `Read` of the
/// raw disk bytes. Decompression errors surface as `io::Error`s from `read`.
pub fn open_image(p: &Path) -> Result<Box<dyn Read + Send>, IoError> {
    let mut f = open_file(p)?;
    Ok(match detect(&mut f, p)? {
        Format::Raw => Box::new(f),
        // Multi-stream: `cat a.xz b.xz` is a valid xz file and so is a padded one.
        Format::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(
            BufReader::with_capacity(1 << 20, f),
        )),
        Format::Zstd => Box::new(
            zstd::stream::read::Decoder::new(f)
                .map_err(IoError::io(format!("starting zstd decoding of {p:?}")))?,
        ),
    })
}

/// The raw size of an image without decompressing it: the file length of a raw image, the
/// sizes recorded in an xz index or in zstd frame headers. `None` when the file does not record
/// it (e.g. zstd written by a streaming tool) or its bookkeeping is damaged.
pub fn image_size(p: &Path) -> Result<Option<u64>, IoError> {
    let mut f = open_file(p)?;
    let ctx = || format!("reading the size recorded in image {p:?}");
    match detect(&mut f, p)? {
        Format::Raw => f
            .metadata()
            .map(|m| Some(m.len()))
            .map_err(IoError::io(ctx())),
        Format::Xz => xz_size(&mut f).map_err(IoError::io(ctx())),
        Format::Zstd => zstd_size(&mut f).map_err(IoError::io(ctx())),
    }
}

/// Makes the image available as a raw file: returns `p` itself when it is already raw, otherwise
/// decompresses it into a sparse file in `scratch_dir` (named after the image without its
/// compression ending) and returns that path. The file appears only when complete.
pub fn materialize_raw(p: &Path, scratch_dir: &Path) -> Result<PathBuf, IoError> {
    let mut f = open_file(p)?;
    if detect(&mut f, p)? == Format::Raw {
        return Ok(p.to_path_buf());
    }
    drop(f);
    let out = scratch_dir.join(raw_name(p));
    let tmp = tempfile::Builder::new()
        .prefix(".pideploy-raw-")
        .tempfile_in(scratch_dir)
        .map_err(IoError::io(format!(
            "creating a temporary file in {scratch_dir:?}"
        )))?;
    let write_ctx = || {
        format!(
            "writing the decompressed image to {:?} (is the disk full?)",
            tmp.path()
        )
    };
    let mut reader = open_image(p)?;
    let mut sparse = SparseWriter::new(tmp.as_file());
    match pump(&mut reader, &mut sparse) {
        Ok(_) => {}
        Err(PumpError::Read(e)) => return Err(decompress_error(p, e)),
        Err(PumpError::Write(e)) => return Err(IoError::io(write_ctx())(e)),
    }
    sparse.finish().map_err(IoError::io(write_ctx()))?;
    tmp.persist(&out).map_err(|e| {
        IoError::io(format!(
            "moving the decompressed image into place as {out:?}"
        ))(e.error)
    })?;
    Ok(out)
}

/// The error for a failed read of a (possibly compressed) image.
pub(crate) fn decompress_error(p: &Path, e: io::Error) -> IoError {
    IoError::io(format!(
        "reading image {p:?} failed; if it is compressed it may be truncated or damaged (check it with \
         `xz -t` or `zstd -t`, then build or download it again)"
    ))(e)
}

/// `pi.img.xz` -> `pi.img`; `pi.xz` -> `pi.img`.
fn raw_name(p: &Path) -> String {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("image");
    let lower = name.to_ascii_lowercase();
    let stem = [".xz", ".zst"]
        .iter()
        .find(|s| lower.ends_with(*s) && name.len() > s.len())
        .map_or(name, |s| &name[..name.len() - s.len()]);
    if stem.to_ascii_lowercase().ends_with(".img") {
        stem.to_string()
    } else {
        format!("{stem}.img")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_magic() {
        assert_eq!(format_of(b"\xFD7zXZ\0").unwrap(), Format::Xz);
        assert_eq!(
            format_of(&[0x28, 0xB5, 0x2F, 0xFD, 0, 0]).unwrap(),
            Format::Zstd
        );
        assert_eq!(format_of(&[0; 6]).unwrap(), Format::Raw);
        assert_eq!(format_of(b"").unwrap(), Format::Raw);
        assert_eq!(format_of(b"\xFD7zX").unwrap(), Format::Raw);
        assert_eq!(format_of(b"\x1F\x8B\x08\0\0\0").unwrap_err(), "gzip");
    }

    #[test]
    fn raw_names() {
        assert_eq!(raw_name(Path::new("a/pi.img.xz")), "pi.img");
        assert_eq!(raw_name(Path::new("pi.zst")), "pi.img");
        assert_eq!(raw_name(Path::new("disk")), "disk.img");
    }
}
