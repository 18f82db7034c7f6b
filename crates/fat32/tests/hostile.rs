//! Hostile and corrupt volumes: every one gives one error (or a result) with bounded memory and
//! time, never a panic. Each named case reproduces a crash or blow-up found in review; the
//! mutation loop at the end throws seeded random damage at the metadata.

use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use pideploy_fat32::{FatBuilder, FatError, FatReader};

/// A volume of the smallest FAT32 size holding `files`, as bytes.
fn volume(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = FatBuilder::new(FatBuilder::min_size_bytes(), 7, "BOOT", 0).unwrap();
    for (p, d) in files {
        b.add_file(p, d.clone()).unwrap();
    }
    let mut out = Cursor::new(Vec::new());
    b.write(&mut out).unwrap();
    let mut v = out.into_inner();
    v.resize(FatBuilder::min_size_bytes() as usize, 0);
    v
}

fn get16(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn get32(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[at..at + 4].try_into().unwrap()))
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Byte offsets of the first FAT and of cluster 2 in a FAT32 volume.
fn layout(v: &[u8]) -> (usize, usize, usize) {
    let bps = get16(v, 11);
    let fat = get16(v, 14) * bps;
    let data = fat + u64::from(v[16]) * get32(v, 36) * bps;
    let cluster = u64::from(v[13]) * bps;
    (fat as usize, data as usize, cluster as usize)
}

/// Counts the bytes read through it, so a test can bound the work a reader does.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

/// Everything a caller may do with a volume, errors collected, panics not caught.
fn exercise(v: &[u8]) -> Result<u64, FatError> {
    let mut r = FatReader::open(Cursor::new(v))?;
    let mut total = 0u64;
    r.for_each_file(|_, d| total += d.len() as u64)?;
    let walked = r.walk()?;
    for (p, _) in walked.iter().take(8) {
        total += r.read_file(p)?.len() as u64;
    }
    r.list_dir("/")?;
    let _ = r.read_file("config.txt");
    Ok(total)
}

