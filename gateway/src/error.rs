//! Every way a request can fail at the gateway, and the one place that turns each into a
//! response: a status, a small JSON body `{"error": "...", "message": "..."}` and, where it
//! helps, `Allow` or `Retry-After`. The one exception is 413, answered as Next.js answers
//! a body over `bodyParser.sizeLimit` (see [`Error::into_response`]), so that a route's
//! clients see the same 413 whether the gateway or the function refused the body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{Body, full};

/// Why the gateway answered instead of a function.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route matches this path")]
    NotFound,
    #[error("the route does not serve this method")]
    MethodNotAllowed { allow: HeaderValue },
    #[error("malformed percent-encoding in the request path")]
    BadPath,
    #[error("request has no usable path")]
    BadRequest,
    #[error("bad request target: {reason}")]
    BadTarget { reason: &'static str },
    /// A first request line longer than the gateway reads (see `conn::FirstLine`): 414
    /// once the method has ended (`target`), else 400.
    #[error("the request {} is longer than the gateway reads", if *target { "target" } else { "line" })]
    LineTooLong { target: bool },
    #[error("bad Host: {reason}")]
    BadHost { reason: &'static str },
    #[error("request body is larger than the route's limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("the request body could not be read: {reason}")]
    BadBody { reason: String },
    #[error("transfer coding {coding:?} is not supported (only chunked is)")]
    UnsupportedTransferCoding { coding: String },
    #[error("the function did not answer within {seconds}s")]
    GatewayTimeout { seconds: u64 },
    #[error("could not reach the function: {reason}")]
    BadGateway { kind: UpstreamKind, reason: String },
    #[error("the function did not become ready within {seconds}s")]
    ActivationTimeout { seconds: u64 },
    #[error("too many requests are waiting for this route to start")]
    HoldLimit,
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

/// Kinds of upstream failure, for `upstream_errors_total{kind}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    Connect,
    Request,
    Protocol,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Connect => "connect",
            UpstreamKind::Request => "request",
            UpstreamKind::Protocol => "protocol",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::BadPath
            | Error::BadRequest
            | Error::BadTarget { .. }
            | Error::LineTooLong { target: false }
            | Error::BadHost { .. }
            | Error::BadBody { .. } => StatusCode::BAD_REQUEST,
            Error::LineTooLong { target: true } => StatusCode::URI_TOO_LONG,
            Error::UnsupportedTransferCoding { .. } => StatusCode::NOT_IMPLEMENTED,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Error::ActivationTimeout { .. } | Error::HoldLimit | Error::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Short machine-readable name; the `error` field of the body and a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NotFound => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::BadPath => "bad_path",
            Error::BadRequest => "bad_request",
            Error::BadTarget { .. } => "bad_target",
            Error::LineTooLong { target: true } => "uri_too_long",
            Error::LineTooLong { target: false } => "bad_request",
            Error::BadHost { .. } => "bad_host",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::BadBody { .. } => "bad_body",
            Error::UnsupportedTransferCoding { .. } => "unsupported_transfer_coding",
            Error::GatewayTimeout { .. } => "timeout",
            Error::BadGateway { kind, .. } => match kind {
                UpstreamKind::Connect => "upstream_connect",
                UpstreamKind::Request => "upstream_request",
                UpstreamKind::Protocol => "upstream_protocol",
            },
            Error::ActivationTimeout { .. } => "activation_timeout",
            Error::HoldLimit => "hold_limit",
            Error::ShuttingDown => "shutting_down",
        }
    }

    /// The JSON body of this error's response: `{"error": label, "message": text}`.
    pub fn json_body(&self) -> String {
        let mut body = String::with_capacity(96);
        body.push_str(r#"{"error":""#);
        body.push_str(self.metric_label());
        body.push_str(r#"","message":"#);
        body.push_str(&serde_json::Value::from(self.to_string()).to_string());
        body.push('}');
        body
    }

    /// The response for this error.
    pub fn into_response(self) -> Response<Body> {
        if let Error::PayloadTooLarge { limit } = self {
            return body_exceeded(limit);
        }
        let mut resp = Response::new(full(Bytes::from(self.json_body())));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            Error::MethodNotAllowed { allow } => {
                h.insert(header::ALLOW, allow);
            }
            Error::ActivationTimeout { .. } | Error::HoldLimit | Error::ShuttingDown => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The body's framing cannot be trusted: nothing more is read on this connection
            // (RFC 9112 section 6.1; hyper closes it after this answer).
            Error::UnsupportedTransferCoding { .. } | Error::BadBody { .. } => {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

/// 413 as Next.js's API routes send it (`sendError` with `Body exceeded <limit> limit`):
/// the message as the reason phrase (HTTP/1) and as the whole body, no `Content-Type`.
fn body_exceeded(limit: u64) -> Response<Body> {
    let message = format!("Body exceeded {} limit", next_size(limit));
    let mut resp = Response::new(full(Bytes::from(message.clone())));
    *resp.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(message) {
        resp.extensions_mut().insert(reason);
    }
    resp
}

/// A byte count as Next.js writes its default limit (`1mb`): the `bytes` package's format
/// (1024-based units, at most two decimals, trailing zeros dropped) in lower case.
pub fn next_size(n: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("pb", 1 << 50),
        ("tb", 1 << 40),
        ("gb", 1 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
    ];
    let (unit, size) = UNITS
        .iter()
        .find(|(_, size)| n >= *size)
        .map_or(("b", 1), |&(u, s)| (u, s));
    // Hundredths, rounded half up as `toFixed(2)` does for these values.
    let hundredths = (u128::from(n) * 100 + u128::from(size) / 2) / u128::from(size);
    let (whole, frac) = (hundredths / 100, hundredths % 100);
    match frac {
        0 => format!("{whole}{unit}"),
        f if f % 10 == 0 => format!("{whole}.{}{unit}", f / 10),
        f => format!("{whole}.{f:02}{unit}"),
    }
}

/// The answer to `OPTIONS *` (RFC 9110 §9.3.7: about the server in general, not a
/// route): 200, the methods a route may serve in `Allow`, no body.
pub fn server_options() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ROUTE_METHODS));
    resp
}

/// The methods named in answers about the server rather than a route (`OPTIONS *`, a
/// `CONNECT`): the usual ones (a route may name others).
pub const ROUTE_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// `308 Permanent Redirect` to a cleaned path (not an error, but answered by the gateway),
/// as Next.js answers it: `Location`, `Refresh: 0;url=<location>`, the location as the body
/// and no `Content-Type` (hyper leaves the body out for HEAD).
pub fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::copy_from_slice(location.as_bytes())));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::try_from(location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::try_from(format!("0;url={location}")) {
        h.insert(header::REFRESH, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn errors_have_status_json_and_headers() {
        let cases = [
            (Error::NotFound, 404),
            (
                Error::MethodNotAllowed {
                    allow: HeaderValue::from_static("GET, HEAD"),
                },
                405,
            ),
            (Error::BadPath, 400),
            (
                Error::BadHost {
                    reason: "more than one Host header",
                },
                400,
            ),
            (Error::GatewayTimeout { seconds: 1 }, 504),
            (
                Error::BadGateway {
                    kind: UpstreamKind::Connect,
                    reason: "refused \"x\"".into(),
                },
                502,
            ),
            (Error::ActivationTimeout { seconds: 3 }, 503),
            (Error::HoldLimit, 503),
        ];
        for (err, code) in cases {
            let label = err.metric_label();
            let resp = err.into_response();
            assert_eq!(resp.status().as_u16(), code);
            if code == 405 {
                assert_eq!(resp.headers()["allow"], "GET, HEAD");
            }
            if code == 503 {
                assert_eq!(resp.headers()["retry-after"], "1");
            }
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"], label);
            assert!(v["message"].as_str().unwrap().len() > 5);
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_gets_nexts_413() {
        let resp = Error::PayloadTooLarge { limit: 1 << 20 }.into_response();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(resp.headers().get(header::CONTENT_TYPE).is_none());
        let reason = resp.extensions().get::<hyper::ext::ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"Body exceeded 1mb limit");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"Body exceeded 1mb limit");
    }

    #[test]
    fn sizes_are_written_as_next_writes_its_limits() {
        for (n, text) in [
            (0, "0b"),
            (100, "100b"),
            (1024, "1kb"),
            (1536, "1.5kb"),
            (500 * 1024, "500kb"),
            (1 << 20, "1mb"),
            (4 << 20, "4mb"),
            (1_258_291, "1.2mb"),
            (1_300_000, "1.24mb"),
            (1 << 30, "1gb"),
            (u64::MAX, "16384pb"),
        ] {
            assert_eq!(next_size(n), text, "{n}");
        }
    }
}
