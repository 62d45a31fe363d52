//! The alert ledger: a DynamoDB table that decides, between runs that overlap, which one records
//! and alerts a finding's new state.
//!
//! Security Hub is trailwatch's memory, but it has no conditional write. When the hourly scan and
//! a trail-change re-check run at the same time, both read the old verdict, both see the same
//! transition, and both would page. Worse, a scan that read a trail *before* a StopLogging can
//! import its older PASS *after* the re-check imported the FAIL, and Security Hub would then show
//! PASS for a trail that is not logging.
//!
//! Each finding has one item: the last state claimed for it (what an alert would say, see
//! `Finding::alert_state`) and when the claiming run observed it. A run claims before it imports,
//! with one conditional `UpdateItem`: it wins only if nobody holds the finding yet, or the holder
//! observed it earlier *and* holds a different state. So two runs that saw the same thing yield one
//! alert, and an older observation never overwrites a newer one.

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use crate::config::ApiCallCounter;
use trailwatch_core::arn::{looks_like_region, Arn};

const KEY: &str = "finding_id";
const STATE: &str = "state";
const OBSERVED_AT: &str = "observed_at";
const EXPIRES_AT: &str = "expires_at";
const CLAIMED_BY: &str = "claimed_by";
/// Items expire (DynamoDB TTL on `expires_at`) this long after their last claim, so trails
/// deleted long ago do not stay in the table. An expired item only means the next claim wins.
pub const RETENTION_DAYS: i64 = 90;

/// What a claim decided for this run.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This run holds the newest observation of a new state: it records and alerts. The receipt
    /// undoes the claim if the record or the alert then fails, so that a later run alerts.
    Won(Receipt),
    /// Another run already claimed this very state: recording it again is harmless, but its
    /// alert went out (or is going out) from there.
    AlreadyClaimed,
    /// Another run observed the finding later than this one: this run's view is out of date, so
    /// it neither records nor alerts.
    Superseded,
}

/// What a won claim replaced, to put it back with [`AlertLedger::release`].
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    finding_id: String,
    state: String,
    observed_at: i64,
    previous: Option<HashMap<String, AttributeValue>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the alert ledger {table} could not be {action} for {finding_id}: {message}")]
pub struct LedgerError {
    pub table: String,
    pub finding_id: String,
    pub action: &'static str,
    pub message: String,
}

pub struct AlertLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Who claims, stored on the item for a person reading the table (`scheduled scan`, …).
    claimant: String,
}

/// `text` as a DynamoDB table ARN (`arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME`).
pub fn table_arn(text: &str) -> Option<Arn<'_>> {
    Arn::parse(text).filter(|arn| {
        arn.service == "dynamodb"
            && looks_like_region(arn.region)
            && arn
                .resource
                .strip_prefix("table/")
                .is_some_and(is_table_name)
    })
}

/// DynamoDB's rule for table names: 3 to 255 of `a-z A-Z 0-9 _ - .`.
pub fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// Whether a release lost to a newer claim (fine), and the error's text otherwise.
fn release_failure<E>(error: SdkError<E>) -> (bool, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    (
        error.code() == Some("ConditionalCheckFailedException"),
        DisplayErrorContext(&error).to_string(),
    )
}

impl AlertLedger {
    /// A ledger in `table`: a table name in the SDK configuration's region (the deployment's),
    /// or a table ARN, whose region wins (`trailwatch replay` starts its clients in the event's
    /// region).
    pub fn new(sdk: &SdkConfig, table: &str, claimant: &str, counter: ApiCallCounter) -> Self {
        let mut config = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(counter);
        let mut name = table;
        if let Some(arn) = table_arn(table) {
            config = config.region(Region::new(arn.region.to_string()));
            name = arn.resource.trim_start_matches("table/");
        }
        Self {
            client: aws_sdk_dynamodb::Client::from_conf(config.build()),
            table: name.to_string(),
            claimant: claimant.to_string(),
        }
    }

