//! Everything a run needs, built once from the `TRAILWATCH_` configuration: the inventory,
//! the Security Hub sink, the SNS channel and the alert ledger, and organisation mode. The
//! Lambda functions build [`Services`] at their cold start and the CLI at its start, so the
//! three cannot drift apart.

use crate::config::ApiCallCounter;
use crate::error::ScanError;
use crate::fanout::{self, AccountQueue, FanOutError};
use crate::flow::{self, Recheck, RecheckError};
use crate::guardrail::OrgPolicies;
use crate::inventory::{CloudTrailInventory, IamReads, Scope};
use crate::ledger::DynamoDbLedger;
use crate::organization::{self, AccountRun, OrgConfig, OrgError, OrgSummary};
use crate::publication::{Destinations, Outcome, PublishOptions};
use crate::scan::ScanOptions;
use crate::security_hub::SecurityHubSink;
use crate::settings::Config;
use crate::sns::{ChannelError, SnsChannel};
use aws_config::SdkConfig;
use chrono::Utc;
use std::sync::{Arc, OnceLock};
use tracing::warn;
use trailwatch_core::event::Change;
use trailwatch_core::recheck::{AutoRemediation, MonitorResources, Restart};

/// What the scheduled scan of an organisation did.
#[derive(Debug)]
pub enum OrgScan {
    /// Every account, scanned in this invocation.
    InProcess(Vec<AccountRun>),
    /// Handed out to the account worker; the summary of the reports.
    FannedOut(Box<OrgSummary>),
}

/// Everything a run needs, built once from the `TRAILWATCH_` configuration: at a Lambda cold
/// start, or by the CLI. Both functions and `trailwatch replay` build it here, so they cannot
/// drift apart.
pub struct Services {
    pub inventory: CloudTrailInventory,
    pub sink: Option<SecurityHubSink>,
    pub channel: Option<SnsChannel>,
    pub ledger: Option<DynamoDbLedger>,
    pub options: ScanOptions,
    pub publish: PublishOptions,
    /// trailwatch's own rules, functions, topics and key: a change to them pages HIGH.
    pub monitor: MonitorResources,
    /// What the event path undoes by itself (`TRAILWATCH_AUTO_REMEDIATE`); nothing by default.
    pub remediation: AutoRemediation,
    /// The deployment's own credentials and region, from which member accounts are reached.
    pub sdk: SdkConfig,
    /// Organisation mode, when configured.
    pub org: Option<OrgConfig>,
    /// The account queue, when organisation mode hands accounts out.
    pub queue: Option<AccountQueue>,
    /// Requests in flight within one account, for the member accounts' inventories.
    concurrency: usize,
    /// How the member accounts' delivery roles are read.
    iam_reads: IamReads,
    /// This deployment's account and partition, asked of STS once per cold start: a warm
    /// function re-checking member events does not ask again for every event.
    identity: OnceLock<(String, String)>,
}

impl Services {
    /// `trigger` names what runs, as alerts say it (`scheduled scan`, `trail-change`).
    pub fn new(sdk: &SdkConfig, config: &Config, trigger: &str) -> Result<Self, ChannelError> {
        Ok(Self {
            inventory: CloudTrailInventory::new(sdk, config.concurrency)
                .with_iam_reads(config.iam_reads),
            sink: config
                .security_hub
                .then(|| SecurityHubSink::new(sdk, ApiCallCounter::default())),
            channel: config
                .sns_topic_arn
                .as_deref()
                .map(|topic| SnsChannel::new(sdk, topic, ApiCallCounter::default()))
                .transpose()?,
            ledger: config
                .ledger_table
                .as_deref()
                .map(|table| DynamoDbLedger::new(sdk, table, trigger, ApiCallCounter::default())),
            options: ScanOptions {
                scope: Scope {
                    regions: config.regions.clone(),
                    trail: None,
                },
                max_delivery_age: config.max_delivery_age,
                gap_window: config.gap_window,
                warnings: config.warnings,
            },
            monitor: config.monitor.clone(),
            remediation: config.remediation.clone(),
            publish: PublishOptions {
                docs_url: config.docs_url.clone(),
                trigger: trigger.to_string(),
            },
            sdk: sdk.clone(),
            queue: config
                .org
                .as_ref()
                .and_then(|org| org.fan_out.as_ref())
                .map(|fan_out| {
                    AccountQueue::new(aws_sdk_sqs::Client::new(sdk), &fan_out.queue_url)
                }),
            org: config.org.clone(),
            concurrency: config.concurrency,
            iam_reads: config.iam_reads,
            identity: OnceLock::new(),
        })
    }

