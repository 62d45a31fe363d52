//! `scan --output html`: the whole scan as one self-contained page for an auditor or an
//! operator. Its styles and its one script are inline; it loads nothing, so it can be mailed,
//! attached to a ticket or opened offline years later and look the same.
//!
//! The page holds a summary, the coverage matrix (accounts × regions, with the trails that
//! cover each cell in real time, by the same rule as the account's verdict), one row per
//! evaluation with its reasons and exact fixes, and the exemptions. Rows can be filtered by
//! status in the page; `#status=FAIL,ERROR` in the address opens it filtered, so a filtered
//! view can be shared as a link.

use crate::output::{resource_label, worst_first};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::collections::BTreeSet;
use trailwatch_core::arn::Arn;
use trailwatch_core::finding::remedy;
use trailwatch_core::{CoverageState, Evaluation, EvaluationKind, Level, ScanReport, Status};

/// One account of the page: scanned, or not readable at all.
pub enum AccountPage<'a> {
    Scanned {
        name: Option<&'a str>,
        report: &'a ScanReport,
    },
    /// An organisation member whose role or identity failed: every cell is unreadable.
    Unreachable {
        id: &'a str,
        name: &'a str,
        evaluation: &'a Evaluation,
    },
}

impl AccountPage<'_> {
    fn id(&self) -> &str {
        match self {
            AccountPage::Scanned { report, .. } => &report.account_id,
            AccountPage::Unreachable { id, .. } => id,
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            AccountPage::Scanned { name, .. } => *name,
            AccountPage::Unreachable { name, .. } => Some(name),
        }
    }

    fn evaluations(&self) -> Vec<&Evaluation> {
        match self {
            AccountPage::Scanned { report, .. } => report.evaluations.iter().collect(),
            AccountPage::Unreachable { evaluation, .. } => vec![*evaluation],
        }
    }
}

const STATUSES: [Status; 4] = [Status::Fail, Status::Error, Status::Warning, Status::Pass];

/// The page, as a string ready to write to a file.
pub fn render(accounts: &[AccountPage], generated_at: DateTime<Utc>) -> String {
    let regions: BTreeSet<&str> = accounts
        .iter()
        .filter_map(|a| match a {
            AccountPage::Scanned { report, .. } => Some(report),
            AccountPage::Unreachable { .. } => None,
        })
        .flat_map(|r| r.regions.iter().map(String::as_str))
        .collect();
    let evaluations: Vec<&Evaluation> = accounts.iter().flat_map(|a| a.evaluations()).collect();
    let count = |status: Status| evaluations.iter().filter(|e| e.status == status).count();
    let exempt: Vec<&Evaluation> = evaluations
        .iter()
        .copied()
        .filter(|e| e.exemption.is_some())
        .collect();
    let generated = generated_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "trailwatch report · " (generated) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "trailwatch report" }
                    p.meta {
                        "Generated " time datetime=(generated) { (generated) } " · "
                        (accounts.len()) " account(s) · " (regions.len()) " region(s): "
                        (regions.iter().copied().collect::<Vec<_>>().join(", "))
                    }
                }
                section #summary {
                    h2 { "Summary" }
                    ul.counts {
                        @for status in STATUSES {
                            li.count data-status=(status.as_str()) {
                                span.badge.(class_of(status)) { (status.as_str()) }
                                " " span.number { (count(status)) }
                            }
                        }
                        li.count data-status="EXEMPT" {
                            span.badge.exempt { "EXEMPT" } " " span.number { (exempt.iter().filter(|e| e.is_exempt()).count()) }
                        }
                    }
                    (coverage_sentence(accounts, &regions))
                }
                section #matrix {
                    h2 { "Real-time coverage" }
                    p.help {
                        "A cell is covered when a trail that logs in that region is logging, keeps management events and streams to CloudWatch Logs free of failures. "
                        "An exempt trail that fails covers nothing."
                    }
                    (matrix(accounts, &regions))
                }
                section #findings {
                    h2 { "Evaluations" }
                    form #filter {
                        "Show: "
                        @for status in STATUSES {
                            label {
                                input type="checkbox" name="status" value=(status.as_str()) checked;
                                " " (status.as_str()) " (" (count(status)) ")"
                            }
                        }
                    }
                    p #shown { }
                    (evaluation_table(accounts))
                }
                section #exemptions {
                    h2 { "Exemptions" }
                    @if exempt.is_empty() {
                        p { "No trail carries a " code { "trailwatch:exempt" } " tag." }
                    } @else {
                        (exemption_table(&exempt))
                    }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    };
    page.into_string()
}

