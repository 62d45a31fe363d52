//! `fix --emit cloudformation`: the fix as CloudFormation, one template per region (a stack
//! lives in one region). The IAM role and its policy go in the first region's template, which
//! is deployed first.
//!
//! CloudFormation takes in an existing resource without changing it: an import applies none of
//! the template's differences. So a template that changes an existing trail, log group or role
//! is deployed twice, told apart by its `Phase` parameter:
//! - `Phase=import`, in a change set with `--import-existing-resources`, declares the existing
//!   resources as trailwatch read them (and creates the new ones);
//! - `Phase=fix`, an ordinary update, makes the fix's changes.
//!
//! Every resource is `Retain` on delete and on replacement: nothing a fix declares is ever
//! deleted, and auto-import requires it.

use super::labels::Labels;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use trailwatch_core::fix::{
    selectors_document, shell_quote, Dependencies, DesiredState, DesiredTrail, SelectorKind,
    TAMPER_ALARM_DESCRIPTION, TAMPER_ALARM_PERIOD_SECONDS, TAMPER_FILTER_NAME,
    TAMPER_FILTER_PATTERN, TAMPER_METRIC_NAME, TAMPER_METRIC_NAMESPACE,
};
use trailwatch_core::snapshot::EventSelectors;

/// The template of one region, and how to deploy it.
#[derive(Debug)]
pub struct RegionTemplate {
    pub region: String,
    pub stack_name: String,
    /// The template, as YAML.
    pub body: String,
    /// Whether it takes in existing resources (`--import-existing-resources`).
    pub imports: bool,
    /// Whether it changes what it takes in, and so is deployed twice (`Phase`).
    pub phased: bool,
}

impl RegionTemplate {
    /// The AWS CLI commands that deploy it, in order, given the path it is saved at.
    pub fn deploy_commands(&self, path: &str) -> Vec<String> {
        let (region, stack) = (&self.region, &self.stack_name);
        let file_url = shell_quote(&format!("file://{path}"));
        let path = shell_quote(path);
        let deploy = |phase: &str| {
            format!(
                "aws cloudformation deploy --region {region} --stack-name {stack} --template-file {path} --capabilities CAPABILITY_NAMED_IAM{phase}"
            )
        };
        if !self.imports {
            return vec![deploy("")];
        }
        let phase = if self.phased {
            " --parameters ParameterKey=Phase,ParameterValue=import"
        } else {
            ""
        };
        let mut commands = vec![
            format!(
                "aws cloudformation create-change-set --region {region} --stack-name {stack} --change-set-name take-in --change-set-type CREATE --import-existing-resources --template-body {file_url}{phase} --capabilities CAPABILITY_NAMED_IAM"
            ),
            format!(
                "aws cloudformation wait change-set-create-complete --region {region} --stack-name {stack} --change-set-name take-in"
            ),
            format!(
                "aws cloudformation execute-change-set --region {region} --stack-name {stack} --change-set-name take-in"
            ),
            // The stack ends CREATE_COMPLETE or IMPORT_COMPLETE; `describe-stacks` shows
            // either, where one waiter would wait for the other forever.
            format!(
                "aws cloudformation describe-stacks --region {region} --stack-name {stack} --query 'Stacks[0].StackStatus'"
            ),
        ];
        if self.phased {
            commands.push(deploy(" --parameter-overrides Phase=fix"));
        }
        commands
    }
}

const NO_VALUE: &str = "AWS::NoValue";

/// The value for a property of an existing resource: as it is while being taken in, as the fix
/// leaves it after. `None` on either side leaves the property out there.
fn phased(before: Option<Value>, after: Option<Value>) -> Option<Value> {
    if before == after {
        return after;
    }
    let or_nothing = |v: Option<Value>| v.unwrap_or_else(|| json!({"Ref": NO_VALUE}));
    Some(json!({"Fn::If": ["Fixing", or_nothing(after), or_nothing(before)]}))
}

/// The logical IDs of what `needs` names and this template holds (the rest is in the first
/// region's template, deployed before).
fn logical_ids(
    needs: &Dependencies,
    groups: &BTreeMap<usize, String>,
    roles: &BTreeMap<usize, String>,
    policies: &BTreeMap<usize, String>,
) -> Vec<String> {
    let of = |indices: &[usize], ids: &BTreeMap<usize, String>| -> Vec<String> {
        indices.iter().filter_map(|i| ids.get(i).cloned()).collect()
    };
    let mut all = of(&needs.roles, roles);
    all.extend(of(&needs.role_policies, policies));
    all.extend(of(&needs.log_groups, groups));
    all
}

/// Whether `value` holds a [`phased`] property anywhere.
fn uses_phase(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.contains_key("Fn::If") || map.values().any(uses_phase),
        Value::Array(items) => items.iter().any(uses_phase),
        _ => false,
    }
}

