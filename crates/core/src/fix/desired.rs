//! The end state a fix reaches, resource by resource, for code that declares state rather
//! than making calls: `trailwatch fix --emit terraform` and `--emit cloudformation`.
//!
//! The plan's steps are calls; infrastructure as code declares each resource whole. So each
//! resource a step touches is described as it will be, and, where it already exists, as it is
//! now: code that takes in an existing resource must say what it holds, or the first deploy
//! would take away what it left out (a trail's KMS key, a role's permissions boundary).

use super::{role_path, Action, Step};
use crate::arn::LogGroupRef;
use crate::snapshot::{AccountSnapshot, EventSelectors, LogGroup, Role, Trail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// A log group to declare.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredLogGroup {
    pub region: String,
    pub name: String,
    /// The retention the fix sets, if it sets one.
    pub retention_days: Option<i32>,
    /// The group as it is, when it exists: code must take it in rather than create it.
    pub existing: Option<LogGroup>,
}

/// A role that exists, as code must declare it to take it in.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingRole {
    pub arn: String,
    pub trust_policy: Value,
    pub permissions_boundary_arn: Option<String>,
}

impl From<&Role> for ExistingRole {
    fn from(role: &Role) -> Self {
        Self {
            arn: role.arn.clone(),
            trust_policy: serde_json::to_value(&role.assume_role_policy_document)
                .unwrap_or(Value::Null),
            permissions_boundary_arn: role.permissions_boundary.as_ref().map(|b| b.name.clone()),
        }
    }
}

/// What a scan does not read but code must know: whether the log groups and roles a plan
/// would create exist already (a rerun after a partial `--apply`, a `--log-group` that names
/// an existing group). `--apply` finds out by trying; code that creates them would fail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Existing {
    /// By (region, name).
    pub log_groups: BTreeMap<(String, String), LogGroup>,
    /// By name.
    pub roles: BTreeMap<String, ExistingRole>,
}

/// A delivery role to declare. IAM is global; the role goes with the account.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRole {
    pub name: String,
    pub path: String,
    pub trust_policy: Value,
    /// The role as it is, when it exists (its trust policy is what the fix replaces).
    pub existing: Option<ExistingRole>,
}

/// trailwatch's own inline policy on a delivery role.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRolePolicy {
    pub role: String,
    pub name: String,
    pub document: Value,
}

/// The settings of a trail a fix may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailSettings {
    /// As `UpdateTrail` takes it, ending in `:*`.
    pub log_group_arn: Option<String>,
    pub role_arn: Option<String>,
    pub log_file_validation: bool,
    /// `None`: the status could not be read.
    pub is_logging: Option<bool>,
    /// `None`: the selectors could not be read.
    pub selectors: Option<EventSelectors>,
}

/// An existing trail, as it is and as the fix leaves it. A trail is never created by a fix.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredTrail {
    pub trail: Trail,
    pub before: TrailSettings,
    pub after: TrailSettings,
}

/// The CIS 4.5 metric filter on a log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredMetricFilter {
    pub region: String,
    pub group: String,
}

/// The tamper alarm on the filter's metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAlarm {
    pub region: String,
    pub name: String,
    pub topic_arn: String,
}

/// Every resource a set of steps touches, in the order the steps first touch them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub account: String,
    pub partition: String,
    /// Where the account-wide (IAM) resources are declared when the code is split by region.
    pub home_region: String,
    pub log_groups: Vec<DesiredLogGroup>,
    pub roles: Vec<DesiredRole>,
    pub role_policies: Vec<DesiredRolePolicy>,
    pub trails: Vec<DesiredTrail>,
    pub metric_filters: Vec<DesiredMetricFilter>,
    pub alarms: Vec<DesiredAlarm>,
    /// Steps that code cannot declare, said plainly (a trail another account owns).
    pub notes: Vec<String>,
}

/// What declaring a resource must wait for, as indices into the state's lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    pub log_groups: Vec<usize>,
    pub roles: Vec<usize>,
    pub role_policies: Vec<usize>,
}

impl DesiredState {
    /// A trail is pointed at its group and role only once both exist and the role may write:
    /// CloudTrail checks the role when `UpdateTrail` is called.
    pub fn trail_dependencies(&self, trail: &DesiredTrail) -> Dependencies {
        let role = trail.after.role_arn.as_deref().unwrap_or_default();
        let group = trail.after.log_group_arn.as_deref().unwrap_or_default();
        let names_role = |name: &str| role.ends_with(&format!("/{name}"));
        Dependencies {
            log_groups: positions(&self.log_groups, |g| {
                g.region == trail.trail.home_region
                    && group.ends_with(&format!(":log-group:{}:*", g.name))
            }),
            roles: positions(&self.roles, |r| names_role(&r.name)),
            role_policies: positions(&self.role_policies, |p| names_role(&p.role)),
        }
    }

