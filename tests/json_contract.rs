//! The `-o json` contract: every command's document checked field by field against a small schema —
//! the allowed keys of every object and the type of every value — so that a new, renamed or retyped
//! field fails here. Field names are camelCase, times are RFC 3339 in UTC (`…Z`), and `-o yaml` is the
//! same document. `db status` carries the fields SPEC.md documents (kind, source, databases[].plugin /
//! database / schema / tables[].table / locked / currentVersion / completed[].name / batch / migratedAt /
//! pending / missing) and the further fields listed in its schema below (the spec allows more).
//!
//! Every declared field must also show up at least once in the documents a test checks (with a value,
//! not only `null`), so a schema cannot silently describe fields the fixtures never produce; the few
//! that the fixtures cannot produce are named in each test.

#[path = "support/flux_rig.rs"]
mod flux_rig;
#[path = "support/npm.rs"]
mod npm;
#[path = "support/plugin_dbs.rs"]
mod plugin_dbs;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/rig.rs"]
mod rig;

use std::collections::BTreeSet;

use npm::{CATALOG_ADDED, CATALOG_NEWER, CATALOG_OLDER};
use plugin_dbs::{Plugins, SENTINEL, checkout, pg, templates};
use rig::{Rig, json, run, write};
use serde_json::Value;

/// The type of a JSON value.
#[derive(Debug, Clone)]
enum T {
    Str,
    Int,
    Bool,
    /// An RFC 3339 time in UTC, ending in `Z`.
    Time,
    /// Exactly this string.
    Lit(&'static str),
    /// This type, or `null`.
    OrNull(Box<T>),
    List(Box<T>),
    Obj(Vec<Key>),
    /// An object whose `tag` key names the variant; each variant lists its other keys.
    Tagged(&'static str, Vec<(&'static str, Vec<Key>)>),
}

#[derive(Debug, Clone)]
struct Key {
    name: &'static str,
    ty: T,
    /// Left out of the document when it has no value (`skip_serializing_if`).
    optional: bool,
}

fn req(name: &'static str, ty: T) -> Key {
    Key {
        name,
        ty,
        optional: false,
    }
}

fn opt(name: &'static str, ty: T) -> Key {
    Key {
        name,
        ty,
        optional: true,
    }
}

fn null(t: T) -> T {
    T::OrNull(Box::new(t))
}

fn list(t: T) -> T {
    T::List(Box::new(t))
}

fn obj(keys: Vec<Key>) -> T {
    T::Obj(keys)
}

/// What checking documents against one schema found.
#[derive(Default)]
struct Checker {
    errors: Vec<String>,
    /// Paths that had a non-null value in some document.
    seen: BTreeSet<String>,
}

/// An object about one plugin database: `plugin`, `database` and `schema`, then `keys`.
fn in_database(keys: Vec<Key>) -> Vec<Key> {
    let mut all = vec![
        req("plugin", T::Str),
        req("database", T::Str),
        req("schema", null(T::Str)),
    ];
    all.extend(keys);
    all
}

fn is_camel_case(key: &str) -> bool {
    key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_alphanumeric())
}

impl Checker {
    fn check(&mut self, value: &Value, ty: &T, path: &str) {
        if !value.is_null() {
            self.seen.insert(path.to_string());
        }
        let fail = |me: &mut Checker, what: &str| {
            me.errors.push(format!("{path}: {what}, got {value}"));
        };
        match ty {
            T::Str => {
                if !value.is_string() {
                    fail(self, "expected a string");
                }
            }
            T::Int => {
                if !value.is_i64() {
                    fail(self, "expected an integer");
                }
            }
            T::Bool => {
                if !value.is_boolean() {
                    fail(self, "expected true or false");
                }
            }
            T::Time => match value.as_str() {
                Some(s) if s.ends_with('Z') && s.parse::<jiff::Timestamp>().is_ok() => {
                    // RFC 3339: date, `T`, time.
                    if s.len() < 20 || s.as_bytes()[10] != b'T' {
                        fail(self, "expected an RFC 3339 time");
                    }
                }
                _ => fail(self, "expected an RFC 3339 time in UTC ending in Z"),
            },
            T::Lit(want) => {
                if value.as_str() != Some(want) {
                    fail(self, &format!("expected {want:?}"));
                }
            }
            T::OrNull(inner) => {
                if !value.is_null() {
                    self.check(value, inner, path);
                }
            }
            T::List(inner) => match value.as_array() {
                Some(items) => {
                    for item in items {
                        self.check(item, inner, &format!("{path}[]"));
                    }
                }
                None => fail(self, "expected an array"),
            },
            T::Obj(keys) => self.object(value, keys, path),
            T::Tagged(tag, variants) => {
                let Some(name) = value.get(*tag).and_then(Value::as_str) else {
                    return fail(self, &format!("expected an object with a {tag:?} string"));
                };
                let Some((_, keys)) = variants.iter().find(|(v, _)| *v == name) else {
                    return fail(self, &format!("unknown {tag} {name:?}"));
                };
                let mut keys = keys.clone();
                keys.push(req(tag, T::Str));
                self.seen.insert(format!("{path}<{name}>"));
                self.object(value, &keys, &format!("{path}<{name}>"));
            }
        }
    }

    fn object(&mut self, value: &Value, keys: &[Key], path: &str) {
        let Some(map) = value.as_object() else {
            self.errors
                .push(format!("{path}: expected an object, got {value}"));
            return;
        };
        for (name, v) in map {
            if !is_camel_case(name) {
                self.errors
                    .push(format!("{path}.{name}: field name is not camelCase"));
            }
            match keys.iter().find(|k| k.name == name) {
                Some(key) => self.check(v, &key.ty, &format!("{path}.{name}")),
                None => self
                    .errors
                    .push(format!("{path}.{name}: unknown field (value {v})")),
            }
        }
        for key in keys {
            if !key.optional && !map.contains_key(key.name) {
                self.errors
                    .push(format!("{path}.{}: required field is missing", key.name));
            }
        }
    }
}