/// The badge's CSS class: the status in lower case.
fn class_of(status: Status) -> String {
    status.as_str().to_ascii_lowercase()
}

/// The trail's name from its ARN, with the owner for another account's organisation trail.
fn trail_label(arn: &str, account: &str) -> String {
    match Arn::parse(arn) {
        Some(parsed) => {
            let name = parsed
                .resource
                .strip_prefix("trail/")
                .unwrap_or(parsed.resource);
            if parsed.account == account {
                name.to_string()
            } else {
                format!("{name} (account {})", parsed.account)
            }
        }
        None => arn.to_string(),
    }
}

fn coverage_sentence(accounts: &[AccountPage], regions: &BTreeSet<&str>) -> Markup {
    let mut cells = 0;
    let mut covered = 0;
    for account in accounts {
        if let AccountPage::Scanned { report, .. } = account {
            cells += report.coverage.len();
            covered += report
                .coverage
                .iter()
                .filter(|c| c.state == CoverageState::Covered)
                .count();
        } else {
            cells += regions.len();
        }
    }
    html! {
        p #coverage-summary {
            (covered) " of " (cells) " account-region cells have real-time coverage."
        }
    }
}

fn matrix(accounts: &[AccountPage], regions: &BTreeSet<&str>) -> Markup {
    html! {
        table #coverage {
            thead {
                tr {
                    th { "Account" }
                    th { "Account verdict" }
                    @for region in regions { th { (region) } }
                }
            }
            tbody {
                @for account in accounts {
                    tr data-account=(account.id()) {
                        th {
                            (account.id())
                            @if let Some(name) = account.name() { br; span.name { (name) } }
                        }
                        (account_verdict(account))
                        @for region in regions {
                            (matrix_cell(account, region))
                        }
                    }
                }
            }
        }
    }
}

/// The account's own verdict beside its cells: every scanned region can be covered by
/// single-region trails while the account still fails `NO_REALTIME_COVERAGE`, because regions
/// enabled later and global service events are covered by none.
fn account_verdict(account: &AccountPage) -> Markup {
    let verdict = account
        .evaluations()
        .into_iter()
        .find(|e| matches!(e.kind, EvaluationKind::Account));
    match verdict {
        None => html! { td.verdict data-status="" { "—" } },
        Some(e) => {
            let codes: Vec<&str> = e
                .reasons
                .iter()
                .filter(|r| r.level != Level::Info)
                .map(|r| r.code.as_str())
                .collect();
            html! {
                td.verdict data-status=(e.status.as_str()) {
                    span.badge.(class_of(e.status)) { (e.status.as_str()) }
                    @for code in codes { " " code { (code) } }
                }
            }
        }
    }
}

fn matrix_cell(account: &AccountPage, region: &str) -> Markup {
    let cell = match account {
        AccountPage::Scanned { report, .. } => report.coverage.iter().find(|c| c.region == region),
        AccountPage::Unreachable { .. } => {
            return html! {
                td.cell.unreadable data-region=(region) data-state="unreadable" { "unreadable" }
            }
        }
    };
    match cell {
        // A check of one trail, or a region this account was not scanned in.
        None => {
            html! { td.cell.not-scanned data-region=(region) data-state="not-scanned" { "not scanned" } }
        }
        Some(cell) => {
            let word = cell.state.as_str();
            let names: Vec<String> = cell
                .trails
                .iter()
                .map(|arn| trail_label(arn, account.id()))
                .collect();
            html! {
                td.cell.(word) data-region=(region) data-state=(word) title=(cell.trails.join("\n")) {
                    @if names.is_empty() { (word) } @else { (names.join(", ")) }
                }
            }
        }
    }
}

fn evaluation_table(accounts: &[AccountPage]) -> Markup {
    html! {
        table #evaluations {
            thead {
                tr {
                    th { "Status" } th { "Severity" } th { "Account" } th { "Resource" }
                    th { "Region" } th { "Reasons" } th { "Fix" }
                }
            }
            tbody {
                @for account in accounts {
                    @for evaluation in worst_first(account.evaluations()) {
                        (evaluation_row(evaluation))
                    }
                }
            }
        }
    }
}

