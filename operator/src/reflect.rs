//! Reflectors over one or several namespaces into a single [`Store`].
//!
//! kube-runtime's reflector writes one watch into one store. The operator watches either
//! all namespaces or a list of them (`--namespace`, repeatable), and its controller needs
//! one store of each kind. This module merges N watches into one [`Writer`]: until every
//! watch has listed once, events are buffered and then written as one initial list (so
//! the store becomes ready only when it is complete); afterwards events pass through, and
//! a re-list of one namespace deletes from the store exactly the objects of that
//! namespace that the re-list no longer contains.
//!
//! The stream yields every object touched (applied or deleted), after the store has seen
//! it, so a reconcile triggered by it reads a store that already includes the change.

use std::{
    collections::{HashMap, HashSet},
    fmt::Debug,
    time::Duration,
};

use apiroutes_crds::ApiRoute;
use futures::{Stream, StreamExt, stream};
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{ObjectRef, Store, store::Writer},
        watcher::{self, Event, watcher},
    },
};
use serde::de::DeserializeOwned;

/// An object the watch reported, after the store applied it.
#[derive(Clone, Debug)]
pub struct Touched<K> {
    pub obj: K,
    /// Part of a (re-)list: every object of the namespace is reported, so callers need not
    /// fan out to related objects.
    pub initial: bool,
    /// The object was deleted.
    pub deleted: bool,
    /// For a live change: the object as the store had it before (e.g. the old path of an
    /// ApiRoute whose path changed).
    pub previous: Option<K>,
}

/// Watches `apis` (each paired with its namespace, `None` for all namespaces) and writes
/// them into `writer`. `strip` trims each object before it is stored (e.g. managed fields).
pub fn reflect<K>(
    apis: Vec<(Option<String>, Api<K>)>,
    config: watcher::Config,
    writer: Writer<K>,
    strip: fn(&mut K),
) -> impl Stream<Item = Result<Touched<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let namespaces: Vec<Option<String>> = apis.iter().map(|(ns, _)| ns.clone()).collect();
    let watches = apis.into_iter().enumerate().map(|(i, (_, api))| {
        watcher(api, config.clone())
            .default_backoff()
            .map(move |ev| (i, ev))
            .boxed()
    });
    let mut merge = Merge::new(namespaces, writer);
    stream::select_all(watches)
        .map(move |(i, ev)| match ev {
            Ok(ev) => merge.apply(i, ev.modify(strip)),
            Err(e) => vec![Err(e)],
        })
        .flat_map(stream::iter)
}

/// Waits until a store has its first complete list. kube-runtime's readiness signal wakes
/// only the last of several concurrent waiters (the controller waits on the same store),
/// so poll it with a short timeout instead of waiting once.
pub async fn ready<K>(store: &Store<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready())
        .await
        .is_err()
    {}
}

/// Drops `metadata.managedFields`: the operator never reads them and they are large.
pub fn strip_managed_fields<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// An ApiRoute without managed fields and `kubectl`'s copy of its last applied spec.
pub fn strip_route(r: &mut ApiRoute) {
    r.metadata.managed_fields = None;
    if let Some(a) = r.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

struct Merge<K: Resource<DynamicType = ()> + Clone + 'static> {
    namespaces: Vec<Option<String>>,
    writer: Writer<K>,
    reader: Store<K>,
    /// Until every watch listed once: the objects seen so far, not yet in the store.
    buffer: Option<HashMap<ObjectRef<K>, K>>,
    listed: Vec<bool>,
    /// Keys seen by an ongoing (re-)list, per watch.
    relist: Vec<Option<HashSet<ObjectRef<K>>>>,
}

impl<K> Merge<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + 'static,
{
    fn new(namespaces: Vec<Option<String>>, writer: Writer<K>) -> Self {
        let n = namespaces.len();
        Merge {
            namespaces,
            reader: writer.as_reader(),
            writer,
            buffer: Some(HashMap::new()),
            listed: vec![false; n],
            relist: vec![None; n],
        }
    }

    fn belongs(&self, i: usize, obj: &K) -> bool {
        match &self.namespaces[i] {
            None => true,
            Some(ns) => obj.namespace().as_deref() == Some(ns.as_str()),
        }
    }

