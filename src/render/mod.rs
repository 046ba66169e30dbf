//! Output: reports are values, rendered here as a table, a wide table, JSON or YAML. This module is the
//! only writer of stdout; a closed pipe (`| head`) ends the program quietly with success.

mod events;
mod health;
mod json;
mod messages;

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::model::text::escape_control;

pub use events::{EventRowPrinter, event_rows_table};
pub use messages::{error_lines, note, usage_error_lines};

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

    /// A borderless table in kubectl's manner; cells are escaped before they are added.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table.load_style(presets::NOTHING);
        table.set_header(header.iter().copied());
        match self.width {
            Some(width) => {
                table.set_content_arrangement(ContentArrangement::Dynamic);
                table.set_width(width);
            }
            None => {
                table.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 3));
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
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
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
