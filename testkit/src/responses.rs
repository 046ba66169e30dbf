//! Responses in the API server's manner: JSON bodies and `Status` failures.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::{Value, json};

use crate::discovery::Resource;

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    json_response_typed(code, v, "application/json")
}

pub(crate) fn json_response_typed(
    code: StatusCode,
    v: &Value,
    content_type: &'static str,
) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        "audit-id",
        HeaderValue::from_str(&crate::fixtures::fake_uid("audit", rand_u64()))
            .unwrap_or(HeaderValue::from_static("0")),
    );
    r
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A failure `Status` object, as the API server sends it with an error.
pub fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// A `Status` failure response.
pub(crate) fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut v = status_object(code, reason, message);
    if let Some(d) = details {
        v["details"] = d;
    }
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &v,
    )
}

pub(crate) fn not_found_path() -> Response<Body> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

pub(crate) fn object_not_found(res: &Resource, name: &str) -> Response<Body> {
    let mut details = json!({"name": name, "kind": res.plural});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    status_response(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(res)),
        Some(details),
    )
}

pub(crate) fn bad_request(message: &str) -> Response<Body> {
    status_response(400, "BadRequest", message, None)
}

pub(crate) fn bad_request_pub(message: &str) -> Response<Body> {
    bad_request(message)
}

pub(crate) fn qualified(res: &Resource) -> String {
    if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}
