//! Hostile and corrupt partition tables and images: one error each, never a panic, bounded
//! time. The named cases reproduce crashes found in review (overflow, asserts in the `gpt`
//! crate, an unwrap on an MBR partition at LBA 0); the loops throw seeded random damage at
//! the table and at a whole image read through `ImageReader`.

use std::fs::{File, OpenOptions};
use std::io::Cursor;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use pideploy_image::{read_table, ImageError, ImageReader, TableKind};

const SECTOR: usize = 512;

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A GPT as pideploy writes it; the caller edits fields, then [`fix_crcs`] makes them count.
struct Gpt {
    disk: Vec<u8>,
}

impl Gpt {
    /// `sectors` long, 128 entries of 128 bytes at LBA 2, partitions as (first, last).
    fn new(sectors: usize, parts: &[(u64, u64)]) -> Self {
        let mut disk = vec![0u8; sectors * SECTOR];
        disk[446 + 4] = 0xEE;
        put32(&mut disk, 446 + 8, 1);
        put32(&mut disk, 446 + 12, (sectors - 1) as u32);
        disk[510] = 0x55;
        disk[511] = 0xAA;
        let h = SECTOR;
        disk[h..h + 8].copy_from_slice(b"EFI PART");
        put32(&mut disk, h + 8, 0x0001_0000);
        put32(&mut disk, h + 12, 92);
        put64(&mut disk, h + 24, 1);
        put64(&mut disk, h + 32, sectors as u64 - 1);
        put64(&mut disk, h + 40, 34);
        put64(&mut disk, h + 48, sectors as u64 - 34);
        disk[h + 56..h + 72].copy_from_slice(&[0x11; 16]);
        put64(&mut disk, h + 72, 2);
        put32(&mut disk, h + 80, 128);
        put32(&mut disk, h + 84, 128);
        let mut g = Gpt { disk };
        for (i, &(first, last)) in parts.iter().enumerate() {
            g.set_part(i, first, last);
        }
        g.fix_crcs();
        g
    }

    fn set_part(&mut self, i: usize, first: u64, last: u64) {
        let e = 2 * SECTOR + i * 128;
        self.disk[e..e + 16].copy_from_slice(&[0xA2; 16]);
        self.disk[e + 16..e + 32].copy_from_slice(&[i as u8 + 1; 16]);
        put64(&mut self.disk, e + 32, first);
        put64(&mut self.disk, e + 40, last);
    }

    fn header_u32(&mut self, at: usize, v: u32) -> &mut Self {
        put32(&mut self.disk, SECTOR + at, v);
        self
    }

    /// Recomputes both checksums over the array the header describes (clamped to the disk).
    fn fix_crcs(&mut self) -> &mut Self {
        let h = SECTOR;
        let lba = u64::from_le_bytes(self.disk[h + 72..h + 80].try_into().unwrap());
        let count = u32::from_le_bytes(self.disk[h + 80..h + 84].try_into().unwrap()) as usize;
        let size = u32::from_le_bytes(self.disk[h + 84..h + 88].try_into().unwrap()) as usize;
        let start = (lba as usize).saturating_mul(SECTOR).min(self.disk.len());
        let end = start
            .saturating_add(count.saturating_mul(size))
            .min(self.disk.len());
        let array_crc = crc32(&self.disk[start..end]);
        put32(&mut self.disk, h + 88, array_crc);
        let hsize = (u32::from_le_bytes(self.disk[h + 12..h + 16].try_into().unwrap()) as usize)
            .clamp(92, 512);
        put32(&mut self.disk, h + 16, 0);
        let header_crc = crc32(&self.disk[h..h + hsize]);
        put32(&mut self.disk, h + 16, header_crc);
        self
    }

    fn read(&self) -> Result<pideploy_image::PartitionTable, ImageError> {
        read_table(&mut Cursor::new(&self.disk))
    }
}

fn mbr(sectors: usize, parts: &[(u8, u32, u32)]) -> Vec<u8> {
    let mut disk = vec![0u8; sectors * SECTOR];
    for (i, &(sys, start, size)) in parts.iter().enumerate() {
        let e = 446 + 16 * i;
        disk[e + 4] = sys;
        put32(&mut disk, e + 8, start);
        put32(&mut disk, e + 12, size);
    }
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk
}

