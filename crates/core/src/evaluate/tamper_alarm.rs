//! The tamper alarm: a metric filter on the trail's log group that counts `StopLogging` and
//! `DeleteTrail`, and an alarm on its metric that notifies someone.
//!
//! Reason codes: `TAMPER_ALARM_MISSING`, and `EVALUATION_INCOMPLETE` when the filters or alarms
//! could not be read.

use super::incomplete;
use crate::arn::LogGroupRef;
use crate::filter_pattern;
use crate::reason::{Reason, ReasonCode};
use crate::snapshot::{AccountSnapshot, LogGroupSnapshot, Trail};

/// Real-shaped CloudTrail records of the two calls an attacker makes to go dark.
fn tamper_events(trail: &Trail, account: &str) -> [(&'static str, serde_json::Value); 2] {
    let record = |event_name: &str| {
        serde_json::json!({
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": format!("arn:aws:iam::{account}:user/intruder"),
                             "accountId": account, "userName": "intruder"},
            "eventTime": "2024-01-01T00:00:00Z",
            "eventSource": "cloudtrail.amazonaws.com",
            "eventName": event_name,
            "awsRegion": trail.home_region,
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"name": trail.trail_arn},
            "responseElements": null,
            "requestID": "00000000-0000-0000-0000-000000000000",
            "eventID": "00000000-0000-0000-0000-000000000000",
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": account,
            "eventCategory": "Management"
        })
    };
    [
        ("StopLogging", record("StopLogging")),
        ("DeleteTrail", record("DeleteTrail")),
    ]
}

pub(super) fn tamper_alarm_reasons(
    trail: &Trail,
    group: &LogGroupRef,
    state: &LogGroupSnapshot,
    snapshot: &AccountSnapshot,
    reasons: &mut Vec<Reason>,
) {
    let filters = match &state.metric_filters {
        Ok(filters) => filters,
        Err(e) => {
            reasons.push(incomplete(
                &format!("the metric filters of {}", group.name),
                e,
            ));
            return;
        }
    };
    let mut uncovered = Vec::new();
    let mut hints = Vec::new();
    for (event_name, record) in tamper_events(trail, &snapshot.account_id) {
        let matching: Vec<_> = filters
            .iter()
            .filter(|f| filter_pattern::matches(&f.filter_pattern, &record) == Ok(true))
            .collect();
        if matching.is_empty() {
            uncovered.push(event_name);
            continue;
        }
        let alarms = match &state.alarms {
            Ok(alarms) => alarms,
            Err(e) => {
                reasons.push(incomplete(&format!("the alarms in {}", group.region), e));
                return;
            }
        };
        let alarmed = matching.iter().any(|f| {
            f.metric_transformations.iter().any(|m| {
                alarms.iter().any(|a| {
                    a.metric_name.as_deref() == Some(m.metric_name.as_str())
                        && a.namespace.as_deref() == Some(m.metric_namespace.as_str())
                        && a.actions_enabled
                        && !a.alarm_actions.is_empty()
                })
            })
        });
        if !alarmed {
            uncovered.push(event_name);
            let names: Vec<_> = matching.iter().map(|f| f.filter_name.as_str()).collect();
            hints.push(format!(
                "filter {} counts {event_name} but no alarm with an action watches its metric",
                names.join(", ")
            ));
        }
    }
    if !uncovered.is_empty() {
        let hint = if hints.is_empty() {
            String::new()
        } else {
            format!(" ({})", hints.join("; "))
        };
        reasons.push(Reason::new(
            ReasonCode::TamperAlarmMissing,
            format!(
                "No metric filter on log group {} with an alarm that notifies someone catches {}{hint}. Add a filter such as {{ ($.eventName = StopLogging) || ($.eventName = DeleteTrail) }} and an alarm with an SNS action.",
                group.name,
                uncovered.join(" or ")
            ),
        ));
    }
}
