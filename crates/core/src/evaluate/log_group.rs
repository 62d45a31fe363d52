//! The log group a trail delivers to: does it exist, can it alarm, can CloudWatch Logs use its
//! key, does it expire its events.
//!
//! Reason codes: `CWL_NOT_CONFIGURED`, `CWL_LOG_GROUP_MISSING`, `CWL_LOG_GROUP_CLASS_LIMITED`,
//! `CWL_LOG_GROUP_KEY_UNUSABLE` (FAIL, or WARNING when its key policy hangs on conditions
//! trailwatch cannot evaluate), `CWL_RETENTION_UNSET`, `CWL_CHECKS_DELEGATED` (INFO), and
//! `EVALUATION_INCOMPLETE` when the group or its key could not be read.
//! The tamper alarm on the group is [`super::tamper_alarm`]'s.

use super::{incomplete, tamper_alarm};
use crate::arn::LogGroupRef;
use crate::policy::{self, AccessRequest, Decision, RequestPrincipal};
use crate::reason::{Level, Reason, ReasonCode};
use crate::snapshot::{AccountSnapshot, LogGroupSnapshot, Trail, Unavailable};

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
            key_reasons(group, state, snapshot, reasons);
            match class_limit(found.log_group_class.as_deref()) {
                // No metric filter can exist there, so asking for a tamper alarm would only
                // repeat this reason.
                Some(limit) => reasons.push(Reason::new(
                    ReasonCode::CwlLogGroupClassLimited,
                    format!(
                        "Log group {} is of class {}, which {limit}. No metric filter, and so no alarm, can watch trail {}'s events there: there is no real-time detection. The class cannot be changed; deliver to a STANDARD log group instead.",
                        group.name,
                        found.log_group_class.as_deref().unwrap_or_default(),
                        trail.name
                    ),
                )),
                None => tamper_alarm::tamper_alarm_reasons(trail, group, state, snapshot, reasons),
            }
        }
    }
}

/// What a log group class cannot do, for the classes that cannot alarm. CloudWatch Logs:
/// "The Infrequent Access log class supports a subset of CloudWatch Logs features"; Live Tail,
/// metric filters and alarming are not among them. "Use the Delivery log class only for
/// delivering Lambda logs to store in Amazon S3 or Amazon Data Firehose. Log events in log
/// groups in the Delivery class are kept in CloudWatch Logs for only one day" (CreateLogGroup,
/// `logGroupClass`, CloudWatch Logs API reference).
pub fn class_limit(class: Option<&str>) -> Option<&'static str> {
    match class {
        Some("INFREQUENT_ACCESS") => Some(
            "supports neither metric filters nor Live Tail, and so no alarm on the trail's events",
        ),
        Some("DELIVERY") => Some(
            "keeps events for one day and supports no metric filters, subscription filters or Logs Insights queries",
        ),
        _ => None,
    }
}

/// What CloudWatch Logs must be allowed to do with a log group's key: encrypt what it ingests
/// (a data key per batch) and decrypt it for readers. The documented key policy statement
/// allows `kms:Encrypt*`, `kms:Decrypt*`, `kms:ReEncrypt*`, `kms:GenerateDataKey*` and
/// `kms:Describe*` to `logs.REGION.amazonaws.com`, with `kms:EncryptionContext:aws:logs:arn`
/// set to the group's ARN ("Encrypt log data in CloudWatch Logs using AWS KMS").
const LOGS_KEY_ACTIONS: [&str; 3] = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"];

/// `CWL_LOG_GROUP_KEY_UNUSABLE`: the group's key is gone, disabled, pending deletion, or its
/// policy does not let the region's CloudWatch Logs use it.
fn key_reasons(
    group: &LogGroupRef,
    state: &LogGroupSnapshot,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    let Some(key) = &state.key else { return };
    let unusable = |why: String| {
        Reason::new(
            ReasonCode::CwlLogGroupKeyUnusable,
            format!(
                "Log group {} is encrypted with KMS key {why}: CloudWatch Logs cannot write the trail's events into it.",
                group.name
            ),
        )
    };
    let key_id = || {
        snapshot
            .log_groups
            .get(&group.bare_arn())
            .and_then(|s| s.group.as_ref().ok())
            .and_then(|g| g.as_ref())
            .and_then(|g| g.kms_key_id.clone())
            .unwrap_or_else(|| "(unknown)".into())
    };
    let key = match key {
        Err(e) => return reasons.push(incomplete(&format!("KMS key {}", key_id()), e)),
        Ok(None) => {
            return reasons.push(unusable(format!(
                "{}, which does not exist any more",
                key_id()
            )))
        }
        Ok(Some(key)) => key,
    };
    let arn = key.metadata.arn.clone().unwrap_or_else(key_id);
    match key.metadata.key_state.as_str() {
        "Enabled" => {}
        "PendingDeletion" => {
            let when = key
                .metadata
                .deletion_date
                .map(|d| {
                    format!(
                        " on {}",
                        d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                })
                .unwrap_or_default();
            return reasons.push(unusable(format!(
                "{arn}, which is scheduled for deletion{when} and cannot be used until that is cancelled (aws kms cancel-key-deletion)"
            )));
        }
        state => {
            return reasons.push(unusable(format!(
                "{arn}, which is in state {state}, not Enabled"
            )))
        }
    }
    let policy = match &key.policy {
        Ok(policy) => policy,
        Err(e) => return reasons.push(incomplete(&format!("the key policy of {arn}"), e)),
    };
    let service = format!("logs.{}.amazonaws.com", group.region);
    let context = [
        ("kms:EncryptionContext:aws:logs:arn", group.bare_arn()),
        ("aws:SourceAccount", snapshot.account_id.clone()),
    ];
    let context: Vec<(&str, &str)> = context.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut missing = Vec::new();
    let mut unsure = Vec::new();
    for action in LOGS_KEY_ACTIONS {
        let request = AccessRequest {
            action,
            resource: &arn,
            principal: Some(RequestPrincipal::Service(&service)),
            context: &context,
        };
        match policy::evaluate(&[policy], &request) {
            Decision::Allowed => {}
            Decision::Denied { .. } => missing.push(action),
            Decision::Unverifiable { statements } => unsure.extend(statements),
        }
    }
    if !missing.is_empty() {
        reasons.push(unusable(format!(
            "{arn}, whose key policy does not let {service} call {} for this group (allow it, with kms:EncryptionContext:aws:logs:arn set to {})",
            missing.join(", "),
            group.bare_arn()
        )));
    } else if !unsure.is_empty() {
        unsure.sort();
        unsure.dedup();
        reasons.push(
            Reason::new(
                ReasonCode::CwlLogGroupKeyUnusable,
                format!(
                    "Log group {}'s KMS key {arn} lets {service} use it only under conditions trailwatch cannot evaluate ({}); check them by hand.",
                    group.name,
                    unsure.join(", ")
                ),
            )
            .at_level(Level::Warning),
        );
    }
}
