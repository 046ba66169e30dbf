//! A fake Azure Key Vault that speaks the real wire protocol, and what a test needs to reach it with no
//! seam in the product:
//!
//! - **The vault** (https, HTTP/1.1) answers `GET /secrets/{name}/?api-version=…` the way Key Vault does:
//!   401 with the `WWW-Authenticate: Bearer authorization="…", resource="https://vault.azure.net"`
//!   challenge while no (accepted) token is sent, then 200 with the secret, 403 `Forbidden` for a secret
//!   the identity may not read, 404 `SecretNotFound` for an unknown one. The same server is Entra ID's
//!   token endpoint (`POST /{tenant}/oauth2/v2.0/token` at `login.microsoftonline.com`) for service
//!   principals and workload identity, and — over plain http — an App Service managed identity
//!   endpoint (`/msi/token`).
//! - **A CONNECT proxy** on 127.0.0.1 (`HTTPS_PROXY`, which reqwest honours) tunnels
//!   `<vault>.vault.azure.net:443` and `login.microsoftonline.com:443` to the fake; any other host gets
//!   502, as from a proxy that cannot resolve the name.
//! - **A test CA** in a PEM file (`SSL_CERT_FILE`) signs the fake's certificate for `*.vault.azure.net`,
//!   `login.microsoftonline.com` and `*.vault.example.com`.
//! - **A fake `az`** on `PATH` prints an access token as `az account get-access-token -o json` does, or
//!   fails like a machine that is not signed in; it logs its arguments.
//!
//! So the product reads `https://<vault>.vault.azure.net/` as it would in production, given
//! [`FakeKeyVault::env`].

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The tenant in the vault's challenge and the token requests.
pub const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The token the fake `az` prints when signed in.
pub const AZ_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-az-token.sig";
/// The challenge's resource, as Key Vault in the public cloud sends it.
pub const RESOURCE: &str = "https://vault.azure.net";
/// The scope a credential asks for after the challenge.
pub const SCOPE: &str = "https://vault.azure.net/.default";

/// What the fake `az` does.
#[derive(Debug, Clone)]
pub enum AzLogin {
    /// Prints [`AZ_TOKEN`].
    SignedIn,
    /// Prints another token (one the vault does not accept, say).
    Token(String),
    /// Exits 1 with the Azure CLI's message for a machine with no login.
    NotSignedIn,
}

/// One request the fake received (vault, token endpoint or managed identity endpoint).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub host: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status the fake answered.
    pub status: u16,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Whether the text occurs anywhere in the request: target, header names and values, body.
    pub fn contains(&self, text: &str) -> bool {
        self.target.contains(text)
            || self.body.contains(text)
            || self
                .headers
                .iter()
                .any(|(n, v)| n.contains(text) || v.contains(text))
    }
}

#[derive(Default)]
struct State {
    vault: String,
    secrets: HashMap<String, String>,
    forbidden: HashSet<String>,
    accepted_tokens: HashSet<String>,
    client_secrets: HashMap<String, String>,
    federated_tokens: HashMap<String, String>,
    identity_header: Option<String>,
    tunnel_hosts: HashSet<String>,
    requests: Vec<RecordedRequest>,
    tunnels: Vec<String>,
    issued: u32,
}

/// The fake, its proxy, its CA and its `az`; everything stops when it is dropped.
pub struct FakeKeyVault {
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
    proxy_port: u16,
    https_port: u16,
    http_port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeKeyVault {
    /// Starts a fake for the vault `https://{vault}.vault.azure.net/`, with a signed-in `az`.
    pub fn start(vault: &str) -> FakeKeyVault {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("bin")).expect("bin dir");
        let (tls, ca_pem) = tls_config();
        std::fs::write(dir.path().join("ca.pem"), ca_pem).expect("write the CA");

        let state = Arc::new(Mutex::new(State {
            vault: vault.to_string(),
            accepted_tokens: HashSet::from([AZ_TOKEN.to_string()]),
            tunnel_hosts: HashSet::from([
                format!("{vault}.vault.azure.net:443"),
                "login.microsoftonline.com:443".into(),
            ]),
            ..State::default()
        }));
        let bind = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
            listener.set_nonblocking(true).expect("nonblocking");
            let port = listener.local_addr().expect("local address").port();
            (listener, port)
        };
        let (https_listener, https_port) = bind();
        let (http_listener, http_port) = bind();
        let (proxy_listener, proxy_port) = bind();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        runtime.spawn(serve_https(https_listener, acceptor, state.clone()));
        runtime.spawn(serve_http(http_listener, state.clone()));
        runtime.spawn(serve_proxy(proxy_listener, https_port, state.clone()));

