//! Flux awareness of `health` and `version`, against the fake API server: Deployments without Flux's
//! labels (nothing asked, nothing said), labels on a cluster without the Flux CRDs (404: named from the
//! labels, never an error).

#[path = "support/rig.rs"]
mod rig;

use rig::{Rig, json, run};
use serde_json::{Value, json};

/// Puts Flux's labels on a Deployment of the incident fixtures.
fn label(rig: &Rig, deployment: &str, labels: Value) {
    let mut d = rig
        .server
        .get("Deployment", "backstage", deployment)
        .expect("deployment in the fixtures");
    for (k, v) in labels.as_object().unwrap() {
        d["metadata"]["labels"][k] = v.clone();
    }
    rig.server.apply(d);
}

fn helm_labels(name: &str) -> Value {
    json!({"helm.toolkit.fluxcd.io/name": name, "helm.toolkit.fluxcd.io/namespace": "flux-system"})
}

/// Paths of the requests made to a Flux API group.
fn flux_requests(rig: &Rig) -> Vec<String> {
    rig.server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("fluxcd.io"))
        .map(|r| format!("{} {}", r.status, r.path))
        .collect()
}

#[test]
fn without_flux_labels_nothing_is_asked_and_nothing_said() {
    let rig = Rig::incident();
    let (code, out, err) = run(rig.plugin().arg("health"));
    assert_eq!(code, 1, "{err}");
    assert!(!out.contains("Flux"), "{out}");
    assert_eq!(err, "");
    let (code, out, _) = run(rig.plugin().args(["health", "-o", "json"]));
    assert_eq!(code, 1);
    assert_eq!(json(&out)["flux"], Value::Null);
    let (code, out, _) = run(rig.plugin().args(["version", "-o", "json"]));
    assert_eq!(code, 0);
    assert_eq!(json(&out)["flux"], Value::Null);
    assert_eq!(flux_requests(&rig), Vec::<String>::new());
}

#[test]
fn labels_on_a_cluster_without_flux_name_the_release_and_change_nothing_else() {
    let rig = Rig::incident();
    let (before_code, before, _) = run(rig.plugin().arg("health"));
    label(&rig, "backstage", helm_labels("backstage"));
    label(&rig, "backstage-worker", helm_labels("backstage"));
    rig.server.clear_requests();

    let (code, out, err) = run(rig.plugin().arg("health"));
    assert_eq!(code, before_code, "{err}");
    assert_eq!(
        err, "",
        "a cluster without Flux is no error and needs no note"
    );
    let line = "Managed by Flux HelmRelease flux-system/backstage (the cluster serves no helmreleases.helm.toolkit.fluxcd.io): deployment/backstage, deployment/backstage-worker";
    assert!(out.contains(&format!("\n\n{line}\n\n")), "{out}");
    // That line and a blank one are all that is new.
    assert_eq!(
        out.lines().count(),
        before.lines().count() + 2,
        "{before}\n{out}"
    );
    // Every version Flux has served is tried, newest first, each answered 404 (the image kinds too:
    // image automation may be installed without helm-controller).
    let requests = flux_requests(&rig);
    for version in ["v2", "v2beta2", "v2beta1"] {
        assert!(
            requests.contains(&format!(
                "404 /apis/helm.toolkit.fluxcd.io/{version}/namespaces/flux-system/helmreleases"
            )),
            "{requests:?}"
        );
    }
    assert!(
        requests.iter().all(|r| r.starts_with("404 ")),
        "{requests:?}"
    );

    let (code, out, err) = run(rig.plugin().args(["health", "-o", "json"]));
    assert_eq!(code, before_code, "{err}");
    let flux = &json(&out)["flux"];
    assert_eq!(
        flux,
        &json!({
            "managers": [{
                "kind": "HelmRelease", "namespace": "flux-system", "name": "backstage",
                "workloads": ["deployment/backstage", "deployment/backstage-worker"],
                "read": "notServed", "apiVersion": null, "suspended": null, "revision": null,
                "lastAttemptedRevision": null, "ready": null, "appliedBy": null
            }],
            "imagePolicies": [],
            "notes": []
        })
    );
    let (code, out, err) = run(rig.plugin().args(["version", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(&json(&out)["flux"], flux);
    let (code, out, _) = run(rig.plugin().arg("version"));
    assert_eq!(code, 0);
    assert!(out.contains(&format!("\n{line}\n")), "{out}");
}
