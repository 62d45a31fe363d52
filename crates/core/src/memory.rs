//! What trailwatch remembers about each finding between runs, and what a run decides against
//! that memory: page, record quietly, keep, or stand back for another run.
//!
//! Two memories exist. Security Hub holds the findings themselves; anyone allowed
//! `securityhub:BatchImportFindings` can write there, and a read may be stale. The alert ledger
//! (see `trailwatch-aws`'s `ledger`) holds, per finding, the state last paged and confirmed, and
//! at most one pending claim with a lease. With the ledger configured, the ledger decides; a
//! Security Hub finding written after the ledger's last observation may add a page (the ledger
//! write that should have followed a page failed) but never removes one, so a forged finding
//! cannot silence trailwatch. Without the ledger, Security Hub is the only memory.
//!
//! A transition is paged when something got worse or came back: a new FAIL or WARNING reason,
//! a turn to FAIL, a turn to ERROR (trailwatch lost sight) and back, a failure resolved, or a
//! trail deleted. A change that only removes a reason while still failing is recorded quietly.

use crate::evaluate::Evaluation;
use crate::finding::{compliance_status, status_of_compliance};
use crate::reason::{Level, ReasonCode, Severity, Status};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The state of a trail that is gone, as remembered.
pub const ARCHIVED: &str = "ARCHIVED";

/// A finding's state as paging compares it: the compliance status, severity and the keys of
/// the reasons that count (FAIL and WARNING level), or archived for a trail that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remembered {
    Archived,
    Verdict {
        status: Status,
        severity: Severity,
        /// Sorted and without duplicates; see [`crate::reason::Reason::key`].
        keys: Vec<String>,
    },
}

impl Remembered {
    /// What an evaluation would be remembered as.
    pub fn of(evaluation: &Evaluation) -> Self {
        Remembered::Verdict {
            status: evaluation.status,
            severity: evaluation.severity,
            keys: normalized(
                evaluation
                    .reasons
                    .iter()
                    .filter(|r| matches!(r.level, Level::Fail | Level::Warning))
                    .map(|r| r.key()),
            ),
        }
    }

    /// A verdict from its parts, with `keys` sorted as memory keeps them.
    pub fn verdict(
        status: Status,
        severity: Severity,
        keys: impl IntoIterator<Item = String>,
    ) -> Self {
        Remembered::Verdict {
            status,
            severity,
            keys: normalized(keys),
        }
    }

    pub fn status(&self) -> Option<Status> {
        match self {
            Remembered::Archived => None,
            Remembered::Verdict { status, .. } => Some(*status),
        }
    }

    pub fn keys(&self) -> &[String] {
        match self {
            Remembered::Archived => &[],
            Remembered::Verdict { keys, .. } => keys,
        }
    }

    /// Reads the text form written by [`fmt::Display`]: `FAILED HIGH KEY,KEY` or `ARCHIVED`.
    /// Older ledger items listed every reason code; INFO and ERROR codes among them are
    /// dropped here, so that they read as the same state.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text == ARCHIVED {
            return Some(Remembered::Archived);
        }
        let mut parts = text.splitn(3, ' ');
        let status = status_of_compliance(parts.next()?)?;
        let severity = parts.next()?.parse().ok()?;
        let keys = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|k| !k.is_empty())
            .filter(|k| {
                reason_code(k).is_none_or(|c| matches!(c.level(), Level::Fail | Level::Warning))
            })
            .map(str::to_string);
        Some(Remembered::verdict(status, severity, keys))
    }
}

impl fmt::Display for Remembered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remembered::Archived => f.write_str(ARCHIVED),
            Remembered::Verdict {
                status,
                severity,
                keys,
            } => write!(
                f,
                "{} {} {}",
                compliance_status(*status),
                severity,
                keys.join(",")
            ),
        }
    }
}

fn normalized(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = keys.into_iter().collect();
    set.into_iter().collect()
}

