//! The Knex migrator's decisions, reproduced without a database: which files are migrations, which
//! are completed, pending or missing, the current version, the state of the migration lock, and what
//! `migrate:down` / `migrate:rollback` (and our `--to NAME`) would undo.
//!
//! Everything here follows knex 3.x (`lib/migrations/migrate/Migrator.js`, `table-creator.js`,
//! `migration-list-resolver.js`, `sources/fs-migrations.js`). Where Knex compares strings it uses
//! JavaScript's `<`, which orders by UTF-16 code units; [`js_string_cmp`] does the same.

use std::cmp::Ordering;
use std::collections::HashSet;

use jiff::Timestamp;
use serde::Serialize;

/// The table Knex keeps its migrations in unless told otherwise.
pub const DEFAULT_MIGRATION_TABLE: &str = "knex_migrations";

/// The extensions Knex loads by default (`DEFAULT_LOAD_EXTENSIONS`). `.d.ts` counts as `.ts`.
pub const DEFAULT_LOAD_EXTENSIONS: [&str; 9] = [
    ".co",
    ".coffee",
    ".eg",
    ".iced",
    ".js",
    ".cjs",
    ".litcoffee",
    ".ls",
    ".ts",
];

/// What Knex's `_lockMigrations` throws when it cannot take the lock.
pub const LOCKED_MESSAGE: &str = "Migration table is already locked";

/// The prefix of the error Knex throws when completed migrations have no file.
pub const CORRUPT_DIRECTORY_PREFIX: &str =
    "The migration directory is corrupt, the following files are missing: ";

/// The lock table Knex pairs with a migration table (`getLockTableName`).
pub fn lock_table_name(migration_table: &str) -> String {
    format!("{migration_table}_lock")
}

/// Orders two strings as JavaScript's `<` does: by UTF-16 code units, not by code points.
pub fn js_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Node's `path.extname` for a bare file name: from the last `.`, unless that dot starts the name.
fn extname(file: &str) -> &str {
    match file.rfind('.') {
        None | Some(0) => "",
        Some(_) if file == ".." => "",
        Some(dot) => &file[dot..],
    }
}

/// How Knex's file-system migration source reads its folders (`FsMigrations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Extensions (with the dot) that make a file a migration.
    pub load_extensions: Vec<String>,
    /// Sort each folder on its own and keep the folders in order, instead of one sort over all.
    pub sort_dirs_separately: bool,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            load_extensions: DEFAULT_LOAD_EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
            sort_dirs_separately: false,
        }
    }
}

/// The migrations Knex finds in one folder's listing, with its defaults, in the order it runs them.
///
/// Names are matched by extension only, exactly as `path.extname` gives it: `README.md` and
/// `index.json` are skipped, `types.d.ts` is taken. Sub-folders are listed by `readdir` too and
/// are skipped only because they usually have no extension.
pub fn migration_files<S: AsRef<str>>(listing: &[S]) -> Vec<String> {
    migration_files_in_folders(&[listing], &LoaderOptions::default())
}

/// The migrations Knex finds in several folders (a `directory` array), in the order it runs them.
///
/// Without `sort_dirs_separately`, every file is sorted together by its file name alone
/// (`lodash.sortBy(…, 'file')`, stable); with it, each folder is sorted and the folders follow one
/// another. The extension filter comes after the sort in both cases.
pub fn migration_files_in_folders<S: AsRef<str>>(
    folders: &[&[S]],
    options: &LoaderOptions,
) -> Vec<String> {
    let mut files: Vec<&str> = Vec::new();
    for folder in folders {
        let mut names: Vec<&str> = folder.iter().map(AsRef::as_ref).collect();
        if options.sort_dirs_separately {
            names.sort_by(|a, b| js_string_cmp(a, b));
        }
        files.extend(names);
    }
    if !options.sort_dirs_separately {
        files.sort_by(|a, b| js_string_cmp(a, b));
    }
    files
        .into_iter()
        .filter(|f| options.load_extensions.iter().any(|e| e == extname(f)))
        .map(str::to_string)
        .collect()
}

