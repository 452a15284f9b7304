//! Per-connection bookkeeping for the client-facing listeners: when a connection may be
//! closed (a pure decision, [`verdict`]), the socket wrapper that notices a request head
//! starting ([`Watched`]) and carries the connection's permit and gauge (so an upgraded
//! tunnel keeps both until it ends), and the response-body guard that marks a request as
//! finished ([`Counted`]).
//!
//! Why not hyper's own timers: hyper-util's protocol detection (HTTP/1 vs h2) has no
//! timeout at all, h2 has no idle timeout, and hyper's h1 header timer also runs between
//! keep-alive requests, so it cannot be both a short header timeout and a longer idle one.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*, fence},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use prometheus::IntGauge;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{Notify, OwnedSemaphorePermit},
    time::Instant,
};

/// The timeouts a connection is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From the connection's start (before its first request) or from the first byte of a
    /// later HTTP/1 request head, until the head is complete.
    pub header: Duration,
    /// Between requests: no request in flight and (HTTP/1) no new head begun.
    pub idle: Duration,
}

/// What [`verdict`] looks at: times are offsets from the connection's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Requests whose response has not been fully handed to hyper yet.
    pub active: u32,
    /// A request reached the service at least once.
    pub served: bool,
    /// The connection speaks h2 (learned from its first request).
    pub h2: bool,
    /// When the last request finished.
    pub idle_since: Duration,
    /// First byte read after the connection went idle (HTTP/1: a new head began).
    pub head_started: Option<Duration>,
}

/// Why a connection was closed by the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// The request head did not arrive in time (or nothing at all did).
    HeaderTimeout,
    /// Nothing happened between requests for too long.
    Idle,
}

/// The decision for a connection in state `s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A request is in flight: its route's own timeout governs it.
    Busy,
    /// Close at this offset from the start unless the state changes before.
    CloseAt(Duration, Close),
}

/// When a connection in state `s` is to be closed.
pub fn verdict(s: &Snapshot, limits: &Limits) -> Verdict {
    if s.active > 0 {
        return Verdict::Busy;
    }
    if !s.served {
        // Nothing usable yet: silence, a partial head or a partial h2 preface alike.
        return Verdict::CloseAt(limits.header, Close::HeaderTimeout);
    }
    match s.head_started {
        // h2 reads between requests are pings and settings, not a request head.
        Some(t) if !s.h2 => Verdict::CloseAt(t.saturating_add(limits.header), Close::HeaderTimeout),
        _ => Verdict::CloseAt(s.idle_since.saturating_add(limits.idle), Close::Idle),
    }
}

const NONE: u64 = u64::MAX;

/// While a request is in flight, how often the waiting task looks again at least.
const BUSY_RECHECK: Duration = Duration::from_secs(1);

/// Shared state of one connection, updated by the socket, the service and the body guard.
///
/// The connection's task (see [`ConnWatch::expired`]) is woken by a change only when the
/// change may bring its close time before the time the task will look again anyway
/// (`wake_at_ms`): a request begun or finished on a busy keep-alive connection does not
/// wake it (a wake re-polls the whole connection, twice per request).
pub struct ConnWatch {
    start: Instant,
    active: AtomicU32,
    served: AtomicBool,
    h2: AtomicBool,
    idle_since_ms: AtomicU64,
    head_started_ms: AtomicU64,
    /// When the task waiting in [`ConnWatch::expired`] looks at the state next, at the
    /// latest (ms from the start); `NONE` before it first looks.
    wake_at_ms: AtomicU64,
    /// The shortest time from a change to the close time it can cause (the smaller of the
    /// two limits, in ms), as set by the waiting task.
    min_gap_ms: AtomicU64,
    changed: Notify,
}

impl ConnWatch {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnWatch {
            start: Instant::now(),
            active: AtomicU32::new(0),
            served: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NONE),
            wake_at_ms: AtomicU64::new(NONE),
            min_gap_ms: AtomicU64::new(0),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// A request head was read completely and reached the service.
    pub fn request_started(self: &Arc<Self>, h2: bool) -> RequestGuard {
        self.active.fetch_add(1, AcqRel);
        self.served.store(true, Release);
        if h2 {
            self.h2.store(true, Release);
        }
        self.head_started_ms.store(NONE, Release);
        RequestGuard(Arc::clone(self))
    }

    /// Whether the connection speaks h2 (known from its first request).
    pub fn is_h2(&self) -> bool {
        self.h2.load(Acquire)
    }

