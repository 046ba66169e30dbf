//! The support bundle's table of contents (`report`): which parts were collected and which are
//! missing and why, the archive's name, and the bounds on what is read. Pure; the command gathers,
//! `render::report` prints, the archive adapter writes.

use jiff::Timestamp;
use serde::Serialize;

/// A log file holds at most this many of the last lines of a container's log…
pub const LOG_TAIL_LINES: i64 = 2000;
/// …and at most this many bytes.
pub const LOG_LIMIT_BYTES: i64 = 1024 * 1024;

/// The name of the bundle without `.tar.gz`, `backstage-report-<label>-<UTC time>`, which is also the
/// folder every file in it sits in (unpacking never spills files into the current folder). The label
/// is the environment's name (or the namespace) with anything but letters, digits, `.`, `_` and `-`
/// made `_`.
pub fn archive_folder(label: &str, now: Timestamp) -> String {
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let label = if label.is_empty() || label.chars().all(|c| c == '.') {
        "default".to_string()
    } else {
        label
    };
    format!(
        "backstage-report-{label}-{}",
        now.strftime("%Y%m%dT%H%M%SZ")
    )
}

/// Why a part could not be collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingCause {
    /// The API server refused (403): the message names the verb and the resource.
    Forbidden,
    /// The API server refused the credentials (401).
    Unauthorized,
    /// The API server, database or Key Vault could not be reached.
    Unreachable,
    /// No answer within `--request-timeout`.
    TimedOut,
    /// The thing asked for does not exist (a container that never ran has no log).
    NotFound,
    /// Nothing says where it is (no database configured).
    NotConfigured,
    /// Any other failure; the message says which.
    Failed,
}

/// One part of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// The file in the bundle (relative to its folder).
    pub file: String,
    pub status: PartStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<MissingCause>,
    /// Why it is missing, in one line (no secret: errors carry names, never values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Something to know about a collected part (e.g. a log cut at its bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PartStatus {
    Collected,
    Missing,
}

impl Part {
    pub fn collected(file: impl Into<String>) -> Part {
        Part {
            file: file.into(),
            status: PartStatus::Collected,
            cause: None,
            reason: None,
            note: None,
        }
    }

    pub fn missing(
        file: impl Into<String>,
        cause: MissingCause,
        reason: impl Into<String>,
    ) -> Part {
        Part {
            file: file.into(),
            status: PartStatus::Missing,
            cause: Some(cause),
            reason: Some(reason.into()),
            note: None,
        }
    }

    pub fn with_note(mut self, note: Option<String>) -> Part {
        self.note = note;
        self
    }
}

/// What `report` prints (and writes into the bundle as `summary.json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportSummary {
    pub kind: &'static str,
    /// Where the archive was written.
    pub archive: String,
    /// The folder inside the archive that holds every file.
    pub folder: String,
    pub environment: Option<String>,
    pub context: String,
    pub namespace: String,
    pub created_at: Timestamp,
    /// `--since`, in seconds, when given.
    pub since_seconds: Option<u64>,
    pub collected: usize,
    pub missing: usize,
    /// Every part, in the order of [`order_parts`].
    pub parts: Vec<Part>,
}

/// The order parts are listed in: the fixed documents first, then workloads, then logs by pod and
/// container, each file name sorted.
pub fn order_parts(parts: &mut [Part]) {
    fn rank(file: &str) -> u8 {
        match file {
            "health.json" => 0,
            "events.json" => 1,
            "version.json" => 2,
            "db-status.json" => 3,
            "config.yaml" => 4,
            f if f.starts_with("workloads/") => 5,
            f if f.starts_with("logs/") => 6,
            _ => 7,
        }
    }
    parts.sort_by(|a, b| {
        rank(&a.file)
            .cmp(&rank(&b.file))
            .then_with(|| a.file.cmp(&b.file))
    });
}

impl ReportSummary {
    /// The summary of the parts (ordered here), counting collected and missing ones.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        archive: String,
        folder: String,
        environment: Option<String>,
        context: String,
        namespace: String,
        created_at: Timestamp,
        since_seconds: Option<u64>,
        mut parts: Vec<Part>,
    ) -> ReportSummary {
        order_parts(&mut parts);
        let collected = parts
            .iter()
            .filter(|p| p.status == PartStatus::Collected)
            .count();
        ReportSummary {
            kind: "SupportReport",
            archive,
            folder,
            environment,
            context,
            namespace,
            created_at,
            since_seconds,
            collected,
            missing: parts.len() - collected,
            parts,
        }
    }
}

/// The path of a container's log in the bundle.
pub fn log_file(pod: &str, container: &str, previous: bool) -> String {
    let suffix = if previous { ".previous.log" } else { ".log" };
    format!(
        "logs/{}/{}{suffix}",
        safe_segment(pod),
        safe_segment(container)
    )
}

/// A name made safe as one path segment (Kubernetes names already are; this guards the archive).
fn safe_segment(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        "_".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let now: Timestamp = "2026-12-03T10:45:00Z".parse().unwrap();
        assert_eq!(
            archive_folder("ptlsbox", now),
            "backstage-report-ptlsbox-20261203T104500Z"
        );
        assert_eq!(
            archive_folder("../x y", now),
            "backstage-report-.._x_y-20261203T104500Z"
        );
        assert_eq!(
            archive_folder("", now),
            "backstage-report-default-20261203T104500Z"
        );
        assert_eq!(
            log_file("backstage-7d9f6b5c8-x2x7p", "backstage", true),
            "logs/backstage-7d9f6b5c8-x2x7p/backstage.previous.log"
        );
        assert_eq!(log_file("..", "a/b", false), "logs/_/a_b.log");
    }

    #[test]
    fn summary_orders_and_counts() {
        let now: Timestamp = "2026-12-03T10:45:00Z".parse().unwrap();
        let summary = ReportSummary::new(
            "a.tar.gz".into(),
            "a".into(),
            None,
            "fake".into(),
            "backstage".into(),
            now,
            None,
            vec![
                Part::collected("logs/p/c.log"),
                Part::missing("events.json", MissingCause::Forbidden, "forbidden"),
                Part::collected("workloads/services.yaml"),
                Part::collected("health.json"),
                Part::collected("config.yaml"),
            ],
        );
        let files: Vec<&str> = summary.parts.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "health.json",
                "events.json",
                "config.yaml",
                "workloads/services.yaml",
                "logs/p/c.log"
            ]
        );
        assert_eq!((summary.collected, summary.missing), (4, 1));
        let json = serde_json::to_value(&summary.parts[1]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"file": "events.json", "status": "missing", "cause": "forbidden", "reason": "forbidden"})
        );
    }
}
