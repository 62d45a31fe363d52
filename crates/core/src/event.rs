//! CloudTrail API calls delivered by EventBridge ("AWS API Call via CloudTrail"), parsed
//! leniently into what trailwatch needs to re-check, and classified.
//!
//! These are trailwatch's own types rather than `aws_lambda_events`' `AWSAPICall`, which rejects
//! an event without `eventVersion` before the handler runs. Every field trailwatch does not
//! use is optional; every field it does use is checked, and a missing one is a clear error that
//! names it.

use crate::arn::Arn;
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
    /// The resources the call named, with their ARNs: how a KMS event says which key, whatever
    /// form of id the caller passed.
    #[serde(default)]
    pub resources: Option<Value>,
    /// CloudTrail's `requestID`, the id a record falls back on when it has no `eventID`.
    #[serde(default, rename = "requestID")]
    pub request_id: Option<String>,
    #[serde(default, rename = "eventID")]
    pub event_id: Option<String>,
}

/// What a change touched, and so what to re-check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A trail by name or ARN; `deleted` for DeleteTrail.
    Trail { name_or_arn: String, deleted: bool },
    /// Every trail that delivers to this log group: the group itself, its metric filters, its
    /// key, its retention.
    LogGroup { name: String },
    /// Every trail whose delivery role this is: its policies, trust and boundary.
    Role { name: String },
    /// Every trail whose delivery role holds this managed policy, attached or as boundary.
    Policy { arn: String },
    /// Every trail whose tamper alarm may be one of these.
    Alarms { names: Vec<String> },
    /// Every trail whose log group this KMS key encrypts; or trailwatch's own key. The key as
    /// the event's `resources` name it (an ARN), else as the caller passed it.
    Key { id: String },
    /// An EventBridge rule, watched when it is trailwatch's own.
    Rule { name: String, bus: Option<String> },
    /// A Lambda function (name, or full or partial ARN), watched when it is trailwatch's own.
    Function { name: String },
    /// An SNS topic: trailwatch's own, or one a tamper alarm may page.
    Topic { arn: String },
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

/// The calls the EventBridge rule matches, by event source: everything that can break a
/// trail's delivery to CloudWatch Logs or the alarm on it, and what can blind trailwatch
/// itself. Lambda names its events after the API version (`DeleteFunction20150331`).
pub const WATCHED: [(&str, &[&str]); 8] = [
    (
        "cloudtrail.amazonaws.com",
        &[
            "CreateTrail",
            "UpdateTrail",
            "StartLogging",
            "StopLogging",
            "DeleteTrail",
            "PutEventSelectors",
            // A trail's tags hold its exemption: the re-check applies or lifts it at once.
            "AddTags",
            "RemoveTags",
        ],
    ),
    (
        "logs.amazonaws.com",
        &[
            "DeleteLogGroup",
            "DeleteMetricFilter",
            "PutMetricFilter",
            "AssociateKmsKey",
            "DisassociateKmsKey",
            "DeleteRetentionPolicy",
        ],
    ),
    (
        "monitoring.amazonaws.com",
        &["DeleteAlarms", "DisableAlarmActions", "PutMetricAlarm"],
    ),
    (
        "iam.amazonaws.com",
        &[
            "DeleteRole",
            "PutRolePolicy",
            "DeleteRolePolicy",
            "AttachRolePolicy",
            "DetachRolePolicy",
            "UpdateAssumeRolePolicy",
            "CreatePolicyVersion",
            "SetDefaultPolicyVersion",
            "DeletePolicyVersion",
            "PutRolePermissionsBoundary",
            "DeleteRolePermissionsBoundary",
        ],
    ),
    (
        "kms.amazonaws.com",
        &["DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy"],
    ),
    (
        "events.amazonaws.com",
        &["DisableRule", "DeleteRule", "RemoveTargets"],
    ),
    (
        "lambda.amazonaws.com",
        &["DeleteFunction20150331", "PutFunctionConcurrency20171031"],
    ),
    ("sns.amazonaws.com", &["DeleteTopic", "SetTopicAttributes"]),
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

/// A list parameter such as `alarmNames`, or a single one such as `alarmName`.
fn parameter_list(call: &ApiCall, list: &str, single: &str) -> Vec<String> {
    let Some(parameters) = call.request_parameters.as_ref() else {
        return vec![];
    };
    let mut names: Vec<String> = parameters
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string)
        .collect();
    if let Some(one) = parameters.get(single).and_then(Value::as_str) {
        names.push(one.to_string());
    }
    names
}

