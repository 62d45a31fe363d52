//! The whole run: scan, reconcile with what Security Hub holds, import what changed, and send
//! one alert for the transitions. The CLI's `scan --publish` and the Lambda functions run this.
//!
//! Failures to record or to alert never hide the scan: they are returned in
//! [`Outcome::failures`], each marked retryable or not, and a transition whose finding could not
//! be recorded is not alerted either (the next run would see it as new and alert again).

use crate::error::ScanError;
use crate::inventory::Inventory;
use crate::scan::{scan_detailed, ScanOptions};
use crate::security_hub::{FindingSink, SinkError};
use crate::sns::AlertChannel;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tracing::{info, warn};
use trailwatch_core::alert::{self, AlertContext, AlertMessage};
use trailwatch_core::finding::{self, FindingContext, RECORD_ARCHIVED};
use trailwatch_core::metrics::RunMetrics;
use trailwatch_core::reconcile::{self, PriorFindings, Transition};
use trailwatch_core::{EvaluationKind, ScanReport, Status};

#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Where the README's reason-code sections live; findings and alerts link there.
    pub docs_url: String,
    /// What started the run, as alerts name it (`trailwatch scan`, `scheduled scan`).
    pub trigger: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    SecurityHubNotEnabled,
    SecurityHub,
    Alert,
}

/// Something the run could not do, with whether a retry may help.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub region: Option<String>,
    pub message: String,
    pub retryable: bool,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: ScanReport,
    /// What the run's findings were rendered with, for printing them the same way.
    pub context: FindingContext,
    pub imported: usize,
    pub archived: usize,
    pub unchanged: usize,
    pub transitions: Vec<Transition>,
    /// The alert sent, with SNS's message id.
    pub alert: Option<(AlertMessage, String)>,
    pub failures: Vec<Failure>,
}

/// What a run did, as a Lambda function returns it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub account_id: String,
    pub regions: usize,
    pub summary: trailwatch_core::Summary,
    pub transitions: usize,
    pub imported: usize,
    pub archived: usize,
    pub alert_sent: bool,
    pub api_calls: u64,
    pub duration_ms: u64,
    pub failures: Vec<Failure>,
}

impl Outcome {
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            account_id: self.report.account_id.clone(),
            regions: self.report.regions.len(),
            summary: self.report.summary.clone(),
            transitions: self.transitions.len(),
            imported: self.imported,
            archived: self.archived,
            alert_sent: self.alert.is_some(),
            api_calls: self.report.api_calls,
            duration_ms: self.report.duration_ms,
            failures: self.failures.clone(),
        }
    }

    pub fn metrics(&self) -> RunMetrics {
        let count = |status: Option<Status>| {
            self.report
                .evaluations
                .iter()
                .filter(|e| e.kind == EvaluationKind::Trail)
                .filter(|e| status.is_none_or(|s| e.status == s))
                .count() as u64
        };
        RunMetrics {
            trails_evaluated: count(None),
            trails_failing: count(Some(Status::Fail)),
            errors: self.report.summary.error as u64 + self.failures.len() as u64,
            transitions: self.transitions.len() as u64,
            api_calls: self.report.api_calls,
            duration_ms: self.report.duration_ms,
        }
    }

    /// The failures worth a retry (an outage), joined into one message; `None` when a retry
    /// could not help, even if something failed (Security Hub not enabled is a setup problem).
    pub fn retryable_failure(&self) -> Option<String> {
        let messages: Vec<&str> = self
            .failures
            .iter()
            .filter(|f| f.retryable)
            .map(|f| f.message.as_str())
            .collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }
}

fn sink_failure(error: &SinkError) -> Failure {
    let region = match error {
        SinkError::NotEnabled { region, .. }
        | SinkError::Read { region, .. }
        | SinkError::Import { region, .. }
        | SinkError::Rejected { region, .. } => region.clone(),
    };
    Failure {
        kind: if error.is_retryable() {
            FailureKind::SecurityHub
        } else {
            FailureKind::SecurityHubNotEnabled
        },
        region: Some(region),
        message: error.to_string(),
        retryable: error.is_retryable(),
    }
}

