//! Snapshots of what operators read: `--help` texts and the table output of `health`, `events` and `version`
//! against the incident fixtures. Ages are filtered (they depend on the second the test runs) and
//! column padding is collapsed, so a snapshot changes only when the content does.

#[path = "support/flux_rig.rs"]
mod flux_rig;
#[path = "support/rig.rs"]
mod rig;

use backstage_testkit::INCIDENT_PODS as POD_NAMES;
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
    insta::assert_snapshot!("help_verify", help(&["verify"]));
    insta::assert_snapshot!("help_version", help(&["version"]));
    insta::assert_snapshot!("help_upgrade", help(&["upgrade"]));
    insta::assert_snapshot!("help_rollback", help(&["rollback"]));
    insta::assert_snapshot!("help_report", help(&["report"]));
}

/// `version` on the incident: the workloads mid-rollout (the pods cannot be exec'd into here, so the
/// packages are left out with a note), plain and wide.
#[test]
fn version_tables() {
    let rig = Rig::incident();
    let (code, out, err) = run(rig.plugin().arg("version"));
    assert_eq!(code, 0);
    assert!(
        err.starts_with("note: not showing the Backstage release and packages: exec into pod "),
        "{err}"
    );
    insta::assert_snapshot!("version_incident", out);
    let (code, out, _) = run(rig.plugin().args(["version", "-o", "wide"]));
    assert_eq!(code, 0);
    insta::assert_snapshot!("version_incident_wide", out);
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

/// `health` and `version` of the incident when Flux manages it (`tests/fixtures/flux.yaml`): the
/// "Managed by Flux" and "Image automation" lines between the workloads and the rest.
#[test]
fn health_and_version_when_flux_manages_the_namespace() {
    let rig = flux_rig::flux_rig(&[]);
    let (code, out, _) = run(rig.plugin().arg("health"));
    assert_eq!(code, 1);
    insta::assert_snapshot!("health_flux", stable(&out));
    let (code, out, _) = run(rig.plugin().arg("version"));
    assert_eq!(code, 0);
    insta::assert_snapshot!("version_flux", out);
}

/// Backends that run on after a plugin failed to start, diagnosed from their current logs (captured
/// from a real Backstage backend): one stuck not ready, one ready with the scheduler's lock held.
#[test]
fn health_of_backends_whose_plugin_failed_to_start() {
    let rig = Rig::incident();
    for (pod, ready, log) in [
        (
            "backstage-55d8c9f7b6-stk01",
            false,
            "corrupt.production.log",
        ),
        (
            "backstage-55d8c9f7b6-rdy01",
            true,
            "scheduler-locked.text.log",
        ),
    ] {
        rig.server.apply(rig::backend_pod("stuck", pod, ready));
        rig.server
            .set_log("stuck", pod, "backstage", false, &rig::captured_log(log));
    }
    let (code, out, _) = run(rig.plugin().args(["health", "-n", "stuck"]));
    assert_eq!(code, 1);
    insta::assert_snapshot!("health_plugin_failed_to_start", stable(&out));
}

#[test]
fn health_of_two_environments_in_one_table() {
    let rig = Rig::incident();
    let config = rig.path("config.yaml");
    rig::write(
        &config,
        "environments:\n  ptlsbox: {namespace: backstage-staging}\n  ptl: {namespace: backstage}\n",
    );
    let (code, out, _) = run(rig.plugin().env("KUBECTL_BACKSTAGE_CONFIG", &config).args([
        "health",
        "-e",
        "ptlsbox,ptl",
    ]));
    assert_eq!(code, 1);
    insta::assert_snapshot!("health_two_environments", stable(&out));
}

/// Runs the plugin with its stdout on a real terminal of `columns` columns (a pseudo-terminal made by
/// util-linux `script`), colour off. Returns the exit code and what the terminal received.
fn on_terminal(rig: &Rig, columns: u16, args: &[&str]) -> (i32, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let binary = assert_cmd::cargo::cargo_bin("kubectl-backstage");
    let command = format!(
        "stty cols {columns} rows 60; exec {} {}",
        quote(&binary.to_string_lossy()),
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", rig.home())
        .env("KUBECONFIG", &rig.kubeconfig)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux script runs");
    let text = String::from_utf8(out.stdout).unwrap().replace('\r', "");
    (out.status.code().unwrap_or(-1), text)
}

/// Every name appears whole on one line of `text`.
fn assert_whole(text: &str, names: &[&str]) {
    for name in names {
        assert!(
            text.lines().any(|l| l.contains(name)),
            "{name} is wrapped or cut:\n{text}"
        );
    }
}

const WORKLOADS: [&str; 4] = [
    "deployment/backstage",
    "deployment/backstage-pr-1234",
    "deployment/backstage-worker",
    "statefulset/backstage-postgresql",
];

#[test]
fn tables_on_a_terminal_of_80_and_120_columns_never_wrap_names() {
    let rig = Rig::incident();
    for columns in [80, 120] {
        let (code, out) = on_terminal(&rig, columns, &["health"]);
        assert_eq!(code, 1, "{out}");
        assert_whole(&out, &POD_NAMES);
        assert_whole(&out, &WORKLOADS);
        insta::assert_snapshot!(format!("health_terminal_{columns}"), stable(&out));

        let (code, out) = on_terminal(&rig, columns, &["events", "--types", "Warning"]);
        assert_eq!(code, 0, "{out}");
        assert_whole(
            &out,
            &[
                "pod/backstage-pr-1234-5b7c9d8f6d-wq9rt",
                "pod/backstage-worker-8f7b6c5d4-r7tjh",
                "pod/backstage-6c9f8d7b54-k4m2x",
                "deployment/backstage",
            ],
        );
        insta::assert_snapshot!(format!("events_terminal_{columns}"), stable(&out));

        // Short names leave room at 120 columns, so the message wraps there, and only the message.
        let (code, out) = on_terminal(
            &rig,
            columns,
            &[
                "events",
                "--types",
                "Warning",
                "--for",
                "pod/backstage-6c9f8d7b54-q8zvn",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert_whole(&out, &["pod/backstage-6c9f8d7b54-q8zvn"]);
        if columns == 120 {
            assert!(out.lines().count() > 2, "the message wraps: {out}");
            for line in out.lines() {
                assert!(line.chars().count() <= 120, "too long: {line:?}");
            }
        }
        insta::assert_snapshot!(format!("events_for_pod_terminal_{columns}"), stable(&out));
    }
}
