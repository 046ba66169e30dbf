//! `version` and `version --diff` on two real installed trees: the backends of Backstage 1.55.0 and
//! 1.54.0, each installed from npm with `npm install` as `@backstage/create-app` pins them (see
//! support/backstage.rs) — whole `node_modules` trees with every dependency, as in an image. The 1.55.0
//! tree has a `backstage.json`; the 1.54.0 tree has none, so its release is inferred.

#[path = "support/backstage.rs"]
mod backstage;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/rig.rs"]
mod rig;

use std::path::Path;

use backstage::{RELEASE_1_54_0, RELEASE_1_55_0, Release};
use rig::{Rig, json, run};
use serde_json::{Value, json};

/// The `.js` migration files of a package in a tree, in Knex's order (plain names, ASCII).
fn migration_files(tree: &Path, package: &str) -> Vec<String> {
    let dir = tree.join("node_modules").join(package).join("migrations");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".js"))
        .collect();
    files.sort();
    files
}

/// `version -o json` of a tree, without a cluster.
fn version_of(rig: &Rig, tree: &Path) -> Value {
    let (code, out, err) = run(rig
        .plugin()
        .env("KUBECONFIG", rig.path("no-kubeconfig"))
        .args(["version", "--source", tree.to_str().unwrap(), "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    json(&out)
}

/// The version each of the release's pinned packages has in the report.
fn pinned_versions(doc: &Value, release: &Release) -> Vec<(String, String)> {
    release
        .packages
        .iter()
        .map(|(name, _)| {
            let found = doc["backstage"]["packages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["package"] == *name)
                .unwrap_or_else(|| panic!("{name} is not listed"));
            (
                name.to_string(),
                found["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pinned(release: &Release) -> Vec<(String, String)> {
    release
        .packages
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn two_installed_releases_and_the_diff_between_them() {
    let newer = backstage::install();
    let older = backstage::install_older();
    let rig = Rig::incident();

    // 1.55.0: named by its backstage.json; every pinned package at its pinned version.
    let doc = version_of(&rig, newer);
    let b = &doc["backstage"];
    assert_eq!(
        (&b["release"], &b["releaseFrom"]),
        (&json!("1.55.0"), &json!("backstage.json"))
    );
    assert_eq!(
        pinned_versions(&doc, &RELEASE_1_55_0),
        pinned(&RELEASE_1_55_0)
    );
    let catalog = b["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["package"] == "@backstage/plugin-catalog-backend")
        .unwrap();
    assert_eq!(catalog["pluginId"], "catalog");
    let newer_catalog = migration_files(newer, "@backstage/plugin-catalog-backend");
    assert_eq!(catalog["migrations"], json!(newer_catalog.len()));

    // 1.54.0: no backstage.json, so the release is inferred from the installed versions.
    let doc = version_of(&rig, older);
    let b = &doc["backstage"];
    assert_eq!(
        (&b["release"], &b["releaseFrom"], &b["backstageJson"]),
        (&json!("1.54.0"), &json!("inferred"), &Value::Null),
        "{b}"
    );
    assert_eq!(
        pinned_versions(&doc, &RELEASE_1_54_0),
        pinned(&RELEASE_1_54_0)
    );

    // 1.55.0 → 1.54.0 is a downgrade: catalog-backend 4.0.0 ships migrations 3.9.0 does not.
    let older_catalog = migration_files(older, "@backstage/plugin-catalog-backend");
    let mut removed: Vec<String> = newer_catalog
        .iter()
        .filter(|f| !older_catalog.contains(f))
        .cloned()
        .collect();
    removed.reverse();
    assert!(!removed.is_empty(), "the two releases' catalogs differ");
    let (code, out, err) = run(rig
        .plugin()
        .env("KUBECONFIG", rig.path("no-kubeconfig"))
        .args([
            "version",
            "--diff",
            newer.to_str().unwrap(),
            older.to_str().unwrap(),
            "-o",
            "json",
        ]));
    assert_eq!(code, 1, "a rollback is needed first\n{err}");
    let down = json(&out);
    assert_eq!(
        (
            &down["from"]["release"],
            &down["to"]["release"],
            &down["downgrade"]
        ),
        (&json!("1.55.0"), &json!("1.54.0"), &json!(true))
    );
    let catalog_change: Vec<&Value> = down["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["package"] == "@backstage/plugin-catalog-backend")
        .collect();
    assert_eq!(catalog_change.len(), 1, "{down}");
    assert_eq!(
        (
            &catalog_change[0]["from"],
            &catalog_change[0]["to"],
            &catalog_change[0]["change"]
        ),
        (&json!("4.0.0"), &json!("3.9.0"), &json!("downgraded"))
    );
    let catalog_migrations: Vec<&Value> = down["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["plugin"] == "catalog" && m["table"] == "knex_migrations")
        .collect();
    assert_eq!(catalog_migrations.len(), 1, "{down}");
    assert_eq!(catalog_migrations[0]["removed"], json!(removed));
    assert_eq!(catalog_migrations[0]["added"], json!([]));
    let last_kept = older_catalog.last().unwrap();
    let commands: Vec<&str> = down["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        commands.contains(
            &format!("kubectl backstage db rollback --plugin catalog --to {last_kept}").as_str()
        ),
        "{commands:?}"
    );
    assert_eq!(
        commands[0],
        format!("kubectl backstage db plan --to {}", older.display())
    );

    // And back: an upgrade, the same files added, nothing to roll back.
    let (code, out, err) = run(rig
        .plugin()
        .env("KUBECONFIG", rig.path("no-kubeconfig"))
        .args([
            "version",
            "--diff",
            older.to_str().unwrap(),
            newer.to_str().unwrap(),
            "-o",
            "json",
        ]));
    assert_eq!(code, 0, "{err}");
    let up = json(&out);
    assert_eq!(up["downgrade"], false);
    assert_eq!(up["commands"], json!([]));
    let catalog_up: Vec<&Value> = up["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["plugin"] == "catalog" && m["table"] == "knex_migrations")
        .collect();
    removed.reverse();
    assert_eq!(catalog_up[0]["added"], json!(removed));
    assert_eq!(catalog_up[0]["removed"], json!([]));
}
