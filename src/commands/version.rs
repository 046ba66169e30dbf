//! `version`: each workload's image, tag kind and running digests, and the Backstage release and
//! packages of the backend (a running pod, read with one exec, or a local tree); `version --diff A B`
//! compares two versions. [`gather`] and [`gather_diff`] return report values and print nothing, so
//! several environments can be gathered at once; [`run`] renders. [`client`] (`version --client`) prints
//! this binary's build information and reads nothing.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;

use super::{Outcome, multi};
use crate::kube::{Cluster, KubeError, flux};
use crate::migrations::inventory::{self, Inventory};
use crate::migrations::source::SourceError;
use crate::model::release::ReleaseData;
use crate::model::version::{
    BackstageVersion, ClientVersion, TreeContents, VersionDiff, VersionReport, backstage_version,
    version_diff, workload_versions,
};
use crate::options::SourceSpec;
use crate::render::{self, Style};
use crate::settings::Settings;
use crate::settings::commands::{VersionSettings, VersionSource};

/// Why `version` could not do its job (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The cluster is needed (for the workloads or the pod) and could not be reached.
    #[error("{0}")]
    NoCluster(String),
    /// `env:NAME`: that environment's cluster could not be reached or read.
    #[error("environment {name}: {message}")]
    Environment { name: String, message: String },
}

/// The report of one environment: workloads when the cluster is reachable, and the packages of
/// `source` (default: the running pod). A source given explicitly must be readable; the default pod
/// that cannot be read leaves `backstage` empty with the reason in `backstageError`.
pub async fn gather(
    cluster: Result<&Cluster, &KubeError>,
    selector: Option<&str>,
    source: Option<&SourceSpec>,
) -> Result<VersionReport, VersionError> {
    let (namespace, workloads, flux) = match cluster {
        Ok(cluster) => {
            let (pods, deployments, statefulsets) = tokio::join!(
                cluster.list_all::<Pod>("pods", selector),
                cluster.list_all::<Deployment>("deployments", selector),
                cluster.list_all::<StatefulSet>("statefulsets", selector),
            );
            let (pods, deployments, statefulsets) = (pods?.0, deployments?.0, statefulsets?.0);
            (
                Some(cluster.namespace.clone()),
                workload_versions(&deployments, &statefulsets, &pods),
                flux::read_flux(cluster, &deployments).await,
            )
        }
        // A local tree can be described without a cluster.
        Err(e) if matches!(source, Some(SourceSpec::Dir(_))) => {
            tracing::info!(error = %e, "no cluster; describing the local tree only");
            (None, Vec::new(), None)
        }
        Err(e) => return Err(VersionError::NoCluster(e.to_string())),
    };
    let (backstage, backstage_error) = match source {
        Some(spec) => {
            let found = inventory::load(spec, cluster, &render::preflight_progress).await?;
            (Some(describe(&found)), None)
        }
        None => match inventory::load(&SourceSpec::Pod(None), cluster, &render::preflight_progress)
            .await
        {
            Ok(found) => (Some(describe(&found)), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    Ok(VersionReport {
        kind: "Version",
        namespace,
        workloads,
        backstage,
        backstage_error,
        flux,
    })
}

/// The release and packages of one gathered tree.
pub fn describe(found: &Inventory) -> BackstageVersion {
    backstage_version(
        &TreeContents {
            source: &found.source,
            backstage_json: found
                .backstage_json
                .as_ref()
                .map(|j| (j.path.as_str(), j.text.as_str())),
            installed: &found.installed,
            tables: &found.tables,
        },
        ReleaseData::embedded(),
    )
}

/// Reads one side of `--diff`.
async fn read_side(
    source: &VersionSource,
    cluster: Result<&Cluster, &KubeError>,
) -> Result<Inventory, VersionError> {
    match source {
        VersionSource::Spec(spec) => {
            Ok(inventory::load(spec, cluster, &render::preflight_progress).await?)
        }
        VersionSource::Env { name, cluster } => {
            let environment = |message: String| VersionError::Environment {
                name: name.clone(),
                message,
            };
            let other = Cluster::connect(cluster)
                .await
                .map_err(|e| environment(e.to_string()))?;
            let mut found = inventory::load(
                &SourceSpec::Pod(None),
                Ok(&other),
                &render::preflight_progress,
            )
            .await
            .map_err(|e| environment(e.to_string()))?;
            found.source = format!("env:{name}/{}", found.source);
            Ok(found)
        }
    }
}

/// `--diff A B`: both sides read at once, then compared.
pub async fn gather_diff(
    cluster: Result<&Cluster, &KubeError>,
    diff: &[(String, VersionSource); 2],
) -> Result<VersionDiff, VersionError> {
    let [(_, a), (b_text, b)] = diff;
    let (from, to) = tokio::join!(read_side(a, cluster), read_side(b, cluster));
    let (from, to) = (from?, to?);
    // `db plan --to` takes B when it is a pod or a folder of this environment.
    let to_spec = matches!(b, VersionSource::Spec(_)).then_some(b_text.as_str());
    Ok(version_diff(
        &describe(&from),
        &from.tables,
        &describe(&to),
        &to.tables,
        to_spec,
    ))
}

/// `version --client`: this binary's build information; reads nothing.
pub fn client(style: &Style) -> Outcome {
    render::emit(&render::render(&ClientVersion::this_build(), style));
    Outcome::Ok
}

pub async fn run(
    settings: &VersionSettings,
    cluster: Result<Cluster, KubeError>,
    style: &Style,
) -> Result<Outcome, VersionError> {
    if let Some(diff) = &settings.diff {
        let report = gather_diff(cluster.as_ref(), diff).await?;
        render::emit(&render::render(&report, style));
        return Ok(if report.downgrade {
            Outcome::Problems
        } else {
            Outcome::Ok
        });
    }
    let report = gather(
        cluster.as_ref(),
        settings.selector.as_deref(),
        settings.source.as_ref(),
    )
    .await?;
    if let Some(cause) = &report.backstage_error {
        render::note(&format!(
            "not showing the Backstage release and packages: {cause}"
        ));
    }
    render::flux_notes(None, report.flux.as_ref());
    render::emit(&render::render(&report, style));
    Ok(Outcome::Ok)
}

/// `version` in several environments at once: every environment's workloads and running backend,
/// gathered concurrently; one that cannot be reached is a row that says why.
pub async fn run_several(
    settings: &VersionSettings,
    environments: &[Settings],
    style: &Style,
) -> Outcome {
    let selector = settings.selector.as_deref();
    let runs = multi::each_environment(environments, |_, cluster| async move {
        gather(Ok(&cluster), selector, None).await
    })
    .await;
    for (environment, run) in &runs {
        if let Ok(VersionReport {
            backstage_error: Some(cause),
            ..
        }) = run
        {
            render::note(&format!(
                "environment {environment}: not showing the Backstage release and packages: {cause}"
            ));
        }
        if let Ok(report) = run {
            render::flux_notes(Some(environment), report.flux.as_ref());
        }
    }
    multi::print(runs, |_: &VersionReport| Outcome::Ok, style)
}
