//! The autoscaler at the edges: the HTTP endpoint the gateways push to, the once-a-second
//! decision loop, and the only writes of replicas (the Deployment `scale` subresource).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use apiroutes_crds::{
    ApiRoute, Scaling,
    autoscale::{DEMAND_PATH, Demand, LOAD_PATH, LoadReport, RouteRef},
    labels::{FIELD_MANAGER, ROUTE, VARIANT, Variant, function_object_name},
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::{ObjectRef, Store},
};
use serde_json::json;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cache::CachedDeployment;
use crate::{
    auth::{Authenticator, Verdict},
    autoscale::{Direction, History, Sample, Tracker, recommend, wake_replicas},
    function::{self, scale_unit},
    http::{Body, read_body, respond},
    metrics::Metrics,
};

/// How long a written replica count is trusted over the (possibly lagging) cache.
const WRITTEN_TTL: f64 = 3.0;

#[derive(Default)]
struct State {
    tracker: Tracker,
    histories: HashMap<RouteRef, History>,
    /// Last replicas written per variant, and when.
    written: HashMap<RouteRef, (i32, f64)>,
    /// Variants with a wake-up write in flight.
    waking: HashSet<RouteRef>,
}

pub struct Scaler {
    client: Client,
    routes: Store<ApiRoute>,
    deployments: Store<CachedDeployment>,
    metrics: Arc<Metrics>,
    epoch: Instant,
    state: Mutex<State>,
}

/// The variant a Deployment of ours serves, from its labels; for a shared function's
/// Deployment, the function's [`scale_unit`].
pub fn route_ref(dep: &CachedDeployment) -> Option<RouteRef> {
    let labels = dep.labels();
    if let Some(f) = function::function_label(labels) {
        return Some(RouteRef {
            namespace: dep.namespace()?,
            name: function_object_name(f),
            variant: Variant::Main,
        });
    }
    Some(RouteRef {
        namespace: dep.namespace()?,
        name: labels.get(ROUTE)?.clone(),
        variant: Variant::parse(labels.get(VARIANT)?)?,
    })
}

impl Scaler {
    pub fn new(
        client: Client,
        routes: Store<ApiRoute>,
        deployments: Store<CachedDeployment>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Scaler {
            client,
            routes,
            deployments,
            metrics,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn route(&self, r: &RouteRef) -> Option<Arc<ApiRoute>> {
        self.routes
            .get(&ObjectRef::new(&r.name).within(&r.namespace))
    }

    /// The scaling of a unit (a route variant, or a shared function) and the route
    /// variants whose load it serves. A function scales by its oldest route's `scaling`
    /// (its members agree on it) on the sum of its members' load.
    fn unit(&self, unit: &RouteRef) -> Option<(Scaling, Vec<RouteRef>)> {
        if let Some(route) = self.route(unit) {
            return Some((route.spec.scaling.clone(), vec![unit.clone()]));
        }
        let function = unit.name.strip_prefix(&function_object_name(""))?;
        let all = self.routes.state();
        let members = function::members(&unit.namespace, function, all.iter().map(|r| r.as_ref()));
        let scaling = members.first()?.spec.scaling.clone();
        let refs = members
            .iter()
            .map(|m| RouteRef {
                namespace: unit.namespace.clone(),
                name: m.name_any(),
                variant: Variant::Main,
            })
            .collect();
        Some((scaling, refs))
    }

    /// Current replicas of a variant: the last write if recent, else the cache.
    fn current(&self, state: &State, r: &RouteRef, now: f64) -> Option<i32> {
        let dep = self
            .deployments
            .get(&ObjectRef::new(&r.variant.object_name(&r.name)).within(&r.namespace))?;
        if let Some((n, at)) = state.written.get(r)
            && now - at < WRITTEN_TTL
        {
            return Some(*n);
        }
        Some(dep.replicas.unwrap_or(1))
    }

    async fn write(&self, r: &RouteRef, replicas: i32, cause: &str) -> bool {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &r.namespace);
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        let name = r.variant.object_name(&r.name);
        match api.patch_scale(&name, &pp, &patch).await {
            Ok(_) => {
                self.metrics
                    .scale_writes
                    .with_label_values(&[cause, "ok"])
                    .inc();
                info!(route = %format!("{}/{}", r.namespace, r.name), variant = r.variant.as_str(), replicas, cause, "scaled");
                true
            }
            Err(e) => {
                self.metrics
                    .scale_writes
                    .with_label_values(&[cause, "error"])
                    .inc();
                warn!(route = %format!("{}/{}", r.namespace, r.name), variant = r.variant.as_str(), error = %e, "scale write failed");
                self.lock().written.remove(r);
                false
            }
        }
    }

    /// A demand push: record it and, if the variant (or its shared function) is at zero,
    /// wake it now. The routes of one function share a unit: one write wakes them all.
    pub async fn demand(self: &Arc<Self>, demand: Demand, received: Instant) {
        let now = self.now();
        let route = self.route(&demand.route);
        let unit = match &route {
            Some(r) => scale_unit(r, demand.route.variant),
            None => demand.route.clone(),
        };
        let wake = {
            let mut state = self.lock();
            state.tracker.observe_demand(&demand, now);
            let current = self.current(&state, &unit, now);
            match (current, route) {
                (Some(0), Some(route)) if !state.waking.contains(&unit) => {
                    let n = wake_replicas(&route.spec.scaling);
                    state.waking.insert(unit.clone());
                    state.written.insert(unit.clone(), (n, now));
                    Some(n)
                }
                _ => None,
            }
        };
        if let Some(n) = wake {
            let ok = self.write(&unit, n, "demand").await;
            let took = received.elapsed();
            self.metrics
                .activation_duration
                .with_label_values(&[if ok { "ok" } else { "error" }])
                .observe(took.as_secs_f64());
            info!(
                route = %format!("{}/{}", demand.route.namespace, demand.route.name),
                variant = demand.route.variant.as_str(),
                millis = took.as_secs_f64() * 1000.0,
                "woke from zero"
            );
            self.lock().waking.remove(&unit);
        }
    }

    pub fn load(&self, report: &LoadReport) {
        let now = self.now();
        self.lock().tracker.observe_load(report, now);
    }

    /// One round of decisions over every variant in the cache.
    pub async fn tick(&self) {
        let now = self.now();
        let mut writes = vec![];
        {
            let mut state = self.lock();
            let mut seen = HashSet::new();
            for dep in self.deployments.state() {
                let Some(r) = route_ref(&dep) else { continue };
                let Some((scaling, served)) = self.unit(&r) else {
                    continue;
                };
                let Some(current) = self.current(&state, &r, now) else {
                    continue;
                };
                if state.waking.contains(&r) {
                    continue;
                }
                let sample = served.iter().map(|v| state.tracker.sample(v, now)).fold(
                    Sample {
                        at: now,
                        ..Sample::default()
                    },
                    add_samples,
                );
                let history = state
                    .histories
                    .entry(r.clone())
                    .or_insert_with(|| History::new(now));
                history.push(sample);
                let decision = recommend(history, &scaling, current, now);
                history.panic_since = decision.panic_since;
                self.metrics
                    .decisions
                    .with_label_values(&[decision.direction.as_str()])
                    .inc();
                let key = format!("{}/{}", r.namespace, r.name);
                let gauge = |kind: &str, v: i32| {
                    self.metrics
                        .route_replicas
                        .with_label_values(&[key.as_str(), r.variant.as_str(), kind])
                        .set(f64::from(v));
                };
                gauge("current", current);
                gauge("desired", decision.desired);
                if decision.direction != Direction::None {
                    state.written.insert(r.clone(), (decision.desired, now));
                    writes.push((r.clone(), decision.desired));
                }
                seen.insert(r);
            }
            state.histories.retain(|r, _| {
                let keep = seen.contains(r);
                if !keep {
                    let key = format!("{}/{}", r.namespace, r.name);
                    for kind in ["current", "desired"] {
                        let _ = self.metrics.route_replicas.remove_label_values(&[
                            key.as_str(),
                            r.variant.as_str(),
                            kind,
                        ]);
                    }
                }
                keep
            });
            state.written.retain(|r, _| seen.contains(r));
        }
        for (r, n) in writes {
            self.write(&r, n, "decision").await;
        }
    }

    /// Decides once a second until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => self.tick().await,
            }
        }
    }
}

