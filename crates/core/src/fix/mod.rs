//! `trailwatch fix`: from a trail's reasons to a plan of numbered steps, each an AWS call with
//! its exact AWS CLI command, and the reasons no call can fix, with what a person must do.
//!
//! The plan is pure: it reads the evaluation and the snapshot the evaluation came from, so a
//! dry run and `--apply` print the same steps. Every step can be run twice with the same
//! result (create calls that find the resource already there count as done), and no step ever
//! deletes or edits something that is not trailwatch's own: a missing permission is granted by
//! trailwatch's own inline policy, never by editing the user's.

use crate::arn::{Arn, LogGroupRef, RoleRef};
use crate::evaluate::Evaluation;
use crate::finding::remedy;
use crate::reason::ReasonCode;
use crate::snapshot::{
    AccountSnapshot, AdvancedEventSelector, EventSelector, EventSelectors, FieldSelector,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

mod desired;
pub use desired::{
    desired_state, Dependencies, DesiredAlarm, DesiredLogGroup, DesiredMetricFilter, DesiredRole,
    DesiredRolePolicy, DesiredState, DesiredTrail, Existing, ExistingRole, TrailSettings,
};

/// The inline policies trailwatch puts on a delivery role start with this, and are the only
/// policies it ever writes. Each is named for its log group, so two trails that share a role
/// but not a group each keep their grant.
pub const DELIVERY_POLICY_PREFIX: &str = "trailwatch-delivery-";
/// The metric filter, metric and alarm of the tamper alarm trailwatch creates.
pub const TAMPER_FILTER_NAME: &str = "trailwatch-cloudtrail-changes";
pub const TAMPER_METRIC_NAMESPACE: &str = "CloudTrailMetrics";
pub const TAMPER_METRIC_NAME: &str = "CloudTrailChangeCount";
/// The alarm sums the metric over five minutes and pages on the first change.
pub const TAMPER_ALARM_PERIOD_SECONDS: i32 = 300;
pub const TAMPER_ALARM_DESCRIPTION: &str =
    "A change to CloudTrail's configuration (CIS 4.5): a trail was created, updated, deleted, started or stopped. Created by trailwatch fix.";
/// CIS AWS Foundations 4.5 (3.5 in earlier versions): changes to CloudTrail's configuration.
/// `StopLogging` and `DeleteTrail` are what the tamper rule needs; the others are the control's.
pub const TAMPER_FILTER_PATTERN: &str = "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }";
/// The seed's retention: a year of events in CloudWatch Logs, the rest in S3.
pub const DEFAULT_RETENTION_DAYS: i32 = 365;

/// What the person running `fix` chose; the rest is read from the account.
#[derive(Debug, Clone)]
pub struct FixOptions {
    /// The log group to create for a trail without one; `/aws/cloudtrail/<trail>` by default.
    pub log_group: Option<String>,
    pub retention_days: i32,
    /// The delivery role to create; `CloudTrailRoleForCloudWatchLogs_<trail>` by default, the
    /// name the CloudTrail console gives it.
    pub role_name: Option<String>,
    /// The SNS topic the tamper alarm pages, by region (alarms notify topics in their own
    /// region only).
    pub alarm_topics: BTreeMap<String, String>,
}

impl Default for FixOptions {
    fn default() -> Self {
        Self {
            log_group: None,
            retention_days: DEFAULT_RETENTION_DAYS,
            role_name: None,
            alarm_topics: BTreeMap::new(),
        }
    }
}

/// One AWS call of a fix. Each is safe to repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateLogGroup {
        region: String,
        name: String,
    },
    PutRetentionPolicy {
        region: String,
        group: String,
        days: i32,
    },
    CreateRole {
        name: String,
        path: String,
        trust_policy: String,
    },
    UpdateAssumeRolePolicy {
        role: String,
        trust_policy: String,
        /// The trust policy it replaces, shown so nothing is lost.
        previous: Option<String>,
    },
    PutRolePolicy {
        role: String,
        policy_name: String,
        document: String,
    },
    /// `update-trail` with the log group ARN ending in `:*`, and the role.
    SetCloudWatchLogs {
        region: String,
        trail: String,
        log_group_arn: String,
        role_arn: String,
    },
    EnableLogFileValidation {
        region: String,
        trail: String,
    },
    StartLogging {
        region: String,
        trail: String,
    },
    /// The trail's selectors, whole, with management events put back.
    PutEventSelectors {
        region: String,
        trail: String,
        selectors: EventSelectors,
    },
    PutMetricFilter {
        region: String,
        group: String,
    },
    PutMetricAlarm {
        region: String,
        alarm_name: String,
        topic_arn: String,
    },
}

