//! End to end for Next.js handlers: `apiroutes import examples/nextjs` → `kubectl apply -f -`
//! → pods running the Node runtime on the local node → the gateway. A form POST returns the
//! email, a dynamic route its parameter, and Preview Mode enabled by a handler's
//! `res.setPreviewData()` (signed into cookies by the gateway) changes what a handler serves.

use std::process::{Command, Stdio};

use apiroutes_e2e::{Cluster, Http, eventually};

const IMAGE: &str = "ghcr.io/apiroutes/nextjs-example:0.1.0";

fn import(namespace: &str) -> String {
    // The runner builds the CLI into CARGO_TARGET_DIR (tests/lib/platform.sh).
    let cli = std::env::var("APIROUTES_CLI").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_owned());
        format!("{target}/debug/apiroutes")
    });
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/nextjs");
    let out = Command::new(&cli)
        .args(["import", app, "--namespace", namespace, "--image", IMAGE])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {cli}: {e}"));
    assert!(out.status.success(), "apiroutes import failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn nextjs_handlers_run_unchanged_behind_the_gateway() {
    let Some(cluster) = Cluster::platform_from_env("nextjs_handlers").await else {
        return;
    };
    let ns = cluster.namespace("e2e-nextjs");
    let manifests = import(&ns.name);
    assert!(manifests.contains("path: /api/users/[id]"), "{manifests}");
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&manifests));
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
}
