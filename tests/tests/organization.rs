//! Organisation mode against moto: a management account that creates an organisation with
//! three member accounts, one of which refuses the read role (the fault proxy answers its
//! `AssumeRole` with AccessDenied). The deployment runs in the management account. The root
//! carries the service control policy that keeps everyone but a security role from stopping,
//! deleting or updating trails, as the README recommends.

use anyhow::{Context, Result};
use serde_json::Value;
use trailwatch_aws::flow::Recheck;
use trailwatch_aws::organization::AccountRun;
use trailwatch_aws::Config;
use trailwatch_aws::Services;
use trailwatch_core::{EvaluationKind, ReasonCode, Status};
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{
    cloudtrail_trust, delivery_policy, endpoint, fixture_event, trailwatch_binary, Account,
    TrailSpec,
};

const HOME: &str = "us-east-1";
const READ_ROLE: &str = "trailwatch-read";

struct Organization {
    management: Account,
    /// A healthy trail.
    healthy: Account,
    /// An S3-only trail.
    failing: Account,
    /// Its read role refuses trailwatch.
    refusing: Account,
    topic: String,
    queue: String,
    ledger: String,
    proxy: FaultProxy,
    /// The id of the SCP guarding trails, attached to the root.
    guardrail: String,
    root: String,
}

/// The SCP that keeps everyone but a security role from going dark, in the shape AWS's SCP
/// examples give ("Prevent users from disabling CloudTrail").
fn protect_cloudtrail() -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "ProtectCloudTrail",
        "Effect": "Deny",
        "Action": ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:UpdateTrail"],
        "Resource": "*",
        "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/SecurityAdmin"}}}]})
    .to_string()
}

impl Organization {
    async fn new() -> Result<Self> {
        let management = Account::fresh().await?;
        let members = management
            .create_organization(&["healthy", "failing", "refusing"])
            .await?;
        let [healthy, failing, refusing] =
            <[Account; 3]>::try_from(members).map_err(|_| anyhow::anyhow!("three members"))?;
        for account in [&management, &healthy, &failing, &refusing] {
            account.enable_security_hub(HOME).await?;
        }
        let organizations = aws_sdk_organizations::Client::new(&management.sdk);
        let root = organizations
            .list_roots()
            .send()
            .await?
            .roots()
            .first()
            .and_then(|r| r.id())
            .context("the organisation's root")?
            .to_string();
        let guardrail = organizations
            .create_policy()
            .name("ProtectCloudTrail")
            .description("Only SecurityAdmin may stop, delete or update trails")
            .r#type(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
            .content(protect_cloudtrail())
            .send()
            .await?
            .policy()
            .and_then(|p| p.policy_summary())
            .and_then(|s| s.id())
            .context("the SCP's id")?
            .to_string();
        organizations
            .attach_policy()
            .policy_id(&guardrail)
            .target_id(&root)
            .send()
            .await?;

        // The organisation trail, with everything right, in the management account.
        let group_arn = management
            .log_group(HOME, "cloudtrail/org-audit", Some(365))
            .await?;
        let role_arn = management
            .role(
                "CloudTrailToCloudWatch-org-audit",
                &cloudtrail_trust(&management.id),
                &[("delivery", delivery_policy(&group_arn))],
            )
            .await?;
        management
            .tamper_alarm(HOME, "cloudtrail/org-audit")
            .await?;
        management
            .trail(
                TrailSpec::new("org-audit", HOME)
                    .multi_region()
                    .organization()
                    .log_group(&group_arn)
                    .role(&role_arn),
            )
            .await?;
        healthy.healthy_trail("audit", HOME, true).await?;
        failing.trail(TrailSpec::new("s3-only", HOME)).await?;

        let (topic, queue) = management
            .topic_with_queue(HOME, "trailwatch-alerts")
            .await?;
        let ledger = management
            .ledger_table(HOME, "trailwatch-alert-ledger")
            .await?;
        let proxy = FaultProxy::start(&endpoint()?).await?;
        proxy.add(
            Rule::new(Fault::AccessDenied)
                .on("AssumeRole")
                .mentioning(&refusing.id),
        );
        Ok(Self {
            management,
            healthy,
            failing,
            refusing,
            topic,
            queue,
            ledger,
            proxy,
            guardrail,
            root,
        })
    }

