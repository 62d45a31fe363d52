//! Living with a finding, on moto: trails a person exempted with the `trailwatch:exempt` tag,
//! exemptions that lapse or cannot be read, and findings a person suppressed in Security Hub.
//!
//! moto does not implement `BatchUpdateFindings`, which suppresses an existing finding; these
//! tests create exempt trails before their first scan (the finding is born suppressed) and
//! suppress findings the way moto can, by importing them with a person's workflow and note.
//! The update itself is decided in the core's reconcile tests, and sent in
//! `exempting_a_trail_whose_finding_exists_suppresses_it_with_batch_update_findings`, where
//! the fault proxy stands in for Security Hub's answer.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::process::{Command, Output};
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{endpoint, workflow_status, Account, Deployment, TrailSpec, TRAIL};

const HOME: &str = "us-east-1";
const EXEMPT_TAG: &str = "trailwatch:exempt";

async fn tag(account: &Account, trail_arn: &str, value: &str) -> Result<()> {
    account.tag_trail(HOME, trail_arn, EXEMPT_TAG, value).await
}

fn scan_json(account: &Account, extra: &[&str]) -> Result<(Output, Value)> {
    scan_json_with(account.trailwatch(), extra)
}

/// `trailwatch scan` as `command` is set up (an endpoint through the fault proxy, say).
fn scan_json_with(mut command: Command, extra: &[&str]) -> Result<(Output, Value)> {
    command
        .args(["scan", "--regions", HOME, "--output", "json"])
        .args(extra);
    let output = command.output()?;
    let report = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "stdout is not JSON; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok((output, report))
}

fn evaluation<'a>(report: &'a Value, trail_arn: &str) -> &'a Value {
    report["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource_id"] == trail_arn)
        .unwrap_or_else(|| panic!("no evaluation of {trail_arn} in {report:#}"))
}

