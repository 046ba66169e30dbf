//! The guided `upgrade --image` / `rollback --to-image`: its steps, their outcomes and the final
//! report. Pure: the command gathers the state (the Deployment's image, the plan per plugin database,
//! who manages the Deployment) and [`plan_steps`] works out from that state alone what is still to
//! be done — so a run after an interruption does only what is left. [`GuidedReport::outcome`] maps
//! the steps' outcomes to the exit-code table.

use serde::Serialize;

use super::db::DatabasePlan;
use super::health::Finding;
use crate::exit::Outcome;

/// Which way the image moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Direction {
    Upgrade,
    Rollback,
}

impl Direction {
    /// The report's `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Direction::Upgrade => "Upgrade",
            Direction::Rollback => "Rollback",
        }
    }

    /// How the user typed the command.
    pub fn command(self) -> &'static str {
        match self {
            Direction::Upgrade => "upgrade --image",
            Direction::Rollback => "rollback --to-image",
        }
    }
}

/// One step of the sequence, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum StepKind {
    /// Read the target image's files and plan every plugin database.
    Preflight,
    /// Suspend the Flux object that manages the Deployment.
    SuspendFlux { kind: String, name: String },
    /// Undo migrations the target lacks, newest first, in the current (newer) pod.
    RollbackMigrations {
        plugin: String,
        table: String,
        migrations: Vec<String>,
    },
    /// Patch the Deployment's container image (with a change-cause annotation); with `restart`, the
    /// image is set already but its pods crashed before the databases were made fit for it: restart
    /// the rollout (as `kubectl rollout restart` does) instead of waiting out their back-off.
    SetImage { restart: bool },
    /// Wait until the rollout is complete and every pod ready, as `health --wait` does.
    WaitRollout,
    /// The new pods' readiness and the smoke checks.
    Verify,
    /// Resume the Flux object (`--resume-flux`).
    ResumeFlux { kind: String, name: String },
}

/// How a step ended (or what it will do, in a plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepState {
    /// Will run (a plan, `--dry-run`).
    Planned,
    Done,
    /// The cluster or database already is as the step would leave it (a run after an interruption).
    AlreadyDone,
    /// Not needed in this run (says why in the detail).
    Skipped,
    Failed,
    /// An earlier step failed or the run was refused: it did not run.
    NotRun,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Planned => "planned",
            StepState::Done => "done",
            StepState::AlreadyDone => "already done",
            StepState::Skipped => "skipped",
            StepState::Failed => "failed",
            StepState::NotRun => "not run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    #[serde(flatten)]
    pub kind: StepKind,
    /// What the step does, one line.
    pub description: String,
    pub state: StepState,
    /// What happened, or why it was skipped.
    pub detail: Option<String>,
}

impl Step {
    fn new(kind: StepKind, description: String, state: StepState) -> Step {
        Step {
            kind,
            description,
            state,
            detail: None,
        }
    }

    fn with_detail(mut self, detail: impl Into<String>) -> Step {
        self.detail = Some(detail.into());
        self
    }

    /// Whether it changed the database (a rollback of migrations that undid something).
    pub fn changed_database(&self) -> bool {
        matches!(self.kind, StepKind::RollbackMigrations { .. })
            && matches!(self.state, StepState::Done | StepState::Failed)
    }
}

/// The Flux object that manages the Deployment, as the adapter found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FluxManager {
    /// `HelmRelease` or `Kustomization`.
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub suspended: bool,
}

/// What the command gathered before planning.
#[derive(Debug, Clone)]
pub struct GuidedState<'a> {
    pub direction: Direction,
    /// The Deployment's container image now.
    pub current_image: &'a str,
    pub target_image: &'a str,
    /// Whether the Deployment's rollout is complete with every pod ready.
    pub rolled_out: bool,
    /// Whether a pod of the target image cannot start: restarted, waits in CrashLoopBackOff, or runs
    /// never ready with a start-up failure diagnosed in its log.
    pub target_pods_crashed: bool,
    pub plans: &'a [DatabasePlan],
    pub flux: Option<&'a FluxManager>,
    pub suspend_flux: bool,
    pub resume_flux: bool,
}

