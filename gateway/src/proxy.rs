//! The request path: normalize, match, hold if the function sleeps, forward with the
//! contract headers (and the trace context: [`crate::trace_context`]) to the least-loaded
//! ready endpoint, stream the answer back. Every failure is an [`Error`] turned into a
//! response in one place ([`Error::into_response`]). Every request, answered by a function
//! or by the gateway, leaves one access-log line ([`crate::access_log`]).

use std::{
    borrow::Cow,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::Ordering::{Acquire, Relaxed, Release},
    },
    time::{Duration, SystemTime},
};

use apiroutes_crds::labels::Variant;
use apiroutes_kit::telemetry::Spans;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, Version, header,
    uri::{PathAndQuery, Scheme},
};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::{
    access_log::{self, Access, AccessLog, Outcome, RequestIds, RequestInfo, X_REQUEST_ID},
    activator::{self, Autoscaler, Holds},
    body::{Body, Tracker, UpstreamBody, client_fault, full, proxied},
    error::{Error, UpstreamKind, redirect},
    host,
    metrics::{Metrics, NO_ROUTE, RouteMetrics},
    path::{self, PathOutcome},
    pool,
    preview::{self, Endpoints, PreviewKeys},
    table::{self, Endpoint, Lookup, Registry, RouteEntry, RouteTable, Target},
    trace_context::{Sampler, TRACEPARENT, TRACESTATE},
};

/// Preview Mode, when a secret is configured.
pub struct PreviewConfig {
    pub keys: PreviewKeys,
    pub endpoints: Endpoints,
}

/// Settings of the proxy.
pub struct ProxyConfig {
    pub gateway_id: String,
    pub max_held_per_route: u32,
    pub max_held_total: u32,
    pub autoscaler_url: Option<String>,
    pub preview: Option<PreviewConfig>,
    pub connect_timeout: Duration,
    /// Pass on upgrades to any protocol, not just WebSocket.
    pub allow_any_upgrade: bool,
    /// How long a function that sent a 1xx (other than an expected 100 Continue) has to
    /// follow it with a final status before the client gets a 502.
    pub informational_timeout: Duration,
    /// The HTTP/1 connection pools toward functions.
    pub pool: pool::PoolConfig,
    /// Where access-log lines go; `None`: no access log.
    pub access_log: Option<Arc<AccessLog>>,
    /// Sampling of the traces the gateway starts (a caller's sampled flag is kept).
    pub sampler: Sampler,
    /// OTLP span export of sampled requests; `None`: off.
    pub spans: Option<Spans>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            gateway_id: "gateway".into(),
            max_held_per_route: 1000,
            max_held_total: 10_000,
            autoscaler_url: None,
            preview: None,
            connect_timeout: Duration::from_secs(5),
            allow_any_upgrade: false,
            informational_timeout: Duration::from_secs(5),
            pool: pool::PoolConfig::default(),
            access_log: None,
            sampler: Sampler::default(),
            spans: None,
        }
    }
}

/// The gateway's shared state: the current table and everything requests need.
pub struct Gateway {
    table: ArcSwap<RouteTable>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub autoscaler: Arc<Autoscaler>,
    holds: Holds,
    preview: Option<PreviewConfig>,
    h2_client: Client<HttpConnector, UpstreamBody>,
    none_metrics: Arc<RouteMetrics>,
    request_ids: RequestIds,
    connect_timeout: Duration,
    allow_any_upgrade: bool,
    informational_timeout: Duration,
    pool: pool::PoolConfig,
    access_log: Option<Arc<AccessLog>>,
    sampler: Sampler,
    spans: Option<Spans>,
}

