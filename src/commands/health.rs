//! `health`: pods and rollouts, findings with hints; `--watch` redraws, `--wait` waits for the rollout.
//! Reads the previous logs of crashed containers and the current logs of running backend containers
//! (cached per run) for known start-up failures. `run_several` is `health` over several environments.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;

use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tokio::time::{Duration, Instant};

use super::{Outcome, multi};
use crate::cli::HealthArgs;
use crate::kube::{Cluster, KubeError, WatchChange, flux};
use crate::model::diagnosis::{StartupFailure, diagnose, diagnose_running};
use crate::model::flux::FluxReport;
use crate::model::health::{HealthReport, LogDiagnoses, WorkloadView};
use crate::model::pod::PodView;
use crate::options::OutputFormat;
use crate::render::{self, CLEAR_SCREEN, Report, Style};
use crate::settings::Settings;

/// Previous logs are read from their end, bounded.
const LOG_TAIL_LINES: i64 = 400;
const LOG_LIMIT_BYTES: i64 = 256 * 1024;
/// Current logs of running backends are read from their start (where start-up failures are), bounded:
/// more of a backend that is not ready (it may be stuck), less of one that is ready.
const CURRENT_LOG_BYTES_NOT_READY: i64 = 256 * 1024;
const CURRENT_LOG_BYTES_READY: i64 = 128 * 1024;
/// Logs read at once.
const LOG_CONCURRENCY: usize = 8;
/// Changes that arrive this close together are drawn once.
const SETTLE: Duration = Duration::from_millis(150);
/// On a terminal, ages are redrawn this often even when nothing changes.
const REDRAW: Duration = Duration::from_secs(10);

/// The objects `health` looks at, keyed by name.
#[derive(Default)]
struct Snapshot {
    pods: BTreeMap<String, Pod>,
    deployments: BTreeMap<String, Deployment>,
    statefulsets: BTreeMap<String, StatefulSet>,
    /// Flux's view of the Deployments, read once per run (not watched).
    flux: Option<FluxReport>,
}

/// Diagnoses of logs, remembered so that `--watch` reads a log once: a previous log per restart, a
/// current log per container start and readiness (a backend that turns ready or unready is read again).
#[derive(Default)]
struct LogCache {
    previous: HashMap<(String, String, i32), Option<StartupFailure>>,
    current: HashMap<CurrentRun, Option<StartupFailure>>,
}

/// One run of a container: pod, container, restarts, start time, ready.
type CurrentRun = (String, String, i32, Option<Timestamp>, bool);

/// The resource versions the lists were read at, for the watches that follow them.
struct Versions {
    pods: String,
    deployments: String,
    statefulsets: String,
}

/// Lists pods, Deployments and StatefulSets of the namespace.
async fn list(args: &HealthArgs, cluster: &Cluster) -> Result<(Snapshot, Versions), KubeError> {
    let selector = args.selector.as_deref();
    // All three at once, but a failure is reported in a fixed order (pods first), not by which
    // request happened to fail first: the same cause gives the same error line every time.
    let (pods, deployments, statefulsets) = tokio::join!(
        cluster.list_all::<Pod>("pods", selector),
        cluster.list_all::<Deployment>("deployments", selector),
        cluster.list_all::<StatefulSet>("statefulsets", selector),
    );
    let (pods, deployments, statefulsets) = (pods?, deployments?, statefulsets?);
    let mut snapshot = Snapshot {
        flux: flux::read_flux(cluster, &deployments.0).await,
        ..Snapshot::default()
    };
    snapshot
        .pods
        .extend(pods.0.into_iter().map(|p| (p.name_any(), p)));
    snapshot
        .deployments
        .extend(deployments.0.into_iter().map(|d| (d.name_any(), d)));
    snapshot
        .statefulsets
        .extend(statefulsets.0.into_iter().map(|s| (s.name_any(), s)));
    let versions = Versions {
        pods: pods.1,
        deployments: deployments.1,
        statefulsets: statefulsets.1,
    };
    Ok((snapshot, versions))
}

/// One environment's report, once (no watch, no wait): the body `-e a,b` runs in each environment.
pub async fn gather(args: &HealthArgs, cluster: &Cluster) -> Result<HealthReport, KubeError> {
    let (snapshot, _) = list(args, cluster).await?;
    Ok(report(cluster, &snapshot, &mut LogCache::default()).await)
}

