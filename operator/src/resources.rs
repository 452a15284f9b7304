//! The desired children of an ApiRoute: pure functions from the route to the Deployment and
//! headless Service the operator applies (server-side, field manager
//! [`FIELD_MANAGER`](apiroutes_crds::labels::FIELD_MANAGER)).
//!
//! The Deployment has no `spec.replicas`: replicas belong to the autoscaler, which writes
//! them through the scale subresource. Leaving the field out of the applied configuration
//! means the apply never takes ownership of it and never resets it.
//!
//! Each Deployment and Service carries, in the annotation [`APPLIED_HASH`], a hash of the
//! rest of its desired object ([`applied_hash`]). The reconciler skips an apply only when
//! the live object [`covers`] the desired one, annotation included: a field removed from
//! the route's spec leaves the live object a superset of the desired one, but changes the
//! hash, so the apply is sent and server-side apply removes the field (the operator's
//! field manager owns it).
//! Children applied by an operator without the annotation get it in one more apply
//! (metadata only: no new ReplicaSet).

use std::collections::BTreeMap;

use apiroutes_crds::{
    ApiRoute,
    labels::{FUNCTION, MANAGED_BY, MANAGED_BY_VALUE, ROUTE, VARIANT, Variant},
};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction,
            Lifecycle, LifecycleHandler, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
            SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec, SleepAction,
            TCPSocketAction, Volume, VolumeMount,
        },
        networking::v1::{
            NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
            NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::{Resource, ResourceExt, api::ObjectMeta};

/// Name of the function's container in every pod.
pub const CONTAINER_NAME: &str = "function";
/// Name of the container port and of the Service port.
pub const PORT_NAME: &str = "http";
/// The unprivileged user functions run as (the `nonroot` user of distroless images).
pub const RUN_AS_USER: i64 = 65532;
/// The emptyDir on `/tmp` of a route with `readOnlyRootFilesystem`.
const TMP_VOLUME: &str = "tmp";
/// Extra seconds, beyond the request deadline, that a pod gets to drain on SIGTERM.
pub const DRAIN_MARGIN_SECONDS: i64 = 10;
/// How long a function pod that is being stopped keeps serving before its SIGTERM. Its
/// endpoint turns `terminating` as the pod is deleted, and every gateway has to see that
/// (EndpointSlice controller, watch, table update: under a second here, a few seconds on a
/// busy cluster) before the function stops accepting; until then new requests still come.
pub const PRE_STOP_SECONDS: i64 = 5;

/// Annotation on each applied Deployment and Service: [`applied_hash`] of the rest of the
/// desired object.
pub const APPLIED_HASH: &str = "apiroutes.dev/applied-hash";

/// Operator-wide settings the builders need.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Base URL of the gateway, for `status.url` (e.g. `http://127.0.0.1:8080`).
    pub gateway_url: Option<String>,
    /// The gateways' pods: when set, every route gets a NetworkPolicy admitting only them.
    pub gateway_peer: Option<GatewayPeer>,
}

/// Where the gateways run: their namespace and their pods' labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayPeer {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// The variants a route asks for: always `main`, plus `preview` when `spec.preview` is set.
pub fn wanted_variants(route: &ApiRoute) -> Vec<Variant> {
    let mut v = vec![Variant::Main];
    if route.spec.preview.is_some() {
        v.push(Variant::Preview);
    }
    v
}

/// Labels on the Deployment, its pods and the Service of one variant of a route.
pub fn labels(route: &ApiRoute, variant: Variant) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (ROUTE.to_owned(), route.name_any()),
        (VARIANT.to_owned(), variant.as_str().to_owned()),
    ])
}

