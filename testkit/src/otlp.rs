//! A test double standing in for an OpenTelemetry collector: an OTLP/HTTP server on
//! 127.0.0.1 that decodes every `POST /v1/traces` (protobuf `ExportTraceServiceRequest`)
//! and hands out the spans it got, over plain HTTP or over TLS with a private CA
//! ([`Collector::start_tls`]). Not a real collector: no other signals, no JSON, no gzip;
//! it answers 200 with an empty `ExportTraceServiceResponse`.

use std::{convert::Infallible, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::Span,
};
use prost::Message;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::mpsc,
};
use tokio_rustls::TlsAcceptor;

use crate::tls::{PrivateCa, private_ca};

/// One span received, with the `service.name` of its resource.
#[derive(Clone, Debug)]
pub struct Received {
    pub service: Option<String>,
    pub scope: String,
    pub span: Span,
}

impl Received {
    /// The value of attribute `key`, as text (strings as they are, numbers formatted).
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
}

/// The value of `key` among `attributes`, as text.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref();
    match value.and_then(|v: &AnyValue| v.value.as_ref())? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The collector double: serves until dropped (its task is aborted).
pub struct Collector {
    pub addr: SocketAddr,
    /// With TLS: the CA a client must trust.
    pub ca: Option<PrivateCa>,
    spans: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    /// Listens on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When no port can be bound (tests only).
    pub async fn start() -> Collector {
        Self::listen(None).await
    }

    /// Listens over TLS with a certificate for 127.0.0.1 from a new private CA, written to
    /// `dir` (its `ca.pem` is [`Collector::ca`]).
    ///
    /// # Panics
    /// When the CA cannot be made or no port bound (tests only).
    #[allow(clippy::unwrap_used)]
    pub async fn start_tls(dir: &Path) -> Collector {
        let ca = private_ca(dir).unwrap();
        let certs = CertificateDer::pem_file_iter(&ca.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&ca.key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let mut c = Self::listen(Some(TlsAcceptor::from(Arc::new(config)))).await;
        c.ca = Some(ca);
        c
    }

    #[allow(clippy::unwrap_used)]
    async fn listen(tls: Option<TlsAcceptor>) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, tx).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                serve(stream, tx).await;
                            }
                        }
                    }
                });
            }
        });
        Collector {
            addr,
            ca: None,
            spans: rx,
            task,
        }
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS): the value of
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A span already received, if any (does not wait).
    pub fn try_span(&mut self) -> Option<Received> {
        self.spans.try_recv().ok()
    }

    /// The next span received for which `pred` holds (others are passed over).
    ///
    /// # Panics
    /// When none comes within `timeout`, saying which spans did.
    pub async fn span(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.spans.recv()).await {
                Ok(Some(r)) if pred(&r) => return r,
                Ok(Some(r)) => seen.push(r.span.name),
                Ok(None) | Err(_) => {
                    panic!("the collector got no span {what} in {timeout:?}; it got {seen:?}")
                }
            }
        }
    }
}

async fn serve<S>(stream: S, tx: mpsc::UnboundedSender<Received>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(req, tx.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(
    req: Request<Incoming>,
    tx: mpsc::UnboundedSender<Received>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        Ok(r)
    };
    if req.uri().path() != "/v1/traces" {
        return reply(StatusCode::NOT_FOUND, Vec::new());
    }
    let Ok(body) = req.into_body().collect().await else {
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body.to_bytes()) else {
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    for rs in export.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| attribute(&r.attributes, "service.name"));
        for ss in rs.scope_spans {
            let scope = ss.scope.map(|s| s.name).unwrap_or_default();
            for span in ss.spans {
                let _ = tx.send(Received {
                    service: service.clone(),
                    scope: scope.clone(),
                    span,
                });
            }
        }
    }
    reply(
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}
