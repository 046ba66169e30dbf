//! `upgrade --image REF` and `rollback --to-image REF`: the runbook as one guided command. Gathers
//! the state (the Backstage Deployment, the target image's files, the plan of every plugin database,
//! the rollout), lets the pure model ([`crate::model::guided`]) work out what is still to be done,
//! prints the steps, asks once, then runs them in order: Flux, (rollback) the `db rollback` machinery
//! in the current newer pod per plugin and table, the image patch with a change-cause annotation, the
//! wait as `health --wait` does, and the checks. Every step's outcome lands in the final report; a
//! failure stops the run there with the diagnosis and the way back.
//!
//! Everything before the question only reads, so a failure there is an error (exit 2, nothing
//! changed). After it, failures become failed steps: exit 1 when nothing was changed in the
//! databases, 3 when the run stopped part-way after changing them.

use std::time::Duration;

use crate::commands::db::{Databases, DbCommandError};
use crate::commands::{Outcome, confirm, health, verify};
use crate::db::TableRef;
use crate::knex::model::LockState;
use crate::kube::{BackstageDeployment, Cluster, KubeError};
use crate::migrations::runner::{self, KnexConnection, KnexUndo};
use crate::migrations::source::{self, LoadedSource, SourceSpec};
use crate::model::flux::{
    FluxKind, FluxObjectRef, SUSPENDED_ANNOTATION, parse_suspended_annotation,
};
use crate::model::guided::{
    FluxManager, GuidedReport, GuidedResult, GuidedState, Refusal, StepKind, StepState, plan_steps,
    way_back,
};
use crate::model::health::{HealthReport, Severity};
use crate::process_env::RealEnv;
use crate::render::{self, Style};
use crate::settings::commands::GuidedSettings;
use crate::settings::{DbSettings, Settings};

/// Why the command could not start (exit 2; nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum GuidedError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Db(#[from] DbCommandError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    NotConfirmed(#[from] confirm::NotConfirmed),
}

pub async fn run(
    guided: &GuidedSettings,
    db_settings: DbSettings,
    settings: &Settings,
    style: &Style,
) -> Result<Outcome, GuidedError> {
    let cluster = Cluster::connect(&settings.cluster).await?;
    let databases = Databases::open(db_settings, &RealEnv).await?;
    let outcome = run_with(guided, &cluster, &databases, settings, style).await;
    databases.close().await;
    outcome
}

