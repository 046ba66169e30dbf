//! Redaction rules of the support bundle (`report`): what counts as a secret in a name, in free text
//! (log lines, arguments, annotation values, URLs) and in Kubernetes objects and the config document,
//! and how each is replaced by [`REDACTED`]. Pure: values in, values out. The rules err on the side of
//! removing too much: a support bundle is read by people who must never see a credential.
//!
//! What stays: references to secrets (an env `valueFrom.secretKeyRef` names a Secret and a key; a Key
//! Vault reference names a vault and a secret; `password.env` names a variable) — they are names, and
//! a maintainer needs them.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::{Map, Value};

/// What a removed secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// The annotation in which `kubectl apply` keeps the whole object as last applied, secrets and all.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Name segments (split at `_`, `-`, `.`, `/` and camelCase humps) that mark a secret.
const SECRET_SEGMENTS: &[&str] = &[
    "PASSWORD",
    "PASSWORDS",
    "PASSWD",
    "PASSPHRASE",
    "PWD",
    "PASS",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "KEY",
    "KEYS",
    "APIKEY",
    "CREDENTIAL",
    "CREDENTIALS",
    "CREDS",
    "DSN",
    "AUTHORIZATION",
    "COOKIE",
    "SAS",
    "SIG",
    "SIGNATURE",
    "PRIVATE",
    "CONNSTR",
];

/// Words that mark a secret wherever they are in a name, also run together (`PGPASSWORD`,
/// `GITHUBTOKEN`, `ConnectionString`).
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "APIKEY",
    "ACCESSKEY",
    "PRIVATEKEY",
    "CONNECTIONSTRING",
    "BASICAUTH",
];

/// Whether a variable, flag, field or annotation named `name` would hold a secret: `DB_PASSWORD`,
/// `GITHUB_TOKEN`, `--client-secret`, `apiKey`, `AZURE_STORAGE_CONNECTION_STRING`, `SENTRY_DSN`.
pub fn is_secret_name(name: &str) -> bool {
    let segments = name_segments(name);
    if segments
        .iter()
        .any(|s| SECRET_SEGMENTS.contains(&s.as_str()))
    {
        return true;
    }
    let joined: String = segments.concat();
    SECRET_WORDS.iter().any(|w| joined.contains(w))
}

/// A name split into upper-case segments at separators and camelCase humps.
fn name_segments(name: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                segments.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !current.is_empty() {
            segments.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_uppercase());
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// `scheme://user:password@` and `scheme://token@`: the credentials of a URL.
static URL_CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@:?#]*)(:[^\s/@]*)?@").expect("valid regex")
});

/// `Authorization: Bearer …`, `Authorization: Basic …`, and a bare `Bearer …`.
static AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b(authorization["']?\s*[:=]\s*["']?)(?:(bearer|basic|token|negotiate)\s+)?[^\s"',;]+|\b(bearer)\s+[A-Za-z0-9._~+/=-]+"#,
    )
    .expect("valid regex")
});

/// `KEY=value`, `KEY: value`, `"key": "value"`, `--key=value`: a value after a name, judged by the
/// name. A quoted value runs to its closing quote.
static NAMED_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"([A-Za-z_][A-Za-z0-9_.-]*)(["']?[ \t]*[:=][ \t]*)(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([^\s"',;&}\]\)]+))"#,
    )
    .expect("valid regex")
});

/// Well-known token shapes, whatever their context: JWTs and GitHub tokens.
static TOKEN_SHAPES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*|\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{20,}",
    )
    .expect("valid regex")
});

