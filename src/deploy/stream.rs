//! The copy stream: one xz-compressed tar holding every missing store path, in dependency order,
//! each with the listing the target checks it against and its registration.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use pideploy_store::{LocalStore, StorePath};
use sha2::{Digest, Sha256};

/// The listing of a store path tree, in the agent's format (`d`, `l`, `f` lines, sorted bytewise).
pub fn listing(root: &Path) -> io::Result<String> {
    let mut entries: Vec<(String, String)> = Vec::new();
    walk(root, "", &mut entries)?;
    entries.sort();
    Ok(entries
        .into_iter()
        .map(|(_, l)| l + "\n")
        .collect::<String>()
        .trim_end_matches('\n')
        .to_string())
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e
            .file_name()
            .into_string()
            .map_err(|n| io::Error::other(format!("non-UTF-8 name {n:?}")))?;
        if name.contains('\n') {
            return Err(io::Error::other(format!(
                "{name:?}: newlines in names cannot be sent"
            )));
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(e.path())?;
        let line = if meta.file_type().is_symlink() {
            format!("l {rel} {}", fs::read_link(e.path())?.to_string_lossy())
        } else if meta.is_dir() {
            walk(&e.path(), &rel, out)?;
            format!("d {rel}")
        } else {
            use std::os::unix::fs::PermissionsExt;
            let x = if meta.permissions().mode() & 0o111 != 0 {
                "x"
            } else {
                "-"
            };
            let mut h = Sha256::new();
            io::copy(&mut fs::File::open(e.path())?, &mut HashSink(&mut h))?;
            format!("f {rel} {x} {}", hex::encode(h.finalize()))
        };
        out.push((rel, line));
    }
    Ok(())
}

struct HashSink<'a>(&'a mut Sha256);
impl Write for HashSink<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn append_tree<W: Write>(tar: &mut tar::Builder<W>, src: &Path, name: &str) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    if meta.file_type().is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        tar.append_link(&mut h, name, fs::read_link(src)?)?;
    } else if meta.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, format!("{name}/"), io::empty())?;
        let mut names: Vec<_> = fs::read_dir(src)?.collect::<Result<_, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            append_tree(
                tar,
                &e.path(),
                &format!("{name}/{}", e.file_name().to_string_lossy()),
            )?;
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(if meta.permissions().mode() & 0o111 != 0 {
            0o555
        } else {
            0o444
        });
        h.set_size(meta.len());
        tar.append_data(&mut h, name, fs::File::open(src)?)?;
    }
    Ok(())
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_size(data.len() as u64);
    tar.append_data(&mut h, name, data)
}

/// Writes the stream for `paths` into `out`; returns the uncompressed byte count.
pub fn write_stream(store: &LocalStore, paths: &[StorePath], out: impl Write) -> io::Result<u64> {
    // xz level 0: a 98 MiB closure costs 3.6 CPU-s and 24 MB (level 3: 19.8 CPU-s, 21.5 MB), so
    // the stream outruns a LAN instead of holding it up, and a fleet's per-Pi streams stay cheap.
    let xz = xz2::write::XzEncoder::new(out, 0);
    let counter = Counter { inner: xz, n: 0 };
    let mut tar = tar::Builder::new(counter);
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(1);
    tar.append_data(&mut dir, ".pideploy/", io::empty())?;
    for p in paths {
        let phys = store.physical(p);
        if !fs::symlink_metadata(&phys)?.is_dir() {
            return Err(io::Error::other(format!(
                "{p}: only directory store paths can be sent"
            )));
        }
        let base = p.base_name();
        let info = store.query(p).map_err(io::Error::other)?;
        append_bytes(
            &mut tar,
            &format!(".pideploy/{base}.listing"),
            listing(&phys)?.as_bytes(),
        )?;
        append_tree(&mut tar, &phys, &base)?;
        append_bytes(
            &mut tar,
            &format!(".pideploy/{base}.reg"),
            info.to_text().as_bytes(),
        )?;
    }
    let counter = tar.into_inner()?;
    let n = counter.n;
    counter.inner.finish()?;
    Ok(n)
}

struct Counter<W> {
    inner: W,
    n: u64,
}
impl<W: Write> Write for Counter<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(b)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts what passes (for the "sent" summary).
pub struct CountingReader<R> {
    /// Wrapped reader.
    pub inner: R,
    /// Bytes read so far.
    pub n: u64,
}
impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(b)?;
        self.n += k as u64;
        Ok(k)
    }
}
