//! Runs migrations' `down()` through Knex itself, with the files of the version that applied them:
//! `node -e SCRIPT` in a pod of that version (over pod exec) or in a local checkout. The connection —
//! password included — is written to the script's stdin as JSON; it is never an argument, so it
//! appears in no process list and no API server audit log. A local node inherits neither `PGPASSWORD`
//! nor the variable `--password-env` names.

use serde::Deserialize;
use serde_json::json;

use super::source::SourcePlace;
use crate::kube::{Cluster, ExecOutput, KubeError};
use crate::options::SslMode;
use crate::secrets::Password;

/// The script Knex runs in. It reads one JSON document from stdin and prints one JSON event per line.
const RUN_SCRIPT: &str = r#"
const fs = require('fs'), path = require('path'), { createRequire } = require('module');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
let knexLib;
try { knexLib = createRequire(path.join(process.cwd(), 'noop.js'))('knex'); }
catch (e) { out({ event: 'error', stage: 'load', message: 'knex cannot be loaded from ' + process.cwd() + ': ' + e.message }); process.exit(3); }
const c = input.connection;
let ssl = false;
if (c.ssl.mode === 'require' && !c.ssl.ca) ssl = { rejectUnauthorized: false };
else if (c.ssl.mode !== 'disable') {
  ssl = { rejectUnauthorized: true };
  if (c.ssl.ca) ssl.ca = c.ssl.ca;
  if (c.ssl.mode !== 'verify-full') ssl.checkServerIdentity = () => undefined;
}
const knex = knexLib({
  client: 'pg',
  connection: { host: c.host, port: c.port, user: c.user, password: c.password, database: c.database, ssl, application_name: 'kubectl-backstage rollback' },
  searchPath: input.searchPath ? [input.searchPath] : undefined,
  pool: { min: 0, max: 1 },
});
const config = { directory: input.directory, tableName: input.tableName };
(async () => {
  try {
    if (input.mode === 'rollback') {
      const [batch, log] = await knex.migrate.rollback(config);
      out({ event: 'undone', batch, names: log });
    } else {
      for (const name of input.names) {
        const [batch, log] = await knex.migrate.down({ ...config, name });
        out({ event: 'undone', batch, names: log });
      }
    }
    out({ event: 'finished' });
  } catch (e) {
    out({ event: 'error', stage: 'migrate', message: String((e && e.message) || e) });
    process.exitCode = 3;
  } finally {
    await knex.destroy();
  }
})();
"#;

/// What to ask Knex to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnexUndo {
    /// `knex.migrate.down({ name })` for each, in this order.
    Down(Vec<String>),
    /// `knex.migrate.rollback()`: the last batch.
    Rollback,
}

/// Where and how Knex connects.
pub struct KnexConnection<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a Password,
    /// The variable the password came from (`--password-env`), kept out of a local runner's
    /// environment.
    pub password_env: Option<&'a str>,
    pub database: &'a str,
    pub sslmode: SslMode,
    /// The CA certificate's PEM text (a pod does not have the operator's file).
    pub ca_pem: Option<String>,
    /// Schema mode: the plugin's schema, as Backstage sets it (`searchPath`).
    pub search_path: Option<&'a str>,
}

/// What Knex reported.
#[derive(Debug, Default)]
pub struct KnexRun {
    /// The migrations Knex says it undid, in order.
    pub undone: Vec<String>,
    /// Knex's error, when it stopped part-way (or could not start).
    pub error: Option<String>,
    /// The runner's stderr, for `-v`.
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot run node in {cwd}: {message}; install Node.js, or use --runner pod")]
    LocalNode { cwd: String, message: String },
    #[error("running node in pod {pod} failed: {source}")]
    Pod { pod: String, source: KubeError },
    #[error(
        "node cannot run in image:{image} once its preflight pod is gone; run Knex with --runner pod (the newer code) or --runner local --source DIR"
    )]
    Image { image: String },
}

#[derive(Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    message: Option<String>,
}

fn input(connection: &KnexConnection, directory: &str, table: &str, undo: &KnexUndo) -> Vec<u8> {
    let (mode, names) = match undo {
        KnexUndo::Down(names) => ("down", names.clone()),
        KnexUndo::Rollback => ("rollback", Vec::new()),
    };
    let sslmode = match connection.sslmode {
        SslMode::Disable => "disable",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    };
    json!({
        "connection": {
            "host": connection.host, "port": connection.port, "user": connection.user,
            "password": connection.password.expose(), "database": connection.database,
            "ssl": { "mode": sslmode, "ca": connection.ca_pem },
        },
        "searchPath": connection.search_path,
        "directory": directory,
        "tableName": table,
        "mode": mode,
        "names": names,
    })
    .to_string()
    .into_bytes()
}

