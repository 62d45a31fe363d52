//! Collection: reads everything the rules need from AWS into an [`AccountSnapshot`].
//!
//! One `DescribeTrails` per region, one `GetTrailStatus` and `GetEventSelectors` per trail in its
//! home region, and each distinct log group and role once, however many trails share them. All
//! of it runs concurrently up to a bound. A failed call is recorded as `Unavailable` in the
//! snapshot and the scan goes on; only failing to know the account at all stops it.

use crate::config::ApiCallCounter;
use crate::error::{is_not_found, unavailable, ScanError};
use crate::mapping;
use aws_config::{Region, SdkConfig};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tracing::{debug, instrument, warn};
use trailwatch_core::arn::{Arn, LogGroupRef, RoleRef};
use trailwatch_core::recheck::{same_key, Lookup};
use trailwatch_core::snapshot::{
    LogGroup, LogGroupSnapshot, MetricAlarm, MetricFilter, NamedPolicy, RegionSnapshot, Role,
    RoleSnapshot, TrailDetails,
};
use trailwatch_core::{unique_trails, AccountSnapshot, Observed, TrailView, Unavailable};

/// Which regions to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionSelection {
    /// Every region enabled for the account, from `account:ListRegions`.
    All,
    List(Vec<String>),
}

impl FromStr for RegionSelection {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(RegionSelection::All);
        }
        let regions: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect();
        if regions.is_empty() {
            return Err("expected `all` or a comma-separated list of regions".into());
        }
        if let Some(bad) = regions
            .iter()
            .find(|r| !trailwatch_core::arn::looks_like_region(r))
        {
            return Err(format!("{bad:?} is not a region name (like us-east-1)"));
        }
        Ok(RegionSelection::List(regions))
    }
}

/// What to collect: regions, and optionally a single trail (by name or ARN).
#[derive(Debug, Clone)]
pub struct Scope {
    pub regions: RegionSelection,
    pub trail: Option<String>,
}

/// The account and its trails as `DescribeTrails` listed them, region by region: the first
/// step of every scan, and all a re-check reads before it knows what an event concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub account_id: String,
    pub partition: String,
    /// The region the scan runs from; account-level findings are filed there.
    pub home_region: String,
    pub regions: Vec<RegionSnapshot>,
}

impl Listing {
    /// The trails once shadow copies are folded away.
    pub fn views(&self) -> Vec<TrailView> {
        unique_trails(&self.regions, &self.account_id)
    }
}

/// What a targeted read found (see [`Lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookedUp {
    Roles(BTreeSet<RoleRef>),
    Groups(BTreeSet<LogGroupRef>),
}

/// The port the scan flow collects through; [`CloudTrailInventory`] is the AWS adapter.
pub trait Inventory {
    /// The account and its trails in every region of `scope`.
    fn list(&self, scope: &Scope) -> impl Future<Output = Result<Listing, ScanError>> + Send;

    /// Everything else the rules read, for the trails `listing` holds.
    fn collect_listed(
        &self,
        listing: Listing,
        scope: &Scope,
    ) -> impl Future<Output = Result<AccountSnapshot, ScanError>> + Send;

    /// One targeted read that decides what an event concerns.
    fn look_up(&self, lookup: &Lookup) -> impl Future<Output = Observed<LookedUp>> + Send;

    /// AWS API operations made so far.
    fn api_calls(&self) -> u64;
}

