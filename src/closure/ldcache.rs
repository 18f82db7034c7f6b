//! `/etc/ld.so.cache` as `ldconfig` (glibc 2.36, Debian bookworm arm64) would write it on the target.
//!
//! The build host cannot run the target's `ldconfig`, and the image must be bit-identical for
//! identical inputs, so the scan and the file format are reproduced here: which directories are
//! scanned ([`ld_conf_dirs`]), which files count and under which name ([`elf_soname`],
//! [`plan_cache`]), and the "new format" file itself ([`write_cache`]).
//!
//! Not reproduced: the soname symlinks `ldconfig` also creates (`libfoo.so.1 -> libfoo.so.1.2`);
//! Debian packages ship them, and a package that does not is left as it is. Also not reproduced:
//! the `glibc-hwcaps` and legacy hwcap subdirectories (bookworm arm64 ships none), a.out and 32-bit
//! ARM libraries, and the cache's extension section (only `ldconfig -p` prints it; `ld.so` needs
//! it only for `glibc-hwcaps`).

use std::collections::HashMap;

/// `FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64` (glibc `sysdeps/generic/ldconfig.h`): the only flags an
/// arm64 `ldconfig` gives a 64-bit library, and the only ones arm64 `ld.so` accepts
/// (`_DL_CACHE_DEFAULT_ID` in `sysdeps/unix/sysv/linux/aarch64/dl-cache.h`).
pub const AARCH64_LIBC6_FLAGS: i32 = 0x0a03;

/// `EM_AARCH64`.
const EM_AARCH64: u16 = 183;
/// `ET_DYN`.
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_SONAME: u64 = 14;
/// `sizeof (Elf64_Ehdr)`: ldconfig skips smaller files.
const EHDR_SIZE: usize = 64;
/// `sizeof (Elf64_Phdr)`; ldconfig steps by it and ignores `e_phentsize`.
const PHDR_SIZE: usize = 56;
const DYN_SIZE: usize = 16;
/// Longest soname accepted; real ones are tens of bytes, and this bounds work on hostile input.
const MAX_NAME: usize = 4096;

/// Interpreters and needed libraries that make ldconfig consider a library "classified"; once it
/// is, ldconfig stops reading `DT_SONAME` entries (this only matters with several of them).
/// Lists from glibc 2.36 `elf/readlib.c` with the aarch64 `ldconfig.h` additions.
const KNOWN_INTERPRETERS: [&[u8]; 6] = [
    b"/lib/ld-linux-aarch64.so.1",
    b"/lib/ld-linux-aarch64_be.so.1",
    b"/lib/ld-linux-aarch64_ilp32.so.1",
    b"/lib/ld-linux-aarch64_be_ilp32.so.1",
    b"/lib/ld-linux.so.3",
    b"/lib/ld-linux-armhf.so.3",
];
const KNOWN_LIBS: [&[u8]; 2] = [b"libc.so.6", b"libm.so.6"];

/// What ldconfig learns from one AArch64 shared object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfLib {
    /// Its `DT_SONAME`; `None` when it has none (ldconfig then uses the file name).
    pub soname: Option<String>,
}

/// One line of the cache: a soname and the file `ld.so` opens for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CacheEntry {
    /// The name `ld.so` looks up (`DT_NEEDED`), e.g. `libfoo.so.1`.
    pub soname: String,
    /// Full path on the target: the scanned directory joined with the soname, e.g.
    /// `/usr/lib/aarch64-linux-gnu/libfoo.so.1` (ldconfig records the soname link, not the file).
    pub path: String,
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// The NUL-terminated string at `at`, if it ends inside `b` within [`MAX_NAME`] bytes.
fn c_str(b: &[u8], at: u64) -> Option<&[u8]> {
    let rest = b.get(usize::try_from(at).ok()?..)?;
    let end = rest.iter().take(MAX_NAME + 1).position(|&c| c == 0)?;
    Some(&rest[..end])
}

/// One program header: (type, file offset, virtual address, size in the file).
fn phdr(b: &[u8], phoff: u64, i: usize) -> Result<(u32, u64, u64, u64), String> {
    let at = usize::try_from(phoff)
        .ok()
        .and_then(|o| o.checked_add(i.checked_mul(PHDR_SIZE)?))
        .filter(|&o| o.checked_add(PHDR_SIZE).is_some_and(|e| e <= b.len()))
        .ok_or_else(|| format!("program header {i} lies outside the file: it is truncated"))?;
    let field = |o| le_u64(b, at + o).unwrap_or(0);
    Ok((le_u32(b, at).unwrap_or(0), field(8), field(16), field(32)))
}

