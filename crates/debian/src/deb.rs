//! Reading .deb files: an ar archive of `debian-binary`, `control.tar[.gz|.xz|.zst]` and
//! `data.tar[.gz|.xz|.zst]`, read as a stream so a .deb can come straight from a download or a cache.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::ar::ArReader;
use crate::control;
use crate::decompress::Compression;
use crate::error::DebError;
use crate::unpack::{self, Unpacker};

pub use crate::unpack::{DataEntry, EntryKind, UnpackSummary};

/// The largest `control` file read; real ones are a few KiB.
const MAX_CONTROL_BYTES: u64 = 16 << 20;

/// Reads a .deb (ar archive: debian-binary, control.tar.{gz,xz,zst,or none}, data.tar.{gz,xz,zst,or none})
/// and returns the fields of its `control` file.
pub fn read_control(r: impl Read) -> Result<BTreeMap<String, String>, DebError> {
    let mut ar = open(r)?;
    let member = seek_member(&mut ar, "control.tar")?;
    let mut archive =
        tar::Archive::new(Compression::from_member_name(&member)?.reader(ar.body(), &member)?);
    let entries = archive
        .entries()
        .map_err(|e| DebError::io(format!("reading {member}"), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DebError::io(format!("reading {member}"), e))?;
        let path = unpack::archive_path(&entry.path_bytes())?;
        if path.as_os_str() != "control" {
            continue;
        }
        if entry.size() > MAX_CONTROL_BYTES {
            return Err(DebError::Deb(format!(
                "the control file in {member} is {} bytes; more than {} MiB is not a control file",
                entry.size(),
                MAX_CONTROL_BYTES >> 20
            )));
        }
        let mut text = String::new();
        entry
            .take(MAX_CONTROL_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| DebError::io(format!("reading control from {member}"), e))?;
        let mut paragraphs = control::parse(&text)?;
        if paragraphs.len() != 1 {
            return Err(DebError::Deb(format!(
                "the control file holds {} paragraphs, expected exactly one",
                paragraphs.len()
            )));
        }
        return Ok(paragraphs.remove(0).fields);
    }
    Err(DebError::Deb(format!("{member} has no `control` file")))
}

/// Unpacks data.tar into dest (which must exist): dirs, regular files (exec bit kept, other mode bits
/// 0644/0755), symlinks kept verbatim (absolute targets too), hard links materialised as copies; device
/// nodes and fifos are skipped and reported in the returned summary; any entry escaping dest (`..`, absolute
/// paths) is an error.
///
/// Symlinks already under `dest` (e.g. a merged-/usr `lib -> usr/lib`) are followed as if `dest` were the
/// root directory, so unpacking several packages into one tree behaves like dpkg in a chroot and can never
/// write outside `dest`. Ownership and timestamps are not applied.
pub fn extract_data(r: impl Read, dest: &Path) -> Result<UnpackSummary, DebError> {
    let mut unpacker = Unpacker::new(dest)?;
    for_each_data_entry(r, |entry| unpacker.unpack(entry))?;
    Ok(unpacker.finish())
}

/// Lists data.tar entries (path, kind, size, mode) without unpacking. The archive's root entry (`./`)
/// is left out; paths have no leading `./`.
pub fn list_data(r: impl Read) -> Result<Vec<DataEntry>, DebError> {
    let mut out = Vec::new();
    for_each_data_entry(r, |entry| {
        if let Some(e) = unpack::describe(entry)? {
            out.push(e);
        }
        Ok(())
    })?;
    Ok(out)
}

fn for_each_data_entry<R: Read>(
    r: R,
    mut f: impl FnMut(&mut tar::Entry<'_, Box<dyn Read + '_>>) -> Result<(), DebError>,
) -> Result<(), DebError> {
    let mut ar = open(r)?;
    let member = seek_member(&mut ar, "data.tar")?;
    let mut archive =
        tar::Archive::new(Compression::from_member_name(&member)?.reader(ar.body(), &member)?);
    let entries = archive
        .entries()
        .map_err(|e| DebError::io(format!("reading {member}"), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DebError::io(format!("reading {member}"), e))?;
        f(&mut entry)?;
    }
    Ok(())
}

/// Opens the ar container and checks the `debian-binary` format version.
fn open<R: Read>(r: R) -> Result<ArReader<R>, DebError> {
    let mut ar = ArReader::new(r)?;
    let first = ar.next_member()?;
    if first.as_ref().map(|h| h.name.as_str()) != Some("debian-binary") {
        return Err(DebError::Deb(format!(
            "first member is {:?}, expected `debian-binary`",
            first.map(|h| h.name)
        )));
    }
    let mut version = String::new();
    ar.body()
        .take(64)
        .read_to_string(&mut version)
        .map_err(|e| DebError::io("reading debian-binary", e))?;
    if !version.starts_with("2.") {
        return Err(DebError::Deb(format!(
            "unsupported .deb format version `{}` (only 2.x is supported)",
            version.trim()
        )));
    }
    Ok(ar)
}

/// Advances to the first member whose name starts with `prefix` and returns its full name.
fn seek_member<R: Read>(ar: &mut ArReader<R>, prefix: &str) -> Result<String, DebError> {
    while let Some(h) = ar.next_member()? {
        if h.name.starts_with(prefix) {
            return Ok(h.name);
        }
    }
    Err(DebError::Deb(format!(
        "no `{prefix}*` member in the archive"
    )))
}

#[cfg(test)]
mod tests;
