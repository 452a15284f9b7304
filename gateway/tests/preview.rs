//! Preview keys with the real `apiroutes-gateway` binary (static mode, key files on disk):
//! the enable token signs nothing, rotated keys keep sessions while they are listed (the
//! files are reloaded), and preview data a function sets stays in its namespace.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, SystemTime},
};

use apiroutes_gateway::preview::{PreviewKeys, Scope};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use tokio::net::TcpListener;

const TOKEN: &str = "the-enable-token-0123456789abcdef";
const OLD_KEY: &str = "old-signing-key-0123456789abcdef";
const NEW_KEY: &str = "new-signing-key-0123456789abcdef";

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "apiroutes-preview-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Replaces a file in one step (write, then rename), as the kubelet swaps a Secret.
    fn write(&self, name: &str, contents: &str) -> String {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
        self.path(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A function answering every request with `x-apiroute-preview-set` for `data_json`, as the
/// Node runtime does for `res.setPreviewData(data)`.
async fn setter(data_json: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let header = b64(&format!(r#"{{"data":{data_json}}}"#));
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let header = header.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let header = header.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .header("x-apiroute-preview-set", header)
                                .body(Full::new(Bytes::from_static(b"{}")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

fn route(
    ns: &str,
    name: &str,
    path: &str,
    main: SocketAddr,
    preview: Option<SocketAddr>,
) -> String {
    let (spec_preview, backends) = match preview {
        Some(p) => (
            ", preview: { image: y }",
            format!("    backends: [\"http://{main}\"]\n    previewBackends: [\"http://{p}\"]\n"),
        ),
        None => ("", format!("    backends: [\"http://{main}\"]\n")),
    };
    format!(
        "  - route:\n      metadata: {{ name: {name}, namespace: {ns}, creationTimestamp: \"2026-01-01T00:00:00Z\" }}\n      spec: {{ path: \"{path}\", image: x{spec_preview} }}\n{backends}"
    )
}

/// The gateway binary with the given key files and routes.
fn gateway(dir: &Scratch, routes: &[String], token: Option<&str>, keys: &str) -> Proc {
    let routes_path = dir.write("routes.yaml", &routes_file(routes));
    let mut args = vec![
        "--static".to_owned(),
        routes_path,
        "--preview-keys-file".to_owned(),
        keys.to_owned(),
        "--preview-reload-interval".to_owned(),
        "1".to_owned(),
    ];
    if let Some(t) = token {
        args.extend(["--preview-token-file".to_owned(), t.to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (gw, _admin) = gateway_bin(&args, |cmd| {
        cmd.env_remove("APIROUTES_PREVIEW_SECRET")
            .env_remove("APIROUTES_GATEWAY_PREVIEW_SECRET_FILE");
    });
    wait_listening(gw.addr);
    gw
}

/// `name=value` of each `Set-Cookie` in a response head, joined as a `Cookie` header.
fn cookie_of(head: &str) -> String {
    let cookies: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .map(|c| c.split(';').next().unwrap())
        .collect();
    assert_eq!(cookies.len(), 2, "{head}");
    cookies.join("; ")
}

/// A pair minted outside the gateway, as a `Cookie` header.
fn minted(keys: &PreviewKeys, scope: &Scope, data_json: &str) -> String {
    let p = keys.sign(scope, &b64(data_json), SystemTime::now(), None);
    format!(
        "__prerender_bypass={}; __next_preview_data={}",
        p.bypass, p.data
    )
}

/// Whether `keys` verify the pair in a `Cookie` header made by [`cookie_of`].
fn verifies(keys: &PreviewKeys, cookie: &str) -> bool {
    let value = |name: &str| {
        cookie
            .split("; ")
            .find_map(|c| c.strip_prefix(name))
            .unwrap()
            .to_owned()
    };
    keys.verify(
        &value("__prerender_bypass="),
        &value("__next_preview_data="),
        SystemTime::now(),
    )
    .is_ok()
}

/// GET `path` with `cookie`; the echo function's JSON answer.
async fn get_with(gw: SocketAddr, path: &str, cookie: &str) -> serde_json::Value {
    let req = http::Request::get(format!("http://{gw}{path}"))
        .header("cookie", cookie)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(&client(), req).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// "preview" with the data, "invalid" (flagged to be cleared) or "none", and who answered.
fn seen_as(body: &serde_json::Value) -> (String, &str) {
    let a = &body["apiroute"];
    let state = match (
        a.get("x-apiroute-preview"),
        a.get("x-apiroute-preview-invalid"),
    ) {
        (Some(d), None) => format!("preview {}", d.as_str().unwrap()),
        (None, Some(_)) => "invalid".to_owned(),
        (None, None) => "none".to_owned(),
        _ => panic!("both preview headers: {body}"),
    };
    (state, body["server"].as_str().unwrap())
}

/// Polls until `cond` (an expression that may `.await`) holds; the gateway checks its key
/// files every second.
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let mut held = false;
        for _ in 0..100 {
            if $cond {
                held = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(held, "never: {}", $what);
    }};
}

/// Enables Preview Mode through the endpoint (bound to `shop`); the pair as a `Cookie`.
async fn enable(gw: SocketAddr) -> String {
    let (status, head, _) = get_raw(
        gw,
        &format!("/__apiroutes/preview/enable?secret={TOKEN}&namespace=shop"),
    )
    .await;
    assert_eq!(status, 307, "{head}");
    cookie_of(&head)
}

/// What `/api/p` makes of `cookie` (see [`seen_as`]).
async fn state(gw: SocketAddr, cookie: &str) -> String {
    seen_as(&get_with(gw, "/api/p", cookie).await).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_minted_with_the_token_is_rejected() {
    let dir = Scratch::new("token");
    let main = echo("main");
    let prev = echo("preview");
    let token = dir.write("token", &format!("{TOKEN}\n"));
    let keys = dir.write("signing-keys", &format!("{OLD_KEY}\n"));
    let gw = gateway(
        &dir,
        &[route("shop", "p", "/api/p", main.addr, Some(prev.addr))],
        Some(&token),
        &keys,
    );

    // The token opens the enable endpoint, and that pair is a preview.
    let (status, head, _) = get_raw(
        gw.addr,
        &format!("/__apiroutes/preview/enable?secret={TOKEN}&namespace=shop"),
    )
    .await;
    assert_eq!(status, 307, "{head}");
    let enabled = cookie_of(&head);
    let body = get_with(gw.addr, "/api/p", &enabled).await;
    assert_eq!(
        seen_as(&body),
        (format!("preview {}", b64("{}")), "preview")
    );
    // A signing key is no token.
    let (status, _, _) = get_raw(
        gw.addr,
        &format!("/__apiroutes/preview/enable?secret={OLD_KEY}"),
    )
    .await;
    assert_eq!(status, 401);

    // Whoever saw the enable URL mints pairs with the token as the key, or with the keys the
    // old single-secret scheme derived from it: refused, served as main, flagged for clearing.
    for forger in [
        PreviewKeys::new(None, TOKEN.as_bytes()).unwrap(),
        PreviewKeys::legacy(TOKEN.as_bytes()).unwrap(),
    ] {
        for scope in [Scope::All, Scope::namespace("shop").unwrap()] {
            let forged = minted(&forger, &scope, r#"{"admin":true}"#);
            let body = get_with(gw.addr, "/api/p", &forged).await;
            assert_eq!(seen_as(&body), ("invalid".to_owned(), "main"), "{scope:?}");
        }
    }
    // Control: the same minting with the signing key is accepted.
    let signer = PreviewKeys::new(None, OLD_KEY.as_bytes()).unwrap();
    let good = minted(&signer, &Scope::All, r#"{"admin":true}"#);
    let body = get_with(gw.addr, "/api/p", &good).await;
    assert_eq!(
        seen_as(&body),
        (format!("preview {}", b64(r#"{"admin":true}"#)), "preview")
    );

    // Without a token file the enable endpoint is off.
    let dir2 = Scratch::new("token-off");
    let keys2 = dir2.write("signing-keys", OLD_KEY);
    let gw2 = gateway(
        &dir2,
        &[route("shop", "p", "/api/p", main.addr, None)],
        None,
        &keys2,
    );
    let (status, _, body) = get_raw(
        gw2.addr,
        &format!("/__apiroutes/preview/enable?secret={TOKEN}"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rotation_a_cookie_of_the_old_key_works_while_listed() {
    let dir = Scratch::new("rotation");
    let main = echo("main");
    let prev = echo("preview");
    let token = dir.write("token", TOKEN);
    let keys = dir.write("signing-keys", &format!("{OLD_KEY}\n"));
    let gw = gateway(
        &dir,
        &[route("shop", "p", "/api/p", main.addr, Some(prev.addr))],
        Some(&token),
        &keys,
    );
    let gw = gw.addr;
    let only_old = PreviewKeys::new(None, OLD_KEY.as_bytes()).unwrap();
    let only_new = PreviewKeys::new(None, NEW_KEY.as_bytes()).unwrap();
    let active = format!("preview {}", b64("{}"));

    let old_session = enable(gw).await;
    assert!(verifies(&only_old, &old_session));
    assert_eq!(state(gw, &old_session).await, active);
    let from_new_gateway = minted(&only_new, &Scope::All, "{}");
    assert_eq!(state(gw, &from_new_gateway).await, "invalid");

    // Step 1: the new key second. Pairs of a gateway already signing with it verify here;
    // this one still signs with the old key.
    dir.write("signing-keys", &format!("{OLD_KEY}\n{NEW_KEY}\n"));
    eventually!(
        "the new key verifies",
        state(gw, &from_new_gateway).await == active
    );
    assert_eq!(state(gw, &old_session).await, active);
    assert!(verifies(&only_old, &enable(gw).await));

    // Step 2: the new key first. New sessions are signed with it; old ones still work.
    dir.write(
        "signing-keys",
        &format!("# current\n{NEW_KEY}\n# previous\n{OLD_KEY}\n"),
    );
    let mut new_session = String::new();
    eventually!("the new key signs", {
        new_session = enable(gw).await;
        verifies(&only_new, &new_session)
    });
    assert!(!verifies(&only_old, &new_session));
    assert_eq!(state(gw, &old_session).await, active);
    assert_eq!(state(gw, &new_session).await, active);

    // A broken edit (a key too short) is refused; the keys in use stay.
    dir.write("signing-keys", "short\n");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(state(gw, &old_session).await, active);
    assert_eq!(state(gw, &new_session).await, active);

    // Step 3: the old key dropped. Its sessions end (flagged for clearing).
    dir.write("signing-keys", &format!("{NEW_KEY}\n"));
    eventually!(
        "the old key is gone",
        state(gw, &old_session).await == "invalid"
    );
    assert_eq!(state(gw, &new_session).await, active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_data_set_in_one_namespace_is_not_given_to_another() {
    const DATA: &str = r#"{"tenant":"shop","draft":"unreleased-7"}"#;
    let dir = Scratch::new("namespaces");
    let set = setter(DATA).await;
    let shop_main = echo("shop-main");
    let shop_prev = echo("shop-preview");
    let blog_main = echo("blog-main");
    let blog_prev = echo("blog-preview");
    let token = dir.write("token", TOKEN);
    let keys = dir.write("signing-keys", NEW_KEY);
    let gw = gateway(
        &dir,
        &[
            route("shop", "set", "/api/shop/set", set, None),
            route(
                "shop",
                "echo",
                "/api/shop/echo",
                shop_main.addr,
                Some(shop_prev.addr),
            ),
            route(
                "blog",
                "echo",
                "/api/blog/echo",
                blog_main.addr,
                Some(blog_prev.addr),
            ),
        ],
        Some(&token),
        &keys,
    );

    // A function of namespace shop sets preview data: the gateway signs it into cookies.
    let (status, head, _) = get_raw(gw.addr, "/api/shop/set").await;
    assert_eq!(status, 200, "{head}");
    assert!(!head.contains("x-apiroute-"), "{head}");
    let shop_cookie = cookie_of(&head);
    let with_theme = format!("theme=dark; {shop_cookie}");

    // Namespace shop: a preview request with the data.
    let body = get_with(gw.addr, "/api/shop/echo", &with_theme).await;
    assert_eq!(
        seen_as(&body),
        (format!("preview {}", b64(DATA)), "shop-preview")
    );
    assert_eq!(body["headers"]["cookie"], with_theme.as_str());

    // Namespace blog: a normal request. No data, no preview backend, no clearing flag, and
    // neither preview cookie (the data would be readable in it, the pair replayable).
    let body = get_with(gw.addr, "/api/blog/echo", &with_theme).await;
    assert_eq!(seen_as(&body), ("none".to_owned(), "blog-main"));
    assert_eq!(body["headers"]["cookie"], "theme=dark", "{body}");
    let text = body.to_string();
    assert!(
        !text.contains(&b64(DATA)) && !text.contains("unreleased-7"),
        "{text}"
    );
    // Only the preview cookies: the Cookie header goes altogether.
    let body = get_with(gw.addr, "/api/blog/echo", &shop_cookie).await;
    assert_eq!(seen_as(&body), ("none".to_owned(), "blog-main"));
    assert!(body["headers"].get("cookie").is_none(), "{body}");

    // The enable endpoint binds to namespace= ...
    let (status, head, _) = get_raw(
        gw.addr,
        "/__apiroutes/preview/enable?secret=the-enable-token-0123456789abcdef&namespace=blog",
    )
    .await;
    assert_eq!(status, 307, "{head}");
    let blog_cookie = cookie_of(&head);
    let body = get_with(gw.addr, "/api/blog/echo", &blog_cookie).await;
    assert_eq!(
        seen_as(&body),
        (format!("preview {}", b64("{}")), "blog-preview")
    );
    let body = get_with(gw.addr, "/api/shop/echo", &blog_cookie).await;
    assert_eq!(seen_as(&body), ("none".to_owned(), "shop-main"));
    // ... and without it the pair is valid in every namespace.
    let (_, head, _) = get_raw(
        gw.addr,
        "/__apiroutes/preview/enable?secret=the-enable-token-0123456789abcdef",
    )
    .await;
    let everywhere = cookie_of(&head);
    for (path, server) in [
        ("/api/shop/echo", "shop-preview"),
        ("/api/blog/echo", "blog-preview"),
    ] {
        let body = get_with(gw.addr, path, &everywhere).await;
        assert_eq!(seen_as(&body), (format!("preview {}", b64("{}")), server));
    }
}
