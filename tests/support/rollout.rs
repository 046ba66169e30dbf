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
//! - It is **Crashed** when node exits (its exit code and log).
//! - It is **Unready** when it logs `BackendStartupError`: Backstage then says it is "shutting down the
//!   process" but, measured with 1.54.0 on a database 1.55.0 migrated, node keeps running (liveness
//!   200, readiness 503). With Backstage's usual probes a real pod then stays Running and never ready,
//!   and the kubelet never restarts it; the runtime keeps the backend running and hands back its log
//!   file (the real "The migration directory is corrupt, the following files are missing: …" text)
//!   as the current log.
//!
//! It implements the fake API server's `PodRuntime`: the fake's deployment controller simulation
//! creates a ReplicaSet and pods for each new pod template, and its simulated kubelet calls this
//! runtime for every pod it starts (and `stop` when a pod is deleted).
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
                // The backend stays up (liveness 200, readiness 503): a real pod with Backstage's
                // probes is Running and never ready, and the kubelet does not restart it.
                let addr: SocketAddr = ([127, 0, 0, 1], backend.port).into();
                break PodOutcome::Unready {
                    ports: vec![(CONTAINER_PORT, addr)],
                    log_file: Some(backend.log_path()),
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
        if matches!(
            outcome,
            PodOutcome::Ready { .. } | PodOutcome::Unready { .. }
        ) {
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
