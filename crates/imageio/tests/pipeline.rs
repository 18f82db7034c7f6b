//! The pipelines end to end, checked with the real tools people use on these files:
//! `xz`, `zstd` and `bmaptool` (Debian packages xz-utils, zstd, bmap-tools).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pideploy_imageio::{
    bmap_from_raw, flash, image_size, materialize_raw, open_image, write_output, Bmap, Compression,
    IoError, Sha256,
};

/// A test image: data islands (pseudo-random and repetitive) in a sea of zeros, odd-sized so the
/// last block is partial.
fn make_image(dir: &Path, len: usize) -> PathBuf {
    let mut v = vec![0u8; len];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for (start, n) in [
        (0usize, 70_000usize),
        (len / 3, 300_000),
        (len / 2 + 123, 5),
    ] {
        for b in &mut v[start..start + n] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    let text = b"pideploy builds the same image twice. ";
    for (i, b) in v[len * 3 / 4..len * 3 / 4 + len / 8].iter_mut().enumerate() {
        *b = text[i % text.len()];
    }
    *v.last_mut().unwrap() = 1;
    let p = dir.join("pi.img");
    File::create(&p).unwrap().write_all(&v).unwrap();
    p
}

fn sha_file(p: &Path) -> Sha256 {
    Sha256::of(&fs::read(p).unwrap())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (install xz-utils, zstd, bmap-tools)"));
    out
}

fn ok(cmd: &mut Command) -> Vec<u8> {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn no_progress() -> impl FnMut(u64, u64) {
    |_, _| {}
}

#[test]
fn xz_output_is_the_same_for_any_thread_count_and_xz_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    // Over 24 MiB, so there are two xz blocks for two threads to share.
    let raw = make_image(dir.path(), 26 << 20 | 777);
    let (one, two) = (dir.path().join("one.img.xz"), dir.path().join("two.xz"));
    let mut calls = Vec::new();
    let s1 = write_output(&raw, &one, Compression::Xz, 1, &mut |d, t| {
        calls.push((d, t))
    })
    .unwrap();
    let s2 = write_output(&raw, &two, Compression::Xz, 2, &mut no_progress()).unwrap();
    let len = fs::metadata(&raw).unwrap().len();
    assert_eq!(fs::read(&one).unwrap(), fs::read(&two).unwrap());
    assert_eq!(s1, s2);
    assert_eq!(s1.bytes_in, len);
    assert_eq!(s1.bytes_out, fs::metadata(&one).unwrap().len());
    assert_eq!(s1.sha256_out, sha_file(&one));
    assert_eq!(calls.last(), Some(&(len, len)));
    ok(Command::new("xz").arg("-t").arg(&one));
    let listed =
        String::from_utf8(ok(Command::new("xz").args(["--robot", "-lvv"]).arg(&one))).unwrap();
    assert!(listed.contains("CRC64"), "{listed}");
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("block\t")).count(),
        2,
        "{listed}"
    );
    assert_eq!(
        Sha256::of(&ok(Command::new("xz").arg("-dc").arg(&one))),
        sha_file(&raw)
    );
    assert_eq!(image_size(&one).unwrap(), Some(len));
    // No temporary files are left beside the output.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn zstd_output_is_the_same_for_any_thread_count_and_zstd_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let raw = make_image(dir.path(), 20 << 20 | 3);
    let (one, two) = (dir.path().join("one.img.zst"), dir.path().join("two.zst"));
    let s1 = write_output(&raw, &one, Compression::Zstd, 1, &mut no_progress()).unwrap();
    let s2 = write_output(&raw, &two, Compression::Zstd, 2, &mut no_progress()).unwrap();
    assert_eq!(fs::read(&one).unwrap(), fs::read(&two).unwrap());
    assert_eq!(s1, s2);
    assert_eq!(s1.sha256_out, sha_file(&one));
    ok(Command::new("zstd").arg("-t").arg(&one));
    assert_eq!(
        Sha256::of(&ok(Command::new("zstd").arg("-dc").arg(&one))),
        sha_file(&raw)
    );
    assert_eq!(
        image_size(&one).unwrap(),
        Some(fs::metadata(&raw).unwrap().len())
    );
}

