//! Turns config + board + locked artifacts into store paths and the generation's toplevel.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use pideploy_cache::{Cache, LockFile, LockedPackage, Role};
use pideploy_config::{Board, HostConfig};
use pideploy_store::{LocalStore, StorePath, STORE_DIR};

use super::accounts::{self, LoginUser};
use super::error::{io, BuildError};
use super::etc::{self, EtcContext, GenFile};
use super::farm::FarmTree;
use super::{
    enabled, glob, l10n, memo, modules, package_data, package_etc, template::render, triggers,
    unit_enable,
};
use pideploy_image::cpio::{write_newc, CpioEntry};

/// Everything the builder reads.
pub struct SystemInputs<'a> {
    /// The host config.
    pub config: &'a HostConfig,
    /// The board.
    pub board: &'a Board,
    /// The pinned artifacts.
    pub lock: &'a LockFile,
    /// Where the artifacts are.
    pub cache: &'a Cache,
    /// Where the results go.
    pub store: &'a LocalStore,
}

/// The store paths of a built system.
#[derive(Debug, Clone)]
pub struct BuiltSystem {
    /// `…-pideploy-system-<hostname>`.
    pub toplevel: StorePath,
    /// Unpacked packages by package name.
    pub packages: BTreeMap<String, StorePath>,
    /// Kernel, device trees and overlays.
    pub kernel: StorePath,
    /// The generated initramfs, for boards that need one.
    pub initrd: Option<StorePath>,
    /// The package set as one FHS tree of links.
    pub sw: StorePath,
    /// The generated /etc.
    pub etc: StorePath,
    /// Maintainer-script steps not reproduced (one line each), for the person to read.
    pub warnings: Vec<String>,
}

/// Package names the config and board need, in the order they were asked for. `sudo` comes in when
/// a user is allowed to use it, `tzdata` when the time zone is not UTC, `systemd-timesyncd` when
/// NTP is on and no other time daemon is asked for, `avahi-daemon` for mDNS, `wpasupplicant`, `wireless-regdb` and the board's
/// `wifi_packages` for Wi-Fi, `locales-all` for a locale other than C, `kbd`
/// and `console-data` for a console keymap.
pub fn wanted_packages(config: &HostConfig, board: &Board) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    };
    for p in &board.base_packages {
        push(p);
    }
    if config.users.iter().any(|u| u.sudo) {
        push("sudo");
    }
    if !is_utc(&config.timezone) {
        push("tzdata");
    }
    if config.time.ntp && other_time_daemon(config).is_none() {
        push("systemd-timesyncd");
    }
    if config
        .locale
        .as_deref()
        .is_some_and(|l| !l10n::is_builtin_locale(l))
    {
        push(l10n::LOCALES_PACKAGE);
    }
    if config.network.mdns {
        push("avahi-daemon");
    }
    if config.network.wifi.is_some() {
        push("wpasupplicant");
        push("wireless-regdb");
        for p in &board.wifi_packages {
            push(p);
        }
    }
    if config.keyboard.is_some() {
        push("kbd");
        push("console-data");
    }
    for p in &config.packages {
        push(p);
    }
    out
}

/// Debian's packages that provide `time-daemon` and conflict with systemd-timesyncd.
const TIME_DAEMONS: &[&str] = &["chrony", "ntp", "ntpsec", "openntpd"];

/// A time daemon the config installs itself, which then keeps the clock instead of timesyncd.
pub(super) fn other_time_daemon(config: &HostConfig) -> Option<&str> {
    config
        .packages
        .iter()
        .map(String::as_str)
        .find(|p| TIME_DAEMONS.contains(p))
}

/// UTC needs no zone file: without /etc/localtime, the C library and systemd use UTC.
fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "Etc/UTC")
}

/// `/etc/localtime` for `tz`: a link into tzdata's zoneinfo, checked to be a zone file of this
/// package set (tzset(3), localtime(5)); none for UTC.
fn add_localtime(
    etc: &mut BTreeMap<String, GenFile>,
    tz: &str,
    tree: &FarmTree,
) -> Result<(), BuildError> {
    if is_utc(tz) {
        etc.remove("localtime");
        return Ok(());
    }
    let zone = format!("/usr/share/zoneinfo/{tz}");
    // Zone files (TZif, RFC 8536) start with this magic.
    if !tree
        .read_target(&zone)
        .is_some_and(|b| b.starts_with(b"TZif"))
    {
        return Err(BuildError::Config(format!(
            "timezone: {tz:?} is not a time zone of tzdata (names like \"Europe/Berlin\" or \"America/New_York\": the files under /usr/share/zoneinfo)"
        )));
    }
    etc.insert("localtime".into(), GenFile::Link(zone));
    Ok(())
}

/// Where a package's store path keeps its control files (`postinst`, `conffiles`, …), as dpkg keeps
/// them in /var/lib/dpkg/info; left out of the package set.
pub const PACKAGE_META: &str = "DEBIAN";
/// In [`PACKAGE_META`]: the packaged kind, mode, path and link target of every entry under var/ and
/// srv/ (one JSON array per line), which the store does not keep.
pub const VAR_LISTING: &str = "pideploy-var.jsonl";

