//! Span export over OTLP/HTTP (protobuf), when an endpoint is configured.
//!
//! Off (no endpoint) nothing here exists: callers hold an `Option<Spans>` that is `None`,
//! and no span is built. On, finished spans go to one batch processor (the SDK's: a
//! bounded queue, a thread of its own, spans dropped when the queue is full, so a slow or
//! absent collector never blocks the caller), which posts them to
//! `<endpoint>/v1/traces` with the process's tokio runtime. Two ways in:
//!
//! - [`Spans::export`]: a span whose ids the caller already has (the gateway's request
//!   span, whose ids are in its `traceparent` and its access log);
//! - [`Telemetry::layer`]: a `tracing` layer that turns `tracing` spans into OTel spans
//!   (the operator's reconcile spans).
//!
//! [`Telemetry::shutdown`] flushes what is queued.

use std::{borrow::Cow, path::Path, path::PathBuf, sync::Arc, time::Duration, time::SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use opentelemetry::{
    InstrumentationScope,
    trace::{SpanContext, Status, TraceFlags, TraceState, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{
        BatchSpanProcessor, SdkTracerProvider, SpanData, SpanEvents, SpanExporter as _, SpanLinks,
        SpanProcessor,
    },
};

pub use opentelemetry::{
    KeyValue,
    trace::{SpanId, SpanKind, TraceId},
};

/// `--otlp-endpoint`, flattened into a component's flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TelemetryArgs {
    /// OTLP/HTTP collector base URL (spans are posted to `<URL>/v1/traces`, protobuf), e.g.
    /// http://otel-collector.observability:4318 or https://collector.example:4318. Unset
    /// or empty: no spans are exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// PEM file of CA certificates trusted for an https:// collector, besides the system's
    /// (a collector with a private CA).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_CERTIFICATE", value_name = "FILE")]
    pub otlp_certificate: Option<PathBuf>,
}

/// Why span export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("--otlp-endpoint {0:?}: only http:// and https:// endpoints are supported")]
    Scheme(String),
    #[error("--otlp-certificate {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// How long one export request may take (a collector that hangs costs one batch).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for the last spans to go out.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest collector answer read (it is a small protobuf message).
const MAX_RESPONSE: usize = 64 * 1024;

/// The traces URL for a base endpoint, as the OTLP spec builds it for
/// `OTEL_EXPORTER_OTLP_ENDPOINT`: `/v1/traces` appended; `None` when there is none.
pub fn traces_url(endpoint: Option<&str>) -> Result<Option<String>, TelemetryError> {
    let Some(base) = endpoint.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(TelemetryError::Scheme(base.to_owned()));
    }
    Ok(Some(format!("{}/v1/traces", base.trim_end_matches('/'))))
}

/// The service name: `OTEL_SERVICE_NAME` when set (the standard variable), else the
/// component's own name.
pub fn service_name(env: Option<String>, default: &str) -> String {
    env.filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Span export of one process.
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// Where spans go (`<endpoint>/v1/traces`).
    url: String,
    service: String,
    spans: Spans,
}

/// A cheap handle for exporting finished spans (clone per request path owner).
#[derive(Clone)]
pub struct Spans {
    processor: Arc<BatchSpanProcessor>,
    scope: InstrumentationScope,
}

impl Telemetry {
    /// Span export to `args`' endpoint, as `default_service` unless `OTEL_SERVICE_NAME`
    /// says otherwise; `None` when no endpoint is configured. Needs a tokio runtime (the
    /// export requests run on it).
    pub fn init(
        args: &TelemetryArgs,
        default_service: &str,
    ) -> Result<Option<Telemetry>, TelemetryError> {
        let Some(url) = traces_url(args.otlp_endpoint.as_deref())? else {
            return Ok(None);
        };
        let service = service_name(std::env::var("OTEL_SERVICE_NAME").ok(), default_service);
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(TokioHttp::new(
                rt,
                tls_config(
                    url.starts_with("https://"),
                    args.otlp_certificate.as_deref(),
                )?,
            ))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        // The resource goes to the exporter itself: the processor is shared below, and the
        // provider could not hand it on through the `Arc`.
        exporter.set_resource(
            &Resource::builder()
                .with_service_name(service.clone())
                .build(),
        );
        // Queue size, batch size and delay: the SDK's defaults (2048, 512, 5 s), or the
        // standard OTEL_BSP_* variables.
        let processor = Arc::new(BatchSpanProcessor::builder(exporter).build());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Shared(Arc::clone(&processor)))
            .build();
        Ok(Some(Telemetry {
            provider,
            url,
            service,
            spans: Spans {
                processor,
                // The instrumentation is the component, whatever the service is called.
                scope: InstrumentationScope::builder(default_service.to_owned())
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            },
        }))
    }

    /// Logs where spans go (callers do, once their logger is installed).
    pub fn log_started(&self) {
        tracing::info!(url = %self.url, service = %self.service, "exporting spans over OTLP");
    }

    /// The handle for spans the caller builds itself.
    pub fn spans(&self) -> Spans {
        self.spans.clone()
    }

    /// A `tracing` layer exporting `tracing` spans (`scope` names the instrumentation).
    pub fn layer<S>(
        &self,
        scope: &'static str,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer(scope))
    }

    /// Sends what is queued and stops the export thread (bounded by a timeout). Blocks a
    /// thread of the blocking pool, not the runtime: the export requests run on the runtime.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT))
                .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing spans"),
            Err(e) => tracing::warn!(error = %e, "flushing spans"),
        }
    }
}

/// A finished span whose ids the caller has.
pub struct Finished {
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The caller's span (remote), when the trace was continued.
    pub parent_id: Option<[u8; 8]>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub error: bool,
}

