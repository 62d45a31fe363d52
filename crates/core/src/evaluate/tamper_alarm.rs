//! The tamper alarm: a metric filter on the trail's log group that counts `StopLogging` and
//! `DeleteTrail`, an alarm on its metric that one such event can set off, and an action that
//! reaches someone.
//!
//! Reason codes: `TAMPER_ALARM_MISSING` (no filter matches, the pattern is not understood, or
//! no alarm on it can fire), `TAMPER_ALARM_UNROUTED` (it fires, but its topics are gone or have
//! no confirmed subscription), and `EVALUATION_INCOMPLETE` when the filters, alarms or
//! subscriptions could not be read.

use super::incomplete;
use crate::arn::LogGroupRef;
use crate::filter_pattern;
use crate::reason::{Reason, ReasonCode};
use crate::snapshot::{
    AccountSnapshot, LogGroupSnapshot, MetricAlarm, MetricFilter, MetricTransformation, Observed,
    Subscription, Trail, Unavailable,
};
use std::collections::BTreeMap;

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
    let mut unrouted = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    let mut not_understood: Vec<String> = Vec::new();
    for (event_name, record) in tamper_events(trail, &snapshot.account_id) {
        let mut matching: Vec<&MetricFilter> = Vec::new();
        for filter in filters {
            match filter_pattern::matches(&filter.filter_pattern, &record) {
                Ok(true) => matching.push(filter),
                Ok(false) => {}
                Err(e) => {
                    let quoted = format!(
                        "filter {} `{}` ({e})",
                        filter.filter_name, filter.filter_pattern
                    );
                    if !not_understood.contains(&quoted) {
                        not_understood.push(quoted);
                    }
                }
            }
        }
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
        // Alarms on a matching filter's metric, with an action, that one such event can set off.
        let mut firing: Vec<&MetricAlarm> = Vec::new();
        for filter in &matching {
            for transformation in &filter.metric_transformations {
                for alarm in alarms.iter().filter(|a| watches(a, transformation)) {
                    if !alarm.actions_enabled || alarm.alarm_actions.is_empty() {
                        hints.push(format!("alarm {} has no enabled action", alarm.alarm_name));
                    } else if let Err(why) = can_fire(alarm, transformation) {
                        hints.push(format!("alarm {} can never fire: {why}", alarm.alarm_name));
                    } else {
                        firing.push(alarm);
                    }
                }
            }
        }
        if firing.is_empty() {
            uncovered.push(event_name);
            let names: Vec<_> = matching.iter().map(|f| f.filter_name.as_str()).collect();
            hints.push(format!(
                "filter {} counts {event_name} but no alarm that can fire watches its metric",
                names.join(", ")
            ));
            continue;
        }
        let mut routed = false;
        for alarm in &firing {
            match routing(alarm, &snapshot.topics) {
                Ok(()) => routed = true,
                Err(Unrouted::Unknown(topic, e)) => {
                    reasons.push(incomplete(
                        &format!("the subscriptions of topic {topic}"),
                        &e,
                    ));
                    return;
                }
                Err(Unrouted::Nobody(why)) => {
                    hints.push(format!("alarm {} {why}", alarm.alarm_name))
                }
            }
        }
        if !routed {
            unrouted.push(event_name);
        }
    }
    hints.sort();
    hints.dedup();
    let detail = |hints: &[String]| match hints.is_empty() {
        true => String::new(),
        false => format!(" ({})", hints.join("; ")),
    };
    if !uncovered.is_empty() {
        let mut message = format!(
            "No metric filter on log group {} with an alarm that can fire and notifies someone catches {}{}.",
            group.name,
            uncovered.join(" or "),
            detail(&hints)
        );
        if !not_understood.is_empty() {
            message.push_str(&format!(
                " trailwatch does not understand {}, so it cannot count on it.",
                not_understood.join(", ")
            ));
        }
        message.push_str(" Add a filter such as { ($.eventName = StopLogging) || ($.eventName = DeleteTrail) } with metric value 1, and an alarm on its metric (Sum >= 1 over one period) with an SNS action.");
        reasons.push(Reason::new(ReasonCode::TamperAlarmMissing, message));
    } else if !unrouted.is_empty() {
        reasons.push(Reason::new(
            ReasonCode::TamperAlarmUnrouted,
            format!(
                "The tamper alarm of log group {} would fire on {}, but pages nobody{}. Subscribe someone to its topic, and confirm the subscription.",
                group.name,
                unrouted.join(" and "),
                detail(&hints)
            ),
        ));
    }
}

