//! sha256 digests and the hashing reader and writer: pideploy's one digest type.

pub use pideploy_digest::{HashReader, HashWriter, Sha256};
