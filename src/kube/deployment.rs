//! The Backstage Deployment: which one it is (and its backend container), and the two writes the
//! guided upgrade / rollback makes to it — the container image with a `kubernetes.io/change-cause`
//! annotation (a strategic merge patch, as `kubectl set image` sends), and annotations of its own.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{Cluster, KubeError};

/// The annotation `kubectl rollout history` shows.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The Backstage Deployment and its backend container, as found in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackstageDeployment {
    pub name: String,
    pub container: String,
    pub image: String,
    /// The Deployment's labels, for finding who manages it.
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl BackstageDeployment {
    /// The backend container of a Deployment: the one whose image names backstage, else the first.
    pub fn from_deployment(d: &Deployment) -> Option<BackstageDeployment> {
        let containers = &d.spec.as_ref()?.template.spec.as_ref()?.containers;
        let container = containers
            .iter()
            .find(|c| c.image.as_deref().is_some_and(|i| i.contains("backstage")))
            .or(containers.first())?;
        Some(BackstageDeployment {
            name: d.metadata.name.clone().unwrap_or_default(),
            container: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            labels: d.metadata.labels.clone().unwrap_or_default(),
            annotations: d.metadata.annotations.clone().unwrap_or_default(),
        })
    }
}

/// Picks the Backstage Deployment among `deployments`: the one labelled
/// `app.kubernetes.io/name=backstage`, else the only one whose container image names backstage.
pub fn choose_deployment(
    deployments: &[Deployment],
    namespace: &str,
) -> Result<BackstageDeployment, KubeError> {
    let labelled: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| {
            d.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/name"))
                .map(String::as_str)
                == Some("backstage")
        })
        .collect();
    let candidates: Vec<BackstageDeployment> = if labelled.is_empty() {
        deployments
            .iter()
            .filter_map(BackstageDeployment::from_deployment)
            .filter(|b| b.image.contains("backstage"))
            .collect()
    } else {
        labelled
            .into_iter()
            .filter_map(BackstageDeployment::from_deployment)
            .collect()
    };
    match candidates.len() {
        1 => Ok(candidates.into_iter().next().expect("one")),
        0 => Err(KubeError::NoBackstageDeployment {
            namespace: namespace.to_string(),
        }),
        _ => Err(KubeError::AmbiguousDeployment {
            namespace: namespace.to_string(),
            deployments: candidates
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl Cluster {
    /// The Backstage Deployment of the namespace.
    pub async fn backstage_deployment(&self) -> Result<BackstageDeployment, KubeError> {
        let (deployments, _) = self.list_all::<Deployment>("deployments", None).await?;
        choose_deployment(&deployments, &self.namespace)
    }

    /// Sets `container`'s image and the change-cause annotation in one strategic merge patch.
    pub async fn set_image(
        &self,
        deployment: &str,
        container: &str,
        image: &str,
        change_cause: &str,
    ) -> Result<(), KubeError> {
        let patch = json!({
            "metadata": {"annotations": {CHANGE_CAUSE: change_cause}},
            "spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}},
        });
        let api = self.api::<Deployment>();
        let action = || {
            format!(
                "patch deployments {deployment:?} in namespace {:?}",
                self.namespace
            )
        };
        self.call(
            action,
            api.patch(
                deployment,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            ),
        )
        .await
        .map(|_| ())
    }

    /// Restarts the rollout as `kubectl rollout restart` does: the pod template's
    /// `kubectl.kubernetes.io/restartedAt` annotation set to `at` (a strategic merge patch).
    pub async fn restart_rollout(&self, deployment: &str, at: &str) -> Result<(), KubeError> {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": at}}}}});
        let api = self.api::<Deployment>();
        let action = || {
            format!(
                "patch deployments {deployment:?} in namespace {:?}",
                self.namespace
            )
        };
        self.call(
            action,
            api.patch(
                deployment,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            ),
        )
        .await
        .map(|_| ())
    }

    /// Sets (or with `None` removes) annotations of the Deployment (a JSON merge patch).
    pub async fn annotate_deployment(
        &self,
        deployment: &str,
        annotations: &[(&str, Option<&str>)],
    ) -> Result<(), KubeError> {
        let map: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.map_or(serde_json::Value::Null, |v| json!(v)),
                )
            })
            .collect();
        let patch = json!({"metadata": {"annotations": map}});
        let api = self.api::<Deployment>();
        let action = || {
            format!(
                "patch deployments {deployment:?} in namespace {:?}",
                self.namespace
            )
        };
        self.call(
            action,
            api.patch(deployment, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(yaml: &str) -> Deployment {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn the_labelled_deployment_and_its_backend_container() {
        let ds = [
            deployment(
                "metadata: {name: backstage, labels: {app.kubernetes.io/name: backstage}}\nspec: {selector: {}, template: {spec: {containers: [{name: proxy, image: envoy:1}, {name: backstage, image: 'r/backstage:1.55.0'}]}}}\n",
            ),
            deployment(
                "metadata: {name: other}\nspec: {selector: {}, template: {spec: {containers: [{name: x, image: 'r/backstage-docs:1'}]}}}\n",
            ),
        ];
        let chosen = choose_deployment(&ds, "backstage").unwrap();
        assert_eq!(
            (
                chosen.name.as_str(),
                chosen.container.as_str(),
                chosen.image.as_str()
            ),
            ("backstage", "backstage", "r/backstage:1.55.0")
        );
        assert_eq!(choose_deployment(&ds[1..], "ns").unwrap().name, "other");
        assert_eq!(
            choose_deployment(&[], "ns").unwrap_err().to_string(),
            "no Backstage deployment in namespace \"ns\" (none labelled app.kubernetes.io/name=backstage, none with a backstage image)"
        );
    }
}
