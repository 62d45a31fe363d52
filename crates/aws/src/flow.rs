//! The two runs the CLI and the Lambda functions share: [`run`] scans every trail and
//! publishes everything (the hourly scan, `trailwatch scan --publish`); [`recheck`] re-checks
//! what one change event touched and publishes that (the trail-change function,
//! `trailwatch replay`). Publishing is [`crate::publication`]'s pipeline.
//!
//! Failures to record or to page never hide the scan: they are returned in
//! [`Outcome::failures`], each marked retryable or not.

use crate::error::ScanError;
use crate::inventory::{Inventory, LookedUp, Scope};
use crate::ledger::Ledger;
use crate::organization::OrgError;
use crate::publication::{self, Destinations, Outcome, Publication, PublishOptions};
use crate::scan::{scan_detailed, scan_listed, ScanOptions, Scanned, Started};
use crate::security_hub::FindingSink;
use crate::sns::AlertChannel;
use std::collections::BTreeSet;
use tracing::warn;
use trailwatch_core::event::{Change, Target};
use trailwatch_core::recheck::{self, MonitorResources, Resolution, Restart};
use trailwatch_core::reconcile::Vanished;

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
/// In stages, each reading only what the next needs:
/// 1. the trail listing (`DescribeTrails` in every monitored region);
/// 2. a call on trailwatch itself (`monitor`) is paged HIGH at once, with nothing else read;
/// 3. what the event concerns, from the listing and at most one targeted read (which roles
///    hold a policy, which log groups feed an alarm, which groups a key encrypts); an event
///    that concerns no trail is a logged skip, decided before any full read;
/// 4. the rest of the account, since its coverage verdict depends on every trail.
///
/// Only the concerned trails and the account are reconciled, so nothing else is imported,
/// archived or paged. A StopLogging event pages HIGH even when the trail logs again by now:
/// the event itself proves the gap ([`recheck::stop_evidence`]).
pub async fn recheck<I, S, C, L>(
    inventory: &I,
    destinations: Destinations<'_, S, C, L>,
    options: &ScanOptions,
    publish: &PublishOptions,
    monitor: &MonitorResources,
    change: &Change,
    restart: Option<&Restart>,
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
    let started = Started::now(inventory);
    let listing = Box::pin(inventory.list(&options.scope))
        .await
        .map_err(Box::new)?;
    if change.account != listing.account_id {
        return Err(RecheckError::WrongAccount {
            event_account: change.account.clone(),
            account: listing.account_id.clone(),
        });
    }
    let partition = listing.partition.clone();

    if let Some(resource) = recheck::resource_arn(change, &partition) {
        if monitor.owns(&resource) {
            warn!(resource = %resource, event_name = %change.actor.event_name, "trailwatch itself was changed");
            let page = recheck::monitor_page(change, &resource, &listing.home_region);
            let scanned = Scanned::listed(listing, started, inventory);
            let publication = Publication {
                evaluations: Vec::new(),
                vanished: Vanished::Only(BTreeSet::new()),
                deleted_by_event: None,
                event_pages: vec![page],
                cause: Some(change.clone()),
            };
            let outcome = Box::pin(publication::publish(
                scanned,
                publication,
                destinations,
                publish,
            ))
            .await;
            return Ok(Recheck::Published(Box::new(outcome)));
        }
    }

    if let Some(region) = recheck::target_region(change) {
        let Some(listed) = listing.regions.iter().find(|r| r.region == region) else {
            return Ok(Recheck::Skipped {
                reason: format!("{region} is not among the monitored regions (TRAILWATCH_REGIONS)"),
            });
        };
        if let Err(why) = &listed.trails {
            return Err(RecheckError::RegionUnreadable {
                region,
                message: why.describe(),
            });
        }
    }

    let views = listing.views();
    let concerned = match recheck::resolve(change, &views, &listing.account_id, &partition) {
        Resolution::Skip(reason) => return Ok(Recheck::Skipped { reason }),
        Resolution::Trails(trails) => trails,
        Resolution::Lookup(lookup) => match Box::pin(inventory.look_up(&lookup)).await {
            Ok(LookedUp::Roles(roles)) => recheck::trails_using(&views, &roles),
            Ok(LookedUp::Groups(groups)) => recheck::trails_delivering_to(&views, &groups),
            Err(why) => {
                // Unsure what it concerns: re-check everything it may concern.
                warn!(error = %why.describe(), "targeted read failed; re-checking every trail the event may concern");
                lookup.unanswered(&views)
            }
        },
    };
    if concerned.is_empty() {
        return Ok(Recheck::Skipped {
            reason: format!(
                "{} {} concerns no trail this account judges",
                change.actor.event_source, change.actor.event_name
            ),
        });
    }

    let scanned = Box::pin(scan_listed(inventory, listing, &options, started))
        .await
        .map_err(Box::new)?;
    let mut focus = recheck::select(change, &scanned.report.evaluations, &partition, &concerned);
    recheck::stop_evidence(change, &mut focus.evaluations, &partition);
    if let Some(restart) = restart {
        recheck::note_restart(change, restart, &mut focus.evaluations, &partition);
    }
    let deleted = matches!(change.target, Target::Trail { deleted: true, .. });
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
