//! Verdicts on what moto cannot show, from fixtures shaped like the responses the AWS
//! documentation gives. Each test names the page its behaviour comes from.

use super::*;
use crate::evaluate::delivery::is_region_stream;
use crate::snapshot::{EventSelector, EventSelectors, LogStream, Organization};

const ORG_ID: &str = "o-exampleorgid";
const MANAGEMENT: &str = "999988887777";

fn streams(fixture: Value) -> Observed<Vec<LogStream>> {
    Ok(at(&fixture, "/logStreams"))
}

fn organization() -> Observed<Organization> {
    Ok(at(&fixture!("describe_organization.json"), "/Organization"))
}

/// The healthy account scanned in three regions (trails listed in each), whose log group holds
/// a stream for each: `describe_log_streams_per_region.json`, where ap-southeast-2 last
/// delivered two days ago.
fn three_regions() -> AccountSnapshot {
    let mut s = healthy();
    for region in ["eu-west-1", "ap-southeast-2"] {
        s.regions.push(RegionSnapshot {
            region: region.into(),
            trails: Ok(vec![]),
        });
    }
    group_mut(&mut s).streams = streams(fixture!("describe_log_streams_per_region.json"));
    // A role that may write every region's stream (`111122223333_CloudTrail_*`).
    let r = role(
        fixture!("get_role.json"),
        &[fixture!("get_policy_version_multi_region.json")],
    );
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    s
}

fn write_only() -> EventSelectors {
    EventSelectors {
        event_selectors: vec![EventSelector {
            read_write_type: Some("WriteOnly".into()),
            include_management_events: Some(true),
            exclude_management_event_sources: vec![],
            data_resources: vec![],
        }],
        advanced_event_selectors: vec![],
    }
}

fn trail_eval(s: &AccountSnapshot) -> Evaluation {
    find(&evaluate(s), EvaluationKind::Trail).clone()
}

fn account_eval(s: &AccountSnapshot) -> Evaluation {
    find(&evaluate(s), EvaluationKind::Account).clone()
}

// GetTrailStatus "returns trail status from a single Region" (CloudTrail API reference,
// GetTrailStatus): a multi-region trail's delivery in another region is read there.

#[test]
fn a_delivery_error_in_another_region_is_named_with_its_region() {
    let mut s = healthy();
    details_mut(&mut s).regional_status.insert(
        "eu-west-1".into(),
        status(fixture!("get_trail_status_delivery_error.json")),
    );
    let trail = trail_eval(&s);
    assert_eq!(trail.status, Status::Fail);
    let error = message(&trail, ReasonCode::CwlDeliveryError);
    assert!(
        error.contains("to CloudWatch Logs in eu-west-1:"),
        "{error}"
    );
    let stale = message(&trail, ReasonCode::CwlDeliveryStale);
    assert!(stale.contains("in eu-west-1 at 2024-05-20"), "{stale}");
    assert_eq!(
        trail
            .reasons
            .iter()
            .filter(|r| r.code == ReasonCode::CwlDeliveryError)
            .count(),
        1,
        "the healthy home region adds none: {:#?}",
        trail.reasons
    );
}

#[test]
fn an_unreadable_regional_status_is_error_naming_the_region() {
    let mut s = healthy();
    details_mut(&mut s)
        .regional_status
        .insert("eu-west-1".into(), Err(denied("GetTrailStatus")));
    let trail = trail_eval(&s);
    assert_eq!(trail.status, Status::Error);
    assert!(message(&trail, ReasonCode::EvaluationIncomplete).contains("in eu-west-1"));
}

// Stream names: "account_ID_CloudTrail_trail_region", with a number appended "if the volume of
// CloudTrail logs is large"; organisation trails' streams start with the organisation id
// (CloudTrail user guide, "CloudWatch log group and log stream naming for CloudTrail").

