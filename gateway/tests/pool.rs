//! The upstream HTTP/1 pool over real sockets: a raw backend that names the connection
//! each answer came on (`conn-N`).
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use apiroutes_gateway::{pool::PoolConfig, proxy::ProxyConfig};
use common::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

struct Backend {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

/// Answers each request head with `conn-N` at once (without reading any body), except:
/// `?slow` waits for `release`; with `close_second_on_first`, connection 1 is closed on
/// its second request without an answer (a keep-alive socket the function closed).
async fn backend(close_second_on_first: bool) -> Backend {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (r, rel) = (Arc::clone(&requests), Arc::clone(&release));
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = l.accept().await {
            n += 1;
            let (r, rel) = (Arc::clone(&r), Arc::clone(&rel));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut on_conn = 0;
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        on_conn += 1;
                        r.fetch_add(1, SeqCst);
                        if close_second_on_first && n == 1 && on_conn == 2 {
                            return;
                        }
                        if head.contains("?slow") {
                            rel.notified().await;
                        }
                        let body = format!("conn-{n}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
            });
        }
    });
    Backend {
        addr,
        requests,
        release,
    }
}

async fn gateway(b: &Backend, pool: PoolConfig) -> InProcess {
    in_process(
        &routes_file(&[route_yaml("p", "/api/p", "", &[b.addr])]),
        ProxyConfig {
            pool,
            ..ProxyConfig::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_are_reused_until_idle_too_long() {
    let b = backend(false).await;
    let gw = gateway(&b, PoolConfig::default()).await;
    assert_eq!(get_raw(gw.addr, "/api/p").await.2, "conn-1");
    assert_eq!(get_raw(gw.addr, "/api/p").await.2, "conn-1");

    // Idle longer than the timeout (here: any time at all): closed, not reused.
    let b = backend(false).await;
    let pool = PoolConfig {
        idle_timeout: Duration::ZERO,
        ..PoolConfig::default()
    };
    let gw = gateway(&b, pool).await;
    assert_eq!(get_raw(gw.addr, "/api/p").await.2, "conn-1");
    assert_eq!(get_raw(gw.addr, "/api/p").await.2, "conn-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_is_not_reused_while_the_request_body_is_still_being_sent() {
    let b = backend(false).await;
    let gw = gateway(&b, PoolConfig::default()).await;
    // The function answers before the (chunked, still open) upload is complete.
    let mut upload = TcpStream::connect(gw.addr).await.unwrap();
    upload
        .write_all(
            b"POST /api/p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nxxxx\r\n",
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("conn-1") {
        let mut chunk = [0u8; 1024];
        let k = upload.read(&mut chunk).await.unwrap();
        assert!(k > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..k]);
    }
    // The next request must not queue behind that upload on connection 1.
    let (status, _, body) = get_raw(gw.addr, "/api/p").await;
    assert_eq!(status, 200);
    assert_eq!(body, "conn-2");
    drop(upload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_connection_closed_under_a_request_is_retried_on_a_fresh_one() {
    let b = backend(true).await;
    let gw = gateway(&b, PoolConfig::default()).await;
    assert_eq!(get_raw(gw.addr, "/api/p").await.2, "conn-1");
    // Connection 1 is closed as the second request arrives: resent on connection 2.
    let (status, head, body) = get_raw(gw.addr, "/api/p").await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert_eq!(body, "conn-2");
    assert_eq!(b.requests.load(SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_endpoint_are_capped() {
    let b = backend(false).await;
    let pool = PoolConfig {
        max_per_endpoint: 1,
        ..PoolConfig::default()
    };
    let gw = gateway(&b, pool).await;
    let addr = gw.addr;
    let slow = tokio::spawn(async move { get_raw(addr, "/api/p?slow").await });
    for _ in 0..1000 {
        if b.requests.load(SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(b.requests.load(SeqCst), 1);
    // With the only slot busy, this one waits for connection 1 instead of opening another.
    let second = tokio::spawn(async move { get_raw(addr, "/api/p").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.release.notify_one();
    assert_eq!(slow.await.unwrap().2, "conn-1");
    assert_eq!(second.await.unwrap().2, "conn-1");
}
