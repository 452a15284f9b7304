//! The route table: an immutable snapshot built from the admitted ApiRoutes and their ready
//! endpoints, swapped whole on every change (request handlers never lock).
//!
//! Matching is a segment trie per host (plus one for hostless routes). A depth-first walk
//! with backtracking tries, at every node, the route ending there, then the static child
//! (one hash lookup), then the dynamic child, then the catch-all, then the optional
//! catch-all: exactly the order of [`Pattern::precedence`], so the first leaf found is the
//! greatest-precedence matching pattern. Cost grows with path depth, not route count.
//! Host routes beat hostless ones: the host's trie is tried first, and a pattern matched
//! there decides the request (a method it does not serve is a 405, even if a hostless
//! route would serve it); only when nothing in the host's trie matches are the hostless
//! routes tried. Within one trie, the winning pattern decides: a method none of its
//! routes serves is a 405 with `Allow`, never a fall-through to a lower-precedence pattern.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use apiroutes_crds::{
    ApiRoute, Pattern, RouteGrant,
    autoscale::RouteRef,
    conflict::{Admission, admit_granted, effective_methods},
    labels::Variant,
    pattern::Segment,
};
use foldhash::fast::RandomState;
use http::{HeaderValue, Method, uri::Authority};
use percent_encoding::percent_decode_str;
use smallvec::SmallVec;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::{
    metrics::{Metrics, RouteMetrics},
    variant::VariantState,
};

/// Raw segments of a normalized path, on the stack for paths up to 16 deep.
pub type Segments<'a> = SmallVec<[&'a str; 16]>;

/// Splits a normalized path (`/a/b`) into raw segments (`/` has none).
pub fn split(path: &str) -> Segments<'_> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        SmallVec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// A ready backend address of a route variant, with its in-flight count (kept across
/// rebuilds while the endpoint stays).
#[derive(Debug)]
pub struct Endpoint {
    pub authority: Authority,
    /// The authority as a socket address when it is `IP:port` (no resolution needed).
    pub socket_addr: Option<std::net::SocketAddr>,
    pub in_flight: AtomicUsize,
    /// Idle keep-alive connections to this endpoint.
    pub pool: crate::pool::ConnPool,
}

impl Endpoint {
    pub fn new(authority: Authority) -> Self {
        Endpoint {
            socket_addr: crate::pool::socket_addr(authority.as_str()),
            authority,
            in_flight: AtomicUsize::new(0),
            pool: crate::pool::ConnPool::default(),
        }
    }
}

/// A route variant's endpoints in this snapshot.
pub struct Target {
    pub state: Arc<VariantState>,
    pub endpoints: Box<[Arc<Endpoint>]>,
}

impl Target {
    /// The ready endpoint with the fewest requests in flight (ties spread round-robin),
    /// skipping those in `exclude` (endpoints that already refused a connection).
    pub fn pick(&self, exclude: &[Arc<Endpoint>]) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        let excluded = |e: &Arc<Endpoint>| exclude.iter().any(|x| Arc::ptr_eq(x, e));
        if n == 1 {
            let only = &self.endpoints[0];
            return (!excluded(only)).then_some(only);
        }
        if n == 0 {
            return None;
        }
        let start = self.state.rr.fetch_add(1, Relaxed);
        let mut best: Option<(&Arc<Endpoint>, usize)> = None;
        for i in 0..n {
            let e = &self.endpoints[(start + i) % n];
            if excluded(e) {
                continue;
            }
            let load = e.in_flight.load(Relaxed);
            if best.is_none_or(|(_, b)| load < b) {
                best = Some((e, load));
            }
        }
        best.map(|(e, _)| e)
    }
}

/// An admitted ApiRoute, ready to serve.
pub struct RouteEntry {
    /// `namespace/name`.
    pub key: Arc<str>,
    pub pattern: Pattern,
    /// `None`: every method.
    pub methods: Option<Box<[Method]>>,
    pub name_header: HeaderValue,
    pub pattern_header: HeaderValue,
    pub timeout: Duration,
    pub body_limit: u64,
    pub main: Arc<Target>,
    pub preview: Option<Arc<Target>>,
    pub metrics: Arc<RouteMetrics>,
    /// `spec.host`, lower case.
    pub host: Option<Box<str>>,
    has_params: bool,
}

