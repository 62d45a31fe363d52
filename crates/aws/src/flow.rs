//! The whole run: scan, reconcile with what Security Hub holds, import what changed, and send
//! one alert for the transitions. [`run`] does it for every trail (the hourly scan, the CLI's
//! `scan --publish`); [`recheck`] for what one change event touched (the trail-change function,
//! the CLI's `replay`).
//!
//! Failures to record or to alert never hide the scan: they are returned in
//! [`Outcome::failures`], each marked retryable or not. With the alert ledger, a retry alerts
//! what this run could not and repeats nothing; without it, a transition whose finding could not
//! be recorded is not alerted either (the next run would see it as new and alert again).

use crate::config::ApiCallCounter;
use crate::error::ScanError;
use crate::inventory::{CloudTrailInventory, Inventory, Scope};
use crate::ledger::{AlertLedger, Claim, LedgerError, Receipt};
use crate::organization::{self, AccountRun, OrgConfig, OrgError};
use crate::scan::{scan_detailed, ScanOptions, Scanned};
use crate::security_hub::{FindingSink, SecurityHubSink, SinkError};
use crate::settings::Config;
use crate::sns::{AlertChannel, ChannelError, SnsChannel};
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use tracing::{info, warn};
use trailwatch_core::alert::{self, AlertContext, AlertMessage};
use trailwatch_core::event::{Change, Target};
use trailwatch_core::finding::{self, Finding, FindingContext, RECORD_ARCHIVED};
use trailwatch_core::metrics::RunMetrics;
use trailwatch_core::recheck;
use trailwatch_core::reconcile::{self, PriorFindings, Transition, Vanished};
use trailwatch_core::{Evaluation, EvaluationKind, ScanReport, Status};

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
    /// The alert ledger (DynamoDB) could not be read or written. The run carries on as if
    /// it had no ledger: a duplicate alert is better than a lost one.
    Ledger,
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

/// Everything a run needs, built once from the `TRAILWATCH_` configuration: at a Lambda cold
/// start, or by the CLI. Both functions and `trailwatch replay` build it here, so they cannot
/// drift apart.
pub struct Services {
    pub inventory: CloudTrailInventory,
    pub sink: Option<SecurityHubSink>,
    pub channel: Option<SnsChannel>,
    pub ledger: Option<AlertLedger>,
    pub options: ScanOptions,
    pub publish: PublishOptions,
    /// The deployment's own credentials and region, from which member accounts are reached.
    pub sdk: SdkConfig,
    /// Organisation mode, when configured.
    pub org: Option<OrgConfig>,
    /// Requests in flight within one account, for the member accounts' inventories.
    concurrency: usize,
    /// This deployment's account and partition, asked of STS once per cold start: a warm
    /// function re-checking member events does not ask again for every event.
    identity: OnceLock<(String, String)>,
}

impl Services {
    /// `trigger` names what runs, as alerts say it (`scheduled scan`, `trail-change`).
    pub fn new(sdk: &SdkConfig, config: &Config, trigger: &str) -> Result<Self, ChannelError> {
        Ok(Self {
            inventory: CloudTrailInventory::new(sdk, config.concurrency),
            sink: config
                .security_hub
                .then(|| SecurityHubSink::new(sdk, ApiCallCounter::default())),
            channel: config
                .sns_topic_arn
                .as_deref()
                .map(|topic| SnsChannel::new(sdk, topic, ApiCallCounter::default()))
                .transpose()?,
            ledger: config
                .ledger_table
                .as_deref()
                .map(|table| AlertLedger::new(sdk, table, trigger, ApiCallCounter::default())),
            options: ScanOptions {
                scope: Scope {
                    regions: config.regions.clone(),
                    trail: None,
                },
                max_delivery_age: config.max_delivery_age,
                warnings: config.warnings,
            },
            publish: PublishOptions {
                docs_url: config.docs_url.clone(),
                trigger: trigger.to_string(),
            },
            sdk: sdk.clone(),
            org: config.org.clone(),
            concurrency: config.concurrency,
            identity: OnceLock::new(),
        })
    }

