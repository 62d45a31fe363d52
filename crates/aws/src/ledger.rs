//! The alert ledger: the memory of what was paged, behind the [`Ledger`] port, kept in DynamoDB
//! by [`DynamoDbLedger`].
//!
//! Security Hub cannot be the memory of pages on its own: it has no conditional write, a read may
//! be stale, and anyone allowed `securityhub:BatchImportFindings` can write a finding under
//! trailwatch's Id. The ledger holds one item per finding, and every write to it is a
//! compare-and-set against the version the writer read:
//!
//! - `state`, `observed_at`: the last state paged (once SNS accepted it) or recorded quietly, and
//!   when the run that saw it started reading;
//! - `pending_state`, `pending_observed_at`, `lease_expires_at`, `lease_owner`: a claim, held
//!   while its run pages. A run that dies between claim and publish leaves the claim behind; once
//!   its lease has run out it belongs to the next run, which pages;
//! - `version`, bumped by every write.
//!
//! What a run decides against an item is pure and lives in `trailwatch_core::memory`; this module
//! only reads and writes items.

use crate::config::ApiCallCounter;
use crate::error::short_error;
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use tracing::{instrument, warn};
use trailwatch_core::arn::{looks_like_region, Arn};
use trailwatch_core::memory::{LedgerEntry, Observation, PendingClaim, Remembered};

const KEY: &str = "finding_id";
const VERSION: &str = "version";
const STATE: &str = "state";
const OBSERVED_AT: &str = "observed_at";
const PENDING_STATE: &str = "pending_state";
const PENDING_OBSERVED_AT: &str = "pending_observed_at";
const LEASE_EXPIRES_AT: &str = "lease_expires_at";
const LEASE_OWNER: &str = "lease_owner";
const EXPIRES_AT: &str = "expires_at";
const CLAIMED_BY: &str = "claimed_by";
/// A fan-out run's count item: the set of accounts that have reported.
const REPORTED: &str = "reported";
/// Count items per run. 64 keeps each near 2 KB for 10,000 accounts (about 157 ids of 12
/// digits), so an `ADD` costs two write units, and every count is read in one `BatchGetItem`.
const COUNT_SHARDS: u64 = 64;
/// An account's report in a fan-out run, as JSON.
const REPORT: &str = "report";

/// Fan-out items live for two days: long enough for an operator to read last night's runs.
const FAN_OUT_RETENTION_DAYS: i64 = 2;

/// Items expire (DynamoDB TTL on `expires_at`) this long after their last write, so trails
/// deleted long ago do not stay in the table. An expired item only means the next run sees the
/// finding for the first time, and pages if it is failing.
pub const RETENTION_DAYS: i64 = 90;

/// How long a claim holds before the next run may take it over. A run pages within a second
/// or two of claiming; Lambda retries a failed asynchronous invocation after a minute at the
/// earliest, so the retry of a run that died after claiming always finds the lease run out.
pub const DEFAULT_LEASE_SECONDS: i64 = 45;

/// DynamoDB reads at most 100 keys per `BatchGetItem`.
const BATCH_GET_MAX: usize = 100;
/// Rounds of `UnprocessedKeys` retried before the read counts as failed.
const BATCH_GET_ROUNDS: usize = 5;

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Written; the item is now at `version`.
    Done { version: u64 },
    /// Another run wrote first: the item as it is now (`None`: there is none).
    Conflict(Option<LedgerEntry>),
}

/// The outcome of confirming or releasing a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Done,
    /// The claim's lease ran out and another run took the finding over; its write stands.
    TakenOver,
}

