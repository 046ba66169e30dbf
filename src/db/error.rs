//! Database errors: one line each, naming host, database and user — never the password.

use std::path::PathBuf;
use std::time::Duration;

use super::Server;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "the database server {host}:{port} refused the password of user {user:?} (database {database})"
    )]
    WrongPassword {
        host: String,
        port: u16,
        user: String,
        database: String,
    },
    #[error(
        "the database server {host}:{port} does not allow user {user:?} to connect to {database}: {message}"
    )]
    NotAllowed {
        host: String,
        port: u16,
        user: String,
        database: String,
        message: String,
    },
    #[error("database {database:?} does not exist on {host}:{port}")]
    NoSuchDatabase {
        host: String,
        port: u16,
        database: String,
    },
    #[error(
        "the database server {host}:{port} does not accept TLS (sslmode {sslmode}); use --sslmode disable only on a trusted network"
    )]
    TlsRefused {
        host: String,
        port: u16,
        sslmode: String,
    },
    #[error("TLS with the database server {host}:{port} failed: {message}")]
    TlsFailed {
        host: String,
        port: u16,
        message: String,
    },
    #[error("cannot reach the database server {host}:{port}: {message}")]
    Unreachable {
        host: String,
        port: u16,
        message: String,
    },
    #[error("database server {host}:{port} did not answer within {bound}", bound = duration_text(*.bound))]
    Timeout {
        host: String,
        port: u16,
        bound: Duration,
    },
    #[error("database server {host}:{port} did not answer within {bound} ({what} in database {database})", bound = duration_text(*.bound))]
    QueryTimeout {
        host: String,
        port: u16,
        bound: Duration,
        database: String,
        what: String,
    },
    #[error("the server at {host}:{port} does not speak the PostgreSQL protocol")]
    NotPostgres { host: String, port: u16 },
    #[error("cannot read the root certificate {path}: {message}", path = .path.display())]
    RootCert { path: PathBuf, message: String },
    #[error("TLS configuration failed: {message}")]
    Tls { message: String },
    #[error("{what} in database {database} failed: {message}")]
    Query {
        database: String,
        what: String,
        message: String,
    },
}

/// A bound as the user typed it: `2s`, `90s`, `1500ms`.
pub fn duration_text(bound: Duration) -> String {
    if bound.subsec_nanos() == 0 {
        format!("{}s", bound.as_secs())
    } else {
        format!("{}ms", bound.as_millis())
    }
}

/// The innermost useful message of an error, on one line.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(db) = error
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
    {
        return db.message().to_string();
    }
    let mut current = error;
    let mut message = current.to_string();
    while let Some(source) = current.source() {
        current = source;
        message = current.to_string();
    }
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl DbError {
    pub fn from_connect(e: tokio_postgres::Error, server: &Server, database: &str) -> DbError {
        let host = server.host.clone();
        let port = server.port;
        if super::socket::is_not_postgres(&e) {
            return DbError::NotPostgres { host, port };
        }
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            return match code {
                "28P01" => DbError::WrongPassword {
                    host,
                    port,
                    user: server.user.clone(),
                    database: database.into(),
                },
                "3D000" => DbError::NoSuchDatabase {
                    host,
                    port,
                    database: database.into(),
                },
                _ if code.starts_with("28") => DbError::NotAllowed {
                    host,
                    port,
                    user: server.user.clone(),
                    database: database.into(),
                    message: db.message().to_string(),
                },
                _ => DbError::Unreachable {
                    host,
                    port,
                    message: db.message().to_string(),
                },
            };
        }
        let message = one_line(&e);
        let lower = message.to_lowercase();
        if lower.contains("server does not support tls") || lower.contains("does not support ssl") {
            DbError::TlsRefused {
                host,
                port,
                sslmode: format!("{:?}", server.sslmode).to_lowercase(),
            }
        } else if lower.contains("certificate")
            || lower.contains("handshake")
            || lower.contains("tls")
        {
            DbError::TlsFailed {
                host,
                port,
                message,
            }
        } else {
            DbError::Unreachable {
                host,
                port,
                message,
            }
        }
    }
}
