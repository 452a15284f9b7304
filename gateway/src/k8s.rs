//! The Kubernetes route source: reflectors over ApiRoutes (all namespaces or the
//! `--namespace` list), over operator-owned Services and over their EndpointSlices (label
//! `app.kubernetes.io/managed-by=apiroutes-operator`, never all Services or slices), one
//! per kind over every watched namespace (`apiroutes_kit::reflect`), each into one store.
//! The stores keep only what routing reads: ApiRoutes as [`RouteRecord`]s, Services and
//! slices as small records ([`OwnedMeta`], [`SliceRecord`] in [`Records`]).
//! Every event notes the object it touched; a debounced task applies those to the route
//! index (an ApiRoute, and the endpoints of the route variants the touched objects claim:
//! see [`Claims`]) and swaps the new snapshot in. A (re)list rebuilds everything from the
//! stores. `/readyz` turns ready once every store had its first complete list and the
//! first table is installed.
//!
//! Labels alone are not trusted: anyone who may create an EndpointSlice can copy them and
//! point a route at any `ip:port`. A slice is used only when its owner chain is the
//! operator's ([`trusted_slices`]): its controller is the Service named after the route
//! variant (by uid, from the Service watch), and that Service is labelled as the
//! operator's and controlled by the ApiRoute of the same name (by uid, from the ApiRoute
//! watch). Other slices are counted (`apiroutes_gateway_untrusted_endpointslices`) and
//! logged once each.
//!
//! The mappings from slices to endpoints are pure functions ([`trusted_slices`],
//! [`endpoints_from_slices`]).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, atomic::Ordering::*},
    time::Duration,
};

use apiroutes_crds::{
    ApiRoute, RouteGrant,
    autoscale::RouteRef,
    conflict::Claimant,
    labels::{self, Variant},
};
use apiroutes_kit::reflect::{
    self, Key, Ready, Sink, Touched, drop_managed_fields, key_of, reflect,
};
use futures::{Stream, StreamExt, stream::BoxStream};
use http::uri::Authority;
use k8s_openapi::{
    api::{
        coordination::v1::Lease,
        core::v1::Service,
        discovery::v1::{EndpointConditions, EndpointSlice},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, Resource,
    runtime::{
        reflector::{Store, store::Writer},
        watcher,
    },
};
use smallvec::SmallVec;
use tokio::{sync::Notify, task::JoinHandle};

use crate::{
    probe::Starting,
    proxy::Gateway,
    route::RouteRecord,
    server::Readiness,
    table::{Registry, Target, Update},
};

/// Label the EndpointSlice controller puts on a Service's slices.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Port name of the autoscaler on its Service.
const AUTOSCALER_PORT: &str = "autoscaler";
/// How long events are gathered before a rebuild.
const DEBOUNCE: Duration = Duration::from_millis(5);

fn endpoint_ready(c: Option<&EndpointConditions>) -> bool {
    c.is_none_or(|c| c.ready != Some(false) && c.terminating != Some(true))
}

/// A pod that runs but is not Ready yet (nor being stopped): the gateway may check it
/// itself while requests wait (crate::probe).
fn endpoint_starting(c: Option<&EndpointConditions>) -> bool {
    c.is_some_and(|c| c.ready == Some(false) && c.terminating != Some(true))
}

type EndpointRule = fn(Option<&EndpointConditions>) -> bool;

/// The `ip:port` authorities of a slice's ready endpoints on its port named `port_name`
/// (none when the slice has no such port).
fn ready_authorities<'s>(
    slice: &'s EndpointSlice,
    port_name: &str,
) -> impl Iterator<Item = Authority> + 's {
    authorities(slice, port_name, endpoint_ready)
}

/// The same for the endpoints `rule` keeps.
fn authorities<'s>(
    slice: &'s EndpointSlice,
    port_name: &str,
    rule: EndpointRule,
) -> impl Iterator<Item = Authority> + 's {
    let port = slice_port(slice, port_name);
    slice
        .endpoints
        .iter()
        .flatten()
        .filter(move |e| port.is_some() && rule(e.conditions.as_ref()))
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

/// The route variant an operator-labelled slice (or Service) claims to belong to: its
/// namespace, label `apiroutes.dev/route`, label `apiroutes.dev/variant` (default `main`).
/// `None` without the managed-by label, a route label or a namespace, or with an unknown
/// variant.
fn claimed_route(meta: &ObjectMeta) -> Option<RouteRef> {
    let labels = meta.labels.as_ref()?;
    if labels.get(labels::MANAGED_BY).map(String::as_str) != Some(labels::MANAGED_BY_VALUE) {
        return None;
    }
    let variant = match labels.get(labels::VARIANT) {
        Some(v) => Variant::parse(v)?,
        None => Variant::Main,
    };
    Some(RouteRef {
        namespace: meta.namespace.clone()?,
        name: labels.get(labels::ROUTE)?.clone(),
        variant,
    })
}

/// Ready endpoints per route variant, from operator-labelled EndpointSlices (pass only
/// [`trusted_slices`]): a slice belongs to (its namespace, label `apiroutes.dev/route`,
/// label `apiroutes.dev/variant`); an endpoint counts when `conditions.ready` is not false
/// and it is not terminating; its port is the slice's port named `http` (or its first
/// port).
pub fn endpoints_from_slices<'a>(
    slices: impl IntoIterator<Item = &'a SliceRecord>,
) -> HashMap<RouteRef, Vec<Authority>> {
    endpoints_by_rule(slices, endpoint_ready)
}

/// Starting endpoints (running, not ready, not terminating) per route variant, by the
/// same rules as [`endpoints_from_slices`].
pub fn starting_from_slices<'a>(
    slices: impl IntoIterator<Item = &'a SliceRecord>,
) -> HashMap<RouteRef, Vec<Authority>> {
    endpoints_by_rule(slices, endpoint_starting)
}

fn endpoints_by_rule<'a>(
    slices: impl IntoIterator<Item = &'a SliceRecord>,
    rule: EndpointRule,
) -> HashMap<RouteRef, Vec<Authority>> {
    let mut sets: HashMap<RouteRef, Vec<Authority>> = HashMap::new();
    for slice in slices {
        let Some(key) = &slice.meta.claim else {
            continue;
        };
        let entry = sets.entry(key.clone()).or_default();
        entry.extend(
            slice
                .endpoints
                .iter()
                .filter(|(_, c)| rule(c.as_ref()))
                .map(|(a, _)| a.clone()),
        );
    }
    // Sorted and unique, so a table rebuilt from the same slices is the same.
    for list in sets.values_mut() {
        list.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        list.dedup_by(|a, b| a.as_str() == b.as_str());
    }
    sets
}

/// Why an operator-labelled EndpointSlice is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Untrusted {
    /// Its route/variant labels or namespace are missing or invalid.
    BadLabels,
    /// It has no controller ownerReference to a v1 Service named after the route variant.
    NotOwnedByVariantService,
    /// Its owner's uid is no operator-labelled Service the gateway knows in its namespace.
    UnknownService,
    /// The Service's controller is not the ApiRoute of that name.
    ServiceNotOwnedByRoute,
    /// The Service's owner's uid is not the ApiRoute the gateway knows by that name.
    UnknownRoute,
}