fn evaluation_row(evaluation: &Evaluation) -> Markup {
    let status = evaluation.status;
    let mut reasons: Vec<_> = evaluation.reasons.iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
    let mut fixes: Vec<String> = Vec::new();
    for reason in &reasons {
        if reason.level == Level::Info {
            continue;
        }
        if let Some(fix) = remedy(reason.code, evaluation) {
            if !fixes.contains(&fix) {
                fixes.push(fix);
            }
        }
    }
    let kind = evaluation.kind.as_str();
    html! {
        tr.evaluation data-status=(status.as_str()) data-kind=(kind)
            data-account=(evaluation.account_id) data-resource=(evaluation.resource_id)
            data-exempt=(evaluation.is_exempt()) {
            td { span.badge.(class_of(status)) { (status.as_str()) } }
            td { (evaluation.severity.as_str()) }
            td { (evaluation.account_id) }
            td {
                (resource_label(evaluation))
                @if evaluation.kind == EvaluationKind::Trail { br; span.arn { (evaluation.resource_id) } }
                @if let Some(exemption) = &evaluation.exemption {
                    br;
                    @if exemption.is_current() {
                        span.badge.exempt { "EXEMPT" } " " (exemption.reason)
                    } @else {
                        span.badge.expired { "EXEMPTION EXPIRED" } " " (exemption.reason)
                    }
                }
            }
            td { (evaluation.region) }
            td {
                @if reasons.is_empty() {
                    "—"
                } @else {
                    ul.reasons {
                        @for reason in &reasons {
                            li data-code=(reason.code.as_str()) data-level=(reason.level.as_str()) {
                                code { (reason.code.as_str()) }
                                @if reason.level == Level::Info { " (info)" }
                                ": " (reason.message)
                            }
                        }
                    }
                }
            }
            td.fix {
                @for fix in &fixes { p { (fix) } }
            }
        }
    }
}

