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
/// Backstage pod), `pod:NAME`, or a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Pod(Option<String>),
    Dir(PathBuf),
}

impl SourceSpec {
    pub fn parse(text: &str) -> SourceSpec {
        match text {
            "pod" => SourceSpec::Pod(None),
            _ => match text.strip_prefix("pod:") {
                Some(name) => SourceSpec::Pod(Some(name.to_string())),
                None => SourceSpec::Dir(PathBuf::from(text)),
            },
        }
    }
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
