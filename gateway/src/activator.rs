//! Cold starts: a request for a route variant with no ready endpoint is held (bounded per
//! route and in total), a [`Demand`] is pushed to the autoscaler at once, and the request
//! is released the moment the variant has a ready endpoint (the table install wakes it) or
//! answered 503 + `Retry-After` at its deadline. Also the once-a-second [`LoadReport`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering::*},
    },
    time::Duration,
};

use apiroutes_crds::autoscale::{DEMAND_PATH, Demand, LOAD_PATH, LoadReport};
use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::time::Instant;

use crate::{
    error::Error,
    metrics::{Metrics, RouteMetrics},
    table::{Registry, RouteTable, Target},
    variant::{VariantState, now_us},
};

/// Talks to the operator's autoscaler (`--autoscaler-url`, or discovered).
pub struct Autoscaler {
    /// Base URL such as `http://10.0.0.5:8081`; `None`: nobody to tell.
    pub url: ArcSwapOption<String>,
    gateway: String,
    client: Client<HttpConnector, Full<Bytes>>,
    metrics: Arc<Metrics>,
    /// The ServiceAccount token proving who pushes (`--autoscaler-token-file`).
    token: std::sync::OnceLock<TokenFile>,
}

/// A projected ServiceAccount token file: the kubelet rewrites it before it expires, so it
/// is read again at most once a minute.
struct TokenFile {
    path: std::path::PathBuf,
    cached: std::sync::Mutex<Option<(std::time::Instant, http::HeaderValue)>>,
}

impl TokenFile {
    const REREAD: Duration = Duration::from_secs(60);

    /// `Bearer <token>`, from the cache or the file; `None` when the file cannot be read.
    fn header(&self) -> Option<http::HeaderValue> {
        let mut cached = match self.cached.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((at, value)) = cached.as_ref()
            && at.elapsed() < Self::REREAD
        {
            return Some(value.clone());
        }
        let token = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the autoscaler token");
                return cached.as_ref().map(|(_, v)| v.clone());
            }
        };
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", token.trim())).ok()?;
        value.set_sensitive(true);
        *cached = Some((std::time::Instant::now(), value.clone()));
        Some(value)
    }
}

impl Autoscaler {
    pub fn new(gateway: String, url: Option<String>, metrics: Arc<Metrics>) -> Self {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_secs(2)));
        Autoscaler {
            url: ArcSwapOption::from(url.map(|u| Arc::new(u.trim_end_matches('/').to_owned()))),
            gateway,
            client: Client::builder(TokioExecutor::new()).build(conn),
            metrics,
            token: std::sync::OnceLock::new(),
        }
    }

    /// Authenticates every push with the token in `path` (a ServiceAccount token bound to
    /// the audience `apiroutes-autoscaler`, which the operator reviews). Set once, at start.
    pub fn use_token_file(&self, path: std::path::PathBuf) {
        let _ = self.token.set(TokenFile {
            path,
            cached: std::sync::Mutex::new(None),
        });
    }

    async fn post(&self, path: &str, body: Vec<u8>, kind: &str) {
        let Some(base) = self.url.load_full() else {
            return;
        };
        let Ok(uri) = format!("{base}{path}").parse::<Uri>() else {
            self.metrics
                .autoscaler_errors
                .with_label_values(&[kind])
                .inc();
            return;
        };
        let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(value) = self.token.get().and_then(TokenFile::header) {
            req = req.header(header::AUTHORIZATION, value);
        }
        let req = req.body(Full::new(Bytes::from(body)));
        let Ok(req) = req else { return };
        match tokio::time::timeout(Duration::from_secs(5), self.client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => {}
            Ok(Ok(resp)) => {
                tracing::warn!(status = %resp.status(), kind, "autoscaler refused a push");
                self.metrics
                    .autoscaler_errors
                    .with_label_values(&[kind])
                    .inc();
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, kind, "autoscaler push failed");
                self.metrics
                    .autoscaler_errors
                    .with_label_values(&[kind])
                    .inc();
            }
            Err(_) => {
                tracing::warn!(kind, "autoscaler push timed out");
                self.metrics
                    .autoscaler_errors
                    .with_label_values(&[kind])
                    .inc();
            }
        }
    }

    /// Pushes a `Demand` for `state` unless one is already under way for it.
    pub fn demand(self: &Arc<Self>, state: &Arc<VariantState>) {
        if self.url.load().is_none() || state.demand_in_flight.swap(true, AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        let state = Arc::clone(state);
        tokio::spawn(async move {
            let demand = Demand {
                gateway: this.gateway.clone(),
                route: (*state.key).clone(),
                held: state.held.load(Acquire),
            };
            if let Ok(body) = serde_json::to_vec(&demand) {
                this.post(DEMAND_PATH, body, "demand").await;
            }
            state.demand_in_flight.store(false, Release);
        });
    }

    /// Pushes a `LoadReport` every `interval` until the task is dropped.
    pub async fn report_loop(self: Arc<Self>, registry: Arc<Registry>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = now_us();
        loop {
            tick.tick().await;
            let now = now_us();
            let span = now.saturating_sub(last).max(1);
            last = now;
            let routes: Vec<_> = registry
                .variants()
                .iter()
                .filter_map(|v| v.take_load(span, 120_000_000))
                .collect();
            if routes.is_empty() || self.url.load().is_none() {
                continue;
            }
            #[allow(clippy::cast_precision_loss)]
            let report = LoadReport {
                gateway: self.gateway.clone(),
                interval_seconds: span as f64 / 1e6,
                routes,
            };
            if let Ok(body) = serde_json::to_vec(&report) {
                self.post(LOAD_PATH, body, "load").await;
            }
        }
    }
}

