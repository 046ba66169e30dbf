//! The output of `report`: its summary as a table (and `summary.txt` in the bundle, the same table
//! without terminal styling), and one progress line per part on stderr.

use super::{Color, Column, Report, Style, cell, table_text};
use crate::model::report::{Part, PartStatus, ReportSummary};
use crate::options::OutputFormat;

impl Report for ReportSummary {
    fn text(&self, style: &Style) -> String {
        let mut text = parts_table(self, style);
        text.push_str(&format!(
            "wrote {} ({} collected, {} missing)\n",
            cell(&self.archive),
            self.collected,
            self.missing
        ));
        text
    }
}

fn status_word(part: &Part) -> &'static str {
    match part.status {
        PartStatus::Collected => "collected",
        PartStatus::Missing => "missing",
    }
}

fn parts_table(summary: &ReportSummary, style: &Style) -> String {
    let mut table = style.table_with(&[
        Column::whole("PART"),
        Column::whole("STATUS"),
        Column::wrap("REASON"),
    ]);
    for part in &summary.parts {
        let status = match part.status {
            PartStatus::Collected => status_word(part).to_string(),
            PartStatus::Missing => style.paint(status_word(part), Color::Yellow),
        };
        let reason = part
            .reason
            .as_deref()
            .or(part.note.as_deref())
            .unwrap_or("");
        table.add_row(vec![cell(&part.file), status, cell(reason)]);
    }
    table_text(&table)
}

/// `summary.txt`: who, where and when, then the parts, in plain text.
pub fn report_summary_text(summary: &ReportSummary) -> String {
    let plain = Style {
        format: OutputFormat::Table,
        color: false,
        width: None,
    };
    let mut text = format!(
        "kubectl backstage report\ncreated:     {}\nenvironment: {}\ncontext:     {}\nnamespace:   {}\nsince:       {}\nparts:       {} collected, {} missing\n\n",
        summary.created_at,
        cell(summary.environment.as_deref().unwrap_or("(none)")),
        cell(&summary.context),
        cell(&summary.namespace),
        summary
            .since_seconds
            .map(|s| format!("{s}s"))
            .unwrap_or_else(|| "(everything)".into()),
        summary.collected,
        summary.missing
    );
    text.push_str(&parts_table(summary, &plain));
    text
}

/// One line on stderr as a part is gathered: `report: health.json collected`, or `missing: <reason>`.
pub fn report_progress(part: &Part) {
    let line = match (&part.status, &part.reason) {
        (PartStatus::Missing, Some(reason)) => {
            format!("report: {} missing: {reason}", part.file)
        }
        _ => format!("report: {} {}", part.file, status_word(part)),
    };
    eprintln!("{}", cell(&line));
}
