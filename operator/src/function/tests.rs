#![allow(clippy::unwrap_used)]

use apiroutes_crds::testing::route;
use k8s_openapi::api::core::v1::EnvVar;

use super::*;
use crate::resources::{GatewayPeer, desired_deployment, desired_network_policy, desired_service};

fn arcs(v: &[&ApiRoute]) -> Vec<Arc<ApiRoute>> {
    v.iter().map(|r| Arc::new((*r).clone())).collect()
}

fn group_of(route: &ApiRoute, all: &[Arc<ApiRoute>]) -> Group {
    match membership(route, all) {
        Membership::Shared(g) => *g,
        other => panic!("not shared: {other:?}"),
    }
}

#[test]
fn routes_without_a_function_keep_their_own_deployment() {
    let a = route("a", "/api/a").created(1);
    assert!(matches!(membership(&a, &arcs(&[&a])), Membership::Own));
    assert_eq!(
        scale_unit(&a, Variant::Main),
        RouteRef {
            namespace: "default".into(),
            name: "a".into(),
            variant: Variant::Main
        }
    );
}

#[test]
fn members_are_the_namespace_s_routes_of_the_function_oldest_first() {
    let a = route("a", "/api/a").created(2).function("shop");
    let b = route("b", "/api/b").created(1).function("shop");
    let c = route("c", "/api/c").created(1).function("other");
    let mut d = route("d", "/api/d").created(1).function("shop");
    d.metadata.namespace = Some("elsewhere".into());
    let mut e = route("e", "/api/e").created(0).function("shop");
    e.metadata.deletion_timestamp = a.metadata.creation_timestamp.clone();
    let all = [&a, &b, &c, &d, &e];
    let names: Vec<String> = members("default", "shop", all)
        .iter()
        .map(|r| r.name_any())
        .collect();
    assert_eq!(names, ["b", "a"]);
    // Every member sees the same group, whichever reconciles.
    let cache = arcs(&all);
    let (ga, gb) = (group_of(&a, &cache), group_of(&b, &cache));
    assert_eq!(ga.reference.name_any(), "b");
    assert_eq!(
        desired_function_deployment(&ga, &Config::default()),
        desired_function_deployment(&gb, &Config::default())
    );
}

#[test]
fn the_shared_deployment_is_the_reference_s_under_the_function_s_name() {
    let mut a = route("a", "/api/a").created(1).function("shop");
    a.spec.timeout_seconds = 10;
    a.spec.readiness_path = Some("/healthz".into());
    let mut b = route("b", "/api/b").created(2).function("shop");
    b.spec.timeout_seconds = 60;
    b.spec.readiness_path = Some("/healthz".into());
    let g = group_of(&b, &arcs(&[&a, &b]));
    let d = desired_function_deployment(&g, &Config::default());
    assert_eq!(d.metadata.name.as_deref(), Some("fn.shop"));
    let labels = function_labels("shop");
    assert_eq!(d.metadata.labels.as_ref(), Some(&labels));
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, None);
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&labels));
    let template = &spec.template;
    assert_eq!(
        template.metadata.as_ref().unwrap().labels.as_ref(),
        Some(&labels)
    );
    let pod = template.spec.as_ref().unwrap();
    // The longest deadline of any member drains.
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(crate::resources::grace_seconds(60))
    );
    assert_eq!(pod.hostname.as_deref(), Some("shop"));
    // The container is the reference's own.
    let own = desired_deployment(&a, Variant::Main, &Config::default());
    assert_eq!(
        pod.containers,
        own.spec.unwrap().template.spec.unwrap().containers
    );
    assert!(crate::resources::covers(&d, &d));
}

#[test]
fn every_member_owns_the_shared_deployment_and_the_reference_controls_it() {
    let a = route("a", "/api/a").created(1).function("shop");
    let b = route("b", "/api/b").created(2).function("shop");
    let mut odd = route("odd", "/api/odd").created(3).function("shop");
    odd.spec.image = "other:1".into();
    let g = group_of(&a, &arcs(&[&a, &b, &odd]));
    let owners = owner_references(&g);
    let got: Vec<(&str, Option<bool>)> = owners
        .iter()
        .map(|o| (o.name.as_str(), o.controller))
        .collect();
    // The route that disagrees owns nothing: it is not part of the function.
    assert_eq!(got, [("a", Some(true)), ("b", None)]);
    assert!(owners.iter().all(|o| o.kind == "ApiRoute"));
    assert_eq!(owners[1].uid, "uid-b");
}

