//! An organisation past one invocation, as deployed: the scheduled scan hands 201 accounts out
//! through a moto SQS queue, the account worker runs under `cargo lambda watch` on the batches
//! Lambda's SQS event source would give it, and one poisoned account ends in the dead-letter
//! queue and in the summary.
//!
//! The test plays Lambda's event source mapping: it receives up to 10 messages, hands them to
//! the worker as the SQS event Lambda sends (shape:
//! <https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#example-standard-queue-message-event>),
//! deletes the messages the answer's `batchItemFailures` does not name (with
//! `ReportBatchItemFailures`, <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>),
//! and lets the failed ones come back. Receives use a visibility timeout of 0, so a failed
//! message is visible again at once instead of after a clock runs out.

use anyhow::{Context, Result};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::lambda::LambdaWatch;
use trailwatch_tests::{endpoint, fixture_event, Account, TrailSpec};

const HOME: &str = "us-east-1";
const MEMBERS: usize = 200;
const MAX_RECEIVES: u32 = 3;

/// The account queue and its dead-letter queue, redriven after `MAX_RECEIVES` receives, as
/// the templates build them.
async fn account_queues(sqs: &aws_sdk_sqs::Client) -> Result<(String, String, String)> {
    let dlq = sqs
        .create_queue()
        .queue_name("trailwatch-accounts-dlq")
        .send()
        .await?;
    let dlq_url = dlq.queue_url().context("a DLQ URL")?.to_string();
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let queue = sqs
        .create_queue()
        .queue_name("trailwatch-accounts")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES.to_string()})
                .to_string(),
        )
        .send()
        .await?;
    let url = queue.queue_url().context("a queue URL")?.to_string();
    let arn = queue_arn(sqs, &url).await?;
    Ok((url, arn, dlq_url))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    Ok(attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .context("no queue ARN")?
        .clone())
}

/// Up to 10 messages of `url`, visible again at once if not deleted.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<aws_sdk_sqs::types::Message>> {
    Ok(sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?
        .messages()
        .to_vec())
}

/// The SQS event Lambda would invoke the worker with for `messages`.
fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: BTreeMap<String, String> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": HOME,
            })
        })
        .collect();
    json!({ "Records": records })
}

