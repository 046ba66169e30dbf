//! `db psql`: the real psql on a plugin's database.
//!
//! First the plugin's own bounded connect checks that the server answers and that the plugin has a
//! database (or schema), so a dead server or a wrong plugin name is one `error:` line, not a hang or
//! psql's FATAL. Then psql gets a connection string without the password, and the password as a
//! password-file line in a file that never has a name on disk: a memfd on Linux (an already-unlinked
//! temporary file elsewhere on Unix), mode 0600, inherited by psql as descriptor N with
//! `PGPASSFILE=/dev/fd/N`. libpq `stat()`s that path through `/dev/fd`, sees a regular 0600 file
//! and reads it. Whatever kills the plugin — SIGTERM, SIGHUP, even SIGKILL — nothing holding the
//! password is left behind; the memory goes when the last descriptor (psql's) closes. The password is
//! never in psql's arguments or environment: `PGPASSWORD` and the `--password-env` variable are
//! removed from it.
//!
//! Signals: SIGTERM and SIGHUP sent to the plugin are forwarded to psql, and the plugin exits with
//! psql's status (128+S when psql was killed by signal S, as shells report it). SIGINT is different:
//! Ctrl-C on a terminal reaches the whole foreground process group, psql included, and psql uses it
//! to cancel the running query (one cancel request per SIGINT). So SIGINT is forwarded only when the
//! plugin is *not* in its terminal's foreground process group (no terminal, `setsid`, a background
//! job): then it can only have come from `kill`, and psql would not otherwise see it. In the
//! foreground a `kill -INT` of the plugin alone is not forwarded (send it to the process group).

use std::process::Stdio;
use std::time::Duration;

use super::{Databases, DbCommandError, PluginTarget};
use crate::options::SslMode;
use crate::settings::DbSettings;

/// Quotes a value for a libpq connection string.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Escapes a field of a password file line.
fn pgpass_field(value: &str) -> String {
    value.replace('\\', "\\\\").replace(':', "\\:")
}

/// libpq's `connect_timeout`: whole seconds, rounded up, at least 2 (libpq raises 1 to 2 anyway).
fn connect_timeout_seconds(bound: Duration) -> u64 {
    let whole = bound.as_secs() + u64::from(bound.subsec_nanos() > 0);
    whole.max(2)
}

