//! The fake API server's `pods/portforward` speaks the wire protocol of the API server and kubelet:
//! checked frame by frame with a raw websocket client, and through kube-rs's own port-forward client.

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use backstage_testkit::{FakeApiServer, Fixtures, ServerOptions};

const POD: &str = "backstage-6c9f8d7b54-k4m2x";

async fn client(server: &FakeApiServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig =
        Kubeconfig::from_yaml(&server.kubeconfig_yaml("fake", Some("backstage"), "tok")).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// A TCP server that echoes what it reads; with `farewell`, it instead writes that and closes.
async fn echo(farewell: Option<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Some(bytes) = farewell {
                    let _ = s.write_all(bytes).await;
                    return;
                }
                let mut buf = [0u8; 8192];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens the port-forward websocket by hand, offering `protocols`; returns the socket and the
/// protocol the server chose.
async fn open(
    server: &FakeApiServer,
    pod: &str,
    query: &str,
    protocols: Option<&str>,
) -> Result<(Ws, Option<String>), (u16, String)> {
    let url = format!(
        "ws://{}/api/v1/namespaces/backstage/pods/{pod}/portforward?{query}",
        server.addr()
    );
    let mut request = url.into_client_request().unwrap();
    if let Some(p) = protocols {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string());
            Ok((ws, protocol))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((response.status().as_u16(), body))
        }
        Err(e) => panic!("websocket handshake failed: {e}"),
    }
}

async fn next_binary(ws: &mut Ws) -> Vec<u8> {
    loop {
        match ws.next().await.expect("stream open").unwrap() {
            Message::Binary(b) => return b.to_vec(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn frames_are_the_kubelets_port_first_then_data_and_errors_per_port() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    server.set_pod_port(POD, 7007, echo(None).await);
    let (mut ws, protocol) = open(
        &server,
        POD,
        "ports=7007,9000",
        Some("v5.channel.k8s.io, v4.channel.k8s.io"),
    )
    .await
    .unwrap();
    assert_eq!(protocol.as_deref(), Some("v4.channel.k8s.io"));
    // 7007 = 0x1b5f and 9000 = 0x2328, little-endian, first on each port's data and error channel.
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(next_binary(&mut ws).await);
    }
    assert_eq!(
        first,
        vec![
            vec![0, 0x5f, 0x1b],
            vec![1, 0x5f, 0x1b],
            vec![2, 0x28, 0x23],
            vec![3, 0x28, 0x23]
        ]
    );
    ws.send(Message::Binary(b"\x00ping through 7007".to_vec().into()))
        .await
        .unwrap();
    // Port 9000 leads nowhere: its error channel says so; port 7007 echoes.
    let mut echoed = None;
    let mut error = None;
    while echoed.is_none() || error.is_none() {
        let frame = next_binary(&mut ws).await;
        match frame[0] {
            0 => echoed = Some(String::from_utf8(frame[1..].to_vec()).unwrap()),
            3 => error = Some(String::from_utf8(frame[1..].to_vec()).unwrap()),
            other => panic!("unexpected frame on channel {other}"),
        }
    }
    assert_eq!(echoed.unwrap(), "ping through 7007");
    // containerd's message, with the pod's sandbox id and network namespace.
    let error = error.unwrap();
    let sandbox = error
        .strip_prefix("error forwarding port 9000 to pod ")
        .and_then(|rest| rest.split_once(", uid : ").map(|(id, _)| id))
        .unwrap_or_else(|| panic!("{error:?}"));
    assert!(
        sandbox.len() == 64 && sandbox.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sandbox}"
    );
    let netns = error
        .split_once("network namespace \"")
        .and_then(|(_, rest)| rest.split_once('"').map(|(ns, _)| ns))
        .unwrap();
    assert!(netns.starts_with("/var/run/netns/cni-"), "{netns}");
    assert_eq!(
        error,
        format!(
            "error forwarding port 9000 to pod {sandbox}, uid : failed to execute portforward in network namespace \"{netns}\": failed to connect to localhost:9000 inside namespace \"{sandbox}\", IPv4: dial tcp4 127.0.0.1:9000: connect: connection refused IPv6 dial tcp6 [::1]:9000: connect: connection refused "
        )
    );
    // The client closing ends the session; the server answers the close.
    ws.send(Message::Close(None)).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Binary(_))) => continue,
            other => panic!("expected the server's close, got {other:?}"),
        }
    }
    assert!(
        ws.next().await.is_none(),
        "the connection ends after the close handshake"
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/portforward"))
            .map(|r| (r.method.as_str(), r.status))
            .collect::<Vec<_>>(),
        vec![("GET", 101)]
    );
}

