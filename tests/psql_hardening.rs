//! `db psql` and the local Knex runner under attack: the password is never a file with a name (not in
//! the plugin's TMPDIR, whatever signal ends the plugin, SIGKILL included), never in psql's or node's
//! argv or environ; SIGTERM/SIGHUP/SIGINT reach psql and its status is the plugin's; a server that
//! never answers and a plugin without a database are one `error:` line before psql starts.
//!
//! Every run gets a private TMPDIR, scanned for the password afterwards, and a `psql` wrapper on PATH
//! that records its pid, argv, environ and what `$PGPASSFILE` is, then `exec`s the real psql (so the
//! recorded pid is psql's).

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/programs.rs"]
mod programs;

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postgres::{Postgres, output_without_password, plugin_prefix};
use programs::{demo_plugin_package, executable, which};
use rustix::process::{Pid, Signal};

const USER: &str = "backstage_psql_admin";
const SENTINEL: &str = "S3ntinel-pw-psql-51c2e8";
/// `db psql` running a query that sleeps for 4 s.
const PSQL_SLEEP: &[&str] = &[
    "psql",
    "--plugin",
    "catalog",
    "--",
    "-c",
    "select pg_sleep(4)",
];
/// How long a condition the test waits for may take before the test fails (never asserted on).
const PATIENCE: Duration = Duration::from_secs(60);

fn pg() -> &'static Postgres {
    Postgres::shared_with_admin(USER, SENTINEL)
}

