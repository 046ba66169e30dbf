//! Health of a Backstage namespace: rollouts, pods and the findings drawn from them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::diagnosis::{LogOrigin, StartupFailure};
use super::flux::FluxReport;
use super::pod::{ContainerView, PodView};
use super::text::image_tag;
use super::time::age;

/// A Deployment or StatefulSet and how far its rollout has come.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadView {
    pub kind: String,
    pub name: String,
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub rollout_complete: bool,
    /// Why the rollout is not complete, as `kubectl rollout status` would say it.
    pub rollout_message: Option<String>,
    /// Set when the Deployment's progress deadline was exceeded.
    pub progress_deadline_exceeded: bool,
    pub image: String,
    pub image_tag: String,
}

impl WorkloadView {
    pub fn from_deployment(d: &Deployment) -> WorkloadView {
        let spec = d.spec.clone().unwrap_or_default();
        let status = d.status.clone().unwrap_or_default();
        let desired = spec.replicas.unwrap_or(1);
        let updated = status.updated_replicas.unwrap_or(0);
        let replicas = status.replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let generation = d.metadata.generation.unwrap_or(0);
        let observed = status.observed_generation.unwrap_or(0);
        let progress_deadline_exceeded = status.conditions.as_ref().is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
        });
        // The same checks, in the same order, as `kubectl rollout status deployment`.
        let rollout_message = if observed < generation {
            Some("waiting for the rollout to be observed by the controller".to_string())
        } else if progress_deadline_exceeded {
            Some("the rollout exceeded its progress deadline".to_string())
        } else if updated < desired {
            Some(format!(
                "{updated} of {desired} new replicas have been updated"
            ))
        } else if replicas > updated {
            Some(match replicas - updated {
                1 => "1 old replica is pending termination".to_string(),
                n => format!("{n} old replicas are pending termination"),
            })
        } else if available < updated {
            Some(format!(
                "{available} of {updated} updated replicas are available"
            ))
        } else {
            None
        };
        WorkloadView {
            desired,
            updated,
            ready: status.ready_replicas.unwrap_or(0),
            available,
            progress_deadline_exceeded,
            ..WorkloadView::rollout("Deployment", &d.metadata, &spec.template, rollout_message)
        }
    }

    pub fn from_statefulset(s: &StatefulSet) -> WorkloadView {
        let spec = s.spec.clone().unwrap_or_default();
        let status = s.status.clone().unwrap_or_default();
        let desired = spec.replicas.unwrap_or(1);
        let updated = status.updated_replicas.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        let generation = s.metadata.generation.unwrap_or(0);
        let observed = status.observed_generation.unwrap_or(0);
        let rolling = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref())
            .unwrap_or("RollingUpdate")
            == "RollingUpdate";
        // `kubectl rollout status statefulset`: observed, ready, then (for RollingUpdate) revisions.
        let rollout_message = if observed < generation {
            Some("waiting for the statefulset spec update to be observed".to_string())
        } else if ready < desired {
            Some(format!("{ready} of {desired} pods are ready"))
        } else if rolling
            && status.update_revision.is_some()
            && status.update_revision != status.current_revision
        {
            Some(format!(
                "{updated} of {desired} pods are on the new revision"
            ))
        } else {
            None
        };
        WorkloadView {
            desired,
            updated,
            ready,
            available: status.available_replicas.unwrap_or(ready),
            ..WorkloadView::rollout("StatefulSet", &s.metadata, &spec.template, rollout_message)
        }
    }

    /// What a Deployment and a StatefulSet share: kind and name, the rollout (complete when there is
    /// no message) and the image of the template's first container; the replica counts are zero.
    fn rollout(
        kind: &str,
        metadata: &ObjectMeta,
        template: &PodTemplateSpec,
        rollout_message: Option<String>,
    ) -> WorkloadView {
        let image = template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        WorkloadView {
            kind: kind.into(),
            name: metadata.name.clone().unwrap_or_default(),
            desired: 0,
            updated: 0,
            ready: 0,
            available: 0,
            rollout_complete: rollout_message.is_none(),
            rollout_message,
            progress_deadline_exceeded: false,
            image_tag: image_tag(&image).to_string(),
            image,
        }
    }

    pub fn object(&self) -> String {
        format!("{}/{}", self.kind.to_lowercase(), self.name)
    }
}

