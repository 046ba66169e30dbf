//! Kubeconfig files: which ones are read, how they merge, and which context and namespace win.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubeError;
use crate::process_env::read_text_bounded;
use crate::settings::{ClusterSettings, KubeconfigSource};

/// The namespace used when neither a flag, the environment nor the context names one.
pub const DEFAULT_NAMESPACE: &str = "backstage";

/// A context chosen from a kubeconfig, with the namespace commands will use.
#[derive(Debug, Clone)]
pub struct ResolvedContext {
    pub kubeconfig: Kubeconfig,
    pub context: String,
    pub namespace: String,
    /// The files that were read, in merge order (for messages and child processes).
    pub files: Vec<PathBuf>,
}

/// Reads and merges the kubeconfig files the settings point at (first file to set a value wins).
pub fn load_kubeconfig(source: &KubeconfigSource) -> Result<(Kubeconfig, Vec<PathBuf>), KubeError> {
    let (candidates, must_exist): (Vec<PathBuf>, bool) = match source {
        KubeconfigSource::Explicit(path) => (vec![path.clone()], true),
        KubeconfigSource::EnvList(paths) => (paths.clone(), false),
        KubeconfigSource::Default(path) => (vec![path.clone()], true),
    };
    let mut merged: Option<Kubeconfig> = None;
    let mut files = Vec::new();
    for path in candidates {
        if !must_exist && !path.exists() {
            tracing::debug!(path = %path.display(), "skipping kubeconfig from $KUBECONFIG that does not exist");
            continue;
        }
        let config = read_one(&path)?;
        files.push(path);
        merged = Some(match merged {
            None => config,
            Some(m) => m.merge(config).map_err(|e| KubeError::Kubeconfig {
                path: files.last().cloned().unwrap_or_default(),
                message: e.to_string(),
            })?,
        });
    }
    match merged {
        Some(config) => Ok((config, files)),
        None => Err(KubeError::NoKubeconfig),
    }
}

/// A kubeconfig larger than this is refused rather than read (kubectl's own are kilobytes; a wrong
/// path such as /dev/zero must not exhaust memory).
pub const MAX_KUBECONFIG_BYTES: u64 = 16 * 1024 * 1024;

fn read_one(path: &Path) -> Result<Kubeconfig, KubeError> {
    let text = read_text_bounded(path, MAX_KUBECONFIG_BYTES)
        .map_err(|e| KubeError::ReadKubeconfig {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .ok_or_else(|| KubeError::ReadKubeconfig {
            path: path.to_path_buf(),
            message: format!("larger than {MAX_KUBECONFIG_BYTES} bytes; is it the right file?"),
        })?;
    // Kubeconfig::read_from resolves relative certificate paths against the file's folder; parse the
    // text first so a malformed file is reported with its path.
    Kubeconfig::from_yaml(&text).map_err(|e| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        message: one_line(&e.to_string()),
    })?;
    Kubeconfig::read_from(path).map_err(|e| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        message: one_line(&e.to_string()),
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Picks the context (`--context`/environment, else current-context) and the namespace
/// (flag/environment → context → `backstage`).
pub fn resolve_context(
    kubeconfig: Kubeconfig,
    files: Vec<PathBuf>,
    settings: &ClusterSettings,
) -> Result<ResolvedContext, KubeError> {
    let known = || {
        let names: Vec<_> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let name = match settings
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone().filter(|c| !c.is_empty()))
    {
        Some(name) => name,
        None => return Err(KubeError::NoCurrentContext { known: known() }),
    };
    let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == name) else {
        return Err(KubeError::UnknownContext {
            context: name,
            known: known(),
        });
    };
    let context_namespace = named
        .context
        .as_ref()
        .and_then(|c| c.namespace.clone())
        .filter(|n| !n.is_empty());
    let namespace = settings
        .namespace
        .clone()
        .or(context_namespace)
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    Ok(ResolvedContext {
        kubeconfig,
        context: name,
        namespace,
        files,
    })
}

impl ResolvedContext {
    /// kube-rs configuration for this context.
    pub async fn client_config(&self) -> Result<kube::Config, KubeError> {
        let options = KubeConfigOptions {
            context: Some(self.context.clone()),
            cluster: None,
            user: None,
        };
        let mut config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &options)
            .await
            .map_err(|e| KubeError::ContextConfig {
                context: self.context.clone(),
                message: one_line(&e.to_string()),
            })?;
        config.default_namespace = self.namespace.clone();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(context: Option<&str>, namespace: Option<&str>) -> ClusterSettings {
        ClusterSettings {
            kubeconfig: KubeconfigSource::EnvList(vec![]),
            context: context.map(str::to_string),
            namespace: namespace.map(str::to_string),
            request_timeout: None,
        }
    }

    fn kubeconfig(current: &str, contexts: &[(&str, Option<&str>)]) -> Kubeconfig {
        let mut text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {current}\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n"
        );
        for (name, ns) in contexts {
            text.push_str(&format!(
                "- name: {name}\n  context:\n    cluster: c\n    user: u\n"
            ));
            if let Some(ns) = ns {
                text.push_str(&format!("    namespace: {ns}\n"));
            }
        }
        Kubeconfig::from_yaml(&text).unwrap()
    }

    #[test]
    fn namespace_resolution_order() {
        let kc = kubeconfig("a", &[("a", Some("from-context")), ("b", None)]);
        let r = resolve_context(kc.clone(), vec![], &settings(None, None)).unwrap();
        assert_eq!(
            (r.context.as_str(), r.namespace.as_str()),
            ("a", "from-context")
        );
        let r = resolve_context(kc.clone(), vec![], &settings(Some("b"), None)).unwrap();
        assert_eq!(
            (r.context.as_str(), r.namespace.as_str()),
            ("b", "backstage")
        );
        let r = resolve_context(kc, vec![], &settings(Some("a"), Some("flag"))).unwrap();
        assert_eq!(r.namespace, "flag");
    }

    #[test]
    fn unknown_context_lists_the_known_ones() {
        let kc = kubeconfig("a", &[("a", None), ("b", None)]);
        let err = resolve_context(kc, vec![], &settings(Some("prod"), None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "context \"prod\" not found in the kubeconfig; contexts: a, b"
        );
    }
}
