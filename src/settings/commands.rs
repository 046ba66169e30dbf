//! Each command's own flags, checked once and turned into typed settings before anything runs: the
//! plugin ids and table names validated, the source parsed, the rollback target chosen. Dispatch then
//! has nothing left to check.

use std::path::PathBuf;
use std::time::Duration;

use super::SettingsError;
use super::validate::{validate_plugin_id, validate_table_name};
use super::{ClusterSettings, Settings, validate_namespace};
use crate::cli::{DbCommand, EventsArgs, ReportArgs, Runner, VersionArgs};
use crate::knex::model::{DEFAULT_MIGRATION_TABLE, RollbackTarget};
use crate::model::events::parse_object;
use crate::options::SourceSpec;

/// An event's type, as `--types` names it (case does not matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The type as the API server writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }

    fn parse(text: &str) -> Result<EventType, SettingsError> {
        [EventType::Normal, EventType::Warning]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| SettingsError::InvalidValue {
                what: "--types".into(),
                value: text.to_string(),
                problem: "is not an event type; use Normal, Warning or both (Normal,Warning)",
            })
    }
}

/// The object `--for` names: a canonical kind and a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: &'static str,
    pub name: String,
}

/// `events`, with its flags checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsSettings {
    /// Empty means every type.
    pub types: Vec<EventType>,
    pub for_object: Option<ObjectRef>,
    pub since: Option<Duration>,
    pub watch: bool,
}

