//! Errors of the AWS layer, and the mapping of SDK failures into the core's `Unavailable`.

use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use trailwatch_core::Unavailable;

/// Failures that stop a scan as a whole. Per-region and per-resource failures do not end up
/// here: they become `EVALUATION_INCOMPLETE` reasons and the scan goes on.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("could not identify the AWS account (sts:GetCallerIdentity); check credentials: {}", DisplayErrorContext(.0))]
    Identity(#[from] SdkError<aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError>),
    #[error("could not list the enabled regions (account:ListRegions); pass --regions or TRAILWATCH_REGIONS instead: {}", DisplayErrorContext(.0))]
    RegionDiscovery(#[from] SdkError<aws_sdk_account::operation::list_regions::ListRegionsError>),
    #[error("no region configured: set AWS_REGION or pass --region")]
    NoRegion,
    #[error("trail {name:?} was not found in {region}")]
    TrailNotFound { name: String, region: String },
    #[error("could not list trails in {region}: {reason}")]
    TrailListing { region: String, reason: String },
}

/// Records why an operation failed, keeping AWS's error code for the verdict's message.
///
/// Without a service message, the error's chain of causes is joined, and the HTTP status added:
/// readable in a table, unlike the SDK's debug dump with the raw response.
pub(crate) fn unavailable<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> Unavailable
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = error.code().map(str::to_string);
    let message = match error.message() {
        Some(m) => m.to_string(),
        None => {
            let mut chain = vec![error.to_string()];
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                chain.push(cause.to_string());
                source = cause.source();
            }
            chain.dedup();
            match error.raw_response() {
                Some(raw) => format!("HTTP {}: {}", raw.status().as_u16(), chain.join(": ")),
                None => chain.join(": "),
            }
        }
    };
    Unavailable::new(operation, code, message)
}

/// Whether a service error says "this thing does not exist" rather than "I could not look".
pub(crate) fn is_not_found<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(
        error.code(),
        Some(
            "NoSuchEntity"
                | "NoSuchEntityException"
                | "ResourceNotFoundException"
                // KMS and SNS.
                | "NotFoundException"
                | "NotFound"
        )
    )
}

/// An AWS error as a person reads it: `AccessDenied: User … is not authorized …`. The full
/// context (HTTP response and all) is for the debug log, not for a finding or a page.
pub(crate) fn short_error<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(error).to_string(),
    }
}

/// Whether retrying `error` later may succeed: the request never got an answer (timeout,
/// connection, an unreadable response), or AWS answered with throttling or a server fault.
/// An access denial, a missing resource or a bad request would fail the same way again.
pub(crate) fn is_transient<E>(error: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    const THROTTLING: [&str; 7] = [
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "ProvisionedThroughputExceededException",
    ];
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => {
            error.code().is_some_and(|code| THROTTLING.contains(&code))
                || error
                    .raw_response()
                    .is_some_and(|raw| raw.status().is_server_error())
        }
        _ => false,
    }
}

impl ScanError {
    /// Whether the same scan may succeed later (see [`is_transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            ScanError::Identity(error) => is_transient(error),
            ScanError::RegionDiscovery(error) => is_transient(error),
            ScanError::NoRegion
            | ScanError::TrailNotFound { .. }
            | ScanError::TrailListing { .. } => false,
        }
    }
}
