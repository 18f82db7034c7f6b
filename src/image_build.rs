//! From a built system to an `ImageSpec`: the staged root (store, generation 1, skeleton) and the
//! boot partition's files (config.txt + generation 1's entry).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pideploy_config::{Board, HostConfig};
use pideploy_image::{BootFile, ImagePlan, ImageSpec, TableKind};
use pideploy_store::{LocalStore, StorePath};

use crate::boot_entry::{self, EntryInput, Source};

/// Fixed time of everything in an image (files, superblock, generation record), so that images are
/// bit-identical whatever the clock. `SOURCE_DATE_EPOCH` overrides it, as reproducible builds expect.
pub fn image_timestamp() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_704_067_200) // 2024-01-01T00:00:00Z
}

/// Why staging failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Reading the store or writing the staging tree failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] pideploy_store::StoreError),
    /// The toplevel's boot data is malformed.
    #[error("boot entry: {0}")]
    Entry(String),
    /// The toplevel's activation data is malformed.
    #[error("generation 1: {0}")]
    Activation(String),
    /// A Wi-Fi passphrase could not be read or is not one.
    #[error(transparent)]
    Secret(#[from] pideploy_deploy::DeployError),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StageError + 'a {
    move |source| StageError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Copies a store path physically; hard links where possible (same filesystem, read-only files).
fn copy_path(src: &Path, dest: &Path) -> Result<u64, StageError> {
    let meta = fs::symlink_metadata(src).map_err(io_err("reading", src))?;
    if meta.file_type().is_symlink() {
        let t = fs::read_link(src).map_err(io_err("reading", src))?;
        symlink(t, dest).map_err(io_err("writing", dest))?;
        Ok(0)
    } else if meta.is_dir() {
        fs::create_dir(dest).map_err(io_err("creating", dest))?;
        let mut total = 0;
        let mut ents: Vec<_> = fs::read_dir(src)
            .map_err(io_err("reading", src))?
            .collect::<Result<_, _>>()
            .map_err(io_err("reading", src))?;
        ents.sort_by_key(|e| e.file_name());
        for e in ents {
            total += copy_path(&e.path(), &dest.join(e.file_name()))?;
        }
        // Store directories are read-only; keep that in the image.
        let perm = fs::metadata(src)
            .map_err(io_err("reading", src))?
            .permissions();
        fs::set_permissions(dest, perm).map_err(io_err("writing", dest))?;
        Ok(total)
    } else {
        if fs::hard_link(src, dest).is_err() {
            fs::copy(src, dest).map_err(io_err("copying to", dest))?;
        }
        Ok(meta.len())
    }
}

/// Prefix of a path being copied into the staged store; renamed to its name once complete.
const COPYING: &str = ".copying-";

/// What staging did with the closure's store paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    /// Store paths copied (hard-linked) for this image.
    pub copied: usize,
    /// Store paths taken over from the previous image's staging.
    pub kept: usize,
    /// Bytes of file content in the store paths copied for this image.
    pub copied_bytes: u64,
}

/// Makes `sdir` (absent) hold exactly `closure`: the kept tree of the previous image is moved in
/// (one rename, same filesystem as the work dir) and what this closure lacks is removed; the rest
/// is copied, each path under a temporary name first, so that a path with a store name is always
/// complete (an interrupted run leaves no half-copied path to be trusted next time).
fn stage_store(
    store: &LocalStore,
    closure: &[StorePath],
    sdir: &Path,
) -> Result<Staged, StageError> {
    let kept = store.kept_image_store();
    match fs::rename(&kept, sdir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(sdir).map_err(io_err("creating", sdir))?;
        }
        Err(e) => return Err(io_err("taking over", &kept)(e)),
    }
    fs::set_permissions(sdir, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", sdir))?;
    let wanted: BTreeSet<String> = closure.iter().map(|p| p.base_name().to_string()).collect();
    for e in fs::read_dir(sdir).map_err(io_err("reading", sdir))? {
        let e = e.map_err(io_err("reading", sdir))?;
        let keep = e.file_name().to_str().is_some_and(|n| wanted.contains(n));
        if !keep {
            pideploy_store::remove_tree(&e.path())?;
        }
    }
    let mut staged = Staged {
        copied: 0,
        kept: 0,
        copied_bytes: 0,
    };
    for p in closure {
        let dest = sdir.join(p.base_name());
        if fs::symlink_metadata(&dest).is_ok() {
            staged.kept += 1;
            continue;
        }
        let part = sdir.join(format!("{COPYING}{}", p.base_name()));
        staged.copied_bytes += copy_path(&store.physical(p), &part)?;
        fs::rename(&part, &dest).map_err(io_err("renaming", &part))?;
        staged.copied += 1;
    }
    Ok(staged)
}

