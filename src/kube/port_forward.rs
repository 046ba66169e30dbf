//! Reaching the Backstage backend through the API server, as `kubectl port-forward svc/NAME` does: find
//! the Backstage Service, the Running and Ready pod behind it and the container port its port leads
//! to, then listen on 127.0.0.1 and carry every accepted connection over its own port-forward stream
//! (`pods/portforward`, websocket `v4.channel.k8s.io`). The forward lives as long as its
//! [`LocalForward`].
//!
//! Which Service is "the Backstage Service" (when none is named):
//! 1. only Services with a selector that selects at least one pod outside a StatefulSet (so the
//!    database's Services never qualify);
//! 2. of those, the ones labelled or selecting `app.kubernetes.io/name=backstage`, when there are any;
//! 3. one left: that one; several: the one named `backstage`, else the choice is refused as ambiguous.
//!
//! Its port: the one named `http` (or `http-backend`, as the Backstage Helm chart names it), else the
//! only one, else port 7007. The pod: the newest that is Running, Ready and not terminating. The
//! container port: the port's `targetPort` — a number, or a name looked up in the pod's containers —
//! or the port itself when it has none.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Portforwarder};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{Cluster, KubeError};

/// How long a finished connection waits for its websocket's close handshake.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The port Backstage's backend listens on by default.
pub const BACKSTAGE_PORT: u16 = 7007;

/// A local listener whose connections are forwarded to a Backstage pod. Dropping it stops the
/// listener and every forwarded connection.
#[derive(Debug)]
pub struct LocalForward {
    addr: SocketAddr,
    what: String,
    service: Option<String>,
    pod: String,
    port: u16,
    last_error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalForward {
    /// `http://127.0.0.1:PORT/`, the base URL requests to the backend go to.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What is forwarded, for people: `service/backstage → pod/backstage-6c9f8d7b54-k4m2x:7007`.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The Service forwarded through, unless the forward goes to a pod directly.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// The container port connections go to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last reason a forwarded connection failed: the kubelet's message from the port's error
    /// channel (e.g. nothing listens on the port in the pod), or why the stream could not be opened.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl LocalForward {
    /// Stops listening and ends every forwarded connection, and returns once they are gone (dropping
    /// the forward does the same without waiting).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for LocalForward {
    fn drop(&mut self) {
        // The accept loop owns the connections' tasks; aborting it drops (and so aborts) them too.
        self.task.abort();
    }
}

/// Where a forward leads, once chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    /// `None` when forwarding to a pod directly.
    pub service: Option<String>,
    pub pod: String,
    pub port: u16,
}

impl Cluster {
    /// Finds the Backstage Service (`service`, or by the rule in this module's documentation), the
    /// pod and port behind it, checks that the API server lets us forward to it (one stream is opened
    /// at once and kept for the first connection), and starts listening on 127.0.0.1:0.
    pub async fn forward_to_backstage(
        &self,
        service: Option<&str>,
    ) -> Result<LocalForward, KubeError> {
        let target = self.backstage_target(service).await?;
        self.forward(target).await
    }

    /// Forwards to `port` of `pod` directly, as `kubectl port-forward pod/NAME` does (no Service; the
    /// pod's state is not checked here, the API server and kubelet refuse what cannot be reached).
    pub async fn forward_to_pod(&self, pod: &str, port: u16) -> Result<LocalForward, KubeError> {
        self.forward(ForwardTarget {
            service: None,
            pod: pod.to_string(),
            port,
        })
        .await
    }

    async fn forward(&self, target: ForwardTarget) -> Result<LocalForward, KubeError> {
        let first = self.open_port_forward(&target.pod, target.port).await?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| KubeError::LocalListener {
                message: e.to_string(),
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| KubeError::LocalListener {
                message: e.to_string(),
            })?;
        let what = match &target.service {
            Some(service) => format!(
                "service/{service} \u{2192} pod/{}:{}",
                target.pod, target.port
            ),
            None => format!("pod/{}:{}", target.pod, target.port),
        };
        tracing::info!(%addr, forward = %what, "forwarding through the API server");
        let last_error = Arc::new(Mutex::new(None));
        let task = tokio::spawn(accept_loop(
            self.clone(),
            listener,
            target.clone(),
            first,
            last_error.clone(),
        ));
        Ok(LocalForward {
            addr,
            what,
            service: target.service,
            pod: target.pod,
            port: target.port,
            last_error,
            task,
        })
    }

