//! `verify` against a real Backstage 1.55.0 backend (installed from npm, running on the test
//! PostgreSQL; see support/backstage.rs): every check passing, with the token from each of its
//! sources; no token and a wrong one; a wrong base path answering the app's HTML page; a sign-in that
//! goes to the wrong host; a plugin that fails to start (a corrupt migration directory left by a newer
//! catalog, a held Knex lock), which keeps readiness at 503 for good; a backend without TechDocs. The
//! token is never in the output. The backend's own log of a plugin start failure is checked against
//! the diagnosis `health` uses.

#[path = "support/backstage.rs"]
mod backstage;
#[path = "support/keyvault.rs"]
mod keyvault;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/rig.rs"]
mod rig;

use std::path::Path;

use backstage::{Backend, BackendOptions, TOKEN};
use keyvault::FakeKeyVault;
use kubectl_backstage::model::diagnosis::{SCHEDULER_TABLE, StartupFailure, diagnose};
use serde_json::{Value, json};

const TOKEN_VAR: &str = "KBS_TEST_BACKSTAGE_TOKEN";
/// A migration a newer catalog-backend would have applied, which 4.0.0 does not ship.
const FUTURE_MIGRATION: &str = "20991231000000_from_a_newer_catalog.js";

/// The plugin binary with a clean environment: PATH, a temporary HOME, the token in [`TOKEN_VAR`].
fn plugin(home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("kubectl-backstage").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env(TOKEN_VAR, TOKEN)
        .arg("verify");
    cmd
}

/// Exit code, stdout, stderr; the token must be in neither.
fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token leaked:\n{stdout}\n{stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// The table's rows as `CHECK | STATUS | DETAIL`, without the latency (it varies).
fn rows(table: &str) -> Vec<String> {
    let columns = regex::Regex::new(r" {2,}").unwrap();
    table
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = columns.split(line.trim_end()).collect();
            assert!(
                cells.len() == 4
                    && (cells[2] == "-"
                        || (cells[2].ends_with("ms")
                            && cells[2][..cells[2].len() - 2].parse::<u64>().is_ok())),
                "not a row of CHECK, STATUS, LATENCY, DETAIL: {line:?}\n{table}"
            );
            format!("{} | {} | {}", cells[0], cells[1], cells[3])
        })
        .collect()
}

/// The JSON report's checks without their latencies (each must be a number, or null when skipped).
fn checks(document: &Value) -> Vec<Value> {
    document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let latency = c.as_object_mut().unwrap().remove("latencyMs").unwrap();
            assert_eq!(
                latency.is_u64(),
                c["status"] != "skipped",
                "latency of {c}: {latency}"
            );
            c
        })
        .collect()
}

const ALL_PASS: [&str; 7] = [
    "readiness | pass | ok",
    "liveness | pass | ok",
    "sign-in | pass | github: redirects to github.com",
    "catalog | pass | 3 entities",
    "catalog-anonymous | pass | refused without a token (401 Unauthorized)",
    "templates | pass | template:default/new-service: parameter schema with 1 step",
    "docs | pass | component:default/petstore: TechDocs answers; no docs published yet (404)",
];

