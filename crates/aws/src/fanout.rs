//! An organisation past one invocation: above a configured number of accounts, the scheduled
//! scan hands the accounts out instead of scanning them.
//!
//! - The scan lists the accounts and puts one message per account ([`AccountTask`]) on the
//!   account queue, all under one run id.
//! - The account worker (`functions/account-worker`) receives them in batches from SQS, scans
//!   and publishes each account as the in-process organisation run does (the same
//!   [`crate::organization::Reach::run`]), and writes the account's [`AccountReport`] to the
//!   ledger's table once, then adds the account to the run's set of reported accounts: a
//!   message SQS delivers twice is scanned twice (the alert ledger keeps its pages single) but
//!   reported and counted once.
//! - A message that fails (an outage, throttling past the SDK's retries) goes back to the queue;
//!   on its last receive the worker reports the account as dead-lettered before failing it, so
//!   that SQS moves it to the dead-letter queue and the summary can name it without waiting.
//! - The scan waits until every queued account has reported, or its window has ended, and
//!   assembles one organisation summary, naming every account that was not scanned and why.
//!
//! The run's count is one strongly consistent `BatchGetItem` every [`POLL_INTERVAL`]; the
//! reports are read once, at the end, 100 keys per `BatchGetItem`.

use crate::error::{is_transient, short_error};
use crate::ledger::{DynamoDbLedger, LedgerError};
use crate::organization::{AccountRun, MemberAccount, OrgSummary, UnreachableAccount};
use crate::publication::Outcome;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::{info, warn};
use trailwatch_core::Summary;

/// Fan out above this many accounts, unless `TRAILWATCH_ORG_FAN_OUT_ABOVE` says otherwise.
/// One invocation scans about 2,400 accounts of 3 s each at 8 at once in its 15 minutes
/// (README, "Scale"); 500 leaves room for slow accounts and many regions.
pub const DEFAULT_FAN_OUT_ABOVE: usize = 500;

/// How long the scan waits for the accounts' reports (`TRAILWATCH_ORG_WINDOW_SECONDS`): 13 of
/// the function's 15 minutes, leaving time to read the reports and answer.
pub const DEFAULT_WINDOW_SECONDS: u64 = 780;

/// Receives before SQS moves a message to the dead-letter queue (`TRAILWATCH_ORG_MAX_RECEIVES`,
/// the queue's `maxReceiveCount`): the worker must know which receive is the last.
pub const DEFAULT_MAX_RECEIVES: u32 = 3;

/// How often the waiting scan reads the run's counter.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The scan stops waiting this long before the function's own deadline, to answer in time.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

/// SQS takes at most 10 messages per `SendMessageBatch`.
const SEND_BATCH_MAX: usize = 10;
/// Rounds of sending again the entries SQS failed on its side, before they count as not queued.
const SEND_ROUNDS: usize = 3;

/// Where and how the organisation is handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutConfig {
    /// The account queue (`TRAILWATCH_ORG_QUEUE_URL`).
    pub queue_url: String,
    /// Fan out only above this many accounts (`TRAILWATCH_ORG_FAN_OUT_ABOVE`).
    pub above: usize,
    /// How long the scan waits for reports (`TRAILWATCH_ORG_WINDOW_SECONDS`).
    pub window: Duration,
    /// The queue's `maxReceiveCount` (`TRAILWATCH_ORG_MAX_RECEIVES`).
    pub max_receives: u32,
}

/// One message on the account queue: scan this account for that run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTask {
    pub run_id: String,
    pub account: MemberAccount,
}

/// What the worker found in one account, as the run keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AccountReport {
    Scanned {
        summary: Summary,
        transitions: usize,
        alert_sent: bool,
        api_calls: u64,
        duration_ms: u64,
    },
    /// Its read role refused (or is missing): trying again would not help.
    Unreachable { reason: String },
    /// Every receive failed; the message is on its way to the dead-letter queue.
    DeadLettered { attempts: u32, error: String },
}

