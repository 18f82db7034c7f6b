//! .deb reading on archives crafted in memory, including hostile ones. Real packages built by dpkg-deb and
//! downloaded by apt are exercised in `tests/deb_real.rs`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use tar::{EntryType, Header};

use super::*;
use crate::ar;

struct Item {
    kind: EntryType,
    path: &'static [u8],
    mode: u32,
    data: &'static [u8],
    link: Option<&'static [u8]>,
}

fn item(kind: EntryType, path: &'static str, mode: u32) -> Item {
    Item {
        kind,
        path: path.as_bytes(),
        mode,
        data: b"",
        link: None,
    }
}

/// A tar whose names are written raw, so that hostile paths tar::Builder would refuse can be made.
fn tar_of(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for it in items {
        let mut h = Header::new_gnu();
        h.set_entry_type(it.kind);
        h.set_mode(it.mode);
        h.set_size(it.data.len() as u64);
        h.set_mtime(0);
        if it.path.len() < 100 {
            h.as_old_mut().name[..it.path.len()].copy_from_slice(it.path);
            if let Some(l) = it.link {
                h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
            }
            h.set_cksum();
            b.append(&h, it.data).unwrap();
        } else {
            // Long names go through the GNU long-name extension that tar::Builder writes.
            let path = std::str::from_utf8(it.path).unwrap();
            b.append_data(&mut h, path, it.data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn deb_of(data_tar: &[u8], data_compression: Compression) -> Vec<u8> {
    let control = tar_of(&[Item {
        data: b"Package: demo\nVersion: 1.0-1\nArchitecture: all\nDescription: demo\n long text\n",
        ..item(EntryType::Regular, "./control", 0o644)
    }]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&control).unwrap();
    let control = gz.finish().unwrap();
    let (name, data) = match data_compression {
        Compression::None => ("data.tar", data_tar.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data_tar).unwrap();
            ("data.tar.gz", e.finish().unwrap())
        }
        Compression::Xz => {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data_tar).unwrap();
            ("data.tar.xz", e.finish().unwrap())
        }
        Compression::Zstd => ("data.tar.zst", zstd::encode_all(data_tar, 1).unwrap()),
    };
    ar::build(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &control),
        (name, &data),
    ])
}

fn sample_items() -> Vec<Item> {
    vec![
        item(EntryType::Directory, "./", 0o755),
        item(EntryType::Directory, "./usr/", 0o700),
        item(EntryType::Directory, "./usr/bin/", 0o755),
        Item {
            data: b"#!/bin/sh\necho hi\n",
            ..item(EntryType::Regular, "./usr/bin/hello", 0o4755)
        },
        Item {
            data: b"plain text",
            ..item(EntryType::Regular, "./usr/readme", 0o600)
        },
        Item {
            link: Some(b"/usr/bin/hello"),
            ..item(EntryType::Symlink, "./usr/bin/abs-link", 0o777)
        },
        Item {
            link: Some(b"hello"),
            ..item(EntryType::Symlink, "./usr/bin/rel-link", 0o777)
        },
        Item {
            link: Some(b"./usr/bin/hello"),
            ..item(EntryType::Link, "./usr/bin/hello2", 0o755)
        },
        item(EntryType::Fifo, "./usr/pipe", 0o644),
        item(EntryType::Char, "./usr/null", 0o666),
        Item {
            data: b"deep",
            ..item(
                EntryType::Regular,
                "./usr/share/a-very-long-directory-name-that-goes-on-and-on/and-on-and-on-until-it-passes-one-hundred-bytes.txt",
                0o644,
            )
        },
    ]
}

#[test]
fn control_is_read_from_the_control_member() {
    let deb = deb_of(&tar_of(&sample_items()), Compression::Xz);
    let c = read_control(&deb[..]).unwrap();
    assert_eq!(c["Package"], "demo");
    assert_eq!(c["Version"], "1.0-1");
    assert_eq!(c["Description"], "demo\n long text");
}

