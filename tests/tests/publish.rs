//! Findings and alerts against moto: Security Hub holds the state between runs, SNS delivers
//! to a subscribed SQS queue, and each test reads both back the way an operator would.

use anyhow::{Context, Result};
use serde_json::Value;
use std::process::Command;
use trailwatch_aws::FailureKind;
use trailwatch_core::reconcile::TransitionKind;
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{
    delivery_policy, endpoint, trailwatch_binary, venv_dir, Account, TrailSpec,
};

const HOME: &str = "us-east-1";

async fn account_with_hub_and_topic() -> Result<(Account, String, String)> {
    let acct = Account::fresh().await?;
    acct.enable_security_hub(HOME).await?;
    let (topic, queue) = acct.topic_with_queue(HOME, "trailwatch-alerts").await?;
    Ok((acct, topic, queue))
}

/// The machine-readable records SQS subscribers receive, from an SNS envelope.
fn records(envelope: &Value) -> Value {
    serde_json::from_str(envelope["Message"].as_str().expect("Message")).expect("records JSON")
}

fn kinds(envelope: &Value) -> Vec<String> {
    records(envelope)["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect()
}

fn compliance(finding: &aws_sdk_securityhub::types::AwsSecurityFinding) -> &str {
    finding
        .compliance()
        .and_then(|c| c.status())
        .map(|s| s.as_str())
        .unwrap_or_default()
}

#[tokio::test]
async fn first_scan_imports_every_evaluation_and_sends_one_digest_then_nothing() -> Result<()> {
    let (acct, topic, queue) = account_with_hub_and_topic().await?;
    acct.healthy_trail("good", HOME, true).await?;
    let s3_only = acct.trail(TrailSpec::new("s3-only", HOME)).await?;

    let first = acct.publish(&[HOME], Some(&topic), true).await?;
    assert!(first.failures.is_empty(), "{:#?}", first.failures);
    assert_eq!(first.imported, first.report.evaluations.len());
    let findings = acct.findings(HOME).await?;
    assert_eq!(findings.len(), 3, "two trails and the account");
    let failing = findings
        .values()
        .find(|f| f.resources().first().and_then(|r| r.id()) == Some(s3_only.as_str()))
        .context("finding for the S3-only trail")?;
    assert_eq!(compliance(failing), "FAILED");

    let alerts = acct.alerts(HOME, &queue).await?;
    assert_eq!(alerts.len(), 1, "one digest per scan");
    assert_eq!(kinds(&alerts[0]), vec!["new_failure"]);
    assert_eq!(
        alerts[0]["Subject"],
        format!("trailwatch: 1 new failure in {}", acct.id)
    );
    let attributes = &alerts[0]["MessageAttributes"];
    assert_eq!(attributes["severity"]["Value"], "MEDIUM");
    assert_eq!(attributes["status"]["Value"], "FAIL");
    assert_eq!(attributes["account"]["Value"], acct.id.as_str());
    assert!(attributes["reason"]["Value"]
        .as_str()
        .unwrap()
        .contains("CWL_NOT_CONFIGURED"));

    let second = acct.publish(&[HOME], Some(&topic), true).await?;
    assert_eq!(second.imported, 0, "nothing changed");
    assert_eq!(second.unchanged, 3);
    assert!(second.alert.is_none());
    assert!(acct.alerts(HOME, &queue).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn fixing_a_trail_passes_its_finding_and_sends_resolved() -> Result<()> {
    let (acct, topic, queue) = account_with_hub_and_topic().await?;
    let trail = acct.healthy_trail("broken", HOME, true).await?;
    // The delivery policy names the log group without `:*`: delivery fails.
    let put_policy = |resource: &str| {
        acct.iam()
            .put_role_policy()
            .role_name(&trail.role_name)
            .policy_name("delivery")
            .policy_document(delivery_policy(resource).to_string())
            .send()
    };
    put_policy(trail.log_group_arn.trim_end_matches(":*")).await?;
    acct.publish(&[HOME], Some(&topic), true).await?;
    let before = acct.findings(HOME).await?;
    acct.alerts(HOME, &queue).await?;

    put_policy(&trail.log_group_arn).await?;
    let outcome = acct.publish(&[HOME], Some(&topic), true).await?;

    let kinds_now: Vec<_> = outcome.transitions.iter().map(|t| t.kind).collect();
    assert!(
        kinds_now.contains(&TransitionKind::Resolved),
        "{kinds_now:?}"
    );
    let after = acct.findings(HOME).await?;
    let id = before
        .iter()
        .find(|(_, f)| {
            compliance(f) == "FAILED" && f.id().unwrap().contains("/cloudtrail-cloudwatch-logs/")
        })
        .map(|(id, _)| id.clone())
        .context("the broken trail's finding")?;
    assert_eq!(compliance(&after[&id]), "PASSED");
    assert_eq!(
        after[&id].created_at(),
        before[&id].created_at(),
        "first sighting kept"
    );
    assert!(
        after[&id].updated_at() > before[&id].updated_at(),
        "UpdatedAt grows"
    );
    let alerts = acct.alerts(HOME, &queue).await?;
    assert_eq!(alerts.len(), 1);
    assert!(kinds(&alerts[0]).contains(&"resolved".to_string()));
    Ok(())
}

#[tokio::test]
async fn deleting_a_trail_archives_its_finding_and_alerts_high() -> Result<()> {
    let (acct, topic, queue) = account_with_hub_and_topic().await?;
    acct.healthy_trail("keeper", HOME, true).await?;
    let doomed = acct.trail(TrailSpec::new("doomed", HOME)).await?;
    acct.publish(&[HOME], Some(&topic), true).await?;
    acct.alerts(HOME, &queue).await?;

    acct.cloudtrail(HOME)
        .delete_trail()
        .name("doomed")
        .send()
        .await?;
    let outcome = acct.publish(&[HOME], Some(&topic), true).await?;
    assert_eq!(outcome.archived, 1);

    let findings = acct.findings(HOME).await?;
    let archived = findings
        .values()
        .find(|f| f.resources().first().and_then(|r| r.id()) == Some(doomed.as_str()))
        .context("the deleted trail's finding")?;
    assert_eq!(
        archived.record_state().map(|s| s.as_str()),
        Some("ARCHIVED")
    );
    let alerts = acct.alerts(HOME, &queue).await?;
    assert_eq!(alerts.len(), 1);
    assert_eq!(kinds(&alerts[0]), vec!["deleted"]);
    assert_eq!(alerts[0]["MessageAttributes"]["severity"]["Value"], "HIGH");
    assert!(alerts[0]["MessageAttributes"]["reason"]["Value"]
        .as_str()
        .unwrap()
        .contains("TRAIL_DELETED"));
    Ok(())
}

#[tokio::test]
async fn a_new_reason_while_failing_sends_one_changed_alert() -> Result<()> {
    let (acct, topic, queue) = account_with_hub_and_topic().await?;
    acct.healthy_trail("cover", HOME, true).await?;
    let trail = acct.healthy_trail("fragile", HOME, false).await?;
    acct.logs(HOME)
        .delete_log_group()
        .log_group_name(&trail.log_group_name)
        .send()
        .await?;
    acct.publish(&[HOME], Some(&topic), true).await?;
    acct.alerts(HOME, &queue).await?;

    acct.cloudtrail(HOME)
        .stop_logging()
        .name(&trail.name)
        .send()
        .await?;
    acct.publish(&[HOME], Some(&topic), true).await?;

    let alerts = acct.alerts(HOME, &queue).await?;
    assert_eq!(alerts.len(), 1);
    assert_eq!(kinds(&alerts[0]), vec!["changed"]);
    let transition = &records(&alerts[0])["transitions"][0];
    assert_eq!(transition["added"], serde_json::json!(["LOGGING_STOPPED"]));
    Ok(())
}

#[tokio::test]
async fn email_and_chat_variants_reach_their_subscribers() -> Result<()> {
    let (acct, topic, _) = account_with_hub_and_topic().await?;
    acct.trail(TrailSpec::new("s3-only", HOME)).await?;
    let outcome = acct.publish(&[HOME], Some(&topic), true).await?;
    let (message, id) = outcome.alert.context("an alert")?;
    assert!(!id.is_empty());
    assert!(
        message
            .email
            .contains("NEW FAILURE · MEDIUM · trail s3-only"),
        "{}",
        message.email
    );
    assert!(
        message.email.contains("Fix: Create a log group"),
        "{}",
        message.email
    );
    assert_eq!(message.chat["source"], "custom");
    assert!(message.subject.len() <= 100);
    Ok(())
}

#[tokio::test]
async fn rejected_findings_are_retried_then_reported_and_not_alerted() -> Result<()> {
    let (acct, topic, queue) = account_with_hub_and_topic().await?;
    acct.trail(TrailSpec::new("s3-only", HOME)).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    let via = acct.via(&proxy.endpoint).await;

    // Rejected once: the retry records it, and nothing is reported.
    proxy.add(
        Rule::new(Fault::RejectFirstFinding)
            .on("BatchImportFindings")
            .times(1),
    );
    let healed = via.publish(&[HOME], Some(&topic), true).await?;
    assert!(healed.failures.is_empty(), "{:#?}", healed.failures);
    assert_eq!(proxy.injected().len(), 1);
    acct.alerts(HOME, &queue).await?;

    // Rejected every time: reported after the retries, and its transition is not alerted.
    acct.cloudtrail(HOME)
        .delete_trail()
        .name("s3-only")
        .send()
        .await?;
    acct.trail(TrailSpec::new("s3-only-2", HOME)).await?;
    proxy.add(Rule::new(Fault::RejectFirstFinding).on("BatchImportFindings"));
    let stuck = via.publish(&[HOME], Some(&topic), true).await?;
    let failure = stuck.failures.first().context("a reported failure")?;
    assert_eq!(failure.kind, FailureKind::SecurityHub);
    assert!(failure.retryable);
    assert!(
        failure
            .message
            .contains("rejected 1 finding(s) after 3 attempts"),
        "{}",
        failure.message
    );
    assert_eq!(proxy.injected().len(), 1 + 3);
    // The finding Security Hub refused, as the failure names it, against what was paged.
    let rejected = stuck
        .transitions
        .iter()
        .chain(healed.transitions.iter())
        .map(|t| t.finding_id.clone())
        .chain(
            acct.findings(HOME)
                .await?
                .keys()
                .cloned()
                .collect::<Vec<_>>(),
        )
        .find(|id| failure.message.contains(&format!("{id} (InternalFailure")))
        .context("the failure names the rejected finding")?;
    let paged: Vec<String> = acct
        .alerts(HOME, &queue)
        .await?
        .iter()
        .flat_map(|e| {
            records(e)["transitions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["finding_id"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    // The old trail's deletion and the new trail's failure changed; Security Hub refused one
    // of the two, and only the other is paged.
    assert_eq!(paged.len(), 1, "{paged:?}");
    assert!(
        !paged.contains(&rejected),
        "{rejected} was paged: {paged:?}"
    );
    Ok(())
}

#[tokio::test]
async fn security_hub_outage_sends_no_alert_for_unrecorded_state() -> Result<()> {
    let (acct, topic, queue) = account_with_hub_and_topic().await?;
    acct.trail(TrailSpec::new("s3-only", HOME)).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::ServerError).on("GetFindings"));
    let outcome = acct
        .via(&proxy.endpoint)
        .await
        .publish(&[HOME], Some(&topic), true)
        .await?;
    assert!(
        outcome.failures.iter().all(|f| f.retryable),
        "{:#?}",
        outcome.failures
    );
    assert!(!outcome.failures.is_empty());
    assert!(outcome.alert.is_none());
    assert!(acct.alerts(HOME, &queue).await?.is_empty());
    assert!(acct.findings(HOME).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn security_hub_not_enabled_is_named_and_alerts_still_go_out() -> Result<()> {
    let acct = Account::fresh().await?;
    let (topic, queue) = acct.topic_with_queue(HOME, "alerts").await?;
    acct.trail(TrailSpec::new("s3-only", HOME)).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::SecurityHubNotEnabled).on("GetFindings"));
    let outcome = acct
        .via(&proxy.endpoint)
        .await
        .publish(&[HOME], Some(&topic), true)
        .await?;
    let failure = outcome.failures.first().context("a failure")?;
    assert_eq!(failure.kind, FailureKind::SecurityHubNotEnabled);
    assert!(!failure.retryable);
    assert!(
        failure
            .message
            .contains("Security Hub is not enabled in us-east-1"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("TRAILWATCH_SECURITY_HUB=false"));
    assert_eq!(acct.alerts(HOME, &queue).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn without_security_hub_every_failure_is_alerted_each_run() -> Result<()> {
    let acct = Account::fresh().await?;
    let (topic, queue) = acct.topic_with_queue(HOME, "alerts").await?;
    acct.trail(TrailSpec::new("s3-only", HOME)).await?;
    acct.publish(&[HOME], Some(&topic), false).await?;
    acct.publish(&[HOME], Some(&topic), false).await?;
    assert_eq!(acct.alerts(HOME, &queue).await?.len(), 2);
    assert!(acct.findings(HOME).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn imports_go_out_in_batches_of_at_most_100() -> Result<()> {
    let acct = Account::fresh().await?;
    acct.enable_security_hub(HOME).await?;
    for i in 0..120 {
        acct.trail(TrailSpec::new(&format!("bulk-{i:03}"), HOME))
            .await?;
    }
    let proxy = FaultProxy::start(&endpoint()?).await?;
    let outcome = acct
        .via(&proxy.endpoint)
        .await
        .publish(&[HOME], None, true)
        .await?;
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert_eq!(outcome.imported, 121, "120 trails and the account");
    let batches = proxy
        .seen()
        .iter()
        .filter(|(_, operation)| operation == "BatchImportFindings")
        .count();
    assert_eq!(batches, 2, "121 findings need two batches of at most 100");
    assert_eq!(acct.findings(HOME).await?.len(), 121);
    Ok(())
}

#[tokio::test]
async fn cli_publish_records_sends_and_reports_on_stderr() -> Result<()> {
    let (acct, topic, queue) = account_with_hub_and_topic().await?;
    acct.trail(TrailSpec::new("s3-only", HOME)).await?;
    let mut command = Command::new(trailwatch_binary());
    command.args([
        "scan",
        "--regions",
        HOME,
        "--publish",
        "--sns-topic-arn",
        &topic,
        "--output",
        "json",
    ]);
    for (key, value) in acct.env() {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(report["summary"]["fail"], 2);
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("Security Hub: 2 imported, 0 archived, 0 unchanged"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Alert sent: trailwatch: 2 new failures in"),
        "{stderr}"
    );
    assert_eq!(acct.alerts(HOME, &queue).await?.len(), 1);
    assert_eq!(acct.findings(HOME).await?.len(), 2);
    Ok(())
}

/// botocore's own validator of the `BatchImportFindings` input, from the project virtualenv.
fn botocore_validate(findings_json: &[u8]) -> Result<()> {
    let script = r#"
import json, sys
import botocore.session
from botocore.validate import ParamValidator
model = botocore.session.get_session().get_service_model("securityhub")
shape = model.operation_model("BatchImportFindings").input_shape
report = ParamValidator().validate(json.load(sys.stdin), shape)
if report.has_errors():
    print(report.generate_report())
    sys.exit(1)
print("valid")
"#;
    let mut child = Command::new(venv_dir().join("bin/python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("python from the project virtualenv")?;
    use std::io::Write;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(findings_json)?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "botocore rejects the findings: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(())
}

#[tokio::test]
async fn every_kind_of_finding_passes_botocore_validation() -> Result<()> {
    let acct = Account::fresh().await?;
    acct.healthy_trail("good", HOME, true).await?;
    acct.trail(TrailSpec::new("s3-only", "eu-west-1")).await?;
    // A denied region adds a region finding; the CLI goes through the proxy like any endpoint.
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::AccessDenied).in_region("ap-south-2"));
    let mut command = Command::new(trailwatch_binary());
    command
        .args([
            "scan",
            "--regions",
            "us-east-1,eu-west-1,ap-south-2",
            "--output",
            "asff",
        ])
        .env("AWS_ENDPOINT_URL", &proxy.endpoint);
    for (key, value) in acct.env() {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let findings: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| String::from_utf8_lossy(&output.stderr).to_string())?;
    let types: Vec<&str> = findings["Findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["Compliance"]["Status"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"PASSED") && types.contains(&"FAILED") && types.contains(&"NOT_AVAILABLE"),
        "{types:?}"
    );
    botocore_validate(&output.stdout)
}
