//! The command line: clap types only. Every `///` here is help text the user reads.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::time::parse_duration;
use crate::options::{AzureAuth, DivisionMode, OutputFormat, SslMode};

/// Operate a Backstage portal on Kubernetes: rollout health, events, and the plugin databases.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-backstage",
    bin_name = "kubectl backstage",
    version = crate::model::version::LONG_VERSION,
    about
)]
#[command(propagate_version = true, max_term_width = 110)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags with kubectl's meaning, accepted before or after the subcommand.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, a ':'-separated list merged as kubectl does,
    /// else ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the environment's context, else current-context)
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of the Backstage deployment (default: the environment's, else the context's, else
    /// `backstage`)
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Environment from the config file (default: its defaultEnvironment); several, comma-separated
    /// (`-e ptlsbox,ptl`), for health, version and verify: one table with an ENVIRONMENT column
    #[arg(short = 'e', long = "env", global = true, value_name = "NAME[,NAME…]")]
    pub env: Option<String>,
    /// Every environment of the config file (health, version, verify): one table with an ENVIRONMENT column
    #[arg(long, global = true, conflicts_with = "env")]
    pub all_envs: bool,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// How long to wait for one API server request ("0" waits forever), e.g. 30s, 1m
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = parse_request_timeout)]
    pub request_timeout: RequestTimeout,
    /// The config file with environments (default: $KUBECTL_BACKSTAGE_CONFIG, else
    /// $XDG_CONFIG_HOME/kubectl-backstage/config.yaml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Never colour the output (colour is only used on a terminal, and never when NO_COLOR is set)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print diagnostics to stderr (-vv for more); never prints a secret
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `--request-timeout`: `None` means wait forever (kubectl's "0").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeout(pub Option<Duration>);

fn parse_request_timeout(text: &str) -> Result<RequestTimeout, String> {
    let duration = parse_duration(text)?;
    Ok(RequestTimeout((!duration.is_zero()).then_some(duration)))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pods and rollouts of the namespace, with findings and hints (exit 1 when something is wrong)
    Health(HealthArgs),
    /// Events of the namespace, oldest first, ordered by when they were last seen
    Events(EventsArgs),
    /// The plugin databases: Knex migrations, locks, psql
    Db(Box<DbArgs>),
    /// What runs: each workload's image, tag and running digest, and the backend's Backstage release
    /// and packages; `--diff A B` compares two versions
    Version(VersionArgs),
    /// Smoke checks against the portal's URL: readiness, liveness, sign-in, catalog, templates, docs
    /// (exit 1 when a check fails)
    Verify(VerifyArgs),
    /// Move Backstage to a newer image, guided: preflight plan, Flux, set the image, wait for the
    /// rollout, verify (exit 1 when the rollout fails, 3 when stopped part-way)
    Upgrade(Box<UpgradeArgs>),
    /// Move Backstage back to an older image, guided: preflight plan, Flux, roll back the migrations
    /// the older image lacks (in the current, newer pod), set the image, wait, verify
    Rollback(Box<RollbackArgs>),
    /// Write a redacted support bundle (tar.gz): health, events, backend logs, version, db status,
    /// workloads as YAML and the resolved config; never a Secret, a password or a token
    Report(Box<ReportArgs>),
    /// The environments of the config file
    #[command(subcommand)]
    Env(EnvCommand),
    /// Print a shell completion script
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Only pods and workloads matching this label selector (e.g. app.kubernetes.io/name=backstage)
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Keep watching and redraw when the cluster changes; Ctrl-C ends it
    #[arg(short = 'w', long, conflicts_with = "wait")]
    pub watch: bool,
    /// Wait until every rollout is complete and every pod is ready (exit 0), or until --timeout (exit 1)
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 10m
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration, requires = "wait")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events of these types, comma-separated (Normal, Warning)
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only events about this object: KIND/NAME, e.g. pod/backstage-7d9f…; a deployment also takes its
    /// ReplicaSets and their pods, a statefulset its pods
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub for_object: Option<String>,
    /// Only events last seen within this duration, e.g. 1h, 30m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// After listing, print new and updated events as they happen; Ctrl-C ends it
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Only this program's own version, git commit, build date and target; reads no cluster
    #[arg(long, conflicts_with_all = ["selector", "source", "diff"])]
    pub client: bool,
    /// Only workloads and pods matching this label selector (e.g. app.kubernetes.io/name=backstage)
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Where the packages are read: `pod` (a running Backstage pod; the default), `pod:NAME`, or a DIR
    /// (a checkout with node_modules, or a node_modules folder)
    #[arg(long, value_name = "SOURCE", conflicts_with = "diff")]
    pub source: Option<String>,
    /// Compare two versions, A (the one running now) and B (the one to move to): each `pod`,
    /// `pod:NAME`, a DIR, or `env:NAME` (the running pod of another environment of the config file).
    /// Exit 1 when B lacks migrations A has (roll back first), else 0
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub diff: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The portal's base URL, e.g. https://backstage.example.net/ (default: the environment's url)
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The sign-in provider whose start is checked, e.g. microsoft, github (default: verify.auth.provider;
    /// without one the sign-in check is skipped)
    #[arg(long, value_name = "NAME")]
    pub auth_provider: Option<String>,
    /// The provider's auth environment, as in Backstage's auth.environment (default: verify.auth.env,
    /// else development)
    #[arg(long, value_name = "NAME")]
    pub auth_env: Option<String>,
    /// The identity provider's host that sign-in must redirect to (default: verify.auth.host, else the
    /// provider's well-known host: github.com, login.microsoftonline.com, …)
    #[arg(long, value_name = "HOST")]
    pub auth_host: Option<String>,
    /// Read the API token (a static external-access token) from this environment variable (default:
    /// verify.token.env, else $BACKSTAGE_TOKEN, else verify.token.keyVault)
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// The entity whose TechDocs are checked, as NAMESPACE/KIND/NAME (default: verify.docsEntity, else
    /// the first entity with a backstage.io/techdocs-ref annotation)
    #[arg(long, value_name = "NAMESPACE/KIND/NAME")]
    pub docs_entity: Option<String>,
    /// The URL of the token's Key Vault, for other clouds (overrides the URL made from
    /// verify.token.keyVault.vault)
    #[arg(long, value_name = "URL")]
    pub vault_url: Option<String>,
    /// How to sign in to Azure for the token's Key Vault (default: the first configured, as for db)
    #[arg(long, value_enum, value_name = "METHOD")]
    pub azure_auth: Option<AzureAuth>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The folder to write the archive into (default: the current folder); it must exist
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Only logs and events of this last while, e.g. 1h, 30m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// How db-status.json reaches the databases (as for `db status`); without a database host it is
    /// left out, and the summary says so
    #[command(flatten)]
    pub connection: DbConnectionArgs,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// The configured environments
    List,
    /// One environment's settings (never a password)
    Show {
        /// The environment's name
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell, or `kubectl` for the `kubectl_complete-backstage` helper that kubectl 1.26+ runs to
    /// complete plugin arguments
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Kubectl,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The image to move to, REGISTRY/NAME:TAG (or @sha256:…)
    #[arg(long, value_name = "REF")]
    pub image: String,
    #[command(flatten)]
    pub guided: GuidedArgs,
    #[command(flatten)]
    pub connection: DbConnectionArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The older image to move back to, REGISTRY/NAME:TAG (or @sha256:…)
    #[arg(long, value_name = "REF")]
    pub to_image: String,
    #[command(flatten)]
    pub guided: GuidedArgs,
    #[command(flatten)]
    pub connection: DbConnectionArgs,
}

/// The flags `upgrade` and `rollback` share.
#[derive(Debug, Args, Clone)]
pub struct GuidedArgs {
    /// Do not ask before changing anything
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only print the steps and the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// When Flux manages the Deployment: suspend its HelmRelease / Kustomization first (recorded in an
    /// annotation on the Deployment)
    #[arg(long)]
    pub suspend_flux: bool,
    /// At the end, resume the Flux object that was suspended (else the command is printed)
    #[arg(long)]
    pub resume_flux: bool,
    /// How long to wait for the rollout, e.g. 10m
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Where the target image's migration files are read: `image` (the image itself, by a short-lived
    /// pod; the default), or a DIR (a checkout or node_modules of that image's version)
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
}

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub connection: DbConnectionArgs,
    #[command(subcommand)]
    pub command: DbCommand,
}

