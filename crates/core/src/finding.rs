//! Security Hub findings in the AWS Security Finding Format (ASFF 2018-10-08): one per
//! evaluation, rendered purely from the evaluation and the scan's context.
//!
//! The same [`Finding`] type holds the findings read back from Security Hub, so reconciling and
//! archiving compare and copy like with like.

use crate::arn::{LogGroupRef, RoleRef};
use crate::evaluate::{Evaluation, EvaluationKind, TrailSummary};
use crate::memory::{HubMemory, Remembered};
use crate::reason::{Level, ReasonCode, Severity, Status};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA_VERSION: &str = "2018-10-08";
pub const GENERATOR_ID: &str = "trailwatch/cloudtrail-cloudwatch-logs";
pub const FINDING_TYPE: &str =
    "Software and Configuration Checks/AWS Security Best Practices/CloudTrail CloudWatch Logs Integration";
/// Where the fix for each reason code is documented; `#code` in lower case picks the section.
pub const DEFAULT_DOCS_URL: &str = "https://github.com/trailwatch/trailwatch/blob/main/README.md";
pub const RELATED_REQUIREMENTS: [&str; 3] = [
    "CIS AWS Foundations Benchmark v1.4.0/3.4",
    "AWS Foundational Security Best Practices v1.0.0/CloudTrail.5",
    "PCI DSS v3.2.1/10.5.3",
];

const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 1024;
const REMEDIATION_MAX: usize = 512;
const STATUS_REASON_MAX: usize = 2048;

pub const RECORD_ACTIVE: &str = "ACTIVE";
pub const RECORD_ARCHIVED: &str = "ARCHIVED";

/// ASFF product fields trailwatch sets, so prior findings can be read back without guessing.
pub const FIELD_STATUS: &str = "trailwatch/Status";
pub const FIELD_KIND: &str = "trailwatch/Kind";
pub const FIELD_RESOURCE: &str = "trailwatch/ResourceId";
/// The keys of the reasons that count (see `Reason::key`), comma-separated: the codes, and
/// which stop of logging a `LOGGING_GAP` is about.
pub const FIELD_REASON_KEYS: &str = "trailwatch/ReasonKeys";
/// `true` when the finding was written for a trail under a current exemption: its reasons were
/// recorded, never paged, so they are no memory of what anyone was told.
pub const FIELD_EXEMPT: &str = "trailwatch/Exempt";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FindingSeverity {
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Recommendation {
    pub text: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Remediation {
    pub recommendation: Recommendation,
}

/// `Resources[].Details.AwsCloudTrailTrail`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CloudTrailTrailDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_multi_region_trail: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_organization_trail: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file_validation_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_cloud_trail_trail: Option<CloudTrailTrailDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    /// `AwsCloudTrailTrail` or `AwsAccount`.
    pub r#type: String,
    pub id: String,
    pub partition: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ResourceDetails>,
}

/// `Workflow`: where a person (or trailwatch, for an exemption) is in handling the finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Workflow {
    /// NEW, NOTIFIED, SUPPRESSED or RESOLVED.
    pub status: String,
}

/// `Note`: the last note someone left on the finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Note {
    pub text: String,
    pub updated_by: String,
    pub updated_at: String,
}

