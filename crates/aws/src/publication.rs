//! The publication pipeline: from a scan's evaluations to findings recorded in Security Hub and
//! one page through SNS. Its stages run in this order, each a function below:
//!
//! 1. [`recall_findings`]: what Security Hub holds, read once per region that may hold one.
//! 2. [`reconcile::plan`] (pure): which findings to import, and every candidate for a page.
//! 3. [`decide_and_claim`]: with the alert ledger, each candidate is decided against the ledger
//!    (`trailwatch_core::memory::decide`) and written to it with a compare-and-set: a claim
//!    with a lease for a page, a quiet record otherwise. Without the ledger, against Security
//!    Hub alone.
//! 4. [`send_alert`]: one SNS message for everything to page.
//! 5. [`settle`]: claims whose page SNS accepted are confirmed; the rest are released, so that
//!    the next run pages them.
//! 6. [`import_all`]: the findings go to Security Hub.
//!
//! With the ledger the page goes out before the import, so an import that fails cannot lose a
//! page, and the ledger keeps the retry from repeating it. Without the ledger the import goes
//! first and only what was recorded is paged: the next run would otherwise see an unrecorded
//! transition again and page twice. When the ledger cannot be read or written, the run pages
//! rather than stays silent: a duplicate page is better than a lost one.

use crate::ledger::{Held, Ledger, LedgerError, Settle, Write};
use crate::scan::Scanned;
use crate::security_hub::{FindingSink, SinkError};
use crate::sns::AlertChannel;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tracing::{info, warn};
use trailwatch_core::alert::{self, AlertContext, AlertMessage};
use trailwatch_core::event::Change;
use trailwatch_core::finding::{self, Finding, FindingContext, RECORD_ARCHIVED};
use trailwatch_core::memory::{Decision, LedgerEntry, Observation};
use trailwatch_core::metrics::RunMetrics;
use trailwatch_core::reconcile::{
    self, Candidate, PriorFindings, Transition, Vanished, WorkflowUpdate,
};
use trailwatch_core::{Evaluation, EvaluationKind, ScanReport, Status};

/// Requests to Security Hub or the ledger in flight at once within one publication.
const IN_FLIGHT: usize = 8;
/// Compare-and-set attempts on one ledger item before the run gives up and pages anyway.
const CLAIM_ATTEMPTS: usize = 3;

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
    /// Security Hub refused trailwatch's read (`securityhub:GetFindings` denied): a setup
    /// problem, reported with its fix; the run goes on without that memory.
    SecurityHubDenied,
    SecurityHub,
    Alert,
    /// The alert ledger (DynamoDB) could not be read or written. The run pages rather than
    /// stays silent: a duplicate page is better than a lost one.
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
    /// Findings whose workflow was set with `BatchUpdateFindings`: suppressed for an
    /// exemption, or released when it ended.
    pub workflow_updated: usize,
    /// What was paged (or would have been, had SNS answered).
    pub transitions: Vec<Transition>,
    /// The alert sent, with SNS's message id.
    pub alert: Option<(AlertMessage, String)>,
    /// Findings another run held a live claim on: that run pages them, or, if it died, the
    /// next run after its lease.
    pub deferred: Vec<String>,
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
    pub deferred: usize,
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
            deferred: self.deferred.len(),
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

/// Where a run records findings and pages; each is optional. Without a sink and without a
/// ledger there is no memory, so every failure counts as new. Without a ledger, two runs that
/// overlap may both page the same transition (see [`crate::ledger`]).
pub struct Destinations<'a, S, C, L> {
    pub sink: Option<&'a S>,
    pub channel: Option<&'a C>,
    pub ledger: Option<&'a L>,
}

// Derived Clone/Copy would require the adapters to be Copy; the fields are references.
impl<S, C, L> Clone for Destinations<'_, S, C, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S, C, L> Copy for Destinations<'_, S, C, L> {}

/// What to reconcile and publish out of a scan.
pub struct Publication {
    pub evaluations: Vec<Evaluation>,
    pub vanished: Vanished,
    /// A DeleteTrail's page, for when Security Hub does not remember the trail.
    pub deleted_by_event: Option<Candidate>,
    /// Pages that come from the event itself and are never recorded in Security Hub (a change
    /// to the monitor).
    pub event_pages: Vec<Candidate>,
    pub cause: Option<Change>,
}