        let fake = FakeKeyVault {
            state,
            dir,
            proxy_port,
            https_port,
            http_port,
            runtime: Some(runtime),
        };
        fake.set_az(AzLogin::SignedIn);
        fake
    }

    /// `https://{vault}.vault.azure.net/`, what settings make of `--vault {vault}`.
    pub fn vault_url(&self) -> String {
        format!(
            "https://{}.vault.azure.net/",
            self.state.lock().unwrap().vault
        )
    }

    pub fn add_secret(&self, name: &str, value: &str) {
        self.state
            .lock()
            .unwrap()
            .secrets
            .insert(name.into(), value.into());
    }

    /// The signed-in identity may not read this secret (403), whether or not it exists.
    pub fn forbid(&self, name: &str) {
        self.state.lock().unwrap().forbidden.insert(name.into());
    }

    /// A service principal the token endpoint knows.
    pub fn add_service_principal(&self, client_id: &str, client_secret: &str) {
        self.state
            .lock()
            .unwrap()
            .client_secrets
            .insert(client_id.into(), client_secret.into());
    }

    /// A workload identity: the token endpoint accepts this Kubernetes token as the client's assertion.
    pub fn add_workload_identity(&self, client_id: &str, service_account_token: &str) {
        self.state
            .lock()
            .unwrap()
            .federated_tokens
            .insert(client_id.into(), service_account_token.into());
    }

    /// Turns on the managed identity endpoint; see [`FakeKeyVault::managed_identity_env`].
    pub fn enable_managed_identity(&self, identity_header: &str) {
        self.state.lock().unwrap().identity_header = Some(identity_header.into());
    }

    /// The environment of an App Service with a managed identity, pointing at the fake.
    pub fn managed_identity_env(&self) -> Vec<(String, String)> {
        let header = self
            .state
            .lock()
            .unwrap()
            .identity_header
            .clone()
            .expect("enable_managed_identity first");
        vec![
            (
                "IDENTITY_ENDPOINT".into(),
                format!("http://127.0.0.1:{}/msi/token", self.http_port),
            ),
            ("IDENTITY_HEADER".into(), header),
        ]
    }

    /// Lets the proxy tunnel another `host:port` to the fake (the certificate also covers
    /// `*.vault.example.com`).
    pub fn tunnel_host(&self, host_port: &str) {
        self.state
            .lock()
            .unwrap()
            .tunnel_hosts
            .insert(host_port.into());
    }

    /// Rewrites the fake `az`.
    pub fn set_az(&self, login: AzLogin) {
        let log = self.dir.path().join("az.log");
        let body = match login {
            AzLogin::SignedIn => token_json(AZ_TOKEN),
            AzLogin::Token(token) => token_json(&token),
            AzLogin::NotSignedIn => String::new(),
        };
        let script = if body.is_empty() {
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n",
                log.display()
            )
        } else {
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\ncat <<'EOF'\n{body}\nEOF\n",
                log.display()
            )
        };
        let path = self.az_dir().join("az");
        let mut file = std::fs::File::create(&path).expect("write az");
        file.write_all(script.as_bytes()).expect("write az");
        file.set_permissions(std::fs::Permissions::from_mode(0o755))
            .expect("chmod az");
    }

    /// The directory holding the fake `az`, to put first on `PATH`.
    pub fn az_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The arguments of each `az` run, one line each.
    pub fn az_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("az.log"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The test CA, in PEM.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `http://127.0.0.1:PORT`, the CONNECT proxy.
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy_port)
    }

    /// The fake's own https port (the proxy tunnels to it).
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// What a process needs to read from the fake as from Azure: `HTTPS_PROXY`, `NO_PROXY` (loopback
    /// stays direct), `SSL_CERT_FILE`, and `PATH` with the fake `az` first, then `base_path`.
    pub fn env(&self, base_path: &str) -> Vec<(String, String)> {
        vec![
            ("HTTPS_PROXY".into(), self.proxy_url()),
            ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
            ("SSL_CERT_FILE".into(), self.ca_file().display().to_string()),
            (
                "PATH".into(),
                format!("{}:{base_path}", self.az_dir().display()),
            ),
        ]
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests to the vault itself (not the token endpoints).
    pub fn vault_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path().starts_with("/secrets/"))
            .collect()
    }

    /// The `host:port` of each CONNECT the proxy received, tunnelled or not.
    pub fn tunnels(&self) -> Vec<String> {
        self.state.lock().unwrap().tunnels.clone()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for FakeKeyVault {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `az account get-access-token -o json`, as Azure CLI 2.54+ prints it.
fn token_json(token: &str) -> String {
    let expires = now() + 3600;
    serde_json::to_string_pretty(&serde_json::json!({
        "accessToken": token,
        "expiresOn": "2099-01-01 00:00:00.000000",
        "expires_on": expires,
        "subscription": "00000000-0000-0000-0000-000000000001",
        "tenant": TENANT_ID,
        "tokenType": "Bearer"
    }))
    .expect("json")
}

fn tls_config() -> (rustls::ServerConfig, String) {
    let certs = backstage_testkit::TestCertificates::issue(
        "fake key vault test CA",
        "*.vault.azure.net",
        &[
            "*.vault.azure.net",
            "login.microsoftonline.com",
            "*.vault.example.com",
        ],
        false,
    )
    .expect("certificates");
    let config = certs.server_config(&[b"http/1.1"]).expect("server config");
    (config, certs.ca_pem)
}

async fn serve_https(
    listener: std::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<Mutex<State>>,
) {
    let listener = TcpListener::from_std(listener).expect("listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            // A client that does not trust the CA hangs up here; that is its business.
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |req| handle(req, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn serve_http(listener: std::net::TcpListener, state: Arc<Mutex<State>>) {
    let listener = TcpListener::from_std(listener).expect("listener");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A CONNECT proxy: known hosts are tunnelled to the fake, others get 502.
async fn serve_proxy(listener: std::net::TcpListener, https_port: u16, state: Arc<Mutex<State>>) {
    let listener = TcpListener::from_std(listener).expect("listener");
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
                if head.len() > 16 * 1024 {
                    return;
                }
            }
            let end = head
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("end of head")
                + 4;
            let text = String::from_utf8_lossy(&head[..end]).to_string();
            let mut words = text.lines().next().unwrap_or_default().split_whitespace();
            let (method, target) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default().to_string(),
            );
            if method != "CONNECT" {
                let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                return;
            }
            let known = {
                let mut state = state.lock().unwrap();
                state.tunnels.push(target.clone());
                state.tunnel_hosts.contains(&target)
            };
            if !known {
                let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                return;
            }
            let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", https_port)).await else {
                return;
            };
            if client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            if upstream.write_all(&head[end..]).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("cache-control", "no-cache")
        .header("x-ms-keyvault-service-version", "1.9.2626.1")
        .header("x-ms-request-id", "7f2b4e46-0c1d-4a3e-9d6a-000000000000")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut recorded = RecordedRequest {
        method: parts.method.to_string(),
        host: parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host).to_string())
            .unwrap_or_default(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).to_string(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).to_string(),
        status: 0,
    };
    let response = {
        let mut state = state.lock().unwrap();
        let response = route(&recorded, &mut state);
        recorded.status = response.status().as_u16();
        state.requests.push(recorded);
        response
    };
    Ok(response)
}

fn route(req: &RecordedRequest, state: &mut State) -> Response<Full<Bytes>> {
    let path = req.path();
    if req.method == "POST"
        && req.host == "login.microsoftonline.com"
        && path.ends_with("/oauth2/v2.0/token")
    {
        return token_endpoint(req, state);
    }
    if req.method == "GET" && path == "/msi/token" {
        return managed_identity_endpoint(req, state);
    }
    if let Some(rest) = path.strip_prefix("/secrets/")
        && req.method == "GET"
    {
        let name = rest.split('/').next().unwrap_or_default().to_string();
        return get_secret(req, state, &name);
    }
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": {"code": "NotFound", "message": format!("no route for {} {}", req.method, path)}}),
    )
}

