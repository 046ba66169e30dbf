//! `image:REF` as a source: an image not yet deployed, read in a short-lived **preflight pod** in the
//! namespace. The pod is modelled on the Backstage Deployment's pod template — its
//! `imagePullSecrets`, service account (for the pull secrets attached to it), node selector,
//! tolerations, affinity and pod and container security contexts, so that it is pulled and placed as
//! the real pods would be — with its command replaced by one that only waits (`node -e setTimeout`),
//! no environment, no service account token, small requests and limits, `activeDeadlineSeconds` and
//! `restartPolicy: Never`. Once its container runs, one exec of the listing script of [`super::pod`]
//! reads its files, packages and `backstage.json`, and one more loads every migration file with Node
//! ([`super::reversibility`]). The pod is deleted when done: on success, on failure and on Ctrl-C.
//! Leftovers of a killed run (ours by label, finished or past their deadline) are deleted by the next
//! run. What happens meanwhile is reported through a `progress` callback; this module prints nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::inventory::Inventory;
use super::pod::{PodSourceError, listing_in};
use super::reversibility::{self, DownChecks};
use super::source::SourcePlace;
use crate::kube::{Cluster, KubeError};

/// The label every pod this tool creates carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "kubectl-backstage";
/// The label saying what the pod is for.
pub const ROLE_LABEL: &str = "app.kubernetes.io/component";
pub const ROLE: &str = "preflight";
/// The selector of our preflight pods.
pub const SELECTOR: &str =
    "app.kubernetes.io/managed-by=kubectl-backstage,app.kubernetes.io/component=preflight";
/// Annotations: the image read, and the Deployment the pod was modelled on.
pub const IMAGE_ANNOTATION: &str = "kubectl-backstage.io/image";
pub const TEMPLATE_ANNOTATION: &str = "kubectl-backstage.io/modelled-on";
/// The container's name.
pub const CONTAINER: &str = "preflight";
/// How long the pod may live (`activeDeadlineSeconds`); its command waits as long. A pull of a large
/// image can take minutes.
pub const DEADLINE_SECONDS: i64 = 900;
/// Waiting states of a container whose image cannot be pulled.
const PULL_FAILURES: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// Waiting states of a container that will not start.
const START_FAILURES: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];
/// How often the pod's status is read while it schedules and pulls.
const POLL: Duration = Duration::from_millis(500);

/// What the preflight is doing, for the progress lines on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A leftover preflight pod of an earlier run was deleted.
    LeftoverDeleted { pod: String, why: String },
    /// The pod is being created (`template`: `deployment/NAME` it is modelled on, if any).
    Creating {
        pod: String,
        image: String,
        template: Option<String>,
    },
    /// The pod is not running yet: the scheduler's or the kubelet's reason and message.
    Waiting {
        pod: String,
        reason: String,
        message: Option<String>,
    },
    /// An event about the pod (`Scheduled`, `Pulling`, `Pulled`, `Failed`, `BackOff`, …), as the
    /// scheduler and the kubelet word it.
    Event {
        pod: String,
        reason: String,
        message: String,
    },
    /// The container runs; its files are being read.
    Reading { pod: String },
    /// The pod was deleted.
    Deleted { pod: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ImageSourceError {
    #[error(
        "image:{image} needs permission to {verb} {resource} in namespace {namespace:?} (context {context:?}), and that is forbidden; grant it, or read a checkout of that version with --source DIR"
    )]
    Forbidden {
        image: String,
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        context: String,
    },
    #[error("image:{image} cannot be pulled: {reason}: {message} (preflight pod {pod} deleted)")]
    Pull {
        image: String,
        reason: String,
        message: String,
        pod: String,
    },
    #[error("the preflight pod {pod} for image:{image} {what} (deleted)")]
    PodFailed {
        image: String,
        pod: String,
        what: String,
    },
    #[error(
        "the preflight pod {pod} for image:{image} did not start within {seconds}s (last state: {state}; deleted)"
    )]
    NotStarted {
        image: String,
        pod: String,
        seconds: i64,
        state: String,
    },
    #[error("reading image:{image}: {source}")]
    Listing {
        image: String,
        source: PodSourceError,
    },
    #[error("image:{image}: {source}")]
    Kube { image: String, source: KubeError },
    #[error("interrupted: the preflight pod {pod} for image:{image} was deleted")]
    Interrupted { image: String, pod: String },
    #[error(
        "the preflight pod {pod} could not be deleted ({message}); delete it with `kubectl delete pod {pod} -n {namespace}`"
    )]
    NotDeleted {
        pod: String,
        namespace: String,
        message: String,
    },
}

