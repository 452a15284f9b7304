//! The gateway's own readiness check of a waking function's pods.
//!
//! A pod's `Ready` reaches the gateway late: the kubelet runs the readiness probe on its
//! period (1 s for functions; the first run, triggered when the container starts, usually
//! comes before the server listens), then writes the pod status, then the EndpointSlice
//! controller updates the slice. On the cold-start timeline (`tests/e2e/examples/
//! coldstart.rs`) that was 50–100 ms at best and over a second at worst, and a Node.js
//! function, which listens some 200 ms after its start, always missed the first probe.
//!
//! So while requests are held for a variant that has no ready endpoint, the gateway checks
//! the variant's *starting* endpoints itself (in the slice, not ready, not terminating)
//! every [`INTERVAL`], with the route's own check: a TCP connect, or `GET readinessPath`
//! answered 200–399 (the kubelet's rule). The first that passes serves the held requests
//! until the slice says it is ready — as Knative's activator probes pods before the
//! kubelet does. Only while requests are held, only endpoints of trusted slices.

use std::{
    sync::{Arc, atomic::Ordering::*},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Uri, header, uri::Authority};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use crate::{table::Endpoint, variant::VariantState};

/// Time between two rounds of checks.
pub const INTERVAL: Duration = Duration::from_millis(10);
/// A check's deadline (connect, and the answer for an HTTP check).
const CHECK_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a pass counts without the slice confirming it; requests held after that
/// have the endpoint checked again (it may have stopped answering since).
pub const TRUSTED_FOR: Duration = Duration::from_secs(3);
/// A probe task gives up after this long (a pod that never passes).
const GIVE_UP: Duration = Duration::from_secs(60);

/// A variant's starting endpoints and how to check them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Starting {
    pub endpoints: Box<[Authority]>,
    /// `spec.readinessPath`: an HTTP check; `None`: a TCP check.
    pub http_path: Option<Box<str>>,
}

/// An endpoint that passed the check, and when.
pub struct Probed {
    pub endpoint: Arc<Endpoint>,
    pub at: Instant,
}

/// The probed endpoint of `state`, if it is recent and its pod is still starting.
pub fn usable(state: &VariantState) -> Option<Arc<Endpoint>> {
    let probed = state.probed.load_full()?;
    if probed.at.elapsed() > TRUSTED_FOR {
        return None;
    }
    let starting = state.starting.load();
    starting
        .as_ref()?
        .endpoints
        .contains(&probed.endpoint.authority)
        .then(|| Arc::clone(&probed.endpoint))
}

/// Starts checking the starting endpoints of `state` unless a check is under way or there
/// is nothing to check. The task stops at the first pass (waking the held requests), when
/// no request is held any more, or after [`GIVE_UP`].
pub fn spawn(state: &Arc<VariantState>) {
    let has_starting = state
        .starting
        .load()
        .as_ref()
        .is_some_and(|s| !s.endpoints.is_empty());
    if !has_starting || state.probing.swap(true, AcqRel) {
        return;
    }
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let give_up = Instant::now() + GIVE_UP;
        while Instant::now() < give_up && state.held.load(Acquire) > 0 {
            let Some(starting) = state.starting.load_full() else {
                break;
            };
            if starting.endpoints.is_empty() {
                break;
            }
            for authority in &starting.endpoints {
                if check(authority, starting.http_path.as_deref()).await {
                    tracing::debug!(route = ?state.key, endpoint = %authority, "starting endpoint passed the gateway's check");
                    state.probed.store(Some(Arc::new(Probed {
                        endpoint: Arc::new(Endpoint::new(authority.clone())),
                        at: Instant::now(),
                    })));
                    state.ready.notify_waiters();
                    state.probing.store(false, Release);
                    return;
                }
            }
            tokio::time::sleep(INTERVAL).await;
        }
        state.probing.store(false, Release);
    });
}

/// One check of one endpoint: it accepts a connection, and answers `GET path` with
/// 200–399 when an HTTP check is configured.
pub async fn check(authority: &Authority, http_path: Option<&str>) -> bool {
    tokio::time::timeout(CHECK_TIMEOUT, check_inner(authority, http_path))
        .await
        .unwrap_or(false)
}

async fn check_inner(authority: &Authority, http_path: Option<&str>) -> bool {
    let Ok(stream) = tokio::net::TcpStream::connect(authority.as_str()).await else {
        return false;
    };
    let Some(path) = http_path else {
        return true;
    };
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
    else {
        return false;
    };
    let conn = tokio::spawn(conn);
    let Ok(uri) = path.parse::<Uri>() else {
        return false;
    };
    let Ok(req) = Request::get(uri)
        .header(header::HOST, authority.as_str())
        .header(header::USER_AGENT, "apiroutes-gateway-probe")
        .header(header::CONNECTION, "close")
        .body(Empty::new())
    else {
        return false;
    };
    let passed = sender
        .send_request(req)
        .await
        .is_ok_and(|r| (200..400).contains(&r.status().as_u16()));
    conn.abort();
    passed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn answering(status: u16) -> Authority {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let _ = s.read(&mut buf).await;
                    let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        addr.to_string().parse().unwrap()
    }

    /// An address with nothing listening (bound, then closed).
    fn closed() -> Authority {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap().to_string();
        drop(l);
        a.parse().unwrap()
    }

    #[tokio::test]
    async fn the_check_is_the_kubelets_rule() {
        let ok = answering(200).await;
        let redirect = answering(302).await;
        let failing = answering(503).await;
        assert!(check(&ok, None).await, "TCP: listening");
        assert!(check(&ok, Some("/healthz")).await);
        assert!(check(&redirect, Some("/healthz")).await, "3xx passes");
        assert!(!check(&failing, Some("/healthz")).await, "5xx fails");
        assert!(
            check(&failing, None).await,
            "a TCP check ignores the answer"
        );
        assert!(!check(&closed(), None).await, "refused");
    }

    #[tokio::test]
    async fn a_probe_wakes_held_requests_with_the_first_endpoint_that_passes() {
        let state = Arc::new(VariantState::new(apiroutes_crds::autoscale::RouteRef {
            namespace: "ns".into(),
            name: "r".into(),
            variant: apiroutes_crds::labels::Variant::Main,
        }));
        let good = answering(204).await;
        state.starting.store(Some(Arc::new(Starting {
            endpoints: vec![closed(), good.clone()].into(),
            http_path: Some("/healthz".into()),
        })));
        // Nothing held: nothing probed.
        spawn(&state);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(state.probed.load().is_none());

        state.held.store(1, SeqCst);
        let woken = state.ready.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        spawn(&state);
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("woken");
        assert_eq!(usable(&state).unwrap().authority, good);

        // The pod is no longer starting (gone, or now in the table): not used any more.
        state.starting.store(None);
        assert!(usable(&state).is_none());
    }
}
