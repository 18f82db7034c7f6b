//! Deploying to many hosts at once, the pure half: the inventory file (`hosts.toml`), choosing
//! hosts from it (`--on web-*,@tag`), grouping hosts that share a build, and the summary table.
//! Running the deploys and drawing progress is the CLI's job; nothing here prints or connects.

pub mod inventory;
pub mod plan;
pub mod select;
pub mod summary;

pub use inventory::{Host, Inventory, InventoryError};
pub use select::{select, SelectError};
pub use summary::{HostResult, Row};
