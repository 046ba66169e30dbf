//! `db list | status | current-version | unlock | psql` against a real PostgreSQL (TLS, scram), with
//! migrations applied by the real knex CLI from real Backstage packages, and knex's own answers as the
//! peer. The password is a sentinel that must never show up in output, logs or arguments.

#[path = "support/keyvault.rs"]
mod keyvault;
#[path = "support/npm.rs"]
mod npm;
#[path = "support/plugin_dbs.rs"]
mod plugin_dbs;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/programs.rs"]
mod programs;
#[path = "support/rig.rs"]
mod rig;

use std::path::{Path, PathBuf};

use npm::{
    BACKEND_DEFAULTS, CATALOG_ADDED, CATALOG_NEWER, CATALOG_OLDER, KnexRig, KnexTarget, Package,
};
use plugin_dbs::{
    Plugins, SCHEDULER_TABLE, SENTINEL, USER, checkout, knex_target, latest, pg, snapshot,
    templates,
};
use postgres::{ident, output_without_password};
use programs::{demo_plugin_package, executable, which};
use serde_json::{Value, json};

fn knex(target: &KnexTarget, args: &[&str]) -> npm::KnexOutput {
    KnexRig::get().run(target, args)
}

/// A node_modules tree holding the catalog at `version` and backend-defaults (symlinks into the npm cache).
fn node_modules(dir: &Path, catalog: Package) -> PathBuf {
    let root = dir.join(format!("checkout-{}", catalog.version));
    let scope = root.join("node_modules/@backstage");
    std::fs::create_dir_all(&scope).unwrap();
    for package in [catalog, BACKEND_DEFAULTS] {
        let link = scope.join(package.name.trim_start_matches("@backstage/"));
        if !link.exists() {
            std::os::unix::fs::symlink(KnexRig::get().package_dir(package), link).unwrap();
        }
    }
    root
}

/// `knex migrate:latest` succeeds with nothing to do.
fn assert_knex_up_to_date(target: &KnexTarget) {
    let latest = knex(target, &["migrate:latest"]);
    assert_eq!(latest.code, 0, "{}", latest.stderr);
    assert!(
        latest.stdout.contains("Already up to date"),
        "{}",
        latest.stdout
    );
}

/// `db status -o json` against a checkout of `catalog`'s version (which must exit 1: something to
/// do); the checkout and the document.
fn status_against(plugins: &Plugins, catalog: Package) -> (PathBuf, Value) {
    let source = node_modules(plugins.dir.path(), catalog);
    let status = json_out(
        plugins
            .db()
            .args(["status", "--source", source.to_str().unwrap()]),
        1,
    );
    (source, status)
}

fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let (status, stdout, stderr) = output_without_password(cmd.output().unwrap(), SENTINEL);
    (status.code().unwrap_or(-1), stdout, stderr)
}

