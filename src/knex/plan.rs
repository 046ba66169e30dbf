//! What moving a migration table from the database's state to another version's files means: the
//! migrations that will run at start-up, and those that must be rolled back first — with the code that
//! applied them — because the other version lacks their files.

use serde::Serialize;

use super::model::{DEFAULT_MIGRATION_TABLE, MigrationRow, MigrationStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TablePlan {
    pub table: String,
    /// Files the target has and the database lacks, in the order Knex will run them at start-up.
    pub upgrade: Vec<String>,
    /// Rows the target has no file for, most recent first: they must be rolled back first.
    pub rollback: Vec<String>,
    /// The `db rollback` commands that undo them.
    pub commands: Vec<String>,
    /// For each of `upgrade`, in the same order: whether its `down()` can undo it (filled in when the
    /// target's files were loaded with Node; empty when they were not checked).
    pub upgrade_checks: Vec<DownCheck>,
}

/// What a migration file's `down` is, as Node loads it (the way Knex's migrator does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DownState {
    /// A function with a body that does something.
    Present,
    /// A function whose body is empty or only comments (`async function down() {}`).
    Empty,
    /// No `down` function exported.
    Missing,
    /// A body that does nothing but throw (`throw new Error('irreversible')`).
    Throws,
    /// The file could not be loaded with `require`.
    Unloadable,
    /// Not checked (Node could not be run where the files are).
    Unchecked,
}

impl DownState {
    /// `Some(false)` when `down()` cannot undo the migration, `None` when that is not known.
    pub fn reversible(self) -> Option<bool> {
        match self {
            DownState::Present => Some(true),
            DownState::Empty | DownState::Missing | DownState::Throws => Some(false),
            DownState::Unloadable | DownState::Unchecked => None,
        }
    }

    /// Why the migration cannot be undone, in words; `None` when it can (or is not known).
    pub fn why_irreversible(self) -> Option<&'static str> {
        match self {
            DownState::Empty => Some("its down() is empty"),
            DownState::Missing => Some("it has no down()"),
            DownState::Throws => Some("its down() only throws"),
            _ => None,
        }
    }
}

/// One migration an upgrade would run, and whether it can be rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownCheck {
    pub name: String,
    /// `false`: `db rollback` could not undo it; `null`: not known.
    pub reversible: Option<bool>,
    pub down: DownState,
}

impl TablePlan {
    /// Fills [`TablePlan::upgrade_checks`] from what `down_of` says of each file to run.
    pub fn check_upgrades(&mut self, down_of: impl Fn(&str) -> DownState) {
        self.upgrade_checks = self
            .upgrade
            .iter()
            .map(|name| {
                let down = down_of(name);
                DownCheck {
                    name: name.clone(),
                    reversible: down.reversible(),
                    down,
                }
            })
            .collect();
    }

    /// The migrations to run that cannot be undone, with why.
    pub fn irreversible(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.upgrade_checks
            .iter()
            .filter_map(|c| c.down.why_irreversible().map(|why| (c.name.as_str(), why)))
    }
}

impl TablePlan {
    pub fn needs_rollback(&self) -> bool {
        !self.rollback.is_empty()
    }
}

