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
    probe,
    table::{Endpoint, Registry, RouteTable, Target},
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
    /// Finds the autoscaler again from the watched Lease and Service (set by the k8s
    /// source), after a push found no leader where `url` pointed.
    resolver: std::sync::OnceLock<Resolver>,
}

pub type Resolver = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// Pushes tried per report or demand: the first address, then re-resolved ones.
const PUSH_ATTEMPTS: u32 = 3;
/// Pause before a re-resolved attempt (times the attempt number): the Lease or the
/// EndpointSlices may be a moment behind a hand-over.
const FAILOVER_PAUSE: Duration = Duration::from_millis(200);

/// How one push went.
#[derive(Debug)]
pub enum Pushed {
    Accepted,
    Refused(http::StatusCode),
    /// No connection could be made.
    Unreachable,
    /// Anything else (sent, then failed or timed out): it may have been applied.
    Failed,
}

/// The pure failover rule: try another address only when the push certainly did nothing —
/// the endpoint is not the leader (503) or nothing listens there. A push that may have been
/// applied is not repeated (a load report counted twice would double the load).
pub fn fails_over(pushed: &Pushed) -> bool {
    match pushed {
        Pushed::Refused(status) => *status == http::StatusCode::SERVICE_UNAVAILABLE,
        Pushed::Unreachable => true,
        Pushed::Accepted | Pushed::Failed => false,
    }
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
            resolver: std::sync::OnceLock::new(),
        }
    }

    /// Set once, by the source that discovers the autoscaler.
    pub fn set_resolver(&self, resolver: Resolver) {
        let _ = self.resolver.set(resolver);
    }

    /// Authenticates every push with the token in `path` (a ServiceAccount token bound to
    /// the audience `apiroutes-autoscaler`, which the operator reviews). Set once, at start.
    pub fn use_token_file(&self, path: std::path::PathBuf) {
        let _ = self.token.set(TokenFile {
            path,
            cached: std::sync::Mutex::new(None),
        });
    }

    /// Pushes `body`; when the address is not the leader (503) or unreachable, finds the
    /// autoscaler again and retries, a bounded number of times.
    async fn post(&self, path: &str, body: Vec<u8>, kind: &str) {
        let body = Bytes::from(body);
        for attempt in 0..PUSH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(FAILOVER_PAUSE * attempt).await;
                if let Some(resolve) = self.resolver.get() {
                    self.url.store(resolve().map(Arc::new));
                }
            }
            let Some(base) = self.url.load_full() else {
                return;
            };
            let pushed = self.post_once(&base, path, body.clone()).await;
            if matches!(pushed, Pushed::Accepted) {
                return;
            }
            self.metrics
                .autoscaler_errors
                .with_label_values(&[kind])
                .inc();
            let again = fails_over(&pushed) && attempt + 1 < PUSH_ATTEMPTS;
            tracing::warn!(url = %base, ?pushed, kind, again, "autoscaler push failed");
            if !again {
                return;
            }
        }
    }

    async fn post_once(&self, base: &str, path: &str, body: Bytes) -> Pushed {
        let Ok(uri) = format!("{base}{path}").parse::<Uri>() else {
            return Pushed::Failed;
        };
        let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(value) = self.token.get().and_then(TokenFile::header) {
            req = req.header(header::AUTHORIZATION, value);
        }
        let Ok(req) = req.body(Full::new(body)) else {
            return Pushed::Failed;
        };
        match tokio::time::timeout(Duration::from_secs(5), self.client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => Pushed::Accepted,
            Ok(Ok(resp)) => Pushed::Refused(resp.status()),
            Ok(Err(e)) if e.is_connect() => Pushed::Unreachable,
            Ok(Err(_)) | Err(_) => Pushed::Failed,
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
        self.metrics.held().dec();
    }
}

/// What a held request waits with: the gateway's table, autoscaler and hold limits, and
/// its route's variant, metrics and timeout.
pub struct Hold<'a> {
    pub table: &'a ArcSwap<RouteTable>,
    pub autoscaler: &'a Arc<Autoscaler>,
    pub holds: &'a Holds,
    pub state: &'a Arc<VariantState>,
    pub metrics: &'a RouteMetrics,
    /// The route's timeout, for the error.
    pub timeout: Duration,
}