fn get_secret(req: &RecordedRequest, state: &mut State, name: &str) -> Response<Full<Bytes>> {
    let api_version = req.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.to_string())
    });
    if api_version.is_none() {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": {"code": "BadParameter", "message": "The request URI contains an invalid or missing API version parameter."}}),
        );
    }
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "));
    let authorized = token.is_some_and(|t| state.accepted_tokens.contains(t));
    if !authorized {
        let message = if token.is_none() {
            "AKV10000: Request is missing a Bearer or PoP token."
        } else {
            "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/."
        };
        let mut response = json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": {"code": "Unauthorized", "message": message}}),
        );
        let challenge = format!(
            r#"Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", resource="{RESOURCE}""#
        );
        response
            .headers_mut()
            .insert("www-authenticate", challenge.parse().expect("header"));
        return response;
    }
    if state.forbidden.contains(name) {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": {
                "code": "Forbidden",
                "message": format!("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=04b07795-8ddb-461a-bbee-02f9e1bf7b46;oid=00000000-0000-0000-0000-000000000002\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/microsoft.keyvault/vaults/{}/secrets/{name}'\r\n", state.vault),
                "innererror": {"code": "ForbiddenByRbac"}
            }}),
        );
    }
    match state.secrets.get(name) {
        Some(value) => json(
            StatusCode::OK,
            serde_json::json!({
                "value": value,
                "id": format!("https://{}.vault.azure.net/secrets/{name}/4387e9f3d6e14c459867679a90fd0f79", state.vault),
                "attributes": {
                    "enabled": true,
                    "created": 1_700_000_000,
                    "updated": 1_700_000_000,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90
                },
                "tags": {}
            }),
        ),
        None => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {
                "code": "SecretNotFound",
                "message": format!("A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
            }}),
        ),
    }
}

