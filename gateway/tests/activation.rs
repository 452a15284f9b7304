//! Cold starts: requests held while a route has no ready endpoint, a Demand pushed to a
//! (fake) autoscaler at once, release when an endpoint appears, 503 + Retry-After at the
//! deadline or over the hold bounds, and the per-second LoadReport.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use apiroutes_crds::autoscale::{Demand, LoadReport};
use apiroutes_gateway::{proxy::ProxyConfig, static_file::StaticRoutes};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;

/// A fake autoscaler recording (path, body) of every push; answers 202.
async fn fake_autoscaler() -> (SocketAddr, Arc<Mutex<Vec<(String, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let rec = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let rec = Arc::clone(&rec);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let rec = Arc::clone(&rec);
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            rec.lock()
                                .unwrap()
                                .push((path, String::from_utf8_lossy(&body).into_owned()));
                            let mut r = hyper::Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = hyper::StatusCode::ACCEPTED;
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn wait_for(seen: &Arc<Mutex<Vec<(String, String)>>>, path: &str) -> String {
    for _ in 0..500 {
        if let Some((_, b)) = seen.lock().unwrap().iter().find(|(p, _)| p == path) {
            return b.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no push to {path}");
}

/// An address nobody listens on (connections are refused).
fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn yaml(backends: &[SocketAddr], timeout: u32) -> String {
    format!(
        "routes:\n{}",
        route_yaml(
            "sleepy",
            "/api/sleepy/[id]",
            &format!(", timeoutSeconds: {timeout}"),
            backends
        )
    )
}

/// The function wakes: installs `routes` (a static file with its new endpoints) and waits
/// for the held request's answer.
async fn wake<T>(gw: &InProcess, routes: &str, held: tokio::task::JoinHandle<T>) -> T {
    let routes = StaticRoutes::parse(routes, "t").unwrap();
    gw.gateway.install(routes.build(&gw.gateway.registry));
    tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the held request answered after the wake")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_request_is_released_when_an_endpoint_turns_ready() {
    let (scaler, seen) = fake_autoscaler().await;
    let gw = in_process(
        &yaml(&[], 30),
        ProxyConfig {
            gateway_id: "gw-test".into(),
            autoscaler_url: Some(format!("http://{scaler}")),
            ..ProxyConfig::default()
        },
    )
    .await;
    let c = client();
    let url = format!("http://{}/api/sleepy/7", gw.addr);
    let c2 = c.clone();
    let held = tokio::spawn(async move {
        let resp = c2
            .request(
                http::Request::get(url)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let timing = resp.headers().get("server-timing").cloned();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, timing, body)
    });

    // The autoscaler hears about it at once.
    let demand: Demand = serde_json::from_str(&wait_for(&seen, "/v1/demand").await).unwrap();
    assert_eq!(demand.gateway, "gw-test");
    assert_eq!(demand.route.namespace, "default");
    assert_eq!(demand.route.name, "sleepy");
    assert_eq!(demand.held, 1);
    assert_eq!(gw.gateway.held_total(), 1);
    assert!(!held.is_finished());

    // The function wakes: an endpoint appears in a new table.
    let e = echo("woke");
    let (status, timing, body) = wake(&gw, &yaml(&[e.addr], 30), held).await;
    assert_eq!(status, 200);
    let timing = timing.expect("Server-Timing on a response that waited");
    let timing = timing.to_str().unwrap();
    assert!(timing.starts_with("activation;dur="), "{timing}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["params"]["id"], "7");
    assert_eq!(gw.gateway.held_total(), 0);

    // Requests to a ready route carry no Server-Timing.
    let (status, headers, _) = get(&c, &format!("http://{}/api/sleepy/8", gw.addr)).await;
    assert_eq!(status, 200);
    assert!(headers.get("server-timing").is_none());

    let metrics = String::from_utf8(gw.gateway.metrics.render()).unwrap();
    assert!(
        metrics.contains(
            r#"apiroutes_gateway_activation_wait_seconds_count{route="default/sleepy"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"apiroutes_gateway_held_requests{route="default/sleepy"} 0"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_that_all_refuse_hold_the_request_until_another_is_ready() {
    // The pods this gateway knows are gone (a scale-down race, a crash) before the table
    // says so: connections are refused. The request waits, as for a route at zero.
    let (scaler, seen) = fake_autoscaler().await;
    let gone = [free_addr(), free_addr()];
    let gw = in_process(
        &yaml(&gone, 30),
        ProxyConfig {
            gateway_id: "gw-test".into(),
            autoscaler_url: Some(format!("http://{scaler}")),
            ..ProxyConfig::default()
        },
    )
    .await;
    let c = client();
    let url = format!("http://{}/api/sleepy/9", gw.addr);
    let held = tokio::spawn({
        let c = c.clone();
        async move { get(&c, &url).await }
    });
    let demand: Demand = serde_json::from_str(&wait_for(&seen, "/v1/demand").await).unwrap();
    assert_eq!(demand.route.name, "sleepy");
    assert!(!held.is_finished(), "answered instead of held");
    // A table that still lists a refusing address beside a new one: the new one serves.
    let e = echo("replacement");
    let (status, _, body) = wake(&gw, &yaml(&[gone[0], e.addr], 30), held).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["params"]["id"], "9");
    assert_eq!(gw.gateway.held_total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_endpoints_answer_502_at_the_deadline() {
    let (scaler, _) = fake_autoscaler().await;
    let gw = in_process(
        &yaml(&[free_addr()], 1),
        ProxyConfig {
            autoscaler_url: Some(format!("http://{scaler}")),
            ..ProxyConfig::default()
        },
    )
    .await;
    let (status, _, body) = get(&client(), &format!("http://{}/api/sleepy/1", gw.addr)).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_connect");
    assert_eq!(gw.gateway.held_total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_time_out_with_503_and_hold_limits_apply() {
    let gw = in_process(
        &yaml(&[], 1),
        ProxyConfig {
            max_held_per_route: 2,
            ..ProxyConfig::default()
        },
    )
    .await;
    let c = client();
    let mut tasks = Vec::new();
    for i in 0..2 {
        let c = c.clone();
        let url = format!("http://{}/api/sleepy/{i}", gw.addr);
        tasks.push(tokio::spawn(async move { get(&c, &url).await }));
    }
    for _ in 0..200 {
        if gw.gateway.held_total() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(gw.gateway.held_total(), 2);
    // Over the per-route bound: refused at once.
    let (status, headers, body) = get(&c, &format!("http://{}/api/sleepy/x", gw.addr)).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["error"], "hold_limit");
    // The held ones get 503 + Retry-After at the deadline, never a hang.
    for t in tasks {
        let (status, headers, body) = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 503);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(body["error"], "activation_timeout");
    }
    assert_eq!(gw.gateway.held_total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_carry_time_averaged_concurrency() {
    let (scaler, seen) = fake_autoscaler().await;
    let e = echo("load");
    let gw = in_process(
        &yaml(&[e.addr], 30),
        ProxyConfig {
            gateway_id: "gw-load".into(),
            autoscaler_url: Some(format!("http://{scaler}")),
            ..ProxyConfig::default()
        },
    )
    .await;
    let reporter = tokio::spawn(
        Arc::clone(&gw.gateway.autoscaler)
            .report_loop(Arc::clone(&gw.gateway.registry), Duration::from_millis(300)),
    );
    let c = client();
    let slow: Vec<_> = (0..3)
        .map(|i| {
            let c = c.clone();
            let url = format!("http://{}/api/sleepy/{i}?sleep_ms=700", gw.addr);
            tokio::spawn(async move { get(&c, &url).await })
        })
        .collect();
    for t in slow {
        assert_eq!(t.await.unwrap().0, 200);
    }
    // Some report saw the three concurrent requests.
    let mut best = None;
    for _ in 0..300 {
        let reports: Vec<LoadReport> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == "/v1/load")
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect();
        best = reports
            .iter()
            .flat_map(|r| r.routes.iter())
            .filter(|l| l.route.name == "sleepy")
            .map(|l| (l.max_concurrency, l.average_concurrency))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if best.is_some_and(|(max, _)| max == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (max, avg) = best.expect("a load report for the route");
    assert_eq!(max, 3);
    assert!(avg > 1.0 && avg < 3.1, "average concurrency {avg}");
    reporter.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_to_refusing_endpoints_is_held_and_sent_with_its_body() {
    // The h2c path holds as the HTTP/1 one does: the only endpoint refuses, the request
    // waits for the wake and then reaches the new endpoint, body and all.
    let (scaler, seen) = fake_autoscaler().await;
    let gone = free_addr();
    let grpc = |backends: &[SocketAddr]| {
        routes_file(&[route_yaml(
            "sleepy",
            "/pkg.Service/[method]",
            ", timeoutSeconds: 30",
            backends,
        )])
    };
    let gw = in_process(
        &grpc(&[gone]),
        ProxyConfig {
            gateway_id: "gw-test".into(),
            autoscaler_url: Some(format!("http://{scaler}")),
            ..ProxyConfig::default()
        },
    )
    .await;
    let url = format!("http://{}/pkg.Service/Call", gw.addr);
    let held = tokio::spawn(async move {
        let req = http::Request::post(url)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))
            .unwrap();
        let resp = h2_client().request(req).await.unwrap();
        let status = resp.status();
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        (status, trailers, collected.to_bytes())
    });
    let demand: Demand = serde_json::from_str(&wait_for(&seen, "/v1/demand").await).unwrap();
    assert_eq!(demand.route.name, "sleepy");
    assert!(!held.is_finished(), "answered instead of held");
    let backend = grpc_backend().await;
    let (status, trailers, body) = wake(&gw, &grpc(&[gone, backend]), held).await;
    assert_eq!(status, 200);
    assert_eq!(trailers.expect("trailers")["grpc-status"], "0");
    assert_eq!(
        body, "HTTP/2.0 true 10",
        "the body reached the new endpoint"
    );
    assert_eq!(gw.gateway.held_total(), 0);
}
