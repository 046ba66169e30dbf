//! The table forms of `version` (workloads, then the release and packages) and `version --diff`
//! (package changes, migration changes, and what a downgrade must roll back first).

use super::{Color, Column, Report, Style, cell, flux_block, table_text};
use crate::model::multi::{EnvironmentResult, PerEnvironment};
use crate::model::version::{
    BackstageVersion, ClientVersion, DiffSide, EACH_PLUGIN, RunningImage, VersionDiff,
    VersionReport,
};

/// `sha256:` and the first 12 hex digits, as `docker images` shortens them.
fn short_digest(digest: &str) -> &str {
    let end = digest.find(':').map_or(0, |i| i + 1) + 12;
    digest.get(..end).unwrap_or(digest)
}

/// The tag (or whole image, in wide) of what runs, with its digest.
fn running_text(running: &[RunningImage], wide: bool) -> String {
    if running.is_empty() {
        return "-".into();
    }
    running
        .iter()
        .map(|r| {
            let image = if wide {
                r.image.clone()
            } else {
                crate::model::image::parse_image(&r.image)
                    .tag
                    .unwrap_or_else(|| r.image.clone())
            };
            let digest = match &r.digest {
                Some(d) if wide => format!("@ {d}"),
                Some(d) => format!("@ {}", short_digest(d)),
                None => "(not started)".into(),
            };
            format!(
                "{} {} {image} {digest}",
                r.pods,
                if r.pods == 1 { "pod" } else { "pods" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The workloads of one report (environment `None`) or of several, each row with its environment.
fn workloads_table(parts: &[(Option<&str>, &VersionReport)], style: &Style) -> comfy_table::Table {
    let several = parts.iter().any(|(e, _)| e.is_some());
    let mut columns = vec![
        Column::whole("WORKLOAD"),
        Column::whole("CONTAINER"),
        Column::whole("TAG"),
        Column::whole("KIND"),
        Column::wrap("RUNNING"),
    ];
    if style.wide() {
        columns.insert(2, Column::wrap("IMAGE"));
    }
    if several {
        columns.insert(0, Column::whole("ENVIRONMENT"));
    }
    let mut table = style.table_with(&columns);
    for (environment, report) in parts {
        for w in &report.workloads {
            let tag = match (&w.reference.tag, &w.reference.digest) {
                (Some(tag), _) => tag.clone(),
                (None, Some(digest)) => short_digest(digest).to_string(),
                (None, None) => "(none: latest)".into(),
            };
            let mut row = vec![
                cell(&w.workload),
                cell(&w.container),
                cell(&tag),
                cell(&w.tag_kind.label()),
                cell(&running_text(&w.running, style.wide())),
            ];
            if style.wide() {
                row.insert(2, cell(&w.image));
            }
            if several {
                row.insert(0, cell(environment.unwrap_or_default()));
            }
            table.add_row(row);
        }
    }
    table
}

/// Several environments: the workloads with an ENVIRONMENT column, each environment's release (or
/// why it could not be read), and the packages side by side, one version column per environment.
impl Report for PerEnvironment<VersionReport> {
    fn text(&self, style: &Style) -> String {
        let parts: Vec<(Option<&str>, &VersionReport)> =
            self.done().map(|(e, r)| (Some(e), r)).collect();
        let mut out = String::new();
        if parts.iter().any(|(_, r)| !r.workloads.is_empty()) {
            out.push_str(&table_text(&workloads_table(&parts, style)));
            out.push('\n');
        }
        out.push_str(&flux_block(
            parts.iter().map(|(e, r)| (*e, r.flux.as_ref())),
            style,
        ));
        let mut releases = style.table_with(&[
            Column::whole("ENVIRONMENT"),
            Column::whole("BACKSTAGE"),
            Column::wrap("FROM"),
        ]);
        for r in &self.0 {
            let environment = r.environment();
            let (release, from) = match r {
                EnvironmentResult::Failed { error, .. } => (
                    "-".to_string(),
                    format!("could not check this environment: {error}"),
                ),
                EnvironmentResult::Done { report, .. } => {
                    match (&report.backstage, &report.backstage_error) {
                        (Some(b), _) => (
                            b.release.clone().unwrap_or_else(|| "unknown".into()),
                            format!("{} in {}", release_how(b), b.source),
                        ),
                        (None, Some(e)) => ("-".to_string(), format!("packages not read: {e}")),
                        (None, None) => ("-".to_string(), "-".to_string()),
                    }
                }
            };
            releases.add_row(vec![cell(environment), cell(&release), cell(&from)]);
        }
        out.push_str(&table_text(&releases));
        let trees: Vec<(&str, &BackstageVersion)> = parts
            .iter()
            .filter_map(|(e, r)| Some(((*e).unwrap_or_default(), r.backstage.as_ref()?)))
            .collect();
        if trees.is_empty() {
            return out;
        }
        // Every package any environment has, in name order, with its version in each.
        let mut packages: std::collections::BTreeMap<&str, (Option<&str>, Vec<Option<&str>>)> =
            std::collections::BTreeMap::new();
        for (i, (_, tree)) in trees.iter().enumerate() {
            for p in &tree.packages {
                let entry = packages
                    .entry(p.package.as_str())
                    .or_insert_with(|| (p.plugin_id.as_deref(), vec![None; trees.len()]));
                entry.1[i] = Some(p.version.as_str());
            }
        }
        let mut columns = vec![Column::whole("PACKAGE"), Column::whole("PLUGIN")];
        columns.extend(trees.iter().map(|(e, _)| Column::whole(e)));
        columns.push(Column::whole("SAME"));
        let mut table = style.table_with(&columns);
        for (package, (plugin, versions)) in &packages {
            let same = versions.iter().all(|v| v.is_some() && *v == versions[0]);
            let mut row = vec![cell(package), cell(plugin.unwrap_or("-"))];
            row.extend(versions.iter().map(|v| cell(v.unwrap_or("-"))));
            row.push(if same { "yes".into() } else { "no".into() });
            table.add_row(row);
        }
        out.push('\n');
        out.push_str(&table_text(&table));
        out
    }
}

fn release_line(b: &BackstageVersion) -> String {
    format!(
        "Backstage {} ({}) in {}",
        b.release.as_deref().unwrap_or("unknown"),
        release_how(b),
        b.source
    )
}

/// How the release was found: `from /app/backstage.json`, `inferred: …`.
fn release_how(b: &BackstageVersion) -> String {
    match (b.release_from, &b.inference, &b.backstage_json) {
        (Some("backstage.json"), _, Some(path)) => format!("from {path}"),
        (Some("inferred"), Some(i), _) => {
            let mut text = format!(
                "inferred: {} of {} @backstage packages match",
                i.matched, i.compared
            );
            if i.partial {
                text.push_str(", from partial release data");
            }
            if !i.also_matching.is_empty() {
                text.push_str(&format!(", also matches {}", i.also_matching.join(", ")));
            }
            text
        }
        _ => "no backstage.json, and no package version matches a known release".into(),
    }
}

impl Report for ClientVersion {
    fn text(&self, _style: &Style) -> String {
        format!(
            "Client Version: v{}\nGit Commit:     {}\nBuild Date:     {}\nTarget:         {}\n",
            self.version, self.git_commit, self.build_date, self.target
        )
    }
}

impl Report for VersionReport {
    fn text(&self, style: &Style) -> String {
        let mut out = String::new();
        if self.namespace.is_some() {
            if self.workloads.is_empty() {
                out.push_str(&format!(
                    "No Deployments or StatefulSets found in namespace {}.\n",
                    cell(self.namespace.as_deref().unwrap_or_default())
                ));
            } else {
                let table = workloads_table(&[(None, self)], style);
                out.push_str(&table_text(&table));
            }
            out.push('\n');
            out.push_str(&flux_block([(None, self.flux.as_ref())], style));
        }
        let Some(b) = &self.backstage else {
            return out;
        };
        out.push_str(&cell(&release_line(b)));
        out.push_str("\n\n");
        let mut header = vec![
            "PACKAGE",
            "VERSION",
            "PLUGIN",
            "MIGRATIONS",
            "FIRST RELEASE",
        ];
        if style.wide() {
            header.push("ROLE");
        }
        let mut table = style.table(&header);
        for p in &b.packages {
            let mut row = vec![
                cell(&p.package),
                cell(&p.version),
                cell(p.plugin_id.as_deref().unwrap_or("-")),
                p.migrations.to_string(),
                cell(p.first_release.as_deref().unwrap_or("-")),
            ];
            if style.wide() {
                row.push(cell(p.role.as_deref().unwrap_or("-")));
            }
            table.add_row(row);
        }
        out.push_str(&table_text(&table));
        out
    }
}

fn side_line(label: &str, side: &DiffSide) -> String {
    format!(
        "{label} {}: Backstage {}{}\n",
        cell(&side.source),
        cell(side.release.as_deref().unwrap_or("unknown")),
        side.release_from
            .map(|f| format!(" ({f})"))
            .unwrap_or_default()
    )
}

impl Report for VersionDiff {
    fn text(&self, style: &Style) -> String {
        let mut out = side_line("from", &self.from);
        out.push_str(&side_line("to  ", &self.to));
        out.push('\n');
        if self.packages.is_empty() {
            out.push_str(&format!(
                "Every package is at the same version ({} packages).\n",
                self.unchanged
            ));
        } else {
            let mut table = style.table(&["PACKAGE", "FROM", "TO", "CHANGE"]);
            for p in &self.packages {
                let change = match p.change {
                    "downgraded" | "removed" => style.paint(p.change, Color::Red),
                    other => other.to_string(),
                };
                table.add_row(vec![
                    cell(&p.package),
                    cell(p.from.as_deref().unwrap_or("-")),
                    cell(p.to.as_deref().unwrap_or("-")),
                    change,
                ]);
            }
            out.push_str(&table_text(&table));
            out.push_str(&format!("({} packages unchanged)\n", self.unchanged));
        }
        out.push('\n');
        if self.migrations.is_empty() {
            out.push_str("No migration file was added or removed.\n");
            return out;
        }
        let mut table = style.table(&["PLUGIN", "TABLE", "PACKAGE", "ADDED", "REMOVED"]);
        for m in &self.migrations {
            table.add_row(vec![
                cell(m.plugin.as_deref().unwrap_or("(every plugin)")),
                cell(&m.table),
                cell(&m.package),
                m.added.len().to_string(),
                if m.removed.is_empty() || m.gone_in_to {
                    m.removed.len().to_string()
                } else {
                    style.paint(&m.removed.len().to_string(), Color::Red)
                },
            ]);
        }
        out.push_str(&table_text(&table));
        out.push('\n');
        for m in &self.migrations {
            let plugin = m.plugin.as_deref().unwrap_or("(every plugin)");
            if !m.added.is_empty() {
                out.push_str(&format!(
                    "{} {} {}: {}\n",
                    style.paint("added  ", Color::Yellow),
                    cell(plugin),
                    cell(&m.table),
                    cell(&m.added.join(", "))
                ));
            }
            if !m.removed.is_empty() && m.gone_in_to {
                out.push_str(&format!(
                    "gone    {} {}: the package is not in {}; its database is left as it is, nothing to roll back ({})\n",
                    cell(plugin),
                    cell(&m.table),
                    cell(&self.to.source),
                    cell(&m.removed.join(", "))
                ));
            } else if !m.removed.is_empty() {
                out.push_str(&format!(
                    "{} {} {}: {}\n",
                    style.paint("removed", Color::Red),
                    cell(plugin),
                    cell(&m.table),
                    cell(&m.removed.join(", "))
                ));
            }
        }
        if self.downgrade {
            out.push('\n');
            out.push_str(&style.paint(
                "downgrade: roll back first, with the current (newer) code, before deploying the older version:",
                Color::Red,
            ));
            out.push('\n');
            for command in &self.commands {
                out.push_str(&format!("  {}\n", cell(command)));
            }
            if self
                .migrations
                .iter()
                .any(|m| m.plugin.is_none() && !m.removed.is_empty())
            {
                out.push_str(&format!(
                    "  ({EACH_PLUGIN}: a shared service's table is in every plugin database that uses it; `db plan` names them)\n"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_shorten_like_docker() {
        assert_eq!(
            short_digest("sha256:994f5de7c6a882145dec06fdc649e992d4ad0f1caf6acf5413ccfe4e2a955186"),
            "sha256:994f5de7c6a8"
        );
        assert_eq!(short_digest("sha256:ab"), "sha256:ab");
    }
}