/// Reads what ldconfig reads from a shared object: `Ok(None)` when ldconfig would not list it
/// (not ELF, not ELF64 little-endian AArch64, not `ET_DYN`, no `PT_DYNAMIC` or `DT_STRTAB`),
/// `Err` when it claims to be one but its headers point outside the file (ldconfig skips those
/// too, as "truncated"). Every read is bounds-checked; no input panics.
///
/// One deliberate difference: ldconfig on arm64 does not look at `e_machine` of 64-bit files; a
/// foreign 64-bit library is not counted here (`ld.so` would refuse to load it anyway).
pub fn elf_soname(bytes: &[u8]) -> Result<Option<ElfLib>, String> {
    if bytes.len() < EHDR_SIZE || !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    // EI_CLASS 2 = ELFCLASS64, EI_DATA 1 = little-endian.
    if le_u16(bytes, 16) != Some(ET_DYN) || bytes[4] != 2 || bytes[5] != 1 {
        return Ok(None);
    }
    if le_u16(bytes, 18) != Some(EM_AARCH64) {
        return Ok(None);
    }
    let phoff = le_u64(bytes, 32).unwrap_or(0);
    let phnum = usize::from(le_u16(bytes, 56).unwrap_or(0));
    let mut phdrs = Vec::with_capacity(phnum);
    for i in 0..phnum {
        phdrs.push(phdr(bytes, phoff, i)?);
    }

    let mut classified = false;
    // The last PT_DYNAMIC wins, as in ldconfig's loop.
    let mut dynamic: Option<(u64, u64)> = None;
    for &(kind, offset, _, filesz) in &phdrs {
        match kind {
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            PT_INTERP => {
                let interp = c_str(bytes, offset).ok_or_else(|| {
                    "PT_INTERP lies outside the file: it is truncated".to_string()
                })?;
                classified |= KNOWN_INTERPRETERS.contains(&interp);
            }
            _ => {}
        }
    }
    let Some((dyn_off, _)) = dynamic.filter(|&(_, size)| size != 0) else {
        return Ok(None);
    };

    // The dynamic array runs to DT_NULL; ldconfig bounds it by the file, not by p_filesz.
    let dyn_base = usize::try_from(dyn_off)
        .ok()
        .filter(|&o| o <= bytes.len())
        .ok_or_else(|| "PT_DYNAMIC lies outside the file: it is truncated".to_string())?;
    let mut dyns = Vec::new();
    let mut at = dyn_base;
    loop {
        let (Some(tag), Some(val)) = (le_u64(bytes, at), le_u64(bytes, at + 8)) else {
            return Err(
                "the dynamic section runs past the end of the file: it is truncated".into(),
            );
        };
        if tag == DT_NULL {
            break;
        }
        dyns.push((tag, val));
        at += DYN_SIZE;
    }

    let Some(strtab_vaddr) = dyns.iter().find(|d| d.0 == DT_STRTAB).map(|d| d.1) else {
        return Ok(None);
    };
    // The string table's file offset: through the first PT_LOAD that holds it in the file, or
    // taken as a file offset when none does ("very strange" in ldconfig, but accepted).
    let load_bias = phdrs
        .iter()
        .find(|&&(kind, _, vaddr, filesz)| {
            kind == PT_LOAD && strtab_vaddr >= vaddr && strtab_vaddr.wrapping_sub(vaddr) < filesz
        })
        .map_or(0, |&(_, offset, vaddr, _)| vaddr.wrapping_sub(offset));
    let strtab = strtab_vaddr.wrapping_sub(load_bias);
    if strtab > bytes.len() as u64 {
        return Err("DT_STRTAB lies outside the file: it is truncated".into());
    }

    let mut soname: Option<&[u8]> = None;
    for &(tag, val) in &dyns {
        if tag != DT_NEEDED && tag != DT_SONAME {
            continue;
        }
        let name = strtab
            .checked_add(val)
            .and_then(|at| c_str(bytes, at))
            .ok_or_else(|| "a DT_NEEDED or DT_SONAME string lies outside the file".to_string())?;
        if tag == DT_NEEDED {
            classified |= KNOWN_LIBS.contains(&name);
        } else {
            soname = Some(name);
        }
        if soname.is_some() && classified {
            break;
        }
    }
    let soname = match soname {
        None => None,
        Some(s) => Some(
            String::from_utf8(s.to_vec())
                .map_err(|_| "DT_SONAME is not UTF-8; rename the library".to_string())?,
        ),
    };
    Ok(Some(ElfLib { soname }))
}