    /// The Service, pod and container port a forward to Backstage leads to.
    pub async fn backstage_target(
        &self,
        service: Option<&str>,
    ) -> Result<ForwardTarget, KubeError> {
        let (pods, _) = self.list_all::<Pod>("pods", None).await?;
        let service = match service {
            Some(name) => self.named_service(name).await?,
            None => {
                let (services, _) = self.list_all::<Service>("services", None).await?;
                choose_service(&services, &pods, &self.namespace)?.clone()
            }
        };
        resolve_target(&service, &pods, &self.namespace)
    }

    async fn named_service(&self, name: &str) -> Result<Service, KubeError> {
        let api: Api<Service> = self.api();
        let action = || format!("get service {name:?} in namespace {:?}", self.namespace);
        match self.call(action, api.get(name)).await {
            Err(KubeError::Api { code: 404, .. }) => Err(KubeError::ServiceNotFound {
                service: name.to_string(),
                namespace: self.namespace.clone(),
            }),
            other => other,
        }
    }

    /// Opens one port-forward stream to `port` of `pod`.
    async fn open_port_forward(&self, pod: &str, port: u16) -> Result<Portforwarder, KubeError> {
        let api: Api<Pod> = self.api();
        let action = || {
            format!(
                "create pods/portforward for pod {pod:?} in namespace {:?}",
                self.namespace
            )
        };
        self.call(action, api.portforward(pod, &[port])).await
    }
}

async fn accept_loop(
    cluster: Cluster,
    listener: TcpListener,
    target: ForwardTarget,
    first: Portforwarder,
    last_error: Arc<Mutex<Option<String>>>,
) {
    let mut spare = Some(first);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let local = match accepted {
                    Ok((local, _)) => local,
                    Err(e) => {
                        tracing::warn!(error = %e, "port-forward: accepting a local connection failed");
                        continue;
                    }
                };
                let _ = local.set_nodelay(true);
                let spare = spare.take();
                let cluster = cluster.clone();
                let target = target.clone();
                let last_error = last_error.clone();
                connections.spawn(async move {
                    let forwarder = match spare {
                        Some(f) => Ok(f),
                        None => cluster.open_port_forward(&target.pod, target.port).await,
                    };
                    match forwarder {
                        Ok(f) => carry(local, f, target.port, &last_error).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "port-forward: cannot open a stream");
                            record(&last_error, e.to_string());
                        }
                    }
                });
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

fn record(last_error: &Mutex<Option<String>>, message: String) {
    *last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
}

/// Copies one local connection both ways over its port-forward stream. The pod's side ending ends
/// the connection; the local side ending closes the stream (v4 port-forward has no half-close, and the
/// kubelet ends a forward when either direction ends, as with `kubectl port-forward`).
async fn carry(
    local: TcpStream,
    mut forwarder: Portforwarder,
    port: u16,
    last_error: &Mutex<Option<String>>,
) {
    let (Some(upstream), Some(error)) = (forwarder.take_stream(port), forwarder.take_error(port))
    else {
        return;
    };
    let mut error = Box::pin(error);
    let (mut local_read, mut local_write) = local.into_split();
    let (mut up_read, mut up_write) = tokio::io::split::<DuplexStream>(upstream);
    {
        let to_pod = async {
            let _ = tokio::io::copy(&mut local_read, &mut up_write).await;
            let _ = up_write.shutdown().await;
        };
        let from_pod = async {
            let _ = tokio::io::copy(&mut up_read, &mut local_write).await;
            // The error frame comes before the close that ended the copy, so it has arrived by now.
            if let Some(Some(message)) = error.as_mut().now_or_never() {
                tracing::warn!(%message, "port-forward: the kubelet reported an error");
                record(last_error, message);
            }
            let _ = local_write.shutdown().await;
        };
        tokio::pin!(from_pod);
        tokio::select! {
            () = &mut from_pod => {}
            () = to_pod => from_pod.await,
        }
    }
    // Dropping the stream lets the forwarder's task close the websocket and end; an API server that
    // never answers the close is not waited for beyond a bound.
    drop((up_read, up_write));
    match tokio::time::timeout(CLOSE_GRACE, forwarder.join()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "port-forward: the stream did not end cleanly"),
        Err(_) => tracing::debug!("port-forward: no close handshake within {CLOSE_GRACE:?}"),
    }
}