/// `health` in several environments at once: one document, one table with an ENVIRONMENT column.
/// An environment that could not be checked is in the report, and its error on stderr.
pub async fn run_several(args: &HealthArgs, settings: &[Settings], style: &Style) -> Outcome {
    let runs = multi::each_environment(settings, |_, cluster| async move {
        gather(args, &cluster).await
    })
    .await;
    for (environment, run) in &runs {
        if let Ok(report) = run {
            render::flux_notes(Some(environment), report.flux.as_ref());
        }
    }
    multi::print(
        runs,
        |r: &HealthReport| {
            if r.healthy {
                Outcome::Ok
            } else {
                Outcome::Problems
            }
        },
        style,
    )
}

pub async fn run(
    args: &HealthArgs,
    cluster: &Cluster,
    style: &Style,
) -> Result<Outcome, KubeError> {
    let selector = args.selector.as_deref();
    let (mut snapshot, versions) = list(args, cluster).await?;
    let mut logs = LogCache::default();
    render::flux_notes(None, snapshot.flux.as_ref());

    if !args.watch && !args.wait {
        let report = report(cluster, &snapshot, &mut logs).await;
        render::emit(&render::render(&report, style));
        return Ok(if report.healthy {
            Outcome::Ok
        } else {
            Outcome::Problems
        });
    }

    let owned = selector.map(str::to_string);
    let mut pod_changes = cluster.watch::<Pod>("pods", owned.clone(), versions.pods);
    let mut deployment_changes =
        cluster.watch::<Deployment>("deployments", owned.clone(), versions.deployments);
    let mut statefulset_changes =
        cluster.watch::<StatefulSet>("statefulsets", owned, versions.statefulsets);
    let deadline = Instant::now() + args.timeout;
    let terminal = style.width.is_some();
    let progress = std::io::stderr().is_terminal();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);

    loop {
        let report = report(cluster, &snapshot, &mut logs).await;
        if args.wait {
            if report.rolled_out {
                render::emit(&render::render(&report, style));
                return Ok(Outcome::Ok);
            }
            if progress {
                let what = report
                    .findings
                    .first()
                    .map(|f| format!("{}: {}", f.object, f.message))
                    .unwrap_or_default();
                render::progress(&format!(
                    "waiting for the rollout… {}",
                    truncate(&what, 100)
                ));
            }
        } else if !draw(&report, style, terminal) {
            return Ok(Outcome::Ok);
        }

        // Wait for the next change (or a redraw tick, the deadline, Ctrl-C), then take in everything
        // that arrives while the cluster settles.
        let mut changed = false;
        let tick = tokio::time::sleep(if terminal && args.watch {
            REDRAW
        } else {
            Duration::from_secs(86_400)
        });
        tokio::select! {
            change = pod_changes.recv() => changed |= apply(&mut snapshot.pods, change)?,
            change = deployment_changes.recv() => changed |= apply(&mut snapshot.deployments, change)?,
            change = statefulset_changes.recv() => changed |= apply(&mut snapshot.statefulsets, change)?,
            () = tick => changed = true,
            () = tokio::time::sleep_until(deadline), if args.wait => {
                if progress { render::clear_progress(); }
                render::emit(&render::render(&report, style));
                render::error(&format!("timed out after {} waiting for the rollout: {}", humantime(args.timeout), still_wrong(&report)));
                return Ok(Outcome::Problems);
            }
            _ = &mut interrupt => {
                if progress && args.wait { render::clear_progress(); }
                return Ok(if args.wait { Outcome::Problems } else { Outcome::Ok });
            }
        }
        let settle = tokio::time::sleep(SETTLE);
        tokio::pin!(settle);
        loop {
            tokio::select! {
                change = pod_changes.recv() => changed |= apply(&mut snapshot.pods, change)?,
                change = deployment_changes.recv() => changed |= apply(&mut snapshot.deployments, change)?,
                change = statefulset_changes.recv() => changed |= apply(&mut snapshot.statefulsets, change)?,
                () = &mut settle => break,
            }
        }
        let _ = changed;
    }
}

/// Draws one frame of `--watch`. Returns false when stdout has gone away.
fn draw(report: &HealthReport, style: &Style, terminal: bool) -> bool {
    match style.format {
        OutputFormat::Table | OutputFormat::Wide if terminal => {
            let header = format!(
                "Every change in namespace {} (context {}); Ctrl-C to stop\n\n",
                report.namespace, report.context
            );
            render::emit(&format!("{CLEAR_SCREEN}{header}{}", report.text(style)))
        }
        OutputFormat::Table | OutputFormat::Wide => {
            render::emit(&format!("{}\n", report.text(style)))
        }
        OutputFormat::Json => render::emit(&format!(
            "{}\n",
            serde_json::to_string(report).expect("reports serialize")
        )),
        OutputFormat::Yaml => render::emit(&format!("---\n{}", render::yaml(report))),
    }
}

