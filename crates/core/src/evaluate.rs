//! The rules: from an [`AccountSnapshot`] to one evaluation per trail, per unreadable region,
//! and one for the account.

use crate::arn::{LogGroupRef, RoleRef};
use crate::filter_pattern;
use crate::policy::{self, AccessRequest, Decision, PolicyDocument, RequestPrincipal};
use crate::reason::{Level, Reason, ReasonCode, Severity, Status};
use crate::snapshot::{
    AccountSnapshot, AdvancedEventSelector, EventSelectors, FieldSelector, LogGroupSnapshot,
    RegionSnapshot, Trail, TrailDetails, Unavailable,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The knobs of an evaluation. `now` is passed in so the rules stay pure and testable.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_delivery_age: Duration,
    /// When false, WARNING reasons are dropped and only FAIL/ERROR decide.
    pub warnings: bool,
    pub now: DateTime<Utc>,
}

impl Settings {
    pub const DEFAULT_MAX_DELIVERY_AGE_HOURS: i64 = 24;

    pub fn at(now: DateTime<Utc>) -> Self {
        Self {
            max_delivery_age: Duration::hours(Self::DEFAULT_MAX_DELIVERY_AGE_HOURS),
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
            .filter(|r| settings.warnings || r.level != Level::Warning)
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
        }
    }

