//! The table forms of `version` (workloads, then the release and packages) and `version --diff`
//! (package changes, migration changes, and what a downgrade must roll back first).

use super::{Color, Column, Report, Style, cell, table_text};
use crate::model::version::{
    BackstageVersion, DiffSide, EACH_PLUGIN, RunningImage, VersionDiff, VersionReport,
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

fn release_line(b: &BackstageVersion) -> String {
    let how = match (b.release_from, &b.inference, &b.backstage_json) {
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
    };
    format!(
        "Backstage {} ({}) in {}",
        b.release.as_deref().unwrap_or("unknown"),
        how,
        b.source
    )
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
                let mut table = style.table_with(&columns);
                for w in &self.workloads {
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
                    table.add_row(row);
                }
                out.push_str(&table_text(&table));
            }
            out.push('\n');
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