/// A .deb whose control.tar (xz-compressed) holds `items`, with an empty data.tar.
fn deb_with_control(items: &[Item]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(&tar_of(items)).unwrap();
    let control = e.finish().unwrap();
    ar::build(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", &control),
        ("data.tar", &tar_of(&[])),
    ])
}

#[test]
fn control_files_are_read_by_name_and_others_ignored() {
    let deb = deb_with_control(&[
        item(EntryType::Directory, "./", 0o755),
        Item {
            data: b"Package: demo\n",
            ..item(EntryType::Regular, "./control", 0o644)
        },
        Item {
            data: b"#!/bin/sh\nadduser --system demo\n",
            ..item(EntryType::Regular, "./postinst", 0o755)
        },
        Item {
            data: b"/etc/demo.conf\n",
            ..item(EntryType::Regular, "conffiles", 0o644)
        },
        Item {
            data: b"abc  usr/bin/demo\n",
            ..item(EntryType::Regular, "./md5sums", 0o644)
        },
        Item {
            link: Some(b"/etc/shadow"),
            ..item(EntryType::Symlink, "./prerm", 0o777)
        },
    ]);
    let files = read_control_files(&deb[..]).unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["conffiles", "control", "postinst"]
    );
    assert_eq!(files["postinst"], b"#!/bin/sh\nadduser --system demo\n");
    assert_eq!(files["conffiles"], b"/etc/demo.conf\n");
}

#[test]
fn control_files_twice_or_escaping_are_refused() {
    let twice = deb_with_control(&[
        Item {
            data: b"a",
            ..item(EntryType::Regular, "./postinst", 0o755)
        },
        Item {
            data: b"b",
            ..item(EntryType::Regular, "postinst", 0o755)
        },
    ]);
    let e = read_control_files(&twice[..]).unwrap_err();
    assert!(e.to_string().contains("`postinst` twice"), "{e}");
    let escaping = deb_with_control(&[Item {
        data: b"a",
        ..item(EntryType::Regular, "../postinst", 0o755)
    }]);
    let e = read_control_files(&escaping[..]).unwrap_err();
    assert!(matches!(e, DebError::UnsafePath { .. }), "{e}");
    let no_control = ar::build(&[("debian-binary", b"2.0\n"), ("data.tar", b"")]);
    assert!(read_control_files(&no_control[..]).is_err());
}

#[test]
fn extracts_every_kind_for_every_compression() {
    for comp in [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let deb = deb_of(&tar_of(&sample_items()), comp);
        let dir = tempfile::tempdir().unwrap();
        let s = extract_data(&deb[..], dir.path()).unwrap();
        assert_eq!(
            (s.files, s.dirs, s.symlinks, s.bytes),
            (4, 2, 2, 18 + 10 + 18 + 4),
            "{comp:?}"
        );
        assert_eq!(s.skipped, ["usr/pipe (Fifo)", "usr/null (CharDevice)"]);
        let mode = |p: &str| {
            std::fs::symlink_metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("usr"), 0o755, "dirs are normalised to 0755");
        assert_eq!(mode("usr/bin/hello"), 0o755, "setuid dropped, exec kept");
        assert_eq!(mode("usr/readme"), 0o644);
        assert_eq!(mode("usr/bin/hello2"), 0o755);
        assert_eq!(
            std::fs::read(dir.path().join("usr/bin/hello2")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("usr/bin/abs-link")).unwrap(),
            std::path::Path::new("/usr/bin/hello")
        );
        assert!(!dir.path().join("usr/pipe").exists());
    }
}

#[test]
fn list_matches_the_archive() {
    let deb = deb_of(&tar_of(&sample_items()), Compression::Gzip);
    let list = list_data(&deb[..]).unwrap();
    assert_eq!(list.len(), sample_items().len() - 1, "root entry left out");
    let hello = list.iter().find(|e| e.path == "usr/bin/hello").unwrap();
    assert_eq!(
        (hello.kind, hello.size, hello.mode),
        (EntryKind::File, 18, 0o4755)
    );
    let hl = list.iter().find(|e| e.path == "usr/bin/hello2").unwrap();
    assert_eq!(hl.link_target.as_deref(), Some("usr/bin/hello"));
    assert!(list
        .iter()
        .any(|e| e.path.ends_with("one-hundred-bytes.txt") && e.size == 4));
}