    /// A metric filter needs its group.
    pub fn filter_dependencies(&self, filter: &DesiredMetricFilter) -> Dependencies {
        Dependencies {
            log_groups: positions(&self.log_groups, |g| {
                g.region == filter.region && g.name == filter.group
            }),
            ..Dependencies::default()
        }
    }

    /// A role policy needs its role.
    pub fn policy_dependencies(&self, policy: &DesiredRolePolicy) -> Dependencies {
        Dependencies {
            roles: positions(&self.roles, |r| r.name == policy.role),
            ..Dependencies::default()
        }
    }

    /// The regions with something to declare, the home region first when it has something
    /// (it holds the IAM resources, which the other regions' trails need first).
    pub fn regions(&self) -> Vec<String> {
        let mut regional: BTreeSet<&str> = BTreeSet::new();
        regional.extend(self.log_groups.iter().map(|g| g.region.as_str()));
        regional.extend(self.trails.iter().map(|t| t.trail.home_region.as_str()));
        regional.extend(self.metric_filters.iter().map(|f| f.region.as_str()));
        regional.extend(self.alarms.iter().map(|a| a.region.as_str()));
        let has_iam = !self.roles.is_empty() || !self.role_policies.is_empty();
        let mut regions = Vec::new();
        if has_iam || regional.contains(self.home_region.as_str()) {
            regions.push(self.home_region.clone());
        }
        regions.extend(
            regional
                .into_iter()
                .filter(|r| *r != self.home_region)
                .map(str::to_string),
        );
        regions
    }

    fn log_group(
        &mut self,
        snapshot: &AccountSnapshot,
        existing: &Existing,
        region: &str,
        name: &str,
    ) -> usize {
        if let Some(index) = self
            .log_groups
            .iter()
            .position(|g| g.region == region && g.name == name)
        {
            return index;
        }
        let bare_arn = LogGroupRef {
            partition: snapshot.partition.clone(),
            region: region.to_string(),
            account: snapshot.account_id.clone(),
            name: name.to_string(),
        }
        .bare_arn();
        let existing = snapshot
            .log_groups
            .get(&bare_arn)
            .and_then(|g| g.group.as_ref().ok())
            .and_then(Option::clone)
            .or_else(|| {
                existing
                    .log_groups
                    .get(&(region.to_string(), name.to_string()))
                    .cloned()
            });
        self.log_groups.push(DesiredLogGroup {
            region: region.to_string(),
            name: name.to_string(),
            retention_days: None,
            existing,
        });
        self.log_groups.len() - 1
    }

    /// The role `name`; `path` is where a role that does not exist yet is created.
    fn role(
        &mut self,
        snapshot: &AccountSnapshot,
        existing: &Existing,
        name: &str,
        path: Option<&str>,
        trust_policy: Value,
    ) -> usize {
        if let Some(index) = self.roles.iter().position(|r| r.name == name) {
            self.roles[index].trust_policy = trust_policy;
            return index;
        }
        let found = snapshot
            .roles
            .values()
            .filter_map(|r| r.as_ref().ok().and_then(Option::as_ref))
            .find(|r| r.role_name == name)
            .map(ExistingRole::from)
            .or_else(|| existing.roles.get(name).cloned());
        let path = match (&found, path) {
            (Some(role), _) => role_path(&role.arn),
            (None, Some(path)) => path.to_string(),
            (None, None) => "/".to_string(),
        };
        self.roles.push(DesiredRole {
            name: name.to_string(),
            path,
            trust_policy,
            existing: found,
        });
        self.roles.len() - 1
    }

