//! Flags, environment variables and the config file, resolved once into the settings a command runs
//! with: [`Settings`] (global: output, cluster, environment), [`db::DbSettings`] (how to reach the
//! databases) and [`commands`] (each command's own flags, checked and typed). Every input is checked
//! here, before any I/O; a bad one is a [`SettingsError`] (exit 2). Several environments (`-e a,b`,
//! `--all-envs`) resolve into one [`Settings`] per environment ([`Settings::resolve_each`]), for the
//! commands that fan out over them.

pub mod commands;
mod config_file;
mod db;
mod validate;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::options::OutputFormat;
use crate::process_env::ProcessEnv;
use config_file::load_config;

pub use config_file::{
    ConfigFile, DatabaseConfig, Environment, KeyVaultRef, MAX_CONFIG_BYTES, PasswordSource,
    VerifyAuthConfig, VerifyConfig, parse_config,
};
pub use db::{DEFAULT_DATABASE_PREFIX, DEFAULT_SCHEMA_DATABASE, DbSettings, Division};
pub use validate::{is_dns1123_label, validate_namespace, validate_plugin_id, validate_table_name};

/// Why the flags, the environment or the config file cannot be used. Always exit 2, before any I/O.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is larger than {limit} bytes; is it the right file?")]
    ConfigTooLarge { path: PathBuf, limit: u64 },
    #[error("config file {path} is not valid: {message}")]
    ParseConfig { path: PathBuf, message: String },
    #[error(
        "unknown environment {name:?}; configured environments: {known} (see `kubectl backstage env list`)"
    )]
    UnknownEnvironment { name: String, known: String },
    #[error("config file {path}: defaultEnvironment {name:?} is not one of its environments")]
    UnknownDefaultEnvironment { path: PathBuf, name: String },
    /// A flag, config key or variable whose value is not acceptable: `what` names it (`--plugin`,
    /// `database.sslmode`, `$PGPORT`).
    #[error("{what} {value:?} {problem}")]
    InvalidValue {
        what: String,
        value: String,
        problem: &'static str,
    },
    /// A value given in the wrong form, with the parser's own explanation.
    #[error("{what}: {message}")]
    Unparsable { what: String, message: String },
    /// A required setting nobody gave: `message` says where it can come from.
    #[error("{message}")]
    Missing { message: &'static str },
    /// Flags that do not go together, or need each other.
    #[error("{message}")]
    Conflict { message: &'static str },
    /// A command flag the command itself checked, with its explanation.
    #[error("{message}")]
    Flag { message: String },
    #[error("{flag} {path}: not a folder (a source is pod, pod:NAME, image:REF or a folder)")]
    NotAFolder { flag: &'static str, path: PathBuf },
    /// `image:REF` whose reference the container runtime would refuse.
    #[error("{flag} image:{reference}: {message}")]
    BadImage {
        flag: &'static str,
        reference: String,
        message: String,
    },
    /// Several environments asked of a command that works on one.
    #[error(
        "{command} works on one environment at a time; several environments (-e NAME,NAME or --all-envs) work with {supported}"
    )]
    SeveralEnvironments {
        command: &'static str,
        supported: &'static str,
    },
}

/// Which environments the flags ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSelection {
    /// No `-e`: the config file's defaultEnvironment, if any.
    Default,
    /// `-e NAME`.
    One(String),
    /// `-e A,B…` (in the order given, each once) or `--all-envs` (every environment of the file).
    Several(Several),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Several {
    Listed(Vec<String>),
    All,
}

impl EnvSelection {
    /// Reads `-e` and `--all-envs`. A comma makes a list (names trimmed, each kept once, `-e ptl,`
    /// refused: an empty name); the several-environments output follows from the comma, not from
    /// how many names are left.
    pub fn from_args(args: &GlobalArgs) -> Result<EnvSelection, SettingsError> {
        if args.all_envs {
            return Ok(EnvSelection::Several(Several::All));
        }
        let Some(text) = &args.env else {
            return Ok(EnvSelection::Default);
        };
        if !text.contains(',') {
            return Ok(EnvSelection::One(text.clone()));
        }
        let mut names: Vec<String> = Vec::new();
        for name in text.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(SettingsError::InvalidValue {
                    what: "-e".into(),
                    value: text.clone(),
                    problem: "has an empty environment name (give NAME,NAME…)",
                });
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        Ok(EnvSelection::Several(Several::Listed(names)))
    }

    pub fn is_several(&self) -> bool {
        matches!(self, EnvSelection::Several(_))
    }
}

