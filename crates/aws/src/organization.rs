//! Organisation mode: every active account of an AWS Organization, each read through a role
//! assumed with STS, a few accounts at a time.
//!
//! The deployment's own account is read with its own credentials; every other account through
//! `arn:PARTITION:iam::ACCOUNT:role/ROLE_NAME` (deployed by `infra/member-account.yaml`). Each
//! account's findings go into that account's own Security Hub, through the assumed role,
//! because Security Hub accepts a finding only from the account it is about (with the default
//! product ARN). The delegated administrator's aggregation shows them in one place. Alerts go
//! to the one central topic, and the alert ledger is central too.
//!
//! An account whose role cannot be assumed is one ERROR evaluation naming why; the others go on.

use crate::error::{is_transient, short_error};
use crate::fanout::{FanOutConfig, FanOutSummary};
use crate::flow;
use crate::guardrail::OrgPolicies;
use crate::publication::{Destinations, Outcome, RunSummary};
use crate::services::Services;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_organizations::operation::list_accounts::ListAccountsError;
use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};
use tracing::{info, warn};
use trailwatch_core::evaluate::{Evaluation, EvaluationKind};
use trailwatch_core::reason::{Reason, ReasonCode, Severity, Status};

/// Accounts read at once, unless `TRAILWATCH_ORG_CONCURRENCY` says otherwise. Each account's
/// scan already has `TRAILWATCH_CONCURRENCY` requests in flight. At 8, 1,000 accounts of about
/// 3 s each take about 6 minutes, well inside Lambda's 15 (README, "Scale").
pub const DEFAULT_ACCOUNT_CONCURRENCY: usize = 8;

/// How to reach the organisation's accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgConfig {
    /// The read role's name in every member account (`TRAILWATCH_ORG_ROLE_NAME`).
    pub role_name: String,
    /// `TRAILWATCH_ORG_EXTERNAL_ID`, when the role's trust policy asks for one.
    pub external_id: Option<String>,
    /// Only these accounts, when not empty (`TRAILWATCH_ORG_ACCOUNTS`).
    pub include: Vec<String>,
    /// Never these accounts (`TRAILWATCH_ORG_EXCLUDE_ACCOUNTS`).
    pub exclude: Vec<String>,
    /// Accounts read at once (`TRAILWATCH_ORG_CONCURRENCY`).
    pub concurrency: usize,
    /// Above how many accounts the scheduled scan hands them out, and where
    /// (`TRAILWATCH_ORG_QUEUE_URL`); `None` scans every account in the one invocation.
    pub fan_out: Option<FanOutConfig>,
}

/// One account of the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAccount {
    pub id: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("the organisation's accounts could not be listed (organizations:ListAccounts, which works from the management account or a delegated administrator): {}", short_error(.0.as_ref()))]
    List(#[source] Box<SdkError<ListAccountsError>>),
    #[error("the deployment's own account could not be identified (sts:GetCallerIdentity): {}", short_error(.0.as_ref()))]
    Identity(#[source] Box<SdkError<GetCallerIdentityError>>),
    #[error("could not assume {role_arn}: {}", short_error(.source.as_ref()))]
    AssumeRole {
        role_arn: String,
        #[source]
        source: Box<SdkError<AssumeRoleError>>,
    },
    #[error("sts:AssumeRole of {role_arn} returned no credentials")]
    NoCredentials { role_arn: String },
}

impl OrgError {
    /// Whether the same call may succeed later: throttling, a server fault, no answer. An
    /// access denial (the read role missing, or not trusting this deployment) is not.
    pub fn is_transient(&self) -> bool {
        match self {
            OrgError::List(error) => is_transient(error),
            OrgError::Identity(error) => is_transient(error),
            OrgError::AssumeRole { source, .. } => is_transient(source),
            OrgError::NoCredentials { .. } => false,
        }
    }
}

/// Whether an account can be read. AWS retired `Status` on 9 September 2026 in favour of
/// `State`; emulators and older partitions may still send only `Status`.
fn is_active(account: &Account) -> bool {
    match (account.state(), account.status()) {
        (Some(state), _) => *state == AccountState::Active,
        (None, Some(status)) => *status == AccountStatus::Active,
        (None, None) => false,
    }
}

/// The active accounts of the organisation, filtered by `config`'s lists, sorted by id.
pub async fn active_accounts(
    sdk: &SdkConfig,
    config: &OrgConfig,
) -> Result<Vec<MemberAccount>, OrgError> {
    let client = aws_sdk_organizations::Client::new(sdk);
    let pages: Vec<_> = client
        .list_accounts()
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| OrgError::List(Box::new(e)))?;
    let mut accounts: Vec<MemberAccount> = pages
        .iter()
        .flat_map(|page| page.accounts())
        .filter(|a| is_active(a))
        .filter_map(|a| {
            Some(MemberAccount {
                id: a.id()?.to_string(),
                name: a.name().unwrap_or_default().to_string(),
            })
        })
        .filter(|a| config.include.is_empty() || config.include.contains(&a.id))
        .filter(|a| !config.exclude.contains(&a.id))
        .collect();
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(accounts)
}

