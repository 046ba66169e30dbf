//! kubectl-backstage: a kubectl plugin for the operators of a Backstage portal on Kubernetes.
//!
//! Layers: [`cli`] (clap types) → [`settings`] (flags, environment and config file, resolved and
//! checked once) → [`commands`] (one file per subcommand) → [`render`] (the only writer of stdout and
//! stderr). The adapters ([`kube`], [`db`], [`secrets`], [`migrations`], [`backstage`], [`archive`]) hide their crates and
//! processes; [`model`] and [`knex`] are pure and do no I/O. [`options`] and [`process_env`] are
//! leaves everyone may use; [`exit`] is the exit-code table.

pub mod archive;
pub mod backstage;
pub mod cli;
pub mod commands;
pub mod db;
pub mod exit;
pub mod knex;
pub mod kube;
pub mod migrations;
pub mod model;
pub mod options;
pub mod process_env;
pub mod render;
pub mod secrets;
pub mod settings;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, EnvCommand};
use commands::Outcome;
use kube::{Cluster, KubeError};
use process_env::RealEnv;
use settings::commands::{DbCommandSettings, EventsSettings, ReportSettings, VersionSettings};
use settings::verify::VerifySettings;
use settings::{DbSettings, EnvSelection, Settings, SettingsError};

/// Why a command could not do its job; [`exit::of_error`] gives its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Db(#[from] commands::db::DbCommandError),
    #[error(transparent)]
    Version(#[from] commands::version::VersionError),
    #[error(transparent)]
    Verify(#[from] commands::verify::VerifyError),
    #[error(transparent)]
    Guided(Box<commands::guided::GuidedError>),
    #[error(transparent)]
    Report(#[from] commands::report::ReportError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The hidden subcommand kubectl's completion helper calls.
const COMPLETE: &str = "__complete";

/// Parses the arguments, runs the command and returns its exit code.
pub fn main_entry() -> ExitCode {
    // kube uses rustls; with one crypto provider installed up front, nothing has to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(COMPLETE) {
        // kubectl's completion hook: the words are taken raw, and it must answer even when the config
        // is broken.
        let global = Cli::try_parse_from(["kubectl-backstage", "env", "list"]).map(|c| c.global);
        let settings = global
            .ok()
            .and_then(|g| Settings::resolve(&g, &RealEnv, false).ok());
        render::emit(&commands::completion::candidates(
            &argv[2..],
            settings.as_ref(),
        ));
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::from(exit::OK);
        }
        Err(e) => {
            let mut rendered = e.render().to_string();
            if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                // clap prints the whole help here; one line says what is missing instead.
                rendered = format!("error: a subcommand is required\n{rendered}");
            }
            eprint!("{}", render::usage_error_lines(&rendered));
            return ExitCode::from(exit::COULD_NOT_RUN);
        }
    };
    render::init_logging(cli.global.verbose);
    match run(cli) {
        Ok(outcome) => ExitCode::from(exit::of_outcome(outcome)),
        Err(e) => {
            eprint!("{}", render::error_lines(&e.to_string()));
            ExitCode::from(exit::of_error(&e))
        }
    }
}

/// Resolves the settings (global, then the command's own), then runs the command.
fn run(cli: Cli) -> Result<Outcome, Error> {
    let stdout_terminal = std::io::stdout().is_terminal();
    if let Command::Version(args) = &cli.command
        && args.client
    {
        // Only this binary: no config file, kubeconfig or cluster is read.
        let style = render::Style::for_stdout(cli.global.output, false, stdout_terminal);
        return Ok(commands::version::client(&style));
    }
    if EnvSelection::from_args(&cli.global)?.is_several() {
        return run_several(&cli, stdout_terminal);
    }
    let settings = Settings::resolve(&cli.global, &RealEnv, stdout_terminal)?;
    let style = render::Style::for_stdout(settings.output, settings.color, stdout_terminal);
    match &cli.command {
        Command::Env(EnvCommand::List) => Ok(commands::env::list(&settings, &style)),
        Command::Env(EnvCommand::Show { name }) => {
            Ok(commands::env::show(&settings, name, &style)?)
        }
        Command::Completion(args) => Ok(commands::completion::script(args.shell)),
        Command::Health(args) => with_cluster(&settings, |cluster| async move {
            commands::health::run(args, &cluster, &style).await
        }),
        Command::Events(args) => {
            let events = EventsSettings::resolve(args)?;
            with_cluster(&settings, |cluster| async move {
                commands::events::run(&events, &cluster, &style).await
            })
        }
        Command::Version(args) => {
            let version = VersionSettings::resolve(args, &settings)?;
            Ok(runtime()?.block_on(async {
                let cluster = Cluster::connect(&settings.cluster).await;
                commands::version::run(&version, cluster, &style).await
            })?)
        }
        Command::Verify(args) => {
            let verify = VerifySettings::resolve(
                args,
                settings
                    .environment
                    .as_ref()
                    .map(|(name, e)| (name.as_str(), e)),
                settings.cluster.request_timeout,
                &RealEnv,
            )?;
            Ok(runtime()?.block_on(commands::verify::run(
                &verify,
                &settings.cluster,
                &style,
                &RealEnv,
            ))?)
        }
        Command::Upgrade(args) => guided(
            model::guided::Direction::Upgrade,
            &args.image,
            &args.guided,
            &args.connection,
            &settings,
            &style,
        ),
        Command::Rollback(args) => guided(
            model::guided::Direction::Rollback,
            &args.to_image,
            &args.guided,
            &args.connection,
            &settings,
            &style,
        ),
        Command::Report(args) => {
            let report = ReportSettings::resolve(args)?;
            // The databases are one part of the bundle: when nothing says where they are, that part
            // is left out (the summary says why); a bad database flag is still bad input.
            let db_settings = match DbSettings::resolve(
                &args.connection,
                settings.environment.as_ref().map(|(_, e)| e),
                settings.cluster.request_timeout,
                &RealEnv,
            ) {
                Ok(db) => Ok(db),
                Err(SettingsError::Missing { message }) => Err(message.to_string()),
                Err(e) => return Err(e.into()),
            };
            Ok(runtime()?.block_on(commands::report::run(
                &report,
                db_settings,
                &settings,
                &style,
            ))?)
        }
        Command::Db(args) => {
            let command = DbCommandSettings::resolve(&args.command)?;
            let db_settings = DbSettings::resolve(
                &args.connection,
                settings.environment.as_ref().map(|(_, e)| e),
                settings.cluster.request_timeout,
                &RealEnv,
            )?;
            Ok(runtime()?.block_on(commands::db::run::run(
                &command,
                db_settings,
                &settings,
                &style,
            ))?)
        }
    }
}

