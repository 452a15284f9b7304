//! Matching cost at 10, 1,000 and 10,000 routes, and the cost of rebuilding the table for
//! 10,000 (issue 4, item 8). Figures, not tests: `cargo bench -p apiroutes-gateway --bench
//! matcher`; the numbers are in docs/performance.md.
//!
//! Routes come in realistic groups of ten per "tenant" (`/api/t<k>/...`): static, index,
//! dynamic, nested dynamic, catch-all, optional catch-all and a dynamic sibling that forces
//! backtracking. Each request kind is measured on its own (`lookup/<routes>/<kind>`), and
//! `route/<routes>/mixed` measures what a request pays end to end before proxying:
//! normalize + split + lookup + the `x-apiroute-params` header, over 1,024 paths spread
//! across all tenants (so caches do not flatter a single hot path); `mixed-lookup-only` is
//! the lookup part of it. `rebuild/10000-admit-only` is the conflict rule's share of a rebuild.
//! `rebuild/10000-cold` is a full build of the index from the store's 10,000 routes in a fresh
//! registry; `rebuild/10000` (warm, from a slice of routes) and `rebuild/10000-relist-unchanged`
//! apply only what differs from the index. `update/10000/<event>` is one watch event applied to the route index of 10,000 routes
//! and the new snapshot published (issue 17, item 4): an endpoint change of one variant
//! (the cold-start wake path), a changed ApiRoute, an ApiRoute added or deleted.

use std::hint::black_box;

use std::{collections::HashMap, sync::Arc};

use apiroutes_crds::{
    ApiRoute, autoscale::RouteRef, conflict::admit, labels::Variant, testing::route,
};
use apiroutes_gateway::{
    metrics::Metrics,
    path::{PathOutcome, normalize},
    route::RouteRecord,
    table::{Lookup, Registry, RouteTable, split},
};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Method, uri::Authority};

/// The ten routes of tenant `t`.
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

/// Request kinds, with the tenant to substitute.
const KINDS: [(&str, &str); 7] = [
    ("static", "/api/t{t}/users/me"),
    ("dynamic", "/api/t{t}/users/12345"),
    ("nested-dynamic", "/api/t{t}/users/12345/posts/67890"),
    ("catch-all", "/api/t{t}/docs/guide/getting-started/install"),
    ("optional-zero", "/api/t{t}/shop"),
    ("backtrack", "/api/t{t}/users/about"),
    ("not-found", "/api/t{t}/users/12345/nope/x"),
];

fn routes(n: usize) -> Vec<ApiRoute> {
    (0..n)
        .map(|i| {
            let path = SHAPES[i % SHAPES.len()].replace("{t}", &(i / SHAPES.len()).to_string());
            route(&format!("r{i}"), &path).created(i64::try_from(i).unwrap_or(0))
        })
        .collect()
}

fn table(registry: &Registry, routes: &[ApiRoute]) -> RouteTable {
    let backend: Authority = Authority::from_static("127.0.0.1:9001");
    registry.build(routes, |_| vec![backend.clone()])
}

