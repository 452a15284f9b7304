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

#[test]
fn next_config_trailing_slash_and_base_path_reach_every_route() {
    let imported = |path: &str| Imported {
        file: "pages/api/a.js".into(),
        route: ApiRoute::new(
            "api-a",
            serde_json::from_value::<ApiRouteSpec>(serde_json::json!({"path": path, "image": "i"}))
                .unwrap(),
        ),
    };
    let mut routes = vec![imported("/api/a"), imported("/api")];
    apply_config(
        &mut routes,
        &config(serde_json::json!({ "basePath": "/docs", "trailingSlash": true })),
    );
    for r in &routes {
        assert!(r.route.spec.trailing_slash);
        assert!(r.route.spec.path.starts_with("/docs/api"));
        let env = &r.route.spec.env[0];
        assert_eq!(
            (env.name.as_str(), env.value.as_deref()),
            (BASE_PATH_ENV, Some("/docs"))
        );
    }
    // Next's default: the field stays out of the manifest.
    let mut routes = vec![imported("/api/a")];
    apply_config(&mut routes, &NextConfig::default());
    assert!(!routes[0].route.spec.trailing_slash);
    assert!(routes[0].route.spec.env.is_empty());
    let json = serde_json::to_value(&routes[0].route).unwrap();
    assert!(json["spec"].get("trailingSlash").is_none(), "{json}");
    // `compress: false` reaches the runtime; `true` is its default and adds nothing.
    let mut routes = vec![imported("/api/a")];
    apply_config(
        &mut routes,
        &config(serde_json::json!({ "compress": false })),
    );
    let env = &routes[0].route.spec.env[0];
    assert_eq!(
        (env.name.as_str(), env.value.as_deref()),
        (COMPRESS_ENV, Some("false"))
    );
    let mut routes = vec![imported("/api/a")];
    apply_config(
        &mut routes,
        &config(serde_json::json!({ "compress": true })),
    );
    assert!(routes[0].route.spec.env.is_empty());
}

/// Writes `text` to `rel` under `dir`, making its folders.
fn write_file(dir: &std::path::Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// This machine's `node` for both building and the image (a real build needs it on PATH).
fn host_toolchain() -> Toolchain {
    let node = std::process::Command::new("sh")
        .args(["-c", "command -v node"])
        .output()
        .unwrap();
    assert!(node.status.success(), "node is not on PATH");
    Toolchain {
        host_node: PathBuf::from("node"),
        image_node: PathBuf::from(String::from_utf8(node.stdout).unwrap().trim()),
        runtime: runtime_dir(None).unwrap(),
    }
}

fn build_options(group: Option<&str>) -> BuildOptions {
    BuildOptions {
        import: import::Options::default(),
        repository: "registry.test/shop".into(),
        tag: None,
        labels: BTreeMap::new(),
        epoch: 0,
        group: group.map(Into::into),
    }
}

/// `build` of a real app (the runtime loads its next.config, esbuild bundles the handlers,
/// the image is laid out) with `trailingSlash: true`: no longer refused, and every route's
/// manifest carries `trailingSlash: true`. Needs `node` on PATH.
#[test]
fn an_app_with_trailing_slash_true_builds_routes_that_carry_it() {
    let app = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| write_file(app.path(), rel, text);
    write(
        "next.config.mjs",
        "export default async () => ({ trailingSlash: true });\n",
    );
    write(
        "pages/api/hello.js",
        "export default function handler(req, res) { res.json({ url: req.url }); }\n",
    );
    write(
        "app/api/items/[id]/route.ts",
        "export async function GET(_req: Request) { return Response.json({ ok: true }); }\n",
    );
    let tools = host_toolchain();
    let options = build_options(None);
    let out = tempfile::tempdir().unwrap();
    let built = build(app.path(), &tools, &options, out.path()).unwrap();
    let mut paths: Vec<(&str, bool)> = built
        .routes
        .iter()
        .map(|r| {
            let spec = &r.imported.route.spec;
            (spec.path.as_str(), spec.trailing_slash)
        })
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [("/api/hello", true), ("/api/items/[id]", true)],
        "{paths:?}"
    );
    let manifest = route_manifest(&built.routes[0], "shop", "team", "i", false, None);
    assert_eq!(
        serde_json::to_value(&manifest).unwrap()["spec"]["trailingSlash"],
        true
    );
}

fn bundled(name: &str, file: &str, path: &str, handler: &str, bundle: &str) -> BundledRoute {
    let mut route = live(name, "placeholder", None);
    route.spec.path = path.into();
    route.spec.env = vec![EnvVar {
        name: import::HANDLER_ENV.into(),
        value: Some(handler.into()),
        value_from: None,
    }];
    BundledRoute {
        imported: Imported {
            file: file.into(),
            route,
        },
        bundle: bundle.into(),
    }
}