#[test]
fn a_healthy_backend_passes_every_check() {
    let backend = Backend::healthy();
    let home = tempfile::tempdir().unwrap();
    let url = backend.url();

    // The token from --token-env; sign-in to github is expected on github.com.
    let (code, stdout, stderr) = run(plugin(home.path()).args([
        "--url",
        &url,
        "--auth-provider",
        "github",
        "--token-env",
        TOKEN_VAR,
    ]));
    assert_eq!((code, stderr.as_str()), (0, ""), "{stdout}");
    assert!(stdout.starts_with("CHECK "), "{stdout}");
    assert_eq!(rows(&stdout), ALL_PASS, "{stdout}");

    // The same as JSON, with -vv: the diagnostics on stderr never carry the token (checked by run).
    let (code, stdout, stderr) = run(plugin(home.path()).args([
        "--url",
        &url,
        "--auth-provider",
        "github",
        "--token-env",
        TOKEN_VAR,
        "-o",
        "json",
        "-vv",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let document: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(document["kind"], "VerifyReport");
    assert_eq!(document["url"], url.as_str());
    assert_eq!(document["passed"], true);
    assert_eq!(document["environment"], Value::Null);
    let catalog_path =
        "api/catalog/entities/by-query?limit=1&fields=kind,metadata.namespace,metadata.name";
    assert_eq!(
        checks(&document),
        vec![
            json!({"name": "readiness", "status": "pass", "detail": "ok", "path": ".backstage/health/v1/readiness"}),
            json!({"name": "liveness", "status": "pass", "detail": "ok", "path": ".backstage/health/v1/liveness"}),
            json!({"name": "sign-in", "status": "pass", "detail": "github: redirects to github.com", "path": "api/auth/github/start?env=development"}),
            json!({"name": "catalog", "status": "pass", "detail": "3 entities", "path": catalog_path}),
            json!({"name": "catalog-anonymous", "status": "pass", "detail": "refused without a token (401 Unauthorized)", "path": catalog_path}),
            json!({"name": "templates", "status": "pass", "detail": "template:default/new-service: parameter schema with 1 step", "path": "api/scaffolder/v2/templates/default/template/new-service/parameter-schema"}),
            json!({"name": "docs", "status": "pass", "detail": "component:default/petstore: TechDocs answers; no docs published yet (404)", "path": "api/techdocs/metadata/techdocs/default/component/petstore"}),
        ]
    );
    assert!(
        stderr.contains("api/scaffolder/v2/templates"),
        "-vv shows the requests: {stderr}"
    );

    // The environment's url and verify block from the config file, the token from $BACKSTAGE_TOKEN.
    let config = home.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "defaultEnvironment: local\nenvironments:\n  local:\n    url: {url}\n    verify:\n      auth: {{provider: github, env: development, host: github.com}}\n      docsEntity: default/component/petstore\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run(plugin(home.path())
        .env("BACKSTAGE_TOKEN", TOKEN)
        .arg("--config")
        .arg(&config)
        .args(["-o", "yaml"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let document: Value = serde_norway::from_str(&stdout).unwrap();
    assert_eq!(document["environment"], "local");
    assert!(
        checks(&document).iter().all(|c| c["status"] == "pass"),
        "{stdout}"
    );

    // The token from Key Vault (the fake, reached as https://portalvault.vault.azure.net/ through
    // its proxy, with the fake `az` login), as the environment's verify.token says.
    let vault = FakeKeyVault::start("portalvault");
    vault.add_secret("backstage-token", TOKEN);
    vault.forbid("locked-token");
    let vault_config = |secret: &str| {
        let path = home.path().join(format!("{secret}.yaml"));
        std::fs::write(
            &path,
            format!(
                "environments:\n  sbox:\n    url: {url}\n    verify:\n      auth: {{provider: github}}\n      token:\n        keyVault: {{vault: portalvault, secret: {secret}}}\n"
            ),
        )
        .unwrap();
        path
    };
    let base_path = std::env::var("PATH").unwrap_or_default();
    let (code, stdout, stderr) = run(plugin(home.path())
        .envs(vault.env(&base_path))
        .arg("--config")
        .arg(vault_config("backstage-token"))
        .args(["-e", "sbox"]));
    assert_eq!((code, stderr.as_str()), (0, ""), "{stdout}");
    assert_eq!(rows(&stdout), ALL_PASS, "{stdout}");
    let (code, stdout, stderr) = run(plugin(home.path())
        .envs(vault.env(&base_path))
        .arg("--config")
        .arg(vault_config("locked-token"))
        .args(["-e", "sbox"]));
    assert_eq!(
        (code, stdout.as_str(), stderr.as_str()),
        (
            2,
            "",
            "error: cannot read the API token: Key Vault https://portalvault.vault.azure.net/ refused access to secret \"locked-token\" (403): give the signed-in identity `get` permission on secrets\n"
        )
    );

    // No token at all: what needs one is skipped; anonymous access is still checked. Exit 0.
    let (code, stdout, _) = run(plugin(home.path()).env_remove(TOKEN_VAR).args([
        "--url",
        &url,
        "--auth-provider",
        "github",
    ]));
    assert_eq!(code, 0, "{stdout}");
    let no_token = "no API token: use --token-env VAR, $BACKSTAGE_TOKEN or verify.token";
    assert_eq!(
        rows(&stdout),
        [
            ALL_PASS[0].to_string(),
            ALL_PASS[1].to_string(),
            ALL_PASS[2].to_string(),
            format!("catalog | skipped | {no_token}"),
            ALL_PASS[4].to_string(),
            format!("templates | skipped | {no_token}"),
            format!("docs | skipped | {no_token}"),
        ],
        "{stdout}"
    );

    // A wrong token: every check that uses it fails with the backend's reason. Exit 1.
    let (code, stdout, _) = run(plugin(home.path())
        .env("WRONG_TOKEN", "not-the-static-token-123")
        .args(["--url", &url, "--token-env", "WRONG_TOKEN"]));
    assert_eq!(code, 1, "{stdout}");
    let refused = "the token was refused (401: Illegal token)";
    assert_eq!(
        rows(&stdout),
        [
            ALL_PASS[0].to_string(),
            ALL_PASS[1].to_string(),
            "sign-in | skipped | no sign-in provider: use --auth-provider or verify.auth.provider"
                .to_string(),
            format!("catalog | fail | {refused}"),
            ALL_PASS[4].to_string(),
            format!("templates | fail | {refused}"),
            format!("docs | fail | {refused}"),
        ],
        "{stdout}"
    );

    // A base path the portal does not serve: the app's index page answers every route with 200 HTML.
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &format!("{url}portal"),
        "--token-env",
        TOKEN_VAR,
        "--auth-provider",
        "github",
    ]));
    assert_eq!(code, 1, "{stdout}");
    let html = "got the app's HTML page: the API route is missing";
    assert_eq!(
        rows(&stdout),
        [
            format!("readiness | fail | {html}"),
            format!("liveness | fail | {html}"),
            format!("sign-in | fail | github: {html}"),
            format!("catalog | fail | {html}"),
            format!("catalog-anonymous | fail | {html}"),
            format!("templates | fail | {html}"),
            format!("docs | fail | {html}"),
        ],
        "{stdout}"
    );

    // Sign-in with a provider the backend lacks, and with the wrong identity provider host.
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &url,
        "--auth-provider",
        "microsoft",
        "--token-env",
        TOKEN_VAR,
    ]));
    assert_eq!(code, 1);
    assert_eq!(
        rows(&stdout)[2],
        "sign-in | fail | microsoft: 404: Unknown auth provider 'microsoft'"
    );
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &url,
        "--auth-provider",
        "github",
        "--auth-host",
        "login.microsoftonline.com",
        "--auth-env",
        "production",
    ]));
    assert_eq!(code, 1);
    assert_eq!(
        rows(&stdout)[2],
        "sign-in | fail | github: 404: No configuration available for the 'production' environment of this provider."
    );
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &url,
        "--auth-provider",
        "github",
        "--auth-host",
        "login.microsoftonline.com",
    ]));
    assert_eq!(code, 1);
    assert_eq!(
        rows(&stdout)[2],
        "sign-in | fail | github: redirects to github.com, expected login.microsoftonline.com"
    );

    // Docs of an entity the catalog does not have.
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &url,
        "--token-env",
        TOKEN_VAR,
        "--docs-entity",
        "default/component/nope",
    ]));
    assert_eq!(code, 1, "{stdout}");
    let docs = rows(&stdout)[6].clone();
    assert!(
        docs.starts_with("docs | fail | component:default/nope: 404: "),
        "{stdout}"
    );
}