/// Where the Kubernetes connection comes from, before the kubeconfig is read.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Kubeconfig files in merge order; `explicit` when given by `--kubeconfig` (then it must exist).
    pub kubeconfig: KubeconfigSource,
    /// `--context`, else the environment's context; `None` uses the kubeconfig's current-context.
    pub context: Option<String>,
    /// `-n`, else the environment's namespace; `None` falls back to the context's, then `backstage`.
    pub namespace: Option<String>,
    /// `None` waits forever.
    pub request_timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KubeconfigSource {
    /// `--kubeconfig FILE`
    Explicit(PathBuf),
    /// `$KUBECONFIG`, split like kubectl splits it; files that do not exist are skipped.
    EnvList(Vec<PathBuf>),
    /// `~/.kube/config`
    Default(PathBuf),
}

/// Everything a command needs to know about how it was asked to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub output: OutputFormat,
    pub color: bool,
    pub cluster: ClusterSettings,
    /// The selected environment, with its name.
    pub environment: Option<(String, Environment)>,
    /// The config file that was read, if any.
    pub config_path: Option<PathBuf>,
    pub config: ConfigFile,
}

impl Settings {
    /// The settings of a command that works on one environment: several are refused.
    pub fn resolve(
        args: &GlobalArgs,
        env: &dyn ProcessEnv,
        stdout_is_terminal: bool,
    ) -> Result<Settings, SettingsError> {
        let selection = EnvSelection::from_args(args)?;
        let requested = match &selection {
            EnvSelection::Default => None,
            EnvSelection::One(name) => Some(name.as_str()),
            EnvSelection::Several(_) => {
                return Err(SettingsError::SeveralEnvironments {
                    command: "this command",
                    supported: SEVERAL_ENVIRONMENT_COMMANDS,
                });
            }
        };
        let (config_path, config) = load_config(args.config.as_deref(), env)?;
        let environment = select_environment(&config, config_path.as_deref(), requested)?;
        Settings::for_environment(
            args,
            env,
            stdout_is_terminal,
            config_path,
            config,
            environment,
        )
    }

    /// One [`Settings`] per environment asked for, in the order asked (`--all-envs`: sorted by
    /// name); a single one for `-e NAME` or no `-e`. Every environment is checked before any
    /// is used. `--context` cannot go with several environments: each names its own.
    pub fn resolve_each(
        args: &GlobalArgs,
        env: &dyn ProcessEnv,
        stdout_is_terminal: bool,
    ) -> Result<Vec<Settings>, SettingsError> {
        let several = match EnvSelection::from_args(args)? {
            EnvSelection::Several(several) => several,
            _ => return Ok(vec![Settings::resolve(args, env, stdout_is_terminal)?]),
        };
        if args.context.is_some() {
            return Err(SettingsError::Conflict {
                message: "--context cannot be used with several environments: each environment names its own context (set `context` in the config file)",
            });
        }
        let (config_path, config) = load_config(args.config.as_deref(), env)?;
        let names: Vec<String> = match several {
            Several::Listed(names) => names,
            Several::All if config.environments.is_empty() => {
                return Err(SettingsError::Missing {
                    message: "--all-envs: the config file has no environments (see `kubectl backstage env list`)",
                });
            }
            Several::All => config.environments.keys().cloned().collect(),
        };
        names
            .iter()
            .map(|name| {
                let environment = select_environment(&config, config_path.as_deref(), Some(name))?;
                Settings::for_environment(
                    args,
                    env,
                    stdout_is_terminal,
                    config_path.clone(),
                    config.clone(),
                    environment,
                )
            })
            .collect()
    }

    /// The environment's name, when one was selected.
    pub fn environment_name(&self) -> Option<&str> {
        self.environment.as_ref().map(|(name, _)| name.as_str())
    }

