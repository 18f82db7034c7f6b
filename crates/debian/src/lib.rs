//! Native Debian package handling for pideploy, without dpkg: reading .deb files, parsing apt `Packages`
//! indexes, Debian version ordering, and resolving dependencies into a pinned set of packages.
#![deny(missing_docs)]

mod ar;
pub mod control;
pub mod deb;
pub mod decompress;
mod error;
pub mod packages;
pub mod relation;
pub mod release;
pub mod resolve;
mod unpack;
pub mod version;

pub use error::DebError;
