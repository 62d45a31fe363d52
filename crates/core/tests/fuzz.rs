//! Property-based fuzzing of the two parsers that read input an attacker can shape: the
//! CloudTrail events trail-change receives, and the IAM policy documents of a delivery role.
//!
//! `cargo fuzz` needs a nightly toolchain, which this project does not depend on, so the
//! campaign runs on proptest. Each property runs `PROPTEST_CASES` inputs (256 by default, the
//! short campaign `make test` runs). A long campaign:
//!
//! ```sh
//! PROPTEST_CASES=1000000 cargo test --release -p trailwatch-core --test fuzz
//! ```
//!
//! Every property asserts something beyond "did not panic": a parsed event names the watched
//! call it came from, a rejected one says why, and the wildcard matcher agrees with a slow
//! reference implementation.

use proptest::prelude::*;
use serde_json::{json, Value};
use trailwatch_core::event::{parse, parse_event_or_record, Change, EventError, Target, WATCHED};
use trailwatch_core::policy::{
    evaluate, glob_match, AccessRequest, Decision, PolicyDocument, RequestPrincipal,
};

/// Any JSON value, up to a few levels deep, with strings drawn from all of Unicode.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A real StopLogging event with one field replaced by arbitrary JSON.
fn mutated_event() -> impl Strategy<Value = Value> {
    let base: Value =
        serde_json::from_str(include_str!("../fixtures/events/stop_logging.json")).unwrap();
    let paths: Vec<&'static [&'static str]> = vec![
        &["id"],
        &["source"],
        &["detail-type"],
        &["account"],
        &["region"],
        &["detail"],
        &["detail", "eventSource"],
        &["detail", "eventName"],
        &["detail", "requestParameters"],
        &["detail", "requestParameters", "name"],
        &["detail", "userIdentity"],
        &["detail", "errorCode"],
        &["detail", "recipientAccountId"],
    ];
    (prop::sample::select(paths), json_value()).prop_map(move |(path, value)| {
        let mut event = base.clone();
        let mut slot = &mut event;
        for key in &path[..path.len() - 1] {
            slot = &mut slot[*key];
        }
        if let Value::Object(map) = slot {
            map.insert(path[path.len() - 1].to_string(), value);
        }
        event
    })
}

fn is_watched(source: &str, name: &str) -> bool {
    WATCHED
        .iter()
        .any(|(s, names)| *s == source && names.contains(&name))
}

/// An accepted event names a watched call; a refused one says why.
fn parsed_or_explained(result: Result<Change, EventError>) -> Result<(), TestCaseError> {
    match result {
        Ok(change) => prop_assert!(is_watched(
            &change.actor.event_source,
            &change.actor.event_name
        )),
        Err(error) => prop_assert!(!error.to_string().is_empty()),
    }
    Ok(())
}

/// The slow, obviously-right wildcard matcher the fast one must agree with.
fn reference_glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_glob(rest, &text[skip..])),
        Some((p, rest)) => text
            .split_first()
            .is_some_and(|(t, tail)| (*p == '?' || p == t) && reference_glob(rest, tail)),
    }
}