impl RouteEntry {
    pub fn allows(&self, method: &Method) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == method))
    }

    pub fn target(&self, variant: Variant) -> &Arc<Target> {
        match variant {
            Variant::Preview => self.preview.as_ref().unwrap_or(&self.main),
            Variant::Main => &self.main,
        }
    }

    /// The `x-apiroute-params` JSON for the matched path segments (ASCII only: non-ASCII
    /// is `\u` escaped), or `None` when a value does not decode.
    pub fn params_json(&self, segs: &[&str]) -> Option<String> {
        let mut out = String::with_capacity(2 + segs.iter().map(|s| s.len() + 8).sum::<usize>());
        out.push('{');
        let mut first = true;
        for (i, seg) in self.pattern.segments().iter().enumerate() {
            let (name, many) = match seg {
                Segment::Static(_) => continue,
                Segment::Dynamic(n) => (n, false),
                Segment::CatchAll(n) | Segment::OptionalCatchAll(n) => (n, true),
            };
            if many && i >= segs.len() {
                break; // optional catch-all with zero segments: absent
            }
            if !first {
                out.push(',');
            }
            first = false;
            push_json_str(&mut out, name);
            out.push(':');
            if many {
                out.push('[');
                for (j, raw) in segs.get(i..).unwrap_or_default().iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_json_str(&mut out, &decode(raw)?);
                }
                out.push(']');
            } else {
                push_json_str(&mut out, &decode(segs.get(i)?)?);
            }
        }
        out.push('}');
        Some(out)
    }

    /// `x-apiroute-params` as a header value.
    pub fn params_header(&self, segs: &[&str]) -> Option<HeaderValue> {
        if !self.has_params {
            return Some(HeaderValue::from_static("{}"));
        }
        // The JSON's buffer becomes the header value without a copy.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(self.params_json(segs)?)).ok()
    }
}

fn decode(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(std::borrow::Cow::Borrowed(raw));
    }
    apiroutes_crds::pattern::decode(raw).ok()?;
    percent_decode_str(raw).decode_utf8().ok()
}

/// Appends `s` as a JSON string with every non-printable-ASCII character escaped.
fn push_json_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// The routes sharing one canonical pattern (and host): several only with disjoint methods.
pub struct Leaf {
    pub routes: Box<[Arc<RouteEntry>]>,
    /// `Allow` for a 405: the union of the routes' methods.
    pub allow: HeaderValue,
}

impl Leaf {
    pub fn select(&self, method: &Method) -> Option<&Arc<RouteEntry>> {
        self.routes.iter().find(|r| r.allows(method))
    }
}

#[derive(Default)]
struct Node {
    here: Option<u32>,
    statics: HashMap<Box<str>, Node, RandomState>,
    dynamic: Option<Box<Node>>,
    catch_all: Option<u32>,
    optional_catch_all: Option<u32>,
}

impl Node {
    fn insert(&mut self, segments: &[Segment], leaf: u32) {
        let mut node = self;
        for s in segments {
            match s {
                Segment::Static(t) => node = node.statics.entry(t.as_str().into()).or_default(),
                Segment::Dynamic(_) => node = node.dynamic.get_or_insert_with(Box::default),
                Segment::CatchAll(_) => {
                    node.catch_all = Some(leaf);
                    return;
                }
                Segment::OptionalCatchAll(_) => {
                    node.optional_catch_all = Some(leaf);
                    return;
                }
            }
        }
        node.here = Some(leaf);
    }

    fn find(&self, segs: &[&str]) -> Option<u32> {
        let Some((first, rest)) = segs.split_first() else {
            return self.here.or(self.optional_catch_all);
        };
        if let Some(child) = self.statics.get(*first)
            && let Some(found) = child.find(rest)
        {
            return Some(found);
        }
        if let Some(child) = &self.dynamic
            && let Some(found) = child.find(rest)
        {
            return Some(found);
        }
        self.catch_all.or(self.optional_catch_all)
    }
}

#[derive(Default)]
struct Trie {
    root: Node,
    leaves: Vec<Leaf>,
}

