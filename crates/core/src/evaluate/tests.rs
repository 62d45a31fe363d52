//! Rule tests on fixtures shaped like real AWS responses (`crates/core/fixtures`).

use super::*;
use crate::snapshot::{
    Guardrail, KmsKey, LogGroup, LogGroupSnapshot, MetricAlarm, MetricFilter, NamedPolicy,
    Observed, PolicyTarget, Role, TrailDetails, TrailStatus,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

const ACCOUNT: &str = "111122223333";
const TRAIL_ARN: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/management-events";
const ROLE_ARN: &str =
    "arn:aws:iam::111122223333:role/CloudTrailRoleForCloudWatchLogs_management-events";
const GROUP_KEY: &str =
    "arn:aws:logs:us-east-1:111122223333:log-group:aws-cloudtrail-logs-111122223333";
/// The topic the tamper alarm of `describe_alarms_tamper.json` notifies.
const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:security-alerts";

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/",
            $name
        )))
        .expect(concat!("fixture ", $name, " is JSON"))
    };
}

fn at<T: DeserializeOwned>(value: &Value, pointer: &str) -> T {
    serde_json::from_value(value.pointer(pointer).cloned().unwrap_or(Value::Null))
        .unwrap_or_else(|e| panic!("{pointer}: {e}"))
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn settings() -> Settings {
    Settings::at(now())
}

fn role(get_role: Value, policies: &[Value]) -> Role {
    Role {
        role_name: at(&get_role, "/Role/RoleName"),
        arn: at(&get_role, "/Role/Arn"),
        assume_role_policy_document: at(&get_role, "/Role/AssumeRolePolicyDocument"),
        policies: policies
            .iter()
            .map(|p| NamedPolicy {
                name: p
                    .get("PolicyName")
                    .and_then(Value::as_str)
                    .unwrap_or("managed")
                    .to_string(),
                document: p
                    .get("PolicyDocument")
                    .or_else(|| p.pointer("/PolicyVersion/Document"))
                    .cloned()
                    .map(|d| serde_json::from_value(d).unwrap())
                    .unwrap(),
            })
            .collect(),
        permissions_boundary: None,
    }
}

fn status(fixture: Value) -> Observed<TrailStatus> {
    Ok(serde_json::from_value(fixture).unwrap())
}

/// One account with one healthy multi-region trail homed in us-east-1.
fn healthy() -> AccountSnapshot {
    let mut trail_details = BTreeMap::new();
    trail_details.insert(
        TRAIL_ARN.to_string(),
        TrailDetails {
            status: status(fixture!("get_trail_status_healthy.json")),
            event_selectors: Ok(serde_json::from_value(fixture!(
                "get_event_selectors_default.json"
            ))
            .unwrap()),
            regional_status: BTreeMap::new(),
            tags: None,
        },
    );
    let mut log_groups = BTreeMap::new();
    log_groups.insert(
        GROUP_KEY.to_string(),
        LogGroupSnapshot {
            group: Ok(Some(at(
                &fixture!("describe_log_groups.json"),
                "/logGroups/0",
            ))),
            metric_filters: Ok(at(
                &fixture!("describe_metric_filters_cis.json"),
                "/metricFilters",
            )),
            alarms: Ok(at(
                &fixture!("describe_alarms_tamper.json"),
                "/MetricAlarms",
            )),
            streams: Ok(at(&fixture!("describe_log_streams.json"), "/logStreams")),
            more_streams: false,
            key: None,
        },
    );
    let mut roles = BTreeMap::new();
    roles.insert(
        ROLE_ARN.to_string(),
        Ok(Some(role(
            fixture!("get_role.json"),
            &[fixture!("get_role_policy_streams.json")],
        ))),
    );
    AccountSnapshot {
        account_id: ACCOUNT.into(),
        partition: "aws".into(),
        home_region: "us-east-1".into(),
        regions: vec![RegionSnapshot {
            region: "us-east-1".into(),
            trails: Ok(at(
                &fixture!("describe_trails_us_east_1.json"),
                "/trailList",
            )),
        }],
        trail_details,
        log_groups,
        roles,
        topics: BTreeMap::from([(
            TOPIC.to_string(),
            Ok(Some(at(
                &fixture!("list_subscriptions_by_topic.json"),
                "/Subscriptions",
            ))),
        )]),
        organization: None,
        guardrail: None,
    }
}

/// A KMS key from a `DescribeKey` fixture and a `GetKeyPolicy` fixture, whose `Policy` is the
/// policy document as a JSON string.
fn kms_key(describe_key: Value, get_key_policy: Value) -> KmsKey {
    let policy: String = at(&get_key_policy, "/Policy");
    KmsKey {
        metadata: at(&describe_key, "/KeyMetadata"),
        policy: Ok(serde_json::from_str(&policy).expect("key policy parses")),
    }
}

/// A service control policy from a `DescribePolicy` fixture, whose `Content` is the document as
/// a JSON string.
fn scp(describe_policy: Value) -> NamedPolicy {
    let content: String = at(&describe_policy, "/Policy/Content");
    NamedPolicy {
        name: at(&describe_policy, "/Policy/PolicySummary/Name"),
        document: serde_json::from_str(&content).expect("SCP parses"),
    }
}

/// The organisation path of `list_parents_account.json` and `list_parents_ou.json`: the
/// account, its OU, the root, each with AWS's default `FullAWSAccess` and the given extras.
fn guardrail(account: &[Value], ou: &[Value], root: &[Value]) -> Guardrail {
    let level = |id: String, kind: &str, extra: &[Value]| PolicyTarget {
        id,
        kind: kind.into(),
        policies: std::iter::once(fixture!("describe_policy_full_access.json"))
            .chain(extra.iter().cloned())
            .map(scp)
            .collect(),
    };
    let ou_id: String = at(&fixture!("list_parents_account.json"), "/Parents/0/Id");
    let root_id: String = at(&fixture!("list_parents_ou.json"), "/Parents/0/Id");
    Guardrail {
        management_account: false,
        path: vec![
            level(ACCOUNT.into(), "ACCOUNT", account),
            level(ou_id, "ORGANIZATIONAL_UNIT", ou),
            level(root_id, "ROOT", root),
        ],
    }
}

fn trail_mut(s: &mut AccountSnapshot) -> &mut Trail {
    s.regions[0].trails.as_mut().unwrap().first_mut().unwrap()
}

fn details_mut(s: &mut AccountSnapshot) -> &mut TrailDetails {
    s.trail_details.get_mut(TRAIL_ARN).unwrap()
}

fn group_mut(s: &mut AccountSnapshot) -> &mut LogGroupSnapshot {
    s.log_groups.get_mut(GROUP_KEY).unwrap()
}

/// A `ListTags` answer (CloudTrail API reference, "ListTags", Response Syntax:
/// `ResourceTagList[].TagsList[].{Key, Value}`, Value optional) as the inventory maps it.
fn tags_of(list_tags: Value) -> Observed<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for resource in list_tags["ResourceTagList"].as_array().unwrap() {
        if resource["ResourceId"] != TRAIL_ARN {
            continue;
        }
        for tag in resource["TagsList"].as_array().unwrap() {
            tags.insert(
                tag["Key"].as_str().unwrap().to_string(),
                tag["Value"].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    Ok(tags)
}

fn denied(operation: &str) -> Unavailable {
    Unavailable::new(
        operation,
        Some("AccessDeniedException".into()),
        "User: arn:aws:sts::111122223333:assumed-role/trailwatch/scan is not authorized",
    )
}

fn evaluate(s: &AccountSnapshot) -> Vec<Evaluation> {
    evaluate_account(s, &settings())
}

fn find(evaluations: &[Evaluation], kind: EvaluationKind) -> &Evaluation {
    evaluations
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} evaluation in {evaluations:#?}"))
}

fn codes(e: &Evaluation) -> Vec<ReasonCode> {
    e.reasons.iter().map(|r| r.code).collect()
}

fn message(e: &Evaluation, code: ReasonCode) -> &str {
    &e.reasons
        .iter()
        .find(|r| r.code == code)
        .unwrap_or_else(|| panic!("no {code} in {:#?}", e.reasons))
        .message
}

type Scenario = (ReasonCode, EvaluationKind, fn(&mut AccountSnapshot));

/// One scenario per reason code: a change to the healthy account that must produce it.
fn scenarios() -> Vec<Scenario> {
    use EvaluationKind::*;
    use ReasonCode::*;
    vec![
        (ExemptionInvalid, Trail, |s| {
            details_mut(s).tags = Some(tags_of(fixture!("list_tags_exempt_no_value.json")));
        }),
        (ExemptionExpired, Trail, |s| {
            details_mut(s).tags = Some(tags_of(fixture!("list_tags_exempt_expired.json")));
        }),
        (ExemptionUnverifiable, Trail, |s| {
            details_mut(s).tags = Some(Err(denied("ListTags")));
        }),
        (CwlNotConfigured, Trail, |s| {
            trail_mut(s).cloud_watch_logs_log_group_arn = None;
        }),
        (CwlRoleNotConfigured, Trail, |s| {
            trail_mut(s).cloud_watch_logs_role_arn = None;
        }),
        (LoggingStopped, Trail, |s| {
            details_mut(s).status = status(fixture!("get_trail_status_stopped.json"));
        }),
        (LoggingGap, Trail, |s| {
            details_mut(s).status = status(fixture!("get_trail_status_restarted.json"));
        }),
        (CwlDeliveryError, Trail, |s| {
            details_mut(s).status = status(fixture!("get_trail_status_delivery_error.json"));
        }),
        (CwlDeliveryStale, Trail, |s| {
            details_mut(s).status = status(fixture!("get_trail_status_stale.json"));
        }),
        (CwlLogGroupMissing, Trail, |s| {
            group_mut(s).group = Ok(None);
        }),
        (CwlRoleMissing, Trail, |s| {
            s.roles.insert(ROLE_ARN.into(), Ok(None));
        }),
        (CwlRoleTrustInvalid, Trail, |s| {
            let r = role(
                fixture!("get_role_trusts_ec2.json"),
                &[fixture!("get_role_policy_streams.json")],
            );
            s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
        }),
        (CwlRolePermissionMissing, Trail, |s| {
            let r = role(
                fixture!("get_role.json"),
                &[fixture!("get_role_policy_missing_star.json")],
            );
            s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
        }),
        (CwlRetentionUnset, Trail, |s| {
            if let Ok(Some(g)) = &mut group_mut(s).group {
                g.retention_in_days = None;
            }
        }),
        (TamperAlarmMissing, Trail, |s| {
            group_mut(s).alarms = Ok(vec![]);
        }),
        (ManagementEventsExcluded, Trail, |s| {
            details_mut(s).event_selectors =
                Ok(serde_json::from_value(fixture!("get_event_selectors_read_only.json")).unwrap());
        }),
        (LogFileValidationDisabled, Trail, |s| {
            trail_mut(s).log_file_validation_enabled = false;
        }),
        (CwlRoleUnverifiable, Trail, |s| {
            let r = role(
                fixture!("get_role.json"),
                &[fixture!("get_role_policy_conditional.json")],
            );
            s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
        }),
        (CwlDeliveryPending, Trail, |s| {
            details_mut(s).status = status(fixture!(
                "get_trail_status_never_delivered_recent_start.json"
            ));
        }),
        (CwlChecksDelegated, Trail, |s| {
            let trail = trail_mut(s);
            trail.cloud_watch_logs_log_group_arn =
                Some("arn:aws:logs:us-east-1:444455556666:log-group:central:*".into());
            trail.cloud_watch_logs_role_arn =
                Some("arn:aws:iam::444455556666:role/CentralDelivery".into());
        }),
        (NoTrail, Account, |s| {
            s.regions[0].trails = Ok(vec![]);
            s.trail_details.clear();
        }),
        (NoRealtimeCoverage, Account, |s| {
            trail_mut(s).is_multi_region_trail = false;
        }),
        (OrgTrailCoverage, Account, |s| {
            s.regions[0].trails = Ok(at(
                &fixture!("describe_trails_member_account.json"),
                "/trailList",
            ));
            let details = s.trail_details.remove(TRAIL_ARN).unwrap();
            s.trail_details.insert(
                "arn:aws:cloudtrail:us-east-1:999988887777:trail/org-trail".into(),
                details,
            );
        }),
        (EvaluationIncomplete, Trail, |s| {
            details_mut(s).status = Err(denied("GetTrailStatus"));
        }),
        (CwlRegionSilent, Trail, |s| {
            group_mut(s).streams = Ok(at(
                &fixture!("describe_log_streams_silent.json"),
                "/logStreams",
            ));
        }),
        (CwlLogGroupClassLimited, Trail, |s| {
            group_mut(s).group = Ok(Some(at(
                &fixture!("describe_log_groups_infrequent_access.json"),
                "/logGroups/0",
            )));
        }),
        (CwlLogGroupKeyUnusable, Trail, |s| {
            let group = group_mut(s);
            group.group = Ok(Some(at(
                &fixture!("describe_log_groups_kms.json"),
                "/logGroups/0",
            )));
            group.key = Some(Ok(Some(kms_key(
                fixture!("describe_key_disabled.json"),
                fixture!("get_key_policy_logs.json"),
            ))));
        }),
        (TamperAlarmUnrouted, Trail, |s| {
            s.topics.insert(
                TOPIC.into(),
                Ok(Some(at(
                    &fixture!("list_subscriptions_by_topic_pending.json"),
                    "/Subscriptions",
                ))),
            );
        }),
        (TamperGuardrailMissing, Account, |s| {
            s.guardrail = Some(Ok(guardrail(&[], &[], &[])));
        }),
        (TamperGuardrailNotApplicable, Account, |s| {
            let mut management = guardrail(&[], &[], &[]);
            management.management_account = true;
            s.guardrail = Some(Ok(management));
        }),
    ]
}

/// Codes the rules never give: the event path raises them from the call it was handed, and
/// `crate::recheck` tests them.
const EVENT_ONLY: [ReasonCode; 1] = [ReasonCode::MonitorTampered];

#[test]
fn every_reason_code_has_a_scenario() {
    let covered: Vec<ReasonCode> = scenarios().iter().map(|(c, _, _)| *c).collect();
    for code in ReasonCode::ALL
        .into_iter()
        .filter(|c| !EVENT_ONLY.contains(c))
    {
        assert!(covered.contains(&code), "{code} has no scenario");
    }
}

#[test]
fn each_scenario_yields_its_reason_with_its_level() {
    for (code, kind, change) in scenarios() {
        let mut snapshot = healthy();
        change(&mut snapshot);
        let evaluations = evaluate(&snapshot);
        let evaluation = find(&evaluations, kind);
        let reason = evaluation
            .reasons
            .iter()
            .find(|r| r.code == code)
            .unwrap_or_else(|| panic!("{code} missing from {:#?}", evaluation.reasons));
        assert_eq!(reason.level, code.level(), "{code}");
        let expected_status = match code.level() {
            Level::Fail => Status::Fail,
            Level::Error => Status::Error,
            Level::Warning => Status::Warning,
            Level::Info => Status::Pass,
        };
        assert_eq!(
            evaluation.status, expected_status,
            "{code}: {evaluation:#?}"
        );
    }
}

#[test]
fn healthy_trail_and_account_pass_with_no_reasons() {
    let evaluations = evaluate(&healthy());
    assert_eq!(evaluations.len(), 2);
    for e in &evaluations {
        assert_eq!(e.status, Status::Pass, "{e:#?}");
        assert!(e.reasons.is_empty(), "{e:#?}");
        assert_eq!(e.severity, Severity::Informational);
    }
    let trail = find(&evaluations, EvaluationKind::Trail);
    assert_eq!(trail.resource_id, TRAIL_ARN);
    assert_eq!(trail.trail.as_ref().unwrap().is_logging, Some(true));
    let account = find(&evaluations, EvaluationKind::Account);
    assert_eq!(account.resource_id, "AWS::::Account:111122223333");
}

#[test]
fn stopped_trail_fails_high_and_names_the_stop_time() {
    let mut s = healthy();
    details_mut(&mut s).status = status(fixture!("get_trail_status_stopped.json"));
    let evaluations = evaluate(&s);
    let trail = find(&evaluations, EvaluationKind::Trail);
    assert_eq!(codes(trail), vec![ReasonCode::LoggingStopped]);
    assert_eq!(trail.severity, Severity::High);
    assert!(message(trail, ReasonCode::LoggingStopped).contains("2024-06-01T03:14:09"));
    // A stopped trail gives no coverage either.
    let account = find(&evaluations, EvaluationKind::Account);
    assert_eq!(codes(account), vec![ReasonCode::NoRealtimeCoverage]);
    assert!(message(account, ReasonCode::NoRealtimeCoverage).contains("management-events"));
}

#[test]
fn s3_only_trail_fails_medium_and_names_its_bucket() {
    let mut s = healthy();
    trail_mut(&mut s).cloud_watch_logs_log_group_arn = None;
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    assert_eq!(codes(&trail), vec![ReasonCode::CwlNotConfigured]);
    assert_eq!(trail.severity, Severity::Medium);
    assert!(
        message(&trail, ReasonCode::CwlNotConfigured).contains("aws-cloudtrail-logs-111122223333")
    );
}

#[test]
fn delivery_error_is_quoted_verbatim() {
    let mut s = healthy();
    details_mut(&mut s).status = status(fixture!("get_trail_status_delivery_error.json"));
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    assert!(message(&trail, ReasonCode::CwlDeliveryError)
        .contains("is not authorized to perform: logs:PutLogEvents"));
    // Its last delivery is also twelve days old.
    assert!(trail.has_reason(ReasonCode::CwlDeliveryStale));
}

#[test]
fn stale_delivery_respects_the_configured_max_age() {
    let mut s = healthy();
    details_mut(&mut s).status = status(fixture!("get_trail_status_stale.json"));
    let strict = evaluate_account(&s, &settings());
    assert!(message(
        find(&strict, EvaluationKind::Trail),
        ReasonCode::CwlDeliveryStale
    )
    .contains("3d 6h ago"));
    let lenient = Settings {
        max_delivery_age: Duration::days(7),
        ..settings()
    };
    let relaxed = evaluate_account(&s, &lenient);
    assert_eq!(find(&relaxed, EvaluationKind::Trail).status, Status::Pass);
}

#[test]
fn never_delivered_trail_fails_once_the_window_has_passed() {
    let mut s = healthy();
    details_mut(&mut s).status =
        status(fixture!("get_trail_status_never_delivered_old_start.json"));
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    assert_eq!(codes(&trail), vec![ReasonCode::CwlDeliveryStale]);
    assert!(message(&trail, ReasonCode::CwlDeliveryStale).contains("never delivered"));
}

#[test]
fn policy_without_star_fails_and_says_the_star_is_missing() {
    let mut s = healthy();
    let r = role(
        fixture!("get_role.json"),
        &[fixture!("get_role_policy_missing_star.json")],
    );
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    assert_eq!(codes(&trail), vec![ReasonCode::CwlRolePermissionMissing]);
    let text = message(&trail, ReasonCode::CwlRolePermissionMissing);
    assert!(text.contains("without ':*'"), "{text}");
    assert!(text.contains("cloudtrail-cwl (WriteTrailLogs)"), "{text}");
    assert!(text.contains(&format!("{GROUP_KEY}:*")), "{text}");
    assert!(
        text.contains("may not call logs:CreateLogStream or logs:PutLogEvents"),
        "{text}"
    );
}

#[test]
fn attached_managed_policy_with_star_grants_delivery() {
    let mut s = healthy();
    let r = role(
        fixture!("get_role.json"),
        &[fixture!("get_policy_version_multi_region.json")],
    );
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    assert_eq!(
        find(&evaluate(&s), EvaluationKind::Trail).status,
        Status::Pass
    );
}

#[test]
fn trust_condition_for_another_trail_fails_trust() {
    // The fixture's trust policy is scoped by aws:SourceArn to trail management-events.
    let mut s = healthy();
    let arn = "arn:aws:cloudtrail:us-east-1:111122223333:trail/other";
    trail_mut(&mut s).trail_arn = arn.into();
    let details = s.trail_details.remove(TRAIL_ARN).unwrap();
    s.trail_details.insert(arn.into(), details);
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    assert_eq!(codes(&trail), vec![ReasonCode::CwlRoleTrustInvalid]);
}

#[test]
fn explicit_deny_in_a_second_policy_removes_delivery() {
    let mut s = healthy();
    let deny = serde_json::json!({"PolicyName": "guardrail", "PolicyDocument": {"Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "logs:Put*", "Resource": "*"}]}});
    let r = role(
        fixture!("get_role.json"),
        &[fixture!("get_role_policy_streams.json"), deny],
    );
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    assert_eq!(codes(&trail), vec![ReasonCode::CwlRolePermissionMissing]);
    assert!(
        message(&trail, ReasonCode::CwlRolePermissionMissing).starts_with(
            "Role CloudTrailRoleForCloudWatchLogs_management-events may not call logs:PutLogEvents on"
        )
    );
}

#[test]
fn tamper_filter_without_an_alarm_names_the_filter() {
    let mut s = healthy();
    group_mut(&mut s).alarms = Ok(vec![]);
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    let text = message(&trail, ReasonCode::TamperAlarmMissing);
    assert!(
        text.contains("filter CloudTrailChanges counts StopLogging"),
        "{text}"
    );
}

#[test]
fn tamper_alarm_with_actions_disabled_does_not_count() {
    let mut s = healthy();
    if let Ok(alarms) = &mut group_mut(&mut s).alarms {
        alarms[0].actions_enabled = false;
    }
    assert!(find(&evaluate(&s), EvaluationKind::Trail).has_reason(ReasonCode::TamperAlarmMissing));
}

#[test]
fn tamper_filter_that_only_matches_stop_logging_leaves_delete_trail_uncovered() {
    let mut s = healthy();
    group_mut(&mut s).metric_filters = Ok(vec![MetricFilter {
        filter_name: "stops".into(),
        filter_pattern: "{ $.eventName = StopLogging }".into(),
        metric_transformations: vec![crate::snapshot::MetricTransformation {
            metric_name: "CloudTrailEventCount".into(),
            metric_namespace: "CISBenchmark".into(),
            metric_value: "1".into(),
            default_value: None,
        }],
    }]);
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    let text = message(&trail, ReasonCode::TamperAlarmMissing);
    assert!(text.contains("catches DeleteTrail"), "{text}");
    assert!(!text.contains("StopLogging or"), "{text}");
}

#[test]
fn advanced_selectors_are_judged_by_what_they_keep() {
    let mut s = healthy();
    details_mut(&mut s).event_selectors = Ok(serde_json::from_value(fixture!(
        "get_event_selectors_advanced_data_only.json"
    ))
    .unwrap());
    assert!(
        find(&evaluate(&s), EvaluationKind::Trail).has_reason(ReasonCode::ManagementEventsExcluded)
    );
    details_mut(&mut s).event_selectors = Ok(serde_json::from_value(fixture!(
        "get_event_selectors_advanced_management.json"
    ))
    .unwrap());
    assert_eq!(
        find(&evaluate(&s), EvaluationKind::Trail).status,
        Status::Pass
    );
}

#[test]
fn excluded_management_events_also_remove_account_coverage() {
    let mut s = healthy();
    details_mut(&mut s).event_selectors =
        Ok(serde_json::from_value(fixture!("get_event_selectors_read_only.json")).unwrap());
    let evaluations = evaluate(&s);
    assert!(find(&evaluations, EvaluationKind::Account).has_reason(ReasonCode::NoRealtimeCoverage));
}

#[test]
fn warnings_can_be_turned_off() {
    let mut s = healthy();
    trail_mut(&mut s).log_file_validation_enabled = false;
    let quiet = Settings {
        warnings: false,
        ..settings()
    };
    let trail = find(&evaluate_account(&s, &quiet), EvaluationKind::Trail).clone();
    assert_eq!(trail.status, Status::Pass);
    assert!(trail.reasons.is_empty());
}

#[test]
fn turning_warnings_off_does_not_hide_what_became_of_an_exemption() {
    let quiet = Settings {
        warnings: false,
        ..settings()
    };
    for (tags, code) in [
        (
            fixture!("list_tags_exempt_expired.json"),
            ReasonCode::ExemptionExpired,
        ),
        (
            fixture!("list_tags_exempt_no_value.json"),
            ReasonCode::ExemptionInvalid,
        ),
    ] {
        let mut s = healthy();
        trail_mut(&mut s).log_file_validation_enabled = false;
        details_mut(&mut s).tags = Some(tags_of(tags));
        let trail = find(&evaluate_account(&s, &quiet), EvaluationKind::Trail).clone();
        assert_eq!(codes(&trail), vec![code], "other warnings still go");
        assert_eq!(trail.status, Status::Warning);
    }
}

#[test]
fn unreadable_status_is_error_never_pass() {
    let mut s = healthy();
    details_mut(&mut s).status = Err(denied("GetTrailStatus"));
    let evaluations = evaluate(&s);
    let trail = find(&evaluations, EvaluationKind::Trail);
    assert_eq!(trail.status, Status::Error);
    assert_eq!(trail.trail.as_ref().unwrap().is_logging, None);
    assert!(message(trail, ReasonCode::EvaluationIncomplete).contains("AccessDeniedException"));
    // The account cannot be called covered by a trail whose state is unknown.
    assert_eq!(
        find(&evaluations, EvaluationKind::Account).status,
        Status::Error
    );
}

#[test]
fn unreadable_role_or_log_group_is_error() {
    let mut s = healthy();
    s.roles.insert(ROLE_ARN.into(), Err(denied("GetRole")));
    assert_eq!(
        find(&evaluate(&s), EvaluationKind::Trail).status,
        Status::Error
    );
    let mut s = healthy();
    group_mut(&mut s).group = Err(denied("DescribeLogGroups"));
    assert_eq!(
        find(&evaluate(&s), EvaluationKind::Trail).status,
        Status::Error
    );
    let mut s = healthy();
    group_mut(&mut s).metric_filters = Err(denied("DescribeMetricFilters"));
    assert_eq!(
        find(&evaluate(&s), EvaluationKind::Trail).status,
        Status::Error
    );
}

#[test]
fn a_proven_failure_is_not_hidden_behind_missing_data() {
    let mut s = healthy();
    trail_mut(&mut s).cloud_watch_logs_log_group_arn = None;
    details_mut(&mut s).status = Err(denied("GetTrailStatus"));
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    assert_eq!(trail.status, Status::Fail);
    assert!(trail.has_reason(ReasonCode::EvaluationIncomplete));
}

#[test]
fn shadow_copies_are_evaluated_once_in_their_home_region() {
    let mut s = healthy();
    s.regions.push(RegionSnapshot {
        region: "eu-west-1".into(),
        trails: Ok(at(
            &fixture!("describe_trails_eu_west_1.json"),
            "/trailList",
        )),
    });
    let evaluations = evaluate(&s);
    let trails: Vec<(&str, &str)> = evaluations
        .iter()
        .filter(|e| e.kind == EvaluationKind::Trail)
        .map(|e| (e.trail.as_ref().unwrap().name.as_str(), e.region.as_str()))
        .collect();
    assert_eq!(
        trails,
        vec![("s3-only", "eu-west-1"), ("management-events", "us-east-1")]
    );
}

#[test]
fn shadow_copy_of_an_unscanned_home_region_is_still_evaluated_there() {
    let mut s = healthy();
    s.regions = vec![RegionSnapshot {
        region: "eu-west-1".into(),
        trails: Ok(at(
            &fixture!("describe_trails_eu_west_1.json"),
            "/trailList",
        )),
    }];
    let views = unique_trails(&s.regions, ACCOUNT);
    assert_eq!(views.len(), 2);
    let evaluations = evaluate(&s);
    let home = evaluations
        .iter()
        .find(|e| e.resource_id == TRAIL_ARN)
        .expect("multi-region trail evaluated");
    assert_eq!(home.region, "us-east-1");
    assert_eq!(home.status, Status::Pass);
}

#[test]
fn member_account_sees_org_trail_as_coverage_without_judging_it() {
    let (_, _, change) = scenarios()
        .into_iter()
        .find(|(c, _, _)| *c == ReasonCode::OrgTrailCoverage)
        .unwrap();
    let mut s = healthy();
    change(&mut s);
    let evaluations = evaluate(&s);
    assert_eq!(evaluations.len(), 1, "only the account: {evaluations:#?}");
    let account = &evaluations[0];
    assert_eq!(account.status, Status::Pass);
    assert!(message(account, ReasonCode::OrgTrailCoverage).contains("999988887777"));
}

#[test]
fn only_single_region_trails_leave_named_regions_uncovered() {
    let mut s = healthy();
    s.regions.push(RegionSnapshot {
        region: "eu-west-1".into(),
        trails: Ok(vec![]),
    });
    trail_mut(&mut s).is_multi_region_trail = false;
    let account = find(&evaluate(&s), EvaluationKind::Account).clone();
    assert_eq!(account.severity, Severity::High);
    let text = message(&account, ReasonCode::NoRealtimeCoverage);
    assert!(
        text.contains("Regions without real-time coverage: eu-west-1."),
        "{text}"
    );
}

#[test]
fn no_trail_is_high() {
    let mut s = healthy();
    s.regions[0].trails = Ok(vec![]);
    let account = find(&evaluate(&s), EvaluationKind::Account).clone();
    assert_eq!(codes(&account), vec![ReasonCode::NoTrail]);
    assert_eq!(account.severity, Severity::High);
}

#[test]
fn access_denied_region_is_error_for_that_region_only() {
    let mut s = healthy();
    s.regions.push(RegionSnapshot {
        region: "ap-south-2".into(),
        trails: Err(denied("DescribeTrails")),
    });
    let evaluations = evaluate(&s);
    let region = find(&evaluations, EvaluationKind::Region);
    assert_eq!(region.region, "ap-south-2");
    assert_eq!(region.status, Status::Error);
    assert!(message(region, ReasonCode::EvaluationIncomplete).contains("AccessDeniedException"));
    assert_eq!(
        find(&evaluations, EvaluationKind::Trail).status,
        Status::Pass
    );
    assert_eq!(
        find(&evaluations, EvaluationKind::Account).status,
        Status::Pass
    );
}

#[test]
fn no_trail_cannot_be_claimed_when_a_region_was_unreadable() {
    let mut s = healthy();
    s.regions[0].trails = Ok(vec![]);
    s.regions.push(RegionSnapshot {
        region: "ap-south-2".into(),
        trails: Err(denied("DescribeTrails")),
    });
    let account = find(&evaluate(&s), EvaluationKind::Account).clone();
    assert_eq!(codes(&account), vec![ReasonCode::EvaluationIncomplete]);
}

#[test]
fn evaluation_serialises_to_the_documented_contract() {
    let mut s = healthy();
    trail_mut(&mut s).cloud_watch_logs_log_group_arn = None;
    let trail = find(&evaluate(&s), EvaluationKind::Trail).clone();
    let json = serde_json::to_value(&trail).unwrap();
    assert_eq!(json["kind"], "trail");
    assert_eq!(json["status"], "FAIL");
    assert_eq!(json["severity"], "MEDIUM");
    assert_eq!(json["reasons"][0]["code"], "CWL_NOT_CONFIGURED");
    assert_eq!(json["reasons"][0]["level"], "FAIL");
    assert_eq!(json["trail"]["log_group_arn"], Value::Null);
    assert_eq!(json["trail"]["is_multi_region"], true);
    assert_eq!(json["trail"]["is_logging"], true);
    let round: Evaluation = serde_json::from_value(json).unwrap();
    assert_eq!(round, trail);
}

#[test]
fn fixtures_parse_into_snapshot_types() {
    let _: Vec<LogGroup> = at(&fixture!("describe_log_groups.json"), "/logGroups");
    let _: Vec<MetricAlarm> = at(&fixture!("describe_alarms_tamper.json"), "/MetricAlarms");
    let status: TrailStatus =
        serde_json::from_value(fixture!("get_trail_status_healthy.json")).unwrap();
    assert_eq!(
        status
            .latest_cloud_watch_logs_delivery_time
            .unwrap()
            .to_rfc3339(),
        "2024-06-01T11:57:31.448+00:00"
    );
}

#[test]
fn durations_read_like_a_person_says_them() {
    assert_eq!(human_duration(Duration::minutes(42)), "42m");
    assert_eq!(human_duration(Duration::hours(24)), "24h");
    assert_eq!(human_duration(Duration::minutes(25 * 60 + 5)), "25h 5m");
    assert_eq!(human_duration(Duration::days(7)), "7d");
    assert_eq!(human_duration(Duration::hours(78)), "3d 6h");
    assert_eq!(human_duration(Duration::seconds(-5)), "0m");
}

#[test]
fn a_stop_and_restart_inside_the_window_is_a_high_gap_naming_both_times() {
    let mut snapshot = healthy();
    details_mut(&mut snapshot).status = status(fixture!("get_trail_status_restarted.json"));
    let evaluations = evaluate(&snapshot);
    let trail = find(&evaluations, EvaluationKind::Trail);
    assert_eq!(trail.status, Status::Fail);
    assert_eq!(trail.severity, Severity::High);
    let gap = trail
        .reasons
        .iter()
        .find(|r| r.code == ReasonCode::LoggingGap)
        .expect("a gap");
    assert_eq!(gap.occurrence.as_deref(), Some("2024-06-01T09:14:07Z"));
    for expected in [
        "stopped logging at 2024-06-01T09:14:07Z",
        "started again at 2024-06-01T09:41:52Z (27m later)",
        "reached neither S3 nor CloudWatch Logs",
        "lookup-events",
    ] {
        assert!(
            gap.message.contains(expected),
            "{expected} in {}",
            gap.message
        );
    }
    // The trail logs again, so it still covers the account: the gap is history, not a hole.
    assert_eq!(
        find(&evaluations, EvaluationKind::Account).status,
        Status::Pass
    );
}

#[test]
fn a_gap_older_than_the_window_is_no_longer_raised() {
    let mut snapshot = healthy();
    details_mut(&mut snapshot).status =
        status(fixture!("get_trail_status_restarted_long_ago.json"));
    let evaluations = evaluate(&snapshot);
    assert!(!codes(find(&evaluations, EvaluationKind::Trail)).contains(&ReasonCode::LoggingGap));
    let wide = Settings {
        gap_window: Duration::days(3),
        ..settings()
    };
    let evaluations = evaluate_account(&snapshot, &wide);
    assert!(codes(find(&evaluations, EvaluationKind::Trail)).contains(&ReasonCode::LoggingGap));
}

mod real_aws;

#[test]
fn an_exempt_trail_is_judged_in_full_and_carries_its_exemption() {
    let mut snapshot = healthy();
    details_mut(&mut snapshot).tags = Some(tags_of(fixture!("list_tags_exempt.json")));
    trail_mut(&mut snapshot).cloud_watch_logs_log_group_arn = None;
    let evaluations = evaluate(&snapshot);
    let trail = find(&evaluations, EvaluationKind::Trail);
    assert_eq!(
        trail.status,
        Status::Fail,
        "the status is what the checks say"
    );
    assert_eq!(codes(trail), vec![ReasonCode::CwlNotConfigured]);
    assert!(trail.is_exempt());
    let exemption = trail.exemption.as_ref().unwrap();
    assert_eq!(exemption.reason, "data events only S3 is the record");
    assert_eq!(
        exemption.until.map(|d| d.to_string()).as_deref(),
        Some("2099-12-31")
    );
    // The only trail streams nowhere: exempt or not, it covers nothing.
    let account = find(&evaluations, EvaluationKind::Account);
    assert!(
        codes(account).contains(&ReasonCode::NoRealtimeCoverage),
        "{account:#?}"
    );
    let json = serde_json::to_value(trail).unwrap();
    assert_eq!(
        json["exemption"],
        serde_json::json!({"reason": "data events only S3 is the record", "until": "2099-12-31"})
    );
}

#[test]
fn an_expired_exemption_exempts_nothing() {
    let mut snapshot = healthy();
    details_mut(&mut snapshot).tags = Some(tags_of(fixture!("list_tags_exempt_expired.json")));
    let evaluations = evaluate(&snapshot);
    let trail = find(&evaluations, EvaluationKind::Trail);
    assert!(!trail.is_exempt());
    assert!(trail.exemption.as_ref().unwrap().expired);
    assert_eq!(trail.status, Status::Warning);
    assert!(message(trail, ReasonCode::ExemptionExpired).contains("2020-01-31"));
}

fn coverage_cells(s: &AccountSnapshot) -> Vec<(String, CoverageState, Vec<String>)> {
    region_coverage(s, &evaluate(s))
        .into_iter()
        .map(|c| (c.region, c.state, c.trails))
        .collect()
}

#[test]
fn a_healthy_multi_region_trail_covers_every_region_even_an_unlistable_one() {
    let mut s = healthy();
    s.regions.push(RegionSnapshot {
        region: "ap-south-2".into(),
        trails: Err(denied("DescribeTrails")),
    });
    let covered = vec![TRAIL_ARN.to_string()];
    assert_eq!(
        coverage_cells(&s),
        vec![
            ("us-east-1".into(), CoverageState::Covered, covered.clone()),
            ("ap-south-2".into(), CoverageState::Covered, covered),
        ]
    );
}

#[test]
fn a_single_region_trail_covers_its_home_region_only() {
    let mut s = healthy();
    s.regions.push(RegionSnapshot {
        region: "eu-west-1".into(),
        trails: Ok(vec![]),
    });
    s.regions.push(RegionSnapshot {
        region: "ap-south-2".into(),
        trails: Err(denied("DescribeTrails")),
    });
    trail_mut(&mut s).is_multi_region_trail = false;
    assert_eq!(
        coverage_cells(&s),
        vec![
            (
                "us-east-1".into(),
                CoverageState::Covered,
                vec![TRAIL_ARN.to_string()]
            ),
            ("eu-west-1".into(), CoverageState::Uncovered, vec![]),
            ("ap-south-2".into(), CoverageState::Unreadable, vec![]),
        ]
    );
}

#[test]
fn a_failing_or_unreadable_trail_covers_nothing() {
    let mut stopped = healthy();
    details_mut(&mut stopped).status = status(fixture!("get_trail_status_stopped.json"));
    assert_eq!(
        coverage_cells(&stopped),
        vec![("us-east-1".into(), CoverageState::Uncovered, vec![])]
    );
    let mut unreadable = healthy();
    details_mut(&mut unreadable).status = Err(denied("GetTrailStatus"));
    assert_eq!(
        coverage_cells(&unreadable),
        vec![("us-east-1".into(), CoverageState::Unknown, vec![])]
    );
}

#[test]
fn a_member_account_is_covered_by_the_organisation_trail() {
    let (_, _, change) = scenarios()
        .into_iter()
        .find(|(c, _, _)| *c == ReasonCode::OrgTrailCoverage)
        .unwrap();
    let mut s = healthy();
    change(&mut s);
    let cells = coverage_cells(&s);
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].1, CoverageState::Covered);
    assert!(cells[0].2[0].contains(":999988887777:trail/"), "{cells:?}");
}

#[test]
fn the_words_of_kinds_and_coverage_states_are_the_jsons() {
    for kind in [
        EvaluationKind::Trail,
        EvaluationKind::Account,
        EvaluationKind::Region,
        EvaluationKind::Monitor,
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
    for state in [
        CoverageState::Covered,
        CoverageState::Uncovered,
        CoverageState::Unknown,
        CoverageState::Unreadable,
    ] {
        assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
    }
}
