//! The deployment controller simulation with the real kubectl: `set image` makes a new ReplicaSet and
//! pods, `rollout status` follows it to the end, the old ReplicaSets go to 0; a crashing image keeps
//! the old pods and the rollout Progressing; `rollout undo` brings the old ReplicaSet back; a progress
//! deadline fails `rollout status`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstage_testkit::{FakeApiServer, Fixtures, PodOutcome, PodRuntime, PodStart, ServerOptions};
use serde_json::Value;

#[path = "support/kubectl.rs"]
mod kubectl;
use kubectl::Kubectl;

/// Crashes containers of images named in `crash`, and records stops.
#[derive(Default)]
struct Trivial {
    crash: Vec<String>,
    stopped: Mutex<Vec<String>>,
}

impl PodRuntime for Trivial {
    fn start(&self, pod: &PodStart) -> PodOutcome {
        if self.crash.contains(&pod.image) {
            PodOutcome::Crashed {
                exit_code: 1,
                log: "Error: The migration directory is corrupt, the following files are missing: 20261101_new.js\n".into(),
            }
        } else {
            PodOutcome::Ready {
                ports: Vec::new(),
                log_file: None,
            }
        }
    }
    fn stop(&self, _namespace: &str, pod: &str) {
        self.stopped.lock().unwrap().push(pod.to_string());
    }
}

const OLD: &str = "hmctspublic.azurecr.io/backstage/backstage:prod-5f3c2a1-20261122110000";
const NEW: &str = "registry.example/backstage:2.0.0";
const BAD: &str = "registry.example/backstage:bad";

fn rig(crash: &[&str]) -> (FakeApiServer, Kubectl, Arc<Trivial>, tempfile::TempDir) {
    let server = FakeApiServer::start(ServerOptions::new(Fixtures::incident())).unwrap();
    let root = tempfile::tempdir().unwrap();
    for image in [OLD, NEW, BAD] {
        server.register_image(image, root.path());
    }
    let runtime = Arc::new(Trivial {
        crash: crash.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    });
    server.set_pod_runtime(runtime.clone());
    let k = Kubectl::for_server(&server);
    (server, k, runtime, root)
}

fn json(k: &Kubectl, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&k.ok(&a)).unwrap()
}

/// ReplicaSets of the `backstage` Deployment: (name, spec.replicas, revision), by name.
fn replica_sets(k: &Kubectl) -> Vec<(String, i64, String)> {
    let v = json(
        k,
        &["get", "rs", "-l", "app.kubernetes.io/component=backstage"],
    );
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["name"] == "backstage")
        .map(|rs| {
            (
                rs["metadata"]["name"].as_str().unwrap().to_string(),
                rs["spec"]["replicas"].as_i64().unwrap(),
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

/// Pods of the `backstage` Deployment: (name, owner ReplicaSet, STATUS column).
fn pods(k: &Kubectl) -> Vec<(String, String, String)> {
    let v = json(
        k,
        &[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/component=backstage,app.kubernetes.io/instance=backstage",
        ],
    );
    let table = k.ok(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/component=backstage,app.kubernetes.io/instance=backstage",
        "--no-headers",
    ]);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["ownerReferences"][0]["name"]
                .as_str()
                .is_some_and(|o| {
                    o.starts_with("backstage-")
                        && !o.starts_with("backstage-pr")
                        && !o.starts_with("backstage-worker")
                })
        })
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap().to_string();
            let status = table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name.as_str()))
                .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
                .unwrap_or_default();
            (
                name,
                p["metadata"]["ownerReferences"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                status,
            )
        })
        .collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Messages of the deployment controller's events about `backstage` written after `since`.
