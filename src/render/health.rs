//! The table form of `health`.

use super::{Color, Column, Report, Style, cell, table_text};
use crate::model::health::{HealthReport, Severity};
use crate::model::time::age;

impl Report for HealthReport {
    fn text(&self, style: &Style) -> String {
        let mut out = String::new();
        if !self.workloads.is_empty() {
            let mut columns = vec![
                Column::whole("WORKLOAD"),
                Column::whole("DESIRED"),
                Column::whole("UPDATED"),
                Column::whole("READY"),
                Column::whole("AVAILABLE"),
                Column::whole("ROLLOUT"),
                Column::wrap("IMAGE"),
            ];
            if style.wide() {
                columns.push(Column::wrap("STATUS"));
            }
            let mut table = style.table_with(&columns);
            for w in &self.workloads {
                let rollout = if w.rollout_complete {
                    style.paint("complete", Color::Green)
                } else {
                    style.paint("in progress", Color::Yellow)
                };
                let mut row = vec![
                    cell(&w.object()),
                    w.desired.to_string(),
                    w.updated.to_string(),
                    w.ready.to_string(),
                    w.available.to_string(),
                    rollout,
                    cell(if style.wide() { &w.image } else { &w.image_tag }),
                ];
                if style.wide() {
                    row.push(cell(w.rollout_message.as_deref().unwrap_or("")));
                }
                table.add_row(row);
            }
            out.push_str(&table_text(&table));
            out.push('\n');
        }
        if self.pods.is_empty() {
            out.push_str(&format!("No pods found in namespace {}.\n", self.namespace));
        } else {
            let mut columns = vec![
                Column::whole("POD"),
                Column::whole("READY"),
                Column::whole("STATUS"),
                Column::whole("RESTARTS"),
                Column::whole("AGE"),
                Column::wrap("IMAGE"),
            ];
            if style.wide() {
                columns.extend([Column::whole("NODE"), Column::whole("IP")]);
            }
            let mut table = style.table_with(&columns);
            for p in &self.pods {
                let status = match p.status.as_str() {
                    "Running" | "Completed" | "Succeeded" if p.is_ready() => {
                        style.paint(&p.status, Color::Green)
                    }
                    "Running" | "Completed" | "Succeeded" | "Pending" | "ContainerCreating"
                    | "Terminating" => cell(&p.status),
                    other => style.paint(&cell(other), Color::Red),
                };
                let restarts = match p.last_restart_at {
                    Some(t) if p.restarts > 0 => {
                        format!("{} ({} ago)", p.restarts, age(t, self.now))
                    }
                    _ => p.restarts.to_string(),
                };
                let mut row = vec![
                    cell(&p.name),
                    p.ready.clone(),
                    status,
                    restarts,
                    p.created_at
                        .map(|t| age(t, self.now))
                        .unwrap_or_else(|| "<unknown>".into()),
                    cell(if style.wide() { &p.image } else { &p.image_tag }),
                ];
                if style.wide() {
                    row.push(cell(p.node.as_deref().unwrap_or("<none>")));
                    row.push(cell(p.ip.as_deref().unwrap_or("<none>")));
                }
                table.add_row(row);
            }
            out.push_str(&table_text(&table));
        }
        out.push('\n');
        if self.findings.is_empty() {
            let verdict = if self.pods.is_empty() && self.workloads.is_empty() {
                "Nothing to check.".to_string()
            } else {
                style.paint(
                    "Healthy: every rollout is complete and every pod is ready.",
                    Color::Green,
                )
            };
            out.push_str(&verdict);
            out.push('\n');
            return out;
        }
        out.push_str(&style.paint("FINDINGS", Color::Bold));
        out.push('\n');
        let width = self
            .findings
            .iter()
            .map(|f| f.severity.as_str().len())
            .max()
            .unwrap_or(0);
        for f in &self.findings {
            let label = format!("{:<width$}", f.severity.as_str());
            let label = match f.severity {
                Severity::Error => style.paint(&label, Color::Red),
                Severity::Warning => style.paint(&label, Color::Yellow),
                Severity::Info => label,
            };
            out.push_str(&format!(
                "{label}  {}  {}\n",
                cell(&f.object),
                cell(&f.message)
            ));
            if let Some(hint) = &f.hint {
                out.push_str(&format!(
                    "{:width$}  {}\n",
                    "",
                    style.paint(&format!("hint: {}", cell(hint)), Color::Dim)
                ));
            }
        }
        out
    }
}
