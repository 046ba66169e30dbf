//! The pod runtime of the guided upgrade / rollback tests: the fake API server's rollout simulation
//! asks it to start and stop each pod's container, and it runs a REAL Backstage backend per pod from
//! the `node_modules` tree of that pod's image (`registry.test/backstage:1.55.0` → the 1.55.0 tree of
//! `backstage.rs`, `…:1.54.0` → the 1.54.0 tree), against the test PostgreSQL with one database prefix
//! shared by every pod of the environment, so an upgrade and then a downgrade meet the same
//! databases, as real pods do.
//!
//! - A container whose command was replaced (the preflight pod that only lists files) is not a
//!   backend: it is Ready at once, with no ports.
//! - A backend is **Ready** when its readiness endpoint answers 200; its log file is handed back.
//! - It is **Crashed** when node exits (its exit code and log), or when it logs
//!   `BackendStartupError`: Backstage then says it is "shutting down the process" but, measured with
//!   1.54.0 on a database 1.55.0 migrated, node keeps running (liveness 200, readiness 503) for minutes;
//!   the runtime stops it there, as a kubelet restarting the container would, and reports exit code 1
//!   with the backend's own log (the real "The migration directory is corrupt, the following files
//!   are missing: …" text).
//!
//! It implements the fake API server's `PodRuntime` (testkit's simulated kubelet calls it for every
//! created pod). [`DeploymentController`] stands in for the Deployment controller until the fake has
//! its own rollout simulation: on a new pod template it creates a ReplicaSet and its pods (through the
//! API, so the kubelet starts them), removes the old pods once the new ones are ready, and writes the
//! Deployment's status as the real controller does.
//!
//! Needs `backstage.rs` and `postgres.rs` as sibling modules.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backstage_testkit::{PodOutcome, PodRuntime, PodStart};

use crate::backstage::{self, Backend, BackendOptions};
use crate::postgres::{literal, plugin_prefix};

/// The image of release 1.55.0 in the tests' registry.
pub const IMAGE_1_55_0: &str = "registry.test/backstage:1.55.0";
/// The image of release 1.54.0.
pub const IMAGE_1_54_0: &str = "registry.test/backstage:1.54.0";
/// The port the backend container declares (Backstage's default).
pub const CONTAINER_PORT: u16 = 7007;
/// How long a backend may take to become ready or to fail before the runtime gives up on it.
const START_DEADLINE: Duration = Duration::from_secs(180);

/// The `node_modules` tree that stands for `image`, if the tests know it.
pub fn tree_of_image(image: &str) -> Option<PathBuf> {
    match image {
        IMAGE_1_55_0 => Some(backstage::install().to_path_buf()),
        IMAGE_1_54_0 => Some(backstage::install_older().to_path_buf()),
        _ => None,
    }
}

/// Real Backstage backends, one per started pod, sharing one database prefix.
pub struct BackstageRuntime {
    prefix: String,
    plugins: Option<Vec<&'static str>>,
    running: Mutex<HashMap<(String, String), Backend>>,
    /// Every start, in order: (pod, image, ready?).
    history: Mutex<Vec<(String, String, bool)>>,
}

impl BackstageRuntime {
    /// A runtime with a database prefix of its own (`r<pid>_<n>_plugin_`), every plugin.
    pub fn new() -> BackstageRuntime {
        BackstageRuntime::with_plugins(None)
    }

    /// A runtime whose backends add only `plugins`.
    pub fn with_plugins(plugins: Option<Vec<&'static str>>) -> BackstageRuntime {
        backstage::pg();
        BackstageRuntime {
            prefix: plugin_prefix('r'),
            plugins,
            running: Mutex::new(HashMap::new()),
            history: Mutex::new(Vec::new()),
        }
    }

    /// The database prefix every pod of this environment uses.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The database of `plugin`.
    pub fn database(&self, plugin: &str) -> String {
        format!("{}{plugin}", self.prefix)
    }

