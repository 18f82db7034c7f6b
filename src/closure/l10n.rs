//! Language and keyboard: the configured locale taken out of Debian's precompiled locales, and the
//! console keymap checked against the keymaps the system has.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use pideploy_store::StorePath;

use pideploy_cache::LockedPackage;

use super::builder::{other, path_name, SystemInputs, PACKAGE_META, VAR_LISTING};
use super::error::{io, BuildError};
use super::farm::FarmTree;
use super::memo;

/// Debian's build of every locale, one directory each under /usr/lib/locale: the system takes only
/// the configured one from it (compiled by Debian for arm64, so nothing runs on the build host).
pub const LOCALES_PACKAGE: &str = "locales-all";

/// Locales glibc has without locale files (C.UTF-8 is in libc6 itself since 2.35).
pub(super) fn is_builtin_locale(l: &str) -> bool {
    matches!(
        pideploy_config::rules::locale_dir(l).as_str(),
        "C" | "POSIX" | "C.utf8"
    )
}

/// The one configured locale out of [`LOCALES_PACKAGE`], as a package path holding only
/// `usr/lib/locale/<dir>` (links within the package resolved to files) and its control file: 8 MB
/// installed instead of 227 MB. glibc finds it there when there is no locale-archive (locale(7)).
pub(super) fn add_locale(
    inp: &SystemInputs,
    lp: &LockedPackage,
    locale: &str,
) -> Result<StorePath, BuildError> {
    let dir = pideploy_config::rules::locale_dir(locale);
    let name = path_name(&format!("{}-{dir}", lp.name), &lp.version);
    let key = memo::key(&["locale-1", &lp.sha256, &dir]);
    if let Some(p) = memo::get(inp.store, &key) {
        return Ok(p);
    }
    let scratch = tempfile::Builder::new()
        .prefix(".locales-")
        .tempdir_in(inp.store.root())
        .map_err(io("creating scratch dir in", inp.store.root()))?;
    let unpack = |source| BuildError::Unpack {
        package: lp.name.clone(),
        source,
    };
    pideploy_debian::deb::extract_data(
        inp.cache.open_verified(&lp.name, &lp.sha256)?,
        scratch.path(),
    )
    .map_err(unpack)?;
    let control =
        pideploy_debian::deb::read_control_files(inp.cache.open_verified(&lp.name, &lp.sha256)?)
            .map_err(unpack)?;
    let all = scratch.path().join("usr/lib/locale");
    let src = all.join(&dir);
    if dir.contains('/') || !src.is_dir() {
        return Err(BuildError::Config(format!(
            "locale: {locale:?} is not a locale Debian builds ({} {} has no usr/lib/locale/{dir}); names look like \"de_DE.UTF-8\" or \"en_GB.UTF-8\"",
            lp.name, lp.version
        )));
    }
    let all = all.canonicalize().map_err(io("reading", &all))?;
    let p = inp.store.add(&name, &BTreeSet::new(), |tmp| {
        let out = tmp.join("out");
        copy_locale(&src, &out.join("usr/lib/locale").join(&dir), &all)?;
        let meta = out.join(PACKAGE_META);
        fs::create_dir_all(&meta)?;
        if let Some(c) = control.get("control") {
            fs::write(meta.join("control"), c)?;
        }
        fs::write(meta.join(VAR_LISTING), "")?;
        Ok::<(), io::Error>(())
    })?;
    memo::put(inp.store, &key, &p);
    Ok(p)
}

/// Copies one locale directory, following the package's links between locales (it shares
/// identical categories that way) as long as they stay inside `all`.
fn copy_locale(src: &Path, dest: &Path, all: &Path) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    let mut entries: Vec<_> = fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let real = from.canonicalize()?;
        if !real.starts_with(all) {
            return Err(other(format!(
                "{} points outside usr/lib/locale",
                from.display()
            )));
        }
        let to = dest.join(e.file_name());
        if real.is_dir() {
            copy_locale(&real, &to, all)?;
        } else {
            fs::write(&to, fs::read(&real)?)?;
        }
    }
    Ok(())
}

/// Checks that `keymap` is one of the system's console keymaps (a file `NAME.kmap.gz` or
/// `NAME.map.gz` anywhere under /usr/share/keymaps, where kbd's `loadkeys` looks, loadkeys(1)).
pub fn check_keymap(keymap: &str, tree: &FarmTree) -> Result<(), BuildError> {
    let mut stack: Vec<std::path::PathBuf> = tree.local("/usr/share/keymaps").into_iter().collect();
    let wanted = [
        format!("{keymap}.kmap.gz"),
        format!("{keymap}.map.gz"),
        format!("{keymap}.kmap"),
        format!("{keymap}.map"),
    ];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if wanted.iter().any(|w| e.file_name() == w.as_str()) {
                return Ok(());
            }
        }
    }
    Err(BuildError::Config(format!(
        "keyboard: {keymap:?} is not a console keymap of console-data (names like \"de\", \"fr\", \"uk\", \"us\": the files under /usr/share/keymaps)"
    )))
}
