//! The listeners: the proxy (HTTP/1.1 and h2c on one port, upgrades allowed) and the admin
//! port (`/metrics`, `/healthz`, `/readyz`, served by `apiroutes_kit::admin`, HTTP/1.1).
//! Each has its own connection limit; a client that does not send a complete request head
//! in time (whether or not its protocol could be detected yet) is dropped, idle
//! connections are closed (see [`crate::conn`]), request heads are bounded (431 over
//! HTTP/1, h2 settings), and shutdown stops accepting, lets in-flight requests finish, and
//! gives up after a grace period.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering::*},
    },
    task::Poll,
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use apiroutes_kit::admin;

use crate::{
    body::Body,
    conn::{Close, ConnWatch, Counted, GaugeGuard, Limits, Watched},
    proxy::Gateway,
};

/// Limits of a client-facing listener.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Connections open at once (upgraded tunnels included); more wait to be accepted.
    pub max_connections: usize,
    /// Time to send a complete request head, from the connection's start (before any
    /// protocol is detected) or from the first byte of a later HTTP/1 head.
    pub header_read_timeout: Duration,
    /// Time a connection may sit between requests (HTTP/1 keep-alive and h2 alike).
    pub idle_timeout: Duration,
    /// Largest request head: HTTP/1 gets 431 over it, h2 `SETTINGS_MAX_HEADER_LIST_SIZE`.
    pub max_header_bytes: usize,
    /// h2 `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub h2_max_concurrent_streams: u32,
    /// h2 flow-control windows: per stream and per connection (bytes a client may send
    /// before the gateway has passed them on).
    pub h2_stream_window: u32,
    pub h2_connection_window: u32,
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            h2_max_concurrent_streams: 250,
            h2_stream_window: 256 * 1024,
            h2_connection_window: 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    /// The admin listener's limits: few connections, the same timeouts.
    pub fn admin(&self, max_connections: usize) -> Self {
        ServerConfig {
            max_connections,
            ..self.clone()
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            header: self.header_read_timeout,
            idle: self.idle_timeout,
        }
    }
}

/// hyper's smallest HTTP/1 read buffer.
const MIN_H1_BUF: usize = 8192;

/// hyper's HTTP/1 read buffer: the most bytes of a head it reads.
fn h1_buf(config: &ServerConfig) -> usize {
    config.max_header_bytes.max(MIN_H1_BUF)
}

fn builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper's header timer is off: it would also cut idle keep-alive connections at the
    // header timeout; [`ConnWatch`] does both. The read buffer bounds a head: a head that
    // does not fit gets 431 and the connection is closed.
    b.http1()
        .header_read_timeout(None)
        .max_buf_size(h1_buf(config))
        .preserve_header_case(true)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .initial_stream_window_size(config.h2_stream_window)
        .initial_connection_window_size(config.h2_connection_window);
    b
}

/// Told of a request that hyper's HTTP/1 parser refused and answered itself (400, 414,
/// 431): the client's address and the status.
pub type OnRefused = Arc<dyn Fn(SocketAddr, StatusCode) + Send + Sync>;

/// Serves the proxy on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve_proxy(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    let gauge = gateway.metrics.connections.clone();
    let refused = gateway.access_log().is_some().then(|| {
        let gw = Arc::clone(&gateway);
        Arc::new(move |client, status| gw.log_refused(client, status)) as OnRefused
    });
    let handler = move |req: Request<Incoming>, peer: Arc<crate::proxy::Peer>| {
        let gw = Arc::clone(&gateway);
        async move { gw.handle(req, &peer).await }
    };
    serve(listener, config, Some(gauge), refused, shutdown, handler).await;
}

/// Accepts connections within the limit and serves each with `handler` until `shutdown`.
async fn serve<H, F>(
    listener: TcpListener,
    config: ServerConfig,
    gauge: Option<prometheus::IntGauge>,
    refused: Option<OnRefused>,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Request<Incoming>, Arc<crate::proxy::Peer>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let builder = Arc::new(builder(&config));
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let limits = config.limits();
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let watch = ConnWatch::new();
        // The permit and the gauge live in the socket wrapper: an upgraded tunnel, which
        // outlives this task, keeps counting against the limit until it closes.
        let io = Watched::new(
            stream,
            Arc::clone(&watch),
            Some(permit),
            gauge.as_ref().map(GaugeGuard::new),
            h1_buf(&config),
        );
        tracker.spawn(serve_conn(
            io,
            remote,
            watch,
            limits,
            Arc::clone(&builder),
            handler.clone(),
            refused.clone(),
            shutdown.clone(),
        ));
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over with connections still open; closing them");
    }
}

/// How long a connection closed for idleness gets to say goodbye (h2 GOAWAY).
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

