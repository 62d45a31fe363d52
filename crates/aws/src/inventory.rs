//! Collection: reads everything the rules need from AWS into an [`AccountSnapshot`].
//!
//! - per region: one `DescribeTrails`;
//! - per trail: `GetTrailStatus` and `GetEventSelectors` in its home region, and for a
//!   multi-region trail `GetTrailStatus` in every other readable region, since it "returns
//!   trail status from a single Region";
//! - per distinct log group, however many trails share it: `DescribeLogGroups`,
//!   `DescribeMetricFilters`, one page of `DescribeLogStreams`, and its KMS key
//!   (`DescribeKey`, `GetKeyPolicy`);
//! - per region with metric filters: `DescribeAlarms`, then `ListSubscriptionsByTopic` for
//!   each topic a tamper-alarm candidate notifies;
//! - per distinct role: `GetRole`, its inline and managed policies and its permissions
//!   boundary; or, where the account is small for the roles it holds, every role at once
//!   with `GetAccountAuthorizationDetails` ([`roles`]);
//! - once: `DescribeOrganization` when a judged trail is an organisation trail, and in
//!   organisation mode the SCPs on the account's path ([`crate::guardrail`]).
//!
//! All of it runs concurrently up to a bound. A failed call is recorded as `Unavailable` in the
//! snapshot and the scan goes on; only failing to know the account at all stops it.

mod groups;
mod roles;

pub use roles::IamReads;

use crate::config::ApiCallCounter;
use crate::error::{is_not_found, unavailable, ScanError};
use crate::guardrail::OrgPolicies;
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
    KmsKey, LogGroup, LogGroupSnapshot, LogStream, MetricAlarm, MetricFilter, NamedPolicy,
    Organization, RegionSnapshot, Role, RoleSnapshot, Subscription, TrailDetails, TrailStatus,
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
    kms: aws_sdk_kms::Client,
    sns: aws_sdk_sns::Client,
}

/// A log group as read before alarms are known: everything but the alarms.
struct GroupLookup {
    group: Observed<Option<LogGroup>>,
    metric_filters: Observed<Vec<MetricFilter>>,
    streams: Observed<Vec<LogStream>>,
    more_streams: bool,
    key: Option<Observed<Option<KmsKey>>>,
}

/// One page of `DescribeLogStreams`, newest events first: enough for every region of an
/// account's trail (17 to 30 streams, plus a few `_2`), and for an organisation trail's group
/// enough to see that delivery goes on. The rules know when there were more.
const STREAM_PAGE: i32 = 50;