impl EventsSettings {
    pub fn resolve(args: &EventsArgs) -> Result<EventsSettings, SettingsError> {
        let mut types = args
            .types
            .iter()
            .map(|t| EventType::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        types.sort();
        types.dedup();
        let for_object = args
            .for_object
            .as_deref()
            .map(|text| {
                parse_object(text)
                    .map(|(kind, name)| ObjectRef { kind, name })
                    .map_err(|message| SettingsError::Flag { message })
            })
            .transpose()?;
        Ok(EventsSettings {
            types,
            for_object,
            since: args.since,
            watch: args.watch,
        })
    }
}

/// Where `version` reads a version: a source as the `db` commands take it, or the running pod of
/// another environment of the config file (`env:NAME`), reached with that environment's context and
/// namespace.
#[derive(Debug, Clone)]
pub enum VersionSource {
    Spec(SourceSpec),
    Env {
        name: String,
        cluster: ClusterSettings,
    },
}

/// `version`, with its flags checked.
#[derive(Debug, Clone)]
pub struct VersionSettings {
    pub selector: Option<String>,
    /// `None`: the running pod.
    pub source: Option<SourceSpec>,
    /// `--diff A B`, each with its text as given.
    pub diff: Option<[(String, VersionSource); 2]>,
}

impl VersionSettings {
    pub fn resolve(
        args: &VersionArgs,
        settings: &Settings,
    ) -> Result<VersionSettings, SettingsError> {
        let source = args
            .source
            .as_deref()
            .map(|text| match text.strip_prefix("env:") {
                Some(_) => Err(SettingsError::Flag {
                    message: format!(
                        "--source {text}: env:NAME is for --diff; to see another environment use -e NAME"
                    ),
                }),
                None => source("--source", text),
            })
            .transpose()?;
        let diff = match args.diff.as_deref() {
            None => None,
            Some([a, b]) => Some([
                (a.clone(), version_source(a, settings)?),
                (b.clone(), version_source(b, settings)?),
            ]),
            Some(_) => {
                return Err(SettingsError::Conflict {
                    message: "--diff takes two versions: --diff A B",
                });
            }
        };
        Ok(VersionSettings {
            selector: args.selector.clone(),
            source,
            diff,
        })
    }
}

/// One side of `--diff`.
fn version_source(text: &str, settings: &Settings) -> Result<VersionSource, SettingsError> {
    let Some(name) = text.strip_prefix("env:") else {
        return Ok(VersionSource::Spec(source("--diff", text)?));
    };
    let Some(environment) = settings.config.environments.get(name) else {
        let known: Vec<&str> = settings
            .config
            .environments
            .keys()
            .map(String::as_str)
            .collect();
        return Err(SettingsError::UnknownEnvironment {
            name: name.to_string(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    };
    if let Some(namespace) = &environment.namespace {
        validate_namespace(namespace, &format!("environments.{name}.namespace"))?;
    }
    Ok(VersionSource::Env {
        name: name.to_string(),
        cluster: ClusterSettings {
            kubeconfig: settings.cluster.kubeconfig.clone(),
            context: environment.context.clone(),
            namespace: environment.namespace.clone(),
            request_timeout: settings.cluster.request_timeout,
        },
    })
}

/// A `db` subcommand with its flags checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbCommandSettings {
    List,
    Status {
        plugins: Vec<String>,
        /// `None`: the running pod's files when a cluster is reachable, else none.
        source: Option<SourceSpec>,
    },
    CurrentVersion {
        plugin: String,
        table: Option<String>,
    },
    Plan {
        plugins: Vec<String>,
        to: SourceSpec,
    },
    Rollback(RollbackSettings),
    Unlock {
        plugin: String,
        table: Option<String>,
        force: bool,
        dry_run: bool,
        yes: bool,
    },
    Psql {
        plugin: String,
        args: Vec<String>,
    },
}

/// `db rollback`: what to undo, and with which code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackSettings {
    pub plugin: String,
    pub table: String,
    pub target: RollbackTarget,
    /// The newer code that runs Knex: a pod, or a local folder.
    pub runner: SourceSpec,
    pub dry_run: bool,
    pub yes: bool,
}

impl DbCommandSettings {
    pub fn resolve(command: &DbCommand) -> Result<DbCommandSettings, SettingsError> {
        Ok(match command {
            DbCommand::List => DbCommandSettings::List,
            DbCommand::Status(a) => DbCommandSettings::Status {
                plugins: plugin_ids(&a.plugins)?,
                source: match (&a.source, &a.pod) {
                    (Some(text), _) => Some(source("--source", text)?),
                    (None, Some(pod)) => Some(SourceSpec::Pod(Some(pod.clone()))),
                    (None, None) => None,
                },
            },
            DbCommand::CurrentVersion(a) => DbCommandSettings::CurrentVersion {
                plugin: plugin_id(&a.plugin)?,
                table: table(a.table.as_deref())?,
            },
            DbCommand::Plan(a) => DbCommandSettings::Plan {
                plugins: plugin_ids(&a.plugins)?,
                to: source("--to", &a.to)?,
            },
            DbCommand::Rollback(a) => DbCommandSettings::Rollback(RollbackSettings {
                plugin: plugin_id(&a.plugin)?,
                table: table(a.table.as_deref())?
                    .unwrap_or_else(|| DEFAULT_MIGRATION_TABLE.to_string()),
                target: match (&a.migration, a.last_batch, &a.to) {
                    (Some(name), _, _) => RollbackTarget::Down(Some(name.clone())),
                    (None, true, _) => RollbackTarget::LastBatch,
                    (None, false, Some(name)) => RollbackTarget::To(name.clone()),
                    (None, false, None) => {
                        return Err(SettingsError::Conflict {
                            message: "db rollback needs one of --migration NAME, --last-batch or --to NAME",
                        });
                    }
                },
                runner: match (a.runner, &a.source) {
                    (Runner::Pod, _) => SourceSpec::Pod(a.pod.clone()),
                    (Runner::Local, Some(dir)) => folder("--source", dir)?,
                    (Runner::Local, None) => {
                        return Err(SettingsError::Conflict {
                            message: "--runner local needs --source DIR (the newer version's checkout)",
                        });
                    }
                },
                dry_run: a.dry_run,
                yes: a.yes,
            }),
            DbCommand::Unlock(a) => DbCommandSettings::Unlock {
                plugin: plugin_id(&a.plugin)?,
                table: table(a.table.as_deref())?,
                force: a.force,
                dry_run: a.dry_run,
                yes: a.yes,
            },
            DbCommand::Psql(a) => DbCommandSettings::Psql {
                plugin: plugin_id(&a.plugin)?,
                args: a.args.clone(),
            },
        })
    }
}

fn plugin_id(id: &str) -> Result<String, SettingsError> {
    validate_plugin_id(id)?;
    Ok(id.to_string())
}

fn plugin_ids(ids: &[String]) -> Result<Vec<String>, SettingsError> {
    ids.iter().map(|id| plugin_id(id)).collect()
}

fn table(table: Option<&str>) -> Result<Option<String>, SettingsError> {
    table
        .map(|t| validate_table_name(t).map(|()| t.to_string()))
        .transpose()
}

/// A source flag: `pod`, `pod:NAME`, `image:REF` (a valid reference), or a folder that must exist.
fn source(flag: &'static str, text: &str) -> Result<SourceSpec, SettingsError> {
    match SourceSpec::parse(text) {
        SourceSpec::Dir(path) => folder(flag, &path),
        SourceSpec::Image(reference) => match crate::options::check_image_reference(&reference) {
            Ok(()) => Ok(SourceSpec::Image(reference)),
            Err(message) => Err(SettingsError::BadImage {
                flag,
                reference: crate::model::text::escape_control(&reference),
                message,
            }),
        },
        pod => Ok(pod),
    }
}

fn folder(flag: &'static str, path: &std::path::Path) -> Result<SourceSpec, SettingsError> {
    if path.is_dir() {
        Ok(SourceSpec::Dir(PathBuf::from(path)))
    } else {
        Err(SettingsError::NotAFolder {
            flag,
            path: path.to_path_buf(),
        })
    }
}

/// `health` over several environments reports once: `--watch` and `--wait` follow one cluster.
/// `version` over several environments shows what runs in each; comparing two is `--diff`.
pub fn check_version_in_several_environments(
    args: &crate::cli::VersionArgs,
) -> Result<(), SettingsError> {
    if args.diff.is_some() || args.source.is_some() {
        return Err(SettingsError::Conflict {
            message: "--diff and --source work in one environment at a time; to compare two environments use --diff env:A env:B",
        });
    }
    Ok(())
}

pub fn check_health_in_several_environments(
    args: &crate::cli::HealthArgs,
) -> Result<(), SettingsError> {
    if args.watch || args.wait {
        return Err(SettingsError::Conflict {
            message: "--watch and --wait work on one environment at a time; run one per environment (-e NAME)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn resolve(args: &[&str]) -> Result<DbCommandSettings, SettingsError> {
        let mut argv = vec!["kubectl-backstage", "db"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Db(db) => DbCommandSettings::resolve(&db.command),
            _ => unreachable!("parsed a db command"),
        }
    }

    #[test]
    fn events_flags_are_typed() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["kubectl-backstage", "events"];
            argv.extend_from_slice(args);
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Events(events) => EventsSettings::resolve(&events),
                _ => unreachable!("parsed an events command"),
            }
        };
        let settings = parse(&[
            "--types",
            "warning,Normal,WARNING",
            "--for",
            "deploy/backstage",
        ])
        .unwrap();
        assert_eq!(settings.types, vec![EventType::Normal, EventType::Warning]);
        assert_eq!(
            settings.for_object,
            Some(ObjectRef {
                kind: "deployment",
                name: "backstage".into()
            })
        );
        assert_eq!(
            parse(&["--types", "Fatal"]).unwrap_err().to_string(),
            "--types \"Fatal\" is not an event type; use Normal, Warning or both (Normal,Warning)"
        );
        assert!(parse(&["--for", "pod"]).is_err());
    }

    #[test]
    fn rollback_flags_become_one_target() {
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().to_str().unwrap();
        assert_eq!(
            resolve(&[
                "rollback",
                "--plugin",
                "catalog",
                "--last-batch",
                "--runner",
                "local",
                "--source",
                dir_text
            ])
            .unwrap(),
            DbCommandSettings::Rollback(RollbackSettings {
                plugin: "catalog".into(),
                table: "knex_migrations".into(),
                target: RollbackTarget::LastBatch,
                runner: SourceSpec::Dir(dir.path().into()),
                dry_run: false,
                yes: false,
            })
        );
        let DbCommandSettings::Rollback(r) = resolve(&[
            "rollback", "--plugin", "auth", "--to", "x.js", "--pod", "p", "-y",
        ])
        .unwrap() else {
            panic!("a rollback")
        };
        assert_eq!(r.target, RollbackTarget::To("x.js".into()));
        assert_eq!(r.runner, SourceSpec::Pod(Some("p".into())));
        assert!(r.yes);
    }

    #[test]
    fn bad_ids_tables_and_folders_are_refused_before_anything_runs() {
        assert_eq!(
            resolve(&["status", "--plugin", "catalog", "--plugin", "../x"])
                .unwrap_err()
                .to_string(),
            "--plugin \"../x\" is not a plugin id (letters, digits, '-' and '_', at most 48)"
        );
        assert_eq!(
            resolve(&["unlock", "--plugin", "catalog", "--table", "users"])
                .unwrap_err()
                .to_string(),
            "--table \"users\" is not a Knex migration table (a name ending in knex_migrations)"
        );
        assert_eq!(
            resolve(&["plan", "--to", "/no/such/folder"])
                .unwrap_err()
                .to_string(),
            "--to /no/such/folder: not a folder (a source is pod, pod:NAME, image:REF or a folder)"
        );
        assert_eq!(
            resolve(&["status", "--source", "pod:backstage-1"]).unwrap(),
            DbCommandSettings::Status {
                plugins: vec![],
                source: Some(SourceSpec::Pod(Some("backstage-1".into())))
            }
        );
    }
}

/// `upgrade --image` / `rollback --to-image`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuidedSettings {
    pub direction: crate::model::guided::Direction,
    pub image: String,
    /// Where the target image's files are read; `None`: the image itself.
    pub source: Option<SourceSpec>,
    pub yes: bool,
    pub dry_run: bool,
    pub suspend_flux: bool,
    pub resume_flux: bool,
    pub timeout: std::time::Duration,
}