/// Quotes a value for a POSIX shell, so a printed command can be pasted as it is.
pub fn shell_quote(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

impl Action {
    /// The same call as an AWS CLI command, with this account's real names and ARNs.
    pub fn command(&self) -> String {
        match self {
            Action::CreateLogGroup { region, name } => format!(
                "aws logs create-log-group --region {region} --log-group-name {}",
                shell_quote(name)
            ),
            Action::PutRetentionPolicy {
                region,
                group,
                days,
            } => format!(
                "aws logs put-retention-policy --region {region} --log-group-name {} --retention-in-days {days}",
                shell_quote(group)
            ),
            Action::CreateRole {
                name,
                path,
                trust_policy,
            } => format!(
                "aws iam create-role --role-name {} --path {} --assume-role-policy-document {}",
                shell_quote(name),
                shell_quote(path),
                shell_quote(trust_policy)
            ),
            Action::UpdateAssumeRolePolicy {
                role, trust_policy, ..
            } => format!(
                "aws iam update-assume-role-policy --role-name {} --policy-document {}",
                shell_quote(role),
                shell_quote(trust_policy)
            ),
            Action::PutRolePolicy {
                role,
                policy_name,
                document,
            } => format!(
                "aws iam put-role-policy --role-name {} --policy-name {} --policy-document {}",
                shell_quote(role),
                shell_quote(policy_name),
                shell_quote(document)
            ),
            Action::SetCloudWatchLogs {
                region,
                trail,
                log_group_arn,
                role_arn,
            } => format!(
                "aws cloudtrail update-trail --region {region} --name {} --cloud-watch-logs-log-group-arn {} --cloud-watch-logs-role-arn {}",
                shell_quote(trail),
                shell_quote(log_group_arn),
                shell_quote(role_arn)
            ),
            Action::EnableLogFileValidation { region, trail } => format!(
                "aws cloudtrail update-trail --region {region} --name {} --enable-log-file-validation",
                shell_quote(trail)
            ),
            Action::StartLogging { region, trail } => format!(
                "aws cloudtrail start-logging --region {region} --name {}",
                shell_quote(trail)
            ),
            Action::PutEventSelectors {
                region,
                trail,
                selectors,
            } => {
                let (kind, document) = selectors_document(selectors);
                format!(
                    "aws cloudtrail put-event-selectors --region {region} --trail-name {} {} {}",
                    shell_quote(trail),
                    kind.flag(),
                    shell_quote(&document.to_string())
                )
            }
            Action::PutMetricFilter { region, group } => format!(
                "aws logs put-metric-filter --region {region} --log-group-name {} --filter-name {TAMPER_FILTER_NAME} --filter-pattern {} --metric-transformations metricName={TAMPER_METRIC_NAME},metricNamespace={TAMPER_METRIC_NAMESPACE},metricValue=1",
                shell_quote(group),
                shell_quote(TAMPER_FILTER_PATTERN)
            ),
            Action::PutMetricAlarm {
                region,
                alarm_name,
                topic_arn,
            } => format!(
                "aws cloudwatch put-metric-alarm --region {region} --alarm-name {} --metric-name {TAMPER_METRIC_NAME} --namespace {TAMPER_METRIC_NAMESPACE} --statistic Sum --period {TAMPER_ALARM_PERIOD_SECONDS} --evaluation-periods 1 --threshold 1 --comparison-operator GreaterThanOrEqualToThreshold --treat-missing-data notBreaching --alarm-actions {}",
                shell_quote(alarm_name),
                shell_quote(topic_arn)
            ),
        }
    }

    /// What the step does, in a line.
    pub fn describe(&self) -> String {
        match self {
            Action::CreateLogGroup { region, name } => {
                format!("Create log group {name} in {region}")
            }
            Action::PutRetentionPolicy { group, days, .. } => {
                format!("Keep log group {group}'s events {days} days")
            }
            Action::CreateRole { name, .. } => format!(
                "Create role {name}, trusted by cloudtrail.amazonaws.com for this trail only"
            ),
            Action::UpdateAssumeRolePolicy { role, previous, .. } => match previous {
                Some(previous) => format!(
                    "Replace role {role}'s trust policy so CloudTrail may assume it (it was: {previous})"
                ),
                None => format!("Replace role {role}'s trust policy so CloudTrail may assume it"),
            },
            Action::PutRolePolicy {
                role, policy_name, ..
            } => format!(
                "Let role {role} write the trail's log streams (inline policy {policy_name}; the role's other policies are left alone)"
            ),
            Action::SetCloudWatchLogs {
                trail,
                log_group_arn,
                ..
            } => format!("Point trail {trail} at {log_group_arn} and its role"),
            Action::EnableLogFileValidation { trail, .. } => {
                format!("Turn on log file validation for trail {trail}")
            }
            Action::StartLogging { trail, .. } => format!("Start logging on trail {trail}"),
            Action::PutEventSelectors { trail, .. } => format!(
                "Log management events on trail {trail} again, keeping its data-event selectors"
            ),
            Action::PutMetricFilter { group, .. } => format!(
                "Count CloudTrail configuration changes (CIS 4.5) in log group {group} with metric filter {TAMPER_FILTER_NAME}"
            ),
            Action::PutMetricAlarm {
                alarm_name,
                topic_arn,
                ..
            } => format!("Alarm {alarm_name} pages {topic_arn} on the first change"),
        }
    }
}

/// Which of the two selector forms a trail uses; CloudTrail takes one or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    Basic,
    Advanced,
}

