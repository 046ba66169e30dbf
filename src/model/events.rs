//! Events as a time line: when each was last seen, in which order, and which ones an operator asked for.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use serde::Serialize;

/// One event, reduced to what is printed.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    /// Last seen, by the fallback chain of [`last_seen`]; `None` only when the event has no time at all.
    pub last_seen: Option<Timestamp>,
    pub first_seen: Option<Timestamp>,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub object: ObjectRef,
    pub count: i32,
    pub message: String,
    /// The component that reported it (`kubelet`, `deployment-controller`, …).
    pub source: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
}

impl ObjectRef {
    /// `pod/NAME`, as kubectl prints an involved object.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind.to_lowercase(), self.name)
    }
}

/// When an event was last seen: `lastTimestamp`, else `series.lastObservedTime`, else `eventTime`, else
/// `firstTimestamp`, else the event's creation time.
pub fn last_seen(event: &Event) -> Option<Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| {
            event
                .series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref())
                .map(|t| t.0)
        })
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

impl EventRow {
    pub fn from_event(event: &Event) -> EventRow {
        let count = event
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(event.count)
            .unwrap_or(1)
            .max(1);
        let source = event
            .reporting_component
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| event.source.as_ref().and_then(|s| s.component.clone()))
            .unwrap_or_default();
        EventRow {
            last_seen: last_seen(event),
            first_seen: event
                .first_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| event.event_time.as_ref().map(|t| t.0))
                .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            type_: event.type_.clone().unwrap_or_default(),
            reason: event.reason.clone().unwrap_or_default(),
            object: ObjectRef {
                kind: event.involved_object.kind.clone().unwrap_or_default(),
                name: event.involved_object.name.clone().unwrap_or_default(),
            },
            count,
            message: event
                .message
                .clone()
                .unwrap_or_default()
                .trim_end()
                .to_string(),
            source,
            name: event.metadata.name.clone().unwrap_or_default(),
        }
    }
}

/// Oldest first by last seen; events seen at the same instant keep the order the server listed them in.
/// Events with no time at all (the server always sets a creation time, so only hand-made ones) come
/// first.
pub fn sort_by_last_seen(rows: &mut [EventRow]) {
    rows.sort_by_key(|r| r.last_seen);
}

/// Which events an operator asked for.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Lower-cased types; empty means all.
    pub types: BTreeSet<String>,
    /// Objects to keep, by (lower-cased kind, name); `None` means all.
    pub objects: Option<BTreeSet<(String, String)>>,
    /// Keep events last seen at or after this instant.
    pub since: Option<Timestamp>,
}

impl EventFilter {
    pub fn matches(&self, row: &EventRow) -> bool {
        (self.types.is_empty() || self.types.contains(&row.type_.to_lowercase()))
            && self.objects.as_ref().is_none_or(|o| {
                o.contains(&(row.object.kind.to_lowercase(), row.object.name.clone()))
            })
            && self
                .since
                .is_none_or(|since| row.last_seen.is_some_and(|t| t >= since))
    }
}

/// The kinds `--for` understands, with their short names.
pub fn canonical_kind(kind: &str) -> Option<&'static str> {
    Some(match kind.to_lowercase().as_str() {
        "pod" | "pods" | "po" => "pod",
        "deployment" | "deployments" | "deploy" => "deployment",
        "replicaset" | "replicasets" | "rs" => "replicaset",
        "statefulset" | "statefulsets" | "sts" => "statefulset",
        "service" | "services" | "svc" => "service",
        "job" | "jobs" => "job",
        "cronjob" | "cronjobs" | "cj" => "cronjob",
        "persistentvolumeclaim" | "persistentvolumeclaims" | "pvc" => "persistentvolumeclaim",
        "horizontalpodautoscaler" | "hpa" => "horizontalpodautoscaler",
        "configmap" | "configmaps" | "cm" => "configmap",
        _ => return None,
    })
}