/// The caller's account id and partition, from its ARN.
pub async fn caller(sdk: &SdkConfig) -> Result<(String, String), OrgError> {
    let identity = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| OrgError::Identity(Box::new(e)))?;
    let account = identity.account().unwrap_or_default().to_string();
    let partition = identity
        .arn()
        .and_then(|arn| arn.split(':').nth(1))
        .unwrap_or("aws")
        .to_string();
    Ok((account, partition))
}

/// The SDK configuration for `account`: the caller's own for its own account, else the read
/// role's, assumed for one hour (a scan of one account takes seconds).
pub async fn configuration_for(
    sdk: &SdkConfig,
    config: &OrgConfig,
    partition: &str,
    own_account: &str,
    account: &str,
    session: &str,
) -> Result<SdkConfig, OrgError> {
    if account == own_account {
        return Ok(sdk.clone());
    }
    let role_arn = format!("arn:{partition}:iam::{account}:role/{}", config.role_name);
    let assumed = aws_sdk_sts::Client::new(sdk)
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name(session)
        .set_external_id(config.external_id.clone())
        .send()
        .await
        .map_err(|source| OrgError::AssumeRole {
            role_arn: role_arn.clone(),
            source: Box::new(source),
        })?;
    let Some(keys) = assumed.credentials() else {
        return Err(OrgError::NoCredentials { role_arn });
    };
    let expiry = UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(keys.expiration().secs()).unwrap_or(0));
    let credentials = Credentials::new(
        keys.access_key_id(),
        keys.secret_access_key(),
        Some(keys.session_token().to_string()),
        Some(expiry),
        "trailwatch-organisation-role",
    );
    Ok(sdk
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build())
}

/// What happened in one account.
#[derive(Debug, Clone)]
pub enum AccountRun {
    Scanned {
        account: MemberAccount,
        outcome: Box<Outcome>,
    },
    /// The account could not be read at all: its role, or its identity, failed.
    Unreachable {
        account: MemberAccount,
        evaluation: Box<Evaluation>,
        /// Whether trying again later may reach it (throttling, an outage), as opposed to a
        /// role that is missing or does not trust this deployment.
        transient: bool,
    },
}

impl AccountRun {
    pub fn account(&self) -> &MemberAccount {
        match self {
            AccountRun::Scanned { account, .. } | AccountRun::Unreachable { account, .. } => {
                account
            }
        }
    }
}

/// The ERROR evaluation of an account trailwatch could not read.
pub fn unreachable_account(account: &str, region: &str, why: &str) -> Evaluation {
    Evaluation {
        kind: EvaluationKind::Account,
        resource_id: Evaluation::account_resource_id(account),
        account_id: account.to_string(),
        region: region.to_string(),
        status: Status::Error,
        severity: Severity::Medium,
        reasons: vec![Reason::new(
            ReasonCode::EvaluationIncomplete,
            format!("Account {account} was not evaluated: {why}. Check that infra/member-account.yaml is deployed there and trusts this deployment."),
        )],
        trail: None,
        exemption: None,
    }
}

/// What an organisation run did, as the function returns it.
#[derive(Debug, Clone, Serialize)]
pub struct OrgSummary {
    pub accounts: usize,
    pub scanned: usize,
    pub unreachable: Vec<UnreachableAccount>,
    pub api_calls: u64,
    pub duration_ms: u64,
    pub runs: Vec<RunSummary>,
    /// A run handed out to the account worker (then `runs` stays empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fan_out: Option<FanOutSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreachableAccount {
    pub account_id: String,
    pub name: String,
    pub reason: String,
}

/// Scans and publishes every account of the organisation, `org.concurrency` at a time, each
/// through [`Services::reading`] with `services`' alerts and ledger.
pub async fn run(services: &Services, org: &OrgConfig) -> Result<Vec<AccountRun>, OrgError> {
    let accounts = active_accounts(&services.sdk, org).await?;
    Box::pin(run_accounts(services, org, accounts)).await
}