impl SelectorKind {
    /// The `put-event-selectors` flag for this form.
    pub fn flag(self) -> &'static str {
        match self {
            SelectorKind::Basic => "--event-selectors",
            SelectorKind::Advanced => "--advanced-event-selectors",
        }
    }
}

/// The selectors as `put-event-selectors` takes them: their form, and its JSON. Empty lists
/// are left out, since the API takes none.
pub fn selectors_document(selectors: &EventSelectors) -> (SelectorKind, Value) {
    fn put(object: &mut serde_json::Map<String, Value>, key: &str, values: &[String]) {
        if !values.is_empty() {
            object.insert(key.into(), json!(values));
        }
    }
    if !selectors.advanced_event_selectors.is_empty() {
        let list: Vec<Value> = selectors
            .advanced_event_selectors
            .iter()
            .map(|a| {
                let fields: Vec<Value> = a
                    .field_selectors
                    .iter()
                    .map(|f| {
                        let mut field = serde_json::Map::new();
                        field.insert("Field".into(), json!(f.field));
                        put(&mut field, "Equals", &f.equals);
                        put(&mut field, "StartsWith", &f.starts_with);
                        put(&mut field, "EndsWith", &f.ends_with);
                        put(&mut field, "NotEquals", &f.not_equals);
                        put(&mut field, "NotStartsWith", &f.not_starts_with);
                        put(&mut field, "NotEndsWith", &f.not_ends_with);
                        Value::Object(field)
                    })
                    .collect();
                let mut selector = serde_json::Map::new();
                if let Some(name) = &a.name {
                    selector.insert("Name".into(), json!(name));
                }
                selector.insert("FieldSelectors".into(), Value::Array(fields));
                Value::Object(selector)
            })
            .collect();
        return (SelectorKind::Advanced, Value::Array(list));
    }
    let list: Vec<Value> = selectors
        .event_selectors
        .iter()
        .map(|e| {
            let mut selector = serde_json::Map::new();
            selector.insert(
                "ReadWriteType".into(),
                json!(e.read_write_type.as_deref().unwrap_or("All")),
            );
            selector.insert(
                "IncludeManagementEvents".into(),
                json!(e.include_management_events.unwrap_or(true)),
            );
            if !e.data_resources.is_empty() {
                selector.insert("DataResources".into(), json!(e.data_resources));
            }
            put(
                &mut selector,
                "ExcludeManagementEventSources",
                &e.exclude_management_event_sources,
            );
            Value::Object(selector)
        })
        .collect();
    (SelectorKind::Basic, Value::Array(list))
}

/// CloudTrail takes at most five basic event selectors per trail.
const MAX_BASIC_SELECTORS: usize = 5;

