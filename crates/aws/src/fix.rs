//! `trailwatch fix --apply`: the plan's steps run through the SDK, in order, stopping at the
//! first failure. Every call is one a second run can repeat: a create that finds its resource
//! already there counts as done, and the rest are puts and updates of trailwatch's own values.

use crate::error::ScanError;
use crate::inventory::{CloudTrailInventory, Inventory};
use crate::scan::{settings_of, ScanOptions};
use aws_config::SdkConfig;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trailwatch_core::arn::{LogGroupRef, RoleRef};
use trailwatch_core::fix::{Action, Existing, ExistingRole, Step};
use trailwatch_core::fix::{
    TAMPER_ALARM_DESCRIPTION, TAMPER_ALARM_PERIOD_SECONDS, TAMPER_METRIC_NAME,
    TAMPER_METRIC_NAMESPACE,
};
use trailwatch_core::fix::{TAMPER_FILTER_NAME, TAMPER_FILTER_PATTERN};
use trailwatch_core::snapshot::EventSelectors;
use trailwatch_core::{evaluate_account, AccountSnapshot, Evaluation, Unavailable};

/// The account as the rules see it: the snapshot a plan is made from, and its evaluations.
pub struct Assessment {
    pub snapshot: AccountSnapshot,
    pub evaluations: Vec<Evaluation>,
}

/// Reads and evaluates the account (or the scope's one trail) without recording anything.
pub async fn assess<I: Inventory>(
    inventory: &I,
    options: &ScanOptions,
) -> Result<Assessment, ScanError> {
    let listing = Box::pin(inventory.list(&options.scope)).await?;
    let snapshot = Box::pin(inventory.collect_listed(listing, &options.scope)).await?;
    let evaluations = evaluate_account(&snapshot, &settings_of(options));
    Ok(Assessment {
        snapshot,
        evaluations,
    })
}

/// Which of the log groups and roles `steps` would create exist already, read the way the
/// scan reads the ones trails name. A scan reads only those; code declaring the fix must take
/// the others in rather than create them, so a read that fails stops `--emit` instead of
/// guessing.
pub async fn existing_targets(
    inventory: &CloudTrailInventory,
    snapshot: &AccountSnapshot,
    steps: &[Step],
) -> Result<Existing, Unavailable> {
    let mut existing = Existing::default();
    for step in steps {
        match &step.action {
            Action::CreateLogGroup { region, name } => {
                let group = LogGroupRef {
                    partition: snapshot.partition.clone(),
                    region: region.clone(),
                    account: snapshot.account_id.clone(),
                    name: name.clone(),
                };
                if let Some(found) = inventory.describe_group(&group).await? {
                    existing
                        .log_groups
                        .insert((region.clone(), name.clone()), found);
                }
            }
            Action::CreateRole { name, path, .. } => {
                let role = RoleRef {
                    arn: format!(
                        "arn:{}:iam::{}:role{path}{name}",
                        snapshot.partition, snapshot.account_id
                    ),
                    account: snapshot.account_id.clone(),
                    name: name.clone(),
                };
                if let Some(found) = inventory.role(&role).await? {
                    existing
                        .roles
                        .insert(name.clone(), ExistingRole::from(&found));
                }
            }
            _ => {}
        }
    }
    Ok(existing)
}

/// What a step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// A create whose resource exists already: nothing to do.
    AlreadyThere,
}

/// A step AWS refused, with its error code and message.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct StepFailed {
    pub operation: &'static str,
    pub message: String,
}

fn failed<E>(operation: &'static str, error: SdkError<E>) -> StepFailed
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    StepFailed {
        operation,
        message: crate::error::short_error(&error),
    }
}

