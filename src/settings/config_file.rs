//! The config file: its types (unknown keys are an error) and how it is found and read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::process_env::{ProcessEnv, read_text_bounded};

/// A config file larger than this is refused rather than read (a mistyped `--config /dev/zero` must
/// not exhaust memory).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyConfig>,
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

/// The `verify` block of an environment: how sign-in is expected to start, where the API token comes
/// from (names only, never the token), and which entity's docs to check.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<VerifyAuthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<PasswordSource>,
    /// `namespace/kind/name` of an entity with TechDocs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_entity: Option<String>,
}

/// `verify.auth`: the sign-in provider, its auth environment and the identity provider's host.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyAuthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyVaultRef {
    pub vault: String,
    pub secret: String,
}

/// Reads the config file: `--config` (must exist), else `$KUBECTL_BACKSTAGE_CONFIG` (must exist), else the
/// XDG location (optional).
pub(super) fn load_config(
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
    let text = match read_text_bounded(&path, MAX_CONFIG_BYTES) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return Err(SettingsError::ConfigTooLarge {
                path,
                limit: MAX_CONFIG_BYTES,
            });
        }
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