impl Gateway {
    pub fn new(config: ProxyConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(config.connect_timeout));
        let h2_client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(conn);
        let registry = Arc::new(Registry::new(Arc::clone(&metrics)));
        let autoscaler = Arc::new(Autoscaler::new(
            config.gateway_id.clone(),
            config.autoscaler_url.clone(),
            Arc::clone(&metrics),
        ));
        Arc::new(Gateway {
            table: ArcSwap::from_pointee(RouteTable::default()),
            registry,
            none_metrics: metrics.route(NO_ROUTE),
            metrics,
            autoscaler,
            holds: Holds::new(config.max_held_per_route, config.max_held_total),
            preview: config.preview,
            h2_client,
            request_ids: RequestIds::new(),
            connect_timeout: config.connect_timeout,
            allow_any_upgrade: config.allow_any_upgrade,
            informational_timeout: config.informational_timeout,
            pool: config.pool,
            access_log: config.access_log,
            sampler: config.sampler,
            spans: config.spans,
        })
    }

    /// The access log, when there is one.
    pub fn access_log(&self) -> Option<&Arc<AccessLog>> {
        self.access_log.as_ref()
    }

    /// Logs a request that hyper's HTTP/1 parser refused (it answered `status` itself).
    pub fn log_refused(&self, client: SocketAddr, status: StatusCode) {
        if let Some(log) = &self.access_log {
            access_log::refused(log, client, status, &self.request_ids);
        }
    }

    /// Installs a new table and wakes requests held for variants that are now ready.
    pub fn install(&self, table: RouteTable) {
        let table = Arc::new(table);
        self.table.store(Arc::clone(&table));
        activator::wake_ready(table.targets.values());
    }

    /// Installs an incremental update: only the targets it changed can wake anyone.
    pub fn install_update(&self, update: table::Update) {
        self.table.store(Arc::new(update.table));
        activator::wake_ready(&update.ready);
    }

    /// The current table.
    pub fn table(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// Requests held right now, over all routes.
    pub fn held_total(&self) -> u32 {
        self.holds.total()
    }

    /// Serves one request from a client at `remote`.
    pub async fn handle(&self, mut req: Request<Incoming>, remote: &Peer) -> Response<Body> {
        let start = Instant::now();
        // The record takes the URI; dropped before a response exists (the client went
        // away), it is logged as such.
        let mut access = Access::begin(
            self.access_log.clone(),
            self.spans.as_ref(),
            start,
            &mut req,
            remote.addr,
            self.sampler,
            &self.request_ids,
        );
        let resp = match self
            .serve(req, &access.req, remote, start, &mut access.out)
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::debug!(error = %e, "request failed");
                }
                e.into_response()
            }
        };
        let head = start.elapsed();
        let m: &RouteMetrics = access
            .out
            .route
            .as_ref()
            .map_or(&self.none_metrics, |r| &r.metrics);
        m.count(&access.req.method, resp.status());
        m.duration().observe(head.as_secs_f64());
        access.out.status = Some(resp.status());
        access.out.head = Some(head);
        resp.map(|b| b.with_access(access))
    }

    async fn serve(
        &self,
        mut req: Request<Incoming>,
        info: &RequestInfo,
        remote: &Peer,
        start: Instant,
        out: &mut Outcome,
    ) -> Result<Response<Body>, Error> {
        // Upgrades other than WebSocket are ignored (RFC 9110 §7.8: a server MAY): the
        // request goes on as plain HTTP with Upgrade stripped, unless configured otherwise.
        let upgrade = upgrade_allowed(req.headers(), self.allow_any_upgrade)
            .then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let uri = &info.uri;
        match path::target_form(&parts.method, uri) {
            Ok(path::TargetForm::Path) => {}
            Ok(path::TargetForm::Asterisk) => return Ok(crate::error::server_options()),
            // No route serves a tunnel.
            Ok(path::TargetForm::Authority) => {
                return Err(Error::MethodNotAllowed {
                    allow: http::HeaderValue::from_static(crate::error::ROUTE_METHODS),
                });
            }
            Err(reason) => return Err(Error::BadTarget { reason }),
        }
        // Before anything else reads it: the one valid authority the request is for.
        let authority = host::request_authority(&parts.headers, uri, parts.version)?;
        if let Some(coding) = unsupported_transfer_coding(&parts.headers) {
            return Err(Error::UnsupportedTransferCoding { coding });
        }
        // `slashed`: the path ended in `/`; whether that is served or redirected depends
        // on the route it names (`spec.trailingSlash`), decided after matching.
        let (path, slashed) = match path::normalize(uri.path(), uri.query()) {
            PathOutcome::Route(p) => (p, None),
            PathOutcome::TrailingSlash { trimmed, location } => (trimmed, Some(location)),
            PathOutcome::Redirect(location) => return Ok(redirect(&location)),
            PathOutcome::BadRequest => return Err(Error::BadPath),
        };
        let now = if self.preview.is_some() {
            SystemTime::now()
        } else {
            SystemTime::UNIX_EPOCH
        };
        let preview_state = match &self.preview {
            Some(p) => {
                // A slashed endpoint path gets its redirect (below) first, as before.
                if slashed.is_none()
                    && let Some(reply) =
                        p.endpoints
                            .handle(&p.keys, &parts.method, &path, uri.query(), now)
                {
                    let mut resp = Response::new(full(reply.body));
                    *resp.status_mut() = reply.status;
                    *resp.headers_mut() = reply.headers;
                    return Ok(resp);
                }
                preview::from_request(&p.keys, &parts.headers, now)
            }
            None => preview::PreviewState::None,
        };

        // Match.
        let segs = table::split(&path);
        let (route, params) = {
            let host = authority
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .map(host::host_of);
            let table = self.table.load();
            let lookup = table.lookup(host, &segs, &parts.method);
            // Next's trailing-slash redirects come before routing: the default one (`/x/`
            // to `/x`), or under `trailingSlash: true` the other way round (a file name
            // such as `/x.json/` keeps the default).
            let trailing = match &lookup {
                Lookup::Route(r) => r.trailing_slash,
                Lookup::MethodNotAllowed(leaf) => leaf.trailing_slash,
                Lookup::NotFound => false,
            };
            match &slashed {
                Some(location) if !trailing || path::is_file(&path) => {
                    return Ok(redirect(location));
                }
                Some(_) if !path::escapes_ok(&path) => return Err(Error::BadPath),
                None if trailing => {
                    if let Some(location) = path::add_slash_redirect(&path, uri.query()) {
                        return Ok(redirect(&location));
                    }
                }
                _ => {}
            }
            match lookup {
                Lookup::Route(r) => (Arc::clone(r), r.params_header(&segs).ok_or(Error::BadPath)?),
                Lookup::MethodNotAllowed(leaf) => {
                    return Err(Error::MethodNotAllowed {
                        allow: leaf.allow.clone(),
                    });
                }
                Lookup::NotFound => return Err(Error::NotFound),
            }
        };
        out.route = Some(Arc::clone(&route));
        if let Some(len) = content_length(&parts.headers)
            && len > route.body_limit
        {
            return Err(Error::PayloadTooLarge {
                limit: route.body_limit,
            });
        }
        // Preview data is bound to the namespace that set it (preview::PreviewState::bind).
        let namespace = route.key.split('/').next().unwrap_or_default();
        let preview_state = preview_state.bind(namespace, &mut parts.headers);
        let variant = if preview_state.is_active() && route.preview.is_some() {
            Variant::Preview
        } else {
            Variant::Main
        };
        out.variant = Some(variant);
        let mut target = Arc::clone(route.target(variant));
        let mut tracker = Tracker::begin(&target.state, &route.metrics);
        let deadline = start + route.timeout;

        // Wake the function if it sleeps.
        let mut waited = None;
        if target.endpoints.is_empty() {
            target = activator::wait_ready(self.hold(&route, &target.state), deadline, &[]).await?;
            let wait = start.elapsed();
            route.metrics.activation_wait().observe(wait.as_secs_f64());
            waited = Some(wait);
            out.activation = waited;
        }

        // Headers toward the function.
        let h = &mut parts.headers;
        let forwarded_host = authority;
        strip_hop_by_hop(h, upgrade.is_some());
        strip_apiroute(h);
        h.reserve(11); // the headers added below: one growth at most

        add_forwarded_for(h, remote);
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        if let Some(fh) = &forwarded_host {
            h.insert(X_FORWARDED_HOST, fh.clone());
        }
        if !h.contains_key(X_REQUEST_ID) {
            h.insert(X_REQUEST_ID, info.request_id.header_value());
        }
        // The gateway's span is the function's parent; the caller's tracestate goes on
        // only with the trace it belongs to.
        h.insert(TRACEPARENT, info.span.traceparent_header());
        if !info.span.continued() {
            h.remove(TRACESTATE);
        }
        h.insert(X_APIROUTE_NAME, route.name_header.clone());
        h.insert(X_APIROUTE_PATTERN, route.pattern_header.clone());
        h.insert(X_APIROUTE_PARAMS, params);
        // A broken cookie pair is cleared by the runtime (x-apiroute-preview-invalid), where
        // Next clears it: before the handler's own cookies.
        if let Some((name, v)) = preview::header_for_function(&preview_state) {
            h.insert(name, v);
        }
        let grpc = is_grpc(h);
        if grpc {
            h.remove(header::HOST);
        } else if let Some(fh) = forwarded_host {
            // For an absolute-form target this replaces the client's Host (RFC 9112 §3.2.2).
            h.insert(header::HOST, fh);
        }

        // Forward, retrying on another endpoint when the connection could not be made.
        // A served trailing slash reaches the function, as under `next start`.
        let pq = match &slashed {
            None => upstream_path(uri, &path, matches!(path, Cow::Owned(_))),
            Some(_) => upstream_path(uri, &format!("{path}/"), matches!(path, Cow::Owned(_))),
        };
        let leg = Leg {
            route: &route,
            target: Arc::clone(&target),
            tracker: &mut tracker,
            deadline,
            out,
        };
        let resp = if grpc {
            self.forward_h2(parts, body, pq, leg).await?
        } else {
            self.forward_h1(parts, body, pq, leg).await?
        };

        // The answer.
        let mut resp = resp;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS && upgrade.is_none() {
            // Nothing to switch to: the client did not ask, or asked for a refused protocol.
            route
                .metrics
                .upstream_error(UpstreamKind::Protocol.as_str());
            return Err(Error::BadGateway {
                kind: UpstreamKind::Protocol,
                reason: "the function switched protocols on a request that is no upgrade".into(),
            });
        }
        let backend_upgrade = (resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && upgrade.is_some())
        .then(|| hyper::upgrade::on(&mut resp));
        let (mut rp, rbody) = resp.into_parts();
        strip_hop_by_hop(&mut rp.headers, backend_upgrade.is_some());
        match &self.preview {
            Some(p) => {
                let outcome =
                    preview::apply_function_headers(&mut rp.headers, &p.keys, namespace, now);
                if let preview::FunctionPreview::Malformed(e) = &outcome {
                    tracing::warn!(route = %route.key, error = %e, "function sent a malformed preview header");
                }
            }
            None => strip_apiroute(&mut rp.headers),
        }
        if let Some(wait) = waited
            && let Ok(v) = HeaderValue::try_from(format!("activation;dur={}", wait.as_millis()))
        {
            rp.headers.append(SERVER_TIMING, v);
        }
        if let (Some(client_up), Some(backend_up)) = (upgrade, backend_upgrade) {
            tokio::spawn(async move {
                if let (Ok(c), Ok(b)) = (client_up.await, backend_up.await) {
                    let mut c = TokioIo::new(c);
                    let mut b = TokioIo::new(b);
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut b).await;
                }
                drop(tracker);
            });
            return Ok(Response::from_parts(rp, full(Bytes::new())));
        }
        Ok(Response::from_parts(rp, proxied(rbody, tracker)))
    }

    /// gRPC over h2c, through the pooled HTTP/2 client.
    async fn forward_h2(
        &self,
        parts: http::request::Parts,
        body: Incoming,
        path_and_query: PathAndQuery,
        leg: Leg<'_>,
    ) -> Result<Response<Incoming>, Error> {
        let Leg {
            route,
            mut target,
            tracker,
            deadline,
            out,
        } = leg;
        // A request whose connection failed never left: it is sent again, to another
        // endpoint or (every endpoint refused) to one the wake brings, with its body if
        // that was never read. So a copy of the head and the body's way back are kept.
        let mut body = UpstreamBody::new(body, route.body_limit);
        let mut give_back = (!body.is_empty_body()).then(|| body.returnable());
        let method = parts.method;
        let mut headers = parts.headers;
        let mut tried: SmallVec<[Arc<Endpoint>; 2]> = SmallVec::new();
        loop {
            let Some(endpoint) = pick(&target, &tried) else {
                return Err(Error::BadGateway {
                    kind: UpstreamKind::Connect,
                    reason: "no endpoint accepted the connection".into(),
                });
            };
            tracker.set_endpoint(&endpoint);
            out.upstream = Some(Arc::clone(&endpoint));
            out.request_body = Some(body.completion());
            let spare = headers.clone();
            let mut up = Request::new(body);
            *up.method_mut() = method.clone();
            *up.headers_mut() = headers;
            *up.version_mut() = Version::HTTP_2;
            *up.uri_mut() = upstream_uri(&endpoint, &path_and_query)?;
            let e = match tokio::time::timeout_at(deadline, self.h2_client.request(up)).await {
                Ok(Ok(resp)) => return Ok(resp),
                Err(_) => {
                    route.metrics.upstream_error("timeout");
                    return Err(Error::GatewayTimeout {
                        seconds: route.timeout.as_secs(),
                    });
                }
                Ok(Err(e)) => e,
            };
            if let Some(fault) = client_fault(&e) {
                return Err(fault);
            }
            let kind = if e.is_connect() {
                UpstreamKind::Connect
            } else {
                UpstreamKind::Request
            };
            route.metrics.upstream_error(kind.as_str());
            tracing::debug!(error = %e, endpoint = %endpoint.authority, "upstream error");
            let failed = || Error::BadGateway {
                kind,
                reason: error_chain(&e),
            };
            if kind != UpstreamKind::Connect {
                return Err(failed());
            }
            body = match give_back.take().map(|mut rx| rx.try_recv()) {
                Some(Ok(b)) => UpstreamBody::new(b, route.body_limit),
                Some(Err(_)) => return Err(failed()),
                None => UpstreamBody::empty(),
            };
            give_back = (!body.is_empty_body()).then(|| body.returnable());
            headers = spare;
            tried.push(endpoint);
            if target.untried(&tried) {
                continue;
            }
            match self
                .await_other_endpoint(route, &target, &tried, deadline)
                .await?
            {
                Some(next) => target = next,
                None => return Err(failed()),
            }
        }
    }

    /// HTTP/1.1 through the per-endpoint connection pools.
    async fn forward_h1(
        &self,
        parts: http::request::Parts,
        body: Incoming,
        path_and_query: PathAndQuery,
        leg: Leg<'_>,
    ) -> Result<Response<Incoming>, Error> {
        let Leg {
            route,
            mut target,
            tracker,
            deadline,
            out,
        } = leg;
        // Origin-form target: the normalized path and the original query.
        let pq = path_and_query;
        let expects_continue = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let mut up = Request::new(UpstreamBody::new(body, route.body_limit));
        *up.method_mut() = parts.method;
        *up.headers_mut() = parts.headers;
        // The extensions carry the client's original header-name case (hyper's h1 server
        // records it, the pool's h1 client writes it): Next.js handlers read rawHeaders.
        // A refused upgrade's pending handle is the client connection's business only.
        let mut extensions = parts.extensions;
        extensions.remove::<hyper::upgrade::OnUpgrade>();
        *up.extensions_mut() = extensions;
        // hyper cannot forward a 1xx to the client, and waits for a final status after
        // one: a function that sends only a 1xx would hold the client until the route's
        // deadline. Watch for them; an expected 100 Continue is normal.
        // (The callback goes in right before each send, so that a copy kept for a resend
        // need not clone it.)
        let info = Arc::new(Informational::default());
        *up.version_mut() = Version::HTTP_11;
        *up.uri_mut() = Uri::from(pq);
        let mut tried: SmallVec<[Arc<Endpoint>; 2]> = SmallVec::new();
        let mut stale = 0;
        // A reused connection that fails before any response gets the request once more on
        // a fresh connection (the function may have closed it as idle just as it was sent).
        let mut fresh_retry_left = true;
        let mut reuse = true;
        loop {
            let Some(endpoint) = pick(&target, &tried) else {
                return Err(Error::BadGateway {
                    kind: UpstreamKind::Connect,
                    reason: "no endpoint accepted the connection".into(),
                });
            };
            let acquired = tokio::time::timeout_at(
                deadline,
                pool::acquire(&endpoint, self.pool, self.connect_timeout, reuse),
            )
            .await;
            let (mut sender, reused) = match acquired {
                Err(_) => {
                    route.metrics.upstream_error("timeout");
                    return Err(Error::GatewayTimeout {
                        seconds: route.timeout.as_secs(),
                    });
                }
                Ok(Err(e)) => {
                    // Nothing was sent: try another endpoint with the request as it is.
                    route.metrics.upstream_error(UpstreamKind::Connect.as_str());
                    tracing::debug!(error = %e, "upstream connect failed");
                    tried.push(endpoint);
                    if target.untried(&tried) {
                        continue;
                    }
                    if let Some(next) = self
                        .await_other_endpoint(route, &target, &tried, deadline)
                        .await?
                    {
                        target = next;
                        continue;
                    }
                    return Err(Error::BadGateway {
                        kind: UpstreamKind::Connect,
                        reason: e.to_string(),
                    });
                }
                Ok(Ok(s)) => s,
            };
            tracker.set_endpoint(&endpoint);
            out.upstream = Some(Arc::clone(&endpoint));
            // What a resend needs: the head, and the body if it is never read.
            let mut replay = (reused && fresh_retry_left).then(|| Replay::of(&mut up));
            info.watch(&mut up, expects_continue);
            let request_done = up.body_mut().completion();
            out.request_body = Some(Arc::clone(&request_done));
            let sent = tokio::select! {
                r = tokio::time::timeout_at(deadline, sender.try_send_request(up)) => r,
                status = info.unanswered(self.informational_timeout) => {
                    route.metrics.upstream_error(UpstreamKind::Protocol.as_str());
                    return Err(Error::BadGateway {
                        kind: UpstreamKind::Protocol,
                        reason: format!(
                            "it sent {} but no final status within {} ms",
                            StatusCode::from_u16(status)
                                .map_or_else(|_| status.to_string(), |s| s.to_string()),
                            self.informational_timeout.as_millis()
                        ),
                    });
                }
            };
            match sent {
                Err(_) => {
                    route.metrics.upstream_error("timeout");
                    return Err(Error::GatewayTimeout {
                        seconds: route.timeout.as_secs(),
                    });
                }
                Ok(Ok(resp)) => {
                    tracker.set_conn(sender, request_done);
                    return Ok(resp);
                }
                Ok(Err(mut e)) => {
                    if let Some(fault) = client_fault(e.error()) {
                        return Err(fault);
                    }
                    // The connection closed before the request was written (a pooled one
                    // the function had closed): the request comes back; send it again.
                    if let Some(req) = e.take_message()
                        && stale < 3
                    {
                        stale += 1;
                        up = req;
                        continue;
                    }
                    let e = e.into_error();
                    if no_response(&e)
                        && let Some(req) = replay.take().and_then(|r| r.request(route.body_limit))
                    {
                        tracing::debug!(error = %e, "reused upstream connection failed; resending on a new one");
                        fresh_retry_left = false;
                        reuse = false;
                        up = req;
                        continue;
                    }
                    route.metrics.upstream_error(UpstreamKind::Request.as_str());
                    return Err(Error::BadGateway {
                        kind: UpstreamKind::Request,
                        reason: error_chain(&e),
                    });
                }
            }
        }
    }
}

