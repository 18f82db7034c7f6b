//! pideploy: declarative, reproducible Raspberry Pi 5 images and atomic SSH deploys.
//!
//! The binary's face is [`cli`]; everything else returns typed errors and never prints.

pub mod apt_index;
pub mod boot_entry;
pub mod cli;
pub mod closure;
pub mod doctor;
pub mod image_build;
pub mod locking;
