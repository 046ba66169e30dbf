//! Pod port-forward over websocket (`v4.channel.k8s.io`), as the API server passes it through to the
//! kubelet's streaming server: per requested port a data channel (2·i) and an error channel (2·i+1),
//! the port as two little-endian bytes first on each, then raw bytes. Each forwarded stream is
//! connected to a local TCP address registered for the pod and port (standing for "localhost:PORT
//! inside the pod's network namespace"); a port with nothing registered, or whose address refuses the
//! connection, gets containerd's error message on its error channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

use crate::fixtures::fake_uid;
use crate::responses::{Body, bad_request_pub, full, status_response};
use crate::router::Query;
use crate::server::Shared;
use crate::websocket::{self, Upgraded, frame};

/// The subprotocol served: the kubelet's binary v4 (its `v4.base64.channel.k8s.io` is not served). A
/// client that offers no subprotocol gets the binary protocol too, as from the kubelet.
const BINARY: &str = "v4.channel.k8s.io";
/// What kubectl ≥ 1.31 offers: SPDY tunnelled through a websocket, which the fake does not speak.
const TUNNELED_SPDY: &str = "SPDY/3.1+portforward.k8s.io";

/// One forwarded port of a session: where the pod's `localhost:PORT` leads, if anywhere.
struct Forward {
    port: u16,
    target: Option<SocketAddr>,
}

pub(crate) async fn port_forward(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    ns: &str,
    pod_name: &str,
    query: &Query,
) -> Response<Body> {
    let Some(pod) = shared.store().get("pods", ns, pod_name) else {
        return status_response(
            404,
            "NotFound",
            &format!("pods \"{pod_name}\" not found"),
            Some(json!({"name": pod_name, "kind": "pods"})),
        );
    };
    // The API server's own check, before it proxies to the pod's node.
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        return bad_request_pub(&format!("pod {pod_name} does not have a host assigned"));
    }
    // The kubelet only knows pods whose sandbox runs; its error is proxied back as plain text.
    if pod["status"]["phase"].as_str() != Some("Running") {
        return kubelet_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("pod not found (\"{pod_name}_{ns}\")"),
        );
    }
    let headers = req.headers();
    if !websocket::is_websocket(headers) {
        return status_response(
            400,
            "BadRequest",
            "Upgrade request required: the fake API server forwards ports over websocket (v4.channel.k8s.io), not SPDY",
            None,
        );
    }
    let Some(key) = websocket::key(headers) else {
        return bad_request_pub("missing Sec-WebSocket-Key");
    };
    let offered = websocket::offered_protocols(headers);
    let protocol = if offered.is_empty() {
        None
    } else if offered.iter().any(|o| o == BINARY) {
        Some(BINARY)
    } else {
        let why = if offered.iter().any(|o| o == TUNNELED_SPDY) {
            " (the fake API server does not tunnel SPDY)"
        } else {
            ""
        };
        return bad_request_pub(&format!(
            "unable to upgrade: requested protocol(s) are not supported: {offered:?}; supports {:?}{why}",
            [BINARY]
        ));
    };
    // Websocket clients name the ports in the query (SPDY clients per stream, which is not served).
    let mut ports = Vec::new();
    for value in query.all("ports") {
        for p in value.split(',') {
            match p.trim().parse::<u16>() {
                Ok(0) => {
                    return kubelet_error(
                        StatusCode::BAD_REQUEST,
                        &format!("port \"{value}\" must be > 0"),
                    );
                }
                Ok(n) => ports.push(n),
                Err(e) => {
                    return kubelet_error(
                        StatusCode::BAD_REQUEST,
                        &format!("unable to parse \"{value}\" as a port: {e}"),
                    );
                }
            }
        }
    }
    if ports.is_empty() {
        return kubelet_error(
            StatusCode::BAD_REQUEST,
            "query parameter \"port\" is required",
        );
    }
    let forwards: Vec<Forward> = {
        let extras = shared.extras();
        ports
            .iter()
            .map(|&port| Forward {
                port,
                target: extras
                    .pod_ports()
                    .get(&(pod_name.to_string(), port))
                    .copied(),
            })
            .collect()
    };
    let sandbox = sandbox_id(&pod);
    websocket::upgrade(&mut req, &key, protocol, "port-forward", move |ws| {
        run(ws, forwards, sandbox)
    })
}

/// A kubelet error as the API server's upgrade proxy passes it back: the status and a plain-text body.
fn kubelet_error(code: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(full(message.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The pod's sandbox as containerd names it in its messages: 64 hex digits, stable per pod.
fn sandbox_id(pod: &Value) -> String {
    let uid = pod["metadata"]["uid"]
        .as_str()
        .or(pod["metadata"]["name"].as_str())
        .unwrap_or("pod");
    (0..4)
        .map(|i| fake_uid(uid, i).replace('-', "")[..16].to_string())
        .collect()
}

/// containerd's error when nothing listens on the port inside the pod, as the kubelet's streaming
/// server writes it on the port's error channel (the format strings keep their trailing space).
fn connect_error(port: u16, sandbox: &str) -> String {
    let netns = format!("/var/run/netns/cni-{}", fake_uid(sandbox, u64::from(port)));
    format!(
        "error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward in network namespace \"{netns}\": failed to connect to localhost:{port} inside namespace \"{sandbox}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
    )
}

async fn run(ws: Upgraded, forwards: Vec<Forward>, sandbox: String) {
    let (mut sink, mut stream) = ws.split();
    // First on every channel: its port, two bytes little-endian.
    for (i, f) in forwards.iter().enumerate() {
        let data = (2 * i) as u8;
        for channel in [data, data + 1] {
            if sink
                .send(frame(channel, &f.port.to_le_bytes()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let (out, mut outgoing) = mpsc::channel::<Message>(64);
    let mut to_ports = Vec::with_capacity(forwards.len());
    for (i, f) in forwards.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        to_ports.push(tx);
        tokio::spawn(forward_port(
            (2 * i) as u8,
            f,
            sandbox.clone(),
            rx,
            out.clone(),
        ));
    }
    drop(out);
    // Client → pod: data channels only; what a client writes on an error channel is ignored.
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(b)) if b.len() > 1 && b[0] % 2 == 0 => {
                    if let Some(tx) = to_ports.get(usize::from(b[0] / 2)) {
                        let _ = tx.send(b.slice(1..)).await;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                _ => {}
            }
        }
    });
    // Pod → client, until every port is done; then the connection closes, as the kubelet's does.
    while let Some(m) = outgoing.recv().await {
        if sink.send(m).await.is_err() {
            break;
        }
    }
    let closing = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    if closing.is_err() {
        // The client closed first: sending is over, but its close still wants the reply, which
        // closing the sink flushes.
        let _ = sink.close().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
}

/// One port: connect to where the pod's port leads and copy both ways; the first direction to end
/// ends the stream (as containerd's port-forward does).
async fn forward_port(
    data: u8,
    f: Forward,
    sandbox: String,
    mut from_client: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Message>,
) {
    let connected = match f.target {
        Some(addr) => tokio::net::TcpStream::connect(addr).await.ok(),
        None => None,
    };
    let Some(conn) = connected else {
        let _ = out
            .send(frame(data + 1, connect_error(f.port, &sandbox).as_bytes()))
            .await;
        return;
    };
    let (mut read, mut write) = conn.into_split();
    let to_client = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.send(frame(data, &buf[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let to_pod = async {
        while let Some(bytes) = from_client.recv().await {
            if write.write_all(&bytes).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = to_client => {}
        () = to_pod => {}
    }
}
