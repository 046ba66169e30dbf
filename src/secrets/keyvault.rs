//! Azure Key Vault: reads one secret with the Azure SDK for Rust (`azure_security_keyvault_secrets` and
//! `azure_identity`).
//!
//! - **Credential**: `--azure-auth` picks one; otherwise the first whose environment is present, in the
//!   spec's order: workload identity (`AZURE_FEDERATED_TOKEN_FILE`), a service principal
//!   (`AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` + `AZURE_TENANT_ID`), managed identity (only when the
//!   environment says we run on Azure: `IDENTITY_ENDPOINT` or `MSI_ENDPOINT`; a laptop does not wait for
//!   an IMDS probe), then the Azure CLI (`az account get-access-token`). The one chosen is the one used:
//!   its failure is reported, not hidden behind a fallback.
//! - **Transport**: reqwest over rustls with the ring provider (the only one linked), trusting the
//!   system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured) and the Mozilla roots. Proxies come from
//!   the standard `HTTPS_PROXY` / `NO_PROXY` variables.
//! - **Flow**: the SDK's first request is unauthenticated; the vault answers 401 with a `WWW-Authenticate`
//!   challenge whose resource must match the vault's domain (the check stays on); then the request is
//!   sent again with the token.
//! - **Errors**: one line each, as [`SecretError`] variants; never the secret's value or a token.

use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::CloudConfiguration;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use super::{KeyVaultSecret, Password, SecretError};
use crate::options::AzureAuth;
use crate::process_env::{ProcessEnv, RealEnv};

const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// Set by App Service, Azure Arc and Service Fabric for their managed identity endpoint.
const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// Set by Cloud Shell and Azure ML for their managed identity endpoint.
const MSI_ENDPOINT: &str = "MSI_ENDPOINT";

/// The longest message taken from an SDK error (a proxy's HTML page is not a message).
const MAX_MESSAGE: usize = 300;

/// Reads one secret's current value.
pub async fn read_secret(secret: &KeyVaultSecret) -> Result<Password, SecretError> {
    read_secret_in(secret, &RealEnv).await
}

async fn read_secret_in(
    secret: &KeyVaultSecret,
    env: &dyn ProcessEnv,
) -> Result<Password, SecretError> {
    validate_secret_name(secret)?;
    // The SDK builds no HTTP client of its own here (every pipeline gets ours), but a default provider
    // makes sure nothing can panic for want of one. `main` installs the same one first thing.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let kind = choose_credential(secret.auth, env);
    tracing::info!(credential = kind.name(), vault = %secret.vault_url, secret = %secret.secret, "reading a Key Vault secret");
    let client_options = client_options(secret, env)?;
    let credential = build_credential(kind, env, &client_options)?;

    let options = SecretClientOptions {
        client_options,
        // The challenge's resource must be the vault's own domain (the SDK's default, kept explicit).
        verify_challenge_resource: Some(true),
        ..SecretClientOptions::default()
    };
    let client = SecretClient::new(&secret.vault_url, credential, Some(options)).map_err(|e| {
        SecretError::KeyVault {
            vault_url: secret.vault_url.clone(),
            secret: secret.secret.clone(),
            message: format!("invalid vault URL: {}", useful_line(&e)),
        }
    })?;
    let response = client
        .get_secret(&secret.secret, None)
        .await
        .map_err(|e| classify(&e, secret, kind))?;
    let model = response.into_model().map_err(|e| SecretError::KeyVault {
        vault_url: secret.vault_url.clone(),
        secret: secret.secret.clone(),
        // A body that does not parse is reported by its shape only: it may hold the value.
        message: format!("the vault's answer could not be read ({})", e.kind()),
    })?;
    match model.value {
        Some(value) => Ok(Password::new(value)),
        None => Err(SecretError::KeyVault {
            vault_url: secret.vault_url.clone(),
            secret: secret.secret.clone(),
            message: "the vault's answer has no value".into(),
        }),
    }
}

/// Key Vault secret names are 1 to 127 letters, digits and hyphens; anything else would change the
/// request's path.
fn validate_secret_name(secret: &KeyVaultSecret) -> Result<(), SecretError> {
    let name = &secret.secret;
    if name.is_empty()
        || name.len() > 127
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(SecretError::KeyVault {
            vault_url: secret.vault_url.clone(),
            secret: name.clone(),
            message: "invalid secret name: use 1 to 127 letters, digits and hyphens".into(),
        });
    }
    Ok(())
}

