//! The table form of `verify`: one row per check. Details come from the portal's answers and are
//! escaped.

use super::{Color, Column, Report, Style, cell, table_text};
use crate::model::multi::{EnvironmentResult, PerEnvironment};
use crate::model::verify::{CheckStatus, VerifyReport};

impl Report for VerifyReport {
    fn text(&self, style: &Style) -> String {
        checks_text(
            &[EnvironmentResult::Done {
                environment: String::new(),
                report: self.clone(),
            }],
            false,
            style,
        )
    }
}

/// Several environments: one table with an ENVIRONMENT column; an environment that could not be
/// checked is one row saying why.
impl Report for PerEnvironment<VerifyReport> {
    fn text(&self, style: &Style) -> String {
        checks_text(&self.0, true, style)
    }
}

fn checks_text(parts: &[EnvironmentResult<VerifyReport>], several: bool, style: &Style) -> String {
    let mut columns = vec![
        Column::whole("CHECK"),
        Column::whole("STATUS"),
        Column::whole("LATENCY"),
        Column::wrap("DETAIL"),
    ];
    if style.wide() {
        columns.push(Column::wrap("PATH"));
    }
    if several {
        columns.insert(0, Column::whole("ENVIRONMENT"));
    }
    let mut table = style.table_with(&columns);
    for part in parts {
        let report = match part {
            EnvironmentResult::Done { report, .. } => report,
            EnvironmentResult::Failed { environment, error } => {
                let mut row = vec![
                    cell(environment),
                    "-".to_string(),
                    style.paint("error", Color::Red),
                    "-".to_string(),
                    cell(&format!("could not check this environment: {error}")),
                ];
                if style.wide() {
                    row.push(String::new());
                }
                table.add_row(row);
                continue;
            }
        };
        for check in &report.checks {
            let status = match check.status {
                CheckStatus::Pass => style.paint("pass", Color::Green),
                CheckStatus::Fail => style.paint("fail", Color::Red),
                CheckStatus::Skipped => style.paint("skipped", Color::Yellow),
            };
            let latency = check
                .latency_ms
                .map(|ms| format!("{ms}ms"))
                .unwrap_or_else(|| "-".to_string());
            let mut row = vec![cell(&check.name), status, latency, cell(&check.detail)];
            if style.wide() {
                row.push(cell(check.path.as_deref().unwrap_or("")));
            }
            if several {
                row.insert(0, cell(part.environment()));
            }
            table.add_row(row);
        }
    }
    table_text(&table)
}
