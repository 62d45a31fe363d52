//! The scan flow: collect a snapshot, evaluate it, and report. The CLI and the Lambda
//! functions all run this one function.

use crate::error::ScanError;
use crate::inventory::{Inventory, Listing, Scope};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeSet;
use std::time::Instant;
use tracing::info;
use trailwatch_core::finding::FindingContext;
use trailwatch_core::{evaluate_account, region_coverage, EvaluationKind, ScanReport, Settings};

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

impl Scanned {
    /// A scan that stopped at the listing: no trail evaluated, for a page that needs none.
    pub fn listed<I: Inventory>(listing: Listing, started: Started, inventory: &I) -> Self {
        let readable_regions = listing
            .regions
            .iter()
            .filter(|r| r.trails.is_ok())
            .map(|r| r.region.clone())
            .collect();
        Scanned {
            report: ScanReport::new(
                started.at,
                listing.account_id,
                listing.regions.into_iter().map(|r| r.region).collect(),
                Vec::new(),
                inventory.api_calls() - started.calls_before,
                u64::try_from(started.clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            ),
            partition: listing.partition,
            home_region: listing.home_region,
            readable_regions,
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

/// The rules' settings for a scan made now.
pub(crate) fn settings_of(options: &ScanOptions) -> Settings {
    Settings {
        max_delivery_age: options.max_delivery_age,
        gap_window: options.gap_window,
        warnings: options.warnings,
        now: Utc::now(),
    }
}

/// When and where a scan started: its clock, and the API calls made before it.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    at: DateTime<Utc>,
    clock: Instant,
    calls_before: u64,
}

impl Started {
    pub fn now<I: Inventory>(inventory: &I) -> Self {
        Started {
            at: Utc::now(),
            clock: Instant::now(),
            calls_before: inventory.api_calls(),
        }
    }
}

/// [`scan`], keeping the partition, home region and readable regions for the publish flow.
pub async fn scan_detailed<I: Inventory>(
    inventory: &I,
    options: &ScanOptions,
) -> Result<Scanned, ScanError> {
    let started = Started::now(inventory);
    let listing = Box::pin(inventory.list(&options.scope)).await?;
    Box::pin(scan_listed(inventory, listing, options, started)).await
}

/// The rest of a scan once its trails are listed: a re-check lists first, and reads the rest
/// only when the event concerns some trail.
pub async fn scan_listed<I: Inventory>(
    inventory: &I,
    listing: Listing,
    options: &ScanOptions,
    started: Started,
) -> Result<Scanned, ScanError> {
    let Started {
        at: scanned_at,
        clock,
        calls_before,
    } = started;
    let snapshot = Box::pin(inventory.collect_listed(listing, &options.scope)).await?;
    let mut evaluations = evaluate_account(&snapshot, &settings_of(options));
    if options.scope.trail.is_some() {
        evaluations.retain(|e| e.kind == EvaluationKind::Trail);
    }
    let coverage = match options.scope.trail {
        Some(_) => Vec::new(),
        None => region_coverage(&snapshot, &evaluations),
    };
    let mut report = ScanReport::new(
        scanned_at,
        snapshot.account_id.clone(),
        snapshot.regions.iter().map(|r| r.region.clone()).collect(),
        evaluations,
        inventory.api_calls() - calls_before,
        u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    report.coverage = coverage;
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