impl Gateway {
    /// How a request to `route`'s variant `state` is held while it wakes.
    fn hold<'a>(
        &'a self,
        route: &'a RouteEntry,
        state: &'a Arc<crate::variant::VariantState>,
    ) -> activator::Hold<'a> {
        activator::Hold {
            table: &self.table,
            autoscaler: &self.autoscaler,
            holds: &self.holds,
            state,
            metrics: &route.metrics,
            timeout: route.timeout,
        }
    }

    /// Every endpoint refused the connection: pods went away (a scale-down race, a crash)
    /// before this gateway saw it. As for a route at zero, hold the request and ask for
    /// activation until the table has an endpoint that has not refused, within the
    /// deadline. `None`: nothing better is coming (no autoscaler to tell, as for static
    /// routes, or the deadline passed): the caller answers 502.
    async fn await_other_endpoint(
        &self,
        route: &RouteEntry,
        target: &Target,
        refused: &[Arc<Endpoint>],
        deadline: Instant,
    ) -> Result<Option<Arc<Target>>, Error> {
        if self.autoscaler.url.load().is_none() {
            return Ok(None);
        }
        tracing::debug!(route = %route.key, "every endpoint refused; holding for another");
        match activator::wait_ready(self.hold(route, &target.state), deadline, refused).await {
            Ok(next) => Ok(Some(next)),
            Err(Error::ActivationTimeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One request's way to its function: the route, the variant's endpoints, the deadline,
/// and where the attempt is recorded (metrics tracker, access-log outcome).
struct Leg<'a> {
    route: &'a RouteEntry,
    target: Arc<Target>,
    tracker: &'a mut Tracker,
    deadline: Instant,
    out: &'a mut Outcome,
}

/// A copy of a request's head, and its body if the body is never read, for resending it.
///
/// Made for every request sent on a reused connection, and nearly always dropped unused:
/// the header lines are kept as a flat list (one allocation, no index to copy) and the
/// map is rebuilt only for a resend.
struct Replay {
    method: http::Method,
    uri: Uri,
    /// Every line in the map's order (a name's lines together, as `HeaderMap::iter`).
    headers: Vec<(HeaderName, HeaderValue)>,
    extensions: http::Extensions,
    /// `None`: no body; else the body comes back here if it was never polled.
    body: Option<tokio::sync::oneshot::Receiver<Incoming>>,
}

impl Replay {
    fn of(req: &mut Request<UpstreamBody>) -> Self {
        let body = (!req.body().is_empty_body()).then(|| req.body_mut().returnable());
        let mut headers = Vec::with_capacity(req.headers().len());
        headers.extend(req.headers().iter().map(|(n, v)| (n.clone(), v.clone())));
        Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers,
            extensions: req.extensions().clone(),
            body,
        }
    }

    /// The request again, if its body was never read (a consumed body cannot be sent
    /// twice, whatever the method).
    fn request(self, body_limit: u64) -> Option<Request<UpstreamBody>> {
        let body = match self.body {
            None => UpstreamBody::empty(),
            Some(mut rx) => UpstreamBody::new(rx.try_recv().ok()?, body_limit),
        };
        let mut headers = HeaderMap::try_with_capacity(self.headers.len()).ok()?;
        for (name, value) in self.headers {
            headers.try_append(name, value).ok()?;
        }
        let mut req = Request::new(body);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.headers_mut() = headers;
        *req.extensions_mut() = self.extensions;
        *req.version_mut() = Version::HTTP_11;
        Some(req)
    }
}

/// Whether a failed exchange got no response at all: the connection was closed or reset
/// under the request (hyper reports a close before a complete response as an incomplete
/// message; a close after part of a head is rare enough to be treated the same).
fn no_response(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            );
        }
        cur = c.source();
    }
    false
}

