//! The demo's helper, run against the emulator named by `AWS_ENDPOINT_URL` (see `scripts/demo`):
//!
//! - `seed-demo seed` creates one trail of each kind a security engineer meets, enables
//!   Security Hub, and subscribes an SQS queue to the alert topic; prints the topic ARN last.
//! - `seed-demo findings` lists what Security Hub holds.
//! - `seed-demo inbox` drains the queue and prints each alert as its email subscribers read it.
//! - `seed-demo fix` starts the stopped trail again.
//! - `seed-demo attack FILE` plays an intruder: stops `org-audit`, the trail that covers the
//!   account, and writes the EventBridge event that call produces to FILE.
//! - `seed-demo recover` starts `org-audit` again (for measurements that attack repeatedly).

use anyhow::{bail, Context, Result};
use trailwatch_core::alert::{self, AlertContext};
use trailwatch_core::reconcile::Transition;
use trailwatch_tests::{cloudtrail_trust, delivery_policy, fixture_event, Account, TrailSpec};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
const TOPIC: &str = "trailwatch-alerts";

#[tokio::main]
async fn main() -> Result<()> {
    let account = Account::from_environment().await?;
    match std::env::args().nth(1).as_deref() {
        Some("seed") => seed(&account).await,
        Some("findings") => findings(&account).await,
        Some("inbox") => inbox(&account).await,
        Some("fix") => fix(&account).await,
        Some("recover") => {
            account
                .cloudtrail("us-east-1")
                .start_logging()
                .name("org-audit")
                .send()
                .await?;
            Ok(())
        }
        Some("attack") => {
            let file = std::env::args()
                .nth(2)
                .context("usage: seed-demo attack FILE")?;
            attack(&account, &file).await
        }
        other => {
            bail!("usage: seed-demo seed|findings|inbox|fix|attack FILE|recover (got {other:?})")
        }
    }
}

async fn seed(account: &Account) -> Result<()> {
    let good = account
        .healthy_trail("org-audit", "us-east-1", true)
        .await?;
    println!(
        "  org-audit       us-east-1       multi-region, streaming to {}",
        good.log_group_name
    );

    account
        .trail(TrailSpec::new("legacy-archive", "eu-west-1"))
        .await?;
    println!("  legacy-archive  eu-west-1       S3 only, no CloudWatch Logs");

    let stopped = account
        .healthy_trail("ops-audit", "ap-southeast-2", false)
        .await?;
    account
        .cloudtrail("ap-southeast-2")
        .stop_logging()
        .name(&stopped.name)
        .send()
        .await?;
    println!("  ops-audit       ap-southeast-2  logging stopped (StopLogging)");

    let orphan = account
        .healthy_trail("app-activity", "us-east-1", false)
        .await?;
    account
        .logs("us-east-1")
        .delete_log_group()
        .log_group_name(&orphan.log_group_name)
        .send()
        .await?;
    println!(
        "  app-activity    us-east-1       its log group {} was deleted",
        orphan.log_group_name
    );

    let group = account
        .log_group("eu-west-1", "cloudtrail/data-events", Some(400))
        .await?;
    account
        .tamper_alarm("eu-west-1", "cloudtrail/data-events")
        .await?;
    let without_star = group.trim_end_matches(":*");
    let role = account
        .role(
            "CloudTrailToCloudWatch-data-events",
            &cloudtrail_trust(&account.id),
            &[("delivery", delivery_policy(without_star))],
        )
        .await?;
    account
        .trail(
            TrailSpec::new("data-events", "eu-west-1")
                .log_group(&group)
                .role(&role),
        )
        .await?;
    println!("  data-events     eu-west-1       delivery policy names the log group without ':*'");

    for region in REGIONS {
        account.enable_security_hub(region).await?;
    }
    let (topic, _) = account.topic_with_queue("us-east-1", TOPIC).await?;
    println!(
        "  Security Hub enabled in {}; SQS queue {TOPIC} subscribed to the topic",
        REGIONS.join(", ")
    );
    println!("{topic}");
    Ok(())
}

async fn findings(account: &Account) -> Result<()> {
    for region in REGIONS {
        for finding in account.findings(region).await?.values() {
            println!(
                "  {:<14} {:<9} {:<13} {:<13} {}",
                region,
                finding.record_state().map(|s| s.as_str()).unwrap_or("-"),
                finding
                    .compliance()
                    .and_then(|c| c.status())
                    .map(|s| s.as_str())
                    .unwrap_or("-"),
                finding
                    .severity()
                    .and_then(|s| s.label())
                    .map(|l| l.as_str())
                    .unwrap_or("-"),
                finding.title().unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn inbox(account: &Account) -> Result<()> {
    let queue = format!(
        "{}/{}/{TOPIC}",
        std::env::var("AWS_ENDPOINT_URL").context("AWS_ENDPOINT_URL")?,
        account.id
    );
    let envelopes = account.alerts("us-east-1", &queue).await?;
    if envelopes.is_empty() {
        println!("  (no alert: nothing changed)");
    }
    for envelope in envelopes {
        let records: serde_json::Value =
            serde_json::from_str(envelope["Message"].as_str().context("Message")?)?;
        let transitions: Vec<Transition> = serde_json::from_value(records["transitions"].clone())?;
        let context = AlertContext {
            account_id: records["account_id"].as_str().unwrap_or_default().into(),
            region: records["region"].as_str().unwrap_or_default().into(),
            generated_at: chrono::DateTime::parse_from_rfc3339(
                records["generated_at"].as_str().unwrap_or_default(),
            )?
            .with_timezone(&chrono::Utc),
            trigger: records["trigger"].as_str().unwrap_or_default().into(),
            docs_url: records["docs_url"].as_str().unwrap_or_default().into(),
            cause: serde_json::from_value(records["cause"].clone())?,
        };
        let message =
            alert::render(&transitions, &context).context("records with no transition")?;
        println!(
            "  SNS subject: {}",
            envelope["Subject"].as_str().unwrap_or_default()
        );
        println!("  Attributes: {}", envelope["MessageAttributes"]);
        println!("  ---- email text ----");
        for line in message.email.lines() {
            println!("  {line}");
        }
        println!("  ---- chat apps (Slack/Teams) custom notification, the default variant ----");
        for line in serde_json::to_string_pretty(&message.chat)?.lines() {
            println!("  {line}");
        }
        println!("  --------------------");
    }
    Ok(())
}

async fn fix(account: &Account) -> Result<()> {
    account
        .cloudtrail("ap-southeast-2")
        .start_logging()
        .name("ops-audit")
        .send()
        .await?;
    println!("  aws cloudtrail start-logging --name ops-audit --region ap-southeast-2");
    Ok(())
}

/// What an intruder with stolen keys does first, and the event CloudTrail hands EventBridge
/// for it (the StopLogging fixture, moved to this account and trail).
async fn attack(account: &Account, file: &str) -> Result<()> {
    account
        .cloudtrail("us-east-1")
        .stop_logging()
        .name("org-audit")
        .send()
        .await?;
    let mut event = fixture_event("stop_logging.json", &account.id)?;
    event["detail"]["requestParameters"]["name"] = "org-audit".into();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    event["time"] = now.clone().into();
    event["detail"]["eventTime"] = now.into();
    std::fs::write(file, serde_json::to_vec_pretty(&event)?)?;
    println!(
        "  StopLogging org-audit (us-east-1) by {} from {}",
        event["detail"]["userIdentity"]["arn"]
            .as_str()
            .unwrap_or_default(),
        event["detail"]["sourceIPAddress"]
            .as_str()
            .unwrap_or_default()
    );
    Ok(())
}
