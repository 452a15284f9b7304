//! Leader election on a `coordination.k8s.io/v1` Lease (kube-runtime 5 has no helper).
//!
//! Like client-go's leaderelection: a candidate takes the Lease when it is free, its own,
//! or not renewed for `leaseDurationSeconds` as measured on the candidate's clock since it
//! last saw the record change (no trust in other clocks); writes use the resourceVersion
//! (optimistic concurrency), so two candidates cannot both win. The leader renews every
//! couple of seconds and gives up when it cannot renew within the renew deadline.
//!
//! The [`Fence`] makes "gives up" hold even when the API server hangs: every renew attempt
//! is bounded by the time left before the renew deadline, and every write of the leader
//! goes through a client that refuses it (and cuts it short) once the fence's instant
//! (start of the last successful renew + renew deadline) has passed. A standby takes over
//! no sooner than a lease duration after it saw that renew, so the old leader's writes stop
//! at least `lease_duration - renew_deadline` (5 s by default) before the new one's start.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::Instant;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
    client::ClientBuilder,
};
use tracing::{info, warn};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
    /// The leader steps down when it could not renew for this long (< lease duration).
    pub renew_deadline: Duration,
}

/// Slack kept between the end of the old leader's writes and the earliest take-over: for
/// clock rate differences and a write already on the wire when the fence closes.
pub const FENCE_MARGIN: Duration = Duration::from_secs(2);

impl LeaseConfig {
    pub fn new(name: String, namespace: String, identity: String) -> Self {
        LeaseConfig {
            name,
            namespace,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
        }
    }

    /// The fence is only safe when the renew deadline ends well before anyone may take the
    /// Lease over, and renewing is tried more than once within it.
    pub fn is_safe(&self) -> bool {
        self.renew_deadline + FENCE_MARGIN <= self.lease_duration
            && self.renew_every * 2 <= self.renew_deadline
    }
}

/// The pure fence rule: writes are allowed strictly before the deadline.
pub fn may_write(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now < d)
}

/// Until when a renew that *started* at `started` lets us write. The start, not the answer:
/// the API server may have stored the renew any time after it, and standbys count the lease
/// duration from when they see it.
pub fn write_deadline(started: Instant, config: &LeaseConfig) -> Instant {
    started + config.renew_deadline
}

/// When the leader next tries to renew: every `renew_every`, but at once when the deadline
/// is nearer than that (a slow or failed attempt leaves little time).
pub fn next_attempt(now: Instant, deadline: Instant, renew_every: Duration) -> Instant {
    let latest_calm = deadline.checked_sub(renew_every).unwrap_or(now).max(now);
    (now + renew_every).min(latest_calm)
}

/// "This process may write to the cluster until instant T" — shared by the elector (which
/// moves T on each successful renew and clears it on loss) and every writer (through
/// [`fenced_client`]).
#[derive(Clone, Debug, Default)]
pub struct Fence(Arc<Mutex<Option<Instant>>>);

impl Fence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instant writes stop, if they are allowed now.
    pub fn open_until(&self) -> Option<Instant> {
        let deadline = *self.lock();
        may_write(deadline, Instant::now())
            .then_some(deadline)
            .flatten()
    }

    pub fn is_open(&self) -> bool {
        self.open_until().is_some()
    }

    /// Moves the deadline (never backwards: an older renew cannot shorten a newer one).
    pub fn extend(&self, until: Instant) {
        let mut d = self.lock();
        *d = Some(d.map_or(until, |old| old.max(until)));
    }

    /// Stops every write now.
    pub fn close(&self) {
        *self.lock() = None;
    }
}

/// A client for the leader's work: reads pass; a write is refused unless the fence is open,
/// and given up when the fence's instant passes (the API server may still apply a write
/// already sent; the margin to the lease duration covers that).
pub fn fenced_client(config: kube::Config, fence: Fence) -> Result<Client> {
    let builder = ClientBuilder::try_from(config)?;
    Ok(builder.with_layer(&FenceLayer(fence)).build())
}

struct FenceLayer(Fence);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;
    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn is_read(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

impl<S, B> tower::Service<http::Request<B>> for Fenced<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if is_read(req.method()) {
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        }
        let Some(until) = self.fence.open_until() else {
            return Box::pin(std::future::ready(Err(Box::new(Error::Fenced) as BoxError)));
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout_at(until, fut).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(Box::new(Error::Fenced) as BoxError),
            }
        })
    }
}

/// What a candidate does with the Lease it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, holding it.
    Create,
    /// Ours: renew it.
    Renew,
    /// Free or expired: take it over.
    Acquire,
    /// Someone else holds it and renews it.
    Wait,
}

