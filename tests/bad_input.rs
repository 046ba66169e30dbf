//! Bad input, as a table: flags, durations, config files, kubeconfigs, API server answers (401, 403,
//! 404, 410, 500, garbage, a hang), databases (wrong password, TLS, missing, a hang), hostile ids and
//! escape sequences in every third-party field. Each row gives the arguments, environment and files,
//! the exit code and the exact first line of stderr; the run must print nothing else on stderr (at
//! most one `hint:` line where the row allows it), nothing on stdout, and change nothing: the Knex
//! tables of every test database and the fake API server's objects are the same afterwards.
//!
//! Rows whose behaviour other work is still changing carry `pending` (the reason); they run in
//! `pending_rows_after_hardening`, ignored until that work is merged.

#[path = "support/canned_http.rs"]
mod canned_http;
#[path = "support/npm.rs"]
mod npm;
#[path = "support/plugin_dbs.rs"]
mod plugin_dbs;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/rig.rs"]
mod rig;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canned_http::Answer;
use npm::CATALOG_NEWER;
use plugin_dbs::{PASSWORD_ENV, Plugins, SENTINEL, checkout, pg, templates};
use rig::Rig;

/// A run that takes longer than this is killed and reported as a hang (a guard, not an assertion
/// about speed: every row is expected to finish in a few seconds).
const HANG_GUARD: Duration = Duration::from_secs(40);

/// Usage errors print clap's Usage / tip block today; they become one line (issue 8, defect 8).
const USAGE: &str = "usage errors become one error line and at most one hint (defect 8)";
const ESCAPE: &str = "third-party text in errors is escaped (defect 3)";
const NAMESPACE: &str = "namespaces are validated as DNS-1123 labels (defect 6)";
const GO_DURATION: &str = "Go-style durations are accepted (defect 7)";
const DB_TIMEOUT: &str = "database connects are bounded by --request-timeout (defect 2)";
const FILE_CAP: &str = "config and kubeconfig reads are capped (defect 9)";
const PSQL_CHECK: &str = "db psql checks the plugin database first (defect 5)";
const PORT_ZERO: &str = "--db-port 0 is accepted today and connected to";

/// Where the row's kubeconfig comes from.
#[derive(Debug, Clone)]
enum Kube {
    /// The incident fake API server's kubeconfig (TLS, token; context `fake`, namespace `backstage`).
    Fake,
    /// This text, written to `{dir}/kubeconfig`.
    Text(String),
    /// No `KUBECONFIG` and no `~/.kube/config`.
    Absent,
}

#[derive(Debug, Clone)]
struct Row {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<(String, String)>,
    kube: Kube,
    code: i32,
    first: String,
    hint: bool,
    pending: Option<&'static str>,
}

fn row(name: &str) -> Row {
    Row {
        name: name.to_string(),
        args: Vec::new(),
        env: Vec::new(),
        files: Vec::new(),
        kube: Kube::Fake,
        code: 2,
        first: String::new(),
        hint: false,
        pending: None,
    }
}

impl Row {
    fn args(mut self, args: &[&str]) -> Row {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }
    fn env(mut self, key: &str, value: &str) -> Row {
        self.env.push((key.into(), value.into()));
        self
    }
    /// A file in the row's folder; `{dir}` in arguments, environment and the expected line names it.
    fn file(mut self, name: &str, text: &str) -> Row {
        self.files.push((name.into(), text.into()));
        self
    }
    fn kube(mut self, kube: Kube) -> Row {
        self.kube = kube;
        self
    }
    fn first(mut self, line: &str) -> Row {
        self.first = line.to_string();
        self
    }
    /// One `hint:` line may follow the error.
    fn hint(mut self) -> Row {
        self.hint = true;
        self
    }
    fn pending(mut self, reason: &'static str) -> Row {
        self.pending = Some(reason);
        self
    }
    /// A usage error from the flag parser: the line, then at most one hint; pending until defect 8.
    fn usage(self, line: &str) -> Row {
        self.first(line).hint().pending(USAGE)
    }
}

/// What the rows run against.
struct Ctx {
    rig: Rig,
    plugins: Plugins,
    /// A second set whose only database's name holds an escape sequence.
    hostile: Plugins,
    newer_code: std::path::PathBuf,
    canned: std::collections::BTreeMap<&'static str, u16>,
    closed_port: u16,
    other_ca: std::path::PathBuf,
}

