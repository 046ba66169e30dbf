//! A pod as an operator reads it: ready count, status as kubectl prints it, restarts, image.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Serialize;

use super::text::image_tag;

/// One pod, computed from the API object.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    pub name: String,
    /// `ready/total` as kubectl prints it.
    pub ready: String,
    pub ready_containers: usize,
    pub total_containers: usize,
    /// The status column of `kubectl get pods`.
    pub status: String,
    pub restarts: i32,
    pub last_restart_at: Option<Timestamp>,
    pub created_at: Option<Timestamp>,
    pub image: String,
    pub image_tag: String,
    pub node: Option<String>,
    pub ip: Option<String>,
    /// Set when the pod is being deleted.
    pub terminating: bool,
    pub phase: String,
    /// The controller that owns the pod (`ReplicaSet/backstage-7d9f…`).
    pub owner: Option<String>,
    pub containers: Vec<ContainerView>,
}

/// One container of a pod, with what is needed to diagnose a crash.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    /// The image as the pod spec names it (what a preflight pulls); `image` is the runtime's name.
    #[serde(skip)]
    pub spec_image: String,
    pub ready: bool,
    pub restarts: i32,
    /// running | waiting | terminated | unknown
    pub state: String,
    /// The waiting or terminated reason (`CrashLoopBackOff`, `ImagePullBackOff`, `Error`, …).
    pub reason: Option<String>,
    pub message: Option<String>,
    /// Why the previous run ended (`Error`, `OOMKilled`, …), with its exit code.
    pub last_termination_reason: Option<String>,
    pub last_exit_code: Option<i32>,
    pub last_finished_at: Option<Timestamp>,
    pub memory_limit: Option<String>,
    /// When the run going on now started (`state.running.startedAt`).
    pub started_at: Option<Timestamp>,
    /// A Backstage backend: its probes ask `/.backstage/health/…`, or, without probes, it is the
    /// first container of a pod labelled `app.kubernetes.io/name: backstage`; never in a StatefulSet.
    pub backend: bool,
}

impl PodView {
    pub fn from_pod(pod: &Pod) -> PodView {
        let status = pod.status.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut reason = status
            .reason
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| status.phase.clone().unwrap_or_default());