/// One row of a Knex migration table (`id, name, batch, migration_time`).
///
/// `name` and `batch` are nullable columns; Knex itself never writes NULL. An adapter should read a
/// NULL name as the empty string, which is how JavaScript joins it into the corrupt-directory message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRow {
    pub id: i32,
    pub name: String,
    pub batch: Option<i32>,
    pub migration_time: Option<Timestamp>,
}

/// A completed migration as `db status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedMigration {
    pub name: String,
    pub batch: Option<i32>,
    pub migrated_at: Option<Timestamp>,
}

impl From<&MigrationRow> for CompletedMigration {
    fn from(row: &MigrationRow) -> Self {
        CompletedMigration {
            name: row.name.clone(),
            batch: row.batch,
            migrated_at: row.migration_time,
        }
    }
}

/// One migration table held against the migration files of the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Every row of the table, in id order (the order they were applied), missing ones included.
    pub completed: Vec<CompletedMigration>,
    /// Files with no row, in the order Knex would run them.
    pub pending: Vec<String>,
    /// Rows with no file, in id order: the database is ahead of the code.
    pub missing: Vec<String>,
    /// As `knex migrate:currentVersion` prints it.
    pub current_version: String,
}

impl MigrationStatus {
    /// Compares the rows with the migration files (as [`migration_files`] returns them).
    pub fn new(files: &[String], rows: &[MigrationRow]) -> Self {
        let rows = rows_in_id_order(rows);
        MigrationStatus {
            completed: rows.iter().map(|r| CompletedMigration::from(*r)).collect(),
            pending: pending_migrations(files, &rows),
            missing: missing_migrations(files, &rows),
            current_version: current_version(&rows),
        }
    }

    /// What can be said with no files at hand: the rows and the current version, nothing pending
    /// or missing.
    pub fn database_only(rows: &[MigrationRow]) -> Self {
        let rows = rows_in_id_order(rows);
        MigrationStatus {
            completed: rows.iter().map(|r| CompletedMigration::from(*r)).collect(),
            pending: Vec::new(),
            missing: Vec::new(),
            current_version: current_version(&rows),
        }
    }

    /// Nothing pending and nothing missing.
    pub fn is_in_sync(&self) -> bool {
        self.pending.is_empty() && self.missing.is_empty()
    }

    /// The error Knex throws for this table before it migrates, lists or rolls back, if any.
    pub fn corrupt_directory_message(&self) -> Option<String> {
        corrupt_directory_message(&self.missing)
    }
}

fn rows_in_id_order(rows: &[impl std::borrow::Borrow<MigrationRow>]) -> Vec<&MigrationRow> {
    let mut sorted: Vec<&MigrationRow> = rows.iter().map(|r| r.borrow()).collect();
    sorted.sort_by_key(|r| r.id);
    sorted
}

/// Files that have no row, in file order (`getNewMigrations`: an exact match on the file name).
pub fn pending_migrations(
    files: &[String],
    rows: &[impl std::borrow::Borrow<MigrationRow>],
) -> Vec<String> {
    let done: HashSet<&str> = rows.iter().map(|r| r.borrow().name.as_str()).collect();
    files
        .iter()
        .filter(|f| !done.contains(f.as_str()))
        .cloned()
        .collect()
}

/// Rows that have no file, in id order, one entry per row (`getMissingMigrations`).
pub fn missing_migrations(
    files: &[String],
    rows: &[impl std::borrow::Borrow<MigrationRow>],
) -> Vec<String> {
    let present: HashSet<&str> = files.iter().map(String::as_str).collect();
    rows_in_id_order(rows)
        .into_iter()
        .filter(|r| !present.contains(r.name.as_str()))
        .map(|r| r.name.clone())
        .collect()
}