/// Why the command will not start (exit 2, nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `upgrade` to an image that lacks migrations the databases have.
    #[error(
        "the databases have migrations image {image} lacks ({}): that is a downgrade; use `kubectl backstage rollback --to-image {image}`",
        .migrations.join(", ")
    )]
    UpgradeIsDowngrade {
        image: String,
        migrations: Vec<String>,
    },
    /// Flux manages the Deployment and would put its own image back.
    #[error(
        "{kind} {namespace}/{name} (Flux) manages the Deployment and would revert the image: change the image in Git, or rerun with --suspend-flux (and --resume-flux to resume it at the end)"
    )]
    FluxManaged {
        kind: String,
        namespace: String,
        name: String,
    },
}

/// The steps still to do, from the state alone. Preflight has run when this is called (it produced
/// the plans), so it is `Done`; the others are `Planned`, `AlreadyDone` or `Skipped`.
pub fn plan_steps(state: &GuidedState<'_>) -> Result<Vec<Step>, Refusal> {
    let target = state.target_image;
    let mut steps = vec![
        Step::new(
            StepKind::Preflight,
            format!("read the migration files of {target} and plan every plugin database"),
            StepState::Done,
        )
        .with_detail(preflight_summary(state.plans, state.direction)),
    ];
    let to_undo: Vec<(&DatabasePlan, &crate::knex::plan::TablePlan)> = state
        .plans
        .iter()
        .flat_map(|d| d.tables.iter().map(move |t| (d, t)))
        .filter(|(_, t)| t.needs_rollback())
        .collect();
    if state.direction == Direction::Upgrade && !to_undo.is_empty() {
        return Err(Refusal::UpgradeIsDowngrade {
            image: target.to_string(),
            migrations: to_undo
                .iter()
                .flat_map(|(_, t)| t.rollback.iter().cloned())
                .collect(),
        });
    }
    let image_set = state.current_image == target;
    if let Some(flux) = state.flux {
        let kind = StepKind::SuspendFlux {
            kind: flux.kind.clone(),
            name: flux.name.clone(),
        };
        let description = format!(
            "suspend Flux {} {}/{} and record it on the Deployment",
            flux.kind, flux.namespace, flux.name
        );
        if flux.suspended {
            steps.push(
                Step::new(kind, description, StepState::AlreadyDone)
                    .with_detail("suspended already"),
            );
        } else if !state.suspend_flux && !image_set {
            return Err(Refusal::FluxManaged {
                kind: flux.kind.clone(),
                namespace: flux.namespace.clone(),
                name: flux.name.clone(),
            });
        } else if image_set {
            steps.push(
                Step::new(kind, description, StepState::Skipped)
                    .with_detail("the image is set already"),
            );
        } else {
            steps.push(Step::new(kind, description, StepState::Planned));
        }
    }
    if state.direction == Direction::Rollback {
        if to_undo.is_empty() {
            steps.push(
                Step::new(
                    StepKind::RollbackMigrations {
                        plugin: String::new(),
                        table: String::new(),
                        migrations: Vec::new(),
                    },
                    "roll back the migrations the target image lacks".into(),
                    StepState::AlreadyDone,
                )
                .with_detail(format!("the databases have no migration {target} lacks")),
            );
        }
        for (database, table) in &to_undo {
            steps.push(Step::new(
                StepKind::RollbackMigrations {
                    plugin: database.plugin.clone(),
                    table: table.table.clone(),
                    migrations: table.rollback.clone(),
                },
                format!(
                    "roll back {} of plugin {} ({} {}) in the current pod, newest first: {}",
                    count(table.rollback.len(), "migration"),
                    database.plugin,
                    database.database,
                    table.table,
                    table.rollback.join(", ")
                ),
                StepState::Planned,
            ));
        }
    }
    let undoes = state.direction == Direction::Rollback && !to_undo.is_empty();
    steps.push(if image_set && state.target_pods_crashed && undoes {
        Step::new(
            StepKind::SetImage { restart: true },
            format!(
                "restart the rollout of {target} (set already; its pods crashed on the databases as they were)"
            ),
            StepState::Planned,
        )
    } else if image_set {
        Step::new(
            StepKind::SetImage { restart: false },
            format!("set the image to {target}"),
            StepState::AlreadyDone,
        )
        .with_detail("the Deployment has this image already")
    } else {
        Step::new(
            StepKind::SetImage { restart: false },
            format!("set the image to {target} (from {})", state.current_image),
            StepState::Planned,
        )
    });
    steps.push(Step::new(
        StepKind::WaitRollout,
        "wait for the rollout, as `kubectl backstage health --wait` does".into(),
        if image_set && state.rolled_out && !undoes {
            StepState::AlreadyDone
        } else {
            StepState::Planned
        },
    ));
    steps.push(Step::new(
        StepKind::Verify,
        "check that the new pods are ready and answer readiness".into(),
        StepState::Planned,
    ));
    if let Some(flux) = state.flux
        && state.resume_flux
        && (state.suspend_flux || flux.suspended)
    {
        steps.push(Step::new(
            StepKind::ResumeFlux {
                kind: flux.kind.clone(),
                name: flux.name.clone(),
            },
            format!("resume Flux {} {}/{}", flux.kind, flux.namespace, flux.name),
            StepState::Planned,
        ));
    }
    Ok(steps)
}

