//! Memory of the gateway's route state at 10,000 routes (issue 17, item 4). Not a test:
//! `cargo bench -p apiroutes-gateway --bench memory` prints the process's RSS
//! (`/proc/self/status`) before and after building what a gateway holds in a cluster of
//! 10,000 routes: the reflector stores of ApiRoutes, their main Services and their
//! EndpointSlices (each object decoded from its own JSON, as a watch event is, with
//! managed fields, annotations, env, resources and status as the API server sends them,
//! then kept as the gateway's watches keep them: ApiRoutes as route records, Services and slices
//! as records by namespace and name, with their claims) and the route table over them.
//! `ROUTES=N` changes the count; `PROBE=1` prints the memory of N routes' metric handles
//! alone (Prometheus series), the largest part of the table.

use std::{collections::HashMap, sync::Arc};

use apiroutes_crds::{ApiRoute, autoscale::RouteRef, conflict::Claimant, labels::Variant};
use apiroutes_gateway::{
    k8s::{Claims, OwnedMeta, SliceRecord, endpoints_from_slices, trusted_slices},
    metrics::Metrics,
    route::RouteRecord,
    table::Registry,
};
use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use serde_json::{Value, json};

// The gateway binary's allocator, so RSS here is the process's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The ten route shapes of a tenant (as in the matcher benchmark).
const SHAPES: [&str; 10] = [
    "/api/t{t}",
    "/api/t{t}/health",
    "/api/t{t}/users",
    "/api/t{t}/users/me",
    "/api/t{t}/users/[id]",
    "/api/t{t}/users/[id]/posts",
    "/api/t{t}/users/[id]/posts/[postId]",
    "/api/t{t}/docs/[...slug]",
    "/api/t{t}/shop/[[...path]]",
    "/api/t{t}/[section]/about",
];

fn uid(kind: u32, i: usize) -> String {
    format!("{kind:08x}-1c2d-4e5f-8a9b-{i:012x}")
}

fn managed(manager: &str, operation: &str, fields: Value) -> Value {
    json!({
        "manager": manager, "operation": operation, "apiVersion": "v1",
        "time": "2026-11-20T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields,
    })
}

fn route_json(i: usize) -> Value {
    let t = i / SHAPES.len();
    let name = format!("r{i}");
    let ns = format!("tenant-{}", t % 50);
    let path = SHAPES[i % SHAPES.len()].replace("{t}", &t.to_string());
    let spec = json!({
        "path": path, "methods": ["GET", "POST"],
        "image": format!("registry.example.com/tenant-{t}/api@sha256:{:064x}", i),
        "port": 8080,
        "env": [
            {"name": "NODE_ENV", "value": "production"},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
            {"name": "FEATURE_FLAGS", "value": "checkout-v2,search-beta,new-header"},
        ],
        "envFrom": [{"secretRef": {"name": "app-env"}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessPath": "/api/health",
        "timeoutSeconds": 30, "bodyLimit": "1Mi",
        "scaling": {"minReplicas": 0, "maxReplicas": 10, "targetConcurrency": 10, "scaleToZeroAfterSeconds": 60},
    });
    let condition = |ty: &str, reason: &str| {
        json!({"type": ty, "status": "True", "reason": reason, "message": format!("{ty}: {reason}"),
               "lastTransitionTime": "2026-11-20T10:00:05Z", "observedGeneration": 1})
    };
    json!({
        "apiVersion": "apiroutes.dev/v1alpha1", "kind": "ApiRoute",
        "metadata": {
            "name": name, "namespace": ns, "uid": uid(1, i), "resourceVersion": format!("{}", 100_000 + i),
            "generation": 1, "creationTimestamp": "2026-11-20T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "api", "app.kubernetes.io/part-of": format!("tenant-{t}")},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration":
                    json!({"apiVersion": "apiroutes.dev/v1alpha1", "kind": "ApiRoute",
                           "metadata": {"name": format!("r{i}"), "namespace": format!("tenant-{}", t % 50)},
                           "spec": spec.clone()}).to_string(),
            },
            "managedFields": [
                managed("kubectl-client-side-apply", "Update", json!({
                    "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                                   "f:labels": {".": {}, "f:app.kubernetes.io/name": {}, "f:app.kubernetes.io/part-of": {}}},
                    "f:spec": {".": {}, "f:bodyLimit": {}, "f:env": {}, "f:envFrom": {}, "f:image": {}, "f:methods": {},
                               "f:path": {}, "f:port": {}, "f:readinessPath": {}, "f:resources": {".": {}, "f:limits": {}, "f:requests": {}},
                               "f:scaling": {".": {}, "f:maxReplicas": {}, "f:minReplicas": {}}, "f:timeoutSeconds": {}}})),
                managed("apiroutes-operator", "Apply", json!({
                    "f:status": {"f:conditions": {"k:{\"type\":\"Accepted\"}": {".": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}},
                                                  "k:{\"type\":\"Ready\"}": {".": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}},
                                 "f:observedGeneration": {}, "f:readyReplicas": {}, "f:replicas": {}, "f:url": {}}})),
            ],
        },
        "spec": spec,
        "status": {
            "observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
            "url": format!("http://gateway.apiroutes.svc{path}"),
            "conditions": [condition("Accepted", "Accepted"), condition("Ready", "ScaledToZero")],
        },
    })
}