/// The kinds of credential, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CredentialKind {
    Workload,
    ServicePrincipal,
    Managed,
    Cli,
}

impl CredentialKind {
    fn name(self) -> &'static str {
        match self {
            CredentialKind::Workload => "workload identity",
            CredentialKind::ServicePrincipal => "service principal",
            CredentialKind::Managed => "managed identity",
            CredentialKind::Cli => "Azure CLI",
        }
    }
}

fn choose_credential(auth: Option<AzureAuth>, env: &dyn ProcessEnv) -> CredentialKind {
    match auth {
        Some(AzureAuth::Workload) => CredentialKind::Workload,
        Some(AzureAuth::ServicePrincipal) => CredentialKind::ServicePrincipal,
        Some(AzureAuth::Managed) => CredentialKind::Managed,
        Some(AzureAuth::Cli) => CredentialKind::Cli,
        None if env.var(AZURE_FEDERATED_TOKEN_FILE).is_some() => CredentialKind::Workload,
        None if [AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID]
            .iter()
            .all(|v| env.var(v).is_some()) =>
        {
            CredentialKind::ServicePrincipal
        }
        None if env.var(IDENTITY_ENDPOINT).is_some() || env.var(MSI_ENDPOINT).is_some() => {
            CredentialKind::Managed
        }
        None => CredentialKind::Cli,
    }
}

fn build_credential(
    kind: CredentialKind,
    env: &dyn ProcessEnv,
    client_options: &ClientOptions,
) -> Result<Arc<dyn TokenCredential>, SecretError> {
    let not_signed_in = |message: String| SecretError::NotSignedIn {
        credential: kind.name().into(),
        message,
    };
    let sdk_error = |e: azure_core::Error| not_signed_in(useful_line(&e));
    let required = |names: &[&str]| -> Result<Vec<String>, SecretError> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| env.var(n).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(not_signed_in(format!("{} not set", list_names(&missing))));
        }
        Ok(names.iter().filter_map(|n| env.var(n)).collect())
    };
    Ok(match kind {
        CredentialKind::Workload => {
            let values = required(&[AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID])?;
            let [token_file, client_id, tenant_id] =
                <[String; 3]>::try_from(values).expect("three values");
            let options = WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options: client_options.clone(),
                },
                client_id: Some(client_id),
                tenant_id: Some(tenant_id),
                token_file_path: Some(token_file.into()),
            };
            WorkloadIdentityCredential::new(Some(options)).map_err(sdk_error)?
        }
        CredentialKind::ServicePrincipal => {
            let values = required(&[AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID])?;
            let [client_id, client_secret, tenant_id] =
                <[String; 3]>::try_from(values).expect("three values");
            let options = ClientSecretCredentialOptions {
                client_options: client_options.clone(),
            };
            ClientSecretCredential::new(
                &tenant_id,
                client_id,
                Secret::new(client_secret),
                Some(options),
            )
            .map_err(sdk_error)?
        }
        CredentialKind::Managed => {
            let options = ManagedIdentityCredentialOptions {
                // A user-assigned identity is named the way AKS and App Service name it.
                user_assigned_id: env.var(AZURE_CLIENT_ID).map(UserAssignedId::ClientId),
                client_options: client_options.clone(),
            };
            ManagedIdentityCredential::new(Some(options)).map_err(sdk_error)?
        }
        CredentialKind::Cli => AzureCliCredential::new(None).map_err(sdk_error)?,
    })
}

fn list_names(names: &[&str]) -> String {
    match names {
        [one] => format!("{one} is"),
        [init @ .., last] => format!("{} and {last} are", init.join(", ")),
        [] => String::new(),
    }
}

/// One HTTP client for the vault and the credentials, with few retries: a command waiting on a vault
/// that cannot be reached should say so in seconds, not after the SDK's minute of retries.
fn client_options(
    secret: &KeyVaultSecret,
    env: &dyn ProcessEnv,
) -> Result<ClientOptions, SecretError> {
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SecretError::KeyVault {
            vault_url: secret.vault_url.clone(),
            secret: secret.secret.clone(),
            message: format!("cannot set up the HTTP client: {}", useful_line(&e)),
        })?;
    Ok(ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: 2,
            max_total_elapsed: azure_core::time::Duration::seconds(20),
            max_delay: azure_core::time::Duration::seconds(2),
        }),
        cloud: cloud_of(&secret.vault_url, env).map(Arc::new),
        ..ClientOptions::default()
    })
}

