//! `db status`: per plugin and migration table, completed / pending / missing migrations, the lock and
//! the current version. Read-only.

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::knex::packages::MigrationTableSource;
use crate::migrations::source::{LoadedSource, files_for};
use crate::model::db::{DatabaseStatus, DbStatusReport, TableStatus};
use crate::render::{self, Style};

pub async fn run(
    databases: &Databases,
    plugins: &[String],
    source: Option<&LoadedSource>,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let report = status_report(
        databases,
        plugins,
        source.map(|s| s.name.clone()),
        source.map_or(&[][..], |s| &s.tables),
    )
    .await?;
    render::emit(&render::render(&report, style));
    Ok(if report.has_problems() {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

pub async fn status_report(
    databases: &Databases,
    plugins: &[String],
    source: Option<String>,
    sources: &[MigrationTableSource],
) -> Result<DbStatusReport, DbCommandError> {
    let targets = databases.selected(plugins).await?;
    let read = databases.read_all(&targets).await?;
    let has_source = source.is_some();
    let databases = read
        .into_iter()
        .map(|(target, tables)| DatabaseStatus {
            tables: tables
                .into_iter()
                .map(|(table, contents)| {
                    let files = if has_source {
                        files_for(sources, &target.plugin, &table.table)
                    } else {
                        None
                    };
                    TableStatus::new(
                        table.table.clone(),
                        &contents.rows,
                        contents.lock.as_deref(),
                        files,
                    )
                })
                .collect(),
            plugin: target.plugin,
            database: target.database,
            schema: target.schema,
        })
        .collect();
    Ok(DbStatusReport {
        kind: "DbStatus",
        source,
        databases,
    })
}
