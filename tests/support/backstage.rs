//! A real Backstage backend (release 1.55.0, new backend system) for the tests: installed from npm
//! once and cached under `target/backstage-backend/<key>/`, then started as a child process on a free
//! port against the test binary's PostgreSQL.
//!
//! - **Install**: the exact package versions of `@backstage/create-app` 0.9.2's version map (1.55.0),
//!   `npm install --ignore-scripts` (nothing native is built; `pg` is pure JS) in a temporary sibling
//!   that is renamed into place, so two test binaries preparing it at once both succeed. A placeholder
//!   `app` package (`dist/index.html` and `dist/static/`) stands in for the frontend app-backend
//!   serves. A plain `index.js` adds the plugins named in `$KBS_BACKEND_PLUGINS` (default: all).
//! - **Start**: `NODE_ENV=production` (JSON log lines) with an app-config that has a static
//!   external-access token ([`TOKEN`]), github sign-in with a dummy client id (no network needed),
//!   a catalog file with a Component that has TechDocs and a Template with parameters, and the
//!   database with a prefix of its own (`v<pid>_<n>_plugin_`), so backends of one test binary never
//!   share a database. Passwords and the token reach node through its environment only. stdout and
//!   stderr go to one log file.
//! - **Drop** kills the process and drops the backend's databases.
//!
//! Needs `postgres.rs` as a sibling module (`#[path = "support/postgres.rs"] mod postgres;`).

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::postgres::{Postgres, ident, literal, plugin_prefix};

/// A Backstage release as the tests install it: the versions `@backstage/create-app` pins for it.
pub struct Release {
    pub version: &'static str,
    pub packages: [(&'static str, &'static str); 11],
    /// Whether the tree gets a `backstage.json` (without one, `version` infers the release).
    pub backstage_json: bool,
}

/// The release the backends run: `@backstage/create-app` 0.9.2's versions.
pub const RELEASE_1_55_0: Release = Release {
    version: "1.55.0",
    packages: [
        ("@backstage/backend-defaults", "0.18.0"),
        ("@backstage/plugin-app-backend", "0.5.18"),
        ("@backstage/plugin-auth-backend", "0.30.1"),
        (
            "@backstage/plugin-auth-backend-module-github-provider",
            "0.5.7",
        ),
        (
            "@backstage/plugin-auth-backend-module-guest-provider",
            "0.2.23",
        ),
        ("@backstage/plugin-catalog-backend", "4.0.0"),
        (
            "@backstage/plugin-catalog-backend-module-scaffolder-entity-model",
            "0.2.24",
        ),
        ("@backstage/plugin-permission-backend", "0.7.16"),
        (
            "@backstage/plugin-permission-backend-module-allow-all-policy",
            "0.2.23",
        ),
        ("@backstage/plugin-scaffolder-backend", "4.2.0"),
        ("@backstage/plugin-techdocs-backend", "2.3.0"),
    ],
    backstage_json: true,
};

/// The release before it (`@backstage/create-app` 0.9.1), installed the same way but without a
/// `backstage.json`: only `version --diff` and the release inference use it.
pub const RELEASE_1_54_0: Release = Release {
    version: "1.54.0",
    packages: [
        ("@backstage/backend-defaults", "0.17.7"),
        ("@backstage/plugin-app-backend", "0.5.17"),
        ("@backstage/plugin-auth-backend", "0.30.0"),
        (
            "@backstage/plugin-auth-backend-module-github-provider",
            "0.5.6",
        ),
        (
            "@backstage/plugin-auth-backend-module-guest-provider",
            "0.2.22",
        ),
        ("@backstage/plugin-catalog-backend", "3.9.0"),
        (
            "@backstage/plugin-catalog-backend-module-scaffolder-entity-model",
            "0.2.23",
        ),
        ("@backstage/plugin-permission-backend", "0.7.15"),
        (
            "@backstage/plugin-permission-backend-module-allow-all-policy",
            "0.2.22",
        ),
        ("@backstage/plugin-scaffolder-backend", "4.0.3"),
        ("@backstage/plugin-techdocs-backend", "2.2.3"),
    ],
    backstage_json: false,
};

/// The version of `pg` the backend's Knex uses (pinned so the tree does not move).
const PG_VERSION: &str = "8.23.1";

/// The static external-access token the backend accepts (`Authorization: Bearer …`).
pub const TOKEN: &str = "kbs-static-token-4f7a2c9e";
/// The login role of the backends: CREATEDB, not a superuser, as on a managed server.
pub const DB_USER: &str = "backstage_backend";
pub const DB_PASSWORD: &str = "S3ntinel-backend-pw-81d2";

