//! The deployable templates under `infra/` agree with the code and with each other.
//!
//! - The change rules (SAM, region forwarder, both Terraform modules) carry exactly
//!   `trailwatch_core::event::rule_pattern()`, the calls the handler re-checks, and every change
//!   fixture (shaped like a real event) matches them.
//! - The SAM template and the Terraform module deploy the same two functions with the same
//!   settings, the same schedule, and grant the same IAM actions.
//! - Those actions are exactly what a scan, a publication and a re-check call, watched through
//!   the fault proxy against moto; no template grants a `*` action.

use anyhow::{bail, Context, Result};
use hcl::{Block, Body, Expression, ObjectKey};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use trailwatch_aws::Config;
use trailwatch_core::event::rule_pattern;
use trailwatch_tests::fault::FaultProxy;
use trailwatch_tests::{endpoint, fixture_event, workspace_dir, Account, TrailSpec};

// --- Reading the templates --------------------------------------------------------------------

/// A CloudFormation template as JSON. Short-form intrinsics (`!Sub x`) become `{"!Sub": x}`.
fn cloudformation(name: &str) -> Result<Value> {
    let path = workspace_dir().join("infra").join(name);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let yaml: serde_norway::Value = serde_norway::from_str(&text)?;
    Ok(serde_json::to_value(yaml)?)
}

fn resource<'a>(template: &'a Value, logical_id: &str) -> &'a Value {
    let found = &template["Resources"][logical_id];
    assert!(found.is_object(), "no resource {logical_id}");
    found
}

fn resources_of_type<'a>(template: &'a Value, kind: &str) -> BTreeMap<&'a str, &'a Value> {
    template["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

/// Every `Action` of a policy document, whether written as a string or a list.
fn cloudformation_actions(document: &Value) -> BTreeSet<String> {
    document["Statement"]
        .as_array()
        .expect("Statement list")
        .iter()
        .flat_map(|statement| match &statement["Action"] {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many.iter().map(|a| a.as_str().unwrap().into()).collect(),
            other => panic!("unexpected Action {other}"),
        })
        .collect()
}

/// All `.tf` files of a Terraform module, parsed into one body.
fn terraform(module: &str) -> Result<Body> {
    let dir = workspace_dir().join("infra/terraform").join(module);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "tf"));
    files.sort();
    let mut structures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let body = hcl::parse(&text).with_context(|| format!("parsing {}", file.display()))?;
        structures.extend(body);
    }
    Ok(Body::from(structures))
}

/// The block `kind "label" "label"...`, such as `resource "aws_lambda_function" "function"`.
fn block<'a>(body: &'a Body, kind: &str, labels: &[&str]) -> &'a Block {
    body.blocks()
        .find(|b| {
            b.identifier() == kind
                && b.labels
                    .iter()
                    .map(|l| l.as_str())
                    .eq(labels.iter().copied())
        })
        .unwrap_or_else(|| panic!("no block {kind} {labels:?}"))
}

fn attribute<'a>(body: &'a Body, key: &str) -> &'a Expression {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

/// A `locals` entry, wherever in the module it is declared.
fn local<'a>(body: &'a Body, name: &str) -> &'a Expression {
    body.blocks()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| b.body.attributes().find(|a| a.key() == name))
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no local {name}"))
}

/// A literal HCL expression (no references) as JSON.
fn literal(expr: &Expression) -> Result<Value> {
    use hcl::eval::{Context, Evaluate};
    let value = expr
        .evaluate(&Context::new())
        .map_err(|e| anyhow::anyhow!("not a literal: {e}"))?;
    Ok(serde_json::to_value(value)?)
}

