//! Known Backstage start-up failures, recognised in a container's log: the previous log of a crashed
//! container, or the current log of a backend that keeps running after a plugin failed to start (what
//! Backstage's new backend system does: it logs the error and a `BackendStartupError`, stays alive and
//! never becomes ready — or, when only the scheduler's migrations are locked, even becomes ready).

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
    /// Knex's migration lock is held, by another pod migrating or by a crash mid-migration. `table`
    /// is set when the log shows which migration table it was (the scheduler's, whose lock fails
    /// after start-up, outside any plugin, so the log names no plugin).
    #[serde(rename_all = "camelCase")]
    MigrationLocked {
        plugin: Option<String>,
        table: Option<String>,
    },
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
    Regex::new(r#"Plugin '([^']+)' (?:startup failed|threw an error during startup)|"plugin"\s*:\s*"([^"]+)"|\bplugin=([\w-]+)"#)
        .unwrap()
});
/// The plugin a failure line itself names, as the backend's initializer writes it.
static FAILED_PLUGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Plugin '([^']+)' (?:startup failed|threw an error during startup)").unwrap()
});
/// The backend's text format colours its fields even when stdout is not a terminal.
static ANSI: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap());
/// A `key=` left at the end of a cause cut at a quote in the text format.
static TRAILING_FIELD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+\w+=$").unwrap());

/// The task scheduler's migration table (in every plugin database that schedules tasks).
pub const SCHEDULER_TABLE: &str = "backstage_backend_tasks__knex_migrations";
/// The migration table of the `core.auth` service's key store (in every plugin database).
pub const PUBLIC_KEYS_TABLE: &str = "backstage_backend_public_keys__knex_migrations";
/// How the backend says the `core.auth` service of a plugin could not be made.
const AUTH_SERVICE_FAILED: &str = "Failed to instantiate service 'core.auth'";
/// Logged once every plugin has started (or failed); a lock failure after it is not a plugin's own.
const INITIALIZATION_COMPLETE: &str = "Plugin initialization complete";

/// Lines looked at above a failure to find which plugin it belongs to.
const PLUGIN_LOOKBACK: usize = 30;

/// The most specific known failure in the log, if any.
pub fn diagnose(log: &str) -> Option<StartupFailure> {
    let log = ANSI.replace_all(log, "");
    let lines: Vec<&str> = log.lines().collect();
    let find_last = |re: &Regex| lines.iter().rposition(|l| re.is_match(l));

    if let Some(i) = find_last(&CORRUPT) {
        let caps = CORRUPT.captures(lines[i]).expect("matched above");
        // Names end at a space: the text format goes on with its fields (` type="…"`).
        let missing_files = caps[1]
            .split(',')
            .filter_map(|f| f.split_whitespace().next())
            .map(str::to_string)
            .collect();
        return Some(StartupFailure::CorruptMigrationDirectory {
            plugin: plugin_near(&lines, i),
            missing_files,
        });
    }
    if let Some(i) = find_last(&LOCKED) {
        // A plugin's own lock fails inside its start-up, and the line says which plugin. The
        // scheduler migrates its table lazily, after every plugin has started: then the line is a
        // bare unhandled rejection, and the plugins named above it have nothing to do with it.
        if let Some(caps) = FAILED_PLUGIN.captures(lines[i]) {
            // The plugin's own table, unless the lock failed inside its `core.auth` service: then
            // it is the key store's.
            let table = lines[i]
                .contains(AUTH_SERVICE_FAILED)
                .then(|| PUBLIC_KEYS_TABLE.to_string());
            return Some(StartupFailure::MigrationLocked {
                plugin: Some(caps[1].to_string()),
                table,
            });
        }
        if lines[..i]
            .iter()
            .any(|l| l.contains(INITIALIZATION_COMPLETE))
        {
            return Some(StartupFailure::MigrationLocked {
                plugin: None,
                table: Some(SCHEDULER_TABLE.to_string()),
            });
        }
        return Some(StartupFailure::MigrationLocked {
            plugin: plugin_near(&lines, i),
            table: None,
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
            cause: TRAILING_FIELD.replace(caps[2].trim(), "").into_owned(),
        });
    }
    None
}

/// Lines a backend writes when a plugin failed during its start-up.
static STARTUP_FAILED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"threw an error during startup|Backend startup failed|BackendStartupError|Backend failed to start up").unwrap()
});

