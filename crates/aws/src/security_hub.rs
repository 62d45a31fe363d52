//! The Security Hub sink: reads trailwatch's active findings and imports new ones.

use crate::config::ApiCallCounter;
use aws_config::{Region, SdkConfig};
use aws_sdk_securityhub::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_securityhub::types::{
    AwsCloudTrailTrailDetails, AwsSecurityFinding, AwsSecurityFindingFilters,
    AwsSecurityFindingIdentifier, Compliance, ComplianceStatus, Note as SdkNote, NoteUpdate,
    Recommendation, RecordState, Remediation, Resource as SdkResource,
    ResourceDetails as SdkResourceDetails, Severity, SeverityLabel,
    StatusReason as SdkStatusReason, StringFilter, StringFilterComparison, Workflow as SdkWorkflow,
    WorkflowStatus, WorkflowUpdate as SdkWorkflowUpdate,
};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tracing::{instrument, warn};
use trailwatch_core::finding::{
    self, CloudTrailTrailDetails, Finding, FindingSeverity, Note,
    Recommendation as CoreRecommendation, Remediation as CoreRemediation, Resource,
    ResourceDetails, StatusReason, Workflow, RECORD_ACTIVE,
};
use trailwatch_core::reconcile::WorkflowUpdate;

/// Security Hub accepts at most 100 findings per `BatchImportFindings`.
pub const BATCH_SIZE: usize = 100;
/// Attempts for findings that Security Hub reports in `FailedFindings`.
pub const IMPORT_ATTEMPTS: u32 = 3;

/// A finding Security Hub refused, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedFinding {
    pub id: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("Security Hub is not enabled in {region}: enable it (aws securityhub enable-security-hub --region {region}) or set TRAILWATCH_SECURITY_HUB=false; alerts still go out")]
    NotEnabled {
        region: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("trailwatch may not read its findings in {region} (securityhub:GetFindings was denied: {}). Grant it securityhub:GetFindings on arn:aws:securityhub:{region}:ACCOUNT:hub/default (infra/template.yaml does); until then this run pages without Security Hub's memory there", DisplayErrorContext(.source))]
    Denied {
        region: String,
        #[source]
        source: SdkError<aws_sdk_securityhub::operation::get_findings::GetFindingsError>,
    },
    #[error("reading trailwatch findings in {region} failed: {}", DisplayErrorContext(.source))]
    Read {
        region: String,
        #[source]
        source: SdkError<aws_sdk_securityhub::operation::get_findings::GetFindingsError>,
    },
    #[error("importing findings in {region} failed: {}", DisplayErrorContext(.source))]
    Import {
        region: String,
        ids: Vec<String>,
        #[source]
        source: SdkError<
            aws_sdk_securityhub::operation::batch_import_findings::BatchImportFindingsError,
        >,
    },
    #[error("updating the workflow of findings in {region} failed (securityhub:BatchUpdateFindings): {}", DisplayErrorContext(.source))]
    Update {
        region: String,
        #[source]
        source: SdkError<
            aws_sdk_securityhub::operation::batch_update_findings::BatchUpdateFindingsError,
        >,
    },
    #[error("Security Hub in {region} did not update the workflow of {} finding(s): {}", .rejected.len(), describe(.rejected))]
    NotUpdated {
        region: String,
        rejected: Vec<RejectedFinding>,
    },
    #[error("Security Hub in {region} rejected {} finding(s) after {IMPORT_ATTEMPTS} attempts: {}", .rejected.len(), describe(.rejected))]
    Rejected {
        region: String,
        rejected: Vec<RejectedFinding>,
    },
}