/// The result of a lookup.
pub enum Lookup<'t> {
    Route(&'t Arc<RouteEntry>),
    /// A pattern matched but none of its routes serves the method.
    MethodNotAllowed(&'t HeaderValue),
    NotFound,
}

/// An immutable routing snapshot.
#[derive(Default)]
pub struct RouteTable {
    hosts: HashMap<Box<str>, Trie, RandomState>,
    any: Trie,
    /// Every variant in the table, for the activator.
    pub targets: HashMap<RouteRef, Arc<Target>>,
    /// Admitted routes.
    pub routes: usize,
    /// Every admitted route, in input order (for the admin `/routes` view).
    pub entries: Vec<Arc<RouteEntry>>,
}

impl RouteTable {
    /// Matches `host` (without port; any case) and a normalized path's segments.
    pub fn lookup(&self, host: Option<&str>, segs: &[&str], method: &Method) -> Lookup<'_> {
        if !self.hosts.is_empty()
            && let Some(host) = host
        {
            let trie = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                self.hosts.get(host.to_ascii_lowercase().as_str())
            } else {
                self.hosts.get(host)
            };
            if let Some(trie) = trie
                && let Some(found) = Self::in_trie(trie, segs, method)
            {
                return found;
            }
        }
        Self::in_trie(&self.any, segs, method).unwrap_or(Lookup::NotFound)
    }

    fn in_trie<'t>(trie: &'t Trie, segs: &[&str], method: &Method) -> Option<Lookup<'t>> {
        let leaf = trie.leaves.get(trie.root.find(segs)? as usize)?;
        Some(match leaf.select(method) {
            Some(route) => Lookup::Route(route),
            None => Lookup::MethodNotAllowed(&leaf.allow),
        })
    }

    /// A JSON view of the table for operators (admin `/routes`).
    pub fn to_json(&self) -> serde_json::Value {
        let eps = |t: &Target| -> Vec<String> {
            t.endpoints
                .iter()
                .map(|e| e.authority.to_string())
                .collect()
        };
        let routes: Vec<serde_json::Value> = self
            .entries
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": &*r.key,
                    "pattern": r.pattern.to_string(),
                    "host": r.host.as_deref(),
                    "methods": r.methods.as_ref().map(|ms| ms.iter().map(Method::as_str).collect::<Vec<_>>()),
                    "timeoutSeconds": r.timeout.as_secs(),
                    "bodyLimitBytes": r.body_limit,
                    "endpoints": eps(&r.main),
                    "previewEndpoints": r.preview.as_deref().map(eps),
                })
            })
            .collect();
        serde_json::json!({ "routes": routes })
    }

    /// The current endpoints of a variant.
    pub fn target(&self, key: &RouteRef) -> Option<&Arc<Target>> {
        self.targets.get(key)
    }
}

