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
    #[error(
        "no Backstage deployment in namespace {namespace:?} (none labelled app.kubernetes.io/name=backstage, none with a backstage image)"
    )]
    NoBackstageDeployment { namespace: String },
    #[error(
        "several deployments in namespace {namespace:?} could be Backstage ({deployments}); label the one with app.kubernetes.io/name=backstage"
    )]
    AmbiguousDeployment {
        namespace: String,
        deployments: String,
    },
    #[error("service {service:?} not found in namespace {namespace:?}")]
    ServiceNotFound { service: String, namespace: String },
    #[error(
        "no service in namespace {namespace:?} selects the backstage backend pods (services: {services})"
    )]
    NoBackstageService { namespace: String, services: String },
    #[error(
        "several services in namespace {namespace:?} could be the backstage backend ({services}); name the one to use"
    )]
    AmbiguousService { namespace: String, services: String },
    #[error("service {service:?} has no selector, so no pod to forward to stands behind it")]
    ServiceWithoutSelector { service: String },
    #[error(
        "service {service:?} has ports {ports}, none named http or http-backend and none 7007; name the port to use"
    )]
    NoServicePort { service: String, ports: String },
    #[error(
        "no pod behind service {service:?} in namespace {namespace:?} is running and ready ({pods})"
    )]
    NoReadyPod {
        service: String,
        namespace: String,
        pods: String,
    },
    #[error(
        "service {service:?} targets port {port:?}, which no container of pod {pod:?} declares"
    )]
    UnknownTargetPort {
        service: String,
        pod: String,
        port: String,
    },
    #[error("cannot listen on 127.0.0.1 for the port-forward: {message}")]
    LocalListener { message: String },
}
