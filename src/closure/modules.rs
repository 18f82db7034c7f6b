//! Kernel module dependency order and the module index, computed from the modules themselves.
//!
//! Debian's kernel packages ship no `modules.dep`, and running `depmod` would need kmod on the build
//! machine (and a Linux one). Every `.ko` carries its dependencies and device aliases in the
//! `.modinfo` section as NUL-terminated `depends=a,b` and `alias=pci:v…` strings, so reading them is
//! enough to order the loads and to write the `modules.dep` and `modules.alias` that busybox's
//! `modprobe` reads, and their binary forms (`modules.dep.bin`, `modules.alias.bin`, …) that libkmod
//! (udev, systemd-modules-load, kmod's `modprobe`) reads instead.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use super::kmod_index::write_index;

/// Module names use '_' and '-' interchangeably; the kernel normalises to '_'.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// What the index needs from one module's `.modinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// Modules it needs loaded first (normalised names).
    pub depends: Vec<String>,
    /// Device patterns it drives (`pci:v00001AF4d…`, `virtio:d00000004v*`), as written.
    pub aliases: Vec<String>,
    /// Its `softdep=` lines (`pre: crc32c`), for `modules.softdep`.
    pub softdeps: Vec<String>,
}

/// The `.modinfo` section of a little-endian ELF64 module; the whole image when it is not one
/// (the `\0key=` search below then still works, only less strictly).
fn modinfo_section(ko: &[u8]) -> &[u8] {
    let u16_at = |o: usize| {
        ko.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        ko.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    let u64_at = |o: usize| {
        ko.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    // ELF magic, ELFCLASS64, ELFDATA2LSB.
    if !ko.starts_with(b"\x7fELF\x02\x01") {
        return ko;
    }
    let find = || -> Option<&[u8]> {
        let (shoff, shentsize, shnum, shstrndx) =
            (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
        let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
        let strtab = u64_at(header(shstrndx)? + 0x18)?;
        for i in 0..shnum {
            let h = header(i)?;
            let name_at = strtab.checked_add(u32_at(h)?)?;
            let name = ko.get(name_at..)?;
            if name.starts_with(b".modinfo\0") {
                let (off, size) = (u64_at(h + 0x18)?, u64_at(h + 0x20)?);
                return ko.get(off..off.checked_add(size)?);
            }
        }
        None
    };
    find().unwrap_or(ko)
}

/// Reads `depends=` and every `alias=` of a module image.
pub fn modinfo(ko: &[u8]) -> ModInfo {
    let section = modinfo_section(ko);
    let mut info = ModInfo::default();
    // Entries are NUL-separated; the first one has no NUL before it inside the section.
    for entry in section.split(|&b| b == 0) {
        if let Some(d) = entry.strip_prefix(b"depends=") {
            info.depends = String::from_utf8_lossy(d)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(normalize)
                .collect();
        } else if let Some(a) = entry.strip_prefix(b"alias=") {
            // A pattern with blanks would break the line format, and kmod's binary index holds only
            // 7-bit ASCII; no real module has either.
            if !a.is_empty() && a.iter().all(u8::is_ascii_graphic) {
                info.aliases.push(String::from_utf8_lossy(a).into_owned());
            }
        } else if let Some(d) = entry.strip_prefix(b"softdep=") {
            // One line of `modules.softdep` each: no control bytes, ASCII only.
            if !d.is_empty() && d.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
                info.softdeps.push(String::from_utf8_lossy(d).into_owned());
            }
        }
    }
    info
}

/// Module file suffixes the kernel packages use, longest first.
const SUFFIXES: &[&str] = &[".ko.xz", ".ko.zst", ".ko"];

/// Whether `path` is a kernel module (plain or compressed).
pub fn is_module_file(path: &str) -> bool {
    SUFFIXES.iter().any(|s| path.ends_with(s))
}

/// A module path with the compression suffix dropped (`a/b.ko.xz` -> `a/b.ko`).
pub fn plain_path(path: &str) -> String {
    for s in SUFFIXES {
        if let Some(stem) = path.strip_suffix(s) {
            return format!("{stem}.ko");
        }
    }
    path.to_string()
}

/// The normalised module name of a module path (`kernel/drivers/hid/hid-generic.ko.xz` -> `hid_generic`).
pub fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = SUFFIXES
        .iter()
        .find_map(|s| file.strip_suffix(s))
        .unwrap_or(file);
    normalize(stem)
}

/// The plain module image of `path`'s contents: `.ko.xz` and `.ko.zst` are decompressed, because
/// busybox's `modprobe` cannot read zstd and the kernel only takes a plain image from it.
pub fn decompress(path: &str, data: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    if path.ends_with(".ko.xz") {
        xz2::read::XzDecoder::new_multi_decoder(&data[..]).read_to_end(&mut out)?;
    } else if path.ends_with(".ko.zst") {
        zstd::stream::read::Decoder::new(&data[..])?.read_to_end(&mut out)?;
    } else {
        return Ok(data);
    }
    Ok(out)
}

/// The module index files, in kmod's text and binary formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// `path: dep-path dep-path…`, every module, with all its dependencies (direct first, so a
    /// loader that goes from the end loads the deepest first).
    pub dep: String,
    /// `alias pattern module`, sorted.
    pub alias: String,
    /// `modules.dep.bin`: module name -> its `modules.dep` line.
    pub dep_bin: Vec<u8>,
    /// `modules.alias.bin`: alias pattern (depmod-normalised, see [`alias_key`]) -> module name.
    pub alias_bin: Vec<u8>,
    /// `modules.symbols.bin`, without entries: libkmod needs the file to load its indexes, and
    /// uses it only for `symbol:` requests, which no loader here makes.
    pub symbols_bin: Vec<u8>,
    /// `modules.softdep`: `softdep module pre: a post: b` from the modules' `softdep=`.
    pub softdep: String,
    /// `modules.devname`: `module devname c|bMAJOR:MINOR`, the nodes systemd's kmod-static-nodes
    /// creates before the module is loaded (`/dev/fuse`, `/dev/loop-control`).
    pub devname: String,
}

