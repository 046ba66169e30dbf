//! Output: reports are values, rendered here as a table, a wide table, JSON or YAML. This module is the
//! only writer of stdout; a closed pipe (`| head`) ends the program quietly with success.

pub mod db;
mod env;
mod events;
mod flux;
pub mod guided;
mod health;
mod json;
mod messages;
mod preflight;
mod report;
mod verify;
mod version;

use std::io::Write;

use comfy_table::{ColumnConstraint, ContentArrangement, Table, Width, presets};
use serde::Serialize;

use crate::model::text::escape_control;
use crate::options::OutputFormat;

pub use events::{EventRowPrinter, event_rows_table};
pub use flux::{flux_block, flux_lines, flux_notes};
pub use messages::{
    clear_progress, error, error_lines, init_logging, note, progress, question, usage_error_lines,
    warning,
};
pub use preflight::{preflight_line, preflight_progress};
pub use report::{report_progress, report_summary_text};

/// How to render: the format, and what the terminal allows.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub format: OutputFormat,
    pub color: bool,
    /// The terminal's width, when stdout is a terminal; tables then fit it.
    pub width: Option<u16>,
}

impl Style {
    /// The style for stdout: tables fit the terminal's width when stdout is one.
    pub fn for_stdout(format: OutputFormat, color: bool, stdout_is_terminal: bool) -> Style {
        Style {
            format,
            color,
            width: if stdout_is_terminal {
                Table::new().width()
            } else {
                None
            },
        }
    }

    pub fn wide(&self) -> bool {
        self.format == OutputFormat::Wide
    }

    /// Whether the output is text (a table or a wide table) rather than a JSON or YAML document.
    pub fn is_text(&self) -> bool {
        matches!(self.format, OutputFormat::Table | OutputFormat::Wide)
    }

    /// A borderless table in kubectl's manner whose columns are never wrapped or cut (names, counts,
    /// ages); cells are escaped before they are added. See [`Style::table_with`] for columns that may
    /// wrap.
    pub fn table(&self, header: &[&str]) -> Table {
        let columns: Vec<Column> = header.iter().map(|h| Column::whole(h)).collect();
        self.table_with(&columns)
    }