/// How bad a finding is. Ordered: errors first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Something an operator should know, about one object, with what to do.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    /// `pod/NAME`, `deployment/NAME`, …
    pub object: String,
    pub message: String,
    pub hint: Option<String>,
    /// The known start-up failure recognised in the container's previous log, or in its current
    /// log when it runs on after a plugin failed to start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<StartupFailure>,
}

/// The logs that were read, by (pod, container), already diagnosed.
pub type Diagnoses = BTreeMap<(String, String), Option<StartupFailure>>;

/// What the containers' logs say: the previous runs' and the current runs'.
#[derive(Debug, Clone, Default)]
pub struct LogDiagnoses {
    /// Previous logs of containers that crashed or restarted recently.
    pub previous: Diagnoses,
    /// Current logs of running backend containers.
    pub current: Diagnoses,
}

/// Restarts within this window are worth a warning even when the pod is up again.
const RECENT_RESTART_SECONDS: i64 = 3600;

/// Every finding for the namespace, most severe first.
pub fn findings(
    pods: &[PodView],
    workloads: &[WorkloadView],
    diagnoses: &LogDiagnoses,
    now: Timestamp,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for w in workloads {
        out.extend(check_workload(w));
    }
    for p in pods {
        out.extend(check_pod(p, diagnoses, now));
    }
    out.sort_by_key(|f| f.severity);
    out
}

fn check_workload(w: &WorkloadView) -> Option<Finding> {
    let message = w.rollout_message.clone()?;
    let (severity, hint) = if w.progress_deadline_exceeded {
        (
            Severity::Error,
            format!(
                "the new pods are not becoming ready; see the pod findings and `kubectl backstage events --for {}`",
                w.object()
            ),
        )
    } else if w.available < w.desired {
        (
            Severity::Error,
            format!(
                "fewer replicas are serving than desired; see `kubectl backstage events --for {}`",
                w.object()
            ),
        )
    } else {
        (
            Severity::Warning,
            "wait with `kubectl backstage health --wait`".to_string(),
        )
    };
    Some(Finding {
        severity,
        object: w.object(),
        message: format!("rollout not complete: {message} (image {})", w.image_tag),
        hint: Some(hint),
        diagnosis: None,
    })
}

/// What one check looks at: a container of a pod, with its diagnosed previous and current logs.
struct ContainerFacts<'a> {
    pod: &'a PodView,
    container: &'a ContainerView,
    /// `pod/NAME`.
    object: &'a str,
    diagnosis: Option<StartupFailure>,
    /// What the current run's log shows (read only for running backend containers).
    current: Option<StartupFailure>,
    now: Timestamp,
}

impl ContainerFacts<'_> {
    fn finding(&self, severity: Severity, message: String, hint: String) -> Finding {
        Finding {
            severity,
            object: self.object.to_string(),
            message,
            hint: Some(hint),
            diagnosis: None,
        }
    }

    /// `, last 3m ago` when the previous run's end is known.
    fn last_restart(&self) -> String {
        self.container
            .last_finished_at
            .map(|t| format!(", last {} ago", age(t, self.now)))
            .unwrap_or_default()
    }

    fn events_hint(&self) -> String {
        format!("see `kubectl backstage events --for {}`", self.object)
    }
}

/// One check of one container: a finding, or `None` when it sees nothing wrong.
type ContainerCheck = fn(&ContainerFacts) -> Option<Finding>;

/// The container checks, most severe first. The first that finds something speaks for the container:
/// what is wrong now (it crashes, cannot pull, cannot be created) hides what went wrong before (an
/// earlier OOM kill or restart) in the same container, never in another one.
const CONTAINER_CHECKS: [ContainerCheck; 6] = [
    crash_looping,
    image_unpullable,
    not_creatable,
    failed_to_start,
    oom_killed,
    restarted_recently,
];

