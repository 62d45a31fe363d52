//! CloudTrail API calls delivered by EventBridge ("AWS API Call via CloudTrail"), parsed
//! leniently into what trailwatch needs to re-check, and classified.
//!
//! These are trailwatch's own types rather than `aws_lambda_events`' `AWSAPICall`, which rejects
//! an event without `eventVersion` before the handler runs. Every field trailwatch does not
//! use is optional; every field it does use is checked, and a missing one is a clear error that
//! names it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Events larger than this are not EventBridge events (which are capped at 256 KiB).
pub const MAX_EVENT_BYTES: usize = 262_144;

pub const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// The envelope EventBridge puts around a CloudTrail record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChangeEvent {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub detail_type: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub detail: Option<ApiCall>,
}

/// The CloudTrail record inside `detail`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCall {
    #[serde(default)]
    pub event_version: Option<String>,
    #[serde(default)]
    pub event_source: Option<String>,
    #[serde(default)]
    pub event_name: Option<String>,
    #[serde(default)]
    pub event_time: Option<String>,
    #[serde(default)]
    pub aws_region: Option<String>,
    #[serde(default)]
    pub recipient_account_id: Option<String>,
    /// CloudTrail capitalises the acronym, which camelCase would not.
    #[serde(default, rename = "sourceIPAddress")]
    pub source_ip_address: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub user_identity: Option<Value>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub request_parameters: Option<Value>,
}

/// What a change touched, and so what to re-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A trail by name or ARN; `deleted` for DeleteTrail.
    Trail { name_or_arn: String, deleted: bool },
    /// Every trail that delivers to this log group.
    LogGroup { name: String },
    /// Every trail whose delivery role this is.
    Role { name: String },
}

/// Who did what, for the alert: the questions an on-call engineer asks first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub arn: Option<String>,
    pub source_ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub event_time: Option<String>,
    pub event_name: String,
    pub event_source: String,
}

/// A change event that passed every check, ready to re-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub event_id: String,
    pub account: String,
    pub region: String,
    pub target: Target,
    pub actor: Actor,
    /// The request parameters, as "what changed" for the alert.
    pub request_parameters: Option<Value>,
}

/// Why an event is not re-checked. None of these is worth retrying: the same event would fail
/// the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is malformed: {0}")]
    Malformed(String),
    #[error("event is {0} bytes, more than EventBridge ever sends")]
    TooLarge(usize),
    #[error("event is missing {0}")]
    Missing(&'static str),
    #[error(
        "event is not a CloudTrail API call (source {source_name:?}, detail-type {detail_type:?})"
    )]
    Foreign {
        source_name: String,
        detail_type: String,
    },
    #[error("{event_source} {event_name} is not a call trailwatch watches")]
    Unwatched {
        event_source: String,
        event_name: String,
    },
    #[error("{event_name} failed with {error_code}, so nothing changed")]
    CallFailed {
        event_name: String,
        error_code: String,
    },
}

impl EventError {
    /// A well-formed CloudTrail event that needs no re-check: a call trailwatch does not watch,
    /// or one that failed (and so changed nothing). The rest are malformed or foreign events,
    /// which point at a broken rule or a bad replay and deserve an error.
    pub fn needs_no_work(&self) -> bool {
        matches!(
            self,
            EventError::Unwatched { .. } | EventError::CallFailed { .. }
        )
    }
}

/// The calls the EventBridge rule matches, by event source.
pub const WATCHED: [(&str, &[&str]); 3] = [
    (
        "cloudtrail.amazonaws.com",
        &[
            "CreateTrail",
            "UpdateTrail",
            "StartLogging",
            "StopLogging",
            "DeleteTrail",
            "PutEventSelectors",
        ],
    ),
    ("logs.amazonaws.com", &["DeleteLogGroup"]),
    (
        "iam.amazonaws.com",
        &[
            "DeleteRole",
            "PutRolePolicy",
            "DeleteRolePolicy",
            "AttachRolePolicy",
            "DetachRolePolicy",
            "UpdateAssumeRolePolicy",
        ],
    ),
];