fn describe(rejected: &[RejectedFinding]) -> String {
    rejected
        .iter()
        .map(|r| format!("{} ({}: {})", r.id, r.code, r.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl SinkError {
    /// The finding ids this error left unrecorded (all of a failed batch, or the rejected).
    pub fn unrecorded(&self) -> Vec<String> {
        match self {
            SinkError::Import { ids, .. } => ids.clone(),
            SinkError::Rejected { rejected, .. } => rejected.iter().map(|r| r.id.clone()).collect(),
            SinkError::NotEnabled { .. }
            | SinkError::Denied { .. }
            | SinkError::Read { .. }
            | SinkError::Update { .. }
            | SinkError::NotUpdated { .. } => vec![],
        }
    }

    /// Whether trying again later may succeed (an outage), as opposed to a setup problem.
    /// A workflow update that was denied (a member stack from before exemptions, or an SCP
    /// that keeps suppression to people) or refused finding by finding will not succeed on a
    /// retry either; it is reported, and loses no page.
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::NotEnabled { .. }
            | SinkError::Denied { .. }
            | SinkError::NotUpdated { .. } => false,
            SinkError::Update { source, .. } => !is_denied(source),
            _ => true,
        }
    }
}

/// The port the flow records findings through; [`SecurityHubSink`] is the AWS adapter.
pub trait FindingSink {
    /// trailwatch's active findings for `account` in `region`.
    fn prior(
        &self,
        account: &str,
        partition: &str,
        region: &str,
    ) -> impl Future<Output = Result<Vec<Finding>, SinkError>> + Send;

    /// Imports `findings` into `region`, retrying rejected ones, in batches of 100.
    fn import(
        &self,
        region: &str,
        findings: &[Finding],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Sets the workflow status and note of existing findings in `region`: what an import
    /// may not change once a finding exists.
    fn update_workflow(
        &self,
        region: &str,
        updates: &[WorkflowUpdate],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

pub struct SecurityHubSink {
    sdk: SdkConfig,
    counter: ApiCallCounter,
    clients: Mutex<HashMap<String, aws_sdk_securityhub::Client>>,
}

/// `AccessDenied` in its spellings: a permission missing, which no retry fixes.
fn is_denied<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    matches!(
        error.code(),
        Some("AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation")
    )
}

fn is_not_enabled<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    matches!(
        error.code(),
        Some("InvalidAccessException" | "InvalidAccess")
    )
}

impl SecurityHubSink {
    pub fn new(sdk: &SdkConfig, counter: ApiCallCounter) -> Self {
        Self {
            sdk: sdk.clone(),
            counter,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_securityhub::Client {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                aws_sdk_securityhub::Client::from_conf(
                    aws_sdk_securityhub::config::Builder::from(&self.sdk)
                        .region(Region::new(region.to_string()))
                        .interceptor(self.counter.clone())
                        .build(),
                )
            })
            .clone()
    }

    async fn import_batch(&self, region: &str, batch: &[Finding]) -> Result<(), SinkError> {
        let client = self.client(region);
        let mut pending: Vec<&Finding> = batch.iter().collect();
        let mut rejected = Vec::new();
        for attempt in 1..=IMPORT_ATTEMPTS {
            let result = client
                .batch_import_findings()
                .set_findings(Some(pending.iter().map(|f| to_sdk(f)).collect()))
                .send()
                .await;
            let output = match result {
                Ok(output) => output,
                Err(e) if is_not_enabled(&e) => {
                    return Err(SinkError::NotEnabled {
                        region: region.to_string(),
                        source: Box::new(e),
                    })
                }
                Err(source) => {
                    return Err(SinkError::Import {
                        region: region.to_string(),
                        ids: pending.iter().map(|f| f.id.clone()).collect(),
                        source,
                    })
                }
            };
            rejected = output
                .failed_findings()
                .iter()
                .map(|f| RejectedFinding {
                    id: f.id().unwrap_or_default().to_string(),
                    code: f.error_code().unwrap_or_default().to_string(),
                    message: f.error_message().unwrap_or_default().to_string(),
                })
                .collect();
            if rejected.is_empty() {
                return Ok(());
            }
            warn!(
                region,
                attempt,
                rejected = rejected.len(),
                "Security Hub rejected findings"
            );
            pending.retain(|f| rejected.iter().any(|r| r.id == f.id));
            if attempt < IMPORT_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt - 1))).await;
            }
        }
        Err(SinkError::Rejected {
            region: region.to_string(),
            rejected,
        })
    }
}

