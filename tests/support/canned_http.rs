//! A tiny plain-HTTP server on 127.0.0.1 that gives every request the same answer — a status with a
//! body, bytes that are not HTTP at all, or nothing (it accepts and never answers) — for the API server
//! and database failures the fake API server has no knob for. Threads end with the test binary.
//!
//! Lists of Deployments and StatefulSets get an empty list instead, so that `health` (which lists
//! pods, Deployments and StatefulSets at once) fails on the pods every time, not on whichever list
//! happens to fail first.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// What every connection gets.
#[derive(Debug, Clone)]
pub enum Answer {
    /// An HTTP/1.1 response with this status line tail (`401 Unauthorized`), content type and body.
    Http {
        status: &'static str,
        content_type: &'static str,
        body: String,
    },
    /// These bytes, then the connection is closed (not HTTP).
    Raw(Vec<u8>),
    /// The connection is accepted and held open; nothing is ever sent.
    Hang,
}

impl Answer {
    /// A Kubernetes `Status` object as the API server sends it with an error.
    pub fn status(code: u16, status: &'static str, reason: &str, message: &str) -> Answer {
        let body = backstage_testkit::status_object(code, reason, message).to_string();
        Answer::Http {
            status,
            content_type: "application/json",
            body,
        }
    }
}

/// Starts the server; returns its port.
pub fn serve(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || handle(stream, &answer));
        }
    });
    port
}

fn handle(mut stream: TcpStream, answer: &Answer) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the request head; a client that does not speak HTTP (a TLS hello, PostgreSQL's SSLRequest)
    // gets its answer after its first bytes, as a real server would answer it.
    let mut http = true;
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if !request.first().is_some_and(u8::is_ascii_uppercase) {
            http = false;
            break;
        }
    }
    if let Answer::Raw(bytes) = answer {
        let _ = stream.write_all(bytes);
        return;
    }
    if !http && !matches!(answer, Answer::Hang) {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        return;
    }
    let head = String::from_utf8_lossy(&request);
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    let workload = ["deployments", "statefulsets"]
        .into_iter()
        .find(|w| path.ends_with(&format!("/{w}")));
    if let Some(resource) = workload {
        let kind = if resource == "deployments" {
            "DeploymentList"
        } else {
            "StatefulSetList"
        };
        let body = format!(
            r#"{{"kind":"{kind}","apiVersion":"apps/v1","metadata":{{"resourceVersion":"1"}},"items":[]}}"#
        );
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        return;
    }
    if let Answer::Hang = answer {
        // Hold the socket until the client gives up.
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        return;
    }
    let bytes = match answer {
        Answer::Http {
            status,
            content_type,
            body,
        } => format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
        Answer::Raw(_) | Answer::Hang => return,
    };
    let _ = stream.write_all(&bytes);
    let _ = stream.flush();
}

/// A kubeconfig whose only context `canned` (namespace `backstage`) points at `http://127.0.0.1:PORT`.
pub fn kubeconfig(port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: canned
  cluster:
    server: http://127.0.0.1:{port}
users:
- name: canned
  user:
    token: canned-token
contexts:
- name: canned
  context:
    cluster: canned
    user: canned
    namespace: backstage
current-context: canned
"
    )
}