    /// Bytes were read from the client.
    fn on_read(&self) {
        // Only the first byte after going idle matters: one load on the hot path.
        if self.head_started_ms.load(Relaxed) == NONE && self.active.load(Acquire) == 0 {
            let now = self.now_ms();
            self.head_started_ms.store(now, Release);
            // The deadline may have moved earlier (header timeout < idle timeout).
            self.changed_at(now);
        }
    }

    /// The state changed at `now` (ms): wake the waiting task if the close time this can
    /// cause (no sooner than `now` + the smaller limit) may come before its next look.
    fn changed_at(&self, now: u64) {
        // Pairs with the fence in `expired`: either this load sees the task's new wake
        // time, or the task's second look at the state sees this change.
        fence(SeqCst);
        let soonest = now.saturating_add(self.min_gap_ms.load(Relaxed));
        if soonest < self.wake_at_ms.load(Relaxed) {
            self.changed.notify_one();
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let head = self.head_started_ms.load(Acquire);
        Snapshot {
            active: self.active.load(Acquire),
            served: self.served.load(Acquire),
            h2: self.h2.load(Acquire),
            idle_since: Duration::from_millis(self.idle_since_ms.load(Acquire)),
            head_started: (head != NONE).then(|| Duration::from_millis(head)),
        }
    }

    /// Resolves when the connection should be closed under `limits`.
    ///
    /// The task looks at the state when woken by a change that may close the connection
    /// sooner (see [`ConnWatch::changed_at`]), and otherwise at the close time it computed
    /// (or, while a request is in flight, after the smaller limit): no change can close
    /// the connection sooner than that after it happens, so every close time is met.
    pub async fn expired(&self, limits: Limits) -> Close {
        let gap = limits.header.min(limits.idle);
        self.min_gap_ms
            .store(u64::try_from(gap.as_millis()).unwrap_or(NONE), Relaxed);
        let sleep = tokio::time::sleep_until(self.start);
        tokio::pin!(sleep);
        let mut armed = None;
        loop {
            let seen = verdict(&self.snapshot(), &limits);
            let elapsed = self.start.elapsed();
            let at = match seen {
                // Any time works here (a change that could close the connection sooner
                // wakes the task anyway); not less than BUSY_RECHECK, so that zero
                // limits do not make it spin while a request is in flight.
                Verdict::Busy => elapsed.saturating_add(gap.max(BUSY_RECHECK)),
                Verdict::CloseAt(at, why) => {
                    if elapsed >= at {
                        return why;
                    }
                    at
                }
            };
            self.wake_at_ms
                .store(u64::try_from(at.as_millis()).unwrap_or(NONE - 1), Relaxed);
            fence(SeqCst);
            // A change made before the new wake time was stored was not compared with it.
            if verdict(&self.snapshot(), &limits) != seen {
                continue;
            }
            if armed != Some(at) {
                sleep.as_mut().reset(self.start + at);
                armed = Some(at);
            }
            tokio::select! {
                () = sleep.as_mut() => armed = None,
                () = self.changed.notified() => {}
            }
        }
    }
}

/// Marks one request as finished when dropped (its response body was sent or abandoned).
pub struct RequestGuard(Arc<ConnWatch>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let w = &self.0;
        let now = w.now_ms();
        w.idle_since_ms.store(now, Release);
        w.head_started_ms.store(NONE, Release);
        if w.active.fetch_sub(1, AcqRel) == 1 {
            w.changed_at(now);
        }
    }
}

