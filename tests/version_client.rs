//! `kubectl-backstage --version` and `version --client`: this binary's version, git commit, build date
//! and target, printed without reading a config file, a kubeconfig or a cluster.

use std::process::Command;

use regex::Regex;
use serde_json::Value;

/// The plugin with an environment in which any cluster or config access would fail loudly.
fn plugin(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = assert_cmd::Command::cargo_bin("kubectl-backstage")
        .unwrap()
        .args(args)
        .env("KUBECONFIG", &missing)
        .env("KUBECTL_BACKSTAGE_CONFIG", &missing)
        .env("HOME", dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The commit the binary must report: git's, when this is a git checkout and no override was given.
fn expected_commit() -> Option<String> {
    if std::env::var("KUBECTL_BACKSTAGE_GIT_COMMIT").is_ok() {
        return None;
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

fn check_commit(commit: &str) {
    assert!(
        Regex::new("^([0-9a-f]{12}|unknown)$")
            .unwrap()
            .is_match(commit),
        "{commit}"
    );
    if let Some(expected) = expected_commit() {
        assert_eq!(commit, expected);
    }
}

fn check_date(date: &str) {
    assert!(
        Regex::new(r"^\d{4}-\d{2}-\d{2}$").unwrap().is_match(date),
        "{date}"
    );
    let parsed: jiff::civil::Date = date.parse().unwrap();
    assert!(parsed.year() >= 2025, "{date}");
}

#[test]
fn dash_dash_version_names_version_commit_date_and_target() {
    let (code, out, err) = plugin(&["--version"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let re = Regex::new(
        r"^kubectl-backstage (\S+) \(commit (\S+), built (\S+), (x86_64-unknown-linux-gnu|aarch64-unknown-linux-gnu)\)\n$",
    )
    .unwrap();
    let caps = re.captures(&out).unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(&caps[1], env!("CARGO_PKG_VERSION"));
    check_commit(&caps[2]);
    check_date(&caps[3]);
    assert_eq!(&caps[4], host_target());
}

/// The target this test (and so the binary) was built for.
fn host_target() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64-unknown-linux-gnu",
        "aarch64" => "aarch64-unknown-linux-gnu",
        other => panic!("no expectation for {other}"),
    }
}

#[test]
fn version_client_table_and_json_agree() {
    let (code, text, err) = plugin(&["version", "--client"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))
    );
    let commit = lines[1].strip_prefix("Git Commit:     ").unwrap();
    let date = lines[2].strip_prefix("Build Date:     ").unwrap();
    assert_eq!(lines[3], format!("Target:         {}", host_target()));
    check_commit(commit);
    check_date(date);

    let (code, json, err) = plugin(&["version", "--client", "-o", "json"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "kind": "ClientVersion",
            "version": env!("CARGO_PKG_VERSION"),
            "gitCommit": commit,
            "buildDate": date,
            "target": host_target(),
        })
    );

    let (code, yaml, _) = plugin(&["version", "--client", "-o", "yaml"]);
    assert_eq!(code, 0);
    let from_yaml: Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, value);
}

/// `--client` reads no config: a broken config file and several environments change nothing.
#[test]
fn version_client_reads_no_config_or_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "environments: [not, a, map\n").unwrap();
    let (code, out, err) = plugin(&[
        "version",
        "--client",
        "--config",
        config.to_str().unwrap(),
        "-e",
        "a,b",
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.starts_with("Client Version: v"), "{out}");
}

#[test]
fn version_client_refuses_the_cluster_flags() {
    for extra in [
        &["--source", "pod"][..],
        &["-l", "app=backstage"][..],
        &["--diff", "pod", "pod"][..],
    ] {
        let mut args = vec!["version", "--client"];
        args.extend_from_slice(extra);
        let (code, out, err) = plugin(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(out, "");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains("--client"), "{err}");
    }
}
