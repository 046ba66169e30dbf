//! `db unlock` against a real PostgreSQL, with lock tables made by the real knex CLI: the plan,
//! `--dry-run`, `--yes`, the refusal without a terminal (and the question on a real pseudo-terminal),
//! one transaction per lock (a statement-level audit trigger records every write and its
//! transaction), a second session holding the lock rows `FOR UPDATE`, and exit 3 when a release
//! fails after another succeeded.

#[path = "support/npm.rs"]
mod npm;
#[path = "support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use npm::{KnexRig, KnexTarget};
use postgres::{Postgres, connection_flags, ident, output_without_password, plugin_prefix};
use serde_json::{Value, json};

const USER: &str = "backstage_admin";
const SENTINEL: &str = "S3ntinel-pw-unlock-5e1";
const SCHEDULER: &str = "backstage_backend_tasks__knex_migrations";
const NO_TERMINAL: &str = "error: refusing to change the database without confirmation: stdin is not a terminal; pass --yes (or --dry-run to only see the plan)\n";

fn pg() -> &'static Postgres {
    Postgres::shared_with_admin(USER, SENTINEL)
}

/// One plugin database, `catalog`, with two Knex migration tables made by `knex migrate:latest`
/// (`knex_migrations` and the scheduler's), an audit of every write to their lock tables, and the
/// database dropped at the end.
struct Catalog {
    prefix: String,
    database: String,
    dir: tempfile::TempDir,
}

impl Catalog {
    fn new() -> Catalog {
        let prefix = plugin_prefix('u');
        let database = format!("{prefix}catalog");
        pg().create_named(&database);
        let dir = tempfile::tempdir().unwrap();
        let migrations = dir.path().join("migrations");
        std::fs::create_dir(&migrations).unwrap();
        std::fs::write(
            migrations.join("20250101000000_init.js"),
            "exports.up = async () => {};\nexports.down = async () => {};\n",
        )
        .unwrap();
        let catalog = Catalog {
            prefix,
            database,
            dir,
        };
        for table in ["knex_migrations", SCHEDULER] {
            let out = catalog.knex(table, &["migrate:latest"]);
            assert_eq!(out.code, 0, "knex migrate:latest: {}", out.stderr);
        }
        catalog.sql(
            "CREATE TABLE lock_audit (n serial, tx bigint, op text, lock_table text);
             CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN INSERT INTO lock_audit (tx, op, lock_table) VALUES (txid_current(), TG_OP, TG_TABLE_NAME); RETURN NULL; END $$;
             CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON knex_migrations_lock
               FOR EACH STATEMENT EXECUTE FUNCTION audit();
             CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON backstage_backend_tasks__knex_migrations_lock
               FOR EACH STATEMENT EXECUTE FUNCTION audit();",
        );
        catalog
    }

    fn knex(&self, table: &str, args: &[&str]) -> npm::KnexOutput {
        KnexRig::get().run(
            &KnexTarget {
                host: pg().host().into(),
                port: pg().port(),
                user: USER.into(),
                password: SENTINEL.into(),
                database: self.database.clone(),
                migrations_dir: self.dir.path().join("migrations"),
                table: table.into(),
                search_path: None,
                ssl_root_cert: None,
            },
            args,
        )
    }

    fn sql(&self, sql: &str) {
        pg().execute(&self.database, sql).unwrap();
    }

    fn hold(&self, table: &str) {
        self.sql(&format!(
            "UPDATE {} SET is_locked = 1",
            ident(&format!("{table}_lock"))
        ));
        // The test's own writes are not the plugin's.
        self.sql("TRUNCATE lock_audit");
    }