fn check_pod(p: &PodView, diagnoses: &LogDiagnoses, now: Timestamp) -> Vec<Finding> {
    if p.terminating || p.phase == "Succeeded" {
        return Vec::new();
    }
    let object = format!("pod/{}", p.name);
    let mut out: Vec<Finding> = p
        .containers
        .iter()
        .filter_map(|c| {
            let facts = ContainerFacts {
                pod: p,
                container: c,
                object: &object,
                diagnosis: diagnoses
                    .previous
                    .get(&(p.name.clone(), c.name.clone()))
                    .cloned()
                    .flatten(),
                current: diagnoses
                    .current
                    .get(&(p.name.clone(), c.name.clone()))
                    .cloned()
                    .flatten(),
                now,
            };
            CONTAINER_CHECKS.iter().find_map(|check| check(&facts))
        })
        .collect();
    // A pod that is not ready with no container error to say why gets a finding of its own.
    if !out.iter().any(|f| f.severity == Severity::Error)
        && let Some(f) = not_ready(p, &object)
    {
        out.push(f);
    }
    out
}

fn crash_looping(f: &ContainerFacts) -> Option<Finding> {
    let c = f.container;
    let reason = c
        .reason
        .as_deref()
        .filter(|r| matches!(*r, "CrashLoopBackOff" | "Error" | "RunContainerError"))?;
    let mut message = format!(
        "container {} is in {reason} ({}{})",
        c.name,
        restarts(c.restarts),
        f.last_restart()
    );
    let hint = match &f.diagnosis {
        Some(d) => {
            message.push_str(&format!(": {}", d.summary()));
            d.hint(&f.pod.name, &c.name, &c.spec_image, LogOrigin::Previous)
        }
        None => format!(
            "read why it crashed: `kubectl logs {} -c {} --previous`",
            f.pod.name, c.name
        ),
    };
    Some(Finding {
        diagnosis: f.diagnosis.clone(),
        ..f.finding(Severity::Error, message, hint)
    })
}

/// A running backend whose current log shows a plugin that failed to start. Backstage's backend does
/// not exit then: not ready forever (readiness 503), or even ready when only the scheduler's
/// migrations failed — either way part of the portal does not work, so it is an error.
fn failed_to_start(f: &ContainerFacts) -> Option<Finding> {
    let c = f.container;
    let d = f.current.as_ref()?;
    if c.state != "running" {
        return None;
    }
    let message = if c.ready {
        format!(
            "container {} is ready, but its log shows a start-up failure: {}",
            c.name,
            d.summary()
        )
    } else {
        format!(
            "container {} is running but not ready, and will not become ready: {}",
            c.name,
            d.summary()
        )
    };
    let hint = d.hint(
        &f.pod.name,
        &c.name,
        &c.spec_image,
        LogOrigin::Current { ready: c.ready },
    );
    Some(Finding {
        diagnosis: Some(d.clone()),
        ..f.finding(Severity::Error, message, hint)
    })
}

fn image_unpullable(f: &ContainerFacts) -> Option<Finding> {
    let c = f.container;
    let reason = c.reason.as_deref().filter(|r| {
        matches!(
            *r,
            "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull"
        )
    })?;
    Some(f.finding(
        Severity::Error,
        format!("container {} cannot pull image {} ({reason})", c.name, c.image),
        format!(
            "check that the tag exists in the registry (pull-request images are often cleaned up) and that the pull secret works; {}",
            f.events_hint()
        ),
    ))
}

fn not_creatable(f: &ContainerFacts) -> Option<Finding> {
    let c = f.container;
    let reason = c
        .reason
        .as_deref()
        .filter(|r| matches!(*r, "CreateContainerConfigError" | "CreateContainerError"))?;
    Some(f.finding(
        Severity::Error,
        format!(
            "container {} cannot be created ({reason}): {}",
            c.name,
            c.message.as_deref().unwrap_or_default()
        ),
        "a Secret or ConfigMap the pod refers to is probably missing".into(),
    ))
}