/// What the server does with a request path before proxying, minus I/O.
fn route_request(table: &RouteTable, raw: &str) -> usize {
    let PathOutcome::Route(path) = normalize(raw, None) else {
        return 0;
    };
    let segs = split(&path);
    match table.lookup(None, &segs, &Method::GET) {
        Lookup::Route(entry) => entry.params_header(&segs).map_or(1, |h| h.len()),
        Lookup::MethodNotAllowed(_) => 2,
        Lookup::NotFound => 3,
    }
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for n in [10usize, 1_000, 10_000] {
        let registry = Registry::new(Metrics::new());
        let table = table(&registry, &routes(n));
        assert_eq!(table.routes, n, "every generated route is admitted");
        let tenant = (n / SHAPES.len()).saturating_sub(1) / 2; // a tenant in the middle
        for (kind, template) in KINDS {
            let path = template.replace("{t}", &tenant.to_string());
            let segs = split(&path);
            let found = matches!(table.lookup(None, &segs, &Method::GET), Lookup::Route(_));
            assert_eq!(found, kind != "not-found", "{kind}: {path}");
            group.bench_with_input(BenchmarkId::new(n.to_string(), kind), &segs, |b, segs| {
                b.iter(|| {
                    matches!(
                        table.lookup(None, black_box(segs), &Method::GET),
                        Lookup::Route(_)
                    )
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("route");
    for n in [10usize, 1_000, 10_000] {
        let registry = Registry::new(Metrics::new());
        let table = table(&registry, &routes(n));
        let tenants = n / SHAPES.len();
        let paths: Vec<String> = (0..1024)
            .map(|i| {
                let (_, template) = KINDS[i % KINDS.len()];
                template.replace("{t}", &((i * 7919) % tenants).to_string())
            })
            .collect();
        group.throughput(Throughput::Elements(paths.len() as u64));
        group.bench_with_input(
            BenchmarkId::new(n.to_string(), "mixed"),
            &paths,
            |b, paths| {
                b.iter(|| {
                    paths
                        .iter()
                        .map(|p| route_request(&table, black_box(p)))
                        .sum::<usize>()
                })
            },
        );
        // The same paths, lookup alone (pre-split): separates the trie from the rest.
        let split_paths: Vec<Vec<&str>> = paths.iter().map(|p| split(p).to_vec()).collect();
        group.bench_with_input(
            BenchmarkId::new(n.to_string(), "mixed-lookup-only"),
            &split_paths,
            |b, paths| {
                b.iter(|| {
                    paths
                        .iter()
                        .filter(|s| {
                            matches!(
                                table.lookup(None, black_box(s), &Method::GET),
                                Lookup::Route(_)
                            )
                        })
                        .count()
                })
            },
        );
    }
    group.finish();
}

fn rebuilding(c: &mut Criterion) {
    let mut group = c.benchmark_group("rebuild");
    group.sample_size(10);
    let all = routes(10_000);
    let registry = Registry::new(Metrics::new());
    // Warm: rebuilds in a running gateway reuse per-route state kept by the registry.
    let _ = table(&registry, &all);
    group.bench_function("10000", |b| {
        b.iter(|| table(&registry, black_box(&all)).routes)
    });
    // What the gateway does when a watch lists (again): the routes are the store's
    // `Arc`s, the endpoints a map from the EndpointSlices.
    let stored: Vec<Arc<RouteRecord>> = all.iter().map(RouteRecord::shared).collect();
    let backend = Authority::from_static("127.0.0.1:9001");
    let ready: HashMap<RouteRef, Vec<Authority>> = all
        .iter()
        .map(|r| {
            let key = RouteRef {
                namespace: r.metadata.namespace.clone().unwrap_or_default(),
                name: r.metadata.name.clone().unwrap_or_default(),
                variant: Variant::Main,
            };
            (key, vec![backend.clone()])
        })
        .collect();
    // A full build: a fresh registry (a starting gateway), metric handles included.
    group.bench_function("10000-cold", |b| {
        b.iter_batched(
            || (Registry::new(Metrics::new()), ready.clone()),
            |(registry, ready)| {
                let update = registry.rebuild(stored.iter().cloned(), Vec::new(), ready);
                (registry, update)
            },
            BatchSize::PerIteration,
        )
    });
    // A relist that changed nothing, on a warm registry (new `Arc`s, as a relist gives).
    let _ = registry.rebuild(stored.iter().cloned(), Vec::new(), ready.clone());
    group.bench_function("10000-relist-unchanged", |b| {
        b.iter_batched(
            || {
                let fresh: Vec<Arc<RouteRecord>> =
                    stored.iter().map(|r| Arc::new((**r).clone())).collect();
                (fresh, ready.clone())
            },
            |(fresh, ready)| registry.rebuild(fresh, Vec::new(), ready),
            BatchSize::PerIteration,
        )
    });
    // The share of the conflict rule (apiroutes-crds) in a rebuild.
    group.bench_function("10000-admit-only", |b| {
        b.iter(|| admit(black_box(&all)).len())
    });
    group.finish();
}

fn updating(c: &mut Criterion) {
    let mut group = c.benchmark_group("update");
    let all = routes(10_000);
    let registry = Registry::new(Metrics::new());
    let _ = table(&registry, &all);
    // A variant in the middle gains and loses an endpoint, in turn.
    let variant = RouteRef {
        namespace: "default".into(),
        name: "r5004".into(),
        variant: Variant::Main,
    };
    let one = vec![Authority::from_static("127.0.0.1:9001")];
    let two = vec![one[0].clone(), Authority::from_static("10.0.0.7:8080")];
    let mut flip = false;
    group.bench_function("10000/endpoints", |b| {
        b.iter(|| {
            flip = !flip;
            let mut edit = registry.edit();
            edit.set_endpoints(
                variant.clone(),
                if flip { two.clone() } else { one.clone() },
            );
            edit.commit().table.routes
        })
    });
    // A route changes (its timeout, in turn).
    let changed = [all[5004].clone(), {
        let mut r = all[5004].clone();
        r.spec.timeout_seconds += 1;
        r
    }]
    .map(|r| RouteRecord::shared(&r));
    let mut flip = false;
    group.bench_function("10000/apply-changed-route", |b| {
        b.iter(|| {
            flip = !flip;
            let mut edit = registry.edit();
            edit.apply(Arc::clone(&changed[usize::from(flip)]));
            edit.commit().table.routes
        })
    });
    // A new route is added, then deleted, in turn.
    let extra = RouteRecord::shared(&route("extra", "/api/t500/users/[id]/extra").created(20_000));
    let mut flip = false;
    group.bench_function("10000/add-or-delete-route", |b| {
        b.iter(|| {
            flip = !flip;
            let mut edit = registry.edit();
            if flip {
                edit.apply(Arc::clone(&extra));
            } else {
                edit.delete("default/extra");
            }
            edit.commit().table.routes
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = matching, rebuilding, updating
}
criterion_main!(benches);
