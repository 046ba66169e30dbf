//! The guided `upgrade --image` / `rollback --to-image` story on real Backstage backends: the pod
//! runtime of the rollout simulation (support/rollout.rs) runs a real 1.54.0 or 1.55.0 backend per pod
//! against the test PostgreSQL, with one database prefix per environment.

#[path = "support/backstage.rs"]
mod backstage;
#[path = "support/npm.rs"]
mod npm;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/rollout.rs"]
mod rollout;

use std::path::PathBuf;
use std::sync::Arc;

use backstage_testkit::{FakeApiServer, Fixtures, PodOutcome, PodRuntime, PodStart, ServerOptions};
use rollout::{BackstageRuntime, IMAGE_1_54_0, IMAGE_1_55_0};
use serde_json::{Value, json};

/// The two catalog migrations 1.55.0 (catalog-backend 4.0.0) has and 1.54.0 (3.9.0) lacks.
const CATALOG_1_55_ONLY: [&str; 2] = [
    "20260904000000_fix_search_entity_id_ndistinct.js",
    "20260912000000_refresh_state_maintenance.js",
];

fn pod(name: &str, image: &str) -> PodStart {
    PodStart {
        namespace: "backstage".into(),
        pod: name.into(),
        container: "backstage".into(),
        image: image.into(),
        root: None,
        command: None,
        args: None,
        env: Vec::new(),
    }
}

/// The catalog's completed migrations, in id order.
fn catalog_migrations(runtime: &BackstageRuntime) -> Vec<String> {
    let mut client = backstage::pg().client(&runtime.database("catalog"));
    client
        .query("SELECT name FROM knex_migrations ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The runtime alone: 1.54.0 starts on empty databases, 1.55.0 migrates them further, and a 1.54.0
/// pod after that fails with Backstage's own corrupt-directory error naming exactly the two catalog
/// files; a preflight pod (command replaced) is ready at once without a backend.
#[test]
fn runtime_runs_real_backends_per_image_on_shared_databases() {
    let runtime = BackstageRuntime::new();

    let PodOutcome::Ready { ports, log_file } = runtime.start(&pod("old-1", IMAGE_1_54_0)) else {
        panic!("1.54.0 on empty databases must become ready");
    };
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].0, rollout::CONTAINER_PORT);
    assert!(log_file.unwrap().exists());
    let after_old = catalog_migrations(&runtime);
    for name in CATALOG_1_55_ONLY {
        assert!(
            !after_old.contains(&name.to_string()),
            "{name} applied by 1.54.0"
        );
    }
    runtime.stop("backstage", "old-1");
    assert_eq!(runtime.running_pods(), Vec::<String>::new());

    let PodOutcome::Ready { .. } = runtime.start(&pod("new-1", IMAGE_1_55_0)) else {
        panic!("1.55.0 must migrate and become ready");
    };
    let after_new = catalog_migrations(&runtime);
    assert_eq!(after_new.len(), after_old.len() + 2);
    assert_eq!(&after_new[after_old.len()..], CATALOG_1_55_ONLY);
    assert_eq!(runtime.running_pods(), vec!["new-1".to_string()]);

    // The real 1.54.0 backend on databases 1.55.0 migrated: its catalog plugin fails to start, and
    // the process stays up — liveness 200, readiness 503 — so a pod is Running and never ready.
    let PodOutcome::Unready { ports, log_file } = runtime.start(&pod("old-2", IMAGE_1_54_0)) else {
        panic!("1.54.0 on a database 1.55.0 migrated must fail to start and stay up");
    };
    assert_eq!(ports.len(), 1);
    let port = ports[0].1.port();
    assert_eq!(
        backstage::http_get(port, "/.backstage/health/v1/readiness", None).map(|r| r.0),
        Some(503)
    );
    assert_eq!(
        backstage::http_get(port, "/.backstage/health/v1/liveness", None).map(|r| r.0),
        Some(200)
    );
    let log = std::fs::read_to_string(log_file.unwrap()).unwrap();
    assert!(
        log.contains(&format!(
            "The migration directory is corrupt, the following files are missing: {}",
            CATALOG_1_55_ONLY.join(", ")
        )),
        "{log}"
    );
    assert!(log.contains("Plugin 'catalog' startup failed"), "{log}");
    assert_eq!(catalog_migrations(&runtime), after_new);
    assert_eq!(
        runtime.running_pods(),
        vec!["new-1".to_string(), "old-2".to_string()]
    );
    runtime.stop("backstage", "old-2");
    assert_eq!(runtime.running_pods(), vec!["new-1".to_string()]);

    let mut preflight = pod("preflight", IMAGE_1_54_0);
    preflight.command = Some(vec!["/bin/sh".into(), "-c".into(), "ls".into()]);
    let PodOutcome::Ready { ports, log_file } = runtime.start(&preflight) else {
        panic!("a replaced command is ready at once");
    };
    assert!(ports.is_empty() && log_file.is_none());
    assert_eq!(
        runtime.history(),
        vec![
            ("old-1".to_string(), IMAGE_1_54_0.to_string(), true),
            ("new-1".to_string(), IMAGE_1_55_0.to_string(), true),
            ("old-2".to_string(), IMAGE_1_54_0.to_string(), false),
            ("preflight".to_string(), IMAGE_1_54_0.to_string(), true),
        ]
    );
}

