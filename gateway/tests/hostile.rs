//! Hostile and broken clients over real sockets: silent and slow connections, idle ones,
//! oversized heads, smuggled hop-by-hop headers, bad hosts, odd upgrades, functions that
//! answer with only a 1xx.
#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use apiroutes_gateway::{
    metrics::Metrics,
    proxy::{Gateway, ProxyConfig},
    server::{Readiness, ServerConfig, serve_admin},
};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_util::sync::CancellationToken;

/// Bound on every wait in these tests (they never assert on durations).
const PATIENCE: Duration = Duration::from_secs(10);

fn quick(max_connections: usize) -> ServerConfig {
    ServerConfig {
        max_connections,
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(5),
        ..ServerConfig::default()
    }
}

/// Reads until the peer closes; panics if it does not within [`PATIENCE`].
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let r = tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "the gateway kept the connection open");
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_partial_connections_are_dropped_and_free_their_permit() {
    let e = echo("silent");
    let gw = in_process_with(
        &routes_file(&[route_yaml("l", "/api/l", "", &[e.addr])]),
        ProxyConfig::default(),
        quick(1),
    )
    .await;
    // Nothing at all, part of an h2 preface (protocol not yet known), part of a head.
    for sent in [&b""[..], b"PRI * HTTP/2.0\r\n", b"GET /api/l HT"] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(sent).await.unwrap();
        // The only permit is taken: another client waits until the first is dropped.
        let waiting = tokio::spawn(get_raw(gw.addr, "/api/l"));
        let got = read_until_closed(&mut s).await;
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
            "{got:?}"
        );
        let (status, _, _) = tokio::time::timeout(PATIENCE, waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 200, "after {sent:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_and_h2_connections_are_closed() {
    let e = echo("idle");
    let gw = in_process_with(
        &routes_file(&[route_yaml("l", "/api/l", "", &[e.addr])]),
        ProxyConfig::default(),
        ServerConfig {
            // Longer than PATIENCE: only the idle timeout can close these connections.
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_millis(300),
            ..quick(10)
        },
    )
    .await;

    // HTTP/1.1 keep-alive: answered, then closed once idle.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /api/l HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");

    // h2: one request, then the connection ends by itself.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/api/l", gw.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await.unwrap();
    let ended = tokio::time::timeout(PATIENCE, conn).await;
    assert!(ended.is_ok(), "idle h2 connection was kept open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_head_on_a_kept_alive_connection_gets_the_header_timeout() {
    let f = scripted(vec![(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]).await;
    let gw = in_process_with(
        &routes_file(&[route_yaml("l", "/api/l", "", &[f])]),
        ProxyConfig::default(),
        ServerConfig {
            // Longer than PATIENCE: only the header timeout can close this connection.
            idle_timeout: Duration::from_secs(60),
            ..quick(10)
        },
    )
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /api/l HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"\r\n\r\nok") {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    // The next head starts and stalls.
    s.write_all(b"GET /api/l HTTP/1.1\r\nHo").await.unwrap();
    read_until_closed(&mut s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_has_its_own_connection_cap() {
    let gateway = Gateway::new(ProxyConfig::default(), Metrics::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve_admin(
        listener,
        gateway,
        Arc::new(Readiness::default()),
        false,
        quick(1),
        stop.clone(),
    ));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let probe = tokio::spawn(get_raw(addr, "/healthz"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !probe.is_finished(),
        "served beyond the admin connection cap"
    );
    read_until_closed(&mut silent).await;
    let (status, _, body) = tokio::time::timeout(PATIENCE, probe)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_http1_heads_get_431_and_are_closed() {
    let e = echo("big");
    let gw = in_process(
        &routes_file(&[route_yaml("l", "/api/l", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    let head = |n: usize| {
        format!(
            "GET /api/l HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(n)
        )
    };
    // Under the default 64 KiB: served (and kept alive, so say close).
    let fits = head(60_000).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    let (status, _, _) = raw(gw.addr, &fits).await;
    assert_eq!(status, 200);
    // Over it: 431, and the connection is closed without the client asking.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    // The gateway may close while the head is still being written: ignore that error.
    let _ = s.write_all(head(70_000).as_bytes()).await;
    let got = read_until_closed(&mut s).await;
    assert!(
        got.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

/// RFC 9112 section 3: a request-target longer than the server reads is 414 (hyper alone
/// would say 431, which names the header fields); a method that long is a bad request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_request_lines_get_414_or_400_and_are_closed() {
    let e = echo("long");
    let gw = in_process(
        &routes_file(&[route_yaml("l", "/api/[[...rest]]", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    // Under the default 64 KiB head: served.
    let fits = format!(
        "GET /api/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(60_000)
    );
    let (status, _, _) = raw(gw.addr, &fits).await;
    assert_eq!(status, 200);
    let cases = [
        (
            format!(
                "GET /api/{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(100_000)
            ),
            "HTTP/1.1 414 URI Too Long\r\n",
            "uri_too_long",
        ),
        // Sent in pieces, after empty lines: the line is measured across reads.
        (
            format!("\r\nGET /{}", "b".repeat(200_000)),
            "HTTP/1.1 414 URI Too Long\r\n",
            "uri_too_long",
        ),
        (
            format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "A".repeat(100_000)),
            "HTTP/1.1 400 Bad Request\r\n",
            "bad_request",
        ),
    ];
    for (request, status_line, code) in cases {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        for piece in request.as_bytes().chunks(7_000) {
            // The gateway may answer (and shut its side) while the line is still coming.
            if s.write_all(piece).await.is_err() {
                break;
            }
        }
        let got = read_until_closed(&mut s).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with(status_line), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(text.contains("\r\ndate: "), "{text}");
        let body = text.split_once("\r\n\r\n").unwrap().1;
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], code, "{text}");
    }
}

/// Reads one h2 frame: (type, flags, stream, payload).
async fn h2_frame(s: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], stream, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_settings_bound_header_lists_streams_and_windows() {
    let gw = in_process(&routes_file(&[]), ProxyConfig::default()).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (kind, _, stream, payload) = h2_frame(&mut s).await;
    assert_eq!((kind, stream), (4, 0), "first frame is SETTINGS");
    let settings: std::collections::HashMap<u16, u32> = payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    let d = ServerConfig::default();
    assert_eq!(
        settings.get(&3),
        Some(&d.h2_max_concurrent_streams),
        "{settings:?}"
    );
    assert_eq!(settings.get(&4), Some(&d.h2_stream_window), "{settings:?}");
    assert_eq!(settings.get(&6), Some(&(64 * 1024)), "{settings:?}");
    // The connection window is raised with a WINDOW_UPDATE on stream 0.
    let mut increment = None;
    for _ in 0..4 {
        let (kind, _, stream, payload) = h2_frame(&mut s).await;
        if kind == 8 && stream == 0 {
            increment = Some(u32::from_be_bytes([
                payload[0], payload[1], payload[2], payload[3],
            ]));
            break;
        }
    }
    assert_eq!(increment, Some(d.h2_connection_window - 65_535));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_header_lists_are_bounded_by_the_same_limit() {
    let e = echo("big2");
    let gw = in_process(
        &routes_file(&[route_yaml("l", "/api/l", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    let c = h2_client();
    let req = |n: usize| {
        http::Request::get(format!("http://{}/api/l", gw.addr))
            .header("x-big", "a".repeat(n))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // Within --max-header-bytes (hyper's own h2 default would be 16 KiB).
    let (status, _, _) = send(&c, req(40_000)).await;
    assert_eq!(status, 200);
    // Over it: h2 answers 431 itself.
    let (status, _, _) = send(&c, req(70_000)).await;
    assert_eq!(status, 431);
}

/// The echo's JSON body of a raw HTTP/1.1 exchange.
async fn echoed(addr: std::net::SocketAddr, request: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = raw(addr, request).await;
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_line_is_honoured_and_only_te_trailers_goes_on() {
    let e = echo("hop");
    let gw = in_process(
        &routes_file(&[route_yaml("l", "/api/l", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    let (status, body) = echoed(
        gw.addr,
        "GET /api/l HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: x-secret\r\n\
         X-Secret: s3cret\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n\
         TE: trailers, deflate\r\nX-Kept: yes\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let h = &body["headers"];
    for gone in [
        "x-secret",
        "proxy-authorization",
        "proxy-connection",
        "connection",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the function: {h}");
    }
    assert_eq!(h["te"], "trailers");
    assert_eq!(h["x-kept"], "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_repeated_hosts_get_400_and_absolute_form_sets_host() {
    let e = echo("host");
    let gw = in_process(
        &routes_file(&[route_yaml("l", "/api/l", "", &[e.addr])]),
        ProxyConfig::default(),
    )
    .await;
    for hosts in [
        "Host: user@x.example\r\n",
        "Host: a b\r\n",
        "Host: x.example:99999\r\n",
        "Host: x.example:8o\r\n",
        "Host: a.example\r\nHost: b.example\r\n",
        "",
    ] {
        let (status, _, body) = raw(
            gw.addr,
            &format!("GET /api/l HTTP/1.1\r\n{hosts}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{hosts:?}: {body}");
        assert!(body.contains("\"error\":\"bad_host\""), "{body}");
    }
    // Absolute form: the target's authority is the Host the function sees.
    let (status, body) = echoed(
        gw.addr,
        "GET http://target.example:8080/api/l HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["headers"]["host"], "target.example:8080");
    assert_eq!(body["headers"]["x-forwarded-host"], "target.example:8080");
    // A valid IP-literal Host is fine.
    let (status, body) = echoed(
        gw.addr,
        "GET /api/l HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["headers"]["host"], "[::1]:80");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_are_bounded_and_deleted_routes_leave_none() {
    use apiroutes_gateway::static_file::StaticRoutes;
    let e = echo("labels");
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let kept = route_yaml("kept", "/api/kept", "", &[e.addr]);
    let gw = in_process(
        &routes_file(&[kept.clone(), route_yaml("gone", "/api/gone", "", &[dead])]),
        ProxyConfig::default(),
    )
    .await;
    for method in ["GET", "PURGE", "XYZZY1", "XYZZY2"] {
        for path in ["/api/kept", "/api/gone"] {
            raw(
                gw.addr,
                &format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            )
            .await;
        }
    }
    let text = String::from_utf8(gw.gateway.metrics.render()).unwrap();
    assert!(
        text.contains(r#"requests_total{code="200",method="other",route="default/kept"} 3"#),
        "{text}"
    );
    assert!(!text.contains("PURGE") && !text.contains("XYZZY"), "{text}");
    assert!(text.contains(r#"upstream_errors_total{kind="connect",route="default/gone"}"#));

    // The route is deleted: none of its series stay behind.
    let routes = StaticRoutes::parse(&routes_file(&[kept]), "test").unwrap();
    gw.gateway.install(routes.build(&gw.gateway.registry));
    let text = String::from_utf8(gw.gateway.metrics.render()).unwrap();
    assert!(!text.contains("default/gone"), "{text}");
    assert!(text.contains(r#"route="default/kept""#));
}

/// A function that answers every request with 101 (echoing the `Upgrade` it was asked for,
/// or none) and then echoes raw bytes.
async fn upgrade_echo() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Some(head) = read_head(&mut s).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let proto = head
                    .lines()
                    .find_map(|l| l.strip_prefix("upgrade: "))
                    .unwrap_or("none")
                    .to_owned();
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {proto}\r\nConnection: Upgrade\r\n\r\n"
                );
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Sends an upgrade request for `proto` on a fresh connection; returns the socket after a
/// 101, or the status otherwise.
async fn upgrade(addr: std::net::SocketAddr, path: &str, proto: &str) -> Result<TcpStream, u16> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: {proto}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = tokio::time::timeout(PATIENCE, read_head(&mut s))
        .await
        .unwrap()
        .unwrap();
    let status = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
    if status == 101 { Ok(s) } else { Err(status) }
}

async fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_other_than_websocket_are_served_as_plain_http_unless_allowed() {
    let e = echo("up");
    let up = upgrade_echo().await;
    let routes = routes_file(&[
        route_yaml("l", "/api/l", "", &[e.addr]),
        route_yaml("up", "/api/up", "", &[up]),
    ]);
    let gw = in_process(&routes, ProxyConfig::default()).await;
    // An h2c upgrade: answered over HTTP/1.1, the function sees no upgrade at all.
    let (status, body) = echoed(
        gw.addr,
        "GET /api/l HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let h = &body["headers"];
    assert!(
        h.get("upgrade").is_none() && h.get("http2-settings").is_none(),
        "{h}"
    );
    // A function that switches protocols anyway gets the client a 502, not a broken tunnel.
    assert_eq!(upgrade(gw.addr, "/api/up", "foo").await.err(), Some(502));
    assert_eq!(
        upgrade(gw.addr, "/api/up", "websocket, foo").await.err(),
        Some(502)
    );
    // WebSocket passes.
    let mut ws = upgrade(gw.addr, "/api/up", "websocket").await.unwrap();
    round_trip(&mut ws, b"ws frames").await;

    // With --allow-any-upgrade any protocol passes.
    let open = in_process(
        &routes,
        ProxyConfig {
            allow_any_upgrade: true,
            ..ProxyConfig::default()
        },
    )
    .await;
    let mut foo = upgrade(open.addr, "/api/up", "foo").await.unwrap();
    round_trip(&mut foo, b"foo bytes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_tunnels_count_against_max_connections() {
    let e = echo("tunnel");
    let up = upgrade_echo().await;
    let gw = in_process_with(
        &routes_file(&[
            route_yaml("l", "/api/l", "", &[e.addr]),
            route_yaml("up", "/api/up", "", &[up]),
        ]),
        ProxyConfig::default(),
        quick(1),
    )
    .await;
    let mut ws = upgrade(gw.addr, "/api/up", "websocket").await.unwrap();
    round_trip(&mut ws, b"first").await;
    // The tunnel holds the only slot: another client waits, the tunnel still works.
    let waiting = tokio::spawn(get_raw(gw.addr, "/api/l"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "served beyond max_connections");
    round_trip(&mut ws, b"second").await;
    drop(ws);
    let (status, _, _) = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

/// A function that reads a request head, then writes each part after its delay and keeps
/// the connection open until the gateway closes it.
async fn scripted(parts: Vec<(u64, &'static str)>) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let parts = parts.clone();
            tokio::spawn(async move {
                if read_head(&mut s).await.is_none() {
                    return;
                }
                for (delay_ms, part) in parts {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    if s.write_all(part.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut sink)).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_answering_only_1xx_gets_the_client_a_prompt_502() {
    let hints_only = scripted(vec![(
        0,
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
    )])
    .await;
    let continue_only = scripted(vec![(0, "HTTP/1.1 100 Continue\r\n\r\n")]).await;
    let final_after = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let hints_then_final = scripted(vec![
        (
            0,
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        ),
        (50, final_after),
    ])
    .await;
    // An expected 100 Continue, then a final status later than the informational timeout.
    let slow_after_continue = scripted(vec![
        (0, "HTTP/1.1 100 Continue\r\n\r\n"),
        (600, final_after),
    ])
    .await;
    let gw = in_process(
        &routes_file(&[
            route_yaml("hints", "/api/hints", "", &[hints_only]),
            route_yaml("cont", "/api/cont", "", &[continue_only]),
            route_yaml("ok", "/api/ok", "", &[hints_then_final]),
            route_yaml("expect", "/api/expect", "", &[slow_after_continue]),
        ]),
        ProxyConfig {
            informational_timeout: Duration::from_millis(300),
            ..ProxyConfig::default()
        },
    )
    .await;
    // The routes' own deadline (30 s) is beyond PATIENCE: only the new rule answers in time.
    let ask = |path: &'static str, extra: &'static str| {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Length: 2\r\n\r\nhi"
        );
        async move {
            tokio::time::timeout(PATIENCE, raw(gw.addr, &request))
                .await
                .expect("the client got no final response")
        }
    };
    for (path, code) in [
        ("/api/hints", "103 Early Hints"),
        ("/api/cont", "100 Continue"),
    ] {
        let (status, _, body) = ask(path, "").await;
        assert_eq!(status, 502, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "upstream_protocol");
        assert!(v["message"].as_str().unwrap().contains(code), "{body}");
    }
    let (status, _, body) = ask("/api/ok", "").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    // (The gateway itself says 100 Continue to the client first.)
    let (status, _, rest) = ask("/api/expect", "Expect: 100-continue\r\n").await;
    assert_eq!(status, 100, "{rest}");
    assert!(
        rest.starts_with("HTTP/1.1 200 OK") && rest.ends_with("\r\n\r\nok"),
        "{rest}"
    );
}

/// A function that answers each request with its raw head as the body (one per connection).
async fn head_echo() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Some(head) = read_head(&mut s).await else {
                    return;
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nX-Function-Case: Yes\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    head.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.write_all(&head).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_header_names_keep_their_case_both_ways() {
    let f = head_echo().await;
    let gw = in_process(
        &routes_file(&[route_yaml("raw", "/api/raw", "", &[f])]),
        ProxyConfig::default(),
    )
    .await;
    let (status, head, body) = raw(
        gw.addr,
        "GET /api/raw HTTP/1.1\r\nHost: x\r\nX-Mixed-Case: 1\r\nACCEPT: */*\r\nx-lower: 2\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for name in ["Host: x", "X-Mixed-Case: 1", "ACCEPT: */*", "x-lower: 2"] {
        assert!(body.contains(name), "{name} lost its case: {body}");
    }
    assert!(head.contains("X-Function-Case: Yes"), "{head}");
}

/// Sends a head and then `body_len` bytes as fast as the socket takes them, while reading
/// the answer. Returns the status line the client got, and whether the upload ended
/// without a reset (every byte written, then a clean end from the gateway).
async fn upload_while_reading(
    addr: std::net::SocketAddr,
    head: String,
    body_len: usize,
) -> (String, Result<(), String>) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b'u'; 64 * 1024];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            wr.write_all(&chunk[..n]).await?;
            left -= n;
        }
        wr.shutdown().await
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(PATIENCE, async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Err(e) => return Err(format!("read: {e}")),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("read: no end in time".into()));
    let wrote = match tokio::time::timeout(PATIENCE, writer).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("write: {e}")),
        _ => Err("write: no end in time".into()),
    };
    let text = String::from_utf8_lossy(&got).into_owned();
    let line = text.lines().next().unwrap_or_default().to_owned();
    (line, wrote.and(read))
}

/// An answer given before the upload is over (here the gateway's own 413) must reach the
/// client. Closing with the rest of the upload unread would reset the connection, and a
/// client still writing (Node's, for one) then reports the reset and drops the answer. So
/// the gateway closes its side and reads the rest away first, for a bounded time
/// ("lingering close", RFC 9112 section 9.6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_reaches_a_client_still_uploading() {
    let e = echo("e-linger");
    let gw = in_process_with(
        &routes_file(&[route_yaml(
            "small",
            "/api/small",
            ", bodyLimit: \"1Ki\"",
            &[e.addr],
        )]),
        ProxyConfig::default(),
        quick(16),
    )
    .await;
    let size = 8 * 1024 * 1024;
    let declared = format!("POST /api/small HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
    let (line, ended) = upload_while_reading(gw.addr, declared, size).await;
    assert!(
        line.starts_with("HTTP/1.1 413"),
        "declared length: {line:?}"
    );
    assert_eq!(ended, Ok(()), "declared length");
    let chunked =
        "POST /api/small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800000\r\n"
            .to_owned();
    let (line, ended) = upload_while_reading(gw.addr, chunked, size).await;
    assert!(line.starts_with("HTTP/1.1 413"), "chunked: {line:?}");
    assert_eq!(ended, Ok(()), "chunked");
}

/// Bytes whose first line names no HTTP version are not HTTP at all: the connection is
/// closed without an answer (RFC 9113 section 3.4 for an invalid HTTP/2 preface, h2spec
/// 3.5/2). A request line that names a version but is malformed still gets a 400, and a
/// request line sent a few bytes at a time is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_line_naming_no_http_version_is_closed_unanswered() {
    let e = echo("e-first-line");
    let gw = in_process_with(
        &routes_file(&[route_yaml("all", "/[[...all]]", "", &[e.addr])]),
        ProxyConfig::default(),
        quick(16),
    )
    .await;
    for garbage in [
        &b"INVALID CONNECTION PREFACE\r\n\r\n"[..],
        b"GET /\r\n\r\n",
        b"\r\nGET / SPDY/3\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n",
    ] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(garbage).await.unwrap();
        let got = read_until_closed(&mut s).await;
        assert!(
            got.is_empty(),
            "{garbage:?}: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(
        got.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    for part in [
        "GE",
        "T /x HT",
        "TP/1.1\r\nHost: x\r\n",
        "Connection: close\r\n\r\n",
    ] {
        s.write_all(part.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = read_until_closed(&mut s).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

/// A request body that breaks its own framing is the client's fault: 400 naming what was
/// wrong, never a 502 or an upstream error against the function. A transfer coding other
/// than chunked (RFC 9112 section 6.1) gets 501: passing it on would hand the function
/// encoded bytes unannounced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_is_a_400_and_unknown_transfer_codings_a_501() {
    let e = echo("e-framing");
    let gw = in_process_with(
        &routes_file(&[route_yaml("all", "/api/[[...all]]", "", &[e.addr])]),
        ProxyConfig::default(),
        quick(16),
    )
    .await;
    let chunked = |chunks: &str| {
        format!(
            "POST /api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunks}"
        )
    };
    for body in [
        "zz\r\nabc\r\n0\r\n\r\n",
        "FFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
        "3\r\nabcdef\r\n0\r\n\r\n",
    ] {
        let (status, _, text) = raw(gw.addr, &chunked(body)).await;
        assert_eq!(status, 400, "{body:?}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], "bad_body", "{body:?}: {text}");
    }
    let text = String::from_utf8(gw.gateway.metrics.render()).unwrap();
    assert!(!text.contains("upstream_errors_total{"), "{text}");

    for coding in ["gzip, chunked", "chunked, chunked"] {
        let (status, _, text) = raw(
            gw.addr,
            &format!(
                "POST /api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n0\r\n\r\n"
            ),
        )
        .await;
        assert!(status == 501 || status == 400, "{coding}: {status} {text}");
    }
    let (status, _, text) = raw(
        gw.addr,
        "POST /api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status, 501, "{text}");
    assert!(text.contains("unsupported_transfer_coding"), "{text}");
    // Nothing more is read on that connection, even one the client would keep.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /api/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET /api/b HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = String::from_utf8_lossy(&read_until_closed(&mut s).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 501"), "{got}");
    assert!(got.contains("connection: close"), "{got}");
    assert_eq!(got.matches("HTTP/1.1").count(), 1, "{got}");
    // Plain chunked still goes through.
    let (status, _, text) = raw(gw.addr, &chunked("3\r\nabc\r\n0\r\n\r\n")).await;
    assert_eq!(status, 200, "{text}");
}
