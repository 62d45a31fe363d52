//! Reconciliation against prior state: which findings to import into Security Hub, which to
//! archive, and which findings this run may page about.
//!
//! Only changes are imported (status, reason keys or severity), plus findings whose last update
//! is older than the refresh interval, which keeps them alive in Security Hub and ingestion
//! cost down. Whether a finding is paged is [`crate::memory`]'s to decide, against the alert
//! ledger or, without one, against what Security Hub held: each evaluated finding, and each
//! trail gone since the last run, becomes a [`Candidate`] for that decision.

use crate::evaluate::{Evaluation, EvaluationKind};
use crate::finding::{
    self, compliance_status, format_time, Finding, FindingContext, Note, FIELD_KIND,
    FIELD_RESOURCE, RECORD_ACTIVE, RECORD_ARCHIVED, WORKFLOW_NEW, WORKFLOW_SUPPRESSED,
};
pub use crate::memory::TransitionKind;
use crate::memory::{self, transition, Decision, HubMemory, LedgerEntry, Remembered, Shift};
use crate::reason::{ReasonCode, Severity};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Findings older than this are re-imported even when nothing changed (Security Hub archives
/// findings from integrations that stop updating them).
pub const REFRESH_AFTER_HOURS: i64 = 24;

/// One change worth telling a person about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub kind: TransitionKind,
    pub finding_id: String,
    /// The compliance status remembered before (`FAILED`, `PASSED`, …), if any.
    pub previous: Option<String>,
    /// Reason codes that appeared and disappeared since then. A code that stayed but names
    /// another occurrence (a second stop of logging) counts as appeared; the evaluation's
    /// reasons say which occurrence.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The evaluation now; for a deleted trail, one rebuilt from its last finding.
    pub evaluation: Evaluation,
}

impl Transition {
    /// The transition of `candidate` that `shift` describes, against a memory of `prior`.
    pub fn new(candidate: &Candidate, shift: Shift, prior: Option<&Remembered>) -> Self {
        // A page about the monitor itself says so, whatever turn its memory took.
        let kind = match candidate.evaluation.kind {
            EvaluationKind::Monitor => TransitionKind::MonitorTampered,
            _ => shift.kind,
        };
        Transition {
            kind,
            finding_id: candidate.finding_id.clone(),
            previous: prior.map(|p| match p.status() {
                Some(status) => compliance_status(status).to_string(),
                None => crate::memory::ARCHIVED.to_string(),
            }),
            added: codes_of(&shift.added),
            removed: codes_of(&shift.removed),
            evaluation: candidate.evaluation.clone(),
        }
    }

    pub fn severity(&self) -> Severity {
        match self.kind {
            TransitionKind::Deleted | TransitionKind::MonitorTampered => Severity::High,
            _ => self.evaluation.severity,
        }
    }
}

/// The reason codes that `keys` name, in order, each once.
fn codes_of(keys: &[String]) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for key in keys {
        let code = key.split('@').next().unwrap_or(key).to_string();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// What Security Hub held before this run, per region. A region in `unknown` has no state
/// (Security Hub off, not enabled there, or not readable): nothing there is remembered.
#[derive(Debug, Clone, Default)]
pub struct PriorFindings {
    pub by_region: BTreeMap<String, Vec<Finding>>,
    pub unknown: BTreeSet<String>,
}

/// A finding this run may page about: what it is now, and what Security Hub held.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub finding_id: String,
    /// The evaluation an alert shows; for a deleted trail, rebuilt from its last finding.
    pub evaluation: Evaluation,
    pub state: Remembered,
    /// Security Hub's active finding, unless its region is unknown.
    pub hub: Option<HubMemory>,
    /// Security Hub never records this candidate (a page about the monitor itself).
    pub unrecorded: bool,
    /// The reason keys of the finding when a person suppressed it in Security Hub: it is
    /// not paged again while it has no reason beyond these.
    pub suppressed: Option<Vec<String>>,
}

impl Candidate {
    /// A candidate for `evaluation` as it is now, with what Security Hub held of it.
    pub fn of(evaluation: &Evaluation, hub: Option<HubMemory>) -> Self {
        Candidate {
            finding_id: finding::finding_id(evaluation),
            evaluation: evaluation.clone(),
            state: Remembered::of(evaluation),
            hub,
            unrecorded: false,
            suppressed: None,
        }
    }

    /// Whether Security Hub alone says this candidate is worth a page, and why.
    pub fn hub_transition(&self) -> Option<Transition> {
        let prior = self.hub.as_ref().map(|h| &h.state);
        // Security Hub is the only memory here: what it holds is what the person saw.
        transition(prior, &self.state)
            .filter(|shift| !self.held_by_suppression(shift, None))
            .map(|shift| Transition::new(self, shift, prior))
    }

