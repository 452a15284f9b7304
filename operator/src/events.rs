//! Kubernetes Events about ApiRoutes (`events.k8s.io/v1`), published in the background.
//!
//! Events are for people: a reconcile never waits for one. One task publishes them from a
//! bounded queue (full: the Event is dropped and counted,
//! `apiroutes_operator_events_dropped_total`). A repeat of the same Event (same object,
//! type, reason and note) within six minutes patches the first one's `series` count
//! instead of creating another, as client-go's recorder does.
//!
//! Why not kube's `Recorder`: it keeps every Event it published for six minutes and scans
//! them all on every publish, and the controller spawned a task per Event. At 10,000 new
//! routes that was 45 MiB of cached Events and a 10,000-entry scan per Event. The cache
//! here holds a hash of each Event's key and its name, and is bounded.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use prometheus::IntCounter;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How long a published Event can be continued as a series.
const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);
/// Events waiting to be published.
const QUEUE: usize = 4096;
/// Events remembered for series.
const CACHE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One Event to publish.
#[derive(Clone, Debug)]
pub struct Pending {
    pub regarding: ObjectReference,
    pub type_: EventType,
    pub reason: String,
    pub note: String,
}

impl Pending {
    /// What makes two Events the same (a series): the object and what is said about it.
    fn key(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        let r = &self.regarding;
        (&r.namespace, &r.name, &r.uid, &r.kind).hash(&mut h);
        (self.type_, &self.reason, &self.note).hash(&mut h);
        h.finish()
    }
}

/// Who publishes: `reportingController` and `reportingInstance`.
#[derive(Clone, Debug)]
pub struct Reporter {
    pub controller: String,
    pub instance: String,
}

/// The sending half: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<Pending>,
    dropped: IntCounter,
}

impl Events {
    /// Starts the publishing task; it ends when every `Events` is dropped.
    pub fn start(client: Client, reporter: Reporter, dropped: IntCounter) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(publish_all(client, reporter, rx));
        Events { tx, dropped }
    }

    /// Queues `event`; drops it (counted) when the queue is full.
    pub fn publish(&self, event: Pending) {
        if self.tx.try_send(event).is_err() {
            self.dropped.inc();
            debug!("event queue full: an Event was dropped");
        }
    }
}

/// An Event published recently: its name (to patch) and how many times it happened.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    namespace: Box<str>,
    name: Box<str>,
    count: i32,
    last: Timestamp,
}

/// What to do for one Event.
#[derive(Debug, PartialEq)]
enum Action {
    Create,
    /// Patch the series of the Event named so to `count`.
    Repeat {
        namespace: Box<str>,
        name: Box<str>,
        count: i32,
    },
}

/// The Events published in the last [`SERIES_TTL`], at most `cap` of them.
#[derive(Debug)]
struct Series {
    seen: HashMap<u64, Seen>,
    cap: usize,
}

impl Series {
    fn new(cap: usize) -> Self {
        Series {
            seen: HashMap::new(),
            cap,
        }
    }

    fn decide(&self, key: u64, now: Timestamp) -> Action {
        match self.seen.get(&key) {
            Some(s) if s.last + SERIES_TTL > now => Action::Repeat {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                count: s.count + 1,
            },
            _ => Action::Create,
        }
    }

    /// Records that the Event `key` was published as `seen`.
    fn record(&mut self, key: u64, seen: Seen) {
        if self.seen.len() >= self.cap && !self.seen.contains_key(&key) {
            let now = seen.last;
            self.seen.retain(|_, s| s.last + SERIES_TTL > now);
            // Still full of live series: forget the oldest.
            if self.seen.len() >= self.cap
                && let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| *k)
            {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(key, seen);
    }

    fn forget(&mut self, key: u64) {
        self.seen.remove(&key);
    }
}

/// The Event object for a first occurrence.
fn new_event(p: &Pending, reporter: &Reporter, now: Timestamp) -> K8sEvent {
    K8sEvent {
        metadata: ObjectMeta {
            namespace: p.regarding.namespace.clone(),
            name: Some(format!(
                "{}.{:x}",
                p.regarding.name.as_deref().unwrap_or("apiroutes"),
                now.as_nanosecond()
            )),
            ..ObjectMeta::default()
        },
        action: Some("Reconcile".to_owned()),
        reason: Some(p.reason.clone()),
        note: Some(p.note.clone()),
        type_: Some(p.type_.as_str().to_owned()),
        event_time: Some(MicroTime(now)),
        regarding: Some(p.regarding.clone()),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance.clone()),
        ..K8sEvent::default()
    }
}

