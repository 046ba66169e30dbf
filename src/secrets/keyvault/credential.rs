//! Which Azure credential signs in, and building it.

use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::SecretError;
use super::error_text::useful_line;
use crate::options::AzureAuth;
use crate::process_env::ProcessEnv;

pub(super) const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub(super) const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
pub(super) const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub(super) const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub(super) const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// Set by App Service, Azure Arc and Service Fabric for their managed identity endpoint.
pub(super) const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// Set by Cloud Shell and Azure ML for their managed identity endpoint.
pub(super) const MSI_ENDPOINT: &str = "MSI_ENDPOINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The kinds of credential, in the order they are tried.
pub(super) enum CredentialKind {
    Workload,
    ServicePrincipal,
    Managed,
    Cli,
}

impl CredentialKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            CredentialKind::Workload => "workload identity",
            CredentialKind::ServicePrincipal => "service principal",
            CredentialKind::Managed => "managed identity",
            CredentialKind::Cli => "Azure CLI",
        }
    }
}

pub(super) fn choose_credential(auth: Option<AzureAuth>, env: &dyn ProcessEnv) -> CredentialKind {
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

pub(super) fn build_credential(
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

pub(super) fn list_names(names: &[&str]) -> String {
    match names {
        [one] => format!("{one} is"),
        [init @ .., last] => format!("{} and {last} are", init.join(", ")),
        [] => String::new(),
    }
}