/// The key a KMS call was about: the ARN among the event's resources, else the `keyId` the
/// caller passed (an id, an ARN or an alias).
fn kms_key(call: &ApiCall) -> Option<String> {
    call.resources
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("type").and_then(Value::as_str) != Some("AWS::KMS::Alias"))
        .find_map(|r| r.get("ARN").and_then(Value::as_str))
        .map(str::to_string)
        .or_else(|| parameter(call, &["keyId"]))
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

/// Parses an EventBridge event, or a CloudTrail record in the forms other tools publish it,
/// which is what an incident responder has at hand:
///
/// - a bare record, as the console's event history shows it;
/// - `aws cloudtrail lookup-events` output, whose events carry the record as a JSON string in
///   `CloudTrailEvent` (one event, or `{"Events": [one]}`);
/// - a CloudTrail log file from S3, `{"Records": [one]}`.
///
/// A record is wrapped in the envelope EventBridge would have put around it. Only what the
/// re-check needs is required; a record without `eventID` is named by its `requestID`, and one
/// without `recipientAccountId` by its caller's account.
pub fn parse_event_or_record(bytes: &[u8]) -> Result<Change, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(bytes.len()));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
    let record = match unwrap_record(value)? {
        Unwrapped::Event(event) => return parse_value(event),
        Unwrapped::Record(record) => record,
    };
    if !record.is_object() {
        return Err(EventError::Malformed(
            "the record is not a JSON object".into(),
        ));
    }
    let call: ApiCall =
        serde_json::from_value(record.clone()).map_err(|e| EventError::Malformed(e.to_string()))?;
    let service = call
        .event_source
        .as_deref()
        .and_then(|s| s.split('.').next())
        .unwrap_or_default();
    let caller_account = call
        .user_identity
        .as_ref()
        .and_then(|u| u.get("accountId"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let id = call
        .event_id
        .clone()
        .or_else(|| call.request_id.clone())
        .filter(|id| !id.trim().is_empty());
    classify(ChangeEvent {
        id,
        detail_type: Some(DETAIL_TYPE.into()),
        source: Some(format!("aws.{service}")),
        account: call.recipient_account_id.clone().or(caller_account),
        region: call.aws_region.clone(),
        time: call.event_time.clone(),
        detail: Some(call),
    })
}

enum Unwrapped {
    Event(Value),
    Record(Value),
}

/// The one event or record inside whatever wraps it.
fn unwrap_record(value: Value) -> Result<Unwrapped, EventError> {
    let single = |list: &Value, what: &str| -> Result<Value, EventError> {
        match list.as_array().map(Vec::as_slice) {
            Some([one]) => Ok(one.clone()),
            Some(many) => Err(EventError::Malformed(format!(
                "{what} holds {} entries; replay one at a time (for example with jq '.{what}[0]')",
                many.len()
            ))),
            None => Err(EventError::Malformed(format!("`{what}` is not a list"))),
        }
    };
    if let Some(records) = value.get("Records") {
        return unwrap_record(single(records, "Records")?);
    }
    if let Some(events) = value.get("Events") {
        return unwrap_record(single(events, "Events")?);
    }
    if let Some(embedded) = value.get("CloudTrailEvent") {
        let text = embedded
            .as_str()
            .ok_or_else(|| EventError::Malformed("`CloudTrailEvent` is not a string".into()))?;
        let record: Value =
            serde_json::from_str(text).map_err(|e| EventError::Malformed(e.to_string()))?;
        return Ok(Unwrapped::Record(record));
    }
    let is_record = value.get("detail").is_none() && value.get("eventSource").is_some();
    Ok(match is_record {
        true => Unwrapped::Record(value),
        false => Unwrapped::Event(value),
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
    let target = target_of(&call, &event_source, &event_name)?;
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
    let identity = |key: &str| {
        call.user_identity
            .as_ref()
            .and_then(|u| u.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // An AWS service acting for someone has no ARN of its own, but says who invoked it.
    let actor = Actor {
        arn: identity("arn")
            .or_else(|| identity("invokedBy"))
            .or_else(|| identity("principalId")),
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

/// What a watched call touched, from its request parameters.
fn target_of(call: &ApiCall, event_source: &str, event_name: &str) -> Result<Target, EventError> {
    let required = |names: &[&'static str], missing: &'static str| {
        parameter(call, names).ok_or(EventError::Missing(missing))
    };
    Ok(match event_source {
        "cloudtrail.amazonaws.com" if matches!(event_name, "AddTags" | "RemoveTags") => {
            let arn = required(&["resourceId"], "detail.requestParameters.resourceId")?;
            // The same calls tag event data stores, channels and dashboards, which hold no
            // exemption.
            let is_trail = Arn::parse(&arn).is_some_and(|a| a.resource.starts_with("trail/"));
            if !is_trail {
                return Err(EventError::Unwatched {
                    event_source: event_source.to_string(),
                    event_name: format!("{event_name} on {arn}"),
                });
            }
            Target::Trail {
                name_or_arn: arn,
                deleted: false,
            }
        }
        "cloudtrail.amazonaws.com" => Target::Trail {
            // PutEventSelectors names the trail `trailName`; the others `name`.
            name_or_arn: required(&["name", "trailName"], "detail.requestParameters.name")?,
            deleted: event_name == "DeleteTrail",
        },
        "logs.amazonaws.com" => Target::LogGroup {
            name: required(&["logGroupName"], "detail.requestParameters.logGroupName")?,
        },
        "monitoring.amazonaws.com" => {
            let names = parameter_list(call, "alarmNames", "alarmName");
            if names.is_empty() {
                return Err(EventError::Missing("detail.requestParameters.alarmNames"));
            }
            Target::Alarms { names }
        }
        "iam.amazonaws.com" if event_name.contains("PolicyVersion") => Target::Policy {
            arn: required(&["policyArn"], "detail.requestParameters.policyArn")?,
        },
        "iam.amazonaws.com" => Target::Role {
            name: required(&["roleName"], "detail.requestParameters.roleName")?,
        },
        "kms.amazonaws.com" => Target::Key {
            id: kms_key(call).ok_or(EventError::Missing("detail.requestParameters.keyId"))?,
        },
        "events.amazonaws.com" => Target::Rule {
            // RemoveTargets names the rule `rule`; the others `name`.
            name: required(&["name", "rule"], "detail.requestParameters.name")?,
            bus: parameter(call, &["eventBusName"]),
        },
        "lambda.amazonaws.com" => Target::Function {
            name: required(&["functionName"], "detail.requestParameters.functionName")?,
        },
        _ => Target::Topic {
            arn: required(&["topicArn"], "detail.requestParameters.topicArn")?,
        },
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
            serde_json::json!([
                "aws.cloudtrail",
                "aws.events",
                "aws.iam",
                "aws.kms",
                "aws.lambda",
                "aws.logs",
                "aws.monitoring",
                "aws.sns"
            ])
        );
        assert_eq!(pattern["detail"]["eventName"].as_array().unwrap().len(), 38);
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
    fn a_record_is_read_in_the_wrappers_other_tools_give_it() {
        let event: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        let record = event["detail"].clone();
        let expected = parse_event_or_record(record.to_string().as_bytes()).unwrap();
        // `aws cloudtrail lookup-events`: the record as a JSON string, one event or a list.
        let looked_up = serde_json::json!({"EventId": "x", "CloudTrailEvent": record.to_string()});
        let listed = serde_json::json!({"Events": [looked_up.clone()]});
        // A CloudTrail log file from S3.
        let file = serde_json::json!({"Records": [record.clone()]});
        for wrapped in [looked_up, listed, file] {
            assert_eq!(
                parse_event_or_record(wrapped.to_string().as_bytes()),
                Ok(expected.clone()),
                "{wrapped}"
            );
        }
        let two = serde_json::json!({"Records": [record.clone(), record]});
        let refused = parse_event_or_record(two.to_string().as_bytes()).unwrap_err();
        assert!(
            refused.to_string().contains("replay one at a time"),
            "{refused}"
        );
    }

    #[test]
    fn a_record_without_its_optional_fields_is_still_read() {
        let event: Value = serde_json::from_slice(fixture!("stop_logging.json")).unwrap();
        let mut record = event["detail"].clone();
        let fields = record.as_object_mut().unwrap();
        for optional in [
            "eventID",
            "recipientAccountId",
            "userAgent",
            "eventVersion",
            "tlsDetails",
        ] {
            fields.remove(optional);
        }
        // A call an AWS service made: no ARN of its own, and a service for an address.
        fields.insert(
            "userIdentity".into(),
            serde_json::json!({"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com",
                               "accountId": "111122223333"}),
        );
        fields.insert(
            "sourceIPAddress".into(),
            "cloudformation.amazonaws.com".into(),
        );
        let change = parse_event_or_record(record.to_string().as_bytes()).unwrap();
        assert_eq!(change.account, "111122223333", "from the caller's account");
        assert_eq!(change.event_id, record["requestID"].as_str().unwrap());
        assert_eq!(
            change.actor.arn.as_deref(),
            Some("cloudformation.amazonaws.com")
        );
        assert_eq!(change.actor.user_agent, None);
        assert_eq!(
            change.actor.source_ip_address.as_deref(),
            Some("cloudformation.amazonaws.com")
        );
    }

    #[test]
    fn each_new_watched_call_names_what_it_touched() {
        let base: Value = serde_json::from_slice(fixture!("delete_log_group.json")).unwrap();
        let call = |source: &str, name: &str, parameters: Value, resources: Value| {
            let mut event = base.clone();
            event["source"] = format!("aws.{source}").into();
            event["detail"]["eventSource"] = format!("{source}.amazonaws.com").into();
            event["detail"]["eventName"] = name.into();
            event["detail"]["requestParameters"] = parameters;
            event["detail"]["resources"] = resources;
            parse(event.to_string().as_bytes()).map(|c| c.target)
        };
        let none = Value::Null;
        assert_eq!(
            call(
                "monitoring",
                "DeleteAlarms",
                serde_json::json!({"alarmNames": ["a", "b"]}),
                none.clone()
            ),
            Ok(Target::Alarms {
                names: vec!["a".into(), "b".into()]
            })
        );
        assert_eq!(
            call(
                "monitoring",
                "PutMetricAlarm",
                serde_json::json!({"alarmName": "tamper"}),
                none.clone()
            ),
            Ok(Target::Alarms {
                names: vec!["tamper".into()]
            })
        );
        assert_eq!(
            call(
                "iam",
                "SetDefaultPolicyVersion",
                serde_json::json!({"policyArn": "arn:aws:iam::111122223333:policy/p", "versionId": "v3"}),
                none.clone()
            ),
            Ok(Target::Policy {
                arn: "arn:aws:iam::111122223333:policy/p".into()
            })
        );
        assert_eq!(
            call(
                "iam",
                "PutRolePermissionsBoundary",
                serde_json::json!({"roleName": "delivery", "permissionsBoundary": "arn:aws:iam::aws:policy/x"}),
                none.clone()
            ),
            Ok(Target::Role {
                name: "delivery".into()
            })
        );
        // KMS: the key's ARN from the event's resources, whatever the caller passed.
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            call(
                "kms",
                "ScheduleKeyDeletion",
                serde_json::json!({"keyId": "alias/logs", "pendingWindowInDays": 7}),
                serde_json::json!([{"type": "AWS::KMS::Key", "ARN": key, "accountId": "111122223333"}])
            ),
            Ok(Target::Key { id: key.into() })
        );
        assert_eq!(
            call(
                "events",
                "RemoveTargets",
                serde_json::json!({"rule": "tw-change", "ids": ["trail-change"]}),
                none.clone()
            ),
            Ok(Target::Rule {
                name: "tw-change".into(),
                bus: None
            })
        );
        assert_eq!(
            call(
                "lambda",
                "DeleteFunction20150331",
                serde_json::json!({"functionName": "tw-trail-change"}),
                none.clone()
            ),
            Ok(Target::Function {
                name: "tw-trail-change".into()
            })
        );
        assert_eq!(
            call(
                "sns",
                "SetTopicAttributes",
                serde_json::json!({"topicArn": "arn:aws:sns:us-east-1:111122223333:t"}),
                none.clone()
            ),
            Ok(Target::Topic {
                arn: "arn:aws:sns:us-east-1:111122223333:t".into()
            })
        );
        assert_eq!(
            call("monitoring", "DeleteAlarms", serde_json::json!({}), none),
            Err(EventError::Missing("detail.requestParameters.alarmNames"))
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

    /// Request parameters as the AddTags API reference gives them (`ResourceId`, `TagsList`),
    /// in CloudTrail's camelCase.
    #[test]
    fn tagging_a_trail_targets_it_and_tagging_anything_else_is_unwatched() {
        let change = parse(fixture!("add_tags.json")).unwrap();
        assert_eq!(
            change.target,
            Target::Trail {
                name_or_arn: "arn:aws:cloudtrail:us-east-1:111122223333:trail/data-events".into(),
                deleted: false,
            }
        );
        let mut event: Value = serde_json::from_slice(fixture!("add_tags.json")).unwrap();
        event["detail"]["eventName"] = "RemoveTags".into();
        assert!(matches!(
            parse(event.to_string().as_bytes()).unwrap().target,
            Target::Trail { .. }
        ));
        event["detail"]["requestParameters"]["resourceId"] =
            "arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/EXAMPLE-f852".into();
        let unwatched = parse(event.to_string().as_bytes()).unwrap_err();
        assert!(unwatched.needs_no_work(), "{unwatched}");
        event["detail"]["requestParameters"] = serde_json::json!({});
        assert_eq!(
            parse(event.to_string().as_bytes()).unwrap_err(),
            EventError::Missing("detail.requestParameters.resourceId")
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
