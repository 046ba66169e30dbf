//! The simulated scheduler and kubelet: created pods pull registered images, start through the pod
//! runtime and become Ready; unregistered images fail to pull (ErrImagePull, then ImagePullBackOff);
//! a slow pull keeps a pod in ContainerCreating; `activeDeadlineSeconds` fails a pod; a runtime's crash
//! is CrashLoopBackOff with the previous log; deletion stops the runtime. Checked with kube-rs and the
//! real kubectl.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstage_testkit::{
    FakeApiServer, Fixtures, NODE, PodOutcome, PodRuntime, PodStart, ServerOptions, image_id,
};
use serde_json::{Value, json};

#[path = "support/kubectl.rs"]
mod kubectl;
use kubectl::Kubectl;

/// A runtime that records its calls and answers from a table by image.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<String>>,
    outcomes: Mutex<Vec<(String, PodOutcome)>>,
    starts: Mutex<Vec<PodStart>>,
}

impl PodRuntime for Recording {
    fn start(&self, pod: &PodStart) -> PodOutcome {
        self.calls.lock().unwrap().push(format!(
            "start {}/{}/{}",
            pod.namespace, pod.pod, pod.container
        ));
        self.starts.lock().unwrap().push(pod.clone());
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .find(|(img, _)| *img == pod.image)
            .map(|(_, o)| o.clone())
            .unwrap_or(PodOutcome::Ready {
                ports: Vec::new(),
                log_file: None,
            })
    }
    fn stop(&self, namespace: &str, pod: &str) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("stop {namespace}/{pod}"));
    }
}

fn server() -> (FakeApiServer, Kubectl) {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::empty())).unwrap();
    let k = Kubectl::for_server(&server);
    (server, k)
}

fn pod_yaml(dir: &std::path::Path, name: &str, image: &str, extra_spec: &str) -> String {
    let f = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &f,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: backstage\nspec:\n{extra_spec}  containers:\n  - name: main\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    env:\n    - name: GREETING\n      value: hello\n"
        ),
    )
    .unwrap();
    f.to_str().unwrap().to_string()
}

