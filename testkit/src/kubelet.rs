//! Pods' life after creation: the API server's defaults for a new pod, a simulated scheduler and
//! kubelet that "pull" images from a registry of registered images, start containers through a
//! pluggable [`PodRuntime`], and write pod status and events as the real ones word them
//! (Scheduled, Pulling, Pulled, Created, Started; ErrImagePull, ImagePullBackOff; CrashLoopBackOff;
//! DeadlineExceeded). Deleting a pod stops what the runtime started.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{Shared, lock};
use crate::time::now_rfc3339;

/// The node every simulated pod is scheduled to.
pub const NODE: &str = "fake-node-1";
const NODE_IP: &str = "10.224.0.4";

/// Starts and stops pods' main containers for the simulated kubelet, e.g. a real process per pod.
pub trait PodRuntime: Send + Sync + 'static {
    /// Starts the pod's main container; blocking (called off the async runtime). Returns when it is
    /// ready or has crashed.
    fn start(&self, pod: &PodStart) -> PodOutcome;
    /// The pod was deleted (or ran out of its `activeDeadlineSeconds`): stop what start() started.
    fn stop(&self, namespace: &str, pod: &str);
}

/// What [`PodRuntime::start`] is given: one main container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodStart {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub image: String,
    /// The registered image's root folder (see `FakeApiServer::register_image`).
    pub root: Option<PathBuf>,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    /// Literal `value`s of the container's env only (no `valueFrom`).
    pub env: Vec<(String, String)>,
}

/// How a container's start ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodOutcome {
    Ready {
        /// Pod port → where a port-forward to it goes.
        ports: Vec<(u16, SocketAddr)>,
        /// Served as the container's current log (read at each request).
        log_file: Option<PathBuf>,
    },
    /// The container exited: state CrashLoopBackOff, restartCount 1, `log` served as the previous log.
    Crashed { exit_code: i32, log: String },
}

/// The runtime used when a test sets none: every container is ready at once, with no ports.
struct NoopRuntime;

impl PodRuntime for NoopRuntime {
    fn start(&self, _pod: &PodStart) -> PodOutcome {
        PodOutcome::Ready {
            ports: Vec::new(),
            log_file: None,
        }
    }
    fn stop(&self, _namespace: &str, _pod: &str) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// runtime.start() is running; a deletion must wait for it and stop after.
    Starting,
    Started,
    /// Deleted while starting: stop once start returns.
    DeletedWhileStarting,
}

/// The simulated kubelet's state: the "registry", pull delays, the runtime and what it started.
pub(crate) struct Kubelet {
    images: HashMap<String, PathBuf>,
    pull_delays: HashMap<String, Duration>,
    /// How long a failed pull shows ErrImagePull before ImagePullBackOff.
    pull_backoff: Duration,
    runtime: Arc<dyn PodRuntime>,
    /// Images already on the node (a second pod with IfNotPresent does not pull again).
    pulled: HashSet<String>,
    runs: HashMap<(String, String), Run>,
    log_files: HashMap<(String, String, String), PathBuf>,
}

impl Default for Kubelet {
    fn default() -> Self {
        Kubelet {
            images: HashMap::new(),
            pull_delays: HashMap::new(),
            pull_backoff: Duration::from_millis(300),
            runtime: Arc::new(NoopRuntime),
            pulled: HashSet::new(),
            runs: HashMap::new(),
            log_files: HashMap::new(),
        }
    }
}

impl Kubelet {
    pub fn register_image(&mut self, reference: &str, root: PathBuf) {
        self.images.insert(reference.to_string(), root);
    }

    pub fn set_pull_delay(&mut self, reference: &str, delay: Duration) {
        self.pull_delays.insert(reference.to_string(), delay);
    }

    pub fn set_runtime(&mut self, runtime: Arc<dyn PodRuntime>) {
        self.runtime = runtime;
    }

