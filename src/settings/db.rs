//! How the `db` commands reach the databases: flags over the environment's `database` block over the
//! PG* variables.

use std::path::PathBuf;
use std::time::Duration;

use super::SettingsError;
use super::config_file::Environment;
use super::validate::validate_vault_name;
use crate::options::{DivisionMode, SslMode};
use crate::process_env::ProcessEnv;
use crate::secrets::{KeyVaultSecret, PasswordSettings};

/// Where plugins keep their tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Division {
    /// `<prefix><pluginId>` databases.
    Database { prefix: String },
    /// One database, a schema named after each plugin.
    Schema { database: String },
}

/// Everything the `db` commands need to reach the databases.
#[derive(Debug, Clone)]
pub struct DbSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub division: Division,
    pub password: PasswordSettings,
    /// Bounds every connect (TCP, TLS handshake and authentication): `$PGCONNECT_TIMEOUT` when set,
    /// else `--request-timeout`; `None` waits forever.
    pub connect_timeout: Option<Duration>,
}

pub const DEFAULT_DATABASE_PREFIX: &str = "backstage_plugin_";
pub const DEFAULT_SCHEMA_DATABASE: &str = "backstage";

impl DbSettings {
    pub fn resolve(
        args: &crate::cli::DbConnectionArgs,
        environment: Option<&Environment>,
        request_timeout: Option<Duration>,
        env: &dyn ProcessEnv,
    ) -> Result<DbSettings, SettingsError> {
        let file = environment
            .and_then(|e| e.database.clone())
            .unwrap_or_default();
        let host = args
            .db_host
            .clone()
            .or(file.host.clone())
            .or_else(|| env.var("PGHOST"))
            .ok_or(SettingsError::Missing {
                message: "no database host: use --db-host or database.host in the environment (or $PGHOST)",
            })?;
        let port = match (args.db_port, file.port, env.var("PGPORT")) {
            (Some(p), _, _) | (None, Some(p), _) => p,
            (None, None, Some(p)) => p.parse().map_err(|_| SettingsError::InvalidValue {
                what: "$PGPORT".into(),
                value: p.clone(),
                problem: "is not a port number",
            })?,
            (None, None, None) => 5432,
        };
        let user = args
            .db_user
            .clone()
            .or(file.user.clone())
            .or_else(|| env.var("PGUSER"))
            .ok_or(SettingsError::Missing {
                message: "no database user: use --db-user or database.user in the environment (or $PGUSER)",
            })?;
        let sslmode = match (args.sslmode, file.sslmode.as_deref(), env.var("PGSSLMODE")) {
            (Some(m), _, _) => m,
            (None, Some(m), _) => parse_option("database.sslmode", m)?,
            (None, None, Some(m)) => parse_option("$PGSSLMODE", &m)?,
            (None, None, None) => SslMode::Require,
        };
        let sslrootcert = args
            .sslrootcert
            .clone()
            .or(file.sslrootcert.clone())
            .or_else(|| env.var("PGSSLROOTCERT").map(PathBuf::from));
        let mode = match (args.division_mode, file.division_mode.as_deref()) {
            (Some(m), _) => m,
            (None, Some(m)) => parse_option("database.divisionMode", m)?,
            (None, None) => DivisionMode::Database,
        };
        let division = match mode {
            DivisionMode::Database => Division::Database {
                prefix: args
                    .database_prefix
                    .clone()
                    .or(file.database_prefix.clone())
                    .unwrap_or_else(|| DEFAULT_DATABASE_PREFIX.into()),
            },
            DivisionMode::Schema => Division::Schema {
                database: args
                    .database
                    .clone()
                    .or(file.database.clone())
                    .unwrap_or_else(|| DEFAULT_SCHEMA_DATABASE.into()),
            },
        };
        let from_file = file.password.clone();
        let file_vault = from_file.as_ref().and_then(|p| p.key_vault.as_ref());
        let vault = args
            .vault
            .clone()
            .or_else(|| file_vault.map(|k| k.vault.clone()));
        let secret = args
            .secret
            .clone()
            .or_else(|| file_vault.map(|k| k.secret.clone()));
        let vault_url = match (&args.vault_url, vault) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(vault)) => {
                validate_vault_name(&vault)?;
                Some(format!("https://{vault}.vault.azure.net/"))
            }
            (None, None) => None,
        };
        let key_vault = match (vault_url, secret) {
            (Some(_), None) => {
                return Err(SettingsError::Conflict {
                    message: "--vault/--vault-url needs --secret (the secret holding the password)",
                });
            }
            (None, Some(_)) => {
                return Err(SettingsError::Conflict {
                    message: "--secret needs --vault (or --vault-url)",
                });
            }
            (None, None) => None,
            (Some(vault_url), Some(secret)) => Some(KeyVaultSecret {
                vault_url,
                secret,
                auth: args.azure_auth,
            }),
        };
        let password = PasswordSettings {
            env_var: args
                .password_env
                .clone()
                .or_else(|| from_file.as_ref().and_then(|p| p.env.clone())),
            key_vault,
        };
        let connect_timeout = match env.var("PGCONNECT_TIMEOUT") {
            Some(text) => libpq_connect_timeout(&text)?,
            None => request_timeout,
        };
        Ok(DbSettings {
            host,
            port,
            user,
            sslmode,
            sslrootcert,
            division,
            password,
            connect_timeout,
        })
    }
}

/// An option enum's value from the config file or a variable; `what` names where it came from.
fn parse_option<T: std::str::FromStr<Err = String>>(
    what: &str,
    text: &str,
) -> Result<T, SettingsError> {
    text.parse().map_err(|message| SettingsError::Unparsable {
        what: what.to_string(),
        message,
    })
}

/// `$PGCONNECT_TIMEOUT` as libpq reads it: whole seconds; zero or less waits forever, and values
/// below 2 are raised to 2.
fn libpq_connect_timeout(text: &str) -> Result<Option<Duration>, SettingsError> {
    let seconds: i64 = text
        .trim()
        .parse()
        .map_err(|_| SettingsError::InvalidValue {
            what: "$PGCONNECT_TIMEOUT".into(),
            value: text.to_string(),
            problem: "is not a number of seconds",
        })?;
    Ok((seconds > 0).then(|| Duration::from_secs(seconds.max(2) as u64)))
}
