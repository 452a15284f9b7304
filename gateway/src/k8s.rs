//! The Kubernetes route source: reflectors over ApiRoutes (all namespaces or the
//! `--namespace` list) and over the EndpointSlices of operator-owned Services (label
//! `app.kubernetes.io/managed-by=apiroutes-operator`, never all slices). Every event marks
//! the table dirty; a debounced task rebuilds it from the stores and swaps it in. `/readyz`
//! turns ready once every watch had its initial sync and the first table is installed.
//!
//! The mapping from slices to endpoints is a pure function ([`endpoints_from_slices`]).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::*},
    },
    time::Duration,
};

use apiroutes_crds::{
    ApiRoute,
    autoscale::RouteRef,
    labels::{self, Variant},
};
use futures::{StreamExt, stream::BoxStream};
use http::uri::Authority;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::{sync::Notify, task::JoinHandle};

use crate::{proxy::Gateway, server::Readiness};

/// Label the EndpointSlice controller puts on a Service's slices.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Port name of the autoscaler on its Service.
const AUTOSCALER_PORT: &str = "autoscaler";
/// How long events are gathered before a rebuild.
const DEBOUNCE: Duration = Duration::from_millis(5);

fn endpoint_ready(e: &k8s_openapi::api::discovery::v1::Endpoint) -> bool {
    e.conditions
        .as_ref()
        .is_none_or(|c| c.ready != Some(false) && c.terminating != Some(true))
}

/// The `ip:port` authorities of a slice's ready endpoints on its port named `port_name`
/// (none when the slice has no such port).
fn ready_authorities<'s>(
    slice: &'s EndpointSlice,
    port_name: &str,
) -> impl Iterator<Item = Authority> + 's {
    let port = slice_port(slice, port_name);
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(move |e| port.is_some() && endpoint_ready(e))
        .flat_map(|e| e.addresses.iter())
        .filter_map(move |ip| authority(ip, port?))
}

fn authority(ip: &str, port: i32) -> Option<Authority> {
    let port = u16::try_from(port).ok()?;
    let text = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    text.parse().ok()
}

/// The slice's port: the one named `name`, else (when `name` is `http`) the only/first one.
fn slice_port(slice: &EndpointSlice, name: &str) -> Option<i32> {
    let ports = slice.ports.as_deref().unwrap_or_default();
    ports
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .or_else(|| (name == "http").then(|| ports.first()).flatten())
        .and_then(|p| p.port)
}

/// Ready endpoints per route variant, from the operator-owned EndpointSlices: a slice
/// belongs to (its namespace, label `apiroutes.dev/route`, label `apiroutes.dev/variant`);
/// an endpoint counts when `conditions.ready` is not false and it is not terminating; its
/// port is the slice's port named `http` (or its first port).
pub fn endpoints_from_slices<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> HashMap<RouteRef, Vec<Authority>> {
    let mut sets: HashMap<RouteRef, Vec<Authority>> = HashMap::new();
    for slice in slices {
        let meta = &slice.metadata;
        let Some(labels) = meta.labels.as_ref() else {
            continue;
        };
        if labels.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::MANAGED_BY_VALUE) {
            continue;
        }
        let (Some(ns), Some(route)) = (meta.namespace.as_ref(), labels.get(labels::ROUTE)) else {
            continue;
        };
        let variant = match labels.get(labels::VARIANT) {
            Some(v) => match Variant::parse(v) {
                Some(v) => v,
                None => continue,
            },
            None => Variant::Main,
        };
        let key = RouteRef {
            namespace: ns.clone(),
            name: route.clone(),
            variant,
        };
        let entry = sets.entry(key).or_default();
        entry.extend(ready_authorities(slice, "http"));
    }
    // Sorted and unique, so a table rebuilt from the same slices is the same.
    for list in sets.values_mut() {
        list.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        list.dedup_by(|a, b| a.as_str() == b.as_str());
    }
    sets
}

