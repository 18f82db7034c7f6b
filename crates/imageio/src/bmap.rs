//! bmaptool-compatible block maps (format 2.0): which 4 KiB blocks of an image hold data.
//!
//! All-zero blocks count as holes, so the map depends only on the image's bytes, never on how a
//! file system happened to store them.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use sha2::Digest;

use crate::error::IoError;
use crate::hash::Sha256;
use crate::pump::read_full;
use crate::zero::is_zero;

/// The block size of the maps this crate makes.
pub const BMAP_BLOCK_SIZE: u64 = 4096;

/// The largest block size accepted in a bmap file (bmaptool writes 4 KiB).
const MAX_BMAP_BLOCK_SIZE: u64 = 1 << 30;

/// The largest bmap file read: a map of a fully fragmented 1 TiB image is far smaller.
pub const MAX_BMAP_FILE_BYTES: u64 = 64 << 20;

/// The bmap format version written; bmaptool 3.x reads it.
const VERSION: &str = "2.0";

/// A run of blocks that hold data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmapRange {
    /// First block (inclusive).
    pub first: u64,
    /// Last block (inclusive).
    pub last: u64,
    /// sha256 of the range's bytes (the last block of the image counts only up to the image end).
    pub sha256: Sha256,
}

/// A block map: the image size and the runs of blocks that hold data; everything else is zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    /// Image size in bytes.
    pub image_size: u64,
    /// Block size in bytes.
    pub block_size: u64,
    /// The data runs, in order, not overlapping.
    pub ranges: Vec<BmapRange>,
}

/// Maps the raw image file `raw`.
pub fn bmap_from_raw(raw: &Path) -> Result<Bmap, IoError> {
    let f = File::open(raw).map_err(IoError::io(format!(
        "opening the raw image {raw:?} to map it"
    )))?;
    Bmap::from_reader(&mut BufReader::with_capacity(1 << 20, f)).map_err(IoError::io(format!(
        "reading the raw image {raw:?} to map it"
    )))
}

