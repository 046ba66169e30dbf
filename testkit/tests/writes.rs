//! Writes against the fake API server with the real kubectl: `set image`, `patch` (merge, JSON and
//! strategic), `annotate`, `delete`, `create -f`, and the 403/404/409 answers as kubectl prints them.

use backstage_testkit::{FakeApiServer, Fixtures, ServerOptions};
use serde_json::json;

#[path = "support/kubectl.rs"]
mod kubectl;
use kubectl::Kubectl;

fn incident(forbidden: &[(&str, &str)]) -> (FakeApiServer, Kubectl) {
    let server = FakeApiServer::start(ServerOptions {
        forbidden: forbidden
            .iter()
            .map(|(v, r)| (v.to_string(), r.to_string()))
            .collect(),
        ..ServerOptions::new(Fixtures::incident())
    })
    .expect("server starts");
    let k = Kubectl::for_server(&server);
    (server, k)
}

fn container<'a>(deploy: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[test]
fn kubectl_set_image_patches_the_deployment() {
    let (server, k) = incident(&[]);
    let before = server.get("Deployment", "backstage", "backstage").unwrap();
    let out = k.ok(&[
        "set",
        "image",
        "deployment/backstage",
        "backstage=registry.example/backstage:1.2.3",
    ]);
    assert_eq!(out, "deployment.apps/backstage image updated\n");
    let after = server.get("Deployment", "backstage", "backstage").unwrap();
    assert_eq!(
        container(&after, "backstage")["image"],
        "registry.example/backstage:1.2.3"
    );
    // Everything else of the container is kept (strategic merge by name), generation moves on.
    assert_eq!(
        container(&after, "backstage")["env"],
        container(&before, "backstage")["env"]
    );
    assert_eq!(
        after["metadata"]["generation"].as_i64().unwrap(),
        before["metadata"]["generation"].as_i64().unwrap() + 1
    );
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    let patch = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("a PATCH was sent");
    assert_eq!(
        patch.path,
        "/apis/apps/v1/namespaces/backstage/deployments/backstage"
    );
}

#[test]
fn kubectl_patch_merge_json_and_strategic() {
    let (server, k) = incident(&[]);
    k.ok(&[
        "patch",
        "deployment",
        "backstage",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"tier":"web"}},"spec":{"paused":true}}"#,
    ]);
    let d = server.get("Deployment", "backstage", "backstage").unwrap();
    assert_eq!(d["metadata"]["labels"]["tier"], "web");
    assert_eq!(d["spec"]["paused"], true);

    k.ok(&[
        "patch",
        "deployment",
        "backstage",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/spec/paused","value":true},{"op":"replace","path":"/spec/replicas","value":5},{"op":"remove","path":"/spec/paused"}]"#,
    ]);
    let d = server.get("Deployment", "backstage", "backstage").unwrap();
    assert_eq!(d["spec"]["replicas"], 5);
    assert!(d["spec"]["paused"].is_null());

    // A failed `test` is 422 and changes nothing.
    let err = k.fails(&[
        "patch",
        "deployment",
        "backstage",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":1},{"op":"replace","path":"/spec/replicas","value":9}]"#,
    ]);
    // kubectl words a 422 without kind and name from its causes (the cause has no field).
    assert_eq!(
        err,
        "The request is invalid: : testing value /spec/replicas failed: test failed\n"
    );
    assert_eq!(
        server.get("Deployment", "backstage", "backstage").unwrap()["spec"]["replicas"],
        5
    );

    k.ok(&[
        "patch",
        "deployment",
        "backstage",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"backstage","env":[{"name":"POSTGRES_PORT","value":"6432"},{"name":"NEW","value":"x"}]}]}}}}"#,
    ]);
    let d = server.get("Deployment", "backstage", "backstage").unwrap();
    let env = container(&d, "backstage")["env"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "APP_CONFIG_backend_listen_port",
            "POSTGRES_HOST",
            "POSTGRES_PORT",
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "NEW"
        ]
    );
    assert_eq!(env[2]["value"], "6432");
    assert_eq!(
        container(&d, "backstage")["image"],
        "hmctspublic.azurecr.io/backstage/backstage:prod-5f3c2a1-20261122110000"
    );
}