fn json_out(cmd: &mut assert_cmd::Command, want_code: i32) -> Value {
    let (code, out, err) = run(cmd.args(["-o", "json"]));
    assert_eq!(code, want_code, "stdout: {out}\nstderr: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn table_of<'a>(status: &'a Value, plugin: &str, table: &str) -> &'a Value {
    status["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["plugin"] == plugin)
        .unwrap()["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no {plugin} {table} in {status}"))
}

/// The first column of a query's rows.
fn column<T: for<'a> ::postgres::types::FromSql<'a>>(
    client: &mut ::postgres::Client,
    sql: &str,
) -> Vec<T> {
    client
        .query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn names(values: &Value) -> Vec<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v["name"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn list_and_status_of_every_plugin_and_table_match_knex() {
    let (older, _) = templates();
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", Some(older));
    let settings = plugins.create("user-settings", None);
    latest(
        &settings,
        BACKEND_DEFAULTS,
        "migrations/scheduler",
        SCHEDULER_TABLE,
    );
    let empty = plugins.create("app", None);

    let listed = json_out(plugins.db().args(["list"]), 0);
    let rows: Vec<(String, String, Vec<String>)> = listed["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["plugin"].as_str().unwrap().into(),
                d["database"].as_str().unwrap().into(),
                names(&d["tables"]),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("app".to_string(), empty.clone(), vec![]),
            (
                "catalog".into(),
                catalog.clone(),
                vec!["knex_migrations".to_string(), SCHEDULER_TABLE.into()]
            ),
            (
                "user-settings".into(),
                settings.clone(),
                vec![SCHEDULER_TABLE.to_string()]
            ),
        ]
    );

    // Upgrade: the newer code's files against the older database: exactly the added migrations pend.
    let before = snapshot(&catalog);
    let (source, status) = status_against(&plugins, CATALOG_NEWER);
    assert_eq!(status["kind"], "DbStatus");
    assert_eq!(status["source"], format!("dir:{}", source.display()));
    let t = table_of(&status, "catalog", "knex_migrations");
    assert_eq!(names(&t["pending"]), CATALOG_ADDED);
    assert_eq!(names(&t["missing"]), Vec::<String>::new());
    assert_eq!(t["locked"], false);
    assert_eq!(
        t["filesFrom"],
        format!(
            "{}@{}/migrations",
            CATALOG_NEWER.name, CATALOG_NEWER.version
        )
    );
    assert_eq!(snapshot(&catalog), before, "status changed nothing");

    // The same answer as the real knex CLI on the same database with the same files.
    let newer_files = knex_target(&catalog, CATALOG_NEWER, "migrations", "knex_migrations");
    let list = knex(&newer_files, &["migrate:list"]);
    let completed: Vec<String> = names(&t["completed"]);
    assert!(
        list.stdout.contains(&format!(
            "Found {} Completed Migration file/files.",
            completed.len()
        )),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains(&format!(
            "Found 2 Pending Migration file/files.\n{}\n{}",
            CATALOG_ADDED[0], CATALOG_ADDED[1]
        )),
        "{}",
        list.stdout
    );
    let version = knex(&newer_files, &["migrate:currentVersion"]);
    assert!(
        version.stdout.contains(&format!(
            "Current Version: {}",
            t["currentVersion"].as_str().unwrap()
        )),
        "{}",
        version.stdout
    );
    let batches: Vec<i64> = t["completed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["batch"].as_i64().unwrap())
        .collect();
    assert!(
        batches.iter().all(|b| *b == 1),
        "one migrate:latest = one batch"
    );
    assert_eq!(
        snapshot(&catalog),
        before,
        "knex list changed nothing either"
    );

    // The scheduler's table is compared with backend-defaults' scheduler files, in every plugin DB.
    let sched = table_of(&status, "user-settings", SCHEDULER_TABLE);
    assert_eq!(
        sched["filesFrom"],
        format!(
            "{}@{}/migrations/scheduler",
            BACKEND_DEFAULTS.name, BACKEND_DEFAULTS.version
        )
    );
    assert_eq!(
        (
            names(&sched["pending"]).len(),
            names(&sched["missing"]).len()
        ),
        (0, 0)
    );

    // Without a source: what the database holds, nothing pending or missing, exit 0.
    let plain = json_out(plugins.db().args(["status", "--plugin", "catalog"]), 0);
    assert_eq!(plain["source"], Value::Null);
    assert_eq!(plain["databases"].as_array().unwrap().len(), 1);
    assert_eq!(
        names(&table_of(&plain, "catalog", "knex_migrations")["completed"]),
        completed
    );

    // current-version matches knex.
    let (code, out, _) = run(plugins.db().args([
        "current-version",
        "--plugin",
        "catalog",
        "--table",
        "knex_migrations",
    ]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), t["currentVersion"].as_str().unwrap());
    let (_, out, _) = run(plugins.db().args(["current-version", "--plugin", "app"]));
    assert_eq!(out.trim(), "none");
}

#[test]
fn downgrade_shows_missing_with_knex_own_error_and_status_never_writes() {
    let (_, newer) = templates();
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", Some(newer));
    // A lock table with no row and a plugin without a lock table: knex would write to both.
    pg().execute(&catalog, &format!("DELETE FROM {SCHEDULER_TABLE}_lock"))
        .unwrap();
    let before = snapshot(&catalog);
    let (source, status) = status_against(&plugins, CATALOG_OLDER);
    let t = table_of(&status, "catalog", "knex_migrations");
    assert_eq!(names(&t["missing"]), CATALOG_ADDED);
    assert_eq!(names(&t["pending"]), Vec::<String>::new());
    // Backstage with the older image fails with exactly this, as the real knex does:
    let older_files = knex_target(&catalog, CATALOG_OLDER, "migrations", "knex_migrations");
    let real = knex(&older_files, &["migrate:latest"]);
    assert_ne!(real.code, 0);
    assert_eq!(
        real.error_line(),
        format!("Error: {}", t["corruptDirectoryError"].as_str().unwrap())
    );
    assert_eq!(
        t["corruptDirectoryError"],
        format!(
            "The migration directory is corrupt, the following files are missing: {}, {}",
            CATALOG_ADDED[0], CATALOG_ADDED[1]
        )
    );
    let sched = table_of(&status, "catalog", SCHEDULER_TABLE);
    assert_eq!(sched["lock"], json!({"state": "noRows"}));
    assert_eq!(sched["locked"], false);
    assert_eq!(
        snapshot(&catalog),
        before,
        "status is read-only: no lock row created"
    );

    let (code, table, _) = run(plugins
        .db()
        .args(["status", "--source", source.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(table.contains(&format!("catalog knex_migrations: missing (the database is ahead of the code; Backstage would fail with \"The migration directory is corrupt\"): {}, {}", CATALOG_ADDED[0], CATALOG_ADDED[1])), "{table}");

    // -o wide: where the files come from, and the first release that shipped that package version.
    let (code, wide, _) =
        run(plugins
            .db()
            .args(["status", "-o", "wide", "--source", source.to_str().unwrap()]));
    assert_eq!(code, 1);
    let rows: Vec<Vec<&str>> = wide
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][rows[0].len() - 3..],
        ["DATABASE", "FILES", "RELEASE"]
    );
    let files_and_release = |table: &str| -> Vec<&str> {
        let row = rows
            .iter()
            .find(|r| r.len() > 2 && r[0] == "catalog" && r[1] == table)
            .unwrap_or_else(|| panic!("no catalog {table} row: {wide}"));
        row[row.len() - 2..].to_vec()
    };
    assert_eq!(
        files_and_release("knex_migrations"),
        [
            "@backstage/plugin-catalog-backend@3.8.0/migrations",
            "1.52.0"
        ]
    );
    assert_eq!(
        files_and_release(SCHEDULER_TABLE),
        [
            "@backstage/backend-defaults@0.18.0/migrations/scheduler",
            "1.55.0"
        ]
    );
}

/// `catalog` at the older version, its migration lock held.
fn held_catalog(plugins: &mut Plugins) -> String {
    let catalog = plugins.create("catalog", Some(&templates().0));
    pg().execute(&catalog, "UPDATE knex_migrations_lock SET is_locked = 1")
        .unwrap();
    catalog
}

#[test]
fn held_lock_is_reported_and_unlock_releases_it_like_knex() {
    let mut plugins = Plugins::new();
    let catalog = held_catalog(&mut plugins);
    let older_files = knex_target(&catalog, CATALOG_OLDER, "migrations", "knex_migrations");
    let real = knex(&older_files, &["migrate:latest"]);
    assert_ne!(real.code, 0);
    assert!(
        real.stderr.contains("Migration table is already locked"),
        "{}",
        real.stderr
    );

    let status = json_out(plugins.db().args(["status"]), 1);
    let t = table_of(&status, "catalog", "knex_migrations");
    assert_eq!(
        (t["locked"].clone(), t["lock"].clone()),
        (json!(true), json!({"state": "held"}))
    );
    let (_, text, _) = run(plugins.db().args(["status"]));
    assert!(
        text.contains("kubectl backstage db unlock --plugin catalog --table knex_migrations"),
        "{text}"
    );

    // Without a cluster to check for starting pods, unlock refuses and changes nothing.
    let before = snapshot(&catalog);
    let (code, _, err) = run(plugins.db().args([
        "--kubeconfig",
        "/nonexistent",
        "unlock",
        "--plugin",
        "catalog",
    ]));
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: cannot check whether a backend pod is starting")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(snapshot(&catalog), before);

    let (code, out, _) = run(plugins
        .db()
        .args(["unlock", "--plugin", "catalog", "--force", "--yes"]));
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "Release the migration lock of plugin catalog ({catalog}):\n  knex_migrations (knex_migrations_lock, held)\nReleased the lock of catalog knex_migrations (knex_migrations_lock, was held).\n"
        )
    );
    let mut client = pg().client(&catalog);
    let rows: Vec<i32> = column(&mut client, "SELECT is_locked FROM knex_migrations_lock");
    assert_eq!(rows, vec![0]);
    assert_knex_up_to_date(&older_files);
    let (_, out, _) = run(plugins
        .db()
        .args(["unlock", "--plugin", "catalog", "--force"]));
    assert_eq!(
        out,
        "No migration lock of plugin catalog was held; nothing changed.\n"
    );
}

#[test]
fn schema_mode_reads_each_plugin_schema() {
    let mut plugins = Plugins::new();
    let database = plugins.create("shared", None);
    for (schema, package, folder, table) in [
        ("catalog", CATALOG_OLDER, "migrations", "knex_migrations"),
        (
            "search",
            BACKEND_DEFAULTS,
            "migrations/scheduler",
            SCHEDULER_TABLE,
        ),
    ] {
        pg().execute(&database, &format!("CREATE SCHEMA {}", ident(schema)))
            .unwrap();
        let mut target = knex_target(&database, package, folder, table);
        target.search_path = Some(schema.into());
        let out = knex(&target, &["migrate:latest"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let status = json_out(
        plugins.db().args([
            "--division-mode",
            "schema",
            "--database",
            &database,
            "status",
        ]),
        0,
    );
    let dbs: Vec<(String, String, String, Vec<String>)> = status["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let tables = d["tables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["table"].as_str().unwrap().to_string())
                .collect();
            (
                d["plugin"].as_str().unwrap().into(),
                d["database"].as_str().unwrap().into(),
                d["schema"].as_str().unwrap().into(),
                tables,
            )
        })
        .collect();
    assert_eq!(
        dbs,
        vec![
            (
                "catalog".to_string(),
                database.clone(),
                "catalog".to_string(),
                vec!["knex_migrations".to_string()]
            ),
            (
                "search".into(),
                database.clone(),
                "search".into(),
                vec![SCHEDULER_TABLE.to_string()]
            ),
        ]
    );
    let mut target = knex_target(&database, CATALOG_OLDER, "migrations", "knex_migrations");
    target.search_path = Some("catalog".into());
    let version = knex(&target, &["migrate:currentVersion"]);
    let ours = json_out(
        plugins.db().args([
            "--division-mode",
            "schema",
            "--database",
            &database,
            "current-version",
            "--plugin",
            "catalog",
        ]),
        0,
    );
    assert!(
        version.stdout.contains(&format!(
            "Current Version: {}",
            ours["tables"][0]["currentVersion"].as_str().unwrap()
        )),
        "{}",
        version.stdout
    );
}

#[test]
fn tls_modes_and_connection_errors_are_one_line_exit_2() {
    let mut plugins = Plugins::new();
    plugins.create("app", None);
    let ca = pg().ca_pem_path();
    // verify-full with the test CA works for the name in the certificate.
    let (code, out, err) = run(plugins.db().args([
        "list",
        "--sslmode",
        "verify-full",
        "--sslrootcert",
        ca.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{}app", plugins.prefix)));
    // verify-ca checks the chain only; disable talks plain text (pg_hba allows it here).
    for mode in [
        vec![
            "--sslmode",
            "verify-ca",
            "--sslrootcert",
            ca.to_str().unwrap(),
        ],
        vec!["--sslmode", "disable"],
        vec!["--sslrootcert", ca.to_str().unwrap()],
    ] {
        let (code, out, err) = run(plugins.db().args(["list"]).args(&mode));
        assert_eq!(code, 0, "{mode:?}: {err}");
        assert!(out.contains(&format!("{}app", plugins.prefix)), "{mode:?}");
    }
    let (code, _, err) = run(plugins.db().args(["list", "--sslmode", "verify-ca"]));
    assert_eq!(
        code, 2,
        "verify-ca without the CA uses the public roots: {err}"
    );
    // verify-full against the public roots fails: the server's CA is not one of them.
    let (code, _, err) = run(plugins.db().args(["list", "--sslmode", "verify-full"]));
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!(
            "error: TLS with the database server 127.0.0.1:{} failed",
            pg().port()
        )),
        "{err}"
    );

    let fails = |cmd: &mut assert_cmd::Command| {
        let (code, out, err) = run(cmd);
        assert_eq!(code, 2, "{out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        err.trim_end().to_string()
    };
    let err = fails(plugins.db().env("TEST_DB_PASSWORD", "wrong").args(["list"]));
    assert_eq!(
        err,
        format!(
            "error: the database server 127.0.0.1:{} refused the password of user \"{USER}\" (database postgres)",
            pg().port()
        )
    );
    let err = fails(plugins.db().args(["status", "--plugin", "nope"]));
    assert_eq!(
        err,
        format!(
            "error: plugin \"nope\" has no database {}nope on 127.0.0.1; plugins: app",
            plugins.prefix
        )
    );
    let err = fails(plugins.db().args(["status", "--plugin", "a;drop table x"]));
    assert_eq!(
        err,
        "error: --plugin \"a;drop table x\" is not a plugin id (letters, digits, '-' and '_', at most 48)"
    );
    let err = fails(
        plugins
            .db()
            .args(["unlock", "--plugin", "app", "--table", "users"]),
    );
    assert_eq!(
        err,
        "error: --table \"users\" is not a Knex migration table (a name ending in knex_migrations)"
    );
    let err = fails(plugins.db().env_remove("TEST_DB_PASSWORD").args(["list"]));
    assert_eq!(
        err,
        "error: --password-env TEST_DB_PASSWORD: the environment variable is not set"
    );

    // Nothing listens: unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = fails(
        plugins
            .db()
            .args(["list", "--db-port", &closed.to_string()]),
    );
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the database server 127.0.0.1:{closed}: "
        )),
        "{err}"
    );
    // A server that answers the TLS request with 'N' (no TLS), as PostgreSQL with ssl=off does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = listener.accept() {
            let mut request = [0u8; 8];
            let _ = s.read_exact(&mut request);
            let _ = s.write_all(b"N");
        }
    });
    let err = fails(plugins.db().args(["list", "--db-port", &port.to_string()]));
    assert_eq!(
        err,
        format!(
            "error: the database server 127.0.0.1:{port} does not accept TLS (sslmode require); use --sslmode disable only on a trusted network"
        )
    );
}