    fn for_environment(
        args: &GlobalArgs,
        env: &dyn ProcessEnv,
        stdout_is_terminal: bool,
        config_path: Option<PathBuf>,
        config: ConfigFile,
        environment: Option<(String, Environment)>,
    ) -> Result<Settings, SettingsError> {
        let env_block = environment.as_ref().map(|(_, e)| e);
        let kubeconfig = match (&args.kubeconfig, env.var("KUBECONFIG")) {
            (Some(path), _) => KubeconfigSource::Explicit(path.clone()),
            (None, Some(list)) => KubeconfigSource::EnvList(
                std::env::split_paths(&list)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect(),
            ),
            (None, None) => KubeconfigSource::Default(
                env.home().unwrap_or_default().join(".kube").join("config"),
            ),
        };
        if let Some(namespace) = &args.namespace {
            validate_namespace(namespace, "-n")?;
        }
        if let Some((name, environment)) = &environment
            && let Some(namespace) = &environment.namespace
        {
            validate_namespace(namespace, &format!("environments.{name}.namespace"))?;
        }
        let cluster = ClusterSettings {
            kubeconfig,
            context: args
                .context
                .clone()
                .or_else(|| env_block.and_then(|e| e.context.clone())),
            namespace: args
                .namespace
                .clone()
                .or_else(|| env_block.and_then(|e| e.namespace.clone())),
            request_timeout: args.request_timeout.0,
        };
        let color = stdout_is_terminal && !args.no_color && env.var("NO_COLOR").is_none();
        Ok(Settings {
            output: args.output,
            color,
            cluster,
            environment,
            config_path,
            config,
        })
    }
}

/// The commands that take several environments, for the error that refuses them elsewhere.
pub const SEVERAL_ENVIRONMENT_COMMANDS: &str = "health, version and verify";