#[test]
fn a_route_that_disagrees_with_the_reference_is_refused_naming_the_field() {
    let a = route("a", "/api/a").created(1).function("shop");
    let mut b = route("b", "/api/b").created(2).function("shop");
    b.spec.env = vec![EnvVar {
        name: "X".into(),
        value: Some("1".into()),
        value_from: None,
    }];
    match membership(&b, &arcs(&[&a, &b])) {
        Membership::Mismatch {
            function,
            reference,
            field,
        } => assert_eq!(
            (function.as_str(), reference.as_str(), field),
            ("shop", "a", "spec.env")
        ),
        other => panic!("{other:?}"),
    }
    // Per-route fields may differ: path, methods, timeout, body limit.
    let mut c = route("c", "/api/c/[id]").created(3).function("shop");
    c.spec.timeout_seconds = 5;
    c.spec.body_limit = "10Mi".into();
    c.spec.methods = Some(vec!["POST".into()]);
    assert!(matches!(
        membership(&c, &arcs(&[&a, &c])),
        Membership::Shared(_)
    ));
    let mut s = c.clone();
    s.spec.scaling.max_replicas = 3;
    assert_eq!(mismatch(&a, &s), Some("spec.scaling"));
    let mut i = c.clone();
    i.spec.image = "x:2".into();
    assert_eq!(mismatch(&a, &i), Some("spec.image"));
}

#[test]
fn members_serve_from_the_function_s_pods_through_their_own_services() {
    let a = route("a", "/api/a").created(1).function("shop");
    let svc = desired_service(&a, Variant::Main, &Config::default());
    // Named and labelled after the route (the gateway's owner chain), selecting the
    // function's pods.
    assert_eq!(svc.metadata.name.as_deref(), Some("a"));
    assert_eq!(
        svc.metadata.labels.as_ref().unwrap().get(ROUTE_LABEL),
        Some(&"a".to_owned())
    );
    assert_eq!(
        svc.spec.unwrap().selector.as_ref(),
        Some(&function_labels("shop"))
    );
    let peer = GatewayPeer {
        namespace: "apiroutes".into(),
        labels: BTreeMap::from([("app".into(), "gateway".into())]),
    };
    let np = desired_network_policy(&a, &peer);
    assert_eq!(np.metadata.name.as_deref(), Some("a"));
    let selected = np.spec.unwrap().pod_selector.unwrap().match_labels.unwrap();
    assert_eq!(selected.get(FUNCTION), Some(&"shop".to_owned()));
}

#[test]
fn the_routes_of_a_function_wake_and_scale_as_one_unit() {
    let a = route("a", "/api/a").created(1).function("shop");
    let b = route("b", "/api/b").created(2).function("shop");
    let unit = scale_unit(&a, Variant::Main);
    assert_eq!(unit, scale_unit(&b, Variant::Main));
    assert_eq!(unit.name, "fn.shop");
    // No route can be named like that: route names have no '.'.
    assert!(apiroutes_crds::labels::route_name_problem(&unit.name).is_some());
}

#[test]
fn a_function_no_route_names_any_more_is_orphaned_by_its_last_owner() {
    let a = route("a", "/api/a").created(1).function("shop");
    let b = route("b", "/api/b").created(2).function("shop");
    let g = group_of(&a, &arcs(&[&a, &b]));
    let mut d = desired_function_deployment(&g, &Config::default());
    d.metadata.namespace = Some("default".into());
    let d = crate::cache::CachedDeployment::from(d);
    // `a` left the function; `b` still names it: `b`'s reconcile re-owns it.
    let a_alone = route("a", "/api/a").created(1);
    assert!(orphaned(&a_alone, [&d], &arcs(&[&a_alone, &b])).is_empty());
    // Both left: the last to leave deletes it.
    let b_alone = route("b", "/api/b").created(2);
    assert_eq!(
        orphaned(&a_alone, [&d], &arcs(&[&a_alone, &b_alone])),
        ["fn.shop"]
    );
    // A member keeps it.
    assert!(orphaned(&a, [&d], &arcs(&[&a])).is_empty());
}

const ROUTE_LABEL: &str = apiroutes_crds::labels::ROUTE;