/// Waits until the backend is up but held in start-up: readiness 503 and the start-up error logged.
fn started_with_a_failed_plugin(backend: &mut Backend) {
    backend.start();
    backend.wait_until_not_ready();
    backend.wait_for_log("BackendStartupError");
}

/// The rows of a backend whose catalog never started: readiness 503 for good, liveness 200, the
/// catalog's API 503 (after the backend's own 5 s pause), and what depends on the catalog failing.
fn assert_catalog_never_started(backend: &Backend) {
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &backend.url(),
        "--token-env",
        TOKEN_VAR,
        "--auth-provider",
        "github",
    ]));
    assert_eq!(code, 1, "{stdout}");
    let unavailable = "503: Service has not started up yet";
    assert_eq!(
        rows(&stdout),
        [
            "readiness | fail | 503: Backend has not started yet".to_string(),
            ALL_PASS[1].to_string(),
            ALL_PASS[2].to_string(),
            format!("catalog | fail | {unavailable}"),
            format!("catalog-anonymous | fail | {unavailable}"),
            format!("templates | fail | {unavailable}"),
            format!("docs | fail | {unavailable}"),
        ],
        "{stdout}"
    );
}

/// Readiness 503 while the backend is really starting: another session holds the catalog's Knex lock
/// row (`FOR UPDATE`, as a migrating pod's transaction does), so the catalog's migrations wait in
/// start-up. When that session ends, the same backend becomes ready and every check passes.
#[test]
fn readiness_is_503_while_the_catalog_waits_for_its_migration_lock() {
    let mut backend = Backend::prepare(BackendOptions::default());
    backend.seed(
        "catalog",
        "CREATE TABLE knex_migrations (id serial PRIMARY KEY, name varchar(255), batch integer, migration_time timestamptz);
         CREATE TABLE knex_migrations_lock (index serial PRIMARY KEY, is_locked integer);
         INSERT INTO knex_migrations_lock (is_locked) VALUES (0);",
    );
    let mut session = backend.session("catalog");
    let mut migrating = session.transaction().unwrap();
    migrating
        .batch_execute("SELECT * FROM knex_migrations_lock FOR UPDATE")
        .unwrap();
    backend.start();
    backend.wait_until_not_ready();
    // The catalog's lock query is queued behind the held row lock: start-up is waiting, not failed.
    let waiting = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = '{}'",
        backend.database("catalog")
    );
    let mut observer = backstage::pg().client("postgres");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while observer.query_one(&waiting, &[]).unwrap().get::<_, i64>(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the catalog never queued for the lock:\n{}",
            backend.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_catalog_never_started(&backend);
    assert!(
        !backend.log().contains("BackendStartupError"),
        "{}",
        backend.log()
    );

    migrating.rollback().unwrap();
    backend.wait_until_ready();
    backend.wait_until_catalog_has(3);
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &backend.url(),
        "--token-env",
        TOKEN_VAR,
        "--auth-provider",
        "github",
    ]));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(rows(&stdout), ALL_PASS, "{stdout}");
}