/// Decrements the open-connections gauge when the connection (or its tunnel) ends.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    pub fn new(g: &IntGauge) -> Self {
        g.inc();
        GaugeGuard(g.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the first line of a connection says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineVerdict {
    /// The line has not ended yet.
    Undecided,
    /// It names an HTTP version (every HTTP/1 request line does, and so does the HTTP/2
    /// preface, `PRI * HTTP/2.0`).
    Http,
    /// It ended without naming one.
    NotHttp,
}

/// Reads a connection's first line (after any empty lines, which RFC 9112 section 2.2 lets
/// a client send first) for `HTTP/` (in any case), a byte at a time across reads, without keeping it.
///
/// A line without it is not HTTP at all, and the connection is closed without an answer:
/// RFC 9113 section 3.4 asks that of an invalid HTTP/2 preface (h2spec 3.5/2), and on a
/// port that also speaks HTTP/1 such bytes are not a malformed HTTP/1 request either. A
/// request line that does name a version but is malformed still gets hyper's 400.
#[derive(Clone, Copy, Debug, Default)]
pub struct FirstLine {
    /// How many bytes of `HTTP/` the latest bytes match.
    matched: u8,
    seen_http: bool,
    /// Whether a byte other than CR or LF has come.
    started: bool,
    /// Whether a space has come after the line started (the method has ended).
    spaced: bool,
    /// Bytes fed so far, empty lines first included (what hyper's buffer would hold).
    len: usize,
}

impl FirstLine {
    pub fn feed(&mut self, bytes: &[u8]) -> LineVerdict {
        const NAME: &[u8] = b"HTTP/";
        self.len = self.len.saturating_add(bytes.len());
        for &b in bytes {
            if b == b'\n' {
                if self.started {
                    return if self.seen_http {
                        LineVerdict::Http
                    } else {
                        LineVerdict::NotHttp
                    };
                }
                continue;
            }
            if b != b'\r' {
                self.spaced |= self.started && b == b' ';
                self.started = true;
            }
            if self.seen_http {
                continue;
            }
            let m = usize::from(self.matched);
            // Any case: a lower-case `http/1.1` is a malformed request line, for hyper's
            // 400, not bytes of another protocol.
            let b = b.to_ascii_uppercase();
            self.matched = if NAME.get(m) == Some(&b) {
                self.matched + 1
            } else {
                u8::from(b == NAME[0])
            };
            if usize::from(self.matched) == NAME.len() {
                self.seen_http = true;
            }
        }
        LineVerdict::Undecided
    }

    /// The answer to a line still undecided after `limit` bytes, the most hyper's HTTP/1
    /// buffer holds (it would answer 431, which names the header fields): 414 once the
    /// method has ended, as RFC 9112 section 3 asks of a request-target too long to read,
    /// and 400 for a method (or garbage) that long.
    pub fn overflow(&self, limit: usize) -> Option<http::StatusCode> {
        (self.len >= limit).then_some(if self.spaced {
            http::StatusCode::URI_TOO_LONG
        } else {
            http::StatusCode::BAD_REQUEST
        })
    }
}

/// The error a connection ends with when the gateway itself answered its first request
/// line (see [`FirstLine::overflow`]), so that the access log can say which status.
#[derive(Debug, thiserror::Error)]
#[error("the first request line is longer than the gateway reads; answered {0}")]
pub struct LineRefused(pub http::StatusCode);

/// The whole answer to an over-long first line, closing the connection, written here
/// since hyper never sees the request: the gateway's error for it, closing.
fn refusal(status: http::StatusCode) -> Vec<u8> {
    let error = crate::error::Error::LineTooLong {
        target: status == http::StatusCode::URI_TOO_LONG,
    };
    let (status, body) = (error.status(), error.json_body());
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    )
    .into_bytes()
}

/// Writing [`refusal`], then shutting our side and lingering like any close.
struct Refusing {
    status: http::StatusCode,
    answer: Vec<u8>,
    written: usize,
    linger: Option<Linger>,
}

impl Refusing {
    fn new(status: http::StatusCode) -> Self {
        Refusing {
            status,
            answer: refusal(status),
            written: 0,
            linger: None,
        }
    }