impl Untrusted {
    pub fn as_str(self) -> &'static str {
        match self {
            Untrusted::BadLabels => "missing or invalid route labels",
            Untrusted::NotOwnedByVariantService => {
                "not controlled by the route variant's Service (kind Service, apiVersion v1)"
            }
            Untrusted::UnknownService => {
                "owner Service uid is not an operator-managed Service in the namespace"
            }
            Untrusted::ServiceNotOwnedByRoute => {
                "owner Service is not controlled by the ApiRoute of that name"
            }
            Untrusted::UnknownRoute => "owner Service's ApiRoute uid is not the known ApiRoute",
        }
    }
}

/// The controller reference of `meta` when it is of `kind` (a known one) and `name`.
fn controller_is<'m>(meta: &'m OwnedMeta, kind: OwnerKind, name: &str) -> Option<&'m Controller> {
    meta.controller
        .as_ref()
        .filter(|o| o.kind == kind && kind != OwnerKind::Other && &*o.name == name)
}

/// Whether `slice` has the operator's owner chain: slice -(controller)-> the variant's
/// Service (matched by uid among `services`, operator-labelled) -(controller)-> the
/// ApiRoute of the slice's route label (matched by uid among `routes`). On success, the
/// route variant the slice serves.
fn check_chain(
    slice: &SliceRecord,
    services: &HashMap<&str, &OwnedMeta>,
    routes: &HashMap<(&str, &str), &str>,
) -> Result<RouteRef, Untrusted> {
    let key = slice.meta.claim.clone().ok_or(Untrusted::BadLabels)?;
    let service_name = key.variant.object_name(&key.name);
    let owner = controller_is(&slice.meta, OwnerKind::Service, &service_name)
        .ok_or(Untrusted::NotOwnedByVariantService)?;
    // The Service must be one the gateway watches (operator-labelled) with the same
    // namespace, name and uid: a uid alone could name another namespace's object.
    let service = services
        .get(&*owner.uid)
        .filter(|s| {
            *s.namespace == *key.namespace.as_str()
                && *s.name == *service_name.as_str()
                && s.claim.as_ref() == Some(&key)
        })
        .ok_or(Untrusted::UnknownService)?;
    let route_owner = controller_is(service, OwnerKind::ApiRoute, &key.name)
        .ok_or(Untrusted::ServiceNotOwnedByRoute)?;
    match routes.get(&(key.namespace.as_str(), key.name.as_str())) {
        Some(uid) if **uid == *route_owner.uid => Ok(key),
        _ => Err(Untrusted::UnknownRoute),
    }
}

/// Operator-labelled slices split by trust.
#[derive(Debug, Default)]
pub struct Trusted<'a> {
    /// Slices whose owner chain is the operator's.
    pub trusted: Vec<&'a SliceRecord>,
    /// The others, each with the first link of the chain that failed.
    pub untrusted: Vec<(&'a SliceRecord, Untrusted)>,
}

/// Splits `slices` into those whose owner chain leads through an operator-labelled Service
/// in `services` to an ApiRoute in `routes` (see [`check_chain`]) and the rest.
pub fn trusted_slices<'a, 'r>(
    slices: impl IntoIterator<Item = &'a SliceRecord>,
    services: impl IntoIterator<Item = &'a OwnedMeta>,
    routes: impl IntoIterator<Item = &'r RouteRecord>,
) -> Trusted<'a> {
    let services: HashMap<&str, &OwnedMeta> = services
        .into_iter()
        .filter_map(|s| Some((s.uid.as_deref()?, s)))
        .collect();
    let routes: HashMap<(&str, &str), &str> = routes
        .into_iter()
        .filter_map(|r| Some(((r.namespace(), r.name()), r.uid.as_deref()?)))
        .collect();
    let mut out = Trusted::default();
    for slice in slices {
        match check_chain(slice, &services, &routes) {
            Ok(_) => out.trusted.push(slice),
            Err(why) => out.untrusted.push((slice, why)),
        }
    }
    out
}

/// Identity of one untrusted slice for logging: namespace, name, reason.
pub type UntrustedKey = (String, String, Untrusted);

/// The identities of `untrusted` slices.
pub fn untrusted_keys(untrusted: &[(&SliceRecord, Untrusted)]) -> HashSet<UntrustedKey> {
    untrusted
        .iter()
        .map(|(s, why)| {
            let (ns, name) = s.meta.key();
            (ns, name, *why)
        })
        .collect()
}

/// The untrusted slices not yet in `logged` (to warn about now), and the new `logged`
/// set: those currently untrusted, so a slice that is fixed and forged again is logged
/// again, while one that stays untrusted is logged once rather than on every rebuild.
pub fn newly_untrusted(
    logged: &HashSet<UntrustedKey>,
    current: HashSet<UntrustedKey>,
) -> (Vec<UntrustedKey>, HashSet<UntrustedKey>) {
    let mut new: Vec<UntrustedKey> = current.difference(logged).cloned().collect();
    new.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    (new, current)
}

/// Untrusted slices per namespace (the metric's values).
pub fn untrusted_per_namespace(current: &HashSet<UntrustedKey>) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for (ns, _, _) in current {
        *counts.entry(ns.clone()).or_insert(0) += 1;
    }
    counts
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

/// The autoscaler's base URL when the leader Lease is followed: the endpoint (port
/// `autoscaler`) of the pod named by the Lease's holderIdentity (the operator's identity is
/// its pod name), whatever its labels or readiness — the Lease, not a label, says who
/// leads. `None` when nobody holds the Lease or its pod has no endpoint yet.
pub fn autoscaler_url_for_holder<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    holder: Option<&str>,
) -> Option<String> {
    let holder = holder.filter(|h| !h.is_empty())?;
    slices.into_iter().find_map(|slice| {
        let port = slice_port(slice, AUTOSCALER_PORT)?;
        slice
            .endpoints
            .iter()
            .flatten()
            .find(|e| e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(holder))
            .and_then(|e| e.addresses.first())
            .and_then(|ip| authority(ip, port))
            .map(|a| format!("http://{a}"))
    })
}

/// The leader Lease's holderIdentity.
pub fn lease_holder<'a>(leases: impl IntoIterator<Item = &'a Lease>) -> Option<&'a str> {
    leases
        .into_iter()
        .find_map(|l| l.spec.as_ref()?.holder_identity.as_deref())
}

/// Where the autoscaler is found: its Service's slices, and the leader Lease if followed.
#[derive(Clone)]
struct AutoscalerStores {
    slices: Store<EndpointSlice>,
    lease: Option<Store<Lease>>,
}

impl AutoscalerStores {
    fn resolve(&self) -> Option<String> {
        let slices = self.slices.state();
        let slices = slices.iter().map(|s| &**s);
        match &self.lease {
            Some(lease) => {
                let leases = lease.state();
                autoscaler_url_for_holder(slices, lease_holder(leases.iter().map(|l| &**l)))
            }
            None => autoscaler_url_from_slices(slices),
        }
    }
}

/// The kinds an owner chain may name (kind and apiVersion together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    /// `v1` `Service`.
    Service,
    /// The ApiRoute kind of this version of the CRD.
    ApiRoute,
    Other,
}

