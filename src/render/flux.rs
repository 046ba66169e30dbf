//! The "managed by" lines `health` and `version` print under their workloads table when Flux manages
//! a Deployment of the namespace, and the notes (on stderr) for Flux objects that could not be read.

use super::{Color, Style, cell, messages::note};
use crate::model::flux::{Condition, FluxManager, FluxReport, ImagePolicyMatch, ReadState};

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn ready_text(ready: Option<&Condition>) -> String {
    match ready {
        None => "no Ready condition yet".into(),
        Some(c) if c.status == "True" => "Ready True".into(),
        Some(c) => {
            let why: Vec<&str> = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            if why.is_empty() {
                format!("Ready {}", c.status)
            } else {
                format!("Ready {}: {}", c.status, why.join(": "))
            }
        }
    }
}

/// `Managed by Flux HelmRelease flux-system/backstage (suspended: no, revision 1.4.2, Ready True): deployment/backstage`
pub fn manager_line(m: &FluxManager, style: &Style) -> String {
    let details = match m.read {
        ReadState::Found => {
            let suspended = m.suspended.unwrap_or(false);
            let suspended = format!("suspended: {}", yes_no(suspended));
            let suspended = if m.suspended == Some(true) {
                style.paint(&suspended, Color::Yellow)
            } else {
                suspended
            };
            let mut parts = vec![
                suspended,
                match &m.revision {
                    Some(r) => format!("revision {}", cell(r)),
                    None => "no revision applied yet".into(),
                },
                cell(&ready_text(m.ready.as_ref())),
            ];
            if let Some(parent) = &m.applied_by {
                parts.push(format!(
                    "applied by {} {}/{}",
                    parent.kind,
                    cell(&parent.namespace),
                    cell(&parent.name)
                ));
            }
            parts.join(", ")
        }
        ReadState::NotFound => "not found".into(),
        ReadState::NotServed => format!("the cluster serves no {}", m.kind.resource()),
        ReadState::Forbidden => "cannot read it: forbidden".into(),
        ReadState::Failed => "cannot read it".into(),
    };
    format!(
        "Managed by Flux {} {}/{} ({details}): {}",
        m.kind,
        cell(&m.namespace),
        cell(&m.name),
        cell(&m.workloads.join(", "))
    )
}