    /// A borderless table in kubectl's manner. On a terminal, only the [`Fit::Wrap`] columns are
    /// wrapped to fit its width, and only when that leaves each of them at least [`WRAP_MIN`]
    /// characters; otherwise the line runs long, as kubectl's does. [`Fit::Whole`] columns never
    /// wrap. Finish with [`table_text`].
    pub fn table_with(&self, columns: &[Column]) -> Table {
        let mut table = Table::new();
        table.load_style(presets::NOTHING);
        table.set_header(columns.iter().map(|c| c.header));
        match self.width {
            Some(width) => {
                table.set_content_arrangement(ContentArrangement::Dynamic);
                table.set_width(width);
            }
            None => {
                table.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        for (column, spec) in table.column_iter_mut().zip(columns) {
            column.set_padding((0, COLUMN_GAP));
            // The never-wrap marker; wrapping columns get their lower bound in `table_text`, once
            // their content is known.
            if spec.fit == Fit::Whole {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
        if let Some(last) = table.column_iter_mut().last() {
            last.set_padding((0, 0));
        }
        table
    }

    /// Colours `text` when colour is on (red for errors, yellow for warnings, green for good news).
    pub fn paint(&self, text: &str, color: Color) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match color {
            Color::Red => "31",
            Color::Yellow => "33",
            Color::Green => "32",
            Color::Dim => "2",
            Color::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// Spaces between columns.
const COLUMN_GAP: u16 = 3;

/// A wrapping column is never made narrower than this (or its content, when that is shorter): a
/// message wrapped into a sliver is worse than a line that runs long.
pub const WRAP_MIN: u16 = 30;

/// Whether a column may be wrapped to fit the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Never wrapped or cut: names and identifiers someone will copy, counts, ages, states.
    Whole,
    /// Wrapped to what the terminal has left: images, messages, hints.
    Wrap,
}

/// A table column: its header and whether it may wrap.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    pub header: &'a str,
    pub fit: Fit,
}

impl<'a> Column<'a> {
    pub fn whole(header: &'a str) -> Column<'a> {
        Column {
            header,
            fit: Fit::Whole,
        }
    }

    pub fn wrap(header: &'a str) -> Column<'a> {
        Column {
            header,
            fit: Fit::Wrap,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Color {
    Red,
    Yellow,
    Green,
    Dim,
    Bold,
}

/// A table's lines without the padding comfy-table leaves after the last column.
pub fn table_text(table: &Table) -> String {
    let mut text = String::new();
    for line in fitted(table).lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The table laid out for its width: wrapping columns keep at least [`WRAP_MIN`] characters, and
/// when the whole columns leave less than that, nothing wraps.
fn fitted(table: &Table) -> Table {
    let mut table = table.clone();
    let Some(width) = table
        .width()
        .filter(|_| matches!(table.content_arrangement(), ContentArrangement::Dynamic))
    else {
        return table;
    };
    let contents = table.column_max_content_widths();
    let mut needed: usize = 0;
    let mut bounds = Vec::new();
    for column in table.column_iter() {
        let content = contents.get(column.index).copied().unwrap_or(0);
        let shortest = if column.constraint() == Some(&ColumnConstraint::ContentWidth) {
            content
        } else {
            let shortest = content.min(WRAP_MIN);
            // comfy-table's bounds include the padding.
            bounds.push((column.index, shortest + column.padding_width()));
            shortest
        };
        needed += usize::from(shortest + column.padding_width());
    }
    if bounds.is_empty() || needed > usize::from(width) {
        table.set_content_arrangement(ContentArrangement::Disabled);
        return table;
    }
    for (index, lower) in bounds {
        if let Some(column) = table.column_mut(index) {
            column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(lower)));
        }
    }
    table
}

/// Cluster text made safe for a terminal.
pub fn cell(text: &str) -> String {
    escape_control(text)
}

/// A report that can be printed in every format.
pub trait Report: Serialize {
    /// The table (or wide table) form.
    fn text(&self, style: &Style) -> String;
}

/// Renders a report in the style's format.
pub fn render<R: Report>(report: &R, style: &Style) -> String {
    match style.format {
        OutputFormat::Table | OutputFormat::Wide => report.text(style),
        OutputFormat::Json => json(report),
        OutputFormat::Yaml => yaml(report),
    }
}

/// A value as JSON, or as YAML when that is the format (for documents without a table form).
pub fn render_value<T: Serialize>(value: &T, style: &Style) -> String {
    match style.format {
        OutputFormat::Yaml => yaml(value),
        _ => json(value),
    }
}

pub fn json<T: Serialize>(value: &T) -> String {
    json::to_pretty_string(value)
}

pub fn yaml<T: Serialize>(value: &T) -> String {
    serde_norway::to_string(value).expect("reports serialize")
}

/// Writes to stdout. Returns `false` when the reader has gone away (a closed pipe), so callers stop.
pub fn emit(text: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => false,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            false
        }
    }
}

/// Clears a terminal screen before a redraw (`--watch`).
pub const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

#[cfg(test)]
mod tests {
    use super::*;

    fn style(width: u16) -> Style {
        Style {
            format: OutputFormat::Table,
            color: false,
            width: Some(width),
        }
    }

    const NAME: &str = "backstage-pr-1234-5b7c9d8f6d-wq9rt";
    const MESSAGE: &str = "Back-off restarting failed container backstage in pod backstage-pr-1234";

    fn text(width: u16) -> String {
        let mut table = style(width).table_with(&[Column::whole("POD"), Column::wrap("MESSAGE")]);
        table.add_row(vec![NAME, MESSAGE]);
        table_text(&table)
    }

    #[test]
    fn only_the_wrapping_column_wraps_when_there_is_room() {
        let out = text(80);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].starts_with(&format!("{NAME}   Back-off")), "{out}");
        assert!(lines.len() > 2, "the message wraps: {out}");
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{out}");
    }

    #[test]
    fn nothing_wraps_when_the_names_leave_too_little_room() {
        // 34 + 3 for the name leaves 23 < WRAP_MIN: the line runs long instead.
        let out = text(60);
        assert_eq!(
            out,
            format!("POD{}MESSAGE\n{NAME}   {MESSAGE}\n", " ".repeat(NAME.len()))
        );
    }

    #[test]
    fn plain_tables_never_wrap() {
        let mut table = style(20).table(&["PLUGIN", "DATABASE"]);
        table.add_row(vec!["catalog", "backstage_plugin_catalog"]);
        assert_eq!(
            table_text(&table),
            "PLUGIN    DATABASE\ncatalog   backstage_plugin_catalog\n"
        );
    }
}
