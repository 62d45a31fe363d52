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
use trailwatch_core::fix::{
    selectors_document, DesiredState, DesiredTrail, TAMPER_ALARM_PERIOD_SECONDS,
    TAMPER_FILTER_NAME, TAMPER_FILTER_PATTERN, TAMPER_METRIC_NAME, TAMPER_METRIC_NAMESPACE,
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
                "aws cloudformation create-change-set --region {region} --stack-name {stack} --change-set-name take-in --change-set-type CREATE --import-existing-resources --template-body file://{path}{phase} --capabilities CAPABILITY_NAMED_IAM"
            ),
            format!(
                "aws cloudformation wait change-set-create-complete --region {region} --stack-name {stack} --change-set-name take-in"
            ),
            format!(
                "aws cloudformation execute-change-set --region {region} --stack-name {stack} --change-set-name take-in"
            ),
            format!(
                "aws cloudformation wait stack-create-complete --region {region} --stack-name {stack}"
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
        Some(("--advanced-event-selectors", list)) => (None, Some(list)),
        Some((_, list)) if list.as_array().is_some_and(|l| !l.is_empty()) => (Some(list), None),
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

        let mut group_ids = Vec::new();
        for group in state.log_groups.iter().filter(|g| g.region == region) {
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
            group_ids.push((group.name.clone(), id));
        }

        let mut role_ids = Vec::new();
        let mut policy_ids = Vec::new();
        if region == iam_region {
            for role in &state.roles {
                let id = labels.logical_id("Role", &role.name);
                let mut properties = Map::new();
                properties.insert("RoleName".into(), json!(role.name));
                properties.insert("Path".into(), json!(role.path));
                let trust = match &role.existing {
                    Some(existing) => {
                        imports = true;
                        if let Some(boundary) = &existing.permissions_boundary {
                            properties.insert("PermissionsBoundary".into(), json!(boundary.name));
                        }
                        phased(
                            serde_json::to_value(&existing.assume_role_policy_document).ok(),
                            Some(role.trust_policy.clone()),
                        )
                    }
                    None => Some(role.trust_policy.clone()),
                };
                put(&mut properties, "AssumeRolePolicyDocument", trust);
                resources.insert(id.clone(), resource("AWS::IAM::Role", properties, vec![]));
                role_ids.push((role.name.clone(), id));
            }
            for policy in &state.role_policies {
                let id = labels.logical_id("RolePolicy", &policy.name);
                let mut properties = Map::new();
                properties.insert("PolicyName".into(), json!(policy.name));
                properties.insert("RoleName".into(), json!(policy.role));
                properties.insert("PolicyDocument".into(), policy.document.clone());
                let depends: Vec<String> = role_ids
                    .iter()
                    .filter(|(name, _)| *name == policy.role)
                    .map(|(_, id)| id.clone())
                    .collect();
                resources.insert(
                    id.clone(),
                    resource("AWS::IAM::RolePolicy", properties, depends),
                );
                policy_ids.push((policy.role.clone(), id));
            }
        }

        for desired in state
            .trails
            .iter()
            .filter(|t| t.trail.home_region == region)
        {
            imports = true;
            let id = labels.logical_id("Trail", &desired.trail.name);
            let role = desired.after.role_arn.as_deref().unwrap_or_default();
            let group = desired.after.log_group_arn.as_deref().unwrap_or_default();
            let mut depends: Vec<String> = Vec::new();
            for (name, id) in role_ids.iter().chain(&policy_ids) {
                if role.ends_with(&format!("/{name}")) {
                    depends.push(id.clone());
                }
            }
            for (name, id) in &group_ids {
                if group.ends_with(&format!(":log-group:{name}:*")) {
                    depends.push(id.clone());
                }
            }
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
            let depends: Vec<String> = group_ids
                .iter()
                .filter(|(name, _)| *name == filter.group)
                .map(|(_, id)| id.clone())
                .collect();
            let Value::Object(properties) = properties else {
                unreachable!("a json! object")
            };
            resources.insert(id, resource("AWS::Logs::MetricFilter", properties, depends));
        }

        for alarm in state.alarms.iter().filter(|a| a.region == region) {
            let id = labels.logical_id("TamperAlarm", &alarm.name);
            let Value::Object(properties) = json!({
                "AlarmName": alarm.name,
                "AlarmDescription": "CloudTrail's configuration changed (CIS 4.5): a trail was created, updated, deleted, started or stopped.",
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
        let phased = Value::Object(resources.clone())
            .to_string()
            .contains("\"Fn::If\"");
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
