//! Reaching the backend through the API server: `Cluster::forward_to_backstage` (kube-rs's
//! port-forward over websocket) through the fake API server (TLS, token) to real local HTTP servers.
//! Many concurrent connections through one forward, large bodies both ways, a backend that closes,
//! and the errors with their exact messages.

#[path = "support/rig.rs"]
mod rig;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use backstage_testkit::{Fixtures, ServerOptions};
use kubectl_backstage::kube::{Cluster, KubeError};
use kubectl_backstage::settings::{ClusterSettings, KubeconfigSource};
use rig::{Rig, TOKEN};

/// The pod the `backstage` Service leads to in the incident fixtures (`testkit/fixtures/incident/
/// services.yaml`: the Helm chart's `backstage`, the pull-request environment's `backstage-pr-1234`,
/// the database's two): of its two Running and Ready pods, created at the same second, the first by
/// name; its port `http-backend` targets the container port named `http-backend`, 7007.
const POD: &str = "backstage-6c9f8d7b54-k4m2x";

fn rig(forbidden: &[(&str, &str)]) -> Rig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Rig::start(ServerOptions {
        tls: true,
        token: Some(TOKEN.into()),
        forbidden: forbidden
            .iter()
            .map(|(v, r)| (v.to_string(), r.to_string()))
            .collect(),
        ..ServerOptions::new(Fixtures::incident())
    })
}

async fn cluster(rig: &Rig) -> Cluster {
    Cluster::connect(&ClusterSettings {
        kubeconfig: KubeconfigSource::Explicit(rig.kubeconfig.clone()),
        context: None,
        namespace: None,
        request_timeout: Some(std::time::Duration::from_secs(30)),
    })
    .await
    .unwrap()
}

/// Deterministic bytes of any length.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 31 + u64::from(seed)) as u8)
        .collect()
}

/// A real HTTP/1.1 server (hyper): `GET /hello/N` → `hello N`, `POST /echo` → the body back,
/// `GET /big/N` → N bytes of [`pattern`].
async fn backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path().to_string();
        let body = if let Some(n) = path.strip_prefix("/hello/") {
            Bytes::from(format!("hello {n}"))
        } else if path == "/echo" {
            req.into_body().collect().await.unwrap().to_bytes()
        } else if let Some(n) = path.strip_prefix("/big/") {
            Bytes::from(pattern(n.parse().unwrap(), 7))
        } else {
            let mut r = Response::new(Full::new(Bytes::from_static(b"no such path")));
            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
            return Ok(r);
        };
        Ok(Response::new(Full::new(body)))
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                    .await;
            });
        }
    });
    (addr, task)
}