/// 1xx responses a function sent on one request.
///
/// Polled alongside every exchange and nearly never woken: a waker slot (an atomic swap
/// to poll) rather than a `Notify` (a lock at every poll and at every drop).
#[derive(Default)]
struct Informational {
    status: std::sync::atomic::AtomicU16,
    /// 1xx responses seen so far.
    count: std::sync::atomic::AtomicU32,
    waker: futures::task::AtomicWaker,
}

impl Informational {
    /// Has hyper report the 1xx responses to `req` here (an expected 100 Continue apart).
    fn watch(self: &Arc<Self>, req: &mut Request<UpstreamBody>, expects_continue: bool) {
        let seen = Arc::clone(self);
        hyper::ext::on_informational(req, move |res| {
            let status = res.status();
            if !(expects_continue && status == StatusCode::CONTINUE) {
                seen.arrived(status);
            }
        });
    }

    fn arrived(&self, status: StatusCode) {
        self.status.store(status.as_u16(), Relaxed);
        self.count.fetch_add(1, Release);
        self.waker.wake();
    }

    /// Resolves with the count of 1xx responses once it differs from `seen`.
    async fn another(&self, seen: u32) -> u32 {
        std::future::poll_fn(|cx| {
            // Registered before the count is read: an arrival after the read wakes us.
            self.waker.register(cx.waker());
            match self.count.load(Acquire) {
                n if n != seen => std::task::Poll::Ready(n),
                _ => std::task::Poll::Pending,
            }
        })
        .await
    }