fn bad_table(r: Result<pideploy_image::PartitionTable, ImageError>, want: &str) {
    match r {
        Err(e @ ImageError::BadTable(_)) => {
            assert!(e.to_string().contains(want), "{e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        other => panic!("expected a table error containing {want:?}, got {other:?}"),
    }
}

#[test]
fn a_well_formed_gpt_reads_back() {
    let t = Gpt::new(4096, &[(2048, 3071), (3072, 4062)])
        .read()
        .unwrap();
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.partitions.len(), 2);
    assert_eq!(
        (t.partitions[1].start_lba, t.partitions[1].size_lba),
        (3072, 991)
    );
    assert_eq!(t.disk_id, "11111111-1111-1111-1111-111111111111");
}

#[test]
fn gpt_partition_ending_before_it_starts_is_an_error() {
    bad_table(
        Gpt::new(4096, &[(3000, 2048)]).read(),
        "ends (sector 2048) before it starts",
    );
}

#[test]
fn gpt_partition_ending_at_u64_max_is_an_error() {
    bad_table(Gpt::new(4096, &[(2048, u64::MAX)]).read(), "past the end");
}

#[test]
fn gpt_partition_with_a_huge_first_lba_is_an_error() {
    bad_table(
        Gpt::new(4096, &[(u64::MAX - 1, u64::MAX)]).read(),
        "past the end",
    );
    bad_table(Gpt::new(4096, &[(1 << 62, 1 << 62)]).read(), "past the end");
}

#[test]
fn gpt_entry_size_other_than_128_is_an_error_not_an_assert() {
    for size in [0u32, 64, 100, 129, 4096, u32::MAX] {
        let mut g = Gpt::new(4096, &[(2048, 3071)]);
        g.header_u32(84, size).fix_crcs();
        bad_table(g.read(), "entry size");
    }
}

#[test]
fn gpt_entry_count_and_array_place_are_bounded_by_the_image() {
    let mut g = Gpt::new(4096, &[(2048, 3071)]);
    g.header_u32(80, u32::MAX).fix_crcs();
    bad_table(g.read(), "partition entries");
    let mut g = Gpt::new(4096, &[(2048, 3071)]);
    g.header_u32(80, 4096).header_u32(84, 1024).fix_crcs();
    bad_table(g.read(), "not inside the image");
    let mut g = Gpt::new(4096, &[(2048, 3071)]);
    g.header_u32(72, u32::MAX)
        .header_u32(76, u32::MAX)
        .fix_crcs();
    bad_table(g.read(), "not inside the image");
}

#[test]
fn gpt_checksums_are_checked() {
    let mut g = Gpt::new(4096, &[(2048, 3071)]);
    g.disk[2 * SECTOR + 40] ^= 1;
    bad_table(g.read(), "entry array checksum");
    let mut g = Gpt::new(4096, &[(2048, 3071)]);
    g.disk[SECTOR + 60] ^= 1;
    bad_table(g.read(), "header checksum");
}

#[test]
fn mbr_partition_at_lba_0_is_an_error() {
    bad_table(
        read_table(&mut Cursor::new(mbr(4096, &[(0x0c, 0, 100)]))),
        "sector 0",
    );
}

#[test]
fn mbr_partition_past_the_end_is_an_error() {
    bad_table(
        read_table(&mut Cursor::new(mbr(4096, &[(0x0c, 2048, u32::MAX)]))),
        "past the end",
    );
    let t = read_table(&mut Cursor::new(mbr(4096, &[(0x0c, 2048, 2048)]))).unwrap();
    assert_eq!(t.partitions[0].size_lba, 2048);
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

    /// A value likely to sit on a boundary: 0, 1, max, near max, powers of two, or random.
    fn edgy(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => 1,
            2 => u64::MAX - self.below(3) as u64,
            3 => 1 << self.below(64),
            4 => u64::from(u32::MAX) - self.below(3) as u64,
            _ => self.next() % 8192,
        }
    }
}

