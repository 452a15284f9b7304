//! The autoscaler's decisions, as pure functions of recorded load.
//!
//! Gateways report per-second concurrency per route variant ([`Tracker`] sums them and
//! forgets silent gateways); once a second the autoscaler samples the sum into each
//! variant's [`History`] and asks [`recommend`] how many replicas it should have:
//!
//! - **stable mode**: replicas for the average concurrency over the last ~60 s;
//! - **panic mode**: entered when the ~6 s average reaches twice what the current replicas
//!   can take; replicas for the 6 s average, never scaling down; left after a stable window
//!   without a new trigger;
//! - **scale to zero** (only with `minReplicas: 0`): after `scaleToZeroAfterSeconds`
//!   without requests and without held requests;
//! - bounded by `minReplicas`/`maxReplicas`, by step sizes (at most ×4 up, at most halving
//!   down per decision), never below one replica while requests are held, and never down
//!   during the first stable window of observation (a new leader starts from the replicas
//!   it finds).
//!
//! Times are seconds (`f64`) on the caller's monotonic clock.

use std::collections::{HashMap, VecDeque};

use apiroutes_crds::{
    Scaling,
    autoscale::{Demand, LoadReport, RouteRef},
};

pub const STABLE_WINDOW: f64 = 60.0;
pub const PANIC_WINDOW: f64 = 6.0;
/// Panic when the panic-window concurrency is at least this many times what the current
/// replicas can take.
pub const PANIC_THRESHOLD: f64 = 2.0;
/// Scale up at most this factor per decision (from zero: to at most this many).
pub const MAX_SCALE_UP_RATE: f64 = 4.0;
/// Scale down to no less than current / this per decision.
pub const MAX_SCALE_DOWN_RATE: f64 = 2.0;
/// A gateway silent for longer is forgotten.
pub const GATEWAY_TIMEOUT: f64 = 5.0;

/// Load of one variant during one second, summed over gateways.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub at: f64,
    /// Average requests in flight (proxied or held).
    pub concurrency: f64,
    /// Requests started.
    pub requests: u64,
    /// Requests held for activation right now.
    pub held: u32,
}

impl Sample {
    pub fn active(&self) -> bool {
        self.concurrency > 0.0 || self.requests > 0 || self.held > 0
    }
}

/// What the autoscaler remembers about one variant.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// When this autoscaler started observing the variant.
    pub since: f64,
    /// Samples of the last stable window, oldest first.
    pub samples: VecDeque<Sample>,
    /// Last time the variant had traffic or held requests.
    pub last_active: Option<f64>,
    /// Set while in panic mode: when panic was last triggered.
    pub panic_since: Option<f64>,
}

impl History {
    pub fn new(since: f64) -> Self {
        History {
            since,
            samples: VecDeque::new(),
            last_active: None,
            panic_since: None,
        }
    }

