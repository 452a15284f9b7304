//! The admin port of a process: `/metrics` (a Prometheus registry), `/healthz`, `/readyz`
//! (a readiness flag), and routes of the process's own (a callback). The gateway and the
//! operator both serve it.
//!
//! HTTP/1.1 only (kubelet probes and Prometheus scrapes speak it). Bounded: at most
//! [`AdminConfig::max_connections`] connections at once (more wait to be accepted), so a
//! flood of admin connections cannot take the process's file descriptors or memory; a
//! connection that does not send a complete request head within
//! [`AdminConfig::header_timeout`] is closed, and that timer also runs while a keep-alive
//! connection waits for its next request, so it is the idle timeout too.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

/// Whether the process is ready, for `/readyz`.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
}

impl Readiness {
    pub fn set_ready(&self) {
        self.set(true);
    }

    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Answers a `GET`/`HEAD` of a path the standard endpoints do not know, or `None` (404).
pub type Extra = Arc<dyn Fn(&str) -> Option<Response<Full<Bytes>>> + Send + Sync>;

/// What the admin port serves.
#[derive(Clone)]
pub struct Admin {
    pub registry: Registry,
    pub ready: Arc<Readiness>,
    pub extra: Option<Extra>,
}

/// Limits of the admin listener.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub max_connections: usize,
    /// Time to send a request head, from the connection's start or the previous response
    /// (so also the longest a keep-alive connection may sit idle).
    pub header_timeout: Duration,
    /// How long connections get to finish after shutdown.
    pub shutdown_grace: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Largest request head read (probes and scrapes send a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;

/// A `text/plain` response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

impl Admin {
    /// The answer to `method path`.
    pub fn response(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.ready.is_ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            "/metrics" => {
                let mut out = Vec::with_capacity(16 * 1024);
                // Encoding into a Vec cannot fail for well-formed metrics.
                let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
                let mut r = Response::new(Full::new(Bytes::from(out)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            }
            _ => self
                .extra
                .as_ref()
                .and_then(|extra| extra(path))
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n")),
        }
    }
}

/// Serves `admin` on `listener` until `shutdown` is cancelled, then lets connections finish
/// for at most the grace period.
pub async fn serve(
    listener: TcpListener,
    admin: Arc<Admin>,
    config: AdminConfig,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed");
                    // Out of file descriptors, typically: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let admin = Arc::clone(&admin);
        let service = service_fn(move |req: Request<Incoming>| {
            let resp = admin.response(req.method(), req.uri().path());
            async move { Ok::<_, Infallible>(resp) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("admin connections still open after the grace period");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn admin(extra: Option<Extra>) -> Admin {
        let registry = Registry::new();
        let c = prometheus::IntCounter::new("hits_total", "test").unwrap();
        c.inc();
        registry.register(Box::new(c)).unwrap();
        Admin {
            registry,
            ready: Arc::new(Readiness::default()),
            extra,
        }
    }

    fn status(a: &Admin, m: Method, path: &str) -> u16 {
        a.response(&m, path).status().as_u16()
    }

    #[test]
    fn the_standard_endpoints() {
        let a = admin(None);
        assert_eq!(status(&a, Method::GET, "/healthz"), 200);
        assert_eq!(status(&a, Method::GET, "/readyz"), 503);
        a.ready.set_ready();
        assert_eq!(status(&a, Method::HEAD, "/readyz"), 200);
        a.ready.set(false);
        assert_eq!(status(&a, Method::GET, "/readyz"), 503);
        let m = a.response(&Method::GET, "/metrics");
        assert_eq!(
            m.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4"
        );
        assert_eq!(status(&a, Method::GET, "/routes"), 404);
        assert_eq!(status(&a, Method::POST, "/healthz"), 405);
    }

    #[test]
    fn extra_routes_come_after_the_standard_ones() {
        let extra: Extra = Arc::new(|path| {
            (path == "/routes" || path == "/healthz").then(|| text(StatusCode::IM_A_TEAPOT, ""))
        });
        let a = admin(Some(extra));
        assert_eq!(status(&a, Method::GET, "/routes"), 418);
        assert_eq!(status(&a, Method::GET, "/healthz"), 200);
        assert_eq!(status(&a, Method::GET, "/other"), 404);
    }
}
