//! `report`: the redacted support bundle, made by the real binary against the fake API server (with
//! fixtures that hide a distinct `SNTL-…` sentinel in every place a secret can: a Secret object, env
//! values, arguments, annotations, the last-applied configuration, current and previous logs), a
//! config file with credentials in its URL, and `db status` through a real PostgreSQL whose password
//! comes from the fake Key Vault. The archive is unpacked with the system's `tar` (the peer a user
//! has) and its raw, decompressed bytes are searched for every sentinel.

#[path = "support/keyvault.rs"]
mod keyvault;
#[path = "support/npm.rs"]
mod npm;
#[path = "support/plugin_dbs.rs"]
mod plugin_dbs;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/rig.rs"]
mod rig;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use backstage_testkit::{Fixtures, ServerOptions};
use npm::CATALOG_OLDER;
use plugin_dbs::{Plugins, SENTINEL as DB_PASSWORD, USER, checkout, pg, templates};
use rig::{Rig, TOKEN, json, run, write};
use serde_json::Value;

const POD: &str = "backstage-7f8d9c6b5-r2x9k";
const VAULT: &str = "sbox-intsvc";
const VAULT_SECRET: &str = "backstage-psqldb-password";
const CONFIG_SENTINEL: &str = "SNTL-config-6a2c";
/// The Secret object's value, and its base64 as the Secret's `data` holds it
/// (`printf SNTL-secret-7e5a | base64`).
const SECRET_OBJECT_SENTINEL: &str = "SNTL-secret-7e5a";
const SECRET_OBJECT_BASE64: &str = "U05UTC1zZWNyZXQtN2U1YQ==";

/// Every secret of the fixtures, the config file and the vault.
const SENTINELS: &[&str] = &[
    "SNTL-applied-5c2e",
    "SNTL-annotation-9b1d",
    "SNTL-arg-3e8a",
    "SNTL-argnext-6f0b",
    "SNTL-env-2a7c",
    "SNTL-url-8d3f",
    "SNTL-ingress-1c4e",
    SECRET_OBJECT_SENTINEL,
    "SNTL-pgenv-0d9b",
    "SNTL-logbearer-4b6d",
    "SNTL-logurl-2f9a",
    "SNTL-logpw-7c3e",
    "SNTL-prevtoken-5e1a",
    "SNTL-prevpw-3d8b",
    CONFIG_SENTINEL,
    DB_PASSWORD,
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testkit/fixtures/report")
}

fn rig(forbidden: &[(&str, &str)]) -> Rig {
    let fixtures = Fixtures::load(&fixtures_dir()).expect("the report fixtures load");
    Rig::start(ServerOptions {
        tls: true,
        token: Some(TOKEN.into()),
        forbidden: forbidden
            .iter()
            .map(|(v, r)| (v.to_string(), r.to_string()))
            .collect(),
        ..ServerOptions::new(fixtures)
    })
}

/// The config file of environment `ptlsbox`: the fake's context and namespace, a URL with
/// credentials, and (when given) the database on the test's PostgreSQL with its password in Key Vault.
fn config_file(rig: &Rig, database_prefix: Option<&str>) -> PathBuf {
    let database = match database_prefix {
        Some(prefix) => format!(
            "    database:\n      host: {}\n      port: {}\n      user: {USER}\n      sslmode: require\n      databasePrefix: {prefix}\n      password:\n        keyVault: {{vault: {VAULT}, secret: {VAULT_SECRET}}}\n",
            pg().host(),
            pg().port()
        ),
        None => String::new(),
    };
    let path = rig.path("config.yaml");
    write(
        &path,
        &format!(
            "defaultEnvironment: ptlsbox\nenvironments:\n  ptlsbox:\n    context: fake\n    namespace: backstage\n    url: https://admin:{CONFIG_SENTINEL}@backstage.example.net/\n{database}"
        ),
    );
    path
}