#[test]
fn streams_are_recognised_by_account_region_volume_number_and_organisation() {
    let account = "111122223333";
    for (stream, expected) in [
        ("111122223333_CloudTrail_us-east-1", true),
        ("111122223333_CloudTrail_us-east-1_2", true),
        ("111122223333_CloudTrail_us-east-1_17", true),
        ("o-exampleorgid_444455556666_CloudTrail_us-east-1", true),
        ("o-exampleorgid_444455556666_CloudTrail_us-east-1_3", true),
        ("111122223333_CloudTrail_us-east-10", false),
        ("111122223333_CloudTrail_us-east-1_", false),
        ("111122223333_CloudTrail_us-east-1_x", false),
        ("222233334444_CloudTrail_us-east-1", false),
        ("o-exampleorgid_notanaccount_CloudTrail_us-east-1", false),
        ("111122223333_CloudTrail_eu-west-1", false),
        ("app-logs", false),
    ] {
        assert_eq!(
            is_region_stream(stream, account, "us-east-1"),
            expected,
            "{stream}"
        );
    }
}

// DescribeLogStreams: lastEventTimestamp "updates on an eventual consistency basis. It
// typically updates in less than an hour from ingestion" (CloudWatch Logs API reference,
// LogStream).

#[test]
fn a_silent_region_is_named_with_its_last_event() {
    let s = three_regions();
    let trail = trail_eval(&s);
    assert_eq!(
        codes(&trail),
        vec![ReasonCode::CwlRegionSilent],
        "{trail:#?}"
    );
    let reason = &trail.reasons[0];
    assert_eq!(reason.level, Level::Fail);
    assert!(
        reason
            .message
            .contains("ap-southeast-2 (last event 2024-05-30T12:00:00Z, 2d ago)"),
        "{}",
        reason.message
    );
    assert!(
        !reason.message.contains("eu-west-1 ("),
        "{}",
        reason.message
    );
    // A silent region is no real-time coverage.
    assert!(account_eval(&s).has_reason(ReasonCode::NoRealtimeCoverage));
}

#[test]
fn a_write_only_trails_silence_is_a_warning() {
    let mut s = three_regions();
    details_mut(&mut s).event_selectors = Ok(write_only());
    let trail = trail_eval(&s);
    assert_eq!(trail.status, Status::Warning, "{trail:#?}");
    let reason = trail
        .reasons
        .iter()
        .find(|r| r.code == ReasonCode::CwlRegionSilent)
        .expect("silent region");
    assert_eq!(reason.level, Level::Warning);
    assert!(
        reason.message.contains("write events only"),
        "{}",
        reason.message
    );
}

#[test]
fn no_stream_at_all_fails_unless_logging_or_the_group_is_new() {
    let mut s = healthy();
    group_mut(&mut s).streams = Ok(vec![]);
    let trail = trail_eval(&s);
    assert!(message(&trail, ReasonCode::CwlRegionSilent).contains("us-east-1 (no stream at all)"));

    // Logging started half an hour ago: nothing yet is expected.
    details_mut(&mut s).status = status(fixture!(
        "get_trail_status_never_delivered_recent_start.json"
    ));
    assert!(!trail_eval(&s).has_reason(ReasonCode::CwlRegionSilent));

    // The group was created an hour ago, so the trail was pointed at it since.
    details_mut(&mut s).status = status(fixture!("get_trail_status_healthy.json"));
    if let Ok(Some(g)) = &mut group_mut(&mut s).group {
        g.creation_time = Some((now() - Duration::hours(1)).timestamp_millis());
    }
    assert_eq!(trail_eval(&s).status, Status::Pass);
}

/// A page of streams of other members of an organisation trail, written `ages` hours ago.
fn member_streams(ages: &[i64]) -> Observed<Vec<LogStream>> {
    Ok(ages
        .iter()
        .enumerate()
        .map(|(i, hours)| LogStream {
            log_stream_name: format!("{ORG_ID}_44445555{i:04}_CloudTrail_eu-west-1"),
            creation_time: Some(1_704_877_260_000),
            last_event_timestamp: Some((now() - Duration::hours(*hours)).timestamp_millis()),
            last_ingestion_time: None,
        })
        .collect())
}

