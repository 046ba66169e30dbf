//! Watches: replay from a resourceVersion or an initial list, streamed changes, bookmarks, and 410
//! Gone for versions older than the last compaction.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::discovery::Resource;
use crate::list::{Filter, present, wants_partial, wants_table};
use crate::responses::{Body, json_response};
use crate::router::Query;
use crate::server::Shared;
use crate::store::{Change, Expiry, gone_status};
use crate::table::{self, Include};

#[derive(Clone, Copy, PartialEq)]
enum WatchFormat {
    Object,
    Table(Include),
    Partial,
}

struct Watch {
    res: &'static Resource,
    filter: Filter,
    format: WatchFormat,
    queue: VecDeque<Bytes>,
    rx: broadcast::Receiver<Change>,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    next_bookmark: tokio::time::Instant,
    headers_sent: bool,
    rv: u64,
    /// Ends the watch at the next compaction of the store.
    compactions: tokio::sync::watch::Receiver<(u64, Expiry)>,
    /// Set when the watch ends once its queue is sent.
    ending: bool,
}

const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

impl Watch {
    fn push(&mut self, kind: &str, obj: &Value) {
        let object = match self.format {
            WatchFormat::Object => obj.clone(),
            WatchFormat::Partial => table::partial_metadata(obj),
            WatchFormat::Table(include) => {
                let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                let t = table::table(
                    self.res.storage,
                    std::slice::from_ref(obj),
                    include,
                    meta,
                    !self.headers_sent,
                );
                self.headers_sent = true;
                t
            }
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
    }

    /// The ERROR event of a watch whose resourceVersion has expired; the watch then ends.
    fn push_gone(&mut self, status: Value) {
        let mut line =
            serde_json::to_vec(&json!({"type": "ERROR", "object": status})).unwrap_or_default();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
        self.ending = true;
    }

    fn push_bookmark(&mut self, initial_end: bool) {
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta});
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
    }

    fn on_change(&mut self, c: Change) {
        if c.storage != self.res.storage {
            return;
        }
        self.rv = self.rv.max(c.rv);
        let new = present(self.res, c.object);
        let new_match = self.filter.matches(&new);
        match c.kind {
            "MODIFIED" => {
                let old_match = c
                    .old
                    .map(|o| self.filter.matches(&present(self.res, o)))
                    .unwrap_or(false);
                match (old_match, new_match) {
                    (true, true) => self.push("MODIFIED", &new),
                    (false, true) => self.push("ADDED", &new),
                    (true, false) => self.push("DELETED", &new),
                    (false, false) => {}
                }
            }
            kind => {
                if new_match {
                    self.push(kind, &new);
                }
            }
        }
    }
}

pub(crate) fn start_watch(
    shared: &Arc<Shared>,
    res: &'static Resource,
    filter: Filter,
    accept: &str,
    query: &Query,
) -> Response<Body> {
    let format = if wants_table(accept) {
        WatchFormat::Table(Include::parse(query.get("includeObject")))
    } else if wants_partial(accept) {
        WatchFormat::Partial
    } else {
        WatchFormat::Object
    };
    let from: Option<u64> = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .and_then(|v| v.parse().ok());
    let send_initial = query.flag("sendInitialEvents");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let now = tokio::time::Instant::now();
    let store = shared.store();
    let gone = from.and_then(|rv| Some((rv, store.expired(rv)?)));
    if let Some((rv, Expiry::HttpStatus)) = gone {
        return json_response(StatusCode::GONE, &gone_status(rv, store.compacted()));
    }
    let mut w = Watch {
        res,
        filter,
        format,
        queue: VecDeque::new(),
        rx: store.subscribe(),
        deadline: now + Duration::from_secs(timeout),
        bookmarks: query.flag("allowWatchBookmarks"),
        next_bookmark: now + BOOKMARK_EVERY,
        headers_sent: false,
        rv: store.resource_version(),
        compactions: store.compactions(),
        ending: false,
    };
    match from {
        Some(rv) if gone.is_some() => w.push_gone(gone_status(rv, store.compacted())),
        Some(rv) if !send_initial => {
            for c in store.history_after(res.storage, rv) {
                w.on_change(c);
            }
            w.rv = store.resource_version();
        }
        _ => {
            for (_, obj) in store.list(res.storage, w.filter.namespace.as_deref()) {
                let obj = present(res, obj);
                if w.filter.matches(&obj) {
                    w.push("ADDED", &obj);
                }
            }
            if send_initial {
                w.push_bookmark(true);
            }
        }
    }
    drop(store);
    let stream = futures::stream::unfold(w, |mut w| async move {
        loop {
            if let Some(b) = w.queue.pop_front() {
                return Some((Ok::<_, Infallible>(Frame::data(b)), w));
            }
            if w.ending {
                return None;
            }
            let wake = if w.bookmarks {
                w.deadline.min(w.next_bookmark)
            } else {
                w.deadline
            };
            tokio::select! {
                // A compaction first: changes made after it never reach a watch it has expired.
                biased;
                changed = w.compactions.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let (compacted, expiry) = *w.compactions.borrow_and_update();
                    match expiry {
                        Expiry::WatchEvent => w.push_gone(gone_status(w.rv, compacted)),
                        Expiry::HttpStatus => w.ending = true,
                    }
                }
                r = w.rx.recv() => match r {
                    Ok(c) => w.on_change(c),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= w.deadline {
                        return None;
                    }
                    w.next_bookmark += BOOKMARK_EVERY;
                    w.push_bookmark(false);
                }
            }
        }
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}