    /// This deployment's account id and partition.
    pub(crate) async fn caller(&self) -> Result<(String, String), OrgError> {
        if let Some(known) = self.identity.get() {
            return Ok(known.clone());
        }
        let found = organization::caller(&self.sdk).await?;
        // Two callers racing here both ask STS and store the same answer; either wins.
        Ok(self.identity.get_or_init(|| found).clone())
    }

    /// What reads and records in the account that `sdk` reaches (a member's read role): its
    /// own inventory and Security Hub sink, configured like this deployment's. Alerts and
    /// claims stay central, in [`Services::channel`] and [`Services::ledger`].
    pub(crate) fn reading(
        &self,
        sdk: &SdkConfig,
    ) -> (CloudTrailInventory, Option<SecurityHubSink>) {
        let sink = self
            .sink
            .is_some()
            .then(|| SecurityHubSink::new(sdk, ApiCallCounter::default()));
        (CloudTrailInventory::new(sdk, self.concurrency), sink)
    }

    /// The STS session name member accounts see in their CloudTrail: `trailwatch-` and what
    /// runs (`trailwatch-scheduled-scan`).
    pub(crate) fn session_name(&self) -> String {
        let what: String = self
            .publish
            .trigger
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("trailwatch-{what}").chars().take(64).collect()
    }

    /// Every account of the organisation, as [`organization::run`] does it; `None` outside
    /// organisation mode.
    pub async fn run_organization(&self) -> Option<Result<Vec<AccountRun>, OrgError>> {
        let org = self.org.as_ref()?;
        Some(Box::pin(organization::run(self, org)).await)
    }

    /// [`recheck`] of a change in a member account: read and record through the member's read
    /// role, alert centrally. Outside organisation mode, or for this deployment's own account,
    /// the same as [`Services::recheck`].
    pub async fn recheck_in_organization(&self, change: &Change) -> Result<Recheck, RecheckError> {
        let Some(org) = &self.org else {
            return self.recheck(change).await;
        };
        let (own_account, partition) =
            self.caller()
                .await
                .map_err(|e| RecheckError::MemberUnreachable {
                    account: change.account.clone(),
                    message: e.to_string(),
                })?;
        if change.account == own_account {
            return self.recheck(change).await;
        }
        let member = organization::configuration_for(
            &self.sdk,
            org,
            &partition,
            &own_account,
            &change.account,
            &self.session_name(),
        )
        .await
        .map_err(|message| RecheckError::MemberUnreachable {
            account: change.account.clone(),
            message,
        })?;
        let (inventory, sink) = self.reading(&member);
        let destinations = Destinations {
            sink: sink.as_ref(),
            channel: self.channel.as_ref(),
            ledger: self.ledger.as_ref(),
        };
        Box::pin(recheck(
            &inventory,
            destinations,
            &self.options,
            &self.publish,
            change,
        ))
        .await
    }

    /// Where this deployment records and alerts.
    pub fn destinations(&self) -> Destinations<'_, SecurityHubSink, SnsChannel> {
        Destinations {
            sink: self.sink.as_ref(),
            channel: self.channel.as_ref(),
            ledger: self.ledger.as_ref(),
        }
    }

    /// [`run`] with these services.
    pub async fn run(&self) -> Result<Outcome, ScanError> {
        Box::pin(run(
            &self.inventory,
            self.destinations(),
            &self.options,
            &self.publish,
        ))
        .await
    }

    /// [`recheck`] with these services.
    pub async fn recheck(&self, change: &Change) -> Result<Recheck, RecheckError> {
        Box::pin(recheck(
            &self.inventory,
            self.destinations(),
            &self.options,
            &self.publish,
            change,
        ))
        .await
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

/// Where a run records findings and alerts; each is optional. Without a sink there is no
/// memory, so every failure counts as new. Without a ledger, two runs that overlap may both
/// alert the same transition (see [`crate::ledger`]).
pub struct Destinations<'a, S, C> {
    pub sink: Option<&'a S>,
    pub channel: Option<&'a C>,
    pub ledger: Option<&'a AlertLedger>,
}

