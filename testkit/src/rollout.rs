//! A deployment controller simulation: when a Deployment's pod template changes, it finds or
//! creates the ReplicaSet for the new template (`<deploy>-<pod-template-hash>`, owned by the
//! Deployment, `deployment.kubernetes.io/revision` one above the highest), creates its pods (started
//! by the simulated kubelet and the pod runtime), and once all new pods are ready scales the old
//! ReplicaSets to 0 and deletes their pods. The strategy is "surge all, keep the old until the new
//! are ready" (maxSurge 100 %, maxUnavailable 0): a new pod that never becomes ready (CrashLoopBackOff,
//! ImagePullBackOff) leaves the old pods serving and the Deployment Progressing, until its
//! `progressDeadlineSeconds` turn it into ProgressDeadlineExceeded. Deployment and ReplicaSet status
//! (observedGeneration, replicas, updated/ready/available, the Available and Progressing conditions
//! with the reasons `kubectl rollout status` reads) and the controllers' events are written as the
//! real controllers word them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::discovery;
use crate::kubelet::{self, sha256_hex};
use crate::server::Shared;
use crate::store::{Change, name_suffix};
use crate::time::now_rfc3339;

const HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// Follows the store and starts a rollout for each change of a Deployment's pod template.
pub(crate) async fn controller(shared: Arc<Shared>, mut rx: broadcast::Receiver<Change>) {
    loop {
        let change = match rx.recv().await {
            Ok(c) => c,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        if change.storage != "deployments" || change.kind != "MODIFIED" {
            continue;
        }
        let Some(old) = &change.old else { continue };
        if normalized(&old["spec"]["template"]) == normalized(&change.object["spec"]["template"]) {
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
        let shared = shared.clone();
        tokio::spawn(async move { rollout(shared, ns, name).await });
    }
}

fn owned_by<'a>(
    objects: &'a [(String, Value)],
    uid: &'a Value,
) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().map(|(_, o)| o).filter(move |o| {
        o["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["uid"] == *uid)
    })
}

/// Drops nulls and empty objects and lists: what a typed Go client adds (`creationTimestamp: null`,
/// `resources: {}`) or omits does not make two templates differ.
pub(crate) fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A template without the pod-template-hash label, normalized, to compare a ReplicaSet's with a
/// Deployment's (as the controller's EqualIgnoreHash does).
fn without_hash(template: &Value) -> Value {
    let mut t = normalized(template);
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH);
        if labels.is_empty() {
            t["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    t
}

fn revision(obj: &Value) -> i64 {
    obj["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn template_hash(template: &Value, collision: u64) -> String {
    let h = sha256_hex(&format!("{template}"));
    let salt = u64::from_str_radix(&h[..15], 16).unwrap_or(0) + collision;
    // Ten characters of the alphabet Kubernetes uses for safe names.
    format!(
        "{}{}",
        name_suffix(&h, salt),
        name_suffix(&h, salt.wrapping_add(1))
    )
}

fn deployment_condition(kind: &str, ok: bool, reason: &str, message: &str, old: &Value) -> Value {
    let now = now_rfc3339();
    let status = if ok { "True" } else { "False" };
    let previous = old["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .cloned();
    let transition = match &previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let update = match &previous {
        Some(p) if p["status"] == status && p["reason"] == reason && p["message"] == message => {
            p["lastUpdateTime"].clone()
        }
        _ => json!(now),
    };
    json!({"type": kind, "status": status, "lastUpdateTime": update, "lastTransitionTime": transition,
           "reason": reason, "message": message})
}

struct Plan {
    rs: String,
    template: Value,
}

type Events = Vec<(Value, &'static str, String, String)>;

/// Creates or scales up the ReplicaSet for the Deployment's template and its missing pods.
fn start_rollout(shared: &Arc<Shared>, ns: &str, name: &str) -> Option<(Plan, Vec<Value>, Events)> {
    let pods_res = discovery::find("", "v1", "pods", false).expect("pods");
    let rs_res = discovery::find("apps", "v1", "replicasets", false).expect("replicasets");
    let mut store = shared.store();
    let mut d = store.get("deployments", ns, name)?;
    let uid = d["metadata"]["uid"].clone();
    let template = d["spec"]["template"].clone();
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let sets = store.list("replicasets", Some(ns));
    let owned: Vec<Value> = owned_by(&sets, &uid).cloned().collect();
    let max_rev = owned.iter().map(revision).max().unwrap_or(0);
    let mut events: Events = Vec::new();
    let mut rs = match owned
        .iter()
        .find(|rs| without_hash(&rs["spec"]["template"]) == without_hash(&template))
    {
        Some(rs) => rs.clone(),
        None => {
            let mut collision = 0;
            let (hash, rs_name) = loop {
                let hash = template_hash(&template, collision);
                let rs_name = format!("{name}-{hash}");
                if store.get("replicasets", ns, &rs_name).is_none() {
                    break (hash, rs_name);
                }
                collision += 1;
            };
            let mut t = template.clone();
            t["metadata"]["labels"][HASH] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"][HASH] = json!(hash);
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": t["metadata"]["labels"],
                             "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                                             "deployment.kubernetes.io/max-replicas": (replicas * 2).to_string()},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                  "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"replicas": 0, "selector": selector, "template": t},
                "status": {"replicas": 0, "observedGeneration": 1}
            })
        }
    };
    let rs_name = rs["metadata"]["name"].as_str().unwrap_or("").to_string();
    let found = rs["metadata"]["uid"].is_string();
    if revision(&rs) < max_rev || !found {
        rs["metadata"]["annotations"][REVISION] = json!((max_rev + 1).to_string());
    }
    let from = rs["spec"]["replicas"].as_i64().unwrap_or(0);
    rs["spec"]["replicas"] = json!(replicas);
    rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
        json!(replicas.to_string());
    let rs = if found {
        store.update(rs_res, rs, false).ok()?
    } else {
        store.create(rs_res, rs, false).ok()?
    };
    if from != replicas {
        events.push((
            d.clone(),
            "deployment-controller",
            "ScalingReplicaSet".into(),
            format!("Scaled up replica set {rs_name} from {from} to {replicas}"),
        ));
    }
    // The missing pods.
    let pods = store.list("pods", Some(ns));
    let have = owned_by(&pods, &rs["metadata"]["uid"]).count() as i64;
    let mut created = Vec::new();
    let t = &rs["spec"]["template"];
    for i in 0..(replicas - have).max(0) {
        let mut salt = store.resource_version() + i as u64;
        let pod_name = loop {
            let candidate = format!("{rs_name}-{}", name_suffix(&rs_name, salt));
            if store.get("pods", ns, &candidate).is_none() {
                break candidate;
            }
            salt += 7;
        };
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "generateName": format!("{rs_name}-"), "namespace": ns,
                         "labels": t["metadata"]["labels"],
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                              "uid": rs["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
            "spec": t["spec"],
        });
        if !t["metadata"]["annotations"].is_null() {
            pod["metadata"]["annotations"] = t["metadata"]["annotations"].clone();
        }
        kubelet::default_pod(&mut pod);
        if let Ok(p) = store.create(pods_res, pod, false) {
            events.push((
                rs.clone(),
                "replicaset-controller",
                "SuccessfulCreate".into(),
                format!("Created pod: {pod_name}"),
            ));
            created.push(p);
        }
    }
    // The Deployment notes the revision and that it saw this generation.
    let old_d = d.clone();
    d["metadata"]["annotations"][REVISION] = rs["metadata"]["annotations"][REVISION].clone();
    d["status"]["observedGeneration"] = d["metadata"]["generation"].clone();
    d["status"]["updatedReplicas"] = json!(have + created.len() as i64);
    let (reason, message) = if found {
        (
            "FoundNewReplicaSet",
            format!("Found new replica set \"{rs_name}\""),
        )
    } else {
        (
            "NewReplicaSetCreated",
            format!("Created new replica set \"{rs_name}\""),
        )
    };
    let progressing = deployment_condition("Progressing", true, reason, &message, &old_d);
    set_conditions(&mut d, progressing);
    let _ = store.apply(d);
    Some((
        Plan {
            rs: rs_name,
            template,
        },
        created,
        events,
    ))
}

fn set_conditions(d: &mut Value, cond: Value) {
    let conds = d["status"]["conditions"].as_array_mut();
    match conds {
        Some(cs) => match cs.iter_mut().find(|c| c["type"] == cond["type"]) {
            Some(c) => *c = cond,
            None => cs.push(cond),
        },
        None => d["status"]["conditions"] = json!([cond]),
    }
}

async fn rollout(shared: Arc<Shared>, ns: String, name: String) {
    let Some((plan, created, events)) = start_rollout(&shared, &ns, &name) else {
        return;
    };
    for (obj, component, reason, message) in &events {
        kubelet::record(&shared, obj, component, "Normal", reason, message, None);
    }
    for pod in &created {
        kubelet::spawn_pod(&shared, pod);
    }
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match step(&shared, &ns, &name, &plan, started) {
            Step::Wait => continue,
            Step::Done(events) => {
                for (obj, component, reason, message) in &events {
                    kubelet::record(&shared, obj, component, "Normal", reason, message, None);
                }
                return;
            }
            Step::Superseded => return,
        }
    }
}