/// Store path names allow `[A-Za-z0-9+._?=-]`; Debian versions also use ':' and '~'.
pub(super) fn path_name(name: &str, version: &str) -> String {
    format!("{name}-{version}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+._?=-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Builds the system. Every step is content-addressed, so a build with the same inputs ends with the
/// same toplevel; a build this executable already made from the same config, board, lock and file
/// sources is remembered and returned without redoing it (while every path it names is valid).
pub fn build_system(inp: &SystemInputs) -> Result<BuiltSystem, BuildError> {
    let key = system_key(inp);
    if let Some(b) = key.as_ref().and_then(|k| remembered_system(inp.store, k)) {
        return Ok(b);
    }
    let built = build_fresh(inp)?;
    if let Some(k) = &key {
        let r = RememberedSystem {
            toplevel: built.toplevel.base_name(),
            packages: built
                .packages
                .iter()
                .map(|(n, p)| (n.clone(), p.base_name()))
                .collect(),
            kernel: built.kernel.base_name(),
            initrd: built.initrd.as_ref().map(StorePath::base_name),
            sw: built.sw.base_name(),
            etc: built.etc.base_name(),
            warnings: built.warnings.clone(),
        };
        if let Ok(text) = serde_json::to_string(&r) {
            memo::put_text(inp.store, k, &text);
        }
    }
    Ok(built)
}

/// A [`BuiltSystem`] as the memo keeps it (store path base names).
#[derive(serde::Serialize, serde::Deserialize)]
struct RememberedSystem {
    toplevel: String,
    packages: BTreeMap<String, String>,
    kernel: String,
    initrd: Option<String>,
    sw: String,
    etc: String,
    warnings: Vec<String>,
}

/// Memo key of a whole build: this executable, and everything the build reads besides the pinned
/// artifacts (named by sha256 in the lock). None (build without the memo) when a file source cannot
/// be read: the build then reports that properly.
fn system_key(inp: &SystemInputs) -> Option<String> {
    let exe = memo::this_build()?;
    let mut sources = String::new();
    for f in &inp.config.files {
        if let Some(src) = &f.source {
            let bytes = fs::read(src).ok()?;
            sources += &format!(
                "{} {}\n",
                src.display(),
                pideploy_store::Sha256::of(&bytes).to_hex()
            );
        }
    }
    Some(memo::key(&[
        "system-1",
        &exe,
        &serde_json::to_string(inp.config).ok()?,
        &serde_json::to_string(inp.board).ok()?,
        &serde_json::to_string(inp.lock).ok()?,
        &sources,
    ]))
}

fn remembered_system(store: &LocalStore, key: &str) -> Option<BuiltSystem> {
    let r: RememberedSystem = serde_json::from_str(&memo::get_text(store, key)?).ok()?;
    let valid = |base: &str| {
        let p = StorePath::parse(base).ok()?;
        store.is_valid(&p).then_some(p)
    };
    let mut packages = BTreeMap::new();
    for (n, p) in &r.packages {
        packages.insert(n.clone(), valid(p)?);
    }
    Some(BuiltSystem {
        toplevel: valid(&r.toplevel)?,
        packages,
        kernel: valid(&r.kernel)?,
        initrd: match &r.initrd {
            Some(i) => Some(valid(i)?),
            None => None,
        },
        sw: valid(&r.sw)?,
        etc: valid(&r.etc)?,
        warnings: r.warnings,
    })
}

fn build_fresh(inp: &SystemInputs) -> Result<BuiltSystem, BuildError> {
    let cfg = inp.config;
    let board = inp.board;
    if inp.lock.board != board.name {
        return Err(BuildError::WrongBoard {
            locked: inp.lock.board.clone(),
            wanted: board.name.clone(),
        });
    }
    let lock_name = "pideploy.lock".to_string();
    for want in wanted_packages(cfg, board) {
        if !inp.lock.roots.contains(&want) {
            return Err(BuildError::NotLocked {
                what: format!("package {want}"),
                lock: lock_name,
            });
        }
    }
    if !inp.lock.roots.contains(&board.kernel.package) {
        return Err(BuildError::NotLocked {
            what: format!("kernel {}", board.kernel.package),
            lock: lock_name,
        });
    }

    // 1. Packages.
    let mut packages = BTreeMap::new();
    for lp in inp.lock.packages.iter().filter(|p| p.role != Role::Kernel) {
        let path = match (&cfg.locale, lp.name == l10n::LOCALES_PACKAGE) {
            (Some(locale), true) => l10n::add_locale(inp, lp, locale)?,
            _ => add_package(inp, lp)?,
        };
        packages.insert(lp.name.clone(), path);
    }
    let busybox_pkg = packages
        .get("busybox-static")
        .or_else(|| packages.get("busybox"))
        .cloned()
        .ok_or_else(|| {
            BuildError::Config("the system needs busybox-static (board base_packages)".into())
        })?;
    let busybox = format!("{}/bin/busybox", busybox_pkg.absolute());
    if !packages.contains_key("systemd") {
        return Err(BuildError::Config(
            "the system needs systemd as PID 1 (board base_packages: systemd, systemd-sysv, udev)"
                .into(),
        ));
    }

    // 2. Kernel (+ initrd): unpack the kernel packages once into scratch space, unless both
    // results are remembered from an earlier build with the same inputs.
    let kernel_debs: Vec<&LockedPackage> = inp
        .lock
        .packages
        .iter()
        .filter(|p| p.role == Role::Kernel)
        .collect();
    let mut kernel_version = String::new();
    for lp in &kernel_debs {
        if kernel_version.is_empty() || lp.name != board.kernel.package {
            kernel_version = lp.version.clone();
        }
    }
    // "modules-index-2": the kernel path's layout (root modules and their index); bumped when it changes.
    let inputs = format!(
        "modules-index-2 {:?} {:?} {:?} {:?} {} {}",
        board.kernel,
        board.boot,
        board.initrd,
        kernel_debs.iter().map(|p| &p.sha256).collect::<Vec<_>>(),
        busybox_pkg.base_name(),
        pideploy_store::Sha256::of(include_bytes!("scripts/stage1-init.sh")).to_hex()
    );
    let (kkey, ikey) = (
        memo::key(&["kernel", &inputs]),
        memo::key(&["initrd", &inputs]),
    );
    let remembered = match (
        memo::get(inp.store, &kkey),
        memo::get(inp.store, &ikey),
        &board.initrd,
    ) {
        (Some(k), _, None) => Some((k, None)),
        (Some(k), Some(i), Some(_)) => Some((k, Some(i))),
        _ => None,
    };
    let (kernel, initrd) = match remembered {
        Some(r) => r,
        None => {
            let scratch = tempfile::Builder::new()
                .prefix(".kernel-")
                .tempdir_in(inp.store.root())
                .map_err(io("creating scratch dir in", inp.store.root()))?;
            for lp in &kernel_debs {
                let f = inp.cache.open_verified(&lp.name, &lp.sha256)?;
                pideploy_debian::deb::extract_data(f, scratch.path()).map_err(|source| {
                    BuildError::Unpack {
                        package: lp.name.clone(),
                        source,
                    }
                })?;
            }
            let tree = walk(scratch.path())?;
            let kernel = add_kernel(inp, scratch.path(), &tree, &kernel_version)?;
            memo::put(inp.store, &kkey, &kernel);
            let initrd = match &board.initrd {
                Some(spec) => {
                    let i = add_initrd(
                        inp,
                        scratch.path(),
                        &tree,
                        &spec.modules,
                        &busybox_pkg,
                        &kernel_version,
                    )?;
                    memo::put(inp.store, &ikey, &i);
                    Some(i)
                }
                None => None,
            };
            (kernel, initrd)
        }
    };

    // 3. What the maintainer scripts would have done (accounts, alternatives, /var), the package
    // set as an FHS tree, and /etc.
    let mut warnings = Vec::new();
    let pdata = package_data::read(&packages, |sp| inp.store.physical(sp), &mut warnings)?;
    let login: Vec<LoginUser> = cfg
        .users
        .iter()
        .map(|u| {
            let mut groups = u.groups.clone();
            if u.sudo && !groups.iter().any(|g| g == "sudo") {
                groups.push("sudo".into());
            }
            LoginUser {
                name: u.name.clone(),
                uid: u.uid,
                groups,
                shell: u.shell.clone().unwrap_or_else(|| "/bin/sh".into()),
            }
        })
        .collect();
    let accounts =
        accounts::plan_accounts(&pdata.account_inputs(login)).map_err(BuildError::Config)?;
    let sw = add_sw_remembered(inp.store, &packages, &pdata.alternatives)?;
    let consoles = if board.boot.login_consoles.is_empty() {
        vec![board
            .qemu
            .as_ref()
            .map(|q| q.console.clone())
            .unwrap_or_else(|| "console".into())]
    } else {
        board.boot.login_consoles.clone()
    };
    let sudo = packages
        .get("sudo")
        .map(|p| format!("{}/usr/bin/sudo", p.absolute()));
    let plan = etc::plan(
        cfg,
        &EtcContext {
            busybox: &busybox,
            consoles: &consoles,
            sudo: sudo.as_deref(),
            accounts: &accounts,
        },
    )
    .map_err(BuildError::Config)?;
    let mut plan = plan;
    // The packages' own /etc files (conffiles), below what pideploy and [[files]] put there.
    let overridden: BTreeSet<String> = cfg.files.iter().map(|f| f.path.clone()).collect();
    let mut empty_dirs = BTreeSet::new();
    package_etc::add_package_etc(
        &mut plan.etc,
        &mut empty_dirs,
        &packages,
        |sp| inp.store.physical(sp),
        &overridden,
    )?;
    triggers::add_package_effects(&mut plan.etc, &pdata, &packages, inp.store, &sw)?;
    unit_enable::add_units(
        &mut plan.etc,
        cfg,
        &pdata.default_units,
        &FarmTree::new(inp.store, &sw),
        &accounts,
    )?;
    add_localtime(&mut plan.etc, &cfg.timezone, &FarmTree::new(inp.store, &sw))?;
    if let Some(k) = &cfg.keyboard {
        l10n::check_keymap(k, &FarmTree::new(inp.store, &sw))?;
    }
    plan.etc_files = etc::install_lines(&plan.etc, &empty_dirs);
    let mut etc_refs: BTreeSet<StorePath> = packages.values().cloned().collect();
    etc_refs.insert(busybox_pkg.clone());
    let etc = inp.store.add("etc", &etc_refs, |tmp| {
        let out = tmp.join("out");
        for (rel, f) in &plan.etc {
            write_gen(&out.join(rel), f)?;
        }
        Ok::<(), io::Error>(())
    })?;

    let sw_phys = inp.store.physical(&sw);
    let store_phys = sw_phys.parent().unwrap_or(&sw_phys).to_path_buf();
    let units = enabled::unit_list(&plan.etc, &sw_phys, &store_phys)?;

    // 4. The toplevel.
    let toplevel = add_toplevel(
        inp,
        &TopParts {
            busybox: &busybox,
            busybox_pkg: &busybox_pkg,
            packages: &packages,
            kernel: &kernel,
            initrd: initrd.as_ref(),
            sw: &sw,
            etc: &etc,
            plan: &plan,
            units: &units,
            kernel_version: &kernel_version,
        },
    )?;
    Ok(BuiltSystem {
        toplevel,
        packages,
        kernel,
        initrd,
        sw,
        etc,
        warnings,
    })
}

fn add_package(inp: &SystemInputs, lp: &LockedPackage) -> Result<StorePath, BuildError> {
    let name = path_name(&lp.name, &lp.version);
    // "package-2": the path also holds DEBIAN/ (control files, packaged modes under var/ and srv/).
    let key = memo::key(&["package-2", &lp.sha256, &name]);
    if let Some(p) = memo::get(inp.store, &key) {
        return Ok(p);
    }
    // Re-hashed on use: a file swapped in under this sha256 name is refused, not unpacked.
    let open = || inp.cache.open_verified(&lp.name, &lp.sha256);
    let (data, control, listing) = (open()?, open()?, open()?);
    let pkg = lp.name.clone();
    let p = inp.store.add(&name, &BTreeSet::new(), |tmp| {
        let out = tmp.join("out");
        fs::create_dir(&out)?;
        let fail = |e: pideploy_debian::DebError| other(format!("{pkg}: {e}"));
        pideploy_debian::deb::extract_data(data, &out).map_err(fail)?;
        if out.join(PACKAGE_META).exists() {
            return Err(other(format!(
                "{pkg}: the package ships /{PACKAGE_META}, where pideploy keeps its control files"
            )));
        }
        let meta = out.join(PACKAGE_META);
        fs::create_dir(&meta)?;
        for (file, bytes) in pideploy_debian::deb::read_control_files(control).map_err(fail)? {
            fs::write(meta.join(file), bytes)?;
        }
        let mut var = String::new();
        for e in pideploy_debian::deb::list_data(listing).map_err(fail)? {
            if !(e.path.starts_with("var/") || e.path.starts_with("srv/")) {
                continue;
            }
            let kind = match e.kind {
                pideploy_debian::deb::EntryKind::Dir => "d",
                pideploy_debian::deb::EntryKind::File
                | pideploy_debian::deb::EntryKind::HardLink => "f",
                pideploy_debian::deb::EntryKind::Symlink => "l",
                _ => continue,
            };
            var += &serde_json::to_string(&(kind, e.mode & 0o7777, &e.path, &e.link_target))
                .map_err(other)?;
            var.push('\n');
        }
        fs::write(meta.join(VAR_LISTING), var)?;
        Ok::<(), io::Error>(())
    })?;
    memo::put(inp.store, &key, &p);
    Ok(p)
}

/// Relative paths of every file and link under `root` (directories excluded), sorted.
fn walk(root: &Path) -> Result<Vec<String>, BuildError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in fs::read_dir(&dir).map_err(io("reading", &dir))? {
            let e = e.map_err(io("reading", &dir))?;
            let r = rel.join(e.file_name());
            let ft = e.file_type().map_err(io("reading", e.path()))?;
            if ft.is_dir() {
                stack.push(r);
            } else {
                out.push(r.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn matching<'t>(tree: &'t [String], pattern: &str) -> Vec<&'t String> {
    tree.iter().filter(|p| glob::matches(pattern, p)).collect()
}

fn add_kernel(
    inp: &SystemInputs,
    root: &Path,
    tree: &[String],
    version: &str,
) -> Result<StorePath, BuildError> {
    let k = &inp.board.kernel;
    let images = matching(tree, &k.image_glob);
    let image = match images.as_slice() {
        [one] => root.join(one),
        [] => {
            return Err(BuildError::Kernel(format!(
                "no file matches image_glob {:?} in {}",
                k.image_glob, k.package
            )))
        }
        many => {
            return Err(BuildError::Kernel(format!(
                "image_glob {:?} matches {} files; make it specific",
                k.image_glob,
                many.len()
            )))
        }
    };
    let dtbs: Vec<&String> = k
        .dtb_glob
        .as_deref()
        .map(|g| matching(tree, g))
        .unwrap_or_default();
    for want in &inp.board.boot.device_trees {
        if !dtbs.iter().any(|d| d.rsplit('/').next() == Some(want)) {
            return Err(BuildError::Kernel(format!(
                "device tree {want} (board) is not in {}",
                k.package
            )));
        }
    }
    let overlays: Vec<&String> = k
        .overlays_glob
        .as_deref()
        .map(|g| matching(tree, g))
        .unwrap_or_default();
    for want in &inp.board.boot.required_overlays {
        if !overlays.iter().any(|d| d.rsplit('/').next() == Some(want)) {
            return Err(BuildError::Kernel(format!(
                "overlay {want} (board) is not in {}",
                k.package
            )));
        }
    }
    // Written to scratch space first (the scratch root is in the store's file system, so moving it
    // into the store path is a rename): the whole module set would not fit in memory comfortably.
    let staging = root.join(".pideploy-root-modules");
    root_modules(inp, root, tree, &staging)?;
    let name = path_name("linux", version);
    Ok(inp.store.add(&name, &BTreeSet::new(), |tmp| {
        let out = tmp.join("out");
        fs::create_dir_all(out.join("dtbs"))?;
        fs::create_dir_all(out.join("overlays"))?;
        fs::copy(&image, out.join("kernel"))?;
        for d in &dtbs {
            fs::copy(
                root.join(d),
                out.join("dtbs").join(d.rsplit('/').next().unwrap_or(d)),
            )?;
        }
        for o in &overlays {
            fs::copy(
                root.join(o),
                out.join("overlays").join(o.rsplit('/').next().unwrap_or(o)),
            )?;
        }
        let modules = staging.join("lib");
        if modules.exists() && fs::rename(&modules, out.join("lib")).is_err() {
            copy_tree(&modules, &out.join("lib"))?;
        }
        Ok::<(), io::Error>(())
    })?)
}

/// Selects the modules for the root (the board's `root_modules` and their dependencies, or all),
/// decompresses them, and writes their index (`modules.dep`, `modules.alias`, and the `.bin` forms
/// libkmod reads), so udev and `modprobe` work on the target without `depmod` on the build machine.
/// Everything goes to `staging/lib/modules/<version>/`.
fn root_modules(
    inp: &SystemInputs,
    root: &Path,
    tree: &[String],
    staging: &Path,
) -> Result<(), BuildError> {
    let k = &inp.board.kernel;
    if k.modules_glob.is_empty() {
        return Ok(());
    }
    let write = |rel: &str, data: &[u8]| -> Result<(), BuildError> {
        let dest = staging.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        fs::write(&dest, data).map_err(io("writing", &dest))
    };
    // Each module directory (one per kernel version): its module files by path inside it.
    let mut dirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in tree {
        let parts: Vec<&str> = p.split('/').collect();
        let Some(n) =
            (1..parts.len()).find(|&n| glob::matches(&k.modules_glob, &parts[..n].join("/")))
        else {
            continue;
        };
        let (dir, rel) = (parts[..n].join("/"), parts[n..].join("/"));
        let version = parts[n - 1];
        if modules::is_module_file(&rel) {
            dirs.entry(dir).or_default().push(rel);
        } else if !GENERATED_INDEX.iter().any(|g| rel.starts_with(g)) {
            let dest = staging.join(format!("lib/modules/{version}/{rel}"));
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io("creating", parent))?;
            }
            copy_tree(&root.join(p), &dest).map_err(io("copying", root.join(p)))?;
            dirs.entry(dir).or_default();
        } else {
            dirs.entry(dir).or_default();
        }
    }
    for (dir, rels) in dirs {
        let version = dir.rsplit('/').next().unwrap_or(&dir).to_string();
        let by_name: BTreeMap<String, &String> =
            rels.iter().map(|r| (modules::name_of(r), r)).collect();
        let mut todo: Vec<String> = match &k.root_modules {
            Some(prefixes) => rels
                .iter()
                .filter(|r| prefixes.iter().any(|p| r.starts_with(p.as_str())))
                .map(|r| modules::name_of(r))
                .collect(),
            None => by_name.keys().cloned().collect(),
        };
        let mut infos: BTreeMap<String, modules::ModInfo> = BTreeMap::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            // A missing dependency is reported by the index below, with who needs it.
            let Some(rel) = by_name.get(&name) else {
                continue;
            };
            let src = root.join(&dir).join(rel);
            let raw = fs::read(&src).map_err(io("reading", &src))?;
            let data = modules::decompress(rel, raw)
                .map_err(|e| BuildError::Kernel(format!("{}: {e}", src.display())))?;
            let info = modules::modinfo(&data);
            todo.extend(info.depends.iter().cloned());
            let plain = modules::plain_path(rel);
            write(&format!("lib/modules/{version}/{plain}"), &data)?;
            infos.insert(plain, info);
        }
        let idx = modules::index(&infos).map_err(|e| {
            BuildError::Kernel(format!(
                "{e} ({} in {}); fix kernel.root_modules in the board file {}",
                dir, k.package, inp.board.name
            ))
        })?;
        // The kernel's list of built-in modules, when it ships one as a plain file (never through a
        // link, which could point outside the package).
        let kernel_file = |name: &str| -> Result<Vec<u8>, BuildError> {
            let src = root.join(&dir).join(name);
            match fs::symlink_metadata(&src) {
                Ok(m) if m.is_file() && m.len() <= 64 << 20 => {
                    fs::read(&src).map_err(io("reading", &src))
                }
                Ok(_) => Err(BuildError::Kernel(format!(
                    "{} is not a regular file of at most 64 MiB; fix the kernel package {}",
                    src.display(),
                    k.package
                ))),
                Err(_) => Ok(Vec::new()),
            }
        };
        let builtin = modules::builtin_index(
            &kernel_file("modules.builtin")?,
            &kernel_file("modules.builtin.modinfo")?,
        )
        .map_err(|e| BuildError::Kernel(format!("{e} ({dir} in {})", k.package)))?;
        for (name, data) in idx.files().into_iter().chain(builtin.files()) {
            write(&format!("lib/modules/{version}/{name}"), data)?;
        }
    }
    Ok(())
}