impl AccountReport {
    pub fn scanned(outcome: &Outcome) -> Self {
        AccountReport::Scanned {
            summary: outcome.report.summary.clone(),
            transitions: outcome.transitions.len(),
            alert_sent: outcome.alert.is_some(),
            api_calls: outcome.report.api_calls,
            duration_ms: outcome.report.duration_ms,
        }
    }
}

/// What to do with one message once its account ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The report to write, if the account is done with (scanned, refused, or out of tries).
    pub report: Option<AccountReport>,
    /// Why the message must fail (SQS delivers it again, or dead-letters it), if it must.
    pub retry: Option<String>,
}

/// Decides one message: `run` is the account's run, `publication_failure` the retryable
/// failure its findings or page met (see `trailwatch_lambda::finish`), `receive` this
/// delivery's `ApproximateReceiveCount`.
pub fn settle(
    run: &AccountRun,
    publication_failure: Option<String>,
    receive: u32,
    max_receives: u32,
) -> Settlement {
    let failure = match run {
        AccountRun::Scanned { outcome, .. } => match publication_failure {
            None => {
                return Settlement {
                    report: Some(AccountReport::scanned(outcome)),
                    retry: None,
                }
            }
            Some(failure) => failure,
        },
        AccountRun::Unreachable {
            evaluation,
            transient,
            ..
        } => {
            let reason = evaluation
                .reasons
                .first()
                .map(|r| r.message.clone())
                .unwrap_or_default();
            if !transient {
                return Settlement {
                    report: Some(AccountReport::Unreachable { reason }),
                    retry: None,
                };
            }
            reason
        }
    };
    let last = receive >= max_receives;
    Settlement {
        report: last.then(|| AccountReport::DeadLettered {
            attempts: receive,
            error: failure.clone(),
        }),
        retry: Some(failure),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FanOutError {
    #[error("organisation fan-out needs the alert ledger's table (TRAILWATCH_LEDGER_TABLE) to count the accounts' reports")]
    NoLedger,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Organization(#[from] crate::organization::OrgError),
    #[error("no account could be queued on {queue_url}: {why}")]
    Queue { queue_url: String, why: String },
}

/// The account queue.
pub struct AccountQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl AccountQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: &str) -> Self {
        Self {
            client,
            url: url.to_string(),
        }
    }

    /// Puts one message per task on the queue, 10 per `SendMessageBatch`, sending again what
    /// SQS failed on its side. Returns the tasks that could not be queued, each with why.
    pub async fn send(
        &self,
        tasks: &[AccountTask],
    ) -> Result<Vec<(MemberAccount, String)>, FanOutError> {
        let mut not_queued = Vec::new();
        let mut queued = 0usize;
        for batch in tasks.chunks(SEND_BATCH_MAX) {
            let mut pending: Vec<(usize, &AccountTask)> = batch.iter().enumerate().collect();
            for round in 1..=SEND_ROUNDS {
                let entries: Vec<SendMessageBatchRequestEntry> = pending
                    .iter()
                    .map(|(index, task)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(index.to_string())
                            .message_body(serde_json::to_string(task).expect("a task serialises"))
                            .build()
                            .expect("id and body are set")
                    })
                    .collect();
                let sent = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await;
                let failed = match sent {
                    Ok(output) => output
                        .failed()
                        .iter()
                        .map(|f| {
                            let why = format!(
                                "{}: {}",
                                f.code(),
                                f.message().unwrap_or("SQS did not say why")
                            );
                            (f.id().to_string(), why, f.sender_fault())
                        })
                        .collect::<Vec<_>>(),
                    Err(error) => {
                        // A denial or a missing queue fails every batch alike: not again.
                        let again = is_transient(&error);
                        let why = short_error(&error);
                        pending
                            .iter()
                            .map(|(index, _)| (index.to_string(), why.clone(), !again))
                            .collect()
                    }
                };
                queued += pending.len() - failed.len();
                let mut again = Vec::new();
                for (index, task) in pending {
                    let Some((_, why, sender_fault)) =
                        failed.iter().find(|(id, ..)| *id == index.to_string())
                    else {
                        continue;
                    };
                    // A fault of the request itself (or a call that cannot succeed) would
                    // fail the same way again.
                    if *sender_fault || round == SEND_ROUNDS {
                        not_queued.push((task.account.clone(), why.clone()));
                    } else {
                        again.push((index, task));
                    }
                }
                pending = again;
                if pending.is_empty() {
                    break;
                }
                warn!(
                    unsent = pending.len(),
                    round, "account queue refused some messages; sending them again"
                );
            }
        }
        if queued == 0 && !tasks.is_empty() {
            return Err(FanOutError::Queue {
                queue_url: self.url.clone(),
                why: not_queued
                    .first()
                    .map(|(_, why)| why.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(not_queued)
    }
}

/// Writes `account`'s report in run `run_id`; `Ok(false)` when it had reported already.
pub async fn record_report(
    ledger: Option<&DynamoDbLedger>,
    run_id: &str,
    account: &str,
    report: &AccountReport,
) -> Result<bool, FanOutError> {
    let ledger = ledger.ok_or(FanOutError::NoLedger)?;
    let text = serde_json::to_string(report).expect("a report serialises");
    Ok(ledger.report(run_id, account, &text).await?)
}

/// Hands `accounts` out as run `run_id` and waits for their reports until `deadline` (the
/// earlier of the window's end and the function's own deadline), then assembles the summary.
pub async fn fan_out(
    ledger: Option<&DynamoDbLedger>,
    queue: &AccountQueue,
    run_id: &str,
    accounts: Vec<MemberAccount>,
    deadline: Instant,
) -> Result<OrgSummary, FanOutError> {
    let started = Instant::now();
    let ledger = ledger.ok_or(FanOutError::NoLedger)?;
    let tasks: Vec<AccountTask> = accounts
        .iter()
        .map(|account| AccountTask {
            run_id: run_id.to_string(),
            account: account.clone(),
        })
        .collect();
    let not_queued = queue.send(&tasks).await?;
    let queued: Vec<&str> = accounts
        .iter()
        .map(|a| a.id.as_str())
        .filter(|id| !not_queued.iter().any(|(a, _)| a.id == *id))
        .collect();
    info!(
        run_id,
        accounts = accounts.len(),
        queued = queued.len(),
        "organisation handed out"
    );
    let complete = wait_for_reports(ledger, run_id, &queued, deadline).await;
    let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    let reports = ledger.reports(run_id, &ids).await?;
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(assemble(
        run_id,
        &accounts,
        &reports,
        &not_queued,
        complete,
        elapsed,
    ))
}

/// Waits until every account of `queued` has reported (true) or `deadline` has passed
/// (false). It compares ids, not counts: an account thought unqueued that reports anyway must
/// not stand in for one still outstanding. A count that cannot be read is read again at the
/// next poll; the reports read at the end decide what the summary says.
async fn wait_for_reports(
    ledger: &DynamoDbLedger,
    run_id: &str,
    queued: &[&str],
    deadline: Instant,
) -> bool {
    loop {
        match ledger.reported(run_id).await {
            Ok(reported) if queued.iter().all(|a| reported.contains(*a)) => return true,
            Ok(_) => {}
            Err(error) => {
                warn!(run_id, error = %error, "could not read the run's count; reading again")
            }
        }
        if Instant::now() + POLL_INTERVAL > deadline {
            warn!(
                run_id,
                "window ended before every account reported; naming the missing"
            );
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The organisation summary of a fanned-out run, from the reports that arrived.
/// Every account is in exactly one place: scanned, unreachable (its role refused),
/// dead-lettered (every receive failed), or missing (not queued, or no report in the window).
pub fn assemble(
    run_id: &str,
    accounts: &[MemberAccount],
    reports: &HashMap<String, String>,
    not_queued: &[(MemberAccount, String)],
    complete: bool,
    duration_ms: u64,
) -> OrgSummary {
    let mut fan_out = FanOutSummary {
        run_id: run_id.to_string(),
        queued: accounts.len() - not_queued.len(),
        complete,
        dead_lettered: Vec::new(),
        missing: Vec::new(),
        evaluations: Summary::default(),
        transitions: 0,
        alerts_sent: 0,
    };
    let mut summary = OrgSummary {
        accounts: accounts.len(),
        scanned: 0,
        unreachable: Vec::new(),
        api_calls: 0,
        duration_ms,
        runs: Vec::new(),
        fan_out: None,
    };
    let named = |account: &MemberAccount, reason: String| UnreachableAccount {
        account_id: account.id.clone(),
        name: account.name.clone(),
        reason,
    };
    for account in accounts {
        let report = reports
            .get(&account.id)
            .map(|text| serde_json::from_str::<AccountReport>(text));
        // A report wins over "not queued": a send that timed out may still have been taken.
        if let (None, Some((_, why))) =
            (&report, not_queued.iter().find(|(a, _)| a.id == account.id))
        {
            fan_out
                .missing
                .push(named(account, format!("could not be queued: {why}")));
            continue;
        }
        match report {
            None => fan_out.missing.push(named(
                account,
                "no report before the scan's window ended".to_string(),
            )),
            Some(Err(error)) => fan_out.missing.push(named(
                account,
                format!("its report could not be read: {error}"),
            )),
            Some(Ok(AccountReport::Scanned {
                summary: counts,
                transitions,
                alert_sent,
                api_calls,
                ..
            })) => {
                summary.scanned += 1;
                summary.api_calls += api_calls;
                fan_out.evaluations.pass += counts.pass;
                fan_out.evaluations.fail += counts.fail;
                fan_out.evaluations.warning += counts.warning;
                fan_out.evaluations.error += counts.error;
                fan_out.transitions += transitions;
                fan_out.alerts_sent += usize::from(alert_sent);
            }
            Some(Ok(AccountReport::Unreachable { reason })) => {
                summary.unreachable.push(named(account, reason));
            }
            Some(Ok(AccountReport::DeadLettered { attempts, error })) => {
                fan_out.dead_lettered.push(named(
                    account,
                    format!("failed {attempts} time(s), now in the dead-letter queue: {error}"),
                ));
            }
        }
    }
    summary.fan_out = Some(fan_out);
    summary
}

/// What a fanned-out run adds to the organisation summary. Its per-account runs stay in the
/// workers' logs and metrics: 10,000 of them would not fit a Lambda response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FanOutSummary {
    pub run_id: String,
    pub queued: usize,
    /// Every queued account reported before the window ended.
    pub complete: bool,
    pub dead_lettered: Vec<UnreachableAccount>,
    pub missing: Vec<UnreachableAccount>,
    /// The scanned accounts' evaluations, by status.
    pub evaluations: Summary,
    pub transitions: usize,
    pub alerts_sent: usize,
}

impl OrgSummary {
    /// Accounts not scanned, for whatever reason: the number the `AccountsUnreachable`
    /// metric (and its alarm) counts.
    pub fn not_scanned(&self) -> usize {
        self.unreachable.len()
            + self
                .fan_out
                .as_ref()
                .map_or(0, |f| f.dead_lettered.len() + f.missing.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::organization::unreachable_account;

    fn account(id: &str) -> MemberAccount {
        MemberAccount {
            id: id.to_string(),
            name: format!("account {id}"),
        }
    }

    fn unreachable(id: &str, transient: bool) -> AccountRun {
        AccountRun::Unreachable {
            account: account(id),
            evaluation: Box::new(unreachable_account(id, "us-east-1", "InternalFailure")),
            transient,
        }
    }

    fn scanned_report(fail: usize, alert_sent: bool) -> String {
        serde_json::to_string(&AccountReport::Scanned {
            summary: Summary {
                pass: 1,
                fail,
                warning: 0,
                error: 0,
            },
            transitions: fail,
            alert_sent,
            api_calls: 12,
            duration_ms: 300,
        })
        .unwrap()
    }

    #[test]
    fn a_refusing_role_is_reported_at_once_and_an_outage_only_on_the_last_receive() {
        let refused = settle(&unreachable("111111111111", false), None, 1, 3);
        assert!(refused.retry.is_none());
        assert!(matches!(
            refused.report,
            Some(AccountReport::Unreachable { .. })
        ));

        let first = settle(&unreachable("111111111111", true), None, 1, 3);
        assert!(first.retry.is_some(), "an outage is tried again");
        assert_eq!(first.report, None, "and not reported before the last try");

        let last = settle(&unreachable("111111111111", true), None, 3, 3);
        assert!(
            last.retry.is_some(),
            "the last try still fails, to dead-letter it"
        );
        let Some(AccountReport::DeadLettered { attempts, error }) = last.report else {
            panic!("the last receive reports the account dead-lettered: {last:?}");
        };
        assert_eq!(attempts, 3);
        assert!(error.contains("InternalFailure"), "{error}");
    }

    #[test]
    fn every_account_lands_in_one_place_and_the_missing_are_named() {
        let accounts: Vec<MemberAccount> = ["111111111111", "222222222222", "333333333333"]
            .iter()
            .chain(&["444444444444", "555555555555", "666666666666"])
            .map(|id| account(id))
            .collect();
        let reports = HashMap::from([
            ("111111111111".to_string(), scanned_report(2, true)),
            ("222222222222".to_string(), scanned_report(0, false)),
            (
                "333333333333".to_string(),
                serde_json::to_string(&AccountReport::Unreachable {
                    reason: "AccessDenied".into(),
                })
                .unwrap(),
            ),
            (
                "444444444444".to_string(),
                serde_json::to_string(&AccountReport::DeadLettered {
                    attempts: 3,
                    error: "Throttling".into(),
                })
                .unwrap(),
            ),
        ]);
        let not_queued = vec![(account("666666666666"), "KMS.DisabledException".into())];
        let summary = assemble("run-1", &accounts, &reports, &not_queued, false, 1_000);
        let fan_out = summary.fan_out.as_ref().unwrap();
        assert_eq!(summary.accounts, 6);
        assert_eq!(summary.scanned, 2);
        assert_eq!(summary.api_calls, 24);
        assert_eq!(summary.unreachable[0].account_id, "333333333333");
        assert_eq!(fan_out.queued, 5);
        assert!(!fan_out.complete);
        assert_eq!(fan_out.dead_lettered[0].account_id, "444444444444");
        assert!(fan_out.dead_lettered[0].reason.contains("Throttling"));
        let missing: Vec<(&str, &str)> = fan_out
            .missing
            .iter()
            .map(|m| (m.account_id.as_str(), m.reason.as_str()))
            .collect();
        assert_eq!(
            missing,
            vec![
                ("555555555555", "no report before the scan's window ended"),
                ("666666666666", "could not be queued: KMS.DisabledException"),
            ]
        );
        assert_eq!(fan_out.evaluations.fail, 2);
        assert_eq!(fan_out.evaluations.pass, 2);
        assert_eq!(fan_out.alerts_sent, 1);
        assert_eq!(summary.not_scanned(), 4);
    }

    #[test]
    fn a_task_and_a_report_read_back_as_written() {
        let task = AccountTask {
            run_id: "run-1".into(),
            account: account("111111111111"),
        };
        let text = serde_json::to_string(&task).unwrap();
        assert_eq!(serde_json::from_str::<AccountTask>(&text).unwrap(), task);
        let report: AccountReport = serde_json::from_str(&scanned_report(1, true)).unwrap();
        assert!(matches!(
            report,
            AccountReport::Scanned {
                alert_sent: true,
                ..
            }
        ));
    }
}