#[tokio::test]
async fn a_pod_side_close_delivers_the_data_then_closes_normally() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    server.set_pod_port(POD, 7007, echo(Some(b"goodbye")).await);
    // No subprotocol offered: binary frames all the same, and no protocol in the answer.
    let (mut ws, protocol) = open(&server, POD, "ports=7007", None).await.unwrap();
    assert_eq!(protocol, None);
    assert_eq!(next_binary(&mut ws).await, vec![0, 0x5f, 0x1b]);
    assert_eq!(next_binary(&mut ws).await, vec![1, 0x5f, 0x1b]);
    assert_eq!(next_binary(&mut ws).await, b"\x00goodbye".to_vec());
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a normal close, got {other:?}"),
    }
}

#[tokio::test]
async fn refusals_are_the_api_servers_and_the_kubelets() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    let mut pending = server.get("Pod", "backstage", POD).unwrap();
    pending["metadata"]["name"] = json!("unscheduled");
    pending["spec"]["nodeName"] = json!(null);
    pending["status"] = json!({"phase": "Pending"});
    server.apply(pending.clone());
    pending["metadata"]["name"] = json!("finished");
    pending["spec"]["nodeName"] = json!("aks-nodepool1-38215342-vmss000000");
    pending["status"] = json!({"phase": "Failed"});
    server.apply(pending);

    let refused = |r: Result<(Ws, Option<String>), (u16, String)>| match r {
        Ok(_) => panic!("the upgrade was accepted"),
        Err((code, body)) => {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or(body);
            (code, message)
        }
    };
    let v4 = Some("v4.channel.k8s.io");
    assert_eq!(
        refused(open(&server, "nope", "ports=7007", v4).await),
        (404, "pods \"nope\" not found".into())
    );
    assert_eq!(
        refused(open(&server, "unscheduled", "ports=7007", v4).await),
        (400, "pod unscheduled does not have a host assigned".into())
    );
    assert_eq!(
        refused(open(&server, "finished", "ports=7007", v4).await),
        (500, "pod not found (\"finished_backstage\")".into())
    );
    assert_eq!(
        refused(open(&server, POD, "", v4).await),
        (400, "query parameter \"port\" is required".into())
    );
    assert_eq!(
        refused(open(&server, POD, "ports=http", v4).await),
        (
            400,
            "unable to parse \"http\" as a port: invalid digit found in string".into()
        )
    );
    // kubectl ≥ 1.31 tunnels SPDY through the websocket; the fake does not, and says so.
    assert_eq!(
        refused(open(&server, POD, "ports=7007", Some("SPDY/3.1+portforward.k8s.io")).await),
        (
            400,
            "unable to upgrade: requested protocol(s) are not supported: [\"SPDY/3.1+portforward.k8s.io\"]; supports [\"v4.channel.k8s.io\"] (the fake API server does not tunnel SPDY)".into()
        )
    );
}

#[tokio::test]
async fn kube_rs_forwards_and_is_refused_as_rbac_says() {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    server.set_pod_port(POD, 7007, echo(None).await);
    let pods: Api<Pod> = Api::namespaced(client(&server).await, "backstage");
    let mut forwarder = pods.portforward(POD, &[7007]).await.unwrap();
    let mut stream = forwarder.take_stream(7007).unwrap();
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = tokio::io::split(&mut stream);
    let sent = payload.clone();
    let writer = async move {
        write.write_all(&sent).await.unwrap();
    };
    let reader = async {
        let mut got = vec![0u8; payload.len()];
        read.read_exact(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(writer, reader);
    assert!(got == payload, "the echo differs");
    drop(stream);
    forwarder.join().await.unwrap();

    // A websocket upgrade is a GET: authorized as `get`, and since Kubernetes 1.35 also as `create`.
    for verb in ["get", "create"] {
        let forbidding = FakeApiServer::start(ServerOptions {
            forbidden: vec![(verb.into(), "pods/portforward".into())],
            ..ServerOptions::new(Fixtures::incident())
        })
        .unwrap();
        let pods: Api<Pod> = Api::namespaced(client(&forbidding).await, "backstage");
        match pods.portforward(POD, &[7007]).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 403);
                assert_eq!(
                    status.message,
                    format!(
                        "pods \"{POD}\" is forbidden: User \"system:serviceaccount:backstage:kubectl-backstage\" cannot {verb} resource \"pods/portforward\" in API group \"\" in the namespace \"backstage\""
                    )
                );
            }
            Err(other) => panic!("expected 403, got {other:?}"),
            Ok(_) => panic!("expected 403, got a forward"),
        }
    }
}