fn labels_match(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

fn name_of(service: &Service) -> &str {
    service.metadata.name.as_deref().unwrap_or("")
}

fn in_statefulset(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "StatefulSet")
}

fn marked_backstage(service: &Service) -> bool {
    let is_backstage = |m: Option<&BTreeMap<String, String>>| -> bool {
        m.and_then(|m| m.get("app.kubernetes.io/name"))
            .is_some_and(|v| v == "backstage")
    };
    is_backstage(service.metadata.labels.as_ref()) || is_backstage(selector(service))
}

/// The Backstage Service of the namespace, by the rule in this module's documentation.
pub fn choose_service<'a>(
    services: &'a [Service],
    pods: &[Pod],
    namespace: &str,
) -> Result<&'a Service, KubeError> {
    let candidates: Vec<&Service> = services
        .iter()
        .filter(|s| {
            selector(s).is_some_and(|sel| {
                pods.iter()
                    .any(|p| !in_statefulset(p) && labels_match(sel, p))
            })
        })
        .collect();
    let marked: Vec<&Service> = candidates
        .iter()
        .copied()
        .filter(|s| marked_backstage(s))
        .collect();
    let best = if marked.is_empty() {
        candidates
    } else {
        marked
    };
    match best.as_slice() {
        [] => {
            let mut names: Vec<&str> = services.iter().map(name_of).collect();
            names.sort_unstable();
            Err(KubeError::NoBackstageService {
                namespace: namespace.to_string(),
                services: if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
            })
        }
        [only] => Ok(only),
        several => match several.iter().find(|s| name_of(s) == "backstage") {
            Some(s) => Ok(s),
            None => {
                let mut names: Vec<&str> = several.iter().map(|s| name_of(s)).collect();
                names.sort_unstable();
                Err(KubeError::AmbiguousService {
                    namespace: namespace.to_string(),
                    services: names.join(", "),
                })
            }
        },
    }
}

/// The Service's port that leads to the backend.
pub fn service_port(service: &Service) -> Result<&ServicePort, KubeError> {
    let ports: &[ServicePort] = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let named = |n: &str| ports.iter().find(|p| p.name.as_deref() == Some(n));
    if let Some(p) = named("http").or_else(|| named("http-backend")) {
        return Ok(p);
    }
    if let [only] = ports {
        return Ok(only);
    }
    if let Some(p) = ports.iter().find(|p| p.port == i32::from(BACKSTAGE_PORT)) {
        return Ok(p);
    }
    let list: Vec<String> = ports
        .iter()
        .map(|p| match &p.name {
            Some(n) if !n.is_empty() => format!("{n}:{}", p.port),
            _ => p.port.to_string(),
        })
        .collect();
    Err(KubeError::NoServicePort {
        service: name_of(service).to_string(),
        ports: if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        },
    })
}