/// Reads and parses the bmap file at `path`, refusing one larger than [`MAX_BMAP_FILE_BYTES`].
pub fn read_bmap_file(path: &Path) -> Result<Bmap, IoError> {
    let ctx = || format!("reading the bmap file {path:?}");
    // Checked before opening too: opening a fifo blocks until someone writes to it.
    let refuse = || IoError::BmapParse {
        reason: format!(
            "{path:?} is not a regular file of at most {} MiB; it is not a bmap file",
            MAX_BMAP_FILE_BYTES >> 20
        ),
    };
    if !std::fs::metadata(path)
        .map_err(IoError::io(ctx()))?
        .is_file()
    {
        return Err(refuse());
    }
    let f = File::open(path).map_err(IoError::io(ctx()))?;
    let meta = f.metadata().map_err(IoError::io(ctx()))?;
    if !meta.is_file() || meta.len() > MAX_BMAP_FILE_BYTES {
        return Err(refuse());
    }
    let mut bytes = Vec::new();
    f.take(MAX_BMAP_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(IoError::io(ctx()))?;
    if bytes.len() as u64 > MAX_BMAP_FILE_BYTES {
        return Err(IoError::BmapParse {
            reason: format!(
                "{path:?} is larger than {} MiB; it is not a bmap file",
                MAX_BMAP_FILE_BYTES >> 20
            ),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| IoError::BmapParse {
        reason: format!("{path:?} is not UTF-8 text"),
    })?;
    Bmap::from_xml(&text)
}

impl Bmap {
    /// Maps the raw image read from `r` (to its end) with 4 KiB blocks.
    pub fn from_reader(r: &mut dyn Read) -> std::io::Result<Bmap> {
        let bs = BMAP_BLOCK_SIZE as usize;
        let mut buf = vec![0u8; 256 * bs];
        let mut ranges = Vec::new();
        let mut run: Option<(u64, sha2::Sha256)> = None;
        let mut block = 0u64;
        let mut size = 0u64;
        loop {
            let n = read_full(r, &mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            for chunk in buf[..n].chunks(bs) {
                if is_zero(chunk) {
                    if let Some((first, h)) = run.take() {
                        ranges.push(BmapRange {
                            first,
                            last: block - 1,
                            sha256: Sha256::from_hasher(h),
                        });
                    }
                } else {
                    run.get_or_insert_with(|| (block, sha2::Sha256::new()))
                        .1
                        .update(chunk);
                }
                block += 1;
            }
        }
        if let Some((first, h)) = run {
            ranges.push(BmapRange {
                first,
                last: block - 1,
                sha256: Sha256::from_hasher(h),
            });
        }
        Ok(Bmap {
            image_size: size,
            block_size: BMAP_BLOCK_SIZE,
            ranges,
        })
    }

    /// Number of blocks in the image (the last may be partial).
    pub fn blocks_count(&self) -> u64 {
        self.image_size.div_ceil(self.block_size)
    }

    /// Number of blocks that hold data.
    pub fn mapped_blocks(&self) -> u64 {
        self.ranges.iter().map(|r| r.last - r.first + 1).sum()
    }

    /// Byte span `start..end` of a range, cut at the image end.
    pub fn range_bytes(&self, r: &BmapRange) -> (u64, u64) {
        (
            r.first * self.block_size,
            ((r.last + 1) * self.block_size).min(self.image_size),
        )
    }

    /// The bmap file text, byte for byte what bmaptool expects, with `BmapFileChecksum` filled in.
    pub fn to_xml(&self) -> String {
        let blocks = self.blocks_count();
        let mapped = self.mapped_blocks();
        // Percent with one decimal in integers: no float formatting in deterministic output.
        let permille = (mapped * 1000).checked_div(blocks).unwrap_or(0);
        let mut head = String::new();
        head.push_str("<?xml version=\"1.0\" ?>\n");
        head.push_str(
            "<!-- This file contains the block map for an image file: the blocks that hold data.\n     \
             Blocks that are all zero are holes and need not be written to the card.\n     \
             Made by pideploy; bmaptool reads it. -->\n\n",
        );
        let _ = writeln!(head, "<bmap version=\"{VERSION}\">");
        let _ = writeln!(
            head,
            "    <!-- Image size in bytes -->\n    <ImageSize> {} </ImageSize>\n",
            self.image_size
        );
        let _ = writeln!(
            head,
            "    <!-- Size of a block in bytes -->\n    <BlockSize> {} </BlockSize>\n",
            self.block_size
        );
        let _ = writeln!(head, "    <!-- Count of blocks in the image file -->\n    <BlocksCount> {blocks} </BlocksCount>\n");
        let _ = writeln!(
            head,
            "    <!-- Count of mapped blocks: {}.{}% -->\n    <MappedBlocksCount> {mapped} </MappedBlocksCount>\n",
            permille / 10,
            permille % 10
        );
        head.push_str("    <!-- Type of checksum used in this file -->\n    <ChecksumType> sha256 </ChecksumType>\n\n");
        head.push_str(
            "    <!-- The checksum of this bmap file. When it is calculated, the value of\n         \
             the checksum has be zero (all ASCII \"0\" symbols).  -->\n    <BmapFileChecksum> ",
        );
        let mut tail = String::from(" </BmapFileChecksum>\n\n");
        tail.push_str(
            "    <!-- The block map which consists of elements which may either be a\n         \
             range of blocks or a single block. The 'chksum' attribute\n         \
             (if present) is the checksum of this blocks range. -->\n    <BlockMap>\n",
        );
        for r in &self.ranges {
            if r.first == r.last {
                let _ = writeln!(
                    tail,
                    "        <Range chksum=\"{}\"> {} </Range>",
                    r.sha256, r.first
                );
            } else {
                let _ = writeln!(
                    tail,
                    "        <Range chksum=\"{}\"> {}-{} </Range>",
                    r.sha256, r.first, r.last
                );
            }
        }
        tail.push_str("    </BlockMap>\n</bmap>\n");
        // As bmaptool defines it: the sha256 of the whole file with this field as 64 '0's.
        let zeros = "0".repeat(64);
        let digest = Sha256::of(format!("{head}{zeros}{tail}").as_bytes());
        format!("{head}{digest}{tail}")
    }

    /// Parses bmap text (format 1.4/2.x with sha256, as written by [`Bmap::to_xml`] or
    /// `bmaptool create`), checking its file checksum and that its numbers agree.
    pub fn from_xml(s: &str) -> Result<Self, IoError> {
        let bad = |reason: String| IoError::BmapParse { reason };
        let clean = blank_comments(s);
        let open = clean
            .find("<bmap")
            .ok_or_else(|| bad("no <bmap> element".into()))?;
        let tag_end = clean[open..]
            .find('>')
            .map(|i| open + i)
            .ok_or_else(|| bad("unclosed <bmap> tag".into()))?;
        let version = attribute(&clean[open..tag_end], "version")
            .ok_or_else(|| bad("<bmap> has no version".into()))?;
        let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
        let supported = matches!((major.trim(), minor.trim()), ("2", _) | ("1", "4"));
        if !supported {
            return Err(bad(format!(
                "bmap format version {version} is not supported (only 1.4 and 2.x, with sha256)"
            )));
        }
        let number = |name: &str| -> Result<u64, IoError> {
            let (a, b) =
                element(&clean, name).ok_or_else(|| bad(format!("<{name}> is missing")))?;
            s[a..b]
                .trim()
                .parse()
                .map_err(|_| bad(format!("<{name}> is not a number: {:?}", s[a..b].trim())))
        };
        let image_size = number("ImageSize")?;
        let block_size = number("BlockSize")?;
        let blocks = number("BlocksCount")?;
        let mapped = number("MappedBlocksCount")?;
        if block_size == 0 || block_size > MAX_BMAP_BLOCK_SIZE {
            return Err(bad(format!(
                "<BlockSize> {block_size} is not between 1 and {MAX_BMAP_BLOCK_SIZE}"
            )));
        }
        // With this, every byte offset of a block up to the last one fits in a u64.
        if image_size.checked_add(block_size).is_none() {
            return Err(bad(format!("<ImageSize> {image_size} is too large")));
        }
        let (a, b) = element(&clean, "ChecksumType")
            .ok_or_else(|| bad("<ChecksumType> is missing".into()))?;
        if s[a..b].trim() != "sha256" {
            return Err(bad(format!(
                "checksum type {:?} is not supported, only sha256",
                s[a..b].trim()
            )));
        }
        let (a, b) = element(&clean, "BmapFileChecksum")
            .ok_or_else(|| bad("<BmapFileChecksum> is missing".into()))?;
        let expected = s[a..b].trim().to_string();
        let lead = s[a..b].len() - s[a..b].trim_start().len();
        let at = a + lead;
        let zeroed = format!(
            "{}{}{}",
            &s[..at],
            "0".repeat(expected.len()),
            &s[at + expected.len()..]
        );
        let actual = Sha256::of(zeroed.as_bytes()).to_string();
        if !actual.eq_ignore_ascii_case(&expected) {
            return Err(IoError::BmapChecksum { expected, actual });
        }
        let (map_a, map_b) =
            element(&clean, "BlockMap").ok_or_else(|| bad("<BlockMap> is missing".into()))?;
        let ranges = parse_ranges(&s[map_a..map_b], &clean[map_a..map_b]).map_err(bad)?;
        let bmap = Bmap {
            image_size,
            block_size,
            ranges,
        };
        if bmap.blocks_count() != blocks {
            return Err(bad(format!("<BlocksCount> {blocks} does not match <ImageSize> {image_size} / <BlockSize> {block_size}")));
        }
        // Ranges are checked before anything counts them: a reversed one would underflow.
        let mut next = 0u64;
        for r in &bmap.ranges {
            if r.first < next || r.last < r.first || r.last >= blocks {
                return Err(bad(format!(
                    "range {}-{} is out of order, overlapping or past the image end",
                    r.first, r.last
                )));
            }
            next = r.last + 1;
        }
        if bmap.mapped_blocks() != mapped {
            return Err(bad(format!(
                "<MappedBlocksCount> {mapped} but the ranges hold {} blocks",
                bmap.mapped_blocks()
            )));
        }
        Ok(bmap)
    }
}

/// `s` with every `<!-- … -->` replaced by spaces of the same length, so offsets still match `s`.
fn blank_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("<!--") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("-->").map_or(rest.len(), |j| i + j + 3);
        out.extend(
            rest[i..end]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' }),
        );
        // Multi-byte characters became one space each; pad so byte offsets stay aligned.
        out.extend(std::iter::repeat_n(
            ' ',
            rest[i..end].len() - rest[i..end].chars().count(),
        ));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Byte span of the text inside the first `<name>…</name>` (an element without attributes).
fn element(clean: &str, name: &str) -> Option<(usize, usize)> {
    let open = format!("<{name}>");
    let a = clean.find(&open)? + open.len();
    let b = a + clean[a..].find(&format!("</{name}>"))?;
    Some((a, b))
}

/// The value of `name="…"` (or single quotes) inside a tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let after = rest[i + name.len()..].trim_start();
        let preceded_ok = i == 0 || rest[..i].ends_with(char::is_whitespace);
        if let (true, Some(v)) = (preceded_ok, after.strip_prefix('=')) {
            let v = v.trim_start();
            let q = v.chars().next()?;
            if q == '"' || q == '\'' {
                let end = v[1..].find(q)?;
                return Some(&v[1..1 + end]);
            }
        }
        rest = &rest[i + name.len()..];
    }
    None
}

/// The `<Range>` elements of a `<BlockMap>` body.
fn parse_ranges(raw: &str, clean: &str) -> Result<Vec<BmapRange>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = clean[pos..].find("<Range") {
        let start = pos + i;
        let gt = start + clean[start..].find('>').ok_or("unclosed <Range> tag")?;
        let close = gt
            + clean[gt..]
                .find("</Range>")
                .ok_or("<Range> without </Range>")?;
        let text = raw[gt + 1..close].trim();
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (text, text),
        };
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("range {text:?} is not a block number or a-b"))
        };
        let (first, last) = (num(first)?, num(last)?);
        let sum = attribute(&raw[start..gt], "chksum").ok_or_else(|| {
            format!(
                "range {text:?} has no chksum attribute (bmaps without checksums are not accepted)"
            )
        })?;
        let sha256 = sum.parse().map_err(|e| format!("range {text:?}: {e}"))?;
        out.push(BmapRange {
            first,
            last,
            sha256,
        });
        pos = close + "</Range>".len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks: 0 data, 1-2 zero, 3-5 data, 6 zero, then a 100-byte data tail (block 7, partial).
    fn sample() -> Vec<u8> {
        let bs = BMAP_BLOCK_SIZE as usize;
        let mut v = vec![0u8; 7 * bs + 100];
        v[10] = 1;
        for b in &mut v[3 * bs + 5..6 * bs - 1] {
            *b = 0xAB;
        }
        v[7 * bs + 99] = 7;
        v
    }

    #[test]
    fn maps_runs_of_data_blocks() {
        let img = sample();
        let bs = BMAP_BLOCK_SIZE as usize;
        let b = Bmap::from_reader(&mut &img[..]).unwrap();
        assert_eq!(b.image_size, img.len() as u64);
        assert_eq!(b.blocks_count(), 8);
        let spans: Vec<_> = b.ranges.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(spans, vec![(0, 0), (3, 5), (7, 7)]);
        assert_eq!(b.ranges[0].sha256, Sha256::of(&img[..bs]));
        assert_eq!(b.ranges[1].sha256, Sha256::of(&img[3 * bs..6 * bs]));
        // The partial last block is hashed only up to the image end, as bmaptool does.
        assert_eq!(b.ranges[2].sha256, Sha256::of(&img[7 * bs..]));
        assert_eq!(
            b.range_bytes(&b.ranges[2]),
            (7 * bs as u64, img.len() as u64)
        );
        assert_eq!(b.mapped_blocks(), 5);
    }

    #[test]
    fn xml_round_trip_and_checksum() {
        let b = Bmap::from_reader(&mut &sample()[..]).unwrap();
        let xml = b.to_xml();
        assert!(xml.contains("<bmap version=\"2.0\">"));
        assert!(xml.contains("<Range chksum=\""));
        assert!(xml.contains("> 0 </Range>") && xml.contains("> 3-5 </Range>"));
        assert_eq!(Bmap::from_xml(&xml).unwrap(), b);
        // The file checksum is sha256 of the text with the field zeroed.
        let (a, e) = element(&xml, "BmapFileChecksum").unwrap();
        let sum = xml[a..e].trim();
        let zeroed = xml.replacen(sum, &"0".repeat(64), 1);
        assert_eq!(Sha256::of(zeroed.as_bytes()).to_string(), sum);
        // Any edit is caught.
        let edited = xml.replacen("> 3-5 <", "> 3-4 <", 1);
        assert!(matches!(
            Bmap::from_xml(&edited),
            Err(IoError::BmapChecksum { .. })
        ));
    }

    #[test]
    fn empty_and_all_zero_images() {
        for img in [vec![], vec![0u8; 10_000]] {
            let b = Bmap::from_reader(&mut &img[..]).unwrap();
            assert!(b.ranges.is_empty());
            assert_eq!(Bmap::from_xml(&b.to_xml()).unwrap(), b);
        }
    }

    #[test]
    fn rejects_inconsistent_maps() {
        let mut b = Bmap::from_reader(&mut &sample()[..]).unwrap();
        b.ranges[1].first = 0; // overlaps range 0
        let msg = Bmap::from_xml(&b.to_xml()).unwrap_err().to_string();
        assert!(msg.contains("overlapping"), "{msg}");
        let mut b = Bmap::from_reader(&mut &sample()[..]).unwrap();
        b.ranges[2].last = 8; // past the end
        assert!(Bmap::from_xml(&b.to_xml()).is_err());
        let sha1 = "<bmap version=\"1.3\"><ImageSize>1</ImageSize></bmap>";
        assert!(Bmap::from_xml(sha1)
            .unwrap_err()
            .to_string()
            .contains("1.3"));
        assert!(Bmap::from_xml("not xml").is_err());
    }

    #[test]
    fn attributes() {
        assert_eq!(attribute("<Range chksum=\"ab\"", "chksum"), Some("ab"));
        assert_eq!(
            attribute("<Range  chksum = 'cd' x=\"1\"", "chksum"),
            Some("cd")
        );
        assert_eq!(attribute("<Range xchksum=\"ab\"", "chksum"), None);
    }
}