    /// Decides this candidate against its ledger item (see [`memory::decide`]). A page that a
    /// person's suppression holds back is recorded quietly instead, so that the ledger still
    /// knows the state and a later new reason is told apart; but only against a state the
    /// ledger confirmed, and never under another run's live claim: Security Hub alone may add
    /// a page, never remove one.
    pub fn decide(
        &self,
        entry: Option<&LedgerEntry>,
        observed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Decision {
        let confirmed = entry
            .filter(|e| e.live_claim(now).is_none())
            .and_then(|e| e.confirmed.as_ref())
            .map(|c| &c.state);
        match memory::decide(entry, self.hub.as_ref(), &self.state, observed_at, now) {
            Decision::Page(shift)
                if confirmed.is_some_and(|c| self.held_by_suppression(&shift, Some(c))) =>
            {
                Decision::Record
            }
            decision => decision,
        }
    }

    /// A person suppressed this finding and it has no reason they did not see: no page. What
    /// they saw is what Security Hub holds and, with the ledger, also what the ledger last
    /// confirmed (an import can run ahead of a page that SNS refused). Losing sight of the
    /// trail, regaining it and its deletion still page: none is a reason they decided on.
    pub fn held_by_suppression(&self, shift: &Shift, confirmed: Option<&Remembered>) -> bool {
        let Some(suppressed) = &self.suppressed else {
            return false;
        };
        if matches!(
            shift.kind,
            TransitionKind::Deleted | TransitionKind::LostSight | TransitionKind::Regained
        ) {
            return false;
        }
        let ids = |keys: &[String]| -> BTreeSet<String> {
            keys.iter().map(|k| memory::identity(k)).collect()
        };
        let mut seen = ids(suppressed);
        if let Some(confirmed) = confirmed {
            let known = ids(confirmed.keys());
            seen.retain(|id| known.contains(id));
        }
        self.state
            .keys()
            .iter()
            .all(|key| seen.contains(&memory::identity(key)))
    }
}

/// A change of a finding's workflow that only `BatchUpdateFindings` can make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowUpdate {
    pub finding_id: String,
    pub product_arn: String,
    /// Where the finding lives, and so where to call.
    pub region: String,
    /// `SUPPRESSED` for an exemption, `NEW` when trailwatch lifts its own suppression.
    pub status: String,
    pub note: Note,
}

/// What this run must do.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// New and changed findings, stale refreshes and archives, each with its target region.
    pub imports: Vec<Finding>,
    /// Every evaluated finding, and every trail gone since the last run.
    pub candidates: Vec<Candidate>,
    /// Findings left alone because nothing changed.
    pub unchanged: usize,
    /// Existing findings to suppress for an exemption, or to lift trailwatch's suppression of.
    pub workflow_updates: Vec<WorkflowUpdate>,
}

/// Which trails missing from the evaluations may be called deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vanished {
    /// A full scan looked at everything: any trail missing from a readable region is gone.
    AnyInReadableRegions,
    /// A re-check looked at these trails only (by ARN), and must never archive what it did
    /// not look at. Empty for a one-trail `check`.
    Only(BTreeSet<String>),
}

/// The scope of the evaluations handed to [`plan`].
#[derive(Debug, Clone)]
pub struct Scope {
    /// Regions whose trails were listed; only there can a missing trail be called deleted.
    pub readable_regions: BTreeSet<String>,
    pub vanished: Vanished,
}

fn changed(prior: &Finding, new: &Finding) -> bool {
    prior.compliance_status() != new.compliance_status()
        || prior.reason_codes() != new.reason_codes()
        || prior.reason_keys() != new.reason_keys()
        || prior.severity.label != new.severity.label
        || prior.recorded_while_exempt() != new.recorded_while_exempt()
}

/// Rebuilds what is needed to alert on a trail that is gone, from its last finding.
fn evaluation_of_deleted(prior: &Finding) -> Evaluation {
    let resource = prior.resources.first();
    let trail_details = resource
        .and_then(|r| r.details.as_ref())
        .and_then(|d| d.aws_cloud_trail_trail.as_ref());
    let resource_id = prior
        .product_fields
        .get(FIELD_RESOURCE)
        .cloned()
        .or_else(|| resource.map(|r| r.id.clone()))
        .unwrap_or_default();
    let name = trail_details
        .and_then(|t| t.name.clone())
        .or_else(|| resource_id.rsplit('/').next().map(str::to_string))
        .unwrap_or_default();
    Evaluation::deleted_trail(
        resource_id,
        prior.aws_account_id.clone(),
        crate::evaluate::TrailSummary {
            name,
            home_region: resource.map(|r| r.region.clone()).unwrap_or_default(),
            is_multi_region: trail_details
                .and_then(|t| t.is_multi_region_trail)
                .unwrap_or(false),
            is_organization_trail: trail_details
                .and_then(|t| t.is_organization_trail)
                .unwrap_or(false),
            log_group_arn: trail_details.and_then(|t| t.cloud_watch_logs_log_group_arn.clone()),
            role_arn: trail_details.and_then(|t| t.cloud_watch_logs_role_arn.clone()),
            is_logging: None,
            log_file_validation_enabled: trail_details
                .and_then(|t| t.log_file_validation_enabled)
                .unwrap_or(false),
            s3_bucket_name: trail_details.and_then(|t| t.s3_bucket_name.clone()),
        },
    )
}