    pub fn push(&mut self, sample: Sample) {
        if sample.active() {
            self.last_active = Some(sample.at);
        } else if self.samples.back().is_none_or(|s| !s.active()) {
            // A quiet second after quiet ones adds nothing: missing seconds count as zero
            // ([`History::average`]), and one quiet sample already ends the last active
            // one for [`History::held`]. So an idle route keeps no samples at all (10,000
            // idle routes kept 60 each).
            return;
        }
        self.samples.push_back(sample);
        while self
            .samples
            .front()
            .is_some_and(|s| s.at <= sample.at - STABLE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Average concurrency over the last `window` seconds (missing seconds count as zero;
    /// only the observed part of the window counts).
    pub fn average(&self, window: f64, now: f64) -> f64 {
        let span = window.min(now - self.since).max(1.0);
        let sum: f64 = self
            .samples
            .iter()
            .filter(|s| s.at > now - window && s.at <= now)
            .map(|s| s.concurrency)
            .sum();
        sum / span
    }

    /// Requests held according to the newest sample, if it is fresh.
    pub fn held(&self, now: f64) -> u32 {
        self.samples
            .back()
            .filter(|s| s.at > now - 2.0)
            .map_or(0, |s| s.held)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
    None,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::None => "none",
        }
    }
}

/// What [`recommend`] decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub desired: i32,
    /// The new panic state, for the caller to store in [`History::panic_since`].
    pub panic_since: Option<f64>,
    pub direction: Direction,
}

/// How many replicas a variant should have now, given its history, its scaling spec and
/// its current replicas.
pub fn recommend(history: &History, spec: &Scaling, current: i32, now: f64) -> Decision {
    let target = f64::from(spec.target_concurrency.max(1));
    let min = spec.min_replicas.max(0);
    let max = spec.max_replicas.max(1).max(min);
    let current = current.max(0);

    let stable_avg = history.average(STABLE_WINDOW, now);
    let panic_avg = history.average(PANIC_WINDOW, now);
    let held = history.held(now);
    let want_stable = ceil_i32(stable_avg / target);
    let want_panic = ceil_i32(panic_avg / target);

    // At zero, panic only for requests held now: traffic that ended just before the route
    // went to sleep would otherwise wake it again with nobody waiting.
    let triggered = (current > 0 || held > 0)
        && panic_avg > 0.0
        && panic_avg >= PANIC_THRESHOLD * f64::from(current) * target;
    let panic_since = match history.panic_since {
        _ if triggered => Some(now),
        Some(p) if now - p < STABLE_WINDOW => Some(p),
        _ => None,
    };

    let mut desired = if panic_since.is_some() {
        want_panic.max(current)
    } else {
        want_stable
    };

    // Down only after a full stable window of observation (a new leader converges from
    // the replicas it finds instead of acting on an empty history).
    if now - history.since < STABLE_WINDOW {
        desired = desired.max(current);
    }

    // Zero only when idle long enough; otherwise keep one replica while there was recent
    // traffic (the stable average may round a trickle of load to zero).
    let idle_for = now - history.last_active.unwrap_or(history.since);
    let may_sleep = min == 0
        && held == 0
        && idle_for >= f64::from(spec.scale_to_zero_after_seconds)
        // A new leader has not seen the previous leader's traffic (and gateways may still
        // be finding it): no scale to zero before a full stable window of observation.
        && now - history.since >= STABLE_WINDOW;
    if may_sleep && panic_since.is_none() {
        desired = 0;
    } else if desired == 0 && (current > 0 || held > 0 || history.last_active.is_some()) {
        desired = 1;
    }

    // Bounded steps.
    if desired > current {
        let cap = ceil_i32(f64::from(current.max(1)) * MAX_SCALE_UP_RATE);
        desired = desired.min(cap);
    } else if desired < current {
        let floor = (f64::from(current) / MAX_SCALE_DOWN_RATE).floor() as i32;
        desired = desired.max(floor);
    }

    // Bounds, then: never zero while requests wait.
    if desired != 0 || min > 0 {
        desired = desired.clamp(min.max(1), max);
    }
    if held > 0 {
        desired = desired.max(1);
    }

    let direction = match desired.cmp(&current) {
        std::cmp::Ordering::Greater => Direction::Up,
        std::cmp::Ordering::Less => Direction::Down,
        std::cmp::Ordering::Equal => Direction::None,
    };
    Decision {
        desired,
        panic_since,
        direction,
    }
}

/// Replicas to write the moment a demand arrives for a variant at zero: one (or
/// `minReplicas` if higher), within `maxReplicas`.
pub fn wake_replicas(spec: &Scaling) -> i32 {
    spec.min_replicas.max(1).min(spec.max_replicas.max(1))
}

fn ceil_i32(x: f64) -> i32 {
    if x.is_finite() && x > 0.0 {
        x.ceil().min(f64::from(i32::MAX)) as i32
    } else {
        0
    }
}

/// One gateway's latest figures for one variant.
#[derive(Clone, Copy, Debug, PartialEq)]
struct GatewayLoad {
    at: f64,
    concurrency: f64,
    requests: u64,
    held: u32,
}

/// The latest report of every live gateway, per variant.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    routes: HashMap<RouteRef, HashMap<String, GatewayLoad>>,
}

impl Tracker {
    /// A gateway's load report: replaces what that gateway said before; a variant it
    /// reported before but not now has no load from it any more.
    pub fn observe_load(&mut self, report: &LoadReport, now: f64) {
        for per_gateway in self.routes.values_mut() {
            per_gateway.remove(&report.gateway);
        }
        for r in &report.routes {
            self.routes.entry(r.route.clone()).or_default().insert(
                report.gateway.clone(),
                GatewayLoad {
                    at: now,
                    concurrency: r.average_concurrency.max(f64::from(r.held)),
                    requests: r.requests,
                    held: r.held,
                },
            );
        }
        self.routes.retain(|_, g| !g.is_empty());
    }

    /// A demand push: requests are held at `gateway` for a variant with no ready endpoint.
    pub fn observe_demand(&mut self, demand: &Demand, now: f64) {
        let entry = self
            .routes
            .entry(demand.route.clone())
            .or_default()
            .entry(demand.gateway.clone())
            .or_insert(GatewayLoad {
                at: now,
                concurrency: 0.0,
                requests: 0,
                held: 0,
            });
        entry.at = now;
        entry.held = entry.held.max(demand.held);
        entry.concurrency = entry.concurrency.max(f64::from(demand.held));
    }

    /// The summed load of `route` over live gateways; forgets gateways silent for longer
    /// than [`GATEWAY_TIMEOUT`].
    pub fn sample(&mut self, route: &RouteRef, now: f64) -> Sample {
        let mut sample = Sample {
            at: now,
            ..Sample::default()
        };
        if let Some(per_gateway) = self.routes.get_mut(route) {
            per_gateway.retain(|_, g| now - g.at <= GATEWAY_TIMEOUT);
            for g in per_gateway.values() {
                sample.concurrency += g.concurrency;
                sample.requests += g.requests;
                sample.held += g.held;
            }
            if per_gateway.is_empty() {
                self.routes.remove(route);
            }
        }
        sample
    }

    /// Variants some gateway reported.
    pub fn routes(&self) -> impl Iterator<Item = &RouteRef> {
        self.routes.keys()
    }
}

#[cfg(test)]
mod tests;