/// The reason code a key names (`LOGGING_GAP@2026-12-01T10:00:00Z` names `LOGGING_GAP`).
pub fn reason_code(key: &str) -> Option<ReasonCode> {
    key.split('@').next()?.parse().ok()
}

/// What a key stands for when deciding whether it is new. A stop of logging is one event
/// whether it is seen while the trail is stopped (`LOGGING_STOPPED`) or after it was started
/// again (`LOGGING_GAP`): the same stop time is the same stop, paged once.
pub fn identity(key: &str) -> String {
    match key.split_once('@') {
        Some((code, occurrence))
            if code == ReasonCode::LoggingGap.as_str()
                || code == ReasonCode::LoggingStopped.as_str() =>
        {
            format!("LOGGING_STOP@{occurrence}")
        }
        _ => key.to_string(),
    }
}

/// Reasons whose disappearance is not a fix (see [`ReasonCode::is_historical`]): a logging
/// gap leaves the window by itself. Its going is recorded, never paged as "resolved".
fn is_historical(key: &str) -> bool {
    reason_code(key).is_some_and(ReasonCode::is_historical)
}

/// Why a transition is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// The verdict turned FAIL.
    NewFailure,
    /// Still failing, with a new FAIL or WARNING reason.
    Changed,
    /// A new WARNING reason, and not failing.
    NewWarning,
    /// Failing or warning before, better now, and a reason was fixed.
    Resolved,
    /// trailwatch can no longer verify the resource: its data could not be read.
    LostSight,
    /// trailwatch can verify the resource again.
    Regained,
    Deleted,
    /// Someone changed the monitor itself (its rules, functions, topic or key).
    MonitorTampered,
}

impl TransitionKind {
    pub fn label(self) -> &'static str {
        match self {
            TransitionKind::NewFailure => "NEW FAILURE",
            TransitionKind::Changed => "WORSE",
            TransitionKind::NewWarning => "NEW WARNING",
            TransitionKind::Resolved => "RESOLVED",
            TransitionKind::LostSight => "CANNOT VERIFY",
            TransitionKind::Regained => "VERIFIABLE AGAIN",
            TransitionKind::Deleted => "TRAIL DELETED",
            TransitionKind::MonitorTampered => "MONITOR TAMPERED",
        }
    }

    /// Whether the transition is good news.
    pub fn is_improvement(self) -> bool {
        matches!(self, TransitionKind::Resolved | TransitionKind::Regained)
    }
}

/// A transition worth a page: its kind and the reason keys that came and went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub kind: TransitionKind,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Whether going from `prior` (`None`: never seen) to `now` is worth a page, and why.
pub fn transition(prior: Option<&Remembered>, now: &Remembered) -> Option<Shift> {
    let prior_verdict = prior.filter(|p| **p != Remembered::Archived);
    let Remembered::Verdict { status, keys, .. } = now else {
        return match prior_verdict {
            Some(before) => Some(Shift {
                kind: TransitionKind::Deleted,
                added: vec![],
                removed: before.keys().to_vec(),
            }),
            // Nothing remembered it as present, or it is archived already.
            None if prior.is_none() => Some(Shift {
                kind: TransitionKind::Deleted,
                added: vec![],
                removed: vec![],
            }),
            None => None,
        };
    };
    let before_status = prior_verdict.and_then(Remembered::status);
    let before_keys = prior_verdict.map(Remembered::keys).unwrap_or_default();
    let ids = |list: &[String]| list.iter().map(|k| identity(k)).collect::<BTreeSet<_>>();
    let (before_ids, now_ids) = (ids(before_keys), ids(keys));
    let added: Vec<String> = keys
        .iter()
        .filter(|k| !before_ids.contains(&identity(k)))
        .cloned()
        .collect();
    let removed: Vec<String> = before_keys
        .iter()
        .filter(|k| !now_ids.contains(&identity(k)))
        .cloned()
        .collect();
    let rank = |s: Status| match s {
        Status::Pass => 0,
        Status::Warning => 1,
        Status::Fail => 2,
        Status::Error => 3,
    };
    let kind = match (before_status, *status) {
        (Some(Status::Error), Status::Error) => None,
        (_, Status::Error) => Some(TransitionKind::LostSight),
        (Some(Status::Error), _) => Some(TransitionKind::Regained),
        (before, Status::Fail) if before != Some(Status::Fail) => Some(TransitionKind::NewFailure),
        (_, Status::Fail) if !added.is_empty() => Some(TransitionKind::Changed),
        (_, _) if !added.is_empty() => Some(TransitionKind::NewWarning),
        (Some(before @ (Status::Fail | Status::Warning)), after)
            if rank(after) < rank(before) && removed.iter().any(|k| !is_historical(k)) =>
        {
            Some(TransitionKind::Resolved)
        }
        _ => None,
    }?;
    Some(Shift {
        kind,
        added,
        removed,
    })
}