pub const WORKFLOW_NEW: &str = "NEW";
pub const WORKFLOW_SUPPRESSED: &str = "SUPPRESSED";
/// Who trailwatch's own notes are by: a suppressed finding with another author was
/// suppressed by a person, and trailwatch never lifts that.
pub const NOTE_AUTHOR: &str = "trailwatch";
/// How the note of trailwatch's own suppression starts (see `Exemption::describe`).
pub const EXEMPTION_NOTE_PREFIX: &str = "Exempt by the trailwatch:exempt tag";
/// Security Hub's limit on `Note.Text`.
const NOTE_MAX: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatusReason {
    pub reason_code: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Compliance {
    /// PASSED, WARNING, FAILED or NOT_AVAILABLE.
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_reasons: Vec<StatusReason>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_requirements: Vec<String>,
}

/// One ASFF finding, with the fields trailwatch sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    pub schema_version: String,
    pub id: String,
    pub product_arn: String,
    pub generator_id: String,
    pub aws_account_id: String,
    pub region: String,
    pub types: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub severity: FindingSeverity,
    pub title: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<Remediation>,
    #[serde(default)]
    pub product_fields: BTreeMap<String, String>,
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<Compliance>,
    pub record_state: String,
    /// Set by trailwatch only when it creates the finding of an exempt trail; after that,
    /// Security Hub takes workflow and note changes through `BatchUpdateFindings` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Workflow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
}

impl Finding {
    pub fn compliance_status(&self) -> Option<&str> {
        self.compliance.as_ref().map(|c| c.status.as_str())
    }

    /// The reason codes of the verdict, sorted, as Security Hub holds them.
    pub fn reason_codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self
            .compliance
            .iter()
            .flat_map(|c| c.status_reasons.iter().map(|r| r.reason_code.clone()))
            .collect();
        codes.sort();
        codes.dedup();
        codes
    }

    /// The keys of the reasons that count, as trailwatch wrote them; for a finding written
    /// before keys existed, its FAIL and WARNING reason codes.
    pub fn reason_keys(&self) -> Vec<String> {
        match self.product_fields.get(FIELD_REASON_KEYS) {
            Some(keys) => keys
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
            None => self
                .reason_codes()
                .into_iter()
                .filter(|c| {
                    c.parse::<ReasonCode>()
                        .is_ok_and(|c| matches!(c.level(), Level::Fail | Level::Warning))
                })
                .collect(),
        }
    }

    /// The finding as memory compares it: archived, or its status, severity and reason keys.
    /// A status or severity trailwatch never writes reads as failing, which can only cause a
    /// page, never hold one back.
    pub fn remembered(&self) -> Remembered {
        if self.record_state == RECORD_ARCHIVED {
            return Remembered::Archived;
        }
        let status = self
            .compliance_status()
            .and_then(status_of_compliance)
            .unwrap_or(Status::Fail);
        let severity = self.severity.label.parse().unwrap_or(Severity::High);
        Remembered::verdict(status, severity, self.reason_keys())
    }

    /// What Security Hub remembers of the finding, with when it was last written.
    pub fn hub_memory(&self) -> Option<HubMemory> {
        Some(HubMemory {
            state: self.remembered(),
            updated_at: self.updated()?,
        })
    }

    pub fn updated(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.updated_at)
    }

    pub fn is_suppressed(&self) -> bool {
        self.workflow
            .as_ref()
            .is_some_and(|w| w.status == WORKFLOW_SUPPRESSED)
    }

    /// Suppressed by trailwatch for an exemption: its own note, with the exemption's words.
    /// trailwatch's note on lifting a suppression says something else, so a person who
    /// suppresses the finding again without a note of their own is not taken for trailwatch.
    pub fn suppressed_by_trailwatch(&self) -> bool {
        self.is_suppressed()
            && self.note.as_ref().is_some_and(|n| {
                n.updated_by == NOTE_AUTHOR && n.text.starts_with(EXEMPTION_NOTE_PREFIX)
            })
    }

    /// Written while the trail was exempt, so its reasons were never paged. A finding from
    /// before the field existed answers by its workflow: trailwatch's own suppression.
    pub fn recorded_while_exempt(&self) -> bool {
        match self.product_fields.get(FIELD_EXEMPT) {
            Some(exempt) => exempt == "true",
            None => self.suppressed_by_trailwatch(),
        }
    }

    /// Suppressed by a person (or their automation) rather than by trailwatch.
    pub fn suppressed_by_person(&self) -> bool {
        self.is_suppressed() && !self.suppressed_by_trailwatch()
    }
}

