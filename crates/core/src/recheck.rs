//! What one change event touched: the trails to re-evaluate after a call, what the call itself
//! proves, and the trail that may be gone.
//!
//! The event names a trail (by name or ARN), a log group, a role, a managed policy, alarms, a
//! KMS key, or a piece of trailwatch itself. A trail name is only unique within its home
//! region, and CloudTrail only accepts changes to a trail in that region, so a bare name is
//! resolved in the event's region. A log group, an alarm and a key are regional; a role and a
//! policy are global, so an IAM event (which IAM always delivers in us-east-1) touches trails in
//! every region. Which trails an event concerns is decided from the trail listing and a few
//! targeted reads (`trailwatch-aws`'s flow makes them), before anything is read in full.

use crate::arn::{Arn, LogGroupRef, RoleRef};
use crate::evaluate::{Evaluation, EvaluationKind, TrailSummary, TrailView};
use crate::event::{Change, Target};
use crate::memory::Remembered;
use crate::policy::glob_match;
use crate::reason::{Reason, ReasonCode, Severity, Status};
use crate::reconcile::Candidate;
use chrono::{DateTime, Utc};
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

/// The region of an ARN the event names, else the event's own.
fn region_of(change: &Change, arn: &str) -> String {
    Arn::parse(arn)
        .map(|a| a.region.to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| change.region.clone())
}

/// The region whose trails must have been listed to re-check this change, if it has one
/// (a role and a policy are global).
pub fn target_region(change: &Change) -> Option<String> {
    match &change.target {
        Target::Trail { name_or_arn, .. } => Some(region_of(change, name_or_arn)),
        Target::Key { id } => Some(region_of(change, id)),
        Target::Topic { arn } => Some(region_of(change, arn)),
        Target::LogGroup { .. }
        | Target::Alarms { .. }
        | Target::Rule { .. }
        | Target::Function { .. } => Some(change.region.clone()),
        Target::Role { .. } | Target::Policy { .. } => None,
    }
}

/// Whether `trail` delivers to log group `name` in `region`.
pub fn delivers_to_log_group(trail: &crate::snapshot::Trail, region: &str, name: &str) -> bool {
    trail
        .log_group()
        .is_some_and(|group| group.name == name && group.region == region)
}

/// Whether `trail` delivers through the role named `name`.
pub fn uses_role(trail: &crate::snapshot::Trail, name: &str) -> bool {
    // IAM role names are unique case-insensitively.
    trail
        .role()
        .is_some_and(|role| role.name.eq_ignore_ascii_case(name))
}

/// The trails of `views` this account judges, the ones an event can concern.
pub fn judged(views: &[TrailView]) -> impl Iterator<Item = &crate::snapshot::Trail> {
    views.iter().filter(|v| v.owned).map(|v| &v.trail)
}

/// The log groups in `region` that the judged trails deliver to, in this account.
pub fn log_groups_in(views: &[TrailView], region: &str, account: &str) -> BTreeSet<LogGroupRef> {
    judged(views)
        .filter_map(|t| t.log_group())
        .filter(|g| g.region == region && g.account == account)
        .collect()
}

/// The delivery roles of the judged trails, in this account.
pub fn delivery_roles(views: &[TrailView], account: &str) -> BTreeSet<RoleRef> {
    judged(views)
        .filter(|t| t.cloud_watch_logs_log_group_arn.is_some())
        .filter_map(|t| t.role())
        .filter(|r| r.account == account)
        .collect()
}

/// The judged trails that deliver to one of `groups`, by ARN.
pub fn trails_delivering_to(
    views: &[TrailView],
    groups: &BTreeSet<LogGroupRef>,
) -> BTreeSet<String> {
    judged(views)
        .filter(|t| t.log_group().is_some_and(|g| groups.contains(&g)))
        .map(|t| t.trail_arn.clone())
        .collect()
}

/// The judged trails that deliver through one of `roles`, by ARN.
pub fn trails_using(views: &[TrailView], roles: &BTreeSet<RoleRef>) -> BTreeSet<String> {
    judged(views)
        .filter(|t| {
            roles.iter().any(|r| {
                uses_role(t, &r.name) && t.role().is_some_and(|own| own.account == r.account)
            })
        })
        .map(|t| t.trail_arn.clone())
        .collect()
}