fn equals(value: &str) -> StringFilter {
    StringFilter::builder()
        .value(value)
        .comparison(StringFilterComparison::Equals)
        .build()
}

impl FindingSink for SecurityHubSink {
    #[instrument(skip(self))]
    async fn prior(
        &self,
        account: &str,
        partition: &str,
        region: &str,
    ) -> Result<Vec<Finding>, SinkError> {
        let product = finding::product_arn(partition, region, account);
        let filters = AwsSecurityFindingFilters::builder()
            .generator_id(equals(finding::GENERATOR_ID))
            .aws_account_id(equals(account))
            .product_arn(equals(&product))
            .record_state(equals(RECORD_ACTIVE))
            .build();
        let found = self
            .client(region)
            .get_findings()
            .filters(filters)
            .max_results(100)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await;
        let found = match found {
            Ok(found) => found,
            Err(e) if is_not_enabled(&e) => {
                return Err(SinkError::NotEnabled {
                    region: region.to_string(),
                    source: Box::new(e),
                })
            }
            Err(source) if is_denied(&source) => {
                return Err(SinkError::Denied {
                    region: region.to_string(),
                    source,
                })
            }
            Err(source) => {
                return Err(SinkError::Read {
                    region: region.to_string(),
                    source,
                })
            }
        };
        // The same filter again on this side: moto ignores filters, and Security Hub is
        // eventually consistent, so a just-archived finding may still come back as active.
        Ok(found
            .iter()
            .filter_map(from_sdk)
            .filter(|f| {
                f.generator_id == finding::GENERATOR_ID
                    && f.aws_account_id == account
                    && f.product_arn == product
                    && f.record_state == RECORD_ACTIVE
            })
            .collect())
    }

    #[instrument(skip(self, updates), fields(count = updates.len()))]
    async fn update_workflow(
        &self,
        region: &str,
        updates: &[WorkflowUpdate],
    ) -> Result<(), SinkError> {
        self.update_groups(region, updates).await
    }

    #[instrument(skip(self, findings), fields(count = findings.len()))]
    async fn import(&self, region: &str, findings: &[Finding]) -> Result<(), SinkError> {
        let mut errors = Vec::new();
        for batch in findings.chunks(BATCH_SIZE) {
            if let Err(e) = self.import_batch(region, batch).await {
                if matches!(e, SinkError::NotEnabled { .. }) {
                    return Err(e);
                }
                errors.push(e);
            }
        }
        // Every batch was tried; report the first failure, with every unrecorded id folded in.
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => {
                let rejected = errors
                    .iter()
                    .flat_map(|e| {
                        e.unrecorded().into_iter().map(|id| RejectedFinding {
                            id,
                            code: "ImportFailed".into(),
                            message: e.to_string(),
                        })
                    })
                    .collect();
                Err(SinkError::Rejected {
                    region: region.to_string(),
                    rejected,
                })
            }
        }
    }
}

/// `BatchUpdateFindings` takes one workflow and note for up to 100 findings.
const UPDATE_BATCH_SIZE: usize = 100;