fn preflight_summary(plans: &[DatabasePlan], direction: Direction) -> String {
    let tables = plans.iter().flat_map(|d| &d.tables);
    let (mut run, mut undo) = (0, 0);
    for t in tables {
        run += t.upgrade.len();
        undo += t.rollback.len();
    }
    match direction {
        Direction::Upgrade => format!(
            "{} will run at start-up in {}",
            count(run, "migration"),
            count(plans.len(), "plugin database")
        ),
        Direction::Rollback => format!(
            "{} must be rolled back first in {}",
            count(undo, "migration"),
            count(plans.len(), "plugin database")
        ),
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GuidedResult {
    /// Every step done (or already done).
    Done,
    /// `--dry-run`: nothing changed.
    Planned,
    /// The rollout or the checks failed and nothing was changed in the databases.
    Failed,
    /// Stopped part-way after changing something: the steps say exactly what.
    Stopped,
}

/// The final report of `upgrade` / `rollback` (`-o json`: kind `Upgrade` or `Rollback`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuidedReport {
    pub kind: &'static str,
    pub context: String,
    pub namespace: String,
    pub deployment: String,
    pub container: String,
    pub from_image: String,
    pub to_image: String,
    /// Where the target image's migration files were read (`image:REF`, `dir:/path`, `pod:NAME`).
    pub source: String,
    pub dry_run: bool,
    pub result: GuidedResult,
    pub plan: Vec<DatabasePlan>,
    /// Migrations the upgrade runs that cannot be undone, and other things to know before it runs.
    pub warnings: Vec<String>,
    pub steps: Vec<Step>,
    /// On failure: what `health` finds (crash logs read).
    pub findings: Vec<Finding>,
    /// On failure: the exact commands that go back.
    pub way_back: Vec<String>,
    /// What is left to the operator (resume Flux).
    pub next: Vec<String>,
}

impl GuidedReport {
    /// The result the steps add up to.
    pub fn result_of(steps: &[Step], dry_run: bool) -> GuidedResult {
        if dry_run {
            return GuidedResult::Planned;
        }
        let failed = steps.iter().any(|s| s.state == StepState::Failed);
        if !failed {
            return GuidedResult::Done;
        }
        if steps.iter().any(Step::changed_database) {
            GuidedResult::Stopped
        } else {
            GuidedResult::Failed
        }
    }

    /// Exit 0 done (or planned), 1 the rollout or the checks failed with nothing changed in the
    /// databases, 3 stopped part-way after changing them.
    pub fn outcome(&self) -> Outcome {
        match self.result {
            GuidedResult::Done | GuidedResult::Planned => Outcome::Ok,
            GuidedResult::Failed => Outcome::Problems,
            GuidedResult::Stopped => Outcome::PartlyDone,
        }
    }
}

/// The commands that go back to `previous` after a failed move to another image.
pub fn way_back(
    direction: Direction,
    deployment: &str,
    container: &str,
    previous: &str,
    target: &str,
) -> Vec<String> {
    match direction {
        // The databases were migrated by the new pods, perhaps: go back with the rollback command,
        // which undoes first what the old image lacks.
        Direction::Upgrade => vec![format!("kubectl backstage rollback --to-image {previous}")],
        // The migrations were rolled back already: the newer image can start again on them.
        Direction::Rollback => vec![
            format!("kubectl set image deployment/{deployment} {container}={previous}"),
            format!(
                "kubectl backstage rollback --to-image {target}   # to try again once the cause is fixed"
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knex::plan::TablePlan;

    fn plan(plugin: &str, upgrade: &[&str], rollback: &[&str]) -> DatabasePlan {
        DatabasePlan {
            plugin: plugin.into(),
            database: format!("backstage_plugin_{plugin}"),
            schema: None,
            tables: vec![TablePlan {
                table: "knex_migrations".into(),
                upgrade: upgrade.iter().map(|s| s.to_string()).collect(),
                rollback: rollback.iter().map(|s| s.to_string()).collect(),
                commands: Vec::new(),
                upgrade_checks: Vec::new(),
            }],
            not_in_target: Vec::new(),
        }
    }

    fn state<'a>(
        direction: Direction,
        current: &'a str,
        plans: &'a [DatabasePlan],
        flux: Option<&'a FluxManager>,
    ) -> GuidedState<'a> {
        GuidedState {
            direction,
            current_image: current,
            target_image: "r/b:1.54.0",
            rolled_out: true,
            target_pods_crashed: false,
            plans,
            flux,
            suspend_flux: false,
            resume_flux: false,
        }
    }

    fn states(steps: &[Step]) -> Vec<(&'static str, StepState)> {
        steps
            .iter()
            .map(|s| {
                let name = match s.kind {
                    StepKind::Preflight => "preflight",
                    StepKind::SuspendFlux { .. } => "suspendFlux",
                    StepKind::RollbackMigrations { .. } => "rollbackMigrations",
                    StepKind::SetImage { .. } => "setImage",
                    StepKind::WaitRollout => "waitRollout",
                    StepKind::Verify => "verify",
                    StepKind::ResumeFlux { .. } => "resumeFlux",
                };
                (name, s.state)
            })
            .collect()
    }

    #[test]
    fn a_rollback_undoes_per_table_then_sets_the_image() {
        let plans = [
            plan("auth", &[], &[]),
            plan(
                "catalog",
                &[],
                &["20260912000000_b.js", "20260904000000_a.js"],
            ),
        ];
        let steps = plan_steps(&state(Direction::Rollback, "r/b:1.55.0", &plans, None)).unwrap();
        assert_eq!(
            states(&steps),
            vec![
                ("preflight", StepState::Done),
                ("rollbackMigrations", StepState::Planned),
                ("setImage", StepState::Planned),
                ("waitRollout", StepState::Planned),
                ("verify", StepState::Planned),
            ]
        );
        assert_eq!(
            steps[1].kind,
            StepKind::RollbackMigrations {
                plugin: "catalog".into(),
                table: "knex_migrations".into(),
                migrations: vec!["20260912000000_b.js".into(), "20260904000000_a.js".into()],
            }
        );
        assert_eq!(
            steps[0].detail.as_deref(),
            Some("2 migrations must be rolled back first in 2 plugin databases")
        );
    }

    #[test]
    fn a_second_run_recomputes_what_is_left() {
        // The migrations were undone and the image set before the interruption.
        let plans = [plan("catalog", &[], &[])];
        let steps = plan_steps(&state(Direction::Rollback, "r/b:1.54.0", &plans, None)).unwrap();
        assert_eq!(
            states(&steps),
            vec![
                ("preflight", StepState::Done),
                ("rollbackMigrations", StepState::AlreadyDone),
                ("setImage", StepState::AlreadyDone),
                ("waitRollout", StepState::AlreadyDone),
                ("verify", StepState::Planned),
            ]
        );
    }

    #[test]
    fn a_downgrade_set_by_hand_is_rolled_back_then_restarted() {
        // `kubectl set image` went first: the older pods crash on the newer databases.
        let plans = [plan("catalog", &[], &["20260912000000_b.js"])];
        let mut s = state(Direction::Rollback, "r/b:1.54.0", &plans, None);
        s.rolled_out = false;
        s.target_pods_crashed = true;
        let steps = plan_steps(&s).unwrap();
        assert_eq!(
            states(&steps),
            vec![
                ("preflight", StepState::Done),
                ("rollbackMigrations", StepState::Planned),
                ("setImage", StepState::Planned),
                ("waitRollout", StepState::Planned),
                ("verify", StepState::Planned),
            ]
        );
        assert_eq!(steps[2].kind, StepKind::SetImage { restart: true });
    }

    #[test]
    fn an_upgrade_that_is_a_downgrade_is_refused() {
        let plans = [plan("catalog", &[], &["20260912000000_b.js"])];
        let err = plan_steps(&state(Direction::Upgrade, "r/b:1.55.0", &plans, None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the databases have migrations image r/b:1.54.0 lacks (20260912000000_b.js): that is a downgrade; use `kubectl backstage rollback --to-image r/b:1.54.0`"
        );
    }

    #[test]
    fn flux_refuses_unless_suspend_is_asked() {
        let flux = FluxManager {
            kind: "HelmRelease".into(),
            name: "backstage".into(),
            namespace: "flux-system".into(),
            suspended: false,
        };
        let plans = [plan("catalog", &["20260912000000_b.js"], &[])];
        let mut s = state(Direction::Upgrade, "r/b:1.53.0", &plans, Some(&flux));
        assert_eq!(
            plan_steps(&s).unwrap_err().to_string(),
            "HelmRelease flux-system/backstage (Flux) manages the Deployment and would revert the image: change the image in Git, or rerun with --suspend-flux (and --resume-flux to resume it at the end)"
        );
        s.suspend_flux = true;
        s.resume_flux = true;
        assert_eq!(
            states(&plan_steps(&s).unwrap()),
            vec![
                ("preflight", StepState::Done),
                ("suspendFlux", StepState::Planned),
                ("setImage", StepState::Planned),
                ("waitRollout", StepState::Planned),
                ("verify", StepState::Planned),
                ("resumeFlux", StepState::Planned),
            ]
        );
    }

    #[test]
    fn results_and_exit_codes() {
        let step = |kind: StepKind, state: StepState| Step::new(kind, String::new(), state);
        let undo = StepKind::RollbackMigrations {
            plugin: "catalog".into(),
            table: "knex_migrations".into(),
            migrations: vec!["a.js".into()],
        };
        let rollout_failed = [
            step(StepKind::SetImage { restart: false }, StepState::Done),
            step(StepKind::WaitRollout, StepState::Failed),
        ];
        assert_eq!(
            GuidedReport::result_of(&rollout_failed, false),
            GuidedResult::Failed
        );
        let part_way = [
            step(undo.clone(), StepState::Done),
            step(StepKind::SetImage { restart: false }, StepState::Done),
            step(StepKind::WaitRollout, StepState::Failed),
        ];
        assert_eq!(
            GuidedReport::result_of(&part_way, false),
            GuidedResult::Stopped
        );
        let done = [
            step(undo, StepState::Done),
            step(StepKind::SetImage { restart: false }, StepState::Done),
        ];
        assert_eq!(GuidedReport::result_of(&done, false), GuidedResult::Done);
        assert_eq!(GuidedReport::result_of(&done, true), GuidedResult::Planned);
    }
}
