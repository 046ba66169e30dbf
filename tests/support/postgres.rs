//! A throwaway PostgreSQL 15 cluster for a test binary: initdb as the `postgres` user when the tests
//! run as root, scram-sha-256 with a generated superuser password (given to initdb through a file),
//! TLS with a certificate for `localhost` / 127.0.0.1 signed by a generated CA, a free port on
//! 127.0.0.1 and a unix socket inside the cluster's directory.
//!
//! [`Postgres::shared`] starts one cluster per test binary; each test takes its own databases with
//! [`Postgres::database`], dropped when the guard goes. The shared cluster is stopped and its directory
//! removed by a small watcher process when the test binary exits (statics are never dropped); an
//! owned cluster from [`Postgres::start`] is stopped on drop.
//!
//! `pg_hba.conf` accepts `hostssl` and `host` connections with scram-sha-256, so both
//! `sslmode=disable` and `sslmode=require` work; members of the role [`SSL_ONLY_ROLE`] are refused
//! without TLS, for tests that need the difference.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The superuser initdb creates.
pub const SUPERUSER: &str = "postgres";
/// A group role whose members may connect only over TLS.
pub const SSL_ONLY_ROLE: &str = "ssl_only";
/// Where Debian puts PostgreSQL 15; `PG_BIN` overrides it.
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

static SHARED: OnceLock<Postgres> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);
static CREATE_DATABASE: Mutex<()> = Mutex::new(());

/// A running cluster.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    run_as: Option<(u32, u32)>,
    stopped: bool,
}