/// Waits until the variant has a ready endpoint in the current table (one not in
/// `refused`), or the deadline passes. Returns the variant's target then.
pub async fn wait_ready(
    hold: Hold<'_>,
    deadline: Instant,
    refused: &[Arc<Endpoint>],
) -> Result<Arc<Target>, Error> {
    let Hold {
        table,
        autoscaler,
        holds,
        state,
        metrics,
        timeout,
    } = hold;
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
    metrics.held().inc();
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
            && t.endpoints.iter().any(|e| !refused_before(refused, e))
        {
            return Ok(Arc::clone(t));
        }
        // A starting pod that passed the gateway's own check serves before the slice says
        // it is ready (crate::probe); else check the starting pods, if any.
        if let Some(e) = probe::usable(state)
            && !refused_before(refused, &e)
        {
            return Ok(Arc::new(Target {
                state: Arc::clone(state),
                endpoints: Box::new([e]),
            }));
        }
        probe::spawn(state);
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

/// Whether `e` (by address: a new snapshot may hold a new `Endpoint` for the same pod)
/// already refused this request's connections.
fn refused_before(refused: &[Arc<Endpoint>], e: &Endpoint) -> bool {
    refused.iter().any(|r| r.authority == e.authority)
}

/// Wakes the held requests of every variant among `targets` that has ready endpoints.
pub fn wake_ready<'t>(targets: impl IntoIterator<Item = &'t Arc<Target>>) {
    for t in targets {
        if !t.endpoints.is_empty() && t.state.held.load(Acquire) > 0 {
            t.state.ready.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn failover_rule() {
        assert!(fails_over(&Pushed::Refused(
            http::StatusCode::SERVICE_UNAVAILABLE
        )));
        assert!(fails_over(&Pushed::Unreachable));
        assert!(!fails_over(&Pushed::Accepted));
        assert!(!fails_over(&Pushed::Failed), "may have been applied");
        assert!(!fails_over(&Pushed::Refused(http::StatusCode::FORBIDDEN)));
    }

    /// A one-status HTTP server counting its requests.
    async fn server(status: u16) -> (String, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let mut seen = Vec::new();
                    // Headers, then the (small) body: enough to answer.
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        if seen.ends_with(b"}") {
                            break;
                        }
                    }
                    c.fetch_add(1, SeqCst);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        (url, count)
    }

    #[tokio::test]
    async fn a_push_fails_over_from_a_standby_to_the_re_resolved_leader() {
        let (standby, at_standby) = server(503).await;
        let (leader, at_leader) = server(202).await;
        let metrics = Metrics::new();
        let a = Autoscaler::new("gw".into(), Some(standby.clone()), metrics);
        let l = leader.clone();
        a.set_resolver(Box::new(move || Some(l.clone())));
        a.post(LOAD_PATH, b"{}".to_vec(), "load").await;
        assert_eq!(at_standby.load(SeqCst), 1);
        assert_eq!(
            at_leader.load(SeqCst),
            1,
            "re-resolved and pushed to the leader"
        );
        assert_eq!(a.url.load_full().as_deref(), Some(&leader));

        // Nobody leads anywhere: bounded, then given up.
        let (standby2, at_standby2) = server(503).await;
        let s = standby2.clone();
        let b = Autoscaler::new("gw".into(), Some(standby2.clone()), Metrics::new());
        b.set_resolver(Box::new(move || Some(s.clone())));
        b.post(LOAD_PATH, b"{}".to_vec(), "load").await;
        assert_eq!(at_standby2.load(SeqCst), PUSH_ATTEMPTS);

        // Not failed over: a refusal that is not about leadership.
        let (forbidden, at_forbidden) = server(403).await;
        let c = Autoscaler::new("gw".into(), Some(forbidden), Metrics::new());
        c.post(LOAD_PATH, b"{}".to_vec(), "load").await;
        assert_eq!(at_forbidden.load(SeqCst), 1);
    }
}
