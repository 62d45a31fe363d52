//! The whole-scan benchmark of `make bench`, run against the emulator named by
//! `AWS_ENDPOINT_URL` (under `scripts/with-moto`):
//!
//! - `bench-scan run TRAILWATCH REGIONS TRAILS OUT_DIR` seeds a fresh account with TRAILS
//!   healthy trails in each of the first REGIONS of 17 regions (each with its own log group,
//!   tamper alarm and delivery role; the very first is multi-region). It then runs `TRAILWATCH scan --output json` (the release
//!   binary) as a child process through the fault proxy, with no faults: the proxy only counts
//!   the calls. It writes `OUT_DIR/scan-<REGIONS>x<TRAILS>.json`: wall time, the child's peak
//!   RSS (from `wait4`), API calls by operation, and the fewest calls that state needs.
//! - `bench-scan latency TRAILWATCH REGIONS TRAILS DELAY_MS OUT_DIR` is `run`'s shape with the
//!   proxy holding every call DELAY_MS before forwarding it (a regional AWS round trip is about
//!   40 ms), and compares the wall with the bound of the run's call graph: the dependent rounds
//!   on its critical path plus the calls divided by the requests in flight, each round
//!   DELAY_MS. Into `OUT_DIR/latency-<REGIONS>x<TRAILS>-<DELAY_MS>ms-c<N>.json`.
//! - `bench-scan org TRAILWATCH ACCOUNTS OUT_DIR` builds an organisation of ACCOUNTS accounts
//!   (the management account and its members), each with one healthy multi-region trail, and
//!   measures `TRAILWATCH scan --org` from the management account the same way, into
//!   `OUT_DIR/org-<ACCOUNTS>-c<N>.json`, N being the accounts read at once
//!   (`BENCH_ACCOUNT_CONCURRENCY`, else trailwatch's default).
//! - `bench-scan recheck TRAILWATCH OUT_DIR` measures the event path: `TRAILWATCH replay` of
//!   an unrelated role edit and of a StopLogging, on 3 regions × 3 healthy trails, into
//!   `OUT_DIR/recheck.json` (wall, calls by operation, whether it paged).
//! - `bench-scan lambda ZIP BOOTSTRAP LABEL OUT_DIR` measures a Lambda zip as Lambda runs it:
//!   BOOTSTRAP (the zip's binary) is started against a stand-in for the Lambda runtime API, as
//!   `provided.al2023` starts it, and handed one scheduled event. The time until it asks for
//!   its first event is its init (cold start), the time until it answers is the scan, of 3
//!   regions × 3 healthy trails. Five cold starts; the medians and the zip's size go to
//!   `OUT_DIR/lambda-<LABEL>.json`.
//! - `bench-scan iam ROLES OUT_DIR` measures where reading delivery roles all at once stops
//!   winning: in a fresh account of ROLES roles (each with CloudTrail's trust and one inline
//!   policy, as a delivery role is), it reads 1, 2, 4, ... of them one at a time
//!   (`per-role`), with `GetAccountAuthorizationDetails` (`account-details`) and as the cost
//!   model picks (`auto`), 5 times each, and writes the medians and the calls to
//!   `OUT_DIR/iam-<ROLES>.json`.
//! - `bench-scan peers-seed` seeds the account `make bench-peers` times trailwatch, Prowler and
//!   Cloud Custodian on: in each of 3 regions a healthy trail, an S3-only trail and a stopped
//!   one. It prints the account's credentials as shell `export` lines, and the regions.
//! - `bench-scan peers-calls TRAILWATCH OUT_DIR` seeds the same account and counts the calls
//!   of one `TRAILWATCH scan` of it, by operation, into `OUT_DIR/peers-calls.json`.
//! - `bench-scan peers-table HYPERFINE_JSON PROWLER CUSTODIAN TRAILWATCH` prints hyperfine's
//!   medians of the three as a Markdown table, with the ratios to trailwatch against the goals
//!   (at least 100× Prowler, 10× Custodian) and what each found.
//! - `bench-scan table OUT_DIR` writes criterion's estimates to `OUT_DIR/core.json` and prints
//!   them and every `scan-*.json` as Markdown tables, for the README.

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use trailwatch_tests::fault::{Fault, FaultProxy, Rule};
use trailwatch_tests::{endpoint, Account};

