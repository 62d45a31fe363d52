//! Delivery roles: read one at a time, or all at once with `GetAccountAuthorizationDetails`.
//!
//! One role alone costs four IAM calls (`GetRole`, `ListRolePolicies`, a `GetRolePolicy` for
//! its inline policy, `ListAttachedRolePolicies`) plus two per managed policy. IAM's one-call
//! form returns every role and customer managed policy of the account, a page at a time, so
//! it wins when several roles deliver and the account is small, and loses when a handful of
//! roles deliver in an account of thousands. `GetAccountSummary` says how big the account is
//! for one call; the cost model below, measured on the emulator (`bench-scan iam`, README
//! "Where the IAM reads go"), picks the cheaper form. Whatever the listing does not settle
//! (it was denied, failed part way, or stopped early) is read one role at a time, so the
//! one-call form can only save calls, never lose a verdict.

use super::CloudTrailInventory;
use crate::error::unavailable;
use crate::mapping;
use aws_sdk_iam::types::{EntityType, ManagedPolicyDetail, RoleDetail, SummaryKeyType};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use tracing::{debug, warn};
use trailwatch_core::arn::RoleRef;
use trailwatch_core::snapshot::{NamedPolicy, Role, RoleSnapshot};
use trailwatch_core::{Observed, Unavailable};

/// How delivery roles are read (`TRAILWATCH_IAM_READS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IamReads {
    /// By the cost model: the account's size from `GetAccountSummary` against the roles to read.
    #[default]
    Auto,
    /// `GetRole` and its policy reads for each role.
    PerRole,
    /// `GetAccountAuthorizationDetails`, whatever the account's size.
    AccountDetails,
}

impl FromStr for IamReads {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(IamReads::Auto),
            "per-role" => Ok(IamReads::PerRole),
            "account-details" => Ok(IamReads::AccountDetails),
            _ => Err("expected auto, per-role or account-details".into()),
        }
    }
}

/// Entries a `GetAccountAuthorizationDetails` page holds at most ("must be between 1 and
/// 1000", the API reference's `MaxItems`).
const DETAILS_PAGE: i32 = 1000;

/// IAM calls one role costs when read alone, for the usual delivery role with one inline
/// policy: `GetRole`, `ListRolePolicies`, `GetRolePolicy`, `ListAttachedRolePolicies`.
const CALLS_PER_ROLE: u64 = 4;

/// How many entries (roles and customer managed policies) of a details page cost as much
/// as one more call. Measured with `bench-scan iam` on the emulator: a call takes about
/// 4 ms, and a page about 8 ms plus 0.25 ms an entry (1,000 roles: 270 ms, 860 KB), so 16
/// entries weigh one call, and in an account of 1,000 roles the listing starts to win at
/// 16 delivery roles (README, "Where the IAM reads go"). On AWS a round trip costs more
/// than the emulator's 4 ms while an entry's 860 bytes cost no more, so there the weight
/// errs toward the per-role reads: the model can miss a saving, not add a cost.
const ENTRIES_PER_CALL: u64 = 16;

/// What reading every role and customer managed policy costs, in calls: the summary, the
/// pages, and the weight of the entries.
pub(crate) fn account_details_cost(entries: u64) -> u64 {
    let pages = entries.div_ceil(DETAILS_PAGE as u64).max(1);
    1 + pages + entries / ENTRIES_PER_CALL
}

/// Whether reading the whole account beats reading `roles` one at a time, in an account of
/// `entries` roles and customer managed policies.
pub(crate) fn account_details_win(roles: usize, entries: u64) -> bool {
    CALLS_PER_ROLE * roles as u64 > account_details_cost(entries)
}

/// One role alone saves at most two calls over the one-call form, which the summary spends
/// again: below this many roles the summary is not asked for.
const FEWEST_ROLES_FOR_DETAILS: usize = 2;

/// What the pages of `GetAccountAuthorizationDetails` said about the roles a scan wants.
#[derive(Debug, Default)]
pub(crate) struct DetailsListing {
    wanted: BTreeSet<String>,
    roles: HashMap<String, RoleDetail>,
    /// Customer managed policies by ARN, each with its default version's document.
    policies: HashMap<String, Observed<NamedPolicy>>,
    /// The last page said nothing is left: a wanted role not in the listing does not exist.
    complete: bool,
}

