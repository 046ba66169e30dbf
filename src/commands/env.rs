//! `env list` / `env show`: the config file's environments. Password settings are names of secrets or
//! variables, never passwords, so they can be printed.

use super::Outcome;
use crate::model::env::{EnvironmentList, NamedEnvironment};
use crate::render::{self, Style};
use crate::settings::{Environment, Settings, SettingsError};

fn named(
    settings: &Settings,
    name: &str,
    environment: &Environment,
) -> NamedEnvironment<Environment> {
    NamedEnvironment {
        name: name.to_string(),
        default: settings.config.default_environment.as_deref() == Some(name),
        environment: environment.clone(),
    }
}

pub fn list(settings: &Settings, style: &Style) -> Outcome {
    let report = EnvironmentList {
        kind: "EnvironmentList",
        config_file: settings
            .config_path
            .as_ref()
            .map(|p| p.display().to_string()),
        default_environment: settings.config.default_environment.clone(),
        environments: settings
            .config
            .environments
            .iter()
            .map(|(name, e)| named(settings, name, e))
            .collect(),
    };
    render::emit(&render::render(&report, style));
    Outcome::Ok
}

pub fn show(settings: &Settings, name: &str, style: &Style) -> Result<Outcome, SettingsError> {
    let environment = settings.config.environments.get(name).ok_or_else(|| {
        let known: Vec<_> = settings.config.environments.keys().cloned().collect();
        SettingsError::UnknownEnvironment {
            name: name.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        }
    })?;
    render::emit(&render::render(&named(settings, name, environment), style));
    Ok(Outcome::Ok)
}
