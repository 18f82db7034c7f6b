//! pideploy's artifact cache: every input file named by its sha256, verified before it is stored;
//! downloads that refuse wrong bytes; and the `pideploy.lock` file that pins them.
#![deny(missing_docs)]

mod cache;
mod error;
mod fetch;
mod lock;
mod sha;

pub use cache::{Cache, CacheEntry, MAX_IMPORT_BYTES};
pub use error::CacheError;
pub use lock::{LockFile, LockedPackage, Role, LOCK_VERSION, MAX_LOCK_BYTES};
pub use sha::normalise_sha256;
