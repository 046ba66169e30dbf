//! `db current-version`: `knex migrate:currentVersion` for a plugin's migration tables.

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::knex::model::current_version;
use crate::model::db::{CurrentVersionReport, TableVersion};
use crate::render::{self, Style};

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
        return Err(DbCommandError::NoMigrationTable {
            plugin: plugin.to_string(),
            table: want.to_string(),
            database: Some(target.database),
            known: None,
        });
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