/// `upgrade` / `rollback`: every flag checked and the password found before anything is read.
fn guided(
    direction: model::guided::Direction,
    image: &str,
    args: &cli::GuidedArgs,
    connection: &cli::DbConnectionArgs,
    settings: &Settings,
    style: &render::Style,
) -> Result<Outcome, Error> {
    let guided = settings::commands::GuidedSettings::resolve(direction, image, args)?;
    let db_settings = DbSettings::resolve(
        connection,
        settings.environment.as_ref().map(|(_, e)| e),
        settings.cluster.request_timeout,
        &RealEnv,
    )?;
    Ok(runtime()?.block_on(commands::guided::run(&guided, db_settings, settings, style))?)
}

/// A command given several environments (`-e a,b`, `--all-envs`): those that can fan out do, the
/// others are refused before anything runs.
fn run_several(cli: &Cli, stdout_terminal: bool) -> Result<Outcome, Error> {
    match &cli.command {
        Command::Health(args) => {
            settings::commands::check_health_in_several_environments(args)?;
            let each = Settings::resolve_each(&cli.global, &RealEnv, stdout_terminal)?;
            let style =
                render::Style::for_stdout(cli.global.output, each[0].color, stdout_terminal);
            Ok(runtime()?.block_on(commands::health::run_several(args, &each, &style)))
        }
        Command::Version(args) => {
            settings::commands::check_version_in_several_environments(args)?;
            let each = Settings::resolve_each(&cli.global, &RealEnv, stdout_terminal)?;
            let version = VersionSettings::resolve(args, &each[0])?;
            let style =
                render::Style::for_stdout(cli.global.output, each[0].color, stdout_terminal);
            Ok(runtime()?.block_on(commands::version::run_several(&version, &each, &style)))
        }
        Command::Verify(args) => {
            if args.url.is_some() {
                return Err(SettingsError::Conflict {
                    message: "--url names one portal; with several environments each is checked at its own url (or through its cluster)",
                }
                .into());
            }
            let each = Settings::resolve_each(&cli.global, &RealEnv, stdout_terminal)?;
            let environments = each
                .into_iter()
                .map(|s| {
                    let verify = VerifySettings::resolve(
                        args,
                        s.environment.as_ref().map(|(name, e)| (name.as_str(), e)),
                        s.cluster.request_timeout,
                        &RealEnv,
                    )?;
                    Ok((s, verify))
                })
                .collect::<Result<Vec<_>, SettingsError>>()?;
            let style = render::Style::for_stdout(
                cli.global.output,
                environments[0].0.color,
                stdout_terminal,
            );
            Ok(runtime()?.block_on(commands::verify::run_several(
                &environments,
                &style,
                &RealEnv,
            )))
        }
        other => Err(SettingsError::SeveralEnvironments {
            command: command_name(other),
            supported: settings::SEVERAL_ENVIRONMENT_COMMANDS,
        }
        .into()),
    }
}

/// How the user typed the command, for errors.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Health(_) => "health",
        Command::Events(_) => "events",
        Command::Version(_) => "version",
        Command::Verify(_) => "verify",
        Command::Db(_) => "db",
        Command::Upgrade(_) => "upgrade",
        Command::Rollback(_) => "rollback",
        Command::Report(_) => "report",
        Command::Env(_) => "env",
        Command::Completion(_) => "completion",
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
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
