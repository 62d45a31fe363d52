//! The one place that builds AWS SDK configuration, and the API-call counter every client shares.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Attempts per operation, with the standard mode's exponential backoff and jitter, so a burst
/// of `ThrottlingException` slows the scan down instead of failing it.
///
/// Not adaptive mode: its client-side rate limiter starts from the low request rate of a
/// client that has sent only a few calls, so three throttles from Security Hub held a whole
/// publication back for 43 s (`http_429_from_security_hub_is_ridden_out`: 47 s adaptive,
/// 3.6 s standard). That is a third of trail-change's time budget spent waiting.
pub const MAX_ATTEMPTS: u32 = 6;

/// `AWS_MAX_ATTEMPTS`, the SDKs' own variable, when it holds a whole number from 1: for an
/// operator who wants fewer or more, and for tests that cannot wait out six backoffs.
fn max_attempts(value: Option<String>) -> u32 {
    value
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(MAX_ATTEMPTS)
}

/// Loads the standard credential and region chain (`AWS_PROFILE`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, instance and Lambda roles) with trailwatch's retry and timeouts.
pub async fn load_sdk_config(region: Option<String>) -> SdkConfig {
    let attempts = max_attempts(std::env::var("AWS_MAX_ATTEMPTS").ok());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(90))
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    loader.load().await
}

/// Counts AWS API operations (not retry attempts) across every client of a scan.
#[derive(Debug, Clone, Default)]
pub struct ApiCallCounter(Arc<AtomicU64>);

impl ApiCallCounter {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for ApiCallCounter {
    fn name(&self) -> &'static str {
        "trailwatch.ApiCallCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_max_attempts_overrides_the_default_only_with_a_whole_number_from_one() {
        assert_eq!(max_attempts(None), MAX_ATTEMPTS);
        assert_eq!(max_attempts(Some("2".into())), 2);
        assert_eq!(max_attempts(Some("0".into())), MAX_ATTEMPTS);
        assert_eq!(max_attempts(Some("many".into())), MAX_ATTEMPTS);
    }
}
