//! The reconciler: each ApiRoute → its Deployments and Services (server-side apply) and
//! its status. Replicas are never written here (see [`crate::scaler`]).

use std::{collections::HashMap, sync::Arc, time::Duration};

use apiroutes_crds::{
    ApiRoute, Pattern, RouteGrant,
    conflict::{Admission, admit_granted},
    grant::{REASON_HOST_NOT_ALLOWED, REASON_PATH_NOT_ALLOWED},
    labels::{
        FIELD_MANAGER, FUNCTION, MANAGED_BY, MANAGED_BY_VALUE, ROUTE, VARIANT, Variant,
        function_object_name,
    },
};
use apiroutes_kit::reflect::{Ready, Touched};
use futures::{Stream, StreamExt, stream};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Pod, Service},
        networking::v1::NetworkPolicy,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{
        controller::{Action, Controller},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde_json::json;
use tokio::sync::Mutex;
use tracing::{debug, instrument, warn};

use crate::{
    cache::{CachedDeployment, CachedService},
    error::{Error, Result},
    events::{EventType, Events, Pending},
    function::{self, Group, Membership},
    groups::{self, PatternGroups},
    metrics::Metrics,
    reasons::*,
    resources::{
        self, Config, desired_deployment, desired_network_policy, desired_service, wanted_variants,
    },
    status::{self, Observed, compute_status},
};

/// Success requeue: a safety net only, watches drive everything.
pub const RESYNC: Duration = Duration::from_secs(600);

/// What every reconciliation shares.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub routes: Store<ApiRoute>,
    /// The cluster's RouteGrants (cluster-scoped; none: isolation off).
    pub grants: Store<RouteGrant>,
    pub deployments: Store<CachedDeployment>,
    pub services: Store<CachedService>,
    pub pods: Store<Pod>,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per route, for back-off.
    pub failures: Mutex<HashMap<ObjectRef<ApiRoute>, u32>>,
    /// Whether the caches of grants, children and pods have listed (the controller itself
    /// only waits for ApiRoutes).
    pub listed: Vec<Ready>,
    /// The hash of the NetworkPolicy last applied per route (no cache of them is kept: after a
    /// restart each is applied once more, a no-op for the API server).
    pub policies: Mutex<HashMap<ObjectRef<ApiRoute>, String>>,
    /// The routes by canonical pattern (written by [`route_triggers`]).
    pub groups: Arc<std::sync::Mutex<PatternGroups>>,
}

impl Context {
    /// The cached routes that share `route`'s canonical pattern (not `route` itself), and
    /// the number of routes.
    fn siblings(&self, route: &ApiRoute) -> (Vec<Arc<ApiRoute>>, usize) {
        let groups = lock(&self.groups);
        let siblings = match groups::canonical(route) {
            Some(c) => groups.members(&[c], &ObjectRef::from_obj(route), &self.routes),
            None => vec![],
        };
        (siblings, groups.len())
    }
}

impl Context {
    /// Waits until the caches of children and pods have listed once, so that the first
    /// reconciles after a start do not mistake "not cached yet" for "missing" (which
    /// would publish spurious Created events and skip deletions), and the grants (before
    /// they are known, a route could be accepted that isolation denies).
    pub async fn wait_synced(&self) {
        Ready::all(&self.listed).await;
    }
}

/// The admission of `route` among `all` (every cached route that may conflict with it:
/// its pattern group; the route itself is included in case the cache lacks it).
pub fn admission_for(
    route: &ApiRoute,
    all: &[Arc<ApiRoute>],
    grants: &[Arc<RouteGrant>],
) -> Admission {
    let me = ObjectRef::from_obj(route);
    let mut routes: Vec<&ApiRoute> = vec![route];
    routes.extend(
        all.iter()
            .map(|r| r.as_ref())
            .filter(|r| ObjectRef::from_obj(*r) != me),
    );
    admit_granted(routes, grants).swap_remove(0)
}

