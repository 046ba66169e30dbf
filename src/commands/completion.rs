//! `completion`: shell scripts, and the candidates kubectl asks for when it completes plugin arguments.

use clap::CommandFactory;

use super::Outcome;
use crate::cli::{Cli, CompletionShell};
use crate::render;
use crate::settings::Settings;

/// The helper kubectl 1.26+ runs (found on PATH as `kubectl_complete-backstage`) to complete
/// `kubectl backstage …`; it answers in Cobra's format through the hidden `__complete` subcommand.
const KUBECTL_HELPER: &str = r#"#!/usr/bin/env sh
# kubectl_complete-backstage: put this file on PATH, executable, to complete `kubectl backstage …`.
exec kubectl-backstage __complete "$@"
"#;

/// Cobra's "no file completion" directive.
const NO_FILE_COMPLETION: u8 = 4;

pub fn script(shell: CompletionShell) -> Outcome {
    let mut command = Cli::command();
    let mut out = Vec::new();
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
        CompletionShell::Kubectl => {
            render::emit(KUBECTL_HELPER);
            return Outcome::Ok;
        }
    };
    clap_complete::generate(shell, &mut command, "kubectl-backstage", &mut out);
    render::emit(&String::from_utf8_lossy(&out));
    Outcome::Ok
}

/// Candidates for the last of `words`, one per line, then Cobra's directive line.
pub fn candidates(words: &[String], settings: Option<&Settings>) -> String {
    let root = Cli::command();
    let (current, typed) = match words.split_last() {
        Some((last, before)) => (before, last.as_str()),
        None => (&[][..], ""),
    };
    let mut command = &root;
    for word in current {
        if let Some(sub) = command.get_subcommands().find(|s| s.get_name() == word) {
            command = sub;
        }
    }
    let previous = current.last().map(String::as_str).unwrap_or("");
    let mut out: Vec<String> = match previous {
        "-o" | "--output" => ["table", "wide", "json", "yaml"].map(String::from).to_vec(),
        "-e" | "--env" => settings
            .map(|s| s.config.environments.keys().cloned().collect())
            .unwrap_or_default(),
        "--context" => settings.map(contexts).unwrap_or_default(),
        _ if typed.starts_with('-') => command
            .get_arguments()
            .chain(root.get_arguments())
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect(),
        _ => command
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect(),
    };
    out.sort();
    out.dedup();
    let mut text: String = out
        .into_iter()
        .filter(|c| c.starts_with(typed))
        .map(|c| c + "\n")
        .collect();
    text.push_str(&format!(":{NO_FILE_COMPLETION}\n"));
    text
}

fn contexts(settings: &Settings) -> Vec<String> {
    crate::kube::load_kubeconfig(&settings.cluster.kubeconfig)
        .map(|(kubeconfig, _)| kubeconfig.contexts.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn completes_subcommands_flags_and_formats() {
        assert_eq!(candidates(&words(&["he"]), None), "health\n:4\n");
        assert_eq!(candidates(&words(&["env", ""]), None), "list\nshow\n:4\n");
        assert_eq!(
            candidates(&words(&["health", "-o", "j"]), None),
            "json\n:4\n"
        );
        let flags = candidates(&words(&["events", "--s"]), None);
        assert_eq!(
            flags,
            "--selector\n--since\n:4\n".replace("--selector\n", "")
        );
    }
}