impl OwnerKind {
    fn of(kind: &str, api_version: &str) -> Self {
        if kind == "Service" && api_version == "v1" {
            OwnerKind::Service
        } else if kind == ApiRoute::kind(&()) && api_version == ApiRoute::api_version(&()) {
            OwnerKind::ApiRoute
        } else {
            OwnerKind::Other
        }
    }
}

/// The controller reference of an object: what the owner-chain check compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controller {
    pub kind: OwnerKind,
    pub name: Box<str>,
    pub uid: Box<str>,
}

/// What the gateway keeps of an operator-labelled Service (and of a slice's metadata):
/// identity, the route variant its labels claim, its controller. 10,000 routes keep
/// 20,000 Services and slices; as stripped k8s-openapi objects in reflector stores they
/// were 60 MiB, most of the gateway's memory (`benches/memory.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMeta {
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub uid: Option<Box<str>>,
    /// See [`claimed_route`].
    pub claim: Option<RouteRef>,
    pub controller: Option<Controller>,
}

impl OwnedMeta {
    pub fn of(meta: &ObjectMeta) -> Self {
        OwnedMeta {
            namespace: meta.namespace.as_deref().unwrap_or_default().into(),
            name: meta.name.as_deref().unwrap_or_default().into(),
            uid: meta.uid.as_deref().map(Into::into),
            claim: claimed_route(meta),
            controller: meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o: &OwnerReference| Controller {
                    kind: OwnerKind::of(&o.kind, &o.api_version),
                    name: o.name.as_str().into(),
                    uid: o.uid.as_str().into(),
                }),
        }
    }

    pub fn key(&self) -> ObjKey {
        (self.namespace.to_string(), self.name.to_string())
    }
}

impl From<&Service> for OwnedMeta {
    fn from(service: &Service) -> Self {
        OwnedMeta::of(&service.metadata)
    }
}

/// What the gateway keeps of an operator-labelled EndpointSlice: its metadata and the
/// `ip:port` of each endpoint on its `http` port (none without such a port) with the
/// endpoint's conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceRecord {
    pub meta: OwnedMeta,
    pub endpoints: Box<[(Authority, Option<EndpointConditions>)]>,
}

impl From<&EndpointSlice> for SliceRecord {
    fn from(slice: &EndpointSlice) -> Self {
        let port = slice_port(slice, "http");
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .filter(|_| port.is_some())
            .flat_map(|e| {
                e.addresses
                    .iter()
                    .filter_map(move |ip| Some((authority(ip, port?)?, e.conditions.clone())))
            })
            .collect();
        SliceRecord {
            meta: OwnedMeta::of(&slice.metadata),
            endpoints,
        }
    }
}

/// `namespace`, `name` of an object.
pub type ObjKey = Key;

/// Compact records of one kind's objects (all watched namespaces) by namespace and name:
/// the reflector's store, for [`SliceRecord`]s and [`OwnedMeta`]s instead of whole
/// objects.
pub struct Records<C> {
    map: Arc<std::sync::RwLock<HashMap<ObjKey, Arc<C>>>>,
}

impl<C> Clone for Records<C> {
    fn clone(&self) -> Self {
        Records {
            map: Arc::clone(&self.map),
        }
    }
}

impl<C> Default for Records<C> {
    fn default() -> Self {
        Records {
            map: Arc::default(),
        }
    }
}

impl<C> Records<C> {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<C>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn all(&self) -> Vec<Arc<C>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ObjKey, Arc<C>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reflector's writer into [`Records`]: `record` makes each object's record.
struct RecordSink<K, C> {
    store: Records<C>,
    record: fn(&K) -> C,
}

impl<K: 'static, C: Send + Sync + 'static> Sink<K> for RecordSink<K, C> {
    type Value = C;

    fn value(&self, obj: K) -> C {
        (self.record)(&obj)
    }

    fn fill(&mut self, values: impl Iterator<Item = (Key, C)>) -> Vec<Arc<C>> {
        let map: HashMap<ObjKey, Arc<C>> = values.map(|(k, v)| (k, Arc::new(v))).collect();
        let all = map.values().cloned().collect();
        *self.store.write() = map;
        all
    }

    fn apply(&mut self, key: &Key, value: C) -> (Arc<C>, Option<Arc<C>>) {
        let value = Arc::new(value);
        let previous = self.store.write().insert(key.clone(), Arc::clone(&value));
        (value, previous)
    }

    fn delete(&mut self, key: &Key) -> Option<Arc<C>> {
        self.store.write().remove(key)
    }

    fn keys(&self) -> Vec<Key> {
        let map = self.store.map.read().unwrap_or_else(|p| p.into_inner());
        map.keys().cloned().collect()
    }
}

/// Which operator-labelled Services and EndpointSlices claim each route variant by their
/// labels, so that a change to one object re-checks only the variants it claimed before
/// and claims now. Only this direction is kept: the claim an object had before a change
/// comes with the change (the reflector's previous value), which halves what 10,000
/// routes cost here. A name whose object no longer claims the variant (a change the
/// update loop saw out of order around a resync) is dropped when the variant is checked.
#[derive(Debug, Default)]
pub struct Claims {
    of: HashMap<RouteRef, Claimers>,
}

/// The names claiming one variant (in its namespace): nearly always one of each.
#[derive(Debug, Default)]
struct Claimers {
    slices: SmallVec<[Box<str>; 1]>,
    services: SmallVec<[Box<str>; 1]>,
}

/// An object kind that claims variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimer {
    Slice,
    Service,
}

impl Claimers {
    fn names(&mut self, kind: Claimer) -> &mut SmallVec<[Box<str>; 1]> {
        match kind {
            Claimer::Slice => &mut self.slices,
            Claimer::Service => &mut self.services,
        }
    }

    fn is_empty(&self) -> bool {
        self.slices.is_empty() && self.services.is_empty()
    }
}

impl Claims {
    /// The claims of every object in the stores.
    pub fn from_objects<'a>(
        slices: impl IntoIterator<Item = &'a SliceRecord>,
        services: impl IntoIterator<Item = &'a OwnedMeta>,
    ) -> Self {
        let mut out = Claims::default();
        for s in slices {
            out.claim(Claimer::Slice, &s.meta.name, None, s.meta.claim.as_ref());
        }
        for s in services {
            out.claim(Claimer::Service, &s.name, None, s.claim.as_ref());
        }
        out
    }

    /// The object `name` of `kind` claimed `before` and claims `now` (`None`: nothing, or
    /// deleted); returns the variants to check again.
    pub fn claim(
        &mut self,
        kind: Claimer,
        name: &str,
        before: Option<&RouteRef>,
        now: Option<&RouteRef>,
    ) -> Vec<RouteRef> {
        let mut touched = Vec::new();
        if let Some(old) = before {
            self.remove(kind, old, name);
            touched.push(old.clone());
        }
        if let Some(new) = now {
            let names = self.of.entry(new.clone()).or_default().names(kind);
            if !names.iter().any(|n| **n == *name) {
                names.push(name.into());
            }
            if !touched.contains(new) {
                touched.push(new.clone());
            }
        }
        touched
    }

    fn remove(&mut self, kind: Claimer, variant: &RouteRef, name: &str) {
        if let Some(c) = self.of.get_mut(variant) {
            c.names(kind).retain(|n| **n != *name);
            if c.is_empty() {
                self.of.remove(variant);
            }
        }
    }

    /// Names of the slices claiming `variant` (in its namespace).
    pub fn slices_of(&self, variant: &RouteRef) -> impl Iterator<Item = &str> {
        self.of
            .get(variant)
            .into_iter()
            .flat_map(|c| c.slices.iter().map(|n| &**n))
    }

    /// Names of the Services claiming `variant` (in its namespace).
    pub fn services_of(&self, variant: &RouteRef) -> impl Iterator<Item = &str> {
        self.of
            .get(variant)
            .into_iter()
            .flat_map(|c| c.services.iter().map(|n| &**n))
    }
}

