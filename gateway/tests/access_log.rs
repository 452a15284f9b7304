//! Trace context and the access log, end to end: the gateway binary (static routes, stdout
//! piped) in front of a real echo function, which reports the `traceparent` and `tracestate`
//! it received; the access-log lines are read from the gateway's stdout.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use apiroutes_gateway::{
    access_log::AccessLog, proxy::ProxyConfig, static_file::StaticRoutes, trace_context,
};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How long to wait for a log line before giving up (a bound, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(30);

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// The gateway's stdout, line by line.
struct Stdout {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Stdout {
    fn of(gw: &mut Proc) -> Self {
        let out = gw.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Stdout {
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The next access-log line for which `pred` holds. Every line on stdout must be JSON.
    fn access(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "no access-log line {what}; stdout so far:\n{}",
                    self.seen.join("\n")
                );
            };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
            self.seen.push(line);
            if v["target"] == "apiroutes_gateway::access" && pred(&v) {
                return v;
            }
        }
    }
}

/// The gateway binary with one route `default/users` → `backend`, JSON logs, `extra` flags.
fn gateway(backend: SocketAddr, extra: &[&str]) -> (Proc, Stdout, tempdir::Dir) {
    let dir = tempdir::Dir::new("access-log");
    let file = dir.path.join("routes.yaml");
    std::fs::write(
        &file,
        routes_file(&[route_yaml("users", "/api/users/[id]", "", &[backend])]),
    )
    .unwrap();
    let mut args = vec![
        "--static",
        file.to_str().unwrap(),
        "--log-format",
        "json",
        "--worker-threads",
        "1",
    ];
    args.extend_from_slice(extra);
    let (mut gw, _admin) = gateway_bin(&args, |cmd| {
        cmd.stdout(Stdio::piped());
    });
    wait_listening(gw.addr);
    let out = Stdout::of(&mut gw);
    (gw, out, dir)
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir {
        pub path: std::path::PathBuf,
    }

    impl Dir {
        pub fn new(name: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "apiroutes-gw-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A GET with extra headers through the gateway; (status, echoed body, raw body length).
async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, Value, usize) {
    let mut req = http::Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        PATIENCE,
        client().request(req.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        body.len(),
    )
}

/// The fields of a `traceparent` value: (version, trace id, parent id, flags).
fn fields(tp: &str) -> (String, String, String, String) {
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert!(
        trace_context::parse(tp.as_bytes()).is_some(),
        "invalid: {tp}"
    );
    (
        parts[0].into(),
        parts[1].into(),
        parts[2].into(),
        parts[3].into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_is_continued_and_its_trace_id_logged() {
    let e = echo("traced");
    let (gw, mut out, _dir) = gateway(e.addr, &[]);
    let (status, body, len) = get_with(
        gw.addr,
        "/api/users/42?secret=s3cr3t-value",
        &[
            ("traceparent", &format!("00-{TRACE_ID}-{PARENT_ID}-01")),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
            ("x-request-id", "req-trace-a"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The function is a child of the gateway's span in the caller's trace.
    let h = &body["headers"];
    let (version, trace_id, parent_id, flags) = fields(h["traceparent"].as_str().unwrap());
    assert_eq!((version.as_str(), trace_id.as_str()), ("00", TRACE_ID));
    assert_ne!(parent_id, PARENT_ID, "the gateway's own span is the parent");
    assert_eq!(flags, "01", "the caller's sampled flag is kept");
    assert_eq!(h["tracestate"], "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    assert_eq!(h["x-request-id"], "req-trace-a");

    let line = out.access("for the traced request", |v| v["trace_id"] == TRACE_ID);
    assert_eq!(line["span_id"], parent_id.as_str());
    assert_eq!(line["parent_id"], PARENT_ID);
    assert_eq!(line["sampled"], true);
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "default/users");
    assert_eq!(line["variant"], "main");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/users/42", "the path without its query");
    assert_eq!(line["host"], gw.addr.to_string());
    assert_eq!(line["request_id"], "req-trace-a");
    assert_eq!(line["upstream"], e.addr.to_string());
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["level"], "INFO");
    assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(line["bytes_in"], 0);
    assert_eq!(line["bytes_out"].as_u64(), Some(len as u64));
    assert!(line["activation_ms"].is_null());
    let (head, total) = (
        line["duration_ms"].as_f64().unwrap(),
        line["total_ms"].as_f64().unwrap(),
    );
    assert!(0.0 <= head && head <= total, "{line}");
    assert!(
        !out.seen.iter().any(|l| l.contains("s3cr3t")),
        "the query string is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_traceparent_a_new_trace_starts() {
    let e = echo("untraced");
    let (gw, mut out, _dir) = gateway(e.addr, &[]);
    // A request body is counted too.
    let req = http::Request::post(format!("http://{}/api/users/7", gw.addr))
        .header("tracestate", "congo=orphan")
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .unwrap();
    let (status, _, body) = send(&client(), req).await;
    assert_eq!(status, 200, "{body}");
    let h = &body["headers"];
    let (version, trace_id, parent_id, flags) = fields(h["traceparent"].as_str().unwrap());
    assert_eq!(version, "00");
    assert_eq!(flags, "01", "new traces are sampled by default");
    assert!(
        h.get("tracestate").is_none(),
        "a tracestate without its traceparent is dropped: {h}"
    );
    // The generated request id is the one the function saw.
    let request_id = h["x-request-id"].as_str().unwrap();
    assert_eq!(request_id.len(), 32);

    let line = out.access("for the new trace", |v| v["trace_id"] == trace_id.as_str());
    assert_eq!(line["span_id"], parent_id.as_str());
    assert!(line["parent_id"].is_null());
    assert_eq!(line["request_id"], request_id);
    assert_eq!(line["method"], "POST");
    assert_eq!(line["bytes_in"], 10);
    assert_eq!(line["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_traceparent_is_replaced_and_its_tracestate_dropped() {
    let e = echo("badtrace");
    // New traces unsampled: the replacement says so.
    let (gw, mut out, _dir) = gateway(e.addr, &["--trace-sample-ratio", "0"]);
    let upper = format!("00-{}-{PARENT_ID}-01", TRACE_ID.to_uppercase());
    for (i, bad) in [
        upper.as_str(),
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("req-bad-{i}");
        let (status, body, _) = get_with(
            gw.addr,
            "/api/users/1",
            &[
                ("traceparent", bad),
                ("tracestate", "congo=t61rcWkgMzE"),
                ("x-request-id", &id),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let h = &body["headers"];
        let (_, trace_id, _, flags) = fields(h["traceparent"].as_str().unwrap());
        assert_ne!(trace_id, TRACE_ID, "{bad}: a new trace");
        assert_eq!(flags, "00", "{bad}: new traces are not sampled at ratio 0");
        assert!(
            h.get("tracestate").is_none(),
            "{bad}: tracestate dropped: {h}"
        );
        let line = out.access("for the replaced trace", |v| v["request_id"] == id.as_str());
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert!(line["parent_id"].is_null());
        assert_eq!(line["sampled"], false);
    }
    // A caller's sampled flag is kept whatever the ratio.
    let (_, body, _) = get_with(
        gw.addr,
        "/api/users/2",
        &[(
            "traceparent",
            &format!("cc-{TRACE_ID}-{PARENT_ID}-01-future"),
        )],
    )
    .await;
    let (version, trace_id, _, flags) = fields(body["headers"]["traceparent"].as_str().unwrap());
    assert_eq!(
        (version.as_str(), trace_id.as_str(), flags.as_str()),
        ("00", TRACE_ID, "01")
    );
}

/// Writes `request` and reads until the gateway closes (errors ignored: it may reset).
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_still_give_valid_json_lines() {
    let e = echo("hostile");
    let (gw, mut out, _dir) = gateway(e.addr, &["--max-header-bytes", "8192"]);

    // A path with quotes, backslashes, braces, raw UTF-8 and an escaped NUL: routed.
    let path = "/api/users/\"q\\{é}%00\"";
    let got = exchange(
        gw.addr,
        format!("GET {path}?secret=x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let status: u16 = String::from_utf8_lossy(&got)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let line = out.access("for the quoted path", |v| v["path"] == path);
    assert_eq!(line["status"], status);

    // A Host with a quote, a backslash, a tab and bytes that are not UTF-8: 400, logged with
    // the Host as received (lossily).
    let host = b"ev\"il\\\t\xff\xfe.example";
    let mut req = b"GET /api/users/1 HTTP/1.1\r\nHost: ".to_vec();
    req.extend_from_slice(host);
    req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    let got = exchange(gw.addr, &req).await;
    assert!(
        got.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let line = out.access("for the hostile host", |v| {
        v["host"] == String::from_utf8_lossy(host).as_ref()
    });
    assert_eq!(line["status"], 400);
    assert!(line["route"].is_null());

    // Unknown paths are logged with no route.
    let got = exchange(
        gw.addr,
        b"GET /nothing/%ff/\x22here HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!got.is_empty());
    let line = out.access("for the unknown path", |v| {
        v["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/nothing/"))
    });
    assert!(
        line["route"].is_null() && line["upstream"].is_null(),
        "{line}"
    );

    // Refused by the HTTP/1 parser before any routing: a head over --max-header-bytes (431)
    // and a request line that is not HTTP (400). Only the client and the status are known.
    let big = format!(
        "GET /api/users/1 HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let got = exchange(gw.addr, big.as_bytes()).await;
    if !got.is_empty() {
        assert!(
            got.starts_with(b"HTTP/1.1 431"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    let line = out.access("for the oversized head", |v| v["status"] == 431);
    assert!(line["method"].is_null() && line["path"].is_null(), "{line}");
    assert_eq!(line["trace_id"].as_str().unwrap().len(), 32);
    // A request line longer than the head limit: answered 414 by the gateway itself.
    let long = format!(
        "GET /api/users/{} HTTP/1.1\r\nHost: h\r\n\r\n",
        "a".repeat(70_000)
    );
    let got = exchange(gw.addr, long.as_bytes()).await;
    if !got.is_empty() {
        assert!(
            got.starts_with(b"HTTP/1.1 414"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    let line = out.access("for the over-long request line", |v| v["status"] == 414);
    assert!(line["method"].is_null() && line["path"].is_null(), "{line}");
    let got = exchange(gw.addr, b"G\x01T /\x7f\"\\ HTTP/1.1\r\nHost: h\r\n\r\n").await;
    if !got.is_empty() {
        assert!(
            got.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    let line = out.access("for the unparsable request", |v| {
        v["status"] == 400 && v["method"].is_null()
    });
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));

    // The gateway still serves, and every line on its stdout was JSON (checked as read).
    let (status, _, _) = get_with(gw.addr, "/api/users/9", &[]).await;
    assert_eq!(status, 200);
    out.access("after the hostile requests", |v| {
        v["path"] == "/api/users/9"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_log_when_switched_off() {
    let e = echo("quiet");
    let (gw, out, _dir) = gateway(e.addr, &["--no-access-log"]);
    let (status, _, _) = get_with(gw.addr, "/api/users/1", &[]).await;
    assert_eq!(status, 200);
    // Stop the gateway: stdout closes after its last line.
    let pid = gw.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while let Ok(line) = out
        .lines
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        assert!(!line.contains("apiroutes_gateway::access"), "{line}");
    }
}

/// A writer for an in-process gateway's access log.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Collect {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Collect {
    async fn line(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            for l in text.lines() {
                let v: Value = serde_json::from_str(l).unwrap();
                if pred(&v) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "no such line in:\n{text}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_logs_its_activation_wait() {
    let yaml = |backends: &[SocketAddr]| {
        routes_file(&[route_yaml(
            "sleepy",
            "/api/sleepy",
            ", timeoutSeconds: 30",
            backends,
        )])
    };
    let out = Collect::default();
    let gw = in_process(
        &yaml(&[]),
        ProxyConfig {
            access_log: Some(AccessLog::to(Box::new(out.clone()), None)),
            ..ProxyConfig::default()
        },
    )
    .await;
    let url = format!("http://{}/api/sleepy", gw.addr);
    let held = tokio::spawn(async move { get(&client(), &url).await });
    let deadline = Instant::now() + PATIENCE;
    while gw.gateway.held_total() == 0 {
        assert!(Instant::now() < deadline, "the request was never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = echo("woke");
    let routes = StaticRoutes::parse(&yaml(&[e.addr]), "t").unwrap();
    gw.gateway.install(routes.build(&gw.gateway.registry));
    let (status, headers, _) = held.await.unwrap();
    assert_eq!(status, 200);
    let timing = headers["server-timing"].to_str().unwrap().to_owned();

    let line = out.line(|v| v["route"] == "default/sleepy").await;
    assert_eq!(line["status"], 200);
    assert_eq!(line["upstream"], e.addr.to_string());
    let waited = line["activation_ms"].as_f64().unwrap();
    // Server-Timing has the same wait in whole milliseconds.
    assert_eq!(timing, format!("activation;dur={}", waited.trunc()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_the_answer_is_logged_as_499() {
    let e = echo("slow");
    let out = Collect::default();
    let gw = in_process(
        &routes_file(&[route_yaml("slow", "/api/slow", "", &[e.addr])]),
        ProxyConfig {
            access_log: Some(AccessLog::to(Box::new(out.clone()), None)),
            ..ProxyConfig::default()
        },
    )
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /api/slow?sleep_ms=5000 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    // Gone once the request is in flight.
    let deadline = Instant::now() + PATIENCE;
    while !in_flight(&gw) {
        assert!(
            Instant::now() < deadline,
            "the request never reached the function"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(s);
    let line = out.line(|v| v["path"] == "/api/slow").await;
    assert_eq!(line["status"], 499, "{line}");
    assert!(line["duration_ms"].is_null(), "{line}");
    assert_eq!(line["route"], "default/slow");
}

/// Whether the route `default/slow` has a request in flight (from the metrics).
fn in_flight(gw: &InProcess) -> bool {
    let text = String::from_utf8(gw.gateway.metrics.render()).unwrap();
    text.contains(r#"apiroutes_gateway_in_flight_requests{route="default/slow"} 1"#)
}
