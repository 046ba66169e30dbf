//! kube-rs (the client kubectl-backstage uses) accepts the fake API server.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, AttachParams, ListParams, LogParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use backstage_testkit::{Expiry, FakeApiServer, Fixtures, ServerOptions};

async fn client(server: &FakeApiServer, token: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig =
        Kubeconfig::from_yaml(&server.kubeconfig_yaml("fake", Some("backstage"), token)).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The resource version of a list of `pods`.
async fn list_version(pods: &Api<Pod>) -> String {
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// A watch event's kind and the name of its object (`Error` and `Bookmark` have none).
fn kind_and_name(event: WatchEvent<Pod>) -> (&'static str, Option<String>) {
    match event {
        WatchEvent::Added(p) => ("Added", p.metadata.name),
        WatchEvent::Modified(p) => ("Modified", p.metadata.name),
        WatchEvent::Deleted(p) => ("Deleted", p.metadata.name),
        WatchEvent::Bookmark(_) => ("Bookmark", None),
        WatchEvent::Error(_) => ("Error", None),
    }
}

#[tokio::test]
async fn lists_pages_and_gets_over_tls() {
    let server = FakeApiServer::start(ServerOptions {
        tls: true,
        token: Some("tok".into()),
        max_page: Some(10),
        ..ServerOptions::new(Fixtures::incident().with_generated_events(95))
    })
    .unwrap();
    let c = client(&server, "tok").await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "backstage");
    let list = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 7);
    assert_eq!(list.metadata.continue_, None);

    // Follow continue by hand: 32 + 95 events in pages of at most 10.
    let events: Api<Event> = Api::namespaced(c.clone(), "backstage");
    let mut lp = ListParams::default().limit(50);
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = events.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        names.extend(page.items.iter().map(|e| e.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(tok) if !tok.is_empty() => {
                assert_eq!(
                    page.metadata.remaining_item_count,
                    Some((127 - names.len()) as i64)
                );
                lp = lp.continue_token(&tok);
            }
            _ => break,
        }
    }
    assert_eq!(names.len(), 127);
    assert_eq!(pages, 13);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "the server lists in key order");

    let deploy: Api<Deployment> = Api::namespaced(c.clone(), "backstage");
    let d = deploy.get("backstage").await.unwrap();
    assert_eq!(d.metadata.generation, Some(7));
    assert_eq!(d.status.unwrap().updated_replicas, Some(1));
    let missing = deploy.get("nope").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404),
        "{missing:?}"
    );

    let all: Api<Pod> = Api::all(c.clone());
    let everywhere = all
        .list(&ListParams::default().labels("app.kubernetes.io/name=backstage"))
        .await
        .unwrap();
    let ns: Vec<_> = everywhere
        .items
        .iter()
        .map(|p| p.metadata.namespace.clone().unwrap())
        .collect();
    assert!(ns.contains(&"backstage-staging".to_string()) && ns.contains(&"backstage".to_string()));

    let bad = client(&server, "wrong").await;
    let err = Api::<Pod>::namespaced(bad, "backstage")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 401),
        "{err:?}"
    );
}

#[tokio::test]
async fn watch_replays_and_streams() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    let c = client(&server, "t").await;
    let pods: Api<Pod> = Api::namespaced(c, "backstage");
    let list = pods.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();

    let mut p = server
        .get("Pod", "backstage", "backstage-6c9f8d7b54-k4m2x")
        .unwrap();
    p["metadata"]["labels"]["touched"] = json!("yes");
    server.apply(p);

    // From the list's resourceVersion: the change made since is replayed.
    let wp = WatchParams::default()
        .timeout(5)
        .labels("app.kubernetes.io/name=backstage");
    let mut stream = pods.watch(&wp, &rv).await.unwrap().boxed();
    assert_eq!(
        kind_and_name(stream.try_next().await.unwrap().unwrap()),
        ("Modified", Some("backstage-6c9f8d7b54-k4m2x".to_string()))
    );
    server.delete("Pod", "backstage", "backstage-pr-1234-5b7c9d8f6d-wq9rt");
    assert_eq!(
        kind_and_name(stream.try_next().await.unwrap().unwrap()),
        (
            "Deleted",
            Some("backstage-pr-1234-5b7c9d8f6d-wq9rt".to_string())
        )
    );
    // A pod that stops matching the selector is DELETED for this watch.
    let mut w = server
        .get("Pod", "backstage", "backstage-7d9f6b5c8-x2x7p")
        .unwrap();
    w["metadata"]["labels"]["app.kubernetes.io/name"] = json!("other");
    server.apply(w);
    assert_eq!(
        kind_and_name(stream.try_next().await.unwrap().unwrap()),
        ("Deleted", Some("backstage-7d9f6b5c8-x2x7p".to_string()))
    );

    // From "0": ADDED for everything first.
    let mut fresh = pods
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = 0;
    while let Some(ev) = fresh.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(_) => added += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, 6);
}

