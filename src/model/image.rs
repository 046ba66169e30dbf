//! Container image references as a workload names them (`registry:5000/team/app:tag@sha256:…`) and as
//! a pod's status reports what runs (`imageID`), and what a tag says about the build: a pull-request
//! image (`pr-<n>-<sha>`), a production image (`prod-<sha>-<time>`), a semantic version, `latest`, or
//! nothing but a digest. Pure: parsing only.

use serde::Serialize;

/// An image reference split as Docker's reference grammar splits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    /// The registry host (and port), when the first path component names one (it has a `.` or a
    /// `:`, or is `localhost`); `None` means Docker Hub.
    pub registry: Option<String>,
    /// The path inside the registry, e.g. `backstage/backstage`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…`, when the reference pins one.
    pub digest: Option<String>,
}

/// Splits an image reference. Never fails: an odd reference is kept whole as the repository.
pub fn parse_image(reference: &str) -> ImageRef {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest.to_string())),
        None => (reference, None),
    };
    // The tag is after the last ':' of the last path component (a registry port is before a '/').
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(colon) => (
            &name[..last_slash + colon],
            Some(name[last_slash + colon + 1..].to_string()),
        ),
        None => (name, None),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_string()), rest.to_string())
        }
        _ => (None, name.to_string()),
    };
    ImageRef {
        registry,
        repository,
        tag: tag.filter(|t| !t.is_empty()),
        digest,
    }
}

/// What a tag says about the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum TagKind {
    /// `pr-<number>-<commit>`: a pull request's image.
    #[serde(rename = "pr")]
    PullRequest {
        number: u64,
        commit: String,
    },
    /// `prod-<commit>-<time>`: a production build of a commit; the time as the tag writes it
    /// (`yyyymmddHHMMSS`, zone unknown).
    #[serde(rename = "prod")]
    Production {
        commit: String,
        built: String,
    },
    /// A semantic version (`1.2.3`, `v1.2.3-rc.1`).
    Semver {
        version: String,
    },
    /// No tag, only a digest.
    Digest,
    /// `latest`, or no tag and no digest (which means `latest`).
    Latest,
    Other,
}

impl TagKind {
    /// A short word for tables: `pr-1234`, `prod`, `semver`, `digest`, `latest`, `other`.
    pub fn label(&self) -> String {
        match self {
            TagKind::PullRequest { number, .. } => format!("pr-{number}"),
            TagKind::Production { .. } => "prod".into(),
            TagKind::Semver { .. } => "semver".into(),
            TagKind::Digest => "digest".into(),
            TagKind::Latest => "latest".into(),
            TagKind::Other => "other".into(),
        }
    }
}