/// Polls the stored pod until `done` holds; fails loudly after a generous deadline.
fn wait_for(
    server: &FakeApiServer,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = server.get("Pod", "backstage", name)
            && done(&p)
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} never got {what}: {:#}",
            server.get("Pod", "backstage", name).unwrap_or(Value::Null)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn waiting_reason(p: &Value) -> String {
    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// (type, reason, message) of the events about a pod, in the order they were written.
fn events_of(k: &Kubectl, pod: &str) -> Vec<(String, String, String)> {
    let out = k.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut items: Vec<Value> = v["items"].as_array().unwrap().clone();
    items.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    items
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ev(t: &str, r: &str, m: &str) -> (String, String, String) {
    (t.into(), r.into(), m.into())
}

#[test]
fn a_pod_with_a_registered_image_becomes_ready_and_exec_runs_in_the_image() {
    let (server, k) = server();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "from the image\n").unwrap();
    let image = "registry.example/backstage:1.2.3";
    server.register_image(image, root.path());
    let runtime = Arc::new(Recording::default());
    server.set_pod_runtime(runtime.clone());
    let dir = tempfile::tempdir().unwrap();
    k.ok(&["create", "-f", &pod_yaml(dir.path(), "probe", image, "")]);
    let p = wait_for(&server, "probe", "Ready", |p| {
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["spec"]["nodeName"], NODE);
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["started"], true);
    assert!(cs["state"]["running"]["startedAt"].is_string());
    assert_eq!(cs["image"], image);
    let id = cs["imageID"].as_str().unwrap();
    assert_eq!(id, image_id(image));
    let digest = id
        .strip_prefix("registry.example/backstage@sha256:")
        .unwrap();
    assert_eq!(digest.len(), 64);
    assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        *runtime.starts.lock().unwrap(),
        [PodStart {
            namespace: "backstage".into(),
            pod: "probe".into(),
            container: "main".into(),
            image: image.into(),
            root: Some(root.path().to_path_buf()),
            command: Some(vec!["sleep".into(), "3600".into()]),
            args: None,
            env: vec![("GREETING".into(), "hello".into())],
        }]
    );
    let out = k.ok(&["exec", "probe", "--", "cat", "hello.txt"]);
    assert_eq!(out, "from the image\n");
    let table = k.ok(&["get", "pod", "probe", "--no-headers"]);
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cols[..4], ["probe", "1/1", "Running", "0"]);
    let events = events_of(&k, "probe");
    let (reasons, messages): (Vec<String>, Vec<String>) = events
        .iter()
        .map(|(_, r, m)| (r.clone(), m.clone()))
        .unzip();
    assert_eq!(
        reasons,
        ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    );
    assert_eq!(
        messages[0],
        format!("Successfully assigned backstage/probe to {NODE}")
    );
    assert_eq!(messages[1], format!("Pulling image \"{image}\""));
    assert!(messages[2].starts_with(&format!("Successfully pulled image \"{image}\" in ")));
    assert_eq!(messages[3], "Created container: main");
    assert_eq!(messages[4], "Started container main");

    // A second pod with the image on the node does not pull again.
    k.ok(&["create", "-f", &pod_yaml(dir.path(), "probe2", image, "")]);
    wait_for(&server, "probe2", "running", |p| {
        p["status"]["phase"] == "Running"
    });
    assert!(events_of(&k, "probe2").contains(&ev(
        "Normal",
        "Pulled",
        &format!("Container image \"{image}\" already present on machine")
    )));

    // Deleting stops what the runtime started.
    k.ok(&["delete", "pod", "probe"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !runtime
        .calls
        .lock()
        .unwrap()
        .contains(&"stop backstage/probe".to_string())
    {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            runtime.calls.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        runtime.calls.lock().unwrap()[..3],
        [
            "start backstage/probe/main",
            "start backstage/probe2/main",
            "stop backstage/probe"
        ]
    );
}

#[test]
fn an_unregistered_image_fails_to_pull_then_backs_off() {
    let (server, k) = server();
    let dir = tempfile::tempdir().unwrap();
    let image = "registry.example/nope:9";
    k.ok(&["create", "-f", &pod_yaml(dir.path(), "bad", image, "")]);
    let p = wait_for(&server, "bad", "ErrImagePull or later", |p| {
        matches!(
            waiting_reason(p).as_str(),
            "ErrImagePull" | "ImagePullBackOff"
        )
    });
    assert_eq!(p["status"]["phase"], "Pending");
    let p = wait_for(&server, "bad", "ImagePullBackOff", |p| {
        waiting_reason(p) == "ImagePullBackOff"
    });
    let err = format!(
        "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
    );
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        format!("Back-off pulling image \"{image}\": ErrImagePull: {err}")
    );
    assert_eq!(p["status"]["phase"], "Pending");
    let table = k.ok(&["get", "pod", "bad", "--no-headers"]);
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cols[..3], ["bad", "0/1", "ImagePullBackOff"]);
    let events = events_of(&k, "bad");
    assert_eq!(
        events[1..],
        [
            ev("Normal", "Pulling", &format!("Pulling image \"{image}\"")),
            ev(
                "Warning",
                "Failed",
                &format!("Failed to pull image \"{image}\": {err}")
            ),
            ev("Warning", "Failed", "Error: ErrImagePull"),
            ev(
                "Normal",
                "BackOff",
                &format!("Back-off pulling image \"{image}\"")
            ),
            ev("Warning", "Failed", "Error: ImagePullBackOff"),
        ]
    );
    // Short names are docker.io's.
    k.ok(&[
        "create",
        "-f",
        &pod_yaml(dir.path(), "short", "nginx:nope", ""),
    ]);
    let p = wait_for(&server, "short", "ErrImagePull", |p| {
        !waiting_reason(p).is_empty() && waiting_reason(p) != "ContainerCreating"
    });
    assert!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("failed to pull and unpack image \"docker.io/library/nginx:nope\""),
        "{p:#}"
    );
}