    pub fn log_file(&self, ns: &str, pod: &str, container: &str) -> Option<PathBuf> {
        self.log_files
            .get(&(ns.to_string(), pod.to_string(), container.to_string()))
            .cloned()
    }
}

/// `nginx:1` → `docker.io/library/nginx:1`, as containerd names images.
pub(crate) fn normalize(reference: &str) -> String {
    let first = reference.split('/').next().unwrap_or("");
    let has_registry = reference.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        reference.to_string()
    } else if reference.contains('/') {
        format!("docker.io/{reference}")
    } else {
        format!("docker.io/library/{reference}")
    }
}

/// The repository of a reference (no tag, no digest).
fn repository(reference: &str) -> String {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
        _ => no_digest.to_string(),
    }
}

pub(crate) fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The imageID the kubelet reports for a pulled image: `repo@sha256:<digest>`, the digest derived
/// from the reference (the same reference always has the same digest).
pub fn image_id(reference: &str) -> String {
    let n = normalize(reference);
    format!("{}@sha256:{}", repository(&n), sha256_hex(&n))
}

/// The defaults the API server fills into a created pod, and the status it starts with.
pub(crate) fn default_pod(pod: &mut Value) {
    let spec = &mut pod["spec"];
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("serviceAccountName", json!("default")),
        ("serviceAccount", json!("default")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
        ("priority", json!(0)),
    ] {
        if spec[k].is_null() {
            spec[k] = v;
        }
    }
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec[list].as_array_mut() {
            for c in cs {
                let image = c["image"].as_str().unwrap_or("").to_string();
                if c["imagePullPolicy"].is_null() {
                    let latest = image.ends_with(":latest")
                        || !image.rsplit('/').next().unwrap_or("").contains(':')
                            && !image.contains('@');
                    c["imagePullPolicy"] = json!(if latest { "Always" } else { "IfNotPresent" });
                }
                if c["terminationMessagePath"].is_null() {
                    c["terminationMessagePath"] = json!("/dev/termination-log");
                }
                if c["terminationMessagePolicy"].is_null() {
                    c["terminationMessagePolicy"] = json!("File");
                }
                if c["resources"].is_null() {
                    c["resources"] = json!({});
                }
            }
        }
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
}

/// Whether the pod with this uid is still there; its current object.
fn current(shared: &Shared, ns: &str, name: &str, uid: &str) -> Option<Value> {
    shared
        .store()
        .get("pods", ns, name)
        .filter(|p| p["metadata"]["uid"] == uid)
}

/// Changes the pod (if it is still the same pod) and stores it; false when it is gone.
fn update_pod(
    shared: &Shared,
    ns: &str,
    name: &str,
    uid: &str,
    f: impl FnOnce(&mut Value),
) -> bool {
    let mut store = shared.store();
    let Some(mut pod) = store
        .get("pods", ns, name)
        .filter(|p| p["metadata"]["uid"] == uid)
    else {
        return false;
    };
    f(&mut pod);
    store.apply(pod).is_ok()
}

/// Records an event about a pod as the kubelet (or the scheduler) does; a repeat of the same reason
/// and message on the same object bumps `count` and `lastTimestamp`.
pub(crate) fn record_event(
    shared: &Shared,
    pod: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    field_path: Option<&str>,
) {
    let component = if reason == "Scheduled" {
        "default-scheduler"
    } else {
        "kubelet"
    };
    record(shared, pod, component, kind, reason, message, field_path);
}

