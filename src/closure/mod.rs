//! The closure builder: config + board + locked artifacts → store paths and a toplevel.
//!
//! Layout of a toplevel (`…-pideploy-system-<hostname>`): `init` (stage 2), `activate`, boot/shutdown
//! tasks, links `sw` (package set), `etc`, `kernel`, `initrd`, `busybox`; `activation/` (data the
//! activation script applies); `boot/` (kernel params, config.txt body, the boot entry's file list);
//! `manifest.json`.

mod builder;
pub mod cpio;
mod error;
pub mod etc;
mod glob;
mod memo;
pub mod modules;
mod template;
pub mod units;

pub use builder::{build_system, wanted_packages, BuiltSystem, SystemInputs};
pub use error::BuildError;