#[test]
fn group_puts_every_route_in_one_function_with_the_same_environment() {
    let mut routes = vec![
        bundled(
            "api-users",
            "pages/api/users.ts",
            "/api/users",
            "pages/api/users.mjs",
            "sha256:a",
        ),
        bundled(
            "api-users-id",
            "app/api/users/[id]/route.ts",
            "/api/users/[id]",
            "app/api/users/[id]/route.mjs",
            "sha256:b",
        ),
    ];
    group_routes(&mut routes, "shop", "sha256:all").unwrap();
    let manifests: Vec<ApiRoute> = routes
        .iter()
        .map(|r| {
            route_manifest(
                r,
                "shop",
                "team",
                "reg/shop@sha256:d",
                false,
                Some(("shop-env", "7")),
            )
        })
        .collect();
    for m in &manifests {
        assert_eq!(m.spec.function.as_deref(), Some("shop"));
        assert_eq!(m.annotations()[BUNDLE_ANNOTATION], "sha256:all");
        assert!(m.spec.env.iter().all(|e| e.name != import::HANDLER_ENV));
        let handlers = m
            .spec
            .env
            .iter()
            .find(|e| e.name == import::HANDLERS_ENV)
            .unwrap();
        let map: BTreeMap<String, String> =
            serde_json::from_str(handlers.value.as_deref().unwrap()).unwrap();
        assert_eq!(
            map,
            BTreeMap::from([
                ("/api/users".to_owned(), "pages/api/users.mjs".to_owned()),
                (
                    "/api/users/[id]".to_owned(),
                    "app/api/users/[id]/route.mjs".to_owned()
                ),
            ])
        );
    }
    // What the operator compares must agree, or it would refuse a route (FunctionMismatch).
    let (a, b) = (&manifests[0].spec, &manifests[1].spec);
    assert_eq!(
        (
            &a.image,
            a.port,
            &a.env,
            &a.env_from,
            &a.resources,
            &a.readiness_path,
            &a.scaling
        ),
        (
            &b.image,
            b.port,
            &b.env,
            &b.env_from,
            &b.resources,
            &b.readiness_path,
            &b.scaling
        )
    );
    // The per-route parts stay per route.
    assert_ne!(a.path, b.path);

    let mut bad = routes.clone();
    assert!(group_routes(&mut bad, "Shop", "x").is_err());
    assert_eq!(import::function_name_problem("shop-api"), None);
    for name in ["", "1shop", "shop-", "a.b", &"a".repeat(64)] {
        assert!(import::function_name_problem(name).is_some(), "{name}");
    }
}

/// `build --group` of a real app: one esbuild run puts the module two route files share in
/// one chunk, and every route's manifest names the function. Needs `node` on PATH.
#[test]
fn an_app_built_as_one_function_shares_its_modules_and_names_the_function() {
    let app = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| write_file(app.path(), rel, text);
    write("lib/store.js", "export const users = [];\n");
    write(
        "pages/api/users.js",
        "import { users } from '../../lib/store';\nexport default function handler(req, res) { users.push(1); res.json({ n: users.length }); }\n",
    );
    write(
        "app/api/count/route.ts",
        "import { users } from '../../../lib/store';\nexport async function GET() { return Response.json({ n: users.length }); }\n",
    );
    let tools = host_toolchain();
    let mut options = build_options(Some("shop"));
    let out = tempfile::tempdir().unwrap();
    let built = build(app.path(), &tools, &options, out.path()).unwrap();
    assert_eq!(built.routes.len(), 2);
    let bundles: BTreeSet<&str> = built.routes.iter().map(|r| r.bundle.as_str()).collect();
    assert_eq!(bundles.len(), 1, "one digest for the whole function");
    for r in &built.routes {
        let m = route_manifest(r, "shop", "team", "i", false, None);
        assert_eq!(m.spec.function.as_deref(), Some("shop"));
        let handlers = m
            .spec
            .env
            .iter()
            .find(|e| e.name == import::HANDLERS_ENV)
            .unwrap();
        let map: BTreeMap<String, String> =
            serde_json::from_str(handlers.value.as_deref().unwrap()).unwrap();
        assert_eq!(
            map.keys().map(String::as_str).collect::<Vec<_>>(),
            ["/api/count", "/api/users"]
        );
    }
    // The same app built again gives the same digest (redeploying changes nothing).
    let again = tempfile::tempdir().unwrap();
    let rebuilt = build(app.path(), &tools, &options, again.path()).unwrap();
    assert_eq!(rebuilt.routes[0].bundle, built.routes[0].bundle);
    assert_eq!(rebuilt.digest, built.digest);
    // Without --group each route has its own bundle, as before.
    options.group = None;
    let single = tempfile::tempdir().unwrap();
    let own = build(app.path(), &tools, &options, single.path()).unwrap();
    assert!(
        own.routes
            .iter()
            .all(|r| r.imported.route.spec.function.is_none())
    );
    assert_ne!(own.routes[0].bundle, own.routes[1].bundle);
}
