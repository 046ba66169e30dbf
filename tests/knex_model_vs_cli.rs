//! The pure Knex model (`kubectl_backstage::knex`) against the real knex CLI, on a real PostgreSQL, with
//! the real migration files of two catalog-backend versions and of the scheduler and plugin keys.
//! Every database state is what `knex migrate:latest` left; every expectation comes from the model and
//! is held against what knex prints and what remains in the tables.

#[path = "support/npm.rs"]
mod npm;
#[path = "support/postgres.rs"]
mod postgres;

use std::sync::OnceLock;

use kubectl_backstage::knex::model::{
    LOCKED_MESSAGE, LockRow, LockState, MigrationRow, MigrationStatus, RollbackError,
    RollbackTarget, migration_files, rollback_plan,
};
use kubectl_backstage::knex::packages::{
    MigrationTableSource, PackageMigrations, PluginDatabases, migration_table_source,
};
use npm::{
    BACKEND_DEFAULTS, BACKEND_TASKS, CATALOG_ADDED, CATALOG_NEWER, CATALOG_OLDER, KnexOutput,
    KnexRig, KnexTarget, Package,
};
use postgres::{Postgres, TestDatabase, ident};

const MAINT: &str = "20260912000000_refresh_state_maintenance.js";
const NDISTINCT: &str = "20260904000000_fix_search_entity_id_ndistinct.js";
const CORRUPT_OLDER: &str = "The migration directory is corrupt, the following files are missing: \
     20260904000000_fix_search_entity_id_ndistinct.js, 20260912000000_refresh_state_maintenance.js";

fn rig() -> &'static KnexRig {
    KnexRig::get()
}

/// Knex pointed at one database, one migrations folder and one table.
fn knex_target(db: &str, package: Package, folder: &str, table: &str) -> KnexTarget {
    let pg = Postgres::shared();
    KnexTarget {
        host: pg.host().into(),
        port: pg.port(),
        user: pg.superuser().into(),
        password: pg.password().into(),
        database: db.into(),
        migrations_dir: rig().migrations_dir(package, folder),
        table: table.into(),
        search_path: None,
        ssl_root_cert: None,
    }
}

fn catalog(db: &str, package: Package) -> KnexTarget {
    knex_target(db, package, "migrations", "knex_migrations")
}

/// Runs knex and insists on the exit code.
fn knex(target: &KnexTarget, args: &[&str], code: i32) -> KnexOutput {
    let out = rig().run(target, args);
    assert_eq!(
        out.code, code,
        "knex {args:?} in {}: {out:?}",
        target.database
    );
    out
}

/// The migration files of a package folder, as the model loads them.
fn files(package: Package, folder: &str) -> Vec<String> {
    migration_files(&rig().listing(package, folder))
}

fn source(package: Package, folder: &str) -> MigrationTableSource {
    migration_table_source(&PackageMigrations {
        package: package.name.into(),
        version: package.version.into(),
        folder: folder.into(),
        listing: rig().listing(package, folder),
        directory: rig().migrations_dir(package, folder).display().to_string(),
    })
    .unwrap_or_else(|| panic!("{} {folder} is not placed", package.name))
}

fn rows(db: &str, schema: &str, table: &str) -> Vec<MigrationRow> {
    let sql = format!(
        "SELECT id, name, batch, (extract(epoch FROM migration_time) * 1000000)::int8 \
         FROM {}.{} ORDER BY id",
        ident(schema),
        ident(table)
    );
    Postgres::shared()
        .client(db)
        .query(&sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {}", postgres::error_text(&e)))
        .iter()
        .map(|r| MigrationRow {
            id: r.get(0),
            name: r.get(1),
            batch: r.get(2),
            migration_time: r
                .get::<_, Option<i64>>(3)
                .map(|us| jiff::Timestamp::from_microsecond(us).expect("valid time")),
        })
        .collect()
}

fn lock_rows(db: &str, schema: &str, table: &str) -> Option<Vec<LockRow>> {
    let mut client = Postgres::shared().client(db);
    let lock = format!("{}_lock", table);
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
            &[&schema, &lock],
        )
        .expect("to_regclass")
        .get(0);
    if !exists {
        return None;
    }
    let sql = format!(
        "SELECT index, is_locked FROM {}.{} ORDER BY index",
        ident(schema),
        ident(&lock)
    );
    Some(
        client
            .query(&sql, &[])
            .expect("read lock rows")
            .iter()
            .map(|r| LockRow {
                index: r.get(0),
                is_locked: r.get(1),
            })
            .collect(),
    )
}

