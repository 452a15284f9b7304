//! End to end for Next.js apps: `apiroutes deploy` of a copy of examples/nextjs (its route
//! files bundled into one image with no container engine, pushed to the node's registry,
//! its `.env` in a Secret, its ApiRoutes applied) → pods running the Node runtime on the
//! local node → the gateway. A form POST returns the email, a dynamic route its parameter,
//! Preview Mode enabled by a handler's `res.setPreviewData()` (signed into cookies by the
//! gateway) changes what a handler serves; a redeploy of the unchanged app changes nothing,
//! a changed handler rolls only its route, and a removed route file is pruned.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use apiroutes_e2e::{Cluster, Http, eventually};

fn cli() -> String {
    // The runner builds the CLI into CARGO_TARGET_DIR (tests/lib/platform.sh).
    std::env::var("APIROUTES_CLI").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_owned());
        format!("{target}/debug/apiroutes")
    })
}

/// `apiroutes deploy APP` into `namespace` as the app `shop`; its report.
fn deploy(cluster: &Cluster, app: &Path, namespace: &str) -> String {
    deploy_app(cluster, app, namespace, "shop")
}

/// `apiroutes deploy APP --app NAME` into `namespace`; its report (`kind/name outcome` lines).
fn deploy_app(cluster: &Cluster, app: &Path, namespace: &str, name: &str) -> String {
    let out = deploy_command(cluster, app, namespace, &["--app", name])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", cli()));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "apiroutes deploy failed: {report}");
    report
}

/// `apiroutes deploy APP ARGS...` into `namespace`, pushing to the node's registry.
fn deploy_command(cluster: &Cluster, app: &Path, namespace: &str, args: &[&str]) -> Command {
    let registry = std::env::var("APIROUTES_REGISTRY")
        .expect("APIROUTES_REGISTRY: the node's registry, exported with the cluster");
    let mut c = Command::new(cli());
    c.arg("deploy")
        .arg(app)
        .args(args)
        .args([
            "--namespace",
            namespace,
            "--insecure",
            "--registry",
            &registry,
        ])
        .arg("--kubeconfig")
        .arg(cluster.dir.join("kubeconfig"));
    c
}

/// A copy of examples/nextjs to change between deploys, with a `.env` and a route that
/// reads it; removed on drop.
struct App(PathBuf);

impl App {
    fn copy(ns: &str) -> App {
        let dir = std::env::temp_dir().join(format!("apiroutes-e2e-{ns}"));
        let _ = std::fs::remove_dir_all(&dir);
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/nextjs");
        let ok = Command::new("cp")
            .arg("-r")
            .arg(example)
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cp -r {example} {}", dir.display());
        let app = App(dir);
        app.write(
            ".env",
            "SHOP_GREETING=${SHOP_WORD}-from-dotenv\nSHOP_WORD=never\n",
        );
        app.write(".env.production", "SHOP_WORD=s3cret\n");
        app.write(
            "pages/api/env.js",
            "export default function handler(req, res) { res.json({ greeting: process.env.SHOP_GREETING ?? null }); }\n",
        );
        app
    }