fn resource(kind: &str, properties: Map<String, Value>, depends_on: Vec<String>) -> Value {
    let mut resource = json!({
        "Type": kind,
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    });
    if !depends_on.is_empty() {
        resource["DependsOn"] = json!(depends_on);
    }
    resource
}

fn put(properties: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        properties.insert(key.into(), value);
    }
}

/// The selectors under the property name CloudFormation gives their kind.
fn selectors_property(selectors: Option<&EventSelectors>) -> (Option<Value>, Option<Value>) {
    match selectors.map(selectors_document) {
        Some((SelectorKind::Advanced, list)) => (None, Some(list)),
        Some((SelectorKind::Basic, list)) if list.as_array().is_some_and(|l| !l.is_empty()) => {
            (Some(list), None)
        }
        _ => (None, None),
    }
}

fn trail_properties(desired: &DesiredTrail) -> Map<String, Value> {
    let (trail, before, after) = (&desired.trail, &desired.before, &desired.after);
    let mut properties = Map::new();
    properties.insert("TrailName".into(), json!(trail.name));
    let string = |v: &Option<String>| v.as_ref().map(|s| json!(s));
    put(
        &mut properties,
        "S3BucketName",
        string(&trail.s3_bucket_name),
    );
    put(&mut properties, "S3KeyPrefix", string(&trail.s3_key_prefix));
    put(&mut properties, "KMSKeyId", string(&trail.kms_key_id));
    put(
        &mut properties,
        "SnsTopicName",
        string(&trail.sns_topic_arn),
    );
    properties.insert(
        "IsMultiRegionTrail".into(),
        json!(trail.is_multi_region_trail),
    );
    properties.insert(
        "IsOrganizationTrail".into(),
        json!(trail.is_organization_trail),
    );
    properties.insert(
        "IncludeGlobalServiceEvents".into(),
        json!(trail.include_global_service_events),
    );
    // IsLogging is required; a status that could not be read is taken as the fix leaves it.
    let logging_after = after.is_logging.unwrap_or(true);
    put(
        &mut properties,
        "IsLogging",
        phased(
            Some(json!(before.is_logging.unwrap_or(logging_after))),
            Some(json!(logging_after)),
        ),
    );
    put(
        &mut properties,
        "EnableLogFileValidation",
        phased(
            Some(json!(before.log_file_validation)),
            Some(json!(after.log_file_validation)),
        ),
    );
    put(
        &mut properties,
        "CloudWatchLogsLogGroupArn",
        phased(string(&before.log_group_arn), string(&after.log_group_arn)),
    );
    put(
        &mut properties,
        "CloudWatchLogsRoleArn",
        phased(string(&before.role_arn), string(&after.role_arn)),
    );
    // The selectors are declared only when the fix changes them, and tags never: what
    // CloudFormation is not told of, it leaves alone.
    if after.selectors != before.selectors {
        let (basic_before, advanced_before) = selectors_property(before.selectors.as_ref());
        let (basic_after, advanced_after) = selectors_property(after.selectors.as_ref());
        put(
            &mut properties,
            "EventSelectors",
            phased(basic_before, basic_after),
        );
        put(
            &mut properties,
            "AdvancedEventSelectors",
            phased(advanced_before, advanced_after),
        );
    }
    properties
}

