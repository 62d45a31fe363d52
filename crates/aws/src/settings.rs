//! The `TRAILWATCH_` environment configuration, read once at cold start.
//!
//! A bad value stops the start with a message that names the variable, so a misconfigured
//! deployment fails on its first invocation instead of scanning with a silent default.

use crate::fanout::{
    FanOutConfig, DEFAULT_FAN_OUT_ABOVE, DEFAULT_MAX_RECEIVES, DEFAULT_WINDOW_SECONDS,
};
use crate::inventory::{IamReads, RegionSelection, DEFAULT_CONCURRENCY};
use crate::ledger::{is_table_name, table_arn};
use crate::organization::{OrgConfig, DEFAULT_ACCOUNT_CONCURRENCY};
use chrono::Duration;
use trailwatch_core::evaluate::Settings as RuleSettings;
use trailwatch_core::finding::DEFAULT_DOCS_URL;
use trailwatch_core::recheck::{AutoRemediation, MonitorResources};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TRAILWATCH_SNS_TOPIC_ARN`; unset means no alerts.
    pub sns_topic_arn: Option<String>,
    /// `TRAILWATCH_SECURITY_HUB`, default true.
    pub security_hub: bool,
    /// `TRAILWATCH_REGIONS`: `all` (default) or a comma-separated list.
    pub regions: RegionSelection,
    /// `TRAILWATCH_MAX_DELIVERY_AGE_HOURS`, default 4.
    pub max_delivery_age: Duration,
    /// `TRAILWATCH_GAP_WINDOW_HOURS`, default 24: how far back a stop of logging that was
    /// followed by a start is paged as `LOGGING_GAP`.
    pub gap_window: Duration,
    /// `TRAILWATCH_WARNINGS`, default true.
    pub warnings: bool,
    /// `TRAILWATCH_CONCURRENCY`, default 8.
    pub concurrency: usize,
    /// `TRAILWATCH_IAM_READS`: `auto` (default), `per-role` or `account-details`, how delivery
    /// roles are read.
    pub iam_reads: IamReads,
    /// `TRAILWATCH_DOCS_URL`, where findings and alerts link for each fix.
    pub docs_url: String,
    /// `TRAILWATCH_LEDGER_TABLE`: the DynamoDB table that keeps overlapping runs from alerting
    /// twice (see `ledger`); unset means no ledger, which is fine for one run at a time.
    pub ledger_table: Option<String>,
    /// `TRAILWATCH_MONITOR_RESOURCES`: trailwatch's own rules, functions, topics and key, as
    /// comma-separated ARN patterns (`*` and `?` wildcards). A call that disables, deletes or
    /// rewrites one of them pages HIGH.
    pub monitor: MonitorResources,
    /// Organisation mode, when `TRAILWATCH_ORG_ROLE_NAME` is set (see `organization`).
    pub org: Option<OrgConfig>,
    /// `TRAILWATCH_AUTO_REMEDIATE` (`start-logging`, or off) and
    /// `TRAILWATCH_AUTO_REMEDIATE_EXEMPT` (principals allowed to stop trails, ARN patterns).
    pub remediation: AutoRemediation,
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

/// IAM's rule for role names: 1 to 64 of letters, digits and `+=,.@_-`.
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// A comma-separated list of ARNs or ARN patterns (`*` and `?` wildcards); `example` shows
/// one in the error.
fn arn_patterns(
    variable: &'static str,
    text: Option<String>,
    example: &str,
) -> Result<Vec<String>, ConfigError> {
    let patterns: Vec<String> = text
        .iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    match patterns.iter().find(|p| !p.starts_with("arn:")) {
        Some(bad) => Err(ConfigError {
            variable,
            value: bad.clone(),
            reason: format!("expected comma-separated ARNs or ARN patterns ({example}, …)"),
        }),
        None => Ok(patterns),
    }
}

fn auto_remediation(get: &impl Fn(&str) -> Option<String>) -> Result<AutoRemediation, ConfigError> {
    let start_logging = match get("TRAILWATCH_AUTO_REMEDIATE").as_deref().map(str::trim) {
        None | Some("" | "off" | "none") => false,
        Some("start-logging") => true,
        Some(other) => {
            return Err(ConfigError {
                variable: "TRAILWATCH_AUTO_REMEDIATE",
                value: other.into(),
                reason: "expected start-logging, or off".into(),
            })
        }
    };
    let exempt = arn_patterns(
        "TRAILWATCH_AUTO_REMEDIATE_EXEMPT",
        get("TRAILWATCH_AUTO_REMEDIATE_EXEMPT"),
        "arn:aws:iam::*:role/SecurityAdmin",
    )?;
    Ok(AutoRemediation {
        start_logging,
        exempt,
    })
}

fn account_list(variable: &'static str, text: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let ids: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect();
    match ids
        .iter()
        .find(|id| id.len() != 12 || !id.chars().all(|c| c.is_ascii_digit()))
    {
        Some(bad) => Err(ConfigError {
            variable,
            value: text.clone(),
            reason: format!("{bad:?} is not a 12-digit account id"),
        }),
        None => Ok(ids),
    }
}

/// The `TRAILWATCH_ORG_` variables, read when the role name is set.
fn org_config(
    role_name: String,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<OrgConfig, ConfigError> {
    if !is_role_name(&role_name) {
        return Err(ConfigError {
            variable: "TRAILWATCH_ORG_ROLE_NAME",
            value: role_name,
            reason:
                "expected an IAM role name (1 to 64 of letters, digits and +=,.@_-), not an ARN"
                    .into(),
        });
    }
    let external_id = match get("TRAILWATCH_ORG_EXTERNAL_ID") {
        Some(id)
            if !(2..=1224).contains(&id.len())
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c)) =>
        {
            return Err(ConfigError {
                variable: "TRAILWATCH_ORG_EXTERNAL_ID",
                value: id,
                reason: "expected 2 to 1224 of letters, digits and +=,.@:/_-".into(),
            })
        }
        other => other,
    };
    let concurrency = whole_number(
        "TRAILWATCH_ORG_CONCURRENCY",
        get("TRAILWATCH_ORG_CONCURRENCY"),
        1..=32,
        DEFAULT_ACCOUNT_CONCURRENCY,
    )?;
    Ok(OrgConfig {
        fan_out: fan_out_config(get)?,
        role_name,
        external_id,
        include: account_list("TRAILWATCH_ORG_ACCOUNTS", get("TRAILWATCH_ORG_ACCOUNTS"))?,
        exclude: account_list(
            "TRAILWATCH_ORG_EXCLUDE_ACCOUNTS",
            get("TRAILWATCH_ORG_EXCLUDE_ACCOUNTS"),
        )?,
        concurrency,
    })
}

/// A whole number of `variable` within `range`, or `default` when unset.
fn whole_number<T>(
    variable: &'static str,
    value: Option<String>,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = value else {
        return Ok(default);
    };
    match text.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError {
            variable,
            value: text,
            reason: format!(
                "expected a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        }),
    }
}

/// Whether `url` looks like an SQS queue URL: `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`,
/// or an emulator's `http://HOST:PORT/ACCOUNT/NAME`.
fn is_queue_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    matches!(parts.as_slice(), [host, account, name]
        if !host.is_empty()
            && account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && !name.is_empty())
}