// Derived Clone/Copy would require S: Copy and C: Copy; the fields are references.
impl<S, C> Clone for Destinations<'_, S, C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S, C> Copy for Destinations<'_, S, C> {}

/// Scans, records findings and alerts through `destinations`.
pub async fn run<I, S, C>(
    inventory: &I,
    destinations: Destinations<'_, S, C>,
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
    let vanished = match options.scope.trail {
        None => Vanished::AnyInReadableRegions,
        Some(_) => Vanished::Only(BTreeSet::new()),
    };
    let evaluations = scanned.report.evaluations.clone();
    let publication = Publication {
        evaluations,
        vanished,
        deleted_by_event: None,
        cause: None,
    };
    Ok(Box::pin(publish_evaluations(
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
        "the event is from member account {account}, which trailwatch could not read: {message}"
    )]
    MemberUnreachable { account: String, message: String },
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
pub async fn recheck<I, S, C>(
    inventory: &I,
    destinations: Destinations<'_, S, C>,
    options: &ScanOptions,
    publish: &PublishOptions,
    change: &Change,
) -> Result<Recheck, RecheckError>
where
    I: Inventory,
    S: FindingSink + Sync,
    C: AlertChannel,
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
        (Some(arn), true) => Some(recheck::deletion_without_memory(change, arn)),
        _ => None,
    };
    let publication = Publication {
        vanished: Vanished::Only(focus.vanished()),
        evaluations: focus.evaluations,
        deleted_by_event,
        cause: Some(change.clone()),
    };
    let outcome = Box::pin(publish_evaluations(
        scanned,
        publication,
        destinations,
        publish,
    ))
    .await;
    Ok(Recheck::Published(Box::new(outcome)))
}

/// What to reconcile and publish out of a scan.
struct Publication {
    evaluations: Vec<Evaluation>,
    vanished: Vanished,
    /// A DeleteTrail's alert for when nothing remembers the trail (no state in its region).
    deleted_by_event: Option<Transition>,
    cause: Option<Change>,
}