/// The autoscaler's base URL from its Service's slices: the first ready endpoint on the
/// port named `autoscaler`.
pub fn autoscaler_url_from_slices<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Option<String> {
    let mut found: Vec<String> = slices
        .into_iter()
        .flat_map(|slice| ready_authorities(slice, AUTOSCALER_PORT))
        .map(|a| format!("http://{a}"))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Running reflectors feeding the gateway.
pub struct Source;

type Events = BoxStream<'static, Result<(), watcher::Error>>;

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    dirty: Arc<Notify>,
    synced: Arc<AtomicUsize>,
) -> (Store<K>, Events)
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (reader, writer) = reflector::store::<K>();
    let mut seen_init = false;
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .map(move |ev| {
            let ev = ev?;
            if matches!(ev, watcher::Event::InitDone) && !seen_init {
                seen_init = true;
                synced.fetch_add(1, AcqRel);
            }
            dirty.notify_one();
            Ok(())
        })
        .boxed();
    (reader, stream)
}

impl Source {
    /// Starts the watches and the rebuild loop; returns the task running them.
    pub async fn start(
        gateway: Arc<Gateway>,
        ready: Arc<Readiness>,
        namespaces: Vec<String>,
        autoscaler_service: Option<String>,
    ) -> Result<JoinHandle<()>, kube::Error> {
        let client = Client::try_default().await?;
        let dirty = Arc::new(Notify::new());
        let synced = Arc::new(AtomicUsize::new(0));
        let mut streams: Vec<Events> = Vec::new();
        let mut route_stores: Vec<Store<ApiRoute>> = Vec::new();
        let mut slice_stores: Vec<Store<EndpointSlice>> = Vec::new();
        let slice_config = watcher::Config::default().labels(&labels::owned_selector());
        let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().map(|n| Some(n.as_str())).collect()
        };
        for ns in &scopes {
            let routes: Api<ApiRoute> = match ns {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let slices: Api<EndpointSlice> = match ns {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let (store, s) = watch(
                routes,
                watcher::Config::default(),
                Arc::clone(&dirty),
                Arc::clone(&synced),
            );
            route_stores.push(store);
            streams.push(s);
            let (store, s) = watch(
                slices,
                slice_config.clone(),
                Arc::clone(&dirty),
                Arc::clone(&synced),
            );
            slice_stores.push(store);
            streams.push(s);
        }
        let needed = streams.len();

        // The autoscaler's address, when discovered from a Service.
        let autoscaler_store = match autoscaler_service
            .as_deref()
            .and_then(|s| s.split_once('/'))
        {
            Some((ns, name)) => {
                let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
                let config =
                    watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={name}"));
                let (store, s) = watch(
                    api,
                    config,
                    Arc::clone(&dirty),
                    Arc::new(AtomicUsize::new(0)),
                );
                streams.push(s);
                Some(store)
            }
            None => {
                if autoscaler_service.is_some() {
                    tracing::warn!("--autoscaler-service must be NS/NAME; ignoring it");
                }
                None
            }
        };

        let mut events = futures::stream::select_all(streams);
        let pump = tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                if let Err(e) = ev {
                    tracing::warn!(error = %e, "watch error (retrying with backoff)");
                }
            }
        });
        let task = tokio::spawn(async move {
            let _pump = AbortOnDrop(pump);
            loop {
                dirty.notified().await;
                tokio::time::sleep(DEBOUNCE).await;
                let routes: Vec<ApiRoute> = route_stores
                    .iter()
                    .flat_map(|s| s.state())
                    .map(|r| (*r).clone())
                    .collect();
                let slices: Vec<Arc<EndpointSlice>> =
                    slice_stores.iter().flat_map(|s| s.state()).collect();
                let endpoints = endpoints_from_slices(slices.iter().map(|s| &**s));
                let table = gateway
                    .registry
                    .build(&routes, |k| endpoints.get(k).cloned().unwrap_or_default());
                gateway.install(table);
                if let Some(store) = &autoscaler_store {
                    let url = autoscaler_url_from_slices(store.state().iter().map(|s| &**s));
                    let current = gateway.autoscaler.url.load_full();
                    if current.as_deref() != url.as_ref() {
                        tracing::info!(url = ?url, "autoscaler endpoint");
                        gateway.autoscaler.url.store(url.map(Arc::new));
                    }
                }
                if !ready.is_ready() && synced.load(Acquire) >= needed {
                    tracing::info!(routes = routes.len(), "initial sync done; ready");
                    ready.set_ready();
                }
            }
        });
        Ok(task)
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(
        ns: &str,
        route: &str,
        variant: &str,
        port: (&str, i32),
        eps: &[(&str, Option<bool>, Option<bool>)],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                labels: Some(
                    [
                        (
                            labels::MANAGED_BY.to_owned(),
                            labels::MANAGED_BY_VALUE.to_owned(),
                        ),
                        (labels::ROUTE.to_owned(), route.to_owned()),
                        (labels::VARIANT.to_owned(), variant.to_owned()),
                        (SERVICE_NAME_LABEL.to_owned(), route.to_owned()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(
                eps.iter()
                    .map(|(ip, ready, terminating)| Endpoint {
                        addresses: vec![(*ip).into()],
                        conditions: Some(EndpointConditions {
                            ready: *ready,
                            serving: None,
                            terminating: *terminating,
                        }),
                        ..Endpoint::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![EndpointPort {
                name: Some(port.0.into()),
                port: Some(port.1),
                ..EndpointPort::default()
            }]),
        }
    }

    fn key(ns: &str, name: &str, variant: Variant) -> RouteRef {
        RouteRef {
            namespace: ns.into(),
            name: name.into(),
            variant,
        }
    }

    #[test]
    fn ready_endpoints_are_mapped_to_route_variants() {
        let slices = [
            slice(
                "shop",
                "user",
                "main",
                ("http", 8080),
                &[
                    ("10.0.0.1", Some(true), None),
                    ("10.0.0.2", None, None),
                    ("10.0.0.3", Some(false), None),
                    ("10.0.0.4", Some(true), Some(true)),
                ],
            ),
            slice(
                "shop",
                "user",
                "main",
                ("http", 8080),
                &[("10.0.0.5", Some(true), Some(false))],
            ),
            slice(
                "shop",
                "user",
                "preview",
                ("http", 9000),
                &[("fd00::1", Some(true), None)],
            ),
            slice("shop", "idle", "main", ("http", 8080), &[]),
        ];
        let got = endpoints_from_slices(&slices);
        let main: Vec<String> = got[&key("shop", "user", Variant::Main)]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(main, ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.5:8080"]);
        assert_eq!(
            got[&key("shop", "user", Variant::Preview)][0].as_str(),
            "[fd00::1]:9000"
        );
        assert!(got[&key("shop", "idle", Variant::Main)].is_empty());
    }

    #[test]
    fn slices_not_owned_by_the_operator_are_ignored() {
        let mut s = slice("a", "r", "main", ("http", 80), &[("10.0.0.1", None, None)]);
        s.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(labels::MANAGED_BY.into(), "someone-else".into());
        let mut bad_variant = slice(
            "a",
            "q",
            "canary",
            ("http", 80),
            &[("10.0.0.1", None, None)],
        );
        bad_variant.metadata.namespace = Some("a".into());
        assert!(endpoints_from_slices([&s, &bad_variant]).is_empty());
    }

    #[test]
    fn autoscaler_url_uses_the_named_port() {
        let s = slice(
            "apiroutes",
            "op",
            "main",
            ("autoscaler", 8081),
            &[
                ("10.1.0.9", Some(true), None),
                ("10.1.0.8", Some(false), None),
            ],
        );
        assert_eq!(
            autoscaler_url_from_slices([&s]).as_deref(),
            Some("http://10.1.0.9:8081")
        );
        let wrong = slice(
            "apiroutes",
            "op",
            "main",
            ("http", 8080),
            &[("10.1.0.9", None, None)],
        );
        assert_eq!(autoscaler_url_from_slices([&wrong]), None);
    }
}