/// The load of a unit serving several route variants: theirs added up.
pub fn add_samples(a: Sample, b: Sample) -> Sample {
    Sample {
        at: a.at,
        concurrency: a.concurrency + b.concurrency,
        requests: a.requests + b.requests,
        held: a.held + b.held,
    }
}

/// The autoscaler endpoint: 503 until this instance leads (gateways retry), then 202 for
/// well-formed pushes.
pub async fn handle(
    scaler: Arc<OnceLock<Arc<Scaler>>>,
    auth: Option<Arc<Authenticator>>,
    metrics: Arc<Metrics>,
    req: Request<Incoming>,
) -> Response<Body> {
    let received = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    if method != Method::POST || (path != DEMAND_PATH && path != LOAD_PATH) {
        return respond(StatusCode::NOT_FOUND, "not found\n");
    }
    if let Some(auth) = auth {
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let verdict = auth.check(header).await;
        let (status, why) = match &verdict {
            Verdict::Allowed => (None, String::new()),
            Verdict::Unauthenticated(why) => (Some(StatusCode::UNAUTHORIZED), (*why).to_owned()),
            Verdict::Forbidden(why) => (Some(StatusCode::FORBIDDEN), why.clone()),
            Verdict::Unavailable(why) => (Some(StatusCode::SERVICE_UNAVAILABLE), why.clone()),
        };
        if let Some(status) = status {
            metrics
                .autoscaler_rejected
                .with_label_values(&[verdict.reason()])
                .inc();
            warn!(%status, reason = %why, "refused a push to the autoscaler");
            let mut r = respond(status, format!("{why}\n"));
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
            }
            return r;
        }
    }
    let Some(scaler) = scaler.get().cloned() else {
        let mut r = respond(StatusCode::SERVICE_UNAVAILABLE, "not the leader\n");
        r.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        return r;
    };
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if path == DEMAND_PATH {
        match serde_json::from_slice::<Demand>(&body) {
            Ok(d) => {
                tokio::spawn(async move { scaler.demand(d, received).await });
            }
            Err(e) => return respond(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    } else {
        match serde_json::from_slice::<LoadReport>(&body) {
            Ok(l) => scaler.load(&l),
            Err(e) => return respond(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }
    respond(StatusCode::ACCEPTED, bytes::Bytes::new())
}
