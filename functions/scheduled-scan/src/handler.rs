//! The hourly scan: each invocation runs the whole flow (scan every configured region,
//! reconcile with Security Hub, import what changed, send one digest) and returns a summary.
//! In organisation mode it does so for every account of the organisation, or, past the
//! fan-out's threshold, hands the accounts to the account worker and summarises its reports.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use trailwatch_aws::fanout::DEADLINE_MARGIN;
use trailwatch_aws::organization::{self, AccountRun, OrgSummary};
use trailwatch_aws::publication::RunSummary;
use trailwatch_aws::services::OrgScan;
use trailwatch_aws::Services;
use trailwatch_core::metrics::{emf_organization_line, OrgMetrics};
use trailwatch_lambda::{answer_by, finish, HandlerError};

pub const FUNCTION: &str = "scheduled-scan";

/// What one invocation did: one account's run, or, in organisation mode, every account's.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ScanResponse {
    Account(RunSummary),
    Organization(OrgSummary),
}

/// What started the scan: the schedule's EventBridge event (`Scheduled Event`, with an id
/// that names a fanned-out run), or anything else, such as an operator's `{}`.
fn trigger(payload: &Value) -> (String, Option<String>) {
    match serde_json::from_value::<EventBridgeEvent>(payload.clone()) {
        Ok(event) => (event.detail_type, event.id),
        Err(_) => ("manual".to_string(), None),
    }
}

pub async fn handle(
    services: &Services,
    event: LambdaEvent<Value>,
) -> Result<ScanResponse, HandlerError> {
    let started = Instant::now();
    let (detail_type, event_id) = trigger(&event.payload);
    info!(request_id = %event.context.request_id, trigger = %detail_type, "scan starting");
    // A retry of the same schedule event continues the same fanned-out run.
    let run_id = event_id.unwrap_or_else(|| event.context.request_id.clone());
    // Without a real deadline (an emulator's placeholder) the fan-out's window alone bounds
    // the wait.
    let deadline = answer_by(event.context.deadline, DEADLINE_MARGIN)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
    if let Some(result) = services.scan_organization(&run_id, deadline).await {
        // Not listing the organisation (permissions, an outage) may pass: worth a retry.
        return match result.map_err(|e| HandlerError::retryable(e.to_string()))? {
            OrgScan::InProcess(runs) => {
                finish_organization(&runs, started).map(ScanResponse::Organization)
            }
            OrgScan::FannedOut(summary) => Ok(ScanResponse::Organization(finish_fan_out(
                *summary, started,
            ))),
        };
    }
    // Not knowing the account at all (credentials, an STS outage) may pass: worth a retry.
    let outcome = services
        .run()
        .await
        .map_err(|e| HandlerError::retryable(e.to_string()))?;
    finish(FUNCTION, &outcome)?;
    Ok(ScanResponse::Account(outcome.summary()))
}

/// The organisation's metrics line, from its summary: accounts not scanned for any reason
/// (refused, dead-lettered, missing) count as unreachable, which the template's alarm watches.
fn print_organization_metrics(summary: &OrgSummary, elapsed_ms: u64) {
    let metrics = OrgMetrics {
        accounts: summary.accounts as u64,
        accounts_scanned: summary.scanned as u64,
        accounts_unreachable: summary.not_scanned() as u64,
        duration_ms: elapsed_ms,
    };
    println!(
        "{}",
        emf_organization_line(FUNCTION, chrono::Utc::now(), &metrics)
    );
}

/// A fanned-out run's answer. The workers printed each account's metrics and published its
/// findings and page; what is left is the organisation's line and naming who was not scanned.
/// Dead-lettered and missing accounts do not fail the scan: a retry would hand out the whole
/// organisation again, and the dead-letter queue's alarm and this summary already say it.
fn finish_fan_out(summary: OrgSummary, started: Instant) -> OrgSummary {
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    print_organization_metrics(&summary, elapsed);
    if let Some(fan_out) = &summary.fan_out {
        for account in fan_out.dead_lettered.iter().chain(&fan_out.missing) {
            warn!(account = %account.account_id, reason = %account.reason, run_id = %fan_out.run_id, "account not scanned");
        }
        info!(
            run_id = %fan_out.run_id,
            accounts = summary.accounts,
            scanned = summary.scanned,
            unreachable = summary.unreachable.len(),
            dead_lettered = fan_out.dead_lettered.len(),
            missing = fan_out.missing.len(),
            complete = fan_out.complete,
            "organisation fan-out finished"
        );
    }
    summary
}

