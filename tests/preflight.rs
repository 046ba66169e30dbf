//! `image:REF` sources: the preflight pod on the fake API server, whose simulated kubelet "pulls"
//! images registered to the real installed Backstage trees (1.55.0 and 1.54.0, from npm), against a
//! catalog database migrated by the real knex with 1.55.0's files. Checked: the exact rollback rows of
//! `db plan --to image:…1.54.0`, `db status --source image:…`, `version --diff pod image:…`, the
//! preflight pod's spec (read from the fake while its pull is slow), the pod deleted on success, on a
//! pull failure, and on Ctrl-C; leftovers deleted by the next run; forbidden create and exec; the
//! reversibility warnings on real migrations with an empty `down()`.

#[path = "support/backstage.rs"]
mod backstage;
#[path = "support/npm.rs"]
mod npm;
#[path = "support/plugin_dbs.rs"]
mod plugin_dbs;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/rig.rs"]
mod rig;

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use backstage_testkit::{Fixtures, ServerOptions};
use npm::{CATALOG_ADDED, KnexRig, KnexTarget};
use plugin_dbs::{Plugins, SENTINEL, USER};
use rig::{Rig, TOKEN, json, run};
use serde_json::{Value, json};

const NEWER: &str = "acr.example.io/backstage:1.55.0";
const OLDER: &str = "acr.example.io/backstage:1.54.0";
const SELECTOR: &str =
    "app.kubernetes.io/managed-by=kubectl-backstage,app.kubernetes.io/component=preflight";

/// The incident namespace with both releases registered as images.
fn rig_with_images(opts: Option<ServerOptions>) -> Rig {
    let rig = match opts {
        Some(opts) => Rig::start(opts),
        None => Rig::incident(),
    };
    rig.server.register_image(NEWER, backstage::install());
    rig.server.register_image(OLDER, backstage::install_older());
    rig
}

/// The preflight pods in the namespace, as the real kubectl lists them.
fn preflight_pods(rig: &Rig) -> Vec<Value> {
    let mut cmd = rig.kubectl();
    cmd.args([
        "get",
        "pods",
        "-n",
        "backstage",
        "-l",
        SELECTOR,
        "-o",
        "json",
    ]);
    let out = rig::stdout_of(cmd);
    json(&out)["items"].as_array().unwrap().clone()
}

/// `.js` migration files of a package in a tree, in Knex's order.
fn migration_files(tree: &Path, package: &str) -> Vec<String> {
    let dir = tree.join("node_modules").join(package).join("migrations");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".js"))
        .collect();
    files.sort();
    files
}

/// The real knex with the catalog migrations of a tree.
fn knex(database: &str, tree: &Path, args: &[&str]) {
    let target = KnexTarget {
        host: plugin_dbs::pg().host().into(),
        port: plugin_dbs::pg().port(),
        user: USER.into(),
        password: SENTINEL.into(),
        database: database.into(),
        migrations_dir: tree.join("node_modules/@backstage/plugin-catalog-backend/migrations"),
        table: "knex_migrations".into(),
        search_path: None,
        ssl_root_cert: None,
    };
    let out = KnexRig::get().run(&target, args);
    assert_eq!(out.code, 0, "knex {args:?} failed: {}", out.stderr);
}

fn preflight_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("preflight: "))
        .collect()
}

