//! Body types of the proxy, without boxing: a response is either bytes the gateway made or
//! the function's streamed body (carrying the request's accounting guard until the last
//! frame is sent), and carries the request's access-log record, which counts the bytes sent
//! and is written when the body is done; a request toward a function is the client's
//! streamed body, counted against the route's `bodyLimit`, and handed back untouched when
//! it never left (so a request whose connection attempt failed can be retried on another
//! endpoint).

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::{
    access_log::Access, error::Error, metrics::RouteMetrics, table::Endpoint, variant::VariantState,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes the gateway made itself.
pub fn full(b: impl Into<Bytes>) -> Body {
    let b = b.into();
    Body {
        kind: Kind::Full(if b.is_empty() { None } else { Some(b) }),
        access: None,
    }
}

/// The function's response body, with the request's accounting.
pub fn proxied(inner: Incoming, tracker: Tracker) -> Body {
    Body {
        kind: Kind::Proxied(inner, tracker),
        access: None,
    }
}

/// A response body.
pub struct Body {
    kind: Kind,
    /// Written to the access log when the body is dropped (sent or abandoned).
    access: Option<Access>,
}

enum Kind {
    Full(Option<Bytes>),
    Proxied(Incoming, Tracker),
}

impl Body {
    /// This body, carrying `access` (if it is to be logged) until it is done.
    pub fn with_access(mut self, access: Access) -> Self {
        if access.is_logged() {
            self.access = Some(access);
        }
        self
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Proxied(inner, tracker) => match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(None) => {
                    tracker.release_conn();
                    Poll::Ready(None)
                }
                Poll::Ready(Some(r)) => Poll::Ready(Some(r.map_err(Into::into))),
                Poll::Pending => Poll::Pending,
            },
        };
        if let (Poll::Ready(Some(Ok(frame))), Some(access)) = (&polled, &mut this.access)
            && let Some(data) = frame.data_ref()
        {
            access.out.bytes_out += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(d) => d.is_none(),
            Kind::Proxied(inner, _) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Proxied(inner, _) => inner.size_hint(),
        }
    }
}

/// Accounting of one routed request, undone on drop (when the response is fully sent or
/// abandoned): the variant's load, the endpoint's in-flight count, the route's gauge.
pub struct Tracker {
    variant: Arc<VariantState>,
    metrics: Arc<RouteMetrics>,
    endpoint: Option<Arc<Endpoint>>,
    /// The connection the response arrives on: back to the endpoint's pool once the
    /// response body has been read to its end.
    conn: Option<crate::pool::Sender>,
    /// Set once the request body has been sent to its end (see [`UpstreamBody::completion`]).
    request_done: Option<Arc<Progress>>,
}

impl Tracker {
    pub fn begin(variant: &Arc<VariantState>, metrics: &Arc<RouteMetrics>) -> Self {
        variant.begin();
        metrics.in_flight().inc();
        Tracker {
            variant: Arc::clone(variant),
            metrics: Arc::clone(metrics),
            endpoint: None,
            conn: None,
            request_done: None,
        }
    }

    /// The response comes on `conn`, which is reusable once the response body is read and
    /// `request_done` (the request body was sent to its end) is set.
    pub fn set_conn(&mut self, conn: crate::pool::Sender, request_done: Arc<Progress>) {
        self.conn = Some(conn);
        self.request_done = Some(request_done);
    }

    /// The response body was read to its end: the connection can serve the next request,
    /// unless the request body is still being sent (a function may answer before reading
    /// it all); such a connection is dropped, or the next request would wait behind a
    /// slow client's upload.
    fn release_conn(&mut self) {
        let request_done = self
            .request_done
            .take()
            .is_some_and(|d| d.done.load(Relaxed));
        if let (Some(conn), Some(e)) = (self.conn.take(), self.endpoint.as_ref())
            && request_done
        {
            e.pool.put(conn);
        }
    }

