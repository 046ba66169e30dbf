//! Known Backstage start-up failures, recognised in a crashed container's previous log.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// Why a Backstage backend failed to start, as far as its log tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum StartupFailure {
    /// Knex found migrations in the database that the image's files lack: the database is ahead of the
    /// code (a downgrade without a rollback).
    #[serde(rename_all = "camelCase")]
    CorruptMigrationDirectory {
        plugin: Option<String>,
        missing_files: Vec<String>,
    },
    /// Knex's migration lock is held, by another pod migrating or by a crash mid-migration.
    #[serde(rename_all = "camelCase")]
    MigrationLocked { plugin: Option<String> },
    /// The database refused the credentials.
    #[serde(rename_all = "camelCase")]
    DatabaseAuthentication {
        plugin: Option<String>,
        user: Option<String>,
    },
    /// The database could not be reached or opened.
    #[serde(rename_all = "camelCase")]
    DatabaseConnection {
        plugin: Option<String>,
        detail: String,
    },
    /// A plugin's start-up threw for another reason.
    #[serde(rename_all = "camelCase")]
    PluginStartup { plugin: String, cause: String },
}

static CORRUPT: LazyLock<Regex> = LazyLock::new(|| {
    // The list ends at the end of the line, or where a JSON string ends (`"`) or escapes the next
    // character (`\n    at Migrator…` of a stack in a JSON log line).
    Regex::new(
        r"The migration directory is corrupt, the following files are missing: ([^\n\r\x22\\]*)",
    )
    .unwrap()
});
static LOCKED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Migration table is already locked").unwrap());
static AUTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"password authentication failed for user \\?"([^"\\]+)\\?"|no pg_hba\.conf entry for host"#).unwrap()
});
static CONNECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"connect (ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH) [^\s"\\]+|getaddrinfo (ENOTFOUND|EAI_AGAIN) [^\s"\\]+|database \\?"[^"\\]+\\?" does not exist|Knex: Timeout acquiring a connection|self[- ]signed certificate in certificate chain|The server does not support SSL connections"#).unwrap()
});
static PLUGIN_STARTUP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Plugin '([^']+)' startup failed; caused by (?:\w*Error: )?([^\n\x22]*)").unwrap()
});
static PLUGIN_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"Plugin '([^']+)' startup failed|"plugin"\s*:\s*"([^"]+)"|\bplugin=([\w-]+)"#)
        .unwrap()
});

/// Lines looked at above a failure to find which plugin it belongs to.
const PLUGIN_LOOKBACK: usize = 30;

/// The most specific known failure in the log, if any.
pub fn diagnose(log: &str) -> Option<StartupFailure> {
    let lines: Vec<&str> = log.lines().collect();
    let find_last = |re: &Regex| lines.iter().rposition(|l| re.is_match(l));

    if let Some(i) = find_last(&CORRUPT) {
        let caps = CORRUPT.captures(lines[i]).expect("matched above");
        let missing_files = caps[1]
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        return Some(StartupFailure::CorruptMigrationDirectory {
            plugin: plugin_near(&lines, i),
            missing_files,
        });
    }
    if let Some(i) = find_last(&LOCKED) {
        return Some(StartupFailure::MigrationLocked {
            plugin: plugin_near(&lines, i),
        });
    }
    if let Some(i) = find_last(&AUTH) {
        let user = AUTH
            .captures(lines[i])
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_string());
        return Some(StartupFailure::DatabaseAuthentication {
            plugin: plugin_near(&lines, i),
            user,
        });
    }
    if let Some(i) = find_last(&CONNECTION) {
        let detail = CONNECTION
            .find(lines[i])
            .expect("matched above")
            .as_str()
            .replace('\\', "");
        return Some(StartupFailure::DatabaseConnection {
            plugin: plugin_near(&lines, i),
            detail,
        });
    }
    if let Some(i) = find_last(&PLUGIN_STARTUP) {
        let caps = PLUGIN_STARTUP.captures(lines[i]).expect("matched above");
        return Some(StartupFailure::PluginStartup {
            plugin: caps[1].to_string(),
            cause: caps[2].trim().to_string(),
        });
    }
    None
}

/// The plugin named on the failing line, else on the nearest line above it.
fn plugin_near(lines: &[&str], index: usize) -> Option<String> {
    let start = index.saturating_sub(PLUGIN_LOOKBACK);
    lines[start..=index].iter().rev().find_map(|line| {
        PLUGIN_NAME.captures(line).and_then(|c| {
            c.iter()
                .skip(1)
                .flatten()
                .next()
                .map(|m| m.as_str().to_string())
        })
    })
}

impl StartupFailure {
    pub fn plugin(&self) -> Option<&str> {
        match self {
            StartupFailure::CorruptMigrationDirectory { plugin, .. }
            | StartupFailure::MigrationLocked { plugin }
            | StartupFailure::DatabaseAuthentication { plugin, .. }
            | StartupFailure::DatabaseConnection { plugin, .. } => plugin.as_deref(),
            StartupFailure::PluginStartup { plugin, .. } => Some(plugin),
        }
    }

