//! The reflector against a real API server (tests/cluster): run with `APIROUTES_KUBECONFIG`
//! set to an admin kubeconfig of a running local control plane; skipped otherwise, except
//! under `APIROUTES_REQUIRE_CLUSTER=1` (tests/run.sh), where a missing cluster fails.
//!
//! Two namespaces and all namespaces, each into one store, with live changes; the unit
//! tests (src/reflect.rs) cover the merge's re-list rules event by event.

#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use apiroutes_kit::reflect::{Touched, apis, drop_managed_fields, key_of, reflect};
use apiroutes_testkit::eventually;
use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, PostParams},
    runtime::{
        reflector::{Store, store::Writer},
        watcher,
    },
};
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(30);
const LABEL: &str = "apiroutes.dev/test";

fn meta(ns: Option<&str>, name: &str, label: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        labels: Some([(LABEL.to_owned(), label.to_owned())].into()),
        ..ObjectMeta::default()
    }
}

fn config_map(ns: &str, name: &str, label: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(Some(ns), name, label),
        data: Some([("v".to_owned(), value.to_owned())].into()),
        ..ConfigMap::default()
    }
}

fn value(c: &ConfigMap) -> Option<&str> {
    c.data.as_ref()?.get("v").map(String::as_str)
}

fn keys(store: &Store<ConfigMap>) -> Vec<String> {
    let mut v: Vec<String> = store
        .state()
        .iter()
        .map(|c| {
            let (ns, name) = key_of(&**c);
            format!("{ns}/{name}")
        })
        .collect();
    v.sort();
    v
}

/// One store over `namespaces` (empty: all) of the ConfigMaps labelled `label`, and the
/// objects it touches.
fn start(
    client: &Client,
    namespaces: &[String],
    label: &str,
) -> (
    apiroutes_kit::reflect::Ready,
    Store<ConfigMap>,
    mpsc::UnboundedReceiver<Touched<ConfigMap>>,
) {
    let writer = Writer::<ConfigMap>::default();
    let store = writer.as_reader();
    let config = watcher::Config::default().labels(&format!("{LABEL}={label}"));
    let (ready, touched) = reflect(
        apis::<ConfigMap>(client, namespaces),
        config,
        drop_managed_fields,
        writer,
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(touched.for_each(move |t| {
        if let Ok(t) = t {
            let _ = tx.send(t);
        }
        std::future::ready(())
    }));
    (ready, store, rx)
}

/// The next touched object named `name` that `want` accepts.
async fn touched(
    rx: &mut mpsc::UnboundedReceiver<Touched<ConfigMap>>,
    name: &str,
    want: impl Fn(&Touched<ConfigMap>) -> bool,
) -> Touched<ConfigMap> {
    let wait = async {
        loop {
            let t = rx.recv().await.unwrap();
            if t.obj.name_any() == name && want(&t) {
                return t;
            }
        }
    };
    tokio::time::timeout(TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("no event for {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_merge_into_one_store_against_an_api_server() {
    let Some(kubeconfig) = apiroutes_testkit::from_env("APIROUTES_KUBECONFIG", "kit reflect")
    else {
        return;
    };
    let client = apiroutes_kit::cluster::client(Some(Path::new(&kubeconfig)))
        .await
        .unwrap();
    let label = format!("reflect-{}", std::process::id());
    let (a, b) = (format!("{label}-a"), format!("{label}-b"));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [&a, &b] {
        let namespace = Namespace {
            metadata: meta(None, ns, &label),
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    let (in_a, in_b): (Api<ConfigMap>, Api<ConfigMap>) = (
        Api::namespaced(client.clone(), &a),
        Api::namespaced(client.clone(), &b),
    );
    let pp = PostParams::default();
    in_a.create(&pp, &config_map(&a, "one", &label, "1"))
        .await
        .unwrap();
    in_b.create(&pp, &config_map(&b, "two", &label, "1"))
        .await
        .unwrap();

    let (ready, two_ns, mut rx) = start(&client, &[a.clone(), b.clone()], &label);
    let (all_ready, all_ns, _all_rx) = start(&client, &[], &label);
    tokio::time::timeout(TIMEOUT, async {
        ready.wait().await;
        all_ready.wait().await;
    })
    .await
    .expect("both stores listed");
    let both = vec![format!("{a}/one"), format!("{b}/two")];
    assert_eq!(keys(&two_ns), both);
    assert_eq!(keys(&all_ns), both);
    assert!(
        touched(&mut rx, "one", |t| t.initial)
            .await
            .previous
            .is_none()
    );

    // Live: a new object in b, a change in b (with the value it replaces), a deletion in a.
    in_b.create(&pp, &config_map(&b, "three", &label, "1"))
        .await
        .unwrap();
    let t = touched(&mut rx, "three", |t| !t.initial).await;
    assert!(!t.deleted && t.previous.is_none());
    let mut two = in_b.get("two").await.unwrap();
    two.data = Some([("v".to_owned(), "2".to_owned())].into());
    in_b.replace("two", &pp, &two).await.unwrap();
    let t = touched(&mut rx, "two", |t| !t.initial).await;
    assert_eq!(value(&t.obj), Some("2"));
    assert_eq!(t.previous.as_deref().and_then(value), Some("1"));
    in_a.delete("one", &DeleteParams::default()).await.unwrap();
    let t = touched(&mut rx, "one", |t| t.deleted).await;
    assert_eq!(t.obj.namespace().as_deref(), Some(a.as_str()));
    let now = vec![format!("{b}/three"), format!("{b}/two")];
    assert_eq!(keys(&two_ns), now, "the store has it before the event");
    eventually("the all-namespaces store follows", TIMEOUT, || {
        let got = keys(&all_ns);
        let now = now.clone();
        async move { (got == now).then_some(()) }
    })
    .await;

    for ns in [&a, &b] {
        let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    }
}