/// Scans, records findings through `sink` (when given) and alerts through `channel` (when
/// given). Without a sink there is no memory, so every failure counts as new.
pub async fn run<I, S, C>(
    inventory: &I,
    sink: Option<&S>,
    channel: Option<&C>,
    options: &ScanOptions,
    publish: &PublishOptions,
) -> Result<Outcome, ScanError>
where
    I: Inventory,
    S: FindingSink + Sync,
    C: AlertChannel,
{
    // Boxed: SDK futures are large, and nesting them all inline overflows a 2 MiB thread stack
    // in debug builds.
    let scanned = Box::pin(scan_detailed(inventory, options)).await?;
    let context = scanned.finding_context(&publish.docs_url, Utc::now());
    let report = scanned.report;
    let mut failures = Vec::new();

    // Read prior state once per region that may hold a finding: where findings go now, and
    // every readable region (a trail deleted there left its finding behind).
    let mut regions: BTreeSet<String> = report
        .evaluations
        .iter()
        .map(|e| finding::finding_region(e, &context))
        .collect();
    regions.extend(scanned.readable_regions.iter().cloned());
    let mut prior = PriorFindings::default();
    let mut blocked = BTreeSet::new();
    match sink {
        None => prior.unknown = regions.clone(),
        Some(sink) => {
            let (account, partition) = (&report.account_id, &scanned.partition);
            let results: Vec<(String, Result<_, SinkError>)> =
                stream::iter(regions.iter().cloned())
                    .map(|region: String| async move {
                        let found = Box::pin(sink.prior(account, partition, &region)).await;
                        (region, found)
                    })
                    .buffer_unordered(8)
                    .collect()
                    .await;
            for (region, result) in results {
                match result {
                    Ok(found) => {
                        prior.by_region.insert(region, found);
                    }
                    Err(error) => {
                        warn!(region = %region, error = %error, "prior findings unavailable");
                        failures.push(sink_failure(&error));
                        if error.is_retryable() {
                            blocked.insert(region);
                        } else {
                            prior.unknown.insert(region);
                        }
                    }
                }
            }
        }
    }

    // A region whose state could not be read (an outage, not "disabled") is left for the next
    // run: importing or alerting blind there would duplicate alerts once it answers again.
    let evaluations: Vec<_> = report
        .evaluations
        .iter()
        .filter(|e| !blocked.contains(&finding::finding_region(e, &context)))
        .cloned()
        .collect();
    let scope = reconcile::Scope {
        readable_regions: scanned
            .readable_regions
            .iter()
            .filter(|r| !blocked.contains(*r) && !prior.unknown.contains(*r))
            .cloned()
            .collect(),
        full: options.scope.trail.is_none(),
    };
    let plan = reconcile::plan(&evaluations, &prior, &scope, &context);
    let mut transitions = plan.transitions;

    let mut imported = 0;
    let mut archived = 0;
    if let Some(sink) = sink {
        let mut by_region: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for f in plan
            .imports
            .iter()
            .filter(|f| !prior.unknown.contains(&f.region))
        {
            by_region
                .entry(f.region.as_str())
                .or_default()
                .push(f.clone());
        }
        let mut unrecorded = BTreeSet::new();
        for (region, findings) in by_region {
            match Box::pin(sink.import(region, &findings)).await {
                Ok(()) => {
                    let gone = findings
                        .iter()
                        .filter(|f| f.record_state == RECORD_ARCHIVED)
                        .count();
                    archived += gone;
                    imported += findings.len() - gone;
                }
                Err(error) => {
                    warn!(region, error = %error, "import failed");
                    let lost = error.unrecorded();
                    let lost_count = lost.len();
                    unrecorded.extend(lost);
                    failures.push(sink_failure(&error));
                    imported += findings.len().saturating_sub(lost_count);
                }
            }
        }
        reconcile::drop_unrecorded(&mut transitions, &unrecorded);
    }

    let mut sent = None;
    if let Some(channel) = channel {
        let alert_context = AlertContext {
            account_id: report.account_id.clone(),
            region: context.home_region.clone(),
            generated_at: context.now,
            trigger: publish.trigger.clone(),
            docs_url: publish.docs_url.clone(),
        };
        if let Some(message) = alert::render(&transitions, &alert_context) {
            match Box::pin(channel.publish(&message)).await {
                Ok(id) => sent = Some((message, id)),
                Err(error) => failures.push(Failure {
                    kind: FailureKind::Alert,
                    region: None,
                    message: error.to_string(),
                    retryable: true,
                }),
            }
        }
    }

    info!(
        imported,
        archived,
        unchanged = plan.unchanged,
        transitions = transitions.len(),
        alerted = sent.is_some(),
        failures = failures.len(),
        "published"
    );
    Ok(Outcome {
        report,
        context,
        imported,
        archived,
        unchanged: plan.unchanged,
        transitions,
        alert: sent,
        failures,
    })
}