/// The clients of one region, built once per scan and shared by every task in that region.
struct RegionalClients {
    cloudtrail: aws_sdk_cloudtrail::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

/// A log group as read before alarms are known: whether it exists, and its metric filters.
struct GroupLookup {
    group: Observed<Option<LogGroup>>,
    metric_filters: Observed<Vec<MetricFilter>>,
}

/// Collects snapshots with the real AWS SDK.
pub struct CloudTrailInventory {
    sdk: SdkConfig,
    counter: ApiCallCounter,
    concurrency: usize,
    sts: aws_sdk_sts::Client,
    iam: aws_sdk_iam::Client,
    account: aws_sdk_account::Client,
    regional: Mutex<HashMap<String, Arc<RegionalClients>>>,
}

/// Regions and trails are fetched this many at a time unless configured otherwise: enough to
/// hide latency across ~30 regions without tripping CloudTrail's per-account rate limits.
pub const DEFAULT_CONCURRENCY: usize = 8;

impl CloudTrailInventory {
    pub fn new(sdk: &SdkConfig, concurrency: usize) -> Self {
        let counter = ApiCallCounter::default();
        Self {
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            account: aws_sdk_account::Client::from_conf(
                aws_sdk_account::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sdk: sdk.clone(),
            counter,
            concurrency: concurrency.max(1),
            regional: Mutex::new(HashMap::new()),
        }
    }

    fn clients(&self, region: &str) -> Arc<RegionalClients> {
        // A poisoned lock only means another task panicked mid-insert; the map is still usable.
        let mut map = self
            .regional
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(region.to_string())
            .or_insert_with(|| {
                let region = Region::new(region.to_string());
                Arc::new(RegionalClients {
                    cloudtrail: aws_sdk_cloudtrail::Client::from_conf(
                        aws_sdk_cloudtrail::config::Builder::from(&self.sdk)
                            .region(region.clone())
                            .interceptor(self.counter.clone())
                            .build(),
                    ),
                    logs: aws_sdk_cloudwatchlogs::Client::from_conf(
                        aws_sdk_cloudwatchlogs::config::Builder::from(&self.sdk)
                            .region(region.clone())
                            .interceptor(self.counter.clone())
                            .build(),
                    ),
                    cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                        aws_sdk_cloudwatch::config::Builder::from(&self.sdk)
                            .region(region)
                            .interceptor(self.counter.clone())
                            .build(),
                    ),
                })
            })
            .clone()
    }