impl SecurityHubSink {
    /// One `BatchUpdateFindings` per workflow, note and 100 findings; every group is tried,
    /// and the first failure is returned with every finding left unchanged.
    async fn update_groups(
        &self,
        region: &str,
        updates: &[WorkflowUpdate],
    ) -> Result<(), SinkError> {
        let mut groups: std::collections::BTreeMap<(&str, &str), Vec<&WorkflowUpdate>> =
            std::collections::BTreeMap::new();
        for update in updates {
            groups
                .entry((update.status.as_str(), update.note.text.as_str()))
                .or_default()
                .push(update);
        }
        let client = self.client(region);
        let mut rejected = Vec::new();
        let mut failure = None;
        for ((status, text), members) in groups {
            for batch in members.chunks(UPDATE_BATCH_SIZE) {
                let identifiers = batch
                    .iter()
                    .map(|u| {
                        AwsSecurityFindingIdentifier::builder()
                            .id(&u.finding_id)
                            .product_arn(&u.product_arn)
                            .build()
                    })
                    .collect();
                let result = client
                    .batch_update_findings()
                    .set_finding_identifiers(Some(identifiers))
                    .workflow(
                        SdkWorkflowUpdate::builder()
                            .status(WorkflowStatus::from(status))
                            .build(),
                    )
                    .note(
                        NoteUpdate::builder()
                            .text(text)
                            .updated_by(&batch[0].note.updated_by)
                            .build(),
                    )
                    .send()
                    .await;
                match result {
                    Ok(output) => rejected.extend(output.unprocessed_findings().iter().map(|f| {
                        RejectedFinding {
                            id: f
                                .finding_identifier()
                                .and_then(|i| i.id())
                                .unwrap_or_default()
                                .to_string(),
                            code: f.error_code().unwrap_or_default().to_string(),
                            message: f.error_message().unwrap_or_default().to_string(),
                        }
                    })),
                    Err(source) => {
                        warn!(region, error = %DisplayErrorContext(&source), "BatchUpdateFindings failed");
                        failure.get_or_insert(SinkError::Update {
                            region: region.to_string(),
                            source,
                        });
                    }
                }
            }
        }
        match (failure, rejected.is_empty()) {
            (Some(error), _) => Err(error),
            (None, false) => Err(SinkError::NotUpdated {
                region: region.to_string(),
                rejected,
            }),
            (None, true) => Ok(()),
        }
    }
}

fn to_sdk(f: &Finding) -> AwsSecurityFinding {
    let resources = f
        .resources
        .iter()
        .map(|r| {
            SdkResource::builder()
                .r#type(&r.r#type)
                .id(&r.id)
                .partition(r.partition.as_str().into())
                .region(&r.region)
                .set_details(r.details.as_ref().map(|d| {
                    SdkResourceDetails::builder()
                        .set_aws_cloud_trail_trail(d.aws_cloud_trail_trail.as_ref().map(|t| {
                            AwsCloudTrailTrailDetails::builder()
                                .set_cloud_watch_logs_log_group_arn(
                                    t.cloud_watch_logs_log_group_arn.clone(),
                                )
                                .set_cloud_watch_logs_role_arn(t.cloud_watch_logs_role_arn.clone())
                                .set_home_region(t.home_region.clone())
                                .set_is_multi_region_trail(t.is_multi_region_trail)
                                .set_is_organization_trail(t.is_organization_trail)
                                .set_log_file_validation_enabled(t.log_file_validation_enabled)
                                .set_name(t.name.clone())
                                .set_s3_bucket_name(t.s3_bucket_name.clone())
                                .set_trail_arn(t.trail_arn.clone())
                                .build()
                        }))
                        .build()
                }))
                .build()
        })
        .collect();
    AwsSecurityFinding::builder()
        .schema_version(&f.schema_version)
        .id(&f.id)
        .product_arn(&f.product_arn)
        .generator_id(&f.generator_id)
        .aws_account_id(&f.aws_account_id)
        .region(&f.region)
        .set_types(Some(f.types.clone()))
        .created_at(&f.created_at)
        .updated_at(&f.updated_at)
        .severity(
            Severity::builder()
                .label(SeverityLabel::from(f.severity.label.as_str()))
                .build(),
        )
        .title(&f.title)
        .description(&f.description)
        .set_remediation(f.remediation.as_ref().map(|r| {
            Remediation::builder()
                .recommendation(
                    Recommendation::builder()
                        .text(&r.recommendation.text)
                        .url(&r.recommendation.url)
                        .build(),
                )
                .build()
        }))
        .set_product_fields(Some(
            f.product_fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))
        .set_resources(Some(resources))
        .set_compliance(f.compliance.as_ref().map(|c| {
            Compliance::builder()
                .status(ComplianceStatus::from(c.status.as_str()))
                .set_status_reasons(Some(
                    c.status_reasons
                        .iter()
                        .map(|s| {
                            SdkStatusReason::builder()
                                .reason_code(&s.reason_code)
                                .description(&s.description)
                                .build()
                        })
                        .collect(),
                ))
                .set_related_requirements(Some(c.related_requirements.clone()))
                .build()
        }))
        .record_state(RecordState::from(f.record_state.as_str()))
        .set_workflow(f.workflow.as_ref().map(|w| {
            SdkWorkflow::builder()
                .status(WorkflowStatus::from(w.status.as_str()))
                .build()
        }))
        .set_note(f.note.as_ref().map(|n| {
            SdkNote::builder()
                .text(&n.text)
                .updated_by(&n.updated_by)
                .updated_at(&n.updated_at)
                .build()
        }))
        .build()
}