/// Free text (a log line, an argument, an annotation value) with its secrets replaced: URL
/// credentials, authorization headers, values after secret-looking names, and token shapes.
pub fn redact_text(text: &str) -> String {
    let text = URL_CREDENTIALS.replace_all(text, |c: &Captures| match c.get(3) {
        // user:password@ keeps the user, a lone userinfo is taken for a token.
        Some(_) => format!("{}{}:{REDACTED}@", &c[1], &c[2]),
        None => format!("{}{REDACTED}@", &c[1]),
    });
    let text = AUTHORIZATION.replace_all(&text, |c: &Captures| match (c.get(1), c.get(3)) {
        (Some(head), _) => match c.get(2) {
            Some(scheme) => format!("{}{} {REDACTED}", head.as_str(), scheme.as_str()),
            None => format!("{}{REDACTED}", head.as_str()),
        },
        (None, Some(scheme)) => format!("{} {REDACTED}", scheme.as_str()),
        (None, None) => c[0].to_string(),
    });
    let text = NAMED_VALUE.replace_all(&text, |c: &Captures| {
        let name = &c[1];
        let value = c
            .get(3)
            .or(c.get(4))
            .or(c.get(5))
            .map_or("", |m| m.as_str());
        // An authorization scheme (`Bearer`) is kept: the credential after it was taken above.
        let scheme = ["bearer", "basic", "token", "negotiate"]
            .iter()
            .any(|s| value.eq_ignore_ascii_case(s));
        if !is_secret_name(name) || value.contains(REDACTED) || value.is_empty() || scheme {
            // The value itself may hold `password=…` (a JSON log line's message does): it is
            // redacted as text of its own, which is shorter, so this ends.
            let whole = c.get(0).expect("the whole match");
            let value_match = c.get(3).or(c.get(4)).or(c.get(5)).expect("one value form");
            let inner = redact_text(value_match.as_str());
            let start = value_match.start() - whole.start();
            let end = value_match.end() - whole.start();
            let text = whole.as_str();
            return format!("{}{inner}{}", &text[..start], &text[end..]);
        }
        let quoted = if c.get(3).is_some() {
            format!("\"{REDACTED}\"")
        } else if c.get(4).is_some() {
            format!("'{REDACTED}'")
        } else {
            REDACTED.to_string()
        };
        format!("{name}{}{quoted}", &c[2])
    });
    TOKEN_SHAPES.replace_all(&text, REDACTED).into_owned()
}

/// A log with every line redacted (line ends kept).
pub fn redact_log(log: &str) -> String {
    log.split_inclusive('\n').map(redact_text).collect()
}

/// Arguments (`args`, `command`) redacted: each item as text, and the item after a secret-looking
/// flag given on its own (`--password`, `VALUE`).
pub fn redact_arguments(items: &mut [Value]) {
    let mut next_is_secret = false;
    for item in items.iter_mut() {
        let Value::String(text) = item else {
            next_is_secret = false;
            continue;
        };
        if next_is_secret {
            *text = REDACTED.to_string();
            next_is_secret = false;
            continue;
        }
        next_is_secret = text
            .strip_prefix('-')
            .map(|flag| flag.trim_start_matches('-'))
            .is_some_and(|flag| {
                !flag.is_empty()
                    && !flag.contains('=')
                    && !flag.contains(' ')
                    && is_secret_name(flag)
            });
        *text = redact_text(text);
    }
}

/// A Kubernetes object made fit for a support bundle: `managedFields` dropped, the
/// last-applied-configuration annotation redacted as an object of its own, literal values of
/// secret-looking env variables replaced (references stay), arguments and commands redacted, and
/// every other string redacted as text.
pub fn redact_object(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    redact_value(object, None);
}