impl ImageSourceError {
    /// The run was interrupted with Ctrl-C (exit 130, as a shell reports it).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, ImageSourceError::Interrupted { .. })
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether a preflight in this process was interrupted by Ctrl-C (the exit code is then 130).
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An image's inventory (as [`super::inventory::load`] gives it for a pod or a folder, named
/// `image:REF`) and what each of its migration files' `down` is.
#[derive(Debug, Clone)]
pub struct ImageInventory {
    pub inventory: Inventory,
    /// Keyed by `directory/file` as [`reversibility::path_of`] builds it; `None` when Node could
    /// not check them (the reason is in `downs_error`).
    pub downs: Option<DownChecks>,
    pub downs_error: Option<String>,
}

/// Reads an image in a preflight pod: its packages, `backstage.json`, migration files and their
/// `down`s. The pod is deleted before this returns, whatever happened, Ctrl-C included.
pub async fn image_inventory(
    cluster: &Cluster,
    image: &str,
    progress: &dyn Fn(ProgressEvent),
) -> Result<ImageInventory, ImageSourceError> {
    delete_leftovers(cluster, image, progress).await?;
    let pod = generated_name();
    let result = tokio::select! {
        result = session(cluster, image, &pod, progress) => result,
        _ = tokio::signal::ctrl_c() => {
            INTERRUPTED.store(true, Ordering::SeqCst);
            Err(ImageSourceError::Interrupted { image: image.to_string(), pod: pod.clone() })
        }
    };
    let deleted = cluster.delete_pod(&pod).await;
    match deleted {
        Ok(true) => progress(ProgressEvent::Deleted { pod: pod.clone() }),
        Ok(false) => {}
        Err(e) if result.is_ok() => {
            return Err(ImageSourceError::NotDeleted {
                pod,
                namespace: cluster.namespace.clone(),
                message: e.to_string(),
            });
        }
        Err(e) => tracing::warn!(%pod, error = %e, "the preflight pod could not be deleted"),
    }
    result
}

/// Create, wait until running, read.
async fn session(
    cluster: &Cluster,
    image: &str,
    pod: &str,
    progress: &dyn Fn(ProgressEvent),
) -> Result<ImageInventory, ImageSourceError> {
    let kube = |source: KubeError| ImageSourceError::Kube {
        image: image.to_string(),
        source,
    };
    let template = match backstage_template(cluster).await {
        Ok(found) => found,
        Err(KubeError::Forbidden { .. }) => {
            // The pod is then placed by the cluster's defaults only.
            tracing::info!("cannot list deployments; the preflight pod copies no pod template");
            None
        }
        Err(e) => return Err(kube(e)),
    };
    let spec = preflight_pod(
        pod,
        image,
        template
            .as_ref()
            .map(|(name, spec, container)| (name.as_str(), spec, container.as_str())),
    );
    progress(ProgressEvent::Creating {
        pod: pod.to_string(),
        image: image.to_string(),
        template: template.as_ref().map(|(name, _, _)| name.clone()),
    });
    cluster
        .create_pod(&spec)
        .await
        .map_err(|e| forbidden(e, cluster, image, "create", "pods").unwrap_or_else(kube))?;
    wait_until_running(cluster, image, pod, progress).await?;
    progress(ProgressEvent::Reading {
        pod: pod.to_string(),
    });
    let (files, (installed, backstage_json)) =
        listing_in(cluster, pod.to_string(), CONTAINER.to_string())
            .await
            .map_err(|e| match e {
                PodSourceError::Kube(k) => forbidden(k, cluster, image, "create", "pods/exec")
                    .unwrap_or_else(|k| ImageSourceError::Listing {
                        image: image.to_string(),
                        source: PodSourceError::Kube(k),
                    }),
                other => ImageSourceError::Listing {
                    image: image.to_string(),
                    source: other,
                },
            })?;
    let place = SourcePlace::Pod {
        pod: pod.to_string(),
        container: CONTAINER.to_string(),
        cwd: files.cwd.clone(),
    };
    let (downs, downs_error) = match reversibility::check_downs(
        &place,
        Some(cluster),
        &reversibility::all_files(&files.tables),
    )
    .await
    {
        Ok(downs) => (Some(downs), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(ImageInventory {
        inventory: Inventory {
            source: format!("image:{image}"),
            installed,
            tables: files.tables,
            backstage_json,
        },
        downs,
        downs_error,
    })
}

/// A forbidden request as the RBAC it needs; other errors are handed back.
fn forbidden(
    error: KubeError,
    cluster: &Cluster,
    image: &str,
    verb: &'static str,
    resource: &'static str,
) -> Result<ImageSourceError, KubeError> {
    match error {
        KubeError::Forbidden { .. } => Ok(ImageSourceError::Forbidden {
            image: image.to_string(),
            verb,
            resource,
            namespace: cluster.namespace.clone(),
            context: cluster.context.clone(),
        }),
        other => Err(other),
    }
}

/// Polls the pod until its container runs, reporting each new state; a pull failure, a container
/// that cannot start or a pod that ended is an error.
async fn wait_until_running(
    cluster: &Cluster,
    image: &str,
    pod: &str,
    progress: &dyn Fn(ProgressEvent),
) -> Result<(), ImageSourceError> {
    let started = tokio::time::Instant::now();
    // The kubelet ends the pod at its deadline; this is only in case nobody does.
    let give_up = Duration::from_secs(DEADLINE_SECONDS as u64 + 60);
    let mut last: Option<(String, Option<String>)> = None;
    let mut events = EventsSeen::default();
    loop {
        events.report(cluster, pod, progress).await;
        let found = cluster.get_pod(pod).await.map_err(|e| {
            forbidden(e, cluster, image, "get", "pods").unwrap_or_else(|source| {
                ImageSourceError::Kube {
                    image: image.to_string(),
                    source,
                }
            })
        })?;
        let Some(found) = found else {
            return Err(ImageSourceError::PodFailed {
                image: image.to_string(),
                pod: pod.to_string(),
                what: "was deleted by someone else".into(),
            });
        };
        let state = pod_state(&found);
        if !matches!(state, PodState::Waiting { .. }) {
            // What happened since the last look (the pull, the start).
            events.report(cluster, pod, progress).await;
        }
        match state {
            PodState::Running => return Ok(()),
            PodState::PullFailed { reason, message } => {
                return Err(ImageSourceError::Pull {
                    image: image.to_string(),
                    reason,
                    message,
                    pod: pod.to_string(),
                });
            }
            PodState::Failed { what } => {
                return Err(ImageSourceError::PodFailed {
                    image: image.to_string(),
                    pod: pod.to_string(),
                    what,
                });
            }
            PodState::Waiting { reason, message } => {
                if started.elapsed() > give_up {
                    return Err(ImageSourceError::NotStarted {
                        image: image.to_string(),
                        pod: pod.to_string(),
                        seconds: give_up.as_secs() as i64,
                        state: reason,
                    });
                }
                let now = (reason, message);
                if last.as_ref() != Some(&now) {
                    progress(ProgressEvent::Waiting {
                        pod: pod.to_string(),
                        reason: now.0.clone(),
                        message: now.1.clone(),
                    });
                    last = Some(now);
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The pod's events already reported (by name and count), so that each is reported once.
#[derive(Default)]
struct EventsSeen {
    seen: std::collections::HashSet<(String, i32)>,
    /// Events cannot be listed (forbidden, say): the status alone is reported.
    off: bool,
}

impl EventsSeen {
    async fn report(&mut self, cluster: &Cluster, pod: &str, progress: &dyn Fn(ProgressEvent)) {
        if self.off {
            return;
        }
        let mut events = match cluster.events_of("Pod", pod).await {
            Ok(events) => events,
            Err(e) => {
                tracing::info!(error = %e, "cannot list the preflight pod's events");
                self.off = true;
                return;
            }
        };
        // Timestamps have seconds only; within a second the resourceVersion tells the order.
        events.sort_by_key(|e| {
            (
                e.first_timestamp.as_ref().map(|t| t.0),
                e.metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse::<u64>().ok()),
            )
        });
        for event in events {
            let key = (
                event.metadata.name.clone().unwrap_or_default(),
                event.count.unwrap_or(1),
            );
            if self.seen.insert(key) {
                progress(ProgressEvent::Event {
                    pod: pod.to_string(),
                    reason: event.reason.unwrap_or_default(),
                    message: event.message.unwrap_or_default().trim().to_string(),
                });
            }
        }
    }
}

/// Where a preflight pod is, from its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    Running,
    PullFailed {
        reason: String,
        message: String,
    },
    Failed {
        what: String,
    },
    Waiting {
        reason: String,
        message: Option<String>,
    },
}

/// Reads the pod's status as the kubelet and the scheduler write it.
pub fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    let container = status
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.name == CONTAINER)
        .cloned();
    if let Some(state) = container.as_ref().and_then(|c| c.state.clone()) {
        if state.running.is_some() {
            return PodState::Running;
        }
        if let Some(terminated) = state.terminated {
            return PodState::Failed {
                what: format!(
                    "ended before it was read: {} (exit code {}){}",
                    terminated.reason.unwrap_or_else(|| "Terminated".into()),
                    terminated.exit_code,
                    terminated
                        .message
                        .map(|m| format!(": {}", m.trim()))
                        .unwrap_or_default()
                ),
            };
        }
        if let Some(waiting) = state.waiting {
            let reason = waiting.reason.unwrap_or_else(|| "Waiting".into());
            let message = waiting.message.filter(|m| !m.trim().is_empty());
            if PULL_FAILURES.contains(&reason.as_str()) {
                return PodState::PullFailed {
                    message: message.unwrap_or_else(|| "no message".into()),
                    reason,
                };
            }
            if START_FAILURES.contains(&reason.as_str()) {
                return PodState::Failed {
                    what: format!(
                        "cannot start: {reason}{}",
                        message.map(|m| format!(": {m}")).unwrap_or_default()
                    ),
                };
            }
            if status.phase.as_deref() == Some("Pending") || status.phase.is_none() {
                return PodState::Waiting { reason, message };
            }
        }
    }
    match status.phase.as_deref() {
        Some("Failed") | Some("Succeeded") => PodState::Failed {
            what: format!(
                "ended before it was read: {}{}",
                status
                    .reason
                    .unwrap_or_else(|| status.phase.clone().unwrap_or_default()),
                status
                    .message
                    .map(|m| format!(": {}", m.trim()))
                    .unwrap_or_default()
            ),
        },
        _ => {
            // Not scheduled yet: the scheduler's condition says why.
            let scheduled = status
                .conditions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|c| c.type_ == "PodScheduled")
                .cloned();
            match scheduled {
                Some(c) if c.status == "False" => PodState::Waiting {
                    reason: c.reason.unwrap_or_else(|| "Unschedulable".into()),
                    message: c.message,
                },
                Some(_) => PodState::Waiting {
                    reason: "Scheduled".into(),
                    message: None,
                },
                None => PodState::Waiting {
                    reason: "Pending".into(),
                    message: None,
                },
            }
        }
    }
}

/// Deletes the preflight pods of earlier runs that are finished or past their deadline (a run that
/// was killed could not delete its own). Pods of a run still going are left alone. Listing pods is
/// needed anyway, but a forbidden list only skips this.
async fn delete_leftovers(
    cluster: &Cluster,
    image: &str,
    progress: &dyn Fn(ProgressEvent),
) -> Result<(), ImageSourceError> {
    let pods = match cluster.list_all::<Pod>("pods", Some(SELECTOR)).await {
        Ok((pods, _)) => pods,
        Err(KubeError::Forbidden { .. }) => {
            tracing::info!("cannot list pods; leftover preflight pods are not looked for");
            return Ok(());
        }
        Err(source) => {
            return Err(ImageSourceError::Kube {
                image: image.to_string(),
                source,
            });
        }
    };
    let now = jiff::Timestamp::now();
    for pod in &pods {
        let (Some(name), Some(why)) = (pod.metadata.name.as_deref(), leftover(pod, now)) else {
            continue;
        };
        match cluster.delete_pod(name).await {
            Ok(true) => progress(ProgressEvent::LeftoverDeleted {
                pod: name.to_string(),
                why,
            }),
            Ok(false) => {}
            Err(KubeError::Forbidden { .. }) => {
                return Err(ImageSourceError::Forbidden {
                    image: image.to_string(),
                    verb: "delete",
                    resource: "pods",
                    namespace: cluster.namespace.clone(),
                    context: cluster.context.clone(),
                });
            }
            Err(source) => {
                return Err(ImageSourceError::Kube {
                    image: image.to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Why a preflight pod is a leftover to delete: it finished, or it is older than its deadline.
/// `None`: it may belong to a run still going.
pub fn leftover(pod: &Pod, now: jiff::Timestamp) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY)
        || labels.get(ROLE_LABEL).map(String::as_str) != Some(ROLE)
    {
        return None;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if let Some(phase @ ("Succeeded" | "Failed")) = phase {
        return Some(format!("phase {phase}"));
    }
    let deadline = pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .unwrap_or(DEADLINE_SECONDS);
    let created = pod.metadata.creation_timestamp.as_ref()?.0;
    let age = now.duration_since(created).as_secs();
    (age > deadline).then(|| format!("older than its deadline of {deadline}s"))
}

/// `backstage-preflight-` and a random-enough suffix (time and process id, base 36).
fn generated_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut n = (nanos ^ (u128::from(std::process::id()) << 64)) % 36u128.pow(8);
    let mut suffix = String::new();
    for _ in 0..8 {
        let digit = (n % 36) as u32;
        suffix.push(std::char::from_digit(digit, 36).unwrap_or('0'));
        n /= 36;
    }
    format!("backstage-preflight-{suffix}")
}

/// The Backstage Deployment's pod template and its Backstage container: the Deployment labelled
/// `app.kubernetes.io/name=backstage`, else one named `backstage`, else one whose container image
/// names backstage (the first by name).
async fn backstage_template(
    cluster: &Cluster,
) -> Result<Option<(String, PodSpec, String)>, KubeError> {
    let (deployments, _) = cluster.list_all::<Deployment>("deployments", None).await?;
    Ok(choose_template(&deployments))
}

/// The choice of [`backstage_template`], on a list.
pub fn choose_template(deployments: &[Deployment]) -> Option<(String, PodSpec, String)> {
    let image_names_backstage = |c: &Container| {
        c.image
            .as_deref()
            .is_some_and(|i| i.to_lowercase().contains("backstage"))
    };
    let mut candidates: Vec<(u8, String, PodSpec)> = deployments
        .iter()
        .filter_map(|d| {
            let name = d.metadata.name.clone()?;
            let spec = d.spec.as_ref()?.template.spec.clone()?;
            let labelled = d
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/name"))
                .map(String::as_str)
                == Some("backstage");
            let rank = if labelled {
                0
            } else if name == "backstage" {
                1
            } else if spec.containers.iter().any(image_names_backstage) {
                2
            } else {
                return None;
            };
            Some((rank, name, spec))
        })
        .collect();
    candidates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let (_, name, spec) = candidates.into_iter().next()?;
    let container = spec
        .containers
        .iter()
        .find(|c| image_names_backstage(c))
        .or(spec.containers.first())
        .map(|c| c.name.clone())?;
    Some((format!("deployment/{name}"), spec, container))
}

/// The preflight pod: `template` is the Deployment (`deployment/NAME`), its pod spec and the name of
/// its Backstage container, whose placement, pull secrets and security settings are copied.
pub fn preflight_pod(name: &str, image: &str, template: Option<(&str, &PodSpec, &str)>) -> Pod {
    let mut labels = BTreeMap::new();
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels.insert(ROLE_LABEL.to_string(), ROLE.to_string());
    let mut annotations = BTreeMap::new();
    annotations.insert(IMAGE_ANNOTATION.to_string(), image.to_string());
    let quantity = |q: &str| Quantity(q.to_string());
    let mut container = Container {
        name: CONTAINER.to_string(),
        image: Some(image.to_string()),
        // Only waits: the files are read by exec. No Backstage start, no database environment.
        command: Some(vec![
            "node".to_string(),
            "-e".to_string(),
            format!("setTimeout(() => {{}}, {}000)", DEADLINE_SECONDS),
        ]),
        args: Some(Vec::new()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), quantity("50m")),
                ("memory".to_string(), quantity("128Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), quantity("500m")),
                ("memory".to_string(), quantity("512Mi")),
            ])),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    };
    let mut spec = PodSpec {
        restart_policy: Some("Never".into()),
        active_deadline_seconds: Some(DEADLINE_SECONDS),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(0),
        ..PodSpec::default()
    };
    if let Some((workload, template, backstage)) = template {
        annotations.insert(TEMPLATE_ANNOTATION.to_string(), workload.to_string());
        spec.image_pull_secrets = template.image_pull_secrets.clone();
        spec.service_account_name = template.service_account_name.clone();
        spec.node_selector = template.node_selector.clone();
        spec.tolerations = template.tolerations.clone();
        spec.affinity = template.affinity.clone();
        spec.security_context = template.security_context.clone();
        spec.runtime_class_name = template.runtime_class_name.clone();
        if let Some(source) = template.containers.iter().find(|c| c.name == backstage) {
            container.security_context = source.security_context.clone();
            container.working_dir = source.working_dir.clone();
            container.image_pull_policy = source.image_pull_policy.clone();
        }
    }
    spec.containers = vec![container];
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    fn backstage_deployment() -> Deployment {
        deployment(json!({
            "metadata": {"name": "backstage", "labels": {"app.kubernetes.io/name": "backstage"}},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "backstage"}}, "spec": {
                "serviceAccountName": "backstage",
                "imagePullSecrets": [{"name": "acr-pull"}],
                "nodeSelector": {"agentpool": "apps"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "apps", "effect": "NoSchedule"}],
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 1000},
                "containers": [
                    {"name": "oauth2-proxy", "image": "quay.io/oauth2-proxy/oauth2-proxy:v7"},
                    {"name": "backend", "image": "acr.example.io/backstage:prod-1",
                     "workingDir": "/app",
                     "command": ["node", "packages/backend"],
                     "env": [{"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "pw"}}}],
                     "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}}
                ]
            }}}
        }))
    }

    #[test]
    fn the_pod_copies_placement_pulls_and_security_but_not_the_backend() {
        let deployments = vec![
            deployment(
                json!({"metadata": {"name": "other"}, "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "x", "image": "nginx"}]}}}}),
            ),
            backstage_deployment(),
        ];
        let (workload, template, container) = choose_template(&deployments).unwrap();
        assert_eq!(
            (workload.as_str(), container.as_str()),
            ("deployment/backstage", "backend")
        );
        let pod = preflight_pod(
            "backstage-preflight-abc",
            "acr.example.io/backstage:pr-4321-abc1234",
            Some((&workload, &template, &container)),
        );
        let value = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "backstage-preflight-abc",
                    "labels": {"app.kubernetes.io/component": "preflight", "app.kubernetes.io/managed-by": "kubectl-backstage"},
                    "annotations": {"kubectl-backstage.io/image": "acr.example.io/backstage:pr-4321-abc1234", "kubectl-backstage.io/modelled-on": "deployment/backstage"}
                },
                "spec": {
                    "activeDeadlineSeconds": 900,
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "imagePullSecrets": [{"name": "acr-pull"}],
                    "nodeSelector": {"agentpool": "apps"},
                    "restartPolicy": "Never",
                    "securityContext": {"fsGroup": 1000, "runAsNonRoot": true, "runAsUser": 1000},
                    "serviceAccountName": "backstage",
                    "terminationGracePeriodSeconds": 0,
                    "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "apps"}],
                    "containers": [{
                        "name": "preflight",
                        "image": "acr.example.io/backstage:pr-4321-abc1234",
                        "command": ["node", "-e", "setTimeout(() => {}, 900000)"],
                        "args": [],
                        "workingDir": "/app",
                        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "50m", "memory": "128Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}
                    }]
                }
            })
        );
    }