impl Postgres {
    /// The cluster of this test binary, started on first use.
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(|| Postgres::start().unwrap_or_else(|e| panic!("postgres: {e}")))
    }

    /// Starts a new cluster, stopped and removed when the value is dropped.
    pub fn start() -> Result<Postgres, String> {
        let bin = std::env::var_os("PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN));
        let run_as = if effective_uid() == 0 {
            Some(postgres_ids()?)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "kbs-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut pg = Postgres {
            dir,
            bin,
            port: 0,
            password: random_hex(24),
            run_as,
            stopped: false,
        };
        pg.own(&pg.dir.clone(), 0o700)?;
        fs::create_dir(pg.socket_dir()).map_err(|e| e.to_string())?;
        pg.own(&pg.socket_dir(), 0o700)?;
        pg.watch_for_exit()?;
        pg.initdb()?;
        pg.write_tls()?;
        pg.write_config()?;
        pg.start_server()?;
        pg.execute("postgres", &format!("CREATE ROLE {SSL_ONLY_ROLE} NOLOGIN"))?;
        Ok(pg)
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn superuser(&self) -> &'static str {
        SUPERUSER
    }

    /// The superuser's password. Give it to child processes through the environment or a file.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory of the unix socket (`host=` for libpq).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The server's log (its stderr, through `pg_ctl -l`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The CA that signed the server certificate, for `sslmode=verify-ca` / `verify-full`.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ca_pem(&self) -> String {
        fs::read_to_string(self.ca_pem_path()).expect("read ca.pem")
    }

    /// A superuser connection over TCP without TLS.
    pub fn client(&self, database: &str) -> postgres::Client {
        self.try_client(database)
            .unwrap_or_else(|e| panic!("connect to {database}: {e}"))
    }

    fn try_client(&self, database: &str) -> Result<postgres::Client, String> {
        postgres::Config::new()
            .host(self.host())
            .port(self.port)
            .user(SUPERUSER)
            .password(&self.password)
            .dbname(database)
            .connect(postgres::NoTls)
            .map_err(|e| error_text(&e))
    }

    /// Runs SQL statements (no results) in a database as the superuser.
    pub fn execute(&self, database: &str, sql: &str) -> Result<(), String> {
        self.try_client(database)?
            .batch_execute(sql)
            .map_err(|e| format!("{sql}: {}", error_text(&e)))
    }

    /// Creates an empty database with a unique name starting with `prefix`.
    pub fn database(&self, prefix: &str) -> TestDatabase<'_> {
        self.create_database(prefix, None)
    }

    /// Creates a database as a copy of `template` (which must have no open connection).
    pub fn copy_of(&self, template: &str, prefix: &str) -> TestDatabase<'_> {
        self.create_database(prefix, Some(template))
    }

    fn create_database(&self, prefix: &str, template: Option<&str>) -> TestDatabase<'_> {
        // Copies of one template one at a time: PostgreSQL refuses a template that is in use.
        let _one_at_a_time = CREATE_DATABASE.lock().unwrap_or_else(|e| e.into_inner());
        let name = unique_name(prefix);
        let template = template.map_or(String::new(), |t| format!(" TEMPLATE {}", ident(t)));
        self.execute(
            "postgres",
            &format!("CREATE DATABASE {}{template}", ident(&name)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        TestDatabase { pg: self, name }
    }

    /// The shared cluster with a superuser login role `user` (password `password`), created on the
    /// first call for that user.
    pub fn shared_with_admin(user: &str, password: &str) -> &'static Postgres {
        static MADE: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let pg = Postgres::shared();
        let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
        if !made.iter().any(|u| u == user) {
            pg.create_role(user, password, false);
            pg.execute("postgres", &format!("ALTER ROLE {} SUPERUSER", ident(user)))
                .unwrap_or_else(|e| panic!("{e}"));
            made.push(user.to_string());
        }
        pg
    }

    /// Creates the database `name` (an exact name; see [`plugin_prefix`]), panicking on error.
    pub fn create_named(&self, name: &str) {
        self.execute("postgres", &format!("CREATE DATABASE {}", ident(name)))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Drops the database `name` if it exists, closing its sessions; errors are ignored (cleanup).
    pub fn drop_named(&self, name: &str) {
        let _ = self.execute(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name)),
        );
    }

    /// Creates a login role; with `ssl_only` it may connect only over TLS.
    pub fn create_role(&self, name: &str, password: &str, ssl_only: bool) {
        let mut sql = format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            ident(name),
            literal(password)
        );
        if ssl_only {
            sql.push_str(&format!(" IN ROLE {SSL_ONLY_ROLE}"));
        }
        self.execute("postgres", &sql)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the server now (`pg_ctl -m immediate stop`) and removes its directory.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A PostgreSQL program, run as the `postgres` user when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn own(&self, path: &Path, mode: u32) -> Result<(), String> {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn write_private(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
        fs::write(path, contents).map_err(|e| format!("write {}: {e}", path.display()))?;
        self.own(path, mode)
    }

    /// Stops the cluster when this process ends, whichever way it ends.
    fn watch_for_exit(&self) -> Result<(), String> {
        let script = r#"while [ -d "/proc/$0" ]; do sleep 0.5; done
"$1" -D "$2" -m immediate stop >/dev/null 2>&1
rm -rf "$3""#;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .arg(std::process::id().to_string())
            .arg(self.bin.join("pg_ctl"))
            .arg(self.data_dir())
            .arg(&self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn()
            .map(drop)
            .map_err(|e| format!("start the cleanup watcher: {e}"))
    }

    fn initdb(&self) -> Result<(), String> {
        let pwfile = self.dir.join("pwfile");
        self.write_private(&pwfile, self.password.as_bytes(), 0o600)?;
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .arg(format!("--username={SUPERUSER}"))
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .map_err(|e| format!("run initdb: {e}"))?;
        let _ = fs::remove_file(&pwfile);
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    fn write_tls(&self) -> Result<(), String> {
        let certs = backstage_testkit::TestCertificates::issue(
            "kubectl-backstage test CA",
            "localhost",
            &["localhost"],
            true,
        )
        .map_err(|e| format!("generate certificates: {e}"))?;
        self.write_private(&self.ca_pem_path(), certs.ca_pem.as_bytes(), 0o644)?;
        let data = self.data_dir();
        self.write_private(&data.join("server.crt"), certs.cert_pem.as_bytes(), 0o600)?;
        self.write_private(&data.join("server.key"), certs.key_pem.as_bytes(), 0o600)
    }

    fn write_config(&self) -> Result<(), String> {
        let data = self.data_dir();
        let conf = data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(|e| e.to_string())?;
        text.push_str(&format!(
            "\n# kubectl-backstage tests\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             ssl = on\n\
             ssl_cert_file = 'server.crt'\n\
             ssl_key_file = 'server.key'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n",
            self.socket_dir().display()
        ));
        self.write_private(&conf, text.as_bytes(), 0o600)?;
        let hba = format!(
            "local     all  all             scram-sha-256\n\
             hostnossl all  +{SSL_ONLY_ROLE}  127.0.0.1/32  reject\n\
             hostssl   all  all             127.0.0.1/32  scram-sha-256\n\
             host      all  all             127.0.0.1/32  scram-sha-256\n"
        );
        self.write_private(&data.join("pg_hba.conf"), hba.as_bytes(), 0o600)
    }

    fn start_server(&mut self) -> Result<(), String> {
        let log = self.dir.join("postgres.log");
        let mut last_error = String::new();
        for _ in 0..5 {
            self.port = free_port()?;
            let status = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {}", self.port))
                .arg("start")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .status()
                .map_err(|e| format!("run pg_ctl: {e}"))?;
            if status.success() {
                return Ok(());
            }
            last_error = read_tail(&log);
            if !last_error.contains("could not bind") && !last_error.contains("in use") {
                break;
            }
        }
        Err(format!("pg_ctl start failed: {last_error}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A database of the cluster, dropped (with its connections) when the guard goes.
pub struct TestDatabase<'a> {
    pg: &'a Postgres,
    name: String,
}

impl TestDatabase<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> postgres::Client {
        self.pg.client(&self.name)
    }

    /// Runs SQL statements in this database, panicking with the statement on error.
    pub fn execute(&self, sql: &str) {
        self.pg
            .execute(&self.name, sql)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for TestDatabase<'_> {
    fn drop(&mut self) {
        self.pg.drop_named(&self.name);
    }
}

/// The connection flags of `kubectl-backstage db` for this cluster (they go after `db`): host, port,
/// `user`, the password's environment variable when there is one, and the database prefix.
pub fn connection_flags(user: &str, password_env: Option<&str>, prefix: &str) -> Vec<String> {
    let pg = Postgres::shared();
    let mut flags = vec![
        "--db-host".to_string(),
        pg.host().to_string(),
        "--db-port".to_string(),
        pg.port().to_string(),
        "--db-user".to_string(),
        user.to_string(),
    ];
    if let Some(var) = password_env {
        flags.extend(["--password-env".to_string(), var.to_string()]);
    }
    flags.extend(["--database-prefix".to_string(), prefix.to_string()]);
    flags
}

/// A finished process's status, stdout and stderr, asserting that `password` is in neither.
pub fn output_without_password(
    out: std::process::Output,
    password: &str,
) -> (std::process::ExitStatus, String, String) {
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(
        !stdout.contains(password) && !stderr.contains(password),
        "the password leaked:\n{stdout}\n{stderr}"
    );
    (out.status, stdout, stderr)
}

/// A `--database-prefix` not used yet in this test binary: `<letter><pid>_<n>_plugin_`.
pub fn plugin_prefix(letter: char) -> String {
    format!(
        "{letter}{}_{}_plugin_",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A database name not used yet in this test binary.
fn unique_name(prefix: &str) -> String {
    format!(
        "{}_{}_{}",
        prefix,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal.
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The server's message when there is one ("db error" alone says nothing).
pub fn error_text(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.to_string())
}

fn effective_uid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// The uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_ids() -> Result<(u32, u32), String> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| format!("read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| "the tests run as root and there is no `postgres` user".to_string())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