/// The catalog the backends read: one Component with TechDocs, one Template with parameters.
pub const COMPONENT: &str = "petstore";
pub const TEMPLATE: &str = "new-service";
const CATALOG: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: petstore
  annotations:
    backstage.io/techdocs-ref: dir:.
spec:
  type: service
  lifecycle: production
  owner: team-a
---
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: new-service
  title: New service
spec:
  owner: team-a
  type: service
  parameters:
    - title: Service
      required: [name]
      properties:
        name:
          title: Name
          type: string
  steps:
    - id: log
      name: Log
      action: debug:log
      input:
        message: hello
"#;

/// Bumped when the folder's layout changes, so an old cache is not reused.
const LAYOUT: u32 = 1;

const INDEX_JS: &str = r#"// Written by the kubectl-backstage tests: a backend of the new backend system, no build step.
const { createBackend } = require('@backstage/backend-defaults');
const all = [
  '@backstage/plugin-app-backend',
  '@backstage/plugin-auth-backend',
  '@backstage/plugin-auth-backend-module-github-provider',
  '@backstage/plugin-auth-backend-module-guest-provider',
  '@backstage/plugin-catalog-backend',
  '@backstage/plugin-catalog-backend-module-scaffolder-entity-model',
  '@backstage/plugin-permission-backend',
  '@backstage/plugin-permission-backend-module-allow-all-policy',
  '@backstage/plugin-scaffolder-backend',
  '@backstage/plugin-techdocs-backend',
];
const chosen = process.env.KBS_BACKEND_PLUGINS ? process.env.KBS_BACKEND_PLUGINS.split(',') : all;
const backend = createBackend();
for (const name of chosen) {
  backend.add(import(name));
}
backend.start();
"#;

/// The installed backend folder of [`RELEASE_1_55_0`] (with `node_modules` and `index.js`),
/// installed on first use.
pub fn install() -> &'static Path {
    static INSTALL: OnceLock<PathBuf> = OnceLock::new();
    INSTALL.get_or_init(|| install_release(&RELEASE_1_55_0))
}

/// The installed tree of [`RELEASE_1_54_0`].
pub fn install_older() -> &'static Path {
    static INSTALL: OnceLock<PathBuf> = OnceLock::new();
    INSTALL.get_or_init(|| install_release(&RELEASE_1_54_0))
}

fn install_release(release: &Release) -> PathBuf {
    prepare(release).unwrap_or_else(|e| panic!("backstage {} install: {e}", release.version))
}

fn cache_key(release: &Release) -> String {
    format!("{}-l{LAYOUT}", release.version)
}