/// Decides imports and paging candidates for `evaluations` against `prior`.
pub fn plan(
    evaluations: &[Evaluation],
    prior: &PriorFindings,
    scope: &Scope,
    context: &FindingContext,
) -> Plan {
    let mut result = Plan::default();
    let known: BTreeMap<&str, &Finding> = prior
        .by_region
        .values()
        .flatten()
        .filter(|f| f.record_state == RECORD_ACTIVE)
        .map(|f| (f.id.as_str(), f))
        .collect();
    let refresh_after = Duration::hours(REFRESH_AFTER_HOURS);

    for evaluation in evaluations {
        let mut new = finding::render(evaluation, context);
        let previous = match prior.unknown.contains(&new.region) {
            true => None,
            false => known.get(new.id.as_str()).copied(),
        };
        // An exempt trail is never paged, nor remembered as paged: when the exemption ends,
        // its state is news again.
        if !evaluation.is_exempt() {
            // A finding written while the trail was exempt was recorded, never paged: once the
            // exemption is gone (or its tag cannot be read), its state is news again, as if
            // first seen. Nor does it say what a person who suppressed it saw: its reasons may
            // have come during the exemption, so their suppression holds nothing back.
            let paged_before = previous.filter(|p| !p.recorded_while_exempt());
            let mut candidate =
                Candidate::of(evaluation, paged_before.and_then(Finding::hub_memory));
            candidate.suppressed = paged_before
                .filter(|p| p.suppressed_by_person())
                .map(Finding::reason_keys);
            result.candidates.push(candidate);
        }
        let Some(previous) = previous else {
            result.imports.push(new);
            continue;
        };
        // An import of an existing finding cannot change its workflow or note ("BatchImportFindings
        // for finding providers", Security Hub User Guide: those are the customer's, changed with
        // BatchUpdateFindings). So the import carries what the finding has, and the update, sent
        // after the imports, makes the change: if it fails, the next run still sees the old
        // workflow and tries again, on AWS and on moto alike.
        new.workflow = previous.workflow.clone();
        new.note = previous.note.clone();
        if let Some(update) = workflow_update(evaluation, previous, context) {
            result.workflow_updates.push(update);
        }
        let stale = previous
            .updated()
            .is_none_or(|updated| context.now - updated >= refresh_after);
        if changed(previous, &new) || stale {
            new.created_at = previous.created_at.clone();
            new.updated_at = later_than(previous, context);
            result.imports.push(new);
        } else {
            result.unchanged += 1;
        }
    }

    // Findings no evaluation produced: a trail deleted since the last run, or a region readable
    // again. Only a run that looked can say so.
    let full = scope.vanished == Vanished::AnyInReadableRegions;
    let evaluated: BTreeSet<String> = evaluations.iter().map(finding::finding_id).collect();
    for previous in known.values() {
        if evaluated.contains(&previous.id) {
            continue;
        }
        let kind = previous.product_fields.get(FIELD_KIND).map(String::as_str);
        let resource_region = previous.resources.first().map(|r| r.region.as_str());
        let region_seen = resource_region.is_some_and(|r| scope.readable_regions.contains(r));
        let resource = previous.product_fields.get(FIELD_RESOURCE);
        let in_scope = match &scope.vanished {
            Vanished::AnyInReadableRegions => true,
            Vanished::Only(arns) => resource.is_some_and(|r| arns.contains(r)),
        };
        match kind {
            Some("trail") if region_seen && in_scope => {
                result.candidates.push(Candidate {
                    finding_id: previous.id.clone(),
                    evaluation: evaluation_of_deleted(previous),
                    state: Remembered::Archived,
                    hub: previous.hub_memory(),
                    unrecorded: false,
                    suppressed: previous
                        .suppressed_by_person()
                        .then(|| previous.reason_keys()),
                });
                result.imports.push(archived(previous, context));
            }
            // A region that is readable again needs no alert, only its old finding closed.
            Some("region") if region_seen && full => {
                result.imports.push(archived(previous, context))
            }
            _ => {}
        }
    }
    result
}

