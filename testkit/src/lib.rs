//! Test rig for kubectl-backstage: a fake Kubernetes API server that the real `kubectl` and
//! kube-rs accept (discovery, list/get with tables, pagination and selectors, watch, pod logs and
//! pod exec over websocket), and fixtures of a Backstage namespace in the middle of an incident.

mod discovery;
mod exec;
mod fixtures;
mod flux;
mod kubelet;
mod list;
mod logs;
mod patch;
mod portforward;
mod responses;
mod rollout;
mod router;
mod selectors;
mod server;
mod store;
mod table;
mod time;
mod tls;
mod watch;
mod websocket;
mod write;

pub use fixtures::{Fixtures, INCIDENT_PODS, LogKey, incident_dir};
pub use kubelet::{NODE, PodOutcome, PodRuntime, PodStart, image_id};
pub use responses::status_object;
pub use selectors::{FieldSelector, LabelSelector};
pub use server::{FakeApiServer, RecordedRequest, ServerOptions};
pub use store::Expiry;
pub use table::pod_status;
pub use time::{ANCHOR, human_duration, rebase_delta_secs, rebased, rebased_anchor, unix_seconds};
pub use tls::TestCertificates;