    /// The reasons that weigh in the verdict: everything but INFO notes.
    pub fn counted_reasons(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().filter(|r| r.level != Level::Info)
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
                            owned: trail.owner_account() == Some(account_id),
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
    let account = coverage_evaluation(snapshot, &views, &evaluations, &scanned, settings);
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
    let mut reasons = Vec::new();
    let status = details.map(|d| &d.status);
    let missing_details = || Unavailable::new("GetTrailStatus", None, "trail was not collected");

    match status {
        Some(Ok(s)) if !s.is_logging => reasons.push(Reason::new(
            ReasonCode::LoggingStopped,
            match s.stop_logging_time {
                Some(t) => format!(
                    "Trail {} stopped logging at {}. StopLogging is an attacker's first move; start it again and find out who stopped it.",
                    trail.name,
                    t.to_rfc3339()
                ),
                None => format!(
                    "Trail {} is not logging. Start it, and find out who stopped it.",
                    trail.name
                ),
            },
        )),
        Some(Ok(_)) => {}
        Some(Err(e)) => reasons.push(incomplete("the logging status", e)),
        None => reasons.push(incomplete("the logging status", &missing_details())),
    }

    match trail.cloud_watch_logs_log_group_arn.as_deref() {
        None => reasons.push(Reason::new(
            ReasonCode::CwlNotConfigured,
            format!(
                "Trail {} sends its events only to S3{}; with no CloudWatch Logs log group nothing can alarm on them.",
                trail.name,
                trail
                    .s3_bucket_name
                    .as_deref()
                    .map(|b| format!(" (bucket {b})"))
                    .unwrap_or_default()
            ),
        )),
        Some(group_arn) => {
            if let Some(Ok(s)) = status {
                delivery_reasons(trail, s, settings, &mut reasons);
            }
            match LogGroupRef::from_arn(group_arn) {
                None => reasons.push(Reason::new(
                    ReasonCode::CwlLogGroupMissing,
                    format!(
                        "Trail {} names {group_arn:?} as its log group, which is not a log group ARN.",
                        trail.name
                    ),
                )),
                Some(group) => {
                    log_group_reasons(trail, &group, snapshot, &mut reasons);
                    match trail.cloud_watch_logs_role_arn.as_deref() {
                        None => reasons.push(Reason::new(
                            ReasonCode::CwlRoleNotConfigured,
                            format!(
                                "Trail {} names log group {} but no CloudWatchLogsRoleArn, so CloudTrail cannot write to it.",
                                trail.name, group.name
                            ),
                        )),
                        Some(role_arn) => {
                            role_reasons(trail, &group, role_arn, snapshot, &mut reasons)
                        }
                    }
                }
            }
        }
    }

    match details.map(|d| &d.event_selectors) {
        Some(Ok(selectors)) if !logs_management_writes(selectors) => reasons.push(Reason::new(
            ReasonCode::ManagementEventsExcluded,
            format!(
                "Trail {}'s event selectors drop management write events, so StopLogging and DeleteTrail would never reach CloudWatch Logs.",
                trail.name
            ),
        )),
        Some(Ok(_)) => {}
        Some(Err(e)) => reasons.push(incomplete("the event selectors", e)),
        None => {}
    }

    if !trail.log_file_validation_enabled {
        reasons.push(Reason::new(
            ReasonCode::LogFileValidationDisabled,
            format!(
                "Trail {} has log file validation off, so tampering with delivered log files cannot be proven.",
                trail.name
            ),
        ));
    }

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
    evaluation
}

fn incomplete(what: &str, why: &Unavailable) -> Reason {
    Reason::new(
        ReasonCode::EvaluationIncomplete,
        format!("Could not read {what}: {}.", why.describe()),
    )
}

/// Renders a duration the way a person on call reads it: `42m`, `5h 12m`, `24h`, `3d 4h`.
pub fn human_duration(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (hours, mins) = (minutes / 60, minutes % 60);
    let (days, day_hours) = (hours / 24, hours % 24);
    match (hours, mins, days, day_hours) {
        (0, m, _, _) => format!("{m}m"),
        (h, 0, _, _) if h < 48 => format!("{h}h"),
        (h, m, _, _) if h < 48 => format!("{h}h {m}m"),
        (_, _, d, 0) => format!("{d}d"),
        (_, _, d, h) => format!("{d}d {h}h"),
    }
}

fn delivery_reasons(
    trail: &Trail,
    status: &crate::snapshot::TrailStatus,
    settings: &Settings,
    reasons: &mut Vec<Reason>,
) {
    if let Some(error) = &status.latest_cloud_watch_logs_delivery_error {
        reasons.push(Reason::new(
            ReasonCode::CwlDeliveryError,
            format!(
                "CloudTrail reports this error delivering trail {} to CloudWatch Logs: \"{error}\".",
                trail.name
            ),
        ));
    }
    // A stopped trail is stale by definition; LOGGING_STOPPED already says why.
    if !status.is_logging {
        return;
    }
    let max = settings.max_delivery_age;
    match (
        status.latest_cloud_watch_logs_delivery_time,
        status.start_logging_time,
    ) {
        (Some(last), _) if settings.now - last > max => reasons.push(Reason::new(
            ReasonCode::CwlDeliveryStale,
            format!(
                "Trail {} last delivered to CloudWatch Logs at {} ({} ago), longer ago than the {} allowed.",
                trail.name,
                last.to_rfc3339(),
                human_duration(settings.now - last),
                human_duration(max)
            ),
        )),
        (Some(_), _) => {}
        (None, Some(started)) if settings.now - started <= max => reasons.push(Reason::new(
            ReasonCode::CwlDeliveryPending,
            format!(
                "Trail {} has not delivered to CloudWatch Logs yet; logging started at {}, within the {} allowed.",
                trail.name,
                started.to_rfc3339(),
                human_duration(max)
            ),
        )),
        (None, Some(started)) => reasons.push(Reason::new(
            ReasonCode::CwlDeliveryStale,
            format!(
                "Trail {} has never delivered to CloudWatch Logs although it started logging at {} ({} ago).",
                trail.name,
                started.to_rfc3339(),
                human_duration(settings.now - started)
            ),
        )),
        (None, None) => reasons.push(Reason::new(
            ReasonCode::CwlDeliveryStale,
            format!(
                "Trail {} reports no CloudWatch Logs delivery and no logging start time.",
                trail.name
            ),
        )),
    }
}

fn log_group_reasons(
    trail: &Trail,
    group: &LogGroupRef,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    if group.account != snapshot.account_id {
        reasons.push(Reason::new(
            ReasonCode::CwlChecksDelegated,
            format!(
                "Log group {} is in account {}; its existence, retention and alarms are checked there.",
                group.name, group.account
            ),
        ));
        return;
    }
    let Some(state) = snapshot.log_groups.get(&group.bare_arn()) else {
        reasons.push(incomplete(
            &format!("log group {}", group.name),
            &Unavailable::new("DescribeLogGroups", None, "log group was not collected"),
        ));
        return;
    };
    match &state.group {
        Err(e) => reasons.push(incomplete(&format!("log group {}", group.name), e)),
        Ok(None) => reasons.push(Reason::new(
            ReasonCode::CwlLogGroupMissing,
            format!(
                "Log group {} in {} does not exist, so trail {} has nowhere to deliver. Recreate it or point the trail at an existing group.",
                group.name, group.region, trail.name
            ),
        )),
        Ok(Some(found)) => {
            if found.retention_in_days.is_none() {
                reasons.push(Reason::new(
                    ReasonCode::CwlRetentionUnset,
                    format!(
                        "Log group {} never expires its events; set a retention (for example 365 days) to bound the cost.",
                        group.name
                    ),
                ));
            }
            tamper_alarm_reasons(trail, group, state, snapshot, reasons);
        }
    }
}

/// Real-shaped CloudTrail records of the two calls an attacker makes to go dark.
fn tamper_events(trail: &Trail, account: &str) -> [(&'static str, serde_json::Value); 2] {
    let record = |event_name: &str| {
        serde_json::json!({
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": format!("arn:aws:iam::{account}:user/intruder"),
                             "accountId": account, "userName": "intruder"},
            "eventTime": "2024-01-01T00:00:00Z",
            "eventSource": "cloudtrail.amazonaws.com",
            "eventName": event_name,
            "awsRegion": trail.home_region,
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"name": trail.trail_arn},
            "responseElements": null,
            "requestID": "00000000-0000-0000-0000-000000000000",
            "eventID": "00000000-0000-0000-0000-000000000000",
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": account,
            "eventCategory": "Management"
        })
    };
    [
        ("StopLogging", record("StopLogging")),
        ("DeleteTrail", record("DeleteTrail")),
    ]
}