/// Plans one table. `rows` in any order; they are taken in id order as Knex does.
pub fn table_plan(
    plugin: &str,
    table: &str,
    rows: &[MigrationRow],
    target_files: &[String],
) -> TablePlan {
    let status = MigrationStatus::new(target_files, rows);
    let mut by_id: Vec<&MigrationRow> = rows.iter().collect();
    by_id.sort_by_key(|r| r.id);
    let missing = |r: &&MigrationRow| status.missing.contains(&r.name);
    let table_flag = if table == DEFAULT_MIGRATION_TABLE {
        String::new()
    } else {
        format!(" --table {table}")
    };
    let command = |what: String| {
        format!("kubectl backstage db rollback --plugin {plugin}{table_flag} {what}")
    };
    let commands = match by_id.iter().position(missing) {
        None => Vec::new(),
        // Everything from the first missing row on is missing: one `--to` keeps the row before it.
        Some(first) if first > 0 && by_id[first..].iter().all(missing) => {
            vec![command(format!("--to {}", by_id[first - 1].name))]
        }
        // Otherwise undo exactly the missing ones, most recent first.
        Some(_) => by_id
            .iter()
            .rev()
            .filter(|r| missing(r))
            .map(|r| command(format!("--migration {}", r.name)))
            .collect(),
    };
    TablePlan {
        table: table.to_string(),
        upgrade: status.pending.clone(),
        rollback: status.missing.iter().rev().cloned().collect(),
        commands,
        upgrade_checks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(names: &[&str]) -> Vec<MigrationRow> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| MigrationRow {
                id: i as i32 + 1,
                name: n.to_string(),
                batch: Some(1),
                migration_time: None,
            })
            .collect()
    }

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn upgrades_are_checked_for_a_down_that_undoes_them() {
        let mut plan = table_plan(
            "catalog",
            "knex_migrations",
            &rows(&["1_a.js"]),
            &files(&["1_a.js", "2_b.js", "3_c.js", "4_d.js"]),
        );
        plan.check_upgrades(|name| match name {
            "2_b.js" => DownState::Present,
            "3_c.js" => DownState::Empty,
            _ => DownState::Unloadable,
        });
        let checks: Vec<(&str, Option<bool>)> = plan
            .upgrade_checks
            .iter()
            .map(|c| (c.name.as_str(), c.reversible))
            .collect();
        assert_eq!(
            checks,
            [
                ("2_b.js", Some(true)),
                ("3_c.js", Some(false)),
                ("4_d.js", None)
            ]
        );
        assert_eq!(
            plan.irreversible().collect::<Vec<_>>(),
            [("3_c.js", "its down() is empty")]
        );
    }

    #[test]
    fn downgrade_of_a_tail_is_one_rollback_to() {
        let plan = table_plan(
            "catalog",
            "knex_migrations",
            &rows(&["1_a.js", "2_b.js", "3_c.js", "4_d.js"]),
            &files(&["1_a.js", "2_b.js"]),
        );
        assert_eq!(plan.rollback, ["4_d.js", "3_c.js"]);
        assert_eq!(plan.upgrade, Vec::<String>::new());
        assert_eq!(
            plan.commands,
            ["kubectl backstage db rollback --plugin catalog --to 2_b.js"]
        );
    }

    #[test]
    fn interleaved_or_complete_downgrades_name_each_migration() {
        let plan = table_plan(
            "auth",
            "backstage_backend_tasks__knex_migrations",
            &rows(&["1_a.js", "2_x.js", "3_c.js"]),
            &files(&["1_a.js", "3_c.js", "4_new.js"]),
        );
        assert_eq!(plan.rollback, ["2_x.js"]);
        assert_eq!(plan.upgrade, ["4_new.js"]);
        assert_eq!(
            plan.commands,
            [
                "kubectl backstage db rollback --plugin auth --table backstage_backend_tasks__knex_migrations --migration 2_x.js"
            ]
        );
        let plan = table_plan(
            "auth",
            "knex_migrations",
            &rows(&["1_a.js", "2_b.js"]),
            &files(&[]),
        );
        assert_eq!(
            plan.commands,
            [
                "kubectl backstage db rollback --plugin auth --migration 2_b.js",
                "kubectl backstage db rollback --plugin auth --migration 1_a.js"
            ]
        );
    }

    #[test]
    fn an_upgrade_only_needs_no_rollback() {
        let plan = table_plan(
            "catalog",
            "knex_migrations",
            &rows(&["1_a.js"]),
            &files(&["1_a.js", "2_b.js"]),
        );
        assert!(!plan.needs_rollback());
        assert_eq!(plan.upgrade, ["2_b.js"]);
        assert!(plan.commands.is_empty());
    }
}