/// State that outlives rebuilds: per-variant activator/load state, endpoint in-flight
/// counters and per-route metric handles. Only the (rare) rebuild locks it.
pub struct Registry {
    pub metrics: Arc<Metrics>,
    inner: Mutex<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    variants: HashMap<RouteRef, Arc<VariantState>>,
    endpoints: HashMap<(RouteRef, Authority), Arc<Endpoint>>,
    routes: HashMap<Arc<str>, Arc<RouteMetrics>>,
}

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Registry {
            metrics,
            inner: Mutex::default(),
        }
    }

    /// Every variant state (for load reports).
    pub fn variants(&self) -> Vec<Arc<VariantState>> {
        self.inner
            .lock()
            .map(|g| g.variants.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Builds a table from every known ApiRoute (conflicts are resolved here, with
    /// [`admit_granted`], with no RouteGrants) and a function giving each variant's ready
    /// endpoints.
    pub fn build(
        &self,
        routes: &[ApiRoute],
        endpoints: impl Fn(&RouteRef) -> Vec<Authority>,
    ) -> RouteTable {
        self.build_granted(routes, &[], endpoints)
    }

    /// [`Registry::build`] under the cluster's RouteGrants: a route its namespace may not
    /// claim is not routed (the same rule the operator reports in `Accepted`).
    pub fn build_granted(
        &self,
        routes: &[ApiRoute],
        grants: &[RouteGrant],
        endpoints: impl Fn(&RouteRef) -> Vec<Authority>,
    ) -> RouteTable {
        let timer = self.metrics.table_rebuild_seconds.start_timer();
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let old = std::mem::take(&mut *guard);
        let mut builder = Builder {
            reg: self,
            old,
            new: RegistryInner::default(),
            table: RouteTable::default(),
            leaf_ids: HashMap::new(),
            leaves: HashMap::new(),
        };
        let admissions = admit_granted(routes, grants);
        for (route, admission) in routes.iter().zip(admissions) {
            if admission == Admission::Accepted {
                builder.add(route, &endpoints);
            }
        }
        let table = builder.finish(&mut guard);
        self.metrics
            .table_routes
            .set(i64::try_from(table.routes).unwrap_or(i64::MAX));
        self.metrics.table_rebuilds.inc();
        timer.observe_duration();
        table
    }
}

struct Builder<'r> {
    reg: &'r Registry,
    old: RegistryInner,
    new: RegistryInner,
    table: RouteTable,
    /// (host, canonical pattern) → leaf index within that host's trie.
    leaf_ids: HashMap<(Option<String>, String), u32>,
    /// Routes collected per leaf before the leaves are frozen.
    leaves: HashMap<(Option<String>, u32), Vec<Arc<RouteEntry>>>,
}

impl Builder<'_> {
    fn target(&mut self, key: RouteRef, addrs: Vec<Authority>) -> Arc<Target> {
        let state = self
            .old
            .variants
            .remove(&key)
            .or_else(|| self.new.variants.get(&key).cloned())
            .unwrap_or_else(|| Arc::new(VariantState::new(key.clone())));
        self.new.variants.insert(key.clone(), Arc::clone(&state));
        let mut endpoints = Vec::with_capacity(addrs.len());
        for authority in addrs {
            let ek = (key.clone(), authority);
            let e = self
                .old
                .endpoints
                .remove(&ek)
                .or_else(|| self.new.endpoints.get(&ek).cloned())
                .unwrap_or_else(|| Arc::new(Endpoint::new(ek.1.clone())));
            if !endpoints.iter().any(|x: &Arc<Endpoint>| Arc::ptr_eq(x, &e)) {
                endpoints.push(Arc::clone(&e));
            }
            self.new.endpoints.insert(ek, e);
        }
        let target = Arc::new(Target {
            state,
            endpoints: endpoints.into_boxed_slice(),
        });
        self.table.targets.insert(key, Arc::clone(&target));
        target
    }

    fn add(&mut self, route: &ApiRoute, endpoints: &impl Fn(&RouteRef) -> Vec<Authority>) {
        let Ok(pattern) = Pattern::parse(&route.spec.path) else {
            return;
        };
        let key: Arc<str> = route.key().into();
        let (Ok(name_header), Ok(pattern_header)) = (
            HeaderValue::try_from(&*key),
            HeaderValue::try_from(pattern.to_string()),
        ) else {
            return;
        };
        let namespace = route.metadata.namespace.clone().unwrap_or_default();
        let name = route.metadata.name.clone().unwrap_or_default();
        let rref = |variant| RouteRef {
            namespace: namespace.clone(),
            name: name.clone(),
            variant,
        };
        let main_key = rref(Variant::Main);
        let main_addrs = endpoints(&main_key);
        let main = self.target(main_key, main_addrs);
        let preview = route.spec.preview.as_ref().map(|_| {
            let k = rref(Variant::Preview);
            let addrs = endpoints(&k);
            self.target(k, addrs)
        });
        let metrics = self
            .old
            .routes
            .remove(&key)
            .or_else(|| self.new.routes.get(&key).cloned())
            .unwrap_or_else(|| self.reg.metrics.route(&key));
        self.new
            .routes
            .insert(Arc::clone(&key), Arc::clone(&metrics));
        let methods = effective_methods(route.spec.methods.as_deref()).map(|set| {
            set.iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect::<Box<[Method]>>()
        });
        let has_params = pattern.params().next().is_some();
        let host = route.spec.host.as_ref().map(|h| h.to_ascii_lowercase());
        let entry = Arc::new(RouteEntry {
            key,
            methods,
            name_header,
            pattern_header,
            timeout: Duration::from_secs(
                u64::try_from(route.spec.timeout_seconds.max(1)).unwrap_or(30),
            ),
            body_limit: route.spec.body_limit_bytes().unwrap_or(1 << 20),
            main,
            preview,
            metrics,
            host: host.as_deref().map(Into::into),
            has_params,
            pattern,
        });
        let canonical = entry.pattern.canonical();
        let trie = match &host {
            Some(h) => self.table.hosts.entry(h.as_str().into()).or_default(),
            None => &mut self.table.any,
        };
        let next_id = u32::try_from(trie.leaves.len()).unwrap_or(u32::MAX);
        let id = *self
            .leaf_ids
            .entry((host.clone(), canonical))
            .or_insert_with(|| {
                trie.root.insert(entry.pattern.segments(), next_id);
                trie.leaves.push(Leaf {
                    routes: Box::new([]),
                    allow: HeaderValue::from_static(""),
                });
                next_id
            });
        self.table.entries.push(Arc::clone(&entry));
        self.leaves.entry((host, id)).or_default().push(entry);
        self.table.routes += 1;
    }

    fn finish(mut self, registry: &mut RegistryInner) -> RouteTable {
        for ((host, id), routes) in self.leaves {
            let trie = match &host {
                Some(h) => self.table.hosts.get_mut(h.as_str()),
                None => Some(&mut self.table.any),
            };
            let Some(leaf) = trie.and_then(|t| t.leaves.get_mut(id as usize)) else {
                continue;
            };
            let mut allow: Vec<&str> = routes
                .iter()
                .filter_map(|r| r.methods.as_ref())
                .flat_map(|ms| ms.iter().map(Method::as_str))
                .collect();
            allow.sort_unstable();
            allow.dedup();
            leaf.allow = HeaderValue::try_from(allow.join(", "))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            leaf.routes = routes.into_boxed_slice();
        }
        // Routes that are gone: drop all their series (counters included), so deleted
        // routes do not pile up in /metrics.
        for (key, metrics) in &self.old.routes {
            if !self.new.routes.contains_key(key) {
                metrics.remove_series();
            }
        }
        *registry = self.new;
        self.table
    }
}

#[cfg(test)]
mod tests;