/// Each account's metrics line and failures, the organisation's line (`AccountsUnreachable`
/// feeds the template's alarm), then one answer: retryable when an outage kept
/// any account's findings or alerts from going out (the retry repeats nothing, see the
/// ledger). An account that could not be reached at all is in the summary and the log; a
/// retry would not fix its role.
fn finish_organization(runs: &[AccountRun], started: Instant) -> Result<OrgSummary, HandlerError> {
    let mut retryable = Vec::new();
    for run in runs {
        match run {
            AccountRun::Scanned { account, outcome } => {
                if let Err(failure) = finish(FUNCTION, outcome) {
                    retryable.push(format!("{}: {failure}", account.id));
                }
            }
            AccountRun::Unreachable {
                account,
                evaluation,
                ..
            } => {
                let reason = evaluation.reasons.first().map(|r| r.message.as_str());
                error!(account = %account.id, reason = reason.unwrap_or("-"), "account not evaluated");
            }
        }
    }
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let summary = organization::summarize(runs, elapsed);
    print_organization_metrics(&summary, elapsed);
    info!(
        accounts = summary.accounts,
        scanned = summary.scanned,
        unreachable = summary.unreachable.len(),
        "organisation scan finished"
    );
    match retryable.is_empty() {
        true => Ok(summary),
        false => Err(HandlerError::retryable(retryable.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    //! Against moto: these run inside `make test`, which provides the emulator.

    use super::*;
    use lambda_runtime::Context;
    use trailwatch_aws::{Config, RegionSelection};
    use trailwatch_tests::{Account, TrailSpec};

    const SCHEDULED: &[u8] = include_bytes!("../../../tests/fixtures/events/scheduled_event.json");

    #[test]
    fn the_schedule_event_names_the_run_and_anything_else_is_manual() {
        let scheduled: Value = serde_json::from_slice(SCHEDULED).unwrap();
        assert_eq!(
            trigger(&scheduled),
            (
                "Scheduled Event".to_string(),
                Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".to_string())
            )
        );
        assert_eq!(
            trigger(&serde_json::json!({})),
            ("manual".to_string(), None)
        );
        // An EventBridge event without an id still names its trigger; the request id names
        // the run then.
        let mut without_id = scheduled.clone();
        without_id.as_object_mut().unwrap().remove("id");
        assert_eq!(trigger(&without_id).1, None);
    }

    fn config(topic: Option<String>) -> Config {
        let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
        config.regions = RegionSelection::List(vec!["us-east-1".into()]);
        config.sns_topic_arn = topic;
        config
    }

    #[tokio::test]
    async fn scheduled_event_runs_the_flow_and_alerts_once() -> anyhow::Result<()> {
        let account = Account::fresh().await?;
        account.enable_security_hub("us-east-1").await?;
        let (topic, queue) = account.topic_with_queue("us-east-1", "alerts").await?;
        account
            .trail(TrailSpec::new("s3-only", "us-east-1"))
            .await?;
        let services = Services::new(&account.sdk, &config(Some(topic)), "scheduled scan")?;

        let event = LambdaEvent::new(serde_json::from_slice(SCHEDULED)?, Context::default());
        let ScanResponse::Account(summary) = handle(&services, event)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
        else {
            anyhow::bail!("one account configured, yet an organisation answer");
        };
        assert_eq!(summary.account_id, account.id);
        assert_eq!(summary.summary.fail, 2);
        assert_eq!(summary.imported, 2);
        assert!(summary.alert_sent);
        assert_eq!(account.alerts("us-east-1", &queue).await?.len(), 1);

        let again = LambdaEvent::new(serde_json::json!({}), Context::default());
        let ScanResponse::Account(quiet) = handle(&services, again)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
        else {
            anyhow::bail!("one account configured, yet an organisation answer");
        };
        assert!(!quiet.alert_sent, "nothing changed, nothing sent");
        Ok(())
    }

    #[tokio::test]
    async fn organisation_mode_scans_every_account_but_the_excluded() -> anyhow::Result<()> {
        let management = Account::fresh().await?;
        let members = management.create_organization(&["one", "two"]).await?;
        for member in &members {
            member.trail(TrailSpec::new("s3-only", "us-east-1")).await?;
        }
        let mut config = config(None);
        config.security_hub = false;
        config.org = Some(trailwatch_aws::organization::OrgConfig {
            role_name: "trailwatch-read".into(),
            external_id: None,
            include: vec![],
            // Excluded accounts are not read at all.
            exclude: vec![members[1].id.clone()],
            concurrency: 2,
            fan_out: None,
        });
        let services = Services::new(&management.sdk, &config, "scheduled scan")?;
        let event = LambdaEvent::new(serde_json::from_slice(SCHEDULED)?, Context::default());
        let ScanResponse::Organization(summary) = handle(&services, event)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?
        else {
            anyhow::bail!("organisation mode, yet a one-account answer");
        };
        assert_eq!(summary.accounts, 2, "{summary:?}");
        assert_eq!(summary.scanned, 2);
        assert!(summary.unreachable.is_empty());
        let mut scanned: Vec<&str> = summary.runs.iter().map(|r| r.account_id.as_str()).collect();
        scanned.sort();
        let mut expected = vec![management.id.as_str(), members[0].id.as_str()];
        expected.sort();
        assert_eq!(scanned, expected);
        Ok(())
    }
}