/// Running reflectors feeding the gateway.
pub struct Source;

type Events = BoxStream<'static, Result<(), watcher::Error>>;

/// The kind of a watch, for [`Pending::note`].
#[derive(Clone, Copy)]
enum Kind {
    Route,
    Slice,
    Service,
    Grant,
    /// The autoscaler's slices: read whole at every update (a handful of objects).
    Autoscaler,
}

/// What the watches saw since the last update.
#[derive(Default)]
struct Pending {
    /// A watch listed (again): rebuild everything from the stores.
    resync: bool,
    routes: HashSet<ObjKey>,
    /// Slices and Services with the variant each claimed before its first change here
    /// (what [`Claims`] holds for it).
    slices: HashMap<ObjKey, Option<RouteRef>>,
    services: HashMap<ObjKey, Option<RouteRef>>,
    grants: bool,
}

impl Pending {
    fn note(&mut self, kind: Kind, key: ObjKey, before: Option<RouteRef>) {
        match kind {
            Kind::Route => {
                self.routes.insert(key);
            }
            Kind::Slice => {
                self.slices.entry(key).or_insert(before);
            }
            Kind::Service => {
                self.services.entry(key).or_insert(before);
            }
            Kind::Grant => self.grants = true,
            Kind::Autoscaler => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Where one reflector's events go.
#[derive(Clone)]
struct Note {
    kind: Kind,
    dirty: Arc<Notify>,
    pending: Arc<Mutex<Pending>>,
}

impl Note {
    /// Notes what the reflector touched (its store has it already) and wakes the update
    /// task. A (re-)list rebuilds everything from the stores, so its objects are not
    /// noted one by one. `claim` gives the variant a value claims (Slices and Services).
    fn events<V: Send + Sync + 'static>(
        self,
        touched: impl Stream<Item = Result<Touched<V>, watcher::Error>> + Send + 'static,
        key: fn(&V) -> ObjKey,
        claim: fn(&V) -> Option<&RouteRef>,
    ) -> Events {
        touched
            .map(move |t| {
                let t = t?;
                if !matches!(self.kind, Kind::Autoscaler) {
                    let mut pending = lock(&self.pending);
                    if t.initial {
                        pending.resync = true;
                    } else {
                        // What the object claimed before this change: a deleted one's
                        // value is the stored one.
                        let before = if t.deleted {
                            claim(&t.obj)
                        } else {
                            t.previous.as_deref().and_then(claim)
                        };
                        pending.note(self.kind, key(&t.obj), before.cloned());
                    }
                }
                self.dirty.notify_one();
                Ok(())
            })
            .boxed()
    }
}

/// The records `get` finds for `names`, and the names it finds none for.
fn claimed<'n, C>(
    names: impl Iterator<Item = &'n str>,
    get: impl Fn(&str) -> Option<Arc<C>>,
) -> (Vec<Arc<C>>, Vec<String>) {
    let (mut found, mut gone) = (Vec::new(), Vec::new());
    for name in names {
        match get(name) {
            Some(c) => found.push(c),
            None => gone.push(name.to_owned()),
        }
    }
    (found, gone)
}

/// The stores and what is derived from them between updates.
struct Sources {
    routes: Records<RouteRecord>,
    slices: Records<SliceRecord>,
    services: Records<OwnedMeta>,
    grants: Store<RouteGrant>,
    claims: Claims,
    /// Slices not used, with why.
    untrusted: HashMap<ObjKey, Untrusted>,
}

impl Sources {
    fn grants(&self) -> Vec<RouteGrant> {
        self.grants.state().iter().map(|g| (**g).clone()).collect()
    }

    fn route_count(&self) -> usize {
        self.routes.len()
    }

    fn route(&self, namespace: &str, name: &str) -> Option<Arc<RouteRecord>> {
        self.routes.get(namespace, name)
    }

    /// Everything from the stores (a watch listed).
    fn resync(&mut self, registry: &Registry) -> (Update, HashMap<RouteRef, Option<Starting>>) {
        let routes: Vec<Arc<RouteRecord>> = self.routes.all();
        let slices: Vec<Arc<SliceRecord>> = self.slices.all();
        let services: Vec<Arc<OwnedMeta>> = self.services.all();
        let split = trusted_slices(
            slices.iter().map(|s| &**s),
            services.iter().map(|s| &**s),
            routes.iter().map(|r| &**r),
        );
        self.untrusted = split
            .untrusted
            .iter()
            .map(|(s, why)| (s.meta.key(), *why))
            .collect();
        self.claims =
            Claims::from_objects(slices.iter().map(|s| &**s), services.iter().map(|s| &**s));
        let ready = endpoints_from_slices(split.trusted.iter().copied());
        let starting = starting_from_slices(split.trusted.iter().copied())
            .into_iter()
            .map(|(variant, endpoints)| {
                let s = self.starting(&variant, endpoints);
                (variant, s)
            })
            .collect();
        (registry.rebuild(routes, self.grants(), ready), starting)
    }

    /// What [`crate::probe`] needs of a variant's starting endpoints.
    fn starting(&self, variant: &RouteRef, endpoints: Vec<Authority>) -> Option<Starting> {
        if endpoints.is_empty() {
            return None;
        }
        let route = self.route(&variant.namespace, &variant.name);
        Some(Starting {
            endpoints: endpoints.into(),
            http_path: route.and_then(|r| r.readiness_path.clone()),
        })
    }

    /// Only what `pending` names.
    fn apply(
        &mut self,
        registry: &Registry,
        pending: Pending,
    ) -> (Update, HashMap<RouteRef, Option<Starting>>) {
        let mut touched: HashSet<RouteRef> = HashSet::new();
        for (key, before) in pending.slices {
            let slice = self.slices.get(&key.0, &key.1);
            self.untrusted.remove(&key);
            if let Some(s) = &slice
                && s.meta.claim.is_none()
            {
                self.untrusted.insert(key.clone(), Untrusted::BadLabels);
            }
            let now = slice.as_ref().and_then(|s| s.meta.claim.as_ref());
            touched.extend(
                self.claims
                    .claim(Claimer::Slice, &key.1, before.as_ref(), now),
            );
        }
        for (key, before) in pending.services {
            let service = self.services.get(&key.0, &key.1);
            let now = service.as_ref().and_then(|s| s.claim.as_ref());
            touched.extend(
                self.claims
                    .claim(Claimer::Service, &key.1, before.as_ref(), now),
            );
        }
        let mut edit = registry.edit();
        if pending.grants {
            edit.set_grants(self.grants());
        }
        for (namespace, name) in pending.routes {
            match self.route(&namespace, &name) {
                Some(route) => edit.apply(route),
                None => edit.delete(&format!("{namespace}/{name}")),
            }
            // The owner chain of its slices ends at the route's uid.
            for variant in [Variant::Main, Variant::Preview] {
                touched.insert(RouteRef {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    variant,
                });
            }
        }
        let mut starting = HashMap::new();
        for variant in touched {
            let (ready, waking) = self.check_variant(&variant);
            starting.insert(variant.clone(), self.starting(&variant, waking));
            edit.set_endpoints(variant, ready);
        }
        (edit.commit(), starting)
    }

