//! `image`, `inspect`, `flash`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use pideploy_image::{ImageReader, TableKind};
use pideploy_imageio::{Compression, Sha256};

use super::cmd_build::build_for;
use super::{CmdResult, Global, Target, Ui};
use crate::image_build::{boot_files, image_seed, image_spec, keep_staged_store, stage_root};

/// Partition table kinds on the command line.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Table {
    /// MBR (default; what Raspberry Pi OS images use).
    Mbr,
    /// GPT with the Pi-5-safe layout.
    Gpt,
}

/// `pideploy image`.
#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(flatten)]
    target: Target,
    /// Output file: .img (sparse), .img.xz or .img.zst.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Partition table (default: the board's).
    #[arg(long, value_enum)]
    table: Option<Table>,
    /// Total image size, e.g. 2G or 1500M (default: the smallest that fits; it grows on first boot).
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Also write OUT.bmap (bmaptool-compatible block map).
    #[arg(long)]
    bmap: bool,
    /// Replace an existing file at OUT even if it does not look like an image.
    #[arg(long)]
    force: bool,
}

/// `pideploy inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Image file (.img, .img.xz, .img.zst).
    image: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `pideploy flash`.
#[derive(Args, Debug)]
pub struct FlashArgs {
    /// Image file (.img, .img.xz, .img.zst); IMAGE.bmap is used when present.
    image: PathBuf,
    /// Target block device (or a regular file).
    device: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Allow a non-removable disk.
    #[arg(long)]
    force: bool,
}

/// Parses `2G`, `1500M`, `512MiB`, or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = t[digits.len()..].trim().to_ascii_uppercase();
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size {s:?}: expected a number like 2G or 1500M"))?;
    let mul: u64 = match unit.as_str() {
        "" | "B" => 1,
        "K" | "KIB" => 1 << 10,
        "M" | "MIB" => 1 << 20,
        "G" | "GIB" => 1 << 30,
        "T" | "TIB" => 1 << 40,
        _ => {
            return Err(format!(
                "size {s:?}: unknown unit {unit:?} (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Whether an existing file may be replaced without --force: only files that already look like
/// a disk image (MBR signature) or a compressed one.
fn looks_like_image(p: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(p) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    (n == 512 && head[510] == 0x55 && head[511] == 0xAA)
        || head.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD])
}

fn check_output(out: &Path, force: bool) -> Result<(), String> {
    match fs::metadata(out) {
        Err(_) => Ok(()),
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if m.file_type().is_block_device() {
                Err(format!("{} is a block device: write the image to a file, then `pideploy flash FILE {}`", out.display(), out.display()))
            } else if m.is_dir() {
                Err(format!(
                    "{} is a directory: give a file name such as {}/pi.img",
                    out.display(),
                    out.display()
                ))
            } else if !force && !looks_like_image(out) {
                Err(format!(
                    "{} exists and is not a disk image; pass --force to replace it",
                    out.display()
                ))
            } else {
                Ok(())
            }
        }
    }
}

pub fn image(ui: &Ui, g: &Global, a: ImageArgs) -> CmdResult {
    let started = Instant::now();
    let compression = Compression::from_path(&a.output)?;
    check_output(&a.output, a.force)?;
    let (loaded, built, lock_text, ctx) = build_for(ui, g, &a.target)?;
    ui.info(format!("system {}", built.toplevel.absolute()));

    let work = tempfile::Builder::new()
        .prefix("image-")
        .tempdir_in(ctx.store.root())
        .map_err(|e| format!("creating a work dir in {}: {e}", ctx.store.root().display()))?;
    let root = work.path().join("root");
    fs::create_dir(&root)?;
    let staged = stage_root(&ctx.store, &built.toplevel, &loaded.config, &root)?;
    ui.detail(format!(
        "staged {} store paths ({} MiB), {} kept from the previous image",
        staged.copied,
        staged.copied_bytes >> 20,
        staged.kept
    ));

    let table = a.table.map(|t| match t {
        Table::Mbr => TableKind::Mbr,
        Table::Gpt => TableKind::Gpt,
    });
    let seed = image_seed(&loaded.config, &lock_text, &loaded.board);
    let mut spec = image_spec(&loaded.board, table, a.size, seed, root.clone());
    let plan = pideploy_image::plan(&spec, pideploy_image::root_content_bytes(&root)?)?;
    spec.boot_files = boot_files(
        &ctx.store,
        &built.toplevel,
        &loaded.board,
        &loaded.config,
        plan.root_partuuid(),
    )?;

    // The raw image goes beside OUT (same filesystem for the final rename) or into the work dir.
    let out_dir = a
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let raw = match compression {
        Compression::None => tempfile::Builder::new()
            .prefix(".pideploy-image-")
            .tempfile_in(out_dir)
            .map_err(|e| format!("creating a temporary file in {}: {e}", out_dir.display()))?
            .into_temp_path(),
        _ => tempfile::TempPath::try_from_path(work.path().join("raw.img"))?,
    };
    let raw_path: PathBuf = raw.to_path_buf();
    let _ = fs::remove_file(&raw_path);
    let mut bar = ui.bar("image", Some(plan.total_size));
    let written =
        pideploy_image::write_image(&spec, &plan, &raw_path, &mut |stage, done, total| {
            bar.set(done, Some(total));
            let _ = stage;
        });
    keep_staged_store(&ctx.store, &root);
    written?;
    bar.finish();

    let bmap = if a.bmap {
        Some(pideploy_imageio::bmap_from_raw(&raw_path)?)
    } else {
        None
    };
    let (bytes_out, sha) = match compression {
        Compression::None => {
            raw.persist(&a.output)
                .map_err(|e| format!("renaming to {}: {e}", a.output.display()))?;
            let sha = pideploy_imageio::sha256_of_file(&a.output)?.1.to_string();
            (fs::metadata(&a.output)?.len(), sha)
        }
        c => {
            let mut bar = ui.bar(
                if matches!(c, Compression::Xz) {
                    "xz"
                } else {
                    "zstd"
                },
                Some(plan.total_size),
            );
            let threads = std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1);
            let s =
                pideploy_imageio::write_output(&raw_path, &a.output, c, threads, &mut |d, t| {
                    bar.set(d, Some(t))
                })?;
            bar.finish();
            (s.bytes_out, s.sha256_out.to_string())
        }
    };
    if let Some(b) = bmap {
        let name = format!("{}.bmap", a.output.display());
        let tmp = format!("{name}.tmp");
        fs::write(&tmp, b.to_xml())?;
        fs::rename(&tmp, &name)?;
        ui.info(format!("block map {name}"));
    }
    ui.info(format!(
        "wrote {} in {:.1}s: {} MiB image ({} MiB file), root PARTUUID={}",
        a.output.display(),
        started.elapsed().as_secs_f64(),
        plan.total_size >> 20,
        bytes_out >> 20,
        plan.root_partuuid(),
    ));
    println!("{sha}  {}", a.output.display());
    Ok(0)
}

