//! The scan flow: collect a snapshot, evaluate it, and report. The CLI and the Lambda
//! functions all run this one function.

use crate::error::ScanError;
use crate::inventory::{Inventory, Scope};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeSet;
use std::time::Instant;
use tracing::info;
use trailwatch_core::finding::FindingContext;
use trailwatch_core::{evaluate_account, EvaluationKind, ScanReport, Settings};

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub scope: Scope,
    pub max_delivery_age: Duration,
    /// How far back a stop of logging followed by a start is a `LOGGING_GAP`.
    pub gap_window: Duration,
    pub warnings: bool,
}

/// A scan's report with what publishing it needs to know besides.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub report: ScanReport,
    pub partition: String,
    /// The region the scan ran from: account-level findings are filed there.
    pub home_region: String,
    /// Regions whose trails could be listed; only there can a missing trail be called deleted.
    pub readable_regions: BTreeSet<String>,
}

impl Scanned {
    /// What every finding of this scan shares: the account's partition, the region
    /// account-level findings are filed in, and where fixes are documented.
    pub fn finding_context(&self, docs_url: &str, now: DateTime<Utc>) -> FindingContext {
        FindingContext {
            partition: self.partition.clone(),
            home_region: self.home_region.clone(),
            docs_url: docs_url.to_string(),
            now,
        }
    }
}

/// Scans one account. With a trail in the scope, only that trail's evaluation is reported:
/// account coverage needs every region, which a single-trail check does not read.
pub async fn scan<I: Inventory>(
    inventory: &I,
    options: &ScanOptions,
) -> Result<ScanReport, ScanError> {
    Ok(scan_detailed(inventory, options).await?.report)
}

/// [`scan`], keeping the partition, home region and readable regions for the publish flow.
pub async fn scan_detailed<I: Inventory>(
    inventory: &I,
    options: &ScanOptions,
) -> Result<Scanned, ScanError> {
    let started = Instant::now();
    let calls_before = inventory.api_calls();
    let scanned_at = Utc::now();
    let snapshot = Box::pin(inventory.collect(&options.scope)).await?;
    let settings = Settings {
        max_delivery_age: options.max_delivery_age,
        gap_window: options.gap_window,
        warnings: options.warnings,
        now: Utc::now(),
    };
    let mut evaluations = evaluate_account(&snapshot, &settings);
    if options.scope.trail.is_some() {
        evaluations.retain(|e| e.kind == EvaluationKind::Trail);
    }
    let report = ScanReport::new(
        scanned_at,
        snapshot.account_id.clone(),
        snapshot.regions.iter().map(|r| r.region.clone()).collect(),
        evaluations,
        inventory.api_calls() - calls_before,
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    info!(
        account = %report.account_id,
        regions = report.regions.len(),
        pass = report.summary.pass,
        fail = report.summary.fail,
        warning = report.summary.warning,
        error = report.summary.error,
        api_calls = report.api_calls,
        duration_ms = report.duration_ms,
        "scan finished"
    );
    Ok(Scanned {
        report,
        partition: snapshot.partition,
        home_region: snapshot.home_region,
        readable_regions: snapshot
            .regions
            .iter()
            .filter(|r| r.trails.is_ok())
            .map(|r| r.region.clone())
            .collect(),
    })
}
