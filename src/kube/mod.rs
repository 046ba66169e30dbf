//! The Kubernetes adapter: reads kubeconfigs as kubectl does, and hides kube-rs behind the few calls the
//! commands need (lists with every page read, watches, previous logs). Errors name the step, the verb,
//! the resource and the namespace.

mod client;
mod config;
mod error;

pub use client::{Cluster, ExecOutput, WatchChange};
pub use config::{ResolvedContext, load_kubeconfig, resolve_context};
pub use error::KubeError;