/// An empty folder for the archive.
fn out_dir(rig: &Rig, name: &str) -> PathBuf {
    let dir = rig.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The only file in `dir`: the archive, named as the README says.
fn the_archive(dir: &Path) -> PathBuf {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "one file, the archive: {names:?}");
    let name = &names[0];
    let pattern = regex::Regex::new(r"^backstage-report-ptlsbox-\d{8}T\d{6}Z\.tar\.gz$").unwrap();
    assert!(pattern.is_match(name), "{name}");
    dir.join(name)
}

/// The archive unpacked by the system's tar into a fresh folder: (folder inside, files by path).
fn unpack(archive: &Path) -> (String, Vec<(String, Vec<u8>)>) {
    let into = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into.path())
        .output()
        .expect("tar runs");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tops: Vec<String> = std::fs::read_dir(into.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(tops.len(), 1, "one folder at the top: {tops:?}");
    let top = tops[0].clone();
    let mut files = Vec::new();
    collect(&into.path().join(&top), "", &mut files);
    files.sort();
    (top, files)
}

fn collect(dir: &Path, prefix: &str, files: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            collect(&entry.path(), &format!("{name}/"), files);
        } else {
            files.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
}

/// The decompressed tar stream: every byte of every header and file.
fn raw_tar(archive: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(archive).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// No sentinel (nor the Secret's base64) in `bytes`.
fn assert_no_secret(what: &str, bytes: &[u8]) {
    for sentinel in SENTINELS.iter().copied().chain([SECRET_OBJECT_BASE64]) {
        if let Some(at) = bytes
            .windows(sentinel.len())
            .position(|w| w == sentinel.as_bytes())
        {
            let around = &bytes[at.saturating_sub(300)..(at + 300).min(bytes.len())];
            panic!(
                "{sentinel} leaked into {what}, here:\n{}",
                String::from_utf8_lossy(around)
            );
        }
    }
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a str {
    let bytes = &files
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in the bundle"))
        .1;
    std::str::from_utf8(bytes).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}): {text}"))
}