/// The note trailwatch leaves on a finding it suppresses or lifts, by itself.
pub fn note(text: &str, now: DateTime<Utc>) -> Note {
    Note {
        text: truncate(text, NOTE_MAX),
        updated_by: NOTE_AUTHOR.into(),
        updated_at: format_time(now),
    }
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What every finding of one scan shares.
#[derive(Debug, Clone)]
pub struct FindingContext {
    pub partition: String,
    /// The deployment's region: account findings, and findings about unreadable regions, go here.
    pub home_region: String,
    pub docs_url: String,
    pub now: DateTime<Utc>,
}

pub fn compliance_status(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASSED",
        Status::Warning => "WARNING",
        Status::Fail => "FAILED",
        Status::Error => "NOT_AVAILABLE",
    }
}

/// The verdict a `Compliance.Status` stands for.
pub fn status_of_compliance(word: &str) -> Option<Status> {
    [Status::Pass, Status::Warning, Status::Fail, Status::Error]
        .into_iter()
        .find(|s| compliance_status(*s) == word)
}

/// Cuts `text` to at most `max` characters, ending with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn check_name(kind: EvaluationKind) -> &'static str {
    match kind {
        EvaluationKind::Trail => "cloudtrail-cloudwatch-logs",
        EvaluationKind::Account => "realtime-coverage",
        EvaluationKind::Region => "region-readable",
        EvaluationKind::Monitor => "monitor-intact",
    }
}

/// `trailwatch/<account>/<region>/<check>/<resource id>`: the same resource always gets the
/// same Id, so a re-import updates the finding instead of adding one.
pub fn finding_id(evaluation: &Evaluation) -> String {
    format!(
        "trailwatch/{}/{}/{}/{}",
        evaluation.account_id,
        evaluation.region,
        check_name(evaluation.kind),
        evaluation.resource_id
    )
}

/// The region whose Security Hub receives the finding: a trail's home region, else the
/// deployment's (a region whose trails could not be listed may deny Security Hub too).
pub fn finding_region(evaluation: &Evaluation, context: &FindingContext) -> String {
    match evaluation.kind {
        EvaluationKind::Trail => evaluation.region.clone(),
        EvaluationKind::Account | EvaluationKind::Region | EvaluationKind::Monitor => {
            context.home_region.clone()
        }
    }
}

pub fn product_arn(partition: &str, region: &str, account: &str) -> String {
    format!("arn:{partition}:securityhub:{region}:{account}:product/{account}/default")
}

fn title(evaluation: &Evaluation) -> String {
    let subject = match (&evaluation.kind, &evaluation.trail) {
        (EvaluationKind::Trail, Some(t)) => format!("CloudTrail trail {}", t.name),
        (EvaluationKind::Region, _) => format!("CloudTrail trails in {}", evaluation.region),
        (EvaluationKind::Monitor, _) => format!("trailwatch's own {}", evaluation.resource_id),
        _ => format!("Account {}", evaluation.account_id),
    };
    let verdict = match (evaluation.kind, evaluation.status) {
        (EvaluationKind::Trail, Status::Pass) => "streams to CloudWatch Logs",
        (EvaluationKind::Trail, Status::Warning) => "streams to CloudWatch Logs, with warnings",
        (EvaluationKind::Trail, Status::Fail) => "does not reliably stream to CloudWatch Logs",
        (EvaluationKind::Account, Status::Pass | Status::Warning) => {
            "has real-time CloudTrail coverage in CloudWatch Logs"
        }
        (EvaluationKind::Account, Status::Fail) => {
            "lacks real-time CloudTrail coverage in CloudWatch Logs"
        }
        (EvaluationKind::Region, Status::Error) => "could not be listed",
        (EvaluationKind::Region, _) => "are readable",
        (EvaluationKind::Monitor, _) => "was changed",
        (_, Status::Error) => "could not be fully evaluated",
    };
    truncate(&format!("{subject} {verdict}"), TITLE_MAX)
}