/// The directories ldconfig scans, in its order: those named in the `/etc/ld.so.conf.d/*.conf`
/// files (`confs` as (file name, text); only names matching the glob are read, in the glob's
/// byte order, whatever order they come in), then Debian's built-in ones. A directory named twice
/// is scanned once, where it first appears.
///
/// `include` lines are not followed: Debian's `/etc/ld.so.conf` is the single line
/// `include /etc/ld.so.conf.d/*.conf`, which is what passing that directory's files stands for.
/// `hwcap` lines are ignored (as ldconfig does); a `dir=type` suffix is dropped; relative paths
/// are ignored. ldconfig also treats two paths of one directory (through a symlink) as one: that
/// is for the caller's [`LibTree::dir_id`].
pub fn ld_conf_dirs(confs: &[(String, String)]) -> Vec<String> {
    let mut files: Vec<&(String, String)> = confs
        .iter()
        .filter(|(name, _)| name.ends_with(".conf") && !name.starts_with('.'))
        .collect();
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    let mut dirs: Vec<String> = Vec::new();
    let mut add = |dir: &str| {
        if !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_string());
        }
    };
    for (_, text) in files {
        for line in text.split('\n') {
            let line = line.split('#').next().unwrap_or("");
            let line = line.trim_start_matches(is_c_space);
            if line.is_empty() {
                continue;
            }
            let word_end = |w: &str| {
                line.as_bytes()
                    .get(w.len())
                    .is_some_and(|&c| c == b' ' || c == b'\t')
            };
            if line.starts_with("include") && word_end("include") {
                continue;
            }
            if line
                .get(..5)
                .is_some_and(|w| w.eq_ignore_ascii_case("hwcap"))
                && word_end("hwcap")
            {
                continue;
            }
            let path = line.split('=').next().unwrap_or("");
            let path = path.trim_end_matches(is_c_space).trim_end_matches('/');
            if path.starts_with('/') {
                add(path);
            }
        }
    }
    // Debian's ldconfig adds its trusted directories after the configured ones (checked against
    // `ldconfig -v` on bookworm: the `<builtin>` entries come last, in this order).
    for dir in [
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib",
        "/usr/lib",
    ] {
        add(dir);
    }
    dirs
}

/// C `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// How `lstat` sees a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link (to anything, even nothing).
    Symlink,
}

/// One entry of a library directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The file name, without directory.
    pub name: String,
    /// File or link.
    pub kind: EntryKind,
}

/// The target's library directories, read on demand (so a caller can serve them from the link
/// farm without reading every file up front). Every path is a target path such as
/// `/usr/lib/aarch64-linux-gnu`; the implementation must resolve it inside the image tree and
/// never outside it.
pub trait LibTree {
    /// An identity of the directory (for example its resolved path in the tree), `None` when it
    /// does not exist. Directories with equal identities are one directory, scanned once under the
    /// first name (ldconfig compares device and inode).
    fn dir_id(&mut self, dir: &str) -> Result<Option<String>, String>;
    /// The regular files and symbolic links in `dir` (anything else may be left out).
    fn entries(&mut self, dir: &str) -> Result<Vec<DirEntry>, String>;
    /// The contents of `dir/name`, following links; `None` when that is not a regular file
    /// (a dangling link, a link to a directory).
    fn read(&mut self, dir: &str, name: &str) -> Result<Option<Vec<u8>>, String>;
}

/// What [`plan_cache`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachePlan {
    /// The cache's entries in scan order (give them to [`write_cache`]).
    pub entries: Vec<CacheEntry>,
    /// Files ldconfig would skip with a warning: (path, why).
    pub skipped: Vec<(String, String)>,
}

/// ldconfig's `_dl_is_dso`: `lib*.so*`, `ld-*.so*`, `ld.so.*`, `ld64.so.*`.
fn is_dso_name(name: &str) -> bool {
    ((name.starts_with("lib") || name.starts_with("ld-")) && name.contains(".so"))
        || name.starts_with("ld.so.")
        || name.starts_with("ld64.so.")
}