#[test]
fn raw_output_is_sparse_and_equal() {
    let dir = tempfile::tempdir().unwrap();
    let raw = make_image(dir.path(), 16 << 20 | 100);
    let out = dir.path().join("copy.img");
    let s = write_output(&raw, &out, Compression::None, 0, &mut no_progress()).unwrap();
    let meta = fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), fs::metadata(&raw).unwrap().len());
    assert_eq!(sha_file(&out), sha_file(&raw));
    assert_eq!(s.sha256_out, sha_file(&raw));
    assert_eq!(s.bytes_out, meta.len());
    // Allocated bytes (st_blocks) well below the size: zero blocks became holes.
    assert!(
        meta.blocks() * 512 < meta.len() / 2,
        "{} allocated of {}",
        meta.blocks() * 512,
        meta.len()
    );
    let du = String::from_utf8(ok(Command::new("du").arg("-k").arg(&out))).unwrap();
    let kib: u64 = du.split_whitespace().next().unwrap().parse().unwrap();
    assert!(kib * 1024 < meta.len() / 2, "du says {kib} KiB");
}

#[test]
fn failures_leave_no_output_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pi.img.xz");
    let e = write_output(
        &dir.path().join("missing.img"),
        &out,
        Compression::Xz,
        1,
        &mut no_progress(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("missing.img"), "{e}");
    // A directory opens but cannot be read: the failure comes mid-way, after the temp file exists.
    let e = write_output(dir.path(), &out, Compression::Zstd, 1, &mut no_progress()).unwrap_err();
    assert!(e.to_string().contains("reading the raw image"), "{e}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left behind"
    );
    let raw = make_image(dir.path(), 1 << 20);
    let e = write_output(
        &raw,
        &dir.path().join("no/such/dir/pi.img"),
        Compression::None,
        1,
        &mut no_progress(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("does the directory exist"), "{e}");
    let e = Compression::from_path(Path::new("pi.gz")).unwrap_err();
    assert!(matches!(e, IoError::UnknownEnding { .. }));
}

#[test]
fn any_image_opens_as_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = make_image(dir.path(), 3 << 20 | 5);
    let want = fs::read(&raw).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    // Names that lie about the content: detection is by magic bytes.
    for (name, c) in [
        ("a.zst", Compression::Xz),
        ("b.img", Compression::Zstd),
        ("c.xz", Compression::None),
    ] {
        let p = dir.path().join(name);
        write_output(&raw, &p, c, 2, &mut no_progress()).unwrap();
        let mut got = Vec::new();
        open_image(&p).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, want, "{name}");
        let m = materialize_raw(&p, scratch.path()).unwrap();
        assert_eq!(fs::read(&m).unwrap(), want, "{name}");
        if c == Compression::None {
            assert_eq!(m, p);
        } else {
            assert!(
                m.starts_with(scratch.path())
                    && fs::metadata(&m).unwrap().blocks() * 512 < want.len() as u64
            );
        }
    }
    let gz = dir.path().join("d.img");
    fs::write(&gz, b"\x1F\x8B\x08\x00junk").unwrap();
    let e = open_image(&gz).err().unwrap();
    assert!(e.to_string().contains("gzip"), "{e}");
    // A truncated xz fails on read, with a hint.
    let xz = dir.path().join("a.zst");
    let bytes = fs::read(&xz).unwrap();
    let cut = dir.path().join("cut.xz");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut sink = Vec::new();
    assert!(open_image(&cut).unwrap().read_to_end(&mut sink).is_err());
    let e = materialize_raw(&cut, scratch.path()).unwrap_err();
    assert!(e.to_string().contains("xz -t"), "{e}");
}

