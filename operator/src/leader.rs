//! Leader election on a `coordination.k8s.io/v1` Lease (kube-runtime 5 has no helper).
//!
//! Like client-go's leaderelection: a candidate takes the Lease when it is free, its own,
//! or not renewed for `leaseDurationSeconds` as measured on the candidate's clock since it
//! last saw the record change (no trust in other clocks); writes use the resourceVersion
//! (optimistic concurrency), so two candidates cannot both win. The leader renews every
//! couple of seconds and gives up when it cannot renew within the renew deadline.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tracing::{info, warn};

use crate::error::Result;

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
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
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

    /// One attempt to take or keep the Lease. `Ok(true)`: we hold it now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool> {
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

    /// Renews until it fails for longer than the renew deadline or someone else holds the
    /// Lease; then returns (leadership is lost).
    pub async fn keep(&mut self) {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = Instant::now(),
                Ok(false) => {
                    warn!("the leader lease is held by someone else");
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "renewing the leader lease failed");
                    if last_ok.elapsed() >= self.config.renew_deadline {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