/// Keeps the staged store of `root` (staged by [`stage_root`]) for the next image. If another
/// image put its own back first, this one is left to the work dir's removal.
pub fn keep_staged_store(store: &LocalStore, root: &Path) {
    let _ = fs::rename(root.join("pideploy/store"), store.kept_image_store());
}

/// Fills `root` (empty) with the closure of `toplevel`, its registrations, generation 1 and the
/// directories the first boot needs before activation.
pub fn stage_root(
    store: &LocalStore,
    toplevel: &StorePath,
    config: &HostConfig,
    root: &Path,
) -> Result<Staged, StageError> {
    // Everything created here gets explicit modes: the image must not depend on the umask.
    let mkdir = |rel: &str| -> Result<PathBuf, StageError> {
        let mut cur = root.to_path_buf();
        for comp in rel.split('/') {
            cur = cur.join(comp);
            if !cur.exists() {
                fs::create_dir(&cur).map_err(io_err("creating", &cur))?;
            }
            let mode = match rel {
                "tmp" => 0o1777,
                "root" => 0o700,
                _ => 0o755,
            };
            fs::set_permissions(&cur, fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", &cur))?;
        }
        Ok(cur)
    };
    let write = |p: &Path, data: &[u8]| -> Result<(), StageError> {
        fs::write(p, data).map_err(io_err("writing", p))?;
        fs::set_permissions(p, fs::Permissions::from_mode(0o644)).map_err(io_err("chmod", p))
    };
    let closure = store.closure(std::slice::from_ref(toplevel))?;
    let sdir = mkdir("pideploy")?.join("store");
    let staged = stage_store(store, &closure, &sdir)?;
    let vdir = mkdir("pideploy/var/db/valid")?;
    let pdir = mkdir("pideploy/var/profiles")?;
    let gdir = mkdir("pideploy/var/generations")?;
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "boot/firmware",
        "etc",
        "root",
        "home",
        "var",
    ] {
        mkdir(d)?;
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", root))?;
    for p in &closure {
        let info = store.query(p)?;
        write(&vdir.join(p.base_name()), info.to_text().as_bytes())?;
    }
    symlink(toplevel.absolute(), pdir.join("system-1-link")).map_err(io_err("writing", &pdir))?;
    symlink("system-1-link", pdir.join("system")).map_err(io_err("writing", &pdir))?;
    let record = generation_record(
        1,
        image_timestamp(),
        toplevel,
        "pideploy image",
        config,
        "initial image",
    )?;
    write(&gdir.join("1.json"), record.as_bytes())?;
    lay_down_links(&store.physical(toplevel), root)?;
    wifi_passphrases(config, root)?;
    Ok(staged)
}

/// The Wi-Fi passphrases, so a headless Pi joins its network on the first boot: root's files (0400,
/// in a 0700 directory) on the card, outside the store, where a switch's secret set puts them later
/// too. They are the only secrets an image holds (`[[secrets]]` come with the first switch); an
/// image made with Wi-Fi is to be kept like the passphrase itself.
fn wifi_passphrases(config: &HostConfig, root: &Path) -> Result<(), StageError> {
    let psks = pideploy_deploy::secrets::wifi_passphrases(config)?;
    if psks.is_empty() {
        return Ok(());
    }
    let dir = root.join(pideploy_config::WIFI_PSK_DIR.trim_start_matches('/'));
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    let mut d = dir.clone();
    while d != root {
        let mode = if d == dir { 0o700 } else { 0o755 };
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", &d))?;
        d = d.parent().unwrap_or(root).to_path_buf();
    }
    for (target, data) in psks {
        let p = root.join(target.trim_start_matches('/'));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&p)
            .map_err(io_err("creating", &p))?;
        io::Write::write_all(&mut f, &data).map_err(io_err("writing", &p))?;
    }
    Ok(())
}

