//! The HTTP side: routing, auth, discovery, list/get/watch, logs.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};

use crate::discovery::{self, Resource};
use crate::fixtures::Fixtures;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Change, Expiry, Store, gone_status};
use crate::table::{self, Include};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How to run a [`FakeApiServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Serve https with a freshly generated CA (see [`FakeApiServer::ca_pem`]).
    pub tls: bool,
    pub fixtures: Fixtures,
    /// 0 picks a free port.
    pub port: u16,
    /// When set, every request but `/version` and the health endpoints must carry
    /// `Authorization: Bearer <token>`, else 401.
    pub token: Option<String>,
    /// (verb, resource) pairs answered with 403, e.g. `("list", "events")`, `("get", "pods/log")`,
    /// `("create", "pods/exec")`, `("watch", "pods")`; `"*"` matches any verb.
    pub forbidden: Vec<(String, String)>,
    /// The user named in 403 messages.
    pub user: String,
    /// Delay before every response.
    pub latency: Option<Duration>,
    /// The largest page the server returns; `limit` above it (or no limit) is cut to it and a
    /// `continue` token is returned.
    pub max_page: Option<usize>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tls: false,
            fixtures: Fixtures::default(),
            port: 0,
            token: None,
            forbidden: Vec::new(),
            user: "system:serviceaccount:backstage:kubectl-backstage".into(),
            latency: None,
            max_page: None,
        }
    }
}

impl ServerOptions {
    /// Plain http with these fixtures; set other fields with struct update syntax.
    pub fn new(fixtures: Fixtures) -> Self {
        ServerOptions {
            fixtures,
            ..Default::default()
        }
    }
}

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    pub accept: String,
    pub user_agent: String,
    /// The response status (101 for exec upgrades; 200 for watches, which stream on).
    pub status: u16,
}

impl RecordedRequest {
    /// Decoded query parameters in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The first value of a query parameter.
    pub fn param(&self, key: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether this was a watch request.
    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch").as_deref(), Some("true" | "1"))
    }
}

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub extras: Mutex<Fixtures>,
    pub token: Option<String>,
    pub forbidden: Vec<(String, String)>,
    pub user: String,
    pub latency: Option<Duration>,
    pub max_page: Option<usize>,
    pub requests: Mutex<Vec<RecordedRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn extras(&self) -> MutexGuard<'_, Fixtures> {
        lock(&self.extras)
    }
}

/// A fake Kubernetes API server on 127.0.0.1, running on its own thread and tokio runtime.
/// Dropping it stops it.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("url", &self.url())
            .finish()
    }
}

impl FakeApiServer {
    /// Starts the server on 127.0.0.1:`opts.port` (0 = a free port).
    pub fn start(opts: ServerOptions) -> anyhow::Result<FakeApiServer> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, opts.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tls_config, ca_pem) = if opts.tls {
            let (cfg, ca) = tls_config()?;
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
                Some(ca),
            )
        } else {
            (None, None)
        };
        let mut fixtures = opts.fixtures;
        let objects = fixtures.take_objects();
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(objects)),
            extras: Mutex::new(fixtures),
            token: opts.token,
            forbidden: opts.forbidden,
            user: opts.user,
            latency: opts.latency,
            max_page: opts.max_page,
            requests: Mutex::new(Vec::new()),
        });
        let (tx, rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-apiserver")
            .enable_all()
            .build()?;
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".into())
            .spawn(move || {
                runtime.block_on(serve(listener, serving, tls_config, rx));
                runtime.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(FakeApiServer {
            shared,
            addr,
            tls: opts.tls,
            ca_pem,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT` or `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM of the CA that signed the serving certificate (TLS only).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// A kubeconfig with one cluster, user and context (`context`), the given namespace and bearer
    /// token, and `certificate-authority-data` when serving TLS.
    pub fn kubeconfig_yaml(&self, context: &str, namespace: Option<&str>, token: &str) -> String {
        let mut cluster = json!({"server": self.url()});
        if let Some(ca) = &self.ca_pem {
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(ca));
        }
        let mut ctx =
            json!({"cluster": format!("{context}-cluster"), "user": format!("{context}-user")});
        if let Some(ns) = namespace {
            ctx["namespace"] = json!(ns);
        }
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": format!("{context}-cluster"), "cluster": cluster}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
            "preferences": {},
            "users": [{"name": format!("{context}-user"), "user": {"token": token}}],
        });
        serde_norway::to_string(&config).expect("kubeconfig serializes")
    }

    /// Writes [`FakeApiServer::kubeconfig_yaml`] to a file.
    pub fn write_kubeconfig(
        &self,
        path: &std::path::Path,
        context: &str,
        namespace: Option<&str>,
        token: &str,
    ) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(context, namespace, token))
    }

    /// Creates or replaces an object (by kind, namespace, name): bumps the resourceVersion and
    /// sends ADDED or MODIFIED to open watches. Returns the stored object.
    /// Panics when the object has no known kind or no name.
    pub fn apply(&self, obj: Value) -> Value {
        self.shared
            .store()
            .apply(obj)
            .unwrap_or_else(|e| panic!("FakeApiServer::apply: {e}"))
    }

    /// Deletes an object and sends DELETED to open watches; returns it when it existed.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().delete(kind, namespace, name)
    }

    /// A copy of one stored object.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = discovery::for_kind("", kind)?;
        self.shared.store().get(res.storage, namespace, name)
    }

    /// Expires every resourceVersion up to now, as an etcd compaction does: open watches end (with an
    /// `ERROR` event carrying a 410 Status, for [`Expiry::WatchEvent`]) and a watch from an older
    /// resourceVersion is refused with 410 Gone, the way `how` says. Lists are not affected, so a
    /// client that lists again can watch on from the list's version.
    pub fn expire_resource_versions(&self, how: Expiry) {
        self.shared.store().compact(how);
    }

    /// The current resourceVersion (what a list would report).
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Requests served so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Makes `dir` the filesystem of `pod` for exec (also possible before start, on [`Fixtures`]).
    pub fn set_pod_root(&self, pod: &str, dir: impl Into<std::path::PathBuf>) {
        self.shared.extras().set_pod_root(pod, dir);
    }

    /// Sets an environment variable for processes exec'd in `pod`.
    pub fn set_pod_env(&self, pod: &str, key: &str, value: &str) {
        self.shared.extras().set_pod_env(pod, key, value);
    }

    /// Sets or replaces a container log.
    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, previous: bool, text: &str) {
        self.shared
            .extras()
            .set_log(namespace, pod, container, previous, text);
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tls_config() -> anyhow::Result<(rustls::ServerConfig, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fake-apiserver-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((cfg, ca_cert.pem()))
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-apiserver: cannot listen: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let result = match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => builder.serve_connection_with_upgrades(TokioIo::new(s), svc).await,
                            Err(_) => return,
                        },
                        None => builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).await,
                    };
                    drop(result);
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    json_response_typed(code, v, "application/json")
}

fn json_response_typed(code: StatusCode, v: &Value, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        "audit-id",
        HeaderValue::from_str(&crate::fixtures::fake_uid("audit", rand_u64()))
            .unwrap_or(HeaderValue::from_static("0")),
    );
    r
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A `Status` failure response.
pub(crate) fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &v,
    )
}

fn not_found_path() -> Response<Body> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn object_not_found(res: &Resource, name: &str) -> Response<Body> {
    let mut details = json!({"name": name, "kind": res.plural});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    status_response(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(res)),
        Some(details),
    )
}

fn bad_request(message: &str) -> Response<Body> {
    status_response(400, "BadRequest", message, None)
}

pub(crate) fn bad_request_pub(message: &str) -> Response<Body> {
    bad_request(message)
}

fn qualified(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

// ---------------------------------------------------------------------------------------------
// Request handling

pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let accept = header(header::ACCEPT);
    let user_agent = header(header::USER_AGENT);
    if let Some(l) = shared.latency {
        tokio::time::sleep(l).await;
    }
    let resp = route(&shared, req).await;
    lock(&shared.requests).push(RecordedRequest {
        method,
        path,
        query,
        accept,
        user_agent,
        status: resp.status().as_u16(),
    });
    Ok(resp)
}

fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(token) = &shared.token else {
        return true;
    };
    let got = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    got.strip_prefix("Bearer ").map(str::trim) == Some(token.as_str())
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    match path.as_str() {
        "/version" => return json_response(StatusCode::OK, &discovery::version()),
        "/healthz" | "/livez" | "/readyz" => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return r;
        }
        _ => {}
    }
    if !authorized(shared, &req) {
        return status_response(401, "Unauthorized", "Unauthorized", None);
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api"] => json_response(StatusCode::OK, &discovery::api_versions()),
        ["apis"] => json_response(StatusCode::OK, &discovery::api_group_list()),
        ["api", "v1"] => json_response(
            StatusCode::OK,
            &discovery::resource_list("", "v1").expect("core"),
        ),
        ["apis", group] => {
            let groups = discovery::api_group_list();
            match groups["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["name"] == *group)
            {
                Some(g) => {
                    let mut g = g.clone();
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    json_response(StatusCode::OK, &g)
                }
                None => not_found_path(),
            }
        }
        ["apis", group, version] => match discovery::resource_list(group, version) {
            Some(list) => json_response(StatusCode::OK, &list),
            None => not_found_path(),
        },
        ["api", "v1", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource_request(shared, req, "", "v1", &rest).await
        }
        ["apis", group, version, rest @ ..] => {
            let (g, v) = (group.to_string(), version.to_string());
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            resource_request(shared, req, &g, &v, &rest).await
        }
        _ => not_found_path(),
    }
}

struct Target {
    res: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(group: &str, version: &str, rest: &[String]) -> Option<Target> {
    let s = |i: usize| rest.get(i).cloned();
    let (res, namespace, name, sub) = match rest {
        [first] if first == "namespaces" => (
            discovery::find(group, version, "namespaces")?,
            None,
            None,
            None,
        ),
        [first, name] if first == "namespaces" => (
            discovery::find(group, version, "namespaces")?,
            None,
            Some(name.clone()),
            None,
        ),
        [first, ns, plural, ..] if first == "namespaces" => {
            let res = discovery::find(group, version, plural)?;
            if !res.namespaced || rest.len() > 5 {
                return None;
            }
            (res, Some(ns.clone()), s(3), s(4))
        }
        [plural, ..] => {
            let res = discovery::find(group, version, plural)?;
            if rest.len() > 3 || (res.namespaced && rest.len() > 1) {
                return None;
            }
            (res, None, s(1), s(2))
        }
        [] => return None,
    };
    Some(Target {
        res,
        namespace,
        name,
        sub,
    })
}

fn forbidden(shared: &Shared, verb: &str, target: &Target) -> Option<Response<Body>> {
    let res = target.res;
    let resource = match &target.sub {
        Some(sub) => format!("{}/{sub}", res.plural),
        None => res.plural.to_string(),
    };
    let hit = shared.forbidden.iter().any(|(v, r)| {
        (v == verb || v == "*")
            && (r == &resource
                || *r == qualified(res)
                || r == "*"
                || (target.sub.is_none() && r == res.plural))
    });
    if !hit {
        return None;
    }
    let subject = match &target.name {
        Some(n) => format!("{} \"{n}\"", qualified(res)),
        None => qualified(res),
    };
    let scope = match &target.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let message = format!(
        "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
        shared.user, res.group
    );
    let mut details = json!({"kind": res.plural});
    if let Some(n) = &target.name {
        details["name"] = json!(n);
    }
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    Some(status_response(403, "Forbidden", &message, Some(details)))
}

async fn resource_request(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    group: &str,
    version: &str,
    rest: &[String],
) -> Response<Body> {
    let Some(target) = parse_target(group, version, rest) else {
        return not_found_path();
    };
    let query = Query::parse(req.uri().query());
    let is_exec = target.sub.as_deref() == Some("exec");
    let method_ok = req.method() == Method::GET || (is_exec && req.method() == Method::POST);
    if !method_ok {
        return status_response(
            405,
            "MethodNotAllowed",
            &format!(
                "the fake API server serves reads only, not {}",
                req.method()
            ),
            None,
        );
    }
    let watch = query.flag("watch");
    let verb = match (&target.name, &target.sub, watch) {
        (_, Some(s), _) if s == "exec" => "create",
        (Some(_), _, true) => "watch",
        (Some(_), _, false) => "get",
        (None, _, true) => "watch",
        (None, _, false) => "list",
    };
    if let Some(r) = forbidden(shared, verb, &target) {
        return r;
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match (&target.name, target.sub.as_deref()) {
        (Some(name), None) if !watch => get_object(shared, &target, name, &accept, &query),
        (Some(name), Some("log")) if target.res.plural == "pods" => pod_log(
            shared,
            target.namespace.as_deref().unwrap_or(""),
            name,
            &query,
        ),
        (Some(name), Some("exec")) if target.res.plural == "pods" => {
            let ns = target.namespace.clone().unwrap_or_default();
            crate::exec::exec(shared.clone(), req, &ns, name, &query).await
        }
        (Some(_), Some(_)) => not_found_path(),
        (name, None) => list_or_watch(shared, &target, name.as_deref(), &accept, &query, watch),
        (None, Some(_)) => not_found_path(),
    }
}

/// The events.k8s.io/v1 view of a core/v1 Event.
fn event_v1(ev: &Value) -> Value {
    let mut out = json!({
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "metadata": ev["metadata"],
        "eventTime": ev["eventTime"],
        "reportingController": ev["reportingComponent"],
        "reportingInstance": ev["reportingInstance"],
        "action": ev["action"],
        "reason": ev["reason"],
        "regarding": ev["involvedObject"],
        "note": ev["message"],
        "type": ev["type"],
    });
    for (from, to) in [
        ("series", "series"),
        ("related", "related"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ] {
        if !ev[from].is_null() {
            out[to] = ev[from].clone();
        }
    }
    if let Some(m) = out.as_object_mut() {
        m.retain(|_, v| !v.is_null() && *v != json!(""));
        if !m.contains_key("eventTime") {
            m.insert("eventTime".into(), Value::Null);
        }
    }
    out
}

fn present(res: &Resource, obj: Value) -> Value {
    if res.is_events_v1() {
        event_v1(&obj)
    } else {
        obj
    }
}

fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn wants_partial(accept: &str) -> bool {
    accept.contains("as=PartialObjectMetadata")
}

fn get_object(
    shared: &Shared,
    target: &Target,
    name: &str,
    accept: &str,
    query: &Query,
) -> Response<Body> {
    let ns = target.namespace.as_deref().unwrap_or("");
    let obj = shared.store().get(target.res.storage, ns, name);
    let Some(obj) = obj else {
        return object_not_found(target.res, name);
    };
    let obj = present(target.res, obj);
    if wants_table(accept) {
        let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
        let include = Include::parse(query.get("includeObject"));
        let t = table::table(target.res.storage, &[obj], include, meta, true);
        return json_response_typed(
            StatusCode::OK,
            &t,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        );
    }
    if wants_partial(accept) {
        return json_response(StatusCode::OK, &table::partial_metadata(&obj));
    }
    json_response(StatusCode::OK, &obj)
}

struct Filter {
    namespace: Option<String>,
    name: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(target: &Target, name: Option<&str>, query: &Query) -> Result<Filter, String> {
        let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
        let field_kind = if target.res.is_events_v1() {
            "events.v1"
        } else {
            target.res.plural
        };
        let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), field_kind)?;
        Ok(Filter {
            namespace: target.namespace.clone(),
            name: name.map(str::to_string),
            labels,
            fields,
        })
    }

    /// `obj` is the presented object (events.k8s.io view for those).
    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"] == ns)
            && self
                .name
                .as_deref()
                .is_none_or(|n| obj["metadata"]["name"] == n)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn list_or_watch(
    shared: &Arc<Shared>,
    target: &Target,
    name: Option<&str>,
    accept: &str,
    query: &Query,
    watch: bool,
) -> Response<Body> {
    let filter = match Filter::new(target, name, query) {
        Ok(f) => f,
        Err(e) => return bad_request(&e),
    };
    if watch {
        return start_watch(shared, target.res, filter, accept, query);
    }
    let start_after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(tok) => {
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(tok.trim_end_matches('='))
                .ok()
                .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok());
            match decoded {
                Some(t) => Some(t.start),
                None => {
                    return status_response(
                        400,
                        "BadRequest",
                        "continue key is not valid: illegal base64 data at input byte 0",
                        None,
                    );
                }
            }
        }
        None => None,
    };
    let requested = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let limit = match (requested, shared.max_page) {
        (Some(l), Some(m)) => Some(l.min(m)),
        (a, b) => a.or(b),
    };
    // One pass under the lock: copy the page, only count the rest.
    let (rv, page, remaining) = {
        let store = shared.store();
        let mut page: Vec<(String, Value)> = Vec::new();
        let mut remaining = 0usize;
        for (k, o) in store.scan(target.res.storage, start_after.as_deref()) {
            if filter
                .namespace
                .as_deref()
                .is_some_and(|ns| o["metadata"]["namespace"] != ns)
            {
                continue;
            }
            let full_page = limit.is_some_and(|l| page.len() >= l);
            if target.res.is_events_v1() {
                let presented = present(target.res, o.clone());
                if filter.matches(&presented) {
                    if full_page {
                        remaining += 1;
                    } else {
                        page.push((k.clone(), presented));
                    }
                }
            } else if filter.matches(o) {
                if full_page {
                    remaining += 1;
                } else {
                    page.push((k.clone(), o.clone()));
                }
            }
        }
        (store.resource_version(), page, remaining)
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if remaining > 0 {
        let last = page.last().map(|(k, _)| k.clone()).unwrap_or_default();
        let tok = serde_json::to_vec(&ContinueToken {
            v: "meta.k8s.io/v1".into(),
            rv,
            start: last,
        })
        .unwrap_or_default();
        meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok));
        meta["remainingItemCount"] = json!(remaining);
    }
    let objects: Vec<Value> = page.into_iter().map(|(_, o)| o).collect();
    if wants_table(accept) {
        let include = Include::parse(query.get("includeObject"));
        let t = table::table(target.res.storage, &objects, include, meta, true);
        return json_response_typed(
            StatusCode::OK,
            &t,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        );
    }
    if wants_partial(accept) {
        let items: Vec<Value> = objects.iter().map(table::partial_metadata).collect();
        let v = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items});
        return json_response(StatusCode::OK, &v);
    }
    // As the real server: list items carry neither kind nor apiVersion.
    let items: Vec<Value> = objects
        .into_iter()
        .map(|mut o| {
            if let Some(m) = o.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            o
        })
        .collect();
    let v = json!({
        "kind": format!("{}List", target.res.kind),
        "apiVersion": target.res.api_version(),
        "metadata": meta,
        "items": items,
    });
    json_response(StatusCode::OK, &v)
}

#[derive(Clone, Copy, PartialEq)]
enum WatchFormat {
    Object,
    Table(Include),
    Partial,
}

struct Watch {
    res: &'static Resource,
    filter: Filter,
    format: WatchFormat,
    queue: VecDeque<Bytes>,
    rx: broadcast::Receiver<Change>,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    next_bookmark: tokio::time::Instant,
    headers_sent: bool,
    rv: u64,
    /// Ends the watch at the next compaction of the store.
    compactions: tokio::sync::watch::Receiver<(u64, Expiry)>,
    /// Set when the watch ends once its queue is sent.
    ending: bool,
}

const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

impl Watch {
    fn push(&mut self, kind: &str, obj: &Value) {
        let object = match self.format {
            WatchFormat::Object => obj.clone(),
            WatchFormat::Partial => table::partial_metadata(obj),
            WatchFormat::Table(include) => {
                let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                let t = table::table(
                    self.res.storage,
                    std::slice::from_ref(obj),
                    include,
                    meta,
                    !self.headers_sent,
                );
                self.headers_sent = true;
                t
            }
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
    }

    /// The ERROR event of a watch whose resourceVersion has expired; the watch then ends.
    fn push_gone(&mut self, status: Value) {
        let mut line =
            serde_json::to_vec(&json!({"type": "ERROR", "object": status})).unwrap_or_default();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
        self.ending = true;
    }

    fn push_bookmark(&mut self, initial_end: bool) {
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta});
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
    }

    fn on_change(&mut self, c: Change) {
        if c.storage != self.res.storage {
            return;
        }
        self.rv = self.rv.max(c.rv);
        let new = present(self.res, c.object);
        let new_match = self.filter.matches(&new);
        match c.kind {
            "MODIFIED" => {
                let old_match = c
                    .old
                    .map(|o| self.filter.matches(&present(self.res, o)))
                    .unwrap_or(false);
                match (old_match, new_match) {
                    (true, true) => self.push("MODIFIED", &new),
                    (false, true) => self.push("ADDED", &new),
                    (true, false) => self.push("DELETED", &new),
                    (false, false) => {}
                }
            }
            kind => {
                if new_match {
                    self.push(kind, &new);
                }
            }
        }
    }
}

fn start_watch(
    shared: &Arc<Shared>,
    res: &'static Resource,
    filter: Filter,
    accept: &str,
    query: &Query,
) -> Response<Body> {
    let format = if wants_table(accept) {
        WatchFormat::Table(Include::parse(query.get("includeObject")))
    } else if wants_partial(accept) {
        WatchFormat::Partial
    } else {
        WatchFormat::Object
    };
    let from: Option<u64> = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .and_then(|v| v.parse().ok());
    let send_initial = query.flag("sendInitialEvents");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let now = tokio::time::Instant::now();
    let store = shared.store();
    let gone = from.and_then(|rv| Some((rv, store.expired(rv)?)));
    if let Some((rv, Expiry::HttpStatus)) = gone {
        return json_response(StatusCode::GONE, &gone_status(rv, store.compacted()));
    }
    let mut w = Watch {
        res,
        filter,
        format,
        queue: VecDeque::new(),
        rx: store.subscribe(),
        deadline: now + Duration::from_secs(timeout),
        bookmarks: query.flag("allowWatchBookmarks"),
        next_bookmark: now + BOOKMARK_EVERY,
        headers_sent: false,
        rv: store.resource_version(),
        compactions: store.compactions(),
        ending: false,
    };
    match from {
        Some(rv) if gone.is_some() => w.push_gone(gone_status(rv, store.compacted())),
        Some(rv) if !send_initial => {
            for c in store.history_after(res.storage, rv) {
                w.on_change(c);
            }
            w.rv = store.resource_version();
        }
        _ => {
            for (_, obj) in store.list(res.storage, w.filter.namespace.as_deref()) {
                let obj = present(res, obj);
                if w.filter.matches(&obj) {
                    w.push("ADDED", &obj);
                }
            }
            if send_initial {
                w.push_bookmark(true);
            }
        }
    }
    drop(store);
    let stream = futures::stream::unfold(w, |mut w| async move {
        loop {
            if let Some(b) = w.queue.pop_front() {
                return Some((Ok::<_, Infallible>(Frame::data(b)), w));
            }
            if w.ending {
                return None;
            }
            let wake = if w.bookmarks {
                w.deadline.min(w.next_bookmark)
            } else {
                w.deadline
            };
            tokio::select! {
                // A compaction first: changes made after it never reach a watch it has expired.
                biased;
                changed = w.compactions.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let (compacted, expiry) = *w.compactions.borrow_and_update();
                    match expiry {
                        Expiry::WatchEvent => w.push_gone(gone_status(w.rv, compacted)),
                        Expiry::HttpStatus => w.ending = true,
                    }
                }
                r = w.rx.recv() => match r {
                    Ok(c) => w.on_change(c),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= w.deadline {
                        return None;
                    }
                    w.next_bookmark += BOOKMARK_EVERY;
                    w.push_bookmark(false);
                }
            }
        }
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Logs

fn pod_log(shared: &Shared, ns: &str, name: &str, query: &Query) -> Response<Body> {
    let pods = discovery::find("", "v1", "pods").expect("pods");
    let Some(pod) = shared.store().get("pods", ns, name) else {
        return object_not_found(pods, name);
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let container = match query.get("container") {
        Some(c) => c.to_string(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            let default = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
                .as_str()
                .map(str::to_string);
            match default {
                Some(d) => d,
                None => {
                    return bad_request(&format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        containers.join(" ")
                    ));
                }
            }
        }
    };
    if !containers.contains(&container) {
        return bad_request(&format!(
            "container {container} is not valid for pod {name}"
        ));
    }
    let previous = query.flag("previous");
    let text = shared
        .extras()
        .log(ns, name, &container, previous)
        .map(str::to_string);
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let text = match text {
        Some(t) => t,
        None if previous => {
            return bad_request(&format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            ));
        }
        None => {
            let waiting = &status["state"]["waiting"];
            if waiting.is_object() && status["lastState"]["terminated"].is_null() {
                let why = match waiting["reason"].as_str().unwrap_or("") {
                    "ImagePullBackOff" | "ErrImagePull" => {
                        "trying and failing to pull image".to_string()
                    }
                    "" => "ContainerCreating".to_string(),
                    other => other.to_string(),
                };
                return bad_request(&format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
                ));
            }
            String::new()
        }
    };
    let mut text = text;
    if let Some(n) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        text = lines[lines.len().saturating_sub(n)..].concat();
    }
    let mut bytes = text.into_bytes();
    if let Some(n) = query
        .get("limitBytes")
        .and_then(|n| n.parse::<usize>().ok())
    {
        bytes.truncate(n);
    }
    let mut r = Response::new(full(bytes));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}