    fn apply(&mut self, i: usize, ev: Event<K>) -> Vec<Result<Touched<K>, watcher::Error>> {
        let touched = |obj, initial, deleted| {
            Ok(Touched {
                obj,
                initial,
                deleted,
                previous: None,
            })
        };
        // Objects of watch `i` that its finished re-list did not contain.
        let gone = |this: &mut Self, present: Vec<K>| -> Vec<K> {
            let seen = this.relist[i].take().unwrap_or_default();
            present
                .into_iter()
                .filter(|o| this.belongs(i, o) && !seen.contains(&ObjectRef::from_obj(o)))
                .collect()
        };
        if let Some(buffer) = &mut self.buffer {
            match ev {
                Event::Init => self.relist[i] = Some(HashSet::new()),
                Event::InitApply(o) | Event::Apply(o) => {
                    let key = ObjectRef::from_obj(&o);
                    if let Some(seen) = &mut self.relist[i] {
                        seen.insert(key.clone());
                    }
                    buffer.insert(key, o);
                }
                Event::Delete(o) => {
                    buffer.remove(&ObjectRef::from_obj(&o));
                }
                Event::InitDone => {
                    let present: Vec<K> = buffer.values().cloned().collect();
                    for o in gone(self, present) {
                        if let Some(b) = &mut self.buffer {
                            b.remove(&ObjectRef::from_obj(&o));
                        }
                    }
                    self.listed[i] = true;
                    tracing::debug!(kind = %K::kind(&()), watch = i, "listed");
                    if self.listed.iter().all(|l| *l) {
                        let objs: Vec<K> = self
                            .buffer
                            .take()
                            .unwrap_or_default()
                            .into_values()
                            .collect();
                        self.writer.apply_watcher_event(&Event::Init);
                        for o in &objs {
                            self.writer
                                .apply_watcher_event(&Event::InitApply(o.clone()));
                        }
                        self.writer.apply_watcher_event(&Event::InitDone);
                        return objs.into_iter().map(|o| touched(o, true, false)).collect();
                    }
                }
            }
            return vec![];
        }
        match ev {
            Event::Apply(o) => {
                let previous = self
                    .reader
                    .get(&ObjectRef::from_obj(&o))
                    .map(|p| (*p).clone());
                self.writer.apply_watcher_event(&Event::Apply(o.clone()));
                vec![Ok(Touched {
                    obj: o,
                    initial: false,
                    deleted: false,
                    previous,
                })]
            }
            Event::Delete(o) => {
                self.writer.apply_watcher_event(&Event::Delete(o.clone()));
                vec![touched(o, false, true)]
            }
            Event::Init => {
                self.relist[i] = Some(HashSet::new());
                vec![]
            }
            Event::InitApply(o) => {
                if let Some(seen) = &mut self.relist[i] {
                    seen.insert(ObjectRef::from_obj(&o));
                }
                self.writer.apply_watcher_event(&Event::Apply(o.clone()));
                vec![touched(o, true, false)]
            }
            Event::InitDone => {
                let present: Vec<K> = self.reader.state().iter().map(|o| (**o).clone()).collect();
                gone(self, present)
                    .into_iter()
                    .map(|o| {
                        self.writer.apply_watcher_event(&Event::Delete(o.clone()));
                        touched(o, false, true)
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use apiroutes_crds::{ApiRoute, testing::route};

    use super::*;

    fn names(out: &[Result<Touched<ApiRoute>, watcher::Error>]) -> Vec<(String, bool, bool)> {
        out.iter()
            .map(|t| {
                let t = t.as_ref().unwrap();
                (t.obj.key(), t.initial, t.deleted)
            })
            .collect()
    }

    fn keys(store: &Store<ApiRoute>) -> Vec<String> {
        let mut v: Vec<String> = store.state().iter().map(|r| r.key()).collect();
        v.sort();
        v
    }

    #[test]
    fn two_namespaces_fill_one_store_only_when_both_listed() {
        let writer = Writer::<ApiRoute>::default();
        let store = writer.as_reader();
        let mut m = Merge::new(vec![Some("a".into()), Some("b".into())], writer);
        let a1 = route("r1", "/x").namespace("a");
        let a2 = route("r2", "/y").namespace("a");
        let b1 = route("r1", "/x").namespace("b");
        assert!(m.apply(0, Event::Init).is_empty());
        assert!(m.apply(0, Event::InitApply(a1.clone())).is_empty());
        assert!(m.apply(0, Event::InitApply(a2.clone())).is_empty());
        assert!(m.apply(0, Event::InitDone).is_empty());
        // a is watching while b still lists: a2 is deleted meanwhile.
        assert!(m.apply(0, Event::Delete(a2.clone())).is_empty());
        assert!(m.apply(1, Event::Init).is_empty());
        assert!(m.apply(1, Event::InitApply(b1.clone())).is_empty());
        assert!(keys(&store).is_empty());
        let mut out = names(&m.apply(1, Event::InitDone));
        out.sort();
        assert_eq!(
            out,
            vec![("a/r1".into(), true, false), ("b/r1".into(), true, false)]
        );
        assert_eq!(keys(&store), vec!["a/r1", "b/r1"]);

        // Live events pass through.
        assert_eq!(
            names(&m.apply(0, Event::Apply(a2.clone()))),
            vec![("a/r2".into(), false, false)]
        );
        assert_eq!(keys(&store), vec!["a/r1", "a/r2", "b/r1"]);
        // A re-list of `a` that lacks r1 deletes it, and leaves `b` alone.
        assert!(m.apply(0, Event::Init).is_empty());
        assert_eq!(
            names(&m.apply(0, Event::InitApply(a2))),
            vec![("a/r2".into(), true, false)]
        );
        assert_eq!(
            names(&m.apply(0, Event::InitDone)),
            vec![("a/r1".into(), false, true)]
        );
        assert_eq!(keys(&store), vec!["a/r2", "b/r1"]);
        assert_eq!(
            names(&m.apply(1, Event::Delete(b1))),
            vec![("b/r1".into(), false, true)]
        );
        assert_eq!(keys(&store), vec!["a/r2"]);
    }
}