#[test]
fn one_page_of_fresh_streams_cannot_prove_a_region_silent() {
    // DescribeLogStreams by LastEventTime, descending: one page, and more to come.
    let mut s = healthy();
    let group = group_mut(&mut s);
    group.streams = member_streams(&[0, 1, 2]);
    group.more_streams = true;
    assert!(!trail_eval(&s).has_reason(ReasonCode::CwlRegionSilent));

    // The page reaches back past the maximum age, so a region missing from it is silent.
    let group = group_mut(&mut s);
    group.streams = member_streams(&[0, 1, 30]);
    let trail = trail_eval(&s);
    let text = message(&trail, ReasonCode::CwlRegionSilent);
    assert!(
        text.contains("us-east-1 (no stream among the 3 most recently written, which reach back to 2024-05-31T06:00:00Z)"),
        "{text}"
    );
}

#[test]
fn a_stream_without_events_counts_from_its_creation() {
    // moto and a brand-new stream list no event times, only when the stream was created.
    let mut s = healthy();
    group_mut(&mut s).streams = Ok(vec![LogStream {
        log_stream_name: "111122223333_CloudTrail_us-east-1".into(),
        creation_time: Some((now() - Duration::minutes(10)).timestamp_millis()),
        last_event_timestamp: None,
        last_ingestion_time: None,
    }]);
    assert_eq!(trail_eval(&s).status, Status::Pass);
}

#[test]
fn unreadable_streams_are_error_never_pass() {
    let mut s = healthy();
    group_mut(&mut s).streams = Err(denied("DescribeLogStreams"));
    let trail = trail_eval(&s);
    assert_eq!(trail.status, Status::Error);
    assert!(message(&trail, ReasonCode::EvaluationIncomplete).contains("DescribeLogStreams"));
}

#[test]
fn the_default_delivery_age_is_four_hours() {
    assert_eq!(settings().max_delivery_age, Duration::hours(4));
    // Five hours of silence from a trail that logs reads is a failure at the default.
    let mut s = healthy();
    group_mut(&mut s).streams = Ok(vec![LogStream {
        log_stream_name: "111122223333_CloudTrail_us-east-1".into(),
        creation_time: Some(1_704_877_260_000),
        last_event_timestamp: Some((now() - Duration::hours(5)).timestamp_millis()),
        last_ingestion_time: None,
    }]);
    assert!(trail_eval(&s).has_reason(ReasonCode::CwlRegionSilent));
}

// The role policy: "arn:aws:logs:region:accountID:log-group:log_group_name:log-stream:
// accountID_CloudTrail_region*", and for an organisation trail also "…:log-stream:
// o-exampleorgid_*" (CloudTrail user guide, "Role policy document for CloudTrail to use
// CloudWatch Logs for monitoring").

#[test]
fn a_policy_naming_the_exact_stream_breaks_at_high_volume() {
    let mut s = healthy();
    let r = role(
        fixture!("get_role.json"),
        &[fixture!("get_role_policy_exact_stream.json")],
    );
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    let trail = trail_eval(&s);
    assert_eq!(codes(&trail), vec![ReasonCode::CwlRolePermissionMissing]);
    let text = message(&trail, ReasonCode::CwlRolePermissionMissing);
    assert!(
        text.contains("but not 111122223333_CloudTrail_us-east-1_2"),
        "{text}"
    );
    assert!(text.contains("end the stream name with *"), "{text}");
    assert!(
        !text.contains("may not call"),
        "the base stream is writable: {text}"
    );
}

#[test]
fn an_organisation_trail_role_must_write_the_member_streams() {
    let mut s = healthy();
    trail_mut(&mut s).is_organization_trail = true;
    s.organization = Some(organization());
    let trail = trail_eval(&s);
    assert_eq!(codes(&trail), vec![ReasonCode::CwlRolePermissionMissing]);
    let text = message(&trail, ReasonCode::CwlRolePermissionMissing);
    assert!(
        text.contains(&format!("Allow {GROUP_KEY}:log-stream:{ORG_ID}_*")),
        "{text}"
    );
    assert!(text.contains("no member's delivery works"), "{text}");

    // The documented organisation policy passes.
    let r = role(
        fixture!("get_role.json"),
        &[fixture!("get_role_policy_organization.json")],
    );
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    assert_eq!(trail_eval(&s).status, Status::Pass);

    // Without the organisation id, the member streams are unknown: never PASS.
    s.organization = Some(Err(denied("DescribeOrganization")));
    assert_eq!(trail_eval(&s).status, Status::Error);
}