impl Publication {
    /// Everything a scan evaluated, as the scheduled scan publishes it.
    pub fn of_scan(scanned: &Scanned, full: bool) -> Self {
        Publication {
            evaluations: scanned.report.evaluations.clone(),
            vanished: match full {
                true => Vanished::AnyInReadableRegions,
                false => Vanished::Only(BTreeSet::new()),
            },
            deleted_by_event: None,
            event_pages: Vec::new(),
            cause: None,
        }
    }
}

/// Runs every stage for `publication`, out of `scanned`.
pub async fn publish<S, C, L>(
    scanned: Scanned,
    publication: Publication,
    destinations: Destinations<'_, S, C, L>,
    options: &PublishOptions,
) -> Outcome
where
    S: FindingSink + Sync,
    C: AlertChannel,
    L: Ledger + Sync,
{
    let context = scanned.finding_context(&options.docs_url, Utc::now());
    let full = &scanned.report;
    // The report covers what was published: everything, or what a change touched.
    let mut report = ScanReport::new(
        full.scanned_at,
        full.account_id.clone(),
        full.regions.clone(),
        publication.evaluations,
        full.api_calls,
        full.duration_ms,
    );
    report.coverage = full.coverage.clone();
    let mut failures = Vec::new();
    let Destinations {
        sink,
        channel,
        ledger,
    } = destinations;

    // 1. Recall: prior state once per region that may hold a finding: where findings go now,
    // and every readable region (a trail deleted there left its finding behind).
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
                .map(|c| c.evaluation.region.clone()),
        ),
    }
    let recalled = Box::pin(recall_findings(
        sink,
        &report.account_id,
        &scanned.partition,
        &regions,
    ))
    .await;
    failures.extend(recalled.failures);
    let prior = recalled.prior;

    // A region whose state could not be read (an outage) is not recorded in this run: its
    // prior findings, CreatedAt among them, are unknown. Without the ledger it is not paged
    // either, since nothing could say what changed there; the ledger remembers pages itself.
    let blocked = recalled.blocked;
    let evaluations: Vec<Evaluation> = report
        .evaluations
        .iter()
        .filter(|e| ledger.is_some() || !blocked.contains(&finding::finding_region(e, &context)))
        .cloned()
        .collect();

    // 2. Plan.
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
    let mut candidates = plan.candidates;
    // A DeleteTrail's own page: always with the ledger (which pages it once), and without it
    // only where nothing is remembered (with state, the archived finding already says it).
    if let Some(deleted) = publication.deleted_by_event {
        let remembered = prior.unknown.contains(&deleted.evaluation.region);
        let known = candidates
            .iter()
            .any(|c| c.finding_id == deleted.finding_id);
        if !known && (ledger.is_some() || remembered) {
            candidates.push(deleted);
        }
    }
    candidates.extend(publication.event_pages);
    let recordable =
        |region: &str| !recalled.not_enabled.contains(region) && !blocked.contains(region);
    let mut imports: Vec<Finding> = match sink {
        Some(_) => plan
            .imports
            .into_iter()
            .filter(|f| recordable(&f.region))
            .collect(),
        None => Vec::new(),
    };
    let workflow_updates: Vec<WorkflowUpdate> = plan
        .workflow_updates
        .into_iter()
        .filter(|u| recordable(&u.region))
        .collect();
    let alert_context = AlertContext {
        account_id: report.account_id.clone(),
        region: context.home_region.clone(),
        generated_at: context.now,
        trigger: options.trigger.clone(),
        docs_url: options.docs_url.clone(),
        cause: publication.cause,
    };

    // 3 to 6, with the ledger or without it.
    let importing: BTreeSet<String> = imports.iter().map(|f| f.id.clone()).collect();
    let claimed = match ledger {
        Some(ledger) => {
            let claimed = Box::pin(decide_and_claim(
                ledger,
                &candidates,
                &importing,
                full.scanned_at,
                &options.trigger,
            ))
            .await;
            match claimed {
                Ok(claimed) => Some((ledger, claimed)),
                Err(error) => {
                    warn!(error = %error, "alert ledger unreadable; deciding against Security Hub alone");
                    failures.push(ledger_failure(&error));
                    None
                }
            }
        }
        None => None,
    };
    let (transitions, sent, recorded, deferred) = match claimed {
        Some((ledger, mut claims)) => {
            failures.append(&mut claims.failures);
            imports.retain(|f| !claims.hold_back.contains(&f.id));
            let transitions: Vec<Transition> =
                claims.pages.iter().map(|(t, _)| t.clone()).collect();
            let sent = match Box::pin(send_alert(channel, &transitions, &alert_context)).await {
                Ok(sent) => {
                    Box::pin(settle(ledger, &claims.pages, true, &mut failures)).await;
                    sent
                }
                Err(failure) => {
                    failures.push(failure);
                    Box::pin(settle(ledger, &claims.pages, false, &mut failures)).await;
                    None
                }
            };
            let recorded = Box::pin(import_all(sink, &imports, &mut failures)).await;
            (transitions, sent, recorded, claims.deferred)
        }
        None => {
            let mut transitions: Vec<Transition> = candidates
                .iter()
                .filter_map(Candidate::hub_transition)
                .collect();
            let recorded = Box::pin(import_all(sink, &imports, &mut failures)).await;
            reconcile::drop_unrecorded(&mut transitions, &recorded.unrecorded);
            let sent = Box::pin(send_alert(channel, &transitions, &alert_context))
                .await
                .unwrap_or_else(|failure| {
                    failures.push(failure);
                    None
                });
            (transitions, sent, recorded, Vec::new())
        }
    };
    let workflow_updated = Box::pin(update_workflows(sink, &workflow_updates, &mut failures)).await;

    info!(
        imported = recorded.imported,
        archived = recorded.archived,
        unchanged = plan.unchanged,
        workflow_updated,
        transitions = transitions.len(),
        deferred = deferred.len(),
        alerted = sent.is_some(),
        failures = failures.len(),
        "published"
    );
    Outcome {
        report,
        context,
        imported: recorded.imported,
        archived: recorded.archived,
        unchanged: plan.unchanged,
        workflow_updated,
        transitions,
        alert: sent,
        deferred,
        failures,
    }
}

