//! The route table: an immutable snapshot built from the admitted ApiRoutes and their ready
//! endpoints, swapped whole on every change (request handlers never lock). The [`Registry`]
//! keeps the index behind it and changes it per event: a new snapshot shares everything
//! the event did not touch with the previous one (trie nodes, entries and targets sit
//! behind `Arc`s), so an event costs the depth of one trie path, not the route count.
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
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use apiroutes_crds::{
    ApiRoute, Pattern, RouteGrant,
    autoscale::RouteRef,
    conflict::{Admission, Claimant, admit_granted, effective_methods},
    labels::Variant,
    pattern::Segment,
};
use foldhash::fast::RandomState;
use http::{HeaderValue, Method, uri::Authority};
use smallvec::SmallVec;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::{
    metrics::{Metrics, RouteMetrics},
    route::RouteRecord,
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

    /// Whether an endpoint is left that is not in `exclude`.
    pub fn untried(&self, exclude: &[Arc<Endpoint>]) -> bool {
        self.endpoints
            .iter()
            .any(|e| !exclude.iter().any(|x| Arc::ptr_eq(x, e)))
    }
}

/// An admitted ApiRoute, ready to serve.
pub struct RouteEntry {
    /// `namespace/name`.
    pub key: Arc<str>,
    /// The pattern's parameters (its text is `pattern_header`): a route entry per route
    /// is much of the table's memory, the whole parsed pattern is not needed.
    params: Box<[Param]>,
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
    /// `spec.trailingSlash`: served at `path/`, `path` redirected there (crate::path).
    pub trailing_slash: bool,
}

/// A parameter of a route's pattern: the segment index it starts at, its name, and
/// whether it takes the rest of the path (`[...x]`, `[[...x]]`).
struct Param {
    index: usize,
    name: Box<str>,
    many: bool,
}