    /// The deployment in the management account, as the template configures it.
    async fn services(&self, trigger: &str) -> Result<Services> {
        let config = Config::from_lookup(|name| match name {
            "TRAILWATCH_REGIONS" => Some(HOME.into()),
            "TRAILWATCH_SNS_TOPIC_ARN" => Some(self.topic.clone()),
            "TRAILWATCH_LEDGER_TABLE" => Some(self.ledger.clone()),
            "TRAILWATCH_ORG_ROLE_NAME" => Some(READ_ROLE.into()),
            _ => None,
        })?;
        let via = self.management.via(&self.proxy.endpoint).await;
        Ok(Services::new(&via.sdk, &config, trigger)?)
    }

    /// The alerts so far, as (account attribute, transitions' finding ids).
    async fn alerts(&self) -> Result<Vec<(String, Vec<String>)>> {
        let mut alerts = Vec::new();
        for envelope in self.management.alerts(HOME, &self.queue).await? {
            let account = envelope["MessageAttributes"]["account"]["Value"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let records: Value =
                serde_json::from_str(envelope["Message"].as_str().context("Message")?)?;
            let ids = records["transitions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["finding_id"].as_str().map(str::to_string))
                .collect();
            alerts.push((account, ids));
        }
        Ok(alerts)
    }
}

async fn compliance(account: &Account, trail: &str) -> Result<(String, String)> {
    let finding = account.trail_finding(HOME, trail).await?;
    Ok((
        finding.aws_account_id().unwrap_or_default().to_string(),
        finding
            .compliance()
            .and_then(|c| c.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    ))
}

#[tokio::test]
async fn every_account_is_scanned_and_recorded_in_its_own_security_hub() -> Result<()> {
    let org = Organization::new().await?;
    let services = org.services("scheduled scan").await?;
    let runs = services
        .run_organization()
        .await
        .context("organisation mode is configured")??;

    let ids: Vec<&str> = runs.iter().map(|r| r.account().id.as_str()).collect();
    let mut expected = vec![
        org.management.id.as_str(),
        org.healthy.id.as_str(),
        org.failing.id.as_str(),
        org.refusing.id.as_str(),
    ];
    expected.sort();
    assert_eq!(ids, expected, "every active account, in id order");

    for run in &runs {
        match run {
            AccountRun::Scanned { account, outcome } => {
                assert_ne!(account.id, org.refusing.id);
                assert_eq!(outcome.report.account_id, account.id);
                assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
            }
            AccountRun::Unreachable {
                account,
                evaluation,
                ..
            } => {
                assert_eq!(account.id, org.refusing.id);
                assert_eq!(evaluation.status, Status::Error);
                assert_eq!(evaluation.kind, EvaluationKind::Account);
                let message = &evaluation.reasons[0].message;
                assert!(
                    message.contains(&format!(
                        "could not assume arn:aws:iam::{}:role/{READ_ROLE}",
                        org.refusing.id
                    )) && message.contains("AccessDenied"),
                    "{message}"
                );
            }
        }
    }

    // Each verdict is in its own account's Security Hub, filed under that account.
    assert_eq!(
        compliance(&org.healthy, "audit").await?,
        (org.healthy.id.clone(), "PASSED".into())
    );
    assert_eq!(
        compliance(&org.failing, "s3-only").await?,
        (org.failing.id.clone(), "FAILED".into())
    );
    assert_eq!(
        compliance(&org.management, "org-audit").await?,
        (org.management.id.clone(), "PASSED".into())
    );
    assert!(org
        .management
        .findings(HOME)
        .await?
        .keys()
        .all(|id| id.contains(&org.management.id)));

    // The organisation trail is judged in full where it lives: its log group and role were
    // read and passed, not handed off to another account.
    let management_run = runs
        .iter()
        .find_map(|r| match r {
            AccountRun::Scanned { account, outcome } if account.id == org.management.id => {
                Some(outcome)
            }
            _ => None,
        })
        .context("the management account's run")?;
    let org_trail = management_run
        .report
        .evaluations
        .iter()
        .find(|e| e.kind == EvaluationKind::Trail)
        .context("the organisation trail's evaluation")?;
    assert_eq!(org_trail.status, Status::Pass, "{org_trail:#?}");
    assert!(org_trail
        .reasons
        .iter()
        .all(|r| r.code != ReasonCode::CwlChecksDelegated));
    assert!(org_trail
        .trail
        .as_ref()
        .is_some_and(|t| t.is_organization_trail));

    // One page, about the failing member, through the one central topic.
    let alerts = org.alerts().await?;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].0, org.failing.id);
    assert!(alerts[0].1.iter().all(|id| id.contains(&org.failing.id)));
    Ok(())
}

/// The account evaluation of `account` in `runs`.
fn account_verdict<'a>(
    runs: &'a [AccountRun],
    account: &str,
) -> Result<&'a trailwatch_core::Evaluation> {
    runs.iter()
        .find_map(|r| match r {
            AccountRun::Scanned {
                account: a,
                outcome,
            } if a.id == account => outcome
                .report
                .evaluations
                .iter()
                .find(|e| e.kind == EvaluationKind::Account),
            _ => None,
        })
        .with_context(|| format!("no account verdict for {account}"))
}