    #[test]
    fn without_a_deployment_the_pod_is_plain() {
        assert!(choose_template(&[]).is_none());
        let pod = preflight_pod("p", "backstage:1", None);
        let spec = pod.spec.unwrap();
        assert_eq!(spec.image_pull_secrets, None);
        assert_eq!(spec.containers[0].working_dir, None);
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    }

    fn pod_with(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-12-03T10:00:00Z",
                         "labels": {"app.kubernetes.io/managed-by": "kubectl-backstage", "app.kubernetes.io/component": "preflight"}},
            "spec": {"activeDeadlineSeconds": 900, "containers": [{"name": "preflight"}]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn states_from_the_kubelet_and_the_scheduler() {
        assert_eq!(
            pod_state(&pod_with(
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]})
            )),
            PodState::Waiting {
                reason: "Unschedulable".into(),
                message: Some("0/3 nodes are available".into())
            }
        );
        assert_eq!(
            pod_state(&pod_with(
                json!({"phase": "Pending", "containerStatuses": [{"name": "preflight", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]})
            )),
            PodState::Waiting {
                reason: "ContainerCreating".into(),
                message: None
            }
        );
        assert_eq!(
            pod_state(&pod_with(
                json!({"phase": "Pending", "containerStatuses": [{"name": "preflight", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]})
            )),
            PodState::PullFailed {
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image \"x\"".into()
            }
        );
        assert_eq!(
            pod_state(&pod_with(
                json!({"phase": "Running", "containerStatuses": [{"name": "preflight", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]})
            )),
            PodState::Running
        );
        assert_eq!(
            pod_state(&pod_with(json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": "Pod was active on the node longer than the specified deadline"}))),
            PodState::Failed { what: "ended before it was read: DeadlineExceeded: Pod was active on the node longer than the specified deadline".into() }
        );
    }

    #[test]
    fn leftovers_are_finished_or_past_their_deadline() {
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
        let running = pod_with(json!({"phase": "Running"}));
        assert_eq!(leftover(&running, at("2026-12-03T10:10:00Z")), None);
        assert_eq!(
            leftover(&running, at("2026-12-03T10:15:01Z")),
            Some("older than its deadline of 900s".into())
        );
        let done = pod_with(json!({"phase": "Failed"}));
        assert_eq!(
            leftover(&done, at("2026-12-03T10:00:01Z")),
            Some("phase Failed".into())
        );
        let mut foreign = pod_with(json!({"phase": "Failed"}));
        foreign.metadata.labels = None;
        assert_eq!(leftover(&foreign, at("2026-12-03T11:00:00Z")), None);
    }

    #[test]
    fn names_are_valid_pod_names() {
        let name = generated_name();
        assert!(
            name.starts_with("backstage-preflight-") && name.len() == 28,
            "{name}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
