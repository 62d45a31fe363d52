//! The re-check after a change: parse the CloudTrail event leniently, re-evaluate what it
//! touched (a trail, or every trail using a log group or role) and the account's coverage,
//! then reconcile and publish like the hourly scan, with an alert that names who did it.
//!
//! Outcomes, each logged with the event's `id`:
//! - a malformed or foreign event, or one from another account: `NonRetryable` error, nothing
//!   published (the same event would fail the same way);
//! - a call trailwatch does not watch, a failed call, a trail or log group nobody uses: a
//!   logged skip, nothing published;
//! - an AWS fault (throttling, 5xx, a Security Hub outage): `Retryable` error, so Lambda
//!   retries and the dead-letter queue catches what never succeeds. The alert ledger keeps a
//!   retry from doubling an alert, or from losing one that SNS refused.
//!
//! In organisation mode, an event from a member account is re-checked through that account's
//! read role.

use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use std::time::Instant;
use tracing::{error, info};
use trailwatch_aws::flow::Recheck;
use trailwatch_aws::publication::RunSummary;
use trailwatch_aws::{Inventory, Services};
use trailwatch_core::event;
use trailwatch_lambda::{finish, HandlerError};

pub const FUNCTION: &str = "trail-change";

/// What the function returns for an event it handled.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeResponse {
    pub event_id: Option<String>,
    /// `published` or `skipped`.
    pub outcome: &'static str,
    /// Why nothing was published, for a skip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSummary>,
    /// AWS API operations this invocation made in the deployment's account: for a skip, the
    /// reads that decided the event concerns no trail.
    pub api_calls: u64,
    /// From the handler's start to its answer: for a published re-check, the time from the
    /// event's arrival to the alert being accepted by SNS.
    pub handler_ms: u64,
}

fn skipped(event_id: Option<String>, reason: String, started: Started) -> ChangeResponse {
    info!(event_id = event_id.as_deref().unwrap_or("-"), %reason, "skipped");
    ChangeResponse {
        event_id,
        outcome: "skipped",
        reason: Some(reason),
        run: None,
        api_calls: started.api_calls(),
        handler_ms: started.elapsed_ms(),
    }
}

/// When the invocation started, on the clock and on the API-call counter.
struct Started<'a> {
    clock: Instant,
    services: &'a Services,
    calls_before: u64,
}

impl<'a> Started<'a> {
    fn now(services: &'a Services) -> Self {
        Started {
            clock: Instant::now(),
            services,
            calls_before: services.inventory.api_calls(),
        }
    }

