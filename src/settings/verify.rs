//! The settings of `verify`: flags over the environment's `verify` block (and its `url`), checked
//! before any request is sent. Only names of tokens are held here (a variable, a Key Vault secret);
//! the command reads the value.

use std::time::Duration;

use super::SettingsError;
use super::config_file::Environment;
use super::validate::validate_vault_name;
use crate::cli::VerifyArgs;
use crate::model::verify::{EntityRef, well_known_auth_host};
use crate::process_env::ProcessEnv;
use crate::secrets::KeyVaultSecret;

/// The variable the API token is read from when no other source is named.
pub const TOKEN_VARIABLE: &str = "BACKSTAGE_TOKEN";
/// Backstage's default `auth.environment`.
pub const DEFAULT_AUTH_ENV: &str = "development";

/// Everything `verify` needs to run for one environment.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub environment: Option<String>,
    /// `--url`, else the environment's `url`: http(s), no credentials, ending in `/`. `None`: reach
    /// the backend through the API server (see `commands::verify::base_url`).
    pub url: Option<String>,
    /// The sign-in check; `None` when no provider is configured (the check is then skipped).
    pub sign_in: Option<SignInSettings>,
    pub token: TokenSettings,
    pub docs_entity: Option<EntityRef>,
    /// Bounds each check; `None` waits forever.
    pub request_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInSettings {
    pub provider: String,
    pub env: String,
    /// The identity provider's host; `None` accepts a redirect to any host.
    pub host: Option<String>,
}

/// Where the API token comes from (names only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSettings {
    /// No token: the checks that need one are skipped.
    None,
    /// An environment variable; `origin` says where its name came from, for errors
    /// (`--token-env NAME`, `verify.token.env NAME`, `$BACKSTAGE_TOKEN`).
    Variable {
        name: String,
        origin: String,
    },
    KeyVault(KeyVaultSecret),
}

impl VerifySettings {
    pub fn resolve(
        args: &VerifyArgs,
        environment: Option<(&str, &Environment)>,
        request_timeout: Option<Duration>,
        env: &dyn ProcessEnv,
    ) -> Result<VerifySettings, SettingsError> {
        let block = environment
            .and_then(|(_, e)| e.verify.clone())
            .unwrap_or_default();
        let url = match (&args.url, environment.and_then(|(_, e)| e.url.as_deref())) {
            (Some(url), _) => Some(base_url(url, "--url")?),
            (None, Some(url)) => Some(base_url(url, "url")?),
            (None, None) => None,
        };

        let auth = block.auth.clone().unwrap_or_default();
        let provider = args.auth_provider.clone().or(auth.provider.clone());
        let auth_env = args.auth_env.clone().or(auth.env.clone());
        let host = args.auth_host.clone().or(auth.host.clone());
        let sign_in = match provider {
            Some(provider) => {
                check_word(&provider, "--auth-provider", "is not a provider id")?;
                let env_name = auth_env.unwrap_or_else(|| DEFAULT_AUTH_ENV.to_string());
                check_word(&env_name, "--auth-env", "is not an auth environment name")?;
                if let Some(host) = &host {
                    check_host(host)?;
                }
                Some(SignInSettings {
                    host: host.or_else(|| well_known_auth_host(&provider).map(str::to_string)),
                    provider,
                    env: env_name,
                })
            }
            None if auth_env.is_some() || host.is_some() => {
                return Err(SettingsError::Conflict {
                    message: "--auth-env and --auth-host need a provider (--auth-provider or verify.auth.provider)",
                });
            }
            None => None,
        };

        let file_token = block
            .token
            .clone()
            .unwrap_or(crate::settings::PasswordSource {
                key_vault: None,
                env: None,
            });
        let token = if let Some(name) = &args.token_env {
            check_variable(name, "--token-env")?;
            TokenSettings::Variable {
                name: name.clone(),
                origin: format!("--token-env {name}"),
            }
        } else if let Some(name) = &file_token.env {
            check_variable(name, "verify.token.env")?;
            TokenSettings::Variable {
                name: name.clone(),
                origin: format!("verify.token.env {name}"),
            }
        } else if env.var(TOKEN_VARIABLE).is_some() {
            TokenSettings::Variable {
                name: TOKEN_VARIABLE.to_string(),
                origin: format!("${TOKEN_VARIABLE}"),
            }
        } else if let Some(vault) = &file_token.key_vault {
            let vault_url = match &args.vault_url {
                Some(url) => url.clone(),
                None => {
                    validate_vault_name(&vault.vault)?;
                    format!("https://{}.vault.azure.net/", vault.vault)
                }
            };
            TokenSettings::KeyVault(KeyVaultSecret {
                vault_url,
                secret: vault.secret.clone(),
                auth: args.azure_auth,
            })
        } else {
            if args.vault_url.is_some() || args.azure_auth.is_some() {
                return Err(SettingsError::Conflict {
                    message: "--vault-url and --azure-auth need verify.token.keyVault in the environment",
                });
            }
            TokenSettings::None
        };

        let docs_entity = match (&args.docs_entity, &block.docs_entity) {
            (Some(text), _) => Some(entity(text, "--docs-entity")?),
            (None, Some(text)) => Some(entity(text, "verify.docsEntity")?),
            (None, None) => None,
        };
        Ok(VerifySettings {
            environment: environment.map(|(name, _)| name.to_string()),
            url,
            sign_in,
            token,
            docs_entity,
            request_timeout,
        })
    }
}

