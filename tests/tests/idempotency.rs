//! Overlapping runs against moto: the hourly scan racing a trail-change re-check, each made
//! to overlap at a chosen step by holding requests in the fault proxy.
//!
//! Each race runs twice, with the alert ledger (DynamoDB) and without it. The runs without it
//! show the race is real in this setup (a doubled alert, a stale PASS over a newer FAIL), so the
//! runs with it show the ledger is what prevents them. The last tests take one destination
//! down (SNS, Security Hub) and show that the retry neither loses nor repeats an alert.

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use trailwatch_aws::flow::{Recheck, Services};
use trailwatch_aws::{Config, FailureKind};
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{endpoint, fixture_event, Account, TrailSpec};

const HOME: &str = "us-east-1";
const TRAIL: &str = "audit";
const LEDGER: &str = "trailwatch-alert-ledger";

/// An account whose healthy trail is already recorded as passing, as after an hourly scan.
struct Deployment {
    account: Account,
    topic: String,
    queue: String,
    ledger: Option<String>,
}

impl Deployment {
    async fn new(with_ledger: bool) -> Result<Self> {
        let account = Account::fresh().await?;
        account.enable_security_hub(HOME).await?;
        let (topic, queue) = account.topic_with_queue(HOME, "trailwatch-alerts").await?;
        account.healthy_trail(TRAIL, HOME, true).await?;
        let ledger = match with_ledger {
            true => Some(account.ledger_table(HOME, LEDGER).await?),
            false => None,
        };
        let deployment = Self {
            account,
            topic,
            queue,
            ledger,
        };
        let first = deployment.services(&deployment.account, "scheduled scan")?;
        let outcome = first.run().await?;
        anyhow::ensure!(
            outcome.alert.is_none() && outcome.imported == 2,
            "the first scan should record two passing findings: {:?}",
            outcome.summary()
        );
        Ok(deployment)
    }

    /// The functions' services, configured as the template configures them, reaching AWS
    /// through `via` (the account itself, or the account through a proxy).
    fn services(&self, via: &Account, trigger: &str) -> Result<Services> {
        let config = Config::from_lookup(|name| match name {
            "TRAILWATCH_REGIONS" => Some(HOME.into()),
            "TRAILWATCH_SNS_TOPIC_ARN" => Some(self.topic.clone()),
            "TRAILWATCH_LEDGER_TABLE" => self.ledger.clone(),
            _ => None,
        })?;
        Ok(Services::new(&via.sdk, &config, trigger)?)
    }

    async fn stop_logging(&self) -> Result<trailwatch_core::event::Change> {
        self.account
            .cloudtrail(HOME)
            .stop_logging()
            .name(TRAIL)
            .send()
            .await?;
        let event = fixture_event("stop_logging.json", &self.account.id)?;
        Ok(trailwatch_core::event::parse(event.to_string().as_bytes())?)
    }

    /// How many times each finding was alerted, over every alert sent so far.
    async fn alerted(&self) -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for envelope in self.account.alerts(HOME, &self.queue).await? {
            let records: Value =
                serde_json::from_str(envelope["Message"].as_str().context("an SNS Message")?)?;
            for transition in records["transitions"].as_array().into_iter().flatten() {
                let id = transition["finding_id"].as_str().context("finding_id")?;
                *counts.entry(id.to_string()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    async fn trail_status(&self) -> Result<String> {
        let finding = self.account.trail_finding(HOME, TRAIL).await?;
        Ok(finding
            .compliance()
            .and_then(|c| c.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default())
    }
}

/// StopLogging; then the hourly scan and the StopLogging re-check both read Security Hub's
/// PASS before either records the FAIL (imports are held for 3 s). Returns how many times
/// each finding was alerted.
async fn both_runs_see_the_same_failure(with_ledger: bool) -> Result<BTreeMap<String, usize>> {
    let deployment = Deployment::new(with_ledger).await?;
    let change = deployment.stop_logging().await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::Delay { seconds: 3 }).on("BatchImportFindings"));
    let via = deployment.account.via(&proxy.endpoint).await;
    let scan = deployment.services(&via, "scheduled scan")?;
    let trail_change = deployment.services(&via, "trail-change")?;

    let (scanned, rechecked) = tokio::join!(scan.run(), trail_change.recheck(&change));
    let scanned = scanned?;
    let Recheck::Published(rechecked) = rechecked? else {
        anyhow::bail!("the StopLogging re-check should publish");
    };
    for outcome in [&scanned, rechecked.as_ref()] {
        assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    }
    assert_eq!(deployment.trail_status().await?, "FAILED");
    deployment.alerted().await
}

#[tokio::test]
async fn a_scan_racing_a_recheck_alerts_each_transition_once() -> Result<()> {
    let alerted = both_runs_see_the_same_failure(true).await?;
    // The trail stopped, and with it the account's coverage: two transitions, one alert each.
    assert_eq!(alerted.len(), 2, "{alerted:#?}");
    assert!(alerted.values().all(|&n| n == 1), "{alerted:#?}");
    Ok(())
}

#[tokio::test]
async fn without_the_ledger_the_same_race_alerts_twice() -> Result<()> {
    let alerted = both_runs_see_the_same_failure(false).await?;
    assert_eq!(alerted.len(), 2, "{alerted:#?}");
    assert!(alerted.values().all(|&n| n == 2), "{alerted:#?}");
    Ok(())
}

/// The hourly scan reads the trail while it still logs, and is held before it reads Security
/// Hub. Meanwhile StopLogging happens and its re-check records and alerts the FAIL. Then the
/// scan goes on with its older PASS. Returns the trail's status in Security Hub afterwards
/// and how many times each finding was alerted.
async fn a_scan_finishes_after_a_newer_recheck(
    with_ledger: bool,
) -> Result<(String, BTreeMap<String, usize>)> {
    let deployment = Deployment::new(with_ledger).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::Delay { seconds: 5 }).on("GetFindings"));
    let via = deployment.account.via(&proxy.endpoint).await;
    let scan = deployment.services(&via, "scheduled scan")?;
    let late_scan = tokio::spawn(async move { scan.run().await });