#[test]
fn entries_escaping_dest_are_refused() {
    for bad in ["./../evil", "/etc/evil", "./usr/../../evil"] {
        let items = [Item {
            data: b"x",
            path: Box::leak(bad.as_bytes().to_vec().into_boxed_slice()),
            ..item(EntryType::Regular, "", 0o644)
        }];
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let deb = deb_of(&tar_of(&items), Compression::None);
        let e = extract_data(&deb[..], &dest).unwrap_err();
        assert!(matches!(e, DebError::UnsafePath { .. }), "{bad}: {e}");
        assert!(!outer.path().join("evil").exists() && !Path::new("/etc/evil").exists());
        assert!(list_data(&deb[..]).is_err());
    }
}

#[test]
fn symlinks_in_dest_resolve_inside_dest() {
    let items = [
        Item {
            link: Some(b"/outside"),
            ..item(EntryType::Symlink, "./abs", 0o777)
        },
        Item {
            data: b"1",
            ..item(EntryType::Regular, "./abs/x", 0o644)
        },
        Item {
            link: Some(b"../../.."),
            ..item(EntryType::Symlink, "./up", 0o777)
        },
        Item {
            data: b"2",
            ..item(EntryType::Regular, "./up/y", 0o644)
        },
    ];
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("root");
    std::fs::create_dir(&dest).unwrap();
    let deb = deb_of(&tar_of(&items), Compression::None);
    extract_data(&deb[..], &dest).unwrap();
    assert_eq!(std::fs::read(dest.join("outside/x")).unwrap(), b"1");
    assert_eq!(std::fs::read(dest.join("y")).unwrap(), b"2");
    assert!(!outer.path().join("y").exists());
    assert_eq!(std::fs::read_dir(outer.path()).unwrap().count(), 1);
}

#[test]
fn merged_usr_symlink_is_followed_and_replaced_files_do_not_write_through_links() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("victim"), b"keep").unwrap();
    std::os::unix::fs::symlink("/victim", dir.path().join("usr/lib/libx.so")).unwrap();
    let items = [
        item(EntryType::Directory, "./lib/", 0o755),
        Item {
            data: b"elf",
            ..item(EntryType::Regular, "./lib/libx.so", 0o644)
        },
    ];
    let deb = deb_of(&tar_of(&items), Compression::Zstd);
    extract_data(&deb[..], dir.path()).unwrap();
    assert!(std::fs::symlink_metadata(dir.path().join("lib"))
        .unwrap()
        .is_symlink());
    assert_eq!(
        std::fs::read(dir.path().join("usr/lib/libx.so")).unwrap(),
        b"elf"
    );
    assert_eq!(std::fs::read(dir.path().join("victim")).unwrap(), b"keep");
}

#[test]
fn broken_archives_are_reported() {
    let good = deb_of(&tar_of(&sample_items()), Compression::Gzip);
    let no_data = ar::build(&[("debian-binary", b"2.0\n"), ("control.tar", b"")]);
    let e = extract_data(&no_data[..], Path::new("/tmp")).unwrap_err();
    assert!(e.to_string().contains("no `data.tar*` member"), "{e}");
    let v3 = ar::build(&[("debian-binary", b"3.0\n")]);
    assert!(read_control(&v3[..])
        .unwrap_err()
        .to_string()
        .contains("3.0"));
    let wrong_first = ar::build(&[("control.tar", b"")]);
    assert!(read_control(&wrong_first[..]).is_err());
    let bz = ar::build(&[("debian-binary", b"2.0\n"), ("data.tar.bz2", b"BZh")]);
    assert!(list_data(&bz[..])
        .unwrap_err()
        .to_string()
        .contains("unsupported"));
    let truncated = &good[..good.len() - 40];
    let dir = tempfile::tempdir().unwrap();
    assert!(extract_data(truncated, dir.path()).is_err());
    let e = extract_data(&good[..], &dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, DebError::Destination { .. }), "{e}");
}
