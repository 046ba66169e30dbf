//! Requests: the query string, authentication, routing by path, and the verbs on one resource.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use crate::discovery::{self, Resource};
use crate::list::{get_object, list_or_watch};
use crate::logs::pod_log;
use crate::responses::{Body, full, json_response, not_found_path, qualified, status_response};
use crate::server::{RecordedRequest, Shared, lock};

pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let accept = header(header::ACCEPT);
    let user_agent = header(header::USER_AGENT);
    if let Some(l) = shared.latency {
        tokio::time::sleep(l).await;
    }
    let resp = route(&shared, req).await;
    lock(&shared.requests).push(RecordedRequest {
        method,
        path,
        query,
        accept,
        user_agent,
        status: resp.status().as_u16(),
    });
    Ok(resp)
}

fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(token) = &shared.token else {
        return true;
    };
    let got = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    got.strip_prefix("Bearer ").map(str::trim) == Some(token.as_str())
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    match path.as_str() {
        "/version" => return json_response(StatusCode::OK, &discovery::version()),
        "/healthz" | "/livez" | "/readyz" => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return r;
        }
        _ => {}
    }
    if !authorized(shared, &req) {
        return status_response(401, "Unauthorized", "Unauthorized", None);
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api"] => json_response(StatusCode::OK, &discovery::api_versions()),
        ["apis"] => json_response(StatusCode::OK, &discovery::api_group_list(shared.flux)),
        ["api", "v1"] => json_response(
            StatusCode::OK,
            &discovery::resource_list("", "v1", shared.flux).expect("core"),
        ),
        ["apis", group] => {
            let groups = discovery::api_group_list(shared.flux);
            match groups["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["name"] == *group)
            {
                Some(g) => {
                    let mut g = g.clone();
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    json_response(StatusCode::OK, &g)
                }
                None => not_found_path(),
            }
        }
        ["apis", group, version] => match discovery::resource_list(group, version, shared.flux) {
            Some(list) => json_response(StatusCode::OK, &list),
            None => not_found_path(),
        },
        ["openapi", "v3"] => json_response(StatusCode::OK, &discovery::openapi_root(shared.flux)),
        ["openapi", "v3", "api", version] => {
            match discovery::openapi_group_version("", version, shared.flux) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => not_found_path(),
            }
        }
        ["openapi", "v3", "apis", group, version] => {
            match discovery::openapi_group_version(group, version, shared.flux) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => not_found_path(),
            }
        }
        ["api", "v1", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource_request(shared, req, "", "v1", &rest).await
        }
        ["apis", group, version, rest @ ..] => {
            let (g, v) = (group.to_string(), version.to_string());
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource_request(shared, req, &g, &v, &rest).await
        }
        _ => not_found_path(),
    }
}

pub(crate) struct Target {
    pub(crate) res: &'static Resource,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) sub: Option<String>,
}

fn parse_target(group: &str, version: &str, rest: &[String], flux: bool) -> Option<Target> {
    let s = |i: usize| rest.get(i).cloned();
    let (res, namespace, name, sub) = match rest {
        [first] if first == "namespaces" => (
            discovery::find(group, version, "namespaces", flux)?,
            None,
            None,
            None,
        ),
        [first, name] if first == "namespaces" => (
            discovery::find(group, version, "namespaces", flux)?,
            None,
            Some(name.clone()),
            None,
        ),
        [first, ns, plural, ..] if first == "namespaces" => {
            let res = discovery::find(group, version, plural, flux)?;
            if !res.namespaced || rest.len() > 5 {
                return None;
            }
            (res, Some(ns.clone()), s(3), s(4))
        }
        [plural, ..] => {
            let res = discovery::find(group, version, plural, flux)?;
            if rest.len() > 3 || (res.namespaced && rest.len() > 1) {
                return None;
            }
            (res, None, s(1), s(2))
        }
        [] => return None,
    };
    Some(Target {
        res,
        namespace,
        name,
        sub,
    })
}