    /// `is_locked` of every row of a lock table, by index.
    fn locks(&self, table: &str) -> Vec<i32> {
        let mut client = pg().client(&self.database);
        client
            .query(
                &format!(
                    "SELECT is_locked FROM {} ORDER BY index",
                    ident(&format!("{table}_lock"))
                ),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Every write to a lock table since the last `hold`: (statement, lock table), and how many
    /// transactions they were made in.
    fn audit(&self) -> (Vec<(String, String)>, i64) {
        let mut client = pg().client(&self.database);
        let writes = client
            .query("SELECT op, lock_table FROM lock_audit ORDER BY n", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let transactions = client
            .query_one("SELECT count(DISTINCT tx) FROM lock_audit", &[])
            .unwrap()
            .get(0);
        (writes, transactions)
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec!["db".to_string()];
        args.extend(connection_flags(
            USER,
            Some("TEST_DB_PASSWORD"),
            &self.prefix,
        ));
        args
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", self.dir.path())
            .env("TEST_DB_PASSWORD", SENTINEL);
        cmd
    }

    /// `kubectl-backstage db … unlock --plugin catalog --force ARGS` with stdin not a terminal.
    fn unlock(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(&binary());
        cmd.args(self.args())
            .args(["unlock", "--plugin", "catalog", "--force"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn plan(&self, tables: &[&str]) -> String {
        let mut out = match tables.len() {
            1 => format!(
                "Release the migration lock of plugin catalog ({}):\n",
                self.database
            ),
            n => format!(
                "Release {n} migration locks of plugin catalog ({}):\n",
                self.database
            ),
        };
        for t in tables {
            out.push_str(&format!("  {t} ({t}_lock, held)\n"));
        }
        out
    }
}

impl Drop for Catalog {
    fn drop(&mut self) {
        pg().drop_named(&self.database);
    }
}

fn binary() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_kubectl-backstage").into()
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let (status, stdout, stderr) = output_without_password(cmd.output().unwrap(), SENTINEL);
    (status.code().unwrap_or(-1), stdout, stderr)
}

const NO_WRITES: (Vec<(String, String)>, i64) = (Vec::new(), 0);

#[test]
fn dry_run_and_no_terminal_print_the_plan_and_change_nothing() {
    let catalog = Catalog::new();
    catalog.hold("knex_migrations");
    catalog.hold(SCHEDULER);
    let plan = catalog.plan(&["knex_migrations", SCHEDULER]);

    let (code, out, err) = run(&mut catalog.unlock(&["--dry-run"]));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("{plan}Dry run: nothing was changed.\n"));
    assert_eq!(catalog.locks("knex_migrations"), [1]);
    assert_eq!(catalog.locks(SCHEDULER), [1]);
    assert_eq!(catalog.audit(), NO_WRITES);

    let (code, out, err) = run(&mut catalog.unlock(&["--dry-run", "-o", "json"]));
    assert_eq!((code, err.as_str()), (0, ""));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report,
        json!({
            "kind": "DbUnlock", "plugin": "catalog", "database": catalog.database, "schema": null,
            "dryRun": true,
            "plan": [
                {"table": "knex_migrations", "lockTable": "knex_migrations_lock", "state": {"state": "held"}},
                {"table": SCHEDULER, "lockTable": format!("{SCHEDULER}_lock"), "state": {"state": "held"}},
            ],
            "released": [], "alreadyFree": [], "notReleased": [], "error": null,
        })
    );

    // No --yes and stdin is not a terminal: the plan, then one error line, exit 2.
    let (code, out, err) = run(&mut catalog.unlock(&[]));
    assert_eq!(code, 2);
    assert_eq!(out, plan);
    assert_eq!(err, NO_TERMINAL);
    assert_eq!(catalog.locks("knex_migrations"), [1]);
    assert_eq!(catalog.locks(SCHEDULER), [1]);
    assert_eq!(catalog.audit(), NO_WRITES);
}

#[test]
fn yes_releases_each_lock_in_one_transaction_and_knex_can_migrate_again() {
    let catalog = Catalog::new();
    catalog.hold("knex_migrations");
    catalog.hold(SCHEDULER);
    let held = catalog.knex("knex_migrations", &["migrate:latest"]);
    assert!(
        held.stderr.contains("Migration table is already locked"),
        "{}",
        held.stderr
    );

    let (code, out, err) = run(&mut catalog.unlock(&["--table", "knex_migrations", "--yes"]));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "{}Released the lock of catalog knex_migrations (knex_migrations_lock, was held).\n",
            catalog.plan(&["knex_migrations"])
        )
    );
    assert_eq!(catalog.locks("knex_migrations"), [0]);
    assert_eq!(
        catalog.locks(SCHEDULER),
        [1],
        "--table leaves the other alone"
    );
    // One UPDATE of the row, in one transaction (the SELECT … FOR UPDATE writes nothing).
    assert_eq!(
        catalog.audit(),
        (vec![("UPDATE".into(), "knex_migrations_lock".into())], 1)
    );
    let latest = catalog.knex("knex_migrations", &["migrate:latest"]);
    assert_eq!(latest.code, 0, "{}", latest.stderr);

    // Not held any more: says so, exit 0, no write.
    catalog.sql("TRUNCATE lock_audit");
    let (code, out, err) = run(&mut catalog.unlock(&["--table", "knex_migrations", "--yes"]));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "The migration lock of plugin catalog table knex_migrations is not held; nothing changed.\n"
    );
    assert_eq!(catalog.audit(), NO_WRITES);

