//! Is the trail logging, and is it delivering to CloudWatch Logs?
//!
//! Reason codes: `LOGGING_STOPPED`, `LOGGING_GAP`, `CWL_DELIVERY_ERROR`, `CWL_DELIVERY_STALE`,
//! `CWL_DELIVERY_PENDING` (INFO), `CWL_REGION_SILENT`, `LOG_FILE_VALIDATION_DISABLED`, and
//! `EVALUATION_INCOMPLETE` when the status or the streams could not be read.
//!
//! `GetTrailStatus` "returns trail status from a single Region", so a multi-region trail's
//! status is read in every scanned region, and each region's delivery error or staleness is
//! named. `DescribeLogStreams` shows what really arrived, region by region.

use super::{incomplete, Settings};
use crate::reason::{Level, Reason, ReasonCode};
use crate::snapshot::{
    AccountSnapshot, LogStream, Observed, Trail, TrailDetails, TrailStatus, Unavailable,
};
use chrono::{DateTime, Duration, Utc};

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

/// `CWL_DELIVERY_ERROR`, `CWL_DELIVERY_STALE` and `CWL_DELIVERY_PENDING` from the trail's
/// status in its home region and, for a multi-region trail, in every other scanned region.
/// Staleness is a FAIL when the trail logs read events (trailwatch's own hourly reads make one
/// in every region every hour) and a WARNING for a write-only trail, whose quiet may be real.
pub(super) fn delivery_reasons(
    trail: &Trail,
    details: Option<&TrailDetails>,
    settings: &Settings,
    quiet_level: Level,
    reasons: &mut Vec<Reason>,
) {
    let Some(details) = details else { return };
    if let Ok(status) = &details.status {
        region_delivery(
            trail,
            &trail.home_region,
            status,
            settings,
            quiet_level,
            reasons,
        );
    }
    for (region, status) in &details.regional_status {
        match status {
            Ok(status) => region_delivery(trail, region, status, settings, quiet_level, reasons),
            Err(e) => reasons.push(incomplete(
                &format!("the status of trail {} in {region}", trail.name),
                e,
            )),
        }
    }
}

fn region_delivery(
    trail: &Trail,
    region: &str,
    status: &TrailStatus,
    settings: &Settings,
    quiet_level: Level,
    reasons: &mut Vec<Reason>,
) {
    if let Some(error) = &status.latest_cloud_watch_logs_delivery_error {
        reasons.push(Reason::new(
            ReasonCode::CwlDeliveryError,
            format!(
                "CloudTrail reports this error delivering trail {} to CloudWatch Logs in {region}: \"{error}\".",
                trail.name
            ),
        ));
    }
    // A stopped trail is stale by definition; LOGGING_STOPPED already says why.
    if !status.is_logging {
        return;
    }
    let max = settings.max_delivery_age;
    let stale =
        |message: String| Reason::new(ReasonCode::CwlDeliveryStale, message).at_level(quiet_level);
    match (
        status.latest_cloud_watch_logs_delivery_time,
        status.start_logging_time,
    ) {
        (Some(last), _) if settings.now - last > max => reasons.push(stale(format!(
            "Trail {} last delivered to CloudWatch Logs in {region} at {} ({} ago), longer ago than the {} allowed.",
            trail.name,
            last.to_rfc3339(),
            human_duration(settings.now - last),
            human_duration(max)
        ))),
        (Some(_), _) => {}
        // Said once, for the home region: a new trail is pending everywhere at once.
        (None, Some(started)) if settings.now - started <= max => {
            if region == trail.home_region {
                reasons.push(Reason::new(
                    ReasonCode::CwlDeliveryPending,
                    format!(
                        "Trail {} has not delivered to CloudWatch Logs yet; logging started at {}, within the {} allowed.",
                        trail.name,
                        started.to_rfc3339(),
                        human_duration(max)
                    ),
                ))
            }
        }
        (None, Some(started)) => reasons.push(stale(format!(
            "Trail {} has never delivered to CloudWatch Logs in {region} although it started logging at {} ({} ago).",
            trail.name,
            started.to_rfc3339(),
            human_duration(settings.now - started)
        ))),
        (None, None) => reasons.push(stale(format!(
            "Trail {} reports no CloudWatch Logs delivery in {region} and no logging start time.",
            trail.name
        ))),
    }
}

/// The account a trail's own streams are named after: its owner, which for an organisation
/// trail a delegated administrator created is the management account.
pub(super) fn trail_account<'a>(trail: &'a Trail, snapshot: &'a AccountSnapshot) -> &'a str {
    trail.owner_account().unwrap_or(&snapshot.account_id)
}

