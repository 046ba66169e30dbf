//! A Flux controller simulation: when a Deployment that a HelmRelease or Kustomization manages (by
//! the `helm.toolkit.fluxcd.io/name`/`namespace` or `kustomize.toolkit.fluxcd.io/name`/`namespace`
//! labels Flux puts on what it applies) has a container image other than the one the test says that
//! release wants, and the release is not `spec.suspend: true`, the image is set back after a short
//! delay — as Flux's drift correction and next reconcile do. Resuming a release reconciles it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::discovery;
use crate::server::{Shared, lock};
use crate::store::Change;

pub(crate) struct Flux {
    pub enabled: bool,
    pub delay: Duration,
    /// (kind, namespace, name) of a release → (container, image) it wants.
    pub desired: HashMap<(String, String, String), Vec<(String, String)>>,
}

impl Default for Flux {
    fn default() -> Self {
        Flux {
            enabled: false,
            delay: Duration::from_millis(500),
            desired: HashMap::new(),
        }
    }
}

/// The release (kind, namespace, name) managing a Deployment, from Flux's labels.
pub(crate) fn owner_of(deploy: &Value) -> Option<(String, String, String)> {
    let labels = &deploy["metadata"]["labels"];
    for (kind, prefix) in [
        ("HelmRelease", "helm.toolkit.fluxcd.io"),
        ("Kustomization", "kustomize.toolkit.fluxcd.io"),
    ] {
        if let (Some(name), Some(ns)) = (
            labels[format!("{prefix}/name")].as_str(),
            labels[format!("{prefix}/namespace")].as_str(),
        ) {
            return Some((kind.to_string(), ns.to_string(), name.to_string()));
        }
    }
    None
}

fn storage_of(kind: &str) -> &'static str {
    if kind == "HelmRelease" {
        "helmreleases"
    } else {
        "kustomizations"
    }
}

fn images(deploy: &Value) -> Vec<(String, String)> {
    deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["name"].as_str()?.to_string(),
                c["image"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Follows the store and schedules reconciles of the Deployments a change concerns.
pub(crate) async fn controller(shared: Arc<Shared>, mut rx: broadcast::Receiver<Change>) {
    loop {
        let change = match rx.recv().await {
            Ok(c) => c,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        if change.kind == "DELETED" || !lock(&shared.flux_sim).enabled {
            continue;
        }
        let targets: Vec<(String, String)> = match change.storage {
            "deployments" => {
                let images_changed = change
                    .old
                    .as_ref()
                    .is_none_or(|old| images(old) != images(&change.object));
                if !images_changed || owner_of(&change.object).is_none() {
                    continue;
                }
                vec![(
                    change.object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    change.object["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )]
            }
            "helmreleases" | "kustomizations" => {
                let kind = if change.storage == "helmreleases" {
                    "HelmRelease"
                } else {
                    "Kustomization"
                };
                let ns = change.object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("");
                let name = change.object["metadata"]["name"].as_str().unwrap_or("");
                let owner = (kind.to_string(), ns.to_string(), name.to_string());
                shared
                    .store()
                    .list("deployments", None)
                    .into_iter()
                    .filter(|(_, d)| owner_of(d).as_ref() == Some(&owner))
                    .map(|(_, d)| {
                        (
                            d["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("")
                                .to_string(),
                            d["metadata"]["name"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            }
            _ => continue,
        };
        let delay = lock(&shared.flux_sim).delay;
        for (ns, name) in targets {
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                reconcile(&shared, &ns, &name);
            });
        }
    }
}

/// Sets the Deployment's images back to what its release wants, unless the release is suspended.
fn reconcile(shared: &Shared, ns: &str, name: &str) {
    let desired = {
        let flux = lock(&shared.flux_sim);
        if !flux.enabled {
            return;
        }
        flux.desired.clone()
    };
    let mut store = shared.store();
    let Some(deploy) = store.get("deployments", ns, name) else {
        return;
    };
    let Some(owner) = owner_of(&deploy) else {
        return;
    };
    let Some(release) = store.get(storage_of(&owner.0), &owner.1, &owner.2) else {
        return;
    };
    if release["spec"]["suspend"] == true {
        return;
    }
    let Some(want) = desired.get(&owner) else {
        return;
    };
    let mut new = deploy.clone();
    let mut changed = false;
    if let Some(cs) = new["spec"]["template"]["spec"]["containers"].as_array_mut() {
        for c in cs {
            if let Some((_, image)) = want.iter().find(|(n, _)| c["name"] == n.as_str())
                && c["image"] != image.as_str()
            {
                c["image"] = json!(image);
                changed = true;
            }
        }
    }
    if changed {
        let res = discovery::find("apps", "v1", "deployments", false).expect("deployments");
        let _ = store.update(res, new, false);
    }
}
