//! The smoke checks of `verify`, as data, and the pure judgement of each HTTP answer a check gets: what
//! counts as passing, and the one-line detail an operator reads when it does not.
//!
//! The facts behind the judgements (a real Backstage 1.55 backend): health routes answer JSON
//! (`{"status":"ok"}`, or 503 `{"message":"Backend has not started yet","status":"error"}`); plugin
//! APIs answer 401 JSON without a token and 503 JSON while their plugin has not started; unknown
//! `/api/...` paths answer 404 with an empty body; every other unknown path answers **200 text/html**
//! (the app's index page), so a status alone proves nothing: the content type is checked too.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// One HTTP answer, as far as a check looks at it (the body is bounded by the adapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: String,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Not run: what it needs was not given (a token, a sign-in provider); the detail says what.
    Skipped,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Skipped => "skipped",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub status: CheckStatus,
    /// Wall time of the check's requests, in milliseconds; `None` when it did not run.
    pub latency_ms: Option<u64>,
    pub detail: String,
    /// The last path (relative to the base URL) the check requested.
    pub path: Option<String>,
}

/// What `verify` prints for one environment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub kind: &'static str,
    pub environment: Option<String>,
    /// The base URL the checks were sent to.
    pub url: String,
    /// Without a URL: the Service and pod reached through the API server (`url` is then the local
    /// end of the port-forward); `null` otherwise.
    pub through: Option<String>,
    /// No check failed (skipped ones do not count).
    pub passed: bool,
    pub checks: Vec<CheckResult>,
}

impl VerifyReport {
    pub fn new(
        environment: Option<String>,
        url: String,
        through: Option<String>,
        checks: Vec<CheckResult>,
    ) -> VerifyReport {
        let passed = checks.iter().all(|c| c.status != CheckStatus::Fail);
        VerifyReport {
            kind: "VerifyReport",
            environment,
            url,
            through,
            passed,
            checks,
        }
    }
}

/// The names of the checks, in the order they are printed.
pub mod names {
    pub const READINESS: &str = "readiness";
    pub const LIVENESS: &str = "liveness";
    pub const SIGN_IN: &str = "sign-in";
    pub const CATALOG: &str = "catalog";
    pub const CATALOG_ANONYMOUS: &str = "catalog-anonymous";
    pub const TEMPLATES: &str = "templates";
    pub const DOCS: &str = "docs";
}

/// A catalog entity's reference, as the APIs take it in paths: namespace, kind, name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntityRef {
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

impl EntityRef {
    /// `NAMESPACE/KIND/NAME` (the form of `--docs-entity` and the API paths), each part letters,
    /// digits, `-`, `_` and `.`.
    pub fn parse(text: &str) -> Option<EntityRef> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 253
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && p != "."
                && p != ".."
        };
        match parts.as_slice() {
            [namespace, kind, name] if ok(namespace) && ok(kind) && ok(name) => Some(EntityRef {
                namespace: namespace.to_string(),
                kind: kind.to_string(),
                name: name.to_string(),
            }),
            _ => None,
        }
    }

    /// `namespace/kind/name`, lowercased kind as the API paths take it.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}",
            self.namespace,
            self.kind.to_ascii_lowercase(),
            self.name
        )
    }
}

impl fmt::Display for EntityRef {
    /// Backstage's own form: `kind:namespace/name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}/{}",
            self.kind.to_ascii_lowercase(),
            self.namespace,
            self.name
        )
    }
}

/// The identity provider's host a sign-in provider redirects to, where it is fixed.
pub fn well_known_auth_host(provider: &str) -> Option<&'static str> {
    match provider {
        "github" => Some("github.com"),
        "microsoft" => Some("login.microsoftonline.com"),
        "google" => Some("accounts.google.com"),
        "gitlab" => Some("gitlab.com"),
        "bitbucket" => Some("bitbucket.org"),
        _ => None,
    }
}

/// What a check made of an answer: a detail for a pass, or why it failed.
pub type Verdict<T = String> = Result<T, String>;

/// The detail of a 200 that is HTML where JSON was expected.
pub const HTML_PAGE: &str = "got the app's HTML page: the API route is missing";