/// A base URL: http or https, a host, no credentials, query or fragment; made to end in `/` so that
/// API paths join below it (a portal served under `/backstage/` keeps its prefix).
fn base_url(text: &str, what: &str) -> Result<String, SettingsError> {
    let invalid = |problem: &'static str| SettingsError::InvalidValue {
        what: what.to_string(),
        // A URL with credentials is not echoed.
        value: if text.contains('@') {
            "<redacted>".to_string()
        } else {
            text.to_string()
        },
        problem,
    };
    let mut url = reqwest::Url::parse(text).map_err(|_| invalid("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "carries credentials; give the token with --token-env instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url.to_string())
}

/// Provider ids and auth environments: letters, digits, `-` and `_`.
fn check_word(text: &str, what: &str, problem: &'static str) -> Result<(), SettingsError> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SettingsError::InvalidValue {
            what: what.to_string(),
            value: text.to_string(),
            problem,
        })
    }
}

fn check_host(host: &str) -> Result<(), SettingsError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(SettingsError::InvalidValue {
            what: "--auth-host".into(),
            value: host.to_string(),
            problem: "is not a host name",
        })
    }
}

fn check_variable(name: &str, what: &str) -> Result<(), SettingsError> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SettingsError::InvalidValue {
            what: what.to_string(),
            value: name.to_string(),
            problem: "is not an environment variable name",
        })
    }
}

fn entity(text: &str, what: &str) -> Result<EntityRef, SettingsError> {
    EntityRef::parse(text).ok_or_else(|| SettingsError::InvalidValue {
        what: what.to_string(),
        value: text.to_string(),
        problem: "is not an entity as NAMESPACE/KIND/NAME (e.g. default/component/petstore)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    struct FakeEnv(BTreeMap<&'static str, &'static str>);
    impl ProcessEnv for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
        fn home(&self) -> Option<PathBuf> {
            None
        }
    }

    fn resolve(
        flags: &[&str],
        config: &str,
        env: &[(&'static str, &'static str)],
    ) -> VerifySettings {
        let mut argv = vec!["kubectl-backstage", "verify"];
        argv.extend_from_slice(flags);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Verify(args) = cli.command else {
            unreachable!()
        };
        let file = crate::settings::parse_config(config).unwrap();
        let environment = file.environments.get("x").cloned();
        VerifySettings::resolve(
            &args,
            environment.as_ref().map(|e| ("x", e)),
            None,
            &FakeEnv(env.iter().copied().collect()),
        )
        .unwrap()
    }

    const FULL: &str = "environments:\n  x:\n    url: https://b.example.net\n    verify:\n      auth: {provider: microsoft}\n      token:\n        env: FILE_TOKEN\n        keyVault: {vault: sbox-intsvc, secret: api-token}\n";
    const VAULT_ONLY: &str = "environments:\n  x:\n    url: https://b.example.net\n    verify:\n      token:\n        keyVault: {vault: sbox-intsvc, secret: api-token}\n";

    fn variable(settings: &VerifySettings) -> Option<&str> {
        match &settings.token {
            TokenSettings::Variable { name, .. } => Some(name),
            _ => None,
        }
    }

    #[test]
    fn the_token_comes_from_the_flag_then_the_file_then_backstage_token_then_key_vault() {
        let both = [("BACKSTAGE_TOKEN", "t")];
        assert_eq!(
            variable(&resolve(&["--token-env", "MINE"], FULL, &both)),
            Some("MINE")
        );
        assert_eq!(variable(&resolve(&[], FULL, &both)), Some("FILE_TOKEN"));
        assert_eq!(
            variable(&resolve(&[], VAULT_ONLY, &both)),
            Some("BACKSTAGE_TOKEN")
        );
        assert_eq!(
            resolve(&[], VAULT_ONLY, &[]).token,
            TokenSettings::KeyVault(KeyVaultSecret {
                vault_url: "https://sbox-intsvc.vault.azure.net/".into(),
                secret: "api-token".into(),
                auth: None,
            })
        );
        assert_eq!(
            resolve(&["--url", "http://h"], "", &[]).token,
            TokenSettings::None
        );
    }

    #[test]
    fn sign_in_defaults_to_development_and_the_providers_host() {
        let s = resolve(&[], FULL, &[]);
        assert_eq!(s.url.as_deref(), Some("https://b.example.net/"));
        assert_eq!(
            s.sign_in,
            Some(SignInSettings {
                provider: "microsoft".into(),
                env: "development".into(),
                host: Some("login.microsoftonline.com".into()),
            })
        );
        let s = resolve(&["--auth-provider", "oidc", "--url", "http://h"], "", &[]);
        assert_eq!(s.sign_in.unwrap().host, None);
        assert_eq!(resolve(&["--url", "http://h"], "", &[]).sign_in, None);
    }

    #[test]
    fn base_urls_end_in_a_slash_and_carry_no_secrets() {
        assert_eq!(
            base_url("https://b.example.net", "--url").unwrap(),
            "https://b.example.net/"
        );
        assert_eq!(
            base_url("http://127.0.0.1:7007/backstage", "--url").unwrap(),
            "http://127.0.0.1:7007/backstage/"
        );
        let err = base_url("https://u:s3cret@b.example.net/", "--url").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert_eq!(
            base_url("ftp://b.example.net/", "url")
                .unwrap_err()
                .to_string(),
            "url \"ftp://b.example.net/\" is not an http or https URL"
        );
        assert!(base_url("b.example.net", "--url").is_err());
        assert!(base_url("https://b.example.net/?x=1", "--url").is_err());
    }
}