/// A claim this run holds, to confirm or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub version: u64,
    pub owner: String,
    /// What the claim pages, which becomes the known state once SNS accepted the page.
    pub observation: Observation,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("reading the alert ledger {table} failed: {}", short_error(.source.as_ref()))]
    Recall {
        table: String,
        #[source]
        source: Box<SdkError<BatchGetItemError>>,
    },
    #[error("the alert ledger {table} left {unread} item(s) unread after {BATCH_GET_ROUNDS} rounds of BatchGetItem")]
    Unread { table: String, unread: usize },
    #[error("the report of account {account} in fan-out run {run_id} could not be written to {table}: {}", short_error(.source.as_ref()))]
    Report {
        table: String,
        run_id: String,
        account: String,
        #[source]
        source: Box<SdkError<PutItemError>>,
    },
    #[error("account {account} could not be counted in fan-out run {run_id} in {table}: {}", short_error(.source.as_ref()))]
    Count {
        table: String,
        run_id: String,
        account: String,
        #[source]
        source: Box<SdkError<UpdateItemError>>,
    },
    #[error("the alert ledger {table} could not be {action} for {finding_id}: {}", short_error(.source.as_ref()))]
    Write {
        table: String,
        finding_id: String,
        /// `claimed`, `recorded`, `confirmed` or `released`.
        action: &'static str,
        #[source]
        source: Box<SdkError<UpdateItemError>>,
    },
}

/// The port the publication pipeline keeps its memory through; [`DynamoDbLedger`] is the
/// adapter. Every write is conditional on `base`, the version the caller read (`None`: no item).
pub trait Ledger {
    /// The items of `ids`, read strongly consistent; ids without an item are absent.
    fn recall(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, LedgerEntry>, LedgerError>> + Send;

    /// Claims `id` to page `observation`, holding it until `lease_expires_at`.
    fn claim(
        &self,
        id: &str,
        base: Option<u64>,
        observation: &Observation,
        owner: &str,
        lease_expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Write, LedgerError>> + Send;

    /// Writes `observation` as the known state without paging (and ends any claim on it).
    fn record(
        &self,
        id: &str,
        base: Option<u64>,
        observation: &Observation,
    ) -> impl Future<Output = Result<Write, LedgerError>> + Send;

    /// Makes a claim's state the known state: SNS accepted the page.
    fn confirm(
        &self,
        id: &str,
        held: &Held,
    ) -> impl Future<Output = Result<Settle, LedgerError>> + Send;

    /// Gives a claim back unpaged, so that the next run pages.
    fn release(
        &self,
        id: &str,
        held: &Held,
    ) -> impl Future<Output = Result<Settle, LedgerError>> + Send;

    /// How long a claim holds.
    fn lease(&self) -> chrono::Duration;
}

pub struct DynamoDbLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Who writes, stored on the item for a person reading the table (`scheduled scan`, …).
    claimant: String,
    lease: chrono::Duration,
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

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn millis(item: &HashMap<String, AttributeValue>, name: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(number(item, name)?)
}

fn observation(
    item: &HashMap<String, AttributeValue>,
    state: &str,
    observed_at: &str,
) -> Option<Observation> {
    Some(Observation {
        state: Remembered::parse(text(item, state)?)?,
        observed_at: millis(item, observed_at)?,
    })
}

/// An item as the core reads it. Parts that do not parse (an item written by hand, or
/// tampered with) read as absent, which can only make a run page more, never less.
pub fn entry_of(item: &HashMap<String, AttributeValue>) -> LedgerEntry {
    let pending = observation(item, PENDING_STATE, PENDING_OBSERVED_AT).and_then(|observation| {
        Some(PendingClaim {
            observation,
            lease_expires_at: millis(item, LEASE_EXPIRES_AT)?,
            owner: text(item, LEASE_OWNER)?.to_string(),
        })
    });
    LedgerEntry {
        // Items written before versions existed count as version 0.
        version: number(item, VERSION)
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0),
        confirmed: observation(item, STATE, OBSERVED_AT),
        pending,
    }
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

impl DynamoDbLedger {
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
            lease: chrono::Duration::seconds(DEFAULT_LEASE_SECONDS),
        }
    }

