//! `events` against the fake API server: order by last seen with the fallback chain, filters, paging,
//! watch, and kubectl's own `--sort-by=.lastTimestamp` as the peer.

#[path = "support/rig.rs"]
mod rig;

use std::time::{Duration, Instant};

use backstage_testkit::{Expiry, Fixtures, ServerOptions};
use rig::{Rig, TOKEN, json, run, stdout_of};
use serde_json::{Value, json};

const PR_POD: &str = "pod/backstage-pr-1234-5b7c9d8f6d-wq9rt";
const NEW_POD: &str = "pod/backstage-7d9f6b5c8-x2x7p";
const WORKER_POD: &str = "pod/backstage-worker-8f7b6c5d4-r7tjh";

/// Every event of namespace `backstage` in the fixtures, oldest first by last seen (lastTimestamp, else
/// series.lastObservedTime, else eventTime, else firstTimestamp, else creation), worked out by hand.
const ORDER: [(&str, &str); 32] = [
    ("ScalingReplicaSet", "deployment/backstage-pr-1234"),
    (
        "SuccessfulCreate",
        "replicaset/backstage-pr-1234-5b7c9d8f6d",
    ),
    ("TriggeredScaleUp", PR_POD),
    ("FailedScheduling", PR_POD), // series only
    ("Scheduled", PR_POD),        // eventTime only
    ("ScalingReplicaSet", "deployment/backstage"),
    ("SuccessfulCreate", "replicaset/backstage-7d9f6b5c8"),
    ("ScalingReplicaSet", "deployment/backstage-worker"),
    ("Scheduled", NEW_POD),
    ("SuccessfulCreate", "replicaset/backstage-worker-8f7b6c5d4"),
    ("Pulling", NEW_POD),
    ("FailedScheduling", WORKER_POD),
    ("Pulled", NEW_POD),
    ("Scheduled", WORKER_POD),
    ("Unhealthy", "pod/backstage-6c9f8d7b54-k4m2x"),
    ("RolloutStalled", "deployment/backstage"),
    ("Unhealthy", "pod/backstage-6c9f8d7b54-q8zvn"),
    ("ConfigChanged", "configmap/backstage-app-config"), // creation time only
    ("Pulling", PR_POD),
    ("Failed", PR_POD),
    ("Failed", PR_POD),
    ("ProgressDeadlineApproaching", "deployment/backstage"),
    ("Created", WORKER_POD),
    ("Pulled", WORKER_POD),
    ("Started", WORKER_POD),
    ("Created", NEW_POD),
    ("Started", NEW_POD),
    ("Pulled", NEW_POD),
    ("BackOff", WORKER_POD),
    ("BackOff", PR_POD),
    ("Failed", PR_POD),
    ("BackOff", NEW_POD),
];