impl GuidedSettings {
    pub fn resolve(
        direction: crate::model::guided::Direction,
        image: &str,
        args: &crate::cli::GuidedArgs,
    ) -> Result<GuidedSettings, SettingsError> {
        let flag = match direction {
            crate::model::guided::Direction::Upgrade => "--image",
            crate::model::guided::Direction::Rollback => "--to-image",
        };
        validate_image_ref(flag, image)?;
        if args.timeout.is_zero() {
            return Err(SettingsError::InvalidValue {
                what: "--timeout".into(),
                value: "0".into(),
                problem: "must be longer than zero",
            });
        }
        let source = match args.source.as_deref() {
            None | Some("image") => None,
            Some(text) if text.starts_with("pod") => {
                return Err(SettingsError::Flag {
                    message: format!(
                        "--source {text:?}: the target image is not running yet; give `image` or a DIR with its files"
                    ),
                });
            }
            Some(text) => Some(source("--source", text)?),
        };
        Ok(GuidedSettings {
            direction,
            image: image.to_string(),
            source,
            yes: args.yes,
            dry_run: args.dry_run,
            suspend_flux: args.suspend_flux,
            resume_flux: args.resume_flux,
            timeout: args.timeout,
        })
    }
}

/// An image reference as Kubernetes takes it, with a tag or a digest (a bare name means `latest`,
/// which names no version to plan for).
pub fn validate_image_ref(flag: &str, image: &str) -> Result<(), SettingsError> {
    if let Err(message) = crate::options::check_image_reference(image) {
        return Err(SettingsError::Flag {
            message: format!(
                "{flag} {:?}: {message}",
                crate::model::text::escape_control(image)
            ),
        });
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if !last.contains(':') && !image.contains('@') {
        return Err(SettingsError::InvalidValue {
            what: flag.to_string(),
            value: image.to_string(),
            problem: "has no tag or digest; name the version to move to (NAME:TAG)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod guided_tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "registry.test/backstage:1.55.0",
            "acr.azurecr.io/portal/backstage:prod-5f3c2a1-20261122110000",
            "localhost:5000/backstage:pr-4321-abc1234",
            "r/backstage@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(validate_image_ref("--image", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            validate_image_ref("--image", "registry.test/backstage")
                .unwrap_err()
                .to_string(),
            "--image \"registry.test/backstage\" has no tag or digest; name the version to move to (NAME:TAG)"
        );
        for bad in ["", "a b:1", "r/b:1\n", "r/b:-x"] {
            assert!(validate_image_ref("--image", bad).is_err(), "{bad:?}");
        }
    }
}
/// `report`, with its flags checked: the folder exists and is a folder (whether it can be written is
/// found out by creating the archive's temporary file, before anything is gathered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    pub dir: PathBuf,
    pub since: Option<Duration>,
}

impl ReportSettings {
    pub fn resolve(args: &ReportArgs) -> Result<ReportSettings, SettingsError> {
        let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(SettingsError::Flag {
                    message: format!("--dir {}: not a folder", dir.display()),
                });
            }
            Err(e) => {
                return Err(SettingsError::Flag {
                    message: match e.kind() {
                        std::io::ErrorKind::NotFound => {
                            format!("--dir {}: no such folder", dir.display())
                        }
                        std::io::ErrorKind::PermissionDenied => {
                            format!("--dir {}: permission denied", dir.display())
                        }
                        _ => format!("--dir {}: cannot be read ({e})", dir.display()),
                    },
                });
            }
        }
        if args.since.is_some_and(|d| d.is_zero()) {
            return Err(SettingsError::InvalidValue {
                what: "--since".into(),
                value: "0".into(),
                problem: "must be longer than 0s",
            });
        }
        Ok(ReportSettings {
            dir,
            since: args.since,
        })
    }
}
