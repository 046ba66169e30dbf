//! `health` against the fake API server holding a Backstage namespace mid-incident, and against kubectl.

#[path = "support/rig.rs"]
mod rig;

use std::time::{Duration, Instant};

use backstage_testkit::{Expiry, INCIDENT_PODS as PODS, RecordedRequest};
use rig::{Rig, backend_pod, captured_log, json, run, stdout_of};
use serde_json::{Value, json};

fn health_json(rig: &Rig, args: &[&str]) -> (i32, Value) {
    let (code, out, err) = run(rig.plugin().arg("health").args(args).args(["-o", "json"]));
    assert!(code == 0 || code == 1, "exit {code}: {err}");
    (code, json(&out))
}

#[test]
fn incident_pods_workloads_and_findings() {
    let rig = Rig::incident();
    let (code, report) = health_json(&rig, &[]);
    assert_eq!(code, 1, "an unhealthy namespace exits 1");
    assert_eq!(report["kind"], "HealthReport");
    assert_eq!(report["namespace"], "backstage");
    assert_eq!(report["context"], "fake");
    assert_eq!(report["healthy"], false);

    let pods: Vec<(String, String, String, i64)> = report["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["ready"].as_str().unwrap().into(),
                p["status"].as_str().unwrap().into(),
                p["restarts"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, i64)> = [
        (PODS[0], "1/1", "Running", 0),
        (PODS[1], "1/1", "Running", 1),
        (PODS[2], "0/1", "CrashLoopBackOff", 5),
        (PODS[3], "1/1", "Running", 0),
        (PODS[4], "0/1", "ImagePullBackOff", 0),
        (PODS[5], "1/1", "Running", 0),
        (PODS[6], "0/1", "CrashLoopBackOff", 3),
    ]
    .iter()
    .map(|(n, r, s, c)| (n.to_string(), r.to_string(), s.to_string(), *c))
    .collect();
    assert_eq!(pods, want);
    assert_eq!(report["pods"][2]["imageTag"], "prod-5f3c2a1-20261122110000");
    assert_eq!(report["pods"][0]["imageTag"], "prod-1a2b3c4-20261101090000");

    let workloads: Vec<(String, String, i64, i64, i64, i64, bool)> = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["kind"].as_str().unwrap().into(),
                w["name"].as_str().unwrap().into(),
                w["desired"].as_i64().unwrap(),
                w["updated"].as_i64().unwrap(),
                w["ready"].as_i64().unwrap(),
                w["available"].as_i64().unwrap(),
                w["rolloutComplete"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        workloads,
        vec![
            ("Deployment".into(), "backstage".into(), 2, 1, 2, 2, false),
            (
                "Deployment".into(),
                "backstage-pr-1234".into(),
                1,
                1,
                0,
                0,
                false
            ),
            (
                "Deployment".into(),
                "backstage-worker".into(),
                1,
                1,
                1,
                1,
                false
            ),
            (
                "StatefulSet".into(),
                "backstage-postgresql".into(),
                1,
                1,
                1,
                1,
                true
            ),
        ]
    );

    let findings = report["findings"].as_array().unwrap();
    let summary: Vec<(String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().into(),
                f["object"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("error".into(), "deployment/backstage-pr-1234".into()),
            ("error".into(), format!("pod/{}", PODS[2])),
            ("error".into(), format!("pod/{}", PODS[4])),
            ("error".into(), format!("pod/{}", PODS[6])),
            ("warning".into(), "deployment/backstage".into()),
            ("warning".into(), "deployment/backstage-worker".into()),
            ("warning".into(), format!("pod/{}", PODS[1])),
        ]
    );
    // The crash is diagnosed from the previous log: the corrupt migration directory of catalog.
    let crash = &findings[1];
    assert_eq!(
        crash["diagnosis"],
        json!({"kind": "corruptMigrationDirectory", "plugin": "catalog",
               "missingFiles": ["20241003170511_alter_target_in_locations.js", "20250102120000_refresh_state_index.js"]})
    );
    assert!(
        crash["hint"]
            .as_str()
            .unwrap()
            .contains("kubectl backstage db rollback --plugin catalog"),
        "{crash}"
    );
    // A crash-looping pod cannot be read, but its image can be, in a preflight pod.
    assert_eq!(
        crash["hint"],
        "the database is ahead of this image: see what must be undone with `kubectl backstage db plan --to image:hmctspublic.azurecr.io/backstage/backstage:prod-5f3c2a1-20261122110000`, then undo it with the newer code: `kubectl backstage db rollback --plugin catalog --to <last migration this image has>`"
    );
    // The worker's previous log says the migration lock is held.
    assert_eq!(
        findings[3]["diagnosis"],
        json!({"kind": "migrationLocked", "plugin": "scaffolder", "table": null})
    );
    assert!(
        findings[3]["hint"]
            .as_str()
            .unwrap()
            .contains("kubectl backstage db unlock --plugin scaffolder")
    );
    assert!(findings[2]["message"].as_str().unwrap().contains("cannot pull image hmctspublic.azurecr.io/backstage/backstage:pr-1234-9e8d7c6 (ImagePullBackOff)"));
    assert!(
        findings[6]["message"]
            .as_str()
            .unwrap()
            .starts_with("container backstage was OOMKilled")
    );

    // Previous logs were read only for the crashed containers, bounded (the last lines); current
    // logs only for the running backend containers (their start, bounded).
    let logs: Vec<_> = rig
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/log"))
        .collect();
    let mut previous: Vec<_> = logs
        .iter()
        .filter(|r| r.param("previous").as_deref() == Some("true"))
        .map(|r| r.path.split('/').nth(6).unwrap().to_string())
        .collect();
    previous.sort();
    assert_eq!(previous, vec![PODS[2].to_string(), PODS[6].to_string()]);
    let mut current: Vec<_> = logs
        .iter()
        .filter(|r| r.param("previous").is_none())
        .map(|r| r.path.split('/').nth(6).unwrap().to_string())
        .collect();
    current.sort();
    assert_eq!(
        current,
        vec![
            PODS[0].to_string(),
            PODS[1].to_string(),
            PODS[5].to_string()
        ]
    );
    for r in &logs {
        assert!(r.param("limitBytes").is_some(), "{r:?}");
        assert_eq!(
            r.param("tailLines").is_some(),
            r.param("previous").is_some(),
            "{r:?}"
        );
    }
}

#[test]
fn table_and_wide_show_the_spec_columns() {
    let rig = Rig::incident();
    let (code, out, _) = run(rig.plugin().arg("health"));
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    let header = |start: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(start))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        header("WORKLOAD"),
        "WORKLOAD DESIRED UPDATED READY AVAILABLE ROLLOUT IMAGE"
    );
    assert_eq!(header("POD"), "POD READY STATUS RESTARTS AGE IMAGE");
    let crash = lines.iter().find(|l| l.starts_with(PODS[2])).unwrap();
    let cols: Vec<&str> = crash.split_whitespace().collect();
    assert_eq!(&cols[..4], &[PODS[2], "0/1", "CrashLoopBackOff", "5"]);
    assert!(
        cols[4].starts_with('(') && cols[5] == "ago)",
        "restarts show how long ago: {crash}"
    );
    assert!(out.contains("FINDINGS\n"));
    assert!(out.contains("the migration directory of plugin catalog is corrupt"));
    assert!(
        !out.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
    assert!(
        out.lines().all(|l| l == l.trim_end()),
        "no trailing padding"
    );

    let (_, wide, _) = run(rig.plugin().args(["health", "-o", "wide"]));
    let pod_header = wide
        .lines()
        .find(|l| l.starts_with("POD"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(pod_header, "POD READY STATUS RESTARTS AGE IMAGE NODE IP");
    assert!(
        wide.contains("hmctspublic.azurecr.io/backstage/backstage:pr-1234-9e8d7c6"),
        "wide shows whole images"
    );
}

#[test]
fn yaml_is_the_same_document_as_json() {
    let rig = Rig::incident();
    let (_, j, _) = run(rig.plugin().args(["health", "-o", "json"]));
    let (_, y, _) = run(rig.plugin().args(["health", "-o", "yaml"]));
    let from_yaml: Value = serde_norway::from_str(&y).unwrap();
    // Two runs: a finding's "last 62s ago" may read "63s ago" the second time.
    assert_eq!(
        rig::without_relative_ages(from_yaml),
        rig::without_relative_ages(json(&j))
    );
}

#[test]
fn pods_match_kubectl_custom_columns() {
    let rig = Rig::incident();
    let mut kubectl = rig.kubectl();
    kubectl.args(["get", "pods", "--no-headers", "-o", "custom-columns=NAME:.metadata.name,RESTARTS:.status.containerStatuses[*].restartCount,READY:.status.containerStatuses[*].ready"]);
    let theirs: Vec<(String, i64, usize)> = stdout_of(kubectl)
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            let restarts = c[1].split(',').map(|n| n.parse::<i64>().unwrap()).sum();
            let ready = c[2].split(',').filter(|r| *r == "true").count();
            (c[0].to_string(), restarts, ready)
        })
        .collect();
    let (_, report) = health_json(&rig, &[]);
    let ours: Vec<(String, i64, usize)> = report["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["restarts"].as_i64().unwrap(),
                p["readyContainers"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let mut theirs_sorted = theirs;
    theirs_sorted.sort();
    assert_eq!(ours, theirs_sorted);
}

#[test]
fn selector_and_namespace_narrow_the_view_and_a_healthy_view_exits_0() {
    let rig = Rig::incident();
    let (code, report) = health_json(&rig, &["-l", "app.kubernetes.io/name=postgresql"]);
    assert_eq!(code, 0);
    assert_eq!(report["healthy"], true);
    let names: Vec<&str> = report["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["backstage-postgresql-0"]);
    assert_eq!(report["workloads"].as_array().unwrap().len(), 1);
    let selectors: Vec<_> = rig
        .server
        .requests()
        .iter()
        .filter_map(|r| r.param("labelSelector"))
        .collect();
    assert_eq!(
        selectors.len(),
        3,
        "pods, deployments and statefulsets are listed with the selector"
    );

    let (code, out, _) = run(rig.plugin().args(["health", "-n", "backstage-staging"]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("backstage-5f6d7c8b9a-h2kxm"));
    assert!(out.contains("Healthy: every rollout is complete and every pod is ready."));
}

#[test]
fn wait_times_out_with_exit_1_and_says_what_is_wrong() {
    let rig = Rig::incident();
    let (code, out, err) = run(rig.plugin().args(["health", "--wait", "--timeout", "2s"]));
    assert_eq!(code, 1);
    assert_eq!(
        err, "error: timed out after 2s waiting for the rollout: 7 problems remain (see above)\n",
        "one line with a count, not every finding again"
    );
    assert!(out.contains("FINDINGS"), "the report is printed: {out}");
    assert!(
        out.contains("pod/backstage-7d9f6b5c8-x2x7p"),
        "the findings are above the line: {out}"
    );
    assert!(
        rig.server.requests().iter().any(|r| r.is_watch()),
        "--wait watches"
    );
}

fn staging_deployment_rolling(rig: &Rig, done: bool) {
    let mut d = rig
        .server
        .get("Deployment", "backstage-staging", "backstage")
        .unwrap();
    d["metadata"]["generation"] = json!(5);
    d["status"]["observedGeneration"] = json!(5);
    d["status"]["updatedReplicas"] = json!(if done { 1 } else { 0 });
    d["status"]["replicas"] = json!(1);
    rig.server.apply(d);
}

#[test]
fn wait_returns_0_once_the_rollout_completes() {
    let rig = Rig::incident();
    staging_deployment_rolling(&rig, false);
    let (code, _, _) = run(rig.plugin().args(["health", "-n", "backstage-staging"]));
    assert_eq!(code, 1, "rolling out is not yet healthy");

    let mut child = rig
        .plugin_process()
        .args([
            "health",
            "-n",
            "backstage-staging",
            "--wait",
            "--timeout",
            "60s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    rig::kill_after(&child, Duration::from_secs(60));
    // Let it list and start watching, then finish the rollout.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rig
        .server
        .requests()
        .iter()
        .any(|r| r.is_watch() && r.path.ends_with("/deployments"))
    {
        assert!(Instant::now() < deadline, "no watch request");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting while the rollout is incomplete"
    );
    staging_deployment_rolling(&rig, true);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Healthy"));
}

#[test]
fn watch_redraws_when_a_pod_changes() {
    let rig = Rig::incident();
    let (mut child, mut lines) = rig.watch(
        &["health", "-n", "backstage-staging", "--watch", "-o", "json"],
        Duration::from_secs(60),
    );
    let first = json(&lines.next().unwrap().unwrap());
    assert_eq!(first["pods"][0]["status"], "Running");
    let lists_before = rig
        .server
        .requests()
        .iter()
        .filter(|r| !r.is_watch() && r.method == "GET" && !r.path.ends_with("/log"))
        .count();

    let mut pod = rig
        .server
        .get("Pod", "backstage-staging", "backstage-5f6d7c8b9a-h2kxm")
        .unwrap();
    pod["status"]["containerStatuses"][0]["ready"] = json!(false);
    pod["status"]["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    rig.server.apply(pod);
    let second = json(&lines.next().unwrap().unwrap());
    assert_eq!(second["pods"][0]["status"], "CrashLoopBackOff");
    assert_eq!(second["healthy"], false);
    child.kill().unwrap();
    let _ = child.wait();
    let lists_after = rig
        .server
        .requests()
        .iter()
        .filter(|r| !r.is_watch() && r.method == "GET" && !r.path.ends_with("/log"))
        .count();
    assert_eq!(lists_before, lists_after, "a watch, not polling");
}

/// Expires every resourceVersion (`how`) and waits until the plugin has watched pods again from a
/// version the server still has: it had to list again. Returns the requests made meanwhile.
fn expire_and_wait_for_the_new_watch(rig: &Rig, how: Expiry) -> Vec<RecordedRequest> {
    let before = rig.server.requests().len();
    rig.server.expire_resource_versions(how);
    let fresh = rig.server.resource_version().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let since: Vec<_> = rig.server.requests().split_off(before);
        if since.iter().any(|r| {
            r.is_watch()
                && r.path.ends_with("/pods")
                && r.param("resourceVersion").as_deref() == Some(&fresh)
        }) {
            return since;
        }
        assert!(Instant::now() < deadline, "no new watch: {since:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads JSON lines until one satisfies `wanted` (the plugin may redraw in between).
fn next_matching(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..20 {
        let report = json(&lines.next().expect("the plugin goes on").unwrap());
        if wanted(&report) {
            return report;
        }
    }
    panic!("no report showed the change");
}

#[test]
fn watch_lists_again_and_goes_on_when_the_resource_version_expires() {
    let rig = Rig::incident();
    let (mut child, mut lines) = rig.watch(
        &["health", "-n", "backstage-staging", "--watch", "-o", "json"],
        Duration::from_secs(90),
    );
    let first = json(&lines.next().unwrap().unwrap());
    assert_eq!(first["pods"][0]["status"], "Running");
    let name = "backstage-5f6d7c8b9a-h2kxm";

    // As kube-apiserver does: an ERROR event with a 410 Status on the open watches.
    let since = expire_and_wait_for_the_new_watch(&rig, Expiry::WatchEvent);
    assert!(
        since
            .iter()
            .any(|r| !r.is_watch() && r.path.ends_with("/pods") && r.status == 200),
        "listed pods again: {since:#?}"
    );
    let mut pod = rig.server.get("Pod", "backstage-staging", name).unwrap();
    pod["status"]["containerStatuses"][0]["ready"] = json!(false);
    pod["status"]["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    rig.server.apply(pod);
    let seen = next_matching(&mut lines, |r| r["pods"][0]["status"] == "CrashLoopBackOff");
    assert_eq!(seen["healthy"], false);

    // Or as an HTTP 410 on the next watch request.
    let since = expire_and_wait_for_the_new_watch(&rig, Expiry::HttpStatus);
    assert!(
        since
            .iter()
            .any(|r| r.is_watch() && r.path.ends_with("/pods") && r.status == 410),
        "the watch was refused with 410: {since:#?}"
    );
    rig.server.delete("Pod", "backstage-staging", name);
    next_matching(&mut lines, |r| {
        r["pods"].as_array().is_some_and(|p| p.is_empty())
    });

    assert!(child.try_wait().unwrap().is_none(), "still watching");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "nothing on stderr"
    );
}

#[test]
fn health_through_kubectl_plugin_lookup_prints_the_same_report() {
    let rig = Rig::incident();
    let mut kubectl = rig.kubectl();
    let bin_dir = assert_cmd::cargo::cargo_bin("kubectl-backstage")
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    kubectl.env("PATH", path).args([
        "backstage",
        "health",
        "-o",
        "json",
        "-l",
        "app.kubernetes.io/name=postgresql",
    ]);
    let via_kubectl = json(&stdout_of(kubectl));
    let (_, direct) = health_json(&rig, &["-l", "app.kubernetes.io/name=postgresql"]);
    assert_eq!(via_kubectl, direct);
}

/// A finding as (severity, object, message, hint).
type FindingRow = (String, String, String, String);

/// The findings of `health -n ns -o json`, with the exit code and the document.
fn findings_of(rig: &Rig, ns: &str) -> (i32, Vec<FindingRow>, Value) {
    let (code, doc) = health_json(rig, &["-n", ns]);
    let findings = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
                f["hint"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (code, findings, doc)
}

#[test]
fn a_running_backend_whose_plugin_failed_to_start_is_diagnosed_from_its_current_log() {
    let rig = Rig::incident();
    let stuck = "backstage-55d8c9f7b6-stk01";
    let corrupt_message = "container backstage is running but not ready, and will not become ready: the migration directory of plugin catalog is corrupt: the database has migrations this image lacks (20270105120000_entities_relations_index.js, 20270110090000_refresh_state_keys.js)";
    let corrupt_hint = format!(
        "the database is ahead of this image: see what must be undone with `kubectl backstage db plan --to pod:{stuck}`, undo it with the newer code: `kubectl backstage db rollback --plugin catalog --to <last migration this image has>`, then restart the pod (the backend does not retry): `kubectl delete pod {stuck}`"
    );
    let locked_message = "container backstage is running but not ready, and will not become ready: the Knex migration lock of plugin catalog is held";
    let locked_hint = format!(
        "if no other pod is migrating, release the lock: `kubectl backstage db unlock --plugin catalog --force`, then restart the pod (the backend does not retry): `kubectl delete pod {stuck}`"
    );
    // The key store of the plugin's `core.auth` service: the plugin and the table are named.
    let keys_message = "container backstage is running but not ready, and will not become ready: the Knex migration lock of table backstage_backend_public_keys__knex_migrations of plugin catalog is held";
    let keys_hint = format!(
        "if no other pod is migrating, release it: `kubectl backstage db unlock --plugin catalog --table backstage_backend_public_keys__knex_migrations --force`, then restart the pod (the backend does not retry): `kubectl delete pod {stuck}`"
    );
    for (i, (log, message, hint, diagnosis)) in [
        ("corrupt.text.log", corrupt_message, &corrupt_hint, json!({"kind": "corruptMigrationDirectory", "plugin": "catalog", "missingFiles": ["20270105120000_entities_relations_index.js", "20270110090000_refresh_state_keys.js"]})),
        ("corrupt.production.log", corrupt_message, &corrupt_hint, json!({"kind": "corruptMigrationDirectory", "plugin": "catalog", "missingFiles": ["20270105120000_entities_relations_index.js", "20270110090000_refresh_state_keys.js"]})),
        ("locked.text.log", locked_message, &locked_hint, json!({"kind": "migrationLocked", "plugin": "catalog", "table": null})),
        ("locked.production.log", locked_message, &locked_hint, json!({"kind": "migrationLocked", "plugin": "catalog", "table": null})),
        ("public-keys-locked.text.log", keys_message, &keys_hint, json!({"kind": "migrationLocked", "plugin": "catalog", "table": "backstage_backend_public_keys__knex_migrations"})),
        ("public-keys-locked.production.log", keys_message, &keys_hint, json!({"kind": "migrationLocked", "plugin": "catalog", "table": "backstage_backend_public_keys__knex_migrations"})),
    ]
    .into_iter()
    .enumerate()
    {
        let ns = format!("stuck-{i}");
        rig.server.apply(backend_pod(&ns, stuck, false));
        rig.server
            .set_log(&ns, stuck, "backstage", false, &captured_log(log));
        let (code, findings, doc) = findings_of(&rig, &ns);
        assert_eq!(code, 1, "{log}");
        assert_eq!(
            findings,
            vec![(
                "error".to_string(),
                format!("pod/{stuck}"),
                message.to_string(),
                hint.to_string()
            )],
            "{log}"
        );
        assert_eq!(doc["findings"][0]["diagnosis"], diagnosis, "{log}");
    }
    // Read from the start of the current run, bounded; never the previous run of a pod that has none.
    let reads: Vec<RecordedRequest> = rig
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(&format!("/pods/{stuck}/log")))
        .collect();
    assert_eq!(reads.len(), 6);
    for r in &reads {
        assert_eq!(r.param("previous"), None, "{r:?}");
        assert_eq!(r.param("tailLines"), None, "{r:?}");
        assert_eq!(r.param("limitBytes").as_deref(), Some("262144"), "{r:?}");
        assert_eq!(r.param("container").as_deref(), Some("backstage"));
    }

    // kubectl, the peer, reads the same text from the fake API server: the whole log, and with
    // --limit-bytes the start of it, as the plugin reads it.
    let log = captured_log("locked.production.log");
    let out = rig
        .kubectl()
        .args(["logs", stuck, "-n", "stuck-3", "-c", "backstage"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), log);
    let out = rig
        .kubectl()
        .args(["logs", stuck, "-n", "stuck-3", "--limit-bytes", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, log.as_bytes()[..1000]);
}

#[test]
fn a_ready_backend_whose_scheduler_lock_is_held_is_an_error() {
    let rig = Rig::incident();
    let pod = "backstage-55d8c9f7b6-rdy01";
    for (i, log) in [
        "scheduler-locked.text.log",
        "scheduler-locked.production.log",
    ]
    .into_iter()
    .enumerate()
    {
        let ns = format!("degraded-{i}");
        rig.server.apply(backend_pod(&ns, pod, true));
        rig.server
            .set_log(&ns, pod, "backstage", false, &captured_log(log));
        let (code, findings, doc) = findings_of(&rig, &ns);
        assert_eq!(code, 1, "{log}");
        assert_eq!(
            findings,
            vec![(
                "error".to_string(),
                format!("pod/{pod}"),
                "container backstage is ready, but its log shows a start-up failure: the Knex migration lock of the scheduler's table backstage_backend_tasks__knex_migrations is held".to_string(),
                format!("see which plugin database holds it with `kubectl backstage db status`; if no other pod is migrating, release it: `kubectl backstage db unlock --plugin <plugin> --table backstage_backend_tasks__knex_migrations`, then restart the pod (the backend does not retry): `kubectl delete pod {pod}`"),
            )],
            "{log}"
        );
        assert_eq!(
            doc["findings"][0]["diagnosis"],
            json!({"kind": "migrationLocked", "plugin": null, "table": "backstage_backend_tasks__knex_migrations"})
        );
    }
    // A ready backend's log is read with a smaller bound.
    let limits: Vec<Option<String>> = rig
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(&format!("/pods/{pod}/log")))
        .map(|r| r.param("limitBytes"))
        .collect();
    assert_eq!(limits, vec![Some("131072".to_string()); 2]);

    // The same pod with a clean log is healthy: exit 0, nothing found.
    rig.server.apply(backend_pod("clean", pod, true));
    rig.server.set_log(
        "clean",
        pod,
        "backstage",
        false,
        "{\"level\":\"info\",\"message\":\"Plugin initialization complete, newly initialized: 'app', 'auth', 'catalog'\",\"service\":\"backstage\"}\n",
    );
    let (code, findings, _) = findings_of(&rig, "clean");
    assert_eq!((code, findings), (0, vec![]));
}

#[test]
fn watch_reads_a_current_log_once_per_run_and_again_when_readiness_changes() {
    let rig = Rig::incident();
    let pod = "backstage-55d8c9f7b6-wch01";
    rig.server.apply(backend_pod("watched", pod, false));
    rig.server.set_log(
        "watched",
        pod,
        "backstage",
        false,
        &captured_log("locked.production.log"),
    );
    let log_reads = || {
        rig.server
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(&format!("/pods/{pod}/log")))
            .count()
    };
    let (mut child, mut lines) = rig.watch(
        &["health", "-n", "watched", "--watch", "-o", "json"],
        Duration::from_secs(60),
    );
    let first = json(&lines.next().unwrap().unwrap());
    assert_eq!(first["findings"][0]["diagnosis"]["kind"], "migrationLocked");
    assert_eq!(log_reads(), 1);

    // A change that is not a new run nor a readiness change: drawn again, the log not read again.
    let mut changed = rig.server.get("Pod", "watched", pod).unwrap();
    changed["metadata"]["labels"]["touched"] = json!("yes");
    rig.server.apply(changed.clone());
    let second = json(&lines.next().unwrap().unwrap());
    assert_eq!(second["findings"], first["findings"]);
    assert_eq!(log_reads(), 1);

    // Readiness changes: read again (now the ready bound), and the finding follows.
    changed["status"]["containerStatuses"][0]["ready"] = json!(true);
    changed["status"]["conditions"][0]["status"] = json!("True");
    rig.server.apply(changed);
    let third = json(&lines.next().unwrap().unwrap());
    assert_eq!(
        third["findings"][0]["message"],
        "container backstage is ready, but its log shows a start-up failure: the Knex migration lock of plugin catalog is held"
    );
    assert_eq!(log_reads(), 2);
    child.kill().unwrap();
    let _ = child.wait();
}

// ---- Several environments at once (`-e a,b`, `--all-envs`) ----

/// Two fake API servers (the sandbox's and prod's clusters) in one merged kubeconfig, a third context
/// whose API server is not there, and a config file with the three environments.
struct Environments {
    sandbox: Rig,
    prod: backstage_testkit::FakeApiServer,
    /// An API server that forbids listing pods (403).
    _audit: backstage_testkit::FakeApiServer,
    kubeconfig: String,
    config: std::path::PathBuf,
}

impl Environments {
    fn start() -> Environments {
        let sandbox = Rig::incident();
        let prod = backstage_testkit::FakeApiServer::start(backstage_testkit::ServerOptions {
            tls: true,
            token: Some("prod-token-8d2e".into()),
            ..backstage_testkit::ServerOptions::new(backstage_testkit::Fixtures::incident())
        })
        .unwrap();
        let prod_config = sandbox.path("prod.kubeconfig");
        prod.write_kubeconfig(&prod_config, "prod-aks", None, "prod-token-8d2e")
            .unwrap();
        // A port nothing listens on: bind one, then let it go.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let audit = backstage_testkit::FakeApiServer::start(backstage_testkit::ServerOptions {
            forbidden: vec![("list".into(), "pods".into())],
            ..backstage_testkit::ServerOptions::new(backstage_testkit::Fixtures::incident())
        })
        .unwrap();
        let audit_config = sandbox.path("audit.kubeconfig");
        audit
            .write_kubeconfig(&audit_config, "audit-aks", None, "audit-token")
            .unwrap();
        let dr_config = sandbox.path("dr.kubeconfig");
        rig::write(
            &dr_config,
            &format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: dr, cluster: {{server: 'https://127.0.0.1:{closed}'}}}}]\ncontexts: [{{name: dr-aks, context: {{cluster: dr, user: dr}}}}]\nusers: [{{name: dr, user: {{token: dr-token}}}}]\n"
            ),
        );
        let kubeconfig = [
            sandbox.kubeconfig.clone(),
            prod_config,
            dr_config,
            audit_config,
        ]
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
        let config = sandbox.path("config.yaml");
        rig::write(
            &config,
            "defaultEnvironment: ptlsbox\nenvironments:\n  ptlsbox: {context: fake, namespace: backstage-staging}\n  ptl: {context: prod-aks, namespace: backstage}\n  dr: {context: dr-aks, namespace: backstage}\n  audit: {context: audit-aks, namespace: backstage}\n",
        );
        Environments {
            sandbox,
            prod,
            _audit: audit,
            kubeconfig,
            config,
        }
    }

    fn plugin(&self) -> assert_cmd::Command {
        let mut cmd = self.sandbox.plugin();
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECTL_BACKSTAGE_CONFIG", &self.config);
        cmd
    }
}

#[test]
fn several_environments_give_one_document_each_equal_to_the_single_environment_run() {
    let envs = Environments::start();
    let (code, out, err) = run(envs
        .plugin()
        .args(["health", "-e", "ptlsbox,ptl", "-o", "json"]));
    assert_eq!(code, 1, "prod is unhealthy: the worst code wins\n{err}");
    assert_eq!(err, "");
    let docs = json(&out);
    let docs = docs.as_array().unwrap();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["environment"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ptlsbox", "ptl"], "in the order asked");
    assert_eq!(
        (
            &docs[0]["context"],
            &docs[0]["namespace"],
            &docs[0]["healthy"]
        ),
        (&json!("fake"), &json!("backstage-staging"), &json!(true))
    );
    assert_eq!(
        (
            &docs[1]["context"],
            &docs[1]["namespace"],
            &docs[1]["healthy"]
        ),
        (&json!("prod-aks"), &json!("backstage"), &json!(false))
    );
    // Each document is the single-environment document with its environment's name added.
    for (doc, name) in docs.iter().zip(["ptlsbox", "ptl"]) {
        let (single_code, single, _) =
            run(envs.plugin().args(["health", "-e", name, "-o", "json"]));
        assert_eq!(single_code, if name == "ptl" { 1 } else { 0 });
        let mut single = json(&single);
        single["environment"] = json!(name);
        assert_eq!(
            rig::without_relative_ages(doc.clone()),
            rig::without_relative_ages(single),
            "{name}"
        );
    }
    // Both clusters were asked, each with its own credentials.
    assert!(
        envs.prod
            .requests()
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/backstage/pods")
    );
    assert!(
        envs.sandbox
            .server
            .requests()
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/backstage-staging/pods")
    );
}

#[test]
fn an_unreachable_environment_is_a_result_not_an_abort_and_exits_2() {
    let envs = Environments::start();
    let (code, out, err) = run(envs.plugin().args(["health", "--all-envs", "-o", "json"]));
    assert_eq!(code, 2, "{err}");
    let docs = json(&out);
    let docs = docs.as_array().unwrap();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["environment"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["audit", "dr", "ptl", "ptlsbox"],
        "every environment, by name"
    );
    // A 403 and a refused connection: each a document that says why, nothing else in it.
    for doc in &docs[..2] {
        assert_eq!(
            doc.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["environment", "error"],
            "{doc}"
        );
    }
    let audit = docs[0]["error"].as_str().unwrap();
    assert_eq!(
        audit,
        "forbidden: cannot list pods in namespace \"backstage\" (context \"audit-aks\"): pods is forbidden: User \"system:serviceaccount:backstage:kubectl-backstage\" cannot list resource \"pods\" in API group \"\" in the namespace \"backstage\""
    );
    let error = docs[1]["error"].as_str().unwrap();
    assert!(
        error.starts_with("cannot reach the API server https://127.0.0.1:")
            && error.contains("(context \"dr-aks\")"),
        "{error}"
    );
    assert_eq!(docs[2]["healthy"], false);
    assert_eq!(docs[3]["healthy"], true);
    // The errors are on stderr too, one line each, and nothing else is.
    assert_eq!(
        err,
        format!("error: environment audit: {audit}\nerror: environment dr: {error}\n")
    );

    // The table: an ENVIRONMENT column in every table, the unreachable environment among the findings.
    let (code, out, _) = run(envs.plugin().args(["health", "--all-envs"]));
    assert_eq!(code, 2);
    let lines: Vec<&str> = out.lines().collect();
    let headers: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("ENVIRONMENT"))
        .collect();
    assert_eq!(headers.len(), 2, "workloads and pods tables:\n{out}");
    assert!(
        headers[0].split_whitespace().nth(1) == Some("WORKLOAD"),
        "{out}"
    );
    assert!(headers[1].split_whitespace().nth(1) == Some("POD"), "{out}");
    let pod_rows: Vec<(&str, &str)> = lines
        .iter()
        .skip_while(|l| !l.starts_with("ENVIRONMENT   POD") && !l.starts_with("ENVIRONMENT  POD"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            (words.next().unwrap(), words.next().unwrap())
        })
        .collect();
    let mut want: Vec<(&str, &str)> = PODS.iter().map(|p| ("ptl", *p)).collect();
    want.push(("ptlsbox", "backstage-5f6d7c8b9a-h2kxm"));
    assert_eq!(pod_rows, want, "{out}");
    let findings = &out[out.find("FINDINGS\n").expect("findings") + "FINDINGS\n".len()..];
    let first: Vec<&str> = findings.lines().take(2).collect();
    assert_eq!(
        first[0],
        format!("error    audit  -  could not check this environment: {audit}")
    );
    assert!(
        first[1].starts_with(
            "error    dr     -  could not check this environment: cannot reach the API server"
        ),
        "{first:?}"
    );
    assert!(
        findings.lines().any(|l| l.starts_with(&format!(
            "error    ptl    pod/{}  container backstage is in CrashLoopBackOff",
            PODS[2]
        ))),
        "{findings}"
    );
    assert!(
        !findings.contains("ptlsbox"),
        "the sandbox is healthy:\n{findings}"
    );

    // -o wide: the same ENVIRONMENT column first, the wide columns after.
    let (code, out, _) = run(envs
        .plugin()
        .args(["health", "-e", "ptlsbox,ptl", "-o", "wide"]));
    assert_eq!(code, 1);
    let headers: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with("ENVIRONMENT"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        headers,
        vec![
            vec![
                "ENVIRONMENT",
                "WORKLOAD",
                "DESIRED",
                "UPDATED",
                "READY",
                "AVAILABLE",
                "ROLLOUT",
                "IMAGE",
                "STATUS"
            ],
            vec![
                "ENVIRONMENT",
                "POD",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IMAGE",
                "NODE",
                "IP"
            ],
        ]
    );
}

#[test]
fn several_environments_are_refused_where_they_do_not_apply() {
    let envs = Environments::start();
    for (args, line) in [
        (
            vec!["events", "-e", "ptlsbox,ptl"],
            "error: events works on one environment at a time; several environments (-e NAME,NAME or --all-envs) work with health, version and verify\n",
        ),
        (
            vec!["db", "status", "--all-envs"],
            "error: db works on one environment at a time; several environments (-e NAME,NAME or --all-envs) work with health, version and verify\n",
        ),
        (
            vec!["health", "-e", "ptlsbox,ptl", "--watch"],
            "error: --watch and --wait work on one environment at a time; run one per environment (-e NAME)\n",
        ),
        (
            vec!["health", "--all-envs", "--wait"],
            "error: --watch and --wait work on one environment at a time; run one per environment (-e NAME)\n",
        ),
        (
            vec!["health", "-e", "ptlsbox,,ptl"],
            "error: -e \"ptlsbox,,ptl\" has an empty environment name (give NAME,NAME…)\n",
        ),
        (
            vec!["health", "-e", "ptlsbox,nope"],
            "error: unknown environment \"nope\"; configured environments: audit, dr, ptl, ptlsbox (see `kubectl backstage env list`)\n",
        ),
        (
            vec!["health", "-e", "ptlsbox,ptl", "--context", "fake"],
            "error: --context cannot be used with several environments: each environment names its own context (set `context` in the config file)\n",
        ),
    ] {
        let (code, out, err) = run(envs.plugin().args(&args));
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (2, "", line),
            "{args:?}"
        );
    }
    // Nothing was asked of either cluster.
    assert!(envs.prod.requests().is_empty());
    assert!(envs.sandbox.server.requests().is_empty());

    let (code, _, err) = run(envs.plugin().args(["health", "--all-envs", "-e", "ptl"]));
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: the argument '--all-envs' cannot be used with"),
        "{err}"
    );

    let empty = envs.sandbox.path("empty.yaml");
    rig::write(&empty, "environments: {}\n");
    let (code, out, err) = run(envs
        .plugin()
        .env("KUBECTL_BACKSTAGE_CONFIG", &empty)
        .args(["health", "--all-envs"]));
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            2,
            "",
            "error: --all-envs: the config file has no environments (see `kubectl backstage env list`)\n"
        )
    );
}