async fn run_with(
    guided: &GuidedSettings,
    cluster: &Cluster,
    databases: &Databases,
    settings: &Settings,
    style: &Style,
) -> Result<Outcome, GuidedError> {
    let direction = guided.direction;
    let deployment = cluster.backstage_deployment().await?;

    // 1. Preflight: the target's files and the plan of every plugin database.
    let spec = guided
        .source
        .clone()
        .unwrap_or_else(|| SourceSpec::Image(guided.image.clone()));
    let target = source::load(
        &spec,
        Ok(cluster),
        &[],
        None,
        &crate::render::preflight_progress,
    )
    .await
    .map_err(DbCommandError::from)?;
    let planned = crate::commands::db::plan::gather(databases, &[], &target, Some(cluster)).await?;
    let (plans, mut warnings) = (planned.databases, planned.warnings);
    if direction == crate::model::guided::Direction::Rollback {
        // Reversibility matters for what will run; a rollback runs none of the target's migrations
        // that the databases lack only if there are any, which the plan shows.
        warnings.retain(|w| !w.starts_with("could not check"));
    }

    // 2. Who manages the Deployment (Flux), and what would have to be suspended.
    let (all_deployments, _) = cluster
        .list_all::<k8s_openapi::api::apps::v1::Deployment>("deployments", None)
        .await?;
    let flux_report = crate::kube::flux::read_flux(cluster, &all_deployments).await;
    let flux: Option<FluxManager> = flux_report
        .as_ref()
        .and_then(|r| r.manager_of(&deployment.name))
        .map(|m| FluxManager {
            kind: m.kind.as_str().to_string(),
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            suspended: m.suspended == Some(true),
        });
    let to_suspend = flux_report
        .as_ref()
        .map(|r| r.to_suspend(&deployment.name))
        .unwrap_or_default();
    // What an earlier run suspended (recorded on the Deployment), for the resume.
    let recorded: Vec<FluxObjectRef> = deployment
        .annotations
        .get(SUSPENDED_ANNOTATION)
        .and_then(|v| parse_suspended_annotation(v).ok())
        .unwrap_or_default();
    let now = health::gather(&default_health_args(), cluster).await?;
    let rolled_out = now.rolled_out;
    // A pod of the target image that cannot start: it crashed, or — what a real Backstage backend
    // whose plugin failed to start does — it runs without ever becoming ready, its log diagnosed.
    let diagnosed = |pod: &str| {
        now.findings.iter().any(|f| {
            f.severity == Severity::Error
                && f.diagnosis.is_some()
                && f.object == format!("pod/{pod}")
        })
    };
    let target_pods_crashed = now.pods.iter().any(|p| {
        !p.terminating
            && p.containers.iter().any(|c| {
                c.image == guided.image
                    && (c.restarts > 0
                        || c.reason.as_deref() == Some("CrashLoopBackOff")
                        || diagnosed(&p.name))
            })
    });

    // The image to go back to: the Deployment's, or — when it was set to the target already (a
    // downgrade by hand) — that of the ready pods still running another image.
    let previous_image = if deployment.image != guided.image {
        deployment.image.clone()
    } else {
        now.pods
            .iter()
            .filter(|p| p.is_ready() && !p.terminating)
            .flat_map(|p| &p.containers)
            .find(|c| c.name == deployment.container && c.image != guided.image)
            .map_or_else(|| deployment.image.clone(), |c| c.image.clone())
    };
    let state = GuidedState {
        direction,
        current_image: &deployment.image,
        target_image: &guided.image,
        rolled_out,
        target_pods_crashed,
        plans: &plans,
        flux: flux.as_ref(),
        suspend_flux: guided.suspend_flux,
        resume_flux: guided.resume_flux,
    };
    let steps = plan_steps(&state)?;
    let mut report = GuidedReport {
        kind: direction.kind(),
        context: cluster.context.clone(),
        namespace: cluster.namespace.clone(),
        deployment: deployment.name.clone(),
        container: deployment.container.clone(),
        from_image: deployment.image.clone(),
        to_image: guided.image.clone(),
        source: target.name.clone(),
        dry_run: guided.dry_run,
        result: GuidedResult::Planned,
        plan: plans.clone(),
        warnings,
        steps,
        findings: Vec::new(),
        way_back: Vec::new(),
        next: Vec::new(),
    };
    let text = style.is_text();
    if guided.dry_run {
        render::emit(&render::render(&report, style));
        return Ok(Outcome::Ok);
    }
    if text {
        // Every step, printed before anything runs.
        render::emit(&render::guided::steps_table(&report.steps, style));
    }
    if !guided.yes {
        confirm::confirm(render::guided::question(&report)).await?;
    }

    let total = report.steps.len();
    let mut runner: Option<LoadedSource> = None;
    let mut failed = false;
    for index in 0..total {
        if report.steps[index].state != StepState::Planned {
            continue;
        }
        if failed {
            report.steps[index].state = StepState::NotRun;
            continue;
        }
        render::note(&render::guided::step_starts(
            index,
            total,
            &report.steps[index],
        ));
        let kind = report.steps[index].kind.clone();
        let result = match kind {
            StepKind::RollbackMigrations {
                plugin,
                table,
                migrations,
            } => {
                undo_migrations(
                    cluster,
                    databases,
                    &mut runner,
                    &plugin,
                    &table,
                    &migrations,
                )
                .await
            }
            StepKind::SetImage { restart: true } => cluster
                .restart_rollout(&deployment.name, &jiff::Timestamp::now().to_string())
                .await
                .map(|()| StepEnd::done("restarted: new pods replace the crashed ones".into()))
                .map_err(|e| e.to_string()),
            StepKind::SetImage { restart: false } => cluster
                .set_image(
                    &deployment.name,
                    &deployment.container,
                    &guided.image,
                    &format!("kubectl backstage {} {}", direction.command(), guided.image),
                )
                .await
                .map(|()| StepEnd::done(format!("{} -> {}", deployment.image, guided.image)))
                .map_err(|e| e.to_string()),
            StepKind::WaitRollout => {
                wait(
                    cluster,
                    &deployment,
                    &guided.image,
                    guided.timeout,
                    &mut report,
                )
                .await
            }
            StepKind::Verify => check(cluster, settings, &guided.image).await,
            StepKind::SuspendFlux { .. } => {
                suspend_flux(cluster, &deployment.name, &to_suspend).await
            }
            StepKind::ResumeFlux { .. } => {
                resume_flux(
                    cluster,
                    &deployment.name,
                    &suspended_objects(&recorded, &to_suspend),
                )
                .await
            }
            StepKind::Preflight => Ok(StepEnd::done(String::new())),
        };
        let step = &mut report.steps[index];
        match result {
            Ok(end) => {
                step.state = end.state;
                step.detail = Some(end.detail);
            }
            Err(why) => {
                step.state = StepState::Failed;
                step.detail = Some(why);
                failed = true;
            }
        }
    }
    // Suspended Flux objects left suspended: say how to resume them.
    let suspended_now = report.steps.iter().any(|s| {
        matches!(s.kind, StepKind::SuspendFlux { .. })
            && matches!(s.state, StepState::Done | StepState::AlreadyDone)
    });
    let resumed = report
        .steps
        .iter()
        .any(|s| matches!(s.kind, StepKind::ResumeFlux { .. }) && s.state == StepState::Done);
    if suspended_now && !resumed {
        report.next = suspended_objects(&recorded, &to_suspend)
            .iter()
            .map(|o| {
                format!(
                    "flux resume {} {} -n {}",
                    flux_cli_kind(o.kind),
                    o.name,
                    o.namespace
                )
            })
            .collect();
    }
    // A verify that was skipped by an earlier failure is not a failure of its own.
    if report.steps.iter().any(|s| s.state == StepState::NotRun) {
        failed = true;
    }
    report.result = GuidedReport::result_of(&report.steps, false);
    if failed && report.result != GuidedResult::Done {
        report.way_back = way_back(
            direction,
            &deployment.name,
            &deployment.container,
            &previous_image,
            &guided.image,
        );
        if report.findings.is_empty() {
            // The diagnosis `health` gives now (crash logs read).
            if let Ok(now) = health::gather(&default_health_args(), cluster).await {
                report.findings = problems(&now);
            }
        }
    }
    render::emit(&render::render(&report, style));
    if report.result != GuidedResult::Done {
        render::error(&match report.result {
            GuidedResult::Stopped => format!(
                "{} stopped part-way; the steps above say what was done, and the way back",
                direction.kind().to_lowercase()
            ),
            _ => format!(
                "{} failed; nothing was changed in the databases",
                direction.kind().to_lowercase()
            ),
        });
    }
    Ok(report.outcome())
}