impl DetailsListing {
    pub(crate) fn new(wanted: &BTreeSet<RoleRef>) -> Self {
        Self {
            wanted: wanted.iter().map(|r| r.name.clone()).collect(),
            ..Self::default()
        }
    }

    /// Takes one page in; only the wanted roles are kept, and every customer managed policy,
    /// since a later page may hold the role that attaches it.
    pub(crate) fn absorb(
        &mut self,
        roles: &[RoleDetail],
        policies: &[ManagedPolicyDetail],
        truncated: bool,
    ) {
        for role in roles {
            if let Some(name) = role.role_name().filter(|n| self.wanted.contains(*n)) {
                self.roles.insert(name.to_string(), role.clone());
            }
        }
        for policy in policies {
            if let Some(arn) = policy.arn() {
                self.policies
                    .insert(arn.to_string(), default_version(arn, policy));
            }
        }
        self.complete = !truncated;
    }

    /// Every wanted role is in, with every customer managed policy it holds: no page more
    /// can change what is known.
    pub(crate) fn settled(&self) -> bool {
        self.complete
            || (self.roles.len() == self.wanted.len()
                && self
                    .missing_policies()
                    .iter()
                    .all(|arn| is_aws_managed(arn)))
    }

    /// Managed policies the wanted roles hold that the listing lacks: AWS managed ones,
    /// which the filter leaves out (there are over a thousand), and customer managed ones
    /// on pages not read.
    pub(crate) fn missing_policies(&self) -> BTreeSet<String> {
        self.roles
            .values()
            .flat_map(held_policies)
            .filter(|arn| !self.policies.contains_key(arn))
            .collect()
    }

    /// The snapshots the listing settles, given the managed policies read on the side. A
    /// wanted role the listing neither holds nor could hold (it is incomplete) is left out,
    /// to be read on its own.
    pub(crate) fn snapshots(
        &self,
        fetched: &HashMap<String, Observed<NamedPolicy>>,
    ) -> BTreeMap<String, RoleSnapshot> {
        let mut found = BTreeMap::new();
        for name in &self.wanted {
            match self.roles.get(name) {
                Some(detail) => {
                    found.insert(name.clone(), self.role(detail, fetched));
                }
                None if self.complete => {
                    found.insert(name.clone(), Ok(None));
                }
                None => {}
            }
        }
        found
    }

    fn role(
        &self,
        detail: &RoleDetail,
        fetched: &HashMap<String, Observed<NamedPolicy>>,
    ) -> RoleSnapshot {
        let managed = |arn: &str| -> Observed<NamedPolicy> {
            self.policies
                .get(arn)
                .or_else(|| fetched.get(arn))
                .cloned()
                .unwrap_or_else(|| {
                    Err(Unavailable::new(
                        OPERATION,
                        None,
                        format!("{arn} was not read"),
                    ))
                })
        };
        let trust = mapping::policy_document(OPERATION, detail.assume_role_policy_document())?;
        let mut policies = Vec::new();
        for inline in detail.role_policy_list() {
            policies.push(NamedPolicy {
                name: inline.policy_name().unwrap_or_default().to_string(),
                document: mapping::policy_document(OPERATION, inline.policy_document())?,
            });
        }
        for attached in detail.attached_managed_policies() {
            if let Some(arn) = attached.policy_arn() {
                policies.push(managed(arn)?);
            }
        }
        let permissions_boundary = match detail
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
        {
            Some(arn) => Some(managed(arn)?),
            None => None,
        };
        Ok(Some(Role {
            role_name: detail.role_name().unwrap_or_default().to_string(),
            arn: detail.arn().unwrap_or_default().to_string(),
            assume_role_policy_document: trust,
            policies,
            permissions_boundary,
        }))
    }
}

const OPERATION: &str = "GetAccountAuthorizationDetails";

/// AWS managed policies live in the `aws` account (`arn:aws:iam::aws:policy/...`); the
/// listing leaves them out, so no page will bring one.
fn is_aws_managed(arn: &str) -> bool {
    arn.split(':').nth(4) == Some("aws")
}

