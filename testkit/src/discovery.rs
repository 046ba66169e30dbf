//! The resources the fake serves and the discovery documents kubectl reads.

use serde_json::{Value, json};

/// One served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Where the objects live in the store (events.k8s.io events are a view of core events).
    pub storage: &'static str,
    /// A Flux custom resource: served only when the server runs with Flux
    /// ([`crate::ServerOptions::flux`]); otherwise its group is absent, as without the CRDs.
    pub flux: bool,
}

const READ_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub(crate) const RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        storage: "pods",
        flux: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        storage: "events",
        flux: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        storage: "namespaces",
        flux: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        storage: "services",
        flux: false,
    },
    // Served so that a test can hold a Secret and prove that nobody read it (the requests are
    // recorded): `report` must never ask for one.
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        storage: "secrets",
        flux: false,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        storage: "configmaps",
        flux: false,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        storage: "deployments",
        flux: false,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        storage: "replicasets",
        flux: false,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        storage: "statefulsets",
        flux: false,
    },
    Resource {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        short_names: &["ing"],
        categories: &[],
        storage: "ingresses",
        flux: false,
    },
    Resource {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        storage: "events",
        flux: false,
    },
    Resource {
        group: "helm.toolkit.fluxcd.io",
        version: "v2",
        plural: "helmreleases",
        singular: "helmrelease",
        kind: "HelmRelease",
        namespaced: true,
        short_names: &["hr"],
        categories: &[],
        storage: "helmreleases",
        flux: true,
    },
    Resource {
        group: "kustomize.toolkit.fluxcd.io",
        version: "v1",
        plural: "kustomizations",
        singular: "kustomization",
        kind: "Kustomization",
        namespaced: true,
        short_names: &["ks"],
        categories: &[],
        storage: "kustomizations",
        flux: true,
    },
    Resource {
        group: "image.toolkit.fluxcd.io",
        version: "v1",
        plural: "imagepolicies",
        singular: "imagepolicy",
        kind: "ImagePolicy",
        namespaced: true,
        short_names: &["imgpol", "imagepol"],
        categories: &[],
        storage: "imagepolicies",
        flux: true,
    },
    Resource {
        group: "image.toolkit.fluxcd.io",
        version: "v1",
        plural: "imagerepositories",
        singular: "imagerepository",
        kind: "ImageRepository",
        namespaced: true,
        short_names: &["imgrepo", "imagerepo"],
        categories: &[],
        storage: "imagerepositories",
        flux: true,
    },
    Resource {
        group: "image.toolkit.fluxcd.io",
        version: "v1",
        plural: "imageupdateautomations",
        singular: "imageupdateautomation",
        kind: "ImageUpdateAutomation",
        namespaced: true,
        short_names: &[],
        categories: &[],
        storage: "imageupdateautomations",
        flux: true,
    },
    Resource {
        group: "image.toolkit.fluxcd.io",
        version: "v1beta2",
        plural: "imagepolicies",
        singular: "imagepolicy",
        kind: "ImagePolicy",
        namespaced: true,
        short_names: &["imgpol", "imagepol"],
        categories: &[],
        storage: "imagepolicies",
        flux: true,
    },
    Resource {
        group: "image.toolkit.fluxcd.io",
        version: "v1beta2",
        plural: "imagerepositories",
        singular: "imagerepository",
        kind: "ImageRepository",
        namespaced: true,
        short_names: &["imgrepo", "imagerepo"],
        categories: &[],
        storage: "imagerepositories",
        flux: true,
    },
    Resource {
        group: "image.toolkit.fluxcd.io",
        version: "v1beta2",
        plural: "imageupdateautomations",
        singular: "imageupdateautomation",
        kind: "ImageUpdateAutomation",
        namespaced: true,
        short_names: &[],
        categories: &[],
        storage: "imageupdateautomations",
        flux: true,
    },
];

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io"
    }
}

/// The resources served: all but the Flux kinds unless `flux`.
pub(crate) fn served(flux: bool) -> impl Iterator<Item = &'static Resource> {
    RESOURCES.iter().filter(move |r| flux || !r.flux)
}

/// The resource served at `group/version/plural`.
pub(crate) fn find(
    group: &str,
    version: &str,
    plural: &str,
    flux: bool,
) -> Option<&'static Resource> {
    served(flux).find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The store a `kind` (with its apiVersion) belongs to.