/// Index files the build writes itself; the kernel package's own (if any) are not copied.
const GENERATED_INDEX: &[&str] = &[
    "modules.dep",
    "modules.alias",
    "modules.symbols",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.softdep",
    "modules.devname",
];

fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if meta.file_type().is_symlink() {
        symlink(fs::read_link(src)?, dest)
    } else if meta.is_dir() {
        fs::create_dir_all(dest)?;
        let mut names: Vec<_> = fs::read_dir(src)?.collect::<Result<_, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            copy_tree(&e.path(), &dest.join(e.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(src, dest).map(|_| ())
    }
}

fn add_initrd(
    inp: &SystemInputs,
    root: &Path,
    tree: &[String],
    wanted: &[String],
    busybox_pkg: &StorePath,
    version: &str,
) -> Result<StorePath, BuildError> {
    // Module name -> file, for every module in the package.
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for p in tree.iter().filter(|p| modules::is_module_file(p)) {
        files.insert(modules::name_of(p), p.clone());
    }
    let read = |file: &String| -> Result<Vec<u8>, BuildError> {
        let src = root.join(file);
        let raw = fs::read(&src).map_err(io("reading", &src))?;
        modules::decompress(file, raw)
            .map_err(|e| BuildError::Kernel(format!("{}: {e}", src.display())))
    };
    // Dependencies of the modules reachable from the wanted ones (read lazily: 5000 modules, few needed).
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut todo: Vec<String> = wanted.iter().map(|w| modules::normalize(w)).collect();
    while let Some(m) = todo.pop() {
        if deps.contains_key(&m) {
            continue;
        }
        let Some(file) = files.get(&m) else { continue };
        let d = modules::modinfo(&read(file)?).depends;
        todo.extend(d.iter().cloned());
        deps.insert(m, d);
    }
    let order = modules::load_order(wanted, &deps).map_err(|e| {
        BuildError::Kernel(format!(
            "{e}; fix initrd.modules in the board file {}",
            inp.board.name
        ))
    })?;

    let bb_path = inp.store.physical(busybox_pkg).join("bin/busybox");
    let bb = fs::read(&bb_path).map_err(io("reading", &bb_path))?;
    let mut entries = vec![
        CpioEntry::Dir {
            path: "bin".into(),
            mode: 0o755,
        },
        CpioEntry::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: bb,
        },
        CpioEntry::Dir {
            path: "dev".into(),
            mode: 0o755,
        },
        CpioEntry::CharDev {
            path: "dev/console".into(),
            mode: 0o600,
            major: 5,
            minor: 1,
        },
        CpioEntry::Dir {
            path: "lib".into(),
            mode: 0o755,
        },
        CpioEntry::Dir {
            path: "lib/modules".into(),
            mode: 0o755,
        },
    ];
    for m in &order {
        let data = read(&files[m])?;
        entries.push(CpioEntry::File {
            path: format!("lib/modules/{m}.ko"),
            mode: 0o644,
            data,
        });
    }
    entries.push(CpioEntry::File {
        path: "lib/modules/load-order".into(),
        mode: 0o644,
        data: (order.join("\n") + "\n").into_bytes(),
    });
    for d in ["newroot", "proc", "sys"] {
        entries.push(CpioEntry::Dir {
            path: d.into(),
            mode: 0o755,
        });
    }
    entries.push(CpioEntry::File {
        path: "init".into(),
        mode: 0o755,
        data: include_bytes!("scripts/stage1-init.sh").to_vec(),
    });
    let cpio = write_newc(&entries).map_err(BuildError::Internal)?;
    Ok(inp
        .store
        .add(&path_name("initrd", version), &BTreeSet::new(), |tmp| {
            let out = tmp.join("out");
            fs::create_dir(&out)?;
            fs::write(out.join("initrd"), &cpio)
        })?)
}