/// Each stderr line is a preflight line of pod `pod` (the pod name is generated).
fn pod_named_in(stderr: &str) -> String {
    let first = preflight_lines(stderr)
        .into_iter()
        .find(|l| l.starts_with("preflight: creating pod "))
        .unwrap_or_else(|| panic!("no creating line in {stderr}"));
    first["preflight: creating pod ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn db_plan_to_an_older_image_names_the_exact_rollback_and_deletes_its_pod() {
    let newer = backstage::install();
    let older = backstage::install_older();
    let rig = rig_with_images(None);
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", None);
    knex(&catalog, newer, &["migrate:latest"]);
    let with_cluster = || {
        let mut cmd = plugins.db();
        cmd.env("KUBECONFIG", &rig.kubeconfig);
        cmd
    };

    let (code, out, err) = run(with_cluster().args([
        "plan",
        "--to",
        &format!("image:{OLDER}"),
        "--plugin",
        "catalog",
        "-o",
        "json",
    ]));
    assert_eq!(code, 1, "a rollback is needed first\n{err}");
    let plan = json(&out);
    assert_eq!(plan["to"], format!("image:{OLDER}"));
    assert_eq!(plan["rollbackNeeded"], true);
    let older_files = migration_files(older, "@backstage/plugin-catalog-backend");
    assert_eq!(
        plan["databases"][0]["tables"],
        json!([{
            "table": "knex_migrations",
            "upgrade": [],
            "rollback": [CATALOG_ADDED[1], CATALOG_ADDED[0]],
            "commands": [format!("kubectl backstage db rollback --plugin catalog --to {}", older_files.last().unwrap())],
            "upgradeChecks": [],
        }])
    );
    assert_eq!(plan["warnings"], json!([]));
    // Progress on stderr, the pod deleted at the end. Between creating and reading, each state the
    // poll saw (it may be quick enough to miss some).
    let pod = pod_named_in(&err);
    let lines = preflight_lines(&err);
    assert_eq!(
        lines[0],
        format!(
            "preflight: creating pod {pod} with image {OLDER} (pull secrets, placement and security context of deployment/backstage)"
        )
    );
    assert_eq!(
        lines[lines.len() - 2..],
        [
            format!("preflight: pod {pod} is running; reading its migration files and packages"),
            format!("preflight: deleted pod {pod}"),
        ]
    );
    // In between: the states the poll saw (it may be quick enough to miss some), and every event
    // of the pod, each once, as the scheduler and the kubelet word them.
    let middle: Vec<&str> = lines[1..lines.len() - 2]
        .iter()
        .map(|l| {
            l.strip_prefix(&format!("preflight: pod {pod}: "))
                .unwrap_or_else(|| panic!("{l}"))
        })
        .collect();
    let events: Vec<&str> = middle
        .iter()
        .copied()
        .filter(|l| !["Pending", "Scheduled", "ContainerCreating"].contains(l))
        .collect();
    assert_eq!(
        events,
        [
            format!("Scheduled: Successfully assigned backstage/{pod} to fake-node-1"),
            format!("Pulling: Pulling image \"{OLDER}\""),
        ]
        .iter()
        .map(String::as_str)
        .chain(events.iter().copied().filter(|e| e.starts_with("Pulled: ")
            || e.starts_with("Created: ")
            || e.starts_with("Started: ")))
        .collect::<Vec<_>>(),
        "{err}"
    );
    assert_eq!(preflight_pods(&rig), Vec::<Value>::new());
    assert!(rig.server.get("Pod", "backstage", &pod).is_none());

    // The same image as the database: nothing pending or missing, the files of catalog 4.0.0.
    let (code, out, err) = run(with_cluster().args([
        "status",
        "--source",
        &format!("image:{NEWER}"),
        "--plugin",
        "catalog",
        "-o",
        "json",
    ]));
    assert_eq!(code, 0, "{err}\n{out}");
    let status = json(&out);
    assert_eq!(status["source"], format!("image:{NEWER}"));
    let table = &status["databases"][0]["tables"][0];
    assert_eq!(table["table"], "knex_migrations");
    assert_eq!(
        table["filesFrom"],
        "@backstage/plugin-catalog-backend@4.0.0/migrations"
    );
    assert_eq!(table["pending"], json!([]));
    assert_eq!(table["missing"], json!([]));
    assert_eq!(preflight_pods(&rig), Vec::<Value>::new());

    // Against the older image the two newer migrations are missing.
    let (code, out, _) = run(with_cluster().args([
        "status",
        "--source",
        &format!("image:{OLDER}"),
        "--plugin",
        "catalog",
        "-o",
        "json",
    ]));
    assert_eq!(code, 1);
    let status = json(&out);
    let missing: Vec<&str> = status["databases"][0]["tables"][0]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_else(|| m.as_str().unwrap()))
        .collect();
    assert_eq!(missing, CATALOG_ADDED);
}

