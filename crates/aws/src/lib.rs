//! The AWS side of trailwatch: SDK configuration ([`config`]), collection of everything the
//! rules read ([`inventory`]), and the three ports a run publishes through, each with its AWS
//! adapter: the Security Hub sink ([`security_hub`]), the SNS channel ([`sns`]) and the alert
//! ledger, the memory of what was paged ([`ledger`]). On top sit the publication pipeline
//! ([`publication`]), the runs the CLI and the Lambda functions share ([`scan`], [`flow`], and
//! across an AWS Organization, [`organization`], with the SCPs of [`guardrail`], handed out
//! through SQS past one invocation by [`fanout`]), and [`services`], which builds it all once
//! from the configuration.
//!
//! Rules live in `trailwatch-core`; this crate only talks to AWS and maps SDK types into the
//! core's snapshot types. A failed call never aborts a scan: it is recorded in the snapshot,
//! and the rules turn it into an `EVALUATION_INCOMPLETE` verdict.

pub mod config;
pub mod error;
pub mod fanout;
pub mod fix;
pub mod flow;
pub mod guardrail;
pub mod inventory;
pub mod ledger;
mod mapping;
pub mod organization;
pub mod publication;
pub mod scan;
pub mod security_hub;
pub mod services;
pub mod settings;
pub mod sns;

pub use config::{load_sdk_config, ApiCallCounter};
pub use error::ScanError;
pub use inventory::{
    CloudTrailInventory, IamReads, Inventory, RegionSelection, Scope, DEFAULT_CONCURRENCY,
};
pub use ledger::{DynamoDbLedger, Ledger, LedgerError};
pub use publication::{Destinations, Failure, FailureKind, Outcome, PublishOptions};
pub use scan::{scan, scan_detailed, ScanOptions, Scanned};
pub use security_hub::{FindingSink, SecurityHubSink, SinkError};
pub use services::Services;
pub use settings::{Config, ConfigError};
pub use sns::{AlertChannel, ChannelError, SnsChannel};