#[test]
fn a_corrupt_migration_directory_keeps_the_backend_unready() {
    let mut backend = Backend::prepare(BackendOptions::default());
    // What a newer catalog-backend leaves: a completed migration the installed 4.0.0 does not ship.
    backend.seed(
        "catalog",
        &format!(
            "CREATE TABLE knex_migrations (id serial PRIMARY KEY, name varchar(255), batch integer, migration_time timestamptz);
             INSERT INTO knex_migrations (name, batch, migration_time) VALUES ('{FUTURE_MIGRATION}', 1, now());"
        ),
    );
    started_with_a_failed_plugin(&mut backend);
    assert_catalog_never_started(&backend);
    assert!(backend.is_running(), "the backend does not exit");

    let log = backend.log();
    // How many plugins it waits for depends on how far they got.
    let logged = regex::Regex::new(&format!(
        r"Plugin 'catalog' threw an error during startup, waiting for \d+ other plugins to finish before shutting down the process\. The migration directory is corrupt, the following files are missing: {}",
        regex::escape(FUTURE_MIGRATION)
    ))
    .unwrap();
    assert!(logged.is_match(&log), "{log}");
    assert_eq!(
        diagnose(&log),
        Some(StartupFailure::CorruptMigrationDirectory {
            plugin: Some("catalog".into()),
            missing_files: vec![FUTURE_MIGRATION.into()],
        })
    );
}

#[test]
fn a_held_catalog_lock_keeps_the_backend_unready() {
    let mut backend = Backend::prepare(BackendOptions::default());
    // A lock left by a pod that died mid-migration.
    backend.seed(
        "catalog",
        "CREATE TABLE knex_migrations (id serial PRIMARY KEY, name varchar(255), batch integer, migration_time timestamptz);
         CREATE TABLE knex_migrations_lock (index serial PRIMARY KEY, is_locked integer);
         INSERT INTO knex_migrations_lock (is_locked) VALUES (1);",
    );
    started_with_a_failed_plugin(&mut backend);
    assert_catalog_never_started(&backend);

    let log = backend.log();
    assert!(log.contains("Migration table is already locked"), "{log}");
    assert_eq!(
        diagnose(&log),
        Some(StartupFailure::MigrationLocked {
            plugin: Some("catalog".into()),
            table: None,
        })
    );
}