fn tamper_alarm_reasons(
    trail: &Trail,
    group: &LogGroupRef,
    state: &LogGroupSnapshot,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    let filters = match &state.metric_filters {
        Ok(filters) => filters,
        Err(e) => {
            reasons.push(incomplete(
                &format!("the metric filters of {}", group.name),
                e,
            ));
            return;
        }
    };
    let mut uncovered = Vec::new();
    let mut hints = Vec::new();
    for (event_name, record) in tamper_events(trail, &snapshot.account_id) {
        let matching: Vec<_> = filters
            .iter()
            .filter(|f| filter_pattern::matches(&f.filter_pattern, &record) == Ok(true))
            .collect();
        if matching.is_empty() {
            uncovered.push(event_name);
            continue;
        }
        let alarms = match &state.alarms {
            Ok(alarms) => alarms,
            Err(e) => {
                reasons.push(incomplete(&format!("the alarms in {}", group.region), e));
                return;
            }
        };
        let alarmed = matching.iter().any(|f| {
            f.metric_transformations.iter().any(|m| {
                alarms.iter().any(|a| {
                    a.metric_name.as_deref() == Some(m.metric_name.as_str())
                        && a.namespace.as_deref() == Some(m.metric_namespace.as_str())
                        && a.actions_enabled
                        && !a.alarm_actions.is_empty()
                })
            })
        });
        if !alarmed {
            uncovered.push(event_name);
            let names: Vec<_> = matching.iter().map(|f| f.filter_name.as_str()).collect();
            hints.push(format!(
                "filter {} counts {event_name} but no alarm with an action watches its metric",
                names.join(", ")
            ));
        }
    }
    if !uncovered.is_empty() {
        let hint = if hints.is_empty() {
            String::new()
        } else {
            format!(" ({})", hints.join("; "))
        };
        reasons.push(Reason::new(
            ReasonCode::TamperAlarmMissing,
            format!(
                "No metric filter on log group {} with an alarm that notifies someone catches {}{hint}. Add a filter such as {{ ($.eventName = StopLogging) || ($.eventName = DeleteTrail) }} and an alarm with an SNS action.",
                group.name,
                uncovered.join(" or ")
            ),
        ));
    }
}

