//! Objects, pod logs and pod filesystems the fake API server starts with.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::time::{ANCHOR, format_unix, rebase_text, rebase_value, unix_seconds};

/// Identifies one log: namespace, pod, container and whether it is the previous container's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogKey {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub previous: bool,
}

/// What the server holds at start: Kubernetes objects (as `kubectl get -o json` shows them),
/// container logs, and for exec the local folders that stand for pods' filesystems.
#[derive(Debug, Clone, Default)]
pub struct Fixtures {
    objects: Vec<Value>,
    logs: BTreeMap<LogKey, String>,
    pod_roots: HashMap<String, PathBuf>,
    pod_env: HashMap<String, Vec<(String, String)>>,
    pod_ports: HashMap<(String, u16), SocketAddr>,
}

/// The folder of the built-in incident fixtures (`testkit/fixtures/incident`).
/// The pods of the incident fixtures' `backstage` namespace, in the order the fake API server lists
/// them (by name).
pub const INCIDENT_PODS: [&str; 7] = [
    "backstage-6c9f8d7b54-k4m2x",
    "backstage-6c9f8d7b54-q8zvn",
    "backstage-7d9f6b5c8-x2x7p",
    "backstage-postgresql-0",
    "backstage-pr-1234-5b7c9d8f6d-wq9rt",
    "backstage-worker-59c8d7f6b-mz5ql",
    "backstage-worker-8f7b6c5d4-r7tjh",
];

pub fn incident_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/incident")
}