/// The error text Knex throws when completed migrations have no file, or `None` if none is missing.
pub fn corrupt_directory_message(missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| format!("{CORRUPT_DIRECTORY_PREFIX}{}", missing.join(", ")))
}

/// `knex migrate:currentVersion`: the largest part of a completed name before its first `_`,
/// compared as strings (so `9` beats `10`), or `none` when the table is empty.
pub fn current_version(rows: &[impl std::borrow::Borrow<MigrationRow>]) -> String {
    rows.iter()
        .map(|r| version_of(&r.borrow().name))
        .max_by(|a, b| js_string_cmp(a, b))
        .map_or_else(|| "none".to_string(), str::to_string)
}

fn version_of(name: &str) -> &str {
    name.split('_').next().unwrap_or(name)
}

/// One row of a Knex lock table (`index, is_locked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRow {
    pub index: i32,
    pub is_locked: Option<i32>,
}

/// The state of a migration table's `_lock` table, and whether Knex could take the lock.
///
/// Knex first makes sure both tables exist and inserts one free row into an empty lock table; then it
/// runs `UPDATE … SET is_locked = 1 WHERE is_locked = 0` and wants exactly one row changed, else it
/// throws [`LOCKED_MESSAGE`]. After a run it sets `is_locked = 0` on every row.
/// `knex migrate:unlock` deletes every row and inserts one free row, when the table exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum LockState {
    /// No lock table: Knex creates it with one free row, then locks.
    TableMissing,
    /// The table has no row: Knex inserts a free row, then locks.
    NoRows,
    /// One row with `is_locked = 0`.
    Free,
    /// One row with `is_locked = 1`: a migration is running, or one crashed while holding it.
    Held,
    /// Several rows, a NULL or another value. Knex can lock only when exactly one row is 0; a NULL
    /// never matches, and two free rows fail as "already locked" though nobody holds them.
    #[serde(rename_all = "camelCase")]
    Irregular { rows: usize, free_rows: usize },
}

impl LockState {
    /// Classifies the lock table's rows; `None` when the table does not exist.
    pub fn from_rows(rows: Option<&[LockRow]>) -> Self {
        let Some(rows) = rows else {
            return LockState::TableMissing;
        };
        match rows {
            [] => LockState::NoRows,
            [
                LockRow {
                    is_locked: Some(0), ..
                },
            ] => LockState::Free,
            [
                LockRow {
                    is_locked: Some(1), ..
                },
            ] => LockState::Held,
            _ => LockState::Irregular {
                rows: rows.len(),
                free_rows: rows.iter().filter(|r| r.is_locked == Some(0)).count(),
            },
        }
    }

    /// Whether `migrate:latest`, `migrate:down` or `migrate:rollback` would get the lock.
    pub fn knex_can_lock(&self) -> bool {
        match self {
            LockState::TableMissing | LockState::NoRows | LockState::Free => true,
            LockState::Held => false,
            LockState::Irregular { free_rows, .. } => *free_rows == 1,
        }
    }

    /// Whether Backstage would fail to migrate with "Migration table is already locked".
    pub fn blocks_migrations(&self) -> bool {
        !self.knex_can_lock()
    }
}

/// What to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "camelCase")]
pub enum RollbackTarget {
    /// `knex migrate:down [NAME]`: the named completed migration, or without a name the completed
    /// migration whose *file* sorts last (not the one applied last).
    Down(Option<String>),
    /// `knex migrate:rollback`: every row of the highest batch, highest id first.
    LastBatch,
    /// `knex migrate:rollback --all`: every completed migration, in reverse *file* order.
    All,
    /// Every migration applied after NAME (by id), most recent first; NAME stays applied.
    To(String),
}

/// One migration to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStep {
    pub name: String,
    pub id: i32,
    pub batch: Option<i32>,
}