/// Parses `KIND/NAME` for `--for`.
pub fn parse_object(text: &str) -> Result<(&'static str, String), String> {
    let (kind, name) = text
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| format!("--for {text:?}: expected KIND/NAME, e.g. pod/backstage-7d9f6b5c8-xk2lp or deployment/backstage"))?;
    let kind = canonical_kind(kind).ok_or_else(|| {
        format!("--for {text:?}: unknown kind {kind:?}; use pod, deployment, replicaset, statefulset, service, job, cronjob, pvc, hpa or configmap")
    })?;
    Ok((kind, name.to_string()))
}

/// The JSON and YAML document of `events` (its table is drawn by `render::events`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsReport {
    pub kind: &'static str,
    pub context: String,
    pub namespace: String,
    pub events: Vec<EventRow>,
    #[serde(skip)]
    pub now: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(yaml: &str) -> Event {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn last_seen_follows_the_fallback_chain() {
        let all = event(
            "metadata: {name: a, creationTimestamp: '2026-11-22T10:00:00Z'}\ninvolvedObject: {}\nlastTimestamp: '2026-11-22T11:00:05Z'\nfirstTimestamp: '2026-11-22T11:00:00Z'\neventTime: '2026-11-22T11:00:01.000000Z'\nseries: {count: 2, lastObservedTime: '2026-11-22T11:00:04.000000Z'}\n",
        );
        assert_eq!(last_seen(&all).unwrap().to_string(), "2026-11-22T11:00:05Z");
        let series = event(
            "metadata: {name: a, creationTimestamp: '2026-11-22T10:00:00Z'}\ninvolvedObject: {}\neventTime: '2026-11-22T11:00:01.000000Z'\nseries: {count: 7, lastObservedTime: '2026-11-22T11:30:04.500000Z'}\n",
        );
        assert_eq!(
            last_seen(&series).unwrap().to_string(),
            "2026-11-22T11:30:04.5Z"
        );
        assert_eq!(EventRow::from_event(&series).count, 7);
        let event_time = event(
            "metadata: {name: a, creationTimestamp: '2026-11-22T10:00:00Z'}\ninvolvedObject: {}\neventTime: '2026-11-22T11:00:01.000000Z'\n",
        );
        assert_eq!(
            last_seen(&event_time).unwrap().to_string(),
            "2026-11-22T11:00:01Z"
        );
        let first = event(
            "metadata: {name: a, creationTimestamp: '2026-11-22T10:00:00Z'}\ninvolvedObject: {}\nfirstTimestamp: '2026-11-22T10:30:00Z'\n",
        );
        assert_eq!(
            last_seen(&first).unwrap().to_string(),
            "2026-11-22T10:30:00Z"
        );
        let created = event(
            "metadata: {name: a, creationTimestamp: '2026-11-22T10:00:00Z'}\ninvolvedObject: {}\n",
        );
        assert_eq!(
            last_seen(&created).unwrap().to_string(),
            "2026-11-22T10:00:00Z"
        );
        assert_eq!(
            last_seen(&event("metadata: {name: a}\ninvolvedObject: {}\n")),
            None
        );
    }

    #[test]
    fn sorting_is_oldest_first_and_stable() {
        let rows: Vec<EventRow> = [
            ("b", "2026-11-22T11:00:02Z"),
            ("a", "2026-11-22T11:00:01Z"),
            ("c", "2026-11-22T11:00:02Z"),
        ]
        .iter()
        .map(|(name, t)| {
            EventRow::from_event(&event(&format!(
                "metadata: {{name: {name}}}\ninvolvedObject: {{}}\nlastTimestamp: '{t}'\n"
            )))
        })
        .collect();
        let mut sorted = rows.clone();
        sort_by_last_seen(&mut sorted);
        let names: Vec<_> = sorted.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn filters_and_object_parsing() {
        let row = EventRow::from_event(&event(
            "metadata: {name: e}\ninvolvedObject: {kind: Pod, name: p1}\ntype: Warning\nlastTimestamp: '2026-11-22T11:00:00Z'\n",
        ));
        let mut f = EventFilter::default();
        assert!(f.matches(&row));
        f.types.insert("normal".into());
        assert!(!f.matches(&row));
        f.types.insert("warning".into());
        assert!(f.matches(&row));
        f.objects = Some(BTreeSet::from([("pod".to_string(), "p2".to_string())]));
        assert!(!f.matches(&row));
        f.objects = Some(BTreeSet::from([("pod".to_string(), "p1".to_string())]));
        f.since = Some("2026-11-22T11:00:01Z".parse().unwrap());
        assert!(!f.matches(&row));

        assert_eq!(
            parse_object("deploy/backstage").unwrap(),
            ("deployment", "backstage".to_string())
        );
        assert_eq!(parse_object("po/x").unwrap(), ("pod", "x".to_string()));
        assert!(parse_object("backstage").is_err());
        assert!(
            parse_object("widget/x")
                .unwrap_err()
                .contains("unknown kind \"widget\"")
        );
    }

    mod properties {
        use k8s_openapi::api::core::v1::EventSeries;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
        use proptest::prelude::*;

        use super::*;

        /// The times an event may carry, in fallback order: lastTimestamp, series.lastObservedTime,
        /// eventTime, firstTimestamp, creationTimestamp — each absent or one of a few instants, so
        /// that ties are common.
        type Times = [Option<u8>; 5];

        fn instant(minute: u8) -> Timestamp {
            Timestamp::from_second(1_795_000_000 + 60 * i64::from(minute)).unwrap()
        }

        fn event_with(name: usize, times: &Times, with_series: bool) -> Event {
            let at = |i: usize| times[i].map(instant);
            Event {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    creation_timestamp: at(4).map(Time),
                    ..ObjectMeta::default()
                },
                last_timestamp: at(0).map(Time),
                series: (with_series || times[1].is_some()).then(|| EventSeries {
                    count: Some(2),
                    last_observed_time: at(1).map(MicroTime),
                }),
                event_time: at(2).map(MicroTime),
                first_timestamp: at(3).map(Time),
                ..Event::default()
            }
        }

        fn times() -> impl Strategy<Value = (Times, bool)> {
            (
                proptest::array::uniform5(proptest::option::of(0u8..4)),
                any::<bool>(),
            )
        }

        proptest! {
            #[test]
            fn last_seen_is_the_first_time_in_the_chain((times, series) in times()) {
                let want = times.iter().flatten().next().map(|m| instant(*m));
                prop_assert_eq!(last_seen(&event_with(0, &times, series)), want);
            }

            #[test]
            fn sorting_is_a_stable_permutation_by_last_seen(
                events in proptest::collection::vec(times(), 0..30),
            ) {
                let rows: Vec<EventRow> = events
                    .iter()
                    .enumerate()
                    .map(|(i, (times, series))| EventRow::from_event(&event_with(i, times, *series)))
                    .collect();
                let mut sorted = rows.clone();
                sort_by_last_seen(&mut sorted);

                // A permutation: every listed position once.
                let mut positions: Vec<usize> = sorted.iter().map(|r| r.name.parse().unwrap()).collect();
                let order = positions.clone();
                positions.sort_unstable();
                prop_assert_eq!(positions, (0..rows.len()).collect::<Vec<_>>());
                for (row, position) in sorted.iter().zip(&order) {
                    prop_assert_eq!(row, &rows[*position]);
                }
                // Sorted by last seen (no time first), and in listed order among equal times.
                for (pair, positions) in sorted.windows(2).zip(order.windows(2)) {
                    prop_assert!(pair[0].last_seen <= pair[1].last_seen);
                    if pair[0].last_seen == pair[1].last_seen {
                        prop_assert!(positions[0] < positions[1]);
                    }
                }
            }
        }
    }
}
