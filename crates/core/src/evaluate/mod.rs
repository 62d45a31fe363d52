//! The rules: from an [`AccountSnapshot`] to one evaluation per trail, per unreadable region,
//! and one for the account.
//!
//! Each family of rules has its own file, which lists the reason codes it gives:
//! [`delivery`] (is the trail logging, and is it delivering, region by region), [`log_group`],
//! [`tamper_alarm`], [`role`], [`selectors`], [`coverage`] and [`guardrail`] (the account's
//! verdict). This file holds the evaluation types and the order in which a trail's rules run.

mod coverage;
mod delivery;
pub mod exemption;
mod guardrail;
mod log_group;
mod role;
mod selectors;
mod tamper_alarm;

pub use coverage::{region_coverage, CoverageState, RegionCoverage};
pub use delivery::{gap_reason, human_duration, stop_occurrence};
pub use selectors::{logs_management_reads, logs_management_writes};

use crate::arn::LogGroupRef;
use crate::reason::{Level, Reason, ReasonCode, Severity, Status};
use crate::snapshot::{AccountSnapshot, RegionSnapshot, Trail, Unavailable};
use chrono::{DateTime, Duration, Utc};
pub use exemption::Exemption;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The knobs of an evaluation. `now` is passed in so the rules stay pure and testable.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_delivery_age: Duration,
    /// How far back a stop of logging that was followed by a start counts as `LOGGING_GAP`.
    pub gap_window: Duration,
    /// When false, WARNING reasons are dropped and only FAIL/ERROR decide.
    pub warnings: bool,
    pub now: DateTime<Utc>,
}

impl Settings {
    /// The hourly scan's own `DescribeTrails` puts a read event in every region every hour;
    /// CloudTrail delivers it to CloudWatch Logs within minutes, and `DescribeLogStreams`
    /// shows it "typically in less than an hour". A region that logs read events is therefore
    /// never more than about two hours quiet while delivery works: four hours is that, doubled.
    pub const DEFAULT_MAX_DELIVERY_AGE_HOURS: i64 = 4;
    pub const DEFAULT_GAP_WINDOW_HOURS: i64 = 24;

    pub fn at(now: DateTime<Utc>) -> Self {
        Self {
            max_delivery_age: Duration::hours(Self::DEFAULT_MAX_DELIVERY_AGE_HOURS),
            gap_window: Duration::hours(Self::DEFAULT_GAP_WINDOW_HOURS),
            warnings: true,
            now,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvaluationKind {
    Trail,
    Account,
    /// A region whose trails could not be listed at all.
    Region,
    /// trailwatch itself (its rules, functions, topic or key), changed by a call. Paged from
    /// the event path, never recorded in Security Hub.
    Monitor,
}

impl EvaluationKind {
    /// The kind as the JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EvaluationKind::Trail => "trail",
            EvaluationKind::Account => "account",
            EvaluationKind::Region => "region",
            EvaluationKind::Monitor => "monitor",
        }
    }
}

/// The trail's own settings, echoed in its evaluation so readers need no second lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailSummary {
    pub name: String,
    pub home_region: String,
    pub is_multi_region: bool,
    pub is_organization_trail: bool,
    pub log_group_arn: Option<String>,
    pub role_arn: Option<String>,
    /// `None` when `GetTrailStatus` could not be read.
    pub is_logging: Option<bool>,
    #[serde(default)]
    pub log_file_validation_enabled: bool,
    #[serde(default)]
    pub s3_bucket_name: Option<String>,
}

/// One verdict: the unit of the JSON output, of a Security Hub finding and of an alert line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub kind: EvaluationKind,
    pub resource_id: String,
    pub account_id: String,
    pub region: String,
    pub status: Status,
    pub severity: Severity,
    pub reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<TrailSummary>,
    /// The trail's `trailwatch:exempt` tag, read as an exemption: current or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<Exemption>,
}

impl Evaluation {
    fn new(
        kind: EvaluationKind,
        resource_id: String,
        account_id: &str,
        region: &str,
        reasons: Vec<Reason>,
        settings: &Settings,
    ) -> Self {
        let reasons: Vec<Reason> = reasons
            .into_iter()
            .filter(|r| {
                settings.warnings || r.level != Level::Warning || r.code.is_about_an_exemption()
            })
            .collect();
        Self {
            kind,
            resource_id,
            account_id: account_id.to_string(),
            region: region.to_string(),
            status: Status::from_reasons(&reasons),
            severity: Severity::worst_of(&reasons),
            reasons,
            trail: None,
            exemption: None,
        }
    }

