//! Flux's objects through kube's dynamic API: HelmReleases, Kustomizations, ImagePolicies,
//! ImageRepositories and ImageUpdateAutomations are listed by group, version and kind (no discovery
//! round trip), trying each API version Flux has served, newest first. A cluster without Flux answers
//! 404 for every version: that is "not served", never an error; a 403 or any other failure becomes a
//! note in the report, never a failure of the command. Also the two writes a guided upgrade needs:
//! `spec.suspend` of a Flux object ([`set_suspended`]) and the annotation on the Deployment that
//! records what was suspended ([`annotate_suspended_flux`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use super::{Cluster, KubeError};
use crate::model::flux::{
    FluxKind, FluxObjectRef, FluxReads, FluxReport, Read, SUSPENDED_ANNOTATION, flux_report,
    image_namespaces, managers, suspended_annotation_value,
};

/// Items per page when listing Flux objects.
const PAGE_SIZE: u32 = 500;
/// Flux's own annotation asking a controller to reconcile now (what `flux resume` sets).
const REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

fn api_resource(kind: FluxKind, version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group(), version, kind.as_str()),
        kind.plural(),
    )
}

fn dynamic_api(
    cluster: &Cluster,
    kind: FluxKind,
    version: &str,
    namespace: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        cluster.client().clone(),
        namespace,
        &api_resource(kind, version),
    )
}

fn list_action(kind: FluxKind, namespace: &str) -> String {
    format!("list {} in namespace {namespace:?}", kind.resource())
}

