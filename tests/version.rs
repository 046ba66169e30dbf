//! `version` and `version --diff` as operators run them: the workloads of the incident fixtures (three
//! Deployments and a StatefulSet in the middle of a rollout, real-looking images and imageIDs) on the
//! fake API server, and the packages of two real Backstage trees — the catalog, auth and
//! backend-defaults packages of Backstage 1.52.1 and of 1.55.0, unpacked from npm — read by real `node`
//! over pod exec, or from the folders directly.

#[path = "support/npm.rs"]
mod npm;
#[path = "support/rig.rs"]
mod rig;

use std::path::{Path, PathBuf};

use npm::{CATALOG_ADDED, CATALOG_OLDER, KnexRig, Package, RELEASE_1_52_1, RELEASE_1_55_0};
use rig::{Rig, json, run, write};
use serde_json::{Value, json};

/// A Backstage app folder whose `node_modules` holds `packages` (symlinks into the npm cache), with a
/// `backstage.json` when given.
fn tree(dir: &Path, name: &str, packages: &[Package], backstage_json: Option<&str>) -> PathBuf {
    let root = dir.join(name);
    let scope = root.join("node_modules/@backstage");
    std::fs::create_dir_all(&scope).unwrap();
    for package in packages {
        let link = scope.join(package.name.trim_start_matches("@backstage/"));
        std::os::unix::fs::symlink(KnexRig::get().package_dir(*package), link).unwrap();
    }
    if let Some(text) = backstage_json {
        write(&root.join("backstage.json"), text);
    }
    root
}

/// The catalog's migration files of catalog-backend 3.8.0, in Knex's order.
fn older_catalog_files() -> Vec<String> {
    let mut files: Vec<String> = KnexRig::get()
        .listing(CATALOG_OLDER, "migrations")
        .into_iter()
        .filter(|f| f.ends_with(".js"))
        .collect();
    files.sort();
    files
}

/// The packages of a `backstage` block as (package, version, pluginId, pluginIdFrom, migrations,
/// firstRelease).
fn packages(backstage: &Value) -> Vec<(String, String, Value, Value, u64, Value)> {
    backstage["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["package"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                p["pluginId"].clone(),
                p["pluginIdFrom"].clone(),
                p["migrations"].as_u64().unwrap(),
                p["firstRelease"].clone(),
            )
        })
        .collect()
}

fn row(
    package: &str,
    version: &str,
    plugin: Option<&str>,
    from: Option<&str>,
    migrations: u64,
    first: &str,
) -> (String, String, Value, Value, u64, Value) {
    (
        package.into(),
        version.into(),
        json!(plugin),
        json!(from),
        migrations,
        if first == "-" {
            Value::Null
        } else {
            json!(first)
        },
    )
}

fn out_json(cmd: &mut assert_cmd::Command, code: i32) -> Value {
    let (got, out, err) = run(cmd.args(["-o", "json"]));
    assert_eq!(got, code, "stdout: {out}\nstderr: {err}");
    json(&out)
}

