//! The real `knex` CLI with the `pg` driver, and real Backstage packages' migration files, fetched from
//! npm once and cached under `target/npm-cache/<versions>/`.
//!
//! The folder is built in a temporary sibling and renamed into place, so two test binaries preparing
//! it at once both succeed and later runs download nothing. Packages from `npm pack` are unpacked
//! without their dependency trees into `packages/<name>@<version>/`. Knex runs with `NODE_PATH` set to
//! the folder's `node_modules` (old catalog migrations `require('uuid')`), and reads its connection
//! from environment variables through `knexfile.js`, so no password reaches a process's arguments.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The knex version Backstage resolves today (`knex: ^3.0.0` in its backend packages).
pub const KNEX_VERSION: &str = "3.3.0";
pub const PG_VERSION: &str = "8.23.1";
/// What catalog-backend 1.x migrations required (`uuid: ^11.0.0`).
pub const UUID_VERSION: &str = "11.1.1";

/// A package fetched with `npm pack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
}

/// catalog-backend 3.8.0: 43 migrations.
pub const CATALOG_OLDER: Package = Package {
    name: "@backstage/plugin-catalog-backend",
    version: "3.8.0",
};
/// catalog-backend 4.0.0: the 43 of 3.8.0 and [`CATALOG_ADDED`].
pub const CATALOG_NEWER: Package = Package {
    name: "@backstage/plugin-catalog-backend",
    version: "4.0.0",
};
/// The migrations catalog-backend 4.0.0 adds over 3.8.0, in file order.
pub const CATALOG_ADDED: [&str; 2] = [
    "20260904000000_fix_search_entity_id_ndistinct.js",
    "20260912000000_refresh_state_maintenance.js",
];
/// The scheduler (`migrations/scheduler`, 3 files) and plugin keys (`migrations/auth`) of the new
/// backend system, in prefixed tables.
pub const BACKEND_DEFAULTS: Package = Package {
    name: "@backstage/backend-defaults",
    version: "0.18.0",
};
/// The old backend system's scheduler: the same table, the first 2 of the scheduler's 3 files.
pub const BACKEND_TASKS: Package = Package {
    name: "@backstage/backend-tasks",
    version: "0.6.1",
};

/// auth-backend of Backstage 1.52.x (12 migrations, `backstage.pluginId: auth`).
pub const AUTH_OLDER: Package = Package {
    name: "@backstage/plugin-auth-backend",
    version: "0.29.1",
};
/// auth-backend of Backstage 1.55.0: the same 12 migrations.
pub const AUTH_NEWER: Package = Package {
    name: "@backstage/plugin-auth-backend",
    version: "0.30.1",
};
/// backend-defaults of Backstage 1.52.1 (the npm registry has no 0.17.3, 1.52.0's): the same
/// migrations as 0.18.0.
pub const BACKEND_DEFAULTS_OLDER: Package = Package {
    name: "@backstage/backend-defaults",
    version: "0.17.4",
};

/// The packages of Backstage 1.52.1 that these tests use (catalog, auth, backend-defaults).
pub const RELEASE_1_52_1: [Package; 3] = [CATALOG_OLDER, AUTH_OLDER, BACKEND_DEFAULTS_OLDER];
/// The same packages as Backstage 1.55.0 ships them (create-app 0.9.2's version map).
pub const RELEASE_1_55_0: [Package; 3] = [CATALOG_NEWER, AUTH_NEWER, BACKEND_DEFAULTS];

pub const PACKAGES: [Package; 7] = [
    CATALOG_OLDER,
    CATALOG_NEWER,
    BACKEND_DEFAULTS,
    BACKEND_TASKS,
    AUTH_OLDER,
    AUTH_NEWER,
    BACKEND_DEFAULTS_OLDER,
];

/// Bumped when the folder's layout changes, so an old cache is not reused.
const LAYOUT: u32 = 1;

