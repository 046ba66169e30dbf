//! The guided `upgrade --image` / `rollback --to-image` story on real Backstage backends: the pod
//! runtime of the rollout simulation (support/rollout.rs) runs a real 1.54.0 or 1.55.0 backend per pod
//! against the test PostgreSQL, with one database prefix per environment.

#[path = "support/backstage.rs"]
mod backstage;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/rollout.rs"]
mod rollout;

use rollout::{BackstageRuntime, IMAGE_1_54_0, IMAGE_1_55_0, PodOutcome, PodRuntime, PodStart};

/// The two catalog migrations 1.55.0 (catalog-backend 4.0.0) has and 1.54.0 (3.9.0) lacks.
const CATALOG_1_55_ONLY: [&str; 2] = [
    "20260904000000_fix_search_entity_id_ndistinct.js",
    "20260912000000_refresh_state_maintenance.js",
];

fn pod(name: &str, image: &str) -> PodStart {
    PodStart {
        namespace: "backstage".into(),
        pod: name.into(),
        container: "backstage".into(),
        image: image.into(),
        ..PodStart::default()
    }
}

/// The catalog's completed migrations, in id order.
fn catalog_migrations(runtime: &BackstageRuntime) -> Vec<String> {
    let mut client = backstage::pg().client(&runtime.database("catalog"));
    client
        .query("SELECT name FROM knex_migrations ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The runtime alone: 1.54.0 starts on empty databases, 1.55.0 migrates them further, and a 1.54.0
/// pod after that fails with Backstage's own corrupt-directory error naming exactly the two catalog
/// files; a preflight pod (command replaced) is ready at once without a backend.
#[test]
fn runtime_runs_real_backends_per_image_on_shared_databases() {
    let runtime = BackstageRuntime::new();

    let PodOutcome::Ready { ports, log_file } = runtime.start(&pod("old-1", IMAGE_1_54_0)) else {
        panic!("1.54.0 on empty databases must become ready");
    };
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].0, rollout::CONTAINER_PORT);
    assert!(log_file.unwrap().exists());
    let after_old = catalog_migrations(&runtime);
    for name in CATALOG_1_55_ONLY {
        assert!(
            !after_old.contains(&name.to_string()),
            "{name} applied by 1.54.0"
        );
    }
    runtime.stop("backstage", "old-1");
    assert_eq!(runtime.running_pods(), Vec::<String>::new());

    let PodOutcome::Ready { .. } = runtime.start(&pod("new-1", IMAGE_1_55_0)) else {
        panic!("1.55.0 must migrate and become ready");
    };
    let after_new = catalog_migrations(&runtime);
    assert_eq!(after_new.len(), after_old.len() + 2);
    assert_eq!(&after_new[after_old.len()..], CATALOG_1_55_ONLY);
    assert_eq!(runtime.running_pods(), vec!["new-1".to_string()]);

    let PodOutcome::Crashed { exit_code, log } = runtime.start(&pod("old-2", IMAGE_1_54_0)) else {
        panic!("1.54.0 on a database 1.55.0 migrated must fail");
    };
    assert_eq!(exit_code, 1);
    assert!(
        log.contains(&format!(
            "The migration directory is corrupt, the following files are missing: {}",
            CATALOG_1_55_ONLY.join(", ")
        )),
        "{log}"
    );
    assert!(log.contains("Plugin 'catalog' startup failed"), "{log}");
    assert_eq!(catalog_migrations(&runtime), after_new);
    assert_eq!(runtime.running_pods(), vec!["new-1".to_string()]);

    let mut preflight = pod("preflight", IMAGE_1_54_0);
    preflight.command = vec!["/bin/sh".into(), "-c".into(), "ls".into()];
    let PodOutcome::Ready { ports, log_file } = runtime.start(&preflight) else {
        panic!("a replaced command is ready at once");
    };
    assert!(ports.is_empty() && log_file.is_none());
    assert_eq!(
        runtime.history(),
        vec![
            ("old-1".to_string(), IMAGE_1_54_0.to_string(), true),
            ("new-1".to_string(), IMAGE_1_55_0.to_string(), true),
            ("old-2".to_string(), IMAGE_1_54_0.to_string(), false),
            ("preflight".to_string(), IMAGE_1_54_0.to_string(), true),
        ]
    );
}