/// Limits on held requests.
pub struct Holds {
    pub per_route: u32,
    pub total: u32,
    held_total: AtomicU32,
}

impl Holds {
    pub fn new(per_route: u32, total: u32) -> Self {
        Holds {
            per_route,
            total,
            held_total: AtomicU32::new(0),
        }
    }

    pub fn total(&self) -> u32 {
        self.held_total.load(Relaxed)
    }
}

struct HeldGuard<'a> {
    holds: &'a Holds,
    state: &'a VariantState,
    metrics: &'a RouteMetrics,
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.holds.held_total.fetch_sub(1, AcqRel);
        self.state.held.fetch_sub(1, AcqRel);
        self.metrics.held.dec();
    }
}

/// Waits until the variant of `state` has a ready endpoint in the current table, or the
/// deadline passes. Returns the variant's target then.
pub async fn wait_ready(
    table: &ArcSwap<RouteTable>,
    autoscaler: &Arc<Autoscaler>,
    holds: &Holds,
    state: &Arc<VariantState>,
    metrics: &RouteMetrics,
    deadline: Instant,
    timeout: Duration,
) -> Result<Arc<Target>, Error> {
    // Reserve a slot under both bounds.
    if state
        .held
        .fetch_update(AcqRel, Acquire, |h| (h < holds.per_route).then_some(h + 1))
        .is_err()
    {
        return Err(Error::HoldLimit);
    }
    if holds
        .held_total
        .fetch_update(AcqRel, Acquire, |h| (h < holds.total).then_some(h + 1))
        .is_err()
    {
        state.held.fetch_sub(1, AcqRel);
        return Err(Error::HoldLimit);
    }
    metrics.held.inc();
    let _guard = HeldGuard {
        holds,
        state,
        metrics,
    };
    autoscaler.demand(state);
    loop {
        let notified = state.ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(t) = table.load().target(&state.key)
            && !t.endpoints.is_empty()
        {
            return Ok(Arc::clone(t));
        }
        // Re-tell the autoscaler every second while waiting (it may have missed it).
        let wake = (Instant::now() + Duration::from_secs(1)).min(deadline);
        if tokio::time::timeout_at(wake, notified).await.is_err() {
            if Instant::now() >= deadline {
                return Err(Error::ActivationTimeout {
                    seconds: timeout.as_secs(),
                });
            }
            autoscaler.demand(state);
        }
    }
}

/// Wakes the held requests of every variant among `targets` that has ready endpoints.
pub fn wake_ready<'t>(targets: impl IntoIterator<Item = &'t Arc<Target>>) {
    for t in targets {
        if !t.endpoints.is_empty() && t.state.held.load(Acquire) > 0 {
            t.state.ready.notify_waiters();
        }
    }
}