/// Programs that only work setuid root; activation copies them to /run/wrappers/bin.
const WRAPPED: &[&str] = &["usr/bin/sudo"];

/// The package set merged into one FHS tree of links (like NixOS's system-path): the first package
/// (by name) to provide a path wins; the others are listed in `conflicts`.
/// [`add_sw`] for the same packages and alternatives is remembered: writing thousands of links only
/// to find the path already valid is most of a rebuild whose package set did not change.
fn add_sw_remembered(
    store: &LocalStore,
    packages: &BTreeMap<String, StorePath>,
    alternatives: &[(String, String, String)],
) -> Result<StorePath, BuildError> {
    let key = memo::this_build().map(|exe| {
        let pkgs: Vec<String> = packages
            .iter()
            .map(|(n, p)| format!("{n}={}", p.base_name()))
            .collect();
        memo::key(&["sw-1", &exe, &pkgs.join(" "), &format!("{alternatives:?}")])
    });
    if let Some(p) = key.as_ref().and_then(|k| memo::get(store, k)) {
        return Ok(p);
    }
    let p = add_sw(store, packages, alternatives)?;
    if let Some(k) = &key {
        memo::put(store, k, &p);
    }
    Ok(p)
}

fn add_sw(
    store: &LocalStore,
    packages: &BTreeMap<String, StorePath>,
    alternatives: &[(String, String, String)],
) -> Result<StorePath, BuildError> {
    let refs: BTreeSet<StorePath> = packages.values().cloned().collect();
    Ok(store.add("system-path", &refs, |tmp| {
        let out = tmp.join("out");
        fs::create_dir(&out)?;
        let mut conflicts = String::new();
        for (name, sp) in packages {
            let phys = store.physical(sp);
            let mut stack = vec![PathBuf::new()];
            while let Some(rel) = stack.pop() {
                let mut ents: Vec<_> = fs::read_dir(phys.join(&rel))?.collect::<Result<_, _>>()?;
                ents.sort_by_key(|e| e.file_name());
                for e in ents {
                    let r = rel.join(e.file_name());
                    if r.as_os_str() == PACKAGE_META {
                        continue;
                    }
                    let dest = out.join(&r);
                    if e.file_type()?.is_dir() {
                        match fs::symlink_metadata(&dest) {
                            Ok(m) if m.is_dir() => {}
                            Ok(_) => {
                                conflicts += &format!("{} {name}\n", r.display());
                                continue;
                            }
                            Err(_) => fs::create_dir(&dest)?,
                        }
                        stack.push(r);
                    } else if fs::symlink_metadata(&dest).is_ok() {
                        conflicts += &format!("{} {name}\n", r.display());
                    } else if let Some(w) = WRAPPED.iter().find(|w| Path::new(w) == r) {
                        // setuid programs resolve to their wrapper, whatever PATH the caller has.
                        let base = w.rsplit('/').next().unwrap_or(w);
                        symlink(format!("/run/wrappers/bin/{base}"), &dest)?;
                    } else {
                        symlink(format!("{}/{}", sp.absolute(), r.display()), &dest)?;
                    }
                }
            }
        }
        // busybox-static ships only /bin/busybox: give every applet a name in /bin (sh, ls, id,
        // poweroff ...) unless a package provides that command, so any PATH finds them.
        if let Some(bb) = packages.get("busybox-static") {
            let bin = fs::read(store.physical(bb).join("bin/busybox"))?;
            let applets = busybox_applets(&bin).ok_or_else(|| {
                other("cannot find the applet list in busybox-static's bin/busybox")
            })?;
            for a in applets {
                let taken = ["bin", "sbin", "usr/bin", "usr/sbin"]
                    .iter()
                    .any(|d| fs::symlink_metadata(out.join(d).join(&a)).is_ok());
                if !taken && a != "busybox" {
                    symlink("busybox", out.join("bin").join(&a))?;
                }
            }
        }
        // Alternatives (update-alternatives in automatic mode): the generic name links to
        // /etc/alternatives/NAME, which this generation's /etc points at the chosen provider.
        for (link, name, _) in alternatives {
            let rel = link.trim_start_matches('/');
            let dest = out.join(rel);
            if rel.is_empty()
                || rel
                    .split('/')
                    .any(|c| c == ".." || c == "." || c.is_empty())
            {
                continue;
            }
            // A postinst names the link: never create it through a link of the package set.
            let through_link = Path::new(rel)
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| {
                    fs::symlink_metadata(out.join(a)).is_ok_and(|m| m.file_type().is_symlink())
                });
            if through_link || fs::symlink_metadata(&dest).is_ok() {
                conflicts += &format!("{rel} (alternative {name})\n");
                continue;
            }
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            symlink(format!("/etc/alternatives/{name}"), &dest)?;
        }
        // /lib/modules follows the running kernel, not this generation's: after a live switch to a
        // generation with another kernel, the booted one still finds its own modules. The next boot
        // runs the new kernel, and the link then names its modules.
        let modules = out.join("lib/modules");
        if fs::symlink_metadata(&modules).is_ok() {
            conflicts += "lib/modules (the booted kernel's modules)\n";
        } else {
            fs::create_dir_all(out.join("lib"))?;
            symlink("/run/booted-system/kernel/lib/modules", &modules)?;
        }
        fs::write(out.join(".pideploy-conflicts"), conflicts)?;
        Ok::<(), io::Error>(())
    })?)
}

