//! The `db` commands: the plugin databases as Knex and Backstage see them.

pub mod current_version;
pub mod list;
pub mod plan;
pub mod psql;
pub mod rollback;
pub mod run;
pub mod status;
pub mod unlock;

use std::path::PathBuf;

use futures::StreamExt;

use crate::commands::confirm::NotConfirmed;
use crate::db::{Connection, DbError, Server, TableContents, TableRef};
use crate::knex::model::RollbackError;
use crate::kube::KubeError;
use crate::migrations::runner::RunnerError;
use crate::process_env::ProcessEnv;
use crate::secrets::{Password, SecretError, database_password};
use crate::settings::{DbSettings, Division};

/// Databases read at once: all of them, up to this many sessions (the smallest Azure Database for
/// PostgreSQL tier allows 50 connections, some of them taken by Backstage itself).
const MAX_SESSIONS: usize = 32;
/// The database connected to for listing the others.
const MAINTENANCE_DATABASE: &str = "postgres";

/// Why a `db` command could not do its job (exit 2; nothing was changed, except where a variant
/// says otherwise). Each message is one lowercase line naming the plugin, table, pod or file.
#[derive(Debug, thiserror::Error)]
pub enum DbCommandError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Source(#[from] crate::migrations::source::SourceError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    NotConfirmed(#[from] NotConfirmed),
    /// A plugin named on the command line has no database (or schema) on the server.
    #[error(
        "plugin {plugin:?} has no {} on {host}; plugins: {}",
        place(.database, .schema.as_deref()),
        list_or_none(.known)
    )]
    NoDatabase {
        plugin: String,
        database: String,
        schema: Option<String>,
        host: String,
        /// The plugins the server has.
        known: Vec<String>,
    },
    /// The plugin has no migration table of that name (`--table`). `database` and `known` are named
    /// in the message when given.
    #[error(
        "plugin {plugin:?} has no migration table {table:?}{}{}",
        in_database(.database.as_deref()),
        tables_hint(.known.as_deref())
    )]
    NoMigrationTable {
        plugin: String,
        table: String,
        database: Option<String>,
        known: Option<Vec<String>>,
    },
    /// `db rollback` while Knex's lock is held.
    #[error(
        "the migration lock of plugin {plugin} table {table} is held: a pod may be migrating; check with `kubectl backstage health`, and release it with `kubectl backstage db unlock --plugin {plugin}` only if none is"
    )]
    LockHeld { plugin: String, table: String },
    /// `db rollback --migration/--to NAME` where NAME has no row in the migration table.
    #[error(
        "migration {migration:?} is not completed in {database} {table}; see `kubectl backstage db status --plugin {plugin}`"
    )]
    NotCompleted {
        migration: String,
        plugin: String,
        database: String,
        table: String,
    },
    /// `--runner pod` without a reachable cluster.
    #[error("--runner pod needs the cluster ({cause}); or use --runner local --source DIR")]
    RunnerNeedsCluster {
        #[source]
        cause: KubeError,
    },
    /// The runner's files do not include the plugin's migration table.
    #[error(
        "the runner's source {runner} has no migration files for plugin {plugin} table {table}"
    )]
    NoRunnerFiles {
        runner: String,
        plugin: String,
        table: String,
    },
    /// The runner's files lack completed migrations, so Knex would refuse every rollback.
    #[error("files are missing from the runner's source {runner}: {cause}")]
    FilesMissing {
        runner: String,
        #[source]
        cause: RollbackError,
    },
    /// Any other reason Knex would refuse the rollback.
    #[error(transparent)]
    RollbackPlan(RollbackError),
    /// A backend pod is starting (it may be migrating with the older code right now).
    #[error(
        "refusing to roll back: pod {} in namespace {namespace} is starting and may be migrating; wait with `kubectl backstage health --wait`",
        .pods.join(", ")
    )]
    RollbackWhilePodStarting {
        pods: Vec<String>,
        namespace: String,
    },
    /// A backend pod is starting (it may hold the lock for real).
    #[error(
        "refusing to unlock: pod {} in namespace {namespace} is starting and may hold the lock for real; wait with `kubectl backstage health --wait`, or pass --force",
        .pods.join(", ")
    )]
    UnlockWhilePodStarting {
        pods: Vec<String>,
        namespace: String,
    },
    /// `db unlock` without `--force` and without a cluster to check the pods of.
    #[error(
        "cannot check whether a backend pod is starting ({cause}); pass --force if no pod is migrating"
    )]
    CannotCheckPods {
        #[source]
        cause: KubeError,
    },
    #[error("cannot read --sslrootcert {}: {cause}", .path.display())]
    SslRootCert {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    /// The Knex runner failed before it undid anything.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// Knex stopped before undoing every planned migration. With nothing undone this is the error;
    /// with some undone the same line is printed and the exit code is 3.
    #[error(
        "the rollback stopped part-way{}: undone {}, not undone {}; the lock is released",
        .knex_error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
        list_or_none(.undone),
        list_or_none(.not_undone)
    )]
    RollbackStopped {
        knex_error: Option<String>,
        undone: Vec<String>,
        not_undone: Vec<String>,
    },
    #[error("cannot run psql: {cause}; install the PostgreSQL client (psql)")]
    CannotRunPsql {
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot make the password file for psql: {cause}")]
    PsqlPasswordFile {
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot listen for signals to pass to psql: {cause}")]
    PsqlSignals {
        #[source]
        cause: std::io::Error,
    },
    /// Waiting for psql to end failed.
    #[error("psql: {cause}")]
    PsqlWait {
        #[source]
        cause: std::io::Error,
    },
}

/// Where a plugin's tables would be, in words.
fn place(database: &str, schema: Option<&str>) -> String {
    match schema {
        Some(schema) => format!("schema {schema} in database {database}"),
        None => format!("database {database}"),
    }
}

fn in_database(database: Option<&str>) -> String {
    database.map(|d| format!(" in {d}")).unwrap_or_default()
}

fn tables_hint(known: Option<&[String]>) -> String {
    known
        .map(|k| format!("; tables: {}", list_or_none(k)))
        .unwrap_or_default()
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Where a plugin's tables are: its database, and its schema in schema mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginTarget {
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
}

/// A connected view of the server.
pub struct Databases {
    pub settings: DbSettings,
    pub server: Server,
    password: Password,
}

impl Databases {
    /// Finds the password (in the spec's order) and prepares connections; nothing is connected yet.
    pub async fn open(
        settings: DbSettings,
        env: &dyn ProcessEnv,
    ) -> Result<Databases, DbCommandError> {
        let database = match &settings.division {
            Division::Database { .. } => "*",
            Division::Schema { database } => database.as_str(),
        };
        let found = database_password(
            &settings.password,
            &settings.host,
            settings.port,
            &settings.user,
            database,
            env,
        )
        .await?;
        tracing::info!(origin = %found.origin, "database password found");
        let server = Server {
            host: settings.host.clone(),
            port: settings.port,
            user: settings.user.clone(),
            sslmode: settings.sslmode,
            sslrootcert: settings.sslrootcert.clone(),
            timeout: settings.connect_timeout,
            sessions: Default::default(),
        };
        Ok(Databases {
            settings,
            server,
            password: found.password,
        })
    }

    /// Ends every session still open (those dropped without [`Connection::close`]) properly, so the
    /// server sees a Terminate rather than a reset. Call before the runtime ends.
    pub async fn close(&self) {
        self.server.sessions.close_all().await;
    }

    pub fn password(&self) -> &Password {
        &self.password
    }

    pub async fn connect(&self, database: &str, read_only: bool) -> Result<Connection, DbError> {
        self.server
            .connect(database, &self.password, read_only)
            .await
    }

    /// The plugin a target name belongs to, without asking the server.
    pub fn target(&self, plugin: &str) -> PluginTarget {
        match &self.settings.division {
            Division::Database { prefix } => PluginTarget {
                plugin: plugin.into(),
                database: format!("{prefix}{plugin}"),
                schema: None,
            },
            Division::Schema { database } => PluginTarget {
                plugin: plugin.into(),
                database: database.clone(),
                schema: Some(plugin.into()),
            },
        }
    }

    /// Every plugin on the server: databases with the prefix, or schemas with migration tables.
    pub async fn plugins(&self) -> Result<Vec<PluginTarget>, DbError> {
        match &self.settings.division {
            Division::Database { prefix } => {
                let connection = self.connect(MAINTENANCE_DATABASE, true).await?;
                let names = connection.databases_with_prefix(prefix).await;
                connection.close().await;
                Ok(names?
                    .iter()
                    .map(|n| self.target(&n[prefix.len()..]))
                    .collect())
            }
            Division::Schema { database } => {
                let connection = self.connect(database, true).await?;
                let schemas = connection.schemas_with_migrations().await;
                connection.close().await;
                Ok(schemas?.iter().map(|s| self.target(s)).collect())
            }
        }
    }

    /// The plugins asked for (all when none is named); a named plugin that has no database is an error.
    pub async fn selected(&self, wanted: &[String]) -> Result<Vec<PluginTarget>, DbCommandError> {
        let all = self.plugins().await?;
        if wanted.is_empty() {
            return Ok(all);
        }
        wanted
            .iter()
            .map(|plugin| {
                all.iter()
                    .find(|t| &t.plugin == plugin)
                    .cloned()
                    .ok_or_else(|| {
                        let target = self.target(plugin);
                        DbCommandError::NoDatabase {
                            plugin: plugin.clone(),
                            database: target.database,
                            schema: target.schema,
                            host: self.settings.host.clone(),
                            known: all.iter().map(|t| t.plugin.clone()).collect(),
                        }
                    })
            })
            .collect()
    }

    /// Every migration table of each target with its contents, in the targets' order. All databases
    /// at once (up to [`MAX_SESSIONS`]), each over one read-only session that costs one query round
    /// trip after the connect; targets in one database (schema mode) share a session.
    pub async fn read_all(
        &self,
        targets: &[PluginTarget],
    ) -> Result<Vec<(PluginTarget, Vec<(TableRef, TableContents)>)>, DbError> {
        // Each database once, with the schemas wanted from it (`None`: every user schema).
        let mut wanted: Vec<(&str, Option<Vec<String>>)> = Vec::new();
        for target in targets {
            let schemas = match wanted.iter_mut().find(|(db, _)| *db == target.database) {
                Some((_, schemas)) => schemas,
                None => {
                    wanted.push((&target.database, Some(Vec::new())));
                    &mut wanted.last_mut().expect("just pushed").1
                }
            };
            match (&target.schema, schemas.as_mut()) {
                (Some(schema), Some(list)) => list.push(schema.clone()),
                (None, _) => *schemas = None,
                (Some(_), None) => {}
            }
        }
        let read: Vec<Result<Vec<(TableRef, TableContents)>, DbError>> =
            futures::stream::iter(wanted.iter())
                .map(|(database, schemas)| async move {
                    let connection = self.connect(database, true).await?;
                    let tables = connection.read_migration_tables(schemas.as_deref()).await;
                    connection.close().await;
                    tables
                })
                .buffered(MAX_SESSIONS)
                .collect()
                .await;
        let mut by_database = Vec::with_capacity(read.len());
        for ((database, _), tables) in wanted.iter().zip(read) {
            by_database.push((*database, tables?));
        }
        Ok(targets
            .iter()
            .map(|target| {
                let (_, tables) = by_database
                    .iter()
                    .find(|(db, _)| *db == target.database)
                    .expect("every target's database was read");
                let mine = tables
                    .iter()
                    .filter(|(t, _)| target.schema.as_ref().is_none_or(|s| *s == t.schema))
                    .cloned()
                    .collect();
                (target.clone(), mine)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_database_names_the_place_and_the_known_plugins() {
        let database_mode = DbCommandError::NoDatabase {
            plugin: "nope".into(),
            database: "backstage_plugin_nope".into(),
            schema: None,
            host: "db.example".into(),
            known: names(&["app", "catalog"]),
        };
        assert_eq!(
            database_mode.to_string(),
            "plugin \"nope\" has no database backstage_plugin_nope on db.example; plugins: app, catalog"
        );
        let schema_mode = DbCommandError::NoDatabase {
            plugin: "nope".into(),
            database: "backstage".into(),
            schema: Some("nope".into()),
            host: "db.example".into(),
            known: Vec::new(),
        };
        assert_eq!(
            schema_mode.to_string(),
            "plugin \"nope\" has no schema nope in database backstage on db.example; plugins: none"
        );
    }

    #[test]
    fn no_migration_table_in_each_of_its_shapes() {
        let table = |database: Option<&str>, known: Option<&[&str]>| {
            DbCommandError::NoMigrationTable {
                plugin: "catalog".into(),
                table: "x_knex_migrations".into(),
                database: database.map(str::to_string),
                known: known.map(names),
            }
            .to_string()
        };
        assert_eq!(
            table(Some("backstage_plugin_catalog"), None),
            "plugin \"catalog\" has no migration table \"x_knex_migrations\" in backstage_plugin_catalog"
        );
        assert_eq!(
            table(Some("db"), Some(&["knex_migrations", "y_knex_migrations"])),
            "plugin \"catalog\" has no migration table \"x_knex_migrations\" in db; tables: knex_migrations, y_knex_migrations"
        );
        assert_eq!(
            table(None, Some(&[])),
            "plugin \"catalog\" has no migration table \"x_knex_migrations\"; tables: none"
        );
    }

    #[test]
    fn rollback_stopped_says_what_was_and_was_not_undone() {
        let stopped = |knex_error: Option<&str>, undone: &[&str], not_undone: &[&str]| {
            DbCommandError::RollbackStopped {
                knex_error: knex_error.map(str::to_string),
                undone: names(undone),
                not_undone: names(not_undone),
            }
            .to_string()
        };
        assert_eq!(
            stopped(Some("boom"), &["c.js"], &["b.js", "a.js"]),
            "the rollback stopped part-way (boom): undone c.js, not undone b.js, a.js; the lock is released"
        );
        assert_eq!(
            stopped(None, &[], &["b.js"]),
            "the rollback stopped part-way: undone none, not undone b.js; the lock is released"
        );
    }

    #[test]
    fn pods_starting_are_listed_with_their_namespace() {
        let pods = names(&["backstage-1", "backstage-2"]);
        assert_eq!(
            DbCommandError::RollbackWhilePodStarting {
                pods: pods.clone(),
                namespace: "backstage".into()
            }
            .to_string(),
            "refusing to roll back: pod backstage-1, backstage-2 in namespace backstage is starting and may be migrating; wait with `kubectl backstage health --wait`"
        );
        assert_eq!(
            DbCommandError::UnlockWhilePodStarting {
                pods,
                namespace: "backstage".into()
            }
            .to_string(),
            "refusing to unlock: pod backstage-1, backstage-2 in namespace backstage is starting and may hold the lock for real; wait with `kubectl backstage health --wait`, or pass --force"
        );
    }
}
