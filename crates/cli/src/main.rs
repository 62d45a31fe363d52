//! `trailwatch`, the command line: `scan` evaluates every trail of an account in every region,
//! `check` evaluates one trail, `replay` runs the trail-change function's flow on a saved event,
//! `fix` plans (and with `--apply` makes) the changes a trail's reasons call for, `explain`
//! prints what a reason code means and how to fix it.
//! Credentials, region and endpoint come from the standard AWS chain (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`).
//!
//! Exit codes: 0 nothing at or above `--fail-on`; 1 findings at or above it; 2 usage or
//! configuration error (including an unknown trail, and a malformed, foreign or other-account
//! event for `replay`); 3 the evaluation or its publication is incomplete.

mod explain;
mod fix;
mod html;
mod output;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use trailwatch_aws::flow::{Recheck, RecheckError};
use trailwatch_aws::organization::AccountRun;
use trailwatch_aws::{load_sdk_config, scan_detailed, Config, RegionSelection, ScanError};
use trailwatch_aws::{Outcome, Services};
use trailwatch_core::arn::Arn;
use trailwatch_core::event;
use trailwatch_core::finding::{self, FindingContext};
use trailwatch_core::{Evaluation, ScanReport, Status};

#[derive(Parser)]
#[command(
    name = "trailwatch",
    version,
    about = "Checks that every CloudTrail trail really streams to CloudWatch Logs."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate every trail of the account, in every selected region, and the account's coverage.
    Scan {
        /// `all` enabled regions (account:ListRegions), or a comma-separated list
        /// [default: TRAILWATCH_REGIONS, else all].
        #[arg(long, value_parser = parse_regions)]
        regions: Option<RegionSelection>,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        publish: PublishArgs,
        #[command(flatten)]
        organization: OrgArgs,
    },
    /// Evaluate one trail, named by name or ARN.
    Check {
        /// The trail's name or ARN.
        trail: String,
        /// Region to look in; defaults to the ARN's region, then AWS_REGION.
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run the trail-change function's flow on a saved event: re-check what it touched,
    /// reconcile, import into Security Hub, alert. Configured by the same TRAILWATCH_
    /// variables as the function; flags override them.
    Replay {
        /// An EventBridge "AWS API Call via CloudTrail" event, or a bare CloudTrail record
        /// (the event history's `CloudTrailEvent`), as JSON. `-` reads stdin.
        event: PathBuf,
        /// `all` enabled regions, or a comma-separated list [default: TRAILWATCH_REGIONS].
        #[arg(long, value_parser = parse_regions)]
        regions: Option<RegionSelection>,
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        destinations: Destinations,
    },
    /// Plan the fix of a trail (or --all) from its reasons, as numbered AWS CLI commands;
    /// --apply makes the changes through the SDK and evaluates again. Nothing is ever deleted.
    Fix(fix::FixArgs),
    /// What a reason code means, why it matters and how to fix it. An unknown code exits 2
    /// and lists the known ones.
    Explain {
        /// A reason code, like LOGGING_GAP (any case).
        code: String,
    },
}

#[derive(Args)]
struct CommonArgs {
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    /// Oldest acceptable CloudWatch Logs delivery, like `24h`, `90m` or `2days`
    /// [default: TRAILWATCH_MAX_DELIVERY_AGE_HOURS, else 4h].
    #[arg(long, value_parser = humantime::parse_duration)]
    max_delivery_age: Option<Duration>,
    /// How far back a stop of logging that was followed by a start is reported as LOGGING_GAP,
    /// like `24h` [default: TRAILWATCH_GAP_WINDOW_HOURS, else 24h].
    #[arg(long, value_parser = humantime::parse_duration)]
    gap_window: Option<Duration>,
    /// Lowest status that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Fail)]
    fail_on: FailOn,
    /// Drop WARNING reasons (retention, tamper alarm, selectors, log file validation), but
    /// never the EXEMPTION_* ones: what became of an exemption tag.
    #[arg(long)]
    no_warnings: bool,
    /// How many AWS requests run at once [default: TRAILWATCH_CONCURRENCY, else 8].
    #[arg(long)]
    concurrency: Option<usize>,
}