/// Every path a schema declares, as [`Checker::seen`] names them.
fn declared(ty: &T, path: &str, out: &mut BTreeSet<String>) {
    match ty {
        T::OrNull(inner) => declared(inner, path, out),
        T::List(inner) => {
            out.insert(path.to_string());
            declared(inner, &format!("{path}[]"), out);
        }
        T::Obj(keys) => {
            out.insert(path.to_string());
            for k in keys {
                declared(&k.ty, &format!("{path}.{}", k.name), out);
            }
        }
        T::Tagged(tag, variants) => {
            out.insert(path.to_string());
            for (name, keys) in variants {
                let p = format!("{path}<{name}>");
                out.insert(p.clone());
                out.insert(format!("{p}.{tag}"));
                for k in keys {
                    declared(&k.ty, &format!("{p}.{}", k.name), out);
                }
            }
        }
        _ => {
            out.insert(path.to_string());
        }
    }
}

/// Checks the documents against `schema`, and that every declared path but `never_seen` had a value
/// in one of them (and that those really had none, so the list stays honest).
fn assert_contract(name: &str, schema: &T, documents: &[&Value], never_seen: &[&str]) {
    let mut checker = Checker::default();
    for doc in documents {
        checker.check(doc, schema, "$");
    }
    let mut all = BTreeSet::new();
    declared(schema, "$", &mut all);
    for path in &all {
        let exempt = never_seen.contains(&path.as_str());
        let seen = checker.seen.contains(path);
        if !seen && !exempt {
            checker.errors.push(format!(
                "{path}: declared but never had a value in the documents checked (the test does not cover it)"
            ));
        }
        if seen && exempt {
            checker.errors.push(format!(
                "{path}: listed as never seen, but it had a value; take it off the list"
            ));
        }
    }
    for path in never_seen {
        if !all.contains(*path) {
            checker
                .errors
                .push(format!("{path}: listed as never seen, but not declared"));
        }
    }
    assert!(
        checker.errors.is_empty(),
        "{name}: the JSON document breaks its contract:\n  {}\n\ndocuments:\n{}",
        checker.errors.join("\n  "),
        documents
            .iter()
            .map(|d| serde_json::to_string_pretty(d).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Runs a command that prints a document; checks that `-o yaml` prints the same one.
fn document(mut command: impl FnMut() -> assert_cmd::Command, args: &[&str], code: i32) -> Value {
    let (got, out, err) = run(command().args(args).args(["-o", "json"]));
    assert_eq!(
        got, code,
        "{args:?}: exit code\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        !out.contains(SENTINEL) && !err.contains(SENTINEL),
        "the password leaked"
    );
    let doc = json(&out);
    let (got, yaml, err) = run(command().args(args).args(["-o", "yaml"]));
    assert_eq!(got, code, "{args:?} -o yaml: {err}");
    let from_yaml: Value = serde_norway::from_str(&yaml).unwrap();
    // Two runs: a relative age in a message may have moved by a second between them.
    assert_eq!(
        rig::without_relative_ages(from_yaml),
        rig::without_relative_ages(doc.clone()),
        "{args:?}: -o yaml is not the JSON document"
    );
    doc
}

fn startup_failure() -> T {
    T::Tagged(
        "kind",
        vec![
            (
                "corruptMigrationDirectory",
                vec![
                    req("plugin", null(T::Str)),
                    req("missingFiles", list(T::Str)),
                ],
            ),
            (
                "migrationLocked",
                vec![req("plugin", null(T::Str)), req("table", null(T::Str))],
            ),
            (
                "databaseAuthentication",
                vec![req("plugin", null(T::Str)), req("user", null(T::Str))],
            ),
            (
                "databaseConnection",
                vec![req("plugin", null(T::Str)), req("detail", T::Str)],
            ),
            (
                "pluginStartup",
                vec![req("plugin", T::Str), req("cause", T::Str)],
            ),
        ],
    )
}

fn health_schema() -> T {
    obj(health_keys())
}

/// `flux` of `health` and `version`: `null` unless a Deployment carries Flux's labels.
fn flux_schema() -> T {
    let reference = obj(vec![
        req("kind", T::Str),
        req("namespace", T::Str),
        req("name", T::Str),
    ]);
    let manager = obj(vec![
        req("kind", T::Str),
        req("namespace", T::Str),
        req("name", T::Str),
        req("workloads", list(T::Str)),
        req("read", T::Str),
        req("apiVersion", null(T::Str)),
        req("suspended", null(T::Bool)),
        req("revision", null(T::Str)),
        req("lastAttemptedRevision", null(T::Str)),
        req(
            "ready",
            null(obj(vec![
                req("status", T::Str),
                req("reason", null(T::Str)),
                req("message", null(T::Str)),
            ])),
        ),
        req("appliedBy", null(reference)),
    ]);
    let policy = obj(vec![
        req("namespace", T::Str),
        req("name", T::Str),
        req("imageRepository", T::Str),
        req("image", T::Str),
        req("latestImage", null(T::Str)),
        req("suspended", T::Bool),
        req(
            "containers",
            list(obj(vec![req("workload", T::Str), req("container", T::Str)])),
        ),
        req(
            "automations",
            list(obj(vec![
                req("namespace", T::Str),
                req("name", T::Str),
                req("suspended", T::Bool),
            ])),
        ),
    ]);
    null(obj(vec![
        req("managers", list(manager)),
        req("imagePolicies", list(policy)),
        req("notes", list(T::Str)),
    ]))
}

/// `never` and every path of [`flux_schema`] under `document` (`$`, `$[]`), for documents of
/// namespaces Flux does not manage.
fn and_flux(never: &[&str], document: &str) -> Vec<String> {
    let mut all = BTreeSet::new();
    declared(&flux_schema(), &format!("{document}.flux"), &mut all);
    never.iter().map(|p| p.to_string()).chain(all).collect()
}

fn strs(paths: &[String]) -> Vec<&str> {
    paths.iter().map(String::as_str).collect()
}

fn health_keys() -> Vec<Key> {
    let workload = obj(vec![
        req("kind", T::Str),
        req("name", T::Str),
        req("desired", T::Int),
        req("updated", T::Int),
        req("ready", T::Int),
        req("available", T::Int),
        req("rolloutComplete", T::Bool),
        req("rolloutMessage", null(T::Str)),
        req("progressDeadlineExceeded", T::Bool),
        req("image", T::Str),
        req("imageTag", T::Str),
    ]);
    let container = obj(vec![
        req("name", T::Str),
        req("image", T::Str),
        req("ready", T::Bool),
        req("restarts", T::Int),
        req("state", T::Str),
        req("reason", null(T::Str)),
        req("message", null(T::Str)),
        req("lastTerminationReason", null(T::Str)),
        req("lastExitCode", null(T::Int)),
        req("lastFinishedAt", null(T::Time)),
        req("memoryLimit", null(T::Str)),
        req("startedAt", null(T::Time)),
        req("backend", T::Bool),
    ]);
    let pod = obj(vec![
        req("name", T::Str),
        req("ready", T::Str),
        req("readyContainers", T::Int),
        req("totalContainers", T::Int),
        req("status", T::Str),
        req("restarts", T::Int),
        req("lastRestartAt", null(T::Time)),
        req("createdAt", null(T::Time)),
        req("image", T::Str),
        req("imageTag", T::Str),
        req("node", null(T::Str)),
        req("ip", null(T::Str)),
        req("terminating", T::Bool),
        req("phase", T::Str),
        req("owner", null(T::Str)),
        req("containers", list(container)),
    ]);
    let finding = obj(vec![
        req("severity", T::Str),
        req("object", T::Str),
        req("message", T::Str),
        req("hint", null(T::Str)),
        opt("diagnosis", startup_failure()),
    ]);
    vec![
        req("kind", T::Lit("HealthReport")),
        req("context", T::Str),
        req("namespace", T::Str),
        req("healthy", T::Bool),
        req("rolledOut", T::Bool),
        req("workloads", list(workload)),
        req("pods", list(pod)),
        req("findings", list(finding)),
        req("flux", flux_schema()),
    ]
}

#[test]
fn health_document() {
    let rig = Rig::incident();
    let doc = document(|| rig.plugin(), &["health"], 1);
    // A ready backend whose current log (captured from a real backend) shows the scheduler's lock.
    let pod = "backstage-55d8c9f7b6-rdy01";
    rig.server.apply(rig::backend_pod("degraded", pod, true));
    rig.server.set_log(
        "degraded",
        pod,
        "backstage",
        false,
        &rig::captured_log("scheduler-locked.production.log"),
    );
    let degraded = document(|| rig.plugin(), &["health", "-n", "degraded"], 1);
    // The fixtures' crash logs show one kind of start-up failure.
    let never = [
        "$.findings[].diagnosis<databaseAuthentication>",
        "$.findings[].diagnosis<databaseAuthentication>.kind",
        "$.findings[].diagnosis<databaseAuthentication>.plugin",
        "$.findings[].diagnosis<databaseAuthentication>.user",
        "$.findings[].diagnosis<databaseConnection>",
        "$.findings[].diagnosis<databaseConnection>.kind",
        "$.findings[].diagnosis<databaseConnection>.plugin",
        "$.findings[].diagnosis<databaseConnection>.detail",
        "$.findings[].diagnosis<pluginStartup>",
        "$.findings[].diagnosis<pluginStartup>.kind",
        "$.findings[].diagnosis<pluginStartup>.plugin",
        "$.findings[].diagnosis<pluginStartup>.cause",
    ];
    // A namespace Flux manages, and one whose image policies cannot be read.
    let flux = {
        let rig = flux_rig::flux_rig(&[]);
        document(|| rig.plugin(), &["health"], 1)
    };
    let forbidden = {
        let rig = flux_rig::flux_rig(&[("list", "imagepolicies")]);
        document(|| rig.plugin(), &["health"], 1)
    };
    assert_contract(
        "health",
        &health_schema(),
        &[&doc, &degraded, &flux, &forbidden],
        &never,
    );
    for severity in doc["findings"].as_array().unwrap() {
        assert!(
            ["error", "warning", "info"].contains(&severity["severity"].as_str().unwrap()),
            "{severity}"
        );
    }
}

/// `health -e a,b` / `--all-envs`: a list with one document per environment, the single-environment
/// document with `environment` first, or `{"environment", "error"}` for one that could not be checked.
#[test]
fn health_of_several_environments_document() {
    let rig = Rig::incident();
    let config = rig.path("config.yaml");
    write(
        &config,
        "environments:\n  ptlsbox: {namespace: backstage-staging}\n  ptl: {namespace: backstage}\n  gone: {context: nowhere}\n",
    );
    let doc = document(
        || {
            let mut cmd = rig.plugin();
            cmd.env("KUBECTL_BACKSTAGE_CONFIG", &config);
            cmd
        },
        &["health", "--all-envs"],
        2,
    );
    let items = doc.as_array().expect("a list");
    let (done, failed): (Vec<Value>, Vec<Value>) =
        items.iter().cloned().partition(|d| d.get("kind").is_some());
    assert_eq!((done.len(), failed.len()), (2, 1), "{doc}");
    let mut keys = vec![req("environment", T::Str)];
    keys.extend(health_keys());
    let never = [
        "$[].findings[].diagnosis<databaseAuthentication>",
        "$[].findings[].diagnosis<databaseAuthentication>.kind",
        "$[].findings[].diagnosis<databaseAuthentication>.plugin",
        "$[].findings[].diagnosis<databaseAuthentication>.user",
        "$[].findings[].diagnosis<databaseConnection>",
        "$[].findings[].diagnosis<databaseConnection>.kind",
        "$[].findings[].diagnosis<databaseConnection>.plugin",
        "$[].findings[].diagnosis<databaseConnection>.detail",
        "$[].findings[].diagnosis<pluginStartup>",
        "$[].findings[].diagnosis<pluginStartup>.kind",
        "$[].findings[].diagnosis<pluginStartup>.plugin",
        "$[].findings[].diagnosis<pluginStartup>.cause",
        "$[].findings[].diagnosis<migrationLocked>.table",
    ];
    let never = and_flux(&never, "$[]");
    assert_contract(
        "health several environments",
        &list(obj(keys)),
        &[&Value::Array(done)],
        &strs(&never),
    );
    assert_contract(
        "health several environments, one unreachable",
        &list(obj(vec![req("environment", T::Str), req("error", T::Str)])),
        &[&Value::Array(failed)],
        &[],
    );
}

#[test]
fn events_document() {
    let rig = Rig::incident();
    let doc = document(|| rig.plugin(), &["events"], 0);
    let event = obj(vec![
        req("lastSeen", null(T::Time)),
        req("firstSeen", null(T::Time)),
        req("type", T::Str),
        req("reason", T::Str),
        req(
            "object",
            obj(vec![req("kind", T::Str), req("name", T::Str)]),
        ),
        req("count", T::Int),
        req("message", T::Str),
        req("source", T::Str),
        req("name", T::Str),
    ]);
    let schema = obj(vec![
        req("kind", T::Lit("EventList")),
        req("context", T::Str),
        req("namespace", T::Str),
        req("events", list(event)),
    ]);
    assert_contract("events", &schema, &[&doc], &[]);
}

fn environment_keys() -> Vec<Key> {
    let password = T::Obj(vec![
        opt(
            "keyVault",
            obj(vec![req("vault", T::Str), req("secret", T::Str)]),
        ),
        opt("env", T::Str),
    ]);
    let database = obj(vec![
        opt("host", T::Str),
        opt("port", T::Int),
        opt("user", T::Str),
        opt("sslmode", T::Str),
        opt("sslrootcert", T::Str),
        opt("divisionMode", T::Str),
        opt("databasePrefix", T::Str),
        opt("database", T::Str),
        opt("password", password.clone()),
    ]);
    let verify = obj(vec![
        opt(
            "auth",
            obj(vec![
                opt("provider", T::Str),
                opt("env", T::Str),
                opt("host", T::Str),
            ]),
        ),
        opt("token", password),
        opt("docsEntity", T::Str),
    ]);
    vec![
        opt("context", T::Str),
        opt("namespace", T::Str),
        opt("url", T::Str),
        opt("database", database),
        opt("verify", verify),
    ]
}

const CONFIG: &str = "defaultEnvironment: sbox
environments:
  sbox:
    context: fake
    namespace: backstage
    url: https://backstage-sandbox.example.net/
    database:
      host: db.example.net
      port: 5432
      user: pgadmin
      sslmode: verify-full
      sslrootcert: /etc/ssl/azure-ca.pem
      divisionMode: database
      databasePrefix: backstage_plugin_
      password:
        keyVault: { vault: sbox-intsvc, secret: backstage-psqldb-password }
    verify:
      auth: { provider: microsoft, env: production, host: login.microsoftonline.com }
      token:
        keyVault: { vault: sbox-intsvc, secret: backstage-api-token }
      docsEntity: default/component/petstore
  prod:
    database:
      divisionMode: schema
      database: backstage
      password:
        env: PROD_PGPASSWORD
    verify:
      token: { env: PROD_BACKSTAGE_TOKEN }
";

#[test]
fn env_list_and_show_documents() {
    let rig = Rig::incident();
    let config = rig.path("config.yaml");
    write(&config, CONFIG);
    let with_config = || {
        let mut cmd = rig.plugin();
        cmd.arg("--config").arg(&config);
        cmd
    };
    let listed = document(with_config, &["env", "list"], 0);
    let none = document(|| rig.plugin(), &["env", "list"], 0);
    let mut named = vec![req("name", T::Str), req("default", T::Bool)];
    named.extend(environment_keys());
    let list_schema = obj(vec![
        req("kind", T::Lit("EnvironmentList")),
        req("configFile", null(T::Str)),
        req("defaultEnvironment", null(T::Str)),
        req("environments", list(obj(named.clone()))),
    ]);
    assert_contract("env list", &list_schema, &[&listed, &none], &[]);
    assert_eq!(
        none["environments"],
        serde_json::json!([]),
        "no config file"
    );
    let names: Vec<&str> = listed["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prod", "sbox"]);

    // `env show` prints the one environment, without a kind (as today).
    let sbox = document(with_config, &["env", "show", "sbox"], 0);
    let prod = document(with_config, &["env", "show", "prod"], 0);
    assert_contract("env show", &obj(named), &[&sbox, &prod], &[]);
    assert_eq!(sbox["default"], true);
    assert_eq!(
        sbox["database"]["password"]["keyVault"]["secret"],
        "backstage-psqldb-password"
    );
}

/// `verify` against a port where nothing listens: every check that runs fails with "cannot connect",
/// the ones that need a token are skipped (no latency, no path). The documents of a real backend are
/// checked in tests/verify.rs.
#[test]
fn verify_document() {
    let rig = Rig::incident();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = rig.path("config.yaml");
    write(
        &config,
        &format!(
            "environments:\n  local:\n    url: http://127.0.0.1:{closed}/\n    verify:\n      auth: {{provider: github}}\n"
        ),
    );
    let with_config = || {
        let mut cmd = rig.plugin();
        cmd.arg("--config").arg(&config);
        cmd
    };
    // Latencies differ between two runs: the JSON and YAML documents are compared without them.
    let without_latency = |mut doc: Value| {
        for check in doc["checks"].as_array_mut().unwrap() {
            check["latencyMs"] = Value::Null;
        }
        doc
    };
    let (code, out, err) = run(with_config().args(["verify", "-e", "local", "-o", "json"]));
    assert_eq!(code, 1, "{err}");
    let doc = json(&out);
    let (code, yaml, err) = run(with_config().args(["verify", "-e", "local", "-o", "yaml"]));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        without_latency(serde_norway::from_str(&yaml).unwrap()),
        without_latency(doc.clone()),
        "-o yaml is not the JSON document"
    );
    let schema = obj(vec![
        req("kind", T::Lit("VerifyReport")),
        req("environment", null(T::Str)),
        req("url", T::Str),
        req("through", null(T::Str)),
        req("passed", T::Bool),
        req(
            "checks",
            list(obj(vec![
                req("name", T::Str),
                req("status", T::Str),
                req("latencyMs", null(T::Int)),
                req("detail", T::Str),
                req("path", null(T::Str)),
            ])),
        ),
    ]);
    // Without a URL: through the API server's port-forward (to the closed port: every check fails,
    // `through` says which Service and pod were reached).
    rig.server.set_pod_port(
        "backstage-6c9f8d7b54-k4m2x",
        7007,
        ([127, 0, 0, 1], closed).into(),
    );
    let (code, out, err) = run(rig.plugin().args(["verify", "-o", "json"]));
    assert_eq!(code, 1, "{err}");
    let forwarded = json(&out);
    assert_contract("verify", &schema, &[&doc, &forwarded], &[]);
    let statuses: Vec<(&str, &str)> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("readiness", "fail"),
            ("liveness", "fail"),
            ("sign-in", "fail"),
            ("catalog", "skipped"),
            ("catalog-anonymous", "fail"),
            ("templates", "skipped"),
            ("docs", "skipped"),
        ]
    );
    assert_eq!(doc["environment"], "local");
    assert_eq!(doc["passed"], false);
}

