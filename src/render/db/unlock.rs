//! The text of `db unlock`: the locks to release before the question, and what was released after.

use super::lock_word;
use crate::model::db::UnlockReport;
use crate::render::cell;

/// When no lock of the plugin (or of the named table) blocks migrations.
pub fn nothing_to_unlock(plugin: &str, table: Option<&str>) -> String {
    match table {
        Some(table) => format!(
            "The migration lock of plugin {} table {} is not held; nothing changed.\n",
            cell(plugin),
            cell(table)
        ),
        None => format!(
            "No migration lock of plugin {} was held; nothing changed.\n",
            cell(plugin)
        ),
    }
}

/// The plan: each lock to release and its state.
pub fn unlock_plan(report: &UnlockReport) -> String {
    let count = report.plan.len();
    let mut out = format!(
        "Release {} of plugin {} ({}):\n",
        if count == 1 {
            "the migration lock".to_string()
        } else {
            format!("{count} migration locks")
        },
        cell(&report.plugin),
        cell(&report.database)
    );
    for entry in &report.plan {
        out.push_str(&format!(
            "  {} ({}, {})\n",
            cell(&entry.table),
            cell(&entry.lock_table),
            lock_word(&entry.state)
        ));
    }
    if report.dry_run {
        out.push_str("Dry run: nothing was changed.\n");
    }
    out
}

/// The question before the locks are released.
pub fn unlock_question(report: &UnlockReport) -> String {
    match report.plan.len() {
        1 => "Release the lock?".to_string(),
        count => format!("Release {count} locks?"),
    }
}

/// One line per lock: released, left alone (freed meanwhile), or not released.
pub fn unlock_done(report: &UnlockReport) -> String {
    let plugin = cell(&report.plugin);
    let mut out = String::new();
    for r in &report.released {
        out.push_str(&format!(
            "Released the lock of {plugin} {} ({}, was {}).\n",
            cell(&r.table),
            cell(&r.lock_table),
            lock_word(&r.was)
        ));
    }
    for e in &report.already_free {
        out.push_str(&format!(
            "Left the lock of {plugin} {} alone: another session freed it first ({}, now {}).\n",
            cell(&e.table),
            cell(&e.lock_table),
            lock_word(&e.state)
        ));
    }
    for e in &report.not_released {
        out.push_str(&format!(
            "NOT released: the lock of {plugin} {} ({}, still {}).\n",
            cell(&e.table),
            cell(&e.lock_table),
            lock_word(&e.state)
        ));
    }
    out
}

/// The error line of an unlock that released some locks and then failed (`cause`).
pub fn unlock_stopped(report: &UnlockReport, cause: &str) -> String {
    let names = |entries: &mut dyn Iterator<Item = &String>| {
        entries.map(String::as_str).collect::<Vec<_>>().join(", ")
    };
    format!(
        "the unlock stopped part-way ({cause}): released {}, not released {}",
        names(&mut report.released.iter().map(|r| &r.table)),
        names(&mut report.not_released.iter().map(|r| &r.table))
    )
}
