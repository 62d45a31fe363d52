//! What a scan saw, in types shaped like the AWS API responses they come from.
//!
//! Field names follow the wire format of each service (PascalCase for CloudTrail, IAM and
//! CloudWatch, camelCase for CloudWatch Logs), so a fixture can be a pasted API response and
//! the adapter's mapping from SDK types is a plain field copy.

use crate::arn::{LogGroupRef, RoleRef};
use crate::policy::PolicyDocument;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Why a piece of data is missing: the operation that failed and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    /// The API operation, for example `GetTrailStatus`.
    pub operation: String,
    /// The service error code (`AccessDeniedException`, `ThrottlingException`), when AWS sent one.
    pub code: Option<String>,
    pub message: String,
}

impl Unavailable {
    pub fn new(operation: &str, code: Option<String>, message: impl Into<String>) -> Self {
        Self {
            operation: operation.to_string(),
            code,
            message: message.into(),
        }
    }

    pub fn describe(&self) -> String {
        match &self.code {
            Some(code) => format!("{} failed: {}: {}", self.operation, code, self.message),
            None => format!("{} failed: {}", self.operation, self.message),
        }
    }
}

/// Data that was either read or could not be. Rules turn `Err` into `EVALUATION_INCOMPLETE`.
pub type Observed<T> = Result<T, Unavailable>;

/// Empty strings are how CloudTrail (and moto) say "not set" after an `UpdateTrail` with `""`.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn deserialize_non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(non_empty(Option::<String>::deserialize(d)?))
}

/// CloudTrail's JSON protocol sends timestamps as epoch seconds (often fractional); people
/// paste RFC 3339 strings. Both are accepted, and so is an empty string for "never".
fn deserialize_timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => {
            let secs = n
                .as_f64()
                .ok_or_else(|| D::Error::custom("timestamp is not a number"))?;
            let millis = (secs * 1000.0).round() as i64;
            DateTime::from_timestamp_millis(millis)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("timestamp {secs} is out of range")))
        }
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| D::Error::custom(format!("timestamp {s:?}: {e}"))),
        Some(other) => Err(D::Error::custom(format!(
            "timestamp must be a number or string, got {other}"
        ))),
    }
}

fn default_true() -> bool {
    true
}

/// One element of `DescribeTrails.trailList`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Trail {
    pub name: String,
    #[serde(rename = "TrailARN")]
    pub trail_arn: String,
    pub home_region: String,
    #[serde(default)]
    pub is_multi_region_trail: bool,
    #[serde(default)]
    pub is_organization_trail: bool,
    #[serde(default, deserialize_with = "deserialize_non_empty")]
    pub cloud_watch_logs_log_group_arn: Option<String>,
    #[serde(default, deserialize_with = "deserialize_non_empty")]
    pub cloud_watch_logs_role_arn: Option<String>,
    #[serde(default)]
    pub log_file_validation_enabled: bool,
    #[serde(default)]
    pub has_custom_event_selectors: bool,
    #[serde(default)]
    pub s3_bucket_name: Option<String>,
    #[serde(default = "default_true")]
    pub include_global_service_events: bool,
    /// Read so that `fix --emit` can declare the trail whole: a Terraform or CloudFormation
    /// trail that left these out would take them away.
    #[serde(default, deserialize_with = "deserialize_non_empty")]
    pub s3_key_prefix: Option<String>,
    #[serde(default, deserialize_with = "deserialize_non_empty")]
    pub kms_key_id: Option<String>,
    #[serde(
        default,
        rename = "SnsTopicARN",
        deserialize_with = "deserialize_non_empty"
    )]
    pub sns_topic_arn: Option<String>,
}

impl Trail {
    /// The account that owns the trail, from its ARN.
    pub fn owner_account(&self) -> Option<&str> {
        crate::arn::Arn::parse(&self.trail_arn).map(|a| a.account)
    }

    pub fn log_group(&self) -> Option<LogGroupRef> {
        self.cloud_watch_logs_log_group_arn
            .as_deref()
            .and_then(LogGroupRef::from_arn)
    }

    pub fn role(&self) -> Option<RoleRef> {
        self.cloud_watch_logs_role_arn
            .as_deref()
            .and_then(RoleRef::from_arn)
    }
}