/// Scans `dirs` (from [`ld_conf_dirs`]) as ldconfig does and lists the cache entries.
///
/// Per directory, one entry per soname, recorded as `dir/soname`. A symlink counts under its own
/// name when that name is the soname, or is a `.so` development link whose name starts the soname
/// (so `libfoo.so -> libfoo.so.1` gives a `libfoo.so` entry, as on Debian); any other link counts
/// as the file it points to. The same soname in several directories gives several entries, in
/// directory order: `ld.so` takes the first, as `ldconfig -p` shows.
pub fn plan_cache(dirs: &[String], tree: &mut dyn LibTree) -> Result<CachePlan, String> {
    struct Found {
        name: String,
        soname: String,
        is_link: bool,
    }
    let mut plan = CachePlan::default();
    let mut seen_ids: Vec<String> = Vec::new();
    for dir in dirs {
        let Some(id) = tree.dir_id(dir)? else {
            continue;
        };
        if seen_ids.contains(&id) {
            continue;
        }
        seen_ids.push(id);

        let mut entries = tree.entries(dir)?;
        // readdir order is the file system's; a fixed order keeps the output reproducible.
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        // Newest first, as ldconfig prepends to its list.
        let mut found: Vec<Found> = Vec::new();
        for entry in entries {
            let name = entry.name;
            if !is_dso_name(&name) || name.ends_with(".#prelink#") || name.contains(".#prelink#.") {
                continue;
            }
            let path = format!("{dir}/{name}");
            let Some(bytes) = tree.read(dir, &name)? else {
                continue;
            };
            let lib = match elf_soname(&bytes) {
                Ok(Some(lib)) => lib,
                Ok(None) => continue,
                Err(why) => {
                    plan.skipped.push((path, why));
                    continue;
                }
            };
            let mut soname = lib.soname.unwrap_or_else(|| name.clone());
            if soname.is_empty() || soname.contains('/') {
                // ld.so never looks such a name up in the cache; keep it out of the path too.
                plan.skipped
                    .push((path, format!("soname {soname:?} is not a file name")));
                continue;
            }
            let mut is_link = entry.kind == EntryKind::Symlink;
            if is_link
                && name != soname
                && !(name.ends_with(".so") && soname.as_bytes().starts_with(name.as_bytes()))
            {
                is_link = false;
            }
            if is_link {
                soname = name.clone();
            }
            match found.iter_mut().find(|f| f.soname == soname) {
                Some(f) => {
                    // ldconfig prefers a file to a link, else the "newer" name; it only decides
                    // which file the soname link would point to, not the cache line.
                    if (!is_link && f.is_link)
                        || (is_link == f.is_link
                            && dl_cache_libcmp(f.name.as_bytes(), name.as_bytes()) < 0)
                    {
                        f.name = name;
                        f.is_link = is_link;
                    }
                }
                None => found.insert(
                    0,
                    Found {
                        name,
                        soname,
                        is_link,
                    },
                ),
            }
        }
        for f in found {
            plan.entries.push(CacheEntry {
                path: format!("{dir}/{}", f.soname),
                soname: f.soname,
            });
        }
    }
    Ok(plan)
}

/// glibc's `_dl_cache_libcmp`: runs of digits compare as numbers, other bytes as unsigned chars
/// (`char` is unsigned on aarch64); C's wrap-around on overflow is kept.
pub fn dl_cache_libcmp(p1: &[u8], p2: &[u8]) -> i32 {
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut i, mut j) = (0usize, 0usize);
    while at(p1, i) != 0 {
        let (c1, c2) = (at(p1, i), at(p2, j));
        if c1.is_ascii_digit() {
            if !c2.is_ascii_digit() {
                return 1;
            }
            let number = |s: &[u8], k: &mut usize| {
                let mut v: i32 = 0;
                while at(s, *k).is_ascii_digit() {
                    v = v.wrapping_mul(10).wrapping_add(i32::from(at(s, *k) - b'0'));
                    *k += 1;
                }
                v
            };
            let (v1, v2) = (number(p1, &mut i), number(p2, &mut j));
            if v1 != v2 {
                return v1.wrapping_sub(v2);
            }
        } else if c2.is_ascii_digit() {
            return -1;
        } else if c1 != c2 {
            return i32::from(c1) - i32::from(c2);
        } else {
            i += 1;
            j += 1;
        }
    }
    -i32::from(at(p2, j))
}

/// ldconfig's entry order (`compare` in `elf/cache.c`): sonames by `_dl_cache_libcmp`, descending;
/// flags and hwcap, its tie-breakers, are the same for every entry here.
fn entry_after(existing: &CacheEntry, new: &CacheEntry) -> bool {
    dl_cache_libcmp(new.soname.as_bytes(), existing.soname.as_bytes()) > 0
}

/// glibc's `stringtable_finalize` order: by the bytes from the end, larger first; a string before
/// its own suffixes, so those can share its tail.
fn suffix_order(l: &[u8], r: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (lc, rc) in l.iter().rev().zip(r.iter().rev()) {
        if lc != rc {
            return rc.cmp(lc);
        }
    }
    match l.len().cmp(&r.len()) {
        Ordering::Equal => Ordering::Equal,
        Ordering::Less => Ordering::Greater,
        Ordering::Greater => Ordering::Less,
    }
}

/// The string table and each string's offset in it, laid out as glibc 2.36's ldconfig does
/// (tail merging of suffixes that sort next to each other).
fn string_table<'a>(strings: &[&'a str]) -> (Vec<u8>, HashMap<&'a [u8], u32>) {
    let mut unique: Vec<&[u8]> = strings.iter().map(|s| s.as_bytes()).collect();
    unique.sort_unstable();
    unique.dedup();
    unique.sort_by(|l, r| suffix_order(l, r));
    let mut offsets = HashMap::new();
    let mut table: Vec<u8> = Vec::new();
    let mut prev: Option<(&[u8], usize)> = None;
    for s in unique {
        let offset = match prev {
            Some((p, p_off)) if p.ends_with(s) => p_off + p.len() - s.len(),
            Some((p, p_off)) => p_off + p.len() + 1,
            None => 0,
        };
        if offset + s.len() + 1 > table.len() {
            table.resize(offset + s.len() + 1, 0);
        }
        table[offset..offset + s.len()].copy_from_slice(s);
        offsets.insert(s, offset as u32);
        prev = Some((s, offset));
    }
    (table, offsets)
}

