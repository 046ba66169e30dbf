//! The `db` commands against servers that misbehave on the network — one that accepts and never
//! answers, one that stalls in the TLS handshake or in authentication, one that answers something
//! that is not PostgreSQL, a real PostgreSQL whose table is locked — and against a real PostgreSQL
//! whose log must show every session ending with a Terminate, never a reset.
//!
//! Every run of the plugin has a generous kill guard (`assert_cmd`'s timeout) so a regression shows as
//! a failure, not a hung test; no assertion depends on how long anything took.

#[path = "support/postgres.rs"]
mod postgres;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use postgres::{Postgres, plugin_prefix};

/// A run of the plugin that has not ended by then has hung.
const HANG_GUARD: Duration = Duration::from_secs(90);
const PASSWORD_VAR: &str = "TEST_DB_PASSWORD";

/// How a fake server behaves once it has accepted a connection.
#[derive(Clone, Copy)]
enum Fake {
    /// Reads whatever comes and never writes a byte.
    Silent,
    /// Accepts the SSLRequest ("S"), then never answers the TLS ClientHello.
    StallInTls,
    /// Declines TLS ("N"), asks for SCRAM-SHA-256, then never answers the client's first message.
    StallInAuthentication,
    /// Answers like a web server, and hangs up.
    Http,
}

/// Starts a fake server on a free port of 127.0.0.1; it lives until the test binary ends.
fn fake_server(kind: Fake) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(kind, stream));
        }
    });
    port
}

/// A startup-phase message: a 4-byte length (itself included), then the body.
fn startup_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

fn serve(kind: Fake, mut stream: TcpStream) {
    const SSL_REQUEST: [u8; 4] = 80877103u32.to_be_bytes();
    let answer: &[u8] = match kind {
        Fake::Silent => b"",
        Fake::StallInTls => match startup_message(&mut stream) {
            Some(body) if body.starts_with(&SSL_REQUEST) => b"S",
            _ => return,
        },
        Fake::StallInAuthentication => {
            let Some(mut body) = startup_message(&mut stream) else {
                return;
            };
            if body.starts_with(&SSL_REQUEST) {
                let _ = stream.write_all(b"N");
                let Some(startup) = startup_message(&mut stream) else {
                    return;
                };
                body = startup;
            }
            assert!(
                body.starts_with(&196608u32.to_be_bytes()),
                "a startup message"
            );
            // AuthenticationSASL with one mechanism.
            b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"
        }
        Fake::Http => {
            let _ = startup_message(&mut stream);
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
        }
    };
    let _ = stream.write_all(answer);
    if matches!(kind, Fake::Http) {
        return;
    }
    // Never a word more: read until the client goes.
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

/// `kubectl-backstage db --db-host 127.0.0.1 --db-port PORT …` with a password in the environment,
/// a home of its own (no kubeconfig, no config file) and the hang guard.
fn db(port: u16, user: &str, password: &str, home: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("kubectl-backstage").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home)
        .env(PASSWORD_VAR, password)
        .args([
            "db",
            "--db-host",
            "127.0.0.1",
            "--db-port",
            &port.to_string(),
        ])
        .args(["--db-user", user, "--password-env", PASSWORD_VAR])
        .timeout(HANG_GUARD);
    cmd
}

/// Runs the plugin: (exit code, stdout, stderr).
fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs the plugin, which must fail with exit 2, nothing on stdout and one line on stderr; returns it.
fn one_line_failure(cmd: &mut assert_cmd::Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.ends_with('\n'), "{err:?}");
    err.trim_end().to_string()
}

