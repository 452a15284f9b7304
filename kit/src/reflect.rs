//! One reflector over one or several namespaces, for the gateway and the operator.
//!
//! Why it exists: kube-runtime's reflector writes one watch into one store, and its
//! readiness signal wakes only the last of several concurrent waiters. Both processes
//! watch either all namespaces or a `--namespace` list, and want one store per kind: the
//! operator kube-runtime's [`Store`] (its `Controller` reads it), the gateway compact
//! records of Services and EndpointSlices (to keep its memory low at 10,000 routes). So
//! the merge is written once, here, over a [`Sink`] that each kind of store implements.
//!
//! [`reflect`] merges N watches of one kind into one sink:
//! - until every watch has listed once, objects are buffered (as the sink's values) and
//!   then written as one fill, so the store is never read half-listed; [`Ready`] turns
//!   true after the fill and wakes every waiter;
//! - afterwards events pass through, and a re-list of one watch deletes exactly the
//!   objects of its namespace that the re-list no longer contains (other namespaces keep
//!   theirs);
//! - the stream yields every object touched ([`Touched`]), after the sink applied it, so
//!   whatever it triggers reads a store that already includes the change.

use std::{
    collections::{HashMap, HashSet},
    fmt::Debug,
    marker::PhantomData,
    sync::Arc,
};

use futures::{Stream, StreamExt, stream};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::NamespaceResourceScope,
    runtime::{
        WatchStreamExt,
        reflector::{ObjectRef, Store, store::Writer},
        watcher::{self, Event, watcher},
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// An object's namespace (empty for cluster-scoped objects) and name.
pub type Key = (String, String);

/// The [`Key`] of `obj`.
pub fn key_of<K: Resource>(obj: &K) -> Key {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Where a reflector writes: a store of some value made from each object.
pub trait Sink<K>: Send + 'static {
    /// What the store keeps of an object.
    type Value: Send + Sync + 'static;

    /// The value to store for `obj`.
    fn value(&self, obj: K) -> Self::Value;

    /// Replaces the whole content with the first complete list; returns what is stored.
    /// (An iterator: the buffer is handed over as it drains, not copied whole.)
    fn fill(&mut self, values: impl Iterator<Item = (Key, Self::Value)>) -> Vec<Arc<Self::Value>>;

    /// Stores `value` under `key`; returns it as stored and what was stored before.
    fn apply(
        &mut self,
        key: &Key,
        value: Self::Value,
    ) -> (Arc<Self::Value>, Option<Arc<Self::Value>>);

    /// Removes `key`; returns what was stored.
    fn delete(&mut self, key: &Key) -> Option<Arc<Self::Value>>;

    /// Every key stored.
    fn keys(&self) -> Vec<Key>;
}

/// An object the watches reported, after the sink applied it.
#[derive(Debug)]
pub struct Touched<V> {
    /// The value as stored now; for a deletion, as it was stored (or made from the
    /// deleted object when the store did not have it).
    pub obj: Arc<V>,
    /// Part of a (re-)list: every object of the namespace is reported, so consumers need
    /// not fan out to related objects.
    pub initial: bool,
    /// The object was deleted.
    pub deleted: bool,
    /// For a live change: the value stored before (e.g. the old path of an ApiRoute whose
    /// path changed).
    pub previous: Option<Arc<V>>,
}

impl<V> Clone for Touched<V> {
    fn clone(&self) -> Self {
        Touched {
            obj: Arc::clone(&self.obj),
            initial: self.initial,
            deleted: self.deleted,
            previous: self.previous.clone(),
        }
    }
}

/// Whether a reflector's store had its first complete list. Clones share it; every
/// waiter is woken (a `watch` channel, unlike kube-runtime's single-waiter signal).
#[derive(Clone, Debug)]
pub struct Ready(watch::Receiver<bool>);

impl Ready {
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for the first complete list. A reflector dropped before it means never.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|ready| *ready).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits until each of `all` is ready.
    pub async fn all(all: &[Ready]) {
        for r in all {
            r.wait().await;
        }
    }
}

/// One `Api` per namespace of `namespaces`, or one for all namespaces when it is empty:
/// what `--namespace` means for both processes.
pub fn apis<K>(client: &Client, namespaces: &[String]) -> Vec<(Option<String>, Api<K>)>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespaces.is_empty() {
        vec![(None, Api::all(client.clone()))]
    } else {
        namespaces
            .iter()
            .map(|ns| (Some(ns.clone()), Api::namespaced(client.clone(), ns)))
            .collect()
    }
}