fn oom_killed(f: &ContainerFacts) -> Option<Finding> {
    let c = f.container;
    if !c.has_previous_run() || c.last_termination_reason.as_deref() != Some("OOMKilled") {
        return None;
    }
    let limit = c
        .memory_limit
        .as_ref()
        .map(|l| format!(" (limit {l})"))
        .unwrap_or_default();
    Some(f.finding(
        Severity::Warning,
        format!(
            "container {} was OOMKilled{limit} ({}{})",
            c.name,
            restarts(c.restarts),
            f.last_restart()
        ),
        "raise the container's memory limit, or NODE_OPTIONS=--max-old-space-size below it".into(),
    ))
}

fn restarted_recently(f: &ContainerFacts) -> Option<Finding> {
    let c = f.container;
    let recent = c
        .last_finished_at
        .is_some_and(|t| f.now.as_second() - t.as_second() < RECENT_RESTART_SECONDS);
    if !c.has_previous_run() || !recent {
        return None;
    }
    let (message_tail, hint) = match &f.diagnosis {
        Some(d) => (
            format!(": {}", d.summary()),
            d.hint(&f.pod.name, &c.name, &c.spec_image, LogOrigin::Previous),
        ),
        None => (
            String::new(),
            format!(
                "read why: `kubectl logs {} -c {} --previous`",
                f.pod.name, c.name
            ),
        ),
    };
    Some(Finding {
        diagnosis: f.diagnosis.clone(),
        ..f.finding(
            Severity::Warning,
            format!(
                "container {} restarted ({}{}){message_tail}",
                c.name,
                restarts(c.restarts),
                f.last_restart()
            ),
            hint,
        )
    })
}

fn not_ready(p: &PodView, object: &str) -> Option<Finding> {
    if p.is_ready() {
        return None;
    }
    let message = if p.phase == "Pending" {
        format!("pod is {} and not scheduled or started yet", p.status)
    } else {
        format!("pod is {} but not ready ({})", p.status, p.ready)
    };
    Some(Finding {
        severity: Severity::Warning,
        object: object.to_string(),
        message,
        hint: Some(format!("see `kubectl backstage events --for {object}`")),
        diagnosis: None,
    })
}

fn restarts(count: i32) -> String {
    if count == 1 {
        "1 restart".to_string()
    } else {
        format!("{count} restarts")
    }
}

/// The whole picture that `health` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub kind: &'static str,
    pub context: String,
    pub namespace: String,
    pub healthy: bool,
    /// Every rollout complete and every pod ready (what `--wait` waits for).
    pub rolled_out: bool,
    pub workloads: Vec<WorkloadView>,
    pub pods: Vec<PodView>,
    pub findings: Vec<Finding>,
    /// Who in Flux manages the namespace's Deployments; `null` when none carries Flux labels.
    pub flux: Option<FluxReport>,
    #[serde(skip)]
    pub now: Timestamp,
}

