//! Writes with kube-rs: create (generateName, 409), patch in the three formats (415 for others),
//! replace with a stale resourceVersion (409), delete and delete-collection, and the watch events
//! they cause.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use backstage_testkit::{FakeApiServer, Fixtures, ServerOptions};

async fn client(server: &FakeApiServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig =
        Kubeconfig::from_yaml(&server.kubeconfig_yaml("fake", Some("backstage"), "t")).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn create_patch_delete_with_watch_events() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    let c = client(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "backstage");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = cms
        .watch(&WatchParams::default().labels("probe=yes"), &rv)
        .await
        .unwrap()
        .boxed();

    let made = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"generateName": "probe-", "labels": {"probe": "yes"}},
                "data": {"a": "1"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let name = made.metadata.name.clone().unwrap();
    assert!(
        name.starts_with("probe-") && name.len() == "probe-".len() + 5,
        "{name}"
    );
    assert!(made.metadata.uid.is_some());
    assert!(
        made.metadata.generation.is_none(),
        "configmaps have no generation"
    );

    let again = cms
        .create(&PostParams::default(), &made)
        .await
        .map_err(api_error)
        .unwrap_err();
    assert_eq!(
        again,
        (
            409,
            "AlreadyExists".into(),
            format!("configmaps \"{name}\" already exists")
        )
    );

    let patched = cms
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap().into_iter().collect::<Vec<_>>(),
        [("b".to_string(), "2".to_string())]
    );

    // A stale resourceVersion is a conflict.
    let mut stale = made.clone();
    stale.data = None;
    let conflict = cms
        .replace(&name, &PostParams::default(), &stale)
        .await
        .map_err(api_error)
        .unwrap_err();
    assert_eq!(conflict.0, 409);
    assert_eq!(conflict.1, "Conflict");
    assert_eq!(
        conflict.2,
        format!(
            "Operation cannot be fulfilled on configmaps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        )
    );

    cms.delete(&name, &DeleteParams::background())
        .await
        .unwrap();
    let missing = cms
        .delete(&name, &DeleteParams::default())
        .await
        .map_err(api_error)
        .unwrap_err();
    assert_eq!(
        missing,
        (
            404,
            "NotFound".into(),
            format!("configmaps \"{name}\" not found")
        )
    );

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match events.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => seen.push(("ADDED", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o.metadata.name.unwrap())),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            ("ADDED", name.clone()),
            ("MODIFIED", name.clone()),
            ("DELETED", name.clone())
        ]
    );
}

#[tokio::test]
async fn patch_types_generation_and_unsupported_media_type() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    let c = client(&server).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "backstage");
    let before = deploys.get("backstage").await.unwrap();
    let g0 = before.metadata.generation.unwrap();

    // Metadata only: generation stays.
    let d = deploys
        .patch(
            "backstage",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(g0));

    let d = deploys
        .patch(
            "backstage",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "backstage", "image": "registry.example/backstage:2"}
            ]}}}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(g0 + 1));
    let containers = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(
        containers[0].image.as_deref(),
        Some("registry.example/backstage:2")
    );
    assert!(
        containers[0].liveness_probe.is_some(),
        "strategic merge keeps the rest"
    );

    let d = deploys
        .patch(
            "backstage",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"minReadySeconds": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(g0 + 2));

    // Server-side apply is not served: 415 naming what is.
    let e = deploys
        .patch(
            "backstage",
            &PatchParams::apply("t"),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backstage"}})),
        )
        .await
        .map_err(api_error)
        .unwrap_err();
    assert_eq!(
        e,
        (
            415,
            "UnsupportedMediaType".into(),
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json".into()
        )
    );
    let stored = server.get("Deployment", "backstage", "backstage").unwrap();
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/backstage:2"
    );
    assert_eq!(stored["spec"]["minReadySeconds"], 5);
}

#[tokio::test]
async fn delete_collection_by_label_and_garbage_collection() {
    let server = FakeApiServer::start(ServerOptions {
        forbidden: vec![("deletecollection".into(), "configmaps".into())],
        ..ServerOptions::new(Fixtures::incident())
    })
    .unwrap();
    let c = client(&server).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "backstage");
    let all: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    let worker: Vec<String> = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=worker"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    let gone = pods
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app.kubernetes.io/component=worker"),
        )
        .await
        .unwrap()
        .left()
        .expect("a list of the deleted pods");
    let gone: Vec<String> = gone
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(gone, worker);
    let left: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    let want: Vec<String> = all.into_iter().filter(|n| !worker.contains(n)).collect();
    assert_eq!(left, want);

    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "backstage");
    let e = cms
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .map_err(api_error)
        .unwrap_err();
    assert_eq!(e.0, 403);
    assert_eq!(
        e.2,
        "configmaps is forbidden: User \"system:serviceaccount:backstage:kubectl-backstage\" cannot deletecollection resource \"configmaps\" in API group \"\" in the namespace \"backstage\""
    );
}

#[tokio::test]
async fn status_goes_through_the_status_subresource_only() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    let c = client(&server).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "backstage");
    let before = deploys.get("backstage").await.unwrap();
    // The main endpoint ignores status.
    let d = deploys
        .patch(
            "backstage",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}, "status": {"replicas": 42}})),
        )
        .await
        .unwrap();
    assert_eq!(d.status, before.status);
    assert_eq!(d.metadata.labels.unwrap()["x"], "1");
    // /status changes only status.
    let d = deploys
        .patch_status(
            "backstage",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"y": "2"}}, "status": {"replicas": 42}})),
        )
        .await
        .unwrap();
    assert_eq!(d.status.as_ref().unwrap().replicas, Some(42));
    assert!(!d.metadata.labels.unwrap().contains_key("y"));
    // A stale resourceVersion on /status is a conflict.
    let e = deploys
        .replace_status("backstage", &PostParams::default(), &before)
        .await
        .map_err(api_error)
        .unwrap_err();
    assert_eq!((e.0, e.1.as_str()), (409, "Conflict"));
}