fn codes(evaluation: &Value) -> Vec<String> {
    evaluation["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

/// Every trail ARN the pages since the last look were about.
async fn paged_trails(deployment: &Deployment) -> Result<Vec<String>> {
    Ok(deployment
        .pages()
        .await?
        .iter()
        .flat_map(|page| page["transitions"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["evaluation"]["resource_id"].as_str().map(str::to_string))
        .filter(|id| id.contains(":trail/"))
        .collect())
}

#[tokio::test]
async fn an_exempt_s3_only_trail_is_reported_exempt_exits_0_and_pages_nobody() -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let account = &deployment.account;
    let data = account.trail(TrailSpec::new("data-events", HOME)).await?;
    tag(account, &data, "data events only until=2099-12-31").await?;

    let (output, report) = scan_json(account, &[])?;
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    let exempt = evaluation(&report, &data);
    assert_eq!(
        exempt["status"], "FAIL",
        "the checks still decide the status"
    );
    assert_eq!(codes(exempt), vec!["CWL_NOT_CONFIGURED"]);
    assert_eq!(
        exempt["exemption"],
        serde_json::json!({"reason": "data events only", "until": "2099-12-31"})
    );

    let services = deployment.services(account, "scheduled scan")?;
    let outcome = services.run().await?;
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert!(
        paged_trails(&deployment).await?.is_empty(),
        "an exempt trail pages nobody"
    );
    let finding = account.trail_finding(HOME, "data-events").await?;
    assert_eq!(workflow_status(&finding), Some("SUPPRESSED"));
    let note = finding.note().context("the exemption's note")?;
    assert_eq!(note.updated_by(), Some("trailwatch"));
    assert!(
        note.text().unwrap_or_default().contains("data events only"),
        "{note:?}"
    );
    Ok(())
}

// Two workers: the proxy keeps answering while this thread waits on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exempt_trail_that_could_not_be_read_in_full_still_exits_3() -> Result<()> {
    let account = Account::fresh().await?;
    // A streaming trail covers the account, so the exempt trail's verdict alone decides.
    account.healthy_trail("audit", HOME, true).await?;
    let data = account.trail(TrailSpec::new("data-events", HOME)).await?;
    tag(&account, &data, "data events only until=2099-12-31").await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(
        Rule::new(Fault::AccessDenied)
            .on("GetEventSelectors")
            .mentioning("data-events"),
    );

    let mut command = account.trailwatch();
    command.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    let (output, report) = scan_json_with(command, &[])?;
    let exempt = evaluation(&report, &data);
    // FAIL outranks ERROR in the status, and the FAIL is exempt; the unread selectors are not.
    assert_eq!(exempt["status"], "FAIL", "{exempt:#}");
    assert!(exempt["exemption"].is_object(), "{exempt:#}");
    assert!(
        exempt["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["level"] == "ERROR"),
        "{exempt:#}"
    );
    // Nothing else could not be read, or the exit code would be 3 without the exempt trail.
    for other in report["evaluations"].as_array().unwrap() {
        if other["resource_id"] == data.as_str() {
            continue;
        }
        let incomplete = other["status"] == "ERROR"
            || other["reasons"]
                .as_array()
                .is_some_and(|reasons| reasons.iter().any(|r| r["level"] == "ERROR"));
        assert!(!incomplete, "{other:#}");
    }
    assert_eq!(output.status.code(), Some(3), "{report:#}");
    Ok(())
}

#[tokio::test]
async fn an_expired_exemption_fails_and_pages_saying_it_expired() -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let account = &deployment.account;
    let data = account.trail(TrailSpec::new("data-events", HOME)).await?;
    tag(account, &data, "migration until=2020-01-31").await?;

    let (output, report) = scan_json(account, &[])?;
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let lapsed = evaluation(&report, &data);
    assert_eq!(lapsed["status"], "FAIL");
    assert_eq!(lapsed["exemption"]["expired"], true);
    assert!(
        codes(lapsed).contains(&"EXEMPTION_EXPIRED".to_string()),
        "{lapsed:#}"
    );

    let services = deployment.services(account, "scheduled scan")?;
    services.run().await?;
    let pages = deployment.pages().await?;
    let text = serde_json::to_string(&pages)?;
    assert!(text.contains(&data), "{text}");
    assert!(text.contains("EXEMPTION_EXPIRED"), "{text}");
    assert!(text.contains("2020-01-31"), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_malformed_exemption_warns_naming_the_tag_and_exempts_nothing() -> Result<()> {
    let account = Account::fresh().await?;
    let audit = account.healthy_trail("audit", HOME, true).await?;
    let data = account.trail(TrailSpec::new("data-events", HOME)).await?;
    tag(&account, &audit.arn, "until=2026-13-45").await?;
    tag(&account, &data, "cost until=next year").await?;

    let (output, report) = scan_json(&account, &["--fail-on", "warning"])?;
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let warned = evaluation(&report, &audit.arn);
    assert_eq!(warned["status"], "WARNING", "{warned:#}");
    assert!(warned.get("exemption").is_none(), "{warned:#}");
    let message = warned["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "EXEMPTION_INVALID")
        .context("an EXEMPTION_INVALID reason")?["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains(EXEMPT_TAG), "{message}");
    assert!(message.contains("until=2026-13-45"), "{message}");
    // A failing trail with a bad tag still fails, and fails the exit code.
    let failing = evaluation(&report, &data);
    assert_eq!(failing["status"], "FAIL");
    assert!(codes(failing).contains(&"EXEMPTION_INVALID".to_string()));
    Ok(())
}

/// A person suppresses the finding in Security Hub: imported with their workflow and note, as
/// moto can express it (moto has no `BatchUpdateFindings`).
async fn suppress_as_a_person(account: &Account, name: &str) -> Result<()> {
    use aws_sdk_securityhub::types::{Note, Workflow, WorkflowStatus};
    let mut finding = account.trail_finding(HOME, name).await?;
    finding.workflow = Some(
        Workflow::builder()
            .status(WorkflowStatus::Suppressed)
            .build(),
    );
    finding.note = Some(
        Note::builder()
            .text("Accepted: decommissioned in Q1, ticket SEC-42")
            .updated_by("arn:aws:sts::000000000000:assumed-role/SecOps/alice")
            .updated_at("2026-12-01T09:00:00.000Z")
            .build(),
    );
    account
        .security_hub(HOME)
        .batch_import_findings()
        .findings(finding)
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_finding_a_person_suppressed_is_not_paged_again_until_a_new_reason() -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let account = &deployment.account;
    let services = deployment.services(account, "scheduled scan")?;
    let audit = format!("arn:aws:cloudtrail:{HOME}:{}:trail/{TRAIL}", account.id);
    // Retention comes off the trail's log group: a warning, paged once.
    let logs = account.logs(HOME);
    logs.delete_retention_policy()
        .log_group_name(format!("cloudtrail/{TRAIL}"))
        .send()
        .await?;
    services.run().await?;
    assert_eq!(paged_trails(&deployment).await?, vec![audit.clone()]);
    suppress_as_a_person(account, TRAIL).await?;

    // Fixed again: without the suppression this pages as resolved; the person decided about
    // this finding already, so it is recorded quietly.
    logs.put_retention_policy()
        .log_group_name(format!("cloudtrail/{TRAIL}"))
        .retention_in_days(365)
        .send()
        .await?;
    let outcome = services.run().await?;
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert!(
        paged_trails(&deployment).await?.is_empty(),
        "suppressed, no new reason"
    );
    let finding = account.trail_finding(HOME, TRAIL).await?;
    assert_eq!(
        workflow_status(&finding),
        Some("SUPPRESSED"),
        "never un-suppressed"
    );

    // Stopping the trail is a reason the person never saw: it pages.
    account
        .cloudtrail(HOME)
        .stop_logging()
        .name(TRAIL)
        .send()
        .await?;
    services.run().await?;
    let pages = deployment.pages().await?;
    let text = serde_json::to_string(&pages)?;
    assert!(text.contains(&audit), "{text}");
    assert!(text.contains("LOGGING_STOPPED"), "{text}");
    Ok(())
}

/// A trail exempted after its finding exists: `BatchImportFindings` may not change a
/// finding's workflow or note once it is created ("After a finding is created,
/// BatchImportFindings cannot be used to update ... Note ... Workflow", API reference,
/// BatchImportFindings), so trailwatch suppresses it with `BatchUpdateFindings`. moto does not
/// implement that operation; the fault proxy answers it with the response the API reference
/// documents (`ProcessedFindings`, and `UnprocessedFindings` of `FindingIdentifier`,
/// `ErrorCode`, `ErrorMessage`, API reference, BatchUpdateFindingsUnprocessedFinding), and the
/// test reads what trailwatch asked for. A finding Security Hub would not update is reported,
/// not taken as done; neither run pages.
#[tokio::test]
async fn exempting_a_trail_whose_finding_exists_suppresses_it_with_batch_update_findings(
) -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let account = &deployment.account;
    let data = account.trail(TrailSpec::new("data-events", HOME)).await?;
    let first = deployment
        .services(account, "scheduled scan")?
        .run()
        .await?;
    assert!(first.failures.is_empty(), "{:#?}", first.failures);
    assert_eq!(paged_trails(&deployment).await?, vec![data.clone()]);
    let finding = account.trail_finding(HOME, "data-events").await?;
    let identifier = json!({
        "Id": finding.id().context("the finding's id")?,
        "ProductArn": finding.product_arn().context("the finding's product")?,
    });
    tag(account, &data, "data events only; until=2099-12-31").await?;

    let proxy = FaultProxy::start(&endpoint()?).await?;
    let via = account.via(&proxy.endpoint).await;
    // Security Hub could not update it this time.
    proxy.add(
        Rule::new(Fault::Answer(
            json!({
                "ProcessedFindings": [],
                "UnprocessedFindings": [{
                    "FindingIdentifier": identifier,
                    "ErrorCode": "ConcurrentUpdateError",
                    "ErrorMessage": "Concurrent finding updates detected",
                }],
            })
            .to_string(),
        ))
        .on("BatchUpdateFindings")
        .times(1),
    );
    let refused = deployment.services(&via, "scheduled scan")?.run().await?;
    let failure = refused
        .failures
        .iter()
        .find(|f| f.message.contains("did not update the workflow"))
        .with_context(|| format!("the refused update is reported: {:#?}", refused.failures))?;
    assert!(
        failure.message.contains("ConcurrentUpdateError"),
        "{}",
        failure.message
    );

    // And now it could.
    proxy.add(
        Rule::new(Fault::Answer(
            json!({"ProcessedFindings": [identifier], "UnprocessedFindings": []}).to_string(),
        ))
        .on("BatchUpdateFindings"),
    );
    let suppressed = deployment.services(&via, "scheduled scan")?.run().await?;
    assert!(suppressed.failures.is_empty(), "{:#?}", suppressed.failures);
    assert!(
        paged_trails(&deployment).await?.is_empty(),
        "exempting a trail pages nobody"
    );
    let updates = proxy.stood_in_for("BatchUpdateFindings");
    assert_eq!(updates.len(), 2, "{updates:#?}");
    for update in &updates {
        assert_eq!(
            update["FindingIdentifiers"],
            json!([identifier]),
            "{update:#}"
        );
        assert_eq!(update["Workflow"]["Status"], "SUPPRESSED", "{update:#}");
        assert_eq!(update["Note"]["UpdatedBy"], "trailwatch", "{update:#}");
        let note = update["Note"]["Text"].as_str().unwrap_or_default();
        assert!(
            note.contains("data events only") && note.contains("2099-12-31"),
            "{note}"
        );
    }
    Ok(())
}