/// What [`recall_findings`] learnt of Security Hub.
struct Recalled {
    prior: PriorFindings,
    /// Regions where Security Hub is off: nothing is recorded there.
    not_enabled: BTreeSet<String>,
    /// Regions Security Hub could not answer for (an outage): left for the next run.
    blocked: BTreeSet<String>,
    failures: Vec<Failure>,
}

/// Stage 1: trailwatch's active findings in each of `regions`.
async fn recall_findings<S: FindingSink + Sync>(
    sink: Option<&S>,
    account: &str,
    partition: &str,
    regions: &BTreeSet<String>,
) -> Recalled {
    let mut recalled = Recalled {
        prior: PriorFindings::default(),
        not_enabled: BTreeSet::new(),
        blocked: BTreeSet::new(),
        failures: Vec::new(),
    };
    let Some(sink) = sink else {
        recalled.prior.unknown = regions.clone();
        return recalled;
    };
    let results: Vec<(String, Result<_, SinkError>)> = stream::iter(regions.iter().cloned())
        .map(|region: String| async move {
            let found = Box::pin(sink.prior(account, partition, &region)).await;
            (region, found)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (region, result) in results {
        match result {
            Ok(found) => {
                recalled.prior.by_region.insert(region, found);
            }
            Err(error) => {
                warn!(region = %region, error = %error, "prior findings unavailable");
                recalled.failures.push(sink_failure(&error));
                match &error {
                    SinkError::NotEnabled { .. } => {
                        recalled.not_enabled.insert(region.clone());
                        recalled.prior.unknown.insert(region);
                    }
                    SinkError::Denied { .. } => {
                        recalled.prior.unknown.insert(region);
                    }
                    _ => {
                        recalled.blocked.insert(region);
                    }
                }
            }
        }
    }
    recalled
}

/// What stage 3 decided with the ledger.
#[derive(Default)]
struct Claims {
    /// What to page, each with the claim that holds it (`None`: paged without a claim,
    /// because the ledger could not be written).
    pages: Vec<(Transition, Option<(String, Held)>)>,
    /// Findings another run observed later, or holds a live claim on: neither recorded nor
    /// paged here.
    hold_back: BTreeSet<String>,
    deferred: Vec<String>,
    failures: Vec<Failure>,
}

/// What one candidate came to.
enum Claimed {
    Page(Box<Transition>, Option<Held>),
    HoldBack { deferred: bool },
    Done,
}

/// Stage 3 with the ledger: recalls every candidate's item, then decides each one and writes
/// the decision with a compare-and-set, a few at a time. Fails only when the ledger cannot be
/// read at all; then the caller decides against Security Hub alone.
async fn decide_and_claim<L: Ledger + Sync>(
    ledger: &L,
    candidates: &[Candidate],
    importing: &BTreeSet<String>,
    observed_at: DateTime<Utc>,
    trigger: &str,
) -> Result<Claims, LedgerError> {
    let ids: Vec<String> = candidates.iter().map(|c| c.finding_id.clone()).collect();
    let entries = Box::pin(ledger.recall(&ids)).await?;
    let owner = run_id(trigger);
    let (entries, owner) = (&entries, owner.as_str());
    // Owned candidates, not borrowed ones: a stream of borrowed items makes the run's future
    // unusable in `tokio::spawn` (a higher-ranked lifetime the compiler cannot prove).
    let outcomes: Vec<(String, (Claimed, Option<LedgerError>))> = stream::iter(candidates.to_vec())
        .map(|candidate| async move {
            let id = candidate.finding_id.clone();
            let will_import = importing.contains(&id);
            let entry = entries.get(&id).cloned();
            let claimed =
                claim_one(ledger, &candidate, entry, will_import, observed_at, owner).await;
            (id, claimed)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut claims = Claims::default();
    for (id, (claimed, failure)) in outcomes {
        if let Some(error) = failure {
            warn!(finding = %id, error = %error, "alert ledger write failed; paging regardless");
            claims.failures.push(ledger_failure(&error));
        }
        match claimed {
            Claimed::Page(transition, held) => {
                claims.pages.push((*transition, held.map(|h| (id, h))))
            }
            Claimed::HoldBack { deferred } => {
                if deferred {
                    claims.deferred.push(id.clone());
                }
                claims.hold_back.insert(id);
            }
            Claimed::Done => {}
        }
    }
    claims
        .pages
        .sort_by(|a, b| a.0.finding_id.cmp(&b.0.finding_id));
    claims.deferred.sort();
    if !claims.hold_back.is_empty() {
        info!(held_back = ?claims.hold_back, deferred = ?claims.deferred, "other runs hold these findings");
    }
    Ok(claims)
}

/// Decides one candidate against its ledger item and writes the decision; a conflicting write
/// by another run means deciding again against the item as that run left it. A write that
/// fails for any other reason is returned beside the outcome, and what was to be paged is
/// still paged.
async fn claim_one<L: Ledger>(
    ledger: &L,
    candidate: &Candidate,
    mut entry: Option<LedgerEntry>,
    will_import: bool,
    observed_at: DateTime<Utc>,
    owner: &str,
) -> (Claimed, Option<LedgerError>) {
    let id = candidate.finding_id.as_str();
    let observation = Observation {
        state: candidate.state.clone(),
        observed_at,
    };
    let mut last = None;
    for _ in 0..CLAIM_ATTEMPTS {
        let now = Utc::now();
        let base = entry.as_ref().map(|e| e.version);
        let decision = candidate.decide(entry.as_ref(), observed_at, now);
        let written = match &decision {
            Decision::Superseded => return (Claimed::HoldBack { deferred: false }, None),
            Decision::InFlight { .. } => return (Claimed::HoldBack { deferred: true }, None),
            Decision::Keep if !will_import => return (Claimed::Done, None),
            // Recording, even the same state, goes through the ledger first, so that an
            // older view that reaches Security Hub late finds itself superseded.
            Decision::Keep | Decision::Record => ledger.record(id, base, &observation).await,
            Decision::Page(_) => {
                ledger
                    .claim(id, base, &observation, owner, now + ledger.lease())
                    .await
            }
        };
        match written {
            Ok(Write::Done { version }) => {
                let claimed = match paged(candidate, entry.as_ref(), decision) {
                    Some(transition) => {
                        let held = Held {
                            version,
                            owner: owner.to_string(),
                            observation,
                        };
                        Claimed::Page(Box::new(transition), Some(held))
                    }
                    None => Claimed::Done,
                };
                return (claimed, None);
            }
            Ok(Write::Conflict(current)) => {
                last = Some(decision);
                entry = current;
            }
            Err(error) => {
                let claimed = match paged(candidate, entry.as_ref(), decision) {
                    Some(transition) => Claimed::Page(Box::new(transition), None),
                    None => Claimed::Done,
                };
                return (claimed, Some(error));
            }
        }
    }
    // Others kept writing this item: page without a claim if the last decision was a page.
    warn!(
        finding = id,
        "ledger item kept changing; deciding without a claim"
    );
    match last.and_then(|decision| paged(candidate, entry.as_ref(), decision)) {
        Some(transition) => (Claimed::Page(Box::new(transition), None), None),
        None => (Claimed::Done, None),
    }
}

/// The transition a decision pages, described against what the ledger (else Security Hub)
/// remembered.
fn paged(
    candidate: &Candidate,
    entry: Option<&LedgerEntry>,
    decision: Decision,
) -> Option<Transition> {
    let Decision::Page(shift) = decision else {
        return None;
    };
    let prior = entry
        .and_then(|e| e.confirmed.as_ref())
        .map(|c| &c.state)
        .or_else(|| candidate.hub.as_ref().map(|h| &h.state));
    Some(Transition::new(candidate, shift, prior))
}

/// Who claims, unique per run: what runs, the process and the moment it claimed.
fn run_id(trigger: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{trigger}/{}/{nanos}", std::process::id())
}

/// Stage 5: confirms (SNS accepted) or releases (it did not) every claim this run holds.
async fn settle<L: Ledger>(
    ledger: &L,
    pages: &[(Transition, Option<(String, Held)>)],
    accepted: bool,
    failures: &mut Vec<Failure>,
) {
    for (id, held) in pages.iter().filter_map(|(_, claim)| claim.as_ref()) {
        let settled = match accepted {
            true => ledger.confirm(id, held).await,
            false => ledger.release(id, held).await,
        };
        match settled {
            Ok(Settle::Done) => {}
            Ok(Settle::TakenOver) => {
                info!(finding = %id, "claim taken over by a later run; its write stands")
            }
            Err(error) => {
                // A claim left behind holds only until its lease runs out; then the next run
                // takes it over and pages (again, if this one's page went out).
                warn!(finding = %id, error = %error, "claim not settled; it lapses with its lease");
                failures.push(ledger_failure(&error));
            }
        }
    }
}

fn ledger_failure(error: &LedgerError) -> Failure {
    Failure {
        kind: FailureKind::Ledger,
        region: None,
        message: error.to_string(),
        // The run paged rather than stayed silent, so a retry has nothing to add; the Errors
        // metric and its alarm say the ledger needs a look.
        retryable: false,
    }
}

pub(crate) fn sink_failure(error: &SinkError) -> Failure {
    let region = match error {
        SinkError::NotEnabled { region, .. }
        | SinkError::Denied { region, .. }
        | SinkError::Read { region, .. }
        | SinkError::Import { region, .. }
        | SinkError::Update { region, .. }
        | SinkError::NotUpdated { region, .. }
        | SinkError::Rejected { region, .. } => region.clone(),
    };
    Failure {
        kind: match error {
            SinkError::NotEnabled { .. } => FailureKind::SecurityHubNotEnabled,
            SinkError::Denied { .. } => FailureKind::SecurityHubDenied,
            _ => FailureKind::SecurityHub,
        },
        region: Some(region),
        message: error.to_string(),
        retryable: error.is_retryable(),
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

/// `items` grouped by the region each is recorded in, as Security Hub takes them.
fn by_region<'a, T: Clone>(
    items: &'a [T],
    region: impl Fn(&'a T) -> &'a str,
) -> BTreeMap<&'a str, Vec<T>> {
    let mut grouped: BTreeMap<&'a str, Vec<T>> = BTreeMap::new();
    for item in items {
        grouped.entry(region(item)).or_default().push(item.clone());
    }
    grouped
}

/// Stage 6: imports `findings` region by region; what fails is in `failures` and `unrecorded`.
async fn import_all<S: FindingSink + Sync>(
    sink: Option<&S>,
    findings: &[Finding],
    failures: &mut Vec<Failure>,
) -> Recorded {
    let mut recorded = Recorded::default();
    let Some(sink) = sink else {
        return recorded;
    };
    for (region, findings) in by_region(findings, |f| &f.region) {
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

/// Stage 6, after the imports: the workflow changes only `BatchUpdateFindings` can make, per
/// region. A failure loses no page (an exempt trail pages nobody either way) and is reported.
async fn update_workflows<S: FindingSink + Sync>(
    sink: Option<&S>,
    updates: &[WorkflowUpdate],
    failures: &mut Vec<Failure>,
) -> usize {
    let Some(sink) = sink else {
        return 0;
    };
    let mut updated = 0;
    for (region, updates) in by_region(updates, |u| &u.region) {
        match Box::pin(sink.update_workflow(region, &updates)).await {
            Ok(()) => updated += updates.len(),
            Err(error) => {
                warn!(region, error = %error, "workflow update failed");
                failures.push(sink_failure(&error));
            }
        }
    }
    updated
}

/// Stage 4: one alert for `transitions`, if there is a channel and anything to say. Returns the
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