/// A held lock on the catalog's **scheduler** table does not hold start-up: readiness is 200 and
/// every check passes, while the log says the lock is held — what `health` has to read the log for.
#[test]
fn a_held_scheduler_lock_leaves_the_backend_ready() {
    let mut backend = Backend::prepare(BackendOptions::default());
    backend.seed(
        "catalog",
        "CREATE TABLE backstage_backend_tasks__knex_migrations (id serial PRIMARY KEY, name varchar(255), batch integer, migration_time timestamptz);
         CREATE TABLE backstage_backend_tasks__knex_migrations_lock (index serial PRIMARY KEY, is_locked integer);
         INSERT INTO backstage_backend_tasks__knex_migrations_lock (is_locked) VALUES (1);",
    );
    backend.start();
    backend.wait_until_ready();
    backend.wait_until_catalog_has(3);
    backend.wait_for_log("Migration table is already locked");
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &backend.url(),
        "--token-env",
        TOKEN_VAR,
        "--auth-provider",
        "github",
    ]));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(rows(&stdout), ALL_PASS, "{stdout}");
    let log = backend.log();
    assert!(!log.contains("BackendStartupError"), "{log}");
    // Knex prints these two lines itself (not JSON), then the backend logs an unhandled rejection that
    // names no plugin: which plugin's scheduler is locked is not in the log.
    assert!(
        log.contains("Can't take lock to run migrations: Migration table is already locked\nIf you are sure migrations are not running you can release the lock manually by running 'knex migrate:unlock'\n"),
        "{log}"
    );
    let rejection = log
        .lines()
        .find(|l| l.contains("Unhandled rejection Migration table is already locked"))
        .expect("the rejection is logged");
    assert!(!rejection.contains("\"plugin\""), "{rejection}");
    // The diagnosis names the scheduler's table and no plugin: the log does not say which.
    assert_eq!(
        diagnose(&log),
        Some(StartupFailure::MigrationLocked {
            plugin: None,
            table: Some(SCHEDULER_TABLE.into()),
        })
    );
}

#[test]
fn a_backend_without_techdocs_fails_the_docs_check() {
    let mut backend = Backend::prepare(BackendOptions::without_techdocs());
    backend.start();
    backend.wait_until_ready();
    backend.wait_until_catalog_has(3);
    let home = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(plugin(home.path()).args([
        "--url",
        &backend.url(),
        "--token-env",
        TOKEN_VAR,
        "--auth-provider",
        "github",
    ]));
    assert_eq!(code, 1, "{stdout}");
    let mut expected: Vec<String> = ALL_PASS[..6].iter().map(|r| r.to_string()).collect();
    expected.push(
        "docs | fail | component:default/petstore: 404 with an empty body: the API route is missing (is the plugin installed?)"
            .into(),
    );
    assert_eq!(rows(&stdout), expected, "{stdout}");
}