#[test]
fn a_slow_pull_shows_container_creating_and_the_pod_can_be_deleted_meanwhile() {
    let (server, k) = server();
    let root = tempfile::tempdir().unwrap();
    let image = "registry.example/slow:1";
    server.register_image(image, root.path());
    server.set_image_pull_delay(image, Duration::from_secs(30));
    let runtime = Arc::new(Recording::default());
    server.set_pod_runtime(runtime.clone());
    let dir = tempfile::tempdir().unwrap();
    k.ok(&["create", "-f", &pod_yaml(dir.path(), "slow", image, "")]);
    wait_for(&server, "slow", "ContainerCreating", |p| {
        waiting_reason(p) == "ContainerCreating"
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !events_of(&k, "slow").iter().any(|(_, r, _)| r == "Pulling") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let table = k.ok(&["get", "pod", "slow", "--no-headers"]);
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cols[..3], ["slow", "0/1", "ContainerCreating"]);
    k.ok(&["delete", "pod", "slow", "--wait=true"]);
    assert!(server.get("Pod", "backstage", "slow").is_none());
    assert!(runtime.calls.lock().unwrap().is_empty(), "never started");
}

#[test]
fn active_deadline_fails_the_pod_and_stops_it() {
    let (server, k) = server();
    let root = tempfile::tempdir().unwrap();
    let image = "registry.example/backstage:1";
    server.register_image(image, root.path());
    let runtime = Arc::new(Recording::default());
    server.set_pod_runtime(runtime.clone());
    let dir = tempfile::tempdir().unwrap();
    k.ok(&[
        "create",
        "-f",
        &pod_yaml(
            dir.path(),
            "short-lived",
            image,
            "  activeDeadlineSeconds: 1\n",
        ),
    ]);
    let p = wait_for(&server, "short-lived", "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(p["status"]["reason"], "DeadlineExceeded");
    assert_eq!(
        p["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    let table = k.ok(&["get", "pod", "short-lived", "--no-headers"]);
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cols[..3], ["short-lived", "0/1", "DeadlineExceeded"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !runtime
        .calls
        .lock()
        .unwrap()
        .contains(&"stop backstage/short-lived".to_string())
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_crash_is_crash_loop_back_off_with_the_previous_log_and_a_log_file_is_the_current_log() {
    let (server, k) = server();
    let root = tempfile::tempdir().unwrap();
    let good = "registry.example/backstage:good";
    let bad = "registry.example/backstage:bad";
    server.register_image(good, root.path());
    server.register_image(bad, root.path());
    let log_file = root.path().join("good.log");
    std::fs::write(&log_file, "listening on 7007\n").unwrap();
    let runtime = Arc::new(Recording::default());
    runtime.outcomes.lock().unwrap().extend([
        (
            bad.to_string(),
            PodOutcome::Crashed {
                exit_code: 1,
                log: "migration failed: The migration directory is corrupt\n".into(),
            },
        ),
        (
            good.to_string(),
            PodOutcome::Ready {
                ports: vec![(7007, "127.0.0.1:9".parse().unwrap())],
                log_file: Some(log_file.clone()),
            },
        ),
    ]);
    server.set_pod_runtime(runtime.clone());
    let dir = tempfile::tempdir().unwrap();
    k.ok(&["create", "-f", &pod_yaml(dir.path(), "crashy", bad, "")]);
    k.ok(&["create", "-f", &pod_yaml(dir.path(), "fine", good, "")]);
    let p = wait_for(&server, "crashy", "CrashLoopBackOff", |p| {
        waiting_reason(p) == "CrashLoopBackOff"
    });
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 1);
    assert_eq!(cs["ready"], false);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(
        k.ok(&["logs", "crashy", "--previous"]),
        "migration failed: The migration directory is corrupt\n"
    );
    let table = k.ok(&["get", "pod", "crashy", "--no-headers"]);
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cols[..4], ["crashy", "0/1", "CrashLoopBackOff", "1"]);
    let uid = p["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        events_of(&k, "crashy").last().unwrap(),
        &ev(
            "Warning",
            "BackOff",
            &format!("Back-off restarting failed container main in pod crashy_backstage({uid})")
        )
    );
    // With restartPolicy Never, the crash ends the pod: Failed, the log is the current one.
    k.ok(&[
        "create",
        "-f",
        &pod_yaml(dir.path(), "once", bad, "  restartPolicy: Never\n"),
    ]);
    let p = wait_for(&server, "once", "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["restartCount"], 0);
    assert_eq!(
        k.ok(&["logs", "once"]),
        "migration failed: The migration directory is corrupt\n"
    );
    let table = k.ok(&["get", "pod", "once", "--no-headers"]);
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cols[..4], ["once", "0/1", "Error", "0"]);
    wait_for(&server, "fine", "running", |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(k.ok(&["logs", "fine"]), "listening on 7007\n");
    std::fs::write(&log_file, "listening on 7007\nready\n").unwrap();
    assert_eq!(k.ok(&["logs", "fine"]), "listening on 7007\nready\n");
    let _ = json!({});
}

#[test]
fn an_unready_container_runs_never_ready_with_its_log_file_as_the_current_log() {
    let (server, k) = server();
    let root = tempfile::tempdir().unwrap();
    let stuck = "registry.example/backstage:stuck";
    server.register_image(stuck, root.path());
    let log_file = root.path().join("stuck.log");
    std::fs::write(&log_file, "Plugin 'catalog' startup failed\n").unwrap();
    let runtime = Arc::new(Recording::default());
    runtime.outcomes.lock().unwrap().push((
        stuck.to_string(),
        PodOutcome::Unready {
            ports: vec![(7007, "127.0.0.1:9".parse().unwrap())],
            log_file: Some(log_file.clone()),
        },
    ));
    server.set_pod_runtime(runtime.clone());
    let dir = tempfile::tempdir().unwrap();
    k.ok(&["create", "-f", &pod_yaml(dir.path(), "stuck", stuck, "")]);
    let p = wait_for(&server, "stuck", "running", |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], false);
    assert_eq!(cs["started"], true);
    assert_eq!(cs["restartCount"], 0);
    assert_eq!(p["status"]["phase"], "Running");
    let ready = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ContainersNotReady");
    let table = k.ok(&["get", "pod", "stuck", "--no-headers"]);
    let cols: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&cols[..4], ["stuck", "0/1", "Running", "0"]);
    assert_eq!(
        k.ok(&["logs", "stuck"]),
        "Plugin 'catalog' startup failed\n"
    );
    k.ok(&["delete", "pod", "stuck"]);
    // The kubelet stops the container off the request path: wait for it, then check the calls.
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.calls.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        runtime.calls.lock().unwrap().clone(),
        ["start backstage/stuck/main", "stop backstage/stuck"]
    );
}