/// The routes to reconcile when `touched` changed: itself, and, for live changes, every
/// other route with the same canonical pattern (a conflict's outcome may have changed;
/// e.g. the winner went away).
pub fn fan_out(touched: &Touched<ApiRoute>, all: &[Arc<ApiRoute>]) -> Vec<ApiRoute> {
    let mut out = vec![];
    if !touched.deleted {
        out.push(ApiRoute::clone(&touched.obj));
    }
    if touched.initial {
        return out;
    }
    // The current pattern, and the previous one if the path changed.
    let mut canonicals: Vec<String> = [Some(&*touched.obj), touched.previous.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(|r| Pattern::parse(&r.spec.path).ok())
        .map(|p| p.canonical())
        .collect();
    canonicals.dedup();
    if canonicals.is_empty() {
        return out;
    }
    let me = ObjectRef::from_obj(&*touched.obj);
    out.extend(
        all.iter()
            .filter(|r| ObjectRef::from_obj(r.as_ref()) != me)
            .filter(|r| {
                Pattern::parse(&r.spec.path).is_ok_and(|p| canonicals.contains(&p.canonical()))
            })
            .map(|r| (**r).clone()),
    );
    out
}

/// Every route, whenever a RouteGrant changes (any route's admission may change).
pub fn grant_triggers(
    touched: impl Stream<Item = Result<Touched<RouteGrant>, watcher::Error>> + Send + 'static,
    routes: Store<ApiRoute>,
) -> impl Stream<Item = Result<ApiRoute, watcher::Error>> + Send + 'static {
    touched.flat_map(move |t| {
        stream::iter(match t {
            Ok(_) => routes
                .state()
                .iter()
                .map(|r| Ok(r.as_ref().clone()))
                .collect(),
            Err(e) => vec![Err(e)],
        })
    })
}

/// The ApiRoute trigger stream: touched routes fanned out to their pattern siblings. Keeps
/// `groups` in step with the watch.
pub fn route_triggers(
    touched: impl Stream<Item = Result<Touched<ApiRoute>, watcher::Error>> + Send + 'static,
    routes: Store<ApiRoute>,
    groups: Arc<std::sync::Mutex<PatternGroups>>,
) -> impl Stream<Item = Result<ApiRoute, watcher::Error>> + Send + 'static {
    touched.flat_map(move |t| {
        stream::iter(match t {
            Ok(t) => {
                let mut groups = lock(&groups);
                // The groups of the pattern before and after the change.
                let canonicals: Vec<String> = [Some(&*t.obj), t.previous.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter_map(groups::canonical)
                    .collect();
                groups.update(&t);
                let candidates =
                    groups.members(&canonicals, &ObjectRef::from_obj(&*t.obj), &routes);
                let mut out = fan_out(&t, &candidates);
                if [Some(&*t.obj), t.previous.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|r| r.spec.function.is_some())
                {
                    out.extend(function_siblings(&t, &routes.state()));
                }
                out.into_iter().map(Ok).collect::<Vec<_>>()
            }
            Err(e) => vec![Err(e)],
        })
    })
}

/// The route a pod belongs to, from its labels.
pub fn pod_route(pod: &Pod) -> Option<ObjectRef<ApiRoute>> {
    let name = pod.labels().get(ROUTE)?;
    Some(ObjectRef::new(name).within(&pod.namespace()?))
}

/// The routes a pod serves: its route, or every route of its shared function in `all`.
pub fn pod_routes(pod: &Pod, all: &[Arc<ApiRoute>]) -> Vec<ObjectRef<ApiRoute>> {
    let (Some(function), Some(ns)) = (function::function_label(pod.labels()), pod.namespace())
    else {
        return pod_route(pod).into_iter().collect();
    };
    function::members(&ns, function, all.iter().map(|r| r.as_ref()))
        .into_iter()
        .map(ObjectRef::from_obj)
        .collect()
}

