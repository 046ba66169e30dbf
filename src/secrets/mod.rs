//! Passwords: a type that never prints its value, and where the database password comes from, in the
//! spec's order: `--password-env VAR`, Key Vault, `PGPASSWORD`, the libpq password file.

mod keyvault;
mod pgpass;

use std::fmt;
use std::path::PathBuf;

pub use keyvault::read_secret;
/// The TLS client configuration of every HTTPS call the tool makes (ring; system and Mozilla roots).
pub(crate) use keyvault::tls_config;

use crate::options::AzureAuth;
use crate::process_env::ProcessEnv;

/// A secret value. It has no `Display`, its `Debug` is redacted, and it is never serialized; code that
/// needs the value calls [`Password::expose`] at the one place it is handed over.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(value: String) -> Password {
        Password(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Where a password was found (printed with `-v`; names only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOrigin {
    EnvironmentVariable(String),
    KeyVault { vault_url: String, secret: String },
    PgPassword,
    PasswordFile(PathBuf),
}

impl fmt::Display for PasswordOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordOrigin::EnvironmentVariable(name) => write!(f, "environment variable {name}"),
            PasswordOrigin::KeyVault { vault_url, secret } => {
                write!(f, "Key Vault secret {secret} in {vault_url}")
            }
            PasswordOrigin::PgPassword => f.write_str("PGPASSWORD"),
            PasswordOrigin::PasswordFile(path) => write!(f, "password file {}", path.display()),
        }
    }
}

/// Where the database password comes from (names only), as the settings resolved it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordSettings {
    /// `--password-env VAR` or the environment's `password.env`.
    pub env_var: Option<String>,
    pub key_vault: Option<KeyVaultSecret>,
}

/// The Key Vault settings of a password: which secret, where, and how to sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultSecret {
    pub vault_url: String,
    pub secret: String,
    pub auth: Option<AzureAuth>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("--password-env {name}: the environment variable is not set")]
    EnvMissing { name: String },
    #[error(
        "no database password: use --password-env VAR, a Key Vault secret (--vault and --secret, or password.keyVault in the environment), PGPASSWORD or a ~/.pgpass entry for {host}:{port} user {user}"
    )]
    NotFound {
        host: String,
        port: u16,
        user: String,
    },
    #[error(
        "not signed in to Azure ({credential}): {message}; {}", sign_in_hint(.credential)
    )]
    NotSignedIn { credential: String, message: String },
    #[error(
        "Key Vault {vault_url} refused access to secret {secret:?} (403): give the signed-in identity `get` permission on secrets"
    )]
    Forbidden { vault_url: String, secret: String },
    #[error("Key Vault {vault_url} has no secret {secret:?} (404)")]
    SecretNotFound { vault_url: String, secret: String },
    #[error(
        "Key Vault {vault_url} cannot be reached ({message}); check the vault name (--vault) or --vault-url"
    )]
    VaultUnreachable { vault_url: String, message: String },
    #[error("reading secret {secret:?} from Key Vault {vault_url} failed: {message}")]
    KeyVault {
        vault_url: String,
        secret: String,
        message: String,
    },
}

/// What to do when a credential could not sign in.
fn sign_in_hint(credential: &str) -> &'static str {
    match credential {
        "Azure CLI" => "sign in with `az login`, or pick another way with --azure-auth",
        "workload identity" => {
            "check the pod's service account federation (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)"
        }
        "service principal" => "check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID",
        _ => "check the identity assigned to this machine, or pick another way with --azure-auth",
    }
}

/// A password and where it came from.
#[derive(Debug)]
pub struct FoundPassword {
    pub password: Password,
    pub origin: PasswordOrigin,
}

/// Finds the database password in the spec's order. `database` is the one the password file is
/// matched against (`*` matches any).
pub async fn database_password(
    settings: &PasswordSettings,
    host: &str,
    port: u16,
    user: &str,
    database: &str,
    env: &dyn ProcessEnv,
) -> Result<FoundPassword, SecretError> {
    if let Some(name) = &settings.env_var {
        let value = env
            .var(name)
            .ok_or_else(|| SecretError::EnvMissing { name: name.clone() })?;
        return Ok(FoundPassword {
            password: Password::new(value),
            origin: PasswordOrigin::EnvironmentVariable(name.clone()),
        });
    }
    if let Some(vault) = &settings.key_vault {
        let password = read_secret(vault).await?;
        return Ok(FoundPassword {
            password,
            origin: PasswordOrigin::KeyVault {
                vault_url: vault.vault_url.clone(),
                secret: vault.secret.clone(),
            },
        });
    }
    if let Some(value) = env.var("PGPASSWORD") {
        return Ok(FoundPassword {
            password: Password::new(value),
            origin: PasswordOrigin::PgPassword,
        });
    }
    let file = env
        .var("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| h.join(".pgpass")));
    if let Some(file) = file
        && let Some(password) = pgpass::lookup(&file, host, port, database, user)
    {
        return Ok(FoundPassword {
            password,
            origin: PasswordOrigin::PasswordFile(file),
        });
    }
    Err(SecretError::NotFound {
        host: host.to_string(),
        port,
        user: user.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_prints() {
        let p = Password::new("hunter2-sentinel".into());
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        let found = FoundPassword {
            password: p,
            origin: PasswordOrigin::PgPassword,
        };
        assert!(!format!("{found:?}").contains("hunter2"));
    }
}