/// Every account of an AWS Organization, each through a read role.
#[derive(Args)]
struct OrgArgs {
    /// Scan every active account of the organisation through its read role. Run it from the
    /// management account or a delegated administrator.
    #[arg(long)]
    org: bool,
    /// The read role's name in each account [default: TRAILWATCH_ORG_ROLE_NAME].
    #[arg(long, requires = "org")]
    role_name: Option<String>,
    /// The external id the role's trust policy asks for [default: TRAILWATCH_ORG_EXTERNAL_ID].
    #[arg(long, requires = "org")]
    external_id: Option<String>,
    /// Only these accounts, comma-separated [default: TRAILWATCH_ORG_ACCOUNTS, else all].
    #[arg(long, requires = "org")]
    accounts: Option<String>,
    /// Never these accounts, comma-separated [default: TRAILWATCH_ORG_EXCLUDE_ACCOUNTS].
    #[arg(long, requires = "org")]
    exclude_accounts: Option<String>,
    /// Accounts read at once [default: TRAILWATCH_ORG_CONCURRENCY, else 8].
    #[arg(long, requires = "org")]
    account_concurrency: Option<usize>,
}

impl OrgArgs {
    /// The configuration with the organisation flags laid over the `TRAILWATCH_ORG_`
    /// variables, validated as the functions validate them; organisation mode only with `--org`.
    fn apply(self) -> anyhow::Result<Config> {
        if !self.org {
            let mut config = Config::from_env()?;
            config.org = None;
            return Ok(config);
        }
        let flags = [
            ("TRAILWATCH_ORG_ROLE_NAME", self.role_name),
            ("TRAILWATCH_ORG_EXTERNAL_ID", self.external_id),
            ("TRAILWATCH_ORG_ACCOUNTS", self.accounts),
            ("TRAILWATCH_ORG_EXCLUDE_ACCOUNTS", self.exclude_accounts),
            (
                "TRAILWATCH_ORG_CONCURRENCY",
                self.account_concurrency.map(|n| n.to_string()),
            ),
        ];
        let config = Config::from_lookup(|name| {
            flags
                .iter()
                .find(|(variable, _)| *variable == name)
                .and_then(|(_, value)| value.clone())
                .or_else(|| std::env::var(name).ok())
        })?;
        anyhow::ensure!(
            config.org.is_some(),
            "--org needs the read role's name: --role-name NAME, or TRAILWATCH_ORG_ROLE_NAME"
        );
        Ok(config)
    }
}

/// Recording findings and sending alerts: what the Lambda functions do on every run.
#[derive(Args)]
struct PublishArgs {
    /// Import changed findings into Security Hub and alert on transitions through SNS.
    #[arg(long)]
    publish: bool,
    #[command(flatten)]
    destinations: Destinations,
}

/// Where findings and alerts go.
#[derive(Args)]
struct Destinations {
    /// The SNS topic for alerts; without one, no alerts are sent
    /// [default: TRAILWATCH_SNS_TOPIC_ARN].
    #[arg(long)]
    sns_topic_arn: Option<String>,
    /// Do not read or write Security Hub, as TRAILWATCH_SECURITY_HUB=false does (then every
    /// failure is alerted as new).
    #[arg(long)]
    no_security_hub: bool,
    /// Where findings and alerts link for each reason code's fix
    /// [default: TRAILWATCH_DOCS_URL, else the README].
    #[arg(long)]
    docs_url: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Table,
    Json,
    /// The findings as `BatchImportFindings` would receive them.
    Asff,
    /// One self-contained page: a summary, the coverage matrix, every evaluation with its fix,
    /// and the exemptions (`> report.html`).
    Html,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum FailOn {
    Fail,
    Warning,
    Never,
}

fn parse_regions(text: &str) -> Result<RegionSelection, String> {
    text.parse()
}

const EXIT_FINDINGS: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_INCOMPLETE: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRAILWATCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("trailwatch: {error:#}");
            let code = match error.downcast_ref::<ScanError>() {
                Some(ScanError::TrailListing { .. }) => EXIT_INCOMPLETE,
                _ => EXIT_CONFIG,
            };
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    // The TRAILWATCH_ variables, read as the Lambda functions read them; flags override.
    match cli.command {
        Command::Scan {
            regions,
            common,
            publish,
            organization,
        } => {
            let config = organization.apply()?;
            evaluate(config, regions, None, None, common, Some(publish)).await
        }
        Command::Check {
            trail,
            region,
            common,
        } => {
            let config = single_account(Config::from_env()?);
            // One region: --region, else the ARN's, else the default chain's.
            let region = region.or_else(|| {
                Arn::parse(&trail)
                    .map(|a| a.region.to_string())
                    .filter(|r| !r.is_empty())
            });
            evaluate(config, None, Some(trail), region, common, None).await
        }
        Command::Replay {
            event,
            regions,
            common,
            destinations,
        } => replay(Config::from_env()?, &event, regions, common, destinations).await,
        Command::Fix(args) => fix::run(args).await,
        Command::Explain { code } => {
            let text = explain::explain(&code).map_err(anyhow::Error::msg)?;
            print!("{text}");
            Ok(0)
        }
    }
}