#[test]
fn huge_sectors_per_fat_is_an_error_not_an_8_tib_allocation() {
    let mut v = volume(&[]);
    v[11..13].copy_from_slice(&4096u16.to_le_bytes());
    put32(&mut v, 32, u32::MAX); // total sectors
    put32(&mut v, 36, 0x7FFF_0000); // sectors per FAT: 8 TiB at 4 KiB sectors
    let err = FatReader::open(Cursor::new(&v)).unwrap_err();
    assert!(matches!(err, FatError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("volume holds only"), "{err}");
}

#[test]
fn a_small_file_with_a_chain_through_the_whole_volume_reads_only_its_size() {
    let mut v = volume(&[("a.txt".to_string(), b"hello".to_vec())]);
    let (fat, data, cb) = layout(&v);
    let clusters = (v.len() - data) / cb;
    // The root is cluster 2 and a.txt cluster 3; send a.txt's chain through every cluster.
    for c in 3..clusters + 1 {
        put32(&mut v, fat + c * 4, c as u32 + 1);
    }
    put32(&mut v, fat + (clusters + 1) * 4, 0x0FFF_FFFF);
    let mut r = FatReader::open(Counting {
        inner: Cursor::new(&v),
        read: 0,
    })
    .unwrap();
    assert_eq!(r.read_file("a.txt").unwrap(), b"hello");
    let mut seen = Vec::new();
    r.for_each_file(|p, d| seen.push((p.to_string(), d.to_vec())))
        .unwrap();
    assert_eq!(seen, vec![("a.txt".to_string(), b"hello".to_vec())]);
}

#[test]
fn a_directory_chain_longer_than_65536_entries_is_corrupt() {
    let mut v = volume(&[]);
    let (fat, data, cb) = layout(&v);
    let clusters = (v.len() - data) / cb;
    // The root directory (cluster 2) runs through every cluster: 32 MiB of entries.
    for c in 2..clusters + 1 {
        put32(&mut v, fat + c * 4, c as u32 + 1);
    }
    put32(&mut v, fat + (clusters + 1) * 4, 0x0FFF_FFFF);
    let mut counted = Counting {
        inner: Cursor::new(&v),
        read: 0,
    };
    let err = FatReader::open(&mut counted).unwrap_err();
    assert!(err.to_string().contains("65536 entries"), "{err}");
    // The FAT plus at most one directory's worth, not the 32 MiB chain.
    assert!(counted.read < 4 << 20, "read {} bytes", counted.read);
}

#[test]
fn cross_linked_files_are_refused_by_a_full_traversal() {
    let mut v = volume(&[
        ("A.TXT".to_string(), vec![1; 600]),
        ("B.TXT".to_string(), vec![2; 600]),
    ]);
    let (_, data, _) = layout(&v);
    // Root directory entries: the label, A.TXT and B.TXT (strict 8.3 names, no LFN).
    let entries = &v[data..data + 32 * 4];
    let b_at = (0..4)
        .find(|i| &entries[i * 32..i * 32 + 11] == b"B       TXT")
        .expect("b.txt entry");
    let a_at = (0..4)
        .find(|i| &entries[i * 32..i * 32 + 11] == b"A       TXT")
        .expect("a.txt entry");
    let a_cluster = v[data + a_at * 32 + 26..data + a_at * 32 + 28].to_vec();
    v[data + b_at * 32 + 26..data + b_at * 32 + 28].copy_from_slice(&a_cluster);
    let mut r = FatReader::open(Cursor::new(&v)).unwrap();
    let err = r.for_each_file(|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("also belongs to"), "{err}");
}

#[test]
fn five_thousand_files_in_the_root_are_visited_in_one_pass() {
    let files: Vec<(String, Vec<u8>)> = (0..5000)
        .map(|i| (format!("file-{i:05}.txt"), format!("{i}").into_bytes()))
        .collect();
    let v = volume(&files);
    let start = Instant::now();
    let mut counted = Counting {
        inner: Cursor::new(&v),
        read: 0,
    };
    let mut r = FatReader::open(&mut counted).unwrap();
    let mut n = 0;
    r.for_each_file(|p, d| {
        assert_eq!(p, format!("file-{n:05}.txt"));
        assert_eq!(d, format!("{n}").as_bytes());
        n += 1;
    })
    .unwrap();
    drop(r);
    assert_eq!(n, 5000);
    // The root directory (about 300 KiB with long names) is read once or twice, not 5,000 times.
    assert!(counted.read < 8 << 20, "read {} bytes", counted.read);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// xorshift64*: deterministic, dependency-free randomness for the mutation loop.
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

/// Seeded random damage to the boot sector, the FAT and the root directory: no panic, each
/// input finishes quickly, and nothing is read beyond a bound tied to the volume's size.
#[test]
fn mutated_volumes_never_panic_and_stay_bounded() {
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let name = if i % 3 == 0 {
                format!("DIR{}/F{i}.BIN", i % 4)
            } else {
                format!("long name {i}.txt")
            };
            (name, vec![i as u8; 100 + i * 300])
        })
        .collect();
    let mut v = volume(&files);
    let (fat, data, cb) = layout(&v);
    let regions = [(0, 512), (fat, fat + 4096), (data, data + 8 * cb)];
    let mut rng = Rng(0x5EED_F417);
    let mut ok = 0;
    for _ in 0..400 {
        let mut undo = Vec::new();
        for _ in 0..1 + rng.below(8) {
            let (a, b) = regions[rng.below(regions.len())];
            let at = a + rng.below(b - a);
            undo.push((at, v[at]));
            v[at] = match rng.below(4) {
                0 => 0,
                1 => 0xFF,
                2 => v[at] ^ (1 << rng.below(8)),
                _ => rng.next() as u8,
            };
        }
        let start = Instant::now();
        let mut counted = Counting {
            inner: Cursor::new(&v),
            read: 0,
        };
        let result = FatReader::open(&mut counted).and_then(|mut r| {
            r.for_each_file(|_, _| {})?;
            r.walk()
        });
        ok += usize::from(result.is_ok());
        let _ = exercise(&v);
        assert!(start.elapsed() < Duration::from_secs(2), "{undo:?}");
        assert!(counted.read <= 2 * v.len() as u64, "{undo:?}");
        for (at, old) in undo.into_iter().rev() {
            v[at] = old;
        }
    }
    // Some damage is harmless (unused bytes): the loop must not be all errors.
    assert!(ok > 0);
}