    /// One line saying what the log shows.
    pub fn summary(&self) -> String {
        let of_plugin = self
            .plugin()
            .map(|p| format!(" of plugin {p}"))
            .unwrap_or_default();
        match self {
            StartupFailure::CorruptMigrationDirectory { missing_files, .. } => format!(
                "the migration directory{of_plugin} is corrupt: the database has migrations this image lacks ({})",
                missing_files.join(", ")
            ),
            StartupFailure::MigrationLocked { .. } => {
                format!("the Knex migration lock{of_plugin} is held")
            }
            StartupFailure::DatabaseAuthentication { user, .. } => match user {
                Some(user) => {
                    format!("the database refused the password of user {user}{of_plugin}")
                }
                None => {
                    format!("the database refused the connection{of_plugin} (no pg_hba.conf entry)")
                }
            },
            StartupFailure::DatabaseConnection { detail, .. } => {
                format!("cannot connect to the database{of_plugin}: {detail}")
            }
            StartupFailure::PluginStartup { plugin, cause } => {
                format!("plugin {plugin} failed to start: {cause}")
            }
        }
    }

    /// What to run next.
    pub fn hint(&self, pod: &str, container: &str) -> String {
        let plugin = self.plugin().unwrap_or("<plugin>");
        match self {
            StartupFailure::CorruptMigrationDirectory { .. } => format!(
                "the database is ahead of this image (a crash-looping pod cannot be read): see what must be undone with `kubectl backstage db plan --to DIR` (a checkout of this image's version), then undo it with the newer code: `kubectl backstage db rollback --plugin {plugin} --to <last migration this image has>`"
            ),
            StartupFailure::MigrationLocked { .. } => format!(
                "if no other pod is migrating, release the lock: `kubectl backstage db unlock --plugin {plugin}`"
            ),
            StartupFailure::DatabaseAuthentication { .. } => format!(
                "check the password secret the pod uses; try the credentials with `kubectl backstage db psql --plugin {plugin}`"
            ),
            StartupFailure::DatabaseConnection { .. } => format!(
                "check the database host, firewall and TLS settings; try them with `kubectl backstage db psql --plugin {plugin}`"
            ),
            StartupFailure::PluginStartup { .. } => {
                format!("read the whole error: `kubectl logs {pod} -c {container} --previous`")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG_MISSING: [&str; 2] = [
        "20241003170511_alter_target_in_locations.js",
        "20250102120000_refresh_state_index.js",
    ];

    /// A corrupt migration directory of `plugin`, missing `files`.
    fn corrupt(plugin: &str, files: &[&str]) -> Option<StartupFailure> {
        Some(StartupFailure::CorruptMigrationDirectory {
            plugin: Some(plugin.into()),
            missing_files: files.iter().map(|f| f.to_string()).collect(),
        })
    }

    #[test]
    fn corrupt_migration_directory_with_plugin_from_new_backend_system() {
        let log = "{\"level\":\"info\",\"message\":\"Performing database migration\",\"plugin\":\"catalog\"}\n\
Backend failed to start up Error: Plugin 'catalog' startup failed; caused by Error: The migration directory is corrupt, the following files are missing: 20241003170511_alter_target_in_locations.js, 20250102120000_refresh_state_index.js\n\
    at Migrator._validateMigrationList (/app/node_modules/knex/lib/migrations/migrate/Migrator.js:573:13)\n";
        assert_eq!(diagnose(log), corrupt("catalog", &CATALOG_MISSING));
    }

    #[test]
    fn corrupt_migration_directory_in_a_json_log_line() {
        let log = r#"{"level":"error","message":"Backend failed to start up","error":"Error: The migration directory is corrupt, the following files are missing: 20230428155633_sessions.js","plugin":"auth"}"#;
        assert_eq!(
            diagnose(log),
            corrupt("auth", &["20230428155633_sessions.js"])
        );
    }

    #[test]
    fn corrupt_migration_directory_in_a_json_stack() {
        let log = r#"{"level":"error","message":"Plugin 'catalog' startup failed","stack":"Error: The migration directory is corrupt, the following files are missing: 20241003170511_alter_target_in_locations.js, 20250102120000_refresh_state_index.js\n    at Migrator._validateMigrationList (/app/node_modules/knex/lib/migrations/migrate/Migrator.js:573:13)","plugin":"catalog"}"#;
        assert_eq!(diagnose(log), corrupt("catalog", &CATALOG_MISSING));
    }

    #[test]
    fn lock_auth_connection_and_plugin_failures() {
        assert_eq!(
            diagnose(
                "Plugin 'scaffolder' startup failed; caused by MigrationLocked: Migration table is already locked"
            ),
            Some(StartupFailure::MigrationLocked {
                plugin: Some("scaffolder".into())
            })
        );
        assert_eq!(
            diagnose(
                "x\nPlugin 'auth' startup failed; caused by error: password authentication failed for user \"pgadmin\""
            ),
            Some(StartupFailure::DatabaseAuthentication {
                plugin: Some("auth".into()),
                user: Some("pgadmin".into())
            })
        );
        assert_eq!(
            diagnose(
                r#"{"message":"Failed to connect: connect ECONNREFUSED 10.1.2.3:5432","plugin":"search"}"#
            ),
            Some(StartupFailure::DatabaseConnection {
                plugin: Some("search".into()),
                detail: "connect ECONNREFUSED 10.1.2.3:5432".into()
            })
        );
        assert_eq!(
            diagnose(
                "Backend failed to start up Error: Plugin 'techdocs' startup failed; caused by TypeError: Cannot read properties of undefined (reading 'x')"
            ),
            Some(StartupFailure::PluginStartup {
                plugin: "techdocs".into(),
                cause: "Cannot read properties of undefined (reading 'x')".into()
            })
        );
        assert_eq!(diagnose("all good\nlistening on :7007\n"), None);
    }

    #[test]
    fn hints_name_the_command_that_helps() {
        let f = StartupFailure::MigrationLocked {
            plugin: Some("catalog".into()),
        };
        assert!(
            f.hint("p", "c")
                .contains("kubectl backstage db unlock --plugin catalog")
        );
        let f = StartupFailure::CorruptMigrationDirectory {
            plugin: Some("catalog".into()),
            missing_files: vec![],
        };
        assert!(
            f.hint("p", "c")
                .contains("kubectl backstage db rollback --plugin catalog")
        );
        assert!(f.hint("p", "c").contains("kubectl backstage db plan"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Knex migration file names: no comma, quote, backslash or space.
        fn file_name() -> impl Strategy<Value = String> {
            "[0-9]{14}_[a-z][a-z_]{0,24}\\.(js|cjs|ts)"
        }

        /// Pieces of the lines the patterns look for, to be put together in any order.
        const FRAGMENTS: &[&str] = &[
            "Plugin '",
            "catalog",
            "' startup failed; caused by ",
            "TypeError: ",
            "The migration directory is corrupt, the following files are missing: ",
            "1_a.js",
            ", ",
            ",",
            "\"plugin\":\"",
            "\"",
            "\\",
            "\\n",
            "plugin=",
            "password authentication failed for user ",
            "no pg_hba.conf entry for host",
            "connect ECONNREFUSED ",
            "getaddrinfo ENOTFOUND ",
            "database ",
            " does not exist",
            "Migration table is already locked",
            "\r",
            " ",
            "\u{e9}",
            "\u{1F600}",
        ];

        /// How a Backstage backend prints the Knex error on one line.
        fn framed(list: &str, frame: usize, prefix: &str) -> String {
            let error = format!(
                "The migration directory is corrupt, the following files are missing: {list}"
            );
            match frame {
                0 => format!("{prefix}{error}"),
                1 => format!("{prefix}{error}\r"),
                2 => format!(
                    "Backend failed to start up Error: Plugin 'catalog' startup failed; caused by Error: {error}"
                ),
                3 => format!(
                    r#"{{"level":"error","message":"Backend failed to start up","error":"Error: {error}","plugin":"auth"}}"#
                ),
                4 => format!(
                    r#"{{"level":"error","message":"Plugin 'catalog' startup failed","stack":"Error: {error}\n    at Migrator._validateMigrationList (/app/node_modules/knex/lib/migrations/migrate/Migrator.js:573:13)\n    at Migrator.latest (/app/node_modules/knex/lib/migrations/migrate/Migrator.js:71:7)","service":"backstage"}}"#
                ),
                _ => format!(r#"{{"message":"{{\"error\":\"{error}\"}}","level":"error"}}"#),
            }
        }

        proptest! {
            #[test]
            fn never_panics_on_any_log(log in any::<String>()) {
                let _ = diagnose(&log);
            }

            #[test]
            fn never_panics_on_log_like_lines(lines in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..8)
                    .prop_map(|parts| parts.concat()),
                0..40,
            )) {
                let _ = diagnose(&lines.join("\n"));
            }

            #[test]
            fn missing_files_are_read_exactly(
                files in proptest::collection::vec(file_name(), 1..5),
                before in proptest::collection::vec("[^\n]{0,60}", 0..20),
                after in proptest::collection::vec("[^\n]{0,60}", 0..20),
                frame in 0usize..6,
                prefix in "[^\n\"]{0,30}",
            ) {
                let mut lines = before;
                lines.push(framed(&files.join(", "), frame, &prefix));
                lines.extend(after);
                let log = lines.join("\n");
                match diagnose(&log) {
                    Some(StartupFailure::CorruptMigrationDirectory { missing_files, .. }) => {
                        prop_assert_eq!(missing_files, files);
                    }
                    other => prop_assert!(false, "{:?} from {:?}", other, log),
                }
            }
        }
    }
}