fn owned_labels(i: usize) -> Value {
    json!({"app.kubernetes.io/managed-by": "apiroutes-operator", "apiroutes.dev/route": format!("r{i}"),
           "apiroutes.dev/variant": "main"})
}

fn service_json(i: usize) -> Value {
    let ns = format!("tenant-{}", (i / SHAPES.len()) % 50);
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": format!("r{i}"), "namespace": ns, "uid": uid(2, i), "resourceVersion": "1",
            "creationTimestamp": "2026-11-20T10:00:01Z", "labels": owned_labels(i),
            "ownerReferences": [{"apiVersion": "apiroutes.dev/v1alpha1", "kind": "ApiRoute", "name": format!("r{i}"),
                                 "uid": uid(1, i), "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [managed("apiroutes-operator", "Apply", json!({
                "f:metadata": {"f:labels": {"f:app.kubernetes.io/managed-by": {}, "f:apiroutes.dev/route": {}, "f:apiroutes.dev/variant": {}},
                               "f:ownerReferences": {"k:{\"uid\":\"x\"}": {}}},
                "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}, "f:targetPort": {}}},
                           "f:selector": {}}}))],
        },
        "spec": {
            "clusterIP": format!("10.96.{}.{}", i / 250, i % 250), "clusterIPs": [format!("10.96.{}.{}", i / 250, i % 250)],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "type": "ClusterIP", "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"apiroutes.dev/route": format!("r{i}"), "apiroutes.dev/variant": "main"},
        },
        "status": {"loadBalancer": {}},
    })
}

fn slice_json(i: usize) -> Value {
    let ns = format!("tenant-{}", (i / SHAPES.len()) % 50);
    let mut labels = owned_labels(i);
    labels["kubernetes.io/service-name"] = json!(format!("r{i}"));
    labels["endpointslice.kubernetes.io/managed-by"] = json!("endpointslice-controller.k8s.io");
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("r{i}-abcde"), "namespace": ns, "uid": uid(3, i), "resourceVersion": "1",
            "generateName": format!("r{i}-"), "generation": 3, "creationTimestamp": "2026-11-20T10:00:01Z",
            "labels": labels,
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-20T10:00:04Z"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": format!("r{i}"), "uid": uid(2, i),
                                 "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [managed("kube-controller-manager", "Update", json!({
                "f:addressType": {}, "f:endpoints": {}, "f:metadata": {"f:annotations": {}, "f:generateName": {},
                "f:labels": {}, "f:ownerReferences": {}}, "f:ports": {}}))],
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [format!("10.244.{}.{}", i / 250, i % 250)],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "name": format!("r{i}-7d9f8b6c5d-x2k9p"), "namespace": ns, "uid": uid(4, i)},
        }],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Decodes an object from its own bytes, as a watch event is, and strips it.