/// Whether a log group's `kmsKeyId` is the key an event names. A key named by alias cannot be
/// told apart without a read, so it counts as a match: a re-check too many beats a page lost.
pub fn same_key(group_key: &str, event_key: &str) -> bool {
    let id = |key: &str| key.rsplit(['/', ':']).next().unwrap_or(key).to_string();
    event_key.starts_with("alias/")
        || event_key.contains(":alias/")
        || id(group_key) == id(event_key)
}

/// What an event concerns, decided from the trail listing alone where it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// These trails, by ARN (none, for a trail deleted by the event).
    Trails(BTreeSet<String>),
    /// A targeted read decides, among the trails it may concern.
    Lookup(Lookup),
    /// Nothing trailwatch watches: why, for the log.
    Skip(String),
}

/// The targeted read that decides what an event concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Which of `roles` hold managed policy `policy`, attached or as permissions boundary.
    PolicyHolders {
        policy: String,
        roles: BTreeSet<RoleRef>,
    },
    /// Which of `groups` (all in `region`) have a metric filter whose metric one of `alarms`
    /// watches.
    AlarmedGroups {
        region: String,
        alarms: Vec<String>,
        groups: BTreeSet<LogGroupRef>,
    },
    /// Which of `groups` key `key` encrypts.
    GroupKeys {
        key: String,
        groups: BTreeSet<LogGroupRef>,
    },
}

impl Lookup {
    /// What the event concerns when the read could not be made: everything it may concern.
    /// A re-check too many is cheap; a page lost is not.
    pub fn unanswered(&self, views: &[TrailView]) -> BTreeSet<String> {
        match self {
            Lookup::PolicyHolders { roles, .. } => trails_using(views, roles),
            Lookup::AlarmedGroups { groups, .. } | Lookup::GroupKeys { groups, .. } => {
                trails_delivering_to(views, groups)
            }
        }
    }
}

/// Decides what `change` concerns among the trails this account listed (`views`).
pub fn resolve(change: &Change, views: &[TrailView], account: &str, partition: &str) -> Resolution {
    let none = |what: String| Resolution::Skip(what);
    match &change.target {
        Target::Trail {
            name_or_arn,
            deleted,
        } => {
            let arn = trail_arn(change, partition, name_or_arn);
            match judged(views).any(|t| t.trail_arn == arn) || *deleted {
                true => Resolution::Trails(BTreeSet::from([arn])),
                false => none(format!(
                    "trail {name_or_arn} does not exist (any more); its DeleteTrail event or the next scheduled scan closes its finding"
                )),
            }
        }
        Target::LogGroup { name } => {
            let trails: BTreeSet<String> = judged(views)
                .filter(|t| delivers_to_log_group(t, &change.region, name))
                .map(|t| t.trail_arn.clone())
                .collect();
            match trails.is_empty() {
                true => none(format!(
                    "no trail in {} delivers to log group {name}",
                    change.region
                )),
                false => Resolution::Trails(trails),
            }
        }
        Target::Role { name } => {
            let trails: BTreeSet<String> = judged(views)
                .filter(|t| uses_role(t, name))
                .map(|t| t.trail_arn.clone())
                .collect();
            match trails.is_empty() {
                true => none(format!("no trail delivers through role {name}")),
                false => Resolution::Trails(trails),
            }
        }
        Target::Policy { arn } => {
            let roles = delivery_roles(views, account);
            match roles.is_empty() {
                true => none(format!(
                    "no trail delivers through a role of this account, so policy {arn} concerns none"
                )),
                false => Resolution::Lookup(Lookup::PolicyHolders {
                    policy: arn.clone(),
                    roles,
                }),
            }
        }
        Target::Alarms { names } => {
            let groups = log_groups_in(views, &change.region, account);
            if groups.is_empty() {
                return none(format!(
                    "no trail delivers to a log group in {}, so alarms {} concern none",
                    change.region,
                    names.join(", ")
                ));
            }
            // A deleted alarm cannot be read any more: it may have been a tamper alarm.
            match change.actor.event_name.as_str() {
                "DeleteAlarms" => Resolution::Trails(trails_delivering_to(views, &groups)),
                _ => Resolution::Lookup(Lookup::AlarmedGroups {
                    region: change.region.clone(),
                    alarms: names.clone(),
                    groups,
                }),
            }
        }
        Target::Key { id } => {
            let region = region_of(change, id);
            let groups = log_groups_in(views, &region, account);
            match groups.is_empty() {
                true => none(format!(
                    "key {id} is not trailwatch's, and no trail delivers to a log group in {region}"
                )),
                false => Resolution::Lookup(Lookup::GroupKeys {
                    key: id.clone(),
                    groups,
                }),
            }
        }
        // A topic may be where a tamper alarm pages; whether it is, the re-check reads.
        Target::Topic { arn } => {
            let region = region_of(change, arn);
            let groups = log_groups_in(views, &region, account);
            match groups.is_empty() {
                true => none(format!(
                    "topic {arn} is not trailwatch's, and no trail delivers to a log group in {region}"
                )),
                false => Resolution::Trails(trails_delivering_to(views, &groups)),
            }
        }
        Target::Rule { name, .. } => none(format!("rule {name} is not one of trailwatch's")),
        Target::Function { name } => none(format!("function {name} is not one of trailwatch's")),
    }
}