/// `scan` (optionally publishing) and `check`.
async fn evaluate(
    config: Config,
    regions: Option<RegionSelection>,
    trail: Option<String>,
    region_override: Option<String>,
    common: CommonArgs,
    publish: Option<PublishArgs>,
) -> anyhow::Result<u8> {
    let sdk = load_sdk_config(region_override).await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .context("no region: set AWS_REGION (or a profile region), or pass --region to check")?;
    // `check` looks in one region only.
    let regions = match &trail {
        Some(_) => Some(RegionSelection::List(vec![region])),
        None => regions,
    };
    let (publish, destinations) = match publish {
        Some(PublishArgs {
            publish,
            destinations,
        }) => (publish, Some(destinations)),
        None => (false, None),
    };
    let mut config = with_flags(config, regions, &common, destinations)?;
    if config.org.is_some() {
        if !publish {
            // Scan only: nothing recorded, nothing sent, in any account.
            config.security_hub = false;
            config.sns_topic_arn = None;
            config.ledger_table = None;
        }
        let services = Services::new(&sdk, &config, "trailwatch scan --org")?;
        let spinner = output::spinner(std::io::stderr().is_terminal());
        let result = services.run_organization().await;
        spinner.finish_and_clear();
        let runs = result.context("organisation mode is configured")??;
        return print_organization(&runs, common.output, publish, common.fail_on);
    }
    let mut services = Services::new(&sdk, &config, "trailwatch scan --publish")?;
    services.options.scope.trail = trail;

    let spinner = output::spinner(std::io::stderr().is_terminal());
    if publish {
        let result = services.run().await;
        spinner.finish_and_clear();
        let outcome = result?;
        print_report(&outcome.report, common.output, &outcome.context)?;
        print_publication(&outcome);
        return Ok(publication_exit_code(&outcome, common.fail_on));
    }
    let result = scan_detailed(&services.inventory, &services.options).await;
    spinner.finish_and_clear();
    let scanned = result?;
    let context = scanned.finding_context(&config.docs_url, chrono::Utc::now());
    print_report(&scanned.report, common.output, &context)?;
    Ok(exit_code(&scanned.report, common.fail_on))
}

/// The `TRAILWATCH_` configuration with the command line laid over it.
fn with_flags(
    mut config: Config,
    regions: Option<RegionSelection>,
    common: &CommonArgs,
    destinations: Option<Destinations>,
) -> anyhow::Result<Config> {
    if let Some(age) = common.max_delivery_age {
        config.max_delivery_age =
            chrono::Duration::from_std(age).context("--max-delivery-age is too large")?;
    }
    if let Some(window) = common.gap_window {
        config.gap_window =
            chrono::Duration::from_std(window).context("--gap-window is too large")?;
    }
    config.regions = regions.unwrap_or(config.regions);
    config.warnings = config.warnings && !common.no_warnings;
    config.concurrency = common.concurrency.unwrap_or(config.concurrency);
    if let Some(destinations) = destinations {
        config.security_hub = config.security_hub && !destinations.no_security_hub;
        config.sns_topic_arn = destinations.sns_topic_arn.or(config.sns_topic_arn);
        config.docs_url = destinations.docs_url.unwrap_or(config.docs_url);
    }
    Ok(config)
}