const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
];

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["run", binary, regions, trails, out] => {
            let regions: usize = regions.parse().context("REGIONS")?;
            let trails: usize = trails.parse().context("TRAILS")?;
            if !(1..=REGIONS.len()).contains(&regions) || trails == 0 {
                bail!("REGIONS must be 1 to {}, TRAILS at least 1", REGIONS.len());
            }
            run(Path::new(binary), regions, trails, Path::new(out)).await
        }
        ["org", binary, accounts, out] => {
            let accounts: usize = accounts.parse().context("ACCOUNTS")?;
            anyhow::ensure!(accounts >= 1, "ACCOUNTS must be at least 1");
            organization(Path::new(binary), accounts, Path::new(out)).await
        }
        ["recheck", binary, out] => recheck(Path::new(binary), Path::new(out)).await,
        ["latency", binary, regions, trails, delay_ms, out] => {
            let regions: usize = regions.parse().context("REGIONS")?;
            let trails: usize = trails.parse().context("TRAILS")?;
            let delay_ms: u64 = delay_ms.parse().context("DELAY_MS")?;
            anyhow::ensure!(
                (1..=REGIONS.len()).contains(&regions) && trails > 0,
                "REGIONS must be 1 to {}, TRAILS at least 1",
                REGIONS.len()
            );
            latency(Path::new(binary), regions, trails, delay_ms, Path::new(out)).await
        }
        ["iam", roles, out] => iam(roles.parse().context("ROLES")?, Path::new(out)).await,
        ["peers-seed"] => peers_seed().await,
        ["peers-calls", binary, out] => peers_calls(Path::new(binary), Path::new(out)).await,
        ["peers-table", hyperfine, prowler, custodian, trailwatch] => {
            peers_table(Path::new(hyperfine), [prowler, custodian, trailwatch])
        }
        ["lambda", zip, bootstrap, label, out] => {
            lambda(Path::new(zip), Path::new(bootstrap), label, Path::new(out)).await
        }
        ["table", out] => table(Path::new(out)),
        _ => bail!(
            "usage: bench-scan run TRAILWATCH REGIONS TRAILS OUT_DIR | bench-scan latency TRAILWATCH REGIONS TRAILS DELAY_MS OUT_DIR | bench-scan org TRAILWATCH ACCOUNTS OUT_DIR | bench-scan recheck TRAILWATCH OUT_DIR | bench-scan iam ROLES OUT_DIR | bench-scan peers-seed | bench-scan peers-calls TRAILWATCH OUT_DIR | bench-scan peers-table HYPERFINE_JSON PROWLER CUSTODIAN TRAILWATCH | bench-scan lambda ZIP BOOTSTRAP LABEL OUT_DIR | bench-scan table OUT_DIR"
        ),
    }
}

