//! `trailwatch replay`: the trail-change flow from a laptop, on a saved event.

use anyhow::Result;
use serde_json::Value;
use std::process::{Command, Output};
use trailwatch_tests::{fixture_event, trailwatch_binary, workflow_status, Account};

const HOME: &str = "us-east-1";

async fn replay(account: &Account, event: &Value, extra: &[&str]) -> Result<Output> {
    replay_with(account, event, extra, &[]).await
}

/// [`replay`] with the function's `TRAILWATCH_` variables set.
async fn replay_with(
    account: &Account,
    event: &Value,
    extra: &[&str],
    variables: &[(&str, &str)],
) -> Result<Output> {
    let file = std::env::temp_dir().join(format!(
        "trailwatch-replay-{}-{}.json",
        account.id,
        rand::random::<u32>()
    ));
    std::fs::write(&file, serde_json::to_vec(event)?)?;
    let mut command = Command::new(trailwatch_binary());
    command
        .args([
            "replay",
            file.to_str().unwrap(),
            "--regions",
            HOME,
            "--output",
            "json",
        ])
        .args(extra)
        .env_remove("AWS_PROFILE");
    for (key, value) in account.env() {
        command.env(key, value);
    }
    for (key, value) in variables {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    std::fs::remove_file(&file)?;
    Ok(output)
}

/// An account with Security Hub, a topic read through a queue, and trail `audit` stopped.
async fn stopped_trail() -> Result<(Account, String, String)> {
    let account = Account::fresh().await?;
    account.enable_security_hub(HOME).await?;
    let (topic, queue) = account.topic_with_queue(HOME, "alerts").await?;
    account.healthy_trail("audit", HOME, true).await?;
    account
        .cloudtrail(HOME)
        .stop_logging()
        .name("audit")
        .send()
        .await?;
    Ok((account, topic, queue))
}

#[tokio::test]
async fn replaying_stop_logging_records_alerts_and_exits_1() -> Result<()> {
    let (account, topic, queue) = stopped_trail().await?;
    let event = fixture_event("stop_logging.json", &account.id)?;
    let output = replay(&account, &event, &["--sns-topic-arn", &topic]).await?;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let kinds: Vec<&str> = report["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["trail", "account"],
        "the trail and the coverage only"
    );
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("StopLogging by arn:aws:sts::"), "{stderr}");
    assert!(stderr.contains("after StopLogging"), "{stderr}");

    let alerts = account.alerts(HOME, &queue).await?;
    assert_eq!(alerts.len(), 1);
    let records: Value = serde_json::from_str(alerts[0]["Message"].as_str().unwrap())?;
    assert_eq!(records["trigger"], "trailwatch replay");
    assert_eq!(
        records["cause"]["actor"]["source_ip_address"],
        "198.51.100.23"
    );
    assert_eq!(account.findings(HOME).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_bare_cloudtrail_record_replays_like_its_event() -> Result<()> {
    let (account, topic, queue) = stopped_trail().await?;
    let record = fixture_event("stop_logging.json", &account.id)?["detail"].clone();
    let output = replay(&account, &record, &["--sns-topic-arn", &topic]).await?;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(account.alerts(HOME, &queue).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_malformed_or_foreign_event_exits_2_and_publishes_nothing() -> Result<()> {
    let (account, topic, queue) = stopped_trail().await?;
    let malformed = fixture_event("malformed.json", &account.id)?;
    let output = replay(&account, &malformed, &["--sns-topic-arn", &topic]).await?;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("event is malformed"), "{stderr}");
    assert!(stderr.contains("nothing was published"), "{stderr}");

    let mut foreign = fixture_event("scheduled_event.json", &account.id)?;
    foreign["detail"] = serde_json::json!({"eventSource": "cloudtrail.amazonaws.com"});
    let output = replay(&account, &foreign, &["--sns-topic-arn", &topic]).await?;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8(output.stderr)?.contains("not a CloudTrail API call"));

    let other_account = fixture_event("stop_logging.json", "210987654321")?;
    let output = replay(&account, &other_account, &["--sns-topic-arn", &topic]).await?;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8(output.stderr)?.contains("210987654321"));

    assert!(account.alerts(HOME, &queue).await?.is_empty());
    assert!(account.findings(HOME).await?.is_empty());
    Ok(())
}

async fn is_logging(account: &Account, trail: &str) -> Result<bool> {
    let status = account
        .cloudtrail(HOME)
        .get_trail_status()
        .name(trail)
        .send()
        .await?;
    Ok(status.is_logging().unwrap_or(false))
}

#[tokio::test]
async fn auto_remediation_restarts_the_trail_and_the_page_says_who_stopped_it() -> Result<()> {
    let (account, topic, queue) = stopped_trail().await?;
    let event = fixture_event("stop_logging.json", &account.id)?;
    let caller = event["detail"]["userIdentity"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
    let output = replay_with(
        &account,
        &event,
        &["--sns-topic-arn", &topic],
        &[
            ("TRAILWATCH_AUTO_REMEDIATE", "start-logging"),
            (
                "TRAILWATCH_AUTO_REMEDIATE_EXEMPT",
                "arn:aws:iam::*:role/SecurityAdmin",
            ),
        ],
    )
    .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(is_logging(&account, "audit").await?, "restarted: {stderr}");
    let alerts = account.alerts(HOME, &queue).await?;
    assert_eq!(alerts.len(), 1, "one page: {stderr}");
    let text = alerts[0]["Message"].as_str().unwrap();
    assert!(
        text.contains("trailwatch started it again at"),
        "the page says the trail was restarted: {text}"
    );
    assert!(
        text.contains(&format!("it had been stopped by {caller}")),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_stop_by_an_exempt_principal_is_left_alone_but_still_paged() -> Result<()> {
    let (account, topic, queue) = stopped_trail().await?;
    let event = fixture_event("stop_logging.json", &account.id)?;
    let output = replay_with(
        &account,
        &event,
        &["--sns-topic-arn", &topic],
        &[
            ("TRAILWATCH_AUTO_REMEDIATE", "start-logging"),
            // The fixture's caller is an assumed role: its role's ARN is what people name.
            ("TRAILWATCH_AUTO_REMEDIATE_EXEMPT", "arn:aws:iam::*:role/*"),
        ],
    )
    .await?;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        !is_logging(&account, "audit").await?,
        "an exempt stop stays"
    );
    let alerts = account.alerts(HOME, &queue).await?;
    assert_eq!(alerts.len(), 1);
    assert!(!alerts[0]["Message"]
        .as_str()
        .unwrap()
        .contains("started it again"));
    Ok(())
}

#[tokio::test]
async fn an_unknown_auto_remediation_is_a_configuration_error() -> Result<()> {
    let (account, topic, queue) = stopped_trail().await?;
    let event = fixture_event("stop_logging.json", &account.id)?;
    let output = replay_with(
        &account,
        &event,
        &["--sns-topic-arn", &topic],
        &[("TRAILWATCH_AUTO_REMEDIATE", "everything")],
    )
    .await?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TRAILWATCH_AUTO_REMEDIATE"));
    assert!(account.alerts(HOME, &queue).await?.is_empty());
    assert!(!is_logging(&account, "audit").await?);
    Ok(())
}

/// `event` turned into a call that tags (`AddTags`) or untags (`RemoveTags`) `trail_arn`, with
/// the request parameters the AddTags API reference gives, in CloudTrail's camelCase.
fn tagging(mut event: Value, call: &str, trail_arn: &str) -> Value {
    event["detail"]["eventName"] = call.into();
    event["detail"]["requestParameters"] = serde_json::json!({
        "resourceId": trail_arn,
        "tagsList": [{"key": "trailwatch:exempt", "value": "data events only"}],
    });
    event
}

#[tokio::test]
async fn tagging_a_trail_exempt_suppresses_at_once_and_untagging_pages_naming_who() -> Result<()> {
    let account = Account::fresh().await?;
    account.enable_security_hub(HOME).await?;
    let (topic, queue) = account.topic_with_queue(HOME, "alerts").await?;
    account.healthy_trail("audit", HOME, true).await?;
    let data = account
        .trail(trailwatch_tests::TrailSpec::new("data-events", HOME))
        .await?;
    account
        .tag_trail(HOME, &data, "trailwatch:exempt", "data events only")
        .await?;
    let base = fixture_event("stop_logging.json", &account.id)?;

    let added = tagging(base.clone(), "AddTags", &data);
    let output = replay(&account, &added, &["--sns-topic-arn", &topic]).await?;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        account.alerts(HOME, &queue).await?.is_empty(),
        "exempt: no page"
    );
    let finding = account.trail_finding(HOME, "data-events").await?;
    assert_eq!(workflow_status(&finding), Some("SUPPRESSED"));

    account
        .untag_trail(HOME, &data, "trailwatch:exempt")
        .await?;
    let removed = tagging(base, "RemoveTags", &data);
    let output = replay(&account, &removed, &["--sns-topic-arn", &topic]).await?;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let alerts = account.alerts(HOME, &queue).await?;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let records: Value = serde_json::from_str(alerts[0]["Message"].as_str().unwrap())?;
    assert_eq!(records["cause"]["actor"]["event_name"], "RemoveTags");
    let paged: Vec<&str> = records["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["evaluation"]["resource_id"].as_str())
        .collect();
    assert_eq!(paged, [data.as_str()], "{records:#}");
    Ok(())
}