/// `check` and `scan` without `--org` read one account, whatever TRAILWATCH_ORG_ROLE_NAME says.
fn single_account(mut config: Config) -> Config {
    config.org = None;
    config
}

/// Every account's report in turn (table), or one document (JSON, ASFF). The exit code is the
/// worst over the accounts; an account that could not be read counts as an ERROR.
fn print_organization(
    runs: &[AccountRun],
    format: OutputFormat,
    published: bool,
    fail_on: FailOn,
) -> anyhow::Result<u8> {
    let mut documents = Vec::new();
    let mut findings = Vec::new();
    let mut pages = Vec::new();
    // 1 (findings) wins over 3 (incomplete), as in `exit_code`.
    let mut codes = Vec::new();
    for run in runs {
        match run {
            AccountRun::Scanned { account, outcome } => {
                codes.push(match published {
                    true => publication_exit_code(outcome, fail_on),
                    false => exit_code(&outcome.report, fail_on),
                });
                match format {
                    OutputFormat::Table => {
                        println!("Account {} ({})", account.id, account.name);
                        println!("{}", output::table(&outcome.report, terminal_width()));
                    }
                    OutputFormat::Json => documents.push(serde_json::json!({
                        "account_id": account.id, "name": account.name, "report": outcome.report,
                    })),
                    OutputFormat::Asff => findings.extend(
                        outcome
                            .report
                            .evaluations
                            .iter()
                            .map(|e| finding::render(e, &outcome.context)),
                    ),
                    OutputFormat::Html => pages.push(html::AccountPage::Scanned {
                        name: Some(&account.name),
                        report: &outcome.report,
                    }),
                }
                if published {
                    eprint!("{}: ", account.id);
                    print_publication(outcome);
                }
            }
            AccountRun::Unreachable {
                account,
                evaluation,
                ..
            } => {
                codes.push(EXIT_INCOMPLETE);
                let reason = evaluation.reasons.first().map(|r| r.message.as_str());
                match format {
                    OutputFormat::Table => println!(
                        "Account {} ({}): ERROR {}\n",
                        account.id,
                        account.name,
                        reason.unwrap_or_default()
                    ),
                    OutputFormat::Json => documents.push(serde_json::json!({
                        "account_id": account.id, "name": account.name, "error": reason,
                        "evaluation": evaluation,
                    })),
                    // No finding: Security Hub takes one only from the account it is about.
                    OutputFormat::Asff => eprintln!(
                        "trailwatch: account {}: {}",
                        account.id,
                        reason.unwrap_or_default()
                    ),
                    OutputFormat::Html => pages.push(html::AccountPage::Unreachable {
                        id: &account.id,
                        name: &account.name,
                        evaluation,
                    }),
                }
            }
        }
    }
    match format {
        OutputFormat::Table => {}
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "accounts": documents }))?
        ),
        OutputFormat::Asff => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "Findings": findings }))?
        ),
        OutputFormat::Html => println!("{}", html::render(&pages, chrono::Utc::now())),
    }
    Ok([EXIT_FINDINGS, EXIT_INCOMPLETE]
        .into_iter()
        .find(|code| codes.contains(code))
        .unwrap_or(0))
}

/// Like [`exit_code`], and 3 when findings or alerts could not all be published.
fn publication_exit_code(outcome: &Outcome, fail_on: FailOn) -> u8 {
    match exit_code(&outcome.report, fail_on) {
        0 if !outcome.failures.is_empty() => EXIT_INCOMPLETE,
        code => code,
    }
}

