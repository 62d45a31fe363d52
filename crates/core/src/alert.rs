//! Alert messages for SNS, rendered purely from transitions.
//!
//! One message serves every subscriber through `MessageStructure=json`: `default` is a
//! custom notification for Slack or Teams through AWS's chat apps, `email` is plain text a
//! person can act on, and `sqs`/`lambda` carry the machine-readable transitions. Message
//! attributes let subscription filter policies route, say, HIGH to a pager.

use crate::event::Change;
use crate::finding::{remedy, truncate};
use crate::reason::{Severity, Status};
use crate::reconcile::{Transition, TransitionKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// SNS caps a subject at 100 characters.
pub const SUBJECT_MAX: usize = 100;
/// SNS caps a whole message, attributes included, at 256 KiB.
pub const MESSAGE_MAX_BYTES: usize = 262_144;
/// The reason value routed for a deleted trail, which has no verdict of its own any more.
pub const TRAIL_DELETED: &str = "TRAIL_DELETED";

/// What is known about the run that produced the transitions.
#[derive(Debug, Clone)]
pub struct AlertContext {
    pub account_id: String,
    /// The deployment's region.
    pub region: String,
    pub generated_at: DateTime<Utc>,
    /// What ran: `scheduled scan`, `trailwatch scan`, or an event's description.
    pub trigger: String,
    pub docs_url: String,
    /// The API call that set off a re-check: who, from where, when and what. The first
    /// questions on-call asks, answered in the alert itself.
    pub cause: Option<Change>,
}

/// Longest "what changed" shown; request parameters can hold whole policy documents.
const WHAT_CHANGED_MAX: usize = 400;
const USER_AGENT_MAX: usize = 200;

/// The request parameters as `key=value` pairs, strings unquoted, the rest as compact JSON.
pub fn what_changed(change: &Change) -> String {
    let text = match &change.request_parameters {
        Some(serde_json::Value::Object(parameters)) => parameters
            .iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => format!("{key}={text}"),
                other => format!("{key}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    truncate(&text, WHAT_CHANGED_MAX)
}

fn or_unknown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("unknown")
}

fn cause_email(change: &Change) -> String {
    let actor = &change.actor;
    format!(
        "Caused by {} ({}) in {} at {}:\n  Who:   {}\n  From:  {}\n  Agent: {}\n  What:  {}\n  Event: {}\n\n",
        actor.event_name,
        actor.event_source,
        change.region,
        or_unknown(&actor.event_time),
        or_unknown(&actor.arn),
        or_unknown(&actor.source_ip_address),
        truncate(or_unknown(&actor.user_agent), USER_AGENT_MAX),
        what_changed(change),
        change.event_id,
    )
}

fn cause_chat(change: &Change) -> String {
    let actor = &change.actor;
    format!(
        "*{}* by `{}` from {} at {}: {}",
        actor.event_name,
        or_unknown(&actor.arn),
        or_unknown(&actor.source_ip_address),
        or_unknown(&actor.event_time),
        what_changed(change),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttribute {
    /// `String` or `String.Array` (a JSON array, matched element-wise by filter policies).
    pub data_type: String,
    pub value: String,
}

/// A rendered alert, ready for `sns:Publish`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMessage {
    pub subject: String,
    /// The `MessageStructure=json` body.
    pub message: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// The parts of `message`, kept for logs, tests and the demo.
    pub email: String,
    pub chat: serde_json::Value,
    pub records: serde_json::Value,
    /// Transitions left out to fit the size limit ("and N more").
    pub omitted: usize,
}

impl AlertMessage {
    /// Bytes SNS counts: the body plus attribute names, types and values.
    pub fn size(&self) -> usize {
        self.message.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.data_type.len() + v.value.len())
                .sum::<usize>()
    }
}

fn subject_of(transitions: &[Transition], context: &AlertContext) -> String {
    let count = |kind| transitions.iter().filter(|t| t.kind == kind).count();
    let parts: Vec<String> = [
        (TransitionKind::NewFailure, "new failure", "new failures"),
        (
            TransitionKind::Changed,
            "changed failure",
            "changed failures",
        ),
        (TransitionKind::Deleted, "trail deleted", "trails deleted"),
        (TransitionKind::Resolved, "resolved", "resolved"),
    ]
    .iter()
    .filter_map(|(kind, one, many)| match count(*kind) {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    })
    .collect();
    let after = context
        .cause
        .as_ref()
        .map(|c| format!(" after {}", c.actor.event_name))
        .unwrap_or_default();
    let text = format!(
        "trailwatch: {} in {}{after}",
        parts.join(", "),
        context.account_id
    );
    // SNS wants printable ASCII without line breaks.
    let ascii: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    truncate(&ascii, SUBJECT_MAX).replace('…', ".")
}

fn resource_label(t: &Transition) -> String {
    let e = &t.evaluation;
    match &e.trail {
        Some(trail) => format!(
            "trail {} ({}, account {})",
            trail.name, e.region, e.account_id
        ),
        None => format!("account {} ({})", e.account_id, e.region),
    }
}

fn routed_reasons(t: &Transition) -> Vec<String> {
    match t.kind {
        TransitionKind::Deleted => vec![TRAIL_DELETED.to_string()],
        TransitionKind::Resolved => t.removed.clone(),
        _ => t
            .evaluation
            .counted_reasons()
            .map(|r| r.code.as_str().to_string())
            .collect(),
    }
}

fn first_fix(t: &Transition) -> Option<String> {
    match t.kind {
        TransitionKind::Deleted => Some(format!(
            "Find who called DeleteTrail in the CloudTrail event history; if it was not planned, recreate trail {} and treat it as an incident.",
            t.evaluation.trail.as_ref().map(|x| x.name.as_str()).unwrap_or("TRAIL")
        )),
        TransitionKind::Resolved => None,
        _ => t
            .evaluation
            .counted_reasons()
            .find_map(|r| remedy(r.code, &t.evaluation)),
    }
}

fn email_block(t: &Transition) -> String {
    let e = &t.evaluation;
    let mut lines = vec![format!(
        "{} · {} · {}",
        t.kind.label(),
        t.severity(),
        resource_label(t)
    )];
    let was = t
        .previous
        .as_deref()
        .map(|p| format!(" (was {p})"))
        .unwrap_or_default();
    match t.kind {
        TransitionKind::Deleted => lines.push(format!(
            "  The trail no longer exists{was}. Its finding is archived."
        )),
        _ => lines.push(format!("  Status: {}{was}", e.status)),
    }
    for reason in e.counted_reasons() {
        lines.push(format!("  - {}: {}", reason.code, reason.message));
    }
    if t.kind == TransitionKind::Resolved && !t.removed.is_empty() {
        lines.push(format!("  No longer failing: {}", t.removed.join(", ")));
    }
    if t.kind == TransitionKind::Changed {
        if !t.added.is_empty() {
            lines.push(format!("  New reasons: {}", t.added.join(", ")));
        }
        if !t.removed.is_empty() {
            lines.push(format!("  Gone: {}", t.removed.join(", ")));
        }
    }
    if let Some(fix) = first_fix(t) {
        lines.push(format!("  Fix: {fix}"));
    }
    lines.join("\n")
}

fn chat_line(t: &Transition) -> String {
    let codes = routed_reasons(t);
    format!(
        "*{}* `{}` {}{}",
        t.kind.label(),
        t.severity(),
        resource_label(t),
        if codes.is_empty() {
            String::new()
        } else {
            format!(": {}", codes.join(", "))
        }
    )
}

fn render_with(transitions: &[Transition], shown: usize, context: &AlertContext) -> AlertMessage {
    let visible = &transitions[..shown];
    let omitted = transitions.len() - shown;
    let more = (omitted > 0).then(|| format!("… and {omitted} more"));
    let subject = subject_of(transitions, context);
    let generated = context
        .generated_at
        .to_rfc3339_opts(SecondsFormat::Secs, true);

    let mut email = format!(
        "{subject}\n\nTriggered by {} at {generated}.\n\n",
        context.trigger
    );
    if let Some(change) = &context.cause {
        email.push_str(&cause_email(change));
    }
    email.push_str(
        &visible
            .iter()
            .map(email_block)
            .collect::<Vec<_>>()
            .join("\n\n"),
    );
    if let Some(more) = &more {
        email.push_str(&format!("\n\n{more}; see Security Hub for all findings."));
    }
    email.push_str(&format!(
        "\n\nEvery reason code and its fix: {}\n",
        context.docs_url
    ));

    let mut description: Vec<String> = context.cause.iter().map(cause_chat).collect();
    description.extend(visible.iter().map(chat_line));
    description.extend(more.clone());
    let next_steps: Vec<String> = visible.iter().filter_map(first_fix).take(5).collect();
    let worst = transitions
        .iter()
        .map(Transition::severity)
        .max()
        .unwrap_or(Severity::Informational);
    let chat = json!({
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": subject,
            "description": description.join("\n"),
            "nextSteps": next_steps,
            "keywords": [worst.as_str(), context.account_id, "trailwatch"],
        },
        "metadata": {
            "threadId": format!("trailwatch-{}", context.account_id),
            "summary": subject,
            "eventType": "trailwatch.transitions",
            "relatedResources": visible.iter().map(|t| t.evaluation.resource_id.clone()).collect::<Vec<_>>(),
            "additionalContext": additional_context(context),
        }
    });
    let records = json!({
        "version": "1.0",
        "source": "trailwatch",
        "account_id": context.account_id,
        "region": context.region,
        "trigger": context.trigger,
        "generated_at": generated,
        "docs_url": context.docs_url,
        "cause": context.cause,
        "transitions": visible,
        "omitted": omitted,
    });
    let message = json!({
        "default": chat.to_string(),
        "email": email,
        "sqs": records.to_string(),
        "lambda": records.to_string(),
    })
    .to_string();

    let failing = transitions
        .iter()
        .any(|t| t.kind != TransitionKind::Resolved);
    let mut reasons: Vec<String> = transitions.iter().flat_map(routed_reasons).collect();
    reasons.sort();
    reasons.dedup();
    let mut attributes = BTreeMap::from([
        ("severity".to_string(), string_attribute(worst.as_str())),
        (
            "status".to_string(),
            string_attribute(if failing {
                Status::Fail.as_str()
            } else {
                Status::Pass.as_str()
            }),
        ),
        ("account".to_string(), string_attribute(&context.account_id)),
        ("region".to_string(), string_attribute(&context.region)),
    ]);
    if let Some(change) = &context.cause {
        attributes.insert(
            "event_name".to_string(),
            string_attribute(&change.actor.event_name),
        );
    }
    if !reasons.is_empty() {
        attributes.insert(
            "reason".to_string(),
            MessageAttribute {
                data_type: "String.Array".into(),
                value: serde_json::to_string(&reasons).unwrap_or_else(|_| "[]".into()),
            },
        );
    }
    AlertMessage {
        subject,
        message,
        attributes,
        email,
        chat,
        records,
        omitted,
    }
}

/// Chat apps show these as key/value pairs under the message.
fn additional_context(context: &AlertContext) -> serde_json::Value {
    let mut fields = json!({
        "account": context.account_id,
        "region": context.region,
        "trigger": context.trigger,
    });
    if let Some(change) = &context.cause {
        fields["eventName"] = json!(change.actor.event_name);
        fields["actor"] = json!(or_unknown(&change.actor.arn));
        fields["sourceIPAddress"] = json!(or_unknown(&change.actor.source_ip_address));
        fields["eventId"] = json!(change.event_id);
    }
    fields
}

fn string_attribute(value: &str) -> MessageAttribute {
    MessageAttribute {
        data_type: "String".into(),
        value: value.to_string(),
    }
}

/// Renders one message for all `transitions`, or `None` when there is nothing to say.
/// Lists are cut ("and N more") until the message fits SNS's 256 KiB.
pub fn render(transitions: &[Transition], context: &AlertContext) -> Option<AlertMessage> {
    if transitions.is_empty() {
        return None;
    }
    let full = render_with(transitions, transitions.len(), context);
    if full.size() <= MESSAGE_MAX_BYTES {
        return Some(full);
    }
    // The largest prefix that fits: size grows with the number shown.
    let (mut fits, mut too_big) = (0usize, transitions.len());
    while too_big - fits > 1 {
        let middle = (fits + too_big) / 2;
        if render_with(transitions, middle, context).size() <= MESSAGE_MAX_BYTES {
            fits = middle;
        } else {
            too_big = middle;
        }
    }
    Some(render_with(transitions, fits, context))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::ReasonCode;

    fn context() -> AlertContext {
        AlertContext {
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            generated_at: DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            trigger: "scheduled scan".into(),
            docs_url: "https://example.com/README.md".into(),
            cause: None,
        }
    }

    fn transition(kind: TransitionKind, name: &str, message: &str) -> Transition {
        let mut evaluation =
            crate::test_support::trail_evaluation(name, &[ReasonCode::LoggingStopped]);
        evaluation.reasons[0].message = message.into();
        Transition {
            kind,
            finding_id: format!("id/{name}"),
            previous: Some("PASSED".into()),
            added: vec!["LOGGING_STOPPED".into()],
            removed: vec![],
            evaluation,
        }
    }

    #[test]
    fn message_has_every_protocol_and_routable_attributes() {
        let alert = render(
            &[transition(TransitionKind::NewFailure, "main", "stopped")],
            &context(),
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_str(&alert.message).unwrap();
        for key in ["default", "email", "sqs", "lambda"] {
            assert!(body[key].is_string(), "{key}");
        }
        let chat: serde_json::Value =
            serde_json::from_str(body["default"].as_str().unwrap()).unwrap();
        assert_eq!(chat["version"], "1.0");
        assert_eq!(chat["source"], "custom");
        assert_eq!(chat["content"]["textType"], "client-markdown");
        assert!(chat["content"]["nextSteps"][0]
            .as_str()
            .unwrap()
            .contains("start-logging --name main"));
        let email = body["email"].as_str().unwrap();
        assert!(email.contains("NEW FAILURE · HIGH · trail main"), "{email}");
        assert!(
            email.contains("Fix: Run: aws cloudtrail start-logging"),
            "{email}"
        );
        assert_eq!(alert.attributes["severity"].value, "HIGH");
        assert_eq!(alert.attributes["status"].value, "FAIL");
        assert_eq!(alert.attributes["reason"].data_type, "String.Array");
        assert_eq!(alert.attributes["reason"].value, r#"["LOGGING_STOPPED"]"#);
        assert_eq!(alert.subject, "trailwatch: 1 new failure in 111122223333");
    }

    #[test]
    fn a_recheck_alert_names_who_did_what_from_where_and_when() {
        let change =
            crate::event::parse(include_bytes!("../fixtures/events/stop_logging.json")).unwrap();
        let context = AlertContext {
            cause: Some(change),
            trigger: "trail-change".into(),
            ..context()
        };
        let alert = render(
            &[transition(
                TransitionKind::NewFailure,
                "management-events",
                "stopped",
            )],
            &context,
        )
        .unwrap();
        assert_eq!(
            alert.subject,
            "trailwatch: 1 new failure in 111122223333 after StopLogging"
        );
        for expected in [
            "Caused by StopLogging (cloudtrail.amazonaws.com) in us-east-1 at 2024-06-01T11:59:58Z",
            "Who:   arn:aws:iam::111122223333:user/mallory",
            "From:  203.0.113.7",
            "What:  name=arn:aws:cloudtrail:us-east-1:111122223333:trail/management-events",
            "Event: 6f1d0c8e-3b9f-4c7e-9a51-2b7f0d0f5a11",
        ] {
            assert!(
                alert.email.contains(expected),
                "{expected} in {}",
                alert.email
            );
        }
        let first_line = alert.chat["content"]["description"]
            .as_str()
            .unwrap()
            .lines()
            .next()
            .unwrap();
        assert!(
            first_line.starts_with(
                "*StopLogging* by `arn:aws:iam::111122223333:user/mallory` from 203.0.113.7"
            ),
            "{first_line}"
        );
        assert_eq!(
            alert.chat["metadata"]["additionalContext"]["sourceIPAddress"],
            "203.0.113.7"
        );
        assert_eq!(alert.records["cause"]["actor"]["event_name"], "StopLogging");
        assert_eq!(alert.attributes["event_name"].value, "StopLogging");
    }

    #[test]
    fn what_changed_is_bounded_and_readable() {
        let mut change =
            crate::event::parse(include_bytes!("../fixtures/events/put_role_policy.json")).unwrap();
        change.request_parameters = Some(serde_json::json!({
            "roleName": "r",
            "policyDocument": "x".repeat(5_000),
            "dryRun": false,
        }));
        let text = what_changed(&change);
        // Keys come sorted, so the same call always reads the same.
        assert!(
            text.starts_with("dryRun=false, policyDocument=xxx"),
            "{text}"
        );
        assert!(text.chars().count() <= WHAT_CHANGED_MAX);
        change.request_parameters = None;
        assert_eq!(what_changed(&change), "");
    }

    #[test]
    fn nothing_to_say_is_no_message() {
        assert!(render(&[], &context()).is_none());
    }

    #[test]
    fn resolved_only_digest_is_pass() {
        let mut t = transition(TransitionKind::Resolved, "main", "x");
        t.evaluation.reasons.clear();
        t.evaluation.status = Status::Pass;
        t.evaluation.severity = Severity::Informational;
        t.removed = vec!["LOGGING_STOPPED".into()];
        let alert = render(&[t], &context()).unwrap();
        assert_eq!(alert.attributes["status"].value, "PASS");
        assert!(alert.email.contains("RESOLVED"));
        assert!(alert.email.contains("No longer failing: LOGGING_STOPPED"));
    }

    #[test]
    fn huge_digests_are_cut_to_fit_sns_with_and_n_more() {
        let big = "x".repeat(2_000);
        let transitions: Vec<Transition> = (0..400)
            .map(|i| transition(TransitionKind::NewFailure, &format!("t{i}"), &big))
            .collect();
        let alert = render(&transitions, &context()).unwrap();
        assert!(alert.size() <= MESSAGE_MAX_BYTES, "{}", alert.size());
        assert!(alert.omitted > 0);
        assert!(alert.email.contains(&format!("and {} more", alert.omitted)));
        assert_eq!(
            alert.subject,
            "trailwatch: 400 new failures in 111122223333"
        );
        assert!(alert.subject.len() <= SUBJECT_MAX);
    }
}
