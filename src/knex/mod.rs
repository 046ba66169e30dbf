//! Knex, as Backstage uses it: the pure model of its migrator ([`model`]) and which package's
//! migration files belong to which plugin database and migration table ([`packages`]). No I/O here;
//! the database and the pod's files are read by the adapters.

pub mod model;
pub mod packages;
pub mod plan;
pub mod pod;
pub mod runner;
pub mod source;

pub use model::{
    CompletedMigration, LockRow, LockState, MigrationRow, MigrationStatus, RollbackError,
    RollbackPlan, RollbackStep, RollbackTarget,
};
pub use packages::{MigrationTableSource, PackageMigrations, PluginDatabases};