    // The scan has read every trail once it asks Security Hub for the prior findings.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.seen().iter().any(|(_, op)| op == "GetFindings") {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the scan never reached Security Hub"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let change = deployment.stop_logging().await?;
    let trail_change = deployment.services(&deployment.account, "trail-change")?;
    let Recheck::Published(rechecked) = trail_change.recheck(&change).await? else {
        anyhow::bail!("the StopLogging re-check should publish");
    };
    assert!(rechecked.alert.is_some(), "{:?}", rechecked.summary());

    let scanned = late_scan.await??;
    assert!(scanned.failures.is_empty(), "{:#?}", scanned.failures);
    Ok((
        deployment.trail_status().await?,
        deployment.alerted().await?,
    ))
}

#[tokio::test]
async fn an_older_observation_never_overwrites_a_newer_one() -> Result<()> {
    let (status, alerted) = a_scan_finishes_after_a_newer_recheck(true).await?;
    assert_eq!(status, "FAILED");
    // Only the re-check's NEW FAILURE alerts (trail and account); no RESOLVED follows it.
    assert_eq!(alerted.len(), 2, "{alerted:#?}");
    assert!(alerted.values().all(|&n| n == 1), "{alerted:#?}");
    Ok(())
}

#[tokio::test]
async fn without_the_ledger_an_older_pass_overwrites_a_newer_fail() -> Result<()> {
    let (status, alerted) = a_scan_finishes_after_a_newer_recheck(false).await?;
    assert_eq!(status, "PASSED");
    assert!(alerted.values().all(|&n| n == 2), "{alerted:#?}");
    Ok(())
}

/// StopLogging, then a run with `fault_on` answering 500, then a retry with everything up.
/// Checks what both outages share: the first run reports a retryable failure of `kind` and
/// leaves the trail's finding PASSED (so the retry sees the transition again), the retry
/// records FAILED, and each of the two transitions (trail, account) is alerted exactly once.
async fn an_outage_then_a_retry(fault_on: &str, kind: FailureKind) -> Result<()> {
    let deployment = Deployment::new(true).await?;
    deployment.stop_logging().await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::ServerError).on(fault_on));
    let via = deployment.account.via(&proxy.endpoint).await;
    let scan = deployment.services(&via, "scheduled scan")?;
    let first = scan.run().await?;
    assert!(
        first.failures.iter().any(|f| f.kind == kind && f.retryable),
        "{:#?}",
        first.failures
    );
    assert_eq!(deployment.trail_status().await?, "PASSED");
    proxy.clear();
    let retry = scan.run().await?;
    assert!(retry.failures.is_empty(), "{:#?}", retry.failures);
    assert_eq!(deployment.trail_status().await?, "FAILED");
    let alerted = deployment.alerted().await?;
    assert_eq!(alerted.len(), 2, "{alerted:#?}");
    assert!(alerted.values().all(|&n| n == 1), "{alerted:#?}");
    Ok(())
}

/// SNS refuses: the claims go back and nothing is recorded, so the retry alerts.
#[tokio::test]
async fn an_sns_outage_leaves_the_transition_for_the_retry_to_alert() -> Result<()> {
    an_outage_then_a_retry("Publish", FailureKind::Alert).await
}

/// Security Hub refuses the import after the alert went out: the retry records, silently.
#[tokio::test]
async fn a_security_hub_outage_alerts_once_and_the_retry_records_it() -> Result<()> {
    an_outage_then_a_retry("BatchImportFindings", FailureKind::SecurityHub).await
}

/// A trail the ledger has never seen fails while SNS is down: its claim has nothing to put
/// back, so giving it back deletes it, and the retry alerts.
#[tokio::test]
async fn a_first_failure_that_sns_refused_is_alerted_by_the_retry() -> Result<()> {
    let deployment = Deployment::new(true).await?;
    deployment
        .account
        .trail(TrailSpec::new("s3-only", HOME))
        .await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::ServerError).on("Publish"));
    let via = deployment.account.via(&proxy.endpoint).await;
    let scan = deployment.services(&via, "scheduled scan")?;
    let first = scan.run().await?;
    assert!(first.alert.is_none(), "SNS is down");
    proxy.clear();
    let retry = scan.run().await?;
    assert!(retry.alert.is_some(), "{:?}", retry.summary());
    let alerted = deployment.alerted().await?;
    assert_eq!(alerted.len(), 1, "{alerted:#?}");
    assert!(
        alerted
            .iter()
            .all(|(id, &n)| id.ends_with("trail/s3-only") && n == 1),
        "{alerted:#?}"
    );
    Ok(())
}
