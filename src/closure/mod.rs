//! The closure builder: config + board + locked artifacts → store paths and a toplevel.
//!
//! Layout of a toplevel (`…-pideploy-system-<hostname>`): `init` (stage 2), `activate`, boot/shutdown
//! tasks, links `sw` (package set), `etc`, `kernel`, `initrd`, `busybox`; `activation/` (data the
//! activation script applies); `boot/` (kernel params, config.txt body, the boot entry's file list);
//! `manifest.json`.

pub mod accounts;
mod builder;
pub mod ca_bundle;
mod enabled;
mod error;
pub mod etc;
mod farm;
mod glob;
pub mod kmod_index;
mod l10n;
pub mod ldcache;
pub mod maintainer;
mod memo;
pub mod modules;
mod package_data;
mod package_etc;
pub mod system_units;
mod template;
mod time_sync;
mod triggers;
mod unit_enable;
pub mod units;
pub mod var_tree;
pub mod wifi;

pub use builder::{build_system, wanted_packages, BuiltSystem, SystemInputs};
pub use error::BuildError;