/// A sovereign cloud's vault signs in at that cloud's authority, unless `AZURE_AUTHORITY_HOST` says
/// otherwise (the SDK reads it when no cloud is given).
fn cloud_of(vault_url: &str, env: &dyn ProcessEnv) -> Option<CloudConfiguration> {
    if env.var(AZURE_AUTHORITY_HOST).is_some() {
        return None;
    }
    let host = azure_core::http::Url::parse(vault_url)
        .ok()?
        .host_str()?
        .to_ascii_lowercase();
    if host.ends_with(".vault.usgovcloudapi.net") {
        Some(CloudConfiguration::AzureGovernment)
    } else if host.ends_with(".vault.azure.cn") {
        Some(CloudConfiguration::AzureChina)
    } else {
        None
    }
}

/// rustls with ring, trusting the system's roots (with `SSL_CERT_FILE` / `SSL_CERT_DIR`) and the
/// Mozilla roots, for machines without a CA bundle.
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("loading the system's root certificates: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!("{added} system root certificates ({ignored} unusable)");
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Maps an SDK error to the one-line error the user sees.
fn classify(
    error: &azure_core::Error,
    secret: &KeyVaultSecret,
    kind: CredentialKind,
) -> SecretError {
    let vault_url = secret.vault_url.clone();
    let name = secret.secret.clone();
    let line = useful_line(error);
    let other = |message: String| SecretError::KeyVault {
        vault_url: secret.vault_url.clone(),
        secret: secret.secret.clone(),
        message,
    };
    match error.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => match u16::from(*status) {
            403 => SecretError::Forbidden {
                vault_url,
                secret: name,
            },
            404 => SecretError::SecretNotFound {
                vault_url,
                secret: name,
            },
            401 => other(format!(
                "the vault did not accept the {} token (401): {line}",
                kind.name()
            )),
            code => match error_code {
                Some(c) if !line.contains(c.as_str()) => other(format!("HTTP {code} {c}: {line}")),
                _ => other(format!("HTTP {code}: {line}")),
            },
        },
        ErrorKind::Credential => SecretError::NotSignedIn {
            credential: kind.name().into(),
            message: line,
        },
        _ if chain(error).any(is_tls_error) => other(format!(
            "TLS with the vault failed ({line}); if a proxy or a private CA signs its certificate, trust that CA \
             with SSL_CERT_FILE"
        )),
        _ if line.starts_with("tunnel error") => SecretError::VaultUnreachable {
            vault_url,
            message: format!("the HTTPS proxy could not connect to it: {line}"),
        },
        ErrorKind::Connection => SecretError::VaultUnreachable {
            vault_url,
            message: line,
        },
        ErrorKind::Io if chain(error).any(is_connect_error) => SecretError::VaultUnreachable {
            vault_url,
            message: line,
        },
        _ if line.contains("doesn't match the requested domain") => {
            // The SDK's advice (turn the check off in the client options) is not the user's to follow.
            let reason = line
                .split(". Set verify_challenge_resource")
                .next()
                .unwrap_or(&line);
            other(format!(
                "the vault's authentication challenge is not for its own domain, so no token was sent: {reason}"
            ))
        }
        _ => other(line),
    }
}

/// An error and its sources, with the error inside an `io::Error` (whose `source` skips it).
fn chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
        Some(current)
    })
}

fn is_connect_error(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<reqwest::Error>()
        .is_some_and(|e| e.is_connect() || e.is_timeout())
}

fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<rustls::Error>()
}

/// The one line of an SDK error worth showing: the innermost cause that says something, without the
/// SDK's troubleshooting links, the credential's "authentication failed." preamble, the Azure CLI's
/// `ERROR:` prefix or the lines around it.
fn useful_line(error: &(dyn std::error::Error + 'static)) -> String {
    let messages: Vec<String> = chain(error).map(|e| e.to_string()).collect();
    let line = messages
        .iter()
        .rev()
        .find_map(|m| best_line(m))
        .unwrap_or_else(|| "unknown error".into());
    shorten(&line)
}

fn best_line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| strip_preamble(l.trim()))
        .filter(|l| !l.is_empty() && !l.starts_with("To troubleshoot"))
        .collect();
    let line = lines
        .iter()
        .find(|l| l.starts_with("ERROR:"))
        .or_else(|| lines.first())?;
    let unquoted = unexpected_string(line);
    let line = unquoted.as_deref().unwrap_or(line);
    // The message goes inside a sentence of ours: no closing period of its own.
    let line = line
        .strip_prefix("ERROR:")
        .unwrap_or(line)
        .trim()
        .trim_end_matches('.')
        .trim_end();
    (!line.is_empty()).then(|| line.to_string())
}

