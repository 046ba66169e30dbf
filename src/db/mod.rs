//! The PostgreSQL adapter: connects with libpq's TLS modes and reads what Knex keeps — migration tables,
//! their rows and their locks. Identifiers are always quoted, never spliced raw into SQL. Connections
//! for reading are read-only sessions, so `db status` cannot create or change anything.

mod error;
pub mod lock;
mod tls;

use std::time::Duration;

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Client, Config};

pub use error::DbError;

use crate::knex::model::{LockRow, MigrationRow};
use crate::secrets::Password;
use crate::settings::SslMode;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server and login, without a database.
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<std::path::PathBuf>,
}

/// A migration table found in a database: `schema.table`, and whether its `_lock` table exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub schema: String,
    pub table: String,
}

/// What a migration table holds.
#[derive(Debug, Clone)]
pub struct TableContents {
    pub rows: Vec<MigrationRow>,
    /// `None` when the lock table does not exist.
    pub lock: Option<Vec<LockRow>>,
}

/// Quotes an identifier for SQL: `"name"` with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A connection to one database.
pub struct Connection {
    client: Client,
    pub database: String,
}

impl Server {
    /// Connects to `database`. `read_only` makes every transaction of the session read-only.
    pub async fn connect(
        &self,
        database: &str,
        password: &Password,
        read_only: bool,
    ) -> Result<Connection, DbError> {
        let mut config = Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(password.expose())
            .dbname(database)
            .application_name("kubectl-backstage")
            .connect_timeout(CONNECT_TIMEOUT)
            .ssl_mode(if self.sslmode == SslMode::Disable {
                PgSslMode::Disable
            } else {
                PgSslMode::Require
            });
        if read_only {
            config.options("-c default_transaction_read_only=on");
        }
        let tls = tls::client_config(self.sslmode, self.sslrootcert.as_deref())?;
        let connector =
            tokio_postgres_rustls::MakeRustlsConnect::new(tls.unwrap_or_else(plain_config));
        let (client, connection) = config
            .connect(connector)
            .await
            .map_err(|e| DbError::from_connect(e, self, database))?;
        let database_name = database.to_string();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(database = %database_name, error = %e, "connection ended");
            }
        });
        Ok(Connection {
            client,
            database: database.to_string(),
        })
    }
}

/// Never used for TLS (sslmode=disable); tokio-postgres just needs a connector of one type.
fn plain_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth()
}

impl Connection {
    fn query_error(&self, what: &str, e: tokio_postgres::Error) -> DbError {
        DbError::Query {
            database: self.database.clone(),
            what: what.to_string(),
            message: error::one_line(&e),
        }
    }