async fn publish_evaluations<S, C>(
    scanned: Scanned,
    publication: Publication,
    destinations: Destinations<'_, S, C>,
    publish: &PublishOptions,
) -> Outcome
where
    S: FindingSink + Sync,
    C: AlertChannel,
{
    let context = scanned.finding_context(&publish.docs_url, Utc::now());
    let full = &scanned.report;
    // The report covers what was published: everything, or what a change touched.
    let report = ScanReport::new(
        full.scanned_at,
        full.account_id.clone(),
        full.regions.clone(),
        publication.evaluations,
        full.api_calls,
        full.duration_ms,
    );
    let mut failures = Vec::new();

    // Read prior state once per region that may hold a finding: where findings go now, and
    // every readable region (a trail deleted there left its finding behind).
    let mut regions: BTreeSet<String> = report
        .evaluations
        .iter()
        .map(|e| finding::finding_region(e, &context))
        .collect();
    match &publication.vanished {
        Vanished::AnyInReadableRegions => regions.extend(scanned.readable_regions.iter().cloned()),
        Vanished::Only(_) => regions.extend(
            publication
                .deleted_by_event
                .iter()
                .map(|t| t.evaluation.region.clone()),
        ),
    }
    let Destinations {
        sink,
        channel,
        ledger,
    } = destinations;
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
        vanished: publication.vanished,
    };
    let plan = reconcile::plan(&evaluations, &prior, &scope, &context);
    let mut transitions = plan.transitions;
    // Only where nothing is remembered: with state, the archived finding already said it, and
    // a second delivery of the same event must not alert twice.
    transitions.extend(
        publication
            .deleted_by_event
            .filter(|t| prior.unknown.contains(&t.evaluation.region)),
    );

    // What goes to Security Hub; where nothing is remembered, nothing is recorded.
    let mut imports: Vec<Finding> = match sink {
        Some(_) => plan
            .imports
            .into_iter()
            .filter(|f| !prior.unknown.contains(&f.region))
            .collect(),
        None => Vec::new(),
    };
    let alert_context = AlertContext {
        account_id: report.account_id.clone(),
        region: context.home_region.clone(),
        generated_at: context.now,
        trigger: publish.trigger.clone(),
        docs_url: publish.docs_url.clone(),
        cause: publication.cause,
    };
    let sent;
    let recorded;
    match ledger {
        Some(ledger) => {
            let mut claims = Box::pin(claim_all(ledger, &imports, full.scanned_at)).await;
            failures.append(&mut claims.failures);
            imports.retain(|f| !claims.superseded.contains(&f.id));
            transitions.retain(|t| {
                !claims.superseded.contains(&t.finding_id)
                    && !claims.already_claimed.contains(&t.finding_id)
            });
            // With the claims held, the alert goes first. If it fails, the claims go back and
            // the transitions are not recorded, so the retry sees them again and alerts. If an
            // import fails after it, the retry records the finding, and the claim keeps that
            // retry from alerting a second time.
            sent = match Box::pin(send_alert(channel, &transitions, &alert_context)).await {
                Ok(sent) => sent,
                Err(failure) => {
                    failures.push(failure);
                    let unsent: BTreeSet<String> =
                        transitions.iter().map(|t| t.finding_id.clone()).collect();
                    claims.release(ledger, &unsent, &mut failures).await;
                    imports.retain(|f| !unsent.contains(&f.id));
                    None
                }
            };
            recorded = Box::pin(import_all(sink, &imports, &mut failures)).await;
        }
        None => {
            // Without a ledger only what was recorded is alerted: the next run sees an
            // unrecorded transition again, and alerting it now as well would page twice. The
            // price is that an SNS outage after the import loses that alert.
            recorded = Box::pin(import_all(sink, &imports, &mut failures)).await;
            reconcile::drop_unrecorded(&mut transitions, &recorded.unrecorded);
            sent = Box::pin(send_alert(channel, &transitions, &alert_context))
                .await
                .unwrap_or_else(|failure| {
                    failures.push(failure);
                    None
                });
        }
    }
    let Recorded {
        imported, archived, ..
    } = recorded;

    info!(
        imported,
        archived,
        unchanged = plan.unchanged,
        transitions = transitions.len(),
        alerted = sent.is_some(),
        failures = failures.len(),
        "published"
    );
    Outcome {
        report,
        context,
        imported,
        archived,
        unchanged: plan.unchanged,
        transitions,
        alert: sent,
        failures,
    }
}

/// What [`import_all`] got into Security Hub.
#[derive(Default)]
struct Recorded {
    imported: usize,
    archived: usize,
    /// Findings that did not make it, by id.
    unrecorded: BTreeSet<String>,
}

/// Imports `findings` region by region; what fails is in `failures` and `unrecorded`.
async fn import_all<S: FindingSink + Sync>(
    sink: Option<&S>,
    findings: &[Finding],
    failures: &mut Vec<Failure>,
) -> Recorded {
    let mut recorded = Recorded::default();
    let Some(sink) = sink else {
        return recorded;
    };
    let mut by_region: BTreeMap<&str, Vec<Finding>> = BTreeMap::new();
    for f in findings {
        by_region
            .entry(f.region.as_str())
            .or_default()
            .push(f.clone());
    }
    for (region, findings) in by_region {
        let (gone, total) = (
            findings
                .iter()
                .filter(|f| f.record_state == RECORD_ARCHIVED)
                .count(),
            findings.len(),
        );
        match Box::pin(sink.import(region, &findings)).await {
            Ok(()) => {
                recorded.archived += gone;
                recorded.imported += total - gone;
            }
            Err(error) => {
                warn!(region, error = %error, "import failed");
                let lost = error.unrecorded();
                recorded.imported += total.saturating_sub(lost.len());
                recorded.unrecorded.extend(lost);
                failures.push(sink_failure(&error));
            }
        }
    }
    recorded
}

