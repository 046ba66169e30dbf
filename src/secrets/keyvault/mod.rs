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

mod credential;
mod error_text;
mod transport;

use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use super::{KeyVaultSecret, Password, SecretError};
use crate::process_env::{ProcessEnv, RealEnv};

use credential::{build_credential, choose_credential};
use error_text::{classify, useful_line};
use transport::client_options;
pub(crate) use transport::tls_config;

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;
    use crate::options::AzureAuth;
    use azure_core::cloud::CloudConfiguration;
    use azure_core::error::ErrorKind;
    use azure_core::http::ClientOptions;
    use credential::*;
    use error_text::*;
    use transport::*;

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
