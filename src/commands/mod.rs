//! One file per subcommand: gather through the adapters, compute with the pure model, hand a report
//! to the renderer. Each returns whether the check found problems.

pub mod completion;
pub mod confirm;
pub mod db;
pub mod env;
pub mod events;
pub mod guided;
pub mod health;
pub mod multi;
pub mod report;
pub mod verify;
pub mod version;

pub use crate::exit::Outcome;
