//! Malformed `.bmap` files: one `IoError` each, never a panic (a reversed range used to
//! underflow while counting mapped blocks), and the file itself is read with a size bound.

use pideploy_imageio::{read_bmap_file, Bmap, IoError, Sha256, BMAP_BLOCK_SIZE};

/// Bmap text with the given numbers and ranges (`first-last` or `n` text), checksum filled in.
fn bmap_text(
    image_size: &str,
    block_size: &str,
    blocks: &str,
    mapped: &str,
    ranges: &[&str],
) -> String {
    let sum = "a".repeat(64);
    let mut s = format!(
        "<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n<ImageSize> {image_size} </ImageSize>\n\
         <BlockSize> {block_size} </BlockSize>\n<BlocksCount> {blocks} </BlocksCount>\n\
         <MappedBlocksCount> {mapped} </MappedBlocksCount>\n<ChecksumType> sha256 </ChecksumType>\n\
         <BmapFileChecksum> {} </BmapFileChecksum>\n<BlockMap>\n",
        "0".repeat(64)
    );
    for r in ranges {
        s.push_str(&format!("<Range chksum=\"{sum}\"> {r} </Range>\n"));
    }
    s.push_str("</BlockMap>\n</bmap>\n");
    let digest = Sha256::of(s.as_bytes()).to_string();
    s.replacen(&"0".repeat(64), &digest, 1)
}

fn parse_err(text: &str) -> String {
    match Bmap::from_xml(text) {
        Err(e @ IoError::BmapParse { .. }) => e.to_string(),
        other => panic!("expected a bmap parse error, got {other:?}"),
    }
}

#[test]
fn a_reversed_range_is_an_error_not_an_underflow() {
    let e = parse_err(&bmap_text("40960", "4096", "10", "1", &["5-3"]));
    assert!(e.contains("range 5-3"), "{e}");
}

#[test]
fn ranges_past_the_end_or_overlapping_are_errors() {
    let e = parse_err(&bmap_text(
        "40960",
        "4096",
        "10",
        "2",
        &["0-18446744073709551615"],
    ));
    assert!(e.contains("past the image end"), "{e}");
    let e = parse_err(&bmap_text("40960", "4096", "10", "4", &["0-3", "2-3"]));
    assert!(e.contains("overlapping"), "{e}");
    let e = parse_err(&bmap_text(
        "40960",
        "4096",
        "10",
        "1",
        &["18446744073709551615"],
    ));
    assert!(e.contains("past the image end"), "{e}");
}

#[test]
fn extreme_sizes_are_errors() {
    let max = u64::MAX.to_string();
    let e = parse_err(&bmap_text(&max, "4096", "4503599627370496", "0", &[]));
    assert!(e.contains("too large"), "{e}");
    let e = parse_err(&bmap_text("4096", "0", "1", "0", &[]));
    assert!(e.contains("BlockSize"), "{e}");
    let e = parse_err(&bmap_text("4096", &max, "1", "0", &[]));
    assert!(e.contains("BlockSize"), "{e}");
}

#[test]
fn the_bmap_file_must_be_a_small_regular_file() {
    let e = read_bmap_file(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bmap");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(pideploy_imageio::MAX_BMAP_FILE_BYTES + 1)
        .unwrap();
    let e = read_bmap_file(&big).unwrap_err();
    assert!(e.to_string().contains("MiB"), "{e}");
    let good = dir.path().join("good.bmap");
    std::fs::write(&good, bmap_text("40960", "4096", "10", "2", &["1-2"])).unwrap();
    assert_eq!(read_bmap_file(&good).unwrap().ranges.len(), 1);
}

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random edits to a real bmap (numbers, dashes, tags), with the file checksum recomputed so
/// the parser sees them: never a panic, and whatever it accepts is self-consistent.
#[test]
fn mutated_bmaps_never_panic_and_what_parses_is_consistent() {
    let bs = BMAP_BLOCK_SIZE as usize;
    let mut img = vec![0u8; 40 * bs + 77];
    for (i, b) in img.iter_mut().enumerate() {
        if (i / bs) % 3 != 1 {
            *b = (i % 251) as u8 + 1;
        }
    }
    let good = Bmap::from_reader(&mut &img[..]).unwrap().to_xml();
    let alphabet = b"0123456789-9<>/ \"xRange18446744073709551615";
    let mut rng = Rng(0xB3A9);
    let mut ok = 0;
    for _ in 0..3000 {
        let mut bytes = good.clone().into_bytes();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            let c = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 => bytes[at] = c,
                1 => bytes.insert(at, c),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let Ok(mut text) = String::from_utf8(bytes) else {
            continue;
        };
        // Recompute the checksum as bmaptool defines it, when the field is still there.
        if let (Some(a), Some(b)) = (
            text.find("<BmapFileChecksum>"),
            text.find("</BmapFileChecksum>"),
        ) {
            let a = a + "<BmapFileChecksum>".len();
            if a <= b {
                let zeroed = format!(
                    "{}{}{}",
                    &text[..a],
                    " ".to_string() + &"0".repeat(64) + " ",
                    &text[b..]
                );
                let digest = Sha256::of(zeroed.as_bytes()).to_string();
                text = format!("{} {digest} {}", &text[..a], &text[b..]);
            }
        }
        if let Ok(b) = Bmap::from_xml(&text) {
            ok += 1;
            let mut next = 0;
            for r in &b.ranges {
                assert!(r.first >= next && r.last >= r.first && r.last < b.blocks_count());
                let (start, end) = b.range_bytes(r);
                assert!(start <= end && end <= b.image_size);
                next = r.last + 1;
            }
            assert!(b.mapped_blocks() <= b.blocks_count());
        }
    }
    assert!(ok > 0);
}
