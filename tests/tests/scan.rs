//! The scan flow against moto: one seeded account per test, real SDK calls over loopback, and
//! the verdicts asserted reason by reason. Delivery times and errors, which moto never reports,
//! are covered by the fixture tests in `trailwatch-core`.

use anyhow::Result;
use serde_json::json;
use trailwatch_core::{Evaluation, EvaluationKind, ReasonCode, ScanReport, Severity, Status};
use trailwatch_tests::{cloudtrail_trust, delivery_policy, Account, TrailSpec};

const HOME: &str = "us-east-1";
const OTHER: &str = "eu-west-1";

fn trail<'a>(report: &'a ScanReport, arn: &str) -> &'a Evaluation {
    report
        .evaluations
        .iter()
        .find(|e| e.kind == EvaluationKind::Trail && e.resource_id == arn)
        .unwrap_or_else(|| panic!("no evaluation for {arn}: {report:#?}"))
}

fn account(report: &ScanReport) -> &Evaluation {
    report
        .evaluations
        .iter()
        .find(|e| e.kind == EvaluationKind::Account)
        .expect("account evaluation")
}

/// Codes that change the status; INFO notes such as CWL_DELIVERY_PENDING are left out.
fn counted(e: &Evaluation) -> Vec<ReasonCode> {
    e.reasons
        .iter()
        .filter(|r| r.level != trailwatch_core::Level::Info)
        .map(|r| r.code)
        .collect()
}

fn message(e: &Evaluation, code: ReasonCode) -> String {
    e.reasons
        .iter()
        .find(|r| r.code == code)
        .unwrap_or_else(|| panic!("no {code} in {e:#?}"))
        .message
        .clone()
}

#[tokio::test]
async fn healthy_multi_region_trail_passes_once_and_covers_the_account() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("org-audit", HOME, true).await?;
    let (report, _) = acct.scan(&[HOME, OTHER]).await?;

    let evaluations: Vec<_> = report
        .evaluations
        .iter()
        .filter(|e| e.kind == EvaluationKind::Trail)
        .collect();
    assert_eq!(
        evaluations.len(),
        1,
        "shadow copy must not be evaluated twice"
    );
    let t = trail(&report, &healthy.arn);
    assert_eq!(t.status, Status::Pass, "{t:#?}");
    assert_eq!(t.region, HOME);
    // moto never reports a CloudWatch delivery, and the trail just started: benefit of the doubt.
    assert!(t.has_reason(ReasonCode::CwlDeliveryPending));
    assert_eq!(account(&report).status, Status::Pass);
    assert_eq!(report.account_id, acct.id);
    Ok(())
}

#[tokio::test]
async fn s3_only_trail_fails_cwl_not_configured() -> Result<()> {
    let acct = Account::fresh().await?;
    let arn = acct.trail(TrailSpec::new("s3-only", OTHER)).await?;
    let (report, _) = acct.scan(&[HOME, OTHER]).await?;
    let t = trail(&report, &arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlNotConfigured]);
    assert_eq!(t.region, OTHER);
    assert_eq!(t.severity, Severity::Medium);
    let a = account(&report);
    assert_eq!(counted(a), vec![ReasonCode::NoRealtimeCoverage]);
    assert!(
        message(a, ReasonCode::NoRealtimeCoverage).contains("eu-west-1, us-east-1")
            || message(a, ReasonCode::NoRealtimeCoverage).contains("us-east-1, eu-west-1")
    );
    Ok(())
}

#[tokio::test]
async fn log_group_without_role_fails_role_not_configured() -> Result<()> {
    let acct = Account::fresh().await?;
    let group = acct.log_group(HOME, "no-role", Some(30)).await?;
    let arn = acct
        .trail(TrailSpec::new("no-role", HOME).log_group(&group))
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    assert!(counted(trail(&report, &arn)).contains(&ReasonCode::CwlRoleNotConfigured));
    Ok(())
}

#[tokio::test]
async fn role_emptied_by_update_trail_counts_as_not_configured() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("emptied", HOME, false).await?;
    acct.cloudtrail(HOME)
        .update_trail()
        .name(&healthy.name)
        .cloud_watch_logs_role_arn("")
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlRoleNotConfigured], "{t:#?}");
    assert_eq!(t.trail.as_ref().unwrap().role_arn, None);
    Ok(())
}

