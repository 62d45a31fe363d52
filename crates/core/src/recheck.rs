//! What one change event touched: the trails to re-evaluate after a CloudTrail, CloudWatch Logs
//! or IAM call, and the trail that may be gone.
//!
//! The event names a trail (by name or ARN), a log group or a role. A trail name is only unique
//! within its home region, and CloudTrail only accepts changes to a trail in that region, so a
//! bare name is resolved in the event's region. A log group is regional; a role is global, so a
//! role event (which IAM always delivers in us-east-1) touches trails in every region.

use crate::arn::{Arn, LogGroupRef, RoleRef};
use crate::evaluate::{Evaluation, EvaluationKind, TrailSummary};
use crate::event::{Change, Target};

use crate::memory::Remembered;
use crate::reconcile::Candidate;
use std::collections::BTreeSet;

/// The evaluations a change touched, out of a whole account's.
#[derive(Debug, Clone, PartialEq)]
pub struct Focus {
    /// The trails the change touched. The account verdict is kept too: every trail change can
    /// move the account's coverage.
    pub evaluations: Vec<Evaluation>,
    /// The trail the event named when no evaluation matches it: deleted, or never existed.
    pub missing_trail: Option<String>,
}

impl Focus {
    /// Whether the event touched a trail that still exists.
    pub fn touched_a_trail(&self) -> bool {
        self.evaluations
            .iter()
            .any(|e| e.kind == EvaluationKind::Trail)
    }

    /// Trails whose findings a re-check may archive: only the one the event named.
    pub fn vanished(&self) -> BTreeSet<String> {
        self.missing_trail.iter().cloned().collect()
    }
}

/// The ARN of the trail an event names, resolving a bare name in the event's region.
pub fn trail_arn(change: &Change, partition: &str, name_or_arn: &str) -> String {
    if Arn::parse(name_or_arn).is_some() {
        return name_or_arn.to_string();
    }
    format!(
        "arn:{partition}:cloudtrail:{}:{}:trail/{name_or_arn}",
        change.region, change.account
    )
}

/// The region whose trails must have been listed to re-check this change, if it has one
/// (a role is global).
pub fn target_region(change: &Change) -> Option<String> {
    match &change.target {
        Target::Trail { name_or_arn, .. } => Some(
            Arn::parse(name_or_arn)
                .map(|a| a.region.to_string())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| change.region.clone()),
        ),
        Target::LogGroup { .. } => Some(change.region.clone()),
        Target::Role { .. } => None,
    }
}

fn delivers_to_log_group(trail: &TrailSummary, region: &str, name: &str) -> bool {
    trail
        .log_group_arn
        .as_deref()
        .and_then(LogGroupRef::from_arn)
        .is_some_and(|group| group.name == name && group.region == region)
}

fn uses_role(trail: &TrailSummary, name: &str) -> bool {
    trail
        .role_arn
        .as_deref()
        .and_then(RoleRef::from_arn)
        // IAM role names are unique case-insensitively.
        .is_some_and(|role| role.name.eq_ignore_ascii_case(name))
}

/// Picks, out of a whole account's `evaluations`, what `change` touched.
pub fn select(change: &Change, evaluations: &[Evaluation], partition: &str) -> Focus {
    let touched = |e: &Evaluation| -> bool {
        let Some(trail) = &e.trail else { return false };
        match &change.target {
            Target::Trail { name_or_arn, .. } => {
                e.resource_id == trail_arn(change, partition, name_or_arn)
            }
            Target::LogGroup { name } => delivers_to_log_group(trail, &change.region, name),
            Target::Role { name } => uses_role(trail, name),
        }
    };
    let mut selected: Vec<Evaluation> = evaluations
        .iter()
        .filter(|e| e.kind == EvaluationKind::Trail && touched(e))
        .cloned()
        .collect();
    let missing_trail = match &change.target {
        Target::Trail { name_or_arn, .. } if selected.is_empty() => {
            Some(trail_arn(change, partition, name_or_arn))
        }
        _ => None,
    };
    selected.extend(
        evaluations
            .iter()
            .filter(|e| e.kind == EvaluationKind::Account)
            .cloned(),
    );
    Focus {
        evaluations: selected,
        missing_trail,
    }
}

