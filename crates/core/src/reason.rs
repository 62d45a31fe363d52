//! Reason codes, their levels and severities, and the overall status they add up to.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How much a single reason weighs in a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// Said for the record (a skipped check, a benefit of the doubt); never changes the status.
    Info,
    Warning,
    /// Data that a rule needs could not be read.
    Error,
    Fail,
}

impl Level {
    /// The level as the README and `trailwatch explain` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Fail => "FAIL",
        }
    }
}

/// The verdict of one evaluation. The JSON contract spells these PASS, FAIL, WARNING, ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pass,
    Warning,
    Error,
    Fail,
}

impl Status {
    /// A confirmed failure outranks missing data: a FAIL we can prove is actionable now, and
    /// hiding it behind ERROR would delay the fix. Missing data outranks warnings and PASS,
    /// because an evaluation that lacks data must never look healthy.
    pub fn from_reasons(reasons: &[Reason]) -> Self {
        let has = |level| reasons.iter().any(|r| r.level == level);
        if has(Level::Fail) {
            Status::Fail
        } else if has(Level::Error) {
            Status::Error
        } else if has(Level::Warning) {
            Status::Warning
        } else {
            Status::Pass
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warning => "WARNING",
            Status::Error => "ERROR",
            Status::Fail => "FAIL",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ASFF severity labels, ordered so that `max` picks the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// The worst severity among reasons that count; INFORMATIONAL when nothing is wrong.
    pub fn worst_of(reasons: &[Reason]) -> Self {
        reasons
            .iter()
            .filter(|r| r.level != Level::Info)
            .map(Reason::severity)
            .max()
            .unwrap_or(Severity::Informational)
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            Severity::Informational,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not a severity label"))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every reason trailwatch can give. The README documents each one with its fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    // Trail level, FAIL.
    CwlNotConfigured,
    CwlRoleNotConfigured,
    LoggingStopped,
    CwlDeliveryError,
    CwlDeliveryStale,
    CwlLogGroupMissing,
    CwlRoleMissing,
    CwlRoleTrustInvalid,
    CwlRolePermissionMissing,
    /// A region the trail covers has no recent stream event (FAIL, or WARNING for a trail
    /// that logs write events only).
    CwlRegionSilent,
    /// The log group's class (INFREQUENT_ACCESS, DELIVERY) supports no metric filters.
    CwlLogGroupClassLimited,
    /// The log group's KMS key cannot be used by CloudWatch Logs.
    CwlLogGroupKeyUnusable,
    // Trail level, WARNING.
    CwlRetentionUnset,
    TamperAlarmMissing,
    /// The tamper alarm exists, but no action reaches anyone.
    TamperAlarmUnrouted,
    ManagementEventsExcluded,
    LogFileValidationDisabled,
    /// Logging was stopped and started again within the gap window: the events in between
    /// reached neither S3 nor CloudWatch Logs.
    LoggingGap,
    /// A policy statement that decides the outcome carries a condition trailwatch cannot evaluate.
    CwlRoleUnverifiable,
    /// The `trailwatch:exempt` tag's value is empty or cannot be read as an exemption.
    ExemptionInvalid,
    /// The `trailwatch:exempt` tag's `until` date has passed: the trail is judged as usual.
    ExemptionExpired,
    // Trail level, INFO.
    /// The trail's tags could not be read, so an exemption, if any, is not honoured.
    ExemptionUnverifiable,
    /// CloudWatch delivery has not happened yet, but logging started within `max_delivery_age`.
    CwlDeliveryPending,
    /// The log group or role lives in another account, so its checks belong to that account.
    CwlChecksDelegated,
    // Account level.
    NoTrail,
    NoRealtimeCoverage,
    /// Coverage comes from an organisation trail that the management account owns.
    OrgTrailCoverage,
    /// Organisation mode: no SCP on the account's path denies stopping, deleting or updating
    /// trails.
    TamperGuardrailMissing,
    /// The management account: no SCP applies to it, so no guardrail is expected.
    TamperGuardrailNotApplicable,
    // Any level of evaluation.
    EvaluationIncomplete,
    /// A call changed trailwatch itself: its rules, functions, topic or key.
    MonitorTampered,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 31] = [
        ReasonCode::CwlNotConfigured,
        ReasonCode::CwlRoleNotConfigured,
        ReasonCode::LoggingStopped,
        ReasonCode::CwlDeliveryError,
        ReasonCode::CwlDeliveryStale,
        ReasonCode::CwlLogGroupMissing,
        ReasonCode::CwlRoleMissing,
        ReasonCode::CwlRoleTrustInvalid,
        ReasonCode::CwlRolePermissionMissing,
        ReasonCode::CwlRegionSilent,
        ReasonCode::CwlLogGroupClassLimited,
        ReasonCode::CwlLogGroupKeyUnusable,
        ReasonCode::CwlRetentionUnset,
        ReasonCode::TamperAlarmMissing,
        ReasonCode::TamperAlarmUnrouted,
        ReasonCode::ManagementEventsExcluded,
        ReasonCode::LogFileValidationDisabled,
        ReasonCode::LoggingGap,
        ReasonCode::CwlRoleUnverifiable,
        ReasonCode::CwlDeliveryPending,
        ReasonCode::CwlChecksDelegated,
        ReasonCode::NoTrail,
        ReasonCode::NoRealtimeCoverage,
        ReasonCode::OrgTrailCoverage,
        ReasonCode::TamperGuardrailMissing,
        ReasonCode::TamperGuardrailNotApplicable,
        ReasonCode::EvaluationIncomplete,
        ReasonCode::MonitorTampered,
        ReasonCode::ExemptionInvalid,
        ReasonCode::ExemptionExpired,
        ReasonCode::ExemptionUnverifiable,
    ];

    pub fn level(self) -> Level {
        use ReasonCode::*;
        match self {
            CwlNotConfigured
            | CwlRoleNotConfigured
            | LoggingStopped
            | CwlDeliveryError
            | CwlDeliveryStale
            | CwlLogGroupMissing
            | CwlRoleMissing
            | CwlRoleTrustInvalid
            | CwlRolePermissionMissing
            | CwlRegionSilent
            | CwlLogGroupClassLimited
            | CwlLogGroupKeyUnusable
            | LoggingGap
            | NoTrail
            | NoRealtimeCoverage
            | MonitorTampered => Level::Fail,
            CwlRetentionUnset
            | TamperAlarmMissing
            | TamperAlarmUnrouted
            | TamperGuardrailMissing
            | ManagementEventsExcluded
            | LogFileValidationDisabled
            | CwlRoleUnverifiable
            | ExemptionInvalid
            | ExemptionExpired => Level::Warning,
            CwlDeliveryPending
            | CwlChecksDelegated
            | OrgTrailCoverage
            | TamperGuardrailNotApplicable
            | ExemptionUnverifiable => Level::Info,
            EvaluationIncomplete => Level::Error,
        }
    }

    /// Whether the code says what became of a person's own `trailwatch:exempt` tag: lapsed,
    /// unparseable or unreadable. Turning warnings off never hides these, or a lapsed
    /// exemption would page without saying it lapsed, and a mistyped tag would fail to exempt
    /// without a word.
    pub fn is_about_an_exemption(self) -> bool {
        matches!(
            self,
            ReasonCode::ExemptionExpired
                | ReasonCode::ExemptionInvalid
                | ReasonCode::ExemptionUnverifiable
        )
    }

    /// Whether the code tells of something past rather than a state now: a logging gap is over
    /// once logging restarted. It never makes a trail unfit for coverage, and its going is not
    /// a fix to page about.
    pub fn is_historical(self) -> bool {
        self == ReasonCode::LoggingGap
    }

    /// The severity of this code at its usual level.
    pub fn severity(self) -> Severity {
        self.severity_at(self.level())
    }

    /// The severity of this code when it is raised at `level` (a few codes are FAIL or
    /// WARNING depending on the evidence).
    pub fn severity_at(self, level: Level) -> Severity {
        use ReasonCode::*;
        match (self, level) {
            // Stopped logging, or a gap in it, is the attacker's first move; no trail or no
            // real-time coverage means nothing at all would page anyone; a tampered monitor
            // pages nobody from then on.
            (
                LoggingStopped | LoggingGap | NoTrail | NoRealtimeCoverage | MonitorTampered,
                Level::Fail,
            ) => Severity::High,
            (_, Level::Fail | Level::Error) => Severity::Medium,
            (_, Level::Warning) => Severity::Low,
            (_, Level::Info) => Severity::Informational,
        }
    }

    pub fn as_str(self) -> &'static str {
        use ReasonCode::*;
        match self {
            CwlNotConfigured => "CWL_NOT_CONFIGURED",
            CwlRoleNotConfigured => "CWL_ROLE_NOT_CONFIGURED",
            LoggingStopped => "LOGGING_STOPPED",
            CwlDeliveryError => "CWL_DELIVERY_ERROR",
            CwlDeliveryStale => "CWL_DELIVERY_STALE",
            CwlLogGroupMissing => "CWL_LOG_GROUP_MISSING",
            CwlRoleMissing => "CWL_ROLE_MISSING",
            CwlRoleTrustInvalid => "CWL_ROLE_TRUST_INVALID",
            CwlRolePermissionMissing => "CWL_ROLE_PERMISSION_MISSING",
            CwlRegionSilent => "CWL_REGION_SILENT",
            CwlLogGroupClassLimited => "CWL_LOG_GROUP_CLASS_LIMITED",
            CwlLogGroupKeyUnusable => "CWL_LOG_GROUP_KEY_UNUSABLE",
            CwlRetentionUnset => "CWL_RETENTION_UNSET",
            TamperAlarmMissing => "TAMPER_ALARM_MISSING",
            TamperAlarmUnrouted => "TAMPER_ALARM_UNROUTED",
            ManagementEventsExcluded => "MANAGEMENT_EVENTS_EXCLUDED",
            LogFileValidationDisabled => "LOG_FILE_VALIDATION_DISABLED",
            LoggingGap => "LOGGING_GAP",
            CwlRoleUnverifiable => "CWL_ROLE_UNVERIFIABLE",
            CwlDeliveryPending => "CWL_DELIVERY_PENDING",
            CwlChecksDelegated => "CWL_CHECKS_DELEGATED",
            NoTrail => "NO_TRAIL",
            NoRealtimeCoverage => "NO_REALTIME_COVERAGE",
            OrgTrailCoverage => "ORG_TRAIL_COVERAGE",
            TamperGuardrailMissing => "TAMPER_GUARDRAIL_MISSING",
            TamperGuardrailNotApplicable => "TAMPER_GUARDRAIL_NOT_APPLICABLE",
            EvaluationIncomplete => "EVALUATION_INCOMPLETE",
            MonitorTampered => "MONITOR_TAMPERED",
            ExemptionInvalid => "EXEMPTION_INVALID",
            ExemptionExpired => "EXEMPTION_EXPIRED",
            ExemptionUnverifiable => "EXEMPTION_UNVERIFIABLE",
        }
    }
}

impl std::str::FromStr for ReasonCode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ReasonCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not a trailwatch reason code"))
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason in a verdict, with a message that names the real resources involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub level: Level,
    pub message: String,
    /// Which occurrence of the condition this is, for a code that can recur as distinct
    /// events: the stop time of `LOGGING_STOPPED` and `LOGGING_GAP`. The same code with another
    /// occurrence is another thing to page about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<String>,
}