/// (file, status, cause) of every part of a summary document.
fn parts(summary: &Value) -> Vec<(String, String, Option<String>)> {
    summary["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["status"].as_str().unwrap().to_string(),
                p["cause"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn the_bundle_holds_every_part_and_no_secret() {
    let rig = rig(&[]);
    let mut plugins = Plugins::new();
    let catalog_db = plugins.create("catalog", Some(&templates().0));
    let pod_root = checkout(plugins.dir.path(), "pod", CATALOG_OLDER);
    rig.server.set_pod_root(POD, &pod_root);
    let vault = keyvault::FakeKeyVault::start(VAULT);
    vault.add_secret(VAULT_SECRET, DB_PASSWORD);
    let config = config_file(&rig, Some(&plugins.prefix));
    let dir = out_dir(&rig, "out");

    let (code, stdout, stderr) = run(rig
        .plugin()
        .envs(vault.env(&std::env::var("PATH").unwrap()))
        .args(["report", "--dir"])
        .arg(&dir)
        .arg("--config")
        .arg(&config)
        .args(["-o", "json"]));
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert_no_secret(what, text.as_bytes());
    }

    let archive = the_archive(&dir);
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the archive is private");
    let summary = json(&stdout);
    assert_eq!(summary["kind"], "SupportReport");
    assert_eq!(summary["archive"], archive.display().to_string());
    assert_eq!(summary["environment"], "ptlsbox");
    assert_eq!(summary["context"], "fake");
    assert_eq!(summary["namespace"], "backstage");

    let (top, files) = unpack(&archive);
    assert_eq!(
        format!("{top}.tar.gz"),
        archive.file_name().unwrap().to_string_lossy()
    );
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let current_log = format!("logs/{POD}/backstage.log");
    let previous_log = format!("logs/{POD}/backstage.previous.log");
    assert_eq!(
        names,
        [
            "config.yaml",
            "db-status.json",
            "events.json",
            "health.json",
            current_log.as_str(),
            previous_log.as_str(),
            "summary.json",
            "summary.txt",
            "version.json",
            "workloads/deployments.yaml",
            "workloads/ingresses.yaml",
            "workloads/replicasets.yaml",
            "workloads/services.yaml",
        ],
        "the database pod's logs are not a backend's: never collected"
    );
    // Every part collected, listed in the summary's order.
    let expected: Vec<(String, String, Option<String>)> = [
        "health.json",
        "events.json",
        "version.json",
        "db-status.json",
        "config.yaml",
        "workloads/deployments.yaml",
        "workloads/ingresses.yaml",
        "workloads/replicasets.yaml",
        "workloads/services.yaml",
        current_log.as_str(),
        previous_log.as_str(),
    ]
    .iter()
    .map(|f| (f.to_string(), "collected".to_string(), None))
    .collect();
    assert_eq!(parts(&summary), expected);
    assert_eq!(
        (summary["collected"].as_u64(), summary["missing"].as_u64()),
        (Some(11), Some(0))
    );
    let inside = json(file(&files, "summary.json"));
    assert_eq!(inside, summary, "summary.json is what -o json printed");
    let text = file(&files, "summary.txt");
    assert!(text.contains("environment: ptlsbox"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["health.json", "collected"]),
        "{text}"
    );

    // Not a byte of any secret, anywhere in the tar stream or in a file.
    assert_no_secret("the archive", &raw_tar(&archive));
    for (name, bytes) in &files {
        assert_no_secret(name, bytes);
    }
    // Nobody asked for a Secret.
    let asked: Vec<String> = rig
        .server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        asked.iter().all(|r| !r.contains("secrets")),
        "a Secret was read: {asked:?}"
    );
    for kind in [
        "deployments",
        "replicasets",
        "services",
        "ingresses",
        "events",
        "pods",
    ] {
        assert!(
            asked
                .iter()
                .any(|r| r.ends_with(&format!("/namespaces/backstage/{kind}"))),
            "{kind} listed: {asked:?}"
        );
    }

    // What is not secret survives, and references stay references.
    let deployments = yaml(file(&files, "workloads/deployments.yaml"));
    assert_eq!(deployments["kind"], "List");
    let deployment = &deployments["items"][0];
    assert_eq!(deployment["metadata"]["name"], "backstage");
    assert!(deployment["metadata"].get("managedFields").is_none());
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        "acr.example.net/backstage/backstage:prod-1a2b3c4-20261120090000"
    );
    assert_eq!(
        container["env"],
        serde_json::json!([
            {"name": "NODE_ENV", "value": "production"},
            {"name": "POSTGRES_HOST", "value": "db.example.net"},
            {"name": "POSTGRES_PASSWORD", "value": "<redacted>"},
            {"name": "DATABASE_URL", "value": "postgresql://backstage:<redacted>@db.example.net:5432/backstage"},
            {"name": "GITHUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": "backstage-secrets", "key": "github-token"}}},
        ])
    );
    assert_eq!(
        container["args"],
        serde_json::json!([
            "node",
            "packages/backend",
            "--config",
            "app-config.yaml",
            "--token=<redacted>",
            "--client-secret",
            "<redacted>"
        ])
    );
    let annotations = &deployment["metadata"]["annotations"];
    assert_eq!(annotations["deployment.kubernetes.io/revision"], "3");
    assert_eq!(annotations["example.com/api-token"], "<redacted>");
    let applied = json(
        annotations["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        applied["spec"]["template"]["spec"]["containers"][0]["env"],
        serde_json::json!([{"name": "NODE_ENV", "value": "production"}, {"name": "POSTGRES_PASSWORD", "value": "<redacted>"}])
    );
    let ingresses = yaml(file(&files, "workloads/ingresses.yaml"));
    assert_eq!(
        ingresses["items"][0]["spec"]["rules"][0]["host"],
        "backstage.example.net"
    );
    assert_eq!(
        ingresses["items"][0]["spec"]["tls"][0]["secretName"],
        "backstage-tls"
    );
    assert_eq!(
        ingresses["items"][0]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"],
        "https://oauth:<redacted>@auth.example.net/check"
    );
    let services = yaml(file(&files, "workloads/services.yaml"));
    assert_eq!(services["items"][0]["spec"]["ports"][0]["port"], 7007);
    let replicasets = yaml(file(&files, "workloads/replicasets.yaml"));
    assert_eq!(
        replicasets["items"][0]["metadata"]["name"],
        "backstage-7f8d9c6b5"
    );

    let current = file(&files, &current_log);
    assert!(
        current.contains(r#""message":"Listening on :7007""#),
        "{current}"
    );
    assert!(
        current.contains("Authorization: Bearer <redacted>"),
        "{current}"
    );
    assert!(
        current.contains(
            "postgresql://backstage:<redacted>@db.example.net:5432/backstage_plugin_catalog"
        ),
        "{current}"
    );
    assert!(
        current.contains("retrying with password=<redacted>"),
        "{current}"
    );
    assert_eq!(current.lines().count(), 5);
    let previous = file(&files, &previous_log);
    assert!(
        previous.contains("Plugin 'catalog' threw an error during startup"),
        "{previous}"
    );
    assert!(previous.contains(r#""token":"<redacted>""#), "{previous}");
    assert!(previous.contains("Password=<redacted>;"), "{previous}");

    // The documents are what the commands print, from the same cluster.
    let health = json(file(&files, "health.json"));
    let pods: Vec<&str> = health["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(pods, [POD, "backstage-postgresql-0"]);
    let events = json(file(&files, "events.json"));
    let reasons: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["Pulled", "BackOff"], "oldest first, no --since");
    let version = json(file(&files, "version.json"));
    assert_eq!(version["kind"], "Version");
    let packages: Vec<&str> = version["backstage"]["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("{version}"))
        .iter()
        .map(|p| p["package"].as_str().unwrap())
        .collect();
    assert!(
        packages.contains(&"@backstage/plugin-catalog-backend"),
        "{packages:?}"
    );
    let db = json(file(&files, "db-status.json"));
    assert_eq!(db["kind"], "DbStatus");
    assert_eq!(db["source"], format!("pod:{POD}"));
    let databases: Vec<&str> = db["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["database"].as_str().unwrap())
        .collect();
    assert_eq!(databases, [catalog_db.as_str()]);
    let catalog_tables = &db["databases"][0]["tables"];
    let knex = catalog_tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "knex_migrations")
        .unwrap();
    assert!(!knex["completed"].as_array().unwrap().is_empty(), "{knex}");
    assert_eq!(
        knex["pending"],
        serde_json::json!([]),
        "the pod has the older catalog, as the database"
    );

    let config_doc = yaml(file(&files, "config.yaml"));
    assert_eq!(config_doc["environment"], "ptlsbox");
    assert_eq!(config_doc["namespace"], "backstage");
    assert_eq!(
        config_doc["environmentConfig"]["url"],
        "https://admin:<redacted>@backstage.example.net/"
    );
    assert_eq!(
        config_doc["environmentConfig"]["database"]["password"]["keyVault"],
        serde_json::json!({"vault": VAULT, "secret": VAULT_SECRET}),
        "Key Vault references are names and stay"
    );
    assert_eq!(config_doc["database"]["user"], USER);

    // Progress: one line per part on stderr.
    assert!(stderr.contains("report: health.json collected"), "{stderr}");
    assert!(
        stderr.contains(&format!("report: {previous_log} collected")),
        "{stderr}"
    );
}

#[test]
fn forbidden_and_unconfigured_parts_are_listed_as_missing_and_the_rest_is_written() {
    let rig = rig(&[("list", "events"), ("get", "pods/log")]);
    let config = config_file(&rig, None);
    let dir = out_dir(&rig, "out");
    let (code, stdout, stderr) = run(rig
        .plugin()
        .args(["report", "--dir"])
        .arg(&dir)
        .arg("--config")
        .arg(&config)
        .args(["-o", "json"]));
    assert_eq!(code, 0, "missing parts never fail the report: {stderr}");
    let summary = json(&stdout);
    let current_log = format!("logs/{POD}/backstage.log");
    let previous_log = format!("logs/{POD}/backstage.previous.log");
    let missing: Vec<(String, String, Option<String>)> = parts(&summary)
        .into_iter()
        .filter(|p| p.1 == "missing")
        .collect();
    assert_eq!(
        missing,
        [
            (
                "events.json".to_string(),
                "missing".to_string(),
                Some("forbidden".to_string())
            ),
            (
                "db-status.json".into(),
                "missing".into(),
                Some("notConfigured".into())
            ),
            (
                current_log.clone(),
                "missing".into(),
                Some("forbidden".into())
            ),
            (
                previous_log.clone(),
                "missing".into(),
                Some("forbidden".into())
            ),
        ]
    );
    let reason = |file: &str| -> String {
        summary["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["file"] == file)
            .unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let events = reason("events.json");
    assert!(
        events.starts_with("forbidden: cannot list events in namespace \"backstage\"")
            && events.contains(r#"cannot list resource "events""#),
        "{events}"
    );
    let log = reason(&current_log);
    assert!(log.contains(r#"cannot get resource "pods/log""#), "{log}");
    assert!(
        reason("db-status.json").starts_with("no database host"),
        "{}",
        reason("db-status.json")
    );
    assert_eq!(
        (summary["collected"].as_u64(), summary["missing"].as_u64()),
        (Some(7), Some(4))
    );

    let (_, files) = unpack(&the_archive(&dir));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "config.yaml",
            "health.json",
            "summary.json",
            "summary.txt",
            "version.json",
            "workloads/deployments.yaml",
            "workloads/ingresses.yaml",
            "workloads/replicasets.yaml",
            "workloads/services.yaml",
        ]
    );
    let text = file(&files, "summary.txt");
    assert!(
        text.lines().any(|l| l.starts_with("events.json")
            && l.contains("missing")
            && l.contains("forbidden: cannot list events")),
        "{text}"
    );
    assert!(
        stderr.contains("report: events.json missing: forbidden: cannot list events"),
        "{stderr}"
    );
    for (name, bytes) in &files {
        assert_no_secret(name, bytes);
    }
}

#[test]
fn since_reaches_the_log_requests_and_the_events() {
    let rig = rig(&[]);
    let config = config_file(&rig, None);
    let dir = out_dir(&rig, "out");
    let (code, stdout, stderr) = run(rig
        .plugin()
        .args(["report", "--since", "10m", "--dir"])
        .arg(&dir)
        .arg("--config")
        .arg(&config));
    assert_eq!(code, 0, "{stderr}");
    let archive = the_archive(&dir);
    assert!(
        stdout.ends_with(&format!(
            "wrote {} (10 collected, 1 missing)\n",
            archive.display()
        )),
        "{stdout}"
    );
    let logs: Vec<Vec<(String, String)>> = rig
        .server
        .requests()
        .iter()
        // The report's own reads (health reads some logs too, with its own bounds).
        .filter(|r| r.path.ends_with("/log") && r.param("limitBytes").as_deref() == Some("1048576"))
        .map(|r| {
            let mut pairs = r.query_pairs();
            pairs.sort();
            pairs
        })
        .collect();
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut expected = vec![
        vec![
            pair("container", "backstage"),
            pair("limitBytes", "1048576"),
            pair("sinceSeconds", "600"),
            pair("tailLines", "2000"),
        ],
        vec![
            pair("container", "backstage"),
            pair("limitBytes", "1048576"),
            pair("previous", "true"),
            pair("sinceSeconds", "600"),
            pair("tailLines", "2000"),
        ],
    ];
    let mut logs = logs;
    logs.sort();
    expected.sort();
    assert_eq!(logs, expected);
    let (_, files) = unpack(&archive);
    let events = json(file(&files, "events.json"));
    let reasons: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["BackOff"],
        "the event of two hours ago is older than --since 10m"
    );
    assert_eq!(json(file(&files, "summary.json"))["sinceSeconds"], 600);
}

#[test]
fn a_bad_dir_is_exit_2_and_nothing_is_written_or_asked() {
    let rig = rig(&[]);
    let config = config_file(&rig, None);
    let not_a_folder = rig.path("a-file");
    write(&not_a_folder, "x");
    let missing = rig.path("no-such-folder");
    for (dir, message) in [
        (
            &not_a_folder,
            format!("error: --dir {}: not a folder", not_a_folder.display()),
        ),
        (
            &missing,
            format!("error: --dir {}: no such folder", missing.display()),
        ),
    ] {
        let (code, stdout, stderr) = run(rig
            .plugin()
            .args(["report", "--dir"])
            .arg(dir)
            .arg("--config")
            .arg(&config));
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr, format!("{message}\n"));
    }
    assert!(!missing.exists());
    assert_eq!(std::fs::read_to_string(&not_a_folder).unwrap(), "x");
    assert!(
        rig.server.requests().is_empty(),
        "nothing was asked of the cluster"
    );
    // --since must be a duration.
    let (code, _, stderr) = run(rig
        .plugin()
        .args(["report", "--since", "soon", "--config"])
        .arg(&config));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
}

#[test]
fn an_unreachable_api_server_leaves_the_cluster_parts_missing_and_still_writes_the_bundle() {
    let rig = rig(&[]);
    let config = config_file(&rig, None);
    let dir = out_dir(&rig, "out");
    let Rig {
        server,
        dir: rig_dir,
        kubeconfig,
    } = rig;
    drop(server);
    let mut cmd = assert_cmd::Command::cargo_bin("kubectl-backstage").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", rig_dir.path().join("home"))
        .env("KUBECONFIG", &kubeconfig)
        .args(["report", "-o", "json", "--dir"])
        .arg(&dir)
        .arg("--config")
        .arg(&config);
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let summary = json(&stdout);
    let causes: Vec<(String, String, Option<String>)> = parts(&summary);
    assert_eq!(
        causes,
        [
            ("health.json", "missing", Some("unreachable")),
            ("events.json", "missing", Some("unreachable")),
            ("version.json", "missing", Some("unreachable")),
            ("db-status.json", "missing", Some("notConfigured")),
            ("config.yaml", "collected", None),
            ("workloads/deployments.yaml", "missing", Some("unreachable")),
            ("workloads/ingresses.yaml", "missing", Some("unreachable")),
            ("workloads/replicasets.yaml", "missing", Some("unreachable")),
            ("workloads/services.yaml", "missing", Some("unreachable")),
            ("logs/", "missing", Some("unreachable")),
        ]
        .iter()
        .map(|(f, s, c)| (f.to_string(), s.to_string(), c.map(str::to_string)))
        .collect::<Vec<_>>()
    );
    let (_, files) = unpack(&the_archive(&dir));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["config.yaml", "summary.json", "summary.txt"]);
}

/// `ours` is `theirs` except where `ours` says `<redacted>`: nothing else was lost or changed.
fn same_but_redacted(ours: &Value, theirs: &Value, path: &str, differences: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::String(a), _) if a.contains("<redacted>") => {}
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => {
                        same_but_redacted(x, y, &format!("{path}.{k}"), differences)
                    }
                    _ => differences.push(format!("{path}.{k}: only on one side")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same_but_redacted(x, y, &format!("{path}[{i}]"), differences);
            }
        }
        (a, b) if a == b => {}
        (a, b) => differences.push(format!("{path}: {a} vs {b}")),
    }
}

#[test]
fn the_workloads_are_what_kubectl_gets_but_for_the_redacted_values_and_managed_fields() {
    let rig = rig(&[]);
    let config = config_file(&rig, None);
    let dir = out_dir(&rig, "out");
    let (code, _, stderr) = run(rig
        .plugin()
        .args(["report", "--dir"])
        .arg(&dir)
        .arg("--config")
        .arg(&config));
    assert_eq!(code, 0, "{stderr}");
    let (_, files) = unpack(&the_archive(&dir));
    let mut redacted_values = 0;
    for (kind, file_name) in [
        ("deployments", "workloads/deployments.yaml"),
        ("replicasets", "workloads/replicasets.yaml"),
        ("services", "workloads/services.yaml"),
        ("ingresses.networking.k8s.io", "workloads/ingresses.yaml"),
    ] {
        let theirs = json(&rig::stdout_of({
            let mut kubectl = rig.kubectl();
            kubectl.args(["get", kind, "-o", "json", "--show-managed-fields"]);
            kubectl
        }));
        let ours = yaml(file(&files, file_name));
        let mut theirs_items = theirs["items"].as_array().unwrap().clone();
        assert!(!theirs_items.is_empty(), "{kind}");
        let mut managed = 0;
        for item in &mut theirs_items {
            managed += item["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("managedFields")
                .is_some() as usize;
        }
        if kind == "deployments" {
            assert_eq!(
                managed, 1,
                "kubectl shows the fixture's managedFields; the bundle drops them"
            );
        }
        let mut differences = Vec::new();
        same_but_redacted(
            &ours["items"],
            &Value::Array(theirs_items),
            kind,
            &mut differences,
        );
        assert!(differences.is_empty(), "{kind}: {differences:#?}");
        redacted_values += file(&files, file_name).matches("<redacted>").count();
    }
    assert!(
        redacted_values >= 8,
        "the comparison skipped the redacted values: {redacted_values}"
    );
}

#[test]
fn on_the_incident_every_backend_log_is_taken_and_a_container_that_never_ran_is_not_asked_for() {
    let rig = Rig::incident();
    let dir = out_dir(&rig, "out");
    let (code, stdout, stderr) = run(rig
        .plugin()
        .args(["report", "-o", "json", "--dir"])
        .arg(&dir));
    assert_eq!(code, 0, "{stderr}");
    let summary = json(&stdout);
    let logs: Vec<(String, String, Option<String>)> = parts(&summary)
        .into_iter()
        .filter(|p| p.0.starts_with("logs/"))
        .collect();
    let collected = |f: &str| (f.to_string(), "collected".to_string(), None);
    assert_eq!(
        logs,
        [
            collected("logs/backstage-6c9f8d7b54-k4m2x/backstage.log"),
            collected("logs/backstage-6c9f8d7b54-q8zvn/backstage.log"),
            collected("logs/backstage-6c9f8d7b54-q8zvn/backstage.previous.log"),
            collected("logs/backstage-7d9f6b5c8-x2x7p/backstage.log"),
            collected("logs/backstage-7d9f6b5c8-x2x7p/backstage.previous.log"),
            (
                "logs/backstage-pr-1234-5b7c9d8f6d-wq9rt/backstage.log".to_string(),
                "missing".to_string(),
                Some("notFound".to_string())
            ),
            collected("logs/backstage-worker-59c8d7f6b-mz5ql/backstage.log"),
            collected("logs/backstage-worker-8f7b6c5d4-r7tjh/backstage.log"),
            collected("logs/backstage-worker-8f7b6c5d4-r7tjh/backstage.previous.log"),
        ],
        "the database's StatefulSet pod is not a backend"
    );
    let never_ran = summary["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"] == "logs/backstage-pr-1234-5b7c9d8f6d-wq9rt/backstage.log")
        .unwrap();
    assert_eq!(
        never_ran["reason"],
        "container backstage of pod backstage-pr-1234-5b7c9d8f6d-wq9rt has not started yet (ImagePullBackOff)"
    );
    // The report's own log reads (health reads with its own bounds) never asked for that pod.
    let asked: Vec<String> = rig
        .server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/log") && r.param("limitBytes").as_deref() == Some("1048576"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(asked.len(), 8, "{asked:?}");
    assert!(
        asked.iter().all(|p| !p.contains("backstage-pr-1234")),
        "{asked:?}"
    );
    // The archive is named after the namespace when no environment is selected.
    assert!(
        summary["archive"]
            .as_str()
            .unwrap()
            .contains("/backstage-report-backstage-"),
        "{summary}"
    );
}
