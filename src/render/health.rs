//! The table form of `health`.

use super::{Color, Column, Report, Style, cell, flux_block, table_text};
use crate::model::health::{HealthReport, Severity};
use crate::model::multi::PerEnvironment;
use crate::model::time::age;

impl Report for HealthReport {
    fn text(&self, style: &Style) -> String {
        health_text(&[(None, self)], &[], style)
    }
}

/// Several environments: the same tables with an ENVIRONMENT column first, one findings list, and
/// the environments that could not be checked as errors in it.
impl Report for PerEnvironment<HealthReport> {
    fn text(&self, style: &Style) -> String {
        let parts: Vec<(Option<&str>, &HealthReport)> =
            self.done().map(|(e, r)| (Some(e), r)).collect();
        let failed: Vec<(&str, &str)> = self.failed().collect();
        health_text(&parts, &failed, style)
    }
}

/// A line of the findings: environment, severity, object, message, hint.
type FindingLine<'a> = (Option<&'a str>, Severity, String, String, Option<String>);

/// The tables of one report (`environment` `None`) or of several, each row with its environment.
fn health_text(
    parts: &[(Option<&str>, &HealthReport)],
    failed: &[(&str, &str)],
    style: &Style,
) -> String {
    let several = parts.iter().any(|(e, _)| e.is_some()) || !failed.is_empty();
    let with_environment = |environment: Option<&str>, mut row: Vec<String>| {
        if several {
            row.insert(0, cell(environment.unwrap_or_default()));
        }
        row
    };
    let mut out = String::new();
    if parts.iter().any(|(_, r)| !r.workloads.is_empty()) {
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
        if several {
            columns.insert(0, Column::whole("ENVIRONMENT"));
        }
        let mut table = style.table_with(&columns);
        for (environment, report) in parts {
            for w in &report.workloads {
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
                table.add_row(with_environment(*environment, row));
            }
        }
        out.push_str(&table_text(&table));
        out.push('\n');
    }
    out.push_str(&flux_block(
        parts.iter().map(|(e, r)| (*e, r.flux.as_ref())),
        style,
    ));
    if parts.iter().all(|(_, r)| r.pods.is_empty()) {
        match parts {
            [(None, report)] => out.push_str(&format!(
                "No pods found in namespace {}.\n",
                report.namespace
            )),
            _ => out.push_str("No pods found.\n"),
        }
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
        if several {
            columns.insert(0, Column::whole("ENVIRONMENT"));
        }
        let mut table = style.table_with(&columns);
        for (environment, report) in parts {
            for p in &report.pods {
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
                        format!("{} ({} ago)", p.restarts, age(t, report.now))
                    }
                    _ => p.restarts.to_string(),
                };
                let mut row = vec![
                    cell(&p.name),
                    p.ready.clone(),
                    status,
                    restarts,
                    p.created_at
                        .map(|t| age(t, report.now))
                        .unwrap_or_else(|| "<unknown>".into()),
                    cell(if style.wide() { &p.image } else { &p.image_tag }),
                ];
                if style.wide() {
                    row.push(cell(p.node.as_deref().unwrap_or("<none>")));
                    row.push(cell(p.ip.as_deref().unwrap_or("<none>")));
                }
                table.add_row(with_environment(*environment, row));
            }
        }
        out.push_str(&table_text(&table));
    }
    out.push('\n');

    // Environments that could not be checked come first (errors), then every finding by severity,
    // environments in the order asked within a severity.
    let not_checked: Vec<FindingLine> = failed
        .iter()
        .map(|(environment, error)| {
            (
                Some(*environment),
                Severity::Error,
                "-".to_string(),
                format!("could not check this environment: {error}"),
                None,
            )
        })
        .collect();
    let mut findings: Vec<FindingLine> = parts
        .iter()
        .flat_map(|(environment, report)| {
            report.findings.iter().map(move |f| {
                (
                    *environment,
                    f.severity,
                    f.object.clone(),
                    f.message.clone(),
                    f.hint.clone(),
                )
            })
        })
        .collect();
    findings.sort_by_key(|f| f.1);
    let findings: Vec<_> = not_checked.into_iter().chain(findings).collect();
    if findings.is_empty() {
        let verdict = if parts
            .iter()
            .all(|(_, r)| r.pods.is_empty() && r.workloads.is_empty())
        {
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
    let width = findings
        .iter()
        .map(|f| f.1.as_str().len())
        .max()
        .unwrap_or(0);
    let environment_width = findings
        .iter()
        .map(|f| cell(f.0.unwrap_or_default()).chars().count())
        .max()
        .unwrap_or(0);
    for (environment, severity, object, message, hint) in &findings {
        let label = format!("{:<width$}", severity.as_str());
        let label = match severity {
            Severity::Error => style.paint(&label, Color::Red),
            Severity::Warning => style.paint(&label, Color::Yellow),
            Severity::Info => label,
        };
        let environment = if several {
            format!(
                "{:<environment_width$}  ",
                cell(environment.unwrap_or_default())
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{label}  {environment}{}  {}\n",
            cell(object),
            cell(message)
        ));
        if let Some(hint) = hint {
            let indent = if several {
                width + 2 + environment_width
            } else {
                width
            };
            out.push_str(&format!(
                "{:indent$}  {}\n",
                "",
                style.paint(&format!("hint: {}", cell(hint)), Color::Dim)
            ));
        }
    }
    out
}