/// The selectors with every management event logged again and every data-event selector kept:
/// advanced selectors lose their management ones to one that keeps all management events;
/// basic ones gain a management selector. `None` when five basic selectors leave no room.
fn with_management_events(selectors: &EventSelectors) -> Option<EventSelectors> {
    let mut restored = selectors.clone();
    if !selectors.advanced_event_selectors.is_empty() {
        restored.advanced_event_selectors.retain(|a| {
            !a.field_selectors
                .iter()
                .any(|f| f.field == "eventCategory" && f.equals.iter().any(|v| v == "Management"))
        });
        restored
            .advanced_event_selectors
            .push(AdvancedEventSelector {
                name: Some("Management events".into()),
                field_selectors: vec![FieldSelector {
                    field: "eventCategory".into(),
                    equals: vec!["Management".into()],
                    ..FieldSelector::default()
                }],
            });
        return Some(restored);
    }
    if restored.event_selectors.len() >= MAX_BASIC_SELECTORS {
        return None;
    }
    restored.event_selectors.push(EventSelector {
        read_write_type: Some("All".into()),
        include_management_events: Some(true),
        ..EventSelector::default()
    });
    Some(restored)
}

/// A numbered step of a plan: the call, and the reason codes it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub fixes: Vec<ReasonCode>,
}

/// What `fix` cannot do for a reason, and what a person must do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualStep {
    pub code: ReasonCode,
    pub what_to_do: String,
}

/// The plan for one trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub trail_arn: String,
    pub trail_name: String,
    pub steps: Vec<Step>,
    pub manual: Vec<ManualStep>,
    /// Skipped steps and things to look into, said plainly.
    pub notes: Vec<String>,
}

/// Adds `action`, as a fix for `code`, unless the same call is there already: then that step
/// fixes `code` too. One call is made once, whoever needs it.
fn add_step(steps: &mut Vec<Step>, action: &Action, code: ReasonCode) {
    match steps.iter_mut().find(|s| s.action == *action) {
        Some(step) if !step.fixes.contains(&code) => step.fixes.push(code),
        Some(_) => {}
        None => steps.push(Step {
            action: action.clone(),
            fixes: vec![code],
        }),
    }
}

impl Plan {
    fn push(&mut self, action: Action, code: ReasonCode) {
        add_step(&mut self.steps, &action, code);
    }

    fn push_all(&mut self, actions: &[Action], code: ReasonCode) {
        for action in actions {
            add_step(&mut self.steps, action, code);
        }
    }
}

/// The trust policy of a delivery role: CloudTrail, for this trail of this account only
/// (the confused-deputy conditions AWS documents for CloudTrail's service role).
pub fn trust_policy(trail_arn: &str, account: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceArn": trail_arn, "aws:SourceAccount": account}}
        }]
    })
    .to_string()
}

/// The delivery policy: create and write streams in the trail's log group, with the `:*` that
/// people leave out, and the member streams of an organisation trail.
pub fn delivery_policy(group: &LogGroupRef, organization_id: Option<&str>) -> String {
    let mut resources = vec![Value::String(format!("{}:log-stream:*", group.bare_arn()))];
    if let Some(org) = organization_id {
        resources.push(Value::String(format!(
            "{}:log-stream:{org}_*",
            group.bare_arn()
        )));
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "CloudTrailDelivery",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": resources
        }]
    })
    .to_string()
}

/// trailwatch's inline policy for one log group: IAM names allow `[\w+=,.@-]`, 128 at most.
pub fn delivery_policy_name(group: &str) -> String {
    let safe: String = group
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{DELIVERY_POLICY_PREFIX}{safe}")
        .chars()
        .take(128)
        .collect()
}

/// The path of a role ARN (`/` for most), which `CreateRole` needs to recreate it as it was.
pub(crate) fn role_path(arn: &str) -> String {
    let resource = Arn::parse(arn).map(|a| a.resource).unwrap_or_default();
    let inner = resource.strip_prefix("role").unwrap_or("/");
    match inner.rfind('/') {
        Some(end) if end > 0 => inner[..=end].to_string(),
        _ => "/".to_string(),
    }
}

fn tamper_alarm_name(trail: &str) -> String {
    format!("trailwatch-cloudtrail-changes-{trail}")
}

