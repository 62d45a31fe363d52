//! Is the trail logging, and is it delivering to CloudWatch Logs?
//!
//! Reason codes: `LOGGING_STOPPED`, `LOGGING_GAP`, `CWL_DELIVERY_ERROR`, `CWL_DELIVERY_STALE`,
//! `CWL_DELIVERY_PENDING` (INFO), `LOG_FILE_VALIDATION_DISABLED`, and `EVALUATION_INCOMPLETE`
//! when the status could not be read.

use super::{incomplete, Settings};
use crate::reason::{Reason, ReasonCode};
use crate::snapshot::{Observed, Trail, TrailStatus, Unavailable};
use chrono::Duration;

/// `LOGGING_STOPPED` and `LOGGING_GAP`, from `GetTrailStatus` in the trail's home region.
pub(super) fn logging_reasons(
    trail: &Trail,
    status: Option<&Observed<TrailStatus>>,
    settings: &Settings,
    reasons: &mut Vec<Reason>,
) {
    match status {
        Some(Ok(s)) if !s.is_logging => reasons.push(stopped(trail, s)),
        Some(Ok(s)) => reasons.extend(gap(trail, s, settings)),
        Some(Err(e)) => reasons.push(incomplete("the logging status", e)),
        None => reasons.push(incomplete(
            "the logging status",
            &Unavailable::new("GetTrailStatus", None, "trail was not collected"),
        )),
    }
}

/// A stop time as memory names its occurrence: whole seconds, as CloudTrail's event time.
pub fn stop_occurrence(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn stopped(trail: &Trail, s: &TrailStatus) -> Reason {
    match s.stop_logging_time {
        Some(t) => Reason::new(
            ReasonCode::LoggingStopped,
            format!(
                "Trail {} stopped logging at {}. StopLogging is an attacker's first move; start it again and find out who stopped it.",
                trail.name,
                stop_occurrence(t)
            ),
        )
        .occurring(stop_occurrence(t)),
        None => Reason::new(
            ReasonCode::LoggingStopped,
            format!(
                "Trail {} is not logging. Start it, and find out who stopped it.",
                trail.name
            ),
        ),
    }
}

/// `LOGGING_GAP`: logging now, but stopped and started again inside the gap window.
fn gap(trail: &Trail, s: &TrailStatus, settings: &Settings) -> Option<Reason> {
    let (stop, start) = (s.stop_logging_time?, s.start_logging_time?);
    // Logging now, so the last start came after the last stop; the two may share a timestamp
    // when they came within the same second (CloudTrail reports whole seconds).
    if stop > start || settings.now - stop > settings.gap_window {
        return None;
    }
    Some(gap_reason(
        &trail.name,
        &trail.home_region,
        stop,
        Some(start),
    ))
}

/// The `LOGGING_GAP` reason for trail `name` (homed in `region`) stopped at `stop`, and started
/// again at `start` when that is known.
pub fn gap_reason(
    name: &str,
    region: &str,
    stop: chrono::DateTime<chrono::Utc>,
    start: Option<chrono::DateTime<chrono::Utc>>,
) -> Reason {
    let restarted = match start {
        Some(start) => format!(
            "and started again at {} ({} later)",
            stop_occurrence(start),
            human_duration(start - stop)
        ),
        None => "and has been started again since".to_string(),
    };
    Reason::new(
        ReasonCode::LoggingGap,
        format!(
            "Trail {name} stopped logging at {} {restarted}. The events in between reached neither S3 nor CloudWatch Logs, so no alarm saw them. CloudTrail Event history (aws cloudtrail lookup-events --region {region} --start-time {} --end-time {}) still holds that window's management events: find who stopped the trail and what they did.",
            stop_occurrence(stop),
            stop_occurrence(stop),
            start.map(stop_occurrence).unwrap_or_else(|| "now".into()),
        ),
    )
    .occurring(stop_occurrence(stop))
}

/// `LOG_FILE_VALIDATION_DISABLED`.
pub(super) fn validation_reasons(trail: &Trail, reasons: &mut Vec<Reason>) {
    if !trail.log_file_validation_enabled {
        reasons.push(Reason::new(
            ReasonCode::LogFileValidationDisabled,
            format!(
                "Trail {} has log file validation off, so tampering with delivered log files cannot be proven.",
                trail.name
            ),
        ));
    }
}

/// Renders a duration the way a person on call reads it: `42m`, `5h 12m`, `24h`, `3d 4h`.
pub fn human_duration(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (hours, mins) = (minutes / 60, minutes % 60);
    let (days, day_hours) = (hours / 24, hours % 24);
    match (hours, mins, days, day_hours) {
        (0, m, _, _) => format!("{m}m"),
        (h, 0, _, _) if h < 48 => format!("{h}h"),
        (h, m, _, _) if h < 48 => format!("{h}h {m}m"),
        (_, _, d, 0) => format!("{d}d"),
        (_, _, d, h) => format!("{d}d {h}h"),
    }
}

pub(super) fn delivery_reasons(
    trail: &Trail,
    status: &TrailStatus,
    settings: &Settings,
    reasons: &mut Vec<Reason>,
) {
    if let Some(error) = &status.latest_cloud_watch_logs_delivery_error {
        reasons.push(Reason::new(
            ReasonCode::CwlDeliveryError,
            format!(
                "CloudTrail reports this error delivering trail {} to CloudWatch Logs: \"{error}\".",
                trail.name
            ),
        ));
    }
    // A stopped trail is stale by definition; LOGGING_STOPPED already says why.
    if !status.is_logging {
        return;
    }
    let max = settings.max_delivery_age;
    match (
        status.latest_cloud_watch_logs_delivery_time,
        status.start_logging_time,
    ) {
        (Some(last), _) if settings.now - last > max => reasons.push(Reason::new(
            ReasonCode::CwlDeliveryStale,
            format!(
                "Trail {} last delivered to CloudWatch Logs at {} ({} ago), longer ago than the {} allowed.",
                trail.name,
                last.to_rfc3339(),
                human_duration(settings.now - last),
                human_duration(max)
            ),
        )),
        (Some(_), _) => {}
        (None, Some(started)) if settings.now - started <= max => reasons.push(Reason::new(
            ReasonCode::CwlDeliveryPending,
            format!(
                "Trail {} has not delivered to CloudWatch Logs yet; logging started at {}, within the {} allowed.",
                trail.name,
                started.to_rfc3339(),
                human_duration(max)
            ),
        )),
        (None, Some(started)) => reasons.push(Reason::new(
            ReasonCode::CwlDeliveryStale,
            format!(
                "Trail {} has never delivered to CloudWatch Logs although it started logging at {} ({} ago).",
                trail.name,
                started.to_rfc3339(),
                human_duration(settings.now - started)
            ),
        )),
        (None, None) => reasons.push(Reason::new(
            ReasonCode::CwlDeliveryStale,
            format!(
                "Trail {} reports no CloudWatch Logs delivery and no logging start time.",
                trail.name
            ),
        )),
    }
}