/// How a step that ran ended.
struct StepEnd {
    state: StepState,
    detail: String,
}

impl StepEnd {
    fn done(detail: String) -> StepEnd {
        StepEnd {
            state: StepState::Done,
            detail,
        }
    }
}

fn default_health_args() -> crate::cli::HealthArgs {
    crate::cli::HealthArgs {
        selector: None,
        watch: false,
        wait: false,
        timeout: Duration::from_secs(600),
    }
}

/// The findings worth showing after a failure: errors and warnings.
fn problems(report: &HealthReport) -> Vec<crate::model::health::Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .cloned()
        .collect()
}

/// Undoes `migrations` (newest first) of one table with Knex in the current, newer pod, then reads
/// the table back: the database says what was undone.
async fn undo_migrations(
    cluster: &Cluster,
    databases: &Databases,
    runner_source: &mut Option<LoadedSource>,
    plugin: &str,
    table: &str,
    migrations: &[String],
) -> Result<StepEnd, String> {
    let target = databases
        .selected(&[plugin.to_string()])
        .await
        .map_err(|e| e.to_string())?
        .remove(0);
    let connection = databases
        .connect(&target.database, true)
        .await
        .map_err(|e| e.to_string())?;
    let tables = connection
        .migration_tables(target.schema.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let Some(table_ref): Option<TableRef> = tables.into_iter().find(|t| t.table == table) else {
        return Err(format!("plugin {plugin} has no migration table {table}"));
    };
    let before = connection
        .table_contents(&table_ref)
        .await
        .map_err(|e| e.to_string())?;
    if LockState::from_rows(before.lock.as_deref()).blocks_migrations() {
        return Err(DbCommandError::LockHeld {
            plugin: plugin.to_string(),
            table: table.to_string(),
        }
        .to_string());
    }
    // What is still there: a second run undoes only what the first left.
    let left: Vec<String> = migrations
        .iter()
        .filter(|m| before.rows.iter().any(|r| &r.name == *m))
        .cloned()
        .collect();
    if left.is_empty() {
        return Ok(StepEnd {
            state: StepState::AlreadyDone,
            detail: "rolled back already".into(),
        });
    }
    if runner_source.is_none() {
        // The newest running, ready pod: the newer code, whose files applied these migrations.
        let loaded = source::load(
            &SourceSpec::Pod(None),
            Ok(cluster),
            &[],
            None,
            &crate::render::preflight_progress,
        )
        .await
        .map_err(|e| format!("no pod of the newer version to run Knex in: {e}"))?;
        *runner_source = Some(loaded);
    }
    let runner_source = runner_source.as_ref().expect("loaded above");
    let files = source::files_for(&runner_source.tables, plugin, table).ok_or_else(|| {
        format!(
            "the runner's source {} has no migration files for plugin {plugin} table {table}",
            runner_source.name
        )
    })?;
    if let Some(absent) = left.iter().find(|m| !files.files.contains(m)) {
        return Err(format!(
            "the runner's source {} lacks {absent}, so Knex cannot undo it",
            runner_source.name
        ));
    }
    let settings = &databases.settings;
    let ca_pem = match &settings.sslrootcert {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --sslrootcert {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let knex_connection = KnexConnection {
        host: &settings.host,
        port: settings.port,
        user: &settings.user,
        password: databases.password(),
        password_env: settings.password.env_var.as_deref(),
        database: &target.database,
        sslmode: settings.sslmode,
        ca_pem,
        search_path: target.schema.as_deref(),
    };
    let run = runner::run(
        &runner_source.place,
        Some(cluster),
        &knex_connection,
        &files.directory,
        table,
        &KnexUndo::Down(left.clone()),
    )
    .await;
    let run_error = match run {
        Ok(run) => run.error,
        Err(e) => Some(e.to_string()),
    };
    let mut connection = databases
        .connect(&target.database, false)
        .await
        .map_err(|e| e.to_string())?;
    let after = connection
        .table_contents(&table_ref)
        .await
        .map_err(|e| e.to_string())?;
    if LockState::from_rows(after.lock.as_deref()).blocks_migrations() {
        let _ = connection
            .release_lock_if_held(&table_ref, Some(crate::db::lock::DEFAULT_LOCK_WAIT))
            .await;
    }
    let (not_undone, undone): (Vec<String>, Vec<String>) = left
        .iter()
        .cloned()
        .partition(|n| after.rows.iter().any(|r| &r.name == n));
    if not_undone.is_empty() {
        return Ok(StepEnd::done(format!(
            "undone in {}: {}",
            runner_source.name,
            undone.join(", ")
        )));
    }
    Err(format!(
        "undone: {}; not undone: {}{}",
        if undone.is_empty() {
            "none".to_string()
        } else {
            undone.join(", ")
        },
        not_undone.join(", "),
        run_error
            .map(|e| format!(" (knex: {e})"))
            .unwrap_or_default()
    ))
}

/// Waits for the rollout; stops early when a pod of the new image cannot start (a known start-up
/// failure in its logs) or when the Deployment's image is changed by someone else (Flux).
async fn wait(
    cluster: &Cluster,
    deployment: &BackstageDeployment,
    image: &str,
    timeout: Duration,
    report: &mut GuidedReport,
) -> Result<StepEnd, String> {
    let object = format!("deployment/{}", deployment.name);
    let mut baseline: Option<Vec<(String, i32)>> = None;
    let end = health::wait_for_rollout(cluster, timeout, |now| {
        if let Some(w) = now
            .workloads
            .iter()
            .find(|w| w.kind == "Deployment" && w.name == deployment.name)
            && w.image != image
        {
            return Some(format!(
                "the image of {object} was changed to {} during the wait (Flux or someone else); stopped, not fighting it",
                w.image
            ));
        }
        // A crash counts when it happens during this wait: a pod that had crashed already (before
        // the databases were made fit for its image) is replaced by the rollout, not a failure.
        let restarts_now: Vec<(String, i32)> = now
            .pods
            .iter()
            .filter(|p| !p.terminating)
            .filter_map(|p| {
                p.containers
                    .iter()
                    .find(|c| c.image == image)
                    .map(|c| (p.name.clone(), c.restarts))
            })
            .collect();
        let baseline = baseline.get_or_insert_with(|| restarts_now.clone());
        let crashed_now: Vec<&str> = restarts_now
            .iter()
            .filter(|(pod, restarts)| {
                baseline
                    .iter()
                    .find(|(p, _)| p == pod)
                    .is_none_or(|(_, before)| restarts > before)
            })
            .map(|(pod, _)| pod.as_str())
            .collect();
        now.findings
            .iter()
            .find(|f| {
                f.severity == Severity::Error
                    && f.diagnosis.is_some()
                    && crashed_now.iter().any(|p| f.object == format!("pod/{p}"))
            })
            .map(|f| format!("{} cannot start: {}", f.object, f.message))
    })
    .await
    .map_err(|e| e.to_string())?;
    match end {
        health::WaitEnd::RolledOut(now) => {
            let ready = now
                .pods
                .iter()
                .filter(|p| !p.terminating && p.containers.iter().any(|c| c.image == image))
                .count();
            Ok(StepEnd::done(format!(
                "rolled out: {ready} pod(s) of {image} ready"
            )))
        }
        health::WaitEnd::Stopped(now, why) => {
            report.findings = problems(&now);
            Err(why)
        }
        health::WaitEnd::TimedOut(now) => {
            report.findings = problems(&now);
            Err(format!(
                "timed out after {} waiting for the rollout",
                crate::model::time::human_duration(timeout.as_secs() as i64)
            ))
        }
        health::WaitEnd::Interrupted(now) => {
            report.findings = problems(&now);
            Err("interrupted (Ctrl-C) while waiting for the rollout; run the command again to go on".into())
        }
    }
}

/// The new pods' readiness, then `verify`'s checks against the environment's URL or through the
/// API server; unreachable is a skip (said so), a failing check a failure.
async fn check(cluster: &Cluster, settings: &Settings, image: &str) -> Result<StepEnd, String> {
    let now = health::gather(&default_health_args(), cluster)
        .await
        .map_err(|e| e.to_string())?;
    let new: Vec<_> = now
        .pods
        .iter()
        .filter(|p| !p.terminating && p.containers.iter().any(|c| c.image == image))
        .collect();
    let not_ready: Vec<&str> = new
        .iter()
        .filter(|p| !p.is_ready())
        .map(|p| p.name.as_str())
        .collect();
    if new.is_empty() {
        return Err(format!("no pod runs {image}"));
    }
    if !not_ready.is_empty() {
        return Err(format!("not ready: {}", not_ready.join(", ")));
    }
    let ready = format!("{} pod(s) of {image} ready", new.len());
    let args = verify_args();
    let verify_settings = match crate::settings::verify::VerifySettings::resolve(
        &args,
        settings
            .environment
            .as_ref()
            .map(|(name, e)| (name.as_str(), e)),
        settings.cluster.request_timeout,
        &RealEnv,
    ) {
        Ok(s) => s,
        Err(e) => return Ok(StepEnd::done(format!("{ready}; smoke checks not run: {e}"))),
    };
    let (target, forward) =
        match verify::target(&verify_settings, &settings.cluster, &RealEnv).await {
            Ok(t) => t,
            Err(e) => {
                return Ok(StepEnd::done(format!(
                    "{ready}; smoke checks not run (not reachable: {e})"
                )));
            }
        };
    let result = verify::gather(&target).await;
    if let Some(forward) = forward {
        forward.stop().await;
    }
    match result {
        Ok(checks) if checks.passed => {
            let passed = checks
                .checks
                .iter()
                .filter(|c| c.status == crate::model::verify::CheckStatus::Pass)
                .count();
            Ok(StepEnd::done(format!(
                "{ready}; {passed} smoke check(s) passed at {}",
                checks.url
            )))
        }
        Ok(checks) => Err(format!(
            "{ready}; smoke checks failed: {}",
            checks
                .checks
                .iter()
                .filter(|c| c.status == crate::model::verify::CheckStatus::Fail)
                .map(|c| format!("{} ({})", c.name, c.detail))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => Ok(StepEnd::done(format!("{ready}; smoke checks not run: {e}"))),
    }
}

/// The objects suspended for the Deployment: those an earlier run recorded and those this run
/// suspends, each once.
fn suspended_objects(recorded: &[FluxObjectRef], now: &[FluxObjectRef]) -> Vec<FluxObjectRef> {
    let mut all: Vec<FluxObjectRef> = recorded.to_vec();
    for o in now {
        if !all.contains(o) {
            all.push(o.clone());
        }
    }
    all
}

/// How the `flux` CLI names a kind in `flux resume KIND NAME`.
fn flux_cli_kind(kind: FluxKind) -> &'static str {
    match kind {
        FluxKind::HelmRelease => "helmrelease",
        FluxKind::Kustomization => "kustomization",
        FluxKind::ImageUpdateAutomation => "image update",
        FluxKind::ImagePolicy => "image policy",
        FluxKind::ImageRepository => "image repository",
    }
}

/// Suspends each object (`spec.suspend: true`) and records them on the Deployment.
async fn suspend_flux(
    cluster: &Cluster,
    deployment: &str,
    objects: &[FluxObjectRef],
) -> Result<StepEnd, String> {
    let mut done = Vec::new();
    for o in objects {
        crate::kube::flux::set_suspended(cluster, o, true)
            .await
            .map_err(|e| format!("{e} (suspended so far: {})", names(&done)))?;
        done.push(o.clone());
    }
    crate::kube::flux::annotate_suspended_flux(cluster, deployment, &done)
        .await
        .map_err(|e| format!("{e} (suspended: {})", names(&done)))?;
    Ok(StepEnd::done(format!(
        "suspended {}; recorded in annotation {SUSPENDED_ANNOTATION}",
        names(&done)
    )))
}

/// Resumes each object and removes the record from the Deployment.
async fn resume_flux(
    cluster: &Cluster,
    deployment: &str,
    objects: &[FluxObjectRef],
) -> Result<StepEnd, String> {
    for o in objects {
        crate::kube::flux::set_suspended(cluster, o, false)
            .await
            .map_err(|e| e.to_string())?;
    }
    crate::kube::flux::annotate_suspended_flux(cluster, deployment, &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(StepEnd::done(format!("resumed {}", names(objects))))
}

fn names(objects: &[FluxObjectRef]) -> String {
    if objects.is_empty() {
        return "nothing".into();
    }
    objects
        .iter()
        .map(|o| format!("{} {}/{}", o.kind.as_str(), o.namespace, o.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verify_args() -> crate::cli::VerifyArgs {
    crate::cli::VerifyArgs {
        url: None,
        auth_provider: None,
        auth_env: None,
        auth_host: None,
        token_env: None,
        docs_entity: None,
        vault_url: None,
        azure_auth: None,
    }
}

impl From<GuidedError> for crate::Error {
    fn from(e: GuidedError) -> crate::Error {
        crate::Error::Guided(Box::new(e))
    }
}
