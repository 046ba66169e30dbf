//! Where the expected migration files come from: a local folder (a `node_modules` tree, a package, or
//! one migrations folder) or the running pod's image ([`super::pod`]). A source lists every migrations
//! folder it has, placed by [`migration_table_source`]; the database side pairs them with the tables it
//! finds. The source also says where Knex can be run with those files (for `db rollback`).

use std::path::{Path, PathBuf};

use crate::knex::model::{DEFAULT_MIGRATION_TABLE, migration_files};
use crate::knex::packages::{
    MigrationTableSource, PackageMigrations, PluginDatabases, migration_folders_of,
    migration_table_source,
};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("--source {path}: {message}", path = .path.display())]
    Local { path: PathBuf, message: String },
    #[error(transparent)]
    Pod(#[from] super::pod::PodSourceError),
    #[error(transparent)]
    Image(#[from] super::image::ImageSourceError),
    #[error("reading migration files from a pod needs the cluster: {0}")]
    NoCluster(String),
    #[error("image:{image} is read in a preflight pod, which needs the cluster: {cause}")]
    ImageNoCluster { image: String, cause: String },
}

impl SourceError {
    /// Ctrl-C stopped an `image:REF` read (exit 130).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, SourceError::Image(e) if e.is_interrupted())
    }
}

pub use crate::options::SourceSpec;

/// Where a source's files are, so that Knex can be run next to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePlace {
    /// A local folder whose `node_modules` has knex; Knex runs with this working directory.
    Local { cwd: PathBuf },
    /// A container whose working directory has knex in `node_modules`.
    Pod {
        pod: String,
        container: String,
        cwd: String,
    },
    /// An image read in a preflight pod that has been deleted since: nothing runs there any more.
    Image { image: String },
}

/// The migration files of one version of Backstage, and where they are.
#[derive(Debug)]
pub struct LoadedSource {
    /// `dir:/path`, `pod:NAME` or `image:REF`, as reports name it.
    pub name: String,
    pub tables: Vec<MigrationTableSource>,
    pub place: SourcePlace,
    /// What each file's `down` is, when it was checked while the files were at hand (an image's,
    /// in its preflight pod); other sources are checked on demand where they are.
    pub downs: Option<super::reversibility::DownChecks>,
    /// Why the files' `down()` could not be checked while they were at hand.
    pub downs_error: Option<String>,
}

impl LoadedSource {
    /// An image read by [`super::image::image_inventory`] as a source (its pod is gone; its files'
    /// `down()` were checked while it ran).
    pub fn from_image(image: &str, read: super::image::ImageInventory) -> LoadedSource {
        LoadedSource {
            name: read.inventory.source,
            tables: read.inventory.tables,
            place: SourcePlace::Image {
                image: image.to_string(),
            },
            downs: read.downs,
            downs_error: read.downs_error,
        }
    }
}

/// Reads a source. `plugins` and `table` place a bare migrations folder; `progress` hears how an
/// `image:REF` preflight pod is doing.
pub async fn load(
    spec: &SourceSpec,
    cluster: Result<&crate::kube::Cluster, &crate::kube::KubeError>,
    plugins: &[String],
    table: Option<&str>,
    progress: &dyn Fn(super::image::ProgressEvent),
) -> Result<LoadedSource, SourceError> {
    match spec {
        SourceSpec::Image(image) => {
            let cluster = cluster.map_err(|e| SourceError::ImageNoCluster {
                image: image.clone(),
                cause: e.to_string(),
            })?;
            let read = super::image::image_inventory(cluster, image, progress).await?;
            Ok(LoadedSource::from_image(image, read))
        }
        SourceSpec::Dir(path) => {
            let local = LocalSource::new(path.clone(), plugins, table);
            // A node_modules tree is thousands of directory reads: off the runtime, which also
            // drives the open database connections.
            tokio::task::spawn_blocking(move || {
                Ok(LoadedSource {
                    name: local.describe(),
                    tables: local.tables()?,
                    place: SourcePlace::Local {
                        cwd: local.knex_cwd(),
                    },
                    downs: None,
                    downs_error: None,
                })
            })
            .await
            .map_err(|e| SourceError::Local {
                path: path.clone(),
                message: e.to_string(),
            })?
        }
        SourceSpec::Pod(named) => {
            let cluster = cluster.map_err(|e| SourceError::NoCluster(e.to_string()))?;
            let files = super::pod::pod_files(cluster, named.as_deref()).await?;
            Ok(LoadedSource {
                name: format!("pod:{}", files.pod),
                tables: files.tables,
                place: SourcePlace::Pod {
                    pod: files.pod,
                    container: files.container,
                    cwd: files.cwd,
                },
                downs: None,
                downs_error: None,
            })
        }
    }
}