/// Collects snapshots with the real AWS SDK.
pub struct CloudTrailInventory {
    sdk: SdkConfig,
    counter: ApiCallCounter,
    concurrency: usize,
    sts: aws_sdk_sts::Client,
    iam: aws_sdk_iam::Client,
    account: aws_sdk_account::Client,
    organizations: aws_sdk_organizations::Client,
    regional: Mutex<HashMap<String, Arc<RegionalClients>>>,
    /// Organisation mode: where the SCPs on the account's path are read.
    org_policies: Option<Arc<OrgPolicies>>,
    iam_reads: IamReads,
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
            organizations: aws_sdk_organizations::Client::from_conf(
                aws_sdk_organizations::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sdk: sdk.clone(),
            counter,
            concurrency: concurrency.max(1),
            regional: Mutex::new(HashMap::new()),
            org_policies: None,
            iam_reads: IamReads::default(),
        }
    }

    /// How delivery roles are read (see [`IamReads`]).
    pub fn with_iam_reads(mut self, reads: IamReads) -> Self {
        self.iam_reads = reads;
        self
    }

    /// Organisation mode: each snapshot also holds the SCPs on the account's path, read
    /// through `policies` (the deployment's own credentials).
    pub fn with_guardrail(mut self, policies: Arc<OrgPolicies>) -> Self {
        self.org_policies = Some(policies);
        self
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
                            .region(region.clone())
                            .interceptor(self.counter.clone())
                            .build(),
                    ),
                    kms: aws_sdk_kms::Client::from_conf(
                        aws_sdk_kms::config::Builder::from(&self.sdk)
                            .region(region.clone())
                            .interceptor(self.counter.clone())
                            .build(),
                    ),
                    sns: aws_sdk_sns::Client::from_conf(
                        aws_sdk_sns::config::Builder::from(&self.sdk)
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
            regional_status: BTreeMap::new(),
            tags: None,
        }
    }

    /// The tags of `arns`, trails homed in `region`, in one `ListTags` call ("the trails must
    /// be in the current Region"; at most [`LIST_TAGS_BATCH`] ARNs).
    #[instrument(skip(self, arns), fields(trails = arns.len()))]
    async fn trail_tags(
        &self,
        region: String,
        arns: Vec<String>,
    ) -> (Vec<String>, Observed<TagsByTrail>) {
        let tags = self
            .clients(&region)
            .cloudtrail
            .list_tags()
            .set_resource_id_list(Some(arns.clone()))
            .send()
            .await
            .map_err(|e| unavailable("ListTags", &e))
            .map(|out| {
                out.resource_tag_list()
                    .iter()
                    .map(|resource| {
                        let tags = resource
                            .tags_list()
                            .iter()
                            .map(|t| {
                                (
                                    t.key().to_string(),
                                    t.value().unwrap_or_default().to_string(),
                                )
                            })
                            .collect();
                        (resource.resource_id().unwrap_or_default().to_string(), tags)
                    })
                    .collect()
            });
        (arns, tags)
    }

    /// A multi-region trail's status as `region` sees it, asked by ARN.
    #[instrument(skip(self))]
    async fn regional_status(&self, trail_arn: String, region: String) -> RegionalStatus {
        let status = self
            .clients(&region)
            .cloudtrail
            .get_trail_status()
            .name(&trail_arn)
            .send()
            .await
            .map_err(|e| unavailable("GetTrailStatus", &e))
            .and_then(|out| mapping::trail_status(&out));
        RegionalStatus {
            trail_arn,
            region,
            status,
        }
    }

    /// Everything about one log group; `described` is what a shared-prefix page already
    /// said of it, if anything.
    /// With `read_streams` false the streams are not asked for, and left empty.
    #[instrument(skip(self, settled), fields(group = %group.name, region = %group.region))]
    async fn log_group(
        &self,
        group: &LogGroupRef,
        settled: SettledGroup,
        read_streams: bool,
    ) -> GroupLookup {
        let described = match settled.described {
            Some(described) => described,
            None => self.describe_group(group).await,
        };
        let found = match described {
            Ok(Some(found)) => found,
            other => {
                return GroupLookup {
                    group: other,
                    metric_filters: Ok(vec![]),
                    streams: Ok(vec![]),
                    more_streams: false,
                    key: None,
                }
            }
        };
        let clients = self.clients(&group.region);
        let filters = async {
            match settled.filters {
                Some(filters) => Ok(filters),
                None => clients
                    .logs
                    .describe_metric_filters()
                    .log_group_name(&group.name)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
                    .await
                    .map(|fs| fs.iter().map(mapping::metric_filter).collect())
                    .map_err(|e| unavailable("DescribeMetricFilters", &e)),
            }
        };
        let streams = async {
            match read_streams {
                true => Some(
                    clients
                        .logs
                        .describe_log_streams()
                        .log_group_name(&group.name)
                        .order_by(aws_sdk_cloudwatchlogs::types::OrderBy::LastEventTime)
                        .descending(true)
                        .limit(STREAM_PAGE)
                        .send()
                        .await,
                ),
                false => None,
            }
        };
        let key = async {
            match &found.kms_key_id {
                Some(key) => Some(self.kms_key(&group.region, key).await),
                None => None,
            }
        };
        let (filters, streams, key) = futures::join!(filters, streams, key);
        let (streams, more_streams) = match streams {
            None => (Ok(vec![]), false),
            Some(Ok(page)) => (
                Ok(page
                    .log_streams()
                    .iter()
                    .filter_map(mapping::log_stream)
                    .collect()),
                page.next_token().is_some_and(|t| !t.is_empty()),
            ),
            Some(Err(e)) => (Err(unavailable("DescribeLogStreams", &e)), false),
        };
        GroupLookup {
            group: Ok(Some(found)),
            metric_filters: filters,
            streams,
            more_streams,
            key,
        }
    }

    /// Every group's snapshot, and the subscriptions of the topics their alarms notify.
    /// `streams_read` names the groups whose streams some verdict may need.
    async fn log_groups(
        &self,
        groups: BTreeSet<LogGroupRef>,
        streams_read: &BTreeSet<LogGroupRef>,
    ) -> (BTreeMap<String, LogGroupSnapshot>, Topics) {
        // A region of several groups is first described in one shared-prefix page and one page
        // of its metric filters; what those leave, each group reads alone.
        let mut names_by_region: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for g in &groups {
            names_by_region
                .entry(g.region.clone())
                .or_default()
                .insert(g.name.clone());
        }
        let mut regions_settled: HashMap<String, RegionGroups> = stream::iter(names_by_region)
            .filter(|(_, names)| std::future::ready(names.len() > 1))
            .map(|(region, names)| async move {
                let (described, filters) = futures::join!(
                    self.describe_groups(&region, &names),
                    self.region_filters(&region)
                );
                (region, RegionGroups { described, filters })
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let groups: Vec<(LogGroupRef, SettledGroup)> = groups
            .into_iter()
            .map(|g| {
                let settled = match regions_settled.get_mut(&g.region) {
                    Some(region) => SettledGroup {
                        described: region.described.remove(&g.name),
                        filters: region
                            .filters
                            .as_ref()
                            .map(|by_group| by_group.get(&g.name).cloned().unwrap_or_default()),
                    },
                    None => SettledGroup::default(),
                };
                (g, settled)
            })
            .collect();
        let groups = across_regions(groups, |(g, _)| g.region.clone());
        let group_states: Vec<(LogGroupRef, GroupLookup)> = stream::iter(groups)
            .map(|(g, settled)| async move {
                let state = self.log_group(&g, settled, streams_read.contains(&g)).await;
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
        let topics: BTreeSet<String> = group_states
            .iter()
            .flat_map(
                |(g, lookup)| match (&lookup.metric_filters, alarms.get(&g.region)) {
                    (Ok(filters), Some(Ok(alarms))) => alarm_topics(filters, alarms),
                    _ => Vec::new(),
                },
            )
            .collect();
        let topics: Topics = stream::iter(topics)
            .map(|topic| self.subscriptions(topic))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let log_groups: BTreeMap<String, LogGroupSnapshot> = group_states
            .into_iter()
            .map(|(g, lookup)| {
                let alarms = alarms.get(&g.region).cloned().unwrap_or_else(|| Ok(vec![]));
                (
                    g.bare_arn(),
                    LogGroupSnapshot {
                        group: lookup.group,
                        metric_filters: lookup.metric_filters,
                        alarms,
                        streams: lookup.streams,
                        more_streams: lookup.more_streams,
                        key: lookup.key,
                    },
                )
            })
            .collect();
        (log_groups, topics)
    }

    /// A log group's KMS key, `None` when it no longer exists. `DescribeKey` answers for a
    /// key in another account that allows it; `GetKeyPolicy` only in the key's own account,
    /// so such a key's policy is data trailwatch lacks.
    #[instrument(skip(self))]
    async fn kms_key(&self, region: &str, key: &str) -> Observed<Option<KmsKey>> {
        let kms = &self.clients(region).kms;
        let described = match kms.describe_key().key_id(key).send().await {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(unavailable("DescribeKey", &e)),
        };
        let metadata = described
            .key_metadata()
            .map(mapping::key_metadata)
            .ok_or_else(|| Unavailable::new("DescribeKey", None, "no key metadata returned"))?;
        let policy = kms
            .get_key_policy()
            .key_id(key)
            .policy_name("default")
            .send()
            .await
            .map_err(|e| unavailable("GetKeyPolicy", &e))
            .and_then(|out| mapping::policy_document("GetKeyPolicy", out.policy()));
        Ok(Some(KmsKey { metadata, policy }))
    }

    /// A topic's subscriptions, `None` when the topic does not exist. Paging stops at the
    /// first confirmed subscription: one is enough for the page to reach someone.
    #[instrument(skip(self))]
    async fn subscriptions(&self, topic: String) -> (String, Observed<Option<Vec<Subscription>>>) {
        let Some(region) = Arn::parse(&topic).map(|a| a.region.to_string()) else {
            let why = Unavailable::new("ListSubscriptionsByTopic", None, "not a topic ARN");
            return (topic, Err(why));
        };
        let mut pages = self
            .clients(&region)
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(&topic)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => found.extend(page.subscriptions().iter().map(mapping::subscription)),
                Err(e) if is_not_found(&e) => return (topic, Ok(None)),
                Err(e) => return (topic, Err(unavailable("ListSubscriptionsByTopic", &e))),
            }
            if found.iter().any(Subscription::is_confirmed) {
                break;
            }
        }
        (topic, Ok(Some(found)))
    }

    async fn organization(&self) -> Observed<Organization> {
        let out = self
            .organizations
            .describe_organization()
            .send()
            .await
            .map_err(|e| unavailable("DescribeOrganization", &e))?;
        out.organization()
            .ok_or_else(|| {
                Unavailable::new("DescribeOrganization", None, "no organisation returned")
            })
            .and_then(mapping::organization)
    }

    /// The group itself, asked for by name prefix: in a region with thousands of groups, paging
    /// through all of them costs more than asking for the one a trail uses.
    pub(crate) async fn describe_group(&self, group: &LogGroupRef) -> Observed<Option<LogGroup>> {
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
    pub(crate) async fn role(&self, role: &RoleRef) -> RoleSnapshot {
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
            policies.push(self.managed_policy(arn).await?);
        }
        let permissions_boundary = match found
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
        {
            Some(arn) => Some(self.managed_policy(arn).await?),
            None => None,
        };

        Ok(Some(Role {
            role_name: found.role_name().to_string(),
            arn: found.arn().to_string(),
            assume_role_policy_document: trust,
            policies,
            permissions_boundary,
        }))
    }

    /// A managed policy's default version, named by its ARN.
    async fn managed_policy(&self, arn: &str) -> Observed<NamedPolicy> {
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
        Ok(NamedPolicy {
            name: arn.to_string(),
            document: mapping::policy_document(
                "GetPolicyVersion",
                out.policy_version().and_then(|v| v.document()),
            )?,
        })
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

/// `items` in turns across their regions, each region's items in their order: a stage's
/// concurrent requests then go to several regions at once instead of all to one. CloudTrail
/// answers 10 get, describe and list requests a second per account and region
/// (<https://docs.aws.amazon.com/awscloudtrail/latest/userguide/WhatIsCloudTrail-Limits.html>),
/// and 8 requests in flight to one region at a 40 ms round trip would ask for 200.
fn across_regions<T>(items: Vec<T>, region: impl Fn(&T) -> String) -> Vec<T> {
    let mut by_region: BTreeMap<String, std::collections::VecDeque<T>> = BTreeMap::new();
    for item in items {
        by_region.entry(region(&item)).or_default().push_back(item);
    }
    let mut turns = Vec::new();
    while !by_region.is_empty() {
        by_region.retain(|_, queue| match queue.pop_front() {
            Some(item) => {
                turns.push(item);
                true
            }
            None => false,
        });
    }
    turns
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
        let in_turns = across_regions(views.clone(), |v| v.trail.home_region.clone());
        let mut trail_details: BTreeMap<String, TrailDetails> = stream::iter(in_turns)
            .map(|v| async move {
                let details = self.trail_details(&v).await;
                (v.trail.trail_arn, details)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let readable: Vec<String> = region_snapshots
            .iter()
            .filter(|r| r.trails.is_ok())
            .map(|r| r.region.clone())
            .collect();
        let elsewhere: Vec<(String, String)> = views
            .iter()
            .filter(|v| v.owned && v.trail.is_multi_region_trail)
            .flat_map(|v| {
                readable
                    .iter()
                    .filter(|r| **r != v.trail.home_region)
                    .map(|r| (v.trail.trail_arn.clone(), r.clone()))
            })
            .collect();
        let elsewhere = across_regions(elsewhere, |(_, region)| region.clone());
        let regional: Vec<RegionalStatus> = stream::iter(elsewhere)
            .map(|(arn, region)| self.regional_status(arn, region))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for found in regional {
            if let Some(details) = trail_details.get_mut(&found.trail_arn) {
                details.regional_status.insert(found.region, found.status);
            }
        }
        // Tags say whether a person exempted a trail: one call per home region and batch.
        let mut homed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for view in views.iter().filter(|v| v.owned) {
            homed
                .entry(view.trail.home_region.as_str())
                .or_default()
                .push(view.trail.trail_arn.clone());
        }
        let batches: Vec<(String, Vec<String>)> = homed
            .into_iter()
            .flat_map(|(region, arns)| {
                arns.chunks(LIST_TAGS_BATCH)
                    .map(|batch| (region.to_string(), batch.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let tagged: Vec<(Vec<String>, Observed<TagsByTrail>)> = stream::iter(batches)
            .map(|(region, arns)| self.trail_tags(region, arns))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (arns, tags) in tagged {
            for arn in arns {
                if let Some(details) = trail_details.get_mut(&arn) {
                    details.tags = Some(match &tags {
                        Ok(by_trail) => Ok(by_trail.get(&arn).cloned().unwrap_or_default()),
                        Err(why) => Err(why.clone()),
                    });
                }
            }
        }

        // Log groups and roles in other accounts are that account's to check (see the rules).
        let owned = views.iter().filter(|v| v.owned);
        let groups: BTreeSet<LogGroupRef> = owned
            .clone()
            .filter_map(|v| v.trail.log_group())
            .filter(|g| g.account == account_id)
            .collect();
        // A stopped single-region trail's streams cannot change its verdict: silence is what
        // stopping means, and its role is probed on its home region's stream, which needs no
        // listing. Its group's streams are read only if another trail on it may need them.
        let streams_read: BTreeSet<LogGroupRef> = owned
            .clone()
            .filter(|v| {
                let stopped = trail_details
                    .get(&v.trail.trail_arn)
                    .is_some_and(|d| matches!(&d.status, Ok(s) if !s.is_logging));
                v.trail.is_multi_region_trail || !stopped
            })
            .filter_map(|v| v.trail.log_group())
            .collect();
        let roles: BTreeSet<RoleRef> = owned
            .filter(|v| v.trail.cloud_watch_logs_log_group_arn.is_some())
            .filter_map(|v| v.trail.role())
            .filter(|r| r.account == account_id)
            .collect();

        let organization = async {
            match views
                .iter()
                .any(|v| v.owned && v.trail.is_organization_trail)
            {
                true => Some(self.organization().await),
                false => None,
            }
        };
        // A single trail's check reports no account verdict, which is all the SCPs weigh in.
        let guardrail = async {
            match (&self.org_policies, &scope.trail) {
                (Some(policies), None) => Some(policies.guardrail(&account_id).await),
                _ => None,
            }
        };
        // Groups, roles, the organisation and its SCPs need nothing of each other, and each is
        // a chain of round trips to a different service: side by side, the longest chain sets
        // the pace, not their sum.
        let ((log_groups, topics), role_snapshots, organization, guardrail) = futures::join!(
            self.log_groups(groups, &streams_read),
            self.roles(roles),
            organization,
            guardrail
        );

        Ok(AccountSnapshot {
            account_id,
            partition,
            home_region,
            regions: region_snapshots,
            trail_details,
            log_groups,
            roles: role_snapshots,
            topics,
            organization,
            guardrail,
        })
    }
}

/// `ListTags` takes at most this many ARNs ("The list has a limit of 20 ARNs").
const LIST_TAGS_BATCH: usize = 20;

/// What a region's shared pages said of its groups (see `groups`).
struct RegionGroups {
    described: BTreeMap<String, Observed<Option<LogGroup>>>,
    filters: Option<HashMap<String, Vec<MetricFilter>>>,
}

/// What is already known of one group before it is read alone: whether it exists, and its
/// metric filters; `None` for each that it must ask for itself.
#[derive(Default)]
struct SettledGroup {
    described: Option<Observed<Option<LogGroup>>>,
    filters: Option<Vec<MetricFilter>>,
}

/// Subscriptions by topic ARN, `None` for a topic that does not exist.
type Topics = BTreeMap<String, Observed<Option<Vec<Subscription>>>>;

/// Tags by trail ARN, each key to value.
type TagsByTrail = BTreeMap<String, BTreeMap<String, String>>;

/// What [`CloudTrailInventory::regional_status`] read.
struct RegionalStatus {
    trail_arn: String,
    region: String,
    status: Observed<TrailStatus>,
}

/// The SNS topics that alarms on any of `filters`' metrics notify: where a tamper alarm, if
/// one of them is, would page.
fn alarm_topics(filters: &[MetricFilter], alarms: &[MetricAlarm]) -> Vec<String> {
    let metrics: BTreeSet<(&str, &str)> = filters
        .iter()
        .flat_map(|f| &f.metric_transformations)
        .map(|t| (t.metric_name.as_str(), t.metric_namespace.as_str()))
        .collect();
    alarms
        .iter()
        .filter(
            |a| match (a.metric_name.as_deref(), a.namespace.as_deref()) {
                (Some(name), Some(namespace)) => metrics.contains(&(name, namespace)),
                _ => false,
            },
        )
        .flat_map(|a| &a.alarm_actions)
        .filter(|action| action.contains(":sns:"))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_take_turns_across_regions_and_keep_each_regions_order() {
        let calls = vec![
            ("us-east-1", 1),
            ("us-east-1", 2),
            ("us-east-1", 3),
            ("eu-west-1", 4),
            ("ap-south-1", 5),
            ("eu-west-1", 6),
        ];
        let turns = across_regions(calls, |(region, _)| region.to_string());
        let order: Vec<i32> = turns.iter().map(|(_, n)| *n).collect();
        // ap-south-1, eu-west-1, us-east-1 in turns, then what is left.
        assert_eq!(order, vec![5, 4, 1, 6, 2, 3]);
    }

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