/// The regions whose streams a trail writes. AWS names the stream after the trail's region
/// ("account_ID_CloudTrail_trail_region", CloudTrail user guide, "CloudWatch log group and log
/// stream naming for CloudTrail"), and its default role policy grants just that prefix, so a
/// multi-region trail writes every region's events to the home region's stream. Where the
/// group shows streams named after other regions the trail covers, CloudTrail writes those
/// too, and each must be written and be fresh.
pub(super) fn stream_regions<'a>(
    trail: &'a Trail,
    group: &crate::arn::LogGroupRef,
    snapshot: &'a AccountSnapshot,
) -> Vec<&'a str> {
    let mut regions = vec![trail.home_region.as_str()];
    if !trail.is_multi_region_trail {
        return regions;
    }
    let Some(Ok(streams)) = snapshot
        .log_groups
        .get(&group.bare_arn())
        .map(|s| &s.streams)
    else {
        return regions;
    };
    let account = trail_account(trail, snapshot);
    for region in snapshot.regions.iter().map(|r| r.region.as_str()) {
        let named = streams
            .iter()
            .any(|s| is_region_stream(&s.log_stream_name, account, region));
        if region != trail.home_region && named {
            regions.push(region);
        }
    }
    regions
}

/// Whether `stream` is one CloudTrail writes `region`'s events to for a trail of `account`:
/// the trail's own stream (`ACCOUNT_CloudTrail_REGION`), an organisation trail's streams for
/// any member (`o-ORG_MEMBER_CloudTrail_REGION`), and the `_2`, `_3` … CloudTrail adds to
/// either at high volume.
pub(super) fn is_region_stream(stream: &str, account: &str, region: &str) -> bool {
    let (owner, rest) = match stream.strip_prefix("o-") {
        Some(org) => match org
            .split_once('_')
            .and_then(|(_, member)| member.split_once('_'))
        {
            Some((member, rest)) if is_account_id(member) => (account, rest),
            _ => return false,
        },
        None => match stream.split_once('_') {
            Some(split) => split,
            None => return false,
        },
    };
    let Some(suffix) = rest
        .strip_prefix("CloudTrail_")
        .and_then(|r| r.strip_prefix(region))
    else {
        return false;
    };
    owner == account
        && (suffix.is_empty()
            || suffix
                .strip_prefix('_')
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.chars().all(|c| c.is_ascii_digit())
}

/// `CWL_REGION_SILENT`: a region whose stream's newest event is older than the maximum
/// delivery age, or that has no stream at all: the trail's own region, and each other region
/// the group shows streams of (see [`stream_regions`]). A trail that started logging, or whose
/// log group was created, within that age gets the benefit of the doubt: no streams yet is
/// expected then.
pub(super) fn region_silence_reasons(
    trail: &Trail,
    group: &crate::arn::LogGroupRef,
    snapshot: &AccountSnapshot,
    status: Option<&TrailStatus>,
    settings: &Settings,
    quiet_level: Level,
    reasons: &mut Vec<Reason>,
) {
    let Some(status) = status.filter(|s| s.is_logging) else {
        return;
    };
    let Some(state) = snapshot.log_groups.get(&group.bare_arn()) else {
        return;
    };
    let Ok(Some(found)) = &state.group else {
        return;
    };
    let max = settings.max_delivery_age;
    let recent = |time: Option<DateTime<Utc>>| time.is_some_and(|t| settings.now - t <= max);
    let created = found
        .creation_time
        .and_then(DateTime::from_timestamp_millis);
    if recent(status.start_logging_time) || recent(created) {
        return;
    }
    let streams = match &state.streams {
        Ok(streams) => streams,
        Err(e) => {
            reasons.push(incomplete(&format!("the log streams of {}", group.name), e));
            return;
        }
    };
    let mut silent = Vec::new();
    let account = trail_account(trail, snapshot);
    // Streams come newest first, one page of them. When there are more, a region with no
    // stream on the page is silent only if the page already reaches back past the maximum age.
    let oldest_listed = streams.iter().filter_map(LogStream::last_written).min();
    for region in stream_regions(trail, group, snapshot) {
        let newest = streams
            .iter()
            .filter(|s| is_region_stream(&s.log_stream_name, account, region))
            .filter_map(LogStream::last_written)
            .max();
        match (newest, oldest_listed) {
            (Some(last), _) if settings.now - last <= max => {}
            (Some(last), _) => silent.push(format!(
                "{region} (last event {}, {} ago)",
                last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                human_duration(settings.now - last)
            )),
            (None, _) if !state.more_streams => silent.push(format!("{region} (no stream at all)")),
            (None, Some(oldest)) if settings.now - oldest > max => silent.push(format!(
                "{region} (no stream among the {} most recently written, which reach back to {})",
                streams.len(),
                oldest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            // Every stream on the page is fresh and there are more: the region's may be next.
            (None, _) => {}
        }
    }
    if silent.is_empty() {
        return;
    }
    let why = match quiet_level {
        Level::Fail => "The trail logs read events, and trailwatch's own hourly reads make one in every region every hour, so silence this long means delivery from there has stopped",
        _ => "The trail logs write events only, so a quiet region may really be quiet; check that its delivery works",
    };
    reasons.push(
        Reason::new(
            ReasonCode::CwlRegionSilent,
            format!(
                "Log group {} has no stream event newer than {} for {}, which trail {} writes. {why}.",
                group.name,
                human_duration(max),
                silent.join(", "),
                trail.name
            ),
        )
        .at_level(quiet_level),
    );
}