/// Records an event about any object from `component` (kubelet, default-scheduler,
/// deployment-controller, replicaset-controller), worded and shaped as that component writes it.
pub(crate) fn record(
    shared: &Shared,
    obj: &Value,
    component: &str,
    kind: &str,
    reason: &str,
    message: &str,
    field_path: Option<&str>,
) {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let uid = obj["metadata"]["uid"].clone();
    let now = now_rfc3339();
    let mut store = shared.store();
    let existing = store.list("events", Some(&ns)).into_iter().find(|(_, e)| {
        e["involvedObject"]["uid"] == uid && e["reason"] == reason && e["message"] == message
    });
    if let Some((_, mut e)) = existing {
        if e["count"].is_number() {
            e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
            e["lastTimestamp"] = json!(now);
            let _ = store.apply(e);
        }
        return;
    }
    let event_name = format!(
        "{name}.{}",
        &sha256_hex(&format!(
            "{name}{reason}{message}{}",
            store.resource_version()
        ))[..16]
    );
    let mut involved = json!({"apiVersion": obj["apiVersion"].as_str().unwrap_or("v1"),
                              "kind": obj["kind"].as_str().unwrap_or("Pod"), "name": name, "namespace": ns,
                              "uid": uid, "resourceVersion": obj["metadata"]["resourceVersion"]});
    if let Some(f) = field_path {
        involved["fieldPath"] = json!(f);
    }
    let event = match component {
        // The scheduler writes events.k8s.io events: eventTime and action, no counts.
        "default-scheduler" => json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": event_name, "namespace": ns},
               "involvedObject": involved, "reason": reason, "message": message, "type": kind,
               "eventTime": format!("{}.000000Z", now.trim_end_matches('Z')), "firstTimestamp": null, "lastTimestamp": null,
               "action": "Binding", "reportingComponent": "default-scheduler",
               "reportingInstance": format!("default-scheduler-{NODE}"), "source": {}}),
        "kubelet" => json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": event_name, "namespace": ns},
               "involvedObject": involved, "reason": reason, "message": message, "type": kind,
               "count": 1, "firstTimestamp": now, "lastTimestamp": now, "eventTime": null,
               "reportingComponent": "kubelet", "reportingInstance": NODE,
               "source": {"component": "kubelet", "host": NODE}}),
        other => json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": event_name, "namespace": ns},
               "involvedObject": involved, "reason": reason, "message": message, "type": kind,
               "count": 1, "firstTimestamp": now, "lastTimestamp": now, "eventTime": null,
               "reportingComponent": other, "reportingInstance": "",
               "source": {"component": other}}),
    };
    let _ = store.apply(event);
}

fn containers(pod: &Value, list: &str) -> Vec<Value> {
    pod["spec"][list].as_array().cloned().unwrap_or_default()
}

fn container_id(uid: &str, container: &str) -> String {
    format!("containerd://{}", sha256_hex(&format!("{uid}/{container}")))
}

fn waiting_status(c: &Value, reason: &str, message: Option<&str>) -> Value {
    let mut waiting = json!({"reason": reason});
    if let Some(m) = message {
        waiting["message"] = json!(m);
    }
    json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false,
           "restartCount": 0, "started": false, "state": {"waiting": waiting}})
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" },
                       "lastProbeTime": null, "lastTransitionTime": now_rfc3339()});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// Sets a condition, keeping lastTransitionTime when the status does not change.
fn set_condition(pod: &mut Value, new: Value) {
    let conds = pod["status"]["conditions"].as_array_mut();
    let Some(conds) = conds else {
        pod["status"]["conditions"] = json!([new]);
        return;
    };
    match conds.iter_mut().find(|c| c["type"] == new["type"]) {
        Some(c) => {
            let keep = c["status"] == new["status"];
            let t = c["lastTransitionTime"].clone();
            *c = new;
            if keep {
                c["lastTransitionTime"] = t;
            }
        }
        None => conds.push(new),
    }
}

fn pod_ip(uid: &str) -> String {
    let h = sha256_hex(uid);
    let n = u8::from_str_radix(&h[..2], 16).unwrap_or(7);
    let m = u8::from_str_radix(&h[2..4], 16).unwrap_or(9);
    format!("10.244.{}.{}", n % 4, (m % 250) + 2)
}

fn unready_names(pod: &Value) -> String {
    let names: Vec<String> = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ready"] != true)
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    format!("containers with unready status: [{}]", names.join(" "))
}