fn deployment_events(k: &Kubectl, since: u64) -> Vec<String> {
    let v = json(
        k,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Deployment,involvedObject.name=backstage",
        ],
    );
    let mut items = v["items"].as_array().unwrap().clone();
    items.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    items
        .iter()
        .filter(|e| e["source"]["component"] == "deployment-controller")
        .filter(|e| {
            e["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > since
        })
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn set_image_rolls_out_and_kubectl_rollout_status_follows() {
    let (server, k, runtime, _root) = rig(&[]);
    let before = pods(&k);
    assert_eq!(before.len(), 3, "{before:?}");
    let since = server.resource_version();
    k.ok(&[
        "set",
        "image",
        "deployment/backstage",
        &format!("backstage={NEW}"),
    ]);
    let out = k.ok(&["rollout", "status", "deployment/backstage", "--timeout=60s"]);
    assert_eq!(
        out.lines().last().unwrap(),
        "deployment \"backstage\" successfully rolled out"
    );
    let sets = replica_sets(&k);
    let new: Vec<&(String, i64, String)> = sets.iter().filter(|(_, _, rev)| rev == "8").collect();
    assert_eq!(new.len(), 1, "{sets:?}");
    let new_rs = new[0].0.clone();
    assert_eq!(new[0].1, 2);
    let hash = new_rs.strip_prefix("backstage-").unwrap();
    assert_eq!(hash.len(), 10);
    let rs = server.get("ReplicaSet", "backstage", &new_rs).unwrap();
    assert_eq!(rs["metadata"]["labels"]["pod-template-hash"], hash);
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        rs["spec"]["template"]["spec"]["containers"][0]["image"],
        NEW
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    for (name, replicas, _) in &sets {
        if *name != new_rs {
            assert_eq!(*replicas, 0, "{name} scaled to 0");
        }
    }
    let now = pods(&k);
    assert_eq!(now.len(), 2, "{now:?}");
    for (name, owner, status) in &now {
        assert_eq!(owner, &new_rs);
        assert_eq!(status, "Running");
        assert!(name.starts_with(&format!("{new_rs}-")));
        let p = server.get("Pod", "backstage", name).unwrap();
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(
            p["status"]["containerStatuses"][0]["imageID"],
            backstage_testkit::image_id(NEW)
        );
    }
    let d = server.get("Deployment", "backstage", "backstage").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "8"
    );
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    for f in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(d["status"][f], 2, "{f}");
    }
    assert!(d["status"]["unavailableReplicas"].is_null());
    let conds: Vec<(String, String, String)> = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
                c["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        conds.contains(&(
            "Available".into(),
            "True".into(),
            "MinimumReplicasAvailable".into()
        )),
        "{conds:?}"
    );
    assert!(
        conds.contains(&(
            "Progressing".into(),
            "True".into(),
            "NewReplicaSetAvailable".into()
        )),
        "{conds:?}"
    );
    assert_eq!(
        deployment_events(&k, since),
        [
            format!("Scaled up replica set {new_rs} from 0 to 2"),
            "Scaled down replica set backstage-6c9f8d7b54 from 2 to 0".to_string(),
            "Scaled down replica set backstage-7d9f6b5c8 from 1 to 0".to_string(),
        ]
    );
    assert!(
        runtime.stopped.lock().unwrap().is_empty(),
        "fixture pods were never started"
    );
}

