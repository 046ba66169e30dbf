//! Writes: POST (create), PUT (update), PATCH (merge, strategic merge, JSON patch), DELETE of one
//! object and DELETE of a collection, answered and worded as kube-apiserver does; `dryRun=All` is
//! honoured. Owned objects are garbage-collected with their owner (background propagation).

// Helpers return the finished error response as their `Err`; it is sent as is, never propagated far.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::discovery::Resource;
use crate::list::Filter;
use crate::patch::{self, JsonPatchError};
use crate::responses::{
    Body, bad_request, json_response, object_not_found, qualified, status_response,
};
use crate::router::{Query, Target};
use crate::server::Shared;
use crate::store::WriteError;

/// Kinds whose main endpoint ignores `status` (it has a `/status` subresource).
fn has_status_subresource(res: &Resource) -> bool {
    res.storage != "configmaps" && res.storage != "events"
}

pub(crate) async fn write(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    target: &Target,
    query: &Query,
) -> Response<Body> {
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_request(&format!("unable to read the request body: {e}")),
    };
    let dry_run = query.get("dryRun") == Some("All");
    let res = target.res;
    let ns = target.namespace.clone().unwrap_or_default();
    match (&method, target.name.as_deref(), target.sub.as_deref()) {
        (&Method::POST, None, None) => create(shared, res, &ns, &body, &content_type, dry_run),
        (&Method::PUT, Some(name), sub @ (None | Some("status"))) => {
            let obj = match decode(&body, &content_type) {
                Ok(v) => v,
                Err(r) => return r,
            };
            update(shared, res, &ns, name, sub.is_some(), dry_run, |_| Ok(obj))
        }
        (&Method::PATCH, Some(name), sub @ (None | Some("status"))) => patch_object(
            shared,
            res,
            &ns,
            name,
            sub.is_some(),
            &body,
            &content_type,
            dry_run,
        ),
        (&Method::DELETE, Some(name), None) => {
            delete_one(shared, res, &ns, name, &body, query, dry_run)
        }
        (&Method::DELETE, None, None) => delete_collection(shared, target, query, dry_run),
        _ => status_response(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        ),
    }
}

/// JSON or YAML request bodies (kubectl sends JSON).
fn decode(body: &[u8], content_type: &str) -> Result<Value, Response<Body>> {
    let parsed = if content_type.contains("yaml") {
        serde_norway::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    match parsed {
        // Decoding into the typed object drops nulls, as the real server's does.
        Ok(v) if v.is_object() => Ok(strip_nulls(v)),
        Ok(_) => Err(bad_request("the body of the request is not a JSON object")),
        Err(e) => Err(bad_request(&format!(
            "error decoding the request body: {e}"
        ))),
    }
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

pub(crate) fn write_error(res: &Resource, e: WriteError) -> Response<Body> {
    let details = |name: &str| {
        let mut d = json!({"name": name, "kind": res.plural});
        if !res.group.is_empty() {
            d["group"] = json!(res.group);
        }
        d
    };
    match e {
        WriteError::NotFound(name) => object_not_found(res, &name),
        WriteError::AlreadyExists(name) => status_response(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", qualified(res)),
            Some(details(&name)),
        ),
        WriteError::Conflict(name) => status_response(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(res)
            ),
            Some(details(&name)),
        ),
        WriteError::Invalid(message) => invalid(res, "", &message),
    }
}

/// 422 Invalid for one field error `field: detail`.
fn invalid(res: &Resource, name: &str, message: &str) -> Response<Body> {
    let (field, detail) = message.split_once(": ").unwrap_or(("", message));
    let mut d = json!({"name": name, "kind": res.kind, "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]});
    if !res.group.is_empty() {
        d["group"] = json!(res.group);
    }
    status_response(
        422,
        "Invalid",
        &format!("{} \"{name}\" is invalid: {message}", res.kind),
        Some(d),
    )
}

fn create(
    shared: &Arc<Shared>,
    res: &'static Resource,
    ns: &str,
    body: &[u8],
    content_type: &str,
    dry_run: bool,
) -> Response<Body> {
    let mut obj = match decode(body, content_type) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if res.namespaced {
        let given = obj["metadata"]["namespace"].as_str().unwrap_or("");
        if !given.is_empty() && given != ns {
            return bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            );
        }
        obj["metadata"]["namespace"] = json!(ns);
    }
    if res.storage == "pods" {
        crate::kubelet::default_pod(&mut obj);
    }
    let created = shared.store().create(res, obj, dry_run);
    match created {
        Ok(obj) => {
            if res.storage == "pods" && !dry_run {
                crate::kubelet::spawn_pod(shared, &obj);
            }
            json_response(StatusCode::CREATED, &crate::list::present(res, obj))
        }
        Err(e) => write_error(res, e),
    }
}

/// Reads the current object, computes the new one with `f` and stores it.
fn update(
    shared: &Arc<Shared>,
    res: &'static Resource,
    ns: &str,
    name: &str,
    status_only: bool,
    dry_run: bool,
    f: impl FnOnce(&Value) -> Result<Value, Response<Body>>,
) -> Response<Body> {
    let mut store = shared.store();
    let Some(old) = store.get(res.storage, ns, name) else {
        return object_not_found(res, name);
    };
    let mut new = match f(&old) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if new["metadata"]["name"] != old["metadata"]["name"] {
        return status_response(
            400,
            "BadRequest",
            "the name of the object does not match the name on the URL",
            None,
        );
    }
    if res.namespaced {
        new["metadata"]["namespace"] = json!(ns);
    }
    if status_only {
        // Only status changes through /status; the client's resourceVersion still guards it.
        let status = new["status"].clone();
        let rv = new["metadata"]["resourceVersion"].clone();
        new = old.clone();
        new["status"] = status;
        new["metadata"]["resourceVersion"] = rv;
        if new["metadata"]["resourceVersion"].is_null()
            && let Some(m) = new["metadata"].as_object_mut()
        {
            m.remove("resourceVersion");
        }
    } else if has_status_subresource(res) {
        if old["status"].is_null() {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        } else {
            new["status"] = old["status"].clone();
        }
    }
    match store.update(res, new, dry_run) {
        Ok(obj) => json_response(StatusCode::OK, &crate::list::present(res, obj)),
        Err(e) => write_error(res, e),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    shared: &Arc<Shared>,
    res: &'static Resource,
    ns: &str,
    name: &str,
    status_only: bool,
    body: &[u8],
    content_type: &str,
    dry_run: bool,
) -> Response<Body> {
    let builtin = !res.group.ends_with("fluxcd.io");
    let kind = match content_type {
        "application/merge-patch+json" => "merge",
        "application/json-patch+json" => "json",
        "application/strategic-merge-patch+json" if builtin => "strategic",
        _ => {
            let mut accepted = vec![
                "application/json-patch+json",
                "application/merge-patch+json",
            ];
            if builtin {
                accepted.push("application/strategic-merge-patch+json");
            }
            return status_response(
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: {}",
                    accepted.join(", ")
                ),
                None,
            );
        }
    };
    let patch: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("error decoding patch: {e}")),
    };
    update(shared, res, ns, name, status_only, dry_run, |old| {
        let mut doc = old.clone();
        match kind {
            "merge" => {
                if !patch.is_object() {
                    return Err(bad_request("Invalid JSON Patch"));
                }
                patch::merge_patch(&mut doc, &patch);
            }
            "strategic" => {
                if !patch.is_object() {
                    return Err(bad_request("Invalid JSON Patch"));
                }
                patch::strategic_merge_patch(&mut doc, &patch).map_err(|e| bad_request(&e))?;
            }
            _ => match patch::json_patch(&mut doc, &patch) {
                Ok(()) => {}
                Err(JsonPatchError::Decode(m)) => return Err(bad_request(&m)),
                Err(JsonPatchError::Apply(m)) => {
                    return Err(status_response(
                        422,
                        "Invalid",
                        "the server rejected our request due to an error in our request",
                        Some(
                            json!({"causes": [{"reason": "UnexpectedServerResponse", "message": m}]}),
                        ),
                    ));
                }
            },
        }
        Ok(strip_nulls(doc))
    })
}