fn description(evaluation: &Evaluation) -> String {
    let counted: Vec<String> = evaluation
        .counted_reasons()
        .map(|r| format!("{}: {}", r.code, r.message))
        .collect();
    let text = if counted.is_empty() {
        match &evaluation.trail {
            Some(t) => format!(
                "Trail {} delivers to CloudWatch Logs log group {} through role {}; every trailwatch check passed.",
                t.name,
                t.log_group_arn.as_deref().unwrap_or("(none)"),
                t.role_arn.as_deref().unwrap_or("(none)")
            ),
            None => "Every trailwatch check passed.".to_string(),
        }
    } else {
        counted.join(" ")
    };
    truncate(&text, DESCRIPTION_MAX)
}

/// The fix for one reason, with this trail's real names and ARNs.
pub fn remedy(code: ReasonCode, evaluation: &Evaluation) -> Option<String> {
    use ReasonCode::*;
    let trail = evaluation.trail.as_ref();
    let name = trail.map(|t| t.name.as_str()).unwrap_or("TRAIL");
    let region = trail
        .map(|t| t.home_region.as_str())
        .unwrap_or(&evaluation.region);
    let group = trail
        .and_then(|t| t.log_group_arn.as_deref())
        .and_then(LogGroupRef::from_arn);
    let group_name = group
        .as_ref()
        .map(|g| g.name.as_str())
        .unwrap_or("LOG_GROUP");
    let streams = group
        .as_ref()
        .map(LogGroupRef::streams_arn)
        .unwrap_or_else(|| "arn:aws:logs:REGION:ACCOUNT:log-group:LOG_GROUP:*".into());
    let role = trail
        .and_then(|t| t.role_arn.as_deref())
        .and_then(RoleRef::from_arn)
        .map(|r| r.name)
        .unwrap_or_else(|| "ROLE".into());
    let text = match code {
        CwlNotConfigured => format!(
            "Create a log group and a role trusted by cloudtrail.amazonaws.com that may call logs:CreateLogStream and logs:PutLogEvents on it, then run: aws cloudtrail update-trail --name {name} --region {region} --cloud-watch-logs-log-group-arn arn:aws:logs:{region}:{}:log-group:LOG_GROUP:* --cloud-watch-logs-role-arn ROLE_ARN",
            evaluation.account_id
        ),
        CwlRoleNotConfigured => format!(
            "Create a role trusted by cloudtrail.amazonaws.com allowing logs:CreateLogStream and logs:PutLogEvents on {streams}, then run: aws cloudtrail update-trail --name {name} --region {region} --cloud-watch-logs-log-group-arn {streams} --cloud-watch-logs-role-arn ROLE_ARN"
        ),
        LoggingStopped => format!(
            "Run: aws cloudtrail start-logging --name {name} --region {region}. Then find who called StopLogging in the CloudTrail event history and treat it as an incident until explained."
        ),
        CwlDeliveryError | CwlDeliveryStale => format!(
            "Check that role {role} trusts cloudtrail.amazonaws.com and may call logs:CreateLogStream and logs:PutLogEvents on {streams}, and that log group {group_name} exists; delivery resumes within minutes of the fix."
        ),
        CwlLogGroupMissing => format!(
            "Run: aws logs create-log-group --log-group-name {group_name} --region {region}, or point trail {name} at an existing log group."
        ),
        CwlRoleMissing => format!(
            "Recreate role {role} trusted by cloudtrail.amazonaws.com with logs:CreateLogStream and logs:PutLogEvents on {streams}, or point trail {name} at an existing role."
        ),
        CwlRoleTrustInvalid => format!(
            "Allow Principal {{\"Service\": \"cloudtrail.amazonaws.com\"}} to call sts:AssumeRole in role {role}'s trust policy (scope it with aws:SourceArn {}).",
            evaluation.resource_id
        ),
        CwlRolePermissionMissing => format!(
            "In role {role}, allow logs:CreateLogStream and logs:PutLogEvents on {streams} (with the :* so the log streams match)."
        ),
        CwlRegionSilent => format!(
            "Find out why trail {name}'s events from the silent regions stopped reaching log group {group_name}: look for a delivery error in each region (aws cloudtrail get-trail-status --name {} --region REGION), then check role {role} may write {streams}.",
            evaluation.resource_id
        ),
        CwlLogGroupClassLimited => format!(
            "Create a STANDARD log group (the class cannot be changed) with the same retention, move role {role}'s policy to it, then run: aws cloudtrail update-trail --name {name} --region {region} --cloud-watch-logs-log-group-arn NEW_GROUP_ARN:* and add the tamper metric filter and alarm there."
        ),
        CwlLogGroupKeyUnusable => format!(
            "Enable the KMS key of log group {group_name} (aws kms enable-key, or cancel-key-deletion), and let logs.{region}.amazonaws.com use it for kms:Encrypt*, kms:Decrypt*, kms:GenerateDataKey* with kms:EncryptionContext:aws:logs:arn set to the group's ARN; or aws logs disassociate-kms-key --log-group-name {group_name}."
        ),
        CwlRetentionUnset => format!(
            "Run: aws logs put-retention-policy --log-group-name {group_name} --retention-in-days 365 --region {region}"
        ),
        TamperAlarmMissing => format!(
            "Add a metric filter {{ ($.eventName = StopLogging) || ($.eventName = DeleteTrail) }} on log group {group_name} and a CloudWatch alarm on its metric with an SNS action."
        ),
        TamperAlarmUnrouted => format!(
            "Subscribe someone to the SNS topic the tamper alarm of log group {group_name} notifies (aws sns subscribe --protocol email ..., then confirm), or point the alarm at a topic that pages someone."
        ),
        ManagementEventsExcluded => format!(
            "Give trail {name} an event selector that includes management events with ReadWriteType All or WriteOnly (aws cloudtrail put-event-selectors)."
        ),
        LoggingGap => format!(
            "Treat it as an incident until explained: find who called StopLogging and StartLogging on trail {name} (aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=StopLogging) and review what they did in between; nothing needs restarting."
        ),
        MonitorTampered => "Find who changed trailwatch's own rule, function, topic or key in the CloudTrail event history, undo the change (redeploy the stack), and treat it as an incident until explained.".to_string(),
        LogFileValidationDisabled => format!(
            "Run: aws cloudtrail update-trail --name {name} --region {region} --enable-log-file-validation"
        ),
        CwlRoleUnverifiable => format!(
            "Review the conditional statements of role {role} named in the finding, or drop conditions trailwatch cannot verify."
        ),
        ExemptionInvalid | ExemptionExpired => format!(
            "Set the trail's exemption as REASON or REASON until=YYYY-MM-DD (aws cloudtrail add-tags --resource-id {} --region {region} --tags-list Key=trailwatch:exempt,Value=...), fix the trail, or remove the tag (aws cloudtrail remove-tags).",
            evaluation.resource_id
        ),
        NoTrail => "Create a multi-region trail that streams to CloudWatch Logs: aws cloudtrail create-trail --name management-events --s3-bucket-name BUCKET --is-multi-region-trail --cloud-watch-logs-log-group-arn LOG_GROUP_ARN:* --cloud-watch-logs-role-arn ROLE_ARN, then aws cloudtrail start-logging --name management-events".to_string(),
        TamperGuardrailMissing => "Attach a service control policy that denies cloudtrail:StopLogging, cloudtrail:DeleteTrail and cloudtrail:UpdateTrail to every principal but your security role (Condition ArnNotLike aws:PrincipalArn arn:aws:iam::*:role/SECURITY_ROLE) at the root or the account's OU.".to_string(),
        NoRealtimeCoverage => "Make one multi-region trail log management events to CloudWatch Logs and fix its FAIL reasons (aws cloudtrail update-trail --name NAME --is-multi-region-trail).".to_string(),
        EvaluationIncomplete => "Grant trailwatch the read permission named in the finding (see Permissions in the README), or enable the region, then scan again.".to_string(),
        CwlDeliveryPending
        | CwlChecksDelegated
        | OrgTrailCoverage
        | TamperGuardrailNotApplicable
        | ExemptionUnverifiable => return None,
    };
    Some(text)
}