#[test]
fn a_crashing_image_keeps_the_old_pods_and_undo_brings_them_back() {
    let (server, k, runtime, _root) = rig(&[BAD]);
    // First a good rollout, so that every pod is the runtime's.
    k.ok(&[
        "set",
        "image",
        "deployment/backstage",
        &format!("backstage={NEW}"),
    ]);
    k.ok(&["rollout", "status", "deployment/backstage", "--timeout=60s"]);
    let good = pods(&k);
    assert_eq!(good.len(), 2, "{good:?}");
    let good_rs = good[0].1.clone();

    k.ok(&[
        "set",
        "image",
        "deployment/backstage",
        &format!("backstage={BAD}"),
    ]);
    wait_until("the new pods crash", || {
        pods(&k)
            .iter()
            .filter(|(_, _, s)| s == "CrashLoopBackOff")
            .count()
            == 2
    });
    let now = pods(&k);
    let bad_rs = now
        .iter()
        .find(|(_, _, s)| s == "CrashLoopBackOff")
        .unwrap()
        .1
        .clone();
    assert_ne!(bad_rs, good_rs);
    let mut serving: Vec<String> = now
        .iter()
        .filter(|(_, o, _)| *o == good_rs)
        .map(|(n, _, s)| format!("{n} {s}"))
        .collect();
    serving.sort();
    let mut want: Vec<String> = good.iter().map(|(n, _, s)| format!("{n} {s}")).collect();
    want.sort();
    assert_eq!(serving, want, "the old pods keep serving");
    let d = server.get("Deployment", "backstage", "backstage").unwrap();
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing["status"], "True");
    assert_eq!(progressing["reason"], "ReplicaSetUpdated");
    assert_eq!(d["status"]["updatedReplicas"], 2);
    assert_eq!(d["status"]["replicas"], 4);
    assert_eq!(d["status"]["availableReplicas"], 2);
    let crashed = now.iter().find(|(_, o, _)| *o == bad_rs).unwrap().0.clone();
    assert!(
        k.ok(&["logs", &crashed, "--previous"])
            .contains("The migration directory is corrupt")
    );
    // The rollout does not finish: rollout status gives up at its timeout.
    let out = k.run(&["rollout", "status", "deployment/backstage", "--timeout=1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: timed out waiting for the condition\n"
    );

    // kubectl rollout undo puts the previous template back: the old ReplicaSet is reused.
    k.ok(&["rollout", "undo", "deployment/backstage"]);
    k.ok(&["rollout", "status", "deployment/backstage", "--timeout=60s"]);
    let after = pods(&k);
    assert!(
        after
            .iter()
            .all(|(_, o, s)| *o == good_rs && s == "Running"),
        "{after:?} good {good_rs} bad {bad_rs} {:?}",
        replica_sets(&k)
    );
    let sets = replica_sets(&k);
    let good_set = sets.iter().find(|(n, _, _)| *n == good_rs).unwrap();
    assert_eq!((good_set.1, good_set.2.as_str()), (2, "10"));
    let bad_set = sets.iter().find(|(n, _, _)| *n == bad_rs).unwrap();
    assert_eq!((bad_set.1, bad_set.2.as_str()), (0, "9"));
    wait_until("the crashed pods are stopped", || {
        runtime.stopped.lock().unwrap().len() == 2
    });
    let mut stopped = runtime.stopped.lock().unwrap().clone();
    stopped.sort();
    let mut bad_pods: Vec<String> = now
        .iter()
        .filter(|(_, o, _)| *o == bad_rs)
        .map(|(n, _, _)| n.clone())
        .collect();
    bad_pods.sort();
    assert_eq!(stopped, bad_pods);
}

#[test]
fn a_progress_deadline_fails_rollout_status() {
    let (_server, k, _runtime, _root) = rig(&[BAD]);
    k.ok(&["patch", "deployment", "backstage", "--type", "merge", "-p",
           &format!(r#"{{"spec":{{"progressDeadlineSeconds":1,"template":{{"spec":{{"containers":[{{"name":"backstage","image":"{BAD}"}}]}}}}}}}}"#)]);
    let out = k.run(&["rollout", "status", "deployment/backstage", "--timeout=60s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: deployment \"backstage\" exceeded its progress deadline\n"
    );
}

#[test]
fn kubectl_scale_goes_through_the_scale_subresource() {
    let (server, k, runtime, _root) = rig(&[]);
    k.ok(&[
        "set",
        "image",
        "deployment/backstage",
        &format!("backstage={NEW}"),
    ]);
    k.ok(&["rollout", "status", "deployment/backstage", "--timeout=60s"]);
    let rs = pods(&k)[0].1.clone();
    assert_eq!(
        k.ok(&["scale", "deployment/backstage", "--replicas=3"]),
        "deployment.apps/backstage scaled\n"
    );
    assert!(server.requests().iter().any(|r| r.method == "PATCH"
        && r.path == "/apis/apps/v1/namespaces/backstage/deployments/backstage/scale"));
    k.ok(&["rollout", "status", "deployment/backstage", "--timeout=60s"]);
    wait_until("three ready pods", || {
        let p = pods(&k);
        p.len() == 3 && p.iter().all(|(_, o, s)| *o == rs && s == "Running")
    });
    k.ok(&["scale", "deployment/backstage", "--replicas=1"]);
    wait_until("one pod", || pods(&k).len() == 1);
    k.ok(&["rollout", "status", "deployment/backstage", "--timeout=60s"]);
    let d = server.get("Deployment", "backstage", "backstage").unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["status"]["replicas"], 1);
    assert_eq!(d["status"]["readyReplicas"], 1);
    wait_until("two runtimes stopped", || {
        runtime.stopped.lock().unwrap().len() == 2
    });
    let scale: Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/backstage/deployments/backstage/scale",
    ]))
    .unwrap();
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["kind"], "Scale");
}