/// Seeds the account, eight trails at a time: one after the other, seeding 340 trails would
/// take longer than everything else the benchmark does. The first trail is multi-region, as
/// an account's main trail is, so the account's coverage passes too.
async fn seed(account: &Account, regions: &[&str], trails: usize) -> Result<()> {
    let jobs: Vec<(String, &str)> = regions
        .iter()
        .enumerate()
        .flat_map(|(r, region)| (0..trails).map(move |t| (format!("r{r}-t{t}"), *region)))
        .collect();
    stream::iter(jobs)
        .map(|(name, region)| async move {
            account
                .healthy_trail(&name, region, name == "r0-t0")
                .await
                .with_context(|| format!("seeding {name} in {region}"))
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Waits for `child` and returns its exit status and peak resident set in KiB, from `wait4`'s
/// rusage (the standard library's wait does not report it).
fn wait_with_peak_rss(child: std::process::Child) -> Result<(std::process::ExitStatus, i64)> {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills in; `pid` is our own child, not yet waited.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    // The pid is reaped: the Child handle must not wait for it again.
    std::mem::forget(child);
    Ok((std::process::ExitStatus::from_raw(status), usage.ru_maxrss))
}

/// What one run of `trailwatch` cost.
struct Measured {
    wall_ms: f64,
    peak_rss_kib: i64,
    stdout: String,
    by_operation: BTreeMap<String, u64>,
}

/// Runs `binary args` as `account`, through a fresh fault proxy that only counts the calls.
async fn measure(binary: &Path, args: &[&str], account: &Account) -> Result<Measured> {
    measure_with(binary, args, account, None).await
}

/// [`measure`], with every call held `delay` before the proxy forwards it.
async fn measure_with(
    binary: &Path,
    args: &[&str],
    account: &Account,
    delay: Option<std::time::Duration>,
) -> Result<Measured> {
    let proxy = FaultProxy::start(&endpoint()?).await?;
    if let Some(delay) = delay {
        proxy.add(Rule::new(Fault::Delay(delay)));
    }
    let errors_path =
        std::env::temp_dir().join(format!("bench-scan-{}.stderr", std::process::id()));
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .envs(std::env::var("TRAILWATCH_CONCURRENCY").map(|c| ("TRAILWATCH_CONCURRENCY", c)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // A file, not a second pipe: draining two pipes one after the other can deadlock.
        .stderr(Stdio::from(std::fs::File::create(&errors_path)?));
    for (key, value) in account.env() {
        command.env(key, value);
    }
    let started = Instant::now();
    let child = command.spawn().context("starting trailwatch")?;
    // Blocking; the proxy serves the child's calls on the runtime's other threads meanwhile.
    let (peak_rss_kib, stdout) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut child = child;
        let mut stdout = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stdout)?;
        }
        let (status, rss) = wait_with_peak_rss(child)?;
        if !status.success() {
            let errors = std::fs::read_to_string(&errors_path).unwrap_or_default();
            bail!("trailwatch failed with {status}: {errors}");
        }
        Ok((rss, stdout))
    })
    .await??;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut by_operation: BTreeMap<String, u64> = BTreeMap::new();
    for (_, operation) in proxy.seen() {
        *by_operation.entry(operation).or_insert(0) += 1;
    }
    Ok(Measured {
        wall_ms,
        peak_rss_kib,
        stdout,
        by_operation,
    })
}

/// The dependent rounds on the critical path of a scan's call graph, each a call that needs an
/// earlier answer: `GetCallerIdentity` (the account); `DescribeTrails` (each region's trails);
/// then everything a trail's own fields name (its status, selectors, tags, log group, metric
/// filters, streams, role, role policy names); `DescribeAlarms` needs the filters' metrics and
/// `GetRolePolicy`/`GetPolicy` the names; `ListSubscriptionsByTopic` needs the alarms' actions
/// and `GetPolicyVersion` the policy's default version. Five.
const CRITICAL_ROUNDS: u64 = 5;

/// `trailwatch scan` of `regions` as JSON, whatever it finds: what the scan shapes time.
fn scan_arguments(regions: &str) -> [&str; 7] {
    [
        "scan",
        "--output",
        "json",
        "--fail-on",
        "never",
        "--regions",
        regions,
    ]
}

/// Requests trailwatch keeps in flight unless `TRAILWATCH_CONCURRENCY` says otherwise.
fn concurrency() -> u64 {
    std::env::var("TRAILWATCH_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(trailwatch_aws::DEFAULT_CONCURRENCY as u64)
}

/// The REGIONS x TRAILS shape of `run`, with every call `delay_ms` away, as a round trip to a
/// regional AWS endpoint is: the wall against the bound of the run's call graph, the critical
/// path's rounds plus the calls spread over the requests in flight, each round `delay_ms`.
async fn latency(
    binary: &Path,
    region_count: usize,
    trails: usize,
    delay_ms: u64,
    out: &Path,
) -> Result<()> {
    let regions = &REGIONS[..region_count];
    let account = Account::fresh().await?;
    seed(&account, regions, trails).await?;
    let region_list = regions.join(",");
    let scan = scan_arguments(&region_list);
    let delay = std::time::Duration::from_millis(delay_ms);
    let measured = measure_with(binary, &scan, &account, Some(delay)).await?;
    let report: Value = serde_json::from_str(&measured.stdout).context("the scan's JSON report")?;
    anyhow::ensure!(
        report["summary"]["error"] == 0,
        "the scan could not read everything: {}",
        report["summary"]
    );
    let calls: u64 = measured.by_operation.values().sum();
    let in_flight = concurrency();
    let spread_rounds = calls.div_ceil(in_flight);
    let bound_ms = (CRITICAL_ROUNDS + spread_rounds) * delay_ms;
    let ratio = measured.wall_ms / bound_ms as f64;
    let result = json!({
        "regions": region_count,
        "trails_per_region": trails,
        "delay_ms": delay_ms,
        "concurrency": in_flight,
        "api_calls": calls,
        "critical_rounds": CRITICAL_ROUNDS,
        "bound_ms": bound_ms,
        "wall_ms": measured.wall_ms.round(),
        "wall_to_bound": (ratio * 100.0).round() / 100.0,
        "goal": "within 1.3x of the bound",
        "met": ratio <= 1.3,
        "peak_rss_kib": measured.peak_rss_kib,
        "by_operation": measured.by_operation,
        "machine": machine(),
    });
    std::fs::create_dir_all(out)?;
    let file = out.join(format!(
        "latency-{region_count}x{trails}-{delay_ms}ms-c{in_flight}.json"
    ));
    std::fs::write(&file, serde_json::to_string_pretty(&result)?)?;
    println!(
        "{region_count} regions x {trails} trails, {delay_ms} ms a call, {in_flight} in flight: {:.0} ms against a bound of {bound_ms} ms ({CRITICAL_ROUNDS} rounds + {calls} calls / {in_flight}), {ratio:.2}x -> {}",
        measured.wall_ms,
        file.display()
    );
    Ok(())
}

async fn run(binary: &Path, region_count: usize, trails: usize, out: &Path) -> Result<()> {
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: `make bench` builds it",
        binary.display()
    );
    let regions = &REGIONS[..region_count];
    let account = Account::fresh().await?;
    let seeding = Instant::now();
    seed(&account, regions, trails).await?;
    let seed_seconds = seeding.elapsed().as_secs_f64();

    let region_list = regions.join(",");
    let scan = scan_arguments(&region_list);
    let Measured {
        wall_ms,
        peak_rss_kib,
        stdout: report,
        by_operation,
    } = measure(binary, &scan, &account).await?;
    let report: Value = serde_json::from_str(&report).context("the scan's JSON report")?;
    let summary = &report["summary"];
    anyhow::ensure!(
        summary["fail"] == 0 && summary["error"] == 0,
        "every seeded trail is healthy, yet the scan says {summary}"
    );

    let calls: u64 = by_operation.values().sum();
    let total_trails = region_count * trails;
    // One DescribeTrails per region, one GetTrailStatus per trail, one page of a region's
    // log groups, and one listing of the account's roles: the fewest reads that find out what
    // the trails name.
    let minimum = (2 * region_count + total_trails + 1) as u64;
    let result = json!({
        "regions": region_count,
        "trails_per_region": trails,
        "trails": total_trails,
        "wall_ms": wall_ms.round(),
        "scan_duration_ms": report["duration_ms"],
        "api_calls": calls,
        "api_calls_reported": report["api_calls"],
        "api_calls_per_trail": (calls as f64 / total_trails as f64 * 100.0).round() / 100.0,
        "minimum_api_calls": minimum,
        "excess_api_calls": calls as i64 - minimum as i64,
        "peak_rss_kib": peak_rss_kib,
        "by_operation": by_operation,
        "seed_seconds": (seed_seconds * 10.0).round() / 10.0,
        "machine": machine(),
    });
    std::fs::create_dir_all(out)?;
    let file = out.join(format!("scan-{region_count}x{trails}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&result)?)?;
    println!(
        "{region_count} regions x {trails} trails: {wall_ms:.0} ms, {calls} calls ({:.2} a trail, minimum {minimum}), peak RSS {peak_rss_kib} KiB -> {}",
        calls as f64 / total_trails as f64,
        file.display()
    );
    Ok(())
}

/// The regions an organisation benchmark scans in every account.
const ORG_REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
/// Accounts read at once: `BENCH_ACCOUNT_CONCURRENCY`, else trailwatch's default.
fn account_concurrency() -> usize {
    std::env::var("BENCH_ACCOUNT_CONCURRENCY")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(trailwatch_aws::organization::DEFAULT_ACCOUNT_CONCURRENCY)
}

/// An organisation of `count` accounts (the management account and `count - 1` members), each
/// with one healthy multi-region trail, scanned by `trailwatch scan --org`.
async fn organization(binary: &Path, count: usize, out: &Path) -> Result<()> {
    anyhow::ensure!(binary.exists(), "{} is missing", binary.display());
    let management = Account::fresh().await?;
    let seeding = Instant::now();
    let names: Vec<String> = (1..count).map(|i| format!("member-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut accounts = vec![management.clone()];
    accounts.extend(management.create_organization(&names).await?);
    stream::iter(&accounts)
        .map(|account| account.healthy_trail("audit", ORG_REGIONS[0], true))
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    let seed_seconds = seeding.elapsed().as_secs_f64();

    let regions = ORG_REGIONS.join(",");
    let concurrency = account_concurrency().to_string();
    let args = [
        "scan",
        "--org",
        "--account-concurrency",
        &concurrency,
        "--role-name",
        "trailwatch-read",
        "--regions",
        &regions,
        "--output",
        "json",
        "--fail-on",
        "never",
    ];
    let measured = measure(binary, &args, &management).await?;
    let document: Value = serde_json::from_str(&measured.stdout).context("the JSON document")?;
    let scanned = document["accounts"].as_array().context("accounts")?;
    anyhow::ensure!(
        scanned.len() == count && scanned.iter().all(|a| a["report"]["summary"]["fail"] == 0),
        "every account should be scanned and pass: {document}"
    );
    let calls: u64 = measured.by_operation.values().sum();
    let result = json!({
        "accounts": count,
        "regions": ORG_REGIONS.len(),
        "account_concurrency": account_concurrency(),
        "wall_ms": measured.wall_ms.round(),
        "api_calls": calls,
        "api_calls_per_account": (calls as f64 / count as f64 * 10.0).round() / 10.0,
        "wall_ms_per_account": (measured.wall_ms / count as f64).round(),
        "peak_rss_kib": measured.peak_rss_kib,
        "by_operation": measured.by_operation,
        "seed_seconds": (seed_seconds * 10.0).round() / 10.0,
        "machine": machine(),
    });
    std::fs::create_dir_all(out)?;
    let file = out.join(format!("org-{count}-c{}.json", account_concurrency()));
    std::fs::write(&file, serde_json::to_string_pretty(&result)?)?;
    println!(
        "{count} accounts: {:.0} ms, {calls} calls, peak RSS {} KiB -> {}",
        measured.wall_ms,
        measured.peak_rss_kib,
        file.display()
    );
    Ok(())
}

/// One account for the peer comparison: 9 trails over 3 regions, a third of them streaming to
/// CloudWatch Logs as they should, a third S3-only, a third stopped, so every tool has
/// failures to find. Prints what the timed commands need as shell `export` lines.
async fn peers_seed() -> Result<()> {
    let account = Account::fresh().await?;
    seed_peers(&account).await?;
    for (key, value) in account.env() {
        println!("export {key}='{value}'");
    }
    println!("export PEER_REGIONS='{}'", ORG_REGIONS.join(" "));
    Ok(())
}

/// The peers' account: in each region a healthy trail (the first multi-region), an S3-only
/// one and a stopped one.
async fn seed_peers(account: &Account) -> Result<()> {
    for (index, region) in ORG_REGIONS.iter().enumerate() {
        account
            .healthy_trail(&format!("healthy-{region}"), region, index == 0)
            .await?;
        account
            .trail(trailwatch_tests::TrailSpec::new(
                &format!("s3-only-{region}"),
                region,
            ))
            .await?;
        let stopped = format!("stopped-{region}");
        account.healthy_trail(&stopped, region, false).await?;
        account
            .cloudtrail(region)
            .stop_logging()
            .name(&stopped)
            .send()
            .await?;
    }
    Ok(())
}

/// The calls trailwatch's scan of the peers' account makes, by operation, through the fault
/// proxy: `OUT_DIR/peers-calls.json`.
async fn peers_calls(binary: &Path, out: &Path) -> Result<()> {
    let account = Account::fresh().await?;
    seed_peers(&account).await?;
    let regions = ORG_REGIONS.join(",");
    let measured = measure(binary, &scan_arguments(&regions), &account).await?;
    let calls: u64 = measured.by_operation.values().sum();
    println!(
        "peers' account: {calls} calls, {:.0} ms through the proxy",
        measured.wall_ms
    );
    for (operation, count) in &measured.by_operation {
        println!("  {operation}: {count}");
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("peers-calls.json"),
        serde_json::to_string_pretty(&json!({
            "api_calls": calls,
            "by_operation": measured.by_operation,
        }))?,
    )?;
    Ok(())
}

/// hyperfine's results (`--export-json`) as the README's table: the median wall of each tool,
/// its ratio to trailwatch's and the goal, and what each found (`found`: Prowler's FAIL rows,
/// Custodian's matched trails, trailwatch's failing trails).
fn peers_table(hyperfine: &Path, found: [&&str; 3]) -> Result<()> {
    let results: Value = serde_json::from_str(&std::fs::read_to_string(hyperfine)?)?;
    let median = |name: &str| -> Result<f64> {
        results["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["command"] == name)
            .and_then(|r| r["median"].as_f64())
            .with_context(|| format!("no median for {name} in {}", hyperfine.display()))
    };
    let ours = median("trailwatch")?;
    let runs = results["results"][0]["times"]
        .as_array()
        .map_or(0, Vec::len);
    let machine = machine();
    println!(
        "On one moto account, 9 trails over 3 regions (3 healthy, 3 S3-only, 3 stopped), {} CPUs ({}); median of {runs} runs after a warm-up, whole process:\n",
        machine["cpus"], machine["cpu_model"].as_str().unwrap_or_default()
    );
    println!("| | checks | found | median wall | trailwatch is faster by | goal |");
    println!("|---|---|---|---|---|---|");
    // hyperfine's command names (scripts/bench-peers), the versions tools/*-requirements pin.
    for (command, label, checks, found, goal) in [
        (
            "Prowler",
            "Prowler 5.46.0",
            "`cloudtrail_cloudwatch_logging_enabled`",
            format!("{} FAIL", found[0]),
            100.0,
        ),
        (
            "Cloud Custodian",
            "Cloud Custodian 0.9.53",
            "`aws.cloudtrail`: no log group, or not logging",
            format!("{} trails", found[1]),
            10.0,
        ),
    ] {
        let theirs = median(command)?;
        let ratio = theirs / ours;
        println!(
            "| {label} | {checks} | {found} | {theirs:.2} s | {ratio:.0}× | ≥ {goal:.0}× {} |",
            if ratio >= goal { "met" } else { "**not met**" }
        );
    }
    println!(
        "| trailwatch | every check in \"How a trail is judged\" | {} FAIL | {ours:.3} s | — | — |",
        found[2]
    );
    Ok(())
}

/// The event path, replayed as the trail-change function runs it: what a change that concerns
/// no trail costs, and what a StopLogging costs.
/// The two ways of reading delivery roles, and the cost model's pick, in an account of
/// `roles` roles (see the module's doc).
async fn iam(roles: usize, out: &Path) -> Result<()> {
    use trailwatch_aws::{IamReads, Inventory};
    anyhow::ensure!(roles > 0, "ROLES must be at least 1");
    let account = Account::fresh().await?;
    let trust = trailwatch_tests::cloudtrail_trust(&account.id);
    let arns: Vec<String> = stream::iter(0..roles)
        .map(|n| {
            let (account, trust) = (&account, &trust);
            async move {
                let policy = trailwatch_tests::delivery_policy(&format!(
                    "arn:aws:logs:us-east-1:{}:log-group:cloudtrail/t{n}:*",
                    account.id
                ));
                account
                    .role(&format!("delivery-{n:05}"), trust, &[("deliver", policy)])
                    .await
            }
        })
        .buffered(8)
        .try_collect()
        .await?;
    let mut rows = Vec::new();
    let mut delivering = 1;
    while delivering <= roles.min(64) {
        let wanted: std::collections::BTreeSet<_> = arns[..delivering]
            .iter()
            .filter_map(|arn| trailwatch_core::arn::RoleRef::from_arn(arn))
            .collect();
        let mut row = serde_json::Map::new();
        row.insert("delivery_roles".into(), delivering.into());
        for (label, reads) in [
            ("per-role", IamReads::PerRole),
            ("account-details", IamReads::AccountDetails),
            ("auto", IamReads::Auto),
        ] {
            let mut walls = Vec::new();
            let mut calls = 0;
            for _ in 0..5 {
                let inventory =
                    trailwatch_aws::CloudTrailInventory::new(&account.sdk, 8).with_iam_reads(reads);
                let started = Instant::now();
                let read = inventory.roles(wanted.clone()).await;
                walls.push(started.elapsed().as_secs_f64() * 1000.0);
                calls = inventory.api_calls();
                anyhow::ensure!(
                    read.len() == delivering && read.values().all(|r| matches!(r, Ok(Some(_)))),
                    "{label} did not read every role: {read:?}"
                );
            }
            walls.sort_by(f64::total_cmp);
            row.insert(
                label.into(),
                json!({"median_ms": (walls[2] * 10.0).round() / 10.0, "calls": calls}),
            );
        }
        println!(
            "{roles} roles, {delivering} delivering: per-role {} ms, account-details {} ms, auto {} ms ({} calls)",
            row["per-role"]["median_ms"], row["account-details"]["median_ms"],
            row["auto"]["median_ms"], row["auto"]["calls"]
        );
        rows.push(Value::Object(row));
        delivering *= 2;
    }
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join(format!("iam-{roles}.json")),
        serde_json::to_string_pretty(&json!({
            "roles": roles,
            "rows": rows,
            "machine": machine(),
        }))?,
    )?;
    Ok(())
}

async fn recheck(binary: &Path, out: &Path) -> Result<()> {
    anyhow::ensure!(binary.exists(), "{} is missing", binary.display());
    let regions = &REGIONS[..3];
    let account = Account::fresh().await?;
    seed(&account, regions, 3).await?;
    account
        .cloudtrail(regions[0])
        .stop_logging()
        .name("r0-t1")
        .send()
        .await?;
    let mut unrelated = trailwatch_tests::fixture_event("put_role_policy.json", &account.id)?;
    unrelated["detail"]["requestParameters"]["roleName"] = "orders-service".into();
    let mut stop = trailwatch_tests::fixture_event("stop_logging.json", &account.id)?;
    stop["detail"]["requestParameters"]["name"] = "r0-t1".into();
    stop["detail"]["awsRegion"] = regions[0].into();
    stop["region"] = regions[0].into();

    let region_list = regions.join(",");
    let mut results = serde_json::Map::new();
    for (label, event) in [("unrelated_role_edit", unrelated), ("stop_logging", stop)] {
        let path = std::env::temp_dir().join(format!("bench-recheck-{label}.json"));
        std::fs::write(&path, event.to_string())?;
        let path_text = path.display().to_string();
        let args = [
            "replay",
            path_text.as_str(),
            "--regions",
            &region_list,
            "--no-security-hub",
            "--output",
            "json",
            "--fail-on",
            "never",
        ];
        let measured = measure(binary, &args, &account).await?;
        let calls: u64 = measured.by_operation.values().sum();
        let report: Option<Value> = serde_json::from_str(&measured.stdout).ok();
        let failing = report
            .as_ref()
            .and_then(|r| r["summary"]["fail"].as_u64())
            .unwrap_or(0);
        println!(
            "{label}: {:.0} ms, {calls} calls, {failing} failing evaluation(s)",
            measured.wall_ms
        );
        results.insert(
            label.to_string(),
            json!({
                "wall_ms": measured.wall_ms.round(),
                "api_calls": calls,
                "by_operation": measured.by_operation,
                "failing": failing,
            }),
        );
    }
    results.insert("machine".into(), machine());
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("recheck.json"),
        serde_json::to_string_pretty(&Value::Object(results))?,
    )?;
    Ok(())
}

/// Lambda's longest timeout, 900 s, as the runtime API's deadline header counts it.
const LAMBDA_MAX_TIMEOUT_MS: u128 = 900_000;

/// Cold starts measured per zip; the median of five shrugs off one slow start.
const COLD_STARTS: usize = 5;

/// A function's zip, started cold [`COLD_STARTS`] times against a seeded account.
async fn lambda(zip: &Path, bootstrap: &Path, label: &str, out: &Path) -> Result<()> {
    let zip_bytes = std::fs::metadata(zip)
        .with_context(|| format!("{} is missing: `make build` makes it", zip.display()))?
        .len();
    let account = Account::fresh().await?;
    seed(&account, &REGIONS[..3], 3).await?;
    let mut inits = Vec::new();
    let mut invokes = Vec::new();
    for _ in 0..COLD_STARTS {
        let (init_ms, invoke_ms) = cold_start(bootstrap, &account).await?;
        inits.push(init_ms);
        invokes.push(invoke_ms);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2] * 10.0).round() / 10.0
    };
    let result = json!({
        "label": label,
        "zip_bytes": zip_bytes,
        "init_ms": median(inits.clone()),
        "scan_ms": median(invokes.clone()),
        "init_ms_runs": inits,
        "scan_ms_runs": invokes,
        "machine": machine(),
    });
    std::fs::create_dir_all(out)?;
    let file = out.join(format!("lambda-{label}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&result)?)?;
    println!(
        "{label}: {zip_bytes} bytes, init {} ms, scan {} ms -> {}",
        result["init_ms"],
        result["scan_ms"],
        file.display()
    );
    Ok(())
}

/// What the stand-in runtime API saw the function do.
enum RuntimeCall {
    /// `GET …/invocation/next`: the function is ready for an event.
    Next,
    /// `POST …/invocation/ID/response`, with the answer.
    Response(String),
    /// `POST …/invocation/ID/error` or `…/init/error`, with the error.
    Failed(String),
}

/// Starts `bootstrap` with a runtime API of its own and times its init and its one invocation.
async fn cold_start(bootstrap: &Path, account: &Account) -> Result<(f64, f64)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    let (calls, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut served = 0usize;
        while let Ok((connection, _)) = listener.accept().await {
            let calls = calls.clone();
            served += 1;
            tokio::spawn(serve_runtime(connection, calls, served == 1));
        }
    });
    let mut command = tokio::process::Command::new(bootstrap);
    command
        .kill_on_drop(true)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "trailwatch-scheduled-scan")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/trailwatch-scheduled-scan",
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_ENDPOINT_URL", endpoint()?)
        .env("TRAILWATCH_REGIONS", REGIONS[..3].join(","))
        .env("TRAILWATCH_SECURITY_HUB", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in account.env() {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().context("starting the bootstrap")?;
    let measured = async {
        let mut init = None;
        while let Some(call) = seen.recv().await {
            let at = started.elapsed().as_secs_f64() * 1000.0;
            match (call, init) {
                (RuntimeCall::Next, None) => init = Some(at),
                (RuntimeCall::Next, Some(_)) => {}
                (RuntimeCall::Response(body), Some(init)) => {
                    let answer: Value = serde_json::from_str(&body).context("the answer")?;
                    let summary = &answer["summary"];
                    anyhow::ensure!(
                        summary["pass"] == 10 && summary["fail"] == 0,
                        "every seeded trail is healthy: {answer}"
                    );
                    return Ok((init, at - init));
                }
                (RuntimeCall::Response(body), None) | (RuntimeCall::Failed(body), _) => {
                    bail!("the function failed: {body}")
                }
            }
        }
        bail!("the runtime API stopped")
    };
    // No clock decides the outcome: the function answers, reports an error, or exits.
    let result = tokio::select! {
        measured = measured => measured,
        exit = child.wait() => Err(anyhow::anyhow!("the bootstrap exited ({}) before it answered", exit?)),
    };
    let _ = child.start_kill();
    let _ = child.wait().await;
    result
}

/// One connection of the stand-in runtime API, which the runtime's client keeps alive across
/// requests. The first connection's first `next` gets the scheduled event; later ones wait
/// until the function is stopped.
async fn serve_runtime(
    mut connection: tokio::net::TcpStream,
    calls: tokio::sync::mpsc::UnboundedSender<RuntimeCall>,
    first: bool,
) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = Vec::new();
    let mut handed_event = !first;
    loop {
        let (head, body) = loop {
            if let Some(request) = take_request(&mut buffer) {
                break request;
            }
            let mut chunk = [0u8; 8192];
            let n = connection.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let line = head.lines().next().unwrap_or_default().to_string();
        if line.starts_with("GET") && line.contains("/invocation/next") {
            let _ = calls.send(RuntimeCall::Next);
            if handed_event {
                // The function asks for its second event: it never comes.
                std::future::pending::<()>().await;
            }
            handed_event = true;
            let event = r#"{"version":"0","id":"bench","detail-type":"Scheduled Event","source":"aws.events","account":"000000000000","time":"2026-12-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}"#;
            // The deadline header Lambda sends: the invocation's end, at Lambda's 15-minute
            // maximum (the function only reads it, nothing here waits for it).
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
                + LAMBDA_MAX_TIMEOUT_MS;
            connection
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\n\
                         Content-Type: application/json\r\n\
                         Lambda-Runtime-Aws-Request-Id: bench-1\r\n\
                         Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                         Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:trailwatch-scheduled-scan\r\n\
                         Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\
                         Content-Length: {}\r\n\r\n{event}",
                        event.len()
                    )
                    .as_bytes(),
                )
                .await?;
            continue;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let call = if line.contains("/response") {
            RuntimeCall::Response(body)
        } else {
            RuntimeCall::Failed(format!("{line}: {body}"))
        };
        let _ = calls.send(call);
        connection
            .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
            .await?;
    }
}

/// The first whole request in `buffer`, taken out of it: its head and its body, read by
/// `Content-Length` or, when chunked, by chunks.
fn take_request(buffer: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = head_end;
        loop {
            let line_end = buffer[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size_text = String::from_utf8_lossy(&buffer[at..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            let data = line_end + 2;
            if buffer.len() < data + size + 2 {
                return None;
            }
            if size == 0 {
                let end = data + 2;
                buffer.drain(..end);
                return Some((head, body));
            }
            body.extend_from_slice(&buffer[data..data + size]);
            at = data + size + 2;
        }
    }
    let length: usize = header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    if buffer.len() < head_end + length {
        return None;
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some((head, body))
}

/// What the figures were measured on.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "os": std::env::consts::OS,
    })
}

/// Criterion's mean estimate of each core benchmark, in nanoseconds.
fn criterion_estimates() -> Result<BTreeMap<String, f64>> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let root = Path::new(&target).join("criterion");
    let mut found = BTreeMap::new();
    for group in ["evaluate_account", "policy"] {
        let Ok(entries) = std::fs::read_dir(root.join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("new/estimates.json")) else {
                continue;
            };
            let value: Value = serde_json::from_str(&text)?;
            if let Some(mean) = value["mean"]["point_estimate"].as_f64() {
                let name = entry.file_name().to_string_lossy().into_owned();
                found.insert(format!("{group}/{name}"), mean);
            }
        }
    }
    Ok(found)
}