/// The cache file: glibc's "new format" (`glibc-ld.so.cache1.1`, little-endian), entries in
/// ldconfig's order (sonames descending by `_dl_cache_libcmp`; equal sonames keep the order
/// given, which is directory order from [`plan_cache`]), all flagged
/// [`AARCH64_LIBC6_FLAGS`], then the string table. No extension section (offset 0).
pub fn write_cache(entries: &[CacheEntry]) -> Vec<u8> {
    // ldconfig keeps a sorted list and inserts each entry before the first one that sorts after
    // it; doing the same keeps its result even where the comparison is not a strict order.
    let mut sorted: Vec<&CacheEntry> = Vec::with_capacity(entries.len());
    for e in entries {
        let at = sorted
            .iter()
            .position(|x| entry_after(x, e))
            .unwrap_or(sorted.len());
        sorted.insert(at, e);
    }
    let strings: Vec<&str> = entries
        .iter()
        .flat_map(|e| [e.soname.as_str(), e.path.as_str()])
        .collect();
    let (table, offsets) = string_table(&strings);

    const HEADER: usize = 48;
    const ENTRY: usize = 24;
    let str_base = HEADER + ENTRY * sorted.len();
    let mut out = Vec::with_capacity(str_base + table.len());
    out.extend_from_slice(b"glibc-ld.so.cache1.1");
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    out.extend_from_slice(&(table.len() as u32).to_le_bytes());
    // flags: cache_file_new_flags_endian_little; then 3 bytes padding.
    out.extend_from_slice(&[2, 0, 0, 0]);
    // extension_offset (none), unused[3].
    out.extend_from_slice(&[0u8; 16]);
    let offset =
        |s: &str| (str_base as u32).wrapping_add(offsets.get(s.as_bytes()).copied().unwrap_or(0));
    for e in sorted {
        out.extend_from_slice(&AARCH64_LIBC6_FLAGS.to_le_bytes());
        out.extend_from_slice(&offset(&e.soname).to_le_bytes());
        out.extend_from_slice(&offset(&e.path).to_le_bytes());
        // osversion_unused, hwcap.
        out.extend_from_slice(&[0u8; 12]);
    }
    out.extend_from_slice(&table);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// libcom_err.so.2.1 from libcom-err2 1.47.0-2+b2 (bookworm arm64); see tests/fixtures/elf/README.
    fn real_lib() -> Vec<u8> {
        let packed = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/elf/libcom_err.so.2.1.zst"
        ));
        zstd::decode_all(&packed[..]).expect("fixture decompresses")
    }

    /// A minimal AArch64 shared object: one PT_LOAD at vaddr 0x10000 covering the file, a
    /// PT_DYNAMIC, and a dynamic section with DT_STRTAB (as a virtual address) and DT_SONAME.
    fn tiny_lib(soname: Option<&str>) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let name_at = strtab.len() as u64;
        if let Some(s) = soname {
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
        }
        let (phoff, dyn_off) = (64u64, 64 + 2 * 56u64);
        let mut dyns = vec![(DT_STRTAB, 0u64)];
        if soname.is_some() {
            dyns.push((DT_SONAME, name_at));
        }
        dyns.push((DT_NULL, 0));
        let str_off = dyn_off + 16 * dyns.len() as u64;
        dyns[0].1 = 0x10000 + str_off;
        let total = str_off + strtab.len() as u64;

        let mut b = Vec::new();
        b.extend_from_slice(b"\x7fELF\x02\x01\x01");
        b.resize(16, 0);
        b.extend_from_slice(&ET_DYN.to_le_bytes());
        b.extend_from_slice(&EM_AARCH64.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        b.extend_from_slice(&phoff.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        for v in [64u16, 56, 2, 64, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let mut ph = |kind: u32, off: u64, vaddr: u64, size: u64| {
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(&6u32.to_le_bytes());
            for v in [off, vaddr, vaddr, size, size, 8] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        };
        ph(PT_LOAD, 0, 0x10000, total);
        ph(
            PT_DYNAMIC,
            dyn_off,
            0x10000 + dyn_off,
            16 * dyns.len() as u64,
        );
        for (tag, val) in dyns {
            b.extend_from_slice(&tag.to_le_bytes());
            b.extend_from_slice(&val.to_le_bytes());
        }
        b.extend_from_slice(&strtab);
        assert_eq!(b.len() as u64, total);
        b
    }

    #[test]
    fn reads_the_soname_of_a_real_library() {
        let lib = elf_soname(&real_lib()).unwrap();
        assert_eq!(
            lib,
            Some(ElfLib {
                soname: Some("libcom_err.so.2".into())
            })
        );
    }

    #[test]
    fn reads_a_hand_built_library_and_rejects_what_ldconfig_skips() {
        let lib = tiny_lib(Some("libx.so.3"));
        assert_eq!(
            elf_soname(&lib).unwrap().unwrap().soname.as_deref(),
            Some("libx.so.3")
        );
        assert_eq!(
            elf_soname(&tiny_lib(None)).unwrap(),
            Some(ElfLib { soname: None })
        );

        assert_eq!(
            elf_soname(b"/* GNU ld script */ GROUP ( libc.so.6 )").unwrap(),
            None
        );
        let mut exec = lib.clone();
        exec[16] = 2; // ET_EXEC
        assert_eq!(elf_soname(&exec).unwrap(), None);
        let mut x86 = lib.clone();
        x86[18] = 62; // EM_X86_64
        assert_eq!(elf_soname(&x86).unwrap(), None);
        let mut elf32 = lib.clone();
        elf32[4] = 1;
        assert_eq!(elf_soname(&elf32).unwrap(), None);
        let mut big = lib.clone();
        big[5] = 2;
        assert_eq!(elf_soname(&big).unwrap(), None);
        assert!(
            elf_soname(&lib[..lib.len() - 12]).is_err(),
            "cut string table"
        );
        assert!(elf_soname(&lib[..100]).is_err(), "cut program headers");
    }

    /// Hostile input: random byte changes and truncations of a real library never panic.
    #[test]
    fn mutated_libraries_never_panic() {
        let lib = real_lib();
        let dyn_at = 0xfc60usize; // where the fixture's dynamic section is (readelf -l)
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut results = BTreeMap::new();
        for round in 0..2000 {
            let mut m = lib.clone();
            for _ in 0..1 + next() % 8 {
                // Mostly the headers and the dynamic section, where the reader looks.
                let at = match next() % 3 {
                    0 => (next() % 64) as usize,
                    1 => 64 + (next() % (8 * 56)) as usize,
                    _ => dyn_at + (next() % 0x200) as usize,
                };
                m[at] = next() as u8;
            }
            if round % 10 == 0 {
                m.truncate((next() % lib.len() as u64) as usize);
            }
            let kind = match elf_soname(&m) {
                Ok(Some(_)) => "lib",
                Ok(None) => "none",
                Err(_) => "err",
            };
            *results.entry(kind).or_insert(0) += 1;
        }
        // The mutations reach all three outcomes, so the reader was exercised, not short-circuited.
        assert_eq!(results.len(), 3, "{results:?}");
    }

    #[test]
    fn conf_dirs_come_first_then_debian_builtins() {
        let confs = vec![
            (
                "x-aarch64-linux-gnu.conf".to_string(),
                "# Multiarch support\n/usr/local/lib/aarch64-linux-gnu\n/lib/aarch64-linux-gnu\n/usr/lib/aarch64-linux-gnu\n".to_string(),
            ),
            (
                "libc.conf".to_string(),
                "# libc default configuration\n  /usr/local/lib/ # trailing\nhwcap 0 nosegneg\ninclude /etc/other.conf\n/opt/lib=libc6\nrelative/dir\n".to_string(),
            ),
            ("README".to_string(), "/not/a/conf\n".to_string()),
        ];
        assert_eq!(
            ld_conf_dirs(&confs),
            vec![
                "/usr/local/lib",
                "/opt/lib",
                "/usr/local/lib/aarch64-linux-gnu",
                "/lib/aarch64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/lib",
                "/usr/lib",
            ]
        );
    }

    #[test]
    fn libcmp_compares_numbers_as_numbers() {
        assert!(dl_cache_libcmp(b"libz.so.10", b"libz.so.9") > 0);
        assert!(dl_cache_libcmp(b"libz.so.1", b"libz.so") > 0);
        assert!(dl_cache_libcmp(b"libc.so.6", b"libcap.so.2") < 0);
        assert!(
            dl_cache_libcmp(b"lib2", b"libx") > 0,
            "a digit sorts after a non-digit"
        );
        assert_eq!(dl_cache_libcmp(b"libfoo.so.01", b"libfoo.so.1"), 0);
        assert_eq!(dl_cache_libcmp(b"same", b"same"), 0);
        // 99999999999 wraps like C's int; it must not panic.
        let _ = dl_cache_libcmp(b"l99999999999", b"l1");
    }

    /// One directory's entries: name, kind, contents (None: dangling link).
    type Listing = Vec<(String, EntryKind, Option<Vec<u8>>)>;

    /// A library tree in memory: directory -> entries.
    struct MemTree(BTreeMap<String, Listing>);

    impl LibTree for MemTree {
        fn dir_id(&mut self, dir: &str) -> Result<Option<String>, String> {
            // /lib is the same directory as /usr/lib here (merged /usr).
            let id = dir.strip_prefix("/usr").unwrap_or(dir);
            Ok(self.0.contains_key(dir).then(|| id.to_string()))
        }
        fn entries(&mut self, dir: &str) -> Result<Vec<DirEntry>, String> {
            Ok(self.0[dir]
                .iter()
                .map(|(name, kind, _)| DirEntry {
                    name: name.clone(),
                    kind: *kind,
                })
                .collect())
        }
        fn read(&mut self, dir: &str, name: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0[dir]
                .iter()
                .find(|e| e.0 == name)
                .and_then(|e| e.2.clone()))
        }
    }

    fn sample_tree() -> MemTree {
        use EntryKind::{File, Symlink};
        let f = |n: &str, k, b: Option<Vec<u8>>| (n.to_string(), k, b);
        let mut dirs = BTreeMap::new();
        dirs.insert(
            "/lib/aarch64-linux-gnu".to_string(),
            vec![
                f("libcom_err.so.2.1", File, Some(real_lib())),
                f("libcom_err.so.2", Symlink, Some(real_lib())),
                f("libz.so.1.2.13", Symlink, Some(tiny_lib(Some("libz.so.1")))),
                f("libz.so.1", Symlink, Some(tiny_lib(Some("libz.so.1")))),
                f("libz.so", Symlink, Some(tiny_lib(Some("libz.so.1")))),
                f(
                    "libzstd.so.1.5.4",
                    File,
                    Some(tiny_lib(Some("libzstd.so.1"))),
                ),
                f("libnosoname.so.3", File, Some(tiny_lib(None))),
                f(
                    "libc.so",
                    File,
                    Some(b"/* GNU ld script */ GROUP ( libc.so.6 )".to_vec()),
                ),
                f("libdangling.so.1", Symlink, None),
                f("notalib.txt", File, Some(tiny_lib(Some("libnot.so.1")))),
                f("libbroken.so.1", File, Some(real_lib()[..0x100].to_vec())),
                f("libz.so.10", File, Some(tiny_lib(Some("libz.so.10")))),
                f("libz.so.9", File, Some(tiny_lib(Some("libz.so.9")))),
            ],
        );
        // The same directory under its /usr name: scanned once.
        dirs.insert(
            "/usr/lib/aarch64-linux-gnu".to_string(),
            vec![f("libdup.so.1", File, Some(tiny_lib(Some("libdup.so.1"))))],
        );
        dirs.insert(
            "/usr/local/lib".to_string(),
            vec![f("libz.so.1", File, Some(tiny_lib(Some("libz.so.1"))))],
        );
        MemTree(dirs)
    }

    fn sample_plan() -> CachePlan {
        let dirs = ld_conf_dirs(&[("libc.conf".into(), "/usr/local/lib\n".into())]);
        plan_cache(&dirs, &mut sample_tree()).unwrap()
    }

    #[test]
    fn plan_lists_one_entry_per_soname_and_directory() {
        let plan = sample_plan();
        let got: Vec<(&str, &str)> = plan
            .entries
            .iter()
            .map(|e| (e.soname.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("libz.so.1", "/usr/local/lib/libz.so.1"),
                ("libzstd.so.1", "/lib/aarch64-linux-gnu/libzstd.so.1"),
                ("libz.so.9", "/lib/aarch64-linux-gnu/libz.so.9"),
                ("libz.so.10", "/lib/aarch64-linux-gnu/libz.so.10"),
                ("libz.so.1", "/lib/aarch64-linux-gnu/libz.so.1"),
                ("libz.so", "/lib/aarch64-linux-gnu/libz.so"),
                (
                    "libnosoname.so.3",
                    "/lib/aarch64-linux-gnu/libnosoname.so.3"
                ),
                ("libcom_err.so.2", "/lib/aarch64-linux-gnu/libcom_err.so.2"),
            ]
        );
        assert_eq!(plan.skipped.len(), 1, "{:?}", plan.skipped);
        assert_eq!(plan.skipped[0].0, "/lib/aarch64-linux-gnu/libbroken.so.1");
    }

    #[test]
    fn cache_layout_matches_glibc() {
        let entries = vec![
            CacheEntry {
                soname: "libb.so.1".into(),
                path: "/l/libb.so.1".into(),
            },
            CacheEntry {
                soname: "liba.so.1".into(),
                path: "/l/liba.so.1".into(),
            },
        ];
        let c = write_cache(&entries);
        assert_eq!(&c[..20], b"glibc-ld.so.cache1.1");
        assert_eq!(le_u32(&c, 20), Some(2));
        // Strings, by reversed bytes descending, suffixes merged into their path:
        // "/l/libb.so.1\0/l/liba.so.1\0" with the sonames at offsets 3 and 16.
        assert_eq!(&c[96..], b"/l/libb.so.1\0/l/liba.so.1\0");
        assert_eq!(le_u32(&c, 24), Some(26));
        assert_eq!(c[28], 2);
        // Entry 0 is libb (descending), key -> "libb.so.1", value -> "/l/libb.so.1".
        assert_eq!(le_u32(&c, 48), Some(0x0a03));
        assert_eq!(le_u32(&c, 52), Some(96 + 3));
        assert_eq!(le_u32(&c, 56), Some(96));
        assert_eq!(le_u32(&c, 72 + 4), Some(96 + 16));
        assert_eq!(le_u32(&c, 72 + 8), Some(96 + 13));
        assert_eq!(write_cache(&[]).len(), 48);
    }

    /// The host's ldconfig (libc-bin, any architecture) reads the file back: every entry, with
    /// the AArch64 flags, in ldconfig's order.
    #[test]
    fn host_ldconfig_reads_the_cache() {
        let ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(ldconfig) = ldconfig else {
            eprintln!("skipped: no ldconfig on this host");
            return;
        };
        let plan = sample_plan();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ld.so.cache");
        std::fs::write(&file, write_cache(&plan.entries)).unwrap();
        let out = std::process::Command::new(ldconfig)
            .arg("-p")
            .arg("-C")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let head = format!("8 libs found in cache `{}'", file.display());
        assert_eq!(lines.next(), Some(head.as_str()));
        let listed: Vec<&str> = lines.collect();
        let want = [
            "libzstd.so.1 (libc6,AArch64) => /lib/aarch64-linux-gnu/libzstd.so.1",
            "libz.so.10 (libc6,AArch64) => /lib/aarch64-linux-gnu/libz.so.10",
            "libz.so.9 (libc6,AArch64) => /lib/aarch64-linux-gnu/libz.so.9",
            "libz.so.1 (libc6,AArch64) => /usr/local/lib/libz.so.1",
            "libz.so.1 (libc6,AArch64) => /lib/aarch64-linux-gnu/libz.so.1",
            "libz.so (libc6,AArch64) => /lib/aarch64-linux-gnu/libz.so",
            "libnosoname.so.3 (libc6,AArch64) => /lib/aarch64-linux-gnu/libnosoname.so.3",
            "libcom_err.so.2 (libc6,AArch64) => /lib/aarch64-linux-gnu/libcom_err.so.2",
        ];
        let listed: Vec<&str> = listed.iter().map(|l| l.trim()).collect();
        assert_eq!(listed, want);
    }

    /// The host's own `/etc/ld.so.cache` (written by its real ldconfig), re-written from its
    /// entries in another order: same order, same string table, byte for byte (flags and the
    /// extension section aside, which are the host architecture's).
    #[test]
    fn rewrites_the_host_cache_byte_for_byte() {
        let Ok(c) = std::fs::read("/etc/ld.so.cache") else {
            eprintln!("skipped: no /etc/ld.so.cache on this host");
            return;
        };
        if !c.starts_with(b"glibc-ld.so.cache1.1") {
            eprintln!("skipped: the host cache is not in the new format alone");
            return;
        }
        let n = le_u32(&c, 20).unwrap() as usize;
        let string =
            |o: u32| c_str(&c, u64::from(o)).map(|s| String::from_utf8_lossy(s).into_owned());
        let mut entries = Vec::new();
        for i in 0..n {
            let at = 48 + 24 * i;
            if le_u64(&c, at + 16) != Some(0) {
                eprintln!("skipped: the host cache has hwcap entries");
                return;
            }
            entries.push(CacheEntry {
                soname: string(le_u32(&c, at + 4).unwrap()).unwrap(),
                path: string(le_u32(&c, at + 8).unwrap()).unwrap(),
            });
        }
        // A stable sort by plain byte order: entries of one soname keep their (directory) order.
        entries.sort_by(|a, b| a.soname.cmp(&b.soname));
        let mine = write_cache(&entries);
        let strings = le_u32(&c, 24).unwrap() as usize;
        let base = 48 + 24 * n;
        assert_eq!(&mine[..32], &c[..32], "header");
        for i in 0..n {
            let at = 48 + 24 * i;
            assert_eq!(&mine[at + 4..at + 24], &c[at + 4..at + 24], "entry {i}");
        }
        assert_eq!(mine.len(), base + strings);
        assert_eq!(&mine[base..], &c[base..base + strings], "string table");
    }
}