/// The first line of the string in a serde error `invalid type: string "…", expected …`. The identity
/// crate reads Entra ID's `error_description` as a borrowed string, which fails for the real ones: they
/// hold `\r\n`. The description is still the best message there is.
fn unexpected_string(line: &str) -> Option<String> {
    let quoted = line.strip_prefix("invalid type: string \"")?;
    let end = [r"\r", r"\n", "\", expected"]
        .iter()
        .filter_map(|m| quoted.find(m))
        .min()?;
    Some(quoted[..end].replace(r#"\""#, "\"").replace(r"\\", r"\"))
}

/// `AzureCliCredential authentication failed. <message>` → `<message>`.
fn strip_preamble(line: &str) -> &str {
    match line.split_once(" authentication failed.") {
        Some((credential, rest))
            if credential.ends_with("Credential") && !credential.contains(' ') =>
        {
            rest.trim()
        }
        _ => line,
    }
}

/// Defence in depth: whatever an SDK message quotes, a JSON Web Token in it is replaced.
fn redact_tokens(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| {
                !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            });
            if core.starts_with("eyJ") && core.matches('.').count() >= 2 {
                word.replace(core, "<token>")
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn shorten(line: &str) -> String {
    let line = &redact_tokens(line);
    if line.chars().count() <= MAX_MESSAGE {
        return line.to_string();
    }
    let mut short: String = line.chars().take(MAX_MESSAGE).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;

    struct FakeEnv(HashMap<&'static str, &'static str>);

    impl ProcessEnv for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
        fn home(&self) -> Option<PathBuf> {
            None
        }
    }

    fn env(vars: &[(&'static str, &'static str)]) -> FakeEnv {
        FakeEnv(vars.iter().copied().collect())
    }

    #[test]
    fn the_first_credential_whose_environment_is_present_is_chosen() {
        let sp = [
            (AZURE_CLIENT_ID, "c"),
            (AZURE_CLIENT_SECRET, "s"),
            (AZURE_TENANT_ID, "t"),
        ];
        let workload = [
            (AZURE_FEDERATED_TOKEN_FILE, "/var/run/token"),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_TENANT_ID, "t"),
        ];
        assert_eq!(choose_credential(None, &env(&[])), CredentialKind::Cli);
        assert_eq!(
            choose_credential(None, &env(&sp)),
            CredentialKind::ServicePrincipal
        );
        assert_eq!(
            choose_credential(None, &env(&workload)),
            CredentialKind::Workload
        );
        let both: Vec<_> = sp.iter().chain(workload.iter()).copied().collect();
        assert_eq!(
            choose_credential(None, &env(&both)),
            CredentialKind::Workload
        );
        // Two of the three service principal variables are not a service principal.
        assert_eq!(choose_credential(None, &env(&sp[..2])), CredentialKind::Cli);
        assert_eq!(
            choose_credential(None, &env(&[(IDENTITY_ENDPOINT, "http://x")])),
            CredentialKind::Managed
        );
        assert_eq!(
            choose_credential(None, &env(&[(MSI_ENDPOINT, "http://x")])),
            CredentialKind::Managed
        );
        assert_eq!(
            choose_credential(
                None,
                &env(&[(MSI_ENDPOINT, "http://x"), sp[0], sp[1], sp[2]])
            ),
            CredentialKind::ServicePrincipal
        );
    }

    #[test]
    fn azure_auth_picks_exactly_one() {
        let everything = env(&[
            (AZURE_FEDERATED_TOKEN_FILE, "/t"),
            (AZURE_CLIENT_ID, "c"),
            (AZURE_CLIENT_SECRET, "s"),
            (AZURE_TENANT_ID, "t"),
            (IDENTITY_ENDPOINT, "http://x"),
        ]);
        assert_eq!(
            choose_credential(Some(AzureAuth::Cli), &everything),
            CredentialKind::Cli
        );
        assert_eq!(
            choose_credential(Some(AzureAuth::Managed), &env(&[])),
            CredentialKind::Managed
        );
        assert_eq!(
            choose_credential(Some(AzureAuth::Workload), &env(&[])),
            CredentialKind::Workload
        );
        assert_eq!(
            choose_credential(Some(AzureAuth::ServicePrincipal), &env(&[])),
            CredentialKind::ServicePrincipal
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let options = ClientOptions::default();
        let err = build_credential(
            CredentialKind::ServicePrincipal,
            &env(&[(AZURE_CLIENT_ID, "c")]),
            &options,
        )
        .expect_err("no secret, no tenant");
        assert_eq!(
            err.to_string(),
            "not signed in to Azure (service principal): AZURE_CLIENT_SECRET and AZURE_TENANT_ID are not set; \
             check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID"
        );
        let err = build_credential(
            CredentialKind::Workload,
            &env(&[(AZURE_CLIENT_ID, "c"), (AZURE_TENANT_ID, "t")]),
            &options,
        )
        .expect_err("no token file");
        assert!(
            err.to_string()
                .contains("(workload identity): AZURE_FEDERATED_TOKEN_FILE is not set;"),
            "{err}"
        );
    }

    #[test]
    fn sdk_errors_collapse_to_their_useful_line() {
        let cli = azure_core::Error::with_message(
            ErrorKind::Credential,
            "AzureCliCredential authentication failed. WARNING: a warning\nERROR: Please run 'az login' to setup account.\n\
             To troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot#azure-cli",
        );
        assert_eq!(useful_line(&cli), "Please run 'az login' to setup account");
        let entra = azure_core::Error::with_message(
            ErrorKind::Credential,
            "ClientSecretCredential authentication failed. AADSTS7000215: Invalid client secret provided.\r\n\
             Trace ID: 1\r\nCorrelation ID: 2\nTo troubleshoot, visit https://aka.ms/x",
        );
        assert_eq!(
            useful_line(&entra),
            "AADSTS7000215: Invalid client secret provided"
        );
        let serde = azure_core::Error::with_message(
            ErrorKind::DataConversion,
            r#"invalid type: string "AADSTS700016: Application with identifier 'x' was not found.\r\nTrace ID: 1", expected a borrowed string at line 1 column 90"#,
        );
        assert_eq!(
            useful_line(&serde),
            "AADSTS700016: Application with identifier 'x' was not found"
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let wrapped = azure_core::Error::with_error(
            ErrorKind::Connection,
            io,
            "failed to execute `reqwest` request",
        );
        assert_eq!(useful_line(&wrapped), "Connection refused (os error 111)");
        let quoting = azure_core::Error::with_message(
            ErrorKind::DataConversion,
            r#"invalid type: string "eyJ0eXAiOiJKV1Qi.eyJhdWQiOiJ4In0.c2ln", expected u64"#,
        );
        assert_eq!(useful_line(&quoting), "<token>");
        let long = azure_core::Error::with_message(ErrorKind::Other, "x".repeat(1000));
        assert_eq!(useful_line(&long).chars().count(), MAX_MESSAGE + 1);
    }

    #[test]
    fn secret_names_that_would_change_the_path_are_refused() {
        for bad in ["", "a/b", "../keys/k", "a?b", "ä", &"x".repeat(128)] {
            let secret = KeyVaultSecret {
                vault_url: "https://v.vault.azure.net/".into(),
                secret: bad.to_string(),
                auth: None,
            };
            assert!(validate_secret_name(&secret).is_err(), "{bad:?}");
        }
        let good = KeyVaultSecret {
            vault_url: "https://v.vault.azure.net/".into(),
            secret: "backstage-psqldb-password-2".into(),
            auth: None,
        };
        assert!(validate_secret_name(&good).is_ok());
    }

    #[test]
    fn sovereign_vaults_sign_in_at_their_cloud() {
        assert_eq!(
            cloud_of("https://v.vault.usgovcloudapi.net/", &env(&[])),
            Some(CloudConfiguration::AzureGovernment)
        );
        assert_eq!(
            cloud_of("https://v.vault.azure.cn/", &env(&[])),
            Some(CloudConfiguration::AzureChina)
        );
        assert_eq!(cloud_of("https://v.vault.azure.net/", &env(&[])), None);
        assert_eq!(
            cloud_of(
                "https://v.vault.azure.cn/",
                &env(&[(AZURE_AUTHORITY_HOST, "https://login.example")])
            ),
            None
        );
    }
}
