//! `fix --emit terraform`: the fix as one Terraform file, in the seed's shape (a log group, a
//! role, its policy, the trail's CloudWatch Logs attributes, the metric filter and alarm).
//!
//! What exists already (the trail, and a log group or role the fix changes) comes in through
//! `import` blocks, declared as trailwatch read it, so `terraform plan` shows an import and an
//! in-place update, never a replacement. Attributes trailwatch does not read are left to
//! `ignore_changes` rather than guessed, and every resource has `prevent_destroy`: nothing a
//! fix declares can be deleted by a later `terraform apply` by mistake.
//!
//! The file is built with `hcl-rs`, which quotes and escapes every value (a `${` in a name
//! stays text), and needs Terraform 1.5 for `import` blocks.

use super::labels::Labels;
use hcl::expr::{Traversal, Variable};
use hcl::{Block, Body, Expression};
use serde_json::{json, Value};
use trailwatch_core::fix::{
    Dependencies, DesiredState, DesiredTrail, TAMPER_ALARM_DESCRIPTION,
    TAMPER_ALARM_PERIOD_SECONDS, TAMPER_FILTER_NAME, TAMPER_FILTER_PATTERN, TAMPER_METRIC_NAME,
    TAMPER_METRIC_NAMESPACE,
};
use trailwatch_core::snapshot::EventSelectors;

/// `a.b.c` as an expression: a provider or resource reference.
fn reference(root: &str, attributes: &[&str]) -> Expression {
    let mut traversal = Traversal::builder(Variable::unchecked(root));
    for attribute in attributes {
        traversal = traversal.attr(*attribute);
    }
    traversal.build().into()
}

/// A JSON value as an HCL expression (objects keep their keys as quoted strings).
fn expression(value: Value) -> Expression {
    hcl::to_expression(value).unwrap_or(Expression::Null)
}

/// `jsonencode(...)`, the idiomatic way to put a policy document in Terraform.
fn jsonencode(document: &Value) -> Expression {
    hcl::expr::FuncCall::builder("jsonencode")
        .arg(expression(document.clone()))
        .build()
        .into()
}

/// The provider alias of a region: `us-east-1` is `aws.us_east_1`.
fn provider_alias(region: &str) -> String {
    region.replace('-', "_")
}

fn provider(region: &str) -> (&'static str, Expression) {
    ("provider", reference("aws", &[&provider_alias(region)]))
}

fn lifecycle(ignore: &[&str]) -> Block {
    let mut block = Block::builder("lifecycle").add_attribute(("prevent_destroy", true));
    if !ignore.is_empty() {
        let names: Vec<Expression> = ignore.iter().map(|n| reference(n, &[])).collect();
        block = block.add_attribute(("ignore_changes", names));
    }
    block.build()
}

/// The resources `needs` names, by the labels given to each list of the state.
fn references(
    needs: &Dependencies,
    groups: &[String],
    roles: &[String],
    policies: &[String],
) -> Vec<Expression> {
    let of = |kind: &str, indices: &[usize], labels: &[String]| -> Vec<Expression> {
        indices
            .iter()
            .filter_map(|i| labels.get(*i))
            .map(|label| reference(kind, &[label]))
            .collect()
    };
    let mut all = of("aws_iam_role", &needs.roles, roles);
    all.extend(of("aws_iam_role_policy", &needs.role_policies, policies));
    all.extend(of("aws_cloudwatch_log_group", &needs.log_groups, groups));
    all
}

fn depends_on(references: Vec<Expression>) -> Option<(&'static str, Expression)> {
    (!references.is_empty()).then(|| ("depends_on", Expression::from(references)))
}

fn import(region: &str, kind: &str, label: &str, id: &str) -> Block {
    Block::builder("import")
        .add_attribute(provider(region))
        .add_attribute(("to", reference(kind, &[label])))
        .add_attribute(("id", id))
        .build()
}