    /// The trail named `name` whose home is `region`, as the snapshot saw it.
    fn trail(&mut self, snapshot: &AccountSnapshot, region: &str, name: &str) -> Option<usize> {
        if let Some(index) = self
            .trails
            .iter()
            .position(|t| t.trail.home_region == region && t.trail.name == name)
        {
            return Some(index);
        }
        let Some(trail) = snapshot
            .regions
            .iter()
            .filter_map(|r| r.trails.as_ref().ok())
            .flatten()
            .find(|t| t.home_region == region && t.name == name)
            .cloned()
        else {
            self.notes.push(format!(
                "Trail {name} ({region}) was not in the scan, so its change is not declared here; run trailwatch fix again."
            ));
            return None;
        };
        // An organisation trail is the management account's: this account can neither import
        // nor change it.
        if trail.owner_account() != Some(snapshot.account_id.as_str()) {
            self.notes.push(format!(
                "Trail {name} belongs to account {}: its change goes in that account's code, not here.",
                trail.owner_account().unwrap_or("(unknown)")
            ));
            return None;
        }
        let details = snapshot.trail_details.get(&trail.trail_arn);
        if details.is_none_or(|d| d.status.is_err()) {
            self.notes.push(format!(
                "Trail {name}'s status could not be read: the Terraform leaves its logging as it is; the CloudFormation template, which must say, declares it logging."
            ));
        }
        let before = TrailSettings {
            log_group_arn: trail.cloud_watch_logs_log_group_arn.clone(),
            role_arn: trail.cloud_watch_logs_role_arn.clone(),
            log_file_validation: trail.log_file_validation_enabled,
            is_logging: details.and_then(|d| d.status.as_ref().ok().map(|s| s.is_logging)),
            selectors: details.and_then(|d| d.event_selectors.as_ref().ok().cloned()),
        };
        self.trails.push(DesiredTrail {
            trail,
            after: before.clone(),
            before,
        });
        Some(self.trails.len() - 1)
    }
}

fn positions<T>(items: &[T], wanted: impl Fn(&T) -> bool) -> Vec<usize> {
    (0..items.len()).filter(|i| wanted(&items[*i])).collect()
}

