//! Terminal output: the results table and the progress spinner, and the order and labels
//! that the table and the HTML report share.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;
use trailwatch_core::{Evaluation, EvaluationKind, Level, ScanReport, Status};

/// A spinner on stderr while the scan runs; hidden when stderr is not a terminal, so logs and
/// pipes stay clean.
pub fn spinner(visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message("scanning trails, log groups and roles…");
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn status_rank(status: Status) -> u8 {
    match status {
        Status::Fail => 0,
        Status::Error => 1,
        Status::Warning => 2,
        Status::Pass => 3,
    }
}

/// The worst verdicts first; within a status, trails before regions before the account.
pub fn worst_first<'e>(
    evaluations: impl IntoIterator<Item = &'e Evaluation>,
) -> Vec<&'e Evaluation> {
    let mut rows: Vec<_> = evaluations.into_iter().collect();
    rows.sort_by_key(|e| {
        (
            status_rank(e.status),
            e.kind != EvaluationKind::Trail,
            e.kind == EvaluationKind::Account,
        )
    });
    rows
}

/// What an evaluation is about, in two or three words.
pub fn resource_label(evaluation: &Evaluation) -> String {
    match (&evaluation.kind, &evaluation.trail) {
        (EvaluationKind::Trail, Some(trail)) => format!("trail {}", trail.name),
        (EvaluationKind::Region, _) => format!("region {}", evaluation.region),
        (EvaluationKind::Monitor, _) => format!("trailwatch {}", evaluation.resource_id),
        _ => format!("account {}", evaluation.account_id),
    }
}

/// A table of the report.
pub fn table(report: &ScanReport, width: Option<u16>) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["Status", "Severity", "Resource", "Region", "Reasons"]);
    if let Some(width) = width {
        table.set_width(width);
    }
    for evaluation in worst_first(&report.evaluations) {
        let resource = resource_label(evaluation);
        let exemption = evaluation
            .exemption
            .as_ref()
            .filter(|e| e.is_current())
            .map(|e| format!("(exempt) {}", e.describe()));
        let reasons = if evaluation.reasons.is_empty() {
            exemption.unwrap_or_else(|| "—".to_string())
        } else {
            // What changes the status first; notes for the record last.
            let mut reasons: Vec<_> = evaluation.reasons.iter().collect();
            reasons.sort_by_key(|r| std::cmp::Reverse(r.level));
            reasons
                .into_iter()
                .map(|r| {
                    let marker = if r.level == Level::Info {
                        "(info) "
                    } else {
                        ""
                    };
                    format!("{marker}{}: {}", r.code, r.message)
                })
                .chain(exemption)
                .collect::<Vec<_>>()
                .join("\n")
        };
        table.add_row([
            Cell::new(evaluation.status),
            Cell::new(evaluation.severity),
            Cell::new(resource),
            Cell::new(&evaluation.region),
            Cell::new(reasons),
        ]);
    }
    let s = &report.summary;
    format!(
        "{table}\nAccount {} · {} region(s) · {} PASS, {} FAIL, {} WARNING, {} ERROR · {} API calls · {} ms",
        report.account_id,
        report.regions.len(),
        s.pass,
        s.fail,
        s.warning,
        s.error,
        report.api_calls,
        report.duration_ms
    )
}