    fn api_calls(&self) -> u64 {
        self.services.inventory.api_calls() - self.calls_before
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

pub async fn handle(
    services: &Services,
    event: LambdaEvent<Value>,
) -> Result<ChangeResponse, HandlerError> {
    let started = Started::now(services);
    let bytes = serde_json::to_vec(&event.payload).unwrap_or_default();
    let event_id = event::event_id(&bytes);
    let id = event_id.clone().unwrap_or_else(|| "-".into());
    let change = match event::parse(&bytes) {
        Ok(change) => change,
        Err(problem) if problem.needs_no_work() => {
            return Ok(skipped(event_id, problem.to_string(), started))
        }
        Err(problem) => {
            error!(event_id = %id, request_id = %event.context.request_id, error = %problem, "rejected");
            return Err(HandlerError::non_retryable(format!(
                "event {id}: {problem}"
            )));
        }
    };
    info!(
        event_id = %id,
        event_name = %change.actor.event_name,
        actor = change.actor.arn.as_deref().unwrap_or("unknown"),
        region = %change.region,
        "re-checking"
    );
    match services.recheck_in_organization(&change).await {
        Ok(Recheck::Skipped { reason }) => Ok(skipped(event_id, reason, started)),
        Ok(Recheck::Published(outcome)) => {
            finish(FUNCTION, &outcome)?;
            Ok(ChangeResponse {
                event_id,
                outcome: "published",
                reason: None,
                run: Some(outcome.summary()),
                api_calls: started.api_calls(),
                handler_ms: started.elapsed_ms(),
            })
        }
        Err(problem) => {
            error!(event_id = %id, retryable = problem.is_retryable(), error = %problem, "re-check failed");
            Err(HandlerError {
                retryable: problem.is_retryable(),
                message: format!("event {id}: {problem}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against moto: these run inside `make test`, which provides the emulator. The events are
    //! the end-to-end fixtures, moved into each test's own account.

    use super::*;
    use lambda_runtime::Context;
    use trailwatch_aws::{Config, RegionSelection};
    use trailwatch_core::finding::RECORD_ARCHIVED;
    use trailwatch_tests::{fixture_event, Account};

    const REGION: &str = "us-east-1";

    fn services(account: &Account, topic: Option<String>, security_hub: bool) -> Services {
        let mut config = Config::from_lookup(|_| None).expect("defaults are valid");
        config.regions = RegionSelection::List(vec![REGION.into()]);
        config.sns_topic_arn = topic;
        config.security_hub = security_hub;
        Services::new(&account.sdk, &config, FUNCTION).expect("valid topic")
    }

    async fn invoke(services: &Services, event: Value) -> Result<ChangeResponse, HandlerError> {
        handle(services, LambdaEvent::new(event, Context::default())).await
    }

    /// A monitored account with one healthy trail `audit`, findings recorded and a quiet inbox.
    async fn monitored() -> anyhow::Result<(Account, Services, String)> {
        let account = Account::fresh().await?;
        account.enable_security_hub(REGION).await?;
        let (topic, queue) = account.topic_with_queue(REGION, "alerts").await?;
        account.healthy_trail("audit", REGION, true).await?;
        let services = services(&account, Some(topic), true);
        services.run().await?;
        account.alerts(REGION, &queue).await?;
        Ok((account, services, queue))
    }

    #[tokio::test]
    async fn stop_logging_alerts_with_the_actor_and_records_the_failure() -> anyhow::Result<()> {
        let (account, services, queue) = monitored().await?;
        account
            .cloudtrail(REGION)
            .stop_logging()
            .name("audit")
            .send()
            .await?;

        let response = invoke(&services, fixture_event("stop_logging.json", &account.id)?)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert_eq!(response.outcome, "published");
        let run = response.run.expect("a published run has a summary");
        // The only trail stopped: it fails, and so does the account's coverage.
        assert_eq!(run.transitions, 2, "{run:?}");
        assert_eq!(run.summary.fail, 2, "{run:?}");

        let alerts = account.alerts(REGION, &queue).await?;
        assert_eq!(alerts.len(), 1);
        let records: Value = serde_json::from_str(alerts[0]["Message"].as_str().unwrap())?;
        assert_eq!(records["cause"]["actor"]["event_name"], "StopLogging");
        assert_eq!(
            records["cause"]["actor"]["source_ip_address"],
            "198.51.100.23"
        );
        assert_eq!(records["transitions"][0]["kind"], "new_failure");
        assert_eq!(records["transitions"][1]["kind"], "new_failure");
        assert!(alerts[0]["Subject"]
            .as_str()
            .unwrap()
            .ends_with("after StopLogging"));
        let trail = account.trail_finding(REGION, "audit").await?;
        assert_eq!(
            trail
                .compliance()
                .and_then(|c| c.status())
                .map(|s| s.as_str()),
            Some("FAILED")
        );

        let again = invoke(&services, fixture_event("stop_logging.json", &account.id)?)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert_eq!(again.run.map(|r| r.transitions), Some(0));
        assert!(
            account.alerts(REGION, &queue).await?.is_empty(),
            "the same event delivered twice alerts once"
        );
        Ok(())
    }

    #[tokio::test]
    async fn delete_trail_archives_and_alerts_high_once() -> anyhow::Result<()> {
        let (account, services, queue) = monitored().await?;
        account
            .cloudtrail(REGION)
            .delete_trail()
            .name("audit")
            .send()
            .await?;

        invoke(&services, fixture_event("delete_trail.json", &account.id)?)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let alerts = account.alerts(REGION, &queue).await?;
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["MessageAttributes"]["severity"]["Value"], "HIGH");
        let records: Value = serde_json::from_str(alerts[0]["Message"].as_str().unwrap())?;
        let kinds: Vec<&str> = records["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["kind"].as_str())
            .collect();
        assert!(kinds.contains(&"deleted"), "{kinds:?}");
        assert!(
            kinds.contains(&"new_failure"),
            "coverage is lost too: {kinds:?}"
        );
        let trail = account.trail_finding(REGION, "audit").await?;
        assert_eq!(
            trail.record_state().map(|s| s.as_str()),
            Some(RECORD_ARCHIVED)
        );

        invoke(&services, fixture_event("delete_trail.json", &account.id)?)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert!(account.alerts(REGION, &queue).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn without_security_hub_a_deletion_is_still_alerted() -> anyhow::Result<()> {
        let account = Account::fresh().await?;
        let (topic, queue) = account.topic_with_queue(REGION, "alerts").await?;
        let services = services(&account, Some(topic), false);
        invoke(&services, fixture_event("delete_trail.json", &account.id)?)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let alerts = account.alerts(REGION, &queue).await?;
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0]["Message"]
            .as_str()
            .unwrap()
            .contains("\"deleted\""));
        Ok(())
    }

    #[tokio::test]
    async fn bad_and_pointless_events_publish_nothing() -> anyhow::Result<()> {
        let (account, services, queue) = monitored().await?;

        let malformed = invoke(&services, fixture_event("malformed.json", &account.id)?)
            .await
            .expect_err("a malformed event is an error");
        assert!(!malformed.retryable);
        assert!(
            malformed
                .message
                .starts_with("event 5b0e2c61-1f7e-4f0c-8a3e-0d1c2b3a4f99: event is malformed"),
            "{}",
            malformed.message
        );

        let foreign = invoke(
            &services,
            fixture_event("stop_logging.json", "210987654321")?,
        )
        .await
        .expect_err("another account's event is an error");
        assert!(!foreign.retryable);
        assert!(
            foreign.message.contains("210987654321"),
            "{}",
            foreign.message
        );

        let mut unknown = fixture_event("stop_logging.json", &account.id)?;
        unknown["detail"]["requestParameters"]["name"] = "no-such-trail".into();
        let skip = invoke(&services, unknown)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert_eq!(skip.outcome, "skipped");
        assert!(skip.reason.unwrap().contains("no-such-trail"));

        let mut failed = fixture_event("stop_logging.json", &account.id)?;
        failed["detail"]["errorCode"] = "AccessDenied".into();
        let skip = invoke(&services, failed)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert_eq!(skip.outcome, "skipped");

        assert!(account.alerts(REGION, &queue).await?.is_empty());
        Ok(())
    }
}