fn exemption_table(exempt: &[&Evaluation]) -> Markup {
    html! {
        table #exemption-list {
            thead {
                tr { th { "Account" } th { "Trail" } th { "Reason" } th { "Until" } th { "State" } th { "Status" } }
            }
            tbody {
                @for evaluation in exempt {
                    @if let Some(exemption) = &evaluation.exemption {
                        tr data-resource=(evaluation.resource_id) {
                            td { (evaluation.account_id) }
                            td { (resource_label(evaluation)) }
                            td { (exemption.reason) }
                            td {
                                @match exemption.until {
                                    Some(until) => (until.to_string()),
                                    None => "no end date",
                                }
                            }
                            td.exemption-state { @if exemption.is_current() { "current" } @else { "expired" } }
                            td { span.badge.(class_of(evaluation.status)) { (evaluation.status.as_str()) } }
                        }
                    }
                }
            }
        }
    }
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 2rem 3rem; color: #1d232a; }
header { border-bottom: 1px solid #d0d7de; margin-bottom: 1rem; }
h1 { font-size: 1.6rem; margin: 1rem 0 .2rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; }
.meta, .help, #shown, .name, .arn { color: #57606a; }
.arn { font-size: .8rem; word-break: break-all; }
ul.counts { display: flex; gap: 1.5rem; list-style: none; padding: 0; font-size: 1.1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: .35rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; }
.badge { display: inline-block; border-radius: .25rem; padding: 0 .4rem; font-weight: 600; font-size: .8rem; color: #fff; }
.badge.pass { background: #1a7f37; } .badge.fail { background: #cf222e; }
.badge.warning { background: #9a6700; } .badge.error { background: #6e40c9; }
.badge.exempt { background: #57606a; } .badge.expired { background: #bc4c00; }
td.cell { text-align: center; font-size: .85rem; }
td.covered { background: #dafbe1; } td.uncovered { background: #ffebe9; }
td.unknown, td.unreadable { background: #fbefff; } td.not-scanned { background: #f6f8fa; color: #8c959f; }
ul.reasons { margin: 0; padding-left: 1rem; }
td.fix p { margin: 0 0 .4rem; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .8rem; }
form#filter label { margin-right: 1rem; }
tr[hidden] { display: none; }
"#;

/// Filters rows by status: the checkboxes and `#status=...` in the address say the same thing.
const SCRIPT: &str = r#"
(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll('#filter input[name=status]'));
  var rows = Array.prototype.slice.call(document.querySelectorAll('#evaluations tr.evaluation'));
  function apply() {
    var shown = {};
    boxes.forEach(function (b) { shown[b.value] = b.checked; });
    var visible = 0;
    rows.forEach(function (row) {
      row.hidden = !shown[row.dataset.status];
      if (!row.hidden) { visible += 1; }
    });
    document.getElementById('shown').textContent = visible + ' of ' + rows.length + ' evaluations shown.';
  }
  var known = boxes.map(function (b) { return b.value; });
  // #status=FAIL,ERROR, in any case, encoded or not; unknown words are ignored, and an
  // address that names no known status shows everything rather than nothing.
  function fromAddress() {
    var match = /(?:^#|&)status=([^&]*)/.exec(location.hash);
    if (!match) { return; }
    var text;
    try { text = decodeURIComponent(match[1]); } catch (e) { text = match[1]; }
    var wanted = text.toUpperCase().split(',').filter(function (w) { return known.indexOf(w) >= 0; });
    if (wanted.length === 0) { wanted = known; }
    boxes.forEach(function (b) { b.checked = wanted.indexOf(b.value) >= 0; });
  }
  boxes.forEach(function (b) {
    b.addEventListener('change', function () {
      var on = boxes.filter(function (x) { return x.checked; }).map(function (x) { return x.value; });
      history.replaceState(null, '', '#status=' + on.join(','));
      apply();
    });
  });
  window.addEventListener('hashchange', function () { fromAddress(); apply(); });
  fromAddress();
  apply();
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use trailwatch_core::evaluate::{Exemption, TrailSummary};
    use trailwatch_core::{Reason, ReasonCode, RegionCoverage, Severity};

    const ACCOUNT: &str = "111122223333";

    fn report() -> ScanReport {
        let reasons = vec![Reason::new(ReasonCode::CwlNotConfigured, "S3 only")];
        let exempt = Evaluation {
            kind: EvaluationKind::Trail,
            resource_id: format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/data<events>"),
            account_id: ACCOUNT.into(),
            region: "us-east-1".into(),
            status: Status::from_reasons(&reasons),
            severity: Severity::worst_of(&reasons),
            reasons,
            trail: Some(TrailSummary {
                name: "data<events>".into(),
                home_region: "us-east-1".into(),
                is_multi_region: false,
                is_organization_trail: false,
                log_group_arn: None,
                role_arn: None,
                is_logging: Some(true),
                log_file_validation_enabled: true,
                s3_bucket_name: Some("audit-bucket".into()),
            }),
            exemption: Some(Exemption {
                reason: "cost & volume".into(),
                until: None,
                expired: false,
            }),
        };
        let mut report = ScanReport::new(
            "2026-12-02T10:00:00Z".parse().unwrap(),
            ACCOUNT.into(),
            vec!["us-east-1".into(), "eu-west-1".into()],
            vec![exempt],
            40,
            120,
        );
        report.coverage = vec![
            RegionCoverage {
                region: "us-east-1".into(),
                state: CoverageState::Covered,
                trails: vec![format!(
                    "arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/audit"
                )],
            },
            RegionCoverage {
                region: "eu-west-1".into(),
                state: CoverageState::Uncovered,
                trails: vec![],
            },
        ];
        report
    }

    #[test]
    fn every_value_is_escaped_and_nothing_is_loaded() {
        let report = report();
        let page = render(
            &[AccountPage::Scanned {
                name: Some("<prod>"),
                report: &report,
            }],
            Utc::now(),
        );
        assert!(!page.contains("data<events>"), "a raw name in the page");
        assert!(page.contains("data&lt;events&gt;"));
        assert!(page.contains("cost &amp; volume"));
        assert!(page.contains("&lt;prod&gt;"));
        for external in ["<link", "src=", "@import", "url(", "http://", "https://"] {
            assert!(!page.contains(external), "the page loads {external}");
        }
    }

    #[test]
    fn the_matrix_names_the_covering_trail_and_marks_the_gaps() {
        let report = report();
        let page = render(
            &[AccountPage::Scanned {
                name: None,
                report: &report,
            }],
            Utc::now(),
        );
        assert!(page.contains(
            r#"<td class="cell covered" data-region="us-east-1" data-state="covered" title="arn:aws:cloudtrail:us-east-1:111122223333:trail/audit">audit</td>"#
        ), "{page}");
        assert!(page.contains(
            r#"<td class="cell uncovered" data-region="eu-west-1" data-state="uncovered" title="">uncovered</td>"#
        ), "{page}");
        assert!(page.contains("1 of 2 account-region cells have real-time coverage."));
    }

    #[test]
    fn another_accounts_organisation_trail_is_named_with_its_owner() {
        assert_eq!(
            trail_label(
                "arn:aws:cloudtrail:us-east-1:999988887777:trail/org",
                ACCOUNT
            ),
            "org (account 999988887777)"
        );
    }
}