fn role_reasons(
    trail: &Trail,
    group: &LogGroupRef,
    role_arn: &str,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    let Some(role_ref) = RoleRef::from_arn(role_arn) else {
        reasons.push(Reason::new(
            ReasonCode::CwlRoleMissing,
            format!(
                "Trail {} names {role_arn:?} as its CloudWatch Logs role, which is not an IAM role ARN.",
                trail.name
            ),
        ));
        return;
    };
    if role_ref.account != snapshot.account_id {
        reasons.push(Reason::new(
            ReasonCode::CwlChecksDelegated,
            format!(
                "Delivery role {} is in account {}; its trust and permissions are checked there.",
                role_ref.name, role_ref.account
            ),
        ));
        return;
    }
    let role = match snapshot.roles.get(role_arn) {
        Some(Ok(Some(role))) => role,
        Some(Ok(None)) => {
            reasons.push(Reason::new(
                ReasonCode::CwlRoleMissing,
                format!(
                    "Delivery role {} of trail {} does not exist, so CloudTrail cannot write to CloudWatch Logs.",
                    role_ref.name, trail.name
                ),
            ));
            return;
        }
        Some(Err(e)) => {
            reasons.push(incomplete(&format!("role {}", role_ref.name), e));
            return;
        }
        None => {
            reasons.push(incomplete(
                &format!("role {}", role_ref.name),
                &Unavailable::new("GetRole", None, "role was not collected"),
            ));
            return;
        }
    };

    let trust = AccessRequest {
        action: "sts:AssumeRole",
        resource: role_arn,
        principal: Some(RequestPrincipal::Service("cloudtrail.amazonaws.com")),
        context: &[
            ("aws:SourceArn", trail.trail_arn.as_str()),
            ("aws:SourceAccount", snapshot.account_id.as_str()),
        ],
    };
    match policy::evaluate(&[&role.assume_role_policy_document], &trust) {
        Decision::Allowed => {}
        Decision::Denied { explicit } => reasons.push(Reason::new(
            ReasonCode::CwlRoleTrustInvalid,
            format!(
                "Role {}'s trust policy {} cloudtrail.amazonaws.com to call sts:AssumeRole for trail {}. Allow that principal and action (a condition on aws:SourceArn, if any, must match the trail ARN).",
                role.role_name,
                if explicit { "explicitly denies" } else { "does not allow" },
                trail.name
            ),
        )),
        Decision::Unverifiable { statements } => reasons.push(Reason::new(
            ReasonCode::CwlRoleUnverifiable,
            format!(
                "Role {}'s trust policy lets CloudTrail in only under conditions trailwatch cannot evaluate ({}).",
                role.role_name,
                statements.join(", ")
            ),
        )),
    }

    // CloudTrail writes every region's events of a trail, multi-region or not, to one
    // stream named after the home region (AWS's default role policy grants just that prefix).
    let stream = group.cloudtrail_stream_arn(&snapshot.account_id, &trail.home_region);
    let documents: Vec<&PolicyDocument> = role.policies.iter().map(|p| &p.document).collect();
    let mut missing = Vec::new();
    let mut unverifiable = Vec::new();
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        let request = AccessRequest {
            action,
            resource: &stream,
            principal: None,
            context: &[],
        };
        match policy::evaluate(&documents, &request) {
            Decision::Allowed => {}
            Decision::Denied { .. } => missing.push(action),
            Decision::Unverifiable { statements } => unverifiable.extend(statements),
        }
    }
    if !missing.is_empty() {
        let mut message = format!(
            "Role {} may not {} on {}.",
            role.role_name,
            missing.join(" and "),
            stream
        );
        if let Some(statement) = bare_log_group_statement(role, group) {
            message.push_str(&format!(
                " Policy {statement} names the log group as {} without ':*'. CloudTrail writes to log streams inside the group, so the Resource must be {}. This is the most common reason delivery fails.",
                group.bare_arn(),
                group.streams_arn()
            ));
        } else {
            message.push_str(&format!(
                " Allow logs:CreateLogStream and logs:PutLogEvents on {}.",
                group.streams_arn()
            ));
        }
        reasons.push(Reason::new(ReasonCode::CwlRolePermissionMissing, message));
    } else if !unverifiable.is_empty() {
        unverifiable.sort();
        unverifiable.dedup();
        reasons.push(Reason::new(
            ReasonCode::CwlRoleUnverifiable,
            format!(
                "Role {}'s permission to write log group {} depends on conditions trailwatch cannot evaluate ({}).",
                role.role_name,
                group.name,
                unverifiable.join(", ")
            ),
        ));
    }
}