fn human_ns(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

/// Every `<prefix>*.json` result in `out`.
fn results(out: &Path, prefix: &str) -> Result<Vec<Value>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(".json") {
            found.push(serde_json::from_str(&std::fs::read_to_string(&path)?)?);
        }
    }
    Ok(found)
}

/// The Lambda's footprint next to its goals: the scheduled-scan zip's cold start
/// (`lambda-scheduled-scan.json`), the largest scan's peak RSS, and both zips as `make build`
/// leaves them (`target/lambda/`, beside `out`).
fn lean_table(out: &Path, scans: &[Value]) -> Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    let verdict = |met: bool| if met { "met" } else { "**not met**" };
    println!("\n| keeping the Lambda lean | measured | goal |\n|---|---|---|");
    match std::fs::read_to_string(out.join("lambda-scheduled-scan.json")) {
        Ok(text) => {
            let lambda: Value = serde_json::from_str(&text)?;
            let init = lambda["init_ms"].as_f64().unwrap_or(f64::NAN);
            println!(
                "| cold start (init) of `scheduled-scan`, median of 5 | {init} ms | < 50 ms {} |",
                verdict(init < 50.0)
            );
        }
        Err(_) => println!("| cold start (init) of `scheduled-scan` | not measured (`make bench-lambda`) | < 50 ms |"),
    }
    if let Some(largest) = scans.last() {
        let rss = largest["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0;
        println!(
            "| peak RSS of the {} × {} scan | {rss:.1} MiB | < 40 MiB {} |",
            largest["regions"],
            largest["trails_per_region"],
            verdict(rss < 40.0)
        );
    }
    let lambdas = out.parent().unwrap_or(out).join("lambda");
    for function in ["scheduled-scan", "trail-change", "account-worker"] {
        let zip = lambdas.join(function).join("bootstrap.zip");
        match std::fs::metadata(&zip) {
            Ok(meta) => {
                let size = meta.len() as f64 / MIB;
                println!(
                    "| `{function}` zip | {size:.2} MiB ({} bytes) | < 8 MiB {} |",
                    meta.len(),
                    verdict(size < 8.0)
                );
            }
            Err(_) => println!("| `{function}` zip | not built (`make build`) | < 8 MiB |"),
        }
    }
    Ok(())
}