    /// The ready and the starting endpoints of one variant, with the same rules as [`Sources::resync`]
    /// applied to the objects that claim it (the owner-chain check of a slice claiming
    /// it only looks at Services claiming it and at its ApiRoute).
    fn check_variant(&mut self, variant: &RouteRef) -> (Vec<Authority>, Vec<Authority>) {
        let ns = variant.namespace.as_str();
        let (slices, gone) = claimed(self.claims.slices_of(variant), |n| {
            self.slices
                .get(ns, n)
                .filter(|s| s.meta.claim.as_ref() == Some(variant))
        });
        for name in gone {
            self.claims
                .claim(Claimer::Slice, &name, Some(variant), None);
        }
        let (services, gone) = claimed(self.claims.services_of(variant), |n| {
            self.services
                .get(ns, n)
                .filter(|s| s.claim.as_ref() == Some(variant))
        });
        for name in gone {
            self.claims
                .claim(Claimer::Service, &name, Some(variant), None);
        }
        let route = self.route(ns, &variant.name);
        let split = trusted_slices(
            slices.iter().map(|s| &**s),
            services.iter().map(|s| &**s),
            route.as_deref(),
        );
        for s in &split.trusted {
            self.untrusted.remove(&s.meta.key());
        }
        for (s, why) in &split.untrusted {
            self.untrusted.insert(s.meta.key(), *why);
        }
        let ready = endpoints_from_slices(split.trusted.iter().copied())
            .remove(variant)
            .unwrap_or_default();
        let starting = starting_from_slices(split.trusted.iter().copied())
            .remove(variant)
            .unwrap_or_default();
        (ready, starting)
    }