fn issue_token(state: &mut State, kind: &str) -> String {
    state.issued += 1;
    let token = format!("eyJ0eXAiOiJKV1QifQ.{kind}-token-{}.sig", state.issued);
    state.accepted_tokens.insert(token.clone());
    token
}

/// Entra ID's v2 token endpoint, client credentials grant: a client secret or a client assertion.
fn token_endpoint(req: &RecordedRequest, state: &mut State) -> Response<Full<Bytes>> {
    let form: HashMap<String, String> = form_urlencoded::parse(req.body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let entra_error = |status: StatusCode, error: &str, code: u32, description: &str| {
        let description = format!(
            "AADSTS{code}: {description}\r\nTrace ID: 0f1e2d3c-0000-0000-0000-000000000000\r\nCorrelation ID: 1a2b3c4d-0000-0000-0000-000000000000\r\nTimestamp: 2025-01-01 00:00:00Z"
        );
        json(
            status,
            serde_json::json!({
                "error": error,
                "error_description": description,
                "error_codes": [code],
                "timestamp": "2025-01-01 00:00:00Z",
                "trace_id": "0f1e2d3c-0000-0000-0000-000000000000",
                "correlation_id": "1a2b3c4d-0000-0000-0000-000000000000",
                "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
            }),
        )
    };
    if field("grant_type") != "client_credentials" {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("scope") != SCOPE {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let client_id = field("client_id");
    let kind = if let Some(secret) = form.get("client_secret") {
        if state.client_secrets.get(client_id) != Some(secret) {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            );
        }
        "service-principal"
    } else {
        let assertion = field("client_assertion");
        let expected = state.federated_tokens.get(client_id);
        if field("client_assertion_type")
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            || expected.map(String::as_str) != Some(assertion)
        {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700213,
                &format!(
                    "No matching federated identity record found for presented assertion subject for app '{client_id}'."
                ),
            );
        }
        "workload"
    };
    let token = issue_token(state, kind);
    json(
        StatusCode::OK,
        serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

/// App Service's managed identity endpoint (api-version 2019-08-01).
fn managed_identity_endpoint(req: &RecordedRequest, state: &mut State) -> Response<Full<Bytes>> {
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let header_ok = state.identity_header.is_some()
        && req.header("x-identity-header") == state.identity_header.as_deref();
    if !header_ok || query.get("resource").map(String::as_str) != Some(RESOURCE) {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"statusCode": 400, "message": "invalid request"}),
        );
    }
    let token = issue_token(state, "managed-identity");
    json(
        StatusCode::OK,
        serde_json::json!({
            "access_token": token,
            "expires_on": (now() + 3600).to_string(),
            "resource": RESOURCE,
            "token_type": "Bearer",
            "client_id": "00000000-0000-0000-0000-00000000000a"
        }),
    )
}
