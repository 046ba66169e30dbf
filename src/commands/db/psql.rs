//! `db psql`: the real psql on a plugin's database. The password goes through a temporary password
//! file (mode 0600, removed when psql exits), never through an argument or PGPASSWORD.

use std::io::Write;
use std::process::Stdio;

use super::{Databases, DbCommandError};
use crate::settings::SslMode;

/// Quotes a value for a libpq connection string.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Escapes a field of a password file line.
fn pgpass_field(value: &str) -> String {
    value.replace('\\', "\\\\").replace(':', "\\:")
}

/// Runs psql and returns its exit code.
pub async fn run(
    databases: &Databases,
    plugin: &str,
    args: &[String],
) -> Result<i32, DbCommandError> {
    let target = databases.target(plugin);
    let settings = &databases.settings;
    let dir = tempfile::Builder::new()
        .prefix("kubectl-backstage-")
        .tempdir()
        .map_err(|e| {
            DbCommandError::Refused(format!(
                "cannot create a temporary folder for the password file: {e}"
            ))
        })?;
    let passfile = dir.path().join("pgpass");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&passfile).map_err(|e| {
            DbCommandError::Refused(format!("cannot write the temporary password file: {e}"))
        })?;
        let line = format!(
            "{}:{}:{}:{}:{}\n",
            pgpass_field(&settings.host),
            settings.port,
            pgpass_field(&target.database),
            pgpass_field(&settings.user),
            pgpass_field(databases.password().expose())
        );
        file.write_all(line.as_bytes()).map_err(|e| {
            DbCommandError::Refused(format!("cannot write the temporary password file: {e}"))
        })?;
    }
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
    let mut child = tokio::process::Command::new("psql")
        .arg(conninfo)
        .args(args)
        .env("PGPASSFILE", &passfile)
        .env_remove("PGPASSWORD")
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            DbCommandError::Refused(format!(
                "cannot run psql: {e}; install the PostgreSQL client (psql)"
            ))
        })?;
    // Ctrl-C belongs to psql (it cancels the running query); this process waits, so the password file
    // is always removed.
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tokio::signal::ctrl_c() => continue,
        }
    }
    .map_err(|e| DbCommandError::Refused(format!("psql: {e}")))?;
    drop(dir);
    Ok(status.code().unwrap_or(2))
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
}
