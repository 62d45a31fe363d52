//! `trailwatch fix` on moto, end to end: an account with one trail broken per fixable
//! reason, a dry run that changes nothing, an apply after which a re-scan finds no FAIL left,
//! and a second apply that changes nothing.

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Output;
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{cloudtrail_trust, delivery_policy, endpoint, Account, TrailSpec};

const REGION: &str = "us-east-1";

fn trailwatch(account: &Account, args: &[&str]) -> Result<Output> {
    Ok(account.trailwatch().args(args).output()?)
}

/// A trail's name, and its reasons as (code, level).
type TrailReasons = (String, Vec<(String, String)>);

/// Every trail's reasons by trail name, from `scan --output json`.
fn trail_reasons(account: &Account) -> Result<Vec<TrailReasons>> {
    let output = trailwatch(account, &["scan", "--regions", REGION, "--output", "json"])?;
    let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "scan JSON; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok(report["evaluations"]
        .as_array()
        .context("evaluations")?
        .iter()
        .filter(|e| e["kind"] == "trail")
        .map(|e| {
            let reasons = e["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r["code"].as_str().unwrap_or_default().to_string(),
                        r["level"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            (
                e["trail"]["name"].as_str().unwrap_or_default().to_string(),
                reasons,
            )
        })
        .collect())
}

/// What `fix` could change, as text: trails with their settings and selectors, log groups with
/// retention, metric filters, alarms, roles with their trust and every policy.
async fn state(account: &Account) -> Result<BTreeSet<String>> {
    let mut state = BTreeSet::new();
    let cloudtrail = account.cloudtrail(REGION);
    for trail in cloudtrail.describe_trails().send().await?.trail_list() {
        let name = trail.name().unwrap_or_default();
        let status = cloudtrail.get_trail_status().name(name).send().await?;
        let selectors = cloudtrail
            .get_event_selectors()
            .trail_name(name)
            .send()
            .await?;
        state.insert(format!(
            "selectors {name} {:?} {:?}",
            selectors.event_selectors(),
            selectors.advanced_event_selectors()
        ));
        state.insert(format!(
            "trail {name} group={:?} role={:?} validation={:?} logging={:?}",
            trail.cloud_watch_logs_log_group_arn(),
            trail.cloud_watch_logs_role_arn(),
            trail.log_file_validation_enabled(),
            status.is_logging()
        ));
    }
    let logs = account.logs(REGION);
    for group in logs.describe_log_groups().send().await?.log_groups() {
        let name = group.log_group_name().unwrap_or_default();
        state.insert(format!(
            "group {name} retention={:?}",
            group.retention_in_days()
        ));
        for filter in logs
            .describe_metric_filters()
            .log_group_name(name)
            .send()
            .await?
            .metric_filters()
        {
            state.insert(format!(
                "filter {name} {:?} {:?}",
                filter.filter_name(),
                filter.filter_pattern()
            ));
        }
    }
    for alarm in account
        .cloudwatch(REGION)
        .describe_alarms()
        .send()
        .await?
        .metric_alarms()
    {
        state.insert(format!(
            "alarm {:?} {:?} {:?}",
            alarm.alarm_name(),
            alarm.metric_name(),
            alarm.alarm_actions()
        ));
    }
    let iam = account.iam();
    for role in iam.list_roles().send().await?.roles() {
        let name = role.role_name();
        state.insert(format!(
            "role {name} trust={:?}",
            role.assume_role_policy_document()
        ));
        for policy in iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await?
            .policy_names()
        {
            let document = iam
                .get_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await?;
            state.insert(format!(
                "policy {name}/{policy} {}",
                document.policy_document()
            ));
        }
    }
    Ok(state)
}

/// One trail per fixable reason, each broken the way people break it.
async fn broken_account() -> Result<(Account, String)> {
    let account = Account::fresh().await?;
    let id = account.id.clone();
    let group = |name: &str| format!("arn:aws:logs:{REGION}:{id}:log-group:{name}:*");
    let working_role = |trail: &str| {
        let group = format!("arn:aws:logs:{REGION}:{id}:log-group:cloudtrail/{trail}:*");
        (
            format!("CloudTrailToCloudWatch-{trail}"),
            vec![("delivery", delivery_policy(&group))],
        )
    };

    // CWL_NOT_CONFIGURED: S3 only.
    account.trail(TrailSpec::new("s3-only", REGION)).await?;
    // LOGGING_STOPPED.
    let stopped = account.healthy_trail("stopped", REGION, false).await?;
    account
        .cloudtrail(REGION)
        .stop_logging()
        .name(&stopped.arn)
        .send()
        .await?;
    // CWL_RETENTION_UNSET, TAMPER_ALARM_MISSING and LOG_FILE_VALIDATION_DISABLED on one trail:
    // a group kept forever, no alarm, validation off.
    let forever = account
        .log_group(REGION, "cloudtrail/forever", None)
        .await?;
    let (role_name, policies) = working_role("forever");
    let forever_role = account
        .role(&role_name, &cloudtrail_trust(&id), &policies)
        .await?;
    account
        .trail(
            TrailSpec::new("forever", REGION)
                .log_group(&forever)
                .role(&forever_role)
                .without_validation(),
        )
        .await?;
    // CWL_ROLE_TRUST_INVALID: the role trusts EC2.
    let trust_group = account
        .log_group(REGION, "cloudtrail/ec2-trust", Some(365))
        .await?;
    account.tamper_alarm(REGION, "cloudtrail/ec2-trust").await?;
    let ec2_trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let (role_name, policies) = working_role("ec2-trust");
    let ec2_role = account.role(&role_name, &ec2_trust, &policies).await?;
    account
        .trail(
            TrailSpec::new("ec2-trust", REGION)
                .log_group(&trust_group)
                .role(&ec2_role),
        )
        .await?;
    // CWL_ROLE_PERMISSION_MISSING: the policy names the group without `:*`.
    let no_star_group = account
        .log_group(REGION, "cloudtrail/no-star", Some(365))
        .await?;
    account.tamper_alarm(REGION, "cloudtrail/no-star").await?;
    let bare = no_star_group.trim_end_matches(":*").to_string();
    let no_star_role = account
        .role(
            "CloudTrailToCloudWatch-no-star",
            &cloudtrail_trust(&id),
            &[("delivery", delivery_policy(&bare))],
        )
        .await?;
    account
        .trail(
            TrailSpec::new("no-star", REGION)
                .log_group(&no_star_group)
                .role(&no_star_role),
        )
        .await?;
    // CWL_LOG_GROUP_MISSING: the group was deleted.
    let (role_name, policies) = working_role("no-group");
    let no_group_role = account
        .role(&role_name, &cloudtrail_trust(&id), &policies)
        .await?;
    account
        .trail(
            TrailSpec::new("no-group", REGION)
                .log_group(&group("cloudtrail/no-group"))
                .role(&no_group_role),
        )
        .await?;
    // CWL_ROLE_MISSING: the role was deleted.
    let no_role_group = account
        .log_group(REGION, "cloudtrail/no-role", Some(365))
        .await?;
    account.tamper_alarm(REGION, "cloudtrail/no-role").await?;
    account
        .trail(
            TrailSpec::new("no-role", REGION)
                .log_group(&no_role_group)
                .role(&format!(
                    "arn:aws:iam::{id}:role/delivery/CloudTrailToCloudWatch-no-role"
                )),
        )
        .await?;

    // MANAGEMENT_EVENTS_EXCLUDED: a data-events trail whose one selector drops management
    // events.
    let data_only = account.healthy_trail("data-only", REGION, false).await?;
    {
        use aws_sdk_cloudtrail::types::{DataResource, EventSelector, ReadWriteType};
        account
            .cloudtrail(REGION)
            .put_event_selectors()
            .trail_name(&data_only.arn)
            .event_selectors(
                EventSelector::builder()
                    .read_write_type(ReadWriteType::All)
                    .include_management_events(false)
                    .data_resources(
                        DataResource::builder()
                            .r#type("AWS::S3::Object")
                            .values(format!("arn:aws:s3:::{}/", account.bucket))
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await?;
    }

    let topic = aws_sdk_sns::Client::new(&account.regional(REGION))
        .create_topic()
        .name("security-alerts")
        .send()
        .await?
        .topic_arn()
        .context("the topic")?
        .to_string();
    Ok((account, topic))
}

/// `trailwatch fix --all` in the test region, the tamper alarm paging `topic`, then `extra`.
fn fix_all(account: &Account, topic: &str, extra: &[&str]) -> Result<Output> {
    let mut args = vec![
        "fix",
        "--all",
        "--regions",
        REGION,
        "--alarm-topic-arn",
        topic,
    ];
    args.extend_from_slice(extra);
    trailwatch(account, &args)
}

fn codes_of(reasons: &[TrailReasons], trail: &str) -> Vec<String> {
    reasons
        .iter()
        .find(|(name, _)| name == trail)
        .map(|(_, r)| r.iter().map(|(code, _)| code.clone()).collect())
        .unwrap_or_else(|| panic!("no trail {trail} in {reasons:?}"))
}

#[tokio::test]
async fn fix_plans_without_changing_then_fixes_every_reason_once() -> Result<()> {
    let (account, topic) = broken_account().await?;
    let before = trail_reasons(&account)?;
    for (trail, code) in [
        ("s3-only", "CWL_NOT_CONFIGURED"),
        ("stopped", "LOGGING_STOPPED"),
        ("forever", "CWL_RETENTION_UNSET"),
        ("forever", "TAMPER_ALARM_MISSING"),
        ("forever", "LOG_FILE_VALIDATION_DISABLED"),
        ("ec2-trust", "CWL_ROLE_TRUST_INVALID"),
        ("no-star", "CWL_ROLE_PERMISSION_MISSING"),
        ("no-group", "CWL_LOG_GROUP_MISSING"),
        ("no-role", "CWL_ROLE_MISSING"),
        ("data-only", "MANAGEMENT_EVENTS_EXCLUDED"),
    ] {
        assert!(
            codes_of(&before, trail).contains(&code.to_string()),
            "{trail} is seeded with {code}: {before:?}"
        );
    }
    let fix = |extra: &[&str]| fix_all(&account, &topic, extra);

    // A dry run prints the plan and changes nothing.
    let untouched = state(&account).await?;
    let dry = fix(&[])?;
    let plan = String::from_utf8(dry.stdout)?;
    assert_eq!(dry.status.code(), Some(0), "{plan}");
    assert!(plan.contains("Dry run: nothing was changed"), "{plan}");
    for command in [
        "aws cloudtrail start-logging --region us-east-1 --name stopped",
        "aws logs put-retention-policy --region us-east-1 --log-group-name cloudtrail/forever --retention-in-days 365",
        "aws cloudtrail update-trail --region us-east-1 --name forever --enable-log-file-validation",
        "aws iam update-assume-role-policy --role-name CloudTrailToCloudWatch-ec2-trust",
        "aws logs create-log-group --region us-east-1 --log-group-name cloudtrail/no-group",
        "aws iam create-role --role-name CloudTrailToCloudWatch-no-role --path /delivery/",
        "aws logs create-log-group --region us-east-1 --log-group-name /aws/cloudtrail/s3-only",
        ":log-group:/aws/cloudtrail/s3-only:*",
        "aws logs put-metric-filter --region us-east-1 --log-group-name cloudtrail/forever",
        "aws cloudtrail put-event-selectors --region us-east-1 --trail-name data-only --event-selectors",
    ] {
        assert!(plan.contains(command), "the plan has `{command}`:\n{plan}");
    }
    // The trust policy being replaced is shown, so nothing is lost.
    assert!(plan.contains("ec2.amazonaws.com"), "{plan}");
    assert_eq!(
        state(&account).await?,
        untouched,
        "a dry run changed the account"
    );

    // Apply: every step runs, and the re-evaluation finds no FAIL left.
    let applied = fix(&["--apply"])?;
    let transcript = String::from_utf8(applied.stdout)?;
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{transcript}\n{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert!(!transcript.contains('✗'), "{transcript}");
    let after = trail_reasons(&account)?;
    for (trail, reasons) in &after {
        let left: Vec<&(String, String)> = reasons
            .iter()
            .filter(|(code, level)| level != "INFO" && code != "LOGGING_GAP")
            .collect();
        assert!(left.is_empty(), "trail {trail} still has {left:?}");
    }
    // The user's own policy on the no-star role is left as it was, beside trailwatch's.
    let kept = account
        .iam()
        .get_role_policy()
        .role_name("CloudTrailToCloudWatch-no-star")
        .policy_name("delivery")
        .send()
        .await?;
    assert!(
        !kept.policy_document().contains(":*"),
        "the user's policy was edited"
    );

    // The data-event selector is still there, beside the management one.
    let selectors = account
        .cloudtrail(REGION)
        .get_event_selectors()
        .trail_name("data-only")
        .send()
        .await?;
    let kept: Vec<String> = selectors
        .event_selectors()
        .iter()
        .flat_map(|s| s.data_resources())
        .flat_map(|d| d.values())
        .cloned()
        .collect();
    assert_eq!(kept, vec![format!("arn:aws:s3:::{}/", account.bucket)]);

    // A second apply finds nothing to do, and changes nothing.
    let fixed = state(&account).await?;
    let again = fix(&["--apply"])?;
    let second = String::from_utf8(again.stdout)?;
    assert_eq!(again.status.code(), Some(0), "{second}");
    assert!(second.contains("Nothing to change."), "{second}");
    assert_eq!(
        state(&account).await?,
        fixed,
        "a second apply changed the account"
    );
    Ok(())
}

/// Runs `trailwatch` through `proxy`; blocking, while the proxy answers on the runtime's
/// other thread.
fn trailwatch_via(account: &Account, proxy: &FaultProxy, args: &[&str]) -> Result<Output> {
    let mut command = account.trailwatch();
    command.args(args).env("AWS_ENDPOINT_URL", &proxy.endpoint);
    Ok(tokio::task::block_in_place(|| command.output())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_step_stops_the_apply_and_says_what_was_not_done() -> Result<()> {
    let account = Account::fresh().await?;
    account.trail(TrailSpec::new("s3-only", REGION)).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::AccessDenied).on("PutRetentionPolicy"));
    let output = trailwatch_via(
        &account,
        &proxy,
        &["fix", "s3-only", "--region", REGION, "--apply"],
    )?;
    let transcript = String::from_utf8(output.stdout)?;
    assert_eq!(output.status.code(), Some(1), "{transcript}");
    assert!(transcript.contains("✓ 1. Create log group"), "{transcript}");
    assert!(transcript.contains("✗ 2."), "{transcript}");
    assert!(transcript.contains("AccessDenied"), "{transcript}");
    assert!(
        transcript.contains("Done: step 1. Not done: steps 2 to"),
        "{transcript}"
    );
    // Nothing after the refusal ran: the trail still sends only to S3, and no role was made.
    let reasons = trail_reasons(&account)?;
    assert_eq!(codes_of(&reasons, "s3-only"), vec!["CWL_NOT_CONFIGURED"]);
    assert!(account
        .iam()
        .get_role()
        .role_name("CloudTrailRoleForCloudWatchLogs_s3-only")
        .send()
        .await
        .is_err());

    // Run again once the refusal is gone: the log group made before counts as done.
    proxy.clear();
    let output = trailwatch_via(
        &account,
        &proxy,
        &["fix", "s3-only", "--region", REGION, "--apply"],
    )?;
    let transcript = String::from_utf8(output.stdout)?;
    assert!(
        transcript.contains("(already there, left as it is)"),
        "{transcript}"
    );
    Ok(())
}

/// `.venv-infra`'s cfn-lint (`make infra-venv`, which `make test` runs first).
fn cfn_lint() -> std::path::PathBuf {
    std::env::var_os("TRAILWATCH_CFN_LINT")
        .map(Into::into)
        .unwrap_or_else(|| trailwatch_tests::workspace_dir().join(".venv-infra/bin/cfn-lint"))
}

/// The blocks of `body` named `kind` (`resource`, `import`), as (labels, body).
fn blocks<'a>(body: &'a hcl::Body, kind: &str) -> Vec<(Vec<String>, &'a hcl::Body)> {
    body.blocks()
        .filter(|b| b.identifier() == kind)
        .map(|b| {
            let labels = b.labels().iter().map(|l| l.as_str().to_string()).collect();
            (labels, b.body())
        })
        .collect()
}

fn attribute<'a>(body: &'a hcl::Body, key: &str) -> Option<&'a hcl::Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn string_attribute(body: &hcl::Body, key: &str) -> Option<String> {
    match attribute(body, key)? {
        hcl::Expression::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The resource of `kind` whose `key` attribute is `value`.
fn resource_where<'a>(
    body: &'a hcl::Body,
    kind: &str,
    key: &str,
    value: &str,
) -> Option<&'a hcl::Body> {
    blocks(body, "resource")
        .into_iter()
        .find(|(labels, b)| labels[0] == kind && string_attribute(b, key).as_deref() == Some(value))
        .map(|(_, b)| b)
}

#[tokio::test]
async fn the_fix_as_terraform_and_cloudformation_parses_lints_and_changes_nothing() -> Result<()> {
    let (account, topic) = broken_account().await?;
    let id = &account.id;
    let trail_arn = |name: &str| format!("arn:aws:cloudtrail:{REGION}:{id}:trail/{name}");
    // What the fix does not change must be declared too, or the import would take it away:
    // the S3-only trail gets a key prefix, a KMS key and a tag.
    let key = format!("arn:aws:kms:{REGION}:{id}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let cloudtrail = account.cloudtrail(REGION);
    cloudtrail
        .update_trail()
        .name("s3-only")
        .s3_key_prefix("audit")
        .kms_key_id(&key)
        .send()
        .await?;
    cloudtrail
        .add_tags()
        .resource_id(trail_arn("s3-only"))
        .tags_list(
            aws_sdk_cloudtrail::types::Tag::builder()
                .key("team")
                .value("security")
                .build()?,
        )
        .send()
        .await?;
    // A rerun after a partial --apply: the role the plan would create for the S3-only trail
    // is there already (trusting EC2). Code must take it in, not create it again.
    let ec2_trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    account
        .role("CloudTrailRoleForCloudWatchLogs_s3-only", &ec2_trust, &[])
        .await?;
    let untouched = state(&account).await?;
    let out = std::env::temp_dir().join(format!("trailwatch-fix-emit-{}", account.id));
    let emit = |format: &str| {
        fix_all(
            &account,
            &topic,
            &["--emit", format, "--out", out.to_str().unwrap()],
        )
    };

    // Terraform: valid HCL that declares the fix, and takes in what exists.
    let output = emit("terraform")?;
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{transcript}");
    let text = std::fs::read_to_string(out.join("trailwatch-fix.tf"))?;
    let body = hcl::parse(&text).with_context(|| format!("the emitted Terraform:\n{text}"))?;
    let imported: BTreeSet<String> = blocks(&body, "import")
        .iter()
        .filter_map(|(_, b)| string_attribute(b, "id"))
        .collect();
    // Only the trails whose settings change are declared: a missing group or a role's trust
    // is fixed beside the trail, not in it.
    for trail in ["s3-only", "stopped", "forever", "data-only"] {
        assert!(
            imported.contains(&trail_arn(trail)),
            "{trail} is imported:\n{text}"
        );
    }
    assert!(!imported.contains(&trail_arn("no-group")), "{text}");
    // Existing pieces the fix changes come in too: a group kept forever, a role trusting EC2.
    assert!(imported.contains("cloudtrail/forever"), "{text}");
    assert!(
        imported.contains("CloudTrailToCloudWatch-ec2-trust"),
        "{text}"
    );
    assert!(
        imported.contains("CloudTrailRoleForCloudWatchLogs_s3-only"),
        "the role already there is imported:\n{text}"
    );
    // A deleted role comes back on the path the trail names.
    let recreated = resource_where(
        &body,
        "aws_iam_role",
        "name",
        "CloudTrailToCloudWatch-no-role",
    )
    .context("the recreated role")?;
    assert_eq!(
        string_attribute(recreated, "path").as_deref(),
        Some("/delivery/")
    );
    // The group to create is not imported, and keeps events a year.
    assert!(!imported.contains("/aws/cloudtrail/s3-only"), "{text}");
    let new_group = resource_where(
        &body,
        "aws_cloudwatch_log_group",
        "name",
        "/aws/cloudtrail/s3-only",
    )
    .context("the new group")?;
    assert_eq!(
        attribute(new_group, "retention_in_days"),
        Some(&hcl::Expression::from(365))
    );
    let s3_only = resource_where(&body, "aws_cloudtrail", "name", "s3-only").context("s3-only")?;
    assert_eq!(
        string_attribute(s3_only, "cloud_watch_logs_group_arn"),
        Some(format!(
            "arn:aws:logs:{REGION}:{id}:log-group:/aws/cloudtrail/s3-only:*"
        ))
    );
    assert_eq!(
        string_attribute(s3_only, "cloud_watch_logs_role_arn"),
        Some(format!(
            "arn:aws:iam::{id}:role/CloudTrailRoleForCloudWatchLogs_s3-only"
        ))
    );
    assert_eq!(
        string_attribute(s3_only, "s3_bucket_name").as_deref(),
        Some(account.bucket.as_str())
    );
    // It is repointed only once its group, role and the role's grant exist.
    let waits_for =
        hcl::format::to_string(attribute(s3_only, "depends_on").context("depends_on")?)?;
    for kind in [
        "aws_iam_role.",
        "aws_iam_role_policy.",
        "aws_cloudwatch_log_group.",
    ] {
        assert!(waits_for.contains(kind), "{kind}: {waits_for}");
    }
    assert_eq!(
        string_attribute(s3_only, "s3_key_prefix").as_deref(),
        Some("audit")
    );
    assert_eq!(string_attribute(s3_only, "kms_key_id"), Some(key.clone()));
    // Tags and selectors the fix does not change are left to whoever owns them: an exemption
    // is a tag, and a later apply must not take it away.
    let ignored = s3_only
        .blocks()
        .find(|b| b.identifier() == "lifecycle")
        .and_then(|l| attribute(l.body(), "ignore_changes"))
        .map(hcl::format::to_string)
        .transpose()?
        .unwrap_or_default();
    for attribute in ["tags", "event_selector", "insight_selector"] {
        assert!(ignored.contains(attribute), "{attribute}: {ignored}");
    }
    assert!(!s3_only.blocks().any(|b| b.identifier() == "event_selector"));
    let stopped = resource_where(&body, "aws_cloudtrail", "name", "stopped").context("stopped")?;
    assert_eq!(
        attribute(stopped, "enable_logging"),
        Some(&hcl::Expression::Bool(true))
    );
    let forever = resource_where(&body, "aws_cloudtrail", "name", "forever").context("forever")?;
    assert_eq!(
        attribute(forever, "enable_log_file_validation"),
        Some(&hcl::Expression::Bool(true))
    );
    // The data-event selector is declared beside the management one it gains.
    let data_only =
        resource_where(&body, "aws_cloudtrail", "name", "data-only").context("data-only")?;
    let selectors: Vec<&hcl::Body> = data_only
        .blocks()
        .filter(|b| b.identifier() == "event_selector")
        .map(|b| b.body())
        .collect();
    assert_eq!(selectors.len(), 2, "{text}");
    assert!(selectors
        .iter()
        .any(|s| s.blocks().any(|b| b.identifier() == "data_resource")));
    // The role trusts CloudTrail for this trail only, through jsonencode.
    let role = resource_where(
        &body,
        "aws_iam_role",
        "name",
        "CloudTrailRoleForCloudWatchLogs_s3-only",
    )
    .context("the new role")?;
    let trust = attribute(role, "assume_role_policy").context("trust")?;
    assert!(matches!(trust, hcl::Expression::FuncCall(_)), "{trust:?}");
    let trust_text = hcl::format::to_string(trust)?;
    assert!(trust_text.contains(&trail_arn("s3-only")), "{trust_text}");
    assert!(text.contains(":log-stream:*"), "{text}");
    let alarm = blocks(&body, "resource")
        .into_iter()
        .find(|(labels, _)| labels[0] == "aws_cloudwatch_metric_alarm")
        .context("an alarm")?
        .1;
    assert_eq!(
        attribute(alarm, "alarm_actions"),
        Some(&hcl::Expression::from(vec![topic.clone()]))
    );
    // Nothing declared can be destroyed by a later apply.
    for (labels, resource) in blocks(&body, "resource") {
        let lifecycle = resource
            .blocks()
            .find(|b| b.identifier() == "lifecycle")
            .with_context(|| format!("{labels:?} has a lifecycle"))?;
        assert_eq!(
            attribute(lifecycle.body(), "prevent_destroy"),
            Some(&hcl::Expression::Bool(true)),
            "{labels:?}"
        );
    }

    // CloudFormation: a template that cfn-lint passes, taking in the trails in two phases.
    let output = emit("cloudformation")?;
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{transcript}");
    let template_path = out.join(format!("trailwatch-fix-{REGION}.yaml"));
    assert!(
        transcript.contains("--import-existing-resources"),
        "{transcript}"
    );
    let lint = std::process::Command::new(cfn_lint())
        .arg(&template_path)
        .output()
        .context("running cfn-lint (make infra-venv)")?;
    assert!(
        lint.status.success(),
        "cfn-lint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let template: Value = serde_norway::from_str(&std::fs::read_to_string(&template_path)?)?;
    let resources = template["Resources"].as_object().context("Resources")?;
    let of_type =
        |kind: &str| -> Vec<&Value> { resources.values().filter(|r| r["Type"] == kind).collect() };
    assert_eq!(of_type("AWS::CloudTrail::Trail").len(), 4, "{template:#}");
    for resource in resources.values() {
        assert_eq!(resource["DeletionPolicy"], "Retain", "{resource:#}");
    }
    let s3_only = of_type("AWS::CloudTrail::Trail")
        .into_iter()
        .find(|t| t["Properties"]["TrailName"] == "s3-only")
        .context("s3-only")?;
    // Taken in without a log group, given one in the second phase.
    assert_eq!(
        s3_only["Properties"]["CloudWatchLogsLogGroupArn"]["Fn::If"],
        serde_json::json!([
            "Fixing",
            format!("arn:aws:logs:{REGION}:{id}:log-group:/aws/cloudtrail/s3-only:*"),
            {"Ref": "AWS::NoValue"}
        ])
    );
    // The role taken in trusting EC2 trusts CloudTrail once the fix phase runs.
    let role = of_type("AWS::IAM::Role")
        .into_iter()
        .find(|r| r["Properties"]["RoleName"] == "CloudTrailRoleForCloudWatchLogs_s3-only")
        .context("the s3-only role")?;
    let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Fn::If"];
    assert_eq!(trust[0], "Fixing");
    assert_eq!(
        trust[1]["Statement"][0]["Principal"]["Service"],
        "cloudtrail.amazonaws.com"
    );
    assert_eq!(
        trust[2]["Statement"][0]["Principal"]["Service"],
        "ec2.amazonaws.com"
    );
    assert_eq!(s3_only["Properties"]["KMSKeyId"], key.as_str());
    assert_eq!(s3_only["Properties"]["S3KeyPrefix"], "audit");
    assert_eq!(s3_only["Properties"].get("Tags"), None);
    assert_eq!(s3_only["Properties"].get("EventSelectors"), None);
    assert_eq!(of_type("AWS::CloudWatch::Alarm").len(), 3, "{template:#}");

    assert_eq!(
        state(&account).await?,
        untouched,
        "emitting code changed the account"
    );
    std::fs::remove_dir_all(&out)?;
    Ok(())
}