/// The clients of one region, built once for every step there.
struct RegionalClients {
    cloudtrail: aws_sdk_cloudtrail::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

/// The clients the steps need, built from the credentials the command runs with.
pub struct Fixer {
    sdk: SdkConfig,
    iam: aws_sdk_iam::Client,
    regional: Mutex<HashMap<String, Arc<RegionalClients>>>,
    /// How long to wait before asking CloudTrail again to use a role IAM just made.
    role_propagation: Vec<Duration>,
}

impl Fixer {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            sdk: sdk.clone(),
            iam: aws_sdk_iam::Client::new(sdk),
            regional: Mutex::new(HashMap::new()),
            // IAM is eventually consistent: a role created a moment ago can be refused by
            // CloudTrail's UpdateTrail ("InvalidCloudWatchLogsRoleArnException") for a few
            // seconds. About half a minute in all before giving up.
            role_propagation: [1, 2, 4, 8, 16].map(Duration::from_secs).to_vec(),
        }
    }

    fn regional(&self, region: &str) -> Arc<RegionalClients> {
        let mut clients = self
            .regional
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let built = clients.entry(region.to_string()).or_insert_with(|| {
            let sdk = self
                .sdk
                .to_builder()
                .region(aws_config::Region::new(region.to_string()))
                .build();
            Arc::new(RegionalClients {
                cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
                logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
                cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            })
        });
        Arc::clone(built)
    }

    fn logs(&self, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        self.regional(region).logs.clone()
    }

    fn cloudtrail(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        self.regional(region).cloudtrail.clone()
    }

    /// Runs one step.
    pub async fn apply(&self, action: &Action) -> Result<Applied, StepFailed> {
        match action {
            Action::CreateLogGroup { region, name } => {
                match self
                    .logs(region)
                    .create_log_group()
                    .log_group_name(name)
                    .send()
                    .await
                {
                    Ok(_) => Ok(Applied::Changed),
                    Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {
                        Ok(Applied::AlreadyThere)
                    }
                    Err(e) => Err(failed("logs:CreateLogGroup", e)),
                }
            }
            Action::PutRetentionPolicy {
                region,
                group,
                days,
            } => self
                .logs(region)
                .put_retention_policy()
                .log_group_name(group)
                .retention_in_days(*days)
                .send()
                .await
                .map(|_| Applied::Changed)
                .map_err(|e| failed("logs:PutRetentionPolicy", e)),
            Action::CreateRole {
                name,
                path,
                trust_policy,
            } => match self
                .iam
                .create_role()
                .role_name(name)
                .path(path)
                .assume_role_policy_document(trust_policy)
                .description("CloudTrail delivers the trail's events to CloudWatch Logs (created by trailwatch fix)")
                .send()
                .await
            {
                Ok(_) => Ok(Applied::Changed),
                Err(e) if e.code() == Some("EntityAlreadyExists") => Ok(Applied::AlreadyThere),
                Err(e) => Err(failed("iam:CreateRole", e)),
            },
            Action::UpdateAssumeRolePolicy {
                role, trust_policy, ..
            } => self
                .iam
                .update_assume_role_policy()
                .role_name(role)
                .policy_document(trust_policy)
                .send()
                .await
                .map(|_| Applied::Changed)
                .map_err(|e| failed("iam:UpdateAssumeRolePolicy", e)),
            Action::PutRolePolicy {
                role,
                policy_name,
                document,
            } => self
                .iam
                .put_role_policy()
                .role_name(role)
                .policy_name(policy_name)
                .policy_document(document)
                .send()
                .await
                .map(|_| Applied::Changed)
                .map_err(|e| failed("iam:PutRolePolicy", e)),
            Action::SetCloudWatchLogs {
                region,
                trail,
                log_group_arn,
                role_arn,
            } => {
                let client = self.cloudtrail(region);
                let mut waits = self.role_propagation.iter();
                loop {
                    let result = client
                        .update_trail()
                        .name(trail)
                        .cloud_watch_logs_log_group_arn(log_group_arn)
                        .cloud_watch_logs_role_arn(role_arn)
                        .send()
                        .await;
                    match result {
                        Ok(_) => return Ok(Applied::Changed),
                        Err(e) if e.code() == Some("InvalidCloudWatchLogsRoleArnException") => {
                            match waits.next() {
                                Some(wait) => tokio::time::sleep(*wait).await,
                                None => return Err(failed("cloudtrail:UpdateTrail", e)),
                            }
                        }
                        Err(e) => return Err(failed("cloudtrail:UpdateTrail", e)),
                    }
                }
            }
            Action::EnableLogFileValidation { region, trail } => self
                .cloudtrail(region)
                .update_trail()
                .name(trail)
                .enable_log_file_validation(true)
                .send()
                .await
                .map(|_| Applied::Changed)
                .map_err(|e| failed("cloudtrail:UpdateTrail", e)),
            Action::StartLogging { region, trail } => self
                .cloudtrail(region)
                .start_logging()
                .name(trail)
                .send()
                .await
                .map(|_| Applied::Changed)
                .map_err(|e| failed("cloudtrail:StartLogging", e)),
            Action::PutEventSelectors {
                region,
                trail,
                selectors,
            } => {
                let request = self
                    .cloudtrail(region)
                    .put_event_selectors()
                    .trail_name(trail);
                let request = if selectors.advanced_event_selectors.is_empty() {
                    request.set_event_selectors(Some(basic_selectors(selectors)))
                } else {
                    request.set_advanced_event_selectors(Some(advanced_selectors(selectors)?))
                };
                request
                    .send()
                    .await
                    .map(|_| Applied::Changed)
                    .map_err(|e| failed("cloudtrail:PutEventSelectors", e))
            }
            Action::PutMetricFilter { region, group } => {
                let transformation = aws_sdk_cloudwatchlogs::types::MetricTransformation::builder()
                    .metric_name(TAMPER_METRIC_NAME)
                    .metric_namespace(TAMPER_METRIC_NAMESPACE)
                    .metric_value("1")
                    .build()
                    .map_err(|e| StepFailed {
                        operation: "logs:PutMetricFilter",
                        message: e.to_string(),
                    })?;
                self.logs(region)
                    .put_metric_filter()
                    .log_group_name(group)
                    .filter_name(TAMPER_FILTER_NAME)
                    .filter_pattern(TAMPER_FILTER_PATTERN)
                    .metric_transformations(transformation)
                    .send()
                    .await
                    .map(|_| Applied::Changed)
                    .map_err(|e| failed("logs:PutMetricFilter", e))
            }
            Action::PutMetricAlarm {
                region,
                alarm_name,
                topic_arn,
            } => {
                use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
                self.regional(region)
                    .cloudwatch
                    .put_metric_alarm()
                    .alarm_name(alarm_name)
                    .alarm_description(TAMPER_ALARM_DESCRIPTION)
                    .metric_name(TAMPER_METRIC_NAME)
                    .namespace(TAMPER_METRIC_NAMESPACE)
                    .statistic(Statistic::Sum)
                    .period(TAMPER_ALARM_PERIOD_SECONDS)
                    .evaluation_periods(1)
                    .threshold(1.0)
                    .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
                    .treat_missing_data("notBreaching")
                    .alarm_actions(topic_arn)
                    .send()
                    .await
                    .map(|_| Applied::Changed)
                    .map_err(|e| failed("cloudwatch:PutMetricAlarm", e))
            }
        }
    }
}

