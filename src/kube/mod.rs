//! The Kubernetes adapter: reads kubeconfigs as kubectl does, and hides kube-rs behind the few calls the
//! commands need (lists with every page read, watches, previous logs, exec, port-forwards to the
//! Backstage Service), and Flux's objects (read, suspend, resume). Errors name the step, the verb, the resource and the namespace.

mod client;
mod config;
mod deployment;
mod error;
pub mod flux;
mod port_forward;

pub use client::{Cluster, ExecOutput, LogBounds, WatchChange};
pub use config::{ResolvedContext, load_kubeconfig, resolve_context};
pub use deployment::{BackstageDeployment, CHANGE_CAUSE, choose_deployment};
pub use error::KubeError;
pub use port_forward::{
    BACKSTAGE_PORT, ForwardTarget, LocalForward, choose_service, resolve_target, service_port,
};