/// Picks, out of a whole account's `evaluations`, the trails in `concerned` (by ARN), and the
/// account's verdict.
pub fn select(
    change: &Change,
    evaluations: &[Evaluation],
    partition: &str,
    concerned: &BTreeSet<String>,
) -> Focus {
    let mut selected: Vec<Evaluation> = evaluations
        .iter()
        .filter(|e| e.kind == EvaluationKind::Trail && concerned.contains(&e.resource_id))
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

/// A StopLogging event and a stop time of the trail's status this close are the same stop.
const SAME_STOP_SECONDS: i64 = 5;

/// What a StopLogging event proves whatever the trail's state now: the trail was stopped at the
/// event's time. When the re-read evaluation does not show that stop (the trail was started
/// again and stopped once more since, or its status could not be read), it gains the
/// `LOGGING_GAP` the event proves, so a StopLogging always pages HIGH.
pub fn stop_evidence(change: &Change, evaluations: &mut [Evaluation], partition: &str) {
    let Target::Trail { name_or_arn, .. } = &change.target else {
        return;
    };
    if change.actor.event_name != "StopLogging" {
        return;
    }
    let Some(stopped) = change
        .actor
        .event_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
    else {
        return;
    };
    let arn = trail_arn(change, partition, name_or_arn);
    let Some(evaluation) = evaluations.iter_mut().find(|e| e.resource_id == arn) else {
        return;
    };
    // The event's time is when the call came in, CloudTrail's stop time when it took effect:
    // a few seconds apart at most for the same stop.
    let same_stop = |occurrence: &str| {
        DateTime::parse_from_rfc3339(occurrence).is_ok_and(|t| {
            (t.with_timezone(&Utc) - stopped).num_seconds().abs() <= SAME_STOP_SECONDS
        })
    };
    let shown = evaluation.reasons.iter().any(|r| {
        matches!(r.code, ReasonCode::LoggingStopped | ReasonCode::LoggingGap)
            && r.occurrence.as_deref().is_some_and(same_stop)
    });
    let Some(trail) = evaluation.trail.as_ref() else {
        return;
    };
    if shown {
        return;
    }
    let reason = crate::evaluate::gap_reason(&trail.name, &trail.home_region, stopped, None);
    evaluation.reasons.push(reason);
    evaluation.status = Status::from_reasons(&evaluation.reasons);
    evaluation.severity = Severity::worst_of(&evaluation.reasons);
}

/// `TRAILWATCH_AUTO_REMEDIATE`: what the event path undoes by itself. Off unless asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoRemediation {
    /// `start-logging`: restart a trail that was stopped.
    pub start_logging: bool,
    /// `TRAILWATCH_AUTO_REMEDIATE_EXEMPT`: principals allowed to stop trails, as ARN patterns
    /// (`*` and `?` wildcards), matched against the caller's ARN and, for an assumed role,
    /// the role's own ARN.
    pub exempt: Vec<String>,
}

/// A trail to start again: its ARN and home region, where `StartLogging` must be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartTarget {
    pub trail_arn: String,
    pub region: String,
}

