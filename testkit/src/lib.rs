//! What the tests of every crate share (a dev-dependency only):
//! - [`free_port`]: a port on 127.0.0.1 nobody listens on;
//! - [`eventually`]: wait for an event itself, not for a fixed time;
//! - [`from_env`]: the rule for tests that need the local cluster (or a part of it) named
//!   by an environment variable. `tests/run.sh` starts the cluster and sets
//!   `APIROUTES_REQUIRE_CLUSTER=1`: then a test that cannot find its part fails instead of
//!   skipping. Run alone (`cargo test` without the runner) it says it skipped;
//! - [`otlp::Collector`]: an OTLP/HTTP collector double that hands out the spans it got;
//! - [`tls::private_ca`]: a private CA and a server certificate for TLS tests.

pub mod otlp;
pub mod tls;

use std::{future::Future, net::TcpListener, time::Duration};

use tokio::time::Instant;

/// A free TCP port on 127.0.0.1 (bound, then released).
///
/// # Panics
/// When the OS gives no port (tests only).
#[allow(clippy::unwrap_used)]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Whether the test runner started the cluster (`APIROUTES_REQUIRE_CLUSTER=1`).
pub fn cluster_required() -> bool {
    std::env::var("APIROUTES_REQUIRE_CLUSTER").as_deref() == Ok("1")
}

/// The value of `var`, which names a part of the local cluster a test needs. `None` (the
/// test should return, having said it skipped) when it is unset and the cluster is not
/// required.
///
/// # Panics
/// When it is unset and `APIROUTES_REQUIRE_CLUSTER=1`.
pub fn from_env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                !cluster_required(),
                "{test}: APIROUTES_REQUIRE_CLUSTER=1 but {var} is not set"
            );
            eprintln!("SKIP {test}: {var} is not set (tests/run.sh sets it)");
            None
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`.
///
/// # Panics
/// After `timeout`, saying what was awaited.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }

    #[tokio::test]
    async fn eventually_returns_the_first_some() {
        let mut calls = 0;
        let got = eventually("the third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for: nothing")]
    async fn eventually_panics_at_the_timeout() {
        eventually("nothing", Duration::from_millis(150), || async {
            None::<()>
        })
        .await;
    }
}