/// The applet names compiled into a busybox binary: a NUL-separated, sorted list that starts with
/// "[" and "[[" and ends with an empty name.
fn busybox_applets(bin: &[u8]) -> Option<Vec<String>> {
    let start = bin.windows(5).position(|w| w == b"[\0[[\0")?;
    let len = bin[start..].windows(2).position(|w| w == b"\0\0")?;
    let names: Vec<String> = bin[start..start + len]
        .split(|&b| b == 0)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let valid = names.len() > 10
        && names.windows(2).all(|w| w[0] < w[1])
        && names.iter().all(|n| {
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"[-_.".contains(&b))
        });
    valid.then_some(names)
}

struct TopParts<'a> {
    busybox: &'a str,
    busybox_pkg: &'a StorePath,
    packages: &'a BTreeMap<String, StorePath>,
    kernel: &'a StorePath,
    initrd: Option<&'a StorePath>,
    sw: &'a StorePath,
    etc: &'a StorePath,
    plan: &'a etc::EtcPlan,
    units: &'a str,
    kernel_version: &'a str,
}

fn write_gen(path: &Path, f: &GenFile) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    match f {
        GenFile::File { data, exec } => {
            fs::write(path, data)?;
            let mode = if *exec { 0o755 } else { 0o644 };
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
        }
        GenFile::Link(target) => symlink(target, path),
    }
}

