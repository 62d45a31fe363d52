//! SDK types to core snapshot types. The core's types mirror the AWS wire shapes, so each
//! mapping is a field-for-field copy; empty strings become `None` as the rules expect.

use aws_smithy_types::DateTime as SmithyDateTime;
use chrono::{DateTime, Utc};
use trailwatch_core::policy::PolicyDocument;
use trailwatch_core::snapshot::{
    non_empty, AdvancedEventSelector, DataResource, EventSelector, EventSelectors, FieldSelector,
    KeyMetadata, LogGroup, LogStream, MetricAlarm, MetricFilter, MetricTransformation,
    Organization, Subscription, Trail, TrailStatus,
};
use trailwatch_core::Unavailable;

fn timestamp(t: Option<&SmithyDateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| t.to_millis().ok())
        .and_then(DateTime::from_timestamp_millis)
}

fn owned(s: Option<&str>) -> Option<String> {
    non_empty(s.map(str::to_string))
}

/// A trail without a name, ARN or home region is not something the rules can judge.
pub(crate) fn trail(t: &aws_sdk_cloudtrail::types::Trail) -> Option<Trail> {
    Some(Trail {
        name: owned(t.name())?,
        trail_arn: owned(t.trail_arn())?,
        home_region: owned(t.home_region())?,
        is_multi_region_trail: t.is_multi_region_trail().unwrap_or(false),
        is_organization_trail: t.is_organization_trail().unwrap_or(false),
        cloud_watch_logs_log_group_arn: owned(t.cloud_watch_logs_log_group_arn()),
        cloud_watch_logs_role_arn: owned(t.cloud_watch_logs_role_arn()),
        log_file_validation_enabled: t.log_file_validation_enabled().unwrap_or(false),
        has_custom_event_selectors: t.has_custom_event_selectors().unwrap_or(false),
        s3_bucket_name: owned(t.s3_bucket_name()),
        include_global_service_events: t.include_global_service_events().unwrap_or(true),
        s3_key_prefix: owned(t.s3_key_prefix()),
        kms_key_id: owned(t.kms_key_id()),
        sns_topic_arn: owned(t.sns_topic_arn()),
    })
}

pub(crate) fn trail_status(
    s: &aws_sdk_cloudtrail::operation::get_trail_status::GetTrailStatusOutput,
) -> Result<TrailStatus, Unavailable> {
    // IsLogging is the one field every rule leans on; without it we know nothing.
    let is_logging = s.is_logging().ok_or_else(|| {
        Unavailable::new("GetTrailStatus", None, "the response carried no IsLogging")
    })?;
    Ok(TrailStatus {
        is_logging,
        latest_cloud_watch_logs_delivery_error: owned(s.latest_cloud_watch_logs_delivery_error()),
        latest_cloud_watch_logs_delivery_time: timestamp(s.latest_cloud_watch_logs_delivery_time()),
        start_logging_time: timestamp(s.start_logging_time()),
        stop_logging_time: timestamp(s.stop_logging_time()),
    })
}