    /// The items under `keys` (duplicates read once), strongly consistent; keys without an
    /// item are absent. `UnprocessedKeys` (throttling) are read again, a few rounds at most.
    pub(crate) async fn read_items(
        &self,
        keys: &[&str],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, LedgerError> {
        let mut items = Vec::new();
        let mut unique = keys.to_vec();
        unique.sort_unstable();
        unique.dedup();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| HashMap::from([(KEY.to_string(), s(id))]))
                .collect();
            let mut rounds = 0;
            while !keys.is_empty() {
                rounds += 1;
                if rounds > BATCH_GET_ROUNDS {
                    return Err(LedgerError::Unread {
                        table: self.table.clone(),
                        unread: keys.len(),
                    });
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .expect("keys are set");
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|source| LedgerError::Recall {
                        table: self.table.clone(),
                        source: Box::new(source),
                    })?;
                if let Some(found) = output.responses().and_then(|r| r.get(&self.table)) {
                    items.extend(found.iter().cloned());
                }
                keys = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !keys.is_empty() {
                    warn!(
                        unprocessed = keys.len(),
                        "ledger read throttled; reading the rest again"
                    );
                }
            }
        }
        Ok(items)
    }

    /// The same ledger with another lease; tests use a lease of zero to take over at once.
    pub fn with_lease(mut self, lease: chrono::Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sends `update` to `id`, conditional on the item still being at `base` (and on
    /// `extra_condition`), bumping the version and the expiry.
    async fn write(
        &self,
        id: &str,
        base: Option<u64>,
        action: &'static str,
        mut update: Update,
    ) -> Result<Write, LedgerError> {
        let version = base.map_or(1, |v| v + 1);
        let expires = (Utc::now() + chrono::Duration::days(RETENTION_DAYS)).timestamp();
        update.set(VERSION, n(version as i64));
        update.set(EXPIRES_AT, n(expires));
        update.set(CLAIMED_BY, s(&self.claimant));
        let at_base = match base {
            None => "attribute_not_exists(#key)".to_string(),
            // An item from before versions existed has none.
            Some(0) => {
                "attribute_exists(#key) AND (attribute_not_exists(#version) OR #version = :base)"
                    .to_string()
            }
            Some(_) => "#version = :base".to_string(),
        };
        match base {
            Some(v) => {
                update.values.insert(":base".into(), n(v as i64));
            }
            None => {
                update.names.insert("#key".into(), KEY.into());
            }
        }
        if base == Some(0) {
            update.names.insert("#key".into(), KEY.into());
        }
        update.names.insert("#version".into(), VERSION.into());
        let condition = match &update.condition {
            Some(extra) => format!("({at_base}) AND {extra}"),
            None => at_base,
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(id))
            .update_expression(update.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Write::Done { version }),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                let current = match failure.err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item().map(entry_of),
                    _ => None,
                };
                Ok(Write::Conflict(current))
            }
            Err(source) => Err(LedgerError::Write {
                table: self.table.clone(),
                finding_id: id.to_string(),
                action,
                source: Box::new(source),
            }),
        }
    }

    /// Confirms or releases `held`: the same condition (still this run's claim), two endings.
    async fn settle(
        &self,
        id: &str,
        held: &Held,
        action: &'static str,
        mut update: Update,
    ) -> Result<Settle, LedgerError> {
        update.remove_claim();
        update.condition = Some("#leaseowner = :owner".into());
        update
            .names
            .insert("#leaseowner".into(), LEASE_OWNER.into());
        update.values.insert(":owner".into(), s(&held.owner));
        match self.write(id, Some(held.version), action, update).await? {
            Write::Done { .. } => Ok(Settle::Done),
            Write::Conflict(_) => Ok(Settle::TakenOver),
        }
    }
}

/// One `UpdateItem`'s clauses, with only the names and values they use (DynamoDB refuses
/// unused ones).
#[derive(Default)]
struct Update {
    sets: Vec<String>,
    removes: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    condition: Option<String>,
}

/// Attribute names as expression placeholders: `lease_owner` as `#leaseowner`, `:leaseowner`.
fn placeholder(attribute: &str) -> String {
    attribute.replace('_', "")
}

impl Update {
    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let name = placeholder(attribute);
        self.sets.push(format!("#{name} = :{name}"));
        self.names.insert(format!("#{name}"), attribute.into());
        self.values.insert(format!(":{name}"), value);
    }

    fn remove_claim(&mut self) {
        for attribute in [
            PENDING_STATE,
            PENDING_OBSERVED_AT,
            LEASE_EXPIRES_AT,
            LEASE_OWNER,
        ] {
            let name = placeholder(attribute);
            self.removes.push(format!("#{name}"));
            self.names.insert(format!("#{name}"), attribute.into());
        }
    }

    fn expression(&self) -> String {
        let mut expression = format!("SET {}", self.sets.join(", "));
        if !self.removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", self.removes.join(", ")));
        }
        expression
    }
}

