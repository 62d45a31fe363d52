//! What both trailwatch Lambda functions share: the cold start (logging, the `TRAILWATCH_`
//! configuration read once, SDK clients built once), the error type whose `error_type` tells
//! EventBridge's retry policy and the dead-letter queue what to do, and the run's metrics as
//! CloudWatch Embedded Metric Format lines.

use lambda_runtime::{Diagnostic, Error};
use std::time::{Duration, Instant};
use tracing::{error, info};
use trailwatch_aws::{load_sdk_config, Config};
use trailwatch_aws::{Outcome, Services};
use trailwatch_core::metrics::emf_line;

/// A failed invocation. `Retryable` is an AWS fault that may pass (throttling, an outage);
/// `NonRetryable` is an input or setup problem that the same event would hit again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    pub retryable: bool,
    pub message: String,
}

impl HandlerError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    pub fn non_retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic {
            error_type: if error.retryable {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .into(),
            error_message: error.message,
        }
    }
}

/// The cold start: logging (JSON when the function's log format is JSON), the configuration
/// (a bad value stops the start with a message naming the variable), and the SDK clients.
pub async fn cold_start(trigger: &str) -> Result<Services, Error> {
    let started = Instant::now();
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env().map_err(|e| format!("configuration: {e}"))?;
    let sdk = load_sdk_config(None).await;
    let services = Services::new(&sdk, &config, trigger)?;
    // Lambda's REPORT line has the whole Init Duration; this is the part trailwatch controls.
    info!(
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "cold start finished"
    );
    Ok(services)
}

/// When an invocation must have answered by: Lambda's deadline (`deadline_ms`, since the
/// epoch) less `margin`. `None` for a deadline already past, which can only be an emulator's
/// placeholder (`cargo lambda watch` sends a fixed 600,000 ms since the epoch).
pub fn answer_by(deadline_ms: u64, margin: Duration) -> Option<Instant> {
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    time_left(deadline_ms, now_ms, margin).map(|left| Instant::now() + left)
}

/// What [`answer_by`] leaves at `now_ms`: the time to the deadline less `margin`.
fn time_left(deadline_ms: u64, now_ms: u64, margin: Duration) -> Option<Duration> {
    match deadline_ms.checked_sub(now_ms) {
        Some(left) if left > 0 => Some(Duration::from_millis(left).saturating_sub(margin)),
        _ => None,
    }
}

/// Prints the run's metrics as an EMF line and logs what could not be published; returns a
/// retryable error when an outage kept findings or alerts from going out, so that Lambda tries
/// again (the alert ledger, or without it the rule of alerting only what was recorded, keeps
/// the retry from doubling an alert).
pub fn finish(function: &str, outcome: &Outcome) -> Result<(), HandlerError> {
    println!(
        "{}",
        emf_line(function, chrono::Utc::now(), &outcome.metrics())
    );
    for failure in &outcome.failures {
        error!(kind = ?failure.kind, region = ?failure.region, retryable = failure.retryable, message = %failure.message, "publication failed");
    }
    match outcome.retryable_failure() {
        Some(message) => Err(HandlerError::retryable(message)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_ahead_leaves_the_margin_and_one_past_is_a_placeholder() {
        let margin = Duration::from_secs(30);
        let now_ms = 1_800_000_000_000;
        assert_eq!(
            time_left(now_ms + 60_000, now_ms, margin),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            time_left(now_ms + 10_000, now_ms, margin),
            Some(Duration::ZERO)
        );
        assert_eq!(time_left(600_000, now_ms, margin), None);
        assert_eq!(time_left(now_ms, now_ms, margin), None);
    }

    #[test]
    fn errors_map_to_retryable_and_non_retryable_diagnostics() {
        let retry: Diagnostic = HandlerError::retryable("Security Hub outage").into();
        assert_eq!(retry.error_type, "Retryable");
        assert_eq!(retry.error_message, "Security Hub outage");
        let give_up: Diagnostic = HandlerError::non_retryable("bad").into();
        assert_eq!(give_up.error_type, "NonRetryable");
        assert_eq!(give_up.error_message, "bad");
    }
}