fn basic_selectors(selectors: &EventSelectors) -> Vec<aws_sdk_cloudtrail::types::EventSelector> {
    use aws_sdk_cloudtrail::types::{DataResource, EventSelector, ReadWriteType};
    selectors
        .event_selectors
        .iter()
        .map(|e| {
            EventSelector::builder()
                .read_write_type(ReadWriteType::from(
                    e.read_write_type.as_deref().unwrap_or("All"),
                ))
                .include_management_events(e.include_management_events.unwrap_or(true))
                .set_data_resources(Some(
                    e.data_resources
                        .iter()
                        .map(|d| {
                            DataResource::builder()
                                .r#type(&d.r#type)
                                .set_values(Some(d.values.clone()))
                                .build()
                        })
                        .collect(),
                ))
                .set_exclude_management_event_sources(
                    Some(e.exclude_management_event_sources.clone())
                        .filter(|sources| !sources.is_empty()),
                )
                .build()
        })
        .collect()
}

fn advanced_selectors(
    selectors: &EventSelectors,
) -> Result<Vec<aws_sdk_cloudtrail::types::AdvancedEventSelector>, StepFailed> {
    use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector};
    let invalid = |e: aws_sdk_cloudtrail::error::BuildError| StepFailed {
        operation: "cloudtrail:PutEventSelectors",
        message: e.to_string(),
    };
    // The API takes no empty list: a condition that is not used is left out.
    let some = |values: &Vec<String>| Some(values.clone()).filter(|v| !v.is_empty());
    selectors
        .advanced_event_selectors
        .iter()
        .map(|a| {
            let fields = a
                .field_selectors
                .iter()
                .map(|f| {
                    AdvancedFieldSelector::builder()
                        .field(&f.field)
                        .set_equals(some(&f.equals))
                        .set_starts_with(some(&f.starts_with))
                        .set_ends_with(some(&f.ends_with))
                        .set_not_equals(some(&f.not_equals))
                        .set_not_starts_with(some(&f.not_starts_with))
                        .set_not_ends_with(some(&f.not_ends_with))
                        .build()
                        .map_err(invalid)
                })
                .collect::<Result<Vec<_>, _>>()?;
            AdvancedEventSelector::builder()
                .set_name(a.name.clone())
                .set_field_selectors(Some(fields))
                .build()
                .map_err(invalid)
        })
        .collect()
}