    #[instrument(skip(self))]
    async fn enabled_regions(&self) -> Result<Vec<String>, ScanError> {
        use aws_sdk_account::types::RegionOptStatus;
        let regions: Vec<_> = self
            .account
            .list_regions()
            .region_opt_status_contains(RegionOptStatus::Enabled)
            .region_opt_status_contains(RegionOptStatus::EnabledByDefault)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await?;
        let mut names: Vec<String> = regions
            .iter()
            .filter_map(|r| r.region_name().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    #[instrument(skip(self))]
    async fn describe_trails(&self, region: String) -> RegionSnapshot {
        let result = self
            .clients(&region)
            .cloudtrail
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await;
        let trails = match result {
            Ok(out) => Ok(out.trail_list().iter().filter_map(mapping::trail).collect()),
            Err(e) => {
                let why = unavailable("DescribeTrails", &e);
                warn!(region = %region, error = %why.describe(), "region unreadable");
                Err(why)
            }
        };
        RegionSnapshot { region, trails }
    }

    #[instrument(skip(self, view), fields(trail = %view.trail.trail_arn))]
    async fn trail_details(&self, view: &TrailView) -> TrailDetails {
        let clients = self.clients(&view.trail.home_region);
        let arn = view.trail.trail_arn.as_str();
        // Both are asked by ARN so that a shadow copy resolves to the trail in its home region.
        let (status, selectors) = futures::join!(
            clients.cloudtrail.get_trail_status().name(arn).send(),
            clients
                .cloudtrail
                .get_event_selectors()
                .trail_name(arn)
                .send(),
        );
        TrailDetails {
            status: status
                .map_err(|e| unavailable("GetTrailStatus", &e))
                .and_then(|out| mapping::trail_status(&out)),
            event_selectors: selectors
                .map(|out| mapping::event_selectors(&out))
                .map_err(|e| unavailable("GetEventSelectors", &e)),
        }
    }

    #[instrument(skip(self), fields(group = %group.name, region = %group.region))]
    async fn log_group(&self, group: &LogGroupRef) -> GroupLookup {
        let found = match self.describe_group(group).await {
            Ok(Some(found)) => found,
            other => {
                return GroupLookup {
                    group: other,
                    metric_filters: Ok(vec![]),
                }
            }
        };
        let metric_filters = self
            .clients(&group.region)
            .logs
            .describe_metric_filters()
            .log_group_name(&group.name)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map(|fs| fs.iter().map(mapping::metric_filter).collect())
            .map_err(|e| unavailable("DescribeMetricFilters", &e));
        GroupLookup {
            group: Ok(Some(found)),
            metric_filters,
        }
    }

    /// The group itself, asked for by name prefix: in a region with thousands of groups, paging
    /// through all of them costs more than asking for the one a trail uses.
    async fn describe_group(&self, group: &LogGroupRef) -> Observed<Option<LogGroup>> {
        let mut pages = self
            .clients(&group.region)
            .logs
            .describe_log_groups()
            .log_group_name_prefix(&group.name)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            match item {
                Ok(g) if g.log_group_name() == Some(group.name.as_str()) => {
                    return Ok(mapping::log_group(&g))
                }
                Ok(_) => {}
                Err(e) => return Err(unavailable("DescribeLogGroups", &e)),
            }
        }
        Ok(None)
    }

    #[instrument(skip(self))]
    async fn metric_alarms(&self, region: String) -> (String, Observed<Vec<MetricAlarm>>) {
        use aws_sdk_cloudwatch::types::AlarmType;
        let pages = self
            .clients(&region)
            .cloudwatch
            .describe_alarms()
            .alarm_types(AlarmType::MetricAlarm)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await;
        let alarms = pages
            .map(|pages| {
                pages
                    .iter()
                    .flat_map(|p| p.metric_alarms())
                    .map(mapping::metric_alarm)
                    .collect()
            })
            .map_err(|e| unavailable("DescribeAlarms", &e));
        (region, alarms)
    }

    #[instrument(skip(self), fields(role = %role.name))]
    async fn role(&self, role: &RoleRef) -> RoleSnapshot {
        let got = match self.iam.get_role().role_name(&role.name).send().await {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(unavailable("GetRole", &e)),
        };
        let Some(found) = got.role() else {
            return Err(Unavailable::new(
                "GetRole",
                None,
                "the response carried no role",
            ));
        };
        let trust = mapping::policy_document("GetRole", found.assume_role_policy_document())?;
        let mut policies = Vec::new();

        let inline_names = self
            .iam
            .list_role_policies()
            .role_name(&role.name)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| unavailable("ListRolePolicies", &e))?;
        for name in inline_names {
            let out = self
                .iam
                .get_role_policy()
                .role_name(&role.name)
                .policy_name(&name)
                .send()
                .await
                .map_err(|e| unavailable("GetRolePolicy", &e))?;
            policies.push(NamedPolicy {
                document: mapping::policy_document("GetRolePolicy", Some(out.policy_document()))?,
                name,
            });
        }

        let attached = self
            .iam
            .list_attached_role_policies()
            .role_name(&role.name)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| unavailable("ListAttachedRolePolicies", &e))?;
        for policy in attached {
            let Some(arn) = policy.policy_arn() else {
                continue;
            };
            let meta = self
                .iam
                .get_policy()
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| unavailable("GetPolicy", &e))?;
            let version = meta
                .policy()
                .and_then(|p| p.default_version_id())
                .ok_or_else(|| {
                    Unavailable::new("GetPolicy", None, format!("{arn} has no default version"))
                })?;
            let out = self
                .iam
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send()
                .await
                .map_err(|e| unavailable("GetPolicyVersion", &e))?;
            policies.push(NamedPolicy {
                name: arn.to_string(),
                document: mapping::policy_document(
                    "GetPolicyVersion",
                    out.policy_version().and_then(|v| v.document()),
                )?,
            });
        }

        Ok(Some(Role {
            role_name: found.role_name().to_string(),
            arn: found.arn().to_string(),
            assume_role_policy_document: trust,
            policies,
        }))
    }
}