/// The known start-up failure in the current log of a container that runs on. A Knex migration error
/// only happens at start-up; a database error counts only when the log shows that start-up failed,
/// so a connection hiccup a healthy backend logged later is not taken for one.
pub fn diagnose_running(log: &str) -> Option<StartupFailure> {
    let found = diagnose(log)?;
    match found {
        StartupFailure::CorruptMigrationDirectory { .. }
        | StartupFailure::MigrationLocked { .. }
        | StartupFailure::PluginStartup { .. } => Some(found),
        StartupFailure::DatabaseAuthentication { .. }
        | StartupFailure::DatabaseConnection { .. } => {
            STARTUP_FAILED.is_match(log).then_some(found)
        }
    }
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
            | StartupFailure::MigrationLocked { plugin, .. }
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
            StartupFailure::MigrationLocked {
                table: Some(table), ..
            } if table == SCHEDULER_TABLE => format!(
                "the Knex migration lock of the scheduler's table {table}{of_plugin} is held"
            ),
            StartupFailure::MigrationLocked {
                table: Some(table), ..
            } => format!("the Knex migration lock of table {table}{of_plugin} is held"),
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

    /// What to run next, for a failure read from `origin`'s log of `container` in `pod`, whose spec
    /// names `image` (empty when unknown).
    pub fn hint(&self, pod: &str, container: &str, image: &str, origin: LogOrigin) -> String {
        let plugin = self.plugin().unwrap_or("<plugin>");
        // A backend that keeps running after a plugin failed never retries it: after the fix, the
        // pod has to start again.
        let restart = match origin {
            LogOrigin::Previous => String::new(),
            LogOrigin::Current { .. } => format!(
                ", then restart the pod (the backend does not retry): `kubectl delete pod {pod}`"
            ),
        };
        // `db unlock` counts a running pod that is not ready as starting (it may hold the lock).
        let force = match origin {
            LogOrigin::Current { ready: false } => " --force",
            _ => "",
        };
        match self {
            StartupFailure::CorruptMigrationDirectory { .. } => match origin {
                // A crash-looping pod cannot be read, but its image can, in a preflight pod.
                LogOrigin::Previous if !image.is_empty() => format!(
                    "the database is ahead of this image: see what must be undone with `kubectl backstage db plan --to image:{image}`, then undo it with the newer code: `kubectl backstage db rollback --plugin {plugin} --to <last migration this image has>`"
                ),
                LogOrigin::Previous => format!(
                    "the database is ahead of this image (a crash-looping pod cannot be read): see what must be undone with `kubectl backstage db plan --to DIR` (a checkout of this image's version), then undo it with the newer code: `kubectl backstage db rollback --plugin {plugin} --to <last migration this image has>`"
                ),
                LogOrigin::Current { .. } => format!(
                    "the database is ahead of this image: see what must be undone with `kubectl backstage db plan --to pod:{pod}`, undo it with the newer code: `kubectl backstage db rollback --plugin {plugin} --to <last migration this image has>`{restart}"
                ),
            },
            StartupFailure::MigrationLocked {
                table: Some(table),
                plugin: None,
            } => format!(
                "see which plugin database holds it with `kubectl backstage db status`; if no other pod is migrating, release it: `kubectl backstage db unlock --plugin <plugin> --table {table}{force}`{restart}"
            ),
            StartupFailure::MigrationLocked {
                table: Some(table), ..
            } => format!(
                "if no other pod is migrating, release it: `kubectl backstage db unlock --plugin {plugin} --table {table}{force}`{restart}"
            ),
            StartupFailure::MigrationLocked { .. } => format!(
                "if no other pod is migrating, release the lock: `kubectl backstage db unlock --plugin {plugin}{force}`{restart}"
            ),
            StartupFailure::DatabaseAuthentication { .. } => format!(
                "check the password secret the pod uses; try the credentials with `kubectl backstage db psql --plugin {plugin}`"
            ),
            StartupFailure::DatabaseConnection { .. } => format!(
                "check the database host, firewall and TLS settings; try them with `kubectl backstage db psql --plugin {plugin}`"
            ),
            StartupFailure::PluginStartup { .. } => match origin {
                LogOrigin::Previous => {
                    format!("read the whole error: `kubectl logs {pod} -c {container} --previous`")
                }
                LogOrigin::Current { .. } => {
                    format!("read the whole error: `kubectl logs {pod} -c {container}`{restart}")
                }
            },
        }
    }
}

