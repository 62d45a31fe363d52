//! The `trailwatch` binary as a user runs it: the JSON contract, the table, and exit codes.

use anyhow::Result;
use serde_json::Value;
use std::process::{Command, Output};
use trailwatch_tests::{trailwatch_binary, Account, TrailSpec};

fn run(account: &Account, args: &[&str]) -> Output {
    let mut command = Command::new(trailwatch_binary());
    command.args(args).env_remove("AWS_PROFILE");
    for (key, value) in account.env() {
        command.env(key, value);
    }
    command.output().expect("trailwatch runs")
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test]
async fn scan_json_follows_the_contract_and_exits_1_on_failures() -> Result<()> {
    let acct = Account::fresh().await?;
    let arn = acct.trail(TrailSpec::new("s3-only", "us-east-1")).await?;
    let output = run(
        &acct,
        &[
            "scan",
            "--regions",
            "us-east-1,eu-west-1",
            "--output",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report = stdout_json(&output);

    assert!(chrono::DateTime::parse_from_rfc3339(report["scanned_at"].as_str().unwrap()).is_ok());
    assert_eq!(report["account_id"], acct.id.as_str());
    assert_eq!(
        report["regions"],
        serde_json::json!(["us-east-1", "eu-west-1"])
    );
    assert!(report["api_calls"].as_u64().unwrap() > 0);
    assert!(report["duration_ms"].is_u64());
    assert_eq!(
        report["summary"],
        serde_json::json!({"pass": 0, "fail": 2, "warning": 0, "error": 0})
    );

    let evaluations = report["evaluations"].as_array().unwrap();
    let trail = evaluations.iter().find(|e| e["kind"] == "trail").unwrap();
    assert_eq!(trail["resource_id"], arn.as_str());
    assert_eq!(trail["account_id"], acct.id.as_str());
    assert_eq!(trail["region"], "us-east-1");
    assert_eq!(trail["status"], "FAIL");
    assert_eq!(trail["severity"], "MEDIUM");
    assert_eq!(trail["reasons"][0]["code"], "CWL_NOT_CONFIGURED");
    assert_eq!(trail["reasons"][0]["level"], "FAIL");
    assert!(trail["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .contains("s3-only"));
    let summary = &trail["trail"];
    assert_eq!(summary["name"], "s3-only");
    assert_eq!(summary["home_region"], "us-east-1");
    assert_eq!(summary["is_multi_region"], false);
    assert_eq!(summary["is_organization_trail"], false);
    assert_eq!(summary["log_group_arn"], Value::Null);
    assert_eq!(summary["role_arn"], Value::Null);
    assert_eq!(summary["is_logging"], true);

    let account = evaluations.iter().find(|e| e["kind"] == "account").unwrap();
    assert_eq!(
        account["resource_id"],
        format!("AWS::::Account:{}", acct.id)
    );
    assert_eq!(account["status"], "FAIL");
    assert_eq!(account["severity"], "HIGH");
    assert_eq!(account["reasons"][0]["code"], "NO_REALTIME_COVERAGE");
    assert!(account.get("trail").is_none());
    Ok(())
}

#[tokio::test]
async fn healthy_account_exits_0_unless_warnings_count() -> Result<()> {
    let acct = Account::fresh().await?;
    acct.healthy_trail("good", "us-east-1", true).await?;
    let pass = run(&acct, &["scan", "--regions", "us-east-1"]);
    assert_eq!(pass.status.code(), Some(0), "{pass:?}");
    let table = String::from_utf8(pass.stdout)?;
    assert!(table.contains("trail good"), "{table}");
    assert!(table.contains("PASS"), "{table}");

    acct.logs("us-east-1")
        .delete_retention_policy()
        .log_group_name("cloudtrail/good")
        .send()
        .await?;
    let warn = run(
        &acct,
        &["scan", "--regions", "us-east-1", "--fail-on", "warning"],
    );
    assert_eq!(warn.status.code(), Some(1), "{warn:?}");
    let lenient = run(
        &acct,
        &["scan", "--regions", "us-east-1", "--fail-on", "fail"],
    );
    assert_eq!(lenient.status.code(), Some(0), "{lenient:?}");
    Ok(())
}

#[tokio::test]
async fn check_finds_a_trail_by_name_or_by_shadow_arn() -> Result<()> {
    let acct = Account::fresh().await?;
    let good = acct.healthy_trail("everywhere", "us-east-1", true).await?;
    let by_name = run(&acct, &["check", "everywhere", "--output", "json"]);
    assert_eq!(by_name.status.code(), Some(0), "{by_name:?}");
    let report = stdout_json(&by_name);
    assert_eq!(report["evaluations"].as_array().unwrap().len(), 1);
    assert_eq!(report["evaluations"][0]["resource_id"], good.arn.as_str());

    // Seen from another region the trail is a shadow copy; it is still judged at home.
    let shadow = run(
        &acct,
        &[
            "check",
            &good.arn,
            "--region",
            "ap-southeast-2",
            "--output",
            "json",
        ],
    );
    assert_eq!(shadow.status.code(), Some(0), "{shadow:?}");
    assert_eq!(
        stdout_json(&shadow)["evaluations"][0]["region"],
        "us-east-1"
    );
    Ok(())
}

#[tokio::test]
async fn check_of_an_unknown_trail_is_a_clear_usage_error() -> Result<()> {
    let acct = Account::fresh().await?;
    let output = run(&acct, &["check", "does-not-exist", "--region", "eu-west-1"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("trail \"does-not-exist\" was not found in eu-west-1"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    Ok(())
}

#[tokio::test]
async fn bad_environment_exits_2_and_names_the_variable() -> Result<()> {
    let acct = Account::fresh().await?;
    let mut command = Command::new(trailwatch_binary());
    command
        .args(["scan", "--regions", "us-east-1"])
        .env("TRAILWATCH_MAX_DELIVERY_AGE_HOURS", "a day");
    for (key, value) in acct.env() {
        command.env(key, value);
    }
    let output = command.output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr)?;
    assert!(
        stderr.contains("TRAILWATCH_MAX_DELIVERY_AGE_HOURS=\"a day\" is not valid"),
        "{stderr}"
    );
    // The environment sets defaults that flags override.
    let mut from_env = Command::new(trailwatch_binary());
    from_env
        .args(["scan", "--output", "json"])
        .env("TRAILWATCH_REGIONS", "eu-west-1");
    for (key, value) in acct.env() {
        from_env.env(key, value);
    }
    let report = stdout_json(&from_env.output()?);
    assert_eq!(report["regions"], serde_json::json!(["eu-west-1"]));
    Ok(())
}

#[tokio::test]
async fn bad_arguments_exit_2_and_name_the_problem() -> Result<()> {
    let acct = Account::fresh().await?;
    let regions = run(&acct, &["scan", "--regions", "us_east_1"]);
    assert_eq!(regions.status.code(), Some(2));
    assert!(String::from_utf8(regions.stderr)?.contains("not a region name"));
    let age = run(
        &acct,
        &[
            "scan",
            "--regions",
            "us-east-1",
            "--max-delivery-age",
            "soon",
        ],
    );
    assert_eq!(age.status.code(), Some(2));
    assert!(String::from_utf8(age.stderr)?.contains("--max-delivery-age"));
    Ok(())
}

/// `explain` prints a code's README section, needing no AWS at all; an unknown code exits 2
/// (a usage error, as for a bad flag) and names the codes there are.
#[test]
fn explain_prints_the_section_and_an_unknown_code_exits_2_listing_the_known_ones() {
    let explain = |code: &str| {
        Command::new(trailwatch_binary())
            .args(["explain", code])
            .env_clear()
            .output()
            .expect("trailwatch runs")
    };
    let known = explain("logging_stopped");
    let text = String::from_utf8_lossy(&known.stdout);
    assert_eq!(known.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("LOGGING_STOPPED (FAIL, HIGH severity)"),
        "{text}"
    );
    assert!(
        text.contains("aws cloudtrail start-logging"),
        "the fix is in it: {text}"
    );

    let unknown = explain("LOGGING_PAUSED");
    let error = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{error}");
    assert!(unknown.stdout.is_empty());
    for code in [
        "CWL_NOT_CONFIGURED",
        "LOGGING_STOPPED",
        "EVALUATION_INCOMPLETE",
    ] {
        assert!(error.contains(code), "{code} missing from: {error}");
    }
}