fn metadata(route: &ApiRoute, variant: Variant) -> ObjectMeta {
    ObjectMeta {
        name: Some(variant.object_name(&route.name_any())),
        namespace: route.namespace(),
        labels: Some(labels(route, variant)),
        owner_references: route.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The container's environment: `PORT` (always the operator's), then `spec.env`, then for
/// the preview variant `spec.preview.env`, which overrides same-named entries. Names are
/// unique, as server-side apply requires (`env` is a list keyed by name).
pub fn environment(route: &ApiRoute, variant: Variant) -> Vec<EnvVar> {
    let mut env = vec![EnvVar {
        name: "PORT".to_owned(),
        value: Some(route.spec.port.to_string()),
        value_from: None,
    }];
    let preview_env = match (variant, &route.spec.preview) {
        (Variant::Preview, Some(p)) => p.env.as_slice(),
        _ => &[],
    };
    for var in route.spec.env.iter().chain(preview_env) {
        if var.name == "PORT" {
            continue;
        }
        match env.iter_mut().find(|e| e.name == var.name) {
            Some(existing) => *existing = var.clone(),
            None => env.push(var.clone()),
        }
    }
    env
}

fn readiness_probe(route: &ApiRoute) -> Probe {
    let port = IntOrString::String(PORT_NAME.to_owned());
    let (http_get, tcp_socket) = match &route.spec.readiness_path {
        Some(path) => (
            Some(HTTPGetAction {
                path: Some(path.clone()),
                port,
                ..HTTPGetAction::default()
            }),
            None,
        ),
        None => (None, Some(TCPSocketAction { port, host: None })),
    };
    Probe {
        http_get,
        tcp_socket,
        // Cold starts wait for readiness: probe often so a woken replica is used at once.
        period_seconds: Some(1),
        timeout_seconds: Some(1),
        success_threshold: Some(1),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The Deployment of one variant of `route`, with its [`APPLIED_HASH`].
pub fn desired_deployment(route: &ApiRoute, variant: Variant, config: &Config) -> Deployment {
    stamped(deployment(route, variant, config))
}

/// The pod's termination grace: the pre-stop sleep, a request's deadline, and a margin.
pub fn grace_seconds(timeout_seconds: i32) -> i64 {
    PRE_STOP_SECONDS + i64::from(timeout_seconds) + DRAIN_MARGIN_SECONDS
}

/// [`desired_deployment`] without the hash (also the base of a shared function's).
pub fn deployment(route: &ApiRoute, variant: Variant, _config: &Config) -> Deployment {
    let labels = labels(route, variant);
    let image = match (variant, &route.spec.preview) {
        (Variant::Preview, Some(p)) => p.image.clone(),
        _ => route.spec.image.clone(),
    };
    let read_only = route.spec.read_only_root_filesystem;
    let container = Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(image),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_owned()),
            container_port: route.spec.port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        env: Some(environment(route, variant)),
        env_from: (!route.spec.env_from.is_empty()).then(|| route.spec.env_from.clone()),
        resources: route.spec.resources.clone(),
        readiness_probe: Some(readiness_probe(route)),
        // The kubelet's own sleep: function images need no shell or `sleep` binary.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(read_only),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        // A read-only root filesystem still leaves the function a scratch directory.
        volume_mounts: read_only.then(|| {
            vec![VolumeMount {
                name: TMP_VOLUME.to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            }]
        }),
        ..Container::default()
    };
    Deployment {
        metadata: metadata(route, variant),
        spec: Some(DeploymentSpec {
            // No `replicas`: the autoscaler owns them (scale subresource).
            replicas: None,
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(grace_seconds(
                        route.spec.timeout_seconds,
                    )),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        fs_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(runtime_default()),
                        ..PodSecurityContext::default()
                    }),
                    volumes: read_only.then(|| {
                        vec![Volume {
                            name: TMP_VOLUME.to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        }]
                    }),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The labels a variant's pods carry, which its Service and NetworkPolicy select: the
/// route's own, or for a member of a shared function the function's.
fn pod_selector(route: &ApiRoute, variant: Variant) -> BTreeMap<String, String> {
    match (&route.spec.function, variant) {
        (Some(f), Variant::Main) => crate::function::function_labels(f),
        _ => labels(route, variant),
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

/// The headless Service of one variant of `route`: it exists for its EndpointSlices, which
/// the gateway watches (pods not ready yet are listed with `ready: false`, which the
/// gateway checks itself during a wake). With its [`APPLIED_HASH`].
pub fn desired_service(route: &ApiRoute, variant: Variant, _config: &Config) -> Service {
    stamped(Service {
        metadata: metadata(route, variant),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            type_: Some("ClusterIP".to_owned()),
            selector: Some(pod_selector(route, variant)),
            // `publishNotReadyAddresses` is left at its default (false): the API server
            // omits a false plain bool, so sending it made `covers` fail on every
            // reconcile and re-applied the Service each time.
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_owned()),
                port: route.spec.port,
                target_port: Some(IntOrString::Int(route.spec.port)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// The route's NetworkPolicy (named after the route, one for all its variants): its pods
/// accept connections on the route's port only from the gateways, so nothing else in the
/// cluster can call a function directly (and forge the `x-apiroute-*` headers the gateway
/// sets). Enforced by CNIs that implement NetworkPolicy.
pub fn desired_network_policy(route: &ApiRoute, peer: &GatewayPeer) -> NetworkPolicy {
    // A shared function's pods: each member's policy selects them all (the same rule).
    let (key, value) = match &route.spec.function {
        Some(f) => (FUNCTION, f.clone()),
        None => (ROUTE, route.name_any()),
    };
    let selector = BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (key.to_owned(), value),
    ]);
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(route.name_any()),
            namespace: route.namespace(),
            labels: Some(selector.clone()),
            owner_references: route.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            "kubernetes.io/metadata.name".to_owned(),
                            peer.namespace.clone(),
                        )])),
                        ..LabelSelector::default()
                    }),
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(peer.labels.clone()),
                        ..LabelSelector::default()
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(route.spec.port)),
                    protocol: Some("TCP".to_owned()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// `obj` with the annotation [`APPLIED_HASH`] set to the hash of `obj` without it.
pub fn stamped<K: Resource + serde::Serialize>(mut obj: K) -> K {
    let meta = obj.meta_mut();
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(APPLIED_HASH);
        if a.is_empty() {
            meta.annotations = None;
        }
    }
    let hash = applied_hash(&obj);
    obj.meta_mut()
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(APPLIED_HASH.to_owned(), hash);
    obj
}

