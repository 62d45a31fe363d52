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
//! call it came from, a rejected one says why, and the wildcard matcher and the IAM matcher
//! agree with slow reference implementations written independently of them.

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

/// Fields of a CloudTrail record that tools publishing records may leave out; the re-check
/// needs none of them (`eventID` and `recipientAccountId` have stand-ins).
const OPTIONAL_FIELDS: [&str; 8] = [
    "eventVersion",
    "userAgent",
    "sourceIPAddress",
    "eventID",
    "recipientAccountId",
    "tlsDetails",
    "responseElements",
    "eventType",
];

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

/// An IAM-like policy document assembled from plausible and hostile parts, with principals
/// (so that trust-policy requests can be allowed) and conditions whose truth is known.
fn policy_document() -> impl Strategy<Value = Value> {
    // Weighted towards parts that parse and match, so that every decision occurs often; the
    // hostile parts are there to be refused or ignored without a crash.
    let pattern = prop_oneof![
        3 => Just("*".to_string()),
        3 => Just("logs:*".to_string()),
        3 => Just("logs:PutLogEvents".to_string()),
        2 => Just("LOGS:putlogevents".to_string()),
        3 => Just("arn:aws:logs:*:*:log-group:trail:*".to_string()),
        2 => Just("arn:aws:logs:us-east-1:123456789012:log-group:trail".to_string()),
        1 => "[a-z:*?]{0,12}",
        1 => any::<String>(),
    ];
    let one_or_many = prop_oneof![
        4 => pattern.clone().prop_map(Value::String),
        4 => prop::collection::vec(pattern, 0..4).prop_map(|v| json!(v)),
        1 => json_value(),
    ];
    let principal = prop_oneof![
        2 => Just(None),
        2 => Just(Some(("Principal", json!("*")))),
        3 => Just(Some((
            "Principal",
            json!({"Service": "cloudtrail.amazonaws.com"})
        ))),
        2 => Just(Some((
            "Principal",
            json!({"Service": ["ec2.amazonaws.com", "CloudTrail.amazonaws.com"]})
        ))),
        1 => Just(Some(("Principal", json!({"Service": "ec2.amazonaws.com"})))),
        1 => Just(Some((
            "Principal",
            json!({"AWS": "arn:aws:iam::123456789012:root"})
        ))),
        1 => Just(Some((
            "NotPrincipal",
            json!({"Service": "ec2.amazonaws.com"})
        ))),
        1 => json_value().prop_map(|v| Some(("Principal", v))),
    ];
    let condition = prop_oneof![
        4 => Just(None),
        2 => Just(Some(
            json!({"StringEquals": {"aws:SourceAccount": "123456789012"}})
        )),
        1 => Just(Some(
            json!({"StringEquals": {"aws:SourceAccount": "999999999999"}})
        )),
        2 => Just(Some(json!({"StringEquals": {"aws:SourceVpc": "vpc-1"}}))),
        1 => json_value().prop_map(Some),
    ];
    let effect = prop_oneof![
        6 => Just("Allow"),
        3 => Just("Deny"),
        1 => Just("allow"),
        1 => Just(""),
    ];
    let statement = (
        effect,
        principal,
        prop::sample::select(vec!["Action", "NotAction"]),
        one_or_many.clone(),
        prop::sample::select(vec!["Resource", "NotResource"]),
        one_or_many,
        condition,
    )
        .prop_map(
            |(effect, principal, action_key, action, resource_key, resource, condition)| {
                let mut s = json!({"Effect": effect, action_key: action, resource_key: resource});
                if let Some((key, value)) = principal {
                    s[key] = value;
                }
                if let Some(condition) = condition {
                    s["Condition"] = condition;
                }
                s
            },
        );
    prop::collection::vec(statement, 0..5)
        .prop_map(|statements| json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The trust-policy request every generated document is asked: may CloudTrail assume the
/// role for a trail in account 123456789012.
const REQUEST_ACTION: &str = "logs:PutLogEvents";
const REQUEST_RESOURCE: &str = "arn:aws:logs:us-east-1:123456789012:log-group:trail:log-stream:x";
const SERVICE: &str = "cloudtrail.amazonaws.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

/// A string or a list of strings, as the reference reads policy elements.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// The reference's reading of a principal element against the CloudTrail service.
fn names_cloudtrail(spec: &Value) -> bool {
    match spec {
        Value::String(s) => s == "*",
        Value::Object(map) => map.iter().any(|(kind, values)| {
            kind.eq_ignore_ascii_case("service")
                && strings(values)
                    .iter()
                    .any(|v| *v == "*" || v.eq_ignore_ascii_case(SERVICE))
        }),
        _ => false,
    }
}

/// The truth of one of the generated conditions, which the reference knows by heart. `None`
/// for any other condition, about which the reference claims nothing.
fn known_truth(condition: Option<&Value>) -> Option<Truth> {
    let Some(condition) = condition else {
        return Some(Truth::True);
    };
    let account = condition.pointer("/StringEquals/aws:SourceAccount");
    if condition.as_object().is_some_and(|c| c.len() == 1)
        && condition["StringEquals"]
            .as_object()
            .is_some_and(|c| c.len() == 1)
    {
        return match (
            account.and_then(Value::as_str),
            condition.pointer("/StringEquals/aws:SourceVpc"),
        ) {
            (Some("123456789012"), None) => Some(Truth::True),
            (Some(_), None) => Some(Truth::False),
            (None, Some(_)) => Some(Truth::Unknown),
            _ => None,
        };
    }
    None
}

/// An independent, obviously-right evaluation of the request against a raw document, in IAM's
/// order: an explicit Deny wins, then an Allow, else an implicit deny; statements whose truth is
/// unknown make the answer unverifiable wherever they could change it. `None` when the
/// document holds a condition the reference cannot judge.
fn reference_decision(document: &Value) -> Option<Decision> {
    let mut allowed = false;
    let (mut unsure_allow, mut unsure_deny) = (false, false);
    for statement in document["Statement"].as_array()? {
        let principal = match (statement.get("Principal"), statement.get("NotPrincipal")) {
            (Some(spec), _) => names_cloudtrail(spec),
            (None, Some(spec)) => !names_cloudtrail(spec),
            (None, None) => false,
        };
        let chars = |s: &str| s.chars().collect::<Vec<char>>();
        let glob = |pattern: &str, text: &str| reference_glob(&chars(pattern), &chars(text));
        let action = match (statement.get("Action"), statement.get("NotAction")) {
            (Some(list), _) => strings(list).iter().any(|p| {
                glob(
                    &p.to_ascii_lowercase(),
                    &REQUEST_ACTION.to_ascii_lowercase(),
                )
            }),
            (None, Some(list)) => !strings(list).iter().any(|p| {
                glob(
                    &p.to_ascii_lowercase(),
                    &REQUEST_ACTION.to_ascii_lowercase(),
                )
            }),
            (None, None) => false,
        };
        let resource = match (statement.get("Resource"), statement.get("NotResource")) {
            (Some(list), _) => strings(list).iter().any(|p| glob(p, REQUEST_RESOURCE)),
            (None, Some(list)) => !strings(list).iter().any(|p| glob(p, REQUEST_RESOURCE)),
            (None, None) => true,
        };
        if !(principal && action && resource) {
            continue;
        }
        match (
            statement["Effect"].as_str()?,
            known_truth(statement.get("Condition"))?,
        ) {
            ("Deny", Truth::True) => return Some(Decision::Denied { explicit: true }),
            ("Deny", Truth::Unknown) => unsure_deny = true,
            ("Allow", Truth::True) => allowed = true,
            ("Allow", Truth::Unknown) => unsure_allow = true,
            _ => {}
        }
    }
    Some(match (allowed, unsure_deny, unsure_allow) {
        (true, false, _) => Decision::Allowed,
        (true, true, _) | (false, _, true) => Decision::Unverifiable { statements: vec![] },
        (false, _, false) => Decision::Denied { explicit: false },
    })
}

/// The decision with the statement labels left out, which the reference does not name.
fn shape(decision: Decision) -> Decision {
    match decision {
        Decision::Unverifiable { .. } => Decision::Unverifiable { statements: vec![] },
        other => other,
    }
}

/// Evaluates the request against `document` as trailwatch does; `None` if it does not parse.
fn trailwatch_decision(document: &Value) -> Option<Decision> {
    let policy = PolicyDocument::parse(&document.to_string()).ok()?;
    let context = [("aws:SourceAccount", "123456789012")];
    let request = AccessRequest {
        action: REQUEST_ACTION,
        resource: REQUEST_RESOURCE,
        principal: Some(RequestPrincipal::Service(SERVICE)),
        context: &context,
    };
    Some(shape(evaluate(&[&policy], &request)))
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
    fn a_bare_record_with_any_agent_and_address_and_optional_fields_dropped_is_read(
        agent in any::<String>(),
        address in any::<String>(),
        dropped in prop::collection::btree_set(0..OPTIONAL_FIELDS.len(), 0..OPTIONAL_FIELDS.len()),
    ) {
        let event: Value =
            serde_json::from_str(include_str!("../fixtures/events/stop_logging.json")).unwrap();
        let expected = parse(event.to_string().as_bytes()).unwrap();
        let mut record = event["detail"].clone();
        record["userAgent"] = json!(agent);
        record["sourceIPAddress"] = json!(address);
        let fields = record.as_object_mut().unwrap();
        for index in &dropped {
            fields.remove(OPTIONAL_FIELDS[*index]);
        }
        let change = parse_event_or_record(record.to_string().as_bytes());
        prop_assert!(change.is_ok(), "{change:?}");
        let change = change.unwrap();
        prop_assert_eq!(&change.target, &expected.target);
        prop_assert_eq!(&change.account, &expected.account);
        prop_assert_eq!(&change.region, &expected.region);
        prop_assert!(!change.event_id.is_empty());
        let kept = |name: &str| !dropped.iter().any(|i| OPTIONAL_FIELDS[*i] == name);
        prop_assert_eq!(change.actor.user_agent, kept("userAgent").then_some(agent));
        prop_assert_eq!(change.actor.source_ip_address, kept("sourceIPAddress").then_some(address));
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
    fn any_policy_document_parses_or_is_refused_and_decides_as_the_reference_does(
        document in policy_document()
    ) {
        // Only what parses is evaluated; only what the reference can judge is compared.
        if let (Some(ours), Some(reference)) =
            (trailwatch_decision(&document), reference_decision(&document))
        {
            prop_assert_eq!(ours, reference, "{}", document);
        }
    }
}

/// The property above would prove little if every generated document were denied. Run over a
/// fixed seed, the generator yields all three decisions, each many times.
#[test]
fn the_generated_policies_reach_every_decision() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let (mut allowed, mut denied, mut explicit, mut unverifiable, mut compared) = (0, 0, 0, 0, 0);
    for _ in 0..3_000 {
        let document = policy_document().new_tree(&mut runner).unwrap().current();
        let (Some(ours), Some(_)) = (
            trailwatch_decision(&document),
            reference_decision(&document),
        ) else {
            continue;
        };
        compared += 1;
        match ours {
            Decision::Allowed => allowed += 1,
            Decision::Denied { explicit: true } => explicit += 1,
            Decision::Denied { explicit: false } => denied += 1,
            Decision::Unverifiable { .. } => unverifiable += 1,
        }
    }
    for (what, count) in [
        ("allowed", allowed),
        ("explicitly denied", explicit),
        ("implicitly denied", denied),
        ("unverifiable", unverifiable),
    ] {
        assert!(
            count >= 20,
            "only {count} of {compared} compared documents were {what}"
        );
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
