//! `report`: the redacted support bundle. Gathers, at once, what `health`, `events`, `version` and
//! `db status` print as JSON, the namespace's Deployments, ReplicaSets, Services and Ingresses as
//! YAML, the tails of the backend containers' current and previous logs and the resolved config;
//! redacts every part (`model::redact`); and writes one tar.gz through the `archive` adapter. A part
//! that cannot be gathered is listed as missing, with the reason, and never stops the others.
//! Secret objects are never asked for.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;
use serde_json::{Value, json};

use super::Outcome;
use crate::archive::{ArchiveError, PendingArchive};
use crate::cli::HealthArgs;
use crate::commands::db::Databases;
use crate::kube::{Cluster, KubeError, LogBounds};
use crate::migrations::source::{self, SourceSpec};
use crate::model::pod::PodView;
use crate::model::redact::{redact_config, redact_log, redact_object, redact_text};
use crate::model::report::{
    LOG_LIMIT_BYTES, LOG_TAIL_LINES, MissingCause, Part, ReportSummary, archive_folder, log_file,
};
use crate::process_env::RealEnv;
use crate::render::{self, Style};
use crate::settings::commands::{EventsSettings, ReportSettings};
use crate::settings::{DbSettings, Division, KubeconfigSource, Settings};

/// Why `report` wrote no bundle (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// One gathered part: its entry in the summary, and its contents when collected.
struct Gathered {
    part: Part,
    bytes: Option<Vec<u8>>,
}

impl Gathered {
    fn collected(file: &str, text: String) -> Gathered {
        Gathered {
            part: Part::collected(file),
            bytes: Some(text.into_bytes()),
        }
    }

    /// A part that could not be gathered; its reason is redacted too (an error may quote a server's
    /// message, and a server may quote what it was sent).
    fn missing(file: &str, cause: MissingCause, reason: String) -> Gathered {
        Gathered {
            part: Part::missing(file, cause, redact_text(&reason)),
            bytes: None,
        }
    }

    fn from_kube(file: &str, error: &KubeError) -> Gathered {
        Gathered::missing(file, cause_of(error), error.to_string())
    }

    /// Prints the part's line of progress on stderr and hands it on.
    fn announced(self) -> Gathered {
        render::report_progress(&self.part);
        self
    }
}

/// Which kind of failure a Kubernetes error is, for the summary.
fn cause_of(error: &KubeError) -> MissingCause {
    match error {
        KubeError::Forbidden { .. } => MissingCause::Forbidden,
        KubeError::Unauthorized { .. } => MissingCause::Unauthorized,
        KubeError::Unreachable { .. } => MissingCause::Unreachable,
        KubeError::Timeout { .. } => MissingCause::TimedOut,
        KubeError::Api { code: 404, .. } => MissingCause::NotFound,
        _ => MissingCause::Failed,
    }
}

pub async fn run(
    settings: &ReportSettings,
    db: Result<DbSettings, String>,
    global: &Settings,
    style: &Style,
) -> Result<Outcome, ReportError> {
    let now = Timestamp::now();
    let cluster = Cluster::connect(&global.cluster).await?;
    let environment = global.environment.as_ref().map(|(name, _)| name.clone());
    let label = environment
        .clone()
        .unwrap_or_else(|| cluster.namespace.clone());
    // Created first: a folder that cannot be written is found before anything is gathered.
    let pending = PendingArchive::create(&settings.dir, &archive_folder(&label, now))?;
    let folder = pending.stem().to_string();
    let since_seconds = settings.since.map(|d| d.as_secs().max(1));

    let config = config_part(global, &cluster, db.as_ref().ok()).announced();
    let (health, events, version, db_status, workloads, logs) = tokio::join!(
        health_part(&cluster),
        events_part(&cluster, settings.since),
        version_part(&cluster),
        db_part(db, &cluster),
        workload_parts(&cluster),
        log_parts(&cluster, since_seconds),
    );
    let mut gathered = vec![health, events, version, db_status, config];
    gathered.extend(workloads);
    gathered.extend(logs);

    let mut entries = Vec::new();
    let mut parts = Vec::new();
    for g in gathered {
        if let Some(bytes) = g.bytes {
            entries.push((g.part.file.clone(), bytes));
        }
        parts.push(g.part);
    }
    let summary = ReportSummary::new(
        pending.path().display().to_string(),
        folder.clone(),
        environment,
        cluster.context.clone(),
        cluster.namespace.clone(),
        now,
        since_seconds,
        parts,
    );
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.push(("summary.json".into(), render::json(&summary).into_bytes()));
    entries.push((
        "summary.txt".into(),
        render::report_summary_text(&summary).into_bytes(),
    ));
    let mtime = u64::try_from(now.as_second()).unwrap_or_default();
    pending.finish(&folder, &entries, mtime)?;
    render::emit(&render::render(&summary, style));
    Ok(Outcome::Ok)
}

