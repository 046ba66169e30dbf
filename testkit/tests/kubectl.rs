//! The real kubectl accepts the fake API server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backstage_testkit::{FakeApiServer, Fixtures, INCIDENT_PODS, ServerOptions, unix_seconds};
use serde_json::json;

fn kubectl_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|p| p.join("kubectl"))
        .find(|p| p.is_file())
}

/// A kubectl with its own HOME and kubeconfig for one server.
struct Kubectl {
    bin: PathBuf,
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// Panics when kubectl is not installed: these tests never pass without running
    /// (`scripts/setup-machine.sh` installs it).
    fn for_server(server: &FakeApiServer, token: &str) -> Kubectl {
        let bin = kubectl_path().expect(
            "kubectl is not on PATH: this test runs the real kubectl; run scripts/setup-machine.sh",
        );
        let home = tempfile::tempdir().expect("temp HOME");
        let kubeconfig = home.path().join("kubeconfig.yaml");
        server
            .write_kubeconfig(&kubeconfig, "fake", Some("backstage"), token)
            .expect("kubeconfig written");
        Kubectl {
            bin,
            home,
            kubeconfig,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// stdout of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn start(opts: ServerOptions) -> FakeApiServer {
    FakeApiServer::start(opts).expect("server starts")
}

fn incident() -> ServerOptions {
    ServerOptions::new(Fixtures::incident())
}

/// The fake server with the incident fixtures and a kubectl for it.
fn incident_kubectl() -> (FakeApiServer, Kubectl) {
    let server = start(incident());
    let k = Kubectl::for_server(&server, "t");
    (server, k)
}

/// The incident fixtures with `pod`'s filesystem in a folder holding `hello.txt`, and a kubectl.
fn with_pod_root(pod: &str) -> (tempfile::TempDir, FakeApiServer, Kubectl) {
    let root = pod_root();
    let fx = Fixtures::incident().with_pod_root(pod, root.path());
    let server = start(ServerOptions::new(fx));
    let k = Kubectl::for_server(&server, "t");
    (root, server, k)
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

#[test]
fn discovery_lists_the_served_resources() {
    let (_server, k) = incident_kubectl();
    let out = k.ok(&["api-resources", "--no-headers", "-o", "name"]);
    let names = lines(&out);
    for want in [
        "pods",
        "events",
        "namespaces",
        "deployments.apps",
        "replicasets.apps",
        "statefulsets.apps",
        "events.events.k8s.io",
        "secrets",
        "ingresses.networking.k8s.io",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing in {names:?}"
        );
    }
    let version = k.ok(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "32");
}

#[test]
fn custom_columns_give_pod_names_in_fixture_order() {
    let (_server, k) = incident_kubectl();
    let out = k.ok(&[
        "get",
        "pods",
        "-o",
        "custom-columns=NAME:.metadata.name,RESTARTS:.status.containerStatuses[0].restartCount",
        "--no-headers",
    ]);
    let rows: Vec<Vec<String>> = out
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, INCIDENT_PODS);
    let restarts: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(restarts, ["0", "1", "5", "0", "0", "0", "3"]);

    // The same order is what the fixtures hold.
    let fx = Fixtures::incident();
    let fixture_names: Vec<&str> = fx
        .objects_of("Pod", Some("backstage"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(fixture_names, INCIDENT_PODS);

    // Other namespaces through -n and through the context namespace.
    let staging = k.ok(&["get", "pods", "-n", "backstage-staging", "-o", "name"]);
    assert_eq!(lines(&staging), ["pod/backstage-5f6d7c8b9a-h2kxm"]);
}

#[test]
fn default_table_output_has_the_real_columns() {
    let (_server, k) = incident_kubectl();
    let out = k.ok(&["get", "pods"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let crash = out
        .lines()
        .find(|l| l.starts_with("backstage-7d9f6b5c8-x2x7p"))
        .unwrap();
    let cells: Vec<&str> = crash.split_whitespace().collect();
    assert_eq!(
        &cells[..4],
        ["backstage-7d9f6b5c8-x2x7p", "0/1", "CrashLoopBackOff", "5"]
    );
    let pull = out
        .lines()
        .find(|l| l.starts_with("backstage-pr-1234"))
        .unwrap();
    assert!(pull.contains("ImagePullBackOff"), "{pull}");

    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );

    let events = k.ok(&["get", "events"]);
    let header: Vec<&str> = events
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);

    let workloads = k.ok(&["get", "deploy,rs,sts", "-o", "name"]);
    assert_eq!(
        lines(&workloads),
        [
            "deployment.apps/backstage",
            "deployment.apps/backstage-pr-1234",
            "deployment.apps/backstage-worker",
            "replicaset.apps/backstage-6c9f8d7b54",
            "replicaset.apps/backstage-7d9f6b5c8",
            "replicaset.apps/backstage-pr-1234-5b7c9d8f6d",
            "replicaset.apps/backstage-worker-59c8d7f6b",
            "replicaset.apps/backstage-worker-8f7b6c5d4",
            "statefulset.apps/backstage-postgresql",
        ]
    );
    let deploy = k.ok(&["get", "deploy", "backstage"]);
    let row: Vec<&str> = deploy.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["backstage", "2/2", "1", "2"]);
}

#[test]
fn sort_by_last_timestamp_works_and_shows_the_nulls() {
    let (server, k) = incident_kubectl();
    // Default (Table) output with --sort-by needs includeObject=Object.
    let table = k.ok(&["get", "events", "--sort-by=.lastTimestamp"]);
    assert_eq!(table.lines().count(), 1 + 32);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/backstage/events"
                && r.param("includeObject").as_deref() == Some("Object"))
    );