#[tokio::test]
async fn stopped_trail_fails_high() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("stopped", HOME, true).await?;
    acct.cloudtrail(HOME)
        .stop_logging()
        .name(&healthy.name)
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert_eq!(counted(t), vec![ReasonCode::LoggingStopped]);
    assert_eq!(t.severity, Severity::High);
    assert_eq!(t.trail.as_ref().unwrap().is_logging, Some(false));
    assert_eq!(
        counted(account(&report)),
        vec![ReasonCode::NoRealtimeCoverage]
    );
    Ok(())
}

#[tokio::test]
async fn deleted_log_group_fails_log_group_missing() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("orphaned", HOME, true).await?;
    acct.logs(HOME)
        .delete_log_group()
        .log_group_name(&healthy.log_group_name)
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlLogGroupMissing]);
    assert!(message(t, ReasonCode::CwlLogGroupMissing).contains(&healthy.log_group_name));
    Ok(())
}

/// A region's groups are described in one page of the prefix they share, and that page is
/// also what says a deleted one is gone.
#[tokio::test]
async fn a_regions_log_groups_are_described_together_and_a_deleted_one_is_missing() -> Result<()> {
    let acct = Account::fresh().await?;
    let kept = acct.healthy_trail("kept", HOME, true).await?;
    acct.healthy_trail("also-kept", HOME, false).await?;
    let orphaned = acct.healthy_trail("orphaned", HOME, false).await?;
    // A group that shares the prefix but no trail uses: listed, and ignored.
    acct.log_group(HOME, "cloudtrail/unused", Some(30)).await?;
    acct.logs(HOME)
        .delete_log_group()
        .log_group_name(&orphaned.log_group_name)
        .send()
        .await?;
    let proxy = trailwatch_tests::fault::FaultProxy::start(&trailwatch_tests::endpoint()?).await?;
    let (report, _) = acct.via(&proxy.endpoint).await.scan(&[HOME]).await?;

    let described = proxy.count("DescribeLogGroups");
    assert_eq!(
        described, 1,
        "one page for cloudtrail/*, not one call per group"
    );
    assert_eq!(
        trail(&report, &kept.arn).status,
        Status::Pass,
        "{report:#?}"
    );
    let t = trail(&report, &orphaned.arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlLogGroupMissing]);
    Ok(())
}

/// A stopped single-region trail's streams cannot change its verdict, so they are not read;
/// a stopped multi-region trail's are, since its role is probed on every region's stream.
#[tokio::test]
async fn a_stopped_single_region_trails_streams_are_not_read() -> Result<()> {
    let acct = Account::fresh().await?;
    let running = acct.healthy_trail("running", HOME, true).await?;
    let stopped = acct.healthy_trail("stopped", HOME, false).await?;
    let everywhere = acct.healthy_trail("stopped-everywhere", HOME, true).await?;
    for name in ["stopped", "stopped-everywhere"] {
        acct.cloudtrail(HOME)
            .stop_logging()
            .name(name)
            .send()
            .await?;
    }
    let proxy = trailwatch_tests::fault::FaultProxy::start(&trailwatch_tests::endpoint()?).await?;
    let (report, _) = acct.via(&proxy.endpoint).await.scan(&[HOME]).await?;

    let streams_read = proxy.count("DescribeLogStreams");
    assert_eq!(
        streams_read, 2,
        "running and stopped-everywhere, not stopped"
    );
    assert_eq!(
        trail(&report, &running.arn).status,
        Status::Pass,
        "{report:#?}"
    );
    for arn in [&stopped.arn, &everywhere.arn] {
        let t = trail(&report, arn);
        assert_eq!(counted(t), vec![ReasonCode::LoggingStopped], "{t:#?}");
    }
    Ok(())
}

#[tokio::test]
async fn deleted_role_fails_role_missing() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("roleless", HOME, true).await?;
    let iam = acct.iam();
    iam.delete_role_policy()
        .role_name(&healthy.role_name)
        .policy_name("delivery")
        .send()
        .await?;
    iam.delete_role()
        .role_name(&healthy.role_name)
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    assert_eq!(
        counted(trail(&report, &healthy.arn)),
        vec![ReasonCode::CwlRoleMissing]
    );
    Ok(())
}