const KNEXFILE: &str = r#"// Written by the kubectl-backstage tests: the connection comes from the environment.
const fs = require('fs');
const connection = {
  host: process.env.KBS_PGHOST,
  port: Number(process.env.KBS_PGPORT),
  user: process.env.KBS_PGUSER,
  password: process.env.KBS_PGPASSWORD,
  database: process.env.KBS_PGDATABASE,
};
if (process.env.KBS_PGSSLROOTCERT) {
  connection.ssl = { ca: fs.readFileSync(process.env.KBS_PGSSLROOTCERT, 'utf8'), servername: 'localhost' };
}
const config = {
  client: 'pg',
  connection,
  migrations: {
    directory: process.env.KBS_MIGRATIONS_DIR,
    tableName: process.env.KBS_MIGRATIONS_TABLE || 'knex_migrations',
  },
};
// Backstage's schema mode: one schema per plugin, set as the connection's search_path.
if (process.env.KBS_SEARCH_PATH) {
  config.searchPath = [process.env.KBS_SEARCH_PATH];
}
module.exports = config;
"#;

static RIG: OnceLock<KnexRig> = OnceLock::new();

/// The prepared folder.
pub struct KnexRig {
    root: PathBuf,
}

/// Where and how knex connects, and which migrations it handles.
#[derive(Debug, Clone)]
pub struct KnexTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    pub migrations_dir: PathBuf,
    pub table: String,
    /// Backstage's schema mode: the plugin's schema as the only entry of `search_path`.
    pub search_path: Option<String>,
    /// Connect over TLS, trusting this CA.
    pub ssl_root_cert: Option<PathBuf>,
}

/// What a knex command printed and how it exited.
#[derive(Debug, Clone)]
pub struct KnexOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl KnexOutput {
    /// The first line of stderr: for a failed command, `Error: <message>` (knex prints the stack).
    pub fn error_line(&self) -> &str {
        self.stderr.lines().next().unwrap_or("")
    }
}

