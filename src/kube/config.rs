//! Kubeconfig files: which ones are read, how they merge, and which context and namespace win.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubeError;
use crate::process_env::read_text_bounded;
use crate::settings::{ClusterSettings, KubeconfigSource, is_dns1123_label};

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

/// Reads and merges the kubeconfig files the settings point at, as kubectl does: a cluster, user or
/// context comes whole from the first file that names it, and the current context from the first file
/// that sets a non-empty one (`current-context: ""`, as kubectl writes it when none is set, is unset).
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
        let mut config = read_one(&path)?;
        // kube-rs's merge keeps the first `Some`, even `Some("")`; kubectl skips empty values.
        config.current_context = config.current_context.filter(|c| !c.is_empty());
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
    // A flag's or the config file's namespace was checked with the settings; the context's goes into
    // URL paths just the same.
    if settings.namespace.is_none()
        && let Some(namespace) = &context_namespace
        && !is_dns1123_label(namespace)
    {
        return Err(KubeError::InvalidNamespace {
            context: name,
            namespace: namespace.clone(),
        });
    }
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
    fn a_context_namespace_that_is_not_a_label_is_refused_unless_a_flag_overrides_it() {
        let kc = kubeconfig("a", &[("a", Some("kube-system/pods/x/.."))]);
        let err = resolve_context(kc.clone(), vec![], &settings(None, None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "context \"a\" has namespace \"kube-system/pods/x/..\", which is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit); pass -n NAMESPACE"
        );
        let r = resolve_context(kc, vec![], &settings(None, Some("backstage"))).unwrap();
        assert_eq!(r.namespace, "backstage");
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

    #[test]
    fn an_empty_current_context_does_not_hide_the_next_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        std::fs::write(
            &first,
            "apiVersion: v1\nkind: Config\ncurrent-context: \"\"\n",
        )
        .unwrap();
        std::fs::write(
            &second,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\ncontexts:\n- name: b\n  context:\n    cluster: c\n    namespace: ns-b\n",
        )
        .unwrap();
        let (kc, files) = load_kubeconfig(&KubeconfigSource::EnvList(vec![first, second])).unwrap();
        let r = resolve_context(kc, files, &settings(None, None)).unwrap();
        assert_eq!((r.context.as_str(), r.namespace.as_str()), ("b", "ns-b"));
    }

    mod merge {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        /// One context: cluster, user, namespace.
        type ContextSpec = (String, String, Option<String>);

        /// One kubeconfig file, generated.
        #[derive(Debug, Clone)]
        struct FileSpec {
            current: Option<String>,
            contexts: Vec<(String, ContextSpec)>,
            clusters: Vec<(String, u16)>,
            users: Vec<(String, String)>,
        }

        fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
            proptest::sample::select(options).prop_map(str::to_string)
        }

        fn named<V: std::fmt::Debug + Clone>(
            names: &'static [&'static str],
            value: impl Strategy<Value = V>,
        ) -> impl Strategy<Value = Vec<(String, V)>> {
            proptest::collection::btree_map(pick(names), value, 0..=names.len())
                .prop_map(|m| m.into_iter().collect::<Vec<_>>())
                .prop_shuffle()
        }

        fn file_spec() -> impl Strategy<Value = FileSpec> {
            (
                proptest::option::of(pick(&["", "a", "b", "c", "gone"])),
                named(
                    &["a", "b", "c"],
                    (
                        pick(&["c1", "c2"]),
                        pick(&["u1", "u2"]),
                        proptest::option::of(pick(&["x", "y", "z"])),
                    ),
                ),
                named(&["c1", "c2", "c3"], 1u16..4),
                named(&["u1", "u2"], pick(&["t1", "t2", "t3"])),
            )
                .prop_map(|(current, contexts, clusters, users)| FileSpec {
                    current,
                    contexts,
                    clusters,
                    users,
                })
        }

        fn yaml(spec: &FileSpec) -> String {
            let mut text = String::from("apiVersion: v1\nkind: Config\n");
            if let Some(current) = &spec.current {
                text.push_str(&format!("current-context: {current:?}\n"));
            }
            if !spec.clusters.is_empty() {
                text.push_str("clusters:\n");
                for (name, port) in &spec.clusters {
                    text.push_str(&format!(
                        "- name: {name}\n  cluster:\n    server: https://127.0.0.1:{port}\n"
                    ));
                }
            }
            if !spec.users.is_empty() {
                text.push_str("users:\n");
                for (name, token) in &spec.users {
                    text.push_str(&format!("- name: {name}\n  user:\n    token: {token}\n"));
                }
            }
            if !spec.contexts.is_empty() {
                text.push_str("contexts:\n");
                for (name, (cluster, user, namespace)) in &spec.contexts {
                    text.push_str(&format!(
                        "- name: {name}\n  context:\n    cluster: {cluster}\n    user: {user}\n"
                    ));
                    if let Some(namespace) = namespace {
                        text.push_str(&format!("    namespace: {namespace}\n"));
                    }
                }
            }
            text
        }

        /// kubectl's rule, written plainly: each name's entry comes whole from the first file naming it.
        fn first_wins<V: Clone>(
            lists: impl Iterator<Item = Vec<(String, V)>>,
        ) -> BTreeMap<String, V> {
            let mut merged = BTreeMap::new();
            for list in lists {
                for (name, value) in list {
                    merged.entry(name).or_insert(value);
                }
            }
            merged
        }

        /// What the merged kubeconfig says, looked up by name as every consumer looks it up.
        fn by_name<T, V>(
            list: &[T],
            name: impl Fn(&T) -> &String,
            value: impl Fn(&T) -> V,
        ) -> BTreeMap<String, V> {
            let mut merged = BTreeMap::new();
            for item in list {
                merged
                    .entry(name(item).clone())
                    .or_insert_with(|| value(item));
            }
            merged
        }

        proptest! {
            #[test]
            fn merge_matches_kubectl(specs in proptest::collection::vec(file_spec(), 1..=3)) {
                let dir = tempfile::tempdir().unwrap();
                let mut paths = Vec::new();
                for (i, spec) in specs.iter().enumerate() {
                    let path = dir.path().join(format!("config-{i}"));
                    std::fs::write(&path, yaml(spec)).unwrap();
                    paths.push(path);
                }
                // A path in $KUBECONFIG that does not exist is skipped.
                paths.insert(1, dir.path().join("absent"));
                let (merged, files) = load_kubeconfig(&KubeconfigSource::EnvList(paths)).unwrap();
                prop_assert_eq!(files.len(), specs.len());

                let want_contexts = first_wins(specs.iter().map(|s| s.contexts.clone()));
                let got_contexts = by_name(&merged.contexts, |c| &c.name, |c| {
                    let c = c.context.as_ref().unwrap();
                    (c.cluster.clone(), c.user.clone().unwrap(), c.namespace.clone())
                });
                prop_assert_eq!(&got_contexts, &want_contexts);
                let want_clusters = first_wins(specs.iter().map(|s| {
                    s.clusters.iter().map(|(n, port)| (n.clone(), format!("https://127.0.0.1:{port}"))).collect()
                }));
                let got_clusters = by_name(&merged.clusters, |c| &c.name, |c| {
                    c.cluster.as_ref().unwrap().server.clone().unwrap()
                });
                prop_assert_eq!(got_clusters, want_clusters);
                let want_users = first_wins(specs.iter().map(|s| s.users.clone()));
                let got_users = by_name(&merged.auth_infos, |u| &u.name, |u| {
                    let user = serde_json::to_value(u.auth_info.as_ref().unwrap()).unwrap();
                    user["token"].as_str().unwrap().to_string()
                });
                prop_assert_eq!(got_users, want_users);

                let want_current = specs.iter().find_map(|s| s.current.clone().filter(|c| !c.is_empty()));
                prop_assert_eq!(&merged.current_context, &want_current);
                let resolved = resolve_context(merged, files, &settings(None, None));
                match want_current {
                    None => {
                        let no_current = matches!(resolved, Err(KubeError::NoCurrentContext { .. }));
                        prop_assert!(no_current, "{:?}", resolved);
                    }
                    Some(name) => match want_contexts.get(&name) {
                        None => {
                            let unknown = matches!(resolved, Err(KubeError::UnknownContext { .. }));
                            prop_assert!(unknown, "{:?}", resolved);
                        }
                        Some((_, _, namespace)) => {
                            let resolved = resolved.unwrap();
                            prop_assert_eq!(resolved.context, name);
                            prop_assert_eq!(
                                resolved.namespace,
                                namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
                            );
                        }
                    },
                }
            }
        }
    }
}
