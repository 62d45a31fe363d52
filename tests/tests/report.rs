//! The HTML report in a real browser: `trailwatch scan --output html` of a seeded moto account,
//! loaded by headless Chromium, which runs the page's own script; the test reads the DOM
//! Chromium rendered and saves a screenshot under the target directory
//! (`html-report/report-<account>.png`).
//!
//! `make test` installs Debian's `chromium` when it is missing; `TRAILWATCH_CHROMIUM` names
//! another browser binary.

use anyhow::{ensure, Context, Result};
use scraper::{ElementRef, Html, Selector};
use std::path::{Path, PathBuf};
use std::process::Command;
use trailwatch_tests::{trailwatch_binary, Account, TrailSpec};

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";

fn chromium() -> PathBuf {
    std::env::var_os("TRAILWATCH_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"))
}

/// Headless Chromium on `page` with `args`; its stdout. Each run gets its own profile, so
/// tests that run at once never share one.
fn run_chromium(page: &str, args: &[&str], profile: &Path) -> Result<String> {
    // `timeout` guards against a browser that never exits, which would hang the whole suite;
    // no assertion depends on how long it takes.
    let output = Command::new("timeout")
        .args(["--kill-after=10", "300"])
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(page)
        .output()
        .with_context(|| {
            format!(
                "running {} (make test installs Debian's chromium; TRAILWATCH_CHROMIUM names another)",
                chromium().display()
            )
        })?;
    ensure!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Where the report and its screenshot are kept: the target directory the tests run from.
fn output_dir() -> Result<PathBuf> {
    let target = trailwatch_binary()
        .parent()
        .and_then(Path::parent)
        .context("the target directory")?
        .join("html-report");
    std::fs::create_dir_all(&target)?;
    Ok(target)
}

fn select<'a>(dom: &'a Html, css: &str) -> Vec<ElementRef<'a>> {
    let selector = Selector::parse(css).unwrap_or_else(|e| panic!("{css}: {e}"));
    dom.select(&selector).collect()
}

fn text(element: &ElementRef) -> String {
    element.text().collect::<String>().trim().to_string()
}

fn cell<'a>(dom: &'a Html, account: &str, region: &str) -> ElementRef<'a> {
    let cells = select(
        dom,
        &format!(r#"#coverage tr[data-account="{account}"] td[data-region="{region}"]"#),
    );
    assert_eq!(cells.len(), 1, "one cell for {account} × {region}");
    cells[0]
}

fn row<'a>(dom: &'a Html, resource: &str) -> ElementRef<'a> {
    let rows = select(
        dom,
        &format!(r#"#evaluations tr.evaluation[data-resource="{resource}"]"#),
    );
    assert_eq!(rows.len(), 1, "one row for {resource}");
    rows[0]
}

