//! A connected cluster: lists that read every page, watches that resume, previous container logs.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams, LogParams, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::KubeError;
use super::config::{load_kubeconfig, resolve_context};
use crate::settings::ClusterSettings;

/// A namespaced kind that can be watched from a background task.
pub trait WatchableKind:
    Resource<Scope = NamespaceResourceScope, DynamicType: Default>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + 'static
{
}

impl<K> WatchableKind for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType: Default>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static
{
}

/// Items per page when listing; large lists are read page by page with `continue`.
const PAGE_SIZE: u32 = 500;
/// A watch request asks the server to end it after this long; it is then resumed.
const WATCH_SECONDS: u32 = 290;

/// What a command run in a container printed, and how it ended.
#[derive(Debug)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code, when the API server reported one.
    pub exit_code: Option<i32>,
}

/// A change seen by a watch.
#[derive(Debug)]
pub enum WatchChange<K> {
    Applied(K),
    Deleted(K),
    /// The watch could not resume (its resourceVersion expired): here is the whole list again.
    Relisted(Vec<K>),
}

/// How much of a log [`Cluster::log_tail`] reads.
#[derive(Debug, Clone, Copy)]
pub struct LogBounds {
    pub tail_lines: i64,
    pub limit_bytes: i64,
    pub since_seconds: Option<i64>,
}

#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    pub context: String,
    pub namespace: String,
    pub server: String,
    timeout: Option<Duration>,
}

impl Cluster {
    /// Reads the kubeconfig, resolves context and namespace, and builds a client (no request is sent).
    pub async fn connect(settings: &ClusterSettings) -> Result<Cluster, KubeError> {
        // Reading the kubeconfig files blocks; do it off the runtime.
        let read = settings.clone();
        let resolved = tokio::task::spawn_blocking(move || {
            let (kubeconfig, files) = load_kubeconfig(&read.kubeconfig)?;
            resolve_context(kubeconfig, files, &read)
        })
        .await
        .map_err(|e| KubeError::ReadKubeconfig {
            path: Default::default(),
            message: e.to_string(),
        })??;
        let mut config = resolved.client_config().await?;
        if let Some(timeout) = settings.request_timeout {
            config.connect_timeout = Some(timeout);
        }
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        tracing::info!(context = %resolved.context, namespace = %resolved.namespace, %server, "using cluster");
        let client = kube::Client::try_from(config).map_err(|e| KubeError::Client {
            context: resolved.context.clone(),
            message: e.to_string(),
        })?;
        Ok(Cluster {
            client,
            context: resolved.context,
            namespace: resolved.namespace,
            server,
            timeout: settings.request_timeout,
        })
    }

    /// The kube client, for the adapter's other modules (dynamic kinds in other namespaces).
    pub(super) fn client(&self) -> &kube::Client {
        &self.client
    }

    fn action(&self, verb: &str, resource: &str) -> String {
        format!("{verb} {resource} in namespace {:?}", self.namespace)
    }

