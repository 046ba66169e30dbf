//! Flags, environment variables and the config file, resolved once into the settings a command runs with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::{GlobalArgs, OutputFormat};

/// The config file (`config.yaml`): named environments, one of them the default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_environment: Option<String>,
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
}

/// One environment: where Backstage runs and where its databases are.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseConfig>,
}

/// The `database` block of an environment.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslmode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// Where the database password comes from. Only names are stored here, never the password.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault: Option<KeyVaultRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyVaultRef {
    pub vault: String,
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseConfig { path: PathBuf, message: String },
    #[error(
        "unknown environment {name:?}; configured environments: {known} (see `kubectl backstage env list`)"
    )]
    UnknownEnvironment { name: String, known: String },
    #[error("config file {path}: defaultEnvironment {name:?} is not one of its environments")]
    UnknownDefaultEnvironment { path: PathBuf, name: String },
}

/// Where the Kubernetes connection comes from, before the kubeconfig is read.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Kubeconfig files in merge order; `explicit` when given by `--kubeconfig` (then it must exist).
    pub kubeconfig: KubeconfigSource,
    /// `--context`, else the environment's context; `None` uses the kubeconfig's current-context.
    pub context: Option<String>,
    /// `-n`, else the environment's namespace; `None` falls back to the context's, then `backstage`.
    pub namespace: Option<String>,
    /// `None` waits forever.
    pub request_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KubeconfigSource {
    /// `--kubeconfig FILE`
    Explicit(PathBuf),
    /// `$KUBECONFIG`, split like kubectl splits it; files that do not exist are skipped.
    EnvList(Vec<PathBuf>),
    /// `~/.kube/config`
    Default(PathBuf),
}

/// Everything a command needs to know about how it was asked to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub output: OutputFormat,
    pub color: bool,
    pub cluster: ClusterSettings,
    /// The selected environment, with its name.
    pub environment: Option<(String, Environment)>,
    /// The config file that was read, if any.
    pub config_path: Option<PathBuf>,
    pub config: ConfigFile,
}

/// The process environment the settings are resolved from, so resolution is testable.
pub trait ProcessEnv {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
}

pub struct RealEnv;

impl ProcessEnv for RealEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn home(&self) -> Option<PathBuf> {
        std::env::home_dir()
    }
}

impl Settings {
    pub fn resolve(
        args: &GlobalArgs,
        env: &dyn ProcessEnv,
        stdout_is_terminal: bool,
    ) -> Result<Settings, SettingsError> {
        let (config_path, config) = load_config(args.config.as_deref(), env)?;
        let environment = select_environment(&config, config_path.as_deref(), args.env.as_deref())?;
        let env_block = environment.as_ref().map(|(_, e)| e);
        let kubeconfig = match (&args.kubeconfig, env.var("KUBECONFIG")) {
            (Some(path), _) => KubeconfigSource::Explicit(path.clone()),
            (None, Some(list)) => KubeconfigSource::EnvList(
                std::env::split_paths(&list)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect(),
            ),
            (None, None) => KubeconfigSource::Default(
                env.home().unwrap_or_default().join(".kube").join("config"),
            ),
        };
        let cluster = ClusterSettings {
            kubeconfig,
            context: args
                .context
                .clone()
                .or_else(|| env_block.and_then(|e| e.context.clone())),
            namespace: args
                .namespace
                .clone()
                .or_else(|| env_block.and_then(|e| e.namespace.clone())),
            request_timeout: args.request_timeout.0,
        };
        let color = stdout_is_terminal && !args.no_color && env.var("NO_COLOR").is_none();
        Ok(Settings {
            output: args.output,
            color,
            cluster,
            environment,
            config_path,
            config,
        })
    }
}