fn delete_one(
    shared: &Arc<Shared>,
    res: &'static Resource,
    ns: &str,
    name: &str,
    body: &[u8],
    query: &Query,
    dry_run: bool,
) -> Response<Body> {
    let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let policy = options["propagationPolicy"]
        .as_str()
        .or(query.get("propagationPolicy"))
        .unwrap_or("Background")
        .to_string();
    let mut store = shared.store();
    let Some(obj) = store.get(res.storage, ns, name) else {
        return object_not_found(res, name);
    };
    let want_uid = options["preconditions"]["uid"].as_str();
    if want_uid.is_some_and(|u| obj["metadata"]["uid"] != u) {
        return status_response(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {}, UID in object meta: {}",
                qualified(res),
                want_uid.unwrap_or(""),
                obj["metadata"]["uid"].as_str().unwrap_or("")
            ),
            None,
        );
    }
    if dry_run {
        return json_response(StatusCode::OK, &crate::list::present(res, obj));
    }
    let gone = store.delete_res(res, ns, name).unwrap_or(obj);
    if policy != "Orphan" {
        collect_garbage(&mut store, &gone);
    }
    json_response(StatusCode::OK, &crate::list::present(res, gone))
}

/// Deletes, recursively, what `owner` owns (by ownerReferences uid), as the garbage collector does.
pub(crate) fn collect_garbage(store: &mut crate::store::Store, owner: &Value) {
    let uid = owner["metadata"]["uid"].as_str().unwrap_or("").to_string();
    if uid.is_empty() {
        return;
    }
    let ns = owner["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    for storage in ["replicasets", "pods"] {
        let owned: Vec<String> = store
            .list(storage, Some(&ns))
            .into_iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["uid"] == uid.as_str())
            })
            .filter_map(|(_, o)| o["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let kind = if storage == "pods" {
            "Pod"
        } else {
            "ReplicaSet"
        };
        for name in owned {
            if let Some(gone) = store.delete(kind, &ns, &name) {
                collect_garbage(store, &gone);
            }
        }
    }
}

fn delete_collection(
    shared: &Arc<Shared>,
    target: &Target,
    query: &Query,
    dry_run: bool,
) -> Response<Body> {
    let res = target.res;
    let filter = match Filter::new(target, None, query) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    let mut store = shared.store();
    let victims: Vec<Value> = store
        .list(res.storage, target.namespace.as_deref())
        .into_iter()
        .map(|(_, o)| crate::list::present(res, o))
        .filter(|o| filter.matches(o))
        .collect();
    let mut items = Vec::new();
    for v in victims {
        let ns = v["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        if dry_run {
            items.push(v);
            continue;
        }
        if let Some(gone) = store.delete_res(res, &ns, &name) {
            collect_garbage(&mut store, &gone);
            let mut gone = crate::list::present(res, gone);
            if let Some(m) = gone.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            items.push(gone);
        }
    }
    let list = json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": store.resource_version().to_string()},
        "items": items,
    });
    json_response(StatusCode::OK, &list)
}
