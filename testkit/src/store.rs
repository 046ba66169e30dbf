//! The in-memory object store with resource versions and a change history for watches.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::discovery;
use crate::fixtures::fake_uid;
use crate::time::now_rfc3339;

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub rv: u64,
    pub kind: &'static str,
    pub storage: &'static str,
    pub object: Value,
    /// For MODIFIED: the object before, so selector watches can turn it into ADDED/DELETED.
    pub old: Option<Value>,
}

/// How a watch from an expired resourceVersion is refused, as real API servers do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// `200 OK` and one `ERROR` watch event whose Status has code 410 (reason `Expired`); open
    /// watches get the same event and end. What kube-apiserver does today.
    WatchEvent,
    /// The watch request is answered `410 Gone` with a Status; open watches just end.
    HttpStatus,
}

pub(crate) struct Store {
    /// storage name → "namespace/name" (etcd key order) → object.
    objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    rv: u64,
    history: Vec<Change>,
    tx: broadcast::Sender<Change>,
    /// The last compaction: watches from a resourceVersion below it are refused with 410 Gone, in
    /// the given way. Open watches see it change and end.
    compacted: tokio::sync::watch::Sender<(u64, Expiry)>,
}

pub(crate) fn key(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

impl Store {
    pub fn new(objects: Vec<Value>) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let mut store = Store {
            objects: BTreeMap::new(),
            rv: 0,
            history: Vec::new(),
            tx,
            compacted: tokio::sync::watch::Sender::new((0, Expiry::WatchEvent)),
        };
        let mut max_rv = 0;
        let mut namespaces: Vec<String> =
            ["default", "kube-node-lease", "kube-public", "kube-system"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        for obj in objects {
            let Some(res) = resource_of(&obj) else {
                continue;
            };
            max_rv = max_rv.max(
                meta_str(&obj, "resourceVersion")
                    .parse::<u64>()
                    .unwrap_or(0),
            );
            let ns = meta_str(&obj, "namespace").to_string();
            if !ns.is_empty() && !namespaces.contains(&ns) {
                namespaces.push(ns.clone());
            }
            let k = key(&ns, meta_str(&obj, "name"));
            store.objects.entry(res.storage).or_default().insert(k, obj);
        }
        for ns in namespaces {
            if store.get("namespaces", "", &ns).is_none() {
                let obj = json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "uid": fake_uid("namespace", ns.len() as u64 * 7919 + ns.bytes().map(u64::from).sum::<u64>()),
                                 "creationTimestamp": "2025-03-10T08:00:00Z", "resourceVersion": "1",
                                 "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"}
                });
                store
                    .objects
                    .entry("namespaces")
                    .or_default()
                    .insert(ns.clone(), obj);
            }
        }
        store.rv = max_rv.max(1000) + 1;
        store
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Tells of compactions (see [`Store::compact`]): the version compacted and how to refuse.
    pub fn compactions(&self) -> tokio::sync::watch::Receiver<(u64, Expiry)> {
        self.compacted.subscribe()
    }

    /// Forgets every resourceVersion up to now, as an etcd compaction does after other writes in the
    /// cluster have moved the version on: the version moves on by one, the history is dropped, open
    /// watches end and a watch from an older version is refused (see [`Store::expired`]).
    pub fn compact(&mut self, expiry: Expiry) {
        self.rv += 1;
        self.history.clear();
        self.compacted.send_replace((self.rv, expiry));
    }

    /// How a watch from `rv` is refused, when `rv` is older than the last compaction.
    pub fn expired(&self, rv: u64) -> Option<Expiry> {
        let (compacted, expiry) = *self.compacted.borrow();
        (rv < compacted).then_some(expiry)
    }

    /// The last compaction's version.
    pub fn compacted(&self) -> u64 {
        self.compacted.borrow().0
    }

    /// Objects of a storage, in key order, optionally in one namespace.
    pub fn list(&self, storage: &str, namespace: Option<&str>) -> Vec<(String, Value)> {
        let Some(all) = self.objects.get(storage) else {
            return Vec::new();
        };
        all.iter()
            .filter(|(_, o)| namespace.is_none_or(|ns| meta_str(o, "namespace") == ns))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect()
    }

    /// Objects of a storage in key order, after `after` (exclusive), without copying.
    pub fn scan<'a>(
        &'a self,
        storage: &str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        use std::ops::Bound;
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        self.objects
            .get(storage)
            .into_iter()
            .flat_map(move |m| m.range::<str, _>((lower, Bound::Unbounded)))
    }

    pub fn get(&self, storage: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(storage)?
            .get(&key(namespace, name))
            .cloned()
    }

    /// Changes after `rv`, oldest first.
    pub fn history_after(&self, storage: &str, rv: u64) -> Vec<Change> {
        self.history
            .iter()
            .filter(|c| c.rv > rv && c.storage == storage)
            .cloned()
            .collect()
    }

    /// Creates or replaces an object; returns the stored copy.
    pub fn apply(&mut self, mut obj: Value) -> Result<Value, String> {
        let res = resource_of(&obj).ok_or_else(|| {
            format!(
                "no resource for apiVersion {:?} kind {:?}",
                obj["apiVersion"], obj["kind"]
            )
        })?;
        if meta_str(&obj, "name").is_empty() {
            return Err("metadata.name is required".into());
        }
        if res.namespaced && meta_str(&obj, "namespace").is_empty() {
            obj["metadata"]["namespace"] = json!("default");
        }
        if obj["apiVersion"].is_null() {
            obj["apiVersion"] = json!(res.api_version());
        }
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let k = key(&ns, &name);
        self.rv += 1;
        let old = self
            .objects
            .get(res.storage)
            .and_then(|m| m.get(&k))
            .cloned();
        if let Some(old) = &old {
            for f in ["uid", "creationTimestamp"] {
                if obj["metadata"][f].is_null() {
                    obj["metadata"][f] = old["metadata"][f].clone();
                }
            }
        } else {
            if obj["metadata"]["uid"].is_null() {
                obj["metadata"]["uid"] = json!(fake_uid(&k, self.rv));
            }
            if obj["metadata"]["creationTimestamp"].is_null() {
                obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
            }
        }
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects
            .entry(res.storage)
            .or_default()
            .insert(k, obj.clone());
        let change = Change {
            rv: self.rv,
            kind: if old.is_some() { "MODIFIED" } else { "ADDED" },
            storage: res.storage,
            object: obj.clone(),
            old,
        };
        self.record(change);
        Ok(obj)
    }

    /// POST: stores a new object of `res` (name or `generateName` given; namespace already set).
    /// Sets uid, resourceVersion, creationTimestamp and, for kinds that have it, generation 1.
    pub fn create(
        &mut self,
        res: &'static discovery::Resource,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, WriteError> {
        if meta_str(&obj, "name").is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(WriteError::Invalid(
                    "metadata.name: Required value: name or generateName is required".into(),
                ));
            }
            let ns = meta_str(&obj, "namespace").to_string();
            let mut salt = self.rv;
            let name = loop {
                let candidate = format!("{prefix}{}", name_suffix(&prefix, salt));
                if self.get(res.storage, &ns, &candidate).is_none() {
                    break candidate;
                }
                salt += 7;
            };
            obj["metadata"]["name"] = json!(name);
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        if self.get(res.storage, &ns, &name).is_some() {
            return Err(WriteError::AlreadyExists(name));
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            for f in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
            ] {
                m.remove(f);
            }
        }
        if has_generation(res) {
            obj["metadata"]["generation"] = json!(1);
        }
        if dry_run {
            obj["metadata"]["uid"] = json!(fake_uid(&key(&ns, &name), self.rv + 1));
            obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
            return Ok(obj);
        }
        self.apply(obj).map_err(WriteError::Invalid)
    }

    /// PUT/PATCH result: replaces an existing object. A `metadata.resourceVersion` that is set must be
    /// the current one (else Conflict); uid and creationTimestamp are kept; generation moves on when
    /// `spec` changes; an unchanged object is not written again (no new version, no event).
    pub fn update(
        &mut self,
        res: &'static discovery::Resource,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, WriteError> {
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let Some(old) = self.get(res.storage, &ns, &name) else {
            return Err(WriteError::NotFound(name));
        };
        let rv = meta_str(&obj, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
            return Err(WriteError::Conflict(name));
        }
        for f in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
            "deletionTimestamp",
        ] {
            if old["metadata"][f].is_null() {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove(f);
                }
            } else {
                obj["metadata"][f] = old["metadata"][f].clone();
            }
        }
        obj["apiVersion"] = old["apiVersion"].clone();
        obj["kind"] = old["kind"].clone();
        if obj == old {
            return Ok(old);
        }
        if has_generation(res) && obj["spec"] != old["spec"] {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        if dry_run {
            return Ok(obj);
        }
        self.apply(obj).map_err(WriteError::Invalid)
    }

    /// Deletes one object of `res`; returns it (with the deletion's resource version).
    pub fn delete_res(
        &mut self,
        res: &'static discovery::Resource,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.delete(res.kind, namespace, name)
    }

    /// Deletes an object by kind; returns it (with the deletion's resource version).
    pub fn delete(&mut self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = discovery::for_kind("", kind)?;
        let mut obj = self
            .objects
            .get_mut(res.storage)?
            .remove(&key(namespace, name))?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(Change {
            rv: self.rv,
            kind: "DELETED",
            storage: res.storage,
            object: obj.clone(),
            old: None,
        });
        Some(obj)
    }

    fn record(&mut self, change: Change) {
        self.history.push(change.clone());
        let _ = self.tx.send(change);
    }
}

fn resource_of(obj: &Value) -> Option<&'static discovery::Resource> {
    let kind = obj["kind"].as_str()?;
    discovery::for_kind(obj["apiVersion"].as_str().unwrap_or(""), kind)
}

/// The `Status` of a 410 Gone for a watch from `rv`, worded as the real server words it.
pub(crate) fn gone_status(rv: u64, compacted: u64) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {rv} ({compacted})"),
        "reason": "Expired", "code": 410,
    })
}

/// Why a write was refused; the router words it as the real server does.
#[derive(Debug)]
pub(crate) enum WriteError {
    AlreadyExists(String),
    NotFound(String),
    Conflict(String),
    Invalid(String),
}

/// Kinds whose `metadata.generation` counts spec changes.
pub(crate) fn has_generation(res: &discovery::Resource) -> bool {
    matches!(res.storage, "deployments" | "replicasets" | "statefulsets")
        || !res.group.is_empty() && res.group.ends_with("fluxcd.io")
}

/// Five characters from the alphabet Kubernetes uses for generated names, derived from `salt`.
pub(crate) fn name_suffix(prefix: &str, salt: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in prefix.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..5)
        .map(|_| {
            h = h
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ALPHABET[((h >> 33) % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}
