//! Which plugin database, and which migration table in it, a package's migrations folder belongs to.
//!
//! Backstage runs each package's migrations with `knex.migrate.latest({ directory, tableName })` on the
//! database client of the plugin that uses it. Most packages are a plugin's own backend
//! (`@scope/plugin-<id>-backend`, table `knex_migrations`) or one of its modules
//! (`plugin-<id>-backend-module-*`, run in the plugin's database). A few are not, and are listed in
//! [`KNOWN_MIGRATION_FOLDERS`], found in the packages' `dist/` code:
//! - `@backstage/backend-defaults` `migrations/scheduler` (table
//!   `backstage_backend_tasks__knex_migrations`): the scheduler service migrates the database of every
//!   plugin that schedules a task, on first use;
//! - `@backstage/backend-defaults` `migrations/auth` (table
//!   `backstage_backend_public_keys__knex_migrations`): the auth service's database key store, created
//!   for every plugin that uses the auth service (nearly all of them);
//! - `@backstage/backend-tasks` `migrations`: the scheduler of the old backend system, same table as
//!   the scheduler above and the same first file names;
//! - `@backstage/plugin-catalog-backend-module-incremental-ingestion`: the catalog's database, table
//!   `incremental_ingestion__knex_migrations`;
//! - `@backstage/plugin-search-backend-module-pg`: the `search` plugin's database, `knex_migrations`.

use serde::Serialize;

use super::model::{DEFAULT_MIGRATION_TABLE, migration_files};

/// The folder Knex reads when a package passes `resolvePackagePath(pkg, 'migrations')`.
pub const DEFAULT_MIGRATIONS_FOLDER: &str = "migrations";

/// Which plugin databases (or schemas) a migration table lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "plugin", rename_all = "camelCase")]
pub enum PluginDatabases {
    /// The database of this plugin id.
    Plugin(String),
    /// The database of any plugin that uses a shared backend service (scheduler, plugin keys).
    AnyPlugin,
}

impl PluginDatabases {
    /// Whether the table can be found in this plugin's database.
    pub fn includes(&self, plugin_id: &str) -> bool {
        match self {
            PluginDatabases::Plugin(id) => id == plugin_id,
            PluginDatabases::AnyPlugin => true,
        }
    }
}

/// A package folder whose migrations are known not to follow the default rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownMigrationFolder {
    pub package: &'static str,
    pub folder: &'static str,
    /// `None` for a shared service that runs in any plugin's database.
    pub plugin: Option<&'static str>,
    pub table: &'static str,
}

/// Packages that ship migrations and do not follow the default rule, as found in their `dist/`.
/// When two of them claim one table (the scheduler's), the first listed is the newer one.
pub const KNOWN_MIGRATION_FOLDERS: &[KnownMigrationFolder] = &[
    KnownMigrationFolder {
        package: "@backstage/backend-defaults",
        folder: "migrations/scheduler",
        plugin: None,
        table: "backstage_backend_tasks__knex_migrations",
    },
    KnownMigrationFolder {
        package: "@backstage/backend-defaults",
        folder: "migrations/auth",
        plugin: None,
        table: "backstage_backend_public_keys__knex_migrations",
    },
    KnownMigrationFolder {
        package: "@backstage/backend-tasks",
        folder: "migrations",
        plugin: None,
        table: "backstage_backend_tasks__knex_migrations",
    },
    KnownMigrationFolder {
        package: "@backstage/plugin-catalog-backend-module-incremental-ingestion",
        folder: "migrations",
        plugin: Some("catalog"),
        table: "incremental_ingestion__knex_migrations",
    },
    KnownMigrationFolder {
        package: "@backstage/plugin-search-backend-module-pg",
        folder: "migrations",
        plugin: Some("search"),
        table: DEFAULT_MIGRATION_TABLE,
    },
];

/// A migrations folder as found in a `node_modules` tree or a package tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageMigrations {
    /// The npm package name, such as `@backstage/plugin-catalog-backend`.
    pub package: String,
    pub version: String,
    /// The folder relative to the package root, with `/` separators (`migrations/scheduler`).
    pub folder: String,
    /// The folder's listing; not only migrations.
    pub listing: Vec<String>,
    /// Where the folder is, absolute, where the source has it (a local path or a path in the pod).
    pub directory: String,
}