/// `GetTrailStatus` output, the fields the rules read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrailStatus {
    pub is_logging: bool,
    #[serde(default, deserialize_with = "deserialize_non_empty")]
    pub latest_cloud_watch_logs_delivery_error: Option<String>,
    #[serde(default, deserialize_with = "deserialize_timestamp")]
    pub latest_cloud_watch_logs_delivery_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_timestamp")]
    pub start_logging_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "deserialize_timestamp")]
    pub stop_logging_time: Option<DateTime<Utc>>,
}

/// `GetEventSelectors` output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventSelectors {
    #[serde(default)]
    pub event_selectors: Vec<EventSelector>,
    #[serde(default)]
    pub advanced_event_selectors: Vec<AdvancedEventSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventSelector {
    /// `ReadOnly`, `WriteOnly` or `All` (the default).
    #[serde(default)]
    pub read_write_type: Option<String>,
    /// Defaults to true in the API.
    #[serde(default)]
    pub include_management_events: Option<bool>,
    #[serde(default)]
    pub exclude_management_event_sources: Vec<String>,
    /// The data events the selector logs: kept so `fix` can put the selectors back with
    /// management events and without losing them.
    #[serde(default)]
    pub data_resources: Vec<DataResource>,
}

/// One element of an event selector's `DataResources`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataResource {
    pub r#type: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvancedEventSelector {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub field_selectors: Vec<FieldSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FieldSelector {
    pub field: String,
    #[serde(default)]
    pub equals: Vec<String>,
    #[serde(default)]
    pub starts_with: Vec<String>,
    #[serde(default)]
    pub ends_with: Vec<String>,
    #[serde(default)]
    pub not_equals: Vec<String>,
    #[serde(default)]
    pub not_starts_with: Vec<String>,
    #[serde(default)]
    pub not_ends_with: Vec<String>,
}

/// One element of `DescribeLogGroups.logGroups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogGroup {
    pub log_group_name: String,
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub retention_in_days: Option<i32>,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub creation_time: Option<i64>,
    /// `STANDARD` (also when absent), `INFREQUENT_ACCESS` or `DELIVERY`.
    #[serde(default)]
    pub log_group_class: Option<String>,
    /// The ARN of the KMS key that encrypts the group, if one does.
    #[serde(default, deserialize_with = "deserialize_non_empty")]
    pub kms_key_id: Option<String>,
}

/// One element of `DescribeMetricFilters.metricFilters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricFilter {
    pub filter_name: String,
    #[serde(default)]
    pub filter_pattern: String,
    #[serde(default)]
    pub metric_transformations: Vec<MetricTransformation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricTransformation {
    pub metric_name: String,
    pub metric_namespace: String,
    /// What a match publishes: a number (usually `1`) or a `$.field` of the event.
    #[serde(default = "default_metric_value")]
    pub metric_value: String,
    /// What a non-matching event publishes; absent means nothing.
    #[serde(default)]
    pub default_value: Option<f64>,
}

fn default_metric_value() -> String {
    "1".into()
}

/// One element of CloudWatch `DescribeAlarms.MetricAlarms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricAlarm {
    pub alarm_name: String,
    #[serde(default)]
    pub metric_name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default = "default_true")]
    pub actions_enabled: bool,
    #[serde(default)]
    pub alarm_actions: Vec<String>,
    /// `SampleCount`, `Average`, `Sum`, `Minimum` or `Maximum`; absent for a percentile
    /// (`ExtendedStatistic`) or metric math.
    #[serde(default)]
    pub statistic: Option<String>,
    #[serde(default)]
    pub extended_statistic: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub comparison_operator: Option<String>,
    #[serde(default)]
    pub evaluation_periods: Option<i32>,
    #[serde(default)]
    pub datapoints_to_alarm: Option<i32>,
    /// `breaching`, `notBreaching`, `ignore` or `missing` (the default).
    #[serde(default)]
    pub treat_missing_data: Option<String>,
    /// Metric math; when present, the alarm is not on `MetricName` alone.
    #[serde(default)]
    pub metrics: Vec<serde_json::Value>,
}