impl Fixtures {
    /// No objects at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads every `*.yaml`/`*.yml` of `dir` (multi-document files and `kind: List` files) in
    /// file-name order, and logs from `dir/logs/<namespace>/<pod>/<container>[.previous].log`.
    /// Every timestamp is shifted from the anchor to now (see [`crate::rebased`]).
    pub fn load(dir: &Path) -> anyhow::Result<Fixtures> {
        let mut fx = Fixtures::default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading fixture folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            })
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            for doc in serde_norway::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc)
                    .with_context(|| format!("parsing {}", file.display()))?;
                fx.add_document(value)
                    .with_context(|| format!("in {}", file.display()))?;
            }
        }
        let logs = dir.join("logs");
        if logs.is_dir() {
            fx.load_logs(&logs)?;
        }
        for obj in &mut fx.objects {
            rebase_value(obj);
        }
        for text in fx.logs.values_mut() {
            *text = rebase_text(text);
        }
        Ok(fx)
    }

    fn add_document(&mut self, value: Value) -> anyhow::Result<()> {
        match value {
            Value::Null => Ok(()),
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in m
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.add_document(item.clone())?;
                }
                Ok(())
            }
            Value::Object(ref m) => {
                if m.get("kind").and_then(Value::as_str).is_none()
                    || value
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .is_none()
                {
                    bail!("an object without kind or metadata.name");
                }
                self.objects.push(value);
                Ok(())
            }
            other => bail!("not an object: {other}"),
        }
    }

    fn load_logs(&mut self, logs: &Path) -> anyhow::Result<()> {
        for ns in std::fs::read_dir(logs)? {
            let ns = ns?.path();
            if !ns.is_dir() {
                continue;
            }
            for pod in std::fs::read_dir(&ns)? {
                let pod = pod?.path();
                if !pod.is_dir() {
                    continue;
                }
                for file in std::fs::read_dir(&pod)? {
                    let file = file?.path();
                    let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    let Some(stem) = name.strip_suffix(".log") else {
                        continue;
                    };
                    let (container, previous) = match stem.strip_suffix(".previous") {
                        Some(c) => (c, true),
                        None => (stem, false),
                    };
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    self.logs.insert(
                        LogKey {
                            namespace: file_name(&ns),
                            pod: file_name(&pod),
                            container: container.to_string(),
                            previous,
                        },
                        text,
                    );
                }
            }
        }
        Ok(())
    }

    /// The built-in "Backstage namespace mid-incident" set, from `testkit/fixtures/incident/`.
    pub fn incident() -> Fixtures {
        Self::load(&incident_dir()).expect("the built-in incident fixtures load")
    }

    /// Adds `n` Running, ready pods of a Deployment `load` in `backstage`
    /// (label `app.kubernetes.io/name: load`), with their ReplicaSet.
    pub fn with_generated_pods(mut self, n: usize) -> Self {
        if n == 0 {
            return self;
        }
        let anchor = unix_seconds(ANCHOR).unwrap_or_default();
        let created = format_unix(anchor - 2 * 86400);
        let image = "hmctspublic.azurecr.io/backstage/load:1.0.0";
        let hash = "6d5f8c7b9";
        let labels = json!({"app.kubernetes.io/name": "load", "app.kubernetes.io/instance": "load", "pod-template-hash": hash});
        let mut deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "load", "namespace": "backstage", "uid": fake_uid("deploy/load", 0),
                         "creationTimestamp": created, "generation": 1, "resourceVersion": "48100000",
                         "labels": {"app.kubernetes.io/name": "load"},
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": n, "selector": {"matchLabels": {"app.kubernetes.io/name": "load", "app.kubernetes.io/instance": "load"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app.kubernetes.io/name": "load", "app.kubernetes.io/instance": "load"}},
                                  "spec": {"containers": [{"name": "load", "image": image}]}}},
            "status": {"observedGeneration": 1, "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
                       "conditions": [
                           {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastTransitionTime": created, "lastUpdateTime": created},
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"load-{hash}\" has successfully progressed."), "lastTransitionTime": created, "lastUpdateTime": created}]}
        });
        let rs_name = format!("load-{hash}");
        let rs_uid = fake_uid("rs/load", 0);
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": "backstage", "uid": rs_uid, "creationTimestamp": created,
                         "generation": 1, "resourceVersion": "48100001", "labels": labels,
                         "annotations": {"deployment.kubernetes.io/revision": "1", "deployment.kubernetes.io/desired-replicas": n.to_string()},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "load", "uid": deploy["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": n, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "load", "image": image}]}}},
            "status": {"observedGeneration": 1, "replicas": n, "fullyLabeledReplicas": n, "readyReplicas": n, "availableReplicas": n}
        });
        if self.objects.iter().any(|o| same_object(o, &deploy)) {
            // Generating twice adds to the existing Deployment's count.
            deploy = Value::Null;
        }
        if !deploy.is_null() {
            self.objects.push(deploy);
            self.objects.push(rs);
        }
        let existing = self
            .objects
            .iter()
            .filter(|o| {
                o.pointer("/metadata/labels/app.kubernetes.io~1name") == Some(&json!("load"))
                    && o["kind"] == "Pod"
            })
            .count();
        let mut rng = Lcg(0x5eed_0001 + existing as u64);
        for i in existing..existing + n {
            let suffix = rng.suffix();
            let name = format!("{rs_name}-{suffix}");
            let start = format_unix(anchor - 2 * 86400 + 3 + (i as i64 % 50));
            let ip = format!("10.245.{}.{}", i / 250, i % 250 + 2);
            let mut pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "generateName": format!("{rs_name}-"), "namespace": "backstage",
                             "uid": fake_uid("pod/load", i as u64), "creationTimestamp": start,
                             "resourceVersion": (48_100_100 + i).to_string(), "labels": labels,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"containers": [{"name": "load", "image": image, "imagePullPolicy": "IfNotPresent",
                                         "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}],
                         "nodeName": format!("aks-nodepool1-38215342-vmss00000{}", i % 3),
                         "restartPolicy": "Always", "schedulerName": "default-scheduler", "serviceAccountName": "default"},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": format!("10.224.0.{}", 4 + i % 3),
                           "qosClass": "Burstable", "startTime": start,
                           "conditions": [
                               {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": start},
                               {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": start},
                               {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": start},
                               {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": start},
                               {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": start}],
                           "containerStatuses": [{"name": "load", "image": image,
                               "imageID": format!("hmctspublic.azurecr.io/backstage/load@sha256:{}", "4f".repeat(32)),
                               "containerID": format!("containerd://{:064x}", i + 1), "ready": true, "started": true,
                               "restartCount": 0, "lastState": {}, "state": {"running": {"startedAt": start}}}]}
            });
            rebase_value(&mut pod);
            self.objects.push(pod);
        }
        if let Some(d) = self
            .objects
            .iter_mut()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "load")
        {
            rebase_value(d);
        }
        self.objects
            .iter_mut()
            .filter(|o| o["kind"] == "ReplicaSet" && o["metadata"]["name"] == rs_name)
            .for_each(rebase_value);
        let total = existing + n;
        for o in self.objects.iter_mut() {
            let is_load = o["metadata"]["name"] == "load" && o["kind"] == "Deployment"
                || o["metadata"]["name"] == rs_name.as_str() && o["kind"] == "ReplicaSet";
            if is_load {
                o["spec"]["replicas"] = json!(total);
                for k in [
                    "replicas",
                    "updatedReplicas",
                    "readyReplicas",
                    "availableReplicas",
                    "fullyLabeledReplicas",
                ] {
                    if o["status"].get(k).is_some() {
                        o["status"][k] = json!(total);
                    }
                }
            }
        }
        self
    }

    /// Adds `n` Normal and Warning events in `backstage` with distinct `lastTimestamp`s spread
    /// over the hours before the anchor (one second apart at least), in a scrambled but
    /// deterministic list order (the names sort differently from the times).
    pub fn with_generated_events(mut self, n: usize) -> Self {
        let anchor = unix_seconds(ANCHOR).unwrap_or_default();
        let base = self
            .objects
            .iter()
            .filter(|o| {
                o["kind"] == "Event"
                    && o["metadata"]["name"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("backstage-load-"))
            })
            .count();
        // Spread over at least three hours, ending 25 minutes before the anchor.
        let span = (n as i64).max(3 * 3600);
        let step = (span / n.max(1) as i64).max(1);
        let mut rng = Lcg(0x0e1e_0000 + base as u64);
        for j in 0..n {
            let i = base + j;
            let last = anchor - 25 * 60 - (i as i64) * step;
            let count = 1 + (rng.next() % 5) as i64;
            let first = last - (count - 1) * 30;
            let warning = i % 7 == 3;
            let (reason, message) = if warning {
                (
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string(),
                )
            } else {
                match i % 3 {
                    0 => ("Pulled", "Container image \"hmctspublic.azurecr.io/backstage/load:1.0.0\" already present on machine".to_string()),
                    1 => ("Created", "Created container: load".to_string()),
                    _ => ("Started", "Started container load".to_string()),
                }
            };
            let pod = format!("backstage-load-{}", rng.suffix());
            let nanos = (first as i128) * 1_000_000_000 + (rng.next() % 1_000_000_000) as i128;
            let name = format!("{pod}.{nanos:x}");
            let mut ev = json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": "backstage", "uid": fake_uid("event/load", i as u64),
                             "resourceVersion": (48_000_000 + i).to_string(), "creationTimestamp": format_unix(first)},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": "backstage",
                                   "uid": fake_uid("pod/backstage-load", i as u64), "resourceVersion": "47999000",
                                   "fieldPath": "spec.containers{load}"},
                "reason": reason, "message": message, "type": if warning { "Warning" } else { "Normal" },
                "count": count, "firstTimestamp": format_unix(first), "lastTimestamp": format_unix(last),
                "eventTime": null, "source": {"component": "kubelet", "host": "aks-nodepool1-38215342-vmss000001"},
                "reportingComponent": "kubelet", "reportingInstance": "aks-nodepool1-38215342-vmss000001"
            });
            rebase_value(&mut ev);
            self.objects.push(ev);
        }
        self
    }

    /// Makes `dir` stand for the filesystem of pod `pod` (any namespace): exec runs commands there.
    pub fn set_pod_root(&mut self, pod: &str, dir: impl Into<PathBuf>) {
        self.pod_roots.insert(pod.to_string(), dir.into());
    }

    /// Builder form of [`Fixtures::set_pod_root`].
    pub fn with_pod_root(mut self, pod: &str, dir: impl Into<PathBuf>) -> Self {
        self.set_pod_root(pod, dir);
        self
    }

    /// Where port-forwards to `port` of pod `pod` (any namespace) lead: a local TCP address standing
    /// for `localhost:PORT` inside the pod. Ports with nothing registered refuse the connection.
    pub fn set_pod_port(&mut self, pod: &str, port: u16, target: SocketAddr) {
        self.pod_ports.insert((pod.to_string(), port), target);
    }

    /// Builder form of [`Fixtures::set_pod_port`].
    pub fn with_pod_port(mut self, pod: &str, port: u16, target: SocketAddr) -> Self {
        self.set_pod_port(pod, port, target);
        self
    }

    /// An environment variable for processes exec'd in `pod` (besides `PATH`, `HOME`,
    /// `HOSTNAME` and the container spec's literal `env` values).
    pub fn set_pod_env(&mut self, pod: &str, key: &str, value: &str) {
        self.pod_env
            .entry(pod.to_string())
            .or_default()
            .push((key.to_string(), value.to_string()));
    }

    /// Forgets a pod's filesystem, forwarded ports and exec environment (the pod is gone).
    pub(crate) fn forget_pod(&mut self, pod: &str) {
        self.pod_roots.remove(pod);
        self.pod_env.remove(pod);
        self.pod_ports.retain(|(p, _), _| p != pod);
    }

    /// Sets (or replaces) a container log.
    pub fn set_log(
        &mut self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
        text: &str,
    ) {
        self.logs.insert(
            LogKey {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
                previous,
            },
            text.to_string(),
        );
    }

    /// Adds an object as is (no time shift); replaces one with the same kind, namespace and name.
    pub fn add(&mut self, obj: Value) {
        if let Some(existing) = self.objects.iter_mut().find(|o| same_object(o, &obj)) {
            *existing = obj;
        } else {
            self.objects.push(obj);
        }
    }

    /// Removes the object with this kind, namespace and name.
    pub fn remove(&mut self, kind: &str, namespace: &str, name: &str) {
        self.objects.retain(|o| {
            !(o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str().unwrap_or("") == namespace)
        });
    }

    /// All objects, in load order.
    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// Objects of one kind in one namespace (None = all namespaces), in load order.
    pub fn objects_of(&self, kind: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .filter(|o| namespace.is_none_or(|ns| o["metadata"]["namespace"] == ns))
            .collect()
    }

    /// One object by kind, namespace and name.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.iter().find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"] == name
                && o["metadata"]["namespace"].as_str().unwrap_or("") == namespace
        })
    }

    /// A container log (already time-shifted).
    pub fn log(&self, namespace: &str, pod: &str, container: &str, previous: bool) -> Option<&str> {
        self.logs
            .get(&LogKey {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
                previous,
            })
            .map(String::as_str)
    }

    pub(crate) fn pod_roots(&self) -> &HashMap<String, PathBuf> {
        &self.pod_roots
    }

    pub(crate) fn pod_ports(&self) -> &HashMap<(String, u16), SocketAddr> {
        &self.pod_ports
    }

    pub(crate) fn pod_env(&self) -> &HashMap<String, Vec<(String, String)>> {
        &self.pod_env
    }

    pub(crate) fn take_objects(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.objects)
    }
}

