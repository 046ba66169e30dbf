//! Flux awareness of `health` and `version`, against the fake API server: Deployments without Flux's
//! labels (nothing asked, nothing said), labels on a cluster without the Flux CRDs (404: named from the
//! labels, never an error), a cluster with Flux (`tests/fixtures/flux.yaml`: a HelmRelease, a suspended
//! Kustomization, image repositories, policies and automations; every kind shown exactly and compared
//! with what the real kubectl reads), forbidden Flux reads (a note, never a failure), and the
//! suspend / resume / annotate writes read back from the fake's store and with kubectl.

#[path = "support/flux_rig.rs"]
mod flux_rig;
#[path = "support/rig.rs"]
mod rig;

use flux_rig::{flux_rig, helm_labels, label};
use kubectl_backstage::kube::Cluster;
use kubectl_backstage::kube::flux::{annotate_suspended_flux, set_suspended};
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

const HELM_LINE: &str = "Managed by Flux HelmRelease flux-system/backstage (suspended: no, revision 1.4.2, Ready True, applied by Kustomization flux-system/apps): deployment/backstage";
const KUSTOMIZATION_LINE: &str = "Managed by Flux Kustomization flux-system/backstage-worker (suspended: yes, revision main@sha1:5f3c2a1d9e8b7c6a5f4e3d2c1b0a9f8e7d6c5b4a, Ready True): deployment/backstage-worker";
const IMAGE_LINE: &str = "Image automation: ImagePolicy flux-system/backstage (ImageRepository flux-system/backstage, hmctspublic.azurecr.io/backstage/backstage, latest hmctspublic.azurecr.io/backstage/backstage:prod-6a7b8c9-20261201090000) follows deployment/backstage container backstage, deployment/backstage-worker container backstage; updated by ImageUpdateAutomation flux-system/flux-system (suspended: no)";

/// The "Managed by" and "Image automation" lines of a table.
fn flux_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.starts_with("Managed by Flux") || l.starts_with("Image automation:"))
        .collect()
}