#[test]
fn a_server_that_accepts_and_never_answers_fails_in_the_bound_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let port = fake_server(Fake::Silent);
    let expected = format!("error: database server 127.0.0.1:{port} did not answer within 2s");
    for command in [
        &["status"][..],
        &["list"],
        &["current-version", "--plugin", "app"],
    ] {
        // TLS (the default sslmode require) and plain text stall at the first byte alike.
        for sslmode in ["require", "disable"] {
            let err = one_line_failure(
                db(port, "backstage", "pw", home.path())
                    .args(command)
                    .args(["--sslmode", sslmode, "--request-timeout", "2s"]),
            );
            assert_eq!(err, expected, "{command:?} {sslmode}");
        }
    }
    // $PGCONNECT_TIMEOUT (whole seconds, as libpq reads it) wins over a longer --request-timeout.
    let err = one_line_failure(
        db(port, "backstage", "pw", home.path())
            .env("PGCONNECT_TIMEOUT", "2")
            .args(["status", "--request-timeout", "1h"]),
    );
    assert_eq!(err, expected);
    // And over "0" (wait forever); libpq raises values below 2 to 2.
    let err = one_line_failure(
        db(port, "backstage", "pw", home.path())
            .env("PGCONNECT_TIMEOUT", "1")
            .args(["list", "--request-timeout", "0"]),
    );
    assert_eq!(err, expected);
    let err = one_line_failure(db(port, "backstage", "pw", home.path()).args([
        "list",
        "--request-timeout",
        "1500ms",
    ]));
    assert_eq!(
        err,
        format!("error: database server 127.0.0.1:{port} did not answer within 1500ms")
    );
}

#[test]
fn the_bound_covers_the_tls_handshake_and_authentication() {
    let home = tempfile::tempdir().unwrap();
    let tls = fake_server(Fake::StallInTls);
    let err = one_line_failure(db(tls, "backstage", "pw", home.path()).args([
        "status",
        "--request-timeout",
        "2s",
    ]));
    assert_eq!(
        err,
        format!("error: database server 127.0.0.1:{tls} did not answer within 2s")
    );
    let auth = fake_server(Fake::StallInAuthentication);
    for sslmode in ["disable", "require"] {
        let (code, out, err) = run(db(auth, "backstage", "pw", home.path()).args([
            "list",
            "--sslmode",
            sslmode,
            "--request-timeout",
            "2s",
        ]));
        match sslmode {
            // The server declined TLS: sslmode require refuses to go on in plain text.
            "require" => {
                assert_eq!(code, 2, "{out}{err}");
                assert_eq!(
                    err,
                    format!(
                        "error: the database server 127.0.0.1:{auth} does not accept TLS (sslmode require); use --sslmode disable only on a trusted network\n"
                    )
                );
            }
            _ => {
                assert_eq!(code, 2, "{out}{err}");
                assert_eq!(
                    err,
                    format!("error: database server 127.0.0.1:{auth} did not answer within 2s\n")
                );
            }
        }
    }
}

#[test]
fn a_server_that_is_not_postgresql_is_one_clear_line() {
    let home = tempfile::tempdir().unwrap();
    let port = fake_server(Fake::Http);
    for sslmode in ["disable", "require"] {
        let err = one_line_failure(db(port, "backstage", "pw", home.path()).args([
            "status",
            "--sslmode",
            sslmode,
            "--request-timeout",
            "2s",
        ]));
        assert_eq!(
            err,
            format!("error: the server at 127.0.0.1:{port} does not speak the PostgreSQL protocol"),
            "{sslmode}"
        );
    }
}

fn pg() -> &'static Postgres {
    static LOGGING: OnceLock<()> = OnceLock::new();
    let pg = Postgres::shared();
    LOGGING.get_or_init(|| {
        // Every session's end in the log, with its application and database, and the DEBUG1 line
        // PostgreSQL writes when a client goes without a Terminate ("unexpected EOF on client
        // connection"). New sessions pick the settings up after the reload.
        for sql in [
            "ALTER SYSTEM SET log_disconnections = on",
            "ALTER SYSTEM SET log_min_messages = debug1",
            "ALTER SYSTEM SET log_line_prefix = '%m [%p] app=%a db=%d '",
            "SELECT pg_reload_conf()",
        ] {
            pg.execute("postgres", sql).unwrap();
        }
    });
    pg
}

/// Plugin databases with a prefix of their own, each holding a migration table and a free lock
/// (as Knex leaves them), dropped at the end.
struct Plugins {
    prefix: String,
    names: Vec<String>,
}