/// One plugin database `<prefix>catalog`, a private HOME, TMPDIR and a bin folder with the wrappers.
struct Case {
    prefix: String,
    database: String,
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let prefix = plugin_prefix('h');
        let database = format!("{prefix}catalog");
        pg().create_named(&database);
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "tmp", "bin", "record"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let record = dir.path().join("record");
        executable(
            &dir.path().join("bin/psql"),
            &format!(
                "#!/bin/sh\n\
                 echo $$ > '{r}/pid'\n\
                 printf '%s\\n' \"$@\" > '{r}/args'\n\
                 env > '{r}/env'\n\
                 stat -L -c '%a %F' \"$PGPASSFILE\" > '{r}/stat'\n\
                 readlink \"$PGPASSFILE\" > '{r}/link'\n\
                 exec '{real}' \"$@\"\n",
                r = record.display(),
                real = which("psql").display()
            ),
        );
        Case {
            prefix,
            database,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn recorded(&self, what: &str) -> String {
        std::fs::read_to_string(self.path("record").join(what))
            .unwrap_or_else(|e| panic!("the psql wrapper recorded no {what}: {e}"))
    }

    /// `kubectl-backstage <global> db <connection flags> <args>` with a clean environment.
    fn command(&self, global: &[&str], args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-backstage"));
        cmd.env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.path("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("HOME", self.path("home"))
            .env("TMPDIR", self.path("tmp"))
            .env("TEST_DB_PASSWORD", SENTINEL)
            .env("PGPASSWORD", SENTINEL)
            .args(global)
            .arg("db")
            .args([
                "--db-host",
                pg().host(),
                "--db-port",
                &pg().port().to_string(),
            ])
            .args(["--db-user", USER, "--password-env", "TEST_DB_PASSWORD"])
            .args(["--database-prefix", &self.prefix])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Files under the private TMPDIR (recursively) whose bytes contain the password.
    fn password_files_in_tmpdir(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if std::fs::read(&path)
                    .is_ok_and(|b| b.windows(SENTINEL.len()).any(|w| w == SENTINEL.as_bytes()))
                {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.path("tmp"), &mut found);
        found
    }

    /// Waits until psql's `pg_sleep` query is running on the plugin database.
    fn wait_for_sleeping_psql(&self, plugin: &mut Child) {
        let started = Instant::now();
        let mut client = pg().client("postgres");
        loop {
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' \
                     AND application_name = 'kubectl-backstage psql' AND query LIKE '%pg_sleep%'",
                    &[&self.database],
                )
                .unwrap()
                .get(0);
            if n == 1 {
                return;
            }
            if let Some(status) = plugin.try_wait().unwrap() {
                panic!("the plugin exited ({status}) before psql connected");
            }
            assert!(started.elapsed() < PATIENCE, "psql never connected");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn psql_pid(&self) -> Pid {
        Pid::from_raw(self.recorded("pid").trim().parse().unwrap()).unwrap()
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        pg().drop_named(&self.database);
    }
}

/// Whether a process is gone (or a zombie nobody reaps).
fn gone(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_pid())).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// What a running psql was started with and holds open: argv, environ, and its descriptors' targets.
fn live_process(pid: Pid) -> (String, String, Vec<String>) {
    live_process_if_running(pid).expect("psql is running")
}

/// The same, or `None` when the process has ended meanwhile (its /proc entry is gone).
fn live_process_if_running(pid: Pid) -> Option<(String, String, Vec<String>)> {
    let proc = PathBuf::from(format!("/proc/{}", pid.as_raw_pid()));
    let text = |name: &str| {
        std::fs::read(proc.join(name))
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', "\n"))
    };
    let fds = std::fs::read_dir(proc.join("fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .collect();
    Some((text("cmdline")?, text("environ")?, fds))
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

fn output(child: Child) -> (std::process::ExitStatus, String, String) {
    output_without_password(child.wait_with_output().unwrap(), SENTINEL)
}

/// The plugin in a process group of its own (so it is not a terminal's foreground group), running
/// `select pg_sleep(4)` in psql, once psql is connected.
fn sleeping_psql(case: &Case) -> Child {
    let mut plugin = case
        .command(&["-v"], PSQL_SLEEP)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    case.wait_for_sleeping_psql(&mut plugin);
    plugin
}

#[test]
fn psql_reads_the_password_from_a_nameless_0600_descriptor_never_from_argv_or_environ() {
    let case = Case::new();
    let out = case
        .command(
            &["--request-timeout", "2500ms"],
            &[
                "psql",
                "--plugin",
                "catalog",
                "--",
                "-At",
                "-c",
                "select current_user",
            ],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!("{USER}\n"),
        "psql logged in with the password"
    );
    assert!(!stderr.contains(SENTINEL));

    let args = case.recorded("args");
    assert!(!args.contains(SENTINEL), "{args}");
    let conninfo = args.lines().next().unwrap();
    assert_eq!(
        conninfo,
        format!(
            "host='127.0.0.1' port={} dbname='{}' user='{USER}' sslmode=require application_name='kubectl-backstage psql' connect_timeout=3",
            pg().port(),
            case.database
        )
    );
    let env = case.recorded("env");
    assert!(!env.contains(SENTINEL), "{env}");
    assert!(!env.contains("TEST_DB_PASSWORD="), "{env}");
    assert!(!env.contains("PGPASSWORD="), "{env}");
    let passfile = env
        .lines()
        .find_map(|l| l.strip_prefix("PGPASSFILE="))
        .unwrap();
    let fd: u32 = passfile
        .strip_prefix("/dev/fd/")
        .unwrap_or_else(|| panic!("PGPASSFILE={passfile}"))
        .parse()
        .unwrap();
    assert!(fd > 2, "not one of psql's standard streams: {fd}");
    assert_eq!(case.recorded("stat"), "600 regular file\n");
    assert_eq!(
        case.recorded("link"),
        "/memfd:kubectl-backstage-pgpass (deleted)\n",
        "a memfd: never a name on disk"
    );
    assert_eq!(case.password_files_in_tmpdir(), Vec::<PathBuf>::new());
    assert_eq!(
        std::fs::read_dir(case.path("tmp")).unwrap().count(),
        0,
        "nothing at all in TMPDIR"
    );
}

#[test]
fn sigterm_and_sighup_end_psql_and_the_plugin_exits_128_plus_the_signal() {
    for (signal, code) in [(Signal::TERM, 143), (Signal::HUP, 129)] {
        let case = Case::new();
        let plugin = sleeping_psql(&case);
        let psql = case.psql_pid();
        // While psql runs: the password is in no file by name and not in psql's argv or environ.
        let (cmdline, environ, fds) = live_process(psql);
        assert!(!cmdline.contains(SENTINEL) && !environ.contains(SENTINEL));
        assert!(!environ.contains("TEST_DB_PASSWORD=") && !environ.contains("PGPASSWORD="));
        assert!(
            fds.iter()
                .any(|f| f == "/memfd:kubectl-backstage-pgpass (deleted)"),
            "{fds:?}"
        );
        assert_eq!(case.password_files_in_tmpdir(), Vec::<PathBuf>::new());

        let pid = Pid::from_raw(plugin.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let (status, _, stderr) = output(plugin);
        assert_eq!(status.code(), Some(code), "{signal:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "forwarding a signal to psql signal={}",
                signal.as_raw()
            )),
            "{stderr}"
        );
        assert!(gone(psql), "psql ended with the plugin");
        assert_eq!(case.password_files_in_tmpdir(), Vec::<PathBuf>::new());
    }
}

#[test]
fn sigint_from_kill_is_forwarded_once_and_psql_cancels_its_query() {
    let case = Case::new();
    let plugin = sleeping_psql(&case);
    let pid = Pid::from_raw(plugin.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::INT).unwrap();
    let (status, _, stderr) = output(plugin);
    assert_eq!(status.code(), Some(1), "psql's own exit code: {stderr}");
    assert!(
        stderr.contains("ERROR:  canceling statement due to user request"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("forwarding a signal to psql").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("Cancel request sent").count(), 1, "{stderr}");
    assert_eq!(case.password_files_in_tmpdir(), Vec::<PathBuf>::new());
}

/// Ctrl-C on a real terminal (a pty from `script`): the terminal signals psql itself, so the plugin
/// must not send a second SIGINT.
#[test]
fn ctrl_c_on_a_terminal_goes_to_psql_alone() {
    let case = Case::new();
    let plugin = case.command(&["-v"], PSQL_SLEEP);
    let line = std::iter::once("exec".as_ref())
        .chain(std::iter::once(plugin.get_program()))
        .chain(plugin.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new(which("script"));
    script
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_clear()
        .envs(plugin.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = script.spawn().unwrap();
    case.wait_for_sleeping_psql(&mut child);
    // ^C typed at the terminal.
    child.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let mut terminal = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut terminal)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!terminal.contains(SENTINEL));
    assert_eq!(status.code(), Some(1), "{terminal}");
    assert!(
        terminal.contains("canceling statement due to user request"),
        "{terminal}"
    );
    assert!(!terminal.contains("forwarding a signal"), "{terminal}");
    assert_eq!(
        terminal.matches("Cancel request sent").count(),
        1,
        "one SIGINT, one cancel: {terminal}"
    );
}

#[test]
fn sigkill_of_the_plugin_leaves_no_password_on_disk() {
    let case = Case::new();
    let plugin = sleeping_psql(&case);
    let psql = case.psql_pid();
    let pid = Pid::from_raw(plugin.id() as i32).unwrap();
    rustix::process::kill_process(pid, Signal::KILL).unwrap();
    let (status, _, _) = output(plugin);
    assert_eq!(status.signal(), Some(9));
    assert_eq!(case.password_files_in_tmpdir(), Vec::<PathBuf>::new());
    // psql, orphaned, runs its query to the end; the password lives only in its descriptor. (It may
    // have ended already on a loaded machine.)
    if let Some((_, environ, fds)) = live_process_if_running(psql) {
        assert!(!environ.contains(SENTINEL));
        assert!(
            fds.iter()
                .all(|f| !f.starts_with(&case.path("tmp").display().to_string()))
        );
    }
    let started = Instant::now();
    while !gone(psql) {
        assert!(started.elapsed() < PATIENCE, "psql never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(case.password_files_in_tmpdir(), Vec::<PathBuf>::new());
    assert_eq!(std::fs::read_dir(case.path("tmp")).unwrap().count(), 0);
}

#[test]
fn a_plugin_without_a_database_is_one_line_before_psql() {
    let case = Case::new();
    let out = case
        .command(&[], &["psql", "--plugin", "nosuch", "--", "-c", "select 1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: plugin \"nosuch\" has no database {}nosuch on 127.0.0.1; plugins: catalog\n",
            case.prefix
        )
    );
    assert!(!case.path("record/pid").exists(), "psql was not started");
}

#[test]
fn a_server_that_never_answers_is_bounded_by_the_request_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection, never sending a byte.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let case = Case::new();
    for (global, env, bound) in [
        (vec!["--request-timeout", "2s"], None, "2s"),
        (vec!["--request-timeout", "1500ms"], None, "1500ms"),
        (vec![], Some("3"), "3s"),
    ] {
        let mut cmd = case.command(&global, &["psql", "--plugin", "catalog"]);
        cmd.args(["--db-port", &port.to_string()]);
        if let Some(seconds) = env {
            cmd.env("PGCONNECT_TIMEOUT", seconds);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(
            stderr,
            format!("error: database server 127.0.0.1:{port} did not answer within {bound}\n")
        );
        assert!(!case.path("record/pid").exists(), "psql was not started");
    }
}

#[test]
fn the_local_knex_runner_inherits_neither_password_variable() {
    let case = Case::new();
    // A plugin with two applied migrations (Knex's own tables) and a checkout with their files.
    let demo = format!("{}demo", case.prefix);
    pg().create_named(&demo);
    pg().execute(
        &demo,
        "CREATE TABLE knex_migrations (id serial PRIMARY KEY, name varchar(255), batch integer, migration_time timestamptz);
         CREATE TABLE knex_migrations_lock (index serial PRIMARY KEY, is_locked integer);
         INSERT INTO knex_migrations_lock (is_locked) VALUES (0);
         INSERT INTO knex_migrations (name, batch, migration_time) VALUES
           ('20250101000000_a.js', 1, now()), ('20250102000000_b.js', 1, now());",
    )
    .unwrap();
    let noop = "exports.up = async () => {};\nexports.down = async () => {};\n";
    demo_plugin_package(
        &case.path("checkout"),
        &[
            ("20250101000000_a.js", noop.to_string()),
            ("20250102000000_b.js", noop.to_string()),
        ],
    );
    // `node` that records its environment and stops, as a runner that cannot load knex would.
    let record = case.path("record/node-env");
    executable(
        &case.path("bin/node"),
        &format!("#!/bin/sh\nenv > '{}'\nexit 3\n", record.display()),
    );
    let out = case
        .command(
            &[],
            &[
                "rollback",
                "--plugin",
                "demo",
                "--to",
                "20250101000000_a.js",
                "--runner",
                "local",
                "--source",
                case.path("checkout").to_str().unwrap(),
                "--yes",
            ],
        )
        .output()
        .unwrap();
    pg().drop_named(&demo);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains(SENTINEL), "{stderr}");
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let env = std::fs::read_to_string(&record)
        .unwrap_or_else(|e| panic!("node was not run ({e}): {stderr}"));
    assert!(env.contains("HOME="), "{env}");
    assert!(!env.contains(SENTINEL), "{env}");
    assert!(!env.contains("TEST_DB_PASSWORD="), "{env}");
    assert!(!env.contains("PGPASSWORD="), "{env}");
}