/// What must change in `previous`'s workflow for `evaluation`: suppress it for a current
/// exemption, or lift a suppression trailwatch made once the exemption is gone. A person's
/// suppression is theirs, and is never lifted.
fn workflow_update(
    evaluation: &Evaluation,
    previous: &Finding,
    context: &FindingContext,
) -> Option<WorkflowUpdate> {
    // Tags that could not be read say nothing about the exemption: leave the workflow be.
    if evaluation.has_reason(ReasonCode::ExemptionUnverifiable) {
        return None;
    }
    let (status, text) = match &evaluation.exemption {
        Some(exemption) if exemption.is_current() && !previous.is_suppressed() => {
            (WORKFLOW_SUPPRESSED, exemption.describe())
        }
        Some(exemption) if !exemption.is_current() && previous.suppressed_by_trailwatch() => (
            WORKFLOW_NEW,
            format!(
                "The {} exemption ended on {}; trailwatch judges and pages this trail again.",
                crate::evaluate::exemption::EXEMPT_TAG,
                exemption.until.map(|d| d.to_string()).unwrap_or_default()
            ),
        ),
        None if previous.suppressed_by_trailwatch() => {
            let what_became = match evaluation.has_reason(ReasonCode::ExemptionInvalid) {
                true => "no longer reads as an exemption",
                false => "is gone",
            };
            (
                WORKFLOW_NEW,
                format!(
                    "The {} tag {what_became}; trailwatch judges and pages this trail again.",
                    crate::evaluate::exemption::EXEMPT_TAG
                ),
            )
        }
        _ => return None,
    };
    Some(WorkflowUpdate {
        finding_id: previous.id.clone(),
        product_arn: previous.product_arn.clone(),
        region: previous.region.clone(),
        status: status.to_string(),
        note: finding::note(&text, context.now),
    })
}

/// `UpdatedAt` must only grow, even if this machine's clock is behind the last writer's.
fn later_than(previous: &Finding, context: &FindingContext) -> String {
    let floor = previous
        .updated()
        .map(|t| t + Duration::milliseconds(1))
        .unwrap_or(context.now);
    format_time(context.now.max(floor))
}

fn archived(previous: &Finding, context: &FindingContext) -> Finding {
    let mut finding = previous.clone();
    finding.record_state = RECORD_ARCHIVED.into();
    finding.updated_at = later_than(previous, context);
    finding
}

