//! The result of one command over several environments (`-e a,b`, `--all-envs`): per environment,
//! its report or why it could not be made. Serialized as a list with one document per environment:
//! `{"environment": NAME, …the single-environment document…}` or `{"environment": NAME, "error": "…"}`.

use serde::Serialize;

/// One environment's part.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EnvironmentResult<R> {
    Done {
        environment: String,
        #[serde(flatten)]
        report: R,
    },
    Failed {
        environment: String,
        error: String,
    },
}

impl<R> EnvironmentResult<R> {
    pub fn environment(&self) -> &str {
        match self {
            EnvironmentResult::Done { environment, .. }
            | EnvironmentResult::Failed { environment, .. } => environment,
        }
    }
}

/// Every environment's part, in the order they were asked for.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct PerEnvironment<R>(pub Vec<EnvironmentResult<R>>);

impl<R> PerEnvironment<R> {
    /// The reports that were made, with their environment.
    pub fn done(&self) -> impl Iterator<Item = (&str, &R)> {
        self.0.iter().filter_map(|r| match r {
            EnvironmentResult::Done {
                environment,
                report,
            } => Some((environment.as_str(), report)),
            EnvironmentResult::Failed { .. } => None,
        })
    }

    /// The environments that could not be checked, with why.
    pub fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|r| match r {
            EnvironmentResult::Failed { environment, error } => {
                Some((environment.as_str(), error.as_str()))
            }
            EnvironmentResult::Done { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Doc {
        kind: &'static str,
        healthy: bool,
    }

    #[test]
    fn one_document_per_environment_with_its_name_first() {
        let all = PerEnvironment(vec![
            EnvironmentResult::Done {
                environment: "ptlsbox".into(),
                report: Doc {
                    kind: "HealthReport",
                    healthy: true,
                },
            },
            EnvironmentResult::Failed {
                environment: "ptl".into(),
                error: "cannot reach the API server".into(),
            },
        ]);
        assert_eq!(
            serde_json::to_string(&all).unwrap(),
            r#"[{"environment":"ptlsbox","kind":"HealthReport","healthy":true},{"environment":"ptl","error":"cannot reach the API server"}]"#
        );
        assert_eq!(all.done().map(|(e, _)| e).collect::<Vec<_>>(), ["ptlsbox"]);
        assert_eq!(
            all.failed().collect::<Vec<_>>(),
            [("ptl", "cannot reach the API server")]
        );
    }
}