fn add_toplevel(inp: &SystemInputs, t: &TopParts) -> Result<StorePath, BuildError> {
    let cfg = inp.config;
    let board = inp.board;
    let mut files: BTreeMap<String, GenFile> = BTreeMap::new();
    let vars = [("BUSYBOX", t.busybox), ("SYSTEM", cfg.hostname.as_str())];
    for (name, tpl) in [
        ("init", include_str!("scripts/stage2-init.sh")),
        ("activate", include_str!("scripts/activate.sh")),
        ("boot-tasks", include_str!("scripts/boot-tasks.sh")),
        ("ready", include_str!("scripts/ready.sh")),
        ("udhcpc.script", include_str!("scripts/udhcpc.sh")),
        ("grow-root", include_str!("scripts/grow-root.sh")),
        ("show-host-key", include_str!("scripts/show-host-key.sh")),
        (
            "watchdog-feeder",
            include_str!("scripts/watchdog-feeder.sh"),
        ),
    ] {
        let text = render(tpl, &vars).map_err(BuildError::Internal)?;
        files.insert(
            name.into(),
            GenFile::File {
                data: text.into_bytes(),
                exec: true,
            },
        );
    }
    let link = |p: &StorePath| GenFile::Link(p.absolute());
    files.insert("sw".into(), link(t.sw));
    files.insert("etc".into(), link(t.etc));
    files.insert("kernel".into(), link(t.kernel));
    if let Some(i) = t.initrd {
        files.insert("initrd".into(), link(i));
    }
    files.insert("busybox".into(), GenFile::Link(t.busybox.to_string()));

    let text = |s: &str| GenFile::File {
        data: s.as_bytes().to_vec(),
        exec: false,
    };
    files.insert("activation/etc-files".into(), text(&t.plan.etc_files));
    files.insert("activation/users".into(), text(&t.plan.users));
    files.insert("activation/units".into(), text(t.units));
    files.insert("activation/files.list".into(), text(&t.plan.files_list));
    files.insert("activation/wrappers".into(), text(&t.plan.wrappers));
    for (user, keys) in &t.plan.keys {
        files.insert(format!("activation/keys/{user}"), text(keys));
    }
    for (k, data) in &t.plan.files {
        files.insert(
            format!("activation/files/{k}"),
            GenFile::File {
                data: data.clone(),
                exec: false,
            },
        );
    }

    // Boot entry ingredients; root= and init= are added when the entry is written, because the
    // toplevel cannot name itself and the root partition's id belongs to the disk.
    let mut params: Vec<String> = board.boot.cmdline.clone();
    params.extend(cfg.boot.cmdline.iter().cloned());
    files.insert(
        "boot/kernel-params".into(),
        text(&(params.join(" ") + "\n")),
    );
    let mut config_txt = board.boot.config_txt.trim_end().to_string();
    config_txt.push('\n');
    if !cfg.boot.config.is_empty() || !cfg.boot.dtoverlays.is_empty() {
        config_txt += "\n[all]\n# From pi.toml\n";
        for line in &cfg.boot.config {
            config_txt += &format!("{line}\n");
        }
        for o in &cfg.boot.dtoverlays {
            config_txt += &format!("dtoverlay={o}\n");
        }
    }
    files.insert("boot/config.txt".into(), text(&config_txt));
    let kphys = inp.store.physical(t.kernel);
    let mut entry = format!("{} kernel/kernel\n", board.boot.kernel_file);
    if t.initrd.is_some() {
        entry += "initrd.img initrd/initrd\n";
    }
    for dtb in sorted_names(&kphys.join("dtbs"))? {
        entry += &format!("{dtb} kernel/dtbs/{dtb}\n");
    }
    if board.boot.overlays {
        for o in sorted_names(&kphys.join("overlays"))? {
            entry += &format!("overlays/{o} kernel/overlays/{o}\n");
        }
    }
    files.insert("boot/entry".into(), text(&entry));

    let manifest = serde_json::json!({
        "format": 1,
        "hostname": cfg.hostname,
        "board": board.name,
        "kernel": { "package": board.kernel.package, "version": t.kernel_version },
        "packages": inp.lock.packages.iter().filter(|p| p.role != Role::Kernel)
            .map(|p| (p.name.clone(), p.version.clone())).collect::<BTreeMap<_, _>>(),
        "services": cfg.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "files": cfg.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        "users": cfg.users.iter().map(|u| u.name.clone()).collect::<Vec<_>>(),
        "config_digest": cfg.digest().map(hex::encode).map_err(|e| BuildError::Config(e.to_string()))?,
    });
    let manifest = serde_json::to_string_pretty(&manifest)
        .map_err(|e| BuildError::Internal(e.to_string()))?
        + "\n";
    files.insert("manifest.json".into(), text(&manifest));

    let mut refs: BTreeSet<StorePath> = t.packages.values().cloned().collect();
    refs.extend([
        t.sw.clone(),
        t.etc.clone(),
        t.kernel.clone(),
        t.busybox_pkg.clone(),
    ]);
    refs.extend(t.initrd.cloned());
    check_references(&files, &refs)?;
    let name = format!("pideploy-system-{}", cfg.hostname);
    Ok(inp.store.add(&name, &refs, |tmp| {
        let out = tmp.join("out");
        fs::create_dir(&out)?;
        for (rel, f) in &files {
            write_gen(&out.join(rel), f)?;
        }
        Ok::<(), io::Error>(())
    })?)
}