impl Index {
    /// Every file of the index: (name in `lib/modules/<version>/`, contents).
    pub fn files(&self) -> [(&'static str, &[u8]); 7] {
        [
            ("modules.dep", self.dep.as_bytes()),
            ("modules.dep.bin", &self.dep_bin),
            ("modules.alias", self.alias.as_bytes()),
            ("modules.alias.bin", &self.alias_bin),
            ("modules.symbols.bin", &self.symbols_bin),
            ("modules.softdep", self.softdep.as_bytes()),
            ("modules.devname", self.devname.as_bytes()),
        ]
    }
}

/// An alias pattern as depmod keys it in `modules.alias.bin`: `-` becomes `_` outside `[…]`
/// (libkmod normalises the looked-up string the same way). `None` for an unmatched bracket,
/// which depmod leaves out too.
pub fn alias_key(alias: &str) -> Option<String> {
    let mut key = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            ']' => return None,
            '-' if !in_class => {
                key.push('_');
                continue;
            }
            _ => {}
        }
        key.push(c);
    }
    (!in_class).then_some(key)
}

/// The index of `modules` (plain `.ko` path under the modules directory -> its modinfo). Sorted by
/// path and alias, so the same modules always give the same bytes. A dependency that is not among
/// `modules` is an error naming it.
pub fn index(modules: &BTreeMap<String, ModInfo>) -> Result<Index, String> {
    let mut paths: BTreeMap<String, &str> = BTreeMap::new();
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, info) in modules {
        let name = name_of(path);
        if let Some(other) = paths.insert(name.clone(), path) {
            return Err(format!("kernel module {name} is both {other} and {path}"));
        }
        deps.insert(name, info.depends.clone());
    }
    let mut dep = String::new();
    let mut aliases: BTreeSet<(String, String)> = BTreeSet::new();
    let (mut dep_entries, mut alias_entries) = (Vec::new(), Vec::new());
    let (mut softdep, mut devname) = (String::new(), String::new());
    // Priority of a module's entries, as depmod's module order: here, the path order.
    for (priority, (path, info)) in (0u32..).zip(modules) {
        let name = name_of(path);
        let mut order = load_order(std::slice::from_ref(&name), &deps)?;
        order.pop(); // the module itself comes last
        let mut line = format!("{path}:");
        for d in order.iter().rev() {
            line += &format!(" {}", paths[d]);
        }
        dep += &line;
        dep.push('\n');
        dep_entries.push((name.clone(), line, priority));
        for a in &info.aliases {
            aliases.insert((a.clone(), name.clone()));
            if let Some(key) = alias_key(a) {
                alias_entries.push((key, name.clone(), priority));
            }
        }
        for s in &info.softdeps {
            softdep += &format!("softdep {name} {s}\n");
        }
        if let Some(line) = devname_line(&name, &info.aliases) {
            devname += &line;
        }
    }
    let alias = aliases
        .into_iter()
        .map(|(a, m)| format!("alias {a} {m}\n"))
        .collect();
    softdep.insert_str(
        0,
        "# Soft dependencies extracted from modules themselves.\n",
    );
    if !devname.is_empty() {
        devname.insert_str(0, "# Device nodes to trigger on-demand module loading.\n");
    }
    Ok(Index {
        dep,
        alias,
        dep_bin: write_index(&dep_entries)?,
        alias_bin: write_index(&alias_entries)?,
        symbols_bin: write_index(&[])?,
        softdep,
        devname,
    })
}

