//! `trailwatch`, the command line: `scan` evaluates every trail of an account in every region,
//! `check` evaluates one trail. Credentials, region and endpoint come from the standard AWS
//! chain (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`).
//!
//! Exit codes: 0 nothing at or above `--fail-on`; 1 findings at or above it; 2 usage or
//! configuration error (including an unknown trail); 3 the evaluation is incomplete.

mod output;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;
use trailwatch_aws::{
    load_sdk_config, scan, CloudTrailInventory, RegionSelection, ScanError, ScanOptions, Scope,
    DEFAULT_CONCURRENCY,
};
use trailwatch_core::arn::Arn;
use trailwatch_core::{ScanReport, Status};

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
        /// `all` enabled regions (account:ListRegions), or a comma-separated list.
        #[arg(long, env = "TRAILWATCH_REGIONS", default_value = "all", value_parser = parse_regions)]
        regions: RegionSelection,
        #[command(flatten)]
        common: CommonArgs,
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
}

#[derive(Args)]
struct CommonArgs {
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    /// Oldest acceptable CloudWatch Logs delivery, like `24h`, `90m` or `2days`.
    #[arg(long, env = "TRAILWATCH_MAX_DELIVERY_AGE", default_value = "24h", value_parser = humantime::parse_duration)]
    max_delivery_age: Duration,
    /// Lowest status that makes the exit code 1.
    #[arg(long, value_enum, default_value_t = FailOn::Fail)]
    fail_on: FailOn,
    /// Drop WARNING reasons (retention, tamper alarm, selectors, log file validation).
    #[arg(long)]
    no_warnings: bool,
    /// How many AWS requests run at once.
    #[arg(long, env = "TRAILWATCH_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY)]
    concurrency: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
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
    // `check` looks in one region: --region, else the ARN's, else the default chain's.
    let (regions, trail, region_override, common) = match cli.command {
        Command::Scan { regions, common } => (Some(regions), None, None, common),
        Command::Check {
            trail,
            region,
            common,
        } => {
            let region = region.or_else(|| {
                Arn::parse(&trail)
                    .map(|a| a.region.to_string())
                    .filter(|r| !r.is_empty())
            });
            (None, Some(trail), region, common)
        }
    };
    let sdk = load_sdk_config(region_override).await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .context("no region: set AWS_REGION (or a profile region), or pass --region to check")?;
    let scope = Scope {
        regions: regions.unwrap_or_else(|| RegionSelection::List(vec![region])),
        trail,
    };
    let max_delivery_age = chrono::Duration::from_std(common.max_delivery_age)
        .context("--max-delivery-age is too large")?;
    let inventory = CloudTrailInventory::new(&sdk, common.concurrency);
    let options = ScanOptions {
        scope,
        max_delivery_age,
        warnings: !common.no_warnings,
    };

    let spinner = output::spinner(std::io::stderr().is_terminal());
    let result = scan(&inventory, &options).await;
    spinner.finish_and_clear();
    let report = result?;

    match common.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => println!("{}", output::table(&report, terminal_width())),
    }
    Ok(exit_code(&report, common.fail_on))
}

fn terminal_width() -> Option<u16> {
    if std::io::stdout().is_terminal() {
        None
    } else {
        Some(140)
    }
}

/// Findings at or above `--fail-on` give 1; otherwise an incomplete evaluation gives 3, since a
/// clean exit must never hide data trailwatch could not read.
fn exit_code(report: &ScanReport, fail_on: FailOn) -> u8 {
    let has = |status| report.evaluations.iter().any(|e| e.status == status);
    let findings = match fail_on {
        FailOn::Fail => has(Status::Fail),
        FailOn::Warning => has(Status::Fail) || has(Status::Warning),
        FailOn::Never => false,
    };
    if findings {
        EXIT_FINDINGS
    } else if has(Status::Error) {
        EXIT_INCOMPLETE
    } else {
        0
    }
}
