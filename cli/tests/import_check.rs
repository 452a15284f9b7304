//! The `apiroutes` binary on fixture trees: `import` output parsed back as ApiRoutes and
//! fed to `check`; refusals with their exit code and message.

#![allow(clippy::unwrap_used)]

use std::{
    fs,
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use apiroutes_crds::ApiRoute;
use serde::Deserialize;

const BIN: &str = env!("CARGO_BIN_EXE_apiroutes");

fn apiroutes(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("APIROUTES_IMAGE")
        .env_remove("APIROUTES_NAMESPACE")
        .env_remove("APIROUTES_NAME_PREFIX")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, body) in files {
        let full = dir.path().join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, body).unwrap();
    }
    dir
}

fn parse(yaml: &str) -> Vec<ApiRoute> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| ApiRoute::deserialize(doc).unwrap())
        .collect()
}

fn find<'a>(routes: &'a [ApiRoute], path: &str) -> &'a ApiRoute {
    routes
        .iter()
        .find(|r| r.spec.path == path)
        .unwrap_or_else(|| panic!("no route for {path}"))
}

const HANDLER: &str =
    "export default function handler(req, res) {\n  res.status(200).json({ ok: true })\n}\n";

#[test]
fn import_then_check_round_trips() {
    let app = tree(&[
        ("pages/api/hello.js", HANDLER),
        ("pages/api/index.ts", HANDLER),
        ("pages/api/users/index.js", HANDLER),
        ("pages/api/users/[id].js", HANDLER),
        ("pages/api/users/[id]/posts/[postId].ts", HANDLER),
        ("pages/api/docs/[...slug].js", HANDLER),
        ("pages/api/shop/[[...path]].jsx", HANDLER),
        (
            "pages/api/upload.js",
            "export const config = {\n  api: { bodyParser: { sizeLimit: '500kb' } },\n}\nexport const maxDuration = 120\nexport default function h(req, res) {}\n",
        ),
        (
            "pages/index.tsx",
            "export default function Home() { return null }\n",
        ),
        (
            "app/api/items/[itemId]/route.ts",
            "export async function GET(req, { params }) {}\nexport async function PATCH() {}\n",
        ),
        (
            "app/(internal)/api/health/route.js",
            "export const GET = () => new Response('ok')\n",
        ),
        ("app/_components/route.ts", "export function GET() {}\n"),
        ("app/api/items/[itemId]/helpers.ts", "export const x = 1\n"),
    ]);
    let dir = app.path().to_str().unwrap();
    let out = apiroutes(
        &[
            "import",
            dir,
            "--namespace",
            "shop",
            "--image",
            "registry.example/shop:{route}",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let yaml = text(&out.stdout);
    let routes = parse(&yaml);
    let mut paths: Vec<&str> = routes.iter().map(|r| r.spec.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api",
            "/api/docs/[...slug]",
            "/api/health",
            "/api/hello",
            "/api/items/[itemId]",
            "/api/shop/[[...path]]",
            "/api/upload",
            "/api/users",
            "/api/users/[id]",
            "/api/users/[id]/posts/[postId]",
        ]
    );
    let user = find(&routes, "/api/users/[id]");
    assert_eq!(user.metadata.name.as_deref(), Some("api-users-id"));
    assert_eq!(user.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(user.spec.image, "registry.example/shop:api-users-id");
    assert_eq!(
        user.spec.env[0].value.as_deref(),
        Some("pages/api/users/[id].mjs")
    );
    assert_eq!(find(&routes, "/api").metadata.name.as_deref(), Some("api"));
    let upload = find(&routes, "/api/upload");
    assert_eq!(
        (upload.spec.body_limit.as_str(), upload.spec.timeout_seconds),
        ("500Ki", 120)
    );
    let items = find(&routes, "/api/items/[itemId]");
    assert_eq!(
        items.spec.methods.as_deref().unwrap(),
        ["GET", "HEAD", "OPTIONS", "PATCH"]
    );
    assert_eq!(
        items.spec.env[0].value.as_deref(),
        Some("app/api/items/[itemId]/route.mjs")
    );
    // Each document says where it came from.
    assert!(yaml.contains("---\n# pages/api/users/[id].js\napiVersion: apiroutes.dev/v1alpha1\n"));

    // What import writes, check accepts: from stdin and from a file.
    let out = apiroutes(&["check", "-"], Some(&yaml));
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("10 ApiRoute(s) checked: 0 error(s)"));
    let file = app.path().join("routes.yaml");
    fs::write(&file, &yaml).unwrap();
    let out = apiroutes(&["check", file.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stdout));

    // Importing the same tree twice into one namespace conflicts, with the winner named.
    let another = "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata: {name: api-hello-2, namespace: shop}\nspec: {path: /api/hello, image: e, methods: [GET]}\n";
    let out = apiroutes(&["check", file.to_str().unwrap(), "-"], Some(another));
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(
        report.contains(
            "<stdin>#1 shop/api-hello-2: error: spec.path: /api/hello conflicts with shop/api-hello"
        ),
        "{report}"
    );
}

#[test]
fn a_pages_folder_or_a_src_layout_works_too() {
    let app = tree(&[
        ("src/pages/api/a.js", HANDLER),
        ("src/app/api/b/route.ts", "export function POST() {}"),
    ]);
    let out = apiroutes(
        &["import", app.path().to_str().unwrap(), "--source-handlers"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let routes = parse(&text(&out.stdout));
    assert_eq!(
        find(&routes, "/api/a").spec.env[0].value.as_deref(),
        Some("src/pages/api/a.js")
    );
    assert_eq!(
        find(&routes, "/api/b").spec.env[0].value.as_deref(),
        Some("src/app/api/b/route.ts")
    );

    let pages = app.path().join("src/pages");
    let out = apiroutes(&["import", pages.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let routes = parse(&text(&out.stdout));
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0].spec.env[0].value.as_deref(),
        Some("src/pages/api/a.mjs")
    );
}

fn refused(files: &[(&str, &str)]) -> String {
    let app = tree(files);
    let out = apiroutes(&["import", app.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "", "nothing is written when refused");
    text(&out.stderr)
}

#[test]
fn refuses_what_next_refuses() {
    let err = refused(&[
        ("pages/api/users.js", HANDLER),
        ("pages/api/users/index.js", HANDLER),
    ]);
    assert!(
        err.starts_with("apiroutes: refusing to import:\n  - "),
        "{err}"
    );
    assert!(
        err.contains(
            "pages/api/users.js and pages/api/users/index.js are both the route /api/users"
        ),
        "{err}"
    );
    let err = refused(&[
        ("pages/api/p/[id].js", HANDLER),
        ("pages/api/p/[slug]/edit.js", HANDLER),
    ]);
    assert!(
        err.contains("different parameter names at the same level (/api/p: \"id\" and \"slug\")"),
        "{err}"
    );
    let err = refused(&[("pages/api/[...path]/x.js", HANDLER)]);
    assert!(
        err.contains("a catch-all must be the last part of the path"),
        "{err}"
    );
    let err = refused(&[
        ("pages/api/shop.js", HANDLER),
        ("pages/api/shop/[[...rest]].js", HANDLER),
    ]);
    assert!(
        err.contains("same specificity as an optional catch-all"),
        "{err}"
    );
    let err = refused(&[("pages/about.js", HANDLER)]);
    assert!(err.contains("no API route files found"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let out = apiroutes(&["import", "/nonexistent/apiroutes-test"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a directory"));
    let app = tree(&[("pages/api/a.js", HANDLER)]);
    let out = apiroutes(
        &[
            "import",
            app.path().to_str().unwrap(),
            "--image",
            "x/{nope}",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown placeholder {nope}"));
    let out = apiroutes(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_reports_field_errors_and_exits_1() {
    let bad = "apiVersion: apiroutes.dev/v1alpha1\nkind: ApiRoute\nmetadata: {name: a}\nspec:\n  path: /api/[...a]/b\n  image: ''\n";
    let out = apiroutes(&["check", "-"], Some(bad));
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(
        report.contains("<stdin>#1 default/a: error: spec.image: must not be empty"),
        "{report}"
    );
    let out = apiroutes(&["check", "-"], Some(&bad.replace("image: ''", "image: e")));
    let report = text(&out.stdout);
    assert!(
        report.contains("<stdin>#1 default/a: error: spec.path: catch-all \"[...a]\" at byte 5 must be the last segment"),
        "{report}"
    );
    assert!(
        report.ends_with("1 ApiRoute(s) checked: 1 error(s), 0 warning(s)\n"),
        "{report}"
    );
}

#[test]
fn the_kubectl_plugin_name_says_kubectl_apiroutes() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-apiroutes"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("Usage: kubectl apiroutes <COMMAND>"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn imports_the_example_app() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nextjs");
    if !example.join("pages/api").is_dir() {
        eprintln!("examples/nextjs/pages/api not there; nothing to import");
        return;
    }
    let out = apiroutes(&["import", example.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let routes = parse(&yaml);
    for (path, name) in [
        ("/api/hello", "api-hello"),
        ("/api/users/[id]", "api-users-id"),
        ("/api/docs/[...slug]", "api-docs-slug"),
        ("/api/shop/[[...path]]", "api-shop-path"),
        ("/api/subscribe", "api-subscribe"),
    ] {
        assert_eq!(find(&routes, path).metadata.name.as_deref(), Some(name));
    }
    let out = apiroutes(&["check", "-"], Some(&yaml));
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// `import --group`: every route names the one function, all carry the same pattern → file
/// map, and `check` (the CRD's rules, the conflict rule) accepts the set. An image that
/// names a route cannot serve a whole function.
#[test]
fn import_group_puts_every_route_in_one_function() {
    let app = tree(&[
        ("pages/api/users/[id].js", HANDLER),
        ("pages/api/count.js", HANDLER),
        (
            "app/api/items/route.js",
            "export function GET() { return Response.json({}); }\n",
        ),
    ]);
    let dir = app.path().to_str().unwrap();
    let out = apiroutes(
        &[
            "import",
            dir,
            "--group",
            "shop",
            "--image",
            "registry.test/shop:1",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let routes = parse(&yaml);
    assert_eq!(routes.len(), 3);
    let envs: Vec<_> = routes
        .iter()
        .map(|r| serde_json::to_string(&r.spec.env).unwrap())
        .collect();
    assert!(envs.iter().all(|e| *e == envs[0]), "{envs:?}");
    for r in &routes {
        assert_eq!(r.spec.function.as_deref(), Some("shop"));
        assert!(r.spec.env.iter().all(|e| e.name != "APIROUTES_HANDLER"));
    }
    let handlers = routes[0]
        .spec
        .env
        .iter()
        .find(|e| e.name == "APIROUTES_HANDLERS")
        .unwrap();
    let map: serde_json::Value = serde_json::from_str(handlers.value.as_deref().unwrap()).unwrap();
    assert_eq!(map.as_object().unwrap().len(), 3, "{map}");
    assert!(
        map["/api/users/[id]"]
            .as_str()
            .unwrap()
            .ends_with("[id].mjs"),
        "{map}"
    );
    let check = apiroutes(&["check", "-"], Some(&yaml));
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));

    let out = apiroutes(
        &[
            "import",
            dir,
            "--group",
            "shop",
            "--image",
            "registry.test/{name}:1",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--group"),
        "{}",
        text(&out.stderr)
    );
    let out = apiroutes(&["import", dir, "--group", "Shop"], None);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("--group \"Shop\""),
        "{}",
        text(&out.stderr)
    );
}