fn same_object(a: &Value, b: &Value) -> bool {
    a["kind"] == b["kind"]
        && a["metadata"]["name"] == b["metadata"]["name"]
        && a["metadata"]["namespace"] == b["metadata"]["namespace"]
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A deterministic uid-looking string.
pub(crate) fn fake_uid(what: &str, i: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in what.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let a = h ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let b = a.rotate_left(29).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a & 0xfff,
        b & 0xfff,
        (b >> 16) & 0xffff_ffff_ffff
    )
}

/// A small deterministic generator (no dependency on `rand`).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 17
    }

    /// Five characters from the alphabet Kubernetes uses for generated names.
    fn suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_loads() {
        let fx = Fixtures::incident();
        assert!(fx.objects_of("Pod", Some("backstage")).len() >= 6);
        assert!(
            fx.log("backstage", "backstage-7d9f6b5c8-x2x7p", "backstage", true)
                .unwrap()
                .contains("The migration directory is corrupt")
        );
    }

    #[test]
    fn generated_are_distinct() {
        let fx = Fixtures::empty()
            .with_generated_events(500)
            .with_generated_pods(20);
        let mut names: Vec<_> = fx
            .objects_of("Event", None)
            .iter()
            .map(|e| e["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        let mut times: Vec<_> = fx
            .objects_of("Event", None)
            .iter()
            .map(|e| e["lastTimestamp"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names.dedup();
        times.sort();
        times.dedup();
        assert_eq!((names.len(), times.len()), (500, 500));
        let mut pods: Vec<_> = fx
            .objects_of("Pod", None)
            .iter()
            .map(|e| e["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        pods.sort();
        pods.dedup();
        assert_eq!(pods.len(), 20);
    }
}