/// Without the alert ledger, a transition whose finding could not be recorded must not be
/// alerted on either: the next run would see it as new and alert again.
pub fn drop_unrecorded(transitions: &mut Vec<Transition>, failed_ids: &BTreeSet<String>) {
    transitions.retain(|t| !failed_ids.contains(&t.finding_id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{parse_time, Workflow, DEFAULT_DOCS_URL};

    fn context(at: &str) -> FindingContext {
        FindingContext {
            partition: "aws".into(),
            home_region: "us-east-1".into(),
            docs_url: DEFAULT_DOCS_URL.into(),
            now: parse_time(at).unwrap(),
        }
    }

    fn trail(name: &str, codes: &[ReasonCode]) -> Evaluation {
        crate::test_support::trail_evaluation(name, codes)
    }

    fn scope() -> Scope {
        Scope {
            readable_regions: BTreeSet::from(["us-east-1".to_string()]),
            vanished: Vanished::AnyInReadableRegions,
        }
    }

    /// The transitions Security Hub alone would page, as a run without the ledger decides.
    fn transitions(plan: &Plan) -> Vec<Transition> {
        plan.candidates
            .iter()
            .filter_map(Candidate::hub_transition)
            .collect()
    }

    /// Runs a plan and returns what Security Hub would hold afterwards.
    fn run(evaluations: &[Evaluation], prior: &[Finding], at: &str) -> (Plan, Vec<Finding>) {
        let priors = PriorFindings {
            by_region: BTreeMap::from([("us-east-1".to_string(), prior.to_vec())]),
            unknown: BTreeSet::new(),
        };
        let plan = plan(evaluations, &priors, &scope(), &context(at));
        let mut store: BTreeMap<String, Finding> =
            prior.iter().map(|f| (f.id.clone(), f.clone())).collect();
        // An import keeps an existing finding's workflow and note, as Security Hub does.
        for f in &plan.imports {
            let mut stored = f.clone();
            if let Some(existing) = store.get(&f.id) {
                stored.workflow = existing.workflow.clone();
                stored.note = existing.note.clone();
            }
            store.insert(f.id.clone(), stored);
        }
        // What BatchUpdateFindings then changes.
        for update in &plan.workflow_updates {
            let finding = store.get_mut(&update.finding_id).unwrap();
            finding.workflow = Some(Workflow {
                status: update.status.clone(),
            });
            finding.note = Some(update.note.clone());
        }
        (plan, store.into_values().collect())
    }

    #[test]
    fn first_run_imports_everything_and_alerts_only_on_failures() {
        let evaluations = [
            trail("good", &[]),
            trail("bad", &[ReasonCode::CwlNotConfigured]),
        ];
        let (plan, _) = run(&evaluations, &[], "2024-06-01T12:00:00Z");
        assert_eq!(plan.imports.len(), 2);
        assert_eq!(transitions(&plan).len(), 1);
        assert_eq!(transitions(&plan)[0].kind, TransitionKind::NewFailure);
    }

    #[test]
    fn unchanged_second_run_imports_and_alerts_nothing() {
        let evaluations = [
            trail("good", &[]),
            trail("bad", &[ReasonCode::CwlNotConfigured]),
        ];
        let (_, stored) = run(&evaluations, &[], "2024-06-01T12:00:00Z");
        let (plan, _) = run(&evaluations, &stored, "2024-06-01T13:00:00Z");
        assert!(plan.imports.is_empty(), "{:#?}", plan.imports);
        assert!(transitions(&plan).is_empty());
        assert_eq!(plan.unchanged, 2);
    }

    #[test]
    fn stale_findings_are_refreshed_without_alerts_and_keep_created_at() {
        let evaluations = [trail("bad", &[ReasonCode::CwlNotConfigured])];
        let (_, stored) = run(&evaluations, &[], "2024-06-01T12:00:00Z");
        let (plan, _) = run(&evaluations, &stored, "2024-06-02T12:00:00Z");
        assert_eq!(plan.imports.len(), 1);
        assert!(transitions(&plan).is_empty());
        assert_eq!(plan.imports[0].created_at, "2024-06-01T12:00:00.000Z");
        assert_eq!(plan.imports[0].updated_at, "2024-06-02T12:00:00.000Z");
    }

    #[test]
    fn fixing_a_trail_resolves_it() {
        let (_, stored) = run(
            &[trail("t", &[ReasonCode::LoggingStopped])],
            &[],
            "2024-06-01T12:00:00Z",
        );
        let (plan, _) = run(&[trail("t", &[])], &stored, "2024-06-01T12:05:00Z");
        assert_eq!(transitions(&plan).len(), 1);
        let t = &transitions(&plan)[0].clone();
        assert_eq!(t.kind, TransitionKind::Resolved);
        assert_eq!(t.removed, vec!["LOGGING_STOPPED"]);
        assert_eq!(plan.imports[0].compliance_status(), Some("PASSED"));
        assert_eq!(plan.imports[0].created_at, "2024-06-01T12:00:00.000Z");
    }

    #[test]
    fn a_new_reason_while_failing_is_one_change() {
        let (_, stored) = run(
            &[trail("t", &[ReasonCode::CwlLogGroupMissing])],
            &[],
            "2024-06-01T12:00:00Z",
        );
        let (plan, _) = run(
            &[trail(
                "t",
                &[ReasonCode::CwlLogGroupMissing, ReasonCode::LoggingStopped],
            )],
            &stored,
            "2024-06-01T12:05:00Z",
        );
        assert_eq!(transitions(&plan).len(), 1);
        assert_eq!(transitions(&plan)[0].kind, TransitionKind::Changed);
        assert_eq!(transitions(&plan)[0].added, vec!["LOGGING_STOPPED"]);
    }

    #[test]
    fn fail_to_error_is_lost_sight_not_a_resolution() {
        let (_, stored) = run(
            &[trail("t", &[ReasonCode::LoggingStopped])],
            &[],
            "2024-06-01T12:00:00Z",
        );
        let (plan, _) = run(
            &[trail("t", &[ReasonCode::EvaluationIncomplete])],
            &stored,
            "2024-06-01T12:05:00Z",
        );
        let paged = transitions(&plan);
        assert_eq!(paged.len(), 1);
        assert_eq!(paged[0].kind, TransitionKind::LostSight);
        assert_eq!(paged[0].previous.as_deref(), Some("FAILED"));
        assert_eq!(plan.imports[0].compliance_status(), Some("NOT_AVAILABLE"));
    }

    #[test]
    fn a_vanished_trail_is_archived_and_alerted_high() {
        let (_, stored) = run(&[trail("gone", &[])], &[], "2024-06-01T12:00:00Z");
        let (plan, _) = run(&[], &stored, "2024-06-01T12:05:00Z");
        assert_eq!(plan.imports.len(), 1);
        assert_eq!(plan.imports[0].record_state, RECORD_ARCHIVED);
        assert_eq!(transitions(&plan)[0].kind, TransitionKind::Deleted);
        assert_eq!(transitions(&plan)[0].severity(), Severity::High);
        assert_eq!(
            transitions(&plan)[0]
                .evaluation
                .trail
                .as_ref()
                .unwrap()
                .name,
            "gone"
        );
    }

    #[test]
    fn nothing_is_archived_in_an_unreadable_region_or_a_partial_run() {
        let (_, stored) = run(&[trail("gone", &[])], &[], "2024-06-01T12:00:00Z");
        let priors = PriorFindings {
            by_region: BTreeMap::from([("us-east-1".to_string(), stored)]),
            unknown: BTreeSet::new(),
        };
        let blind = Scope {
            readable_regions: BTreeSet::new(),
            vanished: Vanished::AnyInReadableRegions,
        };
        assert!(plan(&[], &priors, &blind, &context("2024-06-01T12:05:00Z"))
            .imports
            .is_empty());
        let partial = Scope {
            vanished: Vanished::Only(BTreeSet::new()),
            ..scope()
        };
        assert!(
            plan(&[], &priors, &partial, &context("2024-06-01T12:05:00Z"))
                .imports
                .is_empty()
        );
    }

    #[test]
    fn a_recheck_archives_only_the_trail_it_looked_at() {
        let (_, stored) = run(
            &[trail("gone", &[]), trail("elsewhere", &[])],
            &[],
            "2024-06-01T12:00:00Z",
        );
        let priors = PriorFindings {
            by_region: BTreeMap::from([("us-east-1".to_string(), stored)]),
            unknown: BTreeSet::new(),
        };
        let focused = Scope {
            vanished: Vanished::Only(BTreeSet::from([
                "arn:aws:cloudtrail:us-east-1:111122223333:trail/gone".to_string(),
            ])),
            ..scope()
        };
        let plan = plan(&[], &priors, &focused, &context("2024-06-01T12:05:00Z"));
        assert_eq!(plan.imports.len(), 1, "only the named trail is archived");
        assert_eq!(plan.imports[0].record_state, RECORD_ARCHIVED);
        assert!(plan.imports[0].id.ends_with("trail/gone"));
        assert_eq!(transitions(&plan).len(), 1);
        assert_eq!(transitions(&plan)[0].kind, TransitionKind::Deleted);
    }

    #[test]
    fn updated_at_only_grows_even_when_the_clock_lags() {
        let (_, stored) = run(&[trail("t", &[])], &[], "2024-06-01T12:00:00Z");
        let (plan, _) = run(
            &[trail("t", &[ReasonCode::LoggingStopped])],
            &stored,
            "2024-06-01T11:00:00Z",
        );
        assert_eq!(plan.imports[0].updated_at, "2024-06-01T12:00:00.001Z");
    }

    #[test]
    fn without_state_every_failure_is_new_each_run() {
        let priors = PriorFindings {
            by_region: BTreeMap::new(),
            unknown: BTreeSet::from(["us-east-1".to_string()]),
        };
        let evaluations = [trail("bad", &[ReasonCode::CwlNotConfigured])];
        let plan = plan(
            &evaluations,
            &priors,
            &scope(),
            &context("2024-06-01T12:00:00Z"),
        );
        assert_eq!(transitions(&plan).len(), 1);
        assert_eq!(transitions(&plan)[0].kind, TransitionKind::NewFailure);
    }

    fn exempt(mut evaluation: Evaluation, until: Option<&str>, expired: bool) -> Evaluation {
        evaluation.exemption = Some(crate::evaluate::Exemption {
            reason: "data events only".into(),
            until: until.map(|d| d.parse().unwrap()),
            expired,
        });
        if expired {
            evaluation.reasons.push(crate::reason::Reason::new(
                ReasonCode::ExemptionExpired,
                "ended",
            ));
        }
        evaluation
    }

    /// A person suppresses `id` in Security Hub, as the console's "Suppress" does.
    fn suppress_by_person(stored: &mut [Finding], id: &str) {
        let finding = stored.iter_mut().find(|f| f.id == id).unwrap();
        finding.workflow = Some(Workflow {
            status: WORKFLOW_SUPPRESSED.into(),
        });
        finding.note = Some(Note {
            text: "accepted risk, ticket SEC-42".into(),
            updated_by: "arn:aws:sts::111122223333:assumed-role/SecOps/alice".into(),
            updated_at: "2024-06-01T12:30:00.000Z".into(),
        });
    }

    #[test]
    fn an_exempt_trail_is_created_suppressed_with_its_reason_and_pages_nobody() {
        let s3_only = exempt(
            trail("data", &[ReasonCode::CwlNotConfigured]),
            Some("2024-12-31"),
            false,
        );
        let (plan, _) = run(&[s3_only], &[], "2024-06-01T12:00:00Z");
        assert!(plan.candidates.is_empty(), "{:#?}", plan.candidates);
        let finding = &plan.imports[0];
        assert_eq!(finding.compliance_status(), Some("FAILED"));
        assert!(finding.is_suppressed());
        let note = finding.note.as_ref().unwrap();
        assert_eq!(note.updated_by, finding::NOTE_AUTHOR);
        assert!(note.text.contains("data events only"), "{}", note.text);
        assert!(note.text.contains("2024-12-31"), "{}", note.text);
        assert!(
            plan.workflow_updates.is_empty(),
            "a new finding needs no update"
        );
    }

    #[test]
    fn an_exemption_on_an_existing_finding_suppresses_it_through_an_update() {
        let failing = trail("data", &[ReasonCode::CwlNotConfigured]);
        let (_, stored) = run(std::slice::from_ref(&failing), &[], "2024-06-01T12:00:00Z");
        let (plan, stored) = run(
            &[exempt(failing.clone(), None, false)],
            &stored,
            "2024-06-01T13:00:00Z",
        );
        assert!(plan.candidates.is_empty());
        assert_eq!(plan.workflow_updates.len(), 1);
        let update = &plan.workflow_updates[0];
        assert_eq!(update.status, WORKFLOW_SUPPRESSED);
        assert_eq!(update.finding_id, stored[0].id);
        assert_eq!(update.product_arn, stored[0].product_arn);
        // Once suppressed, later runs leave the workflow alone.
        let (plan, _) = run(
            &[exempt(failing, None, false)],
            &stored,
            "2024-06-01T14:00:00Z",
        );
        assert!(plan.workflow_updates.is_empty());
    }

    #[test]
    fn an_expired_exemption_pages_saying_so_and_lifts_trailwatchs_own_suppression() {
        let failing = trail("data", &[ReasonCode::CwlNotConfigured]);
        let (_, stored) = run(
            &[exempt(failing.clone(), Some("2024-06-30"), false)],
            &[],
            "2024-06-01T12:00:00Z",
        );
        let (plan, _) = run(
            &[exempt(failing, Some("2024-06-30"), true)],
            &stored,
            "2024-07-01T12:00:00Z",
        );
        let paged = transitions(&plan);
        assert_eq!(paged.len(), 1, "{paged:#?}");
        assert!(
            paged[0].added.contains(&"EXEMPTION_EXPIRED".to_string()),
            "{paged:#?}"
        );
        assert_eq!(plan.workflow_updates.len(), 1);
        assert_eq!(plan.workflow_updates[0].status, WORKFLOW_NEW);
        assert!(plan.workflow_updates[0].note.text.contains("2024-06-30"));
    }

    #[test]
    fn a_person_suppressed_finding_is_not_paged_again_until_a_new_reason_appears() {
        let one = trail("t", &[ReasonCode::CwlRetentionUnset]);
        let (_, mut stored) = run(std::slice::from_ref(&one), &[], "2024-06-01T12:00:00Z");
        let id = stored[0].id.clone();
        suppress_by_person(&mut stored, &id);
        // A re-import (a refresh, a severity change) keeps the person's workflow and note.
        let worse = trail(
            "t",
            &[
                ReasonCode::CwlRetentionUnset,
                ReasonCode::TamperAlarmMissing,
            ],
        );
        let (plan, after) = run(
            std::slice::from_ref(&worse),
            &stored,
            "2024-06-01T13:00:00Z",
        );
        assert_eq!(transitions(&plan).len(), 1, "a new reason pages");
        assert!(after[0].suppressed_by_person(), "{:#?}", after[0].workflow);
        assert!(plan.workflow_updates.is_empty(), "never un-suppressed");
        // The same reasons, refreshed a day later: no page, still suppressed.
        let (plan, after) = run(std::slice::from_ref(&worse), &after, "2024-06-02T14:00:00Z");
        assert_eq!(plan.imports.len(), 1, "the refresh");
        assert!(transitions(&plan).is_empty(), "{:#?}", transitions(&plan));
        assert!(after[0].suppressed_by_person());
        // Nor is the fix: the person decided about this finding already.
        let (plan, _) = run(&[trail("t", &[])], &after, "2024-06-02T15:00:00Z");
        assert!(transitions(&plan).is_empty(), "{:#?}", transitions(&plan));
    }

    #[test]
    fn with_the_ledger_a_persons_suppression_holds_back_only_what_the_ledger_confirmed() {
        use crate::memory::{LedgerEntry, Observation, PendingClaim};
        let one = trail("t", &[ReasonCode::CwlRetentionUnset]);
        let (_, mut stored) = run(std::slice::from_ref(&one), &[], "2024-06-01T12:00:00Z");
        let id = stored[0].id.clone();
        suppress_by_person(&mut stored, &id);
        let at = parse_time("2024-06-01T13:00:00Z").unwrap();
        let entry = |state: Remembered| LedgerEntry {
            version: 1,
            confirmed: Some(Observation {
                state,
                observed_at: parse_time("2024-06-01T12:00:00Z").unwrap(),
            }),
            pending: None,
        };
        let candidate_for = |evaluation: &Evaluation| {
            let (plan, _) = run(
                std::slice::from_ref(evaluation),
                &stored,
                "2024-06-01T13:00:00Z",
            );
            plan.candidates[0].clone()
        };
        let warned = Remembered::of(&one);

        // The fix of what the person suppressed is recorded quietly.
        let fixed = candidate_for(&trail("t", &[]));
        assert_eq!(
            fixed.decide(Some(&entry(warned.clone())), at, at),
            Decision::Record
        );
        let mut unsuppressed = fixed.clone();
        unsuppressed.suppressed = None;
        assert!(matches!(
            unsuppressed.decide(Some(&entry(warned.clone())), at, at),
            Decision::Page(_)
        ));
        // An empty ledger is unsure: it pages, a duplicate rather than a loss.
        let same = candidate_for(&one);
        assert!(matches!(same.decide(None, at, at), Decision::Page(_)));
        // Security Hub ran ahead of a page SNS refused: the ledger never confirmed the reason.
        let passing = Remembered::of(&trail("t", &[]));
        assert!(matches!(
            same.decide(Some(&entry(passing)), at, at),
            Decision::Page(_)
        ));
        // Under another run's live claim, nothing is written in its place.
        let mut claimed = entry(warned);
        claimed.pending = Some(PendingClaim {
            observation: Observation {
                state: Remembered::of(&trail("t", &[ReasonCode::LoggingStopped])),
                observed_at: parse_time("2024-06-01T12:30:00Z").unwrap(),
            },
            lease_expires_at: parse_time("2024-06-01T14:00:00Z").unwrap(),
            owner: "other run".into(),
        });
        assert_ne!(fixed.decide(Some(&claimed), at, at), Decision::Record);
        // Losing sight of a suppressed trail still pages.
        let blind = candidate_for(&trail("t", &[ReasonCode::EvaluationIncomplete]));
        assert!(matches!(
            blind.decide(Some(&entry(Remembered::of(&one))), at, at),
            Decision::Page(_)
        ));
    }

    #[test]
    fn a_suppression_trailwatch_lifted_and_a_person_renewed_without_a_note_stays() {
        let failing = trail("data", &[ReasonCode::CwlNotConfigured]);
        let (_, stored) = run(
            &[exempt(failing.clone(), None, false)],
            &[],
            "2024-06-01T12:00:00Z",
        );
        // The tag is removed: trailwatch lifts its own suppression, and pages as first seen.
        let (plan, mut stored) = run(
            std::slice::from_ref(&failing),
            &stored,
            "2024-06-01T13:00:00Z",
        );
        assert_eq!(plan.workflow_updates[0].status, WORKFLOW_NEW);
        assert_eq!(
            transitions(&plan).len(),
            1,
            "the exemption-era state is news"
        );
        // A person suppresses it again, changing only the workflow: the note is still
        // trailwatch's lifting note, and the suppression is theirs.
        stored[0].workflow = Some(Workflow {
            status: WORKFLOW_SUPPRESSED.into(),
        });
        assert!(stored[0].suppressed_by_person());
        let (plan, _) = run(
            std::slice::from_ref(&failing),
            &stored,
            "2024-06-01T14:00:00Z",
        );
        assert!(
            plan.workflow_updates.is_empty(),
            "{:#?}",
            plan.workflow_updates
        );
    }

    #[test]
    fn unreadable_tags_leave_trailwatchs_suppression_alone() {
        let failing = trail("data", &[ReasonCode::CwlNotConfigured]);
        let (_, stored) = run(
            &[exempt(failing.clone(), None, false)],
            &[],
            "2024-06-01T12:00:00Z",
        );
        let mut unreadable = failing;
        unreadable.reasons.push(crate::reason::Reason::new(
            ReasonCode::ExemptionUnverifiable,
            "denied",
        ));
        let (plan, stored) = run(
            std::slice::from_ref(&unreadable),
            &stored,
            "2024-06-01T13:00:00Z",
        );
        assert!(
            plan.workflow_updates.is_empty(),
            "{:#?}",
            plan.workflow_updates
        );
        // Judged as usual, the exemption-era state pages once, as first seen...
        assert_eq!(transitions(&plan).len(), 1, "{:#?}", transitions(&plan));
        // ...and only once, though the finding stays suppressed while the tags stay unread.
        assert!(stored[0].suppressed_by_trailwatch());
        let (plan, _) = run(&[unreadable], &stored, "2024-06-01T14:00:00Z");
        assert!(transitions(&plan).is_empty(), "{:#?}", transitions(&plan));
    }

    #[test]
    fn reasons_that_came_during_an_exemption_page_when_it_goes_despite_a_persons_suppression() {
        let warned = trail("t", &[ReasonCode::CwlRetentionUnset]);
        let (_, mut stored) = run(std::slice::from_ref(&warned), &[], "2024-06-01T12:00:00Z");
        let id = stored[0].id.clone();
        suppress_by_person(&mut stored, &id);
        // Tagged exempt, the trail is stopped: recorded, not paged, the person's workflow kept.
        let stopped = trail(
            "t",
            &[ReasonCode::CwlRetentionUnset, ReasonCode::LoggingStopped],
        );
        let (plan, stored) = run(
            &[exempt(stopped.clone(), None, false)],
            &stored,
            "2024-06-01T13:00:00Z",
        );
        assert!(plan.candidates.is_empty());
        assert!(stored[0].suppressed_by_person());
        // The tag is removed: the person never saw LOGGING_STOPPED, so it pages.
        let (plan, _) = run(&[stopped], &stored, "2024-06-01T14:00:00Z");
        let paged = transitions(&plan);
        assert_eq!(paged.len(), 1, "{paged:#?}");
        assert!(
            plan.workflow_updates.is_empty(),
            "the person's suppression stays"
        );
    }
}
