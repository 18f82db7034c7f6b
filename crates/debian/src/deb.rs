//! Reading .deb files: an ar archive of `debian-binary`, `control.tar[.gz|.xz|.zst]` and
//! `data.tar[.gz|.xz|.zst]`, read as a stream so a .deb can come straight from a download or a cache.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::ControlFlow;
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
    let mut found = None;
    let member = for_each_member_entry(r, "control.tar", |member, entry| {
        let path = unpack::archive_path(&entry.path_bytes())?;
        if path.as_os_str() != "control" {
            return Ok(ControlFlow::Continue(()));
        }
        let bytes = read_capped(member, "control", entry)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| DebError::Deb(format!("the control file in {member} is not UTF-8")))?;
        found = Some(text);
        Ok(ControlFlow::Break(()))
    })?;
    let Some(text) = found else {
        return Err(DebError::Deb(format!("{member} has no `control` file")));
    };
    let mut paragraphs = control::parse(&text)?;
    if paragraphs.len() != 1 {
        return Err(DebError::Deb(format!(
            "the control file holds {} paragraphs, expected exactly one",
            paragraphs.len()
        )));
    }
    Ok(paragraphs.remove(0).fields)
}

/// The control.tar members [`read_control_files`] returns; md5sums, templates, config and the like are
/// not needed to plan what the maintainer scripts would do.
pub const CONTROL_FILE_NAMES: &[&str] = &[
    "control",
    "conffiles",
    "preinst",
    "postinst",
    "prerm",
    "postrm",
    "triggers",
];

/// Reads a .deb and returns the regular files of its control.tar named in [`CONTROL_FILE_NAMES`]
/// (`./postinst` and `postinst` alike), by name, as raw bytes. Each is capped like the `control` file;
/// other members and non-regular entries are ignored; a name present twice is an error.
pub fn read_control_files(r: impl Read) -> Result<BTreeMap<String, Vec<u8>>, DebError> {
    let mut out = BTreeMap::new();
    for_each_member_entry(r, "control.tar", |member, entry| {
        let path = unpack::archive_path(&entry.path_bytes())?;
        let Some(name) = path.to_str().filter(|n| CONTROL_FILE_NAMES.contains(n)) else {
            return Ok(ControlFlow::Continue(()));
        };
        if !entry.header().entry_type().is_file() {
            return Ok(ControlFlow::Continue(()));
        }
        let name = name.to_string();
        if out.contains_key(&name) {
            return Err(DebError::Deb(format!(
                "{member} holds `{name}` twice; the package is malformed"
            )));
        }
        let bytes = read_capped(member, &name, entry)?;
        out.insert(name, bytes);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Reads one control.tar entry whole, refusing anything over [`MAX_CONTROL_BYTES`].
fn read_capped(
    member: &str,
    name: &str,
    entry: &mut tar::Entry<'_, Box<dyn Read + '_>>,
) -> Result<Vec<u8>, DebError> {
    // Refused on the size the header claims, before reading: a truncated member that claims a
    // gigabyte is not read as whatever bytes happen to follow.
    if entry.size() > MAX_CONTROL_BYTES {
        return Err(DebError::Deb(format!(
            "the {name} file in {member} claims {} bytes; more than {} MiB is not a control file",
            entry.size(),
            MAX_CONTROL_BYTES >> 20
        )));
    }
    let mut bytes = Vec::new();
    entry
        .take(MAX_CONTROL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DebError::io(format!("reading {name} from {member}"), e))?;
    if bytes.len() as u64 > MAX_CONTROL_BYTES {
        return Err(DebError::Deb(format!(
            "the {name} file in {member} is larger than {} MiB; that is not a control file",
            MAX_CONTROL_BYTES >> 20
        )));
    }
    Ok(bytes)
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
    for_each_member_entry(r, "data.tar", |_, entry| {
        f(entry)?;
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(())
}

/// Calls `f` with the member's name and each entry of the first tar member whose name starts with
/// `prefix`, until `f` breaks; returns the member's name.
fn for_each_member_entry<R: Read>(
    r: R,
    prefix: &str,
    mut f: impl FnMut(
        &str,
        &mut tar::Entry<'_, Box<dyn Read + '_>>,
    ) -> Result<ControlFlow<()>, DebError>,
) -> Result<String, DebError> {
    let mut ar = open(r)?;
    let member = seek_member(&mut ar, prefix)?;
    let mut archive =
        tar::Archive::new(Compression::from_member_name(&member)?.reader(ar.body(), &member)?);
    let entries = archive
        .entries()
        .map_err(|e| DebError::io(format!("reading {member}"), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DebError::io(format!("reading {member}"), e))?;
        if f(&member, &mut entry)?.is_break() {
            break;
        }
    }
    Ok(member)
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
