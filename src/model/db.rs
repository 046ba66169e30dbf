//! The reports of the `db` commands, as data: the commands fill them in, `render::db` prints them as
//! tables and text, and their JSON and YAML are their serde form. Pure: no I/O.

use std::path::PathBuf;

use serde::Serialize;

use crate::knex::model::{LockRow, LockState, MigrationRow, MigrationStatus};
use crate::knex::packages::MigrationTableSource;
use crate::knex::plan::TablePlan;

/// `db list`: the plugin databases (or schemas) and their migration tables.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbList {
    pub kind: &'static str,
    pub host: String,
    pub databases: Vec<ListedDatabase>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedDatabase {
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
    pub tables: Vec<String>,
}

/// `db current-version`: `knex migrate:currentVersion` per migration table of one plugin.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentVersionReport {
    pub kind: &'static str,
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
    pub tables: Vec<TableVersion>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableVersion {
    pub table: String,
    pub current_version: String,
}

/// `db status`: per plugin and migration table, the migrations, the lock and the current version.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStatusReport {
    pub kind: &'static str,
    /// `dir:/path`, or `null` when no migration files were given.
    pub source: Option<String>,
    pub databases: Vec<DatabaseStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
    pub tables: Vec<TableStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    pub table: String,
    /// Whether Knex would find the lock held (Backstage would fail with "Migration table is already
    /// locked").
    pub locked: bool,
    pub lock: LockState,
    /// Which package's files the table was compared with (`name@version/folder`), if any.
    pub files_from: Option<String>,
    /// The first Backstage release that shipped that package version, when the release data knows
    /// it. (Which release introduced each migration is not known: that needs the files of every older
    /// version of the package.)
    pub files_release: Option<String>,
    #[serde(flatten)]
    pub status: MigrationStatus,
    /// The error Backstage would stop with, when migrations are missing.
    pub corrupt_directory_error: Option<String>,
}

impl TableStatus {
    pub fn new(
        table: String,
        rows: &[MigrationRow],
        lock: Option<&[LockRow]>,
        files: Option<&MigrationTableSource>,
    ) -> TableStatus {
        let status = match files {
            Some(source) => MigrationStatus::new(&source.files, rows),
            None => MigrationStatus::database_only(rows),
        };
        let lock = LockState::from_rows(lock);
        TableStatus {
            table,
            locked: lock.blocks_migrations(),
            lock,
            files_from: files.map(describe_files),
            files_release: files.and_then(|f| {
                crate::model::release::ReleaseData::embedded()
                    .first_release_of(&f.package, &f.version)
                    .map(str::to_string)
            }),
            corrupt_directory_error: status.corrupt_directory_message(),
            status,
        }
    }

    pub fn has_problems(&self) -> bool {
        self.locked || !self.status.is_in_sync()
    }
}

fn describe_files(source: &MigrationTableSource) -> String {
    if source.package.is_empty() {
        source.folder.clone()
    } else {
        format!("{}@{}/{}", source.package, source.version, source.folder)
    }
}

impl DbStatusReport {
    pub fn has_problems(&self) -> bool {
        self.databases
            .iter()
            .flat_map(|d| &d.tables)
            .any(TableStatus::has_problems)
    }
}

/// `db plan --to SOURCE`: what deploying another version's files means for every plugin database.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbPlanReport {
    pub kind: &'static str,
    /// The files the plan moves to (`dir:/path`, `pod:NAME`).
    pub to: String,
    pub rollback_needed: bool,
    pub databases: Vec<DatabasePlan>,
    /// One per migration to run that cannot be rolled back (its `down()` is empty, missing or only
    /// throws), and one if that could not be checked.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabasePlan {
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
    pub tables: Vec<TablePlan>,
    /// Migration tables the target has no files for (its version does not ship that plugin or module).
    pub not_in_target: Vec<String>,
}

/// `db rollback`: the plan, then what was and was not undone (read back from the database).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    pub kind: &'static str,
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
    pub table: String,
    /// Where Knex runs: `pod:NAME` or `dir:/path`.
    pub runner: String,
    /// The same place in detail, for the printed plan.
    #[serde(skip)]
    pub knex_place: KnexPlace,
    pub dry_run: bool,
    /// The migrations to undo, in the order they are undone (most recent first).
    pub plan: Vec<String>,
    pub undone: Vec<String>,
    pub not_undone: Vec<String>,
    pub error: Option<String>,
    /// The lock after the run (Knex releases it; so does this command if Knex could not).
    pub lock_released: bool,
    pub status: Option<TableStatus>,
}

/// Where Knex runs the down() of a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnexPlace {
    /// In a container of a running pod, from its working directory.
    Pod {
        pod: String,
        container: String,
        cwd: String,
    },
    /// From a local folder whose `node_modules` has knex.
    Local { cwd: PathBuf },
}

/// `db unlock`: the locks to release, then what was and was not released.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnlockReport {
    pub kind: &'static str,
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
    pub dry_run: bool,
    /// The locks that block migrations, in the order they are released.
    pub plan: Vec<LockEntry>,
    pub released: Vec<ReleasedLock>,
    /// Locks another session freed between the plan and their release: left alone.
    pub already_free: Vec<LockEntry>,
    /// Locks of the plan not released because the command stopped.
    pub not_released: Vec<LockEntry>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    pub table: String,
    pub lock_table: String,
    pub state: LockState,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleasedLock {
    pub table: String,
    pub lock_table: String,
    /// The lock's state before it was released (read under the row lock).
    pub was: LockState,
}