        let mut restarts = 0;
        let mut last_restart_at: Option<Timestamp> = None;
        let mut initializing = false;
        let init_statuses = status.init_container_statuses.clone().unwrap_or_default();
        let init_count = spec.init_containers.as_ref().map_or(0, Vec::len);
        for (i, c) in init_statuses.iter().enumerate() {
            restarts += c.restart_count;
            note_last_restart(c, &mut last_restart_at);
            let state = c.state.clone().unwrap_or_default();
            if let Some(t) = &state.terminated {
                if t.exit_code == 0 {
                    continue;
                }
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => format!("Init:{r}"),
                    None if t.signal.unwrap_or(0) != 0 => {
                        format!("Init:Signal:{}", t.signal.unwrap_or(0))
                    }
                    None => format!("Init:ExitCode:{}", t.exit_code),
                };
            } else if let Some(w) = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty() && r != "PodInitializing")
            {
                reason = format!("Init:{w}");
            } else {
                reason = format!("Init:{i}/{init_count}");
            }
            initializing = true;
            break;
        }

        let container_statuses = status.container_statuses.clone().unwrap_or_default();
        let mut ready_containers = 0;
        let initialized = status.conditions.as_ref().is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Initialized" && c.status == "True")
        });
        if !initializing || initialized {
            restarts = 0;
            let mut has_running = false;
            for c in container_statuses.iter().rev() {
                restarts += c.restart_count;
                note_last_restart(c, &mut last_restart_at);
                let state = c.state.clone().unwrap_or_default();
                if let Some(w) = state
                    .waiting
                    .as_ref()
                    .and_then(|w| w.reason.clone())
                    .filter(|r| !r.is_empty())
                {
                    reason = w;
                } else if let Some(t) = &state.terminated {
                    reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                        Some(r) => r.to_string(),
                        None if t.signal.unwrap_or(0) != 0 => {
                            format!("Signal:{}", t.signal.unwrap_or(0))
                        }
                        None => format!("ExitCode:{}", t.exit_code),
                    };
                } else if c.ready && state.running.is_some() {
                    has_running = true;
                    ready_containers += 1;
                }
            }
            if reason == "Completed" && has_running {
                let pod_ready = status
                    .conditions
                    .as_ref()
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                reason = if pod_ready {
                    "Running".into()
                } else {
                    "NotReady".into()
                };
            }
        }
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if terminating {
            reason = if status.reason.as_deref() == Some("NodeLost") {
                "Unknown".into()
            } else {
                "Terminating".into()
            };
        }

        let image = spec
            .containers
            .first()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let owner = pod
            .metadata
            .owner_references
            .as_ref()
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.controller == Some(true))
                    .or_else(|| refs.first())
            })
            .map(|r| format!("{}/{}", r.kind, r.name));
        let in_statefulset = owner
            .as_deref()
            .is_some_and(|o| o.starts_with("StatefulSet/"));
        let labelled_backstage = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/name"))
            .is_some_and(|n| n == "backstage");
        let containers = spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let st = container_statuses.iter().find(|s| s.name == c.name);
                let probes = [&c.readiness_probe, &c.liveness_probe, &c.startup_probe];
                let probed = probes.iter().any(|p| {
                    p.as_ref()
                        .and_then(|p| p.http_get.as_ref())
                        .and_then(|h| h.path.as_deref())
                        .is_some_and(|path| path.starts_with("/.backstage/health"))
                });
                let unprobed = probes.iter().all(|p| p.is_none());
                let mut view = ContainerView::new(
                    &c.name,
                    c.image.as_deref().unwrap_or_default(),
                    st,
                    c.resources
                        .as_ref()
                        .and_then(|r| r.limits.as_ref())
                        .and_then(|l| l.get("memory"))
                        .map(|q| q.0.clone()),
                );
                view.backend =
                    !in_statefulset && (probed || (labelled_backstage && unprobed && i == 0));
                view
            })
            .collect();
        PodView {
            name: pod.metadata.name.clone().unwrap_or_default(),
            ready: format!("{ready_containers}/{}", spec.containers.len()),
            ready_containers,
            total_containers: spec.containers.len(),
            status: reason,
            restarts,
            last_restart_at,
            created_at: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            image_tag: image_tag(&image).to_string(),
            image,
            node: spec.node_name.clone(),
            ip: status.pod_ip.clone(),
            terminating,
            phase: status.phase.clone().unwrap_or_default(),
            owner,
            containers,
        }
    }

    /// Starting up: not ready yet, with a container running or being created. A Backstage backend in
    /// this state may be running its migrations and hold a Knex lock for real. A crash-looping pod
    /// waiting to restart is not starting.
    pub fn is_starting(&self) -> bool {
        if self.terminating
            || self.is_ready()
            || !matches!(self.phase.as_str(), "Pending" | "Running")
        {
            return false;
        }
        self.containers.iter().any(|c| {
            (c.state == "running" && !c.ready)
                || matches!(
                    c.reason.as_deref(),
                    Some("ContainerCreating" | "PodInitializing")
                )
        })
    }

    /// Ready for traffic: every container ready, or finished successfully (a completed Job pod).
    pub fn is_ready(&self) -> bool {
        self.phase == "Succeeded"
            || (self.total_containers > 0 && self.ready_containers == self.total_containers)
    }
}

fn note_last_restart(c: &ContainerStatus, last: &mut Option<Timestamp>) {
    if let Some(finished) = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        && last.is_none_or(|l| finished.0 > l)
    {
        *last = Some(finished.0);
    }
}