impl HealthReport {
    pub fn build(
        context: String,
        namespace: String,
        mut pods: Vec<PodView>,
        mut workloads: Vec<WorkloadView>,
        diagnoses: &LogDiagnoses,
        now: Timestamp,
    ) -> HealthReport {
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        workloads.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        let findings = findings(&pods, &workloads, diagnoses, now);
        let rolled_out = workloads.iter().all(|w| w.rollout_complete)
            && pods
                .iter()
                .filter(|p| !p.terminating)
                .all(PodView::is_ready);
        let healthy = findings.iter().all(|f| f.severity == Severity::Info);
        HealthReport {
            kind: "HealthReport",
            context,
            namespace,
            healthy,
            rolled_out,
            workloads,
            pods,
            findings,
            flux: None,
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn deployment(yaml: &str) -> WorkloadView {
        WorkloadView::from_deployment(&serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn deployment_rollout_states() {
        let rolling = deployment(
            "metadata: {name: backstage, generation: 7}\nspec: {replicas: 2, selector: {}, template: {spec: {containers: [{name: b, image: 'r/b:prod-new'}]}}}\nstatus: {observedGeneration: 7, replicas: 3, updatedReplicas: 1, readyReplicas: 2, availableReplicas: 2}\n",
        );
        assert!(!rolling.rollout_complete);
        assert_eq!(
            rolling.rollout_message.as_deref(),
            Some("1 of 2 new replicas have been updated")
        );
        assert_eq!(rolling.image_tag, "prod-new");

        let done = deployment(
            "metadata: {name: b, generation: 2}\nspec: {replicas: 2, selector: {}, template: {}}\nstatus: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2}\n",
        );
        assert!(done.rollout_complete);
        let stale = deployment(
            "metadata: {name: b, generation: 3}\nspec: {replicas: 2, selector: {}, template: {}}\nstatus: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2}\n",
        );
        assert!(!stale.rollout_complete);
        let deadline = deployment(
            "metadata: {name: b, generation: 2}\nspec: {replicas: 1, selector: {}, template: {}}\nstatus: {observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 1, conditions: [{type: Progressing, status: 'False', reason: ProgressDeadlineExceeded}]}\n",
        );
        let f = check_workload(&deadline).unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.message,
            "rollout not complete: the rollout exceeded its progress deadline (image latest)"
        );
    }

    #[test]
    fn crash_loop_with_diagnosis_is_an_error_with_the_db_hint_and_sorted_first() {
        let crashing: Pod = serde_norway::from_str(r#"
metadata: {name: backstage-new}
spec: {containers: [{name: backstage, image: 'r/b:prod-new'}]}
status: {phase: Running, containerStatuses: [{name: backstage, image: 'r/b:prod-new', imageID: "", ready: false, restartCount: 5,
  state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {exitCode: 1, reason: Error, finishedAt: "2026-11-22T11:59:00Z"}}}]}
"#).unwrap();
        let pending: Pod = serde_norway::from_str("metadata: {name: backstage-pending}\nspec: {containers: [{name: b}]}\nstatus: {phase: Pending}\n").unwrap();
        let pods = vec![PodView::from_pod(&pending), PodView::from_pod(&crashing)];
        let mut diagnoses = LogDiagnoses::default();
        diagnoses.previous.insert(
            ("backstage-new".into(), "backstage".into()),
            Some(StartupFailure::CorruptMigrationDirectory {
                plugin: Some("catalog".into()),
                missing_files: vec!["2_b.js".into()],
            }),
        );
        let found = findings(&pods, &[], &diagnoses, now());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].severity, Severity::Error);
        assert_eq!(found[0].object, "pod/backstage-new");
        assert_eq!(
            found[0].message,
            "container backstage is in CrashLoopBackOff (5 restarts, last 60s ago): the migration directory of plugin catalog is corrupt: the database has migrations this image lacks (2_b.js)"
        );
        assert!(
            found[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("kubectl backstage db rollback --plugin catalog")
        );
        assert_eq!(found[1].severity, Severity::Warning);
        assert_eq!(
            found[1].message,
            "pod is Pending and not scheduled or started yet"
        );
    }

    #[test]
    fn one_containers_crash_does_not_hide_anothers_oom_kill() {
        let pod: Pod = serde_norway::from_str(r#"
metadata: {name: backstage-two}
spec: {containers: [{name: backstage, image: 'r/b:prod-new'},
                    {name: sidecar, image: 'r/s:1', resources: {limits: {memory: 256Mi}}}]}
status: {phase: Running, containerStatuses: [
  {name: backstage, image: 'r/b:prod-new', imageID: "", ready: false, restartCount: 4,
   state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {exitCode: 1, reason: Error, finishedAt: "2026-11-22T11:58:00Z"}}},
  {name: sidecar, image: 'r/s:1', imageID: "", ready: true, restartCount: 2,
   state: {running: {}}, lastState: {terminated: {exitCode: 137, reason: OOMKilled, finishedAt: "2026-11-22T11:30:00Z"}}}]}
"#).unwrap();
        let mut diagnoses = LogDiagnoses::default();
        diagnoses.previous.insert(
            ("backstage-two".into(), "backstage".into()),
            Some(StartupFailure::CorruptMigrationDirectory {
                plugin: Some("catalog".into()),
                missing_files: vec!["2_b.js".into()],
            }),
        );
        let found = findings(&[PodView::from_pod(&pod)], &[], &diagnoses, now());
        let seen: Vec<(Severity, &str, &str)> = found
            .iter()
            .map(|f| (f.severity, f.object.as_str(), f.message.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (
                    Severity::Error,
                    "pod/backstage-two",
                    "container backstage is in CrashLoopBackOff (4 restarts, last 2m ago): the migration directory of plugin catalog is corrupt: the database has migrations this image lacks (2_b.js)"
                ),
                (
                    Severity::Warning,
                    "pod/backstage-two",
                    "container sidecar was OOMKilled (limit 256Mi) (2 restarts, last 30m ago)"
                ),
            ]
        );
        assert!(found[0].diagnosis.is_some());
        assert!(found[1].diagnosis.is_none());
    }

    #[test]
    fn within_one_container_the_current_crash_hides_the_earlier_oom_kill() {
        let pod: Pod = serde_norway::from_str(r#"
metadata: {name: backstage-one}
spec: {containers: [{name: backstage, image: 'r/b:1'}]}
status: {phase: Running, containerStatuses: [
  {name: backstage, image: 'r/b:1', imageID: "", ready: false, restartCount: 3,
   state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {exitCode: 137, reason: OOMKilled, finishedAt: "2026-11-22T11:59:00Z"}}}]}
"#).unwrap();
        let found = findings(
            &[PodView::from_pod(&pod)],
            &[],
            &LogDiagnoses::default(),
            now(),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message,
            "container backstage is in CrashLoopBackOff (3 restarts, last 60s ago)"
        );
        assert_eq!(
            found[0].hint.as_deref(),
            Some("read why it crashed: `kubectl logs backstage-one -c backstage --previous`")
        );
    }

    #[test]
    fn a_pod_not_ready_with_only_a_warning_gets_its_own_finding() {
        let pod: Pod = serde_norway::from_str(r#"
metadata: {name: backstage-slow}
spec: {containers: [{name: backstage, image: 'r/b:1'}]}
status: {phase: Running, containerStatuses: [
  {name: backstage, image: 'r/b:1', imageID: "", ready: false, restartCount: 1,
   state: {running: {}}, lastState: {terminated: {exitCode: 137, reason: OOMKilled, finishedAt: "2026-11-22T11:59:00Z"}}}]}
"#).unwrap();
        let found = findings(
            &[PodView::from_pod(&pod)],
            &[],
            &LogDiagnoses::default(),
            now(),
        );
        let messages: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "container backstage was OOMKilled (1 restart, last 60s ago)",
                "pod is Running but not ready (0/1)"
            ]
        );
    }

    fn running_backend(name: &str, ready: bool) -> PodView {
        let pod: Pod = serde_norway::from_str(&format!(
            r#"
metadata: {{name: {name}, labels: {{app.kubernetes.io/name: backstage}},
  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: rs, uid: u, controller: true}}]}}
spec: {{containers: [{{name: backstage, image: 'r/b:1',
  readinessProbe: {{httpGet: {{path: /.backstage/health/v1/readiness, port: 7007}}}}}}]}}
status: {{phase: Running, containerStatuses: [
  {{name: backstage, image: 'r/b:1', imageID: "", ready: {ready}, restartCount: 0,
   state: {{running: {{startedAt: "2026-11-22T11:50:00Z"}}}}}}]}}
"#
        ))
        .unwrap();
        PodView::from_pod(&pod)
    }

    #[test]
    fn a_plugin_that_failed_to_start_is_an_error_whether_the_pod_is_ready_or_not() {
        let stuck = running_backend("backstage-stuck", false);
        let degraded = running_backend("backstage-degraded", true);
        assert!(
            stuck.containers[0].backend && stuck.containers[0].current_log_worth_reading(&stuck)
        );
        assert_eq!(
            stuck.containers[0].started_at,
            Some("2026-11-22T11:50:00Z".parse().unwrap())
        );
        let mut diagnoses = LogDiagnoses::default();
        diagnoses.current.insert(
            ("backstage-stuck".into(), "backstage".into()),
            Some(StartupFailure::CorruptMigrationDirectory {
                plugin: Some("catalog".into()),
                missing_files: vec!["2_b.js".into()],
            }),
        );
        diagnoses.current.insert(
            ("backstage-degraded".into(), "backstage".into()),
            Some(StartupFailure::MigrationLocked {
                plugin: None,
                table: Some("backstage_backend_tasks__knex_migrations".into()),
            }),
        );
        let found = findings(&[degraded, stuck], &[], &diagnoses, now());
        let seen: Vec<(Severity, &str, &str)> = found
            .iter()
            .map(|f| (f.severity, f.object.as_str(), f.message.as_str()))
            .collect();
        // The stuck pod gets no extra "not ready" warning: the error says why.
        assert_eq!(
            seen,
            vec![
                (
                    Severity::Error,
                    "pod/backstage-degraded",
                    "container backstage is ready, but its log shows a start-up failure: the Knex migration lock of the scheduler's table backstage_backend_tasks__knex_migrations is held"
                ),
                (
                    Severity::Error,
                    "pod/backstage-stuck",
                    "container backstage is running but not ready, and will not become ready: the migration directory of plugin catalog is corrupt: the database has migrations this image lacks (2_b.js)"
                ),
            ]
        );
        assert_eq!(
            found[1].hint.as_deref(),
            Some(
                "the database is ahead of this image: see what must be undone with `kubectl backstage db plan --to pod:backstage-stuck`, undo it with the newer code: `kubectl backstage db rollback --plugin catalog --to <last migration this image has>`, then restart the pod (the backend does not retry): `kubectl delete pod backstage-stuck`"
            )
        );
    }

    #[test]
    fn only_backend_containers_outside_statefulsets_have_their_current_log_read() {
        let pod = |yaml: &str| PodView::from_pod(&serde_norway::from_str::<Pod>(yaml).unwrap());
        let db = pod(
            "metadata: {name: pg-0, labels: {app.kubernetes.io/name: backstage}, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: pg, uid: u, controller: true}]}\nspec: {containers: [{name: pg, readinessProbe: {httpGet: {path: /.backstage/health/v1/readiness, port: 1}}}]}\nstatus: {phase: Running, containerStatuses: [{name: pg, image: i, imageID: '', ready: true, restartCount: 0, state: {running: {}}}]}\n",
        );
        assert!(!db.containers[0].backend);
        let other = pod(
            "metadata: {name: load-1, labels: {app.kubernetes.io/name: load}}\nspec: {containers: [{name: load}]}\nstatus: {phase: Running, containerStatuses: [{name: load, image: i, imageID: '', ready: true, restartCount: 0, state: {running: {}}}]}\n",
        );
        assert!(!other.containers[0].backend);
        let labelled = pod(
            "metadata: {name: b-1, labels: {app.kubernetes.io/name: backstage}}\nspec: {containers: [{name: backstage}, {name: proxy}]}\nstatus: {phase: Running, containerStatuses: [{name: backstage, image: i, imageID: '', ready: true, restartCount: 0, state: {running: {}}}, {name: proxy, image: i, imageID: '', ready: true, restartCount: 0, state: {running: {}}}]}\n",
        );
        assert_eq!(
            labelled
                .containers
                .iter()
                .map(|c| c.backend)
                .collect::<Vec<_>>(),
            vec![true, false]
        );
        let waiting = pod(
            "metadata: {name: b-2, labels: {app.kubernetes.io/name: backstage}}\nspec: {containers: [{name: backstage}]}\nstatus: {phase: Running, containerStatuses: [{name: backstage, image: i, imageID: '', ready: false, restartCount: 3, state: {waiting: {reason: CrashLoopBackOff}}}]}\n",
        );
        assert!(!waiting.containers[0].current_log_worth_reading(&waiting));
    }

    #[test]
    fn healthy_namespace_has_no_findings() {
        let ok: Pod = serde_norway::from_str("metadata: {name: a}\nspec: {containers: [{name: b}]}\nstatus: {phase: Running, containerStatuses: [{name: b, image: i, imageID: '', ready: true, restartCount: 0, state: {running: {}}}]}\n").unwrap();
        let report = HealthReport::build(
            "c".into(),
            "ns".into(),
            vec![PodView::from_pod(&ok)],
            vec![],
            &LogDiagnoses::default(),
            now(),
        );
        assert!(report.healthy && report.rolled_out);
        assert!(report.findings.is_empty());
    }
}