/// Random header and entry fields, with checksums fixed half the time so the parser gets past
/// them: never a panic, always quick, every partition it returns lies inside the disk.
#[test]
fn mutated_gpts_never_panic() {
    let mut rng = Rng(0x06A7_0001);
    let fields: &[(usize, usize)] = &[
        (SECTOR + 12, 4),
        (SECTOR + 72, 8),
        (SECTOR + 80, 4),
        (SECTOR + 84, 4),
        (2 * SECTOR + 32, 8),
        (2 * SECTOR + 40, 8),
        (2 * SECTOR + 128 + 32, 8),
        (2 * SECTOR + 128 + 40, 8),
    ];
    for _ in 0..1500 {
        let mut g = Gpt::new(256, &[(34, 100), (101, 222)]);
        for _ in 0..1 + rng.below(3) {
            if rng.below(4) == 0 {
                let at = rng.below(34 * SECTOR);
                g.disk[at] = rng.next() as u8;
            } else {
                let (at, len) = fields[rng.below(fields.len())];
                let v = rng.edgy().to_le_bytes();
                g.disk[at..at + len].copy_from_slice(&v[..len]);
            }
        }
        if rng.below(2) == 0 {
            g.fix_crcs();
        }
        let start = Instant::now();
        if let Ok(t) = g.read() {
            for p in &t.partitions {
                assert!(p.start_lba >= 1 && p.start_lba + p.size_lba <= 256, "{p:?}");
            }
        }
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}

#[test]
fn mutated_mbrs_never_panic() {
    let mut rng = Rng(0xB007);
    for _ in 0..3000 {
        let mut disk = mbr(4096, &[(0x0c, 2048, 1024), (0x83, 3072, 1024)]);
        for _ in 0..1 + rng.below(4) {
            let at = 446 + rng.below(66);
            disk[at] = rng.next() as u8;
        }
        if let Ok(t) = read_table(&mut Cursor::new(&disk)) {
            for p in &t.partitions {
                assert!(
                    p.start_lba >= 1 && p.start_lba + p.size_lba <= 4096,
                    "{p:?}"
                );
            }
        }
    }
}

/// A whole MBR image (FAT boot partition, no root file system) damaged in place at random in
/// its table and boot sector, read as `inspect` and `qemu` read it.
#[test]
fn mutated_images_never_panic_through_image_reader() {
    let fat_bytes = pideploy_fat32::FatBuilder::min_size_bytes();
    let fat_sectors = fat_bytes / SECTOR as u64;
    let mut b = pideploy_fat32::FatBuilder::new(fat_bytes, 9, "BOOT", 2048).unwrap();
    b.add_file("config.txt", b"arm_64bit=1\n".to_vec()).unwrap();
    b.add_file("cmdline.txt", b"console=tty1\n".to_vec())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let total = 2048 + fat_sectors + 2048;
    {
        let f = File::create(&path).unwrap();
        f.set_len(total * SECTOR as u64).unwrap();
        let table = mbr(
            1,
            &[
                (0x0c, 2048, fat_sectors as u32),
                (0x83, (2048 + fat_sectors) as u32, 2048),
            ],
        );
        f.write_all_at(&table, 0).unwrap();
        let mut w = pideploy_image::Window::new(f, 2048 * SECTOR as u64, fat_bytes);
        b.write(&mut w).unwrap();
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let boot = 2048 * SECTOR as u64;
    let mut rng = Rng(0x1A6E);
    let mut ok = 0;
    for _ in 0..300 {
        let mut undo = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let at = if rng.below(2) == 0 {
                446 + rng.below(64) as u64
            } else {
                boot + rng.below(90) as u64
            };
            let mut old = [0u8];
            f.read_exact_at(&mut old, at).unwrap();
            undo.push((at, old[0]));
            f.write_all_at(&[rng.next() as u8], at).unwrap();
        }
        let start = Instant::now();
        if let Ok(mut r) = ImageReader::open(&path) {
            if let Ok(mut fat) = r.boot() {
                ok += usize::from(fat.for_each_file(|_, _| {}).is_ok());
                let _ = fat.read_file("config.txt");
            }
            assert!(r.root().is_err());
        }
        assert!(start.elapsed() < Duration::from_secs(2), "{undo:?}");
        for (at, old) in undo.into_iter().rev() {
            f.write_all_at(&[old], at).unwrap();
        }
    }
    assert!(ok > 0);
}