/// The `modules.devname` line of a module whose aliases name a device node (`devname:fuse`) and
/// its number (`char-major-10-229`), as depmod picks them: scanning in order, the latest of each
/// until both are known.
fn devname_line(name: &str, aliases: &[String]) -> Option<String> {
    let number = |rest: &str| -> Option<(u32, u32)> {
        let (major, minor) = rest.split_once('-')?;
        let digits = minor.bytes().take_while(u8::is_ascii_digit).count();
        Some((major.parse().ok()?, minor[..digits].parse().ok()?))
    };
    let (mut node, mut kind) = (None, None);
    for a in aliases {
        if let Some(d) = a.strip_prefix("devname:") {
            node = Some(d);
        } else if let Some(n) = a.strip_prefix("char-major-").and_then(number) {
            kind = Some(('c', n));
        } else if let Some(n) = a.strip_prefix("block-major-").and_then(number) {
            kind = Some(('b', n));
        }
        if node.is_some() && kind.is_some() {
            break;
        }
    }
    let (node, (c, (major, minor))) = (node?, kind?);
    Some(format!("{name} {node} {c}{major}:{minor}\n"))
}

/// `modules.builtin.bin` and `modules.builtin.alias.bin`, from the kernel package's
/// `modules.builtin` (one module path a line) and `modules.builtin.modinfo` (`module.key=value`
/// NUL-separated). libkmod will not load its indexes without the first; the second lets an alias of
/// a built-in driver resolve to it instead of to nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builtin {
    /// `modules.builtin.bin`: module name -> "".
    pub bin: Vec<u8>,
    /// `modules.builtin.alias.bin`: alias pattern -> module name.
    pub alias_bin: Vec<u8>,
}

