//! Flux kinds on the fake API server (only with `ServerOptions::flux`), seen by the real kubectl, and
//! the Flux controller simulation that sets a managed Deployment's image back unless the release is
//! suspended.

use std::time::{Duration, Instant};

use backstage_testkit::{FakeApiServer, Fixtures, ServerOptions};
use serde_json::{Value, json};

#[path = "support/kubectl.rs"]
mod kubectl;
use kubectl::Kubectl;

fn helm_release(suspend: bool) -> Value {
    json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "backstage", "namespace": "backstage", "generation": 1,
                     "creationTimestamp": "2026-11-20T09:00:00Z"},
        "spec": {"interval": "10m", "suspend": suspend,
                 "chart": {"spec": {"chart": "backstage", "version": "2.4.0",
                                    "sourceRef": {"kind": "HelmRepository", "name": "backstage", "namespace": "flux-system"}}},
                 "values": {"backstage": {"image": {"tag": "prod-5f3c2a1-20261122110000"}}}},
        "status": {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
             "message": "Helm upgrade succeeded for release backstage/backstage.v7 with chart backstage@2.4.0",
             "lastTransitionTime": "2026-11-22T11:00:00Z"}]}
    })
}

const OLD: &str = "hmctspublic.azurecr.io/backstage/backstage:prod-5f3c2a1-20261122110000";

fn image(server: &FakeApiServer) -> String {
    server.get("Deployment", "backstage", "backstage").unwrap()["spec"]["template"]["spec"]
        ["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

fn wait_image(server: &FakeApiServer, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while image(server) != want {
        assert!(Instant::now() < deadline, "image stayed {}", image(server));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_flux_the_kinds_are_not_served() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    let k = Kubectl::for_server(&server);
    let err = k.fails(&["get", "helmreleases"]);
    assert_eq!(
        err,
        "error: the server doesn't have a resource type \"helmreleases\"\n"
    );
    let groups = k.ok(&["api-versions"]);
    assert!(!groups.contains("fluxcd"), "{groups}");
}

#[test]
fn with_flux_kubectl_sees_and_patches_the_kinds() {
    let server = FakeApiServer::start(ServerOptions {
        flux: true,
        ..ServerOptions::new(Fixtures::incident())
    })
    .unwrap();
    server.apply(helm_release(false));
    let k = Kubectl::for_server(&server);
    let versions = k.ok(&["api-versions"]);
    for want in [
        "helm.toolkit.fluxcd.io/v2",
        "kustomize.toolkit.fluxcd.io/v1",
        "image.toolkit.fluxcd.io/v1",
        "image.toolkit.fluxcd.io/v1beta2",
    ] {
        assert!(versions.lines().any(|l| l == want), "{want} in {versions}");
    }
    let names = k.ok(&[
        "api-resources",
        "--api-group=image.toolkit.fluxcd.io",
        "-o",
        "name",
    ]);
    assert_eq!(
        names,
        "imagepolicies.image.toolkit.fluxcd.io\nimagerepositories.image.toolkit.fluxcd.io\nimageupdateautomations.image.toolkit.fluxcd.io\n"
    );
    let out = k.ok(&["get", "hr"]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "AGE", "READY", "STATUS"]);
    assert_eq!(lines[1][0], "backstage");
    assert_eq!(lines[1][2], "True");
    assert_eq!(
        lines[1][3..].join(" "),
        "Helm upgrade succeeded for release backstage/backstage.v7 with chart backstage@2.4.0"
    );
    let out = k.ok(&["get", "kustomizations"]);
    assert_eq!(out, "");

    k.ok(&[
        "patch",
        "hr",
        "backstage",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    let hr = server.get("HelmRelease", "backstage", "backstage").unwrap();
    assert_eq!(hr["spec"]["suspend"], true);
    assert_eq!(hr["metadata"]["generation"], 2);
    // Custom resources take no strategic merge patch.
    let err = k.fails(&[
        "patch",
        "hr",
        "backstage",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    assert!(
        err.contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json"),
        "{err}"
    );
    // kubectl create of a Kustomization.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ks.yaml");
    std::fs::write(&f, "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\nspec:\n  interval: 10m\n  path: ./apps\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n").unwrap();
    assert_eq!(
        k.ok(&["create", "-f", f.to_str().unwrap()]),
        "kustomization.kustomize.toolkit.fluxcd.io/apps created\n"
    );
    let ks = server.get("Kustomization", "backstage", "apps").unwrap();
    assert_eq!(ks["metadata"]["generation"], 1);
}

#[test]
fn flux_sets_the_image_back_unless_the_release_is_suspended() {
    let server = FakeApiServer::start(ServerOptions {
        flux: true,
        ..ServerOptions::new(Fixtures::incident())
    })
    .unwrap();
    server.apply(helm_release(false));
    server.flux_reconciles(true);
    server.set_flux_reconcile_delay(Duration::from_millis(100));
    server.set_flux_desired_image("HelmRelease", "backstage", "backstage", "backstage", OLD);
    let k = Kubectl::for_server(&server);
    k.ok(&[
        "label",
        "deployment",
        "backstage",
        "helm.toolkit.fluxcd.io/name=backstage",
        "helm.toolkit.fluxcd.io/namespace=backstage",
    ]);
    k.ok(&[
        "set",
        "image",
        "deployment/backstage",
        "backstage=registry.example/backstage:new",
    ]);
    wait_image(&server, OLD);

    // Suspended: the change stays.
    k.ok(&[
        "patch",
        "hr",
        "backstage",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    k.ok(&[
        "set",
        "image",
        "deployment/backstage",
        "backstage=registry.example/backstage:new",
    ]);
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(600) {
        assert_eq!(image(&server), "registry.example/backstage:new");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Resumed with a new wanted image: Flux applies it.
    server.set_flux_desired_image(
        "HelmRelease",
        "backstage",
        "backstage",
        "backstage",
        "registry.example/backstage:wanted",
    );
    k.ok(&[
        "patch",
        "hr",
        "backstage",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    wait_image(&server, "registry.example/backstage:wanted");
}