/// An object key written as `name` or `"name"`; a computed key has no fixed name.
fn key_name(key: &ObjectKey) -> Option<&str> {
    match key {
        ObjectKey::Identifier(id) => Some(id.as_str()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn object_entry<'a>(expr: &'a Expression, key: &str) -> Option<&'a Expression> {
    let Expression::Object(object) = expr else {
        return None;
    };
    object
        .iter()
        .find_map(|(k, v)| (key_name(k) == Some(key)).then_some(v))
}

fn object_keys(expr: &Expression) -> BTreeSet<String> {
    let Expression::Object(object) = expr else {
        panic!("not an object: {expr:?}");
    };
    object
        .keys()
        .map(|k| {
            key_name(k)
                .unwrap_or_else(|| panic!("computed key {k:?}"))
                .to_string()
        })
        .collect()
}

/// The `actions` of every `statement` in a Terraform `aws_iam_policy_document`.
fn terraform_actions(document: &Block) -> Result<BTreeSet<String>> {
    let mut actions = BTreeSet::new();
    for statement in document
        .body
        .blocks()
        .filter(|b| b.identifier() == "statement")
    {
        let Value::Array(list) = literal(attribute(&statement.body, "actions"))? else {
            bail!("actions is not a list");
        };
        actions.extend(list.iter().map(|a| a.as_str().unwrap().to_string()));
    }
    Ok(actions)
}

// --- The event pattern ------------------------------------------------------------------------

#[test]
fn every_change_rule_carries_the_pattern_of_the_watched_calls() -> Result<()> {
    let expected = rule_pattern();
    let sam = cloudformation("template.yaml")?;
    let forwarder = cloudformation("region-forwarder.yaml")?;
    let member = cloudformation("member-account.yaml")?;
    let patterns = [
        (
            "member-account.yaml ForwardRule",
            resource(&member, "ForwardRule")["Properties"]["EventPattern"].clone(),
        ),
        (
            "template.yaml ChangeRule",
            resource(&sam, "ChangeRule")["Properties"]["EventPattern"].clone(),
        ),
        (
            "region-forwarder.yaml ForwardRule",
            resource(&forwarder, "ForwardRule")["Properties"]["EventPattern"].clone(),
        ),
        (
            "modules/change-pattern",
            literal(local(
                &terraform("modules/change-pattern")?,
                "change_event_pattern",
            ))?,
        ),
    ];
    for (place, pattern) in patterns {
        assert_eq!(
            pattern, expected,
            "{place} differs from event::rule_pattern()"
        );
    }
    // Both Terraform rules take their pattern from that one module.
    for (module, rule) in [
        ("modules/trailwatch", "change"),
        ("modules/region-forwarder", "forward"),
    ] {
        let body = terraform(module)?;
        let shared = &block(&body, "module", &["change_pattern"]).body;
        assert_eq!(literal(attribute(shared, "source"))?, "../change-pattern");
        let rule = &block(&body, "resource", &["aws_cloudwatch_event_rule", rule]).body;
        assert_eq!(
            traversal(attribute(rule, "event_pattern")).as_deref(),
            Some("module.change_pattern.json"),
            "{module}"
        );
    }
    Ok(())
}

/// A reference such as `module.change_pattern.json`, as written.
fn traversal(expr: &Expression) -> Option<String> {
    use hcl::expr::TraversalOperator;
    let Expression::Traversal(traversal) = expr else {
        return None;
    };
    let Expression::Variable(root) = &traversal.expr else {
        return None;
    };
    let mut path = root.to_string();
    for operator in &traversal.operators {
        let TraversalOperator::GetAttr(name) = operator else {
            return None;
        };
        path.push('.');
        path.push_str(name.as_str());
    }
    Some(path)
}

/// The subset of EventBridge matching the rule uses: lists of exact values, and
/// `{"exists": false}`.
fn matches(pattern: &Value, event: &Value) -> bool {
    pattern.as_object().unwrap().iter().all(|(key, wanted)| {
        let got = &event[key];
        match wanted {
            Value::Object(_) => matches(wanted, got),
            Value::Array(options) => options.iter().any(|option| match option {
                Value::Object(o) if o.get("exists") == Some(&json!(false)) => got.is_null(),
                exact => exact == got,
            }),
            _ => panic!("unexpected pattern element {wanted}"),
        }
    })
}

#[test]
fn the_rule_delivers_every_change_fixture_and_nothing_else() -> Result<()> {
    let pattern = rule_pattern();
    for name in [
        "create_trail.json",
        "update_trail_arn.json",
        "stop_logging.json",
        "delete_trail.json",
        "delete_log_group.json",
        "put_role_policy.json",
    ] {
        let event = fixture_event(name, "123456789012")?;
        assert!(matches(&pattern, &event), "the rule would miss {name}");
        // The same call, failed: the rule must not wake the function for it.
        let mut failed = event.clone();
        failed["detail"]["errorCode"] = json!("AccessDenied");
        assert!(
            !matches(&pattern, &failed),
            "the rule matches a failed {name}"
        );
    }
    let schedule = fixture_event("scheduled_event.json", "123456789012")?;
    assert!(!matches(&pattern, &schedule));
    Ok(())
}

// --- Functions, schedule and rules ------------------------------------------------------------

#[test]
fn sam_and_terraform_deploy_the_same_two_functions() -> Result<()> {
    let sam = cloudformation("template.yaml")?;
    let globals = &sam["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    let functions = resources_of_type(&sam, "AWS::Serverless::Function");
    let mut sam_settings = BTreeMap::new();
    for (id, function) in &functions {
        assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda");
        // The account worker is invoked by its SQS event source, not asynchronously: its
        // test is the_account_worker_takes_ten_accounts_a_batch_and_dead_letters_after_three.
        if *id == "AccountWorkerFunction" {
            continue;
        }
        let properties = &function["Properties"];
        let code = properties["CodeUri"].as_str().unwrap();
        let crate_dir = workspace_dir().join("infra").join(code);
        assert!(crate_dir.join("Cargo.toml").exists(), "{code} is no crate");
        let name = Path::new(code).file_name().unwrap().to_str().unwrap();
        assert_eq!(properties["LoggingConfig"]["LogFormat"], "JSON");
        assert!(properties["DeadLetterQueue"]["TargetArn"].is_object());
        sam_settings.insert(
            name.to_string(),
            json!({
                "timeout": properties["Timeout"],
                "max_event_age": properties["EventInvokeConfig"]["MaximumEventAgeInSeconds"],
                "retries": properties["EventInvokeConfig"]["MaximumRetryAttempts"],
                "concurrency": properties["ReservedConcurrentExecutions"],
            }),
        );
    }
    assert_eq!(
        sam_settings.keys().collect::<Vec<_>>(),
        ["scheduled-scan", "trail-change"]
    );

    let module = terraform("modules/trailwatch")?;
    let declared = local(&module, "functions");
    assert_eq!(
        object_keys(declared),
        sam_settings.keys().cloned().collect()
    );
    let function = &block(&module, "resource", &["aws_lambda_function", "function"]).body;
    assert_eq!(literal(attribute(function, "runtime"))?, "provided.al2023");
    assert_eq!(literal(attribute(function, "handler"))?, "bootstrap");
    let concurrency = literal(attribute(function, "reserved_concurrent_executions"))?;
    let invoke = &block(
        &module,
        "resource",
        &["aws_lambda_function_event_invoke_config", "function"],
    )
    .body;
    let retries = literal(attribute(invoke, "maximum_retry_attempts"))?;
    for (name, sam) in &sam_settings {
        let entry = object_entry(declared, name).unwrap();
        let terraform = json!({
            "timeout": literal(object_entry(entry, "timeout").unwrap())?,
            "max_event_age": literal(object_entry(entry, "max_event_age").unwrap())?,
            "retries": retries,
            "concurrency": concurrency,
        });
        assert_eq!(&terraform, sam, "{name}");
    }
    Ok(())
}

/// The fan-out's worker, queue and grants, alike in SAM and Terraform: batches of ten with
/// partial failures, a maximum concurrency the function's reserved concurrency matches, three
/// receives before the dead-letter queue (the number the worker is told), receives that fit
/// the retention, and the scan and the worker each granted only their part.
#[test]
fn the_account_worker_takes_ten_accounts_a_batch_and_dead_letters_after_three() -> Result<()> {
    let sam = cloudformation("template.yaml")?;
    let worker = &resource(&sam, "AccountWorkerFunction");
    assert_eq!(worker["Condition"], "OrgMode");
    let properties = &worker["Properties"];
    assert_eq!(properties["CodeUri"], "../functions/account-worker");
    let source = &properties["Events"]["Accounts"]["Properties"];
    assert_eq!(properties["Events"]["Accounts"]["Type"], "SQS");
    assert_eq!(source["Queue"], json!({"!GetAtt": "AccountQueue.Arn"}));
    assert_eq!(source["BatchSize"], 10);
    assert_eq!(
        source["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let concurrency = json!({"!Ref": "OrgWorkerConcurrency"});
    assert_eq!(source["ScalingConfig"]["MaximumConcurrency"], concurrency);
    assert_eq!(properties["ReservedConcurrentExecutions"], concurrency);
    let timeout = properties["Timeout"].as_u64().context("Timeout")?;

    let queue = &resource(&sam, "AccountQueue")["Properties"];
    let visibility = queue["VisibilityTimeout"]
        .as_u64()
        .context("VisibilityTimeout")?;
    let retention = queue["MessageRetentionPeriod"]
        .as_u64()
        .context("retention")?;
    let receives = queue["RedrivePolicy"]["maxReceiveCount"]
        .as_u64()
        .context("receives")?;
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"!GetAtt": "AccountDeadLetterQueue.Arn"})
    );
    let told =
        &sam["Globals"]["Function"]["Environment"]["Variables"]["TRAILWATCH_ORG_MAX_RECEIVES"];
    assert_eq!(told.as_str(), Some(receives.to_string().as_str()));
    assert!(
        visibility >= 2 * timeout,
        "a batch still being worked must stay hidden"
    );
    assert!(
        retention > receives * visibility,
        "every receive must come before the message expires"
    );
    // With no backlog, a failing account is dead-lettered within the scan's window; an account
    // first received late in a long backlog may be named missing instead (README).
    assert!(
        receives * visibility < trailwatch_aws::fanout::DEFAULT_WINDOW_SECONDS,
        "a failing account must be dead-lettered within the scan's window"
    );
    let sam_worker = cloudformation_actions(
        &resource(&sam, "AccountWorkerRole")["Properties"]["Policies"][0]["PolicyDocument"],
    );
    let sam_scan = cloudformation_actions(
        &resource(&sam, "HandOutAccountsPolicy")["Properties"]["PolicyDocument"],
    );
    assert_eq!(
        sam_worker,
        BTreeSet::from(
            [
                "dynamodb:PutItem",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage"
            ]
            .map(String::from)
        )
    );
    assert_eq!(sam_scan, BTreeSet::from(["sqs:SendMessage".to_string()]));

    let module = terraform("modules/trailwatch")?;
    let function = &block(
        &module,
        "resource",
        &["aws_lambda_function", "account_worker"],
    )
    .body;
    assert_eq!(literal(attribute(function, "timeout"))?, timeout);
    let mapping = &block(
        &module,
        "resource",
        &["aws_lambda_event_source_mapping", "accounts"],
    )
    .body;
    assert_eq!(literal(attribute(mapping, "batch_size"))?, 10);
    assert_eq!(
        literal(attribute(mapping, "function_response_types"))?,
        json!(["ReportBatchItemFailures"])
    );
    let tf_queue = &block(&module, "resource", &["aws_sqs_queue", "accounts"]).body;
    assert_eq!(
        literal(attribute(tf_queue, "visibility_timeout_seconds"))?,
        visibility
    );
    assert_eq!(
        literal(attribute(tf_queue, "message_retention_seconds"))?,
        retention
    );
    assert_eq!(literal(local(&module, "account_max_receives"))?, receives);
    let tf_worker = terraform_actions(block(
        &module,
        "data",
        &["aws_iam_policy_document", "account_worker"],
    ))?;
    let tf_scan = terraform_actions(block(
        &module,
        "data",
        &["aws_iam_policy_document", "hand_out_accounts"],
    ))?;
    assert_eq!(tf_worker, sam_worker);
    assert_eq!(tf_scan, sam_scan);
    Ok(())
}

#[test]
fn both_schedule_an_hourly_scan_and_retry_into_dead_letter_queues() -> Result<()> {
    let sam = cloudformation("template.yaml")?;
    let schedule = &resource(&sam, "ScheduleRule")["Properties"];
    let module = terraform("modules/trailwatch")?;
    let rule = &block(
        &module,
        "resource",
        &["aws_cloudwatch_event_rule", "schedule"],
    )
    .body;
    assert_eq!(schedule["ScheduleExpression"], "rate(1 hour)");
    assert_eq!(
        literal(attribute(rule, "schedule_expression"))?,
        schedule["ScheduleExpression"]
    );

    for (sam_rule, terraform_target) in [("ScheduleRule", "schedule"), ("ChangeRule", "change")] {
        let target = &resource(&sam, sam_rule)["Properties"]["Targets"][0];
        assert!(target["DeadLetterConfig"]["Arn"].is_object(), "{sam_rule}");
        let body = &block(
            &module,
            "resource",
            &["aws_cloudwatch_event_target", terraform_target],
        )
        .body;
        let retry = &block(body, "retry_policy", &[]).body;
        assert_eq!(
            literal(attribute(retry, "maximum_retry_attempts"))?,
            target["RetryPolicy"]["MaximumRetryAttempts"],
            "{sam_rule}"
        );
        assert_eq!(
            literal(attribute(retry, "maximum_event_age_in_seconds"))?,
            target["RetryPolicy"]["MaximumEventAgeInSeconds"],
            "{sam_rule}"
        );
        block(body, "dead_letter_config", &[]);
    }
    Ok(())
}

// --- Permissions ------------------------------------------------------------------------------

fn sam_evaluate_actions() -> Result<BTreeSet<String>> {
    let sam = cloudformation("template.yaml")?;
    Ok(cloudformation_actions(
        &resource(&sam, "EvaluatePolicy")["Properties"]["PolicyDocument"],
    ))
}

#[test]
fn sam_and_terraform_grant_the_same_actions() -> Result<()> {
    let sam = cloudformation("template.yaml")?;
    let module = terraform("modules/trailwatch")?;
    let terraform_policy =
        |name: &str| terraform_actions(block(&module, "data", &["aws_iam_policy_document", name]));
    assert_eq!(sam_evaluate_actions()?, terraform_policy("evaluate")?);
    for role in ["ScheduledScanRole", "TrailChangeRole"] {
        let inline = &resource(&sam, role)["Properties"]["Policies"][0]["PolicyDocument"];
        assert_eq!(
            cloudformation_actions(inline),
            terraform_policy("own_logs_and_dead_letters")?,
            "{role}"
        );
    }
    let key = &resource(&sam, "AlertsKey")["Properties"]["KeyPolicy"];
    assert_eq!(cloudformation_actions(key), terraform_policy("key")?);
    let organization = &resource(&sam, "OrganizationPolicy")["Properties"]["PolicyDocument"];
    assert_eq!(
        cloudformation_actions(organization),
        terraform_policy("organization")?
    );

    let forwarder = cloudformation("region-forwarder.yaml")?;
    let forward = &resource(&forwarder, "ForwardRole")["Properties"]["Policies"][0];
    let forwarder_module = terraform("modules/region-forwarder")?;
    assert_eq!(
        cloudformation_actions(&forward["PolicyDocument"]),
        terraform_actions(block(
            &forwarder_module,
            "data",
            &["aws_iam_policy_document", "forward"],
        ))?
    );
    Ok(())
}

/// Walks every policy-like document and collects each action string.
fn all_cloudformation_actions(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "Action" || key == "NotAction" {
                    match inner {
                        Value::String(s) => into.push(s.clone()),
                        Value::Array(list) => {
                            into.extend(list.iter().filter_map(|a| a.as_str().map(str::to_string)))
                        }
                        _ => {}
                    }
                } else {
                    all_cloudformation_actions(inner, into);
                }
            }
        }
        Value::Array(list) => list
            .iter()
            .for_each(|v| all_cloudformation_actions(v, into)),
        _ => {}
    }
}

