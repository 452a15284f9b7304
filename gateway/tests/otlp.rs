//! OTLP span export, end to end: the gateway binary (static routes) in front of a real
//! echo function, exporting to a collector double on 127.0.0.1 (`apiroutes_testkit::otlp`,
//! an OTLP/HTTP server decoding the protobuf requests: it stands in for a real collector).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use apiroutes_testkit::otlp::Collector;
use common::*;

/// How long to wait for a span (a bound, not a timing assertion: the gateway batches every
/// 50 ms here).
const PATIENCE: Duration = Duration::from_secs(30);

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const UNSAMPLED_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_span_reaches_the_collector_with_the_callers_ids() {
    let mut collector = Collector::start().await;
    let e = echo("otlp");
    let file = std::env::temp_dir().join(format!("apiroutes-gw-otlp-{}.yaml", std::process::id()));
    std::fs::write(
        &file,
        routes_file(&[route_yaml("users", "/api/users/[id]", "", &[e.addr])]),
    )
    .unwrap();
    let endpoint = collector.endpoint();
    let (gw, _admin) = gateway_bin(
        &["--static", file.to_str().unwrap(), "--worker-threads", "1"],
        |cmd| {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
                .env("OTEL_BSP_SCHEDULE_DELAY", "50")
                .env_remove("OTEL_SERVICE_NAME");
        },
    );
    wait_listening(gw.addr);
    let c = client();
    let request = |traceparent: String| {
        http::Request::get(format!("http://{}/api/users/42", gw.addr))
            .header("traceparent", traceparent)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };

    // First a trace the caller did not sample: its span must not be exported.
    let (status, _, _) = send(
        &c,
        request(format!("00-{UNSAMPLED_TRACE_ID}-{PARENT_ID}-00")),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = send(&c, request(format!("00-{TRACE_ID}-{PARENT_ID}-01"))).await;
    assert_eq!(status, 200, "{body}");
    // The function's parent is the gateway's span.
    let sent = body["headers"]["traceparent"].as_str().unwrap().to_owned();
    let gateway_span_id = sent.split('-').nth(2).unwrap().to_owned();

    // Spans leave in the order they ended: the unsampled one would come first.
    let got = collector
        .span("for the sampled request", PATIENCE, |r| {
            let trace = hex(&r.span.trace_id);
            assert_ne!(trace, UNSAMPLED_TRACE_ID, "an unsampled span was exported");
            trace == TRACE_ID
        })
        .await;
    let span = &got.span;
    assert_eq!(
        hex(&span.parent_span_id),
        PARENT_ID,
        "the caller's span is the parent"
    );
    assert_eq!(
        hex(&span.span_id),
        gateway_span_id,
        "the id sent on in traceparent"
    );
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(span.name, "GET /api/users/[id]");
    assert_eq!(got.service.as_deref(), Some("apiroutes-gateway"));
    assert_eq!(
        got.attribute("http.route").as_deref(),
        Some("/api/users/[id]")
    );
    assert_eq!(
        got.attribute("apiroutes.route").as_deref(),
        Some("default/users")
    );
    assert_eq!(got.attribute("http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        got.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(got.attribute("url.path").as_deref(), Some("/api/users/42"));
    assert_eq!(
        got.attribute("apiroutes.upstream").as_deref(),
        Some(e.addr.to_string().as_str())
    );
    assert!(got.attribute("apiroutes.duration_ms").is_some());
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    assert!(span.start_time_unix_nano > 0);
    let _ = std::fs::remove_file(&file);
}
