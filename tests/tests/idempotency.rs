//! Overlapping runs against moto: the hourly scan racing a trail-change re-check, made to
//! overlap at an exact step by holding requests in the fault proxy behind a gate. Nothing here
//! waits for time to pass: a gate opens once the proxy has seen the requests the race needs, so
//! the outcome is the same on any machine, under any load.
//!
//! Each race runs twice, with the alert ledger (DynamoDB) and without it. The runs without it
//! show the race is real (a doubled page, a stale PASS over a newer FAIL), so the runs with it
//! show the ledger is what prevents them. The last tests take one destination down (SNS,
//! Security Hub), or kill a run between its claim and its page, and show that the retry neither
//! loses nor repeats a page.
//!
//! To run them 20 times in a row under load, as the README's "Tests" section does:
//! `for i in $(seq 20); do cargo test -p trailwatch-tests --test idempotency || break; done`.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;
use trailwatch_aws::flow::Recheck;
use trailwatch_aws::sns::{AlertChannel, ChannelError};
use trailwatch_aws::{Destinations, DynamoDbLedger, FailureKind, Services};
use trailwatch_core::alert::AlertMessage;
use trailwatch_tests::fault::{Fault, FaultProxy, Gate, Rule};
use trailwatch_tests::{endpoint, Deployment, TrailSpec, HOME};

/// StopLogging; then the hourly scan and the StopLogging re-check both read their memory
/// before either writes: the proxy holds every write (the ledger's claims, or without the
/// ledger the imports) until it has seen both runs' reads. Returns how many times each finding
/// was paged, and who paged what.
async fn both_runs_see_the_same_failure(
    with_ledger: bool,
) -> Result<(BTreeMap<String, usize>, Vec<String>)> {
    let deployment = Deployment::new(with_ledger).await?;
    let change = deployment.stop_logging().await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    let gate = Gate::new();
    let (write, read) = match with_ledger {
        true => ("UpdateItem", "BatchGetItem"),
        false => ("BatchImportFindings", "GetFindings"),
    };
    proxy.add(Rule::new(Fault::Hold(gate.clone())).on(write));
    let via = deployment.account.via(&proxy.endpoint).await;
    let scan = deployment.services(&via, "scheduled scan")?;
    let trail_change = deployment.services(&via, "trail-change")?;

    // Both reads answered, not only arrived: a write let through as the second read arrives
    // could reach moto before it, and the race would not happen.
    let release = async {
        proxy.wait_for_answers(read, 2).await;
        gate.open();
    };
    let (scanned, rechecked, ()) = tokio::join!(scan.run(), trail_change.recheck(&change), release);
    let scanned = scanned?;
    let Recheck::Published(rechecked) = rechecked? else {
        anyhow::bail!("the StopLogging re-check should publish");
    };
    for outcome in [&scanned, rechecked.as_ref()] {
        assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    }
    assert_eq!(deployment.trail_status().await?, "FAILED");
    deployment.paged_in_detail().await
}

#[tokio::test]
async fn a_scan_racing_a_recheck_pages_each_transition_once() -> Result<()> {
    let (paged, detail) = both_runs_see_the_same_failure(true).await?;
    // The trail stopped, and with it the account's coverage: two transitions, one page each.
    assert_eq!(paged.len(), 2, "{detail:#?}");
    assert!(paged.values().all(|&n| n == 1), "{detail:#?}");
    Ok(())
}

#[tokio::test]
async fn without_the_ledger_the_same_race_pages_twice() -> Result<()> {
    let (paged, detail) = both_runs_see_the_same_failure(false).await?;
    assert_eq!(paged.len(), 2, "{detail:#?}");
    assert!(paged.values().all(|&n| n == 2), "{detail:#?}");
    Ok(())
}

/// The hourly scan reads the trail while it still logs, and is held before it reads Security
/// Hub. Meanwhile StopLogging happens and its re-check records and pages the FAIL. Then the
/// scan goes on with its older PASS. Returns the trail's status in Security Hub afterwards
/// and how many times each finding was paged.
async fn a_scan_finishes_after_a_newer_recheck(
    with_ledger: bool,
) -> Result<(String, BTreeMap<String, usize>)> {
    let deployment = Deployment::new(with_ledger).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    let gate = Gate::new();
    proxy.add(Rule::new(Fault::Hold(gate.clone())).on("GetFindings"));
    let via = deployment.account.via(&proxy.endpoint).await;
    let scan = deployment.services(&via, "scheduled scan")?;
    let late_scan = tokio::spawn(async move { scan.run().await });

    // The scan has read every trail once it asks Security Hub for the prior findings.
    proxy.wait_for("GetFindings", 1).await;
    let change = deployment.stop_logging().await?;
    let trail_change = deployment.services(&deployment.account, "trail-change")?;
    let Recheck::Published(rechecked) = trail_change.recheck(&change).await? else {
        anyhow::bail!("the StopLogging re-check should publish");
    };
    assert!(rechecked.alert.is_some(), "{:?}", rechecked.summary());

    gate.open();
    let scanned = late_scan.await??;
    assert!(scanned.failures.is_empty(), "{:#?}", scanned.failures);
    Ok((deployment.trail_status().await?, deployment.paged().await?))
}

#[tokio::test]
async fn an_older_observation_never_overwrites_a_newer_one() -> Result<()> {
    let (status, paged) = a_scan_finishes_after_a_newer_recheck(true).await?;
    assert_eq!(status, "FAILED");
    // Only the re-check's NEW FAILURE pages (trail and account); no RESOLVED follows it.
    assert_eq!(paged.len(), 2, "{paged:#?}");
    assert!(paged.values().all(|&n| n == 1), "{paged:#?}");
    Ok(())
}