    /// Ready with the error the connection ends with, once the answer is out and the
    /// client's remaining bytes are read away.
    fn poll<S: AsyncRead + AsyncWrite>(
        &mut self,
        mut io: Pin<&mut S>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.written < self.answer.len() {
            let n = std::task::ready!(io.as_mut().poll_write(cx, &self.answer[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        if self.linger.is_none() {
            std::task::ready!(io.as_mut().poll_shutdown(cx))?;
            self.linger = Some(Linger::start());
        }
        if let Some(linger) = &mut self.linger {
            std::task::ready!(poll_linger(io, linger, cx));
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            LineRefused(self.status),
        )))
    }
}

pin_project_lite::pin_project! {
    /// A client socket that reports reads to its [`ConnWatch`] and holds the connection's
    /// permit and gauge for as long as it lives, upgraded tunnels included.
    pub struct Watched<S> {
        #[pin]
        io: S,
        watch: Arc<ConnWatch>,
        // Set once our side is shut: the rest of the client's data is being read away.
        linger: Option<Linger>,
        // Until the first line has been read and handed on (see `ReadAhead`).
        ahead: Option<Box<ReadAhead>>,
        // A first line longer than `ahead` holds, still being measured as hyper reads it.
        first: Option<FirstLine>,
        // The most bytes hyper reads for a head (its HTTP/1 buffer).
        line_limit: usize,
        // Set when the first line ran past `line_limit`: the gateway answers it itself.
        refusing: Option<Box<Refusing>>,
        _permit: Option<OwnedSemaphorePermit>,
        _gauge: Option<GaugeGuard>,
    }
}

/// Lingering close (RFC 9112 section 9.6, nginx's `lingering_close`): a connection closed
/// while the client may still be sending (an early 413, or a function that answered before
/// reading its upload) first shuts our side, then reads and discards what comes until the
/// client ends, goes quiet for [`LINGER_QUIET`] or [`LINGER_MAX`] has passed. Closing with
/// unread data would send a reset instead, and a client still writing then loses the
/// answer it was sent. Every close lingers: whether the client is still sending cannot be
/// told from the socket (the rest of an upload may not have arrived yet when an early 413
/// goes out). A client that has finished closes too, which ends the wait at once. A
/// lingering socket keeps its permit, so the connection cap bounds how many there are.
const LINGER_MAX: Duration = Duration::from_secs(10);
const LINGER_QUIET: Duration = Duration::from_secs(2);

struct Linger {
    until: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Linger {
    fn start() -> Self {
        let now = Instant::now();
        Linger {
            until: now + LINGER_MAX,
            timer: Box::pin(tokio::time::sleep_until(now + LINGER_QUIET)),
        }
    }

    /// Data came: wait up to [`LINGER_QUIET`] more, never past [`LINGER_MAX`].
    fn on_data(&mut self) {
        let next = (Instant::now() + LINGER_QUIET).min(self.until);
        self.timer.as_mut().reset(next);
    }
}

/// Reads and discards until the end, an error or the linger timer; `Pending` while the
/// client is still sending within the bounds.
fn poll_linger<S: AsyncRead>(
    mut io: Pin<&mut S>,
    linger: &mut Linger,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut scratch = [0u8; 4096];
    loop {
        let mut buf = ReadBuf::new(&mut scratch);
        match io.as_mut().poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
            Poll::Ready(Ok(())) => linger.on_data(),
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Pending => break,
        }
    }
    linger.timer.as_mut().poll(cx)
}

impl<S> Watched<S> {
    /// `line_limit`: the most bytes hyper's HTTP/1 parser reads for a head (a first line
    /// that long is answered here, see [`FirstLine::overflow`]).
    pub fn new(
        io: S,
        watch: Arc<ConnWatch>,
        permit: Option<OwnedSemaphorePermit>,
        gauge: Option<GaugeGuard>,
        line_limit: usize,
    ) -> Self {
        Watched {
            io,
            watch,
            linger: None,
            ahead: Some(Box::default()),
            first: None,
            line_limit,
            refusing: None,
            _permit: permit,
            _gauge: gauge,
        }
    }
}

/// The start of a connection, read ahead of hyper until its first line is complete (or
/// [`READ_AHEAD`] bytes came without one), so that [`FirstLine`] can judge the whole line
/// before any of it is parsed: hyper-util first reads 24 bytes to look for the HTTP/2
/// preface, and hyper's HTTP/1 parser answers 400 to a bad version before the line ends.
/// Reading the start in one go also saves the separate 24-byte read.
const READ_AHEAD: usize = 4096;

struct ReadAhead {
    buf: [u8; READ_AHEAD],
    filled: usize,
    /// How much of `buf` has been handed on.
    pos: usize,
    line: FirstLine,
    /// The line has ended (it is HTTP), or the buffer filled, or the client ended.
    done: bool,
}

impl Default for ReadAhead {
    fn default() -> Self {
        ReadAhead {
            buf: [0; READ_AHEAD],
            filled: 0,
            pos: 0,
            line: FirstLine::default(),
            done: false,
        }
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        if let Some(refusing) = this.refusing.as_deref_mut() {
            return refusing.poll(this.io, cx);
        }
        if let Some(ahead) = this.ahead.as_deref_mut() {
            while !ahead.done {
                let mut more = ReadBuf::new(&mut ahead.buf[ahead.filled..]);
                std::task::ready!(this.io.as_mut().poll_read(cx, &mut more))?;
                let n = more.filled().len();
                if n == 0 {
                    ahead.done = true;
                    break;
                }
                this.watch.on_read();
                let verdict = ahead.line.feed(&ahead.buf[ahead.filled..ahead.filled + n]);
                ahead.filled += n;
                match verdict {
                    // Not a byte of it is handed on: the connection ends unanswered.
                    LineVerdict::NotHttp => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the first line is neither an HTTP/1 request line nor the HTTP/2 preface",
                        )));
                    }
                    LineVerdict::Http => ahead.done = true,
                    LineVerdict::Undecided if ahead.filled == READ_AHEAD => {
                        if let Some(status) = ahead.line.overflow(*this.line_limit) {
                            *this.ahead = None;
                            let refusing = this.refusing.insert(Box::new(Refusing::new(status)));
                            return refusing.poll(this.io, cx);
                        }
                        ahead.done = true;
                        *this.first = Some(ahead.line);
                    }
                    LineVerdict::Undecided => {}
                }
            }
            let rest = &ahead.buf[ahead.pos..ahead.filled];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            ahead.pos += n;
            if ahead.pos == ahead.filled {
                *this.ahead = None;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = this.io.as_mut().poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.on_read();
            if let Some(line) = this.first {
                if line.feed(&buf.filled()[before..]) != LineVerdict::Undecided {
                    *this.first = None;
                } else if let Some(status) = line.overflow(*this.line_limit) {
                    // Not handed on: hyper would answer 431 once its buffer is full.
                    buf.set_filled(before);
                    *this.first = None;
                    let refusing = this.refusing.insert(Box::new(Refusing::new(status)));
                    return refusing.poll(this.io, cx);
                }
            }
        }
        r
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        if this.linger.is_none() {
            std::task::ready!(this.io.as_mut().poll_shutdown(cx))?;
            *this.linger = Some(Linger::start());
        }
        match this.linger {
            Some(linger) => poll_linger(this.io, linger, cx).map(Ok),
            None => Poll::Ready(Ok(())),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is dropped.
    pub struct Counted<B> {
        #[pin]
        inner: B,
        _guard: RequestGuard,
    }
}

impl<B> Counted<B> {
    pub fn new(inner: B, guard: RequestGuard) -> Self {
        Counted {
            inner,
            _guard: guard,
        }
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn first_line(parts: &[&[u8]]) -> LineVerdict {
        let mut line = FirstLine::default();
        for p in parts {
            let v = line.feed(p);
            if v != LineVerdict::Undecided {
                return v;
            }
        }
        LineVerdict::Undecided
    }

    #[test]
    fn the_first_line_must_name_http() {
        assert_eq!(
            first_line(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
            LineVerdict::Http
        );
        assert_eq!(
            first_line(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]),
            LineVerdict::Http
        );
        // Split anywhere, "HTTP/" across reads included; empty lines first are skipped.
        assert_eq!(
            first_line(&[b"\r\n\r\nGET /x HT", b"TP", b"/1.0\r", b"\n"]),
            LineVerdict::Http
        );
        assert_eq!(first_line(&[b"GET / HHTTP/1.1\n"]), LineVerdict::Http);
        // Malformed but naming a version: left to the HTTP/1 parser (400).
        assert_eq!(first_line(&[b"GET / HTTP/9.9 x\r\n"]), LineVerdict::Http);
        assert_eq!(
            first_line(&[b"INVALID CONNECTION PREFA", b"CE\r\n\r\n"]),
            LineVerdict::NotHttp
        );
        assert_eq!(first_line(&[b"GET /\r\n"]), LineVerdict::NotHttp);
        assert_eq!(first_line(&[b"GET / http/1.1\r\n"]), LineVerdict::Http);
        assert_eq!(
            first_line(&[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n"]),
            LineVerdict::NotHttp
        );
        assert_eq!(first_line(&[b"GET / HTTP/1.1"]), LineVerdict::Undecided);
        assert_eq!(first_line(&[b"\r\n\r\n"]), LineVerdict::Undecided);
    }

    #[test]
    fn a_first_line_too_long_to_read_is_414_or_400() {
        let mut line = FirstLine::default();
        assert_eq!(line.feed(b"\r\nGET /aaaa"), LineVerdict::Undecided);
        assert_eq!(line.overflow(12), None);
        assert_eq!(line.feed(b"a"), LineVerdict::Undecided);
        assert_eq!(line.overflow(12), Some(http::StatusCode::URI_TOO_LONG));
        // No space yet: a method (or garbage) that long.
        let mut line = FirstLine::default();
        assert_eq!(line.feed(b"AAAAAAAAAAAA"), LineVerdict::Undecided);
        assert_eq!(line.overflow(12), Some(http::StatusCode::BAD_REQUEST));
        // A space among the empty lines first is not the end of a method.
        let mut line = FirstLine::default();
        line.feed(b"\r\n");
        line.feed(b"GETGETGETGET");
        assert_eq!(line.overflow(8), Some(http::StatusCode::BAD_REQUEST));
        let r = String::from_utf8(refusal(http::StatusCode::URI_TOO_LONG)).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "uri_too_long");
    }

    const L: Limits = Limits {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_connection_without_a_request_gets_the_header_timeout() {
        let fresh = Snapshot::default();
        assert_eq!(
            verdict(&fresh, &L),
            Verdict::CloseAt(s(10), Close::HeaderTimeout)
        );
        // Bytes that never make a request (a partial head or h2 preface) change nothing.
        let partial = Snapshot {
            head_started: Some(s(3)),
            ..fresh
        };
        assert_eq!(
            verdict(&partial, &L),
            Verdict::CloseAt(s(10), Close::HeaderTimeout)
        );
    }

    #[test]
    fn requests_in_flight_are_never_timed_out_here() {
        let busy = Snapshot {
            active: 2,
            served: true,
            ..Snapshot::default()
        };
        assert_eq!(verdict(&busy, &L), Verdict::Busy);
    }

    #[test]
    fn idle_keep_alive_and_slow_next_heads() {
        let idle = Snapshot {
            served: true,
            idle_since: s(5),
            ..Snapshot::default()
        };
        assert_eq!(verdict(&idle, &L), Verdict::CloseAt(s(65), Close::Idle));
        // HTTP/1: a new head began at 30 s; it has the header timeout from then.
        let slow = Snapshot {
            head_started: Some(s(30)),
            ..idle
        };
        assert_eq!(
            verdict(&slow, &L),
            Verdict::CloseAt(s(40), Close::HeaderTimeout)
        );
        // h2: reads between requests (pings) do not count as a head.
        let h2 = Snapshot { h2: true, ..slow };
        assert_eq!(verdict(&h2, &L), Verdict::CloseAt(s(65), Close::Idle));
    }

    #[test]
    fn watch_tracks_requests_and_reads() {
        let w = ConnWatch::new();
        w.on_read();
        assert!(w.snapshot().head_started.is_some());
        let g = w.request_started(false);
        let snap = w.snapshot();
        assert_eq!(
            (snap.active, snap.served, snap.head_started),
            (1, true, None)
        );
        w.on_read(); // a request body: not a new head
        assert_eq!(w.snapshot().head_started, None);
        drop(g);
        assert_eq!(w.snapshot().active, 0);
    }

    /// Requests begun and finished do not wake the waiting task, yet every close time is
    /// met: the idle one after a request, the header one of a later head.
    #[tokio::test]
    async fn close_times_are_met_without_a_wake_per_request() {
        let limits = Limits {
            header: Duration::from_millis(150),
            idle: Duration::from_millis(300),
        };
        let w = ConnWatch::new();
        let waiter = tokio::spawn({
            let w = Arc::clone(&w);
            async move { (w.expired(limits).await, w.start.elapsed()) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..3 {
            w.on_read();
            drop(w.request_started(false));
        }
        let idle_since = w.start.elapsed();
        let (why, at) = waiter.await.unwrap();
        assert_eq!(why, Close::Idle);
        assert!(at >= idle_since + limits.idle, "{at:?}");
        assert!(
            at < idle_since + limits.idle + Duration::from_millis(200),
            "{at:?}"
        );

        // A head that starts after a while gets the (shorter) header timeout from then.
        let limits = Limits {
            header: Duration::from_millis(100),
            idle: Duration::from_secs(30),
        };
        let w = ConnWatch::new();
        drop(w.request_started(false));
        let waiter = tokio::spawn({
            let w = Arc::clone(&w);
            async move { (w.expired(limits).await, w.start.elapsed()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        w.on_read();
        let head = w.start.elapsed();
        let (why, at) = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(why, Close::HeaderTimeout);
        assert!(at < head + Duration::from_millis(300), "{at:?}");

        // A request in flight is never cut, and the idle time counts from its end (zero
        // limits included).
        for ms in [50, 0] {
            let limits = Limits {
                header: Duration::from_millis(ms),
                idle: Duration::from_millis(ms),
            };
            let w = ConnWatch::new();
            let g = w.request_started(false);
            let waiter = tokio::spawn({
                let w = Arc::clone(&w);
                async move { w.expired(limits).await }
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!waiter.is_finished());
            drop(g);
            let why = tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(why, Close::Idle);
        }
    }
}
