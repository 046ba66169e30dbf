//! The PostgreSQL adapter: connects with libpq's TLS modes and reads what Knex keeps — migration tables,
//! their rows and their locks. Identifiers are always quoted, never spliced raw into SQL. Connections
//! for reading are read-only sessions, so `db status` cannot create or change anything.
//!
//! Bounds: with a `connect_timeout`, the whole connect — name lookup, TCP, TLS handshake and
//! authentication — and then every query round trip are each bounded by it; a server that accepts and
//! never answers ends in [`DbError::Timeout`] / [`DbError::QueryTimeout`], never a hang. Without one
//! (`--request-timeout 0` and no `$PGCONNECT_TIMEOUT`) nothing is bounded, as with libpq.
//!
//! Round trips, the cost over a VPN: a connect is TCP (1), then with TLS the SSLRequest (1) and the TLS
//! 1.3 handshake (1), then the startup message and SCRAM (3: server-first, server-final, ready). The
//! read-only flag travels in the startup message's options, not as a statement. Reading a database is
//! then ONE query round trip ([`read`]); closing costs none (Terminate is sent without waiting).

mod error;
pub mod lock;
mod read;
mod session;
mod socket;
mod tls;

use std::future::Future;
use std::time::Duration;

use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config};

pub use error::{DbError, duration_text};
pub use session::Sessions;

use crate::knex::model::{LockRow, MigrationRow};
use crate::options::SslMode;
use crate::secrets::Password;

/// The server and login, without a database.
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<std::path::PathBuf>,
    /// Bounds each connect (TCP, TLS, authentication) and each query round trip; `None` waits forever.
    pub timeout: Option<Duration>,
    /// The sessions to end before the runtime does.
    pub sessions: Sessions,
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

/// A connection to one database. End it with [`Connection::close`]; one that is just dropped is
/// ended by [`Sessions::close_all`].
pub struct Connection {
    client: Client,
    task: session::SessionTask,
    /// For cancel requests, which travel over a connection of their own.
    connector: tokio_postgres_rustls::MakeRustlsConnect,
    tls: bool,
    host: String,
    port: u16,
    timeout: Option<Duration>,
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
        let connect = async {
            if self.host.starts_with('/') {
                // A unix socket folder, as libpq allows: no network in between.
                let (client, connection) = config
                    .connect(connector.clone())
                    .await
                    .map_err(|e| DbError::from_connect(e, self, database))?;
                Ok((client, spawn_connection(connection, database)))
            } else {
                let stream = socket::Sniffed::connect(
                    &self.host,
                    self.port,
                    self.sslmode != SslMode::Disable,
                )
                .await
                .map_err(|e| DbError::Unreachable {
                    host: self.host.clone(),
                    port: self.port,
                    message: error::one_line(&e),
                })?;
                let tls = MakeTlsConnect::<socket::Sniffed>::make_tls_connect(
                    &mut connector.clone(),
                    &self.host,
                );
                let tls = tls.unwrap_or_else(|never| match never {});
                let (client, connection) = config
                    .connect_raw(stream, tls)
                    .await
                    .map_err(|e| DbError::from_connect(e, self, database))?;
                Ok((client, spawn_connection(connection, database)))
            }
        };
        let (client, task) = match self.timeout {
            Some(bound) => {
                tokio::time::timeout(bound, connect)
                    .await
                    .map_err(|_| DbError::Timeout {
                        host: self.host.clone(),
                        port: self.port,
                        bound,
                    })?
            }
            None => connect.await,
        }?;
        Ok(Connection {
            client,
            task: session::SessionTask::new(task, &self.sessions),
            connector,
            tls: self.sslmode != SslMode::Disable,
            host: self.host.clone(),
            port: self.port,
            timeout: self.timeout,
            database: database.to_string(),
        })
    }
}

