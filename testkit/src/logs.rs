//! Pod logs: the current or previous run of a container, with `tailLines` and `limitBytes`, and the
//! API server's messages for containers that have not run.

use http::{HeaderValue, Response, header};
use serde_json::Value;

use crate::discovery;
use crate::responses::{Body, bad_request, full, object_not_found};
use crate::router::Query;
use crate::server::Shared;

pub(crate) fn pod_log(shared: &Shared, ns: &str, name: &str, query: &Query) -> Response<Body> {
    let pods = discovery::find("", "v1", "pods", false).expect("pods");
    let Some(pod) = shared.store().get("pods", ns, name) else {
        return object_not_found(pods, name);
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let container = match query.get("container") {
        Some(c) => c.to_string(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            let default = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
                .as_str()
                .map(str::to_string);
            match default {
                Some(d) => d,
                None => {
                    return bad_request(&format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        containers.join(" ")
                    ));
                }
            }
        }
    };
    if !containers.contains(&container) {
        return bad_request(&format!(
            "container {container} is not valid for pod {name}"
        ));
    }
    let previous = query.flag("previous");
    let text = shared
        .extras()
        .log(ns, name, &container, previous)
        .map(str::to_string);
    // A log file a pod runtime named (a real process's output), read as it is now.
    let text = match text {
        None if !previous => crate::server::lock(&shared.kubelet)
            .log_file(ns, name, &container)
            .map(|f| std::fs::read_to_string(f).unwrap_or_default()),
        t => t,
    };
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let text = match text {
        Some(t) => t,
        None if previous => {
            return bad_request(&format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            ));
        }
        None => {
            let waiting = &status["state"]["waiting"];
            if waiting.is_object() && status["lastState"]["terminated"].is_null() {
                let why = match waiting["reason"].as_str().unwrap_or("") {
                    "ImagePullBackOff" | "ErrImagePull" => {
                        "trying and failing to pull image".to_string()
                    }
                    "" => "ContainerCreating".to_string(),
                    other => other.to_string(),
                };
                return bad_request(&format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
                ));
            }
            String::new()
        }
    };
    let mut text = text;
    if let Some(n) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        text = lines[lines.len().saturating_sub(n)..].concat();
    }
    let mut bytes = text.into_bytes();
    if let Some(n) = query
        .get("limitBytes")
        .and_then(|n| n.parse::<usize>().ok())
    {
        bytes.truncate(n);
    }
    let mut r = Response::new(full(bytes));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}
