//! HTTP/1.1 keep-alive connections to functions, pooled per endpoint (the pool lives in the
//! [`Endpoint`], so it survives table rebuilds while the endpoint stays).
//!
//! Leaner than a general client: no per-request boxed future, no pool-key hashing, no
//! per-request task to wait for the connection to become idle. A connection goes back to
//! its pool when the response body has been read to the end and the request body sent (see
//! [`crate::body`]); idle ones expire after [`PoolConfig::idle_timeout`]; the
//! next user waits for it to be ready (immediate once hyper has finished the exchange).
//! Connecting happens before the request is handed over, so a connect failure leaves the
//! request (and its body) untouched for another endpoint.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpStream,
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

use crate::{body::UpstreamBody, table::Endpoint};

/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 512;

pub type Sender = SendRequest<UpstreamBody>;

/// How the pools treat connections (the same for every endpoint).
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    /// A connection idle longer than this is closed instead of reused. Below Node's 5 s
    /// `keepAliveTimeout`, so the gateway gives up an idle socket before the function
    /// closes it under a request that is being sent.
    pub idle_timeout: Duration,
    /// Connections open to one endpoint at once (idle and busy); more requests wait for one.
    pub max_per_endpoint: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            idle_timeout: Duration::from_secs(4),
            max_per_endpoint: 512,
        }
    }
}

/// The idle connections of one endpoint, and its slots.
#[derive(Default)]
pub struct ConnPool {
    /// Oldest first, with the time each went idle.
    idle: Mutex<Vec<(Sender, Instant)>>,
    /// Wakes a request waiting for a slot when a connection comes back.
    returned: Notify,
    /// One permit per open connection, held by its connection task (set on first use).
    slots: OnceLock<Arc<Semaphore>>,
}

impl std::fmt::Debug for ConnPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnPool").finish_non_exhaustive()
    }
}

/// Whether a connection idle since `since` may still be used at `now`.
fn fresh(since: Instant, now: Instant, idle_timeout: Duration) -> bool {
    now.saturating_duration_since(since) < idle_timeout
}

impl ConnPool {
    /// Returns a connection whose exchange (request and response) has completed.
    pub fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push((sender, Instant::now()));
        }
        self.returned.notify_one();
    }

    /// The most recently used idle connection that is still fresh at `now`; stale ones
    /// are dropped (which closes them).
    fn take(&self, now: Instant, idle_timeout: Duration) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        let stale = idle
            .iter()
            .position(|(_, since)| fresh(*since, now, idle_timeout))
            .unwrap_or(idle.len());
        idle.drain(..stale);
        idle.pop().map(|(s, _)| s)
    }

    fn slots(&self, max: usize) -> Arc<Semaphore> {
        Arc::clone(
            self.slots
                .get_or_init(|| Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)))),
        )
    }

    /// Idle connections now (for tests).
    pub fn idle(&self) -> usize {
        self.idle.lock().map(|g| g.len()).unwrap_or(0)
    }
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("connect to {0}: timed out")]
    Timeout(String),
    #[error("HTTP/1 handshake with {addr}: {source}")]
    Handshake { addr: String, source: hyper::Error },
}

/// A ready connection to `endpoint`: an idle pooled one (`true`; only if `reuse`), else a
/// new one, waiting for a slot while the endpoint has `max_per_endpoint` connections open.
pub async fn acquire(
    endpoint: &Endpoint,
    config: PoolConfig,
    connect_timeout: Duration,
    reuse: bool,
) -> Result<(Sender, bool), ConnectError> {
    let slots = endpoint.pool.slots(config.max_per_endpoint);
    loop {
        while let Some(mut s) = reuse
            .then(|| endpoint.pool.take(Instant::now(), config.idle_timeout))
            .flatten()
        {
            if s.is_closed() {
                continue;
            }
            if s.ready().await.is_ok() {
                return Ok((s, true));
            }
        }
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => continue,
                },
                // A connection came back: take it instead.
                () = endpoint.pool.returned.notified() => continue,
            },
        };
        return connect(endpoint, connect_timeout, permit)
            .await
            .map(|s| (s, false));
    }
}

async fn connect(
    endpoint: &Endpoint,
    timeout: Duration,
    permit: OwnedSemaphorePermit,
) -> Result<Sender, ConnectError> {
    let addr = endpoint.authority.as_str();
    let stream = match endpoint.socket_addr {
        Some(sa) => tokio::time::timeout(timeout, TcpStream::connect(sa)).await,
        None => tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
    };
    let stream = match stream {
        Err(_) => return Err(ConnectError::Timeout(addr.to_owned())),
        Ok(Err(source)) => {
            return Err(ConnectError::Io {
                addr: addr.to_owned(),
                source,
            });
        }
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    // Header names go out in the case the client sent them (and come back in the case the
    // function sent them): see the extensions handed over in `proxy::forward_h1`.
    let (sender, conn) = http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake {
            addr: addr.to_owned(),
            source,
        })?;
    tokio::spawn(async move {
        // The slot is the endpoint's until the connection closes.
        let _permit = permit;
        if let Err(e) = conn.with_upgrades().await {
            tracing::trace!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Parses an endpoint authority that is an IP address and port.
pub fn socket_addr(authority: &str) -> Option<SocketAddr> {
    authority.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connections_expire() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(4);
        assert!(fresh(t0, t0, timeout));
        assert!(fresh(t0, t0 + Duration::from_millis(3999), timeout));
        assert!(!fresh(t0, t0 + timeout, timeout));
        // A clock that went backwards (never with Instant, but cheap to be safe).
        assert!(fresh(t0 + timeout, t0, timeout));
        assert!(!fresh(t0, t0, Duration::ZERO));
    }
}