impl CloudTrailInventory {
    /// Whether `role` holds managed policy `policy`: attached, or as its permissions boundary.
    async fn holds_policy(&self, role: &RoleRef, policy: &str) -> Observed<bool> {
        let (got, attached) = futures::join!(
            self.iam.get_role().role_name(&role.name).send(),
            self.iam
                .list_attached_role_policies()
                .role_name(&role.name)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
        );
        let boundary = match got {
            Ok(out) => out
                .role()
                .and_then(|r| r.permissions_boundary())
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_string),
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(unavailable("GetRole", &e)),
        };
        let attached = attached.map_err(|e| unavailable("ListAttachedRolePolicies", &e))?;
        Ok(boundary.as_deref() == Some(policy)
            || attached.iter().any(|p| p.policy_arn() == Some(policy)))
    }

    /// The groups among `groups` with a metric filter on a metric one of `alarms` watches. An
    /// alarm on metric math, whose metrics cannot be followed to a filter, counts for all.
    async fn alarmed_groups(
        &self,
        region: &str,
        alarms: &[String],
        groups: &BTreeSet<LogGroupRef>,
    ) -> Observed<BTreeSet<LogGroupRef>> {
        let clients = self.clients(region);
        let found = clients
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(alarms.to_vec()))
            .send()
            .await
            .map_err(|e| unavailable("DescribeAlarms", &e))?;
        let mut metrics = BTreeSet::new();
        for alarm in found.metric_alarms() {
            match (alarm.metric_name(), alarm.namespace()) {
                (Some(name), Some(namespace)) => {
                    metrics.insert((name.to_string(), namespace.to_string()));
                }
                _ => return Ok(groups.clone()),
            }
        }
        let mut alarmed = BTreeSet::new();
        for (name, namespace) in metrics {
            let filters = clients
                .logs
                .describe_metric_filters()
                .metric_name(&name)
                .metric_namespace(&namespace)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .map_err(|e| unavailable("DescribeMetricFilters", &e))?;
            alarmed.extend(
                groups
                    .iter()
                    .filter(|g| {
                        filters
                            .iter()
                            .any(|f| f.log_group_name() == Some(g.name.as_str()))
                    })
                    .cloned(),
            );
        }
        Ok(alarmed)
    }

    /// The KMS key a log group is encrypted with, if any.
    async fn group_key(&self, group: &LogGroupRef) -> Observed<Option<String>> {
        Ok(self.describe_group(group).await?.and_then(|g| g.kms_key_id))
    }
}

/// Keeps only the trail the caller asked for, by name or ARN, in every region's listing.
fn narrow_to_trail(regions: &mut [RegionSnapshot], wanted: &str) {
    for region in regions {
        if let Ok(trails) = &mut region.trails {
            trails.retain(|t| t.name == wanted || t.trail_arn == wanted);
        }
    }
}

impl Inventory for CloudTrailInventory {
    fn api_calls(&self) -> u64 {
        self.counter.count()
    }

    async fn look_up(&self, lookup: &Lookup) -> Observed<LookedUp> {
        match lookup {
            Lookup::PolicyHolders { policy, roles } => {
                let answers: Vec<Observed<Option<RoleRef>>> = stream::iter(roles.iter().cloned())
                    .map(|role| async move {
                        self.holds_policy(&role, policy)
                            .await
                            .map(|holds| holds.then_some(role))
                    })
                    .buffer_unordered(self.concurrency)
                    .collect()
                    .await;
                let holders = answers.into_iter().collect::<Observed<Vec<_>>>()?;
                Ok(LookedUp::Roles(holders.into_iter().flatten().collect()))
            }
            Lookup::AlarmedGroups {
                region,
                alarms,
                groups,
            } => self
                .alarmed_groups(region, alarms, groups)
                .await
                .map(LookedUp::Groups),
            Lookup::GroupKeys { key, groups } => {
                let answers: Vec<Observed<Option<LogGroupRef>>> =
                    stream::iter(groups.iter().cloned())
                        .map(|group| async move {
                            let keyed = self.group_key(&group).await?;
                            Ok(keyed.filter(|k| same_key(k, key)).map(|_| group))
                        })
                        .buffer_unordered(self.concurrency)
                        .collect()
                        .await;
                let keyed = answers.into_iter().collect::<Observed<Vec<_>>>()?;
                Ok(LookedUp::Groups(keyed.into_iter().flatten().collect()))
            }
        }
    }

    async fn list(&self, scope: &Scope) -> Result<Listing, ScanError> {
        let home_region = self.sdk.region().ok_or(ScanError::NoRegion)?.to_string();
        let identity = self.sts.get_caller_identity().send().await?;
        let account_id = identity.account().unwrap_or_default().to_string();
        let partition = identity
            .arn()
            .and_then(Arn::parse)
            .map(|a| a.partition.to_string())
            .unwrap_or_else(|| "aws".to_string());

        let regions = match &scope.regions {
            RegionSelection::List(list) => list.clone(),
            RegionSelection::All => self.enabled_regions().await?,
        };
        debug!(account = %account_id, regions = regions.len(), "listing");
        let regions: Vec<RegionSnapshot> = stream::iter(regions)
            .map(|r| self.describe_trails(r))
            .buffered(self.concurrency)
            .collect()
            .await;
        Ok(Listing {
            account_id,
            partition,
            home_region,
            regions,
        })
    }

