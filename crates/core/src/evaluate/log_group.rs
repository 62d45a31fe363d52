//! The log group a trail delivers to: does it exist, does it expire its events.
//!
//! Reason codes: `CWL_NOT_CONFIGURED`, `CWL_LOG_GROUP_MISSING`, `CWL_RETENTION_UNSET`,
//! `CWL_CHECKS_DELEGATED` (INFO), and `EVALUATION_INCOMPLETE` when the group could not be read.
//! The tamper alarm on the group is [`super::tamper_alarm`]'s.

use super::{incomplete, tamper_alarm};
use crate::arn::LogGroupRef;
use crate::reason::{Reason, ReasonCode};
use crate::snapshot::{AccountSnapshot, Trail, Unavailable};

/// `CWL_NOT_CONFIGURED`: the seed's check.
pub(super) fn not_configured(trail: &Trail) -> Reason {
    Reason::new(
        ReasonCode::CwlNotConfigured,
        format!(
            "Trail {} sends its events only to S3{}; with no CloudWatch Logs log group nothing can alarm on them.",
            trail.name,
            trail
                .s3_bucket_name
                .as_deref()
                .map(|b| format!(" (bucket {b})"))
                .unwrap_or_default()
        ),
    )
}

/// A `CloudWatchLogsLogGroupArn` that names no log group at all.
pub(super) fn not_a_log_group(trail: &Trail, group_arn: &str) -> Reason {
    Reason::new(
        ReasonCode::CwlLogGroupMissing,
        format!(
            "Trail {} names {group_arn:?} as its log group, which is not a log group ARN.",
            trail.name
        ),
    )
}

pub(super) fn log_group_reasons(
    trail: &Trail,
    group: &LogGroupRef,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    if group.account != snapshot.account_id {
        reasons.push(Reason::new(
            ReasonCode::CwlChecksDelegated,
            format!(
                "Log group {} is in account {}; its existence, retention and alarms are checked there.",
                group.name, group.account
            ),
        ));
        return;
    }
    let Some(state) = snapshot.log_groups.get(&group.bare_arn()) else {
        reasons.push(incomplete(
            &format!("log group {}", group.name),
            &Unavailable::new("DescribeLogGroups", None, "log group was not collected"),
        ));
        return;
    };
    match &state.group {
        Err(e) => reasons.push(incomplete(&format!("log group {}", group.name), e)),
        Ok(None) => reasons.push(Reason::new(
            ReasonCode::CwlLogGroupMissing,
            format!(
                "Log group {} in {} does not exist, so trail {} has nowhere to deliver. Recreate it or point the trail at an existing group.",
                group.name, group.region, trail.name
            ),
        )),
        Ok(Some(found)) => {
            if found.retention_in_days.is_none() {
                reasons.push(Reason::new(
                    ReasonCode::CwlRetentionUnset,
                    format!(
                        "Log group {} never expires its events; set a retention (for example 365 days) to bound the cost.",
                        group.name
                    ),
                ));
            }
            tamper_alarm::tamper_alarm_reasons(trail, group, state, snapshot, reasons);
        }
    }
}