/// The migrations a rollback undoes, in the order it undoes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPlan {
    pub target: RollbackTarget,
    /// The batch number Knex prints ("Batch N rolled back…"): the highest batch in the table, or 0.
    pub batch: i32,
    pub steps: Vec<RollbackStep>,
}

impl RollbackPlan {
    /// The names in the order they are undone.
    pub fn names(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.name.as_str()).collect()
    }
}

/// Why a rollback cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// Knex validates the whole list before any down: one completed migration without its file fails
    /// every rollback, whichever migration it would undo.
    #[error(
        "knex would refuse: {}; roll back with the files of the version that applied them",
        corrupt_directory_message(.missing).unwrap_or_default()
    )]
    DirectoryCorrupt { missing: Vec<String> },
    /// The named migration has no row (`Migration "NAME" was not run.` in Knex).
    #[error("migration {name:?} was not run; see `db status` for the completed ones")]
    NotCompleted { name: String },
}

/// Plans a rollback of one migration table against the files that applied it.
pub fn rollback_plan(
    files: &[String],
    rows: &[MigrationRow],
    target: &RollbackTarget,
) -> Result<RollbackPlan, RollbackError> {
    let rows = rows_in_id_order(rows);
    let missing = missing_migrations(files, &rows);
    if !missing.is_empty() {
        return Err(RollbackError::DirectoryCorrupt { missing });
    }
    let last_row_named = |name: &str| rows.iter().rev().find(|r| r.name == name).copied();
    let step_for = |row: &MigrationRow| RollbackStep {
        name: row.name.clone(),
        id: row.id,
        batch: row.batch,
    };
    // `completedMigrations` in Knex: the files that have a row, in file order.
    let completed_files: Vec<&MigrationRow> =
        files.iter().filter_map(|f| last_row_named(f)).collect();

    let steps = match target {
        RollbackTarget::Down(Some(name)) => {
            let row = completed_files
                .iter()
                .find(|r| &r.name == name)
                .ok_or_else(|| RollbackError::NotCompleted { name: name.clone() })?;
            vec![step_for(row)]
        }
        RollbackTarget::Down(None) => completed_files
            .last()
            .map(|r| step_for(r))
            .into_iter()
            .collect(),
        RollbackTarget::LastBatch => match rows.iter().filter_map(|r| r.batch).max() {
            Some(last) => rows
                .iter()
                .rev()
                .filter(|r| r.batch == Some(last))
                .map(|r| step_for(r))
                .collect(),
            None => Vec::new(),
        },
        RollbackTarget::All => completed_files.iter().rev().map(|r| step_for(r)).collect(),
        RollbackTarget::To(name) => {
            let keep = last_row_named(name)
                .ok_or_else(|| RollbackError::NotCompleted { name: name.clone() })?;
            // Each step is a `migrate:down NAME`, which deletes every row of that name: undo a name
            // once, at its most recent row.
            let mut seen = HashSet::new();
            rows.iter()
                .rev()
                .filter(|r| r.id > keep.id && r.name != *name)
                .filter(|r| seen.insert(r.name.as_str()))
                .map(|r| step_for(r))
                .collect()
        }
    };
    Ok(RollbackPlan {
        target: target.clone(),
        batch: rows.iter().filter_map(|r| r.batch).max().unwrap_or(0),
        steps,
    })
}