impl Plugins {
    fn new(plugins: &[&str]) -> Plugins {
        let prefix = plugin_prefix('n');
        let mut names = Vec::new();
        for plugin in plugins {
            let name = format!("{prefix}{plugin}");
            pg().create_named(&name);
            pg().execute(
                &name,
                "CREATE TABLE knex_migrations (id serial PRIMARY KEY, name varchar(255), batch integer, migration_time timestamptz); \
                 CREATE TABLE knex_migrations_lock (index serial PRIMARY KEY, is_locked integer); \
                 INSERT INTO knex_migrations (name, batch, migration_time) VALUES ('20240101_init.js', 1, '2024-01-01 10:00:00.123456+00'); \
                 INSERT INTO knex_migrations_lock (is_locked) VALUES (0)",
            )
            .unwrap();
            names.push(name);
        }
        Plugins { prefix, names }
    }

    fn db(&self, home: &std::path::Path) -> assert_cmd::Command {
        let mut cmd = db(pg().port(), pg().superuser(), pg().password(), home);
        cmd.args(["--database-prefix", &self.prefix, "--sslmode", "require"]);
        cmd
    }
}

impl Drop for Plugins {
    fn drop(&mut self) {
        for name in &self.names {
            pg().drop_named(name);
        }
    }
}

/// The server log's lines about the plugin's sessions in `databases`.
fn plugin_log_lines(databases: &[&str]) -> Vec<String> {
    let log = std::fs::read_to_string(pg().log_path()).unwrap();
    log.lines()
        .filter(|l| l.contains("app=kubectl-backstage "))
        .filter(|l| databases.iter().any(|d| l.contains(&format!(" db={d} "))))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_session_ends_with_a_terminate_not_a_reset() {
    let home = tempfile::tempdir().unwrap();
    let plugins = Plugins::new(&["app", "catalog", "auth"]);
    let mut databases: Vec<&str> = plugins.names.iter().map(String::as_str).collect();
    databases.push("postgres");
    let before = plugin_log_lines(&databases).len();

    let (code, out, err) = run(plugins.db(home.path()).args(["status", "-o", "json"]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(plugins.db(home.path()).args(["list"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{}catalog", plugins.prefix)), "{out}");
    let (code, out, err) =
        run(plugins
            .db(home.path())
            .args(["current-version", "--plugin", "auth"]));
    assert_eq!((code, out.as_str()), (0, "20240101\n"), "{err}");

    // Each run: one session to list the databases, then one per plugin database read: 3 + 3 + 1.
    let own_sessions = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("disconnection: session time:"))
            .filter(|l| {
                plugins
                    .names
                    .iter()
                    .any(|d| l.contains(&format!(" db={d} ")))
            })
            .count()
    };
    // The server writes a session's last lines after the client has gone: wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let lines = plugin_log_lines(&databases)[before..].to_vec();
        if own_sessions(&lines) >= 7 || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(own_sessions(&lines), 7, "{lines:#?}");
    let bad: Vec<&String> = lines
        .iter()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("connection reset by peer")
                || l.contains("unexpected eof")
                || l.contains("could not receive data")
                || l.contains("could not send data")
        })
        .collect();
    assert!(
        bad.is_empty(),
        "sessions ended without a Terminate: {bad:#?}"
    );
}

#[test]
fn a_query_blocked_by_a_lock_fails_in_the_bound_and_is_cancelled() {
    let home = tempfile::tempdir().unwrap();
    let plugins = Plugins::new(&["app"]);
    let database = &plugins.names[0];
    // A migration holds the table, as ALTER TABLE does, for longer than the bound.
    let mut holder = pg().client(database);
    let mut migration = holder.transaction().unwrap();
    migration
        .batch_execute("LOCK TABLE knex_migrations IN ACCESS EXCLUSIVE MODE")
        .unwrap();

    let err = one_line_failure(
        plugins
            .db(home.path())
            .args(["status", "--request-timeout", "2s"]),
    );
    assert_eq!(
        err,
        format!(
            "error: database server 127.0.0.1:{} did not answer within 2s (read migration tables in database {database})",
            pg().port()
        )
    );
    // The plugin's query was cancelled on the server: nothing of it waits for the lock any more.
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = |client: &mut ::postgres::Client| -> i64 {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kubectl-backstage' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let mut observer = pg().client("postgres");
    while waiting(&mut observer) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(waiting(&mut observer), 0, "the timed-out query still waits");
    migration.rollback().unwrap();
}