/// The EventBridge pattern that delivers exactly the [`WATCHED`] calls, and only successful
/// ones: a call that failed changed nothing. The change rules under `infra/` carry this
/// pattern (`tests/tests/infra.rs` checks that they do), so the rule and the handler cannot
/// drift apart. Lists are sorted, as the templates write them.
pub fn rule_pattern() -> Value {
    let mut event_sources: Vec<&str> = WATCHED.iter().map(|(source, _)| *source).collect();
    event_sources.sort_unstable();
    // EventBridge names a service's events `aws.<service>`, after its endpoint prefix.
    let sources: Vec<String> = event_sources
        .iter()
        .map(|s| format!("aws.{}", s.trim_end_matches(".amazonaws.com")))
        .collect();
    let mut names: Vec<&str> = WATCHED
        .iter()
        .flat_map(|(_, n)| n.iter().copied())
        .collect();
    names.sort_unstable();
    serde_json::json!({
        "source": sources,
        "detail-type": [DETAIL_TYPE],
        "detail": {
            "eventSource": event_sources,
            "eventName": names,
            "errorCode": [{"exists": false}],
        },
    })
}

fn parameter(call: &ApiCall, names: &[&'static str]) -> Option<String> {
    let parameters = call.request_parameters.as_ref()?;
    names
        .iter()
        .find_map(|n| parameters.get(*n).and_then(Value::as_str))
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string)
}

/// Parses and classifies one event.
pub fn parse(bytes: &[u8]) -> Result<Change, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(bytes.len()));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
    parse_value(value)
}

/// Classifies an event already read as JSON.
fn parse_value(value: Value) -> Result<Change, EventError> {
    // Serde would also read a struct from a JSON array, field by field in order, so an event
    // or a `detail` that is an array could pass as a well-formed call nobody watches and be
    // skipped in silence. Both must be objects.
    if !value.is_object() {
        return Err(EventError::Malformed(
            "the event is not a JSON object".into(),
        ));
    }
    if value.get("detail").is_some_and(|d| !d.is_object()) {
        return Err(EventError::Malformed(
            "`detail` is not a JSON object".into(),
        ));
    }
    let event: ChangeEvent =
        serde_json::from_value(value).map_err(|e| EventError::Malformed(e.to_string()))?;
    classify(event)
}

/// Parses an EventBridge event, or a bare CloudTrail record as the console's event history and
/// `aws cloudtrail lookup-events` (its `CloudTrailEvent` field) give it, which is what an
/// incident responder has at hand. A record is wrapped in the envelope EventBridge would have
/// put around it.
pub fn parse_event_or_record(bytes: &[u8]) -> Result<Change, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(bytes.len()));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
    let is_record = value.get("detail").is_none() && value.get("eventSource").is_some();
    if !is_record {
        return parse_value(value);
    }
    let call: ApiCall =
        serde_json::from_value(value.clone()).map_err(|e| EventError::Malformed(e.to_string()))?;
    let service = call
        .event_source
        .as_deref()
        .and_then(|s| s.split('.').next())
        .unwrap_or_default();
    classify(ChangeEvent {
        id: value
            .get("eventID")
            .and_then(Value::as_str)
            .map(str::to_string),
        detail_type: Some(DETAIL_TYPE.into()),
        source: Some(format!("aws.{service}")),
        account: call.recipient_account_id.clone(),
        region: call.aws_region.clone(),
        time: call.event_time.clone(),
        detail: Some(call),
    })
}