/// A DeleteTrail's page candidate, for when Security Hub does not remember the trail (off, or
/// not enabled in its region): without a finding to archive, the event itself is the
/// evidence, and a deleted trail must never go unreported.
pub fn deletion_candidate(change: &Change, trail_arn: &str) -> Candidate {
    let parsed = Arn::parse(trail_arn);
    let region = parsed
        .as_ref()
        .map(|a| a.region.to_string())
        .unwrap_or_else(|| change.region.clone());
    let name = trail_arn
        .rsplit('/')
        .next()
        .unwrap_or(trail_arn)
        .to_string();
    let evaluation = Evaluation::deleted_trail(
        trail_arn.to_string(),
        change.account.clone(),
        TrailSummary {
            name,
            home_region: region,
            is_multi_region: false,
            is_organization_trail: false,
            log_group_arn: None,
            role_arn: None,
            is_logging: None,
            log_file_validation_enabled: false,
            s3_bucket_name: None,
        },
    );
    Candidate {
        finding_id: crate::finding::finding_id(&evaluation),
        evaluation,
        state: Remembered::Archived,
        hub: None,
        unrecorded: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse;
    use crate::reason::ReasonCode;
    use crate::reason::{Severity, Status};
    use crate::reconcile::TransitionKind;
    use crate::test_support::trail_evaluation;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../fixtures/events/", $name))
        };
    }

    fn account_evaluation() -> Evaluation {
        Evaluation {
            kind: EvaluationKind::Account,
            resource_id: Evaluation::account_resource_id("111122223333"),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            status: Status::Pass,
            severity: Severity::Informational,
            reasons: vec![],
            trail: None,
        }
    }

    fn delivering(name: &str, region: &str, group: &str, role: &str) -> Evaluation {
        let mut e = trail_evaluation(name, &[]);
        e.region = region.into();
        e.resource_id = format!("arn:aws:cloudtrail:{region}:111122223333:trail/{name}");
        let trail = e.trail.as_mut().unwrap();
        trail.home_region = region.into();
        trail.log_group_arn = Some(format!(
            "arn:aws:logs:{region}:111122223333:log-group:{group}:*"
        ));
        trail.role_arn = Some(format!("arn:aws:iam::111122223333:role/{role}"));
        e
    }

    fn names(focus: &Focus) -> Vec<String> {
        focus
            .evaluations
            .iter()
            .map(|e| {
                e.trail
                    .as_ref()
                    .map_or("<account>".to_string(), |t| t.name.clone())
            })
            .collect()
    }

    #[test]
    fn a_trail_named_by_arn_selects_that_trail_and_the_account() {
        let change = parse(fixture!("stop_logging.json")).unwrap();
        let evaluations = [
            trail_evaluation("management-events", &[ReasonCode::LoggingStopped]),
            trail_evaluation("other", &[]),
            account_evaluation(),
        ];
        let focus = select(&change, &evaluations, "aws");
        assert_eq!(names(&focus), ["management-events", "<account>"]);
        assert_eq!(focus.missing_trail, None);
        assert!(focus.touched_a_trail());
    }

    #[test]
    fn a_bare_name_resolves_in_the_event_region_only() {
        // The DeleteTrail fixture names `legacy-archive` in eu-west-1.
        let change = parse(fixture!("delete_trail.json")).unwrap();
        let same_name_elsewhere = trail_evaluation("legacy-archive", &[]);
        let focus = select(&change, &[same_name_elsewhere, account_evaluation()], "aws");
        assert_eq!(names(&focus), ["<account>"]);
        assert_eq!(
            focus.missing_trail.as_deref(),
            Some("arn:aws:cloudtrail:eu-west-1:111122223333:trail/legacy-archive")
        );
        assert!(!focus.touched_a_trail());
        assert_eq!(focus.vanished().len(), 1);
    }

    #[test]
    fn a_log_group_event_selects_every_trail_delivering_there() {
        let change = parse(fixture!("delete_log_group.json")).unwrap();
        let group = "aws-cloudtrail-logs-111122223333";
        let evaluations = [
            delivering("a", &change.region, group, "r"),
            delivering("b", &change.region, group, "r"),
            delivering("c", &change.region, "another-group", "r"),
            delivering("d", "ap-south-1", group, "r"),
            account_evaluation(),
        ];
        let focus = select(&change, &evaluations, "aws");
        assert_eq!(names(&focus), ["a", "b", "<account>"]);
        assert_eq!(focus.missing_trail, None);
    }

    #[test]
    fn a_role_event_selects_trails_in_every_region() {
        let change = parse(fixture!("put_role_policy.json")).unwrap();
        let role = "CloudTrailRoleForCloudWatchLogs";
        let evaluations = [
            delivering("a", "us-east-1", "g", role),
            delivering("b", "eu-west-1", "g", &role.to_lowercase()),
            delivering("c", "eu-west-1", "g", "SomeOtherRole"),
        ];
        let focus = select(&change, &evaluations, "aws");
        assert_eq!(names(&focus), ["a", "b"]);
        assert_eq!(target_region(&change), None);
    }

    #[test]
    fn the_target_region_follows_an_arn_over_the_event_region() {
        let mut change = parse(fixture!("stop_logging.json")).unwrap();
        change.region = "eu-west-1".into();
        assert_eq!(target_region(&change).as_deref(), Some("us-east-1"));
    }

    #[test]
    fn a_forgotten_deletion_is_still_a_high_alert_for_that_trail() {
        let change = parse(fixture!("delete_trail.json")).unwrap();
        let arn = "arn:aws:cloudtrail:eu-west-1:111122223333:trail/legacy-archive";
        let transition = deletion_candidate(&change, arn)
            .hub_transition()
            .expect("a deletion nothing remembers is paged");
        assert_eq!(transition.kind, TransitionKind::Deleted);
        assert_eq!(transition.severity(), Severity::High);
        assert_eq!(transition.evaluation.region, "eu-west-1");
        assert_eq!(
            transition.evaluation.trail.as_ref().unwrap().name,
            "legacy-archive"
        );
        assert_eq!(
            transition.finding_id,
            format!("trailwatch/111122223333/eu-west-1/cloudtrail-cloudwatch-logs/{arn}")
        );
    }
}