/// What the event path did about a stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    Restarted { at: DateTime<Utc> },
    Failed { why: String },
}

/// `arn:aws:sts::A:assumed-role/R/S` as the role it is, `arn:aws:iam::A:role/R`.
fn role_of_session(arn: &str) -> Option<String> {
    let parsed = Arn::parse(arn)?;
    let rest = parsed.resource.strip_prefix("assumed-role/")?;
    let role = rest.split('/').next()?;
    Some(format!(
        "arn:{}:iam::{}:role/{role}",
        parsed.partition, parsed.account
    ))
}

impl AutoRemediation {
    /// The trail to restart for this change: a StopLogging by anyone the exempt patterns do
    /// not name. A caller whose ARN the event does not give is not exempt.
    pub fn restart_for(&self, change: &Change, partition: &str) -> Option<RestartTarget> {
        if !self.start_logging || change.actor.event_name != "StopLogging" {
            return None;
        }
        let Target::Trail { name_or_arn, .. } = &change.target else {
            return None;
        };
        if let Some(caller) = change.actor.arn.as_deref() {
            let names = [Some(caller.to_string()), role_of_session(caller)];
            let exempt = self.exempt.iter().any(|pattern| {
                names
                    .iter()
                    .flatten()
                    .any(|name| glob_match(pattern, name, false))
            });
            if exempt {
                return None;
            }
        }
        let trail_arn = trail_arn(change, partition, name_or_arn);
        Some(RestartTarget {
            region: region_of(change, &trail_arn),
            trail_arn,
        })
    }
}

/// Says in the stop's reason what the event path did: the page and the finding then tell
/// whoever reads them that the trail was restarted, or that the restart failed, and who had
/// stopped it. The reason's code and occurrence stay, so the page is remembered as before.
pub fn note_restart(
    change: &Change,
    restart: &Restart,
    evaluations: &mut [Evaluation],
    partition: &str,
) {
    let Target::Trail { name_or_arn, .. } = &change.target else {
        return;
    };
    let arn = trail_arn(change, partition, name_or_arn);
    let Some(evaluation) = evaluations.iter_mut().find(|e| e.resource_id == arn) else {
        return;
    };
    let by = change.actor.arn.as_deref().unwrap_or("an unknown caller");
    let note = match restart {
        Restart::Restarted { at } => format!(
            " trailwatch started it again at {} (TRAILWATCH_AUTO_REMEDIATE=start-logging); it had been stopped by {by}.",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        Restart::Failed { why } => format!(
            " trailwatch could not start it again ({why}); it was stopped by {by}. Start it by hand."
        ),
    };
    if let Some(reason) = evaluation
        .reasons
        .iter_mut()
        .filter(|r| matches!(r.code, ReasonCode::LoggingStopped | ReasonCode::LoggingGap))
        .max_by(|a, b| a.occurrence.cmp(&b.occurrence))
    {
        reason.message.push_str(&note);
    }
}

/// Which of trailwatch's own resources its configuration names, as ARN patterns (`*` and `?`
/// wildcards): its rules, functions, topics and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorResources {
    pub patterns: Vec<String>,
}

impl MonitorResources {
    pub fn owns(&self, arn: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, arn, false))
    }
}

/// The ARN of the rule, function, topic or key an event is about, when it is one of those.
pub fn resource_arn(change: &Change, partition: &str) -> Option<String> {
    let (region, account) = (&change.region, &change.account);
    Some(match &change.target {
        Target::Rule { name, bus } => match bus.as_deref().filter(|b| *b != "default") {
            // A bus may be named by ARN; its name is the last part.
            Some(bus) => {
                let bus = bus.rsplit('/').next().unwrap_or(bus);
                format!("arn:{partition}:events:{region}:{account}:rule/{bus}/{name}")
            }
            None => format!("arn:{partition}:events:{region}:{account}:rule/{name}"),
        },
        Target::Function { name } => {
            // A name, `ACCOUNT:function:NAME`, or a full ARN, perhaps with a version.
            let bare = name
                .split(":function:")
                .nth(1)
                .unwrap_or(name)
                .split(':')
                .next()
                .unwrap_or(name);
            format!("arn:{partition}:lambda:{region}:{account}:function:{bare}")
        }
        Target::Topic { arn } => arn.clone(),
        Target::Key { id } if Arn::parse(id).is_some() => id.clone(),
        Target::Key { id } => format!("arn:{partition}:kms:{region}:{account}:key/{id}"),
        _ => return None,
    })
}