/// SHA-256, in lowercase hex, of the canonical JSON of `obj`: object keys sorted at every
/// level, no whitespace, null members left out (absent and null are the same to an apply).
/// A pure function of the value, the same across runs and versions of the operator; any
/// added, changed or removed field changes it.
pub fn applied_hash<T: serde::Serialize>(obj: &T) -> String {
    // serde_json's maps are sorted (the workspace does not enable `preserve_order`; the
    // pinned test would catch it) and `to_vec` is compact: with null members dropped, that
    // is the canonical form.
    let canonical = match serde_json::to_value(obj) {
        Ok(mut v) => {
            drop_nulls(&mut v);
            serde_json::to_vec(&v).unwrap_or_default()
        }
        // Not serializable (never for API objects): a hash nothing live can carry.
        Err(e) => format!("unserializable: {e}").into_bytes(),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn drop_nulls(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Whether `actual` already has every field of `desired` with the same value (the API
/// server adds defaults, so `actual` may have more). With `desired` carrying its
/// [`APPLIED_HASH`], this means applying `desired` would change nothing, and the reconciler
/// skips the request: the annotation matching says the last apply was of this very object
/// (no field of ours was removed since), the subset says nobody changed one of our fields
/// since (drift, which the apply repairs).
pub fn covers<T: serde::Serialize>(actual: &T, desired: &T) -> bool {
    serde_json::to_value(actual).is_ok_and(|a| covers_json(&a, desired))
}

/// [`covers`] for an object already in JSON (the caches keep specs so: `crate::cache`).
pub fn covers_json<T: serde::Serialize>(actual: &serde_json::Value, desired: &T) -> bool {
    serde_json::to_value(desired).is_ok_and(|d| is_subset(&d, actual))
}

fn is_subset(desired: &serde_json::Value, actual: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || a.get(k).is_some_and(|av| is_subset(dv, av))),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(dv, av)| is_subset(dv, av))
        }
        (d, a) => d == a,
    }
}

#[cfg(test)]
mod tests;