#[tokio::test]
async fn members_without_the_trail_guardrail_are_warned_and_the_management_account_told_why(
) -> Result<()> {
    let org = Organization::new().await?;
    let services = org.services("scheduled scan").await?;
    let runs = services
        .run_organization()
        .await
        .context("organisation mode is configured")??;
    // The SCP on the root guards every member.
    let healthy = account_verdict(&runs, &org.healthy.id)?;
    assert_eq!(healthy.status, Status::Pass, "{healthy:#?}");
    assert!(healthy
        .reasons
        .iter()
        .all(|r| r.code != ReasonCode::TamperGuardrailMissing));
    // No SCP binds the management account, and its verdict says so.
    let management = account_verdict(&runs, &org.management.id)?;
    assert_eq!(management.status, Status::Pass, "{management:#?}");
    assert!(management
        .reasons
        .iter()
        .any(|r| r.code == ReasonCode::TamperGuardrailNotApplicable));

    aws_sdk_organizations::Client::new(&org.management.sdk)
        .detach_policy()
        .policy_id(&org.guardrail)
        .target_id(&org.root)
        .send()
        .await?;
    let runs = services
        .run_organization()
        .await
        .context("organisation mode is configured")??;
    let healthy = account_verdict(&runs, &org.healthy.id)?;
    assert_eq!(healthy.status, Status::Warning, "{healthy:#?}");
    let missing = healthy
        .reasons
        .iter()
        .find(|r| r.code == ReasonCode::TamperGuardrailMissing)
        .context("the guardrail is missing")?;
    assert!(
        missing.message.contains(&format!("root {}", org.root)),
        "{}",
        missing.message
    );
    assert!(account_verdict(&runs, &org.management.id)?
        .reasons
        .iter()
        .all(|r| r.code != ReasonCode::TamperGuardrailMissing));
    Ok(())
}