    /// Resolves with the last 1xx status once one has gone `timeout` without another or a
    /// final response (the caller stops polling when the final response comes).
    async fn unanswered(&self, timeout: Duration) -> u16 {
        let mut seen = self.another(0).await;
        loop {
            tokio::select! {
                () = tokio::time::sleep(timeout) => return self.status.load(Relaxed),
                n = self.another(seen) => seen = n,
            }
        }
    }
}

fn pick(target: &Target, tried: &[Arc<Endpoint>]) -> Option<Arc<Endpoint>> {
    target.pick(tried).cloned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_APIROUTE_NAME: HeaderName = HeaderName::from_static("x-apiroute-name");
const X_APIROUTE_PATTERN: HeaderName = HeaderName::from_static("x-apiroute-pattern");
const X_APIROUTE_PARAMS: HeaderName = HeaderName::from_static("x-apiroute-params");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn wants_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v, "upgrade"))
}

/// Whether a requested upgrade is passed on: WebSocket only (every protocol offered is
/// `websocket`, any version), or anything when `allow_any`.
fn upgrade_allowed(h: &HeaderMap, allow_any: bool) -> bool {
    let mut offered = tokens(h, &header::UPGRADE).peekable();
    wants_upgrade(h)
        && offered.peek().is_some()
        && (allow_any
            || offered.all(|p| {
                p.split('/')
                    .next()
                    .is_some_and(|name| name.eq_ignore_ascii_case("websocket"))
            }))
}

