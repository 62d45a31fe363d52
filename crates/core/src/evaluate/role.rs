//! The delivery role: does it exist, does it trust CloudTrail, may it write the trail's streams.
//!
//! Reason codes: `CWL_ROLE_NOT_CONFIGURED`, `CWL_ROLE_MISSING`, `CWL_ROLE_TRUST_INVALID`,
//! `CWL_ROLE_PERMISSION_MISSING` (every region's stream, the high-volume `_2` streams, an
//! organisation trail's member streams, and the permissions boundary), `CWL_ROLE_UNVERIFIABLE`,
//! `CWL_CHECKS_DELEGATED` (INFO), and `EVALUATION_INCOMPLETE` when the role or the
//! organisation could not be read.

use super::delivery::{stream_regions, trail_account};
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
            ("aws:SourceAccount", trail_account(trail, snapshot)),
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

    permission_reasons(trail, group, role, snapshot, reasons);
}

/// A member account's id for probing organisation-trail streams: AWS's policy allows
/// `log-stream:o-ORG_*`, which any member's stream must match.
const PROBE_MEMBER: &str = "000000000000";

/// Which stream a probe stands for, so that the message can say what to allow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stream {
    /// `ACCOUNT_CloudTrail_REGION`, the stream of one region the trail writes from.
    Region(String),
    /// `…_2`: CloudTrail opens more streams at high volume, so the policy must end in `*`.
    HighVolume(String),
    /// `o-ORG_MEMBER_CloudTrail_REGION`: a member account's events of an organisation trail.
    Member(String),
}

