//! `trailwatch fix`: evaluate, plan from the reasons, print the plan as numbered AWS CLI
//! commands, and with `--apply` run it through the SDK and evaluate again.
//!
//! A dry run is the default, reads only, and exits 0. `--apply` stops at the first step AWS
//! refuses and says what was and was not done; its exit code is 0 when no FAIL reason is left
//! on the trails it fixed, else 1. `--emit` writes the same fix as Terraform or CloudFormation
//! for the user's repository, and changes nothing either.

mod cloudformation;
mod labels;
mod terraform;

use super::{load_sdk_config, parse_regions, single_account, with_flags};
use super::{CommonArgs, FailOn, OutputFormat, EXIT_CONFIG};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use trailwatch_aws::fix::{assess, existing_targets, Applied, Assessment, Fixer};
use trailwatch_aws::{Config, RegionSelection, Services};
use trailwatch_core::arn::Arn;
use trailwatch_core::fix::{
    desired_state, merged_steps, plan, DesiredState, FixOptions, Plan, DEFAULT_RETENTION_DAYS,
};
use trailwatch_core::{Evaluation, EvaluationKind, Level, ReasonCode};

/// The values `PutRetentionPolicy` accepts (CloudWatch Logs API reference, `retentionInDays`).
const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

const EXIT_FIXED: u8 = 0;
const EXIT_FAIL_LEFT: u8 = 1;