#[allow(clippy::too_many_arguments)]
async fn serve_conn<H, F>(
    io: Watched<TcpStream>,
    remote: SocketAddr,
    watch: Arc<ConnWatch>,
    limits: Limits,
    builder: Arc<auto::Builder<TokioExecutor>>,
    handler: H,
    refused: Option<OnRefused>,
    shutdown: CancellationToken,
) where
    H: Fn(Request<Incoming>, Arc<crate::proxy::Peer>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let peer = Arc::new(crate::proxy::Peer::new(remote));
    let w = Arc::clone(&watch);
    let draining = shutdown.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        // Counted from here until the response body is dropped (sent or abandoned).
        let h2 = req.version() == Version::HTTP_2;
        let guard = w.request_started(h2);
        let fut = handler(req, Arc::clone(&peer));
        let draining = draining.clone();
        async move {
            let mut resp = fut.await;
            if !h2 && draining.is_cancelled() {
                close_after(&mut resp);
            }
            Ok::<_, Infallible>(resp.map(|b| Counted::new(b, guard)))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    // The timeouts and the shutdown are waited for by a task of their own, which raises
    // an alarm: this task is woken two or three times per request by its socket, and each
    // wake would otherwise poll a timer, a `Notify` and the cancellation token (two locks).
    let alarm = Arc::new(Alarm::default());
    let _watcher = AbortOnDrop(
        tokio::spawn({
            let (watch, alarm, shutdown) =
                (Arc::clone(&watch), Arc::clone(&alarm), shutdown.clone());
            async move {
                let event = tokio::select! {
                    why = watch.expired(limits) => Event::Expired(why),
                    () = shutdown.cancelled() => Event::Shutdown,
                };
                alarm.raise(event);
            }
        })
        .abort_handle(),
    );
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(error = %e, "connection ended with an error");
                if let Some(on_refused) = &refused
                    && let Some(status) = crate::access_log::parse_error_status(&*e)
                {
                    on_refused(remote, status);
                }
            }
        }
        event = alarm.wait() => match event {
            // A slow or silent client: drop it without waiting for it (a graceful
            // shutdown would wait for the head to complete).
            Event::Expired(Close::HeaderTimeout) => {
                tracing::debug!(%remote, "request head not received in time; closing");
            }
            Event::Expired(Close::Idle) => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, conn).await;
            }
            Event::Shutdown => {
                if watch.is_h2() {
                    // GOAWAY: the client knows which streams were taken and retries the rest.
                    conn.as_mut().graceful_shutdown();
                    // Draining waits for a started head to complete: still bound it.
                    tokio::select! {
                        _ = conn => {}
                        _ = watch.expired(limits) => {}
                    }
                } else {
                    // HTTP/1 has no GOAWAY: closing an idle keep-alive connection races with
                    // the request the client may be sending on it. Its next answer says
                    // `Connection: close` instead (hyper then closes it), and only a connection
                    // that stays quiet for DRAIN_IDLE is closed by us.
                    let drain = Limits {
                        header: limits.header.min(DRAIN_IDLE),
                        idle: limits.idle.min(DRAIN_IDLE),
                    };
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = watch.expired(drain) => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, conn).await;
                        }
                    }
                }
            }
        }
    }
}

/// What ends the wait of a connection's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Expired(Close),
    Shutdown,
}

/// Raised once by a connection's watcher task; cheap to poll (an atomic load and a waker
/// slot) on every wake of the connection's task.
#[derive(Default)]
struct Alarm {
    /// 0: not raised; else the event (see [`Alarm::raise`]).
    raised: AtomicU8,
    waker: futures::task::AtomicWaker,
}

impl Alarm {
    fn raise(&self, event: Event) {
        let code = match event {
            Event::Expired(Close::HeaderTimeout) => 1,
            Event::Expired(Close::Idle) => 2,
            Event::Shutdown => 3,
        };
        self.raised.store(code, Release);
        self.waker.wake();
    }

    async fn wait(&self) -> Event {
        std::future::poll_fn(|cx| {
            // Registered before the flag is read: a raise after the read wakes us.
            self.waker.register(cx.waker());
            match self.raised.load(Acquire) {
                1 => Poll::Ready(Event::Expired(Close::HeaderTimeout)),
                2 => Poll::Ready(Event::Expired(Close::Idle)),
                3 => Poll::Ready(Event::Shutdown),
                _ => Poll::Pending,
            }
        })
        .await
    }
}

/// Aborts a task when dropped (a connection's watcher, when the connection ends).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// While draining, how long an HTTP/1 connection may stay quiet before it is closed.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// Marks an HTTP/1 answer as the connection's last (a switch of protocols keeps its own
/// `Connection: upgrade`).
fn close_after(resp: &mut Response<Body>) {
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

pub use apiroutes_kit::admin::Readiness;

/// Serves the admin port (`apiroutes_kit::admin`: `/metrics`, `/healthz`, `/readyz`, and
/// `/routes` only with `routes_view`, else a 404 like any unknown path, so its existence
/// is not advertised) until `shutdown` is cancelled, with its own (small) connection limit
/// and the proxy's header timeout, so a flood of admin connections cannot starve probes
/// of memory or the proxy of file descriptors.
pub async fn serve_admin(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    ready: Arc<Readiness>,
    routes_view: bool,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    let extra = routes_view.then(|| {
        let gateway = Arc::clone(&gateway);
        Arc::new(move |path: &str| {
            (path == "/routes").then(|| {
                let body = gateway.table().to_json().to_string();
                let mut r = Response::new(http_body_util::Full::new(Bytes::from(body)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            })
        }) as admin::Extra
    });
    let admin = Arc::new(admin::Admin {
        registry: gateway.metrics.registry.clone(),
        ready,
        extra,
    });
    let config = admin::AdminConfig {
        max_connections: config.max_connections,
        header_timeout: config.header_read_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    admin::serve(listener, admin, config, shutdown).await;
}

/// The local address a listener is bound to, for logs.
pub fn local(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
