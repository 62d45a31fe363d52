//! The account's verdict: does some trail give real-time coverage of every region?
//!
//! Reason codes: `NO_TRAIL`, `NO_REALTIME_COVERAGE`, `ORG_TRAIL_COVERAGE` (INFO),
//! `CWL_CHECKS_DELEGATED` (INFO, another account's organisation trail whose selectors cannot be
//! read from here), and `EVALUATION_INCOMPLETE` when the trails that could cover it could not
//! be read in full. The guardrail reasons ([`super::guardrail`]) join the account's verdict.
//!
//! A trail covers the account when it is multi-region, logging, keeps management events and
//! has no FAIL reason other than one that is history (`LOGGING_GAP`).

use super::selectors::logs_management_writes;
use super::{Evaluation, EvaluationKind, Settings, TrailView};
use crate::reason::{Level, Reason, ReasonCode};
use crate::snapshot::{AccountSnapshot, TrailDetails};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coverage {
    Yes,
    No,
    Unknown,
}

/// Whether a trail gives real-time coverage: logging, management writes kept, and (for its
/// own trails) free of trail-level FAIL reasons.
fn coverage_of(
    view: &TrailView,
    details: Option<&TrailDetails>,
    evaluation: Option<&Evaluation>,
) -> Coverage {
    if view.trail.cloud_watch_logs_log_group_arn.is_none() {
        return Coverage::No;
    }
    let Some(details) = details else {
        return Coverage::Unknown;
    };
    let logging = match &details.status {
        Ok(s) if s.is_logging => Coverage::Yes,
        Ok(_) => return Coverage::No,
        Err(_) => Coverage::Unknown,
    };
    let management = match &details.event_selectors {
        Ok(s) if logs_management_writes(s) => Coverage::Yes,
        Ok(_) => return Coverage::No,
        // Another account's organisation trail: its selectors are the management account's
        // to check, and a member often may not read them.
        Err(_) if !view.owned => Coverage::Yes,
        Err(_) => Coverage::Unknown,
    };
    // A failure that is history (a logging gap, now over) does not stop the trail covering
    // the account now.
    let reason_at = |e: &Evaluation, level: Level| {
        e.reasons
            .iter()
            .any(|r| r.level == level && !r.code.is_historical())
    };
    let healthy = match evaluation {
        Some(e) if reason_at(e, Level::Fail) => return Coverage::No,
        Some(e) if reason_at(e, Level::Error) => Coverage::Unknown,
        // A foreign organisation trail's log group and role are the management account's
        // to check; seen from here it counts once it is logging management events.
        _ => Coverage::Yes,
    };
    if [logging, management, healthy].contains(&Coverage::Unknown) {
        Coverage::Unknown
    } else {
        Coverage::Yes
    }
}

/// Every trail judged for coverage, with the verdicts the trail rules gave it.
fn judge<'v>(
    snapshot: &AccountSnapshot,
    views: &'v [TrailView],
    evaluations: &[Evaluation],
) -> Vec<(&'v TrailView, Coverage)> {
    let trail_evaluations: BTreeMap<&str, &Evaluation> = evaluations
        .iter()
        .filter(|e| e.kind == EvaluationKind::Trail)
        .map(|e| (e.resource_id.as_str(), e))
        .collect();
    views
        .iter()
        .map(|v| {
            let evaluation = trail_evaluations.get(v.trail.trail_arn.as_str()).copied();
            let details = snapshot.trail_details.get(&v.trail.trail_arn);
            (v, coverage_of(v, details, evaluation))
        })
        .collect()
}

/// Whether API calls made in one region reach CloudWatch Logs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoverageState {
    /// At least one trail that logs here covers the region in real time.
    Covered,
    /// No trail covers the region.
    Uncovered,
    /// A trail may cover it, but its state could not be read in full.
    Unknown,
    /// The region's trails could not be listed, and no multi-region trail covers it.
    Unreadable,
}

impl CoverageState {
    /// The state as the JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CoverageState::Covered => "covered",
            CoverageState::Uncovered => "uncovered",
            CoverageState::Unknown => "unknown",
            CoverageState::Unreadable => "unreadable",
        }
    }
}

/// One cell of the coverage matrix: a scanned region, and the trails that cover it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCoverage {
    pub region: String,
    pub state: CoverageState,
    /// The ARNs of the trails that give the region real-time coverage, by the same rule as the
    /// account's verdict (an organisation trail of another account included).
    #[serde(default)]
    pub trails: Vec<String>,
}