impl Builtin {
    /// Both files: (name in `lib/modules/<version>/`, contents).
    pub fn files(&self) -> [(&'static str, &[u8]); 2] {
        [
            ("modules.builtin.bin", &self.bin),
            ("modules.builtin.alias.bin", &self.alias_bin),
        ]
    }
}

/// The built-in module indexes of a kernel, from its `modules.builtin` and
/// `modules.builtin.modinfo` (either may be empty: a kernel without them has none). Lines and
/// entries depmod would skip are skipped; a name or alias kmod cannot store is an error naming it.
pub fn builtin_index(modules_builtin: &[u8], builtin_modinfo: &[u8]) -> Result<Builtin, String> {
    let mut names = Vec::new();
    for line in modules_builtin.split(|&b| b == b'\n') {
        // depmod's rule: a line that does not start with a letter is not a module path.
        if !line.first().is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let path = String::from_utf8_lossy(line);
        let file = path.rsplit('/').next().unwrap_or(&path);
        let stem = file.split('.').next().unwrap_or(file);
        if !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_graphic()) {
            names.push((normalize(stem), String::new(), 0));
        }
    }
    let mut aliases = Vec::new();
    for entry in builtin_modinfo.split(|&b| b == 0) {
        let entry = String::from_utf8_lossy(entry);
        let Some((module, rest)) = entry.split_once('.') else {
            continue;
        };
        let Some(alias) = rest.strip_prefix("alias=") else {
            continue;
        };
        // As for a module's own aliases: kmod stores only 7-bit ASCII, blanks break the lines.
        let storable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !storable(module) || !storable(alias) {
            continue;
        }
        if let Some(key) = alias_key(alias) {
            aliases.push((key, module.to_string(), 0));
        }
    }
    Ok(Builtin {
        bin: write_index(&names)?,
        alias_bin: write_index(&aliases)?,
    })
}