/// Drops `metadata.managedFields`: neither process reads them, and they are large.
pub fn drop_managed_fields<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Watches `apis` (each with its namespace, `None` for all namespaces) and writes them into
/// `sink`; `trim` shortens each object first. With no `apis` the store is filled empty
/// and ready at once.
pub fn reflect<K, S>(
    apis: Vec<(Option<String>, Api<K>)>,
    config: watcher::Config,
    trim: fn(&mut K),
    sink: S,
) -> (
    Ready,
    impl Stream<Item = Result<Touched<S::Value>, watcher::Error>> + Send + 'static,
)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
    S: Sink<K>,
{
    let namespaces: Vec<Option<String>> = apis.iter().map(|(ns, _)| ns.clone()).collect();
    let watches = apis.into_iter().enumerate().map(|(i, (_, api))| {
        watcher(api, config.clone())
            .default_backoff()
            .map(move |ev| (i, ev))
            .boxed()
    });
    let mut merge = Merge::new(namespaces, sink);
    let ready = merge.ready();
    let stream = stream::select_all(watches)
        .map(move |(i, ev)| match ev {
            Ok(ev) => merge
                .apply(i, ev.modify(trim))
                .into_iter()
                .map(Ok)
                .collect(),
            Err(e) => vec![Err(e)],
        })
        .flat_map(stream::iter);
    (ready, stream)
}

/// The merge of N watches into one sink (see the module documentation).
struct Merge<K, S: Sink<K>> {
    namespaces: Vec<Option<String>>,
    sink: S,
    ready: watch::Sender<bool>,
    /// Until every watch listed once: the values seen so far, not yet in the sink.
    buffer: Option<HashMap<Key, S::Value>>,
    listed: Vec<bool>,
    /// Keys seen by an ongoing (re-)list, per watch.
    relist: Vec<Option<HashSet<Key>>>,
    _kind: PhantomData<fn(K)>,
}

impl<K, S> Merge<K, S>
where
    K: Resource,
    K::DynamicType: Default,
    S: Sink<K>,
{
    fn new(namespaces: Vec<Option<String>>, sink: S) -> Self {
        let n = namespaces.len();
        let mut merge = Merge {
            namespaces,
            sink,
            ready: watch::channel(false).0,
            buffer: Some(HashMap::new()),
            listed: vec![false; n],
            relist: vec![None; n],
            _kind: PhantomData,
        };
        if n == 0 {
            merge.fill();
        }
        merge
    }

    fn ready(&self) -> Ready {
        Ready(self.ready.subscribe())
    }

    /// Writes the buffer as the first complete list, and says so.
    fn fill(&mut self) -> Vec<Touched<S::Value>> {
        let stored = self
            .sink
            .fill(self.buffer.take().unwrap_or_default().into_iter());
        self.ready.send_replace(true);
        tracing::debug!(kind = %K::kind(&K::DynamicType::default()), objects = stored.len(), "listed");
        stored
            .into_iter()
            .map(|obj| Touched {
                obj,
                initial: true,
                deleted: false,
                previous: None,
            })
            .collect()
    }

    fn apply(&mut self, i: usize, ev: Event<K>) -> Vec<Touched<S::Value>> {
        if let Some(buffer) = &mut self.buffer {
            match ev {
                Event::Init => self.relist[i] = Some(HashSet::new()),
                Event::InitApply(o) | Event::Apply(o) => {
                    let key = key_of(&o);
                    if let Some(seen) = &mut self.relist[i] {
                        seen.insert(key.clone());
                    }
                    buffer.insert(key, self.sink.value(o));
                }
                Event::Delete(o) => {
                    buffer.remove(&key_of(&o));
                }
                Event::InitDone => {
                    // A watch that re-lists before the others listed drops what it lost.
                    let seen = self.relist[i].take().unwrap_or_default();
                    let ns = self.namespaces[i].as_deref();
                    buffer.retain(|k, _| !belongs(ns, k) || seen.contains(k));
                    self.listed[i] = true;
                    tracing::debug!(kind = %K::kind(&K::DynamicType::default()), watch = i, "watch listed");
                    if self.listed.iter().all(|l| *l) {
                        return self.fill();
                    }
                }
            }
            return vec![];
        }
        let touched = |obj, initial, deleted, previous| {
            vec![Touched {
                obj,
                initial,
                deleted,
                previous,
            }]
        };
        match ev {
            Event::Apply(o) => {
                let key = key_of(&o);
                let (obj, previous) = self.sink.apply(&key, self.sink.value(o));
                touched(obj, false, false, previous)
            }
            Event::Delete(o) => {
                let key = key_of(&o);
                let obj = match self.sink.delete(&key) {
                    Some(obj) => obj,
                    None => Arc::new(self.sink.value(o)),
                };
                touched(obj, false, true, None)
            }
            Event::Init => {
                self.relist[i] = Some(HashSet::new());
                vec![]
            }
            Event::InitApply(o) => {
                let key = key_of(&o);
                if let Some(seen) = &mut self.relist[i] {
                    seen.insert(key.clone());
                }
                let (obj, _) = self.sink.apply(&key, self.sink.value(o));
                touched(obj, true, false, None)
            }
            Event::InitDone => {
                let seen = self.relist[i].take().unwrap_or_default();
                let ns = self.namespaces[i].as_deref();
                let gone: Vec<Key> = self
                    .sink
                    .keys()
                    .into_iter()
                    .filter(|k| belongs(ns, k) && !seen.contains(k))
                    .collect();
                gone.into_iter()
                    .filter_map(|k| self.sink.delete(&k))
                    .map(|obj| Touched {
                        obj,
                        initial: false,
                        deleted: true,
                        previous: None,
                    })
                    .collect()
            }
        }
    }
}