#[derive(Args)]
pub struct FixArgs {
    /// The trail's name or ARN; or --all.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    trail: Option<String>,
    /// Every trail of the account, in the selected regions.
    #[arg(long)]
    all: bool,
    /// Region to look in for TRAIL; defaults to the ARN's region, then AWS_REGION.
    #[arg(long, conflicts_with = "all")]
    region: Option<String>,
    /// With --all: `all` enabled regions, or a comma-separated list
    /// [default: TRAILWATCH_REGIONS, else all].
    #[arg(long, value_parser = parse_regions, requires = "all")]
    regions: Option<RegionSelection>,
    /// The log group to create for a trail without one [default: /aws/cloudtrail/<trail>].
    #[arg(long)]
    log_group: Option<String>,
    /// How long the new or unbounded log group keeps events.
    #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
    retention_days: i32,
    /// The delivery role to create for a trail without one
    /// [default: CloudTrailRoleForCloudWatchLogs_<trail>].
    #[arg(long)]
    role_name: Option<String>,
    /// The SNS topic the tamper alarm pages; once per region, since an alarm notifies topics
    /// in its own region only. Without one for a region, the alarm step there is skipped.
    #[arg(long = "alarm-topic-arn", value_name = "ARN")]
    alarm_topics: Vec<String>,
    /// Make the changes (the default is a dry run that changes nothing).
    #[arg(long)]
    apply: bool,
    /// Write the fix as code for your repository instead: `terraform` (one file) or
    /// `cloudformation` (one template per region). Changes nothing.
    #[arg(long, value_enum, conflicts_with = "apply")]
    emit: Option<EmitFormat>,
    /// The directory --emit writes to.
    #[arg(long, default_value = "trailwatch-fix", requires = "emit")]
    out: PathBuf,
    /// With --apply on a terminal: do not ask for confirmation.
    #[arg(long, requires = "apply")]
    yes: bool,
    /// Oldest acceptable CloudWatch Logs delivery, as for `scan`.
    #[arg(long, value_parser = humantime::parse_duration)]
    max_delivery_age: Option<std::time::Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EmitFormat {
    Terraform,
    Cloudformation,
}

/// `--alarm-topic-arn` values by the region each ARN names; two for one region is an error.
fn topics_by_region(arns: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut topics = BTreeMap::new();
    for arn in arns {
        let parsed = Arn::parse(arn)
            .filter(|a| a.service == "sns" && !a.region.is_empty())
            .with_context(|| format!("--alarm-topic-arn {arn} is not an SNS topic ARN"))?;
        if let Some(previous) = topics.insert(parsed.region.to_string(), arn.clone()) {
            anyhow::bail!(
                "--alarm-topic-arn names two topics in {}: {previous} and {arn}; give one per region",
                parsed.region
            );
        }
    }
    Ok(topics)
}

pub async fn run(args: FixArgs) -> anyhow::Result<u8> {
    let options = FixOptions {
        log_group: args.log_group.clone(),
        retention_days: args.retention_days,
        role_name: args.role_name.clone(),
        alarm_topics: topics_by_region(&args.alarm_topics)?,
    };
    anyhow::ensure!(
        RETENTION_DAYS.contains(&args.retention_days),
        "--retention-days {} is not a retention CloudWatch Logs offers; pick one of {:?}",
        args.retention_days,
        RETENTION_DAYS
    );
    let region = args.region.clone().or_else(|| {
        args.trail
            .as_deref()
            .and_then(Arn::parse)
            .map(|a| a.region.to_string())
            .filter(|r| !r.is_empty())
    });
    let sdk = load_sdk_config(region).await;
    let home = sdk
        .region()
        .map(|r| r.to_string())
        .context("no region: set AWS_REGION (or a profile region), or pass --region")?;
    let regions = match &args.trail {
        Some(_) => Some(RegionSelection::List(vec![home])),
        None => args.regions.clone(),
    };
    let common = CommonArgs {
        output: OutputFormat::Table,
        max_delivery_age: args.max_delivery_age,
        gap_window: None,
        fail_on: FailOn::Fail,
        no_warnings: false,
        concurrency: None,
    };
    let mut config: Config = single_account(Config::from_env()?);
    config = with_flags(config, regions, &common, None)?;
    config.security_hub = false;
    config.sns_topic_arn = None;
    config.ledger_table = None;
    let mut services = Services::new(&sdk, &config, "trailwatch fix")?;
    services.options.scope.trail = args.trail.clone();

    let before = assess(&services.inventory, &services.options).await?;
    let targets = targets(&before, args.trail.is_some());
    let plans: Vec<Plan> = targets
        .iter()
        .map(|e| plan(&before.snapshot, e, &options))
        .collect();
    println!("Before:");
    print_verdicts(&targets);
    for exempt in before
        .evaluations
        .iter()
        .filter(|e| args.trail.is_none() && e.kind == EvaluationKind::Trail && e.is_exempt())
    {
        println!(
            "Skipped trail {}: it is exempt ({}). Fix it by name to override.",
            trail_name(exempt),
            exempt
                .exemption
                .as_ref()
                .map(|x| x.reason.as_str())
                .unwrap_or_default()
        );
    }
    let steps = merged_steps(&plans);
    print_plan(&plans, &steps);
    if steps.is_empty() {
        println!("\nNothing to change.");
        return Ok(exit_code(&targets));
    }
    if let Some(format) = args.emit {
        let existing = existing_targets(&services.inventory, &before.snapshot, &steps)
            .await
            .map_err(|e| anyhow::anyhow!(e.describe()))
            .context("checking which of the log groups and roles to create exist already")?;
        let state = desired_state(&steps, &before.snapshot, &existing);
        let mut header = code_header(&plans, &before.snapshot.account_id);
        header.extend(state.notes.iter().cloned());
        emit(format, &state, &header, &args.out)?;
        return Ok(EXIT_FIXED);
    }
    if !args.apply {
        println!(
            "\nDry run: nothing was changed. Run again with --apply to make {} change(s).",
            steps.len()
        );
        return Ok(EXIT_FIXED);
    }
    if std::io::stdin().is_terminal() && !args.yes && !confirm(steps.len(), &before)? {
        println!("Nothing was changed.");
        return Ok(EXIT_CONFIG);
    }

    let fixer = Fixer::new(&sdk);
    println!();
    for (index, step) in steps.iter().enumerate() {
        let number = index + 1;
        match fixer.apply(&step.action).await {
            Ok(Applied::Changed) => println!("✓ {number}. {}", step.action.describe()),
            Ok(Applied::AlreadyThere) => println!(
                "✓ {number}. {} (already there, left as it is)",
                step.action.describe()
            ),
            Err(failure) => {
                println!("✗ {number}. {}: {failure}", step.action.describe());
                println!(
                    "Stopped. Done: {}. Not done: steps {number} to {}; fix the cause and run trailwatch fix again (the steps done are safe to repeat).",
                    match number {
                        1 => "nothing".to_string(),
                        2 => "step 1".to_string(),
                        n => format!("steps 1 to {}", n - 1),
                    },
                    steps.len()
                );
                return Ok(EXIT_FAIL_LEFT);
            }
        }
    }

    let after = assess(&services.inventory, &services.options).await?;
    let fixed: Vec<&str> = targets.iter().map(|e| e.resource_id.as_str()).collect();
    let after_targets: Vec<&Evaluation> = after
        .evaluations
        .iter()
        .filter(|e| fixed.contains(&e.resource_id.as_str()))
        .collect();
    println!("\nAfter:");
    print_verdicts(&after_targets);
    if after_targets.iter().any(|e| {
        e.reasons
            .iter()
            .any(|r| r.code == ReasonCode::CwlDeliveryPending)
    }) {
        println!(
            "CloudTrail starts delivering to CloudWatch Logs within minutes: run `trailwatch check TRAIL` again in about 15 minutes, and CWL_DELIVERY_PENDING should be gone."
        );
    }
    Ok(exit_code(&after_targets))
}

/// The trails to fix: the named one, or every trail that is not exempt.
fn targets(assessment: &Assessment, named: bool) -> Vec<&Evaluation> {
    assessment
        .evaluations
        .iter()
        .filter(|e| e.kind == EvaluationKind::Trail)
        .filter(|e| named || !e.is_exempt())
        .collect()
}

fn trail_name(evaluation: &Evaluation) -> &str {
    evaluation
        .trail
        .as_ref()
        .map(|t| t.name.as_str())
        .unwrap_or(&evaluation.resource_id)
}

/// 1 while a FAIL reason is left. A logging gap is history, not a state any call changes
/// (the plan says to investigate it), so it does not count.
fn exit_code(evaluations: &[&Evaluation]) -> u8 {
    let failing = |e: &&Evaluation| {
        e.reasons
            .iter()
            .any(|r| r.level == Level::Fail && !r.code.is_historical())
    };
    if evaluations.iter().any(failing) {
        EXIT_FAIL_LEFT
    } else {
        EXIT_FIXED
    }
}

fn print_verdicts(evaluations: &[&Evaluation]) {
    for evaluation in evaluations {
        let codes: Vec<&str> = evaluation
            .counted_reasons()
            .map(|r| r.code.as_str())
            .collect();
        println!(
            "  {:<7} trail {} ({}){}",
            evaluation.status.as_str(),
            trail_name(evaluation),
            evaluation.region,
            if codes.is_empty() {
                String::new()
            } else {
                format!(": {}", codes.join(", "))
            }
        );
    }
}

fn print_plan(plans: &[Plan], steps: &[trailwatch_core::fix::Step]) {
    if !steps.is_empty() {
        println!("\nPlan:");
    }
    for (index, step) in steps.iter().enumerate() {
        let codes: Vec<&str> = step.fixes.iter().map(|c| c.as_str()).collect();
        println!(
            "{}. {} [{}]\n   {}",
            index + 1,
            step.action.describe(),
            codes.join(", "),
            step.action.command()
        );
    }
    for plan in plans {
        for manual in &plan.manual {
            println!(
                "\nNot fixable by trailwatch, trail {}: {}\n   {}",
                plan.trail_name,
                manual.code.as_str(),
                manual.what_to_do
            );
        }
        for note in &plan.notes {
            println!("\nNote, trail {}: {note}", plan.trail_name);
        }
    }
}

/// What the emitted code is for, and what it cannot do, as comment lines.
fn code_header(plans: &[Plan], account: &str) -> Vec<String> {
    let mut lines = vec![
        format!(
            "Written by trailwatch {} (`trailwatch fix --emit`) for account {account}.",
            env!("CARGO_PKG_VERSION")
        ),
        "Existing resources are taken in as trailwatch read them, then changed; none is ever deleted.".to_string(),
    ];
    for plan in plans.iter().filter(|p| !p.steps.is_empty()) {
        let codes: Vec<&str> = plan
            .steps
            .iter()
            .flat_map(|s| s.fixes.iter().map(|c| c.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        lines.push(format!(
            "Fixes trail {}: {}.",
            plan.trail_name,
            codes.join(", ")
        ));
    }
    for plan in plans {
        for manual in &plan.manual {
            lines.push(format!(
                "Not fixed here, trail {} {}: {}",
                plan.trail_name,
                manual.code.as_str(),
                manual.what_to_do
            ));
        }
        for note in &plan.notes {
            lines.push(format!("Note, trail {}: {note}", plan.trail_name));
        }
    }
    lines
}

/// Writes the fix as code under `out` and says how to deploy it.
fn emit(
    format: EmitFormat,
    state: &DesiredState,
    header: &[String],
    out: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, text: &str| -> anyhow::Result<String> {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.display().to_string())
    };
    match format {
        EmitFormat::Terraform => {
            let mut lines = header.to_vec();
            lines.push(
                "Apply: terraform init, then terraform plan. Expect imports and in-place updates only: every resource has prevent_destroy, so a plan that would replace one fails instead. Then terraform apply.".to_string(),
            );
            let path = write("trailwatch-fix.tf", &terraform::render(state, &lines)?)?;
            println!("\nWrote {path}. Nothing was changed.");
            println!(
                "Review it, then: terraform -chdir={} init && terraform -chdir={} plan",
                out.display(),
                out.display()
            );
        }
        EmitFormat::Cloudformation => {
            let templates = cloudformation::render(state)?;
            println!("\nNothing was changed. Deploy the templates in this order:");
            let first = templates.first().map(|t| t.region.clone());
            for template in &templates {
                let name = format!("trailwatch-fix-{}.yaml", template.region);
                let path = out.join(&name).display().to_string();
                let commands = template.deploy_commands(&path);
                let mut text: String = header.iter().map(|l| format!("# {l}\n")).collect();
                if let Some(first) = first.as_ref().filter(|f| **f != template.region) {
                    text.push_str(&format!(
                        "# Deploy trailwatch-fix-{first}.yaml first: it holds the IAM resources.\n"
                    ));
                }
                text.push_str(
                    "# Deploy, in order (if a trailwatch-fix stack exists already, use --change-set-type UPDATE):\n",
                );
                for command in &commands {
                    text.push_str(&format!("#   {command}\n"));
                }
                text.push_str(&template.body);
                let path = write(&name, &text)?;
                println!("\n{path}:");
                for command in &commands {
                    println!("  {command}");
                }
            }
        }
    }
    Ok(())
}

fn confirm(steps: usize, assessment: &Assessment) -> anyhow::Result<bool> {
    print!(
        "\nApply {steps} change(s) to account {}? [y/N] ",
        assessment.snapshot.account_id
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}