    fn error(&self, finding_id: &str, action: &'static str, message: String) -> LedgerError {
        LedgerError {
            table: self.table.clone(),
            finding_id: finding_id.to_string(),
            action,
            message,
        }
    }

    /// Claims `state` for `finding_id`, as observed at `observed_at` (the start of the run's scan:
    /// every read of the run happened after it).
    pub async fn claim(
        &self,
        finding_id: &str,
        state: &str,
        observed_at: DateTime<Utc>,
    ) -> Result<Claim, LedgerError> {
        let observed_ms = observed_at.timestamp_millis();
        let expires = (observed_at + chrono::Duration::days(RETENTION_DAYS)).timestamp();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(finding_id.to_string()))
            .update_expression(
                "SET #state = :state, #observed = :observed, #expires = :expires, #by = :by",
            )
            .condition_expression(
                "attribute_not_exists(#key) OR (#observed < :observed AND #state <> :state)",
            )
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#observed", OBSERVED_AT)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#by", CLAIMED_BY)
            .expression_attribute_values(":state", AttributeValue::S(state.to_string()))
            .expression_attribute_values(":observed", AttributeValue::N(observed_ms.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires.to_string()))
            .expression_attribute_values(":by", AttributeValue::S(self.claimant.clone()))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Claim::Won(Receipt {
                finding_id: finding_id.to_string(),
                state: state.to_string(),
                observed_at: observed_ms,
                previous: output.attributes,
            })),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                let holder = match failure.err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item(),
                    _ => None,
                };
                if holder.and_then(|h| text(h, STATE)) == Some(state) {
                    Ok(Claim::AlreadyClaimed)
                } else {
                    // The holder differs and was not older: a later observation.
                    Ok(Claim::Superseded)
                }
            }
            Err(other) => Err(self.error(
                finding_id,
                "claimed",
                DisplayErrorContext(&other).to_string(),
            )),
        }
    }

    /// Undoes a won claim whose record or alert failed: puts back what it replaced, unless
    /// another run has claimed the finding since (then that run's claim stands).
    pub async fn release(&self, receipt: &Receipt) -> Result<(), LedgerError> {
        // Only if the item is still this claim: a later run's claim stands.
        let ours = "#state = :state AND #observed = :observed";
        let names = HashMap::from([
            ("#state".to_string(), STATE.to_string()),
            ("#observed".to_string(), OBSERVED_AT.to_string()),
        ]);
        let values = HashMap::from([
            (
                ":state".to_string(),
                AttributeValue::S(receipt.state.clone()),
            ),
            (
                ":observed".to_string(),
                AttributeValue::N(receipt.observed_at.to_string()),
            ),
        ]);
        let result = match &receipt.previous {
            Some(previous) => self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(previous.clone()))
                .condition_expression(ours)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await
                .map(|_| ())
                .map_err(release_failure),
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(KEY, AttributeValue::S(receipt.finding_id.clone()))
                .condition_expression(ours)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await
                .map(|_| ())
                .map_err(release_failure),
        };
        match result {
            Ok(()) | Err((true, _)) => Ok(()),
            Err((false, message)) => Err(self.error(&receipt.finding_id, "released", message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_named_or_given_by_arn() {
        assert!(is_table_name("trailwatch-alert-ledger"));
        assert!(!is_table_name("ab"));
        assert!(!is_table_name("alert ledger"));
        let arn = table_arn("arn:aws:dynamodb:eu-west-1:111122223333:table/trailwatch.ledger")
            .expect("a table ARN");
        assert_eq!(
            (arn.region, arn.resource),
            ("eu-west-1", "table/trailwatch.ledger")
        );
        assert!(table_arn("arn:aws:dynamodb:eu-west-1:111122223333:index/x").is_none());
        assert!(table_arn("arn:aws:sqs:eu-west-1:111122223333:table/queue").is_none());
        assert!(table_arn("arn:aws:dynamodb::111122223333:table/global").is_none());
    }
}
