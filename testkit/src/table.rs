//! Server-side printing: `meta.k8s.io/v1` `Table`s with the columns the real API server sends.

use serde_json::{Value, json};

use crate::time::{age, unix_seconds};

/// What `includeObject` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: Option<&str>) -> Include {
        match s {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn col(name: &str, ty: &str, format: &str, priority: i64, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

/// Column definitions for a storage ("pods", "events", ...).
pub(crate) fn columns(storage: &str) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.",
    );
    let age_col = col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
    );
    // Columns the workload kinds share.
    let workload_ready_col = col(
        "Ready",
        "string",
        "",
        0,
        "Number of the pod with ready state",
    );
    let containers_col = col(
        "Containers",
        "string",
        "",
        1,
        "Names of each container in the template.",
    );
    let images_col = col(
        "Images",
        "string",
        "",
        1,
        "Images referenced by each container in the template.",
    );
    match storage {
        "pods" => vec![
            name,
            col(
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                "",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age_col,
            col(
                "IP",
                "string",
                "",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            col(
                "Node",
                "string",
                "",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            col(
                "Nominated Node",
                "string",
                "",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            col(
                "Readiness Gates",
                "string",
                "",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "events" => vec![
            col(
                "Last Seen",
                "string",
                "",
                0,
                "Deprecated field assuring backward compatibility with core.v1 Event type",
            ),
            col(
                "Type",
                "string",
                "",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future",
            ),
            col(
                "Reason",
                "string",
                "",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            col(
                "Object",
                "string",
                "",
                0,
                "The object that this event is about.",
            ),
            col(
                "Subobject",
                "string",
                "",
                1,
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
            ),
            col(
                "Source",
                "string",
                "",
                1,
                "The component reporting this event. Should be a short machine understandable string.",
            ),
            col(
                "Message",
                "string",
                "",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "First Seen",
                "string",
                "",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            ),
            col(
                "Count",
                "string",
                "",
                1,
                "The number of times this event has occurred.",
            ),
            col(
                "Name",
                "string",
                "",
                1,
                "Name must be unique within a namespace.",
            ),
        ],
        "deployments" => vec![
            name,
            workload_ready_col.clone(),
            col(
                "Up-to-date",
                "integer",
                "",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "integer",
                "",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age_col,
            containers_col.clone(),
            images_col.clone(),
            col(
                "Selector",
                "string",
                "",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        "replicasets" => vec![
            name,
            col(
                "Desired",
                "integer",
                "",
                0,
                "Replicas is the number of desired replicas.",
            ),
            col(
                "Current",
                "integer",
                "",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            col(
                "Ready",
                "integer",
                "",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age_col,
            containers_col.clone(),
            images_col.clone(),
            col(
                "Selector",
                "string",
                "",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        "statefulsets" => vec![
            name,
            workload_ready_col.clone(),
            age_col,
            containers_col.clone(),
            images_col.clone(),
        ],
        "namespaces" => vec![
            name,
            col("Status", "string", "", 0, "The status of the namespace"),
            age_col,
        ],
        "services" => vec![
            name,
            col("Type", "string", "", 0, "The type of the service."),
            col(
                "Cluster-IP",
                "string",
                "",
                0,
                "The IP address of the service.",
            ),
            col(
                "External-IP",
                "string",
                "",
                0,
                "The external IP addresses of the service.",
            ),
            col("Port(s)", "string", "", 0, "The ports of the service."),
            age_col,
            col(
                "Selector",
                "string",
                "",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        // The CRDs' printer columns (Flux's HelmRelease v2 and Kustomization v1).
        "helmreleases" | "kustomizations" => vec![
            name,
            col("Age", "date", "", 0, ""),
            col("Ready", "string", "", 0, ""),
            col("Status", "string", "", 0, ""),
        ],
        _ => vec![
            name,
            col(
                "Created At",
                "date",
                "",
                0,
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            ),
        ],
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn none_if_empty(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.to_string()
    }
}

/// The STATUS column of `kubectl get pods`, as the API server's `printPod` computes it.
pub fn pod_status(pod: &Value) -> String {
    let status = &pod["status"];
    let mut reason = s(&status["phase"]).to_string();
    if !s(&status["reason"]).is_empty() {
        reason = s(&status["reason"]).to_string();
    }
    for c in status["conditions"].as_array().into_iter().flatten() {
        if c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    let init_total = pod["spec"]["initContainers"].as_array().map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in status["initContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let term = &c["state"]["terminated"];
        let wait = &c["state"]["waiting"];
        if term.is_object() && int(&term["exitCode"]) == 0 {
            continue;
        }
        if term.is_object() {
            reason = if s(&term["reason"]).is_empty() {
                if int(&term["signal"]) != 0 {
                    format!("Init:Signal:{}", int(&term["signal"]))
                } else {
                    format!("Init:ExitCode:{}", int(&term["exitCode"]))
                }
            } else {
                format!("Init:{}", s(&term["reason"]))
            };
        } else if wait.is_object()
            && !s(&wait["reason"]).is_empty()
            && s(&wait["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", s(&wait["reason"]));
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in status["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
        {
            let wait = &c["state"]["waiting"];
            let term = &c["state"]["terminated"];
            if wait.is_object() && !s(&wait["reason"]).is_empty() {
                reason = s(&wait["reason"]).to_string();
            } else if term.is_object() && !s(&term["reason"]).is_empty() {
                reason = s(&term["reason"]).to_string();
            } else if term.is_object() {
                reason = if int(&term["signal"]) != 0 {
                    format!("Signal:{}", int(&term["signal"]))
                } else {
                    format!("ExitCode:{}", int(&term["exitCode"]))
                };
            } else if c["ready"] == true && c["state"]["running"].is_object() {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if ready { "Running" } else { "NotReady" }.into();
        }
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        if s(&status["reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if !matches!(s(&status["phase"]), "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }
    reason
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let status = &pod["status"];
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<(i64, String)> = None;
    for c in status["containerStatuses"].as_array().into_iter().flatten() {
        restarts += int(&c["restartCount"]);
        if let Some(fin) = c["lastState"]["terminated"]["finishedAt"].as_str()
            && let Some(t) = unix_seconds(fin)
            && last_restart.as_ref().is_none_or(|(lt, _)| *lt < t)
        {
            last_restart = Some((t, fin.to_string()));
        }
        if c["ready"] == true && c["state"]["running"].is_object() {
            ready += 1;
        }
    }
    for c in status["initContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        restarts += int(&c["restartCount"]);
    }
    let restarts = match (restarts, last_restart) {
        (0, _) | (_, None) => restarts.to_string(),
        (n, Some((_, ts))) => format!("{n} ({} ago)", age(Some(&ts))),
    };
    let gates = match pod["spec"]["readinessGates"].as_array() {
        Some(gates) if !gates.is_empty() => {
            let conds = status["conditions"].as_array().cloned().unwrap_or_default();
            let ok = gates
                .iter()
                .filter(|g| {
                    conds
                        .iter()
                        .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                })
                .count();
            format!("{ok}/{}", gates.len())
        }
        _ => "<none>".into(),
    };
    vec![
        json!(s(&pod["metadata"]["name"])),
        json!(format!("{ready}/{total}")),
        json!(pod_status(pod)),
        json!(restarts),
        json!(age(pod["metadata"]["creationTimestamp"].as_str())),
        json!(none_if_empty(s(&status["podIP"]))),
        json!(none_if_empty(s(&pod["spec"]["nodeName"]))),
        json!(none_if_empty(s(&status["nominatedNodeName"]))),
        json!(gates),
    ]
}

/// A core/v1 view of an event given either as core/v1 or as events.k8s.io/v1.
fn core_event(ev: &Value) -> Value {
    if ev.get("regarding").is_none() {
        return ev.clone();
    }
    let mut core = ev.clone();
    for (v1, core_name) in [
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("deprecatedSource", "source"),
        ("reportingController", "reportingComponent"),
    ] {
        core[core_name] = ev[v1].clone();
    }
    core
}

fn event_cells(ev: &Value) -> Vec<Value> {
    let ev = &core_event(ev);
    let first = match ev["firstTimestamp"].as_str() {
        Some(t) => age(Some(t)),
        None => age(ev["eventTime"].as_str()),
    };
    let mut last = match ev["lastTimestamp"].as_str() {
        Some(t) => age(Some(t)),
        None => first.clone(),
    };
    let mut count = int(&ev["count"]);
    if ev["series"].is_object() {
        last = age(ev["series"]["lastObservedTime"].as_str());
        count = int(&ev["series"]["count"]);
    } else if count == 0 {
        count = 1;
    }
    let obj = &ev["involvedObject"];
    let kind = s(&obj["kind"]).to_lowercase();
    let target = if s(&obj["name"]).is_empty() {
        kind
    } else {
        format!("{kind}/{}", s(&obj["name"]))
    };
    let component = if s(&ev["source"]["component"]).is_empty() {
        s(&ev["reportingComponent"])
    } else {
        s(&ev["source"]["component"])
    };
    let instance = if s(&ev["source"]["host"]).is_empty() {
        s(&ev["reportingInstance"])
    } else {
        s(&ev["source"]["host"])
    };
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(s(&ev["type"])),
        json!(s(&ev["reason"])),
        json!(target),
        json!(s(&obj["fieldPath"])),
        json!(source),
        json!(s(&ev["message"]).trim()),
        json!(first),
        json!(count),
        json!(s(&ev["metadata"]["name"])),
    ]
}

fn template_containers(obj: &Value) -> (String, String) {
    let cs = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        match s(&e["operator"]) {
            "In" => parts.push(format!("{} in ({})", s(&e["key"]), vals.join(","))),
            "NotIn" => parts.push(format!("{} notin ({})", s(&e["key"]), vals.join(","))),
            "Exists" => parts.push(s(&e["key"]).to_string()),
            "DoesNotExist" => parts.push(format!("!{}", s(&e["key"]))),
            _ => {}
        }
    }
    none_if_empty(&parts.join(","))
}

/// The READY cell of a Deployment or StatefulSet: ready of desired replicas.
fn ready_of_desired(obj: &Value) -> Value {
    json!(format!(
        "{}/{}",
        int(&obj["status"]["readyReplicas"]),
        int(&obj["spec"]["replicas"])
    ))
}

/// The AGE, CONTAINERS and IMAGES cells of a workload.
fn age_and_template(created: String, obj: &Value) -> Vec<Value> {
    let (containers, images) = template_containers(obj);
    vec![json!(created), json!(containers), json!(images)]
}

/// A Deployment's or ReplicaSet's row: name, three replica counts, age, containers, images and
/// selector.
fn replica_row(name: Value, counts: [Value; 3], created: String, obj: &Value) -> Vec<Value> {
    [
        vec![name],
        counts.to_vec(),
        age_and_template(created, obj),
        vec![json!(selector_string(&obj["spec"]["selector"]))],
    ]
    .concat()
}

/// A Service's row as the API server prints it (`kubectl get services`).
fn service_cells(name: Value, created: String, obj: &Value) -> Vec<Value> {
    let spec = &obj["spec"];
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = none_if_empty(s(&spec["clusterIP"]));
    let mut external: Vec<String> = spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for ingress in obj["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let ip = ingress["ip"].as_str().or(ingress["hostname"].as_str());
        external.extend(ip.map(str::to_string));
    }
    let external = match (kind, external.is_empty()) {
        ("ExternalName", _) => s(&spec["externalName"]).to_string(),
        ("LoadBalancer", true) => "<pending>".into(),
        (_, true) => "<none>".into(),
        (_, false) => external.join(","),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(node) => format!("{}:{node}/{protocol}", int(&p["port"])),
                None => format!("{}/{protocol}", int(&p["port"])),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let mut selector: Vec<String> = spec["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    selector.sort();
    let selector = if selector.is_empty() {
        "<none>".to_string()
    } else {
        selector.join(",")
    };
    vec![
        name,
        json!(kind),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        json!(created),
        json!(selector),
    ]
}

fn cells(storage: &str, obj: &Value) -> Vec<Value> {
    let name = json!(s(&obj["metadata"]["name"]));
    let created = age(obj["metadata"]["creationTimestamp"].as_str());
    match storage {
        "pods" => pod_cells(obj),
        "events" => event_cells(obj),
        "deployments" => replica_row(
            name,
            [
                ready_of_desired(obj),
                json!(int(&obj["status"]["updatedReplicas"])),
                json!(int(&obj["status"]["availableReplicas"])),
            ],
            created,
            obj,
        ),
        "replicasets" => replica_row(
            name,
            [
                json!(int(&obj["spec"]["replicas"])),
                json!(int(&obj["status"]["replicas"])),
                json!(int(&obj["status"]["readyReplicas"])),
            ],
            created,
            obj,
        ),
        "statefulsets" => [
            vec![name, ready_of_desired(obj)],
            age_and_template(created, obj),
        ]
        .concat(),
        "namespaces" => vec![name, json!(s(&obj["status"]["phase"])), json!(created)],
        "services" => service_cells(name, created, obj),
        "helmreleases" | "kustomizations" => {
            let ready = obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready");
            let field = |f: &str| ready.map(|c| c[f].clone()).unwrap_or(Value::Null);
            vec![
                name,
                obj["metadata"]["creationTimestamp"].clone(),
                field("status"),
                field("message"),
            ]
        }
        _ => vec![name, obj["metadata"]["creationTimestamp"].clone()],
    }
}

/// `PartialObjectMetadata` for an object.
pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

/// A `Table` of `objects` (full objects with kind and apiVersion).
pub(crate) fn table(
    storage: &str,
    objects: &[Value],
    include: Include,
    list_meta: Value,
    headers: bool,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(storage, o)});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial_metadata(o),
                Include::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(storage),
        "rows": rows,
    });
    if !headers {
        t["columnDefinitions"] = Value::Null;
    }
    t
}