#[tokio::test]
async fn role_trusting_another_service_fails_trust_invalid() -> Result<()> {
    let acct = Account::fresh().await?;
    let group = acct.log_group(HOME, "wrong-trust", Some(90)).await?;
    acct.tamper_alarm(HOME, "wrong-trust").await?;
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let role = acct
        .role(
            "wrong-trust",
            &trust,
            &[("delivery", delivery_policy(&group))],
        )
        .await?;
    let arn = acct
        .trail(
            TrailSpec::new("wrong-trust", HOME)
                .log_group(&group)
                .role(&role),
        )
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    assert_eq!(
        counted(trail(&report, &arn)),
        vec![ReasonCode::CwlRoleTrustInvalid]
    );
    Ok(())
}

#[tokio::test]
async fn policy_without_star_fails_and_names_the_fix() -> Result<()> {
    let acct = Account::fresh().await?;
    let group = acct.log_group(HOME, "no-star", Some(90)).await?;
    acct.tamper_alarm(HOME, "no-star").await?;
    let bare = group.trim_end_matches(":*").to_string();
    let role = acct
        .role(
            "no-star",
            &cloudtrail_trust(&acct.id),
            &[("delivery", delivery_policy(&bare))],
        )
        .await?;
    let arn = acct
        .trail(
            TrailSpec::new("no-star", HOME)
                .log_group(&group)
                .role(&role),
        )
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlRolePermissionMissing]);
    let text = message(t, ReasonCode::CwlRolePermissionMissing);
    assert!(text.contains("without ':*'"), "{text}");
    assert!(text.contains(&group), "{text}");
    Ok(())
}

#[tokio::test]
async fn attached_managed_policies_are_read() -> Result<()> {
    let acct = Account::fresh().await?;
    let group = acct.log_group(HOME, "managed", Some(90)).await?;
    acct.tamper_alarm(HOME, "managed").await?;
    let role = acct
        .role("managed", &cloudtrail_trust(&acct.id), &[])
        .await?;
    let arn = acct
        .trail(
            TrailSpec::new("managed", HOME)
                .log_group(&group)
                .role(&role),
        )
        .await?;
    let (before, _) = acct.scan(&[HOME]).await?;
    assert_eq!(
        counted(trail(&before, &arn)),
        vec![ReasonCode::CwlRolePermissionMissing]
    );
    acct.attach_managed("managed", "cloudtrail-delivery", &delivery_policy(&group))
        .await?;
    let (after, _) = acct.scan(&[HOME]).await?;
    assert_eq!(
        trail(&after, &arn).status,
        Status::Pass,
        "{:#?}",
        trail(&after, &arn)
    );
    Ok(())
}

#[tokio::test]
async fn conditional_policy_cannot_be_verified() -> Result<()> {
    let acct = Account::fresh().await?;
    let group = acct.log_group(HOME, "conditional", Some(90)).await?;
    acct.tamper_alarm(HOME, "conditional").await?;
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "OnlyTagged", "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": group,
        "Condition": {"StringEquals": {"aws:ResourceTag/owner": "security"}}}]});
    let role = acct
        .role(
            "conditional",
            &cloudtrail_trust(&acct.id),
            &[("delivery", policy)],
        )
        .await?;
    let arn = acct
        .trail(
            TrailSpec::new("conditional", HOME)
                .log_group(&group)
                .role(&role),
        )
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlRoleUnverifiable]);
    assert_eq!(t.status, Status::Warning);
    assert!(message(t, ReasonCode::CwlRoleUnverifiable).contains("OnlyTagged"));
    Ok(())
}

#[tokio::test]
async fn log_group_without_retention_warns() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("forever", HOME, true).await?;
    acct.logs(HOME)
        .delete_retention_policy()
        .log_group_name(&healthy.log_group_name)
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlRetentionUnset]);
    assert_eq!(t.status, Status::Warning);
    assert_eq!(t.severity, Severity::Low);
    Ok(())
}

#[tokio::test]
async fn tamper_filter_without_an_alarm_warns() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("unwatched", HOME, true).await?;
    acct.cloudwatch(HOME)
        .delete_alarms()
        .alarm_names(format!("cloudtrail-tampering-{}", healthy.log_group_name))
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert_eq!(counted(t), vec![ReasonCode::TamperAlarmMissing]);
    assert!(message(t, ReasonCode::TamperAlarmMissing).contains("cloudtrail-tampering"));
    Ok(())
}