fn names(rows: &[MigrationRow]) -> Vec<&str> {
    rows.iter().map(|r| r.name.as_str()).collect()
}

/// What `knex migrate:list` prints for a status (its `listMigrations`).
fn list_output(status: &MigrationStatus) -> String {
    let mut out = String::new();
    if status.completed.is_empty() {
        out.push_str("No Completed Migration files Found.\n");
    } else {
        out.push_str(&format!(
            "Found {} Completed Migration file/files.\n",
            status.completed.len()
        ));
        for c in &status.completed {
            out.push_str(&format!("{}\n", c.name));
        }
    }
    if status.pending.is_empty() {
        out.push_str("No Pending Migration files Found.\n");
    } else {
        out.push_str(&format!(
            "Found {} Pending Migration file/files.\n",
            status.pending.len()
        ));
        for p in &status.pending {
            out.push_str(&format!("{p}\n"));
        }
    }
    out.push('\n');
    out
}

fn current_version_output(status: &MigrationStatus) -> String {
    format!("Current Version: {}\n", status.current_version)
}

/// A database at catalog-backend 4.0.0 (batch 1: the 43 of 3.8.0, batch 2: the 2 added), left by
/// knex itself; tests take copies.
fn upgraded_catalog() -> &'static str {
    static TEMPLATE: OnceLock<TestDatabase<'static>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let db = Postgres::shared().database("catalog_upgraded");
            knex(&catalog(db.name(), CATALOG_OLDER), &["migrate:latest"], 0);
            knex(&catalog(db.name(), CATALOG_NEWER), &["migrate:latest"], 0);
            db
        })
        .name()
}

#[test]
fn package_versions_differ_by_the_added_migrations() {
    let older = files(CATALOG_OLDER, "migrations");
    let newer = files(CATALOG_NEWER, "migrations");
    assert_eq!(older.len(), 43);
    let mut expected = older.clone();
    expected.extend(CATALOG_ADDED.iter().map(|s| s.to_string()));
    assert_eq!(newer, expected);
    assert_eq!(
        files(BACKEND_DEFAULTS, "migrations/scheduler"),
        [
            "20210928160613_init.js",
            "20240712211735_nullable_next_run.js",
            "20250411000000_last_run.js"
        ]
    );
    assert_eq!(
        files(BACKEND_TASKS, "migrations"),
        [
            "20210928160613_init.js",
            "20240712211735_nullable_next_run.js"
        ]
    );
    let catalog = source(CATALOG_NEWER, "migrations");
    assert_eq!(catalog.databases, PluginDatabases::Plugin("catalog".into()));
    assert_eq!(catalog.table, "knex_migrations");
    assert_eq!(catalog.files, newer);
}

/// `knex migrate:list` prints what the model's `status` lists.
fn assert_knex_lists(target: &KnexTarget, status: &MigrationStatus) {
    assert_eq!(
        knex(target, &["migrate:list"], 0).stdout,
        list_output(status)
    );
}

/// `knex migrate:list` and `migrate:currentVersion` print what the model's `status` says.
fn assert_knex_lists_and_versions(target: &KnexTarget, status: &MigrationStatus) {
    assert_knex_lists(target, status);
    assert_eq!(
        knex(target, &["migrate:currentVersion"], 0).stdout,
        current_version_output(status)
    );
}

