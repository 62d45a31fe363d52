//! A fault-injecting HTTP proxy between the SDK and moto, for what moto cannot do on its own:
//! AccessDenied in one region, throttling bursts, server errors, requests that hang, and
//! requests held back until a test releases them.
//!
//! Races are staged with gates, never with waiting: a [`Gate`] holds matching requests until
//! the test opens it, and [`FaultProxy::wait_for`] returns once the proxy has seen a given
//! number of requests of an operation. Two runs can thus be made to overlap at an exact step,
//! however fast or slow the machine.
//!
//! Each request's region and service come from its SigV4 credential scope, and its operation
//! from `X-Amz-Target` (JSON protocols) or the `Action` form field (Query protocols). A request
//! that matches a rule gets a canned AWS-shaped error; every other request is forwarded to
//! moto unchanged. Connections are one request each (`Connection: close`), which keeps the
//! proxy a few dozen lines and is invisible to the SDK.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A guard against a test that would otherwise hang when an expected request never comes;
/// nothing waits for it to run out.
const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(120);

/// Holds requests until it is opened, then lets them reach moto one at a time. Clones share
/// one gate.
///
/// One at a time because moto checks a DynamoDB condition and writes the item without a lock:
/// two conditional writes released together can both pass their check, where DynamoDB makes
/// each write to an item atomic. A race test releasing the ledger's claims together would
/// otherwise test moto's threads, not the ledger.
#[derive(Debug, Clone)]
pub struct Gate {
    open: Arc<watch::Sender<bool>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Gate {
    pub fn new() -> Self {
        Gate {
            open: Arc::new(watch::channel(false).0),
            turn: Arc::default(),
        }
    }

    /// Lets every held request through, and every later one.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Waits for the gate to open, then for this request's turn, which lasts as long as the
    /// returned guard: until moto has answered.
    async fn passed(&self) -> tokio::sync::MutexGuard<'_, ()> {
        let mut open = self.open.subscribe();
        // An error means the gate itself is gone, which lets the request through as well.
        let _ = open.wait_for(|is_open| *is_open).await;
        self.turn.lock().await
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.open, &other.open)
    }
}

impl Eq for Gate {}

/// What to answer instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    AccessDenied,
    Throttling,
    /// HTTP 429 `TooManyRequestsException`, how REST services such as Security Hub throttle.
    TooManyRequests,
    ServerError,
    /// No answer at all: the connection stays open until the client gives up, as a request
    /// stuck in a network partition or an overloaded endpoint does.
    Timeout,
    /// Forwards the request once the gate is open, so that a test can make two runs overlap
    /// at a chosen step.
    Hold(Gate),
    /// Forwards the request after this long: a round trip to a distant region, for the
    /// latency benchmark (`bench-scan latency`).
    Delay(std::time::Duration),
    /// Security Hub's `InvalidAccessException`: the hub is not enabled in the region.
    SecurityHubNotEnabled,
    /// Forwards a `BatchImportFindings` to moto, then reports its first finding as failed,
    /// the partial failure Security Hub answers with `FailedFindings`.
    RejectFirstFinding,
    /// Answers HTTP 200 with this JSON body instead of forwarding: the response AWS documents
    /// for an operation moto does not implement (`BatchUpdateFindings`). The request's body
    /// is kept, for the test to read what trailwatch asked ([`FaultProxy::stood_in_for`]).
    Answer(String),
}

/// Which requests a fault applies to; `None` matches anything.
#[derive(Debug, Clone)]
pub struct Rule {
    pub region: Option<String>,
    pub operation: Option<String>,
    /// Text the request body must contain, such as an account id in an `AssumeRole`.
    pub mentioning: Option<String>,
    pub fault: Fault,
    /// How many matching requests to fault before letting them through; `None` is forever.
    pub times: Option<usize>,
}

impl Rule {
    pub fn new(fault: Fault) -> Self {
        Self {
            region: None,
            operation: None,
            mentioning: None,
            fault,
            times: None,
        }
    }
    pub fn in_region(mut self, region: &str) -> Self {
        self.region = Some(region.into());
        self
    }
    pub fn on(mut self, operation: &str) -> Self {
        self.operation = Some(operation.into());
        self
    }
    pub fn mentioning(mut self, text: &str) -> Self {
        self.mentioning = Some(text.into());
        self
    }
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }
}