#[tokio::test]
async fn read_only_selectors_exclude_management_writes() -> Result<()> {
    use aws_sdk_cloudtrail::types::{EventSelector, ReadWriteType};
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("reads-only", HOME, true).await?;
    acct.cloudtrail(HOME)
        .put_event_selectors()
        .trail_name(&healthy.name)
        .event_selectors(
            EventSelector::builder()
                .read_write_type(ReadWriteType::ReadOnly)
                .include_management_events(true)
                .build(),
        )
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    assert_eq!(
        counted(trail(&report, &healthy.arn)),
        vec![ReasonCode::ManagementEventsExcluded]
    );
    // Without management writes the trail gives no real-time coverage.
    assert_eq!(
        counted(account(&report)),
        vec![ReasonCode::NoRealtimeCoverage]
    );
    Ok(())
}

#[tokio::test]
async fn disabled_log_file_validation_warns() -> Result<()> {
    let acct = Account::fresh().await?;
    let arn = acct
        .trail(TrailSpec::new("unvalidated", HOME).without_validation())
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    assert!(counted(trail(&report, &arn)).contains(&ReasonCode::LogFileValidationDisabled));
    Ok(())
}

#[tokio::test]
async fn log_group_and_role_in_another_account_are_delegated() -> Result<()> {
    let acct = Account::fresh().await?;
    let arn = acct
        .trail(
            TrailSpec::new("central", HOME)
                .log_group("arn:aws:logs:us-east-1:444455556666:log-group:central:*")
                .role("arn:aws:iam::444455556666:role/CentralDelivery"),
        )
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &arn);
    assert_eq!(t.status, Status::Pass, "{t:#?}");
    assert!(t.has_reason(ReasonCode::CwlChecksDelegated));
    Ok(())
}

#[tokio::test]
async fn empty_account_fails_no_trail_high() -> Result<()> {
    let acct = Account::fresh().await?;
    let (report, _) = acct.scan(&[HOME, OTHER]).await?;
    assert_eq!(report.evaluations.len(), 1);
    let a = account(&report);
    assert_eq!(counted(a), vec![ReasonCode::NoTrail]);
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.resource_id, format!("AWS::::Account:{}", acct.id));
    Ok(())
}

#[tokio::test]
async fn healthy_single_region_trails_still_lack_realtime_coverage() -> Result<()> {
    let acct = Account::fresh().await?;
    acct.healthy_trail("home-only", HOME, false).await?;
    let (report, _) = acct.scan(&[HOME, OTHER]).await?;
    let a = account(&report);
    assert_eq!(counted(a), vec![ReasonCode::NoRealtimeCoverage]);
    assert!(
        message(a, ReasonCode::NoRealtimeCoverage)
            .contains("Regions without real-time coverage: eu-west-1."),
        "{a:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn shared_log_group_and_role_are_fetched_once() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("first", HOME, true).await?;
    acct.trail(
        TrailSpec::new("second", HOME)
            .log_group(&healthy.log_group_arn)
            .role(&healthy.role_arn),
    )
    .await?;
    let (report, _) = acct.scan(&[HOME, OTHER]).await?;
    assert_eq!(report.summary.pass, 3, "{report:#?}");
    // 1 GetCallerIdentity + 2 DescribeTrails + 2 trails x (GetTrailStatus + GetEventSelectors)
    // + GetTrailStatus of the multi-region trail in eu-west-1
    // + one ListTags for both trails, homed in the same region
    // + DescribeLogGroups, DescribeMetricFilters, DescribeLogStreams, DescribeAlarms and
    //   ListSubscriptionsByTopic of its topic, once for both trails
    // + GetRole, ListRolePolicies, GetRolePolicy, ListAttachedRolePolicies, once for both trails.
    assert_eq!(report.api_calls, 1 + 2 + 4 + 1 + 1 + 5 + 4);
    Ok(())
}

// What moto can show of how real AWS judges a delivery path: the log group's key, the role's
// permissions boundary, who the tamper alarm pages, and an organisation trail's member
// streams. The rest (log-group classes, per-region delivery, stream times) moto does not keep;
// `trailwatch-core`'s fixture tests cover those.

#[tokio::test]
async fn a_log_group_key_that_is_disabled_fails_the_trail() -> Result<()> {
    let acct = Account::fresh().await?;
    let (group_arn, key_arn) = acct.encrypted_log_group(HOME, "cloudtrail/sealed").await?;
    let healthy = acct
        .healthy_trail_on("sealed", HOME, true, "cloudtrail/sealed", group_arn)
        .await?;
    // The key policy as the CloudWatch Logs user guide writes it passes.
    let (report, _) = acct.scan(&[HOME]).await?;
    assert_eq!(
        trail(&report, &healthy.arn).status,
        Status::Pass,
        "{report:#?}"
    );

    // moto answers DisableKey by ARN with a 500; it takes the bare key id.
    let key_id = key_arn.rsplit('/').next().unwrap_or_default();
    aws_sdk_kms::Client::new(&acct.sdk)
        .disable_key()
        .key_id(key_id)
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlLogGroupKeyUnusable]);
    assert!(
        message(t, ReasonCode::CwlLogGroupKeyUnusable).contains("in state Disabled"),
        "{t:#?}"
    );
    // A trail whose events cannot be stored covers nothing.
    assert!(counted(account(&report)).contains(&ReasonCode::NoRealtimeCoverage));
    Ok(())
}