fn remediation(evaluation: &Evaluation, docs_url: &str) -> Remediation {
    let mut reasons: Vec<_> = evaluation.counted_reasons().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
    let fixes: Vec<String> = reasons
        .iter()
        .filter_map(|r| remedy(r.code, evaluation))
        .collect();
    let text = if fixes.is_empty() {
        "No action needed; trailwatch re-checks on every change and every hour.".to_string()
    } else {
        fixes.join(" ")
    };
    let anchor = reasons
        .first()
        .map(|r| format!("#{}", r.code.as_str().to_ascii_lowercase()))
        .unwrap_or_else(|| "#reason-codes-and-what-to-do".into());
    Remediation {
        recommendation: Recommendation {
            text: truncate(&text, REMEDIATION_MAX),
            url: format!("{docs_url}{anchor}"),
        },
    }
}

fn trail_details(trail: &TrailSummary, arn: &str) -> CloudTrailTrailDetails {
    CloudTrailTrailDetails {
        cloud_watch_logs_log_group_arn: trail.log_group_arn.clone(),
        cloud_watch_logs_role_arn: trail.role_arn.clone(),
        home_region: Some(trail.home_region.clone()),
        is_multi_region_trail: Some(trail.is_multi_region),
        is_organization_trail: Some(trail.is_organization_trail),
        log_file_validation_enabled: Some(trail.log_file_validation_enabled),
        name: Some(trail.name.clone()),
        s3_bucket_name: trail.s3_bucket_name.clone(),
        trail_arn: Some(arn.to_string()),
    }
}