impl Reason {
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Self {
            code,
            level: code.level(),
            message: message.into(),
            occurrence: None,
        }
    }

    /// The same reason raised at another level than its code's usual one.
    pub fn at_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The same reason, naming which occurrence it is.
    pub fn occurring(mut self, occurrence: impl Into<String>) -> Self {
        self.occurrence = Some(occurrence.into());
        self
    }

    pub fn severity(&self) -> Severity {
        self.code.severity_at(self.level)
    }

    /// How memory tells reasons apart: the code, and `@occurrence` when there is one.
    pub fn key(&self) -> String {
        match &self.occurrence {
            Some(occurrence) => format!("{}@{occurrence}", self.code),
            None => self.code.as_str().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_as_str_for_every_code() {
        for code in ReasonCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn fail_outranks_error_which_outranks_warning() {
        let warn = Reason::new(ReasonCode::CwlRetentionUnset, "w");
        let err = Reason::new(ReasonCode::EvaluationIncomplete, "e");
        let fail = Reason::new(ReasonCode::CwlNotConfigured, "f");
        let info = Reason::new(ReasonCode::CwlDeliveryPending, "i");
        assert_eq!(
            Status::from_reasons(std::slice::from_ref(&info)),
            Status::Pass
        );
        assert_eq!(Status::from_reasons(&[info, warn.clone()]), Status::Warning);
        assert_eq!(
            Status::from_reasons(&[warn.clone(), err.clone()]),
            Status::Error
        );
        assert_eq!(Status::from_reasons(&[warn, err, fail]), Status::Fail);
    }

    #[test]
    fn severity_is_the_worst_counting_reason() {
        let reasons = [
            Reason::new(ReasonCode::CwlRetentionUnset, "w"),
            Reason::new(ReasonCode::LoggingStopped, "f"),
            Reason::new(ReasonCode::CwlNotConfigured, "f"),
        ];
        assert_eq!(Severity::worst_of(&reasons), Severity::High);
        assert_eq!(
            Severity::worst_of(&[Reason::new(ReasonCode::CwlChecksDelegated, "i")]),
            Severity::Informational
        );
    }
}