#[tokio::test]
async fn the_report_renders_the_matrix_statuses_and_exemptions_in_a_browser() -> Result<()> {
    let account = Account::fresh().await?;
    // us-east-1 is covered in real time by a healthy single-region trail; eu-west-1 has only a
    // stopped trail and an exempt S3-only one, so nothing covers it.
    let audit = account.healthy_trail("audit", EAST, false).await?;
    let stopped = account
        .trail(TrailSpec::new("legacy", WEST).stopped())
        .await?;
    let data = account.trail(TrailSpec::new("data-events", WEST)).await?;
    account
        .tag_trail(
            WEST,
            &data,
            "trailwatch:exempt",
            "data events only until=2099-12-31",
        )
        .await?;

    let output = account
        .trailwatch()
        .args(["scan", "--regions", &format!("{EAST},{WEST}")])
        .args(["--output", "html"])
        .output()?;
    assert_eq!(
        output.status.code(),
        Some(1),
        "the stopped trail fails the scan: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Named for the test's account: two runs sharing a target directory keep apart.
    let dir = output_dir()?;
    let report = dir.join(format!("report-{}.html", account.id));
    std::fs::write(&report, &output.stdout)?;
    let url = format!("file://{}", report.display());
    let profile = tempdir(&dir, &account.id)?;

    let dom = Html::parse_document(&run_chromium(&url, &["--dump-dom"], &profile)?);
    let id = account.id.as_str();
    let covered = cell(&dom, id, EAST);
    assert_eq!(covered.value().attr("data-state"), Some("covered"));
    assert_eq!(text(&covered), "audit");
    assert_eq!(covered.value().attr("title"), Some(audit.arn.as_str()));
    let gap = cell(&dom, id, WEST);
    assert_eq!(gap.value().attr("data-state"), Some("uncovered"));

    let status = |resource: &str| {
        row(&dom, resource)
            .value()
            .attr("data-status")
            .map(str::to_string)
    };
    assert_eq!(status(&audit.arn).as_deref(), Some("PASS"));
    assert_eq!(status(&stopped).as_deref(), Some("FAIL"));
    assert_eq!(status(&data).as_deref(), Some("FAIL"));
    let stopped_row = row(&dom, &stopped);
    assert!(
        text(&stopped_row).contains("LOGGING_STOPPED"),
        "{}",
        text(&stopped_row)
    );
    assert!(
        text(&stopped_row).contains("aws cloudtrail start-logging --name legacy"),
        "the exact fix: {}",
        text(&stopped_row)
    );
    assert_eq!(row(&dom, &data).value().attr("data-exempt"), Some("true"));
    let exemptions = select(&dom, "#exemption-list tbody tr");
    assert_eq!(exemptions.len(), 1);
    let exemption = text(&exemptions[0]);
    assert!(exemption.contains("data events only"), "{exemption}");
    assert!(exemption.contains("2099-12-31"), "{exemption}");
    // The page's script ran (only it writes #shown), and shows every row.
    let rows = select(&dom, "#evaluations tr.evaluation").len();
    assert_eq!(
        text(&select(&dom, "#shown")[0]),
        format!("{rows} of {rows} evaluations shown.")
    );
    assert!(select(&dom, "#evaluations tr.evaluation[hidden]").is_empty());
    // The account's own verdict sits beside its cells.
    let verdict = select(
        &dom,
        &format!(r#"#coverage tr[data-account="{id}"] td.verdict"#),
    );
    assert_eq!(verdict[0].value().attr("data-status"), Some("FAIL"));
    assert!(text(&verdict[0]).contains("NO_REALTIME_COVERAGE"));

    // Filtered by the address, as a shared link would open it, encoded and in lower case as
    // some chat clients rewrite it: only the FAIL rows stay.
    let filtered = Html::parse_document(&run_chromium(
        &format!("{url}#status=fail%2Cnonsense"),
        &["--dump-dom"],
        &profile,
    )?);
    let visible: Vec<String> = select(&filtered, "#evaluations tr.evaluation:not([hidden])")
        .iter()
        .filter_map(|r| r.value().attr("data-status").map(str::to_string))
        .collect();
    assert!(!visible.is_empty());
    assert!(visible.iter().all(|s| s == "FAIL"), "{visible:?}");
    assert!(row(&filtered, &audit.arn).value().attr("hidden").is_some());
    assert_eq!(
        text(&select(&filtered, "#shown")[0]),
        format!("{} of {rows} evaluations shown.", visible.len())
    );

    let screenshot = dir.join(format!("report-{}.png", account.id));
    run_chromium(
        &url,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1400,1100",
        ],
        &profile,
    )?;
    let png = std::fs::read(&screenshot)?;
    assert!(
        png.starts_with(b"\x89PNG"),
        "a PNG at {}",
        screenshot.display()
    );
    std::fs::remove_dir_all(&profile)?;
    Ok(())
}

/// A fresh Chromium profile directory for this test run.
fn tempdir(under: &Path, tag: &str) -> Result<PathBuf> {
    let dir = under.join(format!("profile-{tag}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