fn is_grpc(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Hop-by-hop fields that never cross the gateway whatever `Connection` says (RFC 9110
/// §7.6.1 and the historic ones proxies still strip). `Upgrade` and `TE` are handled apart.
/// A static, not a const: a const array is built and dropped again at every use.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Comma-separated tokens of every line of `name`, trimmed, without parameters.
fn tokens<'a>(h: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or_default().trim())
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers: every field named by any `Connection` line, the standard
/// ones, and `Upgrade` unless this exchange is an upgrade (then `Connection: upgrade` is
/// kept). `TE` is hop-by-hop too, but a request that accepts trailers says so to the next
/// hop as well (RFC 9110 §10.1.4 allows only `trailers` to go on; gRPC needs it).
/// The request's `Transfer-Encoding` when it is anything but a single `chunked`.
/// hyper decodes the final `chunked` and refuses a list that does not end with it, but
/// passes the codings before it (`gzip, chunked`) without applying them: the function
/// would get the compressed bytes unannounced, since the header is hop-by-hop. RFC 9112
/// section 6.1: a server that does not understand a transfer coding answers 501 (and
/// `chunked` is never applied twice).
fn unsupported_transfer_coding(h: &HeaderMap) -> Option<String> {
    let codings: Vec<&[u8]> = h
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    match codings.as_slice() {
        [] => None,
        [one] if one.eq_ignore_ascii_case(b"chunked") => None,
        _ => Some(String::from_utf8_lossy(&codings.join(&b", "[..])).into_owned()),
    }
}

fn strip_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none of them: one pass over the names (a compare each) instead
    // of a hashed lookup per hop-by-hop name, on every request and every response.
    if !h.keys().any(is_hop_by_hop) {
        if upgrade {
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    let named: SmallVec<[HeaderName; 4]> = tokens(h, &header::CONNECTION)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    let te_trailers = tokens(h, &header::TE).any(|t| t.eq_ignore_ascii_case("trailers"));
    for n in named {
        if !(upgrade && n == header::UPGRADE) {
            h.remove(n);
        }
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(header::TE);
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether `name` is one [`strip_hop_by_hop`] may act on without a `Connection` line.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::TE || name == header::UPGRADE
}

/// Drops every `x-apiroute-*` header.
fn strip_apiroute(h: &mut HeaderMap) {
    if h.keys()
        .any(|k| k.as_str().starts_with(preview::APIROUTE_HEADER_PREFIX))
    {
        preview::strip_apiroute_headers(h);
    }
}

/// A client connection's peer, with its `x-forwarded-for` value made once per connection.
pub struct Peer {
    pub addr: SocketAddr,
    ip: HeaderValue,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Self {
        let ip = HeaderValue::try_from(addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Peer { addr, ip }
    }
}

fn add_forwarded_for(h: &mut HeaderMap, client: &Peer) {
    let value = match h.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => HeaderValue::try_from(format!("{prev}, {}", client.addr.ip())).ok(),
        None => Some(client.ip.clone()),
    };
    if let Some(v) = value {
        h.insert(X_FORWARDED_FOR, v);
    }
}

/// The normalized path plus the original query.
fn upstream_path(uri: &Uri, path: &str, changed: bool) -> PathAndQuery {
    if !changed && let Some(pq) = uri.path_and_query() {
        return pq.clone();
    }
    let text = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    PathAndQuery::try_from(text).unwrap_or_else(|_| PathAndQuery::from_static("/"))
}

fn upstream_uri(endpoint: &Endpoint, pq: &PathAndQuery) -> Result<Uri, Error> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(endpoint.authority.clone());
    parts.path_and_query = Some(pq.clone());
    Uri::from_parts(parts).map_err(|_| Error::BadRequest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret, TE"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("traceparent", HeaderValue::from_static("00-abc-def-01"));
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("x-secret") && !h.contains_key(header::CONNECTION));
        assert!(!h.contains_key("keep-alive") && !h.contains_key(header::UPGRADE));
        assert_eq!(h[header::TE], "trailers");
        assert!(h.contains_key("traceparent"));
    }

    #[test]
    fn every_connection_line_and_the_standard_hop_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static(" X-Secret ,x-other"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("2"));
        h.insert(
            "proxy-authorization",
            HeaderValue::from_static("Basic eA=="),
        );
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::TRAILER, HeaderValue::from_static("x-sum"));
        h.append(header::TE, HeaderValue::from_static("deflate;q=0.5"));
        h.append(header::TE, HeaderValue::from_static("Trailers"));
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["te"]);
        assert_eq!(
            h.get_all(header::TE).iter().collect::<Vec<_>>(),
            ["trailers"]
        );

        // TE without trailers goes; an upgrade keeps Upgrade even when Connection names it.
        let mut h = HeaderMap::new();
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade, x-a"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-a", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.len(), 2);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
    }

    #[test]
    fn a_replay_resends_the_same_head() {
        let mut req = Request::new(UpstreamBody::empty());
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = Uri::from_static("/api/a?b=c");
        let h = req.headers_mut();
        h.append("x-b", HeaderValue::from_static("1"));
        h.append(header::HOST, HeaderValue::from_static("example.com"));
        h.append("x-b", HeaderValue::from_static("2"));
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        req.extensions_mut().insert(7u32);
        let replay = Replay::of(&mut req);
        let again = replay.request(1024).unwrap();
        assert_eq!(again.method(), http::Method::POST);
        assert_eq!(again.uri(), "/api/a?b=c");
        assert_eq!(again.version(), Version::HTTP_11);
        assert_eq!(again.extensions().get::<u32>(), Some(&7));
        let lines = |h: &HeaderMap| {
            h.iter()
                .map(|(n, v)| format!("{n}: {v:?}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(lines(again.headers()), lines(req.headers()));
        assert_eq!(again.headers(), req.headers());
    }

    #[test]
    fn messages_without_hop_by_hop_headers_are_left_alone() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("example.com"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let before = h.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, before);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::CONNECTION], "upgrade");
        h.remove(header::CONNECTION);
        assert_eq!(h, before);
        for name in ["keep-alive", "proxy-connection", "te", "upgrade", "trailer"] {
            let mut h = before.clone();
            h.insert(name, HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h, before, "{name}");
        }
    }

    #[test]
    fn only_websocket_upgrades_pass_unless_allowed() {
        let req = |conn: &'static str, up: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, HeaderValue::from_static(conn));
            h.insert(header::UPGRADE, HeaderValue::from_static(up));
            h
        };
        assert!(upgrade_allowed(&req("Upgrade", "websocket"), false));
        assert!(upgrade_allowed(
            &req("keep-alive, upgrade", "WebSocket/13"),
            false
        ));
        assert!(!upgrade_allowed(&req("upgrade", "h2c"), false));
        assert!(!upgrade_allowed(&req("upgrade", "websocket, foo"), false));
        assert!(!upgrade_allowed(&req("close", "websocket"), false));
        assert!(!upgrade_allowed(&req("upgrade", " , "), true));
        assert!(upgrade_allowed(&req("upgrade", "h2c"), true));
    }

    #[test]
    fn request_ids_are_unique_hex() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "one prefix per process");
        assert!(a.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        let v = access_log::RequestId::Generated(a).header_value();
        assert_eq!(v.as_bytes(), &a[..]);
    }
}
