//! The HTTP transport: reqwest over rustls (ring), the system and Mozilla roots, the cloud of a vault.

use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::CloudConfiguration;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};

use super::credential::AZURE_AUTHORITY_HOST;
use super::error_text::useful_line;
use super::{KeyVaultSecret, SecretError};
use crate::process_env::ProcessEnv;

/// One HTTP client for the vault and the credentials, with few retries: a command waiting on a vault
/// that cannot be reached should say so in seconds, not after the SDK's minute of retries.
pub(super) fn client_options(
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
pub(super) fn cloud_of(vault_url: &str, env: &dyn ProcessEnv) -> Option<CloudConfiguration> {
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
pub(crate) fn tls_config() -> rustls::ClientConfig {
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