impl KnexRig {
    /// The folder, prepared on first use (downloads only when the cache is empty).
    pub fn get() -> &'static KnexRig {
        RIG.get_or_init(|| KnexRig::prepare().unwrap_or_else(|e| panic!("npm: {e}")))
    }

    fn prepare() -> Result<KnexRig, String> {
        let cache = target_dir().join("npm-cache");
        let root = cache.join(cache_key());
        if root.join(".complete").exists() {
            return Ok(KnexRig { root });
        }
        fs::create_dir_all(&cache).map_err(|e| format!("create {}: {e}", cache.display()))?;
        let staging = cache.join(format!(".{}-{}", cache_key(), std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(staging.join("packs")).map_err(|e| e.to_string())?;
        let built = build(&staging);
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        // Whoever renames first wins; the loser's copy is identical and goes.
        if fs::rename(&staging, &root).is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        if !root.join(".complete").exists() {
            return Err(format!("{} is incomplete", root.display()));
        }
        Ok(KnexRig { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The knex CLI script (`node_modules/knex/bin/cli.js`), run with `node`.
    pub fn cli(&self) -> PathBuf {
        self.root.join("node_modules/knex/bin/cli.js")
    }

    pub fn knexfile(&self) -> PathBuf {
        self.root.join("knexfile.js")
    }

    pub fn node_modules(&self) -> PathBuf {
        self.root.join("node_modules")
    }

    /// The unpacked package's root folder.
    pub fn package_dir(&self, package: Package) -> PathBuf {
        self.root.join("packages").join(package_dir_name(package))
    }

    /// A migrations folder of an unpacked package (`migrations`, `migrations/scheduler`, …).
    pub fn migrations_dir(&self, package: Package, folder: &str) -> PathBuf {
        self.package_dir(package).join(folder)
    }

    /// The file names in a package's migrations folder, unsorted as the file system gives them.
    pub fn listing(&self, package: Package, folder: &str) -> Vec<String> {
        let dir = self.migrations_dir(package, folder);
        fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    /// Runs `knex <args>` against the target; the password goes through the environment.
    pub fn run(&self, target: &KnexTarget, args: &[&str]) -> KnexOutput {
        let mut cmd = Command::new("node");
        cmd.arg(self.cli())
            .arg("--knexfile")
            .arg(self.knexfile())
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .env("NODE_PATH", self.node_modules())
            .env("NO_COLOR", "1")
            .env_remove("FORCE_COLOR")
            .env_remove("NODE_ENV")
            .env("KBS_PGHOST", &target.host)
            .env("KBS_PGPORT", target.port.to_string())
            .env("KBS_PGUSER", &target.user)
            .env("KBS_PGPASSWORD", &target.password)
            .env("KBS_PGDATABASE", &target.database)
            .env("KBS_MIGRATIONS_DIR", &target.migrations_dir)
            .env("KBS_MIGRATIONS_TABLE", &target.table);
        match &target.search_path {
            Some(schema) => cmd.env("KBS_SEARCH_PATH", schema),
            None => cmd.env_remove("KBS_SEARCH_PATH"),
        };
        match &target.ssl_root_cert {
            Some(ca) => cmd.env("KBS_PGSSLROOTCERT", ca),
            None => cmd.env_remove("KBS_PGSSLROOTCERT"),
        };
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("run node {}: {e}", self.cli().display()));
        KnexOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn cache_key() -> String {
    let packages: Vec<String> = PACKAGES.iter().map(|p| package_dir_name(*p)).collect();
    // The package list named by a hash (FNV-1a): written out it is longer than a file name may be.
    let hash = packages
        .join(",")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!(
        "v{LAYOUT}-knex-{KNEX_VERSION}-pg-{PG_VERSION}-uuid-{UUID_VERSION}-{}-packages-{hash:016x}",
        packages.len()
    )
}

/// `@backstage/plugin-catalog-backend@3.8.0` → `backstage__plugin-catalog-backend@3.8.0`.
fn package_dir_name(package: Package) -> String {
    format!(
        "{}@{}",
        package.name.trim_start_matches('@').replace('/', "__"),
        package.version
    )
}

fn build(dir: &Path) -> Result<(), String> {
    fs::write(
        dir.join("package.json"),
        r#"{"name": "kubectl-backstage-knex-rig", "private": true}"#,
    )
    .map_err(|e| e.to_string())?;
    npm(
        dir,
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
            &format!("knex@{KNEX_VERSION}"),
            &format!("pg@{PG_VERSION}"),
            &format!("uuid@{UUID_VERSION}"),
        ],
    )?;
    let packs = dir.join("packs");
    for package in PACKAGES {
        let spec = format!("{}@{}", package.name, package.version);
        let packs_arg = packs.to_string_lossy().into_owned();
        let printed = npm(
            dir,
            &[
                "pack",
                "--loglevel=error",
                "--pack-destination",
                &packs_arg,
                &spec,
            ],
        )?;
        let tarball = printed
            .lines()
            .rev()
            .find(|l| l.trim().ends_with(".tgz"))
            .ok_or_else(|| format!("npm pack {spec} printed no tarball: {printed}"))?
            .trim()
            .to_string();
        let into = dir.join("packages").join(package_dir_name(package));
        fs::create_dir_all(&into).map_err(|e| e.to_string())?;
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(packs.join(&tarball))
            .arg("-C")
            .arg(&into)
            .arg("--strip-components=1")
            .status()
            .map_err(|e| format!("run tar: {e}"))?;
        if !status.success() {
            return Err(format!("tar could not unpack {tarball}"));
        }
    }
    let _ = fs::remove_dir_all(&packs);
    fs::write(dir.join("knexfile.js"), KNEXFILE).map_err(|e| e.to_string())?;
    fs::write(dir.join(".complete"), cache_key()).map_err(|e| e.to_string())
}

fn npm(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run npm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cargo target folder: the test binary lives in `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}