/// The key of `account`'s report in fan-out run `run_id`.
fn report_key(run_id: &str, account: &str) -> String {
    format!("fanout#{run_id}#{account}")
}

/// The key of the count item that `account` is counted on in run `run_id`: one of
/// [`COUNT_SHARDS`], so that no one item grows with the organisation or takes every write.
fn count_key(run_id: &str, account: &str) -> String {
    shard_key(run_id, account.parse::<u64>().unwrap_or(0) % COUNT_SHARDS)
}

fn shard_key(run_id: &str, shard: u64) -> String {
    format!("fanout#{run_id}#count#{shard}")
}

/// Every count item of run `run_id`.
fn count_keys(run_id: &str) -> Vec<String> {
    (0..COUNT_SHARDS)
        .map(|shard| shard_key(run_id, shard))
        .collect()
}

/// The fan-out's bookkeeping (see `crate::fanout`), kept in the ledger's table beside the
/// findings' items. Each account's report is its own item, written once; the accounts that
/// have reported are also a string set on one of the run's count items, which the waiting scan
/// reads in one `BatchGetItem`. Adding to a set is idempotent and no transaction is needed:
/// a worker that wrote the report but failed to count it counts it when the message comes back.
impl DynamoDbLedger {
    fn fan_out_expiry() -> AttributeValue {
        n((Utc::now() + chrono::Duration::days(FAN_OUT_RETENTION_DAYS)).timestamp())
    }

    /// Writes `account`'s report (JSON) unless it has one, then counts the account.
    /// `Ok(false)`: the account had reported already (a message delivered twice), and its
    /// first report stands.
    pub(crate) async fn report(
        &self,
        run_id: &str,
        account: &str,
        report: &str,
    ) -> Result<bool, LedgerError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, s(&report_key(run_id, account)))
            .item(REPORT, s(report))
            .item(CLAIMED_BY, s(&self.claimant))
            .item(EXPIRES_AT, Self::fan_out_expiry())
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", KEY)
            .send()
            .await;
        let first = match written {
            Ok(_) => true,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                false
            }
            Err(source) => {
                return Err(LedgerError::Report {
                    table: self.table.clone(),
                    run_id: run_id.to_string(),
                    account: account.to_string(),
                    source: Box::new(source),
                })
            }
        };
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(&count_key(run_id, account)))
            .update_expression("ADD #accounts :account SET #expires = :expires")
            .expression_attribute_names("#accounts", REPORTED)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":account", AttributeValue::Ss(vec![account.to_string()]))
            .expression_attribute_values(":expires", Self::fan_out_expiry())
            .send()
            .await
            .map_err(|source| LedgerError::Count {
                table: self.table.clone(),
                run_id: run_id.to_string(),
                account: account.to_string(),
                source: Box::new(source),
            })?;
        Ok(first)
    }

    /// The accounts of run `run_id` that have reported so far (strongly consistent).
    pub(crate) async fn reported(
        &self,
        run_id: &str,
    ) -> Result<std::collections::BTreeSet<String>, LedgerError> {
        let keys = count_keys(run_id);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(self
            .read_items(&keys)
            .await?
            .iter()
            .filter_map(|item| item.get(REPORTED)?.as_ss().ok())
            .flatten()
            .cloned()
            .collect())
    }

    /// The reports of `accounts` in run `run_id` that have arrived, by account.
    pub(crate) async fn reports(
        &self,
        run_id: &str,
        accounts: &[&str],
    ) -> Result<HashMap<String, String>, LedgerError> {
        let keys: Vec<String> = accounts.iter().map(|a| report_key(run_id, a)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let prefix = report_key(run_id, "");
        Ok(self
            .read_items(&keys)
            .await?
            .iter()
            .filter_map(|item| {
                let account = text(item, KEY)?.strip_prefix(&prefix)?;
                Some((account.to_string(), text(item, REPORT)?.to_string()))
            })
            .collect())
    }
}