#[test]
fn an_upgrade_plan_warns_of_real_migrations_with_an_empty_down() {
    let newer = backstage::install();
    let rig = rig_with_images(None);
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", None);
    // Only the first migration applied: every later one will run at start-up.
    knex(&catalog, newer, &["migrate:up"]);
    let files = migration_files(newer, "@backstage/plugin-catalog-backend");
    let mut cmd = plugins.db();
    cmd.env("KUBECONFIG", &rig.kubeconfig);
    let (code, out, err) = run(cmd.args([
        "plan",
        "--to",
        &format!("image:{NEWER}"),
        "--plugin",
        "catalog",
        "-o",
        "json",
    ]));
    assert_eq!(code, 0, "{err}");
    let plan = json(&out);
    let table = &plan["databases"][0]["tables"][0];
    assert_eq!(table["upgrade"], json!(files[1..]));
    let irreversible: Vec<(&str, &str)> = table["upgradeChecks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["reversible"] != true)
        .map(|c| (c["name"].as_str().unwrap(), c["down"].as_str().unwrap()))
        .collect();
    assert_eq!(
        irreversible,
        [
            ("20200923104503_case_insensitivity.js", "empty"),
            ("20220222164811_reprocess_for_relation_refs.js", "empty"),
            ("20230125085746_trigger_reprocessing.js", "empty"),
        ]
    );
    assert_eq!(
        table["upgradeChecks"].as_array().unwrap().len(),
        files.len() - 1
    );
    assert_eq!(
        plan["warnings"],
        json!([
            "plugin catalog table knex_migrations: 20200923104503_case_insensitivity.js cannot be rolled back once it has run (its down() is empty)",
            "plugin catalog table knex_migrations: 20220222164811_reprocess_for_relation_refs.js cannot be rolled back once it has run (its down() is empty)",
            "plugin catalog table knex_migrations: 20230125085746_trigger_reprocessing.js cannot be rolled back once it has run (its down() is empty)",
        ])
    );

    // The same check on a local checkout of the same tree, run by the local node; as a table.
    let mut cmd = plugins.db();
    cmd.env("KUBECONFIG", &rig.kubeconfig);
    let (code, out, err) = run(cmd.args([
        "plan",
        "--to",
        newer.to_str().unwrap(),
        "--plugin",
        "catalog",
    ]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("cannot be rolled back"))
        .collect();
    assert_eq!(
        lines,
        [
            "    cannot be rolled back: 20200923104503_case_insensitivity.js (its down() is empty)",
            "    cannot be rolled back: 20220222164811_reprocess_for_relation_refs.js (its down() is empty)",
            "    cannot be rolled back: 20230125085746_trigger_reprocessing.js (its down() is empty)",
            "warning: plugin catalog table knex_migrations: 20200923104503_case_insensitivity.js cannot be rolled back once it has run (its down() is empty)",
            "warning: plugin catalog table knex_migrations: 20220222164811_reprocess_for_relation_refs.js cannot be rolled back once it has run (its down() is empty)",
            "warning: plugin catalog table knex_migrations: 20230125085746_trigger_reprocessing.js cannot be rolled back once it has run (its down() is empty)",
        ]
    );
    assert_eq!(preflight_pods(&rig), Vec::<Value>::new());
}

#[test]
fn version_diff_of_the_running_pod_and_an_image() {
    let rig = rig_with_images(None);
    // The running pod of the incident runs 1.55.0's tree.
    rig.server
        .set_pod_root("backstage-6c9f8d7b54-k4m2x", backstage::install());
    let (code, out, err) = run(rig.plugin().args([
        "version",
        "--diff",
        "pod:backstage-6c9f8d7b54-k4m2x",
        &format!("image:{OLDER}"),
        "-o",
        "json",
    ]));
    assert_eq!(code, 1, "a downgrade\n{err}");
    let diff = json(&out);
    assert_eq!(
        (
            &diff["from"]["release"],
            &diff["to"]["release"],
            &diff["to"]["source"],
            &diff["downgrade"]
        ),
        (
            &json!("1.55.0"),
            &json!("1.54.0"),
            &json!(format!("image:{OLDER}")),
            &json!(true)
        ),
        "{diff}"
    );
    assert_eq!(preflight_pods(&rig), Vec::<Value>::new());
}

/// The Backstage Deployment with placement, pull secrets and security settings to copy.
fn deployment_with_settings(rig: &Rig) {
    let mut deployment = rig
        .server
        .get("Deployment", "backstage", "backstage")
        .expect("the incident has deployment/backstage");
    let spec = &mut deployment["spec"]["template"]["spec"];
    spec["imagePullSecrets"] = json!([{"name": "acr-pull"}]);
    spec["nodeSelector"] = json!({"agentpool": "apps"});
    spec["tolerations"] =
        json!([{"key": "dedicated", "operator": "Equal", "value": "apps", "effect": "NoSchedule"}]);
    spec["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 1000});
    spec["containers"][0]["securityContext"] =
        json!({"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false});
    spec["containers"][0]["env"] = json!([{"name": "POSTGRES_PASSWORD", "value": "never-copied"}]);
    rig.server.apply(deployment);
}

/// Starts the plugin with stderr piped; returns the child and a channel of its stderr lines.
fn spawn(rig: &Rig, args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = rig
        .plugin_process()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    rig::kill_after(&child, Duration::from_secs(120));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until one ends with `suffix`; returns every line read.
fn until(rx: &std::sync::mpsc::Receiver<String>, suffix: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(line) => {
                let done = line.ends_with(suffix);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no line ending {suffix:?} ({e}); saw {seen:?}"),
        }
    }
}

#[test]
fn the_pod_copies_the_deployment_and_ctrl_c_during_a_slow_pull_deletes_it() {
    let rig = rig_with_images(None);
    deployment_with_settings(&rig);
    rig.server
        .set_image_pull_delay(OLDER, Duration::from_secs(600));
    let (mut child, rx) = spawn(&rig, &["version", "--source", &format!("image:{OLDER}")]);
    let seen = until(&rx, ": ContainerCreating");
    let pod = seen
        .iter()
        .find_map(|l| l.strip_prefix("preflight: creating pod "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    // The pod as stored while it pulls.
    let stored = rig.server.get("Pod", "backstage", &pod).unwrap();
    assert_eq!(
        stored["metadata"]["labels"],
        json!({"app.kubernetes.io/component": "preflight", "app.kubernetes.io/managed-by": "kubectl-backstage"})
    );
    assert_eq!(
        stored["metadata"]["annotations"],
        json!({"kubectl-backstage.io/image": OLDER, "kubectl-backstage.io/modelled-on": "deployment/backstage"})
    );
    let spec = &stored["spec"];
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "acr-pull"}]));
    assert_eq!(spec["nodeSelector"], json!({"agentpool": "apps"}));
    assert_eq!(
        spec["tolerations"],
        json!([{"key": "dedicated", "operator": "Equal", "value": "apps", "effect": "NoSchedule"}])
    );
    assert_eq!(
        spec["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 1000})
    );
    assert_eq!(
        (
            &spec["restartPolicy"],
            &spec["activeDeadlineSeconds"],
            &spec["automountServiceAccountToken"]
        ),
        (&json!("Never"), &json!(900), &json!(false))
    );
    let container = &spec["containers"][0];
    assert_eq!(
        (
            &container["name"],
            &container["image"],
            &container["command"],
            &container["env"]
        ),
        (
            &json!("preflight"),
            &json!(OLDER),
            &json!(["node", "-e", "setTimeout(() => {}, 900000)"]),
            &Value::Null
        )
    );
    assert_eq!(
        container["securityContext"],
        json!({"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false})
    );
    assert_eq!(
        container["resources"],
        json!({"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "50m", "memory": "128Mi"}})
    );

    // Ctrl-C: the pod is deleted, then exit 130.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    // Events of the pod seen after the ContainerCreating line may come first; then exactly these.
    let rest: Vec<String> = rx
        .iter()
        .filter(|l| !l.starts_with(&format!("preflight: pod {pod}: ")))
        .collect();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert_eq!(
        rest,
        [
            format!("preflight: deleted pod {pod}"),
            format!("error: interrupted: the preflight pod {pod} for image:{OLDER} was deleted"),
        ]
    );
    assert!(rig.server.get("Pod", "backstage", &pod).is_none());
    assert_eq!(preflight_pods(&rig), Vec::<Value>::new());
}

#[test]
fn a_pull_failure_is_exit_2_with_the_kubelets_reason_and_the_pod_deleted() {
    let rig = rig_with_images(None);
    let image = "acr.example.io/backstage:pr-404-deadbee";
    let (code, out, err) =
        run(rig
            .plugin()
            .args(["version", "--source", &format!("image:{image}")]));
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, "");
    let pod = pod_named_in(&err);
    let error = err.lines().last().unwrap();
    let not_found = format!(
        "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
    );
    // The poll sees the first failure, or the back-off that follows it 300 ms later.
    let pulled = format!(
        "error: image:{image} cannot be pulled: ErrImagePull: {not_found} (preflight pod {pod} deleted)"
    );
    let backoff = format!(
        "error: image:{image} cannot be pulled: ImagePullBackOff: Back-off pulling image \"{image}\": ErrImagePull: {not_found} (preflight pod {pod} deleted)"
    );
    assert!(error == pulled || error == backoff, "{error}\n{pulled}");
    assert!(
        err.contains(&format!("preflight: deleted pod {pod}\n")),
        "{err}"
    );
    assert_eq!(preflight_pods(&rig), Vec::<Value>::new());
}

#[test]
fn leftovers_of_a_killed_run_are_deleted_by_the_next_and_others_are_left_alone() {
    let rig = rig_with_images(None);
    let leftover = |name: &str, created: &str, phase: &str| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "backstage", "uid": format!("uid-{name}"),
                         "creationTimestamp": created,
                         "labels": {"app.kubernetes.io/managed-by": "kubectl-backstage", "app.kubernetes.io/component": "preflight"}},
            "spec": {"activeDeadlineSeconds": 900, "restartPolicy": "Never",
                     "containers": [{"name": "preflight", "image": OLDER}]},
            "status": {"phase": phase}
        })
    };
    let now = jiff::Timestamp::now();
    let ago = |secs: i64| (now - jiff::SignedDuration::from_secs(secs)).to_string();
    rig.server.apply(leftover(
        "backstage-preflight-old00001",
        &ago(3600),
        "Running",
    ));
    rig.server
        .apply(leftover("backstage-preflight-done0001", &ago(60), "Failed"));
    // Another run's pod, still within its deadline: not ours to delete.
    rig.server.apply(leftover(
        "backstage-preflight-busy0001",
        &ago(30),
        "Running",
    ));
    let (code, _, err) = run(rig
        .plugin()
        .args(["version", "--source", &format!("image:{NEWER}")]));
    assert_eq!(code, 0, "{err}");
    let lines = preflight_lines(&err);
    assert_eq!(
        &lines[..2],
        [
            "preflight: deleted pod backstage-preflight-done0001 left by an earlier run (phase Failed)",
            "preflight: deleted pod backstage-preflight-old00001 left by an earlier run (older than its deadline of 900s)",
        ]
    );
    let names: Vec<String> = preflight_pods(&rig)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["backstage-preflight-busy0001"]);
}

#[test]
fn without_rbac_to_create_pods_or_exec_it_is_exit_2_naming_the_verb_and_resource() {
    for (verb, resource, lacks) in [
        ("create", "pods", "create pods"),
        ("create", "pods/exec", "create pods/exec"),
    ] {
        let rig = rig_with_images(Some(ServerOptions {
            tls: true,
            token: Some(TOKEN.into()),
            forbidden: vec![(verb.into(), resource.into())],
            ..ServerOptions::new(Fixtures::incident())
        }));
        let (code, out, err) =
            run(rig
                .plugin()
                .args(["version", "--source", &format!("image:{NEWER}")]));
        assert_eq!(code, 2, "{err}");
        assert_eq!(out, "");
        assert_eq!(
            err.lines().last().unwrap(),
            format!(
                "error: image:{NEWER} needs permission to {lacks} in namespace \"backstage\" (context \"fake\"), and that is forbidden; grant it, or read a checkout of that version with --source DIR"
            )
        );
        assert_eq!(preflight_pods(&rig), Vec::<Value>::new(), "{lacks}");
    }
}