    /// The request is now on `endpoint` (replacing a previous one).
    pub fn set_endpoint(&mut self, endpoint: &Arc<Endpoint>) {
        if let Some(old) = self.endpoint.take() {
            old.in_flight.fetch_sub(1, Relaxed);
        }
        endpoint.in_flight.fetch_add(1, Relaxed);
        self.endpoint = Some(Arc::clone(endpoint));
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // A body hyper never polls (HEAD, 204, 304, empty) is complete already.
        if let Kind::Proxied(inner, tracker) = &mut self.kind
            && http_body::Body::is_end_stream(inner)
        {
            tracker.release_conn();
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.variant.end();
        self.metrics.in_flight().dec();
        if let Some(e) = self.endpoint.take() {
            e.in_flight.fetch_sub(1, Relaxed);
        }
    }
}

/// The request body was larger than the route's `bodyLimit`.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the limit of {0} bytes")]
pub struct LimitExceeded(pub u64);

/// How far a request body toward a function has been sent.
#[derive(Debug, Default)]
pub struct Progress {
    /// Sent to its end.
    pub done: AtomicBool,
    /// Body bytes passed on so far.
    pub bytes: AtomicU64,
}

/// A request body toward a function.
pub struct UpstreamBody {
    inner: Option<Incoming>,
    seen: u64,
    limit: u64,
    polled: bool,
    give_back: Option<oneshot::Sender<Incoming>>,
    progress: Option<Arc<Progress>>,
}

impl UpstreamBody {
    pub fn new(inner: Incoming, limit: u64) -> Self {
        UpstreamBody {
            inner: Some(inner),
            seen: 0,
            limit,
            polled: false,
            give_back: None,
            progress: None,
        }
    }

    /// An empty body (e.g. autoscaler pushes never use this; for retries of bodyless
    /// requests).
    pub fn empty() -> Self {
        UpstreamBody {
            inner: None,
            seen: 0,
            limit: u64::MAX,
            polled: false,
            give_back: None,
            progress: None,
        }
    }

    /// If this body is dropped before it was ever polled, the inner body is sent back
    /// through the returned receiver.
    pub fn returnable(&mut self) -> oneshot::Receiver<Incoming> {
        let (tx, rx) = oneshot::channel();
        self.give_back = Some(tx);
        rx
    }

    /// This body's progress: `done` is set once it has been sent to its end (at once for an
    /// empty one), `bytes` counts what was sent.
    pub fn completion(&mut self) -> Arc<Progress> {
        let progress = Arc::new(Progress {
            done: AtomicBool::new(self.is_end_stream_now()),
            bytes: AtomicU64::new(0),
        });
        self.progress = Some(Arc::clone(&progress));
        progress
    }

    fn is_end_stream_now(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn mark_done(&self) {
        if let Some(p) = &self.progress {
            p.done.store(true, Relaxed);
        }
    }

    /// Whether there is a body at all.
    pub fn is_empty_body(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if !self.polled
            && let (Some(tx), Some(inner)) = (self.give_back.take(), self.inner.take())
        {
            let _ = tx.send(inner);
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        this.polled = true;
        let Some(inner) = this.inner.as_mut() else {
            this.mark_done();
            return Poll::Ready(None);
        };
        match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if let Some(p) = &this.progress {
                        p.bytes.store(this.seen, Relaxed);
                    }
                    if this.seen > this.limit {
                        this.inner = None;
                        return Poll::Ready(Some(Err(Box::new(LimitExceeded(this.limit)))));
                    }
                }
                // hyper stops polling a body that says it has ended.
                if inner.is_end_stream() {
                    this.mark_done();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(ClientBodyError(e))))),
            Poll::Ready(None) => {
                this.mark_done();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

/// The client's side of a request body failed: its framing was malformed (a bad chunk
/// size line) or the client went away before the body ended. The client's fault, not the
/// function's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientBodyError(#[source] hyper::Error);

/// The answer for an upstream exchange that failed because of the client's body (over the
/// route's limit, malformed, cut short), found anywhere in `err`'s chain; `None` when the
/// failure is the function's or the network's.
pub fn client_fault(err: &(dyn std::error::Error + 'static)) -> Option<Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(l) = e.downcast_ref::<LimitExceeded>() {
            return Some(Error::PayloadTooLarge { limit: l.0 });
        }
        if let Some(ClientBodyError(h)) = e.downcast_ref::<ClientBodyError>() {
            let reason = if h.is_incomplete_message() {
                "the client closed the connection before the body ended".to_owned()
            } else {
                // hyper's own words are "error reading a body from connection"; the
                // decoder's cause says what was wrong.
                std::error::Error::source(h).map_or_else(|| h.to_string(), ToString::to_string)
            };
            return Some(Error::BadBody { reason });
        }
        cur = e.source();
    }
    None
}
