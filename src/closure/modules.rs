//! Kernel module dependency order and the module index, computed from the modules themselves.
//!
//! Debian's kernel packages ship no `modules.dep`, and running `depmod` would need kmod on the build
//! machine (and a Linux one). Every `.ko` carries its dependencies and device aliases in the
//! `.modinfo` section as NUL-terminated `depends=a,b` and `alias=pci:v…` strings, so reading them is
//! enough to order the loads and to write the `modules.dep` and `modules.alias` that `modprobe` reads.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

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
            let a = String::from_utf8_lossy(a);
            // A pattern with blanks would break the line format; no real module has one.
            if !a.is_empty() && !a.contains(char::is_whitespace) {
                info.aliases.push(a.into_owned());
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

/// `modules.dep` and `modules.alias` in kmod's text formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// `path: dep-path dep-path…`, every module, with all its dependencies (direct first, so a
    /// loader that goes from the end loads the deepest first).
    pub dep: String,
    /// `alias pattern module`, sorted.
    pub alias: String,
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
    for (path, info) in modules {
        let name = name_of(path);
        let mut order = load_order(std::slice::from_ref(&name), &deps)?;
        order.pop(); // the module itself comes last
        dep += &format!("{path}:");
        for d in order.iter().rev() {
            dep += &format!(" {}", paths[d]);
        }
        dep.push('\n');
        for a in &info.aliases {
            aliases.insert((a.clone(), name.clone()));
        }
    }
    let alias = aliases
        .into_iter()
        .map(|(a, m)| format!("alias {a} {m}\n"))
        .collect();
    Ok(Index { dep, alias })
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
        let ko = elf(b"depends=virtio_ring,net-failover\0alias=virtio:d00000004v*\0license=GPL\0alias=of:N*T*Cfoo\0");
        assert_eq!(
            modinfo(&ko),
            ModInfo {
                depends: vec!["virtio_ring".into(), "net_failover".into()],
                aliases: vec!["virtio:d00000004v*".into(), "of:N*T*Cfoo".into()],
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
}
