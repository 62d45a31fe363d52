//! The delivery role: does it exist, does it trust CloudTrail, may it write the trail's streams.
//!
//! Reason codes: `CWL_ROLE_NOT_CONFIGURED`, `CWL_ROLE_MISSING`, `CWL_ROLE_TRUST_INVALID`,
//! `CWL_ROLE_PERMISSION_MISSING`, `CWL_ROLE_UNVERIFIABLE`, `CWL_CHECKS_DELEGATED` (INFO), and
//! `EVALUATION_INCOMPLETE` when the role could not be read.

use super::incomplete;
use crate::arn::{LogGroupRef, RoleRef};
use crate::policy::{self, AccessRequest, Decision, PolicyDocument, RequestPrincipal};
use crate::reason::{Reason, ReasonCode};
use crate::snapshot::{AccountSnapshot, Trail, Unavailable};

/// Every role rule, starting with whether the trail names a role at all.
pub(super) fn role_reasons(
    trail: &Trail,
    group: &LogGroupRef,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    match trail.cloud_watch_logs_role_arn.as_deref() {
        None => reasons.push(Reason::new(
            ReasonCode::CwlRoleNotConfigured,
            format!(
                "Trail {} names log group {} but no CloudWatchLogsRoleArn, so CloudTrail cannot write to it.",
                trail.name, group.name
            ),
        )),
        Some(role_arn) => delivery_role_reasons(trail, group, role_arn, snapshot, reasons),
    }
}

fn delivery_role_reasons(
    trail: &Trail,
    group: &LogGroupRef,
    role_arn: &str,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    let Some(role_ref) = RoleRef::from_arn(role_arn) else {
        reasons.push(Reason::new(
            ReasonCode::CwlRoleMissing,
            format!(
                "Trail {} names {role_arn:?} as its CloudWatch Logs role, which is not an IAM role ARN.",
                trail.name
            ),
        ));
        return;
    };
    if role_ref.account != snapshot.account_id {
        reasons.push(Reason::new(
            ReasonCode::CwlChecksDelegated,
            format!(
                "Delivery role {} is in account {}; its trust and permissions are checked there.",
                role_ref.name, role_ref.account
            ),
        ));
        return;
    }
    let role = match snapshot.roles.get(role_arn) {
        Some(Ok(Some(role))) => role,
        Some(Ok(None)) => {
            reasons.push(Reason::new(
                ReasonCode::CwlRoleMissing,
                format!(
                    "Delivery role {} of trail {} does not exist, so CloudTrail cannot write to CloudWatch Logs.",
                    role_ref.name, trail.name
                ),
            ));
            return;
        }
        Some(Err(e)) => {
            reasons.push(incomplete(&format!("role {}", role_ref.name), e));
            return;
        }
        None => {
            reasons.push(incomplete(
                &format!("role {}", role_ref.name),
                &Unavailable::new("GetRole", None, "role was not collected"),
            ));
            return;
        }
    };

    let trust = AccessRequest {
        action: "sts:AssumeRole",
        resource: role_arn,
        principal: Some(RequestPrincipal::Service("cloudtrail.amazonaws.com")),
        context: &[
            ("aws:SourceArn", trail.trail_arn.as_str()),
            ("aws:SourceAccount", snapshot.account_id.as_str()),
        ],
    };
    match policy::evaluate(&[&role.assume_role_policy_document], &trust) {
        Decision::Allowed => {}
        Decision::Denied { explicit } => reasons.push(Reason::new(
            ReasonCode::CwlRoleTrustInvalid,
            format!(
                "Role {}'s trust policy {} cloudtrail.amazonaws.com to call sts:AssumeRole for trail {}. Allow that principal and action (a condition on aws:SourceArn, if any, must match the trail ARN).",
                role.role_name,
                if explicit { "explicitly denies" } else { "does not allow" },
                trail.name
            ),
        )),
        Decision::Unverifiable { statements } => reasons.push(Reason::new(
            ReasonCode::CwlRoleUnverifiable,
            format!(
                "Role {}'s trust policy lets CloudTrail in only under conditions trailwatch cannot evaluate ({}).",
                role.role_name,
                statements.join(", ")
            ),
        )),
    }

    // CloudTrail writes every region's events of a trail, multi-region or not, to one
    // stream named after the home region (AWS's default role policy grants just that prefix).
    let stream = group.cloudtrail_stream_arn(&snapshot.account_id, &trail.home_region);
    let documents: Vec<&PolicyDocument> = role.policies.iter().map(|p| &p.document).collect();
    let mut missing = Vec::new();
    let mut unverifiable = Vec::new();
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        let request = AccessRequest {
            action,
            resource: &stream,
            principal: None,
            context: &[],
        };
        match policy::evaluate(&documents, &request) {
            Decision::Allowed => {}
            Decision::Denied { .. } => missing.push(action),
            Decision::Unverifiable { statements } => unverifiable.extend(statements),
        }
    }
    if !missing.is_empty() {
        let mut message = format!(
            "Role {} may not {} on {}.",
            role.role_name,
            missing.join(" and "),
            stream
        );
        if let Some(statement) = bare_log_group_statement(role, group) {
            message.push_str(&format!(
                " Policy {statement} names the log group as {} without ':*'. CloudTrail writes to log streams inside the group, so the Resource must be {}. This is the most common reason delivery fails.",
                group.bare_arn(),
                group.streams_arn()
            ));
        } else {
            message.push_str(&format!(
                " Allow logs:CreateLogStream and logs:PutLogEvents on {}.",
                group.streams_arn()
            ));
        }
        reasons.push(Reason::new(ReasonCode::CwlRolePermissionMissing, message));
    } else if !unverifiable.is_empty() {
        unverifiable.sort();
        unverifiable.dedup();
        reasons.push(Reason::new(
            ReasonCode::CwlRoleUnverifiable,
            format!(
                "Role {}'s permission to write log group {} depends on conditions trailwatch cannot evaluate ({}).",
                role.role_name,
                group.name,
                unverifiable.join(", ")
            ),
        ));
    }
}

/// Finds an Allow statement for log writes whose Resource names the group itself but not its
/// streams: `arn:…:log-group:NAME` instead of `arn:…:log-group:NAME:*`.
fn bare_log_group_statement(role: &crate::snapshot::Role, group: &LogGroupRef) -> Option<String> {
    let bare = group.bare_arn();
    let stream = group.cloudtrail_stream_arn(&group.account, &group.region);
    role.policies.iter().find_map(|named| {
        named
            .document
            .statements
            .iter()
            .enumerate()
            .find(|(_, s)| {
                s.effect == policy::Effect::Allow
                    && (s.matches_action("logs:PutLogEvents")
                        || s.matches_action("logs:CreateLogStream"))
                    && s.resource.as_ref().is_some_and(|list| {
                        list.iter().any(|r| {
                            policy::glob_match(r, &bare, false)
                                && !policy::glob_match(r, &stream, false)
                        })
                    })
            })
            .map(|(i, s)| format!("{} ({})", named.name, s.label(i)))
    })
}
