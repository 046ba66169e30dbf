//! Checks of names the user gives, before they reach a URL path, a database name or a SQL identifier.

use super::SettingsError;

/// Key Vault names: 3-24 characters, letters, digits and dashes, starting with a letter.
pub(super) fn validate_vault_name(name: &str) -> Result<(), SettingsError> {
    let ok = (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    check(
        ok,
        "--vault",
        name,
        "is not a Key Vault name (3-24 letters, digits and dashes)",
    )
}

/// A Backstage plugin id is used as part of a database or schema name: letters, digits, `-` and `_`.
pub fn validate_plugin_id(id: &str) -> Result<(), SettingsError> {
    let ok = !id.is_empty()
        && id.len() <= 48
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    check(
        ok,
        "--plugin",
        id,
        "is not a plugin id (letters, digits, '-' and '_', at most 48)",
    )
}

/// A Knex migration table name: `knex_migrations` or a prefixed one (`…__knex_migrations`).
pub fn validate_table_name(table: &str) -> Result<(), SettingsError> {
    let ok = table.ends_with("knex_migrations")
        && table.len() <= 63
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    check(
        ok,
        "--table",
        table,
        "is not a Knex migration table (a name ending in knex_migrations)",
    )
}

/// A namespace, as the API server accepts it (a DNS-1123 label): it goes into URL paths.
/// `source` says where it came from (`-n`, `environments.NAME.namespace`, the kubeconfig context).
pub fn validate_namespace(namespace: &str, source: &str) -> Result<(), SettingsError> {
    let ok = is_dns1123_label(namespace);
    check(
        ok,
        source,
        namespace,
        "is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)",
    )
}

/// Kubernetes' DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn check(ok: bool, what: &str, value: &str, problem: &'static str) -> Result<(), SettingsError> {
    if ok {
        Ok(())
    } else {
        Err(SettingsError::InvalidValue {
            what: what.to_string(),
            value: value.to_string(),
            problem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_dns_labels() {
        for good in ["backstage", "a", "backstage-ptl", "x1", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in [
            "",
            "kube-system/pods/x/..",
            "Backstage",
            "-a",
            "a-",
            "a.b",
            "a_b",
            &"a".repeat(64),
            "ns\u{1b}[31m",
        ] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        assert_eq!(
            validate_namespace("a/b", "-n").unwrap_err().to_string(),
            "-n \"a/b\" is not a valid namespace (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
        );
    }

    #[test]
    fn plugin_ids_and_tables() {
        assert!(validate_plugin_id("catalog").is_ok());
        assert!(validate_plugin_id("search-backend_x").is_ok());
        for bad in ["", "../x", "a;drop", "-a", &"a".repeat(49)] {
            assert!(validate_plugin_id(bad).is_err(), "{bad}");
        }
        assert!(validate_table_name("backstage_backend_tasks__knex_migrations").is_ok());
        assert!(validate_table_name("users").is_err());
    }
}
