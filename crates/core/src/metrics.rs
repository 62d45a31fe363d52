//! CloudWatch Embedded Metric Format: one JSON line on stdout per run, which Lambda's log
//! pipeline turns into metrics, with no `PutMetricData` call (and no permission for it).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

pub const NAMESPACE: &str = "trailwatch";

/// What one run did, as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunMetrics {
    pub trails_evaluated: u64,
    pub trails_failing: u64,
    /// ERROR evaluations plus findings or alerts that could not be recorded or sent.
    pub errors: u64,
    pub transitions: u64,
    pub api_calls: u64,
    pub duration_ms: u64,
}

/// What one organisation run did, as metrics: how many accounts it read and how many it could
/// not reach at all (an alarm on `AccountsUnreachable` is how a broken read role is noticed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrgMetrics {
    pub accounts: u64,
    pub accounts_scanned: u64,
    pub accounts_unreachable: u64,
    pub duration_ms: u64,
}

/// The EMF line for `metrics`, with the function's name as the one dimension.
pub fn emf_line(function: &str, at: DateTime<Utc>, metrics: &RunMetrics) -> String {
    emf(
        function,
        at,
        &[
            ("TrailsEvaluated", "Count", metrics.trails_evaluated),
            ("TrailsFailing", "Count", metrics.trails_failing),
            ("Errors", "Count", metrics.errors),
            ("Transitions", "Count", metrics.transitions),
            ("ApiCalls", "Count", metrics.api_calls),
            ("Duration", "Milliseconds", metrics.duration_ms),
        ],
    )
}

/// The EMF line of an organisation run, besides each account's [`emf_line`].
pub fn emf_organization_line(function: &str, at: DateTime<Utc>, metrics: &OrgMetrics) -> String {
    emf(
        function,
        at,
        &[
            ("Accounts", "Count", metrics.accounts),
            ("AccountsScanned", "Count", metrics.accounts_scanned),
            ("AccountsUnreachable", "Count", metrics.accounts_unreachable),
            ("OrganizationDuration", "Milliseconds", metrics.duration_ms),
        ],
    )
}

/// One EMF line declaring and carrying `units` (name, unit, value).
fn emf(function: &str, at: DateTime<Utc>, units: &[(&str, &str, u64)]) -> String {
    let mut line = json!({
        "_aws": {
            "Timestamp": at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": units.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        },
        "Function": function,
    });
    if let Value::Object(map) = &mut line {
        for (name, _, value) in units {
            map.insert(name.to_string(), json!(value));
        }
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_declares_every_metric_it_carries() {
        let at = DateTime::from_timestamp_millis(1_717_243_200_000).unwrap();
        let metrics = RunMetrics {
            trails_evaluated: 5,
            trails_failing: 4,
            errors: 0,
            transitions: 4,
            api_calls: 40,
            duration_ms: 412,
        };
        let line: Value = serde_json::from_str(&emf_line("scheduled-scan", at, &metrics)).unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_717_243_200_000i64);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "trailwatch");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(line["Function"], "scheduled-scan");
        for declared in directive["Metrics"].as_array().unwrap() {
            let name = declared["Name"].as_str().unwrap();
            assert!(line[name].is_u64(), "{name} is declared but not set");
        }
        assert_eq!(line["TrailsFailing"], 4);
        assert_eq!(line["Duration"], 412);
    }

    #[test]
    fn organisation_line_carries_the_unreachable_accounts() {
        let at = DateTime::from_timestamp_millis(1_717_243_200_000).unwrap();
        let metrics = OrgMetrics {
            accounts: 50,
            accounts_scanned: 49,
            accounts_unreachable: 1,
            duration_ms: 3650,
        };
        let line: Value =
            serde_json::from_str(&emf_organization_line("scheduled-scan", at, &metrics)).unwrap();
        let declared: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(
            declared,
            [
                "Accounts",
                "AccountsScanned",
                "AccountsUnreachable",
                "OrganizationDuration"
            ]
        );
        assert_eq!(line["AccountsUnreachable"], 1);
        assert_eq!(line["AccountsScanned"], 49);
    }
}
