//! Organisation mode's reader of service control policies: for each account, the SCPs
//! attached to it, to each OU above it and to the root, which the rules judge as the
//! guardrail against stopping, deleting and rewiring trails (`TAMPER_GUARDRAIL_MISSING`).
//!
//! Organizations answers only the management account and a delegated administrator, so the
//! deployment reads it once per run with its own credentials, and every account's scan asks
//! here. OUs and policies are shared by many accounts, so each parent, attachment and policy
//! document is read once per run however many accounts sit below it. Organizations allows a
//! few requests per second; the SDK's retry absorbs the throttling of a large first read.

use crate::config::ApiCallCounter;
use crate::error::unavailable;
use crate::mapping;
use aws_config::SdkConfig;
use aws_sdk_organizations::types::{ParentType, PolicyType};
use std::collections::HashMap;
use std::sync::Mutex;
use trailwatch_core::snapshot::{Guardrail, NamedPolicy, PolicyTarget};
use trailwatch_core::{Observed, Unavailable};

/// Organizations nests OUs at most five deep under the root: an account's path is at most
/// seven levels. A longer walk means a cycle in what was answered, not a deeper tree.
const MAX_PATH: usize = 8;

/// What the walk up from an account needs of one node: its parent's id and type.
type Parent = (String, String);

/// The organisation's SCPs, read through the deployment's own credentials and cached for one
/// run.
pub struct OrgPolicies {
    client: aws_sdk_organizations::Client,
    counter: ApiCallCounter,
    management_account: Mutex<Option<Observed<String>>>,
    parents: Mutex<HashMap<String, Observed<Parent>>>,
    attached: Mutex<HashMap<String, Observed<Vec<NamedPolicy>>>>,
    documents: Mutex<HashMap<String, Observed<NamedPolicy>>>,
}

/// Reads a cache entry. A poisoned lock only means another task panicked mid-insert; the map
/// is still usable.
fn cached<T: Clone>(map: &Mutex<HashMap<String, T>>, key: &str) -> Option<T> {
    map.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(key)
        .cloned()
}

/// Stores and returns `value`. Two tasks that missed the cache together both read AWS and
/// store the same answer.
fn remember<T: Clone>(map: &Mutex<HashMap<String, T>>, key: &str, value: T) -> T {
    map.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(key.to_string(), value.clone());
    value
}

impl OrgPolicies {
    pub fn new(sdk: &SdkConfig) -> Self {
        let counter = ApiCallCounter::default();
        Self {
            client: aws_sdk_organizations::Client::from_conf(
                aws_sdk_organizations::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            counter,
            management_account: Mutex::new(None),
            parents: Mutex::new(HashMap::new()),
            attached: Mutex::new(HashMap::new()),
            documents: Mutex::new(HashMap::new()),
        }
    }

    /// Organizations calls made so far, for every account together.
    pub fn api_calls(&self) -> u64 {
        self.counter.count()
    }

    /// The SCPs on `account`'s path, from the account up to the root; for the management
    /// account, which no SCP restricts, none.
    pub async fn guardrail(&self, account: &str) -> Observed<Guardrail> {
        if self.management_account().await? == account {
            return Ok(Guardrail {
                management_account: true,
                path: Vec::new(),
            });
        }
        let mut path = Vec::new();
        let (mut id, mut kind) = (account.to_string(), "ACCOUNT".to_string());
        for _ in 0..MAX_PATH {
            let policies = self.policies_on(&id).await?;
            let at_root = kind == "ROOT";
            path.push(PolicyTarget {
                id: id.clone(),
                kind: kind.clone(),
                policies,
            });
            if at_root {
                return Ok(Guardrail {
                    management_account: false,
                    path,
                });
            }
            (id, kind) = self.parent_of(&id).await?;
        }
        Err(Unavailable::new(
            "ListParents",
            None,
            format!("no root within {MAX_PATH} levels above account {account}"),
        ))
    }

    async fn management_account(&self) -> Observed<String> {
        if let Some(known) = self
            .management_account
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
        {
            return known;
        }
        let found = match self.client.describe_organization().send().await {
            Ok(out) => out
                .organization()
                .ok_or_else(|| {
                    Unavailable::new("DescribeOrganization", None, "no organisation returned")
                })
                .and_then(mapping::organization)
                .and_then(|o| {
                    o.master_account_id.ok_or_else(|| {
                        Unavailable::new(
                            "DescribeOrganization",
                            None,
                            "no management account returned",
                        )
                    })
                }),
            Err(e) => Err(unavailable("DescribeOrganization", &e)),
        };
        *self
            .management_account
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(found.clone());
        found
    }

    async fn parent_of(&self, child: &str) -> Observed<Parent> {
        if let Some(known) = cached(&self.parents, child) {
            return known;
        }
        let found = match self.client.list_parents().child_id(child).send().await {
            Ok(out) => out
                .parents()
                .first()
                .and_then(|p| {
                    let kind = match p.r#type()? {
                        ParentType::Root => "ROOT",
                        _ => "ORGANIZATIONAL_UNIT",
                    };
                    Some((p.id()?.to_string(), kind.to_string()))
                })
                .ok_or_else(|| {
                    Unavailable::new("ListParents", None, format!("{child} has no parent"))
                }),
            Err(e) => Err(unavailable("ListParents", &e)),
        };
        remember(&self.parents, child, found)
    }

    /// The SCPs attached directly to `target`, with their documents.
    async fn policies_on(&self, target: &str) -> Observed<Vec<NamedPolicy>> {
        if let Some(known) = cached(&self.attached, target) {
            return known;
        }
        let summaries = self
            .client
            .list_policies_for_target()
            .target_id(target)
            .filter(PolicyType::ServiceControlPolicy)
            .into_paginator()
            .send()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map(|pages| {
                pages
                    .iter()
                    .flat_map(|page| page.policies().to_vec())
                    .collect::<Vec<_>>()
            })
            .map_err(|e| unavailable("ListPoliciesForTarget", &e));
        let found = match summaries {
            Err(e) => Err(e),
            Ok(summaries) => {
                let mut policies = Vec::new();
                for summary in summaries {
                    let Some(id) = summary.id() else { continue };
                    match self.document(id).await {
                        Ok(policy) => policies.push(policy),
                        Err(e) => return remember(&self.attached, target, Err(e)),
                    }
                }
                Ok(policies)
            }
        };
        remember(&self.attached, target, found)
    }

    async fn document(&self, policy_id: &str) -> Observed<NamedPolicy> {
        if let Some(known) = cached(&self.documents, policy_id) {
            return known;
        }
        let found = match self
            .client
            .describe_policy()
            .policy_id(policy_id)
            .send()
            .await
        {
            Err(e) => Err(unavailable("DescribePolicy", &e)),
            Ok(out) => {
                let policy = out.policy();
                let name = policy
                    .and_then(|p| p.policy_summary())
                    .and_then(|s| s.name())
                    .unwrap_or(policy_id)
                    .to_string();
                mapping::policy_document("DescribePolicy", policy.and_then(|p| p.content()))
                    .map(|document| NamedPolicy { name, document })
            }
        };
        remember(&self.documents, policy_id, found)
    }
}
