//! The AWS side of trailwatch: SDK configuration ([`config`]), collection of everything the
//! rules read ([`inventory`]), and the scan flow ([`scan`]) that the CLI and the Lambda
//! functions share.
//!
//! Rules live in `trailwatch-core`; this crate only talks to AWS and maps SDK types into the
//! core's snapshot types. A failed call never aborts a scan: it is recorded in the snapshot,
//! and the rules turn it into an `EVALUATION_INCOMPLETE` verdict.

pub mod config;
pub mod error;
pub mod inventory;
mod mapping;
pub mod scan;

pub use config::{load_sdk_config, ApiCallCounter};
pub use error::ScanError;
pub use inventory::{CloudTrailInventory, Inventory, RegionSelection, Scope, DEFAULT_CONCURRENCY};
pub use scan::{scan, ScanOptions};
