//! One command in several environments at once (`-e a,b`, `--all-envs`): connects to each
//! environment's cluster and runs the command's per-environment body concurrently, on the one
//! runtime. An environment that cannot be reached, refuses the credentials or fails otherwise is a
//! result that says why, never an abort of the others. The exit code is the worst of the
//! environments' (2 > 1 > 0).

use std::fmt::Display;
use std::future::Future;

use super::Outcome;
use crate::kube::{Cluster, KubeError};
use crate::model::multi::{EnvironmentResult, PerEnvironment};
use crate::render::{self, Report, Style};
use crate::settings::Settings;

/// Runs `body` in every environment of `settings` concurrently, connected to the environment's
/// cluster; results in the order of `settings`. A cluster that cannot be connected to is that
/// environment's error.
pub async fn each_environment<'a, R, E, F, Fut>(
    settings: &'a [Settings],
    body: F,
) -> Vec<(String, Result<R, E>)>
where
    F: Fn(&'a Settings, Cluster) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: From<KubeError>,
{
    let body = &body;
    each_environment_settings(settings, |s| async move {
        match Cluster::connect(&s.cluster).await {
            Ok(cluster) => body(s, cluster).await,
            Err(e) => Err(E::from(e)),
        }
    })
    .await
}

/// The same without connecting first, for a command that may not need the cluster (a check of the
/// environment's URL): `body` gets only the environment's settings.
pub async fn each_environment_settings<'a, R, E, F, Fut>(
    settings: &'a [Settings],
    body: F,
) -> Vec<(String, Result<R, E>)>
where
    F: Fn(&'a Settings) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    let body = &body;
    let runs = settings.iter().map(|s| async move {
        let name = s.environment_name().unwrap_or_default().to_string();
        (name, body(s).await)
    });
    futures::future::join_all(runs).await
}

/// The per-environment document, and the worst outcome: [`Outcome::CouldNotRun`] when an environment
/// failed, else [`Outcome::Problems`] when `outcome` says one found problems, else [`Outcome::Ok`].
pub fn collect<R, E: Display>(
    runs: Vec<(String, Result<R, E>)>,
    outcome: impl Fn(&R) -> Outcome,
) -> (PerEnvironment<R>, Outcome) {
    let mut worst = Outcome::Ok;
    let results = runs
        .into_iter()
        .map(|(environment, result)| match result {
            Ok(report) => {
                worst = worst.worst(outcome(&report));
                EnvironmentResult::Done {
                    environment,
                    report,
                }
            }
            Err(e) => {
                worst = worst.worst(Outcome::CouldNotRun);
                EnvironmentResult::Failed {
                    environment,
                    error: e.to_string(),
                }
            }
        })
        .collect();
    (PerEnvironment(results), worst)
}

/// Collects the runs, prints the one document (or table) of every environment, then one
/// `error: environment NAME: …` line per environment that could not be checked; the worst outcome.
pub fn print<R, E: Display>(
    runs: Vec<(String, Result<R, E>)>,
    outcome: impl Fn(&R) -> Outcome,
    style: &Style,
) -> Outcome
where
    PerEnvironment<R>: Report,
{
    let (reports, worst) = collect(runs, outcome);
    render::emit(&render::render(&reports, style));
    for (environment, error) in reports.failed() {
        render::error(&format!("environment {environment}: {error}"));
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_wins_and_errors_become_results() {
        let runs: Vec<(String, Result<bool, String>)> = vec![
            ("a".into(), Ok(true)),
            ("b".into(), Ok(false)),
            ("c".into(), Err("cannot reach the API server".into())),
        ];
        let outcome = |healthy: &bool| {
            if *healthy {
                Outcome::Ok
            } else {
                Outcome::Problems
            }
        };
        let (all, worst) = collect(runs.clone(), outcome);
        assert_eq!(worst, Outcome::CouldNotRun);
        assert_eq!(
            all.failed().collect::<Vec<_>>(),
            [("c", "cannot reach the API server")]
        );
        assert_eq!(
            all.done().map(|(e, r)| (e, *r)).collect::<Vec<_>>(),
            [("a", true), ("b", false)]
        );
        let (_, worst) = collect(runs[..2].to_vec(), outcome);
        assert_eq!(worst, Outcome::Problems);
        let (_, worst) = collect(runs[..1].to_vec(), outcome);
        assert_eq!(worst, Outcome::Ok);
    }
}