/// Reads the config file: `--config` (must exist), else `$KUBECTL_BACKSTAGE_CONFIG` (must exist), else the
/// XDG location (optional).
fn load_config(
    flag: Option<&Path>,
    env: &dyn ProcessEnv,
) -> Result<(Option<PathBuf>, ConfigFile), SettingsError> {
    let (path, required) = match (flag, env.var("KUBECTL_BACKSTAGE_CONFIG")) {
        (Some(path), _) => (path.to_path_buf(), true),
        (None, Some(path)) => (PathBuf::from(path), true),
        (None, None) => {
            let base = env
                .var("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| env.home().map(|h| h.join(".config")));
            match base {
                Some(base) => (base.join("kubectl-backstage").join("config.yaml"), false),
                None => return Ok((None, ConfigFile::default())),
            }
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((None, ConfigFile::default()));
        }
        Err(source) => return Err(SettingsError::ReadConfig { path, source }),
    };
    let config = parse_config(&text).map_err(|message| SettingsError::ParseConfig {
        path: path.clone(),
        message,
    })?;
    Ok((Some(path), config))
}

pub fn parse_config(text: &str) -> Result<ConfigFile, String> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_norway::from_str(text).map_err(|e| e.to_string().replace('\n', " "))
}

fn select_environment(
    config: &ConfigFile,
    path: Option<&Path>,
    requested: Option<&str>,
) -> Result<Option<(String, Environment)>, SettingsError> {
    let known = || {
        if config.environments.is_empty() {
            "none".to_string()
        } else {
            config
                .environments
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match requested {
        Some(name) => match config.environments.get(name) {
            Some(e) => Ok(Some((name.to_string(), e.clone()))),
            None => Err(SettingsError::UnknownEnvironment {
                name: name.to_string(),
                known: known(),
            }),
        },
        None => match &config.default_environment {
            Some(name) => match config.environments.get(name) {
                Some(e) => Ok(Some((name.clone(), e.clone()))),
                None => Err(SettingsError::UnknownDefaultEnvironment {
                    path: path.map(Path::to_path_buf).unwrap_or_default(),
                    name: name.clone(),
                }),
            },
            None => Ok(None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    struct FakeEnv(BTreeMap<&'static str, String>, PathBuf);
    impl ProcessEnv for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            Some(self.1.clone())
        }
    }

    const SPEC_EXAMPLE: &str = r#"
defaultEnvironment: ptlsbox
environments:
  ptlsbox:
    context: sbox-aks
    namespace: backstage
    url: https://backstage-sandbox.example.net/
    database:
      host: backstage-sbox.postgres.database.azure.com
      port: 5432
      user: pgadmin
      sslmode: require
      sslrootcert: /path/ca.pem
      divisionMode: database
      databasePrefix: backstage_plugin_
      database: backstage
      password:
        keyVault: { vault: sbox-intsvc, secret: backstage-psqldb-password }
  ptl:
    namespace: backstage-ptl
    database:
      password:
        env: PTL_PASSWORD
"#;

    fn global(args: &[&str]) -> GlobalArgs {
        let mut argv = vec!["kubectl-backstage"];
        argv.extend_from_slice(args);
        argv.push("health");
        crate::cli::Cli::try_parse_from(argv).unwrap().global
    }

    #[test]
    fn the_spec_example_config_parses() {
        let config = parse_config(SPEC_EXAMPLE).unwrap();
        assert_eq!(config.default_environment.as_deref(), Some("ptlsbox"));
        let sbox = &config.environments["ptlsbox"];
        let db = sbox.database.as_ref().unwrap();
        assert_eq!(db.port, Some(5432));
        assert_eq!(
            db.password
                .as_ref()
                .unwrap()
                .key_vault
                .as_ref()
                .unwrap()
                .secret,
            "backstage-psqldb-password"
        );
        assert_eq!(
            config.environments["ptl"]
                .database
                .as_ref()
                .unwrap()
                .password
                .as_ref()
                .unwrap()
                .env
                .as_deref(),
            Some("PTL_PASSWORD")
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse_config("environments:\n  x:\n    namespce: typo\n").unwrap_err();
        assert!(err.contains("namespce"), "{err}");
    }

    #[test]
    fn flags_override_the_environment_which_overrides_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, SPEC_EXAMPLE).unwrap();
        let env = FakeEnv(
            BTreeMap::from([("KUBECTL_BACKSTAGE_CONFIG", path.display().to_string())]),
            dir.path().into(),
        );

        let s = Settings::resolve(&global(&[]), &env, false).unwrap();
        assert_eq!(s.environment.as_ref().unwrap().0, "ptlsbox");
        assert_eq!(s.cluster.context.as_deref(), Some("sbox-aks"));
        assert_eq!(s.cluster.namespace.as_deref(), Some("backstage"));

        let s =
            Settings::resolve(&global(&["-e", "ptl", "--context", "mine"]), &env, false).unwrap();
        assert_eq!(s.cluster.context.as_deref(), Some("mine"));
        assert_eq!(s.cluster.namespace.as_deref(), Some("backstage-ptl"));

        let s = Settings::resolve(&global(&["-n", "x"]), &env, false).unwrap();
        assert_eq!(s.cluster.namespace.as_deref(), Some("x"));

        let err = Settings::resolve(&global(&["-e", "nope"]), &env, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment \"nope\"; configured environments: ptl, ptlsbox (see `kubectl backstage env list`)"
        );
    }

    #[test]
    fn kubeconfig_comes_from_flag_then_env_list_then_home() {
        let home = PathBuf::from("/home/op");
        let env = FakeEnv(
            BTreeMap::from([("KUBECONFIG", "/a:/b::/c".to_string())]),
            home.clone(),
        );
        let s = Settings::resolve(&global(&[]), &env, false).unwrap();
        assert_eq!(
            s.cluster.kubeconfig,
            KubeconfigSource::EnvList(vec!["/a".into(), "/b".into(), "/c".into()])
        );
        let s = Settings::resolve(&global(&["--kubeconfig", "/k"]), &env, false).unwrap();
        assert_eq!(
            s.cluster.kubeconfig,
            KubeconfigSource::Explicit("/k".into())
        );
        let s = Settings::resolve(&global(&[]), &FakeEnv(BTreeMap::new(), home), false).unwrap();
        assert_eq!(
            s.cluster.kubeconfig,
            KubeconfigSource::Default("/home/op/.kube/config".into())
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let home = PathBuf::from("/nowhere");
        let plain = FakeEnv(BTreeMap::new(), home.clone());
        assert!(Settings::resolve(&global(&[]), &plain, true).unwrap().color);
        assert!(
            !Settings::resolve(&global(&[]), &plain, false)
                .unwrap()
                .color
        );
        assert!(
            !Settings::resolve(&global(&["--no-color"]), &plain, true)
                .unwrap()
                .color
        );
        let no_color = FakeEnv(BTreeMap::from([("NO_COLOR", "1".to_string())]), home);
        assert!(
            !Settings::resolve(&global(&[]), &no_color, true)
                .unwrap()
                .color
        );
    }
}

/// libpq's `sslmode` values this tool supports (`prefer`/`allow` would silently fall back to plain text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Require,
    VerifyCa,
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(format!(
                "sslmode {other:?} is not supported; use disable, require, verify-ca or verify-full"
            )),
        }
    }
}

/// How to sign in to Azure for Key Vault (`--azure-auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzureAuth {
    /// The Azure CLI's login (`az login`)
    Cli,
    /// AKS workload identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID)
    Workload,
    /// The machine's managed identity
    Managed,
    /// A service principal (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID)
    ServicePrincipal,
}