/// The other routes of the shared functions `touched` names now or named before: their
/// shared Deployment's owners (and perhaps its reference route) changed.
pub fn function_siblings(touched: &Touched<ApiRoute>, all: &[Arc<ApiRoute>]) -> Vec<ApiRoute> {
    if touched.initial {
        return vec![];
    }
    let me = ObjectRef::from_obj(&*touched.obj);
    let mut functions: Vec<&str> = [Some(&*touched.obj), touched.previous.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(|r| r.spec.function.as_deref())
        .collect();
    functions.dedup();
    let Some(ns) = touched.obj.metadata.namespace.as_deref() else {
        return vec![];
    };
    functions
        .into_iter()
        .flat_map(|f| function::members(ns, f, all.iter().map(|r| r.as_ref())))
        .filter(|r| ObjectRef::from_obj(*r) != me)
        .cloned()
        .collect()
}

/// Builds the controller over the given trigger streams.
pub fn controller(
    routes: impl Stream<Item = Result<ApiRoute, watcher::Error>> + Send + 'static,
    deployments: impl Stream<Item = Result<CachedDeployment, watcher::Error>> + Send + 'static,
    services: impl Stream<Item = Result<CachedService, watcher::Error>> + Send + 'static,
    pods: impl Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
    store: Store<ApiRoute>,
) -> Controller<ApiRoute> {
    let all = store.clone();
    Controller::for_stream(routes, store)
        .owns_stream(deployments)
        .owns_stream(services)
        .watches_stream(pods, move |pod| {
            // The store's snapshot only for the pods of shared functions.
            if function::function_label(pod.labels()).is_some() {
                pod_routes(&pod, &all.state())
            } else {
                pod_route(&pod).into_iter().collect()
            }
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(32))
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Publishes an Event in the background: Events are for people, and a reconcile does not
/// wait for (or fail on) them.
fn publish(ctx: &Context, route: &ApiRoute, type_: EventType, reason: &str, note: String) {
    ctx.events.publish(Pending {
        regarding: route.object_ref(&()),
        type_,
        reason: reason.to_owned(),
        note,
    });
}

/// Deletes the Deployment and Service of `variant` if the caches have them.
async fn delete_variant(ctx: &Context, route: &ApiRoute, ns: &str, variant: Variant) -> Result<()> {
    let name = variant.object_name(&route.name_any());
    let key_d = ObjectRef::<CachedDeployment>::new(&name).within(ns);
    let key_s = ObjectRef::<CachedService>::new(&name).within(ns);
    let owned = |meta: &kube::api::ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(VARIANT))
            .map(String::as_str)
            == Some(variant.as_str())
    };
    let mut deleted = vec![];
    if ctx
        .deployments
        .get(&key_d)
        .is_some_and(|d| owned(&d.metadata))
    {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(format!("Deployment {name}")),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if ctx.services.get(&key_s).is_some_and(|s| owned(&s.metadata)) {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(format!("Service {name}")),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !deleted.is_empty() {
        publish(
            ctx,
            route,
            EventType::Normal,
            EVENT_DELETED,
            format!("deleted {}", deleted.join(" and ")),
        );
    }
    Ok(())
}

/// Applies the Deployment and Service of `variant`; returns the applied Deployment.
async fn apply_variant(
    ctx: &Context,
    route: &ApiRoute,
    ns: &str,
    variant: Variant,
) -> Result<CachedDeployment> {
    let name = variant.object_name(&route.name_any());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let before = ctx.deployments.get(&ObjectRef::new(&name).within(ns));
    let svc_before = ctx.services.get(&ObjectRef::new(&name).within(ns));

    // Apply only what differs from the cache: after a restart, or for the many triggers
    // that are the Deployment controller updating status, nothing is sent. The desired
    // objects carry the hash of themselves (`resources::APPLIED_HASH`), so `covers` also
    // fails when a field was removed from the spec since the last apply, which then
    // removes it (server-side apply drops fields our manager no longer sends).
    let desired = desired_deployment(route, variant, &ctx.config);
    let service = desired_service(route, variant, &ctx.config);
    let deployment = async {
        match before.as_deref() {
            Some(b) if resources::covers_json(&b.json(), &desired) => Ok(b.clone()),
            _ => deployments
                .patch(&name, &pp, &Patch::Apply(&desired))
                .await
                .map(CachedDeployment::from),
        }
    };
    let service = async {
        if svc_before
            .as_deref()
            .is_some_and(|s| resources::covers_json(&s.json(), &service))
        {
            return Ok(());
        }
        services
            .patch(&name, &pp, &Patch::Apply(&service))
            .await
            .map(|_| ())
    };
    let (applied, ()) = futures::future::try_join(deployment, service).await?;

    match before {
        None => {
            let what = if svc_before.is_none() {
                "Deployment and Service"
            } else {
                "Deployment"
            };
            publish(
                ctx,
                route,
                EventType::Normal,
                EVENT_CREATED,
                format!("created {what} {name}"),
            );
        }
        Some(b) if b.metadata.generation < applied.metadata.generation => {
            publish(
                ctx,
                route,
                EventType::Normal,
                EVENT_UPDATED,
                format!(
                    "updated Deployment {name} (generation {})",
                    applied.metadata.generation.unwrap_or_default()
                ),
            );
        }
        Some(_) => {}
    }
    Ok(applied)
}

/// Applies the shared Deployment of `group` and the route's own Service (selecting the
/// function's pods); removes what the route ran before it joined the function (its own
/// main Deployment, its preview variant). Returns the applied Deployment.
async fn apply_function(
    ctx: &Context,
    route: &ApiRoute,
    ns: &str,
    group: &Group,
) -> Result<CachedDeployment> {
    let name = function_object_name(&group.function);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let before = ctx.deployments.get(&ObjectRef::new(&name).within(ns));
    let desired = function::desired_function_deployment(group, &ctx.config);
    let applied = match before.as_deref() {
        Some(b) if resources::covers_json(&b.json(), &desired) => b.clone(),
        _ => {
            let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
            let applied =
                CachedDeployment::from(api.patch(&name, &pp, &Patch::Apply(&desired)).await?);
            if before.is_none() {
                publish(
                    ctx,
                    route,
                    EventType::Normal,
                    EVENT_CREATED,
                    format!("created Deployment {name} of function {}", group.function),
                );
            }
            applied
        }
    };
    let service_name = Variant::Main.object_name(&route.name_any());
    let service = desired_service(route, Variant::Main, &ctx.config);
    let svc_before = ctx.services.get(&ObjectRef::new(&service_name).within(ns));
    if !svc_before
        .as_deref()
        .is_some_and(|s| resources::covers_json(&s.json(), &service))
    {
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
        api.patch(&service_name, &pp, &Patch::Apply(&service))
            .await?;
    }
    delete_deployment(ctx, route, ns, &service_name).await?;
    delete_variant(ctx, route, ns, Variant::Preview).await?;
    Ok(applied)
}

/// Deletes the cached Deployment `name` when it is the operator's and owned by `route`
/// (the route's own Deployment after it joined a function, or a function's that no route
/// names any more).
async fn delete_deployment(ctx: &Context, route: &ApiRoute, ns: &str, name: &str) -> Result<()> {
    let key = ObjectRef::<CachedDeployment>::new(name).within(ns);
    let uid = route.metadata.uid.as_deref();
    let ours = ctx.deployments.get(&key).is_some_and(|d| {
        d.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && d.owner_references()
                .iter()
                .any(|o| Some(o.uid.as_str()) == uid)
    });
    if !ours {
        return Ok(());
    }
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            publish(
                ctx,
                route,
                EventType::Normal,
                EVENT_DELETED,
                format!("deleted Deployment {name}"),
            );
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Applies the route's NetworkPolicy when the operator is configured with the gateways'
/// pods and the policy differs from the one last applied.
async fn apply_network_policy(ctx: &Context, route: &ApiRoute, ns: &str) -> Result<()> {
    let Some(peer) = &ctx.config.gateway_peer else {
        return Ok(());
    };
    let desired = desired_network_policy(route, peer);
    let key = ObjectRef::from_obj(route);
    // Its hash, not the object: 10,000 routes would keep 10,000 NetworkPolicies.
    let hash = resources::applied_hash(&desired);
    if ctx.policies.lock().await.get(&key) == Some(&hash) {
        return Ok(());
    }
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        &route.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await?;
    ctx.policies.lock().await.insert(key, hash);
    Ok(())
}

/// Reconciles one ApiRoute.
#[instrument(skip(route, ctx), fields(route = %route.key()))]
pub async fn reconcile(route: Arc<ApiRoute>, ctx: Arc<Context>) -> Result<Action> {
    ctx.wait_synced().await;
    let _timer = ctx.metrics.reconcile_timer();
    let ns = ResourceExt::namespace(route.as_ref())
        .ok_or_else(|| Error::MissingNamespace(route.name_any()))?;
    if route.metadata.deletion_timestamp.is_some() {
        // Children go with it through garbage collection.
        return Ok(Action::await_change());
    }
    let (siblings, count) = ctx.siblings(&route);
    ctx.metrics.routes.set(count as f64);
    let admission = admission_for(&route, &siblings, &ctx.grants.state());

    let all_routes = ctx.routes.state();
    let membership = function::membership(&route, &all_routes);
    for orphan in function::orphaned(
        &route,
        ctx.deployments.state().iter().map(|d| d.as_ref()),
        &all_routes,
    ) {
        delete_deployment(&ctx, &route, &ns, &orphan).await?;
    }
    let mut main = None;
    let mut mismatch = None;
    if admission == Admission::Accepted && route.spec.function.is_some() {
        match &membership {
            Membership::Shared(group) => {
                apply_network_policy(&ctx, &route, &ns).await?;
                main = Some(apply_function(&ctx, &route, &ns, group).await?);
            }
            // Nothing is written or deleted: while `deploy --group` updates the routes one
            // by one, they disagree for a moment and the function must keep serving.
            Membership::Mismatch {
                function,
                reference,
                field,
            } => {
                mismatch = Some(format!(
                    "{field} differs from that of ApiRoute {reference}, the oldest route of function {function}; \
                     the routes of a function must agree on image, port, env, envFrom, resources, \
                     readinessPath, readOnlyRootFilesystem and scaling (apiroutes deploy --group makes them agree)"
                ));
            }
            Membership::Own => {}
        }
    } else if admission == Admission::Accepted {
        apply_network_policy(&ctx, &route, &ns).await?;
        let wanted = wanted_variants(&route);
        for variant in [Variant::Main, Variant::Preview] {
            if wanted.contains(&variant) {
                let applied = apply_variant(&ctx, &route, &ns, variant).await?;
                if variant == Variant::Main {
                    main = Some(applied);
                }
            } else {
                delete_variant(&ctx, &route, &ns, variant).await?;
            }
        }
    } else {
        // Not routed: run nothing for it (it is recreated when the route is accepted).
        for variant in [Variant::Main, Variant::Preview] {
            delete_variant(&ctx, &route, &ns, variant).await?;
        }
    }

    let pods = ctx.pods.state();
    let name = route.name_any();
    // The pods serving the route: its own, or its function's.
    let (owner_label, owner) = match &route.spec.function {
        Some(f) => (FUNCTION, f),
        None => (ROUTE, &name),
    };
    let pods: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| {
            p.namespace().as_deref() == Some(ns.as_str())
                && p.labels().get(owner_label) == Some(owner)
                && p.labels().get(VARIANT).map(String::as_str) == Some(Variant::Main.as_str())
        })
        .collect();
    let now = Time(Timestamp::now());
    let observed = Observed {
        admission: &admission,
        deployment: main.as_ref(),
        pods: &pods,
        function_mismatch: mismatch.as_deref(),
    };
    let new = compute_status(&route, observed, &ctx.config, &now);
    if route.status.as_ref() != Some(&new) {
        let api: Api<ApiRoute> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({
            "apiVersion": ApiRoute::api_version(&()),
            "kind": ApiRoute::kind(&()),
            "status": new,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        announce_acceptance(&ctx, &route, &new);
    }
    Ok(Action::requeue(RESYNC))
}

/// Events for changes of the Accepted condition.
fn announce_acceptance(ctx: &Context, route: &ApiRoute, new: &apiroutes_crds::ApiRouteStatus) {
    let old = status::find(route.status.as_ref(), ACCEPTED);
    let Some(cond) = new.conditions.iter().find(|c| c.type_ == ACCEPTED) else {
        return;
    };
    if old.is_some_and(|o| o.reason == cond.reason && o.message == cond.message) {
        return;
    }
    match cond.reason.as_str() {
        REASON_CONFLICT => {
            publish(
                ctx,
                route,
                EventType::Warning,
                EVENT_CONFLICT,
                cond.message.clone(),
            );
        }
        REASON_INVALID_SPEC => {
            publish(
                ctx,
                route,
                EventType::Warning,
                EVENT_INVALID_SPEC,
                cond.message.clone(),
            );
        }
        reason @ (REASON_HOST_NOT_ALLOWED | REASON_PATH_NOT_ALLOWED) => {
            publish(ctx, route, EventType::Warning, reason, cond.message.clone());
        }
        _ if old.is_some() => {
            publish(
                ctx,
                route,
                EventType::Normal,
                EVENT_ACCEPTED,
                cond.message.clone(),
            );
        }
        _ => {}
    }
}

/// Back-off for a route that failed `n` times in a row: 1 s doubling up to 5 min.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.min(8)).min(Duration::from_secs(300))
}

/// Counts the failure and requeues with back-off.
pub fn error_policy(route: Arc<ApiRoute>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconciliations
        .with_label_values(&["error"])
        .inc();
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[error.metric_label().as_str()])
        .inc();
    let key = ObjectRef::from_obj(route.as_ref());
    let n = match ctx.failures.try_lock() {
        Ok(mut f) => {
            let n = f.entry(key).or_insert(0);
            *n += 1;
            *n
        }
        Err(_) => 1,
    };
    warn!(route = %route.key(), error = %error, failures = n, "reconcile failed");
    Action::requeue(backoff(n))
}

/// Records a success (resets the back-off).
pub async fn record_success(ctx: &Context, key: &ObjectRef<ApiRoute>) {
    ctx.metrics.reconciliations.with_label_values(&["ok"]).inc();
    ctx.failures.lock().await.remove(key);
}

/// Logs one controller result.
pub async fn on_result(
    ctx: Arc<Context>,
    res: Result<
        (ObjectRef<ApiRoute>, Action),
        kube::runtime::controller::Error<Error, watcher::Error>,
    >,
) {
    match res {
        Ok((key, _)) => record_success(&ctx, &key).await,
        Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        // A deleted route's children still change (they are being removed) and point back
        // at it: expected, not news.
        Err(e @ kube::runtime::controller::Error::ObjectNotFound(..)) => {
            debug!(error = %e, "controller")
        }
        Err(e) => warn!(error = %e, "controller"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use apiroutes_crds::testing::route;

    use super::*;

    fn arcs(v: &[&ApiRoute]) -> Vec<Arc<ApiRoute>> {
        v.iter().map(|r| Arc::new((*r).clone())).collect()
    }

    fn keys(v: &[ApiRoute]) -> Vec<String> {
        v.iter().map(|r| r.key()).collect()
    }

    #[test]
    fn admission_is_computed_over_the_whole_cache() {
        let old = route("old", "/api/[id]").created(1);
        let new = route("new", "/api/[slug]").created(2);
        let other = route("other", "/api/x").created(0);
        let all = arcs(&[&old, &new, &other]);
        assert_eq!(admission_for(&old, &all, &[]), Admission::Accepted);
        assert_eq!(
            admission_for(&new, &all, &[]),
            Admission::Conflict {
                winner: "default/old".into()
            }
        );
        // The winner went away: the cache no longer has it.
        assert_eq!(
            admission_for(&new, &arcs(&[&new, &other]), &[]),
            Admission::Accepted
        );
        // A route not yet in the cache is still judged.
        assert_eq!(
            admission_for(&new, &arcs(&[&old]), &[]),
            Admission::Conflict {
                winner: "default/old".into()
            }
        );
    }

    #[test]
    fn fan_out_reaches_pattern_siblings_on_live_changes_only() {
        let a = route("a", "/api/[id]").created(1);
        let b = route("b", "/api/[slug]").created(2);
        let c = route("c", "/api/x").created(3);
        let all = arcs(&[&b, &c]);
        let t = |obj: &ApiRoute, initial, deleted| Touched {
            obj: Arc::new(obj.clone()),
            initial,
            deleted,
            previous: None,
        };
        // The winner is deleted: its sibling is reconciled, not the unrelated route.
        assert_eq!(keys(&fan_out(&t(&a, false, true), &all)), vec!["default/b"]);
        assert_eq!(
            keys(&fan_out(&t(&a, false, false), &all)),
            vec!["default/a", "default/b"]
        );
        // Initial lists touch every route anyway.
        assert_eq!(keys(&fan_out(&t(&a, true, false), &all)), vec!["default/a"]);
        let bad = route("bad", "/api/[...x]/y");
        assert_eq!(
            keys(&fan_out(&t(&bad, false, false), &all)),
            vec!["default/bad"]
        );
    }

    #[test]
    fn pod_maps_to_its_route_and_backoff_grows_bounded() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "shop", "labels": {"apiroutes.dev/route": "r"}}
        }))
        .unwrap();
        assert_eq!(pod_route(&pod), Some(ObjectRef::new("r").within("shop")));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(20), Duration::from_secs(256));
    }
}