/// Starts the simulated life of a just-created pod on the server's runtime.
pub(crate) fn spawn_pod(shared: &Arc<Shared>, pod: &Value) {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    if ns.is_empty() || name.is_empty() || uid.is_empty() {
        return;
    }
    let shared = shared.clone();
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        run_pod(shared, ns, name, uid).await;
    });
}

async fn run_pod(shared: Arc<Shared>, ns: String, name: String, uid: String) {
    // Scheduling.
    let scheduled = update_pod(&shared, &ns, &name, &uid, |p| {
        p["spec"]["nodeName"] = json!(NODE);
        set_condition(p, condition("PodScheduled", true, None, None));
    });
    if !scheduled {
        return;
    }
    let Some(pod) = current(&shared, &ns, &name, &uid) else {
        return;
    };
    record_event(
        &shared,
        &pod,
        "Normal",
        "Scheduled",
        &format!("Successfully assigned {ns}/{name} to {NODE}"),
        None,
    );
    if let Some(secs) = pod["spec"]["activeDeadlineSeconds"].as_u64() {
        let shared = shared.clone();
        let (ns, name, uid) = (ns.clone(), name.clone(), uid.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            deadline_exceeded(&shared, &ns, &name, &uid).await;
        });
    }
    let main = containers(&pod, "containers");
    let init = containers(&pod, "initContainers");
    let started_at = now_rfc3339();
    let ip = pod_ip(&uid);
    update_pod(&shared, &ns, &name, &uid, |p| {
        p["status"]["phase"] = json!("Pending");
        p["status"]["hostIP"] = json!(NODE_IP);
        p["status"]["hostIPs"] = json!([{"ip": NODE_IP}]);
        p["status"]["podIP"] = json!(ip);
        p["status"]["podIPs"] = json!([{"ip": ip}]);
        p["status"]["startTime"] = json!(started_at);
        p["status"]["containerStatuses"] = main
            .iter()
            .map(|c| waiting_status(c, "ContainerCreating", None))
            .collect();
        if !init.is_empty() {
            p["status"]["initContainerStatuses"] = init
                .iter()
                .map(|c| waiting_status(c, "PodInitializing", None))
                .collect();
        }
        set_condition(p, condition("PodReadyToStartContainers", true, None, None));
        set_condition(
            p,
            condition(
                "Initialized",
                init.is_empty(),
                (!init.is_empty()).then_some("ContainersNotInitialized"),
                None,
            ),
        );
        let unready = unready_names(p);
        set_condition(
            p,
            condition("Ready", false, Some("ContainersNotReady"), Some(&unready)),
        );
        set_condition(
            p,
            condition(
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(&unready),
            ),
        );
    });

    // Pull every image, init containers first.
    for c in init.iter().chain(main.iter()) {
        let is_init = init.iter().any(|i| i["name"] == c["name"]);
        let list = if is_init {
            "initContainers"
        } else {
            "containers"
        };
        let cname = c["name"].as_str().unwrap_or("").to_string();
        let image = c["image"].as_str().unwrap_or("").to_string();
        let field = format!("spec.{list}{{{cname}}}");
        let (registered, delay, present) = {
            let k = lock(&shared.kubelet);
            (
                k.images.contains_key(&image),
                k.pull_delays.get(&image).copied(),
                k.pulled.contains(&image),
            )
        };
        let Some(pod) = current(&shared, &ns, &name, &uid) else {
            return;
        };
        let always = c["imagePullPolicy"] == "Always";
        if registered && present && !always && delay.is_none() {
            record_event(
                &shared,
                &pod,
                "Normal",
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
                Some(&field),
            );
            continue;
        }
        record_event(
            &shared,
            &pod,
            "Normal",
            "Pulling",
            &format!("Pulling image \"{image}\""),
            Some(&field),
        );
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let Some(pod) = current(&shared, &ns, &name, &uid) else {
            return;
        };
        if registered {
            lock(&shared.kubelet).pulled.insert(image.clone());
            let took = delay.unwrap_or(Duration::from_millis(812)).as_secs_f64();
            let size =
                40_000_000 + (u64::from_str_radix(&sha256_hex(&image)[..6], 16).unwrap_or(0) * 13);
            record_event(
                &shared,
                &pod,
                "Normal",
                "Pulled",
                &format!(
                    "Successfully pulled image \"{image}\" in {took:.3}s ({took:.3}s including waiting). Image size: {size} bytes."
                ),
                Some(&field),
            );
            continue;
        }
        let n = normalize(&image);
        let error = format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{n}\": failed to resolve reference \"{n}\": {n}: not found"
        );
        let set_waiting = |reason: &str, message: &str| {
            let key = if is_init {
                "initContainerStatuses"
            } else {
                "containerStatuses"
            };
            update_pod(&shared, &ns, &name, &uid, |p| {
                if let Some(cs) = p["status"][key].as_array_mut() {
                    for s in cs.iter_mut().filter(|s| s["name"] == cname.as_str()) {
                        s["state"] = json!({"waiting": {"reason": reason, "message": message}});
                    }
                }
            })
        };
        if !set_waiting("ErrImagePull", &error) {
            return;
        }
        record_event(
            &shared,
            &pod,
            "Warning",
            "Failed",
            &format!("Failed to pull image \"{image}\": {error}"),
            Some(&field),
        );
        record_event(
            &shared,
            &pod,
            "Warning",
            "Failed",
            "Error: ErrImagePull",
            Some(&field),
        );
        let backoff = lock(&shared.kubelet).pull_backoff;
        tokio::time::sleep(backoff).await;
        if !set_waiting(
            "ImagePullBackOff",
            &format!("Back-off pulling image \"{image}\": ErrImagePull: {error}"),
        ) {
            return;
        }
        let Some(pod) = current(&shared, &ns, &name, &uid) else {
            return;
        };
        record_event(
            &shared,
            &pod,
            "Normal",
            "BackOff",
            &format!("Back-off pulling image \"{image}\""),
            Some(&field),
        );
        record_event(
            &shared,
            &pod,
            "Warning",
            "Failed",
            "Error: ImagePullBackOff",
            Some(&field),
        );
        // The kubelet would retry with a growing back-off; the fake stays here.
        return;
    }

    // Init containers run to completion at once.
    if !init.is_empty() {
        update_pod(&shared, &ns, &name, &uid, |p| {
            let now = now_rfc3339();
            p["status"]["initContainerStatuses"] = init
                .iter()
                .map(|c| {
                    let img = c["image"].as_str().unwrap_or("");
                    json!({"name": c["name"], "image": normalize(img), "imageID": image_id(img),
                           "containerID": container_id(&uid, c["name"].as_str().unwrap_or("")),
                           "ready": true, "restartCount": 0, "started": false,
                           "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now,
                                                     "containerID": container_id(&uid, c["name"].as_str().unwrap_or(""))}}})
                })
                .collect();
            set_condition(p, condition("Initialized", true, None, None));
        });
    }

    // Start the main containers through the runtime.
    let (runtime, roots) = {
        let mut k = lock(&shared.kubelet);
        k.runs.insert((ns.clone(), name.clone()), Run::Starting);
        (k.runtime.clone(), k.images.clone())
    };
    let mut outcomes = Vec::new();
    for c in &main {
        let cname = c["name"].as_str().unwrap_or("").to_string();
        let field = format!("spec.containers{{{cname}}}");
        let Some(pod) = current(&shared, &ns, &name, &uid) else {
            break;
        };
        record_event(
            &shared,
            &pod,
            "Normal",
            "Created",
            &format!("Created container: {cname}"),
            Some(&field),
        );
        record_event(
            &shared,
            &pod,
            "Normal",
            "Started",
            &format!("Started container {cname}"),
            Some(&field),
        );
        let image = c["image"].as_str().unwrap_or("").to_string();
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        };
        let start = PodStart {
            namespace: ns.clone(),
            pod: name.clone(),
            container: cname.clone(),
            root: roots.get(&image).cloned(),
            image,
            command: strings(&c["command"]),
            args: strings(&c["args"]),
            env: c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?.to_string(),
                        e["value"].as_str()?.to_string(),
                    ))
                })
                .collect(),
        };
        let rt = runtime.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let o = rt.start(&start);
            (start, o)
        })
        .await;
        let Ok((start, outcome)) = outcome else { break };
        outcomes.push((start, outcome));
    }
    let deleted = {
        let mut k = lock(&shared.kubelet);
        let key = (ns.clone(), name.clone());
        let deleted = k.runs.get(&key) == Some(&Run::DeletedWhileStarting)
            || current(&shared, &ns, &name, &uid).is_none();
        if deleted {
            k.runs.remove(&key);
        } else {
            k.runs.insert(key, Run::Started);
        }
        deleted
    };
    if deleted {
        let rt = runtime.clone();
        let (n2, p2) = (ns.clone(), name.clone());
        let _ = tokio::task::spawn_blocking(move || rt.stop(&n2, &p2)).await;
        return;
    }
    let restarts =
        current(&shared, &ns, &name, &uid).is_some_and(|p| p["spec"]["restartPolicy"] != "Never");
    // Where exec and port-forward reach the pod; the current log.
    {
        let mut extras = shared.extras();
        for (start, outcome) in &outcomes {
            if let Some(root) = &start.root {
                extras.set_pod_root(&name, root.clone());
            }
            if let PodOutcome::Ready { ports, .. } = outcome {
                for (port, addr) in ports {
                    extras.set_pod_port(&name, *port, *addr);
                }
            }
            if let PodOutcome::Crashed { log, .. } = outcome {
                // With restartPolicy Never the exited container is the current one.
                extras.set_log(&ns, &name, &start.container, restarts, log);
            }
        }
    }
    {
        let mut k = lock(&shared.kubelet);
        for (start, outcome) in &outcomes {
            if let PodOutcome::Ready {
                log_file: Some(f), ..
            } = outcome
            {
                k.log_files.insert(
                    (ns.clone(), name.clone(), start.container.clone()),
                    f.clone(),
                );
            }
        }
    }
    let now = now_rfc3339();
    let mut crashed = Vec::new();
    update_pod(&shared, &ns, &name, &uid, |p| {
        let statuses: Vec<Value> = outcomes
            .iter()
            .map(|(start, outcome)| {
                let cid = container_id(&uid, &start.container);
                let base = json!({"name": start.container, "image": normalize(&start.image), "imageID": image_id(&start.image),
                                  "containerID": cid});
                let mut s = base;
                match outcome {
                    PodOutcome::Ready { .. } => {
                        s["ready"] = json!(true);
                        s["started"] = json!(true);
                        s["restartCount"] = json!(0);
                        s["state"] = json!({"running": {"startedAt": now}});
                        s["lastState"] = json!({});
                    }
                    PodOutcome::Crashed { exit_code, .. } if !restarts => {
                        s["ready"] = json!(false);
                        s["started"] = json!(false);
                        s["restartCount"] = json!(0);
                        s["state"] = json!({"terminated": {"exitCode": exit_code, "reason": "Error",
                            "startedAt": now, "finishedAt": now, "containerID": cid}});
                        s["lastState"] = json!({});
                    }
                    PodOutcome::Crashed { exit_code, .. } => {
                        crashed.push(start.container.clone());
                        s["ready"] = json!(false);
                        s["started"] = json!(false);
                        s["restartCount"] = json!(1);
                        s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                            "message": format!("back-off 10s restarting failed container={} pod={}_{}({})", start.container, name, ns, uid)}});
                        s["lastState"] = json!({"terminated": {"exitCode": exit_code, "reason": "Error",
                            "startedAt": now, "finishedAt": now, "containerID": cid}});
                    }
                }
                s
            })
            .collect();
        p["status"]["containerStatuses"] = json!(statuses);
        let any_crashed = outcomes
            .iter()
            .any(|(_, o)| matches!(o, PodOutcome::Crashed { .. }));
        p["status"]["phase"] = json!(if any_crashed && !restarts {
            "Failed"
        } else {
            "Running"
        });
        let all_ready = outcomes
            .iter()
            .all(|(_, o)| matches!(o, PodOutcome::Ready { .. }));
        if all_ready {
            set_condition(p, condition("Ready", true, None, None));
            set_condition(p, condition("ContainersReady", true, None, None));
        } else {
            let unready = unready_names(p);
            set_condition(
                p,
                condition("Ready", false, Some("ContainersNotReady"), Some(&unready)),
            );
            set_condition(
                p,
                condition(
                    "ContainersReady",
                    false,
                    Some("ContainersNotReady"),
                    Some(&unready),
                ),
            );
        }
    });
    if let Some(pod) = current(&shared, &ns, &name, &uid) {
        for c in crashed {
            record_event(
                &shared,
                &pod,
                "Warning",
                "BackOff",
                &format!("Back-off restarting failed container {c} in pod {name}_{ns}({uid})"),
                Some(&format!("spec.containers{{{c}}}")),
            );
        }
    }
}

