//! Ending database sessions properly. tokio-postgres drives each connection in a task of its own; when
//! the `Client` is dropped, that task sends PostgreSQL's Terminate message and closes the socket — but
//! only if it gets to run. The plugin's runtime ends right after a command, and a task that has not run
//! by then is dropped mid-connection, which the server logs as "connection reset by peer" or
//! "unexpected EOF on client connection". So every connection task is awaited before the runtime ends:
//! [`super::Connection::close`] awaits its own, and [`Sessions::close_all`] the tasks of connections
//! that were dropped without `close`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

/// How long a session may take to send Terminate and close once its client is gone (it does not wait
/// for the server: this only bounds a full socket buffer).
const CLOSE_BOUND: Duration = Duration::from_secs(2);

/// The connection tasks of sessions dropped without [`super::Connection::close`].
#[derive(Debug, Clone, Default)]
pub struct Sessions(Arc<Mutex<Vec<JoinHandle<()>>>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (bounded) until every dropped session has said goodbye to the server.
    pub async fn close_all(&self) {
        let tasks: Vec<_> = self.lock().drain(..).collect();
        for task in tasks {
            finish(task).await;
        }
    }
}

/// The task driving one connection; handed to [`Sessions`] when dropped unawaited.
#[derive(Debug)]
pub(super) struct SessionTask {
    task: Option<JoinHandle<()>>,
    sessions: Sessions,
}

impl SessionTask {
    pub(super) fn new(task: JoinHandle<()>, sessions: &Sessions) -> SessionTask {
        SessionTask {
            task: Some(task),
            sessions: sessions.clone(),
        }
    }

    /// Waits until the connection has ended; call after its client is dropped.
    pub(super) async fn finish(mut self) {
        if let Some(task) = self.task.take() {
            finish(task).await;
        }
    }
}

impl Drop for SessionTask {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.sessions.lock().push(task);
        }
    }
}

async fn finish(mut task: JoinHandle<()>) {
    if tokio::time::timeout(CLOSE_BOUND, &mut task).await.is_err() {
        tracing::debug!("a database session did not close in time");
        task.abort();
    }
}