/// Which log a failure was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOrigin {
    /// The previous run of a container that crashed or restarted.
    Previous,
    /// The run going on now, of a container that is `ready` or not.
    Current { ready: bool },
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
                plugin: Some("scaffolder".into()),
                table: None,
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
            table: None,
        };
        assert!(
            f.hint("p", "c", "", LogOrigin::Previous)
                .contains("kubectl backstage db unlock --plugin catalog")
        );
        let f = StartupFailure::CorruptMigrationDirectory {
            plugin: Some("catalog".into()),
            missing_files: vec![],
        };
        assert!(
            f.hint("p", "c", "", LogOrigin::Previous)
                .contains("kubectl backstage db rollback --plugin catalog")
        );
        assert!(
            f.hint("p", "c", "", LogOrigin::Previous)
                .contains("kubectl backstage db plan --to DIR")
        );
        // The crashing pod's image is read in a preflight pod.
        assert_eq!(
            f.hint(
                "p",
                "c",
                "acr.example.io/backstage:prod-5f3c2a1-20261122110000",
                LogOrigin::Previous
            ),
            "the database is ahead of this image: see what must be undone with `kubectl backstage db plan --to image:acr.example.io/backstage:prod-5f3c2a1-20261122110000`, then undo it with the newer code: `kubectl backstage db rollback --plugin catalog --to <last migration this image has>`"
        );
    }

    /// Logs of a real Backstage 1.55.0 backend (testkit/fixtures/backend-logs/README.md), in its
    /// text format (coloured) and its production format (JSON lines).
    macro_rules! captured {
        ($name:literal) => {
            [
                include_str!(concat!(
                    "../../testkit/fixtures/backend-logs/",
                    $name,
                    ".text.log"
                )),
                include_str!(concat!(
                    "../../testkit/fixtures/backend-logs/",
                    $name,
                    ".production.log"
                )),
            ]
        };
    }

    #[test]
    fn real_backend_corrupt_migration_directory() {
        for log in captured!("corrupt") {
            assert_eq!(
                diagnose(log),
                corrupt(
                    "catalog",
                    &[
                        "20270105120000_entities_relations_index.js",
                        "20270110090000_refresh_state_keys.js"
                    ]
                )
            );
        }
    }

    #[test]
    fn real_backend_catalog_lock_held() {
        for log in captured!("locked") {
            assert_eq!(
                diagnose(log),
                Some(StartupFailure::MigrationLocked {
                    plugin: Some("catalog".into()),
                    table: None,
                })
            );
        }
    }

    #[test]
    fn real_backend_public_keys_lock_held_names_the_plugin_and_the_key_store_table() {
        for log in captured!("public-keys-locked") {
            let found = diagnose(log).unwrap();
            assert_eq!(
                found,
                StartupFailure::MigrationLocked {
                    plugin: Some("catalog".into()),
                    table: Some(PUBLIC_KEYS_TABLE.into()),
                }
            );
            assert_eq!(
                found.summary(),
                "the Knex migration lock of table backstage_backend_public_keys__knex_migrations of plugin catalog is held"
            );
            assert_eq!(
                found.hint("p", "c", "", LogOrigin::Current { ready: false }),
                "if no other pod is migrating, release it: `kubectl backstage db unlock --plugin catalog --table backstage_backend_public_keys__knex_migrations --force`, then restart the pod (the backend does not retry): `kubectl delete pod p`"
            );
        }
    }

    #[test]
    fn real_backend_scheduler_lock_held_names_the_table_not_a_neighbouring_plugin() {
        for log in captured!("scheduler-locked") {
            let found = diagnose(log);
            assert_eq!(
                found,
                Some(StartupFailure::MigrationLocked {
                    plugin: None,
                    table: Some(SCHEDULER_TABLE.into()),
                })
            );
            let found = found.unwrap();
            assert_eq!(
                found.summary(),
                "the Knex migration lock of the scheduler's table backstage_backend_tasks__knex_migrations is held"
            );
            assert_eq!(
                found.hint("p", "c", "", LogOrigin::Current { ready: true }),
                "see which plugin database holds it with `kubectl backstage db status`; if no other pod is migrating, release it: `kubectl backstage db unlock --plugin <plugin> --table backstage_backend_tasks__knex_migrations`, then restart the pod (the backend does not retry): `kubectl delete pod p`"
            );
        }
    }

    #[test]
    fn a_plugin_failing_for_another_reason_in_the_text_format() {
        // The real text format, with the cause replaced: the cause ends before the `type=` field.
        let log = "\u{1b}[2m2026-12-03T07:46:53.666Z\u{1b}[22m \u{1b}[34mbackstage\u{1b}[39m \u{1b}[31merror\u{1b}[39m Unhandled rejection Backend startup failed due to the following errors:\n  Plugin 'techdocs' startup failed; caused by TypeError: x is not a function \u{1b}[36mtype\u{1b}[39m=\"unhandledRejection\"\n";
        assert_eq!(
            diagnose(log),
            Some(StartupFailure::PluginStartup {
                plugin: "techdocs".into(),
                cause: "x is not a function".into()
            })
        );
    }

    #[test]
    fn a_running_backend_counts_database_errors_only_when_its_start_up_failed() {
        let hiccup = r#"{"level":"info","message":"Plugin initialization complete, newly initialized: 'catalog'","service":"backstage"}
{"level":"error","message":"Processing failed: connect ECONNREFUSED 10.1.2.3:5432","plugin":"catalog","service":"backstage"}"#;
        assert!(diagnose(hiccup).is_some(), "a crash log would count it");
        assert_eq!(diagnose_running(hiccup), None);
        let failed = format!(
            "{hiccup}\n{}",
            r#"{"level":"error","message":"Plugin 'catalog' threw an error during startup, waiting for 1 other plugins to finish before shutting down the process. connect ECONNREFUSED 10.1.2.3:5432","service":"backstage"}"#
        );
        assert_eq!(
            diagnose_running(&failed),
            Some(StartupFailure::DatabaseConnection {
                plugin: Some("catalog".into()),
                detail: "connect ECONNREFUSED 10.1.2.3:5432".into()
            })
        );
        for log in captured!("locked")
            .into_iter()
            .chain(captured!("scheduler-locked"))
            .chain(captured!("corrupt"))
        {
            assert_eq!(diagnose_running(log), diagnose(log));
        }
    }

    #[test]
    fn hints_for_a_running_pod_restart_it_and_force_the_unlock_when_it_is_not_ready() {
        let locked = StartupFailure::MigrationLocked {
            plugin: Some("catalog".into()),
            table: None,
        };
        assert_eq!(
            locked.hint("b-1", "backstage", "", LogOrigin::Current { ready: false }),
            "if no other pod is migrating, release the lock: `kubectl backstage db unlock --plugin catalog --force`, then restart the pod (the backend does not retry): `kubectl delete pod b-1`"
        );
        assert_eq!(
            locked.hint("b-1", "backstage", "", LogOrigin::Previous),
            "if no other pod is migrating, release the lock: `kubectl backstage db unlock --plugin catalog`"
        );
        let corrupt = StartupFailure::CorruptMigrationDirectory {
            plugin: Some("catalog".into()),
            missing_files: vec!["1_a.js".into()],
        };
        assert_eq!(
            corrupt.hint("b-1", "backstage", "", LogOrigin::Current { ready: false }),
            "the database is ahead of this image: see what must be undone with `kubectl backstage db plan --to pod:b-1`, undo it with the newer code: `kubectl backstage db rollback --plugin catalog --to <last migration this image has>`, then restart the pod (the backend does not retry): `kubectl delete pod b-1`"
        );
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
            "' threw an error during startup, waiting for 1 other plugins to finish before shutting down the process. ",
            "Plugin initialization complete",
            "Unhandled rejection ",
            "\u{1b}[31m",
            "\u{1b}[39m",
            " \u{1b}[36mtype\u{1b}[39m=",
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
                // Backstage 1.55's text format (testkit/fixtures/backend-logs): coloured, with fields
                // after the message.
                5 => format!(
                    "\u{1b}[2m2026-12-03T07:46:53.643Z\u{1b}[22m \u{1b}[34mbackstage\u{1b}[39m \u{1b}[31merror\u{1b}[39m Plugin 'catalog' threw an error during startup, waiting for 1 other plugins to finish before shutting down the process. {error} \u{1b}[36mtype\u{1b}[39m=\"initialization\""
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
                frame in 0usize..7,
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
