//! Deploying to many hosts at once: the inventory file (`hosts.toml`), choosing hosts from it
//! (`--on web-*,@tag`), grouping hosts that share a build, running their deploys in parallel
//! ([`run`]) and the summary table. Building and drawing progress are the CLI's job; nothing here
//! prints.

pub mod inventory;
pub mod plan;
pub mod run;
pub mod select;
pub mod summary;

pub use inventory::{Host, Inventory, InventoryError};
pub use select::{select, SelectError};
pub use summary::{HostResult, Row};