pub fn inspect(_ui: &Ui, a: InspectArgs) -> CmdResult {
    let scratch = tempfile::tempdir()?;
    let raw = pideploy_imageio::materialize_raw(&a.image, scratch.path())?;
    let mut r = ImageReader::open(&raw)?;
    let table = r.table().clone();
    let mut boot_files = Vec::new();
    let mut cmdlines = Vec::new();
    let config_txt = {
        let mut fat = r.boot()?;
        // One pass over the tree: looking each file up from the root again is quadratic.
        fat.for_each_file(|path, data| {
            if path.ends_with("cmdline.txt") {
                let text = String::from_utf8_lossy(data).trim().to_string();
                cmdlines.push((path.to_string(), text));
            }
            boot_files.push((
                path.to_string(),
                data.len() as u64,
                Sha256::of(data).to_string(),
            ));
        })?;
        String::from_utf8_lossy(&fat.read_file("config.txt").unwrap_or_default()).into_owned()
    };
    let mut generations = Vec::new();
    for name in r
        .root_list_dir("/pideploy/var/profiles")
        .unwrap_or_default()
    {
        if let Some(n) = name
            .strip_prefix("system-")
            .and_then(|s| s.strip_suffix("-link"))
        {
            let target = r.root_read_link(&format!("/pideploy/var/profiles/{name}"))?;
            generations.push((n.parse::<u32>().unwrap_or(0), target));
        }
    }
    generations.sort();
    let default = r.root_read_link("/pideploy/var/profiles/system").ok();
    let mut closure_size = 0u64;
    // Path-info files are a few hundred bytes; a larger one is not pideploy's and is skipped.
    let store_paths = r
        .root_read_files("/pideploy/var/db/valid", 1 << 20)
        .unwrap_or_default();
    for (_, text) in &store_paths {
        if let Ok(info) = pideploy_store::PathInfo::from_text(&String::from_utf8_lossy(text)) {
            closure_size = closure_size.saturating_add(info.nar_size);
        }
    }
    if a.json {
        let v = serde_json::json!({
            "table": format!("{:?}", table.kind),
            "disk_id": table.disk_id,
            "partitions": table.partitions.iter().map(|p| serde_json::json!({
                "index": p.index, "start_lba": p.start_lba, "size_lba": p.size_lba,
                "type_code": p.type_code, "type_guid": p.type_guid, "partuuid": p.partuuid,
            })).collect::<Vec<_>>(),
            "boot_files": boot_files.iter().map(|(p, s, h)| serde_json::json!({"path": p, "size": s, "sha256": h})).collect::<Vec<_>>(),
            "config_txt": config_txt,
            "cmdlines": cmdlines.iter().map(|(p, c)| serde_json::json!({"path": p, "cmdline": c})).collect::<Vec<_>>(),
            "generations": generations.iter().map(|(n, t)| serde_json::json!({"generation": n, "toplevel": t})).collect::<Vec<_>>(),
            "default": default,
            "store_paths": store_paths.len(),
            "closure_size": closure_size,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!(
        "partition table: {:?}, disk id {}",
        table.kind, table.disk_id
    );
    for p in &table.partitions {
        let ty = p
            .type_guid
            .clone()
            .or(p.type_code.map(|c| format!("0x{c:02x}")))
            .unwrap_or_default();
        println!(
            "  {}: start {} size {} MiB type {ty} partuuid {}",
            p.index,
            p.start_lba,
            (p.size_lba * 512) >> 20,
            p.partuuid
        );
    }
    println!("boot files:");
    for (p, s, h) in &boot_files {
        println!("  {s:>10}  {}  {p}", &h[..16]);
    }
    println!("config.txt:\n{}", indent(&config_txt));
    for (p, c) in &cmdlines {
        println!("{p}: {c}");
    }
    println!("generations:");
    for (n, t) in &generations {
        let mark = if default.as_deref() == Some(&format!("system-{n}-link")) {
            " (default)"
        } else {
            ""
        };
        println!("  {n}  {t}{mark}");
    }
    println!(
        "store: {} paths, {} MiB",
        store_paths.len(),
        closure_size >> 20
    );
    Ok(0)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn flash(ui: &Ui, a: FlashArgs) -> CmdResult {
    let bmap_path = PathBuf::from(format!("{}.bmap", a.image.display()));
    let bmap = if bmap_path.exists() {
        Some(pideploy_imageio::read_bmap_file(&bmap_path)?)
    } else {
        None
    };
    let size = match &bmap {
        Some(b) => b.image_size,
        None => pideploy_imageio::image_size(&a.image)?.unwrap_or(0),
    };
    // Before any question: flashing an image onto itself destroys it (--force does not apply).
    pideploy_imageio::check_not_image(&a.image, &a.device)?;
    let facts = pideploy_imageio::device_facts(&a.device)?;
    pideploy_imageio::check_target(&facts, size, a.force)?;
    if !a.yes {
        use std::io::{BufRead, IsTerminal};
        if !std::io::stdin().is_terminal() {
            return Err(format!(
                "refusing to overwrite {} without confirmation: pass --yes",
                a.device.display()
            )
            .into());
        }
        eprint!(
            "Overwrite everything on {} with {}? Type yes: ",
            a.device.display(),
            a.image.display()
        );
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "yes" {
            ui.info("nothing written");
            return Ok(1);
        }
    }
    let mut bar = ui.bar("flash", Some(size));
    let s = pideploy_imageio::flash(&a.image, bmap.as_ref(), &a.device, &mut |d, t| {
        bar.set(d, Some(t))
    })?;
    let took = bar.finish();
    ui.info(format!(
        "wrote {} MiB ({} MiB skipped as holes), verified {} MiB, in {:.1}s",
        s.bytes_written >> 20,
        (s.image_size - s.bytes_written.min(s.image_size)) >> 20,
        s.bytes_verified >> 20,
        took.as_secs_f64()
    ));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1500M").unwrap(), 1500 << 20);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("2X").is_err());
        assert!(parse_size("G").is_err());
    }
}
