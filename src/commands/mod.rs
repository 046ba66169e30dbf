//! One file per subcommand: gather through the adapters, compute with the pure model, hand a report
//! to the renderer. Each returns whether the check found problems.

pub mod completion;
pub mod db;
pub mod env;
pub mod events;
pub mod health;

/// How a command that ran ended (failures to run are errors instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; for a check: everything healthy.
    Ok,
    /// The check ran and found problems.
    Problems,
    /// A child's exit code, passed through (`db psql`).
    Exit(u8),
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        crate::exit::of_outcome(self)
    }
}
