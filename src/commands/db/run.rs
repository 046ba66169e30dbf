//! Dispatch of the `db` commands: the password first (so a missing one fails before any other I/O),
//! then the cluster only for the commands that read pods, then the command itself.

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::commands::db;
use crate::kube::{Cluster, KubeError};
use crate::migrations::source::{self, LoadedSource, SourceSpec};
use crate::process_env::RealEnv;
use crate::render::Style;
use crate::settings::commands::DbCommandSettings;
use crate::settings::{DbSettings, Settings};

pub async fn run(
    command: &DbCommandSettings,
    db_settings: DbSettings,
    settings: &Settings,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let databases = Databases::open(db_settings, &RealEnv).await?;
    let outcome = run_command(command, &databases, settings, style).await;
    // Every session ends with a Terminate, also after an error: the server logs no resets.
    databases.close().await;
    outcome
}

async fn run_command(
    command: &DbCommandSettings,
    databases: &Databases,
    settings: &Settings,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let cluster = || Cluster::connect(&settings.cluster);
    match command {
        DbCommandSettings::List => Ok(db::list::run(databases, style).await?),
        DbCommandSettings::Status { plugins, source } => {
            let loaded = match source {
                Some(spec) => Some(
                    source::load(
                        spec,
                        cluster().await.as_ref(),
                        plugins,
                        None,
                        &crate::render::preflight_progress,
                    )
                    .await?,
                ),
                None => default_source(settings, plugins).await,
            };
            Ok(db::status::run(databases, plugins, loaded.as_ref(), style).await?)
        }
        DbCommandSettings::CurrentVersion { plugin, table } => {
            Ok(db::current_version::run(databases, plugin, table.as_deref(), style).await?)
        }
        DbCommandSettings::Plan { plugins, to } => {
            let cluster = cluster().await;
            let target = source::load(
                to,
                cluster.as_ref(),
                plugins,
                None,
                &crate::render::preflight_progress,
            )
            .await?;
            Ok(db::plan::run(databases, plugins, &target, cluster.as_ref().ok(), style).await?)
        }
        DbCommandSettings::Rollback(rollback) => {
            let request = db::rollback::RollbackRequest {
                plugin: &rollback.plugin,
                table: &rollback.table,
                target: rollback.target.clone(),
                runner: rollback.runner.clone(),
                dry_run: rollback.dry_run,
                yes: rollback.yes,
            };
            db::rollback::run(databases, &request, cluster().await, style).await
        }
        DbCommandSettings::Unlock {
            plugin,
            table,
            force,
            dry_run,
            yes,
        } => {
            // With --force the pods are not checked, so the cluster is not needed.
            let pods = if *force {
                Err(KubeError::NoKubeconfig)
            } else {
                cluster().await
            };
            let request = db::unlock::UnlockRequest {
                plugin,
                table: table.as_deref(),
                force: *force,
                dry_run: *dry_run,
                yes: *yes,
                lock_wait: settings.cluster.request_timeout,
            };
            db::unlock::run(databases, &request, pods, style).await
        }
        DbCommandSettings::Psql { plugin, args } => {
            let code = db::psql::run(databases, plugin, args).await?;
            Ok(Outcome::Exit(u8::try_from(code).unwrap_or(2)))
        }
    }
}

/// `db status` without `--source`: the running pod's files when a cluster is reachable, else none
/// (with a note on stderr when the cluster was there but the pod could not be read).
async fn default_source(settings: &Settings, plugins: &[String]) -> Option<LoadedSource> {
    let cluster = match Cluster::connect(&settings.cluster).await {
        Ok(cluster) => cluster,
        Err(e) => {
            tracing::info!(error = %e, "no cluster; showing what the databases hold");
            return None;
        }
    };
    match source::load(
        &SourceSpec::Pod(None),
        Ok(&cluster),
        plugins,
        None,
        &crate::render::preflight_progress,
    )
    .await
    {
        Ok(source) => Some(source),
        Err(e) => {
            crate::render::note(&crate::render::db::not_comparing_with_pod(&e.to_string()));
            None
        }
    }
}