fn sorted_names(dir: &Path) -> Result<Vec<String>, BuildError> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(io("reading", dir))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("reading", dir)(e)),
    };
    v.sort();
    Ok(v)
}

/// Every store path named in generated content must be a declared reference, or a copy to the Pi
/// would leave it dangling. This catches such builder bugs before they reach a device.
fn check_references(
    files: &BTreeMap<String, GenFile>,
    refs: &BTreeSet<StorePath>,
) -> Result<(), BuildError> {
    let known: BTreeSet<String> = refs.iter().map(|r| r.hash_part().to_string()).collect();
    let prefix = format!("{STORE_DIR}/");
    for (name, f) in files {
        let text = match f {
            GenFile::File { data, .. } => String::from_utf8_lossy(data).into_owned(),
            GenFile::Link(t) => t.clone(),
        };
        for (i, _) in text.match_indices(&prefix) {
            let rest = &text[i + prefix.len()..];
            let hash: String = rest.chars().take(pideploy_store::HASH_LEN).collect();
            // Only text shaped like a store path counts ("$(basename ...)" in a script does not).
            let shaped = hash.len() == pideploy_store::HASH_LEN
                && hash
                    .bytes()
                    .all(|b| b"0123456789abcdfghijklmnpqrsvwxyz".contains(&b))
                && rest[hash.len()..].starts_with('-');
            if shaped && !known.contains(&hash) {
                return Err(BuildError::Internal(format!(
                    "{name} names {prefix}{hash}… which is not a declared reference"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_busybox_applets() {
        let mut bin = b"\x7fELF junk [\0[[\0acpid\0ls\0sh\0zcat\0\0more".to_vec();
        bin.extend_from_slice(b"x");
        let a = busybox_applets(&bin);
        assert!(a.is_none(), "too few names is not an applet list");
        let names: Vec<String> = (0..20).map(|i| format!("a{i:02}")).collect();
        let mut bin = b"junk[\0[[\0".to_vec();
        bin.extend(names.join("\0").bytes());
        bin.extend(b"\0\0tail");
        let got = busybox_applets(&bin).unwrap();
        assert_eq!(got.len(), 22);
        assert_eq!(got[2], "a00");
    }

    #[test]
    fn path_names_are_store_safe() {
        assert_eq!(
            path_name("busybox-static", "1:1.35.0-4+deb12u1+b1"),
            "busybox-static-1_1.35.0-4+deb12u1+b1"
        );
        assert_eq!(path_name("x", "1.0~rc1"), "x-1.0_rc1");
    }
}
