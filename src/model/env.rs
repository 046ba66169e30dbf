//! The reports of `env list` and `env show`, as data; `render::env` prints them.
//!
//! The environment itself is the config file's type (`settings::Environment`), which this pure module
//! does not import (settings imports the model): the reports are generic over it.

use serde::Serialize;

/// `env list`: the config file's environments.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentList<E> {
    pub kind: &'static str,
    pub config_file: Option<String>,
    pub default_environment: Option<String>,
    pub environments: Vec<NamedEnvironment<E>>,
}

/// `env show NAME`, and one entry of `env list`: an environment with its name.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedEnvironment<E> {
    pub name: String,
    pub default: bool,
    #[serde(flatten)]
    pub environment: E,
}