/// The end state of `steps` (from [`super::merged_steps`]) on the account `snapshot` saw, with
/// `existing` telling which of the groups and roles to create are there already.
pub fn desired_state(
    steps: &[Step],
    snapshot: &AccountSnapshot,
    existing: &Existing,
) -> DesiredState {
    let mut state = DesiredState {
        account: snapshot.account_id.clone(),
        partition: snapshot.partition.clone(),
        home_region: snapshot.home_region.clone(),
        ..DesiredState::default()
    };
    // Our own JSON, so it parses; a string that did not would be declared as a string.
    let json = |text: &str| serde_json::from_str(text).unwrap_or(Value::String(text.into()));
    for step in steps {
        match &step.action {
            Action::CreateLogGroup { region, name } => {
                state.log_group(snapshot, existing, region, name);
            }
            Action::PutRetentionPolicy {
                region,
                group,
                days,
            } => {
                let index = state.log_group(snapshot, existing, region, group);
                state.log_groups[index].retention_days = Some(*days);
            }
            Action::CreateRole {
                name,
                path,
                trust_policy,
            } => {
                state.role(snapshot, existing, name, Some(path), json(trust_policy));
            }
            Action::UpdateAssumeRolePolicy {
                role, trust_policy, ..
            } => {
                state.role(snapshot, existing, role, None, json(trust_policy));
            }
            Action::PutRolePolicy {
                role,
                policy_name,
                document,
            } => state.role_policies.push(DesiredRolePolicy {
                role: role.clone(),
                name: policy_name.clone(),
                document: json(document),
            }),
            Action::SetCloudWatchLogs {
                region,
                trail,
                log_group_arn,
                role_arn,
            } => {
                if let Some(index) = state.trail(snapshot, region, trail) {
                    let after = &mut state.trails[index].after;
                    after.log_group_arn = Some(log_group_arn.clone());
                    after.role_arn = Some(role_arn.clone());
                }
            }
            Action::EnableLogFileValidation { region, trail } => {
                if let Some(index) = state.trail(snapshot, region, trail) {
                    state.trails[index].after.log_file_validation = true;
                }
            }
            Action::StartLogging { region, trail } => {
                if let Some(index) = state.trail(snapshot, region, trail) {
                    state.trails[index].after.is_logging = Some(true);
                }
            }
            Action::PutEventSelectors {
                region,
                trail,
                selectors,
            } => {
                if let Some(index) = state.trail(snapshot, region, trail) {
                    state.trails[index].after.selectors = Some(selectors.clone());
                }
            }
            Action::PutMetricFilter { region, group } => {
                state.metric_filters.push(DesiredMetricFilter {
                    region: region.clone(),
                    group: group.clone(),
                })
            }
            Action::PutMetricAlarm {
                region,
                alarm_name,
                topic_arn,
            } => state.alarms.push(DesiredAlarm {
                region: region.clone(),
                name: alarm_name.clone(),
                topic_arn: topic_arn.clone(),
            }),
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::{merged_steps, plan, FixOptions, DEFAULT_RETENTION_DAYS};
    use crate::reason::ReasonCode;
    use crate::snapshot::{RegionSnapshot, TrailDetails, TrailStatus};
    use crate::test_support::trail_evaluation;

    const ACCOUNT: &str = "111122223333";

    /// An S3-only trail with a KMS key, a key prefix and a delivery topic, as `DescribeTrails`
    /// returns it (the API reference's response shape, fixture), logging, with default
    /// selectors.
    fn encrypted_s3_only_account() -> AccountSnapshot {
        let listed: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/describe_trails_encrypted_s3_only.json"
        )))
        .unwrap();
        let trails: Vec<Trail> = serde_json::from_value(listed["trailList"].clone()).unwrap();
        let selectors: EventSelectors = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/get_event_selectors_default.json"
        )))
        .unwrap();
        let details = TrailDetails {
            status: Ok(TrailStatus {
                is_logging: true,
                latest_cloud_watch_logs_delivery_error: None,
                latest_cloud_watch_logs_delivery_time: None,
                start_logging_time: None,
                stop_logging_time: None,
            }),
            event_selectors: Ok(selectors),
            regional_status: BTreeMap::new(),
            tags: None,
        };
        AccountSnapshot {
            account_id: ACCOUNT.into(),
            partition: "aws".into(),
            home_region: "us-east-1".into(),
            trail_details: BTreeMap::from([(trails[0].trail_arn.clone(), details)]),
            regions: vec![RegionSnapshot {
                region: "us-east-1".into(),
                trails: Ok(trails),
            }],
            log_groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            topics: BTreeMap::new(),
            organization: None,
            guardrail: None,
        }
    }

    #[test]
    fn an_s3_only_trail_is_declared_whole_as_it_is_and_as_the_fix_leaves_it() {
        let snapshot = encrypted_s3_only_account();
        let evaluation = trail_evaluation("audit", &[ReasonCode::CwlNotConfigured]);
        let options = FixOptions {
            alarm_topics: BTreeMap::from([(
                "us-east-1".into(),
                format!("arn:aws:sns:us-east-1:{ACCOUNT}:security-alerts"),
            )]),
            ..FixOptions::default()
        };
        let steps = merged_steps(&[plan(&snapshot, &evaluation, &options)]);
        let state = desired_state(&steps, &snapshot, &Existing::default());

        assert_eq!(state.regions(), vec!["us-east-1".to_string()]);
        let [trail] = state.trails.as_slice() else {
            panic!("{state:#?}");
        };
        // What the fix does not touch is still declared, so code cannot take it away.
        assert_eq!(
            trail.trail.kms_key_id.as_deref(),
            Some("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!(trail.trail.s3_key_prefix.as_deref(), Some("cloudtrail"));
        assert_eq!(
            trail.trail.sns_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:111122223333:trail-deliveries")
        );
        assert_eq!(trail.before.log_group_arn, None);
        assert_eq!(
            trail.after.log_group_arn.as_deref(),
            Some("arn:aws:logs:us-east-1:111122223333:log-group:/aws/cloudtrail/audit:*")
        );
        assert_eq!(
            trail.after.role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/CloudTrailRoleForCloudWatchLogs_audit")
        );
        assert_eq!(trail.before.selectors, trail.after.selectors);
        assert!(trail.after.selectors.is_some());
        assert_eq!(trail.after.is_logging, Some(true));

        let [group] = state.log_groups.as_slice() else {
            panic!("{state:#?}");
        };
        assert!(group.existing.is_none());
        assert_eq!(group.retention_days, Some(DEFAULT_RETENTION_DAYS));
        let [role] = state.roles.as_slice() else {
            panic!("{state:#?}");
        };
        assert!(role.existing.is_none());
        assert_eq!(role.path, "/");
        assert_eq!(
            role.trust_policy["Statement"][0]["Condition"]["StringEquals"]["aws:SourceArn"],
            evaluation.resource_id
        );
        assert_eq!(state.role_policies.len(), 1);
        assert_eq!(
            state.metric_filters,
            vec![DesiredMetricFilter {
                region: "us-east-1".into(),
                group: "/aws/cloudtrail/audit".into()
            }]
        );
        assert_eq!(state.alarms.len(), 1);
    }

    #[test]
    fn an_existing_role_whose_trust_is_replaced_is_declared_with_its_path_and_boundary() {
        let mut snapshot = encrypted_s3_only_account();
        let role: Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/get_role_trusts_ec2.json"
        )))
        .unwrap();
        // IAM puts a role's path in its ARN.
        let arn = format!("arn:aws:iam::{ACCOUNT}:role/service-role/delivery");
        let boundary = crate::snapshot::NamedPolicy {
            name: format!("arn:aws:iam::{ACCOUNT}:policy/DeveloperBoundary"),
            document: crate::policy::PolicyDocument::parse(
                r#"{"Statement":{"Effect":"Allow","Action":"logs:*","Resource":"*"}}"#,
            )
            .unwrap(),
        };
        let role = Role {
            role_name: "delivery".into(),
            arn: arn.clone(),
            assume_role_policy_document: serde_json::from_value(
                role["Role"]["AssumeRolePolicyDocument"].clone(),
            )
            .unwrap(),
            policies: vec![],
            permissions_boundary: Some(boundary),
        };
        snapshot.roles.insert(arn.clone(), Ok(Some(role)));
        let mut evaluation = trail_evaluation("audit", &[ReasonCode::CwlRoleTrustInvalid]);
        evaluation.trail.as_mut().unwrap().role_arn = Some(arn);
        evaluation.trail.as_mut().unwrap().log_group_arn = Some(format!(
            "arn:aws:logs:us-east-1:{ACCOUNT}:log-group:audit:*"
        ));
        let steps = merged_steps(&[plan(&snapshot, &evaluation, &FixOptions::default())]);
        let state = desired_state(&steps, &snapshot, &Existing::default());
        let [role] = state.roles.as_slice() else {
            panic!("{state:#?}");
        };
        assert_eq!(role.path, "/service-role/");
        let existing = role.existing.as_ref().expect("the role as it is");
        assert_eq!(
            existing.permissions_boundary_arn.as_deref(),
            Some("arn:aws:iam::111122223333:policy/DeveloperBoundary")
        );
        assert_eq!(
            existing.trust_policy["Statement"][0]["Principal"]["Service"],
            "ec2.amazonaws.com"
        );
        assert!(state.trails.is_empty(), "the trail itself is not changed");
        assert_eq!(state.regions(), vec!["us-east-1".to_string()]);
    }

    #[test]
    fn a_missing_role_is_recreated_on_its_path_and_a_group_already_there_is_taken_in() {
        let snapshot = encrypted_s3_only_account();
        let mut gone = trail_evaluation("audit", &[ReasonCode::CwlRoleMissing]);
        let summary = gone.trail.as_mut().unwrap();
        summary.role_arn = Some(format!("arn:aws:iam::{ACCOUNT}:role/delivery/gone"));
        summary.log_group_arn = Some(format!(
            "arn:aws:logs:us-east-1:{ACCOUNT}:log-group:audit:*"
        ));
        let steps = merged_steps(&[plan(&snapshot, &gone, &FixOptions::default())]);
        let state = desired_state(&steps, &snapshot, &Existing::default());
        assert_eq!(state.roles[0].path, "/delivery/");
        assert!(state.roles[0].existing.is_none());

        // A rerun after a partial apply: the group the plan would create is there already.
        let s3_only = trail_evaluation("audit", &[ReasonCode::CwlNotConfigured]);
        let steps = merged_steps(&[plan(&snapshot, &s3_only, &FixOptions::default())]);
        let group = LogGroup {
            log_group_name: "/aws/cloudtrail/audit".into(),
            arn: None,
            retention_in_days: None,
            creation_time: None,
            log_group_class: Some("STANDARD".into()),
            kms_key_id: None,
        };
        let existing = Existing {
            log_groups: BTreeMap::from([(
                ("us-east-1".to_string(), group.log_group_name.clone()),
                group.clone(),
            )]),
            roles: BTreeMap::new(),
        };
        let state = desired_state(&steps, &snapshot, &existing);
        assert_eq!(state.log_groups[0].existing, Some(group));
        assert_eq!(
            state.log_groups[0].retention_days,
            Some(DEFAULT_RETENTION_DAYS)
        );
    }

    #[test]
    fn a_trail_another_account_owns_is_not_declared_and_the_code_says_so() {
        let mut snapshot = encrypted_s3_only_account();
        if let Ok(trails) = snapshot.regions[0].trails.as_mut() {
            trails[0].trail_arn = "arn:aws:cloudtrail:us-east-1:999988887777:trail/audit".into();
        }
        let steps = vec![Step {
            action: Action::StartLogging {
                region: "us-east-1".into(),
                trail: "audit".into(),
            },
            fixes: vec![ReasonCode::LoggingStopped],
        }];
        let state = desired_state(&steps, &snapshot, &Existing::default());
        assert!(state.trails.is_empty());
        assert!(
            state.notes[0].contains("belongs to account 999988887777"),
            "{state:#?}"
        );
    }
}
