//! Errors of the Kubernetes adapter. Each names the step that failed and what it was acting on.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("no kubeconfig found: set --kubeconfig or $KUBECONFIG, or create ~/.kube/config")]
    NoKubeconfig,
    #[error("cannot read kubeconfig {path}: {message}", path = .path.display())]
    ReadKubeconfig { path: PathBuf, message: String },
    #[error("kubeconfig {path} is malformed: {message}", path = .path.display())]
    Kubeconfig { path: PathBuf, message: String },
    #[error("no current-context in the kubeconfig; pick one with --context ({known})")]
    NoCurrentContext { known: String },
    #[error("context {context:?} not found in the kubeconfig; contexts: {known}")]
    UnknownContext { context: String, known: String },
    #[error(
        "context {context:?} has namespace {namespace:?}, which is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit); pass -n NAMESPACE"
    )]
    InvalidNamespace { context: String, namespace: String },
    #[error("context {context:?} cannot be used: {message}")]
    ContextConfig { context: String, message: String },
    #[error("cannot create a client for context {context:?}: {message}")]
    Client { context: String, message: String },
    #[error("cannot reach the API server {server} (context {context:?}): {message}")]
    Unreachable {
        server: String,
        context: String,
        message: String,
    },
    #[error(
        "the API server refused the credentials of context {context:?} (401 Unauthorized) to {action}; log in again or check the kubeconfig's user"
    )]
    Unauthorized { context: String, action: String },
    #[error("forbidden: cannot {action} (context {context:?}): {message}")]
    Forbidden {
        context: String,
        action: String,
        message: String,
    },
    #[error(
        "{action} timed out after {after:?} (context {context:?}); raise --request-timeout if the API server is slow"
    )]
    Timeout {
        context: String,
        action: String,
        after: Duration,
    },
    #[error("{action} failed: {message} ({code})")]
    Api {
        action: String,
        code: u16,
        message: String,
    },
    #[error("{action} failed: {message}")]
    Other { action: String, message: String },
}