/// One template per region with something to declare, in deploy order.
pub fn render(state: &DesiredState) -> anyhow::Result<Vec<RegionTemplate>> {
    let regions = state.regions();
    let Some(iam_region) = regions.first().cloned() else {
        return Ok(Vec::new());
    };
    let mut templates = Vec::new();
    for region in regions {
        let mut labels = Labels::default();
        let mut resources = Map::new();
        let mut imports = false;

        // Logical IDs by index into the state's lists, for what this template holds.
        let mut group_ids = BTreeMap::new();
        for (index, group) in state
            .log_groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.region == region)
        {
            let id = labels.logical_id("LogGroup", &group.name);
            let existing = group.existing.as_ref();
            imports |= existing.is_some();
            let mut properties = Map::new();
            properties.insert("LogGroupName".into(), json!(group.name));
            let before = existing.and_then(|g| g.retention_in_days).map(|d| json!(d));
            let after = group.retention_days.map(|d| json!(d)).or(before.clone());
            let retention = if existing.is_some() {
                phased(before, after)
            } else {
                after
            };
            put(&mut properties, "RetentionInDays", retention);
            if let Some(existing) = existing {
                put(
                    &mut properties,
                    "LogGroupClass",
                    existing.log_group_class.as_ref().map(|c| json!(c)),
                );
                put(
                    &mut properties,
                    "KmsKeyId",
                    existing.kms_key_id.as_ref().map(|k| json!(k)),
                );
            }
            resources.insert(
                id.clone(),
                resource("AWS::Logs::LogGroup", properties, vec![]),
            );
            group_ids.insert(index, id);
        }

        let mut role_ids = BTreeMap::new();
        let mut policy_ids = BTreeMap::new();
        if region == iam_region {
            for (index, role) in state.roles.iter().enumerate() {
                let id = labels.logical_id("Role", &role.name);
                let mut properties = Map::new();
                properties.insert("RoleName".into(), json!(role.name));
                properties.insert("Path".into(), json!(role.path));
                let trust = match &role.existing {
                    Some(existing) => {
                        imports = true;
                        if let Some(boundary) = &existing.permissions_boundary_arn {
                            properties.insert("PermissionsBoundary".into(), json!(boundary));
                        }
                        phased(
                            Some(existing.trust_policy.clone()),
                            Some(role.trust_policy.clone()),
                        )
                    }
                    None => Some(role.trust_policy.clone()),
                };
                put(&mut properties, "AssumeRolePolicyDocument", trust);
                resources.insert(id.clone(), resource("AWS::IAM::Role", properties, vec![]));
                role_ids.insert(index, id);
            }
            for (index, policy) in state.role_policies.iter().enumerate() {
                let id = labels.logical_id("RolePolicy", &policy.name);
                let mut properties = Map::new();
                properties.insert("PolicyName".into(), json!(policy.name));
                properties.insert("RoleName".into(), json!(policy.role));
                properties.insert("PolicyDocument".into(), policy.document.clone());
                let needs = state.policy_dependencies(policy);
                let depends = logical_ids(&needs, &BTreeMap::new(), &role_ids, &BTreeMap::new());
                resources.insert(
                    id.clone(),
                    resource("AWS::IAM::RolePolicy", properties, depends),
                );
                policy_ids.insert(index, id);
            }
        }

        for desired in state
            .trails
            .iter()
            .filter(|t| t.trail.home_region == region)
        {
            imports = true;
            let id = labels.logical_id("Trail", &desired.trail.name);
            let needs = state.trail_dependencies(desired);
            let depends = logical_ids(&needs, &group_ids, &role_ids, &policy_ids);
            resources.insert(
                id,
                resource("AWS::CloudTrail::Trail", trail_properties(desired), depends),
            );
        }

        for filter in state.metric_filters.iter().filter(|f| f.region == region) {
            let id = labels.logical_id("TamperFilter", &filter.group);
            let properties = json!({
                "FilterName": TAMPER_FILTER_NAME,
                "LogGroupName": filter.group,
                "FilterPattern": TAMPER_FILTER_PATTERN,
                "MetricTransformations": [{
                    "MetricName": TAMPER_METRIC_NAME,
                    "MetricNamespace": TAMPER_METRIC_NAMESPACE,
                    "MetricValue": "1",
                }],
            });
            let needs = state.filter_dependencies(filter);
            let depends = logical_ids(&needs, &group_ids, &BTreeMap::new(), &BTreeMap::new());
            let Value::Object(properties) = properties else {
                unreachable!("a json! object")
            };
            resources.insert(id, resource("AWS::Logs::MetricFilter", properties, depends));
        }

        for alarm in state.alarms.iter().filter(|a| a.region == region) {
            let id = labels.logical_id("TamperAlarm", &alarm.name);
            let Value::Object(properties) = json!({
                "AlarmName": alarm.name,
                "AlarmDescription": TAMPER_ALARM_DESCRIPTION,
                "MetricName": TAMPER_METRIC_NAME,
                "Namespace": TAMPER_METRIC_NAMESPACE,
                "Statistic": "Sum",
                "Period": TAMPER_ALARM_PERIOD_SECONDS,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [alarm.topic_arn],
            }) else {
                unreachable!("a json! object")
            };
            resources.insert(id, resource("AWS::CloudWatch::Alarm", properties, vec![]));
        }

        let mut template = json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": format!(
                "trailwatch fix for account {} in {region}: CloudTrail to CloudWatch Logs, and the tamper alarm.",
                state.account
            ),
        });
        // Only a property that changes on something taken in differs between the phases.
        let phased = resources.values().any(uses_phase);
        if phased {
            template["Parameters"] = json!({"Phase": {
                "Type": "String",
                "AllowedValues": ["import", "fix"],
                "Default": "fix",
                "Description": "import: the first deploy, which takes in the existing resources as they are; fix: the second, which changes them."
            }});
            template["Conditions"] = json!({"Fixing": {"Fn::Equals": [{"Ref": "Phase"}, "fix"]}});
        }
        template["Resources"] = Value::Object(resources);
        let body = serde_norway::to_string(&template)?;
        templates.push(RegionTemplate {
            stack_name: "trailwatch-fix".to_string(),
            region,
            body,
            imports,
            phased,
        });
    }
    Ok(templates)
}
