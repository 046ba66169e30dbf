//! The three patch formats the API server accepts, applied to JSON values (no I/O): JSON merge patch
//! (RFC 7386), strategic merge patch (Kubernetes' own: lists merged by their patch merge key) and
//! JSON patch (RFC 6902). Errors are the texts the real server puts in its Status.

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in patch {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The patch merge key of a list field, as the Kubernetes types declare it (`patchMergeKey`), by
/// the field's name and its parent's path. None: the list is replaced.
fn merge_key(path: &[String], field: &str) -> Option<&'static str> {
    let parent = path.last().map(String::as_str).unwrap_or("");
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "env" => Some("name"),
        "hostAliases" => Some("ip"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        // Container ports merge by containerPort; Service ports by port.
        "ports" if parent == "spec" && path.len() == 1 => Some("port"),
        "ports" => Some("containerPort"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

/// Primitive lists whose patch strategy is `merge` (union) rather than replace.
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch for the built-in kinds: maps merge, `null` deletes, lists with a patch merge
/// key merge element by element (`$patch: delete` removes one, `$patch: replace` replaces the list),
/// `$setElementOrder/<list>` orders the result, `$deleteFromPrimitiveList/<list>` removes values,
/// `$retainKeys` keeps only the named keys.
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    smp(target, patch, &mut Vec::new())
}

fn smp(target: &mut Value, patch: &Value, path: &mut Vec<String>) -> Result<(), String> {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = patch.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in patch {
        if k == "$retainKeys" || k == "$patch" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(gone)) =
                (t.get_mut(field).and_then(Value::as_array_mut), v.as_array())
            {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match v {
            Value::Object(_) => {
                path.push(k.clone());
                let r = smp(t.entry(k.clone()).or_insert(Value::Null), v, path);
                path.pop();
                r?;
            }
            Value::Array(items) => {
                let merged = merge_list(t.get(k), items, path, k)?;
                t.insert(k.clone(), merged);
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    for (k, order) in patch {
        let Some(field) = k.strip_prefix("$setElementOrder/") else {
            continue;
        };
        let (Some(list), Some(order)) = (
            t.get_mut(field).and_then(Value::as_array_mut),
            order.as_array(),
        ) else {
            continue;
        };
        let key = merge_key(path, field);
        let pos = |x: &Value| {
            order.iter().position(|o| match key {
                Some(key) => o.get(key) == x.get(key),
                None => o == x,
            })
        };
        // Elements named in the order come first, in that order; others keep their place after.
        list.sort_by_key(|x| pos(x).unwrap_or(usize::MAX));
    }
    Ok(())
}

fn merge_list(
    current: Option<&Value>,
    items: &[Value],
    path: &mut Vec<String>,
    field: &str,
) -> Result<Value, String> {
    let current: Vec<Value> = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let kept: Vec<Value> = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return Ok(Value::Array(kept));
    }
    if merges_primitives(field) {
        let mut out = current;
        for i in items {
            if !out.contains(i) {
                out.push(i.clone());
            }
        }
        return Ok(Value::Array(out));
    }
    let Some(key) = merge_key(path, field) else {
        return Ok(Value::Array(items.to_vec()));
    };
    let mut out = current;
    for item in items {
        let Some(id) = item.get(key) else {
            return Err(format!(
                "map: {item} does not contain declared merge key: {key}"
            ));
        };
        let at = out.iter().position(|x| x.get(key) == Some(id));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(at) = at {
                out.remove(at);
            }
            continue;
        }
        path.push(field.to_string());
        let r = match at {
            Some(at) => smp(&mut out[at], item, path),
            None => {
                let mut fresh = Value::Object(Map::new());
                let r = smp(&mut fresh, item, path);
                out.push(fresh);
                r
            }
        };
        path.pop();
        r?;
    }
    Ok(Value::Array(out))
}

/// RFC 6902 on `doc`. Errors are worded as evanphx/json-patch (the API server's library) words them.
pub(crate) fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), JsonPatchError> {
    let Some(ops) = ops.as_array() else {
        return Err(JsonPatchError::Decode(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into(),
        ));
    };
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("");
        let path = op["path"].as_str().unwrap_or("");
        let apply = |doc: &mut Value| -> Result<(), String> {
            match kind {
                "add" => add(doc, path, value_of(op)?),
                "remove" => remove(doc, path).map(|_| ()),
                "replace" => {
                    let slot = pointer_mut(doc, path).ok_or_else(|| {
                        format!("replace operation does not apply: doc is missing key: {path}: missing value")
                    })?;
                    *slot = value_of(op)?;
                    Ok(())
                }
                "move" => {
                    let from = op["from"].as_str().unwrap_or("");
                    let v = remove(doc, from)?;
                    add(doc, path, v)
                }
                "copy" => {
                    let from = op["from"].as_str().unwrap_or("");
                    let v = doc
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| format!("copy operation does not apply: doc is missing from path: {from}: missing value"))?;
                    add(doc, path, v)
                }
                "test" => {
                    let want = value_of(op)?;
                    match doc.pointer(path) {
                        Some(got) if *got == want => Ok(()),
                        None if want.is_null() => Ok(()),
                        _ => Err(format!("testing value {path} failed: test failed")),
                    }
                }
                other => Err(format!("Unexpected kind: {other}")),
            }
        };
        apply(doc).map_err(JsonPatchError::Apply)?;
    }
    Ok(())
}