#[test]
fn no_template_grants_a_wildcard_action() -> Result<()> {
    let mut actions = Vec::new();
    for name in [
        "template.yaml",
        "region-forwarder.yaml",
        "member-account.yaml",
    ] {
        all_cloudformation_actions(&cloudformation(name)?, &mut actions);
    }
    for module in ["modules/trailwatch", "modules/region-forwarder"] {
        let body = terraform(module)?;
        for document in body.blocks().filter(|b| {
            b.labels
                .first()
                .is_some_and(|l| l.as_str() == "aws_iam_policy_document")
        }) {
            actions.extend(terraform_actions(document)?);
        }
    }
    assert!(actions.len() > 40, "found only {actions:?}");
    let wildcards: Vec<_> = actions.iter().filter(|a| a.contains('*')).collect();
    assert!(wildcards.is_empty(), "wildcard actions: {wildcards:?}");
    Ok(())
}

/// The member accounts' read role allows what the functions do to read an account and record
/// its findings, and nothing of what they do centrally (alert, the ledger, the stack's key).
#[test]
fn the_member_read_role_grants_the_reads_and_the_records_only() -> Result<()> {
    const CENTRAL_ONLY: [&str; 6] = [
        "sns:Publish",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "organizations:ListAccounts",
    ];
    let member = cloudformation("member-account.yaml")?;
    let read = &resource(&member, "ReadRole")["Properties"]["Policies"][0]["PolicyDocument"];
    let expected: BTreeSet<String> = sam_evaluate_actions()?
        .into_iter()
        .filter(|a| !CENTRAL_ONLY.contains(&a.as_str()))
        .collect();
    assert_eq!(cloudformation_actions(read), expected);

    // It trusts the central stack's three function roles, which template.yaml names to match.
    let trust = &resource(&member, "ReadRole")["Properties"]["AssumeRolePolicyDocument"];
    let principals =
        trust["Statement"][0]["Condition"]["ArnEquals"]["aws:PrincipalArn"].to_string();
    let sam = cloudformation("template.yaml")?;
    for (role, suffix) in [
        ("ScheduledScanRole", "-scheduled-scan"),
        ("TrailChangeRole", "-trail-change"),
        ("AccountWorkerRole", "-account-worker"),
    ] {
        let name = resource(&sam, role)["Properties"]["RoleName"].to_string();
        assert!(name.contains(suffix), "{role} is named {name}");
        assert!(
            principals.contains(&format!("${{CentralStackName}}{suffix}")),
            "{principals}"
        );
    }
    Ok(())
}

