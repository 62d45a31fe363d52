//! The attacker's moves, end to end against moto, through the services the functions run: stop
//! logging and start it again (with and without the event), cut the alarm's feed, blind the
//! monitor by denying it a read, and change trailwatch itself. Each test counts the pages the
//! on-call engineer gets, and what they say.

use anyhow::{Context, Result};
use serde_json::Value;
use trailwatch_aws::flow::Recheck;
use trailwatch_aws::Inventory;
use trailwatch_core::event::Change;
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{endpoint, fixture_event, Deployment, HOME, TRAIL};

/// A change event from `fixture`, moved into the deployment's account, with `edit` applied.
fn change(deployment: &Deployment, fixture: &str, edit: impl FnOnce(&mut Value)) -> Result<Change> {
    let mut event = fixture_event(fixture, &deployment.account.id)?;
    edit(&mut event);
    Ok(trailwatch_core::event::parse(event.to_string().as_bytes())?)
}

/// The transitions of one page, by kind, each with the codes of its evaluation's reasons that
/// count (INFO notes left out).
fn transitions(page: &Value) -> Vec<(String, Vec<String>)> {
    page["transitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let codes = t["evaluation"]["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["level"] != "INFO")
                .filter_map(|r| r["code"].as_str().map(str::to_string))
                .collect();
            (t["kind"].as_str().unwrap_or_default().to_string(), codes)
        })
        .collect()
}

#[tokio::test]
async fn a_stop_and_restart_without_an_event_pages_one_gap_and_a_second_stop_pages_again(
) -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let scan = deployment.services(&deployment.account, "scheduled scan")?;
    let first = deployment.stop_and_start(None).await?;

    let outcome = scan.run().await?;
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    let pages = deployment.pages().await?;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    // The trail failed HIGH on the gap; the account keeps its coverage (it logs again).
    assert_eq!(
        transitions(&pages[0]),
        [("new_failure".to_string(), vec!["LOGGING_GAP".to_string()])]
    );
    assert_eq!(pages[0]["transitions"][0]["evaluation"]["severity"], "HIGH");
    let message = pages[0]["transitions"][0]["evaluation"]["reasons"][0]["message"]
        .as_str()
        .unwrap_or_default();
    let stopped = first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(
        message.contains(&format!("stopped logging at {stopped}")),
        "{message}"
    );

    // The same gap, seen again: nothing to say.
    scan.run().await?;
    assert!(deployment.pages().await?.is_empty());

    // A second stop inside the window is a new page.
    deployment.stop_and_start(Some(first)).await?;
    scan.run().await?;
    let pages = deployment.pages().await?;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0]["transitions"][0]["kind"], "changed");
    assert_eq!(
        pages[0]["transitions"][0]["added"],
        serde_json::json!(["LOGGING_GAP"])
    );
    Ok(())
}

#[tokio::test]
async fn a_stop_logging_replayed_after_the_restart_pages_high_once_naming_the_actor() -> Result<()>
{
    let deployment = Deployment::new(true).await?;
    let stopped = deployment.stop_and_start(None).await?;
    let event_time = stopped.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let stop = change(&deployment, "stop_logging.json", |e| {
        e["detail"]["eventTime"] = event_time.clone().into();
    })?;
    let trail_change = deployment.services(&deployment.account, "trail-change")?;

    let Recheck::Published(outcome) = trail_change.recheck(&stop).await? else {
        anyhow::bail!("a StopLogging is re-checked");
    };
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    let pages = deployment.pages().await?;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    let page = &pages[0];
    assert_eq!(
        transitions(page),
        [("new_failure".into(), vec!["LOGGING_GAP".into()])]
    );
    assert_eq!(page["transitions"][0]["evaluation"]["severity"], "HIGH");
    let actor = &page["cause"]["actor"];
    assert_eq!(
        actor["arn"],
        format!(
            "arn:aws:sts::{}:assumed-role/ci-deploy/mallory",
            deployment.account.id
        )
    );
    assert_eq!(actor["source_ip_address"], "198.51.100.23");
    assert_eq!(actor["event_time"], event_time.as_str());

    // The same event delivered again, and the next hourly scan: nothing new.
    trail_change.recheck(&stop).await?;
    deployment
        .services(&deployment.account, "scheduled scan")?
        .run()
        .await?;
    assert!(deployment.pages().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_stop_logging_whose_stop_the_state_no_longer_shows_still_pages_high() -> Result<()> {
    // An event from an earlier stop, replayed once the trail was stopped and started again
    // since: the status holds only the later stop, the event proves the earlier one.
    let deployment = Deployment::new(true).await?;
    let stop = change(&deployment, "stop_logging.json", |e| {
        e["detail"]["eventTime"] = chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into();
    })?;
    let trail_change = deployment.services(&deployment.account, "trail-change")?;
    trail_change.recheck(&stop).await?;
    let pages = deployment.pages().await?;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0]["transitions"][0]["evaluation"]["severity"], "HIGH");
    assert_eq!(transitions(&pages[0])[0].1, ["LOGGING_GAP"]);
    Ok(())
}

