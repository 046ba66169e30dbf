//! Property tests of the config file parser (`settings::parse_config`), through the public API.
//! The other parsers and orderings have theirs next to the code: `model::time`, `model::diagnosis`,
//! `model::events`, `knex::model` and `kube::config`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kubectl_backstage::settings::{
    ConfigFile, DatabaseConfig, Environment, KeyVaultRef, PasswordSource, parse_config,
};
use proptest::prelude::*;

/// Scalars YAML likes to read as something else, and plain ones.
const TRICKY: &[&str] = &[
    "",
    " ",
    "null",
    "~",
    "yes",
    "no",
    "off",
    "true",
    "1",
    "0x1F",
    "1e3",
    "0o17",
    ".inf",
    "-",
    "- a",
    ": x",
    "a: b",
    "#comment",
    "a #b",
    "'",
    "\"",
    "\\",
    "{a}",
    "[a]",
    "&anchor",
    "*alias",
    "!tag",
    "|",
    ">",
    "%",
    "@",
    "`",
    "a\nb",
    "trailing ",
    "\ttab",
    "\u{feff}bom",
    "\u{85}next-line",
    "\u{2028}",
    "caf\u{e9}",
    "\u{1f600}",
    "prod",
    "backstage-pr-1234",
    "verify-full",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(TRICKY).prop_map(str::to_string),
        "[a-z0-9-]{1,12}",
        any::<String>(),
    ]
}

fn optional() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn password() -> impl Strategy<Value = PasswordSource> {
    (proptest::option::of((text(), text())), optional()).prop_map(|(key_vault, env)| {
        PasswordSource {
            key_vault: key_vault.map(|(vault, secret)| KeyVaultRef { vault, secret }),
            env,
        }
    })
}

fn database() -> impl Strategy<Value = DatabaseConfig> {
    (
        (optional(), proptest::option::of(any::<u16>()), optional()),
        (
            optional(),
            proptest::option::of(text().prop_map(PathBuf::from)),
        ),
        (optional(), optional(), optional()),
        proptest::option::of(password()),
    )
        .prop_map(
            |(
                (host, port, user),
                (sslmode, sslrootcert),
                (division_mode, database_prefix, database),
                password,
            )| DatabaseConfig {
                host,
                port,
                user,
                sslmode,
                sslrootcert,
                division_mode,
                database_prefix,
                database,
                password,
            },
        )
}

fn environment() -> impl Strategy<Value = Environment> {
    (
        optional(),
        optional(),
        optional(),
        proptest::option::of(database()),
    )
        .prop_map(|(context, namespace, url, database)| Environment {
            context,
            namespace,
            url,
            database,
            verify: None,
        })
}

fn config() -> impl Strategy<Value = ConfigFile> {
    (
        optional(),
        proptest::collection::btree_map(text(), environment(), 0..4),
    )
        .prop_map(|(default_environment, environments)| ConfigFile {
            default_environment,
            environments: environments.into_iter().collect::<BTreeMap<_, _>>(),
        })
}

/// Pieces of config files, put together in any order: keys, indentation, YAML syntax.
const FRAGMENTS: &[&str] = &[
    "defaultEnvironment: ",
    "environments:",
    "\n",
    "  ",
    "prod:",
    "context: ",
    "namespace: ",
    "database:",
    "port: ",
    "65536",
    "-1",
    "sslmode: ",
    "password:",
    "keyVault:",
    "vault: ",
    "secret: ",
    "env: ",
    "unknown: ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "---",
    "...",
    "'",
    "\"",
    "\t",
    "~",
    "x",
];

proptest! {
    #[test]
    fn parse_config_never_panics(text in any::<String>()) {
        check_outcome(&text)?;
    }

    #[test]
    fn parse_config_never_panics_on_config_like_text(
        parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..60),
    ) {
        check_outcome(&parts.concat())?;
    }

    #[test]
    fn a_valid_config_round_trips(config in config()) {
        let text = serde_norway::to_string(&config).unwrap();
        let parsed = parse_config(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&config), "{}", text);
    }
}

/// A config or one line saying what is wrong.
fn check_outcome(text: &str) -> Result<(), TestCaseError> {
    if let Err(message) = parse_config(text) {
        prop_assert!(!message.contains('\n'), "{}", message);
        prop_assert!(!message.is_empty());
    }
    Ok(())
}
