//! The fake API server itself: options, the shared state, start and stop, the accept loop. Requests
//! are answered in `router`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::discovery;
use crate::fixtures::Fixtures;
use crate::router::handle;
use crate::store::{Expiry, Store};
use crate::tls::tls_config;

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
    /// `("create", "pods/exec")`, `("create", "pods/portforward")`, `("watch", "pods")`; `"*"`
    /// matches any verb.
    pub forbidden: Vec<(String, String)>,
    /// The user named in 403 messages.
    pub user: String,
    /// Delay before every response.
    pub latency: Option<Duration>,
    /// The largest page the server returns; `limit` above it (or no limit) is cut to it and a
    /// `continue` token is returned.
    pub max_page: Option<usize>,
    /// Serve the Flux kinds (HelmRelease, Kustomization, the image automation kinds), as a cluster
    /// with Flux's CRDs does; without it their groups are absent from discovery and their paths 404.
    pub flux: bool,
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
            flux: false,
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
    /// The response status (101 for exec and port-forward upgrades; 200 for watches, which stream on).
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
    pub flux: bool,
    pub requests: Mutex<Vec<RecordedRequest>>,
    /// The simulated kubelet (image registry, pod runtime, started pods).
    pub kubelet: Mutex<crate::kubelet::Kubelet>,
    /// The Flux controller simulation's switch, delay and wanted images.
    pub flux_sim: Mutex<crate::flux::Flux>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
            flux: opts.flux,
            requests: Mutex::new(Vec::new()),
            kubelet: Mutex::new(crate::kubelet::Kubelet::default()),
            flux_sim: Mutex::new(crate::flux::Flux::default()),
        });
        let (tx, rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-apiserver")
            .enable_all()
            .build()?;
        let deletions = shared.store().subscribe();
        runtime.spawn(crate::kubelet::watch_deletions(shared.clone(), deletions));
        let flux_changes = shared.store().subscribe();
        runtime.spawn(crate::flux::controller(shared.clone(), flux_changes));
        let deployment_changes = shared.store().subscribe();
        runtime.spawn(crate::rollout::controller(
            shared.clone(),
            deployment_changes,
        ));
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

    /// Makes port-forwards to `port` of `pod` lead to `target` (also possible before start, on
    /// [`Fixtures`]); replaces an earlier target.
    pub fn set_pod_port(&self, pod: &str, port: u16, target: SocketAddr) {
        self.shared.extras().set_pod_port(pod, port, target);
    }

    /// Sets an environment variable for processes exec'd in `pod`.
    pub fn set_pod_env(&self, pod: &str, key: &str, value: &str) {
        self.shared.extras().set_pod_env(pod, key, value);
    }

    /// An image the fake "registry" has: pods using it pull it, and exec in their containers runs in
    /// `root_dir` (the image's filesystem). Pods with an unregistered image fail to pull.
    pub fn register_image(&self, reference: &str, root_dir: impl Into<std::path::PathBuf>) {
        lock(&self.shared.kubelet).register_image(reference, root_dir.into());
    }

    /// Makes pulls of `reference` take `delay` (the pod shows ContainerCreating meanwhile).
    pub fn set_image_pull_delay(&self, reference: &str, delay: Duration) {
        lock(&self.shared.kubelet).set_pull_delay(reference, delay);
    }

    /// Starts created pods' containers with `runtime` (default: every registered image is ready at
    /// once, with no ports).
    pub fn set_pod_runtime(&self, runtime: Arc<dyn crate::kubelet::PodRuntime>) {
        lock(&self.shared.kubelet).set_runtime(runtime);
    }

    /// Turns the Flux controller simulation on or off: a Deployment labelled as managed by a
    /// HelmRelease or Kustomization (`helm.toolkit.fluxcd.io/name`+`namespace`, or the
    /// `kustomize.toolkit.fluxcd.io` ones) whose image differs from what
    /// [`FakeApiServer::set_flux_desired_image`] says is set back after the reconcile delay, unless
    /// the release has `spec.suspend: true`; resuming a release reconciles at once (after the delay).
    pub fn flux_reconciles(&self, on: bool) {
        lock(&self.shared.flux_sim).enabled = on;
    }

    /// What a release (`kind` HelmRelease or Kustomization) wants as `container`'s image.
    pub fn set_flux_desired_image(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        container: &str,
        image: &str,
    ) {
        let mut flux = lock(&self.shared.flux_sim);
        let list = flux
            .desired
            .entry((kind.to_string(), namespace.to_string(), name.to_string()))
            .or_default();
        list.retain(|(c, _)| c != container);
        list.push((container.to_string(), image.to_string()));
    }

    /// How long the simulated Flux waits before setting an image back (default 500 ms).
    pub fn set_flux_reconcile_delay(&self, delay: Duration) {
        lock(&self.shared.flux_sim).delay = delay;
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