/// Classifies an already-parsed event.
pub fn classify(event: ChangeEvent) -> Result<Change, EventError> {
    let detail_type = event.detail_type.clone().unwrap_or_default();
    let source = event.source.clone().unwrap_or_default();
    if detail_type != DETAIL_TYPE || !source.starts_with("aws.") {
        return Err(EventError::Foreign {
            source_name: source,
            detail_type,
        });
    }
    // The id is how every log line and dead letter names the event; an empty one names nothing.
    let event_id = event
        .id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or(EventError::Missing("id"))?;
    let call = event.detail.ok_or(EventError::Missing("detail"))?;
    let event_source = call
        .event_source
        .clone()
        .ok_or(EventError::Missing("detail.eventSource"))?;
    let event_name = call
        .event_name
        .clone()
        .ok_or(EventError::Missing("detail.eventName"))?;
    if let Some(error_code) = call.error_code.clone().filter(|c| !c.is_empty()) {
        return Err(EventError::CallFailed {
            event_name,
            error_code,
        });
    }
    let watched = WATCHED
        .iter()
        .any(|(s, names)| *s == event_source && names.contains(&event_name.as_str()));
    if !watched {
        return Err(EventError::Unwatched {
            event_source,
            event_name,
        });
    }
    let target = match event_source.as_str() {
        "cloudtrail.amazonaws.com" => Target::Trail {
            // PutEventSelectors names the trail `trailName`; the others `name`.
            name_or_arn: parameter(&call, &["name", "trailName"])
                .ok_or(EventError::Missing("detail.requestParameters.name"))?,
            deleted: event_name == "DeleteTrail",
        },
        "logs.amazonaws.com" => Target::LogGroup {
            name: parameter(&call, &["logGroupName"])
                .ok_or(EventError::Missing("detail.requestParameters.logGroupName"))?,
        },
        _ => Target::Role {
            name: parameter(&call, &["roleName"])
                .ok_or(EventError::Missing("detail.requestParameters.roleName"))?,
        },
    };
    let account = event
        .account
        .or_else(|| call.recipient_account_id.clone())
        .ok_or(EventError::Missing("account"))?;
    // Checked here, not later against the scanned account: an empty or garbled account would
    // otherwise read as "another account's event" and hide what is really wrong.
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EventError::Malformed(format!(
            "account {account:?} is not a 12-digit AWS account id"
        )));
    }
    let region = event
        .region
        .or_else(|| call.aws_region.clone())
        .ok_or(EventError::Missing("region"))?;
    if !crate::arn::looks_like_region(&region) {
        return Err(EventError::Malformed(format!(
            "region {region:?} is not an AWS region name"
        )));
    }
    let actor = Actor {
        arn: call
            .user_identity
            .as_ref()
            .and_then(|u| u.get("arn"))
            .and_then(Value::as_str)
            .map(str::to_string),
        source_ip_address: call.source_ip_address.clone(),
        user_agent: call.user_agent.clone(),
        event_time: call.event_time.clone().or(event.time),
        event_name,
        event_source,
    };
    Ok(Change {
        event_id,
        account,
        region,
        target,
        actor,
        request_parameters: call.request_parameters,
    })
}