    /// Databases whose names start with `prefix`, sorted.
    pub async fn databases_with_prefix(&self, prefix: &str) -> Result<Vec<String>, DbError> {
        let rows = self
            .client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE $1 ESCAPE '\\' AND NOT datistemplate ORDER BY datname",
                &[&like_prefix(prefix)],
            )
            .await
            .map_err(|e| self.query_error("list databases", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Every Knex migration table (`%knex_migrations`) in the database, in `schema` or in every
    /// user schema.
    pub async fn migration_tables(&self, schema: Option<&str>) -> Result<Vec<TableRef>, DbError> {
        let rows = self
            .client
            .query(
                "SELECT table_schema::text, table_name::text FROM information_schema.tables \
                 WHERE table_name LIKE '%knex\\_migrations' ESCAPE '\\' AND table_type = 'BASE TABLE' \
                   AND table_schema NOT IN ('pg_catalog', 'information_schema') \
                   AND ($1::text IS NULL OR table_schema = $1) \
                 ORDER BY table_schema, table_name",
                &[&schema],
            )
            .await
            .map_err(|e| self.query_error("list migration tables", e))?;
        let mut tables: Vec<TableRef> = rows
            .iter()
            .map(|r| TableRef {
                schema: r.get(0),
                table: r.get(1),
            })
            .collect();
        // `knex_migrations` first, then the prefixed ones by name.
        tables.sort_by_key(|t| {
            (
                t.schema.clone(),
                t.table != "knex_migrations",
                t.table.clone(),
            )
        });
        Ok(tables)
    }

    /// Schemas that hold at least one Knex migration table (schema mode: one per plugin).
    pub async fn schemas_with_migrations(&self) -> Result<Vec<String>, DbError> {
        let mut schemas: Vec<String> = self
            .migration_tables(None)
            .await?
            .into_iter()
            .map(|t| t.schema)
            .collect();
        schemas.dedup();
        Ok(schemas)
    }

    /// The rows of a migration table (in id order, as Knex reads them) and of its lock table.
    pub async fn table_contents(&self, table: &TableRef) -> Result<TableContents, DbError> {
        let qualified = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.table)
        );
        let what = format!("read {}.{}", table.schema, table.table);
        let rows = self
            .client
            .query(
                &format!("SELECT id, name, batch, migration_time FROM {qualified} ORDER BY id"),
                &[],
            )
            .await
            .map_err(|e| self.query_error(&what, e))?;
        let rows = rows
            .iter()
            .map(|r| MigrationRow {
                id: r.get(0),
                name: r.get(1),
                batch: r.get(2),
                migration_time: r.get::<_, Option<jiff::Timestamp>>(3),
            })
            .collect();
        let lock_table = crate::knex::model::lock_table_name(&table.table);
        let exists = self
            .client
            .query_opt(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
                &[&table.schema, &lock_table],
            )
            .await
            .map_err(|e| self.query_error(&what, e))?
            .is_some();
        let lock = if exists {
            let rows = self
                .client
                .query(
                    &format!(
                        "SELECT \"index\", is_locked FROM {}.{} ORDER BY \"index\"",
                        quote_ident(&table.schema),
                        quote_ident(&lock_table)
                    ),
                    &[],
                )
                .await
                .map_err(|e| self.query_error(&format!("read {}.{lock_table}", table.schema), e))?;
            Some(
                rows.iter()
                    .map(|r| LockRow {
                        index: r.get(0),
                        is_locked: r.get(1),
                    })
                    .collect(),
            )
        } else {
            None
        };
        Ok(TableContents { rows, lock })
    }

    /// Releases a Knex lock as `knex migrate:unlock` does: every row deleted and one free row put back,
    /// in one transaction. Returns how many rows were not free before.
    pub async fn release_lock(&mut self, table: &TableRef) -> Result<u64, DbError> {
        let lock_table = crate::knex::model::lock_table_name(&table.table);
        let qualified = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&lock_table)
        );
        let what = format!("release {}.{lock_table}", table.schema);
        let transaction = self
            .client
            .transaction()
            .await
            .map_err(|e| DbError::Query {
                database: self.database.clone(),
                what: what.clone(),
                message: error::one_line(&e),
            })?;
        let fail = |e: tokio_postgres::Error| DbError::Query {
            database: self.database.clone(),
            what: what.clone(),
            message: error::one_line(&e),
        };
        let held = transaction
            .query_one(
                &format!("SELECT count(*) FROM {qualified} WHERE is_locked IS DISTINCT FROM 0"),
                &[],
            )
            .await
            .map_err(fail)?
            .get::<_, i64>(0);
        transaction
            .execute(&format!("DELETE FROM {qualified}"), &[])
            .await
            .map_err(fail)?;
        transaction
            .execute(
                &format!("INSERT INTO {qualified} (is_locked) VALUES (0)"),
                &[],
            )
            .await
            .map_err(fail)?;
        transaction.commit().await.map_err(fail)?;
        Ok(held as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_like_patterns_escaped() {
        assert_eq!(quote_ident("knex_migrations"), "\"knex_migrations\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(like_prefix("backstage_plugin_"), "backstage\\_plugin\\_%");
        assert_eq!(like_prefix("a%b\\"), "a\\%b\\\\%");
    }
}