pub(crate) fn for_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.group == group)
        .or_else(|| RESOURCES.iter().find(|r| r.kind == kind))
}

pub(crate) fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:443"}]
    })
}

pub(crate) fn api_group_list(flux: bool) -> Value {
    // Groups in the order first served, versions in order (the first is preferred).
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in served(flux).filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => groups.push((r.group, vec![r.version])),
        }
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let gvs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `APIResourceList` for a group version, or None when it is not served.
pub(crate) fn resource_list(group: &str, version: &str, flux: bool) -> Option<Value> {
    let mut resources: Vec<Value> = served(flux)
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            let mut v = json!({
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": READ_VERBS,
            });
            if !r.short_names.is_empty() {
                v["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                v["categories"] = json!(r.categories);
            }
            v
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    if group.is_empty() {
        resources.extend([
            json!({"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]}),
            json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}),
            json!({"name": "pods/portforward", "singularName": "", "namespaced": true, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]}),
            json!({"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch", "update"]}),
        ]);
    }
    if group.ends_with(".toolkit.fluxcd.io") {
        let subs: Vec<Value> = resources
            .iter()
            .map(|r| json!({"name": format!("{}/status", r["name"].as_str().unwrap_or("")), "singularName": "",
                            "namespaced": true, "kind": r["kind"], "verbs": ["get", "patch", "update"]}))
            .collect();
        resources.extend(subs);
    }
    if group == "apps" {
        for (name, kind) in [
            ("deployments/scale", "Scale"),
            ("deployments/status", "Deployment"),
            ("replicasets/status", "ReplicaSet"),
            ("statefulsets/status", "StatefulSet"),
        ] {
            let group_kind = if kind == "Scale" {
                json!({"group": "autoscaling", "version": "v1", "kind": kind})
            } else {
                json!({"kind": kind})
            };
            let mut v = json!({"name": name, "singularName": "", "namespaced": true, "verbs": ["get", "patch", "update"]});
            for (k, val) in group_kind.as_object().into_iter().flatten() {
                v[k] = val.clone();
            }
            resources.push(v);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "emulationMajor": "1",
        "emulationMinor": "32",
        "gitVersion": "v1.32.6",
        "gitCommit": "5a3e4b4e0d7c9a2b4c3d5e6f7a8b9c0d1e2f3a4b",
        "gitTreeState": "clean",
        "buildDate": "2026-06-17T18:00:00Z",
        "goVersion": "go1.23.10",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/openapi/v3`: where each group version's OpenAPI v3 document is.
pub(crate) fn openapi_root(flux: bool) -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<(&str, &str)> = served(flux).map(|r| (r.group, r.version)).collect();
    gvs.dedup();
    for (g, v) in gvs {
        let p = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        let url = format!(
            "/openapi/v3/{p}?hash={}",
            crate::fixtures::fake_uid(&p, 3)
                .replace('-', "")
                .to_uppercase()
        );
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// The OpenAPI v3 document of one group version: only the operations (with their
/// `x-kubernetes-group-version-kind` and query parameters), which is what kubectl reads to learn
/// that the server validates fields itself (`fieldValidation`), so it skips client-side validation.
pub(crate) fn openapi_group_version(group: &str, version: &str, flux: bool) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let params = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
            .collect()
    };
    for r in served(flux).filter(|r| r.group == group && r.version == version) {
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = |action: &str, names: &[&str]| {
            json!({"operationId": format!("{action}{}", r.kind), "x-kubernetes-action": action,
                   "x-kubernetes-group-version-kind": gvk, "parameters": params(names),
                   "responses": {"200": {"description": "OK"}}})
        };
        paths.insert(
            collection.clone(),
            json!({
                "get": op("list", &["labelSelector", "fieldSelector", "limit", "continue", "watch"]),
                "post": op("post", &["dryRun", "fieldManager", "fieldValidation"]),
                "delete": op("deletecollection", &["labelSelector", "fieldSelector", "dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": op("get", &[]),
                "put": op("put", &["dryRun", "fieldManager", "fieldValidation"]),
                "patch": op("patch", &["dryRun", "fieldManager", "fieldValidation", "force"]),
                "delete": op("delete", &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
            }),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.6"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