    /// The pods running now, sorted.
    pub fn running_pods(&self) -> Vec<String> {
        let mut pods: Vec<String> = self
            .running
            .lock()
            .unwrap()
            .keys()
            .map(|(_, pod)| pod.clone())
            .collect();
        pods.sort();
        pods
    }

    /// Every start so far: pod, image, whether it became ready.
    pub fn history(&self) -> Vec<(String, String, bool)> {
        self.history.lock().unwrap().clone()
    }

    /// The loopback port of a running pod's backend.
    pub fn port_of(&self, pod: &str) -> Option<u16> {
        self.running
            .lock()
            .unwrap()
            .iter()
            .find(|((_, p), _)| p == pod)
            .map(|(_, b)| b.port)
    }

    fn record(&self, pod: &PodStart, ready: bool) {
        self.history
            .lock()
            .unwrap()
            .push((pod.pod.clone(), pod.image.clone(), ready));
    }
}

impl Default for BackstageRuntime {
    fn default() -> Self {
        BackstageRuntime::new()
    }
}

impl PodRuntime for BackstageRuntime {
    fn start(&self, pod: &PodStart) -> PodOutcome {
        if pod.command.as_ref().is_some_and(|c| !c.is_empty()) {
            // A replaced entrypoint (the preflight pod): nothing of Backstage runs.
            self.record(pod, true);
            return PodOutcome::Ready {
                ports: Vec::new(),
                log_file: None,
            };
        }
        let Some(tree) = tree_of_image(&pod.image).or_else(|| pod.root.clone()) else {
            self.record(pod, false);
            return PodOutcome::Crashed {
                exit_code: 127,
                log: format!("the test runtime has no tree for image {}\n", pod.image),
            };
        };
        let mut backend = Backend::prepare(BackendOptions {
            plugins: self.plugins.clone(),
            tree: Some(tree),
            shared_prefix: Some(self.prefix.clone()),
        });
        backend.start();
        let deadline = Instant::now() + START_DEADLINE;
        let outcome = loop {
            if backend.readiness().is_some_and(|(status, _)| status == 200) {
                let addr: SocketAddr = ([127, 0, 0, 1], backend.port).into();
                break PodOutcome::Ready {
                    ports: vec![(CONTAINER_PORT, addr)],
                    log_file: Some(backend.log_path()),
                };
            }
            if let Some(status) = backend.exited() {
                break PodOutcome::Crashed {
                    exit_code: status.code().unwrap_or(137),
                    log: backend.log(),
                };
            }
            if backend.log().contains("BackendStartupError") {
                backend.stop();
                break PodOutcome::Crashed {
                    exit_code: 1,
                    log: backend.log(),
                };
            }
            if Instant::now() > deadline {
                backend.stop();
                break PodOutcome::Crashed {
                    exit_code: 137,
                    log: backend.log(),
                };
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let ready = matches!(outcome, PodOutcome::Ready { .. });
        self.record(pod, ready);
        if ready {
            self.running
                .lock()
                .unwrap()
                .insert((pod.namespace.clone(), pod.pod.clone()), backend);
        }
        outcome
    }

    fn stop(&self, namespace: &str, pod: &str) {
        let backend = self
            .running
            .lock()
            .unwrap()
            .remove(&(namespace.to_string(), pod.to_string()));
        drop(backend);
    }
}

impl Drop for BackstageRuntime {
    fn drop(&mut self) {
        self.running.lock().unwrap().clear();
        // The last owner may be a thread inside an async runtime (the fake's kubelet), where the
        // blocking PostgreSQL client must not run: drop the databases from a thread of their own.
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let pg = backstage::pg();
            if let Ok(mut client) = std::panic::catch_unwind(|| pg.client("postgres")) {
                let rows = client
                    .query(
                        &format!(
                            "SELECT datname FROM pg_database WHERE starts_with(datname, {})",
                            literal(&prefix)
                        ),
                        &[],
                    )
                    .unwrap_or_default();
                for row in rows {
                    let name: String = row.get(0);
                    pg.drop_named(&name);
                }
            }
        })
        .join();
    }
}

