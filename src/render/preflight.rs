//! The progress lines of an `image:REF` preflight on stderr, one line per change (`preflight: …`),
//! so that a pull of several minutes shows what the scheduler and the kubelet say. Escaped: reasons
//! and messages come from the cluster.

use crate::migrations::image::ProgressEvent;
use crate::model::text::escape_control;

/// The line for one event.
pub fn preflight_line(event: &ProgressEvent) -> String {
    match event {
        ProgressEvent::LeftoverDeleted { pod, why } => {
            format!("preflight: deleted pod {pod} left by an earlier run ({why})")
        }
        ProgressEvent::Creating {
            pod,
            image,
            template,
        } => match template {
            Some(workload) => format!(
                "preflight: creating pod {pod} with image {image} (pull secrets, placement and security context of {workload})"
            ),
            None => format!(
                "preflight: creating pod {pod} with image {image} (no Backstage Deployment found to model it on)"
            ),
        },
        ProgressEvent::Waiting {
            pod,
            reason,
            message,
        } => match message {
            Some(message) => format!("preflight: pod {pod}: {reason}: {message}"),
            None => format!("preflight: pod {pod}: {reason}"),
        },
        ProgressEvent::Event {
            pod,
            reason,
            message,
        } => format!("preflight: pod {pod}: {reason}: {message}"),
        ProgressEvent::Reading { pod } => {
            format!("preflight: pod {pod} is running; reading its migration files and packages")
        }
        ProgressEvent::Deleted { pod } => format!("preflight: deleted pod {pod}"),
    }
}

/// Prints one event on stderr.
pub fn preflight_progress(event: ProgressEvent) {
    eprintln!("{}", escape_control(&preflight_line(&event)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_one_line() {
        assert_eq!(
            preflight_line(&ProgressEvent::Waiting {
                pod: "backstage-preflight-x".into(),
                reason: "ContainerCreating".into(),
                message: None
            }),
            "preflight: pod backstage-preflight-x: ContainerCreating"
        );
        assert_eq!(
            preflight_line(&ProgressEvent::Creating {
                pod: "p".into(),
                image: "acr.io/backstage:pr-1-abc".into(),
                template: Some("deployment/backstage".into())
            }),
            "preflight: creating pod p with image acr.io/backstage:pr-1-abc (pull secrets, placement and security context of deployment/backstage)"
        );
    }
}