    /// This deployment's account id and partition.
    pub(crate) async fn caller(&self) -> Result<(String, String), OrgError> {
        if let Some(known) = self.identity.get() {
            return Ok(known.clone());
        }
        let found = organization::caller(&self.sdk).await?;
        // Two callers racing here both ask STS and store the same answer; either wins.
        Ok(self.identity.get_or_init(|| found).clone())
    }

    /// What reads and records in the account that `sdk` reaches (a member's read role): its
    /// own inventory and Security Hub sink, configured like this deployment's, with the SCPs
    /// on the account's path read through `policies`. Alerts and claims stay central, in
    /// [`Services::channel`] and [`Services::ledger`].
    pub(crate) fn reading(
        &self,
        sdk: &SdkConfig,
        policies: &Arc<OrgPolicies>,
    ) -> (CloudTrailInventory, Option<SecurityHubSink>) {
        let sink = self
            .sink
            .is_some()
            .then(|| SecurityHubSink::new(sdk, ApiCallCounter::default()));
        let inventory = CloudTrailInventory::new(sdk, self.concurrency)
            .with_iam_reads(self.iam_reads)
            .with_guardrail(Arc::clone(policies));
        (inventory, sink)
    }

    /// The organisation's SCPs, read with this deployment's credentials, cached for one run.
    pub(crate) fn org_policies(&self) -> Arc<OrgPolicies> {
        Arc::new(OrgPolicies::new(&self.sdk))
    }

    /// The STS session name member accounts see in their CloudTrail: `trailwatch-` and what
    /// runs (`trailwatch-scheduled-scan`).
    pub(crate) fn session_name(&self) -> String {
        let what: String = self
            .publish
            .trigger
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("trailwatch-{what}").chars().take(64).collect()
    }

    /// Every account of the organisation, as [`organization::run`] does it; `None` outside
    /// organisation mode.
    pub async fn run_organization(&self) -> Option<Result<Vec<AccountRun>, OrgError>> {
        let org = self.org.as_ref()?;
        Some(Box::pin(organization::run(self, org)).await)
    }

    /// The scheduled scan of the organisation: every account in this invocation, or, past the
    /// fan-out's threshold, handed out to the account worker as run `run_id`, waiting for the
    /// reports until `deadline` at the latest. `None` outside organisation mode.
    pub async fn scan_organization(
        &self,
        run_id: &str,
        deadline: std::time::Instant,
    ) -> Option<Result<OrgScan, FanOutError>> {
        let org = self.org.as_ref()?;
        Some(
            async {
                let accounts = organization::active_accounts(&self.sdk, org).await?;
                match (&org.fan_out, &self.queue) {
                    (Some(fan_out), Some(queue)) if accounts.len() > fan_out.above => {
                        let deadline = deadline.min(std::time::Instant::now() + fan_out.window);
                        let summary = Box::pin(fanout::fan_out(
                            self.ledger.as_ref(),
                            queue,
                            run_id,
                            accounts,
                            deadline,
                        ))
                        .await?;
                        Ok(OrgScan::FannedOut(Box::new(summary)))
                    }
                    _ => Ok(OrgScan::InProcess(
                        Box::pin(organization::run_accounts(self, org, accounts)).await?,
                    )),
                }
            }
            .await,
        )
    }