/// A client that opens a new connection for every request (no pooling), so each request is one
/// port-forward stream.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The port-forward upgrades the fake API server answered, as (pod, ports, status).
fn forward_requests(rig: &Rig) -> Vec<(String, String, u16)> {
    rig.server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/portforward"))
        .map(|r| {
            let pod = r
                .path
                .trim_end_matches("/portforward")
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (pod, r.param("ports").unwrap_or_default(), r.status)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_through_one_forward_each_answered_by_the_backend() {
    let rig = rig(&[]);
    let (addr, _backend) = backend().await;
    rig.server.set_pod_port(POD, 7007, addr);
    let cluster = cluster(&rig).await;
    let forward = cluster.forward_to_backstage(None).await.unwrap();
    assert_eq!(
        forward.what(),
        format!("service/backstage \u{2192} pod/{POD}:7007")
    );
    assert_eq!(
        (forward.service(), forward.pod(), forward.port()),
        (Some("backstage"), POD, 7007)
    );
    assert_eq!(
        forward.base_url(),
        format!("http://127.0.0.1:{}/", forward.local_addr().port())
    );

    const N: usize = 40;
    let client = fresh_connections();
    let requests = (0..N).map(|i| {
        let client = client.clone();
        let url = format!("{}hello/{i}", forward.base_url());
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    let answers = futures::future::join_all(requests).await;
    let expected: Vec<(u16, String)> = (0..N).map(|i| (200, format!("hello {i}"))).collect();
    assert_eq!(answers, expected);

    // One stream per connection, all to the pod's port 7007; the first was opened up front.
    let streams = forward_requests(&rig);
    assert_eq!(streams.len(), N);
    assert!(
        streams
            .iter()
            .all(|s| *s == (POD.to_string(), "7007".to_string(), 101)),
        "{streams:?}"
    );
    assert_eq!(forward.last_error(), None);

    // One local connection carrying many requests (HTTP/1.1 keep-alive) is one stream.
    rig.server.clear_requests();
    let mut conn = tokio::net::TcpStream::connect(forward.local_addr())
        .await
        .unwrap();
    for i in 0..20 {
        let request = format!("GET /hello/again-{i} HTTP/1.1\r\nHost: backstage\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut conn).await, format!("hello again-{i}"));
    }
    assert_eq!(forward_requests(&rig).len(), 1);
}

/// Reads one HTTP/1.1 response with a `content-length` from a kept-alive connection; returns its body.
async fn read_response(conn: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "connection closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_both_ways() {
    let rig = rig(&[]);
    let (addr, _backend) = backend().await;
    rig.server.set_pod_port(POD, 7007, addr);
    let cluster = cluster(&rig).await;
    let forward = cluster
        .forward_to_backstage(Some("backstage"))
        .await
        .unwrap();
    let client = fresh_connections();

    let upload = pattern(8 * 1024 * 1024 + 13, 3);
    let echoed = client
        .post(format!("{}echo", forward.base_url()))
        .body(upload.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(echoed.len(), upload.len());
    assert!(echoed == upload, "the echoed body differs");

    let size = 16 * 1024 * 1024 + 5;
    let download = client
        .get(format!("{}big/{size}", forward.base_url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(download.len(), size);
    assert!(download == pattern(size, 7), "the downloaded body differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_closes_after_its_answer_delivers_all_of_it_and_the_forward_goes_on() {
    let rig = rig(&[]);
    // A server that answers every connection with a body delimited by closing the connection.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = pattern(3 * 1024 * 1024 + 1, 11);
    let served = body.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let served = served.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .await;
                let _ = stream.write_all(&served).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    rig.server.set_pod_port(POD, 7007, addr);
    let cluster = cluster(&rig).await;
    let forward = cluster.forward_to_backstage(None).await.unwrap();
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let got = client
            .get(forward.base_url())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.len(), body.len());
        assert!(got == body, "the body differs");
    }
    assert_eq!(forward_requests(&rig).len(), 3);
    assert_eq!(forward.last_error(), None);
}

/// The kubelet's (containerd's) message when nothing listens on the port inside the pod.
fn assert_refused_message(message: &str, port: u16) {
    let re = regex::Regex::new(&format!(
        r#"^error forwarding port {port} to pod ([0-9a-f]{{64}}), uid : failed to execute portforward in network namespace "/var/run/netns/cni-[0-9a-f]{{8}}-[0-9a-f]{{4}}-4[0-9a-f]{{3}}-a[0-9a-f]{{3}}-[0-9a-f]{{12}}": failed to connect to localhost:{port} inside namespace "([0-9a-f]{{64}})", IPv4: dial tcp4 127\.0\.0\.1:{port}: connect: connection refused IPv6 dial tcp6 \[::1\]:{port}: connect: connection refused $"#
    ))
    .unwrap();
    let caps = re
        .captures(message)
        .unwrap_or_else(|| panic!("unexpected message: {message:?}"));
    assert_eq!(
        caps[1], caps[2],
        "the sandbox id is the same in both places"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_in_the_pod_closes_the_connection_with_the_kubelet_message() {
    let rig = rig(&[]);
    let cluster = cluster(&rig).await;
    // Opening the forward succeeds (the API server and kubelet accept the stream); the port's error
    // channel then says nothing listens.
    let forward = cluster.forward_to_backstage(None).await.unwrap();
    let err = fresh_connections()
        .get(format!("{}hello/1", forward.base_url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_refused_message(&forward.last_error().unwrap(), 7007);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_goes_away_fails_new_connections_with_the_kubelet_message() {
    let rig = rig(&[]);
    let (addr, backend) = backend().await;
    rig.server.set_pod_port(POD, 7007, addr);
    let cluster = cluster(&rig).await;
    let forward = cluster.forward_to_backstage(None).await.unwrap();
    let client = fresh_connections();
    let text = client
        .get(format!("{}hello/up", forward.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "hello up");
    backend.abort();
    let _ = backend.await;
    let err = client
        .get(format!("{}hello/down", forward.base_url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_refused_message(&forward.last_error().unwrap(), 7007);
}

async fn forward_error(rig: &Rig, service: Option<&str>) -> KubeError {
    cluster(rig)
        .await
        .forward_to_backstage(service)
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_is_missing_or_refused() {
    let rig = rig(&[]);
    assert_eq!(
        forward_error(&rig, Some("portal")).await.to_string(),
        "service \"portal\" not found in namespace \"backstage\""
    );
    // The PR environment's only pod is not ready (it cannot pull its image).
    assert_eq!(
        forward_error(&rig, Some("backstage-pr-1234"))
            .await
            .to_string(),
        "no pod behind service \"backstage-pr-1234\" in namespace \"backstage\" is running and ready (backstage-pr-1234-5b7c9d8f6d-wq9rt 0/1 ImagePullBackOff)"
    );
    // Without the Backstage Service only the database's is left, which does not qualify.
    rig.server.delete("Service", "backstage", "backstage");
    rig.server
        .delete("Service", "backstage", "backstage-pr-1234");
    assert_eq!(
        forward_error(&rig, None).await.to_string(),
        "no service in namespace \"backstage\" selects the backstage backend pods (services: backstage-postgresql, backstage-postgresql-hl)"
    );

    let forbidden = self::rig(&[("create", "pods/portforward")]);
    assert_eq!(
        forward_error(&forbidden, None).await.to_string(),
        format!(
            "forbidden: cannot create pods/portforward for pod \"{POD}\" in namespace \"backstage\" (context \"fake\"): pods \"{POD}\" is forbidden: User \"system:serviceaccount:backstage:kubectl-backstage\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"backstage\""
        )
    );
    let no_services = self::rig(&[("list", "services")]);
    assert_eq!(
        forward_error(&no_services, None).await.to_string(),
        "forbidden: cannot list services in namespace \"backstage\" (context \"fake\"): services is forbidden: User \"system:serviceaccount:backstage:kubectl-backstage\" cannot list resource \"services\" in API group \"\" in the namespace \"backstage\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_changing_under_the_forward_is_the_api_servers_error() {
    let rig = rig(&[]);
    let (addr, _backend) = backend().await;
    rig.server.set_pod_port(POD, 7007, addr);
    let cluster = cluster(&rig).await;
    let forward = cluster.forward_to_backstage(None).await.unwrap();
    let client = fresh_connections();
    // The first connection uses the stream opened up front; the next open new ones.
    client
        .get(format!("{}hello/0", forward.base_url()))
        .send()
        .await
        .unwrap();
    rig.server.delete("Pod", "backstage", POD);
    let err = client
        .get(format!("{}hello/1", forward.base_url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(
        forward.last_error().unwrap(),
        format!(
            "create pods/portforward for pod \"{POD}\" in namespace \"backstage\" failed: pods \"{POD}\" not found (404)"
        )
    );
    drop(forward);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_forward_refuses_new_connections_and_ends_open_ones() {
    let rig = rig(&[]);
    let (addr, _backend) = backend().await;
    rig.server.set_pod_port(POD, 7007, addr);
    let cluster = cluster(&rig).await;
    let forward = cluster.forward_to_backstage(None).await.unwrap();
    let local = forward.local_addr();
    let mut open = tokio::net::TcpStream::connect(local).await.unwrap();
    open.write_all(b"GET /hello/open HTTP/1.1\r\nHost: backstage\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut open).await, "hello open");
    forward.stop().await;
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{rest:?}");
    let refused = tokio::net::TcpStream::connect(local).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_to_a_pod_directly() {
    let rig = rig(&[]);
    let (addr, _backend) = backend().await;
    // The worker pod's port 7008, which no Service leads to.
    let worker = "backstage-worker-59c8d7f6b-mz5ql";
    rig.server.set_pod_port(worker, 7008, addr);
    let cluster = cluster(&rig).await;
    let forward = cluster.forward_to_pod(worker, 7008).await.unwrap();
    assert_eq!(forward.what(), format!("pod/{worker}:7008"));
    assert_eq!(forward.service(), None);
    let text = fresh_connections()
        .get(format!("{}hello/worker", forward.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "hello worker");
    assert_eq!(
        forward_requests(&rig),
        vec![(worker.to_string(), "7008".to_string(), 101)]
    );
    // The API server's refusal of a pod that does not exist comes at once.
    assert_eq!(
        cluster
            .forward_to_pod("gone", 7007)
            .await
            .unwrap_err()
            .to_string(),
        "create pods/portforward for pod \"gone\" in namespace \"backstage\" failed: pods \"gone\" not found (404)"
    );
}
