//! The plain option types shared by the command line, the config file and the adapters — a leaf
//! module with no imports from the rest of the crate. Each enum has exactly one text mapping
//! ([`SslMode::as_str`] …), used for parsing, printing and handing the value to other programs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Declares an option enum with its one text mapping: `as_str`, `FromStr` (listing the accepted
/// values in the error), `Display`, and serde as that text.
macro_rules! option_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[value(name = $text)] #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's one spelling, as typed on the command line and in the config file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("{} {text:?} is not supported; use {}", $what, names.join(", "))
                    })
            }
        }
    };
}

option_enum!(
    /// libpq's `sslmode` values this tool supports (`prefer`/`allow` would silently fall back to plain
    /// text).
    SslMode, "sslmode" {
        Disable => "disable",
        Require => "require",
        VerifyCa => "verify-ca",
        VerifyFull => "verify-full",
    }
);

option_enum!(
    /// How to sign in to Azure for Key Vault (`--azure-auth`).
    AzureAuth, "azure auth" {
        /// The Azure CLI's login (`az login`)
        Cli => "cli",
        /// AKS workload identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID)
        Workload => "workload",
        /// The machine's managed identity
        Managed => "managed",
        /// A service principal (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID)
        ServicePrincipal => "service-principal",
    }
);

option_enum!(
    /// One database per plugin, or one database with a schema per plugin.
    DivisionMode, "divisionMode" {
        Database => "database",
        Schema => "schema",
    }
);

option_enum!(
    /// How results are printed (`-o`).
    OutputFormat, "output format" {
        /// A table that fits the terminal
        Table => "table",
        /// The table with more columns
        Wide => "wide",
        /// One JSON document
        Json => "json",
        /// The same document as YAML
        Yaml => "yaml",
    }
);

// Written out because the declaring macro derives the same traits for every enum.
#[allow(clippy::derivable_impls)]
impl Default for OutputFormat {
    fn default() -> Self {
        OutputFormat::Table
    }
}

/// Where a version's migration files come from, as `--source` / `--to` name it: `pod` (a running
/// Backstage pod), `pod:NAME`, `image:REF` (an image not yet deployed, read in a short-lived pod), or
/// a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Pod(Option<String>),
    Image(String),
    Dir(PathBuf),
}

impl SourceSpec {
    /// Splits the text by its prefix; the image reference is checked by [`check_image_reference`].
    pub fn parse(text: &str) -> SourceSpec {
        match text {
            "pod" => SourceSpec::Pod(None),
            _ => {
                if let Some(name) = text.strip_prefix("pod:") {
                    SourceSpec::Pod(Some(name.to_string()))
                } else if let Some(reference) = text.strip_prefix("image:") {
                    SourceSpec::Image(reference.to_string())
                } else {
                    SourceSpec::Dir(PathBuf::from(text))
                }
            }
        }
    }
}

/// Checks an image reference as the container runtime would parse it (`[registry[:port]/]path[:tag]
/// [@algorithm:digest]`, the path in lowercase). The error says what is wrong, without the prefix.
pub fn check_image_reference(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("the image reference is empty".into());
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("an image reference has no spaces".into());
    }
    if reference.len() > 4096 {
        return Err("the image reference is too long".into());
    }
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return Err(format!("digest {digest:?} is not ALGORITHM:HEX"));
        };
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("digest {digest:?} is not ALGORITHM:HEX"));
        }
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(colon) => (
            &name[..last_slash + colon],
            Some(&name[last_slash + colon + 1..]),
        ),
        None => (name, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err(format!(
                "tag {tag:?} is not valid (letters, digits, '_', '.', '-'; at most 128)"
            ));
        }
    }
    if path.is_empty() {
        return Err("the image reference names no repository".into());
    }
    let mut components: Vec<&str> = path.split('/').collect();
    // A first component with '.' or ':' or `localhost` is the registry host, which may have capitals.
    if components.len() > 1
        && (components[0].contains('.')
            || components[0].contains(':')
            || components[0] == "localhost")
    {
        let host = components.remove(0);
        let (host_name, port) = match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        let host_ok = !host_name.is_empty()
            && host_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !host_ok || port.is_some_and(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(format!(
                "registry {host:?} is not a host name with an optional port"
            ));
        }
    }
    for component in components {
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "repository {path:?} has uppercase letters (repository names are lowercase)"
            ));
        }
        let valid = !component.is_empty()
            && component
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && component
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && component
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(format!(
                "repository {path:?} is not valid (lowercase letters, digits and separators '.', '_', '-' between '/')"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_has_one_spelling_that_parses_back() {
        for mode in SslMode::ALL {
            assert_eq!(mode.as_str().parse::<SslMode>(), Ok(*mode));
            assert_eq!(mode.to_string(), mode.as_str());
            let json = serde_json::to_string(mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
        }
        assert_eq!(SslMode::VerifyCa.as_str(), "verify-ca");
        assert_eq!(AzureAuth::ServicePrincipal.as_str(), "service-principal");
        for format in OutputFormat::ALL {
            assert_eq!(format.as_str().parse::<OutputFormat>(), Ok(*format));
        }
        for mode in DivisionMode::ALL {
            assert_eq!(mode.as_str().parse::<DivisionMode>(), Ok(*mode));
        }
    }

    #[test]
    fn sources_by_prefix() {
        assert_eq!(SourceSpec::parse("pod"), SourceSpec::Pod(None));
        assert_eq!(
            SourceSpec::parse("pod:backstage-1"),
            SourceSpec::Pod(Some("backstage-1".into()))
        );
        assert_eq!(
            SourceSpec::parse("image:ghcr.io/acme/backstage:pr-4321-abc1234"),
            SourceSpec::Image("ghcr.io/acme/backstage:pr-4321-abc1234".into())
        );
        assert_eq!(
            SourceSpec::parse("./checkout"),
            SourceSpec::Dir(PathBuf::from("./checkout"))
        );
    }

    #[test]
    fn image_references_as_the_runtime_takes_them() {
        for good in [
            "backstage",
            "backstage:1.55.0",
            "ghcr.io/acme/backstage:pr-4321-abc1234",
            "Registry.Example.com:5000/team/backstage:prod-5f3c2a1-20261122110000",
            "localhost/backstage",
            "acme/backstage@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "acme/backstage:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_image_reference(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("", "the image reference is empty"),
            ("acme/back stage", "an image reference has no spaces"),
            (
                "ghcr.io/Acme/backstage:1",
                "repository \"ghcr.io/Acme/backstage\" has uppercase letters (repository names are lowercase)",
            ),
            (
                "acme/backstage:",
                "tag \"\" is not valid (letters, digits, '_', '.', '-'; at most 128)",
            ),
            (
                "acme/backstage@sha256:xyz",
                "digest \"sha256:xyz\" is not ALGORITHM:HEX",
            ),
            (
                "acme//backstage",
                "repository \"acme//backstage\" is not valid (lowercase letters, digits and separators '.', '_', '-' between '/')",
            ),
            (":1.0", "the image reference names no repository"),
        ] {
            assert_eq!(check_image_reference(bad), Err(says.to_string()), "{bad:?}");
        }
    }

    #[test]
    fn unknown_values_name_the_accepted_ones() {
        assert_eq!(
            "prefer".parse::<SslMode>(),
            Err(
                "sslmode \"prefer\" is not supported; use disable, require, verify-ca, verify-full"
                    .into()
            )
        );
        assert_eq!(
            "tables".parse::<DivisionMode>(),
            Err("divisionMode \"tables\" is not supported; use database, schema".into())
        );
    }
}
