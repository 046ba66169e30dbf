//! The websocket side shared by the streaming subresources (pod exec and port-forward): the upgrade
//! handshake as the API server answers it, and channel frames (one byte of channel, then data).

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::responses::{Body, full};

/// The upgraded connection a streaming handler gets.
pub(crate) type Upgraded = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Whether the request asks for a websocket (`Upgrade: websocket`).
pub(crate) fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The subprotocols a client offers, in its order (one comma-separated header or several headers).
pub(crate) fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The client's `Sec-WebSocket-Key`.
pub(crate) fn key(headers: &HeaderMap) -> Option<Vec<u8>> {
    headers
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
}

/// Upgrades `req` and hands the websocket to `run` on its own task; returns the `101 Switching
/// Protocols` answer (with `protocol` as the chosen subprotocol, when there is one).
pub(crate) fn upgrade<F, Fut>(
    req: &mut Request<Incoming>,
    key: &[u8],
    protocol: Option<&'static str>,
    what: &'static str,
    run: F,
) -> Response<Body>
where
    F: FnOnce(Upgraded) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                run(ws).await;
            }
            Err(e) => eprintln!("fake-apiserver: {what} upgrade failed: {e}"),
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
    let mut r = Response::new(full(Vec::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&accept).expect("accept key is ASCII"),
    );
    if let Some(protocol) = protocol {
        h.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    }
    r
}

/// One binary message on a channel.
pub(crate) fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}