fn events_json(rig: &Rig, args: &[&str]) -> Vec<Value> {
    let (code, out, err) = run(rig.plugin().arg("events").args(args).args(["-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let doc = json(&out);
    assert_eq!(doc["kind"], "EventList");
    doc["events"].as_array().unwrap().clone()
}

fn reason_object(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let object = format!(
                "{}/{}",
                e["object"]["kind"].as_str().unwrap().to_lowercase(),
                e["object"]["name"].as_str().unwrap()
            );
            (e["reason"].as_str().unwrap().to_string(), object)
        })
        .collect()
}

fn expected(filter: impl Fn(&(&str, &str)) -> bool) -> Vec<(String, String)> {
    ORDER
        .iter()
        .filter(|e| filter(e))
        .map(|(r, o)| (r.to_string(), o.to_string()))
        .collect()
}

#[test]
fn ordered_by_last_seen_with_the_fallback_chain() {
    let rig = Rig::incident();
    let events = events_json(&rig, &[]);
    assert_eq!(reason_object(&events), expected(|_| true));
    let last_seen: Vec<&str> = events
        .iter()
        .map(|e| e["lastSeen"].as_str().unwrap())
        .collect();
    assert!(
        last_seen.iter().all(|t| t.ends_with('Z')),
        "RFC 3339 in UTC: {last_seen:?}"
    );
    // The series event counts its series.
    let series = events
        .iter()
        .find(|e| {
            e["reason"] == "FailedScheduling"
                && e["object"]["name"] == "backstage-pr-1234-5b7c9d8f6d-wq9rt"
        })
        .unwrap();
    let stored = rig
        .server
        .get("Event", "backstage", series["name"].as_str().unwrap())
        .unwrap();
    assert_eq!(series["count"], stored["series"]["count"]);
}

#[test]
fn same_order_as_kubectl_for_events_with_last_timestamp_and_better_for_the_rest() {
    let rig = Rig::incident();
    let mut kubectl = rig.kubectl();
    kubectl.args([
        "get",
        "events",
        "--sort-by=.lastTimestamp",
        "--no-headers",
        "-o",
        "custom-columns=NAME:.metadata.name,LAST:.lastTimestamp",
    ]);
    let theirs: Vec<(String, String)> = stdout_of(kubectl)
        .lines()
        .map(|l| {
            let mut c = l.split_whitespace();
            (c.next().unwrap().to_string(), c.next().unwrap().to_string())
        })
        .collect();
    let with_last: Vec<&str> = theirs
        .iter()
        .filter(|(_, last)| last != "<none>" && last != "<nil>")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        with_last.len(),
        24,
        "the fixtures have 24 events with lastTimestamp"
    );
    let ours_events = events_json(&rig, &[]);
    let ours: Vec<String> = ours_events
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    // kubectl's sort is not stable: events seen in the same second may come in any order. Compare the
    // sequence of seconds, and within each second the set of events.
    let groups = |rows: Vec<(String, String)>| {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (second, name) in rows {
            match out.last_mut() {
                Some((s, names)) if *s == second => names.push(name),
                _ => out.push((second, vec![name])),
            }
        }
        out.iter_mut().for_each(|(_, names)| names.sort());
        out
    };
    let theirs_groups = groups(
        theirs
            .iter()
            .filter(|(n, _)| with_last.contains(&n.as_str()))
            .map(|(n, t)| (t.clone(), n.clone()))
            .collect(),
    );
    let ours_groups = groups(
        ours_events
            .iter()
            .filter(|e| with_last.contains(&e["name"].as_str().unwrap()))
            .map(|e| {
                (
                    e["lastSeen"].as_str().unwrap().to_string(),
                    e["name"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    );
    assert_eq!(ours_groups, theirs_groups);
    // kubectl puts the 8 events without lastTimestamp first; they belong in between.
    let kubectl_all: Vec<&str> = theirs.iter().map(|(n, _)| n.as_str()).collect();
    assert_ne!(
        kubectl_all,
        ours.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn every_page_is_read() {
    let rig = Rig::start(ServerOptions {
        tls: true,
        token: Some(TOKEN.into()),
        max_page: Some(7),
        ..ServerOptions::new(Fixtures::incident().with_generated_events(1500))
    });
    let events = events_json(&rig, &[]);
    assert_eq!(events.len(), 32 + 1500);
    let times: Vec<String> = events
        .iter()
        .map(|e| e["lastSeen"].as_str().unwrap().to_string())
        .collect();
    let parsed: Vec<jiff::Timestamp> = times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let pages = rig
        .server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/events") && !r.is_watch())
        .count();
    assert_eq!(pages, (1532usize).div_ceil(7), "one request per page of 7");
    assert!(
        rig.server
            .requests()
            .iter()
            .any(|r| r.param("continue").is_some())
    );
}

#[test]
fn types_for_and_since_filter() {
    let rig = Rig::incident();
    let warnings = events_json(&rig, &["--types", "Warning"]);
    assert!(warnings.iter().all(|e| e["type"] == "Warning"));
    assert_eq!(
        reason_object(&warnings),
        vec![
            ("FailedScheduling".to_string(), PR_POD.to_string()),
            ("FailedScheduling".into(), WORKER_POD.into()),
            ("Unhealthy".into(), "pod/backstage-6c9f8d7b54-k4m2x".into()),
            ("RolloutStalled".into(), "deployment/backstage".into()),
            ("Unhealthy".into(), "pod/backstage-6c9f8d7b54-q8zvn".into()),
            ("Failed".into(), PR_POD.into()),
            ("Failed".into(), PR_POD.into()),
            (
                "ProgressDeadlineApproaching".into(),
                "deployment/backstage".into()
            ),
            ("BackOff".into(), WORKER_POD.into()),
            ("Failed".into(), PR_POD.into()),
            ("BackOff".into(), NEW_POD.into()),
        ]
    );
    assert_eq!(events_json(&rig, &["--types", "warning,Normal"]).len(), 32);

    let pod = events_json(&rig, &["--for", "pod/backstage-7d9f6b5c8-x2x7p"]);
    assert_eq!(reason_object(&pod), expected(|(_, o)| *o == NEW_POD));

    // A Deployment takes its ReplicaSets and their pods.
    let deployment = events_json(&rig, &["--for", "deploy/backstage"]);
    let family = [
        "deployment/backstage",
        "replicaset/backstage-7d9f6b5c8",
        NEW_POD,
        "pod/backstage-6c9f8d7b54-k4m2x",
        "pod/backstage-6c9f8d7b54-q8zvn",
    ];
    assert_eq!(
        reason_object(&deployment),
        expected(|(_, o)| family.contains(o))
    );
    assert_eq!(deployment.len(), 13);

    // Fixture times are relative to the server's start, so "the last 5 minutes" is stable.
    let recent = events_json(&rig, &["--since", "5m"]);
    assert_eq!(reason_object(&recent), expected(|_| true)[15..].to_vec());

    let other = events_json(&rig, &["-n", "other"]);
    assert_eq!(
        reason_object(&other),
        vec![
            ("Pulled".to_string(), "pod/web-7b9c8d6f5-zt6xw".to_string()),
            ("BackOff".into(), "pod/web-7b9c8d6f5-zt6xw".into())
        ]
    );
}

#[test]
fn table_columns_wide_and_yaml() {
    let rig = Rig::incident();
    let (code, out, _) = run(rig.plugin().arg("events"));
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 33);
    assert!(lines[0].starts_with("LAST SEEN   TYPE"), "{}", lines[0]);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "LAST", "SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"
        ]
    );
    let last = lines[32].split_whitespace().collect::<Vec<_>>();
    assert_eq!(&last[1..4], &["Warning", "BackOff", NEW_POD]);
    assert!(
        lines[32].contains("Back-off restarting failed container backstage"),
        "{}",
        lines[32]
    );

    let (_, wide, _) = run(rig.plugin().args(["events", "-o", "wide"]));
    assert_eq!(
        wide.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        [
            "LAST", "SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "FIRST", "SEEN", "SOURCE", "NAME",
            "MESSAGE"
        ]
    );
    let (_, y, _) = run(rig.plugin().args(["events", "-o", "yaml"]));
    let (_, j, _) = run(rig.plugin().args(["events", "-o", "json"]));
    assert_eq!(serde_norway::from_str::<Value>(&y).unwrap(), json(&j));
}

#[test]
fn watch_prints_new_events_as_they_come() {
    let rig = Rig::incident();
    let (mut child, mut lines) = rig.watch(
        &["events", "--watch", "-o", "json", "--types", "Warning"],
        Duration::from_secs(60),
    );
    for _ in 0..11 {
        let row = json(&lines.next().unwrap().unwrap());
        assert_eq!(row["type"], "Warning");
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for (name, type_) in [
        ("backstage.normal-new", "Normal"),
        ("backstage.warning-new", "Warning"),
    ] {
        rig.server.apply(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "backstage", "creationTimestamp": now},
            "involvedObject": {"kind": "Deployment", "name": "backstage", "namespace": "backstage"},
            "reason": "TestReason", "message": "m", "type": type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "test"}
        }));
    }
    let row = json(&lines.next().unwrap().unwrap());
    assert_eq!(
        row["name"], "backstage.warning-new",
        "the Normal one is filtered out"
    );
    child.kill().unwrap();
    let _ = child.wait();
}