fn apply<K: kube::Resource>(
    objects: &mut BTreeMap<String, K>,
    change: Option<Result<WatchChange<K>, KubeError>>,
) -> Result<bool, KubeError> {
    match change {
        None => Ok(false),
        Some(Err(e)) => Err(e),
        Some(Ok(WatchChange::Applied(obj))) => {
            objects.insert(obj.meta().name.clone().unwrap_or_default(), obj);
            Ok(true)
        }
        Some(Ok(WatchChange::Deleted(obj))) => {
            objects.remove(obj.meta().name.as_deref().unwrap_or_default());
            Ok(true)
        }
        Some(Ok(WatchChange::Relisted(all))) => {
            objects.clear();
            objects.extend(
                all.into_iter()
                    .map(|o| (o.meta().name.clone().unwrap_or_default(), o)),
            );
            Ok(true)
        }
    }
}

/// Builds the report, reading the previous logs of crashed containers it has not read yet.
async fn report(cluster: &Cluster, snapshot: &Snapshot, logs: &mut LogCache) -> HealthReport {
    let now = Timestamp::now();
    let pods: Vec<PodView> = snapshot.pods.values().map(PodView::from_pod).collect();
    let workloads: Vec<WorkloadView> = snapshot
        .deployments
        .values()
        .map(WorkloadView::from_deployment)
        .chain(
            snapshot
                .statefulsets
                .values()
                .map(WorkloadView::from_statefulset),
        )
        .collect();

    let wanted: Vec<(String, String, i32)> = pods
        .iter()
        .filter(|p| !p.terminating)
        .flat_map(|p| {
            p.containers
                .iter()
                .filter(|c| c.worth_diagnosing(now))
                .map(|c| (p.name.clone(), c.name.clone(), c.restarts))
        })
        .filter(|key| !logs.previous.contains_key(key))
        .collect();
    let current_wanted: Vec<CurrentRun> = pods
        .iter()
        .flat_map(|p| {
            p.containers
                .iter()
                .filter(|c| c.current_log_worth_reading(p))
                .map(|c| {
                    (
                        p.name.clone(),
                        c.name.clone(),
                        c.restarts,
                        c.started_at,
                        c.ready,
                    )
                })
        })
        .filter(|key| !logs.current.contains_key(key))
        .collect();
    type Read = (
        Option<(String, String, i32)>,
        Option<CurrentRun>,
        Option<StartupFailure>,
    );
    let mut reads: Vec<futures::future::BoxFuture<'_, Read>> = Vec::new();
    reads.extend(wanted.into_iter().map(|(pod, container, restarts)| {
        async move {
            let diagnosis = match cluster
                .previous_log(&pod, &container, LOG_TAIL_LINES, LOG_LIMIT_BYTES)
                .await
            {
                Ok(log) => diagnose(&log),
                Err(e) => {
                    tracing::info!(%pod, %container, error = %e, "previous log not available");
                    None
                }
            };
            (Some((pod, container, restarts)), None, diagnosis)
        }
        .boxed()
    }));
    reads.extend(current_wanted.into_iter().map(|run| {
        async move {
            let limit = if run.4 {
                CURRENT_LOG_BYTES_READY
            } else {
                CURRENT_LOG_BYTES_NOT_READY
            };
            let diagnosis = match cluster.current_log_head(&run.0, &run.1, limit).await {
                Ok(log) => diagnose_running(&log),
                Err(e) => {
                    tracing::info!(pod = %run.0, container = %run.1, error = %e, "current log not available");
                    None
                }
            };
            (None, Some(run), diagnosis)
        }
        .boxed()
    }));
    let read: Vec<Read> = futures::stream::iter(reads)
        .buffer_unordered(LOG_CONCURRENCY)
        .collect()
        .await;
    for (previous_key, current_key, diagnosis) in read {
        if let Some(key) = previous_key {
            logs.previous.insert(key, diagnosis);
        } else if let Some(key) = current_key {
            logs.current.insert(key, diagnosis);
        }
    }

    let mut diagnoses = LogDiagnoses::default();
    for p in &pods {
        for c in &p.containers {
            let key = (p.name.clone(), c.name.clone());
            if let Some(d) = logs
                .previous
                .get(&(p.name.clone(), c.name.clone(), c.restarts))
            {
                diagnoses.previous.insert(key.clone(), d.clone());
            }
            let run = (
                p.name.clone(),
                c.name.clone(),
                c.restarts,
                c.started_at,
                c.ready,
            );
            if c.current_log_worth_reading(p)
                && let Some(d) = logs.current.get(&run)
            {
                diagnoses.current.insert(key, d.clone());
            }
        }
    }
    let mut report = HealthReport::build(
        cluster.context.clone(),
        cluster.namespace.clone(),
        pods,
        workloads,
        &diagnoses,
        now,
    );
    report.flux = snapshot.flux.clone();
    report
}

