//! The pure domain of trailwatch: what a scan saw ([`snapshot`]), the rules that turn it into
//! verdicts ([`evaluate`]), the reason codes they give ([`reason`]), the IAM policy matcher
//! ([`policy`]), the metric-filter pattern matcher ([`filter_pattern`]) and the report that the
//! CLI prints ([`report`]), and what a run remembers and decides about pages ([`memory`]).
//!
//! Nothing here does I/O or knows the AWS SDK: adapters in `trailwatch-aws` fill the snapshot
//! types, which are shaped like the AWS API responses, so every rule can be tested with JSON
//! fixtures pasted from real responses.

pub mod alert;
pub mod arn;
pub mod evaluate;
pub mod event;
pub mod filter_pattern;
pub mod finding;
pub mod fix;
pub mod memory;
pub mod metrics;
pub mod policy;
pub mod reason;
pub mod recheck;
pub mod reconcile;
pub mod report;
pub mod snapshot;
#[cfg(test)]
mod test_support;

pub use evaluate::{
    evaluate_account, region_coverage, unique_trails, CoverageState, Evaluation, EvaluationKind,
    RegionCoverage, Settings, TrailView,
};
pub use reason::{Level, Reason, ReasonCode, Severity, Status};
pub use report::{ScanReport, Summary};
pub use snapshot::{AccountSnapshot, Observed, Unavailable};
