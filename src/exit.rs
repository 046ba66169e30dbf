//! The exit-code table of the spec, in one place: every command's end — an [`Outcome`] or an
//! [`Error`] — becomes its code here and nowhere else.

use crate::Error;

/// How a command that ran ended (failures to run are [`Error`]s instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; for a check: everything healthy.
    Ok,
    /// The check ran and found problems.
    Problems,
    /// A command that changes things stopped part-way: some steps were done, and its report says
    /// exactly which were and were not.
    PartlyDone,
    /// A child's exit code, passed through (`db psql`).
    Exit(u8),
    /// A command over several environments could not check at least one of them; its report says
    /// which and why (the others' results are in it too).
    CouldNotRun,
}

impl Outcome {
    /// The worse of two outcomes of the same command in two environments: could not run, then
    /// problems, then ok (a passed-through or part-way code is kept: it only ends one command).
    pub fn worst(self, other: Outcome) -> Outcome {
        fn rank(o: Outcome) -> u8 {
            match o {
                Outcome::Ok => 0,
                Outcome::Problems => 1,
                Outcome::CouldNotRun => 2,
                Outcome::PartlyDone | Outcome::Exit(_) => 3,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Done; for checks: everything healthy / in sync.
pub const OK: u8 = 0;
/// The check ran and found problems.
pub const PROBLEMS: u8 = 1;
/// Could not do the job (bad usage, bad config, unreachable or forbidden, …) and nothing was changed.
pub const COULD_NOT_RUN: u8 = 2;
/// A command that changes things stopped part-way; its report says what was and was not done.
pub const PARTLY_DONE: u8 = 3;

/// The exit code of a command that ran to its end.
pub fn of_outcome(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Ok => OK,
        Outcome::Problems => PROBLEMS,
        Outcome::PartlyDone => PARTLY_DONE,
        Outcome::CouldNotRun => COULD_NOT_RUN,
        // `db psql` passes psql's own code through.
        Outcome::Exit(code) => code,
    }
}

/// Ctrl-C stopped the command (after it cleaned up): 128 + SIGINT, as a shell reports it.
pub const INTERRUPTED: u8 = 130;

/// The exit code of a command that could not run.
pub fn of_error(error: &Error) -> u8 {
    if interrupted(error) {
        return INTERRUPTED;
    }
    match error {
        Error::Settings(_)
        | Error::Kube(_)
        | Error::Db(_)
        | Error::Version(_)
        | Error::Verify(_)
        | Error::Guided(_)
        | Error::Report(_)
        | Error::Runtime(_) => COULD_NOT_RUN,
    }
}

/// Whether the error is an `image:REF` preflight stopped by Ctrl-C.
fn interrupted(error: &Error) -> bool {
    use crate::commands::db::DbCommandError;
    use crate::commands::version::VersionError;
    match error {
        Error::Db(DbCommandError::Source(source)) => source.is_interrupted(),
        Error::Version(VersionError::Source(source)) => source.is_interrupted(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SettingsError;

    #[test]
    fn every_row_of_the_table() {
        assert_eq!(of_outcome(Outcome::Ok), 0);
        assert_eq!(of_outcome(Outcome::Problems), 1);
        assert_eq!(of_outcome(Outcome::PartlyDone), 3);
        assert_eq!(of_outcome(Outcome::Exit(7)), 7);
        assert_eq!(of_outcome(Outcome::CouldNotRun), 2);
        // Several environments: the worst wins, 2 > 1 > 0, whatever the order.
        for (a, b, worst) in [
            (Outcome::Ok, Outcome::Problems, Outcome::Problems),
            (Outcome::Problems, Outcome::Ok, Outcome::Problems),
            (
                Outcome::Problems,
                Outcome::CouldNotRun,
                Outcome::CouldNotRun,
            ),
            (Outcome::CouldNotRun, Outcome::Ok, Outcome::CouldNotRun),
            (Outcome::Ok, Outcome::Ok, Outcome::Ok),
        ] {
            assert_eq!(a.worst(b), worst, "{a:?} {b:?}");
        }
        let usage = Error::Settings(SettingsError::Missing { message: "x" });
        assert_eq!(of_error(&usage), 2);
        let runtime = Error::Runtime(std::io::Error::other("x"));
        assert_eq!(of_error(&runtime), 2);
        let interrupted = crate::migrations::image::ImageSourceError::Interrupted {
            image: "backstage:1".into(),
            pod: "backstage-preflight-x".into(),
        };
        let error = Error::Version(crate::commands::version::VersionError::Source(
            crate::migrations::source::SourceError::Image(interrupted),
        ));
        assert_eq!(of_error(&error), 130);
    }
}
