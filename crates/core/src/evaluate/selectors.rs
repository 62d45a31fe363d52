//! The event selectors: do management write events, and so `StopLogging`, reach the trail?
//!
//! Reason codes: `MANAGEMENT_EVENTS_EXCLUDED`, and `EVALUATION_INCOMPLETE` when the selectors
//! could not be read.

use super::incomplete;
use crate::reason::{Reason, ReasonCode};
use crate::snapshot::{AdvancedEventSelector, EventSelectors, FieldSelector, Trail, TrailDetails};

/// `MANAGEMENT_EVENTS_EXCLUDED`.
pub(super) fn selector_reasons(
    trail: &Trail,
    details: Option<&TrailDetails>,
    reasons: &mut Vec<Reason>,
) {
    match details.map(|d| &d.event_selectors) {
        Some(Ok(selectors)) if !logs_management_writes(selectors) => reasons.push(Reason::new(
            ReasonCode::ManagementEventsExcluded,
            format!(
                "Trail {}'s event selectors drop management write events, so StopLogging and DeleteTrail would never reach CloudWatch Logs.",
                trail.name
            ),
        )),
        Some(Ok(_)) => {}
        Some(Err(e)) => reasons.push(incomplete("the event selectors", e)),
        None => {}
    }
}

/// Whether the selectors keep the management write events (`StopLogging`, `DeleteTrail`).
///
/// No selectors at all means the default, which logs every management event (moto returns
/// empty lists for a new trail where AWS returns the default selector; both mean "all").
pub fn logs_management_writes(selectors: &EventSelectors) -> bool {
    if selectors.event_selectors.is_empty() && selectors.advanced_event_selectors.is_empty() {
        return true;
    }
    let classic = selectors.event_selectors.iter().any(|s| {
        s.include_management_events.unwrap_or(true)
            && matches!(
                s.read_write_type.as_deref().unwrap_or("All"),
                "All" | "WriteOnly"
            )
    });
    classic
        || selectors
            .advanced_event_selectors
            .iter()
            .any(|s| ["StopLogging", "DeleteTrail"].iter().all(|e| admits(s, e)))
}

/// Whether the selectors keep read-only management events, such as the `DescribeTrails`
/// trailwatch itself calls in every region every hour: then a silent region means delivery
/// stopped, not that nothing happened.
pub fn logs_management_reads(selectors: &EventSelectors) -> bool {
    if selectors.event_selectors.is_empty() && selectors.advanced_event_selectors.is_empty() {
        return true;
    }
    let classic = selectors.event_selectors.iter().any(|s| {
        s.include_management_events.unwrap_or(true)
            && matches!(
                s.read_write_type.as_deref().unwrap_or("All"),
                "All" | "ReadOnly"
            )
    });
    classic
        || selectors
            .advanced_event_selectors
            .iter()
            .any(|s| admits_call(s, "DescribeTrails", true))
}

fn admits(selector: &AdvancedEventSelector, event_name: &str) -> bool {
    admits_call(selector, event_name, false)
}

/// Whether an advanced selector keeps the CloudTrail management call `event_name`.
fn admits_call(selector: &AdvancedEventSelector, event_name: &str, read_only: bool) -> bool {
    let read_only = if read_only { "true" } else { "false" };
    let value_of = |field: &str| match field {
        "eventCategory" => Some("Management"),
        "readOnly" => Some(read_only),
        "eventSource" => Some("cloudtrail.amazonaws.com"),
        "eventName" => Some(event_name),
        "eventType" => Some("AwsApiCall"),
        _ => None,
    };
    selector
        .field_selectors
        .iter()
        .all(|f| match value_of(&f.field) {
            Some(value) => field_admits(f, value),
            // A field we do not model: only exclusions can be assumed to let the event through.
            None => f.equals.is_empty() && f.starts_with.is_empty() && f.ends_with.is_empty(),
        })
}

fn field_admits(f: &FieldSelector, value: &str) -> bool {
    let any = |list: &[String], test: &dyn Fn(&str) -> bool| list.iter().any(|v| test(v));
    (f.equals.is_empty() || any(&f.equals, &|v| v == value))
        && (f.starts_with.is_empty() || any(&f.starts_with, &|v| value.starts_with(v)))
        && (f.ends_with.is_empty() || any(&f.ends_with, &|v| value.ends_with(v)))
        && !any(&f.not_equals, &|v| v == value)
        && !any(&f.not_starts_with, &|v| value.starts_with(v))
        && !any(&f.not_ends_with, &|v| value.ends_with(v))
}