#[test]
fn streams_of_other_regions_need_permission_too() {
    let mut s = three_regions();
    // The role may write only the home region's streams.
    let r = role(
        fixture!("get_role.json"),
        &[fixture!("get_role_policy_streams.json")],
    );
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    let trail = trail_eval(&s);
    let text = message(&trail, ReasonCode::CwlRolePermissionMissing);
    assert!(
        text.contains("may not write those of ap-southeast-2, eu-west-1"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{GROUP_KEY}:log-stream:111122223333_CloudTrail_*")),
        "{text}"
    );
}

// "A permissions boundary … sets the maximum permissions that an identity-based policy can grant"
// (IAM user guide, "Permissions boundaries for IAM entities").

#[test]
fn a_permissions_boundary_caps_the_delivery_role() {
    let get_role = fixture!("get_role_with_boundary.json");
    let boundary_arn: String = at(
        &get_role,
        "/Role/PermissionsBoundary/PermissionsBoundaryArn",
    );
    let mut r = role(get_role, &[fixture!("get_role_policy_streams.json")]);
    r.permissions_boundary = Some(NamedPolicy {
        name: boundary_arn.clone(),
        document: at(
            &fixture!("get_policy_version_boundary.json"),
            "/PolicyVersion/Document",
        ),
    });
    let mut s = healthy();
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r.clone())));
    let trail = trail_eval(&s);
    assert_eq!(codes(&trail), vec![ReasonCode::CwlRolePermissionMissing]);
    let text = message(&trail, ReasonCode::CwlRolePermissionMissing);
    assert!(
        text.contains(&format!("its permissions boundary {boundary_arn} does not")),
        "{text}"
    );

    // A boundary that allows log writes caps nothing.
    r.permissions_boundary = Some(NamedPolicy {
        name: boundary_arn,
        document: crate::policy::PolicyDocument::parse(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}"#,
        )
        .unwrap(),
    });
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    assert_eq!(trail_eval(&s).status, Status::Pass);
}

// "The Infrequent Access log class supports a subset of CloudWatch Logs features", without
// metric filters; the Delivery class keeps events one day for delivery to S3 or Firehose
// (CloudWatch Logs user guide, "Log classes"; API reference, CreateLogGroup).

#[test]
fn log_groups_of_a_limited_class_cannot_alarm() {
    let mut s = healthy();
    group_mut(&mut s).group = Ok(Some(at(
        &fixture!("describe_log_groups_infrequent_access.json"),
        "/logGroups/0",
    )));
    let trail = trail_eval(&s);
    assert_eq!(codes(&trail), vec![ReasonCode::CwlLogGroupClassLimited]);
    let text = message(&trail, ReasonCode::CwlLogGroupClassLimited);
    assert!(text.contains("class INFREQUENT_ACCESS"), "{text}");
    assert!(text.contains("neither metric filters"), "{text}");
    assert!(account_eval(&s).has_reason(ReasonCode::NoRealtimeCoverage));

    if let Ok(Some(g)) = &mut group_mut(&mut s).group {
        g.log_group_class = Some("DELIVERY".into());
    }
    let text = trail_eval(&s)
        .reasons
        .iter()
        .find(|r| r.code == ReasonCode::CwlLogGroupClassLimited)
        .map(|r| r.message.clone())
        .expect("DELIVERY is limited too");
    assert!(text.contains("keeps events for one day"), "{text}");
}

// The key policy statement for CloudWatch Logs: Principal logs.REGION.amazonaws.com, actions
// kms:Encrypt*, Decrypt*, ReEncrypt*, GenerateDataKey*, Describe*, with
// kms:EncryptionContext:aws:logs:arn (CloudWatch Logs user guide, "Encrypt log data in
// CloudWatch Logs using AWS Key Management Service").