/// The trail-change flow on a saved event, with the function's configuration and the flags
/// laid over it. A malformed or foreign event stops before anything is read or published.
async fn replay(
    config: Config,
    path: &std::path::Path,
    regions: Option<RegionSelection>,
    common: CommonArgs,
    destinations: Destinations,
) -> anyhow::Result<u8> {
    let bytes = if path.as_os_str() == "-" {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)?;
        buffer
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    let change = match event::parse_event_or_record(&bytes) {
        Ok(change) => change,
        Err(problem) if problem.needs_no_work() => {
            eprintln!("Nothing to re-check: {problem}.");
            return Ok(0);
        }
        Err(problem) => anyhow::bail!("{}: {problem}; nothing was published", path.display()),
    };
    let config = with_flags(config, regions, &common, Some(destinations))?;

    // The event's region is where the change happened; clients start there.
    let sdk = load_sdk_config(Some(change.region.clone())).await;
    let services = Services::new(&sdk, &config, "trailwatch replay")?;
    let spinner = output::spinner(std::io::stderr().is_terminal());
    // A member account's event is re-checked through its read role in organisation mode.
    let result = services.recheck_in_organization(&change).await;
    spinner.finish_and_clear();
    eprintln!(
        "Event {}: {} by {} in {}",
        change.event_id,
        change.actor.event_name,
        change.actor.arn.as_deref().unwrap_or("unknown"),
        change.region
    );
    match result {
        Ok(Recheck::Skipped { reason }) => {
            eprintln!("Nothing to re-check: {reason}.");
            Ok(0)
        }
        Ok(Recheck::Published(outcome)) => {
            print_report(&outcome.report, common.output, &outcome.context)?;
            print_publication(&outcome);
            Ok(publication_exit_code(&outcome, common.fail_on))
        }
        Err(problem @ RecheckError::WrongAccount { .. }) => Err(problem.into()),
        Err(problem) => {
            eprintln!("trailwatch: {problem}");
            Ok(EXIT_INCOMPLETE)
        }
    }
}

fn print_report(
    report: &ScanReport,
    format: OutputFormat,
    context: &FindingContext,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        OutputFormat::Table => println!("{}", output::table(report, terminal_width())),
        OutputFormat::Html => println!(
            "{}",
            html::render(
                &[html::AccountPage::Scanned { name: None, report }],
                chrono::Utc::now()
            )
        ),
        OutputFormat::Asff => {
            let findings: Vec<_> = report
                .evaluations
                .iter()
                .map(|e| finding::render(e, context))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "Findings": findings }))?
            );
        }
    }
    Ok(())
}

/// What was recorded and sent goes to stderr, so stdout stays the report alone.
fn print_publication(outcome: &Outcome) {
    eprintln!(
        "Security Hub: {} imported, {} archived, {} unchanged, {} workflow(s) updated · {} transition(s)",
        outcome.imported,
        outcome.archived,
        outcome.unchanged,
        outcome.workflow_updated,
        outcome.transitions.len()
    );
    match &outcome.alert {
        Some((message, id)) => eprintln!("Alert sent: {} (message id {id})", message.subject),
        None => eprintln!("No alert: nothing changed."),
    }
    for failure in &outcome.failures {
        eprintln!("trailwatch: {}", failure.message);
    }
}

fn terminal_width() -> Option<u16> {
    if std::io::stdout().is_terminal() {
        None
    } else {
        Some(140)
    }
}

/// Findings at or above `--fail-on` give 1; otherwise an incomplete evaluation gives 3, since a
/// clean exit must never hide data trailwatch could not read. An exempt trail's findings are
/// decided already and weigh nothing here; that it could not be read in full (an ERROR reason,
/// even under a FAIL status) still makes the run incomplete.
fn exit_code(report: &ScanReport, fail_on: FailOn) -> u8 {
    let has_finding = |status| {
        report
            .evaluations
            .iter()
            .any(|e| e.status == status && !e.is_exempt())
    };
    let findings = match fail_on {
        FailOn::Fail => has_finding(Status::Fail),
        FailOn::Warning => has_finding(Status::Fail) || has_finding(Status::Warning),
        FailOn::Never => false,
    };
    if findings {
        EXIT_FINDINGS
    } else if report.evaluations.iter().any(Evaluation::is_incomplete) {
        EXIT_INCOMPLETE
    } else {
        0
    }
}
