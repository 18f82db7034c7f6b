//! pideploy's declarative inputs: the host config (`pi.toml`) and board definitions.
//!
//! Loading is two steps: serde parses the TOML (unknown fields and wrong types are reported with
//! file, line and column), then a pure [`HostConfig::validate`] pass checks every rule and reports
//! each broken one with its field path.
#![deny(missing_docs)]

mod board;
mod digest;
mod error;
mod host;
pub mod rules;
pub mod sealed;
mod validate;

pub use board::{
    AptSource, Board, BoardBoot, BoardInitrd, BoardKernel, BoardPartitions, BoardQemu,
};
pub use error::{line_col, ConfigError, MAX_CONFIG_BYTES};
pub use host::{wifi_psk_path, WIFI_PSK_DIR};
pub use host::{
    BootExtras, Ethernet, FileSpec, Health, HostConfig, Network, Restart, Secret, Service, Ssh,
    Systemd, Time, User, Wifi, WifiNetwork, WifiSecurity, DEFAULT_GENERATIONS_TO_KEEP,
};
pub use validate::{ValidationError, ValidationErrorKind};

/// The commented starter file written by `pideploy init`; it parses and validates as is.
pub const STARTER_TOML: &str = include_str!("starter.toml");