fn encrypted(s: &mut AccountSnapshot, key: Option<Observed<Option<KmsKey>>>) {
    let group = group_mut(s);
    group.group = Ok(Some(at(
        &fixture!("describe_log_groups_kms.json"),
        "/logGroups/0",
    )));
    group.key = key;
}

#[test]
fn a_key_with_the_documented_policy_passes() {
    let mut s = healthy();
    let key = kms_key(
        fixture!("describe_key.json"),
        fixture!("get_key_policy_logs.json"),
    );
    encrypted(&mut s, Some(Ok(Some(key))));
    let trail = trail_eval(&s);
    assert_eq!(trail.status, Status::Pass, "{trail:#?}");
}

#[test]
fn a_disabled_missing_or_doomed_key_is_unusable() {
    let key_message = |key: Option<Observed<Option<KmsKey>>>| {
        let mut s = healthy();
        encrypted(&mut s, key);
        let trail = trail_eval(&s);
        assert_eq!(trail.status, Status::Fail, "{trail:#?}");
        message(&trail, ReasonCode::CwlLogGroupKeyUnusable).to_string()
    };
    let disabled = key_message(Some(Ok(Some(kms_key(
        fixture!("describe_key_disabled.json"),
        fixture!("get_key_policy_logs.json"),
    )))));
    assert!(
        disabled.contains("in state Disabled, not Enabled"),
        "{disabled}"
    );
    let doomed = key_message(Some(Ok(Some(kms_key(
        fixture!("describe_key_pending_deletion.json"),
        fixture!("get_key_policy_logs.json"),
    )))));
    assert!(
        doomed.contains("scheduled for deletion on 2024-06-08T12:00:00Z"),
        "{doomed}"
    );
    let gone = key_message(Some(Ok(None)));
    assert!(
        gone.contains("key/1234abcd-12ab-34cd-56ef-1234567890ab, which does not exist any more"),
        "{gone}"
    );
    let other_group = key_message(Some(Ok(Some(kms_key(
        fixture!("describe_key.json"),
        fixture!("get_key_policy_other_group.json"),
    )))));
    assert!(
        other_group.contains("does not let logs.us-east-1.amazonaws.com call kms:Encrypt, kms:Decrypt, kms:GenerateDataKey"),
        "{other_group}"
    );
}

#[test]
fn a_key_that_cannot_be_read_is_error_never_pass() {
    let mut s = healthy();
    encrypted(&mut s, Some(Err(denied("DescribeKey"))));
    assert_eq!(trail_eval(&s).status, Status::Error);

    // A key in another account: DescribeKey works across accounts, GetKeyPolicy does not.
    let mut key = kms_key(
        fixture!("describe_key.json"),
        fixture!("get_key_policy_logs.json"),
    );
    key.policy = Err(denied("GetKeyPolicy"));
    encrypted(&mut s, Some(Ok(Some(key))));
    let trail = trail_eval(&s);
    assert_eq!(trail.status, Status::Error);
    assert!(message(&trail, ReasonCode::EvaluationIncomplete).contains("GetKeyPolicy"));
}

#[test]
fn a_key_policy_on_unknown_conditions_is_a_warning() {
    let mut key = kms_key(
        fixture!("describe_key.json"),
        fixture!("get_key_policy_logs.json"),
    );
    key.policy = Ok(crate::policy::PolicyDocument::parse(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "logs.us-east-1.amazonaws.com"}, "Action": "kms:*",
            "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}"#,
    )
    .unwrap());
    let mut s = healthy();
    encrypted(&mut s, Some(Ok(Some(key))));
    let trail = trail_eval(&s);
    assert_eq!(trail.status, Status::Warning, "{trail:#?}");
    let reason = &trail.reasons[0];
    assert_eq!(reason.code, ReasonCode::CwlLogGroupKeyUnusable);
    assert_eq!(reason.level, Level::Warning);
}