#[test]
fn the_release_and_packages_of_two_local_trees() {
    let dir = tempfile::tempdir().unwrap();
    let older = tree(
        dir.path(),
        "older",
        &RELEASE_1_52_1,
        Some("{\"version\": \"1.52.1\"}\n"),
    );
    let newer = tree(dir.path(), "newer", &RELEASE_1_55_0, None);
    // No cluster at all: a local tree is described without one.
    let rig = Rig::incident();
    let no_cluster = || {
        let mut cmd = rig.plugin();
        cmd.env("KUBECONFIG", dir.path().join("no-kubeconfig"));
        cmd
    };
    let catalog_older = older_catalog_files().len() as u64;
    let doc = out_json(
        no_cluster().args(["version", "--source", older.to_str().unwrap()]),
        0,
    );
    assert_eq!(doc["kind"], "Version");
    assert_eq!(doc["namespace"], Value::Null);
    assert_eq!(doc["workloads"], json!([]));
    let b = &doc["backstage"];
    assert_eq!(b["source"], format!("dir:{}", older.display()));
    assert_eq!(
        (&b["release"], &b["releaseFrom"]),
        (&json!("1.52.1"), &json!("backstage.json"))
    );
    assert_eq!(
        b["backstageJson"],
        older.join("backstage.json").display().to_string()
    );
    assert_eq!(b["inference"], Value::Null);
    assert_eq!(
        packages(b),
        vec![
            row(
                "@backstage/backend-defaults",
                "0.17.4",
                None,
                None,
                4,
                "1.52.1"
            ),
            row(
                "@backstage/plugin-auth-backend",
                "0.29.1",
                Some("auth"),
                Some("package.json"),
                12,
                "1.52.0"
            ),
            row(
                "@backstage/plugin-catalog-backend",
                "3.8.0",
                Some("catalog"),
                Some("package.json"),
                catalog_older,
                "1.52.0"
            ),
        ]
    );

    // Without backstage.json the release is inferred from the versions (1.55.0 is known from
    // create-app 0.9.2's version map, which the release data marks partial).
    let doc = out_json(
        no_cluster().args(["version", "--source", newer.to_str().unwrap()]),
        0,
    );
    let b = &doc["backstage"];
    assert_eq!(
        (&b["release"], &b["releaseFrom"]),
        (&json!("1.55.0"), &json!("inferred"))
    );
    assert_eq!(
        b["inference"],
        json!({"release": "1.55.0", "matched": 3, "compared": 3, "alsoMatching": [], "partial": true})
    );
    assert_eq!(
        packages(b),
        vec![
            row(
                "@backstage/backend-defaults",
                "0.18.0",
                None,
                None,
                4,
                "1.55.0"
            ),
            row(
                "@backstage/plugin-auth-backend",
                "0.30.1",
                Some("auth"),
                Some("package.json"),
                12,
                "1.55.0"
            ),
            row(
                "@backstage/plugin-catalog-backend",
                "4.0.0",
                Some("catalog"),
                Some("package.json"),
                catalog_older + 2,
                "1.55.0"
            ),
        ]
    );
    let (code, out, err) = run(no_cluster().args(["version", "--source", newer.to_str().unwrap()]));
    assert_eq!((code, err.as_str()), (0, ""));
    let spaces = regex::Regex::new(r" {2,}").unwrap();
    assert_eq!(
        spaces.replace_all(&out, "  "),
        format!(
            "Backstage 1.55.0 (inferred: 3 of 3 @backstage packages match, from partial release data) in dir:{}\n\n\
             PACKAGE  VERSION  PLUGIN  MIGRATIONS  FIRST RELEASE\n\
             @backstage/backend-defaults  0.18.0  -  4  1.55.0\n\
             @backstage/plugin-auth-backend  0.30.1  auth  12  1.55.0\n\
             @backstage/plugin-catalog-backend  4.0.0  catalog  {}  1.55.0\n",
            newer.display(),
            catalog_older + 2
        )
    );
}