/// What the deployed functions may do beyond what moto lets the test observe, and why.
const GRANTED_BUT_NOT_OBSERVED: [(&str, &str); 6] = [
    (
        "securityhub:BatchUpdateFindings",
        "suppresses an exempt trail's existing finding; moto does not implement it (tests/tests/exemption.rs)",
    ),
    (
        "account:ListRegions",
        "the regions when TRAILWATCH_REGIONS=all; moto does not implement it, so tests list regions",
    ),
    ("kms:GenerateDataKey", "SNS and SQS call KMS for the function; moto does not"),
    ("kms:Decrypt", "SNS and SQS call KMS for the function; moto does not"),
    (
        "dynamodb:PutItem",
        "gives a claim back after a failed import or alert (tests/tests/idempotency.rs)",
    ),
    (
        "dynamodb:DeleteItem",
        "gives a claim back after a failed import or alert (tests/tests/idempotency.rs)",
    ),
];

/// What the code calls that needs no IAM permission.
const NEEDS_NO_PERMISSION: [&str; 1] = ["sts:GetCallerIdentity"];

#[tokio::test]
async fn the_granted_actions_are_exactly_what_a_scan_and_a_recheck_call() -> Result<()> {
    const HOME: &str = "us-east-1";
    let acct = Account::fresh().await?;
    acct.enable_security_hub(HOME).await?;
    let (topic, _queue) = acct.topic_with_queue(HOME, "trailwatch-alerts").await?;
    // Every kind of read: a trail with a log group, metric filter and alarm, and a delivery
    // role with an inline and an attached managed policy; an organisation trail whose log
    // group has a KMS key; a third trail fails, so an alert goes out.
    let audit = acct.healthy_trail("audit", HOME, true).await?;
    acct.attach_managed(
        &audit.role_name,
        "extra-delivery",
        &trailwatch_tests::delivery_policy(&audit.log_group_arn),
    )
    .await?;
    acct.create_organization(&[]).await?;
    let (sealed, _key) = acct.encrypted_log_group(HOME, "cloudtrail/sealed").await?;
    acct.trail(
        TrailSpec::new("org-sealed", HOME)
            .organization()
            .log_group(&sealed)
            .role(&audit.role_arn),
    )
    .await?;
    acct.trail(TrailSpec::new("s3-only", HOME)).await?;

    let ledger = acct.ledger_table(HOME, "trailwatch-alert-ledger").await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    let via = acct.via(&proxy.endpoint).await;
    let config = trailwatch_aws::Config::from_lookup(|name| match name {
        "TRAILWATCH_REGIONS" => Some(HOME.into()),
        "TRAILWATCH_SNS_TOPIC_ARN" => Some(topic.clone()),
        "TRAILWATCH_LEDGER_TABLE" => Some(ledger.clone()),
        _ => None,
    })?;
    let services = trailwatch_aws::Services::new(&via.sdk, &config, "infra test")?;
    let outcome = services.run().await?;
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert!(outcome.alert.is_some(), "the failing trail should alert");

    acct.cloudtrail(HOME)
        .stop_logging()
        .name("audit")
        .send()
        .await?;
    let event = fixture_event("stop_logging.json", &acct.id)?;
    let change = trailwatch_core::event::parse(event.to_string().as_bytes())?;
    let recheck = services.recheck(&change).await?;
    assert!(
        matches!(recheck, trailwatch_aws::flow::Recheck::Published(_)),
        "{recheck:?}"
    );
    // One delivery role is read on its own; with a second, this small account is read in one
    // listing (`GetAccountSummary`, then `GetAccountAuthorizationDetails`).
    acct.healthy_trail("second-role", HOME, false).await?;
    let outcome = services.run().await?;
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);

    let observed: BTreeSet<String> = proxy
        .iam_actions()
        .into_iter()
        .filter(|a| !NEEDS_NO_PERMISSION.contains(&a.as_str()))
        .collect();
    let granted = sam_evaluate_actions()?;
    let not_granted: Vec<_> = observed.difference(&granted).collect();
    assert!(
        not_granted.is_empty(),
        "called but not granted: {not_granted:?}"
    );
    let unexplained: Vec<_> = granted
        .difference(&observed)
        .filter(|a| !GRANTED_BUT_NOT_OBSERVED.iter().any(|(g, _)| g == a))
        .collect();
    assert!(
        unexplained.is_empty(),
        "granted but never called: {unexplained:?}"
    );
    Ok(())
}