    fn untrusted_now(&self) -> HashSet<UntrustedKey> {
        self.untrusted
            .iter()
            .map(|((ns, name), why)| (ns.clone(), name.clone(), *why))
            .collect()
    }
}

impl Source {
    /// Starts the watches and the update loop; returns the task running them.
    pub async fn start(
        gateway: Arc<Gateway>,
        ready: Arc<Readiness>,
        namespaces: Vec<String>,
        autoscaler_service: Option<String>,
        autoscaler_lease: Option<String>,
    ) -> Result<JoinHandle<()>, kube::Error> {
        let client = apiroutes_kit::cluster::client(None).await?;
        let dirty = Arc::new(Notify::new());
        let pending = Arc::new(Mutex::new(Pending::default()));
        let note = |kind| Note {
            kind,
            dirty: Arc::clone(&dirty),
            pending: Arc::clone(&pending),
        };
        // One reflector per kind over every watched namespace, each into one store.
        let routes = Records::<RouteRecord>::default();
        let (routes_ready, touched) = reflect(
            reflect::apis::<ApiRoute>(&client, &namespaces),
            watcher::Config::default(),
            |_| {},
            RecordSink {
                store: routes.clone(),
                record: |r| RouteRecord::from(r),
            },
        );
        let mut streams: Vec<Events> = vec![note(Kind::Route).events(
            touched,
            |r| (r.namespace().to_owned(), r.name().to_owned()),
            |_| None,
        )];
        // Services and slices by the same label: the slice's owner chain is checked
        // against the Services (and ApiRoutes) seen here.
        let owned_config = watcher::Config::default().labels(&labels::owned_selector());
        let slices = Records::<SliceRecord>::default();
        let (slices_ready, touched) = reflect(
            reflect::apis::<EndpointSlice>(&client, &namespaces),
            owned_config.clone(),
            |_| {},
            RecordSink {
                store: slices.clone(),
                record: |s| SliceRecord::from(s),
            },
        );
        streams.push(note(Kind::Slice).events(
            touched,
            |s| s.meta.key(),
            |s| s.meta.claim.as_ref(),
        ));
        let services = Records::<OwnedMeta>::default();
        let (services_ready, touched) = reflect(
            reflect::apis::<Service>(&client, &namespaces),
            owned_config,
            |_| {},
            RecordSink {
                store: services.clone(),
                record: |s| OwnedMeta::from(s),
            },
        );
        streams.push(note(Kind::Service).events(touched, OwnedMeta::key, |s| s.claim.as_ref()));
        // RouteGrants are cluster-scoped: one watch, and readiness waits for it (a table
        // built before the grants are known could route what isolation denies). Without
        // the RouteGrant CRD no grant can exist: isolation is off, said once, and the
        // store (no watch) is ready at once.
        let grants_api = Api::<RouteGrant>::all(client.clone());
        let grant_apis = if apiroutes_crds::served::resource_served(&grants_api).await {
            vec![(None, grants_api)]
        } else {
            tracing::warn!(
                "the RouteGrant CRD is not installed: isolation between namespaces is off \
                 (apply charts/apiroutes/crds/ and restart to enable it)"
            );
            vec![]
        };
        let grant_writer = Writer::<RouteGrant>::default();
        let grants = grant_writer.as_reader();
        let (grants_ready, touched) = reflect(
            grant_apis,
            watcher::Config::default(),
            drop_managed_fields,
            grant_writer,
        );
        streams.push(note(Kind::Grant).events(touched, key_of, |_| None));
        let synced = [routes_ready, slices_ready, services_ready, grants_ready];
        // The Lease changes at every renew (every 2 s): it only moves the autoscaler URL,
        // never rebuilds the route table.
        let leader_changed = Arc::new(Notify::new());

        // The autoscaler's address, when discovered from a Service (and the leader Lease:
        // only that one Lease is watched, by name, which is all the gateway may read).
        let autoscaler_stores = match autoscaler_service
            .as_deref()
            .and_then(|s| s.split_once('/'))
        {
            Some((ns, name)) => {
                let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
                let config =
                    watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={name}"));
                // Whole slices, not records: the Lease holder's endpoint is found by its
                // pod name (targetRef).
                let writer = Writer::<EndpointSlice>::default();
                let slices = writer.as_reader();
                let (_, touched) = reflect(
                    vec![(Some(ns.to_owned()), api)],
                    config,
                    drop_managed_fields,
                    writer,
                );
                streams.push(note(Kind::Autoscaler).events(touched, key_of, |_| None));
                let lease = match autoscaler_lease.as_deref().and_then(|l| l.split_once('/')) {
                    Some((ns, name)) => {
                        let api: Api<Lease> = Api::namespaced(client.clone(), ns);
                        let config =
                            watcher::Config::default().fields(&format!("metadata.name={name}"));
                        let writer = Writer::<Lease>::default();
                        let store = writer.as_reader();
                        let (_, touched) = reflect(
                            vec![(Some(ns.to_owned()), api)],
                            config,
                            drop_managed_fields,
                            writer,
                        );
                        let note = Note {
                            dirty: Arc::clone(&leader_changed),
                            ..note(Kind::Autoscaler)
                        };
                        streams.push(note.events(touched, key_of, |_| None));
                        Some(store)
                    }
                    None => {
                        if autoscaler_lease.is_some() {
                            tracing::warn!("--autoscaler-lease must be NS/NAME; ignoring it");
                        }
                        None
                    }
                };
                let stores = AutoscalerStores { slices, lease };
                let s = stores.clone();
                gateway
                    .autoscaler
                    .set_resolver(Box::new(move || s.resolve()));
                Some(stores)
            }
            None => {
                if autoscaler_service.is_some() {
                    tracing::warn!("--autoscaler-service must be NS/NAME; ignoring it");
                }
                None
            }
        };

        let mut events = futures::stream::select_all(streams);
        // Once every store has its first list, one update installs the first table (also
        // when nothing was listed, so no event would wake the update task).
        let first = {
            let (synced, pending, dirty) =
                (synced.clone(), Arc::clone(&pending), Arc::clone(&dirty));
            async move {
                Ready::all(&synced).await;
                lock(&pending).resync = true;
                dirty.notify_one();
            }
        };
        let pump = tokio::spawn(async move {
            let watch = async {
                while let Some(ev) = events.next().await {
                    if let Err(e) = ev {
                        tracing::warn!(error = %e, "watch error (retrying with backoff)");
                    }
                }
            };
            tokio::join!(first, watch);
        });
        let mut sources = Sources {
            routes,
            slices,
            services,
            grants,
            claims: Claims::default(),
            untrusted: HashMap::new(),
        };
        let task = tokio::spawn(async move {
            let _pump = AbortOnDrop(pump);
            let mut logged: HashSet<UntrustedKey> = HashSet::new();
            let mut gauged: HashSet<String> = HashSet::new();
            loop {
                tokio::select! {
                    _ = dirty.notified() => {}
                    _ = leader_changed.notified() => {
                        if let Some(stores) = &autoscaler_stores {
                            follow_autoscaler(&gateway, stores);
                        }
                        continue;
                    }
                }
                tokio::time::sleep(DEBOUNCE).await;
                let batch = std::mem::take(&mut *lock(&pending));
                if batch.resync {
                    // A (re)list: everything from the stores, and every ready variant
                    // wakes its held requests.
                    let (update, starting) = sources.resync(&gateway.registry);
                    gateway.install(update.table);
                    // Every variant: those not named have no starting pod.
                    let table = gateway.table();
                    for target in table.targets.values() {
                        set_starting(target, starting.get(&*target.state.key).cloned().flatten());
                    }
                } else if !(batch.routes.is_empty()
                    && batch.slices.is_empty()
                    && batch.services.is_empty()
                    && !batch.grants)
                {
                    let (update, starting) = sources.apply(&gateway.registry, batch);
                    gateway.install_update(update);
                    let table = gateway.table();
                    for (variant, s) in starting {
                        if let Some(target) = table.target(&variant) {
                            set_starting(target, s);
                        }
                    }
                }
                // Set the current counts, then drop namespaces that have none left (not
                // reset-then-set, so a scrape never sees the series missing).
                let current = sources.untrusted_now();
                let gauge = &gateway.metrics.untrusted_slices;
                let counts = untrusted_per_namespace(&current);
                for (ns, n) in &counts {
                    gauge.with_label_values(&[ns]).set(*n);
                }
                for ns in gauged.difference(&counts.keys().cloned().collect()) {
                    let _ = gauge.remove_label_values(&[ns]);
                }
                gauged = counts.into_keys().collect();
                // Before the initial sync a real slice may be seen before its Service or
                // ApiRoute: warn only once every store is complete.
                let listed = synced.iter().all(Ready::is_ready);
                if listed {
                    let (new, now) = newly_untrusted(&logged, current);
                    for (namespace, name, why) in new {
                        tracing::warn!(%namespace, %name, why = why.as_str(),
                            "ignoring EndpointSlice with the operator's labels but not its owner chain");
                    }
                    logged = now;
                }
                if let Some(stores) = &autoscaler_stores {
                    follow_autoscaler(&gateway, stores);
                }
                if !ready.is_ready() && listed {
                    tracing::info!(routes = sources.route_count(), "initial sync done; ready");
                    ready.set_ready();
                }
            }
        });
        Ok(task)
    }
}

/// Records a variant's starting endpoints; held requests look at them at once.
fn set_starting(target: &Target, starting: Option<Starting>) {
    let state = &target.state;
    if state.starting.load().as_deref() == starting.as_ref() {
        return;
    }
    let any = starting.is_some();
    state.starting.store(starting.map(Arc::new));
    if any && state.held.load(Acquire) > 0 {
        state.ready.notify_waiters();
    }
}

/// Points the autoscaler pushes at the current leader's endpoint.
fn follow_autoscaler(gateway: &Gateway, stores: &AutoscalerStores) {
    let url = stores.resolve();
    let current = gateway.autoscaler.url.load_full();
    if current.as_deref() != url.as_ref() {
        tracing::info!(url = ?url, "autoscaler endpoint");
        gateway.autoscaler.url.store(url.map(Arc::new));
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
    use kube::ResourceExt;

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
        let got = endpoints_from_slices(&records(&slices));
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

        // Starting: not ready and not terminating (a not-ready terminating pod is going).
        let mut with_going = slices.to_vec();
        with_going.push(slice(
            "shop",
            "user",
            "main",
            ("http", 8080),
            &[("10.0.0.6", Some(false), Some(true))],
        ));
        let starting = starting_from_slices(&records(&with_going));
        let main: Vec<String> = starting[&key("shop", "user", Variant::Main)]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(main, ["10.0.0.3:8080"]);
        assert!(starting[&key("shop", "user", Variant::Preview)].is_empty());
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
        assert!(endpoints_from_slices(&records([&s, &bad_variant])).is_empty());
    }

    /// The operator's Service for `route`'s `variant` (as operator/src/resources.rs makes
    /// it: operator labels, controller ownerReference to the ApiRoute).
    fn service_of(route: &ApiRoute, variant: Variant) -> Service {
        let name = variant.object_name(&route.name_any());
        Service {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: route.metadata.namespace.clone(),
                uid: Some(format!("svc-uid-{name}")),
                labels: Some(
                    [
                        (
                            labels::MANAGED_BY.to_owned(),
                            labels::MANAGED_BY_VALUE.to_owned(),
                        ),
                        (labels::ROUTE.to_owned(), route.name_any()),
                        (labels::VARIANT.to_owned(), variant.as_str().to_owned()),
                    ]
                    .into(),
                ),
                owner_references: route.controller_owner_ref(&()).map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    /// `slice` controlled by `service`, as the EndpointSlice controller sets it.
    fn owned_by(mut slice: EndpointSlice, service: &Service) -> EndpointSlice {
        slice.metadata.name = Some(format!("{}-abcde", service.name_any()));
        slice.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: service.name_any(),
            uid: service.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        slice
    }

    fn user_slice() -> EndpointSlice {
        slice(
            "shop",
            "user",
            "main",
            ("http", 8080),
            &[("10.0.0.1", Some(true), None)],
        )
    }

    fn records<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Vec<SliceRecord> {
        slices.into_iter().map(SliceRecord::from).collect()
    }

    fn metas<'a>(services: impl IntoIterator<Item = &'a Service>) -> Vec<OwnedMeta> {
        services.into_iter().map(OwnedMeta::from).collect()
    }

    fn user_route() -> ApiRoute {
        apiroutes_crds::testing::route("user", "/api/user").namespace("shop")
    }

    fn verdict(
        slice: &EndpointSlice,
        services: &[Service],
        routes: &[ApiRoute],
    ) -> Option<Untrusted> {
        let (slices, services) = (records([slice]), metas(services));
        let split = trusted_slices(&slices, &services, &recs(routes));
        split.untrusted.first().map(|(_, why)| *why)
    }

    #[test]
    fn the_operators_owner_chain_is_trusted() {
        let route = user_route();
        let main = service_of(&route, Variant::Main);
        let preview = service_of(&route, Variant::Preview);
        let real = owned_by(user_slice(), &main);
        let real_preview = owned_by(
            slice(
                "shop",
                "user",
                "preview",
                ("http", 8080),
                &[("10.0.0.2", None, None)],
            ),
            &preview,
        );
        let routes = [route];
        let services = [main, preview];
        let (slices, metas) = (records([&real, &real_preview]), metas(&services));
        let split = trusted_slices(&slices, &metas, &recs(&routes));
        assert!(split.untrusted.is_empty(), "{:?}", split.untrusted);
        let got = endpoints_from_slices(split.trusted);
        assert_eq!(
            got[&key("shop", "user", Variant::Main)][0].as_str(),
            "10.0.0.1:8080"
        );
        assert_eq!(
            got[&key("shop", "user", Variant::Preview)][0].as_str(),
            "10.0.0.2:8080"
        );
    }

    /// Routes of one shared function (`spec.function`): each keeps its own Service, whose
    /// selector is the function's pods, so both routes resolve to the same endpoints
    /// through the usual owner chain (and wake the one Deployment, see the operator's
    /// `function::scale_unit`).
    #[test]
    fn routes_of_one_function_resolve_to_the_function_s_pods() {
        let users = apiroutes_crds::testing::route("users", "/api/users")
            .namespace("shop")
            .function("shop");
        let count = apiroutes_crds::testing::route("count", "/api/count")
            .namespace("shop")
            .function("shop");
        let services = [
            service_of(&users, Variant::Main),
            service_of(&count, Variant::Main),
        ];
        let pod = [("10.0.0.7", Some(true), None)];
        let slices = [
            owned_by(
                slice("shop", "users", "main", ("http", 8080), &pod),
                &services[0],
            ),
            owned_by(
                slice("shop", "count", "main", ("http", 8080), &pod),
                &services[1],
            ),
        ];
        let routes = [users, count];
        let (slices, metas) = (records(&slices), metas(&services));
        let split = trusted_slices(&slices, &metas, &recs(&routes));
        assert!(split.untrusted.is_empty(), "{:?}", split.untrusted);
        let got = endpoints_from_slices(split.trusted);
        let users = &got[&key("shop", "users", Variant::Main)];
        assert_eq!(users, &got[&key("shop", "count", Variant::Main)]);
        assert_eq!(users[0].as_str(), "10.0.0.7:8080");
    }

    #[test]
    fn forged_slices_with_the_operators_labels_are_ignored() {
        let route = user_route();
        let service = service_of(&route, Variant::Main);
        let routes = [route.clone()];
        let services = [service.clone()];

        // No owner at all.
        assert_eq!(
            verdict(&user_slice(), &services, &routes),
            Some(Untrusted::NotOwnedByVariantService)
        );
        // An owner that is not the controller, or not a v1 Service, or another Service.
        let mut not_controller = owned_by(user_slice(), &service);
        not_controller.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        let mut not_service = owned_by(user_slice(), &service);
        not_service.metadata.owner_references.as_mut().unwrap()[0].kind = "Pod".into();
        let mut other_name = owned_by(user_slice(), &service);
        other_name.metadata.owner_references.as_mut().unwrap()[0].name = "user-preview".into();
        for s in [&not_controller, &not_service, &other_name] {
            assert_eq!(
                verdict(s, &services, &routes),
                Some(Untrusted::NotOwnedByVariantService)
            );
        }
        // Right kind and name, wrong uid.
        let mut uid_mismatch = owned_by(user_slice(), &service);
        uid_mismatch.metadata.owner_references.as_mut().unwrap()[0].uid = "forged".into();
        assert_eq!(
            verdict(&uid_mismatch, &services, &routes),
            Some(Untrusted::UnknownService)
        );
        // An owner Service the operator did not make (no managed-by label; the gateway's
        // watch would not even see it, but the check does not rely on that).
        let mut foreign = service.clone();
        foreign.metadata.labels = None;
        let slice = owned_by(user_slice(), &foreign);
        assert_eq!(
            verdict(&slice, &[foreign], &routes),
            Some(Untrusted::UnknownService)
        );
        // The same uid in another namespace.
        let mut elsewhere = service.clone();
        elsewhere.metadata.namespace = Some("other".into());
        let slice = owned_by(user_slice(), &elsewhere);
        assert_eq!(
            verdict(&slice, &[elsewhere], &routes),
            Some(Untrusted::UnknownService)
        );
        // A labelled Service with no owner, or owned by another ApiRoute name.
        let mut orphan = service.clone();
        orphan.metadata.owner_references = None;
        let slice = owned_by(user_slice(), &orphan);
        assert_eq!(
            verdict(&slice, &[orphan], &routes),
            Some(Untrusted::ServiceNotOwnedByRoute)
        );
        let mut other_route = service.clone();
        other_route.metadata.owner_references.as_mut().unwrap()[0].name = "admin".into();
        let slice = owned_by(user_slice(), &other_route);
        assert_eq!(
            verdict(&slice, &[other_route], &routes),
            Some(Untrusted::ServiceNotOwnedByRoute)
        );
        // Owned by an ApiRoute of the right name but another uid (deleted and recreated,
        // or forged), or by a route the gateway does not know.
        let mut stale = service.clone();
        stale.metadata.owner_references.as_mut().unwrap()[0].uid = "old-uid".into();
        let slice = owned_by(user_slice(), &stale);
        assert_eq!(
            verdict(&slice, &[stale], &routes),
            Some(Untrusted::UnknownRoute)
        );
        let slice = owned_by(user_slice(), &service);
        assert_eq!(
            verdict(&slice, &services, &[]),
            Some(Untrusted::UnknownRoute)
        );
        // Bad labels.
        let mut unlabelled = owned_by(user_slice(), &service);
        unlabelled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .remove(labels::ROUTE);
        assert_eq!(
            verdict(&unlabelled, &services, &routes),
            Some(Untrusted::BadLabels)
        );
        // And none of them yields an endpoint.
        let forged = [user_slice(), uid_mismatch];
        let (forged, services) = (records(&forged), metas(&services));
        let split = trusted_slices(&forged, &services, &recs(&routes));
        assert!(endpoints_from_slices(split.trusted).is_empty());
        assert_eq!(
            untrusted_per_namespace(&untrusted_keys(&split.untrusted))["shop"],
            2
        );
    }

    #[test]
    fn untrusted_slices_are_logged_once_while_they_last() {
        let a = SliceRecord::from(&user_slice());
        let mut b = user_slice();
        b.metadata.name = Some("b".into());
        let b = SliceRecord::from(&b);
        let (new, logged) = newly_untrusted(
            &HashSet::new(),
            untrusted_keys(&[(&a, Untrusted::NotOwnedByVariantService)]),
        );
        assert_eq!(new.len(), 1);
        let both = [
            (&a, Untrusted::NotOwnedByVariantService),
            (&b, Untrusted::UnknownService),
        ];
        let (new, logged) = newly_untrusted(&logged, untrusted_keys(&both));
        assert_eq!(
            new,
            [("shop".into(), "b".into(), Untrusted::UnknownService)]
        );
        let (new, logged) = newly_untrusted(&logged, untrusted_keys(&both));
        assert!(new.is_empty());
        // Gone, then back: logged again.
        let (_, logged) = newly_untrusted(&logged, untrusted_keys(&both[1..]));
        let (new, _) = newly_untrusted(&logged, untrusted_keys(&both));
        assert_eq!(new.len(), 1);
    }

    #[test]
    fn claims_name_the_variants_an_object_leaves_and_joins() {
        let mut claims = Claims::default();
        let a = key("shop", "user", Variant::Main);
        let b = key("shop", "user", Variant::Preview);
        let n = "user-abcde";
        assert_eq!(
            claims.claim(Claimer::Slice, n, None, Some(&a)),
            std::slice::from_ref(&a)
        );
        assert_eq!(claims.slices_of(&a).collect::<Vec<_>>(), [n]);
        // Relabelled to the preview variant: both must be checked again.
        assert_eq!(
            claims.claim(Claimer::Slice, n, Some(&a), Some(&b)),
            [a.clone(), b.clone()]
        );
        assert_eq!(claims.slices_of(&a).count(), 0);
        assert_eq!(claims.slices_of(&b).count(), 1);
        // Deleted: the variant it claimed.
        assert_eq!(
            claims.claim(Claimer::Slice, n, Some(&b), None),
            std::slice::from_ref(&b)
        );
        assert_eq!(claims.slices_of(&b).count(), 0);
        assert!(claims.of.is_empty(), "nothing kept for unclaimed variants");
        // Services likewise, beside a slice of the same variant.
        claims.claim(Claimer::Slice, n, None, Some(&a));
        assert_eq!(
            claims.claim(Claimer::Service, "user", None, Some(&a)),
            std::slice::from_ref(&a)
        );
        assert_eq!(claims.services_of(&a).collect::<Vec<_>>(), ["user"]);
        claims.claim(Claimer::Slice, n, Some(&a), None);
        assert_eq!(claims.services_of(&a).count(), 1);
        // From the stores: what each record's labels claim.
        let route = user_route();
        let svc = service_of(&route, Variant::Main);
        let from_all = Claims::from_objects(&records([&user_slice()]), &metas([&svc]));
        assert_eq!(from_all.services_of(&a).count(), 1);
        assert_eq!(from_all.slices_of(&a).count(), 1);
    }

    /// One store for the records of every watched namespace: a lookup is by key alone.
    #[test]
    fn records_of_every_namespace_share_one_store() {
        let store = Records::<SliceRecord>::default();
        let mut sink = RecordSink {
            store: store.clone(),
            record: |s: &EndpointSlice| SliceRecord::from(s),
        };
        let mut other = user_slice();
        other.metadata.namespace = Some("blog".into());
        let (shop, blog) = (key_of(&user_slice()), key_of(&other));
        let filled = sink.fill([(shop.clone(), sink.value(user_slice()))].into_iter());
        assert_eq!(filled.len(), 1);
        let (_, previous) = sink.apply(&blog, sink.value(other));
        assert!(previous.is_none());
        assert_eq!(&*store.get("blog", &blog.1).unwrap().meta.namespace, "blog");
        assert_eq!(&*store.get("shop", &shop.1).unwrap().meta.namespace, "shop");
        let mut keys = sink.keys();
        keys.sort();
        assert_eq!(keys, [blog.clone(), shop.clone()]);
        assert!(sink.delete(&shop).is_some());
        assert!(store.get("shop", &shop.1).is_none());
        assert_eq!(store.all().len(), 1);
    }

    #[test]
    fn records_keep_what_the_owner_chain_reads() {
        let route = user_route();
        let svc = service_of(&route, Variant::Main);
        let slice = owned_by(user_slice(), &svc);
        let (slices, services) = (records([&slice]), metas([&svc]));
        let split = trusted_slices(&slices, &services, &recs([&route]));
        assert!(split.untrusted.is_empty());
        assert_eq!(endpoints_from_slices(split.trusted).len(), 1);
        // The records keep nothing else of the objects.
        let mut noisy = svc.clone();
        noisy.metadata.managed_fields = Some(vec![Default::default()]);
        noisy.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        noisy.spec = Some(Default::default());
        assert_eq!(OwnedMeta::from(&noisy), OwnedMeta::from(&svc));
    }

    fn recs<'a>(routes: impl IntoIterator<Item = &'a ApiRoute>) -> Vec<RouteRecord> {
        routes.into_iter().map(RouteRecord::from).collect()
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

    #[test]
    fn the_lease_holder_is_the_autoscaler_not_the_first_labelled_pod() {
        // During a hand-over both pods may carry the leader label (the old one could not
        // remove it): the first sorted endpoint is the stale one, the Lease names the other.
        let mut s = slice(
            "apiroutes",
            "op",
            "main",
            ("autoscaler", 8081),
            &[
                ("10.1.0.1", Some(true), None),
                ("10.1.0.2", Some(false), None),
            ],
        );
        for (e, pod) in s.endpoints.iter_mut().flatten().zip(["op-old", "op-new"]) {
            e.target_ref = Some(k8s_openapi::api::core::v1::ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                ..Default::default()
            });
        }
        assert_eq!(
            autoscaler_url_from_slices([&s]).as_deref(),
            Some("http://10.1.0.1:8081"),
            "without the Lease: the stale pod"
        );
        assert_eq!(
            autoscaler_url_for_holder([&s], Some("op-new")).as_deref(),
            Some("http://10.1.0.2:8081"),
            "the holder, even before it is Ready"
        );
        assert_eq!(autoscaler_url_for_holder([&s], Some("op-gone")), None);
        assert_eq!(autoscaler_url_for_holder([&s], Some("")), None);
        assert_eq!(autoscaler_url_for_holder([&s], None), None);
        let lease = |holder: Option<&str>| Lease {
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(lease_holder([&lease(Some("op-new"))]), Some("op-new"));
        assert_eq!(lease_holder([&lease(None)]), None);
        assert_eq!(lease_holder(std::iter::empty()), None);
    }
}