/// Whether `alarm` watches the metric `transformation` publishes.
fn watches(alarm: &MetricAlarm, transformation: &MetricTransformation) -> bool {
    alarm.metric_name.as_deref() == Some(transformation.metric_name.as_str())
        && alarm.namespace.as_deref() == Some(transformation.metric_namespace.as_str())
}

/// Whether one matching event can set `alarm` off: the datapoint it makes (the metric value;
/// a count of 1 for `SampleCount`) must breach the threshold, and one breaching period must be
/// enough. What trailwatch cannot judge (a value taken from the event, anomaly bands, metric
/// math) counts as able to fire.
fn can_fire(alarm: &MetricAlarm, transformation: &MetricTransformation) -> Result<(), String> {
    let value = transformation.metric_value.trim();
    let Ok(value) = value.parse::<f64>() else {
        return Ok(());
    };
    let statistic = alarm.statistic.as_deref();
    let datapoint = match (statistic, &alarm.extended_statistic) {
        (Some("SampleCount"), _) => 1.0,
        (Some(_), _) | (None, Some(_)) => value,
        (None, None) => return Ok(()),
    };
    if let (Some(threshold), Some(operator)) =
        (alarm.threshold, alarm.comparison_operator.as_deref())
    {
        let breaches = match operator {
            "GreaterThanOrEqualToThreshold" => datapoint >= threshold,
            "GreaterThanThreshold" => datapoint > threshold,
            "LessThanThreshold" => datapoint < threshold,
            "LessThanOrEqualToThreshold" => datapoint <= threshold,
            _ => true,
        };
        if !breaches {
            let what = match statistic {
                Some("SampleCount") => "a count of 1".to_string(),
                _ => format!("the metric value {}", transformation.metric_value),
            };
            return Err(format!(
                "one StopLogging gives {what}, and {} {operator} {threshold} does not hold",
                statistic
                    .or(alarm.extended_statistic.as_deref())
                    .unwrap_or("the statistic")
            ));
        }
    }
    let needed = alarm
        .datapoints_to_alarm
        .or(alarm.evaluation_periods)
        .unwrap_or(1);
    let missing_breaches = alarm.treat_missing_data.as_deref() == Some("breaching");
    if needed > 1 && !missing_breaches {
        return Err(format!(
            "it needs {needed} breaching periods, and one StopLogging makes one"
        ));
    }
    Ok(())
}

/// Why an alarm that fires may still page nobody.
enum Unrouted {
    /// Its topics are gone or have no confirmed subscription.
    Nobody(String),
    /// A topic's subscriptions could not be read, or were not collected.
    Unknown(String, Unavailable),
}

/// Whether one of the alarm's actions reaches someone. A Lambda function, an SSM OpsItem or any
/// other action type counts; an SNS topic counts once it has a confirmed subscription.
fn routing(
    alarm: &MetricAlarm,
    topics: &BTreeMap<String, Observed<Option<Vec<Subscription>>>>,
) -> Result<(), Unrouted> {
    let mut why = Vec::new();
    for action in &alarm.alarm_actions {
        if !action.contains(":sns:") {
            return Ok(());
        }
        match topics.get(action) {
            Some(Ok(Some(subscriptions)))
                if subscriptions.iter().any(Subscription::is_confirmed) =>
            {
                return Ok(())
            }
            Some(Ok(Some(subscriptions))) if subscriptions.is_empty() => why.push(format!(
                "notifies topic {action}, which has no subscription"
            )),
            Some(Ok(Some(_))) => why.push(format!(
                "notifies topic {action}, whose subscriptions are all still pending confirmation"
            )),
            Some(Ok(None)) => why.push(format!("notifies topic {action}, which does not exist")),
            Some(Err(e)) => return Err(Unrouted::Unknown(action.clone(), e.clone())),
            // Not collected: unknown, never silently fine.
            None => {
                return Err(Unrouted::Unknown(
                    action.clone(),
                    Unavailable::new("ListSubscriptionsByTopic", None, "topic was not collected"),
                ))
            }
        }
    }
    Err(Unrouted::Nobody(why.join(", ")))
}