    // Irregular rows (two free rows: Knex fails as "already locked"): replaced by one free row, as
    // `knex migrate:unlock` does, in one transaction.
    catalog.sql("INSERT INTO knex_migrations_lock (is_locked) VALUES (0)");
    catalog.sql("TRUNCATE lock_audit");
    let (code, out, err) = run(&mut catalog.unlock(&["--yes", "-o", "json"]));
    assert_eq!((code, err.as_str()), (0, ""));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["released"],
        json!([
            {"table": "knex_migrations", "lockTable": "knex_migrations_lock",
             "was": {"state": "irregular", "rows": 2, "freeRows": 2}},
            {"table": SCHEDULER, "lockTable": format!("{SCHEDULER}_lock"), "was": {"state": "held"}},
        ])
    );
    assert_eq!(catalog.locks("knex_migrations"), [0]);
    assert_eq!(catalog.locks(SCHEDULER), [0]);
    let (writes, transactions) = catalog.audit();
    assert_eq!(
        writes,
        [
            ("DELETE".to_string(), "knex_migrations_lock".to_string()),
            ("INSERT".into(), "knex_migrations_lock".into()),
            ("UPDATE".into(), format!("{SCHEDULER}_lock")),
        ]
    );
    assert_eq!(transactions, 2, "one transaction per lock");
    for table in ["knex_migrations", SCHEDULER] {
        let latest = catalog.knex(table, &["migrate:latest"]);
        assert_eq!(latest.code, 0, "{table}: {}", latest.stderr);
    }

    // Nothing held at all.
    let (code, out, _) = run(&mut catalog.unlock(&["--yes"]));
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "No migration lock of plugin catalog was held; nothing changed.\n"
    );
}

/// A second session: `BEGIN; SELECT … FROM <lock table> FOR UPDATE`, left open.
fn hold_rows(catalog: &Catalog, table: &str) -> ::postgres::Transaction<'static> {
    let client = Box::leak(Box::new(pg().client(&catalog.database)));
    let mut transaction = client.transaction().unwrap();
    transaction
        .query(
            &format!(
                "SELECT * FROM {} FOR UPDATE",
                ident(&format!("{table}_lock"))
            ),
            &[],
        )
        .unwrap();
    transaction
}