fn select_environment(
    config: &ConfigFile,
    path: Option<&Path>,
    requested: Option<&str>,
) -> Result<Option<(String, Environment)>, SettingsError> {
    let known = || {
        if config.environments.is_empty() {
            "none".to_string()
        } else {
            config
                .environments
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match requested {
        Some(name) => match config.environments.get(name) {
            Some(e) => Ok(Some((name.to_string(), e.clone()))),
            None => Err(SettingsError::UnknownEnvironment {
                name: name.to_string(),
                known: known(),
            }),
        },
        None => match &config.default_environment {
            Some(name) => match config.environments.get(name) {
                Some(e) => Ok(Some((name.clone(), e.clone()))),
                None => Err(SettingsError::UnknownDefaultEnvironment {
                    path: path.map(Path::to_path_buf).unwrap_or_default(),
                    name: name.clone(),
                }),
            },
            None => Ok(None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::BTreeMap;

    struct FakeEnv(BTreeMap<&'static str, String>, PathBuf);
    impl ProcessEnv for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            Some(self.1.clone())
        }
    }

    const SPEC_EXAMPLE: &str = r#"
defaultEnvironment: ptlsbox
environments:
  ptlsbox:
    context: sbox-aks
    namespace: backstage
    url: https://backstage-sandbox.example.net/
    database:
      host: backstage-sbox.postgres.database.azure.com
      port: 5432
      user: pgadmin
      sslmode: require
      sslrootcert: /path/ca.pem
      divisionMode: database
      databasePrefix: backstage_plugin_
      database: backstage
      password:
        keyVault: { vault: sbox-intsvc, secret: backstage-psqldb-password }
  ptl:
    namespace: backstage-ptl
    database:
      password:
        env: PTL_PASSWORD
"#;

    fn global(args: &[&str]) -> GlobalArgs {
        let mut argv = vec!["kubectl-backstage"];
        argv.extend_from_slice(args);
        argv.push("health");
        crate::cli::Cli::try_parse_from(argv).unwrap().global
    }

    #[test]
    fn the_spec_example_config_parses() {
        let config = parse_config(SPEC_EXAMPLE).unwrap();
        assert_eq!(config.default_environment.as_deref(), Some("ptlsbox"));
        let sbox = &config.environments["ptlsbox"];
        let db = sbox.database.as_ref().unwrap();
        assert_eq!(db.port, Some(5432));
        assert_eq!(
            db.password
                .as_ref()
                .unwrap()
                .key_vault
                .as_ref()
                .unwrap()
                .secret,
            "backstage-psqldb-password"
        );
        assert_eq!(
            config.environments["ptl"]
                .database
                .as_ref()
                .unwrap()
                .password
                .as_ref()
                .unwrap()
                .env
                .as_deref(),
            Some("PTL_PASSWORD")
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse_config("environments:\n  x:\n    namespce: typo\n").unwrap_err();
        assert!(err.contains("namespce"), "{err}");
    }

    #[test]
    fn flags_override_the_environment_which_overrides_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, SPEC_EXAMPLE).unwrap();
        let env = FakeEnv(
            BTreeMap::from([("KUBECTL_BACKSTAGE_CONFIG", path.display().to_string())]),
            dir.path().into(),
        );

        let s = Settings::resolve(&global(&[]), &env, false).unwrap();
        assert_eq!(s.environment.as_ref().unwrap().0, "ptlsbox");
        assert_eq!(s.cluster.context.as_deref(), Some("sbox-aks"));
        assert_eq!(s.cluster.namespace.as_deref(), Some("backstage"));

        let s =
            Settings::resolve(&global(&["-e", "ptl", "--context", "mine"]), &env, false).unwrap();
        assert_eq!(s.cluster.context.as_deref(), Some("mine"));
        assert_eq!(s.cluster.namespace.as_deref(), Some("backstage-ptl"));

        let s = Settings::resolve(&global(&["-n", "x"]), &env, false).unwrap();
        assert_eq!(s.cluster.namespace.as_deref(), Some("x"));

        let err = Settings::resolve(&global(&["-e", "nope"]), &env, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment \"nope\"; configured environments: ptl, ptlsbox (see `kubectl backstage env list`)"
        );
    }

    #[test]
    fn several_environments_resolve_into_one_settings_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, SPEC_EXAMPLE).unwrap();
        let env = FakeEnv(
            BTreeMap::from([("KUBECTL_BACKSTAGE_CONFIG", path.display().to_string())]),
            dir.path().into(),
        );
        let names = |args: &[&str]| -> Vec<(String, Option<String>, Option<String>)> {
            Settings::resolve_each(&global(args), &env, false)
                .unwrap()
                .into_iter()
                .map(|s| {
                    (
                        s.environment_name().unwrap().to_string(),
                        s.cluster.context,
                        s.cluster.namespace,
                    )
                })
                .collect()
        };
        let sbox = (
            "ptlsbox".to_string(),
            Some("sbox-aks".to_string()),
            Some("backstage".to_string()),
        );
        let ptl = ("ptl".to_string(), None, Some("backstage-ptl".to_string()));
        assert_eq!(
            names(&["-e", "ptl,ptlsbox"]),
            vec![ptl.clone(), sbox.clone()]
        );
        assert_eq!(names(&["-e", "ptl, ptl"]), vec![ptl.clone()]);
        assert_eq!(names(&["--all-envs"]), vec![ptl.clone(), sbox.clone()]);
        assert_eq!(names(&[]), vec![sbox.clone()], "no -e: the default only");
        let with_n = names(&["--all-envs", "-n", "other"]);
        assert!(
            with_n
                .iter()
                .all(|(_, _, ns)| ns.as_deref() == Some("other"))
        );

        assert!(EnvSelection::from_args(&global(&["-e", "a,"])).is_err());
        assert!(
            EnvSelection::from_args(&global(&["-e", "a,b"]))
                .unwrap()
                .is_several()
        );
        assert!(
            !EnvSelection::from_args(&global(&["-e", "a"]))
                .unwrap()
                .is_several()
        );
        let err = Settings::resolve(&global(&["-e", "ptl,ptlsbox"]), &env, false).unwrap_err();
        assert!(
            matches!(err, SettingsError::SeveralEnvironments { .. }),
            "{err}"
        );
    }

    #[test]
    fn kubeconfig_comes_from_flag_then_env_list_then_home() {
        let home = PathBuf::from("/home/op");
        let env = FakeEnv(
            BTreeMap::from([("KUBECONFIG", "/a:/b::/c".to_string())]),
            home.clone(),
        );
        let s = Settings::resolve(&global(&[]), &env, false).unwrap();
        assert_eq!(
            s.cluster.kubeconfig,
            KubeconfigSource::EnvList(vec!["/a".into(), "/b".into(), "/c".into()])
        );
        let s = Settings::resolve(&global(&["--kubeconfig", "/k"]), &env, false).unwrap();
        assert_eq!(
            s.cluster.kubeconfig,
            KubeconfigSource::Explicit("/k".into())
        );
        let s = Settings::resolve(&global(&[]), &FakeEnv(BTreeMap::new(), home), false).unwrap();
        assert_eq!(
            s.cluster.kubeconfig,
            KubeconfigSource::Default("/home/op/.kube/config".into())
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let home = PathBuf::from("/nowhere");
        let plain = FakeEnv(BTreeMap::new(), home.clone());
        assert!(Settings::resolve(&global(&[]), &plain, true).unwrap().color);
        assert!(
            !Settings::resolve(&global(&[]), &plain, false)
                .unwrap()
                .color
        );
        assert!(
            !Settings::resolve(&global(&["--no-color"]), &plain, true)
                .unwrap()
                .color
        );
        let no_color = FakeEnv(BTreeMap::from([("NO_COLOR", "1".to_string())]), home);
        assert!(
            !Settings::resolve(&global(&[]), &no_color, true)
                .unwrap()
                .color
        );
    }
}