fn warning_event(rig: &Rig, name: &str) {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    rig.server.apply(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "backstage", "creationTimestamp": now},
        "involvedObject": {"kind": "Deployment", "name": "backstage", "namespace": "backstage"},
        "reason": "TestReason", "message": "m", "type": "Warning", "count": 1,
        "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "test"}
    }));
}

#[test]
fn watch_lists_again_after_410_gone_and_shows_only_what_is_new() {
    let rig = Rig::incident();
    let (mut child, mut lines) = rig.watch(
        &["events", "--watch", "-o", "json", "--types", "Warning"],
        Duration::from_secs(90),
    );
    for _ in 0..11 {
        lines.next().unwrap().unwrap();
    }
    for (how, name, refused_with) in [
        (Expiry::WatchEvent, "backstage.after-error-event", 200),
        (Expiry::HttpStatus, "backstage.after-http-410", 410),
    ] {
        let before = rig.server.requests().len();
        rig.server.expire_resource_versions(how);
        let fresh = rig.server.resource_version().to_string();
        // An event made while the watch is down: the new list has it.
        warning_event(&rig, &format!("{name}.during"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let since = loop {
            let since = rig.server.requests().split_off(before);
            if since.iter().any(|r| {
                r.is_watch()
                    && r.param("resourceVersion")
                        .is_some_and(|v| v.parse::<u64>().unwrap() > fresh.parse().unwrap())
            }) {
                break since;
            }
            assert!(Instant::now() < deadline, "no new watch: {since:#?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            since
                .iter()
                .any(|r| !r.is_watch() && r.path.ends_with("/events")),
            "listed again: {since:#?}"
        );
        assert!(
            since
                .iter()
                .any(|r| r.is_watch() && r.status == refused_with),
            "{since:#?}"
        );
        // An event made after the new watch started: it comes as it happens.
        warning_event(&rig, &format!("{name}.after"));
        let names: Vec<String> = (0..2)
            .map(|_| {
                json(&lines.next().unwrap().unwrap())["name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [format!("{name}.during"), format!("{name}.after")],
            "only the new events, not the whole list again"
        );
    }
    assert!(child.try_wait().unwrap().is_none(), "still watching");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
