//! The hourly scan: each invocation runs the whole flow (scan every configured region,
//! reconcile with Security Hub, import what changed, send one digest) and returns a summary.

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tracing::info;
use trailwatch_aws::flow::{RunSummary, Services};
use trailwatch_lambda::{finish, HandlerError};

pub const FUNCTION: &str = "scheduled-scan";

/// Any event starts a scan: the schedule sends `Scheduled Event`, and an operator may invoke
/// the function by hand with `{}`.
pub async fn handle(
    services: &Services,
    event: LambdaEvent<Value>,
) -> Result<RunSummary, HandlerError> {
    let detail_type = event
        .payload
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or("manual");
    info!(request_id = %event.context.request_id, trigger = detail_type, "scan starting");
    // Not knowing the account at all (credentials, an STS outage) may pass: worth a retry.
    let outcome = services
        .run()
        .await
        .map_err(|e| HandlerError::retryable(e.to_string()))?;
    finish(FUNCTION, &outcome)?;
    Ok(outcome.summary())
}

#[cfg(test)]
mod tests {
    //! Against moto: these run inside `make test`, which provides the emulator.

    use super::*;
    use lambda_runtime::Context;
    use trailwatch_aws::{Config, RegionSelection};
    use trailwatch_tests::{Account, TrailSpec};

    const SCHEDULED: &[u8] = include_bytes!("../../../tests/fixtures/events/scheduled_event.json");

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
        let summary = handle(&services, event)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert_eq!(summary.account_id, account.id);
        assert_eq!(summary.summary.fail, 2);
        assert_eq!(summary.imported, 2);
        assert!(summary.alert_sent);
        assert_eq!(account.alerts("us-east-1", &queue).await?.len(), 1);

        let again = LambdaEvent::new(serde_json::json!({}), Context::default());
        let quiet = handle(&services, again)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert!(!quiet.alert_sent, "nothing changed, nothing sent");
        Ok(())
    }
}
