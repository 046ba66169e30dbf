//! The `db` commands: the plugin databases as Knex and Backstage see them.

pub mod current_version;
pub mod list;
pub mod plan;
pub mod psql;
pub mod rollback;
pub mod run;
pub mod status;
pub mod unlock;

use futures::StreamExt;

use crate::db::{Connection, DbError, Server, TableContents, TableRef};
use crate::process_env::ProcessEnv;
use crate::secrets::{Password, SecretError, database_password};
use crate::settings::{DbSettings, Division};

/// Databases read at once: all of them, up to this many sessions (the smallest Azure Database for
/// PostgreSQL tier allows 50 connections, some of them taken by Backstage itself).
const MAX_SESSIONS: usize = 32;
/// The database connected to for listing the others.
const MAINTENANCE_DATABASE: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum DbCommandError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Source(#[from] crate::migrations::source::SourceError),
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    #[error("{0}")]
    Refused(String),
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
                        let known: Vec<&str> = all.iter().map(|t| t.plugin.as_str()).collect();
                        let target = self.target(plugin);
                        let place = match &target.schema {
                            Some(schema) => {
                                format!("schema {schema} in database {}", target.database)
                            }
                            None => format!("database {}", target.database),
                        };
                        DbCommandError::Refused(format!(
                            "plugin {plugin:?} has no {place} on {}; plugins: {}",
                            self.settings.host,
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ))
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