/// Self-healing adds exactly `cloudtrail:StartLogging` on the account's trails, in both
/// templates, to trail-change only, and only when the parameter is on; and it is what a
/// restart calls.
#[tokio::test]
async fn the_self_healing_grant_is_start_logging_only_and_only_when_asked() -> Result<()> {
    let sam = cloudformation("template.yaml")?;
    assert_eq!(
        sam["Conditions"]["AutoRemediates"],
        json!({"!Equals": [{"!Ref": "AutoRemediate"}, "start-logging"]})
    );
    assert_eq!(sam["Parameters"]["AutoRemediate"]["Default"], "off");
    let policy = resource(&sam, "AutoRemediationPolicy");
    assert_eq!(policy["Condition"], "AutoRemediates");
    assert_eq!(
        policy["Properties"]["RoleName"],
        json!({"!Ref": "TrailChangeRole"})
    );
    let document = &policy["Properties"]["PolicyDocument"];
    let granted = cloudformation_actions(document);
    assert_eq!(
        granted,
        BTreeSet::from(["cloudtrail:StartLogging".to_string()])
    );
    assert_eq!(
        document["Statement"][0]["Resource"],
        json!({"!Sub": "arn:${AWS::Partition}:cloudtrail:*:${AWS::AccountId}:trail/*"})
    );
    let member = cloudformation("member-account.yaml")?;
    let in_member = resource(&member, "AutoRemediationPolicy");
    assert_eq!(in_member["Condition"], "RestartsTrails");
    assert_eq!(in_member["Properties"]["PolicyDocument"], *document);
    let module = terraform("modules/trailwatch")?;
    assert_eq!(
        terraform_actions(block(
            &module,
            "data",
            &["aws_iam_policy_document", "auto_remediation"]
        ))?,
        granted
    );
    let attached = &block(
        &module,
        "resource",
        &["aws_iam_role_policy", "auto_remediation"],
    )
    .body;
    let role = format!("{:?}", attribute(attached, "role"));
    assert!(role.contains("trail-change"), "{role}");
    let count = format!("{:?}", attribute(attached, "count"));
    assert!(count.contains("start-logging"), "{count}");

    const HOME: &str = "us-east-1";
    let acct = Account::fresh().await?;
    acct.healthy_trail("audit", HOME, true).await?;
    acct.cloudtrail(HOME)
        .stop_logging()
        .name("audit")
        .send()
        .await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    let via = acct.via(&proxy.endpoint).await;
    let config = trailwatch_aws::Config::from_lookup(|name| match name {
        "TRAILWATCH_REGIONS" => Some(HOME.into()),
        "TRAILWATCH_SECURITY_HUB" => Some("false".into()),
        "TRAILWATCH_AUTO_REMEDIATE" => Some("start-logging".into()),
        _ => None,
    })?;
    let services = trailwatch_aws::Services::new(&via.sdk, &config, "infra test")?;
    let event = fixture_event("stop_logging.json", &acct.id)?;
    let change = trailwatch_core::event::parse(event.to_string().as_bytes())?;
    services.recheck(&change).await?;
    let observed: BTreeSet<String> = proxy
        .iam_actions()
        .into_iter()
        .filter(|a| !NEEDS_NO_PERMISSION.contains(&a.as_str()))
        .collect();
    let evaluate = sam_evaluate_actions()?;
    let beyond: Vec<&String> = observed.difference(&evaluate).collect();
    assert_eq!(beyond, vec!["cloudtrail:StartLogging"]);
    Ok(())
}

/// Organisation mode adds exactly what `OrganizationPolicy` grants: listing the accounts,
/// assuming their read role, and reading the SCPs on each account's path.
#[tokio::test]
async fn the_organisation_policy_grants_what_an_organisation_run_calls() -> Result<()> {
    const HOME: &str = "us-east-1";
    let management = Account::fresh().await?;
    let members = management.create_organization(&["member"]).await?;
    for account in [&management, &members[0]] {
        account.enable_security_hub(HOME).await?;
    }
    members[0].healthy_trail("audit", HOME, true).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    let via = management.via(&proxy.endpoint).await;
    let config = trailwatch_aws::Config::from_lookup(|name| match name {
        "TRAILWATCH_REGIONS" => Some(HOME.into()),
        "TRAILWATCH_ORG_ROLE_NAME" => Some("trailwatch-read".into()),
        _ => None,
    })?;
    let services = trailwatch_aws::Services::new(&via.sdk, &config, "infra test")?;
    let runs = services
        .run_organization()
        .await
        .context("organisation mode is configured")??;
    assert_eq!(runs.len(), 2);

    let sam = cloudformation("template.yaml")?;
    let organization = cloudformation_actions(
        &resource(&sam, "OrganizationPolicy")["Properties"]["PolicyDocument"],
    );
    let granted: BTreeSet<String> = sam_evaluate_actions()?
        .union(&organization)
        .cloned()
        .collect();
    let observed: BTreeSet<String> = proxy
        .iam_actions()
        .into_iter()
        .filter(|a| !NEEDS_NO_PERMISSION.contains(&a.as_str()))
        .collect();
    let not_granted: Vec<_> = observed.difference(&granted).collect();
    assert!(
        not_granted.is_empty(),
        "called but not granted: {not_granted:?}"
    );
    let unused: Vec<_> = organization.difference(&observed).collect();
    assert!(unused.is_empty(), "granted but never called: {unused:?}");
    Ok(())
}

/// The organisation alarm watches a metric the scan really emits, under the same namespace and
/// dimension, in both templates.
#[test]
fn the_unreachable_accounts_alarm_watches_what_the_scan_emits() -> Result<()> {
    use trailwatch_core::metrics::{emf_organization_line, OrgMetrics, NAMESPACE};
    let line: Value = serde_json::from_str(&emf_organization_line(
        "scheduled-scan",
        chrono::Utc::now(),
        &OrgMetrics::default(),
    ))?;
    let sam = cloudformation("template.yaml")?;
    let alarm = &resource(&sam, "UnreachableAccountsAlarm")["Properties"];
    let metric = alarm["MetricName"].as_str().unwrap_or_default();
    assert!(line[metric].is_u64(), "the scan emits no {metric}");
    assert_eq!(alarm["Namespace"], NAMESPACE);
    assert_eq!(alarm["Dimensions"][0]["Name"], "Function");
    assert_eq!(alarm["Dimensions"][0]["Value"], line["Function"]);

    let module = terraform("modules/trailwatch")?;
    let terraform_alarm = &block(
        &module,
        "resource",
        &["aws_cloudwatch_metric_alarm", "accounts_unreachable"],
    )
    .body;
    assert_eq!(
        literal(attribute(terraform_alarm, "metric_name"))?,
        alarm["MetricName"]
    );
    assert_eq!(literal(attribute(terraform_alarm, "namespace"))?, NAMESPACE);
    assert_eq!(
        literal(attribute(terraform_alarm, "dimensions"))?,
        json!({"Function": "scheduled-scan"})
    );
    Ok(())
}

