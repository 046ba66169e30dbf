//! SDK errors turned into one-line [`SecretError`]s, with tokens redacted and noise dropped.

use azure_core::error::ErrorKind;

use super::credential::CredentialKind;
use super::{KeyVaultSecret, SecretError};

/// The longest message taken from an SDK error (a proxy's HTML page is not a message).
pub(super) const MAX_MESSAGE: usize = 300;

/// Maps an SDK error to the one-line error the user sees.
pub(super) fn classify(
    error: &azure_core::Error,
    secret: &KeyVaultSecret,
    kind: CredentialKind,
) -> SecretError {
    let vault_url = secret.vault_url.clone();
    let name = secret.secret.clone();
    let line = useful_line(error);
    let other = |message: String| SecretError::KeyVault {
        vault_url: secret.vault_url.clone(),
        secret: secret.secret.clone(),
        message,
    };
    match error.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => match u16::from(*status) {
            403 => SecretError::Forbidden {
                vault_url,
                secret: name,
            },
            404 => SecretError::SecretNotFound {
                vault_url,
                secret: name,
            },
            401 => other(format!(
                "the vault did not accept the {} token (401): {line}",
                kind.name()
            )),
            code => match error_code {
                Some(c) if !line.contains(c.as_str()) => other(format!("HTTP {code} {c}: {line}")),
                _ => other(format!("HTTP {code}: {line}")),
            },
        },
        ErrorKind::Credential => SecretError::NotSignedIn {
            credential: kind.name().into(),
            message: line,
        },
        _ if chain(error).any(is_tls_error) => other(format!(
            "TLS with the vault failed ({line}); if a proxy or a private CA signs its certificate, trust that CA \
             with SSL_CERT_FILE"
        )),
        _ if line.starts_with("tunnel error") => SecretError::VaultUnreachable {
            vault_url,
            message: format!("the HTTPS proxy could not connect to it: {line}"),
        },
        ErrorKind::Connection => SecretError::VaultUnreachable {
            vault_url,
            message: line,
        },
        ErrorKind::Io if chain(error).any(is_connect_error) => SecretError::VaultUnreachable {
            vault_url,
            message: line,
        },
        _ if line.contains("doesn't match the requested domain") => {
            // The SDK's advice (turn the check off in the client options) is not the user's to follow.
            let reason = line
                .split(". Set verify_challenge_resource")
                .next()
                .unwrap_or(&line);
            other(format!(
                "the vault's authentication challenge is not for its own domain, so no token was sent: {reason}"
            ))
        }
        _ => other(line),
    }
}

/// An error and its sources, with the error inside an `io::Error` (whose `source` skips it).
pub(super) fn chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
        Some(current)
    })
}

pub(super) fn is_connect_error(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<reqwest::Error>()
        .is_some_and(|e| e.is_connect() || e.is_timeout())
}

pub(super) fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<rustls::Error>()
}

/// The one line of an SDK error worth showing: the innermost cause that says something, without the
/// SDK's troubleshooting links, the credential's "authentication failed." preamble, the Azure CLI's
/// `ERROR:` prefix or the lines around it.
pub(super) fn useful_line(error: &(dyn std::error::Error + 'static)) -> String {
    let messages: Vec<String> = chain(error).map(|e| e.to_string()).collect();
    let line = messages
        .iter()
        .rev()
        .find_map(|m| best_line(m))
        .unwrap_or_else(|| "unknown error".into());
    shorten(&line)
}

pub(super) fn best_line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| strip_preamble(l.trim()))
        .filter(|l| !l.is_empty() && !l.starts_with("To troubleshoot"))
        .collect();
    let line = lines
        .iter()
        .find(|l| l.starts_with("ERROR:"))
        .or_else(|| lines.first())?;
    let unquoted = unexpected_string(line);
    let line = unquoted.as_deref().unwrap_or(line);
    // The message goes inside a sentence of ours: no closing period of its own.
    let line = line
        .strip_prefix("ERROR:")
        .unwrap_or(line)
        .trim()
        .trim_end_matches('.')
        .trim_end();
    (!line.is_empty()).then(|| line.to_string())
}

/// The first line of the string in a serde error `invalid type: string "…", expected …`. The identity
/// crate reads Entra ID's `error_description` as a borrowed string, which fails for the real ones: they
/// hold `\r\n`. The description is still the best message there is.
pub(super) fn unexpected_string(line: &str) -> Option<String> {
    let quoted = line.strip_prefix("invalid type: string \"")?;
    let end = [r"\r", r"\n", "\", expected"]
        .iter()
        .filter_map(|m| quoted.find(m))
        .min()?;
    Some(quoted[..end].replace(r#"\""#, "\"").replace(r"\\", r"\"))
}

/// `AzureCliCredential authentication failed. <message>` → `<message>`.
pub(super) fn strip_preamble(line: &str) -> &str {
    match line.split_once(" authentication failed.") {
        Some((credential, rest))
            if credential.ends_with("Credential") && !credential.contains(' ') =>
        {
            rest.trim()
        }
        _ => line,
    }
}

/// Defence in depth: whatever an SDK message quotes, a JSON Web Token in it is replaced.
pub(super) fn redact_tokens(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| {
                !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            });
            if core.starts_with("eyJ") && core.matches('.').count() >= 2 {
                word.replace(core, "<token>")
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn shorten(line: &str) -> String {
    let line = &redact_tokens(line);
    if line.chars().count() <= MAX_MESSAGE {
        return line.to_string();
    }
    let mut short: String = line.chars().take(MAX_MESSAGE).collect();
    short.push('…');
    short
}