impl ContainerView {
    fn new(
        name: &str,
        image: &str,
        status: Option<&ContainerStatus>,
        memory_limit: Option<String>,
    ) -> ContainerView {
        let state = status.and_then(|s| s.state.clone()).unwrap_or_default();
        let (state_name, reason, message) = if let Some(w) = &state.waiting {
            ("waiting", w.reason.clone(), w.message.clone())
        } else if let Some(t) = &state.terminated {
            ("terminated", t.reason.clone(), t.message.clone())
        } else if state.running.is_some() {
            ("running", None, None)
        } else {
            ("unknown", None, None)
        };
        let last = status
            .and_then(|s| s.last_state.as_ref())
            .and_then(|s| s.terminated.clone());
        ContainerView {
            name: name.to_string(),
            image: status
                .map(|s| s.image.clone())
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| image.to_string()),
            spec_image: image.to_string(),
            ready: status.is_some_and(|s| s.ready),
            restarts: status.map_or(0, |s| s.restart_count),
            state: state_name.to_string(),
            reason,
            message,
            last_termination_reason: last.as_ref().and_then(|t| t.reason.clone()),
            last_exit_code: last.as_ref().map(|t| t.exit_code),
            last_finished_at: last
                .as_ref()
                .and_then(|t| t.finished_at.as_ref())
                .map(|t| t.0),
            memory_limit,
            started_at: state
                .running
                .as_ref()
                .and_then(|r| r.started_at.as_ref())
                .map(|t| t.0),
            backend: false,
        }
    }

    /// Its current log is worth reading: a backend container of a running pod that is running now.
    /// Whether it is ready or not, a plugin may have failed to start (the backend keeps running).
    pub fn current_log_worth_reading(&self, pod: &PodView) -> bool {
        self.backend && self.state == "running" && !pod.terminating && pod.phase == "Running"
    }

    /// The container crashed at least once and its previous log may say why.
    pub fn has_previous_run(&self) -> bool {
        self.restarts > 0 || self.last_termination_reason.is_some()
    }

    /// Its previous log is worth reading: it is crash-looping now, or its last run ended within the
    /// last hour. Older restarts are not read, so a big namespace costs no extra requests.
    pub fn worth_diagnosing(&self, now: jiff::Timestamp) -> bool {
        const RECENT_SECONDS: i64 = 3600;
        let crashing = matches!(
            self.reason.as_deref(),
            Some("CrashLoopBackOff" | "Error" | "RunContainerError")
        );
        let recent = self
            .last_finished_at
            .is_some_and(|t| now.as_second() - t.as_second() < RECENT_SECONDS);
        self.has_previous_run() && (crashing || recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn crash_looping_pod_shows_back_off_and_last_restart() {
        let p = PodView::from_pod(&pod(r#"
metadata: {name: backstage-7d9f6b5c8-xk2lp, creationTimestamp: "2026-11-22T11:50:00Z",
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: backstage-7d9f6b5c8, uid: u1, controller: true}]}
spec:
  nodeName: aks-node-1
  containers: [{name: backstage, image: "acr.io/backstage:prod-5f3c2a1"}]
status:
  phase: Running
  podIP: 10.0.0.7
  containerStatuses:
  - name: backstage
    image: acr.io/backstage:prod-5f3c2a1
    imageID: ""
    ready: false
    restartCount: 5
    state: {waiting: {reason: CrashLoopBackOff, message: "back-off 2m40s restarting failed container"}}
    lastState: {terminated: {exitCode: 1, reason: Error, finishedAt: "2026-11-22T11:59:00Z"}}
"#));
        assert_eq!(p.status, "CrashLoopBackOff");
        assert_eq!(p.ready, "0/1");
        assert_eq!(p.restarts, 5);
        assert_eq!(
            p.last_restart_at.unwrap().to_string(),
            "2026-11-22T11:59:00Z"
        );
        assert_eq!(p.image_tag, "prod-5f3c2a1");
        assert_eq!(p.owner.as_deref(), Some("ReplicaSet/backstage-7d9f6b5c8"));
        assert_eq!(
            p.containers[0].last_termination_reason.as_deref(),
            Some("Error")
        );
        assert!(!p.is_ready());
    }

    #[test]
    fn statuses_follow_kubectl_rules() {
        let running = PodView::from_pod(&pod(r#"
metadata: {name: a}
spec: {containers: [{name: c}, {name: d}]}
status: {phase: Running, containerStatuses: [
  {name: c, image: i, imageID: "", ready: true, restartCount: 0, state: {running: {}}},
  {name: d, image: i, imageID: "", ready: true, restartCount: 2, state: {running: {}},
   lastState: {terminated: {exitCode: 137, reason: OOMKilled, finishedAt: "2026-11-22T10:00:00Z"}}}]}
"#));
        assert_eq!(
            (
                running.status.as_str(),
                running.ready.as_str(),
                running.restarts
            ),
            ("Running", "2/2", 2)
        );
        assert!(running.is_ready());

        let init = PodView::from_pod(&pod(r#"
metadata: {name: a}
spec: {initContainers: [{name: i1}, {name: i2}], containers: [{name: c}]}
status: {phase: Pending, initContainerStatuses: [
  {name: i1, image: i, imageID: "", ready: true, restartCount: 0, state: {terminated: {exitCode: 0}}},
  {name: i2, image: i, imageID: "", ready: false, restartCount: 0, state: {running: {}}}]}
"#));
        assert_eq!(init.status, "Init:1/2");

        let exit = PodView::from_pod(&pod(r#"
metadata: {name: a, deletionTimestamp: "2026-11-22T10:00:00Z"}
spec: {containers: [{name: c}]}
status: {phase: Running, containerStatuses: [{name: c, image: i, imageID: "", ready: false, restartCount: 0, state: {terminated: {exitCode: 3}}}]}
"#));
        assert_eq!(exit.status, "Terminating");

        let no_reason = PodView::from_pod(&pod(r#"
metadata: {name: a}
spec: {containers: [{name: c}]}
status: {phase: Running, containerStatuses: [{name: c, image: i, imageID: "", ready: false, restartCount: 0, state: {terminated: {exitCode: 3}}}]}
"#));
        assert_eq!(no_reason.status, "ExitCode:3");

        let pending = PodView::from_pod(&pod(
            "metadata: {name: a}\nspec: {containers: [{name: c}]}\nstatus: {phase: Pending}\n",
        ));
        assert_eq!(
            (pending.status.as_str(), pending.ready.as_str()),
            ("Pending", "0/1")
        );
    }
}