/// Region by region, which trails give real-time coverage: the account verdict's rule, cell by
/// cell, for the coverage matrix of the HTML report and the JSON's `coverage`.
pub fn region_coverage(
    snapshot: &AccountSnapshot,
    evaluations: &[Evaluation],
) -> Vec<RegionCoverage> {
    let views = super::unique_trails(&snapshot.regions, &snapshot.account_id);
    let judged = judge(snapshot, &views, evaluations);
    snapshot
        .regions
        .iter()
        .map(|region| {
            let logs_here = |v: &TrailView| {
                v.trail.is_multi_region_trail || v.trail.home_region == region.region
            };
            let trails: Vec<String> = judged
                .iter()
                .filter(|(v, c)| *c == Coverage::Yes && logs_here(v))
                .map(|(v, _)| v.trail.trail_arn.clone())
                .collect();
            let state = if !trails.is_empty() {
                CoverageState::Covered
            } else if region.trails.is_err() {
                CoverageState::Unreadable
            } else if judged
                .iter()
                .any(|(v, c)| *c == Coverage::Unknown && logs_here(v))
            {
                CoverageState::Unknown
            } else {
                CoverageState::Uncovered
            };
            RegionCoverage {
                region: region.region.clone(),
                state,
                trails,
            }
        })
        .collect()
}

pub(super) fn coverage_evaluation(
    snapshot: &AccountSnapshot,
    views: &[TrailView],
    evaluations: &[Evaluation],
    scanned: &[&str],
    guardrail: Vec<Reason>,
    settings: &Settings,
) -> Evaluation {
    let account = &snapshot.account_id;
    let unreadable: Vec<&str> = snapshot
        .regions
        .iter()
        .filter(|r| r.trails.is_err())
        .map(|r| r.region.as_str())
        .collect();
    let mut reasons = Vec::new();
    let judged = judge(snapshot, views, evaluations);
    let multi = |c: Coverage| {
        judged
            .iter()
            .filter(move |(v, cov)| v.trail.is_multi_region_trail && *cov == c)
            .map(|(v, _)| *v)
    };

    for view in views
        .iter()
        .filter(|v| !v.owned && v.trail.is_organization_trail)
    {
        if let Some(Err(why)) = snapshot
            .trail_details
            .get(&view.trail.trail_arn)
            .map(|d| &d.event_selectors)
        {
            reasons.push(Reason::new(
                ReasonCode::CwlChecksDelegated,
                format!(
                    "Organisation trail {} of account {}: its event selectors cannot be read from here ({}); the management account checks them.",
                    view.trail.name,
                    view.trail.owner_account().unwrap_or("unknown"),
                    why.describe()
                ),
            ));
        }
    }
    if views.is_empty() {
        reasons.push(if unreadable.len() == scanned.len() {
            Reason::new(
                ReasonCode::EvaluationIncomplete,
                "No region's trails could be listed, so coverage is unknown.".to_string(),
            )
        } else if unreadable.is_empty() {
            Reason::new(
                ReasonCode::NoTrail,
                format!(
                    "Account {account} has no CloudTrail trail in any scanned region ({}). Nothing records API calls beyond the 90-day event history, and nothing alerts.",
                    scanned.join(", ")
                ),
            )
        } else {
            Reason::new(
                ReasonCode::EvaluationIncomplete,
                format!(
                    "No trail is visible in the readable regions, and {} could not be listed.",
                    unreadable.join(", ")
                ),
            )
        });
    } else if let Some(covering) = multi(Coverage::Yes).next() {
        if !covering.owned {
            reasons.push(Reason::new(
                ReasonCode::OrgTrailCoverage,
                format!(
                    "Covered by organisation trail {} of account {}; its log group and role are checked in that account.",
                    covering.trail.name,
                    covering.trail.owner_account().unwrap_or("unknown")
                ),
            ));
        }
    } else if let Some(maybe) = multi(Coverage::Unknown).next() {
        reasons.push(Reason::new(
            ReasonCode::EvaluationIncomplete,
            format!(
                "Multi-region trail {} may give real-time coverage, but its state could not be read in full.",
                maybe.trail.name
            ),
        ));
    } else {
        let covered_by_single: Vec<&str> = judged
            .iter()
            .filter(|(v, c)| !v.trail.is_multi_region_trail && *c == Coverage::Yes)
            .map(|(v, _)| v.trail.home_region.as_str())
            .collect();
        let uncovered: Vec<&str> = scanned
            .iter()
            .copied()
            .filter(|r| !covered_by_single.contains(r))
            .collect();
        let failing_multi: Vec<String> =
            multi(Coverage::No).map(|v| v.trail.name.clone()).collect();
        let mut message = String::from(
            "No trail is at once multi-region, logging, keeping management events and free of failures, so API calls in some regions reach no alarm.",
        );
        if uncovered.is_empty() {
            message.push_str(
                " Every scanned region has a healthy single-region trail, but regions enabled later and global service events are not covered.",
            );
        } else {
            message.push_str(&format!(
                " Regions without real-time coverage: {}.",
                uncovered.join(", ")
            ));
        }
        if !failing_multi.is_empty() {
            message.push_str(&format!(
                " Fix multi-region trail {} to cover them all.",
                failing_multi.join(", ")
            ));
        }
        reasons.push(Reason::new(ReasonCode::NoRealtimeCoverage, message));
    }
    reasons.extend(guardrail);
    Evaluation::new(
        EvaluationKind::Account,
        Evaluation::account_resource_id(account),
        account,
        &snapshot.home_region,
        reasons,
        settings,
    )
}