    /// An empty app folder with these subfolders.
    fn empty(ns: &str, folders: &[&str]) -> App {
        let dir = std::env::temp_dir().join(format!("apiroutes-e2e-{ns}"));
        let _ = std::fs::remove_dir_all(&dir);
        let app = App(dir);
        for sub in folders {
            std::fs::create_dir_all(app.0.join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        app
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.0.join(rel), text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `deployment name → container image` in a namespace.
fn images(cluster: &Cluster, ns: &str) -> std::collections::BTreeMap<String, String> {
    let out = cluster.kubectl_ok(
        &[
            "get",
            "deployments",
            "-n",
            ns,
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.spec.template.spec.containers[0].image}{"\n"}{end}"#,
        ],
        None,
    );
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, i)| (n.to_owned(), i.to_owned()))
        .collect()
}

#[tokio::test]
async fn nextjs_app_deploys_and_runs_unchanged_behind_the_gateway() {
    let Some(cluster) = Cluster::platform_from_env("nextjs_app_deploys").await else {
        return;
    };
    let ns = cluster.namespace("e2e-nextjs");
    let app = App::copy(&ns.name);
    let report = deploy(&cluster, &app.0, &ns.name);
    assert!(report.contains("secret/shop-env created"), "{report}");
    assert!(report.contains("apiroute/api-users-id created"), "{report}");
    assert!(report.contains("apiroute/api-env created"), "{report}");
    // The .env values reach the functions through the Secret, never through the ApiRoute.
    let routes_yaml = cluster.kubectl_ok(&["get", "apiroutes", "-n", &ns.name, "-o", "yaml"], None);
    assert!(!routes_yaml.contains("s3cret"), "{routes_yaml}");
    assert!(routes_yaml.contains("name: shop-env"), "{routes_yaml}");
    let gw = cluster.gateway_url().to_owned();
    let http = Http::default();

    // A dynamic route returns its parameter (the first request may wake the function).
    let user = eventually(
        "GET /api/users/42",
        std::time::Duration::from_secs(120),
        || async {
            let a = http.get(&format!("{gw}/api/users/42")).await.ok()?;
            (a.status == 200).then(|| a.json())
        },
    )
    .await;
    assert_eq!(user["id"], "42");

    // A urlencoded form post is parsed into req.body as Next does.
    let a = eventually(
        "POST /api/subscribe",
        std::time::Duration::from_secs(120),
        || async {
            let a = http
                .request(
                    "POST",
                    &format!("{gw}/api/subscribe"),
                    &[("content-type", "application/x-www-form-urlencoded")],
                    "email=dev%40example.com&plan=free",
                )
                .await
                .ok()?;
            (a.status != 503 && a.status != 502).then_some(a)
        },
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.json()["email"], "dev@example.com");

    // Preview Mode: the handler's setPreviewData becomes the gateway's signed cookies...
    let published = eventually(
        "GET /api/preview/article",
        std::time::Duration::from_secs(120),
        || async {
            let a = http.get(&format!("{gw}/api/preview/article")).await.ok()?;
            (a.status == 200).then(|| a.json())
        },
    )
    .await;
    assert_eq!(published["article"], "published");
    let enable = eventually(
        "GET /api/preview/enable",
        std::time::Duration::from_secs(120),
        || async {
            let a = http
                .get(&format!(
                    "{gw}/api/preview/enable?secret=preview-secret&slug=launch"
                ))
                .await
                .ok()?;
            (a.status != 503 && a.status != 502).then_some(a)
        },
    )
    .await;
    assert!(enable.status == 307 || enable.status == 308, "{enable:?}");
    assert!(
        enable
            .headers
            .keys()
            .all(|k| !k.as_str().starts_with("x-apiroute-")),
        "no x-apiroute-* header leaves the gateway: {:?}",
        enable.headers
    );
    let cookies: Vec<String> = enable
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("__prerender_bypass="))
            && cookies
                .iter()
                .any(|c| c.starts_with("__next_preview_data=")),
        "{cookies:?}"
    );
    let cookie = cookies.join("; ");

    // ...which make the next request a preview request, with the handler's data.
    let draft = http
        .request(
            "GET",
            &format!("{gw}/api/preview/article"),
            &[("cookie", &cookie)],
            "",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(draft.status, 200);
    assert_eq!(draft.json()["article"], "draft");
    assert_eq!(draft.json()["slug"], "launch");

    // A tampered cookie is not a preview (and the gateway clears the pair).
    let tampered = cookie.replacen("__next_preview_data=", "__next_preview_data=x", 1);
    let a = http
        .request(
            "GET",
            &format!("{gw}/api/preview/article"),
            &[("cookie", &tampered)],
            "",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.json()["article"], "published");

    // The app's .env files, expanded as `next start` expands them, reach the function.
    let env = eventually("GET /api/env", Duration::from_secs(120), || async {
        let a = http.get(&format!("{gw}/api/env")).await.ok()?;
        (a.status == 200).then(|| a.json())
    })
    .await;
    assert_eq!(env["greeting"], "s3cret-from-dotenv");

    // Redeploying the unchanged app changes nothing: same image digest, same objects.
    let before = images(&cluster, &ns.name);
    assert!(before.contains_key("api-hello"), "{before:?}");
    let report = deploy(&cluster, &app.0, &ns.name);
    assert!(
        report.lines().all(|l| l.ends_with(" unchanged")),
        "a redeploy of an unchanged app changed: {report}"
    );

    // A changed handler rolls its route only; the others keep the image they run.
    app.write(
        "pages/api/hello.js",
        "export default function handler(req, res) { res.status(200).json({ message: 'Hello again' }); }\n",
    );
    let report = deploy(&cluster, &app.0, &ns.name);
    let changed: Vec<&str> = report
        .lines()
        .filter(|l| !l.ends_with(" unchanged"))
        .collect();
    assert_eq!(changed, ["apiroute/api-hello configured"], "{report}");
    let hello = eventually("the new /api/hello", Duration::from_secs(120), || async {
        let a = http.get(&format!("{gw}/api/hello")).await.ok()?;
        (a.status == 200 && a.json()["message"] == "Hello again").then_some(a)
    })
    .await;
    assert_eq!(hello.status, 200);
    let after = images(&cluster, &ns.name);
    for (name, image) in &before {
        if name == "api-hello" {
            assert_ne!(&after[name], image, "api-hello rolled to the new image");
        } else {
            assert_eq!(after.get(name), Some(image), "{name} must not roll");
        }
    }

    // A route file removed from the app is pruned with its route.
    std::fs::remove_file(app.0.join("pages/api/env.js")).unwrap_or_else(|e| panic!("{e}"));
    let report = deploy(&cluster, &app.0, &ns.name);
    assert!(report.contains("apiroute/api-env pruned"), "{report}");
    let gone = cluster.kubectl(&["get", "apiroute", "api-env", "-n", &ns.name], None);
    assert!(!gone.status.success(), "api-env still exists");
}