enum Step {
    Wait,
    Done(Events),
    Superseded,
}

/// One look at the rollout: status written; old ReplicaSets scaled down once the new pods are ready.
fn step(shared: &Arc<Shared>, ns: &str, name: &str, plan: &Plan, started: Instant) -> Step {
    let rs_res = discovery::find("apps", "v1", "replicasets", false).expect("replicasets");
    let mut store = shared.store();
    let Some(d) = store.get("deployments", ns, name) else {
        return Step::Superseded;
    };
    if normalized(&d["spec"]["template"]) != normalized(&plan.template) {
        return Step::Superseded;
    }
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let uid = d["metadata"]["uid"].clone();
    let sets = store.list("replicasets", Some(ns));
    let owned: Vec<Value> = owned_by(&sets, &uid).cloned().collect();
    let pods = store.list("pods", Some(ns));
    let pods_of =
        |rs: &Value| -> Vec<Value> { owned_by(&pods, &rs["metadata"]["uid"]).cloned().collect() };
    let Some(new_rs) = owned
        .iter()
        .find(|rs| rs["metadata"]["name"] == plan.rs.as_str())
    else {
        return Step::Superseded;
    };
    let new_pods = pods_of(new_rs);
    let new_ready = new_pods.iter().filter(|p| is_ready(p)).count() as i64;
    let mut events: Events = Vec::new();
    let complete = new_ready >= replicas && new_pods.len() as i64 >= replicas;
    // ReplicaSet statuses.
    for rs in &owned {
        let mine = pods_of(rs);
        let ready = mine.iter().filter(|p| is_ready(p)).count() as i64;
        let mut rs2 = rs.clone();
        if complete
            && rs["metadata"]["name"] != plan.rs.as_str()
            && (rs["spec"]["replicas"].as_i64().unwrap_or(0) > 0 || !mine.is_empty())
        {
            let from = rs["spec"]["replicas"].as_i64().unwrap_or(0);
            rs2["spec"]["replicas"] = json!(0);
            if from > 0 {
                events.push((
                    d.clone(),
                    "deployment-controller",
                    "ScalingReplicaSet".into(),
                    format!(
                        "Scaled down replica set {} from {from} to 0",
                        rs["metadata"]["name"].as_str().unwrap_or("")
                    ),
                ));
            }
            for p in &mine {
                let pname = p["metadata"]["name"].as_str().unwrap_or("");
                if store.delete("Pod", ns, pname).is_some() {
                    events.push((
                        rs2.clone(),
                        "replicaset-controller",
                        "SuccessfulDelete".into(),
                        format!("Deleted pod: {pname}"),
                    ));
                }
            }
            rs2["status"] =
                json!({"replicas": 0, "observedGeneration": rs2["metadata"]["generation"]});
        } else {
            let mut status = json!({"replicas": mine.len(), "fullyLabeledReplicas": mine.len(),
                                    "observedGeneration": rs2["metadata"]["generation"]});
            if ready > 0 {
                status["readyReplicas"] = json!(ready);
                status["availableReplicas"] = json!(ready);
            }
            rs2["status"] = status;
        }
        if rs2 != *rs {
            let spec_changed = rs2["spec"] != rs["spec"];
            let mut to_store = rs2.clone();
            if spec_changed {
                if let Ok(stored) = store.update(rs_res, rs2, false) {
                    to_store = stored;
                }
                to_store["status"]["observedGeneration"] =
                    to_store["metadata"]["generation"].clone();
            }
            let _ = store.apply(to_store);
        }
    }
    // Deployment status, over every owned ReplicaSet's pods (after any scale-down).
    let pods = store.list("pods", Some(ns));
    let sets = store.list("replicasets", Some(ns));
    let all: Vec<Value> = owned_by(&sets, &uid)
        .flat_map(|rs| {
            owned_by(&pods, &rs["metadata"]["uid"])
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    let total = all.len() as i64;
    let ready = all.iter().filter(|p| is_ready(p)).count() as i64;
    let mut d2 = d.clone();
    let mut status = json!({"observedGeneration": d["metadata"]["generation"], "replicas": total,
                            "updatedReplicas": new_pods.len()});
    if ready > 0 {
        status["readyReplicas"] = json!(ready);
        status["availableReplicas"] = json!(ready);
    }
    if total - ready > 0 {
        status["unavailableReplicas"] = json!(total - ready);
    }
    status["conditions"] = d["status"]["conditions"].clone();
    d2["status"] = status;
    let available = if ready >= replicas {
        deployment_condition(
            "Available",
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &d,
        )
    } else {
        deployment_condition(
            "Available",
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &d,
        )
    };
    set_conditions(&mut d2, available);
    let deadline = d["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600);
    let progressing = if complete {
        deployment_condition(
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{}\" has successfully progressed.", plan.rs),
            &d,
        )
    } else if started.elapsed() >= Duration::from_secs(deadline) {
        deployment_condition(
            "Progressing",
            false,
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet \"{}\" has timed out progressing.", plan.rs),
            &d,
        )
    } else {
        deployment_condition(
            "Progressing",
            true,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{}\" is progressing.", plan.rs),
            &d,
        )
    };
    set_conditions(&mut d2, progressing);
    if d2 != d {
        let _ = store.apply(d2);
    }
    drop(store);
    if complete {
        Step::Done(events)
    } else {
        for (obj, component, reason, message) in &events {
            kubelet::record(shared, obj, component, "Normal", reason, message, None);
        }
        Step::Wait
    }
}