/// [`run`] over accounts already listed.
pub async fn run_accounts(
    services: &Services,
    org: &OrgConfig,
    accounts: Vec<MemberAccount>,
) -> Result<Vec<AccountRun>, OrgError> {
    let started = Instant::now();
    let reach = Reach::new(services, org).await?;
    info!(accounts = accounts.len(), "organisation run starting");
    let reach = &reach;
    let mut runs: Vec<AccountRun> = stream::iter(accounts)
        .map(|account| async move { Box::pin(reach.run(services, account)).await })
        .buffer_unordered(org.concurrency.max(1))
        .collect()
        .await;
    info!(
        accounts = runs.len(),
        duration_ms = started.elapsed().as_millis() as u64,
        "organisation run finished"
    );
    runs.sort_by(|a, b| a.account().id.cmp(&b.account().id));
    Ok(runs)
}

/// What reaching any account of the organisation takes, worked out once per run (or per
/// batch of the fan-out's worker).
pub struct Reach {
    org: OrgConfig,
    /// This deployment's account, read with its own credentials, and its partition.
    own_account: String,
    partition: String,
    /// Where an unreachable account's ERROR evaluation is filed.
    home_region: String,
    /// The STS session name member accounts see.
    session: String,
    /// The organisation's SCPs, read once and shared by every account's scan.
    policies: Arc<OrgPolicies>,
}

impl Reach {
    /// Asks STS who this deployment is (once per cold start, see [`Services::caller`]).
    pub async fn new(services: &Services, org: &OrgConfig) -> Result<Self, OrgError> {
        let (own_account, partition) = services.caller().await?;
        Ok(Reach {
            org: org.clone(),
            own_account,
            partition,
            home_region: services
                .sdk
                .region()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            session: services.session_name(),
            policies: services.org_policies(),
        })
    }

    /// Scans and publishes one account: through its read role (or this deployment's own
    /// credentials for its own account), with `services`' alerts and ledger.
    pub async fn run(&self, services: &Services, account: MemberAccount) -> AccountRun {
        let reached = configuration_for(
            &services.sdk,
            &self.org,
            &self.partition,
            &self.own_account,
            &account.id,
            &self.session,
        )
        .await;
        match reached {
            Ok(sdk) => {
                Box::pin(scan_one(
                    services,
                    &sdk,
                    &self.policies,
                    account,
                    &self.home_region,
                ))
                .await
            }
            Err(why) => unreachable(
                account,
                &self.home_region,
                &why.to_string(),
                why.is_transient(),
            ),
        }
    }
}

/// An account that could not be read at all, logged and turned into its ERROR evaluation.
fn unreachable(
    account: MemberAccount,
    home_region: &str,
    why: &str,
    transient: bool,
) -> AccountRun {
    warn!(account = %account.id, error = %why, transient, "account not evaluated");
    let evaluation = unreachable_account(&account.id, home_region, why);
    AccountRun::Unreachable {
        account,
        evaluation: Box::new(evaluation),
        transient,
    }
}

async fn scan_one(
    services: &Services,
    sdk: &SdkConfig,
    policies: &Arc<OrgPolicies>,
    account: MemberAccount,
    home_region: &str,
) -> AccountRun {
    let (inventory, sink) = services.reading(sdk, policies);
    let destinations = Destinations {
        sink: sink.as_ref(),
        channel: services.channel.as_ref(),
        ledger: services.ledger.as_ref(),
    };
    match Box::pin(flow::run(
        &inventory,
        destinations,
        &services.options,
        &services.publish,
    ))
    .await
    {
        Ok(outcome) => AccountRun::Scanned {
            account,
            outcome: Box::new(outcome),
        },
        Err(error) => unreachable(
            account,
            home_region,
            &error.to_string(),
            error.is_transient(),
        ),
    }
}

/// The runs, summed up for the function's response.
pub fn summarize(runs: &[AccountRun], duration_ms: u64) -> OrgSummary {
    let mut summary = OrgSummary {
        accounts: runs.len(),
        scanned: 0,
        unreachable: Vec::new(),
        api_calls: 0,
        duration_ms,
        runs: Vec::new(),
        fan_out: None,
    };
    for run in runs {
        match run {
            AccountRun::Scanned { outcome, .. } => {
                summary.scanned += 1;
                summary.api_calls += outcome.report.api_calls;
                summary.runs.push(outcome.summary());
            }
            AccountRun::Unreachable {
                account,
                evaluation,
                ..
            } => summary.unreachable.push(UnreachableAccount {
                account_id: account.id.clone(),
                name: account.name.clone(),
                reason: evaluation
                    .reasons
                    .first()
                    .map(|r| r.message.clone())
                    .unwrap_or_default(),
            }),
        }
    }
    summary
}