/// Generation 1's links, as its activation would make them on the first boot: the FHS directories
/// through the running system, `/etc/static`, one `/etc` link per `link` line of
/// `activation/etc-files` (and a directory per `dir` line), and the record of those lines. Each link costs the activation on the
/// card a few forks (seconds on a first boot); already in place, it costs a check. Files that
/// activation copies (owners, modes) are still made by it.
fn lay_down_links(system: &Path, root: &Path) -> Result<(), StageError> {
    for d in ["bin", "sbin", "lib", "usr"] {
        let link = root.join(d);
        symlink(format!("/run/current-system/sw/{d}"), &link).map_err(io_err("writing", &link))?;
    }
    let etc_link = system.join("etc");
    let etc_store = fs::read_link(&etc_link).map_err(io_err("reading", &etc_link))?;
    let etc = root.join("etc");
    symlink(&etc_store, etc.join("static")).map_err(io_err("writing", &etc))?;
    let list_path = system.join("activation/etc-files");
    let list = fs::read_to_string(&list_path).map_err(io_err("reading", &list_path))?;
    let bad = |why: &str| StageError::Activation(format!("{}: {why}", list_path.display()));
    for line in list.lines() {
        let mut words = line.split(' ');
        let (Some(kind @ ("link" | "dir")), Some(rel)) = (words.next(), words.next()) else {
            continue;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        if parts
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == "..")
        {
            return Err(bad(&format!("{rel:?} is not a plain relative path")));
        }
        let mut dir = etc.clone();
        let make = if kind == "dir" {
            &parts[..]
        } else {
            &parts[..parts.len() - 1]
        };
        for c in make {
            dir.push(c);
            // Never through a link: it would point outside the staged root.
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(bad(&format!("{rel}: {} is not a directory", dir.display()))),
                Err(_) => {
                    fs::create_dir(&dir).map_err(io_err("creating", &dir))?;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                        .map_err(io_err("chmod", &dir))?;
                }
            }
        }
        if kind == "link" {
            let link = dir.join(parts[parts.len() - 1]);
            symlink(format!("/etc/static/{rel}"), &link).map_err(io_err("writing", &link))?;
        }
    }
    let record = root.join("pideploy/var/etc-files");
    fs::write(&record, &list).map_err(io_err("writing", &record))?;
    fs::set_permissions(&record, fs::Permissions::from_mode(0o644))
        .map_err(io_err("chmod", &record))
}

/// The JSON record of a generation (`/pideploy/var/generations/N.json`).
pub fn generation_record(
    n: u32,
    time: u64,
    toplevel: &StorePath,
    deployer: &str,
    config: &HostConfig,
    message: &str,
) -> Result<String, StageError> {
    let digest = config.digest().map(hex::encode).unwrap_or_default();
    let v = serde_json::json!({
        "generation": n,
        "time": time,
        "toplevel": toplevel.absolute(),
        "deployer": deployer,
        "config_digest": digest,
        "message": message,
    });
    Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
}