#[test]
fn bmaptool_copies_with_our_bmap() {
    let dir = tempfile::tempdir().unwrap();
    let raw = make_image(dir.path(), 8 << 20 | 999);
    let bmap = bmap_from_raw(&raw).unwrap();
    assert_eq!(Bmap::from_xml(&bmap.to_xml()).unwrap(), bmap);
    let bmap_path = dir.path().join("pi.bmap");
    fs::write(&bmap_path, bmap.to_xml()).unwrap();
    let xz = dir.path().join("pi.img.xz");
    write_output(&raw, &xz, Compression::Xz, 2, &mut no_progress()).unwrap();
    for (i, img) in [&raw, &xz].into_iter().enumerate() {
        let out = dir.path().join(format!("copy{i}"));
        ok(Command::new("bmaptool")
            .arg("copy")
            .arg("--bmap")
            .arg(&bmap_path)
            .arg(img)
            .arg(&out));
        assert_eq!(sha_file(&out), sha_file(&raw), "{img:?}");
    }
    // A wrong range checksum (with a correct file checksum) makes bmaptool refuse the copy.
    let mut bad = bmap.clone();
    bad.ranges[1].sha256 = Sha256::of(b"not this range");
    fs::write(&bmap_path, bad.to_xml()).unwrap();
    let out = run(Command::new("bmaptool")
        .arg("copy")
        .arg("--bmap")
        .arg(&bmap_path)
        .arg(&raw)
        .arg(dir.path().join("x")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("checksum mismatch for blocks range"),
        "{err}"
    );
    // An edited file fails its own checksum.
    let edited = bmap.to_xml().replacen("<BlocksCount>", "<BlocksCount> ", 1);
    fs::write(&bmap_path, edited).unwrap();
    let out = run(Command::new("bmaptool")
        .arg("copy")
        .arg("--bmap")
        .arg(&bmap_path)
        .arg(&raw)
        .arg(dir.path().join("y")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("checksum mismatch for bmap file"),
        "{err}"
    );
}

#[test]
fn bmaptool_create_on_our_sparse_file_matches_our_bmap() {
    let dir = tempfile::tempdir().unwrap();
    let raw = make_image(dir.path(), 6 << 20 | 4095);
    let sparse = dir.path().join("sparse.img");
    write_output(&raw, &sparse, Compression::None, 1, &mut no_progress()).unwrap();
    let xml = String::from_utf8(ok(Command::new("bmaptool").arg("create").arg(&sparse))).unwrap();
    let theirs = Bmap::from_xml(&xml).unwrap();
    assert_eq!(theirs, bmap_from_raw(&raw).unwrap());
}

#[test]
fn flashing_any_image_with_or_without_bmap_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = make_image(dir.path(), 5 << 20 | 1234);
    let want = sha_file(&raw);
    let len = fs::metadata(&raw).unwrap().len();
    let bmap = bmap_from_raw(&raw).unwrap();
    let xz = dir.path().join("pi.img.xz");
    let zst = dir.path().join("pi.img.zst");
    write_output(&raw, &xz, Compression::Xz, 2, &mut no_progress()).unwrap();
    write_output(&raw, &zst, Compression::Zstd, 2, &mut no_progress()).unwrap();
    for img in [&raw, &xz, &zst] {
        for b in [Some(&bmap), None] {
            let card = dir.path().join("card");
            // Old, longer contents: a file target ends up exactly the image.
            fs::write(&card, vec![0xFFu8; len as usize + 8192]).unwrap();
            let mut last = (0, 0);
            let s = flash(img, b, &card, &mut |d, t| last = (d, t)).unwrap();
            assert_eq!(sha_file(&card), want, "{img:?} bmap={}", b.is_some());
            assert_eq!(s.image_size, len);
            assert_eq!(s.image_sha256, want);
            assert_eq!(last, (len, len));
            assert!(s.bytes_written < len / 2, "holes were skipped: {s:?}");
            assert!(fs::metadata(&card).unwrap().blocks() * 512 < len / 2);
        }
    }
    // A target that does not exist yet is created.
    let fresh = dir.path().join("fresh.img");
    flash(&zst, None, &fresh, &mut |_, _| {}).unwrap();
    assert_eq!(sha_file(&fresh), want);
}
