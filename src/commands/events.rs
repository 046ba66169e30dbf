//! `events`: the namespace's events ordered by when they were last seen, filtered, optionally followed.

use std::collections::{BTreeSet, HashSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;

use super::Outcome;
use crate::kube::{Cluster, KubeError, WatchChange};
use crate::model::events::{EventFilter, EventRow, EventsReport, sort_by_last_seen};
use crate::options::OutputFormat;
use crate::render::{self, EventRowPrinter, Style, event_rows_table};
use crate::settings::commands::{EventsSettings, ObjectRef};

pub async fn run(
    args: &EventsSettings,
    cluster: &Cluster,
    style: &Style,
) -> Result<Outcome, KubeError> {
    let (report, filter, version, seen) = list(args, cluster).await?;
    if !args.watch {
        render::emit(&render::render(&report, style));
        return Ok(Outcome::Ok);
    }
    follow(cluster, &report, style, &filter, version, seen).await
}

/// The report `events -o json` prints, without watching (`report` puts it in the bundle).
pub async fn gather(args: &EventsSettings, cluster: &Cluster) -> Result<EventsReport, KubeError> {
    Ok(list(args, cluster).await?.0)
}

/// Every event of the namespace that passes the filters, ordered, with what a watch needs to go on.
async fn list(
    args: &EventsSettings,
    cluster: &Cluster,
) -> Result<(EventsReport, EventFilter, String, Seen), KubeError> {
    let now = Timestamp::now();
    let filter = EventFilter {
        types: args
            .types
            .iter()
            .map(|t| t.as_str().to_lowercase())
            .collect(),
        objects: match &args.for_object {
            Some(object) => Some(related_objects(cluster, object).await?),
            None => None,
        },
        since: args
            .since
            .map(|d| now - SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)),
    };

    let mut rows = Vec::new();
    let mut seen = Seen::default();
    let version = cluster
        .list_pages::<Event>("events", None, |page| {
            seen.note_all(&page);
            rows.extend(
                page.iter()
                    .map(EventRow::from_event)
                    .filter(|r| filter.matches(r)),
            );
        })
        .await?;
    sort_by_last_seen(&mut rows);
    let report = EventsReport {
        kind: "EventList",
        context: cluster.context.clone(),
        namespace: cluster.namespace.clone(),
        events: rows,
        now,
    };
    Ok((report, filter, version, seen))
}

/// The versions of events already shown, so that a list taken again after the watch expired (410
/// Gone) shows only what is new or changed since.
#[derive(Default)]
struct Seen(HashSet<(String, String)>);

impl Seen {
    fn key(event: &Event) -> (String, String) {
        (
            event
                .metadata
                .uid
                .clone()
                .unwrap_or_else(|| event.name_any()),
            event.metadata.resource_version.clone().unwrap_or_default(),
        )
    }

    fn note_all(&mut self, events: &[Event]) {
        self.0.extend(events.iter().map(Seen::key));
    }

    /// Notes the event; true when this version of it was not seen before.
    fn is_new(&mut self, event: &Event) -> bool {
        self.0.insert(Seen::key(event))
    }
}

/// `--watch`: what is there, then every new or updated event as one more row (or JSON line).
async fn follow(
    cluster: &Cluster,
    report: &EventsReport,
    style: &Style,
    filter: &EventFilter,
    version: String,
    mut seen: Seen,
) -> Result<Outcome, KubeError> {
    let structured = matches!(style.format, OutputFormat::Json | OutputFormat::Yaml);
    let printer = EventRowPrinter::new(*style, &report.events, report.now);
    let first = if structured {
        report
            .events
            .iter()
            .map(|r| line(r, style))
            .collect::<String>()
    } else {
        let mut text = event_rows_table(&report.events, style, report.now);
        if report.events.is_empty() {
            // Still print the header so the following rows have one.
            text = event_rows_table(&[], style, report.now);
        }
        text
    };
    if !render::emit(&first) {
        return Ok(Outcome::Ok);
    }
    let mut changes = cluster.watch::<Event>("events", None, version);
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            _ = &mut interrupt => return Ok(Outcome::Ok),
        };
        let rows: Vec<EventRow> = match change {
            None => return Ok(Outcome::Ok),
            Some(Err(e)) => return Err(e),
            Some(Ok(WatchChange::Applied(event))) if seen.is_new(&event) => {
                vec![EventRow::from_event(&event)]
            }
            Some(Ok(WatchChange::Applied(_) | WatchChange::Deleted(_))) => continue,
            Some(Ok(WatchChange::Relisted(events))) => {
                let mut rows: Vec<_> = events
                    .iter()
                    .filter(|e| seen.is_new(e))
                    .map(EventRow::from_event)
                    .collect();
                sort_by_last_seen(&mut rows);
                rows
            }
        };
        let now = Timestamp::now();
        let text: String = rows
            .iter()
            .filter(|r| filter.matches(r))
            .map(|r| {
                if structured {
                    line(r, style)
                } else {
                    printer.line(r, now)
                }
            })
            .collect();
        if !text.is_empty() && !render::emit(&text) {
            return Ok(Outcome::Ok);
        }
    }
}

fn line(row: &EventRow, style: &Style) -> String {
    match style.format {
        OutputFormat::Yaml => format!("---\n{}", render::yaml(row)),
        _ => format!("{}\n", serde_json::to_string(row).expect("rows serialize")),
    }
}

/// The (kind, name) pairs `--for KIND/NAME` covers: a Deployment takes its ReplicaSets and their pods;
/// a StatefulSet or ReplicaSet its pods.
async fn related_objects(
    cluster: &Cluster,
    object: &ObjectRef,
) -> Result<BTreeSet<(String, String)>, KubeError> {
    let (kind, name) = (object.kind, object.name.clone());
    let mut objects = BTreeSet::from([(kind.to_string(), name.clone())]);
    let owned_by = |owner_kind: &str,
                    owner_name: &str,
                    refs: Option<
        &Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    >| {
        refs.is_some_and(|refs| {
            refs.iter()
                .any(|r| r.kind == owner_kind && r.name == owner_name)
        })
    };
    let mut pod_owners: Vec<(&str, String)> = Vec::new();
    match kind {
        "deployment" => {
            let (replicasets, _) = cluster.list_all::<ReplicaSet>("replicasets", None).await?;
            for rs in replicasets
                .iter()
                .filter(|rs| owned_by("Deployment", &name, rs.metadata.owner_references.as_ref()))
            {
                objects.insert(("replicaset".into(), rs.name_any()));
                pod_owners.push(("ReplicaSet", rs.name_any()));
            }
        }
        "replicaset" => pod_owners.push(("ReplicaSet", name.clone())),
        "statefulset" => pod_owners.push(("StatefulSet", name.clone())),
        _ => {}
    }
    if !pod_owners.is_empty() {
        let (pods, _) = cluster.list_all::<Pod>("pods", None).await?;
        for pod in &pods {
            if pod_owners
                .iter()
                .any(|(k, n)| owned_by(k, n, pod.metadata.owner_references.as_ref()))
            {
                objects.insert(("pod".into(), pod.name_any()));
            }
        }
    }
    Ok(objects)
}