    let out = k.ok(&[
        "get",
        "events",
        "--sort-by=.lastTimestamp",
        "-o",
        "custom-columns=NAME:.metadata.name,LAST:.lastTimestamp",
        "--no-headers",
    ]);
    let rows: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            (
                it.next().unwrap().to_string(),
                it.next().unwrap().to_string(),
            )
        })
        .collect();
    let fx = Fixtures::incident();
    let events = fx.objects_of("Event", Some("backstage"));
    assert_eq!(rows.len(), events.len());
    // Events without lastTimestamp (events.k8s.io style) come first, the rest ascending.
    let nulls = events
        .iter()
        .filter(|e| e["lastTimestamp"].is_null())
        .count();
    assert_eq!(nulls, 8);
    assert!(
        rows[..nulls]
            .iter()
            .all(|(_, last)| last == "<nil>" || last == "<none>"),
        "{rows:?}"
    );
    let times: Vec<i64> = rows[nulls..]
        .iter()
        .map(|(_, t)| unix_seconds(t).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // And the times are the rebased fixture times.
    let newest = events
        .iter()
        .filter_map(|e| e["lastTimestamp"].as_str())
        .max()
        .unwrap();
    assert_eq!(rows.last().unwrap().1, newest);
}

#[test]
fn selectors_filter() {
    let (_server, k) = incident_kubectl();
    let worker = k.ok(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=backstage-worker",
        "-o",
        "name",
    ]);
    assert_eq!(
        lines(&worker),
        [
            "pod/backstage-worker-59c8d7f6b-mz5ql",
            "pod/backstage-worker-8f7b6c5d4-r7tjh"
        ]
    );
    let set = k.ok(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/component notin (backstage,worker),!nope",
        "-o",
        "name",
    ]);
    assert_eq!(lines(&set), ["pod/backstage-postgresql-0"]);
    let app = k.ok(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=backstage,pod-template-hash!=6c9f8d7b54",
        "-o",
        "name",
    ]);
    assert_eq!(
        lines(&app),
        [
            "pod/backstage-7d9f6b5c8-x2x7p",
            "pod/backstage-pr-1234-5b7c9d8f6d-wq9rt"
        ]
    );

    let warnings = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "type=Warning",
        "-o",
        "jsonpath={range .items[*]}{.type}{\"\\n\"}{end}",
    ]);
    let fx = Fixtures::incident();
    let want = fx
        .objects_of("Event", Some("backstage"))
        .iter()
        .filter(|e| e["type"] == "Warning")
        .count();
    assert_eq!(lines(&warnings).len(), want);
    assert!(lines(&warnings).iter().all(|t| t == "Warning"));
    let for_pod = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Pod,involvedObject.name=backstage-7d9f6b5c8-x2x7p,reason=BackOff",
        "-o",
        "name",
    ]);
    assert_eq!(lines(&for_pod).len(), 1);
    let bad = k.run(&["get", "events", "--field-selector", "spec.nope=1"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("field label not supported: spec.nope"));
}

