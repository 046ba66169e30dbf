//! `verify`: smoke checks against a portal — readiness, liveness, sign-in start, catalog (with the
//! token, and refused without it), templates, docs — run concurrently, each bounded by
//! `--request-timeout`, one row each.
//!
//! [`gather`] takes a [`VerifyTarget`] whose base URL is an input, so the same checks run for several
//! environments at once ([`run_several`]) and through a port-forward: [`target`] is the one place
//! that decides where the requests go — the settings' URL, or without one the Backstage Service
//! reached through the API server (`Cluster::forward_to_backstage`), as `kubectl port-forward` would.

use std::future::Future;
use std::time::{Duration, Instant};

use super::{Outcome, multi};
use crate::backstage::{Credentials, Portal, PortalError};
use crate::kube::{Cluster, KubeError, LocalForward};
use crate::model::verify::{
    self, Answer, CheckResult, CheckStatus, EntityRef, Verdict, VerifyReport, names,
};
use crate::process_env::ProcessEnv;
use crate::render::{self, Style};
use crate::secrets::{Password, SecretError, read_secret};
use crate::settings::verify::{SignInSettings, TokenSettings, VerifySettings};
use crate::settings::{ClusterSettings, Settings, SettingsError};

/// Why `verify` could not run (exit 2); failed checks are rows, not errors.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No URL, and the Backstage Service could not be reached through the API server either.
    #[error("no URL to verify (--url, or url in the environment), and {0}")]
    NoRoute(KubeError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{origin}: the environment variable is not set (or empty)")]
    TokenVariableMissing { origin: String },
    #[error("{origin}: the environment variable holds only spaces")]
    TokenVariableEmpty { origin: String },
    #[error("cannot read the API token: {0}")]
    KeyVault(#[from] SecretError),
    #[error(transparent)]
    Portal(#[from] PortalError),
}

/// One portal to check, with everything the checks need.
#[derive(Debug)]
pub struct VerifyTarget {
    pub environment: Option<String>,
    /// Ends in `/`.
    pub base_url: String,
    /// How `base_url` reaches the portal when it is a local port-forward.
    pub through: Option<String>,
    pub sign_in: Option<SignInSettings>,
    pub token: Option<Password>,
    pub docs_entity: Option<EntityRef>,
    pub request_timeout: Option<Duration>,
}

pub async fn run(
    settings: &VerifySettings,
    cluster: &ClusterSettings,
    style: &Style,
    env: &dyn ProcessEnv,
) -> Result<Outcome, VerifyError> {
    let (target, forward) = target(settings, cluster, env).await?;
    if let Some(through) = &target.through {
        render::note(&format!("no URL: checking {through}"));
    }
    let report = gather(&target).await;
    if let Some(forward) = forward {
        forward.stop().await;
    }
    let report = report?;
    render::emit(&render::render(&report, style));
    Ok(if report.passed {
        Outcome::Ok
    } else {
        Outcome::Problems
    })
}

/// `verify` in several environments at once: each environment's settings resolved first (a bad one
/// stops the run before any request), then every environment checked concurrently; one that cannot
/// be checked (no route to it, its token unreadable) is a row that says why.
pub async fn run_several(
    environments: &[(Settings, VerifySettings)],
    style: &Style,
    env: &dyn ProcessEnv,
) -> Outcome {
    let runs =
        futures::future::join_all(environments.iter().map(|(settings, verify)| async move {
            let name = settings.environment_name().unwrap_or_default().to_string();
            let result = async {
                let (target, forward) = target(verify, &settings.cluster, env).await?;
                let report = gather(&target).await;
                if let Some(forward) = forward {
                    forward.stop().await;
                }
                report
            }
            .await;
            (name, result)
        }))
        .await;
    multi::print(
        runs,
        |r: &VerifyReport| {
            if r.passed {
                Outcome::Ok
            } else {
                Outcome::Problems
            }
        },
        style,
    )
}

/// Where the checks go, and the token they carry. With a URL, there; without one, through the API
/// server to the Backstage Service's pod (the forward lives until it is stopped or dropped).
pub async fn target(
    settings: &VerifySettings,
    cluster: &ClusterSettings,
    env: &dyn ProcessEnv,
) -> Result<(VerifyTarget, Option<LocalForward>), VerifyError> {
    let token = read_token(&settings.token, env).await?;
    let (base_url, through, forward) = match &settings.url {
        Some(url) => (url.clone(), None, None),
        None => {
            let forward = async {
                let cluster = Cluster::connect(cluster).await?;
                cluster.forward_to_backstage(None).await
            }
            .await
            .map_err(VerifyError::NoRoute)?;
            tracing::info!(through = %forward.what(), "no URL: reaching the portal through the API server");
            (
                forward.base_url(),
                Some(format!("{} (through the API server)", forward.what())),
                Some(forward),
            )
        }
    };
    let target = VerifyTarget {
        environment: settings.environment.clone(),
        base_url,
        through,
        sign_in: settings.sign_in.clone(),
        token,
        docs_entity: settings.docs_entity.clone(),
        request_timeout: settings.request_timeout,
    };
    Ok((target, forward))
}

/// The API token, in the settings' order; its value is never logged.
pub async fn read_token(
    token: &TokenSettings,
    env: &dyn ProcessEnv,
) -> Result<Option<Password>, VerifyError> {
    match token {
        TokenSettings::None => Ok(None),
        TokenSettings::Variable { name, origin } => match env.var(name) {
            None => Err(VerifyError::TokenVariableMissing {
                origin: origin.clone(),
            }),
            Some(value) if value.trim().is_empty() => Err(VerifyError::TokenVariableEmpty {
                origin: origin.clone(),
            }),
            Some(value) => {
                tracing::info!(variable = %name, "API token from an environment variable");
                Ok(Some(Password::new(value.trim().to_string())))
            }
        },
        TokenSettings::KeyVault(secret) => {
            let token = read_secret(secret).await?;
            tracing::info!(vault = %secret.vault_url, secret = %secret.secret, "API token from Key Vault");
            Ok(Some(token))
        }
    }
}

const ENTITY_FIELDS: &str = "fields=kind,metadata.namespace,metadata.name";

/// Runs every check concurrently and collects the rows in their fixed order.
pub async fn gather(target: &VerifyTarget) -> Result<VerifyReport, VerifyError> {
    let portal = Portal::new(&target.base_url, target.request_timeout)?;
    let checks = Checks { portal, target };
    let (readiness, liveness, sign_in, catalog, anonymous, templates, docs) = futures::join!(
        checks.bounded(names::READINESS, checks.health("readiness")),
        checks.bounded(names::LIVENESS, checks.health("liveness")),
        checks.sign_in(),
        checks.with_token(names::CATALOG, |token| checks.catalog(token)),
        checks.bounded(names::CATALOG_ANONYMOUS, checks.anonymous()),
        checks.with_token(names::TEMPLATES, |token| checks.templates(token)),
        checks.with_token(names::DOCS, |token| checks.docs(token)),
    );
    Ok(VerifyReport::new(
        target.environment.clone(),
        target.base_url.clone(),
        target.through.clone(),
        vec![
            readiness, liveness, sign_in, catalog, anonymous, templates, docs,
        ],
    ))
}

/// What a check ran into: its verdict and the last path it requested.
struct Ran {
    verdict: Verdict,
    path: String,
}

struct Checks<'a> {
    portal: Portal,
    target: &'a VerifyTarget,
}

impl Checks<'_> {
    /// One GET; a request that got no answer is a failed verdict.
    async fn get(&self, path: &str, credentials: Credentials<'_>) -> Result<Answer, String> {
        let answer = self.portal.get(path, credentials).await;
        match &answer {
            Ok(a) => tracing::debug!(path, status = a.status, "answer"),
            Err(e) => tracing::debug!(path, error = %e, "no answer"),
        }
        answer
    }

    /// Times a check and bounds it by `--request-timeout`.
    async fn bounded(&self, name: &str, check: impl Future<Output = Ran>) -> CheckResult {
        let started = Instant::now();
        let ran = match self.target.request_timeout {
            Some(limit) => tokio::time::timeout(limit, check).await.ok(),
            None => Some(check.await),
        };
        let latency_ms = Some(started.elapsed().as_millis() as u64);
        match ran {
            Some(Ran { verdict, path }) => CheckResult {
                name: name.to_string(),
                status: if verdict.is_ok() {
                    CheckStatus::Pass
                } else {
                    CheckStatus::Fail
                },
                latency_ms,
                detail: verdict.unwrap_or_else(|e| e),
                path: Some(path),
            },
            None => CheckResult {
                name: name.to_string(),
                status: CheckStatus::Fail,
                latency_ms,
                detail: format!(
                    "no answer within {}s (--request-timeout)",
                    self.target
                        .request_timeout
                        .unwrap_or_default()
                        .as_secs_f32()
                ),
                path: None,
            },
        }
    }

    fn skipped(name: &str, detail: &str) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            status: CheckStatus::Skipped,
            latency_ms: None,
            detail: detail.to_string(),
            path: None,
        }
    }

    /// A check that needs the token; skipped without one.
    async fn with_token<'t, F, Fut>(&'t self, name: &str, check: F) -> CheckResult
    where
        F: FnOnce(&'t Password) -> Fut,
        Fut: Future<Output = Ran>,
    {
        match &self.target.token {
            Some(token) => self.bounded(name, check(token)).await,
            None => Self::skipped(
                name,
                "no API token: use --token-env VAR, $BACKSTAGE_TOKEN or verify.token",
            ),
        }
    }

    async fn health(&self, which: &str) -> Ran {
        let path = format!(".backstage/health/v1/{which}");
        let verdict = self
            .get(&path, Credentials::Anonymous)
            .await
            .and_then(|a| verify::judge_health(&a));
        Ran { verdict, path }
    }

    async fn sign_in(&self) -> CheckResult {
        let Some(sign_in) = &self.target.sign_in else {
            return Self::skipped(
                names::SIGN_IN,
                "no sign-in provider: use --auth-provider or verify.auth.provider",
            );
        };
        let check = async {
            let path = format!("api/auth/{}/start?env={}", sign_in.provider, sign_in.env);
            let verdict = self
                .get(&path, Credentials::Anonymous)
                .await
                .and_then(|a| verify::judge_sign_in(&a, sign_in.host.as_deref()))
                .map(|detail| format!("{}: {detail}", sign_in.provider))
                .map_err(|e| format!("{}: {e}", sign_in.provider));
            Ran { verdict, path }
        };
        self.bounded(names::SIGN_IN, check).await
    }

    async fn catalog(&self, token: &Password) -> Ran {
        let path = format!("api/catalog/entities/by-query?limit=1&{ENTITY_FIELDS}");
        let verdict = self
            .get(&path, Credentials::Token(token))
            .await
            .and_then(|a| verify::judge_catalog(&a));
        Ran { verdict, path }
    }

    async fn anonymous(&self) -> Ran {
        let path = format!("api/catalog/entities/by-query?limit=1&{ENTITY_FIELDS}");
        let verdict = self
            .get(&path, Credentials::Anonymous)
            .await
            .and_then(|a| verify::judge_anonymous(&a));
        Ran { verdict, path }
    }

    async fn templates(&self, token: &Password) -> Ran {
        let path =
            format!("api/catalog/entities/by-query?filter=kind=template&limit=1&{ENTITY_FIELDS}");
        let template = match self.get(&path, Credentials::Token(token)).await {
            Ok(a) => verify::first_entity(&a, "template"),
            Err(e) => Err(e),
        };
        let template = match template {
            Ok(t) => t,
            Err(e) => {
                return Ran {
                    verdict: Err(e),
                    path,
                };
            }
        };
        let path = format!(
            "api/scaffolder/v2/templates/{}/parameter-schema",
            template.path()
        );
        let verdict = self
            .get(&path, Credentials::Token(token))
            .await
            .and_then(|a| verify::judge_parameter_schema(&a, &template));
        Ran { verdict, path }
    }

    async fn docs(&self, token: &Password) -> Ran {
        let entity = match &self.target.docs_entity {
            Some(entity) => entity.clone(),
            None => {
                let path = format!(
                    "api/catalog/entities/by-query?filter=metadata.annotations.backstage.io/techdocs-ref&limit=1&{ENTITY_FIELDS}"
                );
                let found = match self.get(&path, Credentials::Token(token)).await {
                    Ok(a) => verify::first_entity(
                        &a,
                        "entity with a backstage.io/techdocs-ref annotation",
                    ),
                    Err(e) => Err(e),
                };
                match found {
                    Ok(entity) => entity,
                    Err(e) => {
                        return Ran {
                            verdict: Err(e),
                            path,
                        };
                    }
                }
            }
        };
        // The entity's metadata (the route exists and knows the entity) and the site's (the docs
        // are published), asked for at once.
        let entity_path = format!("api/techdocs/metadata/entity/{}", entity.path());
        let site_path = format!("api/techdocs/metadata/techdocs/{}", entity.path());
        let (described, site) = futures::join!(
            self.get(&entity_path, Credentials::Token(token)),
            self.get(&site_path, Credentials::Token(token)),
        );
        let described = described
            .map_err(|e| format!("{entity}: {e}"))
            .and_then(|a| verify::judge_docs_entity(&a, &entity));
        if let Err(e) = described {
            return Ran {
                verdict: Err(e),
                path: entity_path,
            };
        }
        let verdict = site
            .map_err(|e| format!("{entity}: {e}"))
            .and_then(|a| verify::judge_docs_site(&a, &entity));
        let path = site_path;
        Ran { verdict, path }
    }
}