#[tokio::test]
async fn a_permissions_boundary_without_log_writes_fails_the_role() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("bounded", HOME, true).await?;
    let iam = acct.iam();
    let boundary = iam
        .create_policy()
        .policy_name("ReadOnlyBoundary")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": ["logs:Describe*", "cloudtrail:Get*"], "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await?;
    let boundary_arn = boundary
        .policy()
        .and_then(|p| p.arn())
        .expect("policy ARN")
        .to_string();
    iam.put_role_permissions_boundary()
        .role_name(&healthy.role_name)
        .permissions_boundary(&boundary_arn)
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlRolePermissionMissing]);
    assert!(
        message(t, ReasonCode::CwlRolePermissionMissing)
            .contains(&format!("its permissions boundary {boundary_arn} does not")),
        "{t:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_tamper_alarm_that_pages_nobody_is_unrouted() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("quiet", HOME, true).await?;
    let topic = format!("arn:aws:sns:{HOME}:{}:security-alerts", acct.id);
    let sns = aws_sdk_sns::Client::new(&acct.sdk);
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await?;
    for subscription in subscriptions.subscriptions() {
        sns.unsubscribe()
            .subscription_arn(subscription.subscription_arn().unwrap_or_default())
            .send()
            .await?;
    }
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert_eq!(t.status, Status::Warning, "{t:#?}");
    assert!(message(t, ReasonCode::TamperAlarmUnrouted).contains("which has no subscription"));

    sns.delete_topic().topic_arn(&topic).send().await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &healthy.arn);
    assert!(message(t, ReasonCode::TamperAlarmUnrouted).contains("which does not exist"));
    Ok(())
}

#[tokio::test]
async fn an_organisation_trails_role_must_write_every_members_stream() -> Result<()> {
    let acct = Account::fresh().await?;
    acct.create_organization(&[]).await?;
    let organization = aws_sdk_organizations::Client::new(&acct.sdk)
        .describe_organization()
        .send()
        .await?;
    let org_id = organization
        .organization()
        .and_then(|o| o.id())
        .expect("organisation id")
        .to_string();
    let group_arn = acct.log_group(HOME, "cloudtrail/org", Some(365)).await?;
    let group = group_arn.trim_end_matches(":*");
    // The role policy for an account's own trail: its own streams only.
    let own_streams = format!("{group}:log-stream:{}_CloudTrail_{HOME}*", acct.id);
    let role_arn = acct
        .role(
            "CloudTrailToCloudWatch-org",
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            &[("delivery", delivery_policy(&own_streams))],
        )
        .await?;
    acct.tamper_alarm(HOME, "cloudtrail/org").await?;
    let arn = acct
        .trail(
            TrailSpec::new("org", HOME)
                .multi_region()
                .organization()
                .log_group(&group_arn)
                .role(&role_arn),
        )
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    let t = trail(&report, &arn);
    assert_eq!(counted(t), vec![ReasonCode::CwlRolePermissionMissing]);
    let text = message(t, ReasonCode::CwlRolePermissionMissing);
    assert!(
        text.contains(&format!("Allow {group}:log-stream:{org_id}_*")),
        "{text}"
    );

    // The organisation trail's policy as the CloudTrail user guide gives it.
    let documented = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [own_streams, format!("{group}:log-stream:{org_id}_*")]}]});
    acct.iam()
        .put_role_policy()
        .role_name("CloudTrailToCloudWatch-org")
        .policy_name("delivery")
        .policy_document(documented.to_string())
        .send()
        .await?;
    let (report, _) = acct.scan(&[HOME]).await?;
    assert_eq!(trail(&report, &arn).status, Status::Pass, "{report:#?}");
    Ok(())
}