fn selector_blocks(selectors: &EventSelectors) -> Vec<Block> {
    let strings = |values: &[String]| Expression::from(values.to_vec());
    if !selectors.advanced_event_selectors.is_empty() {
        return selectors
            .advanced_event_selectors
            .iter()
            .map(|selector| {
                let mut block = Block::builder("advanced_event_selector");
                if let Some(name) = &selector.name {
                    block = block.add_attribute(("name", name.as_str()));
                }
                for field in &selector.field_selectors {
                    let mut inner =
                        Block::builder("field_selector").add_attribute(("field", &*field.field));
                    for (key, values) in [
                        ("equals", &field.equals),
                        ("starts_with", &field.starts_with),
                        ("ends_with", &field.ends_with),
                        ("not_equals", &field.not_equals),
                        ("not_starts_with", &field.not_starts_with),
                        ("not_ends_with", &field.not_ends_with),
                    ] {
                        if !values.is_empty() {
                            inner = inner.add_attribute((key, strings(values)));
                        }
                    }
                    block = block.add_block(inner.build());
                }
                block.build()
            })
            .collect();
    }
    selectors
        .event_selectors
        .iter()
        .map(|selector| {
            let mut block = Block::builder("event_selector")
                .add_attribute((
                    "read_write_type",
                    selector.read_write_type.as_deref().unwrap_or("All"),
                ))
                .add_attribute((
                    "include_management_events",
                    selector.include_management_events.unwrap_or(true),
                ));
            if !selector.exclude_management_event_sources.is_empty() {
                block = block.add_attribute((
                    "exclude_management_event_sources",
                    strings(&selector.exclude_management_event_sources),
                ));
            }
            for resource in &selector.data_resources {
                block = block.add_block(
                    Block::builder("data_resource")
                        .add_attribute(("type", &*resource.r#type))
                        .add_attribute(("values", strings(&resource.values)))
                        .build(),
                );
            }
            block.build()
        })
        .collect()
}

/// The trail, whole: what the fix changes, and what trailwatch read of the rest.
fn trail_block(desired: &DesiredTrail, label: &str, dependencies: Vec<Expression>) -> Block {
    let trail = &desired.trail;
    let after = &desired.after;
    let mut block = Block::builder("resource")
        .add_label("aws_cloudtrail")
        .add_label(label)
        .add_attribute(provider(&trail.home_region))
        .add_attribute(("name", &*trail.name));
    // The provider reads a topic in the trail's own account and region back as its name, so
    // an ARN there would show as a change on every plan; elsewhere only the ARN names it.
    let topic =
        trail
            .sns_topic_arn
            .as_ref()
            .map(|arn| match trailwatch_core::arn::Arn::parse(arn) {
                Some(a)
                    if a.region == trail.home_region
                        && Some(a.account) == trail.owner_account() =>
                {
                    a.resource.to_string()
                }
                _ => arn.clone(),
            });
    let optional = [
        ("s3_bucket_name", &trail.s3_bucket_name),
        ("s3_key_prefix", &trail.s3_key_prefix),
        ("kms_key_id", &trail.kms_key_id),
        ("sns_topic_name", &topic),
        ("cloud_watch_logs_group_arn", &after.log_group_arn),
        ("cloud_watch_logs_role_arn", &after.role_arn),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            block = block.add_attribute((key, value.as_str()));
        }
    }
    block = block
        .add_attribute(("is_multi_region_trail", trail.is_multi_region_trail))
        .add_attribute(("is_organization_trail", trail.is_organization_trail))
        .add_attribute((
            "include_global_service_events",
            trail.include_global_service_events,
        ))
        .add_attribute(("enable_log_file_validation", after.log_file_validation));
    // enable_logging defaults to true: a status that could not be read is left as it is,
    // rather than starting a trail someone stopped.
    let mut unknown: Vec<&str> = Vec::new();
    match after.is_logging {
        Some(logging) => block = block.add_attribute(("enable_logging", logging)),
        None => unknown.push("enable_logging"),
    }
    // What the fix does not change and Terraform would otherwise own is left as it is:
    // insight selectors (not read), tags (an exemption is a tag), and the event selectors
    // unless the fix puts management events back in them.
    let mut ignore = vec!["insight_selector", "tags"];
    ignore.extend(unknown);
    match &after.selectors {
        Some(selectors) if desired.before.selectors.as_ref() != Some(selectors) => {
            block = block.add_blocks(selector_blocks(selectors));
        }
        _ => ignore.extend(["event_selector", "advanced_event_selector"]),
    }
    if let Some(attribute) = depends_on(dependencies) {
        block = block.add_attribute(attribute);
    }
    block.add_block(lifecycle(&ignore)).build()
}

/// The fix as a Terraform file; `header` goes first, as comments.
pub fn render(state: &DesiredState, header: &[String]) -> anyhow::Result<String> {
    let mut labels = Labels::default();
    let mut body = Body::builder().add_block(
        Block::builder("terraform")
            .add_attribute(("required_version", ">= 1.5.0"))
            .add_block(
                Block::builder("required_providers")
                    .add_attribute((
                        "aws",
                        expression(json!({"source": "hashicorp/aws", "version": ">= 5.0"})),
                    ))
                    .build(),
            )
            .build(),
    );
    let mut regions = state.regions();
    if regions.is_empty() {
        regions.push(state.home_region.clone());
    }
    for region in &regions {
        body = body.add_block(
            Block::builder("provider")
                .add_label("aws")
                .add_attribute(("alias", provider_alias(region)))
                .add_attribute(("region", region.as_str()))
                .build(),
        );
    }
    // IAM is global; its resources go through the first region's provider.
    let iam_region = regions[0].clone();

    let mut group_labels = Vec::new();
    for group in &state.log_groups {
        let label = labels.next("aws_cloudwatch_log_group", &group.name);
        let mut block = Block::builder("resource")
            .add_label("aws_cloudwatch_log_group")
            .add_label(&*label)
            .add_attribute(provider(&group.region))
            .add_attribute(("name", &*group.name));
        let existing = group.existing.as_ref();
        let retention = group
            .retention_days
            .or_else(|| existing.and_then(|g| g.retention_in_days));
        if let Some(days) = retention {
            block = block.add_attribute(("retention_in_days", i64::from(days)));
        }
        if let Some(existing) = existing {
            // The class cannot change without replacing the group; the key is kept.
            if let Some(class) = &existing.log_group_class {
                block = block.add_attribute(("log_group_class", class.as_str()));
            }
            if let Some(key) = &existing.kms_key_id {
                block = block.add_attribute(("kms_key_id", key.as_str()));
            }
            body = body.add_block(import(
                &group.region,
                "aws_cloudwatch_log_group",
                &label,
                &group.name,
            ));
        }
        let ignore: &[&str] = if existing.is_some() { &["tags"] } else { &[] };
        body = body.add_block(block.add_block(lifecycle(ignore)).build());
        group_labels.push(label);
    }

    let mut role_labels = Vec::new();
    for role in &state.roles {
        let label = labels.next("aws_iam_role", &role.name);
        let mut block = Block::builder("resource")
            .add_label("aws_iam_role")
            .add_label(&*label)
            .add_attribute(provider(&iam_region))
            .add_attribute(("name", &*role.name))
            .add_attribute(("path", &*role.path))
            .add_attribute(("assume_role_policy", jsonencode(&role.trust_policy)));
        let mut ignore: Vec<&str> = Vec::new();
        if let Some(existing) = &role.existing {
            if let Some(boundary) = &existing.permissions_boundary_arn {
                block = block.add_attribute(("permissions_boundary", boundary.as_str()));
            }
            ignore.extend(["description", "max_session_duration", "tags"]);
            body = body.add_block(import(&iam_region, "aws_iam_role", &label, &role.name));
        }
        body = body.add_block(block.add_block(lifecycle(&ignore)).build());
        role_labels.push(label);
    }

    let mut policy_labels = Vec::new();
    for policy in &state.role_policies {
        let label = labels.next("aws_iam_role_policy", &policy.name);
        let mut block = Block::builder("resource")
            .add_label("aws_iam_role_policy")
            .add_label(&*label)
            .add_attribute(provider(&iam_region))
            .add_attribute(("name", &*policy.name))
            .add_attribute(("role", &*policy.role))
            .add_attribute(("policy", jsonencode(&policy.document)));
        let needs = state.policy_dependencies(policy);
        if let Some(attribute) = depends_on(references(&needs, &group_labels, &role_labels, &[])) {
            block = block.add_attribute(attribute);
        }
        body = body.add_block(block.add_block(lifecycle(&[])).build());
        policy_labels.push(label);
    }

    for desired in &state.trails {
        let label = labels.next("aws_cloudtrail", &desired.trail.name);
        let needs = state.trail_dependencies(desired);
        let dependencies = references(&needs, &group_labels, &role_labels, &policy_labels);
        body = body.add_block(import(
            &desired.trail.home_region,
            "aws_cloudtrail",
            &label,
            &desired.trail.trail_arn,
        ));
        body = body.add_block(trail_block(desired, &label, dependencies));
    }

    for filter in &state.metric_filters {
        let label = labels.next("aws_cloudwatch_log_metric_filter", &filter.group);
        let mut block = Block::builder("resource")
            .add_label("aws_cloudwatch_log_metric_filter")
            .add_label(&*label)
            .add_attribute(provider(&filter.region))
            .add_attribute(("name", TAMPER_FILTER_NAME))
            .add_attribute(("log_group_name", &*filter.group))
            .add_attribute(("pattern", TAMPER_FILTER_PATTERN))
            .add_block(
                Block::builder("metric_transformation")
                    .add_attribute(("name", TAMPER_METRIC_NAME))
                    .add_attribute(("namespace", TAMPER_METRIC_NAMESPACE))
                    .add_attribute(("value", "1"))
                    .build(),
            );
        let needs = state.filter_dependencies(filter);
        if let Some(attribute) = depends_on(references(&needs, &group_labels, &[], &[])) {
            block = block.add_attribute(attribute);
        }
        body = body.add_block(block.add_block(lifecycle(&[])).build());
    }

    for alarm in &state.alarms {
        let label = labels.next("aws_cloudwatch_metric_alarm", &alarm.name);
        body = body.add_block(
            Block::builder("resource")
                .add_label("aws_cloudwatch_metric_alarm")
                .add_label(&*label)
                .add_attribute(provider(&alarm.region))
                .add_attribute(("alarm_name", &*alarm.name))
                .add_attribute(("alarm_description", TAMPER_ALARM_DESCRIPTION))
                .add_attribute(("metric_name", TAMPER_METRIC_NAME))
                .add_attribute(("namespace", TAMPER_METRIC_NAMESPACE))
                .add_attribute(("statistic", "Sum"))
                .add_attribute(("period", i64::from(TAMPER_ALARM_PERIOD_SECONDS)))
                .add_attribute(("evaluation_periods", 1))
                .add_attribute(("threshold", 1))
                .add_attribute(("comparison_operator", "GreaterThanOrEqualToThreshold"))
                .add_attribute(("treat_missing_data", "notBreaching"))
                .add_attribute(("alarm_actions", vec![alarm.topic_arn.clone()]))
                .add_block(lifecycle(&[]))
                .build(),
        );
    }

    let mut text: String = header.iter().map(|line| format!("# {line}\n")).collect();
    text.push('\n');
    text.push_str(&hcl::to_string(&body.build())?);
    Ok(text)
}