// Alarms: a metric filter publishes metricValue for each match; an alarm goes to ALARM when
// "DatapointsToAlarm" of "EvaluationPeriods" breach (CloudWatch user guide, "Using Amazon
// CloudWatch alarms", "Evaluating an alarm").

fn alarms(s: &mut AccountSnapshot, fixture: Value) {
    group_mut(s).alarms = Ok(at(&fixture, "/MetricAlarms"));
}

fn filters(s: &mut AccountSnapshot, fixture: Value) {
    group_mut(s).metric_filters = Ok(at(&fixture, "/metricFilters"));
}

#[test]
fn an_alarm_one_stop_cannot_set_off_does_not_count() {
    let missing = |s: &AccountSnapshot| {
        let trail = trail_eval(s);
        assert_eq!(codes(&trail), vec![ReasonCode::TamperAlarmMissing]);
        message(&trail, ReasonCode::TamperAlarmMissing).to_string()
    };
    let mut s = healthy();
    alarms(&mut s, fixture!("describe_alarms_tamper_threshold_5.json"));
    let text = missing(&s);
    assert!(
        text.contains("alarm cloudtrail-changes can never fire: one StopLogging gives the metric value 1, and Sum GreaterThanOrEqualToThreshold 5 does not hold"),
        "{text}"
    );

    let mut s = healthy();
    alarms(
        &mut s,
        fixture!("describe_alarms_tamper_three_periods.json"),
    );
    assert!(missing(&s).contains("it needs 3 breaching periods"));

    let mut s = healthy();
    filters(&mut s, fixture!("describe_metric_filters_value_zero.json"));
    assert!(missing(&s).contains("gives the metric value 0"));

    // SampleCount counts matches whatever their value.
    if let Ok(alarms) = &mut group_mut(&mut s).alarms {
        alarms[0].statistic = Some("SampleCount".into());
    }
    assert_eq!(trail_eval(&s).status, Status::Pass);
}

#[test]
fn regex_terms_are_understood() {
    let mut s = healthy();
    filters(&mut s, fixture!("describe_metric_filters_regex.json"));
    assert_eq!(trail_eval(&s).status, Status::Pass);
}

#[test]
fn a_pattern_trailwatch_cannot_read_is_quoted_and_does_not_count() {
    let mut s = healthy();
    filters(
        &mut s,
        fixture!("describe_metric_filters_not_understood.json"),
    );
    let trail = trail_eval(&s);
    assert_eq!(codes(&trail), vec![ReasonCode::TamperAlarmMissing]);
    let text = message(&trail, ReasonCode::TamperAlarmMissing);
    assert!(
        text.contains("does not understand filter CloudTrailChanges `{ $.eventName = %(Stop|Delete)(Logging|Trail)% }`"),
        "{text}"
    );
}

#[test]
fn an_alarm_that_pages_nobody_is_unrouted() {
    let unrouted = |topic: Observed<Option<Vec<crate::snapshot::Subscription>>>| {
        let mut s = healthy();
        s.topics.insert(TOPIC.into(), topic);
        let trail = trail_eval(&s);
        assert_eq!(trail.status, Status::Warning, "{trail:#?}");
        message(&trail, ReasonCode::TamperAlarmUnrouted).to_string()
    };
    let pending: Vec<crate::snapshot::Subscription> = at(
        &fixture!("list_subscriptions_by_topic_pending.json"),
        "/Subscriptions",
    );
    assert!(unrouted(Ok(Some(pending))).contains("all still pending confirmation"));
    assert!(unrouted(Ok(Some(vec![]))).contains("which has no subscription"));
    assert!(unrouted(Ok(None)).contains("which does not exist"));

    // Subscriptions that could not be read, or were not collected, are not known to be fine.
    let mut s = healthy();
    s.topics
        .insert(TOPIC.into(), Err(denied("ListSubscriptionsByTopic")));
    assert_eq!(trail_eval(&s).status, Status::Error);
    s.topics.clear();
    assert_eq!(trail_eval(&s).status, Status::Error);
}