fn params_of(pattern: &Pattern) -> Box<[Param]> {
    pattern
        .segments()
        .iter()
        .enumerate()
        .filter_map(|(index, seg)| {
            let (name, many) = match seg {
                Segment::Static(_) => return None,
                Segment::Dynamic(n) => (n, false),
                Segment::CatchAll(n) | Segment::OptionalCatchAll(n) => (n, true),
            };
            Some(Param {
                index,
                name: name.as_str().into(),
                many,
            })
        })
        .collect()
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
        for &Param {
            index: i,
            ref name,
            many,
        } in &self.params
        {
            if !first {
                out.push(',');
            }
            first = false;
            push_json_str(&mut out, name);
            out.push(':');
            if many && i >= segs.len() {
                // An optional catch-all that took no segment: named, without a value.
                out.push_str("null");
                break;
            }
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
        if self.params.is_empty() {
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
    apiroutes_crds::pattern::decode(raw)
        .ok()
        .map(std::borrow::Cow::Owned)
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
    /// Most leaves have one route: kept inline.
    pub routes: SmallVec<[Arc<RouteEntry>; 1]>,
    /// `Allow` for a 405: the union of the routes' methods.
    pub allow: HeaderValue,
    /// Some route here has `trailingSlash` (for the redirect before a 405).
    pub trailing_slash: bool,
}

impl Leaf {
    fn new(routes: Vec<Arc<RouteEntry>>) -> Self {
        let mut allow: Vec<&str> = routes
            .iter()
            .filter_map(|r| r.methods.as_ref())
            .flat_map(|ms| ms.iter().map(Method::as_str))
            .collect();
        allow.sort_unstable();
        allow.dedup();
        let allow = HeaderValue::try_from(allow.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        Leaf {
            trailing_slash: routes.iter().any(|r| r.trailing_slash),
            routes: routes.into(),
            allow,
        }
    }

    pub fn select(&self, method: &Method) -> Option<&Arc<RouteEntry>> {
        self.routes.iter().find(|r| r.allows(method))
    }
}

/// A trie node. Children and leaves sit behind `Arc`s so that a change copies only the
/// nodes on its path; the rest is shared with the snapshots requests still hold.
#[derive(Clone, Default)]
struct Node {
    here: Option<Arc<Leaf>>,
    statics: HashMap<Arc<str>, Arc<Node>, RandomState>,
    dynamic: Option<Arc<Node>>,
    catch_all: Option<Arc<Leaf>>,
    optional_catch_all: Option<Arc<Leaf>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.here.is_none()
            && self.statics.is_empty()
            && self.dynamic.is_none()
            && self.catch_all.is_none()
            && self.optional_catch_all.is_none()
    }

    fn find(&self, segs: &[&str]) -> Option<&Leaf> {
        let Some((first, rest)) = segs.split_first() else {
            return self.here.as_deref().or(self.optional_catch_all.as_deref());
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
        self.catch_all
            .as_deref()
            .or(self.optional_catch_all.as_deref())
    }
}

/// Sets (with `None`: removes) the leaf at `segments` below `node`, copying the nodes on
/// the way when they are shared and dropping those left empty.
fn set_leaf(node: &mut Arc<Node>, segments: &[Segment], leaf: Option<Arc<Leaf>>) {
    let n = Arc::make_mut(node);
    let Some((first, rest)) = segments.split_first() else {
        n.here = leaf;
        return;
    };
    match first {
        Segment::CatchAll(_) => n.catch_all = leaf,
        Segment::OptionalCatchAll(_) => n.optional_catch_all = leaf,
        Segment::Dynamic(_) => {
            if leaf.is_none() && n.dynamic.is_none() {
                return;
            }
            let child = n.dynamic.get_or_insert_with(Arc::default);
            set_leaf(child, rest, leaf);
            if child.is_empty() {
                n.dynamic = None;
            }
        }
        Segment::Static(text) => {
            let child = match n.statics.get_mut(text.as_str()) {
                Some(child) => child,
                None if leaf.is_none() => return,
                None => n.statics.entry(text.as_str().into()).or_default(),
            };
            set_leaf(child, rest, leaf);
            if child.is_empty() {
                n.statics.remove(text.as_str());
            }
        }
    }
}

/// The result of a lookup.
pub enum Lookup<'t> {
    Route(&'t Arc<RouteEntry>),
    /// A pattern matched but none of its routes serves the method.
    MethodNotAllowed(&'t Leaf),
    NotFound,
}

/// An immutable routing snapshot. Cloning it is cheap (everything inside is shared), which
/// is how the [`Registry`] publishes a new one after each change.
#[derive(Clone, Default)]
pub struct RouteTable {
    hosts: ShardedMap<Arc<str>, Arc<Node>>,
    any: Arc<Node>,
    /// Every variant in the table, for the activator.
    pub targets: ShardedMap<Arc<RouteRef>, Arc<Target>>,
    /// Admitted routes.
    pub routes: usize,
    /// Every admitted route by `namespace/name`.
    entries: ShardedMap<Arc<str>, Arc<RouteEntry>>,
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

    fn in_trie<'t>(root: &'t Node, segs: &[&str], method: &Method) -> Option<Lookup<'t>> {
        let leaf = root.find(segs)?;
        Some(match leaf.select(method) {
            Some(route) => Lookup::Route(route),
            None => Lookup::MethodNotAllowed(leaf),
        })
    }

    /// Every admitted route, by `namespace/name`.
    pub fn entries(&self) -> Vec<&Arc<RouteEntry>> {
        let mut all: Vec<&Arc<RouteEntry>> = self.entries.values().collect();
        all.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The admitted route `namespace/name`.
    pub fn entry(&self, key: &str) -> Option<&Arc<RouteEntry>> {
        self.entries.get(key)
    }

    /// A JSON view of the table for operators (admin `/routes`), by route name.
    pub fn to_json(&self) -> serde_json::Value {
        let eps = |t: &Target| -> Vec<String> {
            t.endpoints
                .iter()
                .map(|e| e.authority.to_string())
                .collect()
        };
        let routes: Vec<serde_json::Value> = self
            .entries()
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "name": &*r.key,
                    "pattern": r.pattern_header.to_str().unwrap_or_default(),
                    "host": r.host.as_deref(),
                    "methods": r.methods.as_ref().map(|ms| ms.iter().map(Method::as_str).collect::<Vec<_>>()),
                    "timeoutSeconds": r.timeout.as_secs(),
                    "bodyLimitBytes": r.body_limit,
                    "trailingSlash": r.trailing_slash,
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

/// The route index: every known ApiRoute, the ready endpoints of every variant and the
/// RouteGrants, with the table they give. Events change it with [`Edit`]; only the
/// conflict groups (same host and canonical pattern) an event touches are decided again
/// (with [`admit_granted`], as a full build does: conflicts never cross groups), and only
/// their trie paths are copied. Per-variant state (activator, load, in-flight counters)
/// and per-route metric handles live in the table's entries and outlive changes.
pub struct Registry {
    pub metrics: Arc<Metrics>,
    inner: Mutex<Index>,
}

/// Routes that can conflict: lower-case host (or none) and canonical pattern, as
/// `host pattern` (a space is in neither).
type GroupKey = Arc<str>;

struct Group {
    /// Lower case.
    host: Option<Arc<str>>,
    /// Route keys, sorted (most groups have one).
    members: SmallVec<[Arc<str>; 1]>,
    /// The pattern of the last member to leave, until the group's leaf is removed (the
    /// members' patterns give the leaf's place otherwise; not kept, to save memory).
    vacated: Option<Pattern>,
}

struct Known {
    route: Arc<RouteRecord>,
    /// The last [`Index::generation`] that listed it.
    seen: u64,
    /// `None` when `spec.path` does not parse (never routed).
    group: Option<GroupKey>,
}

#[derive(Default)]
struct Index {
    known: HashMap<Arc<str>, Known, RandomState>,
    groups: HashMap<GroupKey, Group, RandomState>,
    /// Ready endpoints per variant (non-empty lists only), whether routed or not.
    ready: HashMap<Arc<RouteRef>, Box<[Authority]>, RandomState>,
    grants: Vec<RouteGrant>,
    table: RouteTable,
    /// Groups to decide again at the next commit.
    dirty: HashSet<GroupKey, RandomState>,
    /// State of routes and variants that left the table during this edit, reused if they
    /// come back before the commit (a route moving between groups keeps its counters).
    dropped_metrics: HashMap<Arc<str>, Arc<RouteMetrics>, RandomState>,
    dropped_targets: HashMap<Arc<RouteRef>, Arc<Target>, RandomState>,
    /// Bumped by each [`Registry::rebuild`], which marks the routes it lists with it.
    generation: u64,
    /// Targets made during this edit (held requests of the ready ones are woken).
    made: Vec<Arc<Target>>,
}

/// What a commit publishes.
pub struct Update {
    pub table: RouteTable,
    /// Targets that changed and have ready endpoints: their held requests may go.
    pub ready: Vec<Arc<Target>>,
}

/// The group of a route (its key, a new group for it), or `None` when its path does not
/// parse.
fn group_of(route: &RouteRecord) -> Option<(GroupKey, Group)> {
    let pattern = Pattern::parse(&route.path).ok()?;
    let host: Option<Arc<str>> = route.host.as_deref().map(|h| h.to_ascii_lowercase().into());
    let canonical = pattern.canonical();
    let mut key = String::with_capacity(host.as_deref().map_or(0, str::len) + 1 + canonical.len());
    key.push_str(host.as_deref().unwrap_or(""));
    key.push(' ');
    key.push_str(&canonical);
    let group = Group {
        host,
        members: SmallVec::new(),
        vacated: None,
    };
    Some((key.into(), group))
}

fn same_route(a: &Arc<RouteRecord>, b: &Arc<RouteRecord>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

fn same_grants(a: &[RouteGrant], b: &[RouteGrant]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.metadata == y.metadata && x.spec == y.spec)
}

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Registry {
            metrics,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Every variant state (for load reports).
    pub fn variants(&self) -> Vec<Arc<VariantState>> {
        self.lock()
            .table
            .targets
            .values()
            .map(|t| Arc::clone(&t.state))
            .collect()
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
        let mut ready = HashMap::new();
        for route in routes {
            let namespace = Claimant::namespace(route).to_owned();
            let name = Claimant::name(route).to_owned();
            for variant in [Variant::Main, Variant::Preview] {
                let key = RouteRef {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    variant,
                };
                let addrs = endpoints(&key);
                if !addrs.is_empty() {
                    ready.insert(key, addrs);
                }
            }
        }
        let routes = routes.iter().map(RouteRecord::shared);
        self.rebuild(routes, grants.to_vec(), ready).table
    }

    /// Makes the index hold exactly `routes`, `grants` and `ready` (every variant's ready
    /// endpoints): what a full build from them gives. Used when a watch lists (again):
    /// only what differs from the index is applied, so a relist that changed little costs
    /// little, and per-route and per-variant state of routes still routed is kept.
    pub fn rebuild(
        &self,
        routes: impl IntoIterator<Item = Arc<RouteRecord>>,
        grants: Vec<RouteGrant>,
        ready: HashMap<RouteRef, Vec<Authority>>,
    ) -> Update {
        let routes: Vec<Arc<RouteRecord>> = routes.into_iter().collect();
        let mut edit = self.edit();
        let index = &mut *edit.index;
        if index.known.is_empty() {
            // Sized up front: growing maps of this size is a good part of a first build.
            index.known.reserve(routes.len());
            index.groups.reserve(routes.len());
            index.dirty.reserve(routes.len());
            index.ready.reserve(ready.len());
        }
        if !same_grants(&index.grants, &grants) {
            index.grants = grants;
            index.dirty.extend(index.groups.keys().cloned());
        }
        index.generation += 1;
        let now = index.generation;
        for route in routes {
            let key = Arc::clone(route.key());
            match index.known.get_mut(&*key) {
                Some(k) if same_route(&k.route, &route) => {
                    k.seen = now;
                    k.route = route; // the store's copy, not two
                }
                _ => index.apply_keyed(key, route),
            }
        }
        let gone: Vec<Arc<str>> = index
            .known
            .iter()
            .filter(|(_, k)| k.seen != now)
            .map(|(key, _)| Arc::clone(key))
            .collect();
        for key in gone {
            index.forget(&key);
        }
        let stale: Vec<RouteRef> = index
            .ready
            .keys()
            .filter(|k| !ready.contains_key(&***k))
            .map(|k| (**k).clone())
            .collect();
        for key in stale {
            index.set_ready(key, Vec::new());
        }
        for (key, addrs) in ready {
            index.set_ready(key, addrs);
        }
        edit.commit()
    }

    /// Starts a change; [`Edit::commit`] publishes it.
    pub fn edit(&self) -> Edit<'_> {
        Edit {
            timer: self.metrics.table_rebuild_seconds.start_timer(),
            reg: self,
            index: self.lock(),
        }
    }
}

/// A change to the index under way (holds its lock).
pub struct Edit<'r> {
    reg: &'r Registry,
    index: MutexGuard<'r, Index>,
    timer: prometheus::HistogramTimer,
}

impl Edit<'_> {
    /// An ApiRoute was added or changed.
    pub fn apply(&mut self, route: Arc<RouteRecord>) {
        self.index.apply(route);
    }

    /// The ApiRoute `namespace/name` is gone.
    pub fn delete(&mut self, key: &str) {
        self.index.forget(key);
    }

    /// A variant's ready endpoints are now `addrs`.
    pub fn set_endpoints(&mut self, variant: RouteRef, addrs: Vec<Authority>) {
        self.index.set_ready(variant, addrs);
    }

    /// The RouteGrants are now `grants` (every group is decided again).
    pub fn set_grants(&mut self, grants: Vec<RouteGrant>) {
        let index = &mut *self.index;
        index.grants = grants;
        index.dirty.extend(index.groups.keys().cloned());
    }

    /// Applies the change and returns the new snapshot.
    pub fn commit(mut self) -> Update {
        let index = &mut *self.index;
        for group in std::mem::take(&mut index.dirty) {
            index.decide(&group, &self.reg.metrics);
        }
        // Routes that are gone: drop all their series (counters included), so deleted
        // routes do not pile up in /metrics.
        for (_, metrics) in index.dropped_metrics.drain() {
            metrics.remove_series();
        }
        index.dropped_targets.clear();
        let table = &index.table;
        let ready = std::mem::take(&mut index.made)
            .into_iter()
            .filter(|t| {
                !t.endpoints.is_empty()
                    && table
                        .targets
                        .get(&t.state.key)
                        .is_some_and(|now| Arc::ptr_eq(now, t))
            })
            .collect();
        let table = table.clone();
        let metrics = &self.reg.metrics;
        metrics
            .table_routes
            .set(i64::try_from(table.routes).unwrap_or(i64::MAX));
        metrics.table_rebuilds.inc();
        self.timer.observe_duration();
        Update { table, ready }
    }
}

impl Index {
    fn apply(&mut self, route: Arc<RouteRecord>) {
        let key = Arc::clone(route.key());
        // A status update, or one of what the store strips: nothing to decide (keep the
        // store's copy, not two).
        if let Some(known) = self.known.get_mut(&*key)
            && same_route(&known.route, &route)
        {
            known.route = route;
            return;
        }
        self.apply_keyed(key, route);
    }

    fn apply_keyed(&mut self, key: Arc<str>, route: Arc<RouteRecord>) {
        self.forget(&key);
        let group = group_of(&route).map(|(id, new)| {
            let members = &mut self.groups.entry(Arc::clone(&id)).or_insert(new).members;
            if let Err(at) = members.binary_search(&key) {
                members.insert(at, Arc::clone(&key));
            }
            self.dirty.insert(Arc::clone(&id));
            id
        });
        let seen = self.generation;
        self.known.insert(key, Known { route, seen, group });
    }

    /// Removes a route from the index and the table (its group is decided again).
    fn forget(&mut self, key: &str) {
        if let Some(Known {
            route,
            group: Some(group),
            ..
        }) = self.known.remove(key)
        {
            if let Some(g) = self.groups.get_mut(&group) {
                g.members.retain(|k| &**k != key);
                if g.members.is_empty() {
                    g.vacated = Pattern::parse(&route.path).ok();
                }
            }
            self.dirty.insert(group);
        }
        self.unroute(key);
    }

    fn set_ready(&mut self, variant: RouteRef, addrs: Vec<Authority>) {
        // Unique, first occurrence kept: the order is the caller's (sorted from slices,
        // as written in a static file). Lists are a route's replicas: quadratic is fine.
        let mut unique: Vec<Authority> = Vec::with_capacity(addrs.len());
        for a in addrs {
            if !unique.contains(&a) {
                unique.push(a);
            }
        }
        let addrs = unique;
        let same = match self.ready.get(&variant) {
            Some(old) => old[..] == addrs[..],
            None => addrs.is_empty(),
        };
        if same {
            return;
        }
        let key = format!("{}/{}", variant.namespace, variant.name);
        if addrs.is_empty() {
            self.ready.remove(&variant);
        } else {
            // One copy of the names per variant: the state's when there is one.
            let shared = match self.table.targets.get(&variant) {
                Some(t) => Arc::clone(&t.state.key),
                None => Arc::new(variant),
            };
            self.ready.insert(shared, addrs.into_boxed_slice());
        }
        if let Some(Known {
            group: Some(group), ..
        }) = self.known.get(key.as_str())
        {
            self.dirty.insert(Arc::clone(group));
        }
    }

    /// Takes a route out of the table, keeping its state for a return within this edit.
    fn unroute(&mut self, key: &str) {
        let Some(entry) = self.table.entries.remove(key) else {
            return;
        };
        self.table.routes = self.table.entries.len();
        self.dropped_metrics
            .insert(Arc::clone(&entry.key), Arc::clone(&entry.metrics));
        for target in std::iter::once(&entry.main).chain(&entry.preview) {
            let variant = &target.state.key;
            if let Some(t) = self.table.targets.remove(variant) {
                self.dropped_targets.insert(Arc::clone(variant), t);
            }
        }
    }

    /// Decides a group again (as a full build would) and updates its entries and leaf.
    fn decide(&mut self, id: &GroupKey, metrics: &Arc<Metrics>) {
        // Out of the map while its members are routed (put back unless empty).
        let Some(mut group) = self.groups.remove(id) else {
            return;
        };
        let members: Vec<(Arc<str>, Arc<RouteRecord>)> = group
            .members
            .iter()
            .filter_map(|k| Some((Arc::clone(k), Arc::clone(&self.known.get(k)?.route))))
            .collect();
        let admissions = admit_granted(members.iter().map(|(_, r)| &**r), &self.grants);
        let mut routed = Vec::new();
        for ((key, route), admission) in members.iter().zip(admissions) {
            let entry = (admission == Admission::Accepted)
                .then(|| self.route(key, route, metrics))
                .flatten();
            match entry {
                Some(entry) => routed.push(entry),
                None => self.unroute(key),
            }
        }
        let leaf = (!routed.is_empty()).then(|| Arc::new(Leaf::new(routed)));
        // Members share the shape (the canonical pattern).
        let shape = match members.first() {
            Some((_, route)) => Pattern::parse(&route.path).ok(),
            None => group.vacated.take(),
        };
        let Some(shape) = shape else {
            return; // cannot happen: members' paths parse, and the last one's is kept
        };
        let segments = shape.segments();
        match &group.host {
            None => set_leaf(&mut self.table.any, segments, leaf),
            Some(host) => {
                if let Some(root) = self.table.hosts.get_mut(&**host) {
                    set_leaf(root, segments, leaf);
                    if root.is_empty() {
                        self.table.hosts.remove(&**host);
                    }
                } else if leaf.is_some() {
                    let mut root = Arc::default();
                    set_leaf(&mut root, segments, leaf);
                    self.table.hosts.insert(Arc::clone(host), root);
                }
            }
        }
        if !members.is_empty() {
            self.groups.insert(Arc::clone(id), group);
        }
    }

    /// The target of a variant: the current one when its endpoints are unchanged, else a
    /// new one that keeps the variant's state and the endpoints that stay.
    fn target(&mut self, key: RouteRef) -> Arc<Target> {
        let previous = self
            .table
            .targets
            .get(&key)
            .cloned()
            .or_else(|| self.dropped_targets.remove(&key));
        let (ready_key, addrs): (Option<&Arc<RouteRef>>, &[Authority]) =
            match self.ready.get_key_value(&key) {
                Some((k, a)) => (Some(k), a),
                None => (None, &[]),
            };
        // One copy of the names per variant: the state's, else the ready map's.
        let key = match (&previous, ready_key) {
            (Some(p), _) => Arc::clone(&p.state.key),
            (None, Some(k)) => Arc::clone(k),
            (None, None) => Arc::new(key),
        };
        if let Some(prev) = &previous
            && prev.endpoints.len() == addrs.len()
            && prev
                .endpoints
                .iter()
                .zip(addrs)
                .all(|(e, a)| e.authority == *a)
        {
            self.table.targets.insert(key, Arc::clone(prev));
            return Arc::clone(prev);
        }
        let endpoints = addrs
            .iter()
            .map(|a| {
                previous
                    .iter()
                    .flat_map(|p| p.endpoints.iter())
                    .find(|e| e.authority == *a)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(a.clone())))
            })
            .collect();
        let state = previous
            .map(|p| Arc::clone(&p.state))
            .unwrap_or_else(|| Arc::new(VariantState::new(Arc::clone(&key))));
        let target = Arc::new(Target { state, endpoints });
        self.table.targets.insert(key, Arc::clone(&target));
        self.made.push(Arc::clone(&target));
        target
    }

    /// Puts an admitted route in the table's entries (not yet in its leaf); `None` when
    /// it cannot be served (its name or pattern is no header value).
    fn route(
        &mut self,
        key: &Arc<str>,
        route: &RouteRecord,
        metrics: &Arc<Metrics>,
    ) -> Option<Arc<RouteEntry>> {
        let pattern = Pattern::parse(&route.path).ok()?;
        let key = Arc::clone(key);
        let (Ok(name_header), Ok(pattern_header)) = (
            HeaderValue::try_from(&*key),
            HeaderValue::try_from(pattern.to_string()),
        ) else {
            self.unroute(&key);
            return None;
        };
        let namespace = route.namespace().to_owned();
        let name = route.name().to_owned();
        let rref = |variant| RouteRef {
            namespace: namespace.clone(),
            name: name.clone(),
            variant,
        };
        let main = self.target(rref(Variant::Main));
        let preview = if route.preview {
            Some(self.target(rref(Variant::Preview)))
        } else {
            let gone = rref(Variant::Preview);
            if let Some(t) = self.table.targets.remove(&gone) {
                self.dropped_targets.insert(Arc::clone(&t.state.key), t);
            }
            None
        };
        let metrics = self
            .table
            .entries
            .get(&*key)
            .map(|e| Arc::clone(&e.metrics))
            .or_else(|| self.dropped_metrics.remove(&*key))
            .unwrap_or_else(|| metrics.route(&key));
        let methods = effective_methods(route.methods.as_deref()).map(|set| {
            set.iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect::<Box<[Method]>>()
        });
        let params = params_of(&pattern);
        let entry = Arc::new(RouteEntry {
            key: Arc::clone(&key),
            methods,
            name_header,
            pattern_header,
            timeout: Duration::from_secs(u64::try_from(route.timeout_seconds.max(1)).unwrap_or(30)),
            body_limit: route.body_limit.unwrap_or(1 << 20),
            main,
            preview,
            metrics,
            host: route.host.as_ref().map(|h| h.to_ascii_lowercase().into()),
            trailing_slash: route.trailing_slash,
            params,
        });
        self.table.entries.insert(key, Arc::clone(&entry));
        self.table.routes = self.table.entries.len();
        Some(entry)
    }
}

mod sharded;
pub use sharded::ShardedMap;

#[cfg(test)]
mod tests;
