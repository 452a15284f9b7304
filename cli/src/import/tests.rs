#![allow(clippy::unwrap_used)]

use super::*;

fn pages(in_router: &str, text: &str) -> SourceFile {
    SourceFile {
        router: Router::Pages,
        rel: format!("pages/{in_router}"),
        in_router: in_router.to_owned(),
        text: text.to_owned(),
    }
}

fn app(in_router: &str, text: &str) -> SourceFile {
    SourceFile {
        router: Router::App,
        rel: format!("app/{in_router}"),
        in_router: in_router.to_owned(),
        text: text.to_owned(),
    }
}

const HANDLER: &str = "export default function handler(req, res) { res.json({}) }";

fn by_file(plan: &Plan, file: &str) -> ApiRoute {
    plan.routes
        .iter()
        .find(|r| r.file == file)
        .unwrap_or_else(|| panic!("no route for {file}"))
        .route
        .clone()
}

#[test]
fn a_mixed_tree_becomes_manifests() {
    let files = [
        pages("api/hello.js", HANDLER),
        pages(
            "api/upload.ts",
            "export const config = { api: { bodyParser: { sizeLimit: '2mb' } } }\nexport const maxDuration = 60\nexport default async function h(req, res) {}",
        ),
        pages(
            "api/raw.js",
            "export const config = { api: { bodyParser: false } }\nexport default h",
        ),
        pages("api/users/[id].js", HANDLER),
        pages("index.tsx", "export default function Home() {}"),
        pages("_app.tsx", "export default function App() {}"),
        app(
            "api/items/[itemId]/route.ts",
            "export async function GET() {}\nexport async function DELETE() {}",
        ),
        app(
            "(admin)/api/stats/route.js",
            "export const POST = async () => new Response()",
        ),
        app("about/page.tsx", "export default function Page() {}"),
        app("_lib/route.ts", "export function GET() {}"),
    ];
    let options = Options {
        namespace: Some("shop".into()),
        name_prefix: "shop-".into(),
        image_template: "registry.example/{route}:1".into(),
        preview_image_template: Some("registry.example/{name}:draft".into()),
        ..Options::default()
    };
    let plan = plan(&files, &options).unwrap();
    let names: Vec<(&str, &str)> = plan
        .routes
        .iter()
        .map(|r| (r.file.as_str(), r.route.metadata.name.as_deref().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("pages/api/hello.js", "shop-api-hello"),
            ("pages/api/upload.ts", "shop-api-upload"),
            ("pages/api/raw.js", "shop-api-raw"),
            ("pages/api/users/[id].js", "shop-api-users-id"),
            ("app/api/items/[itemId]/route.ts", "shop-api-items-itemid"),
            ("app/(admin)/api/stats/route.js", "shop-api-stats"),
        ]
    );

    let hello = by_file(&plan, "pages/api/hello.js");
    assert_eq!(hello.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(hello.spec.path, "/api/hello");
    assert_eq!(hello.spec.methods, None);
    assert_eq!(hello.spec.image, "registry.example/api-hello:1");
    assert_eq!(
        hello.spec.preview.as_ref().unwrap().image,
        "registry.example/shop-api-hello:draft"
    );
    assert_eq!(hello.spec.body_limit, "1Mi");
    assert_eq!(hello.spec.timeout_seconds, 30);
    assert_eq!(hello.spec.readiness_path.as_deref(), Some("/healthz"));
    assert_eq!(hello.spec.env[0].name, "APIROUTES_HANDLER");
    assert_eq!(
        hello.spec.env[0].value.as_deref(),
        Some("pages/api/hello.mjs")
    );

    let upload = by_file(&plan, "pages/api/upload.ts");
    assert_eq!(upload.spec.body_limit, "2Mi");
    assert_eq!(upload.spec.timeout_seconds, 60);
    assert_eq!(by_file(&plan, "pages/api/raw.js").spec.body_limit, "100Mi");

    let items = by_file(&plan, "app/api/items/[itemId]/route.ts");
    assert_eq!(items.spec.path, "/api/items/[itemId]");
    assert_eq!(
        items.spec.methods.as_deref().unwrap(),
        ["GET", "HEAD", "OPTIONS", "DELETE"]
    );
    assert_eq!(items.spec.body_limit, "100Mi");
    let stats = by_file(&plan, "app/(admin)/api/stats/route.js");
    assert_eq!(stats.spec.path, "/api/stats");
    assert_eq!(stats.spec.methods.as_deref().unwrap(), ["OPTIONS", "POST"]);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn handler_paths_follow_the_image_or_the_source() {
    let mut options = Options::default();
    assert_eq!(
        handler_path("pages/api/x/[id].ts", &options),
        "pages/api/x/[id].mjs"
    );
    assert_eq!(
        handler_path("src/app/api/route.js", &options),
        "src/app/api/route.mjs"
    );
    options.source_handlers = true;
    options.handler_root = Some("/srv/app/".into());
    assert_eq!(
        handler_path("pages/api/x.js", &options),
        "/srv/app/pages/api/x.js"
    );
}

#[test]
fn image_templates() {
    assert_eq!(render_image("r/{name}:1", "p-x", "x").unwrap(), "r/p-x:1");
    assert_eq!(render_image("r/fn:{route}", "p-x", "x").unwrap(), "r/fn:x");
    assert!(
        render_image("r/{nme}", "a", "a")
            .unwrap_err()
            .contains("unknown placeholder {nme}")
    );
    assert!(
        render_image("r/{name", "a", "a")
            .unwrap_err()
            .contains("unclosed")
    );
    assert!(render_image("", "a", "a").is_err());
}

fn refusals(files: &[SourceFile]) -> Vec<String> {
    plan(files, &Options::default()).unwrap_err()
}

#[test]
fn refuses_what_next_refuses() {
    let bad_preview = Options {
        preview_image_template: Some("x/{what}".into()),
        ..Options::default()
    };
    let r = plan(&[pages("api/a.js", HANDLER)], &bad_preview).unwrap_err();
    assert!(r[0].contains("unknown placeholder {what}"), "{r:?}");
    let r = refusals(&[
        pages("api/users.js", HANDLER),
        pages("api/users/index.js", HANDLER),
    ]);
    assert_eq!(
        r,
        [
            "pages/api/users.js and pages/api/users/index.js are both the route /api/users; Next.js serves one file per route: remove or rename one"
        ]
    );
    let r = refusals(&[
        pages("api/a/[id].js", HANDLER),
        pages("api/a/[slug]/b.js", HANDLER),
    ]);
    assert!(
        r[0].contains("different parameter names at the same level"),
        "{r:?}"
    );
    let r = refusals(&[pages("api/[...all]/x.js", HANDLER)]);
    assert!(r[0].contains("a catch-all must be the last part"), "{r:?}");
    let r = refusals(&[
        pages("api/shop/index.js", HANDLER),
        pages("api/shop/[[...p]].js", HANDLER),
    ]);
    assert!(
        r[0].contains("same specificity as an optional catch-all"),
        "{r:?}"
    );
    // The App Router and the Pages Router share one URL space.
    let r = refusals(&[
        pages("api/x.js", HANDLER),
        app("api/x/route.ts", "export function GET() {}"),
    ]);
    assert!(
        r[0].contains("pages/api/x.js and app/api/x/route.ts are both the route /api/x"),
        "{r:?}"
    );
    let r = refusals(&[
        app("api/x/route.ts", "export function GET() {}"),
        app("api/x/page.tsx", "export default function P() {}"),
    ]);
    assert!(r[0].contains("both the route /api/x"), "{r:?}");
    // Outside the pattern language.
    let r = refusals(&[pages("api/caf\u{e9}.js", HANDLER)]);
    assert!(
        r[0].contains("is not in the apiroutes pattern language"),
        "{r:?}"
    );
    let r = refusals(&[pages(
        "api/x.js",
        "export const config = { api: { bodyParser: { sizeLimit: 'lots' } } }",
    )]);
    assert!(
        r[0].contains("sizeLimit \"lots\" is not a positive size"),
        "{r:?}"
    );
    let r = refusals(&[pages("api/x.js", "export const maxDuration = 7200")]);
    assert!(r[0].contains("maxDuration 7200 is outside"), "{r:?}");
    let r = refusals(&[pages("index.js", HANDLER)]);
    assert!(r[0].starts_with("no API route files found"), "{r:?}");
    // Every reason at once.
    let r = refusals(&[
        pages("api/a.js", HANDLER),
        pages("api/a.ts", HANDLER),
        pages("api/[...x]/y.js", HANDLER),
    ]);
    assert_eq!(r.len(), 2, "{r:?}");
}

#[test]
fn warns_about_what_it_leaves_out_or_cannot_read() {
    let files = [
        pages("api/ok.js", HANDLER),
        pages("api/esm.mjs", HANDLER),
        pages("api/_lib/db.js", "export const db = 1"),
        pages("api/ok.test.js", "test()"),
        pages(
            "api/dyn.js",
            "export const config = { api: { bodyParser: { sizeLimit: LIMIT } } }\nexport const maxDuration = MAX",
        ),
        app("api/star/route.ts", "export * from './impl'"),
        app("api/none/route.ts", "const GET = 1"),
    ];
    let plan = plan(&files, &Options::default()).unwrap();
    let files: Vec<&str> = plan.routes.iter().map(|r| r.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "pages/api/ok.js",
            "pages/api/dyn.js",
            "app/api/star/route.ts",
            "app/api/none/route.ts"
        ]
    );
    let w = plan.warnings.join("\n");
    for needle in [
        "pages/api/esm.mjs: skipped: .mjs is not in pageExtensions",
        "pages/api/_lib/db.js: skipped: Next.js would route it as /api/_lib/db",
        "pages/api/ok.test.js: skipped",
        "pages/api/dyn.js: config.api.bodyParser.sizeLimit (LIMIT) is not a literal",
        "pages/api/dyn.js: maxDuration (MAX) is not a number literal",
        "app/api/star/route.ts: `export * from`",
        "app/api/none/route.ts: no exported GET",
    ] {
        assert!(w.contains(needle), "warnings lack {needle:?}:\n{w}");
    }
    assert_eq!(by_file(&plan, "app/api/star/route.ts").spec.methods, None);
}