/// The backend's address, for the fake API server's port-forward to connect to.
fn backend_addr(backend: &Backend) -> std::net::SocketAddr {
    backend
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// The incident fixtures' Backstage Service (`backstage`, port `http-backend` → 7007 of pod
/// `backstage-6c9f8d7b54-k4m2x`) forwarded by the fake API server to the real backend.
const FORWARDED_POD: &str = "backstage-6c9f8d7b54-k4m2x";

#[test]
fn without_a_url_the_portal_is_reached_through_the_api_server() {
    let backend = Backend::healthy();
    let rig = rig::Rig::incident();
    rig.server
        .set_pod_port(FORWARDED_POD, 7007, backend_addr(&backend));
    let verify = || {
        let mut cmd = rig.plugin();
        cmd.env(TOKEN_VAR, TOKEN).args([
            "verify",
            "--token-env",
            TOKEN_VAR,
            "--auth-provider",
            "github",
        ]);
        cmd
    };
    let (code, stdout, stderr) = run(&mut verify());
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(rows(&stdout), ALL_PASS, "{stdout}");
    assert_eq!(
        stderr,
        format!(
            "note: no URL: checking service/backstage → pod/{FORWARDED_POD}:7007 (through the API server)\n"
        )
    );
    // Every request went through the API server's port-forward of that pod, over websocket.
    let forwards: Vec<_> = rig
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/portforward"))
        .collect();
    assert!(!forwards.is_empty());
    assert!(
        forwards.iter().all(|r| r.path
            == format!("/api/v1/namespaces/backstage/pods/{FORWARDED_POD}/portforward")
            && r.param("ports").as_deref() == Some("7007")),
        "{forwards:?}"
    );

    let (code, stdout, _) = run(verify().args(["-o", "json"]));
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc["through"],
        format!("service/backstage → pod/{FORWARDED_POD}:7007 (through the API server)")
    );
    assert!(
        doc["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{doc}"
    );

    // A Service whose pod cannot be forwarded to: exit 2, one line saying why and what to do.
    rig.server.delete("Pod", "backstage", FORWARDED_POD);
    rig.server
        .delete("Pod", "backstage", "backstage-6c9f8d7b54-q8zvn");
    let (code, stdout, stderr) = run(&mut verify());
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert!(
        stderr.starts_with("error: no URL to verify (--url, or url in the environment), and ")
            && stderr.lines().count() <= 2,
        "{stderr}"
    );
}

#[test]
fn several_environments_in_one_table_one_unreachable() {
    let backend = Backend::healthy();
    let rig = rig::Rig::incident();
    rig.server
        .set_pod_port(FORWARDED_POD, 7007, backend_addr(&backend));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dr_config = rig.path("dr.kubeconfig");
    rig::write(
        &dr_config,
        &format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: dr, cluster: {{server: 'https://127.0.0.1:{closed}'}}}}]\ncontexts: [{{name: dr-aks, context: {{cluster: dr, user: dr}}}}]\nusers: [{{name: dr, user: {{token: dr-token}}}}]\n"
        ),
    );
    let config = rig.path("config.yaml");
    rig::write(
        &config,
        &format!(
            "environments:\n  sbox:\n    context: fake\n    url: {}\n    verify:\n      auth: {{provider: github}}\n      token: {{env: {TOKEN_VAR}}}\n  prod:\n    context: fake\n    namespace: backstage\n    verify:\n      auth: {{provider: github}}\n      token: {{env: {TOKEN_VAR}}}\n  dr:\n    context: dr-aks\n",
            backend.url()
        ),
    );
    let verify = || {
        let mut cmd = rig.plugin();
        cmd.env(TOKEN_VAR, TOKEN)
            .env("KUBECTL_BACKSTAGE_CONFIG", &config)
            .env(
                "KUBECONFIG",
                format!("{}:{}", rig.kubeconfig.display(), dr_config.display()),
            )
            .arg("verify");
        cmd
    };

    // sbox by its URL, prod through its cluster: the same rows, each with its environment.
    let (code, stdout, stderr) = run(verify().args(["-e", "sbox,prod"]));
    assert_eq!((code, stderr.as_str()), (0, ""), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ENVIRONMENT", "CHECK", "STATUS", "LATENCY", "DETAIL"]
    );
    let columns = regex::Regex::new(r" {2,}").unwrap();
    let got: Vec<String> = lines[1..]
        .iter()
        .map(|l| {
            let c: Vec<&str> = columns.split(l.trim_end()).collect();
            format!("{} | {} | {} | {}", c[0], c[1], c[2], c[4])
        })
        .collect();
    let want: Vec<String> = ["sbox", "prod"]
        .iter()
        .flat_map(|e| ALL_PASS.iter().map(move |r| format!("{e} | {r}")))
        .collect();
    assert_eq!(got, want, "{stdout}");

    // --all-envs: dr cannot be reached — a row that says why, exit 2; JSON is one document each.
    let (code, stdout, stderr) = run(verify().args(["--all-envs", "-o", "json"]));
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    let docs: Value = serde_json::from_str(&stdout).unwrap();
    let docs = docs.as_array().unwrap();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["environment"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dr", "prod", "sbox"]);
    let dr = docs[0]["error"].as_str().unwrap();
    assert!(
        dr.starts_with("no URL to verify (--url, or url in the environment), and cannot reach the API server https://127.0.0.1:"),
        "{dr}"
    );
    assert_eq!(stderr, format!("error: environment dr: {dr}\n"));
    assert_eq!(
        (&docs[1]["passed"], &docs[2]["passed"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(docs[2]["url"], backend.url());
    assert_eq!(docs[2]["through"], Value::Null);
    let (code, stdout, _) = run(verify().arg("--all-envs"));
    assert_eq!(code, 2);
    let dr_row = stdout.lines().nth(1).unwrap();
    assert!(
        dr_row.starts_with("dr ")
            && dr_row.contains(" error ")
            && dr_row.contains("could not check this environment: no URL to verify"),
        "{stdout}"
    );

    // --url names one portal: refused with several environments.
    let (code, stdout, stderr) = run(verify().args(["--all-envs", "--url", &backend.url()]));
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        "error: --url names one portal; with several environments each is checked at its own url (or through its cluster)\n"
    );
}