const NS: &str = "backstage";
const DEPLOYMENT: &str = "backstage";
const PASSWORD_VAR: &str = "KBS_TEST_DB_PASSWORD";

/// A Backstage namespace on the fake API server whose pods run real backends: the Deployment (one
/// replica, `image`), its Service, the two images registered with their trees and the runtime; the
/// fake's own deployment controller simulation rolls it out.
struct Environment {
    server: Arc<FakeApiServer>,
    runtime: Arc<BackstageRuntime>,
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Environment {
    fn start(image: &str) -> Environment {
        Environment::start_with(image, false)
    }

    /// With `flux`: Flux's kinds served, the Deployment labelled by HelmRelease flux-system/backstage
    /// (which wants `image`), and the fake's Flux reconciling: a changed image is set back unless
    /// the HelmRelease is suspended.
    fn start_with(image: &str, flux: bool) -> Environment {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut fixtures = Fixtures::empty();
        let labels = json!({"app.kubernetes.io/name": "backstage", "app.kubernetes.io/instance": "backstage"});
        let mut deployment_labels = labels.clone();
        if flux {
            deployment_labels["helm.toolkit.fluxcd.io/name"] = json!("backstage");
            deployment_labels["helm.toolkit.fluxcd.io/namespace"] = json!("flux-system");
        }
        fixtures.add(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT, "namespace": NS, "labels": deployment_labels, "generation": 1},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "backstage", "image": image,
                        "ports": [{"name": "http-backend", "containerPort": 7007}]}]}}},
            "status": {},
        }));
        fixtures.add(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "backstage", "namespace": NS, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "http-backend", "port": 7007, "targetPort": "http-backend"}]},
        }));
        let server = Arc::new(
            FakeApiServer::start(ServerOptions {
                flux,
                ..ServerOptions::new(fixtures)
            })
            .unwrap(),
        );
        if flux {
            server.apply(json!({
                "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                "metadata": {"name": "backstage", "namespace": "flux-system", "generation": 3},
                "spec": {"interval": "5m", "releaseName": "backstage", "targetNamespace": NS,
                    "chart": {"spec": {"chart": "backstage", "version": "1.4.2"}}},
                "status": {"observedGeneration": 3, "lastAttemptedRevision": "1.4.2",
                    "conditions": [{"type": "Ready", "status": "True", "reason": "UpgradeSucceeded"}],
                    "history": [{"chartVersion": "1.4.2", "status": "deployed"}]},
            }));
            server.set_flux_desired_image(
                "HelmRelease",
                "flux-system",
                "backstage",
                "backstage",
                image,
            );
            server.flux_reconciles(true);
        }
        let runtime = Arc::new(BackstageRuntime::new());
        server.register_image(IMAGE_1_54_0, backstage::install_older());
        server.register_image(IMAGE_1_55_0, backstage::install());
        server.set_pod_runtime(runtime.clone());
        // The fixture has no pods: a first change of the template makes the controller roll it out.
        let mut deployment = server.get("Deployment", NS, DEPLOYMENT).unwrap();
        deployment["spec"]["template"]["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"});
        server.apply(deployment);
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, "fake", Some(NS), "t")
            .unwrap();
        let env = Environment {
            server,
            runtime,
            home,
            kubeconfig,
        };
        env.wait_until_rolled_out(image);
        env
    }

    /// The plugin with a clean environment, the fake's kubeconfig and the databases' flags.
    fn plugin(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("kubectl-backstage").unwrap();
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env(PASSWORD_VAR, backstage::DB_PASSWORD)
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig);
        cmd
    }

    fn db_flags(&self) -> Vec<String> {
        postgres::connection_flags(
            backstage::DB_USER,
            Some(PASSWORD_VAR),
            self.runtime.prefix(),
        )
    }

    fn guided(&self, command: &[&str]) -> (i32, String, String) {
        let mut cmd = self.plugin(command);
        cmd.args(self.db_flags());
        run(&mut cmd)
    }

    /// kubectl itself against the fake, with its own HOME.
    fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new("kubectl")
            .env("HOME", self.home.path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl is installed");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn deployment(&self) -> Value {
        self.server.get("Deployment", NS, DEPLOYMENT).unwrap()
    }

    fn image(&self) -> String {
        self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Pods (not being deleted): name → (image, ready, restarts, waiting reason).
    fn pods(&self) -> Vec<(String, String, bool, i64, Option<String>)> {
        let (code, out, err) = self.kubectl(&["get", "pods", "-n", NS, "-o", "json"]);
        assert_eq!(code, 0, "{err}");
        let list: Value = serde_json::from_str(&out).unwrap();
        let mut pods: Vec<_> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| {
                !p["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .contains("preflight")
            })
            .map(|p| {
                let status = &p["status"]["containerStatuses"][0];
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    status["ready"].as_bool().unwrap_or(false),
                    status["restartCount"].as_i64().unwrap_or(0),
                    status["state"]["waiting"]["reason"]
                        .as_str()
                        .map(str::to_string),
                )
            })
            .collect();
        pods.sort();
        pods
    }

    /// Polls (at most three minutes) until the only pods run `image` and are ready.
    fn wait_until_rolled_out(&self, image: &str) {
        self.wait_until(&format!("every pod on {image} and ready"), |env| {
            let pods = env.pods();
            !pods.is_empty() && pods.iter().all(|p| p.1 == image && p.2)
        });
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Environment) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        while !done(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "not reached within 180s: {what}; pods: {:?}",
                self.pods()
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    /// The catalog's migration names in id order.
    fn catalog(&self) -> Vec<String> {
        catalog_migrations(&self.runtime)
    }
}

fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(
        !stdout.contains(backstage::DB_PASSWORD) && !stderr.contains(backstage::DB_PASSWORD),
        "the password leaked:\n{stdout}\n{stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// The steps of a JSON report as (step, state).
fn steps(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `pg_dump --schema-only` of a database without the backend's own tables (scheduler, public keys:
/// the knex peer has none), the random `\restrict` lines and comments.
fn schema(database: &str) -> String {
    let pg = backstage::pg();
    let out = std::process::Command::new("/usr/lib/postgresql/15/bin/pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-T",
            "backstage_backend_*",
        ])
        .args([
            "-h",
            pg.host(),
            "-p",
            &pg.port().to_string(),
            "-U",
            pg.superuser(),
            database,
        ])
        .env("PGPASSWORD", pg.password())
        .env("PGSSLMODE", "disable")
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict") && !l.starts_with("--")
        })
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The peer: a database the real knex CLI migrates with 1.55.0's catalog files, then takes down
/// `names` one by one (`knex migrate:down NAME`), newest first.
fn knex_peer(names: &[&str]) -> (String, Vec<String>) {
    let pg = backstage::pg();
    let database = format!("peer{}_{}", std::process::id(), names.len());
    pg.drop_named(&database);
    pg.create_named(&database);
    let target = npm::KnexTarget {
        host: pg.host().into(),
        port: pg.port(),
        user: pg.superuser().into(),
        password: pg.password().into(),
        database: database.clone(),
        migrations_dir: backstage::install()
            .join("node_modules/@backstage/plugin-catalog-backend/migrations"),
        table: "knex_migrations".into(),
        search_path: None,
        ssl_root_cert: None,
    };
    let rig = npm::KnexRig::get();
    let latest = rig.run(&target, &["migrate:latest"]);
    assert_eq!(latest.code, 0, "{}", latest.stderr);
    for name in names {
        let down = rig.run(&target, &["migrate:down", name]);
        assert_eq!(down.code, 0, "{}", down.stderr);
    }
    let mut client = pg.client(&database);
    let rows = client
        .query("SELECT name FROM knex_migrations ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (database, rows)
}

/// The whole story on real backends: an upgrade 1.54.0 → 1.55.0 (the catalog's two new migrations
/// applied by the new pod, which becomes ready); a downgrade by a plain `kubectl set image`, whose
/// pod crashes with Backstage's own corrupt-directory error and is diagnosed by `health`; a
/// `rollback --to-image` dry run that changes nothing; the rollback interrupted by a too-short wait
/// (exit 3, migrations undone), finished by a second run that recomputes what is left; the
/// database equal to what the real knex leaves, and the pods ready on 1.54.0.
#[test]
fn upgrade_then_downgrade_then_rollback_on_real_backends() {
    let env = Environment::start(IMAGE_1_54_0);
    let before = env.catalog();
    for name in CATALOG_1_55_ONLY {
        assert!(!before.contains(&name.to_string()));
    }

    // Upgrade.
    let (code, out, err) = env.guided(&["upgrade", "--image", IMAGE_1_55_0, "--yes", "-o", "json"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["kind"], "Upgrade");
    assert_eq!(report["result"], "done");
    assert_eq!(report["fromImage"], IMAGE_1_54_0);
    assert_eq!(report["toImage"], IMAGE_1_55_0);
    assert_eq!(report["source"], format!("image:{IMAGE_1_55_0}"));
    assert_eq!(
        steps(&report),
        pairs(&[
            ("preflight", "done"),
            ("setImage", "done"),
            ("waitRollout", "done"),
            ("verify", "done"),
        ])
    );
    let catalog_plan = report["plan"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin"] == "catalog")
        .unwrap();
    assert_eq!(
        catalog_plan["tables"][0]["upgrade"],
        json!(CATALOG_1_55_ONLY)
    );
    // The new pod's readiness and liveness answered through a port-forward to the Service.
    let verify = report["steps"][3]["detail"].as_str().unwrap();
    assert!(
        verify.starts_with(&format!(
            "1 pod(s) of {IMAGE_1_55_0} ready; 3 smoke check(s) passed at http://127.0.0.1:"
        )),
        "{verify}"
    );
    assert!(
        err.contains("step 2/4: set the image to registry.test/backstage:1.55.0"),
        "{err}"
    );
    assert_eq!(env.image(), IMAGE_1_55_0);
    assert_eq!(
        env.deployment()["metadata"]["annotations"]["kubernetes.io/change-cause"],
        format!("kubectl backstage upgrade --image {IMAGE_1_55_0}")
    );
    let after_upgrade = env.catalog();
    assert_eq!(&after_upgrade[before.len()..], CATALOG_1_55_ONLY);
    let pods = env.pods();
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!((pods[0].1.as_str(), pods[0].2), (IMAGE_1_55_0, true));

    // A downgrade without the command: the 1.54.0 pod never becomes ready, the 1.55.0 pod stays.
    let (code, _, err) = env.kubectl(&[
        "set",
        "image",
        "-n",
        NS,
        "deployment/backstage",
        &format!("backstage={IMAGE_1_54_0}"),
    ]);
    assert_eq!(code, 0, "{err}");
    env.wait_until("a 1.54.0 pod running and never ready", |env| {
        env.pods()
            .iter()
            .any(|p| p.1 == IMAGE_1_54_0 && !p.2 && p.3 == 0 && p.4.is_none())
    });
    let crashed = env
        .pods()
        .into_iter()
        .find(|p| p.1 == IMAGE_1_54_0)
        .unwrap()
        .0;
    let (code, out, err) = run(env
        .plugin(&["health", "-n", NS, "-o", "json"])
        .env("NO_COLOR", "1"));
    assert_eq!(code, 1, "{out}\n{err}");
    let health: Value = serde_json::from_str(&out).unwrap();
    let finding = health["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["object"] == format!("pod/{crashed}"))
        .unwrap_or_else(|| panic!("no finding for pod/{crashed}: {health}"));
    assert_eq!(finding["severity"], "error");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains("the migration directory of plugin catalog is corrupt")
            && message.contains(&CATALOG_1_55_ONLY.join(", ")),
        "{message}"
    );
    assert_eq!(
        env.catalog(),
        after_upgrade,
        "a crashing pod changes nothing"
    );

    // Dry run: the plan, nothing changed.
    let (code, out, err) = env.guided(&[
        "rollback",
        "--to-image",
        IMAGE_1_54_0,
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["kind"], "Rollback");
    assert_eq!(report["result"], "planned");
    assert_eq!(
        steps(&report),
        pairs(&[
            ("preflight", "done"),
            ("rollbackMigrations", "planned"),
            ("setImage", "planned"),
            ("waitRollout", "planned"),
            ("verify", "planned"),
        ])
    );
    assert_eq!(
        report["steps"][1]["migrations"],
        json!([CATALOG_1_55_ONLY[1], CATALOG_1_55_ONLY[0]])
    );
    assert_eq!(report["steps"][2]["restart"], true);
    assert_eq!(env.catalog(), after_upgrade);

    // Without a terminal and without --yes: refused, nothing changed.
    let (code, out, err) = env.guided(&["rollback", "--to-image", IMAGE_1_54_0]);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("stdin is not a terminal; pass --yes"), "{err}");
    assert_eq!(env.catalog(), after_upgrade);

    // The rollback, cut short by a wait too short for a backend to start: exit 3, the migrations
    // undone (in the 1.55.0 pod), the rollout restarted.
    let (code, out, err) = env.guided(&[
        "rollback",
        "--to-image",
        IMAGE_1_54_0,
        "--yes",
        "--timeout",
        "1s",
        "-o",
        "json",
    ]);
    assert_eq!(code, 3, "stdout: {out}\nstderr: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["result"], "stopped");
    assert_eq!(
        steps(&report),
        pairs(&[
            ("preflight", "done"),
            ("rollbackMigrations", "done"),
            ("setImage", "done"),
            ("waitRollout", "failed"),
            ("verify", "notRun"),
        ])
    );
    assert_eq!(
        report["wayBack"][0],
        format!("kubectl set image deployment/backstage backstage={IMAGE_1_55_0}")
    );
    assert_eq!(env.catalog(), before);

    // The second run: nothing left to undo, the image set; it waits and checks.
    let (code, out, err) = env.guided(&[
        "rollback",
        "--to-image",
        IMAGE_1_54_0,
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["result"], "done");
    let states = steps(&report);
    assert_eq!(
        states[1],
        ("rollbackMigrations".to_string(), "alreadyDone".to_string())
    );
    assert_eq!(
        states[2],
        ("setImage".to_string(), "alreadyDone".to_string())
    );
    assert_eq!(states[4], ("verify".to_string(), "done".to_string()));
    env.wait_until_rolled_out(IMAGE_1_54_0);
    assert_eq!(env.catalog(), before);

    // What the real knex leaves: the same migrations, the same schema.
    let (peer, peer_rows) = knex_peer(&[CATALOG_1_55_ONLY[1], CATALOG_1_55_ONLY[0]]);
    assert_eq!(env.catalog(), peer_rows);
    assert_eq!(schema(&env.runtime.database("catalog")), schema(&peer));
    backstage::pg().drop_named(&peer);
}

/// Flux manages the Deployment: the upgrade is refused (exit 2, nothing changed) and names the way
/// forward; with `--suspend-flux` the HelmRelease is suspended, recorded on the Deployment, the
/// upgrade goes through and stays (Flux does not set the image back), and the resume is printed.
#[test]
fn flux_refuses_then_suspend_flux_upgrades() {
    let env = Environment::start_with(IMAGE_1_54_0, true);
    let before = env.catalog();

    let (code, out, err) = env.guided(&["upgrade", "--image", IMAGE_1_55_0, "--yes"]);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert_eq!(
        err.lines().last().unwrap(),
        "error: HelmRelease flux-system/backstage (Flux) manages the Deployment and would revert the image: change the image in Git, or rerun with --suspend-flux (and --resume-flux to resume it at the end)"
    );
    assert_eq!(env.image(), IMAGE_1_54_0);
    assert_eq!(env.catalog(), before);
    let release = env
        .server
        .get("HelmRelease", "flux-system", "backstage")
        .unwrap();
    assert!(release["spec"]["suspend"].is_null());

    let (code, out, err) = env.guided(&[
        "upgrade",
        "--image",
        IMAGE_1_55_0,
        "--yes",
        "--suspend-flux",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        steps(&report),
        pairs(&[
            ("preflight", "done"),
            ("suspendFlux", "done"),
            ("setImage", "done"),
            ("waitRollout", "done"),
            ("verify", "done"),
        ])
    );
    assert_eq!(
        report["next"],
        json!(["flux resume helmrelease backstage -n flux-system"])
    );
    let release = env
        .server
        .get("HelmRelease", "flux-system", "backstage")
        .unwrap();
    assert_eq!(release["spec"]["suspend"], true);
    let annotations = &env.deployment()["metadata"]["annotations"];
    assert!(
        annotations
            .as_object()
            .unwrap()
            .iter()
            .any(|(k, v)| k.contains("suspended") && v.as_str().unwrap().contains("HelmRelease")),
        "{annotations}"
    );
    // Flux, suspended, leaves the new image alone.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(env.image(), IMAGE_1_55_0);
    assert_eq!(&env.catalog()[before.len()..], CATALOG_1_55_ONLY);

    // Git has the new image now; the same command again with --resume-flux only resumes.
    env.server.set_flux_desired_image(
        "HelmRelease",
        "flux-system",
        "backstage",
        "backstage",
        IMAGE_1_55_0,
    );
    let (code, out, err) = env.guided(&[
        "upgrade",
        "--image",
        IMAGE_1_55_0,
        "--yes",
        "--resume-flux",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        steps(&report),
        pairs(&[
            ("preflight", "done"),
            ("suspendFlux", "alreadyDone"),
            ("setImage", "alreadyDone"),
            ("waitRollout", "alreadyDone"),
            ("verify", "done"),
            ("resumeFlux", "done"),
        ])
    );
    assert_eq!(report["next"], json!([]));
    let release = env
        .server
        .get("HelmRelease", "flux-system", "backstage")
        .unwrap();
    assert!(release["spec"]["suspend"].is_null(), "{release}");
    assert!(
        env.deployment()["metadata"]["annotations"]
            .get("kubectl-backstage.io/suspended-flux")
            .is_none_or(Value::is_null)
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(env.image(), IMAGE_1_55_0);
}

/// Flux is never fought: when the HelmRelease is resumed by someone else during the wait, Flux sets
/// the image back, and the upgrade stops and says so instead of setting it again.
#[test]
fn an_image_set_back_by_flux_during_the_wait_stops_the_upgrade() {
    let env = Environment::start_with(IMAGE_1_54_0, true);
    let (code, out, err) = std::thread::scope(|scope| {
        let upgrade = scope.spawn(|| {
            env.guided(&[
                "upgrade",
                "--image",
                IMAGE_1_55_0,
                "--yes",
                "--suspend-flux",
                "-o",
                "json",
            ])
        });
        // Once the image is set, someone resumes the HelmRelease (as `flux resume` would).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while env.image() != IMAGE_1_55_0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the image was never set"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let (code, _, err) = env.kubectl(&[
            "patch",
            "helmrelease",
            "backstage",
            "-n",
            "flux-system",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"suspend":false}}"#,
        ]);
        assert_eq!(code, 0, "{err}");
        upgrade.join().unwrap()
    });
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["result"], "failed");
    let wait = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "waitRollout")
        .unwrap_or_else(|| panic!("no wait step: {report}"));
    assert_eq!(wait["state"], "failed", "{report}");
    assert_eq!(
        wait["detail"],
        format!(
            "the image of deployment/backstage was changed to {IMAGE_1_54_0} during the wait (Flux or someone else); stopped, not fighting it"
        ),
        "{report}"
    );
    // The command did not set the image again: Flux's image stays.
    assert_eq!(env.image(), IMAGE_1_54_0);
}