#[tokio::test]
async fn deleting_the_tamper_filter_pages_the_actor_and_the_missing_alarm() -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let group = format!("cloudtrail/{TRAIL}");
    deployment
        .account
        .logs(HOME)
        .delete_metric_filter()
        .log_group_name(&group)
        .filter_name("cloudtrail-tampering")
        .send()
        .await?;
    let deleted = change(&deployment, "delete_log_group.json", |e| {
        e["detail"]["eventName"] = "DeleteMetricFilter".into();
        e["detail"]["requestParameters"] =
            serde_json::json!({"logGroupName": group, "filterName": "cloudtrail-tampering"});
    })?;
    let trail_change = deployment.services(&deployment.account, "trail-change")?;
    let Recheck::Published(_) = trail_change.recheck(&deleted).await? else {
        anyhow::bail!("a DeleteMetricFilter on a trail's group is re-checked");
    };
    let pages = deployment.pages().await?;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(
        transitions(&pages[0]),
        [("new_warning".into(), vec!["TAMPER_ALARM_MISSING".into()])]
    );
    assert_eq!(
        pages[0]["cause"]["actor"]["event_name"],
        "DeleteMetricFilter"
    );
    assert_eq!(
        pages[0]["cause"]["actor"]["arn"],
        format!(
            "arn:aws:sts::{}:assumed-role/ci-deploy/mallory",
            deployment.account.id
        )
    );
    Ok(())
}

#[tokio::test]
async fn a_denied_status_read_pages_the_lost_sight_once_and_its_return_once() -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::AccessDenied).on("GetTrailStatus"));
    let via = deployment.account.via(&proxy.endpoint).await;
    let scan = deployment.services(&via, "scheduled scan")?;

    let blind = scan.run().await?;
    let trail = blind
        .report
        .evaluations
        .iter()
        .find(|e| e.resource_id.ends_with(&format!("trail/{TRAIL}")))
        .context("the trail's evaluation")?;
    assert_eq!(trail.status, trailwatch_core::Status::Error);
    let pages = deployment.pages().await?;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    let kinds: Vec<String> = transitions(&pages[0]).into_iter().map(|(k, _)| k).collect();
    // The trail, and the account whose coverage rests on it.
    assert_eq!(kinds, ["lost_sight", "lost_sight"], "{pages:#?}");
    let email = pages[0]["transitions"][0]["evaluation"]["reasons"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        email.contains("GetTrailStatus failed: AccessDeniedException"),
        "{email}"
    );

    // Still blind: no second page.
    scan.run().await?;
    assert!(deployment.pages().await?.is_empty());

    // Sight is back: one page says so.
    proxy.clear();
    scan.run().await?;
    let pages = deployment.pages().await?;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    let kinds: Vec<String> = transitions(&pages[0]).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["regained", "regained"]);
    Ok(())
}

#[tokio::test]
async fn an_unrelated_role_edit_is_skipped_from_the_listing_alone() -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let edit = change(&deployment, "put_role_policy.json", |e| {
        e["detail"]["requestParameters"]["roleName"] = "SomeAppRole".into();
    })?;
    let trail_change = deployment.services(&deployment.account, "trail-change")?;
    let before = trail_change.inventory.api_calls();
    let Recheck::Skipped { reason } = trail_change.recheck(&edit).await? else {
        anyhow::bail!("a role no trail uses needs no re-check");
    };
    assert!(reason.contains("SomeAppRole"), "{reason}");
    // GetCallerIdentity and one DescribeTrails for the one monitored region, nothing more.
    assert_eq!(trail_change.inventory.api_calls() - before, 2);
    assert!(deployment.pages().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_call_on_trailwatch_itself_pages_high_once_without_a_scan() -> Result<()> {
    let deployment = Deployment::new(true).await?;
    let own = format!("arn:aws:events:{HOME}:{}:rule/tw-*", deployment.account.id);
    let trail_change = deployment.services_with(
        &deployment.account,
        "trail-change",
        &[("TRAILWATCH_MONITOR_RESOURCES", own.as_str())],
    )?;
    let disabled = change(&deployment, "delete_log_group.json", |e| {
        e["source"] = "aws.events".into();
        e["detail"]["eventSource"] = "events.amazonaws.com".into();
        e["detail"]["eventName"] = "DisableRule".into();
        e["detail"]["requestParameters"] = serde_json::json!({"name": "tw-change"});
    })?;
    let before = trail_change.inventory.api_calls();
    let Recheck::Published(outcome) = trail_change.recheck(&disabled).await? else {
        anyhow::bail!("a change to trailwatch itself is paged");
    };
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert_eq!(
        trail_change.inventory.api_calls() - before,
        2,
        "only the listing is read"
    );
    let pages = deployment.pages().await?;
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0]["transitions"][0]["kind"], "monitor_tampered");
    assert_eq!(pages[0]["transitions"][0]["evaluation"]["severity"], "HIGH");
    // Nothing about the monitor goes to Security Hub.
    let findings = deployment.account.findings(HOME).await?;
    assert!(
        findings.keys().all(|id| !id.contains("monitor-intact")),
        "{findings:?}"
    );

    // The same event delivered twice pages once; a rule that is not trailwatch's, never.
    trail_change.recheck(&disabled).await?;
    let other = change(&deployment, "delete_log_group.json", |e| {
        e["source"] = "aws.events".into();
        e["detail"]["eventSource"] = "events.amazonaws.com".into();
        e["detail"]["eventName"] = "DisableRule".into();
        e["detail"]["requestParameters"] = serde_json::json!({"name": "nightly-backup"});
    })?;
    assert!(matches!(
        trail_change.recheck(&other).await?,
        Recheck::Skipped { .. }
    ));
    assert!(deployment.pages().await?.is_empty());
    Ok(())
}
