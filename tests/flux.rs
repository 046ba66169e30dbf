//! Flux awareness of `health` and `version`, against the fake API server: Deployments without Flux's
//! labels (nothing asked, nothing said), labels on a cluster without the Flux CRDs (404: named from the
//! labels, never an error).

#[path = "support/rig.rs"]
mod rig;

use kubectl_backstage::kube::Cluster;
use kubectl_backstage::kube::flux::annotate_suspended_flux;
use kubectl_backstage::model::flux::{
    FluxKind, FluxObjectRef, SUSPENDED_ANNOTATION, parse_suspended_annotation,
};
use kubectl_backstage::settings::{ClusterSettings, KubeconfigSource};
use rig::{Rig, json, run, stdout_of};
use serde_json::{Value, json};

async fn cluster(rig: &Rig) -> Cluster {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Cluster::connect(&ClusterSettings {
        kubeconfig: KubeconfigSource::Explicit(rig.kubeconfig.clone()),
        context: None,
        namespace: None,
        request_timeout: Some(std::time::Duration::from_secs(30)),
    })
    .await
    .unwrap()
}

/// What the real kubectl reads at a JSONPath of one object.
fn kubectl_jsonpath(rig: &Rig, args: &[&str], path: &str) -> String {
    let mut cmd = rig.kubectl();
    cmd.args(["get"])
        .args(args)
        .arg(format!("-o=jsonpath={path}"));
    stdout_of(cmd)
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suspended_flux_annotation_is_written_read_back_and_removed() {
    let rig = Rig::incident();
    let cluster = cluster(&rig).await;
    let suspended = vec![
        FluxObjectRef::new(FluxKind::HelmRelease, "flux-system", "backstage"),
        FluxObjectRef::new(FluxKind::ImageUpdateAutomation, "flux-system", "portal"),
    ];
    annotate_suspended_flux(&cluster, "backstage", &suspended)
        .await
        .unwrap();
    let stored = rig
        .server
        .get("Deployment", "backstage", "backstage")
        .unwrap();
    let value = stored["metadata"]["annotations"][SUSPENDED_ANNOTATION]
        .as_str()
        .expect("annotation stored")
        .to_string();
    assert_eq!(
        value,
        "HelmRelease/flux-system/backstage,ImageUpdateAutomation/flux-system/portal"
    );
    assert_eq!(parse_suspended_annotation(&value), Ok(suspended));
    // The other annotations are kept (a merge patch).
    assert_eq!(
        stored["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "7"
    );
    let path = "{.metadata.annotations.kubectl-backstage\\.io/suspended-flux}";
    let args = ["deployment", "backstage", "-n", "backstage"];
    assert_eq!(kubectl_jsonpath(&rig, &args, path), value);

    annotate_suspended_flux(&cluster, "backstage", &[])
        .await
        .unwrap();
    let stored = rig
        .server
        .get("Deployment", "backstage", "backstage")
        .unwrap();
    assert_eq!(
        stored["metadata"]["annotations"].get(SUSPENDED_ANNOTATION),
        None
    );
    assert_eq!(kubectl_jsonpath(&rig, &args, path), "");
}
