//! `db current-version`: `knex migrate:currentVersion` for a plugin's migration tables.

use serde::Serialize;

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::knex::model::current_version;
use crate::render::{self, Report, Style, cell, table_text};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CurrentVersionReport {
    kind: &'static str,
    plugin: String,
    database: String,
    schema: Option<String>,
    tables: Vec<TableVersion>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TableVersion {
    table: String,
    current_version: String,
}

impl Report for CurrentVersionReport {
    fn text(&self, style: &Style) -> String {
        // One table: just the version, as knex prints it, for scripts.
        if let [only] = self.tables.as_slice() {
            return format!("{}\n", cell(&only.current_version));
        }
        let mut table = style.table(&["TABLE", "CURRENT VERSION"]);
        for t in &self.tables {
            table.add_row(vec![cell(&t.table), cell(&t.current_version)]);
        }
        table_text(&table)
    }
}

pub async fn run(
    databases: &Databases,
    plugin: &str,
    table: Option<&str>,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let targets = databases.selected(&[plugin.to_string()]).await?;
    let (target, tables) = databases
        .read_all(&targets)
        .await?
        .pop()
        .expect("one plugin selected");
    let mut versions: Vec<TableVersion> = tables
        .into_iter()
        .filter(|(t, _)| table.is_none_or(|want| t.table == want))
        .map(|(t, contents)| TableVersion {
            table: t.table,
            current_version: current_version(&contents.rows),
        })
        .collect();
    if let Some(want) = table
        && versions.is_empty()
    {
        return Err(DbCommandError::Refused(format!(
            "plugin {plugin:?} has no migration table {want:?} in {}",
            target.database
        )));
    }
    if versions.is_empty() {
        // No migration table at all: knex would say `none`.
        versions.push(TableVersion {
            table: "knex_migrations".into(),
            current_version: "none".into(),
        });
    }
    let report = CurrentVersionReport {
        kind: "CurrentVersion",
        plugin: target.plugin,
        database: target.database,
        schema: target.schema,
        tables: versions,
    };
    render::emit(&render::render(&report, style));
    Ok(Outcome::Ok)
}