fn decode<K: serde::de::DeserializeOwned>(v: &Value) -> Option<Arc<K>> {
    let bytes = serde_json::to_vec(v).ok()?;
    serde_json::from_slice(&bytes).ok().map(Arc::new)
}

/// An ApiRoute as the gateway's watch keeps it.
fn route_record(v: &Value) -> Option<Arc<RouteRecord>> {
    decode::<ApiRoute>(v).map(|r| RouteRecord::shared(&r))
}

fn main() {
    let n: usize = std::env::var("ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (start, _) = rss();
    if std::env::var("PROBE").is_ok() {
        let m = Metrics::new();
        let all: Vec<_> = (0..n).map(|i| m.route(&format!("tenant-1/r{i}"))).collect();
        println!("probe: metrics {:.1} MiB", mib(rss().0 - start));
        drop(all);
        return;
    }
    // The ApiRoute store and the table: the gateway's route state.
    let routes: Vec<Arc<RouteRecord>> = (0..n)
        .filter_map(|i| route_record(&route_json(i)))
        .collect();
    let (store, _) = rss();
    let registry = Registry::new(Metrics::new());
    // Every main variant with one ready endpoint (what the slices below give).
    let ready = routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let key = RouteRef {
                namespace: r.namespace().to_owned(),
                name: r.name().to_owned(),
                variant: Variant::Main,
            };
            let addr = format!("10.244.{}.{}:8080", i / 250, i % 250)
                .parse()
                .ok()?;
            Some((key, vec![addr]))
        })
        .collect();
    let table = registry
        .rebuild(routes.iter().cloned(), Vec::new(), ready)
        .table;
    let (routed, _) = rss();
    println!(
        "memory/{n}: routes routed {} of {}, endpoints {}",
        table.routes,
        routes.len(),
        table
            .targets
            .values()
            .map(|t| t.endpoints.len())
            .sum::<usize>()
    );
    println!(
        "memory/{n}: RSS {:.1} MiB with the ApiRoute store and the table (empty process {:.1} MiB; store +{:.1} MiB; table +{:.1} MiB)",
        mib(routed),
        mib(start),
        mib(store.saturating_sub(start)),
        mib(routed.saturating_sub(store)),
    );
    // The Service and EndpointSlice stores the owner-chain check needs (one main Service
    // and one slice with one ready endpoint per route).
    // Kept as the gateway keeps them: records by (namespace, name), and their claims.
    let services: HashMap<(String, String), Arc<OwnedMeta>> = (0..n)
        .filter_map(|i| decode::<Service>(&service_json(i)))
        .map(|s| {
            let m = OwnedMeta::from(&*s);
            (m.key(), Arc::new(m))
        })
        .collect();
    let slices: HashMap<(String, String), Arc<SliceRecord>> = (0..n)
        .filter_map(|i| decode::<EndpointSlice>(&slice_json(i)))
        .map(|s| {
            let r = SliceRecord::from(&*s);
            (r.meta.key(), Arc::new(r))
        })
        .collect();
    let claims = Claims::from_objects(
        slices.values().map(|s| &**s),
        services.values().map(|s| &**s),
    );
    let split = trusted_slices(
        slices.values().map(|s| &**s),
        services.values().map(|s| &**s),
        routes.iter().map(|r| &**r),
    );
    let same = endpoints_from_slices(split.trusted.iter().copied()).len();
    let (end, peak) = rss();
    println!(
        "memory/{n}: RSS {:.1} MiB with the Service and EndpointSlice stores too (+{:.1} MiB; {same} variants from slices); peak {:.1} MiB",
        mib(end),
        mib(end.saturating_sub(routed)),
        mib(peak),
    );
    drop((table, routes, services, slices, claims));
}