#[test]
fn chunked_lists_follow_continue() {
    let (server, k) = incident_kubectl();
    let whole = k.ok(&["get", "events", "-o", "name", "--chunk-size=0"]);
    server.clear_requests();
    let chunked = k.ok(&["get", "events", "-o", "name", "--chunk-size=7"]);
    assert_eq!(whole, chunked);
    assert_eq!(lines(&chunked).len(), 32);
    let lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/backstage/events")
        .collect();
    assert_eq!(lists.len(), 5, "{lists:?}");
    assert!(
        lists
            .iter()
            .all(|r| r.param("limit").as_deref() == Some("7"))
    );
    assert!(lists[0].param("continue").is_none());
    assert!(lists[1..].iter().all(|r| r.param("continue").is_some()));

    // A server-side cap makes kubectl's default chunk size (500) page as well.
    let capped = start(ServerOptions {
        max_page: Some(3),
        ..incident()
    });
    let k = Kubectl::for_server(&capped, "t");
    let pods = k.ok(&["get", "pods", "-o", "name"]);
    assert_eq!(lines(&pods).len(), INCIDENT_PODS.len());
    let pages = capped
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/backstage/pods")
        .count();
    assert_eq!(pages, 3);
}

#[test]
fn tls_with_the_ca_works_and_a_wrong_ca_fails() {
    let server = start(ServerOptions {
        tls: true,
        token: Some("s3cret".into()),
        ..incident()
    });
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let k = Kubectl::for_server(&server, "s3cret");
    let pods = k.ok(&["get", "pods", "-o", "name"]);
    assert_eq!(lines(&pods).len(), INCIDENT_PODS.len());
    let table = k.ok(&[
        "get",
        "events",
        "--sort-by=.lastTimestamp",
        "--chunk-size=10",
    ]);
    assert_eq!(table.lines().count(), 33);

    // Wrong token → 401.
    let bad_token = Kubectl::for_server(&server, "wrong");
    let out = bad_token.run(&["get", "pods"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("You must be logged in to the server"), "{err}");

    // Another server's CA → certificate error.
    let other = start(ServerOptions {
        tls: true,
        ..ServerOptions::default()
    });
    let wrong_ca = Kubectl::for_server(&server, "s3cret");
    let mut cfg = server.kubeconfig_yaml("fake", Some("backstage"), "s3cret");
    let good = base64_of(&server.ca_pem().unwrap());
    let bad = base64_of(&other.ca_pem().unwrap());
    assert!(cfg.contains(&good));
    cfg = cfg.replace(&good, &bad);
    std::fs::write(&wrong_ca.kubeconfig, cfg).unwrap();
    let out = wrong_ca.run(&["get", "pods"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("certificate signed by unknown authority"),
        "{err}"
    );
}

fn base64_of(s: &str) -> String {
    // The kubeconfig carries the CA as standard base64; compute it the same way.
    use std::fmt::Write;
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.write_char(T[((n >> (18 - 6 * i)) & 63) as usize] as char)
                    .unwrap();
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn forbidden_is_a_real_looking_403() {
    let server = start(ServerOptions {
        forbidden: vec![
            ("list".into(), "events".into()),
            ("get".into(), "pods/log".into()),
        ],
        user: "system:serviceaccount:x:y".into(),
        ..incident()
    });
    let k = Kubectl::for_server(&server, "t");
    let out = k.run(&["get", "events"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"Error from server (Forbidden): events is forbidden: User "system:serviceaccount:x:y" cannot list resource "events" in API group "" in the namespace "backstage""#
    );
    let out = k.run(&["logs", "backstage-postgresql-0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        r#"Error from server (Forbidden): pods "backstage-postgresql-0" is forbidden: User "system:serviceaccount:x:y" cannot get resource "pods/log" in API group "" in the namespace "backstage""#
    ));
    // Pods are still readable.
    assert_eq!(
        lines(&k.ok(&["get", "pods", "-o", "name"])).len(),
        INCIDENT_PODS.len()
    );
}

#[test]
fn logs_current_and_previous() {
    let fx = Fixtures::incident();
    let want = fx
        .log("backstage", "backstage-7d9f6b5c8-x2x7p", "backstage", true)
        .unwrap()
        .to_string();
    let server = start(ServerOptions::new(fx));
    let k = Kubectl::for_server(&server, "t");
    let previous = k.ok(&["logs", "backstage-7d9f6b5c8-x2x7p", "--previous"]);
    assert_eq!(previous, want);
    assert!(previous.contains("The migration directory is corrupt, the following files are missing: 20241003170511_alter_target_in_locations.js, 20250102120000_refresh_state_index.js"));
    let tail = k.ok(&[
        "logs",
        "backstage-7d9f6b5c8-x2x7p",
        "-c",
        "backstage",
        "--previous",
        "--tail=1",
    ]);
    assert_eq!(tail, format!("{}\n", want.lines().last().unwrap()));
    let out = k.run(&["logs", "backstage-6c9f8d7b54-k4m2x", "--previous"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        r#"Error from server (BadRequest): previous terminated container "backstage" in pod "backstage-6c9f8d7b54-k4m2x" not found"#
    );
    let worker = k.ok(&["logs", "backstage-worker-8f7b6c5d4-r7tjh", "-p"]);
    assert!(worker.contains("Migration table is already locked"));
}

fn pod_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello from the pod\n").unwrap();
    dir
}

fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn exec_pipes_stdin_and_passes_exit_codes() {
    let (_root, server, k) = with_pod_root("backstage-6c9f8d7b54-k4m2x");
    let out = k.ok(&[
        "exec",
        "backstage-6c9f8d7b54-k4m2x",
        "--",
        "cat",
        "hello.txt",
    ]);
    assert_eq!(out, "hello from the pod\n");
    let out = k.run(&[
        "exec",
        "backstage-6c9f8d7b54-k4m2x",
        "--",
        "sh",
        "-c",
        "echo to-stderr >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "to-stderr\ncommand terminated with exit code 3\n"
    );
    let exec = server
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/exec"))
        .unwrap();
    assert_eq!(exec.status, 101);
    assert_eq!(exec.param("command").as_deref(), Some("sh"));

    assert!(
        node_available(),
        "node is not on PATH: the exec test runs real node; run scripts/setup-machine.sh"
    );
    let input = "line one\nline two\n".repeat(2000);
    let out = k.run_stdin(
        &[
            "exec",
            "-i",
            "backstage-6c9f8d7b54-k4m2x",
            "--",
            "node",
            "-e",
            "process.stdin.pipe(process.stdout)",
        ],
        &input,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), input);
    let out = k.run(&[
        "exec",
        "backstage-6c9f8d7b54-k4m2x",
        "--",
        "node",
        "-e",
        "process.exit(3)",
    ]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn exec_into_a_crashing_pod_fails() {
    let (_root, _server, k) = with_pod_root("backstage-7d9f6b5c8-x2x7p");
    let out = k.run(&[
        "exec",
        "backstage-7d9f6b5c8-x2x7p",
        "--",
        "cat",
        "hello.txt",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"unable to upgrade connection: container not found ("backstage")"#),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // A running pod without a root folder cannot exec either.
    let out = k.run(&["exec", "backstage-postgresql-0", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
}

/// Lines of a long-running command, read on a thread.
fn line_reader(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line whose first cells are `want` (cells split on whitespace).
fn wait_for(rx: &mpsc::Receiver<String>, want: &str, seen: &mut Vec<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let want_cells: Vec<&str> = want.split_whitespace().collect();
    let matches = |l: &String| {
        l.split_whitespace()
            .take(want_cells.len())
            .eq(want_cells.iter().copied())
    };
    while !seen.iter().any(matches) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("did not see {want:?}; saw {seen:?}"),
        }
    }
}

#[test]
fn watch_sees_apply_and_delete() {
    let (server, k) = incident_kubectl();
    let mut child = k
        .command(&["get", "pods", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = line_reader(&mut child);
    let mut seen = Vec::new();
    wait_for(&rx, "ADDED backstage-worker-8f7b6c5d4-r7tjh", &mut seen);
    assert_eq!(seen.len(), 1 + INCIDENT_PODS.len(), "{seen:?}");
    assert!(seen[0].starts_with("EVENT "));
    // kubectl lists, then watches from the list's resourceVersion; wait for the watch.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server
        .requests()
        .iter()
        .any(|r| r.is_watch() && r.path.ends_with("/pods"))
    {
        assert!(std::time::Instant::now() < deadline, "no watch request");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut pod = server
        .get("Pod", "backstage", "backstage-7d9f6b5c8-x2x7p")
        .unwrap();
    pod["status"]["containerStatuses"][0]["restartCount"] = json!(6);
    server.apply(pod);
    wait_for(&rx, "MODIFIED backstage-7d9f6b5c8-x2x7p", &mut seen);
    let row: Vec<&str> = seen.last().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        [
            "MODIFIED",
            "backstage-7d9f6b5c8-x2x7p",
            "0/1",
            "CrashLoopBackOff",
            "6"
        ]
    );
    server.apply(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "backstage-7d9f6b5c8-zz9kq", "namespace": "backstage", "labels": {"app.kubernetes.io/name": "backstage"}},
        "spec": {"containers": [{"name": "backstage", "image": "x"}]},
        "status": {"phase": "Pending"}
    }));
    wait_for(&rx, "ADDED backstage-7d9f6b5c8-zz9kq", &mut seen);
    server.delete("Pod", "backstage", "backstage-7d9f6b5c8-zz9kq");
    wait_for(&rx, "DELETED backstage-7d9f6b5c8-zz9kq", &mut seen);
    // Changes in another namespace do not show.
    assert!(!seen.iter().any(|l| l.contains("h2kxm")));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn watch_with_the_default_table_output() {
    let (server, k) = incident_kubectl();
    let mut child = k
        .command(&[
            "get",
            "pods",
            "-w",
            "-l",
            "app.kubernetes.io/name=backstage-worker",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = line_reader(&mut child);
    let mut first = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first.len() < 3 {
        first.push(
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .expect("table rows"),
        );
    }
    assert!(first[0].starts_with("NAME"));
    while !server.requests().iter().any(|r| r.is_watch()) {
        assert!(std::time::Instant::now() < deadline, "no watch request");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut pod = server
        .get("Pod", "backstage", "backstage-worker-8f7b6c5d4-r7tjh")
        .unwrap();
    pod["status"]["containerStatuses"][0]["state"] =
        json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
    pod["status"]["containerStatuses"][0]["ready"] = json!(true);
    server.apply(pod);
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a watch row");
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &cells[..3],
        ["backstage-worker-8f7b6c5d4-r7tjh", "1/1", "Running"],
        "{line}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
