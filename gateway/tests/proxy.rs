//! The proxy over real sockets: echo functions → in-process gateway → real clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use apiroutes_gateway::proxy::ProxyConfig;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_with_params_and_contract_headers() {
    let e = echo("e1");
    let gw = in_process(
        &routes_file(&[
            route_yaml("users", "/api/users/[id]", "", &[e.addr]),
            route_yaml("hello", "/api/hello", "", &[e.addr]),
            route_yaml("docs", "/api/docs/[[...slug]]", "", &[e.addr]),
        ]),
        ProxyConfig::default(),
    )
    .await;
    let c = client();
    let req = http::Request::get(format!("http://{}/api/users/42%2Fx?id=q&b=2", gw.addr))
        .header("x-apiroute-name", "evil/spoof")
        .header("x-apiroute-params", "{\"id\":\"evil\"}")
        .header("x-apiroute-extra", "1")
        .header("x-request-id", "req-123")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(&c, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/api/users/42%2Fx");
    assert_eq!(body["query"], "id=q&b=2");
    assert_eq!(body["params"], serde_json::json!({"id": "42/x"}));
    let ar = &body["apiroute"];
    assert_eq!(ar["x-apiroute-name"], "default/users");
    assert_eq!(ar["x-apiroute-pattern"], "/api/users/[id]");
    assert!(ar.get("x-apiroute-extra").is_none(), "{ar}");
    let h = &body["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], gw.addr.to_string());
    assert_eq!(h["x-request-id"], "req-123");
    // The caller's trace goes on, with the gateway's span as the function's parent.
    let tp = h["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && tp.ends_with("-01"),
        "{tp}"
    );
    assert_ne!(&tp[36..52], "b7ad6b7169203331");
    assert!(h.get("x-hop").is_none(), "hop-by-hop header leaked: {h}");
    assert!(headers.get("x-apiroute-name").is_none());

    // A generated request id; an optional catch-all without segments is named, valueless.
    let (status, _, body) = get(&c, &format!("http://{}/api/docs", gw.addr)).await;
    assert_eq!(status, 200);
    assert_eq!(body["params"], serde_json::json!({"slug": null}));
    assert_eq!(body["headers"]["x-request-id"].as_str().unwrap().len(), 32);
    let (_, _, body) = get(&c, &format!("http://{}/api/docs/a/b%20c", gw.addr)).await;
    assert_eq!(body["params"], serde_json::json!({"slug": ["a", "b c"]}));

    // Dot segments are removed; the function sees the normalized path.
    let (status, _, body) = get_raw(gw.addr, "/api/users/../hello?x=1").await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(body["path"], "/api/hello");
    assert_eq!(body["query"], "x=1");
    assert_eq!(body["apiroute"]["x-apiroute-name"], "default/hello");

    // Absolute-form request target: routed by its path.
    let (status, _, body) = raw(
        gw.addr,
        "GET http://other.example/api/hello HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("default/hello"));
}

/// `spec.trailingSlash` (Next's `trailingSlash: true`): the route is served at `path/`,
/// `path` gets Next's 308 there (query re-serialized, `Refresh` and body as for the
/// default redirect), a file-like last segment keeps the default, and routes without the
/// field keep the default beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_slash_routes_are_served_with_the_slash() {
    let e = echo("e1");
    let gw = in_process(
        &routes_file(&[
            route_yaml("x", "/api/x", ", trailingSlash: true", &[e.addr]),
            route_yaml("index", "/api", ", trailingSlash: true", &[e.addr]),
            route_yaml(
                "users",
                "/api/users/[id]",
                ", trailingSlash: true, methods: [GET]",
                &[e.addr],
            ),
            route_yaml("file", "/api/data.json", ", trailingSlash: true", &[e.addr]),
            route_yaml("plain", "/api/plain", "", &[e.addr]),
        ]),
        ProxyConfig::default(),
    )
    .await;
    let a = gw.addr;

    // Served with the slash; the function sees the path as sent, query untouched.
    let (status, _, body) = get_raw(a, "/api/x/?b&a=%2F+1").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "/api/x/");
    assert_eq!(v["query"], "b&a=%2F+1");
    assert_eq!(v["apiroute"]["x-apiroute-name"], "default/x");
    let (status, _, body) = get_raw(a, "/api/users/4%2F2/").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "/api/users/4%2F2/");
    assert_eq!(v["params"], serde_json::json!({"id": "4/2"}));
    let (status, _, body) = get_raw(a, "/api/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("default/index"), "{body}");
    // Dot segments are removed first; the slash they leave is served.
    let (status, _, body) = get_raw(a, "/api/x/y/../").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"path\":\"/api/x/\""), "{body}");

    // Without the slash: Next's 308 to it, the query re-serialized, any method.
    let (status, head, body) = get_raw(a, "/api/x?b&a=%2F+1").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/x/?b=&a=%2F%201\r"), "{head}");
    assert!(
        head.contains("refresh: 0;url=/api/x/?b=&a=%2F%201"),
        "{head}"
    );
    assert!(!head.contains("content-type"), "{head}");
    assert_eq!(body, "/api/x/?b=&a=%2F%201");
    let (status, head, _) = get_raw(a, "/api").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/\r"), "{head}");
    let (status, head, _) = get_raw(a, "/api/users/caf%C3%A9").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/users/caf%C3%A9/\r"), "{head}");
    // The redirect comes before the 405, as Next redirects before routing.
    let (status, head, _) = raw(
        a,
        "POST /api/users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 308, "{head}");
    assert!(head.contains("location: /api/users/1/\r"), "{head}");
    let (status, head, _) = raw(
        a,
        "POST /api/users/1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405, "{head}");
    // Repeated slashes: collapsed first (query as received), then served.
    let (status, head, _) = get_raw(a, "/api//x//?a+b").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/x/?a+b\r"), "{head}");

    // A file name: served without the slash, redirected to that with it.
    let (status, _, body) = get_raw(a, "/api/data.json").await;
    assert_eq!(status, 200, "{body}");
    let (status, head, _) = get_raw(a, "/api/data.json/?q=1").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/data.json?q=1\r"), "{head}");

    // A malformed escape in a served slashed path is a 400, not a redirect.
    let (status, _, body) = get_raw(a, "/api/users/%zz/").await;
    assert_eq!(status, 400, "{body}");

    // Routes without the field, and unknown paths, keep Next's default.
    let (status, head, _) = get_raw(a, "/api/plain/?a=1").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/plain?a=1\r"), "{head}");
    let (status, _, _) = get_raw(a, "/api/plain").await;
    assert_eq!(status, 200);
    let (status, head, _) = get_raw(a, "/api/nothing/").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/nothing\r"), "{head}");
    let (status, _, _) = get_raw(a, "/api/nothing").await;
    assert_eq!(status, 404);

    // The admin view shows the setting.
    let json = gw.gateway.table().to_json();
    let x = json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "default/x")
        .unwrap();
    assert_eq!(x["trailingSlash"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_308_400_404_405_413_502_504() {
    let e = echo("e1");
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = in_process(
        &routes_file(&[
            route_yaml("get-only", "/api/get", ", methods: [GET]", &[e.addr]),
            route_yaml("small", "/api/small", ", bodyLimit: \"100\"", &[e.addr]),
            route_yaml("slow", "/api/slow", ", timeoutSeconds: 1", &[e.addr]),
            route_yaml("dead", "/api/dead", "", &[dead]),
        ]),
        ProxyConfig::default(),
    )
    .await;
    let a = gw.addr;

    let (status, head, body) = get_raw(a, "/api//get/?q=1").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/get/?q=1"), "{head}");
    assert!(head.contains("refresh: 0;url=/api/get/?q=1"), "{head}");
    assert_eq!(body, "/api/get/?q=1");
    assert!(!head.contains("content-type"), "{head}");
    let (status, head, _) = get_raw(a, "/api/get/?q=1").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /api/get?q=1"), "{head}");
    // The trailing-slash redirect re-serializes the query as Next does; unknown paths too.
    let (status, head, body) = get_raw(a, "/api/nothing/?a=1&b&a=2&c=%27+").await;
    assert_eq!(status, 308);
    assert!(
        head.contains("location: /api/nothing?a=1&a=2&b=&c='%20"),
        "{head}"
    );
    assert!(
        head.contains("refresh: 0;url=/api/nothing?a=1&a=2&b=&c='%20"),
        "{head}"
    );
    assert_eq!(body, "/api/nothing?a=1&a=2&b=&c='%20");
    // HEAD: the same head, no body.
    let (status, head, body) = raw(
        a,
        "HEAD /api/get/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 308);
    assert!(head.contains("refresh: 0;url=/api/get"), "{head}");
    assert_eq!(body, "");
    let (status, head, _) = get_raw(a, "/api/get/x/..").await;
    assert_eq!(status, 308);
    assert!(
        head.contains("location: /api/get\r") || head.ends_with("location: /api/get"),
        "{head}"
    );

    let (status, _, body) = get_raw(a, "/api/%zz").await;
    assert_eq!(status, 400);
    assert!(body.contains("\"error\":\"bad_path\""), "{body}");

    let (status, head, body) = get_raw(a, "/api/nothing").await;
    assert_eq!(status, 404);
    assert!(head.contains("content-type: application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "not_found");

    let (status, head, _) = raw(
        a,
        "POST /api/get HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    assert!(head.contains("allow: GET, HEAD"), "{head}");
    let (status, _, _) = raw(
        a,
        "HEAD /api/get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);

    // bodyLimit: with Content-Length, and chunked without it.
    let big = "x".repeat(101);
    let (status, _, _) = raw(
        a,
        &format!("POST /api/small HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\nConnection: close\r\n\r\n{big}"),
    )
    .await;
    assert_eq!(status, 413);
    let fits = "y".repeat(100);
    let (status, _, body) = raw(
        a,
        &format!("POST /api/small HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{fits}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let c = client();
    let chunks = futures::stream::iter(
        (0..5).map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'z'; 40])))),
    );
    let req = http::Request::post(format!("http://{a}/api/small"))
        .body(StreamBody::new(chunks))
        .unwrap();
    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    let (status, _, body) = get(&c, &format!("http://{a}/api/dead")).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"], "upstream_connect");

    let (status, _, body) = get(&c, &format!("http://{a}/api/slow?sleep_ms=3000")).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"], "timeout");
}

/// A plain HTTP/1.1 backend that answers with the client's port, to see connection reuse.
async fn peer_port_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, peer)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                        peer.port().to_string(),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_are_kept_alive_and_reused() {
    let backend = peer_port_backend().await;
    let gw = in_process(
        &routes_file(&[route_yaml("p", "/api/p", "", &[backend])]),
        ProxyConfig::default(),
    )
    .await;
    let c = client();
    let mut ports = std::collections::HashSet::new();
    for _ in 0..10 {
        let resp = c
            .request(
                http::Request::get(format!("http://{}/api/p", gw.addr))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        ports.insert(String::from_utf8_lossy(&body).into_owned());
    }
    assert_eq!(ports.len(), 1, "sequential requests used {ports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_in_flight_balancing_and_retry_on_dead_endpoint() {
    let e1 = echo("one");
    let e2 = echo("two");
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = in_process(
        &routes_file(&[
            route_yaml("pair", "/api/pair", "", &[e1.addr, e2.addr]),
            route_yaml("half", "/api/half", "", &[dead, e1.addr]),
        ]),
        ProxyConfig::default(),
    )
    .await;
    let c = client();
    // A slow request occupies one echo; the next requests all go to the other.
    let slow_url = format!("http://{}/api/pair?sleep_ms=1500", gw.addr);
    let c2 = c.clone();
    let slow = tokio::spawn(async move { get(&c2, &slow_url).await });
    let mut busy = None;
    for _ in 0..100 {
        let table = gw.gateway.table();
        let t = table.targets.values().find(|t| {
            t.endpoints.len() == 2
                && t.endpoints
                    .iter()
                    .any(|e| e.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0)
        });
        if let Some(t) = t {
            busy = t
                .endpoints
                .iter()
                .find(|e| e.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0)
                .map(|e| e.authority.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = busy.expect("slow request in flight");
    let other = if busy == e1.addr.to_string() {
        "two"
    } else {
        "one"
    };
    for _ in 0..6 {
        let (status, _, body) = get(&c, &format!("http://{}/api/pair", gw.addr)).await;
        assert_eq!(status, 200);
        assert_eq!(body["server"], other);
    }
    assert_eq!(slow.await.unwrap().0, 200);

    // One endpoint refuses connections: every request still succeeds, bodies included.
    for i in 0..6 {
        let req = http::Request::post(format!("http://{}/api/half", gw.addr))
            .body(Full::new(Bytes::from(format!("body-{i}"))))
            .unwrap();
        let (status, _, body) = send(&c, req).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["body"], format!("body-{i}"));
        let (status, _, _) = get(&c, &format!("http://{}/api/half", gw.addr)).await;
        assert_eq!(status, 200);
    }
    drop(e2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    let e = echo("e");
    let gw = in_process(
        &routes_file(&[route_yaml("h", "/api/h/[x]", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    let c = h2_client();
    let req = http::Request::post(format!("http://{}/api/h/1", gw.addr))
        .body(Full::new(Bytes::from_static(b"over h2")))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["body"], "over h2");
    assert_eq!(body["params"]["x"], "1");
    assert_eq!(body["headers"]["x-forwarded-host"], gw.addr.to_string());
}

/// A tiny WebSocket-ish server: answers the upgrade with 101 and then echoes raw bytes.
async fn ws_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Some(head) = read_head(&mut s).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                assert!(head.contains("upgrade: websocket"), "{head}");
                assert!(head.contains("x-apiroute-name: default/ws"), "{head}");
                s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
                    .await
                    .unwrap();
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through() {
    let ws = ws_echo().await;
    let gw = in_process(
        &routes_file(&[route_yaml("ws", "/api/ws", "", &[ws])]),
        ProxyConfig::default(),
    )
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /api/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await.unwrap();
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in [&b"hello"[..], b"frames both ways"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_arrive_incrementally() {
    let e = echo("sse");
    let gw = in_process(
        &routes_file(&[route_yaml("sse", "/api/sse", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    let c = client();
    let resp = c
        .request(
            http::Request::get(format!("http://{}/api/sse?stream=4", gw.addr))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            frames.push(String::from_utf8_lossy(&d).into_owned());
        }
    }
    // Events 50 ms apart arrive as separate frames, not one buffered blob.
    assert_eq!(
        frames.concat(),
        "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n"
    );
    assert!(frames.len() >= 3, "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route() {
    let e = echo("m");
    let gw = in_process(
        &routes_file(&[route_yaml("m", "/api/m", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    let c = client();
    for _ in 0..3 {
        get(&c, &format!("http://{}/api/m", gw.addr)).await;
    }
    get(&c, &format!("http://{}/nope", gw.addr)).await;
    let text = String::from_utf8(gw.gateway.metrics.render()).unwrap();
    assert!(
        text.contains(
            r#"apiroutes_gateway_requests_total{code="200",method="GET",route="default/m"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"apiroutes_gateway_requests_total{code="404",method="GET",route="none"} 1"#
        )
    );
    assert!(text.contains(r#"apiroutes_gateway_in_flight_requests{route="default/m"} 0"#));
    assert!(text.contains("apiroutes_gateway_request_duration_seconds_bucket{route=\"default/m\""));
    assert!(text.contains("apiroutes_gateway_route_table_routes 1"));
    let _ = Arc::clone(&gw.gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_cookie_routes_to_preview_backends() {
    use apiroutes_gateway::preview::{Endpoints, PreviewKeys};
    let main = echo("main");
    let prev = echo("preview");
    let plain = echo("plain");
    let yaml = format!(
        "routes:\n  - route:\n      metadata: {{ name: p, creationTimestamp: \"2026-01-01T00:00:00Z\" }}\n      spec: {{ path: /api/p, image: x, preview: {{ image: y }} }}\n    backends: [\"http://{}\"]\n    previewBackends: [\"http://{}\"]\n{}",
        main.addr,
        prev.addr,
        route_yaml("plain", "/api/plain", "", &[plain.addr])
    );
    let secret = b"a-test-secret-of-enough-bytes";
    let gw = in_process(
        &yaml,
        ProxyConfig {
            preview: Some(apiroutes_gateway::proxy::PreviewConfig {
                keys: PreviewKeys::new(Some(secret), b"a-signing-key-of-enough-bytes").unwrap(),
                endpoints: Endpoints::new("/__apiroutes/preview").unwrap(),
            }),
            ..ProxyConfig::default()
        },
    )
    .await;
    let c = client();
    let (status, _, body) = get(&c, &format!("http://{}/api/p", gw.addr)).await;
    assert_eq!(status, 200);
    assert_eq!(body["server"], "main");

    let (status, head, _) = get_raw(
        gw.addr,
        "/__apiroutes/preview/enable?secret=wrong&redirect=/api/p",
    )
    .await;
    assert_eq!(status, 401, "{head}");
    let (status, head, _) = get_raw(
        gw.addr,
        "/__apiroutes/preview/enable?secret=a-test-secret-of-enough-bytes&redirect=/api/p",
    )
    .await;
    assert_eq!(status, 307, "{head}");
    let cookies: Vec<String> = head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2, "{head}");
    let cookie = cookies.join("; ");
    let with_cookie = |path: &str| {
        http::Request::get(format!("http://{}{path}", gw.addr))
            .header("cookie", cookie.clone())
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let (status, _, body) = send(&c, with_cookie("/api/p")).await;
    assert_eq!(status, 200);
    assert_eq!(body["server"], "preview");
    assert!(body["apiroute"]["x-apiroute-preview"].is_string(), "{body}");
    // Routes without spec.preview are unaffected (but still told preview is on).
    let (_, _, body) = send(&c, with_cookie("/api/plain")).await;
    assert_eq!(body["server"], "plain");
    // A tampered cookie is served as main, and the function is told to clear it (the
    // gateway appends no clearing cookies itself).
    let tampered = http::Request::get(format!("http://{}/api/p", gw.addr))
        .header("cookie", format!("{cookie}x"))
        .header("x-apiroute-preview-invalid", "0")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(&c, tampered).await;
    assert_eq!(status, 200);
    assert_eq!(body["server"], "main");
    assert_eq!(
        body["apiroute"]["x-apiroute-preview-invalid"], "1",
        "{body}"
    );
    assert!(
        body["apiroute"].get("x-apiroute-preview").is_none(),
        "{body}"
    );
    assert_eq!(headers.get_all("set-cookie").iter().count(), 0);
    // A valid pair is never flagged; a client cannot set the flag itself.
    let (_, _, body) = send(&c, with_cookie("/api/p")).await;
    assert!(
        body["apiroute"].get("x-apiroute-preview-invalid").is_none(),
        "{body}"
    );
    let spoofed = http::Request::get(format!("http://{}/api/plain", gw.addr))
        .header("x-apiroute-preview-invalid", "1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, _, body) = send(&c, spoofed).await;
    assert!(
        body["apiroute"].get("x-apiroute-preview-invalid").is_none(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_preview_pair_is_flagged_to_the_function_not_cleared_by_the_gateway() {
    use apiroutes_gateway::preview::{Endpoints, PreviewKeys};
    let e = echo("e1");
    let gw = in_process(
        &routes_file(&[route_yaml("plain", "/api/plain", "", &[e.addr])]),
        ProxyConfig {
            preview: Some(apiroutes_gateway::proxy::PreviewConfig {
                keys: PreviewKeys::new(None, b"a-signing-key-of-enough-bytes").unwrap(),
                endpoints: Endpoints::new("/__apiroutes/preview").unwrap(),
            }),
            ..ProxyConfig::default()
        },
    )
    .await;
    let c = client();
    // Only one of the two cookies.
    let lone = http::Request::get(format!("http://{}/api/plain", gw.addr))
        .header("cookie", "a=1; __next_preview_data=forged")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(&c, lone).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["apiroute"]["x-apiroute-preview-invalid"], "1",
        "{body}"
    );
    assert!(headers.get("set-cookie").is_none(), "{headers:?}");
    // No preview cookie: no flag.
    let (_, _, body) = get(&c, &format!("http://{}/api/plain", gw.addr)).await;
    assert!(
        body["apiroute"].get("x-apiroute-preview-invalid").is_none(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_goes_over_h2c_with_trailers() {
    let backend = grpc_backend().await;
    let gw = in_process(
        &routes_file(&[route_yaml("grpc", "/pkg.Service/[method]", "", &[backend])]),
        ProxyConfig::default(),
    )
    .await;
    let c = h2_client();
    let req = http::Request::post(format!("http://{}/pkg.Service/Call", gw.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "HTTP/2.0 true 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_time_out_and_connections_are_bounded() {
    use apiroutes_gateway::server::ServerConfig;
    let e = echo("limits");
    let gw = in_process_with(
        &routes_file(&[route_yaml("l", "/api/l", "", &[e.addr])]),
        ProxyConfig::default(),
        ServerConfig {
            max_connections: 1,
            header_read_timeout: Duration::from_millis(300),
            shutdown_grace: Duration::from_secs(5),
            ..ServerConfig::default()
        },
    )
    .await;
    // A client that never finishes its headers is disconnected.
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET /api/l HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile the only connection slot is taken: a second client waits.
    let waiting = tokio::spawn(get_raw(gw.addr, "/api/l"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "served beyond max_connections");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "slow client was not disconnected");
    // Once the slot is free, the waiting client is served.
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

/// Reads one HTTP/1 answer with a Content-Length body: (head, body).
async fn read_answer(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let head = String::from_utf8(read_head(s).await?).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some((head, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_tells_keep_alive_clients_to_reconnect_before_closing() {
    let e = echo("drain");
    let gw = in_process(
        &routes_file(&[route_yaml("d", "/api/d", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    let req = b"GET /api/d HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut busy = TcpStream::connect(gw.addr).await.unwrap();
    let mut quiet = TcpStream::connect(gw.addr).await.unwrap();
    for s in [&mut busy, &mut quiet] {
        s.write_all(req).await.unwrap();
        let (head, _) = read_answer(s).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
    }
    gw.stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A request on a kept-alive connection after the drain began is still answered, and
    // the answer says it is the last one; then the gateway closes the connection.
    busy.write_all(req).await.unwrap();
    let (head, _) = read_answer(&mut busy)
        .await
        .expect("answered while draining");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(2), busy.read_to_end(&mut rest))
        .await
        .expect("closed after the last answer")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // A connection that stays quiet is closed after a short while, not at once.
    let start = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), quiet.read_to_end(&mut rest))
        .await
        .expect("a quiet connection is closed while draining")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
    // New connections are not accepted any more.
    assert!(TcpStream::connect(gw.addr).await.is_err());
}
