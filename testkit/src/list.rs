//! Get and list: object presentation (events.k8s.io/v1, tables, partial metadata), selectors, pages.

use std::sync::Arc;

use base64::Engine as _;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::discovery::Resource;
use crate::responses::{
    Body, bad_request, json_response, json_response_typed, object_not_found, status_response,
};
use crate::router::{Query, Target};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::table::{self, Include};
use crate::watch::start_watch;

/// The events.k8s.io/v1 view of a core/v1 Event.
fn event_v1(ev: &Value) -> Value {
    let mut out = json!({
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": ev["metadata"],
        "eventTime": ev["eventTime"],
        "reportingController": ev["reportingComponent"],
        "reportingInstance": ev["reportingInstance"],
        "action": ev["action"],
        "reason": ev["reason"],
        "regarding": ev["involvedObject"],
        "note": ev["message"],
        "type": ev["type"],
    });
    for (from, to) in [
        ("series", "series"),
        ("related", "related"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ] {
        if !ev[from].is_null() {
            out[to] = ev[from].clone();
        }
    }
    if let Some(m) = out.as_object_mut() {
        m.retain(|_, v| !v.is_null() && *v != json!(""));
        if !m.contains_key("eventTime") {
            m.insert("eventTime".into(), Value::Null);
        }
    }
    out
}

pub(crate) fn present(res: &Resource, obj: Value) -> Value {
    if res.is_events_v1() {
        event_v1(&obj)
    } else if res.flux && obj["apiVersion"] != res.api_version().as_str() {
        // One stored object, served in each version of its group (the fake converts nothing else).
        let mut obj = obj;
        obj["apiVersion"] = json!(res.api_version());
        obj
    } else {
        obj
    }
}

pub(crate) fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

pub(crate) fn wants_partial(accept: &str) -> bool {
    accept.contains("as=PartialObjectMetadata")
}

pub(crate) fn get_object(
    shared: &Shared,
    target: &Target,
    name: &str,
    accept: &str,
    query: &Query,
) -> Response<Body> {
    let ns = target.namespace.as_deref().unwrap_or("");
    let obj = shared.store().get(target.res.storage, ns, name);
    let Some(obj) = obj else {
        return object_not_found(target.res, name);
    };
    let obj = present(target.res, obj);
    if wants_table(accept) {
        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        let include = Include::parse(query.get("includeObject"));
        let t = table::table(target.res.storage, &[obj], include, meta, true);
        return json_response_typed(
            StatusCode::OK,
            &t,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        );
    }
    if wants_partial(accept) {
        return json_response(StatusCode::OK, &table::partial_metadata(&obj));
    }
    json_response(StatusCode::OK, &obj)
}

pub(crate) struct Filter {
    pub(crate) namespace: Option<String>,
    name: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub(crate) fn new(
        target: &Target,
        name: Option<&str>,
        query: &Query,
    ) -> Result<Filter, String> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
        let field_kind = if target.res.is_events_v1() {
            "events.v1"
        } else {
            target.res.plural
        };
        let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), field_kind)?;
        Ok(Filter {
            namespace: target.namespace.clone(),
            name: name.map(str::to_string),
            labels,
            fields,
        })
    }

    /// `obj` is the presented object (events.k8s.io view for those).
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"] == ns)
            && self
                .name
                .as_deref()
                .is_none_or(|n| obj["metadata"]["name"] == n)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

pub(crate) fn list_or_watch(
    shared: &Arc<Shared>,
    target: &Target,
    name: Option<&str>,
    accept: &str,
    query: &Query,
    watch: bool,
) -> Response<Body> {
    let filter = match Filter::new(target, name, query) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    if watch {
        return start_watch(shared, target.res, filter, accept, query);
    }
    let start_after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(tok) => {
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(tok.trim_end_matches('='))
                .ok()
                .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok());
            match decoded {
                Some(t) => Some(t.start),
                None => {
                    return status_response(
                        400,
                        "BadRequest",
                        "continue key is not valid: illegal base64 data at input byte 0",
                        None,
                    );
                }
            }
        }
        None => None,
    };
    let requested = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let limit = match (requested, shared.max_page) {
        (Some(l), Some(m)) => Some(l.min(m)),
        (a, b) => a.or(b),
    };
    // One pass under the lock: copy the page, only count the rest.
    let (rv, page, remaining) = {
        let store = shared.store();
        let mut page: Vec<(String, Value)> = Vec::new();
        let mut remaining = 0usize;
        for (k, o) in store.scan(target.res.storage, start_after.as_deref()) {
            if filter
                .namespace
                .as_deref()
                .is_some_and(|ns| o["metadata"]["namespace"] != ns)
            {
                continue;
            }
            let full_page = limit.is_some_and(|l| page.len() >= l);
            if target.res.is_events_v1() {
                let presented = present(target.res, o.clone());
                if filter.matches(&presented) {
                    if full_page {
                        remaining += 1;
                    } else {
                        page.push((k.clone(), presented));
                    }
                }
            } else if filter.matches(o) {
                if full_page {
                    remaining += 1;
                } else {
                    page.push((k.clone(), o.clone()));
                }
            }
        }
        (store.resource_version(), page, remaining)
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if remaining > 0 {
        let last = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
        let tok = serde_json::to_vec(&ContinueToken {
            v: "meta.k8s.io/v1".into(),
            rv,
            start: last,
        })
        .unwrap_or_default();
        meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok));
        meta["remainingItemCount"] = json!(remaining);
    }
    let objects: Vec<Value> = page.into_iter().map(|(_, o)| o).collect();
    if wants_table(accept) {
        let include = Include::parse(query.get("includeObject"));
        let t = table::table(target.res.storage, &objects, include, meta, true);
        return json_response_typed(
            StatusCode::OK,
            &t,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        );
    }
    if wants_partial(accept) {
        let items: Vec<Value> = objects.iter().map(table::partial_metadata).collect();
        let v = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items});
        return json_response(StatusCode::OK, &v);
    }
    // As the real server: list items carry neither kind nor apiVersion.
    let items: Vec<Value> = objects
        .into_iter()
        .map(|mut o| {
            if let Some(m) = o.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            o
        })
        .collect();
    let v = json!({
        "kind": format!("{}List", target.res.kind),
        "apiVersion": target.res.api_version(),
        "metadata": meta,
        "items": items,
    });
    json_response(StatusCode::OK, &v)
}