// --- The guard: changes to trailwatch itself ----------------------------------------------------

/// A template value with its intrinsics resolved as CloudFormation would for stack `stack` in
/// `account`, us-east-1: `!Sub` of pseudo parameters and of `resources`' attributes, `!Ref` and
/// `!GetAtt` from `resources` (logical id, or `Id.Attribute`, to its value).
fn resolve(value: &Value, stack: &str, account: &str, resources: &BTreeMap<&str, String>) -> Value {
    let substitute = |text: &str| {
        let mut text = text
            .replace("${AWS::StackName}", stack)
            .replace("${AWS::AccountId}", account)
            .replace("${AWS::Region}", "us-east-1")
            .replace("${AWS::Partition}", "aws");
        for (name, resolved) in resources {
            text = text.replace(&format!("${{{name}}}"), resolved);
        }
        text
    };
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (key, inner) = map.iter().next().unwrap();
            match (key.as_str(), inner) {
                ("!Sub", Value::String(text)) => Value::String(substitute(text)),
                ("!Ref" | "!GetAtt", Value::String(name)) => Value::String(
                    resources
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or_else(|| panic!("no value for {key} {name}")),
                ),
                _ => json!({ key.clone(): resolve(inner, stack, account, resources) }),
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve(v, stack, account, resources)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, stack, account, resources))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An "AWS API Call via CloudTrail" event of `source`, as EventBridge delivers it.
fn api_call(account: &str, source: &str, name: &str, parameters: Value) -> Value {
    json!({
        "Source": format!("aws.{source}"),
        "DetailType": "AWS API Call via CloudTrail",
        "Detail": json!({
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{account}:user/mallory")},
            "eventTime": "2026-12-01T10:00:00Z",
            "eventSource": format!("{source}.amazonaws.com"),
            "eventName": name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "requestParameters": parameters,
        }).to_string(),
    })
}

