//! The `TRAILWATCH_` environment configuration, read once at cold start.
//!
//! A bad value stops the start with a message that names the variable, so a misconfigured
//! deployment fails on its first invocation instead of scanning with a silent default.

use crate::inventory::{RegionSelection, DEFAULT_CONCURRENCY};
use crate::ledger::{is_table_name, table_arn};
use chrono::Duration;
use trailwatch_core::evaluate::Settings as RuleSettings;
use trailwatch_core::finding::DEFAULT_DOCS_URL;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TRAILWATCH_SNS_TOPIC_ARN`; unset means no alerts.
    pub sns_topic_arn: Option<String>,
    /// `TRAILWATCH_SECURITY_HUB`, default true.
    pub security_hub: bool,
    /// `TRAILWATCH_REGIONS`: `all` (default) or a comma-separated list.
    pub regions: RegionSelection,
    /// `TRAILWATCH_MAX_DELIVERY_AGE_HOURS`, default 24.
    pub max_delivery_age: Duration,
    /// `TRAILWATCH_WARNINGS`, default true.
    pub warnings: bool,
    /// `TRAILWATCH_CONCURRENCY`, default 8.
    pub concurrency: usize,
    /// `TRAILWATCH_DOCS_URL`, where findings and alerts link for each fix.
    pub docs_url: String,
    /// `TRAILWATCH_LEDGER_TABLE`: the DynamoDB table that keeps overlapping runs from alerting
    /// twice (see `ledger`); unset means no ledger, which is fine for one run at a time.
    pub ledger_table: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

fn parse_bool(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError {
            variable,
            value: value.into(),
            reason: "expected true or false".into(),
        }),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, which tests give a map instead of the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let sns_topic_arn = match get("TRAILWATCH_SNS_TOPIC_ARN") {
            Some(arn) if !arn.starts_with("arn:") || !arn.contains(":sns:") => {
                return Err(ConfigError {
                    variable: "TRAILWATCH_SNS_TOPIC_ARN",
                    value: arn,
                    reason: "expected an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)".into(),
                })
            }
            other => other,
        };
        let security_hub = get("TRAILWATCH_SECURITY_HUB")
            .map(|v| parse_bool("TRAILWATCH_SECURITY_HUB", &v))
            .transpose()?
            .unwrap_or(true);
        let warnings = get("TRAILWATCH_WARNINGS")
            .map(|v| parse_bool("TRAILWATCH_WARNINGS", &v))
            .transpose()?
            .unwrap_or(true);
        let regions = match get("TRAILWATCH_REGIONS") {
            None => RegionSelection::All,
            Some(text) => text.parse().map_err(|reason| ConfigError {
                variable: "TRAILWATCH_REGIONS",
                value: text.clone(),
                reason,
            })?,
        };
        let max_delivery_age = match get("TRAILWATCH_MAX_DELIVERY_AGE_HOURS") {
            None => Duration::hours(RuleSettings::DEFAULT_MAX_DELIVERY_AGE_HOURS),
            Some(text) => match text.trim().parse::<i64>() {
                Ok(hours) if (1..=24 * 90).contains(&hours) => Duration::hours(hours),
                _ => {
                    return Err(ConfigError {
                        variable: "TRAILWATCH_MAX_DELIVERY_AGE_HOURS",
                        value: text,
                        reason: "expected whole hours from 1 to 2160".into(),
                    })
                }
            },
        };
        let concurrency = match get("TRAILWATCH_CONCURRENCY") {
            None => DEFAULT_CONCURRENCY,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => n,
                _ => {
                    return Err(ConfigError {
                        variable: "TRAILWATCH_CONCURRENCY",
                        value: text,
                        reason: "expected a whole number from 1 to 64".into(),
                    })
                }
            },
        };
        let ledger_table = match get("TRAILWATCH_LEDGER_TABLE") {
            Some(table) if !is_table_name(&table) && table_arn(&table).is_none() => {
                return Err(ConfigError {
                    variable: "TRAILWATCH_LEDGER_TABLE",
                    value: table,
                    reason: "expected a DynamoDB table name (3 to 255 of a-z A-Z 0-9 _ - .) or a table ARN".into(),
                })
            }
            other => other,
        };
        Ok(Self {
            sns_topic_arn,
            ledger_table,
            security_hub,
            regions,
            max_delivery_age,
            warnings,
            concurrency,
            docs_url: get("TRAILWATCH_DOCS_URL").unwrap_or_else(|| DEFAULT_DOCS_URL.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.sns_topic_arn, None);
        assert!(c.security_hub && c.warnings);
        assert_eq!(c.regions, RegionSelection::All);
        assert_eq!(c.max_delivery_age, Duration::hours(24));
        assert_eq!(c.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(c.ledger_table, None);
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            (
                "TRAILWATCH_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:111122223333:alerts",
            ),
            ("TRAILWATCH_SECURITY_HUB", "false"),
            ("TRAILWATCH_REGIONS", "us-east-1,eu-west-1"),
            ("TRAILWATCH_MAX_DELIVERY_AGE_HOURS", "6"),
            ("TRAILWATCH_WARNINGS", "no"),
            ("TRAILWATCH_CONCURRENCY", "4"),
            ("TRAILWATCH_LEDGER_TABLE", "trailwatch-alert-ledger"),
        ])
        .unwrap();
        assert_eq!(
            c.sns_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:111122223333:alerts")
        );
        assert!(!c.security_hub && !c.warnings);
        assert_eq!(
            c.regions,
            RegionSelection::List(vec!["us-east-1".into(), "eu-west-1".into()])
        );
        assert_eq!(c.max_delivery_age, Duration::hours(6));
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.ledger_table.as_deref(), Some("trailwatch-alert-ledger"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("TRAILWATCH_SECURITY_HUB", "maybe"),
            ("TRAILWATCH_WARNINGS", "2"),
            ("TRAILWATCH_REGIONS", "us_east_1"),
            ("TRAILWATCH_MAX_DELIVERY_AGE_HOURS", "24h"),
            ("TRAILWATCH_CONCURRENCY", "0"),
            ("TRAILWATCH_SNS_TOPIC_ARN", "alerts"),
            (
                "TRAILWATCH_LEDGER_TABLE",
                "arn:aws:dynamodb:us-east-1:111122223333:index/x",
            ),
            ("TRAILWATCH_LEDGER_TABLE", "ab"),
        ] {
            let error = config(&[(name, value)]).unwrap_err();
            assert_eq!(error.variable, name);
            assert!(
                error.to_string().starts_with(&format!("{name}=")),
                "{error}"
            );
        }
    }
}
