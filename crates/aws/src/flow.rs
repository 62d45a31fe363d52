//! The two runs the CLI and the Lambda functions share: [`run`] scans every trail and
//! publishes everything (the hourly scan, `trailwatch scan --publish`); [`recheck`] re-checks
//! what one change event touched and publishes that (the trail-change function,
//! `trailwatch replay`). Publishing is [`crate::publication`]'s pipeline.
//!
//! Failures to record or to page never hide the scan: they are returned in
//! [`Outcome::failures`], each marked retryable or not.

use crate::error::ScanError;
use crate::inventory::{Inventory, Scope};
use crate::ledger::Ledger;
use crate::organization::OrgError;
use crate::publication::{self, Destinations, Outcome, Publication, PublishOptions};
use crate::scan::{scan_detailed, ScanOptions};
use crate::security_hub::FindingSink;
use crate::sns::AlertChannel;
use trailwatch_core::event::{Change, Target};
use trailwatch_core::recheck;
use trailwatch_core::reconcile::Vanished;
use trailwatch_core::EvaluationKind;

/// Scans, records findings and pages through `destinations`.
pub async fn run<I, S, C, L>(
    inventory: &I,
    destinations: Destinations<'_, S, C, L>,
    options: &ScanOptions,
    publish: &PublishOptions,
) -> Result<Outcome, ScanError>
where
    I: Inventory,
    S: FindingSink + Sync,
    C: AlertChannel,
    L: Ledger + Sync,
{
    // Boxed: SDK futures are large, and nesting them all inline overflows a 2 MiB thread stack
    // in debug builds.
    let scanned = Box::pin(scan_detailed(inventory, options)).await?;
    let publication = Publication::of_scan(&scanned, options.scope.trail.is_none());
    Ok(Box::pin(publication::publish(
        scanned,
        publication,
        destinations,
        publish,
    ))
    .await)
}

/// What a re-check published, or why it published nothing.
#[derive(Debug, Clone)]
pub enum Recheck {
    Published(Box<Outcome>),
    /// Nothing to re-check; the reason is for the log and the function's response.
    Skipped {
        reason: String,
    },
}

/// Why a re-check could not run. Each says whether EventBridge should try again.
#[derive(Debug, thiserror::Error)]
pub enum RecheckError {
    #[error(transparent)]
    Scan(#[from] Box<ScanError>),
    #[error(
        "the trails of {region} could not be listed, so the change cannot be re-checked: {message}"
    )]
    RegionUnreadable { region: String, message: String },
    #[error("the event is from account {event_account}, but trailwatch runs in {account}; deploy it there, or forward events only from accounts it can read")]
    WrongAccount {
        event_account: String,
        account: String,
    },
    #[error(
        "the event is from member account {account}, which trailwatch could not read: {source}"
    )]
    MemberUnreachable {
        account: String,
        #[source]
        source: Box<OrgError>,
    },
}

impl RecheckError {
    /// A throttled or failing AWS may answer next time; a foreign account will not change.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RecheckError::WrongAccount { .. })
    }
}

/// Re-checks what `change` touched, plus the account's coverage, and publishes like [`run`].
///
/// The whole account is read, not only the touched trail: the account verdict depends on every
/// trail's status, so reading less would mean publishing a coverage verdict built on guesses.
/// Only the touched trails and the account are reconciled, so nothing else is imported,
/// archived or alerted.
pub async fn recheck<I, S, C, L>(
    inventory: &I,
    destinations: Destinations<'_, S, C, L>,
    options: &ScanOptions,
    publish: &PublishOptions,
    change: &Change,
) -> Result<Recheck, RecheckError>
where
    I: Inventory,
    S: FindingSink + Sync,
    C: AlertChannel,
    L: Ledger + Sync,
{
    let options = ScanOptions {
        scope: Scope {
            regions: options.scope.regions.clone(),
            trail: None,
        },
        ..options.clone()
    };
    let scanned = Box::pin(scan_detailed(inventory, &options))
        .await
        .map_err(Box::new)?;
    if change.account != scanned.report.account_id {
        return Err(RecheckError::WrongAccount {
            event_account: change.account.clone(),
            account: scanned.report.account_id.clone(),
        });
    }
    if let Some(region) = recheck::target_region(change) {
        if !scanned.report.regions.contains(&region) {
            return Ok(Recheck::Skipped {
                reason: format!("{region} is not among the monitored regions (TRAILWATCH_REGIONS)"),
            });
        }
        if !scanned.readable_regions.contains(&region) {
            let message = scanned
                .report
                .evaluations
                .iter()
                .find(|e| e.kind == EvaluationKind::Region && e.region == region)
                .and_then(|e| e.reasons.first())
                .map_or_else(|| "unknown error".to_string(), |r| r.message.clone());
            return Err(RecheckError::RegionUnreadable { region, message });
        }
    }
    let focus = recheck::select(change, &scanned.report.evaluations, &scanned.partition);
    let deleted = matches!(change.target, Target::Trail { deleted: true, .. });
    let gone_by_deletion = deleted && focus.missing_trail.is_some();
    if !focus.touched_a_trail() && !gone_by_deletion {
        let reason = match &change.target {
            Target::Trail { name_or_arn, .. } => format!(
                "trail {name_or_arn} does not exist (any more); its DeleteTrail event or the next scheduled scan closes its finding"
            ),
            Target::LogGroup { name } => {
                format!("no trail in {} delivers to log group {name}", change.region)
            }
            Target::Role { name } => format!("no trail delivers through role {name}"),
        };
        return Ok(Recheck::Skipped { reason });
    }
    let deleted_by_event = match (&focus.missing_trail, deleted) {
        (Some(arn), true) => Some(recheck::deletion_candidate(change, arn)),
        _ => None,
    };
    let publication = Publication {
        vanished: Vanished::Only(focus.vanished()),
        evaluations: focus.evaluations,
        deleted_by_event,
        event_pages: Vec::new(),
        cause: Some(change.clone()),
    };
    let outcome = Box::pin(publication::publish(
        scanned,
        publication,
        destinations,
        publish,
    ))
    .await;
    Ok(Recheck::Published(Box::new(outcome)))
}
