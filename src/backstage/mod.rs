//! HTTP to a Backstage portal: GET requests below a base URL, with or without the API token, whose
//! answers come back as [`Answer`]s for the pure judgements of `model::verify`.
//!
//! reqwest over rustls with the ring provider (system and Mozilla roots, as for Key Vault). Redirects
//! are **not** followed: a sign-in start must be seen as the 302 it is, and an API that redirects is
//! not answering. Bodies are read up to [`MAX_BODY`]. Proxies come from the standard variables. The
//! token goes into the `Authorization` header only; errors name the path, never a header.

use std::time::Duration;

use crate::model::verify::Answer;
use crate::secrets::{Password, tls_config};

/// More than any answer a check reads (entity lists are asked for with `limit=1`).
pub const MAX_BODY: usize = 256 * 1024;

/// A portal at a base URL.
#[derive(Debug, Clone)]
pub struct Portal {
    http: reqwest::Client,
    base: reqwest::Url,
}

/// Whether a request carries the API token.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    Anonymous,
    Token(&'a Password),
}

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("{url} is not a usable base URL")]
    BaseUrl { url: String },
    #[error("cannot set up the HTTP client: {message}")]
    Client { message: String },
}

impl Portal {
    /// `base` ends in `/` (the settings make sure); paths are joined below it.
    pub fn new(base: &str, connect_timeout: Option<Duration>) -> Result<Portal, PortalError> {
        let base = reqwest::Url::parse(base).map_err(|_| PortalError::BaseUrl {
            url: base.to_string(),
        })?;
        // Loading the system's roots costs milliseconds that a plain-http portal (a port-forward)
        // need not pay: it gets a TLS configuration with no roots, which it never uses.
        let tls = if base.scheme() == "https" {
            tls_config()
        } else {
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| PortalError::Client {
                message: e.to_string(),
            })?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
        };
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kubectl-backstage/", env!("CARGO_PKG_VERSION")));
        if let Some(timeout) = connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        let http = builder.build().map_err(|e| PortalError::Client {
            message: innermost(&e),
        })?;
        Ok(Portal { http, base })
    }

    /// The base URL, as requests are made below it.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// GET `path` (relative, no leading `/`) below the base URL. The error is one line saying why
    /// there was no answer (connection refused, TLS, …).
    pub async fn get(&self, path: &str, credentials: Credentials<'_>) -> Result<Answer, String> {
        let url = self
            .base
            .join(path)
            .map_err(|_| format!("{path} cannot be joined to the base URL"))?;
        let mut request = self.http.get(url).header("accept", "application/json");
        if let Credentials::Token(token) = credentials {
            request = request.header("authorization", format!("Bearer {}", token.expose()));
        }
        let mut response = request.send().await.map_err(|e| no_answer(&e))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status().as_u16();
        let content_type = header("content-type");
        let location = header("location");
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| no_answer(&e))? {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        Ok(Answer {
            status,
            content_type,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// Why a request got no answer, in a few words.
fn no_answer(e: &reqwest::Error) -> String {
    let cause = innermost(e);
    if e.is_connect() {
        format!("cannot connect: {cause}")
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        format!("no answer: {cause}")
    }
}

/// The innermost cause of an error: the most specific words (`Connection refused (os error 111)`).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string().lines().next().unwrap_or("").to_string()
}