#[tokio::test]
async fn expired_resource_versions_are_gone_as_an_error_event_or_an_http_410() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    let c = client(&server, "t").await;
    let pods: Api<Pod> = Api::namespaced(c, "backstage");
    let rv = list_version(&pods).await;
    let wp = WatchParams::default().timeout(30);
    let mut open = pods.watch(&wp, &rv).await.unwrap().boxed();

    // A real API server: the open watch gets an ERROR event with a 410 Status and ends...
    server.expire_resource_versions(Expiry::WatchEvent);
    let compacted = server.resource_version();
    let gone = |event: Option<WatchEvent<Pod>>| match event {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert_eq!(
                status.message,
                format!("too old resource version: {rv} ({compacted})")
            );
        }
        other => panic!("{other:?}"),
    };
    gone(open.try_next().await.unwrap());
    assert!(open.try_next().await.unwrap().is_none(), "then ends");
    // ...and so does a new watch from the old version (with 200 OK), while a list goes on working.
    let mut again = pods.watch(&wp, &rv).await.unwrap().boxed();
    gone(again.try_next().await.unwrap());
    assert!(again.try_next().await.unwrap().is_none());
    let fresh = list_version(&pods).await;
    assert_eq!(fresh, compacted.to_string());
    let wp_short = WatchParams::default().timeout(1);
    let mut ok = pods.watch(&wp_short, &fresh).await.unwrap().boxed();
    assert!(
        ok.try_next().await.unwrap().is_none(),
        "no error from the fresh version"
    );

    // Or as an HTTP 410 on the watch request; the open watch just ends.
    let mut open = pods.watch(&wp, &fresh).await.unwrap().boxed();
    server.expire_resource_versions(Expiry::HttpStatus);
    assert!(open.try_next().await.unwrap().is_none());
    let err = match pods.watch(&wp, &fresh).await {
        Err(kube::Error::Api(status)) => status,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a watch from an expired version is refused"),
    };
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
    let last = server.requests().last().cloned().unwrap();
    assert!(last.is_watch());
    assert_eq!(last.status, 410);
}

#[tokio::test]
async fn exec_and_logs() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("knexfile.js"), "module.exports = {};\n").unwrap();
    let mut fx = Fixtures::incident().with_pod_root("backstage-6c9f8d7b54-k4m2x", root.path());
    fx.set_pod_env("backstage-6c9f8d7b54-k4m2x", "GREETING", "hi");
    let server = FakeApiServer::start(ServerOptions::new(fx)).unwrap();
    let c = client(&server, "t").await;
    let pods: Api<Pod> = Api::namespaced(c, "backstage");

    let ap = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut p = pods
        .exec(
            "backstage-6c9f8d7b54-k4m2x",
            [
                "sh",
                "-c",
                "cat; ls; echo \"$GREETING $POSTGRES_USER\" >&2; exit 4",
            ],
            &ap,
        )
        .await
        .unwrap();
    let mut stdin = p.stdin().unwrap();
    let mut stdout = p.stdout().unwrap();
    let mut stderr = p.stderr().unwrap();
    let status = p.take_status().unwrap();
    stdin.write_all(b"from stdin\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    assert_eq!(out, "from stdin\nknexfile.js\n");
    assert_eq!(err, "hi pgadmin\n");
    let status = status.await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.unwrap().causes.unwrap()[0];
    assert_eq!(cause.message.as_deref(), Some("4"));
    p.join().await.unwrap();

    let previous = pods
        .logs(
            "backstage-7d9f6b5c8-x2x7p",
            &LogParams {
                previous: true,
                tail_lines: Some(20),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(previous.contains(
        "Plugin 'catalog' startup failed; caused by Error: The migration directory is corrupt"
    ));
    let err = pods
        .logs(
            "backstage-6c9f8d7b54-k4m2x",
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400),
        "{err:?}"
    );
}