#[derive(Debug)]
pub(crate) enum JsonPatchError {
    /// The patch is not a JSON patch document: 400.
    Decode(String),
    /// An operation does not apply: 422.
    Apply(String),
}

fn value_of(op: &Value) -> Result<Value, String> {
    op.get("value")
        .cloned()
        .ok_or_else(|| "missing value".to_string())
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Option<(&str, String)> {
    let (parent, last) = path.rsplit_once('/')?;
    Some((parent, unescape(last)))
}

fn pointer_mut<'a>(doc: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    if path.is_empty() {
        return Some(doc);
    }
    doc.pointer_mut(path)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path).ok_or_else(|| {
        format!("add operation does not apply: doc is missing path: \"{path}\": missing value")
    })?;
    let missing =
        || format!("add operation does not apply: doc is missing path: \"{path}\": missing value");
    match pointer_mut(doc, parent).ok_or_else(missing)? {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let at = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| {
                        format!("Unable to access invalid index: {last}: invalid index referenced")
                    })?
            };
            a.insert(at, value);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let missing = || {
        format!("remove operation does not apply: doc is missing path: \"{path}\": missing value")
    };
    let (parent, last) = split(path).ok_or_else(missing)?;
    match pointer_mut(doc, parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(missing)?;
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_example() {
        let mut doc = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"], "content": "This will be unchanged"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]});
        merge_patch(&mut doc, &patch);
        assert_eq!(
            doc,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"], "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
    }

    #[test]
    fn strategic_merges_containers_and_env_by_name() {
        let mut doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "backend", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 7007, "name": "http"}]},
            {"name": "sidecar", "image": "s:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "backend"}, {"name": "sidecar"}],
            "containers": [{"name": "backend", "image": "a:2", "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}],
                            "ports": [{"containerPort": 9464, "name": "metrics"}]}]
        }}}});
        strategic_merge_patch(&mut doc, &patch).unwrap();
        let c = &doc["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["image"], "a:2");
        assert_eq!(c[0]["env"], json!([{"name": "B", "value": "3"}]));
        assert_eq!(
            c[0]["ports"],
            json!([{"containerPort": 7007, "name": "http"}, {"containerPort": 9464, "name": "metrics"}])
        );
        assert_eq!(c[1], json!({"name": "sidecar", "image": "s:1"}));
        assert_eq!(c.as_array().unwrap().len(), 2);
    }

    #[test]
    fn strategic_null_deletes_and_unkeyed_lists_replace() {
        let mut doc = json!({"metadata": {"annotations": {"a": "1", "b": "2"}}, "spec": {"args": ["x", "y"]}});
        strategic_merge_patch(
            &mut doc,
            &json!({"metadata": {"annotations": {"a": null}}, "spec": {"args": ["z"]}}),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"annotations": {"b": "2"}}, "spec": {"args": ["z"]}})
        );
    }

    #[test]
    fn json_patch_ops_and_failed_test() {
        let mut doc = json!({"spec": {"replicas": 1, "list": [1, 2]}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/list/-", "value": 3},
                {"op": "add", "path": "/spec/list/0", "value": 0},
                {"op": "remove", "path": "/spec/list/1"},
                {"op": "add", "path": "/metadata", "value": {"a~b/c": 1}}
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"replicas": 3, "list": [0, 2, 3]}, "metadata": {"a~b/c": 1}})
        );
        let err = json_patch(
            &mut doc,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 1}]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, JsonPatchError::Apply(m) if m == "testing value /spec/replicas failed: test failed"),
            "{err:?}"
        );
        let err = json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
        assert!(matches!(err, JsonPatchError::Apply(_)));
    }
}