/// The `depends=` list of a module image (empty when it has none).
pub fn depends_of(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &ko[start + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(normalize)
        .collect()
}

/// Load order for `wanted`: every module after the modules it depends on, ties by the order asked.
///
/// `deps` maps every available module (normalised name) to its dependencies. A wanted module that is not
/// available is an error naming it (the caller lists the board's module list as the place to fix it).
pub fn load_order(
    wanted: &[String],
    deps: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, String> {
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    let mut visiting = BTreeSet::new();
    for w in wanted {
        visit(
            &normalize(w),
            deps,
            &mut done,
            &mut visiting,
            &mut order,
            None,
        )?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    deps: &BTreeMap<String, Vec<String>>,
    done: &mut BTreeSet<String>,
    visiting: &mut BTreeSet<String>,
    order: &mut Vec<String>,
    needed_by: Option<&str>,
) -> Result<(), String> {
    if done.contains(name) {
        return Ok(());
    }
    let Some(ds) = deps.get(name) else {
        return Err(match needed_by {
            Some(p) => format!("kernel module {name} (needed by {p}) is not in the kernel package"),
            None => format!(
                "kernel module {name} is not in the kernel package (built in, or misspelt?)"
            ),
        });
    };
    if !visiting.insert(name.to_string()) {
        return Err(format!("kernel module dependency cycle through {name}"));
    }
    for d in ds {
        visit(d, deps, done, visiting, order, Some(name))?;
    }
    visiting.remove(name);
    done.insert(name.to_string());
    order.push(name.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_depends_from_modinfo() {
        let ko = b"\x7fELF....\0license=GPL\0depends=virtio_ring,net-failover\0vermagic=6.1\0";
        assert_eq!(depends_of(ko), vec!["virtio_ring", "net_failover"]);
        assert!(depends_of(b"\0depends=\0name=x\0").is_empty());
        assert!(depends_of(b"no modinfo").is_empty());
    }

    #[test]
    fn orders_dependencies_first() {
        let mut deps = BTreeMap::new();
        deps.insert(
            "ext4".to_string(),
            vec!["jbd2".into(), "mbcache".into(), "crc16".into()],
        );
        deps.insert("jbd2".to_string(), vec![]);
        deps.insert("mbcache".to_string(), vec![]);
        deps.insert("crc16".to_string(), vec![]);
        deps.insert("virtio_net".to_string(), vec!["net_failover".into()]);
        deps.insert("net_failover".to_string(), vec!["failover".into()]);
        deps.insert("failover".to_string(), vec![]);
        let order = load_order(&["virtio-net".into(), "ext4".into()], &deps).unwrap();
        assert_eq!(
            order,
            [
                "failover",
                "net_failover",
                "virtio_net",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4"
            ]
        );
        let err = load_order(&["nope".into()], &deps).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    /// A little-endian ELF64 image whose `.modinfo` section holds `modinfo`, with a decoy
    /// `alias=` string outside it (in `.rodata`) that must not be read.
    fn elf(modinfo: &[u8]) -> Vec<u8> {
        let shstr = b"\0.rodata\0.modinfo\0.shstrtab\0";
        let rodata = b"\0alias=decoy\0";
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let rodata_at = f.len();
        f.extend_from_slice(rodata);
        let modinfo_at = f.len();
        f.extend_from_slice(modinfo);
        let shstr_at = f.len();
        f.extend_from_slice(shstr);
        let shoff = f.len();
        let mut header = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            f.extend_from_slice(&h);
        };
        header(0, 0, 0);
        header(1, rodata_at, rodata.len());
        header(9, modinfo_at, modinfo.len());
        header(18, shstr_at, shstr.len());
        f[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&4u16.to_le_bytes());
        f[0x3e..0x40].copy_from_slice(&3u16.to_le_bytes());
        f
    }

    #[test]
    fn reads_aliases_from_the_modinfo_section_only() {
        let ko = elf(b"depends=virtio_ring,net-failover\0alias=virtio:d00000004v*\0license=GPL\0alias=of:N*T*Cfoo\0softdep=pre: crc32c\0alias=caf\xc3\xa9\0");
        assert_eq!(
            modinfo(&ko),
            ModInfo {
                depends: vec!["virtio_ring".into(), "net_failover".into()],
                aliases: vec!["virtio:d00000004v*".into(), "of:N*T*Cfoo".into()],
                softdeps: vec!["pre: crc32c".into()],
            }
        );
    }

    #[test]
    fn names_and_compressed_modules() {
        assert_eq!(
            name_of("kernel/drivers/hid/hid-generic.ko.xz"),
            "hid_generic"
        );
        assert_eq!(name_of("kernel/net/dummy.ko"), "dummy");
        assert_eq!(plain_path("kernel/a/b-c.ko.zst"), "kernel/a/b-c.ko");
        assert!(is_module_file("x.ko.xz") && is_module_file("x.ko") && !is_module_file("x.koa"));
        let ko = elf(b"depends=\0");
        let mut xz = Vec::new();
        xz2::read::XzEncoder::new(&ko[..], 6)
            .read_to_end(&mut xz)
            .unwrap();
        assert_eq!(decompress("m.ko.xz", xz).unwrap(), ko);
        let zst = zstd::stream::encode_all(&ko[..], 3).unwrap();
        assert_eq!(decompress("m.ko.zst", zst).unwrap(), ko);
        assert_eq!(decompress("m.ko", ko.clone()).unwrap(), ko);
        assert!(decompress("m.ko.xz", b"not xz".to_vec()).is_err());
    }

    #[test]
    fn index_matches_kmod_text_formats() {
        let m = |deps: &[&str], aliases: &[&str]| ModInfo {
            depends: deps.iter().map(|s| s.to_string()).collect(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            softdeps: Vec::new(),
        };
        let mut mods = BTreeMap::new();
        mods.insert(
            "kernel/drivers/net/virtio_net.ko".to_string(),
            m(&["net_failover", "virtio_ring"], &["virtio:d00000001v*"]),
        );
        mods.insert(
            "kernel/drivers/net/net_failover.ko".to_string(),
            m(&["failover"], &[]),
        );
        mods.insert("kernel/net/core/failover.ko".to_string(), m(&[], &[]));
        mods.insert(
            "kernel/drivers/virtio/virtio_ring.ko".to_string(),
            m(&[], &[]),
        );
        mods.insert(
            "kernel/drivers/char/hw_random/virtio-rng.ko".to_string(),
            m(
                &[],
                &["virtio:d00000004v*", "pci:v00001AF4d00001005sv*sd*bc*sc*i*"],
            ),
        );
        let idx = index(&mods).unwrap();
        assert_eq!(
            idx.dep,
            "kernel/drivers/char/hw_random/virtio-rng.ko:\n\
             kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
             kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio_ring.ko \
             kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n\
             kernel/drivers/virtio/virtio_ring.ko:\n\
             kernel/net/core/failover.ko:\n"
        );
        assert_eq!(
            idx.alias,
            "alias pci:v00001AF4d00001005sv*sd*bc*sc*i* virtio_rng\n\
             alias virtio:d00000001v* virtio_net\n\
             alias virtio:d00000004v* virtio_rng\n"
        );
        // Same input, same bytes.
        assert_eq!(index(&mods.clone()).unwrap(), idx);
        mods.remove("kernel/net/core/failover.ko");
        let err = index(&mods).unwrap_err();
        assert!(err.contains("failover (needed by net_failover)"), "{err}");
    }

    #[test]
    fn cycle_is_reported() {
        let mut deps = BTreeMap::new();
        deps.insert("a".to_string(), vec!["b".into()]);
        deps.insert("b".to_string(), vec!["a".into()]);
        assert!(load_order(&["a".into()], &deps)
            .unwrap_err()
            .contains("cycle"));
    }

    /// kmod's own tool `name` on this machine (any architecture's index is readable by it), or
    /// `None` when kmod is not installed.
    fn kmod_tool(name: &str) -> Option<std::path::PathBuf> {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(name))
            .find(|p| p.is_file())
    }

    fn run(tool: &std::path::Path, args: &[&str]) -> String {
        let out = std::process::Command::new(tool)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn kmods_modprobe_reads_the_binary_index() {
        let Some(modprobe) = kmod_tool("modprobe") else {
            eprintln!("kmod's modprobe is not installed; skipping");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let version = "6.1.0-test";
        let dir = tmp.path().join("lib/modules").join(version);
        let modules: &[(&str, &[u8])] = &[
            (
                "kernel/drivers/net/virtio_net.ko",
                b"depends=net_failover,virtio_ring\0alias=virtio:d00000001v*\0",
            ),
            ("kernel/drivers/net/net_failover.ko", b"depends=failover\0"),
            ("kernel/net/core/failover.ko", b"depends=\0"),
            ("kernel/drivers/virtio/virtio_ring.ko", b"depends=\0"),
            (
                "kernel/drivers/char/hw_random/virtio-rng.ko",
                b"alias=pci:v00001AF4d00001005sv*sd*bc*sc*i*\0alias=virtio:d00000004v*\0depends=\0",
            ),
            (
                "kernel/fs/fuse/fuse.ko",
                b"alias=devname:fuse\0alias=char-major-10-229\0alias=fs-fuse\0depends=\0softdep=pre: virtio_ring\0",
            ),
        ];
        let mut infos = BTreeMap::new();
        for (path, info) in modules {
            let ko = elf(info);
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &ko).unwrap();
            infos.insert(path.to_string(), modinfo(&ko));
        }
        let idx = index(&infos).unwrap();
        let builtin = builtin_index(
            b"kernel/fs/ext4/ext4.ko\n",
            b"ext4.license=GPL\0ext4.alias=fs-ext4\0",
        )
        .unwrap();
        for (name, data) in idx.files().into_iter().chain(builtin.files()) {
            std::fs::write(dir.join(name), data).unwrap();
        }
        assert_eq!(
            idx.devname,
            "# Device nodes to trigger on-demand module loading.\nfuse fuse c10:229\n"
        );
        assert!(
            idx.softdep.ends_with("\nsoftdep fuse pre: virtio_ring\n"),
            "{}",
            idx.softdep
        );

        // An empty configuration directory, so the host's /etc/modprobe.d plays no part.
        let conf = tmp.path().join("modprobe.d");
        std::fs::create_dir(&conf).unwrap();
        let root = tmp.path().to_str().unwrap();
        let conf = conf.to_str().unwrap();
        let probe = |args: &[&str]| {
            let mut all = vec!["-C", conf, "-d", root, "-S", version];
            all.extend(args);
            run(&modprobe, &all)
        };
        let d = dir.to_str().unwrap();
        assert_eq!(
            probe(&["--show-depends", "virtio_net"]),
            format!(
                "insmod {d}/kernel/net/core/failover.ko \n\
                 insmod {d}/kernel/drivers/net/net_failover.ko \n\
                 insmod {d}/kernel/drivers/virtio/virtio_ring.ko \n\
                 insmod {d}/kernel/drivers/net/virtio_net.ko \n"
            )
        );
        // A name with '-', looked up in its normalised form.
        assert_eq!(
            probe(&["--show-depends", "virtio-rng"]),
            format!("insmod {d}/kernel/drivers/char/hw_random/virtio-rng.ko \n")
        );
        // A device's modalias against the patterns with wildcards.
        assert_eq!(
            probe(&[
                "-R",
                "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00"
            ]),
            "virtio_rng\n"
        );
        assert_eq!(probe(&["-R", "virtio:d00000001v00001AF4"]), "virtio_net\n");
        assert_eq!(probe(&["-R", "fs-fuse"]), "fuse\n");
        // Built in: the alias resolves, and nothing is loaded for it.
        assert_eq!(probe(&["-R", "fs-ext4"]), "ext4\n");
        assert_eq!(probe(&["--show-depends", "ext4"]), "builtin ext4\n");
        // An alias nobody has is not found.
        let out = std::process::Command::new(&modprobe)
            .args([
                "-C",
                conf,
                "-d",
                root,
                "-S",
                version,
                "-R",
                "pci:v0000DEADd0000BEEF",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success() && out.stdout.is_empty());
    }

    #[test]
    fn builtin_index_is_the_bytes_depmod_writes() {
        let Some(depmod) = kmod_tool("depmod") else {
            eprintln!("kmod's depmod is not installed; skipping");
            return;
        };
        // Shared prefixes, a key that is a prefix of another, two modules with one alias (equal
        // priority), '-' to normalise, a bracket class, and lines depmod skips.
        let builtin = b"kernel/fs/ext4/ext4.ko\nkernel/fs/ext2/ext2.ko\nkernel/crypto/crc32c_generic.ko\n\
kernel/crypto/crc32-generic.ko\nkernel/lib/crc16.ko\n#comment\n/abs/skip.ko\nkernel/drivers/tty/serial/8250/8250.ko\n\
kernel/drivers/input/evdev.ko\nkernel/drivers/input/ev.ko\n";
        let modinfo = b"ext4.alias=fs-ext4\0ext4.license=GPL\0ext4.alias=ext3\0ext4.alias=fs-ext3\0\
ext2.alias=fs-ext2\0crc32c_generic.alias=crypto-crc32c\0crc32c_generic.alias=crc32c\0\
crc32_generic.alias=crypto-crc32\0crc32_generic.alias=crc32\0crc16.description=CRC16\0\
8250.alias=char-major-4-64\0serial_base.alias=tty[0-9]*\0evdev.alias=input:b*v*p*e*-e*k*r*a*m*l*s*f*w*\0\
ev.alias=crc32\0noalias\0.alias=x\0broken.alias=a]b\0";
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lib/modules/9.9.9");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modules.builtin"), builtin).unwrap();
        std::fs::write(dir.join("modules.builtin.modinfo"), modinfo).unwrap();
        run(&depmod, &["-b", tmp.path().to_str().unwrap(), "9.9.9"]);
        let ours = builtin_index(builtin, modinfo).unwrap();
        for (name, data) in ours.files() {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), data, "{name}");
        }
        // With no modules, depmod's module indexes are empty ones, as are ours.
        let empty = index(&BTreeMap::new()).unwrap();
        for (name, data) in empty.files() {
            if name.ends_with(".bin") {
                assert_eq!(std::fs::read(dir.join(name)).unwrap(), data, "{name}");
            }
        }
    }

    #[test]
    fn alias_keys_as_depmod_normalises() {
        assert_eq!(alias_key("fs-ext4").as_deref(), Some("fs_ext4"));
        assert_eq!(alias_key("tty[0-9]*-x").as_deref(), Some("tty[0-9]*_x"));
        assert_eq!(alias_key("a]b"), None);
        assert_eq!(alias_key("a[b"), None);
        assert_eq!(alias_key("pci:v*d*").as_deref(), Some("pci:v*d*"));
    }
}