/// A local folder: a `node_modules` tree (or a folder containing one), one package, or — with a plugin
/// id — one `migrations` folder.
pub struct LocalSource {
    pub path: PathBuf,
    /// The plugin a bare migrations folder belongs to, and its table.
    pub single_folder_plugin: Option<(String, String)>,
}

impl LocalSource {
    pub fn describe(&self) -> String {
        format!("dir:{}", self.path.display())
    }

    /// Where `node` runs so that `require('knex')` finds the checkout's knex.
    pub fn knex_cwd(&self) -> PathBuf {
        if self.path.file_name().is_some_and(|n| n == "node_modules") {
            self.path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.path.clone())
        } else {
            self.path.clone()
        }
    }

    pub fn tables(&self) -> Result<Vec<MigrationTableSource>, SourceError> {
        let err = |message: String| SourceError::Local {
            path: self.path.clone(),
            message,
        };
        if !self.path.is_dir() {
            return Err(err("not a folder".into()));
        }
        let node_modules = if self.path.file_name().is_some_and(|n| n == "node_modules") {
            Some(self.path.clone())
        } else if self.path.join("node_modules").is_dir() {
            Some(self.path.join("node_modules"))
        } else {
            None
        };
        if let Some(node_modules) = node_modules {
            return scan_node_modules(&node_modules).map_err(|e| err(e.to_string()));
        }
        if self.path.join("package.json").is_file() {
            return Ok(package_tables(&self.path)
                .map_err(|e| err(e.to_string()))?
                .into_iter()
                .collect());
        }
        // One migrations folder: it must say whose it is.
        let listing = list_files(&self.path).map_err(|e| err(e.to_string()))?;
        let files = migration_files(&listing);
        if files.is_empty() {
            return Err(err(
                "holds no node_modules, no package and no migration files".into(),
            ));
        }
        let Some((plugin, table)) = &self.single_folder_plugin else {
            return Err(err("is a single migrations folder: say whose with one --plugin (and --table if not knex_migrations)".into()));
        };
        Ok(vec![MigrationTableSource {
            databases: PluginDatabases::Plugin(plugin.clone()),
            table: table.clone(),
            package: String::new(),
            version: String::new(),
            folder: self.path.display().to_string(),
            files,
            directory: absolute(&self.path),
        }])
    }
}

impl LocalSource {
    pub fn new(path: PathBuf, plugins: &[String], table: Option<&str>) -> LocalSource {
        let single_folder_plugin = match plugins {
            [one] => Some((
                one.clone(),
                table.unwrap_or(DEFAULT_MIGRATION_TABLE).to_string(),
            )),
            _ => None,
        };
        LocalSource {
            path,
            single_folder_plugin,
        }
    }
}

