//! The access log: one JSON line per request on stdout.
//!
//! Cost on the request path: the record ([`Access`]) is a handful of fields filled while the
//! request is served (reference-counted handles, no copies of strings); it rides along with
//! the response body and, when that body is finished or dropped, is formatted once, straight
//! into a shared buffer under a short lock. A writer thread takes the buffer and writes it to
//! stdout in batches (every [`FLUSH_INTERVAL`], or sooner past [`HIGH_WATER`] bytes), so the
//! request path never waits for stdout and makes no syscall for logging (the writer is woken
//! only when it sleeps with nothing to write, or at the high-water mark). When stdout does
//! not keep up and [`MAX_BUFFERED`] bytes are waiting, lines are dropped and counted
//! (`apiroutes_gateway_access_log_dropped_lines_total`) instead.
//!
//! The line has the keys of the gateway's other JSON log lines (`timestamp` in RFC 3339
//! UTC with microseconds, `level`, `target`), then the request's fields (see [`Line`]).
//! Every string is JSON-escaped (control characters as `\u00XX`) and invalid UTF-8 becomes
//! U+FFFD, so a line is valid JSON whatever the client sent.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc},
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use apiroutes_crds::labels::Variant;
use apiroutes_kit::telemetry::{Finished, KeyValue, SpanKind, Spans};
use http::{HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use prometheus::IntCounter;
use tokio::time::Instant;

use crate::{
    body::Progress,
    table::{Endpoint, RouteEntry},
    trace_context::{Sampler, Span, hex_into},
};

/// The writer wakes at least this often while lines wait.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Buffered bytes that wake the writer before its interval is over (about 500 lines: under
/// load the writer wakes, and the request path makes a syscall, once per this many bytes).
pub const HIGH_WATER: usize = 256 * 1024;
/// Buffered bytes past which new lines are dropped (stdout is not keeping up).
pub const MAX_BUFFERED: usize = 4 * 1024 * 1024;

/// The sink: a buffer shared by all requests and the thread that writes it out.
pub struct AccessLog {
    shared: Arc<Shared>,
    writer: Mutex<Option<(JoinHandle<()>, mpsc::Receiver<()>)>>,
    dropped: Option<IntCounter>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    buf: Vec<u8>,
    /// The writer sleeps until told there is something to write.
    parked: bool,
    closing: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Nothing panics while holding it; a poisoned buffer is still a buffer.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AccessLog {
    /// An access log on stdout; `dropped` counts lines dropped because stdout was too slow.
    pub fn stdout(dropped: Option<IntCounter>) -> Arc<Self> {
        AccessLog::to(Box::new(std::io::stdout()), dropped)
    }

    /// An access log written to `out` by a thread of its own.
    pub fn to(out: Box<dyn Write + Send>, dropped: Option<IntCounter>) -> Arc<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::with_capacity(HIGH_WATER * 2),
                parked: false,
                closing: false,
            }),
            wake: Condvar::new(),
        });
        let (done_tx, done_rx) = mpsc::channel();
        let for_thread = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                write_loop(&for_thread, out);
                let _ = done_tx.send(());
            })
            .ok()
            .map(|h| (h, done_rx));
        Arc::new(AccessLog {
            shared,
            writer: Mutex::new(writer),
            dropped,
        })
    }

    /// Appends one line, formatted by `format` right into the shared buffer.
    pub fn write(&self, format: impl FnOnce(&mut Vec<u8>)) {
        let mut st = lock(&self.shared.state);
        let before = st.buf.len();
        format(&mut st.buf);
        let after = st.buf.len();
        if after > MAX_BUFFERED {
            st.buf.truncate(before);
            drop(st);
            if let Some(c) = &self.dropped {
                c.inc();
            }
            return;
        }
        let wake = std::mem::take(&mut st.parked) || (before < HIGH_WATER && after >= HIGH_WATER);
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Writes out what is buffered and stops the writer, waiting at most `timeout` (stdout
    /// may be blocked). Lines written afterwards are never written out.
    pub fn close(&self, timeout: Duration) {
        self.start_closing();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((handle, done)) = writer
            && done.recv_timeout(timeout).is_ok()
        {
            let _ = handle.join();
        }
    }

    fn start_closing(&self) {
        lock(&self.shared.state).closing = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // The writer drains the buffer and ends on its own.
        self.start_closing();
    }
}

fn write_loop(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut spare: Vec<u8> = Vec::with_capacity(HIGH_WATER * 2);
    loop {
        let mut st = lock(&shared.state);
        while st.buf.is_empty() && !st.closing {
            st.parked = true;
            st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.parked = false;
        if st.buf.is_empty() {
            break; // closing, and everything is written
        }
        if !st.closing && st.buf.len() < HIGH_WATER {
            // Let a batch gather: one write for many lines.
            st = shared
                .wake
                .wait_timeout(st, FLUSH_INTERVAL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut st.buf, &mut spare);
        drop(st);
        // A failed write (stdout closed) loses these lines; there is nowhere to report it.
        let _ = out.write_all(&spare);
        let _ = out.flush();
        spare.clear();
        // Keep the capacity (growing a buffer this large costs page faults) unless a stall
        // of stdout made it much larger than a batch.
        if spare.capacity() > 8 * HIGH_WATER {
            spare.shrink_to(2 * HIGH_WATER);
        }
    }
    let _ = out.flush();
}

/// `x-request-id` of a request: the client's, or one the gateway made.
pub enum RequestId {
    Client(HeaderValue),
    /// 32 lower-case hex digits (see [`RequestIds`]).
    Generated([u8; 32]),
}

impl RequestId {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Client(v) => v.as_bytes(),
            RequestId::Generated(b) => b,
        }
    }

    pub fn header_value(&self) -> HeaderValue {
        match self {
            RequestId::Client(v) => v.clone(),
            RequestId::Generated(b) => {
                HeaderValue::from_bytes(b).unwrap_or_else(|_| HeaderValue::from_static("0"))
            }
        }
    }
}

/// Generated `x-request-id` values: a random per-process prefix and a counter.
pub struct RequestIds {
    prefix: u64,
    counter: std::sync::atomic::AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        use std::hash::BuildHasher;
        let prefix = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        RequestIds {
            prefix,
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn next(&self) -> [u8; 32] {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut buf = [0u8; 32];
        hex_into(&mut buf[..16], &self.prefix.to_be_bytes());
        hex_into(&mut buf[16..], &n.to_be_bytes());
        buf
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

/// What is known of a request when it arrives.
pub struct RequestInfo {
    pub start: Instant,
    pub span: Span,
    pub request_id: RequestId,
    pub method: Method,
    pub version: Version,
    /// The request target, taken out of the request (the path goes to the log as received).
    pub uri: Uri,
    /// The first `Host` line (logged when the target has no authority).
    pub host: Option<HeaderValue>,
    pub client: SocketAddr,
}

/// What serving a request found out.
#[derive(Default)]
pub struct Outcome {
    pub route: Option<Arc<RouteEntry>>,
    pub variant: Option<Variant>,
    /// The endpoint last tried.
    pub upstream: Option<Arc<Endpoint>>,
    /// The request body toward that endpoint (its byte count).
    pub request_body: Option<Arc<Progress>>,
    /// Time held for a cold start.
    pub activation: Option<Duration>,
    pub status: Option<StatusCode>,
    /// Time to the response head.
    pub head: Option<Duration>,
    /// Response body bytes handed to the connection.
    pub bytes_out: u64,
}

/// One request's access-log record: written when dropped, which is when its response body
/// is finished or abandoned (or, without a response, when the client went away first:
/// status 499, as nginx logs it).
pub struct Access {
    sink: Option<Arc<AccessLog>>,
    /// Where the request's span goes (OTLP), when export is on and the trace is sampled.
    spans: Option<Spans>,
    pub req: RequestInfo,
    pub out: Outcome,
}

impl Access {
    /// The record of `req` (whose URI is moved into it), from a client at `client`;
    /// `spans`: span export, when on.
    pub fn begin<B>(
        sink: Option<Arc<AccessLog>>,
        spans: Option<&Spans>,
        start: Instant,
        req: &mut Request<B>,
        client: SocketAddr,
        sampler: Sampler,
        ids: &RequestIds,
    ) -> Self {
        let h = req.headers();
        let span = Span::for_request(h, sampler);
        let request_id = match h.get(X_REQUEST_ID) {
            Some(v) => RequestId::Client(v.clone()),
            None => RequestId::Generated(ids.next()),
        };
        let host = h.get(header::HOST).cloned();
        Access {
            sink,
            // Only sampled spans are exported: the sampled flag is the caller's (or the
            // gateway's) decision to record this trace.
            spans: spans.filter(|_| span.sampled).cloned(),
            req: RequestInfo {
                start,
                span,
                request_id,
                method: req.method().clone(),
                version: req.version(),
                uri: std::mem::take(req.uri_mut()),
                host,
                client,
            },
            out: Outcome::default(),
        }
    }

    /// Whether this record will be written.
    pub fn is_logged(&self) -> bool {
        self.sink.is_some()
    }
}

pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

impl Drop for Access {
    fn drop(&mut self) {
        if let Some(spans) = self.spans.take() {
            spans.export(self.span());
        }
        let Some(sink) = self.sink.take() else {
            return;
        };
        let (req, out) = (&self.req, &self.out);
        let total = req.start.elapsed();
        let bytes_in = out
            .request_body
            .as_ref()
            .map_or(0, |p| p.bytes.load(std::sync::atomic::Ordering::Relaxed));
        let line = Line {
            span: &req.span,
            request_id: Some(req.request_id.as_bytes()),
            method: Some(req.method.as_str()),
            path: Some(req.uri.path()),
            host: req
                .uri
                .authority()
                .map(|a| a.as_str().as_bytes())
                .or(req.host.as_ref().map(HeaderValue::as_bytes)),
            route: out.route.as_ref().map(|r| &*r.key),
            variant: out.variant.map(Variant::as_str),
            status: out.status.map_or(499, |s| s.as_u16()),
            upstream: out.upstream.as_ref().map(|e| e.authority.as_str()),
            bytes_in,
            bytes_out: out.bytes_out,
            duration: out.head,
            total: Some(total),
            activation: out.activation,
            protocol: Some(protocol(req.version)),
            client: req.client,
        };
        let now = SystemTime::now();
        sink.write(|buf| line.format(buf, now));
    }
}

impl Access {
    /// The request's span for OTLP export: the ids of its `traceparent` and access-log
    /// line, named and described after the OpenTelemetry HTTP server conventions.
    fn span(&self) -> Finished {
        let (req, out) = (&self.req, &self.out);
        let end = SystemTime::now();
        let total = req.start.elapsed();
        let status = out.status.map_or(499, |s| s.as_u16());
        let route = out.route.as_ref();
        let pattern = route.and_then(|r| r.pattern_header.to_str().ok());
        let name = match pattern {
            Some(p) => format!("{} {p}", req.method),
            None => req.method.to_string(),
        };
        let mut attributes = vec![
            KeyValue::new("http.request.method", req.method.to_string()),
            KeyValue::new("url.path", req.uri.path().to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("network.protocol.version", protocol_version(req.version)),
            KeyValue::new("client.address", req.client.ip().to_string()),
            KeyValue::new("apiroutes.request_id", lossy(req.request_id.as_bytes())),
            KeyValue::new("apiroutes.total_ms", millis(total)),
            KeyValue::new(
                "apiroutes.bytes_out",
                i64::try_from(out.bytes_out).unwrap_or(i64::MAX),
            ),
        ];
        let host = req
            .uri
            .authority()
            .map(|a| a.host().as_bytes())
            .or(req.host.as_ref().map(HeaderValue::as_bytes));
        if let Some(host) = host {
            attributes.push(KeyValue::new("server.address", lossy(host)));
        }
        if let Some(p) = pattern {
            attributes.push(KeyValue::new("http.route", p.to_owned()));
        }
        if let Some(r) = route {
            attributes.push(KeyValue::new("apiroutes.route", r.key.to_string()));
        }
        if let Some(v) = out.variant {
            attributes.push(KeyValue::new("apiroutes.variant", v.as_str()));
        }
        if let Some(e) = &out.upstream {
            attributes.push(KeyValue::new(
                "apiroutes.upstream",
                e.authority.as_str().to_owned(),
            ));
        }
        if let Some(d) = out.head {
            attributes.push(KeyValue::new("apiroutes.duration_ms", millis(d)));
        }
        if let Some(d) = out.activation {
            attributes.push(KeyValue::new("apiroutes.activation_ms", millis(d)));
        }
        Finished {
            name: name.into(),
            kind: SpanKind::Server,
            trace_id: req.span.trace_id,
            span_id: req.span.span_id,
            parent_id: req.span.parent_id,
            start: end.checked_sub(total).unwrap_or(end),
            end,
            attributes,
            // A server span is an error for a 5xx only (the client's 4xx are not ours).
            error: status >= 500,
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `network.protocol.version`: `1.1`, `2`.
fn protocol_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "unknown",
    }
}

/// The line of a request refused by the HTTP/1 parser (hyper answered it: 400, 414, 431),
/// which never reached the proxy: only the client and the status are known.
pub fn refused(sink: &AccessLog, client: SocketAddr, status: StatusCode, ids: &RequestIds) {
    let span = Span::for_request(&http::HeaderMap::new(), Sampler::new(0.0));
    let id = ids.next();
    let line = Line {
        span: &span,
        request_id: Some(&id),
        method: None,
        path: None,
        host: None,
        route: None,
        variant: None,
        status: status.as_u16(),
        upstream: None,
        bytes_in: 0,
        bytes_out: 0,
        duration: None,
        total: None,
        activation: None,
        protocol: None,
        client,
    };
    let now = SystemTime::now();
    sink.write(|buf| line.format(buf, now));
}

/// The status hyper's HTTP/1 server answered a request it could not parse with, from the
/// error the connection ended with (`None`: not such an error, or no answer was sent).
pub fn parse_error_status(e: &(dyn std::error::Error + 'static)) -> Option<StatusCode> {
    // An over-long first line, answered by the gateway's socket wrapper (an I/O error to
    // hyper).
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<crate::conn::LineRefused>())
        {
            return Some(refused.0);
        }
        source = err.source();
    }
    let e = e.downcast_ref::<hyper::Error>()?;
    if !e.is_parse() || e.is_parse_version_h2() || e.is_parse_status() {
        return None;
    }
    if e.is_parse_too_large() {
        // Too large a head (431) or request target (414): hyper's public API tells them
        // apart only by their message.
        return Some(if e.to_string().contains("URI") {
            StatusCode::URI_TOO_LONG
        } else {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        });
    }
    Some(StatusCode::BAD_REQUEST)
}

pub fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "unknown",
    }
}

/// The fields of one access-log line. `None` is written as `null`.
pub struct Line<'a> {
    pub span: &'a Span,
    pub request_id: Option<&'a [u8]>,
    pub method: Option<&'a str>,
    /// The path as received, without the query (queries carry secrets).
    pub path: Option<&'a str>,
    /// The target's authority, else the `Host` header, as received.
    pub host: Option<&'a [u8]>,
    /// `namespace/name` of the matched route.
    pub route: Option<&'a str>,
    pub variant: Option<&'static str>,
    pub status: u16,
    /// The function endpoint (`ip:port`) last tried.
    pub upstream: Option<&'a str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// To the response head.
    pub duration: Option<Duration>,
    /// To the end of the response body (or its abandonment).
    pub total: Option<Duration>,
    /// Held for a cold start.
    pub activation: Option<Duration>,
    pub protocol: Option<&'static str>,
    pub client: SocketAddr,
}

impl Line<'_> {
    /// Appends the line, newline included, to `buf`; `now` is its timestamp.
    pub fn format(&self, buf: &mut Vec<u8>, now: SystemTime) {
        buf.extend_from_slice(b"{\"timestamp\":\"");
        rfc3339(buf, now);
        buf.extend_from_slice(
            b"\",\"level\":\"INFO\",\"target\":\"apiroutes_gateway::access\",\"trace_id\":\"",
        );
        let mut hex = [0u8; 32];
        hex_into(&mut hex, &self.span.trace_id);
        buf.extend_from_slice(&hex);
        buf.extend_from_slice(b"\",\"span_id\":\"");
        hex_into(&mut hex[..16], &self.span.span_id);
        buf.extend_from_slice(&hex[..16]);
        buf.extend_from_slice(b"\",\"parent_id\":");
        match &self.span.parent_id {
            Some(p) => {
                buf.push(b'"');
                hex_into(&mut hex[..16], p);
                buf.extend_from_slice(&hex[..16]);
                buf.push(b'"');
            }
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"sampled\":");
        buf.extend_from_slice(if self.span.sampled { b"true" } else { b"false" });
        field_str(buf, b",\"request_id\":", self.request_id);
        field_str(buf, b",\"method\":", self.method.map(str::as_bytes));
        field_str(buf, b",\"path\":", self.path.map(str::as_bytes));
        field_str(buf, b",\"host\":", self.host);
        field_str(buf, b",\"route\":", self.route.map(str::as_bytes));
        field_str(buf, b",\"variant\":", self.variant.map(str::as_bytes));
        buf.extend_from_slice(b",\"status\":");
        uint(buf, u64::from(self.status));
        field_str(buf, b",\"upstream\":", self.upstream.map(str::as_bytes));
        buf.extend_from_slice(b",\"bytes_in\":");
        uint(buf, self.bytes_in);
        buf.extend_from_slice(b",\"bytes_out\":");
        uint(buf, self.bytes_out);
        field_ms(buf, b",\"duration_ms\":", self.duration);
        field_ms(buf, b",\"total_ms\":", self.total);
        field_ms(buf, b",\"activation_ms\":", self.activation);
        field_str(buf, b",\"protocol\":", self.protocol.map(str::as_bytes));
        buf.extend_from_slice(b",\"client\":\"");
        socket_addr(buf, self.client);
        buf.extend_from_slice(b"\"}\n");
    }
}

fn field_str(buf: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    buf.extend_from_slice(key);
    match value {
        Some(v) => json_str(buf, v),
        None => buf.extend_from_slice(b"null"),
    }
}

fn field_ms(buf: &mut Vec<u8>, key: &[u8], value: Option<Duration>) {
    buf.extend_from_slice(key);
    match value {
        Some(d) => ms(buf, d),
        None => buf.extend_from_slice(b"null"),
    }
}

/// `bytes` as a JSON string: `"` `\` and control characters (and DEL) escaped, invalid
/// UTF-8 replaced by U+FFFD as `String::from_utf8_lossy` does.
pub fn json_str(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.push(b'"');
    // The usual case, in one pass: printable ASCII with nothing to escape.
    if plain(bytes) {
        buf.extend_from_slice(bytes);
        buf.push(b'"');
        return;
    }
    for chunk in bytes.utf8_chunks() {
        escape_into(buf, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            buf.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    buf.push(b'"');
}

/// Whether `bytes` is printable ASCII without `"` or `\\` (nothing to escape).
fn plain(bytes: &[u8]) -> bool {
    // 16 bytes at a time without an early exit inside, which the compiler turns into a few
    // vector compares (a byte-by-byte early exit was a visible share of the log's cost).
    let bad = |b: u8| !(0x20..0x7f).contains(&b) | (b == b'"') | (b == b'\\');
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |acc, &b| acc | bad(b)) {
            return false;
        }
    }
    !chunks.remainder().iter().any(|&b| bad(b))
}

/// Escapes valid UTF-8 (multi-byte characters pass unchanged).
fn escape_into(buf: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&s[run..i]);
        run = i + 1;
        if short.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(short);
        }
    }
    buf.extend_from_slice(&s[run..]);
}