/// The running proxy. It lives as long as the test's tokio runtime.
pub struct FaultProxy {
    pub endpoint: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    injected: Arc<Mutex<Vec<(String, String, Fault)>>>,
    seen: Arc<Mutex<Vec<Call>>>,
    /// The requests moto has answered, in the order it answered them.
    answered: Arc<Mutex<Vec<Call>>>,
    /// The bodies of the requests a [`Fault::Answer`] answered, by operation.
    stood_in: Arc<Mutex<Vec<StoodIn>>>,
    /// Bumped on every request and every answer, so that [`FaultProxy::wait_for`] and
    /// [`FaultProxy::wait_for_answers`] wake up to count again.
    arrivals: watch::Sender<usize>,
}

/// A request a [`Fault::Answer`] answered in moto's place.
#[derive(Debug)]
struct StoodIn {
    operation: String,
    body: Vec<u8>,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
struct Call {
    region: String,
    /// The SigV4 signing name, such as `cloudtrail` or `monitoring`.
    service: String,
    operation: String,
}

struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// Region and service from `Credential=AKID/DATE/REGION/SERVICE/aws4_request`.
    fn scope(&self) -> (String, String) {
        let scope = self
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .map(|c| c.split(['/', ',']).collect::<Vec<_>>())
            .unwrap_or_default();
        let part = |i: usize| scope.get(i).map(|s| s.to_string()).unwrap_or_default();
        (part(2), part(3))
    }

    fn operation(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_string();
        }
        // REST protocols name the operation by path; these are the ones trailwatch calls.
        let path = self.head.split_whitespace().nth(1).unwrap_or_default();
        match path.split('?').next().unwrap_or_default() {
            "/findings/import" => return "BatchImportFindings".into(),
            "/findings" => return "GetFindings".into(),
            "/findings/batchupdate" => return "BatchUpdateFindings".into(),
            _ => {}
        }
        String::from_utf8_lossy(&self.body)
            .split('&')
            .find_map(|pair| pair.strip_prefix("Action="))
            .unwrap_or_default()
            .to_string()
    }

    /// JSON and REST-JSON protocols want a JSON error body; Query protocols want XML.
    fn is_json_protocol(&self) -> bool {
        self.header("x-amz-target").is_some()
            || self
                .header("content-type")
                .is_some_and(|t| t.contains("json"))
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (moto's endpoint) on a free loopback port.
    pub async fn start(upstream: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let injected: Arc<Mutex<Vec<(String, String, Fault)>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Call>>> = Arc::default();
        let answered: Arc<Mutex<Vec<Call>>> = Arc::default();
        let stood_in: Arc<Mutex<Vec<StoodIn>>> = Arc::default();
        let arrivals = watch::channel(0usize).0;
        let (task_rules, task_injected, task_seen, task_answered, task_stood_in, task_arrivals) = (
            rules.clone(),
            injected.clone(),
            seen.clone(),
            answered.clone(),
            stood_in.clone(),
            arrivals.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (rules, injected, seen, answered, stood_in, arrivals, upstream) = (
                    task_rules.clone(),
                    task_injected.clone(),
                    task_seen.clone(),
                    task_answered.clone(),
                    task_stood_in.clone(),
                    task_arrivals.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    let book = Book {
                        rules: &rules,
                        injected: &injected,
                        seen: &seen,
                        answered: &answered,
                        stood_in: &stood_in,
                        arrivals: &arrivals,
                    };
                    // A broken connection fails only the request on it; the SDK reports it.
                    let _ = serve(client, &upstream, book).await;
                });
            }
        });
        Ok(Self {
            endpoint,
            rules,
            injected,
            seen,
            answered,
            stood_in,
            arrivals,
        })
    }

    pub fn add(&self, rule: Rule) {
        self.rules.lock().expect("rules lock").push(rule);
    }

    /// Drops every rule: from now on each request is forwarded as it comes.
    pub fn clear(&self) {
        self.rules.lock().expect("rules lock").clear();
    }

    /// Returns once the proxy has seen `count` requests of `operation` (held ones included).
    /// Panics after a generous guard, so that a request that never comes fails the test
    /// instead of hanging it.
    pub async fn wait_for(&self, operation: &str, count: usize) {
        self.wait_until(&self.seen, operation, count, "saw").await
    }

    /// Waits until moto has answered `count` requests of `operation`: unlike
    /// [`FaultProxy::wait_for`], whatever a test lets through next cannot reach moto before
    /// those reads did.
    pub async fn wait_for_answers(&self, operation: &str, count: usize) {
        self.wait_until(&self.answered, operation, count, "had answered")
            .await
    }

    async fn wait_until(&self, log: &Mutex<Vec<Call>>, operation: &str, count: usize, what: &str) {
        let mut arrivals = self.arrivals.subscribe();
        let counted = async {
            loop {
                let logged = log
                    .lock()
                    .expect("call log lock")
                    .iter()
                    .filter(|c| c.operation == operation)
                    .count();
                if logged >= count {
                    return;
                }
                if arrivals.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(HANG_GUARD, counted)
            .await
            .unwrap_or_else(|_| panic!("the proxy never {what} {count} {operation} request(s)"));
    }

    /// Every request so far, as (region, operation), faulted or forwarded.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.seen
            .lock()
            .expect("seen lock")
            .iter()
            .map(|c| (c.region.clone(), c.operation.clone()))
            .collect()
    }

    /// How many `operation` requests arrived so far, faulted or forwarded.
    pub fn count(&self, operation: &str) -> usize {
        self.seen
            .lock()
            .expect("seen lock")
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// The IAM actions of every request so far, such as `cloudtrail:DescribeTrails`.
    pub fn iam_actions(&self) -> BTreeSet<String> {
        self.seen
            .lock()
            .expect("seen lock")
            .iter()
            .map(|c| {
                // CloudWatch signs as `monitoring`; every other service trailwatch calls signs
                // with its IAM prefix.
                let prefix = match c.service.as_str() {
                    "monitoring" => "cloudwatch",
                    other => other,
                };
                // SQS authorises a batch send as `sqs:SendMessage`: there is no
                // `sqs:SendMessageBatch` action.
                let action = match (prefix, c.operation.as_str()) {
                    ("sqs", "SendMessageBatch") => "SendMessage",
                    (_, operation) => operation,
                };
                format!("{prefix}:{action}")
            })
            .collect()
    }

    /// The faults injected so far, as (region, operation, fault).
    pub fn injected(&self) -> Vec<(String, String, Fault)> {
        self.injected.lock().expect("injected lock").clone()
    }

    /// The JSON bodies of the `operation` requests a [`Fault::Answer`] answered, in order.
    pub fn stood_in_for(&self, operation: &str) -> Vec<serde_json::Value> {
        self.stood_in
            .lock()
            .expect("stood-in lock")
            .iter()
            .filter(|request| request.operation == operation)
            .map(|request| serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null))
            .collect()
    }
}

