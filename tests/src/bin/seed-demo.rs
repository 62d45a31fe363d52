//! Seeds the demo account into the emulator named by `AWS_ENDPOINT_URL`: one trail of each
//! kind a security engineer meets in real accounts. `make demo` runs it through
//! `scripts/with-moto` and then scans the result.

use anyhow::Result;
use trailwatch_tests::{cloudtrail_trust, delivery_policy, Account, TrailSpec};

#[tokio::main]
async fn main() -> Result<()> {
    let account = Account::from_environment().await?;

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
    Ok(())
}
