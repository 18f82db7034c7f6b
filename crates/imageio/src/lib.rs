//! The stream pipeline behind `pideploy image -o OUT.img[.xz|.zst]` and `pideploy flash IMAGE DEVICE`.
//!
//! Built like coreos-installer's `io/` folder: one small adaptor per file (hashing, progress, sparse
//! writing, bmap-guided writing), each an `impl Read` or `impl Write` tested on bytes in memory, then
//! stacked by [`write_output`], [`open_image`], [`materialize_raw`] and [`flash`].
//!
//! Library code never prints; progress goes through callbacks and failures through [`IoError`].
#![deny(missing_docs)]

mod bmap;
mod bmap_writer;
mod compression;
mod error;
mod flash;
mod hash;
mod loops;
mod open;
mod output;
mod progress;
mod pump;
mod same_file;
mod size;
mod sparse;
mod target;
mod xz;
mod zero;
mod zst;

pub use bmap::{
    bmap_from_raw, read_bmap_file, Bmap, BmapRange, BMAP_BLOCK_SIZE, MAX_BMAP_FILE_BYTES,
};
pub use bmap_writer::BmapWriter;
pub use compression::Compression;
pub use error::IoError;
pub use flash::{flash, FlashSummary};
pub use hash::{sha256_of_file, HashReader, HashWriter, Sha256};
pub use open::{image_size, materialize_raw, open_image};
pub use output::{write_output, OutputSummary};
pub use progress::ProgressReader;
pub use same_file::check_not_image;
pub use sparse::{SetLen, SparseWriter};
pub use target::{check_target, device_facts, DeviceFacts};