/// `ip:port` (`[ip]:port` for IPv6); nothing in it needs escaping.
fn socket_addr(buf: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                uint(buf, u64::from(octet));
            }
            buf.push(b':');
            uint(buf, u64::from(a.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(buf, "{addr}");
        }
    }
}

/// Decimal digits of `n`.
fn uint(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// `n` as exactly `width` digits (zero-padded; `n` < 10^width).
fn padded(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 8];
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits[..width]);
}

/// Milliseconds with microsecond precision: `12.345`.
fn ms(buf: &mut Vec<u8>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    uint(buf, micros / 1000);
    buf.push(b'.');
    padded(buf, micros % 1000, 3);
}

/// `2026-12-03T10:11:12.123456Z`, as tracing-subscriber writes timestamps.
pub fn rfc3339(buf: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    padded(buf, y.min(9999), 4);
    buf.push(b'-');
    padded(buf, m, 2);
    buf.push(b'-');
    padded(buf, day, 2);
    buf.push(b'T');
    padded(buf, rem / 3600, 2);
    buf.push(b':');
    padded(buf, rem % 3600 / 60, 2);
    buf.push(b':');
    padded(buf, rem % 60, 2);
    buf.push(b'.');
    padded(buf, u64::from(d.subsec_micros()), 6);
    buf.push(b'Z');
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`,
/// for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::trace_context::parse;

    fn span() -> Span {
        let tp = parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        Span {
            trace_id: tp.trace_id,
            span_id: [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31],
            parent_id: Some(tp.parent_id),
            sampled: true,
        }
    }

    fn line<'a>(span: &'a Span) -> Line<'a> {
        Line {
            span,
            request_id: Some(b"req-1"),
            method: Some("GET"),
            path: Some("/api/users/42"),
            host: Some(b"shop.example"),
            route: Some("shop/users"),
            variant: Some("main"),
            status: 200,
            upstream: Some("10.0.0.7:3000"),
            bytes_in: 12,
            bytes_out: 345,
            duration: Some(Duration::from_micros(1_234)),
            total: Some(Duration::from_micros(2_000_005)),
            activation: Some(Duration::from_millis(812)),
            protocol: Some("HTTP/1.1"),
            client: "192.0.2.1:50000".parse().unwrap(),
        }
    }

    fn formatted(l: &Line<'_>) -> String {
        let mut buf = Vec::new();
        l.format(
            &mut buf,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
        );
        assert_eq!(buf.last(), Some(&b'\n'));
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_line_has_every_field() {
        let s = span();
        let text = formatted(&line(&s));
        assert_eq!(
            text,
            concat!(
                r#"{"timestamp":"2023-11-14T22:13:20.123456Z","level":"INFO","target":"apiroutes_gateway::access","#,
                r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"b7ad6b7169203331","parent_id":"00f067aa0ba902b7","sampled":true,"#,
                r#""request_id":"req-1","method":"GET","path":"/api/users/42","host":"shop.example","route":"shop/users","variant":"main","#,
                r#""status":200,"upstream":"10.0.0.7:3000","bytes_in":12,"bytes_out":345,"duration_ms":1.234,"total_ms":2000.005,"#,
                r#""activation_ms":812.000,"protocol":"HTTP/1.1","client":"192.0.2.1:50000"}"#,
                "\n"
            )
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"].as_f64(), Some(1.234));
    }

    #[test]
    fn unknown_fields_are_null() {
        let mut s = span();
        s.parent_id = None;
        s.sampled = false;
        let l = Line {
            request_id: None,
            method: None,
            path: None,
            host: None,
            route: None,
            variant: None,
            status: 431,
            upstream: None,
            duration: None,
            total: None,
            activation: None,
            protocol: None,
            client: "[::1]:8080".parse().unwrap(),
            ..line(&s)
        };
        let v: serde_json::Value = serde_json::from_str(&formatted(&l)).unwrap();
        for k in [
            "parent_id",
            "request_id",
            "method",
            "path",
            "host",
            "route",
            "variant",
            "upstream",
            "duration_ms",
            "total_ms",
            "activation_ms",
            "protocol",
        ] {
            assert!(v[k].is_null(), "{k}: {v}");
        }
        assert_eq!(v["sampled"], false);
        assert_eq!(v["status"], 431);
        assert_eq!(v["client"], "[::1]:8080");
    }

    #[test]
    fn hostile_strings_stay_valid_json() {
        let s = span();
        let nasty: Vec<u8> = (0u8..=255).collect();
        let mut path =
            String::from("/api/\"quoted\"\\back\u{7f}\u{1b}[31mred\n{\"status\":999}é€😀");
        path.push('\u{2028}');
        let host = b"ev\"il\\\xff\xfe\xc3(\t\r\n\x00host";
        let l = Line {
            request_id: Some(&nasty),
            method: Some("M\"X"),
            path: Some(&path),
            host: Some(host),
            route: Some("ns/\"r\""),
            ..line(&s)
        };
        let text = formatted(&l);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7f}'),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["path"], path.as_str());
        assert_eq!(v["host"], String::from_utf8_lossy(host).as_ref());
        assert_eq!(
            v["request_id"],
            String::from_utf8_lossy(&nasty).as_ref(),
            "every byte value survives, lossily"
        );
        assert_eq!(v["method"], "M\"X");
        assert_eq!(v["route"], "ns/\"r\"");
        assert_eq!(v["status"], 200, "an injected field does not win");
        assert_eq!(v.as_object().unwrap().len(), 22);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |secs: u64, nanos: u32| {
            let mut b = Vec::new();
            rfc3339(&mut b, UNIX_EPOCH + Duration::new(secs, nanos));
            String::from_utf8(b).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 999), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(951_868_799, 999_999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(at(1_709_251_199, 0), "2024-02-29T23:59:59.000000Z");
        assert_eq!(at(4_102_444_800, 1_000), "2100-01-01T00:00:00.000001Z");
        assert_eq!(at(1_798_761_600, 0), "2027-01-01T00:00:00.000000Z");
        // Every day of 1970–2100 against a plain day-by-day count.
        let mut days = 0u64;
        for y in 1970..2101u64 {
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let lens = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, len) in lens.iter().enumerate() {
                for d in 1..=*len {
                    assert_eq!(civil_from_days(days), (y, m as u64 + 1, d));
                    days += 1;
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_one_valid_json_string(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut b = Vec::new();
            json_str(&mut b, &bytes);
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            let lossy = String::from_utf8_lossy(&bytes);
            proptest::prop_assert_eq!(v.as_str(), Some(lossy.as_ref()));
            proptest::prop_assert!(!b.iter().any(|&c| c < 0x20 || c == 0x7f));
        }

        #[test]
        fn the_plain_check_is_the_byte_by_byte_one(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![9 => 0x20u8..0x7f, 1 => proptest::num::u8::ANY],
                0..80,
            )
        ) {
            let simple = bytes.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
            proptest::prop_assert_eq!(plain(&bytes), simple);
        }
    }

    #[test]
    fn addresses() {
        for a in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.1.20.3:8080",
            "[::1]:443",
            "[2001:db8::7]:1",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            let mut b = Vec::new();
            socket_addr(&mut b, addr);
            assert_eq!(String::from_utf8(b).unwrap(), addr.to_string());
        }
    }

    #[test]
    fn numbers() {
        let mut b = Vec::new();
        uint(&mut b, 0);
        b.push(b' ');
        uint(&mut b, u64::MAX);
        b.push(b' ');
        ms(&mut b, Duration::from_nanos(999));
        b.push(b' ');
        ms(&mut b, Duration::from_micros(10_001));
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "0 18446744073709551615 0.000 10.001"
        );
    }

    /// A writer that keeps what it gets, for the sink's tests.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<u8>>>);

    impl Write for Collect {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_sink_writes_every_line_once_and_drains_on_close() {
        let out = Collect::default();
        let log = AccessLog::to(Box::new(out.clone()), None);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        log.write(|b| {
                            let _ = writeln!(b, "{{\"t\":{t},\"i\":{i}}}");
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        log.close(Duration::from_secs(10));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(
                seen.insert((v["t"].as_u64(), v["i"].as_u64())),
                "duplicate {l}"
            );
        }
        assert_eq!(seen.len(), 8_000);
    }

    /// A writer that blocks until released: stdout nobody reads.
    struct Stuck(Arc<(Mutex<bool>, Condvar)>);

    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (m, cv) = &*self.0;
            let mut open = m.lock().unwrap_or_else(PoisonError::into_inner);
            while !*open {
                open = cv.wait(open).unwrap_or_else(PoisonError::into_inner);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_stdout_drops_lines_instead_of_blocking_requests() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let dropped = IntCounter::new("dropped", "test").unwrap();
        let log = AccessLog::to(Box::new(Stuck(Arc::clone(&gate))), Some(dropped.clone()));
        let line = vec![b'x'; 1023];
        // Far more than MAX_BUFFERED: every call returns although nothing is written.
        for _ in 0..(3 * MAX_BUFFERED / 1024) {
            log.write(|b| {
                b.extend_from_slice(&line);
                b.push(b'\n');
            });
        }
        assert!(dropped.get() > 0);
        let (m, cv) = &*gate;
        *m.lock().unwrap() = true;
        cv.notify_all();
        log.close(Duration::from_secs(10));
    }
}