#[tokio::test]
async fn without_the_ledger_an_older_pass_overwrites_a_newer_fail() -> Result<()> {
    let (status, paged) = a_scan_finishes_after_a_newer_recheck(false).await?;
    assert_eq!(status, "PASSED");
    assert!(paged.values().all(|&n| n == 2), "{paged:#?}");
    Ok(())
}

/// StopLogging, then a run with `fault_on` answering 500, then a retry with everything up.
/// Checks what both outages share: the first run reports a retryable failure of `kind`, the
/// retry records FAILED, and each of the two transitions (trail, account) is paged exactly
/// once over both runs.
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
    proxy.clear();
    let retry = scan.run().await?;
    assert!(retry.failures.is_empty(), "{:#?}", retry.failures);
    assert_eq!(deployment.trail_status().await?, "FAILED");
    let paged = deployment.paged().await?;
    assert_eq!(paged.len(), 2, "{paged:#?}");
    assert!(paged.values().all(|&n| n == 1), "{paged:#?}");
    Ok(())
}

/// SNS refuses: the claims go back, so the retry pages.
#[tokio::test]
async fn an_sns_outage_leaves_the_transition_for_the_retry_to_page() -> Result<()> {
    an_outage_then_a_retry("Publish", FailureKind::Alert).await
}

/// Security Hub refuses the import after the page went out: the retry records, silently.
#[tokio::test]
async fn a_security_hub_outage_pages_once_and_the_retry_records_it() -> Result<()> {
    an_outage_then_a_retry("BatchImportFindings", FailureKind::SecurityHub).await
}

/// A trail the ledger has never seen fails while SNS is down: its claim is given back, and
/// the retry pages.
#[tokio::test]
async fn a_first_failure_that_sns_refused_is_paged_by_the_retry() -> Result<()> {
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
    let paged = deployment.paged().await?;
    assert_eq!(paged.len(), 1, "{paged:#?}");
    assert!(
        paged
            .iter()
            .all(|(id, &n)| id.ends_with("trail/s3-only") && n == 1),
        "{paged:#?}"
    );
    Ok(())
}

/// An SNS channel that takes the message and never answers, as a run that Lambda stops (a
/// timeout, a crash) between its claim and its publish. It tells the test when it is reached.
struct NeverAnswers {
    reached: Arc<Notify>,
}

impl AlertChannel for NeverAnswers {
    async fn publish(&self, _alert: &AlertMessage) -> Result<String, ChannelError> {
        self.reached.notify_one();
        std::future::pending().await
    }
}

/// StopLogging; a scan claims the two transitions, with a lease of `lease`, and is killed
/// before SNS answers. Returns the deployment and the services of its retry.
async fn a_run_killed_between_claim_and_publish(
    lease: chrono::Duration,
) -> Result<(Deployment, Services)> {
    let deployment = Deployment::new(true).await?;
    deployment.stop_logging().await?;
    let mut killed = deployment.services(&deployment.account, "scheduled scan")?;
    let table = deployment.ledger.clone().context("a ledger")?;
    killed.ledger = Some(
        DynamoDbLedger::new(
            &deployment.account.sdk,
            &table,
            "scheduled scan",
            Default::default(),
        )
        .with_lease(lease),
    );
    let reached = Arc::new(Notify::new());
    let stuck = NeverAnswers {
        reached: reached.clone(),
    };
    let run = tokio::spawn(async move {
        let destinations = Destinations {
            sink: killed.sink.as_ref(),
            channel: Some(&stuck),
            ledger: killed.ledger.as_ref(),
        };
        trailwatch_aws::flow::run(
            &killed.inventory,
            destinations,
            &killed.options,
            &killed.publish,
        )
        .await
    });
    reached.notified().await;
    run.abort();
    assert!(run.await.is_err_and(|e| e.is_cancelled()));

    let retry = deployment.services(&deployment.account, "scheduled scan")?;
    Ok((deployment, retry))
}

#[tokio::test]
async fn a_run_killed_between_claim_and_publish_is_paged_by_the_retry() -> Result<()> {
    // A lease of zero: the dead run's claims are free for the retry at once, as they are for
    // Lambda's retry a minute later under the default lease.
    let (deployment, retry) =
        a_run_killed_between_claim_and_publish(chrono::Duration::zero()).await?;
    let outcome = retry.run().await?;
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert!(outcome.deferred.is_empty(), "{:?}", outcome.deferred);
    let paged = deployment.paged().await?;
    assert_eq!(paged.len(), 2, "{paged:#?}");
    assert!(paged.values().all(|&n| n == 1), "{paged:#?}");
    // The page is confirmed now: the run after it pages nothing.
    assert!(retry.run().await?.alert.is_none());
    assert!(deployment.paged().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_claim_still_under_lease_is_left_to_its_run_not_paged_twice() -> Result<()> {
    let lease = chrono::Duration::seconds(trailwatch_aws::ledger::DEFAULT_LEASE_SECONDS);
    let (deployment, retry) = a_run_killed_between_claim_and_publish(lease).await?;
    let outcome = retry.run().await?;
    assert_eq!(outcome.deferred.len(), 2, "{:?}", outcome.summary());
    assert!(outcome.alert.is_none());
    assert!(deployment.paged().await?.is_empty());
    Ok(())
}
