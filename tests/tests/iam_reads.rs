//! The two ways of reading delivery roles: one role at a time, or the whole account with
//! `GetAccountAuthorizationDetails`. They must reach the same verdicts on the same account;
//! a refused listing must fall back to the per-role reads; and the cost model must pick the
//! listing for several roles in a small account and leave a single role to `GetRole`.
//!
//! moto answers the listing in one page whatever its size; the paging, AWS managed policies
//! and a listing cut short are covered with a fixture of the documented response in
//! `trailwatch-aws` (`inventory::roles`).

use anyhow::Result;
use serde_json::json;
use std::collections::BTreeSet;
use trailwatch_aws::IamReads;
use trailwatch_core::{ReasonCode, ScanReport, Status};
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{endpoint, Account, TrailSpec};

const HOME: &str = "us-east-1";

/// An account whose delivery roles hold every kind of policy: inline only, inline and a
/// customer managed policy, a permissions boundary that withholds log writes, and a role
/// that no longer exists.
async fn account_of_every_role() -> Result<Account> {
    let acct = Account::fresh().await?;
    acct.healthy_trail("plain", HOME, true).await?;
    let managed = acct.healthy_trail("managed", HOME, false).await?;
    acct.attach_managed(
        &managed.role_name,
        "extra-delivery",
        &trailwatch_tests::delivery_policy(&managed.log_group_arn),
    )
    .await?;
    let bounded = acct.healthy_trail("bounded", HOME, false).await?;
    let boundary = acct
        .iam()
        .create_policy()
        .policy_name("ReadOnlyBoundary")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": ["logs:Describe*"], "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await?;
    acct.iam()
        .put_role_permissions_boundary()
        .role_name(&bounded.role_name)
        .permissions_boundary(boundary.policy().and_then(|p| p.arn()).unwrap_or_default())
        .send()
        .await?;
    let orphan = acct.healthy_trail("orphan", HOME, false).await?;
    acct.iam()
        .delete_role_policy()
        .role_name(&orphan.role_name)
        .policy_name("delivery")
        .send()
        .await?;
    acct.iam()
        .delete_role()
        .role_name(&orphan.role_name)
        .send()
        .await?;
    acct.trail(TrailSpec::new("s3-only", HOME)).await?;
    Ok(acct)
}

/// A scan of `acct` reading roles as `reads`, through a fresh proxy that watches its calls.
async fn scan_watched(acct: &Account, reads: IamReads) -> Result<(ScanReport, FaultProxy)> {
    let proxy = FaultProxy::start(&endpoint()?).await?;
    let (report, _) = acct
        .via(&proxy.endpoint)
        .await
        .scan_reading_roles(&[HOME], reads)
        .await?;
    Ok((report, proxy))
}

/// The IAM operations a scan through `proxy` called.
fn iam_operations(proxy: &FaultProxy) -> BTreeSet<String> {
    proxy
        .iam_actions()
        .into_iter()
        .filter_map(|a| a.strip_prefix("iam:").map(str::to_string))
        .collect()
}

fn status_of(report: &ScanReport, trail: &str) -> (Status, Vec<ReasonCode>) {
    let found = report
        .evaluations
        .iter()
        .find(|e| e.resource_id.ends_with(&format!(":trail/{trail}")))
        .unwrap_or_else(|| panic!("no evaluation of {trail}: {report:#?}"));
    (found.status, found.reasons.iter().map(|r| r.code).collect())
}

#[tokio::test]
async fn both_ways_of_reading_roles_reach_the_same_verdicts() -> Result<()> {
    let acct = account_of_every_role().await?;
    let (per_role, one_by_one) = scan_watched(&acct, IamReads::PerRole).await?;
    let (listed, at_once) = scan_watched(&acct, IamReads::AccountDetails).await?;

    assert_eq!(listed.evaluations, per_role.evaluations);
    // The verdicts are the ones each role earns, not merely equal.
    assert_eq!(status_of(&listed, "plain").0, Status::Pass, "{listed:#?}");
    assert_eq!(status_of(&listed, "managed").0, Status::Pass, "{listed:#?}");
    assert!(status_of(&listed, "bounded")
        .1
        .contains(&ReasonCode::CwlRolePermissionMissing));
    assert_eq!(status_of(&listed, "orphan").0, Status::Fail, "{listed:#?}");

    assert_eq!(
        iam_operations(&at_once),
        BTreeSet::from(["GetAccountAuthorizationDetails".to_string()]),
        "the customer managed policy and the boundary come with the listing"
    );
    assert!(iam_operations(&one_by_one).contains("GetRole"));
    // 4 roles: 4 GetRole, 3 ListRolePolicies, 3 GetRolePolicy, 3 ListAttachedRolePolicies,
    // 2 GetPolicy and 2 GetPolicyVersion, against 1 listing.
    assert_eq!(per_role.api_calls - listed.api_calls, 17 - 1);
    Ok(())
}

#[tokio::test]
async fn a_refused_listing_falls_back_to_reading_each_role() -> Result<()> {
    let acct = account_of_every_role().await?;
    let (expected, _) = acct.scan_reading_roles(&[HOME], IamReads::PerRole).await?;
    let proxy = FaultProxy::start(&endpoint()?).await?;
    proxy.add(Rule::new(Fault::AccessDenied).on("GetAccountAuthorizationDetails"));

    let (report, _) = acct
        .via(&proxy.endpoint)
        .await
        .scan_reading_roles(&[HOME], IamReads::AccountDetails)
        .await?;

    assert_eq!(report.evaluations, expected.evaluations);
    assert_eq!(report.summary.error, 0, "{report:#?}");
    let injected: Vec<String> = proxy.injected().into_iter().map(|(_, op, _)| op).collect();
    assert_eq!(injected, ["GetAccountAuthorizationDetails"]);
    assert!(iam_operations(&proxy).contains("GetRole"));
    Ok(())
}

#[tokio::test]
async fn the_cost_model_lists_a_small_account_and_reads_a_lone_role_alone() -> Result<()> {
    let acct = account_of_every_role().await?;
    let (report, proxy) = scan_watched(&acct, IamReads::Auto).await?;
    // Four delivery roles (16 calls or more alone) in an account of a few roles and policies.
    assert_eq!(
        iam_operations(&proxy),
        BTreeSet::from([
            "GetAccountSummary".to_string(),
            "GetAccountAuthorizationDetails".to_string()
        ]),
        "{report:#?}"
    );

    let lone = Account::fresh().await?;
    lone.healthy_trail("alone", HOME, true).await?;
    let (report, proxy) = scan_watched(&lone, IamReads::Auto).await?;
    assert_eq!(report.summary.fail, 0, "{report:#?}");
    assert_eq!(
        iam_operations(&proxy),
        BTreeSet::from([
            "GetRole".to_string(),
            "ListRolePolicies".to_string(),
            "GetRolePolicy".to_string(),
            "ListAttachedRolePolicies".to_string()
        ]),
        "one role is cheaper read alone than counted and listed"
    );
    Ok(())
}