/// A migrations folder placed: the migration table it fills, in which plugin databases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationTableSource {
    pub databases: PluginDatabases,
    pub table: String,
    pub package: String,
    pub version: String,
    pub folder: String,
    /// The migration files, in the order Knex runs them.
    pub files: Vec<String>,
    /// Where the folder is, absolute, where the source has it (for a runner's `directory`).
    pub directory: String,
}

impl MigrationTableSource {
    /// Whether these files are the ones for `table` in `plugin_id`'s database.
    pub fn applies_to(&self, plugin_id: &str, table: &str) -> bool {
        self.table == table && self.databases.includes(plugin_id)
    }
}

/// Places a package's migrations folder, or `None` when the package is not a known one and its
/// name does not say which plugin it belongs to, or the folder holds no migration.
pub fn migration_table_source(found: &PackageMigrations) -> Option<MigrationTableSource> {
    let files = migration_files(&found.listing);
    if files.is_empty() {
        return None;
    }
    let folder = found.folder.trim_end_matches('/');
    let (databases, table) = match known_folder(&found.package, folder) {
        Some(known) => (
            known.plugin.map_or(PluginDatabases::AnyPlugin, |p| {
                PluginDatabases::Plugin(p.into())
            }),
            known.table.to_string(),
        ),
        None if folder == DEFAULT_MIGRATIONS_FOLDER => (
            PluginDatabases::Plugin(plugin_id_of_package(&found.package)?),
            DEFAULT_MIGRATION_TABLE.to_string(),
        ),
        None => return None,
    };
    Some(MigrationTableSource {
        databases,
        table,
        package: found.package.clone(),
        version: found.version.clone(),
        folder: folder.to_string(),
        files,
        directory: found.directory.clone(),
    })
}

fn known_folder(package: &str, folder: &str) -> Option<&'static KnownMigrationFolder> {
    KNOWN_MIGRATION_FOLDERS
        .iter()
        .find(|k| k.package == package && k.folder == folder)
}

/// The folders of a package that may hold migrations: the known ones, else `migrations`.
pub fn migration_folders_of(package: &str) -> Vec<&'static str> {
    let known: Vec<&'static str> = KNOWN_MIGRATION_FOLDERS
        .iter()
        .filter(|k| k.package == package)
        .map(|k| k.folder)
        .collect();
    if known.is_empty() {
        vec![DEFAULT_MIGRATIONS_FOLDER]
    } else {
        known
    }
}

