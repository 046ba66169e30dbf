//! A fake API server with a temporary HOME and kubeconfig, and ways to run the real binary and the real
//! kubectl against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use backstage_testkit::{FakeApiServer, Fixtures, ServerOptions};
use serde_json::Value;

pub const TOKEN: &str = "test-token-4f1c";

pub struct Rig {
    pub server: FakeApiServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Rig {
    /// The incident fixtures over TLS, with a token required and a kubeconfig whose context `fake` has
    /// namespace `backstage`.
    pub fn incident() -> Rig {
        Rig::start(ServerOptions {
            tls: true,
            token: Some(TOKEN.into()),
            ..ServerOptions::new(Fixtures::incident())
        })
    }

    pub fn start(opts: ServerOptions) -> Rig {
        let server = FakeApiServer::start(opts).expect("fake API server starts");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig, "fake", Some("backstage"), TOKEN)
            .unwrap();
        Rig {
            server,
            dir,
            kubeconfig,
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The plugin binary with a clean environment: only PATH, HOME and KUBECONFIG.
    pub fn plugin(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("kubectl-backstage").unwrap();
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// The same as a std Command (for processes that run on while the test acts).
    pub fn plugin_process(&self) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kubectl-backstage"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Starts the plugin with `args` to run on (a watch), stdout and stderr piped, killed if it still
    /// runs after `guard`; returns the child (its stderr still to read) and its stdout's lines.
    pub fn watch(
        &self,
        args: &[&str],
        guard: std::time::Duration,
    ) -> (
        std::process::Child,
        std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    ) {
        use std::io::BufRead;
        let mut child = self
            .plugin_process()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        kill_after(&child, guard);
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        (child, lines)
    }

    /// The real kubectl with the same kubeconfig and a private HOME (it caches discovery there). Panics
    /// when kubectl is not installed: a comparison with kubectl never passes without running
    /// (`scripts/setup-machine.sh` installs it).
    pub fn kubectl(&self) -> Command {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("kubectl").is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "kubectl is not on PATH: this test compares with the real kubectl; run scripts/setup-machine.sh"
        );
        let mut cmd = Command::new("kubectl");
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("KUBECONFIG", &self.kubeconfig);
        cmd
    }
}

/// Runs a command and returns its stdout, panicking with stderr when it fails.
pub fn stdout_of(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the plugin and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Kills a child that is still running after `after`, so a test that waits on its output cannot hang.
pub fn kill_after(child: &std::process::Child, after: std::time::Duration) {
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let _ = Command::new("kill").arg("-9").arg(&pid).status();
    });
}

/// A document with relative ages in its text ("last 62s ago") made comparable across two runs of the
/// plugin, which may fall on either side of a second: each such age becomes `<age> ago`. Everything
/// else — fields, names, counts, absolute times — is compared as it is.
#[allow(dead_code)]
pub fn without_relative_ages(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let age = regex::Regex::new(r"\b\d+(?:[smhdy]\d*)+ ago\b").unwrap();
    match value {
        Value::String(text) => Value::String(age.replace_all(&text, "<age> ago").into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(without_relative_ages).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_relative_ages(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A log captured from a real Backstage 1.55.0 backend (testkit/fixtures/backend-logs/README.md).
pub fn captured_log(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testkit/fixtures/backend-logs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Backstage backend pod in namespace `ns` that runs (no restarts) with readiness `ready`, as a
/// Deployment's pod with the backend's probes.
pub fn backend_pod(ns: &str, name: &str, ready: bool) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                     "creationTimestamp": "2026-11-22T11:50:00Z",
                     "labels": {"app.kubernetes.io/name": "backstage"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "backstage-55d8c9f7b6",
                                          "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "backstage", "image": "hmctspublic.azurecr.io/backstage/backstage:prod-9a8b7c6-20261202100000",
                                 "readinessProbe": {"httpGet": {"path": "/.backstage/health/v1/readiness", "port": 7007}},
                                 "livenessProbe": {"httpGet": {"path": "/.backstage/health/v1/liveness", "port": 7007}}}]},
        "status": {"phase": "Running", "startTime": "2026-11-22T11:50:00Z",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                   "containerStatuses": [{"name": "backstage", "image": "hmctspublic.azurecr.io/backstage/backstage:prod-9a8b7c6-20261202100000",
                                          "imageID": "", "ready": ready, "started": true, "restartCount": 0,
                                          "state": {"running": {"startedAt": "2026-11-22T11:50:01Z"}}}]}
    })
}
