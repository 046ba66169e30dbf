//! The incident fixtures with Flux installed: `tests/fixtures/flux.yaml` (a HelmRelease applied by the
//! `apps` Kustomization, a suspended Kustomization, image repositories, policies and automations)
//! applied to the fake API server, the backend Deployment labelled by the HelmRelease and the worker by
//! the Kustomization, as helm-controller and kustomize-controller label what they apply.

#![allow(dead_code)]

use backstage_testkit::{Fixtures, ServerOptions};
use serde_json::{Value, json};

use super::rig::{Rig, TOKEN};

/// Puts labels on a Deployment of the incident fixtures' `backstage` namespace.
pub fn label(rig: &Rig, deployment: &str, labels: Value) {
    let mut d = rig
        .server
        .get("Deployment", "backstage", deployment)
        .expect("deployment in the fixtures");
    for (k, v) in labels.as_object().unwrap() {
        d["metadata"]["labels"][k] = v.clone();
    }
    rig.server.apply(d);
}

/// The labels helm-controller puts on the objects of a HelmRelease in `flux-system`.
pub fn helm_labels(name: &str) -> Value {
    json!({"helm.toolkit.fluxcd.io/name": name, "helm.toolkit.fluxcd.io/namespace": "flux-system"})
}

/// A rig with Flux's kinds served and the fixtures applied; `forbidden` as in [`ServerOptions`].
pub fn flux_rig(forbidden: &[(&str, &str)]) -> Rig {
    let rig = Rig::start(ServerOptions {
        tls: true,
        token: Some(TOKEN.into()),
        forbidden: forbidden
            .iter()
            .map(|(v, r)| (v.to_string(), r.to_string()))
            .collect(),
        flux: true,
        ..ServerOptions::new(Fixtures::incident())
    });
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flux.yaml"),
    )
    .unwrap();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc).unwrap();
        rig.server.apply(value);
    }
    label(&rig, "backstage", helm_labels("backstage"));
    label(
        &rig,
        "backstage-worker",
        json!({"kustomize.toolkit.fluxcd.io/name": "backstage-worker",
               "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}),
    );
    rig
}