    /// Whether a person exempted this trail, and the exemption holds now: then it is never
    /// paged, its finding is suppressed and the exit code ignores it.
    pub fn is_exempt(&self) -> bool {
        self.exemption.as_ref().is_some_and(Exemption::is_current)
    }

    /// The reasons that weigh in the verdict: everything but INFO notes.
    pub fn counted_reasons(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().filter(|r| r.level != Level::Info)
    }

    /// Whether something this evaluation needed could not be read. Not the same as an ERROR
    /// status: FAIL outranks ERROR, and an exempt trail's FAIL is a decision, while what could
    /// not be read about it is not.
    pub fn is_incomplete(&self) -> bool {
        self.status == Status::Error || self.reasons.iter().any(|r| r.level == Level::Error)
    }

    pub fn has_reason(&self, code: ReasonCode) -> bool {
        self.reasons.iter().any(|r| r.code == code)
    }

    pub fn account_resource_id(account_id: &str) -> String {
        format!("AWS::::Account:{account_id}")
    }

    /// What is said of a trail that no longer exists: FAIL, HIGH, no reasons (there is nothing
    /// left to judge), filed in its home region.
    pub fn deleted_trail(resource_id: String, account_id: String, trail: TrailSummary) -> Self {
        Evaluation {
            kind: EvaluationKind::Trail,
            resource_id,
            account_id,
            region: trail.home_region.clone(),
            status: Status::Fail,
            severity: Severity::High,
            reasons: vec![],
            trail: Some(trail),
            exemption: None,
        }
    }
}

/// A trail as the scan sees it once shadow copies are folded away.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailView {
    pub trail: Trail,
    /// False for an organisation trail that the management account owns, seen from a member.
    pub owned: bool,
}

/// Folds the per-region `DescribeTrails` answers into one entry per trail ARN.
///
/// A multi-region trail shows up in every region; the copy from its home region is preferred,
/// and a copy seen elsewhere still counts, so a trail whose home region was not scanned (or
/// could not be listed) is still evaluated there.
pub fn unique_trails(regions: &[RegionSnapshot], account_id: &str) -> Vec<TrailView> {
    // Keyed by ARN: a linear search per trail made 10,000 trails take a second.
    let mut views: BTreeMap<&str, TrailView> = BTreeMap::new();
    for region in regions {
        let Ok(trails) = &region.trails else { continue };
        for trail in trails {
            let seen_at_home = trail.home_region == region.region;
            match views.get_mut(trail.trail_arn.as_str()) {
                Some(existing) if seen_at_home => existing.trail = trail.clone(),
                Some(_) => {}
                None => {
                    views.insert(
                        &trail.trail_arn,
                        TrailView {
                            owned: judged_here(trail, account_id),
                            trail: trail.clone(),
                        },
                    );
                }
            }
        }
    }
    // Sorted by ARN, as the map keeps them.
    views.into_values().collect()
}

/// Whether `account` judges `trail` in full: its own trails, and an organisation trail whose
/// log group or role lives here. The management account owns every organisation trail, also
/// those a delegated administrator created ("The management account remains the owner of any
/// CloudTrail organization resources the delegated administrator creates"), but only the
/// account holding the log group and role can read them.
fn judged_here(trail: &Trail, account: &str) -> bool {
    trail.owner_account() == Some(account)
        || (trail.is_organization_trail
            && (trail.log_group().is_some_and(|g| g.account == account)
                || trail.role().is_some_and(|r| r.account == account)))
}