/// Walks a value; `key` is the field it is the value of.
fn redact_value(value: &mut Value, key: Option<&str>) {
    match value {
        // An image reference is a name, never a credential, and must survive whole.
        Value::String(_) if key == Some("image") => {}
        Value::String(text) => *text = redact_text(text),
        Value::Array(items) => {
            if matches!(key, Some("args" | "command")) {
                redact_arguments(items);
                return;
            }
            let is_env = key == Some("env");
            for item in items.iter_mut() {
                if is_env {
                    redact_env_var(item);
                }
                redact_value(item, None);
            }
        }
        Value::Object(map) => {
            if matches!(key, Some("annotations" | "labels")) {
                redact_annotations(map);
                return;
            }
            for (k, v) in map.iter_mut() {
                redact_value(v, Some(k));
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// One `env` entry: a literal `value` of a secret-looking name is replaced; `valueFrom` stays (it
/// names a Secret or ConfigMap and a key, never the value).
fn redact_env_var(var: &mut Value) {
    let secret = var
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(is_secret_name);
    if let Some(value) = var.get_mut("value")
        && secret
        && value.is_string()
    {
        *value = Value::String(REDACTED.to_string());
    }
}

/// Annotations and labels: the last-applied configuration is redacted as the object it is; a
/// secret-looking key loses its value; every other value is redacted as text.
fn redact_annotations(map: &mut Map<String, Value>) {
    for (k, v) in map.iter_mut() {
        let Value::String(text) = v else {
            redact_value(v, None);
            continue;
        };
        if k == LAST_APPLIED {
            *text = match serde_json::from_str::<Value>(text) {
                Ok(mut applied) => {
                    redact_object(&mut applied);
                    serde_json::to_string(&applied).expect("a JSON value serializes")
                }
                // Not JSON: nothing can be kept safely.
                Err(_) => REDACTED.to_string(),
            };
        } else if is_secret_name(annotation_name(k)) {
            *text = REDACTED.to_string();
        } else {
            *text = redact_text(text);
        }
    }
}

/// The name part of an annotation key (`example.com/api-token` → `api-token`).
fn annotation_name(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, name)| name)
}

/// The resolved config document: a string under a secret-looking key is replaced, except inside a
/// Key Vault reference (`keyVault: {vault, secret}` names a secret) and a variable name (`env:`);
/// every other string is redacted as text (a URL's credentials, say).
pub fn redact_config(value: &mut Value) {
    match value {
        Value::String(text) => *text = redact_text(text),
        Value::Array(items) => items.iter_mut().for_each(redact_config),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "keyVault" || k == "env" {
                    // Names of a vault, a secret and a variable: kept as they are.
                    continue;
                }
                if v.is_string() && is_secret_name(k) {
                    *v = Value::String(REDACTED.to_string());
                } else {
                    redact_config(v);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: &str = "S3NT1NEL-value";

    #[test]
    fn secret_names() {
        for name in [
            "PASSWORD",
            "DB_PASSWORD",
            "PGPASSWORD",
            "POSTGRES_PASSWORD",
            "GITHUB_TOKEN",
            "githubToken",
            "AUTH_MICROSOFT_CLIENT_SECRET",
            "clientSecret",
            "client-secret",
            "API_KEY",
            "apiKey",
            "STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_CONNECTION_STRING",
            "ConnectionString",
            "SENTRY_DSN",
            "AWS_SECRET_ACCESS_KEY",
            "BACKEND_SECRET",
            "credentials",
            "DB_PWD",
            "private-key",
            "BASIC_AUTH",
        ] {
            assert!(is_secret_name(name), "{name} looks secret");
        }
        for name in [
            "NODE_ENV",
            "DATABASE_URL",
            "POSTGRES_HOST",
            "POSTGRES_USER",
            "LOG_LEVEL",
            "APP_CONFIG_backend_baseUrl",
            "KEYCLOAK_URL",
            "MONKEY",
            "image",
            "name",
            "app.kubernetes.io/name",
            "nginx.ingress.kubernetes.io/auth-url",
            "AUTH_MICROSOFT_CLIENT_ID",
        ] {
            assert!(!is_secret_name(name), "{name} does not look secret");
        }
    }

    #[test]
    fn url_credentials() {
        assert_eq!(
            redact_text(&format!(
                "postgresql://pgadmin:{S}@db.example.net:5432/backstage"
            )),
            "postgresql://pgadmin:<redacted>@db.example.net:5432/backstage"
        );
        assert_eq!(
            redact_text(&format!("clone https://{S}@github.com/org/repo.git")),
            "clone https://<redacted>@github.com/org/repo.git"
        );
        // No credentials: untouched.
        assert_eq!(
            redact_text("https://backstage.example.net/api/catalog?x=1"),
            "https://backstage.example.net/api/catalog?x=1"
        );
    }

    #[test]
    fn authorization_headers_and_tokens() {
        assert_eq!(
            redact_text(&format!("Authorization: Bearer {S}")),
            "Authorization: Bearer <redacted>"
        );
        assert_eq!(
            redact_text(&format!(
                r#"{{"headers":{{"authorization":"Bearer {S}"}}}}"#
            )),
            r#"{"headers":{"authorization":"Bearer <redacted>"}}"#
        );
        assert_eq!(
            redact_text(&format!("curl -H 'authorization: Basic {S}' x")),
            "curl -H 'authorization: Basic <redacted>' x"
        );
        assert_eq!(
            redact_text(&format!("sent bearer {S}")),
            "sent bearer <redacted>"
        );
        assert_eq!(
            redact_text("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end"),
            "jwt <redacted> end"
        );
        assert_eq!(
            redact_text("ghp_abcdefghijklmnopqrstuvwxyz0123456789 used"),
            "<redacted> used"
        );
    }

    #[test]
    fn values_after_secret_names() {
        for (text, want) in [
            (
                format!("--password={S}"),
                "--password=<redacted>".to_string(),
            ),
            (format!("--token={S}"), "--token=<redacted>".into()),
            (format!("token={S}&x=1"), "token=<redacted>&x=1".into()),
            (
                format!("Server=db;User Id=a;Password={S};Ssl=true"),
                "Server=db;User Id=a;Password=<redacted>;Ssl=true".into(),
            ),
            (
                format!(r#"{{"level":"error","password":"{S}","plugin":"auth"}}"#),
                r#"{"level":"error","password":"<redacted>","plugin":"auth"}"#.into(),
            ),
            (
                format!("client_secret: {S}"),
                "client_secret: <redacted>".into(),
            ),
            (
                format!("password='{S} with spaces' next"),
                "password='<redacted>' next".into(),
            ),
        ] {
            assert_eq!(redact_text(&text), want, "{text}");
        }
        // Names that are not secret keep their values.
        let plain = "NODE_ENV=production level=info plugin: catalog";
        assert_eq!(redact_text(plain), plain);
    }

    #[test]
    fn logs_keep_their_lines() {
        let log = format!("a ok\nb password={S}\nc Authorization: Bearer {S}\n");
        assert_eq!(
            redact_log(&log),
            "a ok\nb password=<redacted>\nc Authorization: Bearer <redacted>\n"
        );
    }

    #[test]
    fn arguments() {
        let mut args = vec![
            json!("--token"),
            json!(S),
            json!(format!("--password={S}")),
            json!("--port"),
            json!("7007"),
            json!("--config"),
            json!("app-config.yaml"),
        ];
        redact_arguments(&mut args);
        assert_eq!(
            args,
            vec![
                json!("--token"),
                json!("<redacted>"),
                json!("--password=<redacted>"),
                json!("--port"),
                json!("7007"),
                json!("--config"),
                json!("app-config.yaml"),
            ]
        );
    }

    fn deployment() -> Value {
        let applied = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "backstage"},
            "spec": {"template": {"spec": {"containers": [{"name": "backstage",
                "env": [{"name": "POSTGRES_PASSWORD", "value": S}, {"name": "NODE_ENV", "value": "production"}]}]}}}
        });
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "backstage",
                "annotations": {
                    LAST_APPLIED: applied.to_string(),
                    "deployment.kubernetes.io/revision": "3",
                    "example.com/api-token": S,
                },
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"template": {"spec": {"containers": [{
                "name": "backstage",
                "image": "acr.example.net/backstage:prod-1a2b3c4",
                "args": ["--token", S, format!("--password={S}")],
                "env": [
                    {"name": "POSTGRES_PASSWORD", "value": S},
                    {"name": "DATABASE_URL", "value": format!("postgres://backstage:{S}@db:5432/x")},
                    {"name": "NODE_ENV", "value": "production"},
                    {"name": "GITHUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": "backstage-secrets", "key": "github-token"}}},
                ],
            }]}}}
        })
    }

    #[test]
    fn objects() {
        let mut object = deployment();
        redact_object(&mut object);
        let text = object.to_string();
        assert!(!text.contains("S3NT1NEL"), "{text}");
        assert!(object["metadata"].get("managedFields").is_none());
        let container = &object["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["env"],
            json!([
                {"name": "POSTGRES_PASSWORD", "value": "<redacted>"},
                {"name": "DATABASE_URL", "value": "postgres://backstage:<redacted>@db:5432/x"},
                {"name": "NODE_ENV", "value": "production"},
                {"name": "GITHUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": "backstage-secrets", "key": "github-token"}}},
            ])
        );
        assert_eq!(
            container["args"],
            json!(["--token", "<redacted>", "--password=<redacted>"])
        );
        assert_eq!(container["image"], "acr.example.net/backstage:prod-1a2b3c4");
        let annotations = &object["metadata"]["annotations"];
        assert_eq!(annotations["deployment.kubernetes.io/revision"], "3");
        assert_eq!(annotations["example.com/api-token"], "<redacted>");
        let applied: Value =
            serde_json::from_str(annotations[LAST_APPLIED].as_str().unwrap()).unwrap();
        assert_eq!(
            applied["spec"]["template"]["spec"]["containers"][0]["env"],
            json!([{"name": "POSTGRES_PASSWORD", "value": "<redacted>"}, {"name": "NODE_ENV", "value": "production"}])
        );
    }

    #[test]
    fn a_last_applied_configuration_that_is_not_json_is_dropped() {
        let mut object =
            json!({"metadata": {"annotations": {LAST_APPLIED: format!("password: {S}")}}});
        redact_object(&mut object);
        assert_eq!(
            object["metadata"]["annotations"][LAST_APPLIED],
            "<redacted>"
        );
    }

    #[test]
    fn config_document() {
        let mut config = json!({
            "url": format!("https://admin:{S}@backstage.example.net/"),
            "database": {"host": "db.example.net", "user": "pgadmin",
                         "password": {"keyVault": {"vault": "sbox-intsvc", "secret": "backstage-psqldb-password"}}},
            "verify": {"token": {"env": "BACKSTAGE_TOKEN"}},
            "clientSecret": S,
        });
        redact_config(&mut config);
        assert_eq!(
            config,
            json!({
                "url": "https://admin:<redacted>@backstage.example.net/",
                "database": {"host": "db.example.net", "user": "pgadmin",
                             "password": {"keyVault": {"vault": "sbox-intsvc", "secret": "backstage-psqldb-password"}}},
                "verify": {"token": {"env": "BACKSTAGE_TOKEN"}},
                "clientSecret": "<redacted>",
            })
        );
    }
}
