//! The pideploy store: content-addressed, read-only paths `/pideploy/store/<hash>-<name>`.
//!
//! A path's contents are serialised by [`archive`] into a deterministic byte stream (sorted
//! entries, x bit only, no times or owners); its name is derived from that stream's sha256,
//! the path's name and its references. The same inputs give the same path on any machine,
//! in any directory, for any user and umask.
//!
//! # How a path's hash is computed
//!
//! [`StorePath::compute`] hashes this plain text (every line ends with `\n`, references in
//! sorted order, one `ref` line each, none if there are none):
//!
//! ```text
//! pideploy-store-path-v1
//! name <name>
//! content sha256:<64 lowercase hex of the archive's sha256>
//! ref <hash>-<name>
//! ```
//!
//! takes the first 20 bytes of its sha256 and writes them in the store's base32: alphabet
//! `0123456789abcdfghijklmnpqrsvwxyz`, bits most significant first, five at a time (RFC 4648
//! bit order, another alphabet, no padding), giving 32 characters. In sh, for example:
//! `printf '%s' "$text" | sha256sum | cut -c1-40` gives the 20 bytes in hex to re-encode.
//!
//! # Layout
//!
//! The logical store directory is always [`STORE_DIR`], because that is where paths live on
//! the target and in images (contents may hold absolute symlinks into it). A [`LocalStore`]
//! keeps the same layout under a root of the user's choosing: `R/store/<base>` for contents
//! and `R/var/db/valid/<base>` for registrations ([`PathInfo::to_text`]).

#![deny(missing_docs)]

pub mod archive;
mod base32;
mod error;
mod fsutil;
mod graph;
mod local;
mod path_info;
mod store_path;

pub use error::StoreError;
pub use fsutil::{remove_tree, SEALED_MTIME};
pub use graph::{missing, topo_sort};
pub use local::LocalStore;
pub use path_info::PathInfo;
pub use pideploy_digest::{BadSha256, HashWriter, Sha256};
pub use store_path::{validate_name, StorePath, HASH_LEN, MAX_NAME_LEN};

/// Where store paths live on the target and in images, whatever the local root.
pub const STORE_DIR: &str = "/pideploy/store";

/// The store's base32 encoding (see the crate docs); public so other crates print hashes the same way.
pub fn base32_encode(bytes: &[u8]) -> String {
    base32::encode(bytes)
}