#[test]
fn psql_gets_the_password_through_a_nameless_0600_file_and_its_exit_code_passes_through() {
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", None);
    // A psql wrapper that records its arguments and the password file's mode, then runs the real psql.
    let bin = plugins.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = plugins.dir.path().join("record");
    let real = which("psql");
    executable(
        &bin.join("psql"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{r}.args'\nstat -L -c %a \"$PGPASSFILE\" > '{r}.mode'\necho \"$PGPASSFILE\" > '{r}.file'\nenv > '{r}.env'\nexec '{real}' \"$@\"\n",
            r = record.display(),
            real = real.display()
        ),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let (code, out, err) = run(plugins.db().env("PATH", &path).args([
        "psql",
        "--plugin",
        "catalog",
        "--",
        "-At",
        "-c",
        "select current_database()",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), catalog);
    let args = std::fs::read_to_string(format!("{}.args", record.display())).unwrap();
    assert!(
        !args.contains(SENTINEL),
        "no password in psql's arguments: {args}"
    );
    assert!(args.contains("sslmode=require"), "{args}");
    assert_eq!(
        std::fs::read_to_string(format!("{}.mode", record.display()))
            .unwrap()
            .trim(),
        "600"
    );
    let file = std::fs::read_to_string(format!("{}.file", record.display())).unwrap();
    // An inherited descriptor with no name on disk (tests/psql_hardening.rs checks it closely).
    assert!(file.starts_with("/dev/fd/"), "{file}");
    let env = std::fs::read_to_string(format!("{}.env", record.display())).unwrap();
    assert!(!env.contains("PGPASSWORD="), "psql does not get PGPASSWORD");

    let (code, _, err) = run(plugins.db().env("PATH", &path).args([
        "psql",
        "--plugin",
        "catalog",
        "--",
        "-c",
        "select 1/0",
    ]));
    assert_eq!(code, 1, "psql's own exit code: {err}");
    assert!(err.contains("division by zero"), "{err}");
}

#[test]
fn verbose_logs_name_where_the_password_came_from_but_never_the_password() {
    let mut plugins = Plugins::new();
    plugins.create("app", None);
    let (code, _, err) = run(plugins.db().args(["-vv", "list"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("environment variable TEST_DB_PASSWORD"),
        "{err}"
    );
    // PGPASSWORD and a password file are the later sources.
    let (code, _, err) = run(plugins.db().env_remove("TEST_DB_PASSWORD").args([
        "list",
        "--password-env",
        "ALSO_UNSET",
    ]));
    assert_eq!(code, 2, "{err}");
    let pgpass = plugins.dir.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{}:*:{USER}:{SENTINEL}\n", pg().port()),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("kubectl-backstage").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", plugins.dir.path());
    cmd.args([
        "-v",
        "db",
        "list",
        "--db-host",
        "127.0.0.1",
        "--db-port",
        &pg().port().to_string(),
        "--db-user",
        USER,
        "--database-prefix",
        &plugins.prefix,
    ]);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{}app", plugins.prefix)));
    assert!(
        err.contains(&format!("password file {}", pgpass.display())),
        "{err}"
    );
}

/// The pod `namespace/name` of the fake cluster with its container running but not ready (a backend
/// starting, maybe migrating right now), not applied yet.
fn unready_pod(cluster: &rig::Rig, namespace: &str, name: &str) -> Value {
    let mut pod = cluster.server.get("Pod", namespace, name).unwrap();
    pod["status"]["containerStatuses"][0]["ready"] = json!(false);
    pod
}

#[test]
fn unlock_refuses_while_a_backend_pod_is_starting() {
    let mut plugins = Plugins::new();
    let catalog = held_catalog(&mut plugins);
    let cluster = rig::Rig::incident();
    // A new backend pod whose container runs but is not ready yet: it may be migrating right now.
    let mut pod = unready_pod(&cluster, "backstage-staging", "backstage-5f6d7c8b9a-h2kxm");
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    cluster.server.apply(pod);
    let before = snapshot(&catalog);
    let (code, _, err) = run(plugins.db().env("KUBECONFIG", &cluster.kubeconfig).args([
        "unlock",
        "--plugin",
        "catalog",
        "-n",
        "backstage-staging",
    ]));
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "error: refusing to unlock: pod backstage-5f6d7c8b9a-h2kxm in namespace backstage-staging is starting and may hold the lock for real; wait with `kubectl backstage health --wait`, or pass --force\n"
    );
    assert_eq!(snapshot(&catalog), before, "nothing changed");

    // The incident namespace has crash-looping pods but none starting: unlock goes ahead.
    let (code, out, err) = run(plugins.db().env("KUBECONFIG", &cluster.kubeconfig).args([
        "unlock",
        "--plugin",
        "catalog",
        "--table",
        "knex_migrations",
        "--yes",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "Release the migration lock of plugin catalog ({catalog}):\n  knex_migrations (knex_migrations_lock, held)\nReleased the lock of catalog knex_migrations (knex_migrations_lock, was held).\n"
        )
    );
    let status = json_out(plugins.db().args(["status", "--plugin", "catalog"]), 0);
    assert_eq!(
        table_of(&status, "catalog", "knex_migrations")["lock"],
        json!({"state": "free"})
    );
}

#[test]
fn password_from_key_vault_through_the_azure_sdk() {
    let mut plugins = Plugins::new();
    plugins.create("catalog", None);
    let vault = keyvault::FakeKeyVault::start("sbox-intsvc");
    vault.add_secret("backstage-psqldb-password", SENTINEL);
    let mut cmd = assert_cmd::Command::cargo_bin("kubectl-backstage").unwrap();
    cmd.env_clear()
        .env("HOME", plugins.dir.path())
        .envs(vault.env(&std::env::var("PATH").unwrap()));
    cmd.arg("db")
        .args(postgres::connection_flags(USER, None, &plugins.prefix));
    cmd.args([
        "--vault",
        "sbox-intsvc",
        "--secret",
        "backstage-psqldb-password",
        "-v",
        "list",
    ]);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{}catalog", plugins.prefix)), "{out}");
    assert!(
        err.contains(
            "Key Vault secret backstage-psqldb-password in https://sbox-intsvc.vault.azure.net/"
        ),
        "{err}"
    );
    let fake_az_args = vault.az_calls();
    assert!(
        fake_az_args.iter().all(|a| !a.contains(SENTINEL)),
        "{fake_az_args:?}"
    );

    // A secret the identity may not read: one line, exit 2, nothing read from the database.
    vault.forbid("backstage-psqldb-password");
    let (code, _, err) = run(&mut cmd);
    assert_eq!(code, 2);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert_eq!(
        err.lines().last().unwrap(),
        "error: Key Vault https://sbox-intsvc.vault.azure.net/ refused access to secret \"backstage-psqldb-password\" (403): give the signed-in identity `get` permission on secrets"
    );
}

// ---- db plan and db rollback -------------------------------------------------------------------

/// The flags of a rollback with the local Knex runner on the checkout `dir`, confirmed.
fn local_runner(dir: &Path) -> Vec<String> {
    vec![
        "--runner".to_string(),
        "local".into(),
        "--source".into(),
        dir.display().to_string(),
        "--yes".into(),
    ]
}

/// The rollback's output names the two migrations 4.0.0 added, newest first.
fn assert_rolled_back_the_added(out: &str) {
    assert!(
        out.contains(&format!(
            "Rolled back: {}, {}\n",
            CATALOG_ADDED[1], CATALOG_ADDED[0]
        )),
        "{out}"
    );
}

/// The last migration catalog-backend 3.8.0 has (4.0.0 adds two after it).
const OLDER_LAST: &str = "20260609000000_drop_search_entity_id_idx.js";

/// Everything a migration can change, for comparing our rollback with knex's: tables, columns,
/// indexes, table and column storage options, and the Knex tables' rows.
fn schema_state(database: &str) -> String {
    let mut client = pg().client(database);
    let mut out = snapshot(database);
    let queries = [
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "SELECT c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1",
        "SELECT c.relname || '.' || a.attname || ' ' || array_to_string(a.attoptions, ',') FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND a.attoptions IS NOT NULL ORDER BY 1",
    ];
    for sql in queries {
        for row in client.query(sql, &[]).unwrap() {
            out.push_str(&row.get::<_, String>(0));
            out.push('\n');
        }
    }
    out
}

/// A fake API server whose two ready Backstage pods run the newer image, with a `node` on their PATH
/// that records its arguments.
fn newer_pods(plugins: &Plugins) -> (rig::Rig, PathBuf) {
    let cluster = rig::Rig::incident();
    let root = checkout(plugins.dir.path(), "pod-root", CATALOG_NEWER);
    let bin = plugins.dir.path().join("pod-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = plugins.dir.path().join("node-args.log");
    executable(
        &bin.join("node"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            record.display(),
            which("node").display()
        ),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for pod in ["backstage-6c9f8d7b54-k4m2x", "backstage-6c9f8d7b54-q8zvn"] {
        cluster.server.set_pod_root(pod, &root);
        cluster.server.set_pod_env(pod, "PATH", &path);
    }
    (cluster, record)
}

#[test]
fn downgrade_story_plan_then_rollback_in_the_newer_pod_matches_knex_down() {
    let (_, newer) = templates();
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", Some(newer));
    let reference = plugins.create("reference", Some(newer));
    let (cluster, node_args) = newer_pods(&plugins);
    let kubeconfig = cluster.kubeconfig.clone();
    let with_cluster = || {
        let mut cmd = plugins.db();
        cmd.env("KUBECONFIG", &kubeconfig);
        cmd
    };

    // The running pod's image is the newer version: in sync. Without --source the pod is the default.
    for args in [
        vec!["status", "--pod", "backstage-6c9f8d7b54-k4m2x"],
        vec!["status"],
    ] {
        let status = json_out(with_cluster().args(&args).args(["--plugin", "catalog"]), 0);
        assert!(
            status["source"]
                .as_str()
                .unwrap()
                .starts_with("pod:backstage-6c9f8d7b54-"),
            "{}",
            status["source"]
        );
        let t = table_of(&status, "catalog", "knex_migrations");
        assert_eq!(
            (names(&t["pending"]).len(), names(&t["missing"]).len()),
            (0, 0),
            "{t}"
        );
        assert_eq!(
            t["filesFrom"],
            format!(
                "{}@{}/migrations",
                CATALOG_NEWER.name, CATALOG_NEWER.version
            )
        );
    }
    // A pod of the older image (a pull-request image in a sandbox, say): the database is ahead of it,
    // and status says so before anything crashes.
    let older_root = checkout(plugins.dir.path(), "older-pod-root", CATALOG_OLDER);
    cluster
        .server
        .set_pod_root("backstage-worker-59c8d7f6b-mz5ql", &older_root);
    let status = json_out(
        with_cluster().args([
            "status",
            "--pod",
            "backstage-worker-59c8d7f6b-mz5ql",
            "--plugin",
            "catalog",
        ]),
        1,
    );
    let t = table_of(&status, "catalog", "knex_migrations");
    assert_eq!(names(&t["missing"]), CATALOG_ADDED);
    assert_eq!(
        t["filesFrom"],
        format!(
            "{}@{}/migrations",
            CATALOG_OLDER.name, CATALOG_OLDER.version
        )
    );
    // A crash-looping pod cannot be exec'd into.
    let (code, _, err) = run(with_cluster().args(["status", "--pod", "backstage-7d9f6b5c8-x2x7p"]));
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "error: cannot exec into pod backstage-7d9f6b5c8-x2x7p: container backstage is CrashLoopBackOff (a crash-looping container cannot run commands); pick a running pod with --pod NAME, or use --source DIR\n"
    );

    // The plan to go back to the older version: exactly the two added migrations, newest first.
    let older = checkout(plugins.dir.path(), "older", CATALOG_OLDER);
    let plan = json_out(
        with_cluster().args([
            "plan",
            "--to",
            older.to_str().unwrap(),
            "--plugin",
            "catalog",
        ]),
        1,
    );
    assert_eq!(plan["rollbackNeeded"], true);
    let tables = plan["databases"][0]["tables"].as_array().unwrap();
    let knex_table = tables
        .iter()
        .find(|t| t["table"] == "knex_migrations")
        .unwrap();
    assert_eq!(
        names(&knex_table["rollback"]),
        [CATALOG_ADDED[1], CATALOG_ADDED[0]]
    );
    assert_eq!(names(&knex_table["upgrade"]), Vec::<String>::new());
    assert_eq!(
        names(&knex_table["commands"]),
        [format!(
            "kubectl backstage db rollback --plugin catalog --to {OLDER_LAST}"
        )]
    );
    let sched = tables
        .iter()
        .find(|t| t["table"] == SCHEDULER_TABLE)
        .unwrap();
    assert_eq!(
        (
            names(&sched["rollback"]).len(),
            names(&sched["upgrade"]).len()
        ),
        (0, 0)
    );
    let (_, text, _) = run(with_cluster().args(["plan", "--to", older.to_str().unwrap()]));
    assert!(
        text.contains("must run with") || text.contains("with the current (newer) code"),
        "{text}"
    );

    // Dry run and a missing --yes change nothing.
    let before = schema_state(&catalog);
    let (code, out, _) = run(with_cluster().args([
        "rollback",
        "--plugin",
        "catalog",
        "--to",
        "20260609000000_drop_search_entity_id_idx",
        "--dry-run",
    ]));
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "  1. {}\n  2. {}\n",
            CATALOG_ADDED[1], CATALOG_ADDED[0]
        )),
        "{out}"
    );
    assert!(out.contains("Dry run: nothing was changed."));
    let (code, _, err) =
        run(with_cluster().args(["rollback", "--plugin", "catalog", "--to", OLDER_LAST]));
    assert_eq!(code, 2);
    assert!(err.contains("stdin is not a terminal; pass --yes"), "{err}");
    assert_eq!(schema_state(&catalog), before);

    // The rollback, through Knex in the newer pod.
    let (code, out, err) = run(with_cluster().args([
        "rollback",
        "--plugin",
        "catalog",
        "--to",
        OLDER_LAST,
        "--pod",
        "backstage-6c9f8d7b54-k4m2x",
        "--yes",
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert_rolled_back_the_added(&out);
    assert!(
        out.contains("Status now (against pod:backstage-6c9f8d7b54-k4m2x)"),
        "{out}"
    );

    // The same state as the real `knex migrate:down` leaves, one migration after the other.
    let newer_files = knex_target(&reference, CATALOG_NEWER, "migrations", "knex_migrations");
    for name in [CATALOG_ADDED[1], CATALOG_ADDED[0]] {
        let down = knex(&newer_files, &["migrate:down", name]);
        assert_eq!(down.code, 0, "{}", down.stderr);
    }
    assert_eq!(
        schema_state(&catalog).replace(&catalog, "DB"),
        schema_state(&reference).replace(&reference, "DB")
    );
    // And the older version now starts clean.
    let older_files = knex_target(&catalog, CATALOG_OLDER, "migrations", "knex_migrations");
    assert_knex_up_to_date(&older_files);

    // The password travelled on stdin only: not in node's arguments, not in any API request.
    let args = std::fs::read_to_string(&node_args).unwrap();
    assert!(
        args.contains("knex.migrate.down"),
        "the runner ran in the pod: {args}"
    );
    assert!(!args.contains(SENTINEL));
    assert!(
        cluster
            .server
            .requests()
            .iter()
            .all(|r| !r.query.contains(SENTINEL) && !r.path.contains(SENTINEL))
    );
}

#[test]
fn last_batch_with_the_local_runner_matches_knex_rollback() {
    let (older, _) = templates();
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", Some(older));
    let reference = plugins.create("reference", Some(older));
    for db in [&catalog, &reference] {
        latest(db, CATALOG_NEWER, "migrations", "knex_migrations");
    }
    let newer = checkout(plugins.dir.path(), "newer", CATALOG_NEWER);
    let (code, out, err) = run(plugins
        .db()
        .args(["rollback", "--plugin", "catalog", "--last-batch"])
        .args(local_runner(&newer)));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("warning: no cluster to check for starting pods"),
        "{err}"
    );
    assert_rolled_back_the_added(&out);
    let rollback = knex(
        &knex_target(&reference, CATALOG_NEWER, "migrations", "knex_migrations"),
        &["migrate:rollback"],
    );
    assert_eq!(rollback.code, 0, "{}", rollback.stderr);
    assert_eq!(
        schema_state(&catalog).replace(&catalog, "DB"),
        schema_state(&reference).replace(&reference, "DB")
    );

    // One named migration, `.js` left off, as `knex migrate:down NAME`.
    let (code, _, err) = run(plugins
        .db()
        .args([
            "rollback",
            "--plugin",
            "catalog",
            "--migration",
            &OLDER_LAST.replace(".js", ""),
        ])
        .args(local_runner(&newer))
        .args(["-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let down = knex(
        &knex_target(&reference, CATALOG_NEWER, "migrations", "knex_migrations"),
        &["migrate:down", OLDER_LAST],
    );
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(
        schema_state(&catalog).replace(&catalog, "DB"),
        schema_state(&reference).replace(&reference, "DB")
    );
}

#[test]
fn rollback_refusals_change_nothing() {
    let (_, newer) = templates();
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", Some(newer));
    let newer_dir = checkout(plugins.dir.path(), "newer", CATALOG_NEWER);
    let older_dir = checkout(plugins.dir.path(), "older", CATALOG_OLDER);
    let before = schema_state(&catalog);
    let refuse = |cmd: &mut assert_cmd::Command, want: &str| {
        let (code, out, err) = run(cmd);
        assert_eq!(code, 2, "{out}\n{err}");
        let line = err.lines().last().unwrap_or_default().to_string();
        assert!(line.starts_with(want), "{line}");
        assert_eq!(
            schema_state(&catalog),
            before,
            "nothing changed after: {line}"
        );
    };

    pg().execute(&catalog, "UPDATE knex_migrations_lock SET is_locked = 1")
        .unwrap();
    let locked_before = schema_state(&catalog);
    let (code, _, err) = run(plugins
        .db()
        .args(["rollback", "--plugin", "catalog", "--last-batch"])
        .args(local_runner(&newer_dir)));
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "error: the migration lock of plugin catalog table knex_migrations is held"
        ),
        "{err}"
    );
    assert_eq!(schema_state(&catalog), locked_before);
    pg().execute(&catalog, "UPDATE knex_migrations_lock SET is_locked = 0")
        .unwrap();

    let missing_files = format!(
        "error: files are missing from the runner's source dir:{}: knex would refuse: The migration directory is corrupt",
        older_dir.display()
    );
    // (rollback flags after `--plugin catalog`, the runner's source, the error line's start)
    let refusals: [(&[&str], &Path, &str); 3] = [
        (
            &["--migration", "20990101000000_never.js"],
            &newer_dir,
            "error: migration \"20990101000000_never.js\" is not completed in",
        ),
        (&["--to", OLDER_LAST], &older_dir, &missing_files),
        (
            &[
                "--table",
                "incremental_ingestion__knex_migrations",
                "--last-batch",
            ],
            &newer_dir,
            "error: plugin \"catalog\" has no migration table",
        ),
    ];
    for (flags, source, want) in refusals {
        refuse(
            plugins
                .db()
                .args(["rollback", "--plugin", "catalog"])
                .args(flags)
                .args(local_runner(source)),
            want,
        );
    }

    // A backend pod starting (maybe migrating with the older code right now).
    let cluster = rig::Rig::incident();
    cluster.server.apply(unready_pod(
        &cluster,
        "backstage",
        "backstage-6c9f8d7b54-k4m2x",
    ));
    refuse(
        plugins
            .db()
            .env("KUBECONFIG", &cluster.kubeconfig)
            .args(["rollback", "--plugin", "catalog", "--to", OLDER_LAST])
            .args(local_runner(&newer_dir)),
        "error: refusing to roll back: pod backstage-6c9f8d7b54-k4m2x in namespace backstage is starting",
    );
    // --runner pod without a cluster.
    refuse(
        plugins.db().args([
            "rollback", "--plugin", "catalog", "--to", OLDER_LAST, "--yes",
        ]),
        "error: --runner pod needs the cluster",
    );
}

#[test]
fn a_rollback_that_fails_part_way_says_what_was_undone_and_frees_the_lock() {
    let mut plugins = Plugins::new();
    let demo = plugins.create("demo", None);
    // A plugin whose middle migration cannot be undone.
    let checkout = plugins.dir.path().join("demo-checkout");
    let migrations: Vec<(&str, String)> = [
        (
            "20250101000000_a.js",
            "demo_a",
            "await knex.schema.dropTable('demo_a');",
        ),
        (
            "20250102000000_b.js",
            "demo_b",
            "throw new Error('boom: demo_b cannot be undone');",
        ),
        (
            "20250103000000_c.js",
            "demo_c",
            "await knex.schema.dropTable('demo_c');",
        ),
    ]
    .into_iter()
    .map(|(file, table, down)| {
        (
            file,
            format!("exports.up = async (knex) => {{ await knex.schema.createTable('{table}', (t) => {{ t.increments('id'); }}); }};\nexports.down = async (knex) => {{ {down} }};\n"),
        )
    })
    .collect();
    let package = demo_plugin_package(&checkout, &migrations);
    for module in ["knex", "pg"] {
        std::os::unix::fs::symlink(
            KnexRig::get().node_modules().join(module),
            checkout.join("node_modules").join(module),
        )
        .unwrap();
    }
    let mut target = knex_target(&demo, CATALOG_OLDER, "migrations", "knex_migrations");
    target.migrations_dir = package.join("migrations");
    assert_eq!(knex(&target, &["migrate:latest"]).code, 0);

    let (code, out, err) = run(plugins
        .db()
        .args([
            "rollback",
            "--plugin",
            "demo",
            "--to",
            "20250101000000_a.js",
        ])
        .args(local_runner(&checkout)));
    // Changed part-way: exit 3, not 2 ("nothing changed"); the report is read back from the database.
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("Rolled back: 20250103000000_c.js\nNOT rolled back (still applied): 20250102000000_b.js\nKnex stopped with: boom: demo_b cannot be undone\n"), "{out}\n{err}");
    assert_eq!(
        err.lines().last().unwrap(),
        "error: the rollback stopped part-way (boom: demo_b cannot be undone): undone 20250103000000_c.js, not undone 20250102000000_b.js; the lock is released"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{err}"
    );
    let mut client = pg().client(&demo);
    let rows: Vec<String> = column(&mut client, "SELECT name FROM knex_migrations ORDER BY id");
    assert_eq!(rows, ["20250101000000_a.js", "20250102000000_b.js"]);
    let locks: Vec<i32> = column(&mut client, "SELECT is_locked FROM knex_migrations_lock");
    assert_eq!(locks, [0]);
    let tables: Vec<String> = column(
        &mut client,
        "SELECT table_name::text FROM information_schema.tables WHERE table_name LIKE 'demo\\_%' ORDER BY 1",
    );
    assert_eq!(tables, ["demo_a", "demo_b"]);
}