/// Where the databases are and how to log in; each overrides the environment's `database` block.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Database connection")]
pub struct DbConnectionArgs {
    /// PostgreSQL server host (default: the environment's database.host, else $PGHOST)
    #[arg(long, global = true, value_name = "HOST")]
    pub db_host: Option<String>,
    /// PostgreSQL server port (default: database.port, else $PGPORT, else 5432)
    #[arg(long, global = true, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub db_port: Option<u16>,
    /// Database user (default: database.user, else $PGUSER)
    #[arg(long, global = true, value_name = "USER")]
    pub db_user: Option<String>,
    /// TLS mode, with libpq's meanings (default: database.sslmode, else $PGSSLMODE, else require)
    #[arg(long, global = true, value_enum, value_name = "MODE")]
    pub sslmode: Option<SslMode>,
    /// CA certificate file for verify-ca / verify-full (default: database.sslrootcert, else $PGSSLROOTCERT)
    #[arg(long, global = true, value_name = "FILE")]
    pub sslrootcert: Option<PathBuf>,
    /// One database per plugin, or one database with a schema per plugin (default: database)
    #[arg(long, global = true, value_enum, value_name = "MODE")]
    pub division_mode: Option<DivisionMode>,
    /// Database name prefix in database mode (default: backstage_plugin_)
    #[arg(long, global = true, value_name = "PREFIX")]
    pub database_prefix: Option<String>,
    /// The one database in schema mode (default: backstage)
    #[arg(long, global = true, value_name = "NAME")]
    pub database: Option<String>,
    /// Key Vault holding the password (its name; https://NAME.vault.azure.net/)
    #[arg(long, global = true, value_name = "NAME")]
    pub vault: Option<String>,
    /// The Key Vault secret holding the password
    #[arg(long, global = true, value_name = "NAME")]
    pub secret: Option<String>,
    /// The vault's URL, for other clouds (overrides the URL made from --vault)
    #[arg(long, global = true, value_name = "URL")]
    pub vault_url: Option<String>,
    /// Read the password from this environment variable
    #[arg(long, global = true, value_name = "VAR")]
    pub password_env: Option<String>,
    /// How to sign in to Azure (default: workload identity, service principal, managed identity, then
    /// the Azure CLI, whichever is configured first)
    #[arg(long, global = true, value_enum, value_name = "METHOD")]
    pub azure_auth: Option<AzureAuth>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// The plugin databases (or schemas) on the server, with their migration tables
    List,
    /// Completed, pending and missing migrations and the lock of every migration table (read-only;
    /// exit 1 when something is pending, missing or locked)
    Status(DbStatusArgs),
    /// The current migration version of a plugin, as `knex migrate:currentVersion` computes it
    CurrentVersion(DbCurrentVersionArgs),
    /// What deploying another version means for the databases: migrations that will run at start-up,
    /// and those that must be rolled back first, with the commands (exit 1 when a rollback is needed)
    Plan(DbPlanArgs),
    /// Undo completed migrations with Knex, running the newer code's down() functions
    Rollback(DbRollbackArgs),
    /// Release a Knex migration lock (refused while a backend pod is starting, unless --force)
    Unlock(DbUnlockArgs),
    /// An interactive psql on a plugin's database; arguments after `--` go to psql
    Psql(DbPsqlArgs),
}