#[test]
fn diff_of_two_releases_upgrade_then_downgrade() {
    let dir = tempfile::tempdir().unwrap();
    let older = tree(
        dir.path(),
        "older",
        &RELEASE_1_52_1,
        Some("{\"version\": \"1.52.1\"}"),
    );
    let newer = tree(dir.path(), "newer", &RELEASE_1_55_0, None);
    let rig = Rig::incident();
    let (o, n) = (older.to_str().unwrap(), newer.to_str().unwrap());

    // Upgrade: two catalog migrations will run at start-up. Exit 0.
    let up = out_json(rig.plugin().args(["version", "--diff", o, n]), 0);
    assert_eq!(up["kind"], "VersionDiff");
    assert_eq!(
        up["from"],
        json!({"source": format!("dir:{o}"), "release": "1.52.1", "releaseFrom": "backstage.json"})
    );
    assert_eq!(
        up["to"],
        json!({"source": format!("dir:{n}"), "release": "1.55.0", "releaseFrom": "inferred"})
    );
    assert_eq!(
        up["packages"],
        json!([
            {"package": "@backstage/backend-defaults", "from": "0.17.4", "to": "0.18.0", "change": "upgraded"},
            {"package": "@backstage/plugin-auth-backend", "from": "0.29.1", "to": "0.30.1", "change": "upgraded"},
            {"package": "@backstage/plugin-catalog-backend", "from": "3.8.0", "to": "4.0.0", "change": "upgraded"},
        ])
    );
    assert_eq!(up["unchanged"], 0);
    assert_eq!(
        up["migrations"],
        json!([{"plugin": "catalog", "table": "knex_migrations", "package": "@backstage/plugin-catalog-backend",
                "added": CATALOG_ADDED, "removed": [], "commands": [], "goneInTo": false}])
    );
    assert_eq!(
        (&up["downgrade"], &up["commands"]),
        (&json!(false), &json!([]))
    );

    // Downgrade: the same two must be rolled back first, with the newer code. Exit 1, as `db plan`.
    let last_kept = older_catalog_files().last().unwrap().clone();
    let rollback = format!("kubectl backstage db rollback --plugin catalog --to {last_kept}");
    let down = out_json(rig.plugin().args(["version", "--diff", n, o]), 1);
    assert_eq!(
        down["migrations"],
        json!([{"plugin": "catalog", "table": "knex_migrations", "package": "@backstage/plugin-catalog-backend",
                "added": [], "removed": [CATALOG_ADDED[1], CATALOG_ADDED[0]], "commands": [rollback], "goneInTo": false}])
    );
    assert_eq!(down["downgrade"], true);
    assert_eq!(
        down["commands"],
        json!([format!("kubectl backstage db plan --to {o}"), rollback])
    );
    let changes: Vec<&str> = down["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["downgraded", "downgraded", "downgraded"]);

    let (code, out, _) = run(rig.plugin().args(["version", "--diff", n, o]));
    assert_eq!(code, 1);
    let spaces = regex::Regex::new(r" {2,}").unwrap();
    assert_eq!(
        spaces.replace_all(&out, "  "),
        format!(
            "from dir:{n}: Backstage 1.55.0 (inferred)\nto  dir:{o}: Backstage 1.52.1 (backstage.json)\n\n\
             PACKAGE  FROM  TO  CHANGE\n\
             @backstage/backend-defaults  0.18.0  0.17.4  downgraded\n\
             @backstage/plugin-auth-backend  0.30.1  0.29.1  downgraded\n\
             @backstage/plugin-catalog-backend  4.0.0  3.8.0  downgraded\n\
             (0 packages unchanged)\n\n\
             PLUGIN  TABLE  PACKAGE  ADDED  REMOVED\n\
             catalog  knex_migrations  @backstage/plugin-catalog-backend  0  2\n\n\
             removed catalog knex_migrations: {}, {}\n\n\
             downgrade: roll back first, with the current (newer) code, before deploying the older version:\n\
             \x20 kubectl backstage db plan --to {o}\n\
             \x20 {rollback}\n",
            CATALOG_ADDED[1], CATALOG_ADDED[0]
        )
    );

    // The same tree twice: nothing differs, exit 0.
    let same = out_json(rig.plugin().args(["version", "--diff", o, o]), 0);
    assert_eq!(
        (&same["packages"], &same["unchanged"], &same["migrations"]),
        (&json!([]), &json!(3), &json!([]))
    );
}

/// The incident's running backstage pods run the 1.55.0 tree; staging's pod runs 1.52.1.
fn cluster_with_trees(dir: &Path) -> Rig {
    let rig = Rig::incident();
    let newer = tree(dir, "pod-newer", &RELEASE_1_55_0, None);
    // A third-party plugin with migrations (its plugin id comes from its name) and a package with
    // neither a @backstage scope nor migrations, which is not listed.
    let demo = newer.join("node_modules/@acme/plugin-demo-backend");
    std::fs::create_dir_all(demo.join("migrations")).unwrap();
    write(
        &demo.join("package.json"),
        r#"{"name": "@acme/plugin-demo-backend", "version": "1.0.0"}"#,
    );
    write(
        &demo.join("migrations/20240101000000_init.js"),
        "exports.up = async () => {};\nexports.down = async () => {};\n",
    );
    write(
        &demo.join("migrations/20240201000000_more.js"),
        "exports.up = async () => {};\nexports.down = async () => {};\n",
    );
    let left_pad = newer.join("node_modules/left-pad");
    std::fs::create_dir_all(&left_pad).unwrap();
    write(
        &left_pad.join("package.json"),
        r#"{"name": "left-pad", "version": "1.3.0"}"#,
    );
    let older = tree(
        dir,
        "pod-older",
        &RELEASE_1_52_1,
        Some("{\"version\": \"1.52.1\"}"),
    );
    for pod in [
        "backstage-6c9f8d7b54-k4m2x",
        "backstage-6c9f8d7b54-q8zvn",
        "backstage-worker-59c8d7f6b-mz5ql",
        "backstage-worker-8f7b6c5d4-r7tjh",
    ] {
        rig.server.set_pod_root(pod, &newer);
    }
    rig.server
        .set_pod_root("backstage-5f6d7c8b9a-h2kxm", &older);
    rig
}

const REGISTRY: &str = "hmctspublic.azurecr.io";
const NEW_DIGEST: &str = "sha256:994f5de7c6a882145dec06fdc649e992d4ad0f1caf6acf5413ccfe4e2a955186";
const ROLLING_DIGEST: &str =
    "sha256:5dc55c8e7f7c16151b39432fcc19a2b3f40d0a3412f94c75fba9964a7f92f4d8";

#[test]
fn workloads_images_and_digests_and_the_running_pods_packages() {
    let dir = tempfile::tempdir().unwrap();
    let rig = cluster_with_trees(dir.path());
    let doc = out_json(rig.plugin().arg("version"), 0);
    assert_eq!(doc["namespace"], "backstage");
    let rows: Vec<Value> = doc["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            json!([
                w["workload"],
                w["container"],
                w["tag"],
                w["tagKind"],
                w["running"]
            ])
        })
        .collect();
    let prod = |tag: &str| format!("{REGISTRY}/backstage/backstage:{tag}");
    let running = |image: &str, digest: Option<&str>, pods: u64| json!({"image": image, "digest": digest, "pods": pods});
    assert_eq!(
        rows,
        vec![
            json!(["deployment/backstage", "backstage", "prod-5f3c2a1-20261122110000",
                   {"kind": "prod", "commit": "5f3c2a1", "built": "20261122110000"},
                   [running(&prod("prod-1a2b3c4-20261101090000"), Some(NEW_DIGEST), 2),
                    running(&prod("prod-5f3c2a1-20261122110000"), Some(ROLLING_DIGEST), 1)]]),
            json!(["deployment/backstage-pr-1234", "backstage", "pr-1234-9e8d7c6",
                   {"kind": "pr", "number": 1234, "commit": "9e8d7c6"},
                   [running(&prod("pr-1234-9e8d7c6"), None, 1)]]),
            json!(["deployment/backstage-worker", "backstage", "prod-5f3c2a1-20261122110000",
                   {"kind": "prod", "commit": "5f3c2a1", "built": "20261122110000"},
                   [running(&prod("prod-1a2b3c4-20261101090000"), Some(NEW_DIGEST), 1),
                    running(&prod("prod-5f3c2a1-20261122110000"), Some(ROLLING_DIGEST), 1)]]),
            json!(["statefulset/backstage-postgresql", "postgresql", "16.4.0",
                   {"kind": "semver", "version": "16.4.0"},
                   [running("docker.io/bitnami/postgresql:16.4.0",
                            Some("sha256:572529e6b5023b44d64f2f7ac76ffe034526e23db93caf347ef5fb6dacae2d76"), 1)]]),
        ]
    );
    let w = &doc["workloads"][0];
    assert_eq!(
        (&w["registry"], &w["repository"], &w["digest"]),
        (
            &json!(REGISTRY),
            &json!("backstage/backstage"),
            &Value::Null
        )
    );
    let b = &doc["backstage"];
    assert!(
        b["source"]
            .as_str()
            .unwrap()
            .starts_with("pod:backstage-6c9f8d7b54-"),
        "{}",
        b["source"]
    );
    assert_eq!(
        (&b["release"], &b["releaseFrom"]),
        (&json!("1.55.0"), &json!("inferred"))
    );
    let catalog_newer = older_catalog_files().len() as u64 + 2;
    assert_eq!(
        packages(b),
        vec![
            row(
                "@acme/plugin-demo-backend",
                "1.0.0",
                Some("demo"),
                Some("name"),
                2,
                "-"
            ),
            row(
                "@backstage/backend-defaults",
                "0.18.0",
                None,
                None,
                4,
                "1.55.0"
            ),
            row(
                "@backstage/plugin-auth-backend",
                "0.30.1",
                Some("auth"),
                Some("package.json"),
                12,
                "1.55.0"
            ),
            row(
                "@backstage/plugin-catalog-backend",
                "4.0.0",
                Some("catalog"),
                Some("package.json"),
                catalog_newer,
                "1.55.0"
            ),
        ]
    );
    let roles: Vec<&Value> = b["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["role"])
        .collect();
    assert_eq!(
        roles,
        [
            &Value::Null,
            &json!("node-library"),
            &json!("backend-plugin"),
            &json!("backend-plugin")
        ]
    );

    // -l narrows the workloads; a named pod is read instead of the default.
    let doc = out_json(
        rig.plugin().args([
            "version",
            "-l",
            "app.kubernetes.io/name=postgresql",
            "--source",
            "pod:backstage-6c9f8d7b54-q8zvn",
        ]),
        0,
    );
    let names: Vec<&str> = doc["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workload"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["statefulset/backstage-postgresql"]);
    assert_eq!(doc["backstage"]["source"], "pod:backstage-6c9f8d7b54-q8zvn");

    // A crash-looping pod named explicitly cannot be read: exit 2, one line.
    let (code, out, err) =
        run(rig
            .plugin()
            .args(["version", "--source", "pod:backstage-7d9f6b5c8-x2x7p"]));
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        "error: cannot exec into pod backstage-7d9f6b5c8-x2x7p: container backstage is CrashLoopBackOff (a crash-looping container cannot run commands); pick a running pod with --pod NAME, or use --source DIR\n"
    );
}