fn is_commit(text: &str) -> bool {
    (7..=40).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn is_semver(text: &str) -> bool {
    let text = text.strip_prefix('v').unwrap_or(text);
    let core = text.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let rest = &text[core.len()..];
    parts.len() == 3
        && parts.iter().all(|p| is_number(p))
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

/// The kind of an image's tag.
pub fn tag_kind(image: &ImageRef) -> TagKind {
    let Some(tag) = image.tag.as_deref() else {
        return if image.digest.is_some() {
            TagKind::Digest
        } else {
            TagKind::Latest
        };
    };
    if tag == "latest" {
        return TagKind::Latest;
    }
    let parts: Vec<&str> = tag.split('-').collect();
    match parts.as_slice() {
        ["pr", number, commit] if is_number(number) && is_commit(commit) => {
            if let Ok(number) = number.parse() {
                return TagKind::PullRequest {
                    number,
                    commit: commit.to_string(),
                };
            }
        }
        ["prod", commit, built] if is_commit(commit) && is_number(built) && built.len() == 14 => {
            return TagKind::Production {
                commit: commit.to_string(),
                built: built.to_string(),
            };
        }
        _ => {}
    }
    if is_semver(tag) {
        return TagKind::Semver {
            version: tag.to_string(),
        };
    }
    TagKind::Other
}

/// The digest in a container status's `imageID`: `docker-pullable://repo@sha256:…`,
/// `repo@sha256:…` or a bare `sha256:…` (containerd with a local image). `None` when empty (the
/// container has not started) or not a digest.
pub fn digest_of_image_id(image_id: &str) -> Option<String> {
    let id = image_id
        .split_once("://")
        .map_or(image_id, |(_, rest)| rest);
    let digest = id.rsplit_once('@').map_or(id, |(_, d)| d);
    let (algorithm, hex) = digest.split_once(':')?;
    (!algorithm.is_empty()
        && !hex.is_empty()
        && algorithm.bytes().all(|b| b.is_ascii_alphanumeric())
        && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    .then(|| digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn image(
        registry: Option<&str>,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> ImageRef {
        ImageRef {
            registry: registry.map(str::to_string),
            repository: repository.into(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        }
    }

    const SHA: &str = "sha256:994f5de7c6a882145dec06fdc649e992d4ad0f1caf6acf5413ccfe4e2a955186";

    #[test]
    fn references_split_as_docker_splits_them() {
        for (text, want) in [
            (
                "hmctspublic.azurecr.io/backstage/backstage:prod-5f3c2a1-20261122110000",
                image(
                    Some("hmctspublic.azurecr.io"),
                    "backstage/backstage",
                    Some("prod-5f3c2a1-20261122110000"),
                    None,
                ),
            ),
            (
                "localhost:5000/backstage:1.2.3",
                image(Some("localhost:5000"), "backstage", Some("1.2.3"), None),
            ),
            (
                "registry.example.net:5000/team/app",
                image(Some("registry.example.net:5000"), "team/app", None, None),
            ),
            (
                &format!("docker.io/bitnami/postgresql:16.4.0@{SHA}"),
                image(
                    Some("docker.io"),
                    "bitnami/postgresql",
                    Some("16.4.0"),
                    Some(SHA),
                ),
            ),
            (
                &format!("backstage@{SHA}"),
                image(None, "backstage", None, Some(SHA)),
            ),
            (
                "bitnami/postgresql",
                image(None, "bitnami/postgresql", None, None),
            ),
            ("postgres:16", image(None, "postgres", Some("16"), None)),
        ] {
            assert_eq!(parse_image(text), want, "{text}");
        }
    }

    #[test]
    fn tags_say_what_was_built() {
        let kind = |text: &str| tag_kind(&parse_image(text));
        assert_eq!(
            kind("r.io/backstage:pr-1234-9e8d7c6"),
            TagKind::PullRequest {
                number: 1234,
                commit: "9e8d7c6".into()
            }
        );
        assert_eq!(
            kind("r.io/backstage:prod-5f3c2a1-20261122110000"),
            TagKind::Production {
                commit: "5f3c2a1".into(),
                built: "20261122110000".into()
            }
        );
        assert_eq!(
            kind("r.io/x:v1.2.3-rc.1"),
            TagKind::Semver {
                version: "v1.2.3-rc.1".into()
            }
        );
        assert_eq!(
            kind("bitnami/postgresql:16.4.0"),
            TagKind::Semver {
                version: "16.4.0".into()
            }
        );
        assert_eq!(kind(&format!("r.io/x@{SHA}")), TagKind::Digest);
        assert_eq!(kind("r.io/x"), TagKind::Latest);
        assert_eq!(kind("r.io/x:latest"), TagKind::Latest);
        for other in [
            "r.io/x:16",
            "r.io/x:pr-12-xyz1234",
            "r.io/x:pr-abc-1234567",
            "r.io/x:prod-5f3c2a1",
            "r.io/x:prod-5f3c2a1-2026",
            "r.io/x:main",
            "r.io/x:1.2",
        ] {
            assert_eq!(kind(other), TagKind::Other, "{other}");
        }
        assert_eq!(kind("r.io/x:pr-7-9e8d7c6").label(), "pr-7");
    }

    #[test]
    fn running_digests_from_image_ids() {
        for (id, want) in [
            (
                format!("hmctspublic.azurecr.io/backstage/backstage@{SHA}"),
                Some(SHA),
            ),
            (format!("docker-pullable://backstage@{SHA}"), Some(SHA)),
            (SHA.to_string(), Some(SHA)),
            (String::new(), None),
            ("docker://abc".to_string(), None),
            ("sha256:xyz".to_string(), None),
        ] {
            assert_eq!(digest_of_image_id(&id).as_deref(), want, "{id:?}");
        }
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,8}([_-][a-z0-9]{1,5})?"
    }

    proptest! {
        /// A reference built from parts parses back into those parts.
        #[test]
        fn built_references_parse_back(
            registry in proptest::option::of(("[a-z]{1,8}\\.[a-z]{2,4}", proptest::option::of(1u16..))),
            path in proptest::collection::vec(component(), 1..4),
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in proptest::option::of("[0-9a-f]{64}"),
        ) {
            let registry = registry.map(|(host, port)| match port {
                Some(port) => format!("{host}:{port}"),
                None => host,
            });
            let repository = path.join("/");
            let digest = digest.map(|hex| format!("sha256:{hex}"));
            let mut text = String::new();
            if let Some(registry) = &registry {
                text.push_str(registry);
                text.push('/');
            }
            text.push_str(&repository);
            if let Some(tag) = &tag {
                text.push(':');
                text.push_str(tag);
            }
            if let Some(digest) = &digest {
                text.push('@');
                text.push_str(digest);
            }
            let parsed = parse_image(&text);
            prop_assert_eq!(parsed, ImageRef { registry, repository, tag, digest });
        }

        /// Any text parses without panicking, and a digest read from an imageID is one the imageID ends with.
        #[test]
        fn any_text_is_handled(text in "\\PC{0,60}") {
            let parsed = parse_image(&text);
            let _ = tag_kind(&parsed);
            if let Some(digest) = digest_of_image_id(&text) {
                prop_assert!(text.ends_with(&digest));
            }
        }

        /// Tags of the two build kinds are recognised whatever their numbers and commits.
        #[test]
        fn build_tags_are_recognised(number in 0u64..1_000_000, commit in "[0-9a-f]{7,40}", built in "[0-9]{14}") {
            let pr = tag_kind(&parse_image(&format!("r.io:5000/b/backstage:pr-{number}-{commit}")));
            prop_assert_eq!(pr, TagKind::PullRequest { number, commit: commit.clone() });
            let prod = tag_kind(&parse_image(&format!("r.io/backstage:prod-{commit}-{built}")));
            prop_assert_eq!(prod, TagKind::Production { commit, built });
        }
    }
}