fn lock_state() -> T {
    T::Tagged(
        "state",
        vec![
            ("tableMissing", vec![]),
            ("noRows", vec![]),
            ("free", vec![]),
            ("held", vec![]),
            (
                "irregular",
                vec![req("rows", T::Int), req("freeRows", T::Int)],
            ),
        ],
    )
}

/// One migration table in `db status` (and in `db rollback`'s after-status).
fn table_status() -> T {
    obj(vec![
        // Documented in SPEC.md.
        req("table", T::Str),
        req("locked", T::Bool),
        req("currentVersion", T::Str),
        req(
            "completed",
            list(obj(vec![
                req("name", T::Str),
                req("batch", null(T::Int)),
                req("migratedAt", null(T::Time)),
            ])),
        ),
        req("pending", list(T::Str)),
        req("missing", list(T::Str)),
        // Beyond the spec's example.
        req("lock", lock_state()),
        req("filesFrom", null(T::Str)),
        req("filesRelease", null(T::Str)),
        req("corruptDirectoryError", null(T::Str)),
    ])
}

fn status_schema() -> T {
    obj(vec![
        req("kind", T::Lit("DbStatus")),
        req("source", null(T::Str)),
        req(
            "databases",
            list(obj(in_database(vec![req("tables", list(table_status()))]))),
        ),
    ])
}

