//! `db list`: the plugin databases (or schemas) and their migration tables.

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::model::db::{DbList, ListedDatabase};
use crate::render::{self, Style};

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
