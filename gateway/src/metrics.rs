//! One Prometheus registry, prefix `apiroutes_gateway_`. Per-route handles are created once
//! per route (kept across table rebuilds) so the request path does no label hashing for the
//! common method/status pairs.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use http::{Method, StatusCode};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Route label of requests that matched no route (404, 400, 308, admin errors).
pub const NO_ROUTE: &str = "none";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const ACTIVATION_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0,
];

/// All gateway metrics.
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub held: IntGaugeVec,
    pub activation_wait: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub table_routes: IntGauge,
    pub table_rebuilds: IntCounter,
    pub table_rebuild_seconds: Histogram,
    pub connections: IntGauge,
    pub autoscaler_errors: IntCounterVec,
    pub untrusted_slices: IntGaugeVec,
    pub access_log_dropped: IntCounter,
}

fn must<T>(r: Result<T, prometheus::Error>) -> T {
    // Metric definitions are constants: failing here is a programming error caught by tests.
    #[allow(clippy::expect_used)]
    r.expect("valid metric definition")
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let registry = must(Registry::new_custom(Some("apiroutes_gateway".into()), None));
        let requests = must(IntCounterVec::new(
            Opts::new(
                "requests_total",
                "HTTP requests answered, by route, method and code",
            ),
            &["route", "method", "code"],
        ));
        let duration = must(HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from request to response headers, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        ));
        let in_flight = must(IntGaugeVec::new(
            Opts::new(
                "in_flight_requests",
                "Requests in flight (held or proxied), by route",
            ),
            &["route"],
        ));
        let held = must(IntGaugeVec::new(
            Opts::new(
                "held_requests",
                "Requests held waiting for a ready endpoint, by route",
            ),
            &["route"],
        ));
        let activation_wait = must(HistogramVec::new(
            HistogramOpts::new(
                "activation_wait_seconds",
                "Time requests waited for a route to wake (cold start), by route",
            )
            .buckets(ACTIVATION_BUCKETS.to_vec()),
            &["route"],
        ));
        let upstream_errors = must(IntCounterVec::new(
            Opts::new(
                "upstream_errors_total",
                "Failed attempts to reach a function, by route and kind",
            ),
            &["route", "kind"],
        ));
        let table_routes = must(IntGauge::new(
            "route_table_routes",
            "ApiRoutes in the current route table",
        ));
        let table_rebuilds = must(IntCounter::new(
            "route_table_rebuilds_total",
            "Route table rebuilds",
        ));
        let table_rebuild_seconds = must(Histogram::with_opts(
            HistogramOpts::new(
                "route_table_rebuild_seconds",
                "Time to rebuild the route table",
            )
            .buckets(vec![0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]),
        ));
        let connections = must(IntGauge::new(
            "open_connections",
            "Client connections currently open",
        ));
        let autoscaler_errors = must(IntCounterVec::new(
            Opts::new(
                "autoscaler_errors_total",
                "Failed pushes to the autoscaler, by kind (demand, load)",
            ),
            &["kind"],
        ));
        // By namespace only (bounded by the watched namespaces), never by slice name,
        // which whoever forges slices would choose.
        let untrusted_slices = must(IntGaugeVec::new(
            Opts::new(
                "untrusted_endpointslices",
                "EndpointSlices with the operator's labels but not its owner chain (ignored), by namespace",
            ),
            &["namespace"],
        ));
        let access_log_dropped = must(IntCounter::new(
            "access_log_dropped_lines_total",
            "Access-log lines dropped because stdout did not keep up",
        ));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(held.clone()),
            Box::new(activation_wait.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(table_routes.clone()),
            Box::new(table_rebuilds.clone()),
            Box::new(table_rebuild_seconds.clone()),
            Box::new(connections.clone()),
            Box::new(autoscaler_errors.clone()),
            Box::new(untrusted_slices.clone()),
            Box::new(access_log_dropped.clone()),
        ] {
            must(registry.register(c));
        }
        Arc::new(Metrics {
            registry,
            requests,
            duration,
            in_flight,
            held,
            activation_wait,
            upstream_errors,
            table_routes,
            table_rebuilds,
            table_rebuild_seconds,
            connections,
            autoscaler_errors,
            untrusted_slices,
            access_log_dropped,
        })
    }

    /// Handles for one route label.
    pub fn route(self: &Arc<Self>, route: &str) -> Arc<RouteMetrics> {
        Arc::new(RouteMetrics {
            route: route.into(),
            duration: OnceLock::new(),
            in_flight: OnceLock::new(),
            held: OnceLock::new(),
            activation_wait: OnceLock::new(),
            counters: OnceLock::new(),
            rare: Mutex::default(),
            metrics: Arc::clone(self),
        })
    }

    /// Text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// The `method` label: the standard methods by name, any other as `other`, so a client
/// cannot mint series by inventing methods.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
const OTHER_METHOD: &str = "other";
const CODES: [u16; 24] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 422,
    429, 500, 502, 503, 504,
];
/// Every `kind` of `upstream_errors_total` (for removing a route's series).
pub const UPSTREAM_KINDS: [&str; 4] = ["connect", "request", "protocol", "timeout"];

fn method_label(i: usize) -> &'static str {
    METHODS.get(i).map_or(OTHER_METHOD, Method::as_str)
}

/// Cached metric handles of one route. Every series is made on first use: at 10,000
/// routes, making them up front was 40,000 series, about 25 ms of a cold table build and
/// 31 MiB, mostly for routes that never see a request.
pub struct RouteMetrics {
    pub route: Box<str>,
    duration: OnceLock<Histogram>,
    in_flight: OnceLock<IntGauge>,
    held: OnceLock<IntGauge>,
    activation_wait: OnceLock<Histogram>,
    /// Counters of the common (method, code) pairs, made on first use.
    counters: OnceLock<Box<[OnceLock<IntCounter>]>>,
    /// The rest, keyed by (method index, code): also the record of which series exist.
    rare: Mutex<HashMap<(usize, u16), IntCounter>>,
    metrics: Arc<Metrics>,
}