impl Spans {
    /// Queues `span` for export; never blocks (a full queue drops it).
    pub fn export(&self, span: Finished) {
        self.processor.on_end(self.span_data(span));
    }

    fn span_data(&self, s: Finished) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(s.trace_id),
                SpanId::from_bytes(s.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: s.parent_id.map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: s.parent_id.is_some(),
            span_kind: s.kind,
            name: s.name,
            start_time: s.start,
            end_time: s.end,
            attributes: s.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if s.error {
                Status::error("")
            } else {
                Status::Unset
            },
            instrumentation_scope: self.scope.clone(),
        }
    }
}

/// The batch processor, shared by the provider (for `tracing` spans) and [`Spans`].
#[derive(Debug)]
struct Shared(Arc<BatchSpanProcessor>);

impl SpanProcessor for Shared {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }
    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// The exporter's HTTP client: hyper on the process's tokio runtime. The batch processor
/// exports from a thread of its own (not a runtime thread), so each request is spawned
/// onto the runtime and its `JoinHandle` awaited from there.
#[derive(Debug)]
struct TokioHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    rt: tokio::runtime::Handle,
    /// When a failed export was last logged (the SDK reports none without its internal
    /// logs, so a wrong endpoint would otherwise go unnoticed).
    last_warning: std::sync::Mutex<Option<std::time::Instant>>,
}

impl TokioHttp {
    fn new(rt: tokio::runtime::Handle, tls: rustls::ClientConfig) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(EXPORT_TIMEOUT));
        // https_or_http: the scheme of the endpoint decides.
        conn.enforce_http(false);
        let conn = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(conn);
        TokioHttp {
            client: Client::builder(TokioExecutor::new()).build(conn),
            rt,
            last_warning: std::sync::Mutex::new(None),
        }
    }

    /// Logs a failed export, at most once per [`WARN_EVERY`].
    fn warn(&self, what: &dyn std::fmt::Display) {
        let now = std::time::Instant::now();
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if should_warn(*last, now) {
            *last = Some(now);
            drop(last);
            tracing::warn!(error = %what, "exporting spans failed (spans are dropped; logged at most once a minute)");
        }
    }
}

/// TLS toward the collector: the system's roots (read only for an https:// endpoint: a
/// plain one never uses them), plus `ca_file`'s certificates. A missing or empty file is
/// an error at start, not a silent fallback.
fn tls_config(https: bool, ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TelemetryError> {
    let roots = apiroutes_tls::roots(https, ca_file).map_err(|e| match e {
        apiroutes_tls::Error::CaFile { path, reason } => {
            TelemetryError::Certificate { path, reason }
        }
        other => TelemetryError::Exporter(other.to_string()),
    })?;
    apiroutes_tls::client_config(roots.store).map_err(|e| TelemetryError::Exporter(e.to_string()))
}

/// How often a failing export is logged at most.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Whether a failure now is logged, the last one having been at `last`.
fn should_warn(last: Option<std::time::Instant>, now: std::time::Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY)
}

type HttpError = opentelemetry_http::HttpError;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for TokioHttp {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let call = async move {
            let resp = client.request(request.map(Full::new)).await?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
            Ok::<_, HttpError>(http::Response::from_parts(parts, body))
        };
        let task = self
            .rt
            .spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, call).await });
        let result: Result<_, HttpError> = match task.await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("export request timed out".into()),
            Err(e) => Err(Box::new(e)),
        };
        match &result {
            Ok(resp) if !resp.status().is_success() => {
                self.warn(&format_args!("the collector answered {}", resp.status()));
            }
            Ok(_) => {}
            Err(e) => self.warn(e),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(matches!(traces_url(None), Ok(None)));
        assert!(matches!(traces_url(Some("  ")), Ok(None)));
        assert_eq!(
            traces_url(Some("http://collector:4318")).ok().flatten(),
            Some("http://collector:4318/v1/traces".to_owned())
        );
        assert_eq!(
            traces_url(Some("http://collector:4318/otlp/"))
                .ok()
                .flatten(),
            Some("http://collector:4318/otlp/v1/traces".to_owned())
        );
        assert_eq!(
            traces_url(Some("https://collector:4318")).ok().flatten(),
            Some("https://collector:4318/v1/traces".to_owned())
        );
        assert!(matches!(
            traces_url(Some("grpc://collector:4317")),
            Err(TelemetryError::Scheme(_))
        ));
    }

    #[test]
    fn a_ca_file_that_gives_no_certificate_is_refused() {
        let dir = std::env::temp_dir().join(format!("kit-tls-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let empty = dir.join("empty.pem");
        let _ = std::fs::write(&empty, "not a certificate\n");
        for path in [empty.as_path(), dir.join("missing.pem").as_path()] {
            match tls_config(false, Some(path)) {
                Err(TelemetryError::Certificate { path: p, .. }) => assert_eq!(p, path),
                other => panic!("{path:?}: {:?}", other.map(|_| ())),
            }
        }
        assert!(tls_config(false, None).is_ok() && tls_config(true, None).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_are_logged_once_a_minute() {
        let t0 = std::time::Instant::now();
        assert!(should_warn(None, t0));
        assert!(!should_warn(Some(t0), t0 + Duration::from_secs(59)));
        assert!(should_warn(Some(t0), t0 + WARN_EVERY));
    }

    #[test]
    fn service_names() {
        assert_eq!(service_name(None, "apiroutes-gateway"), "apiroutes-gateway");
        assert_eq!(service_name(Some(" ".into()), "x"), "x");
        assert_eq!(service_name(Some("edge".into()), "x"), "edge");
    }
}