/// The completed migration a user means: the exact name, else the name with `.js` added.
pub fn completed_migration_name<'a>(rows: &'a [MigrationRow], input: &str) -> Option<&'a str> {
    let with_js = format!("{input}.js");
    rows.iter()
        .find(|r| r.name == input)
        .or_else(|| rows.iter().find(|r| r.name == with_js))
        .map(|r| r.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i32, name: &str, batch: i32) -> MigrationRow {
        MigrationRow {
            id,
            name: name.to_string(),
            batch: Some(batch),
            migration_time: Some(
                Timestamp::from_second(1_700_000_000 + i64::from(id)).expect("valid time"),
            ),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const INIT: &str = "20200511113813_init.js";
    const LOG: &str = "20200520140700_location_update_log_table.js";
    const NDISTINCT: &str = "20260904000000_fix_search_entity_id_ndistinct.js";
    const MAINT: &str = "20260912000000_refresh_state_maintenance.js";

    #[test]
    fn migration_files_keep_knex_extensions_sorted_by_utf16() {
        let listing = [
            "b_second.js",
            "README.md",
            "a_first.cjs",
            "types.d.ts",
            ".eslintrc.js",
            ".js",
            "scheduler",
            "z.json",
            "B_upper.coffee",
            "\u{1F600}.js",
            "\u{FFFD}.js",
            "c.mjs",
            "d.",
        ];
        assert_eq!(
            migration_files(&listing),
            names(&[
                ".eslintrc.js",
                "B_upper.coffee",
                "a_first.cjs",
                "b_second.js",
                "types.d.ts",
                "\u{1F600}.js",
                "\u{FFFD}.js",
            ])
        );
    }

    #[test]
    fn folders_sorted_together_or_separately() {
        let first = ["2_b.js", "1_a.js"];
        let second = ["0_c.js", "3_d.js"];
        let together = migration_files_in_folders(&[&first, &second], &LoaderOptions::default());
        assert_eq!(together, names(&["0_c.js", "1_a.js", "2_b.js", "3_d.js"]));
        let separately = migration_files_in_folders(
            &[&first, &second],
            &LoaderOptions {
                sort_dirs_separately: true,
                ..LoaderOptions::default()
            },
        );
        assert_eq!(separately, names(&["1_a.js", "2_b.js", "0_c.js", "3_d.js"]));
    }

    #[test]
    fn extname_matches_node() {
        for (name, ext) in [
            (".js", ""),
            ("..js", ".js"),
            ("...", "."),
            ("..", ""),
            ("a.", "."),
            ("a.b.js", ".js"),
            ("x.d.ts", ".ts"),
            ("noext", ""),
            (". js", ""),
        ] {
            assert_eq!(extname(name), ext, "{name}");
        }
    }

    #[test]
    fn all_completed_in_id_order() {
        let files = names(&[INIT, LOG]);
        let rows = [row(2, LOG, 1), row(1, INIT, 1)];
        let status = MigrationStatus::new(&files, &rows);
        assert_eq!(
            status
                .completed
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            [INIT, LOG]
        );
        assert!(status.pending.is_empty() && status.missing.is_empty());
        assert!(status.is_in_sync());
        assert_eq!(status.current_version, "20200520140700");
        assert_eq!(status.corrupt_directory_message(), None);
    }

    #[test]
    fn newer_files_are_pending_in_file_order() {
        let files = names(&[INIT, LOG, NDISTINCT, MAINT]);
        let rows = [row(1, INIT, 1), row(2, LOG, 1)];
        let status = MigrationStatus::new(&files, &rows);
        assert_eq!(status.pending, names(&[NDISTINCT, MAINT]));
        assert!(status.missing.is_empty());
        assert!(!status.is_in_sync());
    }

    #[test]
    fn rows_without_files_are_missing_with_knex_message() {
        let files = names(&[INIT, LOG]);
        let rows = [
            row(1, INIT, 1),
            row(2, LOG, 1),
            row(3, NDISTINCT, 2),
            row(4, MAINT, 2),
        ];
        let status = MigrationStatus::new(&files, &rows);
        assert_eq!(status.missing, names(&[NDISTINCT, MAINT]));
        assert_eq!(status.completed.len(), 4);
        assert_eq!(
            status.corrupt_directory_message().as_deref(),
            Some(
                "The migration directory is corrupt, the following files are missing: \
                 20260904000000_fix_search_entity_id_ndistinct.js, \
                 20260912000000_refresh_state_maintenance.js"
            )
        );
        assert_eq!(status.current_version, "20260912000000");
    }

    #[test]
    fn file_names_match_exactly() {
        let files = names(&["20200511113813_init.ts"]);
        let rows = [row(1, INIT, 1)];
        let status = MigrationStatus::new(&files, &rows);
        assert_eq!(status.pending, names(&["20200511113813_init.ts"]));
        assert_eq!(status.missing, names(&[INIT]));
    }

    #[test]
    fn current_version_compares_strings() {
        assert_eq!(current_version(&[] as &[MigrationRow]), "none");
        let rows = [row(1, "10_ten.js", 1), row(2, "9_nine.js", 1)];
        assert_eq!(current_version(&rows), "9");
        let rows = [
            row(1, "20231215_init.js", 1),
            row(2, "20241111000000_x.js", 2),
        ];
        assert_eq!(current_version(&rows), "20241111000000");
        let rows = [row(1, "noseparator.js", 1)];
        assert_eq!(current_version(&rows), "noseparator.js");
        // The current version ignores which files exist.
        let status = MigrationStatus::database_only(&[row(1, INIT, 1)]);
        assert_eq!(status.current_version, "20200511113813");
        assert!(status.pending.is_empty() && status.missing.is_empty());
    }

    #[test]
    fn duplicate_rows_are_each_missing() {
        let rows = [row(1, "1_a.js", 1), row(2, "1_a.js", 2)];
        assert_eq!(missing_migrations(&[], &rows), names(&["1_a.js", "1_a.js"]));
    }

    fn lock(rows: &[Option<i32>]) -> LockState {
        let rows: Vec<LockRow> = rows
            .iter()
            .enumerate()
            .map(|(i, l)| LockRow {
                index: i as i32 + 1,
                is_locked: *l,
            })
            .collect();
        LockState::from_rows(Some(&rows))
    }

    #[test]
    fn lock_states() {
        assert_eq!(LockState::from_rows(None), LockState::TableMissing);
        assert!(LockState::TableMissing.knex_can_lock());
        assert_eq!(lock(&[]), LockState::NoRows);
        assert!(LockState::NoRows.knex_can_lock());
        assert_eq!(lock(&[Some(0)]), LockState::Free);
        assert!(LockState::Free.knex_can_lock());
        assert_eq!(lock(&[Some(1)]), LockState::Held);
        assert!(LockState::Held.blocks_migrations());

        let null = lock(&[None]);
        assert_eq!(
            null,
            LockState::Irregular {
                rows: 1,
                free_rows: 0
            }
        );
        assert!(!null.knex_can_lock());
        let two_free = lock(&[Some(0), Some(0)]);
        assert_eq!(
            two_free,
            LockState::Irregular {
                rows: 2,
                free_rows: 2
            }
        );
        assert!(!two_free.knex_can_lock());
        let one_free = lock(&[Some(1), Some(0)]);
        assert!(one_free.knex_can_lock());
        assert!(!lock(&[Some(2)]).knex_can_lock());
    }

    #[test]
    fn lock_state_json() {
        assert_eq!(
            serde_json::to_value(LockState::Irregular {
                rows: 2,
                free_rows: 2
            })
            .unwrap(),
            serde_json::json!({"state": "irregular", "rows": 2, "freeRows": 2})
        );
        assert_eq!(
            serde_json::to_value(LockState::Held).unwrap(),
            serde_json::json!({"state": "held"})
        );
    }

    /// init and log in batch 1; ndistinct re-applied in batch 3 after a down, so it sorts before
    /// maint by file but was applied after it.
    fn reapplied() -> (Vec<String>, Vec<MigrationRow>) {
        (
            names(&[INIT, LOG, NDISTINCT, MAINT]),
            vec![
                row(1, INIT, 1),
                row(2, LOG, 1),
                row(4, MAINT, 2),
                row(5, NDISTINCT, 3),
            ],
        )
    }

    #[test]
    fn down_without_name_takes_the_last_file_not_the_last_row() {
        let (files, rows) = reapplied();
        let plan = rollback_plan(&files, &rows, &RollbackTarget::Down(None)).unwrap();
        assert_eq!(plan.names(), [MAINT]);
        assert_eq!(plan.batch, 3);
    }

    #[test]
    fn down_named() {
        let (files, rows) = reapplied();
        let plan = rollback_plan(&files, &rows, &RollbackTarget::Down(Some(LOG.into()))).unwrap();
        assert_eq!(
            plan.steps,
            [RollbackStep {
                name: LOG.into(),
                id: 2,
                batch: Some(1)
            }]
        );
        let err = rollback_plan(
            &files,
            &rows[..2],
            &RollbackTarget::Down(Some(MAINT.into())),
        )
        .unwrap_err();
        assert_eq!(err, RollbackError::NotCompleted { name: MAINT.into() });
    }

    #[test]
    fn last_batch_all_and_to() {
        let (files, rows) = reapplied();
        let last = rollback_plan(&files, &rows, &RollbackTarget::LastBatch).unwrap();
        assert_eq!(last.names(), [NDISTINCT]);
        let all = rollback_plan(&files, &rows, &RollbackTarget::All).unwrap();
        assert_eq!(all.names(), [MAINT, NDISTINCT, LOG, INIT]);
        let to = rollback_plan(&files, &rows, &RollbackTarget::To(INIT.into())).unwrap();
        assert_eq!(to.names(), [NDISTINCT, MAINT, LOG]);
        let to_last = rollback_plan(&files, &rows, &RollbackTarget::To(NDISTINCT.into())).unwrap();
        assert!(to_last.steps.is_empty());
        let err = rollback_plan(&files, &rows, &RollbackTarget::To("nope.js".into())).unwrap_err();
        assert_eq!(
            err,
            RollbackError::NotCompleted {
                name: "nope.js".into()
            }
        );
    }

    #[test]
    fn last_batch_takes_highest_ids_first() {
        let files = names(&[INIT, LOG, NDISTINCT, MAINT]);
        let rows = [
            row(1, INIT, 1),
            row(2, LOG, 1),
            row(3, NDISTINCT, 2),
            row(4, MAINT, 2),
        ];
        let plan = rollback_plan(&files, &rows, &RollbackTarget::LastBatch).unwrap();
        assert_eq!(plan.names(), [MAINT, NDISTINCT]);
        assert_eq!(plan.batch, 2);
        let empty = rollback_plan(&files, &[], &RollbackTarget::LastBatch).unwrap();
        assert!(empty.steps.is_empty());
        assert_eq!(empty.batch, 0);
        let empty = rollback_plan(&files, &[], &RollbackTarget::Down(None)).unwrap();
        assert!(empty.steps.is_empty());
    }

    #[test]
    fn any_missing_file_refuses_every_rollback() {
        let files = names(&[INIT, LOG]);
        let rows = [row(1, INIT, 1), row(2, LOG, 1), row(3, MAINT, 2)];
        for target in [
            RollbackTarget::Down(Some(LOG.into())),
            RollbackTarget::Down(None),
            RollbackTarget::LastBatch,
            RollbackTarget::All,
            RollbackTarget::To(INIT.into()),
        ] {
            let err = rollback_plan(&files, &rows, &target).unwrap_err();
            assert_eq!(
                err,
                RollbackError::DirectoryCorrupt {
                    missing: names(&[MAINT])
                }
            );
        }
        assert_eq!(
            RollbackError::DirectoryCorrupt {
                missing: names(&[MAINT])
            }
            .to_string(),
            "knex would refuse: The migration directory is corrupt, the following files are \
             missing: 20260912000000_refresh_state_maintenance.js; \
             roll back with the files of the version that applied them"
        );
    }

    #[test]
    fn user_names_may_leave_off_js() {
        let rows = [row(1, INIT, 1)];
        assert_eq!(completed_migration_name(&rows, INIT), Some(INIT));
        assert_eq!(
            completed_migration_name(&rows, "20200511113813_init"),
            Some(INIT)
        );
        assert_eq!(completed_migration_name(&rows, "20200511113813"), None);
    }

    #[test]
    fn plan_json_is_camel_case() {
        let (files, rows) = reapplied();
        let plan = rollback_plan(&files, &rows, &RollbackTarget::To(LOG.into())).unwrap();
        assert_eq!(
            serde_json::to_value(&plan).unwrap(),
            serde_json::json!({
                "target": {"kind": "to", "name": LOG},
                "batch": 3,
                "steps": [
                    {"name": NDISTINCT, "id": 5, "batch": 3},
                    {"name": MAINT, "id": 4, "batch": 2},
                ]
            })
        );
    }

    mod ordering {
        use proptest::prelude::*;

        use super::*;

        /// JavaScript's string as UTF-16 code units, encoded by hand: a character above U+FFFF becomes
        /// a surrogate pair (0xD800–0xDBFF, 0xDC00–0xDFFF), which sorts below U+E000–U+FFFF.
        fn utf16_units(text: &str) -> Vec<u16> {
            let mut units = Vec::new();
            for c in text.chars() {
                let c = u32::from(c);
                if c < 0x1_0000 {
                    units.push(c as u16);
                } else {
                    let v = c - 0x1_0000;
                    units.push(0xD800 + (v >> 10) as u16);
                    units.push(0xDC00 + (v & 0x3FF) as u16);
                }
            }
            units
        }

        /// File names from characters where UTF-8, char and UTF-16 orders disagree.
        fn file_name() -> impl Strategy<Value = String> {
            "[a-c0-9_.\u{7f}\u{e9}\u{d7ff}\u{e000}-\u{e002}\u{fffd}\u{ffff}\u{10000}\u{1f600}\u{10ffff}]{0,6}(\\.js|\\.ts|\\.d\\.ts|\\.md|)"
        }

        proptest! {
            #[test]
            fn js_order_is_utf16_order(a in any::<String>(), b in any::<String>()) {
                prop_assert_eq!(js_string_cmp(&a, &b), utf16_units(&a).cmp(&utf16_units(&b)));
            }

            #[test]
            fn js_order_is_utf16_order_where_it_differs(a in file_name(), b in file_name()) {
                prop_assert_eq!(js_string_cmp(&a, &b), utf16_units(&a).cmp(&utf16_units(&b)));
            }

            #[test]
            fn migrations_come_in_utf16_order(
                folders in proptest::collection::vec(proptest::collection::vec(file_name(), 0..8), 1..4),
                separately in any::<bool>(),
            ) {
                let options = LoaderOptions { sort_dirs_separately: separately, ..LoaderOptions::default() };
                let slices: Vec<&[String]> = folders.iter().map(Vec::as_slice).collect();
                let got = migration_files_in_folders(&slices, &options);
                let keep = |f: &String| options.load_extensions.iter().any(|e| e == extname(f));
                let mut want: Vec<String> = Vec::new();
                if separately {
                    for folder in &folders {
                        let mut names = folder.clone();
                        names.sort_by_key(|n| utf16_units(n));
                        want.extend(names.into_iter().filter(keep));
                    }
                } else {
                    want = folders.concat();
                    want.sort_by_key(|n| utf16_units(n));
                    want.retain(keep);
                }
                prop_assert_eq!(got, want);
            }

            #[test]
            fn current_version_is_the_utf16_largest(names in proptest::collection::vec(file_name(), 0..8)) {
                let rows: Vec<MigrationRow> = names.iter().enumerate().map(|(i, n)| row(i as i32 + 1, n, 1)).collect();
                let want = names
                    .iter()
                    .map(|n| n.split('_').next().unwrap_or(n))
                    .max_by_key(|v| utf16_units(v))
                    .map_or_else(|| "none".to_string(), str::to_string);
                prop_assert_eq!(current_version(&rows), want);
            }
        }
    }
}