impl RouteMetrics {
    /// Time to the response head.
    pub fn duration(&self) -> &Histogram {
        self.duration
            .get_or_init(|| self.metrics.duration.with_label_values(&[&*self.route]))
    }

    /// Requests being proxied.
    pub fn in_flight(&self) -> &IntGauge {
        self.in_flight
            .get_or_init(|| self.metrics.in_flight.with_label_values(&[&*self.route]))
    }

    /// Requests held for a wake.
    pub fn held(&self) -> &IntGauge {
        self.held
            .get_or_init(|| self.metrics.held.with_label_values(&[&*self.route]))
    }

    /// Time held for a wake.
    pub fn activation_wait(&self) -> &Histogram {
        self.activation_wait.get_or_init(|| {
            self.metrics
                .activation_wait
                .with_label_values(&[&*self.route])
        })
    }

    /// Counts one answered request.
    pub fn count(&self, method: &Method, code: StatusCode) {
        let m = METHODS
            .iter()
            .position(|x| x == method)
            .unwrap_or(METHODS.len());
        let c = CODES.binary_search(&code.as_u16()).ok();
        let new = || {
            self.metrics
                .requests
                .with_label_values(&[&*self.route, method_label(m), code.as_str()])
        };
        if m < METHODS.len()
            && let Some(c) = c
        {
            let slots = self.counters.get_or_init(|| {
                (0..METHODS.len() * CODES.len())
                    .map(|_| OnceLock::new())
                    .collect()
            });
            if let Some(slot) = slots.get(m * CODES.len() + c) {
                slot.get_or_init(new).inc();
            }
            return;
        }
        if let Ok(mut rare) = self.rare.lock() {
            rare.entry((m, code.as_u16())).or_insert_with(new).inc();
        }
    }

    /// Counts a failed attempt to reach a function (`kind` is one of [`UPSTREAM_KINDS`]).
    pub fn upstream_error(&self, kind: &str) {
        self.metrics
            .upstream_errors
            .with_label_values(&[&*self.route, kind])
            .inc();
    }

    /// Removes every series of this route (it left the table): nothing would ever update
    /// them again, and routes come and go.
    pub fn remove_series(&self) {
        let m = &self.metrics;
        let label = [&*self.route];
        if self.duration.get().is_some() {
            let _ = m.duration.remove_label_values(&label);
        }
        if self.in_flight.get().is_some() {
            let _ = m.in_flight.remove_label_values(&label);
        }
        if self.held.get().is_some() {
            let _ = m.held.remove_label_values(&label);
        }
        if self.activation_wait.get().is_some() {
            let _ = m.activation_wait.remove_label_values(&label);
        }
        for kind in UPSTREAM_KINDS {
            let _ = m.upstream_errors.remove_label_values(&[&*self.route, kind]);
        }
        let mut made: Vec<(usize, u16)> = Vec::new();
        if let Some(slots) = self.counters.get() {
            for (i, slot) in slots.iter().enumerate() {
                if slot.get().is_some() {
                    made.push((i / CODES.len(), CODES[i % CODES.len()]));
                }
            }
        }
        if let Ok(rare) = self.rare.lock() {
            made.extend(rare.keys().copied());
        }
        for (method, code) in made {
            let code = code.to_string();
            let _ = m
                .requests
                .remove_label_values(&[&*self.route, method_label(method), &code]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_prefix_and_labels() {
        let m = Metrics::new();
        let r = m.route("shop/user");
        r.count(&Method::GET, StatusCode::OK);
        r.count(&Method::GET, StatusCode::OK);
        r.count(
            &Method::from_bytes(b"PURGE").unwrap_or(Method::GET),
            StatusCode::IM_A_TEAPOT,
        );
        r.upstream_error("connect");
        let text = String::from_utf8(m.render()).unwrap_or_default();
        assert!(text.contains(
            r#"apiroutes_gateway_requests_total{code="200",method="GET",route="shop/user"} 2"#
        ));
        assert!(text.contains(
            r#"apiroutes_gateway_requests_total{code="418",method="other",route="shop/user"} 1"#
        ));
        assert!(text.contains(
            r#"apiroutes_gateway_upstream_errors_total{kind="connect",route="shop/user"} 1"#
        ));
        assert!(CODES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn methods_are_bounded_and_removed_routes_leave_no_series() {
        let m = Metrics::new();
        let r = m.route("ns/gone");
        let keep = m.route("ns/kept");
        for method in ["GET", "TRACE", "PURGE", "X-ANYTHING-1", "X-ANYTHING-2"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            r.count(&method, StatusCode::OK);
            r.count(&method, StatusCode::IM_A_TEAPOT);
        }
        r.upstream_error("connect");
        r.upstream_error("timeout");
        keep.count(&Method::GET, StatusCode::OK);
        let text = String::from_utf8(m.render()).unwrap_or_default();
        assert!(text.contains(
            r#"apiroutes_gateway_requests_total{code="200",method="other",route="ns/gone"} 3"#
        ));
        assert!(text.contains(r#"code="418",method="TRACE",route="ns/gone"} 1"#));
        assert!(
            !text.contains("PURGE") && !text.contains("X-ANYTHING"),
            "{text}"
        );

        r.remove_series();
        let text = String::from_utf8(m.render()).unwrap_or_default();
        assert!(!text.contains("ns/gone"), "{text}");
        assert!(text.contains(r#"route="ns/kept""#));
    }
}
