//! Bad weather: AccessDenied in one region, throttling bursts (HTTP 400 and 429), 5xx, requests
//! that never get an answer, and denied IAM reads, injected by a proxy in front of moto. The
//! scan must finish, keep every verdict it can prove, and turn what it could not read into
//! ERROR, never PASS.

use anyhow::Result;
use std::time::Duration;
use trailwatch_core::{Evaluation, EvaluationKind, ReasonCode, ScanReport, Status};
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{endpoint, Account, TrailSpec};

/// The evaluation of the trail `arn`; every test here has one.
fn evaluation<'a>(report: &'a ScanReport, arn: &str) -> &'a Evaluation {
    report
        .evaluations
        .iter()
        .find(|e| e.resource_id == arn)
        .unwrap_or_else(|| panic!("no evaluation of {arn}"))
}

/// The one region evaluation, which must be ERROR for `region`.
fn unreadable_region<'a>(report: &'a ScanReport, region: &str) -> &'a Evaluation {
    let found = report
        .evaluations
        .iter()
        .find(|e| e.kind == EvaluationKind::Region)
        .unwrap_or_else(|| panic!("no evaluation for the unreadable region: {report:#?}"));
    assert_eq!(found.region, region);
    assert_eq!(found.status, Status::Error);
    found
}

#[tokio::test]
async fn access_denied_in_one_region_is_error_for_that_region_only() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("everywhere", "us-east-1", true).await?;
    acct.trail(TrailSpec::new("hidden", "eu-west-1")).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::AccessDenied).in_region("eu-west-1"));

    let (report, _) = acct
        .via(&proxy.endpoint)
        .await
        .scan(&["us-east-1", "eu-west-1"])
        .await?;

    let region = unreadable_region(&report, "eu-west-1");
    assert!(
        region.reasons[0].message.contains("AccessDeniedException"),
        "{region:#?}"
    );
    let trail = evaluation(&report, &healthy.arn);
    assert_eq!(trail.status, Status::Pass, "{trail:#?}");
    let account = report
        .evaluations
        .iter()
        .find(|e| e.kind == EvaluationKind::Account)
        .unwrap();
    assert_eq!(
        account.status,
        Status::Pass,
        "the multi-region trail still covers the account"
    );
    assert!(proxy.injected().iter().all(|(r, _, _)| r == "eu-west-1"));
    Ok(())
}

#[tokio::test]
async fn throttling_bursts_are_ridden_out_by_the_sdk_retry() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("busy", "us-east-1", true).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::Throttling).on("DescribeTrails").times(2));
    proxy.add(Rule::new(Fault::Throttling).on("GetTrailStatus").times(1));
    proxy.add(Rule::new(Fault::ServerError).on("GetRole").times(1));

    let (report, _) = acct.via(&proxy.endpoint).await.scan(&["us-east-1"]).await?;

    assert_eq!(proxy.injected().len(), 4, "{:?}", proxy.injected());
    assert_eq!(report.summary.error, 0, "{report:#?}");
    let trail = evaluation(&report, &healthy.arn);
    assert_eq!(trail.status, Status::Pass);
    // Retries are attempts of one operation: the call count does not grow. GetCallerIdentity,
    // DescribeTrails, the trail's status and selectors, its tags, its log group's group,
    // filters, streams and alarms, the alarm topic's subscriptions, and the role's four reads.
    assert_eq!(report.api_calls, 1 + 1 + 2 + 1 + 4 + 1 + 4);
    Ok(())
}

#[tokio::test]
async fn denied_role_read_makes_the_trail_error_not_pass() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("guarded", "us-east-1", true).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::AccessDenied).on("GetRole"));

    let (report, _) = acct.via(&proxy.endpoint).await.scan(&["us-east-1"]).await?;

    let trail = evaluation(&report, &healthy.arn);
    assert_eq!(trail.status, Status::Error, "{trail:#?}");
    let reason = trail
        .reasons
        .iter()
        .find(|r| r.code == ReasonCode::EvaluationIncomplete)
        .unwrap();
    assert!(
        reason.message.contains("GetRole failed: AccessDenied"),
        "{}",
        reason.message
    );
    Ok(())
}

#[tokio::test]
async fn a_request_that_hangs_is_abandoned_and_retried() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("patient", "us-east-1", true).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::Timeout).on("GetTrailStatus").times(1));

    let (report, _) = acct
        .with_timeouts(Duration::from_secs(1), Duration::from_secs(10))
        .via(&proxy.endpoint)
        .await
        .scan(&["us-east-1"])
        .await?;

    assert_eq!(proxy.injected().len(), 1);
    let trail = evaluation(&report, &healthy.arn);
    assert_eq!(trail.status, Status::Pass, "{trail:#?}");
    Ok(())
}

#[tokio::test]
async fn a_region_that_never_answers_is_error_for_that_region_only() -> Result<()> {
    let acct = Account::fresh().await?;
    let healthy = acct.healthy_trail("reachable", "us-east-1", true).await?;
    acct.trail(TrailSpec::new("unreachable", "eu-west-1"))
        .await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::Timeout).in_region("eu-west-1"));

    let (report, _) = acct
        .with_timeouts(Duration::from_millis(500), Duration::from_secs(3))
        .via(&proxy.endpoint)
        .await
        .scan(&["us-east-1", "eu-west-1"])
        .await?;

    let region = unreadable_region(&report, "eu-west-1");
    assert!(
        region.reasons[0].message.to_lowercase().contains("timeout")
            || region.reasons[0]
                .message
                .to_lowercase()
                .contains("timed out"),
        "{}",
        region.reasons[0].message
    );
    let trail = evaluation(&report, &healthy.arn);
    assert_eq!(trail.status, Status::Pass, "{trail:#?}");
    Ok(())
}

#[tokio::test]
async fn http_429_from_security_hub_is_ridden_out() -> Result<()> {
    let acct = Account::fresh().await?;
    acct.enable_security_hub("us-east-1").await?;
    acct.healthy_trail("busy-hub", "us-east-1", true).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::TooManyRequests).on("GetFindings").times(1));
    proxy.add(
        Rule::new(Fault::TooManyRequests)
            .on("BatchImportFindings")
            .times(2),
    );

    let outcome = acct
        .via(&proxy.endpoint)
        .await
        .publish(&["us-east-1"], None, true)
        .await?;

    assert_eq!(proxy.injected().len(), 3, "{:?}", proxy.injected());
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert_eq!(outcome.imported, 2, "the trail and the account");
    assert_eq!(acct.findings("us-east-1").await?.len(), 2);
    Ok(())
}