pub(crate) fn forbidden(shared: &Shared, verb: &str, target: &Target) -> Option<Response<Body>> {
    let res = target.res;
    let resource = match &target.sub {
        Some(sub) => format!("{}/{sub}", res.plural),
        None => res.plural.to_string(),
    };
    let hit = shared.forbidden.iter().any(|(v, r)| {
        (v == verb || v == "*")
            && (r == &resource
                || *r == qualified(res)
                || r == "*"
                || (target.sub.is_none() && r == res.plural))
    });
    if !hit {
        return None;
    }
    let subject = match &target.name {
        Some(n) => format!("{} \"{n}\"", qualified(res)),
        None => qualified(res),
    };
    let scope = match &target.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let message = format!(
        "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
        shared.user, res.group
    );
    let mut details = json!({"kind": res.plural});
    if let Some(n) = &target.name {
        details["name"] = json!(n);
    }
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    Some(status_response(403, "Forbidden", &message, Some(details)))
}

async fn resource_request(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    group: &str,
    version: &str,
    rest: &[String],
) -> Response<Body> {
    let Some(target) = parse_target(group, version, rest, shared.flux) else {
        return not_found_path();
    };
    let query = Query::parse(req.uri().query());
    // exec and port-forward are "connect" subresources: websocket clients GET them, SPDY clients POST.
    let is_connect = matches!(target.sub.as_deref(), Some("exec" | "portforward"));
    let is_write = !is_connect
        && matches!(
            *req.method(),
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
    let method_ok =
        req.method() == Method::GET || (is_connect && req.method() == Method::POST) || is_write;
    if !method_ok {
        return status_response(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        );
    }
    if is_write {
        let verb = match (req.method().clone(), &target.name) {
            (Method::POST, _) => "create",
            (Method::PUT, _) => "update",
            (Method::PATCH, _) => "patch",
            (_, Some(_)) => "delete",
            (_, None) => "deletecollection",
        };
        if let Some(r) = forbidden(shared, verb, &target) {
            return r;
        }
        return crate::write::write(shared, req, &target, &query).await;
    }
    let watch = query.flag("watch");
    // The verb comes from the method: a websocket upgrade (GET) of exec or port-forward is `get`, a
    // SPDY one (POST) `create`. Since Kubernetes 1.35 (KEP-4006, AuthorizePodWebsocketUpgradeCreatePermission)
    // the API server also checks `create` on a websocket upgrade, after `get`.
    let verbs: &[&str] = match (&target.name, &target.sub, watch) {
        (_, Some(_), _) if is_connect && req.method() == Method::GET => &["get", "create"],
        (_, Some(_), _) if is_connect => &["create"],
        (Some(_), _, true) => &["watch"],
        (Some(_), _, false) => &["get"],
        (None, _, true) => &["watch"],
        (None, _, false) => &["list"],
    };
    for verb in verbs {
        if let Some(r) = forbidden(shared, verb, &target) {
            return r;
        }
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match (&target.name, target.sub.as_deref()) {
        (Some(name), None) if !watch => get_object(shared, &target, name, &accept, &query),
        (Some(name), Some("log")) if target.res.plural == "pods" => pod_log(
            shared,
            target.namespace.as_deref().unwrap_or(""),
            name,
            &query,
        ),
        (Some(name), Some("exec")) if target.res.plural == "pods" => {
            let ns = target.namespace.clone().unwrap_or_default();
            crate::exec::exec(shared.clone(), req, &ns, name, &query).await
        }
        (Some(name), Some("portforward")) if target.res.plural == "pods" => {
            let ns = target.namespace.clone().unwrap_or_default();
            crate::portforward::port_forward(shared.clone(), req, &ns, name, &query).await
        }
        (Some(_), Some(_)) => not_found_path(),
        (name, None) => list_or_watch(shared, &target, name.as_deref(), &accept, &query, watch),
        (None, Some(_)) => not_found_path(),
    }
}
