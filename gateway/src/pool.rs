//! HTTP/1.1 keep-alive connections to functions, pooled per endpoint (the pool lives in the
//! [`Endpoint`], so it survives table rebuilds while the endpoint stays).
//!
//! Leaner than a general client: no per-request boxed future, no pool-key hashing, no
//! per-request task to wait for the connection to become idle. A connection goes back to
//! its pool when the response body has been read to the end (see [`crate::body`]); the
//! next user waits for it to be ready (immediate once hyper has finished the exchange).
//! Connecting happens before the request is handed over, so a connect failure leaves the
//! request (and its body) untouched for another endpoint.

use std::{net::SocketAddr, sync::Mutex, time::Duration};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{body::UpstreamBody, table::Endpoint};

/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 512;

pub type Sender = SendRequest<UpstreamBody>;

/// The idle connections of one endpoint.
#[derive(Default)]
pub struct ConnPool {
    idle: Mutex<Vec<Sender>>,
}

impl std::fmt::Debug for ConnPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnPool").finish_non_exhaustive()
    }
}

impl ConnPool {
    /// Returns a connection whose exchange has completed.
    pub fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(sender);
        }
    }

    fn take(&self) -> Option<Sender> {
        self.idle.lock().ok()?.pop()
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

/// A ready connection to `endpoint`: an idle pooled one, else a new one.
pub async fn acquire(
    endpoint: &Endpoint,
    connect_timeout: Duration,
) -> Result<Sender, ConnectError> {
    while let Some(mut s) = endpoint.pool.take() {
        if s.is_closed() {
            continue;
        }
        if s.ready().await.is_ok() {
            return Ok(s);
        }
    }
    connect(endpoint, connect_timeout).await
}

async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Sender, ConnectError> {
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