/// Reads a finding back. Security Hub adds product fields of its own (`aws/securityhub/…`);
/// they are dropped so that a re-import does not write them back as if they were ours.
fn from_sdk(f: &AwsSecurityFinding) -> Option<Finding> {
    let resources = f
        .resources()
        .iter()
        .map(|r| Resource {
            r#type: r.r#type().unwrap_or_default().to_string(),
            id: r.id().unwrap_or_default().to_string(),
            partition: r
                .partition()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            region: r.region().unwrap_or_default().to_string(),
            details: r.details().map(|d| ResourceDetails {
                aws_cloud_trail_trail: d.aws_cloud_trail_trail().map(|t| CloudTrailTrailDetails {
                    cloud_watch_logs_log_group_arn: t
                        .cloud_watch_logs_log_group_arn()
                        .map(str::to_string),
                    cloud_watch_logs_role_arn: t.cloud_watch_logs_role_arn().map(str::to_string),
                    home_region: t.home_region().map(str::to_string),
                    is_multi_region_trail: t.is_multi_region_trail(),
                    is_organization_trail: t.is_organization_trail(),
                    log_file_validation_enabled: t.log_file_validation_enabled(),
                    name: t.name().map(str::to_string),
                    s3_bucket_name: t.s3_bucket_name().map(str::to_string),
                    trail_arn: t.trail_arn().map(str::to_string),
                }),
            }),
        })
        .collect();
    Some(Finding {
        schema_version: f.schema_version()?.to_string(),
        id: f.id()?.to_string(),
        product_arn: f.product_arn()?.to_string(),
        generator_id: f.generator_id()?.to_string(),
        aws_account_id: f.aws_account_id()?.to_string(),
        region: f.region().unwrap_or_default().to_string(),
        types: f.types().to_vec(),
        created_at: f.created_at()?.to_string(),
        updated_at: f.updated_at()?.to_string(),
        severity: FindingSeverity {
            label: f
                .severity()
                .and_then(|s| s.label())
                .map(|l| l.as_str().to_string())
                .unwrap_or_default(),
        },
        title: f.title()?.to_string(),
        description: f.description()?.to_string(),
        remediation: f
            .remediation()
            .and_then(|r| r.recommendation())
            .map(|r| CoreRemediation {
                recommendation: CoreRecommendation {
                    text: r.text().unwrap_or_default().to_string(),
                    url: r.url().unwrap_or_default().to_string(),
                },
            }),
        product_fields: f
            .product_fields()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("trailwatch/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        resources,
        compliance: f.compliance().map(|c| finding::Compliance {
            status: c
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            status_reasons: c
                .status_reasons()
                .iter()
                .map(|s| StatusReason {
                    reason_code: s.reason_code().unwrap_or_default().to_string(),
                    description: s.description().unwrap_or_default().to_string(),
                })
                .collect(),
            related_requirements: c.related_requirements().to_vec(),
        }),
        record_state: f
            .record_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| RECORD_ACTIVE.to_string()),
        workflow: f.workflow().and_then(|w| w.status()).map(|s| Workflow {
            status: s.as_str().to_string(),
        }),
        note: f.note().map(|n| Note {
            text: n.text().unwrap_or_default().to_string(),
            updated_by: n.updated_by().unwrap_or_default().to_string(),
            updated_at: n.updated_at().unwrap_or_default().to_string(),
        }),
    })
}