/// Every object of a kind in a namespace, as JSON with its `apiVersion`, from the newest API version
/// the cluster serves. 404 on every version: not served.
async fn list_kind(cluster: &Cluster, kind: FluxKind, namespace: &str) -> Read<Vec<Value>> {
    for version in kind.versions() {
        let api = dynamic_api(cluster, kind, version, namespace);
        let mut params = ListParams::default().limit(PAGE_SIZE);
        let mut items = Vec::new();
        let outcome = loop {
            match cluster
                .call(|| list_action(kind, namespace), api.list(&params))
                .await
            {
                Ok(list) => {
                    items.extend(list.items);
                    match list.metadata.continue_.filter(|c| !c.is_empty()) {
                        Some(token) => params = params.continue_token(&token),
                        None => break Ok(()),
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match outcome {
            Ok(()) => {
                let api_version = format!("{}/{version}", kind.group());
                let items = items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .map(|mut v| {
                        // Items of a list may leave out their type; say which version was read.
                        if v.get("apiVersion")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            v["apiVersion"] = json!(api_version);
                        }
                        if v.get("kind")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            v["kind"] = json!(kind.as_str());
                        }
                        v
                    })
                    .collect();
                return Read::Found(items);
            }
            Err(KubeError::Api { code: 404, .. }) => continue,
            Err(KubeError::Forbidden { .. }) => return Read::Forbidden,
            // The note names the verb, resource and namespace already; keep only the cause.
            Err(KubeError::Api { code, message, .. }) => {
                return Read::Failed(format!("{message} ({code})"));
            }
            Err(KubeError::Timeout { after, .. }) => {
                return Read::Failed(format!("timed out after {after:?}"));
            }
            Err(e) => return Read::Failed(e.to_string()),
        }
    }
    Read::NotServed
}

/// The line a report notes for a list that could not be read; nothing for "not served".
fn note<T>(read: &Read<T>, kind: FluxKind, namespace: &str) -> Option<String> {
    let what = format!("cannot list {} in namespace {namespace}", kind.resource());
    match read {
        Read::Forbidden => Some(format!("{what}: forbidden")),
        Read::Failed(message) => Some(format!("{what}: {message}")),
        Read::Found(_) | Read::NotFound | Read::NotServed => None,
    }
}

/// Lists of one kind in several namespaces, at once, with the notes of those that failed.
async fn list_each(
    cluster: &Cluster,
    kind: FluxKind,
    namespaces: &BTreeSet<String>,
    notes: &mut Vec<String>,
) -> Vec<Value> {
    let reads =
        futures::future::join_all(namespaces.iter().map(|namespace| async move {
            (namespace, list_kind(cluster, kind, namespace).await)
        }))
        .await;
    let mut out = Vec::new();
    for (namespace, read) in reads {
        notes.extend(note(&read, kind, namespace));
        if let Read::Found(items) = read {
            out.extend(items);
        }
    }
    out
}

/// Who manages the namespace's Deployments and which image automation follows their images, read
/// from the cluster. `None` when no Deployment carries Flux labels (then nothing is asked). Never
/// fails: what cannot be read is in the report's notes.
pub async fn read_flux(cluster: &Cluster, deployments: &[Deployment]) -> Option<FluxReport> {
    let managers = managers(deployments);
    if managers.is_empty() {
        return None;
    }
    let mut reads = FluxReads::default();

    // Each manager kind once per namespace; image policies and automations near the workloads, their
    // managers and in flux-system, with the repositories there — all at once.
    let wanted: BTreeSet<(FluxKind, String)> = managers
        .keys()
        .map(|m| (m.kind, m.namespace.clone()))
        .collect();
    let namespaces = image_namespaces(&cluster.namespace, managers.keys());
    let (mut policy_notes, mut automation_notes, mut repository_notes) =
        (Vec::new(), Vec::new(), Vec::new());
    let (lists, policies, automations, mut repositories) = tokio::join!(
        futures::future::join_all(wanted.iter().map(|(kind, namespace)| async move {
            (*kind, namespace, list_kind(cluster, *kind, namespace).await)
        })),
        list_each(
            cluster,
            FluxKind::ImagePolicy,
            &namespaces,
            &mut policy_notes
        ),
        list_each(
            cluster,
            FluxKind::ImageUpdateAutomation,
            &namespaces,
            &mut automation_notes
        ),
        list_each(
            cluster,
            FluxKind::ImageRepository,
            &namespaces,
            &mut repository_notes
        ),
    );
    let lists: BTreeMap<(FluxKind, &String), Read<Vec<Value>>> = lists
        .into_iter()
        .map(|(kind, namespace, read)| {
            reads.notes.extend(note(&read, kind, namespace));
            ((kind, namespace), read)
        })
        .collect();
    for reference in managers.keys() {
        let read = match lists.get(&(reference.kind, &reference.namespace)) {
            Some(Read::Found(items)) => items
                .iter()
                .find(|o| {
                    o.pointer("/metadata/name").and_then(Value::as_str)
                        == Some(reference.name.as_str())
                })
                .cloned()
                .map_or(Read::NotFound, Read::Found),
            Some(Read::Forbidden) => Read::Forbidden,
            Some(Read::Failed(m)) => Read::Failed(m.clone()),
            Some(Read::NotFound | Read::NotServed) | None => Read::NotServed,
        };
        reads.managers.insert(reference.clone(), read);
    }
    reads.notes.extend(
        policy_notes
            .into_iter()
            .chain(automation_notes)
            .chain(repository_notes),
    );

    // A policy may point at a repository in a namespace not read yet.
    let elsewhere: BTreeSet<String> = policies
        .iter()
        .filter_map(|p| {
            p.pointer("/spec/imageRepositoryRef/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty() && !namespaces.contains(*n))
                .map(str::to_string)
        })
        .collect();
    if !elsewhere.is_empty() {
        repositories.extend(
            list_each(
                cluster,
                FluxKind::ImageRepository,
                &elsewhere,
                &mut reads.notes,
            )
            .await,
        );
    }
    reads.policies = policies;
    reads.automations = automations;
    reads.repositories = repositories;
    flux_report(deployments, &reads)
}

/// The newest API version of a kind the cluster serves in a namespace (a list of one item each).
async fn served_version(
    cluster: &Cluster,
    kind: FluxKind,
    namespace: &str,
) -> Result<&'static str, KubeError> {
    for version in kind.versions() {
        let api = dynamic_api(cluster, kind, version, namespace);
        match cluster
            .call(
                || list_action(kind, namespace),
                api.list(&ListParams::default().limit(1)),
            )
            .await
        {
            Ok(_) => return Ok(version),
            Err(KubeError::Api { code: 404, .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(KubeError::Api {
        action: list_action(kind, namespace),
        code: 404,
        message: format!(
            "the cluster serves no version of {} (is Flux installed?)",
            kind.resource()
        ),
    })
}

/// Suspends (`spec.suspend: true`) or resumes a Flux object with a JSON merge patch, as `flux suspend`
/// / `flux resume` do: resuming removes `spec.suspend` and asks for a reconciliation now
/// (`reconcile.fluxcd.io/requestedAt`). Returns `spec.suspend` as the API server stored it.
pub async fn set_suspended(
    cluster: &Cluster,
    object: &FluxObjectRef,
    suspend: bool,
) -> Result<bool, KubeError> {
    let version = served_version(cluster, object.kind, &object.namespace).await?;
    let api = dynamic_api(cluster, object.kind, version, &object.namespace);
    let patch = if suspend {
        json!({"spec": {"suspend": true}})
    } else {
        json!({
            "metadata": {"annotations": {REQUESTED_AT_ANNOTATION: jiff::Timestamp::now().to_string()}},
            "spec": {"suspend": null},
        })
    };
    let verb = if suspend { "suspend" } else { "resume" };
    let patched = cluster
        .call(
            || {
                format!(
                    "{verb} {} {:?} in namespace {:?} (patch {})",
                    object.kind,
                    object.name,
                    object.namespace,
                    object.kind.resource()
                )
            },
            api.patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
    Ok(patched
        .data
        .pointer("/spec/suspend")
        .and_then(Value::as_bool)
        .unwrap_or(false))
}

/// Records on a Deployment of the cluster's namespace which Flux objects were suspended for it
/// ([`SUSPENDED_ANNOTATION`]); an empty list removes the annotation.
pub async fn annotate_suspended_flux(
    cluster: &Cluster,
    deployment: &str,
    objects: &[FluxObjectRef],
) -> Result<(), KubeError> {
    let value = if objects.is_empty() {
        Value::Null
    } else {
        json!(suspended_annotation_value(objects))
    };
    let patch = json!({"metadata": {"annotations": {SUSPENDED_ANNOTATION: value}}});
    let api: Api<Deployment> = cluster.api();
    cluster
        .call(
            || {
                format!(
                    "annotate deployment {deployment:?} in namespace {:?}",
                    cluster.namespace
                )
            },
            api.patch(deployment, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
    Ok(())
}