/// The plan for one trail's evaluation. `snapshot` is what the evaluation was made from.
pub fn plan(snapshot: &AccountSnapshot, evaluation: &Evaluation, options: &FixOptions) -> Plan {
    use ReasonCode::*;
    let Some(trail) = evaluation.trail.as_ref() else {
        return Plan::default();
    };
    let mut plan = Plan {
        trail_arn: evaluation.resource_id.clone(),
        trail_name: trail.name.clone(),
        ..Plan::default()
    };
    let account = &evaluation.account_id;
    let region = trail.home_region.clone();
    let partition = Arn::parse(&evaluation.resource_id)
        .map(|a| a.partition.to_string())
        .unwrap_or_else(|| snapshot.partition.clone());
    let organization_id = match (&snapshot.organization, trail.is_organization_trail) {
        (Some(Ok(org)), true) => Some(org.id.as_str()),
        _ => None,
    };
    let codes: Vec<ReasonCode> = evaluation.counted_reasons().map(|r| r.code).collect();
    let has = |code| codes.contains(&code);

    // Where events go once fixed: the trail's own group, else the one to create.
    let existing_group = trail
        .log_group_arn
        .as_deref()
        .and_then(LogGroupRef::from_arn);
    let group = existing_group.clone().unwrap_or_else(|| LogGroupRef {
        partition: partition.clone(),
        region: region.clone(),
        account: account.clone(),
        name: options
            .log_group
            .clone()
            .unwrap_or_else(|| format!("/aws/cloudtrail/{}", trail.name)),
    });
    let existing_role = trail.role_arn.as_deref().and_then(RoleRef::from_arn);
    let role_name = existing_role
        .as_ref()
        .map(|r| r.name.clone())
        .or_else(|| options.role_name.clone())
        .unwrap_or_else(|| format!("CloudTrailRoleForCloudWatchLogs_{}", trail.name));
    let role_arn = trail
        .role_arn
        .clone()
        .unwrap_or_else(|| format!("arn:{partition}:iam::{account}:role/{role_name}"));
    let trust = trust_policy(&evaluation.resource_id, account);
    // The calls several reasons share.
    let keep_events = Action::PutRetentionPolicy {
        region: group.region.clone(),
        group: group.name.clone(),
        days: options.retention_days,
    };
    let create_group = [
        Action::CreateLogGroup {
            region: group.region.clone(),
            name: group.name.clone(),
        },
        keep_events.clone(),
    ];
    let grant_delivery = Action::PutRolePolicy {
        role: role_name.clone(),
        policy_name: delivery_policy_name(&group.name),
        document: delivery_policy(&group, organization_id),
    };
    let mut wire_tamper_alarm = has(TamperAlarmMissing) || has(TamperAlarmUnrouted);

    for code in [CwlNotConfigured, CwlRoleNotConfigured] {
        if !has(code) {
            continue;
        }
        let group_known = snapshot
            .log_groups
            .get(&group.bare_arn())
            .is_some_and(|g| matches!(g.group, Ok(Some(_))));
        if !group_known {
            plan.push_all(&create_group, code);
        }
        if existing_role.is_none() {
            plan.push(
                Action::CreateRole {
                    name: role_name.clone(),
                    path: "/".into(),
                    trust_policy: trust.clone(),
                },
                code,
            );
        }
        plan.push(grant_delivery.clone(), code);
        plan.push(
            Action::SetCloudWatchLogs {
                region: region.clone(),
                trail: trail.name.clone(),
                log_group_arn: group.streams_arn(),
                role_arn: role_arn.clone(),
            },
            code,
        );
        // A trail that never streamed has no tamper alarm either: the seed's filter goes in
        // with the group.
        wire_tamper_alarm = true;
    }
    if has(CwlLogGroupMissing) {
        plan.push_all(&create_group, CwlLogGroupMissing);
        wire_tamper_alarm = true;
    }
    if has(CwlRoleMissing) {
        plan.push(
            Action::CreateRole {
                name: role_name.clone(),
                path: role_path(&role_arn),
                trust_policy: trust.clone(),
            },
            CwlRoleMissing,
        );
        plan.push(grant_delivery.clone(), CwlRoleMissing);
    }
    if has(CwlRoleTrustInvalid) {
        let previous = snapshot
            .roles
            .get(&role_arn)
            .and_then(|r| r.as_ref().ok())
            .and_then(Option::as_ref)
            .and_then(|r| serde_json::to_string(&r.assume_role_policy_document).ok());
        plan.push(
            Action::UpdateAssumeRolePolicy {
                role: role_name.clone(),
                trust_policy: trust.clone(),
                previous,
            },
            CwlRoleTrustInvalid,
        );
    }
    if has(CwlRolePermissionMissing) {
        plan.push(grant_delivery.clone(), CwlRolePermissionMissing);
    }
    if has(LoggingStopped) {
        plan.push(
            Action::StartLogging {
                region: region.clone(),
                trail: trail.name.clone(),
            },
            LoggingStopped,
        );
        plan.notes.push(format!(
            "Starting trail {} again ends the blind spot, not the incident: find who called StopLogging and what they did while it was off (aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=StopLogging).",
            trail.name
        ));
    }
    if has(LoggingGap) {
        plan.notes.push(format!(
            "LOGGING_GAP needs no call: trail {} is logging again. Investigate the gap: who stopped it, and what they did while it was off (aws cloudtrail lookup-events --region {region}, which keeps 90 days of management events).",
            trail.name
        ));
    }
    if has(CwlRetentionUnset) {
        plan.push(keep_events.clone(), CwlRetentionUnset);
    }
    if has(LogFileValidationDisabled) {
        plan.push(
            Action::EnableLogFileValidation {
                region: region.clone(),
                trail: trail.name.clone(),
            },
            LogFileValidationDisabled,
        );
    }
    if has(ManagementEventsExcluded) {
        let selectors = snapshot
            .trail_details
            .get(&evaluation.resource_id)
            .and_then(|d| d.event_selectors.as_ref().ok());
        match selectors.and_then(with_management_events) {
            Some(selectors) => plan.push(
                Action::PutEventSelectors {
                    region: region.clone(),
                    trail: trail.name.clone(),
                    selectors,
                },
                ManagementEventsExcluded,
            ),
            None => plan.notes.push(format!(
                "Trail {} has five basic event selectors, CloudTrail's most, so none can be added for management events: turn on IncludeManagementEvents with ReadWriteType All in one of them, or move to advanced event selectors.",
                trail.name
            )),
        }
    }
    if wire_tamper_alarm {
        let code = if has(TamperAlarmUnrouted) && !has(TamperAlarmMissing) {
            TamperAlarmUnrouted
        } else {
            TamperAlarmMissing
        };
        match options.alarm_topics.get(&group.region) {
            Some(topic) => {
                plan.push(
                    Action::PutMetricFilter {
                        region: group.region.clone(),
                        group: group.name.clone(),
                    },
                    code,
                );
                plan.push(
                    Action::PutMetricAlarm {
                        region: group.region.clone(),
                        alarm_name: tamper_alarm_name(&trail.name),
                        topic_arn: topic.clone(),
                    },
                    code,
                );
            }
            None => plan.notes.push(format!(
                "Skipped the tamper alarm: no --alarm-topic-arn for {} (the log group's region; an alarm pages topics in its own region only). Give one as --alarm-topic-arn arn:{partition}:sns:{}:{account}:TOPIC.",
                group.region, group.region
            )),
        }
    }
    let planned: Vec<ReasonCode> = plan
        .steps
        .iter()
        .flat_map(|s| s.fixes.iter().copied())
        .collect();
    for reason in evaluation.counted_reasons() {
        if planned.contains(&reason.code)
            || reason.code == LoggingGap
            || (wire_tamper_alarm
                && matches!(reason.code, TamperAlarmMissing | TamperAlarmUnrouted))
        {
            continue;
        }
        if plan.manual.iter().any(|m| m.code == reason.code) {
            continue;
        }
        plan.manual.push(ManualStep {
            code: reason.code,
            what_to_do: remedy(reason.code, evaluation).unwrap_or_else(|| reason.message.clone()),
        });
    }
    plan
}

