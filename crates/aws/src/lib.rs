//! The AWS side of trailwatch: SDK configuration ([`config`]), collection of everything the
//! rules read ([`inventory`]), the Security Hub sink ([`security_hub`]), the SNS channel
//! ([`sns`]), the alert ledger that keeps overlapping runs from alerting twice ([`ledger`]), and
//! the flows the CLI and the Lambda functions share: [`scan`] and [`flow`], and across an AWS
//! Organization, [`organization`].
//!
//! Rules live in `trailwatch-core`; this crate only talks to AWS and maps SDK types into the
//! core's snapshot types. A failed call never aborts a scan: it is recorded in the snapshot,
//! and the rules turn it into an `EVALUATION_INCOMPLETE` verdict.

pub mod config;
pub mod error;
pub mod flow;
pub mod inventory;
pub mod ledger;
mod mapping;
pub mod organization;
pub mod scan;
pub mod security_hub;
pub mod settings;
pub mod sns;

pub use config::{load_sdk_config, ApiCallCounter};
pub use error::ScanError;
pub use flow::{Failure, FailureKind, Outcome, PublishOptions};
pub use inventory::{CloudTrailInventory, Inventory, RegionSelection, Scope, DEFAULT_CONCURRENCY};
pub use ledger::{AlertLedger, Claim, LedgerError};
pub use scan::{scan, scan_detailed, ScanOptions, Scanned};
pub use security_hub::{FindingSink, SecurityHubSink, SinkError};
pub use settings::{Config, ConfigError};
pub use sns::{AlertChannel, ChannelError, SnsChannel};