pub(crate) fn event_selectors(
    s: &aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput,
) -> EventSelectors {
    EventSelectors {
        event_selectors: s
            .event_selectors()
            .iter()
            .map(|e| EventSelector {
                read_write_type: e.read_write_type().map(|t| t.as_str().to_string()),
                include_management_events: e.include_management_events(),
                exclude_management_event_sources: e.exclude_management_event_sources().to_vec(),
                data_resources: e
                    .data_resources()
                    .iter()
                    .map(|d| DataResource {
                        r#type: d.r#type().unwrap_or_default().to_string(),
                        values: d.values().to_vec(),
                    })
                    .collect(),
            })
            .collect(),
        advanced_event_selectors: s
            .advanced_event_selectors()
            .iter()
            .map(|a| AdvancedEventSelector {
                name: owned(a.name()),
                field_selectors: a
                    .field_selectors()
                    .iter()
                    .map(|f| FieldSelector {
                        field: f.field().to_string(),
                        equals: f.equals().to_vec(),
                        starts_with: f.starts_with().to_vec(),
                        ends_with: f.ends_with().to_vec(),
                        not_equals: f.not_equals().to_vec(),
                        not_starts_with: f.not_starts_with().to_vec(),
                        not_ends_with: f.not_ends_with().to_vec(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn log_group(g: &aws_sdk_cloudwatchlogs::types::LogGroup) -> Option<LogGroup> {
    Some(LogGroup {
        log_group_name: owned(g.log_group_name())?,
        arn: owned(g.arn()),
        retention_in_days: g.retention_in_days(),
        creation_time: g.creation_time(),
        log_group_class: g.log_group_class().map(|c| c.as_str().to_string()),
        kms_key_id: owned(g.kms_key_id()),
    })
}

pub(crate) fn metric_filter(f: &aws_sdk_cloudwatchlogs::types::MetricFilter) -> MetricFilter {
    MetricFilter {
        filter_name: f.filter_name().unwrap_or_default().to_string(),
        filter_pattern: f.filter_pattern().unwrap_or_default().to_string(),
        metric_transformations: f
            .metric_transformations()
            .iter()
            .map(|m| MetricTransformation {
                metric_name: m.metric_name().to_string(),
                metric_namespace: m.metric_namespace().to_string(),
                metric_value: m.metric_value().to_string(),
                default_value: m.default_value(),
            })
            .collect(),
    }
}

pub(crate) fn metric_alarm(a: &aws_sdk_cloudwatch::types::MetricAlarm) -> MetricAlarm {
    MetricAlarm {
        alarm_name: a.alarm_name().unwrap_or_default().to_string(),
        metric_name: owned(a.metric_name()),
        namespace: owned(a.namespace()),
        actions_enabled: a.actions_enabled().unwrap_or(true),
        alarm_actions: a.alarm_actions().to_vec(),
        statistic: a.statistic().map(|s| s.as_str().to_string()),
        extended_statistic: owned(a.extended_statistic()),
        threshold: a.threshold(),
        comparison_operator: a.comparison_operator().map(|c| c.as_str().to_string()),
        evaluation_periods: a.evaluation_periods(),
        datapoints_to_alarm: a.datapoints_to_alarm(),
        treat_missing_data: owned(a.treat_missing_data()),
        // Only whether the alarm is on metric math matters to the rules, so each query is
        // kept by its id and expression.
        metrics: a
            .metrics()
            .iter()
            .map(|m| serde_json::json!({"Id": m.id(), "Expression": m.expression()}))
            .collect(),
    }
}

pub(crate) fn log_stream(s: &aws_sdk_cloudwatchlogs::types::LogStream) -> Option<LogStream> {
    Some(LogStream {
        log_stream_name: owned(s.log_stream_name())?,
        creation_time: s.creation_time(),
        last_event_timestamp: s.last_event_timestamp(),
        last_ingestion_time: s.last_ingestion_time(),
    })
}

pub(crate) fn key_metadata(k: &aws_sdk_kms::types::KeyMetadata) -> KeyMetadata {
    KeyMetadata {
        key_id: k.key_id().to_string(),
        arn: owned(k.arn()),
        key_state: k
            .key_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "Unknown".into()),
        deletion_date: timestamp(k.deletion_date()),
    }
}

pub(crate) fn subscription(s: &aws_sdk_sns::types::Subscription) -> Subscription {
    Subscription {
        subscription_arn: s.subscription_arn().unwrap_or_default().to_string(),
        protocol: owned(s.protocol()),
        endpoint: owned(s.endpoint()),
    }
}

pub(crate) fn organization(
    o: &aws_sdk_organizations::types::Organization,
) -> Result<Organization, Unavailable> {
    Ok(Organization {
        id: owned(o.id()).ok_or_else(|| {
            Unavailable::new("DescribeOrganization", None, "the response carried no id")
        })?,
        master_account_id: owned(o.master_account_id()),
    })
}

/// IAM returns policy documents URL-encoded; a document that does not parse is data we lack.
pub(crate) fn policy_document(
    operation: &str,
    text: Option<&str>,
) -> Result<PolicyDocument, Unavailable> {
    let text = text.ok_or_else(|| Unavailable::new(operation, None, "no policy document"))?;
    PolicyDocument::parse(text).map_err(|e| Unavailable::new(operation, None, e.to_string()))
}