/// Every Knex table in `database`, as `schema.table`, sorted.
fn knex_tables(database: &str) -> Vec<String> {
    Postgres::shared()
        .client(database)
        .query(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_name LIKE '%knex_migrations%' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `rows` without the one named `name`.
fn without(rows: &[MigrationRow], name: &str) -> Vec<MigrationRow> {
    rows.iter().filter(|r| r.name != name).cloned().collect()
}

#[test]
fn upgrade_and_downgrade_of_the_catalog_match_knex() {
    let pg = Postgres::shared();
    let db = pg.database("catalog_upgrade");
    let older_files = files(CATALOG_OLDER, "migrations");
    let newer_files = files(CATALOG_NEWER, "migrations");
    let older = catalog(db.name(), CATALOG_OLDER);
    let newer = catalog(db.name(), CATALOG_NEWER);

    // Fresh database: nothing completed, everything pending.
    let status = MigrationStatus::new(&older_files, &[]);
    assert_eq!(status.current_version, "none");
    assert_knex_lists(&older, &status);
    assert_eq!(
        knex(&older, &["migrate:currentVersion"], 0).stdout,
        "Current Version: none\n"
    );
    // Knex is not read-only even to list: it created both tables and a free lock row.
    assert_eq!(rows(db.name(), "public", "knex_migrations"), []);
    assert_eq!(
        lock_rows(db.name(), "public", "knex_migrations"),
        Some(vec![LockRow {
            index: 1,
            is_locked: Some(0)
        }])
    );

    assert_eq!(
        knex(&older, &["migrate:latest"], 0).stdout,
        "Batch 1 run: 43 migrations\n"
    );
    let at_older = rows(db.name(), "public", "knex_migrations");
    assert_eq!(names(&at_older), older_files);
    assert!(at_older.iter().all(|r| r.batch == Some(1)));
    assert!(at_older.iter().all(|r| r.migration_time.is_some()));

    // Older files, database at older: all completed.
    let status = MigrationStatus::new(&older_files, &at_older);
    assert!(status.is_in_sync());
    assert_eq!(status.current_version, "20260609000000");
    assert_knex_lists_and_versions(&older, &status);

    // Newer files, database at older: exactly the added ones pending.
    let status = MigrationStatus::new(&newer_files, &at_older);
    assert_eq!(status.pending, CATALOG_ADDED);
    assert!(status.missing.is_empty());
    assert_knex_lists(&newer, &status);

    // Upgrade.
    assert_eq!(
        knex(&newer, &["migrate:latest"], 0).stdout,
        "Batch 2 run: 2 migrations\n"
    );
    let at_newer = rows(db.name(), "public", "knex_migrations");
    assert_eq!(&names(&at_newer)[..43], older_files);
    assert_eq!(&names(&at_newer)[43..], CATALOG_ADDED);
    assert_eq!(at_newer[43].batch, Some(2));
    assert_eq!(at_newer[44].batch, Some(2));
    let status = MigrationStatus::new(&newer_files, &at_newer);
    assert!(status.is_in_sync());
    assert_eq!(status.current_version, "20260912000000");
    assert_knex_lists_and_versions(&newer, &status);

    // Older files, database at newer: the added ones are missing, and knex refuses with the
    // model's message, even to list, but not to print the current version.
    let status = MigrationStatus::new(&older_files, &at_newer);
    assert_eq!(status.missing, CATALOG_ADDED);
    assert!(status.pending.is_empty());
    let message = status.corrupt_directory_message().expect("missing files");
    assert_eq!(message, CORRUPT_OLDER);
    let expected_error = format!("Error: {message}");
    for command in ["migrate:latest", "migrate:list", "migrate:rollback"] {
        let out = knex(&older, &[command], 1);
        assert_eq!(out.error_line(), expected_error, "{command}");
        assert_eq!(rows(db.name(), "public", "knex_migrations"), at_newer);
    }
    assert_eq!(
        knex(&older, &["migrate:currentVersion"], 0).stdout,
        current_version_output(&status)
    );
    for target in [
        RollbackTarget::LastBatch,
        RollbackTarget::Down(None),
        RollbackTarget::To(older_files[0].clone()),
    ] {
        assert_eq!(
            rollback_plan(&older_files, &at_newer, &target),
            Err(RollbackError::DirectoryCorrupt {
                missing: CATALOG_ADDED.iter().map(|s| s.to_string()).collect()
            })
        );
    }
    // Even a named down of a migration whose file is there.
    let out = knex(&older, &["migrate:down", &older_files[42]], 1);
    assert_eq!(out.error_line(), expected_error);
    assert_eq!(rows(db.name(), "public", "knex_migrations"), at_newer);
}

/// Runs `migrate:down NAME` for each step and checks what knex printed and what is left.
fn down_each(target: &KnexTarget, db: &str, files: &[String], plan_target: &RollbackTarget) {
    let before = rows(db, "public", "knex_migrations");
    let plan = rollback_plan(files, &before, plan_target).expect("plan");
    assert!(!plan.steps.is_empty());
    for step in &plan.steps {
        let now = rows(db, "public", "knex_migrations");
        let one = rollback_plan(files, &now, &RollbackTarget::Down(Some(step.name.clone())))
            .expect("step plan");
        let out = knex(target, &["migrate:down", &step.name], 0);
        assert_eq!(
            out.stdout,
            format!(
                "Batch {} rolled back the following migrations:\n{}\n",
                one.batch, step.name
            )
        );
        let after = rows(db, "public", "knex_migrations");
        assert_eq!(after, without(&now, &step.name));
    }
}

#[test]
fn rollbacks_match_knex() {
    let pg = Postgres::shared();
    let db = pg.copy_of(upgraded_catalog(), "catalog_rollback");
    let newer_files = files(CATALOG_NEWER, "migrations");
    let newer = catalog(db.name(), CATALOG_NEWER);
    let at_newer = rows(db.name(), "public", "knex_migrations");
    assert_eq!(at_newer.len(), 45);

    // migrate:rollback undoes the last batch, highest id first.
    let plan = rollback_plan(&newer_files, &at_newer, &RollbackTarget::LastBatch).unwrap();
    assert_eq!(plan.names(), [MAINT, NDISTINCT]);
    assert_eq!(plan.batch, 2);
    let out = knex(&newer, &["migrate:rollback", "--verbose"], 0);
    assert_eq!(
        out.stdout,
        format!(
            "Batch {} rolled back: {} migrations\n{}\n",
            plan.batch,
            plan.steps.len(),
            plan.names().join("\n")
        )
    );
    assert_eq!(rows(db.name(), "public", "knex_migrations"), at_newer[..43]);

    // Re-apply, then down one by name.
    knex(&newer, &["migrate:latest"], 0);
    let reapplied = rows(db.name(), "public", "knex_migrations");
    assert_eq!(names(&reapplied), newer_files);
    assert_eq!((reapplied[43].id, reapplied[44].id), (46, 47));
    let plan = rollback_plan(
        &newer_files,
        &reapplied,
        &RollbackTarget::Down(Some(NDISTINCT.into())),
    )
    .unwrap();
    assert_eq!(plan.names(), [NDISTINCT]);
    assert_eq!(
        knex(&newer, &["migrate:down", NDISTINCT], 0).stdout,
        format!(
            "Batch {} rolled back the following migrations:\n{NDISTINCT}\n",
            plan.batch
        )
    );
    let without_ndistinct = without(&reapplied, NDISTINCT);
    assert_eq!(
        rows(db.name(), "public", "knex_migrations"),
        without_ndistinct
    );

    // Re-applied in batch 3, NDISTINCT is now applied after MAINT though its file sorts before.
    assert_eq!(
        knex(&newer, &["migrate:latest"], 0).stdout,
        "Batch 3 run: 1 migrations\n"
    );
    let shuffled = rows(db.name(), "public", "knex_migrations");
    assert_eq!(
        names(&shuffled)[43..],
        [MAINT, NDISTINCT],
        "applied order differs from file order"
    );
    let last_batch = rollback_plan(&newer_files, &shuffled, &RollbackTarget::LastBatch).unwrap();
    let down = rollback_plan(&newer_files, &shuffled, &RollbackTarget::Down(None)).unwrap();
    assert_eq!(last_batch.names(), [NDISTINCT]);
    assert_eq!(down.names(), [MAINT], "migrate:down takes the last file");
    // Missing files are named in id order, not file order.
    let older = catalog(db.name(), CATALOG_OLDER);
    let status = MigrationStatus::new(&files(CATALOG_OLDER, "migrations"), &shuffled);
    assert_eq!(status.missing, [MAINT, NDISTINCT]);
    assert_eq!(
        knex(&older, &["migrate:list"], 1).error_line(),
        format!("Error: {}", status.corrupt_directory_message().unwrap())
    );
    assert_eq!(
        knex(&newer, &["migrate:down"], 0).stdout,
        format!("Batch 3 rolled back the following migrations:\n{MAINT}\n")
    );
    let after_down = without(&shuffled, MAINT);
    assert_eq!(rows(db.name(), "public", "knex_migrations"), after_down);

    // Back to all applied (MAINT in batch 4), then --to: undo everything applied after a name,
    // newest first, by id.
    knex(&newer, &["migrate:latest"], 0);
    let before_to = rows(db.name(), "public", "knex_migrations");
    let keep = "20260510000000_search_indices_and_dedup.js";
    let keep_id = before_to.iter().find(|r| r.name == keep).unwrap().id;
    let plan = rollback_plan(&newer_files, &before_to, &RollbackTarget::To(keep.into())).unwrap();
    assert_eq!(
        plan.names(),
        [
            MAINT,
            NDISTINCT,
            "20260609000000_drop_search_entity_id_idx.js",
            "20260608000000_search_autovacuum_and_ndistinct.js",
            "20260519000000_search_extended_statistics.js",
            "20260516000000_relations_target_index.js",
        ]
    );
    down_each(
        &newer,
        db.name(),
        &newer_files,
        &RollbackTarget::To(keep.into()),
    );
    let after_to = rows(db.name(), "public", "knex_migrations");
    let kept: Vec<MigrationRow> = before_to
        .iter()
        .filter(|r| r.id <= keep_id)
        .cloned()
        .collect();
    assert_eq!(after_to, kept);
    assert_eq!(after_to.last().unwrap().name, keep);

    // A named migration that is no longer completed.
    let undone = "20260609000000_drop_search_entity_id_idx.js";
    assert_eq!(
        rollback_plan(
            &newer_files,
            &after_to,
            &RollbackTarget::Down(Some(undone.into()))
        ),
        Err(RollbackError::NotCompleted {
            name: undone.into()
        })
    );
    let out = knex(&newer, &["migrate:down", undone], 1);
    assert_eq!(
        out.error_line(),
        format!("Error: Migration \"{undone}\" was not run.")
    );
    assert_eq!(rows(db.name(), "public", "knex_migrations"), after_to);

    // The model's status after all that is what knex lists.
    let status = MigrationStatus::new(&newer_files, &after_to);
    assert_eq!(status.pending.len(), 6);
    assert_knex_lists(&newer, &status);
}

/// Sets the lock table's rows (`None`: drops the table).
fn set_lock(db: &TestDatabase<'_>, rows: Option<&[Option<i32>]>) {
    match rows {
        None => db.execute("DROP TABLE IF EXISTS knex_migrations_lock"),
        Some(rows) => {
            db.execute("DELETE FROM knex_migrations_lock");
            for r in rows {
                let value = r.map_or("NULL".to_string(), |v| v.to_string());
                db.execute(&format!(
                    "INSERT INTO knex_migrations_lock (is_locked) VALUES ({value})"
                ));
            }
        }
    }
}

fn lock_values(db: &TestDatabase<'_>) -> Option<Vec<Option<i32>>> {
    lock_rows(db.name(), "public", "knex_migrations")
        .map(|rows| rows.iter().map(|r| r.is_locked).collect())
}

#[test]
fn lock_states_match_knex() {
    let pg = Postgres::shared();
    let db = pg.copy_of(upgraded_catalog(), "catalog_lock");
    let newer = catalog(db.name(), CATALOG_NEWER);
    let at_newer = rows(db.name(), "public", "knex_migrations");

    type Case = (
        &'static str,
        Option<&'static [Option<i32>]>,
        LockState,
        Option<&'static [Option<i32>]>,
    );
    // (name, lock rows set, model state, rows left after a successful knex run)
    let cases: [Case; 8] = [
        ("free", Some(&[Some(0)]), LockState::Free, Some(&[Some(0)])),
        ("held", Some(&[Some(1)]), LockState::Held, None),
        ("no rows", Some(&[]), LockState::NoRows, Some(&[Some(0)])),
        (
            "table missing",
            None,
            LockState::TableMissing,
            Some(&[Some(0)]),
        ),
        (
            "null",
            Some(&[None]),
            LockState::Irregular {
                rows: 1,
                free_rows: 0,
            },
            None,
        ),
        (
            "odd value",
            Some(&[Some(2)]),
            LockState::Irregular {
                rows: 1,
                free_rows: 0,
            },
            None,
        ),
        (
            "two free rows",
            Some(&[Some(0), Some(0)]),
            LockState::Irregular {
                rows: 2,
                free_rows: 2,
            },
            None,
        ),
        (
            "held and free rows",
            Some(&[Some(1), Some(0)]),
            LockState::Irregular {
                rows: 2,
                free_rows: 1,
            },
            Some(&[Some(0), Some(0)]),
        ),
    ];
    for (name, set, expected, after) in cases {
        set_lock(&db, set);
        let state =
            LockState::from_rows(lock_rows(db.name(), "public", "knex_migrations").as_deref());
        assert_eq!(state, expected, "{name}");
        let before = lock_values(&db);
        let out = rig().run(&newer, &["migrate:latest"]);
        if state.knex_can_lock() {
            assert_eq!(out.code, 0, "{name}: {out:?}");
            assert_eq!(out.stdout, "Already up to date\n", "{name}");
            assert_eq!(lock_values(&db).as_deref(), after, "{name}");
        } else {
            assert_eq!(out.code, 1, "{name}: {out:?}");
            assert_eq!(
                out.error_line(),
                format!("MigrationLocked: {LOCKED_MESSAGE}"),
                "{name}"
            );
            // Knex's own hint goes to stdout, before the error on stderr.
            assert_eq!(
                out.stdout,
                format!(
                    "Can't take lock to run migrations: {LOCKED_MESSAGE}\n\
                     If you are sure migrations are not running you can release the lock \
                     manually by running 'knex migrate:unlock'\n"
                ),
                "{name}"
            );
            assert_eq!(
                lock_values(&db),
                before,
                "{name}: the lock is left as it was"
            );
        }
        // Listing and the current version never take the lock.
        knex(&newer, &["migrate:list"], 0);
        assert_eq!(rows(db.name(), "public", "knex_migrations"), at_newer);
    }

    // After a run with one held and one free row, both are free: the next run fails.
    let state = LockState::from_rows(lock_rows(db.name(), "public", "knex_migrations").as_deref());
    assert_eq!(
        state,
        LockState::Irregular {
            rows: 2,
            free_rows: 2
        }
    );
    let out = knex(&newer, &["migrate:latest"], 1);
    assert_eq!(
        out.error_line(),
        format!("MigrationLocked: {LOCKED_MESSAGE}")
    );

    // migrate:unlock leaves exactly one free row.
    knex(&newer, &["migrate:unlock"], 0);
    let state = LockState::from_rows(lock_rows(db.name(), "public", "knex_migrations").as_deref());
    assert_eq!(state, LockState::Free);

    // A held lock refuses a rollback too, and nothing is undone.
    set_lock(&db, Some(&[Some(1)]));
    let out = knex(&newer, &["migrate:rollback"], 1);
    assert_eq!(
        out.error_line(),
        format!("MigrationLocked: {LOCKED_MESSAGE}")
    );
    assert_eq!(rows(db.name(), "public", "knex_migrations"), at_newer);
}

#[test]
fn several_migration_tables_in_one_database() {
    let pg = Postgres::shared();
    let db = pg.copy_of(upgraded_catalog(), "catalog_tables");
    let scheduler = source(BACKEND_DEFAULTS, "migrations/scheduler");
    let keys = source(BACKEND_DEFAULTS, "migrations/auth");
    let old_scheduler = source(BACKEND_TASKS, "migrations");
    assert_eq!(scheduler.table, "backstage_backend_tasks__knex_migrations");
    assert_eq!(keys.table, "backstage_backend_public_keys__knex_migrations");
    assert_eq!(old_scheduler.table, scheduler.table);
    for s in [&scheduler, &keys, &old_scheduler] {
        assert_eq!(s.databases, PluginDatabases::AnyPlugin);
        assert!(s.applies_to("catalog", &s.table));
    }

    let scheduler_knex = knex_target(
        db.name(),
        BACKEND_DEFAULTS,
        "migrations/scheduler",
        &scheduler.table,
    );
    let keys_knex = knex_target(db.name(), BACKEND_DEFAULTS, "migrations/auth", &keys.table);
    assert_eq!(
        knex(&scheduler_knex, &["migrate:latest"], 0).stdout,
        "Batch 1 run: 3 migrations\n"
    );
    assert_eq!(
        knex(&keys_knex, &["migrate:latest"], 0).stdout,
        "Batch 1 run: 1 migrations\n"
    );

    assert_eq!(
        knex_tables(db.name()),
        [
            "public.backstage_backend_public_keys__knex_migrations",
            "public.backstage_backend_public_keys__knex_migrations_lock",
            "public.backstage_backend_tasks__knex_migrations",
            "public.backstage_backend_tasks__knex_migrations_lock",
            "public.knex_migrations",
            "public.knex_migrations_lock",
        ]
    );

    // Each table against its own files.
    let catalog_rows = rows(db.name(), "public", "knex_migrations");
    let catalog_status = MigrationStatus::new(&files(CATALOG_NEWER, "migrations"), &catalog_rows);
    assert!(catalog_status.is_in_sync());
    for (source, target) in [(&scheduler, &scheduler_knex), (&keys, &keys_knex)] {
        let table_rows = rows(db.name(), "public", &source.table);
        assert_eq!(names(&table_rows), source.files);
        let status = MigrationStatus::new(&source.files, &table_rows);
        assert!(status.is_in_sync());
        assert_knex_lists_and_versions(target, &status);
        assert_eq!(
            LockState::from_rows(lock_rows(db.name(), "public", &source.table).as_deref()),
            LockState::Free
        );
    }
    assert_eq!(
        knex(&scheduler_knex, &["migrate:currentVersion"], 0).stdout,
        "Current Version: 20250411000000\n"
    );

    // The old backend system's scheduler files against the new one's table.
    let scheduler_rows = rows(db.name(), "public", &scheduler.table);
    let status = MigrationStatus::new(&old_scheduler.files, &scheduler_rows);
    assert_eq!(status.missing, ["20250411000000_last_run.js"]);
    let old_knex = knex_target(db.name(), BACKEND_TASKS, "migrations", &scheduler.table);
    assert_eq!(
        knex(&old_knex, &["migrate:latest"], 1).error_line(),
        format!("Error: {}", status.corrupt_directory_message().unwrap())
    );

    // rollback --all undoes the scheduler's table in reverse file order, and only that table.
    let plan = rollback_plan(&scheduler.files, &scheduler_rows, &RollbackTarget::All).unwrap();
    assert_eq!(
        plan.names(),
        [
            "20250411000000_last_run.js",
            "20240712211735_nullable_next_run.js",
            "20210928160613_init.js"
        ]
    );
    assert_eq!(
        knex(
            &scheduler_knex,
            &["migrate:rollback", "--all", "--verbose"],
            0
        )
        .stdout,
        format!(
            "Batch {} rolled back: 3 migrations\n{}\n",
            plan.batch,
            plan.names().join("\n")
        )
    );
    assert!(rows(db.name(), "public", &scheduler.table).is_empty());
    assert_eq!(rows(db.name(), "public", "knex_migrations"), catalog_rows);
    assert_eq!(names(&rows(db.name(), "public", &keys.table)), keys.files);
    let plan = rollback_plan(&scheduler.files, &[], &RollbackTarget::LastBatch).unwrap();
    assert!(plan.steps.is_empty());
    assert_eq!(
        knex(&scheduler_knex, &["migrate:rollback"], 0).stdout,
        "Already at the base migration\n"
    );
}

/// Backstage's schema mode: one database, a schema per plugin set as the connection's search_path
/// (knex's `searchPath`; the migrations run without a `schemaName`).
fn in_schema(mut target: KnexTarget, schema: &str) -> KnexTarget {
    target.search_path = Some(schema.into());
    target
}

#[test]
fn schema_mode_keeps_each_plugin_in_its_schema() {
    let pg = Postgres::shared();
    let db = pg.database("backstage_schemas");
    db.execute("CREATE SCHEMA catalog; CREATE SCHEMA auth");
    let older = in_schema(catalog(db.name(), CATALOG_OLDER), "catalog");
    let newer = in_schema(catalog(db.name(), CATALOG_NEWER), "catalog");
    let scheduler = source(BACKEND_DEFAULTS, "migrations/scheduler");
    let keys = source(BACKEND_DEFAULTS, "migrations/auth");
    let catalog_scheduler = in_schema(
        knex_target(
            db.name(),
            BACKEND_DEFAULTS,
            "migrations/scheduler",
            &scheduler.table,
        ),
        "catalog",
    );
    let auth_keys = in_schema(
        knex_target(db.name(), BACKEND_DEFAULTS, "migrations/auth", &keys.table),
        "auth",
    );
    knex(&older, &["migrate:latest"], 0);
    knex(&catalog_scheduler, &["migrate:latest"], 0);
    knex(&auth_keys, &["migrate:latest"], 0);

    assert_eq!(
        knex_tables(db.name()),
        [
            "auth.backstage_backend_public_keys__knex_migrations",
            "auth.backstage_backend_public_keys__knex_migrations_lock",
            "catalog.backstage_backend_tasks__knex_migrations",
            "catalog.backstage_backend_tasks__knex_migrations_lock",
            "catalog.knex_migrations",
            "catalog.knex_migrations_lock",
        ]
    );

    let older_files = files(CATALOG_OLDER, "migrations");
    let newer_files = files(CATALOG_NEWER, "migrations");
    let at_older = rows(db.name(), "catalog", "knex_migrations");
    assert_eq!(names(&at_older), older_files);
    let status = MigrationStatus::new(&newer_files, &at_older);
    assert_eq!(status.pending, CATALOG_ADDED);
    assert_knex_lists_and_versions(&newer, &status);
    assert_eq!(
        LockState::from_rows(lock_rows(db.name(), "catalog", "knex_migrations").as_deref()),
        LockState::Free
    );

    knex(&newer, &["migrate:latest"], 0);
    let at_newer = rows(db.name(), "catalog", "knex_migrations");
    assert_eq!(names(&at_newer), newer_files);
    let status = MigrationStatus::new(&older_files, &at_newer);
    assert_eq!(
        knex(&older, &["migrate:latest"], 1).error_line(),
        format!("Error: {}", status.corrupt_directory_message().unwrap())
    );
    // The other plugin's schema is untouched by the catalog's migrations.
    assert_eq!(names(&rows(db.name(), "auth", &keys.table)), keys.files);
}

#[test]
fn ssl_only_role_needs_tls_and_the_test_ca_verifies_it() {
    let pg = Postgres::shared();
    let db = pg.database("tls");
    pg.create_role("knex_tls", "tls-secret", true);
    db.execute(&format!(
        "ALTER DATABASE {} OWNER TO knex_tls",
        ident(db.name())
    ));
    let mut target = catalog(db.name(), CATALOG_OLDER);
    target.user = "knex_tls".into();
    target.password = "tls-secret".into();

    let plain = knex(&target, &["migrate:currentVersion"], 1);
    assert!(
        plain.stderr.contains("no encryption"),
        "plain connection refused by pg_hba: {plain:?}"
    );

    target.ssl_root_cert = Some(pg.ca_pem_path());
    assert_eq!(
        knex(&target, &["migrate:currentVersion"], 0).stdout,
        "Current Version: none\n"
    );
    // knex created its tables as the role, over TLS.
    assert_eq!(
        LockState::from_rows(lock_rows(db.name(), "public", "knex_migrations").as_deref()),
        LockState::Free
    );
}