    async fn collect_listed(
        &self,
        listing: Listing,
        scope: &Scope,
    ) -> Result<AccountSnapshot, ScanError> {
        let Listing {
            account_id,
            partition,
            home_region,
            regions: mut region_snapshots,
        } = listing;
        if let Some(wanted) = &scope.trail {
            narrow_to_trail(&mut region_snapshots, wanted);
            if unique_trails(&region_snapshots, &account_id).is_empty() {
                let region = region_snapshots
                    .first()
                    .map(|r| r.region.clone())
                    .unwrap_or_default();
                return Err(
                    match region_snapshots
                        .iter()
                        .find_map(|r| r.trails.as_ref().err())
                    {
                        Some(why) => ScanError::TrailListing {
                            region,
                            reason: why.describe(),
                        },
                        None => ScanError::TrailNotFound {
                            name: wanted.clone(),
                            region,
                        },
                    },
                );
            }
        }

        let views = unique_trails(&region_snapshots, &account_id);
        // Owned values, not references: `Send` futures over borrowed stream items trip a
        // higher-ranked lifetime limitation of the compiler.
        let trail_details: BTreeMap<String, TrailDetails> = stream::iter(views.clone())
            .map(|v| async move {
                let details = self.trail_details(&v).await;
                (v.trail.trail_arn, details)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        // Log groups and roles in other accounts are that account's to check (see the rules).
        let owned = views.iter().filter(|v| v.owned);
        let groups: BTreeSet<LogGroupRef> = owned
            .clone()
            .filter_map(|v| v.trail.log_group())
            .filter(|g| g.account == account_id)
            .collect();
        let roles: BTreeSet<RoleRef> = owned
            .filter(|v| v.trail.cloud_watch_logs_log_group_arn.is_some())
            .filter_map(|v| v.trail.role())
            .filter(|r| r.account == account_id)
            .collect();

        let group_states: Vec<(LogGroupRef, GroupLookup)> = stream::iter(groups)
            .map(|g| async move {
                let state = self.log_group(&g).await;
                (g, state)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        // Alarms are listed once per region, and only where some group has metric filters.
        let alarm_regions: BTreeSet<String> = group_states
            .iter()
            .filter(|(_, lookup)| lookup.metric_filters.as_ref().is_ok_and(|f| !f.is_empty()))
            .map(|(g, _)| g.region.clone())
            .collect();
        let alarms: HashMap<String, Observed<Vec<MetricAlarm>>> = stream::iter(alarm_regions)
            .map(|r| self.metric_alarms(r))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let log_groups = group_states
            .into_iter()
            .map(
                |(
                    g,
                    GroupLookup {
                        group,
                        metric_filters,
                    },
                )| {
                    let alarms = alarms.get(&g.region).cloned().unwrap_or_else(|| Ok(vec![]));
                    (
                        g.bare_arn(),
                        LogGroupSnapshot {
                            group,
                            metric_filters,
                            alarms,
                        },
                    )
                },
            )
            .collect();

        let role_snapshots: BTreeMap<String, RoleSnapshot> = stream::iter(roles)
            .map(|r| async move {
                let snapshot = self.role(&r).await;
                (r.arn, snapshot)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        Ok(AccountSnapshot {
            account_id,
            partition,
            home_region,
            regions: region_snapshots,
            trail_details,
            log_groups,
            roles: role_snapshots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_selection_parses_all_and_lists() {
        assert_eq!("ALL".parse(), Ok(RegionSelection::All));
        assert_eq!(
            " us-east-1, eu-west-1 ".parse(),
            Ok(RegionSelection::List(vec![
                "us-east-1".into(),
                "eu-west-1".into()
            ]))
        );
        assert!("".parse::<RegionSelection>().is_err());
        assert!("us_east_1".parse::<RegionSelection>().is_err());
    }
}
