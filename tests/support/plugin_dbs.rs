//! Plugin databases on the shared PostgreSQL of a test binary, as Backstage leaves them: a login role
//! whose password is a sentinel, databases `<prefix><plugin>` with a prefix per test (dropped at the
//! end), template databases migrated once with the real knex CLI from real Backstage packages, local
//! checkouts (`node_modules` with knex, pg and the plugin packages) and a snapshot of everything a
//! command could change.
//!
//! Needs `postgres.rs` and `npm.rs` as sibling modules (`#[path = "support/…"] mod postgres; mod npm;`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::npm::{BACKEND_DEFAULTS, CATALOG_NEWER, CATALOG_OLDER, KnexRig, KnexTarget, Package};
use crate::postgres::{Postgres, connection_flags, ident, plugin_prefix};

/// The role the plugin logs in with; its password must never be printed.
pub const USER: &str = "backstage_admin";
pub const SENTINEL: &str = "S3ntinel-pw-7d41c9";
/// The environment variable the plugin reads the password from (`--password-env`).
pub const PASSWORD_ENV: &str = "TEST_DB_PASSWORD";
pub const SCHEDULER_TABLE: &str = "backstage_backend_tasks__knex_migrations";

/// The shared cluster, with [`USER`] created on first use.
pub fn pg() -> &'static Postgres {
    Postgres::shared_with_admin(USER, SENTINEL)
}

/// Plugin databases with a prefix of their own, dropped at the end.
pub struct Plugins {
    pub prefix: String,
    pub names: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Plugins {
    pub fn new() -> Plugins {
        Plugins {
            prefix: plugin_prefix('t'),
            names: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Creates `<prefix><plugin>`, empty or as a copy of a template.
    pub fn create(&mut self, plugin: &str, template: Option<&str>) -> String {
        let name = format!("{}{plugin}", self.prefix);
        let template = template
            .map(|t| format!(" TEMPLATE {}", ident(t)))
            .unwrap_or_default();
        pg().execute(
            "postgres",
            &format!("CREATE DATABASE {}{template}", ident(&name)),
        )
        .unwrap();
        self.names.push(name.clone());
        name
    }

    /// The connection flags of `kubectl-backstage db` (they go after `db`), with the password in
    /// [`PASSWORD_ENV`].
    pub fn connection_args(&self) -> Vec<String> {
        pg(); // The role exists before any command logs in with it.
        connection_flags(USER, Some(PASSWORD_ENV), &self.prefix)
    }

    /// `kubectl-backstage db` with a clean environment, the connection flags and the password.
    pub fn db(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("kubectl-backstage").unwrap();
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", self.dir.path())
            .env(PASSWORD_ENV, SENTINEL)
            .arg("db")
            .args(self.connection_args());
        cmd
    }

    /// Every database with this prefix (also ones a command might have created), with [`snapshot`]s.
    pub fn state(&self) -> String {
        let mut client = pg().client("postgres");
        let pattern = format!("{}%", self.prefix.replace('_', "\\_"));
        let names: Vec<String> = client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
                &[&pattern],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(client);
        names
            .iter()
            .map(|name| format!("database {name}\n{}", snapshot(name)))
            .collect()
    }
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins::new()
    }
}

impl Drop for Plugins {
    fn drop(&mut self) {
        for name in &self.names {
            pg().drop_named(name);
        }
    }
}

/// Where the real knex connects to run `package`'s migrations of `folder` into `table`.
pub fn knex_target(database: &str, package: Package, folder: &str, table: &str) -> KnexTarget {
    KnexTarget {
        host: pg().host().into(),
        port: pg().port(),
        user: USER.into(),
        password: SENTINEL.into(),
        database: database.into(),
        migrations_dir: KnexRig::get().migrations_dir(package, folder),
        table: table.into(),
        search_path: None,
        ssl_root_cert: None,
    }
}

/// `knex migrate:latest`, which must succeed.
pub fn latest(database: &str, package: Package, folder: &str, table: &str) {
    let out = KnexRig::get().run(
        &knex_target(database, package, folder, table),
        &["migrate:latest"],
    );
    assert_eq!(out.code, 0, "knex migrate:latest failed: {}", out.stderr);
}

/// Template databases, made once per test binary with the real knex: the catalog at the older and
/// at the newer version, each with the scheduler's prefixed table.
pub fn templates() -> &'static (String, String) {
    static T: OnceLock<(String, String)> = OnceLock::new();
    T.get_or_init(|| {
        let (older, newer) = (
            format!("tpl{}_catalog_older", std::process::id()),
            format!("tpl{}_catalog_newer", std::process::id()),
        );
        for (name, package) in [(&older, CATALOG_OLDER), (&newer, CATALOG_NEWER)] {
            pg().drop_named(name);
            pg().create_named(name);
            latest(name, package, "migrations", "knex_migrations");
            latest(
                name,
                BACKEND_DEFAULTS,
                "migrations/scheduler",
                SCHEDULER_TABLE,
            );
        }
        (older, newer)
    })
}

/// A folder standing for a container's filesystem (or a local checkout): `node_modules` with the real
/// knex and pg, the catalog at `catalog`'s version and backend-defaults.
pub fn checkout(dir: &Path, name: &str, catalog: Package) -> PathBuf {
    let root = dir.join(name);
    let modules = root.join("node_modules");
    std::fs::create_dir_all(modules.join("@backstage")).unwrap();
    for package in ["knex", "pg"] {
        std::os::unix::fs::symlink(
            KnexRig::get().node_modules().join(package),
            modules.join(package),
        )
        .unwrap();
    }
    for package in [catalog, BACKEND_DEFAULTS] {
        std::os::unix::fs::symlink(
            KnexRig::get().package_dir(package),
            modules.join(package.name),
        )
        .unwrap();
    }
    root
}

/// Everything in a database's catalog that could change: tables, and the rows of the Knex tables.
pub fn snapshot(database: &str) -> String {
    let mut client = pg().client(database);
    let mut out = String::new();
    for row in client.query("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog','information_schema') ORDER BY 1, 2", &[]).unwrap() {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        out.push_str(&format!("{schema}.{table}\n"));
        if table.ends_with("knex_migrations") || table.ends_with("knex_migrations_lock") {
            for r in client.query(&format!("SELECT row_to_json(t)::text FROM {}.{} t ORDER BY 1", ident(&schema), ident(&table)), &[]).unwrap() {
                out.push_str(&format!("  {}\n", r.get::<_, String>(0)));
            }
        }
    }
    out
}