/// One observation of a finding: the state, and when the run that saw it started reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub state: Remembered,
    pub observed_at: DateTime<Utc>,
}

/// A claim a run holds while it pages: the state it pages, until when the lease holds, and
/// which run holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingClaim {
    pub observation: Observation,
    pub lease_expires_at: DateTime<Utc>,
    pub owner: String,
}

/// One finding's item in the alert ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Bumped by every write; every write is conditional on the version the writer read.
    pub version: u64,
    /// The last state paged (and accepted by SNS) or recorded quietly.
    pub confirmed: Option<Observation>,
    pub pending: Option<PendingClaim>,
}

impl LedgerEntry {
    /// The pending claim, if its lease still holds at `now`.
    pub fn live_claim(&self, now: DateTime<Utc>) -> Option<&PendingClaim> {
        self.pending.as_ref().filter(|p| p.lease_expires_at > now)
    }
}

/// A finding as Security Hub held it when this run read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubMemory {
    pub state: Remembered,
    pub updated_at: DateTime<Utc>,
}

/// What a run does with one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Claim the finding, page, then confirm.
    Page(Shift),
    /// The state changed in a way nobody needs paging about: write it to the ledger quietly.
    Record,
    /// The ledger already holds this state.
    Keep,
    /// Another run observed the finding later than this one: neither record nor page, so an
    /// old view never overwrites a newer one.
    Superseded,
    /// Another run holds a live claim to page this very state.
    InFlight { owner: String, until: DateTime<Utc> },
}