/// Lock states the plugin databases of these tests never have.
const RARE_LOCKS: [&str; 8] = [
    "<tableMissing>",
    "<noRows>",
    "<noRows>.state",
    "<irregular>",
    "<irregular>.state",
    "<irregular>.rows",
    "<irregular>.freeRows",
    "<tableMissing>.state",
];

fn rare_locks(prefix: &str) -> Vec<String> {
    RARE_LOCKS
        .iter()
        .map(|p| format!("{prefix}.lock{p}"))
        .collect()
}

#[test]
fn db_status_document() {
    let (older, newer) = templates();
    // The newer catalog against the older files: two missing migrations. An empty database: no tables.
    let mut ahead = Plugins::new();
    ahead.create("catalog", Some(newer));
    ahead.create("app", None);
    // The older catalog against the newer files: two pending migrations, and its lock is held.
    let mut behind = Plugins::new();
    let held = behind.create("catalog", Some(older));
    pg().execute(&held, "UPDATE knex_migrations_lock SET is_locked = 1")
        .unwrap();
    let older_code = checkout(ahead.dir.path(), "older", CATALOG_OLDER);
    let newer_code = checkout(ahead.dir.path(), "newer", CATALOG_NEWER);
    let missing = document(
        || ahead.db(),
        &["status", "--source", older_code.to_str().unwrap()],
        1,
    );
    let pending = document(
        || behind.db(),
        &["status", "--source", newer_code.to_str().unwrap()],
        1,
    );
    let without_files = document(|| ahead.db(), &["status"], 0);
    let tables = "$.databases[].tables[]";
    let mut never = rare_locks(tables);
    // Database mode only: schema mode is `db.rs`'s.
    never.push("$.databases[].schema".into());
    let never: Vec<&str> = never.iter().map(String::as_str).collect();
    assert_contract(
        "db status",
        &status_schema(),
        &[&missing, &pending, &without_files],
        &never,
    );

    // The values the spec names, for the catalog's own table.
    let knex = |doc: &Value| -> Value {
        doc["databases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["plugin"] == "catalog")
            .unwrap()["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == "knex_migrations")
            .unwrap()
            .clone()
    };
    let ahead_table = knex(&missing);
    assert_eq!(ahead_table["missing"], serde_json::json!(CATALOG_ADDED));
    assert_eq!(ahead_table["pending"], serde_json::json!([]));
    assert_eq!(ahead_table["currentVersion"], "20260912000000");
    assert_eq!(ahead_table["completed"][0]["batch"], 1);
    assert_eq!(ahead_table["locked"], false);
    assert_eq!(ahead_table["lock"]["state"], "free");
    // catalog-backend 3.8.0 first shipped in Backstage 1.52.0, 4.0.0 in 1.55.0.
    assert_eq!(ahead_table["filesRelease"], "1.52.0");
    let behind_table = knex(&pending);
    assert_eq!(behind_table["filesRelease"], "1.55.0");
    assert_eq!(behind_table["pending"], serde_json::json!(CATALOG_ADDED));
    assert_eq!(behind_table["locked"], true);
    assert_eq!(behind_table["lock"]["state"], "held");
    assert_eq!(
        missing["databases"][1]["database"],
        format!("{}catalog", ahead.prefix)
    );
    assert_eq!(without_files["source"], Value::Null);
}

/// The last migration of the older catalog.
const OLDER_LAST: &str = "20260609000000_drop_search_entity_id_idx.js";

#[test]
fn db_list_current_version_plan_and_rollback_dry_run_documents() {
    let (older, newer) = templates();
    let mut plugins = Plugins::new();
    let catalog = plugins.create("catalog", Some(newer));
    plugins.create("app", None);
    let before = plugin_dbs::snapshot(&catalog);

    let listed = document(|| plugins.db(), &["list"], 0);
    let list_schema = obj(vec![
        req("kind", T::Lit("DbList")),
        req("host", T::Str),
        req(
            "databases",
            list(obj(in_database(vec![req("tables", list(T::Str))]))),
        ),
    ]);
    assert_contract(
        "db list",
        &list_schema,
        &[&listed],
        &["$.databases[].schema"],
    );

    let version = document(
        || plugins.db(),
        &["current-version", "--plugin", "catalog"],
        0,
    );
    let version_schema = obj(vec![
        req("kind", T::Lit("CurrentVersion")),
        req("plugin", T::Str),
        req("database", T::Str),
        req("schema", null(T::Str)),
        req(
            "tables",
            list(obj(vec![
                req("table", T::Str),
                req("currentVersion", T::Str),
            ])),
        ),
    ]);
    assert_contract(
        "db current-version",
        &version_schema,
        &[&version],
        &["$.schema"],
    );

    let older_code = checkout(plugins.dir.path(), "older", CATALOG_OLDER);
    let newer_code = checkout(plugins.dir.path(), "newer", CATALOG_NEWER);
    // A plugin the target does not ship: its tables are not in the target.
    plugins.create("search", Some(older));
    let plan = document(
        || plugins.db(),
        &["plan", "--to", older_code.to_str().unwrap()],
        1,
    );
    // The older catalog moved to the newer files: an upgrade.
    let mut behind = Plugins::new();
    behind.create("catalog", Some(older));
    let upgrade = document(
        || behind.db(),
        &["plan", "--to", newer_code.to_str().unwrap()],
        0,
    );
    // A catalog with only its first migration: the upgrade runs migrations whose down() is empty,
    // each a warning.
    let mut first_only = Plugins::new();
    let database = first_only.create("catalog", None);
    let out = npm::KnexRig::get().run(
        &plugin_dbs::knex_target(&database, CATALOG_NEWER, "migrations", "knex_migrations"),
        &["migrate:up"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let irreversible = document(
        || first_only.db(),
        &["plan", "--to", newer_code.to_str().unwrap()],
        0,
    );
    assert_eq!(
        irreversible["warnings"].as_array().map(Vec::len),
        Some(3),
        "{irreversible}"
    );
    let plan_schema = obj(vec![
        req("kind", T::Lit("DbPlan")),
        req("to", T::Str),
        req("rollbackNeeded", T::Bool),
        req(
            "databases",
            list(obj(in_database(vec![
                req(
                    "tables",
                    list(obj(vec![
                        req("table", T::Str),
                        req("upgrade", list(T::Str)),
                        req("rollback", list(T::Str)),
                        req("commands", list(T::Str)),
                        req(
                            "upgradeChecks",
                            list(obj(vec![
                                req("name", T::Str),
                                req("reversible", null(T::Bool)),
                                req("down", T::Str),
                            ])),
                        ),
                    ])),
                ),
                req("notInTarget", list(T::Str)),
            ]))),
        ),
        req("warnings", list(T::Str)),
    ]);
    assert_contract(
        "db plan",
        &plan_schema,
        &[&plan, &upgrade, &irreversible],
        &["$.databases[].schema"],
    );

    let dry_run = document(
        || plugins.db(),
        &[
            "rollback",
            "--plugin",
            "catalog",
            "--to",
            OLDER_LAST,
            "--runner",
            "local",
            "--source",
            newer_code.to_str().unwrap(),
            "--dry-run",
        ],
        0,
    );
    let rollback_schema = obj(vec![
        req("kind", T::Lit("DbRollback")),
        req("plugin", T::Str),
        req("database", T::Str),
        req("schema", null(T::Str)),
        req("table", T::Str),
        req("runner", T::Str),
        req("dryRun", T::Bool),
        req("plan", list(T::Str)),
        req("undone", list(T::Str)),
        req("notUndone", list(T::Str)),
        req("error", null(T::Str)),
        req("lockReleased", T::Bool),
        req("status", null(table_status())),
    ]);
    // A dry run undoes nothing and has no after-status: only the shape of its own fields is checked.
    let mut never = vec![
        "$.schema".to_string(),
        "$.undone[]".into(),
        "$.notUndone[]".into(),
        "$.error".into(),
        "$.status".into(),
    ];
    let mut status_paths = BTreeSet::new();
    declared(&table_status(), "$.status", &mut status_paths);
    never.extend(status_paths.into_iter().filter(|p| p != "$.status"));
    let never: Vec<&str> = never.iter().map(String::as_str).collect();
    assert_contract(
        "db rollback --dry-run",
        &rollback_schema,
        &[&dry_run],
        &never,
    );
    assert_eq!(dry_run["dryRun"], true);
    assert_eq!(
        dry_run["plan"],
        serde_json::json!([CATALOG_ADDED[1], CATALOG_ADDED[0]])
    );
    assert_eq!(
        plugin_dbs::snapshot(&catalog),
        before,
        "read-only commands and a dry run changed the database"
    );
}

#[test]
fn the_checker_rejects_unknown_renamed_retyped_and_local_times() {
    let schema = obj(vec![
        req("kind", T::Lit("X")),
        req("at", T::Time),
        req("n", null(T::Int)),
    ]);
    let good = serde_json::json!({"kind": "X", "at": "2026-09-12T10:00:00Z", "n": null});
    let mut c = Checker::default();
    c.check(&good, &schema, "$");
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    for (bad, want) in [
        (
            serde_json::json!({"kind": "X", "at": "2026-09-12T10:00:00Z", "n": 1, "extra": 1}),
            "$.extra: unknown field",
        ),
        (
            serde_json::json!({"kind": "X", "at": "2026-09-12T10:00:00Z", "N": 1}),
            "$.N: field name is not camelCase",
        ),
        (
            serde_json::json!({"kind": "X", "at": "2026-09-12T10:00:00Z"}),
            "$.n: required field is missing",
        ),
        (
            serde_json::json!({"kind": "X", "at": "2026-09-12T10:00:00+02:00", "n": 1}),
            "$.at: expected an RFC 3339 time in UTC ending in Z",
        ),
        (
            serde_json::json!({"kind": "X", "at": "2026-09-12T10:00:00Z", "n": "1"}),
            "$.n: expected an integer",
        ),
        (
            serde_json::json!({"kind": "Y", "at": "2026-09-12T10:00:00Z", "n": 1}),
            "$.kind: expected \"X\"",
        ),
    ] {
        let mut c = Checker::default();
        c.check(&bad, &schema, "$");
        assert!(
            c.errors.iter().any(|e| e.starts_with(want)),
            "{bad}: want {want:?}, got {:?}",
            c.errors
        );
    }
}

/// `-o json` never carries a raw control character: ESC and the other C0 controls are escaped by
/// JSON itself, and C1 controls (U+0080–U+009F, e.g. the one-byte CSI U+009B) are written as `\u009b`.
/// The text itself is kept: parsing the document gives back the event's message exactly.
#[test]
fn json_escapes_c1_controls_after_hardening() {
    let rig = Rig::incident();
    let message = "pull failed \u{9b}31m\u{1b}]52;c;aGk=\u{7}\r done";
    rig.server.apply(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "evil.1", "namespace": "backstage", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "involvedObject": {"kind": "Pod", "name": "evil", "namespace": "backstage"},
        "reason": "Evil",
        "message": message,
        "type": "Warning",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
        "source": {"component": "kubelet"}
    }));
    let (code, out, err) = run(rig.plugin().args(["events", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let raw: Vec<char> = out
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(raw.is_empty(), "raw control characters in -o json: {raw:?}");
    assert!(out.contains("\\u009b"), "{out}");
    let doc = json(&out);
    let evil = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "Evil")
        .unwrap();
    assert_eq!(evil["message"], message);
}

/// A Backstage app folder whose `node_modules` holds `packages` (symlinks into the npm cache).
fn app_tree(
    dir: &std::path::Path,
    name: &str,
    packages: &[npm::Package],
    release: Option<&str>,
) -> std::path::PathBuf {
    let root = dir.join(name);
    let scope = root.join("node_modules/@backstage");
    std::fs::create_dir_all(&scope).unwrap();
    for package in packages {
        let link = scope.join(package.name.trim_start_matches("@backstage/"));
        std::os::unix::fs::symlink(npm::KnexRig::get().package_dir(*package), link).unwrap();
    }
    if let Some(release) = release {
        write(
            &root.join("backstage.json"),
            &format!("{{\"version\": \"{release}\"}}"),
        );
    }
    root
}

fn tag_kind() -> T {
    T::Tagged(
        "kind",
        vec![
            ("pr", vec![req("number", T::Int), req("commit", T::Str)]),
            ("prod", vec![req("commit", T::Str), req("built", T::Str)]),
            ("semver", vec![req("version", T::Str)]),
            ("digest", vec![]),
            ("latest", vec![]),
            ("other", vec![]),
        ],
    )
}

fn version_schema() -> T {
    let workload = obj(vec![
        req("workload", T::Str),
        req("container", T::Str),
        req("image", T::Str),
        req("registry", null(T::Str)),
        req("repository", T::Str),
        req("tag", null(T::Str)),
        req("digest", null(T::Str)),
        req("tagKind", tag_kind()),
        req(
            "running",
            list(obj(vec![
                req("image", T::Str),
                req("digest", null(T::Str)),
                req("pods", T::Int),
            ])),
        ),
    ]);
    let backstage = obj(vec![
        req("source", T::Str),
        req("release", null(T::Str)),
        req("releaseFrom", null(T::Str)),
        req("backstageJson", null(T::Str)),
        req(
            "inference",
            null(obj(vec![
                req("release", T::Str),
                req("matched", T::Int),
                req("compared", T::Int),
                req("alsoMatching", list(T::Str)),
                req("partial", T::Bool),
            ])),
        ),
        req(
            "packages",
            list(obj(vec![
                req("package", T::Str),
                req("version", T::Str),
                req("pluginId", null(T::Str)),
                req("pluginIdFrom", null(T::Str)),
                req("role", null(T::Str)),
                req("migrations", T::Int),
                req("firstRelease", null(T::Str)),
            ])),
        ),
    ]);
    obj(vec![
        req("kind", T::Lit("Version")),
        req("namespace", null(T::Str)),
        req("workloads", list(workload)),
        req("backstage", null(backstage)),
        req("backstageError", null(T::Str)),
        req("flux", flux_schema()),
    ])
}

fn version_diff_schema() -> T {
    let side = obj(vec![
        req("source", T::Str),
        req("release", null(T::Str)),
        req("releaseFrom", null(T::Str)),
    ]);
    obj(vec![
        req("kind", T::Lit("VersionDiff")),
        req("from", side.clone()),
        req("to", side),
        req(
            "packages",
            list(obj(vec![
                req("package", T::Str),
                req("from", null(T::Str)),
                req("to", null(T::Str)),
                req("change", T::Str),
            ])),
        ),
        req("unchanged", T::Int),
        req(
            "migrations",
            list(obj(vec![
                req("plugin", null(T::Str)),
                req("table", T::Str),
                req("package", T::Str),
                req("added", list(T::Str)),
                req("removed", list(T::Str)),
                req("commands", list(T::Str)),
                req("goneInTo", T::Bool),
            ])),
        ),
        req("downgrade", T::Bool),
        req("commands", list(T::Str)),
    ])
}

#[test]
fn version_and_version_diff_documents() {
    use npm::{RELEASE_1_52_1, RELEASE_1_55_0};
    let dir = tempfile::tempdir().unwrap();
    let newer = app_tree(dir.path(), "newer", &RELEASE_1_55_0, None);
    // The older tree has a package only it ships, so a diff has a removed package.
    let mut older_packages = RELEASE_1_52_1.to_vec();
    older_packages.push(npm::BACKEND_TASKS);
    let older = app_tree(dir.path(), "older", &older_packages, Some("1.52.1"));
    let rig = Rig::incident();
    // Before any pod root is set, the pods cannot be read: the report says why.
    let unread = document(|| rig.plugin(), &["version"], 0);
    assert_eq!(unread["backstage"], Value::Null);
    for pod in ["backstage-6c9f8d7b54-k4m2x", "backstage-6c9f8d7b54-q8zvn"] {
        rig.server.set_pod_root(pod, &newer);
    }
    let from_pod = document(|| rig.plugin(), &["version"], 0);
    let no_cluster = || {
        let mut cmd = rig.plugin();
        cmd.env("KUBECONFIG", dir.path().join("none"));
        cmd
    };
    let from_dir = document(
        no_cluster,
        &["version", "--source", older.to_str().unwrap()],
        0,
    );
    assert_eq!(from_dir["namespace"], Value::Null);
    let never = [
        "$.workloads[].digest",
        "$.workloads[].tagKind<digest>",
        "$.workloads[].tagKind<digest>.kind",
        "$.workloads[].tagKind<latest>",
        "$.workloads[].tagKind<latest>.kind",
        "$.workloads[].tagKind<other>",
        "$.workloads[].tagKind<other>.kind",
        "$.backstage.inference.alsoMatching[]",
    ];
    let flux = {
        let rig = flux_rig::flux_rig(&[("list", "imagepolicies")]);
        document(|| rig.plugin(), &["version"], 0)
    };
    let flux_everything = {
        let rig = flux_rig::flux_rig(&[]);
        document(|| rig.plugin(), &["version"], 0)
    };
    assert_contract(
        "version",
        &version_schema(),
        &[&unread, &from_pod, &from_dir, &flux, &flux_everything],
        &never,
    );
    let (o, n) = (older.to_str().unwrap(), newer.to_str().unwrap());
    let down = document(|| rig.plugin(), &["version", "--diff", "pod", o], 1);
    let up = document(no_cluster, &["version", "--diff", o, n], 0);
    // Every migration table of these trees is a plugin's own or the scheduler's, which
    // backend-tasks 0.6.1 (older only) and backend-defaults share.
    assert_contract("version --diff", &version_diff_schema(), &[&down, &up], &[]);
    let catalog = |doc: &Value| -> Value {
        doc["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["plugin"] == "catalog")
            .unwrap()
            .clone()
    };
    assert_eq!(
        catalog(&down)["removed"],
        serde_json::json!([CATALOG_ADDED[1], CATALOG_ADDED[0]])
    );
    assert_eq!(catalog(&up)["added"], serde_json::json!(CATALOG_ADDED));
}

/// `version --client`: this binary's build, with nothing read from a cluster.
#[test]
fn version_client_document() {
    let rig = Rig::incident();
    let doc = document(|| rig.plugin(), &["version", "--client"], 0);
    let schema = obj(vec![
        req("kind", T::Lit("ClientVersion")),
        req("version", T::Str),
        req("gitCommit", T::Str),
        req("buildDate", T::Str),
        req("target", T::Str),
    ]);
    assert_contract("version --client", &schema, &[&doc], &[]);
}

#[test]
fn report_document() {
    let rig = Rig::start(backstage_testkit::ServerOptions {
        tls: true,
        token: Some(rig::TOKEN.into()),
        forbidden: vec![("list".into(), "events".into())],
        ..backstage_testkit::ServerOptions::new(backstage_testkit::Fixtures::incident())
    });
    let mut plugins = Plugins::new();
    plugins.create("catalog", Some(&templates().0));
    let config = rig.path("config.yaml");
    write(
        &config,
        "defaultEnvironment: sbox\nenvironments:\n  sbox:\n    context: fake\n    namespace: backstage\n",
    );
    let out = rig.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut args: Vec<String> = vec![
        "report".into(),
        "--since".into(),
        "1h".into(),
        "--dir".into(),
        out.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    args.extend(plugins.connection_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Each run writes its own archive at its own time, so the two documents differ in those fields
    // only (`document` would compare them whole).
    let runs: Vec<Value> = ["json", "yaml"]
        .iter()
        .map(|format| {
            let (code, out, err) = run(rig
                .plugin()
                .env(plugin_dbs::PASSWORD_ENV, SENTINEL)
                .args(&args)
                .args(["-o", format]));
            assert_eq!(code, 0, "{err}");
            assert!(!out.contains(SENTINEL) && !err.contains(SENTINEL));
            serde_norway::from_str(&out).unwrap()
        })
        .collect();
    let doc = runs[0].clone();
    let without_run = |mut v: Value| {
        for key in ["archive", "folder", "createdAt"] {
            v[key] = Value::Null;
        }
        v
    };
    assert_eq!(
        without_run(runs[1].clone()),
        without_run(doc.clone()),
        "-o yaml is the JSON document"
    );
    let part = obj(vec![
        req("file", T::Str),
        req("status", T::Str),
        opt("cause", T::Str),
        opt("reason", T::Str),
        opt("note", T::Str),
    ]);
    let schema = obj(vec![
        req("kind", T::Lit("SupportReport")),
        req("archive", T::Str),
        req("folder", T::Str),
        req("environment", null(T::Str)),
        req("context", T::Str),
        req("namespace", T::Str),
        req("createdAt", T::Time),
        req("sinceSeconds", null(T::Int)),
        req("collected", T::Int),
        req("missing", T::Int),
        req("parts", list(part)),
    ]);
    assert_contract("report", &schema, &[&doc], &[]);
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        2,
        "one archive per run"
    );
}