async fn publish_all(client: Client, reporter: Reporter, mut rx: mpsc::Receiver<Pending>) {
    let mut series = Series::new(CACHE);
    while let Some(p) = rx.recv().await {
        let key = p.key();
        let now = Timestamp::now();
        let namespace = p.regarding.namespace.clone().unwrap_or_default();
        let mut action = series.decide(key, now);
        if let Action::Repeat {
            namespace,
            name,
            count,
        } = &action
        {
            let api: Api<K8sEvent> = Api::namespaced(client.clone(), namespace);
            let patch = serde_json::json!({
                "series": {"count": count, "lastObservedTime": MicroTime(now)}
            });
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    series.record(
                        key,
                        Seen {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            count: *count,
                            last: now,
                        },
                    );
                    continue;
                }
                // Gone (deleted, or expired by the API server): start a new one.
                Err(e) => {
                    debug!(error = %e, "continuing an Event failed; creating a new one");
                    series.forget(key);
                    action = Action::Create;
                }
            }
        }
        if action == Action::Create {
            let event = new_event(&p, &reporter, now);
            let api: Api<K8sEvent> = Api::namespaced(client.clone(), &namespace);
            match api.create(&PostParams::default(), &event).await {
                Ok(created) => series.record(
                    key,
                    Seen {
                        namespace: namespace.into(),
                        name: created
                            .metadata
                            .name
                            .or(event.metadata.name)
                            .unwrap_or_default()
                            .into(),
                        count: 1,
                        last: now,
                    },
                ),
                Err(e) => warn!(error = %e, "publishing an Event failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str, reason: &str, note: &str) -> Pending {
        Pending {
            regarding: ObjectReference {
                namespace: Some("shop".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                kind: Some("ApiRoute".into()),
                ..ObjectReference::default()
            },
            type_: EventType::Normal,
            reason: reason.into(),
            note: note.into(),
        }
    }

    fn seen(name: &str, count: i32, last: Timestamp) -> Seen {
        Seen {
            namespace: "shop".into(),
            name: name.into(),
            count,
            last,
        }
    }

    #[test]
    fn a_repeat_within_the_ttl_continues_the_series() {
        let t0 = Timestamp::UNIX_EPOCH + SignedDuration::from_hours(1000);
        let mut s = Series::new(10);
        let k = pending("a", "Created", "made").key();
        assert_eq!(s.decide(k, t0), Action::Create);
        s.record(k, seen("a.1", 1, t0));
        let t1 = t0 + SignedDuration::from_mins(5);
        assert_eq!(
            s.decide(k, t1),
            Action::Repeat {
                namespace: "shop".into(),
                name: "a.1".into(),
                count: 2
            }
        );
        s.record(k, seen("a.1", 2, t1));
        // Six minutes after the last occurrence: a new Event.
        assert_eq!(s.decide(k, t1 + SERIES_TTL), Action::Create);
    }

    #[test]
    fn keys_tell_objects_reasons_and_notes_apart() {
        let base = pending("a", "Created", "made");
        assert_eq!(base.key(), pending("a", "Created", "made").key());
        assert_ne!(base.key(), pending("b", "Created", "made").key());
        assert_ne!(base.key(), pending("a", "Conflict", "made").key());
        assert_ne!(base.key(), pending("a", "Created", "other").key());
        let mut warning = base.clone();
        warning.type_ = EventType::Warning;
        assert_ne!(base.key(), warning.key());
    }

    #[test]
    fn the_cache_is_bounded() {
        let t0 = Timestamp::UNIX_EPOCH + SignedDuration::from_hours(1000);
        let mut s = Series::new(3);
        for i in 0..3 {
            s.record(i, seen("x", 1, t0 + SignedDuration::from_secs(i as i64)));
        }
        // Full of live series: the oldest goes.
        s.record(9, seen("y", 1, t0 + SignedDuration::from_secs(10)));
        assert_eq!(s.seen.len(), 3);
        assert!(!s.seen.contains_key(&0));
        // Expired ones go first, all at once.
        s.record(
            10,
            seen("z", 1, t0 + SERIES_TTL + SignedDuration::from_secs(5)),
        );
        assert_eq!(s.seen.len(), 2, "{:?}", s.seen.keys().collect::<Vec<_>>());
        assert!(s.seen.contains_key(&9) && s.seen.contains_key(&10));
    }

    #[test]
    fn a_first_event_names_its_object_and_reporter() {
        let now = Timestamp::UNIX_EPOCH + SignedDuration::from_hours(1000);
        let reporter = Reporter {
            controller: "apiroutes-operator".into(),
            instance: "op-0".into(),
        };
        let e = new_event(&pending("a", "Created", "made"), &reporter, now);
        assert_eq!(e.metadata.namespace.as_deref(), Some("shop"));
        assert!(
            e.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("a."))
        );
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.reason.as_deref(), Some("Created"));
        assert_eq!(e.note.as_deref(), Some("made"));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("apiroutes-operator")
        );
        assert_eq!(e.reporting_instance.as_deref(), Some("op-0"));
        assert_eq!(e.regarding.and_then(|r| r.name).as_deref(), Some("a"));
    }
}