/// Decides one finding against the ledger (`entry`: `None` when the ledger has no item) and
/// what Security Hub holds. `observed_at` is when this run started reading; `now` is the clock
/// leases are judged by.
pub fn decide(
    entry: Option<&LedgerEntry>,
    hub: Option<&HubMemory>,
    state: &Remembered,
    observed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Decision {
    let confirmed = entry.and_then(|e| e.confirmed.as_ref());
    let live = entry.and_then(|e| e.live_claim(now));
    if confirmed.is_some_and(|c| c.observed_at > observed_at)
        || live.is_some_and(|p| p.observation.observed_at > observed_at)
    {
        return Decision::Superseded;
    }
    let known = confirmed.map(|c| &c.state);
    // While another run holds a live claim, what it pages is about to be the known state: this
    // run pages only what is worse than that, and otherwise leaves the finding to that run. It
    // must not write either, or a claim whose page then fails would lose it.
    if let Some(claim) = live {
        return match transition(Some(&claim.observation.state), state) {
            Some(shift) => Decision::Page(shift),
            None => Decision::InFlight {
                owner: claim.owner.clone(),
                until: claim.lease_expires_at,
            },
        };
    }
    // A Security Hub finding newer than what the ledger confirmed means a ledger write that
    // should have followed a page failed: it may add a page, never hold one back.
    let hub_newer = hub.filter(|h| confirmed.is_none_or(|c| h.updated_at > c.observed_at));
    let shift = transition(known, state)
        .or_else(|| hub_newer.and_then(|h| transition(Some(&h.state), state)));
    match shift {
        Some(shift) => Decision::Page(shift),
        None if known == Some(state) => Decision::Keep,
        None => Decision::Record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::{Reason, ReasonCode};
    use crate::test_support::trail_evaluation;

    fn at(text: &str) -> DateTime<Utc> {
        crate::finding::parse_time(text).unwrap()
    }

    fn state(codes: &[ReasonCode]) -> Remembered {
        Remembered::of(&trail_evaluation("t", codes))
    }

    fn kind(prior: Option<&Remembered>, now: &Remembered) -> Option<TransitionKind> {
        transition(prior, now).map(|s| s.kind)
    }

    #[test]
    fn the_text_form_reads_back_and_old_items_lose_their_info_codes() {
        let failing = state(&[ReasonCode::LoggingStopped, ReasonCode::CwlRetentionUnset]);
        assert_eq!(
            failing.to_string(),
            "FAILED HIGH CWL_RETENTION_UNSET,LOGGING_STOPPED"
        );
        assert_eq!(Remembered::parse(&failing.to_string()), Some(failing));
        assert_eq!(Remembered::parse("ARCHIVED"), Some(Remembered::Archived));
        let old = Remembered::parse("PASSED INFORMATIONAL CWL_DELIVERY_PENDING").unwrap();
        assert_eq!(old, state(&[ReasonCode::CwlDeliveryPending]));
        assert_eq!(Remembered::parse("maybe"), None);
    }

    #[test]
    fn first_sight_pages_failures_warnings_and_blindness_but_not_a_pass() {
        assert_eq!(
            kind(None, &state(&[ReasonCode::CwlNotConfigured])),
            Some(TransitionKind::NewFailure)
        );
        assert_eq!(
            kind(None, &state(&[ReasonCode::CwlRetentionUnset])),
            Some(TransitionKind::NewWarning)
        );
        assert_eq!(
            kind(None, &state(&[ReasonCode::EvaluationIncomplete])),
            Some(TransitionKind::LostSight)
        );
        assert_eq!(kind(None, &state(&[])), None);
    }

    #[test]
    fn only_worse_pages_while_failing() {
        let one = state(&[ReasonCode::CwlLogGroupMissing]);
        let two = state(&[ReasonCode::CwlLogGroupMissing, ReasonCode::LoggingStopped]);
        let shift = transition(Some(&one), &two).unwrap();
        assert_eq!(shift.kind, TransitionKind::Changed);
        assert_eq!(shift.added, vec!["LOGGING_STOPPED"]);
        // Fixing one of two reasons is good news, recorded without a page.
        assert_eq!(kind(Some(&two), &one), None);
        // A new warning on a failing trail is worse too.
        let worse = state(&[
            ReasonCode::CwlLogGroupMissing,
            ReasonCode::TamperAlarmMissing,
        ]);
        assert_eq!(kind(Some(&one), &worse), Some(TransitionKind::Changed));
    }

    #[test]
    fn a_turn_to_warning_pages_and_its_fix_resolves() {
        let pass = state(&[]);
        let warned = state(&[ReasonCode::TamperAlarmMissing]);
        assert_eq!(kind(Some(&pass), &warned), Some(TransitionKind::NewWarning));
        assert_eq!(kind(Some(&warned), &pass), Some(TransitionKind::Resolved));
        let failing = state(&[ReasonCode::LoggingStopped]);
        assert_eq!(kind(Some(&failing), &pass), Some(TransitionKind::Resolved));
    }

    #[test]
    fn losing_sight_pages_once_and_so_does_regaining_it() {
        let pass = state(&[]);
        let blind = state(&[ReasonCode::EvaluationIncomplete]);
        assert_eq!(kind(Some(&pass), &blind), Some(TransitionKind::LostSight));
        assert_eq!(kind(Some(&blind), &blind), None);
        let failing = state(&[ReasonCode::LoggingStopped]);
        assert_eq!(
            kind(Some(&failing), &blind),
            Some(TransitionKind::LostSight)
        );
        assert_eq!(kind(Some(&blind), &pass), Some(TransitionKind::Regained));
    }

    fn gap_at(stop: &str) -> Remembered {
        let mut evaluation = trail_evaluation("t", &[]);
        let mut reason = Reason::new(ReasonCode::LoggingGap, "gap");
        reason.occurrence = Some(stop.into());
        evaluation.reasons.push(reason);
        evaluation.status = Status::Fail;
        evaluation.severity = Severity::High;
        Remembered::of(&evaluation)
    }

    fn stopped_at(stop: &str) -> Remembered {
        let mut evaluation = trail_evaluation("t", &[]);
        let mut reason = Reason::new(ReasonCode::LoggingStopped, "stopped");
        reason.occurrence = Some(stop.into());
        evaluation.reasons.push(reason);
        evaluation.status = Status::Fail;
        evaluation.severity = Severity::High;
        Remembered::of(&evaluation)
    }

    #[test]
    fn each_stop_pages_once_whether_seen_stopped_or_restarted() {
        let first = "2026-12-01T10:00:00Z";
        // Seen stopped first, then started again: the same stop, no second page.
        assert_eq!(kind(Some(&stopped_at(first)), &gap_at(first)), None);
        assert_eq!(kind(Some(&gap_at(first)), &gap_at(first)), None);
        // Another stop inside the window is a new page.
        let second = gap_at("2026-12-01T11:30:00Z");
        assert_eq!(
            kind(Some(&gap_at(first)), &second),
            Some(TransitionKind::Changed)
        );
        // A gap leaving the window is not a fix to page about.
        assert_eq!(kind(Some(&gap_at(first)), &state(&[])), None);
    }

    #[test]
    fn a_trail_that_is_gone_pages_once() {
        let present = state(&[]);
        assert_eq!(
            kind(Some(&present), &Remembered::Archived),
            Some(TransitionKind::Deleted)
        );
        assert_eq!(
            kind(Some(&Remembered::Archived), &Remembered::Archived),
            None
        );
    }

    fn entry(
        confirmed: Option<(&Remembered, &str)>,
        pending: Option<(&Remembered, &str, &str)>,
    ) -> LedgerEntry {
        LedgerEntry {
            version: 3,
            confirmed: confirmed.map(|(state, observed)| Observation {
                state: state.clone(),
                observed_at: at(observed),
            }),
            pending: pending.map(|(state, observed, until)| PendingClaim {
                observation: Observation {
                    state: state.clone(),
                    observed_at: at(observed),
                },
                lease_expires_at: at(until),
                owner: "other-run".into(),
            }),
        }
    }

    const T0: &str = "2026-12-01T10:00:00Z";
    const T1: &str = "2026-12-01T10:05:00Z";
    const T2: &str = "2026-12-01T10:06:00Z";

    #[test]
    fn the_ledger_decides_against_what_it_confirmed() {
        let pass = state(&[]);
        let failing = state(&[ReasonCode::LoggingStopped]);
        let known = entry(Some((&pass, T0)), None);
        assert!(matches!(
            decide(Some(&known), None, &failing, at(T1), at(T1)),
            Decision::Page(Shift {
                kind: TransitionKind::NewFailure,
                ..
            })
        ));
        assert_eq!(
            decide(Some(&known), None, &pass, at(T1), at(T1)),
            Decision::Keep
        );
        let two = state(&[ReasonCode::LoggingStopped, ReasonCode::CwlLogGroupMissing]);
        let failing_twice = entry(Some((&two, T0)), None);
        assert_eq!(
            decide(Some(&failing_twice), None, &failing, at(T1), at(T1)),
            Decision::Record
        );
    }

    #[test]
    fn an_older_view_stands_back_for_a_newer_one() {
        let pass = state(&[]);
        let failing = state(&[ReasonCode::LoggingStopped]);
        let newer = entry(Some((&failing, T1)), None);
        assert_eq!(
            decide(Some(&newer), None, &pass, at(T0), at(T2)),
            Decision::Superseded
        );
        let claimed_later = entry(Some((&pass, T0)), Some((&failing, T1, T2)));
        assert_eq!(
            decide(Some(&claimed_later), None, &pass, at(T0), at(T1)),
            Decision::Superseded
        );
    }

    #[test]
    fn a_live_claim_of_the_same_state_is_left_to_its_run_and_an_expired_one_is_taken_over() {
        let pass = state(&[]);
        let failing = state(&[ReasonCode::LoggingStopped]);
        let claimed = entry(Some((&pass, T0)), Some((&failing, T0, T2)));
        assert_eq!(
            decide(Some(&claimed), None, &failing, at(T1), at(T1)),
            Decision::InFlight {
                owner: "other-run".into(),
                until: at(T2)
            }
        );
        // The run that claimed died: once the lease has run out, the next run pages.
        let after_lease = "2026-12-01T10:07:00Z";
        assert!(matches!(
            decide(Some(&claimed), None, &failing, at(T1), at(after_lease)),
            Decision::Page(_)
        ));
    }

    #[test]
    fn under_another_runs_claim_only_what_is_worse_than_its_page_is_paged() {
        let pass = state(&[]);
        let stopped = state(&[ReasonCode::LoggingStopped]);
        let worse = state(&[ReasonCode::LoggingStopped, ReasonCode::CwlLogGroupMissing]);
        let claimed = entry(Some((&pass, T0)), Some((&stopped, T0, T2)));
        assert!(matches!(
            decide(Some(&claimed), None, &worse, at(T1), at(T1)),
            Decision::Page(Shift {
                kind: TransitionKind::Changed,
                ..
            })
        ));
        // Better than what the other run pages: left to it, and nothing written meanwhile.
        let claimed_worse = entry(Some((&pass, T0)), Some((&worse, T0, T2)));
        assert!(matches!(
            decide(Some(&claimed_worse), None, &stopped, at(T1), at(T1)),
            Decision::InFlight { .. }
        ));
    }

    #[test]
    fn security_hub_can_add_a_page_but_never_hold_one_back() {
        let pass = state(&[]);
        let failing = state(&[ReasonCode::LoggingStopped]);
        // A forged FAILED finding, newer than anything the ledger saw, does not hide the turn.
        let known_pass = entry(Some((&pass, T0)), None);
        let forged = HubMemory {
            state: failing.clone(),
            updated_at: at(T1),
        };
        assert!(matches!(
            decide(Some(&known_pass), Some(&forged), &failing, at(T2), at(T2)),
            Decision::Page(_)
        ));
        // The ledger missed a quiet write (it says FAIL, but the trail passed and was recorded
        // so in Security Hub later): a new failure still pages.
        let stale = entry(Some((&failing, T0)), None);
        let recorded_pass = HubMemory {
            state: pass.clone(),
            updated_at: at(T1),
        };
        assert!(matches!(
            decide(Some(&stale), Some(&recorded_pass), &failing, at(T2), at(T2)),
            Decision::Page(Shift {
                kind: TransitionKind::NewFailure,
                ..
            })
        ));
        // An older Security Hub read (before the ledger's confirmation) changes nothing.
        let old_read = HubMemory {
            state: pass,
            updated_at: at("2026-12-01T09:00:00Z"),
        };
        assert_eq!(
            decide(Some(&stale), Some(&old_read), &failing, at(T2), at(T2)),
            Decision::Keep
        );
    }

    #[test]
    fn without_a_ledger_item_a_security_hub_finding_cannot_suppress_a_page() {
        let failing = state(&[ReasonCode::LoggingStopped]);
        let hub = HubMemory {
            state: failing.clone(),
            updated_at: at(T0),
        };
        assert!(matches!(
            decide(None, Some(&hub), &failing, at(T1), at(T1)),
            Decision::Page(_)
        ));
        assert_eq!(
            decide(None, None, &state(&[]), at(T1), at(T1)),
            Decision::Record
        );
    }
}
