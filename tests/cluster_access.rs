//! Reaching the cluster like kubectl: kubeconfig files and their merging, contexts, namespaces, the
//! config file's environments, and one clear line with exit 2 for everything that goes wrong.

#[path = "support/rig.rs"]
mod rig;

use std::time::Duration;

use backstage_testkit::{Fixtures, ServerOptions};
use rig::{Rig, TOKEN, json, run, stdout_of, write};

fn pod_names(rig: &Rig, cmd: &mut assert_cmd::Command) -> Vec<String> {
    let (code, out, err) = run(cmd.args(["health", "-o", "json"]));
    assert!(code <= 1, "exit {code}: {err}");
    let _ = rig;
    json(&out)["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// Two kubeconfig files: the first sets current-context `prod` (namespace backstage), the second adds a
/// context `staging` (namespace backstage-staging) and its own current-context, which must lose.
fn two_files(rig: &Rig) -> String {
    let first = rig.server.kubeconfig_yaml("prod", Some("backstage"), TOKEN);
    let second = rig
        .server
        .kubeconfig_yaml("staging", Some("backstage-staging"), TOKEN);
    let (a, b) = (rig.path("first.yaml"), rig.path("second.yaml"));
    write(&a, &first);
    write(&b, &second);
    format!(
        "{}:{}:{}",
        a.display(),
        rig.path("missing.yaml").display(),
        b.display()
    )
}

#[test]
fn merged_kubeconfig_files_context_and_namespace_resolution_like_kubectl() {
    let rig = Rig::incident();
    let list = two_files(&rig);
    let staging_pods = vec!["backstage-5f6d7c8b9a-h2kxm".to_string()];

    // current-context comes from the first file that sets it: prod → namespace backstage.
    let prod = pod_names(&rig, rig.plugin().env("KUBECONFIG", &list));
    assert_eq!(prod.len(), 7);
    // --context picks the second file's context and its namespace.
    assert_eq!(
        pod_names(
            &rig,
            rig.plugin()
                .env("KUBECONFIG", &list)
                .args(["--context", "staging"])
        ),
        staging_pods
    );
    // -n beats the context's namespace.
    assert_eq!(
        pod_names(
            &rig,
            rig.plugin().env("KUBECONFIG", &list).args([
                "--context",
                "prod",
                "-n",
                "backstage-staging"
            ])
        ),
        staging_pods
    );
    // --kubeconfig beats $KUBECONFIG.
    assert_eq!(
        pod_names(
            &rig,
            rig.plugin()
                .env("KUBECONFIG", &list)
                .args(["--kubeconfig", rig.path("second.yaml").to_str().unwrap()])
        ),
        staging_pods
    );

    {
        let mut kubectl = rig.kubectl();
        kubectl
            .env("KUBECONFIG", &list)
            .args(["config", "current-context"]);
        assert_eq!(stdout_of(kubectl).trim(), "prod");
        for (args, ours) in [
            (vec!["--context", "staging"], &staging_pods),
            (vec![], &prod),
        ] {
            let mut kubectl = rig.kubectl();
            kubectl
                .env("KUBECONFIG", &list)
                .args(&args)
                .args(["get", "pods", "-o", "name"]);
            let mut theirs: Vec<String> = stdout_of(kubectl)
                .lines()
                .map(|l| l.trim_start_matches("pod/").to_string())
                .collect();
            theirs.sort();
            assert_eq!(&theirs, ours, "kubectl {args:?}");
        }
    }
}

#[test]
fn without_a_namespace_anywhere_it_is_backstage() {
    let rig = Rig::incident();
    write(
        &rig.path("nons.yaml"),
        &rig.server.kubeconfig_yaml("bare", None, TOKEN),
    );
    let (_, out, _) = run(rig.plugin().args([
        "--kubeconfig",
        rig.path("nons.yaml").to_str().unwrap(),
        "health",
        "-o",
        "json",
    ]));
    assert_eq!(json(&out)["namespace"], "backstage");
}

#[test]
fn environments_from_the_config_file() {
    let rig = Rig::incident();
    let list = two_files(&rig);
    let config = rig.path("config.yaml");
    write(
        &config,
        "defaultEnvironment: sbox\nenvironments:\n  sbox:\n    context: staging\n    url: https://backstage-sandbox.example.net/\n  ptl:\n    context: prod\n    namespace: backstage-staging\n    database:\n      host: db.example.net\n      password:\n        keyVault: {vault: v, secret: s}\n",
    );
    let cfg = config.to_str().unwrap();
    // The default environment picks context staging, whose namespace is backstage-staging.
    assert_eq!(
        pod_names(
            &rig,
            rig.plugin()
                .env("KUBECONFIG", &list)
                .env("KUBECTL_BACKSTAGE_CONFIG", cfg)
        ),
        vec!["backstage-5f6d7c8b9a-h2kxm"]
    );
    // -e ptl: context prod, namespace from the environment.
    assert_eq!(
        pod_names(
            &rig,
            rig.plugin()
                .env("KUBECONFIG", &list)
                .args(["--config", cfg, "-e", "ptl"])
        ),
        vec!["backstage-5f6d7c8b9a-h2kxm"]
    );
    // The config file is also found in $XDG_CONFIG_HOME.
    let xdg = rig.path("xdg");
    std::fs::create_dir_all(xdg.join("kubectl-backstage")).unwrap();
    std::fs::copy(&config, xdg.join("kubectl-backstage/config.yaml")).unwrap();
    let (code, out, _) = run(rig
        .plugin()
        .env("XDG_CONFIG_HOME", &xdg)
        .args(["env", "list"]));
    assert_eq!(code, 0);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "DEFAULT",
            "CONTEXT",
            "NAMESPACE",
            "URL",
            "DATABASE",
            "HOST"
        ]
    );
    assert_eq!(
        rows[1],
        ["ptl", "prod", "backstage-staging", "db.example.net"]
    );
    assert_eq!(
        rows[2],
        [
            "sbox",
            "*",
            "staging",
            "https://backstage-sandbox.example.net/"
        ]
    );
    let (code, out, _) = run(rig
        .plugin()
        .args(["--config", cfg, "env", "show", "ptl", "-o", "json"]));
    assert_eq!(code, 0);
    let shown = json(&out);
    assert_eq!(shown["database"]["password"]["keyVault"]["secret"], "s");
    assert_eq!(shown["default"], false);
}