/// The SAM guard rule, as deployed for stack `tw`, on the emulator with an SQS queue in place
/// of its SNS topic (moto delivers rule targets to SQS, not SNS): calls on trailwatch's own
/// rules, functions, topics and key reach it, transformed into a chat-apps notification that
/// names the caller, and the same calls on anything else do not.
#[tokio::test]
async fn the_guard_rule_pages_calls_on_trailwatch_itself_and_nothing_else() -> Result<()> {
    use aws_config::Region;
    let account = Account::fresh().await?;
    let sam = cloudformation("template.yaml")?;
    let key_id = "1234abcd-12ab-34cd-56ef-1234567890ab";
    let key_arn = format!("arn:aws:kms:us-east-1:{}:key/{key_id}", account.id);
    let alerts = format!("arn:aws:sns:us-east-1:{}:tw-alerts", account.id);
    let guard = format!("arn:aws:sns:us-east-1:{}:tw-guard", account.id);
    let resources = BTreeMap::from([
        ("AlertsKey", key_id.to_string()),
        ("AlertsKey.Arn", key_arn.clone()),
        ("AlertsTopic", alerts.clone()),
        ("GuardTopic", guard.clone()),
        (
            "ChangeDeadLetterQueue.Arn",
            format!("arn:aws:sqs:us-east-1:{}:tw-trail-change-dlq", account.id),
        ),
    ]);
    let rule = resolve(
        &resource(&sam, "GuardRule")["Properties"],
        "tw",
        &account.id,
        &resources,
    );

    let sdk = account
        .sdk
        .to_builder()
        .region(Region::new("us-east-1"))
        .build();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = sqs.create_queue().queue_name("guard").send().await?;
    let queue_url = queue.queue_url().context("a queue URL")?.to_string();
    let queue_arn = format!("arn:aws:sqs:us-east-1:{}:guard", account.id);
    let name = rule["Name"].as_str().context("a named rule")?;
    events
        .put_rule()
        .name(name)
        .event_pattern(rule["EventPattern"].to_string())
        .send()
        .await?;
    let transformer = &rule["Targets"][0]["InputTransformer"];
    let paths: std::collections::HashMap<String, String> =
        serde_json::from_value(transformer["InputPathsMap"].clone())?;
    events
        .put_targets()
        .rule(name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("guard-queue")
                .arn(&queue_arn)
                .input_transformer(
                    aws_sdk_eventbridge::types::InputTransformer::builder()
                        .set_input_paths_map(Some(paths))
                        .input_template(transformer["InputTemplate"].as_str().unwrap_or_default())
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await?;

    let calls = [
        ("events", "DisableRule", json!({"name": "tw-change"}), true),
        (
            "events",
            "RemoveTargets",
            json!({"rule": "tw-schedule", "ids": ["scheduled-scan"]}),
            true,
        ),
        (
            "events",
            "DisableRule",
            json!({"name": "someone-elses"}),
            false,
        ),
        (
            "lambda",
            "DeleteFunction20150331",
            json!({"functionName": "tw-trail-change"}),
            true,
        ),
        (
            "lambda",
            "PutFunctionConcurrency20171031",
            json!({"functionName": format!("arn:aws:lambda:us-east-1:{}:function:tw-scheduled-scan", account.id),
                   "reservedConcurrentExecutions": 0}),
            true,
        ),
        (
            "lambda",
            "DeleteFunction20150331",
            json!({"functionName": "other"}),
            false,
        ),
        (
            "sns",
            "SetTopicAttributes",
            json!({"topicArn": alerts, "attributeName": "KmsMasterKeyId"}),
            true,
        ),
        (
            "sns",
            "DeleteTopic",
            json!({"topicArn": format!("arn:aws:sns:us-east-1:{}:other", account.id)}),
            false,
        ),
        ("kms", "DisableKey", json!({"keyId": key_id}), true),
        (
            "kms",
            "ScheduleKeyDeletion",
            json!({"keyId": key_arn, "pendingWindowInDays": 7}),
            true,
        ),
        (
            "kms",
            "PutKeyPolicy",
            json!({"keyId": "alias/tw-alerts", "policyName": "default"}),
            true,
        ),
        ("kms", "DisableKey", json!({"keyId": "another-key"}), false),
    ];
    for (source, name, parameters, _) in &calls {
        let call = api_call(&account.id, source, name, parameters.clone());
        events
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source(call["Source"].as_str().unwrap_or_default())
                    .detail_type(call["DetailType"].as_str().unwrap_or_default())
                    .detail(call["Detail"].as_str().unwrap_or_default())
                    .build(),
            )
            .send()
            .await?;
    }
    let mut paged = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await?;
        if received.messages().is_empty() {
            break;
        }
        for message in received.messages() {
            let body: Value = serde_json::from_str(message.body().unwrap_or("null"))?;
            assert_eq!(body["version"], "1.0", "{body}");
            assert_eq!(body["source"], "custom", "{body}");
            let description = body["content"]["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("arn:aws:iam::{}:user/mallory", account.id))
                    && description.contains("203.0.113.7"),
                "{description}"
            );
            paged.push(
                body["content"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
    }
    let expected: Vec<String> = calls
        .iter()
        .filter(|(_, _, _, ours)| *ours)
        .map(|(_, name, _, _)| format!("trailwatch itself was changed: {name} in {}", account.id))
        .collect();
    paged.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(paged, expected_sorted);
    Ok(())
}

/// The guard's page reads the same in Terraform as in SAM: the same fields of the event, into
/// the same notification.
#[test]
fn sam_and_terraform_guard_rules_page_the_same_notification() -> Result<()> {
    let sam = cloudformation("template.yaml")?;
    let transformer = &resource(&sam, "GuardRule")["Properties"]["Targets"][0]["InputTransformer"];
    let sam_template: Value =
        serde_json::from_str(transformer["InputTemplate"].as_str().unwrap_or_default())?;
    let module = terraform("modules/trailwatch")?;
    let target = &block(
        &module,
        "resource",
        &["aws_cloudwatch_event_target", "guard"],
    )
    .body;
    let terraform_transformer = &block(target, "input_transformer", &[]).body;
    let terraform_template: Value = serde_json::from_str(
        literal(attribute(terraform_transformer, "input_template"))?
            .as_str()
            .unwrap_or_default(),
    )?;
    assert_eq!(terraform_template, sam_template);
    assert_eq!(
        literal(attribute(terraform_transformer, "input_paths"))?,
        transformer["InputPathsMap"]
    );
    // Its own key, not the alerts key: a page about the alerts key must not need it.
    let topic = &resource(&sam, "GuardTopic")["Properties"];
    assert_eq!(topic["KmsMasterKeyId"], json!({"!Ref": "GuardKey"}));
    Ok(())
}

/// What the templates tell trail-change are trailwatch's own resources covers each rule,
/// function, topic and key they create, and nothing else.
#[test]
fn the_monitor_resources_name_every_piece_of_trailwatch() -> Result<()> {
    let sam = cloudformation("template.yaml")?;
    let account = "111122223333";
    let resources = BTreeMap::from([
        (
            "AlertsKey.Arn",
            format!("arn:aws:kms:us-east-1:{account}:key/alerts-key"),
        ),
        (
            "GuardKey.Arn",
            format!("arn:aws:kms:us-east-1:{account}:key/guard-key"),
        ),
    ]);
    let monitor = resolve(
        &sam["Globals"]["Function"]["Environment"]["Variables"]["TRAILWATCH_MONITOR_RESOURCES"],
        "tw",
        account,
        &resources,
    );
    let config = Config::from_lookup(|name| {
        (name == "TRAILWATCH_MONITOR_RESOURCES")
            .then(|| monitor.as_str().map(str::to_string))
            .flatten()
    })?;
    let owned = |kind: &str| format!("arn:aws:{kind}");
    for arn in [
        "events:us-east-1:111122223333:rule/tw-schedule",
        "events:us-east-1:111122223333:rule/tw-change",
        "events:us-east-1:111122223333:rule/tw-guard",
        "lambda:us-east-1:111122223333:function:tw-scheduled-scan",
        "lambda:us-east-1:111122223333:function:tw-trail-change",
        "sns:us-east-1:111122223333:tw-alerts",
        "sns:us-east-1:111122223333:tw-guard",
        "kms:us-east-1:111122223333:key/alerts-key",
        "kms:us-east-1:111122223333:key/guard-key",
    ] {
        assert!(config.monitor.owns(&owned(arn)), "{arn} is not covered");
    }
    for arn in [
        "events:us-east-1:111122223333:rule/another-stack-change",
        "kms:us-east-1:111122223333:key/someone-elses",
        "sns:us-east-1:444455556666:tw-alerts",
    ] {
        assert!(!config.monitor.owns(&owned(arn)), "{arn} is covered");
    }
    // The rule names the patterns rely on.
    for (rule, name) in [
        ("ScheduleRule", "tw-schedule"),
        ("ChangeRule", "tw-change"),
        ("GuardRule", "tw-guard"),
    ] {
        let resolved = resolve(
            &resource(&sam, rule)["Properties"]["Name"],
            "tw",
            account,
            &resources,
        );
        assert_eq!(resolved, name, "{rule}");
    }
    let module = terraform("modules/trailwatch")?;
    let environment = local(&module, "environment");
    assert!(object_entry(environment, "TRAILWATCH_MONITOR_RESOURCES").is_some());
    Ok(())
}

/// The blind-spot alarms watch the Errors metric the functions' EMF line carries, by function.
#[test]
fn the_blind_spot_alarms_watch_what_the_functions_emit() -> Result<()> {
    use trailwatch_core::metrics::{emf_line, RunMetrics, NAMESPACE};
    let sam = cloudformation("template.yaml")?;
    for (alarm, function) in [
        ("ScheduledScanOwnErrorsAlarm", "scheduled-scan"),
        ("TrailChangeOwnErrorsAlarm", "trail-change"),
    ] {
        let line: Value = serde_json::from_str(&emf_line(
            function,
            chrono::Utc::now(),
            &RunMetrics::default(),
        ))?;
        let alarm = &resource(&sam, alarm)["Properties"];
        let metric = alarm["MetricName"].as_str().unwrap_or_default();
        assert!(line[metric].is_u64(), "{function} emits no {metric}");
        assert_eq!(alarm["Namespace"], NAMESPACE);
        assert_eq!(alarm["Dimensions"][0]["Value"], line["Function"]);
    }
    let module = terraform("modules/trailwatch")?;
    let alarm = &block(
        &module,
        "resource",
        &["aws_cloudwatch_metric_alarm", "blind_spots"],
    )
    .body;
    assert_eq!(literal(attribute(alarm, "namespace"))?, NAMESPACE);
    assert_eq!(literal(attribute(alarm, "metric_name"))?, "Errors");
    Ok(())
}

/// Every string inside `value`, however deeply it sits (a `!Sub` body comes back wrapped).
fn strings_in(value: &Value) -> Vec<&str> {
    match value {
        Value::String(text) => vec![text.as_str()],
        Value::Array(list) => list.iter().flat_map(strings_in).collect(),
        Value::Object(map) => map.values().flat_map(strings_in).collect(),
        _ => vec![],
    }
}

/// The metric names the functions' EMF lines declare, from the core that prints them.
fn emitted_metrics() -> Result<BTreeSet<String>> {
    let mut names = run_metrics()?;
    names.extend(declared_metrics(
        &trailwatch_core::metrics::emf_organization_line(
            "scheduled-scan",
            chrono::Utc::now(),
            &Default::default(),
        ),
    )?);
    Ok(names)
}

/// The metrics of one run (an account's scan or a re-check), which every function prints.
fn run_metrics() -> Result<BTreeSet<String>> {
    declared_metrics(&trailwatch_core::metrics::emf_line(
        "scheduled-scan",
        chrono::Utc::now(),
        &Default::default(),
    ))
}

fn declared_metrics(line: &str) -> Result<BTreeSet<String>> {
    let line: Value = serde_json::from_str(line)?;
    let mut names = BTreeSet::new();
    for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .context("declared metrics")?
    {
        names.insert(metric["Name"].as_str().context("a name")?.to_string());
    }
    Ok(names)
}

/// The dashboard charts every metric the functions emit, and only those, with the functions'
/// own Lambda errors and throttles; Terraform's has the same widgets.
#[test]
fn the_dashboards_chart_what_the_functions_emit() -> Result<()> {
    let sam = cloudformation("template.yaml")?;
    let body = strings_in(&resource(&sam, "MonitorDashboard")["Properties"]["DashboardBody"])
        .into_iter()
        .find(|text| text.contains("widgets"))
        .context("the dashboard body")?
        .replace("${AWS::Region}", "us-east-1")
        .replace("${ScheduledScanFunction}", "scan-function")
        .replace("${TrailChangeFunction}", "recheck-function")
        .replace("${AWS::StackName}", "stack");
    let body: Value = serde_json::from_str(&body).context("the dashboard body is JSON")?;
    let widgets = body["widgets"].as_array().context("widgets")?;
    let mut charted = BTreeSet::new();
    let mut charted_per_function = BTreeSet::new();
    let mut lambda = BTreeSet::new();
    let mut queues = BTreeSet::new();
    for widget in widgets {
        for metric in widget["properties"]["metrics"]
            .as_array()
            .context("metrics")?
        {
            let (namespace, name, dimension) = (&metric[0], &metric[1], &metric[3]);
            match namespace.as_str() {
                Some("trailwatch") => {
                    assert!(
                        ["scheduled-scan", "trail-change", "account-worker"]
                            .contains(&dimension.as_str().unwrap()),
                        "{metric}"
                    );
                    charted.insert(name.as_str().unwrap().to_string());
                    charted_per_function.insert(format!(
                        "{}/{}",
                        dimension.as_str().unwrap(),
                        name.as_str().unwrap()
                    ));
                }
                Some("AWS/SQS") => {
                    queues.insert(format!(
                        "{}/{}",
                        dimension.as_str().unwrap(),
                        name.as_str().unwrap()
                    ));
                }
                Some("AWS/Lambda") => {
                    lambda.insert(format!(
                        "{}/{}",
                        dimension.as_str().unwrap(),
                        name.as_str().unwrap()
                    ));
                }
                _ => panic!("unexpected namespace in {metric}"),
            }
        }
    }
    assert_eq!(charted, emitted_metrics()?);
    // In a fanned-out organisation the account workers print every account's run line.
    for name in run_metrics()? {
        assert!(
            charted_per_function.contains(&format!("account-worker/{name}")),
            "the dashboard does not chart the account workers' {name}"
        );
    }
    // The worker and its queue are named, not referenced (they exist only in organisation
    // mode): the names must be the ones the template gives them.
    assert_eq!(
        resource(&sam, "AccountWorkerFunction")["Properties"]["FunctionName"]["!Sub"],
        "${AWS::StackName}-account-worker"
    );
    assert_eq!(
        resource(&sam, "AccountDeadLetterQueue")["Properties"]["QueueName"]["!Sub"],
        "${AWS::StackName}-accounts-dlq"
    );
    assert_eq!(
        queues,
        BTreeSet::from(["stack-accounts-dlq/ApproximateNumberOfMessagesVisible".to_string()])
    );
    assert_eq!(
        lambda,
        BTreeSet::from(
            [
                "recheck-function/Errors",
                "recheck-function/Throttles",
                "scan-function/Errors",
                "scan-function/Throttles",
                "stack-account-worker/Errors",
                "stack-account-worker/Throttles"
            ]
            .map(String::from)
        )
    );

    let terraform = std::fs::read_to_string(
        workspace_dir().join("infra/terraform/modules/trailwatch/dashboard.tf"),
    )?;
    let dashboard = hcl::parse(&terraform).context("dashboard.tf parses")?;
    for widget in widgets {
        let title = widget["properties"]["title"].as_str().unwrap();
        assert!(
            terraform.contains(&format!("\"{title}\"")),
            "Terraform lacks {title:?}"
        );
    }
    for name in emitted_metrics()? {
        assert!(
            terraform.contains(&format!("[\"trailwatch\", \"{name}\"")),
            "Terraform does not chart {name}"
        );
    }
    for name in run_metrics()? {
        assert!(
            terraform.contains(&format!(
                "[\"trailwatch\", \"{name}\", \"Function\", \"account-worker\""
            )),
            "Terraform does not chart the account workers' {name}"
        );
    }
    for series in [
        "[\"AWS/Lambda\", \"Errors\", \"FunctionName\", local.dashboard_functions.worker",
        "[\"AWS/Lambda\", \"Throttles\", \"FunctionName\", local.dashboard_functions.worker",
        "[\"AWS/SQS\", \"ApproximateNumberOfMessagesVisible\", \"QueueName\", local.dashboard_account_dead_letters",
    ] {
        assert!(terraform.contains(series), "Terraform lacks {series}");
    }
    // As in SAM, the worker and its queue are named: the names must be fanout.tf's.
    let fanout = hcl::parse(&std::fs::read_to_string(
        workspace_dir().join("infra/terraform/modules/trailwatch/fanout.tf"),
    )?)?;
    let Expression::Object(functions) = local(&dashboard, "dashboard_functions") else {
        panic!("dashboard_functions is an object");
    };
    let worker = functions
        .iter()
        .find(|(key, _)| key_name(key) == Some("worker"))
        .map(|(_, name)| name)
        .context("dashboard_functions.worker")?;
    assert_eq!(
        worker,
        attribute(
            &block(
                &fanout,
                "resource",
                &["aws_lambda_function", "account_worker"]
            )
            .body,
            "function_name"
        )
    );
    assert_eq!(
        local(&dashboard, "dashboard_account_dead_letters"),
        attribute(
            &block(
                &fanout,
                "resource",
                &["aws_sqs_queue", "account_dead_letters"]
            )
            .body,
            "name"
        )
    );
    Ok(())
}
