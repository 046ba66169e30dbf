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
use crate::secrets::{Password, SecretError, database_password};
use crate::settings::{DbSettings, Division, ProcessEnv};

/// Databases read at once.
const CONCURRENCY: usize = 8;
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
        };
        Ok(Databases {
            settings,
            server,
            password: found.password,
        })
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
                let names = connection.databases_with_prefix(prefix).await?;
                Ok(names
                    .iter()
                    .map(|n| self.target(&n[prefix.len()..]))
                    .collect())
            }
            Division::Schema { database } => {
                let connection = self.connect(database, true).await?;
                Ok(connection
                    .schemas_with_migrations()
                    .await?
                    .iter()
                    .map(|s| self.target(s))
                    .collect())
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

    /// Every migration table of each target with its contents, read concurrently over read-only
    /// sessions, in the targets' order.
    pub async fn read_all(
        &self,
        targets: &[PluginTarget],
    ) -> Result<Vec<(PluginTarget, Vec<(TableRef, TableContents)>)>, DbError> {
        let results: Vec<_> = futures::stream::iter(targets.iter().cloned())
            .map(|target| async move {
                let connection = self.connect(&target.database, true).await?;
                let tables = connection
                    .migration_tables(target.schema.as_deref())
                    .await?;
                let mut contents = Vec::new();
                for table in tables {
                    let c = connection.table_contents(&table).await?;
                    contents.push((table, c));
                }
                Ok::<_, DbError>((target, contents))
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }
}