/// The managed policies a role holds: attached, and its permissions boundary.
fn held_policies(role: &RoleDetail) -> Vec<String> {
    role.attached_managed_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .chain(
            role.permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn()),
        )
        .map(str::to_string)
        .collect()
}

/// A customer managed policy's default version, named by its ARN as the per-role read names it.
fn default_version(arn: &str, policy: &ManagedPolicyDetail) -> Observed<NamedPolicy> {
    let version = policy
        .policy_version_list()
        .iter()
        .find(|v| v.is_default_version())
        .ok_or_else(|| {
            Unavailable::new(OPERATION, None, format!("{arn} has no default version"))
        })?;
    Ok(NamedPolicy {
        name: arn.to_string(),
        document: mapping::policy_document(OPERATION, version.document())?,
    })
}

impl CloudTrailInventory {
    /// The snapshots of `wanted`, by ARN, read the cheaper way.
    pub async fn roles(&self, wanted: BTreeSet<RoleRef>) -> BTreeMap<String, RoleSnapshot> {
        let mut listed = match self.iam_reads {
            _ if wanted.is_empty() => BTreeMap::new(),
            IamReads::PerRole => BTreeMap::new(),
            IamReads::AccountDetails => self.account_details(&wanted).await,
            IamReads::Auto if wanted.len() < FEWEST_ROLES_FOR_DETAILS => BTreeMap::new(),
            IamReads::Auto => match self.account_entries().await {
                Some(entries) if account_details_win(wanted.len(), entries) => {
                    self.account_details(&wanted).await
                }
                _ => BTreeMap::new(),
            },
        };
        let mut snapshots: BTreeMap<String, RoleSnapshot> = BTreeMap::new();
        let mut alone = Vec::new();
        for role in wanted {
            match listed.remove(&role.name) {
                Some(snapshot) => {
                    snapshots.insert(role.arn, snapshot);
                }
                None => alone.push(role),
            }
        }
        let read_alone: Vec<(String, RoleSnapshot)> = stream::iter(alone)
            .map(|r| async move {
                let snapshot = self.role(&r).await;
                (r.arn, snapshot)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        snapshots.extend(read_alone);
        snapshots
    }

    /// Roles and customer managed policies in the account, from `GetAccountSummary`; `None`
    /// when it cannot be read, and the roles are then read one at a time.
    async fn account_entries(&self) -> Option<u64> {
        match self.iam.get_account_summary().send().await {
            Ok(out) => {
                let summary = out.summary_map()?;
                let count =
                    |key: &SummaryKeyType| summary.get(key).copied().unwrap_or(0).max(0) as u64;
                Some(count(&SummaryKeyType::Roles) + count(&SummaryKeyType::Policies))
            }
            Err(e) => {
                let why = unavailable("GetAccountSummary", &e);
                debug!(error = %why.describe(), "reading roles one at a time");
                None
            }
        }
    }

    /// What `GetAccountAuthorizationDetails` settles of `wanted`, by role name. Paging stops
    /// once nothing more can be learnt; a refused or failed page ends the listing and leaves
    /// the rest to the per-role reads.
    async fn account_details(&self, wanted: &BTreeSet<RoleRef>) -> BTreeMap<String, RoleSnapshot> {
        let mut listing = DetailsListing::new(wanted);
        let mut pages = self
            .iam
            .get_account_authorization_details()
            .filter(EntityType::Role)
            .filter(EntityType::LocalManagedPolicy)
            .max_items(DETAILS_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => listing.absorb(
                    page.role_detail_list(),
                    page.policies(),
                    page.is_truncated(),
                ),
                Err(e) => {
                    let why = unavailable(OPERATION, &e);
                    warn!(error = %why.describe(), "reading roles one at a time instead");
                    break;
                }
            }
            if listing.settled() {
                break;
            }
        }
        let fetched: HashMap<String, Observed<NamedPolicy>> =
            stream::iter(listing.missing_policies())
                .map(|arn| async move {
                    let policy = self.managed_policy(&arn).await;
                    (arn, policy)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        listing.snapshots(&fetched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::types::{
        AttachedPermissionsBoundary, AttachedPolicy, PermissionsBoundaryAttachmentType,
        PolicyDetail, PolicyVersion,
    };
    use serde_json::Value;

    /// The fixture's pages as the SDK hands them over: (roles, policies, truncated).
    fn fixture_pages() -> Vec<(Vec<RoleDetail>, Vec<ManagedPolicyDetail>, bool)> {
        let text = include_str!("../../tests/fixtures/get_account_authorization_details.json");
        let fixture: Value = serde_json::from_str(text).unwrap();
        let s = |v: &Value, key: &str| v[key].as_str().map(str::to_string);
        let list = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
        list(&fixture, "pages")
            .iter()
            .map(|page| {
                let roles = list(page, "RoleDetailList")
                    .iter()
                    .map(|r| {
                        let mut role = RoleDetail::builder()
                            .set_role_name(s(r, "RoleName"))
                            .set_arn(s(r, "Arn"))
                            .set_assume_role_policy_document(s(r, "AssumeRolePolicyDocument"));
                        for p in list(r, "RolePolicyList") {
                            role = role.role_policy_list(
                                PolicyDetail::builder()
                                    .set_policy_name(s(&p, "PolicyName"))
                                    .set_policy_document(s(&p, "PolicyDocument"))
                                    .build(),
                            );
                        }
                        for p in list(r, "AttachedManagedPolicies") {
                            role = role.attached_managed_policies(
                                AttachedPolicy::builder()
                                    .set_policy_name(s(&p, "PolicyName"))
                                    .set_policy_arn(s(&p, "PolicyArn"))
                                    .build(),
                            );
                        }
                        if let Some(arn) = s(&r["PermissionsBoundary"], "PermissionsBoundaryArn") {
                            role = role.permissions_boundary(
                                AttachedPermissionsBoundary::builder()
                                    .permissions_boundary_type(
                                        PermissionsBoundaryAttachmentType::Policy,
                                    )
                                    .permissions_boundary_arn(arn)
                                    .build(),
                            );
                        }
                        role.build()
                    })
                    .collect();
                let policies = list(page, "Policies")
                    .iter()
                    .map(|p| {
                        let mut policy = ManagedPolicyDetail::builder().set_arn(s(p, "Arn"));
                        for v in list(p, "PolicyVersionList") {
                            policy = policy.policy_version_list(
                                PolicyVersion::builder()
                                    .set_document(s(&v, "Document"))
                                    .set_version_id(s(&v, "VersionId"))
                                    .is_default_version(v["IsDefaultVersion"] == true)
                                    .build(),
                            );
                        }
                        policy.build()
                    })
                    .collect();
                (roles, policies, page["IsTruncated"] == true)
            })
            .collect()
    }

    fn wanted(names: &[&str]) -> BTreeSet<RoleRef> {
        names
            .iter()
            .map(|name| {
                RoleRef::from_arn(&format!("arn:aws:iam::123456789012:role/{name}")).unwrap()
            })
            .collect()
    }

    const AUDIT: &str = "CloudTrailToCloudWatch-audit";
    const DATA: &str = "CloudTrailToCloudWatch-data";
    const SHARED: &str = "arn:aws:iam::123456789012:policy/shared-delivery";
    const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/logs-boundary";
    const AWS_MANAGED: &str = "arn:aws:iam::aws:policy/CloudWatchLogsFullAccess";

    #[test]
    fn a_role_whose_policy_is_on_a_later_page_keeps_the_listing_going() {
        let pages = fixture_pages();
        let mut listing = DetailsListing::new(&wanted(&[AUDIT]));
        let (roles, policies, truncated) = &pages[0];
        listing.absorb(roles, policies, *truncated);
        // The role is in, but the customer managed policy it holds is not yet.
        assert_eq!(
            listing.missing_policies(),
            BTreeSet::from([SHARED.to_string()])
        );
        assert!(!listing.settled());
        let (roles, policies, truncated) = &pages[1];
        listing.absorb(roles, policies, *truncated);
        assert!(listing.settled());
        assert!(listing.missing_policies().is_empty());

        let snapshots = listing.snapshots(&HashMap::new());
        let role = snapshots[AUDIT].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(
            role.arn,
            "arn:aws:iam::123456789012:role/CloudTrailToCloudWatch-audit"
        );
        let names: Vec<&str> = role.policies.iter().map(|p| p.name.as_str()).collect();
        // Inline first, then managed by ARN: the order the per-role read gives.
        assert_eq!(names, ["deliver", SHARED]);
        // The default version (v2, the delivery grant), not v1's deny-all.
        let shared = serde_json::to_string(&role.policies[1].document).unwrap();
        assert!(shared.contains("logs:PutLogEvents"), "{shared}");
        assert!(!shared.contains("Deny"), "{shared}");
    }

    #[test]
    fn aws_managed_policies_are_read_on_the_side_and_a_role_never_listed_is_gone() {
        let pages = fixture_pages();
        let mut listing = DetailsListing::new(&wanted(&[AUDIT, DATA, "deleted-role"]));
        for (roles, policies, truncated) in &pages {
            listing.absorb(roles, policies, *truncated);
        }
        // The listing leaves AWS managed policies out: the one the data role holds is missing.
        assert_eq!(
            listing.missing_policies(),
            BTreeSet::from([AWS_MANAGED.to_string()])
        );
        let read = NamedPolicy {
            name: AWS_MANAGED.into(),
            document: trailwatch_core::policy::PolicyDocument::parse(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#,
            )
            .unwrap(),
        };
        let fetched = HashMap::from([(AWS_MANAGED.to_string(), Ok(read))]);
        let snapshots = listing.snapshots(&fetched);
        let data = snapshots[DATA].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(data.policies.len(), 1);
        assert_eq!(data.policies[0].name, AWS_MANAGED);
        assert_eq!(
            data.permissions_boundary.as_ref().map(|b| b.name.as_str()),
            Some(BOUNDARY)
        );
        // The listing was complete, so a wanted role it never held does not exist.
        assert_eq!(snapshots["deleted-role"], Ok(None));
    }

    #[test]
    fn a_listing_cut_short_leaves_its_unknown_roles_to_the_per_role_reads() {
        let pages = fixture_pages();
        let mut listing = DetailsListing::new(&wanted(&[AUDIT, DATA]));
        let (roles, policies, truncated) = &pages[0];
        listing.absorb(roles, policies, *truncated);
        // The second page failed: the data role is not settled, and the audit role's
        // customer managed policy was read on the side.
        let read = NamedPolicy {
            name: SHARED.into(),
            document: trailwatch_core::policy::PolicyDocument::parse(
                r#"{"Version":"2012-10-17","Statement":[]}"#,
            )
            .unwrap(),
        };
        let fetched = HashMap::from([(SHARED.to_string(), Ok(read))]);
        let snapshots = listing.snapshots(&fetched);
        assert!(snapshots.contains_key(AUDIT));
        assert!(!snapshots.contains_key(DATA), "{snapshots:?}");
        // And a policy neither listed nor read is data the scan lacks, never a silent pass.
        let unread = listing.snapshots(&HashMap::new());
        assert!(unread[AUDIT].is_err(), "{unread:?}");
    }

    #[test]
    fn the_cost_model_picks_the_listing_for_many_roles_in_a_small_account() {
        // 6 delivery roles (24 calls alone) in an account of 40 entries: 1 + 1 + 2 = 4 calls.
        assert!(account_details_win(6, 40));
        // 2 roles (8 calls) in an account of 5,000 roles: 1 + 5 pages + 312 = 318.
        assert!(!account_details_win(2, 5_000));
        assert_eq!(account_details_cost(5_000), 1 + 5 + 312);
        // The measured crossover: 1,000 roles, where 17 delivery roles (68 calls) beat
        // 1 + 1 + 62 = 64, and 16 (64 calls) do not.
        assert!(account_details_win(17, 1_000));
        assert!(!account_details_win(16, 1_000));
        // An empty account still costs the summary and one page.
        assert_eq!(account_details_cost(0), 2);
    }

    #[test]
    fn iam_reads_parse_and_say_what_they_accept() {
        assert_eq!("auto".parse::<IamReads>(), Ok(IamReads::Auto));
        assert_eq!(
            " Account-Details ".parse::<IamReads>(),
            Ok(IamReads::AccountDetails)
        );
        assert_eq!("per-role".parse::<IamReads>(), Ok(IamReads::PerRole));
        assert!("both".parse::<IamReads>().unwrap_err().contains("per-role"));
    }
}