/// What the time-out line says is left: a count, as the findings themselves are printed above it.
fn still_wrong(report: &HealthReport) -> String {
    match report.findings.len() {
        0 => "pods are not ready yet (see above)".into(),
        1 => "1 problem remains (see above)".into(),
        n => format!("{n} problems remain (see above)"),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

fn humantime(d: Duration) -> String {
    crate::model::time::human_duration(d.as_secs() as i64)
}

/// How [`wait_for_rollout`] ended, with the last report.
pub enum WaitEnd {
    /// Every rollout complete and every pod ready.
    RolledOut(HealthReport),
    /// The caller's check stopped the wait, saying why.
    Stopped(HealthReport, String),
    TimedOut(HealthReport),
    /// Ctrl-C.
    Interrupted(HealthReport),
}

/// Waits as `health --wait` does (watching pods, Deployments and StatefulSets, reading crash logs),
/// with progress on stderr when it is a terminal, and without printing the report: the guided
/// commands print their own. `stop` sees every report and may end the wait early (a pod of the new
/// image that cannot start, an image put back by someone else).
pub async fn wait_for_rollout(
    cluster: &Cluster,
    timeout: Duration,
    mut stop: impl FnMut(&HealthReport) -> Option<String>,
) -> Result<WaitEnd, KubeError> {
    let args = HealthArgs {
        selector: None,
        watch: false,
        wait: true,
        timeout,
    };
    let (mut snapshot, versions) = list(&args, cluster).await?;
    let mut logs = LogCache::default();
    let mut pod_changes = cluster.watch::<Pod>("pods", None, versions.pods);
    let mut deployment_changes =
        cluster.watch::<Deployment>("deployments", None, versions.deployments);
    let mut statefulset_changes =
        cluster.watch::<StatefulSet>("statefulsets", None, versions.statefulsets);
    let deadline = Instant::now() + timeout;
    let progress = std::io::stderr().is_terminal();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    // Crash logs are read on every change; a poll also catches a container that restarts quietly.
    let poll = Duration::from_secs(2);
    loop {
        let report = report(cluster, &snapshot, &mut logs).await;
        if let Some(why) = stop(&report) {
            if progress {
                render::clear_progress();
            }
            return Ok(WaitEnd::Stopped(report, why));
        }
        if report.rolled_out {
            if progress {
                render::clear_progress();
            }
            return Ok(WaitEnd::RolledOut(report));
        }
        if progress {
            let what = report
                .findings
                .first()
                .map(|f| format!("{}: {}", f.object, f.message))
                .unwrap_or_default();
            render::progress(&format!(
                "waiting for the rollout… {}",
                truncate(&what, 100)
            ));
        }
        tokio::select! {
            change = pod_changes.recv() => { apply(&mut snapshot.pods, change)?; }
            change = deployment_changes.recv() => { apply(&mut snapshot.deployments, change)?; }
            change = statefulset_changes.recv() => { apply(&mut snapshot.statefulsets, change)?; }
            () = tokio::time::sleep(poll) => {}
            () = tokio::time::sleep_until(deadline) => {
                if progress { render::clear_progress(); }
                return Ok(WaitEnd::TimedOut(report));
            }
            _ = &mut interrupt => {
                if progress { render::clear_progress(); }
                return Ok(WaitEnd::Interrupted(report));
            }
        }
        let settle = tokio::time::sleep(SETTLE);
        tokio::pin!(settle);
        loop {
            tokio::select! {
                change = pod_changes.recv() => { apply(&mut snapshot.pods, change)?; }
                change = deployment_changes.recv() => { apply(&mut snapshot.deployments, change)?; }
                change = statefulset_changes.recv() => { apply(&mut snapshot.statefulsets, change)?; }
                () = &mut settle => break,
            }
        }
    }
}
