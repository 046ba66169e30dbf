//! Flux awareness, pure: which Flux object manages a Deployment (the `helm.toolkit.fluxcd.io/*` or
//! `kustomize.toolkit.fluxcd.io/*` labels Flux puts on what it applies), what that HelmRelease or
//! Kustomization says about itself (suspended, last applied revision, Ready condition), and whether an
//! ImagePolicy — through its ImageRepository's `spec.image` — follows the image of a managed container,
//! with the ImageUpdateAutomations that would write new tags to Git. Objects arrive as the JSON the API
//! server returns (read by `kube::flux`); nothing here does I/O. Also the annotation that records on the
//! Deployment which Flux objects this plugin suspended.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::apps::v1::Deployment;
use serde::Serialize;
use serde_json::Value;

use super::image::parse_image;

/// helm-controller labels every object of a release with the HelmRelease's name and namespace.
pub const HELM_NAME_LABEL: &str = "helm.toolkit.fluxcd.io/name";
pub const HELM_NAMESPACE_LABEL: &str = "helm.toolkit.fluxcd.io/namespace";
/// kustomize-controller labels every object it applies with the Kustomization's name and namespace.
pub const KUSTOMIZE_NAME_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
pub const KUSTOMIZE_NAMESPACE_LABEL: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// On the Backstage Deployment: the Flux objects this plugin suspended, `Kind/namespace/name`
/// separated by commas, so that a later run (or a person) knows what to resume.
pub const SUSPENDED_ANNOTATION: &str = "kubectl-backstage.io/suspended-flux";
/// Where Flux itself lives; image policies are looked for there too.
pub const FLUX_SYSTEM: &str = "flux-system";

/// The Flux kinds this plugin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FluxKind {
    HelmRelease,
    Kustomization,
    ImageUpdateAutomation,
    ImagePolicy,
    ImageRepository,
}

impl FluxKind {
    pub const ALL: [FluxKind; 5] = [
        FluxKind::HelmRelease,
        FluxKind::Kustomization,
        FluxKind::ImageUpdateAutomation,
        FluxKind::ImagePolicy,
        FluxKind::ImageRepository,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FluxKind::HelmRelease => "HelmRelease",
            FluxKind::Kustomization => "Kustomization",
            FluxKind::ImageUpdateAutomation => "ImageUpdateAutomation",
            FluxKind::ImagePolicy => "ImagePolicy",
            FluxKind::ImageRepository => "ImageRepository",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            FluxKind::HelmRelease => "helm.toolkit.fluxcd.io",
            FluxKind::Kustomization => "kustomize.toolkit.fluxcd.io",
            FluxKind::ImageUpdateAutomation | FluxKind::ImagePolicy | FluxKind::ImageRepository => {
                "image.toolkit.fluxcd.io"
            }
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            FluxKind::HelmRelease => "helmreleases",
            FluxKind::Kustomization => "kustomizations",
            FluxKind::ImageUpdateAutomation => "imageupdateautomations",
            FluxKind::ImagePolicy => "imagepolicies",
            FluxKind::ImageRepository => "imagerepositories",
        }
    }

    /// The API versions to try, newest first. Flux today serves one version per kind
    /// (`helm.toolkit.fluxcd.io/v2`, `kustomize.toolkit.fluxcd.io/v1`, `image.toolkit.fluxcd.io/v1`);
    /// clusters with an older Flux serve only the beta before it (the image kinds became v1 in Flux
    /// 2.7, HelmRelease v2 in Flux 2.3).
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            FluxKind::HelmRelease => &["v2", "v2beta2", "v2beta1"],
            FluxKind::Kustomization => &["v1", "v1beta2"],
            FluxKind::ImageUpdateAutomation | FluxKind::ImagePolicy | FluxKind::ImageRepository => {
                &["v1", "v1beta2"]
            }
        }
    }

    /// `helmreleases.helm.toolkit.fluxcd.io`, as the API server names a resource in its messages.
    pub fn resource(self) -> String {
        format!("{}.{}", self.plural(), self.group())
    }
}

impl fmt::Display for FluxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FluxKind {
    type Err = ();
    fn from_str(s: &str) -> Result<FluxKind, ()> {
        FluxKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}

/// One Flux object: kind, namespace and name. Written `Kind/namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FluxObjectRef {
    pub kind: FluxKind,
    pub namespace: String,
    pub name: String,
}