/// The steps of several plans in order, each call once: a role shared by several trails is
/// changed once, by the first plan that needs it. Restarting a stopped trail goes first: it
/// ends a blind spot, and depends on nothing else.
pub fn merged_steps(plans: &[Plan]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for step in plans.iter().flat_map(|p| &p.steps) {
        for code in &step.fixes {
            add_step(&mut steps, &step.action, *code);
        }
    }
    steps.sort_by_key(|s| !matches!(s.action, Action::StartLogging { .. }));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Organization;
    use crate::test_support::trail_evaluation;

    const ACCOUNT: &str = "111122223333";

    fn snapshot() -> AccountSnapshot {
        AccountSnapshot {
            account_id: ACCOUNT.into(),
            partition: "aws".into(),
            home_region: "us-east-1".into(),
            regions: Vec::new(),
            trail_details: BTreeMap::new(),
            log_groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            topics: BTreeMap::new(),
            organization: None,
            guardrail: None,
        }
    }

    /// A trail's evaluation with these reasons, shaped as the rules make it.
    /// The core's usual trail evaluation, delivering to `group` through `role`.
    fn evaluation(
        name: &str,
        group: Option<&str>,
        role: Option<&str>,
        codes: &[ReasonCode],
    ) -> Evaluation {
        let mut evaluation = trail_evaluation(name, codes);
        let trail = evaluation.trail.as_mut().expect("a trail summary");
        trail.log_group_arn = group.map(str::to_string);
        trail.role_arn = role.map(str::to_string);
        evaluation
    }

    /// A snapshot in which `evaluation`'s trail has these event selectors.
    fn with_selectors(evaluation: &Evaluation, selectors: EventSelectors) -> AccountSnapshot {
        let mut s = snapshot();
        s.trail_details.insert(
            evaluation.resource_id.clone(),
            crate::snapshot::TrailDetails {
                status: Err(crate::snapshot::Unavailable::new(
                    "GetTrailStatus",
                    None,
                    "not read",
                )),
                event_selectors: Ok(selectors),
                regional_status: BTreeMap::new(),
                tags: None,
            },
        );
        s
    }

    fn topics() -> FixOptions {
        FixOptions {
            alarm_topics: BTreeMap::from([(
                "us-east-1".to_string(),
                format!("arn:aws:sns:us-east-1:{ACCOUNT}:security-alerts"),
            )]),
            ..FixOptions::default()
        }
    }

    #[test]
    fn an_s3_only_trail_gets_the_seeds_three_steps_and_the_tamper_alarm() {
        let e = evaluation("audit", None, None, &[ReasonCode::CwlNotConfigured]);
        let plan = plan(&snapshot(), &e, &topics());
        let commands: Vec<String> = plan.steps.iter().map(|s| s.action.command()).collect();
        assert_eq!(commands.len(), 7, "{commands:#?}");
        assert_eq!(
            commands[0],
            "aws logs create-log-group --region us-east-1 --log-group-name /aws/cloudtrail/audit"
        );
        assert!(commands[1].ends_with("--retention-in-days 365"));
        assert!(commands[2].starts_with(
            "aws iam create-role --role-name CloudTrailRoleForCloudWatchLogs_audit --path / "
        ));
        assert!(commands[2].contains(
            r#""aws:SourceArn":"arn:aws:cloudtrail:us-east-1:111122223333:trail/audit""#
        ));
        assert!(commands[2].contains(r#""aws:SourceAccount":"111122223333""#));
        assert!(commands[3].contains("log-group:/aws/cloudtrail/audit:log-stream:*"));
        assert!(commands[4].contains(
            "--cloud-watch-logs-log-group-arn 'arn:aws:logs:us-east-1:111122223333:log-group:/aws/cloudtrail/audit:*'"
        ));
        assert!(commands[5].starts_with("aws logs put-metric-filter"));
        assert!(commands[6]
            .contains("--alarm-actions arn:aws:sns:us-east-1:111122223333:security-alerts"));
        assert!(plan.manual.is_empty() && plan.notes.is_empty(), "{plan:#?}");
    }

    #[test]
    fn without_a_topic_in_the_groups_region_the_alarm_is_skipped_and_said() {
        let e = evaluation("audit", None, None, &[ReasonCode::CwlNotConfigured]);
        let plan = plan(&snapshot(), &e, &FixOptions::default());
        assert_eq!(plan.steps.len(), 5);
        assert!(
            plan.notes[0].contains("Skipped the tamper alarm: no --alarm-topic-arn for us-east-1")
        );
    }

    #[test]
    fn an_organisation_trail_policy_names_the_member_streams() {
        let mut e = evaluation("org", None, None, &[ReasonCode::CwlNotConfigured]);
        e.trail.as_mut().unwrap().is_organization_trail = true;
        let mut s = snapshot();
        s.organization = Some(Ok(Organization {
            id: "o-a1b2c3d4e5".into(),
            master_account_id: Some(ACCOUNT.into()),
        }));
        let plan = plan(&s, &e, &topics());
        let policy = plan
            .steps
            .iter()
            .find_map(|s| match &s.action {
                Action::PutRolePolicy { document, .. } => Some(document.clone()),
                _ => None,
            })
            .unwrap();
        assert!(
            policy.contains("log-group:/aws/cloudtrail/org:log-stream:o-a1b2c3d4e5_*"),
            "{policy}"
        );
    }

    #[test]
    fn a_role_shared_by_two_trails_is_changed_once() {
        let role = format!("arn:aws:iam::{ACCOUNT}:role/shared");
        let group = format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:shared:*");
        let plans: Vec<Plan> = ["a", "b"]
            .iter()
            .map(|name| {
                let e = evaluation(
                    name,
                    Some(&group),
                    Some(&role),
                    &[ReasonCode::CwlRolePermissionMissing],
                );
                plan(&snapshot(), &e, &topics())
            })
            .collect();
        let steps = merged_steps(&plans);
        assert_eq!(steps.len(), 1, "{steps:#?}");
        assert_eq!(
            steps[0].action.command(),
            format!(
                "aws iam put-role-policy --role-name shared --policy-name trailwatch-delivery-shared --policy-document '{}'",
                delivery_policy(&LogGroupRef::from_arn(&group).unwrap(), None)
            )
        );
    }

    #[test]
    fn what_no_call_can_fix_is_listed_with_what_to_do() {
        let group = format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:audit:*");
        let role = format!("arn:aws:iam::{ACCOUNT}:role/delivery");
        let e = evaluation(
            "audit",
            Some(&group),
            Some(&role),
            &[
                ReasonCode::CwlDeliveryError,
                ReasonCode::CwlLogGroupKeyUnusable,
                ReasonCode::LoggingGap,
            ],
        );
        let plan = plan(&snapshot(), &e, &topics());
        assert!(plan.steps.is_empty(), "{plan:#?}");
        let manual: Vec<ReasonCode> = plan.manual.iter().map(|m| m.code).collect();
        assert_eq!(
            manual,
            vec![
                ReasonCode::CwlDeliveryError,
                ReasonCode::CwlLogGroupKeyUnusable
            ]
        );
        assert!(plan.manual.iter().all(|m| !m.what_to_do.is_empty()));
        assert!(
            plan.notes[0].starts_with("LOGGING_GAP needs no call"),
            "{plan:#?}"
        );
    }

    /// An advanced-selector trail that keeps only S3 data events, as `GetEventSelectors`
    /// returns it (fixture): the data selector stays, one management selector joins it.
    #[test]
    fn management_events_come_back_beside_the_data_event_selectors() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/get_event_selectors_advanced_data_only.json"
        )))
        .unwrap();
        let selectors: EventSelectors = serde_json::from_value(fixture).unwrap();
        let e = evaluation(
            "management-events",
            None,
            None,
            &[ReasonCode::ManagementEventsExcluded],
        );
        let s = with_selectors(&e, selectors);
        let plan = plan(&s, &e, &topics());
        assert_eq!(plan.steps.len(), 1, "{plan:#?}");
        assert_eq!(
            plan.steps[0].action.command(),
            concat!(
                "aws cloudtrail put-event-selectors --region us-east-1 --trail-name management-events --advanced-event-selectors ",
                r#"'[{"FieldSelectors":[{"Equals":["Data"],"Field":"eventCategory"},{"Equals":["AWS::S3::Object"],"Field":"resources.type"}],"Name":"S3 data events"},"#,
                r#"{"FieldSelectors":[{"Equals":["Management"],"Field":"eventCategory"}],"Name":"Management events"}]'"#
            )
        );
        let Action::PutEventSelectors { selectors, .. } = &plan.steps[0].action else {
            panic!("{plan:#?}");
        };
        assert!(crate::evaluate::logs_management_writes(selectors));
    }

    #[test]
    fn five_basic_selectors_leave_no_room_and_say_what_to_do() {
        let e = evaluation("full", None, None, &[ReasonCode::ManagementEventsExcluded]);
        let full = EventSelectors {
            event_selectors: vec![
                EventSelector {
                    include_management_events: Some(false),
                    ..EventSelector::default()
                };
                5
            ],
            advanced_event_selectors: vec![],
        };
        let s = with_selectors(&e, full);
        let plan = plan(&s, &e, &topics());
        assert!(plan.steps.is_empty());
        assert!(
            plan.notes[0].contains("five basic event selectors"),
            "{plan:#?}"
        );
        assert_eq!(plan.manual[0].code, ReasonCode::ManagementEventsExcluded);
    }

    #[test]
    fn a_recreated_role_keeps_its_path_and_quotes_survive_the_shell() {
        assert_eq!(
            role_path(&format!("arn:aws:iam::{ACCOUNT}:role/delivery/ct/name")),
            "/delivery/ct/"
        );
        assert_eq!(role_path(&format!("arn:aws:iam::{ACCOUNT}:role/name")), "/");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("/aws/cloudtrail/a"), "/aws/cloudtrail/a");
        assert_eq!(
            delivery_policy_name("/aws/cloudtrail/a b"),
            "trailwatch-delivery-aws-cloudtrail-a-b"
        );
    }
}