#[test]
fn diff_with_another_environments_running_pod() {
    let dir = tempfile::tempdir().unwrap();
    let rig = cluster_with_trees(dir.path());
    let config = dir.path().join("config.yaml");
    write(
        &config,
        "defaultEnvironment: ptl\nenvironments:\n  ptl:\n    namespace: backstage\n  staging:\n    context: fake\n    namespace: backstage-staging\n",
    );
    let with_config = || {
        let mut cmd = rig.plugin();
        cmd.env("KUBECTL_BACKSTAGE_CONFIG", &config);
        cmd
    };
    // Prod (1.55.0) to what staging runs (1.52.1): a downgrade. `db plan --to` cannot reach another
    // environment's pod, so only the rollbacks are named.
    let down = out_json(
        with_config().args(["version", "--diff", "pod", "env:staging"]),
        1,
    );
    assert_eq!(
        down["to"]["source"],
        "env:staging/pod:backstage-5f6d7c8b9a-h2kxm"
    );
    assert_eq!(down["to"]["release"], "1.52.1");
    assert_eq!(down["from"]["release"], "1.55.0");
    let last_kept = older_catalog_files().last().unwrap().clone();
    assert_eq!(
        down["commands"],
        json!([format!(
            "kubectl backstage db rollback --plugin catalog --to {last_kept}"
        )])
    );
    // Staging lacks the demo plugin altogether: listed, nothing to roll back.
    let demo: Vec<&Value> = down["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["plugin"] == "demo")
        .collect();
    assert_eq!(
        demo,
        [
            &json!({"plugin": "demo", "table": "knex_migrations", "package": "@acme/plugin-demo-backend",
                 "added": [], "removed": ["20240201000000_more.js", "20240101000000_init.js"], "commands": [], "goneInTo": true})
        ]
    );
    // Staging to prod: an upgrade.
    let up = out_json(
        with_config().args(["version", "--diff", "env:staging", "pod"]),
        0,
    );
    assert_eq!(up["migrations"][0]["added"], json!(CATALOG_ADDED));

    // -e picks the environment for a plain `version` too: its namespace, its pod.
    let staging = out_json(with_config().args(["-e", "staging", "version"]), 0);
    assert_eq!(staging["namespace"], "backstage-staging");
    let workloads: Vec<&str> = staging["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workload"].as_str().unwrap())
        .collect();
    assert_eq!(workloads, ["deployment/backstage"]);
    assert_eq!(
        staging["workloads"][0]["running"],
        json!([{"image": format!("{REGISTRY}/backstage/backstage:prod-5f3c2a1-20261122110000"), "digest": ROLLING_DIGEST, "pods": 1}])
    );
    assert_eq!(
        staging["backstage"]["source"],
        "pod:backstage-5f6d7c8b9a-h2kxm"
    );
    assert_eq!(
        (
            &staging["backstage"]["release"],
            &staging["backstage"]["releaseFrom"]
        ),
        (&json!("1.52.1"), &json!("backstage.json"))
    );

    let (code, out, err) = run(with_config().args(["version", "--diff", "pod", "env:nope"]));
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        "error: unknown environment \"nope\"; configured environments: ptl, staging (see `kubectl backstage env list`)\n"
    );
}