impl Ledger for DynamoDbLedger {
    #[instrument(skip(self, ids), fields(table = %self.table, count = ids.len()))]
    async fn recall(&self, ids: &[String]) -> Result<BTreeMap<String, LedgerEntry>, LedgerError> {
        let keys: Vec<&str> = ids.iter().map(String::as_str).collect();
        Ok(self
            .read_items(&keys)
            .await?
            .iter()
            .filter_map(|item| Some((text(item, KEY)?.to_string(), entry_of(item))))
            .collect())
    }

    #[instrument(skip(self, observation), fields(table = %self.table))]
    async fn claim(
        &self,
        id: &str,
        base: Option<u64>,
        observation: &Observation,
        owner: &str,
        lease_expires_at: DateTime<Utc>,
    ) -> Result<Write, LedgerError> {
        let mut update = Update::default();
        update.set(PENDING_STATE, s(&observation.state.to_string()));
        update.set(
            PENDING_OBSERVED_AT,
            n(observation.observed_at.timestamp_millis()),
        );
        update.set(LEASE_EXPIRES_AT, n(lease_expires_at.timestamp_millis()));
        update.set(LEASE_OWNER, s(owner));
        self.write(id, base, "claimed", update).await
    }

    #[instrument(skip(self, observation), fields(table = %self.table))]
    async fn record(
        &self,
        id: &str,
        base: Option<u64>,
        observation: &Observation,
    ) -> Result<Write, LedgerError> {
        let mut update = Update::default();
        update.set(STATE, s(&observation.state.to_string()));
        update.set(OBSERVED_AT, n(observation.observed_at.timestamp_millis()));
        // A newer state written quietly ends any older claim: that run's confirm finds it gone.
        update.remove_claim();
        self.write(id, base, "recorded", update).await
    }

    #[instrument(skip(self), fields(table = %self.table))]
    async fn confirm(&self, id: &str, held: &Held) -> Result<Settle, LedgerError> {
        // The claim's own state and observation become the known ones.
        let mut update = Update::default();
        update.set(STATE, s(&held.observation.state.to_string()));
        update.set(
            OBSERVED_AT,
            n(held.observation.observed_at.timestamp_millis()),
        );
        self.settle(id, held, "confirmed", update).await
    }

    #[instrument(skip(self), fields(table = %self.table))]
    async fn release(&self, id: &str, held: &Held) -> Result<Settle, LedgerError> {
        self.settle(id, held, "released", Update::default()).await
    }

    fn lease(&self) -> chrono::Duration {
        self.lease
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

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn an_item_reads_as_its_confirmed_state_and_its_claim() {
        let read = entry_of(&item(&[
            (KEY, s("trailwatch/x")),
            (VERSION, n(7)),
            (STATE, s("PASSED INFORMATIONAL ")),
            (OBSERVED_AT, n(1_733_047_200_000)),
            (PENDING_STATE, s("FAILED HIGH LOGGING_STOPPED")),
            (PENDING_OBSERVED_AT, n(1_733_047_260_000)),
            (LEASE_EXPIRES_AT, n(1_733_047_305_000)),
            (LEASE_OWNER, s("scheduled scan/1/2")),
        ]));
        assert_eq!(read.version, 7);
        let confirmed = read.confirmed.expect("a confirmed state");
        assert_eq!(confirmed.state.to_string(), "PASSED INFORMATIONAL ");
        let pending = read.pending.expect("a claim");
        assert_eq!(pending.owner, "scheduled scan/1/2");
        assert_eq!(pending.lease_expires_at.timestamp(), 1_733_047_305);
    }

    #[test]
    fn an_old_or_garbled_item_reads_as_less_memory_never_as_more() {
        // Written before versions and claims existed: version 0, no claim.
        let old = entry_of(&item(&[
            (KEY, s("trailwatch/x")),
            (STATE, s("FAILED MEDIUM CWL_NOT_CONFIGURED")),
            (OBSERVED_AT, n(1_733_047_200_000)),
        ]));
        assert_eq!(old.version, 0);
        assert!(old.confirmed.is_some() && old.pending.is_none());
        // A state nobody wrote reads as none remembered, so the run pages.
        let garbled = entry_of(&item(&[
            (KEY, s("trailwatch/x")),
            (VERSION, n(3)),
            (STATE, s("all is well")),
            (OBSERVED_AT, n(1)),
        ]));
        assert_eq!(garbled.confirmed, None);
    }
}