/// Where the database password comes from (names only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordSettings {
    /// `--password-env VAR` or the environment's `password.env`.
    pub env_var: Option<String>,
    pub key_vault: Option<crate::secrets::KeyVaultSecret>,
}

/// One database per plugin, or one database with a schema per plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DivisionMode {
    Database,
    Schema,
}

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
    ) -> Result<DbSettings, String> {
        let file = environment
            .and_then(|e| e.database.clone())
            .unwrap_or_default();
        let host = args
            .db_host
            .clone()
            .or(file.host.clone())
            .or_else(|| env.var("PGHOST"))
            .ok_or(
                "no database host: use --db-host or database.host in the environment (or $PGHOST)",
            )?;
        let port = match (args.db_port, file.port, env.var("PGPORT")) {
            (Some(p), _, _) | (None, Some(p), _) => p,
            (None, None, Some(p)) => p
                .parse()
                .map_err(|_| format!("$PGPORT {p:?} is not a port number"))?,
            (None, None, None) => 5432,
        };
        let user = args
            .db_user
            .clone()
            .or(file.user.clone())
            .or_else(|| env.var("PGUSER"))
            .ok_or(
                "no database user: use --db-user or database.user in the environment (or $PGUSER)",
            )?;
        let sslmode = match (args.sslmode, file.sslmode.as_deref(), env.var("PGSSLMODE")) {
            (Some(m), _, _) => m,
            (None, Some(m), _) => m
                .parse()
                .map_err(|e: String| format!("database.sslmode: {e}"))?,
            (None, None, Some(m)) => m.parse().map_err(|e: String| format!("$PGSSLMODE: {e}"))?,
            (None, None, None) => SslMode::Require,
        };
        let sslrootcert = args
            .sslrootcert
            .clone()
            .or(file.sslrootcert.clone())
            .or_else(|| env.var("PGSSLROOTCERT").map(PathBuf::from));
        let mode = match (args.division_mode, file.division_mode.as_deref()) {
            (Some(m), _) => m,
            (None, None) | (None, Some("database")) => DivisionMode::Database,
            (None, Some("schema")) => DivisionMode::Schema,
            (None, Some(other)) => {
                return Err(format!(
                    "database.divisionMode {other:?} is not supported; use database or schema"
                ));
            }
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
        let vault = args.vault.clone().or_else(|| {
            from_file
                .as_ref()
                .and_then(|p| p.key_vault.as_ref())
                .map(|k| k.vault.clone())
        });
        let secret = args.secret.clone().or_else(|| {
            from_file
                .as_ref()
                .and_then(|p| p.key_vault.as_ref())
                .map(|k| k.secret.clone())
        });
        let key_vault = match (vault, secret, &args.vault_url) {
            (_, None, Some(_)) | (Some(_), None, None) => {
                return Err(
                    "--vault/--vault-url needs --secret (the secret holding the password)".into(),
                );
            }
            (None, Some(_), None) => return Err("--secret needs --vault (or --vault-url)".into()),
            (None, None, None) => None,
            (vault, Some(secret), url) => {
                let vault_url = match (url, vault) {
                    (Some(url), _) => url.clone(),
                    (None, Some(vault)) => {
                        validate_vault_name(&vault)?;
                        format!("https://{vault}.vault.azure.net/")
                    }
                    (None, None) => unreachable!("matched above"),
                };
                Some(crate::secrets::KeyVaultSecret {
                    vault_url,
                    secret,
                    auth: args.azure_auth,
                })
            }
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

/// `$PGCONNECT_TIMEOUT` as libpq reads it: whole seconds; zero or less waits forever, and values
/// below 2 are raised to 2.
fn libpq_connect_timeout(text: &str) -> Result<Option<Duration>, String> {
    let seconds: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("$PGCONNECT_TIMEOUT {text:?} is not a number of seconds"))?;
    Ok((seconds > 0).then(|| Duration::from_secs(seconds.max(2) as u64)))
}

/// Key Vault names: 3-24 characters, letters, digits and dashes, starting with a letter.
fn validate_vault_name(name: &str) -> Result<(), String> {
    let ok = (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--vault {name:?} is not a Key Vault name (3-24 letters, digits and dashes)"
        ))
    }
}

/// A Backstage plugin id is used as part of a database or schema name: letters, digits, `-` and `_`.
pub fn validate_plugin_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 48
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--plugin {id:?} is not a plugin id (letters, digits, '-' and '_', at most 48)"
        ))
    }
}

/// A Knex migration table name: `knex_migrations` or a prefixed one (`…__knex_migrations`).
pub fn validate_table_name(table: &str) -> Result<(), String> {
    let ok = table.ends_with("knex_migrations")
        && table.len() <= 63
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--table {table:?} is not a Knex migration table (a name ending in knex_migrations)"
        ))
    }
}