/// `Image automation: ImagePolicy flux-system/backstage (…) follows deployment/backstage container backstage; …`
pub fn policy_line(p: &ImagePolicyMatch, style: &Style) -> String {
    let mut details = vec![format!(
        "ImageRepository {}, {}",
        cell(&p.image_repository),
        cell(&p.image)
    )];
    if let Some(latest) = &p.latest_image {
        details.push(format!("latest {}", cell(latest)));
    }
    if p.suspended {
        details.push(style.paint("suspended", Color::Yellow));
    }
    let containers = p
        .containers
        .iter()
        .map(|c| format!("{} container {}", cell(&c.workload), cell(&c.container)))
        .collect::<Vec<_>>()
        .join(", ");
    let automations = if p.automations.is_empty() {
        "no ImageUpdateAutomation takes it".to_string()
    } else {
        let each = p
            .automations
            .iter()
            .map(|a| {
                let suspended = format!("suspended: {}", yes_no(a.suspended));
                let suspended = if a.suspended {
                    style.paint(&suspended, Color::Yellow)
                } else {
                    suspended
                };
                format!(
                    "ImageUpdateAutomation {}/{} ({suspended})",
                    cell(&a.namespace),
                    cell(&a.name)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("updated by {each}")
    };
    format!(
        "Image automation: ImagePolicy {}/{} ({}) follows {containers}; {automations}",
        cell(&p.namespace),
        cell(&p.name),
        details.join(", ")
    )
}

/// Every line of one report, each prefixed with `ENVIRONMENT: ` when several are shown.
pub fn flux_lines(environment: Option<&str>, report: &FluxReport, style: &Style) -> Vec<String> {
    let prefix = environment
        .map(|e| format!("{}: ", cell(e)))
        .unwrap_or_default();
    report
        .managers
        .iter()
        .map(|m| manager_line(m, style))
        .chain(report.image_policies.iter().map(|p| policy_line(p, style)))
        .map(|line| format!("{prefix}{line}"))
        .collect()
}

/// The block under a workloads table: the lines of every report that has any, then a blank line;
/// nothing at all when Flux manages nothing.
pub fn flux_block<'a>(
    parts: impl IntoIterator<Item = (Option<&'a str>, Option<&'a FluxReport>)>,
    style: &Style,
) -> String {
    let lines: Vec<String> = parts
        .into_iter()
        .filter_map(|(environment, report)| Some(flux_lines(environment, report?, style)))
        .flatten()
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!("{}\n\n", lines.join("\n"))
    }
}

/// What could not be read about Flux, as `note:` lines on stderr (never an error).
pub fn flux_notes(environment: Option<&str>, report: Option<&FluxReport>) {
    for line in report.map(|r| r.notes.as_slice()).unwrap_or_default() {
        match environment {
            Some(e) => note(&format!("environment {e}: flux: {line}")),
            None => note(&format!("flux: {line}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flux::{AutomationView, ContainerRef, FluxKind, FluxObjectRef};
    use crate::options::OutputFormat;

    fn style() -> Style {
        Style {
            format: OutputFormat::Table,
            color: false,
            width: None,
        }
    }

    fn manager() -> FluxManager {
        FluxManager {
            kind: FluxKind::HelmRelease,
            namespace: "flux-system".into(),
            name: "backstage".into(),
            workloads: vec!["deployment/backstage".into()],
            read: ReadState::Found,
            api_version: Some("helm.toolkit.fluxcd.io/v2".into()),
            suspended: Some(false),
            revision: Some("1.4.2".into()),
            last_attempted_revision: Some("1.4.2".into()),
            ready: Some(Condition {
                status: "True".into(),
                reason: Some("UpgradeSucceeded".into()),
                message: Some("Helm upgrade succeeded".into()),
            }),
            applied_by: None,
        }
    }

    #[test]
    fn manager_lines() {
        assert_eq!(
            manager_line(&manager(), &style()),
            "Managed by Flux HelmRelease flux-system/backstage (suspended: no, revision 1.4.2, Ready True): deployment/backstage"
        );
        let suspended = FluxManager {
            kind: FluxKind::Kustomization,
            suspended: Some(true),
            revision: Some("main@sha1:1a2b".into()),
            ready: Some(Condition {
                status: "False".into(),
                reason: Some("ReconciliationFailed".into()),
                message: Some("dry-run\u{1b}[2J failed".into()),
            }),
            applied_by: Some(FluxObjectRef::new(
                FluxKind::Kustomization,
                "flux-system",
                "apps",
            )),
            workloads: vec![
                "deployment/backstage".into(),
                "deployment/backstage-worker".into(),
            ],
            ..manager()
        };
        assert_eq!(
            manager_line(&suspended, &style()),
            "Managed by Flux Kustomization flux-system/backstage (suspended: yes, revision main@sha1:1a2b, Ready False: ReconciliationFailed: dry-run\\u{1b}[2J failed, applied by Kustomization flux-system/apps): deployment/backstage, deployment/backstage-worker"
        );
        let forbidden = FluxManager {
            read: ReadState::Forbidden,
            ..manager()
        };
        assert_eq!(
            manager_line(&forbidden, &style()),
            "Managed by Flux HelmRelease flux-system/backstage (cannot read it: forbidden): deployment/backstage"
        );
    }

    #[test]
    fn policy_lines_and_the_environment_prefix() {
        let report = FluxReport {
            managers: vec![manager()],
            image_policies: vec![ImagePolicyMatch {
                namespace: "flux-system".into(),
                name: "backstage".into(),
                image_repository: "flux-system/backstage".into(),
                image: "acr.example.io/portal/backstage".into(),
                latest_image: Some("acr.example.io/portal/backstage:prod-6a7b8c9".into()),
                suspended: false,
                containers: vec![ContainerRef {
                    workload: "deployment/backstage".into(),
                    container: "backstage".into(),
                }],
                automations: vec![AutomationView {
                    namespace: "flux-system".into(),
                    name: "portal".into(),
                    suspended: true,
                }],
            }],
            notes: vec![],
        };
        assert_eq!(
            flux_lines(Some("ptl"), &report, &style()),
            [
                "ptl: Managed by Flux HelmRelease flux-system/backstage (suspended: no, revision 1.4.2, Ready True): deployment/backstage",
                "ptl: Image automation: ImagePolicy flux-system/backstage (ImageRepository flux-system/backstage, acr.example.io/portal/backstage, latest acr.example.io/portal/backstage:prod-6a7b8c9) follows deployment/backstage container backstage; updated by ImageUpdateAutomation flux-system/portal (suspended: yes)",
            ]
        );
        assert_eq!(flux_block([(None, None)], &style()), "");
    }
}