/// The event's `id`, if it has one, so that even a rejected event can be named in the log.
pub fn event_id(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(bytes)
        .ok()?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../fixtures/events/", $name))
        };
    }

    #[test]
    fn an_empty_id_account_or_region_is_refused_by_name() {
        let base: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        let with = |key: &str, value: &str| {
            let mut event = base.clone();
            event[key] = Value::String(value.into());
            parse(event.to_string().as_bytes())
        };
        assert_eq!(with("id", " "), Err(EventError::Missing("id")));
        let account = with("account", "").unwrap_err().to_string();
        assert!(account.contains("12-digit"), "{account}");
        let region = with("region", "EU WEST").unwrap_err().to_string();
        assert!(region.contains("region name"), "{region}");
    }

    #[test]
    fn an_event_or_detail_written_as_an_array_is_malformed_not_skipped() {
        // Found by the fuzzer: serde reads a struct from an array, so ["", "", ""] as
        // `detail` became a call with an empty name, "not watched", and was skipped.
        let mut event: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        event["detail"] = serde_json::json!(["", "", ""]);
        assert!(matches!(
            parse(event.to_string().as_bytes()),
            Err(EventError::Malformed(_))
        ));
        let array = serde_json::json!(["id", DETAIL_TYPE, "aws.cloudtrail"]);
        assert!(matches!(
            parse(array.to_string().as_bytes()),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn rule_pattern_names_each_service_the_way_eventbridge_does() {
        let pattern = rule_pattern();
        assert_eq!(
            pattern["source"],
            serde_json::json!(["aws.cloudtrail", "aws.iam", "aws.logs"])
        );
        assert_eq!(pattern["detail"]["eventName"].as_array().unwrap().len(), 13);
        assert_eq!(
            pattern["detail"]["errorCode"],
            serde_json::json!([{"exists": false}])
        );
    }

    #[test]
    fn stop_logging_names_the_trail_and_the_actor() {
        let change = parse(fixture!("stop_logging.json")).unwrap();
        assert_eq!(
            change.target,
            Target::Trail {
                name_or_arn: "arn:aws:cloudtrail:us-east-1:111122223333:trail/management-events"
                    .into(),
                deleted: false
            }
        );
        assert_eq!(
            change.actor.arn.as_deref(),
            Some("arn:aws:iam::111122223333:user/mallory")
        );
        assert_eq!(
            change.actor.source_ip_address.as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(change.actor.event_name, "StopLogging");
        assert_eq!(change.account, "111122223333");
        assert_eq!(change.region, "us-east-1");
        assert_eq!(change.event_id, "6f1d0c8e-3b9f-4c7e-9a51-2b7f0d0f5a11");
    }

    #[test]
    fn event_without_event_version_is_still_accepted() {
        let mut event: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        event["detail"]
            .as_object_mut()
            .unwrap()
            .remove("eventVersion");
        let change = parse(event.to_string().as_bytes()).unwrap();
        assert_eq!(change.actor.event_name, "StopLogging");
    }

    #[test]
    fn a_bare_cloudtrail_record_is_read_like_its_event() {
        let event: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        let record = event["detail"].to_string();
        let from_record = parse_event_or_record(record.as_bytes()).unwrap();
        let from_event = parse(fixture!("stop_logging.json")).unwrap();
        assert_eq!(from_record.target, from_event.target);
        assert_eq!(from_record.actor, from_event.actor);
        assert_eq!(from_record.account, from_event.account);
        assert_eq!(from_record.region, from_event.region);
        assert_eq!(
            from_record.event_id,
            event["detail"]["eventID"].as_str().unwrap()
        );
        assert_eq!(
            parse_event_or_record(fixture!("stop_logging.json")),
            Ok(from_event)
        );
    }

    #[test]
    fn delete_trail_is_marked_deleted() {
        let change = parse(fixture!("delete_trail.json")).unwrap();
        assert_eq!(
            change.target,
            Target::Trail {
                name_or_arn: "legacy-archive".into(),
                deleted: true
            }
        );
    }

    #[test]
    fn put_event_selectors_uses_trail_name() {
        let change = parse(fixture!("put_event_selectors.json")).unwrap();
        assert!(
            matches!(change.target, Target::Trail { ref name_or_arn, .. } if name_or_arn == "management-events")
        );
    }

    #[test]
    fn log_group_and_role_events_target_what_they_touched() {
        assert_eq!(
            parse(fixture!("delete_log_group.json")).unwrap().target,
            Target::LogGroup {
                name: "aws-cloudtrail-logs-111122223333".into()
            }
        );
        assert_eq!(
            parse(fixture!("put_role_policy.json")).unwrap().target,
            Target::Role {
                name: "CloudTrailRoleForCloudWatchLogs".into()
            }
        );
    }

    #[test]
    fn failed_foreign_unwatched_and_broken_events_are_clear_errors() {
        let mut failed: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        failed["detail"]["errorCode"] = "AccessDenied".into();
        assert_eq!(
            parse(failed.to_string().as_bytes()),
            Err(EventError::CallFailed {
                event_name: "StopLogging".into(),
                error_code: "AccessDenied".into()
            })
        );
        let mut foreign: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        foreign["detail-type"] = "EC2 Instance State-change Notification".into();
        assert!(matches!(
            parse(foreign.to_string().as_bytes()),
            Err(EventError::Foreign { .. })
        ));
        let mut unwatched: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        unwatched["detail"]["eventName"] = "LookupEvents".into();
        assert!(matches!(
            parse(unwatched.to_string().as_bytes()),
            Err(EventError::Unwatched { .. })
        ));
        let mut nameless: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        nameless["detail"]["requestParameters"] = serde_json::json!({});
        assert_eq!(
            parse(nameless.to_string().as_bytes()),
            Err(EventError::Missing("detail.requestParameters.name"))
        );
        assert!(matches!(
            parse(fixture!("malformed.json")),
            Err(EventError::Malformed(_))
        ));
        assert!(matches!(
            parse(&vec![b' '; MAX_EVENT_BYTES + 1]),
            Err(EventError::TooLarge(_))
        ));
        assert_eq!(event_id(fixture!("malformed.json")), None);
    }
}
