//! The guardrail against the attacker's first move, in organisation mode: a service control
//! policy on the account's path (the root, its OUs, the account) that denies stopping,
//! deleting and updating trails, so that even a principal with those IAM permissions cannot.
//!
//! Reason codes: `TAMPER_GUARDRAIL_MISSING` (WARNING), `TAMPER_GUARDRAIL_NOT_APPLICABLE` (INFO,
//! for the management account, which "SCPs do not restrict"), and `EVALUATION_INCOMPLETE` when
//! the policies could not be read.

use super::incomplete;
use crate::policy::{Effect, Statement};
use crate::reason::{Reason, ReasonCode};
use crate::snapshot::{AccountSnapshot, Guardrail};

/// The calls an intruder uses to go dark, which the guardrail must deny.
const GUARDED: [&str; 3] = [
    "cloudtrail:StopLogging",
    "cloudtrail:DeleteTrail",
    "cloudtrail:UpdateTrail",
];

/// Condition keys that name who makes a call. A Deny whose conditions only exempt principals
/// by these (a security role, say) is the recommended guardrail: it binds everyone else.
const PRINCIPAL_KEYS: [&str; 9] = [
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principaltype",
    "aws:principalisawsservice",
    "aws:principalservicename",
    "aws:userid",
    "aws:username",
];

/// Whether a Deny statement's conditions only carve principals out of it.
fn exempts_principals_only(statement: &Statement) -> bool {
    let Some(block) = &statement.condition else {
        return true;
    };
    block.iter().all(|(operator, keys)| {
        let base = operator
            .trim_start_matches("ForAllValues:")
            .trim_start_matches("ForAnyValue:")
            .trim_end_matches("IfExists");
        let negated = matches!(
            base,
            "StringNotEquals"
                | "StringNotEqualsIgnoreCase"
                | "StringNotLike"
                | "ArnNotEquals"
                | "ArnNotLike"
                | "Bool"
        );
        negated
            && keys.keys().all(|key| {
                let key = key.to_ascii_lowercase();
                PRINCIPAL_KEYS.contains(&key.as_str()) || key.starts_with("aws:principaltag/")
            })
    })
}

/// Whether the policies on `guardrail`'s path keep `action` on `resource` from everyone but
/// exempted principals: a Deny anywhere on the path, or a level that allows none of it (an
/// SCP allows only what every level of the path allows).
fn denied(guardrail: &Guardrail, action: &str, resource: &str) -> bool {
    fn statements<'a>(
        level: &'a crate::snapshot::PolicyTarget,
        action: &str,
        resource: &str,
    ) -> Vec<&'a Statement> {
        level
            .policies
            .iter()
            .flat_map(|p| p.document.statements.iter())
            .filter(|s| s.matches_action(action) && s.matches_resource(resource))
            .collect()
    }
    let explicit = guardrail.path.iter().any(|level| {
        statements(level, action, resource)
            .iter()
            .any(|s| s.effect == Effect::Deny && exempts_principals_only(s))
    });
    // A conditional Allow still counts as allowing: when unsure, warn.
    let implicit = guardrail.path.iter().any(|level| {
        !statements(level, action, resource)
            .iter()
            .any(|s| s.effect == Effect::Allow)
    });
    explicit || implicit
}

/// The account's guardrail reasons; none outside organisation mode. `trails` are the ARNs of
/// the trails the account sees: an SCP may name them, and must guard each.
pub(super) fn guardrail_reasons(snapshot: &AccountSnapshot, trails: &[&str]) -> Vec<Reason> {
    let guardrail = match &snapshot.guardrail {
        None => return vec![],
        Some(Err(e)) => {
            return vec![incomplete(
                "the service control policies on the account's path",
                e,
            )]
        }
        Some(Ok(guardrail)) => guardrail,
    };
    let account = &snapshot.account_id;
    if guardrail.management_account {
        return vec![Reason::new(
            ReasonCode::TamperGuardrailNotApplicable,
            format!(
                "Account {account} is the organisation's management account, which service control policies do not restrict: only IAM policies keep its principals from stopping trails."
            ),
        )];
    }
    let probe = format!(
        "arn:{}:cloudtrail:{}:{account}:trail/any-trail",
        snapshot.partition, snapshot.home_region
    );
    let resources: Vec<&str> = match trails.is_empty() {
        true => vec![probe.as_str()],
        false => trails.to_vec(),
    };
    let unguarded: Vec<&str> = GUARDED
        .into_iter()
        .filter(|action| !resources.iter().all(|r| denied(guardrail, action, r)))
        .collect();
    if unguarded.is_empty() {
        return vec![];
    }
    let path: Vec<String> = guardrail
        .path
        .iter()
        .map(|level| match level.kind.as_str() {
            "ROOT" => format!("root {}", level.id),
            "ORGANIZATIONAL_UNIT" => format!("OU {}", level.id),
            _ => format!("account {}", level.id),
        })
        .collect();
    vec![Reason::new(
        ReasonCode::TamperGuardrailMissing,
        format!(
            "No service control policy on account {account}'s path ({}) denies {}: any principal of the account allowed those calls by IAM can stop, delete or rewire its trails. Attach an SCP that denies cloudtrail:StopLogging, cloudtrail:DeleteTrail and cloudtrail:UpdateTrail except to your security role (Condition ArnNotLike aws:PrincipalArn).",
            path.join(", "),
            unguarded.join(", ")
        ),
    )]
}