/// Runs the plugin expecting exit 2 and exactly one line on stderr, which is returned.
fn fails(cmd: &mut assert_cmd::Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    lines[0].to_string()
}

#[test]
fn kubeconfig_and_config_errors_exit_2_with_one_clear_line() {
    let rig = Rig::incident();
    let err = fails(rig.plugin().args(["--context", "nope", "health"]));
    assert_eq!(
        err,
        "error: context \"nope\" not found in the kubeconfig; contexts: fake"
    );

    write(
        &rig.path("bad.yaml"),
        "apiVersion: v1\nclusters: [ {name: x\n",
    );
    let err = fails(rig.plugin().args([
        "--kubeconfig",
        rig.path("bad.yaml").to_str().unwrap(),
        "health",
    ]));
    assert!(
        err.starts_with(&format!(
            "error: kubeconfig {} is malformed: ",
            rig.path("bad.yaml").display()
        )),
        "{err}"
    );

    let err = fails(rig.plugin().args([
        "--kubeconfig",
        rig.path("absent.yaml").to_str().unwrap(),
        "events",
    ]));
    assert!(
        err.starts_with(&format!(
            "error: cannot read kubeconfig {}",
            rig.path("absent.yaml").display()
        )),
        "{err}"
    );

    let err = fails(
        rig.plugin()
            .env("KUBECONFIG", rig.path("absent.yaml"))
            .arg("events"),
    );
    assert_eq!(
        err,
        "error: no kubeconfig found: set --kubeconfig or $KUBECONFIG, or create ~/.kube/config"
    );

    write(&rig.path("c.yaml"), "environments:\n  a: {namespace: x}\n");
    let err = fails(rig.plugin().args([
        "--config",
        rig.path("c.yaml").to_str().unwrap(),
        "-e",
        "b",
        "health",
    ]));
    assert_eq!(
        err,
        "error: unknown environment \"b\"; configured environments: a (see `kubectl backstage env list`)"
    );
    write(&rig.path("c2.yaml"), "environment:\n  a: {}\n");
    let err =
        fails(
            rig.plugin()
                .args(["--config", rig.path("c2.yaml").to_str().unwrap(), "health"]),
        );
    assert!(
        err.contains("is not valid") && err.contains("environment"),
        "{err}"
    );

    let err = fails(rig.plugin().args(["events", "--types", "Error"]));
    assert_eq!(
        err,
        "error: --types \"Error\" is not an event type; use Normal, Warning or both (Normal,Warning)"
    );
    let err = fails(rig.plugin().args(["events", "--for", "backstage"]));
    assert!(
        err.starts_with("error: --for \"backstage\": expected KIND/NAME"),
        "{err}"
    );
    let (code, _, err) = run(rig.plugin().args(["events", "--since", "soon"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid duration \"soon\""), "{err}");
    assert!(
        rig.server
            .requests()
            .iter()
            .all(|r| !r.path.contains("/events")),
        "bad input sends nothing"
    );
}

#[test]
fn server_errors_exit_2_naming_what_was_refused() {
    // Unreachable: nothing listens on the port any more.
    let gone = Rig::incident();
    let kubeconfig = gone
        .server
        .kubeconfig_yaml("fake", Some("backstage"), TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kc");
    write(&path, &kubeconfig);
    let url = gone.server.url();
    drop(gone);
    let rig = Rig::incident();
    let err = fails(rig.plugin().env("KUBECONFIG", &path).arg("health"));
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the API server {url} (context \"fake\"): "
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("connection refused"), "{err}");

    // 401: the wrong token.
    write(
        &rig.path("wrong-token"),
        &rig.server
            .kubeconfig_yaml("fake", Some("backstage"), "wrong"),
    );
    let err = fails(
        rig.plugin()
            .env("KUBECONFIG", rig.path("wrong-token"))
            .arg("events"),
    );
    assert_eq!(
        err,
        "error: the API server refused the credentials of context \"fake\" (401 Unauthorized) to list events in namespace \"backstage\"; log in again or check the kubeconfig's user"
    );

    // TLS: a kubeconfig trusting another CA.
    let other = Rig::incident();
    let mut foreign = other
        .server
        .kubeconfig_yaml("fake", Some("backstage"), TOKEN);
    foreign = foreign.replace(&other.server.url(), &rig.server.url());
    write(&rig.path("wrong-ca"), &foreign);
    let err = fails(
        rig.plugin()
            .env("KUBECONFIG", rig.path("wrong-ca"))
            .arg("health"),
    );
    assert!(
        err.starts_with("error: cannot reach the API server"),
        "{err}"
    );
    assert!(
        err.contains("certificate"),
        "names the certificate problem: {err}"
    );
}

#[test]
fn forbidden_names_verb_resource_and_namespace() {
    let rig = Rig::start(ServerOptions {
        tls: true,
        token: Some(TOKEN.into()),
        forbidden: vec![
            ("list".into(), "events".into()),
            ("list".into(), "statefulsets".into()),
        ],
        ..ServerOptions::new(Fixtures::incident())
    });
    let err = fails(rig.plugin().arg("events"));
    assert!(
        err.starts_with(
            "error: forbidden: cannot list events in namespace \"backstage\" (context \"fake\"): "
        ),
        "{err}"
    );
    assert!(
        err.contains("cannot list resource \"events\""),
        "carries the server's message: {err}"
    );
    let err = fails(rig.plugin().arg("health"));
    assert!(
        err.starts_with("error: forbidden: cannot list statefulsets in namespace \"backstage\""),
        "{err}"
    );
}

#[test]
fn slow_server_times_out_after_request_timeout() {
    let rig = Rig::start(ServerOptions {
        tls: true,
        token: Some(TOKEN.into()),
        latency: Some(Duration::from_secs(5)),
        ..ServerOptions::new(Fixtures::incident())
    });
    let err = fails(rig.plugin().args(["--request-timeout", "1s", "events"]));
    assert_eq!(
        err,
        "error: list events in namespace \"backstage\" timed out after 1s (context \"fake\"); raise --request-timeout if the API server is slow"
    );
}

#[test]
fn help_version_and_completion() {
    let rig = Rig::incident();
    let (code, out, _) = run(rig.plugin().arg("--help"));
    assert_eq!(code, 0);
    for command in ["health", "events", "version", "env", "completion"] {
        assert!(
            out.contains(&format!("  {command}")),
            "--help lists {command}: {out}"
        );
    }
    assert!(!out.contains("__complete"), "the completion hook is hidden");
    let (code, out, _) = run(rig.plugin().arg("--version"));
    assert_eq!(code, 0);
    // The version, then the build (tests/version_client.rs checks it field by field).
    assert!(
        out.starts_with(&format!(
            "kubectl-backstage {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    let (code, _, _) = run(rig.plugin().arg("frobnicate"));
    assert_eq!(code, 2);

    let (_, script, _) = run(rig.plugin().args(["completion", "kubectl"]));
    assert!(
        script.starts_with("#!/usr/bin/env sh\n")
            && script.contains("kubectl-backstage __complete \"$@\"")
    );
    let helper = rig.path("kubectl_complete-backstage");
    write(&helper, &script);
    let mut mode = std::fs::metadata(&helper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(&helper, mode).unwrap();
    {
        let mut kubectl = rig.kubectl();
        // kubectl 1.26+ finds the helper on PATH and hands it the words after `kubectl backstage`.
        let bin_dir = assert_cmd::cargo::cargo_bin("kubectl-backstage")
            .parent()
            .unwrap()
            .to_path_buf();
        let path = format!(
            "{}:{}:{}",
            rig.dir.path().display(),
            bin_dir.display(),
            std::env::var("PATH").unwrap()
        );
        kubectl
            .env("PATH", path)
            .args(["__complete", "backstage", "health", "-o", ""]);
        let out = stdout_of(kubectl);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["json", "table", "wide", "yaml", ":4"]
        );
    }
    let (_, candidates, _) = run(rig.plugin().args(["__complete", "--context", ""]));
    assert_eq!(candidates, "fake\n:4\n");
    let (_, candidates, _) = run(rig.plugin().args(["__complete", "ev"]));
    assert_eq!(candidates, "events\n:4\n");
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run(rig.plugin().args(["completion", shell]));
        assert_eq!(code, 0);
        assert!(out.contains("kubectl-backstage"), "{shell}");
    }
}