/// The plugin id a backend package or backend module belongs to, from its name:
/// `@scope/plugin-<id>-backend` and `@scope/plugin-<id>-backend-module-<name>` give `<id>`; a
/// `backstage-` before `plugin-` is allowed (`@roadiehq/backstage-plugin-<id>-backend`).
pub fn plugin_id_of_package(package: &str) -> Option<String> {
    let bare = match package.strip_prefix('@') {
        Some(scoped) => scoped.split_once('/')?.1,
        None => package,
    };
    let bare = bare.strip_prefix("backstage-").unwrap_or(bare);
    let rest = bare.strip_prefix("plugin-")?;
    let id = match rest.strip_suffix("-backend") {
        Some(id) => id,
        None => &rest[..rest.find("-backend-module-")?],
    };
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(package: &str, folder: &str, listing: &[&str]) -> PackageMigrations {
        PackageMigrations {
            package: package.into(),
            version: "1.0.0".into(),
            folder: folder.into(),
            listing: listing.iter().map(|s| s.to_string()).collect(),
            directory: format!("/app/node_modules/{package}/{folder}"),
        }
    }

    #[test]
    fn plugin_ids_from_package_names() {
        for (package, id) in [
            ("@backstage/plugin-catalog-backend", Some("catalog")),
            (
                "@backstage/plugin-user-settings-backend",
                Some("user-settings"),
            ),
            (
                "@backstage/plugin-catalog-backend-module-incremental-ingestion",
                Some("catalog"),
            ),
            ("@backstage/plugin-search-backend-module-pg", Some("search")),
            (
                "@backstage-community/plugin-tech-insights-backend",
                Some("tech-insights"),
            ),
            (
                "@roadiehq/backstage-plugin-argo-cd-backend",
                Some("argo-cd"),
            ),
            ("backstage-plugin-foo-backend", Some("foo")),
            ("@backstage/plugin-catalog-backend-node", None),
            ("@backstage/backend-defaults", None),
            ("@backstage/plugin-catalog", None),
            ("@backstage/plugin--backend", None),
            ("@broken", None),
        ] {
            assert_eq!(plugin_id_of_package(package).as_deref(), id, "{package}");
        }
    }

    #[test]
    fn plugin_backend_fills_knex_migrations_of_its_database() {
        let source = migration_table_source(&found(
            "@backstage/plugin-auth-backend",
            "migrations",
            &["20200619125845_init.js", "20230428155633_sessions.js"],
        ))
        .unwrap();
        assert_eq!(source.databases, PluginDatabases::Plugin("auth".into()));
        assert_eq!(source.table, "knex_migrations");
        assert_eq!(
            source.files,
            ["20200619125845_init.js", "20230428155633_sessions.js"]
        );
        assert!(source.applies_to("auth", "knex_migrations"));
        assert!(!source.applies_to("catalog", "knex_migrations"));
    }

    #[test]
    fn shared_services_fill_prefixed_tables_anywhere() {
        let scheduler = migration_table_source(&found(
            "@backstage/backend-defaults",
            "migrations/scheduler/",
            &[
                "20210928160613_init.js",
                "20240712211735_nullable_next_run.js",
                "20250411000000_last_run.js",
            ],
        ))
        .unwrap();
        assert_eq!(scheduler.databases, PluginDatabases::AnyPlugin);
        assert_eq!(scheduler.table, "backstage_backend_tasks__knex_migrations");
        assert_eq!(scheduler.folder, "migrations/scheduler");
        assert!(scheduler.applies_to("catalog", "backstage_backend_tasks__knex_migrations"));

        let keys = migration_table_source(&found(
            "@backstage/backend-defaults",
            "migrations/auth",
            &["20240327104803_public_keys.js"],
        ))
        .unwrap();
        assert_eq!(keys.table, "backstage_backend_public_keys__knex_migrations");

        let old = migration_table_source(&found(
            "@backstage/backend-tasks",
            "migrations",
            &["20210928160613_init.js"],
        ))
        .unwrap();
        assert_eq!(old.table, scheduler.table);
    }

    #[test]
    fn modules_run_in_their_plugin_database() {
        let incremental = migration_table_source(&found(
            "@backstage/plugin-catalog-backend-module-incremental-ingestion",
            "migrations",
            &["20221116073152_init.js"],
        ))
        .unwrap();
        assert_eq!(
            incremental.databases,
            PluginDatabases::Plugin("catalog".into())
        );
        assert_eq!(incremental.table, "incremental_ingestion__knex_migrations");
        let pg = migration_table_source(&found(
            "@backstage/plugin-search-backend-module-pg",
            "migrations",
            &["20210311110000_init.js"],
        ))
        .unwrap();
        assert_eq!(pg.databases, PluginDatabases::Plugin("search".into()));
        assert_eq!(pg.table, "knex_migrations");
    }

    #[test]
    fn unknown_or_empty_folders_are_not_placed() {
        assert_eq!(
            migration_table_source(&found(
                "@backstage/backend-defaults",
                "migrations",
                &["1_a.js"]
            )),
            None
        );
        assert_eq!(
            migration_table_source(&found(
                "@acme/plugin-x-backend",
                "migrations",
                &["README.md"]
            )),
            None
        );
        assert_eq!(
            migration_table_source(&found(
                "@acme/plugin-x-backend",
                "db/migrations",
                &["1_a.js"]
            )),
            None
        );
        assert_eq!(
            migration_table_source(&found("lodash", "migrations", &["1_a.js"])),
            None
        );
    }

    #[test]
    fn folders_to_look_in() {
        assert_eq!(
            migration_folders_of("@backstage/backend-defaults"),
            ["migrations/scheduler", "migrations/auth"]
        );
        assert_eq!(
            migration_folders_of("@backstage/plugin-catalog-backend"),
            ["migrations"]
        );
    }
}
