//! The hourly scan: each invocation runs the whole flow (scan every configured region,
//! reconcile with Security Hub, import what changed, send one digest) and returns a summary.

use aws_config::SdkConfig;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;
use tracing::{error, info};
use trailwatch_aws::flow::{self, PublishOptions, RunSummary};
use trailwatch_aws::{
    ApiCallCounter, ChannelError, CloudTrailInventory, Config, ScanOptions, Scope, SecurityHubSink,
    SnsChannel,
};
use trailwatch_core::metrics::emf_line;

pub const FUNCTION: &str = "scheduled-scan";

/// Everything an invocation needs, built once at cold start and borrowed by each invocation.
pub struct ScheduledScan {
    inventory: CloudTrailInventory,
    sink: Option<SecurityHubSink>,
    channel: Option<SnsChannel>,
    options: ScanOptions,
    publish: PublishOptions,
}

/// A failed invocation, marked for EventBridge's retry policy and the dead-letter queue.
#[derive(Debug)]
pub struct HandlerError {
    pub retryable: bool,
    pub message: String,
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic {
            error_type: if error.retryable {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .into(),
            error_message: error.message,
        }
    }
}

impl ScheduledScan {
    pub fn new(sdk: &SdkConfig, config: &Config) -> Result<Self, ChannelError> {
        Ok(Self {
            inventory: CloudTrailInventory::new(sdk, config.concurrency),
            sink: config
                .security_hub
                .then(|| SecurityHubSink::new(sdk, ApiCallCounter::default())),
            channel: config
                .sns_topic_arn
                .as_deref()
                .map(|topic| SnsChannel::new(sdk, topic, ApiCallCounter::default()))
                .transpose()?,
            options: ScanOptions {
                scope: Scope {
                    regions: config.regions.clone(),
                    trail: None,
                },
                max_delivery_age: config.max_delivery_age,
                warnings: config.warnings,
            },
            publish: PublishOptions {
                docs_url: config.docs_url.clone(),
                trigger: "scheduled scan".into(),
            },
        })
    }

    /// Any event starts a scan: the schedule sends `Scheduled Event`, and an operator may
    /// invoke the function by hand with `{}`.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<RunSummary, HandlerError> {
        let detail_type = event
            .payload
            .get("detail-type")
            .and_then(Value::as_str)
            .unwrap_or("manual");
        info!(request_id = %event.context.request_id, trigger = detail_type, "scan starting");
        let outcome = flow::run(
            &self.inventory,
            self.sink.as_ref(),
            self.channel.as_ref(),
            &self.options,
            &self.publish,
        )
        .await
        .map_err(|e| HandlerError {
            // Not knowing the account (credentials, STS outage) may pass; retrying is cheap.
            retryable: true,
            message: e.to_string(),
        })?;
        println!(
            "{}",
            emf_line(FUNCTION, chrono::Utc::now(), &outcome.metrics())
        );
        for failure in &outcome.failures {
            error!(kind = ?failure.kind, region = ?failure.region, retryable = failure.retryable, message = %failure.message, "publication failed");
        }
        if let Some(message) = outcome.retryable_failure() {
            return Err(HandlerError {
                retryable: true,
                message,
            });
        }
        Ok(outcome.summary())
    }
}

#[cfg(test)]
mod tests {
    //! Against moto: these run inside `make test`, which provides the emulator.

    use super::*;
    use lambda_runtime::Context;
    use trailwatch_aws::RegionSelection;
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
        let scan = ScheduledScan::new(&account.sdk, &config(Some(topic)))?;

        let event = LambdaEvent::new(serde_json::from_slice(SCHEDULED)?, Context::default());
        let summary = scan
            .handle(event)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert_eq!(summary.account_id, account.id);
        assert_eq!(summary.summary.fail, 2);
        assert_eq!(summary.imported, 2);
        assert!(summary.alert_sent);
        assert_eq!(account.alerts("us-east-1", &queue).await?.len(), 1);

        let again = LambdaEvent::new(serde_json::json!({}), Context::default());
        let quiet = scan
            .handle(again)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        assert!(!quiet.alert_sent, "nothing changed, nothing sent");
        Ok(())
    }

    #[test]
    fn errors_map_to_retryable_and_non_retryable_diagnostics() {
        let retry: Diagnostic = HandlerError {
            retryable: true,
            message: "Security Hub outage".into(),
        }
        .into();
        assert_eq!(retry.error_type, "Retryable");
        let give_up: Diagnostic = HandlerError {
            retryable: false,
            message: "bad".into(),
        }
        .into();
        assert_eq!(give_up.error_type, "NonRetryable");
        assert_eq!(give_up.error_message, "bad");
    }
}