async fn read_request(stream: &mut TcpStream) -> Result<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "client closed before a full request");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut body = buffer[head_end..].to_vec();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        })
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "client closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Request { head, body })
}

fn canned(request: &Request, fault: Fault) -> Vec<u8> {
    let (status, code, message) = match fault {
        Fault::AccessDenied => (
            if request.is_json_protocol() { "400 Bad Request" } else { "403 Forbidden" },
            if request.is_json_protocol() { "AccessDeniedException" } else { "AccessDenied" },
            "User: arn:aws:sts::000000000000:assumed-role/trailwatch/scan is not authorized to perform this action (injected)",
        ),
        Fault::Throttling => (
            "400 Bad Request",
            if request.is_json_protocol() { "ThrottlingException" } else { "Throttling" },
            "Rate exceeded (injected)",
        ),
        Fault::TooManyRequests => (
            "429 Too Many Requests",
            "TooManyRequestsException",
            "Rate exceeded (injected)",
        ),
        Fault::ServerError => ("500 Internal Server Error", "InternalFailure", "injected"),
        Fault::SecurityHubNotEnabled => (
            "401 Unauthorized",
            "InvalidAccessException",
            "Account is not subscribed to AWS Security Hub (injected)",
        ),
        Fault::RejectFirstFinding => unreachable!("answered by rejecting_first_finding"),
        Fault::Timeout => unreachable!("answered by silence"),
        Fault::Hold(_) => unreachable!("forwarded once released"),
        Fault::Delay(_) => unreachable!("forwarded after the delay"),
        Fault::Answer(_) => unreachable!("answered with its body"),
    };
    let (content_type, body) = if request.is_json_protocol() {
        (
            "application/x-amz-json-1.1",
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        )
    } else {
        (
            "text/xml",
            format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"),
        )
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nx-amzn-ErrorType: {code}\r\nx-amzn-RequestId: injected\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// moto stored every finding; the answer claims the first one failed, as Security Hub may.
fn rejecting_first_finding(request: &Request) -> Result<Vec<u8>> {
    let body: serde_json::Value = serde_json::from_slice(&request.body)?;
    let findings = body["Findings"]
        .as_array()
        .context("no Findings in the request")?;
    let first = findings
        .first()
        .and_then(|f| f["Id"].as_str())
        .unwrap_or_default();
    let answer = serde_json::json!({
        "FailedCount": 1,
        "SuccessCount": findings.len() - 1,
        "FailedFindings": [{"Id": first, "ErrorCode": "InternalFailure", "ErrorMessage": "injected partial failure"}],
    })
    .to_string();
    Ok(json_ok(&answer))
}

/// An HTTP 200 answer carrying `body`, a JSON document, on a connection that then closes.
fn json_ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The proxy's shared books: its rules, and what it injected and saw.
#[derive(Clone, Copy)]
struct Book<'a> {
    rules: &'a Mutex<Vec<Rule>>,
    injected: &'a Mutex<Vec<(String, String, Fault)>>,
    seen: &'a Mutex<Vec<Call>>,
    answered: &'a Mutex<Vec<Call>>,
    stood_in: &'a Mutex<Vec<StoodIn>>,
    arrivals: &'a watch::Sender<usize>,
}

fn matching_fault(
    rules: &Mutex<Vec<Rule>>,
    region: &str,
    operation: &str,
    body: &[u8],
) -> Option<Fault> {
    let mut rules = rules.lock().ok()?;
    let body = String::from_utf8_lossy(body);
    let rule = rules.iter_mut().find(|r| {
        r.region.as_deref().is_none_or(|x| x == region)
            && r.operation.as_deref().is_none_or(|x| x == operation)
            && r.mentioning.as_deref().is_none_or(|x| body.contains(x))
            && r.times != Some(0)
    })?;
    if let Some(n) = &mut rule.times {
        *n -= 1;
    }
    Some(rule.fault.clone())
}

async fn serve(mut client: TcpStream, upstream: &str, book: Book<'_>) -> Result<()> {
    let request = read_request(&mut client).await?;
    let (region, service) = request.scope();
    let operation = request.operation();
    let call = Call {
        region: region.clone(),
        service,
        operation: operation.clone(),
    };
    if let Ok(mut log) = book.seen.lock() {
        log.push(call.clone());
    }
    book.arrivals.send_modify(|n| *n += 1);
    let fault = matching_fault(book.rules, &region, &operation, &request.body);
    if let (Some(fault), Ok(mut log)) = (&fault, book.injected.lock()) {
        log.push((region, operation, fault.clone()));
    }
    let held = match &fault {
        Some(Fault::Hold(gate)) => Some(gate.clone()),
        _ => None,
    };
    // Kept until moto has answered, so that released requests reach it one at a time.
    let _turn = match &held {
        Some(gate) => Some(gate.passed().await),
        None => None,
    };
    if let Some(fault) = &fault {
        match fault {
            Fault::RejectFirstFinding | Fault::Hold(_) => {}
            Fault::Delay(delay) => tokio::time::sleep(*delay).await,
            Fault::Answer(answer) => {
                if let Ok(mut log) = book.stood_in.lock() {
                    log.push(StoodIn {
                        operation: call.operation.clone(),
                        body: request.body.clone(),
                    });
                }
                client.write_all(&json_ok(answer)).await?;
                return Ok(());
            }
            Fault::Timeout => {
                // Longer than any attempt timeout a test sets; the SDK hangs up first.
                tokio::time::sleep(std::time::Duration::from_secs(120)).await;
                return Ok(());
            }
            _ => {
                client.write_all(&canned(&request, fault.clone())).await?;
                return Ok(());
            }
        }
    }
    let mut server = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("connecting to moto at {upstream}"))?;
    // One request per connection: ask both sides to close when done.
    let head: String = request
        .head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect();
    server
        .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .await?;
    server.write_all(&request.body).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;
    if let Ok(mut log) = book.answered.lock() {
        log.push(call);
    }
    book.arrivals.send_modify(|n| *n += 1);
    if fault == Some(Fault::RejectFirstFinding) {
        response = rejecting_first_finding(&request)?;
    }
    client.write_all(&response).await?;
    client.shutdown().await?;
    Ok(())
}