    pub(super) async fn call<T>(
        &self,
        action: impl Fn() -> String,
        request: impl Future<Output = kube::Result<T>>,
    ) -> Result<T, KubeError> {
        let result = match self.timeout {
            Some(after) => match tokio::time::timeout(after, request).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(KubeError::Timeout {
                        context: self.context.clone(),
                        action: action(),
                        after,
                    });
                }
            },
            None => request.await,
        };
        result.map_err(|e| self.error(e, action()))
    }

    fn error(&self, error: kube::Error, action: String) -> KubeError {
        let context = self.context.clone();
        match error {
            kube::Error::Api(status) => match status.code {
                401 => KubeError::Unauthorized { context, action },
                403 => KubeError::Forbidden {
                    context,
                    action,
                    message: status.message.clone(),
                },
                code => KubeError::Api {
                    action,
                    code,
                    message: status.message.clone(),
                },
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                let message = root_cause(&error);
                if message.contains("deadline has elapsed")
                    || message.to_lowercase().contains("timed out")
                {
                    KubeError::Timeout {
                        context,
                        action,
                        after: self.timeout.unwrap_or_default(),
                    }
                } else {
                    KubeError::Unreachable {
                        server: self.server.clone(),
                        context,
                        message,
                    }
                }
            }
            other => KubeError::Other {
                action,
                message: root_cause(&other),
            },
        }
    }

    pub(super) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Lists every object of a kind in the namespace, page by page, handing each page over as it
    /// arrives so that a long list is never held twice. Returns the list's resourceVersion.
    pub async fn list_pages<K>(
        &self,
        resource: &str,
        selector: Option<&str>,
        mut page: impl FnMut(Vec<K>),
    ) -> Result<String, KubeError>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let api = self.api::<K>();
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        let mut version = None;
        loop {
            let list = self
                .call(|| self.action("list", resource), api.list(&params))
                .await?;
            version.get_or_insert(list.metadata.resource_version.clone().unwrap_or_default());
            page(list.items);
            match list.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(version.unwrap_or_default()),
            }
        }
    }

    /// Every object of a kind in the namespace, with the list's resourceVersion.
    pub async fn list_all<K>(
        &self,
        resource: &str,
        selector: Option<&str>,
    ) -> Result<(Vec<K>, String), KubeError>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let mut items = Vec::new();
        let version = self
            .list_pages(resource, selector, |page| items.extend(page))
            .await?;
        Ok((items, version))
    }

    /// The log of a container's previous run, bounded to its last lines.
    pub async fn previous_log(
        &self,
        pod: &str,
        container: &str,
        tail_lines: i64,
        limit_bytes: i64,
    ) -> Result<String, KubeError> {
        let api = self.api::<k8s_openapi::api::core::v1::Pod>();
        let params = LogParams {
            container: Some(container.to_string()),
            previous: true,
            tail_lines: Some(tail_lines),
            limit_bytes: Some(limit_bytes),
            ..LogParams::default()
        };
        self.call(
            || {
                format!(
                    "get the previous log of pod {pod:?} container {container:?} in namespace {:?}",
                    self.namespace
                )
            },
            lossy_log(&api, pod, &params),
        )
        .await
    }

    /// The end of a container's log (its current run, or its previous one), bounded to its last lines
    /// and bytes, and to what it wrote in the last `since_seconds` when given.
    pub async fn log_tail(
        &self,
        pod: &str,
        container: &str,
        previous: bool,
        bounds: LogBounds,
    ) -> Result<String, KubeError> {
        let api = self.api::<k8s_openapi::api::core::v1::Pod>();
        let params = LogParams {
            container: Some(container.to_string()),
            previous,
            tail_lines: Some(bounds.tail_lines),
            limit_bytes: Some(bounds.limit_bytes),
            since_seconds: bounds.since_seconds,
            ..LogParams::default()
        };
        let which = if previous { "previous log" } else { "log" };
        self.call(
            || {
                format!(
                    "get the {which} of pod {pod:?} container {container:?} in namespace {:?}",
                    self.namespace
                )
            },
            lossy_log(&api, pod, &params),
        )
        .await
    }

    /// The first `limit_bytes` of the log of a container's current run: what it wrote since it started,
    /// from the beginning, where a backend logs its start-up failures (a tail would lose them behind
    /// the probe requests logged every few seconds).
    pub async fn current_log_head(
        &self,
        pod: &str,
        container: &str,
        limit_bytes: i64,
    ) -> Result<String, KubeError> {
        let api = self.api::<k8s_openapi::api::core::v1::Pod>();
        let params = LogParams {
            container: Some(container.to_string()),
            limit_bytes: Some(limit_bytes),
            ..LogParams::default()
        };
        self.call(
            || {
                format!(
                    "get the log of pod {pod:?} container {container:?} in namespace {:?}",
                    self.namespace
                )
            },
            lossy_log(&api, pod, &params),
        )
        .await
    }

    /// Runs a command in a container (no shell, no TTY) over the exec websocket, feeding it `stdin`,
    /// and collects what it prints. Secrets go in `stdin`, never in `command` (the command line ends up
    /// in the API server's audit log).
    pub async fn exec(
        &self,
        pod: &str,
        container: Option<&str>,
        command: &[String],
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, KubeError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let api = self.api::<k8s_openapi::api::core::v1::Pod>();
        let mut params = kube::api::AttachParams::default()
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(true);
        if let Some(container) = container {
            params = params.container(container);
        }
        let action = || format!("exec into pod {pod:?} in namespace {:?}", self.namespace);
        let mut process = self
            .call(action, api.exec(pod, command.to_vec(), &params))
            .await?;
        let status = process.take_status();
        let mut stdout = process.stdout();
        let mut stderr = process.stderr();
        let writer = match (stdin, process.stdin()) {
            (Some(data), Some(mut input)) => Some(tokio::spawn(async move {
                let _ = input.write_all(&data).await;
                let _ = input.shutdown().await;
            })),
            _ => None,
        };
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(r) = stdout.as_mut() {
                let _ = r.read_to_end(&mut buf).await;
            }
            buf
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(r) = stderr.as_mut() {
                let _ = r.read_to_end(&mut buf).await;
            }
            buf
        };
        let (stdout, stderr) = tokio::join!(read_out, read_err);
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        process.join().await.map_err(|e| KubeError::Other {
            action: action(),
            message: root_cause(&e),
        })?;
        let exit_code = status.map(|s| {
            if s.status.as_deref() == Some("Success") {
                0
            } else {
                s.details
                    .and_then(|d| d.causes)
                    .and_then(|causes| {
                        causes
                            .into_iter()
                            .find(|c| c.reason.as_deref() == Some("ExitCode"))
                    })
                    .and_then(|c| c.message)
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(1)
            }
        });
        Ok(ExecOutput {
            stdout,
            stderr,
            exit_code,
        })
    }

    /// Creates a pod in the namespace; the API server's copy is returned.
    pub async fn create_pod(
        &self,
        pod: &k8s_openapi::api::core::v1::Pod,
    ) -> Result<k8s_openapi::api::core::v1::Pod, KubeError> {
        let api = self.api::<k8s_openapi::api::core::v1::Pod>();
        self.call(
            || self.action("create", "pods"),
            api.create(&kube::api::PostParams::default(), pod),
        )
        .await
    }

    /// The events about one object (one page, by field selector), in the server's order.
    pub async fn events_of(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Vec<k8s_openapi::api::core::v1::Event>, KubeError> {
        let api = self.api::<k8s_openapi::api::core::v1::Event>();
        let params = ListParams::default()
            .fields(&format!(
                "involvedObject.kind={kind},involvedObject.name={name}"
            ))
            .limit(PAGE_SIZE);
        let list = self
            .call(|| self.action("list", "events"), api.list(&params))
            .await?;
        Ok(list.items)
    }

    /// One pod by name; `None` when it does not exist (any more).
    pub async fn get_pod(
        &self,
        name: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::Pod>, KubeError> {
        let api = self.api::<k8s_openapi::api::core::v1::Pod>();
        match self
            .call(|| self.action("get", "pods"), api.get(name))
            .await
        {
            Ok(pod) => Ok(Some(pod)),
            Err(KubeError::Api { code: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a pod at once (grace period 0, its containers only wait); a pod already gone is fine.
    /// Returns whether it was there.
    pub async fn delete_pod(&self, name: &str) -> Result<bool, KubeError> {
        let api = self.api::<k8s_openapi::api::core::v1::Pod>();
        let params = kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..kube::api::DeleteParams::background()
        };
        match self
            .call(|| self.action("delete", "pods"), api.delete(name, &params))
            .await
        {
            Ok(_) => Ok(true),
            Err(KubeError::Api { code: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Watches a kind from `version` on, resuming when the server ends the watch and re-listing when
    /// the version has expired. Changes arrive on the returned channel until it is dropped; an error
    /// ends it.
    pub fn watch<K>(
        &self,
        resource: &'static str,
        selector: Option<String>,
        version: String,
    ) -> mpsc::Receiver<Result<WatchChange<K>, KubeError>>
    where
        K: WatchableKind,
    {
        let (sender, receiver) = mpsc::channel(256);
        let cluster = self.clone();
        tokio::spawn(async move {
            if let Err(e) = cluster
                .watch_loop::<K>(resource, selector, version, &sender)
                .await
            {
                let _ = sender.send(Err(e)).await;
            }
        });
        receiver
    }

    async fn watch_loop<K>(
        &self,
        resource: &'static str,
        selector: Option<String>,
        mut version: String,
        sender: &mpsc::Sender<Result<WatchChange<K>, KubeError>>,
    ) -> Result<(), KubeError>
    where
        K: WatchableKind,
    {
        let api = self.api::<K>();
        let mut params = WatchParams {
            bookmarks: true,
            ..WatchParams::default()
        }
        .timeout(WATCH_SECONDS);
        if let Some(selector) = &selector {
            params = params.labels(selector);
        }
        loop {
            let expired = match self
                .watch_once(&api, &params, resource, &mut version, sender)
                .await?
            {
                WatchEnd::Closed => false,
                WatchEnd::Expired => true,
                WatchEnd::ReceiverGone => return Ok(()),
            };
            if expired {
                tracing::info!(resource, %version, "watch expired (410 Gone); listing again");
                let (items, fresh) = self.list_all::<K>(resource, selector.as_deref()).await?;
                version = fresh;
                if sender.send(Ok(WatchChange::Relisted(items))).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// One watch request from `version`, its changes sent on, `version` kept up to date. A version too
    /// old to watch from (410 Gone) is reported as [`WatchEnd::Expired`], whether the server said so
    /// with the HTTP status of the request or with an ERROR event on the stream.
    async fn watch_once<K>(
        &self,
        api: &Api<K>,
        params: &WatchParams,
        resource: &'static str,
        version: &mut String,
        sender: &mpsc::Sender<Result<WatchChange<K>, KubeError>>,
    ) -> Result<WatchEnd, KubeError>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let action = || self.action("watch", resource);
        let stream = match self.call(action, api.watch(params, version)).await {
            Ok(stream) => stream,
            Err(e) if gone(&e) => return Ok(WatchEnd::Expired),
            Err(e) => return Err(e),
        };
        let mut stream = stream.boxed();
        loop {
            let event = match stream.try_next().await {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(WatchEnd::Closed),
                Err(e) => {
                    let e = self.error(e, action());
                    return if gone(&e) {
                        Ok(WatchEnd::Expired)
                    } else {
                        Err(e)
                    };
                }
            };
            let change = match event {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    *version = obj.resource_version().unwrap_or_else(|| version.clone());
                    WatchChange::Applied(obj)
                }
                WatchEvent::Deleted(obj) => {
                    *version = obj.resource_version().unwrap_or_else(|| version.clone());
                    WatchChange::Deleted(obj)
                }
                WatchEvent::Bookmark(bookmark) => {
                    *version = bookmark.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(status) if status.code == 410 => {
                    return Ok(WatchEnd::Expired);
                }
                WatchEvent::Error(status) => {
                    return Err(self.error(kube::Error::Api(status), action()));
                }
            };
            if sender.send(Ok(change)).await.is_err() {
                return Ok(WatchEnd::ReceiverGone);
            }
        }
    }
}

/// How one watch request ended.
enum WatchEnd {
    /// The server ended it (its timeout); resume from the last version seen.
    Closed,
    /// 410 Gone: the version is too old to watch from; list again.
    Expired,
    /// Nobody reads the changes any more.
    ReceiverGone,
}

/// 410 Gone: the resourceVersion has expired (etcd compacted it away).
fn gone(error: &KubeError) -> bool {
    matches!(error, KubeError::Api { code: 410, .. })
}

/// The innermost message of an error chain: "Connection refused (os error 111)" rather than
/// "ServiceError: client error (Connect)".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// A log as text. `limitBytes` may cut a character in two, so invalid UTF-8 is replaced rather than
/// failing the whole read.
async fn lossy_log(
    api: &Api<k8s_openapi::api::core::v1::Pod>,
    pod: &str,
    params: &LogParams,
) -> kube::Result<String> {
    use futures::AsyncReadExt;
    let mut reader = api.log_stream(pod, params).await?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(kube::Error::ReadEvents)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
