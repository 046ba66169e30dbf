//! The question asked before a command changes the database. Reading the answer blocks, and the
//! single-threaded runtime that runs the command also drives its open database connections, so the
//! terminal is read on a blocking thread while the runtime goes on.

use std::io::{BufRead, IsTerminal, Write};

/// Why the command did not go ahead; nothing was changed (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum NotConfirmed {
    /// No terminal to ask on, and no `--yes`.
    #[error(
        "refusing to change the database without confirmation: stdin is not a terminal; pass --yes (or --dry-run to only see the plan)"
    )]
    NoTerminal,
    /// The answer was not yes.
    #[error("not confirmed; nothing was changed")]
    Declined,
    #[error("cannot read the answer: {0}")]
    CannotRead(#[source] std::io::Error),
}

/// Asks `question` (`[y/N]` is added) on stderr and reads the answer from the terminal; refuses
/// when stdin is not a terminal.
pub async fn confirm(question: String) -> Result<(), NotConfirmed> {
    if !std::io::stdin().is_terminal() {
        return Err(NotConfirmed::NoTerminal);
    }
    ask(question, || std::io::stdin().lock()).await
}

/// Asks on stderr and reads one line from `reader`, on a blocking thread.
pub async fn ask<R, F>(question: String, reader: F) -> Result<(), NotConfirmed>
where
    R: BufRead,
    F: FnOnce() -> R + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        crate::render::question(&question);
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        reader()
            .read_line(&mut answer)
            .map_err(NotConfirmed::CannotRead)?;
        if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            Err(NotConfirmed::Declined)
        }
    })
    .await
    .map_err(|e| NotConfirmed::CannotRead(std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A terminal whose answer is typed by a task of the runtime itself.
    struct Typed(mpsc::Receiver<Vec<u8>>, Vec<u8>);

    impl Read for Typed {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1.is_empty() {
                // Only a guard against a hang: if the question blocked the runtime, the task that
                // types the answer never runs.
                self.1 = self
                    .0
                    .recv_timeout(Duration::from_secs(60))
                    .map_err(|_| std::io::Error::other("the runtime was blocked"))?;
            }
            let n = self.1.len().min(buf.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }

    fn answer(typed: &'static str) -> Result<(), NotConfirmed> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (tx, rx) = mpsc::channel();
            // Stands for the database connection task: it must keep running while the question waits.
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                tx.send(typed.as_bytes().to_vec()).unwrap();
            });
            ask("Release 1 lock?".into(), move || {
                std::io::BufReader::new(Typed(rx, Vec::new()))
            })
            .await
        })
    }

    #[test]
    fn messages_are_one_lowercase_line() {
        assert_eq!(
            NotConfirmed::NoTerminal.to_string(),
            "refusing to change the database without confirmation: stdin is not a terminal; pass --yes (or --dry-run to only see the plan)"
        );
        assert_eq!(
            NotConfirmed::Declined.to_string(),
            "not confirmed; nothing was changed"
        );
        assert_eq!(
            NotConfirmed::CannotRead(std::io::Error::other("closed")).to_string(),
            "cannot read the answer: closed"
        );
    }

    #[test]
    fn the_runtime_keeps_running_while_the_question_waits() {
        assert!(answer("y\n").is_ok());
        assert!(answer("YES\n").is_ok());
        assert!(matches!(answer("n\n"), Err(NotConfirmed::Declined)));
        assert!(matches!(answer("\n"), Err(NotConfirmed::Declined)));
    }
}
