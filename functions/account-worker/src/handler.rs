//! One batch of the account queue: each message names an account of a fanned-out
//! organisation run (see `trailwatch_aws::fanout`). Each account is scanned and published as
//! the in-process organisation run does it, its report written to the run, and the batch
//! answered with the messages that must come back (`ReportBatchItemFailures`):
//!
//! - scanned, or refused by its read role: reported, done;
//! - an outage, throttling past the SDK's retries, or a page SNS refused: the message fails,
//!   and SQS delivers it again (the alert ledger keeps the pages of a second scan single);
//! - on its last receive (`TRAILWATCH_ORG_MAX_RECEIVES`, the queue's `maxReceiveCount`):
//!   reported dead-lettered, then failed, so SQS moves it to the dead-letter queue;
//! - a body that is no account task: failed, so it ends in the dead-letter queue for a person.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use lambda_runtime::LambdaEvent;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};
use trailwatch_aws::fanout::{record_report, settle, AccountTask, FanOutConfig};
use trailwatch_aws::organization::unreachable_account;
use trailwatch_aws::organization::{AccountRun, OrgConfig, Reach};
use trailwatch_aws::Services;
use trailwatch_lambda::{answer_by, finish, HandlerError};

/// Scans stop this long before the function's deadline, so that each message is still
/// settled (and on its last receive reported dead-lettered) before Lambda stops the batch.
const SETTLE_MARGIN: Duration = Duration::from_secs(15);

pub const FUNCTION: &str = "account-worker";

/// The worker's configuration: organisation mode with its fan-out.
fn configured(services: &Services) -> Result<(&OrgConfig, &FanOutConfig), HandlerError> {
    let org = services.org.as_ref().ok_or_else(|| {
        HandlerError::non_retryable(
            "the account worker runs in organisation mode: set TRAILWATCH_ORG_ROLE_NAME",
        )
    })?;
    let fan_out = org.fan_out.as_ref().ok_or_else(|| {
        HandlerError::non_retryable(
            "the account worker needs the fan-out's settings: set TRAILWATCH_ORG_QUEUE_URL",
        )
    })?;
    Ok((org, fan_out))
}

pub async fn handle(
    services: &Services,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, HandlerError> {
    let (org, fan_out) = configured(services)?;
    let messages = event.payload.records;
    info!(request_id = %event.context.request_id, messages = messages.len(), "batch received");
    // Not knowing this deployment (an STS outage) fails the whole batch, to come back.
    let reach = Reach::new(services, org)
        .await
        .map_err(|e| HandlerError::retryable(e.to_string()))?;
    let reach = &reach;
    let deadline = answer_by(event.context.deadline, SETTLE_MARGIN);
    let failed: Vec<String> = stream::iter(messages)
        .map(|message| async move {
            let id = message.message_id.clone().unwrap_or_default();
            match Box::pin(work(services, reach, fan_out, &message, deadline)).await {
                Ok(()) => None,
                Err(why) => {
                    warn!(message_id = %id, error = %why, "message fails, to be delivered again");
                    Some(id)
                }
            }
        })
        .buffer_unordered(org.concurrency.max(1))
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for id in failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

/// One message: `Err` (with why) when SQS must deliver it again.
async fn work(
    services: &Services,
    reach: &Reach,
    fan_out: &FanOutConfig,
    message: &SqsMessage,
    deadline: Option<Instant>,
) -> Result<(), String> {
    let body = message.body.as_deref().unwrap_or_default();
    let task: AccountTask = serde_json::from_str(body).map_err(|e| {
        error!(body, error = %e, "not an account task; it will end in the dead-letter queue");
        format!("not an account task: {e}")
    })?;
    let receive: u32 = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let account = task.account.id.clone();
    let scan = Box::pin(reach.run(services, task.account.clone()));
    // A scan still going at the deadline (throttling, a hung call) counts as an outage:
    // delivered again, or on its last receive reported dead-lettered, never left unsettled.
    let run = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), scan).await {
            Ok(run) => run,
            Err(_) => AccountRun::Unreachable {
                evaluation: Box::new(unreachable_account(
                    &account,
                    &services
                        .sdk
                        .region()
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                    "its scan had not finished when the worker's time ran out",
                )),
                account: task.account.clone(),
                transient: true,
            },
        },
        None => scan.await,
    };
    let publication_failure = match &run {
        AccountRun::Scanned { outcome, .. } => finish(FUNCTION, outcome).err().map(|e| e.message),
        AccountRun::Unreachable { .. } => None,
    };
    let settlement = settle(&run, publication_failure, receive, fan_out.max_receives);
    if let Some(report) = &settlement.report {
        let first = record_report(services.ledger.as_ref(), &task.run_id, &account, report)
            .await
            .map_err(|e| e.to_string())?;
        info!(run_id = %task.run_id, account = %account, first, receive, "account reported");
    }
    match settlement.retry {
        Some(why) => Err(why),
        None => Ok(()),
    }
}