impl FluxObjectRef {
    pub fn new(kind: FluxKind, namespace: &str, name: &str) -> FluxObjectRef {
        FluxObjectRef {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for FluxObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

impl FromStr for FluxObjectRef {
    type Err = String;
    fn from_str(s: &str) -> Result<FluxObjectRef, String> {
        let bad = || format!("not a Flux object reference (Kind/namespace/name): {s:?}");
        let mut parts = s.trim().splitn(3, '/');
        let (Some(kind), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        let kind = kind.parse().map_err(|()| bad())?;
        Ok(FluxObjectRef::new(kind, namespace, name))
    }
}

/// The value of [`SUSPENDED_ANNOTATION`] for these objects.
pub fn suspended_annotation_value(objects: &[FluxObjectRef]) -> String {
    objects
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The objects named by a [`SUSPENDED_ANNOTATION`] value (an empty value names none).
pub fn parse_suspended_annotation(value: &str) -> Result<Vec<FluxObjectRef>, String> {
    value
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// The HelmRelease or Kustomization that applied an object, from its labels. A HelmRelease wins over
/// a Kustomization: a Deployment of a chart carries the HelmRelease's labels (the Kustomization that
/// applied the HelmRelease labels the HelmRelease, not the chart's objects). A label without its
/// namespace partner means the object's own namespace.
pub fn managed_by(labels: &BTreeMap<String, String>, own_namespace: &str) -> Option<FluxObjectRef> {
    [
        (FluxKind::HelmRelease, HELM_NAME_LABEL, HELM_NAMESPACE_LABEL),
        (
            FluxKind::Kustomization,
            KUSTOMIZE_NAME_LABEL,
            KUSTOMIZE_NAMESPACE_LABEL,
        ),
    ]
    .into_iter()
    .find_map(|(kind, name, namespace)| {
        let name = labels.get(name).filter(|n| !n.is_empty())?;
        let namespace = labels
            .get(namespace)
            .filter(|n| !n.is_empty())
            .map_or(own_namespace, String::as_str);
        Some(FluxObjectRef::new(kind, namespace, name))
    })
}

/// The Flux object managing each Deployment, with the Deployments each manages (`deployment/NAME`,
/// sorted). Deployments without Flux labels are left out.
pub fn managers(deployments: &[Deployment]) -> BTreeMap<FluxObjectRef, Vec<String>> {
    let mut out: BTreeMap<FluxObjectRef, Vec<String>> = BTreeMap::new();
    for d in deployments {
        let namespace = d.metadata.namespace.as_deref().unwrap_or_default();
        let Some(labels) = &d.metadata.labels else {
            continue;
        };
        if let Some(manager) = managed_by(labels, namespace) {
            out.entry(manager).or_default().push(format!(
                "deployment/{}",
                d.metadata.name.as_deref().unwrap_or_default()
            ));
        }
    }
    for workloads in out.values_mut() {
        workloads.sort();
    }
    out
}

/// The namespaces where image policies may be: the workloads' own, each manager's, and `flux-system`.
pub fn image_namespaces<'a>(
    workload_namespace: &str,
    managers: impl IntoIterator<Item = &'a FluxObjectRef>,
) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = managers.into_iter().map(|m| m.namespace.clone()).collect();
    out.insert(workload_namespace.to_string());
    out.insert(FLUX_SYSTEM.to_string());
    out
}

/// How reading one Flux object (or a list of one kind in one namespace) went.
#[derive(Debug, Clone, PartialEq)]
pub enum Read<T> {
    Found(T),
    /// The resource is served but the object is not there.
    NotFound,
    /// The cluster serves no version of the kind: Flux (or that controller) is not installed.
    NotServed,
    /// The API server said 403; the message names the verb and resource.
    Forbidden,
    /// Any other failure (time-out, 5xx), with its message.
    Failed(String),
}

/// What the adapter read for [`flux_report`].
#[derive(Debug, Clone, Default)]
pub struct FluxReads {
    /// Each manager's object (as JSON), by reference.
    pub managers: BTreeMap<FluxObjectRef, Read<Value>>,
    /// Image policies, repositories and automations of every namespace read, in any order.
    pub policies: Vec<Value>,
    pub repositories: Vec<Value>,
    pub automations: Vec<Value>,
    /// What could not be read, as lines for the user (`cannot list imagepolicies… : forbidden`).
    pub notes: Vec<String>,
}

/// `flux` of `health` and `version`: who manages the namespace's Deployments, and image automation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FluxReport {
    pub managers: Vec<FluxManager>,
    pub image_policies: Vec<ImagePolicyMatch>,
    /// What could not be read (forbidden, failed); never an error of the command.
    pub notes: Vec<String>,
}

/// A HelmRelease or Kustomization that applied Deployments of the namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FluxManager {
    pub kind: FluxKind,
    pub namespace: String,
    pub name: String,
    /// `deployment/NAME` of each Deployment labelled with this object.
    pub workloads: Vec<String>,
    /// found | notFound | notServed | forbidden | failed: whether the object itself could be read.
    pub read: ReadState,
    /// The apiVersion it was read with.
    pub api_version: Option<String>,
    /// `spec.suspend`.
    pub suspended: Option<bool>,
    /// Kustomization: `status.lastAppliedRevision` (`main@sha1:…`); HelmRelease: the chart version of
    /// the newest release in `status.history` (v2), else `status.lastAppliedRevision` (v2beta*).
    pub revision: Option<String>,
    /// `status.lastAttemptedRevision`.
    pub last_attempted_revision: Option<String>,
    /// The `Ready` condition.
    pub ready: Option<Condition>,
    /// The Kustomization that applied this object (from its own labels), e.g. the one that applies
    /// a HelmRelease from Git: it may undo a change to it.
    pub applied_by: Option<FluxObjectRef>,
}

impl FluxManager {
    pub fn reference(&self) -> FluxObjectRef {
        FluxObjectRef::new(self.kind, &self.namespace, &self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReadState {
    Found,
    NotFound,
    NotServed,
    Forbidden,
    Failed,
}

/// A `metav1.Condition`, as far as it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// An ImagePolicy whose ImageRepository is the image of a managed container.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicyMatch {
    pub namespace: String,
    pub name: String,
    /// `namespace/name` of the ImageRepository.
    pub image_repository: String,
    /// Its `spec.image`.
    pub image: String,
    /// The tag the policy picked (`status.latestRef`, v1; `status.latestImage`, v1beta2).
    pub latest_image: Option<String>,
    /// `spec.suspend` of the policy (v1).
    pub suspended: bool,
    /// `deployment/NAME` and container of each managed container running that repository's images.
    pub containers: Vec<ContainerRef>,
    /// The ImageUpdateAutomations of the policy's namespace whose `policySelector` takes it, by name.
    pub automations: Vec<AutomationView>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRef {
    pub workload: String,
    pub container: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomationView {
    pub namespace: String,
    pub name: String,
    pub suspended: bool,
}

impl AutomationView {
    pub fn reference(&self) -> FluxObjectRef {
        FluxObjectRef::new(FluxKind::ImageUpdateAutomation, &self.namespace, &self.name)
    }
}

impl FluxReport {
    /// The manager of one Deployment (by name), if Flux manages it.
    pub fn manager_of(&self, deployment: &str) -> Option<&FluxManager> {
        let workload = format!("deployment/{deployment}");
        self.managers
            .iter()
            .find(|m| m.workloads.contains(&workload))
    }

    /// What to suspend so that Flux leaves one Deployment (by name) alone: its HelmRelease or
    /// Kustomization and the ImageUpdateAutomations that follow its images, those not suspended yet,
    /// in that order. Empty when Flux does not manage it or everything is suspended already. A manager
    /// that could not be read is included (whether it is suspended is unknown).
    pub fn to_suspend(&self, deployment: &str) -> Vec<FluxObjectRef> {
        let manager = self
            .manager_of(deployment)
            .filter(|m| m.suspended != Some(true))
            .map(FluxManager::reference);
        let automations = self
            .automations_of(deployment)
            .into_iter()
            .filter(|a| !a.suspended)
            .map(AutomationView::reference);
        manager.into_iter().chain(automations).collect()
    }

    /// The ImageUpdateAutomations that follow an image of one Deployment (by name), each once.
    pub fn automations_of(&self, deployment: &str) -> Vec<&AutomationView> {
        let workload = format!("deployment/{deployment}");
        let mut out: Vec<&AutomationView> = self
            .image_policies
            .iter()
            .filter(|p| p.containers.iter().any(|c| c.workload == workload))
            .flat_map(|p| p.automations.iter())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn flag(value: &Value, pointer: &str) -> bool {
    value
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn string_map(value: &Value, pointer: &str) -> BTreeMap<String, String> {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The `Ready` condition of an object's `status.conditions`.
pub fn ready_condition(object: &Value) -> Option<Condition> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .map(|c| Condition {
            status: text(c, "/status").unwrap_or_else(|| "Unknown".into()),
            reason: text(c, "/reason"),
            message: text(c, "/message"),
        })
}

/// What a HelmRelease last applied: the chart version of the newest release in `status.history`
/// (the highest `version`), else the older APIs' `status.lastAppliedRevision`.
fn helm_revision(object: &Value) -> Option<String> {
    let newest = object
        .pointer("/status/history")
        .and_then(Value::as_array)
        .and_then(|history| {
            history
                .iter()
                .max_by_key(|s| s.get("version").and_then(Value::as_i64).unwrap_or(0))
        })
        .and_then(|s| text(s, "/chartVersion"));
    newest.or_else(|| text(object, "/status/lastAppliedRevision"))
}

/// One manager as shown, from its labels' reference, what reading it gave, and its workloads.
pub fn manager_view(
    reference: &FluxObjectRef,
    workloads: Vec<String>,
    read: &Read<Value>,
) -> FluxManager {
    let mut view = FluxManager {
        kind: reference.kind,
        namespace: reference.namespace.clone(),
        name: reference.name.clone(),
        workloads,
        read: ReadState::Found,
        api_version: None,
        suspended: None,
        revision: None,
        last_attempted_revision: None,
        ready: None,
        applied_by: None,
    };
    let object = match read {
        Read::Found(object) => object,
        Read::NotFound => {
            view.read = ReadState::NotFound;
            return view;
        }
        Read::NotServed => {
            view.read = ReadState::NotServed;
            return view;
        }
        Read::Forbidden => {
            view.read = ReadState::Forbidden;
            return view;
        }
        Read::Failed(_) => {
            view.read = ReadState::Failed;
            return view;
        }
    };
    view.api_version = text(object, "/apiVersion");
    view.suspended = Some(flag(object, "/spec/suspend"));
    view.revision = match reference.kind {
        FluxKind::HelmRelease => helm_revision(object),
        _ => text(object, "/status/lastAppliedRevision"),
    };
    view.last_attempted_revision = text(object, "/status/lastAttemptedRevision");
    view.ready = ready_condition(object);
    let labels = string_map(object, "/metadata/labels");
    view.applied_by = managed_by(&labels, &reference.namespace)
        .filter(|parent| parent.kind == FluxKind::Kustomization && parent != reference);
    view
}

/// The registry and path of an image, as Docker normalises a name: Docker Hub's aliases are one
/// registry and its one-word names live under `library/`. Tag and digest are dropped.
pub fn image_repository(image: &str) -> (String, String) {
    let parsed = parse_image(image.trim());
    let registry = match parsed.registry.as_deref().map(str::to_ascii_lowercase) {
        None => "docker.io".to_string(),
        Some(r) if r == "index.docker.io" || r == "registry-1.docker.io" => "docker.io".into(),
        Some(r) => r,
    };
    let repository = if registry == "docker.io" && !parsed.repository.contains('/') {
        format!("library/{}", parsed.repository)
    } else {
        parsed.repository
    };
    (registry, repository)
}

/// Whether a Kubernetes label selector (`matchLabels`, `matchExpressions`) selects these labels.
/// An absent selector selects everything; an operator it does not know selects nothing.
pub fn selector_matches(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return true;
    };
    let wanted = string_map(selector, "/matchLabels");
    if wanted.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        return false;
    }
    let expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    expressions.iter().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let value = labels.get(key).map(String::as_str);
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => value.is_some_and(|v| values.contains(&v)),
            Some("NotIn") => value.is_none_or(|v| !values.contains(&v)),
            Some("Exists") => value.is_some(),
            Some("DoesNotExist") => value.is_none(),
            _ => false,
        }
    })
}

fn namespace_of(object: &Value) -> String {
    text(object, "/metadata/namespace").unwrap_or_default()
}

fn name_of(object: &Value) -> String {
    text(object, "/metadata/name").unwrap_or_default()
}

/// The tag an ImagePolicy picked: `status.latestRef` (v1, `name:tag`), else `status.latestImage`.
fn latest_image(policy: &Value) -> Option<String> {
    match (
        text(policy, "/status/latestRef/name"),
        text(policy, "/status/latestRef/tag"),
    ) {
        (Some(name), Some(tag)) => Some(format!("{name}:{tag}")),
        _ => text(policy, "/status/latestImage"),
    }
}

/// The report: every manager (with its workloads), and every image policy that follows the image of
/// a container of a managed Deployment, with the automations that take that policy. `None` when no
/// Deployment carries Flux labels.
pub fn flux_report(deployments: &[Deployment], reads: &FluxReads) -> Option<FluxReport> {
    let managers = managers(deployments);
    if managers.is_empty() {
        return None;
    }
    let views: Vec<FluxManager> = managers
        .iter()
        .map(|(reference, workloads)| {
            let read = reads
                .managers
                .get(reference)
                .cloned()
                .unwrap_or(Read::NotServed);
            manager_view(reference, workloads.clone(), &read)
        })
        .collect();

    // The containers of managed Deployments, by the repository of their image.
    let managed: BTreeSet<&String> = managers.values().flatten().collect();
    let mut containers: BTreeMap<(String, String), Vec<ContainerRef>> = BTreeMap::new();
    for d in deployments {
        let workload = format!(
            "deployment/{}",
            d.metadata.name.as_deref().unwrap_or_default()
        );
        if !managed.contains(&workload) {
            continue;
        }
        let template = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        for c in template
            .map(|t| t.containers.as_slice())
            .unwrap_or_default()
        {
            if let Some(image) = c.image.as_deref().filter(|i| !i.is_empty()) {
                containers
                    .entry(image_repository(image))
                    .or_default()
                    .push(ContainerRef {
                        workload: workload.clone(),
                        container: c.name.clone(),
                    });
            }
        }
    }

    let repository_image = |namespace: &str, name: &str| -> Option<String> {
        reads
            .repositories
            .iter()
            .find(|r| namespace_of(r) == namespace && name_of(r) == name)
            .and_then(|r| text(r, "/spec/image"))
    };
    let mut image_policies: Vec<ImagePolicyMatch> = Vec::new();
    for policy in &reads.policies {
        let namespace = namespace_of(policy);
        let name = name_of(policy);
        let Some(repository_name) = text(policy, "/spec/imageRepositoryRef/name") else {
            continue;
        };
        let repository_namespace =
            text(policy, "/spec/imageRepositoryRef/namespace").unwrap_or_else(|| namespace.clone());
        let Some(image) = repository_image(&repository_namespace, &repository_name) else {
            continue;
        };
        let Some(users) = containers.get(&image_repository(&image)) else {
            continue;
        };
        let policy_labels = string_map(policy, "/metadata/labels");
        let mut automations: Vec<AutomationView> = reads
            .automations
            .iter()
            .filter(|a| namespace_of(a) == namespace)
            .filter(|a| selector_matches(a.pointer("/spec/policySelector"), &policy_labels))
            .map(|a| AutomationView {
                namespace: namespace_of(a),
                name: name_of(a),
                suspended: flag(a, "/spec/suspend"),
            })
            .collect();
        automations.sort();
        automations.dedup();
        let mut users = users.clone();
        users.sort();
        image_policies.push(ImagePolicyMatch {
            namespace,
            name,
            image_repository: format!("{repository_namespace}/{repository_name}"),
            image,
            latest_image: latest_image(policy),
            suspended: flag(policy, "/spec/suspend"),
            containers: users,
            automations,
        });
    }
    image_policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    image_policies.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
    let mut notes = reads.notes.clone();
    notes.sort();
    notes.dedup();
    Some(FluxReport {
        managers: views,
        image_policies,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(yaml: &str) -> Deployment {
        serde_norway::from_str(yaml).expect("deployment fixture")
    }

    fn backstage(labels: &str) -> Deployment {
        deployment(&format!(
            "metadata: {{name: backstage, namespace: backstage, labels: {{{labels}}}}}
spec:
  selector: {{matchLabels: {{app: b}}}}
  template:
    spec:
      containers:
      - {{name: backstage, image: 'acr.example.io/portal/backstage:prod-5f3c2a1-20261122110000'}}
      - {{name: proxy, image: 'nginx:1.27'}}
"
        ))
    }

    const HELM: &str =
        "helm.toolkit.fluxcd.io/name: backstage, helm.toolkit.fluxcd.io/namespace: flux-system";

    fn helm_release() -> Value {
        // Shaped as helm-controller v1.x writes a v2 HelmRelease after two upgrades.
        json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "backstage", "namespace": "flux-system", "labels": {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}},
            "spec": {"interval": "10m", "chart": {"spec": {"chart": "backstage"}}},
            "status": {
                "conditions": [
                    {"type": "Released", "status": "True", "reason": "UpgradeSucceeded", "message": "x"},
                    {"type": "Ready", "status": "True", "reason": "UpgradeSucceeded",
                     "message": "Helm upgrade succeeded for release backstage/backstage.v3 with chart backstage@1.4.2"}],
                "history": [
                    {"version": 2, "chartVersion": "1.4.1", "status": "superseded", "name": "backstage", "namespace": "backstage", "chartName": "backstage", "configDigest": "sha256:a", "digest": "sha256:b", "firstDeployed": "2026-11-01T09:00:00Z", "lastDeployed": "2026-11-01T09:00:00Z"},
                    {"version": 3, "chartVersion": "1.4.2", "status": "deployed", "name": "backstage", "namespace": "backstage", "chartName": "backstage", "configDigest": "sha256:c", "digest": "sha256:d", "firstDeployed": "2026-11-01T09:00:00Z", "lastDeployed": "2026-11-22T11:00:00Z"},
                    {"version": 1, "chartVersion": "1.3.0", "status": "superseded", "name": "backstage", "namespace": "backstage", "chartName": "backstage", "configDigest": "sha256:e", "digest": "sha256:f", "firstDeployed": "2026-10-01T09:00:00Z", "lastDeployed": "2026-10-01T09:00:00Z"}],
                "lastAttemptedRevision": "1.4.2"
            }
        })
    }

    #[test]
    fn labels_name_the_manager_helm_release_first() {
        let labels: BTreeMap<String, String> = [
            (HELM_NAME_LABEL, "backstage"),
            (HELM_NAMESPACE_LABEL, "flux-system"),
            (KUSTOMIZE_NAME_LABEL, "apps"),
            (KUSTOMIZE_NAMESPACE_LABEL, "flux-system"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            managed_by(&labels, "backstage"),
            Some(FluxObjectRef::new(
                FluxKind::HelmRelease,
                "flux-system",
                "backstage"
            ))
        );
        let only_kustomize: BTreeMap<String, String> =
            [(KUSTOMIZE_NAME_LABEL.to_string(), "apps".to_string())].into();
        assert_eq!(
            managed_by(&only_kustomize, "backstage"),
            Some(FluxObjectRef::new(
                FluxKind::Kustomization,
                "backstage",
                "apps"
            ))
        );
        let helm_cli: BTreeMap<String, String> = [(
            "app.kubernetes.io/managed-by".to_string(),
            "Helm".to_string(),
        )]
        .into();
        assert_eq!(managed_by(&helm_cli, "backstage"), None);
    }

    #[test]
    fn no_flux_labels_no_report() {
        let d = deployment(
            "metadata: {name: backstage, namespace: backstage, labels: {app.kubernetes.io/managed-by: Helm}}",
        );
        assert_eq!(flux_report(&[d], &FluxReads::default()), None);
    }

    #[test]
    fn helm_release_shows_newest_history_entry_and_ready() {
        let reference = FluxObjectRef::new(FluxKind::HelmRelease, "flux-system", "backstage");
        let reads = FluxReads {
            managers: [(reference.clone(), Read::Found(helm_release()))].into(),
            ..FluxReads::default()
        };
        let report = flux_report(&[backstage(HELM)], &reads).expect("managed");
        assert_eq!(
            report.managers,
            vec![FluxManager {
                kind: FluxKind::HelmRelease,
                namespace: "flux-system".into(),
                name: "backstage".into(),
                workloads: vec!["deployment/backstage".into()],
                read: ReadState::Found,
                api_version: Some("helm.toolkit.fluxcd.io/v2".into()),
                suspended: Some(false),
                revision: Some("1.4.2".into()),
                last_attempted_revision: Some("1.4.2".into()),
                ready: Some(Condition {
                    status: "True".into(),
                    reason: Some("UpgradeSucceeded".into()),
                    message: Some("Helm upgrade succeeded for release backstage/backstage.v3 with chart backstage@1.4.2".into()),
                }),
                applied_by: Some(FluxObjectRef::new(
                    FluxKind::Kustomization,
                    "flux-system",
                    "apps"
                )),
            }]
        );
        assert_eq!(
            report.manager_of("backstage").map(|m| m.reference()),
            Some(reference)
        );
        assert_eq!(report.manager_of("other"), None);
    }

    #[test]
    fn kustomization_suspended_with_its_revisions() {
        let k = json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "backstage", "namespace": "flux-system"},
            "spec": {"suspend": true, "path": "./apps/backstage", "prune": true},
            "status": {"lastAppliedRevision": "main@sha1:1a2b3c4d", "lastAttemptedRevision": "main@sha1:5e6f7a8b",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ReconciliationFailed", "message": "Deployment/backstage/backstage dry-run failed"}]}
        });
        let reference = FluxObjectRef::new(FluxKind::Kustomization, "flux-system", "backstage");
        let labels = "kustomize.toolkit.fluxcd.io/name: backstage, kustomize.toolkit.fluxcd.io/namespace: flux-system";
        let reads = FluxReads {
            managers: [(reference, Read::Found(k))].into(),
            ..FluxReads::default()
        };
        let report = flux_report(&[backstage(labels)], &reads).expect("managed");
        let m = &report.managers[0];
        assert_eq!(m.kind, FluxKind::Kustomization);
        assert_eq!(m.suspended, Some(true));
        assert_eq!(m.revision.as_deref(), Some("main@sha1:1a2b3c4d"));
        assert_eq!(
            m.last_attempted_revision.as_deref(),
            Some("main@sha1:5e6f7a8b")
        );
        assert_eq!(m.ready.as_ref().map(|r| r.status.as_str()), Some("False"));
        assert_eq!(m.applied_by, None);
    }

    #[test]
    fn an_unreadable_manager_is_still_named_from_the_labels() {
        for (read, state) in [
            (Read::NotFound, ReadState::NotFound),
            (Read::NotServed, ReadState::NotServed),
            (Read::Forbidden, ReadState::Forbidden),
            (Read::Failed("timed out".into()), ReadState::Failed),
        ] {
            let reference = FluxObjectRef::new(FluxKind::HelmRelease, "flux-system", "backstage");
            let reads = FluxReads {
                managers: [(reference, read)].into(),
                ..FluxReads::default()
            };
            let report = flux_report(&[backstage(HELM)], &reads).expect("managed");
            assert_eq!(report.managers[0].read, state);
            assert_eq!(report.managers[0].suspended, None);
            assert_eq!(report.managers[0].workloads, ["deployment/backstage"]);
        }
    }

    #[test]
    fn image_policy_follows_the_backstage_container_through_its_repository() {
        let reads = FluxReads {
            policies: vec![
                json!({"metadata": {"name": "backstage", "namespace": "flux-system", "labels": {"portal": "yes"}},
                       "spec": {"imageRepositoryRef": {"name": "backstage"}, "policy": {"alphabetical": {}}},
                       "status": {"latestRef": {"name": "acr.example.io/portal/backstage", "tag": "prod-6a7b8c9-20261201090000"}}}),
                // Another repository: not shown.
                json!({"metadata": {"name": "other", "namespace": "flux-system"},
                       "spec": {"imageRepositoryRef": {"name": "other"}}}),
                // The sidecar's image through a repository in another namespace, older API status.
                json!({"metadata": {"name": "nginx", "namespace": "backstage"},
                       "spec": {"imageRepositoryRef": {"name": "nginx", "namespace": "flux-system"}},
                       "status": {"latestImage": "nginx:1.28"}}),
            ],
            repositories: vec![
                json!({"metadata": {"name": "backstage", "namespace": "flux-system"}, "spec": {"image": "ACR.example.io/portal/backstage"}}),
                json!({"metadata": {"name": "other", "namespace": "flux-system"}, "spec": {"image": "acr.example.io/portal/other"}}),
                json!({"metadata": {"name": "nginx", "namespace": "flux-system"}, "spec": {"image": "docker.io/library/nginx"}}),
            ],
            automations: vec![
                json!({"metadata": {"name": "all", "namespace": "flux-system"}, "spec": {}}),
                json!({"metadata": {"name": "portal", "namespace": "flux-system"},
                       "spec": {"suspend": true, "policySelector": {"matchLabels": {"portal": "yes"}}}}),
                json!({"metadata": {"name": "elsewhere", "namespace": "flux-system"},
                       "spec": {"policySelector": {"matchExpressions": [{"key": "portal", "operator": "DoesNotExist"}]}}}),
                json!({"metadata": {"name": "other-namespace", "namespace": "apps"}, "spec": {}}),
            ],
            ..FluxReads::default()
        };
        let report = flux_report(&[backstage(HELM)], &reads).expect("managed");
        assert_eq!(
            report.image_policies,
            vec![
                ImagePolicyMatch {
                    namespace: "backstage".into(),
                    name: "nginx".into(),
                    image_repository: "flux-system/nginx".into(),
                    image: "docker.io/library/nginx".into(),
                    latest_image: Some("nginx:1.28".into()),
                    suspended: false,
                    containers: vec![ContainerRef {
                        workload: "deployment/backstage".into(),
                        container: "proxy".into()
                    }],
                    automations: vec![],
                },
                ImagePolicyMatch {
                    namespace: "flux-system".into(),
                    name: "backstage".into(),
                    image_repository: "flux-system/backstage".into(),
                    image: "ACR.example.io/portal/backstage".into(),
                    latest_image: Some(
                        "acr.example.io/portal/backstage:prod-6a7b8c9-20261201090000".into()
                    ),
                    suspended: false,
                    containers: vec![ContainerRef {
                        workload: "deployment/backstage".into(),
                        container: "backstage".into()
                    }],
                    automations: vec![
                        AutomationView {
                            namespace: "flux-system".into(),
                            name: "all".into(),
                            suspended: false
                        },
                        AutomationView {
                            namespace: "flux-system".into(),
                            name: "portal".into(),
                            suspended: true
                        },
                    ],
                },
            ]
        );
        assert_eq!(
            report
                .to_suspend("backstage")
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "HelmRelease/flux-system/backstage",
                "ImageUpdateAutomation/flux-system/all"
            ],
            "the manager (not read here: suspended unknown) and the automation not suspended yet"
        );
        assert_eq!(report.to_suspend("backstage-pr-1234"), vec![]);
        let automations: Vec<String> = report
            .automations_of("backstage")
            .iter()
            .map(|a| a.reference().to_string())
            .collect();
        assert_eq!(
            automations,
            [
                "ImageUpdateAutomation/flux-system/all",
                "ImageUpdateAutomation/flux-system/portal"
            ]
        );
    }

    #[test]
    fn image_repositories_compare_as_docker_normalises_them() {
        assert_eq!(
            image_repository("nginx:1.27"),
            ("docker.io".into(), "library/nginx".into())
        );
        assert_eq!(
            image_repository("index.docker.io/library/nginx"),
            image_repository("nginx@sha256:abc")
        );
        assert_eq!(
            image_repository("Registry.Example.io:5000/team/backstage:pr-1"),
            ("registry.example.io:5000".into(), "team/backstage".into())
        );
        assert_ne!(
            image_repository("ghcr.io/a/backstage"),
            image_repository("ghcr.io/b/backstage")
        );
    }

    #[test]
    fn label_selectors_as_kubernetes_reads_them() {
        let labels: BTreeMap<String, String> = [("tier".to_string(), "web".to_string())].into();
        let yes = [
            json!(null),
            json!({}),
            json!({"matchLabels": {"tier": "web"}}),
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}),
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}),
            json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
        ];
        let no = [
            json!({"matchLabels": {"tier": "api"}}),
            json!({"matchLabels": {"tier": "web", "env": "prod"}}),
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}),
            json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            json!({"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}),
        ];
        for s in &yes {
            assert!(selector_matches(Some(s), &labels), "{s}");
        }
        for s in &no {
            assert!(!selector_matches(Some(s), &labels), "{s}");
        }
        assert!(selector_matches(None, &labels));
    }

    #[test]
    fn suspended_annotation_round_trips() {
        let objects = vec![
            FluxObjectRef::new(FluxKind::HelmRelease, "flux-system", "backstage"),
            FluxObjectRef::new(FluxKind::ImageUpdateAutomation, "flux-system", "portal"),
        ];
        let value = suspended_annotation_value(&objects);
        assert_eq!(
            value,
            "HelmRelease/flux-system/backstage,ImageUpdateAutomation/flux-system/portal"
        );
        assert_eq!(parse_suspended_annotation(&value), Ok(objects));
        assert_eq!(parse_suspended_annotation(""), Ok(vec![]));
        assert!(parse_suspended_annotation("HelmRelease/backstage").is_err());
        assert!(parse_suspended_annotation("Deployment/ns/name").is_err());
        assert!(parse_suspended_annotation("HelmRelease/ns/a/b").is_err());
    }

    #[test]
    fn image_policies_are_looked_for_near_the_workloads_and_in_flux_system() {
        let managers = [FluxObjectRef::new(
            FluxKind::HelmRelease,
            "apps",
            "backstage",
        )];
        assert_eq!(
            image_namespaces("backstage", &managers)
                .into_iter()
                .collect::<Vec<_>>(),
            ["apps", "backstage", "flux-system"]
        );
    }
}