/// Renders one evaluation as a new, active finding first seen now.
pub fn render(evaluation: &Evaluation, context: &FindingContext) -> Finding {
    let region = finding_region(evaluation, context);
    let exemption = evaluation.exemption.as_ref().filter(|e| e.is_current());
    let now = format_time(context.now);
    let resource = match (&evaluation.kind, &evaluation.trail) {
        (EvaluationKind::Trail, Some(trail)) => Resource {
            r#type: "AwsCloudTrailTrail".into(),
            id: evaluation.resource_id.clone(),
            partition: context.partition.clone(),
            region: evaluation.region.clone(),
            details: Some(ResourceDetails {
                aws_cloud_trail_trail: Some(trail_details(trail, &evaluation.resource_id)),
            }),
        },
        _ => Resource {
            r#type: "AwsAccount".into(),
            id: evaluation.resource_id.clone(),
            partition: context.partition.clone(),
            region: evaluation.region.clone(),
            details: None,
        },
    };
    let status_reasons = evaluation
        .counted_reasons()
        .map(|r| StatusReason {
            reason_code: r.code.as_str().to_string(),
            description: truncate(&r.message, STATUS_REASON_MAX),
        })
        .collect();
    let kind = serde_json::to_value(evaluation.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Finding {
        schema_version: SCHEMA_VERSION.into(),
        id: finding_id(evaluation),
        product_arn: product_arn(&context.partition, &region, &evaluation.account_id),
        generator_id: GENERATOR_ID.into(),
        aws_account_id: evaluation.account_id.clone(),
        region,
        types: vec![FINDING_TYPE.into()],
        created_at: now.clone(),
        updated_at: now,
        severity: FindingSeverity {
            label: evaluation.severity.as_str().into(),
        },
        title: title(evaluation),
        description: description(evaluation),
        remediation: Some(remediation(evaluation, &context.docs_url)),
        product_fields: BTreeMap::from([
            (
                FIELD_STATUS.to_string(),
                evaluation.status.as_str().to_string(),
            ),
            (FIELD_KIND.to_string(), kind),
            (FIELD_RESOURCE.to_string(), evaluation.resource_id.clone()),
            (
                FIELD_REASON_KEYS.to_string(),
                Remembered::of(evaluation).keys().join(","),
            ),
            (FIELD_EXEMPT.to_string(), evaluation.is_exempt().to_string()),
        ]),
        resources: vec![resource],
        compliance: Some(Compliance {
            status: compliance_status(evaluation.status).into(),
            status_reasons,
            related_requirements: RELATED_REQUIREMENTS.iter().map(|r| r.to_string()).collect(),
        }),
        record_state: RECORD_ACTIVE.into(),
        workflow: exemption.map(|_| Workflow {
            status: WORKFLOW_SUPPRESSED.into(),
        }),
        note: exemption.map(|e| note(&e.describe(), context.now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Reason;

    fn context() -> FindingContext {
        FindingContext {
            partition: "aws".into(),
            home_region: "us-east-1".into(),
            docs_url: DEFAULT_DOCS_URL.into(),
            now: parse_time("2024-06-01T12:00:00Z").unwrap(),
        }
    }

    fn failing_trail() -> Evaluation {
        Evaluation {
            kind: EvaluationKind::Trail,
            resource_id: "arn:aws:cloudtrail:eu-west-1:111122223333:trail/data-events".into(),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            status: Status::Fail,
            severity: Severity::Medium,
            reasons: vec![
                Reason::new(ReasonCode::CwlDeliveryPending, "pending"),
                Reason::new(ReasonCode::CwlRolePermissionMissing, "Role may not write."),
                Reason::new(ReasonCode::CwlRetentionUnset, "Never expires."),
            ],
            trail: Some(TrailSummary {
                name: "data-events".into(),
                home_region: "eu-west-1".into(),
                is_multi_region: false,
                is_organization_trail: false,
                log_group_arn: Some(
                    "arn:aws:logs:eu-west-1:111122223333:log-group:cloudtrail/data-events:*".into(),
                ),
                role_arn: Some("arn:aws:iam::111122223333:role/CloudTrailToCloudWatch".into()),
                is_logging: Some(true),
                log_file_validation_enabled: true,
                s3_bucket_name: Some("logs".into()),
            }),
            exemption: None,
        }
    }

    #[test]
    fn trail_finding_carries_the_asff_essentials() {
        let f = render(&failing_trail(), &context());
        assert_eq!(
            f.id,
            "trailwatch/111122223333/eu-west-1/cloudtrail-cloudwatch-logs/arn:aws:cloudtrail:eu-west-1:111122223333:trail/data-events"
        );
        assert_eq!(
            f.product_arn,
            "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
        );
        assert_eq!(f.generator_id, GENERATOR_ID);
        assert_eq!(f.severity.label, "MEDIUM");
        assert_eq!(f.created_at, "2024-06-01T12:00:00.000Z");
        let compliance = f.compliance.as_ref().unwrap();
        assert_eq!(compliance.status, "FAILED");
        // INFO notes are for the record, not compliance reasons.
        assert_eq!(
            f.reason_codes(),
            vec!["CWL_RETENTION_UNSET", "CWL_ROLE_PERMISSION_MISSING"]
        );
        assert_eq!(compliance.related_requirements.len(), 3);
        let resource = &f.resources[0];
        assert_eq!(resource.r#type, "AwsCloudTrailTrail");
        let details = resource
            .details
            .as_ref()
            .unwrap()
            .aws_cloud_trail_trail
            .as_ref()
            .unwrap();
        assert_eq!(details.name.as_deref(), Some("data-events"));
        assert_eq!(
            f.title,
            "CloudTrail trail data-events does not reliably stream to CloudWatch Logs"
        );
    }

    #[test]
    fn remediation_names_the_real_role_and_the_star_and_fits_512() {
        let f = render(&failing_trail(), &context());
        let r = f.remediation.unwrap().recommendation;
        assert!(r.text.starts_with("In role CloudTrailToCloudWatch, allow logs:CreateLogStream and logs:PutLogEvents on arn:aws:logs:eu-west-1:111122223333:log-group:cloudtrail/data-events:*"), "{}", r.text);
        assert!(r.text.chars().count() <= 512);
        assert!(r.url.ends_with("#cwl_role_permission_missing"), "{}", r.url);
    }

    #[test]
    fn every_counting_reason_code_has_a_remedy() {
        let e = failing_trail();
        for code in ReasonCode::ALL {
            assert_eq!(
                remedy(code, &e).is_some(),
                code.level() != Level::Info,
                "{code}"
            );
        }
    }

    #[test]
    fn account_finding_goes_to_the_home_region_as_aws_account() {
        let account = Evaluation {
            kind: EvaluationKind::Region,
            resource_id: "AWS::::Account:111122223333".into(),
            account_id: "111122223333".into(),
            region: "ap-south-2".into(),
            status: Status::Error,
            severity: Severity::Medium,
            reasons: vec![Reason::new(ReasonCode::EvaluationIncomplete, "denied")],
            trail: None,
            exemption: None,
        };
        let f = render(&account, &context());
        assert_eq!(f.region, "us-east-1");
        assert!(f.id.contains("/ap-south-2/region-readable/"));
        assert_eq!(f.resources[0].r#type, "AwsAccount");
        assert_eq!(f.resources[0].region, "ap-south-2");
        assert_eq!(f.compliance_status(), Some("NOT_AVAILABLE"));
    }

    #[test]
    fn long_texts_are_cut_to_the_asff_limits() {
        let mut e = failing_trail();
        e.reasons = vec![Reason::new(ReasonCode::CwlDeliveryError, "x".repeat(5000))];
        let f = render(&e, &context());
        assert_eq!(f.description.chars().count(), DESCRIPTION_MAX);
        assert!(f.description.ends_with('…'));
        assert!(f.title.chars().count() <= TITLE_MAX);
    }

    #[test]
    fn finding_round_trips_through_json_with_asff_names() {
        let f = render(&failing_trail(), &context());
        let json = serde_json::to_value(&f).unwrap();
        assert!(json["Resources"][0]["Details"]["AwsCloudTrailTrail"]["TrailArn"].is_string());
        assert_eq!(
            json["Compliance"]["StatusReasons"][0]["ReasonCode"],
            "CWL_ROLE_PERMISSION_MISSING"
        );
        assert_eq!(json["Resources"][0]["Type"], "AwsCloudTrailTrail");
        let back: Finding = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn memory_reads_back_what_was_written_and_not_the_time() {
        let failing = render(&failing_trail(), &context());
        assert_eq!(
            failing.remembered().to_string(),
            "FAILED MEDIUM CWL_RETENTION_UNSET,CWL_ROLE_PERMISSION_MISSING"
        );
        assert_eq!(failing.remembered(), Remembered::of(&failing_trail()));
        let later = FindingContext {
            now: parse_time("2024-06-02T12:00:00Z").unwrap(),
            ..context()
        };
        assert_eq!(
            render(&failing_trail(), &later).remembered(),
            failing.remembered()
        );
        // A finding from before the keys field: its FAIL and WARNING codes stand in.
        let mut old = failing.clone();
        old.product_fields.remove(FIELD_REASON_KEYS);
        assert_eq!(old.remembered(), failing.remembered());
        let archived = Finding {
            record_state: RECORD_ARCHIVED.into(),
            ..failing
        };
        assert_eq!(archived.remembered(), Remembered::Archived);
    }
}