fn account_of(message: &aws_sdk_sqs::types::Message) -> Result<String> {
    let body: Value = serde_json::from_str(message.body().context("a body")?)?;
    Ok(body["account"]["id"]
        .as_str()
        .context("an account id")?
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_of_201_accounts_fans_out_once_each_with_the_poisoned_one_dead_lettered(
) -> Result<()> {
    let management = Account::fresh().await?;
    let names: Vec<String> = (0..MEMBERS).map(|i| format!("member-{i:03}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let members = management.create_organization(&names).await?;
    for member in &members {
        member.trail(TrailSpec::new("s3-only", HOME)).await?;
    }
    let poisoned = members[7].id.clone();
    let (topic, alerts) = management
        .topic_with_queue(HOME, "trailwatch-alerts")
        .await?;
    let ledger = management
        .ledger_table(HOME, "trailwatch-alert-ledger")
        .await?;
    let sqs = aws_sdk_sqs::Client::new(&management.regional(HOME));
    let (queue_url, queue_arn, dlq_url) = account_queues(&sqs).await?;

    // STS fails for the poisoned account every time: an outage that outlasts every retry.
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(
        Rule::new(Fault::ServerError)
            .on("AssumeRole")
            .mentioning(&poisoned),
    );
    let max_receives = MAX_RECEIVES.to_string();
    let watch = Arc::new(LambdaWatch::start(
        &management,
        &[
            ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
            // One attempt a call: the poisoned account's three receives would otherwise each
            // wait out six backoffs. Nothing else here fails.
            ("AWS_MAX_ATTEMPTS", "1"),
            ("TRAILWATCH_REGIONS", HOME),
            ("TRAILWATCH_SECURITY_HUB", "false"),
            ("TRAILWATCH_SNS_TOPIC_ARN", topic.as_str()),
            ("TRAILWATCH_LEDGER_TABLE", ledger.as_str()),
            ("TRAILWATCH_ORG_ROLE_NAME", "trailwatch-read"),
            ("TRAILWATCH_ORG_QUEUE_URL", queue_url.as_str()),
            ("TRAILWATCH_ORG_FAN_OUT_ABOVE", "100"),
            ("TRAILWATCH_ORG_MAX_RECEIVES", max_receives.as_str()),
            // One account at a time in a batch. DynamoDB applies each UpdateItem atomically;
            // moto does not, and of two ADDs to one count item that arrive together it keeps
            // one (seen here: 201 reports, 200 counted, and the scan waiting out its window).
            // moto answers one request at a time anyway, so this costs the test little.
            ("TRAILWATCH_ORG_CONCURRENCY", "1"),
            // A safety net only: the scan ends when the last report is in, and a worker
            // that forgot one would show here as a missing account, not as a hang.
            ("TRAILWATCH_ORG_WINDOW_SECONDS", "600"),
        ],
    )?);

    // The scan waits for the reports, so it runs beside the event source played below.
    let event = fixture_event("scheduled_event.json", &management.id)?;
    let scanning = {
        let watch = Arc::clone(&watch);
        tokio::task::spawn_blocking(move || watch.invoke("scheduled-scan", &event))
    };

    let mut done: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed_receives: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut delivered_twice = false;
    // Until the scan answers, which it does once the last report is in (or, if the worker
    // forgot one, when its window ends, and the assertions below say which).
    while !scanning.is_finished() {
        let messages = receive(&sqs, &queue_url).await?;
        if messages.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        let batch = sqs_event(&messages, &queue_arn);
        let invoke =
            |batch: &Value| tokio::task::block_in_place(|| watch.invoke("account-worker", batch));
        let answer = invoke(&batch)?.response()?;
        if !delivered_twice {
            // SQS delivers at least once: the same batch again must page nothing new and
            // count nobody twice.
            delivered_twice = true;
            let again = invoke(&batch)?.response()?;
            assert_eq!(again, answer, "{}", watch.logs());
        }
        let failures: Vec<&str> = answer["batchItemFailures"]
            .as_array()
            .context("batchItemFailures")?
            .iter()
            .filter_map(|f| f["itemIdentifier"].as_str())
            .collect();
        let mut deletes = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            let account = account_of(message)?;
            if failures.contains(&message.message_id().unwrap_or_default()) {
                let receives = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                failed_receives.entry(account).or_default().push(receives);
                continue;
            }
            *done.entry(account).or_insert(0) += 1;
            deletes.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .set_receipt_handle(message.receipt_handle().map(str::to_string))
                    .build()?,
            );
        }
        if !deletes.is_empty() {
            sqs.delete_message_batch()
                .queue_url(&queue_url)
                .set_entries(Some(deletes))
                .send()
                .await?;
        }
    }
    let summary = scanning.await??.response()?;

    // Every account but the poisoned one was done with once, the poisoned one failed on each
    // of its receives, and the summary says the same.
    assert_eq!(done.len(), MEMBERS, "{done:?}");
    assert!(done.values().all(|&n| n == 1), "{done:?}");
    assert!(!done.contains_key(&poisoned));
    assert_eq!(
        failed_receives,
        BTreeMap::from([(poisoned.clone(), vec![1, 2, 3])]),
        "{}",
        watch.logs()
    );
    let fan_out = &summary["fan_out"];
    assert_eq!(summary["accounts"], MEMBERS + 1, "{summary:#}");
    assert_eq!(summary["scanned"], MEMBERS, "{summary:#}");
    assert_eq!(fan_out["queued"], MEMBERS + 1, "{summary:#}");
    assert_eq!(fan_out["complete"], true, "{summary:#}");
    assert_eq!(fan_out["missing"], json!([]), "{summary:#}");
    assert_eq!(fan_out["dead_lettered"][0]["account_id"], poisoned.as_str());
    assert_eq!(fan_out["dead_lettered"].as_array().map(Vec::len), Some(1));
    assert!(
        fan_out["dead_lettered"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("failed 3 time(s)")),
        "{summary:#}"
    );
    // Every scanned account pages once: the members' S3-only trails, and the management
    // account's lack of any trail.
    assert_eq!(fan_out["alerts_sent"], MEMBERS, "{summary:#}");
    assert!(
        watch.logs().contains("\"AccountsUnreachable\":1"),
        "the organisation's metrics line counts the dead-lettered account"
    );

    // The next receive moves the poisoned message to the dead-letter queue, as SQS does once
    // a message has been received maxReceiveCount times.
    assert!(receive(&sqs, &queue_url).await?.is_empty());
    let dead = receive(&sqs, &dlq_url).await?;
    let dead: Vec<String> = dead.iter().map(account_of).collect::<Result<_>>()?;
    assert_eq!(dead, vec![poisoned.clone()]);

    // No page went out twice, duplicate delivery included, and the poisoned account sent none.
    let mut pages: BTreeMap<String, usize> = BTreeMap::new();
    for envelope in management.alerts(HOME, &alerts).await? {
        let records: Value =
            serde_json::from_str(envelope["Message"].as_str().context("an SNS Message")?)?;
        let account = records["account_id"].as_str().context("account_id")?;
        *pages.entry(account.to_string()).or_insert(0) += 1;
    }
    assert_eq!(pages.len(), MEMBERS, "{pages:?}");
    assert!(pages.values().all(|&n| n == 1), "{pages:?}");
    assert!(!pages.contains_key(&poisoned));

    // What the templates grant for the fan-out beyond a scan's reads is what it calls
    // (tests/tests/infra.rs holds the templates to these): queueing, reporting, counting.
    let called = proxy.iam_actions();
    for action in [
        "sqs:SendMessage",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",
    ] {
        assert!(called.contains(action), "{action} not called: {called:?}");
    }
    Ok(())
}
