//! Example function: answers every request with JSON of what it received (method, raw
//! path, query, the `x-apiroute-*` headers, a few request headers and the body), so tests
//! can see exactly what the gateway forwarded.
//!
//! Contract (DESIGN.md): listens on `$HOST:$PORT` (default `0.0.0.0:8080`), answers its
//! readiness check on `/healthz`, and drains on SIGTERM. Environment knobs for tests:
//! `ECHO_NAME` is reported as `server` (which replica or version answered), and
//! `ECHO_DELAY_MS` delays every answer (load and drain tests).
//!
//! Special paths (after any prefix): a query `?sleep_ms=N` delays that answer, `?status=N`
//! sets its status, `?stream=N` streams N chunks 50 ms apart.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Frame, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::{net::TcpListener, signal::unix, sync::watch};

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

async fn handle(req: Request<Incoming>, server: &'static str, delay: Duration) -> Response<Body> {
    let (parts, body) = req.into_parts();
    if parts.uri.path() == "/healthz" {
        return Response::new(full("ok"));
    }
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut apiroute = Map::new();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let v = Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned());
        if name.as_str().starts_with("x-apiroute-") {
            apiroute.insert(name.as_str().to_owned(), v);
        } else {
            headers.insert(name.as_str().to_owned(), v);
        }
    }
    let params: Value = apiroute
        .get("x-apiroute-params")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let answer = json!({
        "server": server,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": query,
        "params": params,
        "apiroute": apiroute,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "bodyLength": body.len(),
    });

    let sleep = query_param(&query, "sleep_ms")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(delay);
    if !sleep.is_zero() {
        tokio::time::sleep(sleep).await;
    }
    let status = query_param(&query, "status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);

    if let Some(n) = query_param(&query, "stream").and_then(|v| v.parse::<u32>().ok()) {
        let chunks = futures_stream(n.min(1000));
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        return resp;
    }

    let mut resp = Response::new(full(answer.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `n` server-sent events, 50 ms apart.
fn futures_stream(n: u32) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for i in 0..n {
            let event = Frame::data(Bytes::from(format!("data: {i}\n\n")));
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "0.0.0.0".to_owned());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_owned());
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("bad HOST/PORT {host}:{port}: {e}"))?;
    let server: &'static str = std::env::var("ECHO_NAME")
        .unwrap_or_else(|_| "echo".to_owned())
        .leak();
    let delay = Duration::from_millis(
        std::env::var("ECHO_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let listener = TcpListener::bind(addr).await?;
    eprintln!("echo: listening on {addr}");

    let mut term = unix::signal(unix::SignalKind::terminate())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let mut stop = stop_rx.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| async move {
                        Ok::<_, Infallible>(handle(req, server, delay).await)
                    });
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Drain: stop accepting, let in-flight requests finish (bounded).
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(25), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    eprintln!("echo: drained, exiting");
    Ok(())
}
