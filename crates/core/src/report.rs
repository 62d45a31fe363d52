//! The scan report: the stable JSON contract that `trailwatch scan --output json` prints.

use crate::evaluate::{Evaluation, RegionCoverage};
use crate::reason::Status;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Counts of evaluations by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub warning: usize,
    pub error: usize,
}

impl Summary {
    pub fn of(evaluations: &[Evaluation]) -> Self {
        let count = |status| evaluations.iter().filter(|e| e.status == status).count();
        Self {
            pass: count(Status::Pass),
            fail: count(Status::Fail),
            warning: count(Status::Warning),
            error: count(Status::Error),
        }
    }
}

/// One scan of one account. Field names and meanings are a contract other tools read:
/// add fields, never rename or repurpose them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    #[serde(with = "rfc3339")]
    pub scanned_at: DateTime<Utc>,
    pub account_id: String,
    pub regions: Vec<String>,
    pub evaluations: Vec<Evaluation>,
    pub summary: Summary,
    /// AWS API operations the scan made (retries of one operation count once).
    pub api_calls: u64,
    pub duration_ms: u64,
    /// Region by region, the trails that give real-time coverage; empty when the scan did not
    /// read the whole account (a check of one trail, a re-check that stopped at the listing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coverage: Vec<RegionCoverage>,
}

impl ScanReport {
    pub fn new(
        scanned_at: DateTime<Utc>,
        account_id: String,
        regions: Vec<String>,
        evaluations: Vec<Evaluation>,
        api_calls: u64,
        duration_ms: u64,
    ) -> Self {
        Self {
            summary: Summary::of(&evaluations),
            scanned_at,
            account_id,
            regions,
            evaluations,
            api_calls,
            duration_ms,
            coverage: Vec::new(),
        }
    }
}

mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