/// The pure rule. `unchanged_for` is how long, on our clock, the Lease's holder and renew
/// time have been what they are now.
pub fn step(
    lease: Option<&LeaseSpec>,
    identity: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Step {
    let Some(spec) = lease else {
        return Step::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == identity => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or(default_duration);
            if unchanged_for >= duration {
                Step::Acquire
            } else {
                Step::Wait
            }
        }
    }
}

/// The part of a Lease that shows whether its holder is alive: holder and renew time.
type Record = (Option<String>, Option<MicroTime>);

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// (holder, renew time) last seen, and when it was first seen.
    observed: Option<(Record, Instant)>,
    fence: Fence,
}

impl Elector {
    /// `client` should have a read timeout (see [`lease_client_config`]); every attempt is
    /// also bounded here.
    pub fn new(client: Client, config: LeaseConfig, fence: Fence) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            fence,
        }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn spec(&self, acquire_time: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15),
            ),
            acquire_time: Some(acquire_time.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to take or keep the Lease, given up at `until` (then `Err`). `Ok(true)`:
    /// we hold it now, and the fence is open until a renew deadline after the attempt began.
    pub async fn attempt(&mut self, until: Instant) -> Result<bool> {
        let started = Instant::now();
        let held = tokio::time::timeout_at(until, self.try_acquire_or_renew())
            .await
            .map_err(|_| Error::LeaseTimeout)??;
        if held {
            self.fence.extend(write_deadline(started, &self.config));
        }
        Ok(held)
    }

    /// One unbounded attempt (use [`Elector::attempt`]). `Ok(true)`: we hold it now.
    async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let current = self.api.get_opt(&self.config.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.clone());
        let seen = spec
            .as_ref()
            .map(|s| (s.holder_identity.clone(), s.renew_time.clone()))
            .unwrap_or_default();
        let unchanged_for = match &self.observed {
            Some((prev, at)) if *prev == seen => at.elapsed(),
            _ => {
                self.observed = Some((seen, Instant::now()));
                Duration::ZERO
            }
        };
        let step = match &current {
            None => Step::Create,
            Some(_) => step(
                spec.as_ref(),
                &self.config.identity,
                unchanged_for,
                self.config.lease_duration,
            ),
        };
        let result = match (step, current) {
            (Step::Wait, _) => return Ok(false),
            (Step::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Step::Renew, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                lease.spec = Some(self.spec(old.acquire_time, old.lease_transitions.unwrap_or(0)));
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
            (Step::Acquire, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                info!(previous = ?old.holder_identity, "taking over the leader lease");
                lease.spec = Some(self.spec(None, old.lease_transitions.unwrap_or(0) + 1));
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            // Someone else wrote first (409) or created it first: not ours this round.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over at once.
    pub async fn release(&mut self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    /// Renews until the fence's deadline passes without a successful renew (each attempt
    /// is cut off at that deadline) or someone else holds the Lease; then closes the fence
    /// and returns: leadership is lost, and no write of ours goes out any more.
    pub async fn keep(&mut self) {
        loop {
            let Some(deadline) = self.fence.open_until() else {
                warn!("could not renew the leader lease before the renew deadline");
                break;
            };
            let at = next_attempt(Instant::now(), deadline, self.config.renew_every);
            tokio::time::sleep_until(at).await;
            match self.attempt(deadline).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!("the leader lease is held by someone else");
                    break;
                }
                Err(e) => warn!(error = %e, "renewing the leader lease failed"),
            }
        }
        self.fence.close();
    }
}

/// The elector's connection settings: a read timeout, so that a hung API server fails a
/// call instead of holding it (the watches keep the default: they idle for minutes).
pub fn lease_client_config(mut config: kube::Config) -> kube::Config {
    config.read_timeout = Some(Duration::from_secs(5));
    config.reset_reader_on_write = true;
    config
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(holder: Option<&str>, secs: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: secs,
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn lease_rule() {
        let d = Duration::from_secs(15);
        let s = Duration::from_secs;
        assert_eq!(step(None, "me", s(0), d), Step::Create);
        assert_eq!(
            step(Some(&spec(Some("me"), Some(15))), "me", s(100), d),
            Step::Renew
        );
        assert_eq!(
            step(Some(&spec(None, Some(15))), "me", s(0), d),
            Step::Acquire
        );
        assert_eq!(
            step(Some(&spec(Some(""), Some(15))), "me", s(0), d),
            Step::Acquire
        );
        assert_eq!(
            step(Some(&spec(Some("other"), Some(15))), "me", s(14), d),
            Step::Wait
        );
        assert_eq!(
            step(Some(&spec(Some("other"), Some(15))), "me", s(15), d),
            Step::Acquire
        );
        // A released lease (duration 1) is taken quickly; a missing duration uses ours.
        assert_eq!(
            step(Some(&spec(Some("other"), Some(1))), "me", s(1), d),
            Step::Acquire
        );
        assert_eq!(
            step(Some(&spec(Some("other"), None)), "me", s(10), d),
            Step::Wait
        );
    }

    #[test]
    fn fence_rule() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(!may_write(None, t0), "no renew yet: no writes");
        assert!(may_write(Some(t0 + s(1)), t0));
        assert!(!may_write(Some(t0), t0), "the deadline itself is too late");
        assert!(!may_write(Some(t0), t0 + s(1)));
        let c = LeaseConfig::new("l".into(), "ns".into(), "me".into());
        assert!(c.is_safe(), "the defaults stop writes before a take-over");
        assert_eq!(write_deadline(t0, &c), t0 + s(10));
        assert!(write_deadline(t0, &c) + FENCE_MARGIN <= t0 + c.lease_duration);
        let mut unsafe_config = c.clone();
        unsafe_config.renew_deadline = s(14);
        assert!(!unsafe_config.is_safe(), "a 1 s margin is too small");
        unsafe_config.renew_deadline = s(3);
        assert!(
            !unsafe_config.is_safe(),
            "a single attempt per deadline is too few"
        );
    }

    #[test]
    fn renew_schedule() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // Calm: every renew_every.
        assert_eq!(next_attempt(t0, t0 + s(10), s(2)), t0 + s(2));
        // The deadline is near: try sooner, or at once.
        assert_eq!(next_attempt(t0, t0 + s(3), s(2)), t0 + s(1));
        assert_eq!(next_attempt(t0, t0 + s(1), s(2)), t0);
    }

    #[tokio::test]
    async fn fence_moves_forward_only_and_closes() {
        let f = Fence::default();
        assert!(!f.is_open());
        let t = Instant::now() + Duration::from_secs(5);
        f.extend(t);
        assert_eq!(f.open_until(), Some(t));
        f.extend(t - Duration::from_secs(1));
        assert_eq!(
            f.open_until(),
            Some(t),
            "an older renew does not shorten it"
        );
        f.close();
        assert!(!f.is_open());
    }

    /// A local TCP listener that accepts and never answers: it stands in for a hung API
    /// server (a frozen kube-apiserver accepts connections in the kernel and says nothing).
    async fn hung_api_server() -> kube::Config {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = vec![];
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        kube::Config::new(format!("http://{addr}").parse().unwrap())
    }

    #[tokio::test]
    async fn a_hung_renewal_is_bounded_and_writes_stop_before_the_lease_expires() {
        let config = hung_api_server().await;
        let mut c = LeaseConfig::new("l".into(), "ns".into(), "me".into());
        c.lease_duration = Duration::from_secs(3);
        c.renew_every = Duration::from_millis(200);
        c.renew_deadline = Duration::from_millis(1000);
        assert!(c.is_safe());
        let fence = Fence::default();
        // As if the last renew (the acquisition) began now.
        let renewed = Instant::now();
        fence.extend(write_deadline(renewed, &c));
        let elector_client = Client::try_from(lease_client_config(config.clone())).unwrap();
        let writer = fenced_client(config, fence.clone()).unwrap();
        let mut elector = Elector::new(elector_client, c.clone(), fence.clone());

        // A write in flight to the hung server is cut off at the fence's deadline.
        let write = tokio::spawn(async move {
            let api: Api<Lease> = Api::namespaced(writer.clone(), "ns");
            let r = api.delete("x", &Default::default()).await;
            (r.is_err(), Instant::now(), writer)
        });
        let kept = tokio::time::timeout(c.lease_duration, elector.keep()).await;
        let returned = Instant::now();
        assert!(
            kept.is_ok(),
            "keep() returned before the lease would expire"
        );
        assert!(
            returned - renewed < c.renew_deadline + Duration::from_millis(300),
            "keep() returned {:?} after the renew, renew deadline {:?}",
            returned - renewed,
            c.renew_deadline
        );
        assert!(!fence.is_open(), "the fence is closed on loss");
        let (failed, ended, writer) = write.await.unwrap();
        assert!(failed, "the hung write did not succeed");
        assert!(
            ended - renewed < c.renew_deadline + Duration::from_millis(300),
            "the write was cut off at the fence ({:?})",
            ended - renewed
        );
        // After the loss a write is refused at once, without reaching the server.
        let t = Instant::now();
        let api: Api<Lease> = Api::namespaced(writer, "ns");
        let err = api.delete("x", &Default::default()).await.err();
        assert!(t.elapsed() < Duration::from_millis(100));
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("fenced"), "{err}");
    }
}