#[test]
fn an_alarm_that_invokes_a_function_is_routed() {
    let mut s = healthy();
    alarms(&mut s, fixture!("describe_alarms_tamper_lambda.json"));
    s.topics.clear();
    assert_eq!(trail_eval(&s).status, Status::Pass);
}

// SCPs: "SCPs don't affect users or roles in the management account"; an action is allowed
// only if every level from the root to the account allows it, and an explicit Deny anywhere
// wins (Organizations user guide, "Service control policies", "SCP evaluation").

#[test]
fn the_documented_scp_on_an_ou_guards_the_account() {
    let mut s = healthy();
    s.guardrail = Some(Ok(guardrail(
        &[],
        &[fixture!("describe_policy_protect_cloudtrail.json")],
        &[],
    )));
    let account = account_eval(&s);
    assert_eq!(account.status, Status::Pass);
    assert!(account.reasons.is_empty(), "{account:#?}");
}

#[test]
fn an_scp_that_binds_one_region_only_is_no_guardrail() {
    let mut s = healthy();
    s.guardrail = Some(Ok(guardrail(
        &[],
        &[],
        &[fixture!("describe_policy_region_only.json")],
    )));
    let account = account_eval(&s);
    assert_eq!(account.status, Status::Warning);
    let text = message(&account, ReasonCode::TamperGuardrailMissing);
    assert!(
        text.contains("(account 111122223333, OU ou-ab12-34cd56ef, root r-ab12)"),
        "{text}"
    );
    assert!(
        text.contains(
            "denies cloudtrail:StopLogging, cloudtrail:DeleteTrail, cloudtrail:UpdateTrail"
        ),
        "{text}"
    );
}

#[test]
fn a_level_that_allows_no_cloudtrail_call_denies_it() {
    let mut s = healthy();
    let mut path = guardrail(&[], &[], &[]);
    path.path[1].policies = vec![NamedPolicy {
        name: "S3Only".into(),
        document: crate::policy::PolicyDocument::parse(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#,
        )
        .unwrap(),
    }];
    s.guardrail = Some(Ok(path));
    assert!(!account_eval(&s).has_reason(ReasonCode::TamperGuardrailMissing));
}

#[test]
fn a_deny_on_stop_logging_alone_names_what_is_left() {
    let mut s = healthy();
    let mut path = guardrail(&[], &[], &[]);
    path.path[2].policies.push(NamedPolicy {
        name: "NoStop".into(),
        document: crate::policy::PolicyDocument::parse(
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "cloudtrail:StopLogging", "Resource": "*"}]}"#,
        )
        .unwrap(),
    });
    s.guardrail = Some(Ok(path));
    let text = account_eval(&s)
        .reasons
        .iter()
        .find(|r| r.code == ReasonCode::TamperGuardrailMissing)
        .map(|r| r.message.clone())
        .expect("DeleteTrail and UpdateTrail are unguarded");
    assert!(
        text.contains("denies cloudtrail:DeleteTrail, cloudtrail:UpdateTrail:"),
        "{text}"
    );
}

#[test]
fn the_management_account_is_told_no_scp_binds_it() {
    let mut s = healthy();
    let mut path = guardrail(&[], &[], &[]);
    path.management_account = true;
    s.guardrail = Some(Ok(path));
    let account = account_eval(&s);
    assert_eq!(account.status, Status::Pass);
    assert!(message(&account, ReasonCode::TamperGuardrailNotApplicable)
        .contains("service control policies do not restrict"));
}

#[test]
fn unreadable_scps_are_error() {
    let mut s = healthy();
    s.guardrail = Some(Err(denied("ListPoliciesForTarget")));
    assert_eq!(account_eval(&s).status, Status::Error);
}

// A delegated administrator creates organisation trails that "the management account remains
// the owner of" (CloudTrail user guide, "Organization delegated administrator").