/// A Deployment controller for one Deployment of the fake API server (a rolling update with
/// `maxUnavailable: 0`): a thread that polls the Deployment, creates a ReplicaSet and its pods for a
/// new pod template (pods through the API, so the simulated kubelet starts them), deletes the old
/// pods once every new one is ready, and merge-patches the Deployment's status.
pub struct DeploymentController {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeploymentController {
    pub fn start(
        server: std::sync::Arc<backstage_testkit::FakeApiServer>,
        namespace: &str,
        deployment: &str,
    ) -> DeploymentController {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let (namespace, deployment) = (namespace.to_string(), deployment.to_string());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = client(&server, &namespace).await;
                while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Err(e) = reconcile(&server, &client, &namespace, &deployment).await {
                        eprintln!("deployment controller: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        });
        DeploymentController {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DeploymentController {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn client(server: &backstage_testkit::FakeApiServer, namespace: &str) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml("fake", Some(namespace), "t"))
            .unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The pod-template-hash of a template (stable for equal templates).
pub fn template_hash(template: &serde_json::Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in template.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn pod_ready(pod: &serde_json::Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

async fn reconcile(
    server: &backstage_testkit::FakeApiServer,
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), String> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use serde_json::json;

    let Some(deployment) = server.get("Deployment", namespace, name) else {
        return Ok(());
    };
    let template = deployment["spec"]["template"].clone();
    let hash = template_hash(&template);
    let desired = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let rs_name = format!("{name}-{hash}");
    if server.get("ReplicaSet", namespace, &rs_name).is_none() {
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = json!(hash);
        server.apply(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": namespace, "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": deployment["metadata"]["generation"].to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": deployment["metadata"]["uid"], "controller": true}]},
            "spec": {"replicas": desired, "selector": deployment["spec"]["selector"],
                "template": {"metadata": {"labels": labels}, "spec": template["spec"]}},
            "status": {"replicas": 0},
        }));
    }
    // The pods of every ReplicaSet of this Deployment.
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let all = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let mine: Vec<serde_json::Value> = all
        .items
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .filter(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["metadata"]["ownerReferences"][0]["name"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(&format!("{name}-")))
        })
        .collect();
    let is_new =
        |p: &serde_json::Value| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str();
    let new: Vec<&serde_json::Value> = mine.iter().filter(|p| is_new(p)).collect();
    let old: Vec<&serde_json::Value> = mine.iter().filter(|p| !is_new(p)).collect();
    // Scale the current ReplicaSet up to the desired count (a rollback to an earlier template
    // reuses its ReplicaSet, as the real controller does).
    if (new.len() as i64) < desired {
        let rs = server.get("ReplicaSet", namespace, &rs_name).unwrap();
        let labels = rs["spec"]["template"]["metadata"]["labels"].clone();
        for _ in new.len() as i64..desired {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"generateName": format!("{rs_name}-"), "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                        "uid": rs["metadata"]["uid"], "controller": true}]},
                "spec": template["spec"],
            }))
            .map_err(|e| e.to_string())?;
            pods.create(&PostParams::default(), &pod)
                .await
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let new_ready = new.iter().filter(|p| pod_ready(p)).count() as i64;
    if new_ready >= desired && !old.is_empty() {
        for p in &old {
            let pod = p["metadata"]["name"].as_str().unwrap_or_default();
            let _ = pods.delete(pod, &DeleteParams::default()).await;
        }
    }
    let old_left = if new_ready >= desired {
        0
    } else {
        old.len() as i64
    };
    let ready = mine.iter().filter(|p| pod_ready(p)).count() as i64;
    let ready = if new_ready >= desired {
        new_ready
    } else {
        ready
    };
    let complete = new_ready >= desired && old_left == 0;
    let status = json!({"status": {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": new.len() as i64 + old_left,
        "updatedReplicas": new.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": (desired - ready).max(0),
        "conditions": [
            {"type": "Available", "status": if ready >= desired { "True" } else { "False" },
             "reason": if ready >= desired { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }},
            {"type": "Progressing", "status": "True",
             "reason": if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" }},
        ],
    }});
    if deployment["status"] != status["status"] {
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), namespace);
        deployments
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