/// `CWL_ROLE_PERMISSION_MISSING` and `CWL_ROLE_UNVERIFIABLE`: may the role create and write
/// every stream CloudTrail writes for this trail, within its permissions boundary?
///
/// The streams (CloudTrail user guide, "CloudWatch log group and log stream naming"):
/// `ACCOUNT_CloudTrail_REGION` for the trail's region (and any other region the group shows
/// streams of, see [`stream_regions`]), with `_NUMBER` added "if the volume of CloudTrail logs
/// is large"; and for an organisation trail, streams that start `o-ORG_` ("Role policy
/// document for CloudTrail to use CloudWatch Logs for monitoring").
fn permission_reasons(
    trail: &Trail,
    group: &LogGroupRef,
    role: &crate::snapshot::Role,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    let account = trail_account(trail, snapshot);
    let mut probes: Vec<(Stream, String)> = Vec::new();
    let regions = stream_regions(trail, group, snapshot);
    for region in &regions {
        let base = group.cloudtrail_stream_arn(account, region);
        probes.push((Stream::HighVolume(region.to_string()), format!("{base}_2")));
        probes.push((Stream::Region(region.to_string()), base));
    }
    let mut organization = None;
    if trail.is_organization_trail {
        match &snapshot.organization {
            Some(Ok(org)) => {
                organization = Some(org.id.clone());
                for region in &regions {
                    probes.push((
                        Stream::Member(region.to_string()),
                        format!(
                            "{}:log-stream:{}_{PROBE_MEMBER}_CloudTrail_{region}",
                            group.bare_arn(),
                            org.id
                        ),
                    ));
                }
            }
            Some(Err(e)) => reasons.push(incomplete("the organisation's id", e)),
            None => reasons.push(incomplete(
                "the organisation's id",
                &Unavailable::new(
                    "DescribeOrganization",
                    None,
                    "organisation was not collected",
                ),
            )),
        }
    }

    let documents: Vec<&PolicyDocument> = role.policies.iter().map(|p| &p.document).collect();
    let mut refused: Vec<&Stream> = Vec::new();
    // The actions refused on the home region's stream, which the message names.
    let mut refused_at_home: Vec<&str> = Vec::new();
    let mut capped: Vec<&Stream> = Vec::new();
    let mut unverifiable = Vec::new();
    for (stream, arn) in &probes {
        for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
            let request = AccessRequest {
                action,
                resource: arn,
                principal: None,
                context: &[],
            };
            let allowed = match policy::evaluate(&documents, &request) {
                Decision::Allowed => true,
                Decision::Denied { .. } => {
                    refused.push(stream);
                    if *stream == Stream::Region(trail.home_region.clone()) {
                        refused_at_home.push(action);
                    }
                    false
                }
                Decision::Unverifiable { statements } => {
                    unverifiable.extend(statements);
                    false
                }
            };
            let Some(boundary) = &role.permissions_boundary else {
                continue;
            };
            match policy::evaluate(&[&boundary.document], &request) {
                Decision::Allowed => {}
                Decision::Denied { .. } if allowed => capped.push(stream),
                Decision::Denied { .. } => {}
                Decision::Unverifiable { statements } => unverifiable.extend(
                    statements
                        .into_iter()
                        .map(|s| format!("{s} of boundary {}", boundary.name)),
                ),
            }
        }
    }
    refused.dedup();
    capped.dedup();
    let mut parts = Vec::new();
    let regions_of = |streams: &[&Stream], wanted: fn(&Stream) -> Option<&String>| -> Vec<String> {
        let mut regions: Vec<String> = streams.iter().filter_map(|s| wanted(s).cloned()).collect();
        regions.sort();
        regions.dedup();
        regions
    };
    let base = regions_of(&refused, |s| match s {
        Stream::Region(r) => Some(r),
        _ => None,
    });
    let high_volume: Vec<String> = regions_of(&refused, |s| match s {
        Stream::HighVolume(r) => Some(r),
        _ => None,
    })
    .into_iter()
    .filter(|r| !base.contains(r))
    .collect();
    let members = regions_of(&refused, |s| match s {
        Stream::Member(r) => Some(r),
        _ => None,
    });
    if base.contains(&trail.home_region) {
        let stream = group.cloudtrail_stream_arn(account, &trail.home_region);
        let mut part = format!(
            "Role {} may not call {} on {stream}.",
            role.role_name,
            refused_at_home.join(" or ")
        );
        match bare_log_group_statement(role, group) {
            Some(statement) => part.push_str(&format!(
                " Policy {statement} names the log group as {} without ':*'. CloudTrail writes to log streams inside the group, so the Resource must be {}. This is the most common reason delivery fails.",
                group.bare_arn(),
                group.streams_arn()
            )),
            None => part.push_str(&format!(
                " Allow logs:CreateLogStream and logs:PutLogEvents on {}.",
                group.streams_arn()
            )),
        }
        parts.push(part);
    }
    let elsewhere: Vec<&String> = base.iter().filter(|r| **r != trail.home_region).collect();
    if !elsewhere.is_empty() {
        parts.push(format!(
            "Multi-region trail {} writes streams for other regions too (the group holds them), and role {} may not write those of {}: allow {}:log-stream:{account}_CloudTrail_*.",
            trail.name,
            role.role_name,
            elsewhere.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
            group.bare_arn()
        ));
    }
    if !high_volume.is_empty() {
        parts.push(format!(
            "Role {} may write {account}_CloudTrail_{} but not {account}_CloudTrail_{}_2: at high volume CloudTrail opens more streams, numbered _2, _3 and so on, so end the stream name with * ({}:log-stream:{account}_CloudTrail_{}*).",
            role.role_name,
            high_volume[0],
            high_volume[0],
            group.bare_arn(),
            high_volume[0]
        ));
    }
    if let (false, Some(org)) = (members.is_empty(), &organization) {
        parts.push(format!(
            "Trail {} is an organisation trail: every member account's events go to streams named {org}_MEMBER_CloudTrail_REGION, which role {} may not write, so no member's delivery works. Allow {}:log-stream:{org}_*.",
            trail.name,
            role.role_name,
            group.bare_arn()
        ));
    }
    if let (false, Some(boundary)) = (capped.is_empty(), &role.permissions_boundary) {
        parts.push(format!(
            "Role {}'s policies allow writing the trail's streams, but its permissions boundary {} does not: a boundary caps what the policies allow. Allow logs:CreateLogStream and logs:PutLogEvents on {} in the boundary too.",
            role.role_name,
            boundary.name,
            group.streams_arn()
        ));
    }
    if !parts.is_empty() {
        reasons.push(Reason::new(
            ReasonCode::CwlRolePermissionMissing,
            parts.join(" "),
        ));
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
