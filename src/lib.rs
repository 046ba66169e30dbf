//! kubectl-backstage: a kubectl plugin for the operators of a Backstage portal on Kubernetes.
//!
//! Layers: [`cli`] (clap types) → [`settings`] (flags, environment and config file, resolved once) →
//! [`commands`] (one file per subcommand) → [`render`] (the only writer of stdout). The adapters
//! ([`kube`]) hide their crates; [`model`] is pure and does no I/O.

pub mod cli;
pub mod commands;
pub mod db;
pub mod knex;
pub mod kube;
pub mod model;
pub mod render;
pub mod secrets;
pub mod settings;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, EnvCommand};
use commands::Outcome;
use kube::{Cluster, KubeError};
use settings::{RealEnv, Settings, SettingsError};

/// Why a command could not do its job. Every variant exits with 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Db(#[from] commands::db::DbCommandError),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The exit-code table, in one place.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Settings(_) | Error::Kube(_) | Error::Db(_) | Error::Usage(_) => 2,
        }
    }
}

/// The hidden subcommand kubectl's completion helper calls.
const COMPLETE: &str = "__complete";

/// Parses the arguments, runs the command and returns its exit code.
pub fn main_entry() -> ExitCode {
    // kube uses rustls; with one crypto provider installed up front, nothing has to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(COMPLETE) {
        // kubectl's completion hook: the words are taken raw, flags included, and it must answer even
        // when the config is broken.
        let global = Cli::try_parse_from(["kubectl-backstage", "env", "list"])
            .map(|c| c.global)
            .ok();
        let settings = global.and_then(|g| Settings::resolve(&g, &RealEnv, false).ok());
        render::emit(&commands::completion::candidates(
            &argv[2..],
            settings.as_ref(),
        ));
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(cli.global.verbose);
    match run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_logging(verbose: u8) {
    let filter = match verbose {
        // Errors reach the user as one line from `main_entry`; libraries stay quiet unless asked.
        0 => "off",
        1 => "kubectl_backstage=info",
        2 => "kubectl_backstage=debug,kube=debug",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

fn run(cli: Cli) -> Result<Outcome, Error> {
    let stdout_terminal = std::io::stdout().is_terminal();
    let settings = Settings::resolve(&cli.global, &RealEnv, stdout_terminal)?;
    let style = render::Style {
        format: settings.output,
        color: settings.color,
        width: if stdout_terminal {
            terminal_width()
        } else {
            None
        },
    };
    match &cli.command {
        Command::Env(EnvCommand::List) => Ok(commands::env::list(&settings, &style)),
        Command::Env(EnvCommand::Show { name }) => {
            commands::env::show(&settings, name, &style).map_err(Error::Usage)
        }
        Command::Completion(args) => {
            commands::completion::script(args.shell);
            Ok(Outcome::Ok)
        }
        Command::Health(args) => with_cluster(&settings, |cluster| async move {
            commands::health::run(args, &cluster, &style).await
        }),
        Command::Db(args) => run_db(args, &settings, &style),
        Command::Events(args) => {
            commands::events::validate(args).map_err(Error::Usage)?;
            with_cluster(&settings, |cluster| async move {
                commands::events::run(args, &cluster, &style).await
            })
        }
    }
}

/// The `db` commands: settings and input checked first, then the password, then the work.
fn run_db(
    args: &cli::DbArgs,
    settings: &Settings,
    style: &render::Style,
) -> Result<Outcome, Error> {
    use cli::DbCommand;
    use commands::db::{self, Databases};
    use settings::{DbSettings, validate_plugin_id, validate_table_name};

    let (plugins, table): (Vec<&String>, Option<&String>) = match &args.command {
        DbCommand::List => (vec![], None),
        DbCommand::Status(a) => (a.plugins.iter().collect(), None),
        DbCommand::CurrentVersion(a) => (vec![&a.plugin], a.table.as_ref()),
        DbCommand::Unlock(a) => (vec![&a.plugin], a.table.as_ref()),
        DbCommand::Psql(a) => (vec![&a.plugin], None),
        DbCommand::Plan(a) => (a.plugins.iter().collect(), None),
        DbCommand::Rollback(a) => (vec![&a.plugin], a.table.as_ref()),
    };
    for plugin in plugins {
        validate_plugin_id(plugin).map_err(Error::Usage)?;
    }
    if let Some(table) = table {
        validate_table_name(table).map_err(Error::Usage)?;
    }
    let check_dir = |source: &knex::source::SourceSpec| match source {
        knex::source::SourceSpec::Dir(path) if !path.is_dir() => Err(Error::Usage(format!(
            "{}: not a folder (a source is pod, pod:NAME or a folder)",
            path.display()
        ))),
        _ => Ok(()),
    };
    let status_source = match &args.command {
        DbCommand::Status(a) => match (&a.source, &a.pod) {
            (Some(s), _) => Some(knex::source::SourceSpec::parse(s)),
            (None, Some(pod)) => Some(knex::source::SourceSpec::Pod(Some(pod.clone()))),
            (None, None) => None,
        },
        DbCommand::Plan(a) => Some(knex::source::SourceSpec::parse(&a.to)),
        DbCommand::Rollback(a) => Some(match a.runner {
            cli::Runner::Pod => knex::source::SourceSpec::Pod(a.pod.clone()),
            cli::Runner::Local => knex::source::SourceSpec::Dir(
                a.source
                    .clone()
                    .expect("clap requires --source with --runner local"),
            ),
        }),
        _ => None,
    };
    if let Some(spec) = &status_source {
        check_dir(spec)?;
    }
    let db_settings = DbSettings::resolve(
        &args.connection,
        settings.environment.as_ref().map(|(_, e)| e),
        settings.cluster.request_timeout,
        &RealEnv,
    )
    .map_err(Error::Usage)?;
    runtime()?.block_on(async {
        let databases = Databases::open(db_settings, &RealEnv).await?;
        let outcome = match &args.command {
            DbCommand::List => db::list::run(&databases, style).await?,
            DbCommand::Status(a) => {
                let source = match &status_source {
                    Some(spec) => Some(
                        knex::source::load(
                            spec,
                            Cluster::connect(&settings.cluster).await.as_ref(),
                            &a.plugins,
                            None,
                        )
                        .await
                        .map_err(db::DbCommandError::from)?,
                    ),
                    // By default, the running pod's files when a cluster is reachable.
                    None => default_source(settings, &a.plugins).await,
                };
                db::status::run(&databases, &a.plugins, source.as_ref(), style).await?
            }
            DbCommand::Plan(a) => {
                let spec = status_source.as_ref().expect("plan has --to");
                let target = knex::source::load(
                    spec,
                    Cluster::connect(&settings.cluster).await.as_ref(),
                    &a.plugins,
                    None,
                )
                .await
                .map_err(db::DbCommandError::from)?;
                db::plan::run(&databases, &a.plugins, &target, style).await?
            }
            DbCommand::Rollback(a) => {
                let target = match (&a.migration, a.last_batch, &a.to) {
                    (Some(name), _, _) => knex::model::RollbackTarget::Down(Some(name.clone())),
                    (None, true, _) => knex::model::RollbackTarget::LastBatch,
                    (None, false, Some(name)) => knex::model::RollbackTarget::To(name.clone()),
                    (None, false, None) => unreachable!("clap requires one of them"),
                };
                let request = db::rollback::RollbackRequest {
                    plugin: &a.plugin,
                    table: a
                        .table
                        .as_deref()
                        .unwrap_or(knex::model::DEFAULT_MIGRATION_TABLE),
                    target,
                    runner: status_source.clone().expect("rollback has a runner"),
                    dry_run: a.dry_run,
                    yes: a.yes,
                };
                db::rollback::run(
                    &databases,
                    &request,
                    Cluster::connect(&settings.cluster).await,
                    style,
                )
                .await?
            }
            DbCommand::CurrentVersion(a) => {
                db::current_version::run(&databases, &a.plugin, a.table.as_deref(), style).await?
            }
            DbCommand::Unlock(a) => {
                let cluster = if a.force {
                    Err(KubeError::NoKubeconfig)
                } else {
                    Cluster::connect(&settings.cluster).await
                };
                db::unlock::run(
                    &databases,
                    &a.plugin,
                    a.table.as_deref(),
                    cluster,
                    a.force,
                    style,
                )
                .await?
            }
            DbCommand::Psql(a) => {
                let code = db::psql::run(&databases, &a.plugin, &a.args).await?;
                Outcome::Exit(u8::try_from(code).unwrap_or(2))
            }
        };
        databases.close().await;
        Ok(outcome)
    })
}

/// `db status` without `--source`: the running pod's files when a cluster is reachable, else none
/// (with a note on stderr when the cluster was there but the pod could not be read).
async fn default_source(
    settings: &Settings,
    plugins: &[String],
) -> Option<knex::source::LoadedSource> {
    let cluster = match Cluster::connect(&settings.cluster).await {
        Ok(cluster) => cluster,
        Err(e) => {
            tracing::info!(error = %e, "no cluster; showing what the databases hold");
            return None;
        }
    };
    match knex::source::load(
        &knex::source::SourceSpec::Pod(None),
        Ok(&cluster),
        plugins,
        None,
    )
    .await
    {
        Ok(source) => Some(source),
        Err(e) => {
            eprintln!(
                "note: not comparing with the running pod's files ({e}); showing what the databases hold"
            );
            None
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))
}

/// Connects to the cluster on a small single-threaded runtime and runs `body`.
fn with_cluster<F, Fut>(settings: &Settings, body: F) -> Result<Outcome, Error>
where
    F: FnOnce(Cluster) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, KubeError>>,
{
    runtime()?.block_on(async {
        let cluster = Cluster::connect(&settings.cluster).await?;
        Ok(body(cluster).await?)
    })
}

fn terminal_width() -> Option<u16> {
    comfy_table::Table::new().width()
}