async fn deadline_exceeded(shared: &Arc<Shared>, ns: &str, name: &str, uid: &str) {
    let Some(pod) = current(shared, ns, name, uid) else {
        return;
    };
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Failed" | "Succeeded")
    ) {
        return;
    }
    update_pod(shared, ns, name, uid, |p| {
        p["status"]["phase"] = json!("Failed");
        p["status"]["reason"] = json!("DeadlineExceeded");
        p["status"]["message"] =
            json!("Pod was active on the node longer than the specified deadline");
        // The status keeps the containers' last state (only readiness goes), so kubectl shows the
        // pod's reason, DeadlineExceeded, as it does for such pods in a real cluster.
        if let Some(cs) = p["status"]["containerStatuses"].as_array_mut() {
            for c in cs {
                c["ready"] = json!(false);
            }
        }
        set_condition(p, condition("Ready", false, Some("PodFailed"), None));
        set_condition(
            p,
            condition("ContainersReady", false, Some("PodFailed"), None),
        );
        set_condition(p, condition("PodReadyToStartContainers", false, None, None));
    });
    record_event(
        shared,
        &pod,
        "Normal",
        "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline",
        None,
    );
    stop_pod(shared, ns, name).await;
}

/// Stops what the runtime started for a pod (now, or once its start returns).
async fn stop_pod(shared: &Arc<Shared>, ns: &str, name: &str) {
    let key = (ns.to_string(), name.to_string());
    let runtime = {
        let mut k = lock(&shared.kubelet);
        match k.runs.get(&key).copied() {
            Some(Run::Starting) => {
                k.runs.insert(key, Run::DeletedWhileStarting);
                return;
            }
            Some(Run::Started) => {
                k.runs.remove(&key);
                k.log_files.retain(|(n, p, _), _| n != ns || p != name);
                Some(k.runtime.clone())
            }
            _ => None,
        }
    };
    if let Some(rt) = runtime {
        let (n, p) = (ns.to_string(), name.to_string());
        let _ = tokio::task::spawn_blocking(move || rt.stop(&n, &p)).await;
    }
}

/// Follows the store: a deleted pod's runtime is stopped and its exec root and ports forgotten.
pub(crate) async fn watch_deletions(
    shared: Arc<Shared>,
    mut rx: tokio::sync::broadcast::Receiver<crate::store::Change>,
) {
    loop {
        let change = match rx.recv().await {
            Ok(c) => c,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        if change.kind != "DELETED" || change.storage != "pods" {
            continue;
        }
        let ns = change.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = change.object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let managed = lock(&shared.kubelet)
            .runs
            .contains_key(&(ns.clone(), name.clone()));
        if managed {
            shared.extras().forget_pod(&name);
            let shared = shared.clone();
            tokio::spawn(async move { stop_pod(&shared, &ns, &name).await });
        }
    }
}
