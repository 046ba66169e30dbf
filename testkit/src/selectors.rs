//! Label and field selectors with the API server's syntax.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed `labelSelector`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a set of values in parentheses, got {s:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement {
                    key: key.trim().to_string(),
                    op: Op::NotExists,
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotEq(v.trim().into()),
                }
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq(v.trim().into()),
                }
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement {
                    key: k.trim().into(),
                    op: Op::Eq(v.trim().into()),
                }
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::NotIn(set_values(v)?),
                }
            } else if let Some((k, v)) = part.split_once(" in ") {
                Requirement {
                    key: k.trim().into(),
                    op: Op::In(set_values(v)?),
                }
            } else {
                if part.contains(' ') || part.contains('(') {
                    return Err(format!("unable to parse requirement: {part:?}"));
                }
                Requirement {
                    key: part.to_string(),
                    op: Op::Exists,
                }
            };
            if req.key.is_empty() {
                return Err(format!("unable to parse requirement: {part:?}"));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.0.iter().all(|r| {
            let val = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match &r.op {
                Op::Eq(v) => val == Some(v.as_str()),
                Op::NotEq(v) => val != Some(v.as_str()),
                Op::In(vs) => val.is_some_and(|x| vs.iter().any(|v| v == x)),
                Op::NotIn(vs) => !val.is_some_and(|x| vs.iter().any(|v| v == x)),
                Op::Exists => val.is_some(),
                Op::NotExists => val.is_none(),
            }
        })
    }
}

/// A parsed `fieldSelector` (`=`, `==`, `!=` only, as the real server).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];
const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const EVENT_V1_FIELDS: &[&str] = &[
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
];

impl FieldSelector {
    /// Parses a field selector for `resource` (plural; `events.k8s.io` events are `events.v1`).
    pub fn parse(s: &str, resource: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let (key, eq, val) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let key = key.trim();
            let allowed = COMMON_FIELDS.contains(&key)
                || match resource {
                    "pods" => POD_FIELDS.contains(&key),
                    "events" => EVENT_FIELDS.contains(&key),
                    "events.v1" => EVENT_V1_FIELDS.contains(&key),
                    "replicasets" => key == "status.replicas",
                    "namespaces" => key == "status.phase",
                    _ => false,
                };
            if !allowed {
                return Err(format!("field label not supported: {key}"));
            }
            reqs.push((key.to_string(), eq, val.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(key, eq, val)| {
            let actual = field_value(obj, key);
            (actual == *val) == *eq
        })
    }
}

fn field_value(obj: &Value, key: &str) -> String {
    let path = match key {
        "source" => "source.component",
        k => k,
    };
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_ops() {
        let o = json!({"metadata": {"labels": {"app": "backstage", "tier": "web"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=backstage"));
        assert!(m("app==backstage,tier"));
        assert!(!m("app!=backstage"));
        assert!(m("app in (x, backstage)"));
        assert!(!m("app notin (x,backstage)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m(""));
    }

    #[test]
    fn field_ops() {
        let o = json!({"type": "Warning", "involvedObject": {"kind": "Pod"}, "source": {"component": "kubelet"}});
        let m = |s: &str| FieldSelector::parse(s, "events").unwrap().matches(&o);
        assert!(m("type=Warning"));
        assert!(m("involvedObject.kind==Pod,type!=Normal"));
        assert!(m("source=kubelet"));
        assert!(FieldSelector::parse("spec.foo=1", "events").is_err());
    }
}