/// Drives a connection in a task of its own until its client is dropped and Terminate is sent.
fn spawn_connection<S, T>(
    connection: tokio_postgres::Connection<S, T>,
    database: &str,
) -> tokio::task::JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let database = database.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%database, error = %e, "connection ended");
        }
    })
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

    /// Runs `work` (queries on this connection) within the bound; `what` names it in errors. A query
    /// that runs out of time (a table locked by a migration, a network gone quiet) is cancelled on
    /// the server, so it does not go on holding a session and a place in the lock queue.
    pub async fn bounded<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        let Some(bound) = self.timeout else {
            return work.await.map_err(|e| self.query_error(what, e));
        };
        match tokio::time::timeout(bound, work).await {
            Ok(done) => done.map_err(|e| self.query_error(what, e)),
            Err(_) => {
                self.cancel(bound).await;
                Err(DbError::QueryTimeout {
                    host: self.host.clone(),
                    port: self.port,
                    bound,
                    database: self.database.clone(),
                    what: what.to_string(),
                })
            }
        }
    }

    /// Asks the server to cancel the running query (best effort, bounded).
    async fn cancel(&self, bound: Duration) {
        let token = self.client.cancel_token();
        let cancel = async {
            if self.host.starts_with('/') {
                return token
                    .cancel_query(self.connector.clone())
                    .await
                    .map_err(|e| e.to_string());
            }
            // The cancel request travels over a new connection of its own, with TLS as the session.
            let stream = socket::Sniffed::connect(&self.host, self.port, self.tls)
                .await
                .map_err(|e| e.to_string())?;
            let connect = MakeTlsConnect::<socket::Sniffed>::make_tls_connect(
                &mut self.connector.clone(),
                &self.host,
            );
            let connect = connect.unwrap_or_else(|never| match never {});
            token
                .cancel_query_raw(stream, connect)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(bound, cancel).await {
            Ok(Ok(())) => tracing::debug!(database = %self.database, "query cancelled"),
            Ok(Err(e)) => tracing::debug!(database = %self.database, error = %e, "cancel failed"),
            Err(_) => tracing::debug!(database = %self.database, "cancel timed out"),
        }
    }

    /// Ends the session properly: Terminate is sent and the socket closed before this returns.
    pub async fn close(self) {
        let Connection { client, task, .. } = self;
        drop(client);
        task.finish().await;
    }

    /// Databases whose names start with `prefix`, sorted.
    pub async fn databases_with_prefix(&self, prefix: &str) -> Result<Vec<String>, DbError> {
        let pattern = like_prefix(prefix);
        let rows = self
            .bounded(
                "list databases",
                self.client.query_typed(
                    "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ESCAPE '\\' AND NOT datistemplate ORDER BY datname",
                    &[(&pattern, Type::TEXT)],
                ),
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Every Knex migration table (`%knex_migrations`) in the database, in `schema` or in every
    /// user schema.
    pub async fn migration_tables(&self, schema: Option<&str>) -> Result<Vec<TableRef>, DbError> {
        let rows = self
            .bounded(
                "list migration tables",
                self.client.query_typed(
                    "SELECT table_schema::text, table_name::text FROM information_schema.tables \
                     WHERE table_name LIKE '%knex\\_migrations' ESCAPE '\\' AND table_type = 'BASE TABLE' \
                       AND table_schema NOT IN ('pg_catalog', 'information_schema') \
                       AND ($1::text IS NULL OR table_schema::text = $1::text)",
                    &[(&schema, Type::TEXT)],
                ),
            )
            .await?;
        let mut tables: Vec<TableRef> = rows
            .iter()
            .map(|r| TableRef {
                schema: r.get(0),
                table: r.get(1),
            })
            .collect();
        tables.sort_by(|a, b| read::knex_order(a).cmp(&read::knex_order(b)));
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

    /// Every migration table in `schemas` (every user schema when `None`) with its rows and lock rows,
    /// in one round trip; `knex_migrations` first in each schema, then the others by name.
    pub async fn read_migration_tables(
        &self,
        schemas: Option<&[String]>,
    ) -> Result<Vec<(TableRef, TableContents)>, DbError> {
        self.read(
            schemas.map(<[String]>::to_vec),
            None,
            "read migration tables",
        )
        .await
    }

    async fn read(
        &self,
        schemas: Option<Vec<String>>,
        table: Option<&str>,
        what: &str,
    ) -> Result<Vec<(TableRef, TableContents)>, DbError> {
        let row = self
            .bounded(
                what,
                self.client.query_typed_one(
                    read::statement(),
                    &[(&schemas, Type::TEXT_ARRAY), (&table, Type::TEXT)],
                ),
            )
            .await?;
        read::parse(row.get(0)).map_err(|message| DbError::Query {
            database: self.database.clone(),
            what: what.to_string(),
            message,
        })
    }

    /// The rows of a migration table (in id order, as Knex reads them) and of its lock table.
    pub async fn table_contents(&self, table: &TableRef) -> Result<TableContents, DbError> {
        let what = format!("read {}.{}", table.schema, table.table);
        self.read(Some(vec![table.schema.clone()]), Some(&table.table), &what)
            .await?
            .pop()
            .map(|(_, contents)| contents)
            .ok_or_else(|| DbError::Query {
                database: self.database.clone(),
                what,
                message: format!(
                    "table {}.{} does not exist",
                    quote_ident(&table.schema),
                    quote_ident(&table.table)
                ),
            })
    }
}

/// Leaves the lock table `qualified` (already quoted) with one free row, as Knex makes it.
async fn reset_lock_rows(
    transaction: &tokio_postgres::Transaction<'_>,
    qualified: &str,
) -> Result<(), tokio_postgres::Error> {
    transaction
        .execute(&format!("DELETE FROM {qualified}"), &[])
        .await?;
    transaction
        .execute(
            &format!("INSERT INTO {qualified} (is_locked) VALUES (0)"),
            &[],
        )
        .await?;
    Ok(())
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