#[derive(Debug, Args)]
pub struct DbStatusArgs {
    /// Only these plugins (repeatable)
    #[arg(long = "plugin", value_name = "ID")]
    pub plugins: Vec<String>,
    /// Where the expected migration files come from: `pod` (a running Backstage pod's image; the
    /// default when a cluster is reachable), `pod:NAME`, or a DIR (a node_modules tree, or one migrations
    /// folder with one --plugin)
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Read the files from this pod (same as --source pod:NAME)
    #[arg(long, value_name = "NAME", conflicts_with = "source")]
    pub pod: Option<String>,
}

#[derive(Debug, Args)]
pub struct DbPlanArgs {
    /// The version to move to: a DIR (a checkout or node_modules of that version) or pod:NAME (e.g. a
    /// pull-request image running in a sandbox)
    #[arg(long, value_name = "SOURCE")]
    pub to: String,
    /// Only these plugins (repeatable)
    #[arg(long = "plugin", value_name = "ID")]
    pub plugins: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Runner {
    /// Knex in a running pod of the newer version (over pod exec)
    Pod,
    /// Knex from a local checkout (--source DIR) with local node
    Local,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["migration", "last_batch", "to"])))]
pub struct DbRollbackArgs {
    /// The plugin id, e.g. catalog
    #[arg(long, value_name = "ID")]
    pub plugin: String,
    /// Undo this one completed migration, as `knex migrate:down NAME` (the .js may be left off)
    #[arg(long, value_name = "NAME")]
    pub migration: Option<String>,
    /// Undo the most recent batch, most recently applied first, as `knex migrate:rollback`
    #[arg(long)]
    pub last_batch: bool,
    /// Undo every migration applied after NAME, most recent first; NAME stays applied
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// The migration table (default: knex_migrations)
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Where Knex runs with the newer code
    #[arg(long, value_enum, default_value_t = Runner::Pod)]
    pub runner: Runner,
    /// With --runner local: the newer version's checkout (its node_modules must have knex)
    #[arg(long, value_name = "DIR", required_if_eq("runner", "local"))]
    pub source: Option<PathBuf>,
    /// With --runner pod: the pod to run in (default: the newest running, ready Backstage pod)
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// Do not ask before changing the database
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only print the plan
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DbCurrentVersionArgs {
    /// The plugin id, e.g. catalog
    #[arg(long, value_name = "ID")]
    pub plugin: String,
    /// The migration table (default: every migration table of the plugin)
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
}

#[derive(Debug, Args)]
pub struct DbUnlockArgs {
    /// The plugin id, e.g. catalog
    #[arg(long, value_name = "ID")]
    pub plugin: String,
    /// Only this migration table's lock (default: every held lock of the plugin)
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Release even while a backend pod is starting or when the pods cannot be checked
    #[arg(long)]
    pub force: bool,
    /// Do not ask before releasing (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only print the locks that would be released; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DbPsqlArgs {
    /// The plugin id, e.g. auth
    #[arg(long, value_name = "ID")]
    pub plugin: String,
    /// Arguments for psql, after `--` (e.g. -- -c 'select 1')
    #[arg(last = true, value_name = "PSQL-ARGS")]
    pub args: Vec<String>,
}