#[test]
fn several_environments_side_by_side_and_an_unreachable_one_as_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let rig = cluster_with_trees(dir.path());
    // A context whose API server refuses connections: bind a port, then let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dr_config = dir.path().join("dr.kubeconfig");
    write(
        &dr_config,
        &format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: dr, cluster: {{server: 'https://127.0.0.1:{closed}'}}}}]\ncontexts: [{{name: dr-aks, context: {{cluster: dr, user: dr}}}}]\nusers: [{{name: dr, user: {{token: dr-token}}}}]\n"
        ),
    );
    let config = dir.path().join("config.yaml");
    write(
        &config,
        "environments:\n  ptl:\n    context: fake\n    namespace: backstage\n  staging:\n    context: fake\n    namespace: backstage-staging\n  dr:\n    context: dr-aks\n    namespace: backstage\n",
    );
    let plugin = || {
        let mut cmd = rig.plugin();
        cmd.env("KUBECTL_BACKSTAGE_CONFIG", &config).env(
            "KUBECONFIG",
            format!("{}:{}", rig.kubeconfig.display(), dr_config.display()),
        );
        cmd
    };

    // JSON: one document per environment, in the order asked, each the single-environment document.
    let (code, out, err) = run(plugin().args(["version", "-e", "staging,ptl", "-o", "json"]));
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let docs = json(&out);
    let docs = docs.as_array().unwrap();
    for (doc, name) in docs.iter().zip(["staging", "ptl"]) {
        let (single_code, single, _) = run(plugin().args(["-e", name, "version", "-o", "json"]));
        assert_eq!(single_code, 0);
        let mut single = json(&single);
        single["environment"] = json!(name);
        assert_eq!(doc, &single, "{name}");
    }
    assert_eq!(docs.len(), 2);
    assert_eq!(
        (
            &docs[0]["backstage"]["release"],
            &docs[1]["backstage"]["release"]
        ),
        (&json!("1.52.1"), &json!("1.55.0"))
    );

    // --all-envs with one unreachable: its document says why, the others are complete, exit 2.
    let (code, out, err) = run(plugin().args(["version", "--all-envs", "-o", "json"]));
    assert_eq!(code, 2, "{out}\n{err}");
    let docs = json(&out);
    let names: Vec<&str> = docs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["environment"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dr", "ptl", "staging"]);
    let dr = docs[0]["error"].as_str().unwrap();
    assert!(
        dr.starts_with("cannot reach the API server https://127.0.0.1:")
            && dr.contains("(context \"dr-aks\")"),
        "{dr}"
    );
    assert_eq!(err, format!("error: environment dr: {dr}\n"));

    // The table: workloads with an ENVIRONMENT column, one release row per environment (the
    // unreachable one says why), and the packages side by side.
    let (code, out, _) = run(plugin().args(["version", "--all-envs"]));
    assert_eq!(code, 2);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "ENVIRONMENT",
            "WORKLOAD",
            "CONTAINER",
            "TAG",
            "KIND",
            "RUNNING"
        ],
        "{out}"
    );
    let release_rows: Vec<Vec<&str>> = lines
        .iter()
        .skip_while(|l| {
            l.split_whitespace().take(2).collect::<Vec<_>>() != ["ENVIRONMENT", "BACKSTAGE"]
        })
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        release_rows,
        [
            vec!["dr", "-"],
            vec!["ptl", "1.55.0"],
            vec!["staging", "1.52.1"]
        ],
        "{out}"
    );
    assert!(
        out.contains("could not check this environment: cannot reach the API server"),
        "{out}"
    );
    let header = lines
        .iter()
        .find(|l| l.starts_with("PACKAGE"))
        .expect("packages table");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["PACKAGE", "PLUGIN", "ptl", "staging", "SAME"]
    );
    let catalog: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("@backstage/plugin-catalog-backend "))
        .expect("catalog row")
        .split_whitespace()
        .collect();
    let older_catalog = RELEASE_1_52_1
        .iter()
        .find(|p| p.name == "@backstage/plugin-catalog-backend")
        .unwrap()
        .version;
    assert_eq!(
        catalog,
        [
            "@backstage/plugin-catalog-backend",
            "catalog",
            "4.0.0",
            older_catalog,
            "no"
        ]
    );
    let demo: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("@acme/plugin-demo-backend "))
        .expect("demo row")
        .split_whitespace()
        .collect();
    assert_eq!(
        demo,
        ["@acme/plugin-demo-backend", "demo", "1.0.0", "-", "no"]
    );

    // What does not apply to several environments is refused before anything runs.
    let (code, out, err) =
        run(plugin().args(["version", "--all-envs", "--diff", "pod", "env:ptl"]));
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        "error: --diff and --source work in one environment at a time; to compare two environments use --diff env:A env:B\n"
    );
}
