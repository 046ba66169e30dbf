//! `db list`: the plugin databases (or schemas) and their migration tables.

use serde::Serialize;

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::render::{self, Report, Style, cell, table_text};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DbList {
    kind: &'static str,
    host: String,
    databases: Vec<ListedDatabase>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedDatabase {
    plugin: String,
    database: String,
    schema: Option<String>,
    tables: Vec<String>,
}

impl Report for DbList {
    fn text(&self, style: &Style) -> String {
        if self.databases.is_empty() {
            return format!("No plugin databases found on {}.\n", self.host);
        }
        let mut table = style.table(&["PLUGIN", "DATABASE", "SCHEMA", "MIGRATION TABLES"]);
        for d in &self.databases {
            table.add_row(vec![
                cell(&d.plugin),
                cell(&d.database),
                cell(d.schema.as_deref().unwrap_or("-")),
                cell(&if d.tables.is_empty() {
                    "(none)".to_string()
                } else {
                    d.tables.join(", ")
                }),
            ]);
        }
        table_text(&table)
    }
}

pub async fn run(databases: &Databases, style: &Style) -> Result<Outcome, DbCommandError> {
    let targets = databases.plugins().await?;
    let read = databases.read_all(&targets).await?;
    let report = DbList {
        kind: "DbList",
        host: databases.settings.host.clone(),
        databases: read
            .into_iter()
            .map(|(t, tables)| ListedDatabase {
                tables: tables.into_iter().map(|(r, _)| r.table).collect(),
                plugin: t.plugin,
                database: t.database,
                schema: t.schema,
            })
            .collect(),
    };
    render::emit(&render::render(&report, style));
    Ok(Outcome::Ok)
}