/// Finds an Allow statement for log writes whose Resource names the group itself but not its
/// streams: `arn:…:log-group:NAME` instead of `arn:…:log-group:NAME:*`.
fn bare_log_group_statement(role: &crate::snapshot::Role, group: &LogGroupRef) -> Option<String> {
    let bare = group.bare_arn();
    let stream = group.cloudtrail_stream_arn(&group.account, &group.region);
    role.policies.iter().find_map(|named| {
        named
            .document
            .statements
            .iter()
            .enumerate()
            .find(|(_, s)| {
                s.effect == policy::Effect::Allow
                    && (s.matches_action("logs:PutLogEvents")
                        || s.matches_action("logs:CreateLogStream"))
                    && s.resource.as_ref().is_some_and(|list| {
                        list.iter().any(|r| {
                            policy::glob_match(r, &bare, false)
                                && !policy::glob_match(r, &stream, false)
                        })
                    })
            })
            .map(|(i, s)| format!("{} ({})", named.name, s.label(i)))
    })
}

/// Whether the selectors keep the management write events (`StopLogging`, `DeleteTrail`).
///
/// No selectors at all means the default, which logs every management event (moto returns
/// empty lists for a new trail where AWS returns the default selector; both mean "all").
pub fn logs_management_writes(selectors: &EventSelectors) -> bool {
    if selectors.event_selectors.is_empty() && selectors.advanced_event_selectors.is_empty() {
        return true;
    }
    let classic = selectors.event_selectors.iter().any(|s| {
        s.include_management_events.unwrap_or(true)
            && matches!(
                s.read_write_type.as_deref().unwrap_or("All"),
                "All" | "WriteOnly"
            )
    });
    classic
        || selectors
            .advanced_event_selectors
            .iter()
            .any(|s| ["StopLogging", "DeleteTrail"].iter().all(|e| admits(s, e)))
}

fn admits(selector: &AdvancedEventSelector, event_name: &str) -> bool {
    let value_of = |field: &str| match field {
        "eventCategory" => Some("Management"),
        "readOnly" => Some("false"),
        "eventSource" => Some("cloudtrail.amazonaws.com"),
        "eventName" => Some(event_name),
        "eventType" => Some("AwsApiCall"),
        _ => None,
    };
    selector
        .field_selectors
        .iter()
        .all(|f| match value_of(&f.field) {
            Some(value) => field_admits(f, value),
            // A field we do not model: only exclusions can be assumed to let the event through.
            None => f.equals.is_empty() && f.starts_with.is_empty() && f.ends_with.is_empty(),
        })
}

fn field_admits(f: &FieldSelector, value: &str) -> bool {
    let any = |list: &[String], test: &dyn Fn(&str) -> bool| list.iter().any(|v| test(v));
    (f.equals.is_empty() || any(&f.equals, &|v| v == value))
        && (f.starts_with.is_empty() || any(&f.starts_with, &|v| value.starts_with(v)))
        && (f.ends_with.is_empty() || any(&f.ends_with, &|v| value.ends_with(v)))
        && !any(&f.not_equals, &|v| v == value)
        && !any(&f.not_starts_with, &|v| value.starts_with(v))
        && !any(&f.not_ends_with, &|v| value.ends_with(v))
}

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
        Err(_) => Coverage::Unknown,
    };
    let healthy = match evaluation.map(|e| e.status) {
        Some(Status::Fail) => return Coverage::No,
        Some(Status::Error) => Coverage::Unknown,
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

fn coverage_evaluation(
    snapshot: &AccountSnapshot,
    views: &[TrailView],
    evaluations: &[Evaluation],
    scanned: &[&str],
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
    let trail_evaluations: BTreeMap<&str, &Evaluation> = evaluations
        .iter()
        .filter(|e| e.kind == EvaluationKind::Trail)
        .map(|e| (e.resource_id.as_str(), e))
        .collect();
    let judged: Vec<(&TrailView, Coverage)> = views
        .iter()
        .map(|v| {
            let evaluation = trail_evaluations.get(v.trail.trail_arn.as_str()).copied();
            let details = snapshot.trail_details.get(&v.trail.trail_arn);
            (v, coverage_of(v, details, evaluation))
        })
        .collect();
    let multi = |c: Coverage| {
        judged
            .iter()
            .filter(move |(v, cov)| v.trail.is_multi_region_trail && *cov == c)
            .map(|(v, _)| *v)
    };

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
    Evaluation::new(
        EvaluationKind::Account,
        Evaluation::account_resource_id(account),
        account,
        &snapshot.home_region,
        reasons,
        settings,
    )
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