/// The healthy trail as an organisation trail of management account 999988887777 whose log
/// group and role are in this account, with the documented organisation policy and the
/// documented trust policy (no condition).
fn delegated_trail() -> AccountSnapshot {
    let mut s = healthy();
    let arn = format!("arn:aws:cloudtrail:us-east-1:{MANAGEMENT}:trail/org-trail");
    let trail = trail_mut(&mut s);
    trail.trail_arn = arn.clone();
    trail.name = "org-trail".into();
    trail.is_organization_trail = true;
    let details = s.trail_details.remove(TRAIL_ARN).unwrap();
    s.trail_details.insert(arn, details);
    s.organization = Some(organization());
    let mut r = role(
        fixture!("get_role.json"),
        &[fixture!("get_role_policy_organization.json")],
    );
    r.assume_role_policy_document = crate::policy::PolicyDocument::parse(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#,
    )
    .unwrap();
    // The streams are named after the trail's owner, the management account.
    let policy = serde_json::to_string(&r.policies[0].document)
        .unwrap()
        .replace(
            "log-stream:111122223333_CloudTrail",
            &format!("log-stream:{MANAGEMENT}_CloudTrail"),
        );
    r.policies[0].document = serde_json::from_str(&policy).unwrap();
    s.roles.insert(ROLE_ARN.into(), Ok(Some(r)));
    group_mut(&mut s).streams = Ok(vec![
        LogStream {
            log_stream_name: format!("{MANAGEMENT}_CloudTrail_us-east-1"),
            creation_time: Some(1_704_877_260_000),
            last_event_timestamp: Some(1_717_243_051_448),
            last_ingestion_time: Some(1_717_243_060_112),
        },
        LogStream {
            log_stream_name: format!("{ORG_ID}_444455556666_CloudTrail_us-east-1"),
            creation_time: Some(1_704_877_260_000),
            last_event_timestamp: Some(1_717_242_900_000),
            last_ingestion_time: Some(1_717_242_911_000),
        },
    ]);
    s
}

#[test]
fn a_delegated_administrator_judges_the_org_trail_whose_log_group_it_holds() {
    let s = delegated_trail();
    let evaluations = evaluate(&s);
    let trail = find(&evaluations, EvaluationKind::Trail);
    assert_eq!(
        trail.resource_id,
        format!("arn:aws:cloudtrail:us-east-1:{MANAGEMENT}:trail/org-trail")
    );
    assert_eq!(trail.status, Status::Pass, "{trail:#?}");
    // Judged in full: break the role and it fails here.
    let mut broken = s.clone();
    broken.roles.insert(ROLE_ARN.into(), Ok(None));
    assert!(trail_eval(&broken).has_reason(ReasonCode::CwlRoleMissing));
}

#[test]
fn a_member_that_cannot_read_org_trail_selectors_is_covered_and_told_why() {
    let (_, _, change) = scenarios()
        .into_iter()
        .find(|(c, _, _)| *c == ReasonCode::OrgTrailCoverage)
        .unwrap();
    let mut s = healthy();
    change(&mut s);
    for details in s.trail_details.values_mut() {
        details.event_selectors = Err(denied("GetEventSelectors"));
    }
    let account = account_eval(&s);
    assert_eq!(account.status, Status::Pass, "{account:#?}");
    assert!(account.has_reason(ReasonCode::OrgTrailCoverage));
    assert!(message(&account, ReasonCode::CwlChecksDelegated)
        .contains("the management account checks them"));
}

#[test]
fn the_configuration_aws_documents_passes() {
    // The healthy account is the documented single-account setup: the trust policy scoped by
    // aws:SourceArn, the role policy with the trailing *, and the CIS 4.5 filter and alarm.
    let s = healthy();
    let trust = serde_json::to_string(
        &s.roles[ROLE_ARN]
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .assume_role_policy_document,
    )
    .unwrap();
    assert!(trust.contains("aws:SourceArn"), "{trust}");
    let cis = &s.log_groups[GROUP_KEY].metric_filters.as_ref().unwrap()[0].filter_pattern;
    assert_eq!(
        cis,
        "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }"
    );
    for e in evaluate(&s) {
        assert_eq!(e.status, Status::Pass, "{e:#?}");
    }
    // The documented organisation trail, with a member's stream beside the owner's.
    for e in evaluate(&delegated_trail()) {
        assert_eq!(e.status, Status::Pass, "{e:#?}");
    }
}