/// The fan-out variables, read when `TRAILWATCH_ORG_QUEUE_URL` is set.
fn fan_out_config(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<FanOutConfig>, ConfigError> {
    let Some(queue_url) = get("TRAILWATCH_ORG_QUEUE_URL") else {
        return Ok(None);
    };
    if !is_queue_url(&queue_url) {
        return Err(ConfigError {
            variable: "TRAILWATCH_ORG_QUEUE_URL",
            value: queue_url,
            reason: "expected an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
                .into(),
        });
    }
    if get("TRAILWATCH_LEDGER_TABLE").is_none() {
        return Err(ConfigError {
            variable: "TRAILWATCH_ORG_QUEUE_URL",
            value: queue_url,
            reason: "the fan-out counts the accounts' reports in the alert ledger: set TRAILWATCH_LEDGER_TABLE too".into(),
        });
    }
    // Lambda's 15 minutes, less the margin the scan keeps to answer.
    let window = whole_number(
        "TRAILWATCH_ORG_WINDOW_SECONDS",
        get("TRAILWATCH_ORG_WINDOW_SECONDS"),
        10..=870,
        DEFAULT_WINDOW_SECONDS,
    )?;
    Ok(Some(FanOutConfig {
        queue_url,
        above: whole_number(
            "TRAILWATCH_ORG_FAN_OUT_ABOVE",
            get("TRAILWATCH_ORG_FAN_OUT_ABOVE"),
            0..=1_000_000,
            DEFAULT_FAN_OUT_ABOVE,
        )?,
        window: std::time::Duration::from_secs(window),
        // SQS allows a maxReceiveCount of 1 to 1,000.
        max_receives: whole_number(
            "TRAILWATCH_ORG_MAX_RECEIVES",
            get("TRAILWATCH_ORG_MAX_RECEIVES"),
            1..=1_000,
            DEFAULT_MAX_RECEIVES,
        )?,
    }))
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
        let gap_window = match get("TRAILWATCH_GAP_WINDOW_HOURS") {
            None => Duration::hours(RuleSettings::DEFAULT_GAP_WINDOW_HOURS),
            Some(text) => match text.trim().parse::<i64>() {
                Ok(hours) if (1..=24 * 90).contains(&hours) => Duration::hours(hours),
                _ => {
                    return Err(ConfigError {
                        variable: "TRAILWATCH_GAP_WINDOW_HOURS",
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
        let monitor = MonitorResources {
            patterns: arn_patterns(
                "TRAILWATCH_MONITOR_RESOURCES",
                get("TRAILWATCH_MONITOR_RESOURCES"),
                "arn:aws:events:REGION:ACCOUNT:rule/NAME",
            )?,
        };
        let iam_reads = match get("TRAILWATCH_IAM_READS") {
            None => IamReads::default(),
            Some(text) => text.parse().map_err(|reason| ConfigError {
                variable: "TRAILWATCH_IAM_READS",
                value: text,
                reason,
            })?,
        };
        let remediation = auto_remediation(&get)?;
        let org = match get("TRAILWATCH_ORG_ROLE_NAME") {
            None => None,
            Some(role_name) => Some(org_config(role_name, &get)?),
        };
        Ok(Self {
            sns_topic_arn,
            ledger_table,
            monitor,
            remediation,
            org,
            security_hub,
            regions,
            max_delivery_age,
            gap_window,
            warnings,
            concurrency,
            iam_reads,
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
        assert_eq!(c.max_delivery_age, Duration::hours(4));
        assert_eq!(c.gap_window, Duration::hours(24));
        assert_eq!(c.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(c.iam_reads, IamReads::Auto);
        assert_eq!(c.ledger_table, None);
        assert_eq!(c.org, None);
        assert_eq!(c.remediation, AutoRemediation::default());
    }

    #[test]
    fn self_healing_is_read_with_its_exempt_principals() {
        let c = config(&[
            ("TRAILWATCH_AUTO_REMEDIATE", "start-logging"),
            (
                "TRAILWATCH_AUTO_REMEDIATE_EXEMPT",
                "arn:aws:iam::*:role/SecurityAdmin, arn:aws:iam::111122223333:user/break-glass",
            ),
        ])
        .unwrap();
        assert!(c.remediation.start_logging);
        assert_eq!(
            c.remediation.exempt,
            [
                "arn:aws:iam::*:role/SecurityAdmin",
                "arn:aws:iam::111122223333:user/break-glass"
            ]
        );
        // What the templates pass when it is off.
        let off = config(&[("TRAILWATCH_AUTO_REMEDIATE", "off")]).unwrap();
        assert!(!off.remediation.start_logging);
    }

    #[test]
    fn the_fan_out_reads_its_variables_and_needs_the_ledger() {
        let queue = "https://sqs.eu-west-1.amazonaws.com/111122223333/trailwatch-accounts";
        let org = [("TRAILWATCH_ORG_ROLE_NAME", "trailwatch-read")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = org.to_vec();
            pairs.extend_from_slice(extra);
            config(&pairs)
        };
        assert_eq!(with(&[]).unwrap().org.unwrap().fan_out, None);
        let defaults = with(&[
            ("TRAILWATCH_ORG_QUEUE_URL", queue),
            ("TRAILWATCH_LEDGER_TABLE", "trailwatch-alert-ledger"),
        ])
        .unwrap();
        let fan_out = defaults.org.unwrap().fan_out.unwrap();
        assert_eq!(fan_out.queue_url, queue);
        assert_eq!(fan_out.above, DEFAULT_FAN_OUT_ABOVE);
        assert_eq!(fan_out.window.as_secs(), DEFAULT_WINDOW_SECONDS);
        assert_eq!(fan_out.max_receives, DEFAULT_MAX_RECEIVES);
        let set = with(&[
            (
                "TRAILWATCH_ORG_QUEUE_URL",
                "http://127.0.0.1:5000/123456789012/accounts",
            ),
            ("TRAILWATCH_LEDGER_TABLE", "trailwatch-alert-ledger"),
            ("TRAILWATCH_ORG_FAN_OUT_ABOVE", "100"),
            ("TRAILWATCH_ORG_WINDOW_SECONDS", "300"),
            ("TRAILWATCH_ORG_MAX_RECEIVES", "5"),
        ])
        .unwrap()
        .org
        .unwrap()
        .fan_out
        .unwrap();
        assert_eq!(
            (set.above, set.window.as_secs(), set.max_receives),
            (100, 300, 5)
        );

        let no_ledger = with(&[("TRAILWATCH_ORG_QUEUE_URL", queue)]).unwrap_err();
        assert_eq!(no_ledger.variable, "TRAILWATCH_ORG_QUEUE_URL");
        assert!(no_ledger.reason.contains("TRAILWATCH_LEDGER_TABLE"));
        for (variable, value) in [
            (
                "TRAILWATCH_ORG_QUEUE_URL",
                "arn:aws:sqs:eu-west-1:111122223333:accounts",
            ),
            ("TRAILWATCH_ORG_WINDOW_SECONDS", "900"),
            ("TRAILWATCH_ORG_MAX_RECEIVES", "0"),
            ("TRAILWATCH_ORG_FAN_OUT_ABOVE", "many"),
        ] {
            let mut pairs = vec![
                ("TRAILWATCH_ORG_QUEUE_URL", queue),
                ("TRAILWATCH_LEDGER_TABLE", "trailwatch-alert-ledger"),
            ];
            pairs.retain(|(k, _)| *k != variable);
            pairs.push((variable, value));
            let error = with(&pairs).unwrap_err();
            assert_eq!(error.variable, variable, "{error:?}");
        }
    }

    #[test]
    fn organisation_mode_reads_its_variables() {
        let c = config(&[
            ("TRAILWATCH_ORG_ROLE_NAME", "trailwatch-read"),
            ("TRAILWATCH_ORG_EXTERNAL_ID", "trailwatch-1234"),
            ("TRAILWATCH_ORG_ACCOUNTS", "111111111111, 222222222222"),
            ("TRAILWATCH_ORG_EXCLUDE_ACCOUNTS", "222222222222"),
            ("TRAILWATCH_ORG_CONCURRENCY", "16"),
        ])
        .unwrap();
        let org = c.org.expect("organisation mode");
        assert_eq!(org.role_name, "trailwatch-read");
        assert_eq!(org.external_id.as_deref(), Some("trailwatch-1234"));
        assert_eq!(org.include, vec!["111111111111", "222222222222"]);
        assert_eq!(org.exclude, vec!["222222222222"]);
        assert_eq!(org.concurrency, 16);
        let defaults = config(&[("TRAILWATCH_ORG_ROLE_NAME", "r")]).unwrap();
        assert_eq!(
            defaults.org.map(|o| o.concurrency),
            Some(DEFAULT_ACCOUNT_CONCURRENCY)
        );
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
            ("TRAILWATCH_GAP_WINDOW_HOURS", "48"),
            ("TRAILWATCH_WARNINGS", "no"),
            ("TRAILWATCH_CONCURRENCY", "4"),
            ("TRAILWATCH_IAM_READS", "Per-Role"),
            ("TRAILWATCH_LEDGER_TABLE", "trailwatch-alert-ledger"),
            (
                "TRAILWATCH_MONITOR_RESOURCES",
                "arn:aws:events:us-east-1:111122223333:rule/tw-*, arn:aws:sns:us-east-1:111122223333:tw-alerts",
            ),
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
        assert_eq!(c.gap_window, Duration::hours(48));
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.iam_reads, IamReads::PerRole);
        assert_eq!(c.ledger_table.as_deref(), Some("trailwatch-alert-ledger"));
        assert!(c
            .monitor
            .owns("arn:aws:events:us-east-1:111122223333:rule/tw-changes"));
        assert_eq!(c.monitor.patterns.len(), 2);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("TRAILWATCH_SECURITY_HUB", "maybe"),
            ("TRAILWATCH_WARNINGS", "2"),
            ("TRAILWATCH_REGIONS", "us_east_1"),
            ("TRAILWATCH_MAX_DELIVERY_AGE_HOURS", "24h"),
            ("TRAILWATCH_GAP_WINDOW_HOURS", "0"),
            ("TRAILWATCH_CONCURRENCY", "0"),
            ("TRAILWATCH_IAM_READS", "sometimes"),
            ("TRAILWATCH_SNS_TOPIC_ARN", "alerts"),
            (
                "TRAILWATCH_LEDGER_TABLE",
                "arn:aws:dynamodb:us-east-1:111122223333:index/x",
            ),
            ("TRAILWATCH_LEDGER_TABLE", "ab"),
            ("TRAILWATCH_MONITOR_RESOURCES", "tw-changes"),
            ("TRAILWATCH_AUTO_REMEDIATE", "everything"),
            ("TRAILWATCH_AUTO_REMEDIATE_EXEMPT", "SecurityAdmin"),
            (
                "TRAILWATCH_ORG_ROLE_NAME",
                "arn:aws:iam::111111111111:role/x",
            ),
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