/// What each call does to the monitor, for the page.
fn consequence(change: &Change) -> &'static str {
    match change.actor.event_name.as_str() {
        "DisableRule" | "DeleteRule" | "RemoveTargets" => {
            "the rule no longer invokes trailwatch, so what it watched goes unseen"
        }
        n if n.starts_with("DeleteFunction") => {
            "the function is gone, so its scans or re-checks no longer run"
        }
        n if n.starts_with("PutFunctionConcurrency") => {
            "a reserved concurrency of 0 stops the function from running at all"
        }
        "DeleteTopic" | "SetTopicAttributes" => {
            "pages through this topic may no longer reach anyone"
        }
        _ => "the topic, queues and ledger it encrypts stop working once the key cannot be used, and with them every page",
    }
}

/// The page for a call that changed trailwatch itself: a candidate never recorded in Security
/// Hub, remembered per resource and event, so a redelivered event pages once.
pub fn monitor_page(change: &Change, resource: &str, home_region: &str) -> Candidate {
    let reason = Reason::new(
        ReasonCode::MonitorTampered,
        format!(
            "{} on trailwatch's own {resource}: {}. Undo it (redeploy the stack) and find out why it was done.",
            change.actor.event_name,
            consequence(change),
        ),
    )
    .occurring(change.event_id.clone());
    let reasons = vec![reason];
    let evaluation = Evaluation {
        kind: EvaluationKind::Monitor,
        resource_id: resource.to_string(),
        account_id: change.account.clone(),
        region: home_region.to_string(),
        status: Status::Fail,
        severity: Severity::worst_of(&reasons),
        reasons,
        trail: None,
        exemption: None,
    };
    Candidate {
        finding_id: crate::finding::finding_id(&evaluation),
        state: Remembered::of(&evaluation),
        evaluation,
        hub: None,
        unrecorded: true,
        suppressed: None,
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
        suppressed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse;
    use crate::reason::ReasonCode;
    use crate::reason::{Severity, Status};
    use crate::reconcile::TransitionKind;
    use crate::snapshot::Trail;
    use crate::test_support::trail_evaluation;

    const ACCOUNT: &str = "111122223333";

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../fixtures/events/", $name))
        };
    }

    fn account_evaluation() -> Evaluation {
        Evaluation {
            kind: EvaluationKind::Account,
            resource_id: Evaluation::account_resource_id(ACCOUNT),
            account_id: ACCOUNT.into(),
            region: "us-east-1".into(),
            status: Status::Pass,
            severity: Severity::Informational,
            reasons: vec![],
            trail: None,
            exemption: None,
        }
    }

    fn view(name: &str, region: &str, group: &str, role: &str) -> TrailView {
        TrailView {
            owned: true,
            trail: Trail {
                name: name.into(),
                trail_arn: format!("arn:aws:cloudtrail:{region}:{ACCOUNT}:trail/{name}"),
                home_region: region.into(),
                is_multi_region_trail: false,
                is_organization_trail: false,
                cloud_watch_logs_log_group_arn: Some(format!(
                    "arn:aws:logs:{region}:{ACCOUNT}:log-group:{group}:*"
                )),
                cloud_watch_logs_role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/{role}")),
                log_file_validation_enabled: true,
                has_custom_event_selectors: false,
                s3_bucket_name: None,
                include_global_service_events: true,
                s3_key_prefix: None,
                kms_key_id: None,
                sns_topic_arn: None,
            },
        }
    }

    /// The trails' names, sorted.
    fn names(trails: &BTreeSet<String>) -> Vec<&str> {
        let mut names: Vec<&str> = trails
            .iter()
            .map(|arn| arn.rsplit('/').next().unwrap())
            .collect();
        names.sort();
        names
    }

    fn resolved(change: &Change, views: &[TrailView]) -> Resolution {
        resolve(change, views, ACCOUNT, "aws")
    }

    fn event(name: &'static [u8], edit: impl FnOnce(&mut serde_json::Value)) -> Change {
        let mut event: serde_json::Value = serde_json::from_slice(name).unwrap();
        edit(&mut event);
        parse(event.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_trail_named_by_arn_selects_that_trail_and_the_account() {
        let change = parse(fixture!("stop_logging.json")).unwrap();
        let views = [
            view("management-events", "us-east-1", "g", "r"),
            view("other", "us-east-1", "g", "r"),
        ];
        let Resolution::Trails(concerned) = resolved(&change, &views) else {
            panic!("a listed trail is concerned");
        };
        assert_eq!(names(&concerned), ["management-events"]);
        let evaluations = [
            trail_evaluation("management-events", &[ReasonCode::LoggingStopped]),
            trail_evaluation("other", &[]),
            account_evaluation(),
        ];
        let focus = select(&change, &evaluations, "aws", &concerned);
        assert_eq!(focus.evaluations.len(), 2);
        assert_eq!(focus.missing_trail, None);
        assert!(focus.touched_a_trail());
    }

    #[test]
    fn a_bare_name_resolves_in_the_event_region_only() {
        // The DeleteTrail fixture names `legacy-archive` in eu-west-1.
        let change = parse(fixture!("delete_trail.json")).unwrap();
        let same_name_elsewhere = view("legacy-archive", "us-east-1", "g", "r");
        let Resolution::Trails(concerned) = resolved(&change, &[same_name_elsewhere]) else {
            panic!("a deletion is always looked at");
        };
        let focus = select(
            &change,
            &[
                trail_evaluation("legacy-archive", &[]),
                account_evaluation(),
            ],
            "aws",
            &concerned,
        );
        assert!(!focus.touched_a_trail());
        assert_eq!(
            focus.missing_trail.as_deref(),
            Some("arn:aws:cloudtrail:eu-west-1:111122223333:trail/legacy-archive")
        );
        assert_eq!(focus.vanished().len(), 1);
        // Any other call about a trail that is not there is a skip.
        let stop = event(fixture!("stop_logging.json"), |e| {
            e["detail"]["requestParameters"]["name"] = "gone".into();
        });
        assert!(matches!(resolved(&stop, &[]), Resolution::Skip(why) if why.contains("gone")));
    }

    #[test]
    fn a_log_group_event_concerns_every_trail_delivering_there() {
        let change = parse(fixture!("delete_log_group.json")).unwrap();
        let group = "aws-cloudtrail-logs-111122223333";
        let views = [
            view("a", &change.region, group, "r"),
            view("b", &change.region, group, "r"),
            view("c", &change.region, "another-group", "r"),
            view("d", "ap-south-1", group, "r"),
        ];
        assert_eq!(
            resolved(&change, &views),
            Resolution::Trails(BTreeSet::from([
                views[0].trail.trail_arn.clone(),
                views[1].trail.trail_arn.clone()
            ]))
        );
        assert!(matches!(
            resolved(&change, &views[2..]),
            Resolution::Skip(_)
        ));
    }

    #[test]
    fn a_role_event_concerns_trails_in_every_region() {
        let change = parse(fixture!("put_role_policy.json")).unwrap();
        let role = "CloudTrailRoleForCloudWatchLogs";
        let views = [
            view("a", "us-east-1", "g", role),
            view("b", "eu-west-1", "g", &role.to_lowercase()),
            view("c", "eu-west-1", "g", "SomeOtherRole"),
        ];
        let Resolution::Trails(concerned) = resolved(&change, &views) else {
            panic!("trails use the role");
        };
        assert_eq!(names(&concerned), ["a", "b"]);
        assert_eq!(target_region(&change), None);
        // An unrelated role edit is skipped from the listing alone.
        assert!(
            matches!(resolved(&change, &views[2..]), Resolution::Skip(why) if why.contains(role))
        );
    }

    #[test]
    fn a_policy_version_asks_which_delivery_roles_hold_the_policy() {
        let change = event(fixture!("put_role_policy.json"), |e| {
            e["detail"]["eventName"] = "SetDefaultPolicyVersion".into();
            e["detail"]["requestParameters"] = serde_json::json!({
                "policyArn": "arn:aws:iam::111122223333:policy/delivery", "versionId": "v2"});
        });
        let views = [
            view("a", "us-east-1", "g", "r1"),
            view("b", "eu-west-1", "g", "r2"),
        ];
        let Resolution::Lookup(lookup @ Lookup::PolicyHolders { .. }) = resolved(&change, &views)
        else {
            panic!("a policy needs a read");
        };
        // Unanswered, every delivery role may hold it.
        assert_eq!(names(&lookup.unanswered(&views)), ["a", "b"]);
        assert!(matches!(resolved(&change, &[]), Resolution::Skip(_)));
    }

    #[test]
    fn alarm_and_key_events_ask_about_the_groups_of_their_region() {
        let alarm = event(fixture!("delete_log_group.json"), |e| {
            e["detail"]["eventSource"] = "monitoring.amazonaws.com".into();
            e["source"] = "aws.monitoring".into();
            e["detail"]["eventName"] = "DisableAlarmActions".into();
            e["detail"]["requestParameters"] = serde_json::json!({"alarmNames": ["tamper"]});
        });
        let views = [
            view("here", &alarm.region, "g", "r"),
            view("elsewhere", "ap-south-1", "g", "r"),
        ];
        let Resolution::Lookup(Lookup::AlarmedGroups { groups, .. }) = resolved(&alarm, &views)
        else {
            panic!("an alarm needs a read");
        };
        assert_eq!(groups.len(), 1);
        // A deleted alarm cannot be read: every group of the region may have lost its alarm.
        let deleted = Change {
            actor: crate::event::Actor {
                event_name: "DeleteAlarms".into(),
                ..alarm.actor.clone()
            },
            ..alarm.clone()
        };
        assert!(
            matches!(resolved(&deleted, &views), Resolution::Trails(t) if names(&t) == ["here"])
        );
        assert!(same_key(
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(!same_key(
            "arn:aws:kms:us-east-1:111122223333:key/a",
            "arn:aws:kms:us-east-1:111122223333:key/b"
        ));
        assert!(same_key(
            "arn:aws:kms:us-east-1:111122223333:key/a",
            "alias/cloudtrail"
        ));
    }

    #[test]
    fn the_target_region_follows_an_arn_over_the_event_region() {
        let mut change = parse(fixture!("stop_logging.json")).unwrap();
        change.region = "eu-west-1".into();
        assert_eq!(target_region(&change).as_deref(), Some("us-east-1"));
    }

    #[test]
    fn a_stop_logging_event_proves_a_gap_the_state_no_longer_shows() {
        let change = parse(fixture!("stop_logging.json")).unwrap();
        // Restarted and stopped again since: the state shows a later stop, not this one.
        let mut later = trail_evaluation("management-events", &[]);
        later.reasons.push(
            Reason::new(ReasonCode::LoggingGap, "a later gap").occurring("2024-06-01T12:30:00Z"),
        );
        let mut evaluations = [later, account_evaluation()];
        stop_evidence(&change, &mut evaluations, "aws");
        let trail = &evaluations[0];
        assert_eq!(
            (trail.status, trail.severity),
            (Status::Fail, Severity::High)
        );
        let proved: Vec<_> = trail
            .reasons
            .iter()
            .filter_map(|r| r.occurrence.as_deref())
            .collect();
        assert_eq!(proved, ["2024-06-01T12:30:00Z", "2024-06-01T11:59:58Z"]);
        // Seen already (the same stop time), nothing is added.
        let mut seen = [trail.clone()];
        stop_evidence(&change, &mut seen, "aws");
        assert_eq!(seen[0].reasons.len(), 2);
        // CloudTrail's stop time a second after the call's time is the same stop.
        let mut stopped = trail_evaluation("management-events", &[]);
        stopped.reasons.push(
            Reason::new(ReasonCode::LoggingStopped, "stopped").occurring("2024-06-01T11:59:59Z"),
        );
        let mut evaluations = [stopped];
        stop_evidence(&change, &mut evaluations, "aws");
        assert_eq!(evaluations[0].reasons.len(), 1);
    }

    #[test]
    fn a_stop_is_undone_unless_an_exempt_principal_made_it() {
        let change = parse(fixture!("stop_logging.json")).unwrap();
        let off = AutoRemediation::default();
        assert_eq!(off.restart_for(&change, "aws"), None, "off by default");
        let on = AutoRemediation {
            start_logging: true,
            exempt: vec!["arn:aws:iam::*:role/SecurityAdmin".into()],
        };
        assert_eq!(
            on.restart_for(&change, "aws"),
            Some(RestartTarget {
                trail_arn: format!(
                    "arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/management-events"
                ),
                region: "us-east-1".into(),
            })
        );
        // The security team's role, through any session, may stop trails.
        let mut admin = change.clone();
        admin.actor.arn = Some(format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/SecurityAdmin/alice"
        ));
        assert_eq!(on.restart_for(&admin, "aws"), None);
        // Other calls are never undone.
        let mut start = change.clone();
        start.actor.event_name = "StartLogging".into();
        assert_eq!(on.restart_for(&start, "aws"), None);
    }

    #[test]
    fn the_page_says_the_trail_was_restarted_and_who_had_stopped_it() {
        let change = parse(fixture!("stop_logging.json")).unwrap();
        let mut evaluations = [trail_evaluation("management-events", &[])];
        stop_evidence(&change, &mut evaluations, "aws");
        let at = DateTime::parse_from_rfc3339("2024-06-01T12:00:03Z")
            .unwrap()
            .with_timezone(&Utc);
        note_restart(&change, &Restart::Restarted { at }, &mut evaluations, "aws");
        let reason = &evaluations[0].reasons[0];
        assert_eq!(reason.code, ReasonCode::LoggingGap);
        assert!(
            reason.message.ends_with(
                " trailwatch started it again at 2024-06-01T12:00:03Z (TRAILWATCH_AUTO_REMEDIATE=start-logging); it had been stopped by arn:aws:iam::111122223333:user/mallory."
            ),
            "{}",
            reason.message
        );
        assert_eq!(reason.occurrence.as_deref(), Some("2024-06-01T11:59:58Z"));
        let mut failed = [trail_evaluation(
            "management-events",
            &[ReasonCode::LoggingStopped],
        )];
        note_restart(
            &change,
            &Restart::Failed {
                why: "AccessDenied".into(),
            },
            &mut failed,
            "aws",
        );
        assert!(failed[0].reasons[0]
            .message
            .contains("could not start it again (AccessDenied)"));
    }

    #[test]
    fn a_call_on_the_monitor_names_the_resource_and_pages_high_once_per_event() {
        let change = event(fixture!("delete_log_group.json"), |e| {
            e["source"] = "aws.events".into();
            e["detail"]["eventSource"] = "events.amazonaws.com".into();
            e["detail"]["eventName"] = "DisableRule".into();
            e["detail"]["requestParameters"] = serde_json::json!({"name": "trailwatch-changes"});
        });
        let arn = resource_arn(&change, "aws").unwrap();
        assert_eq!(
            arn,
            format!(
                "arn:aws:events:{}:111122223333:rule/trailwatch-changes",
                change.region
            )
        );
        let monitor = MonitorResources {
            patterns: vec!["arn:aws:events:*:111122223333:rule/trailwatch-*".into()],
        };
        assert!(monitor.owns(&arn));
        assert!(!monitor.owns("arn:aws:events:us-east-1:111122223333:rule/other"));
        let page = monitor_page(&change, &arn, "us-east-1");
        let transition = page.hub_transition().expect("a first page");
        assert_eq!(transition.kind, TransitionKind::MonitorTampered);
        assert_eq!(transition.severity(), Severity::High);
        assert!(page.unrecorded);
        assert!(page.evaluation.reasons[0]
            .message
            .contains("no longer invokes trailwatch"));
        // Lambda names its functions by name or ARN, and its events by API version.
        let function = event(fixture!("delete_log_group.json"), |e| {
            e["source"] = "aws.lambda".into();
            e["detail"]["eventSource"] = "lambda.amazonaws.com".into();
            e["detail"]["eventName"] = "PutFunctionConcurrency20171031".into();
            e["detail"]["requestParameters"] = serde_json::json!({
                "functionName": "arn:aws:lambda:eu-west-1:111122223333:function:tw-trail-change",
                "reservedConcurrentExecutions": 0});
        });
        assert_eq!(
            resource_arn(&function, "aws").unwrap(),
            format!(
                "arn:aws:lambda:{}:111122223333:function:tw-trail-change",
                function.region
            )
        );
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