#[test]
fn every_flux_kind_is_shown_exactly_in_health_and_version() {
    let rig = flux_rig(&[]);
    let (code, out, err) = run(rig.plugin().arg("health"));
    assert_eq!(code, 1, "the incident is still unhealthy: {err}");
    assert_eq!(err, "");
    assert_eq!(
        flux_lines(&out),
        [HELM_LINE, KUSTOMIZATION_LINE, IMAGE_LINE]
    );
    assert!(
        out.contains(&format!(
            "{HELM_LINE}\n{KUSTOMIZATION_LINE}\n{IMAGE_LINE}\n\nPOD "
        )),
        "the lines sit between the workloads and the pods:\n{out}"
    );
    let (code, out, err) = run(rig.plugin().arg("version"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        flux_lines(&out),
        [HELM_LINE, KUSTOMIZATION_LINE, IMAGE_LINE]
    );

    let (_, out, _) = run(rig.plugin().args(["health", "-o", "json"]));
    let flux = json(&out)["flux"].clone();
    assert_eq!(
        flux,
        json!({
            "managers": [
                {"kind": "HelmRelease", "namespace": "flux-system", "name": "backstage",
                 "workloads": ["deployment/backstage"], "read": "found",
                 "apiVersion": "helm.toolkit.fluxcd.io/v2", "suspended": false, "revision": "1.4.2",
                 "lastAttemptedRevision": "1.4.2",
                 "ready": {"status": "True", "reason": "UpgradeSucceeded",
                           "message": "Helm upgrade succeeded for release backstage/backstage.v7 with chart backstage@1.4.2"},
                 "appliedBy": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"}},
                {"kind": "Kustomization", "namespace": "flux-system", "name": "backstage-worker",
                 "workloads": ["deployment/backstage-worker"], "read": "found",
                 "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "suspended": true,
                 "revision": "main@sha1:5f3c2a1d9e8b7c6a5f4e3d2c1b0a9f8e7d6c5b4a",
                 "lastAttemptedRevision": "main@sha1:5f3c2a1d9e8b7c6a5f4e3d2c1b0a9f8e7d6c5b4a",
                 "ready": {"status": "True", "reason": "ReconciliationSucceeded",
                           "message": "Applied revision: main@sha1:5f3c2a1d9e8b7c6a5f4e3d2c1b0a9f8e7d6c5b4a"},
                 "appliedBy": null}
            ],
            "imagePolicies": [
                {"namespace": "flux-system", "name": "backstage",
                 "imageRepository": "flux-system/backstage",
                 "image": "hmctspublic.azurecr.io/backstage/backstage",
                 "latestImage": "hmctspublic.azurecr.io/backstage/backstage:prod-6a7b8c9-20261201090000",
                 "suspended": false,
                 "containers": [{"workload": "deployment/backstage", "container": "backstage"},
                                {"workload": "deployment/backstage-worker", "container": "backstage"}],
                 "automations": [{"namespace": "flux-system", "name": "flux-system", "suspended": false}]}
            ],
            "notes": []
        })
    );
    let (_, out, _) = run(rig.plugin().args(["version", "-o", "json"]));
    assert_eq!(json(&out)["flux"], flux);

    // The real kubectl reads the same objects the same way.
    let get = |args: &[&str], path: &str| kubectl_jsonpath(&rig, args, path);
    let release = [
        "helmreleases.helm.toolkit.fluxcd.io",
        "backstage",
        "-n",
        "flux-system",
    ];
    assert_eq!(get(&release, "{.status.history[0].chartVersion}"), "1.4.2");
    assert_eq!(
        get(
            &release,
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );
    assert_eq!(get(&release, "{.spec.suspend}"), "");
    let worker = ["kustomization", "backstage-worker", "-n", "flux-system"];
    assert_eq!(get(&worker, "{.spec.suspend}"), "true");
    assert_eq!(
        get(&worker, "{.status.lastAppliedRevision}"),
        "main@sha1:5f3c2a1d9e8b7c6a5f4e3d2c1b0a9f8e7d6c5b4a"
    );
    assert_eq!(
        get(
            &["imagerepository", "backstage", "-n", "flux-system"],
            "{.spec.image}"
        ),
        "hmctspublic.azurecr.io/backstage/backstage"
    );
    assert_eq!(
        get(
            &["imagepolicies", "-n", "flux-system"],
            "{.items[*].metadata.name}"
        ),
        "backstage redis"
    );
    assert_eq!(
        get(
            &["imageupdateautomations", "-n", "flux-system"],
            "{range .items[*]}{.metadata.name}={.spec.suspend} {end}"
        ),
        "flux-system= platform=true "
    );
}

#[test]
fn forbidden_flux_reads_are_a_note_never_a_failure() {
    let rig = flux_rig(&[("list", "helmreleases"), ("list", "imagepolicies")]);
    let (code, out, err) = run(rig.plugin().arg("health"));
    assert_eq!(
        code, 1,
        "the exit code is the incident's, as without Flux: {err}"
    );
    assert_eq!(
        flux_lines(&out),
        [
            "Managed by Flux HelmRelease flux-system/backstage (cannot read it: forbidden): deployment/backstage",
            KUSTOMIZATION_LINE,
        ]
    );
    assert_eq!(
        err,
        "note: flux: cannot list helmreleases.helm.toolkit.fluxcd.io in namespace flux-system: forbidden\n\
         note: flux: cannot list imagepolicies.image.toolkit.fluxcd.io in namespace backstage: forbidden\n\
         note: flux: cannot list imagepolicies.image.toolkit.fluxcd.io in namespace flux-system: forbidden\n"
    );
    let (code, out, _) = run(rig.plugin().args(["version", "-o", "json"]));
    assert_eq!(code, 0);
    let flux = &json(&out)["flux"];
    assert_eq!(flux["managers"][0]["read"], "forbidden");
    assert_eq!(flux["managers"][1]["read"], "found");
    assert_eq!(flux["imagePolicies"], json!([]));
    assert_eq!(flux["notes"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_resume_round_trip_through_the_store_and_kubectl() {
    let rig = flux_rig(&[]);
    let cluster = cluster(&rig).await;
    let release = FluxObjectRef::new(FluxKind::HelmRelease, "flux-system", "backstage");
    let automation = FluxObjectRef::new(
        FluxKind::ImageUpdateAutomation,
        "flux-system",
        "flux-system",
    );
    let kubectl_suspend = |resource: &str, name: &str| {
        kubectl_jsonpath(
            &rig,
            &[resource, name, "-n", "flux-system"],
            "{.spec.suspend}",
        )
    };

    assert!(set_suspended(&cluster, &release, true).await.unwrap());
    assert!(set_suspended(&cluster, &automation, true).await.unwrap());
    let stored = rig
        .server
        .get("HelmRelease", "flux-system", "backstage")
        .unwrap();
    assert_eq!(stored["spec"]["suspend"], true);
    assert_eq!(
        stored["spec"]["releaseName"], "backstage",
        "a merge patch keeps the rest"
    );
    assert_eq!(kubectl_suspend("helmrelease", "backstage"), "true");
    assert_eq!(
        kubectl_suspend("imageupdateautomation", "flux-system"),
        "true"
    );
    let (_, out, _) = run(rig.plugin().arg("health"));
    assert_eq!(
        flux_lines(&out),
        [
            &HELM_LINE.replace("suspended: no", "suspended: yes"),
            KUSTOMIZATION_LINE,
            &IMAGE_LINE.replace("(suspended: no)", "(suspended: yes)"),
        ]
    );

    assert!(!set_suspended(&cluster, &release, false).await.unwrap());
    let stored = rig
        .server
        .get("HelmRelease", "flux-system", "backstage")
        .unwrap();
    assert_eq!(
        stored["spec"].get("suspend"),
        None,
        "resumed as `flux resume` leaves it"
    );
    let requested = stored["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        .as_str()
        .expect("a reconciliation is requested");
    assert!(requested.parse::<jiff::Timestamp>().is_ok(), "{requested}");
    assert_eq!(kubectl_suspend("helmrelease", "backstage"), "");
    let (_, out, _) = run(rig.plugin().arg("health"));
    assert_eq!(flux_lines(&out)[0], HELM_LINE);

    // A Flux object that is not there: the API server's 404, nothing else changed.
    let missing = FluxObjectRef::new(FluxKind::Kustomization, "flux-system", "nope");
    let e = set_suspended(&cluster, &missing, true).await.unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_on_a_cluster_without_flux_says_flux_is_not_there() {
    let rig = Rig::incident();
    let cluster = cluster(&rig).await;
    let release = FluxObjectRef::new(FluxKind::HelmRelease, "flux-system", "backstage");
    let e = set_suspended(&cluster, &release, true).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "list helmreleases.helm.toolkit.fluxcd.io in namespace \"flux-system\" failed: the cluster serves no version of helmreleases.helm.toolkit.fluxcd.io (is Flux installed?) (404)"
    );
    assert!(
        rig.server.requests().iter().all(|r| r.method == "GET"),
        "nothing was written"
    );
}

#[test]
fn several_environments_each_say_who_manages_them() {
    let rig = flux_rig(&[]);
    let config = rig.path("config.yaml");
    std::fs::write(
        &config,
        "environments:\n  ptl: {namespace: backstage}\n  ptlsbox: {namespace: backstage-staging}\n",
    )
    .unwrap();
    let (code, out, err) = run(rig.plugin().env("KUBECTL_BACKSTAGE_CONFIG", &config).args([
        "health",
        "-e",
        "ptl,ptlsbox",
    ]));
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("Managed by Flux") || l.contains("Image automation:"))
        .collect();
    assert_eq!(
        lines,
        [
            format!("ptl: {HELM_LINE}"),
            format!("ptl: {KUSTOMIZATION_LINE}"),
            format!("ptl: {IMAGE_LINE}"),
        ],
        "backstage-staging has no Flux labels: nothing said for it"
    );
    let (_, out, _) = run(rig.plugin().env("KUBECTL_BACKSTAGE_CONFIG", &config).args([
        "version",
        "-e",
        "ptl,ptlsbox",
        "-o",
        "json",
    ]));
    let docs = json(&out);
    assert_eq!(docs[0]["flux"]["managers"].as_array().unwrap().len(), 2);
    assert_eq!(docs[1]["flux"], Value::Null);
}

/// The writes are what Flux acts on: with the fake's Flux controller simulation on, an image set by
/// hand while the HelmRelease is suspended is set back once `set_suspended(…, false)` resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_lets_flux_set_the_image_back() {
    let rig = flux_rig(&[]);
    let wanted = "hmctspublic.azurecr.io/backstage/backstage:prod-5f3c2a1-20261122110000";
    let by_hand = "hmctspublic.azurecr.io/backstage/backstage:prod-1a2b3c4-20261101090000";
    rig.server.set_flux_desired_image(
        "HelmRelease",
        "flux-system",
        "backstage",
        "backstage",
        wanted,
    );
    rig.server.flux_reconciles(true);
    let cluster = cluster(&rig).await;
    let release = FluxObjectRef::new(FluxKind::HelmRelease, "flux-system", "backstage");
    assert!(set_suspended(&cluster, &release, true).await.unwrap());
    let mut set = rig.kubectl();
    set.args([
        "set",
        "image",
        "deployment/backstage",
        &format!("backstage={by_hand}"),
        "-n",
        "backstage",
    ]);
    stdout_of(set);
    let image = || {
        rig.server
            .get("Deployment", "backstage", "backstage")
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(image(), by_hand);

    assert!(!set_suspended(&cluster, &release, false).await.unwrap());
    // Flux reconciles the resumed release; wait for it (bounded, so a broken rig fails, not hangs).
    let mut reverted = false;
    for _ in 0..200 {
        if image() == wanted {
            reverted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        reverted,
        "the resumed HelmRelease set the image back: {}",
        image()
    );
}