fn is_json(answer: &Answer) -> bool {
    answer
        .content_type
        .as_deref()
        .map(|t| {
            let t = t.trim().to_ascii_lowercase();
            t.starts_with("application/json")
                || (t.starts_with("application/") && t.contains("+json"))
        })
        .unwrap_or(false)
}

fn is_html(answer: &Answer) -> bool {
    let by_type = answer
        .content_type
        .as_deref()
        .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/html"));
    let body = answer.body.trim_start().to_ascii_lowercase();
    by_type || body.starts_with("<!doctype html") || body.starts_with("<html")
}

/// The message of a Backstage error body (`{"error":{"message":…}}`, or a health `{"message":…}`).
fn error_message(answer: &Answer) -> Option<String> {
    let value: Value = serde_json::from_str(&answer.body).ok()?;
    value
        .pointer("/error/message")
        .or_else(|| value.get("message"))
        .and_then(Value::as_str)
        .map(|m| one_line(m, 200))
}

/// The first line of `text`, cut at `limit` characters.
fn one_line(text: &str, limit: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > limit {
        let cut: String = line.chars().take(limit).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

/// Why an answer is not the JSON a check expected: the status and what the body says.
fn unexpected(answer: &Answer) -> String {
    if answer.status == 200 && is_html(answer) {
        return HTML_PAGE.to_string();
    }
    if answer.status == 404 && answer.body.trim().is_empty() {
        return "404 with an empty body: the API route is missing (is the plugin installed?)"
            .to_string();
    }
    if is_html(answer) {
        return format!("{}: got an HTML page instead of the API", answer.status);
    }
    match error_message(answer) {
        Some(message) if answer.status == 401 => {
            format!("the token was refused (401: {message})")
        }
        Some(message) => format!("{}: {message}", answer.status),
        None if answer.status == 200 => {
            let kind = answer.content_type.as_deref().unwrap_or("no content type");
            format!("200 but not JSON ({kind})")
        }
        None => format!("{} {}", answer.status, reason(answer.status)),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// The answer's body as JSON, when it is a 200 with a JSON content type.
pub fn json_body(answer: &Answer) -> Verdict<Value> {
    if answer.status != 200 || !is_json(answer) {
        return Err(unexpected(answer));
    }
    serde_json::from_str(&answer.body).map_err(|_| "200 but the JSON body does not parse".into())
}

/// Readiness and liveness: 200 with JSON `status: ok`.
pub fn judge_health(answer: &Answer) -> Verdict {
    if answer.status == 503 && is_json(answer) {
        return Err(match error_message(answer) {
            Some(message) => format!("503: {message}"),
            None => "503 Service Unavailable".into(),
        });
    }
    let body = json_body(answer)?;
    match body.get("status").and_then(Value::as_str) {
        Some("ok") => Ok("ok".into()),
        Some(other) => Err(format!("200 but status is {:?}", one_line(other, 60))),
        None => Err("200 but the answer has no status".into()),
    }
}

/// Sign-in start: a 302 whose `Location` is on the identity provider's host (`expected`; any host
/// when none is known).
pub fn judge_sign_in(answer: &Answer, expected: Option<&str>) -> Verdict {
    if !matches!(answer.status, 301 | 302 | 303 | 307 | 308) {
        return Err(unexpected(answer));
    }
    let Some(location) = answer.location.as_deref() else {
        return Err(format!("{} without a Location header", answer.status));
    };
    let host = location_host(location);
    match (host, expected) {
        (None, _) => Err(format!(
            "redirects to {:?}, not to an identity provider",
            one_line(location, 80)
        )),
        (Some(host), Some(expected)) if !host.eq_ignore_ascii_case(expected) => {
            Err(format!("redirects to {host}, expected {expected}"))
        }
        (Some(host), _) => Ok(format!("redirects to {host}")),
    }
}

/// The host of an absolute `http(s)://host[:port]/…` URL.
fn location_host(location: &str) -> Option<String> {
    let rest = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host_port,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A catalog query with a token: JSON with at least one entity. The detail counts them.
pub fn judge_catalog(answer: &Answer) -> Verdict {
    let body = json_body(answer)?;
    let items = body.get("items").and_then(Value::as_array);
    let Some(items) = items else {
        return Err("200 but the answer has no items".into());
    };
    if items.is_empty() {
        return Err("the catalog answered with no entities".into());
    }
    let total = body
        .get("totalItems")
        .and_then(Value::as_u64)
        .unwrap_or(items.len() as u64);
    Ok(if total == 1 {
        "1 entity".to_string()
    } else {
        format!("{total} entities")
    })
}

/// A catalog query without a token must be refused (401, or 403).
pub fn judge_anonymous(answer: &Answer) -> Verdict {
    match answer.status {
        401 | 403 if !is_html(answer) => Ok(format!(
            "refused without a token ({} {})",
            answer.status,
            reason(answer.status)
        )),
        200 if is_json(answer) => Err("answered without a token: anonymous access is open".into()),
        _ => Err(unexpected(answer)),
    }
}

/// The first entity of a `by-query` answer (asked for with `fields=kind,metadata.namespace,metadata.name`).
pub fn first_entity(answer: &Answer, what: &str) -> Verdict<EntityRef> {
    let body = json_body(answer)?;
    let first = body
        .get("items")
        .and_then(Value::as_array)
        .and_then(|items| items.first());
    let Some(first) = first else {
        return Err(format!("the catalog has no {what}"));
    };
    let text = |pointer: &str| first.pointer(pointer).and_then(Value::as_str);
    match (text("/kind"), text("/metadata/name")) {
        (Some(kind), Some(name)) => Ok(EntityRef {
            namespace: text("/metadata/namespace").unwrap_or("default").to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        }),
        _ => Err(format!("the catalog's {what} has no kind or name")),
    }
}

/// A template's parameter schema: JSON with its steps.
pub fn judge_parameter_schema(answer: &Answer, template: &EntityRef) -> Verdict {
    let body = json_body(answer)?;
    match body.get("steps").and_then(Value::as_array) {
        Some(steps) => Ok(format!(
            "{template}: parameter schema with {} step{}",
            steps.len(),
            if steps.len() == 1 { "" } else { "s" }
        )),
        None => Err(format!("{template}: the parameter schema has no steps")),
    }
}

/// TechDocs' entity metadata: JSON describing the entity.
pub fn judge_docs_entity(answer: &Answer, entity: &EntityRef) -> Verdict {
    let body = json_body(answer).map_err(|e| format!("{entity}: {e}"))?;
    if body.pointer("/metadata/name").and_then(Value::as_str) != Some(entity.name.as_str()) {
        return Err(format!(
            "{entity}: the TechDocs metadata is not this entity's"
        ));
    }
    Ok(format!("{entity}"))
}

/// TechDocs' site metadata: 200 JSON when the docs are published; 404 JSON when they are not
/// generated yet (the `local` builder builds them on the first visit). Anything else fails.
pub fn judge_docs_site(answer: &Answer, entity: &EntityRef) -> Verdict {
    if answer.status == 404 && is_json(answer) {
        return Ok(format!(
            "{entity}: TechDocs answers; no docs published yet (404)"
        ));
    }
    let body = json_body(answer).map_err(|e| format!("{entity}: {e}"))?;
    let site = body
        .get("site_name")
        .and_then(Value::as_str)
        .map(|s| format!(" ({})", one_line(s, 60)))
        .unwrap_or_default();
    Ok(format!("{entity}: docs published{site}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, content_type: Option<&str>, body: &str) -> Answer {
        Answer {
            status,
            content_type: content_type.map(str::to_string),
            location: None,
            body: body.to_string(),
        }
    }
    const JSON: Option<&str> = Some("application/json; charset=utf-8");
    const HTML: Option<&str> = Some("text/html; charset=UTF-8");
    const INDEX: &str = "<!doctype html><html><head><title>Backstage</title></head></html>";

    #[test]
    fn health_answers_of_a_real_backend() {
        assert_eq!(
            judge_health(&answer(200, JSON, r#"{"status":"ok"}"#)),
            Ok("ok".into())
        );
        assert_eq!(
            judge_health(&answer(
                503,
                JSON,
                r#"{"message":"Backend has not started yet","status":"error"}"#
            )),
            Err("503: Backend has not started yet".into())
        );
        assert_eq!(
            judge_health(&answer(200, HTML, INDEX)),
            Err(HTML_PAGE.into())
        );
        assert_eq!(
            judge_health(&answer(200, None, INDEX)),
            Err(HTML_PAGE.into())
        );
        assert_eq!(
            judge_health(&answer(502, Some("text/plain"), "bad gateway")),
            Err("502 Bad Gateway".into())
        );
    }

    #[test]
    fn sign_in_must_redirect_to_the_identity_provider() {
        let mut a = answer(302, None, "");
        a.location = Some("https://github.com/login/oauth/authorize?client_id=x".into());
        assert_eq!(
            judge_sign_in(&a, Some("github.com")),
            Ok("redirects to github.com".into())
        );
        assert_eq!(
            judge_sign_in(&a, Some("login.microsoftonline.com")),
            Err("redirects to github.com, expected login.microsoftonline.com".into())
        );
        a.location = Some("/catalog".into());
        assert!(judge_sign_in(&a, None).is_err());
        let unknown = answer(
            404,
            JSON,
            r#"{"error":{"name":"NotFoundError","message":"Unknown auth provider 'microsoft'"}}"#,
        );
        assert_eq!(
            judge_sign_in(&unknown, None),
            Err("404: Unknown auth provider 'microsoft'".into())
        );
        assert_eq!(
            location_host("https://u@h.example:8443/x"),
            Some("h.example".into())
        );
    }

    #[test]
    fn catalog_answers() {
        let body = r#"{"items":[{"kind":"Template","metadata":{"namespace":"default","name":"t"}}],"totalItems":3,"pageInfo":{}}"#;
        assert_eq!(
            judge_catalog(&answer(200, JSON, body)),
            Ok("3 entities".into())
        );
        assert_eq!(
            judge_catalog(&answer(200, JSON, r#"{"items":[],"totalItems":0}"#)),
            Err("the catalog answered with no entities".into())
        );
        let refused = answer(
            401,
            JSON,
            r#"{"error":{"name":"AuthenticationError","message":"Illegal token"}}"#,
        );
        assert_eq!(
            judge_catalog(&refused),
            Err("the token was refused (401: Illegal token)".into())
        );
        assert_eq!(
            judge_anonymous(&refused),
            Ok("refused without a token (401 Unauthorized)".into())
        );
        assert_eq!(
            judge_anonymous(&answer(200, JSON, body)),
            Err("answered without a token: anonymous access is open".into())
        );
        assert_eq!(
            judge_anonymous(&answer(200, HTML, INDEX)),
            Err(HTML_PAGE.into())
        );
        assert_eq!(
            judge_catalog(&answer(404, None, "")),
            Err(
                "404 with an empty body: the API route is missing (is the plugin installed?)"
                    .into()
            )
        );
        assert_eq!(
            first_entity(&answer(200, JSON, body), "template"),
            Ok(EntityRef {
                namespace: "default".into(),
                kind: "Template".into(),
                name: "t".into()
            })
        );
    }

    #[test]
    fn docs_not_generated_is_a_json_404() {
        let e = EntityRef::parse("default/Component/petstore").unwrap();
        assert_eq!(e.path(), "default/component/petstore");
        assert_eq!(e.to_string(), "component:default/petstore");
        let not_built = answer(
            404,
            JSON,
            r#"{"error":{"name":"NotFoundError","message":"Unable to get metadata"}}"#,
        );
        assert_eq!(
            judge_docs_site(&not_built, &e),
            Ok("component:default/petstore: TechDocs answers; no docs published yet (404)".into())
        );
        assert_eq!(
            judge_docs_site(&answer(404, None, ""), &e),
            Err("component:default/petstore: 404 with an empty body: the API route is missing (is the plugin installed?)".into())
        );
        assert_eq!(
            judge_docs_entity(&answer(200, HTML, INDEX), &e),
            Err(format!("component:default/petstore: {HTML_PAGE}"))
        );
    }

    #[test]
    fn entity_refs_are_three_safe_parts() {
        for bad in ["", "a/b", "a/b/c/d", "a//c", "../b/c", "a/b/c?x", "a/b/c d"] {
            assert_eq!(EntityRef::parse(bad), None, "{bad}");
        }
    }
}
