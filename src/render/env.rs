//! The table form of `env list`, and `env show` (YAML in every text format).

use super::{Report, Style, cell, table_text, yaml};
use crate::model::env::{EnvironmentList, NamedEnvironment};
use crate::settings::Environment;

impl Report for EnvironmentList<Environment> {
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
        table_text(&table)
    }
}

impl Report for NamedEnvironment<Environment> {
    fn text(&self, _style: &Style) -> String {
        yaml(self)
    }
}
