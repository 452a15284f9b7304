//! The admin server over TCP on 127.0.0.1: its connection cap and its header timer.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use apiroutes_kit::admin::{self, Admin, AdminConfig, Readiness};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_util::sync::CancellationToken;

/// Bound on every wait (no assertion is on a duration).
const PATIENCE: Duration = Duration::from_secs(10);

async fn start(max_connections: usize) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let admin = Arc::new(Admin {
        registry: prometheus::Registry::new(),
        ready: Arc::new(Readiness::default()),
        extra: None,
    });
    let config = AdminConfig {
        max_connections,
        header_timeout: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(1),
    };
    tokio::spawn(admin::serve(listener, admin, config, stop.clone()));
    (addr, stop)
}

async fn read_until_closed(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let r = tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "the admin server kept the connection open");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_holds_the_only_slot_until_its_head_times_out() {
    let (addr, stop) = start(1).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Accepted first: it takes the one permit.
    silent.write_all(b"GE").await.unwrap();
    let probe = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        read_until_closed(&mut s).await
    });
    let answer = tokio::time::timeout(PATIENCE, probe)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The probe was served only after the silent connection was closed.
    let mut b = [0u8; 64];
    assert_eq!(silent.try_read(&mut b).ok(), Some(0), "silent still open");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_and_head_is_answered() {
    let (addr, stop) = start(4).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"HEAD /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Kept alive after the answer, then closed by the header timer: read_to_end ends.
    let got = read_until_closed(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(
        !got.contains("not ready"),
        "a HEAD answer has no body: {got}"
    );
    stop.cancel();
}