/// An IAM-like policy document assembled from plausible and hostile parts.
fn policy_document() -> impl Strategy<Value = Value> {
    let pattern = prop_oneof![
        Just("*".to_string()),
        Just("logs:*".to_string()),
        Just("logs:PutLogEvents".to_string()),
        Just("arn:aws:logs:*:*:log-group:trail:*".to_string()),
        "[a-z:*?]{0,12}",
        any::<String>(),
    ];
    let one_or_many = prop_oneof![
        pattern.clone().prop_map(Value::String),
        prop::collection::vec(pattern, 0..4).prop_map(|v| json!(v)),
        json_value(),
    ];
    let statement = (
        prop::sample::select(vec!["Allow", "Deny", "allow", ""]),
        prop::sample::select(vec!["Action", "NotAction"]),
        one_or_many.clone(),
        prop::sample::select(vec!["Resource", "NotResource"]),
        one_or_many,
        prop::option::of(json_value()),
    )
        .prop_map(
            |(effect, action_key, action, resource_key, resource, extra)| {
                let mut s = json!({"Effect": effect, action_key: action, resource_key: resource});
                if let Some(extra) = extra {
                    s["Condition"] = extra;
                }
                s
            },
        );
    prop::collection::vec(statement, 0..6)
        .prop_map(|statements| json!({"Version": "2012-10-17", "Statement": statements}))
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_parsed_or_refused_with_a_reason(
        bytes in prop::collection::vec(any::<u8>(), 0..2048)
    ) {
        for result in [parse(&bytes), parse_event_or_record(&bytes)] {
            parsed_or_explained(result)?;
        }
    }

    #[test]
    fn arbitrary_json_is_parsed_or_refused_with_a_reason(value in json_value()) {
        parsed_or_explained(parse(&serde_json::to_vec(&value).unwrap()))?;
    }

    #[test]
    fn a_mutated_event_still_names_its_call_or_says_what_is_wrong(event in mutated_event()) {
        let bytes = serde_json::to_vec(&event).unwrap();
        match parse(&bytes) {
            Ok(change) => {
                prop_assert!(is_watched(&change.actor.event_source, &change.actor.event_name));
                // Whatever else was mutated, an accepted event has an id, an account and a
                // region that can be used as they are.
                prop_assert!(!change.event_id.is_empty());
                prop_assert_eq!(change.account.len(), 12);
                prop_assert!(!change.region.is_empty());
            }
            Err(EventError::Unwatched { .. } | EventError::CallFailed { .. }) => {
                prop_assert!(event["detail"].is_object());
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn the_wildcard_matcher_agrees_with_the_reference(
        pattern in "[ab*?]{0,10}",
        text in "[ab]{0,12}",
    ) {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(glob_match(&pattern, &text, false), reference_glob(&p, &t));
    }

    #[test]
    fn any_policy_document_parses_or_is_refused_and_never_grants_by_accident(
        document in policy_document()
    ) {
        let text = document.to_string();
        let Ok(policy) = PolicyDocument::parse(&text) else {
            return Ok(());
        };
        let context = [("aws:SourceAccount", "123456789012")];
        let request = AccessRequest {
            action: "logs:PutLogEvents",
            resource: "arn:aws:logs:us-east-1:123456789012:log-group:trail:log-stream:x",
            principal: Some(RequestPrincipal::Service("cloudtrail.amazonaws.com")),
            context: &context,
        };
        let decision = evaluate(&[&policy], &request);
        // Allowed only if some statement says Allow (in any letter case, as IAM reads it).
        if decision == Decision::Allowed {
            let allows = document["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["Effect"].as_str().is_some_and(|e| e.eq_ignore_ascii_case("allow")));
            prop_assert!(allows, "{document}");
        }
    }
}

#[test]
fn hostile_events_are_refused_quickly_and_without_a_crash() {
    // Deeper than serde_json's recursion limit: an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(deep.as_bytes()).is_err());
    // Larger than any EventBridge event.
    let huge = format!(
        r#"{{"id":"x","detail":{{"pad":"{}"}}}}"#,
        "a".repeat(1 << 20)
    );
    let error = parse(huge.as_bytes()).unwrap_err();
    assert!(error.to_string().contains("bytes"), "{error}");
    // Odd Unicode in the trail name survives parsing as it was written.
    let mut event: Value =
        serde_json::from_str(include_str!("../fixtures/events/stop_logging.json")).unwrap();
    let name = "audit\u{202e}gol\u{200b}🙈";
    event["detail"]["requestParameters"]["name"] = json!(name);
    let change = parse(event.to_string().as_bytes()).unwrap();
    assert_eq!(
        change.target,
        Target::Trail {
            name_or_arn: name.into(),
            deleted: false
        }
    );
}

#[test]
fn hostile_policies_are_refused_quickly_and_without_a_crash() {
    let deep = format!(
        r#"{{"Statement":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(PolicyDocument::parse(&deep).is_err());
    let huge = format!(
        r#"{{"Statement":[{{"Effect":"Allow","Action":"{}"}}]}}"#,
        "a".repeat(200_000)
    );
    assert!(matches!(
        PolicyDocument::parse(&huge),
        Err(trailwatch_core::policy::PolicyError::TooLarge(_))
    ));
    // The classic exponential-backtracking pattern stays fast with the single-backtrack matcher.
    let pattern = format!("{}b", "a*".repeat(2_000));
    let text = "a".repeat(10_000);
    assert!(!glob_match(&pattern, &text, true));
}