fn prepare(release: &Release) -> Result<PathBuf, String> {
    let cache = target_dir().join("backstage-backend");
    let root = cache.join(cache_key(release));
    if root.join(".complete").exists() {
        return Ok(root);
    }
    fs::create_dir_all(&cache).map_err(|e| format!("create {}: {e}", cache.display()))?;
    let staging = cache.join(format!(".{}-{}", cache_key(release), std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let started = Instant::now();
    if let Err(e) = build(release, &staging) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    eprintln!(
        "installed the Backstage {} backend in {:.1}s",
        release.version,
        started.elapsed().as_secs_f64()
    );
    match fs::rename(&staging, &root) {
        Ok(()) => Ok(root),
        // Another test binary finished first: use its folder.
        Err(_) if root.join(".complete").exists() => {
            let _ = fs::remove_dir_all(&staging);
            Ok(root)
        }
        Err(e) => Err(format!("rename into {}: {e}", root.display())),
    }
}

fn build(release: &Release, dir: &Path) -> Result<(), String> {
    let app = dir.join("app");
    fs::create_dir_all(app.join("dist").join("static")).map_err(|e| e.to_string())?;
    write(
        &app.join("package.json"),
        r#"{"name": "app", "version": "0.0.0", "private": true}"#,
    );
    write(
        &app.join("dist").join("index.html"),
        "<!doctype html><html><head><title>Backstage</title></head><body><div id=\"root\"></div></body></html>\n",
    );
    write(&app.join("dist").join("static").join(".keep"), "");
    let mut dependencies = serde_json::Map::new();
    for (name, version) in release.packages {
        dependencies.insert(name.into(), version.into());
    }
    dependencies.insert("pg".into(), PG_VERSION.into());
    dependencies.insert("app".into(), "file:./app".into());
    let package = serde_json::json!({
        "name": "kbs-test-backend",
        "version": "0.0.0",
        "private": true,
        "dependencies": dependencies,
    });
    write(
        &dir.join("package.json"),
        &serde_json::to_string_pretty(&package).unwrap(),
    );
    write(&dir.join("index.js"), INDEX_JS);
    if release.backstage_json {
        write(
            &dir.join("backstage.json"),
            &format!("{{\"version\": \"{}\"}}\n", release.version),
        );
    }
    let out = Command::new("npm")
        .args([
            "install",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run npm (is it installed?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm install failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    write(&dir.join(".complete"), "");
    Ok(())
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The shared PostgreSQL with the backends' role ([`DB_USER`], CREATEDB) made on first use.
pub fn pg() -> &'static Postgres {
    static ROLE: OnceLock<()> = OnceLock::new();
    let pg = Postgres::shared();
    ROLE.get_or_init(|| {
        pg.create_role(DB_USER, DB_PASSWORD, false);
        pg.execute(
            "postgres",
            &format!("ALTER ROLE {} CREATEDB", ident(DB_USER)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    });
    pg
}

/// What a backend is started with.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// Package names to add (default: all of [`RELEASE_1_55_0`]'s packages but the backend-defaults).
    pub plugins: Option<Vec<&'static str>>,
    /// The installed tree to run (default: [`install`], release 1.55.0).
    pub tree: Option<PathBuf>,
    /// A database prefix shared with other backends (the pods of one environment), which then own
    /// nothing: the databases outlive this backend. Default: a prefix of its own, dropped with it.
    pub shared_prefix: Option<String>,
}

impl BackendOptions {
    /// Every plugin but TechDocs.
    pub fn without_techdocs() -> BackendOptions {
        BackendOptions {
            plugins: Some(
                RELEASE_1_55_0
                    .packages
                    .iter()
                    .map(|(name, _)| *name)
                    .filter(|n| {
                        *n != "@backstage/backend-defaults"
                            && *n != "@backstage/plugin-techdocs-backend"
                    })
                    .collect(),
            ),
            ..BackendOptions::default()
        }
    }
}

/// A backend: prepared (config written, databases seeded) and then started.
pub struct Backend {
    pub port: u16,
    pub prefix: String,
    dir: tempfile::TempDir,
    pub options: BackendOptions,
    child: Option<Child>,
}

impl Backend {
    /// Writes its config and catalog; nothing runs yet (seed databases with [`Backend::seed`]).
    pub fn prepare(options: BackendOptions) -> Backend {
        install();
        pg();
        let dir = tempfile::Builder::new()
            .prefix("kbs-backend-")
            .tempdir()
            .unwrap();
        let backend = Backend {
            port: free_port(),
            prefix: options
                .shared_prefix
                .clone()
                .unwrap_or_else(|| plugin_prefix('v')),
            dir,
            options,
            child: None,
        };
        write(&backend.dir.path().join("catalog-info.yaml"), CATALOG);
        fs::create_dir_all(backend.dir.path().join("techdocs")).unwrap();
        write(&backend.config_path(), &backend.config());
        backend
    }

    /// Prepares and starts a backend with every plugin, then waits until it is ready and its
    /// catalog holds the file's entities.
    pub fn healthy() -> Backend {
        let mut backend = Backend::prepare(BackendOptions::default());
        backend.start();
        backend.wait_until_ready();
        backend.wait_until_catalog_has(3);
        backend
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("backend.log")
    }

    /// Everything the backend has logged so far (JSON lines).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("app-config.yaml")
    }

    fn config(&self) -> String {
        let pg = pg();
        let base = format!("http://127.0.0.1:{}", self.port);
        let dir = self.dir.path().display();
        format!(
            r#"app:
  baseUrl: {base}
backend:
  baseUrl: {base}
  listen:
    host: 127.0.0.1
    port: {port}
  database:
    client: pg
    prefix: {prefix}
    connection:
      host: {host}
      port: {pg_port}
      user: {DB_USER}
      password: ${{KBS_PG_PASSWORD}}
  auth:
    externalAccess:
      - type: static
        options:
          token: ${{KBS_BACKEND_TOKEN}}
          subject: kubectl-backstage-tests
auth:
  environment: development
  providers:
    github:
      development:
        clientId: dummy-client-id
        clientSecret: dummy-client-secret
    guest: {{}}
catalog:
  rules:
    - allow: [Component, Template, Location, API, Resource, System, Domain, Group, User]
  locations:
    - type: file
      target: {dir}/catalog-info.yaml
techdocs:
  builder: local
  generator:
    runIn: local
  publisher:
    type: local
    local:
      publishDirectory: {dir}/techdocs
"#,
            port = self.port,
            prefix = self.prefix,
            host = pg.host(),
            pg_port = pg.port(),
        )
    }

    /// The database of `plugin` (`<prefix><plugin>`).
    pub fn database(&self, plugin: &str) -> String {
        format!("{}{plugin}", self.prefix)
    }

    /// Creates `plugin`'s database, owned by the backend's role, and runs `sql` in it as that role —
    /// what an earlier (say newer) backend would have left there.
    pub fn seed(&self, plugin: &str, sql: &str) {
        let pg = pg();
        let name = self.database(plugin);
        pg.execute(
            "postgres",
            &format!("CREATE DATABASE {} OWNER {}", ident(&name), ident(DB_USER)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        self.session(plugin)
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A session as the backend's role in `plugin`'s database (for holding row locks).
    pub fn session(&self, plugin: &str) -> postgres::Client {
        let pg = pg();
        let name = self.database(plugin);
        postgres::Config::new()
            .host(pg.host())
            .port(pg.port())
            .user(DB_USER)
            .password(DB_PASSWORD)
            .dbname(&name)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {name}: {e}"))
    }

    /// Starts node; returns at once (see [`Backend::wait_until_ready`]).
    pub fn start(&mut self) {
        let log = fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new("node");
        cmd.arg("index.js")
            .arg("--config")
            .arg(self.config_path())
            .current_dir(self.options.tree.as_deref().unwrap_or_else(|| install()))
            .env("NODE_ENV", "production")
            .env("KBS_PG_PASSWORD", DB_PASSWORD)
            .env("KBS_BACKEND_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(plugins) = &self.options.plugins {
            cmd.env("KBS_BACKEND_PLUGINS", plugins.join(","));
        }
        self.child = Some(cmd.spawn().expect("start node (is it installed?)"));
    }

    /// The status and body of readiness, or `None` while the port is closed.
    pub fn readiness(&self) -> Option<(u16, String)> {
        http_get(self.port, "/.backstage/health/v1/readiness", None)
    }

    /// Polls readiness until it answers 200 (at most two minutes; the log is shown if it does not).
    pub fn wait_until_ready(&mut self) {
        self.wait_for("readiness 200", |b| {
            b.readiness().is_some_and(|(status, _)| status == 200)
        });
    }

    /// Polls readiness until it answers 503 (the backend is up and a plugin has not started).
    pub fn wait_until_not_ready(&mut self) {
        self.wait_for("readiness 503", |b| {
            b.readiness().is_some_and(|(status, _)| status == 503)
        });
    }

    /// Polls the catalog (with the token) until it holds at least `count` entities: the backend is
    /// ready before its processing loop has ingested the catalog file.
    pub fn wait_until_catalog_has(&mut self, count: u64) {
        let path = "/api/catalog/entities/by-query?limit=1&fields=kind";
        self.wait_for(&format!("{count} catalog entities"), |b| {
            http_get(b.port, path, Some(TOKEN))
                .and_then(|(status, body)| (status == 200).then_some(body))
                .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
                .and_then(|v| v["totalItems"].as_u64())
                .is_some_and(|n| n >= count)
        });
    }

    /// Polls the log until it contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str) {
        self.wait_for(&format!("{needle:?} in the log"), |b| {
            b.log().contains(needle)
        });
    }

    fn wait_for(&mut self, what: &str, done: impl Fn(&Backend) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if done(self) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the backend exited ({status}) while waiting for {what}; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "the backend did not reach {what} within 120s; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The exit status once node has exited, `None` while it runs (or was never started).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills node (as the kubelet stops a container) and waits for it.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether node is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.options.shared_prefix.is_some() {
            return;
        }
        let pg = pg();
        if let Ok(mut client) = std::panic::catch_unwind(|| pg.client("postgres")) {
            let rows = client
                .query(
                    &format!(
                        "SELECT datname FROM pg_database WHERE starts_with(datname, {})",
                        literal(&self.prefix)
                    ),
                    &[],
                )
                .unwrap_or_default();
            for row in rows {
                let name: String = row.get(0);
                pg.drop_named(&name);
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (the rig's own probe, independent of the product's client):
/// status and body, or `None` when nothing listens.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
