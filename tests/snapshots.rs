//! Snapshots of what operators read: `--help` texts and the table output of `health` and `events`
//! against the incident fixtures. Ages are filtered (they depend on the second the test runs) and
//! column padding is collapsed, so a snapshot changes only when the content does.

#[path = "support/rig.rs"]
mod rig;

use rig::{Rig, run};

fn stable(text: &str) -> String {
    let ages = regex::Regex::new(r"\b\d+(y|d|h|m|s)(\d+(d|h|m|s))?\b").unwrap();
    let spaces = regex::Regex::new(r" {2,}").unwrap();
    let text = ages.replace_all(text, "<age>");
    spaces.replace_all(&text, "  ").into_owned()
}

fn help(args: &[&str]) -> String {
    let rig = Rig::incident();
    let (code, out, err) = run(rig.plugin().args(args).arg("--help").env("COLUMNS", "100"));
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn help_texts() {
    insta::assert_snapshot!("help", help(&[]));
    insta::assert_snapshot!("help_health", help(&["health"]));
    insta::assert_snapshot!("help_events", help(&["events"]));
    insta::assert_snapshot!("help_db", help(&["db"]));
    insta::assert_snapshot!("help_db_status", help(&["db", "status"]));
    insta::assert_snapshot!("help_db_rollback", help(&["db", "rollback"]));
}

#[test]
fn health_and_events_tables() {
    let rig = Rig::incident();
    let (code, out, _) = run(rig.plugin().arg("health"));
    assert_eq!(code, 1);
    insta::assert_snapshot!("health_incident", stable(&out));
    let (code, out, _) = run(rig.plugin().args(["events", "--types", "Warning"]));
    assert_eq!(code, 0);
    insta::assert_snapshot!("events_warnings", stable(&out));
}
