//! Span export against a collector double on 127.0.0.1 (`apiroutes_testkit::otlp`: an
//! OTLP/HTTP server decoding the protobuf requests, standing in for a real collector).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use apiroutes_kit::telemetry::{Finished, KeyValue, SpanKind, Telemetry, TelemetryArgs};
use apiroutes_testkit::otlp::Collector;
use tracing_subscriber::layer::SubscriberExt;

/// A bound on waiting for a span; shutdown flushes, so it is not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);

fn args(collector: &Collector) -> TelemetryArgs {
    TelemetryArgs {
        otlp_endpoint: Some(collector.endpoint()),
        otlp_certificate: collector.ca.as_ref().map(|ca| ca.ca.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_spans_reach_the_collector_through_the_layer() {
    let mut collector = Collector::start().await;
    let t = Telemetry::init(&args(&collector), "apiroutes-operator")
        .unwrap()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(t.layer("apiroutes"));
    tracing::subscriber::with_default(subscriber, || {
        // As `#[instrument]` makes the operator's reconcile span.
        let span = tracing::info_span!("reconcile", route = "default/users");
        let _inside = span.enter();
        tracing::info!("reconciled");
    });
    // Flushes the queue: the span is sent before this returns.
    t.shutdown().await;
    let got = collector
        .span("named reconcile", PATIENCE, |r| r.span.name == "reconcile")
        .await;
    assert_eq!(got.attribute("route").as_deref(), Some("default/users"));
    assert_eq!(got.scope, "apiroutes");
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        assert_eq!(got.service.as_deref(), Some("apiroutes-operator"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_span_keeps_the_callers_ids() {
    let mut collector = Collector::start().await;
    let t = Telemetry::init(&args(&collector), "apiroutes-gateway")
        .unwrap()
        .unwrap();
    let end = SystemTime::now();
    t.spans().export(Finished {
        name: "GET /api/x".into(),
        kind: SpanKind::Server,
        trace_id: [7; 16],
        span_id: [8; 8],
        parent_id: Some([9; 8]),
        start: end - Duration::from_millis(3),
        end,
        attributes: vec![KeyValue::new("http.route", "/api/x")],
        error: true,
    });
    t.shutdown().await;
    let got = collector.span("GET /api/x", PATIENCE, |_| true).await;
    assert_eq!(got.span.trace_id, vec![7; 16]);
    assert_eq!(got.span.span_id, vec![8; 8]);
    assert_eq!(got.span.parent_span_id, vec![9; 8]);
    assert_eq!(got.span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(got.attribute("http.route").as_deref(), Some("/api/x"));
    assert_eq!(
        got.span.status.as_ref().map(|s| s.code),
        Some(2),
        "STATUS_CODE_ERROR"
    );
    assert_eq!(
        got.span.end_time_unix_nano - got.span.start_time_unix_nano,
        3_000_000
    );
}

#[test]
fn no_endpoint_means_no_export() {
    assert!(matches!(
        Telemetry::init(&TelemetryArgs::default(), "x"),
        Ok(None)
    ));
}

/// A root SERVER span of 1 ms named `name`, ending now.
fn export_server_span(t: &Telemetry, name: &'static str, trace_id: [u8; 16]) {
    let end = SystemTime::now();
    t.spans().export(Finished {
        name: name.into(),
        kind: SpanKind::Server,
        trace_id,
        span_id: [2; 8],
        parent_id: None,
        start: end - Duration::from_millis(1),
        end,
        attributes: Vec::new(),
        error: false,
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_over_tls_to_a_collector_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start_tls(dir.path()).await;
    assert!(collector.endpoint().starts_with("https://"));
    let t = Telemetry::init(&args(&collector), "apiroutes-gateway")
        .unwrap()
        .unwrap();
    export_server_span(&t, "GET /api/tls", [1; 16]);
    t.shutdown().await;
    let got = collector.span("GET /api/tls", PATIENCE, |_| true).await;
    assert_eq!(got.span.trace_id, vec![1; 16]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_collector_gets_no_span() {
    // The same TLS collector, without its CA: the handshake fails, nothing arrives.
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start_tls(dir.path()).await;
    let plain = TelemetryArgs {
        otlp_endpoint: Some(collector.endpoint()),
        otlp_certificate: None,
    };
    let t = Telemetry::init(&plain, "apiroutes-gateway")
        .unwrap()
        .unwrap();
    export_server_span(&t, "GET /api/untrusted", [3; 16]);
    // Shutdown flushes: the export has been tried (and failed) when it returns.
    t.shutdown().await;
    assert!(
        collector.try_span().is_none(),
        "a span arrived over an untrusted TLS connection"
    );
}
