//! The text forms of `upgrade` / `rollback`: the plan per plugin database, the steps with their
//! outcomes, the diagnosis and the way back; and the line announcing each step before it runs.

use super::{Color, Report, Style, cell, table_text};
use crate::model::db::DbPlanReport;
use crate::model::guided::{GuidedReport, GuidedResult, Step, StepKind, StepState};

impl Report for GuidedReport {
    fn text(&self, style: &Style) -> String {
        let mut out = format!(
            "{} deployment/{} (container {}, namespace {}, context {}): {} -> {}\n\n",
            self.kind,
            cell(&self.deployment),
            cell(&self.container),
            cell(&self.namespace),
            cell(&self.context),
            cell(&self.from_image),
            cell(&self.to_image),
        );
        out.push_str(&format!("PLAN (files of {})\n", cell(&self.source)));
        let plan = DbPlanReport {
            kind: "DbPlan",
            to: self.source.clone(),
            rollback_needed: false,
            databases: self.plan.clone(),
            warnings: Vec::new(),
        };
        out.push_str(&plan.text(style));
        for warning in &self.warnings {
            out.push_str(&style.paint(&format!("warning: {}", cell(warning)), Color::Yellow));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&steps_table(&self.steps, style));
        if !self.findings.is_empty() {
            out.push_str("\nFINDINGS\n");
            for f in &self.findings {
                out.push_str(&format!(
                    "{:<8} {}  {}\n",
                    f.severity.as_str(),
                    cell(&f.object),
                    cell(&f.message)
                ));
                if let Some(hint) = &f.hint {
                    out.push_str(&format!("         hint: {}\n", cell(hint)));
                }
            }
        }
        if !self.way_back.is_empty() {
            out.push_str("\nTHE WAY BACK\n");
            for command in &self.way_back {
                out.push_str(&format!("  {}\n", cell(command)));
            }
        }
        if !self.next.is_empty() {
            out.push_str("\nNEXT\n");
            for command in &self.next {
                out.push_str(&format!("  {}\n", cell(command)));
            }
        }
        out.push_str(&format!("\nresult: {}\n", result_text(self.result)));
        out
    }
}

fn result_text(result: GuidedResult) -> &'static str {
    match result {
        GuidedResult::Done => "done",
        GuidedResult::Planned => "planned (--dry-run: nothing was changed)",
        GuidedResult::Failed => "failed (nothing was changed in the databases)",
        GuidedResult::Stopped => "stopped part-way (see the steps above for what was done)",
    }
}

/// `#  STEP  STATE  DETAIL`.
pub fn steps_table(steps: &[Step], style: &Style) -> String {
    let mut table = style.table(&["#", "STEP", "STATE", "DETAIL"]);
    for (i, step) in steps.iter().enumerate() {
        let state = match step.state {
            StepState::Done | StepState::AlreadyDone => {
                style.paint(step.state.as_str(), Color::Green)
            }
            StepState::Failed => style.paint(step.state.as_str(), Color::Red),
            _ => step.state.as_str().to_string(),
        };
        table.add_row(vec![
            (i + 1).to_string(),
            cell(&step.description),
            state,
            cell(step.detail.as_deref().unwrap_or("")),
        ]);
    }
    table_text(&table)
}

/// The line on stderr before a step runs: `step 3/6: set the image to …`.
pub fn step_starts(index: usize, total: usize, step: &Step) -> String {
    format!("step {}/{}: {}", index + 1, total, step.description)
}

/// The question before anything changes.
pub fn question(report: &GuidedReport) -> String {
    let undo = report
        .steps
        .iter()
        .filter(|s| {
            matches!(s.kind, StepKind::RollbackMigrations { .. }) && s.state == StepState::Planned
        })
        .count();
    if undo > 0 {
        format!(
            "Roll back migrations in {undo} migration table(s), then set deployment/{} to {}?",
            report.deployment, report.to_image
        )
    } else {
        format!(
            "Set deployment/{} to {}?",
            report.deployment, report.to_image
        )
    }
}
