//! Knex, as Backstage uses it: the pure model of its migrator ([`model`]) and which package's
//! migration files belong to which plugin database and migration table ([`packages`]), and the plans
//! ([`plan`]). No I/O here: the files are read, and Knex is run, by [`crate::migrations`]; the database
//! is read by [`crate::db`].

pub mod model;
pub mod packages;
pub mod plan;

pub use model::{
    CompletedMigration, LockRow, LockState, MigrationRow, MigrationStatus, RollbackError,
    RollbackPlan, RollbackStep, RollbackTarget,
};
pub use packages::{MigrationTableSource, PackageMigrations, PluginDatabases};
