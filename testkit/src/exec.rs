//! Pod exec over websocket (`v5.channel.k8s.io` / `v4.channel.k8s.io`), run as a local process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

use crate::responses::{Body, bad_request_pub, status_response};
use crate::router::Query;
use crate::server::Shared;
use crate::websocket::{self, frame};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;

struct Session {
    argv: Vec<String>,
    root: PathBuf,
    env: Vec<(String, String)>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

pub(crate) async fn exec(
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
    let containers: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let container = match query.get("container") {
        Some(c) => c.to_string(),
        None => match containers.as_slice() {
            [only] => only["name"].as_str().unwrap_or("").to_string(),
            _ => {
                let names: Vec<&str> = containers
                    .iter()
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                return bad_request_pub(&format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    names.join(" ")
                ));
            }
        },
    };
    let Some(spec) = containers.iter().find(|c| c["name"] == container.as_str()) else {
        return bad_request_pub(&format!(
            "container {container} is not valid for pod {pod_name}"
        ));
    };
    let argv = query.all("command");
    if argv.is_empty() {
        return bad_request_pub("you must specify at least 1 command");
    }
    let running = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == container.as_str() && c["state"]["running"].is_object());
    let (root, mut env) = {
        let extras = shared.extras();
        (
            extras.pod_roots().get(pod_name).cloned(),
            extras.pod_env().get(pod_name).cloned().unwrap_or_default(),
        )
    };
    let root = match root {
        Some(root) if running => root,
        _ => {
            return status_response(
                500,
                "InternalError",
                &format!(
                    "Internal error occurred: unable to upgrade connection: container not found (\"{container}\")"
                ),
                Some(
                    json!({"causes": [{"message": format!("unable to upgrade connection: container not found (\"{container}\")")}]}),
                ),
            );
        }
    };
    let mut spec_env: Vec<(String, String)> = spec["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    spec_env.append(&mut env);

    let headers = req.headers();
    if !websocket::is_websocket(headers) {
        return status_response(
            400,
            "BadRequest",
            "Upgrade request required: the fake API server speaks websocket (v5.channel.k8s.io, v4.channel.k8s.io), not SPDY",
            None,
        );
    }
    let Some(key) = websocket::key(headers) else {
        return bad_request_pub("missing Sec-WebSocket-Key");
    };
    let offered = websocket::offered_protocols(headers);
    let protocol = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p));
    let Some(protocol) = protocol else {
        return bad_request_pub(&format!(
            "unable to upgrade: none of the offered subprotocols {offered:?} is supported (v5.channel.k8s.io, v4.channel.k8s.io)"
        ));
    };
    let session = Session {
        argv,
        root,
        env: spec_env,
        stdin: query.flag("stdin"),
        stdout: query.get("stdout").is_none_or(|v| v == "true" || v == "1"),
        stderr: query.get("stderr").is_none_or(|v| v == "true" || v == "1"),
    };
    let v5 = protocol.starts_with("v5");
    let hostname = pod_name.to_string();
    websocket::upgrade(
        &mut req,
        &key,
        Some(protocol),
        "exec",
        move |ws| async move {
            run(ws, session, v5, &hostname).await;
        },
    )
}

fn resolve_program(program: &str, root: &Path) -> PathBuf {
    let p = Path::new(program);
    if p.is_absolute() {
        let inside = root.join(p.strip_prefix("/").unwrap_or(p));
        if !p.exists() && inside.exists() {
            return inside;
        }
        p.to_path_buf()
    } else if program.contains('/') {
        root.join(p)
    } else {
        p.to_path_buf()
    }
}

/// Ends a session as the API server does: the status on the error channel, then a normal close.
async fn send_status_and_close<K>(sink: &mut K, status: &Value)
where
    K: futures::Sink<Message> + Unpin,
{
    let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
}

async fn run<S>(ws: WebSocketStream<S>, s: Session, v5: bool, hostname: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let mut cmd = tokio::process::Command::new(resolve_program(&s.argv[0], &s.root));
    cmd.args(&s.argv[1..])
        .current_dir(&s.root)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("HOME", &s.root)
        .env("HOSTNAME", hostname)
        .envs(s.env.iter().map(|(k, v)| (k, v)))
        .stdin(if s.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let message = format!(
                "Internal error occurred: error executing command in container: failed to exec in container: exec: \"{}\": {e}",
                s.argv[0]
            );
            let status = json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                                "details": {"causes": [{"message": message}]}, "code": 500});
            send_status_and_close(&mut sink, &status).await;
            return;
        }
    };

    let (tx, mut rx) = mpsc::channel::<Message>(32);
    let mut readers = Vec::new();
    for (channel, pipe, wanted) in [
        (
            STDOUT,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            s.stdout,
        ),
        (
            STDERR,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            s.stderr,
        ),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match pipe.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if wanted && tx.send(frame(channel, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    drop(tx);

    let mut stdin = child.stdin.take();
    let pump = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(Message::Binary(b)) if !b.is_empty() => match b[0] {
                    STDIN => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(&b[1..]).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    CLOSE if v5 && b.get(1) == Some(&STDIN) => stdin = None,
                    _ => {}
                },
                Ok(Message::Close(_)) | Err(_) => break,
                _ => {}
            }
        }
    });

    while let Some(m) = rx.recv().await {
        if sink.send(m).await.is_err() {
            break;
        }
    }
    let status = child.wait().await;
    let code = match status {
        Ok(st) => st.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)
        }),
        Err(_) => 1,
    };
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", s.argv.join(" ")),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
        })
    };
    send_status_and_close(&mut sink, &status).await;
    // Give the client a moment to answer the close, then drop the connection.
    let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
}