#[tokio::test]
async fn next_config_base_path_is_honoured_and_api_redirects_are_refused() {
    let Some(cluster) = Cluster::platform_from_env("next_config_base_path").await else {
        return;
    };
    let ns = cluster.namespace("e2e-basepath");
    let app = App::empty(&ns.name, &["pages/api"]);
    app.write(
        "pages/api/where.js",
        "export default function handler(req, res) { res.json({ url: req.url }); }\n",
    );
    // A redirect that can match an API route is refused by name; nothing is applied.
    app.write(
        "next.config.js",
        "module.exports = { basePath: '/docs', async redirects() { return [{ source: '/api/old', destination: '/api/where', permanent: true }]; } };\n",
    );
    let out = deploy_command(&cluster, &app.0, &ns.name, &["--app", "docs"])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", cli()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "deploy must refuse: {stderr}");
    assert!(
        stderr.contains(r#"next.config.js: redirects[0] (source "/api/old")"#),
        "{stderr}"
    );
    let none = cluster.kubectl_ok(&["get", "apiroutes", "-n", &ns.name, "-o", "name"], None);
    assert!(none.trim().is_empty(), "{none}");

    // basePath: the route is served under it, and the handler sees the URL without it.
    app.write(
        "next.config.js",
        "module.exports = { basePath: '/docs' };\n",
    );
    let report = deploy_app(&cluster, &app.0, &ns.name, "docs");
    assert!(report.contains("apiroute/api-where created"), "{report}");
    let gw = cluster.gateway_url().to_owned();
    let http = Http::default();
    let a = eventually("GET /docs/api/where", Duration::from_secs(120), || async {
        let a = http.get(&format!("{gw}/docs/api/where?x=1")).await.ok()?;
        (a.status == 200).then_some(a)
    })
    .await;
    assert_eq!(a.json()["url"], "/api/where?x=1");
    let outside = http
        .get(&format!("{gw}/api/where"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outside.status, 404, "outside the basePath");

    // trailingSlash: true: the routes get `spec.trailingSlash` (same bundles, same image:
    // nothing rolls); `/docs/api/where/` is served, `/docs/api/where` gets Next's 308 to it.
    app.write(
        "next.config.js",
        "module.exports = { basePath: '/docs', trailingSlash: true };\n",
    );
    let report = deploy_app(&cluster, &app.0, &ns.name, "docs");
    assert!(report.contains("apiroute/api-where configured"), "{report}");
    let r = eventually(
        "GET /docs/api/where: 308",
        Duration::from_secs(60),
        || async {
            let a = http.get(&format!("{gw}/docs/api/where?x=1")).await.ok()?;
            (a.status == 308).then_some(a)
        },
    )
    .await;
    assert_eq!(r.header("location"), Some("/docs/api/where/?x=1"));
    let a = http
        .get(&format!("{gw}/docs/api/where/?x=1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["url"], "/api/where/?x=1");
}

/// `apiroutes deploy --group`: an app whose route files share an in-memory store (written
/// by a `pages/api` route, read by an App Router route) runs as one function: one
/// Deployment `fn.NAME` serves both routes, so the second sees what the first wrote.
#[tokio::test]
async fn an_app_deployed_as_one_function_shares_module_state() {
    let Some(cluster) = Cluster::platform_from_env("group_shares_state").await else {
        return;
    };
    let ns = cluster.namespace("e2e-group");
    let app = App::empty(&ns.name, &["lib", "pages/api", "app/api/count"]);
    app.write("lib/store.js", "export const users = [];\n");
    app.write(
        "pages/api/users.js",
        "import { users } from '../../lib/store';\nexport default function handler(req, res) { users.push(req.body.name); res.status(201).json({ users }); }\n",
    );
    app.write(
        "app/api/count/route.js",
        "import { users } from '../../../lib/store';\nexport function GET() { return Response.json({ users }); }\n",
    );
    let group = ["--app", "store", "--group", "store"];
    let out = deploy_command(&cluster, &app.0, &ns.name, &group)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", cli()));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "apiroutes deploy --group failed: {report}"
    );
    assert!(report.contains("apiroute/api-users created"), "{report}");
    assert!(report.contains("apiroute/api-count created"), "{report}");

    let gw = cluster.gateway_url().to_owned();
    let http = Http::default();
    let added = eventually("POST /api/users", Duration::from_secs(120), || async {
        let a = http
            .request(
                "POST",
                &format!("{gw}/api/users"),
                &[("content-type", "application/json")],
                r#"{"name":"ada"}"#,
            )
            .await
            .ok()?;
        (a.status == 201).then_some(a)
    })
    .await;
    assert_eq!(added.json()["users"][0], "ada");
    let count = eventually("GET /api/count", Duration::from_secs(60), || async {
        let a = http.get(&format!("{gw}/api/count")).await.ok()?;
        (a.status == 200).then(|| a.json())
    })
    .await;
    assert_eq!(count["users"][0], "ada", "{count}");
    // One Deployment for the two routes.
    let deployments: Vec<String> = images(&cluster, &ns.name).into_keys().collect();
    assert_eq!(deployments, ["fn.store"]);
}