fn parse(stdout: &[u8], stderr: &[u8], exit_code: Option<i32>) -> KnexRun {
    let mut run = KnexRun {
        stderr: String::from_utf8_lossy(stderr).into_owned(),
        ..KnexRun::default()
    };
    let mut finished = false;
    for line in String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        // Knex logs to stdout too ("migration file … failed"); those lines are kept for `-v`.
        let Ok(event) = serde_json::from_str::<Event>(line) else {
            run.stderr.push_str(line);
            run.stderr.push('\n');
            continue;
        };
        match event.event.as_str() {
            "undone" => run.undone.extend(event.names),
            "finished" => finished = true,
            "error" => run.error = event.message,
            _ => {}
        }
    }
    if !finished && run.error.is_none() {
        let last = run
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .to_string();
        run.error = Some(format!(
            "the runner exited {} before finishing: {last}",
            exit_code.map_or("?".into(), |c| c.to_string())
        ));
    }
    run
}

/// Runs the undo with Knex where the source's files are.
pub async fn run(
    place: &SourcePlace,
    cluster: Option<&Cluster>,
    connection: &KnexConnection<'_>,
    directory: &str,
    table: &str,
    undo: &KnexUndo,
) -> Result<KnexRun, RunnerError> {
    let stdin = input(connection, directory, table, undo);
    let output = run_node(place, cluster, RUN_SCRIPT, stdin, connection.password_env).await?;
    Ok(parse(&output.stdout, &output.stderr, output.exit_code))
}

/// Runs `node -e script` where a source's files are — in its folder, or in its pod over exec — with
/// `stdin` fed to it. A local node inherits neither `PGPASSWORD` nor `hide_env`.
pub async fn run_node(
    place: &SourcePlace,
    cluster: Option<&Cluster>,
    script: &str,
    stdin: Vec<u8>,
    hide_env: Option<&str>,
) -> Result<ExecOutput, RunnerError> {
    match place {
        SourcePlace::Local { cwd } => {
            use tokio::io::AsyncWriteExt;
            let mut command = tokio::process::Command::new("node");
            command
                .arg("-e")
                .arg(script)
                .current_dir(cwd)
                .env_remove("PGPASSWORD")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Some(name) = hide_env {
                command.env_remove(name);
            }
            let mut child = command.spawn().map_err(|e| RunnerError::LocalNode {
                cwd: cwd.display().to_string(),
                message: e.to_string(),
            })?;
            let mut writer = child.stdin.take().expect("stdin is piped");
            let feed = async move {
                let _ = writer.write_all(&stdin).await;
                let _ = writer.shutdown().await;
            };
            let (_, output) = tokio::join!(feed, child.wait_with_output());
            let output = output.map_err(|e| RunnerError::LocalNode {
                cwd: cwd.display().to_string(),
                message: e.to_string(),
            })?;
            Ok(ExecOutput {
                stdout: output.stdout,
                stderr: output.stderr,
                exit_code: output.status.code(),
            })
        }
        SourcePlace::Pod { pod, container, .. } => {
            let cluster = cluster.expect("a pod source comes with a cluster");
            let command = vec!["node".to_string(), "-e".to_string(), script.to_string()];
            cluster
                .exec(pod, Some(container), &command, Some(stdin))
                .await
                .map_err(|source| RunnerError::Pod {
                    pod: pod.clone(),
                    source,
                })
        }
        SourcePlace::Image { image } => Err(RunnerError::Image {
            image: image.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_collected_and_an_early_exit_is_an_error() {
        let out = b"{\"event\":\"undone\",\"batch\":2,\"names\":[\"b.js\"]}\n{\"event\":\"undone\",\"batch\":2,\"names\":[\"a.js\"]}\n{\"event\":\"finished\"}\n";
        let run = parse(out, b"", Some(0));
        assert_eq!(run.undone, ["b.js", "a.js"]);
        assert_eq!(run.error, None);
        let run = parse(b"{\"event\":\"undone\",\"names\":[\"b.js\"]}\nmigration file \"a.js\" failed\n{\"event\":\"error\",\"message\":\"boom\"}\n", b"", Some(3));
        assert_eq!((run.undone.len(), run.error.as_deref()), (1, Some("boom")));
        let run = parse(b"", b"Killed\n", Some(137));
        assert_eq!(
            run.error.as_deref(),
            Some("the runner exited 137 before finishing: Killed")
        );
    }

    #[test]
    fn the_password_is_in_the_input_only() {
        let password = Password::new("pw-sentinel".into());
        let connection = KnexConnection {
            host: "h",
            port: 5432,
            user: "u",
            password: &password,
            password_env: Some("PW"),
            database: "d",
            sslmode: SslMode::Require,
            ca_pem: None,
            search_path: None,
        };
        let stdin = String::from_utf8(input(
            &connection,
            "/m",
            "knex_migrations",
            &KnexUndo::Rollback,
        ))
        .unwrap();
        assert!(stdin.contains("pw-sentinel"));
        assert!(!RUN_SCRIPT.contains("pw-sentinel"));
    }
}