    /// [`recheck`] of a change in a member account: read and record through the member's read
    /// role, alert centrally. Outside organisation mode the same as [`Services::recheck`]. The
    /// deployment's own account is read with its own credentials, and like every account in
    /// organisation mode with its SCPs, so that a re-check weighs what the hourly scan weighs.
    pub async fn recheck_in_organization(&self, change: &Change) -> Result<Recheck, RecheckError> {
        let Some(org) = &self.org else {
            return self.recheck(change).await;
        };
        let (own_account, partition) =
            self.caller()
                .await
                .map_err(|source| RecheckError::MemberUnreachable {
                    account: change.account.clone(),
                    source: Box::new(source),
                })?;
        let member = organization::configuration_for(
            &self.sdk,
            org,
            &partition,
            &own_account,
            &change.account,
            &self.session_name(),
        )
        .await
        .map_err(|source| RecheckError::MemberUnreachable {
            account: change.account.clone(),
            source: Box::new(source),
        })?;
        let (inventory, sink) = self.reading(&member, &self.org_policies());
        let destinations = Destinations {
            sink: sink.as_ref(),
            channel: self.channel.as_ref(),
            ledger: self.ledger.as_ref(),
        };
        let restart = self.restart_if_asked(&member, change, &partition).await;
        Box::pin(flow::recheck(
            &inventory,
            destinations,
            &self.options,
            &self.publish,
            &self.monitor,
            change,
            restart.as_ref(),
        ))
        .await
    }

    /// `TRAILWATCH_AUTO_REMEDIATE=start-logging`: starts a trail a caller outside the exempt
    /// patterns stopped, through `sdk` (the account the trail is in), before the re-check
    /// reads it, so the page can say it is logging again.
    async fn restart_if_asked(
        &self,
        sdk: &SdkConfig,
        change: &Change,
        partition: &str,
    ) -> Option<Restart> {
        let target = self.remediation.restart_for(change, partition)?;
        let client = aws_sdk_cloudtrail::Client::from_conf(
            aws_sdk_cloudtrail::config::Builder::from(sdk)
                .region(aws_config::Region::new(target.region.clone()))
                .build(),
        );
        Some(
            match client.start_logging().name(&target.trail_arn).send().await {
                Ok(_) => {
                    warn!(trail = %target.trail_arn, stopped_by = change.actor.arn.as_deref().unwrap_or("unknown"), "restarted a stopped trail");
                    Restart::Restarted { at: Utc::now() }
                }
                Err(error) => {
                    let why = crate::error::short_error(&error);
                    warn!(trail = %target.trail_arn, error = %why, "could not restart a stopped trail");
                    Restart::Failed { why }
                }
            },
        )
    }

    /// Where this deployment records and alerts.
    pub fn destinations(&self) -> Destinations<'_, SecurityHubSink, SnsChannel, DynamoDbLedger> {
        Destinations {
            sink: self.sink.as_ref(),
            channel: self.channel.as_ref(),
            ledger: self.ledger.as_ref(),
        }
    }

    /// [`run`] with these services.
    pub async fn run(&self) -> Result<Outcome, ScanError> {
        Box::pin(flow::run(
            &self.inventory,
            self.destinations(),
            &self.options,
            &self.publish,
        ))
        .await
    }

    /// [`recheck`] with these services.
    pub async fn recheck(&self, change: &Change) -> Result<Recheck, RecheckError> {
        // Only a stop this deployment may undo costs the identity call; a caller that cannot
        // be identified, or an event of another account, restarts nothing (and the re-check
        // says why).
        let restart =
            match self.remediation.start_logging && change.actor.event_name == "StopLogging" {
                true => match self.caller().await {
                    Ok((account, partition)) if account == change.account => {
                        self.restart_if_asked(&self.sdk, change, &partition).await
                    }
                    _ => None,
                },
                false => None,
            };
        Box::pin(flow::recheck(
            &self.inventory,
            self.destinations(),
            &self.options,
            &self.publish,
            &self.monitor,
            change,
            restart.as_ref(),
        ))
        .await
    }
}
