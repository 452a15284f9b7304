//! Matching: a table of routes of every segment kind answers any host, path and method
//! without panicking, and a path that normalizes is matched the same way twice.
#![no_main]
use std::sync::LazyLock;

use apiroutes_gateway::{
    metrics::Metrics,
    path::{PathOutcome, normalize},
    static_file::StaticRoutes,
    table::{Lookup, Registry, RouteTable, split},
};
use libfuzzer_sys::fuzz_target;

static TABLE: LazyLock<RouteTable> = LazyLock::new(|| {
    let routes = [
        ("a", "/api/users/[id]", ""),
        ("b", "/api/users/me", ""),
        ("c", "/api/docs/[...slug]", ""),
        ("d", "/api/[[...all]]", ""),
        (
            "e",
            "/api/shop/[id]/items/[item]",
            ", host: shop.example.com",
        ),
        ("f", "/api/get", ", methods: [GET]"),
    ];
    let mut yaml = String::from("routes:\n");
    for (name, path, extra) in routes {
        yaml.push_str(&format!(
            "  - route:\n      metadata: {{ name: {name}, creationTimestamp: \"2026-01-01T00:00:00Z\" }}\n      spec: {{ path: \"{path}\", image: unused{extra} }}\n    backends: [\"http://127.0.0.1:9\"]\n"
        ));
    }
    let parsed = StaticRoutes::parse(&yaml, "fuzz").expect("fixture routes parse");
    parsed.build(&Registry::new(Metrics::new()))
});

fuzz_target!(|data: (Option<&str>, &str, &str)| {
    let (host, path, method) = data;
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let PathOutcome::Route(path) = normalize(path, None) else {
        return;
    };
    let segs = split(&path);
    let routed = |l: Lookup<'_>| match l {
        Lookup::Route(r) => Some(r.key.to_string()),
        Lookup::MethodNotAllowed(_) => Some("405".into()),
        Lookup::NotFound => None,
    };
    let first = routed(TABLE.lookup(host, &segs, &method));
    let second = routed(TABLE.lookup(host, &segs, &method));
    assert_eq!(first, second);
});