fn running_and_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The pod and container port behind `service`.
pub fn resolve_target(
    service: &Service,
    pods: &[Pod],
    namespace: &str,
) -> Result<ForwardTarget, KubeError> {
    let name = name_of(service).to_string();
    let Some(sel) = selector(service) else {
        return Err(KubeError::ServiceWithoutSelector { service: name });
    };
    let port = service_port(service)?;
    let behind: Vec<&Pod> = pods.iter().filter(|p| labels_match(sel, p)).collect();
    let pod = behind
        .iter()
        .copied()
        .filter(|p| running_and_ready(p))
        .max_by(|a, b| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a)
                .cmp(&created(b))
                .then_with(|| b.metadata.name.cmp(&a.metadata.name))
        });
    let Some(pod) = pod else {
        let mut states: Vec<String> = behind
            .iter()
            .map(|p| {
                let view = crate::model::pod::PodView::from_pod(p);
                format!("{} {} {}", view.name, view.ready, view.status)
            })
            .collect();
        states.sort_unstable();
        return Err(KubeError::NoReadyPod {
            service: name,
            namespace: namespace.to_string(),
            pods: if states.is_empty() {
                "it selects none".to_string()
            } else {
                states.join(", ")
            },
        });
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let container_port = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => pod
                .spec
                .iter()
                .flat_map(|spec| spec.containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| KubeError::UnknownTargetPort {
                    service: name.clone(),
                    pod: pod_name.clone(),
                    port: s.clone(),
                })?,
        },
    };
    let port = u16::try_from(container_port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| KubeError::UnknownTargetPort {
            service: name.clone(),
            pod: pod_name.clone(),
            port: container_port.to_string(),
        })?;
    Ok(ForwardTarget {
        service: Some(name),
        pod: pod_name,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, labels: serde_json::Value, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(name: &str, labels: serde_json::Value, created: &str, ready: bool, owner: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "creationTimestamp": created,
                          "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner, "name": "x", "uid": "u"}]},
            "spec": {"containers": [{"name": "backstage", "image": "backstage:1",
                      "ports": [{"containerPort": 7007, "name": "backend"}]}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                       "containerStatuses": [{"name": "backstage", "image": "backstage:1", "imageID": "",
                           "ready": ready, "restartCount": 0, "state": {"running": {}}}]},
        }))
        .unwrap()
    }

    fn backstage_pods() -> Vec<Pod> {
        let web = json!({"app.kubernetes.io/name": "backstage", "app.kubernetes.io/instance": "backstage"});
        vec![
            pod(
                "backstage-a",
                web.clone(),
                "2026-01-01T00:00:00Z",
                true,
                "ReplicaSet",
            ),
            pod(
                "backstage-b",
                web,
                "2026-01-02T00:00:00Z",
                true,
                "ReplicaSet",
            ),
            pod(
                "backstage-postgresql-0",
                json!({"app.kubernetes.io/name": "postgresql"}),
                "2026-01-01T00:00:00Z",
                true,
                "StatefulSet",
            ),
        ]
    }

    fn services() -> Vec<Service> {
        vec![
            service(
                "backstage-postgresql",
                json!({"app.kubernetes.io/name": "postgresql"}),
                json!({"selector": {"app.kubernetes.io/name": "postgresql"}, "ports": [{"name": "tcp-postgresql", "port": 5432}]}),
            ),
            service(
                "portal",
                json!({}),
                json!({"selector": {"app.kubernetes.io/name": "backstage", "app.kubernetes.io/instance": "backstage"},
                       "ports": [{"name": "http-backend", "port": 80, "targetPort": "backend"}]}),
            ),
            service(
                "kubernetes",
                json!({}),
                json!({"ports": [{"name": "https", "port": 443}]}),
            ),
        ]
    }

    #[test]
    fn the_service_selecting_backstage_pods_is_chosen_and_leads_to_the_newest_ready_pod() {
        let pods = backstage_pods();
        let services = services();
        let chosen = choose_service(&services, &pods, "ns").unwrap();
        assert_eq!(name_of(chosen), "portal");
        let target = resolve_target(chosen, &pods, "ns").unwrap();
        assert_eq!(
            target,
            ForwardTarget {
                service: Some("portal".into()),
                pod: "backstage-b".into(),
                port: 7007
            }
        );
    }

    #[test]
    fn several_marked_services_prefer_the_one_named_backstage_else_are_ambiguous() {
        let pods = backstage_pods();
        let mut services = services();
        let spec =
            json!({"selector": {"app.kubernetes.io/name": "backstage"}, "ports": [{"port": 7007}]});
        services.push(service("backstage", json!({}), spec.clone()));
        assert_eq!(
            name_of(choose_service(&services, &pods, "ns").unwrap()),
            "backstage"
        );
        services.pop();
        services.push(service("backstage-canary", json!({}), spec));
        let err = choose_service(&services, &pods, "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "several services in namespace \"ns\" could be the backstage backend (backstage-canary, portal); name the one to use"
        );
    }

    #[test]
    fn no_service_selecting_backend_pods_is_an_error_naming_the_services() {
        let pods = backstage_pods();
        let services: Vec<Service> = services()
            .into_iter()
            .filter(|s| name_of(s) != "portal")
            .collect();
        let err = choose_service(&services, &pods, "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no service in namespace \"ns\" selects the backstage backend pods (services: backstage-postgresql, kubernetes)"
        );
    }

    #[test]
    fn port_rule_named_http_then_only_then_7007() {
        let s = |ports: serde_json::Value| {
            service(
                "s",
                json!({}),
                json!({"selector": {"a": "b"}, "ports": ports}),
            )
        };
        let with = s(json!([{"name": "metrics", "port": 9464}, {"name": "http", "port": 80}]));
        assert_eq!(service_port(&with).unwrap().port, 80);
        let only = s(json!([{"name": "web", "port": 8080}]));
        assert_eq!(service_port(&only).unwrap().port, 8080);
        let default = s(json!([{"name": "metrics", "port": 9464}, {"name": "web", "port": 7007}]));
        assert_eq!(service_port(&default).unwrap().port, 7007);
        let none = s(json!([{"name": "metrics", "port": 9464}, {"name": "web", "port": 8080}]));
        assert_eq!(
            service_port(&none).unwrap_err().to_string(),
            "service \"s\" has ports metrics:9464, web:8080, none named http or http-backend and none 7007; name the port to use"
        );
    }

    #[test]
    fn no_ready_pod_lists_what_is_behind_the_service() {
        let web = json!({"app.kubernetes.io/name": "backstage"});
        let pods = vec![pod(
            "backstage-c",
            web,
            "2026-01-03T00:00:00Z",
            false,
            "ReplicaSet",
        )];
        let services = services();
        let err = resolve_target(&services[1], &pods, "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no pod behind service \"portal\" in namespace \"ns\" is running and ready (it selects none)"
        );
        let labelled = json!({"app.kubernetes.io/name": "backstage", "app.kubernetes.io/instance": "backstage"});
        let pods = vec![pod(
            "backstage-c",
            labelled,
            "2026-01-03T00:00:00Z",
            false,
            "ReplicaSet",
        )];
        let err = resolve_target(&services[1], &pods, "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no pod behind service \"portal\" in namespace \"ns\" is running and ready (backstage-c 0/1 Running)"
        );
    }

    #[test]
    fn a_named_target_port_the_pod_lacks_is_an_error() {
        let pods = backstage_pods();
        let s = service(
            "web",
            json!({}),
            json!({"selector": {"app.kubernetes.io/name": "backstage"}, "ports": [{"port": 80, "targetPort": "http"}]}),
        );
        assert_eq!(
            resolve_target(&s, &pods, "ns").unwrap_err().to_string(),
            "service \"web\" targets port \"http\", which no container of pod \"backstage-b\" declares"
        );
        let numbered = service(
            "web",
            json!({}),
            json!({"selector": {"app.kubernetes.io/name": "backstage"}, "ports": [{"port": 80, "targetPort": 3000}]}),
        );
        assert_eq!(resolve_target(&numbered, &pods, "ns").unwrap().port, 3000);
        let bare = service(
            "web",
            json!({}),
            json!({"selector": {"app.kubernetes.io/name": "backstage"}, "ports": [{"port": 7007}]}),
        );
        assert_eq!(resolve_target(&bare, &pods, "ns").unwrap().port, 7007);
    }
}