/// Whether `key` is in the scope of a watch of `namespace` (`None`: all namespaces).
fn belongs(namespace: Option<&str>, key: &Key) -> bool {
    namespace.is_none_or(|ns| ns == key.0)
}

/// The `ObjectRef` kube-runtime's store keys `key` by.
fn object_ref<K>(key: &Key) -> ObjectRef<K>
where
    K: Resource,
    K::DynamicType: Default,
{
    let r = ObjectRef::new(&key.1);
    if key.0.is_empty() {
        r
    } else {
        r.within(&key.0)
    }
}

/// kube-runtime's store, for the operator (its `Controller` reads these stores). The
/// store's own readiness is set by the fill too, for the `Controller`'s single wait.
impl<K> Sink<K> for Writer<K>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    type Value = K;

    fn value(&self, obj: K) -> K {
        obj
    }

    fn fill(&mut self, values: impl Iterator<Item = (Key, K)>) -> Vec<Arc<K>> {
        self.apply_watcher_event(&Event::Init);
        for (_, obj) in values {
            self.apply_watcher_event(&Event::InitApply(obj));
        }
        self.apply_watcher_event(&Event::InitDone);
        self.as_reader().state()
    }

    fn apply(&mut self, key: &Key, obj: K) -> (Arc<K>, Option<Arc<K>>) {
        let previous = self.as_reader().get(&object_ref(key));
        // The writer stores its own copy; the consumer gets this one.
        let obj = Arc::new(obj);
        self.apply_watcher_event(&Event::Apply(K::clone(&obj)));
        (obj, previous)
    }

    fn delete(&mut self, key: &Key) -> Option<Arc<K>> {
        let obj = self.as_reader().get(&object_ref(key))?;
        self.apply_watcher_event(&Event::Delete(K::clone(&obj)));
        Some(obj)
    }

    fn keys(&self) -> Vec<Key> {
        let store: Store<K> = self.as_reader();
        store.state().iter().map(|o| key_of(&**o)).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use k8s_openapi::{api::core::v1::ConfigMap, apimachinery::pkg::apis::meta::v1::ObjectMeta};

    use super::*;

    fn cm(ns: &str, name: &str, data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some([("v".to_owned(), data.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    fn data(c: &ConfigMap) -> &str {
        c.data
            .as_ref()
            .and_then(|d| d.get("v"))
            .map_or("", String::as_str)
    }

    /// (namespace/name, initial, deleted), sorted.
    fn names(out: &[Touched<ConfigMap>]) -> Vec<(String, bool, bool)> {
        let mut v: Vec<_> = out
            .iter()
            .map(|t| {
                let (ns, name) = key_of(&*t.obj);
                (format!("{ns}/{name}"), t.initial, t.deleted)
            })
            .collect();
        v.sort();
        v
    }

    fn keys(store: &Store<ConfigMap>) -> Vec<String> {
        let mut v: Vec<String> = store
            .state()
            .iter()
            .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
            .collect();
        v.sort();
        v
    }

    fn merge(
        namespaces: &[Option<&str>],
    ) -> (Merge<ConfigMap, Writer<ConfigMap>>, Store<ConfigMap>) {
        let writer = Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        let namespaces = namespaces.iter().map(|n| n.map(str::to_owned)).collect();
        (Merge::new(namespaces, writer), store)
    }

    fn t(name: &str, initial: bool, deleted: bool) -> (String, bool, bool) {
        (name.to_owned(), initial, deleted)
    }

    #[test]
    fn two_namespaces_fill_one_store_only_when_both_listed() {
        let (mut m, store) = merge(&[Some("a"), Some("b")]);
        let ready = m.ready();
        let a1 = cm("a", "r1", "1");
        let a2 = cm("a", "r2", "1");
        let b1 = cm("b", "r1", "1");
        assert!(m.apply(0, Event::Init).is_empty());
        assert!(m.apply(0, Event::InitApply(a1.clone())).is_empty());
        assert!(m.apply(0, Event::InitApply(a2.clone())).is_empty());
        assert!(m.apply(0, Event::InitDone).is_empty());
        // a is watching while b still lists: a2 is deleted meanwhile.
        assert!(m.apply(0, Event::Delete(a2.clone())).is_empty());
        assert!(m.apply(1, Event::Init).is_empty());
        assert!(m.apply(1, Event::InitApply(b1.clone())).is_empty());
        assert!(keys(&store).is_empty());
        assert!(!ready.is_ready());
        assert_eq!(
            names(&m.apply(1, Event::InitDone)),
            [t("a/r1", true, false), t("b/r1", true, false)]
        );
        assert!(ready.is_ready());
        assert_eq!(keys(&store), ["a/r1", "b/r1"]);

        // Live events pass through, with the value they replace.
        let out = m.apply(0, Event::Apply(a2.clone()));
        assert_eq!(names(&out), [t("a/r2", false, false)]);
        assert!(out[0].previous.is_none());
        assert_eq!(keys(&store), ["a/r1", "a/r2", "b/r1"]);
        let out = m.apply(0, Event::Apply(cm("a", "r2", "2")));
        assert_eq!(data(&out[0].obj), "2");
        assert_eq!(data(out[0].previous.as_deref().unwrap()), "1");

        // A re-list of `a` that lacks r1 deletes it, and leaves `b` alone.
        assert!(m.apply(0, Event::Init).is_empty());
        assert_eq!(
            names(&m.apply(0, Event::InitApply(a2))),
            [t("a/r2", true, false)]
        );
        let out = m.apply(0, Event::InitDone);
        assert_eq!(names(&out), [t("a/r1", false, true)]);
        assert_eq!(data(&out[0].obj), "1", "the deleted object as stored");
        assert_eq!(keys(&store), ["a/r2", "b/r1"]);
        assert_eq!(
            names(&m.apply(1, Event::Delete(b1))),
            [t("b/r1", false, true)]
        );
        assert_eq!(keys(&store), ["a/r2"]);
        // An empty re-list of `b` deletes nothing of `a`.
        assert!(m.apply(1, Event::Init).is_empty());
        assert!(m.apply(1, Event::InitDone).is_empty());
        assert_eq!(keys(&store), ["a/r2"]);
    }

    #[test]
    fn a_re_list_before_the_others_listed_drops_only_its_own_lost_objects() {
        let (mut m, store) = merge(&[Some("a"), Some("b")]);
        m.apply(1, Event::Init);
        m.apply(1, Event::InitApply(cm("b", "x", "1")));
        m.apply(0, Event::Init);
        m.apply(0, Event::InitApply(cm("a", "gone", "1")));
        m.apply(0, Event::InitApply(cm("a", "kept", "1")));
        m.apply(0, Event::InitDone);
        // `a`'s watch restarts before `b` finished: `gone` is not in its new list.
        m.apply(0, Event::Init);
        m.apply(0, Event::InitApply(cm("a", "kept", "2")));
        assert!(m.apply(0, Event::InitDone).is_empty());
        let out = m.apply(1, Event::InitDone);
        assert_eq!(
            names(&out),
            [t("a/kept", true, false), t("b/x", true, false)]
        );
        assert_eq!(keys(&store), ["a/kept", "b/x"]);
    }

    #[test]
    fn all_namespaces_is_one_watch_and_a_re_list_covers_every_namespace() {
        let (mut m, store) = merge(&[None]);
        m.apply(0, Event::Init);
        m.apply(0, Event::InitApply(cm("a", "x", "1")));
        m.apply(0, Event::InitApply(cm("b", "y", "1")));
        assert_eq!(
            names(&m.apply(0, Event::InitDone)),
            [t("a/x", true, false), t("b/y", true, false)]
        );
        m.apply(0, Event::Init);
        m.apply(0, Event::InitApply(cm("c", "z", "1")));
        assert_eq!(
            names(&m.apply(0, Event::InitDone)),
            [t("a/x", false, true), t("b/y", false, true)]
        );
        assert_eq!(keys(&store), ["c/z"]);
    }

    #[test]
    fn no_watch_is_an_empty_store_ready_at_once() {
        let writer = Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        let (ready, _stream) = reflect::<ConfigMap, _>(
            vec![],
            watcher::Config::default(),
            drop_managed_fields,
            writer,
        );
        assert!(ready.is_ready());
        assert!(store.state().is_empty());
        // kube-runtime's own signal too (its Controller waits on it).
        assert!(futures::FutureExt::now_or_never(store.wait_until_ready()).is_some());
    }

    /// A sink keeping one field of each object, as the gateway keeps records.
    #[derive(Default)]
    struct Values(HashMap<Key, Arc<String>>);

    impl Sink<ConfigMap> for Values {
        type Value = String;
        fn value(&self, obj: ConfigMap) -> String {
            data(&obj).to_owned()
        }
        fn fill(&mut self, values: impl Iterator<Item = (Key, String)>) -> Vec<Arc<String>> {
            self.0 = values.map(|(k, v)| (k, Arc::new(v))).collect();
            self.0.values().cloned().collect()
        }
        fn apply(&mut self, key: &Key, value: String) -> (Arc<String>, Option<Arc<String>>) {
            let value = Arc::new(value);
            (Arc::clone(&value), self.0.insert(key.clone(), value))
        }
        fn delete(&mut self, key: &Key) -> Option<Arc<String>> {
            self.0.remove(key)
        }
        fn keys(&self) -> Vec<Key> {
            self.0.keys().cloned().collect()
        }
    }

    #[test]
    fn a_sink_of_projections_gets_the_same_merge() {
        let mut m = Merge::new(vec![Some("a".into()), Some("b".into())], Values::default());
        let stored = |m: &Merge<ConfigMap, Values>| {
            let mut v: Vec<(String, String)> = m
                .sink
                .0
                .iter()
                .map(|(k, v)| (format!("{}/{}", k.0, k.1), (**v).clone()))
                .collect();
            v.sort();
            v
        };
        m.apply(0, Event::Init);
        m.apply(0, Event::InitApply(cm("a", "x", "1")));
        m.apply(0, Event::InitDone);
        m.apply(1, Event::Init);
        m.apply(1, Event::InitApply(cm("b", "x", "1")));
        let out = m.apply(1, Event::InitDone);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|t| t.initial && *t.obj == "1"));
        let out = m.apply(1, Event::Apply(cm("b", "x", "2")));
        assert_eq!(*out[0].obj, "2");
        assert_eq!(out[0].previous.as_deref().map(String::as_str), Some("1"));
        // `b` re-lists without x: only b/x goes, reported with its stored value.
        m.apply(1, Event::Init);
        let out = m.apply(1, Event::InitDone);
        assert_eq!(out.len(), 1);
        assert!(out[0].deleted && *out[0].obj == "2");
        assert_eq!(stored(&m), [("a/x".to_owned(), "1".to_owned())]);
    }

    /// Starts `n` tasks that each wait on `wait`, and returns once every one of them is
    /// waiting (polled once, still pending).
    async fn waiters<F>(n: usize, wait: impl Fn() -> F) -> Vec<tokio::task::JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks = (0..n)
            .map(|_| {
                let (started, wait) = (Arc::clone(&started), wait());
                tokio::spawn(async move {
                    // Counted in the same poll that registers the wait.
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    wait.await
                })
            })
            .collect();
        while started.load(std::sync::atomic::Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
        tasks
    }

    /// kube-runtime's store readiness wakes only the last of several waiting tasks (this
    /// test with `Store::wait_until_ready` in place of `Ready::wait` times out); this one
    /// wakes them all.
    #[tokio::test]
    async fn readiness_wakes_every_waiting_task() {
        let (mut m, _store) = merge(&[Some("a"), Some("b")]);
        let ready = m.ready();
        let tasks = waiters(4, || {
            let r = ready.clone();
            async move { r.wait().await }
        })
        .await;
        m.apply(0, Event::Init);
        m.apply(0, Event::InitDone);
        assert!(!ready.is_ready(), "b has not listed");
        m.apply(1, Event::Init);
        m.apply(1, Event::InitDone);
        let all = futures::future::join_all(tasks);
        let woken = tokio::time::timeout(Duration::from_secs(10), all).await;
        assert!(woken.is_ok(), "a waiting task was not woken");
        // A waiter after the fact returns at once.
        assert!(futures::FutureExt::now_or_never(ready.wait()).is_some());
    }
}