/// A delivery role as `GetRole` plus its inline and attached managed policies describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    pub role_name: String,
    pub arn: String,
    pub assume_role_policy_document: PolicyDocument,
    /// Inline and attached managed policies, each with the name it is known by.
    #[serde(default)]
    pub policies: Vec<NamedPolicy>,
    /// The permissions boundary (`PermissionsBoundary.PermissionsBoundaryArn`), with its
    /// default version's document: what the policies allow is capped by it.
    #[serde(default)]
    pub permissions_boundary: Option<NamedPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NamedPolicy {
    /// The inline policy name, or the managed policy ARN.
    pub name: String,
    pub document: PolicyDocument,
}

/// One element of `DescribeLogStreams.logStreams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogStream {
    pub log_stream_name: String,
    /// Milliseconds since the epoch, like the other times here.
    #[serde(default)]
    pub creation_time: Option<i64>,
    /// The newest event's own time. AWS updates it "on an eventual consistency basis,
    /// typically in less than an hour from ingestion".
    #[serde(default)]
    pub last_event_timestamp: Option<i64>,
    #[serde(default)]
    pub last_ingestion_time: Option<i64>,
}

impl LogStream {
    /// When CloudTrail last wrote to the stream, as near as the listing tells: its newest
    /// event, else its last ingestion, else its creation (CloudTrail creates a stream when it
    /// first delivers to it; a stream with no event yet has only that).
    pub fn last_written(&self) -> Option<DateTime<Utc>> {
        self.last_event_timestamp
            .or(self.last_ingestion_time)
            .or(self.creation_time)
            .and_then(DateTime::from_timestamp_millis)
    }
}

/// `DescribeKey.KeyMetadata`, the fields the rules read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    pub key_id: String,
    #[serde(default)]
    pub arn: Option<String>,
    /// `Enabled`, `Disabled`, `PendingDeletion`, `PendingImport`, `Unavailable`, …
    pub key_state: String,
    #[serde(default, deserialize_with = "deserialize_timestamp")]
    pub deletion_date: Option<DateTime<Utc>>,
}

/// A KMS key as `DescribeKey` and `GetKeyPolicy` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmsKey {
    pub metadata: KeyMetadata,
    /// `GetKeyPolicy` works only in the key's own account: another account's key policy is
    /// data trailwatch may lack.
    pub policy: Observed<PolicyDocument>,
}

/// A log group and what hangs off it, fetched once per scan however many trails point at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogGroupSnapshot {
    /// `None` when the group does not exist.
    pub group: Observed<Option<LogGroup>>,
    pub metric_filters: Observed<Vec<MetricFilter>>,
    /// The metric alarms of the log group's region; only filled when the group has filters.
    pub alarms: Observed<Vec<MetricAlarm>>,
    /// The streams with the newest events first (`DescribeLogStreams` by `LastEventTime`,
    /// descending), one page. Empty, unread, when every trail on the group is stopped and
    /// single-region: no verdict reads them then.
    #[serde(default = "no_streams")]
    pub streams: Observed<Vec<LogStream>>,
    /// `DescribeLogStreams` had more pages than the one read: streams whose newest event is
    /// older than the last one listed were not seen.
    #[serde(default)]
    pub more_streams: bool,
    /// The key the group is encrypted with: `None` when it has none; inside, `None` when the
    /// key does not exist any more.
    #[serde(default)]
    pub key: Option<Observed<Option<KmsKey>>>,
}

fn no_streams() -> Observed<Vec<LogStream>> {
    Ok(Vec::new())
}

/// One element of `ListSubscriptionsByTopic.Subscriptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Subscription {
    /// A subscription ARN once confirmed; `PendingConfirmation` until then.
    pub subscription_arn: String,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl Subscription {
    pub fn is_confirmed(&self) -> bool {
        self.subscription_arn.starts_with("arn:")
    }
}

/// `DescribeOrganization.Organization`, the fields the rules read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Organization {
    /// `o-…`, which names the streams of an organisation trail.
    pub id: String,
    #[serde(default)]
    pub master_account_id: Option<String>,
}