impl Ctx {
    fn start() -> Ctx {
        let rig = Rig::incident();
        let (older, _) = templates();
        let mut plugins = Plugins::new();
        plugins.create("catalog", Some(older));
        plugins.create("app", None);
        let mut hostile = Plugins::new();
        hostile.create("evil\u{1b}]52;c;aGk=\u{7}", None);
        let newer_code = checkout(plugins.dir.path(), "newer", CATALOG_NEWER);
        let status =
            |code, status, reason, message: &str| Answer::status(code, status, reason, message);
        let mut canned = std::collections::BTreeMap::new();
        for (name, answer) in [
            (
                "401",
                status(401, "401 Unauthorized", "Unauthorized", "Unauthorized"),
            ),
            (
                "403",
                status(
                    403,
                    "403 Forbidden",
                    "Forbidden",
                    "pods is forbidden: User \"dev\" cannot list resource \"pods\" in API group \"\" in the namespace \"backstage\"",
                ),
            ),
            (
                "400",
                status(
                    400,
                    "400 Bad Request",
                    "BadRequest",
                    "unable to parse requirement: <nil>: Invalid value: \"!!bad\": name part must consist of alphanumeric characters",
                ),
            ),
            (
                "404",
                status(
                    404,
                    "404 Not Found",
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            ),
            (
                "410",
                status(
                    410,
                    "410 Gone",
                    "Expired",
                    "too old resource version: 1 (2)",
                ),
            ),
            (
                "500",
                status(
                    500,
                    "500 Internal Server Error",
                    "InternalError",
                    "etcdserver: request timed out",
                ),
            ),
            (
                "403-escape",
                status(
                    403,
                    "403 Forbidden",
                    "Forbidden",
                    "admission webhook \"x\" denied: \u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\rok",
                ),
            ),
            (
                "500-csi",
                status(
                    500,
                    "500 Internal Server Error",
                    "InternalError",
                    "boom\u{9b}31m red",
                ),
            ),
            (
                "html",
                Answer::Http {
                    status: "200 OK",
                    content_type: "text/html",
                    body: "<html><body>proxy login</body></html>".into(),
                },
            ),
            (
                "bad-json",
                Answer::Http {
                    status: "200 OK",
                    content_type: "application/json",
                    body: "{\"kind\": \"PodList\", \"items\": [".into(),
                },
            ),
            ("not-http", Answer::Raw(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())),
            ("hang", Answer::Hang),
        ] {
            canned.insert(name, canned_http::serve(answer));
        }
        let closed_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let other_ca = plugins.dir.path().join("other-ca.pem");
        std::fs::write(&other_ca, rig.server.ca_pem().unwrap()).unwrap();
        Ctx {
            rig,
            plugins,
            hostile,
            newer_code,
            canned,
            closed_port,
            other_ca,
        }
    }

    fn port(&self, name: &str) -> u16 {
        self.canned[name]
    }

    /// A kubeconfig pointing at one canned server.
    fn canned_kube(&self, name: &str) -> Kube {
        Kube::Text(canned_http::kubeconfig(self.port(name)))
    }

    /// `db` with the connection flags of `plugins` (but those that `args` gives itself), then `args`.
    fn db_args(plugins: &Plugins, args: &[&str]) -> Vec<String> {
        let mut all = vec!["db".to_string()];
        for pair in plugins.connection_args().chunks(2) {
            if !args.contains(&pair[0].as_str()) {
                all.extend(pair.iter().cloned());
            }
        }
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    fn state(&self) -> String {
        format!("{}{}", self.plugins.state(), self.hostile.state())
    }
}

impl Row {
    /// A `db` row against the databases whose name holds an escape sequence.
    fn hostile_db(mut self, ctx: &Ctx, args: &[&str]) -> Row {
        self = self.db(ctx, args);
        self.args = Ctx::db_args(&ctx.hostile, args);
        self
    }

    /// `db` rows: connection flags and the password, and no cluster (so no pod is asked for files).
    fn db(mut self, ctx: &Ctx, args: &[&str]) -> Row {
        self.args = Ctx::db_args(&ctx.plugins, args);
        self.env.push((PASSWORD_ENV.into(), SENTINEL.into()));
        self.kube = Kube::Absent;
        self
    }

    /// Without `--password-env` (so the password comes from elsewhere, or nowhere).
    fn without_password_env(mut self) -> Row {
        if let Some(i) = self.args.iter().position(|a| a == "--password-env") {
            self.args.drain(i..i + 2);
        }
        self
    }
}

fn long_id(n: usize) -> String {
    "a".repeat(n)
}

const KUBE_NO_CURRENT: &str = "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: 'https://127.0.0.1:1'}
users:
- name: u
  user: {token: t}
contexts:
- name: one
  context: {cluster: c, user: u}
- name: two
  context: {cluster: c, user: u}
";

fn rows(ctx: &Ctx) -> Vec<Row> {
    let catalog_db = format!("{}catalog", ctx.plugins.prefix);
    let host = pg().host();
    let pgport = pg().port();
    let server = ctx.rig.server.url();
    let canned = |name: &str| format!("http://127.0.0.1:{}", ctx.port(name));
    let h = |name: &str| ctx.canned_kube(name);
    let newer = ctx.newer_code.to_str().unwrap().to_string();
    let id49 = long_id(49);
    let rows = vec![
        // ---- flags: unknown, missing values, bad values, conflicts ----
        row("unknown flag").args(&["health", "--bogus"]).usage("error: unexpected argument '--bogus' found"),
        row("unknown short flag").args(&["events", "-z"]).usage("error: unexpected argument '-z' found"),
        row("unknown subcommand").args(&["nope"]).usage("error: unrecognized subcommand 'nope'"),
        row("extra positional").args(&["health", "extra"]).usage("error: unexpected argument 'extra' found"),
        row("db without a subcommand").args(&["db"]).usage("error: a subcommand is required"),
        row("-o without a value").args(&["health", "-o"]).usage("error: a value is required for '--output <OUTPUT>' but none was supplied"),
        row("--context without a value").args(&["health", "--context"]).usage("error: a value is required for '--context <NAME>' but none was supplied"),
        row("-n without a value").args(&["events", "-n"]).usage("error: a value is required for '--namespace <NS>' but none was supplied"),
        row("--plugin without a value").args(&["db", "current-version", "--plugin"]).usage("error: a value is required for '--plugin <ID>' but none was supplied"),
        row("bad -o").args(&["health", "-o", "xml"]).usage("error: invalid value 'xml' for '--output <OUTPUT>'"),
        row("-o in capitals").args(&["events", "-o", "JSON"]).usage("error: invalid value 'JSON' for '--output <OUTPUT>'"),
        row("--watch with --wait").args(&["health", "--watch", "--wait"]).usage("error: the argument '--watch' cannot be used with '--wait'"),
        row("--timeout without --wait").args(&["health", "--timeout", "5m"]).usage("error: the following required arguments were not provided: --wait"),
        row("current-version without --plugin").args(&["db", "current-version"]).usage("error: the following required arguments were not provided: --plugin <ID>"),
        row("rollback without a target").args(&["db", "rollback", "--plugin", "catalog"]).usage("error: the following required arguments were not provided: <--migration <NAME>|--last-batch|--to <NAME>>"),
        row("rollback with two targets").args(&["db", "rollback", "--plugin", "catalog", "--migration", "a", "--last-batch"]).usage("error: the argument '--migration <NAME>' cannot be used with '--last-batch'"),
        row("rollback --runner local without --source").args(&["db", "rollback", "--plugin", "catalog", "--to", "x", "--runner", "local"]).usage("error: the following required arguments were not provided: --source <DIR>"),
        row("unknown --runner").args(&["db", "rollback", "--plugin", "catalog", "--to", "x", "--runner", "ssh"]).usage("error: invalid value 'ssh' for '--runner <RUNNER>'"),
        row("completion of an unknown shell").args(&["completion", "tcsh"]).usage("error: invalid value 'tcsh' for '<SHELL>'"),
        row("unknown --azure-auth").args(&["db", "status", "--azure-auth", "password"]).usage("error: invalid value 'password' for '--azure-auth <METHOD>'"),
        row("unknown --sslmode").args(&["db", "status", "--sslmode", "prefer"]).usage("error: invalid value 'prefer' for '--sslmode <MODE>'"),
        row("unknown --division-mode").args(&["db", "list", "--division-mode", "tenant"]).usage("error: invalid value 'tenant' for '--division-mode <MODE>'"),
        row("--db-port not a number").args(&["db", "list", "--db-port", "abc"]).usage("error: invalid value 'abc' for '--db-port <PORT>': invalid digit found in string"),
        row("--db-port too large").args(&["db", "list", "--db-port", "99999"]).usage("error: invalid value '99999' for '--db-port <PORT>': 99999 is not in 1..=65535"),
        row("--db-port negative").args(&["db", "list", "--db-port", "-1"]).usage("error: unexpected argument '-1' found"),
        // ---- durations ----
        row("--since unknown unit").args(&["events", "--since", "5x"]).usage("error: invalid value '5x' for '--since <DURATION>': invalid duration \"5x\": unknown unit \"x\"; use ns, us, ms, s, m, h or d"),
        row("--since empty").args(&["events", "--since", ""]).usage("error: invalid value '' for '--since <DURATION>': invalid duration \"\": use a number with a unit, e.g. 30s, 1.5h or 1h30m"),
        row("--since two dots").args(&["events", "--since", "1.5.h"]).usage("error: invalid value '1.5.h' for '--since <DURATION>': invalid duration \"1.5.h\": missing unit after \"1.5\"; use ns, us, ms, s, m, h or d"),
        row("--since unit only").args(&["events", "--since", "h"]).usage("error: invalid value 'h' for '--since <DURATION>': invalid duration \"h\": use a number with a unit, e.g. 30s, 1.5h or 1h30m"),
        row("--request-timeout words").args(&["health", "--request-timeout", "abc"]).usage("error: invalid value 'abc' for '--request-timeout <DURATION>': invalid duration \"abc\": use a number with a unit, e.g. 30s, 1.5h or 1h30m"),
        row("--request-timeout negative").args(&["health", "--request-timeout", "-1s"]).usage("error: unexpected argument '-1' found"),
        row("--timeout words").args(&["health", "--wait", "--timeout", "xyz"]).usage("error: invalid value 'xyz' for '--timeout <DURATION>': invalid duration \"xyz\": use a number with a unit, e.g. 30s, 1.5h or 1h30m"),
        row("--since 1.5h is accepted (then the API server says 401)")
            .args(&["events", "--since", "1.5h"]).kube(h("401"))
            .first("error: the API server refused the credentials of context \"canned\" (401 Unauthorized) to list events in namespace \"backstage\"; log in again or check the kubeconfig's user")
            .pending(GO_DURATION),
        row("--request-timeout 90m30s is accepted (then the API server says 401)")
            .args(&["health", "--request-timeout", "90m30s"]).kube(h("401"))
            .first("error: the API server refused the credentials of context \"canned\" (401 Unauthorized) to list pods in namespace \"backstage\"; log in again or check the kubeconfig's user"),
        // ---- flags checked by the plugin itself ----
        row("--for without a kind").args(&["events", "--for", "xyz"]).first("error: --for \"xyz\": expected KIND/NAME, e.g. pod/backstage-7d9f6b5c8-xk2lp or deployment/backstage"),
        row("--for without a name").args(&["events", "--for", "pod/"]).first("error: --for \"pod/\": expected KIND/NAME, e.g. pod/backstage-7d9f6b5c8-xk2lp or deployment/backstage"),
        row("--for an unknown kind").args(&["events", "--for", "secret/x"]).first("error: --for \"secret/x\": unknown kind \"secret\"; use pod, deployment, replicaset, statefulset, service, job, cronjob, pvc, hpa or configmap"),
        row("--types unknown").args(&["events", "--types", "Bogus"]).first("error: --types \"Bogus\" is not an event type; use Normal, Warning or both (Normal,Warning)"),
        row("--types empty item").args(&["events", "--types", "Normal,,"]).first("error: --types \"\" is not an event type; use Normal, Warning or both (Normal,Warning)"),
        row("--types with an escape").args(&["events", "--types", "W\u{1b}[2Jarning"]).first("error: --types \"W\\u{1b}[2Jarning\" is not an event type; use Normal, Warning or both (Normal,Warning)"),
        // ---- namespaces ----
        row("namespace with a path").args(&["health", "-n", "kube-system/pods/x/.."]).first("error: -n \"kube-system/pods/x/..\" is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)").pending(NAMESPACE),
        row("namespace in capitals").args(&["events", "-n", "Backstage"]).first("error: -n \"Backstage\" is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)").pending(NAMESPACE),
        row("namespace from the config file").args(&["--config", "{dir}/config.yaml", "health"])
            .file("config.yaml", "defaultEnvironment: a\nenvironments:\n  a:\n    namespace: ../../secrets\n")
            .first("error: environments.a.namespace \"../../secrets\" is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)").pending(NAMESPACE),
        // ---- config file ----
        row("report --dir that does not exist").args(&["report", "--dir", "{dir}/nope"]).first("error: --dir {dir}/nope: no such folder"),
        row("report --dir that is a file").args(&["report", "--dir", "{dir}/f"]).file("f", "x").first("error: --dir {dir}/f: not a folder"),
        row("report --since 0").args(&["report", "--since", "0", "--dir", "{dir}"]).first("error: --since \"0\" must be longer than 0s"),
        row("report --since words").args(&["report", "--since", "soon"]).usage("error: invalid value 'soon' for '--since <DURATION>': invalid duration \"soon\": use a number with a unit, e.g. 30s, 1.5h or 1h30m"),
        row("report --vault without --secret").args(&["report", "--dir", "{dir}", "--db-host", "h", "--db-user", "u", "--vault", "myvault"]).first("error: --vault/--vault-url needs --secret (the secret holding the password)"),
        row("report with several environments").args(&["--config", "{dir}/c.yaml", "-e", "a,b", "report"]).file("c.yaml", "environments:\n  a: {}\n  b: {}\n")
            .first("error: report works on one environment at a time; several environments (-e NAME,NAME or --all-envs) work with health, version and verify"),
        row("config file missing").args(&["--config", "{dir}/nope.yaml", "health"]).first("error: cannot read config file {dir}/nope.yaml: No such file or directory (os error 2)"),
        row("config file is a directory").args(&["--config", "{dir}", "health"]).first("error: cannot read config file {dir}: Is a directory (os error 21)"),
        row("config file from $KUBECTL_BACKSTAGE_CONFIG missing").args(&["health"]).env("KUBECTL_BACKSTAGE_CONFIG", "{dir}/gone.yaml").first("error: cannot read config file {dir}/gone.yaml: No such file or directory (os error 2)"),
        row("config file not YAML").args(&["--config", "{dir}/c.yaml", "health"]).file("c.yaml", "defaultEnvironment: 'unterminated\n")
            .first("error: config file {dir}/c.yaml is not valid: found unexpected end of stream at line 2 column 1, while scanning a quoted scalar at line 1 column 21"),
        row("config file a list").args(&["--config", "{dir}/c.yaml", "health"]).file("c.yaml", "- a\n- b\n")
            .first("error: config file {dir}/c.yaml is not valid: invalid type: sequence, expected struct ConfigFile"),
        row("config file unknown key").args(&["--config", "{dir}/c.yaml", "health"]).file("c.yaml", "defaultEnv: a\n")
            .first("error: config file {dir}/c.yaml is not valid: unknown field `defaultEnv`, expected `defaultEnvironment` or `environments`"),
        row("config file unknown database key").args(&["--config", "{dir}/c.yaml", "env", "list"]).file("c.yaml", "environments:\n  a:\n    database:\n      hostname: x\n")
            .first("error: config file {dir}/c.yaml is not valid: environments.a.database: unknown field `hostname`, expected one of `host`, `port`, `user`, `sslmode`, `sslrootcert`, `divisionMode`, `databasePrefix`, `database`, `password` at line 4 column 7"),
        row("config file port not a number").args(&["--config", "{dir}/c.yaml", "env", "list"]).file("c.yaml", "environments:\n  a:\n    database:\n      port: five\n")
            .first("error: config file {dir}/c.yaml is not valid: environments.a.database.port: invalid type: string \"five\", expected u16 at line 4 column 13"),
        row("unknown environment").args(&["--config", "{dir}/c.yaml", "-e", "prod", "health"]).file("c.yaml", "environments:\n  sbox: {}\n  staging: {}\n")
            .first("error: unknown environment \"prod\"; configured environments: sbox, staging (see `kubectl backstage env list`)"),
        row("unknown environment without a config file").args(&["-e", "prod", "health"])
            .first("error: unknown environment \"prod\"; configured environments: none (see `kubectl backstage env list`)"),
        row("several environments, one unknown").args(&["--config", "{dir}/c.yaml", "-e", "sbox,prod", "health"]).file("c.yaml", "environments:\n  sbox: {}\n  staging: {}\n")
            .first("error: unknown environment \"prod\"; configured environments: sbox, staging (see `kubectl backstage env list`)"),
        row("several environments with an empty name").args(&["--config", "{dir}/c.yaml", "-e", "sbox,", "health"]).file("c.yaml", "environments:\n  sbox: {}\n")
            .first("error: -e \"sbox,\" has an empty environment name (give NAME,NAME…)"),
        row("several environments for events").args(&["--config", "{dir}/c.yaml", "-e", "sbox,staging", "events"]).file("c.yaml", "environments:\n  sbox: {}\n  staging: {}\n")
            .first("error: events works on one environment at a time; several environments (-e NAME,NAME or --all-envs) work with health, version and verify"),
        row("all environments for db").db(ctx, &["--config", "{dir}/c.yaml", "--all-envs", "list"]).file("c.yaml", "environments:\n  sbox: {}\n")
            .first("error: db works on one environment at a time; several environments (-e NAME,NAME or --all-envs) work with health, version and verify"),
        row("several environments with --watch").args(&["--config", "{dir}/c.yaml", "--all-envs", "health", "--watch"]).file("c.yaml", "environments:\n  sbox: {}\n")
            .first("error: --watch and --wait work on one environment at a time; run one per environment (-e NAME)"),
        row("several environments with --context").args(&["--config", "{dir}/c.yaml", "-e", "sbox,staging", "--context", "fake", "health"]).file("c.yaml", "environments:\n  sbox: {}\n  staging: {}\n")
            .first("error: --context cannot be used with several environments: each environment names its own context (set `context` in the config file)"),
        row("all environments of a config file with none").args(&["--config", "{dir}/c.yaml", "--all-envs", "health"]).file("c.yaml", "environments: {}\n")
            .first("error: --all-envs: the config file has no environments (see `kubectl backstage env list`)"),
        row("env show of an unknown environment").args(&["--config", "{dir}/c.yaml", "env", "show", "prod"]).file("c.yaml", "environments:\n  sbox: {}\n")
            .first("error: unknown environment \"prod\"; configured environments: sbox (see `kubectl backstage env list`)"),
        row("bad defaultEnvironment").args(&["--config", "{dir}/c.yaml", "health"]).file("c.yaml", "defaultEnvironment: prod\nenvironments:\n  sbox: {}\n")
            .first("error: config file {dir}/c.yaml: defaultEnvironment \"prod\" is not one of its environments"),
        row("bad sslmode in the config file").db(ctx, &["--config", "{dir}/c.yaml", "-e", "a", "list"]).file("c.yaml", "environments:\n  a:\n    database:\n      sslmode: prefer\n")
            .first("error: database.sslmode: sslmode \"prefer\" is not supported; use disable, require, verify-ca, verify-full"),
        row("bad divisionMode in the config file").db(ctx, &["--config", "{dir}/c.yaml", "-e", "a", "list"]).file("c.yaml", "environments:\n  a:\n    database:\n      divisionMode: tenant\n")
            .first("error: database.divisionMode: divisionMode \"tenant\" is not supported; use database, schema"),
        row("environment name with an escape").args(&["--config", "{dir}/c.yaml", "-e", "prod", "health"]).file("c.yaml", "environments:\n  \"ev\\e[2Jil\": {}\n")
            .first("error: unknown environment \"prod\"; configured environments: ev\\u{1b}[2Jil (see `kubectl backstage env list`)").pending(ESCAPE),
        row("config file of 64 MiB").args(&["--config", "{dir}/big.yaml", "health"]).file("big.yaml", "@64MiB")
            .first("error: config file {dir}/big.yaml is larger than 1048576 bytes; is it the right file?").pending(FILE_CAP),
        // ---- kubeconfig ----
        row("no ~/.kube/config").args(&["health"]).kube(Kube::Absent).first("error: cannot read kubeconfig {dir}/home/.kube/config: No such file or directory (os error 2)"),
        row("$KUBECONFIG of missing files").args(&["events"]).kube(Kube::Absent).env("KUBECONFIG", "{dir}/a:{dir}/b").first("error: no kubeconfig found: set --kubeconfig or $KUBECONFIG, or create ~/.kube/config"),
        row("--kubeconfig missing").args(&["--kubeconfig", "{dir}/nope", "health"]).first("error: cannot read kubeconfig {dir}/nope: No such file or directory (os error 2)"),
        row("kubeconfig not YAML").args(&["events"]).kube(Kube::Text("clusters: [\n".into())).first("error: kubeconfig {dir}/kubeconfig is malformed: failed to parse kubeconfig YAML: error: line 1 column 11: unclosed bracket '[' --> <input>:1:11 | 1 | clusters: [ | ^ unclosed bracket '['"),
        row("kubeconfig a string").args(&["health"]).kube(Kube::Text("hello\n".into())).first("error: kubeconfig {dir}/kubeconfig is malformed: failed to parse kubeconfig YAML: error: line 1 column 1: expected mapping start --> <input>:1:1 | 1 | hello | ^ expected mapping start"),
        row("unknown context").args(&["health", "--context", "nope"]).first("error: context \"nope\" not found in the kubeconfig; contexts: fake"),
        row("no current-context").args(&["health"]).kube(Kube::Text(KUBE_NO_CURRENT.into())).first("error: no current-context in the kubeconfig; pick one with --context (one, two)"),
        row("context namespace with a path").args(&["health"]).kube(Kube::Text(format!("{KUBE_NO_CURRENT}current-context: one\n").replace("context: {cluster: c, user: u}\n- name: two", "context: {cluster: c, user: u, namespace: '../../secrets'}\n- name: two")))
            .first("error: context \"one\" has namespace \"../../secrets\", which is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit); pass -n NAMESPACE"),
        row("context with a missing cluster").args(&["health"]).kube(Kube::Text("apiVersion: v1\nkind: Config\ncontexts:\n- name: x\n  context: {cluster: gone, user: gone}\ncurrent-context: x\n".into()))
            .first("error: context \"x\" cannot be used: failed to load the cluster of context: gone"),
        row("context name with an escape").args(&["health", "--context", "nope"]).kube(Kube::Text(KUBE_NO_CURRENT.replace("name: two", "name: \"t\\e]52;c;aGk=\\aw\\ro\"")))
            .first("error: context \"nope\" not found in the kubeconfig; contexts: one, t\\u{1b}]52;c;aGk=\\u{7}w\\ro").pending(ESCAPE),
        row("kubeconfig of 64 MiB").args(&["--kubeconfig", "{dir}/big.yaml", "health"]).file("big.yaml", "@64MiB")
            .first("error: cannot read kubeconfig {dir}/big.yaml: larger than 16777216 bytes; is it the right file?").pending(FILE_CAP),
        // ---- API server answers ----
        row("API 400 for a bad selector").args(&["health", "-l", "!!bad"]).kube(h("400"))
            .first("error: list pods in namespace \"backstage\" failed: unable to parse requirement: <nil>: Invalid value: \"!!bad\": name part must consist of alphanumeric characters (400)"),
        row("API 401 health").args(&["health"]).kube(h("401"))
            .first("error: the API server refused the credentials of context \"canned\" (401 Unauthorized) to list pods in namespace \"backstage\"; log in again or check the kubeconfig's user"),
        row("API 401 events").args(&["events"]).kube(h("401"))
            .first("error: the API server refused the credentials of context \"canned\" (401 Unauthorized) to list events in namespace \"backstage\"; log in again or check the kubeconfig's user"),
        row("API 401 from the fake server (wrong token)").args(&["health"]).kube(Kube::Text(ctx.rig.server.kubeconfig_yaml("fake", Some("backstage"), "wrong-token")))
            .first("error: the API server refused the credentials of context \"fake\" (401 Unauthorized) to list pods in namespace \"backstage\"; log in again or check the kubeconfig's user"),
        row("API 403 health").args(&["health"]).kube(h("403"))
            .first("error: forbidden: cannot list pods in namespace \"backstage\" (context \"canned\"): pods is forbidden: User \"dev\" cannot list resource \"pods\" in API group \"\" in the namespace \"backstage\""),
        row("API 403 events").args(&["events"]).kube(h("403"))
            .first("error: forbidden: cannot list events in namespace \"backstage\" (context \"canned\"): pods is forbidden: User \"dev\" cannot list resource \"pods\" in API group \"\" in the namespace \"backstage\""),
        row("API 404").args(&["health"]).kube(h("404"))
            .first("error: list pods in namespace \"backstage\" failed: the server could not find the requested resource (404)"),
        row("API 410").args(&["events"]).kube(h("410"))
            .first("error: list events in namespace \"backstage\" failed: too old resource version: 1 (2) (410)"),
        row("API 500").args(&["health"]).kube(h("500"))
            .first("error: list pods in namespace \"backstage\" failed: etcdserver: request timed out (500)"),
        row("API 200 HTML").args(&["health"]).kube(h("html"))
            .first("error: list pods in namespace \"backstage\" failed: expected value at line 1 column 1"),
        row("API 200 cut-off JSON").args(&["events"]).kube(h("bad-json"))
            .first("error: list events in namespace \"backstage\" failed: EOF while parsing a list at line 1 column 30"),
        row("API not HTTP").args(&["health"]).kube(h("not-http"))
            .first(&format!("error: cannot reach the API server {} (context \"canned\"): invalid HTTP version parsed", canned("not-http"))),
        row("API hangs, --request-timeout 2s").args(&["health", "--request-timeout", "2s"]).kube(h("hang"))
            .first("error: list pods in namespace \"backstage\" timed out after 2s (context \"canned\"); raise --request-timeout if the API server is slow"),
        row("API connection refused").args(&["events"]).kube(Kube::Text(canned_http::kubeconfig(ctx.closed_port)))
            .first(&format!("error: cannot reach the API server http://127.0.0.1:{} (context \"canned\"): Connection refused (os error 111)", ctx.closed_port)),
        row("API over https to a plain server").args(&["health"]).kube(Kube::Text(canned_http::kubeconfig(ctx.port("404")).replace("http://", "https://")))
            .first(&format!("error: cannot reach the API server https://127.0.0.1:{} (context \"canned\"): received corrupt message of type InvalidContentType", ctx.port("404"))),
        row("API server with another CA").args(&["health"]).kube(Kube::Text(ctx.rig.server.kubeconfig_yaml("fake", Some("backstage"), rig::TOKEN).replace("certificate-authority-data", "x-unused")))
            .first(&format!("error: cannot reach the API server {server} (context \"fake\"): invalid peer certificate: UnknownIssuer")),
        row("API 403 message with OSC 52 and CR").args(&["health"]).kube(h("403-escape"))
            .first("error: forbidden: cannot list pods in namespace \"backstage\" (context \"canned\"): admission webhook \"x\" denied: \\u{1b}]52;c;ZXZpbA==\\u{7}\\u{1b}[2J\\rok").pending(ESCAPE),
        row("API 500 message with a C1 CSI").args(&["events"]).kube(h("500-csi"))
            .first("error: list events in namespace \"backstage\" failed: boom\\u{9b}31m red (500)").pending(ESCAPE),
        // ---- databases: connection, password, TLS ----
        row("db: no host").args(&["db", "list"]).kube(Kube::Absent).first("error: no database host: use --db-host or database.host in the environment (or $PGHOST)"),
        row("db: no user").args(&["db", "list", "--db-host", "127.0.0.1"]).kube(Kube::Absent).first("error: no database user: use --db-user or database.user in the environment (or $PGUSER)"),
        row("db: no password").args(&["db", "--db-host", host, "--db-port", &pgport.to_string(), "--db-user", "u", "list"]).kube(Kube::Absent)
            .first(&format!("error: no database password: use --password-env VAR, a Key Vault secret (--vault and --secret, or password.keyVault in the environment), PGPASSWORD or a ~/.pgpass entry for {host}:{pgport} user u")),
        row("db: wrong password").db(ctx, &["list"]).env(PASSWORD_ENV, "wrong-password")
            .first(&format!("error: the database server {host}:{pgport} refused the password of user \"backstage_admin\" (database postgres)")),
        row("db: --password-env not set").db(ctx, &["--password-env", "NOT_SET_ANYWHERE", "status"])
            .first("error: --password-env NOT_SET_ANYWHERE: the environment variable is not set"),
        row("db: connection refused").db(ctx, &["--db-port", &ctx.closed_port.to_string(), "status"])
            .first(&format!("error: cannot reach the database server {host}:{}: Connection refused (os error 111)", ctx.closed_port)),
        row("db: --db-port 0").db(ctx, &["--db-port", "0", "list"]).first("error: invalid value '0' for '--db-port <PORT>': 0 is not in 1..=65535").hint().pending(PORT_ZERO),
        row("db: $PGPORT not a number").args(&["db", "--db-host", host, "--db-user", "u", "list"]).kube(Kube::Absent).env("PGPORT", "abc").first("error: $PGPORT \"abc\" is not a port number"),
        row("db: $PGSSLMODE prefer").args(&["db", "--db-host", host, "--db-user", "u", "list"]).kube(Kube::Absent).env("PGSSLMODE", "prefer")
            .first("error: $PGSSLMODE: sslmode \"prefer\" is not supported; use disable, require, verify-ca, verify-full"),
        row("db: $PGCONNECT_TIMEOUT not a number").db(ctx, &["list"]).env("PGCONNECT_TIMEOUT", "abc").first("error: $PGCONNECT_TIMEOUT \"abc\" is not a number of seconds"),
        row("db: verify-full with another CA").db(ctx, &["--sslmode", "verify-full", "--sslrootcert", ctx.other_ca.to_str().unwrap(), "list"])
            .first(&format!("error: TLS with the database server {host}:{pgport} failed: invalid peer certificate: UnknownIssuer")),
        row("db: verify-ca with another CA").db(ctx, &["--sslmode", "verify-ca", "--sslrootcert", ctx.other_ca.to_str().unwrap(), "list"])
            .first(&format!("error: TLS with the database server {host}:{pgport} failed: invalid peer certificate: UnknownIssuer")),
        row("db: --sslrootcert missing").db(ctx, &["--sslmode", "verify-full", "--sslrootcert", "{dir}/none.pem", "list"])
            .first("error: cannot read the root certificate {dir}/none.pem: I/O error: No such file or directory (os error 2)"),
        row("db: --sslrootcert not PEM").db(ctx, &["--sslmode", "verify-full", "--sslrootcert", "{dir}/ca.pem", "list"]).file("ca.pem", "not a certificate\n")
            .first("error: cannot read the root certificate {dir}/ca.pem: no certificate in the file"),
        row("db: verify-full with the system's roots only").db(ctx, &["--sslmode", "verify-full", "list"])
            .first(&format!("error: TLS with the database server {host}:{pgport} failed: invalid peer certificate: UnknownIssuer")),
        row("db: server hangs, --request-timeout 2s").db(ctx, &["--db-port", &ctx.port("hang").to_string(), "--request-timeout", "2s", "list"])
            .first(&format!("error: database server {host}:{} did not answer within 2s", ctx.port("hang"))).pending(DB_TIMEOUT),
        row("db: server hangs, PGCONNECT_TIMEOUT 2").db(ctx, &["--db-port", &ctx.port("hang").to_string(), "status"]).env("PGCONNECT_TIMEOUT", "2")
            .first(&format!("error: database server {host}:{} did not answer within 2s", ctx.port("hang"))).pending(DB_TIMEOUT),
        row("db: an HTTP server, not PostgreSQL").db(ctx, &["--db-port", &ctx.port("404").to_string(), "list"])
            .first(&format!("error: the server at {host}:{} does not speak the PostgreSQL protocol", ctx.port("404"))),
        row("db: an HTTP server, not PostgreSQL, without TLS").db(ctx, &["--db-port", &ctx.port("404").to_string(), "--sslmode", "disable", "list"])
            .first(&format!("error: the server at {host}:{} does not speak the PostgreSQL protocol", ctx.port("404"))),
        // ---- Key Vault flags ----
        row("db: --secret without --vault").db(ctx, &["--secret", "pw", "list"]).first("error: --secret needs --vault (or --vault-url)"),
        row("db: --vault without --secret").db(ctx, &["--vault", "sbox-intsvc", "list"]).first("error: --vault/--vault-url needs --secret (the secret holding the password)"),
        row("db: --vault bad name").db(ctx, &["--vault", "bad name!", "--secret", "pw", "list"]).first("error: --vault \"bad name!\" is not a Key Vault name (3-24 letters, digits and dashes)"),
        row("db: --vault too short").db(ctx, &["--vault", "ab", "--secret", "pw", "list"]).first("error: --vault \"ab\" is not a Key Vault name (3-24 letters, digits and dashes)"),
        row("db: --vault-url not http").db(ctx, &["--vault-url", "ftp://vault", "--secret", "pw", "list"]).without_password_env()
            .first("error: reading secret \"pw\" from Key Vault ftp://vault failed: invalid vault URL: ftp://vault/ must use http(s)"),
        // ---- databases: missing plugins, hostile ids and tables ----
        row("db: status of a missing plugin").db(ctx, &["status", "--plugin", "nosuch"])
            .first(&format!("error: plugin \"nosuch\" has no database {}nosuch on {host}; plugins: app, catalog", ctx.plugins.prefix)),
        row("db: current-version of a missing plugin").db(ctx, &["current-version", "--plugin", "nosuch"])
            .first(&format!("error: plugin \"nosuch\" has no database {}nosuch on {host}; plugins: app, catalog", ctx.plugins.prefix)),
        row("db: psql of a missing plugin").db(ctx, &["psql", "--plugin", "nosuch"])
            .first(&format!("error: plugin \"nosuch\" has no database {}nosuch on {host}; plugins: app, catalog", ctx.plugins.prefix)).pending(PSQL_CHECK),
        row("db: schema mode, missing database").db(ctx, &["--division-mode", "schema", "--database", "nosuchdb", "list"])
            .first(&format!("error: database \"nosuchdb\" does not exist on {host}:{pgport}")),
        row("db: plugin id ../x").db(ctx, &["status", "--plugin", "../x"]).first("error: --plugin \"../x\" is not a plugin id (letters, digits, '-' and '_', at most 48)"),
        row("db: plugin id a;drop").db(ctx, &["current-version", "--plugin", "a;drop"]).first("error: --plugin \"a;drop\" is not a plugin id (letters, digits, '-' and '_', at most 48)"),
        row("db: plugin id empty").db(ctx, &["status", "--plugin", ""]).first("error: --plugin \"\" is not a plugin id (letters, digits, '-' and '_', at most 48)"),
        row("db: plugin id of 49 characters").db(ctx, &["status", "--plugin", &id49]).first(&format!("error: --plugin \"{id49}\" is not a plugin id (letters, digits, '-' and '_', at most 48)")),
        row("db: plugin id with a quote").db(ctx, &["unlock", "--plugin", "x\"--"]).first("error: --plugin \"x\\\"--\" is not a plugin id (letters, digits, '-' and '_', at most 48)"),
        row("db: plugin id not ASCII").db(ctx, &["psql", "--plugin", "catalög"]).first("error: --plugin \"catalög\" is not a plugin id (letters, digits, '-' and '_', at most 48)"),
        row("db: plugin id with an escape").db(ctx, &["status", "--plugin", "a\u{1b}[2J"]).first("error: --plugin \"a\\u{1b}[2J\" is not a plugin id (letters, digits, '-' and '_', at most 48)"),
        row("db: --table with a semicolon").db(ctx, &["rollback", "--plugin", "catalog", "--last-batch", "--table", "x;y"]).first("error: --table \"x;y\" is not a Knex migration table (a name ending in knex_migrations)"),
        row("db: --table with a path").db(ctx, &["unlock", "--plugin", "catalog", "--table", "../x"]).first("error: --table \"../x\" is not a Knex migration table (a name ending in knex_migrations)"),
        row("db: --table with SQL after the name").db(ctx, &["unlock", "--plugin", "catalog", "--table", "knex_migrations; drop table x"]).first("error: --table \"knex_migrations; drop table x\" is not a Knex migration table (a name ending in knex_migrations)"),
        row("db: --table empty").db(ctx, &["rollback", "--plugin", "catalog", "--to", "x", "--table", ""]).first("error: --table \"\" is not a Knex migration table (a name ending in knex_migrations)"),
        row("db: --table that does not exist").db(ctx, &["rollback", "--plugin", "catalog", "--last-batch", "--table", "other_knex_migrations", "--runner", "local", "--source", &newer, "--yes"])
            .first(&format!("error: plugin \"catalog\" has no migration table \"other_knex_migrations\" in {catalog_db}; tables: knex_migrations, backstage_backend_tasks__knex_migrations")),
        row("db: unlock without a cluster").db(ctx, &["unlock", "--plugin", "catalog"])
            .first("error: cannot check whether a backend pod is starting (cannot read kubeconfig {dir}/home/.kube/config: No such file or directory (os error 2)); pass --force if no pod is migrating"),
        row("db: plugin list with an escape in a database name").hostile_db(ctx, &["status", "--plugin", "nosuch"])
            .first(&format!("error: plugin \"nosuch\" has no database {}nosuch on {host}; plugins: evil\\u{{1b}}]52;c;aGk=\\u{{7}}", ctx.hostile.prefix)).pending(ESCAPE),
        // ---- rollback refusals: nothing changes ----
        row("db: rollback of a migration that is not completed").db(ctx, &["rollback", "--plugin", "catalog", "--migration", "20990101000000_nope.js", "--runner", "local", "--source", &newer, "--yes"])
            .first(&format!("error: migration \"20990101000000_nope.js\" is not completed in {catalog_db} knex_migrations; see `kubectl backstage db status --plugin catalog`")),
        row("db: rollback --to a migration that is not completed").db(ctx, &["rollback", "--plugin", "catalog", "--to", "20990101000000_nope.js", "--runner", "local", "--source", &newer, "--yes"])
            .first(&format!("error: migration \"20990101000000_nope.js\" is not completed in {catalog_db} knex_migrations; see `kubectl backstage db status --plugin catalog`")),
        row("db: rollback with a local source without knex").db(ctx, &["rollback", "--plugin", "catalog", "--last-batch", "--runner", "local", "--source", "{dir}", "--yes"])
            .first("error: --source {dir}: holds no node_modules, no package and no migration files"),
        row("db: rollback with the pod runner and no cluster").db(ctx, &["rollback", "--plugin", "catalog", "--last-batch", "--yes"])
            .first("error: --runner pod needs the cluster (cannot read kubeconfig {dir}/home/.kube/config: No such file or directory (os error 2)); or use --runner local --source DIR"),
        row("db: status --source that does not exist").db(ctx, &["status", "--source", "{dir}/nowhere"])
            .first("error: --source {dir}/nowhere: not a folder (a source is pod, pod:NAME, image:REF or a folder)"),
        row("db: plan --to that does not exist").db(ctx, &["plan", "--to", "{dir}/nowhere"])
            .first("error: --to {dir}/nowhere: not a folder (a source is pod, pod:NAME, image:REF or a folder)"),
        row("db: plan --to image: with nothing after it").db(ctx, &["plan", "--to", "image:"])
            .first("error: --to image:: the image reference is empty"),
        row("db: status --source image: with a space").db(ctx, &["status", "--source", "image:acme/back stage:1"])
            .first("error: --source image:acme/back stage:1: an image reference has no spaces"),
        row("db: plan --to image: with an uppercase repository").db(ctx, &["plan", "--to", "image:ghcr.io/Acme/backstage:1.55.0"])
            .first("error: --to image:ghcr.io/Acme/backstage:1.55.0: repository \"ghcr.io/Acme/backstage\" has uppercase letters (repository names are lowercase)"),
        // ---- upgrade / rollback (refused before anything is read) ----
        row("upgrade: --image without a tag").args(&["upgrade", "--image", "registry.test/backstage"])
            .first("error: --image \"registry.test/backstage\" has no tag or digest; name the version to move to (NAME:TAG)"),
        row("rollback: --to-image with a space").args(&["rollback", "--to-image", "acme/back stage:1"])
            .first("error: --to-image \"acme/back stage:1\": an image reference has no spaces"),
        row("upgrade: --timeout 0").args(&["upgrade", "--image", "r/backstage:1", "--timeout", "0s"])
            .first("error: --timeout \"0\" must be longer than zero"),
        row("upgrade: --source pod").args(&["upgrade", "--image", "r/backstage:1", "--source", "pod"])
            .first("error: --source \"pod\": the target image is not running yet; give `image` or a DIR with its files"),
        // ---- version ----
        row("version: --source that does not exist").args(&["version", "--source", "{dir}/nowhere"])
            .first("error: --source {dir}/nowhere: not a folder (a source is pod, pod:NAME, image:REF or a folder)"),
        row("version: --source a folder without node_modules").args(&["version", "--source", "{dir}"])
            .first("error: --source {dir}: has no node_modules: name a checkout with installed dependencies, or its node_modules"),
        row("version: --source env:NAME").args(&["version", "--source", "env:ptl"])
            .first("error: --source env:ptl: env:NAME is for --diff; to see another environment use -e NAME"),
        row("version: --diff side that does not exist").args(&["version", "--diff", "pod", "{dir}/nowhere"])
            .first("error: --diff {dir}/nowhere: not a folder (a source is pod, pod:NAME, image:REF or a folder)"),
        row("version: --diff with a bad image").args(&["version", "--diff", "pod", "image:acme/backstage:bad tag"])
            .first("error: --diff image:acme/backstage:bad tag: an image reference has no spaces"),
        row("version: --source image with a bad tag").args(&["version", "--source", "image:acme/backstage:-x"])
            .first("error: --source image:acme/backstage:-x: tag \"-x\" is not valid (letters, digits, '_', '.', '-'; at most 128)"),
        row("version: --diff with an unknown environment").args(&["version", "--diff", "pod", "env:nope"])
            .first("error: unknown environment \"nope\"; configured environments: none (see `kubectl backstage env list`)"),
        row("version: --diff with one side").args(&["version", "--diff", "pod"])
            .usage("error: 2 values required for '--diff <A> <B>' but 1 was provided"),
        row("version: --source with --diff").args(&["version", "--source", "pod", "--diff", "pod", "pod"])
            .usage("error: the argument '--source <SOURCE>' cannot be used with '--diff <A> <B>'"),
        row("version: a pod that does not exist").args(&["version", "--source", "pod:nope"])
            .first("error: pod \"nope\" not found in namespace backstage"),
        row("version: no cluster").args(&["version"]).kube(Kube::Absent)
            .first("error: cannot read kubeconfig {dir}/home/.kube/config: No such file or directory (os error 2)"),
        row("db: plan --to image with no cluster").db(ctx, &["plan", "--to", "image:acr.example.io/backstage:1.55.0"])
            .first("error: image:acr.example.io/backstage:1.55.0 is read in a preflight pod, which needs the cluster: cannot read kubeconfig {dir}/home/.kube/config: No such file or directory (os error 2)"),
        row("version: --diff of pods with no cluster").args(&["version", "--diff", "pod", "pod"]).kube(Kube::Absent)
            .first("error: reading migration files from a pod needs the cluster: cannot read kubeconfig {dir}/home/.kube/config: No such file or directory (os error 2)"),
        // ---- verify: flags, config, token ----
        row("verify: no URL").args(&["verify"]).kube(Kube::Absent)
            .first("error: no URL to verify (--url, or url in the environment), and cannot read kubeconfig {dir}/home/.kube/config: No such file or directory (os error 2)"),
        row("verify: --url not a URL").args(&["verify", "--url", "not a url"]).first("error: --url \"not a url\" is not a URL"),
        row("verify: --url not http").args(&["verify", "--url", "ftp://backstage.example.net/"]).first("error: --url \"ftp://backstage.example.net/\" is not an http or https URL"),
        row("verify: --url with credentials").args(&["verify", "--url", "https://admin:S3ntinel-pw-7d41c9@backstage.example.net/"])
            .first("error: --url \"<redacted>\" carries credentials; give the token with --token-env instead"),
        row("verify: --url with a query").args(&["verify", "--url", "https://backstage.example.net/?x=1"]).first("error: --url \"https://backstage.example.net/?x=1\" must not have a query or fragment"),
        row("verify: url of the environment not http").args(&["verify", "-e", "x", "--config", "{dir}/config.yaml"]).file("config.yaml", "environments:\n  x:\n    url: backstage.example.net\n")
            .first("error: url \"backstage.example.net\" is not a URL"),
        row("verify: --token-env not set").args(&["verify", "--url", "http://127.0.0.1:9/", "--token-env", "NOT_SET_ANYWHERE"])
            .first("error: --token-env NOT_SET_ANYWHERE: the environment variable is not set (or empty)"),
        row("verify: verify.token.env not set").args(&["verify", "-e", "x", "--config", "{dir}/config.yaml"]).file("config.yaml", "environments:\n  x:\n    url: http://127.0.0.1:9/\n    verify:\n      token: {env: PORTAL_TOKEN}\n")
            .first("error: verify.token.env PORTAL_TOKEN: the environment variable is not set (or empty)"),
        row("verify: $BACKSTAGE_TOKEN only spaces").args(&["verify", "--url", "http://127.0.0.1:9/"]).env("BACKSTAGE_TOKEN", "   ")
            .first("error: $BACKSTAGE_TOKEN: the environment variable holds only spaces"),
        row("verify: --token-env not a variable name").args(&["verify", "--url", "http://127.0.0.1:9/", "--token-env", "A-B"])
            .first("error: --token-env \"A-B\" is not an environment variable name"),
        row("verify: --auth-provider with a slash").args(&["verify", "--url", "http://127.0.0.1:9/", "--auth-provider", "git/hub"])
            .first("error: --auth-provider \"git/hub\" is not a provider id"),
        row("verify: --auth-env with a query").args(&["verify", "--url", "http://127.0.0.1:9/", "--auth-provider", "github", "--auth-env", "dev&x=1"])
            .first("error: --auth-env \"dev&x=1\" is not an auth environment name"),
        row("verify: --auth-env without a provider").args(&["verify", "--url", "http://127.0.0.1:9/", "--auth-env", "production"])
            .first("error: --auth-env and --auth-host need a provider (--auth-provider or verify.auth.provider)"),
        row("verify: --auth-host with a path").args(&["verify", "--url", "http://127.0.0.1:9/", "--auth-provider", "github", "--auth-host", "evil.example/x"])
            .first("error: --auth-host \"evil.example/x\" is not a host name"),
        row("verify: --docs-entity without a kind").args(&["verify", "--url", "http://127.0.0.1:9/", "--docs-entity", "default/petstore"])
            .first("error: --docs-entity \"default/petstore\" is not an entity as NAMESPACE/KIND/NAME (e.g. default/component/petstore)"),
        row("verify: --docs-entity with a dot-dot").args(&["verify", "--url", "http://127.0.0.1:9/", "--docs-entity", "default/../x"])
            .first("error: --docs-entity \"default/../x\" is not an entity as NAMESPACE/KIND/NAME (e.g. default/component/petstore)"),
        row("verify: verify.docsEntity bad").args(&["verify", "-e", "x", "--config", "{dir}/config.yaml"]).file("config.yaml", "environments:\n  x:\n    url: http://127.0.0.1:9/\n    verify:\n      docsEntity: petstore\n")
            .first("error: verify.docsEntity \"petstore\" is not an entity as NAMESPACE/KIND/NAME (e.g. default/component/petstore)"),
        row("verify: unknown key in the verify block").args(&["verify", "-e", "x", "--config", "{dir}/config.yaml"]).file("config.yaml", "environments:\n  x:\n    verify:\n      tokn: {}\n")
            .first("error: config file {dir}/config.yaml is not valid: environments.x.verify: unknown field `tokn`, expected one of `auth`, `token`, `docsEntity` at line 4 column 7"),
        row("verify: --vault-url without a Key Vault token").args(&["verify", "--url", "http://127.0.0.1:9/", "--vault-url", "https://x.vault.azure.net/"])
            .first("error: --vault-url and --azure-auth need verify.token.keyVault in the environment"),
        row("verify: unknown --azure-auth").args(&["verify", "--azure-auth", "password"]).usage("error: invalid value 'password' for '--azure-auth <METHOD>'"),
    ];
    rows
}

/// What one run did.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_row(ctx: &Ctx, row: &Row) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let sub = |s: &str| s.replace("{dir}", &d);
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    for (name, text) in &row.files {
        let path = dir.path().join(name);
        if text == "@64MiB" {
            // A sparse file of NUL bytes: large to read, nothing on disk.
            std::fs::File::create(&path)
                .unwrap()
                .set_len(64 << 20)
                .unwrap();
        } else {
            std::fs::write(&path, sub(text)).unwrap();
        }
    }
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kubectl-backstage"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path().join("home"))
        .args(row.args.iter().map(|a| sub(a)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &row.kube {
        Kube::Fake => {
            cmd.env("KUBECONFIG", &ctx.rig.kubeconfig);
        }
        Kube::Text(text) => {
            let path = dir.path().join("kubeconfig");
            std::fs::write(&path, text).unwrap();
            cmd.env("KUBECONFIG", path);
        }
        Kube::Absent => {}
    }
    for (k, v) in &row.env {
        cmd.env(k, sub(v));
    }
    let mut child = cmd.spawn().expect("the plugin starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    let mut stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    let code = match status {
        Some(s) => s.code().unwrap_or(-1),
        None => {
            stderr.push_str(&format!("<killed: still running after {HANG_GUARD:?}>\n"));
            -1
        }
    };
    // Expected lines name the row's folder as {dir}.
    Outcome {
        code,
        stdout: stdout.replace(&d, "{dir}"),
        stderr: stderr.replace(&d, "{dir}"),
    }
}

/// The differences between what a row expects and what it got, empty when it holds.
fn judge(row: &Row, got: &Outcome, changed: Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    if got.code != row.code {
        problems.push(format!(
            "exit code: expected {}, got {}",
            row.code, got.code
        ));
    }
    let mut lines = got.stderr.lines();
    let first = lines.next().unwrap_or("<no stderr>");
    if first != row.first {
        problems.push(format!(
            "first stderr line:\n      expected: {}\n      got:      {}",
            row.first, first
        ));
    }
    let rest: Vec<&str> = lines.collect();
    let allowed = match rest.as_slice() {
        [] => true,
        [hint] => row.hint && hint.starts_with("hint: "),
        _ => false,
    };
    if !allowed {
        problems.push(format!(
            "stderr has more than {}:\n      {}",
            if row.hint {
                "the error and one `hint:` line"
            } else {
                "the one error line"
            },
            got.stderr.trim_end().replace('\n', "\n      ")
        ));
    }
    if !got.stdout.is_empty() {
        problems.push(format!(
            "stdout is not empty:\n      {}",
            got.stdout.trim_end()
        ));
    }
    if got.stdout.contains(SENTINEL) || got.stderr.contains(SENTINEL) {
        problems.push("the database password was printed".into());
    }
    if got.stderr.contains('\u{1b}') || got.stderr.contains('\u{9b}') || got.stderr.contains('\r') {
        problems.push("raw control characters reached stderr".into());
    }
    if let Some(change) = changed {
        problems.push(change);
    }
    problems
}

fn check_rows(pending: bool) {
    let ctx = Ctx::start();
    let all = rows(&ctx);
    let mut names = std::collections::BTreeSet::new();
    for r in &all {
        assert!(names.insert(&r.name), "two rows are named {:?}", r.name);
        assert!(
            r.first.starts_with("error: "),
            "{}: the expected line must start with `error: `",
            r.name
        );
    }
    assert!(all.len() >= 80, "only {} rows", all.len());
    // BAD_INPUT_ROWS=text runs only the rows whose name contains it (while working on them).
    let only = std::env::var("BAD_INPUT_ROWS").unwrap_or_default();
    let selected: Vec<&Row> = all
        .iter()
        .filter(|r| r.pending.is_some() == pending && r.name.contains(&only))
        .collect();
    let before = ctx.state();
    let objects_before = ctx.rig.server.resource_version();
    let mut failures = Vec::new();
    for r in &selected {
        ctx.rig.server.clear_requests();
        let got = run_row(&ctx, r);
        let mut changed = Vec::new();
        let after = ctx.state();
        if after != before {
            changed.push(format!(
                "the databases changed:\n--- before\n{before}\n--- after\n{after}"
            ));
        }
        let writes: Vec<String> = ctx
            .rig
            .server
            .requests()
            .iter()
            .filter(|q| q.method != "GET")
            .map(|q| format!("{} {}", q.method, q.path))
            .collect();
        if !writes.is_empty() || ctx.rig.server.resource_version() != objects_before {
            changed.push(format!("the API server's objects changed: {writes:?}"));
        }
        let problems = judge(r, &got, (!changed.is_empty()).then(|| changed.join("\n")));
        if !problems.is_empty() {
            failures.push(format!(
                "row {:?}{}\n  args: {:?}\n  {}",
                r.name,
                r.pending
                    .map(|p| format!(" (pending: {p})"))
                    .unwrap_or_default(),
                r.args,
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n\n{}\n\nfailing rows: {:?}",
        failures.len(),
        selected.len(),
        failures.join("\n\n"),
        failures
            .iter()
            .map(|f| f.lines().next().unwrap().to_string())
            .collect::<Vec<_>>()
    );
    eprintln!("{} rows held", selected.len());
}

#[test]
fn every_bad_input_is_one_line_exit_2_and_changes_nothing() {
    check_rows(false);
}

/// The rows whose behaviour the hardening of issue 8 changed (kept apart to name what each fixed).
#[test]
fn rows_fixed_by_the_hardening() {
    check_rows(true);
}