/// psql's connection string: everything but the password.
fn conninfo(settings: &DbSettings, target: &PluginTarget) -> String {
    let mut conninfo = format!(
        "host={} port={} dbname={} user={} sslmode={} application_name='kubectl-backstage psql'",
        conninfo_value(&settings.host),
        settings.port,
        conninfo_value(&target.database),
        conninfo_value(&settings.user),
        match settings.sslmode {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    );
    if let Some(bound) = settings.connect_timeout {
        conninfo.push_str(&format!(
            " connect_timeout={}",
            connect_timeout_seconds(bound)
        ));
    }
    if let Some(root) = &settings.sslrootcert {
        conninfo.push_str(&format!(
            " sslrootcert={}",
            conninfo_value(&root.display().to_string())
        ));
    }
    if let Some(schema) = &target.schema {
        conninfo.push_str(&format!(
            " options={}",
            conninfo_value(&format!("-c search_path={schema}"))
        ));
    }
    conninfo
}

/// The plugin's target, once the server has answered and shown that the plugin has a database (or
/// schema); the connect and the listing are bounded by the connect timeout (see [`crate::db`]).
async fn checked_target(
    databases: &Databases,
    plugin: &str,
) -> Result<PluginTarget, DbCommandError> {
    let mut found = databases.selected(&[plugin.to_string()]).await?;
    Ok(found.remove(0))
}

/// Runs psql and returns the exit code the plugin exits with.
pub async fn run(
    databases: &Databases,
    plugin: &str,
    args: &[String],
) -> Result<i32, DbCommandError> {
    let target = checked_target(databases, plugin).await?;
    let settings = &databases.settings;
    let line = format!(
        "{}:{}:{}:{}:{}\n",
        pgpass_field(&settings.host),
        settings.port,
        pgpass_field(&target.database),
        pgpass_field(&settings.user),
        pgpass_field(databases.password().expose())
    );
    let mut command = tokio::process::Command::new("psql");
    command
        .arg(conninfo(settings, &target))
        .args(args)
        .env_remove("PGPASSWORD")
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    if let Some(name) = &settings.password.env_var {
        command.env_remove(name);
    }
    platform::run(command, line.as_bytes()).await
}

fn cannot_run_psql(cause: std::io::Error) -> DbCommandError {
    DbCommandError::CannotRunPsql { cause }
}

fn password_file_error(cause: std::io::Error) -> DbCommandError {
    DbCommandError::PsqlPasswordFile { cause }
}

fn psql_wait_error(cause: std::io::Error) -> DbCommandError {
    DbCommandError::PsqlWait { cause }
}

#[cfg(unix)]
mod platform {
    use std::fs::File;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;

    use rustix::fs::Mode;
    use rustix::io::FdFlags;
    use rustix::process::{Pid, Signal};
    use tokio::signal::unix::{SignalKind, signal};

    use super::{DbCommandError, cannot_run_psql, password_file_error, psql_wait_error};

    /// A file that has no name anywhere: a memfd.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    fn nameless_file() -> std::io::Result<File> {
        let fd =
            rustix::fs::memfd_create("kubectl-backstage-pgpass", rustix::fs::MemfdFlags::CLOEXEC)?;
        Ok(File::from(fd))
    }

    /// A file that has no name anywhere: unlinked before anything is written to it.
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    fn nameless_file() -> std::io::Result<File> {
        tempfile::tempfile()
    }

    /// The password file psql inherits: nameless, 0600 (libpq ignores a file with group or other
    /// bits), read from the start, and not closed on exec.
    fn password_descriptor(contents: &[u8]) -> std::io::Result<OwnedFd> {
        let mut file = nameless_file()?;
        // A memfd starts as 0777; libpq would refuse it.
        rustix::fs::fchmod(&file, Mode::from_raw_mode(0o600))?;
        file.write_all(contents)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(OwnedFd::from(file))
    }

    /// Whether a SIGINT of ours came from the terminal, which delivered it to psql too: we are in the
    /// foreground process group of our controlling terminal.
    fn terminal_interrupts_psql() -> bool {
        let Ok(tty) = File::open("/dev/tty") else {
            return false;
        };
        rustix::termios::tcgetpgrp(tty.as_fd())
            .is_ok_and(|group| group == rustix::process::getpgrp())
    }

    fn forward(pid: Option<Pid>, sig: Signal) {
        if let Some(pid) = pid {
            tracing::info!(signal = sig.as_raw(), "forwarding a signal to psql");
            // psql may have exited already; its status is collected next.
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    pub async fn run(
        mut command: tokio::process::Command,
        pgpass_line: &[u8],
    ) -> Result<i32, DbCommandError> {
        let listen = |kind| signal(kind).map_err(|cause| DbCommandError::PsqlSignals { cause });
        // Before psql starts, so no signal between its start and ours is lost (or kills the plugin).
        let mut term = listen(SignalKind::terminate())?;
        let mut hup = listen(SignalKind::hangup())?;
        let mut int = listen(SignalKind::interrupt())?;

        let descriptor = password_descriptor(pgpass_line).map_err(password_file_error)?;
        command.env("PGPASSFILE", format!("/dev/fd/{}", descriptor.as_raw_fd()));
        // Inherited by psql only: nothing else is started while this descriptor is open.
        rustix::io::fcntl_setfd(&descriptor, FdFlags::empty())
            .map_err(|e| password_file_error(e.into()))?;
        let spawned = command.spawn();
        drop(descriptor);
        let mut child = spawned.map_err(cannot_run_psql)?;
        let pid = child
            .id()
            .and_then(|id| Pid::from_raw(i32::try_from(id).ok()?));

        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(()) = term.recv() => forward(pid, Signal::TERM),
                Some(()) = hup.recv() => forward(pid, Signal::HUP),
                Some(()) = int.recv() => {
                    if !terminal_interrupts_psql() {
                        forward(pid, Signal::INT);
                    }
                }
            }
        }
        .map_err(psql_wait_error)?;
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 2,
        })
    }
}

#[cfg(not(unix))]
mod platform {
    use std::io::Write;

    use super::{DbCommandError, cannot_run_psql, password_file_error, psql_wait_error};

    /// Without `/dev/fd`, a named temporary file removed when psql exits.
    pub async fn run(
        mut command: tokio::process::Command,
        pgpass_line: &[u8],
    ) -> Result<i32, DbCommandError> {
        let mut file = tempfile::NamedTempFile::new().map_err(password_file_error)?;
        file.write_all(pgpass_line)
            .and_then(|()| file.flush())
            .map_err(password_file_error)?;
        command.env("PGPASSFILE", file.path());
        let mut child = command.spawn().map_err(cannot_run_psql)?;
        // Ctrl-C belongs to psql (it cancels the running query).
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = tokio::signal::ctrl_c() => continue,
            }
        }
        .map_err(psql_wait_error)?;
        drop(file);
        Ok(status.code().unwrap_or(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_libpq() {
        assert_eq!(conninfo_value("plain"), "'plain'");
        assert_eq!(conninfo_value("it's a \\ b"), "'it\\'s a \\\\ b'");
        assert_eq!(pgpass_field("a:b\\c"), "a\\:b\\\\c");
    }

    #[test]
    fn connect_timeout_is_whole_seconds_rounded_up_and_at_least_two() {
        let cases = [
            (500, 2),
            (1000, 2),
            (2000, 2),
            (2001, 3),
            (2500, 3),
            (30_000, 30),
        ];
        for (millis, seconds) in cases {
            assert_eq!(
                connect_timeout_seconds(Duration::from_millis(millis)),
                seconds,
                "{millis} ms"
            );
        }
    }
}