/// One level of an account's place in its organisation, with the service control policies
/// attached there (`ListPoliciesForTarget`, `DescribePolicy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyTarget {
    /// `r-…`, `ou-…`, or the account id.
    pub id: String,
    /// `ROOT`, `ORGANIZATIONAL_UNIT` or `ACCOUNT`.
    pub kind: String,
    pub policies: Vec<NamedPolicy>,
}

/// What guards the account's trails from its own principals: the SCPs on its path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guardrail {
    /// The management account, which no SCP binds.
    pub management_account: bool,
    /// The account, its OUs, and the root, in that order.
    pub path: Vec<PolicyTarget>,
}

/// A delivery role, fetched once per scan. `None` inside means the role does not exist.
pub type RoleSnapshot = Observed<Option<Role>>;

/// What `DescribeTrails` returned in one region, shadow copies included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionSnapshot {
    pub region: String,
    pub trails: Observed<Vec<Trail>>,
}

/// Per-trail data read in the trail's home region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailDetails {
    pub status: Observed<TrailStatus>,
    pub event_selectors: Observed<EventSelectors>,
    /// A multi-region trail's status in every other scanned region, by region:
    /// `GetTrailStatus` "returns trail status from a single Region".
    #[serde(default)]
    pub regional_status: BTreeMap<String, Observed<TrailStatus>>,
    /// The trail's tags (`ListTags`, in its home region), key to value; a tag set without a
    /// value reads as empty. `None`: not read.
    #[serde(default)]
    pub tags: Option<Observed<BTreeMap<String, String>>>,
}

/// Everything one scan of one account saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub account_id: String,
    pub partition: String,
    /// The region the scan ran from; account-level findings are filed here.
    pub home_region: String,
    pub regions: Vec<RegionSnapshot>,
    /// Keyed by trail ARN.
    pub trail_details: BTreeMap<String, TrailDetails>,
    /// Keyed by the log group's bare ARN (see [`LogGroupRef::bare_arn`]).
    pub log_groups: BTreeMap<String, LogGroupSnapshot>,
    /// Keyed by role ARN.
    pub roles: BTreeMap<String, RoleSnapshot>,
    /// The SNS topics tamper alarms notify, by ARN; `None` inside when the topic is gone.
    #[serde(default)]
    pub topics: BTreeMap<String, Observed<Option<Vec<Subscription>>>>,
    /// The organisation, read when a judged trail is an organisation trail.
    #[serde(default)]
    pub organization: Option<Observed<Organization>>,
    /// The SCPs on the account's path, read in organisation mode by the organisation's
    /// management or delegated administrator account.
    #[serde(default)]
    pub guardrail: Option<Observed<Guardrail>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trail_status_reads_epoch_seconds_and_empty_error() {
        let status: TrailStatus = serde_json::from_str(
            r#"{"IsLogging": true, "LatestCloudWatchLogsDeliveryTime": 1.7005e9,
                "LatestCloudWatchLogsDeliveryError": "", "StartLoggingTime": "2023-11-20T18:13:20Z"}"#,
        )
        .unwrap();
        assert_eq!(status.latest_cloud_watch_logs_delivery_error, None);
        assert_eq!(
            status
                .latest_cloud_watch_logs_delivery_time
                .unwrap()
                .timestamp(),
            1_700_500_000
        );
        assert_eq!(
            status.start_logging_time.unwrap().timestamp(),
            1_700_504_000
        );
    }

    #[test]
    fn trail_with_empty_log_group_string_has_no_log_group() {
        let trail: Trail = serde_json::from_str(
            r#"{"Name":"t","TrailARN":"arn:aws:cloudtrail:us-east-1:111122223333:trail/t",
                "HomeRegion":"us-east-1","CloudWatchLogsLogGroupArn":"","CloudWatchLogsRoleArn":null}"#,
        )
        .unwrap();
        assert_eq!(trail.cloud_watch_logs_log_group_arn, None);
        assert_eq!(trail.owner_account(), Some("111122223333"));
    }

    #[test]
    fn bad_timestamp_is_an_error_not_a_silent_none() {
        let result: Result<TrailStatus, _> =
            serde_json::from_str(r#"{"IsLogging": true, "StartLoggingTime": "yesterday"}"#);
        assert!(result.is_err());
    }
}
