//! The table form of `events`, whole or row by row (`--watch`).

use jiff::Timestamp;

use super::{Color, Column, Style, cell, table_text};
use crate::model::events::{EventRow, EventsReport};
use crate::model::time::age;

impl super::Report for EventsReport {
    fn text(&self, style: &Style) -> String {
        if self.events.is_empty() {
            return format!("No events found in namespace {}.\n", self.namespace);
        }
        event_rows_table(&self.events, style, self.now)
    }
}

fn row_cells(row: &EventRow, style: &Style, now: Timestamp) -> Vec<String> {
    let type_ = if row.type_ == "Warning" {
        style.paint(&cell(&row.type_), Color::Yellow)
    } else {
        cell(&row.type_)
    };
    let mut cells = vec![
        row.last_seen
            .map(|t| age(t, now))
            .unwrap_or_else(|| "<unknown>".into()),
        type_,
        cell(&row.reason),
        cell(&row.object.display()),
        row.count.to_string(),
    ];
    if style.wide() {
        cells.push(
            row.first_seen
                .map(|t| age(t, now))
                .unwrap_or_else(|| "<unknown>".into()),
        );
        cells.push(cell(&row.source));
        cells.push(cell(&row.name));
    }
    cells.push(cell(&row.message));
    cells
}

/// The columns; only the message may wrap.
fn columns(style: &Style) -> Vec<Column<'static>> {
    let mut columns = vec![
        Column::whole("LAST SEEN"),
        Column::whole("TYPE"),
        Column::whole("REASON"),
        Column::whole("OBJECT"),
        Column::whole("COUNT"),
    ];
    if style.wide() {
        columns.extend([
            Column::whole("FIRST SEEN"),
            Column::whole("SOURCE"),
            Column::whole("NAME"),
        ]);
    }
    columns.push(Column::wrap("MESSAGE"));
    columns
}

/// The whole list as one table.
pub fn event_rows_table(rows: &[EventRow], style: &Style, now: Timestamp) -> String {
    let mut table = style.table_with(&columns(style));
    for row in rows {
        table.add_row(row_cells(row, style, now));
    }
    table_text(&table)
}

/// Prints rows one at a time with fixed columns, for `events --watch`.
pub struct EventRowPrinter {
    widths: Vec<usize>,
    style: Style,
}

impl EventRowPrinter {
    /// Column widths come from the rows already printed (and the header), as kubectl does.
    pub fn new(style: Style, seen: &[EventRow], now: Timestamp) -> EventRowPrinter {
        let mut widths: Vec<usize> = columns(&style).iter().map(|c| c.header.len()).collect();
        for row in seen {
            for (i, c) in row_cells(
                row,
                &Style {
                    color: false,
                    ..style
                },
                now,
            )
            .iter()
            .enumerate()
            {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        EventRowPrinter { widths, style }
    }

    pub fn line(&self, row: &EventRow, now: Timestamp) -> String {
        let plain = row_cells(
            row,
            &Style {
                color: false,
                ..self.style
            },
            now,
        );
        let painted = row_cells(row, &self.style, now);
        let last = plain.len() - 1;
        let mut line = String::new();
        for (i, (p, c)) in plain.iter().zip(&painted).enumerate() {
            line.push_str(c);
            if i < last {
                let pad = self.widths[i].saturating_sub(p.chars().count()) + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        line.push('\n');
        line
    }
}
