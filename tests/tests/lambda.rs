//! Both Lambda functions end to end, as Lambda runs them: `cargo lambda watch` runs the real
//! binaries against moto, `cargo lambda invoke` sends them the events under
//! `tests/fixtures/events`, and the test reads what landed in Security Hub and in an SQS queue
//! subscribed to the alert topic.
//!
//! One story, in order, because each step starts from the state the last one left: a healthy
//! trail is scanned, then broken one change at a time, each change followed by its event. A
//! second test takes Security Hub down behind the fault proxy; a third runs the scan over an
//! organisation.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::lambda::LambdaWatch;
use trailwatch_tests::{endpoint, fixture_event, Account, TrailSpec};

const HOME: &str = "us-east-1";
const TRAIL: &str = "audit";

/// The one alert that the last step sent, as the SQS subscriber got it.
async fn only_alert(account: &Account, queue: &str) -> Result<Value> {
    let alerts = account.alerts(HOME, queue).await?;
    ensure!(alerts.len() == 1, "expected one alert, got {alerts:#?}");
    Ok(alerts.into_iter().next().unwrap_or_default())
}

fn records(alert: &Value) -> Value {
    serde_json::from_str(alert["Message"].as_str().unwrap_or_default()).unwrap_or_default()
}

/// The trail's transition in an alert: its kind and the reason codes it added.
fn trail_transition(alert: &Value) -> (String, Vec<String>) {
    let records = records(alert);
    let transition = records["transitions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["evaluation"]["kind"] == "trail")
        .cloned()
        .unwrap_or_default();
    let added = transition["added"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    (
        transition["kind"].as_str().unwrap_or_default().to_string(),
        added,
    )
}

/// The compliance status and record state of the trail's finding.
async fn trail_finding_status(account: &Account) -> Result<(String, String)> {
    let finding = account.trail_finding(HOME, TRAIL).await?;
    Ok((
        finding
            .compliance()
            .and_then(|c| c.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        finding
            .record_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    ))
}

#[tokio::test]
async fn both_functions_under_cargo_lambda_watch() -> Result<()> {
    let account = Account::fresh().await?;
    account.enable_security_hub(HOME).await?;
    let (topic, queue) = account.topic_with_queue(HOME, "trailwatch-alerts").await?;
    let trail = account.healthy_trail(TRAIL, HOME, true).await?;
    let watch = LambdaWatch::start(
        &account,
        &[
            ("TRAILWATCH_SNS_TOPIC_ARN", topic.as_str()),
            ("TRAILWATCH_REGIONS", HOME),
            ("TRAILWATCH_SECURITY_HUB", "true"),
        ],
    )?;
    let event = |name: &str| fixture_event(name, &account.id);
    let cloudtrail = account.cloudtrail(HOME);

    // The hourly scan: everything passes, both findings are recorded, nobody is paged.
    let scan = watch.invoke("scheduled-scan", &event("scheduled_event.json")?)?;
    let summary = scan.response()?;
    assert_eq!(
        summary["account_id"],
        account.id.as_str(),
        "{}",
        watch.logs()
    );
    assert_eq!(summary["summary"]["pass"], 2, "{summary}");
    assert_eq!(summary["imported"], 2, "{summary}");
    assert_eq!(summary["alert_sent"], false);
    assert!(account.alerts(HOME, &queue).await?.is_empty());

    // CreateTrail of the trail that is already healthy: re-checked, nothing to say.
    let created = watch.invoke("trail-change", &event("create_trail.json")?)?;
    let created = created.response()?;
    assert_eq!(created["outcome"], "published", "{created}");
    assert_eq!(created["run"]["transitions"], 0, "{created}");

    // The delivery role loses its permissions: a new failure, and coverage is gone.
    account
        .iam()
        .put_role_policy()
        .role_name(&trail.role_name)
        .policy_name("delivery")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await?;
    watch
        .invoke("trail-change", &event("put_role_policy.json")?)?
        .response()?;
    let alert = only_alert(&account, &queue).await?;
    assert_eq!(
        alert["MessageAttributes"]["event_name"]["Value"],
        "PutRolePolicy"
    );
    let (kind, added) = trail_transition(&alert);
    assert_eq!(kind, "new_failure");
    assert!(
        added.contains(&"CWL_ROLE_PERMISSION_MISSING".into()),
        "{added:?}"
    );
    assert_eq!(trail_finding_status(&account).await?.0, "FAILED");

    // The log group is deleted: the failure changes.
    account
        .logs(HOME)
        .delete_log_group()
        .log_group_name(&trail.log_group_name)
        .send()
        .await?;
    watch
        .invoke("trail-change", &event("delete_log_group.json")?)?
        .response()?;
    let alert = only_alert(&account, &queue).await?;
    let (kind, added) = trail_transition(&alert);
    assert_eq!(kind, "changed");
    assert!(added.contains(&"CWL_LOG_GROUP_MISSING".into()), "{added:?}");

    // UpdateTrail, naming the trail by ARN, cuts CloudWatch Logs off altogether.
    cloudtrail
        .update_trail()
        .name(&trail.arn)
        .cloud_watch_logs_log_group_arn("")
        .cloud_watch_logs_role_arn("")
        .send()
        .await?;
    watch
        .invoke("trail-change", &event("update_trail_arn.json")?)?
        .response()?;
    let alert = only_alert(&account, &queue).await?;
    assert_eq!(
        alert["MessageAttributes"]["event_name"]["Value"],
        "UpdateTrail"
    );
    let (kind, added) = trail_transition(&alert);
    assert_eq!(kind, "changed");
    assert_eq!(added, ["CWL_NOT_CONFIGURED"]);

    // StopLogging: the alert names who, from where, when, and what. The event carries the time
    // CloudTrail recorded for the stop, as a real one does.
    cloudtrail.stop_logging().name(TRAIL).send().await?;
    let stopped = cloudtrail
        .get_trail_status()
        .name(TRAIL)
        .send()
        .await?
        .stop_logging_time()
        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
        .context("a stop time")?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut stop = event("stop_logging.json")?;
    stop["detail"]["eventTime"] = stopped.clone().into();
    watch.invoke("trail-change", &stop)?.response()?;
    let alert = only_alert(&account, &queue).await?;
    let cause = &records(&alert)["cause"];
    assert_eq!(
        cause["actor"]["arn"],
        format!("arn:aws:sts::{}:assumed-role/ci-deploy/mallory", account.id)
    );
    assert_eq!(cause["actor"]["source_ip_address"], "198.51.100.23");
    assert_eq!(cause["actor"]["event_time"], stopped.as_str());
    assert_eq!(cause["request_parameters"]["name"], TRAIL);
    let (kind, added) = trail_transition(&alert);
    assert_eq!(kind, "changed");
    assert_eq!(added, ["LOGGING_STOPPED"]);

    // DeleteTrail: the finding is archived and a HIGH alert goes out, once, however often
    // EventBridge delivers the event.
    cloudtrail.delete_trail().name(TRAIL).send().await?;
    for _ in 0..2 {
        watch
            .invoke("trail-change", &event("delete_trail.json")?)?
            .response()?;
    }
    let alert = only_alert(&account, &queue).await?;
    assert_eq!(alert["MessageAttributes"]["severity"]["Value"], "HIGH");
    assert_eq!(trail_transition(&alert).0, "deleted");
    assert_eq!(trail_finding_status(&account).await?.1, "ARCHIVED");

    // A malformed event: a NonRetryable error naming the event, and nothing published.
    let before = account.findings(HOME).await?;
    let malformed = watch.invoke("trail-change", &event("malformed.json")?)?;
    assert!(!malformed.succeeded(), "{malformed:?}");
    let stderr = malformed.stderr();
    assert!(stderr.contains("NonRetryable"), "{stderr}");
    assert!(
        stderr.contains("5b0e2c61-1f7e-4f0c-8a3e-0d1c2b3a4f99"),
        "{stderr}"
    );
    assert!(account.alerts(HOME, &queue).await?.is_empty());
    let after = account.findings(HOME).await?;
    assert_eq!(
        before.values().map(|f| f.updated_at()).collect::<Vec<_>>(),
        after.values().map(|f| f.updated_at()).collect::<Vec<_>>(),
        "a malformed event changes no finding"
    );
    Ok(())
}

/// Security Hub down (every read and import fails with HTTP 500), as deployed, ledger included:
/// the ledger is the memory of pages, so the scheduled-scan function pages what changed once,
/// then fails the invocation as `Retryable` so that Lambda retries it. The retry, with Security
/// Hub back, records the findings and pages nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_hub_outage_pages_once_and_fails_the_scan_as_retryable() -> Result<()> {
    let account = Account::fresh().await?;
    account.enable_security_hub(HOME).await?;
    let (topic, queue) = account.topic_with_queue(HOME, "trailwatch-alerts").await?;
    let ledger = account
        .ledger_table(HOME, "trailwatch-alert-ledger")
        .await?;
    account.trail(TrailSpec::new("s3-only", HOME)).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::ServerError).on("GetFindings"));
    proxy.add(Rule::new(Fault::ServerError).on("BatchImportFindings"));
    let watch = LambdaWatch::start(
        &account,
        &[
            ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
            ("TRAILWATCH_SNS_TOPIC_ARN", topic.as_str()),
            ("TRAILWATCH_LEDGER_TABLE", ledger.as_str()),
            ("TRAILWATCH_REGIONS", HOME),
        ],
    )?;
    let event = fixture_event("scheduled_event.json", &account.id)?;
    // `cargo lambda invoke` blocks; the proxy needs the runtime's other worker meanwhile.
    let invoke = || tokio::task::block_in_place(|| watch.invoke("scheduled-scan", &event));

    let failed = invoke()?;
    assert!(!failed.succeeded(), "{:?}", failed.response());
    let stderr = failed.stderr();
    assert!(stderr.contains("Retryable"), "{stderr}\n{}", watch.logs());
    assert!(
        stderr.contains("reading trailwatch findings in us-east-1 failed"),
        "{stderr}"
    );
    assert_eq!(account.alerts(HOME, &queue).await?.len(), 1);
    assert!(account.findings(HOME).await?.is_empty());

    proxy.clear();
    let retried = invoke()?.response()?;
    assert_eq!(retried["alert_sent"], false, "{retried}");
    assert_eq!(retried["imported"], 2, "{retried}");
    assert!(account.alerts(HOME, &queue).await?.is_empty());
    Ok(())
}