/// Sends one alert for `transitions`, if there is a channel and anything to say. Returns the
/// message and SNS's id, or the failure (retryable: SNS may answer next time).
async fn send_alert<C: AlertChannel>(
    channel: Option<&C>,
    transitions: &[Transition],
    context: &AlertContext,
) -> Result<Option<(AlertMessage, String)>, Failure> {
    let Some(channel) = channel else {
        return Ok(None);
    };
    let Some(message) = alert::render(transitions, context) else {
        return Ok(None);
    };
    match Box::pin(channel.publish(&message)).await {
        Ok(id) => Ok(Some((message, id))),
        Err(error) => Err(Failure {
            kind: FailureKind::Alert,
            region: None,
            message: error.to_string(),
            retryable: true,
        }),
    }
}

/// What the ledger said about one run's imports.
#[derive(Default)]
struct Claims {
    won: BTreeMap<String, Receipt>,
    /// Another run claimed the same state: record, but do not alert again.
    already_claimed: BTreeSet<String>,
    /// Another run observed these later: neither record nor alert.
    superseded: BTreeSet<String>,
    failures: Vec<Failure>,
}

fn ledger_failure(error: &LedgerError) -> Failure {
    Failure {
        kind: FailureKind::Ledger,
        region: None,
        message: error.to_string(),
        // A retry could not help: the run went on without the ledger, so nothing is lost.
        retryable: false,
    }
}

/// Claims every finding about to be imported, a few at a time. A claim that fails counts as
/// won without a receipt: the run records and alerts as it would with no ledger.
async fn claim_all(
    ledger: &AlertLedger,
    imports: &[Finding],
    observed_at: DateTime<Utc>,
) -> Claims {
    // Owned pairs, not `&Finding`s: a stream of borrowed items makes the run's future
    // unusable in `tokio::spawn` (a higher-ranked lifetime the compiler cannot prove).
    let wanted: Vec<(String, String)> = imports
        .iter()
        .map(|f| (f.id.clone(), f.alert_state()))
        .collect();
    let answers: Vec<(String, Result<Claim, LedgerError>)> = stream::iter(wanted)
        .map(|(id, state)| async move {
            let claim = ledger.claim(&id, &state, observed_at).await;
            (id, claim)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut claims = Claims::default();
    for (id, answer) in answers {
        match answer {
            Ok(Claim::Won(receipt)) => {
                claims.won.insert(id, receipt);
            }
            Ok(Claim::AlreadyClaimed) => {
                claims.already_claimed.insert(id);
            }
            Ok(Claim::Superseded) => {
                claims.superseded.insert(id);
            }
            Err(error) => {
                warn!(error = %error, "alert ledger unavailable; going on without it");
                claims.failures.push(ledger_failure(&error));
            }
        }
    }
    if !claims.already_claimed.is_empty() || !claims.superseded.is_empty() {
        info!(
            already_claimed = ?claims.already_claimed,
            superseded = ?claims.superseded,
            "another run holds these findings"
        );
    }
    claims
}

impl Claims {
    /// Gives back the won claims of `ids`, so that a later run records and alerts them.
    async fn release(
        &mut self,
        ledger: &AlertLedger,
        ids: &BTreeSet<String>,
        failures: &mut Vec<Failure>,
    ) {
        for id in ids {
            let Some(receipt) = self.won.remove(id) else {
                continue;
            };
            if let Err(error) = ledger.release(&receipt).await {
                warn!(error = %error, "claim not given back: the next run will not alert this transition");
                failures.push(ledger_failure(&error));
            }
        }
    }
}
