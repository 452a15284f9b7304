//! Loopback harness: real echo processes on 127.0.0.1 → the gateway (in-process, or the
//! binary in static mode) → a real client.
#![allow(clippy::unwrap_used, dead_code)]

use std::{
    net::{SocketAddr, TcpStream as StdStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, OnceLock},
    time::Duration,
};

use apiroutes_gateway::{
    metrics::Metrics,
    proxy::{Gateway, ProxyConfig},
    server::{ServerConfig, serve_proxy},
    static_file::StaticRoutes,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_util::sync::CancellationToken;

pub use apiroutes_testkit::free_port;

fn target_dir() -> PathBuf {
    // …/target/debug/deps/<test> → …/target/debug
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Path of the `echo` example binary, built once if missing.
pub fn echo_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let path = target_dir().join("echo");
            if !path.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "-p", "apiroutes-example-echo", "--bin", "echo"])
                    .status()
                    .unwrap();
                assert!(status.success(), "building echo failed");
            }
            path
        })
        .clone()
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_listening(addr: SocketAddr) {
    for _ in 0..500 {
        if StdStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{addr} never listened");
}

/// The gateway binary on free loopback ports (`--listen`, `--admin-listen`) with `args`;
/// `configure` sets its environment and stdio. Returns once the admin port listens, with the
/// process (`addr` is the proxy port) and the admin address.
pub fn gateway_bin(args: &[&str], configure: impl Fn(&mut Command)) -> (Proc, SocketAddr) {
    // A free port can be taken again before the gateway binds it (the local cluster's
    // components open connections from the same ephemeral range): a gateway that exits
    // before listening is started again on other ports.
    for _ in 0..5 {
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_apiroutes-gateway"));
        cmd.args(["--listen", &listen.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        configure(&mut cmd);
        let mut gw = Proc {
            child: cmd.spawn().unwrap(),
            addr: listen,
        };
        // Up to 10 s: a loaded CI machine starts processes slowly.
        for _ in 0..1000 {
            if StdStream::connect(admin).is_ok() {
                return (gw, admin);
            }
            if gw.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if gw.child.try_wait().ok().flatten().is_none() {
            panic!("{admin} never listened");
        }
    }
    panic!("the gateway exited before listening, five times");
}

/// Starts an echo function named `name` on a free port.
pub fn echo(name: &str) -> Proc {
    let port = free_port();
    let child = Command::new(echo_bin())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("ECHO_NAME", name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    Proc { child, addr }
}

/// An in-process gateway serving on a loopback port until dropped.
pub struct InProcess {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub stop: CancellationToken,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn in_process(yaml: &str, config: ProxyConfig) -> InProcess {
    in_process_with(
        yaml,
        config,
        ServerConfig {
            shutdown_grace: Duration::from_secs(5),
            ..ServerConfig::default()
        },
    )
    .await
}

pub async fn in_process_with(yaml: &str, config: ProxyConfig, server: ServerConfig) -> InProcess {
    let routes = StaticRoutes::parse(yaml, "test").unwrap();
    let gateway = Gateway::new(config, Metrics::new());
    gateway.install(routes.build(&gateway.registry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve_proxy(
        listener,
        Arc::clone(&gateway),
        server,
        stop.clone(),
    ));
    InProcess {
        addr,
        gateway,
        stop,
    }
}

/// One route entry of a static file.
/// A static-routes file holding `routes` (entries from [`route_yaml`]).
pub fn routes_file(routes: &[String]) -> String {
    format!("routes:\n{}", routes.concat())
}

/// Reads one HTTP/1 message head through its blank line, a byte at a time so nothing after
/// it is consumed; `None` when the stream ends first.
pub async fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.ok()?;
        head.push(b[0]);
    }
    Some(head)
}

pub fn route_yaml(name: &str, path: &str, extra_spec: &str, backends: &[SocketAddr]) -> String {
    let list: Vec<String> = backends.iter().map(|a| format!("\"http://{a}\"")).collect();
    format!(
        "  - route:\n      metadata: {{ name: {name}, creationTimestamp: \"2026-01-01T00:00:00Z\" }}\n      spec: {{ path: \"{path}\", image: unused{extra_spec} }}\n    backends: [{}]\n",
        list.join(", ")
    )
}

/// A raw HTTP/1.1 exchange: sends `request` as is (it should say `Connection: close`) and
/// returns (status, head, body).
pub async fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// `GET path` with `Connection: close`.
pub async fn get_raw(addr: SocketAddr, path: &str) -> (u16, String, String) {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"),
    )
    .await
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends a request and returns status, headers and the body as JSON (or Null).
pub async fn send(
    client: &HttpClient,
    req: http::Request<Full<Bytes>>,
) -> (u16, http::HeaderMap, serde_json::Value) {
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

pub async fn get(client: &HttpClient, url: &str) -> (u16, http::HeaderMap, serde_json::Value) {
    send(
        client,
        http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

/// An h2c backend answering gRPC-style: body plus `grpc-status` trailers.
pub async fn grpc_backend() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let version = format!("{:?}", req.version());
                        let has_name = req.headers().contains_key("x-apiroute-name");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        let frames = vec![
                            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(
                                Bytes::from(format!("{version} {has_name} {}", body.len())),
                            )),
                            Ok(hyper::body::Frame::trailers(trailers)),
                        ];
                        let mut resp = hyper::Response::new(http_body_util::StreamBody::new(
                            futures::stream::iter(frames),
                        ));
                        resp.headers_mut().insert(
                            "content-type",
                            http::HeaderValue::from_static("application/grpc"),
                        );
                        Ok::<_, std::convert::Infallible>(resp)
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
            });
        }
    });
    addr
}