/// Every evaluation for one account: trails, unreadable regions, then the account.
pub fn evaluate_account(snapshot: &AccountSnapshot, settings: &Settings) -> Vec<Evaluation> {
    let views = unique_trails(&snapshot.regions, &snapshot.account_id);
    let scanned: Vec<&str> = snapshot.regions.iter().map(|r| r.region.as_str()).collect();
    let mut evaluations: Vec<Evaluation> = views
        .iter()
        .filter(|v| v.owned)
        .map(|v| evaluate_trail(&v.trail, snapshot, settings))
        .collect();
    evaluations.extend(snapshot.regions.iter().filter_map(|region| {
        let failure = region.trails.as_ref().err()?;
        Some(Evaluation::new(
            EvaluationKind::Region,
            Evaluation::account_resource_id(&snapshot.account_id),
            &snapshot.account_id,
            &region.region,
            vec![Reason::new(
                ReasonCode::EvaluationIncomplete,
                format!(
                    "Trails in {} could not be listed ({}); trails homed there are unchecked.",
                    region.region,
                    failure.describe()
                ),
            )],
            settings,
        ))
    }));
    let trails: Vec<&str> = views.iter().map(|v| v.trail.trail_arn.as_str()).collect();
    let guardrail = guardrail::guardrail_reasons(snapshot, &trails);
    let account = coverage::coverage_evaluation(
        snapshot,
        &views,
        &evaluations,
        &scanned,
        guardrail,
        settings,
    );
    evaluations.push(account);
    evaluations
}

/// Evaluates one trail in its home region against every trail-level rule.
pub fn evaluate_trail(
    trail: &Trail,
    snapshot: &AccountSnapshot,
    settings: &Settings,
) -> Evaluation {
    let details = snapshot.trail_details.get(&trail.trail_arn);
    let status = details.map(|d| &d.status);
    let mut reasons = Vec::new();

    // Silence from a trail that logs read events is a failure (trailwatch's own hourly reads
    // make one in every region); a write-only trail's quiet may be real.
    let quiet_level = match details.map(|d| &d.event_selectors) {
        Some(Ok(selectors)) if !logs_management_reads(selectors) => Level::Warning,
        _ => Level::Fail,
    };
    delivery::logging_reasons(trail, status, settings, &mut reasons);
    match trail.cloud_watch_logs_log_group_arn.as_deref() {
        None => reasons.push(log_group::not_configured(trail)),
        Some(group_arn) => {
            delivery::delivery_reasons(trail, details, settings, quiet_level, &mut reasons);
            match LogGroupRef::from_arn(group_arn) {
                None => reasons.push(log_group::not_a_log_group(trail, group_arn)),
                Some(group) => {
                    log_group::log_group_reasons(trail, &group, snapshot, &mut reasons);
                    if group.account == snapshot.account_id {
                        let status = status.and_then(|s| s.as_ref().ok());
                        delivery::region_silence_reasons(
                            trail,
                            &group,
                            snapshot,
                            status,
                            settings,
                            quiet_level,
                            &mut reasons,
                        );
                    }
                    role::role_reasons(trail, &group, snapshot, &mut reasons);
                }
            }
        }
    }
    selectors::selector_reasons(trail, details, &mut reasons);
    delivery::validation_reasons(trail, &mut reasons);
    let exemption = exemption::exemption_of(
        details.and_then(|d| d.tags.as_ref()),
        settings.now,
        &mut reasons,
    );

    let mut evaluation = Evaluation::new(
        EvaluationKind::Trail,
        trail.trail_arn.clone(),
        &snapshot.account_id,
        &trail.home_region,
        reasons,
        settings,
    );
    evaluation.trail = Some(TrailSummary {
        name: trail.name.clone(),
        home_region: trail.home_region.clone(),
        is_multi_region: trail.is_multi_region_trail,
        is_organization_trail: trail.is_organization_trail,
        log_group_arn: trail.cloud_watch_logs_log_group_arn.clone(),
        role_arn: trail.cloud_watch_logs_role_arn.clone(),
        is_logging: status.and_then(|s| s.as_ref().ok()).map(|s| s.is_logging),
        log_file_validation_enabled: trail.log_file_validation_enabled,
        s3_bucket_name: trail.s3_bucket_name.clone(),
    });
    evaluation.exemption = exemption;
    evaluation
}

/// The reason for data a rule needed and could not read.
fn incomplete(what: &str, why: &Unavailable) -> Reason {
    Reason::new(
        ReasonCode::EvaluationIncomplete,
        format!("Could not read {what}: {}.", why.describe()),
    )
}

#[cfg(test)]
mod tests;
