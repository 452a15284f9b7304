#![allow(clippy::unwrap_used)]

use super::*;
use apiroutes_crds::ApiRouteSpec;

fn live(name: &str, image: &str, bundle: Option<&str>) -> ApiRoute {
    let mut r = ApiRoute::new(
        name,
        serde_json::from_value::<ApiRouteSpec>(
            serde_json::json!({"path": "/api/x", "image": image}),
        )
        .unwrap(),
    );
    if let Some(b) = bundle {
        r.annotations_mut()
            .insert(BUNDLE_ANNOTATION.to_owned(), b.to_owned());
    }
    r
}

#[test]
fn an_unchanged_bundle_keeps_the_image_it_runs_so_the_route_does_not_roll() {
    let old = live("api-a", "reg/app@sha256:old", Some("sha256:b1"));
    assert_eq!(
        choose_image("reg/app@sha256:new", "sha256:b1", Some(&old)),
        "reg/app@sha256:old"
    );
    // A changed bundle, a route never deployed, one applied by hand: the new image.
    assert_eq!(
        choose_image("reg/app@sha256:new", "sha256:b2", Some(&old)),
        "reg/app@sha256:new"
    );
    assert_eq!(
        choose_image("reg/app@sha256:new", "sha256:b1", None),
        "reg/app@sha256:new"
    );
    let by_hand = live("api-a", "reg/app:1", None);
    assert_eq!(
        choose_image("reg/app@sha256:new", "sha256:b1", Some(&by_hand)),
        "reg/app@sha256:new"
    );
}

#[test]
fn prune_removes_only_the_routes_the_app_no_longer_has() {
    let routes = [
        live("api-a", "i", None),
        live("api-b", "i", None),
        live("api-c", "i", None),
    ];
    let desired = BTreeSet::from(["api-a".to_owned(), "api-c".to_owned(), "api-new".to_owned()]);
    assert_eq!(prune(&routes, &desired), ["api-b"]);
    assert!(prune(&routes[..1], &desired).is_empty());
}

#[test]
fn app_names_come_from_the_flag_package_json_or_the_folder() {
    assert_eq!(app_name(Some("shop"), None, "x").unwrap(), "shop");
    for bad in ["Shop", "-shop", "shop_1", "1shop", ""] {
        assert!(app_name(Some(bad), None, "x").is_err(), "{bad}");
    }
    assert_eq!(
        app_name(None, Some(r#"{"name":"@acme/Web_Shop"}"#), "x").unwrap(),
        "web-shop"
    );
    assert_eq!(
        app_name(None, Some("{not json"), "My App").unwrap(),
        "my-app"
    );
    assert_eq!(
        app_name(None, Some(r#"{"private":true}"#), "nextjs").unwrap(),
        "nextjs"
    );
    let long = "a".repeat(80);
    assert_eq!(app_name(None, None, &long).unwrap().len(), 40);
    assert!(app_name(None, None, "123").is_err());
}

#[test]
fn the_manifest_carries_the_label_bundle_image_and_secret_reference_but_no_values() {
    let imported = Imported {
        file: "pages/api/a.js".into(),
        route: live("api-a", "placeholder", None),
    };
    let route = BundledRoute {
        imported,
        bundle: "sha256:b1".into(),
    };
    let m = route_manifest(
        &route,
        "shop",
        "team",
        "reg/shop@sha256:d",
        true,
        Some(("shop-env", "42")),
    );
    assert_eq!(m.metadata.namespace.as_deref(), Some("team"));
    assert_eq!(m.labels()[APP_LABEL], "shop");
    assert_eq!(m.annotations()[BUNDLE_ANNOTATION], "sha256:b1");
    assert_eq!(m.spec.image, "reg/shop@sha256:d");
    assert_eq!(m.spec.preview.as_ref().unwrap().image, "reg/shop@sha256:d");
    let secret = m.spec.env_from[0].secret_ref.as_ref().unwrap();
    assert_eq!(secret.name, "shop-env");
    let revision = m.spec.env.iter().find(|e| e.name == ENV_REVISION).unwrap();
    assert_eq!(revision.value.as_deref(), Some("42"));

    let plain = route_manifest(&route, "shop", "team", "i", false, None);
    assert!(plain.spec.env_from.is_empty());
    assert!(plain.spec.preview.is_none());
    assert!(plain.spec.env.iter().all(|e| e.name != ENV_REVISION));
}

#[test]
fn digests_separate_their_parts() {
    assert_ne!(
        digest_of([b"ab".as_slice(), b"c"]),
        digest_of([b"a".as_slice(), b"bc"])
    );
    assert_eq!(digest_of([b"x".as_slice()]), digest_of([b"x".as_slice()]));
}

fn config(json: serde_json::Value) -> NextConfig {
    serde_json::from_value(json).unwrap()
}

#[test]
fn next_config_entries_that_can_match_api_routes_are_named() {
    let c = config(serde_json::json!({
        "file": "next.config.js",
        "basePath": "/docs",
        "redirects": [
            {"source": "/api/old", "destination": "/api/new", "permanent": true},
            {"source": "/about", "destination": "/", "permanent": false},
            {"source": "/docs/api/x", "destination": "/y", "basePath": false, "permanent": true},
            {"source": "/elsewhere/api", "destination": "/y", "basePath": false, "permanent": true}
        ],
        "rewrites": [{"source": "/:path*", "destination": "/x/:path*"}],
        "headers": [
            {"source": "/(.*)", "headers": []},
            {"source": "/blog/:slug", "headers": []}
        ]
    }));
    let problems = config_problems(&c);
    let named: Vec<&str> = problems
        .iter()
        .map(|p| p.split(" (source").next().unwrap_or_default())
        .collect();
    assert_eq!(
        named,
        [
            "next.config.js: redirects[0]",
            "next.config.js: redirects[2]",
            "next.config.js: rewrites[0]",
            "next.config.js: headers[0]"
        ],
        "{problems:#?}"
    );
    assert!(
        problems[0].contains(r#"source "/api/old""#),
        "{}",
        problems[0]
    );
}

#[test]
fn base_path_must_be_a_path() {
    assert!(config_problems(&NextConfig::default()).is_empty());
    for good in ["/docs", "/a/b-c"] {
        let c = config(serde_json::json!({ "basePath": good }));
        assert!(config_problems(&c).is_empty(), "{good}");
    }
    for bad in ["docs", "/docs/", "/[x]", "/a b"] {
        let c = config(serde_json::json!({ "basePath": bad }));
        assert_eq!(config_problems(&c).len(), 1, "{bad}");
    }
}