fn table(out: &Path) -> Result<()> {
    let estimates = criterion_estimates()?;
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("core.json"),
        serde_json::to_string_pretty(&json!({"mean_ns": estimates, "machine": machine()}))?,
    )?;
    println!("| core benchmark | mean |\n|---|---|");
    for (name, ns) in &estimates {
        println!("| `{name}` | {} |", human_ns(*ns));
    }

    let mut runs = results(out, "scan-")?;
    runs.sort_by_key(|r| (r["trails"].as_u64(), r["regions"].as_u64()));
    println!("\n| regions × trails | wall | API calls | a trail | minimum | excess | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} × {} | {:.2} s | {} | {} | {} | {} | {:.1} MiB |",
            r["regions"],
            r["trails_per_region"],
            r["wall_ms"].as_f64().unwrap_or_default() / 1000.0,
            r["api_calls"],
            r["api_calls_per_trail"],
            r["minimum_api_calls"],
            r["excess_api_calls"],
            r["peak_rss_kib"].as_f64().unwrap_or_default() / 1024.0,
        );
    }
    if let Some(largest) = runs.last() {
        println!(
            "\nCalls by operation, {} × {}:\n\n| operation | calls |\n|---|---|",
            largest["regions"], largest["trails_per_region"]
        );
        for (operation, count) in largest["by_operation"].as_object().into_iter().flatten() {
            println!("| `{operation}` | {count} |");
        }
    }
    let mut iam = results(out, "iam-")?;
    iam.sort_by_key(|r| r["roles"].as_u64());
    if !iam.is_empty() {
        println!("\n| roles in the account | delivery roles | per-role | account-details | auto (calls) |");
        println!("|---|---|---|---|---|");
    }
    for r in &iam {
        for row in r["rows"].as_array().into_iter().flatten() {
            println!(
                "| {} | {} | {} ms | {} ms | {} ms ({}) |",
                r["roles"],
                row["delivery_roles"],
                row["per-role"]["median_ms"],
                row["account-details"]["median_ms"],
                row["auto"]["median_ms"],
                row["auto"]["calls"],
            );
        }
    }
    let mut orgs = results(out, "org-")?;
    orgs.sort_by_key(|r| (r["accounts"].as_u64(), r["account_concurrency"].as_u64()));
    if !orgs.is_empty() {
        println!(
            "\n| accounts (3 regions each) | accounts at once | wall | a account | API calls | a account | peak RSS |"
        );
        println!("|---|---|---|---|---|---|---|");
        for r in &orgs {
            println!(
                "| {} | {} | {:.2} s | {} ms | {} | {} | {:.1} MiB |",
                r["accounts"],
                r["account_concurrency"],
                r["wall_ms"].as_f64().unwrap_or_default() / 1000.0,
                r["wall_ms_per_account"],
                r["api_calls"],
                r["api_calls_per_account"],
                r["peak_rss_kib"].as_f64().unwrap_or_default() / 1024.0,
            );
        }
    }
    let mut latencies = results(out, "latency-")?;
    latencies.sort_by_key(|r| (r["delay_ms"].as_u64(), r["concurrency"].as_u64()));
    if !latencies.is_empty() {
        println!(
            "\n| latency shape | a call | in flight | API calls | bound (rounds + calls ÷ in flight) | wall | wall ÷ bound | goal ≤ 1.3× |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in &latencies {
            println!(
                "| {} × {} | {} ms | {} | {} | {:.2} s ({} + {}) | {:.2} s | {} | {} |",
                r["regions"],
                r["trails_per_region"],
                r["delay_ms"],
                r["concurrency"],
                r["api_calls"],
                r["bound_ms"].as_f64().unwrap_or_default() / 1000.0,
                r["critical_rounds"],
                r["api_calls"]
                    .as_u64()
                    .unwrap_or_default()
                    .div_ceil(r["concurrency"].as_u64().unwrap_or(1)),
                r["wall_ms"].as_f64().unwrap_or_default() / 1000.0,
                r["wall_to_bound"],
                if r["met"] == true {
                    "met"
                } else {
                    "**not met**"
                },
            );
        }
    }
    lean_table(out, &runs)?;
    let machine = machine();
    println!(
        "\nMeasured on {} CPUs ({}).",
        machine["cpus"],
        machine["cpu_model"].as_str().unwrap_or("unknown")
    );
    Ok(())
}
