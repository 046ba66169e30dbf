//! kubectl-backstage: a kubectl plugin for the operators of a Backstage portal on Kubernetes.
//!
//! Layers: [`cli`] (clap types) → [`settings`] (flags, environment and config file, resolved once) →
//! [`commands`] (one file per subcommand) → [`render`] (the only writer of stdout). The adapters
//! ([`kube`]) hide their crates; [`model`] is pure and does no I/O.

pub mod cli;
pub mod commands;
pub mod knex;
pub mod kube;
pub mod model;
pub mod render;
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
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The exit-code table, in one place.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Settings(_) | Error::Kube(_) | Error::Usage(_) => 2,
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
        Command::Events(args) => {
            commands::events::validate(args).map_err(Error::Usage)?;
            with_cluster(&settings, |cluster| async move {
                commands::events::run(args, &cluster, &style).await
            })
        }
    }
}

/// Connects to the cluster on a small single-threaded runtime and runs `body`.
fn with_cluster<F, Fut>(settings: &Settings, body: F) -> Result<Outcome, Error>
where
    F: FnOnce(Cluster) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, KubeError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let cluster = Cluster::connect(&settings.cluster).await?;
        Ok(body(cluster).await?)
    })
}

fn terminal_width() -> Option<u16> {
    comfy_table::Table::new().width()
}