/// `unlock --yes` started while another session holds the lock rows, once it waits for them.
fn unlock_waiting_for(catalog: &Catalog) -> std::process::Child {
    let child = catalog
        .unlock(&["--yes", "--request-timeout", "120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_the_plugin_waits(catalog);
    child
}

/// Waits until the plugin's session waits for a row lock in the database.
fn wait_until_the_plugin_waits(catalog: &Catalog) {
    let mut client = pg().client("postgres");
    let start = Instant::now();
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'kubectl-backstage' AND wait_event_type = 'Lock'",
                &[&catalog.database],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        // A guard against a hang, not a timing assertion.
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the plugin never waited for the row lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_session_holding_the_lock_rows_is_waited_for_never_overwritten() {
    let catalog = Catalog::new();
    catalog.hold("knex_migrations");

    // The holder never lets go: the bounded wait ends, nothing changed, exit 2.
    let holder = hold_rows(&catalog, "knex_migrations");
    let (code, out, err) = run(&mut catalog.unlock(&["--yes", "--request-timeout", "3s"]));
    assert_eq!(code, 2, "{out}\n{err}");
    assert_eq!(out, catalog.plan(&["knex_migrations"]));
    assert_eq!(
        err,
        format!(
            "error: release public.knex_migrations_lock in database {} failed: another session kept its rows locked for more than 3s (a pod may be taking the lock right now); this lock was not changed\n",
            catalog.database
        )
    );
    holder.rollback().unwrap();
    assert_eq!(catalog.locks("knex_migrations"), [1]);
    assert_eq!(catalog.audit(), NO_WRITES);

    // The holder frees the lock itself while the plugin waits: the plugin reads the row again under
    // its own row lock and leaves it alone.
    let mut holder = hold_rows(&catalog, "knex_migrations");
    let child = unlock_waiting_for(&catalog);
    holder
        .execute("UPDATE knex_migrations_lock SET is_locked = 0", &[])
        .unwrap();
    holder.commit().unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!((out.status.code(), stderr.as_str()), (Some(0), ""));
    assert_eq!(
        stdout,
        format!(
            "{}Left the lock of catalog knex_migrations alone: another session freed it first (knex_migrations_lock, now free).\n",
            catalog.plan(&["knex_migrations"])
        )
    );
    // Only the holder's UPDATE.
    assert_eq!(
        catalog.audit(),
        (vec![("UPDATE".into(), "knex_migrations_lock".into())], 1)
    );

    // The holder commits without freeing it: the plugin, having waited, releases it.
    catalog.hold("knex_migrations");
    let holder = hold_rows(&catalog, "knex_migrations");
    let child = unlock_waiting_for(&catalog);
    holder.commit().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8(out.stdout).unwrap().ends_with(
        "Released the lock of catalog knex_migrations (knex_migrations_lock, was held).\n"
    ));
    assert_eq!(catalog.locks("knex_migrations"), [0]);
}

#[test]
fn a_release_that_fails_after_another_succeeded_exits_3_with_what_was_and_was_not_released() {
    let catalog = Catalog::new();
    catalog.hold("knex_migrations");
    catalog.hold(SCHEDULER);
    // The scheduler's lock rows are held by another session; knex_migrations comes first.
    let holder = hold_rows(&catalog, SCHEDULER);
    let (code, out, err) = run(&mut catalog.unlock(&["--yes", "--request-timeout", "3s"]));
    holder.rollback().unwrap();
    assert_eq!(code, 3, "{out}\n{err}");
    assert_eq!(
        out,
        format!(
            "{}Released the lock of catalog knex_migrations (knex_migrations_lock, was held).\nNOT released: the lock of catalog {SCHEDULER} ({SCHEDULER}_lock, still held).\n",
            catalog.plan(&["knex_migrations", SCHEDULER])
        )
    );
    assert_eq!(
        err,
        format!(
            "error: the unlock stopped part-way (release public.{SCHEDULER}_lock in database {} failed: another session kept its rows locked for more than 3s (a pod may be taking the lock right now); this lock was not changed): released knex_migrations, not released {SCHEDULER}\n",
            catalog.database
        )
    );
    assert_eq!(catalog.locks("knex_migrations"), [0]);
    assert_eq!(catalog.locks(SCHEDULER), [1]);
    assert_eq!(
        catalog.audit(),
        (vec![("UPDATE".into(), "knex_migrations_lock".into())], 1)
    );

    // The same in JSON: the document says what was and was not released.
    catalog.hold("knex_migrations");
    let holder = hold_rows(&catalog, SCHEDULER);
    let (code, out, _) =
        run(&mut catalog.unlock(&["--yes", "--request-timeout", "3s", "-o", "json"]));
    holder.rollback().unwrap();
    assert_eq!(code, 3);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(names(&report["released"]), ["knex_migrations"]);
    assert_eq!(names(&report["notReleased"]), [SCHEDULER]);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("another session kept its rows locked for more than 3s"),
        "{report}"
    );
}

fn names(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["table"].as_str().unwrap().to_string())
        .collect()
}

/// The question on a real pseudo-terminal (util-linux `script`): "n" refuses and changes nothing,
/// "y" releases.
#[test]
fn the_question_on_a_terminal() {
    let catalog = Catalog::new();
    catalog.hold("knex_migrations");
    let script = Path::new("/usr/bin/script");
    assert!(
        script.is_file(),
        "util-linux script is needed for this test"
    );
    let ask = |answer: &str| {
        let mut line = vec![binary().display().to_string()];
        line.extend(catalog.args());
        line.extend(
            [
                "unlock",
                "--plugin",
                "catalog",
                "--force",
                "--table",
                "knex_migrations",
            ]
            .map(String::from),
        );
        let mut cmd = catalog.command(script);
        cmd.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n"),
        )
    };

    let (code, screen) = ask("n\n");
    assert_eq!(code, Some(2), "{screen}");
    assert!(screen.contains("Release the lock? [y/N] "), "{screen}");
    assert!(
        screen.ends_with("error: not confirmed; nothing was changed\n"),
        "{screen}"
    );
    assert_eq!(catalog.locks("knex_migrations"), [1]);
    assert_eq!(catalog.audit(), NO_WRITES);

    let (code, screen) = ask("y\n");
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.ends_with(
            "Released the lock of catalog knex_migrations (knex_migrations_lock, was held).\n"
        ),
        "{screen}"
    );
    assert_eq!(catalog.locks("knex_migrations"), [0]);
    assert_eq!(
        catalog.audit(),
        (vec![("UPDATE".into(), "knex_migrations_lock".into())], 1)
    );
}
