//! The table form of `verify`: one row per check. Details come from the portal's answers and are
//! escaped.

use super::{Color, Column, Report, Style, cell, table_text};
use crate::model::verify::{CheckStatus, VerifyReport};

impl Report for VerifyReport {
    fn text(&self, style: &Style) -> String {
        let mut columns = vec![
            Column::whole("CHECK"),
            Column::whole("STATUS"),
            Column::whole("LATENCY"),
            Column::wrap("DETAIL"),
        ];
        if style.wide() {
            columns.push(Column::wrap("PATH"));
        }
        let mut table = style.table_with(&columns);
        for check in &self.checks {
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
            table.add_row(row);
        }
        table_text(&table)
    }
}