#[test]
fn kubectl_annotate_and_delete_a_pod() {
    let (server, k) = incident(&[]);
    let out = k.ok(&[
        "annotate",
        "pod",
        "backstage-6c9f8d7b54-k4m2x",
        "team=platform",
    ]);
    assert_eq!(out, "pod/backstage-6c9f8d7b54-k4m2x annotated\n");
    let p = server
        .get("Pod", "backstage", "backstage-6c9f8d7b54-k4m2x")
        .unwrap();
    assert_eq!(p["metadata"]["annotations"]["team"], "platform");

    let out = k.ok(&["delete", "pod", "backstage-6c9f8d7b54-k4m2x"]);
    assert_eq!(out, "pod \"backstage-6c9f8d7b54-k4m2x\" deleted\n");
    assert!(
        server
            .get("Pod", "backstage", "backstage-6c9f8d7b54-k4m2x")
            .is_none()
    );
    let err = k.fails(&["delete", "pod", "backstage-6c9f8d7b54-k4m2x"]);
    assert_eq!(
        err,
        "Error from server (NotFound): pods \"backstage-6c9f8d7b54-k4m2x\" not found\n"
    );
}

#[test]
fn kubectl_create_from_a_file() {
    let (server, k) = incident(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe\n  labels:\n    app: probe\nspec:\n  containers:\n  - name: probe\n    image: registry.example/probe:1\n    command: [\"true\"]\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = k.ok(&["create", "-f", f]);
    assert_eq!(out, "pod/probe created\n");
    let p = server.get("Pod", "backstage", "probe").expect("stored");
    assert_eq!(
        p["spec"]["containers"][0]["image"],
        "registry.example/probe:1"
    );
    assert!(p["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(p["metadata"]["creationTimestamp"].is_string());
    assert_eq!(p["spec"]["restartPolicy"], "Always");
    let err = k.fails(&["create", "-f", f]);
    assert_eq!(
        err,
        format!(
            "Error from server (AlreadyExists): error when creating \"{f}\": pods \"probe\" already exists\n"
        )
    );
    // Delete by label selector (deletecollection is what `delete --all`/`-l` use via lists).
    let out = k.ok(&["delete", "pods", "-l", "app=probe"]);
    assert_eq!(out, "pod \"probe\" deleted\n");
    assert!(server.get("Pod", "backstage", "probe").is_none());
}

#[test]
fn forbidden_writes_are_403_as_kubectl_prints_them() {
    let (server, k) = incident(&[
        ("patch", "deployments"),
        ("delete", "pods"),
        ("create", "pods"),
    ]);
    let err = k.fails(&[
        "set",
        "image",
        "deployment/backstage",
        "backstage=registry.example/backstage:9",
    ]);
    assert!(
        err.contains("deployments.apps \"backstage\" is forbidden: User \"system:serviceaccount:backstage:kubectl-backstage\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"backstage\""),
        "{err}"
    );
    let err = k.fails(&["delete", "pod", "backstage-6c9f8d7b54-k4m2x"]);
    assert_eq!(
        err,
        "Error from server (Forbidden): pods \"backstage-6c9f8d7b54-k4m2x\" is forbidden: User \"system:serviceaccount:backstage:kubectl-backstage\" cannot delete resource \"pods\" in API group \"\" in the namespace \"backstage\"\n"
    );
    assert!(
        server
            .get("Pod", "backstage", "backstage-6c9f8d7b54-k4m2x")
            .is_some()
    );
    let d = server.get("Deployment", "backstage", "backstage").unwrap();
    assert_eq!(
        container(&d, "backstage")["image"],
        "hmctspublic.azurecr.io/backstage/backstage:prod-5f3c2a1-20261122110000"
    );
    let _ = json!({});
}