/// Boot partition files for generation 1: `config.txt` and the `gen-1/` entry.
pub fn boot_files(
    store: &LocalStore,
    toplevel: &StorePath,
    board: &Board,
    config: &HostConfig,
    root_partuuid: &str,
) -> Result<Vec<BootFile>, StageError> {
    let top = store.physical(toplevel);
    let read = |rel: &str| -> Result<String, StageError> {
        let p = top.join(rel);
        fs::read_to_string(&p).map_err(io_err("reading", &p))
    };
    let params = read("boot/kernel-params")?;
    let entry_list = read("boot/entry")?;
    let body = read("boot/config.txt")?;
    let abs = toplevel.absolute();
    let root = format!("PARTUUID={root_partuuid}");
    let input = EntryInput {
        generation: 1,
        toplevel: &abs,
        kernel_params: &params,
        entry_list: &entry_list,
        root: &root,
    };
    let mut files = Vec::new();
    for f in boot_entry::plan_entry(&input).map_err(StageError::Entry)? {
        let data = match f.source {
            Source::Bytes(b) => b,
            Source::Toplevel(rel) => resolve_in_store(store, &top, &rel)
                .and_then(|p| fs::read(&p).map_err(io_err("reading", &p)))?,
        };
        files.push(BootFile { path: f.path, data });
    }
    let has_initrd = entry_list.lines().any(|l| l.starts_with("initrd.img "));
    let cfg_txt = boot_entry::config_txt(
        &body,
        1,
        &config.hostname,
        &board.boot.kernel_file,
        has_initrd,
    );
    files.push(BootFile {
        path: "config.txt".into(),
        data: cfg_txt.into_bytes(),
    });
    Ok(files)
}

/// Follows a path inside a toplevel whose links point at `/pideploy/store/...` to the physical file.
pub fn resolve_in_store(store: &LocalStore, top: &Path, rel: &str) -> Result<PathBuf, StageError> {
    let mut cur = top.to_path_buf();
    for comp in rel.split('/') {
        cur = cur.join(comp);
        for _ in 0..16 {
            match fs::read_link(&cur) {
                Ok(t) => {
                    let t = t.to_string_lossy().into_owned();
                    cur = match StorePath::parse(&t) {
                        Ok(sp) => store.physical(&sp),
                        Err(_) => cur
                            .parent()
                            .map(|p| p.join(&t))
                            .unwrap_or_else(|| PathBuf::from(&t)),
                    };
                }
                Err(_) => break,
            }
        }
    }
    Ok(cur)
}

/// The image spec for a board: partition defaults from the board, ids from `seed`.
pub fn image_spec(
    board: &Board,
    table: Option<TableKind>,
    size: Option<u64>,
    seed: [u8; 32],
    root_dir: PathBuf,
) -> ImageSpec {
    let table = table.unwrap_or(if board.partitions.table == "gpt" {
        TableKind::Gpt
    } else {
        TableKind::Mbr
    });
    ImageSpec {
        table,
        seed,
        total_size: size,
        boot_size: board.partitions.boot_size_mib * 1024 * 1024,
        boot_label: board.partitions.boot_label.to_uppercase(),
        root_label: board.partitions.root_label.clone(),
        boot_files: Vec::new(),
        root_dir,
        root_owners: Vec::new(),
        timestamp: image_timestamp(),
    }
}

/// Seed of every id in the image: config digest, lock and board, so the same inputs give the same ids.
pub fn image_seed(config: &HostConfig, lock_text: &str, board: &Board) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"pideploy-image-seed-v1\n");
    h.update(config.digest().unwrap_or_default());
    h.update(Sha256::digest(lock_text.as_bytes()));
    h.update(board.name.as_bytes());
    h.finalize().into()
}

/// Closure store paths of the toplevel (re-exported for summaries).
pub fn closure_of(
    store: &LocalStore,
    toplevel: &StorePath,
) -> Result<BTreeSet<StorePath>, StageError> {
    Ok(store
        .closure(std::slice::from_ref(toplevel))?
        .into_iter()
        .collect())
}

/// Plan accessor kept here so the CLI does not reach into image internals.
pub fn root_partuuid(plan: &ImagePlan) -> String {
    plan.root_partuuid().to_string()
}