#[tokio::test]
async fn a_change_in_a_member_account_is_rechecked_through_its_role() -> Result<()> {
    let org = Organization::new().await?;
    org.services("scheduled scan")
        .await?
        .run_organization()
        .await
        .context("organisation mode is configured")??;
    org.alerts().await?;

    org.healthy
        .cloudtrail(HOME)
        .stop_logging()
        .name("audit")
        .send()
        .await?;
    let event = fixture_event("stop_logging.json", &org.healthy.id)?;
    let change = trailwatch_core::event::parse(event.to_string().as_bytes())?;
    let trail_change = org.services("trail-change").await?;
    let Recheck::Published(outcome) = trail_change.recheck_in_organization(&change).await? else {
        anyhow::bail!("the StopLogging re-check should publish");
    };
    assert_eq!(outcome.report.account_id, org.healthy.id);
    assert_eq!(
        compliance(&org.healthy, "audit").await?,
        (org.healthy.id.clone(), "FAILED".into())
    );
    let alerts = org.alerts().await?;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].0, org.healthy.id);

    // The member that refuses the role: the event cannot be re-checked, and says why.
    let event = fixture_event("stop_logging.json", &org.refusing.id)?;
    let change = trailwatch_core::event::parse(event.to_string().as_bytes())?;
    let refused = trail_change
        .recheck_in_organization(&change)
        .await
        .expect_err("the role refuses");
    assert!(refused.to_string().contains(&org.refusing.id), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_scans_the_organisation_with_org() -> Result<()> {
    let org = Organization::new().await?;
    let scan_org = |format: &str| {
        let mut command = std::process::Command::new(trailwatch_binary());
        command
            .args(["scan", "--org", "--role-name", READ_ROLE, "--regions", HOME])
            .args(["--output", format])
            .env_remove("AWS_PROFILE");
        for (key, value) in org.management.env() {
            command.env(key, value);
        }
        command.env("AWS_ENDPOINT_URL", &org.proxy.endpoint);
        // Blocking; the proxy answers the child on the runtime's other thread meanwhile.
        tokio::task::block_in_place(|| command.output())
    };
    let output = scan_org("json")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The failing member's FAIL decides the exit code over the refusing member's ERROR.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let document: Value = serde_json::from_slice(&output.stdout)?;
    let accounts = document["accounts"].as_array().context("accounts")?;
    assert_eq!(accounts.len(), 4, "{document:#}");
    let by_id = |id: &str| {
        accounts
            .iter()
            .find(|a| a["account_id"] == id)
            .cloned()
            .unwrap_or_default()
    };
    assert!(by_id(&org.failing.id)["report"]["summary"]["fail"]
        .as_u64()
        .is_some_and(|n| n > 0));
    assert_eq!(by_id(&org.healthy.id)["report"]["summary"]["fail"], 0);
    assert!(by_id(&org.refusing.id)["error"]
        .as_str()
        .is_some_and(|e| e.contains("AccessDenied")));
    // Without --publish nothing is recorded anywhere.
    assert!(org.failing.findings(HOME).await?.is_empty());
    assert!(org.alerts().await?.is_empty());

    // The same organisation as one page: a matrix row per account, the unreachable one
    // unreadable, and each member's trails in the rows.
    let output = scan_org("html")?;
    assert_eq!(output.status.code(), Some(1));
    let page = scraper::Html::parse_document(&String::from_utf8(output.stdout)?);
    let select = |css: &str| {
        let selector = scraper::Selector::parse(css).unwrap();
        page.select(&selector)
            .map(|e| {
                let state = e.value().attr("data-state").unwrap_or_default().to_string();
                (state, e.text().collect::<String>())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(select("#coverage tbody tr").len(), 4);
    let cell = |account: &Account| {
        let cells = select(&format!(
            r#"#coverage tr[data-account="{}"] td[data-region="{HOME}"]"#,
            account.id
        ));
        assert_eq!(cells.len(), 1, "one cell for {}", account.id);
        cells[0].clone()
    };
    assert_eq!(cell(&org.refusing).0, "unreadable");
    let refusing_rows = select(&format!(
        r#"#evaluations tr[data-account="{}"][data-status="ERROR"]"#,
        org.refusing.id
    ));
    assert_eq!(
        refusing_rows.len(),
        1,
        "the unreachable account's ERROR row"
    );
    let (state, trails) = cell(&org.healthy);
    assert_eq!(state, "covered");
    assert!(trails.contains("audit"), "{trails}");
    let failing_rows = select(&format!(
        r#"#evaluations tr[data-account="{}"][data-kind="trail"]"#,
        org.failing.id
    ));
    assert!(
        failing_rows
            .iter()
            .any(|(_, text)| text.contains("s3-only")),
        "{failing_rows:?}"
    );

    // --org without a role name is a usage error that says what is missing.
    let mut missing = std::process::Command::new(trailwatch_binary());
    missing
        .args(["scan", "--org"])
        .env_remove("TRAILWATCH_ORG_ROLE_NAME");
    for (key, value) in org.management.env() {
        missing.env(key, value);
    }
    let output = tokio::task::block_in_place(|| missing.output())?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--role-name"));
    Ok(())
}

/// A warm trail-change function asks STS who it is once, not for every member event: two
/// re-checks cost one central `GetCallerIdentity` plus one per member scan.
#[tokio::test]
async fn the_deployment_asks_who_it_is_once_per_cold_start() -> Result<()> {
    let org = Organization::new().await?;
    let trail_change = org.services("trail-change").await?;
    let event = fixture_event("stop_logging.json", &org.healthy.id)?;
    let change = trailwatch_core::event::parse(event.to_string().as_bytes())?;
    for _ in 0..2 {
        trail_change.recheck_in_organization(&change).await?;
    }
    let identities = org
        .proxy
        .seen()
        .iter()
        .filter(|(_, operation)| operation == "GetCallerIdentity")
        .count();
    assert_eq!(
        identities,
        1 + 2,
        "one for the deployment, one per member scan"
    );
    Ok(())
}
