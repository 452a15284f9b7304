#![allow(clippy::unwrap_used)]

use super::*;
use apiroutes_crds::{
    conflict::{admit, serving_order},
    testing::route,
};
use proptest::prelude::*;

fn registry() -> Registry {
    Registry::new(Metrics::new())
}

fn no_endpoints(_: &RouteRef) -> Vec<Authority> {
    Vec::new()
}

fn build(routes: &[ApiRoute]) -> RouteTable {
    registry().build(routes, no_endpoints)
}

/// The winner's `namespace/name` and params JSON, or "404"/"405 <allow>".
fn look(t: &RouteTable, host: Option<&str>, path: &str, method: Method) -> String {
    let segs = split(path);
    match t.lookup(host, &segs, &method) {
        Lookup::Route(r) => format!("{} {}", r.key, r.params_json(&segs).unwrap()),
        Lookup::MethodNotAllowed(leaf) => format!("405 {}", leaf.allow.to_str().unwrap()),
        Lookup::NotFound => "404".into(),
    }
}

#[test]
fn precedence_and_backtracking_follow_next() {
    let t = build(&[
        route("static", "/api/users/me").created(1),
        route("dyn", "/api/users/[id]").created(1),
        route("dyn-posts", "/api/users/[id]/posts/[post]").created(1),
        route("me-x", "/api/users/me/x").created(1),
        route("all", "/api/[...rest]").created(1),
        route("opt", "/api/docs/[[...slug]]").created(1),
        route("docs", "/api/docs").created(1),
        route("root", "/").created(1),
    ]);
    let get = |p| look(&t, None, p, Method::GET);
    assert_eq!(get("/api/users/me"), "default/static {}");
    assert_eq!(get("/api/users/42"), r#"default/dyn {"id":"42"}"#);
    // A static segment does not block deeper paths through the dynamic sibling.
    assert_eq!(
        get("/api/users/me/posts/7"),
        r#"default/dyn-posts {"id":"me","post":"7"}"#
    );
    assert_eq!(get("/api/users/me/x"), "default/me-x {}");
    assert_eq!(
        get("/api/users/me/y"),
        r#"default/all {"rest":["users","me","y"]}"#
    );
    assert_eq!(get("/api/docs"), "default/docs {}");
    assert_eq!(get("/api/docs/a/b"), r#"default/opt {"slug":["a","b"]}"#);
    assert_eq!(get("/api"), "404");
    assert_eq!(get("/"), "default/root {}");
    assert_eq!(get("/API/users/me"), "404");
}

#[test]
fn optional_catch_all_with_zero_segments_names_param_without_value() {
    let t = build(&[route("opt", "/api/[[...slug]]").created(1)]);
    assert_eq!(
        look(&t, None, "/api", Method::GET),
        r#"default/opt {"slug":null}"#
    );
    assert_eq!(
        look(&t, None, "/api/a%2Fb/%C3%A9", Method::GET),
        r#"default/opt {"slug":["a/b","\u00e9"]}"#
    );
    let t = build(&[route("req", "/api/[...slug]").created(1)]);
    assert_eq!(look(&t, None, "/api", Method::GET), "404");
}

#[test]
fn methods_give_405_with_allow_and_share_patterns() {
    let t = build(&[
        route("get", "/api/x/[id]").created(1).methods(&["GET"]),
        route("post", "/api/x/[slug]").created(2).methods(&["POST"]),
    ]);
    assert_eq!(
        look(&t, None, "/api/x/1", Method::GET),
        r#"default/get {"id":"1"}"#
    );
    assert_eq!(
        look(&t, None, "/api/x/1", Method::HEAD),
        r#"default/get {"id":"1"}"#
    );
    assert_eq!(
        look(&t, None, "/api/x/1", Method::POST),
        r#"default/post {"slug":"1"}"#
    );
    assert_eq!(
        look(&t, None, "/api/x/1", Method::DELETE),
        "405 GET, HEAD, POST"
    );
}

#[test]
fn host_routes_beat_hostless_ones() {
    let t = build(&[
        route("any", "/api/[id]").created(1),
        route("shop", "/api/[id]")
            .created(2)
            .host("Shop.Example.com"),
        route("shop-x", "/api/x/y")
            .created(2)
            .host("shop.example.com"),
        route("any-x", "/api/x/[z]").created(1),
    ]);
    assert_eq!(
        look(&t, Some("shop.example.com"), "/api/1", Method::GET),
        r#"default/shop {"id":"1"}"#
    );
    assert_eq!(
        look(&t, Some("SHOP.example.com"), "/api/1", Method::GET),
        r#"default/shop {"id":"1"}"#
    );
    assert_eq!(
        look(&t, Some("other.com"), "/api/1", Method::GET),
        r#"default/any {"id":"1"}"#
    );
    // Nothing fits in the host's trie: the hostless routes are tried.
    assert_eq!(
        look(&t, Some("shop.example.com"), "/api/x/z", Method::GET),
        r#"default/any-x {"z":"z"}"#
    );
}

#[test]
fn conflict_losers_are_not_routed() {
    let t = build(&[
        route("young", "/api/[a]").created(9),
        route("old", "/api/[b]").created(1),
    ]);
    assert_eq!(
        look(&t, None, "/api/1", Method::GET),
        r#"default/old {"b":"1"}"#
    );
    assert_eq!(t.routes, 1);
}

#[test]
fn params_json_escapes_for_headers() {
    let t = build(&[route("p", "/api/[id]").created(1)]);
    let segs = split("/api/%22%5C%0A%7F%F0%9F%98%80");
    let Lookup::Route(r) = t.lookup(None, &segs, &Method::GET) else {
        panic!("no match")
    };
    let json = r.params_json(&segs).unwrap();
    assert!(json.is_ascii());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["id"], "\"\\\n\u{7f}😀");
    assert!(r.params_header(&segs).is_some());
}

#[test]
fn endpoints_balance_least_in_flight_and_survive_rebuilds() {
    let reg = registry();
    let routes = [route("r", "/api/r").created(1).with_preview()];
    let a: Authority = "127.0.0.1:1".parse().unwrap();
    let b: Authority = "127.0.0.1:2".parse().unwrap();
    let eps = |k: &RouteRef| match k.variant {
        Variant::Main => vec![a.clone(), b.clone()],
        Variant::Preview => vec![],
    };
    let t1 = reg.build(&routes, eps);
    let Lookup::Route(r) = t1.lookup(None, &split("/api/r"), &Method::GET) else {
        panic!()
    };
    let first = r.main.pick(&[]).unwrap();
    first.in_flight.fetch_add(1, Relaxed);
    for _ in 0..5 {
        let next = r.main.pick(&[]).unwrap();
        assert!(!Arc::ptr_eq(next, first));
    }
    assert!(r.preview.as_ref().unwrap().pick(&[]).is_none());
    assert!(r.main.pick(&[Arc::clone(first)]).is_some());
    // A rebuild keeps the counters and the variant state.
    let t2 = reg.build(&routes, eps);
    let Lookup::Route(r2) = t2.lookup(None, &split("/api/r"), &Method::GET) else {
        panic!()
    };
    assert!(Arc::ptr_eq(&r.main.state, &r2.main.state));
    assert_eq!(
        r2.main
            .endpoints
            .iter()
            .map(|e| e.in_flight.load(Relaxed))
            .sum::<usize>(),
        1
    );
    assert_eq!(t2.targets.len(), 2);
    assert_eq!(reg.variants().len(), 2);
}

#[test]
fn ten_thousand_routes_build_and_match() {
    let routes: Vec<ApiRoute> = (0..10_000)
        .map(|i| {
            route(
                &format!("r{i}"),
                &format!("/api/s{}/[id]/posts/p{i}", i % 100),
            )
            .created(1)
        })
        .collect();
    let t = build(&routes);
    assert_eq!(t.routes, 10_000);
    assert_eq!(
        look(&t, None, "/api/s42/7/posts/p542", Method::GET),
        r#"default/r542 {"id":"7"}"#
    );
}

// ---- property test: the trie agrees with the reference matcher -------------------------

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "%41"]).prop_map(String::from),
        2 => Just("[]".to_string()),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(segment(), 0..4),
        prop::sample::select(vec!["", "", "[...]", "[[...]]"]),
    )
        .prop_map(|(segs, tail)| {
            let mut out = String::new();
            let mut n = 0;
            for s in segs
                .iter()
                .map(String::as_str)
                .chain((!tail.is_empty()).then_some(tail))
            {
                out.push('/');
                n += 1;
                match s {
                    "[]" => out.push_str(&format!("[p{n}]")),
                    "[...]" => out.push_str(&format!("[...p{n}]")),
                    "[[...]]" => out.push_str(&format!("[[...p{n}]]")),
                    s => out.push_str(s),
                }
            }
            if out.is_empty() { "/".into() } else { out }
        })
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c", "d", "%41", "x%2Fy", "%C3%A9"]),
        0..6,
    )
    .prop_map(|segs| {
        if segs.is_empty() {
            "/".into()
        } else {
            segs.iter().map(|s| format!("/{s}")).collect()
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn trie_agrees_with_brute_force_max_precedence(
        patterns in prop::collection::vec(pattern(), 1..24),
        paths in prop::collection::vec(path(), 1..24),
    ) {
        let routes: Vec<ApiRoute> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| route(&format!("r{i}"), p).created(i64::try_from(i).unwrap()))
            .collect();
        let admitted: Vec<(&ApiRoute, Pattern)> = routes
            .iter()
            .zip(admit(&routes))
            .filter(|(_, a)| *a == Admission::Accepted)
            .map(|(r, _)| (r, Pattern::parse(&r.spec.path).unwrap()))
            .collect();
        let table = build(&routes);
        for p in &paths {
            let expected = admitted
                .iter()
                .filter_map(|(r, pat)| pat.match_path(p).unwrap().map(|params| (r, pat, params)))
                // The shared serving order (apiroutes-crds), the least being the one served.
                .min_by(|a, b| serving_order((None, Some(a.1)), (None, Some(b.1))));
            let segs = split(p);
            match (table.lookup(None, &segs, &Method::GET), expected) {
                (Lookup::Route(got), Some((r, _, params))) => {
                    let want_key = r.key();
                    prop_assert_eq!(&*got.key, want_key.as_str(), "path {}", p);
                    let got: serde_json::Value =
                        serde_json::from_str(&got.params_json(&segs).unwrap()).unwrap();
                    let want: serde_json::Value = serde_json::from_str(&params.to_json()).unwrap();
                    prop_assert_eq!(got, want, "path {}", p);
                }
                (Lookup::NotFound, None) => {}
                (got, want) => {
                    let got = match got {
                        Lookup::Route(r) => r.key.to_string(),
                        _ => "none".into(),
                    };
                    prop_assert!(false, "path {}: trie {} vs reference {:?}", p, got, want.map(|w| w.0.key()));
                }
            }
        }
    }
}

#[test]
fn removed_routes_lose_their_gauge_series() {
    let reg = registry();
    let t = reg.build(&[route("gone", "/api/gone").created(1)], no_endpoints);
    // Series are made on first use, not for every route in the table.
    let text = String::from_utf8(reg.metrics.render()).unwrap();
    assert!(!text.contains(r#"route="default/gone""#));
    let Lookup::Route(r) = t.lookup(None, &split("/api/gone"), &Method::GET) else {
        panic!("no route");
    };
    r.metrics.in_flight().inc();
    r.metrics.in_flight().dec();
    let text = String::from_utf8(reg.metrics.render()).unwrap();
    assert!(text.contains(r#"in_flight_requests{route="default/gone"} 0"#));
    let t = reg.build(&[], no_endpoints);
    assert_eq!(t.routes, 0);
    let text = String::from_utf8(reg.metrics.render()).unwrap();
    assert!(!text.contains(r#"in_flight_requests{route="default/gone"}"#));
    assert!(reg.variants().is_empty());
}

#[test]
fn a_route_outside_its_namespaces_grant_is_not_in_the_table() {
    use apiroutes_crds::grant::grant;
    let grants = [grant("shop", &["shop"], &["shop.example.com"], &["/"])];
    // Older, so it would win the conflict without grants: a host hijack.
    let hijack = route("grab", "/api/[[...x]]")
        .namespace("blog")
        .host("shop.example.com")
        .created(1);
    let shop = route("mine", "/api/[[...y]]")
        .namespace("shop")
        .host("shop.example.com")
        .created(2);
    let t = registry().build_granted(&[hijack.clone(), shop.clone()], &grants, no_endpoints);
    let routed: Vec<String> = t.entries().iter().map(|r| r.key.to_string()).collect();
    assert_eq!(routed, ["shop/mine"], "{routed:?}");
    let t = registry().build(&[hijack, shop], no_endpoints);
    let routed: Vec<String> = t.entries().iter().map(|r| r.key.to_string()).collect();
    assert_eq!(routed, ["blog/grab"], "without grants the older route wins");
}

// ---- property test: incremental updates give the table of a full build ------------------

/// A route event, or a commit point.
#[derive(Clone, Debug)]
enum Event {
    Apply(Box<ApiRoute>),
    Delete(usize),
    Endpoints(usize, bool, Vec<u16>),
    Grants(usize),
    Commit,
}

const NAMES: [(&str, &str); 6] = [
    ("a", "r0"),
    ("a", "r1"),
    ("a", "r2"),
    ("b", "r0"),
    ("b", "r3"),
    // Not a valid route name: never routed, blocks nobody.
    ("b", "x-preview"),
];
const HOSTS: [Option<&str>; 4] = [
    None,
    Some("shop.example.com"),
    Some("SHOP.example.com"),
    Some("blog.example.com"),
];

fn grant_sets() -> Vec<Vec<RouteGrant>> {
    use apiroutes_crds::grant::grant;
    vec![
        vec![],
        vec![grant("all-a", &["a"], &["*"], &["/"])],
        vec![
            grant("shop", &["a", "b"], &["shop.example.com"], &["/a"]),
            grant("b-any", &["b"], &["*"], &["/"]),
        ],
    ]
}

fn any_route() -> impl Strategy<Value = ApiRoute> {
    let methods = prop::sample::select(vec![
        None,
        Some(vec!["GET"]),
        Some(vec!["POST"]),
        Some(vec!["GET", "POST"]),
        Some(vec!["HEAD"]),
    ]);
    (
        0..NAMES.len(),
        pattern(),
        prop::sample::select(HOSTS.to_vec()),
        methods,
        0i64..3,
        any::<bool>(),
        1i32..4,
    )
        .prop_map(|(who, path, host, methods, created, preview, timeout)| {
            let (ns, name) = NAMES[who];
            let mut r = route(name, &path).namespace(ns).created(created);
            if let Some(h) = host {
                r = r.host(h);
            }
            if let Some(ms) = methods {
                r = r.methods(&ms);
            }
            if preview {
                r = r.with_preview();
            }
            r.spec.timeout_seconds = timeout;
            r
        })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        5 => any_route().prop_map(|r| Event::Apply(Box::new(r))),
        2 => (0..NAMES.len()).prop_map(Event::Delete),
        3 => (0..NAMES.len(), any::<bool>(), prop::collection::vec(1u16..4, 0..3))
            .prop_map(|(who, preview, ports)| Event::Endpoints(who, preview, ports)),
        1 => (0..3usize).prop_map(Event::Grants),
        2 => Just(Event::Commit),
    ]
}

fn variant_of(who: usize, preview: bool) -> RouteRef {
    let (ns, name) = NAMES[who];
    RouteRef {
        namespace: ns.into(),
        name: name.into(),
        variant: if preview {
            Variant::Preview
        } else {
            Variant::Main
        },
    }
}

/// Everything a request or an operator can see of a table.
fn observe(t: &RouteTable, paths: &[String]) -> Vec<String> {
    let eps = |target: &Target| -> Vec<String> {
        target
            .endpoints
            .iter()
            .map(|e| e.authority.to_string())
            .collect()
    };
    let mut out = vec![format!("routes {}", t.routes), t.to_json().to_string()];
    let mut targets: Vec<String> = t
        .targets
        .iter()
        .map(|(k, target)| format!("{k:?} {:?}", eps(target)))
        .collect();
    targets.sort();
    out.extend(targets);
    for p in paths {
        for host in [None, Some("shop.example.com"), Some("Blog.Example.com")] {
            for m in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
                let segs = split(p);
                let got = match t.lookup(host, &segs, &m) {
                    Lookup::Route(r) => format!(
                        "{} {} {:?} {:?}",
                        r.key,
                        r.params_json(&segs).unwrap(),
                        r.timeout,
                        r.preview.as_deref().map(eps)
                    ),
                    Lookup::MethodNotAllowed(leaf) => format!("405 {:?}", leaf.allow),
                    Lookup::NotFound => "404".into(),
                };
                out.push(format!("{host:?} {m} {p}: {got}"));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn incremental_updates_equal_a_full_build(
        events in prop::collection::vec(event(), 1..40),
        paths in prop::collection::vec(path(), 1..12),
    ) {
        let grants = grant_sets();
        let inc = registry();
        // The final state, for the full build.
        let mut routes: std::collections::BTreeMap<String, ApiRoute> = Default::default();
        let mut ready: HashMap<RouteRef, Vec<Authority>> = HashMap::new();
        let mut granted = 0;
        // Another registry rebuilt whole from the state at every commit point (a relist).
        let relist = registry();
        let mut edit = inc.edit();
        for ev in &events {
            match ev {
                Event::Apply(r) => {
                    routes.insert(r.key(), (**r).clone());
                    edit.apply(RouteRecord::shared(r));
                }
                Event::Delete(who) => {
                    let key = format!("{}/{}", NAMES[*who].0, NAMES[*who].1);
                    routes.remove(&key);
                    edit.delete(&key);
                }
                Event::Endpoints(who, preview, ports) => {
                    let addrs: Vec<Authority> = ports
                        .iter()
                        .map(|p| format!("10.0.0.{p}:80").parse().unwrap())
                        .collect();
                    ready.insert(variant_of(*who, *preview), addrs.clone());
                    edit.set_endpoints(variant_of(*who, *preview), addrs);
                }
                Event::Grants(g) => {
                    granted = *g;
                    edit.set_grants(grants[*g].clone());
                }
                Event::Commit => {
                    let _ = edit.commit();
                    let _ = relist.rebuild(
                        routes.values().map(RouteRecord::shared),
                        grants[granted].clone(),
                        ready.clone(),
                    );
                    edit = inc.edit();
                }
            }
        }
        let incremental = edit.commit().table;
        let full = registry()
            .rebuild(routes.values().map(RouteRecord::shared), grants[granted].clone(), ready.clone())
            .table;
        let relisted = relist
            .rebuild(routes.values().map(RouteRecord::shared), grants[granted].clone(), ready.clone())
            .table;
        prop_assert_eq!(observe(&incremental, &paths), observe(&full, &paths));
        prop_assert_eq!(observe(&relisted, &paths), observe(&full, &paths));
        // And the routed set is the conflict and grant rules' (apiroutes-crds) verdict.
        let accepted: Vec<String> = routes
            .values()
            .zip(admit_granted(routes.values(), &grants[granted]))
            .filter(|(_, a)| *a == Admission::Accepted)
            .map(|(r, _)| r.key())
            .collect();
        let routed: Vec<String> = incremental.entries().iter().map(|r| r.key.to_string()).collect();
        prop_assert_eq!(routed, accepted);
    }
}

#[test]
fn an_event_keeps_the_state_of_routes_it_does_not_touch() {
    let reg = registry();
    let a: Authority = "127.0.0.1:1".parse().unwrap();
    let main = |name: &str| RouteRef {
        namespace: "default".into(),
        name: name.into(),
        variant: Variant::Main,
    };
    let t1 = reg
        .rebuild(
            [route("x", "/api/x"), route("y", "/api/y")]
                .map(|r| RouteRecord::shared(&r.created(1))),
            Vec::new(),
            HashMap::from([(main("x"), vec![a.clone()])]),
        )
        .table;
    let mut edit = reg.edit();
    edit.set_endpoints(main("y"), vec![a.clone()]);
    let update = edit.commit();
    let t2 = update.table;
    // Only y's target changed (and is ready, so its held requests wake).
    assert_eq!(update.ready.len(), 1);
    assert_eq!(*update.ready[0].state.key, main("y"));
    assert!(Arc::ptr_eq(
        t1.entry("default/x").unwrap(),
        t2.entry("default/x").unwrap()
    ));
    assert!(Arc::ptr_eq(
        &t1.entry("default/y").unwrap().main.state,
        &t2.entry("default/y").unwrap().main.state
    ));
    assert!(t1.entry("default/y").unwrap().main.endpoints.is_empty());
    // A route moving to another pattern keeps its metrics (counters survive).
    let before = Arc::clone(&t2.entry("default/x").unwrap().metrics);
    let mut edit = reg.edit();
    edit.apply(RouteRecord::shared(&route("x", "/api/x2").created(1)));
    let t3 = edit.commit().table;
    assert!(Arc::ptr_eq(
        &before,
        &t3.entry("default/x").unwrap().metrics
    ));
    assert_eq!(look(&t3, None, "/api/x", Method::GET), "404");
    assert_eq!(look(&t3, None, "/api/x2", Method::GET), "default/x {}");
    // The old snapshot is untouched.
    assert_eq!(look(&t2, None, "/api/x", Method::GET), "default/x {}");
}