pub(crate) fn list_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// The folders directly under `node_modules` and its `@scope` folders (hidden ones left out), sorted:
/// the packages the backend can load by name.
pub(crate) fn package_dirs(node_modules: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(node_modules)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('@') && path.is_dir() {
            for scoped in std::fs::read_dir(&path)? {
                dirs.push(scoped?.path());
            }
        } else if !name.starts_with('.') {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Every package directly under `node_modules` (and `node_modules/@scope`) that ships migrations.
fn scan_node_modules(node_modules: &Path) -> std::io::Result<Vec<MigrationTableSource>> {
    let packages = package_dirs(node_modules)?;
    let mut tables = Vec::new();
    for package in packages {
        tables.extend(package_tables(&package)?);
    }
    Ok(tables)
}

/// The placed migrations folders of one package directory (none when it ships none).
pub(crate) fn package_tables(dir: &Path) -> std::io::Result<Vec<MigrationTableSource>> {
    let Ok(text) = std::fs::read_to_string(dir.join("package.json")) else {
        return Ok(Vec::new());
    };
    let Ok(manifest) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(Vec::new());
    };
    let (Some(package), version) = (
        manifest["name"].as_str(),
        manifest["version"].as_str().unwrap_or_default(),
    ) else {
        return Ok(Vec::new());
    };
    let mut tables = Vec::new();
    for folder in migration_folders_of(package) {
        let path = dir.join(folder);
        if !path.is_dir() {
            continue;
        }
        let found = PackageMigrations {
            package: package.to_string(),
            version: version.to_string(),
            folder: folder.to_string(),
            listing: list_files(&path)?,
            directory: absolute(&path),
        };
        tables.extend(migration_table_source(&found));
    }
    Ok(tables)
}

pub(crate) fn absolute(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The files for `table` in `plugin`'s database, from the first source folder that applies.
pub fn files_for<'a>(
    sources: &'a [MigrationTableSource],
    plugin: &str,
    table: &str,
) -> Option<&'a MigrationTableSource> {
    sources.iter().find(|s| s.applies_to(plugin, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn finds_plugin_module_and_shared_migrations_in_node_modules() {
        let dir = tempfile::tempdir().unwrap();
        let nm = dir.path().join("node_modules");
        write(
            &nm.join("@backstage/plugin-catalog-backend/package.json"),
            r#"{"name":"@backstage/plugin-catalog-backend","version":"1.2.3"}"#,
        );
        write(
            &nm.join("@backstage/plugin-catalog-backend/migrations/20200511113813_init.js"),
            "",
        );
        write(
            &nm.join("@backstage/plugin-catalog-backend/migrations/README.md"),
            "",
        );
        write(
            &nm.join("@backstage/backend-defaults/package.json"),
            r#"{"name":"@backstage/backend-defaults","version":"0.5.0"}"#,
        );
        write(
            &nm.join("@backstage/backend-defaults/migrations/scheduler/20210928160613_init.js"),
            "",
        );
        write(
            &nm.join("left-pad/package.json"),
            r#"{"name":"left-pad","version":"1.0.0"}"#,
        );
        let tables = LocalSource::new(dir.path().into(), &[], None)
            .tables()
            .unwrap();
        let placed: Vec<(String, String, Vec<String>)> = tables
            .iter()
            .map(|t| {
                (
                    format!("{:?}", t.databases),
                    t.table.clone(),
                    t.files.clone(),
                )
            })
            .collect();
        assert_eq!(
            placed,
            vec![
                (
                    "AnyPlugin".to_string(),
                    "backstage_backend_tasks__knex_migrations".to_string(),
                    vec!["20210928160613_init.js".to_string()]
                ),
                (
                    "Plugin(\"catalog\")".into(),
                    "knex_migrations".into(),
                    vec!["20200511113813_init.js".into()]
                ),
            ]
        );
        assert_eq!(
            files_for(&tables, "catalog", "knex_migrations")
                .unwrap()
                .version,
            "1.2.3"
        );
        assert_eq!(
            files_for(&tables, "auth", "backstage_backend_tasks__knex_migrations")
                .unwrap()
                .package,
            "@backstage/backend-defaults"
        );
        assert!(files_for(&tables, "auth", "knex_migrations").is_none());
    }

    #[test]
    fn a_bare_folder_needs_a_plugin() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("20200511113813_init.js"), "");
        let err = LocalSource::new(dir.path().into(), &[], None)
            .tables()
            .unwrap_err();
        assert!(
            err.to_string().contains("say whose with one --plugin"),
            "{err}"
        );
        let tables = LocalSource::new(dir.path().into(), &["catalog".into()], None)
            .tables()
            .unwrap();
        assert_eq!(tables[0].files, ["20200511113813_init.js"]);
        assert_eq!(tables[0].table, "knex_migrations");
    }
}