/// A JSON document with every string redacted as text (the reports carry messages, log excerpts and
/// event texts from the cluster).
fn redacted_json<T: Serialize>(value: &T) -> String {
    let mut value = serde_json::to_value(value).expect("reports serialize");
    redact_strings(&mut value);
    render::json(&value)
}

fn redact_strings(value: &mut Value) {
    match value {
        Value::String(text) => *text = redact_text(text),
        Value::Array(items) => items.iter_mut().for_each(redact_strings),
        Value::Object(map) => map.values_mut().for_each(redact_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

async fn health_part(cluster: &Cluster) -> Gathered {
    let args = HealthArgs {
        selector: None,
        watch: false,
        wait: false,
        timeout: Duration::ZERO,
    };
    match super::health::gather(&args, cluster).await {
        Ok(report) => Gathered::collected("health.json", redacted_json(&report)),
        Err(e) => Gathered::from_kube("health.json", &e),
    }
    .announced()
}

async fn events_part(cluster: &Cluster, since: Option<Duration>) -> Gathered {
    let args = EventsSettings {
        types: Vec::new(),
        for_object: None,
        since,
        watch: false,
    };
    match super::events::gather(&args, cluster).await {
        Ok(report) => Gathered::collected("events.json", redacted_json(&report)),
        Err(e) => Gathered::from_kube("events.json", &e),
    }
    .announced()
}

async fn version_part(cluster: &Cluster) -> Gathered {
    match super::version::gather(Ok(cluster), None, None).await {
        Ok(report) => Gathered::collected("version.json", redacted_json(&report)),
        Err(super::version::VersionError::Kube(e)) => Gathered::from_kube("version.json", &e),
        Err(e) => Gathered::missing("version.json", MissingCause::Failed, e.to_string()),
    }
    .announced()
}

/// `db status -o json` for every plugin, compared with the running pod's files when they can be
/// read (as `db status` does by default). The password comes as for `db status`.
async fn db_part(db: Result<DbSettings, String>, cluster: &Cluster) -> Gathered {
    const FILE: &str = "db-status.json";
    let settings = match db {
        Ok(settings) => settings,
        Err(message) => {
            return Gathered::missing(FILE, MissingCause::NotConfigured, message).announced();
        }
    };
    let databases = match Databases::open(settings, &RealEnv).await {
        Ok(databases) => databases,
        Err(e) => {
            return Gathered::missing(FILE, MissingCause::Failed, e.to_string()).announced();
        }
    };
    let (source, note) =
        match source::load(&SourceSpec::Pod(None), Ok(cluster), &[], None, &|_| {}).await {
            Ok(source) => (Some(source), None),
            Err(e) => (
                None,
                Some(format!(
                    "not compared with a pod's migration files: {}",
                    redact_text(&e.to_string())
                )),
            ),
        };
    let report = super::db::status::status_report(
        &databases,
        &[],
        source.as_ref().map(|s| s.name.clone()),
        source.as_ref().map_or(&[][..], |s| &s.tables),
    )
    .await;
    databases.close().await;
    match report {
        Ok(report) => Gathered {
            part: Part::collected(FILE).with_note(note),
            bytes: Some(redacted_json(&report).into_bytes()),
        },
        Err(e) => Gathered::missing(FILE, MissingCause::Failed, e.to_string()),
    }
    .announced()
}

/// One kind of workload as `kubectl get KIND -o yaml` lists it, every object redacted.
async fn workload_part<K>(cluster: &Cluster, resource: &str, file: &str) -> Gathered
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match cluster.list_all::<K>(resource, None).await {
        Ok((items, _)) => {
            let items: Vec<Value> = items
                .iter()
                .map(|item| {
                    let mut value = serde_json::to_value(item).expect("objects serialize");
                    redact_object(&mut value);
                    value
                })
                .collect();
            let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
            Gathered::collected(file, render::yaml(&list))
        }
        Err(e) => Gathered::from_kube(file, &e),
    }
    .announced()
}

async fn workload_parts(cluster: &Cluster) -> Vec<Gathered> {
    let (deployments, replicasets, services, ingresses) = tokio::join!(
        workload_part::<Deployment>(cluster, "deployments", "workloads/deployments.yaml"),
        workload_part::<ReplicaSet>(cluster, "replicasets", "workloads/replicasets.yaml"),
        workload_part::<Service>(cluster, "services", "workloads/services.yaml"),
        workload_part::<Ingress>(cluster, "ingresses", "workloads/ingresses.yaml"),
    );
    vec![deployments, replicasets, services, ingresses]
}

/// Logs read at once.
const LOG_CONCURRENCY: usize = 8;

/// The current log of every backend container, and the previous one of those that restarted; each
/// the last [`LOG_TAIL_LINES`] lines, at most [`LOG_LIMIT_BYTES`], within `--since`, redacted.
async fn log_parts(cluster: &Cluster, since_seconds: Option<u64>) -> Vec<Gathered> {
    use futures::StreamExt;
    let pods = match cluster.list_all::<Pod>("pods", None).await {
        Ok((pods, _)) => pods,
        Err(e) => return vec![Gathered::from_kube("logs/", &e).announced()],
    };
    let bounds = LogBounds {
        tail_lines: LOG_TAIL_LINES,
        limit_bytes: LOG_LIMIT_BYTES,
        since_seconds: since_seconds.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
    };
    let mut wanted = Vec::new();
    let mut never_ran = Vec::new();
    for pod in pods.iter().map(PodView::from_pod) {
        for container in pod.containers.iter().filter(|c| c.backend) {
            if container.state == "waiting" && !container.has_previous_run() {
                // Nothing was ever logged (the image cannot be pulled, say): no request.
                never_ran.push(
                    Gathered::missing(
                        &log_file(&pod.name, &container.name, false),
                        MissingCause::NotFound,
                        format!(
                            "container {} of pod {} has not started yet ({})",
                            container.name,
                            pod.name,
                            container.reason.as_deref().unwrap_or("waiting")
                        ),
                    )
                    .announced(),
                );
                continue;
            }
            wanted.push((pod.name.clone(), container.name.clone(), false));
            if container.has_previous_run() {
                wanted.push((pod.name.clone(), container.name.clone(), true));
            }
        }
    }
    futures::stream::iter(wanted)
        .map(|(pod, container, previous)| async move {
            let file = log_file(&pod, &container, previous);
            match cluster.log_tail(&pod, &container, previous, bounds).await {
                Ok(log) => Gathered::collected(&file, redact_log(&log)),
                Err(e) => Gathered::from_kube(&file, &e),
            }
            .announced()
        })
        .buffer_unordered(LOG_CONCURRENCY)
        .chain(futures::stream::iter(never_ran))
        .collect()
        .await
}

/// The resolved configuration: where the cluster and the databases are, and the environment's block
/// of the config file, with anything secret-looking redacted (Key Vault references and variable
/// names are names, and stay).
fn config_part(global: &Settings, cluster: &Cluster, db: Option<&DbSettings>) -> Gathered {
    let kubeconfig: Vec<String> = match &global.cluster.kubeconfig {
        KubeconfigSource::Explicit(path) | KubeconfigSource::Default(path) => {
            vec![path.display().to_string()]
        }
        KubeconfigSource::EnvList(paths) => paths.iter().map(|p| p.display().to_string()).collect(),
    };
    let database = db.map(|db| {
        let division = match &db.division {
            Division::Database { prefix } => json!({"divisionMode": "database", "databasePrefix": prefix}),
            Division::Schema { database } => json!({"divisionMode": "schema", "database": database}),
        };
        let mut value = json!({
            "host": db.host,
            "port": db.port,
            "user": db.user,
            "sslmode": db.sslmode,
            "sslrootcert": db.sslrootcert.as_ref().map(|p| p.display().to_string()),
            "password": {
                "env": db.password.env_var,
                "keyVault": db.password.key_vault.as_ref().map(|k| json!({"vaultUrl": k.vault_url, "secret": k.secret})),
            },
        });
        if let (Some(target), Some(extra)) = (value.as_object_mut(), division.as_object()) {
            target.extend(extra.clone());
        }
        value
    });
    let mut document = json!({
        "kind": "ReportConfig",
        "configFile": global.config_path.as_ref().map(|p| p.display().to_string()),
        "environment": global.environment.as_ref().map(|(name, _)| name),
        "context": cluster.context,
        "namespace": cluster.namespace,
        "server": cluster.server,
        "kubeconfig": kubeconfig,
        "requestTimeoutSeconds": global.cluster.request_timeout.map(|d| d.as_secs()),
        "database": database,
        "environmentConfig": global.environment.as_ref().map(|(_, e)| e),
    });
    redact_config(&mut document);
    Gathered::collected("config.yaml", render::yaml(&document))
}