/// Organisation mode as deployed: the function lists the organisation, reads each member
/// through its role, and answers with every account; a member whose role refuses is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_scan_covers_an_organisation() -> Result<()> {
    let management = Account::fresh().await?;
    let members = management
        .create_organization(&["member", "refusing"])
        .await?;
    members[0].trail(TrailSpec::new("s3-only", HOME)).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(
        Rule::new(Fault::AccessDenied)
            .on("AssumeRole")
            .mentioning(&members[1].id),
    );
    let watch = LambdaWatch::start(
        &management,
        &[
            ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
            ("TRAILWATCH_REGIONS", HOME),
            ("TRAILWATCH_SECURITY_HUB", "false"),
            ("TRAILWATCH_ORG_ROLE_NAME", "trailwatch-read"),
        ],
    )?;
    let event = fixture_event("scheduled_event.json", &management.id)?;
    let answer = tokio::task::block_in_place(|| watch.invoke("scheduled-scan", &event))?;
    let summary = answer.response()?;
    assert_eq!(summary["accounts"], 3, "{summary:#}\n{}", watch.logs());
    assert_eq!(summary["scanned"], 2, "{summary:#}");
    assert_eq!(
        summary["unreachable"][0]["account_id"],
        members[1].id.as_str(),
        "{summary:#}"
    );
    let failing = summary["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["account_id"] == members[0].id.as_str())
        .cloned()
        .unwrap_or_default();
    assert!(
        failing["summary"]["fail"].as_u64().is_some_and(|n| n > 0),
        "{summary:#}"
    );
    // The metrics line that the accounts-unreachable alarm reads.
    assert!(
        watch.logs().contains("\"AccountsUnreachable\":1"),
        "{}",
        watch.logs()
    );
    Ok(())
}
