//! `env list` / `env show`: the config file's environments. Password settings are names of secrets or
//! variables, never passwords, so they can be printed.

use serde::Serialize;

use super::Outcome;
use crate::render::{self, Report, Style, cell};
use crate::settings::{Environment, Settings, SettingsError};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvironmentList {
    kind: &'static str,
    config_file: Option<String>,
    default_environment: Option<String>,
    environments: Vec<NamedEnvironment>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NamedEnvironment {
    name: String,
    default: bool,
    #[serde(flatten)]
    environment: Environment,
}

impl Report for EnvironmentList {
    fn text(&self, style: &Style) -> String {
        if self.environments.is_empty() {
            return match &self.config_file {
                Some(path) => format!("No environments in {path}.\n"),
                None => "No config file found (see --config); no environments.\n".to_string(),
            };
        }
        let mut table = style.table(&[
            "NAME",
            "DEFAULT",
            "CONTEXT",
            "NAMESPACE",
            "URL",
            "DATABASE HOST",
        ]);
        for e in &self.environments {
            table.add_row(vec![
                cell(&e.name),
                if e.default { "*".into() } else { String::new() },
                cell(
                    e.environment
                        .context
                        .as_deref()
                        .unwrap_or("(current-context)"),
                ),
                cell(e.environment.namespace.as_deref().unwrap_or("")),
                cell(e.environment.url.as_deref().unwrap_or("")),
                cell(
                    e.environment
                        .database
                        .as_ref()
                        .and_then(|d| d.host.as_deref())
                        .unwrap_or(""),
                ),
            ]);
        }
        render::table_text(&table)
    }
}

impl Report for NamedEnvironment {
    fn text(&self, _style: &Style) -> String {
        render::yaml(self)
    }
}

fn named(settings: &Settings, name: &str, environment: &Environment) -> NamedEnvironment {
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
